//! Easel's rubric, defined once: the overall score and the five criteria of the paper's rubric.
//!
//! The model's head produces a [`RubricScores<f32>`]; the domain checks it into scores in
//! 1..=100; database rows and JSON carry it as six flat fields (`overall`, then the criteria); a
//! competition's leaderboard weights are a [`Rubric<f32>`], and jurors' scores, on a round's
//! own scale, use the same types. Other crates walk [`CRITERIA`], [`OUTPUTS`] or the types'
//! helpers rather than spelling the six names again.
//!
//! Optional features: `utoipa` (`ToSchema` for the `f32` rubrics the APIs serve) and `sqlx`
//! (`FromRow` reading columns named after the fields).

use serde::{Deserialize, Serialize};

#[cfg(feature = "utoipa")]
mod schema;
#[cfg(feature = "sqlx")]
mod sql;

/// The five criteria, in the order Easel reports them (and the head outputs them).
pub const CRITERIA: [&str; 5] = ["originality", "color", "texture", "composition", "content"];

/// The name of the overall score.
pub const OVERALL: &str = "overall";

/// The head's outputs, in its order: the overall score, then [`CRITERIA`].
pub const OUTPUTS: [&str; 6] = {
    let mut outputs = [OVERALL; 6];
    let mut i = 0;
    while i < CRITERIA.len() {
        outputs[i + 1] = CRITERIA[i];
        i += 1;
    }
    outputs
};

/// One value per criterion: a painting's scores, a juror's marks, a competition's weights.
/// Serialised as five fields named as in [`CRITERIA`]; every helper goes in that order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rubric<T> {
    pub originality: T,
    pub color: T,
    pub texture: T,
    pub composition: T,
    pub content: T,
}

impl Rubric<&'static str> {
    /// Each criterion's name in its own place.
    pub fn names() -> Self {
        Self::from_array(CRITERIA)
    }
}

impl<T> Rubric<T> {
    /// From values in [`CRITERIA`] order.
    pub fn from_array([originality, color, texture, composition, content]: [T; 5]) -> Self {
        Self { originality, color, texture, composition, content }
    }

    /// The values in [`CRITERIA`] order.
    pub fn into_array(self) -> [T; 5] {
        let Self { originality, color, texture, composition, content } = self;
        [originality, color, texture, composition, content]
    }

    /// The values in [`CRITERIA`] order.
    pub fn to_array(&self) -> [T; 5]
    where
        T: Clone,
    {
        self.clone().into_array()
    }

    pub fn as_ref(&self) -> Rubric<&T> {
        let Self { originality, color, texture, composition, content } = self;
        Rubric { originality, color, texture, composition, content }
    }

    pub fn as_mut(&mut self) -> Rubric<&mut T> {
        let Self { originality, color, texture, composition, content } = self;
        Rubric { originality, color, texture, composition, content }
    }

    /// Applies `f` to each value, in [`CRITERIA`] order.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Rubric<U> {
        Rubric::from_array(self.into_array().map(f))
    }

    /// Applies `f` to each value in [`CRITERIA`] order, stopping at the first error.
    pub fn try_map<U, E>(self, mut f: impl FnMut(T) -> Result<U, E>) -> Result<Rubric<U>, E> {
        let Self { originality, color, texture, composition, content } = self;
        Ok(Rubric {
            originality: f(originality)?,
            color: f(color)?,
            texture: f(texture)?,
            composition: f(composition)?,
            content: f(content)?,
        })
    }

    /// Pairs each value with `other`'s for the same criterion.
    pub fn zip<U>(self, other: Rubric<U>) -> Rubric<(T, U)> {
        let [a, b, c, d, e] = self.into_array();
        let [v, w, x, y, z] = other.into_array();
        Rubric::from_array([(a, v), (b, w), (c, x), (d, y), (e, z)])
    }

    /// `(name, value)` pairs in [`CRITERIA`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, T)> + use<T>
    where
        T: Copy,
    {
        CRITERIA.into_iter().zip(self.to_array())
    }
}

/// The overall score and one score per criterion: what the model's head outputs, what a
/// result row and the API's `scores` hold. Serialised flat: `overall`, then the criteria.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RubricScores<T> {
    pub overall: T,
    #[serde(flatten)]
    pub rubric: Rubric<T>,
}

impl RubricScores<&'static str> {
    /// Each output's name in its own place.
    pub fn names() -> Self {
        Self::from_array(OUTPUTS)
    }
}

impl<T> RubricScores<T> {
    /// From values in the head's [`OUTPUTS`] order: overall, then the criteria.
    pub fn from_array([overall, originality, color, texture, composition, content]: [T; 6]) -> Self {
        Self { overall, rubric: Rubric { originality, color, texture, composition, content } }
    }

    /// The values in [`OUTPUTS`] order.
    pub fn into_array(self) -> [T; 6] {
        let [originality, color, texture, composition, content] = self.rubric.into_array();
        [self.overall, originality, color, texture, composition, content]
    }

    /// The values in [`OUTPUTS`] order.
    pub fn to_array(&self) -> [T; 6]
    where
        T: Clone,
    {
        self.clone().into_array()
    }

    pub fn as_ref(&self) -> RubricScores<&T> {
        RubricScores { overall: &self.overall, rubric: self.rubric.as_ref() }
    }

    pub fn as_mut(&mut self) -> RubricScores<&mut T> {
        RubricScores { overall: &mut self.overall, rubric: self.rubric.as_mut() }
    }

    /// Applies `f` to each value, in [`OUTPUTS`] order.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> RubricScores<U> {
        RubricScores { overall: f(self.overall), rubric: self.rubric.map(f) }
    }

    /// Applies `f` to each value in [`OUTPUTS`] order, stopping at the first error.
    pub fn try_map<U, E>(self, mut f: impl FnMut(T) -> Result<U, E>) -> Result<RubricScores<U>, E> {
        Ok(RubricScores { overall: f(self.overall)?, rubric: self.rubric.try_map(f)? })
    }

    /// Pairs each value with `other`'s for the same output.
    pub fn zip<U>(self, other: RubricScores<U>) -> RubricScores<(T, U)> {
        RubricScores { overall: (self.overall, other.overall), rubric: self.rubric.zip(other.rubric) }
    }

    /// `(name, value)` pairs in [`OUTPUTS`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, T)> + use<T>
    where
        T: Copy,
    {
        OUTPUTS.into_iter().zip(self.to_array())
    }
}

/// How a result's scores were made: by a trained regression head on the pooled visual tokens,
/// or zero-shot from the language model's level-word probabilities (Q-Align). Stored with
/// every result and served as `scoring`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum ScoringMode {
    #[default]
    #[serde(rename = "head")]
    Head,
    #[serde(rename = "zero-shot")]
    ZeroShot,
}

impl ScoringMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::ZeroShot => "zero-shot",
        }
    }

    /// Parses the stored or configured name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "head" => Some(Self::Head),
            "zero-shot" => Some(Self::ZeroShot),
            _ => None,
        }
    }
}

impl TryFrom<String> for ScoringMode {
    type Error = String;

    /// For rows: `#[sqlx(try_from = "String")]` reads the `scoring` column.
    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name).ok_or_else(|| format!("unknown scoring mode {name:?}"))
    }
}

impl std::fmt::Display for ScoringMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scoring_modes_round_trip() {
        for mode in [ScoringMode::Head, ScoringMode::ZeroShot] {
            assert_eq!(ScoringMode::parse(mode.as_str()), Some(mode));
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{mode}\""));
        }
        assert_eq!(ScoringMode::parse("zero_shot"), None);
    }

    #[test]
    fn outputs_are_overall_then_the_criteria() {
        assert_eq!(OUTPUTS, ["overall", "originality", "color", "texture", "composition", "content"]);
        assert_eq!(RubricScores::names().into_array(), OUTPUTS);
        assert_eq!(Rubric::names().to_array(), CRITERIA);
    }

    #[test]
    fn serialised_flat_in_order() {
        let scores = RubricScores::from_array([1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5]);
        let json = serde_json::to_string(&scores).unwrap();
        assert_eq!(
            json,
            r#"{"overall":1.0,"originality":2.0,"color":3.0,"texture":4.0,"composition":5.0,"content":6.5}"#
        );
        assert_eq!(serde_json::from_str::<RubricScores<f32>>(&json).unwrap(), scores);
        assert_eq!(
            serde_json::to_string(&scores.rubric).unwrap(),
            r#"{"originality":2.0,"color":3.0,"texture":4.0,"composition":5.0,"content":6.5}"#
        );
        let value = serde_json::to_value(scores).unwrap();
        for (name, v) in scores.iter() {
            assert_eq!(value[name], json!(v));
        }
        // Integers in JSON read as numbers, through the flattened fields too.
        let read: RubricScores<f32> = serde_json::from_str(
            r#"{"overall": 72, "originality": 70, "color": 80, "texture": 65, "composition": 74, "content": 71}"#,
        )
        .unwrap();
        assert_eq!(read.rubric.composition, 74.0);
        // A missing criterion is an error.
        assert!(serde_json::from_str::<Rubric<f32>>(r#"{"originality": 1, "color": 1}"#).is_err());
    }

    #[test]
    fn helpers_keep_the_order() {
        let scores = RubricScores::from_array([10, 20, 30, 40, 50, 60]);
        assert_eq!(scores.overall, 10);
        assert_eq!(scores.rubric.color, 30);
        assert_eq!(scores.rubric.content, 60);
        assert_eq!(scores.map(|v| v / 10).into_array(), [1, 2, 3, 4, 5, 6]);
        let names: Vec<&str> = scores.iter().map(|(name, _)| name).collect();
        assert_eq!(names, OUTPUTS);
        assert_eq!(scores.rubric.iter().map(|(_, v)| v).collect::<Vec<_>>(), [20, 30, 40, 50, 60]);
        let zipped = scores.rubric.zip(Rubric::names());
        assert_eq!(zipped.texture, (40, "texture"));
        assert_eq!(scores.as_ref().map(|v| *v + 1).overall, 11);
    }

    #[test]
    fn try_map_stops_at_the_first_error() {
        let mut seen = Vec::new();
        let scores = RubricScores::from_array([1, 2, -3, 4, -5, 6]);
        let result = scores.try_map(|v| {
            seen.push(v);
            if v < 0 { Err(v) } else { Ok(v as u32) }
        });
        assert_eq!(result, Err(-3));
        assert_eq!(seen, [1, 2, -3]);
        assert_eq!(scores.map(i32::abs).try_map(u8::try_from).unwrap().into_array(), [1, 2, 3, 4, 5, 6]);
    }
}
