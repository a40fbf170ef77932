//! Deterministic train/validation splits, stratified by score band, and k-fold.
//!
//! The same manifest, seed and settings always give the same split, so `easel eval` can
//! re-derive the held-out rows `easel train` used.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Number of equal-width score bands over 1–100 used for stratification and for the quadratic
/// weighted kappa (1–20, 21–40, 41–60, 61–80, 81–100).
pub const DEFAULT_BANDS: usize = 5;

/// The band (0-based) of a 1–100 score among `bands` equal-width bands.
pub fn score_band(score: f32, bands: usize) -> usize {
    (((score - 1.0).max(0.0) / 99.0 * bands as f32).floor() as usize).min(bands - 1)
}

/// How to hold rows out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SplitSpec {
    /// A random fraction of each score band is held out.
    Holdout { val_fraction: f64 },
    /// Fold `fold` (0-based) of `folds` stratified folds is held out.
    KFold { folds: usize, fold: usize },
}

impl SplitSpec {
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Self::Holdout { val_fraction } if !(0.0..1.0).contains(&val_fraction) => {
                Err(format!("the validation fraction must be in [0, 1), got {val_fraction}"))
            }
            Self::KFold { folds, fold } if folds < 2 || fold >= folds => {
                Err(format!("fold {fold} of {folds}: need at least 2 folds and fold < folds"))
            }
            _ => Ok(()),
        }
    }
}

/// Row indices of each side, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// Splits rows with overall scores `scores` by `spec`, stratified by score band, seeded.
pub fn split(scores: &[f32], spec: SplitSpec, seed: u64) -> Split {
    let mut by_band: Vec<Vec<usize>> = vec![Vec::new(); DEFAULT_BANDS];
    for (i, &s) in scores.iter().enumerate() {
        by_band[score_band(s, DEFAULT_BANDS)].push(i);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    match spec {
        SplitSpec::Holdout { val_fraction } => {
            // Rounding per band would drift on small bands; carry the remainder across bands so
            // the total held out is round(n · fraction).
            let mut carry = 0.0f64;
            for band in &mut by_band {
                band.shuffle(&mut rng);
                let want = band.len() as f64 * val_fraction + carry;
                let take = (want.round() as usize).min(band.len());
                carry = want - take as f64;
                val.extend_from_slice(&band[..take]);
                train.extend_from_slice(&band[take..]);
            }
        }
        SplitSpec::KFold { folds, fold } => {
            // Deal each band's shuffled rows round-robin, continuing across bands, so folds differ
            // in size by at most one and each sees every band.
            let mut next = 0usize;
            for band in &mut by_band {
                band.shuffle(&mut rng);
                for &i in band.iter() {
                    if next % folds == fold { val.push(i) } else { train.push(i) }
                    next += 1;
                }
            }
        }
    }
    train.sort_unstable();
    val.sort_unstable();
    Split { train, val }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_the_score_range() {
        assert_eq!(score_band(1.0, 5), 0);
        assert_eq!(score_band(20.0, 5), 0);
        assert_eq!(score_band(21.0, 5), 1);
        assert_eq!(score_band(80.0, 5), 3);
        assert_eq!(score_band(81.0, 5), 4);
        assert_eq!(score_band(100.0, 5), 4);
    }

    #[test]
    fn holdout_is_deterministic_stratified_and_complete() {
        let scores: Vec<f32> = (0..100).map(|i| 1.0 + (i * 37 % 100) as f32).collect();
        let a = split(&scores, SplitSpec::Holdout { val_fraction: 0.2 }, 7);
        assert_eq!(a, split(&scores, SplitSpec::Holdout { val_fraction: 0.2 }, 7));
        assert_ne!(a, split(&scores, SplitSpec::Holdout { val_fraction: 0.2 }, 8));
        assert_eq!(a.val.len(), 20);
        let mut all: Vec<usize> = a.train.iter().chain(&a.val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        for band in 0..5 {
            let held = a.val.iter().filter(|&&i| score_band(scores[i], 5) == band).count();
            assert_eq!(held, 4, "band {band}");
        }
    }

    #[test]
    fn folds_partition_the_rows() {
        let scores: Vec<f32> = (0..23).map(|i| 1.0 + (i * 13 % 100) as f32).collect();
        let mut seen = [0; 23];
        for fold in 0..5 {
            let s = split(&scores, SplitSpec::KFold { folds: 5, fold }, 3);
            assert!(s.val.len() == 4 || s.val.len() == 5);
            assert_eq!(s.train.len() + s.val.len(), 23);
            for &i in &s.val {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c == 1));
    }
}
