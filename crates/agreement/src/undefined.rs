//! The one error of this crate: a figure that cannot be computed from the data at hand.

use std::fmt;

/// Why a figure cannot be computed ("fewer than 3 paired values", "the model's scores are all
/// equal"), in words fit to show an organiser next to the missing number.
///
/// Returned instead of NaN so that a missing figure is always explained and never reaches JSON
/// as a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undefined {
    reason: String,
}

impl Undefined {
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }

    /// The plain-English reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Undefined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Undefined {}
