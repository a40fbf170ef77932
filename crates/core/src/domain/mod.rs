//! Domain types that parse at the edge: a handler that holds a [`CompetitionSlug`] or a
//! [`Score`] holds a valid one.

mod competition;
mod job;
mod scores;
mod submission;

pub use competition::{CompetitionSlug, CompetitionTitle, RubricWeights};
pub use job::JobMessage;
pub use scores::{RubricScores, Score};
pub use submission::{Description, ExternalId, SubmissionStatus};

/// Why a value from a client was refused; safe to show them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The request field at fault (`slug`, `description`, …).
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// Text a client may send: no control characters but line breaks and tabs (Postgres also
/// refuses NUL in text).
fn is_clean_text(s: &str, allow_line_breaks: bool) -> bool {
    s.chars().all(|c| !c.is_control() || (allow_line_breaks && matches!(c, '\n' | '\r' | '\t')))
}
