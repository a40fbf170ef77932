//! Random-weight checkpoints in the real layout and shapes (`easel model init`): what the
//! tests, the demo and the GPU benchmark run when no trained weights are at hand.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::config::Config;
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
}

impl Preset {
    pub const NAMES: [&'static str; 3] = ["tiny", "qwen2-vl-2b", "qwen2-vl-7b"];

    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::Tiny),
            "qwen2-vl-2b" => Ok(Self::Qwen2Vl2b),
            "qwen2-vl-7b" => Ok(Self::Qwen2Vl7b),
            other => Err(ModelError::Input(format!("unknown preset {other:?}; expected one of {:?}", Self::NAMES))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Qwen2Vl2b => "qwen2-vl-2b",
            Self::Qwen2Vl7b => "qwen2-vl-7b",
        }
    }

    /// `config.json` in the hub's flat layout, for a vocabulary whose special tokens start at
    /// `first_special`.
    pub fn config_json(self, vocab_size: usize, first_special: u32) -> Value {
        let (hidden, inter, layers, heads, kv, tie, vision) = match self {
            Self::Tiny => (64, 128, 2, 4, 2, false, json!({"depth": 2, "embed_dim": 32, "num_heads": 4})),
            Self::Qwen2Vl2b => (1536, 8960, 28, 12, 2, true, json!({"depth": 32, "embed_dim": 1280, "num_heads": 16})),
            Self::Qwen2Vl7b => (3584, 18944, 28, 28, 4, false, json!({"depth": 32, "embed_dim": 1280, "num_heads": 16})),
        };
        let head_dim = hidden / heads;
        let mrope = match head_dim {
            128 => vec![16, 24, 24],
            d => {
                let half = d / 2;
                vec![half - 2 * (3 * half / 8), 3 * half / 8, 3 * half / 8]
            }
        };
        let mut vision = vision;
        let v = vision.as_object_mut().expect("object");
        v.insert("mlp_ratio".into(), json!(4));
        v.insert("in_chans".into(), json!(3));
        v.insert("hidden_size".into(), json!(hidden));
        v.insert("patch_size".into(), json!(14));
        v.insert("spatial_merge_size".into(), json!(2));
        v.insert("temporal_patch_size".into(), json!(2));
        let special = |i: u32| first_special + i;
        json!({
            "architectures": ["Qwen2VLForConditionalGeneration"],
            "model_type": "qwen2_vl",
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
            "intermediate_size": inter,
            "max_position_embeddings": 32768,
            "max_window_layers": layers,
            "num_attention_heads": heads,
            "num_hidden_layers": layers,
            "num_key_value_heads": kv,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1_000_000.0,
            "sliding_window": 32768,
            "tie_word_embeddings": tie,
            "torch_dtype": if self == Self::Tiny { "float32" } else { "bfloat16" },
            "use_cache": true,
            "use_sliding_window": false,
            "vision_config": vision,
            "rope_scaling": {"type": "mrope", "mrope_section": mrope},
            "vocab_size": vocab_size,
        })
    }

    /// The processor settings written with the preset: Qwen's own, with a small pixel cap for
    /// `tiny` so CPU tests stay fast.
    pub fn processor(self) -> ProcessorConfig {
        let mut p = ProcessorConfig::default();
        if self == Self::Tiny {
            p.min_pixels = 28 * 28 * 4;
            p.max_pixels = 28 * 28 * 64;
        }
        p
    }

    pub fn head_hidden(self) -> usize {
        match self {
            Self::Tiny => 32,
            _ => 1024,
        }
    }

    pub fn dtype(self) -> DType {
        match self {
            Self::Tiny => DType::F32,
            _ => DType::BF16,
        }
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

/// Every tensor of a Qwen2-VL checkpoint in the hub's spelling, with its shape.
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
    for i in 0..v.depth {
        let p = format!("visual.blocks.{i}");
        let e = v.embed_dim;
        for n in ["norm1", "norm2"] {
            push(format!("{p}.{n}.weight"), vec![e], norm);
            push(format!("{p}.{n}.bias"), vec![e], bias);
        }
        push(format!("{p}.attn.qkv.weight"), vec![3 * e, e], small);
        push(format!("{p}.attn.qkv.bias"), vec![3 * e], bias);
        push(format!("{p}.attn.proj.weight"), vec![e, e], small);
        push(format!("{p}.attn.proj.bias"), vec![e], bias);
        push(format!("{p}.mlp.fc1.weight"), vec![v.mlp_hidden(), e], small);
        push(format!("{p}.mlp.fc1.bias"), vec![v.mlp_hidden()], bias);
        push(format!("{p}.mlp.fc2.weight"), vec![e, v.mlp_hidden()], small);
        push(format!("{p}.mlp.fc2.bias"), vec![e], bias);
    }
    let group = v.embed_dim * v.spatial_merge_size * v.spatial_merge_size;
    push("visual.merger.ln_q.weight".into(), vec![v.embed_dim], norm);
    push("visual.merger.ln_q.bias".into(), vec![v.embed_dim], bias);
    push("visual.merger.mlp.0.weight".into(), vec![group, group], small);
    push("visual.merger.mlp.0.bias".into(), vec![group], bias);
    push("visual.merger.mlp.2.weight".into(), vec![v.hidden_size, group], small);
    push("visual.merger.mlp.2.bias".into(), vec![v.hidden_size], bias);

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
    /// A real Qwen `tokenizer.json` (required for the 2B and 7B presets, whose vocabulary is
    /// Qwen's); `tiny` builds a byte-level tokenizer with Qwen's special tokens.
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
    let tokenizer = match (&options.tokenizer, preset) {
        (Some(path), _) => crate::pipeline::load_tokenizer(path)?,
        (None, Preset::Tiny) => byte_level_tokenizer()?,
        (None, _) => {
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
    let vocab_size = match preset {
        Preset::Tiny => tokenizer.get_vocab_size(true).div_ceil(16) * 16,
        Preset::Qwen2Vl2b => 151_936,
        Preset::Qwen2Vl7b => 152_064,
    };
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
