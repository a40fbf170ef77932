//! Shortlists: the top entries by some score, and how much of one shortlist another recovers.

use std::cmp::Ordering;
use std::collections::HashSet;

use uuid::Uuid;

use super::input::{Normalise, RoundData};
use super::standings::standings;

/// The ids of the `n` highest values, highest first. Missing (and non-finite) values are left
/// out; equal values are ordered by id, ascending, so the list never depends on input order.
pub fn top_by(values: &[(Uuid, Option<f64>)], n: usize) -> Vec<Uuid> {
    let mut scored: Vec<(Uuid, f64)> =
        values.iter().filter_map(|&(id, value)| value.filter(|v| v.is_finite()).map(|v| (id, v))).collect();
    scored.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal).then(a.0.cmp(&b.0)));
    scored.into_iter().take(n).map(|(id, _)| id).collect()
}

/// The ids of the panel's `n` best entries of a round, by the raw or the normalised panel mean
/// (as [`top_by`]: unscored entries left out, ties by id).
pub fn panel_top(data: &RoundData, normalise: Normalise, n: usize) -> Vec<Uuid> {
    let values: Vec<(Uuid, Option<f64>)> = standings(data).iter().map(|s| (s.submission_id, s.panel(normalise))).collect();
    top_by(&values, n)
}

/// The share of `panel_top` that `shortlist` contains: how much of the jury's top entries a
/// model-made shortlist would have kept. `None` when `panel_top` is empty.
pub fn recall(panel_top: &[Uuid], shortlist: &[Uuid]) -> Option<f64> {
    if panel_top.is_empty() {
        return None;
    }
    let shortlist: HashSet<&Uuid> = shortlist.iter().collect();
    let found = panel_top.iter().filter(|id| shortlist.contains(id)).count();
    Some(found as f64 / panel_top.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn highest_first_ties_by_id_missing_left_out() {
        let values =
            [(id(3), Some(5.0)), (id(1), None), (id(2), Some(5.0)), (id(4), Some(9.0)), (id(5), Some(f64::NAN))];
        assert_eq!(top_by(&values, 10), vec![id(4), id(2), id(3)]);
        assert_eq!(top_by(&values, 2), vec![id(4), id(2)]);
        assert!(top_by(&values, 0).is_empty());
    }

    #[test]
    fn recall_is_the_share_found() {
        assert_eq!(recall(&[id(1), id(2), id(3), id(4)], &[id(2), id(4), id(9)]), Some(0.5));
        assert_eq!(recall(&[], &[id(1)]), None);
        assert_eq!(recall(&[id(1)], &[]), Some(0.0));
    }
}
