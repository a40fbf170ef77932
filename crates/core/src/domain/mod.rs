//! Domain types that parse at the edge: a handler that holds a [`CompetitionSlug`] or a
//! [`Score`] holds a valid one.

mod competition;
mod critique;
mod job;
mod jury;
mod scores;
mod submission;

pub use competition::{CompetitionSlug, CompetitionTitle, RubricWeights};
pub use critique::Critique;
pub use job::JobMessage;
pub use jury::{JurorScore, Name, Reason, Scale};
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

/// Checks text a client may send: no control characters but line breaks and tabs (Postgres
/// also refuses NUL in text), and no bidirectional controls, which can make text display in an
/// order other than the one it is stored and compared in ("Trojan Source", CVE-2021-42574).
fn check_text(field: &'static str, s: &str, allow_line_breaks: bool) -> Result<(), ValidationError> {
    if !s.chars().all(|c| !c.is_control() || (allow_line_breaks && matches!(c, '\n' | '\r' | '\t'))) {
        let message = if allow_line_breaks {
            "must not contain control characters other than line breaks and tabs"
        } else {
            "must not contain control characters"
        };
        return Err(ValidationError::new(field, message));
    }
    if let Some(c) = s.chars().find(|&c| is_bidi_control(c)) {
        let message = format!("must not contain bidirectional control characters (found U+{:04X})", u32::from(c));
        return Err(ValidationError::new(field, message));
    }
    Ok(())
}

/// The Unicode bidirectional formatting characters: embeddings and overrides (U+202A–U+202E),
/// isolates (U+2066–U+2069) and the implicit marks (LRM, RLM, ALM).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_are_refused_by_name() {
        let bidi = ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}'];
        for c in bidi {
            let text = format!("entry{c}gpj.exe");
            let err = check_text("description", &text, true).unwrap_err();
            assert_eq!(err.field, "description");
            assert!(err.message.contains("bidirectional"), "{err}");
        }
        // Neighbours of the ranges, and right-to-left text itself, are fine.
        for ok in ["\u{2029}x", "\u{2065}", "\u{206A}", "\u{200D}", "\u{2070}", "مرحبا بالعالم", "שלום"] {
            assert!(check_text("title", ok, false).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(check_text("title", "tab\tin a title", false).is_err());
        assert!(check_text("description", "tab\tand\r\nlines", true).is_ok());
        assert!(check_text("description", "nul\0", true).is_err());
    }
}
