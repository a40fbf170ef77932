//! Pearson's r, Spearman's rho and Kendall's tau-b.

use super::checks::{finite, finite_result, order, paired, plain_mean, varying};
use crate::Undefined;

/// Pearson's correlation coefficient (like `scipy.stats.pearsonr`).
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64, Undefined> {
    paired(x, y)?;
    varying(x, y)?;
    let (mx, my) = (plain_mean(x), plain_mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    // Rounding can push |r| a hair past 1; scipy clips the same way.
    finite_result(sxy / (sxx * syy).sqrt()).map(|r| r.clamp(-1.0, 1.0))
}

/// Spearman's rank correlation: Pearson's r of the ranks, ties given their average rank (like
/// `scipy.stats.spearmanr`).
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64, Undefined> {
    paired(x, y)?;
    varying(x, y)?;
    pearson(&ranks(x)?, &ranks(y)?)
}

/// The 1-based ranks of `values`, tied values sharing the average of their ranks (like
/// `scipy.stats.rankdata(method="average")`).
pub fn ranks(values: &[f64]) -> Result<Vec<f64>, Undefined> {
    finite(values)?;
    let mut by_value: Vec<usize> = (0..values.len()).collect();
    by_value.sort_by(|&a, &b| order(values[a], values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < by_value.len() {
        let tied = by_value[start..].iter().take_while(|&&i| values[i] == values[by_value[start]]).count();
        // Positions start..start+tied hold ranks start+1..=start+tied; their average:
        let rank = start as f64 + (tied as f64 + 1.0) / 2.0;
        for &i in &by_value[start..start + tied] {
            ranks[i] = rank;
        }
        start += tied;
    }
    Ok(ranks)
}

/// Kendall's tau-b, which corrects for ties on either side (like `scipy.stats.kendalltau`'s
/// default).
///
/// Knight's O(n log n) algorithm, as scipy does it: sort the pairs by x then y, count the pairs
/// tied in x and tied in both, then count the discordant pairs as the swaps a merge sort of the
/// y values makes. The bootstrap calls this thousands of times, so O(n²) would show on big rounds.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Result<f64, Undefined> {
    paired(x, y)?;
    varying(x, y)?;
    let mut by_x: Vec<usize> = (0..x.len()).collect();
    by_x.sort_by(|&a, &b| order(x[a], x[b]).then(order(y[a], y[b])));
    let x_ties = tied_pairs(&by_x, |a, b| x[a] == x[b]);
    let joint_ties = tied_pairs(&by_x, |a, b| x[a] == x[b] && y[a] == y[b]);

    let mut ys: Vec<f64> = by_x.iter().map(|&i| y[i]).collect();
    let mut buffer = Vec::with_capacity(ys.len());
    let discordant = sort_counting_inversions(&mut ys, &mut buffer);
    let sorted: Vec<usize> = (0..ys.len()).collect();
    let y_ties = tied_pairs(&sorted, |a, b| ys[a] == ys[b]);

    let n = x.len() as u64;
    let total = n * (n - 1) / 2;
    // concordant − discordant, from the counts above (all in exact integers)
    let difference = total as i128 - x_ties as i128 - y_ties as i128 + joint_ties as i128 - 2 * discordant as i128;
    let tau = difference as f64 / ((total - x_ties) as f64 * (total - y_ties) as f64).sqrt();
    finite_result(tau).map(|t| t.clamp(-1.0, 1.0))
}

/// The number of pairs within runs of neighbours that `same` calls equal, in sorted `items`.
fn tied_pairs(items: &[usize], same: impl Fn(usize, usize) -> bool) -> u64 {
    let mut pairs = 0;
    let mut run = 1u64;
    for w in items.windows(2) {
        if same(w[0], w[1]) {
            run += 1;
        } else {
            pairs += run * (run - 1) / 2;
            run = 1;
        }
    }
    pairs + run * (run - 1) / 2
}

/// Sorts `values` ascending and returns how many pairs were out of order (strictly greater
/// before smaller; equal values are not an inversion).
fn sort_counting_inversions(values: &mut [f64], buffer: &mut Vec<f64>) -> u64 {
    let n = values.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let mut inversions =
        sort_counting_inversions(&mut values[..mid], buffer) + sort_counting_inversions(&mut values[mid..], buffer);
    buffer.clear();
    let (mut i, mut j) = (0, mid);
    while i < mid && j < n {
        if values[j] < values[i] {
            buffer.push(values[j]);
            inversions += (mid - i) as u64;
            j += 1;
        } else {
            buffer.push(values[i]);
            i += 1;
        }
    }
    buffer.extend_from_slice(&values[i..mid]);
    buffer.extend_from_slice(&values[j..]);
    values.copy_from_slice(buffer);
    inversions
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The textbook O(n²) definition, to check Knight's algorithm against.
    fn naive_tau_b(x: &[f64], y: &[f64]) -> f64 {
        let (mut s, mut tx, mut ty) = (0.0, 0.0, 0.0);
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                let (dx, dy) = ((x[i] - x[j]).signum(), (y[i] - y[j]).signum());
                let (dx, dy) = (if x[i] == x[j] { 0.0 } else { dx }, if y[i] == y[j] { 0.0 } else { dy });
                s += dx * dy;
                tx += dx * dx;
                ty += dy * dy;
            }
        }
        s / (tx * ty).sqrt()
    }

    #[test]
    fn perfect_and_reversed_orders() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let up = [10.0, 20.0, 25.0, 100.0];
        let down = [4.0, 3.0, 2.0, 1.0];
        assert!((pearson(&x, &x).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(spearman(&x, &up).unwrap(), 1.0);
        assert_eq!(kendall_tau_b(&x, &up).unwrap(), 1.0);
        assert_eq!(kendall_tau_b(&x, &down).unwrap(), -1.0);
        assert!((spearman(&x, &down).unwrap() + 1.0).abs() < 1e-12);
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 30.0, 20.0, 10.0]).unwrap(), vec![2.0, 4.5, 2.0, 6.0, 4.5, 2.0]);
    }

    #[test]
    fn constant_or_short_series_are_undefined() {
        assert!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_err());
        assert!(spearman(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]).is_err());
        assert!(kendall_tau_b(&[1.0, 2.0], &[1.0, 2.0]).is_err());
        assert!(pearson(&[1.0, 2.0, 3.0], &[1.0, 2.0]).is_err());
        assert!(pearson(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]).is_err());
    }

    #[test]
    fn tau_b_with_ties_matches_scipy() {
        // scipy.stats.kendalltau([1,2,2,3,3,3], [1,3,2,2,3,3]).statistic
        let tau = kendall_tau_b(&[1.0, 2.0, 2.0, 3.0, 3.0, 3.0], &[1.0, 3.0, 2.0, 2.0, 3.0, 3.0]).unwrap();
        assert!((tau - 0.545_454_545_454_545_5).abs() < 1e-12, "{tau}");
    }

    proptest! {
        #[test]
        fn knight_agrees_with_the_definition(pairs in prop::collection::vec((0u8..6, 0u8..6), 3..40)) {
            let x: Vec<f64> = pairs.iter().map(|p| f64::from(p.0)).collect();
            let y: Vec<f64> = pairs.iter().map(|p| f64::from(p.1)).collect();
            match kendall_tau_b(&x, &y) {
                Ok(tau) => prop_assert!((tau - naive_tau_b(&x, &y)).abs() < 1e-12),
                Err(_) => prop_assert!(x.windows(2).all(|w| w[0] == w[1]) || y.windows(2).all(|w| w[0] == w[1])),
            }
        }

        #[test]
        fn correlations_stay_in_range(pairs in prop::collection::vec((-1e6f64..1e6, -1e6f64..1e6), 3..30)) {
            let x: Vec<f64> = pairs.iter().map(|p| p.0).collect();
            let y: Vec<f64> = pairs.iter().map(|p| p.1).collect();
            for r in [pearson(&x, &y), spearman(&x, &y), kendall_tau_b(&x, &y)].into_iter().flatten() {
                prop_assert!((-1.0..=1.0).contains(&r));
            }
        }
    }
}
