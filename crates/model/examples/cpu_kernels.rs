//! Easel's CPU kernels against candle's matmul on the products of decoding (1 and 4 rows
//! against the Qwen2-VL-2B language model's and output layer's weights): milliseconds and the
//! weight-read bandwidth each reaches. `cargo run --release -p easel-model --example cpu_kernels`
//! (docs/PERFORMANCE.md, "CPU against PyTorch").

use std::time::Instant;
use candle_core::{Device, Tensor};
fn main() -> candle_core::Result<()> {
    for (m, k, n) in [(1usize, 1536usize, 8960usize), (4, 1536, 8960), (1, 8960, 1536), (4, 8960, 1536), (1, 1536, 151936), (4, 1536, 151936)] {
        let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)?;
        let wt = easel_model::cpu::inference_layout(w.clone())?;
        let time = |f: &dyn Fn() -> candle_core::Result<Tensor>| -> candle_core::Result<f64> { f()?; let t = Instant::now(); for _ in 0..10 { f()?; } Ok(t.elapsed().as_secs_f64() / 10.0) };
        let g = time(&|| x.matmul(&w.t()?))?;
        let s = time(&|| easel_model::cpu::skinny_matmul(&x, &w))?;
        let l = time(&|| easel_model::cpu::linear(&x, &wt, None))?;
        let gb = (n * k * 4) as f64 / 1e9;
        println!("{m}x{k}x{n}: candle {:.2} ms ({:.1} GB/s), skinny row-major {:.2} ms ({:.1} GB/s), transposed {:.2} ms ({:.1} GB/s)", g * 1e3, gb / g, s * 1e3, gb / s, l * 1e3, gb / l);
    }
    Ok(())
}
