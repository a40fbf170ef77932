use std::time::Duration;

use easel_tests::{TestApp, paintings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_painting_goes_through() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.create_competition("smoke", None).await.status(), 201);
    let painting = &paintings()[0];
    let id = app.submit_painting("smoke", painting, "e-1").await;
    app.start_worker().await;
    app.wait_until_settled(1, Duration::from_secs(60)).await;
    let body: serde_json::Value = reqwest::get(format!("{}/v1/submissions/{id}", app.api_url)).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "done", "{body}");
}
