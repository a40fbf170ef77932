//! The round's juror scores as an entry × juror grid, built once and read by every figure.

use std::collections::HashMap;

use super::input::RoundData;

/// `score(e, j)`: juror `j`'s score for entry `e`, both in the order of [`RoundData`]'s lists.
pub(super) struct Panel {
    grid: Vec<Vec<Option<f64>>>,
    jurors: usize,
}

impl Panel {
    /// Keeps only finite scores for listed entries from listed jurors; a repeated score for the
    /// same entry and juror replaces the earlier one.
    pub(super) fn new(data: &RoundData) -> Self {
        let entry_index = first_index(data.entries.iter().map(|e| e.id));
        let juror_index = first_index(data.jurors.iter().map(|j| j.id));
        let mut grid = vec![vec![None; data.jurors.len()]; data.entries.len()];
        for s in data.scores.iter().filter(|s| s.score.is_finite()) {
            if let (Some(&e), Some(&j)) = (entry_index.get(&s.entry), juror_index.get(&s.juror)) {
                grid[e][j] = Some(s.score);
            }
        }
        Self { grid, jurors: data.jurors.len() }
    }

    pub(super) fn score(&self, entry: usize, juror: usize) -> Option<f64> {
        self.grid[entry][juror]
    }

    /// The scores entry `entry` received, with the index of the juror who gave each.
    pub(super) fn entry_scores(&self, entry: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.grid[entry].iter().enumerate().filter_map(|(j, s)| s.map(|s| (j, s)))
    }

    /// Every score juror `juror` gave, in entry order.
    pub(super) fn juror_scores(&self, juror: usize) -> Vec<f64> {
        self.grid.iter().filter_map(|row| row[juror]).collect()
    }

    pub(super) fn entries(&self) -> usize {
        self.grid.len()
    }

    pub(super) fn jurors(&self) -> usize {
        self.jurors
    }
}

/// Where each id first appears (ids are expected to be unique; a repeat is ignored).
fn first_index(ids: impl Iterator<Item = uuid::Uuid>) -> HashMap<uuid::Uuid, usize> {
    let mut index = HashMap::new();
    for (i, id) in ids.enumerate() {
        index.entry(id).or_insert(i);
    }
    index
}
