//! bf16 and int8 weights (`--weights`) against the f32 layout on the Qwen2-VL-2B language
//! model's and vision tower's shapes: few-row products (decoding; milliseconds and the
//! weight-read bandwidth) and many-row products (vision tower, prefill; GFLOP/s).
//! `cargo run --release -p easel-model --example packed_weights` (docs/PERFORMANCE.md).

use std::time::Instant;

use candle_core::{Device, Result, Tensor};
use easel_model::WeightFormat;
use easel_model::cpu::{PackedLinear, inference_layout, linear};

fn time(iters: usize, f: &dyn Fn() -> Result<Tensor>) -> Result<f64> {
    f()?;
    let start = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    Ok(start.elapsed().as_secs_f64() / iters as f64)
}

fn main() -> Result<()> {
    println!("cpu kernels: {}", easel_model::cpu::Isa::in_use());
    let shapes = [
        // Decoding: the 2B language model's MLP and the tied output layer, 1 and 4 rows.
        (1usize, 1536usize, 8960usize),
        (4, 1536, 8960),
        (1, 8960, 1536),
        (1, 1536, 151936),
        // Vision tower at 224² (256 patches) and a 168-token prefill.
        (256, 1280, 5120),
        (256, 5120, 1280),
        (168, 1536, 8960),
        (168, 8960, 1536),
    ];
    for (m, k, n) in shapes {
        let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let w = (Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)? * 0.02)?;
        let iters = 10;
        let dense = inference_layout(w.clone())?;
        let f32_s = time(iters, &|| linear(&x, &dense, None))?;
        let mut line = format!("{m}×{k}·{n}: f32 {:.2} ms", f32_s * 1e3);
        let flops = 2.0 * (m * k * n) as f64;
        for format in [WeightFormat::Bf16, WeightFormat::Int8] {
            let packed = PackedLinear::pack(&w, None, format)?;
            let s = time(iters, &|| packed.forward(&x))?;
            let rate = if m > 8 {
                format!("{:.0} GFLOP/s", flops / s / 1e9)
            } else {
                format!("{:.1} GB/s", packed.bytes() as f64 / s / 1e9)
            };
            line += &format!(", {format} {:.2} ms ({rate}, {:.2}× f32)", s * 1e3, f32_s / s);
        }
        if m > 8 {
            line += &format!(" [f32 {:.0} GFLOP/s]", flops / f32_s / 1e9);
        } else {
            line += &format!(" [f32 {:.1} GB/s]", (n * k * 4) as f64 / f32_s / 1e9);
        }
        println!("{line}");
    }
    Ok(())
}
