//! `easel bench weights`: how far bf16 and int8 weights (`--weights`) move a checkpoint's
//! scores and greedy critiques away from f32's on a folder of paintings, and how fast each runs.
//! One JSON line for the f32 reference, then one per format.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use easel_model::{
    ArtworkInput, Assessor, DecodeLimits, GenerationConfig, LoadOptions, Manifest, OUTPUTS, RubricScores,
    WeightFormat,
};
use serde_json::json;

use crate::score::{collect_images, read_sidecar};

#[derive(Args)]
pub struct WeightsBenchArgs {
    /// Checkpoint folder (a trained head, or zero-shot): runs on the CPU in f32 and in each
    /// of `--weights`.
    #[arg(long)]
    pub model: PathBuf,
    /// Paintings: files or folders (searched recursively), sidecar `.txt` descriptions as in
    /// `easel score`.
    #[arg(long, required = true, num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// Formats to compare with f32 (comma-separated): bf16, int8.
    #[arg(long, value_delimiter = ',', default_value = "bf16,int8")]
    pub weights: Vec<String>,
    /// At most this many paintings (the first in path order); all by default.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Paintings (the first) whose greedy critiques are compared token by token.
    #[arg(long, default_value_t = 16)]
    pub critiques: usize,
    /// Tokens per critique (greedy, stopping at the end of the reply).
    #[arg(long, default_value_t = 32)]
    pub new_tokens: usize,
    /// Pixel cap per painting. Default: the checkpoint's.
    #[arg(long)]
    pub max_pixels: Option<usize>,
    /// Paintings per model batch.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
}

/// What one weight format made of the paintings.
struct Run {
    scores: Vec<RubricScores<f32>>,
    critiques: Vec<Vec<u32>>,
    load_s: f64,
    score_s: f64,
    critique_s: f64,
}

pub fn run(args: WeightsBenchArgs) -> Result<()> {
    let formats = args
        .weights
        .iter()
        .map(|w| w.parse::<WeightFormat>().map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    if formats.contains(&WeightFormat::F32) {
        bail!("f32 is the reference every format is compared with; --weights names the others");
    }
    if args.batch == 0 {
        bail!("--batch must be positive");
    }
    let mut files = collect_images(&args.images)?;
    files.truncate(args.limit.unwrap_or(usize::MAX));
    if files.is_empty() {
        bail!("no images found in {:?}", args.images);
    }
    let generation = GenerationConfig {
        max_new_tokens: args.new_tokens,
        temperature: 0.0,
        ..Manifest::read(&args.model)?.generation
    };
    let load = |weights: WeightFormat| -> Result<(Assessor, f64)> {
        let start = Instant::now();
        let options = LoadOptions {
            max_pixels: args.max_pixels,
            max_batch: args.batch,
            weights,
            ..LoadOptions::cpu()
        };
        let assessor = Assessor::load(&args.model, options.with_generation(generation.clone()))
            .with_context(|| format!("loading {} with {weights} weights", args.model.display()))?;
        Ok((assessor, start.elapsed().as_secs_f64()))
    };

    let (reference_model, load_s) = load(WeightFormat::F32)?;
    let limits = DecodeLimits::default().any_format();
    let inputs = files
        .iter()
        .map(|path| {
            let image = reference_model
                .processor()
                .prepare_file(path, &limits)
                .with_context(|| format!("preparing {}", path.display()))?;
            let description = read_sidecar(path).map_err(anyhow::Error::msg)?;
            Ok(ArtworkInput { image, description })
        })
        .collect::<Result<Vec<_>>>()?;
    let critiques = args.critiques.min(inputs.len());
    let reference = measure(&reference_model, &inputs, critiques, args.batch, load_s)?;
    let scoring = reference_model.scoring().as_str();
    drop(reference_model);
    println!(
        "{}",
        json!({"event": "reference", "weights": "f32", "model": args.model, "paintings": inputs.len(),
        "critiques": critiques, "new_tokens": args.new_tokens, "scoring": scoring,
        "load_s": reference.load_s, "score_s_per_painting": reference.score_s / inputs.len() as f64,
        "critique_s_per_painting": per(reference.critique_s, critiques),
        "cpu_kernels": easel_model::cpu::Isa::in_use()})
    );
    for format in formats {
        let (model, load_s) = load(format)?;
        let run = measure(&model, &inputs, critiques, args.batch, load_s)?;
        drop(model);
        let mut line = compare(&reference, &run);
        let fields = json!({"event": "agreement", "weights": format.as_str(), "paintings": inputs.len(),
            "load_s": run.load_s, "score_s_per_painting": run.score_s / inputs.len() as f64,
            "critique_s_per_painting": per(run.critique_s, critiques),
            "score_speedup": reference.score_s / run.score_s,
            "critique_speedup": (critiques > 0).then(|| reference.critique_s / run.critique_s)});
        line.as_object_mut().expect("an object").extend(fields.as_object().expect("an object").clone());
        println!("{line}");
    }
    Ok(())
}

fn per(seconds: f64, count: usize) -> Option<f64> {
    (count > 0).then(|| seconds / count as f64)
}

/// Scores for every painting, then greedy critiques for the first `critiques`, in batches.
fn measure(model: &Assessor, inputs: &[ArtworkInput], critiques: usize, batch: usize, load_s: f64) -> Result<Run> {
    let start = Instant::now();
    let mut scores = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(batch) {
        scores.extend(model.score(chunk)?.into_iter().map(|s| s.scores));
    }
    let score_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut tokens = Vec::with_capacity(critiques);
    for chunk in inputs[..critiques].chunks(batch) {
        tokens.extend(model.assess(chunk)?.into_iter().map(|a| a.tokens));
    }
    Ok(Run { scores, critiques: tokens, load_s, score_s, critique_s: start.elapsed().as_secs_f64() })
}

/// Score differences (all six outputs, 1–100 scale) and token agreement against `reference`.
fn compare(reference: &Run, run: &Run) -> serde_json::Value {
    let pairs: Vec<([f32; 6], [f32; 6])> =
        reference.scores.iter().zip(&run.scores).map(|(a, b)| (a.to_array(), b.to_array())).collect();
    let diffs: Vec<f32> = pairs.iter().flat_map(|(a, b)| a.iter().zip(b).map(|(a, b)| (a - b).abs())).collect();
    let max_by_output: serde_json::Map<String, serde_json::Value> = OUTPUTS
        .iter()
        .enumerate()
        .map(|(o, name)| {
            let max = pairs.iter().map(|(a, b)| (a[o] - b[o]).abs()).fold(0f32, f32::max);
            (name.to_string(), json!(max))
        })
        .collect();
    let mut sorted = diffs.clone();
    sorted.sort_by(f32::total_cmp);
    let quantile = |q: f64| sorted.get(((sorted.len() - 1) as f64 * q).round() as usize).copied();

    // Greedy tokens: the share of positions that agree (over the reference's length), whole
    // critiques that agree, and how long the agreeing start is.
    let (mut same, mut total, mut identical, mut prefix) = (0usize, 0usize, 0usize, 0usize);
    for (a, b) in reference.critiques.iter().zip(&run.critiques) {
        same += a.iter().zip(b).filter(|(x, y)| x == y).count();
        total += a.len().max(b.len());
        identical += usize::from(a == b);
        prefix += a.iter().zip(b).take_while(|(x, y)| x == y).count();
    }
    let critiques = reference.critiques.len();
    json!({
        "score_mean_abs_diff": diffs.iter().sum::<f32>() / diffs.len().max(1) as f32,
        "score_p95_abs_diff": quantile(0.95),
        "score_max_abs_diff": sorted.last(),
        "score_max_abs_diff_by_output": max_by_output,
        "critiques": critiques,
        "token_agreement": (total > 0).then(|| same as f64 / total as f64),
        "identical_critiques": identical,
        "mean_agreeing_prefix_tokens": (critiques > 0).then(|| prefix as f64 / critiques as f64),
        "tokens_compared": total,
    })
}
