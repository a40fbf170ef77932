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
use easel_model::calibration::{Calibration, CalibrationSet, CvFigures, cross_validate};
use easel_model::manifest::MANIFEST_FILE;
use easel_model::{Assessor, LoadOptions, OUTPUTS, RubricScores, ScoringMode};
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
    #[arg(long)]
    pub data: PathBuf,
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

/// One output's calibration: how many rows scored it, the map, why that method, and its
/// cross-validated figures.
#[derive(Serialize)]
struct OutputFit {
    name: &'static str,
    n: usize,
    map: Option<Calibration>,
    reason: String,
    cross_validation: Option<CvFigures>,
}

pub fn run(args: CalibrateArgs) -> Result<()> {
    if args.folds < 2 {
        bail!("--folds must be at least 2");
    }
    check_out(&args.model, &args.out)?;
    let images = ManifestImages::default();
    let dataset = Dataset::load(&args.data, &images)?;
    let rows: Vec<&Example> = dataset.examples.iter().collect();
    if rows.len() < 2 {
        bail!(
            "{} has {} rated rows: a calibration needs at least 2",
            args.data.display(),
            rows.len()
        );
    }

    let mut options = LoadOptions {
        device: args.compute.device()?,
        dtype: args.compute.dtype()?,
        ..LoadOptions::cpu()
    };
    options.max_batch = args.batch.max(1);
    let assessor = Assessor::load(&args.model, options)
        .with_context(|| format!("loading the checkpoint {}", args.model.display()))?;
    if assessor.scoring() != ScoringMode::ZeroShot {
        bail!(
            "{} scores with a trained regression head, already on its training data's scale; \
             `easel calibrate` maps zero-shot scores (a checkpoint without a head, or a plain \
             Hugging Face Qwen2-VL folder)",
            args.model.display()
        );
    }

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

    let fits = fit_outputs(&rows, &raw, args.folds, args.seed)?;
    print_fits(&fits, rows.len(), &args);
    let set = CalibrationSet {
        entries: rows.len(),
        note: format!(
            "easel calibrate on {} ({} rows); cross-validated figures in {REPORT_FILE}",
            args.data.display(),
            rows.len()
        ),
        maps: RubricScores::from_array(std::array::from_fn(|d| fits[d].map.clone())),
    };
    let report = Report {
        model: args.model.display().to_string(),
        model_version: assessor.model_version().to_string(),
        data: args.data.display().to_string(),
        entries: rows.len(),
        folds: args.folds,
        seed: args.seed,
        outputs: fits,
    };

    // The manifest the checkpoint was loaded with: its own easel.json, or for a plain Hugging
    // Face folder the zero-shot manifest the model crate gives it. A calibration it had is
    // replaced: the maps above were fitted on the raw scores.
    let mut manifest = assessor.manifest().clone();
    manifest.scoring = Some(ScoringMode::ZeroShot);
    manifest.calibration = Some(set);
    let linked = link_tree(&args.model, &args.out, &[MANIFEST_FILE, REPORT_FILE])?;
    let report_path = args.out.join(REPORT_FILE);
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", report_path.display()))?;
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

/// Fits each output on the rows that have its score.
fn fit_outputs(
    rows: &[&Example],
    raw: &[RubricScores<f32>],
    folds: usize,
    seed: u64,
) -> Result<Vec<OutputFit>> {
    let mut fits = Vec::with_capacity(OUTPUTS.len());
    for (d, name) in OUTPUTS.into_iter().enumerate() {
        let (x, y): (Vec<f32>, Vec<f32>) = rows
            .iter()
            .zip(raw)
            .filter_map(|(row, r)| row.targets()[d].map(|t| (r.to_array()[d], t)))
            .unzip();
        if x.len() < 2 {
            fits.push(OutputFit {
                name,
                n: x.len(),
                map: None,
                reason: format!(
                    "not calibrated: {} rows score {name}, and a map needs 2",
                    x.len()
                ),
                cross_validation: None,
            });
            continue;
        }
        let fitted =
            Calibration::fit(&x, &y).with_context(|| format!("fitting the {name} calibration"))?;
        fits.push(OutputFit {
            name,
            n: x.len(),
            map: Some(fitted.map),
            reason: fitted.method_reason,
            // Fewer than 3 entries leave a fold's fit without 2: no estimate, the map stands.
            cross_validation: cross_validate(&x, &y, folds, seed).ok(),
        });
    }
    Ok(fits)
}

fn print_fits(fits: &[OutputFit], rows: usize, args: &CalibrateArgs) {
    println!(
        "calibration of {} on {rows} rows of {}",
        args.model.display(),
        args.data.display()
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
