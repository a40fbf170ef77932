//! `easel-chaos`: the chaos run. See `easel_tests::chaos` and docs/PIPELINE.md ("Chaos run").

use anyhow::Context;
use clap::Parser;
use easel_tests::chaos::{self, Options};

/// Pushes the same jobs through the pipeline twice: a baseline, then a run in which workers are
/// SIGKILLed mid-batch three times (each replaced) and RabbitMQ, Postgres and SeaweedFS are
/// each restarted once, spaced out by the jobs done. Each run must end with every submission
/// done and exactly one result each: none failed, lost or duplicated. Reports each run's wall
/// time and the chaos/baseline ratio; exits non-zero if an invariant failed.
///
/// It restarts the machine's shared Postgres, RabbitMQ and SeaweedFS (scripts/deps-up.sh), so
/// run it alone: it takes the broker lock the tests share, and tests wait for it. Needs root
/// (pg_ctlcluster, rabbitmqctl) and the sample paintings (scripts/fetch-paintings.sh). Ingest
/// and api run in this process; workers are `easel-worker` processes. Progress goes to stderr.
#[derive(Parser)]
#[command(name = "easel-chaos", version)]
struct Cli {
    #[command(flatten)]
    options: Options,
    /// Print JSON lines (one per run, then a summary) on stdout; the text then goes to stderr.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (runs, summary) = runtime.block_on(chaos::run(&cli.options))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let mut text: Vec<String> = runs.iter().map(|run| run.line()).collect();
    text.push(summary.line());
    if cli.json {
        eprintln!("{}", text.join("\n"));
        for run in &runs {
            println!("{}", serde_json::to_string(run)?);
        }
        println!("{}", serde_json::json!({ "summary": summary }));
    } else {
        println!("{}", text.join("\n"));
    }
    if !summary.passed {
        std::process::exit(1);
    }
    Ok(())
}
