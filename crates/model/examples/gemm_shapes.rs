//! The f32 dense layers' many-row products — a 168-token prefill of the Qwen2-VL-2B language
//! model and its vision tower at 224² — in GFLOP/s: Easel's transposed-weight path
//! (`cpu::linear`, gemm underneath) and candle's matmul. `scripts/profile/torch_linear_shapes.py`
//! times `torch.nn.functional.linear` on the same shapes the same way, to set beside it.
//! `cargo run --release -p easel-model --example gemm_shapes` (docs/PERFORMANCE.md).

use std::time::Instant;

use candle_core::{Device, Result, Tensor};
use easel_model::cpu::{inference_layout, linear};

/// `(rows, in, out)`: q/o, k/v, q+k+v together, gate/up, gate+up together, down; then the
/// vision tower's qkv, fc1 and fc2.
const SHAPES: [(usize, usize, usize); 9] = [
    (168, 1536, 1536),
    (168, 1536, 256),
    (168, 1536, 2048),
    (168, 1536, 8960),
    (168, 1536, 17920),
    (168, 8960, 1536),
    (256, 1280, 3840),
    (256, 1280, 5120),
    (256, 5120, 1280),
];

/// Seconds per call: three warm-up calls, then the best of three runs of ten.
fn best_of(f: &dyn Fn() -> Result<Tensor>) -> Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..10 {
            f()?;
        }
        best = best.min(start.elapsed().as_secs_f64() / 10.0);
    }
    Ok(best)
}

fn main() -> Result<()> {
    println!("cpu kernels: {}, {} threads", easel_model::cpu::Isa::in_use(), rayon::current_num_threads());
    for (m, k, n) in SHAPES {
        let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let w = (Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)? * 0.02)?;
        let dense = inference_layout(w.clone())?;
        let gflop = 2.0 * (m * k * n) as f64 / 1e9;
        let easel = best_of(&|| linear(&x, &dense, None))?;
        let candle = best_of(&|| x.matmul(&w.t()?))?;
        println!(
            "{m}x{k}x{n}: easel {:.2} ms {:.0} GFLOP/s, candle {:.2} ms {:.0} GFLOP/s",
            easel * 1e3,
            gflop / easel,
            candle * 1e3,
            gflop / candle
        );
    }
    Ok(())
}
