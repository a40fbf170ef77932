//! Easel's own CUDA kernels (`kernels/easel.cu`) as candle custom ops, for the bf16 inference
//! path on a GPU. Each replaces several candle kernels with one memory pass; see
//! docs/PERFORMANCE.md for what they buy. `EASEL_CUDA_KERNELS=0` turns them off (to measure
//! the difference or rule them out).

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaStorage, WrapErr};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use half::bf16;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/easel_kernels.ptx"));
const MODULE: &str = "easel_kernels";

/// Whether the fused kernels may run for this tensor (bf16, on a GPU, not disabled).
pub fn applies(xs: &Tensor) -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    let enabled = *ENABLED.get_or_init(|| std::env::var("EASEL_CUDA_KERNELS").map(|v| v != "0").unwrap_or(true));
    enabled && xs.device().is_cuda() && xs.dtype() == DType::BF16
}

fn contiguous_slice<'a>(
    storage: &'a CudaStorage,
    layout: &Layout,
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, bf16>> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("easel kernels need contiguous inputs".into()))?;
    Ok(storage.as_cuda_slice::<bf16>()?.slice(start..end))
}

fn f32_slice<'a>(
    storage: &'a CudaStorage,
    layout: &Layout,
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, f32>> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("easel kernels need contiguous inputs".into()))?;
    Ok(storage.as_cuda_slice::<f32>()?.slice(start..end))
}

fn grid_for(n: usize, threads: u32) -> LaunchConfig {
    let blocks = n.div_ceil(threads as usize).clamp(1, 65_535 * 64) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 }
}

fn cpu_unsupported(name: &str) -> Result<(CpuStorage, Shape)> {
    candle_core::bail!("{name} runs on CUDA only")
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "easel-softmax"
    }
    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        cpu_unsupported(self.name())
    }
    fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = storage.device().clone();
        let src = contiguous_slice(storage, layout)?;
        let dims = layout.shape().dims();
        let cols = *dims.last().expect("rank ≥ 1");
        let rows = layout.shape().elem_count() / cols.max(1);
        // SAFETY: every element is written by the kernel.
        let dst = unsafe { dev.alloc::<bf16>(rows * cols)? };
        let func = dev.get_or_load_custom_func("easel_softmax_bf16", MODULE, PTX)?;
        let (rows_i, cols_i) = (rows as i32, cols as i32);
        let mut builder = func.builder();
        builder.arg(&src);
        builder.arg(&dst);
        builder.arg(&rows_i);
        builder.arg(&cols_i);
        // 8 warps per block, one row per warp.
        let cfg = LaunchConfig { grid_dim: (rows.div_ceil(8) as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: argument types match the kernel's signature.
        unsafe { builder.launch(cfg) }.w()?;
        Ok((CudaStorage::wrap_cuda_slice(dst, dev), layout.shape().clone()))
    }
}

/// Softmax over the last axis of a contiguous bf16 tensor.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1_no_bwd(&Softmax)
}

struct QuickGelu;

impl CustomOp1 for QuickGelu {
    fn name(&self) -> &'static str {
        "easel-quick-gelu"
    }
    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        cpu_unsupported(self.name())
    }
    fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = storage.device().clone();
        let src = contiguous_slice(storage, layout)?;
        let n = layout.shape().elem_count();
        // SAFETY: every element is written by the kernel.
        let dst = unsafe { dev.alloc::<bf16>(n)? };
        let func = dev.get_or_load_custom_func("easel_quick_gelu_bf16", MODULE, PTX)?;
        let n_i = n as i64;
        let mut builder = func.builder();
        builder.arg(&src);
        builder.arg(&dst);
        builder.arg(&n_i);
        // SAFETY: argument types match the kernel's signature.
        unsafe { builder.launch(grid_for(n, 256)) }.w()?;
        Ok((CudaStorage::wrap_cuda_slice(dst, dev), layout.shape().clone()))
    }
}

/// `x · σ(1.702 x)` for a bf16 tensor.
pub fn quick_gelu(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1_no_bwd(&QuickGelu)
}

struct SiluMul;

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "easel-silu-mul"
    }
    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        cpu_unsupported(self.name())
    }
    fn cuda_fwd(
        &self,
        gate: &CudaStorage,
        gate_layout: &Layout,
        up: &CudaStorage,
        up_layout: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        if gate_layout.shape() != up_layout.shape() {
            candle_core::bail!("silu_mul: shapes differ");
        }
        let dev = gate.device().clone();
        let g = contiguous_slice(gate, gate_layout)?;
        let u = contiguous_slice(up, up_layout)?;
        let n = gate_layout.shape().elem_count();
        // SAFETY: every element is written by the kernel.
        let dst = unsafe { dev.alloc::<bf16>(n)? };
        let func = dev.get_or_load_custom_func("easel_silu_mul_bf16", MODULE, PTX)?;
        let n_i = n as i64;
        let mut builder = func.builder();
        builder.arg(&g);
        builder.arg(&u);
        builder.arg(&dst);
        builder.arg(&n_i);
        // SAFETY: argument types match the kernel's signature.
        unsafe { builder.launch(grid_for(n, 256)) }.w()?;
        Ok((CudaStorage::wrap_cuda_slice(dst, dev), gate_layout.shape().clone()))
    }
}

/// `silu(gate) · up` for bf16 tensors of one shape.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2_no_bwd(&up.contiguous()?, &SiluMul)
}

struct VisionQkvRope {
    heads: usize,
    head_dim: usize,
    q_scale: f32,
}

impl CustomOp3 for VisionQkvRope {
    fn name(&self) -> &'static str {
        "easel-vision-qkv-rope"
    }
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu_unsupported(self.name())
    }
    fn cuda_fwd(
        &self,
        qkv: &CudaStorage,
        qkv_layout: &Layout,
        cos: &CudaStorage,
        cos_layout: &Layout,
        sin: &CudaStorage,
        sin_layout: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = qkv.device().clone();
        let src = contiguous_slice(qkv, qkv_layout)?;
        let (cos, sin) = (f32_slice(cos, cos_layout)?, f32_slice(sin, sin_layout)?);
        let (n, width) = qkv_layout.shape().dims2()?;
        let (h, d) = (self.heads, self.head_dim);
        if width != 3 * h * d || cos_layout.shape().dims() != [n, d / 2] {
            candle_core::bail!("vision_qkv_rope: qkv {:?}, cos {:?}", qkv_layout.shape(), cos_layout.shape());
        }
        // SAFETY: every element is written by the kernel.
        let dst = unsafe { dev.alloc::<bf16>(3 * h * n * d)? };
        let func = dev.get_or_load_custom_func("easel_vision_qkv_rope_bf16", MODULE, PTX)?;
        let (n_i, h_i, d_i, scale) = (n as i32, h as i32, d as i32, self.q_scale);
        let mut builder = func.builder();
        builder.arg(&src);
        builder.arg(&cos);
        builder.arg(&sin);
        builder.arg(&dst);
        builder.arg(&n_i);
        builder.arg(&h_i);
        builder.arg(&d_i);
        builder.arg(&scale);
        // SAFETY: argument types match the kernel's signature.
        unsafe { builder.launch(grid_for(n * h * d / 2, 256)) }.w()?;
        Ok((CudaStorage::wrap_cuda_slice(dst, dev), Shape::from((3, h, n, d))))
    }
}

/// Splits the vision attention's `qkv [N, 3·H·D]` into `(q, k, v)`, each `[H, N, D]`, with the
/// 2-D rotary applied to q and k in f32 and `q_scale` folded into q.
pub fn vision_qkv_rope(
    qkv: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    heads: usize,
    head_dim: usize,
    q_scale: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = VisionQkvRope { heads, head_dim, q_scale: q_scale as f32 };
    let out = qkv.contiguous()?.apply_op3_no_bwd(&cos.contiguous()?, &sin.contiguous()?, &op)?;
    Ok((out.get(0)?, out.get(1)?, out.get(2)?))
}
