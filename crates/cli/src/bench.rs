//! `easel bench model`: throughput of the score path, the prefill and the critique path, with
//! warm-up and device synchronisation, as JSON lines.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use clap::{Args, Subcommand};
use easel_model::checkpoint::WeightLayout;
use easel_model::generate::{GenerationConfig, Request, decode, prefill};
use easel_model::head::{HeadConfig, RegressionHead};
use easel_model::init::{Preset, random_tensors, weight_shapes};
use easel_model::{Config, Grid, Qwen2VlModel};
use serde_json::json;

use crate::device::ComputeArgs;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Score path (vision + head), prefill and critique generation throughput.
    Model(ModelBenchArgs),
    /// First-decoding-step agreement with logits another implementation computed on the same
    /// weights and inputs (e.g. HF transformers on the GPU).
    Parity(ParityArgs),
    /// Decode + resize + normalise cost per painting on one core (what sizes a GPU worker's CPU).
    Preprocess(PreprocessArgs),
    /// One multi-task training step (head + LoRA, LM and regression loss) at a real shape.
    Train(crate::train::TrainBenchArgs),
    /// Agreement of bf16 / int8 weights (`--weights`) with f32 on a checkpoint and a folder of
    /// paintings: score differences, greedy-token agreement, speed.
    Weights(crate::bench_weights::WeightsBenchArgs),
}

#[derive(Args)]
pub struct PreprocessArgs {
    /// A folder of images (read once into memory; decoding is timed from bytes).
    #[arg(long)]
    pub images: PathBuf,
    /// Pixel cap, as `easel.json`'s `processor.max_pixels`.
    #[arg(long, default_value_t = easel_model::manifest::DEFAULT_MAX_PIXELS)]
    pub max_pixels: usize,
    /// Passes over the folder.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
}

#[derive(Args)]
pub struct ParityArgs {
    /// Checkpoint folder (config.json + safetensors; no tokenizer needed).
    #[arg(long)]
    pub model: PathBuf,
    /// safetensors with `pixel_values`, `image_grid_thw`, `input_ids` [B, L] (unpadded, equal
    /// lengths), `hf_top1` [B] and optionally `hf_last_logits` [B, V].
    #[arg(long)]
    pub inputs: PathBuf,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Args, Clone)]
pub struct ModelBenchArgs {
    /// Model shape: tiny, qwen2-vl-2b, qwen2-vl-7b, qwen2.5-vl-tiny, qwen2.5-vl-3b or
    /// qwen2.5-vl-7b.
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// Build the weights at random directly on the device (required: checkpoints of the real
    /// shape are 16 GB).
    #[arg(long)]
    pub random_weights: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Square image side in pixels (a multiple of 28).
    #[arg(long, default_value_t = 448)]
    pub image_size: usize,
    /// Batch sizes to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "8")]
    pub batch: Vec<usize>,
    /// New tokens per critique.
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Text tokens around the image in the prompt (before + after).
    #[arg(long, default_value_t = 102)]
    pub text_tokens: usize,
    /// Timed repetitions per measurement (after one warm-up).
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// Which paths to run: score, prefill, generate, zero-shot (the six level-word prompts
    /// on a shared prefix, against one prompt's prefill and six separate prefills).
    #[arg(long, value_delimiter = ',', default_value = "score,prefill,generate")]
    pub paths: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Model(args) => bench_model(args),
        BenchCommand::Parity(args) => parity(args),
        BenchCommand::Preprocess(args) => preprocess(args),
        BenchCommand::Train(args) => crate::train::bench(args),
        BenchCommand::Weights(args) => crate::bench_weights::run(args),
    }
}

fn bench_model(args: ModelBenchArgs) -> Result<()> {
    if !args.random_weights {
        bail!("only --random-weights is supported: the benchmark builds the model on the device");
    }
    if !args.image_size.is_multiple_of(28) || args.image_size == 0 {
        bail!("--image-size must be a positive multiple of 28");
    }
    let preset = Preset::parse(&args.preset)?;
    let device = args.compute.device()?;
    let dtype = args.compute.dtype()?;
    let start = Instant::now();
    let (config, mut model) = random_model(preset, &device, dtype, args.seed)?;
    model.pack_weights(args.compute.weights()?)?;
    let head_cfg = HeadConfig::new(config.text.hidden_size, preset.head_hidden());
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(args.seed);
    let head_tensors = easel_model::init::random_head_tensors(&head_cfg, &mut rng)?
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_device(&device)?)))
        .collect::<Result<std::collections::HashMap<_, _>>>()?;
    let head = RegressionHead::new(
        &head_cfg,
        VarBuilder::from_tensors(head_tensors, DType::F32, &device),
    )?;
    device.synchronize()?;
    let build_s = start.elapsed().as_secs_f64();
    let params: usize = weight_shapes(&config)
        .iter()
        .map(|(_, s, _)| s.iter().product::<usize>())
        .sum();
    emit(
        json!({"event": "model_built", "preset": preset.name(), "params": params, "dtype": args.compute.dtype,
        "weights": args.compute.weights, "device": args.compute.device, "seconds": build_s, "cpu_kernels": easel_model::cpu::Isa::in_use()}),
    );

    let side = args.image_size / 14;
    let grid = Grid {
        t: 1,
        h: side,
        w: side,
    };
    let visual_tokens = grid.num_tokens(config.vision.spatial_merge_size);
    if args.paths.iter().any(|p| p == "zero-shot") {
        bench_zero_shot(&args, &config, &model, grid, &device, dtype)?;
    }
    for &batch in &args.batch {
        let pixels = Tensor::randn(
            0f32,
            1.0,
            (batch * grid.num_patches(), config.vision.patch_len()),
            &device,
        )?
        .to_dtype(dtype)?;
        let grids = vec![grid; batch];
        if args.paths.iter().any(|p| p == "score") {
            let timed = time(&device, args.iters, || {
                let merged = model.vision.forward(&pixels, &grids)?;
                let pooled = model.vision.pool(&merged, &grids)?;
                head.forward(&pooled)?;
                Ok(())
            })?;
            emit(timed.add_to(json!({"path": "score", "batch": batch, "image_size": args.image_size,
                "images_per_s": batch as f64 / timed.seconds})));
        }
        let requests = prompts(&config, &grids, args.text_tokens, args.seed);
        let prompt_len = requests[0].input_ids.len();
        if args.paths.iter().any(|p| p == "prefill") {
            let timed = time(&device, args.iters, || {
                let merged = model.vision.forward(&pixels, &grids)?;
                prefill(&model, &requests, Some(&merged), 1, false)?;
                Ok(())
            })?;
            emit(timed.add_to(json!({"path": "prefill", "batch": batch, "prompt_tokens": prompt_len,
                "visual_tokens": visual_tokens, "images_per_s": batch as f64 / timed.seconds})));
        }
        if args.paths.iter().any(|p| p == "generate") {
            let generation = GenerationConfig {
                stop_on_eos: false,
                ..GenerationConfig::greedy(args.new_tokens)
            };
            let timed = time(&device, args.iters.min(2), || {
                let merged = model.vision.forward(&pixels, &grids)?;
                let state = prefill(&model, &requests, Some(&merged), args.new_tokens, false)?;
                let out = decode(&model, state, &generation, &[], |_, _| Ok(()))?;
                if out.iter().any(|g| g.tokens.len() != args.new_tokens) {
                    bail!("a critique stopped early");
                }
                Ok(())
            })?;
            let secs = timed.seconds;
            emit(timed.add_to(json!({"path": "generate", "batch": batch, "prompt_tokens": prompt_len,
                "new_tokens": args.new_tokens, "critiques_per_s": batch as f64 / secs,
                "tokens_per_s": (batch * args.new_tokens) as f64 / secs})));
        }
    }
    Ok(())
}

/// The zero-shot path on one painting: the vision tower and one prompt's prefill (the cost of
/// asking one question), the six questions on a shared prefix (what Easel runs), and six
/// separate prefills (what sharing saves). Prompts have the token counts of the default prompts
/// in Qwen2-VL's chat template, with random text tokens.
fn bench_zero_shot(
    args: &ModelBenchArgs,
    config: &Config,
    model: &Qwen2VlModel,
    grid: Grid,
    device: &Device,
    dtype: DType,
) -> Result<()> {
    use easel_model::zero_shot::{DEFAULT_PROMPT_SHAPE, ZeroShotScorer};
    use rand::{Rng, SeedableRng};

    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let text_vocab = config.vision_start_token_id.min(config.text.vocab_size as u32);
    let mut random = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(0..text_vocab)).collect() };
    // `<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>`,
    // then `<|vision_end|>Rate the`, then each output's own words to the end of `… is`.
    let (before, after) = (random(DEFAULT_PROMPT_SHAPE.0 - 1), random(DEFAULT_PROMPT_SHAPE.1 - 1));
    let prompts: [Vec<u32>; 6] = std::array::from_fn(|i| {
        let mut ids = before.clone();
        ids.extend([config.vision_start_token_id, config.image_token_id, config.vision_end_token_id]);
        ids.extend(&after);
        ids.extend(random(DEFAULT_PROMPT_SHAPE.2[i]));
        ids
    });
    let level_ids: [u32; 5] = std::array::from_fn(|i| i as u32 + 1);
    let scorer = ZeroShotScorer::from_token_ids(prompts, level_ids, config.image_token_id)?;
    let pixels = Tensor::randn(0f32, 1.0, (grid.num_patches(), config.vision.patch_len()), device)?.to_dtype(dtype)?;
    let grids = [grid];
    let one = scorer.requests(model, grid)?[0].clone();
    let one_request = [Request { input_ids: one.clone(), grids: vec![grid] }];
    let iters = args.iters;
    let vision_s = time(device, iters, || {
        model.vision.forward(&pixels, &grids)?;
        Ok(())
    })?
    .seconds;
    let one_s = time(device, iters, || {
        let merged = model.vision.forward(&pixels, &grids)?;
        prefill(model, &one_request, Some(&merged), 0, false)?;
        Ok(())
    })?
    .seconds;
    let shared_s = time(device, iters, || {
        let merged = model.vision.forward(&pixels, &grids)?;
        scorer.score(model, &merged, grid)?;
        Ok(())
    })?
    .seconds;
    let separate_s = time(device, iters, || {
        let merged = model.vision.forward(&pixels, &grids)?;
        scorer.score_separately(model, &merged, grid)?;
        Ok(())
    })?
    .seconds;
    emit(json!({"path": "zero-shot", "image_size": args.image_size, "prompt_tokens": one.len(),
        "vision_s": vision_s, "one_prompt_s": one_s, "six_shared_s": shared_s, "six_separate_s": separate_s,
        "shared_over_one": shared_s / one_s, "separate_over_one": separate_s / one_s,
        "shared_text_over_one_text": (shared_s - vision_s) / (one_s - vision_s),
        "images_per_s": 1.0 / shared_s}));
    Ok(())
}

/// A Qwen2-VL at a preset's real shape, its random weights made directly on `device` (16 GB of
/// 7B weights never touch the disk or the host).
pub(crate) fn random_model(
    preset: Preset,
    device: &Device,
    dtype: DType,
    seed: u64,
) -> Result<(Config, Qwen2VlModel)> {
    // The tiny presets' byte-level tokenizer: 256 bytes and 14 special tokens, padded to 272.
    let vocab = preset.vocab_size().unwrap_or(272);
    let config = Config::from_value(&preset.config_json(vocab, vocab as u32 - 16))?;
    if !device.is_cpu() {
        // candle's CPU random source cannot be seeded; a benchmark's weights need not repeat.
        device.set_seed(seed)?;
    }
    let vb = VarBuilder::from_tensors(
        random_tensors(&weight_shapes(&config), dtype, device)?,
        dtype,
        device,
    );
    let model = Qwen2VlModel::new(&config, vb, WeightLayout::Hub)?;
    Ok((config, model))
}

/// Random text tokens around one image's placeholders, like a short system prompt and reply.
fn prompts(config: &Config, grids: &[Grid], text_tokens: usize, seed: u64) -> Vec<Request> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    grids
        .iter()
        .map(|g| Request {
            input_ids: random_image_prompt(&mut rng, config, *g, text_tokens),
            grids: vec![*g],
        })
        .collect()
}

/// Random text tokens below the special ones, ids for one image of `grid`, and more random
/// text: `text_tokens` of text in all, half before the image and half after.
pub(crate) fn random_image_prompt(
    rng: &mut impl rand::Rng,
    config: &Config,
    grid: Grid,
    text_tokens: usize,
) -> Vec<u32> {
    let text_vocab = config
        .vision_start_token_id
        .min(config.text.vocab_size as u32);
    let mut ids: Vec<u32> = (0..text_tokens / 2)
        .map(|_| rng.random_range(0..text_vocab))
        .collect();
    ids.push(config.vision_start_token_id);
    ids.extend(std::iter::repeat_n(
        config.image_token_id,
        grid.num_tokens(config.vision.spatial_merge_size),
    ));
    ids.push(config.vision_end_token_id);
    ids.extend((0..text_tokens - text_tokens / 2).map(|_| rng.random_range(0..text_vocab)));
    ids
}

/// What [`time`] measured.
struct Timed {
    /// The median of the timed runs.
    seconds: f64,
    /// Every timed run, in order.
    samples: Vec<f64>,
    /// The share of the machine's CPU time the hypervisor took from this VM over the timed runs
    /// ("steal" in `/proc/stat`), where Linux reports it: a shared VM's figures drift by 10–30 %
    /// between runs, and this says when the host was the cause.
    steal_pct: Option<f64>,
}

impl Timed {
    /// `line` (a JSON object) with the timing added: `seconds_per_batch` (the median), every
    /// sample and the steal.
    fn add_to(&self, mut line: serde_json::Value) -> serde_json::Value {
        if let Some(fields) = line.as_object_mut() {
            fields.insert("seconds_per_batch".into(), json!(self.seconds));
            fields.insert("samples".into(), json!(self.samples));
            fields.insert("steal_pct".into(), json!(self.steal_pct));
        }
        line
    }
}

/// Median seconds of `iters` runs after one warm-up, synchronising the device around each.
fn time(device: &Device, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timed> {
    f().context("warm-up")?;
    device.synchronize()?;
    let before = cpu_steal_ticks();
    let mut samples = Vec::with_capacity(iters.max(1));
    for _ in 0..iters.max(1) {
        let start = Instant::now();
        f()?;
        device.synchronize()?;
        samples.push(start.elapsed().as_secs_f64());
    }
    let steal_pct = before.zip(cpu_steal_ticks()).map(|((s0, t0), (s1, t1))| {
        let pct = 100.0 * s1.saturating_sub(s0) as f64 / t1.saturating_sub(t0).max(1) as f64;
        (pct * 10.0).round() / 10.0
    });
    let mut sorted = samples.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    Ok(Timed { seconds: sorted[sorted.len() / 2], samples, steal_pct })
}

/// (steal, all) ticks of the machine's CPUs so far, from the first line of `/proc/stat` (user,
/// nice, system, idle, iowait, irq, softirq, steal); `None` where there is no such file.
fn cpu_steal_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .take(8)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    (ticks.len() == 8).then(|| (ticks[7], ticks.iter().sum()))
}

fn emit(value: serde_json::Value) {
    println!("{value}");
}

fn parity(args: ParityArgs) -> Result<()> {
    use candle_core::{D, IndexOp};
    use easel_model::checkpoint::CheckpointFiles;

    let device = args.compute.device()?;
    let dtype = args.compute.dtype()?;
    let files = CheckpointFiles::locate(&args.model)?;
    let config = files.read_config()?;
    let start = Instant::now();
    let mut model = Qwen2VlModel::load(&files, &config, &device, dtype)?;
    model.pack_weights(args.compute.weights()?)?;
    device.synchronize()?;
    let load_s = start.elapsed().as_secs_f64();
    let inputs = candle_core::safetensors::load(&args.inputs, &Device::Cpu)
        .with_context(|| format!("reading {}", args.inputs.display()))?;
    let get = |name: &str| {
        inputs
            .get(name)
            .with_context(|| format!("{} has no {name}", args.inputs.display()))
    };
    let thw = get("image_grid_thw")?
        .to_dtype(DType::I64)?
        .to_vec2::<i64>()?;
    let grids: Vec<Grid> = thw
        .iter()
        .map(|r| Grid {
            t: r[0] as usize,
            h: r[1] as usize,
            w: r[2] as usize,
        })
        .collect();
    let ids = get("input_ids")?.to_dtype(DType::I64)?.to_vec2::<i64>()?;
    if ids.len() != grids.len() {
        bail!(
            "{} prompts for {} images: the parity check takes one image per prompt",
            ids.len(),
            grids.len()
        );
    }
    let requests: Vec<Request> = ids
        .iter()
        .zip(&grids)
        .map(|(row, g)| Request {
            input_ids: row.iter().map(|&t| t as u32).collect(),
            grids: vec![*g],
        })
        .collect();
    let pixels = get("pixel_values")?.to_device(&device)?.to_dtype(dtype)?;
    let start = Instant::now();
    let merged = model.vision.forward(&pixels, &grids)?;
    let state = prefill(&model, &requests, Some(&merged), 1, false)?;
    let ours = state.last_logits.to_device(&Device::Cpu)?;
    let run_s = start.elapsed().as_secs_f64();
    let top1: Vec<u32> = ours.argmax(D::Minus1)?.to_vec1()?;
    let theirs: Vec<i64> = get("hf_top1")?.to_dtype(DType::I64)?.to_vec1()?;
    let agree = top1
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| i64::from(**a) == **b)
        .count();
    let mut report = json!({"event": "parity", "batch": top1.len(), "dtype": args.compute.dtype, "weights": args.compute.weights, "device": args.compute.device,
        "top1_agreement": agree as f64 / top1.len().max(1) as f64, "agree": agree,
        "load_seconds": load_s, "run_seconds": run_s});
    if let Some(hf) = inputs.get("hf_last_logits") {
        let hf = hf.to_dtype(DType::F32)?;
        let diff = (&ours - &hf)?.abs()?;
        let max_diff = diff.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        let scale = hf.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        // Where we disagree: is our token HF's runner-up (a near tie) or something else?
        let mut gaps = Vec::new();
        for (row, (&ours_top, &hf_top)) in top1.iter().zip(&theirs).enumerate() {
            if i64::from(ours_top) != hf_top {
                let r = hf.i(row)?;
                let a = r.i(hf_top as usize)?.to_scalar::<f32>()?;
                let b = r.i(ours_top as usize)?.to_scalar::<f32>()?;
                gaps.push(a - b);
            }
        }
        report["max_abs_logit_diff"] = json!(max_diff);
        report["logit_scale"] = json!(scale);
        report["hf_logit_gap_where_disagreeing"] = json!(gaps);
    }
    emit(report);
    Ok(())
}

/// Single-threaded decode / resize / patchify timings over a folder of real images.
fn preprocess(args: PreprocessArgs) -> Result<()> {
    use easel_model::{DecodeLimits, ImageProcessor, ProcessorConfig};

    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.images)
        .with_context(|| format!("reading {}", args.images.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let blobs: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    if blobs.is_empty() {
        bail!("no files in {}", args.images.display());
    }
    let processor = ImageProcessor::new(ProcessorConfig {
        max_pixels: args.max_pixels,
        ..ProcessorConfig::default()
    });
    let limits = DecodeLimits::default().any_format();
    let (mut decode, mut resize, mut patchify) = (Vec::new(), Vec::new(), Vec::new());
    let (mut megapixels, mut failed) = (0.0, 0usize);
    for _ in 0..args.rounds.max(1) {
        for bytes in &blobs {
            let t0 = Instant::now();
            let Ok(decoded) = easel_imaging::decode(bytes, &limits) else {
                failed += 1;
                continue;
            };
            let t1 = Instant::now();
            let resized = processor.resize(&decoded.rgb)?;
            let t2 = Instant::now();
            std::hint::black_box(processor.patchify(&resized));
            let t3 = Instant::now();
            decode.push((t1 - t0).as_secs_f64() * 1e3);
            resize.push((t2 - t1).as_secs_f64() * 1e3);
            patchify.push((t3 - t2).as_secs_f64() * 1e3);
            megapixels += f64::from(decoded.width()) * f64::from(decoded.height()) / 1e6;
        }
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        json!({"mean_ms": mean, "p50_ms": v[v.len() / 2], "p95_ms": v[(v.len() * 95 / 100).min(v.len() - 1)]})
    };
    let total: Vec<f64> = decode
        .iter()
        .zip(&resize)
        .zip(&patchify)
        .map(|((a, b), c)| a + b + c)
        .collect();
    let n = total.len();
    let mean_total = total.iter().sum::<f64>() / n.max(1) as f64;
    emit(
        json!({"path": "preprocess", "images": n, "failed": failed, "max_pixels": args.max_pixels,
        "mean_source_megapixels": megapixels / n.max(1) as f64,
        "decode": stats(&mut decode), "resize": stats(&mut resize), "patchify": stats(&mut patchify),
        "total": stats(&mut total.clone()), "images_per_s_per_core": 1e3 / mean_total}),
    );
    Ok(())
}
