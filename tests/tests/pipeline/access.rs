//! Access control on the real services: API keys, scopes, public results, rate limits and
//! `external_id` conflicts. Every route is called without a key, with a bad key and with a key
//! lacking the scope.

use easel_tests::{SubmitForm, TestApp, paintings};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A request the routes table answers, with a body where it needs one.
struct Call {
    method: Method,
    url: String,
    body: Option<Value>,
}

impl Call {
    fn new(method: Method, url: String) -> Self {
        Self { method, url, body: None }
    }

    fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    async fn send(&self, client: &reqwest::Client) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut request = client.request(self.method.clone(), &self.url);
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{} {}: {e}", self.method, self.url));
        let status = response.status();
        let headers = response.headers().clone();
        (status, response.json().await.unwrap_or(Value::Null), headers)
    }
}

/// Every route of ingest and api, for the competition `slug` and the submission `id`.
fn every_route(app: &TestApp, slug: &str, id: &str) -> Vec<Call> {
    let (ingest, api) = (&app.ingest_url, &app.api_url);
    vec![
        Call::new(Method::POST, format!("{ingest}/v1/keys")).json(json!({ "name": "x", "scopes": ["admin"] })),
        Call::new(Method::GET, format!("{ingest}/v1/keys")),
        Call::new(Method::DELETE, format!("{ingest}/v1/keys/{id}")),
        Call::new(Method::POST, format!("{ingest}/v1/competitions")).json(json!({ "slug": "sneaky", "title": "Sneaky" })),
        Call::new(Method::POST, format!("{ingest}/v1/competitions/{slug}/submissions")),
        Call::new(Method::POST, format!("{ingest}/v1/competitions/{slug}/bulk")),
        Call::new(Method::GET, format!("{api}/v1/submissions/{id}")),
        Call::new(Method::GET, format!("{api}/v1/competitions/{slug}/results")),
        Call::new(Method::GET, format!("{api}/v1/competitions/{slug}/progress")),
        Call::new(Method::GET, format!("{api}/v1/competitions/{slug}/export.csv")),
        Call::new(Method::GET, format!("{api}/v1/competitions/{slug}/export.jsonl")),
        Call::new(Method::PATCH, format!("{ingest}/v1/competitions/{slug}")).json(json!({ "model_version": null })),
        Call::new(Method::POST, format!("{ingest}/v1/competitions/{slug}/rescore")).json(json!({})),
        Call::new(Method::GET, format!("{api}/v1/competitions/{slug}/compare?from=a&to=b")),
        Call::new(Method::GET, format!("{api}/v1/competitions/{slug}/duplicates")),
    ]
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str, what: &str) {
    assert_eq!(status, expected, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_strangers_and_bad_keys() {
    let app = TestApp::spawn().await;
    assert_eq!(app.create_competition("closed", None).await.status(), 201);
    let id = app.submit_painting("closed", &paintings()[0], "e-1").await.to_string();
    let unknown_key = app.client(&format!("easel_{}", "0".repeat(64)));
    let malformed_key = app.client("letmein");
    let basic = easel_tests::client_with_key(None).unwrap();

    for call in every_route(&app, "closed", &id) {
        let what = format!("{} {}", call.method, call.url);
        let (status, body, headers) = call.send(&app.anon).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "auth.required", &format!("no key: {what}"));
        assert_eq!(headers.get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer realm=\"easel\""), "{what}");
        for (client, label) in [(&unknown_key, "unknown key"), (&malformed_key, "malformed key")] {
            let (status, body, _) = call.send(client).await;
            assert_error(status, &body, StatusCode::UNAUTHORIZED, "auth.invalid_key", &format!("{label}: {what}"));
        }
        let response = basic
            .request(call.method.clone(), &call.url)
            .header("authorization", "Basic YWRtaW46YWRtaW4=")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "Basic auth: {what}");
    }
    // An unknown competition looks the same to a stranger as a closed one.
    let (status, body) = anon_get(&app, &format!("{}/v1/competitions/no-such-thing/results", app.api_url)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "auth.required", "unknown competition");
    assert_eq!(app.count("SELECT count(*) FROM competitions").await, 1, "nothing was created");
    assert_eq!(app.count("SELECT count(*) FROM api_keys").await, 1, "no key was made");
}

async fn anon_get(app: &TestApp, url: &str) -> (StatusCode, Value) {
    let response = app.anon.get(url).send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

/// A key for one competition: what its scopes allow (2xx), a scope it lacks there (403), and
/// nothing at all of another competition (404, as if it did not exist).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_decide_what_a_key_may_do() {
    let app = TestApp::spawn().await;
    for slug in ["alpha", "beta"] {
        assert_eq!(app.create_competition(slug, None).await.status(), 201);
    }
    let beta_id = app.submit_painting("beta", &paintings()[1], "b-1").await.to_string();
    let submitter = app.client(&app.create_key("alpha uploads", &["competition:alpha:submit"]).await);
    let reader = app.client(&app.create_key("alpha reader", &["competition:alpha:read"]).await);

    // The submitter submits to alpha, singly and in bulk.
    let response = submitter
        .post(format!("{}/v1/competitions/alpha/submissions", app.ingest_url))
        .multipart(SubmitForm::painting(&paintings()[2]).external_id("a-1").into_multipart())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let alpha_id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    // Its other calls: 403 in alpha and for admin routes, 404 in beta.
    for call in every_route(&app, "alpha", &alpha_id) {
        if call.url.ends_with("/submissions") || call.url.ends_with("/bulk") {
            continue;
        }
        let what = format!("submit key: {} {}", call.method, call.url);
        let (status, body, _) = call.send(&submitter).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "auth.forbidden", &what);
    }
    for call in every_route(&app, "beta", &beta_id).into_iter().filter(|c| !c.url.contains("/v1/keys") && (c.url.contains("beta") || c.url.contains(&beta_id))) {
        let what = format!("alpha key on beta: {} {}", call.method, call.url);
        let (status, body, _) = call.send(&submitter).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body}");
        assert!(body["error"]["code"].as_str().unwrap().ends_with(".not_found"), "{what}: {body}");
    }

    // The reader reads alpha, and nothing else.
    for path in ["results", "progress", "export.csv", "export.jsonl", "compare?from=a&to=b", "duplicates"] {
        let response = reader.get(format!("{}/v1/competitions/alpha/{path}", app.api_url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "reader: {path}");
        let response = reader.get(format!("{}/v1/competitions/beta/{path}", app.api_url)).send().await.unwrap();
        assert_eq!(response.status(), 404, "reader on beta: {path}");
    }
    let response = reader.get(format!("{}/v1/submissions/{alpha_id}", app.api_url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = reader.get(format!("{}/v1/submissions/{beta_id}", app.api_url)).send().await.unwrap();
    assert_eq!(response.status(), 404, "a submission of another competition is unknown to the key");
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "submission.not_found");
    let response = reader
        .post(format!("{}/v1/competitions/alpha/submissions", app.ingest_url))
        .multipart(SubmitForm::painting(&paintings()[3]).external_id("a-2").into_multipart())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "a read key may not submit");
    assert_eq!(app.count("SELECT count(*) FROM submissions").await, 2, "only the two accepted uploads are stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_made_listed_and_revoked_by_an_admin() {
    let app = TestApp::spawn().await;
    let keys = format!("{}/v1/keys", app.ingest_url);

    let made = app.http.post(&keys).json(&json!({ "name": "organiser", "scopes": ["admin"] })).send().await.unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    let (id, token) = (made["id"].as_str().unwrap().to_string(), made["token"].as_str().unwrap().to_string());
    assert!(token.starts_with("easel_") && token.len() == 70, "{token}");

    // The new key works, and its use is recorded.
    let organiser = app.client(&token);
    let listed = organiser.get(&keys).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let listed = listed.text().await.unwrap();
    assert!(!listed.contains(&token), "a list never shows a token");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let entry = listed["items"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).expect("the new key is listed").clone();
    assert_eq!(entry["name"], "organiser");
    assert_eq!(entry["scopes"], json!(["admin"]));
    assert!(entry["last_used_at"].is_string(), "{entry}");
    assert!(entry.get("token").is_none() && entry.get("token_sha256").is_none(), "{entry}");
    // Only the hash is stored.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE row_to_json(api_keys)::text LIKE '%' || $1 || '%'")
        .bind(&token[6..])
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "the token is stored in the clear");

    // Bad requests change nothing.
    let before = app.count("SELECT count(*) FROM api_keys").await;
    for (body, code) in [
        (json!({ "name": "x", "scopes": ["root"] }), "invalid.scopes"),
        (json!({ "name": "x", "scopes": [] }), "invalid.scopes"),
        (json!({ "name": "x", "scopes": ["competition:UPPER:read"] }), "invalid.scopes"),
        (json!({ "name": "x\u{202e}y", "scopes": ["admin"] }), "invalid.name"),
        (json!({ "name": "", "scopes": ["admin"] }), "invalid.name"),
        (json!({ "name": "x", "scopes": ["admin"], "expires_at": "2001-01-01T00:00:00Z" }), "invalid.expires_at"),
        (json!({ "name": "x", "scopes": ["admin"], "extra": 1 }), "invalid.body"),
    ] {
        let response = app.http.post(&keys).json(&body).send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(status == 422 || status == 400, "{body}: {status} {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    assert_eq!(app.count("SELECT count(*) FROM api_keys").await, before);

    // A key that is not admin may not manage keys.
    let reader = app.client(&app.create_key("reader", &["competition:any-thing:read"]).await);
    let (status, body, _) = Call::new(Method::POST, keys.clone()).json(json!({ "name": "y", "scopes": ["admin"] })).send(&reader).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "auth.forbidden", "a read key making an admin key");

    // Revoked: refused at once, everywhere.
    let revoked = app.http.delete(format!("{keys}/{id}")).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    assert!(revoked.json::<Value>().await.unwrap()["revoked_at"].is_string());
    let (status, body, _) = Call::new(Method::GET, keys.clone()).send(&organiser).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "auth.invalid_key", "a revoked key");
    let unknown = app.http.delete(format!("{keys}/{}", uuid::Uuid::now_v7())).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let garbage = app.http.delete(format!("{keys}/not-a-uuid")).send().await.unwrap();
    assert_eq!(garbage.status(), 400);

    // Expired: refused.
    let soon = app
        .http
        .post(&keys)
        .json(&json!({ "name": "short-lived", "scopes": ["admin"], "expires_at": "2999-01-01T00:00:00Z" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let short_lived = app.client(soon["token"].as_str().unwrap());
    assert_eq!(short_lived.get(&keys).send().await.unwrap().status(), 200);
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(soon["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(short_lived.get(&keys).send().await.unwrap().status(), 401, "an expired key");
}

/// `public_results`: leaderboard and progress open to all, without critiques; nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_results_are_opt_in_and_show_no_critiques() {
    let mut app = TestApp::spawn().await;
    let created = app
        .http
        .post(format!("{}/v1/competitions", app.ingest_url))
        .json(&json!({ "slug": "open-salon", "title": "Open Salon", "public_results": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.json::<Value>().await.unwrap()["public_results"], true);
    assert_eq!(app.create_competition("closed-salon", None).await.status(), 201);
    let open_id = app.submit_painting("open-salon", &paintings()[4], "o-1").await;
    app.submit_painting("closed-salon", &paintings()[5], "c-1").await;
    app.start_worker().await;
    app.wait_until_settled(2, std::time::Duration::from_secs(120)).await;

    let api = &app.api_url;
    let (status, page) = anon_get(&app, &format!("{api}/v1/competitions/open-salon/results")).await;
    assert_eq!(status, 200, "{page}");
    let item = &page["items"][0];
    assert_eq!(item["submission_id"], open_id.to_string());
    assert!(item["scores"]["overall"].is_number());
    assert!(item.get("critique").is_none(), "a public leaderboard carries no critique: {item}");
    assert!(!page.to_string().contains("description"), "{page}");
    let (status, progress) = anon_get(&app, &format!("{api}/v1/competitions/open-salon/progress")).await;
    assert_eq!((status, progress["done"].as_i64()), (StatusCode::OK, Some(1)), "{progress}");

    // With a key, the same leaderboard has its critiques.
    let (status, page) = app.api_json("/v1/competitions/open-salon/results").await;
    assert_eq!(status, 200);
    assert!(page["items"][0]["critique"].is_string(), "{page}");

    // Exports, submissions and closed competitions stay closed.
    for path in [
        "/v1/competitions/open-salon/export.csv".to_string(),
        "/v1/competitions/open-salon/export.jsonl".to_string(),
        format!("/v1/submissions/{open_id}"),
        "/v1/competitions/closed-salon/results".to_string(),
        "/v1/competitions/closed-salon/progress".to_string(),
    ] {
        let (status, body) = anon_get(&app, &format!("{api}{path}")).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "auth.required", &path);
    }
}

/// Each key (and each address without one) has its own bucket: over it, 429 with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_over_their_rate_limit_get_429() {
    let app = TestApp::options()
        .configure(|s| {
            s.application.rate_limit.per_second = 1;
            s.application.rate_limit.burst = 3;
        })
        .spawn()
        .await;
    let url = format!("{}/v1/keys", app.ingest_url);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = app.http.get(&url).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").cloned();
        let status = response.status();
        if status == 429 {
            assert!(retry_after.is_some(), "a 429 says when to retry");
            assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // Another key is not held back by the first one's bucket.
    let other = app.client(&easel_tests::insert_key(&app.pool, "other", &["admin"]).await.unwrap());
    assert_eq!(other.get(&url).send().await.unwrap().status(), 200);
}

/// An `external_id` belongs to its competition: another image under a taken id is refused
/// (409 `submission.conflict`) singly and in bulk, and never answered "duplicate".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_external_id_with_another_image_is_a_conflict() {
    let app = TestApp::spawn().await;
    assert_eq!(app.create_competition("first", None).await.status(), 201);
    assert_eq!(app.create_competition("second", None).await.status(), 201);
    let (mine, theirs) = (&paintings()[6], &paintings()[7]);
    app.submit_painting("first", mine, "entry-42").await;

    let response = app.submit("first", SubmitForm::painting(theirs).external_id("entry-42")).await;
    assert_eq!(response.status(), 409);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "submission.conflict");

    let fresh = &paintings()[8];
    let bulk = app.submit_bulk("first", &[(theirs, "entry-42".to_string()), (fresh, "entry-43".to_string())]).await;
    assert_eq!(bulk.status(), 200);
    let bulk: Value = bulk.json().await.unwrap();
    assert_eq!((bulk["accepted"].as_u64(), bulk["duplicates"].as_u64(), bulk["rejected"].as_u64()), (Some(1), Some(0), Some(1)), "{bulk}");
    assert_eq!(bulk["items"][0]["error"]["code"], "submission.conflict", "{bulk}");
    assert!(bulk["items"][0]["id"].is_null(), "{bulk}");
    assert_eq!(app.count("SELECT count(*) FROM submissions").await, 2, "the conflicting entries made nothing");

    // The same id in another competition is another entry.
    assert_eq!(app.submit("second", SubmitForm::painting(theirs).external_id("entry-42")).await.status(), 202);
}
