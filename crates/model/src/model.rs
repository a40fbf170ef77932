//! Qwen2-VL (and Qwen2.5-VL, which differs only in its vision tower) for conditional
//! generation: the vision tower, the language model and the output projection, plus the splice
//! that puts visual tokens at the `<|image_pad|>` positions.

use candle_core::{DType, Device, Module, Result as CandleResult, Tensor};
use candle_nn::VarBuilder;

use crate::checkpoint::{CheckpointFiles, WeightLayout, detect_layout};
use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::layers::Linear;
use crate::text::TextModel;
use crate::vision::VisionTower;

#[derive(Debug, Clone)]
pub struct Qwen2VlModel {
    /// Qwen2-VL's or Qwen2.5-VL's, as `config.json`'s `model_type` says.
    pub vision: VisionTower,
    pub text: TextModel,
    lm_head: Linear,
    config: Config,
    layout: WeightLayout,
}

impl Qwen2VlModel {
    /// Builds the model from a `VarBuilder` over a checkpoint in `layout`.
    pub fn new(config: &Config, vb: VarBuilder, layout: WeightLayout) -> CandleResult<Self> {
        let vision = VisionTower::new(&config.vision, vb.pp(layout.vision_prefix()))?;
        let text = TextModel::new(&config.text, vb.pp(layout.text_prefix()))?;
        let lm_head = if vb.contains_tensor("lm_head.weight") {
            Linear::load(config.text.hidden_size, config.text.vocab_size, false, vb.pp("lm_head"))?
        } else if config.text.tie_word_embeddings {
            Linear::new(text.embed_tokens.embeddings().clone(), None)
        } else {
            candle_core::bail!("lm_head.weight is missing and tie_word_embeddings is false")
        };
        Ok(Self { vision, text, lm_head, config: config.clone(), layout })
    }

    /// Loads a checkpoint folder's weights (memory-mapped) onto `device` as `dtype`.
    pub fn load(files: &CheckpointFiles, config: &Config, device: &Device, dtype: DType) -> Result<Self> {
        let vb = files.var_builder(dtype, device)?;
        let layout = detect_layout(&vb)?;
        Self::new(config, vb, layout).map_err(|e| ModelError::Weights(format!("{}: {e}", files.dir.display())))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Holds the dense layers' weights in `format` ([`crate::cpu::packed`]) for inference: bf16
    /// packs the vision tower's blocks, the language model and the output layer; int8 the
    /// language model and the output layer, with the vision tower as f32 does; f32 the vision
    /// tower's blocks and the language model's in gemm's kernel panels (the output layer keeps
    /// the embeddings' rows). bf16 and int8 need an f32 model on the CPU; f32 changes nothing
    /// elsewhere, or with `EASEL_CPU_KERNELS=0`.
    pub fn pack_weights(&mut self, format: crate::WeightFormat) -> Result<()> {
        if format != crate::WeightFormat::F32 && (!self.device().is_cpu() || self.dtype() != DType::F32) {
            return Err(ModelError::Input(format!(
                "{format} weights run on the CPU with --dtype f32 (the model is {:?} on {:?}); on a GPU use --dtype bf16",
                self.dtype(),
                self.device()
            )));
        }
        if format != crate::WeightFormat::F32 {
            self.lm_head.pack(format)?;
        }
        for (_, linear) in crate::lora::projections(self, false) {
            linear.pack(format)?;
        }
        for (_, linear) in self.vision.projections_mut() {
            linear.pack(format.for_vision())?;
        }
        // What loading and packing freed goes back to the kernel now, not with the first calls.
        crate::cpu::release_freed_memory();
        Ok(())
    }

    /// Fused kernels (inference) or differentiable ones (training) throughout.
    pub fn set_kernels(&mut self, kernels: crate::layers::Kernels) {
        self.vision.set_kernels(kernels);
        self.text.set_kernels(kernels);
    }

    pub fn layout(&self) -> WeightLayout {
        self.layout
    }

    pub fn device(&self) -> &Device {
        self.text.embed_tokens.embeddings().device()
    }

    pub fn dtype(&self) -> DType {
        self.text.dtype()
    }

    pub fn lm_head(&self) -> &Linear {
        &self.lm_head
    }

    pub fn lm_head_mut(&mut self) -> &mut Linear {
        &mut self.lm_head
    }

    /// Logits in f32 for hidden states of any leading shape.
    pub fn logits(&self, hidden: &Tensor) -> CandleResult<Tensor> {
        self.lm_head.forward(hidden)?.to_dtype(DType::F32)
    }

    /// Token embeddings `[b, l, hidden]` with the rows at image placeholders replaced, in order,
    /// by the rows of `image_embeds [Σ tokens, hidden]`.
    pub fn embed_with_images(
        &self,
        input_ids: &[Vec<u32>],
        image_embeds: Option<&Tensor>,
    ) -> CandleResult<Tensor> {
        let b = input_ids.len();
        let l = input_ids.first().map(Vec::len).unwrap_or(0);
        let flat: Vec<u32> = input_ids.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat.clone(), (b, l), self.device())?;
        let embeds = self.text.embed(&ids)?;
        let image_token = self.config.image_token_id;
        let placeholders = flat.iter().filter(|&&id| id == image_token).count();
        let Some(images) = image_embeds else {
            if placeholders > 0 {
                candle_core::bail!("{placeholders} image placeholders but no image embeddings");
            }
            return Ok(embeds);
        };
        let available = images.dim(0)?;
        if placeholders != available {
            candle_core::bail!("{placeholders} image placeholders for {available} visual tokens");
        }
        // Gather from [token embeddings; visual tokens]: placeholder k takes visual row k.
        let hidden = self.config.text.hidden_size;
        let table = Tensor::cat(&[&embeds.reshape((b * l, hidden))?, &images.to_dtype(embeds.dtype())?], 0)?;
        let mut next_visual = (b * l) as u32;
        let index: Vec<u32> = flat
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                if id == image_token {
                    next_visual += 1;
                    next_visual - 1
                } else {
                    i as u32
                }
            })
            .collect();
        let index = Tensor::from_vec(index, b * l, self.device())?;
        table.index_select(&index, 0)?.reshape((b, l, hidden))
    }
}
