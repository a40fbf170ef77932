use std::time::Duration;

use anyhow::Context;
use easel_core::http::shutdown_signal;
use easel_core::{Service, Settings, telemetry};
use easel_worker::drain;
use easel_worker::startup::Worker;

/// Easel's scoring worker: takes jobs from RabbitMQ in batches, runs the multi-task model and
/// writes the results to Postgres.
///
/// Settings come from `config/base.yaml`, `config/$APP_ENVIRONMENT.yaml` and `APP_*`
/// environment variables (see docs/PIPELINE.md). SIGTERM stops consuming, finishes the
/// batches in hand (for up to `worker.max_batch_seconds`) and exits.
#[derive(clap::Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Consume and score until SIGTERM (the default).
    Run,
    /// Ask the worker running here (`application.port`) to stop consuming: `POST /drain` with
    /// `worker.drain_token`. The Kubernetes preStop hook; the worker then exits on SIGTERM.
    Drain,
}

fn main() -> anyhow::Result<()> {
    easel_model::cpu::keep_freed_memory();
    let cli = <Cli as clap::Parser>::parse();
    let settings = Settings::load(Service::Worker).context("loading the settings")?;
    if let Some(Command::Drain) = cli.command {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
        let answer = runtime.block_on(drain::request(&settings)).context("draining the worker")?;
        println!("{answer}");
        return Ok(());
    }
    telemetry::init_subscriber(&settings.telemetry);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let worker = Worker::build(settings).await.context("starting the worker")?;
        worker.run_until_stopped(shutdown_signal()).await
    });
    // A model call abandoned at the shutdown deadline must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
