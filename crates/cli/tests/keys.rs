//! `easel keys` against real Postgres (from `scripts/deps-up.sh`, configured by `config/`): the
//! first admin key is made from the command line, printed once and stored only as a hash.

mod common;

use std::path::Path;
use std::process::Command;

use common::{easel, run};
use easel_core::configuration::{Service, Settings};
use easel_core::{auth, db};
use secrecy::{ExposeSecret, SecretString};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A fresh, migrated database; its URL.
async fn fresh_database() -> String {
    let settings = Settings::load_from(Service::Ingest, &repo().join("config")).expect("config/");
    let mut url = split_database_url(settings.database.url.expose_secret());
    let admin = db::pool(&settings.database).unwrap();
    let name = format!("easel_cli_keys_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&admin).await.expect("Postgres (scripts/deps-up.sh)");
    admin.close().await;
    url.1 = name;
    let url = format!("{}/{}", url.0, url.1);
    let mut database = settings.database.clone();
    database.url = SecretString::from(url.clone());
    let pool = db::pool(&database).unwrap();
    db::migrate(&pool).await.unwrap();
    pool.close().await;
    url
}

/// Splits `postgres://…/name?…` into the part before the database name and the name.
fn split_database_url(url: &str) -> (String, String) {
    let without_query = url.split('?').next().unwrap();
    let (base, name) = without_query.rsplit_once('/').unwrap();
    (base.to_string(), name.to_string())
}

fn keys(database_url: &str) -> Command {
    let mut cmd = easel();
    cmd.env("APP_CONFIG_DIR", repo().join("config")).env("APP_DATABASE__URL", database_url).arg("keys");
    cmd
}

#[test]
fn keys_create_prints_a_token_once_and_stores_its_hash() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _context = runtime.enter();
    let url = runtime.block_on(fresh_database());

    let out = run(keys(&url).args(["create", "--name", "organiser", "--scope", "admin"]));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("easel_") && token.len() == 70, "stdout is the token alone: {token:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("organiser") && !stderr.contains(&token), "{stderr}");

    let mut settings = Settings::load_from(Service::Ingest, &repo().join("config")).unwrap();
    settings.database.url = SecretString::from(url.clone());
    let pool = db::pool(&settings.database).unwrap();
    let hash = auth::parse_token(&token).unwrap();
    let key = runtime.block_on(db::keys::find_active(&pool, &hash)).unwrap().expect("the key is live");
    assert_eq!((key.name.as_str(), key.scopes.clone()), ("organiser", vec!["admin".to_string()]));

    // Listed without its token; revoked by id.
    let listed = String::from_utf8(run(keys(&url).arg("list")).stdout).unwrap();
    assert!(listed.contains("organiser") && listed.contains("active") && !listed.contains(&token), "{listed}");
    run(keys(&url).args(["revoke", &key.id.to_string()]));
    assert!(runtime.block_on(db::keys::find_active(&pool, &hash)).unwrap().is_none(), "revoked");
    assert!(String::from_utf8(run(keys(&url).arg("list")).stdout).unwrap().contains("revoked"));

    // Bad scopes, names and dates store nothing.
    for args in [
        vec!["create", "--name", "x", "--scope", "root"],
        vec!["create", "--name", "x", "--scope", "competition:x:read"],
        vec!["create", "--name", "bad\u{202e}name", "--scope", "admin"],
        vec!["create", "--name", "x", "--scope", "admin", "--expires-at", "2001-01-01T00:00:00Z"],
        vec!["create", "--name", "x"],
    ] {
        let out = keys(&url).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    }
    let count: i64 = runtime.block_on(sqlx::query_scalar("SELECT count(*) FROM api_keys").fetch_one(&pool)).unwrap();
    assert_eq!(count, 1);
    let unknown = keys(&url).args(["revoke", &uuid::Uuid::now_v7().to_string()]).output().unwrap();
    assert!(!unknown.status.success());
    runtime.block_on(pool.close());
    let admin = db::pool(&Settings::load_from(Service::Ingest, &repo().join("config")).unwrap().database).unwrap();
    let name = split_database_url(&url).1;
    let _ = runtime.block_on(sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&admin));
}
