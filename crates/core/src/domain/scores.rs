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

/// The overall score and the five rubric scores. `RubricScores` alone is an assessment's
/// checked scores, built from the model's with `try_map(Score::parse)`; rows read
/// `RubricScores<f32>`.
pub type RubricScores<T = Score> = easel_rubric::RubricScores<T>;

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

    #[test]
    fn rubric_scores_are_checked_one_by_one() {
        let model = easel_rubric::RubricScores::from_array([72.0, 60.0, 80.0, 55.5, 70.0, 66.0]);
        let scores: RubricScores = model.try_map(Score::parse).unwrap();
        assert_eq!(scores.map(Score::value), model);
        let json = serde_json::to_value(scores).unwrap();
        assert_eq!(json, serde_json::to_value(model).unwrap());
        assert_eq!(serde_json::from_value::<RubricScores>(json).unwrap(), scores);
        let err = easel_rubric::RubricScores::from_array([72.0, 60.0, 0.5, 55.5, 70.0, 66.0]).try_map(Score::parse);
        assert_eq!(err.unwrap_err().field, "score");
    }
}
