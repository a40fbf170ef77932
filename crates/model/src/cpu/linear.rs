//! The dense layers of the f32 inference path: `x Wᵀ + b` with the weight stored transposed.
//!
//! gemm computes `dst = lhs · rhs` in panels of the destination's rows and packs `lhs` into
//! column-major strips first. With candle's layout (`lhs` = the activations, row-major) that
//! packing is a scalar gather that perf shows at 22–29 % of the score path and the prefill.
//! Storing each checkpoint weight transposed in memory (`Wᵀ` contiguous, still a `[out, in]`
//! tensor to every other caller: only its strides change) lets the product run as
//! `yᵀ = W · xᵀ`, where `lhs` is that column-major weight and nothing needs gathering: the same
//! shapes run 15–50 % faster. The bias is written into the destination first and gemm adds the
//! product onto it, which saves a pass. Few-row products (decoding) read `Wᵀ` once, row by row,
//! on every thread.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{Isa, Out, SKINNY_ROWS, f32_slice, multiversion, par_rows};

/// The layout [`linear`] runs on: the same `[out, in]` tensor, stored transposed. Weights that
/// are not f32 on the CPU, variables being trained, or any weight with the kernels off are
/// returned as they are.
pub fn inference_layout(weight: Tensor) -> Result<Tensor> {
    // A variable (a weight being trained) must stay the tensor its optimiser updates.
    let applies = super::enabled() && weight.device().is_cpu() && weight.dtype() == DType::F32 && weight.rank() == 2;
    if !applies || weight.track_op() {
        return Ok(weight);
    }
    let (n, k) = weight.dims2()?;
    let weight = weight.contiguous()?;
    let (storage, layout) = weight.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("inference_layout: not a CPU tensor");
    };
    let w = f32_slice(cpu, layout, "inference_layout")?;
    // `Wᵀ [k, n]`, built in parallel: each task writes whole rows of it, reading a band of 64
    // columns of W (one cache line per row of W per 16 of them).
    let mut wt = vec![0f32; k * n];
    const BAND: usize = 64;
    wt.par_chunks_mut(BAND * n).enumerate().for_each(|(band, out)| {
        let c0 = band * BAND;
        let rows = out.len() / n;
        for j in 0..n {
            let src = &w[j * k + c0..j * k + c0 + rows];
            for (dc, &v) in src.iter().enumerate() {
                out[dc * n + j] = v;
            }
        }
    });
    drop(storage);
    Tensor::from_vec(wt, (k, n), weight.device())?.t()
}

/// Whether [`linear`] may run `xs [rows, in] · weightᵀ`: f32 on the CPU, no gradients, and the
/// weight in [`inference_layout`].
pub fn linear_applies(xs: &Tensor, weight: &Tensor) -> bool {
    super::applies(xs)
        && weight.dtype() == DType::F32
        && weight.rank() == 2
        && !weight.track_op()
        && weight.t().is_ok_and(|t| t.is_contiguous())
}

/// `xs [m, in] · weightᵀ + bias` → `[m, out]`, for a weight in [`inference_layout`].
pub fn linear(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let xs = xs.contiguous()?;
    let wt = weight.t()?;
    match bias {
        Some(bias) => xs.apply_op3_no_bwd(&wt, &bias.contiguous()?, &Dense),
        None => xs.apply_op2_no_bwd(&wt, &Dense),
    }
}

struct Dense;

impl Dense {
    fn run(&self, x: &CpuStorage, x_l: &Layout, wt: &CpuStorage, wt_l: &Layout, bias: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let (m, k) = x_l.shape().dims2()?;
        let (wk, n) = wt_l.shape().dims2()?;
        if k != wk || bias.is_some_and(|b| b.len() != n) {
            candle_core::bail!("easel-cpu-linear: input {m}×{k}, weight {n}×{wk}, bias {:?}", bias.map(<[f32]>::len));
        }
        let (x, wt) = (f32_slice(x, x_l, "easel-cpu-linear")?, f32_slice(wt, wt_l, "easel-cpu-linear")?);
        let y = if m <= SKINNY_ROWS { few_rows(x, m, k, wt, n, bias) } else { many_rows(x, m, k, wt, n, bias) };
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }
}

impl CustomOp2 for Dense {
    fn name(&self) -> &'static str {
        "easel-cpu-linear"
    }

    fn cpu_fwd(&self, x: &CpuStorage, x_l: &Layout, wt: &CpuStorage, wt_l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(x, x_l, wt, wt_l, None)
    }
}

impl CustomOp3 for Dense {
    fn name(&self) -> &'static str {
        "easel-cpu-linear"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        wt: &CpuStorage,
        wt_l: &Layout,
        b: &CpuStorage,
        b_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run(x, x_l, wt, wt_l, Some(f32_slice(b, b_l, "easel-cpu-linear")?))
    }
}

/// gemm on the transposed problem: `yᵀ [n, m] = Wᵀᵀ · xᵀ`, `lhs` = the column-major weight,
/// one single-threaded gemm per thread on its own band of outputs (rows of `W`, a multiple of
/// [`BAND`]).
///
/// gemm packs its left operand (here the weight) into panels for its kernel. A parallel gemm
/// call splits the work by right-hand columns (the activations' rows), so every thread packed
/// every panel of the weight, and the threads met after each slice of the inner dimension;
/// with a band each, each panel is packed once and the threads meet once (docs/PERFORMANCE.md,
/// "Again on this Xeon": +1–20 % on the score path and the prefill).
fn many_rows(x: &[f32], m: usize, k: usize, wt: &[f32], n: usize, bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = par_rows(m, n, bias);
    // At least one task, so an empty product (no outputs) still returns its empty result.
    let threads = rayon::current_num_threads().min(n.div_ceil(BAND)).max(1);
    let band = n.div_ceil(threads).div_ceil(BAND) * BAND;
    let out = Out::new(&mut y);
    (0..threads).into_par_iter().for_each(|t| {
        let (j0, j1) = ((t * band).min(n), ((t + 1) * band).min(n));
        if j0 == j1 {
            return;
        }
        // SAFETY: y is m·n, wt is k·n (row c holds column c of the weight), x is m·k; the
        // strides below address exactly those elements, and this thread writes only the
        // outputs j0..j1 of each row of y, which no other thread writes.
        unsafe {
            #[rustfmt::skip]
            gemm::gemm(
                j1 - j0, m, k,
                out.at(j0), n as isize, 1, bias.is_some(), // dst column i = row i of y
                wt[j0..].as_ptr(), n as isize, 1,          // lhs (W, [n, k]) column c = row c of Wᵀ
                x.as_ptr(), k as isize, 1,                 // rhs (xᵀ, [k, m]) column i = row i of x
                1.0, 1.0, false, false, false, gemm::Parallelism::None,
            );
        }
    });
    y
}

/// Outputs per band in [`many_rows`]: a whole number of gemm's AVX-512 panels (4 × 16).
const BAND: usize = 64;

/// `y = x Wᵀ + b` for a few rows. Each task takes a run of rows of `Wᵀ` (a slice of the
/// inner dimension), streams it once from memory in order, and keeps its own partial `y`; the
/// partials are summed at the end. (Splitting by output columns instead would read each row of
/// `Wᵀ` in short pieces a page apart, which the prefetchers do not follow: half the speed.)
fn few_rows(x: &[f32], m: usize, k: usize, wt: &[f32], n: usize, bias: Option<&[f32]>) -> Vec<f32> {
    let isa = Isa::detect();
    let tasks = rayon::current_num_threads().min(k.div_ceil(STEP)).max(1);
    let per_task = k.div_ceil(tasks).div_ceil(STEP) * STEP;
    let mut parts: Vec<Vec<f32>> = (0..tasks)
        .into_par_iter()
        .map(|t| {
            let (c0, c1) = ((t * per_task).min(k), ((t + 1) * per_task).min(k));
            let mut part = vec![0f32; m * n];
            accumulate_rows(isa, x, m, k, wt, n, c0, c1, &mut part);
            part
        })
        .collect();
    let mut y = parts.swap_remove(0);
    for part in &parts {
        y.par_chunks_mut(1 << 14).zip(part.par_chunks(1 << 14)).for_each(|(y, p)| {
            y.iter_mut().zip(p).for_each(|(y, p)| *y += p);
        });
    }
    if let Some(bias) = bias {
        y.par_chunks_mut(n).for_each(|row| row.iter_mut().zip(bias).for_each(|(y, b)| *y += b));
    }
    y
}

/// Rows of `Wᵀ` folded into the partial sums per pass over them.
const STEP: usize = 4;

multiversion! {
    /// `part[i][j] += Σ_{c0 ≤ c < c1} x[i][c] · wt[c][j]`, four rows of `Wᵀ` per pass so each
    /// partial sum is loaded and stored once per four products.
    #[allow(clippy::too_many_arguments)]
    fn accumulate_rows(x: &[f32], m: usize, k: usize, wt: &[f32], n: usize, c0: usize, c1: usize, part: &mut [f32]) {
        let mut c = c0;
        while c + STEP <= c1 {
            let w: [&[f32]; STEP] = std::array::from_fn(|d| &wt[(c + d) * n..(c + d + 1) * n]);
            for (i, acc) in part.chunks_exact_mut(n).enumerate().take(m) {
                let xs: [f32; STEP] = std::array::from_fn(|d| x[i * k + c + d]);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += xs[0] * w[0][j] + xs[1] * w[1][j] + xs[2] * w[2][j] + xs[3] * w[3][j];
                }
            }
            c += STEP;
        }
        for c in c..c1 {
            let w = &wt[c * n..(c + 1) * n];
            for (i, acc) in part.chunks_exact_mut(n).enumerate().take(m) {
                let xv = x[i * k + c];
                for (a, &w) in acc.iter_mut().zip(w) {
                    *a += xv * w;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let y = x.matmul(&w.contiguous()?.t()?)?;
        match b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    #[test]
    fn both_paths_equal_candles_matmul_with_and_without_bias() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        // Rows on both sides of SKINNY_ROWS; widths with and without a partial block; outputs
        // in one band (fewer bands than threads) and in uneven bands.
        for &(m, k, n) in &[(1, 64, 300), (3, 37, 17), (8, 130, 513), (9, 96, 40), (12, 50, 30), (40, 200, 260), (70, 33, 1100)] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            // The transposed layout as `inference_layout` makes it (built here directly, so the
            // op is tested with the kernels switched off too).
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?.t()?.contiguous()?.t()?;
            let b = Tensor::randn(0f32, 1.0, n, &dev)?;
            assert_eq!(linear_applies(&x, &w), crate::cpu::enabled(), "the transposed layout is recognised");
            for bias in [None, Some(&b)] {
                let want = reference(&x, &w, bias)?;
                let got = linear(&x, &w, bias)?;
                let diff = (got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(diff < 1e-4, "{m}×{k}·{n} bias {}: {diff}", bias.is_some());
            }
        }
        Ok(())
    }

    #[test]
    fn products_without_outputs_or_inputs_are_empty_or_the_bias() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        // No outputs, many rows: an empty `[m, 0]` (no band to run).
        let x = Tensor::randn(0f32, 1.0, (40, 10), &dev)?;
        let none = Tensor::zeros((10, 0), DType::F32, &dev)?.t()?;
        assert_eq!(linear(&x, &none, None)?.dims(), &[40, 0]);
        for m in [3, 40] {
            // No inputs, few rows and many: every row is the bias.
            let x = Tensor::zeros((m, 0), DType::F32, &dev)?;
            let w = Tensor::zeros((0, 5), DType::F32, &dev)?.t()?;
            let b = Tensor::new(&[1f32, 2., 3., 4., 5.], &dev)?;
            let y = linear(&x, &w, Some(&b))?.to_vec2::<f32>()?;
            assert_eq!(y, vec![vec![1f32, 2., 3., 4., 5.]; m]);
        }
        Ok(())
    }

    #[test]
    fn every_vector_unit_accumulates_the_same_rows() {
        // 2 + 4·4 + 3 rows of Wᵀ: a start and an end that are not multiples of STEP.
        let (m, k, n) = (3, 23, 40);
        let x: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let wt: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5).collect();
        let mut want = vec![0f32; m * n];
        accumulate_rows(Isa::Portable, &x, m, k, &wt, n, 2, k, &mut want);
        for isa in Isa::available() {
            let mut part = vec![0f32; m * n];
            accumulate_rows(isa, &x, m, k, &wt, n, 2, k, &mut part);
            assert_eq!(part, want, "{isa:?}");
        }
        // Small integers and halves: the sums are exact whatever the order.
        for (i, j) in [(0, 0), (2, 39), (1, 17)] {
            let check = (2..k).map(|c| x[i * k + c] * wt[c * n + j]).sum::<f32>();
            assert_eq!(want[i * n + j], check);
        }
    }

    #[test]
    fn the_layout_keeps_the_tensor_and_training_keeps_candle() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (6, 4), &dev)?;
        let t = inference_layout(w.clone())?;
        assert_eq!(t.dims(), &[6, 4]);
        assert_eq!(t.to_vec2::<f32>()?, w.to_vec2::<f32>()?);
        let x = Tensor::randn(0f32, 1.0, (2, 4), &dev)?;
        assert!(!linear_applies(&x, &w), "a row-major weight takes candle's matmul");
        let var = candle_core::Var::from_tensor(&t)?;
        assert!(!linear_applies(&x, var.as_tensor()));
        // A trained weight keeps its identity (the optimiser updates that very tensor).
        let trained = candle_core::Var::from_tensor(&w)?;
        assert_eq!(inference_layout(trained.as_tensor().clone())?.id(), trained.as_tensor().id());
        assert!(!linear_applies(&(var.as_tensor().narrow(0, 0, 2)? * 1.0)?, &t));
        assert!(inference_layout(w.to_dtype(DType::BF16)?)?.is_contiguous());
        Ok(())
    }
}
