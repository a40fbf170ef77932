//! The vision tower's attention on the CPU, from the fused `qkv` projection's output to the
//! heads' outputs in the layout the output projection reads.
//!
//! candle's version is a dozen passes: three strided copies split q, k and v out of `qkv`, two
//! rotary passes and a scaling pass over q, a batched matmul that forks the thread pool once per
//! head, the softmax over every head's whole score matrix at once, and a copy that puts the
//! heads back side by side. Here it is two passes:
//!
//! 1. q, k and v are written head-major (`[3, heads, patches, head_dim]`), q and k rotated and
//!    q scaled on the way, one task per projection and head;
//! 2. one task per segment (image, or window), head and block of [`QUERY_BLOCK`] queries
//!    computes its scores `Q Kᵀ` with a single-threaded gemm, the softmax of each row in place,
//!    and `P V` straight into its columns of the output `[patches, heads · head_dim]`.
//!
//! A task holds at most `QUERY_BLOCK × patches` scores, so memory is bounded by the image size
//! rather than growing with heads × patches² as the batched version's did.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::activation::softmax_row;
use super::{Isa, Out, PAR_CHUNK, f32_slice, multiversion, par_filled};

/// Queries per task.
const QUERY_BLOCK: usize = 256;

/// Attention of `qkv [patches, 3 · heads · head_dim]` (q, k, v side by side, each head's
/// `head_dim` values together, as Qwen2-VL's fused projection writes them) within segments,
/// with the rotate-half rotary of `cos`/`sin [patches, head_dim / 2]` applied to q and k and q
/// scaled by `scale`. `segments` are runs `(first patch, segments, patches per segment)` that
/// together cover every patch in order (`VisionInputs::segments`). Returns
/// `[patches, heads · head_dim]`.
pub fn vision_attention(
    qkv: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    heads: usize,
    head_dim: usize,
    scale: f64,
    segments: &[(usize, usize, usize)],
) -> Result<Tensor> {
    let op = VisionAttention { heads, head_dim, scale: scale as f32, segments: segments.to_vec() };
    qkv.contiguous()?.apply_op3_no_bwd(&cos.contiguous()?, &sin.contiguous()?, &op)
}

struct VisionAttention {
    heads: usize,
    head_dim: usize,
    scale: f32,
    segments: Vec<(usize, usize, usize)>,
}

/// One task of the second pass: `rows` queries from `q0` of the segment `[base, base + len)`,
/// one head.
struct Task {
    base: usize,
    len: usize,
    head: usize,
    q0: usize,
    rows: usize,
}

impl VisionAttention {
    fn check(&self, n: usize, width: usize, cos: &Layout, sin: &Layout) -> Result<()> {
        let (h, d) = (self.heads, self.head_dim);
        if d == 0 || d % 2 != 0 || width != 3 * h * d {
            candle_core::bail!("{}: qkv is {n}×{width}, not {n}×3·{h}·{d} with an even head_dim", self.name());
        }
        for table in [cos, sin] {
            if table.shape().dims() != [n, d / 2] {
                candle_core::bail!("{}: rotary table {:?}, not [{n}, {}]", self.name(), table.shape(), d / 2);
            }
        }
        let untiled = || candle_core::bail!("{}: segments {:?} do not tile {n} patches", self.name(), self.segments);
        let mut next = 0;
        for &(start, count, len) in &self.segments {
            if start != next || len == 0 {
                return untiled();
            }
            next = start + count * len;
        }
        if next != n {
            return untiled();
        }
        Ok(())
    }
}

impl CustomOp3 for VisionAttention {
    fn name(&self) -> &'static str {
        "easel-cpu-vision-attention"
    }

    fn cpu_fwd(
        &self,
        qkv: &CpuStorage,
        qkv_l: &Layout,
        cos: &CpuStorage,
        cos_l: &Layout,
        sin: &CpuStorage,
        sin_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, width) = qkv_l.shape().dims2()?;
        self.check(n, width, cos_l, sin_l)?;
        let qkv = f32_slice(qkv, qkv_l, self.name())?;
        let (cos, sin) = (f32_slice(cos, cos_l, self.name())?, f32_slice(sin, sin_l, self.name())?);
        let (h, d) = (self.heads, self.head_dim);
        if n == 0 {
            return Ok((CpuStorage::F32(Vec::new()), Shape::from((0, h * d))));
        }
        let isa = Isa::detect();

        // Pass 1: [3, heads, patches, head_dim], q and k rotated, q scaled.
        let split = par_filled(3 * h * n * d, n * d, |i, dst| {
            let (part, head) = (i / h, i % h);
            let offset = (part * h + head) * d;
            match part {
                0 => rotate_rows(isa, qkv, 3 * h * d, offset, cos, sin, self.scale, dst),
                1 => rotate_rows(isa, qkv, 3 * h * d, offset, cos, sin, 1.0, dst),
                _ => dst
                    .chunks_exact_mut(d)
                    .zip(qkv.chunks_exact(3 * h * d))
                    .for_each(|(dst, row)| dst.copy_from_slice(&row[offset..offset + d])),
            }
        });

        // Pass 2: softmax(Q Kᵀ) V per segment, head and block of queries.
        let mut tasks = Vec::new();
        for &(start, count, len) in &self.segments {
            for base in (0..count).map(|s| start + s * len) {
                for head in 0..h {
                    for q0 in (0..len).step_by(QUERY_BLOCK) {
                        tasks.push(Task { base, len, head, q0, rows: QUERY_BLOCK.min(len - q0) });
                    }
                }
            }
        }
        // Zeros for now: every element is written below, by exactly one task.
        let mut y = par_filled(n * h * d, PAR_CHUNK, |_, _| {});
        let out = Out::new(&mut y);
        let head_major = |part: usize, head: usize| &split[(part * h + head) * n * d..][..n * d];
        tasks.par_iter().for_each(|t| {
            let q = &head_major(0, t.head)[(t.base + t.q0) * d..][..t.rows * d];
            let k = &head_major(1, t.head)[t.base * d..][..t.len * d];
            let v = &head_major(2, t.head)[t.base * d..][..t.len * d];
            let mut scores = vec![0f32; t.rows * t.len];
            // SAFETY (both calls): the pointers and strides address exactly `q [rows, d]`,
            // `k [len, d]` read as `Kᵀ [d, len]`, `scores [rows, len]`, `v [len, d]`, and the
            // output's rows `base + q0 ..` × columns `head · d ..` of `[n, h · d]`, which no
            // other task writes. gemm writes every element of its destination (`read_dst` off).
            unsafe {
                let (rows, len) = (t.rows, t.len);
                #[rustfmt::skip]
                gemm::gemm(
                    rows, len, d,
                    scores.as_mut_ptr(), 1, len as isize, false,
                    q.as_ptr(), 1, d as isize,
                    k.as_ptr(), d as isize, 1,
                    0.0, 1.0, false, false, false, gemm::Parallelism::None,
                );
                scores.chunks_exact_mut(len).for_each(|row| softmax_row(isa, row));
                #[rustfmt::skip]
                gemm::gemm(
                    rows, d, len,
                    out.at((t.base + t.q0) * h * d + t.head * d), 1, (h * d) as isize, false,
                    scores.as_ptr(), 1, len as isize,
                    v.as_ptr(), 1, d as isize,
                    0.0, 1.0, false, false, false, gemm::Parallelism::None,
                );
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, h * d))))
    }
}

multiversion! {
    /// `dst[r] = rotate(qkv[r][offset .. offset + d]) · scale` for every row `r` (`d` = twice
    /// the tables' width), with the rotate-half rotary: `(x₁ cos − x₂ sin, x₁ sin + x₂ cos)`.
    #[allow(clippy::too_many_arguments)]
    fn rotate_rows(qkv: &[f32], stride: usize, offset: usize, cos: &[f32], sin: &[f32], scale: f32, dst: &mut [f32]) {
        let half = cos.len() / (qkv.len() / stride);
        for (r, dst) in dst.chunks_exact_mut(2 * half).enumerate() {
            let (x1, x2) = qkv[r * stride + offset..][..2 * half].split_at(half);
            let (c, s) = (&cos[r * half..][..half], &sin[r * half..][..half]);
            let (d1, d2) = dst.split_at_mut(half);
            for i in 0..half {
                d1[i] = (x1[i] * c[i] - x2[i] * s[i]) * scale;
                d2[i] = (x1[i] * s[i] + x2[i] * c[i]) * scale;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, DType, Device, IndexOp};

    /// The attention as candle's ops compute it, segment by segment.
    fn reference(qkv: &Tensor, cos: &Tensor, sin: &Tensor, h: usize, d: usize, lengths: &[usize]) -> Result<Tensor> {
        let n = qkv.dim(0)?;
        let qkv = qkv.reshape((n, 3, h, d))?;
        let part = |i: usize| qkv.i((.., i))?.transpose(0, 1)?.unsqueeze(0)?.contiguous();
        let q = (candle_nn::rotary_emb::rope(&part(0)?, cos, sin)? / (d as f64).sqrt())?.squeeze(0)?;
        let k = candle_nn::rotary_emb::rope(&part(1)?, cos, sin)?.squeeze(0)?;
        let v = part(2)?.squeeze(0)?;
        let mut outs = Vec::new();
        let mut start = 0;
        for &len in lengths {
            let take = |t: &Tensor| t.narrow(1, start, len)?.contiguous();
            let (q, k, v) = (take(&q)?, take(&k)?, take(&v)?);
            let probs = candle_nn::ops::softmax(&q.matmul(&k.t()?)?, D::Minus1)?;
            outs.push(probs.matmul(&v)?.transpose(0, 1)?.reshape((len, h * d))?);
            start += len;
        }
        Tensor::cat(&outs, 0)
    }

    #[test]
    fn equals_candles_ops_over_runs_of_segments_and_query_blocks() -> Result<()> {
        let dev = Device::Cpu;
        let (h, d) = (3, 8);
        // Two images of 12 patches, one of 20, one of QUERY_BLOCK + 44 (two blocks of queries).
        let lengths = [12, 12, 20, QUERY_BLOCK + 44];
        let n: usize = lengths.iter().sum();
        let qkv = Tensor::randn(0f32, 1.0, (n, 3 * h * d), &dev)?;
        let angles = Tensor::randn(0f32, 2.0, (n, d / 2), &dev)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        let segments = [(0, 2, 12), (24, 1, 20), (44, 1, QUERY_BLOCK + 44)];
        let got = vision_attention(&qkv, &cos, &sin, h, d, 1.0 / (d as f64).sqrt(), &segments)?;
        let want = reference(&qkv, &cos, &sin, h, d, &lengths)?;
        assert_eq!(got.dims(), &[n, h * d]);
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "max difference {diff}");
        Ok(())
    }

    #[test]
    fn every_vector_unit_rotates_the_same() {
        let (rows, stride, offset, half) = (5, 40, 8, 6);
        let qkv: Vec<f32> = (0..rows * stride).map(|i| (i % 11) as f32 - 5.0).collect();
        let cos: Vec<f32> = (0..rows * half).map(|i| (i % 3) as f32 * 0.5).collect();
        let sin: Vec<f32> = (0..rows * half).map(|i| (i % 4) as f32 * 0.25).collect();
        let mut want = vec![0f32; rows * 2 * half];
        rotate_rows(Isa::Portable, &qkv, stride, offset, &cos, &sin, 0.5, &mut want);
        for isa in Isa::available() {
            let mut got = vec![0f32; want.len()];
            rotate_rows(isa, &qkv, stride, offset, &cos, &sin, 0.5, &mut got);
            assert_eq!(got, want, "{isa:?}");
        }
        // Row 2's first pair by hand (small integers and quarters: exact).
        let x = &qkv[2 * stride + offset..];
        let (c, s) = (cos[2 * half], sin[2 * half]);
        assert_eq!(want[2 * 2 * half], (x[0] * c - x[half] * s) * 0.5);
        assert_eq!(want[2 * 2 * half + half], (x[0] * s + x[half] * c) * 0.5);
    }

    #[test]
    fn shapes_that_do_not_fit_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let qkv = Tensor::zeros((10, 3 * 2 * 4), DType::F32, &dev)?;
        let table = Tensor::zeros((10, 2), DType::F32, &dev)?;
        assert_eq!(vision_attention(&qkv, &table, &table, 2, 4, 1.0, &[(0, 2, 5)])?.dims(), &[10, 8]);
        for segments in [vec![(0, 1, 5)], vec![(0, 3, 5)], vec![(1, 1, 9)], vec![(0, 2, 5), (10, 1, 0)], vec![]] {
            assert!(vision_attention(&qkv, &table, &table, 2, 4, 1.0, &segments).is_err(), "{segments:?}");
        }
        assert!(vision_attention(&qkv, &table, &table, 3, 4, 1.0, &[(0, 2, 5)]).is_err(), "heads");
        let short = Tensor::zeros((9, 2), DType::F32, &dev)?;
        assert!(vision_attention(&qkv, &short, &table, 2, 4, 1.0, &[(0, 2, 5)]).is_err(), "table rows");
        let empty = Tensor::zeros((0, 3 * 2 * 4), DType::F32, &dev)?;
        let none = Tensor::zeros((0, 2), DType::F32, &dev)?;
        assert_eq!(vision_attention(&empty, &none, &none, 2, 4, 1.0, &[])?.dims(), &[0, 8]);
        Ok(())
    }
}
