//! Easel's model: Qwen2-VL (vision tower + Qwen2 language model with M-RoPE) in candle, with a
//! regression head on the pooled visual tokens, as in arXiv 2602.13306 ("Fine-Tuning a Large
//! Vision-Language Model for Artwork's Scoring and Critique").
//!
//! One vision pass per batch serves both tasks: the head turns each painting's pooled visual
//! tokens into an overall score and five rubric scores, and the language model writes a
//! critique conditioned on the painting, the artist's description and those scores.
//!
//! This crate knows nothing of HTTP, queues or storage: images and text in, assessments out.
//! [`Assessor`] is the batch API that the `easel` CLI and the worker both call.

pub mod assess;
pub mod checkpoint;
pub mod config;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod error;
pub mod generate;
pub mod head;
pub mod init;
pub mod layers;
pub mod lora;
pub mod manifest;
pub mod model;
pub mod pipeline;
pub mod processor;
pub mod prompt;
pub mod rope;
pub mod text;
pub mod vision;
pub mod zero_shot;

/// Zero-shot scores onto a jury's scale: pure statistics, kept in `easel-agreement` so the API
/// (which links no candle) fits the same maps from a round's juror scores.
pub use easel_agreement::calibration;

pub use assess::{ArtworkInput, Assessment, Assessor, LoadOptions, Scored, Timings};
pub use config::Config;
pub use cpu::WeightFormat;
pub use easel_imaging::{DecodeError, DecodeLimits};
pub use easel_rubric::{CRITERIA, OUTPUTS, Rubric, RubricScores, ScoringMode};
pub use error::{ModelError, Result};
pub use generate::GenerationConfig;
pub use manifest::Manifest;
pub use model::Qwen2VlModel;
pub use pipeline::Qwen2Vl;
pub use processor::{Grid, ImageProcessor, PreparedImage, ProcessorConfig};
pub use zero_shot::{ZeroShot, ZeroShotPrompts};
