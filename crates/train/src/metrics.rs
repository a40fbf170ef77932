//! Agreement statistics: Pearson and Spearman correlation, MAE, RMSE, percentile bootstrap
//! confidence intervals, quadratic weighted kappa on score bands, pairwise ordering accuracy,
//! and the seeded derangements the critique control pairs critiques with.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::split::score_band;

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn to_f64(xs: &[f32]) -> Vec<f64> {
    xs.iter().map(|&x| f64::from(x)).collect()
}

fn pearson64(x: &[f64], y: &[f64]) -> f64 {
    if x.len() != y.len() || x.len() < 2 {
        return f64::NAN;
    }
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 { f64::NAN } else { sxy / (sxx * syy).sqrt() }
}

/// Pearson's r; NaN for fewer than two pairs or a constant side.
pub fn pearson(x: &[f32], y: &[f32]) -> f64 {
    pearson64(&to_f64(x), &to_f64(y))
}

/// Ranks starting at 1, ties sharing their mean rank.
pub fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut out = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Spearman's ρ: Pearson's r of the ranks (ties averaged).
pub fn spearman(x: &[f32], y: &[f32]) -> f64 {
    pearson64(&ranks(&to_f64(x)), &ranks(&to_f64(y)))
}

pub fn mae(x: &[f32], y: &[f32]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    x.iter().zip(y).map(|(a, b)| f64::from((a - b).abs())).sum::<f64>() / x.len() as f64
}

pub fn rmse(x: &[f32], y: &[f32]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    (x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Cohen's kappa with quadratic weights between two ratings in `0..categories`.
pub fn quadratic_weighted_kappa(a: &[usize], b: &[usize], categories: usize) -> f64 {
    let n = a.len();
    if n == 0 || categories < 2 {
        return f64::NAN;
    }
    let mut observed = vec![vec![0f64; categories]; categories];
    let mut hist_a = vec![0f64; categories];
    let mut hist_b = vec![0f64; categories];
    for (&i, &j) in a.iter().zip(b) {
        observed[i][j] += 1.0;
        hist_a[i] += 1.0;
        hist_b[j] += 1.0;
    }
    let (mut num, mut den) = (0.0, 0.0);
    let scale = ((categories - 1) * (categories - 1)) as f64;
    for i in 0..categories {
        for j in 0..categories {
            let w = ((i as f64) - (j as f64)).powi(2) / scale;
            num += w * observed[i][j];
            den += w * hist_a[i] * hist_b[j] / n as f64;
        }
    }
    if den == 0.0 { f64::NAN } else { 1.0 - num / den }
}

/// Quadratic weighted kappa of two 1–100 scores over `bands` equal score bands.
pub fn banded_qwk(x: &[f32], y: &[f32], bands: usize) -> f64 {
    let a: Vec<usize> = x.iter().map(|&s| score_band(s, bands)).collect();
    let b: Vec<usize> = y.iter().map(|&s| score_band(s, bands)).collect();
    quadratic_weighted_kappa(&a, &b, bands)
}

/// A statistic with its 95% percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// `stat(x, y)` with a 95% interval from `resamples` bootstrap resamples of the pairs (seeded;
/// resamples where the statistic is undefined are skipped).
pub fn bootstrap(x: &[f32], y: &[f32], resamples: usize, seed: u64, stat: impl Fn(&[f32], &[f32]) -> f64) -> Estimate {
    let value = stat(x, y);
    let n = x.len();
    if n < 2 || resamples == 0 {
        return Estimate { value, ci_low: f64::NAN, ci_high: f64::NAN };
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut samples = Vec::with_capacity(resamples);
    let (mut xs, mut ys) = (vec![0f32; n], vec![0f32; n]);
    for _ in 0..resamples {
        for k in 0..n {
            let i = rng.random_range(0..n);
            xs[k] = x[i];
            ys[k] = y[i];
        }
        let s = stat(&xs, &ys);
        if s.is_finite() {
            samples.push(s);
        }
    }
    if samples.is_empty() {
        return Estimate { value, ci_low: f64::NAN, ci_high: f64::NAN };
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((q * (samples.len() - 1) as f64).round() as usize).min(samples.len() - 1)];
    Estimate { value, ci_low: at(0.025), ci_high: at(0.975) }
}

/// Pearson, Spearman, MAE and RMSE with 95% intervals, and the banded kappa.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub n: usize,
    pub pearson: Estimate,
    pub spearman: Estimate,
    pub mae: Estimate,
    pub rmse: Estimate,
    pub qwk: Estimate,
}

/// How well `predicted` agrees with `truth`.
pub fn agreement(predicted: &[f32], truth: &[f32], resamples: usize, seed: u64, bands: usize) -> Agreement {
    Agreement {
        n: predicted.len(),
        pearson: bootstrap(predicted, truth, resamples, seed, pearson),
        spearman: bootstrap(predicted, truth, resamples, seed.wrapping_add(1), spearman),
        mae: bootstrap(predicted, truth, resamples, seed.wrapping_add(2), mae),
        rmse: bootstrap(predicted, truth, resamples, seed.wrapping_add(3), rmse),
        qwk: bootstrap(predicted, truth, resamples, seed.wrapping_add(4), |a, b| banded_qwk(a, b, bands)),
    }
}

/// A uniformly random derangement of `0..n` (a permutation with no fixed point): `None` for
/// `n < 2`, where none exists. Shuffles until no index stays put, about e ≈ 2.7 tries.
pub fn derangement(n: usize, rng: &mut StdRng) -> Option<Vec<usize>> {
    use rand::seq::SliceRandom;
    if n < 2 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    loop {
        order.shuffle(rng);
        if order.iter().enumerate().all(|(i, &j)| i != j) {
            return Some(order);
        }
    }
}

/// `count` derangements of `0..n` from `seed` (empty for `n < 2`).
pub fn derangements(n: usize, count: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count).map_while(|_| derangement(n, &mut rng)).collect()
}

/// How often a model puts two paintings in the jury's order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairOrder {
    /// Pairs whose true scores differ by at least the gap asked for.
    pub pairs: usize,
    /// Share of those the prediction orders the same way; a predicted tie counts half.
    pub accuracy: f64,
}

/// Pairwise ordering accuracy over the pairs whose `truth` differs by at least `min_gap`:
/// what a competition needs (who ranks above whom) without caring for the scale. Pairs closer
/// than the gap are left out: raters themselves disagree on their order. `None` when no pair
/// qualifies.
pub fn pair_order(predicted: &[f32], truth: &[f32], min_gap: f32) -> Option<PairOrder> {
    let (mut pairs, mut agreeing) = (0usize, 0f64);
    for i in 0..truth.len() {
        for j in i + 1..truth.len() {
            let dt = truth[j] - truth[i];
            if dt.abs() < min_gap {
                continue;
            }
            pairs += 1;
            let dp = predicted[j] - predicted[i];
            agreeing += if dp == 0.0 {
                0.5
            } else if (dp > 0.0) == (dt > 0.0) {
                1.0
            } else {
                0.0
            };
        }
    }
    (pairs > 0).then(|| PairOrder { pairs, accuracy: agreeing / pairs as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_order_on_hand_made_examples() {
        let truth = [10.0, 30.0, 50.0, 70.0];
        let perfect = pair_order(&[1.0, 2.0, 3.0, 4.0], &truth, 10.0).unwrap();
        assert_eq!(perfect, PairOrder { pairs: 6, accuracy: 1.0 });
        let reversed = pair_order(&[4.0, 3.0, 2.0, 1.0], &truth, 10.0).unwrap();
        assert_eq!(reversed, PairOrder { pairs: 6, accuracy: 0.0 });
        let all_tied = pair_order(&[5.0; 4], &truth, 10.0).unwrap();
        assert_eq!(all_tied.accuracy, 0.5);
        // The 30 painting scored above the 50 and the 70 (two pairs wrong), and those two tied:
        // (3 + 0.5) / 6.
        let mixed = pair_order(&[1.0, 3.0, 2.0, 2.0], &truth, 10.0).unwrap();
        assert_eq!(mixed, PairOrder { pairs: 6, accuracy: 3.5 / 6.0 });
        // Only pairs at least 25 apart: 10–50, 10–70 and 30–70.
        assert_eq!(pair_order(&[1.0, 2.0, 3.0, 4.0], &truth, 25.0).unwrap().pairs, 3);
        // No pair far enough apart.
        assert_eq!(pair_order(&[1.0, 2.0, 3.0], &[50.0, 55.0, 59.9], 10.0), None);
        assert_eq!(pair_order(&[], &[], 10.0), None);
    }
}
