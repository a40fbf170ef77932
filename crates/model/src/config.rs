//! `config.json` of a Qwen2-VL or Qwen2.5-VL checkpoint, in both layouts found in the wild:
//!
//! * the hub's flat layout (`Qwen/Qwen2-VL-7B-Instruct`, `Qwen/Qwen2.5-VL-3B-Instruct`): text
//!   fields at the top level, `rope_scaling: {type: "mrope", mrope_section: [16, 24, 24]}`,
//!   `vision_config.in_chans`;
//! * transformers 5's nested layout: `text_config` with `rope_parameters: {rope_theta,
//!   mrope_section, …}`, `vision_config.in_channels`, token ids at the top level.
//!
//! `model_type` picks the vision tower ([`VisionKind`]); the language model is read the same
//! way for both.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::layers::Activation;

/// Which vision tower a checkpoint has, from `config.json`'s `model_type`. The language model
/// is the same Qwen2 with M-RoPE for both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VisionKind {
    /// Qwen2-VL (`qwen2_vl`): LayerNorm, a two-layer MLP (`fc1`, `fc2`), every block attends
    /// to its whole image.
    Qwen2,
    /// Qwen2.5-VL (`qwen2_5_vl`): RMSNorm, a gated MLP (`gate_proj`, `up_proj`, `down_proj`),
    /// attention within windows of `window_size` pixels except in the full-attention blocks.
    Qwen25 { window_size: usize, fullatt_block_indexes: Vec<usize> },
}

/// The vision tower's hyper-parameters, resolved from either model's `vision_config` (the two
/// spell the widths differently: see [`Qwen2VisionJson`] and [`Qwen25VisionJson`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    pub kind: VisionKind,
    pub depth: usize,
    /// Width of the vision blocks.
    pub embed_dim: usize,
    /// Width of the merger's output, i.e. the language model's hidden size.
    pub out_hidden_size: usize,
    pub hidden_act: Activation,
    /// Width of the blocks' MLP.
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub in_channels: usize,
    pub patch_size: usize,
    pub spatial_merge_size: usize,
    pub temporal_patch_size: usize,
    pub rope_theta: f64,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }
    /// Length of one flattened patch: channels × temporal × patch × patch (1176 for Qwen2-VL).
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }
    /// Side of an attention window in merged tokens (112 px / 14 px / 2 = 4), for a windowed
    /// tower.
    pub fn window_tokens(&self) -> Option<usize> {
        match &self.kind {
            VisionKind::Qwen2 => None,
            VisionKind::Qwen25 { window_size, .. } => {
                Some(window_size / self.spatial_merge_size / self.patch_size)
            }
        }
    }
}

/// Qwen2-VL's `vision_config`: `embed_dim` is the blocks' width, `hidden_size` the merger's
/// output.
#[derive(Debug, Clone, Deserialize)]
struct Qwen2VisionJson {
    depth: usize,
    embed_dim: usize,
    hidden_size: usize,
    #[serde(default = "quick_gelu")]
    hidden_act: Activation,
    #[serde(default = "default_mlp_ratio")]
    mlp_ratio: f64,
    num_heads: usize,
    #[serde(default = "default_in_channels", alias = "in_chans")]
    in_channels: usize,
    #[serde(default = "default_patch_size")]
    patch_size: usize,
    #[serde(default = "default_merge_size")]
    spatial_merge_size: usize,
    #[serde(default = "default_temporal_patch_size")]
    temporal_patch_size: usize,
}

impl From<Qwen2VisionJson> for VisionConfig {
    fn from(v: Qwen2VisionJson) -> Self {
        Self {
            kind: VisionKind::Qwen2,
            depth: v.depth,
            embed_dim: v.embed_dim,
            out_hidden_size: v.hidden_size,
            hidden_act: v.hidden_act,
            intermediate_size: (v.embed_dim as f64 * v.mlp_ratio) as usize,
            num_heads: v.num_heads,
            in_channels: v.in_channels,
            patch_size: v.patch_size,
            spatial_merge_size: v.spatial_merge_size,
            temporal_patch_size: v.temporal_patch_size,
            rope_theta: default_vision_theta(),
        }
    }
}

/// Qwen2.5-VL's `vision_config`: unlike Qwen2-VL's, `hidden_size` is the blocks' width and
/// `out_hidden_size` the merger's output. Defaults are `Qwen2_5_VLVisionConfig`'s.
#[derive(Debug, Clone, Deserialize)]
struct Qwen25VisionJson {
    depth: usize,
    hidden_size: usize,
    out_hidden_size: usize,
    #[serde(default = "silu")]
    hidden_act: Activation,
    intermediate_size: usize,
    num_heads: usize,
    #[serde(default = "default_in_channels", alias = "in_chans")]
    in_channels: usize,
    #[serde(default = "default_patch_size")]
    patch_size: usize,
    #[serde(default = "default_merge_size")]
    spatial_merge_size: usize,
    #[serde(default = "default_temporal_patch_size")]
    temporal_patch_size: usize,
    #[serde(default = "default_window_size")]
    window_size: usize,
    #[serde(default = "default_fullatt_blocks")]
    fullatt_block_indexes: Vec<usize>,
}

impl From<Qwen25VisionJson> for VisionConfig {
    fn from(v: Qwen25VisionJson) -> Self {
        Self {
            kind: VisionKind::Qwen25 { window_size: v.window_size, fullatt_block_indexes: v.fullatt_block_indexes },
            depth: v.depth,
            embed_dim: v.hidden_size,
            out_hidden_size: v.out_hidden_size,
            hidden_act: v.hidden_act,
            intermediate_size: v.intermediate_size,
            num_heads: v.num_heads,
            in_channels: v.in_channels,
            patch_size: v.patch_size,
            spatial_merge_size: v.spatial_merge_size,
            temporal_patch_size: v.temporal_patch_size,
            rope_theta: default_vision_theta(),
        }
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

/// A whole Qwen2-VL or Qwen2.5-VL configuration.
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

fn quick_gelu() -> Activation {
    Activation::QuickGelu
}
fn silu() -> Activation {
    Activation::Silu
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
fn default_window_size() -> usize {
    112
}
fn default_fullatt_blocks() -> Vec<usize> {
    vec![7, 15, 23, 31]
}

impl Config {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| ModelError::invalid(path, "config.json", e))?;
        Self::from_value(&value).map_err(|e| match e {
            ModelError::Config(message) => ModelError::invalid(path, "Qwen2-VL / Qwen2.5-VL config.json", message),
            other => other,
        })
    }

    /// Resolves either layout into one [`Config`].
    pub fn from_value(root: &Value) -> Result<Self> {
        let root = root.as_object().ok_or_else(|| config_err("the top level is not an object"))?;
        let vision = vision_config(root)?;
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
            ("the vision width", v.embed_dim),
            ("the vision MLP width", v.intermediate_size),
            ("vision_config.num_heads", v.num_heads),
            ("vision_config.patch_size", v.patch_size),
            ("vision_config.spatial_merge_size", v.spatial_merge_size),
            ("vision_config.temporal_patch_size", v.temporal_patch_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(config_err(format!("{name} must be positive")));
        }
        if !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return Err(config_err("hidden_size is not a multiple of num_attention_heads"));
        }
        if !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
            return Err(config_err("num_attention_heads is not a multiple of num_key_value_heads"));
        }
        let head_dim = t.head_dim();
        if !head_dim.is_multiple_of(2) {
            return Err(config_err("the text head dimension must be even for rotary embeddings"));
        }
        if t.mrope_section.len() != 3 || t.mrope_section.iter().sum::<usize>() != head_dim / 2 {
            return Err(config_err(format!(
                "mrope_section {:?} must have three parts summing to head_dim/2 = {}",
                t.mrope_section,
                head_dim / 2
            )));
        }
        if !v.embed_dim.is_multiple_of(v.num_heads) || !v.head_dim().is_multiple_of(4) {
            return Err(config_err(
                "the vision width / num_heads must be a multiple of 4 (2-D rotary embeddings)",
            ));
        }
        if v.out_hidden_size != t.hidden_size {
            let field = match v.kind {
                VisionKind::Qwen2 => "hidden_size",
                VisionKind::Qwen25 { .. } => "out_hidden_size",
            };
            return Err(config_err(format!(
                "vision_config.{field} {} (the merger's output) differs from the language model's hidden_size {}",
                v.out_hidden_size, t.hidden_size
            )));
        }
        if let VisionKind::Qwen25 { window_size, fullatt_block_indexes } = &v.kind {
            let unit = v.patch_size * v.spatial_merge_size;
            if *window_size == 0 || !window_size.is_multiple_of(unit) {
                return Err(config_err(format!(
                    "vision_config.window_size {window_size} must be a positive multiple of patch_size × spatial_merge_size = {unit}"
                )));
            }
            if let Some(i) = fullatt_block_indexes.iter().find(|&&i| i >= v.depth) {
                return Err(config_err(format!(
                    "vision_config.fullatt_block_indexes names block {i}, the tower has {}",
                    v.depth
                )));
            }
        }
        if self.image_token_id as usize >= t.vocab_size {
            return Err(config_err("image_token_id is outside the vocabulary"));
        }
        Ok(())
    }
}

/// The vision tower's config, read the way `model_type` says (a config without one is read as
/// Qwen2-VL's, the first model Easel ran).
fn vision_config(root: &serde_json::Map<String, Value>) -> Result<VisionConfig> {
    let value = root.get("vision_config").ok_or_else(|| config_err("missing vision_config"))?.clone();
    let err = |e: serde_json::Error| config_err(format!("vision_config: {e}"));
    let mut vision: VisionConfig = match root.get("model_type").and_then(Value::as_str) {
        None | Some("qwen2_vl") => serde_json::from_value::<Qwen2VisionJson>(value.clone()).map_err(err)?.into(),
        Some("qwen2_5_vl") => serde_json::from_value::<Qwen25VisionJson>(value.clone()).map_err(err)?.into(),
        Some(other) => {
            return Err(config_err(format!(
                "model_type is {other:?}; Easel runs Qwen2-VL (\"qwen2_vl\") and Qwen2.5-VL (\"qwen2_5_vl\")"
            )));
        }
    };
    if let Some(theta) = value.get("rope_parameters").and_then(|r| r.get("rope_theta")).and_then(Value::as_f64) {
        vision.rope_theta = theta;
    }
    Ok(vision)
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
        assert_eq!(c.vision.kind, VisionKind::Qwen2);
        assert_eq!((c.vision.embed_dim, c.vision.out_hidden_size, c.vision.intermediate_size), (1280, 3584, 5120));
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

    /// `Qwen/Qwen2.5-VL-3B-Instruct`'s config.json (hub layout).
    fn hub_qwen25_3b() -> Value {
        json!({
            "architectures": ["Qwen2_5_VLForConditionalGeneration"],
            "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
            "vision_start_token_id": 151652, "vision_end_token_id": 151653, "vision_token_id": 151654,
            "image_token_id": 151655, "video_token_id": 151656, "hidden_act": "silu",
            "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 11008,
            "max_position_embeddings": 128000, "max_window_layers": 70, "model_type": "qwen2_5_vl",
            "num_attention_heads": 16, "num_hidden_layers": 36, "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
            "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
            "use_sliding_window": false,
            "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280,
                "intermediate_size": 3420, "num_heads": 16, "in_chans": 3, "out_hidden_size": 2048,
                "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14,
                "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
                "tokens_per_second": 2, "temporal_patch_size": 2},
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
            "vocab_size": 151936
        })
    }

    #[test]
    fn reads_qwen25_hub_layout() {
        let c = Config::from_value(&hub_qwen25_3b()).expect("valid");
        let v = &c.vision;
        assert_eq!(v.kind, VisionKind::Qwen25 { window_size: 112, fullatt_block_indexes: vec![7, 15, 23, 31] });
        // 2.5's hidden_size is the blocks' width, out_hidden_size the merger's output.
        assert_eq!((v.embed_dim, v.out_hidden_size, v.intermediate_size), (1280, 2048, 3420));
        assert_eq!(v.hidden_act, Activation::Silu);
        assert_eq!(v.window_tokens(), Some(4));
        assert_eq!(v.patch_len(), 1176);
        assert_eq!(c.text.hidden_size, 2048);
        assert!(c.text.tie_word_embeddings);
    }

    #[test]
    fn reads_qwen25_nested_layout() {
        let v = json!({
            "model_type": "qwen2_5_vl", "image_token_id": 151655, "tie_word_embeddings": false,
            "text_config": {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944,
                "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                    "mrope_section": [16, 24, 24]}},
            "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420,
                "num_heads": 16, "in_channels": 3, "out_hidden_size": 3584,
                "rope_parameters": {"rope_type": "axial", "rope_theta": 10000.0}}
        });
        let c = Config::from_value(&v).expect("valid");
        assert_eq!(c.vision.kind, VisionKind::Qwen25 { window_size: 112, fullatt_block_indexes: vec![7, 15, 23, 31] });
        assert_eq!(c.vision.out_hidden_size, 3584);
    }

    #[test]
    fn rejects_inconsistent_qwen25_configs() {
        let mut v = hub_qwen25_3b();
        v["vision_config"]["out_hidden_size"] = json!(1280);
        assert!(matches!(Config::from_value(&v), Err(ModelError::Config(m)) if m.contains("out_hidden_size")));
        let mut v = hub_qwen25_3b();
        v["vision_config"]["fullatt_block_indexes"] = json!([7, 32]);
        assert!(matches!(Config::from_value(&v), Err(ModelError::Config(m)) if m.contains("fullatt_block_indexes")));
        let mut v = hub_qwen25_3b();
        v["vision_config"]["window_size"] = json!(100);
        assert!(matches!(Config::from_value(&v), Err(ModelError::Config(m)) if m.contains("window_size")));
        // A Qwen2-VL vision_config under qwen2_5_vl lacks out_hidden_size.
        let mut v = hub_7b();
        v["model_type"] = json!("qwen2_5_vl");
        assert!(matches!(Config::from_value(&v), Err(ModelError::Config(m)) if m.contains("vision_config")));
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
