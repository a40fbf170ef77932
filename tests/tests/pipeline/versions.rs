//! Model versions side by side: a worker with a shadow checkpoint, a new version served and a
//! rescore that keeps the old results, reads pinned to a version (the leaderboard cursor keeps
//! its own), the comparison of two versions, and what the new routes refuse.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use easel_core::configuration::ShadowSettings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use easel_tests::{TestApp, paintings, tiny_model_seed};

const ENTRIES: usize = 16;

fn version(seed: u64) -> String {
    format!("easel-tiny-random-seed{seed}")
}

async fn wait_for(app: &TestApp, sql: &str, expected: i64, what: &str) {
    let started = Instant::now();
    loop {
        let n = app.count(sql).await;
        if n >= expected {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "{what}: {n} of {expected} after 300 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

/// Submission id → (rank, score) on the version's whole leaderboard, read page by page.
async fn leaderboard(app: &TestApp, slug: &str, model_version: &str) -> HashMap<String, (usize, f64)> {
    let mut out = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/v1/competitions/{slug}/results?limit=5&model_version={model_version}");
        if let Some(c) = &cursor {
            url = format!("/v1/competitions/{slug}/results?limit=5&cursor={}", urlencode(c));
        }
        let (status, page) = app.api_json(&url).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["model_version"], model_version);
        for item in page["items"].as_array().unwrap() {
            let rank = out.len() + 1;
            out.insert(item["submission_id"].as_str().unwrap().to_string(), (rank, item["score"].as_f64().unwrap()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
}

/// `raw` as a query value (the url crate's form encoding, through reqwest).
fn urlencode(raw: &str) -> String {
    let mut url = reqwest::Url::parse("http://localhost/").expect("a valid url");
    url.query_pairs_mut().append_pair("v", raw);
    url.query().expect("a query was just added")["v=".len()..].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_rescored_beside_the_old_with_a_shadow_and_a_comparison() {
    let (v1, v2) = (version(7), version(8));
    let shadow_model = tiny_model_seed(8);
    let mut app = TestApp::options()
        .configure(move |s| {
            s.worker.batch_size = 4;
            s.worker.shadow = Some(ShadowSettings { model_dir: shadow_model, share: 0.5 });
        })
        .spawn()
        .await;
    let slug = "salon";
    assert_eq!(app.create_competition(slug, None).await.status(), 201);
    let ingest_url = app.ingest_url.clone();
    let ingest = |path: &str| format!("{ingest_url}/v1/competitions/{slug}{path}");

    // No worker has reported yet: nothing to rescore with.
    let (status, body) = send(app.http.post(ingest("/rescore")).json(&json!({}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("rescore.no_workers")), "{body}");

    // Version 1 serves, with version 2 as its shadow on about half the jobs.
    app.start_worker().await;
    let mut ids = Vec::new();
    for (i, painting) in paintings().iter().take(ENTRIES).enumerate() {
        ids.push(app.submit_painting(slug, painting, &format!("e-{i}")).await);
    }
    app.wait_until_settled(ENTRIES as i64, Duration::from_secs(300)).await;
    let primary = |v: &str| format!("SELECT count(*) FROM results WHERE model_version = '{v}' AND NOT shadow");
    let shadowed = |v: &str| format!("SELECT count(*) FROM results WHERE model_version = '{v}' AND shadow");
    assert_eq!(app.count(&primary(&v1)).await, ENTRIES as i64);
    assert_eq!(app.count(&shadowed(&v1)).await, 0);
    assert_eq!(app.count(&primary(&v2)).await, 0, "a shadow result is never a primary one");
    let shadow_count = app.count(&shadowed(&v2)).await;
    assert!((1..ENTRIES as i64).contains(&shadow_count), "the shadow scored a share of the jobs, not {shadow_count}");
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, ENTRIES as i64);
    assert_eq!(app.count("SELECT count(*) FROM workers").await, 1, "the worker's heartbeat");

    // Reads default to version 1: the shadow's results never count.
    let (_, progress) = app.api_json(&format!("/v1/competitions/{slug}/progress")).await;
    assert_eq!(progress["model_version"], v1.as_str(), "{progress}");
    assert_eq!(progress["scored"], ENTRIES);
    assert_eq!(progress["pinned_model_version"], Value::Null);
    let versions = progress["versions"].as_array().unwrap();
    let shadow_row = versions.iter().find(|v| v["model_version"] == v2.as_str()).expect("the shadow's version is listed");
    assert_eq!((shadow_row["scored"].as_i64(), shadow_row["shadow"].as_i64()), (Some(0), Some(shadow_count)));
    let before = leaderboard(&app, slug, &v1).await;
    assert_eq!(before.len(), ENTRIES);
    let (_, page) = app.api_json(&format!("/v1/competitions/{slug}/results")).await;
    assert_eq!(page["model_version"], v1.as_str());
    // The shadow's results are readable by name, e.g. to compare before switching.
    let (_, page) = app.api_json(&format!("/v1/competitions/{slug}/results?model_version={v2}&limit=500")).await;
    assert_eq!(page["items"].as_array().unwrap().len() as i64, shadow_count);
    let shadow_scores: HashMap<String, f64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["submission_id"].as_str().unwrap().to_string(), i["score"].as_f64().unwrap()))
        .collect();

    // Half of the shadow's results are dropped, so that the served version 2 scores those
    // paintings afresh (in other batches) and can be checked against the shadow's run; the rest
    // become version 2's own when it scores them.
    let mut shadowed_ids: Vec<&String> = shadow_scores.keys().collect();
    shadowed_ids.sort();
    let (dropped, kept) = shadowed_ids.split_at(shadowed_ids.len() / 2);
    let dropped: Vec<Uuid> = dropped.iter().map(|id| id.parse().unwrap()).collect();
    sqlx::query("DELETE FROM results WHERE shadow AND submission_id = ANY($1)").bind(&dropped).execute(&app.pool).await.unwrap();

    // A page of version 1's leaderboard, to be continued after the pin changes.
    let (_, first_page) = app.api_json(&format!("/v1/competitions/{slug}/results?limit=5")).await;
    let cursor = first_page["next_cursor"].as_str().unwrap().to_string();

    // Version 2 replaces version 1 (stopped cleanly, its heartbeat row goes with it).
    app.worker(0).terminate();
    app.worker(0).wait_exit(Duration::from_secs(60)).await.expect("the worker stops on SIGTERM");
    assert_eq!(app.count("SELECT count(*) FROM workers").await, 0, "a stopped worker is no longer serving");
    app.settings.worker.model_dir = tiny_model_seed(8);
    app.settings.worker.shadow = None;
    app.start_worker().await;

    // Only an admin rescores, and only with the version the workers serve.
    let manager = app.client(&app.create_key("manager", &[&format!("competition:{slug}:manage")]).await);
    let (status, body) = send(manager.post(ingest("/rescore")).json(&json!({}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("auth.forbidden")), "{body}");
    let (status, body) = send(app.http.post(ingest("/rescore")).json(&json!({ "model_version": v1 }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("rescore.version_not_served")), "{body}");
    let (status, body) = send(app.http.post(ingest("/rescore")).json(&json!({ "model_version": "v\u{7}" }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid.model_version")), "{body}");
    let (status, body) = send(app.http.post(ingest("/rescore")).json(&json!({ "model_version": 3 }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status <> 'done'").await, 0, "refused rescores change nothing");

    let (status, rescore) = send(app.http.post(ingest("/rescore")).json(&json!({ "model_version": v2 }))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{rescore}");
    assert_eq!(rescore["model_version"], v2.as_str());
    assert_eq!(rescore["queued"], ENTRIES, "shadow results do not count as scored: {rescore}");
    assert_eq!(rescore["already_scored"], 0);
    // The leaderboard must not switch versions under the readers' feet: it is pinned to what it showed.
    assert_eq!(rescore["pinned_model_version"], v1.as_str());

    wait_for(&app, &primary(&v2), ENTRIES as i64, "the rescore").await;
    app.wait_until_settled(ENTRIES as i64, Duration::from_secs(120)).await;
    assert_eq!(app.count(&primary(&v1)).await, ENTRIES as i64, "the old results stay");
    assert_eq!(app.count(&shadowed(&v2)).await, 0, "the shadow's results became version 2's own");
    assert_eq!(app.count("SELECT count(*) - count(DISTINCT (submission_id, model_version)) FROM results").await, 0);
    app.assert_exactly_once().await;
    // Same image, same version, same settings: the same scores, whichever worker and batch.
    let after = leaderboard(&app, slug, &v2).await;
    assert!(!dropped.is_empty() && !kept.is_empty());
    for id in &dropped {
        let id = id.to_string();
        assert_eq!(after[&id].1, shadow_scores[&id], "submission {id}: version 2 served agrees with its shadow run");
    }

    // Still version 1 by default (pinned), version 2 by name; the old cursor stays on version 1.
    let (_, page) = app.api_json(&format!("/v1/competitions/{slug}/results")).await;
    assert_eq!(page["model_version"], v1.as_str());
    let (_, progress) = app.api_json(&format!("/v1/competitions/{slug}/progress?model_version={v2}")).await;
    assert_eq!((progress["scored"].as_i64(), progress["done"].as_i64()), (Some(ENTRIES as i64), Some(ENTRIES as i64)), "{progress}");
    assert_eq!(progress["pinned_model_version"], v1.as_str());

    // What switching would change, checked against the two leaderboards.
    let (status, compare) = app.api_json(&format!("/v1/competitions/{slug}/compare?from={v1}&to={v2}&movers=3")).await;
    assert_eq!(status, 200, "{compare}");
    assert_eq!((compare["n"].as_i64(), compare["n_from"].as_i64(), compare["n_to"].as_i64()), (Some(16), Some(16), Some(16)));
    let movers = compare["movers"].as_array().unwrap();
    assert_eq!(movers.len(), 3);
    let mean_shift: f64 = after.iter().map(|(id, (_, s))| s - before[id].1).sum::<f64>() / ENTRIES as f64;
    assert!((compare["mean_shift"].as_f64().unwrap() - mean_shift).abs() < 1e-3, "{compare}");
    let rho = compare["spearman"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&rho));
    let biggest = before.iter().map(|(id, (rank, _))| rank.abs_diff(after[id].0)).max().unwrap();
    for m in movers {
        let id = m["submission_id"].as_str().unwrap();
        assert_eq!(m["rank_from"].as_u64().unwrap() as usize, before[id].0, "{m}");
        assert_eq!(m["rank_to"].as_u64().unwrap() as usize, after[id].0, "{m}");
        // The comparison works in f64; the scores are stored as f32.
        assert_eq!(m["score_to"].as_f64().unwrap() as f32, after[id].1 as f32);
    }
    let first = &movers[0];
    assert_eq!(first["rank_from"].as_u64().unwrap().abs_diff(first["rank_to"].as_u64().unwrap()) as usize, biggest);
    let (status, body) = app.api_json(&format!("/v1/competitions/{slug}/compare?from={v1}")).await;
    assert_eq!(status, 400, "`to` is required: {body}");
    let (status, body) = app.api_json(&format!("/v1/competitions/{slug}/compare?from={v1}&to={v2}&movers=501")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid.movers")));

    // Switch: pin version 2. An unscored version cannot be pinned; a read key cannot pin.
    let patch = |client: &reqwest::Client, body: Value| client.patch(ingest("")).json(&body);
    let reader = app.client(&app.create_key("reader", &[&format!("competition:{slug}:read")]).await);
    let (status, _) = send(patch(&reader, json!({ "model_version": v2 }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = send(patch(&app.http, json!({ "model_version": "never-ran" }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("competition.model_version_unscored")));
    let (status, body) = send(patch(&manager, json!({ "model_version": v2 }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model_version"], v2.as_str());
    let (_, page) = app.api_json(&format!("/v1/competitions/{slug}/results")).await;
    assert_eq!(page["model_version"], v2.as_str());
    let (_, submission) = app.api_json(&format!("/v1/submissions/{}", ids[0])).await;
    assert_eq!(submission["result"]["model_version"], v2.as_str());
    let (_, submission) = app.api_json(&format!("/v1/submissions/{}?model_version={v1}", ids[0])).await;
    assert_eq!(submission["result"]["model_version"], v1.as_str());

    // The page begun before the switch continues on version 1; naming another version with it is refused.
    let (status, next) = app.api_json(&format!("/v1/competitions/{slug}/results?limit=5&cursor={}", urlencode(&cursor))).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["model_version"], v1.as_str());
    let first_ids: Vec<&Value> = first_page["items"].as_array().unwrap().iter().map(|i| &i["submission_id"]).collect();
    assert!(next["items"].as_array().unwrap().iter().all(|i| !first_ids.contains(&&i["submission_id"])));
    let (status, body) =
        app.api_json(&format!("/v1/competitions/{slug}/results?cursor={}&model_version={v2}", urlencode(&cursor))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid.cursor")));

    // Rescoring again finds nothing left to do.
    let (status, again) = send(app.http.post(ingest("/rescore")).json(&json!({}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!((again["queued"].as_i64(), again["already_scored"].as_i64()), (Some(0), Some(ENTRIES as i64)));

    // Unpinning returns reads to the newest version that scored the competition.
    let (status, body) = send(patch(&app.http, json!({ "model_version": null }))).await;
    assert_eq!((status, &body["model_version"]), (StatusCode::OK, &Value::Null));

    // Every change is in the audit log.
    let (_, audit) = app.api_json(&format!("/v1/competitions/{slug}/audit")).await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["model_version_pinned", "rescored", "model_version_pinned", "rescored", "model_version_pinned"], "{audit}");
}
