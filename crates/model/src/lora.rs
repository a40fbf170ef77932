//! LoRA adapters in PEFT's on-disk layout (`adapter_config.json` +
//! `adapter_model.safetensors` with `base_model.model.<module>.lora_{A,B}.weight`), attached to
//! the language model's attention/MLP projections and optionally the vision tower's.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::layers::{LoraDelta, Linear};
use crate::model::Qwen2VlModel;

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
const PEFT_PREFIX: &str = "base_model.model.";

/// `adapter_config.json`, the fields PEFT needs to load the adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    #[serde(default = "lora_type")]
    pub peft_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    /// Module names (`q_proj`, `v_proj`, `qkv`, …) the adapter wraps.
    pub target_modules: Vec<String>,
    #[serde(default)]
    pub lora_dropout: f64,
    #[serde(default = "bias_none")]
    pub bias: String,
    #[serde(default)]
    pub base_model_name_or_path: String,
    #[serde(default = "causal_lm")]
    pub task_type: String,
    /// Whether the vision tower's projections are adapted too (Easel's own field).
    #[serde(default)]
    pub include_vision: bool,
}

fn lora_type() -> String {
    "LORA".into()
}
fn bias_none() -> String {
    "none".into()
}
fn causal_lm() -> String {
    "CAUSAL_LM".into()
}

impl LoraConfig {
    pub fn new(r: usize, lora_alpha: f64, target_modules: Vec<String>, include_vision: bool) -> Self {
        Self {
            peft_type: lora_type(),
            r,
            lora_alpha,
            target_modules,
            lora_dropout: 0.0,
            bias: bias_none(),
            base_model_name_or_path: String::new(),
            task_type: causal_lm(),
            include_vision,
        }
    }

    pub fn scale(&self) -> f64 {
        self.lora_alpha / self.r as f64
    }
}

/// Every adaptable projection of the model, by its module path in the hub's spelling
/// (`model.layers.3.self_attn.q_proj`, `visual.blocks.0.attn.qkv`).
pub fn projections(model: &mut Qwen2VlModel, include_vision: bool) -> Vec<(String, &mut Linear)> {
    let mut out: Vec<(String, &mut Linear)> = Vec::new();
    for (i, layer) in model.text.layers.iter_mut().enumerate() {
        for (name, linear) in layer.self_attn.projections_mut() {
            out.push((format!("model.layers.{i}.self_attn.{name}"), linear));
        }
        for (name, linear) in layer.mlp.projections_mut() {
            out.push((format!("model.layers.{i}.mlp.{name}"), linear));
        }
    }
    if include_vision {
        for (name, linear) in model.vision.projections_mut() {
            out.push((format!("visual.{name}"), linear));
        }
    }
    out
}

/// The last component of a module path (`q_proj`).
pub fn module_kind(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Normalises transformers-5 spellings to the hub's.
fn canonical_module(path: &str) -> String {
    path.replacen("model.language_model.", "model.", 1).replacen("model.visual.", "visual.", 1)
}

/// A loaded adapter: `(A [r, in], B [out, r])` per module path.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    pub config: LoraConfig,
    pub weights: HashMap<String, (Tensor, Tensor)>,
}

impl LoraAdapter {
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let config_path = dir.join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::io(&config_path, e))?;
        let config: LoraConfig =
            serde_json::from_str(&text).map_err(|e| ModelError::invalid(&config_path, "adapter_config.json", e))?;
        if config.peft_type != "LORA" || config.r == 0 {
            return Err(ModelError::invalid(&config_path, "adapter_config.json", "expected a LORA adapter with r > 0"));
        }
        let weights_path = dir.join(ADAPTER_WEIGHTS);
        let tensors = candle_core::safetensors::load(&weights_path, device)
            .map_err(|e| ModelError::invalid(&weights_path, "adapter_model.safetensors", e))?;
        let mut pairs: HashMap<String, (Option<Tensor>, Option<Tensor>)> = HashMap::new();
        for (name, tensor) in tensors {
            let stripped = name.strip_prefix(PEFT_PREFIX).unwrap_or(&name);
            let (module, which) = if let Some(m) = stripped.strip_suffix(".lora_A.weight") {
                (m, 0)
            } else if let Some(m) = stripped.strip_suffix(".lora_B.weight") {
                (m, 1)
            } else {
                return Err(ModelError::invalid(&weights_path, "LoRA adapter", format!("unexpected tensor {name}")));
            };
            let tensor = tensor.to_dtype(dtype)?;
            let slot = pairs.entry(canonical_module(module)).or_default();
            if which == 0 { slot.0 = Some(tensor) } else { slot.1 = Some(tensor) }
        }
        let mut weights = HashMap::new();
        for (module, pair) in pairs {
            match pair {
                (Some(a), Some(b)) => {
                    weights.insert(module, (a, b));
                }
                _ => {
                    return Err(ModelError::invalid(&weights_path, "LoRA adapter", format!("{module} lacks lora_A or lora_B")));
                }
            }
        }
        Ok(Self { config, weights })
    }

    /// Wraps every adapted projection of `model`; shapes must fit.
    pub fn attach(&self, model: &mut Qwen2VlModel) -> Result<()> {
        let scale = self.config.scale();
        let mut remaining: std::collections::HashSet<&String> = self.weights.keys().collect();
        for (path, linear) in projections(model, true) {
            let Some((a, b)) = self.weights.get(&path) else { continue };
            remaining.remove(&path);
            let (out_dim, in_dim) = linear.weight().dims2()?;
            if a.dims() != [self.config.r, in_dim] || b.dims() != [out_dim, self.config.r] {
                return Err(ModelError::Weights(format!(
                    "LoRA {path}: A {:?} and B {:?} do not fit a {out_dim}×{in_dim} weight with rank {}",
                    a.dims(),
                    b.dims(),
                    self.config.r
                )));
            }
            linear.set_lora(Some(LoraDelta { a: a.clone(), b: b.clone(), scale }));
        }
        if let Some(unknown) = remaining.into_iter().next() {
            return Err(ModelError::Weights(format!("the LoRA adapter names {unknown}, which the model lacks")));
        }
        Ok(())
    }

    /// Writes the adapter in PEFT's layout.
    pub fn save(config: &LoraConfig, weights: &[(String, Tensor, Tensor)], dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let config_path = dir.join(ADAPTER_CONFIG);
        let text = serde_json::to_string_pretty(config).expect("serialises");
        std::fs::write(&config_path, text + "\n").map_err(|e| ModelError::io(&config_path, e))?;
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (module, a, b) in weights {
            tensors.insert(format!("{PEFT_PREFIX}{module}.lora_A.weight"), a.to_dtype(DType::F32)?);
            tensors.insert(format!("{PEFT_PREFIX}{module}.lora_B.weight"), b.to_dtype(DType::F32)?);
        }
        let path = dir.join(ADAPTER_WEIGHTS);
        candle_core::safetensors::save(&tensors, &path)?;
        Ok(())
    }
}

/// Copies an Easel checkpoint with a LoRA adapter to `out`, folding `W + (α/r)·B·A` into each
/// adapted weight, shard by shard, and dropping the adapter from `easel.json`.
pub fn merge_checkpoint(src: &Path, out: &Path) -> Result<()> {
    use crate::checkpoint::CheckpointFiles;
    use crate::manifest::Manifest;

    let mut manifest = Manifest::read(src)?;
    let adapter_dir = manifest
        .lora_dir(src)?
        .ok_or_else(|| ModelError::Input(format!("{} has no LoRA adapter to merge", src.display())))?;
    let files = CheckpointFiles::locate(src)?;
    if src.canonicalize().ok() == out.canonicalize().ok() {
        return Err(ModelError::Input("merge into a new folder, not onto the checkpoint itself".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| ModelError::io(out, e))?;
    let adapter = LoraAdapter::load(&adapter_dir, &Device::Cpu, DType::F32)?;
    let scale = adapter.config.scale();
    let mut merged = 0usize;
    for shard in &files.weights {
        let mut tensors = candle_core::safetensors::load(shard, &Device::Cpu)?;
        for (name, tensor) in tensors.iter_mut() {
            let Some(module) = name.strip_suffix(".weight") else { continue };
            let Some((a, b)) = adapter.weights.get(&canonical_module(module)) else { continue };
            let dtype = tensor.dtype();
            let delta = (b.matmul(a)? * scale)?;
            *tensor = (tensor.to_dtype(DType::F32)? + delta)?.to_dtype(dtype)?;
            merged += 1;
        }
        let name = shard.file_name().expect("a shard has a file name");
        candle_core::safetensors::save(&tensors, out.join(name))?;
    }
    if merged != adapter.weights.len() {
        return Err(ModelError::Weights(format!(
            "merged {merged} of the adapter's {} modules; the rest are missing from the weights",
            adapter.weights.len()
        )));
    }
    for entry in std::fs::read_dir(src).map_err(|e| ModelError::io(src, e))? {
        let entry = entry.map_err(|e| ModelError::io(src, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let is_weights = files.weights.iter().any(|w| w == &path);
        if path.is_file() && !is_weights && name != crate::manifest::MANIFEST_FILE {
            std::fs::copy(&path, out.join(&name)).map_err(|e| ModelError::io(&path, e))?;
        }
    }
    manifest.lora = None;
    manifest.model_version = format!("{}-merged", manifest.model_version);
    manifest.write(out)
}
