//! `[rows, k] · Wᵀ` for the few rows of decoding (`[batch, hidden]`, batch ≤ [`SKINNY_ROWS`]).
//!
//! gemm runs such products on one thread (its matrix–vector path) or packs the whole weight for
//! a 1–8 row product: either way it reads the weights at half the memory bandwidth two cores
//! have. Here each tile of four weight rows is read once for all the input rows, on every rayon
//! thread, with AVX-512 or AVX2 + FMA intrinsics when the CPU has them.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{Isa, f32_slice};

/// The most input rows [`skinny_matmul`] takes; beyond this gemm's blocked kernels win.
pub const SKINNY_ROWS: usize = 8;

/// Whether `xs [rows, k] · weightᵀ` should take [`skinny_matmul`]: f32 on the CPU, few rows, a
/// contiguous weight, and nothing that needs gradients (the op has no backward pass).
pub fn skinny_applies(xs: &Tensor, weight: &Tensor, rows: usize) -> bool {
    rows <= SKINNY_ROWS
        && super::applies(xs)
        && weight.dtype() == DType::F32
        && weight.rank() == 2
        && weight.is_contiguous()
        && !weight.track_op()
}

/// `xs [m, k] · weightᵀ` for `weight [n, k]` (a linear layer's layout) → `[m, n]`, f32.
pub fn skinny_matmul(xs: &Tensor, weight: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op2_no_bwd(weight, &SkinnyMatmul)
}

struct SkinnyMatmul;

impl CustomOp2 for SkinnyMatmul {
    fn name(&self) -> &'static str {
        "easel-skinny-matmul"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xs_l: &Layout, w: &CpuStorage, w_l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (m, k) = xs_l.shape().dims2()?;
        let (n, wk) = w_l.shape().dims2()?;
        if k != wk {
            candle_core::bail!("skinny matmul: input is {m}×{k}, weight {n}×{wk}");
        }
        let (xs, w) = (f32_slice(xs, xs_l, self.name())?, f32_slice(w, w_l, self.name())?);
        let out = matmul_t(xs, m, k, w, n);
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

/// Weight rows per tile: each tile reads four rows of `W` once for all its input rows.
const TILE: usize = 4;

/// `x [m, k] · w[n, k]ᵀ` → `[m, n]`, parallel over the rows of `w`.
pub fn matmul_t(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    debug_assert_eq!(x.len(), m * k);
    debug_assert_eq!(w.len(), n * k);
    let isa = Isa::detect();
    // Transposed result, `[n, m]`: each task owns whole rows of it.
    let mut yt = vec![0f32; n * m];
    let threads = rayon::current_num_threads().max(1);
    // A few tasks per thread for balance; whole tiles per task.
    let rows_per_task = n.div_ceil(threads * 4).div_ceil(TILE).max(4) * TILE;
    yt.par_chunks_mut(rows_per_task * m).enumerate().for_each(|(task, out)| {
        let j0 = task * rows_per_task;
        let rows = out.len() / m;
        let mut j = 0;
        while j + TILE <= rows {
            let wt = &w[(j0 + j) * k..(j0 + j + TILE) * k];
            let mut i = 0;
            while i < m {
                let r = (m - i).min(max_rows(isa));
                let mut acc = [[0f32; TILE]; 4];
                tile(isa, &x[i * k..(i + r) * k], r, wt, k, &mut acc);
                for (di, row) in acc.iter().enumerate().take(r) {
                    for (dj, v) in row.iter().enumerate() {
                        out[(j + dj) * m + i + di] = *v;
                    }
                }
                i += r;
            }
            j += TILE;
        }
        // The last rows of `w` that do not fill a tile.
        for jj in j..rows {
            let wr = &w[(j0 + jj) * k..(j0 + jj + 1) * k];
            for i in 0..m {
                out[jj * m + i] = dot(&x[i * k..(i + 1) * k], wr);
            }
        }
    });
    if m == 1 {
        return yt;
    }
    let mut y = vec![0f32; m * n];
    for (j, row) in yt.chunks_exact(m).enumerate() {
        for (i, v) in row.iter().enumerate() {
            y[i * n + j] = *v;
        }
    }
    y
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// Input rows per tile: as many accumulators as the register file holds.
fn max_rows(isa: Isa) -> usize {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => 4,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => 2,
        Isa::Portable => 1,
    }
}

/// `acc[i][j] = x_i · w_j` for the `r` rows of `x` and the [`TILE`] rows of `w`.
fn tile(isa: Isa, x: &[f32], r: usize, w: &[f32], k: usize, acc: &mut [[f32; TILE]; 4]) {
    match isa {
        // SAFETY: `Isa::detect` saw the features these functions are compiled for.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe {
            match r {
                1 => x86::tile_avx512::<1>(x, w, k, acc),
                2 => x86::tile_avx512::<2>(x, w, k, acc),
                3 => x86::tile_avx512::<3>(x, w, k, acc),
                _ => x86::tile_avx512::<4>(x, w, k, acc),
            }
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe {
            match r {
                1 => x86::tile_avx2::<1>(x, w, k, acc),
                _ => x86::tile_avx2::<2>(x, w, k, acc),
            }
        },
        Isa::Portable => {
            for (j, wr) in w.chunks_exact(k).enumerate() {
                acc[0][j] = portable_dot(&x[..k], wr);
            }
        }
    }
}

/// A dot product with eight independent sums, which compilers turn into vector code.
fn portable_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = dot(ac.remainder(), bc.remainder());
    for (a, b) in ac.zip(bc) {
        for l in 0..8 {
            sums[l] += a[l] * b[l];
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::TILE;

    /// # Safety
    /// The CPU has AVX-512F; `x` holds `R` rows and `w` [`TILE`] rows of `k` values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile_avx512<const R: usize>(x: &[f32], w: &[f32], k: usize, acc: &mut [[f32; TILE]; 4]) {
        assert!(x.len() >= R * k && w.len() >= TILE * k);
        let mut sums = [[_mm512_setzero_ps(); TILE]; R];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let full = k / 16 * 16;
        let mut c = 0;
        while c < full {
            // SAFETY: c + 16 ≤ k, so every load stays inside its row.
            unsafe {
                let ws: [__m512; TILE] = std::array::from_fn(|j| _mm512_loadu_ps(wp.add(j * k + c)));
                for (i, row) in sums.iter_mut().enumerate() {
                    let xv = _mm512_loadu_ps(xp.add(i * k + c));
                    for (s, wv) in row.iter_mut().zip(&ws) {
                        *s = _mm512_fmadd_ps(xv, *wv, *s);
                    }
                }
            }
            c += 16;
        }
        for (i, row) in sums.iter().enumerate() {
            for (j, s) in row.iter().enumerate() {
                let tail: f32 = (full..k).map(|c| x[i * k + c] * w[j * k + c]).sum();
                acc[i][j] = _mm512_reduce_add_ps(*s) + tail;
            }
        }
    }

    /// # Safety
    /// The CPU has AVX2 and FMA; `x` holds `R` rows and `w` [`TILE`] rows of `k` values.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_avx2<const R: usize>(x: &[f32], w: &[f32], k: usize, acc: &mut [[f32; TILE]; 4]) {
        assert!(x.len() >= R * k && w.len() >= TILE * k);
        let mut sums = [[_mm256_setzero_ps(); TILE]; R];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let full = k / 8 * 8;
        let mut c = 0;
        while c < full {
            // SAFETY: c + 8 ≤ k, so every load stays inside its row.
            unsafe {
                let ws: [__m256; TILE] = std::array::from_fn(|j| _mm256_loadu_ps(wp.add(j * k + c)));
                for (i, row) in sums.iter_mut().enumerate() {
                    let xv = _mm256_loadu_ps(xp.add(i * k + c));
                    for (s, wv) in row.iter_mut().zip(&ws) {
                        *s = _mm256_fmadd_ps(xv, *wv, *s);
                    }
                }
            }
            c += 8;
        }
        for (i, row) in sums.iter().enumerate() {
            for (j, s) in row.iter().enumerate() {
                let tail: f32 = (full..k).map(|c| x[i * k + c] * w[j * k + c]).sum();
                acc[i][j] = hsum256(*s) + tail;
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum256(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
        let mut y = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k).map(|c| x[i * k + c] as f64 * w[j * k + c] as f64).sum();
            }
        }
        y.into_iter().map(|v| v as f32).collect()
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    #[test]
    fn every_shape_and_vector_unit_agrees_with_a_plain_sum() {
        // k with and without a vector tail, n with and without a partial tile, every row count.
        for &(m, k, n) in &[(1, 64, 16), (1, 37, 7), (2, 130, 33), (3, 16, 4), (4, 257, 129), (5, 96, 10), (8, 1536, 67)] {
            let (x, w) = (values(m * k, 1), values(n * k, 7));
            let want = reference(&x, m, k, &w, n);
            let got = matmul_t(&x, m, k, &w, n);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{m}×{k}·{n}: {a} vs {b}");
            }
            // Each vector unit this CPU has, on its own.
            for isa in Isa::available() {
                for i in 0..m {
                    let r = (m - i).min(max_rows(isa));
                    if n >= TILE {
                        let mut acc = [[0f32; TILE]; 4];
                        tile(isa, &x[i * k..(i + r) * k], r, &w[..TILE * k], k, &mut acc);
                        for (di, row) in acc.iter().enumerate().take(r) {
                            for (j, v) in row.iter().enumerate() {
                                let b = want[(i + di) * n + j];
                                assert!((v - b).abs() <= 1e-4 * (1.0 + b.abs()), "{isa:?} {m}×{k}·{n}: {v} vs {b}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_op_equals_candles_matmul_and_stays_out_of_training() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (3, 200), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (50, 200), &dev)?;
        let want = x.matmul(&w.t()?)?;
        let got = skinny_matmul(&x, &w)?;
        let diff = (got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-4, "{diff}");
        // A weight that trains, or an input that carries gradients, keeps candle's matmul.
        let var = candle_core::Var::from_tensor(&w)?;
        assert_eq!(skinny_applies(&x, &w, 3), crate::cpu::enabled());
        assert!(!skinny_applies(&x, var.as_tensor(), 3));
        assert!(!skinny_applies(&(var.as_tensor().narrow(0, 0, 3)? * 1.0)?, &w, 3));
        assert!(!skinny_applies(&x, &w, SKINNY_ROWS + 1));
        assert!(!skinny_applies(&x.to_dtype(DType::BF16)?, &w, 3));
        Ok(())
    }
}
