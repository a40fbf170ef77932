//! `config.json` of a Qwen2-VL checkpoint, in both layouts found in the wild:
//!
//! * the hub's flat layout (`Qwen/Qwen2-VL-7B-Instruct`): text fields at the top level,
//!   `rope_scaling: {type: "mrope", mrope_section: [16, 24, 24]}`, `vision_config.in_chans`;
//! * transformers 5's nested layout: `text_config` with `rope_parameters: {rope_theta,
//!   mrope_section, …}`, `vision_config.in_channels`, token ids at the top level.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::layers::Activation;

/// The vision tower's hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    pub depth: usize,
    pub embed_dim: usize,
    /// Width of the merger's output, i.e. the language model's hidden size.
    pub hidden_size: usize,
    #[serde(default = "default_vision_act")]
    pub hidden_act: Activation,
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    pub num_heads: usize,
    #[serde(default = "default_in_channels", alias = "in_chans")]
    pub in_channels: usize,
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    #[serde(default = "default_merge_size")]
    pub spatial_merge_size: usize,
    #[serde(default = "default_temporal_patch_size")]
    pub temporal_patch_size: usize,
    #[serde(default = "default_vision_theta")]
    pub rope_theta: f64,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }
    pub fn mlp_hidden(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }
    /// Length of one flattened patch: channels × temporal × patch × patch (1176 for Qwen2-VL).
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }
}

/// The Qwen2 language model's hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// How the rotary frequencies are split over the (temporal, height, width) axes.
    pub mrope_section: Vec<usize>,
    pub tie_word_embeddings: bool,
}

impl TextConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// A whole Qwen2-VL configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

fn default_vision_act() -> Activation {
    Activation::QuickGelu
}
fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_in_channels() -> usize {
    3
}
fn default_patch_size() -> usize {
    14
}
fn default_merge_size() -> usize {
    2
}
fn default_temporal_patch_size() -> usize {
    2
}
fn default_vision_theta() -> f64 {
    10_000.0
}

impl Config {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| ModelError::invalid(path, "config.json", e))?;
        Self::from_value(&value).map_err(|e| match e {
            ModelError::Config(message) => ModelError::invalid(path, "Qwen2-VL config.json", message),
            other => other,
        })
    }

    /// Resolves either layout into one [`Config`].
    pub fn from_value(root: &Value) -> Result<Self> {
        let root = root.as_object().ok_or_else(|| config_err("the top level is not an object"))?;
        if let Some(model_type) = root.get("model_type").and_then(Value::as_str)
            && model_type != "qwen2_vl"
        {
            return Err(config_err(format!(
                "model_type is {model_type:?}; Easel runs Qwen2-VL (model_type \"qwen2_vl\")"
            )));
        }
        let nested = root.get("text_config").and_then(Value::as_object);
        // A field of the language model: in `text_config` (transformers 5) or at the top level.
        let text_field = |key: &str| -> Option<&Value> {
            nested.and_then(|t| t.get(key)).filter(|v| !v.is_null()).or_else(|| root.get(key).filter(|v| !v.is_null()))
        };
        let usize_field = |key: &str| -> Result<usize> {
            text_field(key)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| config_err(format!("missing or non-integer field {key:?}")))
        };
        let rope = text_field("rope_parameters")
            .or_else(|| text_field("rope_scaling"))
            .and_then(Value::as_object);
        let rope_theta = rope
            .and_then(|r| r.get("rope_theta"))
            .or_else(|| text_field("rope_theta"))
            .and_then(Value::as_f64)
            .unwrap_or(1_000_000.0);
        let mrope_section: Vec<usize> = match rope.and_then(|r| r.get("mrope_section")) {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| config_err(format!("mrope_section: {e}")))?,
            None => vec![16, 24, 24],
        };
        let num_attention_heads = usize_field("num_attention_heads")?;
        let hidden_act = match text_field("hidden_act") {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| config_err(format!("hidden_act: {e}")))?,
            None => Activation::Silu,
        };
        let tie_word_embeddings = root
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || nested.and_then(|t| t.get("tie_word_embeddings")).and_then(Value::as_bool).unwrap_or(false);
        let text = TextConfig {
            vocab_size: usize_field("vocab_size")?,
            hidden_size: usize_field("hidden_size")?,
            intermediate_size: usize_field("intermediate_size")?,
            num_hidden_layers: usize_field("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads: usize_field("num_key_value_heads").unwrap_or(num_attention_heads),
            hidden_act,
            max_position_embeddings: usize_field("max_position_embeddings").unwrap_or(32_768),
            rms_norm_eps: text_field("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-5),
            rope_theta,
            mrope_section,
            tie_word_embeddings,
        };

        let vision_value = root
            .get("vision_config")
            .ok_or_else(|| config_err("missing vision_config"))?;
        let mut vision: VisionConfig = serde_json::from_value(vision_value.clone())
            .map_err(|e| config_err(format!("vision_config: {e}")))?;
        if let Some(theta) = vision_value
            .get("rope_parameters")
            .and_then(|r| r.get("rope_theta"))
            .and_then(Value::as_f64)
        {
            vision.rope_theta = theta;
        }

        let token = |key: &str, default: u32| -> u32 {
            text_field(key).and_then(Value::as_u64).map(|v| v as u32).unwrap_or(default)
        };
        let eos_token_ids = match text_field("eos_token_id") {
            Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_u64).map(|v| v as u32).collect(),
            Some(v) => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
            None => Vec::new(),
        };
        let config = Config {
            text,
            vision,
            image_token_id: token("image_token_id", 151_655),
            video_token_id: token("video_token_id", 151_656),
            vision_start_token_id: token("vision_start_token_id", 151_652),
            vision_end_token_id: token("vision_end_token_id", 151_653),
            bos_token_id: text_field("bos_token_id").and_then(Value::as_u64).map(|v| v as u32),
            eos_token_ids,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the relations between fields that the architecture relies on.
    pub fn validate(&self) -> Result<()> {
        let t = &self.text;
        let v = &self.vision;
        let positive = [
            ("vocab_size", t.vocab_size),
            ("hidden_size", t.hidden_size),
            ("intermediate_size", t.intermediate_size),
            ("num_hidden_layers", t.num_hidden_layers),
            ("num_attention_heads", t.num_attention_heads),
            ("num_key_value_heads", t.num_key_value_heads),
            ("vision_config.depth", v.depth),
            ("vision_config.embed_dim", v.embed_dim),
            ("vision_config.num_heads", v.num_heads),
            ("vision_config.patch_size", v.patch_size),
            ("vision_config.spatial_merge_size", v.spatial_merge_size),
            ("vision_config.temporal_patch_size", v.temporal_patch_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(config_err(format!("{name} must be positive")));
        }
        if t.hidden_size % t.num_attention_heads != 0 {
            return Err(config_err("hidden_size is not a multiple of num_attention_heads"));
        }
        if t.num_attention_heads % t.num_key_value_heads != 0 {
            return Err(config_err("num_attention_heads is not a multiple of num_key_value_heads"));
        }
        let head_dim = t.head_dim();
        if head_dim % 2 != 0 {
            return Err(config_err("the text head dimension must be even for rotary embeddings"));
        }
        if t.mrope_section.len() != 3 || t.mrope_section.iter().sum::<usize>() != head_dim / 2 {
            return Err(config_err(format!(
                "mrope_section {:?} must have three parts summing to head_dim/2 = {}",
                t.mrope_section,
                head_dim / 2
            )));
        }
        if v.embed_dim % v.num_heads != 0 || v.head_dim() % 4 != 0 {
            return Err(config_err(
                "vision embed_dim/num_heads must be a multiple of 4 (2-D rotary embeddings)",
            ));
        }
        if v.hidden_size != t.hidden_size {
            return Err(config_err(format!(
                "vision_config.hidden_size {} differs from the language model's hidden_size {}",
                v.hidden_size, t.hidden_size
            )));
        }
        if self.image_token_id as usize >= t.vocab_size {
            return Err(config_err("image_token_id is outside the vocabulary"));
        }
        Ok(())
    }
}

fn config_err(message: impl Into<String>) -> ModelError {
    ModelError::Config(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hub_7b() -> Value {
        json!({
            "architectures": ["Qwen2VLForConditionalGeneration"],
            "bos_token_id": 151643, "eos_token_id": 151645,
            "vision_start_token_id": 151652, "vision_end_token_id": 151653,
            "vision_token_id": 151654, "image_token_id": 151655, "video_token_id": 151656,
            "hidden_act": "silu", "hidden_size": 3584, "intermediate_size": 18944,
            "max_position_embeddings": 32768, "model_type": "qwen2_vl",
            "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
            "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": false,
            "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16,
                "in_chans": 3, "hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2,
                "temporal_patch_size": 2},
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
            "vocab_size": 152064
        })
    }

    #[test]
    fn reads_hub_layout() {
        let c = Config::from_value(&hub_7b()).expect("valid");
        assert_eq!(c.text.hidden_size, 3584);
        assert_eq!(c.text.head_dim(), 128);
        assert_eq!(c.text.mrope_section, vec![16, 24, 24]);
        assert_eq!(c.vision.in_channels, 3);
        assert_eq!(c.vision.hidden_act, Activation::QuickGelu);
        assert_eq!(c.image_token_id, 151_655);
        assert_eq!(c.eos_token_ids, vec![151_645]);
    }

    #[test]
    fn reads_nested_layout() {
        let v = json!({
            "model_type": "qwen2_vl", "image_token_id": 151655, "video_token_id": 151656,
            "vision_start_token_id": 151652, "vision_end_token_id": 151653,
            "tie_word_embeddings": true,
            "text_config": {"vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960,
                "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                "hidden_act": "silu", "rms_norm_eps": 1e-6, "eos_token_id": [151645, 151643],
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                    "mrope_section": [16, 24, 24]}},
            "vision_config": {"depth": 32, "embed_dim": 1280, "num_heads": 16, "in_channels": 3,
                "hidden_size": 1536, "hidden_act": "quick_gelu",
                "rope_parameters": {"rope_type": "axial", "rope_theta": 10000.0}}
        });
        let c = Config::from_value(&v).expect("valid");
        assert!(c.text.tie_word_embeddings);
        assert_eq!(c.text.num_key_value_heads, 2);
        assert_eq!(c.eos_token_ids, vec![151_645, 151_643]);
        assert_eq!(c.vision.rope_theta, 10_000.0);
    }

    #[test]
    fn rejects_inconsistent_configs() {
        let mut v = hub_7b();
        v["rope_scaling"]["mrope_section"] = json!([16, 24, 23]);
        assert!(matches!(Config::from_value(&v), Err(ModelError::Config(m)) if m.contains("mrope_section")));
        let mut v = hub_7b();
        v["model_type"] = json!("llama");
        assert!(Config::from_value(&v).is_err());
        let mut v = hub_7b();
        v["vision_config"]["hidden_size"] = json!(1536);
        assert!(Config::from_value(&v).is_err());
        let mut v = hub_7b();
        v.as_object_mut().unwrap().remove("hidden_size");
        assert!(matches!(Config::from_value(&v), Err(ModelError::Config(m)) if m.contains("hidden_size")));
    }
}
