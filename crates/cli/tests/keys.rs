//! `easel keys` against real Postgres (from `scripts/deps-up.sh`, configured by `config/`): the
//! first admin key is made from the command line, printed once and stored only as a hash.

mod common;

use common::postgres::TestDatabase;
use common::run;
use easel_core::{auth, db};

#[test]
fn keys_create_prints_a_token_once_and_stores_its_hash() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _context = runtime.enter();
    let database = runtime.block_on(TestDatabase::create("easel_cli_keys"));
    let keys = || database.easel("keys");
    let pool = database.pool.clone();

    let out = run(keys().args(["create", "--name", "organiser", "--scope", "admin"]));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("easel_") && token.len() == 70, "stdout is the token alone: {token:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("organiser") && !stderr.contains(&token), "{stderr}");

    let hash = auth::parse_token(&token).unwrap();
    let key = runtime.block_on(db::keys::find_active(&pool, &hash)).unwrap().expect("the key is live");
    assert_eq!((key.name.as_str(), key.scopes.clone()), ("organiser", vec!["admin".to_string()]));

    // Listed without its token; revoked by id.
    let listed = String::from_utf8(run(keys().arg("list")).stdout).unwrap();
    assert!(listed.contains("organiser") && listed.contains("active") && !listed.contains(&token), "{listed}");
    run(keys().args(["revoke", &key.id.to_string()]));
    assert!(runtime.block_on(db::keys::find_active(&pool, &hash)).unwrap().is_none(), "revoked");
    assert!(String::from_utf8(run(keys().arg("list")).stdout).unwrap().contains("revoked"));

    // Bad scopes, names and dates store nothing.
    for args in [
        vec!["create", "--name", "x", "--scope", "root"],
        vec!["create", "--name", "x", "--scope", "competition:x:read"],
        vec!["create", "--name", "bad\u{202e}name", "--scope", "admin"],
        vec!["create", "--name", "x", "--scope", "admin", "--expires-at", "2001-01-01T00:00:00Z"],
        vec!["create", "--name", "x"],
    ] {
        let out = keys().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    }
    let count: i64 = runtime.block_on(sqlx::query_scalar("SELECT count(*) FROM api_keys").fetch_one(&pool)).unwrap();
    assert_eq!(count, 1);
    let unknown = keys().args(["revoke", &uuid::Uuid::now_v7().to_string()]).output().unwrap();
    assert!(!unknown.status.success());
    runtime.block_on(database.drop());
}
