//! Each entry's panel mean, raw and normalised for juror leniency.

use serde::Serialize;
use uuid::Uuid;

use super::input::{Normalise, RoundData, Scale};
use super::panel::Panel;
use crate::stats::{mean, sample_sd};

/// Where one entry stands with the jury and the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Standing {
    pub submission_id: Uuid,
    /// The plain mean of the entry's juror scores; null when nobody scored it.
    pub panel_mean: Option<f64>,
    /// The mean of the jurors' z-scores, mapped onto the round's scale (see the module docs);
    /// null when no juror with usable z-scores scored it.
    pub panel_mean_z: Option<f64>,
    /// How many jurors scored the entry.
    pub scores: usize,
    pub model_score: Option<f64>,
}

impl Standing {
    /// The panel's value for the entry: the raw mean, or the normalised one.
    pub fn panel(&self, normalise: Normalise) -> Option<f64> {
        match normalise {
            Normalise::None => self.panel_mean,
            Normalise::Z => self.panel_mean_z,
        }
    }
}

/// One [`Standing`] per entry, in the order of `data.entries`.
pub fn standings(data: &RoundData) -> Vec<Standing> {
    standings_of(data, &Panel::new(data))
}

pub(super) fn standings_of(data: &RoundData, panel: &Panel) -> Vec<Standing> {
    let leniency = Leniency::new(panel);
    data.entries
        .iter()
        .enumerate()
        .map(|(e, entry)| {
            let scores: Vec<f64> = panel.entry_scores(e).map(|(_, s)| s).collect();
            Standing {
                submission_id: entry.id,
                panel_mean: mean(&scores).ok(),
                panel_mean_z: leniency.normalised_mean(panel, e, &data.scale),
                scores: scores.len(),
                model_score: entry.model.filter(|m| m.is_finite()),
            }
        })
        .collect()
}

/// Each juror's mean and standard deviation over the round, where both are usable for z-scores,
/// and the round's typical mean and spread for mapping z back onto the scale.
struct Leniency {
    jurors: Vec<Option<(f64, f64)>>,
    centre: f64,
    spread: f64,
}

impl Leniency {
    fn new(panel: &Panel) -> Self {
        let jurors: Vec<Option<(f64, f64)>> = (0..panel.jurors())
            .map(|j| {
                let scores = panel.juror_scores(j);
                match (mean(&scores), sample_sd(&scores)) {
                    (Ok(m), Ok(sd)) if sd > 0.0 => Some((m, sd)),
                    _ => None,
                }
            })
            .collect();
        let usable: Vec<(f64, f64)> = jurors.iter().flatten().copied().collect();
        // Left at 0 when no juror is usable: then no entry has a z-score to map.
        let centre = mean(&usable.iter().map(|u| u.0).collect::<Vec<_>>()).unwrap_or(0.0);
        let spread = mean(&usable.iter().map(|u| u.1).collect::<Vec<_>>()).unwrap_or(0.0);
        Self { jurors, centre, spread }
    }

    fn normalised_mean(&self, panel: &Panel, entry: usize, scale: &Scale) -> Option<f64> {
        let z: Vec<f64> =
            panel.entry_scores(entry).filter_map(|(j, s)| self.jurors[j].map(|(m, sd)| (s - m) / sd)).collect();
        let mapped = self.centre + mean(&z).ok()? * self.spread;
        mapped.is_finite().then(|| scale.clamp(mapped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round::input::{Entry, Juror, JurorScore};

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// Juror 1 is lenient (+2), juror 2 gives 5 to everything, juror 3 scored once.
    fn round() -> RoundData {
        let scores = [(1, 1, 6.0), (2, 1, 8.0), (3, 1, 10.0), (1, 2, 5.0), (2, 2, 5.0), (3, 2, 5.0), (2, 3, 7.0)];
        RoundData {
            scale: Scale { min: 1, max: 10 },
            entries: (1..=4).map(|e| Entry { id: id(e), model: Some(10.0 * e as f64) }).collect(),
            jurors: (1..=3).map(|j| Juror { id: id(100 + j), name: format!("J{j}") }).collect(),
            scores: scores
                .iter()
                .map(|&(e, j, score)| JurorScore { entry: id(e), juror: id(100 + j), score })
                .collect(),
        }
    }

    #[test]
    fn raw_and_normalised_means() {
        let s = standings(&round());
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].panel_mean, Some(5.5));
        assert_eq!(s[1].scores, 3);
        assert!((s[1].panel_mean.unwrap() - 20.0 / 3.0).abs() < 1e-12);
        // Only juror 1 has usable z-scores: -1, 0, 1 around centre 8 with spread 2.
        assert_eq!(s[0].panel_mean_z, Some(6.0));
        assert_eq!(s[1].panel_mean_z, Some(8.0));
        assert_eq!(s[2].panel_mean_z, Some(10.0));
        assert_eq!((s[3].panel_mean, s[3].panel_mean_z, s[3].scores), (None, None, 0));
    }

    #[test]
    fn normalised_mean_is_clamped_to_the_scale() {
        let mut data = round();
        data.scale = Scale { min: 1, max: 9 };
        assert_eq!(standings(&data)[2].panel_mean_z, Some(9.0));
    }

    #[test]
    fn unknown_ids_and_non_finite_values_are_ignored() {
        let mut data = round();
        data.scores.push(JurorScore { entry: id(99), juror: id(101), score: 1.0 });
        data.scores.push(JurorScore { entry: id(1), juror: id(999), score: 1.0 });
        data.scores.push(JurorScore { entry: id(4), juror: id(101), score: f64::NAN });
        data.entries[3].model = Some(f64::INFINITY);
        let s = standings(&data);
        assert_eq!(s[0].panel_mean, Some(5.5));
        assert_eq!((s[3].scores, s[3].model_score), (0, None));
    }
}
