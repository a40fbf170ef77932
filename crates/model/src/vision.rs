//! Qwen2-VL's vision tower: patch embedding, ViT blocks with 2-D rotary embeddings and
//! block-diagonal attention (each image attends only to itself), and the 2×2 patch merger
//! that maps patches into the language model's embedding space.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::VisionConfig;
use crate::layers::{Activation, Kernels, LayerNorm, Linear, rope, softmax_last_dim};
use crate::processor::Grid;
use crate::rope::VisionRotary;

/// The Conv3d patch embedding: its kernel equals its stride, so it is one matmul over the
/// flattened `[C·T·P·P]` patches.
#[derive(Debug, Clone)]
pub struct PatchEmbed {
    proj: Linear,
}

impl PatchEmbed {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let weight = vb.pp("proj").get(
            (cfg.embed_dim, cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size, cfg.patch_size),
            "weight",
        )?;
        let weight = weight.reshape((cfg.embed_dim, cfg.patch_len()))?;
        Ok(Self { proj: Linear::new(weight, None) })
    }

    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        self.proj.forward(pixel_values)
    }
}

/// What every block needs to know about the batch of images: the rotary tables and how the
/// patches split into images.
#[derive(Debug, Clone)]
pub struct VisionInputs {
    pub cos: Tensor,
    pub sin: Tensor,
    /// Runs of consecutive images with the same number of patches: `(first patch, images,
    /// patches per image)`. Attention is batched within a run.
    pub segments: Vec<(usize, usize, usize)>,
}

impl VisionInputs {
    pub fn new(rotary: &VisionRotary, grids: &[Grid], device: &Device) -> Result<Self> {
        let (cos, sin) = rotary.cos_sin(grids, device)?;
        let mut segments: Vec<(usize, usize, usize)> = Vec::new();
        let mut start = 0;
        for g in grids {
            // Frames of a video attend separately, like images (cu_seqlens per frame).
            for _ in 0..g.t {
                let len = g.h * g.w;
                match segments.last_mut() {
                    Some((_, n, l)) if *l == len => *n += 1,
                    _ => segments.push((start, 1, len)),
                }
                start += len;
            }
        }
        Ok(Self { cos, sin, segments })
    }
}

#[derive(Debug, Clone)]
pub struct VisionAttention {
    qkv: Linear,
    proj: Linear,
    num_heads: usize,
    head_dim: usize,
    pub kernels: Kernels,
}

impl VisionAttention {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.embed_dim;
        Ok(Self {
            qkv: Linear::load(dim, 3 * dim, true, vb.pp("qkv"))?,
            proj: Linear::load(dim, dim, true, vb.pp("proj"))?,
            num_heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
            kernels: Kernels::Fused,
        })
    }

    pub fn projections_mut(&mut self) -> [(&'static str, &mut Linear); 2] {
        [("qkv", &mut self.qkv), ("proj", &mut self.proj)]
    }

    /// The split + rotary + scale of `qkv [n, 3, heads, head_dim]` as one CUDA kernel, when it
    /// applies (bf16 on a GPU, inference).
    #[cfg(feature = "cuda")]
    fn fused_qkv(&self, qkv: &Tensor, inputs: &VisionInputs, scale: f64) -> Result<Option<(Tensor, Tensor, Tensor)>> {
        if self.kernels != Kernels::Fused || !crate::cuda::applies(qkv) {
            return Ok(None);
        }
        let flat = qkv.reshape((qkv.dim(0)?, 3 * self.num_heads * self.head_dim))?;
        crate::cuda::vision_qkv_rope(&flat, &inputs.cos, &inputs.sin, self.num_heads, self.head_dim, scale).map(Some)
    }

    #[cfg(not(feature = "cuda"))]
    fn fused_qkv(&self, _: &Tensor, _: &VisionInputs, _: f64) -> Result<Option<(Tensor, Tensor, Tensor)>> {
        Ok(None)
    }

    pub fn forward(&self, xs: &Tensor, inputs: &VisionInputs) -> Result<Tensor> {
        let (n, dim) = xs.dims2()?;
        let dtype = xs.dtype();
        let qkv = self.qkv.forward(xs)?.reshape((n, 3, self.num_heads, self.head_dim))?;
        // [heads, patches, head_dim] per projection; the rotary runs in f32 as in HF.
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(1, i, 1)?.squeeze(1)?.transpose(0, 1)?.unsqueeze(0)?.contiguous()
        };
        // The softmax scale is folded into q (a pass over [patches, dim]) rather than applied
        // to the scores (a pass over [heads, patches, patches]).
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let rotate = |t: Tensor, scale: f64| -> Result<Tensor> {
            rope(&t.to_dtype(DType::F32)?, &inputs.cos, &inputs.sin, self.kernels)?
                .affine(scale, 0.0)?
                .to_dtype(dtype)?
                .squeeze(0)
        };
        let (q, k, v) = match self.fused_qkv(&qkv, inputs, scale)? {
            Some(qkv) => qkv,
            None => (rotate(split(0)?, scale)?, rotate(split(1)?, 1.0)?, split(2)?.squeeze(0)?),
        };

        let mut outputs = Vec::with_capacity(inputs.segments.len());
        for &(start, images, len) in &inputs.segments {
            // Heads and images are independent, so one batched attention covers a run.
            let take = |t: &Tensor| -> Result<Tensor> {
                t.narrow(1, start, images * len)?
                    .contiguous()?
                    .reshape((self.num_heads * images, len, self.head_dim))
            };
            let (q, k, v) = (take(&q)?, take(&k)?, take(&v)?);
            let scores = q.matmul(&k.t()?)?;
            let probs = softmax_last_dim(&scores, self.kernels)?;
            let out = probs.matmul(&v)?;
            outputs.push(out.reshape((self.num_heads, images * len, self.head_dim))?);
        }
        let out = if outputs.len() == 1 { outputs.remove(0) } else { Tensor::cat(&outputs, 1)? };
        let out = out.transpose(0, 1)?.reshape((n, dim))?;
        self.proj.forward(&out)
    }
}

#[derive(Debug, Clone)]
pub struct VisionMlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl VisionMlp {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: Linear::load(cfg.embed_dim, cfg.mlp_hidden(), true, vb.pp("fc1"))?,
            fc2: Linear::load(cfg.mlp_hidden(), cfg.embed_dim, true, vb.pp("fc2"))?,
            act: cfg.hidden_act,
        })
    }

    pub fn projections_mut(&mut self) -> [(&'static str, &mut Linear); 2] {
        [("fc1", &mut self.fc1), ("fc2", &mut self.fc2)]
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.act.forward(&self.fc1.forward(xs)?)?)
    }
}

#[derive(Debug, Clone)]
pub struct VisionBlock {
    norm1: LayerNorm,
    norm2: LayerNorm,
    pub attn: VisionAttention,
    pub mlp: VisionMlp,
}

impl VisionBlock {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: LayerNorm::load(cfg.embed_dim, 1e-6, vb.pp("norm1"))?,
            norm2: LayerNorm::load(cfg.embed_dim, 1e-6, vb.pp("norm2"))?,
            attn: VisionAttention::new(cfg, vb.pp("attn"))?,
            mlp: VisionMlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    pub fn forward(&self, xs: &Tensor, inputs: &VisionInputs) -> Result<Tensor> {
        let xs = (xs + self.attn.forward(&self.norm1.forward(xs)?, inputs)?)?;
        &xs + self.mlp.forward(&self.norm2.forward(&xs)?)?
    }
}

/// LayerNorm, then each 2×2 group of patches concatenated and projected by a 2-layer MLP.
#[derive(Debug, Clone)]
pub struct PatchMerger {
    ln_q: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    group_dim: usize,
}

impl PatchMerger {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let group_dim = cfg.embed_dim * cfg.spatial_merge_size * cfg.spatial_merge_size;
        Ok(Self {
            ln_q: LayerNorm::load(cfg.embed_dim, 1e-6, vb.pp("ln_q"))?,
            fc1: Linear::load(group_dim, group_dim, true, vb.pp("mlp.0"))?,
            fc2: Linear::load(group_dim, cfg.hidden_size, true, vb.pp("mlp.2"))?,
            group_dim,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = self.ln_q.forward(xs)?.reshape(((), self.group_dim))?;
        self.fc2.forward(&self.fc1.forward(&xs)?.gelu_erf()?)
    }
}

/// The whole tower: `pixel_values [patches, C·T·P·P]` → `[patches / 4, hidden]`.
#[derive(Debug, Clone)]
pub struct VisionTransformer {
    pub patch_embed: PatchEmbed,
    pub blocks: Vec<VisionBlock>,
    pub merger: PatchMerger,
    rotary: VisionRotary,
    cfg: VisionConfig,
}

impl VisionTransformer {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let blocks = (0..cfg.depth)
            .map(|i| VisionBlock::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_embed: PatchEmbed::new(cfg, vb.pp("patch_embed"))?,
            blocks,
            merger: PatchMerger::new(cfg, vb.pp("merger"))?,
            rotary: VisionRotary::new(cfg.head_dim(), cfg.rope_theta, cfg.spatial_merge_size),
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    /// Fused kernels for inference, differentiable ones for training.
    pub fn set_kernels(&mut self, kernels: Kernels) {
        for block in &mut self.blocks {
            block.norm1.kernels = kernels;
            block.norm2.kernels = kernels;
            block.attn.kernels = kernels;
        }
        self.merger.ln_q.kernels = kernels;
    }

    /// Rotary tables and attention segments for a batch of images.
    pub fn inputs(&self, grids: &[Grid], device: &Device) -> Result<VisionInputs> {
        VisionInputs::new(&self.rotary, grids, device)
    }

    /// The patch features after the last block, before merging.
    pub fn forward_blocks(&self, pixel_values: &Tensor, grids: &[Grid]) -> Result<Tensor> {
        let expected: usize = grids.iter().map(Grid::num_patches).sum();
        let (n, len) = pixel_values.dims2()?;
        if n != expected || len != self.cfg.patch_len() {
            candle_core::bail!(
                "pixel_values is {n}×{len}, the grids need {expected}×{}",
                self.cfg.patch_len()
            );
        }
        let dtype = self.merger.fc1.weight().dtype();
        let inputs = self.inputs(grids, pixel_values.device())?;
        let mut xs = self.patch_embed.forward(&pixel_values.to_dtype(dtype)?)?;
        for block in &self.blocks {
            xs = block.forward(&xs, &inputs)?;
        }
        Ok(xs)
    }

    /// Merged visual tokens, `[Σ tokens, hidden]`, in image order.
    pub fn forward(&self, pixel_values: &Tensor, grids: &[Grid]) -> Result<Tensor> {
        self.merger.forward(&self.forward_blocks(pixel_values, grids)?)
    }

    /// Mean of each image's merged tokens, `[images, hidden]` in f32 (summing thousands of
    /// bf16 values in bf16 would lose the signal the regression head reads).
    pub fn pool(&self, merged: &Tensor, grids: &[Grid]) -> Result<Tensor> {
        let merge = self.cfg.spatial_merge_size;
        let merged = merged.to_dtype(DType::F32)?;
        let mut start = 0;
        let mut pooled = Vec::with_capacity(grids.len());
        for g in grids {
            let n = g.num_tokens(merge);
            pooled.push(merged.narrow(0, start, n)?.mean_keepdim(0)?);
            start += n;
        }
        Tensor::cat(&pooled, 0)
    }
}
