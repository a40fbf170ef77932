//! What the caller knows about a round.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The round's scoring scale: whole points from `min` to `max` (`min < max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scale {
    pub min: i64,
    pub max: i64,
}

impl Scale {
    /// `value` moved inside the scale. Never panics, even on a malformed scale.
    pub(super) fn clamp(&self, value: f64) -> f64 {
        value.max(self.min as f64).min(self.max as f64)
    }

    /// `value` rounded to whole points (halves away from zero) inside the scale.
    pub(super) fn whole_points(&self, value: f64) -> i64 {
        // Clamped before the cast, which saturates in any case.
        self.clamp(value.round()) as i64
    }
}

/// An entry of the round, with the model's score (1–100) if the model has scored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: Uuid,
    pub model: Option<f64>,
}

/// A juror of the round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Juror {
    pub id: Uuid,
    pub name: String,
}

/// One juror's score for one entry, on the round's scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JurorScore {
    pub entry: Uuid,
    pub juror: Uuid,
    pub score: f64,
}

/// Everything the analysis needs about a round. Scores given under a conflict of interest must
/// already be left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundData {
    pub scale: Scale,
    pub entries: Vec<Entry>,
    pub jurors: Vec<Juror>,
    pub scores: Vec<JurorScore>,
}

/// Which panel value the model is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Normalise {
    /// The raw panel mean.
    #[default]
    None,
    /// The mean of the jurors' z-scores, mapped back onto the scale (see the module docs).
    Z,
}
