//! Input checks shared by the statistics, so each states its preconditions in one line.

use std::cmp::Ordering;

use super::MIN_PAIRED;
use crate::Undefined;

/// Refuses NaN and infinities, which would otherwise flow silently into every sum.
pub(super) fn finite(values: &[f64]) -> Result<(), Undefined> {
    if values.iter().all(|v| v.is_finite()) { Ok(()) } else { Err(Undefined::new("a value is not a finite number")) }
}

/// Two finite series of the same length with at least [`MIN_PAIRED`] pairs.
pub(super) fn paired(x: &[f64], y: &[f64]) -> Result<(), Undefined> {
    if x.len() != y.len() {
        return Err(Undefined::new("the two series differ in length"));
    }
    if x.len() < MIN_PAIRED {
        return Err(Undefined::new(format!("fewer than {MIN_PAIRED} paired values")));
    }
    finite(x)?;
    finite(y)
}

/// Whether every value equals the first (true for an empty slice).
pub(crate) fn all_equal(values: &[f64]) -> bool {
    values.windows(2).all(|w| w[0] == w[1])
}

/// Neither series may be constant: the formula divides by its variance.
pub(super) fn varying(x: &[f64], y: &[f64]) -> Result<(), Undefined> {
    if all_equal(x) {
        return Err(Undefined::new("the first series' values are all equal"));
    }
    if all_equal(y) {
        return Err(Undefined::new("the second series' values are all equal"));
    }
    Ok(())
}

/// A computed figure, unless rounding (underflow, overflow) made it meaningless.
pub(super) fn finite_result(value: f64) -> Result<f64, Undefined> {
    if value.is_finite() { Ok(value) } else { Err(Undefined::new("the values are too extreme to compute with")) }
}

/// Orders finite numbers (the callers have checked they are finite).
pub(super) fn order(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// The arithmetic mean of a non-empty slice.
pub(super) fn plain_mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}
