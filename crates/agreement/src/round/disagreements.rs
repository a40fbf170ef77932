//! The entries where the model and the panel part ways.

use serde::Serialize;
use uuid::Uuid;

use super::reasons::Reasons;
use crate::Undefined;
use crate::stats::{all_equal, z_scores};

/// An entry the model places far from where the panel does, each measured in standard deviations
/// from its own mean over the paired entries.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Disagreement {
    pub submission_id: Uuid,
    pub model_z: f64,
    pub panel_z: f64,
}

/// The entries whose model and panel z-scores differ by more than `threshold`, the largest gap
/// first (then by id, so the order is stable).
pub(super) fn disagreements(
    ids: &[Uuid],
    model: &[f64],
    panel: &[f64],
    threshold: f64,
    reasons: &mut Reasons,
) -> Vec<Disagreement> {
    let z = |values: &[f64], whose: &str| {
        if values.len() < 2 {
            return Err(Undefined::new("fewer than 2 entries have both a model score and a panel score"));
        }
        if all_equal(values) {
            return Err(Undefined::new(format!("the {whose} scores are all equal")));
        }
        z_scores(values)
    };
    let Some((model_z, panel_z)) =
        reasons.keep("disagreements", z(model, "model's").and_then(|m| z(panel, "panel's").map(|p| (m, p))))
    else {
        return Vec::new();
    };
    let mut found: Vec<Disagreement> = ids
        .iter()
        .zip(model_z.iter().zip(&panel_z))
        .filter(|(_, (m, p))| (*m - *p).abs() > threshold)
        .map(|(&submission_id, (&model_z, &panel_z))| Disagreement { submission_id, model_z, panel_z })
        .collect();
    let gap = |d: &Disagreement| (d.model_z - d.panel_z).abs();
    found.sort_by(|a, b| gap(b).total_cmp(&gap(a)).then(a.submission_id.cmp(&b.submission_id)));
    found
}
