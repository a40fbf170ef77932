//! Qwen2-VL's vision tower: patch embedding, ViT blocks with 2-D rotary embeddings and
//! block-diagonal attention (each image attends only to itself), and the 2×2 patch merger
//! that maps patches into the language model's embedding space.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::{MergerMlp, PatchEmbed, VisionAttention, VisionInputs, check_pixels};
use crate::config::VisionConfig;
use crate::layers::{Activation, Kernels, LayerNorm, Linear};
use crate::processor::Grid;
use crate::rope::VisionRotary;

#[derive(Debug, Clone)]
pub struct VisionMlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl VisionMlp {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: Linear::load(cfg.embed_dim, cfg.intermediate_size, true, vb.pp("fc1"))?,
            fc2: Linear::load(cfg.intermediate_size, cfg.embed_dim, true, vb.pp("fc2"))?,
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
    pub mlp: MergerMlp,
    group_dim: usize,
}

impl PatchMerger {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let group_dim = cfg.embed_dim * cfg.spatial_merge_size * cfg.spatial_merge_size;
        Ok(Self {
            ln_q: LayerNorm::load(cfg.embed_dim, 1e-6, vb.pp("ln_q"))?,
            mlp: MergerMlp::new(group_dim, cfg.out_hidden_size, vb.pp("mlp"))?,
            group_dim,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.mlp.forward(&self.ln_q.forward(xs)?.reshape(((), self.group_dim))?)
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
        check_pixels(&self.cfg, pixel_values, grids)?;
        let dtype = self.merger.mlp.dtype();
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
}
