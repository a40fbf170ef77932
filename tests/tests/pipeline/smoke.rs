use std::time::Duration;

use easel_tests::bench::prometheus::Snapshot;
use easel_tests::{TestApp, paintings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_painting_goes_through() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.create_competition("smoke", None).await.status(), 201);
    let painting = &paintings()[0];
    let id = app.submit_painting("smoke", painting, "e-1").await;
    app.start_worker().await;
    app.wait_until_settled(1, Duration::from_secs(60)).await;
    let body: serde_json::Value = app.http.get(format!("{}/v1/submissions/{id}", app.api_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "done", "{body}");
}

/// The CPU and model-idle figures operators size workers by: each blocking stage's CPU time on
/// its own thread, and the model's unused time between two batches (none before the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_report_stage_cpu_and_model_idle() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.create_competition("cpu", None).await.status(), 201);
    app.start_worker().await;
    app.submit_painting("cpu", &paintings()[0], "e-1").await;
    app.wait_until_settled(1, Duration::from_secs(60)).await;
    let first = app.worker(0).metrics().await;
    assert!(!first.contains("easel_model_idle_seconds"), "idle recorded before a second batch:\n{first}");

    let pause = Duration::from_millis(300);
    tokio::time::sleep(pause).await;
    app.submit_painting("cpu", &paintings()[1], "e-2").await;
    app.wait_until_settled(2, Duration::from_secs(60)).await;
    let text = app.worker(0).metrics().await;
    let worker = Snapshot::parse(&text);
    assert_eq!(worker.sum("easel_model_idle_seconds_count", &[]), 1.0, "{text}");
    let idle = worker.sum("easel_model_idle_seconds_sum", &[]);
    assert!(idle >= pause.as_secs_f64(), "the model waited {idle} s between the batches, less than the {pause:?} pause");
    for stage in ["decode", "model"] {
        let label = [("stage", stage)];
        assert_eq!(worker.sum("easel_stage_cpu_seconds_count", &label), 2.0, "{stage}:\n{text}");
        let cpu = worker.sum("easel_stage_cpu_seconds_sum", &label);
        assert!(cpu > 0.0, "no CPU time recorded for {stage}");
    }
    // On one thread, a stage's CPU time cannot exceed its wall time.
    let decode_wall = worker.sum("easel_stage_seconds_sum", &[("stage", "decode")]);
    let decode_cpu = worker.sum("easel_stage_cpu_seconds_sum", &[("stage", "decode")]);
    assert!(decode_cpu <= decode_wall, "decode: {decode_cpu} s of CPU in {decode_wall} s");

    let ingest = app.ingest_metrics().await;
    assert_eq!(Snapshot::parse(&ingest).sum("easel_stage_cpu_seconds_count", &[("stage", "validate")]), 2.0, "{ingest}");
}
