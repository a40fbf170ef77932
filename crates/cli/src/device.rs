//! `--device` and `--dtype` flags.

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device};
use clap::Args;
use easel_model::WeightFormat;

/// Where and in which precision a command runs the model.
#[derive(Args, Clone, Debug)]
pub struct ComputeArgs {
    /// cpu, cuda or cuda:N (cuda needs a `cuda` build).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weight dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// CPU inference only, with `--dtype f32`: hold the dense layers' weights as f32, bf16
    /// (every layer: half the memory) or int8 (the language model's: a quarter; the scores'
    /// vision tower stays f32). Faster decoding; agreement with f32 in docs/MODEL.md.
    #[arg(long, default_value = "f32")]
    pub weights: String,
}

impl ComputeArgs {
    pub fn device(&self) -> Result<Device> {
        parse_device(&self.device)
    }

    pub fn dtype(&self) -> Result<DType> {
        parse_dtype(&self.dtype)
    }

    pub fn weights(&self) -> Result<WeightFormat> {
        self.weights.parse().map_err(anyhow::Error::msg)
    }
}

/// `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            Device::new_cuda(0).context("cannot open CUDA device 0 (is this a `cuda` build?)")
        }
        other => match other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => Device::new_cuda(n).with_context(|| format!("cannot open CUDA device {n}")),
            None => bail!("unknown device {other:?}: use cpu, cuda or cuda:N"),
        },
    }
}

/// `f32`, `bf16` or `f16`.
pub fn parse_dtype(spec: &str) -> Result<DType> {
    match spec {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        "f16" => Ok(DType::F16),
        other => bail!("unknown dtype {other:?}: use f32, bf16 or f16"),
    }
}
