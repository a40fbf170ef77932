//! A loaded Qwen2-VL checkpoint with everything needed to go from images and text to tokens:
//! the model, its tokenizer, chat template, image processor and stop tokens.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use tokenizers::Tokenizer;

use crate::checkpoint::CheckpointFiles;
use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::model::Qwen2VlModel;
use crate::processor::{Grid, ImageProcessor, PreparedImage, ProcessorConfig};
use crate::prompt::{ChatTemplate, encode_prompt};

pub struct Qwen2Vl {
    pub model: Qwen2VlModel,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub processor: ImageProcessor,
    /// Tokens that end a reply: `generation_config.json`, the config, and `<|im_end|>`.
    pub eos_ids: Vec<u32>,
}

impl Qwen2Vl {
    /// Loads a checkpoint folder; `processor` replaces `preprocessor_config.json` when given.
    pub fn load(dir: &Path, device: &Device, dtype: DType, processor: Option<ProcessorConfig>) -> Result<Self> {
        let files = CheckpointFiles::locate(dir)?;
        let config = files.read_config()?;
        let tokenizer = load_tokenizer(files.tokenizer()?)?;
        check_special_tokens(&tokenizer, &config)?;
        let template = ChatTemplate::new(files.chat_template()?)?;
        let processor = match processor {
            Some(p) => p,
            None => files.read_processor_config()?,
        };
        check_processor(&processor, &config)?;
        let mut eos_ids = files.generation_eos_ids()?;
        eos_ids.extend(&config.eos_token_ids);
        eos_ids.extend(tokenizer.token_to_id("<|im_end|>"));
        eos_ids.sort_unstable();
        eos_ids.dedup();
        let model = Qwen2VlModel::load(&files, &config, device, dtype)?;
        Ok(Self { model, tokenizer, template, processor: ImageProcessor::new(processor), eos_ids })
    }

    pub fn config(&self) -> &Config {
        self.model.config()
    }

    pub fn device(&self) -> &Device {
        self.model.device()
    }

    /// Renders `messages` with the chat template (generation prompt added) and tokenizes them,
    /// expanding image placeholders for `grids`.
    pub fn encode_messages(&self, messages: &Value, grids: &[Grid]) -> Result<(String, Vec<u32>)> {
        let text = self.template.render(messages, true)?;
        let merge = self.config().vision.spatial_merge_size;
        let ids = encode_prompt(&self.tokenizer, &text, self.config().image_token_id, grids, merge)?;
        Ok((text, ids))
    }

    /// Stacks prepared images into `pixel_values [Σ patches, patch_len]` on the model's device.
    pub fn pixel_values(&self, images: &[&PreparedImage]) -> Result<(Tensor, Vec<Grid>)> {
        let patch_len = self.config().vision.patch_len();
        let total: usize = images.iter().map(|i| i.grid.num_patches()).sum();
        let mut values = Vec::with_capacity(total * patch_len);
        for image in images {
            if image.pixel_values.len() != image.grid.num_patches() * patch_len {
                return Err(ModelError::Input("pixel values do not match their grid".into()));
            }
            values.extend_from_slice(&image.pixel_values);
        }
        let tensor = Tensor::from_vec(values, (total, patch_len), self.device())?;
        Ok((tensor, images.iter().map(|i| i.grid).collect()))
    }

    pub fn decode_text(&self, tokens: &[u32]) -> Result<String> {
        self.tokenizer.decode(tokens, true).map_err(|e| ModelError::Tokenizer(e.to_string()))
    }
}

pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| ModelError::invalid(path, "tokenizer.json", e))
}

/// The tokenizer must know the placeholders the config names, or images would be spliced at
/// the wrong places.
fn check_special_tokens(tokenizer: &Tokenizer, config: &Config) -> Result<()> {
    for (name, id) in [
        ("<|image_pad|>", config.image_token_id),
        ("<|vision_start|>", config.vision_start_token_id),
        ("<|vision_end|>", config.vision_end_token_id),
    ] {
        match tokenizer.token_to_id(name) {
            Some(found) if found == id => {}
            Some(found) => {
                return Err(ModelError::Config(format!(
                    "the tokenizer gives {name} id {found}, config.json says {id}"
                )));
            }
            None => return Err(ModelError::Config(format!("the tokenizer has no {name} token"))),
        }
    }
    let vocab = tokenizer.get_vocab_size(true);
    if vocab > config.text.vocab_size {
        return Err(ModelError::Config(format!(
            "the tokenizer has {vocab} tokens, the model's vocabulary only {}",
            config.text.vocab_size
        )));
    }
    Ok(())
}

fn check_processor(processor: &ProcessorConfig, config: &Config) -> Result<()> {
    let v = &config.vision;
    if processor.patch_size != v.patch_size
        || processor.temporal_patch_size != v.temporal_patch_size
        || processor.merge_size != v.spatial_merge_size
    {
        return Err(ModelError::Config(format!(
            "preprocessor_config.json (patch {}, temporal {}, merge {}) disagrees with config.json (patch {}, temporal {}, merge {})",
            processor.patch_size,
            processor.temporal_patch_size,
            processor.merge_size,
            v.patch_size,
            v.temporal_patch_size,
            v.spatial_merge_size
        )));
    }
    processor.validate().map_err(ModelError::Config)
}
