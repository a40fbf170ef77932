//! What juries send: round scales, juror and round names, a juror's score, an override.

use easel_rubric::Rubric;
use serde::{Deserialize, Serialize};

use super::{ValidationError, check_text};
use crate::auth::is_key_name_char;

/// A round's score scale: whole numbers `min..=max` (a juror's score may be fractional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scale {
    pub min: i32,
    pub max: i32,
}

impl Scale {
    /// The widest scale (1–1000 steps): wide enough for any jury, small enough for the
    /// weighted kappa's category table.
    pub const MAX_STEPS: i32 = 1000;
    /// Bounds beyond this are a client's mistake.
    pub const MAX_ABS: i32 = 1_000_000;

    pub fn parse(min: i64, max: i64) -> Result<Self, ValidationError> {
        let bad = |message: String| Err(ValidationError::new("scale", message));
        let limit = i64::from(Self::MAX_ABS);
        if !(-limit..=limit).contains(&min) || !(-limit..=limit).contains(&max) {
            return bad(format!("scale_min and scale_max must be within ±{limit}"));
        }
        if min >= max {
            return bad(format!("scale_min ({min}) must be below scale_max ({max})"));
        }
        if max - min > i64::from(Self::MAX_STEPS) {
            return bad(format!("the scale spans {} steps; at most {}", max - min, Self::MAX_STEPS));
        }
        // Both fit an i32: checked against MAX_ABS above.
        Ok(Self { min: min as i32, max: max as i32 })
    }

    pub fn contains(&self, value: f64) -> bool {
        value.is_finite() && value >= f64::from(self.min) && value <= f64::from(self.max)
    }

    fn check(&self, field: &'static str, value: f64) -> Result<f64, ValidationError> {
        if self.contains(value) {
            Ok(value)
        } else {
            Err(ValidationError::new(field, format!("{value} is outside the round's scale {}..={}", self.min, self.max)))
        }
    }
}

/// A juror's, a rater's or a round's name: 1–100 characters of printable text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ValidationError::new(field, "must be 1 to 100 characters long"));
        }
        check_text(field, name, false)?;
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of the juror's API key: the juror's name in the characters key names allow.
    pub fn key_name(&self) -> String {
        let kept: String = self.0.chars().map(|c| if is_key_name_char(c) { c } else { '_' }).take(90).collect();
        format!("juror: {kept}")
    }
}

/// A juror's score of one entry, checked against the round's scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JurorScore {
    /// `None` only with a declared conflict of interest.
    pub score: Option<f64>,
    pub rubric: Option<Rubric<f64>>,
    pub note: Option<String>,
    /// A declared conflict of interest: recorded, and left out of every figure.
    pub conflict: bool,
}

impl JurorScore {
    /// The most characters in a note.
    pub const MAX_NOTE_CHARS: usize = 4000;

    pub fn parse(
        scale: Scale,
        score: Option<f64>,
        rubric: Option<Rubric<f64>>,
        note: Option<&str>,
        conflict: bool,
    ) -> Result<Self, ValidationError> {
        let score = match score {
            Some(value) => Some(scale.check("score", value)?),
            None if conflict => None,
            None => return Err(ValidationError::new("score", "is required (unless declaring a conflict of interest)")),
        };
        let rubric = rubric.map(|r| r.try_map(|value| scale.check("rubric", value))).transpose()?;
        let note = note.map(Self::parse_note).transpose()?.filter(|n| !n.is_empty());
        Ok(Self { score, rubric, note, conflict })
    }

    fn parse_note(text: &str) -> Result<String, ValidationError> {
        if text.chars().count() > Self::MAX_NOTE_CHARS {
            return Err(ValidationError::new("note", format!("is over {} characters", Self::MAX_NOTE_CHARS)));
        }
        check_text("note", text, true)?;
        Ok(text.trim().to_string())
    }
}

/// Why an organiser overrode a score: 1–2000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Reason(String);

impl Reason {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let reason = raw.trim();
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(ValidationError::new("reason", "must be 1 to 2000 characters long"));
        }
        check_text("reason", reason, true)?;
        Ok(Self(reason.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rubric(v: f64) -> Rubric<f64> {
        Rubric::from_array([v; 5])
    }

    #[test]
    fn scales_are_ordered_and_bounded() {
        assert_eq!(Scale::parse(1, 10).unwrap(), Scale { min: 1, max: 10 });
        assert!(Scale::parse(-5, 5).is_ok());
        for (min, max) in [(10, 1), (3, 3), (0, 1001), (i64::MIN, 0), (0, i64::MAX), (-2_000_000, 0)] {
            assert!(Scale::parse(min, max).is_err(), "{min}..{max}");
        }
    }

    #[test]
    fn scores_stay_on_the_scale() {
        let scale = Scale::parse(1, 10).unwrap();
        let ok = JurorScore::parse(scale, Some(7.5), Some(rubric(3.0)), Some(" fine\nwork "), false).unwrap();
        assert_eq!(ok.note.as_deref(), Some("fine\nwork"));
        for bad in [0.0, 10.5, f64::NAN, f64::INFINITY, -1.0] {
            let err = JurorScore::parse(scale, Some(bad), None, None, false).unwrap_err();
            assert_eq!(err.field, "score");
        }
        let err = JurorScore::parse(scale, Some(5.0), Some(rubric(11.0)), None, false).unwrap_err();
        assert_eq!(err.field, "rubric");
        assert!(JurorScore::parse(scale, None, None, None, false).is_err(), "a score is needed");
        assert!(JurorScore::parse(scale, None, None, None, true).is_ok(), "a conflict needs none");
        assert!(JurorScore::parse(scale, Some(5.0), None, Some("a\u{202e}b"), false).is_err());
        assert!(JurorScore::parse(scale, Some(5.0), None, Some(&"x".repeat(4001)), false).is_err());
    }

    #[test]
    fn names_are_printable() {
        assert_eq!(Name::parse("name", "  Smith, J. & Co ").unwrap().as_str(), "Smith, J. & Co");
        assert_eq!(Name::parse("name", "Smith, J. <b>").unwrap().key_name(), "juror: Smith_ J. _b_");
        for bad in ["", "  ", "ta\tb", "a\u{2066}b", &"x".repeat(101)] {
            assert!(Name::parse("name", bad).is_err(), "{bad:?}");
        }
        assert!(Reason::parse("").is_err());
        assert!(Reason::parse("second look at the scan\nagreed by the chair").is_ok());
    }
}
