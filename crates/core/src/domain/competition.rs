use easel_rubric::Rubric;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

use super::{RubricScores, ValidationError, check_text};

/// A competition's URL name: 3–64 of `a-z`, `0-9` and `-`, starting and ending with a letter or
/// digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CompetitionSlug(String);

impl CompetitionSlug {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let bad = |message: &str| Err(ValidationError::new("slug", message));
        if !(3..=64).contains(&s.len()) {
            return bad("must be 3 to 64 characters long");
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return bad("may only contain lower-case letters, digits and '-'");
        }
        if s.starts_with('-') || s.ends_with('-') {
            return bad("must start and end with a letter or digit");
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CompetitionSlug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A competition's display title: 1–200 characters of printable text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CompetitionTitle(String);

impl CompetitionTitle {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 200 {
            return Err(ValidationError::new("title", "must be 1 to 200 characters long"));
        }
        check_text("title", s, false)?;
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How much each rubric score counts in a competition's leaderboard score: each sent in
/// `0..=`[`Self::MAX`], stored normalised (the weights sum to 1). JSON: the rubric's five fields.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RubricWeights(pub Rubric<f32>);

impl RubricWeights {
    /// The largest weight a client may send. Bounding each keeps the normalising sum finite (five
    /// weights near `f32::MAX` would add up to infinity and normalise to zeros and NaN).
    pub const MAX: f32 = 100.0;

    pub fn parse(RubricWeights(raw): RubricWeights) -> Result<Self, ValidationError> {
        let weights = raw.to_array();
        // `contains` is false for NaN, so NaN is refused too.
        if !weights.iter().all(|w| (0.0..=Self::MAX).contains(w)) {
            return Err(ValidationError::new("rubric_weights", format!("each weight must be a number from 0 to {}", Self::MAX)));
        }
        let sum: f32 = weights.iter().sum();
        if sum <= 0.0 {
            return Err(ValidationError::new("rubric_weights", "at least one weight must be positive"));
        }
        Ok(Self(raw.map(|w| w / sum)))
    }

    /// The weighted mean of the rubric scores; stays in 1..=100 because the weights sum to 1.
    pub fn score(&self, scores: &RubricScores) -> f32 {
        let weighted: f32 = self.0.zip(scores.rubric).into_array().iter().map(|(w, s)| w * s.value()).sum();
        weighted.clamp(1.0, 100.0)
    }
}

/// The rubric's schema (five required numbers) under this type's name and description.
impl PartialSchema for RubricWeights {
    fn schema() -> RefOr<Schema> {
        let mut schema = Rubric::<f32>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.description = Some(format!(
                "How much each rubric score counts in a competition's leaderboard score: each sent in \
                 `0..={}`, stored normalised (the weights sum to 1).",
                Self::MAX
            ));
        }
        schema
    }
}

impl ToSchema for RubricWeights {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(CompetitionSlug::parse("spring-salon-2026").is_ok());
        for bad in ["ab", "-abc", "abc-", "Upper", "sp ace", "ünï", &"a".repeat(65)] {
            assert!(CompetitionSlug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_are_normalised() {
        let w = RubricWeights::parse(RubricWeights(Rubric::from_array([2.0, 1.0, 1.0, 0.0, 0.0]))).unwrap();
        assert!((w.0.originality - 0.5).abs() < 1e-6);
        assert!(RubricWeights::parse(RubricWeights(Rubric::from_array([0.0; 5]))).is_err());
    }

    #[test]
    fn weights_are_finite_and_bounded() {
        let all = |w: f32| RubricWeights(Rubric::from_array([w; 5]));
        let max = RubricWeights::parse(all(RubricWeights::MAX)).unwrap();
        assert!((max.0.originality - 0.2).abs() < 1e-6);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, 1e30, 100.01, -0.5] {
            let err = RubricWeights::parse(RubricWeights(Rubric { color: bad, ..all(1.0).0 })).unwrap_err();
            assert_eq!(err.field, "rubric_weights", "{bad}");
        }
        // Sums that would overflow f32 if the weights were not bounded.
        assert!(RubricWeights::parse(all(f32::MAX)).is_err());
        // What a client sends as JSON: 1e308 does not fit an f32 and must not get through.
        let huge: RubricWeights = serde_json::from_str(
            r#"{"originality": 1e308, "color": 1e308, "texture": 1, "composition": 1, "content": 1}"#,
        )
        .unwrap();
        assert!(RubricWeights::parse(huge).is_err());
        // Every weight the parser lets through scores within the score range.
        let scored = RubricWeights::parse(RubricWeights(Rubric { originality: 1e-30, ..all(0.0).0 })).unwrap();
        assert!(scored.0.originality.is_finite() && (scored.0.originality - 1.0).abs() < 1e-6);
    }

    #[test]
    fn weights_read_and_document_the_rubric() {
        let json = r#"{"originality": 2, "color": 1, "texture": 1, "composition": 0, "content": 0}"#;
        let raw: RubricWeights = serde_json::from_str(json).unwrap();
        assert_eq!(raw.0.to_array(), [2.0, 1.0, 1.0, 0.0, 0.0]);
        let parsed = RubricWeights::parse(raw).unwrap();
        assert_eq!(serde_json::to_value(parsed).unwrap(), serde_json::to_value(parsed.0).unwrap());
        let schema = serde_json::to_value(RubricWeights::schema()).unwrap();
        assert_eq!(schema["required"], serde_json::json!(easel_rubric::CRITERIA));
        assert_eq!(schema["properties"]["color"], serde_json::json!({"type": "number", "format": "float"}));
        assert!(schema["description"].as_str().unwrap().starts_with("How much each rubric score counts"));
        assert_eq!(RubricWeights::name(), "RubricWeights");
    }

    #[test]
    fn titles() {
        assert!(CompetitionTitle::parse("  Spring Salon — Printemps 2026 ").is_ok());
        assert_eq!(CompetitionTitle::parse("Salon\u{202E}6202").unwrap_err().field, "title");
        assert_eq!(CompetitionTitle::parse("a\u{2068}b\u{2069}").unwrap_err().field, "title");
        assert!(CompetitionTitle::parse("tab\there").is_err());
        assert!(CompetitionTitle::parse(" ").is_err());
    }
}
