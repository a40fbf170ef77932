//! The multi-task model's one batch API: paintings and descriptions in, scores and critiques
//! out. The CLI and the worker both call [`Assessor::assess`], so batching lives here.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use easel_rubric::RubricScores;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::generate::{GenerationConfig, Request, generate};
use crate::head::RegressionHead;
use crate::manifest::Manifest;
use crate::pipeline::Qwen2Vl;
use crate::processor::{ImageProcessor, PreparedImage};
use crate::prompt::PromptBuilder;

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
}

impl LoadOptions {
    pub fn cpu() -> Self {
        Self { device: Device::Cpu, dtype: DType::F32, generation: None, max_pixels: None, max_batch: 16 }
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
    /// Vision tower (one pass shared by the head and the critique).
    pub vision_ms: f64,
    pub head_ms: f64,
    /// Prompt building, prefill and decoding.
    pub generate_ms: f64,
    /// Paintings in the batch.
    pub batch_size: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub scores: RubricScores<f32>,
    pub critique: String,
    /// Tokens generated for the critique.
    pub new_tokens: usize,
    /// Whether the critique ended on its own (false: cut at the token budget).
    pub finished: bool,
    pub timings: Timings,
}

/// A loaded Easel checkpoint.
pub struct Assessor {
    vlm: Qwen2Vl,
    head: RegressionHead,
    prompt: PromptBuilder,
    manifest: Manifest,
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
        manifest.head.config.validate(vlm.config().text.hidden_size)?;
        let head = RegressionHead::load(&manifest.head_path(dir)?, &manifest.head.config, &options.device)?;
        if let Some(adapter) = manifest.lora_dir(dir)? {
            crate::lora::LoraAdapter::load(&adapter, &options.device, options.dtype)?.attach(&mut vlm.model)?;
        }
        let generation = options.generation.clone().unwrap_or_else(|| manifest.generation.clone());
        generation.validate()?;
        let prompt = PromptBuilder::new(manifest.prompt.clone())?;
        Ok(Self { vlm, head, prompt, manifest, generation, max_batch: options.max_batch.max(1) })
    }

    pub fn model_version(&self) -> &str {
        &self.manifest.model_version
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

    pub fn head(&self) -> &RegressionHead {
        &self.head
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

    /// Scores only (vision tower and head, no critique), in input order.
    pub fn score(&self, batch: &[ArtworkInput]) -> Result<Vec<RubricScores<f32>>> {
        let mut out = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(self.max_batch) {
            let images: Vec<&PreparedImage> = chunk.iter().map(|a| &a.image).collect();
            let seen = self.see(&images)?;
            out.extend(self.head.scores(&seen.pooled)?);
        }
        Ok(out)
    }

    /// The vision tower over each image on its own, the outputs concatenated in order. A
    /// painting's features, and so its scores, must not depend on the rest of its batch, and a
    /// matrix product's blocking (hence its rounding) depends on its row count: one pass over
    /// the whole batch gives a painting bits that change with its batch-mates (docs/MODEL.md,
    /// "Determinism").
    fn see(&self, images: &[&PreparedImage]) -> Result<Seen> {
        let vision = &self.vlm.model.vision;
        let (mut merged, mut pooled, mut grids) = (Vec::new(), Vec::new(), Vec::new());
        for image in images {
            let (pixels, grid) = self.vlm.pixel_values(std::slice::from_ref(image))?;
            let features = vision.forward(&pixels, &grid)?;
            pooled.push(vision.pool(&features, &grid)?);
            merged.push(features);
            grids.extend(grid);
        }
        Ok(Seen { merged: Tensor::cat(&merged, 0)?, pooled: Tensor::cat(&pooled, 0)?, grids })
    }

    fn assess_chunk(&self, chunk: &[ArtworkInput]) -> Result<Vec<Assessment>> {
        // Prompts of similar length next to each other pad less in batched generation.
        let order = by_size(chunk);
        let items: Vec<&ArtworkInput> = order.iter().map(|&i| &chunk[i]).collect();
        let images: Vec<&PreparedImage> = items.iter().map(|a| &a.image).collect();

        let start = Instant::now();
        let model = &self.vlm.model;
        let Seen { merged, pooled, grids } = self.see(&images)?;
        let vision_ms = ms_since(start);

        let start = Instant::now();
        let scores = self.head.scores(&pooled)?;
        let head_ms = ms_since(start);

        let start = Instant::now();
        let critiques: Vec<(String, usize, bool)> = if self.generation.max_new_tokens == 0 {
            vec![(String::new(), 0, true); items.len()]
        } else {
            let requests = items
                .iter()
                .zip(&scores)
                .zip(&grids)
                .map(|((item, scores), grid)| {
                    let messages = self.prompt.messages(item.description.as_deref(), Some(scores))?;
                    let (_, input_ids) = self.vlm.encode_messages(&messages, std::slice::from_ref(grid))?;
                    Ok(Request { input_ids, grids: vec![*grid] })
                })
                .collect::<Result<Vec<_>>>()?;
            let generated = generate(model, &requests, Some(&merged), &self.generation, &self.vlm.eos_ids)?;
            generated
                .into_iter()
                .map(|g| {
                    let text = self.vlm.decode_text(&g.tokens)?;
                    Ok((text.trim().to_string(), g.tokens.len(), g.finish == crate::generate::FinishReason::Eos))
                })
                .collect::<Result<Vec<_>>>()?
        };
        let generate_ms = ms_since(start);

        let timings = Timings { vision_ms, head_ms, generate_ms, batch_size: items.len() };
        let assessments: Vec<Assessment> = scores
            .into_iter()
            .zip(critiques)
            .map(|(scores, (critique, new_tokens, finished))| Assessment { scores, critique, new_tokens, finished, timings })
            .collect();
        Ok(unsort(&order, assessments))
    }
}

/// The vision tower's output for a batch: merged patch features (every image's, in order), the
/// pooled features (one row per image) and the grids.
struct Seen {
    merged: Tensor,
    pooled: Tensor,
    grids: Vec<crate::processor::Grid>,
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
