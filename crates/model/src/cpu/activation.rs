//! The `exp`-bound ops of the f32 inference path: QuickGELU (the vision MLP), SiLU(gate) × up
//! (the language model's MLP) and the softmax over the last axis (every attention).
//!
//! candle runs the first two as several single-threaded passes with a scalar `exp` per
//! element; its softmax is parallel but scalar. Here each is one pass, split over the rayon
//! threads, with an `exp` written in plain arithmetic (range reduction to `[-ln2/2, ln2/2]`, a
//! degree-6 polynomial, the exponent put in with integer adds: ≤ 2 ulp in f32 over the range that
//! matters) that compilers vectorise for AVX-512, AVX2 or SSE2.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::{Isa, PAR_CHUNK as CHUNK, f32_slice, multiversion, par_filled};

/// `eˣ` in f32 for `x` in `[-87.3, 88.3]`; above it the value stays at `e^88.3` (it would
/// overflow), below it is `0` — the true value is then under f32's smallest normal number, and
/// a subnormal result costs far more than its size: Intel cores take a microcode assist for
/// every FMA that reads one (a causal mask's `−∞` scores made half of each prefill's attention
/// probabilities subnormal, and `probs · V` ran at 3 GFLOP/s; docs/PERFORMANCE.md).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let c = x.clamp(LOWEST, 88.3);
    let shifted = c * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = c - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2ⁿ: n is in the low bits of `shifted`'s pattern (0x4B40_0000 + n).
    let n_int = shifted.to_bits().wrapping_sub(0x4B40_0000);
    let scale = f32::from_bits(n_int.wrapping_add(127) << 23);
    if x < LOWEST { 0.0 } else { p * scale }
}

/// Where [`exp`] flushes to zero: `e^−87.3` is just above f32's smallest normal number.
const LOWEST: f32 = -87.3;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

multiversion! {
    fn quick_gelu_chunk(x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * sigmoid(1.702 * x);
        }
    }
}

multiversion! {
    fn silu_mul_chunk(gate: &[f32], up: &[f32], y: &mut [f32]) {
        for ((y, &g), &u) in y.iter_mut().zip(gate).zip(up) {
            *y = g * sigmoid(g) * u;
        }
    }
}

multiversion! {
    /// One row in place: `x ← exp(x − max) / Σ`.
    pub(super) fn softmax_row(x: &mut [f32]) {
        const LANES: usize = 16;
        let mut max = [f32::NEG_INFINITY; LANES];
        let chunks = x.chunks_exact(LANES);
        let mut row_max = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        for c in chunks {
            for l in 0..LANES {
                max[l] = max[l].max(c[l]);
            }
        }
        for m in max {
            row_max = row_max.max(m);
        }
        let mut sums = [0f32; LANES];
        let mut chunks = x.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                c[l] = exp(c[l] - row_max);
                sums[l] += c[l];
            }
        }
        let mut sum: f32 = 0.0;
        for v in chunks.into_remainder() {
            *v = exp(*v - row_max);
            sum += *v;
        }
        let inv = 1.0 / (sum + sums.iter().sum::<f32>());
        for v in x.iter_mut() {
            // A probability below the smallest normal number is 0 (see `exp`).
            let p = *v * inv;
            *v = if p < f32::MIN_POSITIVE { 0.0 } else { p };
        }
    }
}

/// `x · σ(1.702 x)`, as HF's `QuickGELUActivation`.
pub fn quick_gelu(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1_no_bwd(&QuickGelu)
}

/// `SiLU(gate) · up`, the gated MLP's middle.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2_no_bwd(&up.contiguous()?, &SiluMul)
}

/// Softmax over the last axis.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1_no_bwd(&Softmax)
}

struct QuickGelu;

impl CustomOp1 for QuickGelu {
    fn name(&self) -> &'static str {
        "easel-cpu-quick-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let isa = Isa::detect();
        let y = par_filled(x.len(), CHUNK, |i, y| quick_gelu_chunk(isa, &x[i * CHUNK..][..y.len()], y));
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }
}

struct SiluMul;

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "easel-cpu-silu-mul"
    }

    fn cpu_fwd(&self, g: &CpuStorage, g_l: &Layout, u: &CpuStorage, u_l: &Layout) -> Result<(CpuStorage, Shape)> {
        if g_l.shape() != u_l.shape() {
            candle_core::bail!("silu-mul: gate {:?} and up {:?} differ", g_l.shape(), u_l.shape());
        }
        let (g, u) = (f32_slice(g, g_l, self.name())?, f32_slice(u, u_l, self.name())?);
        let isa = Isa::detect();
        let y = par_filled(g.len(), CHUNK, |i, y| {
            silu_mul_chunk(isa, &g[i * CHUNK..][..y.len()], &u[i * CHUNK..][..y.len()], y)
        });
        Ok((CpuStorage::F32(y), g_l.shape().clone()))
    }
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "easel-cpu-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let dim = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let isa = Isa::detect();
        // Whole rows per task, about CHUNK elements each, copied and normalised in place.
        let per_task = (CHUNK / dim).max(1) * dim;
        let y = par_filled(x.len(), per_task, |i, y| {
            y.copy_from_slice(&x[i * per_task..][..y.len()]);
            y.chunks_exact_mut(dim).for_each(|row| softmax_row(isa, row));
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, spread: f32) -> Vec<f32> {
        (0..len).map(|i| ((i as u32).wrapping_mul(2_654_435_761) % 20_001) as f32 / 10_000.0 * spread - spread).collect()
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_library_exp() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
        // Below the range: 0, never a subnormal; −∞ (a masked score) too.
        assert!(exp(-87.29) >= f32::MIN_POSITIVE);
        for x in [-87.31, -100.0, -1e4, f32::MIN, f32::NEG_INFINITY] {
            assert_eq!(exp(x), 0.0, "{x}");
        }
        assert!(exp(1e4).is_finite());
    }

    #[test]
    fn every_vector_unit_computes_the_same_activations() {
        let x = values(1000, 12.0);
        let u = values(1000, 3.0);
        for isa in Isa::available() {
            let mut y = vec![0f32; x.len()];
            quick_gelu_chunk(isa, &x, &mut y);
            for (&y, &x) in y.iter().zip(&x) {
                let want = x as f64 / (1.0 + (-1.702 * x as f64).exp());
                assert!((y as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()), "{isa:?} quick-gelu({x}) = {y}, not {want}");
            }
            silu_mul_chunk(isa, &x, &u, &mut y);
            for ((&y, &g), &u) in y.iter().zip(&x).zip(&u) {
                let want = g as f64 / (1.0 + (-g as f64).exp()) * u as f64;
                assert!((y as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()), "{isa:?} silu-mul({g}, {u}) = {y}");
            }
            // Rows of every length around the vector width, with a masked (−1e9) entry.
            for dim in [1, 7, 16, 33, 256] {
                let mut row = values(dim, 20.0);
                row[dim / 2] = -1e9;
                let mut y = row.clone();
                softmax_row(isa, &mut y);
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
                for (&y, &v) in y.iter().zip(&row) {
                    let want = (v as f64 - max).exp() / sum;
                    // Relative 1e-6, down to where the f32 rounding of `x − max` itself (up to
                    // |x − max| · 6e-8 relative) is what differs from the f64 reference.
                    assert!((y as f64 - want).abs() <= 1e-6 * want + 1e-12, "{isa:?} dim {dim}: {y} vs {want}");
                }
            }
        }
    }

    #[test]
    fn softmax_gives_masked_and_vanishing_entries_as_zero_never_subnormal() {
        // 200 equal scores (sum ≈ 200), one 84 below them (e^−84 / 200 ≈ 2e-39, subnormal if
        // kept), a causal mask's −∞ and HF's f32::MIN mask value.
        let mut row = vec![0f32; 200];
        row[3] = -84.0;
        row[7] = f32::NEG_INFINITY;
        row[11] = f32::MIN;
        for isa in Isa::available() {
            let mut y = row.clone();
            softmax_row(isa, &mut y);
            assert_eq!([y[3], y[7], y[11]], [0.0; 3], "{isa:?}");
            assert!(y.iter().all(|p| p.is_normal() || *p == 0.0), "{isa:?}: a subnormal probability");
            assert!((y[0] - 1.0 / 197.0).abs() < 1e-7, "{isa:?}: {}", y[0]);
        }
    }

    #[test]
    fn the_ops_equal_candles_and_keep_shapes() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::randn(0f32, 3.0, (3, 5, 700), &dev)?;
        let u = Tensor::randn(0f32, 1.0, (3, 5, 700), &dev)?;
        let close = |a: &Tensor, b: &Tensor| -> Result<f32> { (a - b)?.abs()?.max_all()?.to_scalar::<f32>() };
        let want = (&x * candle_nn::ops::sigmoid(&(&x * 1.702)?)?)?;
        assert!(close(&quick_gelu(&x)?, &want)? < 1e-5);
        assert!(close(&silu_mul(&x, &u)?, &(x.silu()? * &u)?)? < 1e-5);
        // A strided (transposed) input is made contiguous first.
        let t = x.transpose(1, 2)?;
        assert!(close(&softmax_last_dim(&t)?, &candle_nn::ops::softmax_last_dim(&t.contiguous()?)?)? < 1e-6);
        assert_eq!(softmax_last_dim(&t)?.dims(), &[3, 700, 5]);
        assert!(silu_mul(&x, &u.narrow(2, 0, 10)?).is_err());
        Ok(())
    }
}
