//! Each juror's leniency, spread, and agreement with the rest of the jury.

use serde::Serialize;
use uuid::Uuid;

use super::input::Juror;
use super::panel::Panel;
use super::reasons::Reasons;
use crate::Undefined;
use crate::stats::{MIN_PAIRED, all_equal, mean, sample_sd, spearman};

/// One juror's scoring over the round.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct JurorStats {
    pub juror_id: Uuid,
    /// The juror's name.
    pub juror: String,
    /// How many entries the juror scored.
    pub n: usize,
    /// Above the other jurors' means: lenient; below: harsh.
    pub mean: Option<f64>,
    /// Sample standard deviation (ddof 1): how much of the scale the juror uses.
    pub sd: Option<f64>,
    /// Spearman correlation between the juror's scores and the mean of the other jurors' scores
    /// on the entries they share.
    pub vs_others_spearman: Option<f64>,
}

pub(super) fn juror_stats(jurors: &[Juror], panel: &Panel, reasons: &mut Reasons) -> Vec<JurorStats> {
    jurors
        .iter()
        .enumerate()
        .map(|(j, juror)| {
            let scores = panel.juror_scores(j);
            let key = |figure: &str| format!("jurors.{}.{figure}", juror.id);
            let mean = match scores.len() {
                0 => Err(Undefined::new("this juror scored no entry")),
                _ => mean(&scores),
            };
            let sd = match scores.len() {
                0 | 1 => Err(Undefined::new("this juror scored fewer than 2 entries")),
                _ => sample_sd(&scores),
            };
            let (mean, sd) = (reasons.keep(key("mean"), mean), reasons.keep(key("sd"), sd));
            let vs_others_spearman = reasons.keep(key("vs_others_spearman"), vs_others(panel, j));
            JurorStats { juror_id: juror.id, juror: juror.name.clone(), n: scores.len(), mean, sd, vs_others_spearman }
        })
        .collect()
}

/// Spearman between juror `juror`'s scores and the other jurors' mean, over the entries the juror
/// scored that someone else scored too.
fn vs_others(panel: &Panel, juror: usize) -> Result<f64, Undefined> {
    let (mut own, mut others) = (Vec::new(), Vec::new());
    for e in 0..panel.entries() {
        let Some(score) = panel.score(e, juror) else { continue };
        let rest: Vec<f64> = panel.entry_scores(e).filter(|&(j, _)| j != juror).map(|(_, s)| s).collect();
        if let Ok(rest) = mean(&rest) {
            own.push(score);
            others.push(rest);
        }
    }
    if own.len() < MIN_PAIRED {
        return Err(Undefined::new(format!(
            "fewer than {MIN_PAIRED} entries were scored by this juror and another ({} were)",
            own.len()
        )));
    }
    if all_equal(&own) {
        return Err(Undefined::new("this juror gave the same score to every entry others also scored"));
    }
    if all_equal(&others) {
        return Err(Undefined::new("the other jurors' mean is the same for every entry this juror scored"));
    }
    spearman(&own, &others)
}
