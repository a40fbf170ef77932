use serde::{Deserialize, Serialize};

use super::ValidationError;

/// A model score in 1..=100.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f32", into = "f32")]
pub struct Score(f32);

impl Score {
    pub fn parse(value: f32) -> Result<Self, ValidationError> {
        if value.is_finite() && (1.0..=100.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(ValidationError::new("score", format!("{value} is not in 1..=100")))
        }
    }

    pub fn value(self) -> f32 {
        self.0
    }
}

impl TryFrom<f32> for Score {
    type Error = ValidationError;

    fn try_from(value: f32) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Score> for f32 {
    fn from(score: Score) -> f32 {
        score.0
    }
}

/// The overall score and the five rubric scores of one assessment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RubricScores {
    pub overall: Score,
    pub originality: Score,
    pub color: Score,
    pub texture: Score,
    pub composition: Score,
    pub content: Score,
}

impl RubricScores {
    /// In the model's output order: overall, originality, color, texture, composition, content.
    pub fn parse(values: [f32; 6]) -> Result<Self, ValidationError> {
        let [overall, originality, color, texture, composition, content] = values.map(Score::parse);
        Ok(Self {
            overall: overall?,
            originality: originality?,
            color: color?,
            texture: texture?,
            composition: composition?,
            content: content?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_bounded() {
        assert!(Score::parse(1.0).is_ok());
        assert!(Score::parse(100.0).is_ok());
        for bad in [0.99, 100.01, f32::NAN, f32::INFINITY] {
            assert!(Score::parse(bad).is_err());
        }
    }
}
