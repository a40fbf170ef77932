//! `easel`: score and critique paintings with a multi-task Qwen2-VL checkpoint, manage
//! checkpoints, and benchmark the model.

mod bench;
mod bench_weights;
mod calibrate;
mod device;
mod dump;
mod eval;
mod images;
mod jobs;
mod keys;
mod model_cmd;
mod score;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "easel", version, about = "Score and critique artworks with a fine-tuned Qwen2-VL", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score every painting in folders or files; writes one JSONL or CSV record per image.
    Score(score::ScoreArgs),
    /// Create, inspect and convert checkpoints.
    Model {
        #[command(subcommand)]
        command: model_cmd::ModelCommand,
    },
    /// Fine-tune the regression head and LoRA adapters on a rated manifest.
    Train(Box<train::TrainArgs>),
    /// Evaluate a checkpoint on a rated manifest: agreement statistics, critique similarity,
    /// rubric coverage; JSON + Markdown report with plots.
    Eval(eval::EvalArgs),
    /// Fit a zero-shot checkpoint's scores onto a jury's scale from a rated manifest
    /// (cross-validated), or install one the API fitted on a jury round; writes a new
    /// checkpoint folder that serves them calibrated.
    Calibrate(calibrate::CalibrateArgs),
    /// Measure the model's speed.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Make, list and revoke the services' API keys (in Postgres, with the services'
    /// configuration): `easel keys create --name organiser --scope admin` prints the first key.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Operate on the pipeline's jobs (in Postgres, with the services' configuration):
    /// `easel jobs redrive --competition SLUG` queues a competition's failed submissions again.
    Jobs {
        #[command(subcommand)]
        command: jobs::JobsCommand,
    },
}

fn main() -> Result<()> {
    easel_model::cpu::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Score(args) => score::run(args),
        Command::Model { command } => model_cmd::run(command),
        Command::Train(args) => train::run(*args),
        Command::Eval(args) => eval::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Bench { command } => bench::run(command),
        Command::Keys { command } => keys::run(command),
        Command::Jobs { command } => jobs::run(command),
    }
}
