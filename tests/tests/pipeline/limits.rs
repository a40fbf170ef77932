//! No client holds a connection forever: headers that never end and bodies that stall are cut
//! off by the server's time limits (`application.*_timeout_seconds`).

use std::time::{Duration, Instant};

use easel_tests::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `head` and then nothing more; returns what the server said before it closed, and
/// how long it took (bounded: the test fails if the server holds on for 20 s).
async fn stall_after(url: &str, head: &str) -> (String, Duration) {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connecting");
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the server held a stalled connection open for 20 s")
        .ok();
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_headers_and_bodies_are_cut_off() {
    let app = TestApp::options()
        .configure(|s| {
            s.application.limits.header_read_timeout_seconds = 1;
            s.application.limits.body_idle_timeout_seconds = 1;
        })
        .spawn()
        .await;

    // Slowloris: a request line and one header, never the blank line that ends them.
    for url in [&app.ingest_url, &app.api_url] {
        let (_, took) = stall_after(url, "GET /v1/keys HTTP/1.1\r\nHost: easel\r\n").await;
        assert!(took < Duration::from_secs(10), "headers stalled for {took:?} before the server hung up");
    }

    // A body that stops half-way: the request ends with an error, and nothing is stored.
    let head = format!(
        "POST /v1/competitions HTTP/1.1\r\nHost: easel\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"slug\": \"stalled\", ",
        app.admin_token
    );
    let (answer, took) = stall_after(&app.ingest_url, &head).await;
    assert!(took < Duration::from_secs(10), "a stalled body held the connection for {took:?}");
    let status = answer.split_whitespace().nth(1).unwrap_or("none");
    assert!(answer.is_empty() || status.starts_with('4'), "a stalled body is a client error: {answer}");
    assert_eq!(app.count("SELECT count(*) FROM competitions").await, 0);

    // The server still serves everyone else.
    assert_eq!(app.http.get(format!("{}/v1/keys", app.ingest_url)).send().await.unwrap().status(), 200);
}
