//! How closely the model's scores follow the panel's.

use serde::Serialize;

use super::input::Scale;
use super::reasons::Reasons;
use crate::Undefined;
use crate::stats::{
    LinearFit, MIN_PAIRED, all_equal, bootstrap_ci, kendall_tau_b, least_squares, mae, pearson,
    quadratic_weighted_kappa, spearman,
};

/// The model against the panel over the entries both scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ModelVsPanel {
    pub pearson: Option<f64>,
    pub spearman: Option<f64>,
    /// Kendall's tau-b.
    pub kendall: Option<f64>,
    /// Mean absolute difference between the calibrated model and the panel, in points of the
    /// round's scale.
    pub mae_calibrated: Option<f64>,
    /// Quadratic weighted kappa between the calibrated model and the panel, both rounded to
    /// whole points of the scale.
    pub qwk: Option<f64>,
    /// `panel ≈ slope · model + intercept`, fitted by least squares.
    pub calibration: Option<LinearFit>,
    pub ci95: ModelCi,
}

/// Bootstrap 95 % intervals, `[low, high]`, for the figures of [`ModelVsPanel`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ModelCi {
    pub pearson: Option<[f64; 2]>,
    pub spearman: Option<[f64; 2]>,
    pub kendall: Option<[f64; 2]>,
    pub mae_calibrated: Option<[f64; 2]>,
    pub qwk: Option<[f64; 2]>,
}

/// The model's and the panel's values for the entries both scored.
pub(super) struct Pairs<'a> {
    pub model: &'a [f64],
    pub panel: &'a [f64],
}

/// How the bootstrap is run.
pub(super) struct Resampling {
    pub resamples: usize,
    pub seed: u64,
}

pub(super) fn model_vs_panel(
    pairs: &Pairs,
    scale: &Scale,
    resampling: &Resampling,
    reasons: &mut Reasons,
) -> ModelVsPanel {
    let calibration = reasons.keep("model_vs_panel.calibration", calibrate(pairs.model, pairs.panel));
    let mut point = |figure: Figure| {
        reasons.keep(format!("model_vs_panel.{}", figure.name()), figure.compute(pairs.model, pairs.panel, scale))
    };
    let [pearson, spearman, kendall, mae_calibrated, qwk] = Figure::ALL.map(&mut point);

    let interval = |figure: Figure| {
        let (model, panel) = (pairs.model, pairs.panel);
        // Not worth resampling a figure the full data cannot give; its reason says why.
        figure.compute(model, panel, scale)?;
        bootstrap_ci(model.len(), resampling.resamples, resampling.seed, |indices| {
            let model: Vec<f64> = indices.iter().map(|&i| model[i]).collect();
            let panel: Vec<f64> = indices.iter().map(|&i| panel[i]).collect();
            figure.compute(&model, &panel, scale)
        })
    };
    let [ci_pearson, ci_spearman, ci_kendall, ci_mae, ci_qwk] =
        Figure::ALL.map(|figure| reasons.keep(format!("model_vs_panel.ci95.{}", figure.name()), interval(figure)));

    ModelVsPanel {
        pearson,
        spearman,
        kendall,
        mae_calibrated,
        qwk,
        calibration,
        ci95: ModelCi {
            pearson: ci_pearson,
            spearman: ci_spearman,
            kendall: ci_kendall,
            mae_calibrated: ci_mae,
            qwk: ci_qwk,
        },
    }
}

/// The figures that get a point estimate and a bootstrap interval.
#[derive(Debug, Clone, Copy)]
enum Figure {
    Pearson,
    Spearman,
    Kendall,
    MaeCalibrated,
    Qwk,
}

impl Figure {
    const ALL: [Figure; 5] = [Figure::Pearson, Figure::Spearman, Figure::Kendall, Figure::MaeCalibrated, Figure::Qwk];

    /// The field's name in [`ModelVsPanel`] and [`ModelCi`].
    fn name(self) -> &'static str {
        match self {
            Figure::Pearson => "pearson",
            Figure::Spearman => "spearman",
            Figure::Kendall => "kendall",
            Figure::MaeCalibrated => "mae_calibrated",
            Figure::Qwk => "qwk",
        }
    }

    fn compute(self, model: &[f64], panel: &[f64], scale: &Scale) -> Result<f64, Undefined> {
        match self {
            Figure::Pearson => correlated(model, panel).and_then(|()| pearson(model, panel)),
            Figure::Spearman => correlated(model, panel).and_then(|()| spearman(model, panel)),
            Figure::Kendall => correlated(model, panel).and_then(|()| kendall_tau_b(model, panel)),
            Figure::MaeCalibrated => {
                let fit = calibrate(model, panel)?;
                mae(&model.iter().map(|&m| fit.apply(m)).collect::<Vec<_>>(), panel)
            }
            Figure::Qwk => {
                let fit = calibrate(model, panel)?;
                let model: Vec<i64> = model.iter().map(|&m| scale.whole_points(fit.apply(m))).collect();
                let panel: Vec<i64> = panel.iter().map(|&p| scale.whole_points(p)).collect();
                quadratic_weighted_kappa(&model, &panel, scale.min, scale.max)
            }
        }
    }
}

/// The least-squares line from the model's scale to the panel's, with reasons in the round's
/// words.
fn calibrate(model: &[f64], panel: &[f64]) -> Result<LinearFit, Undefined> {
    enough(model)?;
    if all_equal(model) {
        return Err(Undefined::new("the model's scores are all equal"));
    }
    least_squares(model, panel)
}

/// A correlation's preconditions, with reasons in the round's words.
fn correlated(model: &[f64], panel: &[f64]) -> Result<(), Undefined> {
    enough(model)?;
    if all_equal(model) {
        return Err(Undefined::new("the model's scores are all equal"));
    }
    if all_equal(panel) {
        return Err(Undefined::new("the panel's scores are all equal"));
    }
    Ok(())
}

fn enough(model: &[f64]) -> Result<(), Undefined> {
    if model.len() < MIN_PAIRED {
        return Err(Undefined::new(format!(
            "fewer than {MIN_PAIRED} entries have both a model score and a panel score ({} do)",
            model.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(model: &[f64], panel: &[f64]) -> (ModelVsPanel, std::collections::BTreeMap<String, String>) {
        let mut reasons = Reasons::default();
        let result = model_vs_panel(
            &Pairs { model, panel },
            &Scale { min: 1, max: 10 },
            &Resampling { resamples: 200, seed: 1 },
            &mut reasons,
        );
        (result, reasons.into_map())
    }

    #[test]
    fn a_perfectly_calibrated_model_agrees_fully() {
        let model = [10.0, 30.0, 50.0, 70.0, 90.0];
        let panel = [1.0, 3.0, 5.0, 7.0, 9.0];
        let (m, reasons) = run(&model, &panel);
        assert!((m.pearson.unwrap() - 1.0).abs() < 1e-12);
        assert!(m.mae_calibrated.unwrap() < 1e-12);
        assert_eq!(m.qwk, Some(1.0));
        let fit = m.calibration.unwrap();
        assert!((fit.slope - 0.1).abs() < 1e-12 && fit.intercept.abs() < 1e-12);
        assert!(reasons.is_empty(), "{reasons:?}");
    }

    #[test]
    fn a_constant_model_explains_every_missing_figure() {
        let (m, reasons) = run(&[50.0; 4], &[1.0, 3.0, 5.0, 7.0]);
        assert_eq!((m.pearson, m.qwk, m.calibration), (None, None, None));
        assert_eq!(reasons["model_vs_panel.pearson"], "the model's scores are all equal");
        assert_eq!(reasons["model_vs_panel.ci95.mae_calibrated"], "the model's scores are all equal");
        assert_eq!(reasons.len(), 11);
    }

    #[test]
    fn too_few_pairs() {
        let (m, reasons) = run(&[1.0, 2.0], &[1.0, 2.0]);
        assert_eq!(m.spearman, None);
        assert!(reasons["model_vs_panel.spearman"].starts_with("fewer than 3 entries"));
    }
}
