//! Errors of the training and evaluation crate.

use std::path::{Path, PathBuf};

use crate::data::ManifestErrors;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Manifest(#[from] ManifestErrors),
    #[error(transparent)]
    Model(#[from] easel_model::ModelError),
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot resume: {0}")]
    Resume(String),
    #[error("sentence embedder: {0}")]
    Embedder(String),
    #[error("report: {0}")]
    Report(String),
}

impl TrainError {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::Io { path: path.as_ref().to_path_buf(), source }
    }
}

pub type Result<T> = std::result::Result<T, TrainError>;
