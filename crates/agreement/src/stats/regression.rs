//! A straight line fitted by least squares, and the mean absolute error.

use serde::{Deserialize, Serialize};

use super::checks::{all_equal, finite, finite_result, paired, plain_mean};
use crate::Undefined;

/// `y ≈ slope · x + intercept`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct LinearFit {
    pub slope: f64,
    pub intercept: f64,
}

impl LinearFit {
    /// The fitted y for `x`.
    pub fn apply(&self, x: f64) -> f64 {
        self.slope * x + self.intercept
    }
}

/// The least-squares line through the points (like `numpy.polyfit(x, y, 1)`).
///
/// Undefined when x does not vary (the line would be vertical). A constant y gives slope exactly
/// 0, where rounding of the mean would otherwise leave a tiny slope.
pub fn least_squares(x: &[f64], y: &[f64]) -> Result<LinearFit, Undefined> {
    paired(x, y)?;
    if all_equal(x) {
        return Err(Undefined::new("the first series' values are all equal"));
    }
    if all_equal(y) {
        return Ok(LinearFit { slope: 0.0, intercept: y[0] });
    }
    let (mx, my) = (plain_mean(x), plain_mean(y));
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
    }
    let slope = finite_result(sxy / sxx)?;
    let intercept = finite_result(my - slope * mx)?;
    Ok(LinearFit { slope, intercept })
}

/// The mean absolute difference between paired values.
pub fn mae(a: &[f64], b: &[f64]) -> Result<f64, Undefined> {
    if a.len() != b.len() {
        return Err(Undefined::new("the two series differ in length"));
    }
    if a.is_empty() {
        return Err(Undefined::new("there are no values"));
    }
    finite(a)?;
    finite(b)?;
    finite_result(a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_line() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let y: Vec<f64> = x.iter().map(|v| 0.5 * v - 2.0).collect();
        let fit = least_squares(&x, &y).unwrap();
        assert!((fit.slope - 0.5).abs() < 1e-12 && (fit.intercept + 2.0).abs() < 1e-12);
        assert!((fit.apply(10.0) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn vertical_lines_and_short_series_are_undefined() {
        assert!(least_squares(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]).is_err());
        assert!(least_squares(&[1.0, 2.0], &[1.0, 2.0]).is_err());
        assert_eq!(
            least_squares(&[1.0, 2.0, 3.0], &[0.1, 0.1, 0.1]).unwrap(),
            LinearFit { slope: 0.0, intercept: 0.1 }
        );
    }

    #[test]
    fn mae_is_the_mean_absolute_difference() {
        assert_eq!(mae(&[1.0, 2.0, 3.0], &[2.0, 2.0, 1.0]).unwrap(), 1.0);
        assert!(mae(&[], &[]).is_err());
        assert!(mae(&[1.0], &[1.0, 2.0]).is_err());
    }
}
