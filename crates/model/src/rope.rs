//! Rotary position embeddings: the vision tower's 2-D rotary and the language model's
//! multimodal rotary (M-RoPE) with its 3-D `(temporal, height, width)` position ids.

use candle_core::{DType, Device, Result, Tensor};

use crate::processor::Grid;

/// The 2-D rotary of the vision tower: half of each head rotates with the patch's row, half
/// with its column.
#[derive(Debug, Clone)]
pub struct VisionRotary {
    inv_freq: Vec<f32>,
    merge: usize,
}

impl VisionRotary {
    /// `head_dim` of the vision attention; `theta` is 10 000 for Qwen2-VL.
    pub fn new(head_dim: usize, theta: f64, merge: usize) -> Self {
        let dim = head_dim / 2;
        let inv_freq = (0..dim)
            .step_by(2)
            .map(|i| (1.0 / theta.powf(i as f64 / dim as f64)) as f32)
            .collect();
        Self { inv_freq, merge }
    }

    /// `(row, column)` of every patch, in the 2×2-merge order of `pixel_values`.
    pub fn patch_positions(&self, grids: &[Grid]) -> Vec<(usize, usize)> {
        let m = self.merge;
        let mut positions = Vec::with_capacity(grids.iter().map(Grid::num_patches).sum());
        for g in grids {
            for _ in 0..g.t {
                for bh in 0..g.h / m {
                    for bw in 0..g.w / m {
                        for mh in 0..m {
                            for mw in 0..m {
                                positions.push((bh * m + mh, bw * m + mw));
                            }
                        }
                    }
                }
            }
        }
        positions
    }

    /// `(cos, sin)`, each `[num_patches, head_dim / 2]` in f32, the half-width tables that
    /// `candle_nn::rotary_emb::rope` expects (HF concatenates the same half twice).
    pub fn cos_sin(&self, grids: &[Grid], device: &Device) -> Result<(Tensor, Tensor)> {
        let positions = self.patch_positions(grids);
        let quarter = self.inv_freq.len();
        let mut angles = Vec::with_capacity(positions.len() * quarter * 2);
        for (row, col) in &positions {
            angles.extend(self.inv_freq.iter().map(|f| *row as f32 * f));
            angles.extend(self.inv_freq.iter().map(|f| *col as f32 * f));
        }
        let angles = Tensor::from_vec(angles, (positions.len(), quarter * 2), device)?;
        Ok((angles.cos()?, angles.sin()?))
    }
}

/// 3-D position ids of one sequence (`[3][len]`) and the offset decoding continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MropePositions {
    /// `ids[axis][i]` for axis 0 = temporal, 1 = height, 2 = width.
    pub ids: [Vec<i64>; 3],
    /// The position of the first generated token (max position + 1).
    pub next_position: i64,
}

impl MropePositions {
    /// HF's `rope_deltas`: how far text positions run ahead of (or behind) token indices.
    pub fn rope_delta(&self) -> i64 {
        self.next_position - self.ids[0].len() as i64
    }
}

/// Qwen2-VL's `get_rope_index` for one unpadded sequence: text tokens advance all three axes
/// together; the tokens of an image (`image_token_id`, in runs of `grid.num_tokens(merge)`)
/// take `(start, start + row, start + column)` on the merged grid, and text after an image
/// resumes at one past the largest position used.
pub fn mrope_positions(
    input_ids: &[u32],
    image_token_id: u32,
    grids: &[Grid],
    merge: usize,
) -> std::result::Result<MropePositions, String> {
    let mut ids: [Vec<i64>; 3] = std::array::from_fn(|_| Vec::with_capacity(input_ids.len()));
    let mut next: i64 = 0;
    let mut grids = grids.iter();
    let mut i = 0;
    while i < input_ids.len() {
        if input_ids[i] != image_token_id {
            for axis in &mut ids {
                axis.push(next);
            }
            next += 1;
            i += 1;
            continue;
        }
        let grid = grids
            .next()
            .ok_or_else(|| "more image placeholders than images".to_string())?;
        let (t, h, w) = (grid.t, grid.h / merge, grid.w / merge);
        let count = t * h * w;
        if i + count > input_ids.len() || input_ids[i..i + count].iter().any(|&id| id != image_token_id) {
            return Err(format!("an image needs {count} consecutive placeholder tokens"));
        }
        for ti in 0..t {
            for hi in 0..h {
                for wi in 0..w {
                    ids[0].push(next + ti as i64);
                    ids[1].push(next + hi as i64);
                    ids[2].push(next + wi as i64);
                }
            }
        }
        // HF advances by the larger spatial side only (`max(grid_h, grid_w) // merge`).
        next += h.max(w) as i64;
        i += count;
    }
    if grids.next().is_some() {
        return Err("more images than image placeholders".to_string());
    }
    Ok(MropePositions { ids, next_position: next })
}

/// The language model's multimodal rotary embedding.
#[derive(Debug, Clone)]
pub struct MultimodalRotary {
    inv_freq: Vec<f32>,
    /// For each of the `head_dim / 2` frequencies, which position axis drives it.
    axis_of_freq: Vec<usize>,
}

impl MultimodalRotary {
    pub fn new(head_dim: usize, theta: f64, mrope_section: &[usize]) -> Self {
        let inv_freq: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| (1.0 / theta.powf(i as f64 / head_dim as f64)) as f32)
            .collect();
        let axis_of_freq = mrope_section
            .iter()
            .enumerate()
            .flat_map(|(axis, &n)| std::iter::repeat_n(axis, n))
            .collect();
        Self { inv_freq, axis_of_freq }
    }

    /// `(cos, sin)`, each `[batch, len, head_dim / 2]` in `dtype`, for position ids given as
    /// `positions[b][axis][i]`.
    pub fn cos_sin(
        &self,
        positions: &[[Vec<i64>; 3]],
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let batch = positions.len();
        let len = positions.first().map(|p| p[0].len()).unwrap_or(0);
        let half = self.inv_freq.len();
        let mut angles = Vec::with_capacity(batch * len * half);
        for seq in positions {
            for i in 0..len {
                for (j, f) in self.inv_freq.iter().enumerate() {
                    angles.push(seq[self.axis_of_freq[j]][i] as f32 * f);
                }
            }
        }
        let angles = Tensor::from_vec(angles, (batch, len, half), device)?;
        Ok((angles.cos()?.to_dtype(dtype)?, angles.sin()?.to_dtype(dtype)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_the_merged_grid() {
        // <s> img img img img img img text text, one image of 4×6 patches → 2×3 merged tokens.
        let ids = [1, 9, 9, 9, 9, 9, 9, 2, 3];
        let grid = Grid { t: 1, h: 4, w: 6 };
        let p = mrope_positions(&ids, 9, &[grid], 2).unwrap();
        assert_eq!(p.ids[0], vec![0, 1, 1, 1, 1, 1, 1, 4, 5]);
        assert_eq!(p.ids[1], vec![0, 1, 1, 1, 2, 2, 2, 4, 5]);
        assert_eq!(p.ids[2], vec![0, 1, 2, 3, 1, 2, 3, 4, 5]);
        assert_eq!(p.next_position, 6);
        assert_eq!(p.rope_delta(), 6 - 9);
    }

    #[test]
    fn text_only_is_linear() {
        let p = mrope_positions(&[5, 6, 7], 9, &[], 2).unwrap();
        assert_eq!(p.ids[1], vec![0, 1, 2]);
        assert_eq!(p.rope_delta(), 0);
    }

    #[test]
    fn mismatched_placeholders_are_errors() {
        let grid = Grid { t: 1, h: 2, w: 2 };
        assert!(mrope_positions(&[9, 9], 9, &[grid], 2).is_err());
        assert!(mrope_positions(&[1, 2], 9, &[grid], 2).is_err());
        assert!(mrope_positions(&[9], 9, &[], 2).is_err());
    }
}
