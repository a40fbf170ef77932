//! Statistics on slices of numbers, each checked against scipy, scikit-learn or pingouin.
//!
//! Every function returns `Result<_, Undefined>` instead of NaN. The rules:
//! - inputs must be finite and, for paired figures, of equal length;
//! - correlations, kappa, ICC and least squares need at least [`MIN_PAIRED`] values: with two
//!   points every correlation is ±1 and every line fits exactly, which says nothing;
//! - where a formula divides by a variance, an input whose values are all equal is undefined
//!   (tested by equality, not by a variance that rounding may leave a hair above zero).

mod bootstrap;
mod checks;
mod correlation;
mod describe;
mod icc;
mod kappa;
mod regression;

pub use bootstrap::bootstrap_ci;
pub(crate) use checks::all_equal;
pub use correlation::{kendall_tau_b, pearson, ranks, spearman};
pub use describe::{mean, sample_sd, z_scores};
pub use icc::{Icc, icc2};
pub use kappa::quadratic_weighted_kappa;
pub use regression::{LinearFit, least_squares, mae};

/// The fewest paired values a correlation, kappa, ICC or fitted line is computed from.
pub const MIN_PAIRED: usize = 3;
