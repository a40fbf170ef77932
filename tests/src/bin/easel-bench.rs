//! `easel-bench`: the pipeline benchmark. See `easel_tests::bench` and docs/PERFORMANCE.md.

use anyhow::Context;
use clap::Parser;
use easel_tests::bench::{self, Options};

/// Jobs per second end to end through ingest → S3 → RabbitMQ → worker (the tiny random model,
/// on the CPU) → Postgres, and what transport costs per job: the model's idle time between
/// batches, CPU time by where it went (model, decode, validation, client, the services'
/// transport, Postgres, RabbitMQ, SeaweedFS; phased runs split it into the upload and worker
/// phases) and each stage's latency (HTTP, S3 put/get, publish, claim, result write, ack),
/// beside a baseline of the same run that calls the same model on the same paintings with no
/// services around.
///
/// Needs Postgres, RabbitMQ and SeaweedFS (scripts/deps-up.sh) and the sample paintings
/// (scripts/fetch-paintings.sh). Ingest, api and the worker run in this process against a fresh
/// database, queue and bucket, removed at the end. Progress goes to stderr.
#[derive(Parser)]
#[command(name = "easel-bench", version)]
struct Cli {
    #[command(flatten)]
    options: Options,
    /// Print JSON lines (run, stage…, summary, baseline, ratios, sizing) on stdout; the table
    /// then goes to stderr.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Named, so the model's CPU time can be told apart from the services' (candle's CPU matrix
    // work and the tokenizer run on rayon's global pool).
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("{}-{i}", bench::system::MODEL_POOL_THREAD))
        .build_global()
        .context("naming the model's compute pool")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(bench::run(&cli.options))?;
    // A model call abandoned at shutdown must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if cli.json {
        eprint!("{}", report.table());
        for line in report.json_lines() {
            println!("{line}");
        }
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
