//! Writing a trained Easel checkpoint: the base's Hugging Face files (hard-linked, or copied
//! across file systems), `head.safetensors`, the LoRA adapter in PEFT's layout under
//! `adapter/`, and `easel.json` last, so a reader never sees a manifest without its files.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use easel_model::lora::{LoraAdapter, LoraConfig};
use easel_model::manifest::{LoraEntry, MANIFEST_FILE, Manifest};

use crate::error::{Result, TrainError};

/// Folder of the adapter inside a checkpoint.
pub const ADAPTER_DIR: &str = "adapter";
/// Files of a base folder that a trained checkpoint replaces rather than links.
const OWN_FILES: [&str; 4] = [MANIFEST_FILE, "head.safetensors", "run.json", "metrics.json"];

/// Hard-links (or copies) every regular file of `base` that `out` lacks, except Easel's own.
pub fn link_base_files(base: &Path, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    for entry in std::fs::read_dir(base).map_err(|e| TrainError::io(base, e))? {
        let entry = entry.map_err(|e| TrainError::io(base, e))?;
        let path = entry.path();
        let name = entry.file_name();
        if !path.is_file() || OWN_FILES.iter().any(|own| name == *own) {
            continue;
        }
        let target = out.join(&name);
        if target.exists() {
            continue;
        }
        if std::fs::hard_link(&path, &target).is_err() {
            std::fs::copy(&path, &target).map_err(|e| TrainError::io(&path, e))?;
        }
    }
    Ok(())
}

/// An adapter's configuration and its `(module, A, B)` weights.
pub type AdapterWeights<'a> = (&'a LoraConfig, &'a [(String, Tensor, Tensor)]);

/// Writes the trained parts into `out` (which already holds the base files).
pub fn write_trained(
    out: &Path,
    manifest: &Manifest,
    head: &HashMap<String, Tensor>,
    lora: Option<AdapterWeights>,
) -> Result<()> {
    let head_tmp = out.join("head.safetensors.tmp");
    candle_core::safetensors::save(head, &head_tmp)?;
    let head_path = manifest
        .head_path(out)?
        .ok_or_else(|| TrainError::Config("the trained checkpoint's easel.json names no head".into()))?;
    std::fs::rename(&head_tmp, &head_path).map_err(|e| TrainError::io(&head_path, e))?;

    let adapter = out.join(ADAPTER_DIR);
    let mut manifest = manifest.clone();
    match lora {
        Some((config, weights)) => {
            let tmp = out.join(format!("{ADAPTER_DIR}.tmp"));
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
            }
            LoraAdapter::save(config, weights, &tmp)?;
            if adapter.exists() {
                std::fs::remove_dir_all(&adapter).map_err(|e| TrainError::io(&adapter, e))?;
            }
            std::fs::rename(&tmp, &adapter).map_err(|e| TrainError::io(&adapter, e))?;
            manifest.lora = Some(LoraEntry { path: ADAPTER_DIR.into() });
        }
        None => manifest.lora = None,
    }
    manifest.write(out)?;
    Ok(())
}
