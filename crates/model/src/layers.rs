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
            Self::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?,
            Self::Gelu => xs.gelu_erf(),
            Self::GeluPytorchTanh => xs.gelu(),
            Self::Silu => xs.silu(),
        }
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
        Self { weight, bias, lora: None }
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
            self.weight = (&self.weight + delta)?;
        }
        Ok(())
    }

    /// Loads `{vb}.weight` `[out, in]` and, when `bias`, `{vb}.bias` `[out]`.
    pub fn load(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias { Some(vb.get(out_dim, "bias")?) } else { None };
        Ok(Self::new(weight, bias))
    }

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
        let ys = flat.matmul(&self.weight.t()?)?;
        let ys = match &self.bias {
            Some(bias) => ys.broadcast_add(bias)?,
            None => ys,
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

/// LayerNorm with weight and bias, as `nn.LayerNorm(dim, eps)`.
pub fn layer_norm(dim: usize, eps: f64, vb: VarBuilder) -> Result<candle_nn::LayerNorm> {
    let weight = vb.get(dim, "weight")?;
    let bias = vb.get(dim, "bias")?;
    Ok(candle_nn::LayerNorm::new(weight, bias, eps))
}

/// Qwen2's RMSNorm: normalise in f32, scale by the weight, return the input's dtype.
pub fn rms_norm(dim: usize, eps: f64, vb: VarBuilder) -> Result<candle_nn::RmsNorm> {
    let weight = vb.get(dim, "weight")?;
    Ok(candle_nn::RmsNorm::new(weight, eps))
}

/// Additive attention bias that masks a position (finite, so fully masked rows stay NaN-free).
pub fn mask_value(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65_504.0,
        _ => -1e9,
    }
}
