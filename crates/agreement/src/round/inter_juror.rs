//! How well the jurors agree with each other.

use serde::Serialize;

use super::panel::Panel;
use super::reasons::Reasons;
use crate::Undefined;
use crate::stats::{MIN_PAIRED, all_equal, icc2};

/// The jury's reliability: ICC(2,1) (one juror's score) and ICC(2,k) (the panel mean), over
/// `jurors` jurors and the `entries` entries every one of them scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct InterJuror {
    pub icc2_1: Option<f64>,
    pub icc2_k: Option<f64>,
    pub entries: usize,
    pub jurors: usize,
}

/// ICC over the complete cases: the jurors who scored anything, the entries all of them scored.
pub(super) fn inter_juror(panel: &Panel, reasons: &mut Reasons) -> InterJuror {
    let jurors: Vec<usize> = (0..panel.jurors()).filter(|&j| !panel.juror_scores(j).is_empty()).collect();
    // Without jurors no entry is a case at all (rather than every entry a vacuously complete one).
    let entries = if jurors.is_empty() { 0 } else { panel.entries() };
    let matrix: Vec<Vec<f64>> =
        (0..entries).filter_map(|e| jurors.iter().map(|&j| panel.score(e, j)).collect::<Option<Vec<f64>>>()).collect();
    let icc = if jurors.len() < 2 {
        Err(Undefined::new(if jurors.is_empty() { "no juror scored" } else { "only one juror scored" }))
    } else if matrix.len() < MIN_PAIRED {
        Err(Undefined::new(format!(
            "fewer than {MIN_PAIRED} entries were scored by every juror ({} were)",
            matrix.len()
        )))
    } else if all_equal(&matrix.concat()) {
        Err(Undefined::new("every juror gave every entry used the same score"))
    } else {
        icc2(&matrix)
    };
    let (icc2_1, icc2_k) = match icc {
        Ok(icc) => (Some(icc.icc2_1), Some(icc.icc2_k)),
        Err(why) => {
            reasons.note("inter_juror.icc2_1", why.reason());
            reasons.note("inter_juror.icc2_k", why.reason());
            (None, None)
        }
    };
    InterJuror { icc2_1, icc2_k, entries: matrix.len(), jurors: jurors.len() }
}
