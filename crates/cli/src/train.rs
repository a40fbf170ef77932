//! `easel train` (fine-tune the head and LoRA adapters on a rated manifest) and
//! `easel bench train` (one training step at a real model shape, random weights).

use std::path::PathBuf;
use std::time::Instant;

use crate::images::ManifestImages;
use anyhow::{Context, Result, bail};
use candle_core::Tensor;
use clap::Args;
use easel_model::Grid;
use easel_model::head::HeadConfig;
use easel_model::init::{Preset, random_head_tensors};
use easel_train::TrainConfig;
use easel_train::optim::{AdamW, AdamWConfig, ScheduleKind};
use easel_train::split::SplitSpec;
use easel_train::trainable::{
    Batch, LM_TARGETS, LmItem, LoraSpec, LossWeights, RegressionLoss, Trainable,
};
use easel_train::trainer::{EpochMetrics, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::device::ComputeArgs;

#[derive(Args)]
pub struct TrainArgs {
    /// Base checkpoint: a Hugging Face Qwen2-VL folder (easel.json optional).
    #[arg(long)]
    pub base: PathBuf,
    /// Data manifest: JSON Lines or .csv (see docs/TRAINING.md).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder; becomes an Easel checkpoint (the best epoch) that `easel score` serves.
    #[arg(long)]
    pub out: PathBuf,
    /// Share of each score band held out for validation.
    #[arg(long, default_value_t = 0.2, conflicts_with = "folds")]
    pub val_fraction: f64,
    /// Stratified k-fold: number of folds (use with --fold).
    #[arg(long, requires = "fold")]
    pub folds: Option<usize>,
    /// Which fold (0-based) to hold out.
    #[arg(long, requires = "folds")]
    pub fold: Option<usize>,
    /// Seeds the split, the initial weights and the data order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Paintings per micro-batch.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Peak learning rate of the LoRA adapters.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Peak learning rate of the regression head.
    #[arg(long, default_value_t = 1e-3)]
    pub head_lr: f64,
    #[arg(long, default_value_t = 10)]
    pub warmup_steps: usize,
    /// constant, linear or cosine decay after warm-up.
    #[arg(long, default_value = "cosine")]
    pub schedule: ScheduleKind,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Clip the gradient norm (0: off).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Regression loss on [0, 1]-scaled scores: mse or huber.
    #[arg(long, default_value = "mse")]
    pub loss: String,
    #[arg(long, default_value_t = 0.1)]
    pub huber_delta: f64,
    /// Weight of the regression loss.
    #[arg(long, default_value_t = 1.0)]
    pub w_reg: f64,
    /// Weight of the critique (language-model) loss.
    #[arg(long, default_value_t = 1.0)]
    pub w_lm: f64,
    /// LoRA rank (0: no adapters; the head alone is trained).
    #[arg(long, default_value_t = 16)]
    pub lora_rank: usize,
    #[arg(long, default_value_t = 32.0)]
    pub lora_alpha: f64,
    /// Projections to adapt (comma-separated); vision tower: qkv, proj, fc1, fc2.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )]
    pub lora_targets: Vec<String>,
    /// Adapt the vision tower's projections named in --lora-targets too.
    #[arg(long)]
    pub lora_vision: bool,
    /// Train only the head, on pooled visual features computed once and cached.
    #[arg(long)]
    pub head_only: bool,
    /// Folder for the head-only feature cache (default: OUT/training).
    #[arg(long)]
    pub feature_cache: Option<PathBuf>,
    /// Hidden width of the head (default: the base's easel.json, else min(1024, hidden)).
    #[arg(long)]
    pub head_hidden: Option<usize>,
    /// Pixel cap per painting (default: the base's easel.json, else 448×448).
    #[arg(long)]
    pub max_pixels: Option<usize>,
    #[arg(long, default_value_t = 512)]
    pub max_critique_tokens: usize,
    /// model_version written to easel.json.
    #[arg(long)]
    pub model_version: Option<String>,
    /// Stop after this many optimiser steps in all (resume later with --resume).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Save the resume state every this many optimiser steps (0: at epoch ends only).
    #[arg(long, default_value_t = 50)]
    pub save_every: usize,
    /// Continue the run saved in --out after an interruption.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Hide the progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let split = match (self.folds, self.fold) {
            (Some(folds), Some(fold)) => SplitSpec::KFold { folds, fold },
            _ => SplitSpec::Holdout {
                val_fraction: self.val_fraction,
            },
        };
        let kind = match self.loss.as_str() {
            "mse" => RegressionLoss::Mse,
            "huber" => RegressionLoss::Huber {
                delta: self.huber_delta,
            },
            other => bail!("unknown --loss {other:?}: use mse or huber"),
        };
        let lora = (self.lora_rank > 0 && !self.head_only).then(|| LoraSpec {
            rank: self.lora_rank,
            alpha: self.lora_alpha,
            targets: self.lora_targets.clone(),
            include_vision: self.lora_vision,
        });
        Ok(TrainConfig {
            split,
            seed: self.seed,
            epochs: self.epochs,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            lr: self.lr,
            head_lr: self.head_lr,
            warmup_steps: self.warmup_steps,
            schedule: self.schedule,
            adam: AdamWConfig {
                weight_decay: self.weight_decay,
                max_grad_norm: self.max_grad_norm,
                ..AdamWConfig::default()
            },
            loss: LossWeights {
                regression: self.w_reg,
                lm: if self.head_only { 0.0 } else { self.w_lm },
                kind,
            },
            lora,
            head_only: self.head_only,
            head_hidden: self.head_hidden,
            feature_cache: self.feature_cache.clone(),
            max_pixels: self.max_pixels,
            max_critique_tokens: self.max_critique_tokens,
            model_version: self.model_version.clone(),
            max_steps: self.max_steps,
            save_every: self.save_every,
            ..TrainConfig::new(&self.base, &self.data, &self.out)
        })
    }
}

/// Progress bars for the training loop; epoch summaries go to stderr.
pub struct Bars {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        Self { bar: None, quiet }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn phase(&mut self, name: &str, total: u64) {
        self.finish();
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        self.bar = Some(bar);
    }

    fn advance(&mut self, units: u64, status: &str) {
        if let Some(bar) = &self.bar {
            bar.inc(units);
            if !status.is_empty() {
                bar.set_message(status.to_string());
            }
        }
    }

    fn epoch_done(&mut self, m: &EpochMetrics) {
        self.finish();
        let mut line = format!(
            "epoch {}: train loss {:.4} (reg {:.4}",
            m.epoch, m.train_loss, m.train_regression
        );
        if let Some(lm) = m.train_lm {
            line.push_str(&format!(", lm {lm:.3}"));
        }
        line.push(')');
        if let Some(v) = &m.val {
            line.push_str(&format!(
                "; val loss {:.4}, Pearson {:.3}, MAE {:.2} on {} rows",
                v.loss, v.pearson_overall, v.mae_overall, v.rows
            ));
        }
        if m.best {
            line.push_str(" [best: checkpoint written]");
        }
        eprintln!("{line}");
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    let config = args.config()?;
    let device = args.compute.device()?;
    let dtype = args.compute.dtype()?;
    refuse_packed_weights(&args.compute)?;
    let mut bars = Bars::new(args.quiet);
    let summary = easel_train::train(
        &config,
        &device,
        dtype,
        &ManifestImages::default(),
        args.resume,
        &mut bars,
    )
    .with_context(|| format!("training on {}", args.data.display()))?;
    bars.finish();
    if summary.interrupted {
        eprintln!(
            "stopped after {} step(s) (--max-steps); continue with the same command plus --resume",
            summary.steps
        );
    } else {
        eprintln!(
            "trained {} step(s) on {} rows ({} held out); best epoch {}; checkpoint in {}",
            summary.steps,
            summary.train_rows,
            summary.val_rows,
            summary
                .best_epoch
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into()),
            summary.checkpoint.display()
        );
    }
    let last = summary.history.last();
    println!(
        "{}",
        json!({"event": "trained", "steps": summary.steps, "epochs_completed": summary.epochs_completed,
        "interrupted": summary.interrupted, "best_epoch": summary.best_epoch, "best_val_loss": summary.best_val_loss,
        "train_rows": summary.train_rows, "val_rows": summary.val_rows, "checkpoint": summary.checkpoint,
        "last_epoch": last, "metrics": summary.checkpoint.join("metrics.json")})
    );
    Ok(())
}

#[derive(Args, Clone)]
pub struct TrainBenchArgs {
    /// Model shape: tiny, qwen2-vl-2b, qwen2-vl-7b, qwen2.5-vl-tiny, qwen2.5-vl-3b or
    /// qwen2.5-vl-7b.
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// Build the weights at random directly on the device (required).
    #[arg(long)]
    pub random_weights: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
    #[arg(long, default_value_t = 16)]
    pub lora_rank: usize,
    /// Paintings per step.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Square image side in pixels (a multiple of 28).
    #[arg(long, default_value_t = 448)]
    pub image_size: usize,
    /// Prompt text tokens around the image (system prompt, description, scores).
    #[arg(long, default_value_t = 160)]
    pub prompt_tokens: usize,
    /// Critique tokens per painting (the LM loss's targets).
    #[arg(long, default_value_t = 256)]
    pub critique_tokens: usize,
    /// Steps to time; the first is a warm-up and is reported apart.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Adapt the vision tower too.
    #[arg(long)]
    pub lora_vision: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One optimiser step of the full multi-task loss (head + LoRA on every LM projection) at a
/// real shape, with random base weights made on the device.
pub fn bench(args: TrainBenchArgs) -> Result<()> {
    use rand::{Rng, SeedableRng};
    if !args.random_weights {
        bail!("only --random-weights is supported: the benchmark builds the model on the device");
    }
    if !args.image_size.is_multiple_of(28)
        || args.image_size == 0
        || args.steps == 0
        || args.batch == 0
    {
        bail!("--image-size must be a positive multiple of 28; --steps and --batch positive");
    }
    let preset = Preset::parse(&args.preset)?;
    let device = args.compute.device()?;
    let dtype = args.compute.dtype()?;
    refuse_packed_weights(&args.compute)?;
    let start = Instant::now();
    let (config, model) = crate::bench::random_model(preset, &device, dtype, args.seed)?;
    let head_config = HeadConfig::new(config.text.hidden_size, preset.head_hidden());
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let head_init = random_head_tensors(&head_config, &mut rng)?;
    let mut targets = LM_TARGETS.map(String::from).to_vec();
    if args.lora_vision {
        targets.extend(["qkv", "proj", "fc1", "fc2"].map(String::from));
    }
    let lora = LoraSpec {
        rank: args.lora_rank,
        alpha: 2.0 * args.lora_rank as f64,
        targets,
        include_vision: args.lora_vision,
    };
    let trainable = Trainable::new(model, &head_config, head_init, Some(&lora), args.seed)?;
    let params = trainable.params();
    let trainable_params: usize = params.iter().map(|(_, v)| v.as_tensor().elem_count()).sum();
    let peaks = params.into_iter().map(|(n, v)| (n, v, 1e-4)).collect();
    let mut optimizer = AdamW::new(peaks, AdamWConfig::default())?;
    device.synchronize()?;
    println!(
        "{}",
        json!({"event": "model_built", "preset": preset.name(), "dtype": args.compute.dtype, "device": args.compute.device,
        "lora_rank": args.lora_rank, "trainable_params": trainable_params, "seconds": start.elapsed().as_secs_f64()})
    );

    let side = args.image_size / 14;
    let grid = Grid {
        t: 1,
        h: side,
        w: side,
    };
    let text_vocab = config.vision_start_token_id;
    let sequences: Vec<(Vec<u32>, usize)> = (0..args.batch)
        .map(|_| {
            let mut ids =
                crate::bench::random_image_prompt(&mut rng, &config, grid, args.prompt_tokens);
            let target_start = ids.len();
            ids.extend((0..args.critique_tokens.max(1)).map(|_| rng.random_range(0..text_vocab)));
            (ids, target_start)
        })
        .collect();
    let seq_len = sequences[0].0.len();
    let weights = LossWeights {
        regression: 1.0,
        lm: 1.0,
        kind: RegressionLoss::Mse,
    };
    let mut times = Vec::with_capacity(args.steps);
    let mut last_loss = f32::NAN;
    for _ in 0..args.steps {
        let pixels = Tensor::randn(
            0f32,
            1.0,
            (args.batch * grid.num_patches(), config.vision.patch_len()),
            &device,
        )?
        .to_dtype(dtype)?;
        let targets = Tensor::rand(0f32, 1.0, (args.batch, 6), &device)?;
        let batch = Batch {
            pixel_values: pixels,
            grids: vec![grid; args.batch],
            target_mask: targets.ones_like()?,
            targets,
            lm: sequences
                .iter()
                .enumerate()
                .map(|(i, seq)| LmItem {
                    image: i,
                    encode: Box::new(move |_: &[f32; 6]| Ok(seq.clone())),
                })
                .collect(),
        };
        device.synchronize()?;
        let step_start = Instant::now();
        let parts = trainable.loss(&batch, &weights)?;
        let grads = parts.total.backward()?;
        let grads = optimizer
            .params()
            .iter()
            .map(|(_, v)| grads.get(v.as_tensor()).cloned())
            .collect();
        optimizer.step(grads, 1.0)?;
        device.synchronize()?;
        times.push(step_start.elapsed().as_secs_f64());
        last_loss = parts.total.to_scalar::<f32>()?;
    }
    let timed = if times.len() > 1 {
        &times[1..]
    } else {
        &times[..]
    };
    let mut sorted = timed.to_vec();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({"event": "train_step", "preset": preset.name(), "dtype": args.compute.dtype, "device": args.compute.device,
        "lora_rank": args.lora_rank, "lora_vision": args.lora_vision, "batch": args.batch, "image_size": args.image_size,
        "visual_tokens": grid.num_tokens(config.vision.spatial_merge_size), "sequence_tokens": seq_len, "critique_tokens": args.critique_tokens,
        "trainable_params": trainable_params, "first_step_seconds": times[0],
        "seconds_per_step": sorted[sorted.len() / 2], "step_seconds": times, "loss": last_loss})
    );
    Ok(())
}

/// Training runs on the `--dtype` weights: `--weights bf16/int8` is for inference only.
fn refuse_packed_weights(compute: &crate::device::ComputeArgs) -> Result<()> {
    if compute.weights()? != easel_model::WeightFormat::F32 {
        bail!("training runs on the --dtype weights; --weights bf16/int8 is for inference");
    }
    Ok(())
}
