//! The dashboard over plain HTTP: sign-in and sessions, every page behind them (303 to sign-in
//! without one, 403/404 with the wrong key), CSRF and origin checks on every form, the security
//! headers, the thumbnails the pipeline made, hostile parameters, and a juror's score written
//! through the scoring page. The same pages in a real browser: `browser.rs`.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, ORIGIN};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use uuid::Uuid;

use easel_tests::dashboard::{Session, blind_round_with_a_juror, csrf_of, location, plain_client, set_cookie};
use easel_tests::{TestApp, paintings};

const SLUG: &str = "gallery";

/// A scored competition of four entries, a blind round with one juror, and keys: an organiser
/// (read + manage), the juror, and a key of another competition.
struct Fixture {
    app: TestApp,
    ids: Vec<Uuid>,
    round: String,
    organiser: String,
    juror: String,
    outsider: String,
}

async fn fixture() -> Fixture {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.create_competition(SLUG, None).await.status(), 201);
    assert_eq!(app.create_competition("elsewhere", None).await.status(), 201);
    app.start_worker().await;
    let mut ids = Vec::new();
    for (i, painting) in paintings()[..4].iter().enumerate() {
        ids.push(app.submit_painting(SLUG, painting, &format!("entry-{i}")).await);
    }
    app.wait_until_settled(4, Duration::from_secs(120)).await;
    let (juror, round) = blind_round_with_a_juror(&app, SLUG, "Ada").await;
    let organiser = app.create_key("organiser", &["competition:gallery:read", "competition:gallery:manage"]).await;
    let outsider = app.create_key("outsider", &["competition:elsewhere:read"]).await;
    Fixture {
        round,
        juror,
        app,
        ids,
        organiser,
        outsider,
    }
}

/// Every GET page of the dashboard for the fixture (paths only).
fn pages(f: &Fixture) -> Vec<String> {
    let base = format!("/dashboard/competitions/{SLUG}");
    let (id, round) = (f.ids[0], &f.round);
    vec![
        "/dashboard".into(),
        "/dashboard/progress.json".into(),
        base.clone(),
        format!("{base}/distribution"),
        format!("{base}/audit"),
        format!("{base}/entries/{id}"),
        format!("{base}/entries/{id}/thumbnail.jpg"),
        format!("{base}/entries/{id}/preview.jpg"),
        format!("{base}/rounds/{round}"),
        format!("{base}/rounds/{round}/judge"),
        format!("{base}/rounds/{round}/judge/{id}/image.jpg"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_page_needs_a_session_and_the_right_scope() {
    let f = fixture().await;
    let anon = plain_client();
    let base = format!("/dashboard/competitions/{SLUG}");

    // Without a session: a redirect to the sign-in page that comes back.
    for path in pages(&f) {
        let response = anon.get(format!("{}{path}", f.app.api_url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        let to = location(&response).unwrap();
        assert!(to.starts_with("/dashboard/sign-in?next="), "{path} → {to}");
        assert!(response.headers().contains_key(CONTENT_SECURITY_POLICY), "{path}");
    }
    let judge = format!("{}{base}/rounds/{}/judge/{}", f.app.api_url, f.round, f.ids[0]);
    let response = anon.post(&judge).form(&[("csrf", "x"), ("score", "5")]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "a score without a session");
    // A made-up session cookie is no session.
    let forged = anon.get(format!("{}/dashboard", f.app.api_url)).header(COOKIE, format!("easel_session={}", "ab".repeat(32))).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);

    // The organiser reads every organiser page; the juror pages are not theirs (403).
    let organiser = Session::sign_in(&f.app, &f.organiser).await.unwrap();
    for path in pages(&f) {
        let response = organiser.get(&path).await;
        let expected = if path.contains("/judge") { StatusCode::FORBIDDEN } else { StatusCode::OK };
        assert_eq!(response.status(), expected, "organiser: {path}");
    }

    // The juror scores; the organiser's pages are forbidden (403), not hidden.
    let juror = Session::sign_in(&f.app, &f.juror).await.unwrap();
    for path in pages(&f) {
        let response = juror.get(&path).await;
        let expected = if path.contains("/judge") || path == "/dashboard" || path.ends_with(".json") { StatusCode::OK } else { StatusCode::FORBIDDEN };
        assert_eq!(response.status(), expected, "juror: {path}");
    }
    let (_, home) = juror.page("/dashboard").await;
    assert!(home.contains("Score entries") && !home.contains("Leaderboard"), "a juror is shown the round, not the organiser's pages");

    // A key of another competition learns nothing of this one (404), and its list is its own.
    let outsider = Session::sign_in(&f.app, &f.outsider).await.unwrap();
    for path in pages(&f).into_iter().filter(|p| p.contains(SLUG)) {
        assert_eq!(outsider.get(&path).await.status(), StatusCode::NOT_FOUND, "outsider: {path}");
    }
    let (_, list) = outsider.page("/dashboard").await;
    assert!(!list.contains(SLUG) && list.contains("elsewhere"));
    let progress: Value = outsider.get("/dashboard/progress.json").await.json().await.unwrap();
    assert!(progress.get(SLUG).is_none() && progress.get("elsewhere").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_makes_a_strict_session_that_dies_with_its_key() {
    let f = fixture().await;
    let anon = plain_client();
    let url = |path: &str| format!("{}{path}", f.app.api_url);

    // The sign-in page: the security headers, and a form token in a cookie of its own.
    let page = anon.get(url("/dashboard/sign-in?next=/dashboard/competitions/gallery")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
    for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let form_cookie = set_cookie(&page, "easel_sign_in").unwrap();
    assert!(form_cookie.contains("HttpOnly") && form_cookie.contains("SameSite=Strict"), "{form_cookie}");
    let form_cookie = form_cookie.split(';').next().unwrap().to_string();
    let html = page.text().await.unwrap();
    let token = csrf_of(&html).unwrap();
    assert!(!html.contains("<script>") && !html.contains("style=\""), "nothing inline for the CSP to refuse");

    let post = |cookie: Option<&str>, fields: Vec<(&'static str, String)>| {
        let mut request = anon.post(url("/dashboard/sign-in")).form(&fields);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie.to_string());
        }
        request.send()
    };
    let key = |k: &str| vec![("key", k.to_string()), ("csrf", token.clone()), ("next", "/dashboard/competitions/gallery".to_string())];
    // No form cookie (a cross-site post), a wrong token, a cross-origin post, a bad key.
    assert_eq!(post(None, key(&f.organiser)).await.unwrap().status(), StatusCode::FORBIDDEN);
    let wrong = vec![("key", f.organiser.clone()), ("csrf", "0".repeat(64)), ("next", String::new())];
    assert_eq!(post(Some(&form_cookie), wrong).await.unwrap().status(), StatusCode::FORBIDDEN);
    let cross = anon.post(url("/dashboard/sign-in")).header(COOKIE, &form_cookie).header(ORIGIN, "https://evil.example").form(&key(&f.organiser)).send().await.unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    for bad in ["easel_0000", "", &"x".repeat(5000), "<script>alert(1)</script>", &format!("{}\u{0}", f.organiser)] {
        let response = post(Some(&form_cookie), key(bad)).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad:.20}");
        assert!(set_cookie(&response, "easel_session").is_none());
        assert!(!response.text().await.unwrap().contains("<script>alert"), "the key is never echoed unescaped");
    }
    assert_eq!(f.app.count("SELECT count(*) FROM dashboard_sessions").await, 0, "no session for a refused sign-in");

    // The right key: a session cookie, HttpOnly and SameSite=Strict, scoped to the dashboard;
    // back to the page asked for. Only the token's hash is stored.
    let response = post(Some(&form_cookie), key(&f.organiser)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response).as_deref(), Some("/dashboard/competitions/gallery"));
    let session = set_cookie(&response, "easel_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age=43200"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "local.yaml serves plain HTTP on loopback");
    let cookie = session.split(';').next().unwrap().to_string();
    let token_value = cookie.trim_start_matches("easel_session=");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_sha256 FROM dashboard_sessions").fetch_one(&f.app.pool).await.unwrap();
    assert_ne!(stored, token_value.as_bytes(), "the token itself is not stored");
    let signed_in = anon.get(url("/dashboard")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(signed_in.status(), 200);

    // Behind TLS (a proxy saying so), the cookie is Secure.
    let tls_page = anon.get(url("/dashboard/sign-in")).header("x-forwarded-proto", "https").send().await.unwrap();
    assert!(set_cookie(&tls_page, "easel_sign_in").unwrap().contains("Secure"));

    // An open redirect is refused: `next` elsewhere lands on the dashboard.
    let page = anon.get(url("/dashboard/sign-in")).send().await.unwrap();
    let form_cookie = set_cookie(&page, "easel_sign_in").unwrap().split(';').next().unwrap().to_string();
    let token = csrf_of(&page.text().await.unwrap()).unwrap();
    let away = vec![("key", f.organiser.clone()), ("csrf", token), ("next", "//evil.example/x".to_string())];
    let response = post(Some(&form_cookie), away).await.unwrap();
    assert_eq!(location(&response).as_deref(), Some("/dashboard"));

    // Sign-out needs the session's CSRF token; then the cookie is dead.
    let html = anon.get(url("/dashboard")).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&html).unwrap();
    let refused = anon.post(url("/dashboard/sign-out")).header(COOKIE, &cookie).form(&[("csrf", "nope")]).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let out = anon.post(url("/dashboard/sign-out")).header(COOKIE, &cookie).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&out, "easel_session").unwrap().contains("Max-Age=0"));
    assert_eq!(anon.get(url("/dashboard")).header(COOKIE, &cookie).send().await.unwrap().status(), StatusCode::SEE_OTHER);

    // A session dies with its key: revoked through the API, the next page asks to sign in.
    let juror = Session::sign_in(&f.app, &f.juror).await.unwrap();
    assert_eq!(juror.get("/dashboard").await.status(), 200);
    let key_id: Uuid = sqlx::query_scalar("SELECT key_id FROM jurors").fetch_one(&f.app.pool).await.unwrap();
    let revoked = f.app.http.delete(format!("{}/v1/keys/{key_id}", f.app.ingest_url)).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(juror.get("/dashboard").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_what_the_pipeline_made_and_refuse_what_is_hostile() {
    let f = fixture().await;
    let organiser = Session::sign_in(&f.app, &f.organiser).await.unwrap();
    let base = format!("/dashboard/competitions/{SLUG}");

    // The thumbnails and previews were made once, at upload: fresh JPEGs of the pixels.
    assert_eq!(f.app.derived_in_bucket().await, 8);
    for (file, max_side) in [("thumbnail.jpg", 320), ("preview.jpg", 1600)] {
        let response = organiser.get(&format!("{base}/entries/{}/{file}", f.ids[1])).await;
        assert_eq!(response.headers()["content-type"], "image/jpeg");
        assert!(response.headers()["cache-control"].to_str().unwrap().starts_with("private"));
        let bytes = response.bytes().await.unwrap();
        let image = easel_imaging::decode(&bytes, &easel_imaging::DecodeLimits::default()).unwrap();
        assert!(image.width().max(image.height()) <= max_side, "{file}: {}×{}", image.width(), image.height());
        for marker in [[0xFF, 0xE1], [0xFF, 0xFE]] {
            assert!(!bytes.windows(2).any(|w| w == marker), "{file} carries an APP1/COM segment");
        }
    }

    // The leaderboard: every entry with its thumbnail, in any order.
    let (status, html) = organiser.page(&base).await;
    assert_eq!(status, 200);
    for id in &f.ids {
        assert!(html.contains(&format!("{base}/entries/{id}/thumbnail.jpg")), "{id}");
    }
    let order = |html: &str| -> Vec<usize> { (0..4).filter_map(|i| html.find(&format!(">entry-{i}<"))).collect() };
    let (_, by_color) = organiser.page(&format!("{base}?sort=color&order=asc")).await;
    let colors: Vec<(f32, String)> = sqlx::query_as("SELECT r.color, s.external_id FROM results r JOIN submissions s ON s.id = r.submission_id ORDER BY r.color, r.submission_id")
        .fetch_all(&f.app.pool)
        .await
        .unwrap();
    let positions: Vec<usize> = colors.iter().map(|(_, e)| by_color.find(&format!(">{e}<")).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "sorted by color, lowest first");
    assert_eq!(order(&by_color).len(), 4);
    let (_, filtered) = organiser.page(&format!("{base}?q=ENTRY-2")).await;
    assert!(filtered.contains(">entry-2<") && !filtered.contains(">entry-1<"), "the filter matches the id, case-insensitively");
    let (_, none) = organiser.page(&format!("{base}?q=%25")).await;
    assert!(!none.contains(">entry-0<"), "a % in the filter is a literal character");

    // An entry: the critique, the six scores as an SVG chart with its numbers, the version.
    let (status, entry) = organiser.page(&format!("{base}/entries/{}", f.ids[0])).await;
    assert_eq!(status, 200);
    let critique: String = sqlx::query_scalar("SELECT critique FROM results WHERE submission_id = $1").bind(f.ids[0]).fetch_one(&f.app.pool).await.unwrap();
    let escaped = critique.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    assert!(entry.contains(escaped.trim()), "the critique is on the page");
    assert!(entry.contains("<svg role=\"img\" aria-label=\"Rubric scores: overall"));
    let (_, dist) = organiser.page(&format!("{base}/distribution")).await;
    assert_eq!(dist.matches("<svg role=\"img\"").count(), 6, "a histogram per rubric output");

    // Hostile parameters: a clear 400 or 404, never a 500, never reflected unescaped.
    for (path, expected) in [
        (format!("{base}?sort=score;DROP%20TABLE%20results"), 400),
        (format!("{base}?order=sideways"), 400),
        (format!("{base}?page=0"), 400),
        (format!("{base}?page=99999999999999999999"), 400),
        (format!("{base}?min=NaN"), 400),
        (format!("{base}?q={}", "x".repeat(300)), 400),
        (format!("{base}?unknown=1"), 400),
        (format!("{base}/entries/not-a-uuid"), 404),
        (format!("{base}/entries/{}", Uuid::new_v4()), 404),
        (format!("{base}/entries/{}/original.jpg", f.ids[0]), 404),
        (format!("{base}/entries/{}/..%2F..%2Fetc%2Fpasswd", f.ids[0]), 404),
        (format!("{base}/rounds/{}", Uuid::new_v4()), 404),
        (format!("{base}/audit?after=abc"), 400),
        ("/dashboard/competitions/%3Cscript%3E".to_string(), 404),
        ("/dashboard/static/..%2FCargo.toml".to_string(), 404),
    ] {
        let (status, html) = organiser.page(&path).await;
        assert_eq!(status.as_u16(), expected, "{path}: {html:.300}");
        assert!(!html.contains("<script>"), "{path} reflects markup");
    }
    let (status, html) = organiser.page(&format!("{base}?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")).await;
    assert_eq!(status, 200);
    assert!(!html.contains("<script>alert(1)") && html.contains("&lt;script&gt;alert(1)"), "the filter is echoed escaped");
    let bypass = organiser.get("/dashboard/static/app.js").await;
    assert_eq!(bypass.headers()["content-type"], "text/javascript; charset=utf-8");

    // The juror's page: the blind entry (no id, no text) and a score through the form.
    let juror = Session::sign_in(&f.app, &f.juror).await.unwrap();
    let judge = format!("{base}/rounds/{}/judge", f.round);
    let (status, page) = juror.page(&judge).await;
    assert_eq!(status, 200);
    assert!(!page.contains("entry-") && !page.contains(&paintings()[0].description[..20]), "a blind round shows no id or text");
    assert!(page.contains("0 of 4 entries scored"));
    let csrf = csrf_of(&page).unwrap();
    let action = page.split("class=\"judge-form\" method=\"post\" action=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    // Off the scale, not a number, no token, a foreign origin: nothing written.
    for form in [vec![("csrf", csrf.as_str()), ("score", "11")], vec![("csrf", csrf.as_str()), ("score", "seven")], vec![("csrf", csrf.as_str())]] {
        let response = juror.post(&action, &form).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
    }
    assert_eq!(juror.post(&action, &[("csrf", "forged"), ("score", "7")]).await.status(), StatusCode::FORBIDDEN);
    let foreign = plain_client().post(format!("{}{action}", f.app.api_url)).header(COOKIE, &juror.cookie).header(ORIGIN, "https://evil.example").form(&[("csrf", csrf.as_str()), ("score", "7")]).send().await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let with_bearer = f.app.client(&f.juror).post(format!("{}{action}", f.app.api_url)).form(&[("csrf", csrf.as_str()), ("score", "7")]).send().await.unwrap();
    assert_eq!(with_bearer.status(), StatusCode::FORBIDDEN, "a key in a header has no session to post forms with");
    assert_eq!(f.app.count("SELECT count(*) FROM juror_scores").await, 0);
    let saved = juror.post(&action, &[("csrf", csrf.as_str()), ("score", "7.5"), ("note", "  strong  ")]).await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let (score, note): (f64, Option<String>) = sqlx::query_as("SELECT score, note FROM juror_scores").fetch_one(&f.app.pool).await.unwrap();
    assert_eq!((score, note.as_deref()), (7.5, Some("strong")));
    let conflict = juror.post(&action, &[("csrf", csrf.as_str()), ("conflict", "1")]).await;
    assert_eq!(conflict.status(), StatusCode::SEE_OTHER);
    let declared: bool = sqlx::query_scalar("SELECT conflict FROM juror_scores").fetch_one(&f.app.pool).await.unwrap();
    assert!(declared, "the conflict button replaces the score with a declared conflict");
    assert_eq!(f.app.count("SELECT count(*) FROM audit_log WHERE action = 'score_set'").await, 2, "each change is in the audit log");
    let (_, after) = juror.page(&judge).await;
    assert!(after.contains("1 of 4 entries scored"));
    // An oversized form is refused before it is read.
    let huge = "x".repeat(100_000);
    let response = juror.post(&action, &[("csrf", csrf.as_str()), ("score", "5"), ("note", huge.as_str())]).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// The api runs as the read-only database role of the deployment (deploy/postgres/api-reader.sql):
/// the dashboard's writes — sessions, a juror's score and its audit entry — are granted to it,
/// and nothing else is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_on_the_apis_read_only_database_role() {
    let f = fixture().await;
    let owner_url = f.app.settings.database.url.expose_secret().to_string();
    let status = std::process::Command::new("psql")
        .arg(&owner_url)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(easel_tests::repo_root().join("deploy/postgres/api-reader.sql"))
        .env("EASEL_API_READER_PASSWORD", "reader-test-password")
        .status()
        .expect("running psql");
    assert!(status.success(), "api-reader.sql failed");

    let mut reader_url = reqwest::Url::parse(&owner_url).unwrap();
    reader_url.set_username("easel_api_reader").unwrap();
    reader_url.set_password(Some("reader-test-password")).unwrap();
    let mut settings = f.app.settings.clone();
    settings.database.url = SecretString::from(reader_url.to_string());
    let api = easel_api::startup::Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", api.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(api.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    let organiser = Session::sign_in_at(&base, &f.organiser).await.unwrap();
    let (status, page) = organiser.page(&format!("/dashboard/competitions/{SLUG}")).await;
    assert_eq!(status, 200, "{page:.500}");
    let juror = Session::sign_in_at(&base, &f.juror).await.unwrap();
    let judge = format!("/dashboard/competitions/{SLUG}/rounds/{}/judge", f.round);
    let (_, page) = juror.page(&judge).await;
    let csrf = csrf_of(&page).unwrap();
    let action = page.split("class=\"judge-form\" method=\"post\" action=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let saved = juror.post(&action, &[("csrf", csrf.as_str()), ("score", "6")]).await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER, "{}", saved.text().await.unwrap_or_default());
    assert_eq!(f.app.count("SELECT count(*) FROM juror_scores").await, 1);
    assert_eq!(f.app.count("SELECT count(*) FROM audit_log WHERE action = 'score_set'").await, 1);
    let out = juror.post("/dashboard/sign-out", &[("csrf", csrf.as_str())]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);

    // What the role may not do.
    let reader = sqlx::PgPool::connect(reader_url.as_str()).await.unwrap();
    for write in ["UPDATE results SET score = 1", "DELETE FROM submissions", "UPDATE rounds SET closed_at = now()", "DELETE FROM audit_log", "UPDATE api_keys SET scopes = '{admin}'"] {
        let error = sqlx::query(write).execute(&reader).await.expect_err(write);
        assert!(error.to_string().contains("permission denied"), "{write}: {error}");
    }
    reader.close().await;
    let _ = stop.send(());
    let _ = running.await;
}
