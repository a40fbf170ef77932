//! Cohen's kappa with quadratic weights, for integer scores on a scale.

use crate::Undefined;

use super::MIN_PAIRED;

/// Cohen's quadratic weighted kappa between two raters' integer scores on the categories
/// `min..=max` (like `sklearn.metrics.cohen_kappa_score(a, b, weights="quadratic",
/// labels=range(min, max + 1))`).
///
/// With weights (i − j)², the weighted sums over the confusion matrix and over its chance
/// expectation reduce to sums over the scores themselves:
/// κ = 1 − n·Σₖ(aₖ − bₖ)² / Σₖ Σₗ (aₖ − bₗ)², so no k×k matrix is built and the arithmetic is
/// exact (integers). A score outside the scale is refused rather than dropped as sklearn would.
pub fn quadratic_weighted_kappa(a: &[i64], b: &[i64], min: i64, max: i64) -> Result<f64, Undefined> {
    if a.len() != b.len() {
        return Err(Undefined::new("the two series differ in length"));
    }
    if a.len() < MIN_PAIRED {
        return Err(Undefined::new(format!("fewer than {MIN_PAIRED} paired values")));
    }
    if min >= max {
        return Err(Undefined::new("the scale has a single category"));
    }
    if a.iter().chain(b).any(|v| !(min..=max).contains(v)) {
        return Err(Undefined::new("a score lies outside the scale"));
    }
    let overflow = || Undefined::new("the scores are too large to compute with");
    // Measured from the bottom of the scale, which leaves the differences unchanged and keeps the
    // squares small.
    let shift = |v: &i64| i128::from(*v) - i128::from(min);
    let n = a.len() as i128;
    let (mut sum_a, mut sum_b, mut squares_a, mut squares_b, mut observed) = (0i128, 0i128, 0i128, 0i128, 0i128);
    for (x, y) in a.iter().map(shift).zip(b.iter().map(shift)) {
        sum_a = sum_a.checked_add(x).ok_or_else(overflow)?;
        sum_b = sum_b.checked_add(y).ok_or_else(overflow)?;
        squares_a = squares_a.checked_add(x.checked_mul(x).ok_or_else(overflow)?).ok_or_else(overflow)?;
        squares_b = squares_b.checked_add(y.checked_mul(y).ok_or_else(overflow)?).ok_or_else(overflow)?;
        observed = observed.checked_add((x - y).checked_mul(x - y).ok_or_else(overflow)?).ok_or_else(overflow)?;
    }
    // Σₖ Σₗ (aₖ − bₗ)² = n·Σa² + n·Σb² − 2·Σa·Σb
    let expected = (|| {
        n.checked_mul(squares_a)?
            .checked_add(n.checked_mul(squares_b)?)?
            .checked_sub(sum_a.checked_mul(sum_b)?.checked_mul(2)?)
    })()
    .ok_or_else(overflow)?;
    if expected == 0 {
        return Err(Undefined::new("both raters gave every entry the same score, so chance agreement is perfect"));
    }
    let observed = n.checked_mul(observed).ok_or_else(overflow)?;
    Ok(1.0 - observed as f64 / expected as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sklearn() {
        // cohen_kappa_score([1,2,3,4,5,3], [1,3,3,5,4,2], weights="quadratic", labels=range(1,6))
        let k = quadratic_weighted_kappa(&[1, 2, 3, 4, 5, 3], &[1, 3, 3, 5, 4, 2], 1, 5).unwrap();
        assert!((k - 0.8).abs() < 1e-12, "{k}");
    }

    #[test]
    fn perfect_agreement_is_one_and_constant_disagreement_zero() {
        assert_eq!(quadratic_weighted_kappa(&[1, 2, 3], &[1, 2, 3], 1, 5).unwrap(), 1.0);
        assert_eq!(quadratic_weighted_kappa(&[2, 2, 2], &[1, 3, 5], 1, 5).unwrap(), 0.0);
    }

    #[test]
    fn degenerate_inputs_are_undefined() {
        assert!(quadratic_weighted_kappa(&[3, 3, 3], &[3, 3, 3], 1, 5).is_err());
        assert!(quadratic_weighted_kappa(&[1, 2, 6], &[1, 2, 3], 1, 5).is_err());
        assert!(quadratic_weighted_kappa(&[1, 2], &[1, 2], 1, 5).is_err());
        assert!(quadratic_weighted_kappa(&[1, 1, 1], &[1, 1, 1], 1, 1).is_err());
    }

    #[test]
    fn extreme_scales_do_not_overflow_or_panic() {
        let k = quadratic_weighted_kappa(&[i64::MIN, 0, i64::MAX], &[i64::MAX, 0, i64::MIN], i64::MIN, i64::MAX);
        assert!(k.map_or(true, f64::is_finite));
    }
}
