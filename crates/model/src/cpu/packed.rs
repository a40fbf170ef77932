//! Dense layers whose weights are held in blocks on the CPU for inference: f32 in gemm's
//! kernel panels (the default: [`super::panels`]), or in fewer bits, bf16 (half the bytes of
//! f32) or 8-bit integers with one f32 scale per output (a quarter). The fewer bits are opt-in
//! (`--weights`); the activations, sums and everything outside these layers stay f32.
//!
//! Decoding reads every weight once per token, so its speed is the memory's: fewer bytes per
//! weight are fewer seconds per token; the few-row kernels widen each weight to f32 in
//! registers and keep the activations in f32. The many-row products (vision tower, prefill)
//! are bound by arithmetic instead. On a CPU with Intel AMX they run on its tiles
//! (`tdpbf16ps`, [`super::amx`]), else with AVX512-BF16 on `vdpbf16ps` (two products per f32
//! lane per instruction), both with f32 sums and the activations rounded to bf16, as PyTorch's
//! bf16 does; int8 blocks are rewritten as bf16 for them first (every integer in ±127 is exact
//! in bf16; the scale applies after the sum). Elsewhere a block of the weight is widened to f32
//! in cache and handed to the same `gemm` as the f32 path.
//!
//! A packed weight is stored in blocks of [`BLOCK`] outputs, each block contiguous (the last
//! padded with zeros): f32 and int8 as `[in, BLOCK]`, bf16 as `[in/2, BLOCK]` 32-bit words holding
//! the weights of two consecutive inputs (the pairs `vdpbf16ps` multiplies). A task owns whole
//! blocks, reads each from memory once and in order, and keeps its outputs in registers and L1
//! whatever the row count.
//! Agreement with f32 (scores on the 174 sample paintings, greedy tokens) is measured by
//! `easel bench weights` and written in docs/MODEL.md.

use std::fmt;
use std::str::FromStr;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Aligned, Isa, SKINNY_ROWS, aligned_zeros, f32_slice, multiversion};

/// How the model's dense-layer weights are held in memory on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    /// As computed: f32 (or the `--dtype` the model was loaded in). For CPU inference in f32,
    /// the dense layers' weights are held in gemm's kernel panels ([`super::panels`]): the same
    /// values, read in place by the kernels.
    #[default]
    F32,
    /// bfloat16, rounded to nearest even: every dense layer of the vision tower and the
    /// language model, and the output layer.
    Bf16,
    /// Symmetric 8-bit integers with one f32 scale per output row: the language model's dense
    /// layers and the output layer (the vision tower, which the scores come from, stays f32).
    Int8,
}

impl WeightFormat {
    pub const NAMES: [&'static str; 3] = ["f32", "bf16", "int8"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::Int8 => "int8",
        }
    }

    /// The format the vision tower's layers are held in: the language model's, except that
    /// int8 leaves the vision tower (which the scores come from) in f32.
    pub fn for_vision(self) -> Self {
        if self == Self::Int8 { Self::F32 } else { self }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WeightFormat {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "int8" => Ok(Self::Int8),
            other => Err(format!("unknown weight format {other:?}: use f32, bf16 or int8")),
        }
    }
}

/// Outputs per block of a packed weight: an f32 block is one of gemm's kernel panels.
pub const BLOCK: usize = super::panels::PANEL;

/// bf16 is the top half of an f32, so widening is exact: the pair word's low half (the even
/// input) shifted up, its high half masked.
#[inline(always)]
fn low(pair: u32) -> f32 {
    f32::from_bits(pair << 16)
}

#[inline(always)]
fn high(pair: u32) -> f32 {
    f32::from_bits(pair & 0xffff_0000)
}

#[derive(Debug)]
enum Blocks {
    /// f32 in gemm's kernel panels ([`super::panels`]): `[in, BLOCK]` per block.
    F32(Aligned<f32>),
    /// `[in/2 rounded up, BLOCK]` pair words per block.
    Bf16(Aligned<u32>),
    /// Quantised values and each output's scale (`w ≈ q · scale`).
    Int8 { q: Aligned<i8>, scale: Vec<f32> },
}

/// `y = x Wᵀ + b` with `W` packed: what a [`crate::layers::Linear`] holds in place of its f32
/// weight after [`PackedLinear::pack`].
#[derive(Debug)]
pub struct PackedLinear {
    out_dim: usize,
    in_dim: usize,
    blocks: Blocks,
    bias: Option<Vec<f32>>,
}

impl PackedLinear {
    /// Packs an `[out, in]` weight (any layout, any float dtype) and its bias into `format`
    /// (`F32`: the same values, in gemm's kernel panels).
    pub fn pack(weight: &Tensor, bias: Option<&Tensor>, format: WeightFormat) -> Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        if out_dim == 0 || in_dim == 0 {
            candle_core::bail!("cannot pack an empty {out_dim}×{in_dim} weight");
        }
        // Wᵀ `[in, out]` contiguous: what `inference_layout` already holds (no copy then), and
        // the order the blocks are filled in (whole rows of it).
        let wt = weight.to_dtype(DType::F32)?.t()?.contiguous()?;
        let (storage, layout) = wt.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            candle_core::bail!("packed weights are for the CPU");
        };
        let wt = f32_slice(cpu, layout, "pack")?;
        let (n, k) = (out_dim, in_dim);
        let blocks_n = n.div_ceil(BLOCK);
        let blocks = match format {
            WeightFormat::F32 => Blocks::F32(super::panels::to_panels(wt, k, n)),
            WeightFormat::Bf16 => {
                let pairs = k.div_ceil(2);
                let mut data = aligned_zeros::<u32>(blocks_n * pairs * BLOCK);
                data.par_chunks_mut(pairs * BLOCK).enumerate().for_each(|(b, block)| {
                    let (j0, width) = (b * BLOCK, BLOCK.min(n - b * BLOCK));
                    for (p, words) in block.chunks_exact_mut(BLOCK).enumerate() {
                        let row = |c: usize| wt[c * n + j0..][..width].iter().copied();
                        interleave(words, row(2 * p), (2 * p + 1 < k).then(|| row(2 * p + 1)));
                    }
                });
                Blocks::Bf16(data)
            }
            WeightFormat::Int8 => {
                // One scale per output: its largest |w| maps to 127. It factors out of the
                // output's sum, so the kernels sum q · x and scale once at the end.
                let mut scale = vec![0f32; n];
                scale.par_chunks_mut(BLOCK).enumerate().for_each(|(b, s)| {
                    for c in 0..k {
                        for (s, &v) in s.iter_mut().zip(&wt[c * n + b * BLOCK..]) {
                            *s = s.max(v.abs());
                        }
                    }
                    s.iter_mut().for_each(|s| *s = if *s > 0.0 { *s / 127.0 } else { 1.0 });
                });
                let mut q = aligned_zeros::<i8>(blocks_n * k * BLOCK);
                q.par_chunks_mut(k * BLOCK).enumerate().for_each(|(b, block)| {
                    let (j0, width) = (b * BLOCK, BLOCK.min(n - b * BLOCK));
                    for (c, row) in block.chunks_exact_mut(BLOCK).enumerate() {
                        let src = &wt[c * n + j0..][..width];
                        for ((q, &v), &s) in row.iter_mut().zip(src).zip(&scale[j0..]) {
                            *q = (v / s).round().clamp(-127.0, 127.0) as i8;
                        }
                    }
                });
                Blocks::Int8 { q, scale }
            }
        };
        drop(storage);
        let bias = bias.map(|b| b.to_dtype(DType::F32)?.to_vec1::<f32>()).transpose()?;
        if bias.as_ref().is_some_and(|b| b.len() != out_dim) {
            candle_core::bail!("bias of {} values for {out_dim} outputs", bias.map_or(0, |b| b.len()));
        }
        Ok(Self { out_dim, in_dim, blocks, bias })
    }

    pub fn format(&self) -> WeightFormat {
        match self.blocks {
            Blocks::F32(_) => WeightFormat::F32,
            Blocks::Bf16(_) => WeightFormat::Bf16,
            Blocks::Int8 { .. } => WeightFormat::Int8,
        }
    }

    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.out_dim, self.in_dim)
    }

    /// Bytes the weight takes (padding and scales included).
    pub fn bytes(&self) -> usize {
        match &self.blocks {
            Blocks::F32(data) => data.len() * 4,
            Blocks::Bf16(data) => data.len() * 4,
            Blocks::Int8 { q, scale } => q.len() + scale.len() * 4,
        }
    }

    /// The weight as the f32 `[out, in]` tensor the packed values stand for.
    pub fn dequantize(&self, device: &candle_core::Device) -> Result<Tensor> {
        let (n, k) = (self.out_dim, self.in_dim);
        let mut w = vec![0f32; n * k];
        w.par_chunks_mut(k).enumerate().for_each(|(j, row)| {
            let (b, jj) = (j / BLOCK, j % BLOCK);
            match &self.blocks {
                Blocks::F32(data) => {
                    let block = &data[b * k * BLOCK..];
                    row.iter_mut().enumerate().for_each(|(c, v)| *v = block[c * BLOCK + jj])
                }
                Blocks::Bf16(data) => {
                    let block = &data[b * k.div_ceil(2) * BLOCK..];
                    row.iter_mut().enumerate().for_each(|(c, v)| {
                        let pair = block[c / 2 * BLOCK + jj];
                        *v = if c % 2 == 0 { low(pair) } else { high(pair) };
                    })
                }
                Blocks::Int8 { q, scale } => {
                    let block = &q[b * k * BLOCK..];
                    row.iter_mut().enumerate().for_each(|(c, v)| *v = f32::from(block[c * BLOCK + jj]) * scale[j])
                }
            }
        });
        Tensor::from_vec(w, (n, k), device)
    }

    /// `xs [rows, in]` (f32, CPU) through the layer → `[rows, out]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.contiguous()?.apply_op1_no_bwd(self)
    }

    fn run(&self, x: &[f32], m: usize) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        let dot = dot_bf16::available();
        #[cfg(not(target_arch = "x86_64"))]
        let dot = false;
        self.run_with(x, m, dot)
    }

    /// `x [m, in]` through the layer, with `vdpbf16ps` for many rows when `dot`.
    fn run_with(&self, x: &[f32], m: usize, dot: bool) -> Vec<f32> {
        if m == 0 {
            return Vec::new();
        }
        let isa = Isa::detect();
        let (n, k) = (self.out_dim, self.in_dim);
        // Each task's outputs, block-major: `[blocks][m][BLOCK]` (scaled already or not).
        let (parts, scaled) = match &self.blocks {
            // gemm's kernels on the panels, the bias added on the way.
            Blocks::F32(panels) => return super::panels::matmul(isa, x, m, k, panels, n, self.bias.as_deref()),
            Blocks::Bf16(data) if m <= SKINNY_ROWS => (few_rows(isa, rows_bf16, x, m, k, data, k.div_ceil(2)), false),
            Blocks::Int8 { q, .. } if m <= SKINNY_ROWS => (few_rows(isa, rows_i8, x, m, k, q, k), false),
            #[cfg(target_arch = "x86_64")]
            Blocks::Bf16(data) if dot => (dot_bf16::many_rows(x, m, k, data), true),
            Blocks::Bf16(data) => (many_rows(isa, widen_bf16, x, m, k, data, k.div_ceil(2), None), true),
            #[cfg(target_arch = "x86_64")]
            Blocks::Int8 { q, .. } if dot => (dot_bf16::many_rows_i8(x, m, k, q), false),
            Blocks::Int8 { q, scale } => (many_rows(isa, widen_i8, x, m, k, q, k, Some(scale)), true),
        };
        let scale = match &self.blocks {
            Blocks::Int8 { scale, .. } if !scaled => Some(scale.as_slice()),
            _ => None,
        };
        let bias = self.bias.as_deref();
        let mut y = vec![0f32; m * n];
        y.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            for (b, out) in row.chunks_mut(BLOCK).enumerate() {
                let j0 = b * BLOCK;
                let part = &parts[b * m * BLOCK + i * BLOCK..][..out.len()];
                let (scale, bias) = (scale.map(|s| &s[j0..]), bias.map(|b| &b[j0..]));
                finish(isa, part, scale, bias, out);
            }
        });
        y
    }
}

impl CustomOp1 for PackedLinear {
    fn name(&self) -> &'static str {
        "easel-cpu-packed-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (m, k) = layout.shape().dims2()?;
        if k != self.in_dim {
            candle_core::bail!("easel-cpu-packed-linear: input {m}×{k}, weight {}×{}", self.out_dim, self.in_dim);
        }
        let x = f32_slice(storage, layout, "easel-cpu-packed-linear")?;
        Ok((CpuStorage::F32(self.run(x, m)), Shape::from((m, self.out_dim))))
    }
}

multiversion! {
    /// `out = part · scale + bias`, the options decided once per run of outputs.
    fn finish(part: &[f32], scale: Option<&[f32]>, bias: Option<&[f32]>, out: &mut [f32]) {
        match (scale, bias) {
            (None, None) => out.copy_from_slice(part),
            (None, Some(b)) => out.iter_mut().zip(part).zip(b).for_each(|((y, p), b)| *y = p + b),
            (Some(s), None) => out.iter_mut().zip(part).zip(s).for_each(|((y, p), s)| *y = p * s),
            (Some(s), Some(b)) => {
                out.iter_mut().zip(part).zip(s).zip(b).for_each(|(((y, p), s), b)| *y = p * s + b)
            }
        }
    }
}

/// Pair words from two consecutive inputs' weights (`odd` absent past an odd input count):
/// `word[j] = bf16(even[j]) | bf16(odd[j]) << 16`.
fn interleave<I: Iterator<Item = f32>>(words: &mut [u32], even: I, odd: Option<I>) {
    for (word, v) in words.iter_mut().zip(even) {
        *word = round_bf16(v);
    }
    if let Some(odd) = odd {
        for (word, v) in words.iter_mut().zip(odd) {
            *word |= round_bf16(v) << 16;
        }
    }
}

/// `v` as bf16 bits, rounded to nearest even (as `half::bf16::from_f32`), in plain arithmetic
/// that vectorises; a NaN stays a (quiet) NaN.
#[inline(always)]
fn round_bf16(v: f32) -> u32 {
    let bits = v.to_bits();
    if v.is_nan() { (bits >> 16) | 0x40 } else { bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16 }
}

multiversion! {
    /// A row of activations as bf16 pair words (an odd length's last word: one value).
    fn to_pairs(row: &[f32], out: &mut [u32]) {
        let (pairs, tail) = row.as_chunks::<2>();
        for (o, p) in out.iter_mut().zip(pairs) {
            *o = round_bf16(p[0]) | round_bf16(p[1]) << 16;
        }
        if let [last] = tail {
            out[pairs.len()] = round_bf16(*last);
        }
    }
}

type RowsFn<W> = fn(Isa, &[f32], usize, usize, &[W], &mut [f32]);

/// Few rows: one task per block (`depth` rows of `BLOCK` elements), which streams the block
/// once and keeps the `m × BLOCK` sums in L1.
#[allow(clippy::too_many_arguments)]
fn few_rows<W: Sync>(isa: Isa, rows: RowsFn<W>, x: &[f32], m: usize, k: usize, data: &[W], depth: usize) -> Vec<f32> {
    let mut parts = vec![0f32; data.len() / depth * m];
    parts
        .par_chunks_mut(m * BLOCK)
        .zip(data.par_chunks(depth * BLOCK))
        .for_each(|(out, block)| rows(isa, x, m, k, block, out));
    parts
}

/// `out[i][j] += Σ_d x[i][c + d] · w[d][j]` over four widened rows of a block.
#[inline(always)]
fn fold_rows(x: &[f32], m: usize, k: usize, c: usize, w: &[[f32; BLOCK]; 4], out: &mut [f32]) {
    for (i, acc) in out.chunks_exact_mut(BLOCK).enumerate().take(m) {
        let xs = &x[i * k + c..i * k + c + 4];
        for (j, a) in acc.iter_mut().enumerate() {
            *a += xs[0] * w[0][j] + xs[1] * w[1][j] + xs[2] * w[2][j] + xs[3] * w[3][j];
        }
    }
}

multiversion! {
    /// `out[i][j] = Σ_c x[i][c] · block[c][j]` for an int8 block `[k, BLOCK]`: four of its rows
    /// widened per pass (once, whatever the number of rows), each partial sum loaded and
    /// stored once per four products.
    fn rows_i8(x: &[f32], m: usize, k: usize, block: &[i8], out: &mut [f32]) {
        let mut w = [[0f32; BLOCK]; 4];
        let mut c = 0;
        while c + 4 <= k {
            for (d, w) in w.iter_mut().enumerate() {
                let src = &block[(c + d) * BLOCK..(c + d + 1) * BLOCK];
                w.iter_mut().zip(src).for_each(|(w, &q)| *w = f32::from(q));
            }
            fold_rows(x, m, k, c, &w, out);
            c += 4;
        }
        for c in c..k {
            let w = &block[c * BLOCK..(c + 1) * BLOCK];
            for (i, acc) in out.chunks_exact_mut(BLOCK).enumerate().take(m) {
                let xv = x[i * k + c];
                for (a, &w) in acc.iter_mut().zip(w) {
                    *a += xv * f32::from(w);
                }
            }
        }
    }
}

multiversion! {
    /// The same for a bf16 block of pair words `[⌈k/2⌉, BLOCK]`, two words (four inputs) per
    /// pass.
    fn rows_bf16(x: &[f32], m: usize, k: usize, block: &[u32], out: &mut [f32]) {
        let mut w = [[0f32; BLOCK]; 4];
        let mut p = 0;
        while 2 * p + 4 <= k {
            for (d, pair) in [p, p + 1].into_iter().enumerate() {
                let src = &block[pair * BLOCK..(pair + 1) * BLOCK];
                let [even, odd] = &mut w[2 * d..2 * d + 2] else { unreachable!() };
                for ((e, o), &word) in even.iter_mut().zip(odd.iter_mut()).zip(src) {
                    (*e, *o) = (low(word), high(word));
                }
            }
            fold_rows(x, m, k, 2 * p, &w, out);
            p += 2;
        }
        for p in p..k.div_ceil(2) {
            let w = &block[p * BLOCK..(p + 1) * BLOCK];
            for (i, acc) in out.chunks_exact_mut(BLOCK).enumerate().take(m) {
                let x0 = x[i * k + 2 * p];
                // An odd k's last word holds one input (its high half is zero).
                let x1 = if 2 * p + 1 < k { x[i * k + 2 * p + 1] } else { 0.0 };
                for (a, &w) in acc.iter_mut().zip(w) {
                    *a += x0 * low(w) + x1 * high(w);
                }
            }
        }
    }
}

type WidenFn<W> = fn(Isa, &[W], Option<&[f32]>, &mut [f32]);

/// Many rows without AVX512-BF16: each task widens one block (`depth` rows of `BLOCK`
/// elements) into an f32 `[k, BLOCK]` buffer (scaled) and runs gemm on it on its own thread,
/// writing `[m, BLOCK]`. One block per task, not several: the widened block (0.4–2.3 MB on
/// Qwen2-VL-2B's shapes) stays in cache while gemm reads it; with four blocks per task the
/// bf16 and int8 products ran at 0.80–1.02× the f32 one on an AVX2-only EPYC, with one at
/// 0.90–1.17× (docs/PERFORMANCE.md, "On an AVX2-only AMD EPYC").
#[allow(clippy::too_many_arguments)]
fn many_rows<W: Sync>(
    isa: Isa,
    widen: WidenFn<W>,
    x: &[f32],
    m: usize,
    k: usize,
    data: &[W],
    depth: usize,
    scale: Option<&[f32]>,
) -> Vec<f32> {
    let blocks = data.len() / (depth * BLOCK);
    let mut parts = vec![0f32; blocks * m * BLOCK];
    parts.par_chunks_mut(m * BLOCK).enumerate().for_each_init(Vec::new, |buf: &mut Vec<f32>, (b, out)| {
        buf.resize(k * BLOCK, 0.0);
        let block = &data[b * depth * BLOCK..(b + 1) * depth * BLOCK];
        let s = scale.map(|s| &s[(b * BLOCK).min(s.len())..((b + 1) * BLOCK).min(s.len())]);
        widen(isa, block, s, buf);
        // SAFETY: `out` is m·BLOCK (row i at i·BLOCK); `buf` is the block `[k, BLOCK]`
        // row-major, so output column j reads `buf[c·BLOCK + j]`.
        unsafe {
            gemm::gemm(
                BLOCK,
                m,
                k,
                out.as_mut_ptr(),
                BLOCK as isize, // dst (yᵀ block [BLOCK, m]) column stride: a row of out
                1,
                false,
                buf.as_ptr(),
                BLOCK as isize, // lhs (W block [BLOCK, k]) column stride: row c of the block
                1,
                x.as_ptr(),
                k as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    });
    parts
}

multiversion! {
    /// An int8 block `[k, BLOCK]` as f32, each output's column times its scale (zero past the
    /// scales: padding).
    fn widen_i8(block: &[i8], scale: Option<&[f32]>, out: &mut [f32]) {
        let mut s = [0f32; BLOCK];
        match scale {
            Some(scale) => s[..scale.len()].copy_from_slice(scale),
            None => s.fill(1.0),
        }
        for (o, w) in out.chunks_exact_mut(BLOCK).zip(block.chunks_exact(BLOCK)) {
            for j in 0..BLOCK {
                o[j] = f32::from(w[j]) * s[j];
            }
        }
    }
}

multiversion! {
    /// A bf16 block of pair words `[k/2, BLOCK]` as f32 `[k, BLOCK]` (an odd k's padding
    /// row dropped).
    fn widen_bf16(block: &[u32], _scale: Option<&[f32]>, out: &mut [f32]) {
        for (o, w) in out.chunks_mut(2 * BLOCK).zip(block.chunks_exact(BLOCK)) {
            let (even, odd) = o.split_at_mut(BLOCK);
            for j in 0..BLOCK {
                even[j] = low(w[j]);
            }
            for (j, v) in odd.iter_mut().enumerate() {
                *v = high(w[j]);
            }
        }
    }
}

/// The many-row products on AVX512-BF16 (bf16 weights, and int8 weights rewritten as bf16):
/// the activations rounded to bf16, then AMX tiles where the CPU has them and the inputs fit,
/// `vdpbf16ps` otherwise.
#[cfg(target_arch = "x86_64")]
mod dot_bf16 {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use rayon::prelude::*;

    use super::BLOCK;
    use super::super::amx;

    /// Rows per register tile: 6 × 4 accumulators, 4 weight vectors and a broadcast fit the
    /// 32 vector registers.
    const TILE: usize = 6;

    /// Whether the CPU has AVX512-BF16 (and the kernels are on).
    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        super::super::Isa::detect() == super::super::Isa::Avx512
            && *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx512bf16"))
    }

    /// `[blocks][m][BLOCK]` sums for `x [m, k]` against pair-word blocks `[⌈k/2⌉, BLOCK]`.
    pub fn many_rows(x: &[f32], m: usize, k: usize, data: &[u32]) -> Vec<f32> {
        let pairs = k.div_ceil(2);
        let product = Product::new(x, m, k);
        let mut parts = vec![0f32; data.len() / pairs * m];
        parts
            .par_chunks_mut(m * BLOCK)
            .zip(data.par_chunks(pairs * BLOCK))
            .for_each_init(Vec::new, |scratch, (out, block)| product.block(block, out, scratch));
        parts
    }

    /// The same against int8 blocks `[k, BLOCK]`, unscaled: each block is rewritten as bf16
    /// pair words first (every integer in ±127 is exact in bf16).
    pub fn many_rows_i8(x: &[f32], m: usize, k: usize, q: &[i8]) -> Vec<f32> {
        let pairs = k.div_ceil(2);
        let product = Product::new(x, m, k);
        let mut parts = vec![0f32; q.len() / k * m];
        parts.par_chunks_mut(m * BLOCK).zip(q.par_chunks(k * BLOCK)).for_each_init(Default::default, |(words, scratch): &mut (Vec<u32>, Vec<f32>), (out, block)| {
            words.clear();
            words.resize(pairs * BLOCK, 0u32);
            for (p, pair) in words.chunks_exact_mut(BLOCK).enumerate() {
                let row = |c: usize| block[c * BLOCK..(c + 1) * BLOCK].iter().map(|&v| f32::from(v));
                super::interleave(pair, row(2 * p), (2 * p + 1 < k).then(|| row(2 * p + 1)));
            }
            product.block(words, out, scratch);
        });
        parts
    }

    /// The activations of one product, rounded to bf16, and the unit that multiplies them.
    struct Product {
        /// `[rows, ⌈k/2⌉]` pair words, rounded to nearest even; on AMX `rows` is padded to a
        /// whole pass with zero rows.
        xp: Vec<u32>,
        m: usize,
        pairs: usize,
        /// Padded rows when the AMX tiles run the product.
        amx_rows: Option<usize>,
    }

    impl Product {
        fn new(x: &[f32], m: usize, k: usize) -> Self {
            let pairs = k.div_ceil(2);
            let amx_rows = (amx::available() && amx::fits(k)).then(|| amx::padded_rows(m));
            let mut xp = vec![0u32; amx_rows.unwrap_or(m) * pairs];
            let isa = super::Isa::detect();
            xp.par_chunks_mut(pairs).zip(x.par_chunks(k)).for_each(|(out, row)| super::to_pairs(isa, row, out));
            Self { xp, m, pairs, amx_rows }
        }

        /// One block's `[m, BLOCK]` sums into `out` (`scratch`: the padded rows on AMX).
        fn block(&self, block: &[u32], out: &mut [f32], scratch: &mut Vec<f32>) {
            match self.amx_rows {
                Some(rows) => {
                    scratch.resize(rows * BLOCK, 0.0);
                    amx::block_product(&self.xp, rows, self.pairs, block, scratch);
                    out.copy_from_slice(&scratch[..self.m * BLOCK]);
                }
                None => block_product(&self.xp, self.pairs, block, out),
            }
        }
    }

    /// One block's `[m, BLOCK]` sums, `TILE` rows at a time.
    fn block_product(xp: &[u32], pairs: usize, block: &[u32], out: &mut [f32]) {
        for (t, out) in out.chunks_mut(TILE * BLOCK).enumerate() {
            let rows = &xp[t * TILE * pairs..];
            // SAFETY: `available()` saw AVX-512 F and BF16 on this CPU; `tile` reads
            // `out.len() / BLOCK` rows of `rows` and `pairs` words of each, all in bounds.
            unsafe {
                match out.len() / BLOCK {
                    6 => tile::<6>(rows, pairs, block, out),
                    5 => tile::<5>(rows, pairs, block, out),
                    4 => tile::<4>(rows, pairs, block, out),
                    3 => tile::<3>(rows, pairs, block, out),
                    2 => tile::<2>(rows, pairs, block, out),
                    _ => tile::<1>(rows, pairs, block, out),
                }
            }
        }
    }

    /// `out[r][j] = Σ_p dot(x[r][p], block[p][j])` for `R ≤ TILE` rows, in registers.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn tile<const R: usize>(rows: &[u32], pairs: usize, block: &[u32], out: &mut [f32]) {
        debug_assert!(rows.len() >= R * pairs && block.len() >= pairs * BLOCK && out.len() >= R * BLOCK);
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let (w, x) = (block.as_ptr(), rows.as_ptr());
        for p in 0..pairs {
            // SAFETY: p < pairs; the block holds pairs · BLOCK words, each of the R rows
            // `pairs` words (asserted above); __m512i and __m512bh are both 512 plain bits.
            unsafe {
                let wv: [__m512bh; 4] =
                    std::array::from_fn(|v| std::mem::transmute(_mm512_loadu_si512(w.add(p * BLOCK + 16 * v).cast())));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let xv: __m512bh = std::mem::transmute(_mm512_set1_epi32(*x.add(r * pairs + p) as i32));
                    for v in 0..4 {
                        acc[v] = _mm512_dpbf16_ps(acc[v], xv, wv[v]);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, a) in acc.iter().enumerate() {
                // SAFETY: r < R and 16 · v + 16 ≤ BLOCK: inside `out`.
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(r * BLOCK + 16 * v), *a) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// `x · Wᵀ + b` in f64 on the weight the packed values stand for.
    fn reference(x: &Tensor, packed: &PackedLinear, b: Option<&Tensor>) -> Result<Tensor> {
        let w = packed.dequantize(&Device::Cpu)?.to_dtype(DType::F64)?;
        let y = x.to_dtype(DType::F64)?.matmul(&w.t()?)?;
        let y = match b {
            Some(b) => y.broadcast_add(&b.to_dtype(DType::F64)?)?,
            None => y,
        };
        y.to_dtype(DType::F32)
    }

    #[test]
    fn both_formats_and_both_paths_compute_the_packed_weights_product() -> Result<()> {
        let dev = Device::Cpu;
        // Rows on both sides of SKINNY_ROWS; outputs with and without a partial block; inner
        // sizes with and without a partial step.
        // (On AMX CPUs inputs that are a multiple of 32 run on its tiles.)
        for &(m, k, n) in &[(1, 64, 300), (3, 37, 17), (8, 130, 513), (9, 96, 40), (40, 200, 260), (70, 33, 1100), (45, 128, 130)] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
            let b = Tensor::randn(0f32, 1.0, n, &dev)?;
            for format in [WeightFormat::Bf16, WeightFormat::Int8] {
                for bias in [None, Some(&b)] {
                    let packed = PackedLinear::pack(&w, bias, format)?;
                    // `vdpbf16ps` and AMX multiply the activations rounded to bf16.
                    let dot = m > SKINNY_ROWS && bf16_dot();
                    let x = if dot { x.to_dtype(DType::BF16)?.to_dtype(DType::F32)? } else { x.clone() };
                    let want = reference(&x, &packed, bias)?;
                    let got = packed.forward(&x)?;
                    assert_eq!(got.dims(), &[m, n]);
                    let diff = (got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                    assert!(diff < 1e-3, "{format} {m}×{k}·{n} bias {}: {diff}", bias.is_some());
                }
            }
        }
        Ok(())
    }

    #[test]
    fn the_widening_path_computes_the_packed_weights_product() -> Result<()> {
        // What a CPU without AVX512-BF16 runs for many rows (gemm on widened blocks).
        let dev = Device::Cpu;
        for &(m, k, n) in &[(9, 37, 70), (40, 200, 260), (33, 64, 1100)] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
            let b = Tensor::randn(0f32, 1.0, n, &dev)?;
            for format in [WeightFormat::Bf16, WeightFormat::Int8] {
                let packed = PackedLinear::pack(&w, Some(&b), format)?;
                let want = reference(&x, &packed, Some(&b))?.flatten_all()?.to_vec1::<f32>()?;
                let got = packed.run_with(&x.flatten_all()?.to_vec1::<f32>()?, m, false);
                let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff < 1e-3, "{format} {m}×{k}·{n}: {diff}");
            }
        }
        Ok(())
    }

    #[test]
    fn packing_rounds_as_the_format_says() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.05, (70, 33), &dev)?;
        let dense = w.to_vec2::<f32>()?;
        let bf16 = PackedLinear::pack(&w, None, WeightFormat::Bf16)?;
        // Round to nearest: within half a bf16 step (2⁻⁸ relative) of every weight.
        let back = bf16.dequantize(&dev)?.to_vec2::<f32>()?;
        for (r, d) in back.iter().flatten().zip(dense.iter().flatten()) {
            assert!((r - d).abs() <= d.abs() * 2f32.powi(-8), "{r} for {d}");
        }
        assert_eq!(back, w.to_dtype(DType::BF16)?.to_dtype(DType::F32)?.to_vec2::<f32>()?);
        let int8 = PackedLinear::pack(&w, None, WeightFormat::Int8)?;
        let back = int8.dequantize(&dev)?.to_vec2::<f32>()?;
        for (row, want) in back.iter().zip(&dense) {
            let max = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            // Half a step of max/127, and the row's largest weight kept (to rounding).
            for (r, d) in row.iter().zip(want) {
                assert!((r - d).abs() <= max / 254.0 * 1.0001, "{r} for {d}");
            }
            assert!((row.iter().fold(0f32, |m, v| m.max(v.abs())) - max).abs() <= max * 1e-6);
        }
        // Memory: padded to whole blocks of 64 outputs (and bf16 to pairs of inputs).
        assert_eq!(bf16.bytes(), 2 * 64 * 34 * 2);
        assert_eq!(int8.bytes(), 2 * 64 * 33 + 70 * 4);
        // A zero row stays zero (no division by a zero scale).
        let zero = PackedLinear::pack(&Tensor::zeros((3, 5), DType::F32, &dev)?, None, WeightFormat::Int8)?;
        assert_eq!(zero.dequantize(&dev)?.sum_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    /// The reference rounding: `half`'s.
    fn bf16_bits(v: f32) -> u32 {
        u32::from(half::bf16::from_f32(v).to_bits())
    }

    fn bf16_dot() -> bool {
        #[cfg(target_arch = "x86_64")]
        return dot_bf16::available();
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Small integers (exact in bf16, and every order of summation gives the same bits): `rows`
    /// of activations, an int8 block `[k, BLOCK]` and the same values as bf16 pair words
    /// `[⌈k/2⌉, BLOCK]` (an odd k's last word: its high half zero).
    fn small_integers(rows: usize, k: usize) -> (Vec<f32>, Vec<i8>, Vec<u32>) {
        let x: Vec<f32> = (0..rows * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let q: Vec<i8> = (0..k * BLOCK).map(|i| (i % 11) as i8 - 5).collect();
        let mut bf = vec![0u32; k.div_ceil(2) * BLOCK];
        for (p, pair) in bf.chunks_exact_mut(BLOCK).enumerate() {
            let row = |c: usize| q[c * BLOCK..(c + 1) * BLOCK].iter().map(|&v| f32::from(v));
            interleave(pair, row(2 * p), (2 * p + 1 < k).then(|| row(2 * p + 1)));
        }
        (x, q, bf)
    }

    #[test]
    fn every_vector_unit_gives_the_same_sums() {
        let (m, k) = (3, 23);
        let (x, q, bf) = small_integers(m, k);
        let mut want = vec![0f32; m * BLOCK];
        rows_i8(Isa::Portable, &x, m, k, &q, &mut want);
        let check = (0..k).map(|c| x[k + c] * q[c * BLOCK + 5] as f32).sum::<f32>();
        assert_eq!(want[BLOCK + 5], check);
        for isa in Isa::available() {
            let mut out = vec![0f32; m * BLOCK];
            rows_i8(isa, &x, m, k, &q, &mut out);
            assert_eq!(out, want, "int8 {isa:?}");
            let mut out = vec![0f32; m * BLOCK];
            rows_bf16(isa, &x, m, k, &bf, &mut out);
            assert_eq!(out, want, "bf16 {isa:?}");
            let mut widened = vec![0f32; k * BLOCK];
            widen_i8(isa, &q, Some(&[2.0; 10]), &mut widened);
            assert_eq!(widened[BLOCK + 3], 2.0 * q[BLOCK + 3] as f32);
            assert_eq!(widened[BLOCK + 30], 0.0, "outputs past the scales are padding: zero");
            widen_bf16(isa, &bf, None, &mut widened);
            assert_eq!(widened, q.iter().map(|&v| f32::from(v)).collect::<Vec<_>>(), "bf16 {isa:?}");
        }
        // AVX512-BF16 on small integers (exact in bf16): the same sums.
        if bf16_dot() {
            #[cfg(target_arch = "x86_64")]
            for rows in [1, 6, 7, 13] {
                let (x, _, _) = small_integers(rows, k);
                let got = dot_bf16::many_rows(&x, rows, k, &bf);
                let mut want = vec![0f32; rows * BLOCK];
                rows_i8(Isa::Portable, &x, rows, k, &q, &mut want);
                assert_eq!(got, want, "{rows} rows");
                assert_eq!(dot_bf16::many_rows_i8(&x, rows, k, &q), want, "{rows} rows of int8");
            }
        }
    }

    /// Intel AMX (`tdpbf16ps`, inputs a multiple of 32) on small integers: the same sums as the
    /// portable kernel, for row counts on both sides of its 32-row passes.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn amx_tiles_give_the_same_sums() {
        if !super::super::amx::available() {
            eprintln!("no AMX here (CPU or kernel): the vdpbf16ps and widening paths are tested instead");
            return;
        }
        let k = 96;
        assert!(super::super::amx::fits(k) && !super::super::amx::fits(k + 2));
        for rows in [9, 31, 32, 33, 70] {
            let (x, q, bf) = small_integers(rows, k);
            let mut want = vec![0f32; rows * BLOCK];
            rows_i8(Isa::Portable, &x, rows, k, &q, &mut want);
            assert_eq!(dot_bf16::many_rows(&x, rows, k, &bf), want, "{rows} rows");
            assert_eq!(dot_bf16::many_rows_i8(&x, rows, k, &q), want, "{rows} rows of int8");
        }
    }

    #[test]
    fn activations_round_to_bf16_as_half_does() {
        let mut values: Vec<f32> = vec![0.0, -0.0, 1.0, -1.5, f32::MAX, f32::MIN, f32::INFINITY, f32::NEG_INFINITY];
        values.extend([f32::MIN_POSITIVE, 1e-40, -1e-45, 3.0e38, 1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8)]);
        values.extend((0..2000).map(|i| ((i as f32) * 0.7371).sin() * 10f32.powi(i % 30 - 15)));
        for v in &values {
            assert_eq!(round_bf16(*v), bf16_bits(*v), "{v:e}");
        }
        assert!(low(round_bf16(f32::NAN)).is_nan());
        for isa in Isa::available() {
            let mut out = vec![0u32; values.len().div_ceil(2)];
            to_pairs(isa, &values[..values.len() - 1], &mut out);
            for (i, v) in values[..values.len() - 1].iter().enumerate() {
                let word = out[i / 2];
                let half = if i % 2 == 0 { word & 0xffff } else { word >> 16 };
                assert_eq!(half, bf16_bits(*v), "{isa:?} {v:e}");
            }
        }
    }

    #[test]
    fn the_format_parses_and_names_itself() {
        for name in WeightFormat::NAMES {
            assert_eq!(name.parse::<WeightFormat>().unwrap().to_string(), name);
        }
        let err = "int4".parse::<WeightFormat>().unwrap_err();
        assert!(err.contains("int4") && err.contains("bf16"), "{err}");
    }
}
