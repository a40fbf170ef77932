//! The head-only fast path's feature cache: every image's pooled visual features, computed
//! once by the frozen vision tower (no gradients) and kept in a safetensors file, so training
//! the head (or a hyper-parameter search) takes seconds.
//!
//! The file is named by a fingerprint of the model and the image processor; inside, each
//! image's features are keyed by the SHA-256 of its bytes, so renamed or re-ordered images hit
//! the cache and edited ones miss it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use easel_model::{ImageProcessor, Qwen2VlModel};
use sha2::{Digest, Sha256};

use crate::batch::{pixel_values, prepare_images};
use crate::data::{Example, ImageSource};
use crate::error::{Result, TrainError};

/// A fingerprint of a checkpoint folder's weights and config, the processor and the dtype:
/// config files hashed whole, each weight file by name, size and its first MiB.
pub fn model_fingerprint(dir: &Path, processor: &ImageProcessor, dtype: DType) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TrainError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        if name.ends_with(".safetensors") && name != "head.safetensors" {
            let mut file = std::fs::File::open(&path).map_err(|e| TrainError::io(&path, e))?;
            let len = file.metadata().map_err(|e| TrainError::io(&path, e))?.len();
            let mut head = Vec::with_capacity(1 << 20);
            (&mut file).take(1 << 20).read_to_end(&mut head).map_err(|e| TrainError::io(&path, e))?;
            hasher.update(name.as_bytes());
            hasher.update(len.to_le_bytes());
            hasher.update(&head);
        } else if name == "config.json" {
            hasher.update(std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?);
        }
    }
    hasher.update(processor.config().to_json().to_string().as_bytes());
    hasher.update(format!("{dtype:?}").as_bytes());
    Ok(hex::encode(&hasher.finalize()[..8]))
}

/// Features of `rows`, `[n, hidden]` f32 on `device`, computing only what `cache_dir` lacks.
#[allow(clippy::too_many_arguments)]
pub fn pooled_features(
    model: &Qwen2VlModel,
    processor: &ImageProcessor,
    rows: &[&Example],
    source: &dyn ImageSource,
    fingerprint: &str,
    cache_dir: Option<&Path>,
    batch_size: usize,
    mut on_batch: impl FnMut(usize),
) -> Result<Tensor> {
    let device = model.device().clone();
    let keys: Vec<String> = rows
        .iter()
        .map(|row| {
            let bytes = source.read(&row.image).map_err(|message| TrainError::Image { image: row.image.to_string(), message })?;
            Ok(hex::encode(&Sha256::digest(&bytes)[..16]))
        })
        .collect::<Result<_>>()?;
    let cache_file = cache_dir.map(|d| d.join(format!("features-{fingerprint}.safetensors")));
    let mut cached: HashMap<String, Tensor> = match &cache_file {
        Some(path) if path.is_file() => candle_core::safetensors::load(path, &Device::Cpu)?,
        _ => HashMap::new(),
    };
    let missing: Vec<usize> = (0..rows.len()).filter(|&i| !cached.contains_key(&keys[i])).collect();
    for chunk in missing.chunks(batch_size.max(1)) {
        let chunk_rows: Vec<&Example> = chunk.iter().map(|&i| rows[i]).collect();
        let images = prepare_images(&chunk_rows, source, processor)?;
        let (pixels, grids) = pixel_values(&images, &device)?;
        let merged = model.vision.forward(&pixels.to_dtype(model.dtype())?, &grids)?;
        let pooled = model.vision.pool(&merged, &grids)?.to_device(&Device::Cpu)?;
        for (k, &i) in chunk.iter().enumerate() {
            cached.insert(keys[i].clone(), pooled.get(k)?);
        }
        on_batch(chunk.len());
    }
    if let (Some(path), false) = (&cache_file, missing.is_empty()) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        }
        let tmp = path.with_extension("tmp");
        candle_core::safetensors::save(&cached, &tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))?;
    }
    let rows: Vec<Tensor> = keys.iter().map(|k| cached[k].clone()).collect();
    Ok(Tensor::stack(&rows, 0)?.to_dtype(DType::F32)?.to_device(&device)?)
}
