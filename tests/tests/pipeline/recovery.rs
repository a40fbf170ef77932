//! Nothing stuck, nothing lost: a job the broker lost is swept back in through the outbox; a
//! job dead-lettered without an outcome fails its submission; a model that panics or errs on one
//! painting settles every delivery of its batch and fails only that painting.

use std::time::{Duration, Instant};

use easel_core::domain::JobMessage;
use easel_tests::{SubmitForm, TestApp, paintings};
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, QueuePurgeOptions};
use uuid::Uuid;

use crate::idempotency::wait_for_outbox;

/// Polls `check` every 100 ms until it holds; panics with `what` after `timeout`.
pub(crate) async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < timeout, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Empties `queue`, as a broker that lost its disk would.
async fn purge(app: &TestApp, queue: &str) {
    let connection = app.broker().await;
    let channel = connection.create_channel().await.expect("a channel");
    channel.queue_purge(queue, QueuePurgeOptions::default()).await.expect("purging");
    let _ = connection.close(200, "done").await;
}

/// Publishes raw bytes straight to the dead-letter queue.
async fn publish_dead_letter(app: &TestApp, payload: &[u8]) {
    let connection = app.broker().await;
    let channel = connection.create_channel().await.expect("a channel");
    channel.confirm_select(Default::default()).await.expect("confirms");
    let dead = app.settings.rabbitmq.dead_letter_queue();
    channel
        .basic_publish("", &dead, BasicPublishOptions::default(), payload, BasicProperties::default().with_delivery_mode(2))
        .await
        .expect("publishing")
        .await
        .expect("a confirm");
    let _ = connection.close(200, "done").await;
}

async fn failure_of(app: &TestApp, id: Uuid) -> (String, Option<String>, Option<String>, i32) {
    sqlx::query_as("SELECT status, failure_code, failure_reason, attempts FROM submissions WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// The broker loses the published jobs (one of them was being processed by a worker that
/// died): the sweeper writes each job again through the outbox once it is stuck past
/// `stuck_after_seconds`, and two ingest instances sweeping together publish each job once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_the_broker_lost_are_swept_back_and_scored_once() {
    let mut app = TestApp::options()
        .configure(|s| {
            s.ingest.sweep_interval_seconds = 1;
            s.ingest.stuck_after_seconds = 3;
        })
        .spawn()
        .await;
    assert_eq!(app.create_competition("swept", None).await.status(), 201);
    let mut ids = Vec::new();
    for (i, p) in paintings()[50..53].iter().enumerate() {
        ids.push(app.submit_painting("swept", p, &format!("e-{i}")).await);
    }
    wait_for_outbox(&app).await;
    let queue = app.settings.rabbitmq.queue.clone();
    purge(&app, &queue).await;
    // A worker claimed this one and died; its message is gone with the others.
    sqlx::query("UPDATE submissions SET status = 'processing', attempts = 1 WHERE id = $1").bind(ids[0]).execute(&app.pool).await.unwrap();
    // A second ingest (and api) on the same database and queue: two sweepers.
    app.start_services().await.unwrap();

    eventually("the stuck jobs published again", Duration::from_secs(20), || async { app.queue_depth(&queue).await >= 3 }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.queue_depth(&queue).await, 3, "each stuck job swept once, not once per ingest instance");
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);

    app.start_worker().await;
    app.wait_until_settled(3, Duration::from_secs(60)).await;
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, 3);
    let metrics = app.ingest_metrics().await;
    assert!(metrics.contains("easel_swept_total"), "{metrics}");
    app.assert_exactly_once().await;
}

/// A job dead-lettered without an outcome (the broker's delivery limit: here a painting the
/// model panics on, handed back until the limit) fails its submission with
/// `job.dead_lettered`; a dead letter for a submission the worker failed keeps the worker's
/// reason; one for a done submission changes nothing; an unreadable one is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_fail_their_submissions_unless_settled() {
    let mut app = TestApp::options()
        .configure(|s| {
            s.rabbitmq.delivery_limit = 1;
            s.worker.max_attempts = 10;
            s.worker.batch_size = 4;
            s.worker.fault_injection.model_panic_on = Some("PANIC-ME".into());
        })
        .spawn()
        .await;
    assert_eq!(app.create_competition("dead", None).await.status(), 201);
    let all = paintings();
    let done = app.submit_painting("dead", &all[60], "done").await;
    let broken = app.submit_painting("dead", &all[61], "broken").await;
    let response = app.submit("dead", SubmitForm::painting(&all[62]).description("PANIC-ME please").external_id("panics")).await;
    assert!(response.status().is_success());
    let panics: Uuid = response.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap();
    wait_for_outbox(&app).await;
    let key: String = sqlx::query_scalar("SELECT image_key FROM submissions WHERE id = $1").bind(broken).fetch_one(&app.pool).await.unwrap();
    app.put_object(&key, all[61].bytes[..all[61].bytes.len() / 3].to_vec()).await;

    app.start_worker().await;
    app.wait_until_settled(3, Duration::from_secs(90)).await;

    let (status, code, reason, _) = failure_of(&app, panics).await;
    assert_eq!((status.as_str(), code.as_deref()), ("failed", Some("job.dead_lettered")), "{reason:?}");
    assert!(reason.unwrap_or_default().contains("dead-lettered"));
    let (status, code, _, _) = failure_of(&app, broken).await;
    assert_eq!((status.as_str(), code.as_deref()), ("failed", Some("image.checksum")), "the worker's reason is kept");

    // Late dead letters: for a done submission, and not a job at all.
    publish_dead_letter(&app, &JobMessage { submission_id: done, image_key: key.clone() }.to_json()).await;
    publish_dead_letter(&app, b"{not json").await;
    let dead = app.settings.rabbitmq.dead_letter_queue();
    eventually("the dead-letter queue consumed", Duration::from_secs(20), || async { app.queue_depth(&dead).await == 0 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(failure_of(&app, done).await.0, "done", "a done submission is never touched");
    let metrics = app.ingest_metrics().await;
    assert!(metrics.contains("easel_dead_letter_depth"), "{metrics}");
    assert!(metrics.contains("easel_dead_letters_total{outcome=\"unreadable\"}"), "{metrics}");
    app.assert_exactly_once().await;
}

/// One batch holds a painting the model panics on, one it returns an error for, and two good
/// ones: the panic settles every delivery (nothing waits for the broker's consumer timeout),
/// each painting is tried alone, the good ones are scored, the erring one fails with
/// `model.error` and the panicking one is retried until `max_attempts`, then fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_panic_settles_the_batch_and_fails_only_the_bad_painting() {
    let mut app = TestApp::options()
        .configure(|s| {
            s.worker.batch_size = 4;
            s.worker.batch_timeout_ms = 500;
            s.worker.max_attempts = 2;
            s.worker.fault_injection.model_panic_on = Some("PANIC-ME".into());
            s.worker.fault_injection.model_error_on = Some("ERROR-ME".into());
        })
        .spawn()
        .await;
    assert_eq!(app.create_competition("panics", None).await.status(), 201);
    let all = paintings();
    let submit = |i: usize, description: &'static str, external_id: &'static str| {
        let form = SubmitForm::painting(&all[i]).description(description).external_id(external_id);
        let app = &app;
        async move {
            let response = app.submit("panics", form).await;
            assert!(response.status().is_success());
            response.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().parse::<Uuid>().unwrap()
        }
    };
    let panics = submit(70, "PANIC-ME", "panics").await;
    let errs = submit(71, "ERROR-ME", "errs").await;
    submit(72, "A harbour at dawn.", "good-1").await;
    submit(73, "Still life with lemons.", "good-2").await;
    wait_for_outbox(&app).await;

    app.start_worker().await;
    app.wait_until_settled(4, Duration::from_secs(60)).await;

    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, 2, "the good paintings are scored");
    let (status, code, reason, _) = failure_of(&app, errs).await;
    assert_eq!((status.as_str(), code.as_deref()), ("failed", Some("model.error")), "{reason:?}");
    let (status, code, reason, attempts) = failure_of(&app, panics).await;
    assert_eq!((status.as_str(), code.as_deref()), ("failed", Some("attempts_exhausted")), "{reason:?}");
    assert!(reason.unwrap_or_default().contains("panicked"));
    assert_eq!(attempts, 2);
    // Every delivery settled: nothing left unacknowledged or waiting.
    let queue = app.settings.rabbitmq.queue.clone();
    eventually("the jobs queue empty", Duration::from_secs(10), || async { app.queue_depth(&queue).await == 0 }).await;
    let metrics = app.worker(0).metrics().await;
    assert!(metrics.contains("easel_jobs_total{outcome=\"retried\"}"), "the panic handed the job back: {metrics}");
    app.assert_exactly_once().await;
}
