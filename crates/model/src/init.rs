//! Random-weight checkpoints in the real layout and shapes (`easel model init`): what the
//! tests, the demo and the GPU benchmark run when no trained weights are at hand.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::config::{Config, VisionKind};
use crate::error::{ModelError, Result};
use crate::head::HeadConfig;
use crate::manifest::Manifest;
use crate::processor::ProcessorConfig;
use crate::prompt::QWEN2_VL_CHAT_TEMPLATE;

/// Qwen2-VL's special tokens, in the order their ids follow the regular vocabulary.
pub const SPECIAL_TOKENS: [&str; 14] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// A few hundred thousand parameters: runs in milliseconds on a CPU.
    Tiny,
    /// `Qwen/Qwen2-VL-2B-Instruct`'s shapes.
    Qwen2Vl2b,
    /// `Qwen/Qwen2-VL-7B-Instruct`'s shapes.
    Qwen2Vl7b,
    /// A tiny Qwen2.5-VL: one windowed and one full-attention vision block.
    Qwen25VlTiny,
    /// `Qwen/Qwen2.5-VL-3B-Instruct`'s shapes.
    Qwen25Vl3b,
    /// `Qwen/Qwen2.5-VL-7B-Instruct`'s shapes.
    Qwen25Vl7b,
}

/// The language model's shape in a preset.
struct TextShape {
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    tie: bool,
    max_positions: usize,
}

impl Preset {
    pub const ALL: [Self; 6] =
        [Self::Tiny, Self::Qwen2Vl2b, Self::Qwen2Vl7b, Self::Qwen25VlTiny, Self::Qwen25Vl3b, Self::Qwen25Vl7b];
    pub const NAMES: [&'static str; 6] =
        ["tiny", "qwen2-vl-2b", "qwen2-vl-7b", "qwen2.5-vl-tiny", "qwen2.5-vl-3b", "qwen2.5-vl-7b"];

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| ModelError::Input(format!("unknown preset {name:?}; expected one of {:?}", Self::NAMES)))
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Qwen2Vl2b => "qwen2-vl-2b",
            Self::Qwen2Vl7b => "qwen2-vl-7b",
            Self::Qwen25VlTiny => "qwen2.5-vl-tiny",
            Self::Qwen25Vl3b => "qwen2.5-vl-3b",
            Self::Qwen25Vl7b => "qwen2.5-vl-7b",
        }
    }

    /// CPU-sized, with a byte-level tokenizer, rather than a real model's shape.
    pub fn is_tiny(self) -> bool {
        matches!(self, Self::Tiny | Self::Qwen25VlTiny)
    }

    /// The real model's vocabulary (Qwen's tokenizer padded); `None` for the tiny presets,
    /// whose vocabulary follows their tokenizer.
    pub fn vocab_size(self) -> Option<usize> {
        match self {
            Self::Tiny | Self::Qwen25VlTiny => None,
            Self::Qwen2Vl2b | Self::Qwen25Vl3b => Some(151_936),
            Self::Qwen2Vl7b | Self::Qwen25Vl7b => Some(152_064),
        }
    }

    fn text_shape(self) -> TextShape {
        let (hidden, intermediate, layers, heads, kv_heads, tie, max_positions) = match self {
            Self::Tiny | Self::Qwen25VlTiny => (64, 128, 2, 4, 2, false, 32_768),
            Self::Qwen2Vl2b => (1536, 8960, 28, 12, 2, true, 32_768),
            Self::Qwen2Vl7b => (3584, 18944, 28, 28, 4, false, 32_768),
            Self::Qwen25Vl3b => (2048, 11008, 36, 16, 2, true, 128_000),
            Self::Qwen25Vl7b => (3584, 18944, 28, 28, 4, false, 128_000),
        };
        TextShape { hidden, intermediate, layers, heads, kv_heads, tie, max_positions }
    }

    /// `vision_config` as the hub writes it for this preset's model (Qwen2-VL and Qwen2.5-VL
    /// spell the widths differently), the merger's output being `text_hidden`.
    fn vision_json(self, text_hidden: usize) -> Value {
        let common = json!({"in_chans": 3, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2});
        let specific = match self {
            Self::Tiny => json!({"depth": 2, "embed_dim": 32, "num_heads": 4, "mlp_ratio": 4, "hidden_size": text_hidden}),
            Self::Qwen2Vl2b | Self::Qwen2Vl7b => {
                json!({"depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4, "hidden_size": text_hidden})
            }
            Self::Qwen25VlTiny => json!({"depth": 2, "hidden_size": 32, "num_heads": 4, "intermediate_size": 64,
                "out_hidden_size": text_hidden, "hidden_act": "silu", "window_size": 112,
                "fullatt_block_indexes": [1], "tokens_per_second": 2}),
            Self::Qwen25Vl3b | Self::Qwen25Vl7b => json!({"depth": 32, "hidden_size": 1280, "num_heads": 16,
                "intermediate_size": 3420, "out_hidden_size": text_hidden, "hidden_act": "silu",
                "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2}),
        };
        let mut vision = common;
        let v = vision.as_object_mut().expect("object");
        v.extend(specific.as_object().expect("object").clone());
        vision
    }

    fn is_qwen25(self) -> bool {
        matches!(self, Self::Qwen25VlTiny | Self::Qwen25Vl3b | Self::Qwen25Vl7b)
    }

    /// `config.json` in the hub's flat layout, for a vocabulary whose special tokens start at
    /// `first_special`.
    pub fn config_json(self, vocab_size: usize, first_special: u32) -> Value {
        let TextShape { hidden, intermediate, layers, heads, kv_heads, tie, max_positions } = self.text_shape();
        let head_dim = hidden / heads;
        let mrope = match head_dim {
            128 => vec![16, 24, 24],
            d => {
                let half = d / 2;
                vec![half - 2 * (3 * half / 8), 3 * half / 8, 3 * half / 8]
            }
        };
        let (architecture, model_type) = if self.is_qwen25() {
            ("Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl")
        } else {
            ("Qwen2VLForConditionalGeneration", "qwen2_vl")
        };
        let special = |i: u32| first_special + i;
        json!({
            "architectures": [architecture],
            "model_type": model_type,
            "attention_dropout": 0.0,
            "bos_token_id": special(0),
            "eos_token_id": special(2),
            "vision_start_token_id": special(9),
            "vision_end_token_id": special(10),
            "vision_token_id": special(11),
            "image_token_id": special(12),
            "video_token_id": special(13),
            "hidden_act": "silu",
            "hidden_size": hidden,
            "initializer_range": 0.02,
            "intermediate_size": intermediate,
            "max_position_embeddings": max_positions,
            "max_window_layers": layers,
            "num_attention_heads": heads,
            "num_hidden_layers": layers,
            "num_key_value_heads": kv_heads,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1_000_000.0,
            "sliding_window": 32768,
            "tie_word_embeddings": tie,
            "torch_dtype": if self.is_tiny() { "float32" } else { "bfloat16" },
            "use_cache": true,
            "use_sliding_window": false,
            "vision_config": self.vision_json(hidden),
            "rope_scaling": {"type": "mrope", "mrope_section": mrope},
            "vocab_size": vocab_size,
        })
    }

    /// The processor settings written with the preset: Qwen's own, with a small pixel cap for
    /// the tiny presets so CPU tests stay fast.
    pub fn processor(self) -> ProcessorConfig {
        let mut p = ProcessorConfig::default();
        if self.is_tiny() {
            p.min_pixels = 28 * 28 * 4;
            p.max_pixels = 28 * 28 * 64;
        }
        p
    }

    pub fn head_hidden(self) -> usize {
        if self.is_tiny() { 32 } else { 1024 }
    }

    pub fn dtype(self) -> DType {
        if self.is_tiny() { DType::F32 } else { DType::BF16 }
    }
}

/// How a tensor is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform with this standard deviation around 0.
    Random(f32),
    /// Uniform with this standard deviation around 1 (norm weights that are not exactly 1).
    AroundOne(f32),
}

/// Every tensor of a Qwen2-VL or Qwen2.5-VL checkpoint in the hub's spelling, with its shape.
pub fn weight_shapes(config: &Config) -> Vec<(String, Vec<usize>, Init)> {
    let t = &config.text;
    let v = &config.vision;
    let mut out: Vec<(String, Vec<usize>, Init)> = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, init: Init| out.push((name, shape, init));
    let std = 0.02f32;
    let small = Init::Random(std);
    let bias = Init::Random(0.02);
    let norm = Init::AroundOne(0.05);
    push(
        "visual.patch_embed.proj.weight".into(),
        vec![v.embed_dim, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size],
        small,
    );
    // Qwen2-VL's LayerNorms have a bias, Qwen2.5-VL's RMSNorms do not.
    let layer_norm = v.kind == VisionKind::Qwen2;
    let (e, m) = (v.embed_dim, v.intermediate_size);
    for i in 0..v.depth {
        let p = format!("visual.blocks.{i}");
        for n in ["norm1", "norm2"] {
            push(format!("{p}.{n}.weight"), vec![e], norm);
            if layer_norm {
                push(format!("{p}.{n}.bias"), vec![e], bias);
            }
        }
        push(format!("{p}.attn.qkv.weight"), vec![3 * e, e], small);
        push(format!("{p}.attn.qkv.bias"), vec![3 * e], bias);
        push(format!("{p}.attn.proj.weight"), vec![e, e], small);
        push(format!("{p}.attn.proj.bias"), vec![e], bias);
        let mlp: &[(&str, usize, usize)] = match v.kind {
            VisionKind::Qwen2 => &[("fc1", m, e), ("fc2", e, m)],
            VisionKind::Qwen25 { .. } => &[("gate_proj", m, e), ("up_proj", m, e), ("down_proj", e, m)],
        };
        for &(name, rows, cols) in mlp {
            push(format!("{p}.mlp.{name}.weight"), vec![rows, cols], small);
            push(format!("{p}.mlp.{name}.bias"), vec![rows], bias);
        }
    }
    let group = e * v.spatial_merge_size * v.spatial_merge_size;
    push("visual.merger.ln_q.weight".into(), vec![e], norm);
    if layer_norm {
        push("visual.merger.ln_q.bias".into(), vec![e], bias);
    }
    push("visual.merger.mlp.0.weight".into(), vec![group, group], small);
    push("visual.merger.mlp.0.bias".into(), vec![group], bias);
    push("visual.merger.mlp.2.weight".into(), vec![v.out_hidden_size, group], small);
    push("visual.merger.mlp.2.bias".into(), vec![v.out_hidden_size], bias);

    let (h, hd) = (t.hidden_size, t.head_dim());
    push("model.embed_tokens.weight".into(), vec![t.vocab_size, h], small);
    for i in 0..t.num_hidden_layers {
        let p = format!("model.layers.{i}");
        push(format!("{p}.input_layernorm.weight"), vec![h], norm);
        push(format!("{p}.post_attention_layernorm.weight"), vec![h], norm);
        for (name, out) in [
            ("q_proj", t.num_attention_heads * hd),
            ("k_proj", t.num_key_value_heads * hd),
            ("v_proj", t.num_key_value_heads * hd),
        ] {
            push(format!("{p}.self_attn.{name}.weight"), vec![out, h], small);
            push(format!("{p}.self_attn.{name}.bias"), vec![out], bias);
        }
        push(format!("{p}.self_attn.o_proj.weight"), vec![h, t.num_attention_heads * hd], small);
        push(format!("{p}.mlp.gate_proj.weight"), vec![t.intermediate_size, h], small);
        push(format!("{p}.mlp.up_proj.weight"), vec![t.intermediate_size, h], small);
        push(format!("{p}.mlp.down_proj.weight"), vec![h, t.intermediate_size], small);
    }
    push("model.norm.weight".into(), vec![h], norm);
    if !t.tie_word_embeddings {
        push("lm_head.weight".into(), vec![t.vocab_size, h], small);
    }
    out
}

/// Uniform values with mean `mean` and standard deviation `std` (deterministic for a seed).
fn uniform(rng: &mut StdRng, n: usize, mean: f32, std: f32) -> Vec<f32> {
    let half_width = std * 3f32.sqrt();
    (0..n).map(|_| mean + rng.random_range(-half_width..=half_width)).collect()
}

fn init_values(rng: &mut StdRng, n: usize, init: Init) -> Vec<f32> {
    match init {
        Init::Random(std) => uniform(rng, n, 0.0, std),
        Init::AroundOne(std) => uniform(rng, n, 1.0, std),
    }
}

/// Random tensors for `shapes`, created directly on `device` (16 GB of 7B weights never touch
/// the disk or the host this way).
pub fn random_tensors(
    shapes: &[(String, Vec<usize>, Init)],
    dtype: DType,
    device: &Device,
) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut out = HashMap::with_capacity(shapes.len());
    for (name, shape, init) in shapes {
        let tensor = match *init {
            Init::Random(std) => {
                let w = 3f32.sqrt() * std;
                Tensor::rand(-w, w, shape.as_slice(), device)?
            }
            Init::AroundOne(std) => {
                let w = 3f32.sqrt() * std;
                (Tensor::rand(-w, w, shape.as_slice(), device)? + 1.0)?
            }
        };
        out.insert(name.clone(), tensor.to_dtype(dtype)?);
    }
    Ok(out)
}

/// Options of [`init_checkpoint_with`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub seed: u64,
    /// A real Qwen `tokenizer.json` (required for the real-shape presets, whose vocabulary is
    /// Qwen's); the tiny presets build a byte-level tokenizer with Qwen's special tokens.
    pub tokenizer: Option<PathBuf>,
    /// Largest shard in bytes.
    pub shard_bytes: usize,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self { seed: 0, tokenizer: None, shard_bytes: 2 << 30 }
    }
}

/// Writes a random tiny checkpoint; what tests and the demo use.
pub fn init_checkpoint(preset: Preset, dir: &Path, seed: u64) -> Result<Manifest> {
    init_checkpoint_with(preset, dir, &InitOptions { seed, ..InitOptions::default() })
}

/// Writes a complete Easel checkpoint with random weights: the HF Qwen2-VL folder
/// (config.json, safetensors shards + index, tokenizer.json, tokenizer_config.json,
/// chat_template.json, preprocessor_config.json, generation_config.json) plus `easel.json` and
/// `head.safetensors`.
pub fn init_checkpoint_with(preset: Preset, dir: &Path, options: &InitOptions) -> Result<Manifest> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let tokenizer = match &options.tokenizer {
        Some(path) => crate::pipeline::load_tokenizer(path)?,
        None if preset.is_tiny() => byte_level_tokenizer()?,
        None => {
            return Err(ModelError::Input(format!(
                "the {} preset has Qwen's 151k-token vocabulary: pass a Qwen tokenizer.json \
                 (e.g. scripts/fetch-qwen-tokenizer.sh)",
                preset.name()
            )));
        }
    };
    let first_special = tokenizer
        .token_to_id(SPECIAL_TOKENS[0])
        .ok_or_else(|| ModelError::Tokenizer("the tokenizer lacks <|endoftext|>".into()))?;
    for (i, token) in SPECIAL_TOKENS.iter().enumerate() {
        if tokenizer.token_to_id(token) != Some(first_special + i as u32) {
            return Err(ModelError::Tokenizer(format!("{token} is not at id {}", first_special + i as u32)));
        }
    }
    let vocab_size = preset.vocab_size().unwrap_or_else(|| tokenizer.get_vocab_size(true).div_ceil(16) * 16);
    let config_json = preset.config_json(vocab_size, first_special);
    let config = Config::from_value(&config_json)?;
    write_json(&dir.join("config.json"), &config_json)?;
    tokenizer
        .save(dir.join("tokenizer.json"), false)
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({
            "tokenizer_class": "Qwen2Tokenizer",
            "model_max_length": 32768,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "bos_token": null,
            "unk_token": null,
            "split_special_tokens": false,
            "add_prefix_space": false,
            "errors": "replace",
        }),
    )?;
    write_json(&dir.join("chat_template.json"), &json!({ "chat_template": QWEN2_VL_CHAT_TEMPLATE }))?;
    write_json(&dir.join("preprocessor_config.json"), &preset.processor().to_json())?;
    write_json(
        &dir.join("generation_config.json"),
        &json!({
            "bos_token_id": first_special,
            "eos_token_id": [first_special + 2, first_special],
            "pad_token_id": first_special,
            "do_sample": false,
        }),
    )?;

    let mut rng = StdRng::seed_from_u64(options.seed);
    write_weights(dir, &weight_shapes(&config), preset.dtype(), &mut rng, options.shard_bytes)?;

    let head = HeadConfig::new(config.text.hidden_size, preset.head_hidden());
    write_random_head(&dir.join("head.safetensors"), &head, &mut rng)?;
    let version = format!("easel-{}-random-seed{}", preset.name(), options.seed);
    let manifest = Manifest::new(version, format!("random {} (no trained weights)", preset.name()), head);
    manifest.write(dir)?;
    Ok(manifest)
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serialises");
    std::fs::write(path, text + "\n").map_err(|e| ModelError::io(path, e))
}

/// Writes `shapes` as safetensors shards of at most `shard_bytes`, with an index when there
/// is more than one.
fn write_weights(
    dir: &Path,
    shapes: &[(String, Vec<usize>, Init)],
    dtype: DType,
    rng: &mut StdRng,
    shard_bytes: usize,
) -> Result<()> {
    let bytes_of = |shape: &Vec<usize>| shape.iter().product::<usize>() * dtype.size_in_bytes();
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut current = 0usize;
    for (i, (_, shape, _)) in shapes.iter().enumerate() {
        let size = bytes_of(shape);
        if current > 0 && current + size > shard_bytes {
            shards.push(Vec::new());
            current = 0;
        }
        shards.last_mut().expect("non-empty").push(i);
        current += size;
    }
    let count = shards.len();
    let mut weight_map = serde_json::Map::new();
    let mut total = 0usize;
    for (n, members) in shards.iter().enumerate() {
        let file = if count == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", n + 1, count)
        };
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for &i in members {
            let (name, shape, init) = &shapes[i];
            let values = init_values(rng, shape.iter().product(), *init);
            let tensor = Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?.to_dtype(dtype)?;
            total += bytes_of(shape);
            tensors.insert(name.clone(), tensor);
            weight_map.insert(name.clone(), json!(file));
        }
        candle_core::safetensors::save(&tensors, dir.join(&file))?;
    }
    if count > 1 {
        write_json(
            &dir.join("model.safetensors.index.json"),
            &json!({"metadata": {"total_size": total}, "weight_map": weight_map}),
        )?;
    }
    Ok(())
}

/// A random head: `norm`, `fc1`, `fc2` with Kaiming-like scales.
pub fn write_random_head(path: &Path, head: &HeadConfig, rng: &mut StdRng) -> Result<()> {
    let tensors = random_head_tensors(head, rng)?;
    candle_core::safetensors::save(&tensors, path)?;
    Ok(())
}

pub fn random_head_tensors(head: &HeadConfig, rng: &mut StdRng) -> Result<HashMap<String, Tensor>> {
    let (i, h, o) = (head.input_dim, head.hidden_dim, head.outputs.len());
    let cpu = Device::Cpu;
    let mut t = HashMap::new();
    t.insert("norm.weight".to_string(), Tensor::from_vec(vec![1f32; i], i, &cpu)?);
    t.insert("norm.bias".to_string(), Tensor::from_vec(vec![0f32; i], i, &cpu)?);
    t.insert("fc1.weight".to_string(), Tensor::from_vec(uniform(rng, h * i, 0.0, (1.0 / i as f32).sqrt()), (h, i), &cpu)?);
    t.insert("fc1.bias".to_string(), Tensor::from_vec(vec![0f32; h], h, &cpu)?);
    t.insert("fc2.weight".to_string(), Tensor::from_vec(uniform(rng, o * h, 0.0, (1.0 / h as f32).sqrt()), (o, h), &cpu)?);
    t.insert("fc2.bias".to_string(), Tensor::from_vec(vec![0f32; o], o, &cpu)?);
    Ok(t)
}

/// A byte-level BPE tokenizer (256 byte symbols, no merges) with Qwen2-VL's special tokens at
/// ids 256…269: it encodes any text, and its ids line up with a tiny vocabulary.
pub fn byte_level_tokenizer() -> Result<tokenizers::Tokenizer> {
    use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{AddedToken, Tokenizer};

    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    // Order the symbols by the byte they stand for, so id = byte.
    alphabet.sort_by_key(|c| byte_of_symbol(*c));
    let vocab: Vec<(String, u32)> = alphabet.iter().enumerate().map(|(i, c)| (c.to_string(), i as u32)).collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.into_iter().collect::<tokenizers::models::bpe::Vocab>(), Vec::new())
        .build()
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, false)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect();
    tokenizer.add_special_tokens(specials).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}

/// GPT-2's byte-to-unicode map, inverted: which byte a ByteLevel symbol encodes.
fn byte_of_symbol(c: char) -> u32 {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let code = c as u32;
    if code < 256 && printable(code) {
        return code;
    }
    // Non-printable bytes are mapped, in order, to 256, 257, …
    let mut n = 256;
    for b in 0..256u32 {
        if !printable(b) {
            if n == code {
                return b;
            }
            n += 1;
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real-shape presets have exactly the parameters of the models they stand for
    /// (counted with transformers 5.24 on the meta device, `Qwen2_5_VLForConditionalGeneration`
    /// and `Qwen2VLForConditionalGeneration` built from the hub configs).
    #[test]
    fn presets_have_the_real_parameter_counts() {
        for (preset, expected) in [
            (Preset::Qwen2Vl2b, 2_208_985_600usize),
            (Preset::Qwen25Vl3b, 3_754_622_976),
            (Preset::Qwen25Vl7b, 8_292_166_656),
        ] {
            let vocab = preset.vocab_size().expect("a real vocabulary");
            let config = Config::from_value(&preset.config_json(vocab, 151_643)).expect("valid");
            let count: usize = weight_shapes(&config).iter().map(|(_, shape, _)| shape.iter().product::<usize>()).sum();
            assert_eq!(count, expected, "{}", preset.name());
        }
    }

    #[test]
    fn preset_names_round_trip() {
        for preset in Preset::ALL {
            assert_eq!(Preset::parse(preset.name()).unwrap(), preset);
        }
        assert_eq!(Preset::NAMES.to_vec(), Preset::ALL.map(Preset::name).to_vec());
        assert!(Preset::parse("qwen3-vl-4b").is_err());
    }
}
