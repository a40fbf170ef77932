//! `easel keys`: API keys made straight in Postgres, with the services' configuration (the
//! first `admin` key, and a way back in when every admin key is lost). Over HTTP an admin key
//! manages the others (`POST /v1/keys`).

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use easel_core::auth::{Scopes, generate_token, parse_key_name};
use easel_core::configuration::{Service, Settings};
use easel_core::db;
use secrecy::ExposeSecret;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a key and print its token on stdout (once: only its hash is stored).
    Create {
        /// A label for people, e.g. "organiser" or "jury: Anna".
        #[arg(long)]
        name: String,
        /// `admin`, or `competition:<slug>:submit|read|judge|manage`; repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// When the key stops working (RFC 3339, e.g. 2027-01-31T00:00:00Z); default never.
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List the keys (never their tokens).
    List,
    /// Revoke a key at once.
    Revoke {
        /// The key's id (from `easel keys list`).
        id: Uuid,
    },
}

/// Runs a `keys` subcommand against the database in the ingest service's settings
/// (`config/`, `APP_ENVIRONMENT`, `APP_DATABASE__URL`).
pub fn run(command: KeysCommand) -> Result<()> {
    let settings = Settings::load(Service::Ingest).context("loading the service configuration (config/ and APP_*)")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let pool = db::pool(&settings.database)?;
        let outcome = match command {
            KeysCommand::Create { name, scopes, expires_at } => create(&pool, &name, &scopes, expires_at).await,
            KeysCommand::List => list(&pool).await,
            KeysCommand::Revoke { id } => revoke(&pool, id).await,
        };
        pool.close().await;
        outcome
    })
}

async fn create(pool: &sqlx::PgPool, name: &str, scopes: &[String], expires_at: Option<DateTime<Utc>>) -> Result<()> {
    let name = parse_key_name(name)?;
    let scopes = Scopes::parse(scopes)?;
    if expires_at.is_some_and(|at| at <= Utc::now()) {
        bail!("--expires-at must be in the future");
    }
    let (token, hash) = generate_token().context("reading random bytes from the operating system")?;
    let key = db::keys::insert(pool, &name, &scopes, expires_at, None, &hash)
        .await
        .context("storing the key (are the migrations applied? `easel-ingest migrate`)")?;
    eprintln!("key {} ({:?}, scopes {}) created; its token, shown this once:", key.id, key.name, key.scopes.join(" "));
    println!("{}", token.expose_secret());
    Ok(())
}

async fn list(pool: &sqlx::PgPool) -> Result<()> {
    let keys = db::keys::list(pool, i64::MAX).await.context("listing the keys")?;
    println!("{:<36}  {:<8}  {:<24}  {:<20}  scopes", "id", "state", "name", "last used");
    for key in keys {
        let state = match (key.revoked_at, key.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(at)) if at <= Utc::now() => "expired",
            _ => "active",
        };
        let last_used = key.last_used_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "never".into());
        println!("{:<36}  {:<8}  {:<24}  {:<20}  {}", key.id, state, key.name, last_used, key.scopes.join(" "));
    }
    Ok(())
}

async fn revoke(pool: &sqlx::PgPool, id: Uuid) -> Result<()> {
    match db::keys::revoke(pool, id).await.context("revoking the key")? {
        Some(key) => {
            eprintln!("key {} ({:?}) revoked", key.id, key.name);
            Ok(())
        }
        None => bail!("there is no key {id}"),
    }
}
