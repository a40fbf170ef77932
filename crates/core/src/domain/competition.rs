use serde::{Deserialize, Serialize};

use super::{RubricScores, ValidationError, is_clean_text};

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
        if !is_clean_text(s, false) {
            return Err(ValidationError::new("title", "must not contain control characters"));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How much each rubric score counts in a competition's leaderboard score. Stored normalised
/// (the weights sum to 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RubricWeights {
    pub originality: f32,
    pub color: f32,
    pub texture: f32,
    pub composition: f32,
    pub content: f32,
}

impl RubricWeights {
    pub fn parse(raw: RubricWeights) -> Result<Self, ValidationError> {
        let weights = raw.as_array();
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(ValidationError::new("rubric_weights", "weights must be finite and not negative"));
        }
        let sum: f32 = weights.iter().sum();
        if sum <= 0.0 {
            return Err(ValidationError::new("rubric_weights", "at least one weight must be positive"));
        }
        let [originality, color, texture, composition, content] = weights.map(|w| w / sum);
        Ok(Self { originality, color, texture, composition, content })
    }

    fn as_array(&self) -> [f32; 5] {
        [self.originality, self.color, self.texture, self.composition, self.content]
    }

    /// The weighted mean of the rubric scores; stays in 1..=100 because the weights sum to 1.
    pub fn score(&self, scores: &RubricScores) -> f32 {
        let rubric = [scores.originality, scores.color, scores.texture, scores.composition, scores.content];
        let weighted: f32 = self.as_array().iter().zip(rubric).map(|(w, s)| w * s.value()).sum();
        weighted.clamp(1.0, 100.0)
    }
}

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
        let w = RubricWeights::parse(RubricWeights {
            originality: 2.0,
            color: 1.0,
            texture: 1.0,
            composition: 0.0,
            content: 0.0,
        })
        .unwrap();
        assert!((w.originality - 0.5).abs() < 1e-6);
        let zero = RubricWeights { originality: 0.0, color: 0.0, texture: 0.0, composition: 0.0, content: 0.0 };
        assert!(RubricWeights::parse(zero).is_err());
    }
}
