//! The f32 dense layers' many-row products with the weight transposed (`cpu::linear`: gemm,
//! which packs each weight panel first) and in panels (`cpu::panels`: gemm's kernels on the
//! panels in place), in GFLOP/s. Each shape cycles through enough copies of its weight to
//! overflow the last-level cache, as a model's layers do.
//! `cargo run --release -p easel-model --example panel_driver` (docs/PERFORMANCE.md).

use std::time::Instant;

use candle_core::{Device, Result, Tensor};
use easel_model::cpu::{Isa, inference_layout, linear, panels};

/// `(rows, in, out)`: the vision tower's fc1 and fc2 at 448², batch 4 (4 096 patches); the
/// 168-token prefill at batch 4 (672 rows); the score path at 224², batch 4 (1 024 patches)
/// and 1 (256); the prefill at batch 1; decoding one token and four.
const SHAPES: [(usize, usize, usize); 18] = [
    (4096, 1280, 5120),
    (4096, 5120, 1280),
    (672, 1536, 2048),
    (672, 1536, 17920),
    (672, 8960, 1536),
    (1024, 1280, 3840),
    (1024, 1280, 5120),
    (1024, 5120, 1280),
    (256, 1280, 3840),
    (256, 5120, 1280),
    (168, 1536, 2048),
    (168, 1536, 17920),
    (168, 8960, 1536),
    (168, 1536, 256),
    (1, 1536, 8960),
    (1, 8960, 1536),
    (4, 1536, 8960),
    (4, 1536, 256),
];

/// Seconds per call, the best of five passes over every copy.
fn best_of(copies: usize, f: &dyn Fn(usize) -> Result<()>) -> Result<f64> {
    for c in 0..copies {
        f(c)?;
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for c in 0..copies {
            f(c)?;
        }
        best = best.min(start.elapsed().as_secs_f64() / copies as f64);
    }
    Ok(best)
}

fn main() -> Result<()> {
    let isa = Isa::detect();
    println!("cpu kernels: {}, {} threads", Isa::in_use(), rayon::current_num_threads());
    // An argument picks one shape (`672x1536x17920`).
    let only = std::env::args().nth(1);
    for (m, k, n) in SHAPES {
        if only.as_ref().is_some_and(|o| *o != format!("{m}x{k}x{n}")) {
            continue;
        }
        let copies = (96 << 20) / (4 * k * n) + 1;
        let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let mut dense = Vec::new();
        let mut panelled = Vec::new();
        for _ in 0..copies {
            let w = (Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)? * 0.02)?;
            let wt = w.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
            panelled.push(panels::to_panels(&wt, k, n));
            dense.push(inference_layout(w)?);
        }
        let want = linear(&x, &dense[0], None)?.flatten_all()?.to_vec1::<f32>()?;
        let got = panels::matmul(isa, &xs, m, k, &panelled[0], n, None);
        let diff = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let gflop = 2.0 * (m * k * n) as f64 / 1e9;
        let a = best_of(copies, &|c| linear(&x, &dense[c], None).map(drop))?;
        let b = best_of(copies, &|c| {
            std::hint::black_box(panels::matmul(isa, &xs, m, k, &panelled[c], n, None));
            Ok(())
        })?;
        println!(
            "{m}x{k}x{n} ({copies} copies): transposed {:.0} GFLOP/s, panels {:.0} GFLOP/s, {:.2}x, max diff {diff:.1e}",
            gflop / a,
            gflop / b,
            a / b
        );
    }
    Ok(())
}
