//! Postgres access: one module per table group. The pool connects lazily and replaces broken
//! connections, so a service starts (and reports not-ready) while Postgres is down and carries
//! on after it restarts.

pub mod audit;
pub mod competitions;
pub mod juror_scores;
pub mod jurors;
pub mod keys;
pub mod outbox;
pub mod overrides;
pub mod results;
pub mod rounds;
pub mod submissions;
pub mod workers;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::configuration::DatabaseSettings;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A pool over `settings` that opens connections on first use.
pub fn pool(settings: &DatabaseSettings) -> Result<PgPool, crate::configuration::ConfigurationError> {
    Ok(pool_with(settings, settings.connect_options()?))
}

/// A pool over `options` (tests point it at a database of their own).
pub fn pool_with(settings: &DatabaseSettings, options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout())
        .connect_lazy_with(options)
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Whether Postgres answers (readiness).
pub async fn check(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// Whether `error` may go away by itself (a restarting or overloaded server), as opposed to a
/// bug or bad data.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            // 08: connection exception; 53: insufficient resources; 57P0x: shutting down or
            // starting; 40001/40P01: serialization failure and deadlock.
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") || code == "40001" || code == "40P01"
        }),
        _ => false,
    }
}
