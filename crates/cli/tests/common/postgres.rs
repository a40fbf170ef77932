//! A fresh, migrated Postgres database per test, on the server `config/` names (started by
//! `scripts/deps-up.sh`), for the commands that talk to the services' database.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use easel_core::configuration::{Service, Settings};
use easel_core::db;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

pub fn config_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config")).to_path_buf()
}

/// The services' settings as `config/` gives them.
pub fn settings() -> Settings {
    Settings::load_from(Service::Ingest, &config_dir()).expect("config/")
}

pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDatabase {
    /// Creates and migrates `<prefix>_<random>`.
    pub async fn create(prefix: &str) -> Self {
        let settings = settings();
        let admin = db::pool(&settings.database).unwrap();
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&admin).await.expect("Postgres (scripts/deps-up.sh)");
        admin.close().await;
        let base = settings.database.url.expose_secret().split('?').next().unwrap().rsplit_once('/').unwrap().0.to_string();
        let url = format!("{base}/{name}");
        let mut database = settings.database.clone();
        database.url = SecretString::from(url.clone());
        let pool = db::pool(&database).unwrap();
        db::migrate(&pool).await.unwrap();
        Self { name, url, pool }
    }

    /// `easel <subcommand>` with the services' configuration, pointed at this database.
    pub fn easel(&self, subcommand: &str) -> Command {
        let mut cmd = super::easel();
        cmd.env("APP_CONFIG_DIR", config_dir()).env("APP_DATABASE__URL", &self.url).arg(subcommand);
        cmd
    }

    pub async fn drop(self) {
        self.pool.close().await;
        let admin = db::pool(&settings().database).unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).execute(&admin).await;
        admin.close().await;
    }
}
