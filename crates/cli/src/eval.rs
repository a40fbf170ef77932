//! `easel eval`: runs a checkpoint over a rated manifest and writes the agreement statistics,
//! pairwise ordering accuracy, critique similarity with its deranged control, rubric coverage
//! and (zero-shot checkpoints) raw and cross-validated calibrated figures as JSON, Markdown and
//! SVG plots. docs/TRAINING.md, "Reading the report", explains each number.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use easel_model::{Assessor, GenerationConfig, LoadOptions};
use easel_train::data::{Dataset, Example};

use crate::images::ManifestImages;
use easel_train::embed::SentenceEmbedder;
use easel_train::eval::{
    DEFAULT_DERANGEMENTS, DEFAULT_FOLDS, DEFAULT_ORDERING_GAP, EvalOptions, Served, evaluate,
    predict,
};
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
    /// Pairwise ordering accuracy counts pairs whose true scores differ by at least this much.
    #[arg(long, default_value_t = DEFAULT_ORDERING_GAP)]
    pub ordering_gap: f32,
    /// Derangements (critiques paired with other paintings' expert critiques) the critique
    /// control averages over.
    #[arg(long, default_value_t = DEFAULT_DERANGEMENTS)]
    pub derangements: usize,
    /// Folds of the cross-validated calibration reported for zero-shot checkpoints.
    #[arg(long, default_value_t = DEFAULT_FOLDS)]
    pub folds: usize,
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
    if args.folds < 2 {
        bail!("--folds must be at least 2");
    }
    if !(args.ordering_gap.is_finite() && args.ordering_gap >= 0.0) {
        bail!("--ordering-gap must be a number of points, 0 or more");
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
        weights: args.compute.weights()?,
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

    let bar = progress_bar(rows.len(), args.quiet, "assessing");
    let predictions = predict(&assessor, &rows, &images, args.batch, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();

    let report = evaluate(
        assessor.model_version(),
        Served::of(&assessor),
        &args.data.display().to_string(),
        &rows,
        &predictions,
        embedder.as_ref().map(|e| (e, "all-MiniLM-L6-v2")),
        EvalOptions {
            resamples: args.resamples,
            seed: args.seed,
            bands: args.bands,
            ordering_gap: args.ordering_gap,
            derangements: args.derangements,
            folds: args.folds,
        },
    )?;
    write_report(&report, &args.out)?;
    if let Some(overall) = report.dimensions.first() {
        let a = &overall.agreement;
        let ordering = overall
            .ordering
            .as_ref()
            .map(|o| format!(", ordering {:.3} of {} pairs", o.accuracy.value, o.pairs))
            .unwrap_or_default();
        let gap = report
            .critique
            .gap
            .map(|g| {
                format!(
                    ", critique gap {:.3} [{:.3}, {:.3}]",
                    g.value, g.ci_low, g.ci_high
                )
            })
            .unwrap_or_default();
        eprintln!(
            "{} rows: overall Pearson {:.3} [{:.3}, {:.3}], MAE {:.2}, QWK {:.3}{ordering}{gap}; report in {}",
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

/// The progress bar of a pass over a manifest's rows (`easel eval`, `easel calibrate`).
pub fn progress_bar(len: usize, quiet: bool, prefix: &'static str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}
