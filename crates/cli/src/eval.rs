//! `easel eval`: runs a checkpoint over a rated manifest and writes the agreement statistics,
//! critique similarity and rubric coverage as JSON, Markdown and SVG plots.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use easel_model::{Assessor, GenerationConfig, LoadOptions};
use easel_train::data::{Dataset, Example};

use crate::images::ManifestImages;
use easel_train::embed::SentenceEmbedder;
use easel_train::eval::{EvalOptions, evaluate, predict};
use easel_train::report::write_report;
use indicatif::{ProgressBar, ProgressStyle};

use crate::device::ComputeArgs;

#[derive(Args)]
pub struct EvalArgs {
    /// Easel checkpoint folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Held-out manifest (JSON Lines or .csv, as for `easel train`).
    #[arg(long)]
    pub data: PathBuf,
    /// Folder for report.json, report.md and the SVG plots.
    #[arg(long)]
    pub out: PathBuf,
    /// Evaluate only the rows `easel train` held out: its OUT/split.json.
    #[arg(long)]
    pub split_file: Option<PathBuf>,
    /// Paintings per model batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Critique length budget in tokens (0: scores only). Default: the checkpoint's.
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// all-MiniLM-L6-v2 folder for critique similarity (scripts/fetch-minilm.sh).
    #[arg(long, default_value = ".cache/minilm")]
    pub minilm: PathBuf,
    /// Skip the critique similarity (no sentence-embedding model needed).
    #[arg(long)]
    pub no_similarity: bool,
    /// Bootstrap resamples for the 95% intervals.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Score bands for the quadratic weighted kappa.
    #[arg(long, default_value_t = 5)]
    pub bands: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub compute: ComputeArgs,
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    if args.bands < 2 {
        bail!("--bands must be at least 2");
    }
    let images = ManifestImages::default();
    let dataset = Dataset::load(&args.data, &images)?;
    let rows: Vec<&Example> = match &args.split_file {
        None => dataset.examples.iter().collect(),
        Some(path) => {
            let split: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("parsing {}", path.display()))?;
            let lines: HashSet<usize> = serde_json::from_value(split["val_lines"].clone())
                .with_context(|| format!("{} has no val_lines", path.display()))?;
            dataset
                .examples
                .iter()
                .filter(|e| lines.contains(&e.line))
                .collect()
        }
    };
    if rows.is_empty() {
        bail!("no rows to evaluate");
    }
    let device = args.compute.device()?;
    let mut options = LoadOptions {
        device: device.clone(),
        dtype: args.compute.dtype()?,
        ..LoadOptions::cpu()
    };
    options.max_batch = args.batch.max(1);
    let assessor = {
        let probe = easel_model::Manifest::read(&args.model)?;
        let mut generation: GenerationConfig = probe.generation.clone();
        if let Some(n) = args.max_new_tokens {
            generation.max_new_tokens = n;
        }
        Assessor::load(&args.model, options.with_generation(generation))?
    };
    let critiques_wanted =
        assessor.generation().max_new_tokens > 0 && rows.iter().any(|r| r.critique.is_some());
    let embedder = if critiques_wanted && !args.no_similarity {
        Some(
            SentenceEmbedder::load(&args.minilm, &device)
                .context("loading the sentence-embedding model (or pass --no-similarity)")?,
        )
    } else {
        None
    };

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(rows.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("assessing");
    let predictions = predict(&assessor, &rows, &images, args.batch, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();

    let report = evaluate(
        assessor.model_version(),
        &args.data.display().to_string(),
        &rows,
        &predictions,
        embedder.as_ref().map(|e| (e, "all-MiniLM-L6-v2")),
        EvalOptions {
            resamples: args.resamples,
            seed: args.seed,
            bands: args.bands,
        },
    )?;
    write_report(&report, &args.out)?;
    if let Some(overall) = report.dimensions.first() {
        let a = &overall.agreement;
        eprintln!(
            "{} rows: overall Pearson {:.3} [{:.3}, {:.3}], MAE {:.2}, QWK {:.3}; report in {}",
            report.rows,
            a.pearson.value,
            a.pearson.ci_low,
            a.pearson.ci_high,
            a.mae.value,
            a.qwk.value,
            args.out.join("report.md").display()
        );
    }
    Ok(())
}
