//! Fine-tuning and evaluation of Easel's multi-task Qwen2-VL (arXiv 2602.13306): the
//! regression head and LoRA adapters trained with a regression loss on the scores plus a
//! language-model loss on expert critiques, and the statistics a study reports about the result.
//!
//! - [`data`]: the data manifest (JSONL or CSV), validated up front, and where images come from;
//! - [`split`]: deterministic, stratified train/validation splits and k-fold;
//! - [`optim`]: AdamW whose state can be saved and resumed, and the learning-rate schedule;
//! - [`trainable`]: the model with its trainable parts (head, LoRA) and the multi-task loss;
//! - [`batch`]: examples turned into token ids, labels and pixel values;
//! - [`features`]: the head-only fast path's cache of pooled visual features;
//! - [`trainer`]: the training loop (epochs, accumulation, validation, best checkpoint, resume);
//! - [`output`]: writing an Easel checkpoint that `Assessor::load` serves unchanged;
//! - [`metrics`], [`embed`], [`eval`], [`report`]: evaluation statistics, sentence embeddings
//!   (all-MiniLM-L6-v2 with candle-transformers' BERT), and the JSON/Markdown/SVG report.
//!
//! This crate knows nothing of S3: images come through the [`data::ImageSource`] trait, whose
//! local-file implementation lives here; the CLI plugs in others.

pub mod batch;
pub mod data;
pub mod embed;
pub mod error;
pub mod eval;
pub mod features;
pub mod metrics;
pub mod optim;
pub mod output;
pub mod report;
pub mod split;
pub mod trainable;
pub mod trainer;

pub use data::{Dataset, Example, ImageRef, ImageSource, LocalFiles};
pub use error::{Result, TrainError};
pub use trainer::{TrainConfig, TrainSummary, train};
