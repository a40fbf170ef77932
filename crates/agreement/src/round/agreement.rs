//! The full agreement report of a round.

use std::collections::BTreeMap;

use serde::Serialize;

use super::disagreements::{Disagreement, disagreements};
use super::input::{Normalise, RoundData};
use super::inter_juror::{InterJuror, inter_juror};
use super::jurors::{JurorStats, juror_stats};
use super::model_vs_panel::{ModelVsPanel, Pairs, Resampling, model_vs_panel};
use super::panel::Panel;
use super::reasons::Reasons;
use super::standings::standings_of;

/// How [`agreement`] is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgreementOptions {
    /// Compare the model with the raw panel mean or the leniency-normalised one.
    pub normalise: Normalise,
    /// How far apart, in z units, the model and the panel must place an entry to list it as a
    /// disagreement. Must be finite and not negative; otherwise the default is used.
    pub threshold: f64,
    /// Bootstrap resamples per interval. The work grows linearly with it; callers taking it from
    /// a request should bound it.
    pub resamples: usize,
    /// Seeds the bootstrap, so a report can be reproduced.
    pub seed: u64,
}

impl AgreementOptions {
    pub const DEFAULT_THRESHOLD: f64 = 1.5;
    pub const DEFAULT_RESAMPLES: usize = 2000;
}

impl Default for AgreementOptions {
    fn default() -> Self {
        Self {
            normalise: Normalise::None,
            threshold: Self::DEFAULT_THRESHOLD,
            resamples: Self::DEFAULT_RESAMPLES,
            seed: 0,
        }
    }
}

/// How well the model agrees with the panel and the jurors with each other, over one round.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Agreement {
    /// Entries with a model score and a panel value (at least one juror score; with
    /// `normalise: z`, at least one usable z-score).
    pub n: usize,
    /// Which panel value the model was compared with.
    pub normalise: Normalise,
    pub model_vs_panel: ModelVsPanel,
    pub inter_juror: InterJuror,
    /// One per juror of the round, in the round's order.
    pub jurors: Vec<JurorStats>,
    pub disagreements: Vec<Disagreement>,
    /// The threshold the disagreements were selected with.
    pub threshold: f64,
    /// Why each `null` figure is missing, keyed by its path (`model_vs_panel.pearson`,
    /// `model_vs_panel.ci95.qwk`, `inter_juror.icc2_1`, `jurors.<juror_id>.sd`), plus
    /// `disagreements` when they could not be looked for and `threshold` when the one asked for
    /// was unusable.
    pub reasons: BTreeMap<String, String>,
}

/// The agreement report of a round (see the [module docs](super) for the choices made).
pub fn agreement(data: &RoundData, options: &AgreementOptions) -> Agreement {
    let mut reasons = Reasons::default();
    let panel = Panel::new(data);

    let (mut ids, mut model, mut panel_values) = (Vec::new(), Vec::new(), Vec::new());
    for standing in standings_of(data, &panel) {
        let panel_value = standing.panel(options.normalise);
        if let (Some(m), Some(p)) = (standing.model_score, panel_value) {
            ids.push(standing.submission_id);
            model.push(m);
            panel_values.push(p);
        }
    }

    let threshold = if options.threshold.is_finite() && options.threshold >= 0.0 {
        options.threshold
    } else {
        reasons.note(
            "threshold",
            format!(
                "the threshold asked for is not a finite, non-negative number; {} was used",
                AgreementOptions::DEFAULT_THRESHOLD
            ),
        );
        AgreementOptions::DEFAULT_THRESHOLD
    };

    Agreement {
        n: ids.len(),
        normalise: options.normalise,
        model_vs_panel: model_vs_panel(
            &Pairs { model: &model, panel: &panel_values },
            &data.scale,
            &Resampling { resamples: options.resamples, seed: options.seed },
            &mut reasons,
        ),
        inter_juror: inter_juror(&panel, &mut reasons),
        jurors: juror_stats(&data.jurors, &panel, &mut reasons),
        disagreements: disagreements(&ids, &model, &panel_values, threshold, &mut reasons),
        threshold,
        reasons: reasons.into_map(),
    }
}
