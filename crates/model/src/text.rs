//! The Qwen2 language model of Qwen2-VL: decoder layers with grouped-query attention and the
//! multimodal rotary embedding, and a key/value cache for incremental decoding.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};

use crate::config::TextConfig;
use crate::layers::{Activation, Kernels, Linear, RmsNorm, rope, softmax_last_dim};
use crate::rope::MultimodalRotary;

/// Cached keys and values of every layer, `[batch, kv_heads, positions, head_dim]`,
/// preallocated for the whole generation so decoding writes in place.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<candle_nn::kv_cache::KvCache>,
}

impl KvCache {
    pub fn new(num_layers: usize, capacity: usize) -> Self {
        Self { layers: (0..num_layers).map(|_| candle_nn::kv_cache::KvCache::new(2, capacity)).collect() }
    }

    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.layers.first().map(|c| c.current_seq_len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A cache for `batch` sequences that all start with what this one-sequence cache holds,
    /// with room for `capacity` positions: a shared prompt prefix run once, continued many ways.
    pub fn repeat(&self, batch: usize, capacity: usize) -> Result<Self> {
        let mut out = Self::new(self.layers.len(), capacity.max(self.len()));
        for (source, target) in self.layers.iter().zip(&mut out.layers) {
            if let (Some(k), Some(v)) = (source.k()?, source.v()?) {
                if k.dim(0)? != 1 {
                    candle_core::bail!("only a one-sequence cache can be repeated, this one holds {}", k.dim(0)?);
                }
                target.append(&k.repeat((batch, 1, 1, 1))?, &v.repeat((batch, 1, 1, 1))?)?;
            }
        }
        Ok(out)
    }
}

/// `cos`/`sin` tables `[batch, len, head_dim / 2]` for the positions being run.
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub cos: Tensor,
    pub sin: Tensor,
}

#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    pub kernels: Kernels,
}

impl Attention {
    pub fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim());
        Ok(Self {
            q_proj: Linear::load(h, cfg.num_attention_heads * hd, true, vb.pp("q_proj"))?,
            k_proj: Linear::load(h, cfg.num_key_value_heads * hd, true, vb.pp("k_proj"))?,
            v_proj: Linear::load(h, cfg.num_key_value_heads * hd, true, vb.pp("v_proj"))?,
            o_proj: Linear::load(cfg.num_attention_heads * hd, h, false, vb.pp("o_proj"))?,
            num_heads: cfg.num_attention_heads,
            num_kv_heads: cfg.num_key_value_heads,
            head_dim: hd,
            kernels: Kernels::Fused,
        })
    }

    /// Mutable access to the projections, for attaching LoRA adapters.
    pub fn projections_mut(&mut self) -> [(&'static str, &mut Linear); 4] {
        [
            ("q_proj", &mut self.q_proj),
            ("k_proj", &mut self.k_proj),
            ("v_proj", &mut self.v_proj),
            ("o_proj", &mut self.o_proj),
        ]
    }

    /// `xs [b, l, hidden]`; `mask [b, 1, l, cached + l]` additive, or `None` when nothing is
    /// masked (a single decoding step without padding). Without a cache (training), keys and
    /// values are those of `xs` alone.
    pub fn forward(
        &self,
        xs: &Tensor,
        tables: &RopeTables,
        mask: Option<&Tensor>,
        cache: Option<&mut candle_nn::kv_cache::KvCache>,
    ) -> Result<Tensor> {
        let (b, l, _) = xs.dims3()?;
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let heads = |t: Tensor, n: usize| t.reshape((b, l, n, hd))?.transpose(1, 2)?.contiguous();
        let q = heads(self.q_proj.forward(xs)?, nh)?;
        let k = heads(self.k_proj.forward(xs)?, nkv)?;
        let v = heads(self.v_proj.forward(xs)?, nkv)?;
        // Scale q instead of the (much larger) scores.
        let q = (rope(&q, &tables.cos, &tables.sin, self.kernels)? * (1.0 / (hd as f64).sqrt()))?;
        let k = rope(&k, &tables.cos, &tables.sin, self.kernels)?;
        let (k, v) = match cache {
            Some(cache) => cache.append(&k, &v)?,
            None => (k, v),
        };
        let t = k.dim(2)?;

        // Grouped-query attention without copying keys: the `group` query heads that share a
        // key/value head are stacked along the query axis.
        let group = nh / nkv;
        let q = q.reshape((b, nkv, group * l, hd))?;
        let scores = q.matmul(&k.t()?)?;
        let scores = match mask {
            Some(mask) => scores
                .reshape((b, nkv, group, l, t))?
                .broadcast_add(&mask.unsqueeze(1)?)?
                .reshape((b, nkv, group * l, t))?,
            None => scores,
        };
        let probs = softmax_last_dim(&scores, self.kernels)?;
        let out = probs.matmul(&v)?.reshape((b, nh, l, hd))?.transpose(1, 2)?.reshape((b, l, nh * hd))?;
        self.o_proj.forward(&out)
    }
}

#[derive(Debug, Clone)]
pub struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl Mlp {
    pub fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: Linear::load(h, i, false, vb.pp("gate_proj"))?,
            up_proj: Linear::load(h, i, false, vb.pp("up_proj"))?,
            down_proj: Linear::load(i, h, false, vb.pp("down_proj"))?,
            act: cfg.hidden_act,
        })
    }

    pub fn projections_mut(&mut self) -> [(&'static str, &mut Linear); 3] {
        [("gate_proj", &mut self.gate_proj), ("up_proj", &mut self.up_proj), ("down_proj", &mut self.down_proj)]
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let gated = self.act.gated(&self.gate_proj.forward(xs)?, &self.up_proj.forward(xs)?)?;
        self.down_proj.forward(&gated)
    }
}

#[derive(Debug, Clone)]
pub struct DecoderLayer {
    pub self_attn: Attention,
    pub mlp: Mlp,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    pub fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
            input_layernorm: RmsNorm::load(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("input_layernorm"))?,
            post_attention_layernorm: RmsNorm::load(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
        })
    }

    pub fn forward(
        &self,
        xs: &Tensor,
        rope: &RopeTables,
        mask: Option<&Tensor>,
        cache: Option<&mut candle_nn::kv_cache::KvCache>,
    ) -> Result<Tensor> {
        let h = self.self_attn.forward(&self.input_layernorm.forward(xs)?, rope, mask, cache)?;
        let xs = (xs + h)?;
        &xs + self.mlp.forward(&self.post_attention_layernorm.forward(&xs)?)?
    }
}

/// Embeddings, decoder layers and the final norm (`model.*` / `model.language_model.*`).
#[derive(Debug, Clone)]
pub struct TextModel {
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    rotary: MultimodalRotary,
    cfg: TextConfig,
}

impl TextModel {
    pub fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        let embed = vb.pp("embed_tokens").get((cfg.vocab_size, cfg.hidden_size), "weight")?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, vb.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens: Embedding::new(embed, cfg.hidden_size),
            layers,
            norm: RmsNorm::load(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?,
            rotary: MultimodalRotary::new(cfg.head_dim(), cfg.rope_theta, &cfg.mrope_section),
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &TextConfig {
        &self.cfg
    }

    /// Fused kernels for inference, differentiable ones for training.
    pub fn set_kernels(&mut self, kernels: Kernels) {
        for layer in &mut self.layers {
            layer.input_layernorm.kernels = kernels;
            layer.post_attention_layernorm.kernels = kernels;
            layer.self_attn.kernels = kernels;
        }
        self.norm.kernels = kernels;
    }

    pub fn dtype(&self) -> DType {
        self.embed_tokens.embeddings().dtype()
    }

    pub fn new_cache(&self, capacity: usize) -> KvCache {
        KvCache::new(self.layers.len(), capacity)
    }

    /// Rotary tables for position ids given as `positions[batch][axis][i]`.
    pub fn rope(&self, positions: &[[Vec<i64>; 3]]) -> Result<RopeTables> {
        let device = self.embed_tokens.embeddings().device();
        let (cos, sin) = self.rotary.cos_sin(positions, self.dtype(), device)?;
        Ok(RopeTables { cos, sin })
    }

    pub fn embed(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.embed_tokens.forward(input_ids)
    }

    /// Runs the decoder over `embeds [b, l, hidden]` after what `cache` holds and returns the
    /// normed hidden states. With `upto_layer`, stops after that many layers (no final norm).
    /// Without a cache (training), the sequence attends only to itself.
    pub fn forward_embeds(
        &self,
        embeds: &Tensor,
        rope: &RopeTables,
        mask: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
        upto_layer: Option<usize>,
    ) -> Result<Tensor> {
        let mut xs = embeds.clone();
        let n = upto_layer.unwrap_or(self.layers.len()).min(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate().take(n) {
            let layer_cache = cache.as_mut().map(|c| &mut c.layers[i]);
            xs = layer.forward(&xs, rope, mask, layer_cache)?;
        }
        if upto_layer.is_some() {
            return Ok(xs);
        }
        self.norm.forward(&xs)
    }
}
