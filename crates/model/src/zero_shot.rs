//! Zero-shot rubric scores from a plain instruction-tuned checkpoint, with Q-Align's level
//! tokens (Wu et al., 2023): ask the model to rate one dimension, start its answer, and read
//! how likely it is to go on with each of five quality words.
//!
//! For each output `d` (overall → "overall quality", then the five criteria) one user turn
//! holds the image and `Rate the {d} of this artwork.`, rendered with the checkpoint's chat
//! template and the generation prompt, followed by the assistant's words `The {d} of this
//! artwork is`. The next-token logits of the first token of ` excellent`, ` good`, ` fair`,
//! ` poor` and ` bad`, softmaxed over those five, give `p`; with `w = [1, 0.75, 0.5, 0.25, 0]`
//! the score is `1 + 99·Σ pᵢwᵢ` and its uncertainty `99·sqrt(Σ pᵢ(wᵢ − Σ pⱼwⱼ)²)`.
//!
//! The artist's description is never in these prompts: an entrant must not be able to talk a
//! score up.
//!
//! The six prompts differ only after the image, so the vision tower runs once and the shared
//! prefix is prefilled once; its key/value cache is repeated six times and only the six short
//! suffixes run, as one batch ([`ZeroShotScorer::score`]). [`ZeroShotScorer::score_separately`]
//! runs six full prefills; the two agree to rounding (tests) and the bench measures both.

use candle_core::{DType, IndexOp, Tensor};
use easel_rubric::{OUTPUTS, RubricScores};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::error::{ModelError, Result};
use crate::generate::{Request, causal_mask, prefill};
use crate::model::Qwen2VlModel;
use crate::pipeline::Qwen2Vl;
use crate::processor::Grid;
use crate::prompt::{expand_image_placeholders, user_message};
use crate::rope::mrope_positions;

/// The five level words, best first, each with its leading space (the token that follows
/// `… is`).
pub const LEVEL_WORDS: [&str; 5] = [" excellent", " good", " fair", " poor", " bad"];

/// Each level's value on 0–1, in [`LEVEL_WORDS`] order.
pub const LEVEL_WEIGHTS: [f64; 5] = [1.0, 0.75, 0.5, 0.25, 0.0];

/// Where a prompt names the dimension.
pub const DIMENSION_PLACEHOLDER: &str = "{d}";

/// Token counts of the default prompts in Qwen2-VL's chat template with the Qwen tokenizer:
/// before the image placeholder (`<|vision_start|>` included), after it up to the first token
/// that differs (`<|vision_end|>` included), and each output's own tail (`easel bench model --paths zero-shot` builds prompts of this shape; the
/// parity test checks it against the real tokenizer).
pub const DEFAULT_PROMPT_SHAPE: (usize, usize, [usize; 6]) = (15, 3, [18, 18, 16, 16, 16, 16]);

/// The zero-shot prompts, stored in `easel.json` (`zero_shot`); changing them changes the
/// model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZeroShotPrompts {
    /// The user's text after the image; `{d}` is the dimension's phrase.
    pub question: String,
    /// The start of the assistant's reply; the level word is the token after it.
    pub answer: String,
    /// How each output is named in the prompts.
    pub dimensions: RubricScores<String>,
}

impl Default for ZeroShotPrompts {
    fn default() -> Self {
        let mut names = OUTPUTS.map(str::to_string);
        names[0] = "overall quality".to_string();
        Self {
            question: "Rate the {d} of this artwork.".to_string(),
            answer: "The {d} of this artwork is".to_string(),
            dimensions: RubricScores::from_array(names),
        }
    }
}

impl ZeroShotPrompts {
    pub fn validate(&self) -> Result<()> {
        for (what, text) in [("question", &self.question), ("answer", &self.answer)] {
            if text.trim().is_empty() {
                return Err(ModelError::Input(format!("zero_shot.{what} is empty")));
            }
        }
        if let Some((name, _)) = OUTPUTS.iter().zip(self.dimensions.to_array()).find(|(_, d)| d.trim().is_empty()) {
            return Err(ModelError::Input(format!("zero_shot.dimensions.{name} is empty")));
        }
        Ok(())
    }

    /// The question and the answer's start for each output, in [`OUTPUTS`] order.
    pub fn texts(&self) -> [(String, String); 6] {
        self.dimensions
            .to_array()
            .map(|d| (self.question.replace(DIMENSION_PLACEHOLDER, &d), self.answer.replace(DIMENSION_PLACEHOLDER, &d)))
    }

    /// A short, stable digest of the prompts (and whatever else `extra` names), for the model
    /// version: two checkpoints that ask differently must not share one.
    pub fn fingerprint(&self, extra: &serde_json::Value) -> String {
        let text = serde_json::to_string(&json!({"prompts": self, "extra": extra})).expect("prompts serialise");
        hex::encode(&Sha256::digest(text.as_bytes())[..4])
    }
}

/// The five level probabilities of one answer, in [`LEVEL_WORDS`] order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels(pub [f32; 5]);

impl Levels {
    /// Softmax over the five level logits (in f64).
    pub fn from_logits(logits: [f32; 5]) -> Self {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let exp = logits.map(|l| (l as f64 - max).exp());
        let sum: f64 = exp.iter().sum();
        Self(exp.map(|e| (e / sum) as f32))
    }

    /// `(score, uncertainty)`: `1 + 99·E[w]` and `99·sd(w)`.
    pub fn score(&self) -> (f32, f32) {
        let p = self.0.map(f64::from);
        let mean: f64 = p.iter().zip(LEVEL_WEIGHTS).map(|(p, w)| p * w).sum();
        let var: f64 = p.iter().zip(LEVEL_WEIGHTS).map(|(p, w)| p * (w - mean).powi(2)).sum();
        ((1.0 + 99.0 * mean) as f32, (99.0 * var.max(0.0).sqrt()) as f32)
    }
}

/// A painting's zero-shot reading: the raw scores (before any calibration), the uncertainties
/// and the level probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroShot {
    pub raw: RubricScores<f32>,
    /// Standard deviations on the 1–100 scale of the served scores: the level distribution's,
    /// carried through the checkpoint's calibration where it has one.
    pub uncertainty: RubricScores<f32>,
    /// `[p_excellent, p_good, p_fair, p_poor, p_bad]` per output.
    pub levels: RubricScores<[f32; 5]>,
}

impl ZeroShot {
    fn from_levels(levels: [Levels; 6]) -> Self {
        let scored = levels.map(|l| l.score());
        Self {
            raw: RubricScores::from_array(scored.map(|(s, _)| s)),
            uncertainty: RubricScores::from_array(scored.map(|(_, u)| u)),
            levels: RubricScores::from_array(levels.map(|l| l.0)),
        }
    }
}

/// The first token of each level word.
pub fn level_token_ids(tokenizer: &Tokenizer) -> Result<[u32; 5]> {
    let mut ids = [0u32; 5];
    for (slot, word) in ids.iter_mut().zip(LEVEL_WORDS) {
        let encoding = tokenizer.encode(word, false).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        *slot = *encoding
            .get_ids()
            .first()
            .ok_or_else(|| ModelError::Tokenizer(format!("the tokenizer makes no token of {word:?}")))?;
    }
    let mut distinct = ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != ids.len() {
        return Err(ModelError::Tokenizer(format!("the level words {LEVEL_WORDS:?} start with the same tokens {ids:?}")));
    }
    Ok(ids)
}

/// The six prompts, tokenized once, and the level tokens.
#[derive(Debug, Clone)]
pub struct ZeroShotScorer {
    /// Token ids of each output's prompt with one unexpanded image placeholder.
    prompts: [Vec<u32>; 6],
    level_ids: [u32; 5],
}

impl ZeroShotScorer {
    pub fn new(vlm: &Qwen2Vl, spec: &ZeroShotPrompts) -> Result<Self> {
        spec.validate()?;
        let level_ids = level_token_ids(&vlm.tokenizer)?;
        let texts = spec.texts();
        let mut prompts: [Vec<u32>; 6] = Default::default();
        for (slot, (question, answer)) in prompts.iter_mut().zip(texts) {
            let rendered = vlm.template.render(&json!([user_message(1, &question)]), true)? + &answer;
            let encoding =
                vlm.tokenizer.encode(rendered.as_str(), true).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
            *slot = encoding.get_ids().to_vec();
        }
        Self::from_token_ids(prompts, level_ids, vlm.config().image_token_id)
    }

    /// From already tokenized prompts, each holding one unexpanded image placeholder (the
    /// benchmark's random-weight models have no tokenizer).
    pub fn from_token_ids(prompts: [Vec<u32>; 6], level_ids: [u32; 5], image_token_id: u32) -> Result<Self> {
        for prompt in &prompts {
            let images = prompt.iter().filter(|&&id| id == image_token_id).count();
            if images != 1 {
                return Err(ModelError::Template(format!("a zero-shot prompt must hold one image, this one holds {images}")));
            }
        }
        Ok(Self { prompts, level_ids })
    }

    pub fn level_ids(&self) -> [u32; 5] {
        self.level_ids
    }

    /// Each output's full prompt for an image of `grid`, placeholders expanded.
    pub fn requests(&self, model: &Qwen2VlModel, grid: Grid) -> Result<[Vec<u32>; 6]> {
        let cfg = model.config();
        let mut out: [Vec<u32>; 6] = Default::default();
        for (slot, ids) in out.iter_mut().zip(&self.prompts) {
            *slot = expand_image_placeholders(ids, cfg.image_token_id, &[grid], cfg.vision.spatial_merge_size)?;
        }
        Ok(out)
    }

    /// Scores one painting from its merged visual features `[tokens, hidden]`: the shared
    /// prefix once, the six suffixes as one batch.
    pub fn score(&self, model: &Qwen2VlModel, features: &Tensor, grid: Grid) -> Result<ZeroShot> {
        let requests = self.requests(model, grid)?;
        let shared = common_prefix(&requests);
        let image_token = model.config().image_token_id;
        // Every suffix must be text after the image, and none may be empty (its last token's
        // logits are the answer).
        let image_in_suffix = requests.iter().any(|r| r[shared..].contains(&image_token));
        if shared == 0 || image_in_suffix || requests.iter().any(|r| r.len() == shared) {
            return self.score_separately(model, features, grid);
        }
        let logits = self.suffix_logits(model, features, grid, &requests, shared)?;
        Ok(ZeroShot::from_levels(logits.map(Levels::from_logits)))
    }

    /// Six full prefills, one per output: the reference the shared-prefix path must equal.
    pub fn score_separately(&self, model: &Qwen2VlModel, features: &Tensor, grid: Grid) -> Result<ZeroShot> {
        let requests = self.requests(model, grid)?;
        let mut levels = [Levels([0.0; 5]); 6];
        for (slot, input_ids) in levels.iter_mut().zip(requests) {
            let state = prefill(model, &[Request { input_ids, grids: vec![grid] }], Some(features), 0, false)?;
            *slot = Levels::from_logits(self.pick(&state.last_logits.i(0)?)?);
        }
        Ok(ZeroShot::from_levels(levels))
    }

    /// The five level logits of a `[vocab]` row.
    fn pick(&self, row: &Tensor) -> Result<[f32; 5]> {
        let ids = Tensor::new(&self.level_ids, row.device())?;
        let values = row.index_select(&ids, 0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        Ok(std::array::from_fn(|i| values[i]))
    }

    /// Prefills `requests[0][..shared]` once, then runs the six suffixes (right-padded to the
    /// longest) on six copies of its cache; returns each suffix's level logits at its last token.
    fn suffix_logits(
        &self,
        model: &Qwen2VlModel,
        features: &Tensor,
        grid: Grid,
        requests: &[Vec<u32>; 6],
        shared: usize,
    ) -> Result<[[f32; 5]; 6]> {
        let cfg = model.config();
        let merge = cfg.vision.spatial_merge_size;
        let device = model.device();
        let positions = requests
            .iter()
            .map(|r| mrope_positions(r, cfg.image_token_id, &[grid], merge).map_err(ModelError::Input))
            .collect::<Result<Vec<_>>>()?;
        let lens: Vec<usize> = requests.iter().map(|r| r.len() - shared).collect();
        let longest = lens.iter().copied().max().unwrap_or(0);

        // The shared prefix, batch of one.
        let prefix = &requests[0][..shared];
        let embeds = model.embed_with_images(&[prefix.to_vec()], Some(features))?;
        let prefix_positions: [Vec<i64>; 3] = std::array::from_fn(|axis| positions[0].ids[axis][..shared].to_vec());
        let rope = model.text.rope(&[prefix_positions])?;
        let mask = causal_mask(shared, 0, model.dtype(), device)?;
        let mut cache = model.text.new_cache(shared);
        model.text.forward_embeds(&embeds, &rope, Some(&mask), Some(&mut cache), None)?;

        // The six suffixes, right-padded: a causal mask keeps padding out of every real
        // position (padding only ever follows), so no padding mask is needed.
        let mut cache = cache.repeat(requests.len(), shared + longest)?;
        let pad = requests[0][shared];
        let ids: Vec<Vec<u32>> = requests
            .iter()
            .map(|r| r[shared..].iter().copied().chain(std::iter::repeat_n(pad, longest - (r.len() - shared))).collect())
            .collect();
        let suffix_positions: Vec<[Vec<i64>; 3]> = positions
            .iter()
            .map(|p| {
                std::array::from_fn(|axis| {
                    let own = &p.ids[axis][shared..];
                    let last = own.last().copied().unwrap_or(0);
                    own.iter().copied().chain((1..).map(|k| last + k).take(longest - own.len())).collect()
                })
            })
            .collect();
        let embeds = model.embed_with_images(&ids, None)?;
        let rope = model.text.rope(&suffix_positions)?;
        let mask = causal_mask(longest, shared, model.dtype(), device)?;
        let hidden = model.text.forward_embeds(&embeds, &rope, Some(&mask), Some(&mut cache), None)?;
        let mut out = [[0f32; 5]; 6];
        for (row, (slot, len)) in out.iter_mut().zip(&lens).enumerate() {
            let last = hidden.i((row, len - 1))?.unsqueeze(0)?;
            *slot = self.pick(&model.logits(&last)?.i(0)?)?;
        }
        Ok(out)
    }
}

/// Length of the longest prefix all `requests` share.
fn common_prefix(requests: &[Vec<u32>]) -> usize {
    let Some(first) = requests.first() else { return 0 };
    (0..first.len()).take_while(|&i| requests.iter().all(|r| r.get(i) == Some(&first[i]))).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_arithmetic() {
        let (score, sd) = Levels([1.0, 0.0, 0.0, 0.0, 0.0]).score();
        assert_eq!((score, sd), (100.0, 0.0));
        let (score, sd) = Levels([0.0, 0.0, 0.0, 0.0, 1.0]).score();
        assert_eq!((score, sd), (1.0, 0.0));
        // Half excellent, half bad: mean 0.5, sd 0.5.
        let (score, sd) = Levels([0.5, 0.0, 0.0, 0.0, 0.5]).score();
        assert!((score - 50.5).abs() < 1e-5 && (sd - 49.5).abs() < 1e-4, "{score} {sd}");
        let uniform = Levels::from_logits([3.0; 5]);
        assert!(uniform.0.iter().all(|p| (p - 0.2).abs() < 1e-6));
        let (score, _) = uniform.score();
        assert!((score - 50.5).abs() < 1e-4);
        // Large logits do not overflow.
        let sharp = Levels::from_logits([1000.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(sharp.0[0], 1.0);
    }

    #[test]
    fn default_prompts_are_the_documented_ones() {
        let texts = ZeroShotPrompts::default().texts();
        assert_eq!(texts[0], ("Rate the overall quality of this artwork.".into(), "The overall quality of this artwork is".into()));
        assert_eq!(texts[3], ("Rate the texture of this artwork.".into(), "The texture of this artwork is".into()));
    }

    #[test]
    fn fingerprints_follow_the_prompts() {
        let a = ZeroShotPrompts::default();
        let mut b = a.clone();
        b.answer = "Its {d} is".into();
        assert_eq!(a.fingerprint(&json!(null)), a.fingerprint(&json!(null)));
        assert_ne!(a.fingerprint(&json!(null)), b.fingerprint(&json!(null)));
        assert_ne!(a.fingerprint(&json!(null)), a.fingerprint(&json!({"calibration": 1})));
        assert_eq!(a.fingerprint(&json!(null)).len(), 8);
    }

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix(&[vec![1, 2, 3], vec![1, 2, 4], vec![1, 2]]), 2);
        assert_eq!(common_prefix(&[vec![5], vec![6]]), 0);
    }
}
