//! The regression head of the multi-task model: a small MLP on the mean of an image's merged
//! visual tokens that predicts the overall score and the five rubric scores.

use std::path::Path;

use candle_core::{DType, Device, Module, Result as CandleResult, Tensor};
use candle_nn::VarBuilder;
use easel_rubric::{OUTPUTS, RubricScores};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::layers::{Kernels, LayerNorm, Linear};

/// The head's shape, as recorded in `easel.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Width of the pooled visual features (the language model's hidden size).
    pub input_dim: usize,
    pub hidden_dim: usize,
    /// Output names; must be [`OUTPUTS`].
    pub outputs: Vec<String>,
    /// Scores are `min + (max − min) · σ(z)`.
    pub score_range: [f32; 2],
    /// How an image's visual tokens are pooled; only `"mean"`.
    pub pooling: String,
}

impl HeadConfig {
    pub fn new(input_dim: usize, hidden_dim: usize) -> Self {
        Self {
            input_dim,
            hidden_dim,
            outputs: OUTPUTS.iter().map(|s| s.to_string()).collect(),
            score_range: [1.0, 100.0],
            pooling: "mean".into(),
        }
    }

    pub fn validate(&self, hidden_size: usize) -> Result<()> {
        if self.input_dim != hidden_size {
            return Err(ModelError::Head(format!(
                "easel.json says the head reads {}-wide features, the model produces {hidden_size}",
                self.input_dim
            )));
        }
        if self.outputs.iter().map(String::as_str).ne(OUTPUTS) {
            return Err(ModelError::Head(format!("outputs must be {OUTPUTS:?}, got {:?}", self.outputs)));
        }
        let [lo, hi] = self.score_range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(ModelError::Head(format!("bad score_range {:?}", self.score_range)));
        }
        if self.pooling != "mean" {
            return Err(ModelError::Head(format!("unknown pooling {:?}", self.pooling)));
        }
        if self.hidden_dim == 0 {
            return Err(ModelError::Head("hidden_dim must be positive".into()));
        }
        Ok(())
    }

    /// Maps raw outputs into the score range.
    pub fn to_scores(&self, raw: &Tensor) -> CandleResult<Tensor> {
        let [lo, hi] = self.score_range;
        (candle_nn::ops::sigmoid(raw)? * f64::from(hi - lo))? + f64::from(lo)
    }

    /// Maps scores into `[0, 1]`, the space the regression loss works in.
    pub fn normalise(&self, score: f32) -> f32 {
        let [lo, hi] = self.score_range;
        ((score - lo) / (hi - lo)).clamp(0.0, 1.0)
    }
}

/// `LayerNorm → Linear → GELU → Linear`, run in f32.
#[derive(Debug, Clone)]
pub struct RegressionHead {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    config: HeadConfig,
}

impl RegressionHead {
    /// Tensor names: `norm.{weight,bias}`, `fc1.{weight,bias}`, `fc2.{weight,bias}`.
    pub fn new(config: &HeadConfig, vb: VarBuilder) -> CandleResult<Self> {
        Ok(Self {
            norm: {
                // The head is trained with autograd and costs nothing at inference: always the
                // differentiable norm.
                let mut norm = LayerNorm::load(config.input_dim, 1e-5, vb.pp("norm"))?;
                norm.kernels = Kernels::Differentiable;
                norm
            },
            fc1: Linear::load(config.input_dim, config.hidden_dim, true, vb.pp("fc1"))?,
            fc2: Linear::load(config.hidden_dim, config.outputs.len(), true, vb.pp("fc2"))?,
            config: config.clone(),
        })
    }

    /// Loads `head.safetensors`, checking every tensor against `config`.
    pub fn load(path: &Path, config: &HeadConfig, device: &Device) -> Result<Self> {
        if !path.is_file() {
            return Err(ModelError::Head(format!("{} is missing", path.display())));
        }
        // SAFETY: read-only mapping of a file Easel does not modify while it is open.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, device) }
            .map_err(|e| ModelError::Head(format!("{}: {e}", path.display())))?;
        Self::new(config, vb).map_err(|e| ModelError::Head(format!("{}: {e}", path.display())))
    }

    pub fn config(&self) -> &HeadConfig {
        &self.config
    }

    /// Raw outputs (before the sigmoid) for pooled features `[n, input_dim]`.
    pub fn forward_raw(&self, pooled: &Tensor) -> CandleResult<Tensor> {
        let xs = self.norm.forward(&pooled.to_dtype(DType::F32)?)?;
        self.fc2.forward(&self.fc1.forward(&xs)?.gelu_erf()?)
    }

    /// Scores `[n, 6]` within the score range.
    pub fn forward(&self, pooled: &Tensor) -> CandleResult<Tensor> {
        self.config.to_scores(&self.forward_raw(pooled)?)
    }

    /// Scores per image.
    ///
    /// Each row goes through the head on its own, so that a painting's scores do not depend on
    /// how many rows share the call (a matrix product's rounding depends on its row count).
    pub fn scores(&self, pooled: &Tensor) -> Result<Vec<RubricScores<f32>>> {
        (0..pooled.dim(0)?)
            .map(|i| {
                let row = self.forward(&pooled.narrow(0, i, 1)?)?.flatten_all()?.to_vec1::<f32>()?;
                let outputs = <[f32; 6]>::try_from(row).map_err(|_| ModelError::Head("expected 6 outputs".into()))?;
                Ok(RubricScores::from_array(outputs))
            })
            .collect()
    }
}
