use serde::Serialize;

use super::is_bidi_control;

/// The model's written critique of a painting, as stored. The model's text is untrusted (a
/// painting's description can steer it), so it is cleaned, never refused: no control characters
/// but line breaks and tabs (Postgres refuses NUL; escape sequences reach terminals and logs),
/// no bidirectional controls, and at most [`Critique::MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Critique(String);

impl Critique {
    /// The longest critique stored, in characters; the rest is cut off.
    pub const MAX_CHARS: usize = 8192;

    /// Drops the characters a critique may not hold, then keeps the first
    /// [`Self::MAX_CHARS`] characters (cut between characters, never inside one).
    pub fn from_model(raw: &str) -> Self {
        let allowed = |c: &char| (!c.is_control() || matches!(c, '\n' | '\t')) && !is_bidi_control(*c);
        Self(raw.chars().filter(allowed).take(Self::MAX_CHARS).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_dropped() {
        let raw = "Bold colour.\0\r\n\tThe \u{1b}[31mred\u{1b}[0m sings.\u{7}\u{7f}\u{85}";
        assert_eq!(Critique::from_model(raw).as_str(), "Bold colour.\n\tThe [31mred[0m sings.");
    }

    #[test]
    fn bidi_controls_are_dropped() {
        assert_eq!(Critique::from_model("score: \u{202E}001\u{202C} \u{2067}x\u{2069}\u{200F}").as_str(), "score: 001 x");
        assert_eq!(Critique::from_model("لوحة جميلة").as_str(), "لوحة جميلة");
    }

    #[test]
    fn length_is_capped_between_characters() {
        let long = "é".repeat(Critique::MAX_CHARS + 10);
        let critique = Critique::from_model(&long);
        assert_eq!(critique.as_str().chars().count(), Critique::MAX_CHARS);
        assert_eq!(critique.as_str().len(), 2 * Critique::MAX_CHARS);
        // Dropped characters do not count towards the cap.
        let padded = format!("{}{}", "\0".repeat(100), "a".repeat(Critique::MAX_CHARS));
        assert_eq!(Critique::from_model(&padded).into_string(), "a".repeat(Critique::MAX_CHARS));
        let emoji = "🎨".repeat(Critique::MAX_CHARS + 1);
        assert_eq!(Critique::from_model(&emoji).as_str().chars().count(), Critique::MAX_CHARS);
    }
}
