//! How well the model agrees with a jury, and how well the jurors agree with each other.
//!
//! Easel scores every artwork of a round with a vision-language model while a jury of human
//! jurors scores the same entries. This crate turns those two sets of scores into the figures an
//! organiser needs to trust (or distrust) the model: the entries' standings, correlations between
//! the model and the panel, the jury's own reliability, each juror's leniency, and the entries
//! where the model and the panel part ways.
//!
//! - [`stats`] holds the plain statistics on slices of numbers (Pearson, Spearman, Kendall's tau-b,
//!   quadratic weighted kappa, ICC(2,1)/ICC(2,k), least squares, bootstrap intervals).
//! - [`round`] applies them to one jury round ([`round::standings`], [`round::agreement`],
//!   [`round::top_by`], [`round::recall`]).
//!
//! A figure that cannot be computed is never NaN: the statistics return [`Undefined`] with a
//! plain-English reason, and the round's outputs carry `null` and that reason, so the numbers can
//! go straight into JSON and onto a page. The crate is pure computation: no database, no HTTP.
//! Its results are checked against scipy, scikit-learn and pingouin by `tests/reference.rs`
//! (fixture made by `scripts/reference/jury_stats.py`).

pub mod round;
pub mod stats;
mod undefined;

pub use undefined::Undefined;
