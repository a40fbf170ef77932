//! `easel model …`: create random checkpoints, dump reference tensors, fold LoRA adapters.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use easel_model::init::{InitOptions, Preset, init_checkpoint_with};

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Write a random-weight Easel checkpoint in the real Qwen2-VL or Qwen2.5-VL layout and shapes.
    Init(InitArgs),
    /// Run the plain Qwen2-VL (no head) on one user message and save its tensors.
    Dump(crate::dump::DumpArgs),
    /// Fold a checkpoint's LoRA adapter into its base weights for serving.
    Merge(MergeArgs),
}

#[derive(Args)]
pub struct InitArgs {
    /// tiny or qwen2.5-vl-tiny (CPU-sized, for tests and demos); qwen2-vl-2b, qwen2-vl-7b,
    /// qwen2.5-vl-3b or qwen2.5-vl-7b (real shapes).
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A Qwen tokenizer.json; required by the real-shape presets.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
}

#[derive(Args)]
pub struct MergeArgs {
    /// Easel checkpoint with a LoRA adapter.
    #[arg(long)]
    pub model: PathBuf,
    /// Where to write the merged checkpoint (no adapter; same head and easel.json).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Init(args) => {
            let preset = Preset::parse(&args.preset)?;
            let options = InitOptions {
                seed: args.seed,
                tokenizer: args.tokenizer,
                ..InitOptions::default()
            };
            let manifest = init_checkpoint_with(preset, &args.out, &options)
                .with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "wrote {} ({}) to {}",
                manifest.model_version,
                preset.name(),
                args.out.display()
            );
            Ok(())
        }
        ModelCommand::Dump(args) => crate::dump::run(args),
        ModelCommand::Merge(args) => {
            easel_model::lora::merge_checkpoint(&args.model, &args.out).with_context(|| {
                format!(
                    "merging {} into {}",
                    args.model.display(),
                    args.out.display()
                )
            })?;
            println!("wrote the merged checkpoint to {}", args.out.display());
            Ok(())
        }
    }
}
