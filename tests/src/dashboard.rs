//! Driving the dashboard: over plain HTTP with a session cookie ([`Session`]), and in headless
//! Chromium through ChromeDriver ([`Browser`]), with screenshots checked for content.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use tokio::process::Child;

use crate::{TestApp, repo_root};

/// A browser-less dashboard client: a session cookie on every request, redirects not followed.
pub struct Session {
    pub base: String,
    pub cookie: String,
    http: reqwest::Client,
}

/// A client that follows no redirect and sends no key.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(60)).build().expect("a client")
}

/// The value of `<input type="hidden" name="csrf" value="…">` in a page.
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_string())
}

/// The `name=value` of the cookie `name` set by a response.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

impl Session {
    /// Signs in with `token` through the sign-in form, as a browser does.
    pub async fn sign_in(app: &TestApp, token: &str) -> Result<Self> {
        Self::sign_in_at(&app.api_url, token).await
    }

    /// [`Session::sign_in`] on the api at `base`.
    pub async fn sign_in_at(base: &str, token: &str) -> Result<Self> {
        let http = plain_client();
        let base = base.to_string();
        let form = http.get(format!("{base}/dashboard/sign-in")).send().await?;
        let form_cookie = set_cookie(&form, "easel_sign_in").context("the sign-in page sets its form cookie")?;
        let form_cookie = form_cookie.split(';').next().unwrap_or_default().to_string();
        let csrf = csrf_of(&form.text().await?).context("the sign-in form carries its token")?;
        let response = http
            .post(format!("{base}/dashboard/sign-in"))
            .header(COOKIE, form_cookie)
            .form(&[("key", token), ("csrf", csrf.as_str()), ("next", "/dashboard")])
            .send()
            .await?;
        if response.status() != StatusCode::SEE_OTHER {
            bail!("sign-in answered {}", response.status());
        }
        let cookie = set_cookie(&response, "easel_session").context("sign-in sets the session cookie")?;
        Ok(Self { base, cookie: cookie.split(';').next().unwrap_or_default().to_string(), http })
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).header(COOKIE, &self.cookie).send().await.expect("a response")
    }

    /// A page's status and HTML.
    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let response = self.get(path).await;
        (response.status(), response.text().await.unwrap_or_default())
    }

    /// Posts a form (with the session's cookie).
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.base)).header(COOKIE, &self.cookie).form(form).send().await.expect("a response")
    }
}

/// A blind round of every entry of `slug`, scale 1–10, with one juror `juror`: the juror's key
/// and the round's id.
pub async fn blind_round_with_a_juror(app: &TestApp, slug: &str, juror: &str) -> (String, String) {
    let ingest = |path: &str| format!("{}/v1/competitions/{slug}{path}", app.ingest_url);
    let post = |path: &str, body: serde_json::Value| {
        let request = app.http.post(ingest(path)).json(&body);
        async move { request.send().await.expect("a response").json::<serde_json::Value>().await.expect("JSON") }
    };
    let juror = post("/jurors", serde_json::json!({ "name": juror })).await;
    let round = post("/rounds", serde_json::json!({ "name": "Blind round", "scale_min": 1, "scale_max": 10, "blind": true })).await;
    let token = juror["token"].as_str().expect("a juror's key").to_string();
    (token, round["id"].as_str().expect("a round id").to_string())
}

/// Where a redirect goes.
pub fn location(response: &reqwest::Response) -> Option<String> {
    response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Headless Chromium at 1366×768, driven through a ChromeDriver of its own.
pub struct Browser {
    pub client: Client,
    driver: Child,
    shots: PathBuf,
}

/// Where screenshots go: `$EASEL_SCREENSHOTS`, else `target/screenshots` (CI keeps the folder).
pub fn screenshots_dir() -> PathBuf {
    std::env::var_os("EASEL_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target/screenshots"))
}

impl Browser {
    /// Starts ChromeDriver (`$EASEL_CHROMEDRIVER`, default `/usr/bin/chromedriver`) and a headless
    /// Chromium (`$EASEL_CHROMIUM`, default `/usr/bin/chromium`); `scenario` names the folder
    /// its screenshots go to.
    pub async fn start(scenario: &str) -> Result<Self> {
        let driver_bin = std::env::var("EASEL_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("EASEL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        if !std::path::Path::new(&driver_bin).exists() || !std::path::Path::new(&chromium).exists() {
            bail!("{driver_bin} or {chromium} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = tokio::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {driver_bin}"))?;
        let url = format!("http://127.0.0.1:{port}");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1366,768", "--force-device-scale-factor=1", "--lang=en-GB"],
            }),
        );
        let started = Instant::now();
        let client = loop {
            // Plain HTTP to ChromeDriver on loopback: no TLS stack needed.
            match ClientBuilder::new(HttpConnector::new()).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    tracing::debug!(error = %e, "ChromeDriver not ready yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e).context("connecting to ChromeDriver"),
            }
        };
        let shots = screenshots_dir().join(scenario);
        std::fs::create_dir_all(&shots)?;
        Ok(Self { client, driver, shots })
    }

    /// Opens `url` and waits until the document has loaded.
    pub async fn open(&self, url: &str) -> Result<()> {
        self.client.goto(url).await?;
        self.settle().await
    }

    /// Waits for the document to finish loading (after a navigation by a click or a key).
    pub async fn settle(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let state = self.client.execute("return document.readyState", vec![]).await?;
            if state == "complete" {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("the page did not finish loading");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of `<main>` once it contains `expected`: polls through a navigation (a form
    /// submitted with Enter can leave the old page "complete" for a moment, and an element found
    /// on it goes stale), up to 20 s; then the last text seen, for the test's assertion.
    pub async fn main_text_containing(&self, expected: &str) -> Result<String> {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < Duration::from_secs(20) {
            self.settle().await?;
            if let Ok(main) = self.client.find(Locator::Css("main")).await
                && let Ok(text) = main.text().await
            {
                if text.contains(expected) {
                    return Ok(text);
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(last)
    }

    /// The current path and query.
    pub async fn path(&self) -> Result<String> {
        let url = self.client.current_url().await?;
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        })
    }

    /// Signs in through the form with `token`.
    pub async fn sign_in(&self, api_url: &str, token: &str) -> Result<()> {
        self.open(&format!("{api_url}/dashboard/sign-in")).await?;
        let key = self.client.find(Locator::Css("input[name=key]")).await?;
        key.send_keys(token).await?;
        key.send_keys("\u{E007}").await?;
        self.settle().await
    }

    /// Forgets the session (as a new browser would be).
    pub async fn sign_out_by_forgetting(&self) -> Result<()> {
        self.client.delete_all_cookies().await?;
        Ok(())
    }

    /// Saves a screenshot of the page as `<name>.png`, and checks it is not blank: several
    /// colours, and a fair share of the pixels not the background's.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, &png)?;
        let image = image::load_from_memory(&png).context("decoding the screenshot")?.to_rgb8();
        let (w, h) = image.dimensions();
        if w < 300 || h < 300 {
            bail!("the screenshot {name} is only {w}×{h}");
        }
        let background = *image.get_pixel(w - 1, h - 1);
        let differing = image.pixels().filter(|p| **p != background).count();
        let colours: std::collections::HashSet<[u8; 3]> = image.pixels().map(|p| p.0).take(200_000).collect();
        if differing * 100 < (w * h) as usize || colours.len() < 16 {
            bail!("the screenshot {name} looks blank: {differing} pixels differ from the background, {} colours", colours.len());
        }
        Ok(path)
    }

    pub async fn close(self) -> Result<()> {
        let Self { client, mut driver, .. } = self;
        client.close().await?;
        let _ = driver.kill().await;
        Ok(())
    }
}
