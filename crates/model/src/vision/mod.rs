//! The vision towers: patches of an image in, visual tokens in the language model's embedding
//! space out. Qwen2-VL's ([`VisionTransformer`]) attends over each whole image; Qwen2.5-VL's
//! ([`WindowedVisionTransformer`]) attends within windows of 112 px in most blocks. Both embed
//! patches, rotate queries and keys with the same 2-D rotary, and merge 2×2 patches into one
//! token; [`VisionTower`] is the one interface the rest of Easel calls.

mod qwen2;
mod qwen25;

pub use qwen2::{PatchMerger, VisionBlock, VisionMlp, VisionTransformer};
pub use qwen25::{GatedMlp, WindowedBlock, WindowedInputs, WindowedPatchMerger, WindowedVisionTransformer, Windows};

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::{VisionConfig, VisionKind};
use crate::layers::{Kernels, Linear, rope, softmax_last_dim};
use crate::processor::Grid;
use crate::rope::VisionRotary;

/// The vision tower a checkpoint's `config.json` names.
#[derive(Debug, Clone)]
pub enum VisionTower {
    Qwen2(VisionTransformer),
    Qwen25(WindowedVisionTransformer),
}

impl VisionTower {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match cfg.kind {
            VisionKind::Qwen2 => Self::Qwen2(VisionTransformer::new(cfg, vb)?),
            VisionKind::Qwen25 { .. } => Self::Qwen25(WindowedVisionTransformer::new(cfg, vb)?),
        })
    }

    pub fn config(&self) -> &VisionConfig {
        match self {
            Self::Qwen2(t) => t.config(),
            Self::Qwen25(t) => t.config(),
        }
    }

    /// Fused kernels for inference, differentiable ones for training.
    pub fn set_kernels(&mut self, kernels: Kernels) {
        match self {
            Self::Qwen2(t) => t.set_kernels(kernels),
            Self::Qwen25(t) => t.set_kernels(kernels),
        }
    }

    /// The patch features after the last block, before merging, in `pixel_values`' order.
    pub fn forward_blocks(&self, pixel_values: &Tensor, grids: &[Grid]) -> Result<Tensor> {
        match self {
            Self::Qwen2(t) => t.forward_blocks(pixel_values, grids),
            Self::Qwen25(t) => t.forward_blocks(pixel_values, grids),
        }
    }

    /// Merged visual tokens, `[Σ tokens, hidden]`, in image order.
    pub fn forward(&self, pixel_values: &Tensor, grids: &[Grid]) -> Result<Tensor> {
        match self {
            Self::Qwen2(t) => t.forward(pixel_values, grids),
            Self::Qwen25(t) => t.forward(pixel_values, grids),
        }
    }

    /// Mean of each image's merged tokens, `[images, hidden]` in f32.
    pub fn pool(&self, merged: &Tensor, grids: &[Grid]) -> Result<Tensor> {
        pool(merged, grids, self.config().spatial_merge_size)
    }

    /// Every block's adaptable projections, by module path below the tower
    /// (`blocks.3.attn.qkv`, `blocks.3.mlp.gate_proj`).
    pub fn projections_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let blocks: Vec<[Vec<(&'static str, &mut Linear)>; 2]> = match self {
            Self::Qwen2(t) => {
                t.blocks.iter_mut().map(|b| [b.attn.projections_mut().into(), b.mlp.projections_mut().into()]).collect()
            }
            Self::Qwen25(t) => {
                t.blocks.iter_mut().map(|b| [b.attn.projections_mut().into(), b.mlp.projections_mut().into()]).collect()
            }
        };
        let mut out = Vec::new();
        for (i, [attn, mlp]) in blocks.into_iter().enumerate() {
            for (part, projections) in [("attn", attn), ("mlp", mlp)] {
                out.extend(projections.into_iter().map(|(name, linear)| (format!("blocks.{i}.{part}.{name}"), linear)));
            }
        }
        out
    }
}

/// Mean of each image's merged tokens, `[images, hidden]` in f32 (summing thousands of bf16
/// values in bf16 would lose the signal the regression head reads).
pub fn pool(merged: &Tensor, grids: &[Grid], merge: usize) -> Result<Tensor> {
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

/// Checks `pixel_values [patches, C·T·P·P]` against the grids.
fn check_pixels(cfg: &VisionConfig, pixel_values: &Tensor, grids: &[Grid]) -> Result<()> {
    let expected: usize = grids.iter().map(Grid::num_patches).sum();
    let (n, len) = pixel_values.dims2()?;
    if n != expected || len != cfg.patch_len() {
        candle_core::bail!("pixel_values is {n}×{len}, the grids need {expected}×{}", cfg.patch_len());
    }
    Ok(())
}

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
/// patches split into the segments that attend to each other (images, or windows).
#[derive(Debug, Clone)]
pub struct VisionInputs {
    pub cos: Tensor,
    pub sin: Tensor,
    /// Runs of consecutive segments with the same number of patches: `(first patch, segments,
    /// patches per segment)`. Attention is batched within a run.
    pub segments: Vec<(usize, usize, usize)>,
}

impl VisionInputs {
    /// Attention over each image (each frame of a video) as a whole, as Qwen2-VL's blocks and
    /// Qwen2.5-VL's full-attention blocks attend.
    pub fn new(rotary: &VisionRotary, grids: &[Grid], device: &Device) -> Result<Self> {
        let (cos, sin) = rotary.cos_sin(grids, device)?;
        // Frames of a video attend separately, like images (cu_seqlens per frame).
        let lengths = grids.iter().flat_map(|g| std::iter::repeat_n(g.h * g.w, g.t));
        Ok(Self::from_lengths(cos, sin, lengths))
    }

    /// Attention within consecutive segments of the given lengths (in patches), the rotary
    /// tables already in the patches' order.
    pub fn from_lengths(cos: Tensor, sin: Tensor, lengths: impl IntoIterator<Item = usize>) -> Self {
        let mut segments: Vec<(usize, usize, usize)> = Vec::new();
        let mut start = 0;
        for len in lengths {
            match segments.last_mut() {
                Some((_, n, l)) if *l == len => *n += 1,
                _ => segments.push((start, 1, len)),
            }
            start += len;
        }
        Self { cos, sin, segments }
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
        let qkv = self.qkv.forward(xs)?;
        // The softmax scale is folded into q (a pass over [patches, dim]) rather than applied
        // to the scores (a pass over [heads, patches, patches]).
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        if self.kernels == Kernels::Fused && crate::cpu::applies(&qkv) {
            let (h, d) = (self.num_heads, self.head_dim);
            let out = crate::cpu::vision_attention(&qkv, &inputs.cos, &inputs.sin, h, d, scale, &inputs.segments)?;
            return self.proj.forward(&out);
        }
        let qkv = qkv.reshape((n, 3, self.num_heads, self.head_dim))?;
        // [heads, patches, head_dim] per projection; the rotary runs in f32 as in HF.
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(1, i, 1)?.squeeze(1)?.transpose(0, 1)?.unsqueeze(0)?.contiguous()
        };
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

/// The merger's two-layer MLP over each 2×2 group of patches (`mlp.0`, exact GELU, `mlp.2`).
#[derive(Debug, Clone)]
pub struct MergerMlp {
    fc1: Linear,
    fc2: Linear,
}

impl MergerMlp {
    pub fn new(group_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: Linear::load(group_dim, group_dim, true, vb.pp("0"))?,
            fc2: Linear::load(group_dim, out_dim, true, vb.pp("2"))?,
        })
    }

    /// The weights' dtype, which the tower casts pixel values to.
    pub fn dtype(&self) -> DType {
        self.fc1.weight().dtype()
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(xs)?.gelu_erf()?)
    }
}
