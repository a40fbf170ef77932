//! Loading the model (and the shadow checkpoint, if any) as the settings say.

use std::path::Path;

use anyhow::{Context, bail};
use candle_core::{DType, Device};
use easel_core::configuration::{ComputeDevice, ComputeDtype, WorkerSettings};
use easel_model::manifest::Manifest;
use easel_model::{Assessor, LoadOptions};

/// Loads the checkpoint in `worker.model_dir` on the configured device, with the batch size
/// and critique length of the settings.
pub fn load(settings: &WorkerSettings) -> anyhow::Result<Assessor> {
    load_dir(settings, &settings.model_dir)
}

/// Loads `worker.shadow.model_dir` as [`load`] loads the served checkpoint; it must prepare
/// images as `served` does, since each image is prepared once for both.
pub fn load_shadow(settings: &WorkerSettings, served: &Assessor) -> anyhow::Result<Option<Assessor>> {
    let Some(shadow) = &settings.shadow else {
        return Ok(None);
    };
    let assessor = load_dir(settings, &shadow.model_dir).context("loading the shadow checkpoint (worker.shadow)")?;
    if assessor.processor().config() != served.processor().config() {
        bail!(
            "worker.shadow: the checkpoint in {} prepares images differently from the served one ({:?} against {:?})",
            shadow.model_dir.display(),
            assessor.processor().config(),
            served.processor().config()
        );
    }
    if assessor.model_version() == served.model_version() {
        bail!("worker.shadow: the checkpoint in {} has the served model version {:?}", shadow.model_dir.display(), served.model_version());
    }
    Ok(Some(assessor))
}

fn load_dir(settings: &WorkerSettings, dir: &Path) -> anyhow::Result<Assessor> {
    let device = match settings.device {
        ComputeDevice::Cpu => Device::Cpu,
        ComputeDevice::Cuda(ordinal) => Device::new_cuda(ordinal)
            .with_context(|| format!("opening CUDA device {ordinal} (is this an easel-worker built with `--features cuda`?)"))?,
    };
    let dtype = match settings.dtype {
        ComputeDtype::F32 => DType::F32,
        ComputeDtype::Bf16 => DType::BF16,
    };
    let mut generation = Manifest::read(dir).with_context(|| format!("reading the checkpoint in {}", dir.display()))?.generation;
    if let Some(max_new_tokens) = settings.max_new_tokens {
        generation.max_new_tokens = max_new_tokens;
    }
    let options =
        LoadOptions { device, dtype, generation: Some(generation), max_pixels: None, max_batch: settings.batch_size, ..LoadOptions::cpu() };
    Assessor::load(dir, options).with_context(|| format!("loading the checkpoint in {}", dir.display()))
}
