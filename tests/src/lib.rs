//! The harness of Easel's end-to-end tests and benchmark: a [`TestApp`] with fresh resources of
//! its own on the real services (a new database, new queues, a new bucket), ingest and api
//! running in-process on port 0, and workers as real `easel-worker` processes that can be
//! killed or stopped. Everything is driven from outside: HTTP, the queue, SQL, S3.

pub mod bench;
pub mod chaos;
pub mod dashboard;
pub mod paintings;
pub mod proxy;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use easel_core::configuration::Settings;
use easel_core::domain::JobMessage;
use easel_core::{Service, db, telemetry};
use lapin::options::{BasicPublishOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::process::Child;
use tokio::task::JoinHandle;

pub use paintings::{Painting, paintings};
pub use proxy::Proxy;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

/// A dependency a test may route through a [`Proxy`] to take it down and bring it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    Postgres,
    RabbitMq,
    S3,
}

/// How a [`TestApp`] is set up.
pub struct TestOptions {
    configure: Vec<Box<dyn FnOnce(&mut Settings) + Send>>,
    proxied: Vec<Dependency>,
    start_services: bool,
    exclusive_broker: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self { configure: Vec::new(), proxied: Vec::new(), start_services: true, exclusive_broker: false }
    }
}

impl TestOptions {
    /// Changes the settings every service of the app gets.
    pub fn configure(mut self, f: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// Routes every service's connections to `dependency` through a proxy the test controls.
    pub fn proxy(mut self, dependency: Dependency) -> Self {
        self.proxied.push(dependency);
        self
    }

    /// Only the resources, no in-process ingest or api (the benchmark starts its own).
    pub fn without_services(mut self) -> Self {
        self.start_services = false;
        self
    }

    /// Holds RabbitMQ alone (other tests wait): for a test that restarts it.
    pub fn exclusive_broker(mut self) -> Self {
        self.exclusive_broker = true;
        self
    }

    pub async fn spawn(self) -> TestApp {
        TestApp::spawn_with(self).await.expect("starting the test app")
    }
}

/// An in-process service and the switch that stops it.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<Result<()>>,
}

/// One test's own Easel: fresh database, queues and bucket on the real services.
pub struct TestApp {
    /// What the services of this app run with (pointing at its own resources).
    pub settings: Settings,
    pub ingest_url: String,
    pub api_url: String,
    /// The app's database, for the checks a test makes in SQL.
    pub pool: PgPool,
    /// Sends the app's `admin` key with every request (a test may set another header).
    pub http: reqwest::Client,
    /// Sends no key: a stranger.
    pub anon: reqwest::Client,
    /// The token of the `admin` key every app starts with.
    pub admin_token: String,
    pub proxies: HashMap<Dependency, Proxy>,
    database: String,
    services: Vec<Running>,
    workers: Vec<WorkerProcess>,
    worker_count: usize,
    logs: PathBuf,
    _broker: BrokerLock,
}

/// The random-weight tiny checkpoint (seed 7) shared by all tests (written once, under a lock).
pub fn tiny_model() -> PathBuf {
    tiny_model_seed(7)
}

/// A random-weight tiny checkpoint of this seed (model version `easel-tiny-random-seed<N>`),
/// written once under `target/easel-test-fixtures`, under a file lock shared by every test
/// process.
pub fn tiny_model_seed(seed: u64) -> PathBuf {
    static MODELS: Mutex<BTreeMap<u64, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut models = MODELS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    models
        .entry(seed)
        .or_insert_with(|| {
            let dir = repo_root().join("target/easel-test-fixtures");
            std::fs::create_dir_all(&dir).expect("creating target/easel-test-fixtures");
            let model = dir.join(format!("tiny-model-seed-{seed}"));
            let lock = std::fs::File::create(dir.join("tiny-model.lock")).expect("creating the model lock");
            lock.lock().expect("locking the model fixture");
            if !model.join("easel.json").is_file() {
                let staging = dir.join(format!("tiny-model-{}", uuid::Uuid::new_v4().simple()));
                easel_model::init::init_checkpoint(easel_model::init::Preset::Tiny, &staging, seed)
                    .expect("writing the tiny checkpoint");
                let _ = std::fs::remove_dir_all(&model);
                std::fs::rename(&staging, &model).expect("moving the tiny checkpoint in place");
            }
            model
        })
        .clone()
}

/// A plain Hugging Face-layout checkpoint without `easel.json` or a head, so it scores
/// zero-shot: the model crate's HF parity fixture (tiny random Qwen2-VL with the real Qwen
/// vocabulary) with the real Qwen tokenizer (`.cache/qwen-tokenizer/`), copied once under
/// `target/easel-test-fixtures/qwen2-vl-zero-shot`.
pub fn zero_shot_model() -> PathBuf {
    static MODEL: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut model = MODEL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    model
        .get_or_insert_with(|| {
            let root = repo_root();
            let dir = root.join("target/easel-test-fixtures");
            std::fs::create_dir_all(&dir).expect("creating target/easel-test-fixtures");
            let target = dir.join("qwen2-vl-zero-shot");
            let lock = std::fs::File::create(dir.join("zero-shot-model.lock")).expect("creating the model lock");
            lock.lock().expect("locking the model fixture");
            if !target.join("tokenizer.json").is_file() {
                let staging = dir.join(format!("zero-shot-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&staging).expect("creating the staging folder");
                let source = root.join("crates/model/tests/fixtures/zero-shot/checkpoint");
                for entry in std::fs::read_dir(&source).expect("reading the zero-shot fixture") {
                    let path = entry.expect("a fixture file").path();
                    std::fs::copy(&path, staging.join(path.file_name().expect("a file name"))).expect("copying the fixture");
                }
                let tokenizer = root.join(".cache/qwen-tokenizer/tokenizer.json");
                std::fs::copy(&tokenizer, staging.join("tokenizer.json"))
                    .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-qwen-tokenizer.sh)", tokenizer.display()));
                let _ = std::fs::remove_dir_all(&target);
                std::fs::rename(&staging, &target).expect("moving the zero-shot checkpoint in place");
            }
            target
        })
        .clone()
}

fn init_tracing(settings: &Settings) {
    if std::env::var_os("TEST_LOG").is_some() {
        telemetry::init_subscriber(&settings.telemetry);
    } else {
        telemetry::init_subscriber_with(&settings.telemetry, std::io::sink);
    }
}

/// Settings as the services would load them here (config/ and `APP_*`), before a test's own
/// resources are filled in.
pub fn base_settings() -> Settings {
    // The worker reads every section, so its settings are the whole configuration.
    Settings::load_from(Service::Worker, &repo_root().join("config")).expect("loading config/ for the tests")
}

impl TestApp {
    /// An app with default settings.
    pub async fn spawn() -> TestApp {
        TestOptions::default().spawn().await
    }

    pub fn options() -> TestOptions {
        TestOptions::default()
    }

    async fn spawn_with(options: TestOptions) -> Result<TestApp> {
        let broker = if options.exclusive_broker { BrokerLock::exclusive() } else { BrokerLock::shared() };
        let mut settings = base_settings();
        init_tracing(&settings);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("easel_test_{id}");
        settings.application.host = "127.0.0.1".into();
        settings.application.port = 0;
        settings.application.shutdown_grace_seconds = 5;
        settings.rabbitmq.queue = format!("easel.test.{id}.jobs");
        settings.s3.bucket = format!("easel-test-{}", &id[..20]);
        settings.s3.create_bucket = true;
        settings.ingest.outbox_poll_ms = 200;
        settings.worker.model_dir = tiny_model();
        settings.worker.max_new_tokens = Some(4);
        settings.worker.batch_timeout_ms = 20;
        settings.worker.retry_budget_seconds = 30;
        settings.worker.max_batch_seconds = 30;
        // Tests upload fast from one address; the rate-limit test sets its own.
        settings.application.rate_limit.per_second = 10_000;
        settings.application.rate_limit.burst = 10_000;

        // The database, created empty and migrated.
        let base_url = Url::parse(settings.database.url.expose_secret()).context("database.url")?;
        let admin = db::pool_with(&settings.database, connect_options(&base_url, "postgres")?);
        sqlx::query(&format!("CREATE DATABASE \"{database}\"")).execute(&admin).await.context("creating the test database")?;
        admin.close().await;
        let mut database_url = base_url.clone();
        database_url.set_path(&format!("/{database}"));
        settings.database.url = SecretString::from(database_url.to_string());
        settings.database.max_connections = 5;
        let pool = db::pool_with(&settings.database, settings.database.connect_options()?);
        db::migrate(&pool).await.context("migrating the test database")?;
        let admin_token = insert_key(&pool, "test admin", &["admin"]).await?;

        for f in options.configure {
            f(&mut settings);
        }

        let mut proxies = HashMap::new();
        for dependency in options.proxied {
            let (url, default_port) = match dependency {
                Dependency::Postgres => (settings.database.url.expose_secret().to_string(), 5432),
                Dependency::RabbitMq => (settings.rabbitmq.url.expose_secret().to_string(), 5672),
                Dependency::S3 => (settings.s3.endpoint.clone().unwrap_or_default(), 443),
            };
            let mut url = Url::parse(&url).with_context(|| format!("the {dependency:?} url"))?;
            let upstream = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(default_port));
            let proxy = Proxy::start(upstream).await?;
            url.set_port(Some(proxy.port())).map_err(|_| anyhow::anyhow!("cannot set a port on {url}"))?;
            match dependency {
                Dependency::Postgres => settings.database.url = SecretString::from(url.to_string()),
                Dependency::RabbitMq => settings.rabbitmq.url = SecretString::from(url.to_string()),
                Dependency::S3 => settings.s3.endpoint = Some(url.to_string().trim_end_matches('/').to_string()),
            }
            proxies.insert(dependency, proxy);
        }

        let logs = repo_root().join("target/easel-test-logs").join(&database);
        std::fs::create_dir_all(&logs)?;
        let mut app = TestApp {
            ingest_url: String::new(),
            api_url: String::new(),
            pool,
            http: client_with_key(Some(&admin_token))?,
            anon: client_with_key(None)?,
            admin_token,
            proxies,
            database,
            services: Vec::new(),
            workers: Vec::new(),
            worker_count: 0,
            logs,
            settings,
            _broker: broker,
        };
        if options.start_services {
            app.start_services().await?;
        }
        Ok(app)
    }

    /// Starts ingest and api in this process, on free ports.
    pub async fn start_services(&mut self) -> Result<()> {
        let ingest = easel_ingest::startup::Application::build(self.settings.clone()).await?;
        self.ingest_url = format!("http://127.0.0.1:{}", ingest.port());
        let api = easel_api::startup::Application::build(self.settings.clone()).await?;
        self.api_url = format!("http://127.0.0.1:{}", api.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(ingest.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        self.services.push(Running { stop, task });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(api.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        self.services.push(Running { stop, task });
        Ok(())
    }

    /// Stops the in-process services gracefully (the outbox relay publishes what it holds).
    pub async fn stop_services(&mut self) {
        for running in self.services.drain(..) {
            let _ = running.stop.send(());
            let _ = running.task.await;
        }
    }

    /// The environment a worker process gets: the `APP_*` contract the deployment uses.
    pub fn worker_env(&self, port: u16) -> Vec<(String, String)> {
        let s = &self.settings;
        let w = &s.worker;
        let mut env = vec![
            ("APP_CONFIG_DIR", repo_root().join("config").display().to_string()),
            ("APP_ENVIRONMENT", "local".into()),
            ("APP_APPLICATION__HOST", "127.0.0.1".into()),
            ("APP_APPLICATION__PORT", port.to_string()),
            ("APP_TELEMETRY__FORMAT", "json".into()),
            ("APP_DATABASE__URL", s.database.url.expose_secret().to_string()),
            ("APP_DATABASE__MAX_CONNECTIONS", "4".into()),
            ("APP_RABBITMQ__URL", s.rabbitmq.url.expose_secret().to_string()),
            ("APP_RABBITMQ__QUEUE", s.rabbitmq.queue.clone()),
            ("APP_RABBITMQ__DELIVERY_LIMIT", s.rabbitmq.delivery_limit.to_string()),
            ("APP_RABBITMQ__PREFETCH", s.rabbitmq.prefetch.to_string()),
            ("APP_S3__ENDPOINT", s.s3.endpoint.clone().unwrap_or_default()),
            ("APP_S3__BUCKET", s.s3.bucket.clone()),
            ("APP_S3__REGION", s.s3.region.clone()),
            ("APP_S3__ACCESS_KEY_ID", s.s3.access_key_id.expose_secret().to_string()),
            ("APP_S3__SECRET_ACCESS_KEY", s.s3.secret_access_key.expose_secret().to_string()),
            ("APP_WORKER__MODEL_DIR", w.model_dir.display().to_string()),
            ("APP_WORKER__BATCH_SIZE", w.batch_size.to_string()),
            ("APP_WORKER__BATCH_TIMEOUT_MS", w.batch_timeout_ms.to_string()),
            ("APP_WORKER__MAX_BATCH_SECONDS", w.max_batch_seconds.to_string()),
            ("APP_WORKER__MAX_ATTEMPTS", w.max_attempts.to_string()),
            ("APP_WORKER__DECODE_CONCURRENCY", w.decode_concurrency.to_string()),
            ("APP_WORKER__RETRY_BUDGET_SECONDS", w.retry_budget_seconds.to_string()),
            ("APP_WORKER__DRAIN_DEADLINE_SECONDS", w.drain_deadline_seconds.to_string()), ("APP_WORKER__DRAIN_TOKEN", w.drain_token().map(|t| t.expose_secret().to_string()).unwrap_or_default()),
            ("APP_WORKER__DEVICE", "cpu".into()),
            ("APP_WORKER__DTYPE", "f32".into()),
        ];
        if let Some(tokens) = w.max_new_tokens {
            env.push(("APP_WORKER__MAX_NEW_TOKENS", tokens.to_string()));
        }
        if let Some(marker) = &w.fault_injection.model_panic_on {
            env.push(("APP_WORKER__FAULT_INJECTION__MODEL_PANIC_ON", marker.clone()));
        }
        if let Some(marker) = &w.fault_injection.model_error_on {
            env.push(("APP_WORKER__FAULT_INJECTION__MODEL_ERROR_ON", marker.clone()));
        }
        if let Some(shadow) = &w.shadow {
            env.push(("APP_WORKER__SHADOW__MODEL_DIR", shadow.model_dir.display().to_string()));
            env.push(("APP_WORKER__SHADOW__SHARE", shadow.share.to_string()));
        }
        env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Starts an `easel-worker` process and waits until its `/readyz` says ready.
    pub async fn start_worker(&mut self) -> &mut WorkerProcess {
        let worker = self.launch_worker().await;
        worker.wait_ready(Duration::from_secs(90)).await.expect("the worker did not become ready");
        worker
    }

    /// Starts an `easel-worker` process (the next [`TestApp::worker`] index) without waiting
    /// for it to be ready.
    pub async fn launch_worker(&mut self) -> &mut WorkerProcess {
        let worker = self.spawn_worker_process().await.expect("starting a worker");
        self.workers.push(worker);
        self.workers.last_mut().expect("just pushed")
    }

    async fn spawn_worker_process(&mut self) -> Result<WorkerProcess> {
        let port = free_port()?;
        self.worker_count += 1;
        let log_path = self.logs.join(format!("worker-{}.log", self.worker_count));
        let log = std::fs::File::create(&log_path)?;
        let child = tokio::process::Command::new(worker_binary())
            .envs(self.worker_env(port))
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("spawning easel-worker")?;
        Ok(WorkerProcess { child, port, log_path })
    }

    pub fn worker(&mut self, index: usize) -> &mut WorkerProcess {
        &mut self.workers[index]
    }

    /// Makes an API key over HTTP (with the admin key); returns its token.
    pub async fn create_key(&self, name: &str, scopes: &[&str]) -> String {
        let response = self
            .http
            .post(format!("{}/v1/keys", self.ingest_url))
            .json(&serde_json::json!({ "name": name, "scopes": scopes }))
            .send()
            .await
            .expect("POST /v1/keys");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("a JSON answer");
        assert_eq!(status, 201, "making a key: {body}");
        body["token"].as_str().expect("a token").to_string()
    }

    /// A client that sends `token` with every request.
    pub fn client(&self, token: &str) -> reqwest::Client {
        client_with_key(Some(token)).expect("building a client")
    }

    /// Creates a competition over HTTP.
    pub async fn create_competition(&self, slug: &str, rubric_weights: Option<serde_json::Value>) -> reqwest::Response {
        let mut body = serde_json::json!({ "slug": slug, "title": format!("Test competition {slug}") });
        if let Some(weights) = rubric_weights {
            body["rubric_weights"] = weights;
        }
        self.http.post(format!("{}/v1/competitions", self.ingest_url)).json(&body).send().await.expect("POST /v1/competitions")
    }

    /// Submits one painting as a multipart form.
    pub async fn submit(&self, slug: &str, form: SubmitForm) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/competitions/{slug}/submissions", self.ingest_url))
            .multipart(form.into_multipart())
            .send()
            .await
            .expect("POST submissions")
    }

    /// Submits a painting from the sample set, checking it was accepted; returns its id.
    pub async fn submit_painting(&self, slug: &str, painting: &Painting, external_id: &str) -> uuid::Uuid {
        let response = self.submit(slug, SubmitForm::painting(painting).external_id(external_id)).await;
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("a JSON answer");
        assert!(status.is_success(), "submitting {}: {status} {body}", painting.file);
        body["id"].as_str().and_then(|id| id.parse().ok()).expect("an id")
    }

    /// Submits paintings in one bulk request: a JSON-lines manifest, then one `files` part per
    /// painting. `entries` pairs each painting with its external id.
    pub async fn submit_bulk(&self, slug: &str, entries: &[(&Painting, String)]) -> reqwest::Response {
        let manifest = bulk_manifest(entries);
        let mut form = reqwest::multipart::Form::new().part(
            "manifest",
            reqwest::multipart::Part::bytes(manifest).file_name("manifest.jsonl").mime_str("application/x-ndjson").expect("a MIME type"),
        );
        for (painting, _) in entries {
            let part = reqwest::multipart::Part::bytes(painting.bytes.clone()).file_name(painting.file.clone());
            form = form.part("files", part.mime_str("image/jpeg").expect("a MIME type"));
        }
        self.post_bulk(slug, form).await
    }

    /// Submits paintings as one zip (`manifest.jsonl` at its root, then the files).
    pub async fn submit_zip(&self, slug: &str, entries: &[(&Painting, String)]) -> reqwest::Response {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("manifest.jsonl", stored).expect("a zip entry");
        zip.write_all(&bulk_manifest(entries)).expect("writing the manifest");
        for (painting, _) in entries {
            zip.start_file(painting.file.as_str(), stored).expect("a zip entry");
            zip.write_all(&painting.bytes).expect("writing a painting");
        }
        let archive = zip.finish().expect("closing the zip").into_inner();
        let part = reqwest::multipart::Part::bytes(archive).file_name("entries.zip").mime_str("application/zip").expect("a MIME type");
        self.post_bulk(slug, reqwest::multipart::Form::new().part("archive", part)).await
    }

    async fn post_bulk(&self, slug: &str, form: reqwest::multipart::Form) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/competitions/{slug}/bulk", self.ingest_url))
            .multipart(form)
            .send()
            .await
            .expect("POST bulk")
    }

    /// GETs a JSON document from the api service.
    pub async fn api_json(&self, path_and_query: &str) -> (reqwest::StatusCode, serde_json::Value) {
        let response = self.http.get(format!("{}{path_and_query}", self.api_url)).send().await.expect("GET from the api");
        let status = response.status();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// GETs a text document (an export) from the api service.
    pub async fn api_text(&self, path_and_query: &str) -> (reqwest::StatusCode, String) {
        let response = self.http.get(format!("{}{path_and_query}", self.api_url)).send().await.expect("GET from the api");
        let status = response.status();
        (status, response.text().await.expect("a text body"))
    }

    /// Results and submissions, checked for the invariant every test ends on: each submission
    /// is `done` with exactly one result, or `failed` with none.
    pub async fn assert_exactly_once(&self) {
        let orphans = self
            .count(
                "SELECT count(*) FROM submissions s WHERE status = 'done' \
                 AND NOT EXISTS (SELECT 1 FROM results r WHERE r.submission_id = s.id AND NOT r.shadow)",
            )
            .await;
        assert_eq!(orphans, 0, "done submissions without a result");
        // With one model version, a submission has a result only once it is done (a rescore
        // for a second version leaves the first version's results on re-queued submissions).
        let stray = self
            .count(
                "SELECT count(*) FROM submissions s WHERE status <> 'done' \
                 AND EXISTS (SELECT 1 FROM results r WHERE r.submission_id = s.id AND NOT r.shadow) \
                 AND (SELECT count(DISTINCT model_version) FROM results) = 1",
            )
            .await;
        assert_eq!(stray, 0, "results for submissions that are not done");
        let duplicates = self.count("SELECT count(*) - count(DISTINCT (submission_id, model_version)) FROM results").await;
        assert_eq!(duplicates, 0, "duplicate results");
    }

    /// Waits until `expected` submissions are done or failed; fails with the worker logs' tail.
    pub async fn wait_until_settled(&self, expected: i64, timeout: Duration) {
        let started = Instant::now();
        loop {
            let settled = self.count("SELECT count(*) FROM submissions WHERE status IN ('done', 'failed')").await;
            if settled >= expected {
                return;
            }
            if started.elapsed() > timeout {
                let tails: Vec<String> = self.workers.iter().map(|w| w.log_tail(30)).collect();
                panic!("only {settled} of {expected} submissions settled within {timeout:?}\n{}", tails.join("\n---\n"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ingest's Prometheus metrics (the in-process ingest's recorder).
    pub async fn ingest_metrics(&self) -> String {
        self.http.get(format!("{}/metrics", self.ingest_url)).send().await.expect("GET /metrics").text().await.expect("metrics text")
    }

    /// A count query on the app's database.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Opens a connection to the app's broker (through its proxy, if any).
    pub async fn broker(&self) -> Connection {
        Connection::connect(self.settings.rabbitmq.url.expose_secret(), ConnectionProperties::default())
            .await
            .expect("connecting to RabbitMQ")
    }

    /// Messages ready in `queue` (the jobs queue, or its `.dead` twin).
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        let connection = self.broker().await;
        let channel = connection.create_channel().await.expect("a channel");
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let depth = channel.queue_declare(queue, passive, Default::default()).await.map(|q| q.message_count()).unwrap_or(0);
        let _ = connection.close(200, "done").await;
        depth
    }

    /// Publishes raw bytes to the jobs queue, as a misbehaving producer would.
    pub async fn publish_raw(&self, payload: &[u8]) {
        let connection = self.broker().await;
        let channel = connection.create_channel().await.expect("a channel");
        channel.confirm_select(Default::default()).await.expect("confirms");
        channel
            .basic_publish("", &self.settings.rabbitmq.queue, BasicPublishOptions::default(), payload, BasicProperties::default().with_delivery_mode(2))
            .await
            .expect("publishing")
            .await
            .expect("a confirm");
        let _ = connection.close(200, "done").await;
    }

    /// Publishes a job again, as a duplicate delivery.
    pub async fn publish_job(&self, job: &JobMessage) {
        self.publish_raw(&job.to_json()).await;
    }

    /// Stored images (originals) in the app's bucket.
    pub async fn objects_in_bucket(&self) -> usize {
        self.objects_under(easel_core::storage::IMAGE_PREFIX).await
    }

    /// Copies made from the images (thumbnails and previews) in the app's bucket.
    pub async fn derived_in_bucket(&self) -> usize {
        self.objects_under(easel_core::storage::DERIVED_PREFIX).await
    }

    async fn objects_under(&self, prefix: &str) -> usize {
        let client = s3_client(&self.settings);
        let listed =
            client.list_objects_v2().bucket(&self.settings.s3.bucket).prefix(prefix).send().await.expect("listing the bucket");
        listed.contents().len()
    }

    /// Overwrites an object in the app's bucket.
    pub async fn put_object(&self, key: &str, bytes: Vec<u8>) {
        s3_client(&self.settings)
            .put_object()
            .bucket(&self.settings.s3.bucket)
            .key(key)
            .body(bytes.into())
            .send()
            .await
            .expect("putting an object");
    }
}

/// An HTTP client for the tests, sending `token` as a bearer key when there is one.
pub fn client_with_key(token: Option<&str>) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(120)).default_headers(headers).build()?)
}

/// Stores a key straight in the database (as `easel keys create` does); returns its token.
pub async fn insert_key(pool: &PgPool, name: &str, scopes: &[&str]) -> Result<String> {
    let scopes = easel_core::auth::Scopes::parse(scopes)?;
    let (token, hash) = easel_core::auth::generate_token()?;
    db::keys::insert(pool, name, &scopes, None, None, &hash).await.context("storing a test key")?;
    Ok(token.expose_secret().to_string())
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for running in self.services.drain(..) {
            running.task.abort();
        }
        for worker in &mut self.workers {
            let _ = worker.child.start_kill();
        }
        if std::env::var_os("EASEL_TEST_KEEP").is_some() {
            eprintln!("keeping database {}, queue {}, bucket {}", self.database, self.settings.rabbitmq.queue, self.settings.s3.bucket);
            return;
        }
        let settings = base_settings();
        let (database, queue, bucket) = (self.database.clone(), self.settings.rabbitmq.queue.clone(), self.settings.s3.bucket.clone());
        // Drop cannot await: clean up on a thread with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(clean_up(settings, database, queue, bucket))
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("cleaning up after the test: {e:#}");
        }
    }
}

async fn clean_up(settings: Settings, database: String, queue: String, bucket: String) -> Result<()> {
    let connection =
        Connection::connect(settings.rabbitmq.url.expose_secret(), ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    for name in [queue.clone(), format!("{queue}.dead")] {
        let _ = channel.queue_delete(&name, QueueDeleteOptions::default()).await;
    }
    let _ = connection.close(200, "done").await;

    let client = s3_client(&settings);
    loop {
        let listed = client.list_objects_v2().bucket(&bucket).send().await;
        let Ok(listed) = listed else { break };
        if listed.contents().is_empty() {
            break;
        }
        for object in listed.contents() {
            if let Some(key) = object.key() {
                client.delete_object().bucket(&bucket).key(key).send().await?;
            }
        }
    }
    let _ = client.delete_bucket().bucket(&bucket).send().await;

    let base_url = Url::parse(settings.database.url.expose_secret())?;
    let admin = db::pool_with(&settings.database, connect_options(&base_url, "postgres")?);
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)")).execute(&admin).await?;
    admin.close().await;
    Ok(())
}

fn connect_options(base: &Url, database: &str) -> Result<PgConnectOptions> {
    let mut url = base.clone();
    url.set_path(&format!("/{database}"));
    Ok(url.as_str().parse()?)
}

/// A plain S3 client for what the services never do (listing, deleting).
pub fn s3_client(settings: &Settings) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let mut config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(settings.s3.region.clone()))
        .credentials_provider(Credentials::new(
            settings.s3.access_key_id.expose_secret(),
            settings.s3.secret_access_key.expose_secret(),
            None,
            None,
            "tests",
        ))
        .force_path_style(true);
    if let Some(endpoint) = &settings.s3.endpoint {
        config = config.endpoint_url(endpoint);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// A bulk manifest in JSON lines: `file`, `external_id`, `description` per painting.
fn bulk_manifest(entries: &[(&Painting, String)]) -> Vec<u8> {
    let mut manifest = Vec::new();
    for (painting, external_id) in entries {
        let line = serde_json::json!({ "file": painting.file, "external_id": external_id, "description": painting.description });
        serde_json::to_writer(&mut manifest, &line).expect("a JSON line");
        manifest.push(b'\n');
    }
    manifest
}

/// A multipart submission, field by field (bytes, so tests can send invalid text).
#[derive(Debug, Clone, Default)]
pub struct SubmitForm {
    /// Bytes, filename, part content type.
    pub image: Option<(Vec<u8>, String, Option<String>)>,
    pub description: Option<Vec<u8>>,
    pub external_id: Option<Vec<u8>>,
}

impl SubmitForm {
    pub fn image(bytes: Vec<u8>, file_name: &str, mime: Option<&str>) -> Self {
        Self { image: Some((bytes, file_name.into(), mime.map(str::to_string))), ..Self::default() }
    }

    pub fn painting(painting: &Painting) -> Self {
        Self::image(painting.bytes.clone(), &painting.file, Some("image/jpeg")).description(&painting.description)
    }

    pub fn description(mut self, text: &str) -> Self {
        self.description = Some(text.as_bytes().to_vec());
        self
    }

    pub fn external_id(mut self, id: &str) -> Self {
        self.external_id = Some(id.as_bytes().to_vec());
        self
    }

    /// The form as a request body: `image`, `description`, `external_id` parts, where set.
    pub fn into_multipart(self) -> reqwest::multipart::Form {
        let mut multipart = reqwest::multipart::Form::new();
        if let Some((bytes, file_name, mime)) = self.image {
            let mut part = reqwest::multipart::Part::bytes(bytes).file_name(file_name);
            if let Some(mime) = mime {
                part = part.mime_str(&mime).expect("a valid MIME type");
            }
            multipart = multipart.part("image", part);
        }
        if let Some(description) = self.description {
            multipart = multipart.part("description", reqwest::multipart::Part::bytes(description));
        }
        if let Some(external_id) = self.external_id {
            multipart = multipart.part("external_id", reqwest::multipart::Part::bytes(external_id));
        }
        multipart
    }
}

/// A running `easel-worker` process.
pub struct WorkerProcess {
    child: Child,
    /// Its health server's port.
    pub port: u16,
    log_path: PathBuf,
}

impl WorkerProcess {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the worker exited with {status}:\n{}", self.log_tail(40));
            }
            if let Ok(response) = client.get(self.url("/readyz")).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("the worker was not ready within {timeout:?}:\n{}", self.log_tail(40));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no chance to clean up.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM: the graceful way.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait()).await.ok().and_then(Result::ok)
    }

    /// The worker's Prometheus metrics.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics")).await.expect("GET /metrics").text().await.expect("metrics text")
    }

    /// The last `lines` of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        format!("{}:\n{}", self.log_path.display(), all[all.len().saturating_sub(lines)..].join("\n"))
    }
}

/// The `easel-worker` binary: `EASEL_WORKER_BIN`, or built now with cargo (a no-op when fresh).
pub fn worker_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("EASEL_WORKER_BIN") {
            return PathBuf::from(path);
        }
        let output = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-q", "-p", "easel-worker", "--bin", "easel-worker", "--message-format=json"])
            .current_dir(repo_root())
            .stderr(Stdio::inherit())
            .output()
            .expect("running cargo build -p easel-worker");
        assert!(output.status.success(), "cargo build -p easel-worker failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "easel-worker")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no easel-worker executable")
    })
    .clone()
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// RabbitMQ is shared by every test on the machine: tests hold this lock shared, and the test
/// that restarts the broker holds it exclusively.
pub struct BrokerLock {
    _file: std::fs::File,
}

impl BrokerLock {
    fn open() -> std::fs::File {
        let path = std::env::temp_dir().join("easel-tests-rabbitmq.lock");
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).expect("opening the broker lock")
    }

    pub fn shared() -> Self {
        let file = Self::open();
        file.lock_shared().expect("locking the broker (shared)");
        Self { _file: file }
    }

    pub fn exclusive() -> Self {
        let file = Self::open();
        file.lock().expect("locking the broker (exclusive)");
        Self { _file: file }
    }
}
