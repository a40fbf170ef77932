//! Who may do what with a jury: every jury route answers 401 without a key, 403 to a key
//! without the right, 404 to a key of another competition; and what a client sends there is
//! checked (names, scales, shortlists, scores, notes, sheets) before anything changes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use easel_tests::{TestApp, paintings};

struct Setup {
    app: TestApp,
    round: String,
    entry: Uuid,
    juror: reqwest::Client,
    other_juror: reqwest::Client,
    reader: reqwest::Client,
    /// `competition:salon:manage`: runs the jury, reads nothing.
    manager: reqwest::Client,
}

async fn setup() -> Setup {
    let app = TestApp::spawn().await;
    for slug in ["salon", "other"] {
        assert_eq!(app.create_competition(slug, None).await.status(), 201);
    }
    let all = paintings();
    let entry = app.submit_painting("salon", &all[0], "A-1").await;
    app.submit_painting("salon", &all[1], "=HYPERLINK(\"http://evil\")").await;
    let juror = |slug: &'static str, name: &'static str| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(format!("{}/v1/competitions/{slug}/jurors", app.ingest_url))
                .json(&json!({ "name": name }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            let body: Value = response.json().await.unwrap();
            app.client(body["token"].as_str().unwrap())
        }
    };
    let juror_key = juror("salon", "Anna").await;
    let other_juror = juror("other", "Olga").await;
    let reader = app.client(&app.create_key("reader", &["competition:salon:read"]).await);
    let manager = app.client(&app.create_key("jury chair", &["competition:salon:manage"]).await);
    let response = app
        .http
        .post(format!("{}/v1/competitions/salon/rounds", app.ingest_url))
        .json(&json!({ "name": "R1", "scale_min": 1, "scale_max": 10, "blind": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let round: Value = response.json().await.unwrap();
    Setup { round: round["id"].as_str().unwrap().to_string(), app, entry, juror: juror_key, other_juror, reader, manager }
}

/// One jury route: the service, method, path and a body that would be valid.
struct Route {
    ingest: bool,
    method: Method,
    path: String,
    body: Option<Value>,
    csv: Option<&'static str>,
}

fn routes(round: &str, entry: Uuid) -> (Vec<Route>, Vec<Route>) {
    let r = |ingest: bool, method: Method, path: String| Route { ingest, method, path, body: None, csv: None };
    let base = "/v1/competitions/salon";
    let organiser = vec![
        Route { body: Some(json!({ "name": "Someone" })), ..r(true, Method::POST, format!("{base}/jurors")) },
        Route {
            body: Some(json!({ "name": "R9", "scale_min": 1, "scale_max": 5, "blind": false })),
            ..r(true, Method::POST, format!("{base}/rounds"))
        },
        Route { body: Some(json!({ "closed": false })), ..r(true, Method::PATCH, format!("{base}/rounds/{round}")) },
        Route { csv: Some("external_id,juror,score\nA-1,Sheet,5\n"), ..r(true, Method::POST, format!("{base}/rounds/{round}/scores.csv")) },
        Route {
            body: Some(json!({ "score": 50, "reason": "checked" })),
            ..r(true, Method::POST, format!("/v1/submissions/{entry}/override"))
        },
        r(true, Method::DELETE, format!("/v1/submissions/{entry}/override?reason=undo")),
        r(false, Method::GET, format!("{base}/rounds")),
        r(false, Method::GET, format!("{base}/jurors")),
        r(false, Method::GET, format!("{base}/rounds/{round}/standings")),
        r(false, Method::GET, format!("{base}/rounds/{round}/agreement")),
        r(false, Method::GET, format!("{base}/rounds/{round}/calibration")),
        r(false, Method::GET, format!("{base}/rounds/{round}/scores.csv")),
        r(false, Method::GET, format!("{base}/audit")),
    ];
    let juror = vec![
        r(true, Method::GET, format!("{base}/rounds/{round}/queue")),
        r(true, Method::GET, format!("{base}/rounds/{round}/entries/{entry}/image")),
        Route { body: Some(json!({ "score": 5 })), ..r(true, Method::PUT, format!("{base}/rounds/{round}/scores/{entry}")) },
    ];
    (organiser, juror)
}

async fn call(app: &TestApp, client: &reqwest::Client, route: &Route) -> StatusCode {
    let base = if route.ingest { &app.ingest_url } else { &app.api_url };
    let mut request = client.request(route.method.clone(), format!("{base}{}", route.path));
    if let Some(body) = &route.body {
        request = request.json(body);
    }
    if let Some(csv) = route.csv {
        request = request.header("content-type", "text/csv").body(csv);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn every_jury_route_keeps_strangers_jurors_and_readers_to_their_part() {
    let s = setup().await;
    let (organiser, juror) = routes(&s.round, s.entry);
    let writes = |r: &Route| r.ingest;
    for route in organiser.iter().chain(&juror) {
        let what = format!("{} {}", route.method, route.path);
        assert_eq!(call(&s.app, &s.app.anon, route).await, 401, "anonymous: {what}");
        assert_eq!(call(&s.app, &s.other_juror, route).await, 404, "another competition's juror: {what}");
    }
    for route in &organiser {
        let what = format!("{} {}", route.method, route.path);
        assert_eq!(call(&s.app, &s.juror, route).await, 403, "a juror on an organiser's route: {what}");
        let reader = call(&s.app, &s.reader, route).await;
        if writes(route) {
            assert_eq!(reader, 403, "a reader on a write: {what}");
        } else {
            assert_eq!(reader, 200, "a reader on a read: {what}");
            assert_eq!(call(&s.app, &s.manager, route).await, 403, "a manager on a read: {what}");
        }
    }
    // A `manage` key runs the jury (the writes, in order: the override is set, then removed).
    for route in organiser.iter().filter(|r| writes(r)) {
        let status = call(&s.app, &s.manager, route).await;
        assert!(status.is_success(), "a manager: {} {} → {status}", route.method, route.path);
    }
    for route in &juror {
        let what = format!("{} {}", route.method, route.path);
        assert_eq!(call(&s.app, &s.app.http, route).await, if route.path.ends_with("/image") { 200 } else { 403 }, "admin: {what}");
        assert_eq!(call(&s.app, &s.juror, route).await, 200, "the juror: {what}");
        assert_eq!(call(&s.app, &s.manager, route).await, 403, "a manager is not a juror: {what}");
    }
    // The organiser's routes, with the admin key, do what they say.
    for route in &organiser {
        let status = call(&s.app, &s.app.http, route).await;
        // The juror and the round the manager made are taken now: 409.
        let expected: &[u16] = if route.method == Method::POST && (route.path.ends_with("/jurors") || route.path.ends_with("/rounds")) { &[409] } else { &[200] };
        assert!(expected.contains(&status.as_u16()), "admin: {} {} → {status}", route.method, route.path);
    }
}

#[tokio::test]
async fn what_a_jury_sends_is_checked_before_anything_changes() {
    let s = setup().await;
    let app = &s.app;
    let ingest = |path: &str| format!("{}/v1/competitions/salon{path}", app.ingest_url);
    let round = &s.round;
    let before = app.count("SELECT (SELECT count(*) FROM jurors) + (SELECT count(*) FROM rounds) + (SELECT count(*) FROM juror_scores) + (SELECT count(*) FROM audit_log)").await;

    for name in ["", "   ", "a\u{202e}b", "tab\there", "nul\0", &"x".repeat(101)] {
        let status = app.http.post(ingest("/jurors")).json(&json!({ "name": name })).send().await.unwrap().status();
        assert_eq!(status, 422, "juror name {name:?}");
    }
    let bad_rounds = [
        json!({ "name": "x", "scale_min": 5, "scale_max": 5, "blind": true }),
        json!({ "name": "x", "scale_min": 1, "scale_max": 1_000_000_000, "blind": true }),
        json!({ "name": "x", "scale_min": 1, "scale_max": 10, "blind": true, "top": 3 }),
        json!({ "name": "x", "scale_min": 1, "scale_max": 10, "blind": true, "shortlist_from": Uuid::now_v7(), "by": "model", "top": 3 }),
        json!({ "name": "x", "scale_min": 1, "scale_max": 10, "blind": true, "shortlist_from": round, "by": "panel", "top": 0 }),
        json!({ "name": "x", "scale_min": 1, "scale_max": 10, "blind": true, "shortlist_from": round, "by": "panel", "top": 3 }),
        json!({ "name": "x", "scale_min": 1, "scale_max": 10, "blind": true, "shortlist_from": round, "by": "model", "top": 3 }),
        json!({ "name": "x", "scale_min": 1, "scale_max": 10, "blind": true, "shortlist_from": round, "by": "votes", "top": 3 }),
        json!({ "name": "x", "scale_min": 1, "scale_max": 10 }),
        json!({ "name": "x", "scale_min": 1, "scale_max": 10, "blind": true, "admin": true }),
        json!({ "name": "R1", "scale_min": 1, "scale_max": 10, "blind": true }),
    ];
    for body in bad_rounds {
        let status = app.http.post(ingest("/rounds")).json(&body).send().await.unwrap().status();
        assert!([409, 422].contains(&status.as_u16()), "{body} → {status}");
    }
    let score_url = ingest(&format!("/rounds/{round}/scores/{}", s.entry));
    for body in [
        json!({ "score": 0 }),
        json!({ "score": 10.5 }),
        json!({ "score": -1e308 }),
        json!({}),
        json!({ "score": "7" }),
        json!({ "score": 5, "rubric": { "originality": 5, "color": 5, "texture": 5, "composition": 5 } }),
        json!({ "score": 5, "rubric": { "originality": 5, "color": 5, "texture": 5, "composition": 5, "content": 50 } }),
        json!({ "score": 5, "note": "x".repeat(4001) }),
        json!({ "score": 5, "note": "hidden\u{2066}text" }),
        json!({ "score": 5, "judge": "someone else" }),
    ] {
        let status = s.juror.put(&score_url).json(&body).send().await.unwrap().status();
        assert!([400, 422].contains(&status.as_u16()), "{body} → {status}");
    }
    let raw = s.juror.put(&score_url).header("content-type", "application/json").body("{\"score\": 1e400}").send().await.unwrap();
    assert!([400, 422].contains(&raw.status().as_u16()));
    for path in [format!("/rounds/{round}/scores/not-a-uuid"), "/rounds/nope/queue".to_string()] {
        let status = s.juror.request(if path.ends_with("queue") { Method::GET } else { Method::PUT }, ingest(&path)).json(&json!({"score": 5})).send().await.unwrap().status();
        assert_eq!(status, 400, "{path}");
    }
    let unknown = ingest(&format!("/rounds/{}/scores/{}", Uuid::now_v7(), s.entry));
    assert_eq!(s.juror.put(&unknown).json(&json!({ "score": 5 })).send().await.unwrap().status(), 404);
    let not_in_round = ingest(&format!("/rounds/{round}/scores/{}", Uuid::now_v7()));
    assert_eq!(s.juror.put(&not_in_round).json(&json!({ "score": 5 })).send().await.unwrap().status(), 404);
    for query in ["limit=0", "limit=501", "offset=-1", "pending=maybe", "secret=1"] {
        let status = s.juror.get(ingest(&format!("/rounds/{round}/queue?{query}"))).send().await.unwrap().status();
        assert_eq!(status, 400, "{query}");
    }

    let csv_url = ingest(&format!("/rounds/{round}/scores.csv"));
    let sheet = |body: Vec<u8>| app.http.post(&csv_url).header("content-type", "text/csv").body(body);
    let huge = vec![b'a'; 17 * 1024 * 1024];
    assert_eq!(sheet(huge).send().await.unwrap().status(), 413);
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for body in [
        garbage,
        b"external_id,juror,score\nA-1,Sheet,5\nA-1,Sheet,6\n".to_vec(),
        b"external_id,juror,score\nA-1,Sheet,5\nZ-9,Sheet,6\n".to_vec(),
        b"external_id,juror,score\nA-1,Sheet,11\n".to_vec(),
        b"external_id,juror\nA-1,Sheet\n".to_vec(),
        b"".to_vec(),
    ] {
        let response = sheet(body).send().await.unwrap();
        assert_eq!(response.status(), 422);
        let error: Value = response.json().await.unwrap();
        assert!(error["error"]["message"].as_str().unwrap().contains("line") || error["error"]["message"].as_str().unwrap().contains("row"), "{error}");
    }
    for (body, field) in [
        (json!({ "score": 101, "reason": "x" }), "score"),
        (json!({ "score": 50, "reason": "" }), "reason"),
        (json!({ "score": 50, "reason": "a\u{202e}b" }), "reason"),
    ] {
        let url = format!("{}/v1/submissions/{}/override", app.ingest_url, s.entry);
        let response = app.http.post(url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(error.to_string().contains(field), "{error}");
    }
    let url = format!("{}/v1/submissions/{}/override", app.ingest_url, Uuid::now_v7());
    assert_eq!(app.http.post(url).json(&json!({ "score": 50, "reason": "x" })).send().await.unwrap().status(), 404);

    let after = app.count("SELECT (SELECT count(*) FROM jurors) + (SELECT count(*) FROM rounds) + (SELECT count(*) FROM juror_scores) + (SELECT count(*) FROM audit_log)").await;
    assert_eq!(after, before, "nothing changed");

    // Formula-looking text goes in as data and comes out of the export quoted.
    let sheet_ok = "external_id,juror,score\n\"=HYPERLINK(\"\"http://evil\"\")\",@SUM(A1),5\n";
    assert_eq!(sheet(sheet_ok.as_bytes().to_vec()).send().await.unwrap().status(), 200);
    let (status, text) = app.api_text(&format!("/v1/competitions/salon/rounds/{round}/scores.csv")).await;
    assert_eq!(status, 200);
    assert!(text.contains("'@SUM(A1)") && text.contains("'=HYPERLINK"), "{text}");
    for (param, value) in [("normalise", "zz"), ("threshold", "0"), ("threshold", "NaN"), ("threshold", "1e9"), ("bootstrap", "1")] {
        let (status, _) = app.api_json(&format!("/v1/competitions/salon/rounds/{round}/agreement?{param}={value}")).await;
        assert_eq!(status, 400, "{param}={value}");
    }
    for query in ["folds=1", "folds=21", "folds=abc", "folds=-1", "folds=1e3", "bootstrap=1", "model_version=%00"] {
        let (status, _) = app.api_json(&format!("/v1/competitions/salon/rounds/{round}/calibration?{query}")).await;
        assert_eq!(status, 400, "{query}");
    }
    let (status, _) = app.api_json(&format!("/v1/competitions/salon/rounds/{}/calibration", Uuid::now_v7())).await;
    assert_eq!(status, 404);
    let (status, _) = app.api_json("/v1/competitions/salon/audit?limit=0").await;
    assert_eq!(status, 400);

    // Too little to say anything: every figure null, each with its reason, never NaN.
    let (status, agreement) = app.api_json(&format!("/v1/competitions/salon/rounds/{round}/agreement")).await;
    assert_eq!(status, 200, "{agreement}");
    assert_eq!(agreement["n"], 0);
    for figure in ["pearson", "spearman", "kendall", "mae_calibrated", "qwk"] {
        assert!(agreement["model_vs_panel"][figure].is_null(), "{figure}: {agreement}");
        assert!(agreement["reasons"][format!("model_vs_panel.{figure}")].is_string(), "{figure}: {agreement}");
    }
    assert!(agreement["inter_juror"]["icc2_1"].is_null() && agreement["reasons"]["inter_juror.icc2_1"].is_string(), "{agreement}");
    assert!(!agreement.to_string().contains("NaN"));

    // Nothing scored yet: no version, no map, each output saying why.
    let (status, calibration) = app.api_json(&format!("/v1/competitions/salon/rounds/{round}/calibration")).await;
    assert_eq!(status, 200, "{calibration}");
    assert!(calibration["model_version"].is_null() && calibration["calibration"].is_null(), "{calibration}");
    assert_eq!(calibration["paired"], 0);
    for output in calibration["outputs"].as_array().unwrap() {
        assert!(output["map"].is_null() && output["reason"].as_str().unwrap().contains("no model version"), "{output}");
    }
}
