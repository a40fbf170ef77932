//! `easel score`: the single-machine job. Finds images, prepares them on all cores while the
//! model runs, and writes one record per painting.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use easel_model::zero_shot::LEVEL_WORDS;
use easel_model::{
    ArtworkInput, Assessor, DecodeLimits, GenerationConfig, LoadOptions, Manifest, OUTPUTS,
    PreparedImage, RubricScores, ScoringMode,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::device::ComputeArgs;

const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif"];

#[derive(Args)]
pub struct ScoreArgs {
    /// Image files or folders (searched recursively). A painting's description is read from a
    /// sidecar text file with the same stem (`dawn.jpg` → `dawn.txt`), when present.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Checkpoint folder: HF Qwen2-VL files, plus easel.json and head.safetensors for a trained
    /// head. A plain HF download (no head) scores zero-shot.
    #[arg(long)]
    pub model: PathBuf,
    /// Score zero-shot (level-word probabilities of the language model) even where the
    /// checkpoint has a trained head; records then carry `uncertainty` and `levels`.
    #[arg(long)]
    pub zero_shot: bool,
    /// Output file; `.csv` writes CSV, anything else JSON Lines. Default: JSON Lines on stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Paintings per model batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Critique length budget in tokens (0: scores only). Default: the checkpoint's.
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Sampling temperature (0: greedy). Default: the checkpoint's.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Pixel cap per painting. Default: the checkpoint's (easel.json).
    #[arg(long)]
    pub max_pixels: Option<usize>,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// One output record: a JSON line as it is, a CSV row through [`Record::csv_cells`].
#[derive(Serialize)]
struct Record<'a> {
    file: String,
    #[serde(flatten)]
    scores: RubricScores<f32>,
    /// `head` or `zero-shot`.
    scoring: ScoringMode,
    /// Zero-shot only: each score's standard deviation on the 1–100 scale.
    uncertainty: Option<RubricScores<f32>>,
    /// Zero-shot only: `[p_excellent, p_good, p_fair, p_poor, p_bad]` per output.
    levels: Option<RubricScores<[f32; 5]>>,
    critique: &'a str,
    model_version: &'a str,
    preprocess_ms: f64,
    vision_ms: f64,
    head_ms: f64,
    generate_ms: f64,
    batch_size: usize,
}

impl Record<'_> {
    /// The CSV header: the JSON fields, in their order, objects spread over one column per
    /// output (`uncertainty_color`) and level (`levels_color_excellent`).
    fn csv_header() -> Vec<String> {
        let uncertainty = OUTPUTS.map(|name| format!("uncertainty_{name}"));
        let levels = OUTPUTS.into_iter().flat_map(|name| LEVEL_WORDS.map(|w| format!("levels_{name}_{}", w.trim())));
        ["file"]
            .into_iter()
            .chain(OUTPUTS)
            .chain(["scoring"])
            .map(str::to_string)
            .chain(uncertainty)
            .chain(levels)
            .chain([
                "critique",
                "model_version",
                "preprocess_ms",
                "vision_ms",
                "head_ms",
                "generate_ms",
                "batch_size",
            ].map(str::to_string))
            .collect()
    }

    /// The CSV row, under [`Record::csv_header`]: the csv crate cannot write the flattened
    /// scores itself, but writes an array's items as cells.
    fn csv_cells(&self) -> impl Serialize + '_ {
        let levels: Vec<Option<f32>> = match &self.levels {
            Some(levels) => levels.to_array().into_iter().flatten().map(Some).collect(),
            None => vec![None; OUTPUTS.len() * LEVEL_WORDS.len()],
        };
        (
            &self.file,
            self.scores.to_array(),
            self.scoring.as_str(),
            self.uncertainty.map_or([None; 6], |u| u.to_array().map(Some)),
            levels,
            self.critique,
            self.model_version,
            self.preprocess_ms,
            self.vision_ms,
            self.head_ms,
            self.generate_ms,
            self.batch_size,
        )
    }
}

struct Prepared {
    path: PathBuf,
    input: ArtworkInput,
    preprocess_ms: f64,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let files = collect_images(&args.inputs)?;
    if files.is_empty() {
        bail!("no images found in {:?}", args.inputs);
    }
    let mut options = LoadOptions::cpu();
    options.device = args.compute.device()?;
    options.dtype = args.compute.dtype()?;
    options.weights = args.compute.weights()?;
    options.max_pixels = args.max_pixels;
    options.max_batch = args.batch.max(1);
    options.scoring = args.zero_shot.then_some(ScoringMode::ZeroShot);
    let mut generation: GenerationConfig = Manifest::read(&args.model)?.generation;
    if let Some(n) = args.max_new_tokens {
        generation.max_new_tokens = n;
    }
    if let Some(t) = args.temperature {
        generation.temperature = t;
    }
    let assessor = Assessor::load(&args.model, options.with_generation(generation))
        .with_context(|| format!("loading the checkpoint {}", args.model.display()))?;
    let mut sink = Sink::open(args.out.as_deref())?;

    let progress = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(files.len() as u64)
    };
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} paintings {per_sec} eta {eta} {msg}")
            .expect("valid template"),
    );

    // Decode and resize on every core while the model works on the previous batch.
    let (sender, receiver) =
        mpsc::sync_channel::<(PathBuf, Result<Prepared, String>)>(args.batch.max(1) * 2);
    let processor = assessor.processor().clone();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let queue = std::sync::Arc::new(std::sync::Mutex::new(files.clone().into_iter()));
    let limits = DecodeLimits::default().any_format();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (sender, queue, processor, limits) = (
            sender.clone(),
            queue.clone(),
            processor.clone(),
            limits.clone(),
        );
        handles.push(std::thread::spawn(move || {
            loop {
                let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                let Some(path) = next else { break };
                let start = Instant::now();
                let result = processor
                    .prepare_file(&path, &limits)
                    .map_err(|e| e.to_string())
                    .and_then(|image: PreparedImage| {
                        Ok(Prepared {
                            input: ArtworkInput {
                                image,
                                description: read_sidecar(&path)?,
                            },
                            path: path.clone(),
                            preprocess_ms: start.elapsed().as_secs_f64() * 1e3,
                        })
                    });
                if sender.send((path, result)).is_err() {
                    break;
                }
            }
        }));
    }
    drop(sender);

    let mut skipped: Vec<(PathBuf, String)> = Vec::new();
    let mut scored = 0usize;
    let mut pending: Vec<Prepared> = Vec::new();
    let mut flush = |pending: &mut Vec<Prepared>, sink: &mut Sink| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let inputs: Vec<ArtworkInput> = pending.iter().map(|p| p.input.clone()).collect();
        let assessments = assessor.assess(&inputs)?;
        for (prepared, assessment) in pending.iter().zip(&assessments) {
            sink.write(&Record {
                file: prepared.path.display().to_string(),
                scores: assessment.scores,
                scoring: assessment.scoring(),
                uncertainty: assessment.zero_shot.as_ref().map(|z| z.uncertainty),
                levels: assessment.zero_shot.as_ref().map(|z| z.levels),
                critique: &assessment.critique,
                model_version: assessor.model_version(),
                preprocess_ms: prepared.preprocess_ms,
                vision_ms: assessment.timings.vision_ms,
                head_ms: assessment.timings.head_ms,
                generate_ms: assessment.timings.generate_ms,
                batch_size: assessment.timings.batch_size,
            })?;
        }
        scored += pending.len();
        progress.inc(pending.len() as u64);
        pending.clear();
        Ok(())
    };
    for (path, result) in receiver {
        match result {
            Ok(prepared) => {
                pending.push(prepared);
                if pending.len() >= args.batch.max(1) {
                    flush(&mut pending, &mut sink)?;
                }
            }
            Err(reason) => {
                progress.suspend(|| eprintln!("skipped {}: {reason}", path.display()));
                progress.inc(1);
                skipped.push((path, reason));
            }
        }
    }
    flush(&mut pending, &mut sink)?;
    for handle in handles {
        let _ = handle.join();
    }
    sink.finish()?;
    progress.finish_and_clear();
    eprintln!("scored {scored} painting(s), skipped {}", skipped.len());
    for (path, reason) in &skipped {
        eprintln!("  {}: {reason}", path.display());
    }
    if scored == 0 {
        bail!("no painting could be scored");
    }
    Ok(())
}

/// Image files under `inputs`, sorted, each once.
pub(crate) fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut files)?;
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            bail!("{} does not exist", input.display());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if has_image_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The painting's description from `<stem>.txt` beside it.
pub(crate) fn read_sidecar(image: &Path) -> Result<Option<String>, String> {
    let sidecar = image.with_extension("txt");
    if !sidecar.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&sidecar).map_err(|e| format!("{}: {e}", sidecar.display()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", sidecar.display()))?;
    Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()))
}

enum Sink {
    Jsonl(Box<dyn Write>),
    Csv(csv::Writer<Box<dyn Write>>),
}

impl Sink {
    fn open(path: Option<&Path>) -> Result<Self> {
        let writer: Box<dyn Write> = match path {
            Some(p) => Box::new(BufWriter::new(
                File::create(p).with_context(|| format!("creating {}", p.display()))?,
            )),
            None => Box::new(BufWriter::new(std::io::stdout())),
        };
        let csv = path
            .and_then(|p| p.extension())
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        Ok(if csv {
            let mut writer = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(writer);
            writer.write_record(Record::csv_header())?;
            Sink::Csv(writer)
        } else {
            Sink::Jsonl(writer)
        })
    }

    fn write(&mut self, record: &Record) -> Result<()> {
        match self {
            Sink::Jsonl(w) => {
                serde_json::to_writer(&mut *w, record)?;
                w.write_all(b"\n")?;
            }
            Sink::Csv(w) => w.serialize(record.csv_cells())?,
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Jsonl(mut w) => w.flush()?,
            Sink::Csv(mut w) => w.flush()?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_are_the_json_fields_in_order() {
        let record = Record {
            file: "a.jpg".into(),
            scores: RubricScores::from_array([71.5, 2.0, 3.0, 4.0, 5.0, 6.0]),
            scoring: ScoringMode::Head,
            uncertainty: None,
            levels: None,
            critique: "Fine.",
            model_version: "v1",
            preprocess_ms: 1.0,
            vision_ms: 2.0,
            head_ms: 3.0,
            generate_ms: 4.0,
            batch_size: 1,
        };
        let json = serde_json::to_string(&record).unwrap();
        // The JSON object's fields in the header's order; its objects spread over columns.
        let header = Record::csv_header();
        let mut fields_in_header: Vec<&str> = Vec::new();
        for name in &header {
            let field = ["uncertainty", "levels"].into_iter().find(|o| name.starts_with(&format!("{o}_"))).unwrap_or(name);
            if fields_in_header.last() != Some(&field) {
                fields_in_header.push(field);
            }
        }
        let positions: Vec<usize> = fields_in_header
            .iter()
            .map(|name| json.find(&format!("\"{name}\":")).expect(name))
            .collect();
        assert!(positions.is_sorted(), "{header:?} vs {json}");
        let fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&json).unwrap();
        assert_eq!(fields.len(), fields_in_header.len());
        assert_eq!(header.len(), 1 + 6 + 1 + 6 + 30 + 7);

        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        writer.serialize(record.csv_cells()).unwrap();
        let row = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(
            row,
            format!("a.jpg,71.5,2.0,3.0,4.0,5.0,6.0,head,{}Fine.,v1,1.0,2.0,3.0,4.0,1\n", ",".repeat(36))
        );

        let zero_shot = Record {
            scoring: ScoringMode::ZeroShot,
            uncertainty: Some(RubricScores::from_array([1.5; 6])),
            levels: Some(RubricScores::from_array([[0.5, 0.25, 0.125, 0.0625, 0.0625]; 6])),
            ..record
        };
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        writer.serialize(zero_shot.csv_cells()).unwrap();
        let row = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        let cells: Vec<&str> = row.trim_end().split(',').collect();
        assert_eq!(cells.len(), header.len());
        let cell = |name: &str| cells[header.iter().position(|h| h == name).expect(name)];
        assert_eq!(cell("scoring"), "zero-shot");
        assert_eq!(cell("uncertainty_texture"), "1.5");
        assert_eq!(cell("levels_overall_excellent"), "0.5");
        assert_eq!(cell("levels_content_bad"), "0.0625");
    }
}
