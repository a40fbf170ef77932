//! Batched generation: left-padded prefill with M-RoPE positions, then one token per step for
//! every sequence from a preallocated key/value cache, greedy or temperature/top-p sampling,
//! stopping at an end-of-sequence token or the token budget.

use candle_core::{D, DType, Device, Result as CandleResult, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::layers::mask_value;
use crate::model::Qwen2VlModel;
use crate::processor::Grid;
use crate::rope::{MropePositions, mrope_positions};
use crate::text::KvCache;

/// How to decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    /// 0 means greedy.
    pub temperature: f64,
    /// Nucleus sampling mass; 1.0 disables it.
    pub top_p: f64,
    pub seed: u64,
    /// Stop a sequence at its first end-of-sequence token.
    pub stop_on_eos: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self { max_new_tokens: 256, temperature: 0.0, top_p: 1.0, seed: 299_792_458, stop_on_eos: true }
    }
}

impl GenerationConfig {
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self { max_new_tokens, ..Self::default() }
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(ModelError::Input(format!("temperature must be ≥ 0, got {}", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::Input(format!("top_p must be in (0, 1], got {}", self.top_p)));
        }
        Ok(())
    }
}

/// One prompt: its token ids (image placeholders already expanded) and its images' grids.
#[derive(Debug, Clone)]
pub struct Request {
    pub input_ids: Vec<u32>,
    pub grids: Vec<Grid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Eos,
    Length,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// New tokens, the end-of-sequence token excluded.
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
}

/// The state after the prompt has been run.
pub struct Prefill {
    pub cache: KvCache,
    /// `[batch, vocab]` logits of each prompt's last token (f32).
    pub last_logits: Tensor,
    /// `[batch, len, vocab]` logits of every prompt position, when asked for.
    pub all_logits: Option<Tensor>,
    /// Position of each sequence's first generated token.
    pub next_positions: Vec<i64>,
    /// Left padding of each row.
    pub padding: Vec<usize>,
    /// Unpadded M-RoPE positions per sequence.
    pub positions: Vec<MropePositions>,
}

/// Runs the prompts of a batch, left-padded to the longest, with room in the cache for
/// `max_new_tokens` more positions.
pub fn prefill(
    model: &Qwen2VlModel,
    requests: &[Request],
    image_embeds: Option<&Tensor>,
    max_new_tokens: usize,
    all_logits: bool,
) -> Result<Prefill> {
    if requests.is_empty() {
        return Err(ModelError::Input("an empty batch".into()));
    }
    let cfg = model.config();
    let merge = cfg.vision.spatial_merge_size;
    let positions = requests
        .iter()
        .map(|r| mrope_positions(&r.input_ids, cfg.image_token_id, &r.grids, merge).map_err(ModelError::Input))
        .collect::<Result<Vec<_>>>()?;
    let len = requests.iter().map(|r| r.input_ids.len()).max().unwrap_or(0);
    if len == 0 {
        return Err(ModelError::Input("an empty prompt".into()));
    }
    let capacity = len + max_new_tokens;
    let padding: Vec<usize> = requests.iter().map(|r| len - r.input_ids.len()).collect();
    let pad_id = cfg.bos_token_id.unwrap_or(0);
    let ids: Vec<Vec<u32>> = requests
        .iter()
        .zip(&padding)
        .map(|(r, &p)| std::iter::repeat_n(pad_id, p).chain(r.input_ids.iter().copied()).collect())
        .collect();
    let padded_positions: Vec<[Vec<i64>; 3]> = positions
        .iter()
        .zip(&padding)
        .map(|(p, &pad)| std::array::from_fn(|axis| std::iter::repeat_n(0, pad).chain(p.ids[axis].iter().copied()).collect()))
        .collect();

    let device = model.device();
    let embeds = model.embed_with_images(&ids, image_embeds)?;
    let rope = model.text.rope(&padded_positions)?;
    let mask = prefill_mask(&padding, len, model.dtype(), device)?;
    let mut cache = model.text.new_cache(capacity);
    let hidden = model.text.forward_embeds(&embeds, &rope, mask.as_ref(), Some(&mut cache), None)?;
    let last = hidden.narrow(1, len - 1, 1)?.squeeze(1)?;
    let last_logits = model.logits(&last)?;
    let all_logits = if all_logits { Some(model.logits(&hidden)?) } else { None };
    Ok(Prefill {
        cache,
        last_logits,
        all_logits,
        next_positions: positions.iter().map(|p| p.next_position).collect(),
        padding,
        positions,
    })
}

/// Causal mask with padded keys hidden: `[batch, 1, len, len]`, or `None` for a single
/// unpadded position.
fn prefill_mask(padding: &[usize], len: usize, dtype: DType, device: &Device) -> CandleResult<Option<Tensor>> {
    if len == 1 && padding.iter().all(|&p| p == 0) {
        return Ok(None);
    }
    let neg = mask_value(dtype) as f32;
    let mut values = Vec::with_capacity(padding.len() * len * len);
    for &pad in padding {
        for i in 0..len {
            values.extend((0..len).map(|j| if j <= i && j >= pad { 0.0 } else { neg }));
        }
    }
    Tensor::from_vec(values, (padding.len(), 1, len, len), device)?.to_dtype(dtype).map(Some)
}

/// Causal mask `[1, 1, len, cached + len]` for `len` new positions after `cached` ones that
/// every new position may see (a shared prompt prefix).
pub(crate) fn causal_mask(len: usize, cached: usize, dtype: DType, device: &Device) -> CandleResult<Tensor> {
    let neg = mask_value(dtype) as f32;
    let total = cached + len;
    let values: Vec<f32> =
        (0..len).flat_map(|i| (0..total).map(move |j| if j <= cached + i { 0.0 } else { neg })).collect();
    Tensor::from_vec(values, (1, 1, len, total), device)?.to_dtype(dtype)
}

/// Padding mask for one decoding step over `total` cached positions, or `None` if unpadded.
fn step_mask(padding: &[usize], total: usize, dtype: DType, device: &Device) -> CandleResult<Option<Tensor>> {
    if padding.iter().all(|&p| p == 0) {
        return Ok(None);
    }
    let neg = mask_value(dtype) as f32;
    let values: Vec<f32> =
        padding.iter().flat_map(|&pad| (0..total).map(move |j| if j < pad { neg } else { 0.0 })).collect();
    Tensor::from_vec(values, (padding.len(), 1, 1, total), device)?.to_dtype(dtype).map(Some)
}

/// Chooses the next token of every row.
pub struct Sampler {
    processors: Option<Vec<LogitsProcessor>>,
}

impl Sampler {
    pub fn new(cfg: &GenerationConfig, batch: usize) -> Self {
        if cfg.temperature <= 0.0 {
            return Self { processors: None };
        }
        let sampling = if cfg.top_p < 1.0 {
            Sampling::TopP { p: cfg.top_p, temperature: cfg.temperature }
        } else {
            Sampling::All { temperature: cfg.temperature }
        };
        let processors = (0..batch)
            .map(|row| LogitsProcessor::from_sampling(cfg.seed.wrapping_add(row as u64), sampling.clone()))
            .collect();
        Self { processors: Some(processors) }
    }

    /// `logits [batch, vocab]` → one token per row. Greedy runs on the device and moves only
    /// the ids to the host.
    pub fn sample(&mut self, logits: &Tensor) -> Result<Vec<u32>> {
        match &mut self.processors {
            None => Ok(logits.argmax(D::Minus1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?),
            Some(processors) => {
                let rows = logits.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
                processors
                    .iter_mut()
                    .enumerate()
                    .map(|(i, p)| Ok(p.sample(&rows.get(i)?)?))
                    .collect()
            }
        }
    }
}

/// Decodes from a prefill until every row has stopped. `on_step` sees each step's logits (for
/// tests and dumps); pass `|_, _| Ok(())` otherwise.
pub fn decode(
    model: &Qwen2VlModel,
    mut state: Prefill,
    cfg: &GenerationConfig,
    eos_ids: &[u32],
    mut on_step: impl FnMut(usize, &Tensor) -> Result<()>,
) -> Result<Vec<Generated>> {
    cfg.validate()?;
    let batch = state.next_positions.len();
    let mut out: Vec<Generated> =
        (0..batch).map(|_| Generated { tokens: Vec::new(), finish: FinishReason::Length }).collect();
    let mut done = vec![false; batch];
    let mut sampler = Sampler::new(cfg, batch);
    let mut logits = state.last_logits.clone();
    let device = model.device().clone();
    for step in 0..cfg.max_new_tokens {
        on_step(step, &logits)?;
        let next = sampler.sample(&logits)?;
        for (row, &token) in next.iter().enumerate() {
            if done[row] {
                continue;
            }
            if cfg.stop_on_eos && eos_ids.contains(&token) {
                done[row] = true;
                out[row].finish = FinishReason::Eos;
            } else {
                out[row].tokens.push(token);
            }
        }
        if done.iter().all(|&d| d) || step + 1 == cfg.max_new_tokens {
            break;
        }
        let ids = Tensor::from_vec(next, (batch, 1), &device)?;
        let embeds = model.text.embed(&ids)?;
        let positions: Vec<[Vec<i64>; 3]> = state
            .next_positions
            .iter()
            .map(|&p| std::array::from_fn(|_| vec![p + step as i64]))
            .collect();
        let rope = model.text.rope(&positions)?;
        let mask = step_mask(&state.padding, state.cache.len() + 1, model.dtype(), &device)?;
        let hidden = model.text.forward_embeds(&embeds, &rope, mask.as_ref(), Some(&mut state.cache), None)?;
        logits = model.logits(&hidden.squeeze(1)?)?;
    }
    Ok(out)
}

/// Prefill then decode.
pub fn generate(
    model: &Qwen2VlModel,
    requests: &[Request],
    image_embeds: Option<&Tensor>,
    cfg: &GenerationConfig,
    eos_ids: &[u32],
) -> Result<Vec<Generated>> {
    let state = prefill(model, requests, image_embeds, cfg.max_new_tokens, false)?;
    decode(model, state, cfg, eos_ids, |_, _| Ok(()))
}
