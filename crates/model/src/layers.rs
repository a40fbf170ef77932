//! Small building blocks shared by the vision tower and the language model.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// The activations Qwen2-VL's configs name (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x · σ(1.702 x)`, the vision tower's default.
    QuickGelu,
    /// Exact (erf) GELU, as `nn.GELU()`.
    Gelu,
    /// tanh-approximated GELU.
    #[serde(alias = "gelu_new")]
    GeluPytorchTanh,
    Silu,
}

impl Module for Activation {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            #[cfg(feature = "cuda")]
            Self::QuickGelu if crate::cuda::applies(xs) => crate::cuda::quick_gelu(xs),
            Self::QuickGelu if crate::cpu::applies(xs) => crate::cpu::quick_gelu(xs),
            Self::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?,
            Self::Gelu => xs.gelu_erf(),
            Self::GeluPytorchTanh => xs.gelu(),
            Self::Silu => xs.silu(),
        }
    }
}

impl Activation {
    /// `act(gate) · up`, the middle of a gated MLP, fused into one pass where a kernel has it.
    pub fn gated(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if *self == Self::Silu && crate::cuda::applies(gate) {
            return crate::cuda::silu_mul(gate, up);
        }
        if *self == Self::Silu && crate::cpu::applies(gate) && crate::cpu::applies(up) {
            return crate::cpu::silu_mul(gate, up);
        }
        self.forward(gate)? * up
    }
}

/// A dense layer, `y = x Wᵀ + b`, whose weight may be replaced by a LoRA-adapted one.
///
/// candle-nn's `Linear` broadcasts a 2-D weight over batched inputs by copying it; this one
/// flattens the leading dimensions instead so one GEMM runs whatever the rank of the input.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    lora: Option<LoraDelta>,
    /// The weight in bf16 or 8 bits (`--weights`), which then runs the layer; `weight` is
    /// left as a shape-only stand-in and must not be read.
    packed: Option<std::sync::Arc<crate::cpu::PackedLinear>>,
}

/// A low-rank update `W + scale · B A` kept apart from the frozen weight.
#[derive(Debug, Clone)]
pub struct LoraDelta {
    /// `[rank, in]`.
    pub a: Tensor,
    /// `[out, rank]`.
    pub b: Tensor,
    /// `alpha / rank`.
    pub scale: f64,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias, lora: None, packed: None }
    }

    /// Holds the weight in `format` from now on (CPU inference; `F32`: in gemm's kernel
    /// panels, where the weight is f32 on the CPU and Easel's kernels are on, else unchanged).
    /// The f32 weight's memory is released once no other tensor shares it.
    pub fn pack(&mut self, format: crate::cpu::WeightFormat) -> Result<()> {
        let panels_apply =
            crate::cpu::enabled() && self.weight.device().is_cpu() && self.weight.dtype() == DType::F32 && !self.weight.track_op();
        if self.packed.is_some() || (format == crate::cpu::WeightFormat::F32 && !panels_apply) {
            return Ok(());
        }
        if !self.weight.device().is_cpu() || self.weight.track_op() {
            candle_core::bail!("{format} weights are for CPU inference");
        }
        let packed = crate::cpu::PackedLinear::pack(&self.weight, self.bias.as_ref(), format)?;
        // A zero-sized stand-in with the weight's shape and dtype, for `dims`/`dtype` callers.
        self.weight = Tensor::zeros((), self.weight.dtype(), self.weight.device())?.broadcast_as(self.weight.shape())?;
        self.packed = Some(std::sync::Arc::new(packed));
        Ok(())
    }

    /// The packed weight, when [`Linear::pack`] made one.
    pub fn packed(&self) -> Option<&crate::cpu::PackedLinear> {
        self.packed.as_deref()
    }

    pub fn lora(&self) -> Option<&LoraDelta> {
        self.lora.as_ref()
    }

    pub fn set_lora(&mut self, lora: Option<LoraDelta>) {
        self.lora = lora;
    }

    /// Folds the LoRA update into the weight (for serving without the extra matmuls).
    pub fn merge_lora(&mut self) -> Result<()> {
        if let Some(lora) = self.lora.take() {
            let delta = (lora.b.matmul(&lora.a)? * lora.scale)?.to_dtype(self.weight.dtype())?;
            match self.packed.take() {
                Some(packed) => {
                    self.weight = (packed.dequantize(self.weight.device())? + delta)?;
                    self.pack(packed.format())?;
                }
                None => self.weight = crate::cpu::inference_layout((&self.weight + delta)?)?,
            }
        }
        Ok(())
    }

    /// Loads `{vb}.weight` `[out, in]` and, when `bias`, `{vb}.bias` `[out]`.
    pub fn load(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        // f32 on the CPU: stored transposed for Easel's CPU kernels (same tensor to every caller).
        let weight = crate::cpu::inference_layout(vb.get((out_dim, in_dim), "weight")?)?;
        let bias = if bias { Some(vb.get(out_dim, "bias")?) } else { None };
        Ok(Self::new(weight, bias))
    }

    /// The f32 (or `--dtype`) weight `[out, in]`; for a packed layer a shape-only stand-in:
    /// read its values through [`Linear::packed`].
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims();
        let in_dim = dims[dims.len() - 1];
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let flat = xs.reshape((rows, in_dim))?;
        let ys = if let Some(packed) = &self.packed {
            packed.forward(&flat)?
        } else if crate::cpu::linear_applies(&flat, &self.weight) {
            crate::cpu::linear(&flat, &self.weight, self.bias.as_ref())?
        } else {
            let ys = if crate::cpu::skinny_applies(&flat, &self.weight, rows) {
                crate::cpu::skinny_matmul(&flat, &self.weight)?
            } else {
                flat.matmul(&self.weight.t()?)?
            };
            match &self.bias {
                Some(bias) => ys.broadcast_add(bias)?,
                None => ys,
            }
        };
        let ys = match &self.lora {
            Some(lora) => {
                let low = flat.to_dtype(lora.a.dtype())?.matmul(&lora.a.t()?)?;
                let update = (low.matmul(&lora.b.t()?)? * lora.scale)?;
                (ys + update.to_dtype(flat.dtype())?)?
            }
            None => ys,
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank ≥ 1") = self.out_dim();
        ys.reshape(out_dims)
    }
}

/// Which implementation of normalisation, softmax and rotary embeddings to run: candle's fused
/// kernels (fast, but without gradients) or compositions of basic ops that autograd can
/// differentiate (training).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    #[default]
    Fused,
    Differentiable,
}

/// LayerNorm with weight and bias, as `nn.LayerNorm(dim, eps)`.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
    pub kernels: Kernels,
}

impl LayerNorm {
    pub fn load(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get(dim, "weight")?, bias: vb.get(dim, "bias")?, eps, kernels: Kernels::Fused })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self.kernels {
            Kernels::Fused => candle_nn::ops::layer_norm(&xs.contiguous()?, &self.weight, &self.bias, self.eps as f32),
            Kernels::Differentiable => {
                candle_nn::ops::layer_norm_slow(xs, &self.weight, &self.bias, self.eps as f32)
            }
        }
    }
}

/// Qwen2's RMSNorm: normalise in f32, scale by the weight, return the input's dtype.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
    pub kernels: Kernels,
}

impl RmsNorm {
    pub fn load(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get(dim, "weight")?, eps, kernels: Kernels::Fused })
    }
}

impl Module for RmsNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self.kernels {
            Kernels::Fused => candle_nn::ops::rms_norm(&xs.contiguous()?, &self.weight, self.eps as f32),
            Kernels::Differentiable => candle_nn::ops::rms_norm_slow(xs, &self.weight, self.eps as f32),
        }
    }
}

/// Softmax over the last axis.
pub fn softmax_last_dim(xs: &Tensor, kernels: Kernels) -> Result<Tensor> {
    match kernels {
        #[cfg(feature = "cuda")]
        Kernels::Fused if crate::cuda::applies(xs) => crate::cuda::softmax_last_dim(xs),
        Kernels::Fused if crate::cpu::applies(xs) => crate::cpu::softmax_last_dim(xs),
        Kernels::Fused => candle_nn::ops::softmax_last_dim(xs),
        Kernels::Differentiable => candle_nn::ops::softmax(xs, candle_core::D::Minus1),
    }
}

/// Rotary embedding of `xs [b, h, t, d]` with half-width tables `[t, d/2]` or `[b, t, d/2]`
/// (the rotate-half layout HF uses).
pub fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor, kernels: Kernels) -> Result<Tensor> {
    match kernels {
        Kernels::Fused => candle_nn::rotary_emb::rope(&xs.contiguous()?, cos, sin),
        Kernels::Differentiable => {
            let full = |t: &Tensor| -> Result<Tensor> {
                let t = Tensor::cat(&[t, t], candle_core::D::Minus1)?;
                match t.rank() {
                    2 => t.unsqueeze(0)?.unsqueeze(0),
                    _ => t.unsqueeze(1),
                }
            };
            let half = xs.dim(candle_core::D::Minus1)? / 2;
            let x1 = xs.narrow(candle_core::D::Minus1, 0, half)?;
            let x2 = xs.narrow(candle_core::D::Minus1, half, half)?;
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], candle_core::D::Minus1)?;
            xs.broadcast_mul(&full(cos)?)? + rotated.broadcast_mul(&full(sin)?)?
        }
    }
}

/// Additive attention bias that masks a position (finite, so fully masked rows stay NaN-free).
pub fn mask_value(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65_504.0,
        _ => -1e9,
    }
}
