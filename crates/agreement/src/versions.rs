//! What switching a competition from one model version to another would change: how the two
//! leaderboards agree, how far scores shift, and the entries that move most.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use uuid::Uuid;

use crate::stats;

/// One version's leaderboard: (submission, model score), best first. An entry's rank is its
/// 1-based position.
pub type Ranking = [(Uuid, f64)];

/// Two versions' leaderboards side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Comparison {
    /// Submissions both versions scored (the figures below are over these).
    pub n: usize,
    /// Submissions each version scored.
    pub n_from: usize,
    pub n_to: usize,
    /// Spearman's rank correlation of the two versions' scores (null with a reason in `reasons`).
    pub spearman: Option<f64>,
    pub pearson: Option<f64>,
    /// Mean of `score_to − score_from`.
    pub mean_shift: Option<f64>,
    /// Largest rank changes first (ties: the better `rank_from` first).
    pub movers: Vec<Mover>,
    /// Why a figure is null, by field name.
    pub reasons: BTreeMap<String, String>,
}

/// An entry on both leaderboards.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Mover {
    pub submission_id: Uuid,
    /// 1-based places on each version's whole leaderboard.
    pub rank_from: usize,
    pub rank_to: usize,
    pub score_from: f64,
    pub score_to: f64,
}

/// Compares two leaderboards, keeping the `movers` entries whose rank changes most.
pub fn compare(from: &Ranking, to: &Ranking, movers: usize) -> Comparison {
    let to_rank: HashMap<Uuid, (usize, f64)> = to.iter().enumerate().map(|(i, &(id, score))| (id, (i + 1, score))).collect();
    let mut both: Vec<Mover> = from
        .iter()
        .enumerate()
        .filter_map(|(i, &(id, score_from))| {
            to_rank.get(&id).map(|&(rank_to, score_to)| Mover { submission_id: id, rank_from: i + 1, rank_to, score_from, score_to })
        })
        .collect();
    let xs: Vec<f64> = both.iter().map(|m| m.score_from).collect();
    let ys: Vec<f64> = both.iter().map(|m| m.score_to).collect();
    let shifts: Vec<f64> = both.iter().map(|m| m.score_to - m.score_from).collect();

    let mut reasons = BTreeMap::new();
    let mut figure = |name: &str, value: Result<f64, crate::Undefined>| match value {
        Ok(v) => Some(v),
        Err(why) => {
            reasons.insert(name.to_string(), why.reason().to_string());
            None
        }
    };
    let spearman = figure("spearman", stats::spearman(&xs, &ys));
    let pearson = figure("pearson", stats::pearson(&xs, &ys));
    let mean_shift = figure("mean_shift", stats::mean(&shifts));

    let n = both.len();
    both.sort_by(|a, b| {
        let moved = |m: &Mover| m.rank_from.abs_diff(m.rank_to);
        moved(b).cmp(&moved(a)).then(a.rank_from.cmp(&b.rank_from))
    });
    both.truncate(movers);
    Comparison { n, n_from: from.len(), n_to: to.len(), spearman, pearson, mean_shift, movers: both, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranking(scores: &[(u128, f64)]) -> Vec<(Uuid, f64)> {
        scores.iter().map(|&(id, s)| (Uuid::from_u128(id), s)).collect()
    }

    #[test]
    fn ranks_shift_and_movers() {
        let from = ranking(&[(1, 90.0), (2, 80.0), (3, 70.0), (4, 60.0), (5, 50.0)]);
        // Entry 5 jumps from last to first; entry 6 is new; entry 4 was not rescored.
        let to = ranking(&[(5, 95.0), (1, 91.0), (2, 81.0), (3, 71.0), (6, 10.0)]);
        let c = compare(&from, &to, 2);
        assert_eq!((c.n, c.n_from, c.n_to), (4, 5, 5));
        assert_eq!(c.movers[0], Mover { submission_id: Uuid::from_u128(5), rank_from: 5, rank_to: 1, score_from: 50.0, score_to: 95.0 });
        // Ties in movement (1, 2 and 3 each move one place): the better original rank first.
        assert_eq!(c.movers[1].submission_id, Uuid::from_u128(1));
        assert_eq!(c.movers.len(), 2);
        assert!((c.mean_shift.unwrap() - (45.0 + 1.0 + 1.0 + 1.0) / 4.0).abs() < 1e-12);
        // 5 goes from the bottom to the top of the four shared entries.
        assert!((c.spearman.unwrap() - stats::spearman(&[90.0, 80.0, 70.0, 50.0], &[91.0, 81.0, 71.0, 95.0]).unwrap()).abs() < 1e-12);
        assert!(c.reasons.is_empty());
    }

    #[test]
    fn identical_versions_agree_perfectly() {
        let from = ranking(&[(1, 90.0), (2, 80.0), (3, 70.0)]);
        let c = compare(&from, &from, 10);
        assert_eq!(c.spearman, Some(1.0));
        assert!((c.pearson.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(c.mean_shift, Some(0.0));
        assert!(c.movers.iter().all(|m| m.rank_from == m.rank_to));
    }

    #[test]
    fn nothing_shared_is_explained_not_nan() {
        let c = compare(&ranking(&[(1, 90.0)]), &ranking(&[(2, 80.0)]), 10);
        assert_eq!(c.n, 0);
        assert!(c.spearman.is_none() && c.pearson.is_none() && c.mean_shift.is_none());
        assert_eq!(c.reasons.len(), 3);
        assert!(c.movers.is_empty());
    }
}
