use anyhow::Context;
use easel_api::startup::Application;
use easel_core::http::shutdown_signal;
use easel_core::{Service, Settings, telemetry};

/// Easel's read API: submissions, leaderboards, progress and exports.
///
/// Settings come from `config/base.yaml`, `config/$APP_ENVIRONMENT.yaml` and `APP_*`
/// environment variables (see docs/PIPELINE.md).
#[derive(clap::Parser)]
#[command(version)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = <Cli as clap::Parser>::parse();
    let settings = Settings::load(Service::Api).context("loading the settings")?;
    telemetry::init_subscriber(&settings.telemetry);
    let application = Application::build(settings).await.context("starting the api service")?;
    application.run_until_stopped(shutdown_signal()).await
}
