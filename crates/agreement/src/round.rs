//! The analysis of one jury round: standings, model–panel agreement, the jury's reliability.
//!
//! A round is a set of entries on one integer scale (say 1–10). The model has scored some of
//! them on its own 1–100 scale; jurors have scored some of them on the round's scale. The caller
//! has already left out scores a juror gave despite a conflict of interest.
//!
//! # Choices, in plain words
//!
//! - **What counts.** Only scores for entries listed in the round, from jurors listed in the
//!   round, with a finite value, are used. If a juror scored an entry twice the later score
//!   counts. A model score that is not a finite number counts as missing.
//! - **Panel mean.** An entry's panel mean is the plain mean of its jurors' scores.
//! - **Normalised panel mean.** Jurors differ in leniency: one gives 8s where another gives 5s.
//!   To take that out, each juror's scores are turned into z-scores against that juror's own
//!   mean and sample standard deviation over the whole round. A juror with fewer than 2 scores,
//!   or who gave every entry the same score, has no usable z-scores; their scores are left out
//!   of the normalised mean (not counted as 0, which would pull entries toward the middle). An
//!   entry's z-scores are averaged and mapped back onto the round's scale, so the number reads
//!   like a score: `centre + mean z · spread`, where `centre` is the mean of the usable jurors'
//!   means and `spread` the mean of their standard deviations. It is clamped to the scale. An
//!   entry scored only by jurors without usable z-scores has no normalised mean.
//! - **Model against panel.** Compared over the entries with both a model score and a panel
//!   value (the panel mean, or the normalised one when asked). The model's scale differs from
//!   the jury's, so the error and kappa compare the panel with the *calibrated* model: the
//!   least-squares line `panel ≈ slope · model + intercept` fitted on the same entries. For
//!   kappa both are rounded to whole points (halves away from zero) and clamped to the scale.
//! - **Intervals.** 95 % percentile bootstrap over the paired entries, refitting the calibration
//!   in every resample, seeded for repeatable reports.
//! - **Jury reliability.** ICC(2,1) and ICC(2,k) need every juror to have scored every entry
//!   used, so they use the jurors who scored anything and only the entries all of them scored
//!   (like pingouin's `nan_policy="omit"`); the counts used are reported.
//! - **Each juror.** How many entries, their mean and standard deviation (leniency and spread),
//!   and the Spearman correlation between their scores and the mean of the *other* jurors'
//!   scores on the same entries: a juror who ranks unlike everyone else shows up here.
//! - **Disagreements.** Entries where the model's and the panel's z-scores (among the paired
//!   entries) differ by more than the threshold, the largest first.
//! - **Nothing is NaN.** A figure that cannot be computed is `null`, and `reasons` says why under
//!   the figure's name.

mod agreement;
mod disagreements;
mod input;
mod inter_juror;
mod jurors;
mod model_vs_panel;
mod panel;
mod ranking;
mod reasons;
mod standings;

pub use agreement::{Agreement, AgreementOptions, agreement};
pub use disagreements::Disagreement;
pub use input::{Entry, Juror, JurorScore, Normalise, RoundData, Scale};
pub use inter_juror::InterJuror;
pub use jurors::JurorStats;
pub use model_vs_panel::{ModelCi, ModelVsPanel};
pub use ranking::{panel_top, recall, top_by};
pub use standings::{Standing, standings};
