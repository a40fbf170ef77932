//! `easel jobs`: operator actions on the pipeline's jobs, straight in Postgres with the
//! services' configuration. `redrive` gives a competition's failed submissions another go once
//! their cause is fixed (a bad model release, an outage that outlasted `worker.max_attempts`).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use easel_core::configuration::{Service, Settings};
use easel_core::db;
use easel_core::domain::CompetitionSlug;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Move a competition's `failed` submissions back to `queued` (attempts reset, failure
    /// cleared) and write their jobs to the outbox, in one transaction; the ingest relay
    /// publishes them. Prints how many.
    Redrive {
        /// The competition's slug.
        #[arg(long, value_parser = parse_slug)]
        competition: CompetitionSlug,
        /// Only print how many would be redriven; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_slug(s: &str) -> Result<CompetitionSlug, String> {
    CompetitionSlug::parse(s).map_err(|e| e.to_string())
}

/// Runs a `jobs` subcommand against the database in the ingest service's settings
/// (`config/`, `APP_ENVIRONMENT`, `APP_DATABASE__URL`).
pub fn run(command: JobsCommand) -> Result<()> {
    let settings = Settings::load(Service::Ingest).context("loading the service configuration (config/ and APP_*)")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let pool = db::pool(&settings.database)?;
        let outcome = match command {
            JobsCommand::Redrive { competition, dry_run } => redrive(&pool, &competition, dry_run).await,
        };
        pool.close().await;
        outcome
    })
}

async fn redrive(pool: &sqlx::PgPool, slug: &CompetitionSlug, dry_run: bool) -> Result<()> {
    let Some(competition) = db::competitions::find_by_slug(pool, slug).await.context("reading the competition")? else {
        bail!("there is no competition {slug}");
    };
    if dry_run {
        let failed = db::submissions::count_failed(pool, competition.id).await.context("counting failed submissions")?;
        eprintln!("{failed} failed submission(s) of {slug} would be queued again (dry run: nothing changed)");
        println!("{failed}");
        return Ok(());
    }
    let requeued = db::submissions::redrive_failed(pool, competition.id).await.context("queueing the failed submissions again")?;
    eprintln!("{requeued} failed submission(s) of {slug} queued again; the ingest relay publishes their jobs");
    println!("{requeued}");
    Ok(())
}
