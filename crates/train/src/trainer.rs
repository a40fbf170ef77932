//! The training loop: epochs of shuffled micro-batches with gradient accumulation, AdamW with
//! warm-up and decay, validation after every epoch, the best checkpoint kept, and a resume
//! state (trainables, optimiser moments, step, position in the epoch) saved along the way.
//!
//! Everything random is derived from the seed: the split, the head's and LoRA's initial
//! weights, and each epoch's data order (from `(seed, epoch)`), so the resume state needs no
//! RNG snapshot and a resumed run retraces an uninterrupted one.
//!
//! Output folder `OUT/`: the best checkpoint itself (base files linked, `easel.json`,
//! `head.safetensors`, `adapter/`), `run.json` (the configuration), `metrics.json` (per-epoch
//! history), `split.json`, and `training/` (the resume state).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use easel_model::checkpoint::CheckpointFiles;
use easel_model::head::HeadConfig;
use easel_model::manifest::{DEFAULT_MAX_PIXELS, MANIFEST_FILE, Manifest};
use easel_model::prompt::PromptSpec;
use easel_model::{ImageProcessor, Qwen2Vl};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::batch::{PromptEncoder, build_batch, prepare_images, targets};
use crate::data::{Dataset, Example, ImageSource};
use crate::error::{Result, TrainError};
use crate::features::{model_fingerprint, pooled_features};
use crate::metrics::{mae, pearson};
use crate::optim::{AdamW, AdamWConfig, GradAccumulator, LrSchedule, ScheduleKind};
use crate::output::{link_base_files, write_trained};
use crate::split::{Split, SplitSpec, split};
use crate::trainable::{LM_TARGETS, LoraSpec, LossWeights, RegressionLoss, Trainable};

const STATE_DIR: &str = "training";
const STATE_FILE: &str = "state.json";
const TRAINABLES_FILE: &str = "trainables.safetensors";

/// Everything that defines a run (saved as `run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Base checkpoint: an HF Qwen2-VL folder, with or without `easel.json`.
    pub base: PathBuf,
    /// Data manifest (JSONL or CSV).
    pub data: PathBuf,
    /// Output folder: becomes the best checkpoint.
    pub out: PathBuf,
    pub split: SplitSpec,
    pub seed: u64,
    pub epochs: usize,
    /// Paintings per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub grad_accum: usize,
    /// Peak learning rate of the LoRA adapters.
    pub lr: f64,
    /// Peak learning rate of the regression head.
    pub head_lr: f64,
    pub warmup_steps: usize,
    pub schedule: ScheduleKind,
    pub adam: AdamWConfig,
    pub loss: LossWeights,
    /// `None`: no adapters (head only, through the full model unless `head_only`).
    pub lora: Option<LoraSpec>,
    /// Train the head alone on cached pooled features (no LoRA, no LM loss).
    pub head_only: bool,
    /// Hidden width of the head (default: the base's `easel.json`, else min(1024, hidden)).
    pub head_hidden: Option<usize>,
    /// Where the head-only path keeps its features (default `OUT/training/`).
    pub feature_cache: Option<PathBuf>,
    /// Pixel cap per painting (default: the base's `easel.json`, else 448×448).
    pub max_pixels: Option<usize>,
    pub max_critique_tokens: usize,
    pub model_version: Option<String>,
    /// Stop after this many optimiser steps in all (the run can be resumed later).
    pub max_steps: Option<usize>,
    /// Save the resume state every this many optimiser steps (0: at epoch ends only).
    pub save_every: usize,
}

impl TrainConfig {
    /// The defaults of `easel train`: 80/20 split, 3 epochs, batch 4, LoRA rank 16 on every
    /// attention/MLP projection of the language model, MSE + LM loss with equal weights.
    pub fn new(base: impl Into<PathBuf>, data: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            base: base.into(),
            data: data.into(),
            out: out.into(),
            split: SplitSpec::Holdout { val_fraction: 0.2 },
            seed: 0,
            epochs: 3,
            batch_size: 4,
            grad_accum: 1,
            lr: 1e-4,
            head_lr: 1e-3,
            warmup_steps: 10,
            schedule: ScheduleKind::Cosine,
            adam: AdamWConfig::default(),
            loss: LossWeights { regression: 1.0, lm: 1.0, kind: RegressionLoss::Mse },
            lora: Some(LoraSpec {
                rank: 16,
                alpha: 32.0,
                targets: LM_TARGETS.iter().map(|s| s.to_string()).collect(),
                include_vision: false,
            }),
            head_only: false,
            head_hidden: None,
            feature_cache: None,
            max_pixels: None,
            max_critique_tokens: 512,
            model_version: None,
            max_steps: None,
            save_every: 50,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.split.validate().map_err(TrainError::Config)?;
        if self.epochs == 0 || self.batch_size == 0 || self.grad_accum == 0 {
            return Err(TrainError::Config("epochs, batch size and gradient accumulation must be positive".into()));
        }
        for (name, lr) in [("lr", self.lr), ("head lr", self.head_lr)] {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(TrainError::Config(format!("{name} must be positive, got {lr}")));
            }
        }
        if self.head_only && self.lora.is_some() {
            return Err(TrainError::Config("--head-only trains the head alone: drop the LoRA options".into()));
        }
        if let Some(lora) = &self.lora {
            lora.validate()?;
        }
        if let RegressionLoss::Huber { delta } = self.loss.kind
            && (delta.is_nan() || delta <= 0.0)
        {
            return Err(TrainError::Config(format!("the Huber delta must be positive, got {delta}")));
        }
        if !(self.loss.regression >= 0.0 && self.loss.lm >= 0.0) || self.loss.regression + self.loss.lm == 0.0 {
            return Err(TrainError::Config("loss weights must be ≥ 0 and not both 0".into()));
        }
        Ok(())
    }

    /// The fields a resumed run may change.
    fn comparable(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("serialises");
        let map = v.as_object_mut().expect("an object");
        for key in ["max_steps", "save_every", "feature_cache"] {
            map.remove(key);
        }
        v
    }
}

/// Validation results of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValMetrics {
    pub rows: usize,
    /// `w_reg · regression + w_lm · lm`: what picks the best epoch.
    pub loss: f64,
    pub regression: f64,
    pub lm: Option<f64>,
    pub pearson_overall: f64,
    pub mae_overall: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    pub steps: usize,
    pub train_loss: f64,
    pub train_regression: f64,
    pub train_lm: Option<f64>,
    pub val: Option<ValMetrics>,
    pub best: bool,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    config: TrainConfig,
    /// The epoch being run (0-based).
    epoch: usize,
    /// The next micro-batch within that epoch.
    micro_batch: usize,
    steps: usize,
    best_val_loss: Option<f64>,
    /// 1-based.
    best_epoch: Option<usize>,
    history: Vec<EpochMetrics>,
    /// Running sums of the current epoch's training losses, so a resumed epoch reports the
    /// same mean: `(Σ total, Σ regression, Σ lm, lm batches, micro-batches)`.
    epoch_sums: (f64, f64, f64, usize, usize),
    finished: bool,
}

/// What a run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub steps: usize,
    pub epochs_completed: usize,
    /// Stopped by `max_steps`; resume to continue.
    pub interrupted: bool,
    /// 1-based.
    pub best_epoch: Option<usize>,
    pub best_val_loss: Option<f64>,
    pub history: Vec<EpochMetrics>,
    pub train_rows: usize,
    pub val_rows: usize,
    pub checkpoint: PathBuf,
}

/// Where the loop reports; the CLI draws progress bars from it.
pub trait Progress {
    /// A new phase (`"features"`, `"epoch 1/3"`, `"validation"`) with `total` units.
    fn phase(&mut self, _name: &str, _total: u64) {}
    fn advance(&mut self, _units: u64, _status: &str) {}
    fn epoch_done(&mut self, _metrics: &EpochMetrics) {}
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}

/// Where the trainable model comes from and what the run needs besides.
struct Setup {
    trainable: Trainable,
    processor: ImageProcessor,
    encoder: PromptEncoder,
    manifest: Manifest,
}

fn load_setup(config: &TrainConfig, device: &Device, dtype: DType) -> Result<Setup> {
    let base = &config.base;
    let base_manifest = if base.join(MANIFEST_FILE).is_file() { Some(Manifest::read(base)?) } else { None };
    if base_manifest.as_ref().is_some_and(|m| m.lora.is_some()) {
        return Err(TrainError::Config(format!(
            "{} carries a LoRA adapter: fold it in first with `easel model merge`",
            base.display()
        )));
    }
    let files = CheckpointFiles::locate(base)?;
    let model_config = files.read_config()?;
    let mut processor = files.read_processor_config()?;
    if let Some(min) = base_manifest.as_ref().and_then(|m| m.processor.min_pixels) {
        processor.min_pixels = min;
    }
    processor.max_pixels = config
        .max_pixels
        .or(base_manifest.as_ref().and_then(|m| m.processor.max_pixels))
        .unwrap_or(DEFAULT_MAX_PIXELS);
    processor.validate().map_err(TrainError::Config)?;
    let Qwen2Vl { model, tokenizer, template, processor: image_processor, .. } =
        Qwen2Vl::load(base, device, dtype, Some(processor.clone()))?;

    let hidden = model_config.text.hidden_size;
    let head_hidden = config
        .head_hidden
        .or(base_manifest.as_ref().and_then(|m| m.head.as_ref()).map(|h| h.config.hidden_dim))
        .unwrap_or(1024.min(hidden));
    let head_config = HeadConfig::new(hidden, head_hidden);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let head_init = easel_model::init::random_head_tensors(&head_config, &mut rng)?;
    let trainable = Trainable::new(model, &head_config, head_init, config.lora.as_ref(), config.seed)?;

    let prompt = base_manifest.as_ref().map(|m| m.prompt.clone()).unwrap_or_else(PromptSpec::default);
    let encoder = PromptEncoder::new(tokenizer, template, prompt, &model_config, config.max_critique_tokens)?;

    let version = config.model_version.clone().unwrap_or_else(|| {
        let stem = base.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "base".into());
        format!("easel-finetuned-{stem}-seed{}", config.seed)
    });
    let mut manifest = match &base_manifest {
        Some(m) => m.clone(),
        None => Manifest::new(version.clone(), base.display().to_string(), head_config.clone()),
    };
    manifest.model_version = version;
    if let Some(m) = &base_manifest {
        manifest.base_model = if m.base_model.is_empty() { m.model_version.clone() } else { m.base_model.clone() };
    }
    // A trained head is what this checkpoint scores with.
    manifest.head = Some(easel_model::manifest::HeadEntry { file: "head.safetensors".into(), config: head_config });
    manifest.scoring = Some(easel_model::ScoringMode::Head);
    manifest.calibration = None;
    manifest.processor.max_pixels = Some(processor.max_pixels);
    Ok(Setup { trainable, processor: image_processor, encoder, manifest })
}

fn epoch_order(train: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = train.to_vec();
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(epoch as u64 + 1));
    order.shuffle(&mut rng);
    order
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serialises");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n").map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

fn save_state(out: &Path, state: &RunState, optimizer: &AdamW) -> Result<()> {
    let dir = out.join(STATE_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    let tensors = optimizer.state_tensors()?;
    let tmp = dir.join("trainables.safetensors.tmp");
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, dir.join(TRAINABLES_FILE)).map_err(|e| TrainError::io(&dir, e))?;
    write_json(&dir.join(STATE_FILE), state)
}

fn load_state(out: &Path, device: &Device) -> Result<Option<(RunState, HashMap<String, Tensor>)>> {
    let dir = out.join(STATE_DIR);
    let state_path = dir.join(STATE_FILE);
    if !state_path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
    let state: RunState =
        serde_json::from_str(&text).map_err(|e| TrainError::Resume(format!("{}: {e}", state_path.display())))?;
    let tensors = candle_core::safetensors::load(dir.join(TRAINABLES_FILE), device)?;
    Ok(Some((state, tensors)))
}

/// Trains as `config` says, reading images through `source`; with `resume`, continues the run
/// saved in `config.out`.
pub fn train(
    config: &TrainConfig,
    device: &Device,
    dtype: DType,
    source: &dyn ImageSource,
    resume: bool,
    progress: &mut dyn Progress,
) -> Result<TrainSummary> {
    config.validate()?;
    let dataset = Dataset::load(&config.data, source)?;
    let scores: Vec<f32> = dataset.examples.iter().map(|e| e.overall).collect();
    let Split { train: train_rows, val: val_rows } = split(&scores, config.split, config.seed);
    if train_rows.is_empty() {
        return Err(TrainError::Config("the split leaves no training rows".into()));
    }

    let out = &config.out;
    let saved = load_state(out, device)?;
    let mut state = match (&saved, resume) {
        (Some((state, _)), true) => {
            if state.config.comparable() != config.comparable() {
                return Err(TrainError::Resume(format!(
                    "{} was started with other settings; only --max-steps and --save-every may change",
                    out.display()
                )));
            }
            state.clone()
        }
        (None, true) => return Err(TrainError::Resume(format!("{} holds no run to resume", out.display()))),
        (Some(_), false) => {
            return Err(TrainError::Config(format!(
                "{} already holds a training run: pass --resume to continue it, or choose another output folder",
                out.display()
            )));
        }
        (None, false) => RunState {
            config: config.clone(),
            epoch: 0,
            micro_batch: 0,
            steps: 0,
            best_val_loss: None,
            best_epoch: None,
            history: Vec::new(),
            epoch_sums: (0.0, 0.0, 0.0, 0, 0),
            finished: false,
        },
    };
    state.config = config.clone();

    let setup = load_setup(config, device, dtype)?;
    let Setup { trainable, processor, encoder, manifest } = setup;
    link_base_files(&config.base, out)?;
    write_json(&out.join("run.json"), config)?;
    write_json(&out.join("split.json"), &serde_json::json!({
        "seed": config.seed, "spec": config.split,
        "train_lines": train_rows.iter().map(|&i| dataset.examples[i].line).collect::<Vec<_>>(),
        "val_lines": val_rows.iter().map(|&i| dataset.examples[i].line).collect::<Vec<_>>(),
    }))?;

    let params = trainable.params();
    let peaks = params
        .iter()
        .map(|(name, var)| (name.clone(), var.clone(), if name.starts_with("head/") { config.head_lr } else { config.lr }))
        .collect();
    let mut optimizer = AdamW::new(peaks, config.adam)?;
    if let (Some((_, tensors)), true) = (&saved, resume) {
        optimizer.load_state(tensors, state.steps)?;
    }

    let micro_batches = train_rows.len().div_ceil(config.batch_size);
    let steps_per_epoch = micro_batches.div_ceil(config.grad_accum);
    let schedule = LrSchedule {
        peak: 1.0,
        warmup_steps: config.warmup_steps,
        total_steps: steps_per_epoch * config.epochs,
        kind: config.schedule,
    };

    // The head-only path reads every row's pooled features once.
    let features = if config.head_only {
        let rows: Vec<&Example> = dataset.examples.iter().collect();
        let fingerprint = model_fingerprint(&config.base, &processor, dtype)?;
        let cache = config.feature_cache.clone().unwrap_or_else(|| out.join(STATE_DIR));
        progress.phase("features", rows.len() as u64);
        Some(pooled_features(&trainable.model, &processor, &rows, source, &fingerprint, Some(&cache), config.batch_size, |n| {
            progress.advance(n as u64, "")
        })?)
    } else {
        None
    };
    let score_range = trainable.head.config().score_range;
    let run = Run { config, trainable: &trainable, processor: &processor, encoder: &encoder, source, features: features.as_ref(), examples: &dataset.examples, score_range, device };

    let mut interrupted = false;
    'epochs: while state.epoch < config.epochs && !state.finished {
        let epoch = state.epoch;
        let start = Instant::now();
        let order = epoch_order(&train_rows, config.seed, epoch);
        let chunks: Vec<&[usize]> = order.chunks(config.batch_size).collect();
        progress.phase(&format!("epoch {}/{}", epoch + 1, config.epochs), chunks.len() as u64);
        progress.advance(state.micro_batch as u64, "");
        let mut accumulator = GradAccumulator::new(optimizer.params().len());
        for (index, chunk) in chunks.iter().enumerate().skip(state.micro_batch) {
            let group_start = index / config.grad_accum * config.grad_accum;
            let group_len = (group_start + config.grad_accum).min(chunks.len()) - group_start;
            let parts = run.loss(chunk)?;
            let grads = parts.total.backward()?;
            accumulator.add(&grads, optimizer.params(), 1.0 / group_len as f64)?;
            let sums = &mut state.epoch_sums;
            sums.0 += f64::from(parts.total.to_scalar::<f32>()?);
            sums.1 += parts.regression.unwrap_or(0.0);
            if let Some(lm) = parts.lm {
                sums.2 += lm;
                sums.3 += 1;
            }
            sums.4 += 1;
            if index + 1 == group_start + group_len {
                let factor = schedule.lr(optimizer.steps());
                optimizer.step(accumulator.take(), factor)?;
                state.steps = optimizer.steps();
                state.micro_batch = index + 1;
                let mut status = format!("loss {:.4} reg {:.4}", parts.total.to_scalar::<f32>()?, parts.regression.unwrap_or(0.0));
                if let Some(lm) = parts.lm {
                    status.push_str(&format!(" lm {lm:.3}"));
                }
                status.push_str(&format!(" lr×{factor:.3} step {}", state.steps));
                progress.advance(group_len as u64, &status);
                let stop = config.max_steps.is_some_and(|m| state.steps >= m);
                if stop || (config.save_every > 0 && state.steps % config.save_every == 0) {
                    save_state(out, &state, &optimizer)?;
                }
                if stop && state.micro_batch < chunks.len() {
                    interrupted = true;
                    break 'epochs;
                }
            }
        }

        let (sum_total, sum_reg, sum_lm, lm_batches, batches) = state.epoch_sums;
        let val = if val_rows.is_empty() {
            None
        } else {
            progress.phase("validation", val_rows.len() as u64);
            Some(run.validate(&val_rows, progress)?)
        };
        let val_loss = val.as_ref().map(|v| v.loss);
        let best = match (val_loss, state.best_val_loss) {
            (Some(v), Some(b)) => v < b,
            _ => true,
        };
        if best {
            state.best_val_loss = val_loss;
            state.best_epoch = Some(epoch + 1);
            let lora = trainable.lora_config.as_ref().map(|c| (c, trainable.lora_weights()));
            write_trained(out, &manifest, &trainable.head_tensors(), lora.as_ref().map(|(c, w)| (*c, w.as_slice())))?;
        }
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            steps: state.steps,
            train_loss: sum_total / batches.max(1) as f64,
            train_regression: sum_reg / batches.max(1) as f64,
            train_lm: (lm_batches > 0).then(|| sum_lm / lm_batches as f64),
            val,
            best,
            seconds: start.elapsed().as_secs_f64(),
        };
        progress.epoch_done(&metrics);
        state.history.push(metrics);
        state.epoch += 1;
        state.micro_batch = 0;
        state.epoch_sums = (0.0, 0.0, 0.0, 0, 0);
        state.finished = state.epoch == config.epochs;
        save_state(out, &state, &optimizer)?;
        write_json(&out.join("metrics.json"), &serde_json::json!({
            "best_epoch": state.best_epoch, "best_val_loss": state.best_val_loss,
            "steps": state.steps, "history": state.history,
        }))?;
        if config.max_steps.is_some_and(|m| state.steps >= m) && !state.finished {
            interrupted = true;
            break;
        }
    }
    Ok(TrainSummary {
        steps: state.steps,
        epochs_completed: state.epoch,
        interrupted,
        best_epoch: state.best_epoch,
        best_val_loss: state.best_val_loss,
        history: state.history,
        train_rows: train_rows.len(),
        val_rows: val_rows.len(),
        checkpoint: out.clone(),
    })
}

/// What one run's batches need.
struct Run<'a> {
    config: &'a TrainConfig,
    trainable: &'a Trainable,
    processor: &'a ImageProcessor,
    encoder: &'a PromptEncoder,
    source: &'a dyn ImageSource,
    features: Option<&'a Tensor>,
    examples: &'a [Example],
    score_range: [f32; 2],
    device: &'a Device,
}

impl Run<'_> {
    fn loss(&self, indices: &[usize]) -> Result<crate::trainable::LossParts> {
        let rows: Vec<&Example> = indices.iter().map(|&i| &self.examples[i]).collect();
        if let Some(features) = self.features {
            let index = Tensor::from_vec(indices.iter().map(|&i| i as u32).collect::<Vec<_>>(), indices.len(), self.device)?;
            let pooled = features.index_select(&index, 0)?;
            let (targets, mask) = targets(&rows, self.score_range, self.device)?;
            let (loss, predictions) = self.trainable.regression_loss(&pooled, &targets, &mask, self.config.loss.kind)?;
            let regression = Some(f64::from(loss.to_scalar::<f32>()?));
            return Ok(crate::trainable::LossParts { total: loss, regression, lm: None, lm_tokens: 0, predictions });
        }
        let images = prepare_images(&rows, self.source, self.processor)?;
        let encoder = (self.config.loss.lm > 0.0).then_some(self.encoder);
        let batch = build_batch(&rows, images, encoder, self.score_range, self.device)?;
        let model_dtype = self.trainable.model.dtype();
        let batch = crate::trainable::Batch { pixel_values: batch.pixel_values.to_dtype(model_dtype)?, ..batch };
        self.trainable.loss(&batch, &self.config.loss)
    }

    fn validate(&self, val: &[usize], progress: &mut dyn Progress) -> Result<ValMetrics> {
        let (mut reg_sum, mut lm_sum, mut lm_tokens) = (0f64, 0f64, 0usize);
        let mut predicted = Vec::with_capacity(val.len());
        for chunk in val.chunks(self.config.batch_size) {
            let parts = self.loss(chunk)?;
            reg_sum += parts.regression.unwrap_or(0.0) * chunk.len() as f64;
            if let Some(lm) = parts.lm {
                lm_sum += lm * parts.lm_tokens as f64;
                lm_tokens += parts.lm_tokens;
            }
            predicted.extend(parts.predictions.iter().map(|p| p[0]));
            progress.advance(chunk.len() as u64, "");
        }
        let truth: Vec<f32> = val.iter().map(|&i| self.examples[i].overall).collect();
        let regression = reg_sum / val.len() as f64;
        let lm = (lm_tokens > 0).then(|| lm_sum / lm_tokens as f64);
        let weights = &self.config.loss;
        Ok(ValMetrics {
            rows: val.len(),
            loss: weights.regression * regression + lm.map(|l| weights.lm * l).unwrap_or(0.0),
            regression,
            lm,
            pearson_overall: pearson(&predicted, &truth),
            mae_overall: mae(&predicted, &truth),
        })
    }
}
