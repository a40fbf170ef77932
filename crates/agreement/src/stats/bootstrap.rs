//! Percentile bootstrap confidence intervals.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::checks::order;
use crate::Undefined;

/// The 95 % percentile interval of `statistic` over `resamples` resamples, with replacement, of
/// the indices `0..n`.
///
/// Seeded, so the same call gives the same interval (within one build: `StdRng`'s stream may
/// change between rand releases). Resamples on which the statistic is undefined (a resample of a
/// small round can easily be constant) are skipped; if more than half are, the interval is
/// undefined, as it would describe an unusual minority of resamples. The percentiles interpolate
/// linearly between order statistics, like `numpy.percentile`.
pub fn bootstrap_ci(
    n: usize,
    resamples: usize,
    seed: u64,
    statistic: impl Fn(&[usize]) -> Result<f64, Undefined>,
) -> Result<[f64; 2], Undefined> {
    if n == 0 {
        return Err(Undefined::new("there is nothing to resample"));
    }
    if resamples == 0 {
        return Err(Undefined::new("no bootstrap resamples were asked for"));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut indices = vec![0; n];
    let mut values = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for index in indices.iter_mut() {
            *index = rng.random_range(0..n);
        }
        if let Ok(value) = statistic(&indices)
            && value.is_finite()
        {
            values.push(value);
        }
    }
    if 2 * values.len() < resamples {
        return Err(Undefined::new(format!(
            "the figure is undefined on {} of {resamples} bootstrap resamples",
            resamples - values.len()
        )));
    }
    values.sort_by(|a, b| order(*a, *b));
    Ok([percentile(&values, 2.5), percentile(&values, 97.5)])
}

/// The `p`-th percentile of sorted, non-empty `values`, interpolating linearly.
fn percentile(values: &[f64], p: f64) -> f64 {
    let position = p / 100.0 * (values.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(values.len() - 1);
    values[below] + (position - below as f64) * (values[above] - values[below])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::mean;

    fn mean_of(data: &[f64]) -> impl Fn(&[usize]) -> Result<f64, Undefined> + '_ {
        move |idx| mean(&idx.iter().map(|&i| data[i]).collect::<Vec<_>>())
    }

    #[test]
    fn interval_is_ordered_deterministic_and_covers_the_mean() {
        let data: Vec<f64> = (0..50).map(|i| f64::from(i % 7) + f64::from(i) / 10.0).collect();
        let ci = bootstrap_ci(data.len(), 1000, 7, mean_of(&data)).unwrap();
        let point = mean(&data).unwrap();
        assert!(ci[0] <= point && point <= ci[1], "{ci:?} {point}");
        assert_eq!(ci, bootstrap_ci(data.len(), 1000, 7, mean_of(&data)).unwrap());
        assert_ne!(ci, bootstrap_ci(data.len(), 1000, 8, mean_of(&data)).unwrap());
    }

    #[test]
    fn mostly_undefined_resamples_make_the_interval_undefined() {
        let never = |_: &[usize]| Err(Undefined::new("never"));
        assert!(bootstrap_ci(10, 100, 1, never).is_err());
        assert!(bootstrap_ci(0, 100, 1, |_| Ok(1.0)).is_err());
        assert!(bootstrap_ci(10, 0, 1, |_| Ok(1.0)).is_err());
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 97.5]) == [1.075, 3.925]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&v, 2.5) - 1.075).abs() < 1e-12);
        assert!((percentile(&v, 97.5) - 3.925).abs() < 1e-12);
    }
}
