use std::time::Duration;

use easel_core::domain::JobMessage;
use easel_tests::bench::prometheus::Snapshot;
use easel_tests::{SubmitForm, TestApp, paintings};


/// The same `external_id` twice with the same image, singly or in bulk, is one submission, one
/// object and one job; with another image it is a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_external_id_returns_the_existing_submission() {
    let app = TestApp::spawn().await;
    assert_eq!(app.create_competition("repeat", None).await.status(), 201);
    let painting = &paintings()[3];

    let first = app.submit("repeat", SubmitForm::painting(painting).external_id("entry-7")).await;
    assert_eq!(first.status(), 202);
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!((first["status"].as_str(), first["duplicate"].as_bool()), (Some("queued"), Some(false)));

    // Another image under the same id: refused as a conflict, nothing new stored.
    let other = &paintings()[4];
    let conflict = app.submit("repeat", SubmitForm::painting(other).external_id("entry-7")).await;
    assert_eq!(conflict.status(), 409);
    let conflict: serde_json::Value = conflict.json().await.unwrap();
    assert_eq!(conflict["error"]["code"], "submission.conflict", "{conflict}");

    // The same image again: the existing submission.
    let again = app.submit("repeat", SubmitForm::painting(painting).external_id("entry-7")).await;
    assert_eq!(again.status(), 200);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["duplicate"], true);

    let bulk = app.submit_bulk("repeat", &[(painting, "entry-7".to_string()), (other, "entry-8".to_string())]).await;
    assert_eq!(bulk.status(), 200);
    let bulk: serde_json::Value = bulk.json().await.unwrap();
    assert_eq!((bulk["accepted"].as_u64(), bulk["duplicates"].as_u64()), (Some(1), Some(1)), "{bulk}");
    assert_eq!(bulk["items"][0]["id"], first["id"]);

    // Wait for the relay so the queue shows every job it will ever get.
    wait_for_outbox(&app).await;
    assert_eq!(app.count("SELECT count(*) FROM submissions").await, 2);
    assert_eq!(app.queue_depth(&app.settings.rabbitmq.queue).await, 2, "one job per submission");
    assert_eq!(app.objects_in_bucket().await, 2);

    // Another competition may reuse the id.
    assert_eq!(app.create_competition("other", None).await.status(), 201);
    assert_eq!(app.submit("other", SubmitForm::painting(painting).external_id("entry-7")).await.status(), 202);
}

/// A job delivered again after its result is written (a publisher retry, a lost ack) is
/// acknowledged as a duplicate: still one result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_delivered_twice_makes_one_result() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.create_competition("twice", None).await.status(), 201);
    let painting = &paintings()[5];
    let id = app.submit_painting("twice", painting, "only-once").await;
    app.start_worker().await;
    app.wait_until_settled(1, Duration::from_secs(60)).await;

    let image_key: String = sqlx::query_scalar("SELECT image_key FROM submissions WHERE id = $1").bind(id).fetch_one(&app.pool).await.unwrap();
    let job = JobMessage { submission_id: id, image_key };
    app.publish_job(&job).await;
    app.publish_job(&job).await;

    let started = std::time::Instant::now();
    loop {
        let metrics = app.worker(0).metrics().await;
        if Snapshot::parse(&metrics).sum("easel_jobs_total", &[("outcome", "duplicate")]) >= 2.0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the duplicates were not settled:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM results").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, 1);
    assert_eq!(app.queue_depth(&app.settings.rabbitmq.queue).await, 0);
    assert_eq!(app.queue_depth(&app.settings.rabbitmq.dead_letter_queue()).await, 0, "duplicates are acked, not dead-lettered");
    app.assert_exactly_once().await;
}

pub async fn wait_for_outbox(app: &TestApp) {
    let started = std::time::Instant::now();
    while app.count("SELECT count(*) FROM outbox").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the outbox relay did not publish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
