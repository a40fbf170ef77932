//! `easel model dump`: the plain Qwen2-VL's tensors for one prompt, so its numerics can be
//! checked from outside against HF transformers. Flags and tensor names are a stable contract.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use easel_model::generate::{GenerationConfig, Request, decode, prefill};
use easel_model::prompt::user_message;
use easel_model::{DecodeLimits, Grid, Qwen2Vl};

use crate::device::ComputeArgs;

#[derive(Args)]
pub struct DumpArgs {
    /// A Hugging Face Qwen2-VL folder (easel.json is not needed).
    #[arg(long)]
    pub model: PathBuf,
    /// Images of the user message, in order.
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    /// The text after the images.
    #[arg(long)]
    pub prompt: String,
    #[arg(long, default_value_t = 16)]
    pub max_new_tokens: usize,
    /// Keep generating past end-of-sequence tokens.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Where to write the tensors (safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Take `pixel_values` and `image_grid_thw` from this safetensors file instead of
    /// preprocessing the images.
    #[arg(long)]
    pub pixel_values_from: Option<PathBuf>,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

pub fn run(args: DumpArgs) -> Result<()> {
    let device = args.compute.device()?;
    let mut vlm = Qwen2Vl::load(&args.model, &device, args.compute.dtype()?, None)
        .with_context(|| format!("loading {}", args.model.display()))?;
    vlm.model.pack_weights(args.compute.weights()?)?;
    let patch_len = vlm.config().vision.patch_len();

    let (pixel_values, grids) = match &args.pixel_values_from {
        Some(path) => {
            let tensors = candle_core::safetensors::load(path, &Device::Cpu)
                .with_context(|| format!("reading {}", path.display()))?;
            let get = |name: &str| {
                tensors
                    .get(name)
                    .with_context(|| format!("{} has no {name}", path.display()))
            };
            let pv = get("pixel_values")?.to_dtype(DType::F32)?;
            let thw = get("image_grid_thw")?
                .to_dtype(DType::I64)?
                .to_vec2::<i64>()?;
            let grids = thw
                .iter()
                .map(|r| match r.as_slice() {
                    [t, h, w] if *t > 0 && *h > 0 && *w > 0 => Ok(Grid {
                        t: *t as usize,
                        h: *h as usize,
                        w: *w as usize,
                    }),
                    _ => bail!("bad image_grid_thw row {r:?}"),
                })
                .collect::<Result<Vec<_>>>()?;
            (pv, grids)
        }
        None => {
            let limits = DecodeLimits::default().any_format();
            let prepared = args
                .images
                .iter()
                .map(|p| {
                    vlm.processor
                        .prepare_file(p, &limits)
                        .with_context(|| format!("preparing {}", p.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<_> = prepared.iter().collect();
            let (pv, grids) = vlm.pixel_values(&refs)?;
            (pv.to_device(&Device::Cpu)?, grids)
        }
    };
    if pixel_values.dim(1)? != patch_len && pixel_values.dim(0)? > 0 {
        bail!(
            "pixel_values rows are {} wide, the model takes {patch_len}",
            pixel_values.dim(1)?
        );
    }
    let messages = serde_json::json!([user_message(grids.len(), &args.prompt)]);
    let (_, input_ids) = vlm.encode_messages(&messages, &grids)?;

    let model = &vlm.model;
    let merged = if grids.is_empty() {
        None
    } else {
        Some(
            model
                .vision
                .forward(&pixel_values.to_device(&device)?, &grids)?,
        )
    };
    let request = Request {
        input_ids: input_ids.clone(),
        grids: grids.clone(),
    };
    let state = prefill(
        model,
        &[request],
        merged.as_ref(),
        args.max_new_tokens,
        true,
    )?;
    let logits = state
        .all_logits
        .clone()
        .context("prefill returned no logits")?;
    let generation = GenerationConfig {
        stop_on_eos: !args.ignore_eos,
        ..GenerationConfig::greedy(args.max_new_tokens)
    };
    let generated = decode(model, state, &generation, &vlm.eos_ids, |_, _| Ok(()))?;
    let generated_ids: Vec<i64> = generated[0].tokens.iter().map(|&t| t as i64).collect();

    let cpu = Device::Cpu;
    let hidden = vlm.config().text.hidden_size;
    let mut out: HashMap<String, Tensor> = HashMap::new();
    out.insert(
        "pixel_values".into(),
        pixel_values.to_dtype(DType::F32)?.to_device(&cpu)?,
    );
    let thw: Vec<i64> = grids
        .iter()
        .flat_map(|g| [g.t as i64, g.h as i64, g.w as i64])
        .collect();
    out.insert(
        "image_grid_thw".into(),
        Tensor::from_vec(thw, (grids.len(), 3), &cpu)?,
    );
    let ids: Vec<i64> = input_ids.iter().map(|&t| t as i64).collect();
    out.insert(
        "input_ids".into(),
        Tensor::from_vec(ids, (1, input_ids.len()), &cpu)?,
    );
    let merged = match merged {
        Some(m) => m.to_dtype(DType::F32)?.to_device(&cpu)?,
        None => Tensor::zeros((0, hidden), DType::F32, &cpu)?,
    };
    out.insert("vision_merged".into(), merged);
    out.insert(
        "logits".into(),
        logits.to_dtype(DType::F32)?.to_device(&cpu)?,
    );
    let n = generated_ids.len();
    out.insert(
        "generated_ids".into(),
        Tensor::from_vec(generated_ids, n, &cpu)?,
    );
    candle_core::safetensors::save(&out, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} ({} prompt tokens, {} images, {n} generated)",
        args.out.display(),
        input_ids.len(),
        grids.len()
    );
    Ok(())
}
