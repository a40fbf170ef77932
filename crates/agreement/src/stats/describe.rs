//! Mean, sample standard deviation and z-scores.

use super::checks::{all_equal, finite, finite_result, plain_mean};
use crate::Undefined;

/// The arithmetic mean.
pub fn mean(values: &[f64]) -> Result<f64, Undefined> {
    if values.is_empty() {
        return Err(Undefined::new("there are no values"));
    }
    finite(values)?;
    finite_result(plain_mean(values))
}

/// The sample standard deviation (ddof 1, like `numpy.std(x, ddof=1)`).
///
/// Exactly 0 when all values are equal, where the rounding of the mean could otherwise leave a
/// tiny positive number.
pub fn sample_sd(values: &[f64]) -> Result<f64, Undefined> {
    if values.len() < 2 {
        return Err(Undefined::new("fewer than 2 values"));
    }
    finite(values)?;
    if all_equal(values) {
        return Ok(0.0);
    }
    let m = plain_mean(values);
    let squares: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    finite_result((squares / (values.len() - 1) as f64).sqrt())
}

/// Each value's distance from the mean in sample standard deviations.
pub fn z_scores(values: &[f64]) -> Result<Vec<f64>, Undefined> {
    let sd = sample_sd(values)?;
    if sd == 0.0 {
        return Err(Undefined::new("the values are all equal"));
    }
    let m = plain_mean(values);
    values.iter().map(|v| finite_result((v - m) / sd)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sd_match_hand_computation() {
        let v = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&v).unwrap(), 5.0);
        // Σ(x−5)² = 32, / 7
        assert!((sample_sd(&v).unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn constant_values_have_zero_sd_and_no_z_scores() {
        let v = [0.1, 0.1, 0.1];
        assert_eq!(sample_sd(&v).unwrap(), 0.0);
        assert!(z_scores(&v).is_err());
    }

    #[test]
    fn too_few_or_non_finite_values_are_undefined() {
        assert!(mean(&[]).is_err());
        assert!(sample_sd(&[1.0]).is_err());
        assert!(mean(&[1.0, f64::NAN]).is_err());
        assert!(sample_sd(&[1.0, f64::INFINITY]).is_err());
    }

    #[test]
    fn z_scores_have_mean_zero_and_sd_one() {
        let z = z_scores(&[1.0, 2.0, 3.0, 10.0]).unwrap();
        assert!(mean(&z).unwrap().abs() < 1e-12);
        assert!((sample_sd(&z).unwrap() - 1.0).abs() < 1e-12);
    }
}
