use std::process::Command;
use std::time::Duration;

use easel_tests::{TestApp, paintings};

use crate::failures::wait_for_some_done;

/// A worker SIGKILLed in the middle of a run (batches claimed, results half written) and a
/// fresh one started: every submission still ends with exactly one result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_and_duplicates_nothing() {
    const TOTAL: i64 = 60;
    let mut app = run_under_way("crash", TOTAL).await;
    app.worker(0).kill().await;
    let in_flight = app.count("SELECT count(*) FROM submissions WHERE status = 'processing'").await;
    let done_at_kill = app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await;
    eprintln!("killed with {done_at_kill} done and {in_flight} processing");

    app.start_worker().await;
    app.wait_until_settled(TOTAL, Duration::from_secs(180)).await;
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, TOTAL);
    assert_eq!(app.count("SELECT count(*) FROM results").await, TOTAL);
    app.assert_exactly_once().await;
}

/// RabbitMQ restarts while jobs are queued, in flight and being published: nothing is lost
/// (quorum queue, publisher confirms, the outbox), nothing is scored twice, uploads go on, and
/// the services reconnect by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_restart_mid_run_loses_nothing() {
    let mut app = TestApp::options()
        .exclusive_broker()
        .configure(|s| {
            s.worker.batch_size = 4;
            s.worker.max_new_tokens = Some(16);
        })
        .spawn()
        .await;
    assert_eq!(app.create_competition("restart", None).await.status(), 201);
    let all = paintings();
    for (i, p) in all[..40].iter().enumerate() {
        app.submit_painting("restart", p, &format!("before-{i}")).await;
    }
    app.start_worker().await;
    wait_for_some_done(&app, 4, 60).await;

    rabbitmqctl("stop_app");
    // Uploads during the outage are accepted: their jobs wait in the outbox.
    for (i, p) in all[40..60].iter().enumerate() {
        app.submit_painting("restart", p, &format!("during-{i}")).await;
    }
    let ingest_ready = app.http.get(format!("{}/readyz", app.ingest_url)).send().await.unwrap().status();
    assert_eq!(ingest_ready, 200, "ingest stays in service without its broker: the outbox holds the jobs");
    assert!(app.count("SELECT count(*) FROM outbox").await > 0, "the jobs wait in the outbox");
    rabbitmqctl("start_app");

    app.wait_until_settled(60, Duration::from_secs(180)).await;
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, 60);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
    app.assert_exactly_once().await;
    let worker = app.worker(0);
    worker.wait_ready(Duration::from_secs(30)).await.expect("the worker is ready again");
}

fn rabbitmqctl(command: &str) {
    let status = Command::new("rabbitmqctl").args(["-q", command]).status().expect("running rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {command}: {status}");
    if command == "start_app" {
        let status = Command::new("rabbitmqctl").args(["-q", "await_startup"]).status().expect("running rabbitmqctl");
        assert!(status.success(), "rabbitmqctl await_startup: {status}");
    }
}

/// An app whose competition `slug` has `total` paintings submitted and one worker (batches of
/// 8, 16-token critiques) part-way through them.
pub async fn run_under_way(slug: &str, total: i64) -> TestApp {
    let mut app = TestApp::options()
        .configure(|s| {
            s.worker.batch_size = 8;
            s.worker.max_new_tokens = Some(16);
        })
        .spawn()
        .await;
    assert_eq!(app.create_competition(slug, None).await.status(), 201);
    for (i, p) in paintings()[..total as usize].iter().enumerate() {
        app.submit_painting(slug, p, &format!("e-{i}")).await;
    }
    app.start_worker().await;
    wait_for_some_done(&app, 8, total).await;
    app
}
