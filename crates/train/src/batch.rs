//! From manifest rows to model inputs: images through the image processor, critiques through
//! the checkpoint's chat template (prompt = rubric + description + scores in the system turn,
//! the painting in the user turn, as at inference; target = critique + `<|im_end|>`).

use candle_core::{Device, Tensor};
use easel_model::prompt::{ChatTemplate, PromptBuilder, PromptSpec, encode_prompt};
use easel_model::{DecodeLimits, Grid, ImageProcessor, PreparedImage, RubricScores};
use tokenizers::Tokenizer;

use crate::data::{Example, ImageSource};
use crate::error::{Result, TrainError};
use crate::trainable::{Batch, LmItem};

/// Turns a row's description, scores and critique into one training sequence.
pub struct PromptEncoder {
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub prompt: PromptBuilder,
    pub image_token_id: u32,
    pub merge: usize,
    pub end_token_id: u32,
    /// Longest critique in tokens (longer ones are cut, and then get no end token).
    pub max_critique_tokens: usize,
}

impl PromptEncoder {
    pub fn new(
        tokenizer: Tokenizer,
        template: ChatTemplate,
        spec: PromptSpec,
        config: &easel_model::Config,
        max_critique_tokens: usize,
    ) -> Result<Self> {
        let end_token_id = tokenizer
            .token_to_id("<|im_end|>")
            .ok_or_else(|| TrainError::Config("the tokenizer has no <|im_end|> token".into()))?;
        Ok(Self {
            tokenizer,
            template,
            prompt: PromptBuilder::new(spec)?,
            image_token_id: config.image_token_id,
            merge: config.vision.spatial_merge_size,
            end_token_id,
            max_critique_tokens: max_critique_tokens.max(1),
        })
    }

    /// `(ids, first critique token)` for one painting shown with `scores`.
    pub fn encode(
        &self,
        description: &str,
        scores: &RubricScores<f32>,
        grid: Grid,
        critique: &str,
    ) -> Result<(Vec<u32>, usize)> {
        let description = Some(description).filter(|d| !d.trim().is_empty());
        let messages = self.prompt.messages(description, Some(scores))?;
        let text = self.template.render(&messages, true)?;
        let mut ids = encode_prompt(&self.tokenizer, &text, self.image_token_id, &[grid], self.merge)?;
        let start = ids.len();
        let critique = self
            .tokenizer
            .encode(critique.trim(), false)
            .map_err(|e| TrainError::Config(format!("tokenizing a critique: {e}")))?;
        let target = critique.get_ids();
        if target.len() >= self.max_critique_tokens {
            ids.extend_from_slice(&target[..self.max_critique_tokens]);
        } else {
            ids.extend_from_slice(target);
            ids.push(self.end_token_id);
        }
        Ok((ids, start))
    }
}

/// Reads and preprocesses one row's image.
pub fn prepare_image(example: &Example, source: &dyn ImageSource, processor: &ImageProcessor) -> Result<PreparedImage> {
    let bytes = source
        .read(&example.image)
        .map_err(|message| TrainError::Image { image: format!("line {}: {}", example.line, example.image), message })?;
    processor.prepare_bytes(&bytes, &DecodeLimits::default().any_format()).map_err(|e| TrainError::Image {
        image: format!("line {}: {}", example.line, example.image),
        message: e.to_string(),
    })
}

/// Prepares the images of `rows` on all cores, in order.
pub fn prepare_images(rows: &[&Example], source: &dyn ImageSource, processor: &ImageProcessor) -> Result<Vec<PreparedImage>> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(rows.len().max(1));
    let chunk = rows.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|e| prepare_image(e, source, processor)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("image preparation does not panic")).collect()
    })
}

/// Targets `[n, 6]` scaled to `[0, 1]` by the head's score range, and their presence mask.
pub fn targets(rows: &[&Example], score_range: [f32; 2], device: &Device) -> Result<(Tensor, Tensor)> {
    let [lo, hi] = score_range;
    let mut values = Vec::with_capacity(rows.len() * 6);
    let mut mask = Vec::with_capacity(rows.len() * 6);
    for row in rows {
        for t in row.targets() {
            values.push(t.map(|v| ((v - lo) / (hi - lo)).clamp(0.0, 1.0)).unwrap_or(0.0));
            mask.push(if t.is_some() { 1f32 } else { 0.0 });
        }
    }
    Ok((Tensor::from_vec(values, (rows.len(), 6), device)?, Tensor::from_vec(mask, (rows.len(), 6), device)?))
}

/// Stacks prepared images into `pixel_values [Σ patches, patch_len]`.
pub fn pixel_values(images: &[PreparedImage], device: &Device) -> Result<(Tensor, Vec<Grid>)> {
    let total: usize = images.iter().map(|i| i.grid.num_patches()).sum();
    let patch_len = images.first().map(|i| i.pixel_values.len() / i.grid.num_patches().max(1)).unwrap_or(0);
    let mut values = Vec::with_capacity(total * patch_len);
    for image in images {
        values.extend_from_slice(&image.pixel_values);
    }
    Ok((Tensor::from_vec(values, (total, patch_len), device)?, images.iter().map(|i| i.grid).collect()))
}

/// The true scores where the row has them, the head's prediction elsewhere (what inference
/// would show for those dimensions).
pub fn prompt_scores(example: &Example, predicted: &[f32; 6]) -> RubricScores<f32> {
    let targets = example.targets();
    RubricScores::from_array(std::array::from_fn(|i| targets[i].unwrap_or(predicted[i])))
}

/// A full micro-batch for the multi-task loss; rows without a critique add only to the
/// regression loss.
pub fn build_batch<'a>(
    rows: &[&'a Example],
    images: Vec<PreparedImage>,
    encoder: Option<&'a PromptEncoder>,
    score_range: [f32; 2],
    device: &Device,
) -> Result<Batch<'a>> {
    let grids: Vec<Grid> = images.iter().map(|i| i.grid).collect();
    let (pixel_values, _) = pixel_values(&images, device)?;
    let (targets, target_mask) = targets(rows, score_range, device)?;
    let mut lm = Vec::new();
    if let Some(encoder) = encoder {
        for (i, &row) in rows.iter().enumerate() {
            if let Some(critique) = row.critique.as_deref() {
                let grid = grids[i];
                lm.push(LmItem {
                    image: i,
                    encode: Box::new(move |predicted: &[f32; 6]| {
                        encoder.encode(&row.description, &prompt_scores(row, predicted), grid, critique)
                    }),
                });
            }
        }
    }
    Ok(Batch { pixel_values, grids, targets, target_mask, lm })
}
