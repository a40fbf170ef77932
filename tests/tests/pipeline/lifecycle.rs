use std::time::Duration;

use easel_tests::{Dependency, TestApp, paintings, worker_binary};
use secrecy::ExposeSecret;

use crate::crash::run_under_way;

/// `/readyz` fails while a dependency is down (ingest: Postgres; worker: RabbitMQ, before it
/// ever connects) and passes once it is back; `/healthz` stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_dependencies() {
    let mut app = TestApp::options().proxy(Dependency::Postgres).proxy(Dependency::RabbitMq).spawn().await;
    let http = app.http.clone();
    let get = move |url: String| {
        let http = http.clone();
        async move {
            let response = http.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = get(format!("{}/readyz", app.ingest_url)).await;
    assert_eq!(status, 200, "{body}");

    app.proxies[&Dependency::Postgres].cut();
    let (status, body) = get(format!("{}/readyz", app.ingest_url)).await;
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["checks"]["database"], "ok", "{body}");
    let (status, _) = get(format!("{}/readyz", app.api_url)).await;
    assert_eq!(status, 503);
    assert_eq!(get(format!("{}/healthz", app.ingest_url)).await.0, 200);
    app.proxies[&Dependency::Postgres].restore();
    eventually(|| get(format!("{}/readyz", app.ingest_url)), 200).await;

    // A worker whose broker is down loads its model but is not ready.
    app.proxies[&Dependency::RabbitMq].cut();
    let ready = app.launch_worker().await.wait_ready(Duration::from_secs(5)).await;
    assert!(ready.is_err(), "ready without a broker");
    let (status, body) = get(app.worker(0).url("/readyz")).await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["model"], "ok", "{body}");
    assert_ne!(body["checks"]["rabbitmq"], "ok", "{body}");
    app.proxies[&Dependency::RabbitMq].restore();
    app.worker(0).wait_ready(Duration::from_secs(30)).await.expect("ready once the broker is back");
}

/// SIGTERM in the middle of a run: the worker stops taking jobs, finishes the batch in hand
/// and exits 0 without leaving anything half done; another worker finishes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_batch_in_hand_and_exits() {
    const TOTAL: i64 = 60;
    let mut app = run_under_way("sigterm", TOTAL).await;
    app.worker(0).terminate();
    let status = app.worker(0).wait_exit(Duration::from_secs(30)).await.expect("the worker exits within its batch time");
    assert!(status.success(), "exit status {status}:\n{}", app.worker(0).log_tail(20));
    assert_eq!(
        app.count("SELECT count(*) FROM submissions WHERE status = 'processing'").await,
        0,
        "a batch claimed but not finished"
    );
    let done = app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await;
    assert!(done < TOTAL, "the worker stopped early, not after the whole run");
    assert!(app.worker(0).log_tail(5).contains("worker stopped"), "{}", app.worker(0).log_tail(5));

    app.start_worker().await;
    app.wait_until_settled(TOTAL, Duration::from_secs(120)).await;
    app.assert_exactly_once().await;
}

/// `POST /drain` with the drain token (the Kubernetes preStop hook): no new jobs, `/readyz` 503,
/// the process stays up until SIGTERM and then exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_stops_consuming_until_sigterm() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.create_competition("drain", None).await.status(), 201);
    for (i, p) in paintings()[..4].iter().enumerate() {
        app.submit_painting("drain", p, &format!("e-{i}")).await;
    }
    app.start_worker().await;
    app.wait_until_settled(4, Duration::from_secs(60)).await;

    let (drain, readyz, healthz) = (app.worker(0).url("/drain"), app.worker(0).url("/readyz"), app.worker(0).url("/healthz"));
    let (status, body) = send(app.http.post(&drain).bearer_auth(drain_token(&app))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "draining");
    eventually(
        || {
            let http = app.http.clone();
            let url = readyz.clone();
            async move { (http.get(url).send().await.unwrap().status().as_u16(), ()) }
        },
        503,
    )
    .await;
    for (i, p) in paintings()[4..8].iter().enumerate() {
        app.submit_painting("drain", p, &format!("after-{i}")).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, 4, "a drained worker takes no jobs");
    assert_eq!(app.http.get(&healthz).send().await.unwrap().status(), 200, "still up");

    app.worker(0).terminate();
    let status = app.worker(0).wait_exit(Duration::from_secs(30)).await.expect("exits on SIGTERM");
    assert!(status.success());
    app.start_worker().await;
    app.wait_until_settled(8, Duration::from_secs(60)).await;
    app.assert_exactly_once().await;
}

/// `/drain` takes only `POST` with `Authorization: Bearer <worker.drain_token>`: a `GET` is a
/// JSON 405, a missing or wrong token a JSON 401, and the worker goes on consuming. A worker
/// without a drain token refuses every drain (403, fail closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_needs_post_and_the_token() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.create_competition("locked", None).await.status(), 201);
    app.start_worker().await;
    let (drain, readyz) = (app.worker(0).url("/drain"), app.worker(0).url("/readyz"));
    let token = drain_token(&app);

    let (status, body) = send(app.http.get(&drain).bearer_auth(&token)).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    for (what, request) in [
        ("no token", app.http.post(&drain)),
        ("a wrong token", app.http.post(&drain).bearer_auth(format!("{token}x"))),
        ("a prefix of the token", app.http.post(&drain).bearer_auth(&token[..token.len() - 1])),
        ("the token as Basic credentials", app.http.post(&drain).basic_auth("drain", Some(&token))),
    ] {
        let (status, body) = send(request).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
    }

    assert_eq!(send(app.http.get(&readyz)).await.0, 200, "a refused drain must not stop the worker");
    for (i, p) in paintings()[..2].iter().enumerate() {
        app.submit_painting("locked", p, &format!("e-{i}")).await;
    }
    app.wait_until_settled(2, Duration::from_secs(60)).await;

    // A worker started without a drain token refuses even the right one.
    app.settings.worker.drain_token = None;
    app.start_worker().await;
    let (drain, readyz, port) = (app.worker(1).url("/drain"), app.worker(1).url("/readyz"), app.worker(1).port);
    let (status, body) = send(app.http.post(&drain).bearer_auth(&token)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "drain.disabled", "{body}");
    assert_eq!(send(app.http.get(&readyz)).await.0, 200);
    let (status, output) = drain_command(&app, port).await;
    assert!(!status.success() && output.contains("drain_token"), "easel-worker drain without a token: {status}\n{output}");
    app.assert_exactly_once().await;
}

/// A worker drained the way the Kubernetes preStop hook does it (`easel-worker drain`) that then
/// never gets SIGTERM fails `/healthz` once `worker.drain_deadline_seconds` have passed, so that
/// Kubernetes restarts it; SIGTERM still stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_worker_without_sigterm_fails_liveness_after_the_deadline() {
    const DEADLINE: Duration = Duration::from_secs(2);
    let mut app = TestApp::options().configure(|s| s.worker.drain_deadline_seconds = DEADLINE.as_secs()).spawn().await;
    app.start_worker().await;
    let (port, healthz) = (app.worker(0).port, app.worker(0).url("/healthz"));
    assert_eq!(send(app.http.get(&healthz)).await.0, 200);

    let drained_at = std::time::Instant::now();
    let (status, output) = drain_command(&app, port).await;
    assert!(status.success() && output.contains("draining"), "easel-worker drain: {status}\n{output}");
    eventually(|| send(app.http.get(&healthz)), 503).await;
    assert!(drained_at.elapsed() >= DEADLINE, "unhealthy {:?} after the drain, before the deadline", drained_at.elapsed());
    let (_, body) = send(app.http.get(&healthz)).await;
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert!(body["checks"]["drain"].as_str().is_some_and(|c| c.contains("no SIGTERM")), "{body}");

    app.worker(0).terminate();
    let status = app.worker(0).wait_exit(Duration::from_secs(30)).await.expect("exits on SIGTERM");
    assert!(status.success(), "exit status {status}:\n{}", app.worker(0).log_tail(20));
}

/// The drain token the test workers get (config/local.yaml's, through `worker_env`).
fn drain_token(app: &TestApp) -> String {
    app.settings.worker.drain_token().expect("config/local.yaml sets worker.drain_token").expose_secret().to_string()
}

/// Runs `easel-worker drain` (the preStop hook) with the environment of the app's workers, against
/// the worker on `port`: its exit status, and its stdout and stderr.
async fn drain_command(app: &TestApp, port: u16) -> (std::process::ExitStatus, String) {
    let output = tokio::process::Command::new(worker_binary())
        .arg("drain")
        .envs(app.worker_env(port))
        .output()
        .await
        .expect("running easel-worker drain");
    (output.status, format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

/// Sends `request`; its status and JSON body (`null` when it has none).
async fn send(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

/// Polls until the status is `expected` (10 s at most).
async fn eventually<F, Fut, T>(mut probe: F, expected: u16)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (u16, T)>,
{
    let started = std::time::Instant::now();
    loop {
        let (status, _) = probe().await;
        if status == expected {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "status {status}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
