//! f32 dense layers with the weight stored in the panels gemm's kernels read, and a driver of
//! Easel's own around those kernels.
//!
//! gemm's kernel computes a tile of `mr` outputs × `nr` rows (AVX-512: 64 × 6) from a panel of
//! the weight (`mr` outputs of each input, contiguous) and `nr` rows of the activations. Given
//! the weight in any other layout, gemm first copies ("packs") each panel out of it: in the
//! transposed layout that read is 256 bytes one row of `Wᵀ` apart, the weights' first read from
//! memory, which the prefetchers do not follow (13–16 % of the score path and the prefill on
//! the Xeon: docs/PERFORMANCE.md). Stored in panels — `[⌈out/64⌉, in, 64]`, the last padded
//! with zeros — each panel is one contiguous stream, and the kernel reads it in place.
//!
//! The driver keeps what gemm's own loop gets from packing. Each thread owns a band of
//! panels and takes them a group of [`GROUP`] at a time; for each slice of [`DEPTH`] inputs,
//! the group's slices (0.6 MB, in L2) are run against each `nr`-row strip of the activations
//! in turn, so the strip is read from L1 by every panel of the group. Each panel is read from
//! memory once per product, and the group's outputs stay in cache across its slices.
//! Every row's sums are taken in the same order whatever the number of rows, so a row's
//! outputs do not depend on the rows beside it (a painting's scores and critique on its batch).

use rayon::prelude::*;

use super::{Aligned, Isa, Out, aligned_zeros, par_rows};

/// Outputs per panel: gemm's AVX-512 tile height (4 vectors of 16), and a multiple of its
/// AVX2 (16) and portable (2) ones.
pub const PANEL: usize = 64;

/// Inputs per slice: the activations' strip (`nr` × `DEPTH`, 18 KiB) stays in L1 while each
/// panel's slice (`PANEL` × `DEPTH`, 192 KiB) streams from L2. On the Zen 4, 384 × 6 and
/// 256 × 4 lost 2–5 % against 768 × 3 at 4 096 rows, 1 280 × 2 measured the same
/// (`examples/panel_driver.rs`).
const DEPTH: usize = 768;

/// Panels per group: 3 × 192 KiB of weights per slice, reused from L2 by every strip (a
/// Zen 4 core has 1 MiB of L2).
const GROUP: usize = 3;

/// An `[out, in]` weight given as `Wᵀ` (`[in, out]` row-major), laid out in panels.
pub fn to_panels(wt: &[f32], k: usize, n: usize) -> Aligned<f32> {
    let mut panels = aligned_zeros(n.div_ceil(PANEL) * k * PANEL);
    panels.par_chunks_mut(k * PANEL).enumerate().for_each(|(p, panel)| {
        let (j0, width) = (p * PANEL, PANEL.min(n - p * PANEL));
        for (c, row) in panel.chunks_exact_mut(PANEL).enumerate() {
            row[..width].copy_from_slice(&wt[c * n + j0..][..width]);
        }
    });
    panels
}

/// The weight's element `(j, c)` (output, input) in the panel layout.
pub fn panel_index(k: usize, j: usize, c: usize) -> usize {
    (j / PANEL) * k * PANEL + c * PANEL + j % PANEL
}

type Kernel = gemm_common::microkernel::MicroKernelFn<f32>;

/// gemm's kernels for one vector unit: `kernels[packs - 1][rows - 1]` computes `packs · lanes`
/// outputs × `rows` rows.
struct Kernels {
    lanes: usize,
    kernels: &'static [&'static [Kernel]],
}

impl Kernels {
    fn for_isa(isa: Isa) -> Self {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                use gemm_f32::microkernel::avx512f::f32 as k;
                static K: [&[Kernel]; k::MR_DIV_N] = [&k::UKR[0], &k::UKR[1], &k::UKR[2], &k::UKR[3]];
                Self { lanes: 16, kernels: &K }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                use gemm_f32::microkernel::fma::f32 as k;
                static K: [&[Kernel]; k::MR_DIV_N] = [&k::UKR[0], &k::UKR[1]];
                Self { lanes: 8, kernels: &K }
            }
            Isa::Portable => {
                use gemm_f32::microkernel::scalar::f32 as k;
                static K: [&[Kernel]; k::MR_DIV_N] = [&k::UKR[0], &k::UKR[1]];
                Self { lanes: 1, kernels: &K }
            }
        }
    }

    /// Outputs per kernel call at most.
    fn height(&self) -> usize {
        self.lanes * self.kernels.len()
    }

    /// Rows per kernel call at most.
    fn width(&self) -> usize {
        self.kernels[0].len()
    }
}

/// `y = x Wᵀ + b` (`x [m, k]`, `y [m, n]`) for a weight in panels.
pub fn matmul(isa: Isa, x: &[f32], m: usize, k: usize, panels: &[f32], n: usize, bias: Option<&[f32]>) -> Vec<f32> {
    assert!(x.len() == m * k && panels.len() == n.div_ceil(PANEL) * k * PANEL && bias.is_none_or(|b| b.len() == n));
    // The bias or zeros written first, in order and in parallel, so the kernels add onto it and
    // take no page faults: faulted in by the kernels, in their order (a tile of each row), a
    // 48 MB output ran at 0.65× (docs/PERFORMANCE.md).
    let mut y = par_rows(m, n, bias);
    let count = n.div_ceil(PANEL);
    if count == 0 || k == 0 || m == 0 {
        return y;
    }
    let kernels = Kernels::for_isa(isa);
    let threads = rayon::current_num_threads().min(count);
    let out = Out::new(&mut y);
    (0..threads).into_par_iter().for_each(|t| {
        let (p0, p1) = (t * count / threads, (t + 1) * count / threads);
        for g0 in (p0..p1).step_by(GROUP) {
            for c0 in (0..k).step_by(DEPTH) {
                let depth = DEPTH.min(k - c0);
                for i0 in (0..m).step_by(kernels.width()) {
                    let rows = kernels.width().min(m - i0);
                    for p in g0..(g0 + GROUP).min(p1) {
                        for j0 in (p * PANEL..((p + 1) * PANEL).min(n)).step_by(kernels.height()) {
                            let outputs = kernels.height().min(n - j0);
                            let kernel = kernels.kernels[outputs.div_ceil(kernels.lanes) - 1][rows - 1];
                            // SAFETY: the kernel reads `⌈outputs / lanes⌉ · lanes` weights at
                            // each of `depth` inputs, `PANEL` apart, from input c0 of panel p
                            // at output j0 % PANEL: inside the panel, which is padded to
                            // `PANEL`. It reads `rows` rows of x from (i0, c0), each `depth`
                            // long and k apart, and reads and writes `outputs` × `rows` of y
                            // from (i0, j0), rows n apart: outputs j0.. of panel p, which only
                            // this thread writes.
                            unsafe {
                                #[rustfmt::skip]
                                kernel(
                                    outputs, rows, depth,
                                    out.at(i0 * n + j0),
                                    panels.as_ptr().add(p * k * PANEL + c0 * PANEL + j0 % PANEL),
                                    x.as_ptr().add(i0 * k + c0),
                                    n as isize, 1,        // dst: column (row of y) stride, output stride
                                    PANEL as isize,       // lhs: one input to the next
                                    1, k as isize,        // rhs: one input to the next, one row to the next
                                    1.0, 1.0, 1,          // y += product
                                    false, false, false,
                                    std::ptr::null(),
                                );
                            }
                        }
                    }
                }
            }
        }
    });
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vector_unit_equals_the_plain_sum() {
        // Rows and outputs on both sides of every kernel's tile; depths across a slice edge.
        for &(m, k, n) in &[(1, 5, 1), (7, 300, 70), (13, 257, 129), (6, 512, 64), (40, 33, 200), (8, 1600, 70)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let wt: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 9) as f32 * 0.5 - 2.0).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32).collect();
            let panels = to_panels(&wt, k, n);
            assert_eq!(panels.as_ptr() as usize % 64, 0, "panels start on a cache line");
            for c in [0, k - 1] {
                for j in [0, n - 1] {
                    assert_eq!(panels[panel_index(k, j, c)], wt[c * n + j]);
                }
            }
            // Small integers and halves: every sum is exact whatever the order.
            let want: Vec<f32> = (0..m * n).map(|e| (0..k).map(|c| x[e / n * k + c] * wt[c * n + e % n]).sum::<f32>() + bias[e % n]).collect();
            for isa in Isa::available() {
                assert_eq!(matmul(isa, &x, m, k, &panels, n, Some(&bias)), want, "{isa:?} {m}×{k}·{n}");
            }
        }
    }

    #[test]
    fn a_rows_outputs_do_not_depend_on_the_rows_beside_it() {
        // Rounding on (no exact sums here): row 9 of 13 (the second strip, three slices deep)
        // alone and among the others must give the same bits.
        let (m, k, n) = (13, 1700, 130);
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let wt: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos() * 0.05).collect();
        let panels = to_panels(&wt, k, n);
        for isa in Isa::available() {
            let all = matmul(isa, &x, m, k, &panels, n, None);
            let alone = matmul(isa, &x[9 * k..10 * k], 1, k, &panels, n, None);
            assert_eq!(alone, all[9 * n..10 * n], "{isa:?}");
        }
    }
}
