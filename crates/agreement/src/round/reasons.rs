//! Collects why figures are missing, under the names they have in the output.

use std::collections::BTreeMap;

use crate::Undefined;

/// The `reasons` map of an [`Agreement`](super::Agreement) being built.
#[derive(Default)]
pub(super) struct Reasons(BTreeMap<String, String>);

impl Reasons {
    /// The figure, or `None` with its reason recorded under `key`.
    pub(super) fn keep<T>(&mut self, key: impl Into<String>, figure: Result<T, Undefined>) -> Option<T> {
        figure.map_err(|why| self.note(key, why.reason())).ok()
    }

    pub(super) fn note(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.insert(key.into(), reason.into());
    }

    pub(super) fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
}
