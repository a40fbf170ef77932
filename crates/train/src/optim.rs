//! AdamW with a learning-rate schedule, gradient accumulation and clipping, whose whole state
//! (parameters, first and second moments, step) can be written to and read from safetensors.
//!
//! Why not `candle_nn::AdamW`: its moments are private, so a run interrupted after hours could
//! only restart with fresh moments and a reset bias correction, which changes the trajectory.
//! This one is the same update (decoupled weight decay, bias-corrected moments) with its state
//! exposed, so a resumed run continues bit for bit.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// How the learning rate decays after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    Constant,
    Linear,
    Cosine,
}

impl std::str::FromStr for ScheduleKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "constant" => Ok(Self::Constant),
            "linear" => Ok(Self::Linear),
            "cosine" => Ok(Self::Cosine),
            other => Err(format!("unknown schedule {other:?}: use constant, linear or cosine")),
        }
    }
}

/// Linear warm-up to `peak`, then constant, linear or cosine decay to 0 at `total_steps`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub peak: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
    pub kind: ScheduleKind,
}

impl LrSchedule {
    /// The learning rate of optimiser step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        match self.kind {
            ScheduleKind::Constant => self.peak,
            ScheduleKind::Linear => self.peak * (1.0 - progress),
            ScheduleKind::Cosine => self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay, applied to matrices only (not to biases or norm weights).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    pub max_grad_norm: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, max_grad_norm: 1.0 }
    }
}

/// Gradients summed over micro-batches, one slot per parameter.
pub struct GradAccumulator {
    sums: Vec<Option<Tensor>>,
    pub micro_batches: usize,
}

impl GradAccumulator {
    pub fn new(params: usize) -> Self {
        Self { sums: vec![None; params], micro_batches: 0 }
    }

    /// Adds `scale ·` each parameter's gradient from `grads`.
    pub fn add(&mut self, grads: &GradStore, params: &[(String, Var)], scale: f64) -> Result<()> {
        for (slot, (_, var)) in self.sums.iter_mut().zip(params) {
            if let Some(g) = grads.get(var.as_tensor()) {
                let g = (g.to_dtype(DType::F32)? * scale)?;
                *slot = Some(match slot.take() {
                    Some(sum) => (sum + g)?,
                    None => g,
                });
            }
        }
        self.micro_batches += 1;
        Ok(())
    }

    pub fn take(&mut self) -> Vec<Option<Tensor>> {
        self.micro_batches = 0;
        let empty = vec![None; self.sums.len()];
        std::mem::replace(&mut self.sums, empty)
    }
}

pub struct AdamW {
    params: Vec<(String, Var)>,
    /// Each parameter's peak learning rate (the schedule scales all of them).
    peak_lrs: Vec<f64>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: usize,
    config: AdamWConfig,
}

impl AdamW {
    /// `params` with their peak learning rates (e.g. a higher one for the head than for LoRA).
    pub fn new(params: Vec<(String, Var, f64)>, config: AdamWConfig) -> Result<Self> {
        let m = params.iter().map(|(_, p, _)| p.as_tensor().zeros_like()).collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        let peak_lrs = params.iter().map(|(_, _, lr)| *lr).collect();
        let params = params.into_iter().map(|(name, var, _)| (name, var)).collect();
        Ok(Self { params, peak_lrs, m, v, step: 0, config })
    }

    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// One update with each parameter's peak learning rate times `factor` (the schedule's
    /// value); returns the gradient norm before clipping.
    pub fn step(&mut self, grads: Vec<Option<Tensor>>, factor: f64) -> Result<f64> {
        let c = self.config;
        let mut sq = 0f64;
        for g in grads.iter().flatten() {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
        let norm = sq.sqrt();
        let clip = if c.max_grad_norm > 0.0 && norm > c.max_grad_norm { c.max_grad_norm / (norm + 1e-6) } else { 1.0 };
        self.step += 1;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        for (i, ((_, var), g)) in self.params.iter().zip(grads).enumerate() {
            let lr = self.peak_lrs[i] * factor;
            // A parameter the loss did not reach this step (e.g. LoRA when no row had a
            // critique) still decays its moments, as torch's AdamW does with a zero gradient.
            let g = match g {
                Some(g) => (g * clip)?,
                None => var.as_tensor().zeros_like()?,
            };
            let m = ((&self.m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            let theta = var.as_tensor();
            let decayed = if c.weight_decay > 0.0 && theta.rank() >= 2 {
                (theta * (1.0 - lr * c.weight_decay))?
            } else {
                theta.clone()
            };
            var.set(&(decayed - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(norm)
    }

    /// Parameters and moments as named tensors: `param/<name>`, `adam_m/<name>`, `adam_v/<name>`.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, (name, var)) in self.params.iter().enumerate() {
            out.insert(format!("param/{name}"), var.as_tensor().detach());
            out.insert(format!("adam_m/{name}"), self.m[i].clone());
            out.insert(format!("adam_v/{name}"), self.v[i].clone());
        }
        Ok(out)
    }

    /// Restores what [`Self::state_tensors`] wrote, after `step` optimiser steps.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        let get = |key: String, like: &Tensor| -> Result<Tensor> {
            let t = tensors.get(&key).ok_or_else(|| TrainError::Resume(format!("the saved state lacks {key}")))?;
            if t.dims() != like.dims() {
                return Err(TrainError::Resume(format!("{key} is {:?}, the run expects {:?}", t.dims(), like.dims())));
            }
            Ok(t.to_dtype(like.dtype())?.to_device(like.device())?)
        };
        for (i, (name, var)) in self.params.iter().enumerate() {
            let value = get(format!("param/{name}"), var.as_tensor())?;
            var.set(&value)?;
            self.m[i] = get(format!("adam_m/{name}"), var.as_tensor())?;
            self.v[i] = get(format!("adam_v/{name}"), var.as_tensor())?;
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_then_decays() {
        let s = LrSchedule { peak: 1.0, warmup_steps: 4, total_steps: 14, kind: ScheduleKind::Cosine };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert!((s.lr(4) - 1.0).abs() < 1e-12);
        assert!((s.lr(9) - 0.5).abs() < 1e-12);
        assert!(s.lr(14).abs() < 1e-12);
        let l = LrSchedule { kind: ScheduleKind::Linear, ..s };
        assert!((l.lr(9) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn matches_candle_adamw_on_a_quadratic() -> Result<()> {
        // Minimise |w − 3|² with both optimisers: the trajectories agree.
        use candle_nn::Optimizer;
        let dev = Device::Cpu;
        let ours = Var::new(&[0f32, 1.0], &dev)?;
        let theirs = Var::new(&[0f32, 1.0], &dev)?;
        let config = AdamWConfig { weight_decay: 0.0, max_grad_norm: 0.0, ..AdamWConfig::default() };
        let mut opt = AdamW::new(vec![("w".into(), ours.clone(), 0.1)], config)?;
        let mut reference = candle_nn::AdamW::new(
            vec![theirs.clone()],
            candle_nn::ParamsAdamW { lr: 0.1, weight_decay: 0.0, ..Default::default() },
        )?;
        for _ in 0..20 {
            let loss = (ours.as_tensor() - 3.0)?.sqr()?.sum_all()?;
            let grads = loss.backward()?;
            opt.step(vec![grads.get(ours.as_tensor()).cloned()], 1.0)?;
            let loss = (theirs.as_tensor() - 3.0)?.sqr()?.sum_all()?;
            reference.backward_step(&loss)?;
        }
        let a = ours.as_tensor().to_vec1::<f32>()?;
        let b = theirs.as_tensor().to_vec1::<f32>()?;
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
        Ok(())
    }
}
