//! `easel calibrate`: fits a zero-shot checkpoint's scores onto a jury's scale and writes a new
//! checkpoint that serves them calibrated.
//!
//! Every row of a rated manifest is scored zero-shot; for each output the raters scored, a
//! monotone map from the raw zero-shot scores to the rows' scores is fitted
//! (`easel_model::calibration`: isotonic from 30 entries, a line below) and its error on unseen
//! entries estimated by k-fold cross-validation. The new folder holds the original's files
//! (hard-linked, so it costs no disk) and an `easel.json` with the maps; the original is left
//! as it is, so the uncalibrated model stays servable and comparable.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use easel_model::calibration::{Calibration, CalibrationSet, OutputFit, fit_outputs};
use easel_model::manifest::MANIFEST_FILE;
use easel_model::{Assessor, LoadOptions, Manifest, RubricScores, ScoringMode};
use easel_train::data::{Dataset, Example};
use easel_train::eval::artwork_inputs;
use serde::Serialize;

use crate::device::ComputeArgs;
use crate::eval::progress_bar;
use crate::images::ManifestImages;

/// The per-output figures written beside the calibrated checkpoint's `easel.json`.
pub const REPORT_FILE: &str = "calibration-report.json";

#[derive(Args)]
pub struct CalibrateArgs {
    /// Zero-shot checkpoint: an Easel checkpoint without a head, or a plain Hugging Face
    /// Qwen2-VL folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Rated manifest (JSON Lines or .csv, as for `easel train`): the jury's scores to fit.
    #[arg(long, required_unless_present = "calibration")]
    pub data: Option<PathBuf>,
    /// Install a calibration fitted elsewhere instead of fitting one: the JSON the API's
    /// `GET /v1/competitions/{slug}/rounds/{round}/calibration` returns (its `model_version`
    /// must be the one --model serves), or an `easel.json` `calibration` section alone.
    #[arg(long, conflicts_with = "data")]
    pub calibration: Option<PathBuf>,
    /// New checkpoint folder (must not exist, or be empty): --model's files hard-linked, and an
    /// easel.json with the calibration.
    #[arg(long)]
    pub out: PathBuf,
    /// Paintings per model batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Folds of the cross-validation that estimates the calibration's error on unseen entries
    /// (leave-one-out when there are fewer entries).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Seed of the cross-validation's folds.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `calibration-report.json`.
#[derive(Serialize)]
struct Report {
    model: String,
    model_version: String,
    data: String,
    entries: usize,
    folds: usize,
    seed: u64,
    outputs: Vec<OutputFit>,
}

/// The most bytes of a `--calibration` file (a round's response is a few kilobytes).
const MAX_CALIBRATION_BYTES: u64 = 16 << 20;

pub fn run(args: CalibrateArgs) -> Result<()> {
    if args.folds < 2 {
        bail!("--folds must be at least 2");
    }
    check_out(&args.model, &args.out)?;
    if let Some(file) = &args.calibration {
        return install(&args, file);
    }
    let data = args.data.as_deref().context("--data or --calibration is required")?;
    let images = ManifestImages::default();
    let dataset = Dataset::load(data, &images)?;
    let rows: Vec<&Example> = dataset.examples.iter().collect();
    if rows.len() < 2 {
        bail!(
            "{} has {} rated rows: a calibration needs at least 2",
            data.display(),
            rows.len()
        );
    }

    let mut options = LoadOptions {
        device: args.compute.device()?,
        dtype: args.compute.dtype()?,
        weights: args.compute.weights()?,
        ..LoadOptions::cpu()
    };
    options.max_batch = args.batch.max(1);
    let assessor = Assessor::load(&args.model, options)
        .with_context(|| format!("loading the checkpoint {}", args.model.display()))?;
    refuse_head(&args.model, assessor.scoring())?;

    let bar = progress_bar(rows.len(), args.quiet, "scoring");
    let mut raw: Vec<RubricScores<f32>> = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(args.batch.max(1)) {
        for scored in assessor.score(&artwork_inputs(chunk, &images, &assessor)?)? {
            let zero_shot = scored
                .zero_shot
                .context("a zero-shot checkpoint returned no zero-shot reading")?;
            raw.push(zero_shot.raw);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();

    let fits = fit_outputs(&pairs(&rows, &raw), args.folds, args.seed)
        .context("fitting the calibration")?;
    print_fits(&fits, rows.len(), &args.model, data);
    let note = format!(
        "easel calibrate on {} ({} rows); cross-validated figures in {REPORT_FILE}",
        data.display(),
        rows.len()
    );
    let set = CalibrationSet::from_fits(&fits, rows.len(), note);
    let report = Report {
        model: args.model.display().to_string(),
        model_version: assessor.model_version().to_string(),
        data: data.display().to_string(),
        entries: rows.len(),
        folds: args.folds,
        seed: args.seed,
        outputs: fits,
    };

    // The manifest the checkpoint was loaded with: its own easel.json, or for a plain Hugging
    // Face folder the zero-shot manifest the model crate gives it.
    write_checkpoint(&args, assessor.manifest().clone(), set, Some(&report))
}

/// `--calibration FILE`: a calibration fitted on a jury round by the API, installed as is.
fn install(args: &CalibrateArgs, file: &Path) -> Result<()> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("--calibration {}", file.display()))?
        .len();
    if size > MAX_CALIBRATION_BYTES {
        bail!(
            "--calibration {} is {size} bytes: a calibration is a few kilobytes (at most {MAX_CALIBRATION_BYTES})",
            file.display()
        );
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading {}", file.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", file.display()))?;
    // The API's response carries the section under `calibration` with the version it was
    // fitted on; an easel.json section alone has `maps` at the top.
    let (section, fitted_on) = if value.get("maps").is_some() {
        (value.clone(), None)
    } else {
        let section = value.get("calibration").cloned().with_context(|| {
            format!(
                "{} has neither `calibration` (the API's response) nor `maps` (an easel.json section)",
                file.display()
            )
        })?;
        (section, value.get("model_version").and_then(|v| v.as_str()))
    };
    if section.is_null() {
        bail!(
            "{} holds no calibration: no output could be fitted (each output's `reason` says why)",
            file.display()
        );
    }
    let set: CalibrationSet = serde_json::from_value(section)
        .with_context(|| format!("{}: not a calibration", file.display()))?;
    set.validate()
        .with_context(|| format!("{}: an invalid calibration", file.display()))?;

    let manifest = Manifest::read(&args.model)
        .with_context(|| format!("reading the checkpoint {}", args.model.display()))?;
    refuse_head(&args.model, manifest.scoring())?;
    let serves = manifest.served_version(ScoringMode::ZeroShot);
    if let Some(fitted_on) = fitted_on
        && fitted_on != serves
    {
        bail!(
            "{} was fitted on the raw scores of {fitted_on}, but {} serves {serves}: ask the API with \
             ?model_version={serves}, or calibrate the checkpoint that served {fitted_on}",
            file.display(),
            args.model.display()
        );
    }
    write_checkpoint(args, manifest, set, None)
}

/// A head's scores are already on its training data's scale.
fn refuse_head(model: &Path, scoring: ScoringMode) -> Result<()> {
    if scoring != ScoringMode::ZeroShot {
        bail!(
            "{} scores with a trained regression head, already on its training data's scale; \
             `easel calibrate` maps zero-shot scores (a checkpoint without a head, or a plain \
             Hugging Face Qwen2-VL folder)",
            model.display()
        );
    }
    Ok(())
}

/// Writes `--out`: `--model`'s files hard-linked, the report (when fitted here) and `manifest`
/// serving zero-shot through `set`. A calibration the checkpoint had is replaced: maps are
/// always fitted on raw scores.
fn write_checkpoint(
    args: &CalibrateArgs,
    mut manifest: Manifest,
    set: CalibrationSet,
    report: Option<&Report>,
) -> Result<()> {
    manifest.scoring = Some(ScoringMode::ZeroShot);
    manifest.calibration = Some(set);
    let linked = link_tree(&args.model, &args.out, &[MANIFEST_FILE, REPORT_FILE])?;
    if let Some(report) = report {
        let report_path = args.out.join(REPORT_FILE);
        std::fs::write(&report_path, serde_json::to_string_pretty(report)? + "\n")
            .with_context(|| format!("writing {}", report_path.display()))?;
    }
    // easel.json last, so a reader never sees a manifest without its files.
    manifest.write(&args.out)?;
    let served = manifest.served_version(ScoringMode::ZeroShot);
    println!(
        "calibrated checkpoint in {} ({linked} files from {}; served as {served})",
        args.out.display(),
        args.model.display()
    );
    Ok(())
}

/// Each output's `(raw, target)` pairs: the rows that have its score.
fn pairs(rows: &[&Example], raw: &[RubricScores<f32>]) -> RubricScores<Vec<[f32; 2]>> {
    RubricScores::from_array(std::array::from_fn(|d| {
        rows.iter()
            .zip(raw)
            .filter_map(|(row, r)| row.targets()[d].map(|t| [r.to_array()[d], t]))
            .collect()
    }))
}

fn print_fits(fits: &[OutputFit], rows: usize, model: &Path, data: &Path) {
    println!(
        "calibration of {} on {rows} rows of {}",
        model.display(),
        data.display()
    );
    println!(
        "{:<12} {:>5}  {:<9} cross-validated MAE: raw → calibrated",
        "output", "n", "method"
    );
    for fit in fits {
        let method = fit.map.as_ref().map_or("-", Calibration::method);
        let mae = fit.cross_validation.as_ref().map_or_else(
            || "n/a".to_string(),
            |cv| {
                format!(
                    "{:.2} → {:.2} ({} folds)",
                    cv.mae_raw, cv.mae_calibrated, cv.folds
                )
            },
        );
        println!("{:<12} {:>5}  {:<9} {mae}", fit.name, fit.n, method);
        println!("{:<12} {}", "", fit.reason);
    }
}

/// Refuses an `--out` that is `--model`, lies inside it (linking a folder into itself never
/// ends), or already holds files.
fn check_out(model: &Path, out: &Path) -> Result<()> {
    let model_abs = model
        .canonicalize()
        .with_context(|| format!("--model {}", model.display()))?;
    let out_abs = resolve(out).with_context(|| format!("--out {}", out.display()))?;
    if out_abs == model_abs {
        bail!(
            "--out is --model: the calibrated checkpoint is a new folder, and the original stays as it is"
        );
    }
    if out_abs.starts_with(&model_abs) {
        bail!(
            "--out {} is inside --model {}: pick a folder beside it",
            out.display(),
            model.display()
        );
    }
    if out.exists() {
        let mut entries = std::fs::read_dir(out).with_context(|| {
            format!(
                "--out {} exists and is not a readable folder",
                out.display()
            )
        })?;
        if entries.next().is_some() {
            bail!(
                "--out {} exists and is not empty: pick a new folder",
                out.display()
            );
        }
    }
    Ok(())
}

/// `path` made absolute with symbolic links resolved as far as it exists.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    while !existing.exists() {
        let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
            break;
        };
        missing.push(name);
        existing = parent;
    }
    let mut resolved = existing.canonicalize()?;
    resolved.extend(missing.iter().rev());
    Ok(resolved)
}

/// Hard-links every file under `from` into `to` (copies where a link is impossible, e.g.
/// across file systems), folders recursively, except the top-level names in `skip`. Symbolic
/// links are followed (a Hugging Face cache snapshot is links into `blobs/`; a copied relative
/// link would dangle). Returns the number of files.
fn link_tree(from: &Path, to: &Path, skip: &[&str]) -> Result<usize> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut files = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let source = entry
            .path()
            .canonicalize()
            .with_context(|| format!("{} (a broken link?)", entry.path().display()))?;
        let target = to.join(&name);
        if source.is_dir() {
            files += link_tree(&source, &target, &[])?;
        } else if source.is_file() {
            if std::fs::hard_link(&source, &target).is_err() {
                std::fs::copy(&source, &target).with_context(|| {
                    format!("copying {} to {}", source.display(), target.display())
                })?;
            }
            files += 1;
        }
    }
    Ok(files)
}
