use anyhow::Context;
use clap::{Parser, Subcommand};
use easel_core::http::shutdown_signal;
use easel_core::{Service, Settings, db, telemetry};
use easel_ingest::startup::Application;

/// Easel's ingest service: competitions and submissions in, jobs out.
///
/// Settings come from `config/base.yaml`, `config/$APP_ENVIRONMENT.yaml` and `APP_*`
/// environment variables (see docs/PIPELINE.md).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API and relay the outbox to RabbitMQ (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(Service::Ingest).context("loading the settings")?;
    telemetry::init_subscriber(&settings.telemetry);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let application = Application::build(settings).await.context("starting the ingest service")?;
            application.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate => {
            let pool = db::pool(&settings.database)?;
            db::migrate(&pool).await.context("applying the migrations")?;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}
