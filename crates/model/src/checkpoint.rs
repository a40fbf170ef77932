//! Finding and opening the files of a Hugging Face Qwen2-VL checkpoint folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde_json::Value;

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::processor::ProcessorConfig;

/// Where the tensors of each part live: the hub's spelling or transformers 5's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// `visual.*`, `model.layers.*`, `lm_head` (Qwen/Qwen2-VL-*-Instruct on the hub).
    Hub,
    /// `model.visual.*`, `model.language_model.*`, `lm_head` (transformers ≥ 5 `save_pretrained`).
    Transformers5,
}

impl WeightLayout {
    pub fn vision_prefix(self) -> &'static str {
        match self {
            Self::Hub => "visual",
            Self::Transformers5 => "model.visual",
        }
    }
    pub fn text_prefix(self) -> &'static str {
        match self {
            Self::Hub => "model",
            Self::Transformers5 => "model.language_model",
        }
    }
}

/// The files of a checkpoint folder, located and checked to exist.
#[derive(Debug, Clone)]
pub struct CheckpointFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    /// `model.safetensors`, or every shard named by `model.safetensors.index.json`.
    pub weights: Vec<PathBuf>,
    /// `tokenizer.json`; only the model's numerics can run without it.
    pub tokenizer: Option<PathBuf>,
    /// `preprocessor_config.json`, or transformers 5's `processor_config.json` whose
    /// `image_processor` section holds the same fields.
    pub preprocessor: Option<PathBuf>,
}

impl CheckpointFiles {
    pub fn locate(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(ModelError::MissingFile {
                dir: dir.to_path_buf(),
                what: "the folder itself (no such directory)".into(),
            });
        }
        let required = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(ModelError::MissingFile { dir: dir.to_path_buf(), what: name.to_string() })
            }
        };
        let config = required("config.json")?;
        let tokenizer = Some(dir.join("tokenizer.json")).filter(|p| p.is_file());
        let weights = locate_weights(dir)?;
        let preprocessor = ["preprocessor_config.json", "processor_config.json"]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file());
        Ok(Self { dir: dir.to_path_buf(), config, weights, tokenizer, preprocessor })
    }

    pub fn tokenizer(&self) -> Result<&Path> {
        self.tokenizer.as_deref().ok_or_else(|| ModelError::MissingFile {
            dir: self.dir.clone(),
            what: "tokenizer.json".into(),
        })
    }

    pub fn read_config(&self) -> Result<Config> {
        Config::from_file(&self.config)
    }

    pub fn read_processor_config(&self) -> Result<ProcessorConfig> {
        let Some(path) = &self.preprocessor else { return Ok(ProcessorConfig::default()) };
        let value = read_json(path, "processor config")?;
        let section = value.get("image_processor").unwrap_or(&value);
        ProcessorConfig::from_value(section).map_err(|m| ModelError::invalid(path, "processor config", m))
    }

    /// Memory-maps the weights as a `VarBuilder` converting to `dtype` on `device`.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
        for path in &self.weights {
            check_safetensors_header(path)?;
        }
        // SAFETY: the files are memory-mapped read-only; Easel never writes a checkpoint it has
        // open, and a concurrent writer would be an operator error the OS cannot prevent.
        unsafe { VarBuilder::from_mmaped_safetensors(&self.weights, dtype, device) }
            .map_err(|e| ModelError::Weights(e.to_string()))
    }

    /// The chat template: `chat_template.jinja`, `chat_template.json` or
    /// `tokenizer_config.json`'s `chat_template`, in that order.
    pub fn chat_template(&self) -> Result<String> {
        let jinja = self.dir.join("chat_template.jinja");
        if jinja.is_file() {
            return std::fs::read_to_string(&jinja).map_err(|e| ModelError::io(&jinja, e));
        }
        for name in ["chat_template.json", "tokenizer_config.json"] {
            let path = self.dir.join(name);
            if !path.is_file() {
                continue;
            }
            let value = read_json(&path, "JSON file")?;
            match value.get("chat_template") {
                Some(Value::String(template)) => return Ok(template.clone()),
                // A list of named templates: take "default".
                Some(Value::Array(named)) => {
                    if let Some(t) = named.iter().find_map(|t| {
                        (t.get("name").and_then(Value::as_str) == Some("default"))
                            .then(|| t.get("template").and_then(Value::as_str))
                            .flatten()
                    }) {
                        return Ok(t.to_string());
                    }
                }
                _ => {}
            }
        }
        Err(ModelError::MissingFile {
            dir: self.dir.clone(),
            what: "a chat template (chat_template.jinja, chat_template.json or tokenizer_config.json)"
                .into(),
        })
    }

    /// End-of-sequence ids from `generation_config.json`, if present.
    pub fn generation_eos_ids(&self) -> Result<Vec<u32>> {
        let path = self.dir.join("generation_config.json");
        if !path.is_file() {
            return Ok(Vec::new());
        }
        let value = read_json(&path, "generation_config.json")?;
        Ok(match value.get("eos_token_id") {
            Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_u64).map(|v| v as u32).collect(),
            Some(v) => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
            None => Vec::new(),
        })
    }
}

pub(crate) fn read_json(path: &Path, what: &'static str) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::invalid(path, what, e))
}

fn locate_weights(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let value = read_json(&index, "safetensors index")?;
        let map = value
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| ModelError::invalid(&index, "safetensors index", "no weight_map object"))?;
        let shards: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
        if shards.is_empty() {
            return Err(ModelError::invalid(&index, "safetensors index", "the weight_map is empty"));
        }
        let mut paths = Vec::with_capacity(shards.len());
        for shard in shards {
            // Shard names come from a file: refuse anything that would leave the folder.
            if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
                return Err(ModelError::invalid(&index, "safetensors index", format!("bad shard name {shard:?}")));
            }
            let path = dir.join(shard);
            if !path.is_file() {
                return Err(ModelError::MissingFile {
                    dir: dir.to_path_buf(),
                    what: format!("shard {shard} listed in model.safetensors.index.json"),
                });
            }
            paths.push(path);
        }
        return Ok(paths);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(ModelError::MissingFile {
        dir: dir.to_path_buf(),
        what: "weights (model.safetensors or model.safetensors.index.json)".into(),
    })
}

/// Reads a safetensors header so a truncated or foreign file fails with its own name.
fn check_safetensors_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let size = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|_| ModelError::invalid(path, "safetensors file", "shorter than its header"))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > 100 * 1024 * 1024 || 8 + header_len > size {
        return Err(ModelError::invalid(path, "safetensors file", "the header length is out of range"));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(|e| ModelError::io(path, e))?;
    let value: Value = serde_json::from_slice(&header)
        .map_err(|e| ModelError::invalid(path, "safetensors file", format!("header: {e}")))?;
    let data_len = size - 8 - header_len;
    let end = value
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.as_str() != "__metadata__")
                .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    if end > data_len {
        return Err(ModelError::invalid(
            path,
            "safetensors file",
            format!("truncated: tensors need {end} bytes of data, the file has {data_len}"),
        ));
    }
    Ok(())
}

/// Which spelling the weights use, judged by where the patch embedding is.
pub fn detect_layout(vb: &VarBuilder) -> Result<WeightLayout> {
    if vb.contains_tensor("model.visual.patch_embed.proj.weight") {
        Ok(WeightLayout::Transformers5)
    } else if vb.contains_tensor("visual.patch_embed.proj.weight") {
        Ok(WeightLayout::Hub)
    } else {
        Err(ModelError::Weights(
            "no vision tower found (neither visual.patch_embed.proj.weight nor \
             model.visual.patch_embed.proj.weight)"
                .into(),
        ))
    }
}
