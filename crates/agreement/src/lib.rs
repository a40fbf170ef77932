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
//! - [`calibration`] maps zero-shot model scores onto a jury's scale (isotonic or linear, with
//!   cross-validated error), for `easel.json`, `easel calibrate` and the API.
//! - [`versions`] compares two model versions' leaderboards ([`versions::compare`]).
//!
//! A figure that cannot be computed is never NaN: the statistics return [`Undefined`] with a
//! plain-English reason, and the round's outputs carry `null` and that reason, so the numbers can
//! go straight into JSON and onto a page. The crate is pure computation: no database, no HTTP.
//! Its results are checked against scipy, scikit-learn and pingouin by `tests/reference.rs`
//! (fixture made by `scripts/reference/jury_stats.py`).
//!
//! ```
//! use easel_agreement::round::{agreement, AgreementOptions, Entry, Juror, JurorScore, RoundData, Scale};
//! use uuid::Uuid;
//!
//! let entries: Vec<Entry> =
//!     [12.0, 40.0, 55.0, 71.0, 90.0].iter().map(|&m| Entry { id: Uuid::new_v4(), model: Some(m) }).collect();
//! let jurors = vec![Juror { id: Uuid::new_v4(), name: "Ada".into() }, Juror { id: Uuid::new_v4(), name: "Bea".into() }];
//! let mut scores = Vec::new();
//! for (entry, (a, b)) in entries.iter().zip([(2.0, 3.0), (4.0, 6.0), (6.0, 6.0), (7.0, 9.0), (9.0, 10.0)]) {
//!     scores.push(JurorScore { entry: entry.id, juror: jurors[0].id, score: a });
//!     scores.push(JurorScore { entry: entry.id, juror: jurors[1].id, score: b });
//! }
//! let round = RoundData { scale: Scale { min: 1, max: 10 }, entries, jurors, scores };
//!
//! let report = agreement(&round, &AgreementOptions::default());
//! assert_eq!(report.n, 5);
//! assert!(report.model_vs_panel.spearman.unwrap() > 0.99);
//! // Every figure could be computed here; a missing one would be null, explained under its name.
//! assert!(report.reasons.is_empty(), "{:?}", report.reasons);
//! # println!("{}", serde_json::to_string_pretty(&report).unwrap());
//! ```

pub mod calibration;
pub mod round;
pub mod stats;
mod undefined;
pub mod versions;

pub use undefined::Undefined;
