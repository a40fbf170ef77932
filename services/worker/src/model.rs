//! Loading the model as the settings say.

use anyhow::Context;
use candle_core::{DType, Device};
use easel_core::configuration::{ComputeDevice, ComputeDtype, WorkerSettings};
use easel_model::manifest::Manifest;
use easel_model::{Assessor, LoadOptions};

/// Loads the checkpoint in `worker.model_dir` on the configured device, with the batch size
/// and critique length of the settings.
pub fn load(settings: &WorkerSettings) -> anyhow::Result<Assessor> {
    let device = match settings.device {
        ComputeDevice::Cpu => Device::Cpu,
        ComputeDevice::Cuda(ordinal) => Device::new_cuda(ordinal)
            .with_context(|| format!("opening CUDA device {ordinal} (is this an easel-worker built with `--features cuda`?)"))?,
    };
    let dtype = match settings.dtype {
        ComputeDtype::F32 => DType::F32,
        ComputeDtype::Bf16 => DType::BF16,
    };
    let dir = &settings.model_dir;
    let mut generation = Manifest::read(dir).with_context(|| format!("reading the checkpoint in {}", dir.display()))?.generation;
    if let Some(max_new_tokens) = settings.max_new_tokens {
        generation.max_new_tokens = max_new_tokens;
    }
    let options = LoadOptions { device, dtype, generation: Some(generation), max_pixels: None, max_batch: settings.batch_size };
    Assessor::load(dir, options).with_context(|| format!("loading the checkpoint in {}", dir.display()))
}
