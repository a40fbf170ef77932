//! `easel jobs redrive` against real Postgres (from `scripts/deps-up.sh`, configured by
//! `config/`): a competition's failed submissions go back to `queued` with their jobs in the
//! outbox, in one transaction; `--dry-run` only counts them.

mod common;

use common::postgres::TestDatabase;
use common::run;
use easel_core::db;
use easel_core::db::submissions::NewSubmission;
use easel_core::domain::{CompetitionSlug, CompetitionTitle};
use sqlx::PgPool;
use uuid::Uuid;

/// A competition with `n` submissions whose jobs the relay has already published.
async fn competition_with(pool: &PgPool, slug: &str, n: usize) -> Vec<Uuid> {
    let slug = CompetitionSlug::parse(slug).unwrap();
    let competition = db::competitions::insert(pool, &slug, &CompetitionTitle::parse("Redrive").unwrap(), None, false)
        .await
        .unwrap()
        .expect("a new slug");
    let entries: Vec<NewSubmission> = (0..n)
        .map(|i| NewSubmission {
            competition_id: competition.id,
            external_id: None,
            image_key: format!("images/sha256/00/{i:064}"),
            image_sha256: format!("{i:064}"),
            image_format: "jpeg".into(),
            image_bytes: 1000,
            width: 100,
            height: 100,
            description: None,
            phash: None,
        })
        .collect();
    let ids = db::submissions::insert_with_jobs(pool, &entries).await.unwrap().into_iter().map(|s| s.id).collect();
    sqlx::query("DELETE FROM outbox").execute(pool).await.unwrap();
    ids
}

async fn fail(pool: &PgPool, id: Uuid) {
    sqlx::query("UPDATE submissions SET status = 'failed', attempts = 5, failure_code = 'attempts_exhausted', failure_reason = 'gave up' WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

#[test]
fn redrive_queues_a_competitions_failed_submissions_with_their_jobs() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _context = runtime.enter();
    let database = runtime.block_on(TestDatabase::create("easel_cli_jobs"));
    let pool = database.pool.clone();
    let jobs = || database.easel("jobs");
    let ids = runtime.block_on(competition_with(&pool, "salon", 3));
    let other = runtime.block_on(competition_with(&pool, "other-salon", 1));
    runtime.block_on(async {
        fail(&pool, ids[0]).await;
        fail(&pool, ids[1]).await;
        fail(&pool, other[0]).await;
    });
    let count = |sql: &str| -> i64 { runtime.block_on(sqlx::query_scalar(sql).fetch_one(&pool)).unwrap() };

    let dry = run(jobs().args(["redrive", "--competition", "salon", "--dry-run"]));
    assert_eq!(String::from_utf8(dry.stdout).unwrap().trim(), "2");
    assert_eq!(count("SELECT count(*) FROM submissions WHERE status = 'failed'"), 3, "a dry run changes nothing");
    assert_eq!(count("SELECT count(*) FROM outbox"), 0);

    let out = run(jobs().args(["redrive", "--competition", "salon"]));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "2");
    let (queued, attempts, failures): (i64, i64, i64) = runtime
        .block_on(
            sqlx::query_as(
                "SELECT count(*), COALESCE(sum(attempts), 0)::int8, count(failure_code) + count(failure_reason) \
                 FROM submissions WHERE id = ANY($1) AND status = 'queued'",
            )
            .bind(&ids[..2])
            .fetch_one(&pool),
        )
        .unwrap();
    assert_eq!((queued, attempts, failures), (2, 0, 0), "queued again, attempts reset, failure cleared");
    let jobs_for: Vec<Uuid> = runtime
        .block_on(sqlx::query_scalar("SELECT (payload->>'submission_id')::uuid FROM outbox ORDER BY 1").fetch_all(&pool))
        .unwrap();
    let mut expected = ids[..2].to_vec();
    expected.sort();
    assert_eq!(jobs_for, expected, "one job each, for the redriven submissions only");
    assert_eq!(count("SELECT count(*) FROM submissions WHERE status = 'failed'"), 1, "another competition is not touched");

    // Nothing left to redrive; an unknown competition or a bad slug is an error.
    assert_eq!(String::from_utf8(run(jobs().args(["redrive", "--competition", "salon"])).stdout).unwrap().trim(), "0");
    assert!(!jobs().args(["redrive", "--competition", "nope-nope"]).output().unwrap().status.success());
    assert!(!jobs().args(["redrive", "--competition", "Bad Slug"]).output().unwrap().status.success());

    runtime.block_on(database.drop());
}
