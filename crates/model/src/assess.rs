//! The multi-task model's one batch API: paintings and descriptions in, scores and critiques
//! out. The CLI and the worker both call [`Assessor::assess`], so batching lives here.
//!
//! Scores come from one of two scorers, chosen by the checkpoint ([`Manifest::scoring`]): the
//! trained regression head, or zero-shot level tokens ([`crate::zero_shot`]) mapped through the
//! checkpoint's calibration when it has one. Everything after the scores is the same.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use easel_rubric::{RubricScores, ScoringMode};
use serde::{Deserialize, Serialize};

use crate::calibration::CalibrationSet;
use crate::error::{ModelError, Result};
use crate::generate::{GenerationConfig, Request, generate};
use crate::head::RegressionHead;
use crate::manifest::Manifest;
use crate::pipeline::Qwen2Vl;
use crate::processor::{ImageProcessor, PreparedImage};
use crate::prompt::PromptBuilder;
use crate::processor::Grid;
use crate::zero_shot::{ZeroShot, ZeroShotScorer};

/// How to load an Easel checkpoint.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: Device,
    pub dtype: DType,
    /// Replaces the checkpoint's generation settings.
    pub generation: Option<GenerationConfig>,
    /// Replaces the checkpoint's pixel cap.
    pub max_pixels: Option<usize>,
    /// Most paintings run through the model at once; larger batches are split.
    pub max_batch: usize,
    /// Replaces the checkpoint's scoring mode (`easel score --zero-shot`).
    pub scoring: Option<ScoringMode>,
    /// How the dense layers' weights are held (CPU, f32 model): `--weights`.
    pub weights: crate::WeightFormat,
}

impl LoadOptions {
    pub fn cpu() -> Self {
        Self { device: Device::Cpu, dtype: DType::F32, generation: None, max_pixels: None, max_batch: 16, scoring: None, weights: crate::WeightFormat::F32 }
    }

    pub fn with_generation(mut self, generation: GenerationConfig) -> Self {
        self.generation = Some(generation);
        self
    }
}

/// One painting to assess.
#[derive(Debug, Clone)]
pub struct ArtworkInput {
    pub image: PreparedImage,
    pub description: Option<String>,
}

/// Wall-clock time of the batch an assessment was part of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Vision tower (one pass shared by the scores and the critique).
    pub vision_ms: f64,
    /// The scores: the head, or the zero-shot prompts.
    pub head_ms: f64,
    /// Prompt building, prefill and decoding.
    pub generate_ms: f64,
    /// Paintings in the batch.
    pub batch_size: usize,
}

/// A painting's scores: what is reported (calibrated where the checkpoint is), and in
/// zero-shot mode what they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub scores: RubricScores<f32>,
    pub zero_shot: Option<ZeroShot>,
}

impl Scored {
    /// Each score's uncertainty on the reported scale (zero-shot only).
    pub fn uncertainty(&self) -> Option<RubricScores<f32>> {
        self.zero_shot.as_ref().map(|z| z.uncertainty)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub scores: RubricScores<f32>,
    /// The zero-shot reading behind `scores` (`None` for a head's scores).
    pub zero_shot: Option<ZeroShot>,
    pub critique: String,
    /// Tokens generated for the critique.
    pub new_tokens: usize,
    /// Their ids (for comparing runs; not part of a result).
    #[serde(skip)]
    pub tokens: Vec<u32>,
    /// Whether the critique ended on its own (false: cut at the token budget).
    pub finished: bool,
    pub timings: Timings,
}

/// Where the scores come from.
enum Scorer {
    Head(RegressionHead),
    ZeroShot { scorer: ZeroShotScorer, calibration: Option<CalibrationSet> },
}

impl Assessment {
    /// How `scores` were made.
    pub fn scoring(&self) -> ScoringMode {
        if self.zero_shot.is_some() { ScoringMode::ZeroShot } else { ScoringMode::Head }
    }
}

/// A loaded Easel checkpoint.
pub struct Assessor {
    vlm: Qwen2Vl,
    scorer: Scorer,
    prompt: PromptBuilder,
    manifest: Manifest,
    model_version: String,
    generation: GenerationConfig,
    max_batch: usize,
}

impl Assessor {
    /// Loads `dir`: an HF Qwen2-VL folder plus `easel.json` and the head's weights.
    pub fn load(dir: &Path, options: LoadOptions) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        let mut processor = crate::checkpoint::CheckpointFiles::locate(dir)?.read_processor_config()?;
        if let Some(min) = manifest.processor.min_pixels {
            processor.min_pixels = min;
        }
        if let Some(max) = options.max_pixels.or(manifest.processor.max_pixels) {
            processor.max_pixels = max;
        }
        let mut vlm = Qwen2Vl::load(dir, &options.device, options.dtype, Some(processor))?;
        let mode = options.scoring.unwrap_or_else(|| manifest.scoring());
        let scorer = match mode {
            ScoringMode::Head => {
                let (Some(entry), Some(path)) = (&manifest.head, manifest.head_path(dir)?) else {
                    return Err(ModelError::Head("easel.json names no head: this checkpoint scores zero-shot".into()));
                };
                entry.config.validate(vlm.config().text.hidden_size)?;
                Scorer::Head(RegressionHead::load(&path, &entry.config, &options.device)?)
            }
            ScoringMode::ZeroShot => Scorer::ZeroShot {
                scorer: ZeroShotScorer::new(&vlm, &manifest.zero_shot)?,
                calibration: manifest.calibration.clone(),
            },
        };
        if let Some(adapter) = manifest.lora_dir(dir)? {
            crate::lora::LoraAdapter::load(&adapter, &options.device, options.dtype)?.attach(&mut vlm.model)?;
        }
        vlm.model.pack_weights(options.weights)?;
        let generation = options.generation.clone().unwrap_or_else(|| manifest.generation.clone());
        generation.validate()?;
        let prompt = PromptBuilder::new(manifest.prompt.clone())?;
        let model_version = manifest.served_version(mode);
        Ok(Self { vlm, scorer, prompt, manifest, model_version, generation, max_batch: options.max_batch.max(1) })
    }

    /// The version results are recorded under ([`Manifest::served_version`]).
    pub fn model_version(&self) -> &str {
        &self.model_version
    }

    pub fn scoring(&self) -> ScoringMode {
        match self.scorer {
            Scorer::Head(_) => ScoringMode::Head,
            Scorer::ZeroShot { .. } => ScoringMode::ZeroShot,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The CPU-side image processor; cheap to clone into worker threads.
    pub fn processor(&self) -> &ImageProcessor {
        &self.vlm.processor
    }

    pub fn vlm(&self) -> &Qwen2Vl {
        &self.vlm
    }

    /// The regression head, when this checkpoint scores with one.
    pub fn head(&self) -> Option<&RegressionHead> {
        match &self.scorer {
            Scorer::Head(head) => Some(head),
            Scorer::ZeroShot { .. } => None,
        }
    }

    /// The zero-shot scorer, when this checkpoint scores zero-shot.
    pub fn zero_shot(&self) -> Option<&ZeroShotScorer> {
        match &self.scorer {
            Scorer::Head(_) => None,
            Scorer::ZeroShot { scorer, .. } => Some(scorer),
        }
    }

    pub fn prompt(&self) -> &PromptBuilder {
        &self.prompt
    }

    pub fn generation(&self) -> &GenerationConfig {
        &self.generation
    }

    /// Scores and critiques a batch, in input order.
    pub fn assess(&self, batch: &[ArtworkInput]) -> Result<Vec<Assessment>> {
        let mut out = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(self.max_batch) {
            out.extend(self.assess_chunk(chunk)?);
        }
        Ok(out)
    }

    /// Scores only (vision tower and scorer, no critique), in input order.
    pub fn score(&self, batch: &[ArtworkInput]) -> Result<Vec<Scored>> {
        let mut out = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(self.max_batch) {
            let images: Vec<&PreparedImage> = chunk.iter().map(|a| &a.image).collect();
            let seen = self.see(&images)?;
            out.extend(self.scores_of(&seen)?);
        }
        Ok(out)
    }

    /// The scores of the images `seen` holds, in its order.
    fn scores_of(&self, seen: &Seen) -> Result<Vec<Scored>> {
        match &self.scorer {
            Scorer::Head(head) => {
                Ok(head.scores(&seen.pooled()?)?.into_iter().map(|scores| Scored { scores, zero_shot: None }).collect())
            }
            Scorer::ZeroShot { scorer, calibration } => seen
                .features
                .iter()
                .zip(&seen.grids)
                .map(|(features, &grid)| {
                    let mut reading = scorer.score(&self.vlm.model, features, grid)?;
                    let scores = match calibration {
                        Some(c) => {
                            let scores = c.apply(&reading.raw);
                            reading.uncertainty = c.spread(&reading.raw, &reading.uncertainty);
                            scores
                        }
                        None => reading.raw,
                    };
                    Ok(Scored { scores, zero_shot: Some(reading) })
                })
                .collect(),
        }
    }

    /// The vision tower over each image on its own, the outputs concatenated in order. A
    /// painting's features, and so its scores, must not depend on the rest of its batch, and a
    /// matrix product's blocking (hence its rounding) depends on its row count: one pass over
    /// the whole batch gives a painting bits that change with its batch-mates (docs/MODEL.md,
    /// "Determinism").
    fn see(&self, images: &[&PreparedImage]) -> Result<Seen<'_>> {
        let vision = &self.vlm.model.vision;
        let (mut features, mut grids) = (Vec::new(), Vec::new());
        for image in images {
            let (pixels, grid) = self.vlm.pixel_values(std::slice::from_ref(image))?;
            features.push(vision.forward(&pixels, &grid)?);
            grids.extend(grid);
        }
        Ok(Seen { features, grids, vision })
    }

    fn assess_chunk(&self, chunk: &[ArtworkInput]) -> Result<Vec<Assessment>> {
        // Prompts of similar length next to each other pad less in batched generation.
        let order = by_size(chunk);
        let items: Vec<&ArtworkInput> = order.iter().map(|&i| &chunk[i]).collect();
        let images: Vec<&PreparedImage> = items.iter().map(|a| &a.image).collect();

        let start = Instant::now();
        let model = &self.vlm.model;
        let seen = self.see(&images)?;
        let vision_ms = ms_since(start);

        let start = Instant::now();
        let scored = self.scores_of(&seen)?;
        let head_ms = ms_since(start);
        let grids = &seen.grids;

        let start = Instant::now();
        let critiques: Vec<(String, Vec<u32>, bool)> = if self.generation.max_new_tokens == 0 {
            vec![(String::new(), Vec::new(), true); items.len()]
        } else {
            let requests = items
                .iter()
                .zip(&scored)
                .zip(grids)
                .map(|((item, scored), grid)| {
                    let messages = self.prompt.messages(item.description.as_deref(), Some(&scored.scores))?;
                    let (_, input_ids) = self.vlm.encode_messages(&messages, std::slice::from_ref(grid))?;
                    Ok(Request { input_ids, grids: vec![*grid] })
                })
                .collect::<Result<Vec<_>>>()?;
            // Every image's visual tokens in one tensor, only when a critique is written.
            let merged = Tensor::cat(&seen.features, 0)?;
            let generated = generate(model, &requests, Some(&merged), &self.generation, &self.vlm.eos_ids)?;
            generated
                .into_iter()
                .map(|g| {
                    let text = self.vlm.decode_text(&g.tokens)?;
                    let finished = g.finish == crate::generate::FinishReason::Eos;
                    Ok((text.trim().to_string(), g.tokens, finished))
                })
                .collect::<Result<Vec<_>>>()?
        };
        let generate_ms = ms_since(start);

        let timings = Timings { vision_ms, head_ms, generate_ms, batch_size: items.len() };
        let assessments: Vec<Assessment> = scored
            .into_iter()
            .zip(critiques)
            .map(|(Scored { scores, zero_shot }, (critique, tokens, finished))| Assessment {
                scores,
                zero_shot,
                critique,
                new_tokens: tokens.len(),
                tokens,
                finished,
                timings,
            })
            .collect();
        Ok(unsort(&order, assessments))
    }
}

/// The vision tower's output for a batch: each image's merged patch features `[tokens,
/// hidden]` and grid, in order.
struct Seen<'a> {
    features: Vec<Tensor>,
    grids: Vec<Grid>,
    vision: &'a crate::vision::VisionTower,
}

impl Seen<'_> {
    /// The pooled features the head reads, one row per image.
    fn pooled(&self) -> Result<Tensor> {
        let pooled = self
            .features
            .iter()
            .zip(&self.grids)
            .map(|(f, g)| self.vision.pool(f, std::slice::from_ref(g)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&pooled, 0)?)
    }
}

/// Indices of `chunk` sorted by image grid, stable.
fn by_size(chunk: &[ArtworkInput]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..chunk.len()).collect();
    order.sort_by_key(|&i| (chunk[i].image.grid.h, chunk[i].image.grid.w));
    order
}

/// Puts results computed in `order` back into input order.
fn unsort<T>(order: &[usize], sorted: Vec<T>) -> Vec<T> {
    let mut slots: Vec<Option<T>> = (0..order.len()).map(|_| None).collect();
    for (&index, value) in order.iter().zip(sorted) {
        slots[index] = Some(value);
    }
    slots.into_iter().map(|v| v.expect("every index is filled once")).collect()
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}
