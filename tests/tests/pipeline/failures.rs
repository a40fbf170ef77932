use std::time::Duration;

use easel_core::domain::JobMessage;
use easel_tests::{Dependency, TestApp, paintings};
use uuid::Uuid;

use crate::idempotency::wait_for_outbox;

/// An image that no longer decodes fails its submission with the reason and goes to the
/// dead-letter queue once; the good paintings of the same batch are scored. A job that is not
/// JSON, and one for a submission that does not exist, are dead-lettered too, not requeued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_are_recorded_and_dead_lettered_once() {
    let mut app = TestApp::options()
        .configure(|s| {
            s.worker.batch_size = 4;
            // This test reads the dead letters itself.
            s.ingest.consume_dead_letters = false;
        })
        .spawn()
        .await;
    assert_eq!(app.create_competition("faults", None).await.status(), 201);
    let all = paintings();
    let broken = app.submit_painting("faults", &all[10], "broken").await;
    for (i, p) in all[11..14].iter().enumerate() {
        app.submit_painting("faults", p, &format!("good-{i}")).await;
    }
    wait_for_outbox(&app).await;
    // The stored object is damaged after ingest validated it (a bad disk, a bad copy).
    let key: String = sqlx::query_scalar("SELECT image_key FROM submissions WHERE id = $1").bind(broken).fetch_one(&app.pool).await.unwrap();
    app.put_object(&key, all[10].bytes[..all[10].bytes.len() / 3].to_vec()).await;
    app.publish_raw(b"{not json").await;
    app.publish_job(&JobMessage { submission_id: Uuid::now_v7(), image_key: key.clone() }).await;

    app.start_worker().await;
    app.wait_until_settled(4, Duration::from_secs(60)).await;
    let dead = app.settings.rabbitmq.dead_letter_queue();
    let started = std::time::Instant::now();
    while app.queue_depth(&dead).await < 3 {
        assert!(started.elapsed() < Duration::from_secs(30), "expected 3 dead letters, have {}", app.queue_depth(&dead).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.queue_depth(&dead).await, 3, "each bad job dead-lettered once");
    assert_eq!(app.queue_depth(&app.settings.rabbitmq.queue).await, 0);

    let (status, body) = app.api_json(&format!("/v1/submissions/{broken}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["failure"]["code"], "image.checksum", "the object no longer holds the validated bytes: {body}");
    assert!(body["result"].is_null());
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, 3);
    let (_, progress) = app.api_json("/v1/competitions/faults/progress").await;
    assert_eq!((progress["done"].as_i64(), progress["failed"].as_i64()), (Some(3), Some(1)), "{progress}");
    app.assert_exactly_once().await;
}

/// S3 goes away while jobs wait: the worker retries with backoff and scores them once it is
/// back; nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_delays_jobs_but_fails_none() {
    let mut app = TestApp::options().proxy(Dependency::S3).spawn().await;
    assert_eq!(app.create_competition("s3-outage", None).await.status(), 201);
    for (i, p) in paintings()[20..26].iter().enumerate() {
        app.submit_painting("s3-outage", p, &format!("e-{i}")).await;
    }
    wait_for_outbox(&app).await;
    app.proxies[&Dependency::S3].cut();
    app.launch_worker().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, 0, "nothing can be fetched");
    app.proxies[&Dependency::S3].restore();
    app.wait_until_settled(6, Duration::from_secs(90)).await;
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, 6);
    app.assert_exactly_once().await;
}

/// Postgres goes away in the middle of a run and comes back: every submission ends with
/// exactly one result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_mid_run_loses_and_duplicates_nothing() {
    let mut app = TestApp::options().proxy(Dependency::Postgres).configure(|s| s.worker.batch_size = 4).spawn().await;
    assert_eq!(app.create_competition("pg-outage", None).await.status(), 201);
    for (i, p) in paintings()[30..70].iter().enumerate() {
        app.submit_painting("pg-outage", p, &format!("e-{i}")).await;
    }
    wait_for_outbox(&app).await;
    app.start_worker().await;
    wait_for_some_done(&app, 4, 40).await;
    let proxy = &app.proxies[&Dependency::Postgres];
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    app.wait_until_settled(40, Duration::from_secs(120)).await;
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, 40);
    app.assert_exactly_once().await;
}

/// Waits until at least `min` (and fewer than `total`) submissions are done.
pub async fn wait_for_some_done(app: &TestApp, min: i64, total: i64) {
    let started = std::time::Instant::now();
    loop {
        let done = app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await;
        if done >= min {
            assert!(done < total, "the run finished before the fault could be injected");
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// S3 stays away longer than the worker retries in place: each batch that takes the job counts
/// an attempt, and after `worker.max_attempts` the submission fails with the reason and its job
/// is dead-lettered, instead of going round forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_transiently_fails_after_max_attempts() {
    let mut app = TestApp::options()
        .proxy(Dependency::S3)
        .configure(|s| {
            s.worker.max_attempts = 2;
            s.worker.retry_budget_seconds = 1;
            // This test reads the dead letters itself.
            s.ingest.consume_dead_letters = false;
        })
        .spawn()
        .await;
    assert_eq!(app.create_competition("flaky", None).await.status(), 201);
    let id = app.submit_painting("flaky", &paintings()[40], "e-1").await;
    wait_for_outbox(&app).await;
    app.proxies[&Dependency::S3].cut();
    app.launch_worker().await;
    app.wait_until_settled(1, Duration::from_secs(60)).await;

    let (code, reason, attempts): (String, String, i32) =
        sqlx::query_as("SELECT failure_code, failure_reason, attempts FROM submissions WHERE id = $1").bind(id).fetch_one(&app.pool).await.unwrap();
    assert_eq!(code, "attempts_exhausted");
    assert!(reason.contains("2 attempts"), "{reason}");
    assert_eq!(attempts, 2);
    let dead = app.settings.rabbitmq.dead_letter_queue();
    let started = std::time::Instant::now();
    while app.queue_depth(&dead).await < 1 {
        assert!(started.elapsed() < Duration::from_secs(10), "the job was not dead-lettered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.assert_exactly_once().await;
}
