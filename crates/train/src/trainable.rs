//! The multi-task model with its trainable parts: the regression head (always) and LoRA
//! adapters on chosen projections, over a frozen Qwen2-VL; and the loss
//! `w_reg · (MSE or Huber on [0, 1] scores, absent rubric scores masked) + w_lm · token
//! cross-entropy on the critique (prompt masked)`.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use easel_model::head::{HeadConfig, RegressionHead};
use easel_model::layers::{Kernels, LoraDelta, mask_value};
use easel_model::lora::{LoraConfig, module_kind, projections};
use easel_model::rope::mrope_positions;
use easel_model::{Grid, Qwen2VlModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The projections LoRA can wrap: the language model's attention and MLP, and (with
/// `include_vision`) the vision tower's.
pub const LM_TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
pub const VISION_TARGETS: [&str; 4] = ["qkv", "proj", "fc1", "fc2"];

/// Which projections get adapters, of what rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSpec {
    pub rank: usize,
    pub alpha: f64,
    /// Module names (`q_proj`, …; `qkv`, `proj`, `fc1`, `fc2` in the vision tower).
    pub targets: Vec<String>,
    /// Adapt the vision tower's projections named in `targets` too.
    pub include_vision: bool,
}

impl LoraSpec {
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(TrainError::Config("LoRA rank must be positive".into()));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(TrainError::Config(format!("LoRA alpha must be positive, got {}", self.alpha)));
        }
        for t in &self.targets {
            if !LM_TARGETS.contains(&t.as_str()) && !VISION_TARGETS.contains(&t.as_str()) {
                return Err(TrainError::Config(format!(
                    "unknown LoRA target {t:?}; language model: {LM_TARGETS:?}, vision tower: {VISION_TARGETS:?}"
                )));
            }
        }
        Ok(())
    }
}

/// How the regression error is measured (in `[0, 1]` score space).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RegressionLoss {
    Mse,
    /// Quadratic within `delta` of the target, linear beyond.
    Huber { delta: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossWeights {
    pub regression: f64,
    pub lm: f64,
    pub kind: RegressionLoss,
}

/// Encodes a critique's training sequence once the scores to show in the prompt are known:
/// returns `(token ids, index of the first critique token)`. It receives the head's current
/// prediction (1–100, overall first) so that rubric scores a row lacks are shown as the head
/// predicts them, as at inference.
pub type EncodeFn<'a> = Box<dyn Fn(&[f32; 6]) -> Result<(Vec<u32>, usize)> + 'a>;

/// One critique to learn: which image of the batch it is about, and how to encode it.
pub struct LmItem<'a> {
    pub image: usize,
    pub encode: EncodeFn<'a>,
}

/// One micro-batch, ready for the model.
pub struct Batch<'a> {
    /// `[Σ patches, patch_len]`.
    pub pixel_values: Tensor,
    pub grids: Vec<Grid>,
    /// `[n, 6]` targets scaled to `[0, 1]` (0 where absent).
    pub targets: Tensor,
    /// `[n, 6]`: 1 where a target is present.
    pub target_mask: Tensor,
    pub lm: Vec<LmItem<'a>>,
}

/// The loss of a batch and its parts (as plain numbers, for logging).
pub struct LossParts {
    pub total: Tensor,
    pub regression: Option<f64>,
    pub lm: Option<f64>,
    pub lm_tokens: usize,
    /// Predicted scores (1–100), `[n][6]`.
    pub predictions: Vec<[f32; 6]>,
}

/// A trained low-rank pair and the module it adapts.
#[derive(Debug, Clone)]
pub struct LoraParam {
    pub module: String,
    pub a: Var,
    pub b: Var,
}

pub struct Trainable {
    pub model: Qwen2VlModel,
    pub head: RegressionHead,
    head_vars: VarMap,
    pub lora: Vec<LoraParam>,
    pub lora_config: Option<LoraConfig>,
    train_vision: bool,
}

impl Trainable {
    /// Wraps `model` (frozen) with a head initialised from `head_init` (tensor names as in
    /// `head.safetensors`) and, with `lora`, fresh adapters: A uniform in ±1/√in (PEFT's
    /// Kaiming init), B zero, so training starts from the base model's function.
    pub fn new(
        mut model: Qwen2VlModel,
        head_config: &HeadConfig,
        head_init: HashMap<String, Tensor>,
        lora: Option<&LoraSpec>,
        seed: u64,
    ) -> Result<Self> {
        let device = model.device().clone();
        head_config.validate(model.config().text.hidden_size)?;
        let head_vars = VarMap::new();
        {
            let mut data = head_vars.data().lock().expect("a fresh lock");
            for (name, tensor) in head_init {
                let tensor = tensor.to_dtype(DType::F32)?.to_device(&device)?;
                data.insert(name, Var::from_tensor(&tensor)?);
            }
        }
        let head = RegressionHead::new(head_config, VarBuilder::from_varmap(&head_vars, DType::F32, &device))?;
        if head_vars.all_vars().len() != 6 {
            return Err(TrainError::Config("the head's initial weights are incomplete".into()));
        }

        model.set_kernels(Kernels::Differentiable);
        let mut params = Vec::new();
        let mut lora_config = None;
        let train_vision = lora.is_some_and(|l| l.include_vision);
        if let Some(spec) = lora {
            spec.validate()?;
            let config = LoraConfig::new(spec.rank, spec.alpha, spec.targets.clone(), spec.include_vision);
            let scale = config.scale();
            let mut rng = StdRng::seed_from_u64(seed ^ 0x4c6f_5241);
            for (module, linear) in projections(&mut model, spec.include_vision) {
                if !spec.targets.iter().any(|t| t == module_kind(&module)) {
                    continue;
                }
                let (out_dim, in_dim) = linear.weight().dims2()?;
                let bound = 1.0 / (in_dim as f32).sqrt();
                let a: Vec<f32> = (0..spec.rank * in_dim).map(|_| rng.random_range(-bound..bound)).collect();
                let a = Var::from_tensor(&Tensor::from_vec(a, (spec.rank, in_dim), &device)?)?;
                let b = Var::zeros((out_dim, spec.rank), DType::F32, &device)?;
                linear.set_lora(Some(LoraDelta { a: a.as_tensor().clone(), b: b.as_tensor().clone(), scale }));
                params.push(LoraParam { module, a, b });
            }
            if params.is_empty() {
                return Err(TrainError::Config(format!("the LoRA targets {:?} match no projection", spec.targets)));
            }
            lora_config = Some(config);
        }
        if !train_vision {
            // Frozen vision tower: no gradients needed there, so keep its fast kernels.
            model.vision.set_kernels(Kernels::Fused);
        }
        Ok(Self { model, head, head_vars, lora: params, lora_config, train_vision })
    }

    pub fn device(&self) -> Device {
        self.model.device().clone()
    }

    /// Every trainable tensor by a stable name: `head/<tensor>` then `lora/<module>/{A,B}`.
    pub fn params(&self) -> Vec<(String, Var)> {
        let data = self.head_vars.data().lock().expect("not poisoned");
        let mut head: Vec<(String, Var)> = data.iter().map(|(k, v)| (format!("head/{k}"), v.clone())).collect();
        head.sort_by(|a, b| a.0.cmp(&b.0));
        for p in &self.lora {
            head.push((format!("lora/{}/A", p.module), p.a.clone()));
            head.push((format!("lora/{}/B", p.module), p.b.clone()));
        }
        head
    }

    /// The head's tensors, named as in `head.safetensors`.
    pub fn head_tensors(&self) -> HashMap<String, Tensor> {
        let data = self.head_vars.data().lock().expect("not poisoned");
        data.iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect()
    }

    /// The adapter's `(module, A, B)` triples for `LoraAdapter::save`.
    pub fn lora_weights(&self) -> Vec<(String, Tensor, Tensor)> {
        self.lora.iter().map(|p| (p.module.clone(), p.a.as_tensor().detach(), p.b.as_tensor().detach())).collect()
    }

    /// Regression loss of the head on pooled features `[n, hidden]`, with its predictions.
    pub fn regression_loss(
        &self,
        pooled: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        kind: RegressionLoss,
    ) -> Result<(Tensor, Vec<[f32; 6]>)> {
        let predicted = candle_nn::ops::sigmoid(&self.head.forward_raw(pooled)?)?;
        let diff = ((&predicted - targets)? * mask)?;
        let per_value = match kind {
            RegressionLoss::Mse => diff.sqr()?,
            RegressionLoss::Huber { delta } => {
                // 0.5·d² for |d| ≤ δ, δ·(|d| − 0.5·δ) beyond; as min/max so it stays differentiable.
                let abs = diff.abs()?;
                let quadratic = abs.clamp(0.0, delta)?;
                let linear = (&abs - &quadratic)?;
                ((quadratic.sqr()? * 0.5)? + (linear * delta)?)?
            }
        };
        let count = mask.sum_all()?.to_scalar::<f32>()?.max(1.0);
        let loss = (per_value.sum_all()? / f64::from(count))?;
        let [lo, hi] = self.head.config().score_range;
        let rows = predicted.to_vec2::<f32>()?;
        let predictions = rows
            .iter()
            .map(|r| std::array::from_fn(|i| lo + (hi - lo) * r[i]))
            .collect();
        Ok((loss, predictions))
    }

    /// The multi-task loss of a batch.
    pub fn loss(&self, batch: &Batch, weights: &LossWeights) -> Result<LossParts> {
        let model = &self.model;
        let merged = model.vision.forward(&batch.pixel_values, &batch.grids)?;
        let merged = if self.train_vision { merged } else { merged.detach() };
        let pooled = model.vision.pool(&merged, &batch.grids)?;
        let (reg, predictions) = self.regression_loss(&pooled, &batch.targets, &batch.target_mask, weights.kind)?;
        let mut total = (&reg * weights.regression)?;
        let regression = Some(f64::from(reg.to_scalar::<f32>()?));

        let mut lm = None;
        let mut lm_tokens = 0;
        if weights.lm > 0.0 && !batch.lm.is_empty() {
            let (loss, tokens) = self.lm_loss(&merged, &batch.grids, &batch.lm, &predictions)?;
            lm = Some(f64::from(loss.to_scalar::<f32>()?));
            lm_tokens = tokens;
            total = (total + (loss * weights.lm)?)?;
        }
        Ok(LossParts { total, regression, lm, lm_tokens, predictions })
    }

    /// Mean token cross-entropy of the critiques, teacher-forced, prompt tokens masked.
    fn lm_loss(
        &self,
        merged: &Tensor,
        grids: &[Grid],
        items: &[LmItem],
        predictions: &[[f32; 6]],
    ) -> Result<(Tensor, usize)> {
        let model = &self.model;
        let cfg = model.config();
        let merge = cfg.vision.spatial_merge_size;
        let device = model.device();
        let mut starts = Vec::with_capacity(grids.len());
        let mut offset = 0;
        for g in grids {
            starts.push(offset);
            offset += g.num_tokens(merge);
        }

        let mut sequences = Vec::with_capacity(items.len());
        let mut image_rows = Vec::with_capacity(items.len());
        for item in items {
            let (ids, target_start) = (item.encode)(&predictions[item.image])?;
            if target_start == 0 || target_start >= ids.len() {
                return Err(TrainError::Config(format!(
                    "a critique sequence of {} tokens has its target at {target_start}",
                    ids.len()
                )));
            }
            let grid = grids[item.image];
            image_rows.push(merged.narrow(0, starts[item.image], grid.num_tokens(merge))?);
            sequences.push((ids, target_start, grid));
        }
        let len = sequences.iter().map(|(ids, _, _)| ids.len()).max().unwrap_or(0);
        let pad = cfg.bos_token_id.unwrap_or(0);
        let mut padded = Vec::with_capacity(sequences.len());
        let mut positions = Vec::with_capacity(sequences.len());
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for (b, (ids, target_start, grid)) in sequences.iter().enumerate() {
            let pos = mrope_positions(ids, cfg.image_token_id, std::slice::from_ref(grid), merge)
                .map_err(TrainError::Config)?;
            // Right padding: causal attention keeps real tokens from seeing the pads, whose
            // outputs are never read.
            let extra = len - ids.len();
            positions.push(std::array::from_fn(|axis| {
                let mut p = pos.ids[axis].clone();
                p.extend((0..extra as i64).map(|k| pos.next_position + k));
                p
            }));
            padded.push(ids.iter().copied().chain(std::iter::repeat_n(pad, extra)).collect::<Vec<u32>>());
            // Position p predicts token p + 1.
            for p in (*target_start - 1)..(ids.len() - 1) {
                rows.push((b * len + p) as u32);
                labels.push(ids[p + 1]);
            }
        }
        let image_embeds = Tensor::cat(&image_rows, 0)?;
        let embeds = model.embed_with_images(&padded, Some(&image_embeds))?;
        let rope = model.text.rope(&positions)?;
        let mask = causal_mask(padded.len(), len, model.dtype(), device)?;
        let hidden = model.text.forward_embeds(&embeds, &rope, Some(&mask), None, None)?;
        let hidden = hidden.reshape((padded.len() * len, cfg.text.hidden_size))?;
        let picked = hidden.index_select(&Tensor::from_vec(rows, labels.len(), device)?, 0)?;
        let logits = model.lm_head().forward(&picked)?.to_dtype(DType::F32)?;
        let tokens = labels.len();
        let labels = Tensor::from_vec(labels, tokens, device)?;
        Ok((candle_nn::loss::cross_entropy(&logits, &labels)?, tokens))
    }

    /// Scores of a batch's images with the current head (no critique).
    pub fn predict(&self, pixel_values: &Tensor, grids: &[Grid]) -> Result<Vec<[f32; 6]>> {
        let merged = self.model.vision.forward(pixel_values, grids)?.detach();
        let pooled = self.model.vision.pool(&merged, grids)?;
        let rows = self.head.forward(&pooled)?.to_vec2::<f32>()?;
        Ok(rows.iter().map(|r| std::array::from_fn(|i| r[i])).collect())
    }
}

/// Additive causal mask `[b, 1, len, len]`.
pub fn causal_mask(batch: usize, len: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let neg = mask_value(dtype) as f32;
    let one: Vec<f32> = (0..len).flat_map(|i| (0..len).map(move |j| if j <= i { 0.0 } else { neg })).collect();
    let mask = Tensor::from_vec(one, (1, 1, len, len), device)?.to_dtype(dtype)?;
    Ok(mask.broadcast_as((batch, 1, len, len))?.contiguous()?)
}
