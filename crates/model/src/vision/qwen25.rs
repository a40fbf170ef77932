//! Qwen2.5-VL's vision tower: Qwen2-VL's patch embedding, 2-D rotary and 2×2 merger, with
//! RMSNorm in place of LayerNorm, a gated SiLU MLP, and attention within windows of
//! `window_size` pixels (112: 4×4 merged tokens) in every block but the few listed in
//! `fullatt_block_indexes`, which attend over the whole image.
//!
//! The patches are reordered so that each window's patches are consecutive (2×2 merge groups
//! move together), the blocks run in that order, and the features are put back in the
//! processor's order after the last block, so the merger and everything after it see the same
//! layout as Qwen2-VL's.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::{MergerMlp, PatchEmbed, VisionAttention, VisionInputs, check_pixels};
use crate::config::{VisionConfig, VisionKind};
use crate::layers::{Activation, Kernels, Linear, RmsNorm};
use crate::processor::Grid;
use crate::rope::VisionRotary;

/// `down_proj(act(gate_proj(x)) · up_proj(x))`, with biases.
#[derive(Debug, Clone)]
pub struct GatedMlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl GatedMlp {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let (dim, hidden) = (cfg.embed_dim, cfg.intermediate_size);
        Ok(Self {
            gate_proj: Linear::load(dim, hidden, true, vb.pp("gate_proj"))?,
            up_proj: Linear::load(dim, hidden, true, vb.pp("up_proj"))?,
            down_proj: Linear::load(hidden, dim, true, vb.pp("down_proj"))?,
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

/// A pre-norm block with RMSNorm; whether it attends within windows or over whole images is
/// the [`VisionInputs`] it is given.
#[derive(Debug, Clone)]
pub struct WindowedBlock {
    norm1: RmsNorm,
    norm2: RmsNorm,
    pub attn: VisionAttention,
    pub mlp: GatedMlp,
}

impl WindowedBlock {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: RmsNorm::load(cfg.embed_dim, 1e-6, vb.pp("norm1"))?,
            norm2: RmsNorm::load(cfg.embed_dim, 1e-6, vb.pp("norm2"))?,
            attn: VisionAttention::new(cfg, vb.pp("attn"))?,
            mlp: GatedMlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    pub fn forward(&self, xs: &Tensor, inputs: &VisionInputs) -> Result<Tensor> {
        let xs = (xs + self.attn.forward(&self.norm1.forward(xs)?, inputs)?)?;
        &xs + self.mlp.forward(&self.norm2.forward(&xs)?)?
    }
}

/// RMSNorm, then each 2×2 group of patches concatenated and projected by a 2-layer MLP.
#[derive(Debug, Clone)]
pub struct WindowedPatchMerger {
    ln_q: RmsNorm,
    pub mlp: MergerMlp,
    group_dim: usize,
}

impl WindowedPatchMerger {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let group_dim = cfg.embed_dim * cfg.spatial_merge_size * cfg.spatial_merge_size;
        Ok(Self {
            ln_q: RmsNorm::load(cfg.embed_dim, 1e-6, vb.pp("ln_q"))?,
            mlp: MergerMlp::new(group_dim, cfg.out_hidden_size, vb.pp("mlp"))?,
            group_dim,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.mlp.forward(&self.ln_q.forward(xs)?.reshape(((), self.group_dim))?)
    }
}

/// How a batch's merged tokens split into attention windows: per image (per frame), windows of
/// `window × window` merged tokens row by row, each read row-major; where the grid does not
/// divide evenly the last row and column of windows are smaller (HF pads them with `-100`
/// and drops the padding, which comes to the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    /// The merged tokens in window order: position `k` holds token `index[k]` of the
    /// processor's order (HF's `window_index`).
    pub index: Vec<u32>,
    /// Patches in each window, in order; no window is empty.
    pub lengths: Vec<usize>,
}

impl Windows {
    pub fn new(grids: &[Grid], merge: usize, window: usize) -> Self {
        let unit = merge * merge;
        let (mut index, mut lengths) = (Vec::new(), Vec::new());
        let mut offset = 0;
        for g in grids {
            let (h, w) = (g.h / merge, g.w / merge);
            for t in 0..g.t {
                let frame = offset + t * h * w;
                for top in (0..h).step_by(window) {
                    for left in (0..w).step_by(window) {
                        let before = index.len();
                        for y in top..(top + window).min(h) {
                            index.extend((left..(left + window).min(w)).map(|x| (frame + y * w + x) as u32));
                        }
                        lengths.push((index.len() - before) * unit);
                    }
                }
            }
            offset += g.t * h * w;
        }
        Self { index, lengths }
    }

    /// Window boundaries in patches, from 0 (HF's `cu_window_seqlens`).
    pub fn cu_seqlens(&self) -> Vec<usize> {
        std::iter::once(0)
            .chain(self.lengths.iter().scan(0, |end, len| {
                *end += len;
                Some(*end)
            }))
            .collect()
    }

    /// The patches in window order: each merged token's `unit` patches, together.
    fn patch_order(&self, unit: usize) -> Vec<u32> {
        let unit32 = unit as u32;
        self.index.iter().flat_map(|&token| (0..unit32).map(move |p| token * unit32 + p)).collect()
    }
}

/// What the blocks need for a batch: the windows, both attention layouts over the patches in
/// window order (rotary tables reordered alike), and the reorderings.
#[derive(Debug, Clone)]
pub struct WindowedInputs {
    pub windows: Windows,
    /// Each image (frame) as a whole: the full-attention blocks.
    pub full: VisionInputs,
    /// Each window on its own: every other block.
    pub windowed: VisionInputs,
    to_windows: Tensor,
    from_windows: Tensor,
}

impl WindowedInputs {
    /// Patch rows `[patches, …]` from the processor's order into window order.
    pub fn to_windows(&self, xs: &Tensor) -> Result<Tensor> {
        xs.index_select(&self.to_windows, 0)
    }

    /// Patch rows from window order back into the processor's order.
    pub fn from_windows(&self, xs: &Tensor) -> Result<Tensor> {
        xs.index_select(&self.from_windows, 0)
    }

    /// The attention layout of a block.
    pub fn attention(&self, full: bool) -> &VisionInputs {
        if full { &self.full } else { &self.windowed }
    }
}

/// The whole tower: `pixel_values [patches, C·T·P·P]` → `[patches / 4, out_hidden]`.
#[derive(Debug, Clone)]
pub struct WindowedVisionTransformer {
    pub patch_embed: PatchEmbed,
    pub blocks: Vec<WindowedBlock>,
    pub merger: WindowedPatchMerger,
    rotary: VisionRotary,
    /// Side of a window in merged tokens.
    window: usize,
    full_attention: Vec<bool>,
    cfg: VisionConfig,
}

impl WindowedVisionTransformer {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let (Some(window), VisionKind::Qwen25 { fullatt_block_indexes, .. }) = (cfg.window_tokens(), &cfg.kind)
        else {
            candle_core::bail!("a windowed vision tower needs a Qwen2.5-VL vision config");
        };
        let blocks = (0..cfg.depth)
            .map(|i| WindowedBlock::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_embed: PatchEmbed::new(cfg, vb.pp("patch_embed"))?,
            blocks,
            merger: WindowedPatchMerger::new(cfg, vb.pp("merger"))?,
            rotary: VisionRotary::new(cfg.head_dim(), cfg.rope_theta, cfg.spatial_merge_size),
            window,
            full_attention: (0..cfg.depth).map(|i| fullatt_block_indexes.contains(&i)).collect(),
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    /// Whether block `i` attends over whole images rather than within windows.
    pub fn is_full_attention(&self, block: usize) -> bool {
        self.full_attention[block]
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

    pub fn windows(&self, grids: &[Grid]) -> Windows {
        Windows::new(grids, self.cfg.spatial_merge_size, self.window)
    }

    /// Windows, attention layouts and rotary tables for a batch of images.
    pub fn inputs(&self, grids: &[Grid], device: &Device) -> Result<WindowedInputs> {
        let windows = self.windows(grids);
        let order = windows.patch_order(self.cfg.spatial_merge_size * self.cfg.spatial_merge_size);
        let mut inverse = vec![0u32; order.len()];
        for (position, &patch) in order.iter().enumerate() {
            inverse[patch as usize] = position as u32;
        }
        let n = order.len();
        let to_windows = Tensor::from_vec(order, n, device)?;
        let from_windows = Tensor::from_vec(inverse, n, device)?;
        let (cos, sin) = self.rotary.cos_sin(grids, device)?;
        let (cos, sin) = (cos.index_select(&to_windows, 0)?, sin.index_select(&to_windows, 0)?);
        let frames = grids.iter().flat_map(|g| std::iter::repeat_n(g.h * g.w, g.t));
        let full = VisionInputs::from_lengths(cos.clone(), sin.clone(), frames);
        let windowed = VisionInputs::from_lengths(cos, sin, windows.lengths.iter().copied());
        Ok(WindowedInputs { windows, full, windowed, to_windows, from_windows })
    }

    /// The patch features after the last block, before merging, in the processor's order.
    pub fn forward_blocks(&self, pixel_values: &Tensor, grids: &[Grid]) -> Result<Tensor> {
        check_pixels(&self.cfg, pixel_values, grids)?;
        let inputs = self.inputs(grids, pixel_values.device())?;
        let xs = self.patch_embed.forward(&pixel_values.to_dtype(self.merger.mlp.dtype())?)?;
        let mut xs = inputs.to_windows(&xs)?;
        for (i, block) in self.blocks.iter().enumerate() {
            xs = block.forward(&xs, inputs.attention(self.is_full_attention(i)))?;
        }
        inputs.from_windows(&xs)
    }

    /// Merged visual tokens, `[Σ tokens, out_hidden]`, in image order.
    pub fn forward(&self, pixel_values: &Tensor, grids: &[Grid]) -> Result<Tensor> {
        self.merger.forward(&self.forward_blocks(pixel_values, grids)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_uneven_grids() {
        // 6×10 merged tokens (12×20 patches) in 4×4 windows: 2 rows × 3 columns of windows,
        // the last row 2 tall and the last column 2 wide.
        let grid = Grid { t: 1, h: 12, w: 20 };
        let w = Windows::new(&[grid], 2, 4);
        assert_eq!(w.lengths, vec![64, 64, 32, 32, 32, 16]);
        assert_eq!(&w.index[..6], &[0, 1, 2, 3, 10, 11]);
        assert_eq!(&w.index[16..20], &[4, 5, 6, 7]);
        assert_eq!(&w.index[56..], &[48, 49, 58, 59]);
        let mut sorted = w.index.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..60).collect::<Vec<u32>>());
        assert_eq!(w.cu_seqlens(), vec![0, 64, 128, 160, 192, 224, 240]);
    }

    #[test]
    fn windows_of_a_batch_follow_each_image() {
        // An evenly divided image (no empty windows), then a 1×1-token one.
        let grids = [Grid { t: 1, h: 8, w: 8 }, Grid { t: 1, h: 2, w: 2 }];
        let w = Windows::new(&grids, 2, 4);
        assert_eq!(w.lengths, vec![64, 4]);
        assert_eq!(w.index, (0..17).collect::<Vec<u32>>());
        assert_eq!(w.patch_order(4)[64..], [64, 65, 66, 67]);
    }
}
