//! The model crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong between a checkpoint folder and an assessment.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid {what}: {message}")]
    InvalidFile { path: PathBuf, what: &'static str, message: String },
    #[error("the checkpoint in {dir} is missing {what}")]
    MissingFile { dir: PathBuf, what: String },
    #[error("unsupported configuration: {0}")]
    Config(String),
    #[error("the weights do not match the configuration: {0}")]
    Weights(String),
    #[error("the regression head does not fit this checkpoint: {0}")]
    Head(String),
    #[error("image: {0}")]
    Image(#[from] easel_imaging::DecodeError),
    #[error("image: {0}")]
    Preprocess(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, what: &'static str, message: impl ToString) -> Self {
        Self::InvalidFile { path: path.into(), what, message: message.to_string() }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
