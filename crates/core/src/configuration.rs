//! Typed settings, layered: `config/base.yaml`, then `config/{APP_ENVIRONMENT}.yaml`, then
//! environment variables `APP_<SECTION>__<KEY>` (`APP_DATABASE__URL`, `APP_WORKER__BATCH_SIZE`).
//! Secrets are [`SecretString`]s, so they never reach a log line.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

use easel_imaging::DecodeLimits;

/// Which of the three services is loading its settings (each has its own default port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ingest,
    Api,
    Worker,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Ingest => "easel-ingest",
            Service::Api => "easel-api",
            Service::Worker => "easel-worker",
        }
    }

    /// The settings sections this service never reads: they are taken from `base.yaml` alone,
    /// and not validated, when it loads its settings.
    pub fn unused_sections(self) -> &'static [&'static str] {
        match self {
            Service::Ingest => &["worker", "dashboard"],
            Service::Api => &["rabbitmq", "ingest", "worker"],
            Service::Worker => &["dashboard"],
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Service::Ingest => 8080,
            Service::Api => 8081,
            Service::Worker => 8082,
        }
    }
}

/// `APP_ENVIRONMENT`: which environment file is layered over `base.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Local,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::Production => "production",
        }
    }
}

impl FromStr for Environment {
    type Err = ConfigurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_lowercase().as_str() {
            "local" => Ok(Self::Local),
            "production" => Ok(Self::Production),
            other => Err(ConfigurationError::Environment(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigurationError {
    #[error("APP_ENVIRONMENT is {0:?}; use `local` or `production`")]
    Environment(String),
    #[error("cannot read the configuration in {dir}: {source}")]
    Load { dir: PathBuf, source: config::ConfigError },
    #[error("invalid setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub application: ApplicationSettings,
    pub telemetry: TelemetrySettings,
    pub database: DatabaseSettings,
    pub rabbitmq: RabbitMqSettings,
    pub s3: S3Settings,
    pub ingest: IngestSettings,
    pub worker: WorkerSettings,
    pub dashboard: DashboardSettings,
}

/// `dashboard`: the api's pages for people (sign-in sessions, the images it serves).
#[derive(Debug, Clone, Deserialize)]
pub struct DashboardSettings {
    /// How long a sign-in lasts; the key's own expiry or revocation ends it sooner.
    pub session_hours: u64,
    /// Marks the session cookie `Secure` (HTTPS only): on behind TLS, off for plain-HTTP
    /// loopback development (a browser would not send a `Secure` cookie to http://127.0.0.1).
    pub secure_cookies: bool,
    /// Thumbnails and previews the api reads from the bucket at once, over all requests.
    pub image_reads: usize,
}

impl DashboardSettings {
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_hours.saturating_mul(3600))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApplicationSettings {
    pub host: String,
    pub port: u16,
    pub shutdown_grace_seconds: u64,
    pub rate_limit: crate::auth::RateLimit,
    /// Time limits on each request (slowloris and stuck clients).
    #[serde(flatten)]
    pub limits: crate::server::ServerLimits,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/database`; a secret because it may hold a password.
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

impl DatabaseSettings {
    pub fn connect_options(&self) -> Result<PgConnectOptions, ConfigurationError> {
        PgConnectOptions::from_str(self.url.expose_secret())
            .map_err(|e| ConfigurationError::Invalid { key: "database.url", message: e.to_string() })
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RabbitMqSettings {
    /// `amqp://user:password@host:port/vhost`.
    pub url: SecretString,
    /// The jobs queue; its dead-letter queue is `<queue>.dead`.
    pub queue: String,
    pub delivery_limit: u32,
    /// Unacknowledged deliveries per consumer; 0 means three worker batches.
    pub prefetch: u16,
    pub confirm_timeout_ms: u64,
}

impl RabbitMqSettings {
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }

    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.confirm_timeout_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct S3Settings {
    /// Unset uses AWS's own endpoint for `region`.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key_id: SecretString,
    pub secret_access_key: SecretString,
    pub force_path_style: bool,
    pub create_bucket: bool,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IngestSettings {
    pub max_image_bytes: usize,
    pub max_side: u32,
    pub max_pixels: u64,
    pub max_description_bytes: usize,
    pub max_external_id_bytes: usize,
    pub max_bulk_bytes: usize,
    pub max_bulk_entries: usize,
    pub bulk_concurrency: usize,
    /// Images this pod decodes at once, over all requests: with the limits above, each decode
    /// may hold `DecodeLimits::peak_bytes` (docs/DEPLOY.md sizes the pod's memory from it).
    pub decode_concurrency: usize,
    /// Bulk requests this pod serves at once; more get 503 with Retry-After.
    pub bulk_requests: usize,
    pub outbox_batch: i64,
    pub outbox_poll_ms: u64,
    /// How often the sweeper looks for submissions stuck in `queued` or `processing`.
    pub sweep_interval_seconds: u64,
    /// How long a submission may sit in `queued` or `processing` (since its last change)
    /// before the sweeper writes its job again.
    pub stuck_after_seconds: u64,
    /// Whether this instance consumes `<queue>.dead`, marking each dead-lettered job's
    /// submission failed (off: the dead letters stay in the queue for a person to read).
    pub consume_dead_letters: bool,
    /// How often the orphan sweep lists the bucket for images no submission refers to.
    pub orphan_sweep_interval_seconds: u64,
    /// How old (since last written) an unreferenced image must be before it is deleted.
    pub orphan_after_seconds: u64,
}

impl IngestSettings {
    /// The largest bulk manifest worth reading: a header line and `max_bulk_entries` lines,
    /// each of which may escape its text (JSON's `\uXXXX` is six bytes for one).
    pub fn max_manifest_bytes(&self) -> usize {
        let line = 6 * (self.max_description_bytes + self.max_external_id_bytes) + 4096;
        (self.max_bulk_entries + 1).saturating_mul(line).min(self.max_bulk_bytes)
    }

    /// The memory an ingest pod may hold for uploads at once, in the worst case: every decode
    /// slot at its peak (an image is in memory only inside one; uploads wait on disk), and
    /// every bulk request with its manifest.
    pub fn worst_case_upload_bytes(&self) -> u64 {
        let decodes = self.decode_concurrency as u64 * self.decode_limits().peak_bytes();
        let manifests = self.bulk_requests as u64 * self.max_manifest_bytes() as u64;
        decodes + manifests
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_seconds)
    }

    pub fn stuck_after(&self) -> Duration {
        Duration::from_secs(self.stuck_after_seconds)
    }

    /// What an uploaded image may cost to decode.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_bytes: self.max_image_bytes,
            max_side: self.max_side,
            max_pixels: self.max_pixels,
            max_alloc: DecodeLimits::decoder_alloc(self.max_pixels),
            ..DecodeLimits::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub model_dir: PathBuf,
    pub device: ComputeDevice,
    pub dtype: ComputeDtype,
    pub batch_size: usize,
    pub batch_timeout_ms: u64,
    pub max_batch_seconds: u64,
    pub max_new_tokens: Option<usize>,
    pub max_attempts: u32,
    pub decode_concurrency: usize,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub retry_budget_seconds: u64,
    /// The shared secret `POST /drain` must present (`Authorization: Bearer`); unset or empty,
    /// `/drain` refuses every request.
    pub drain_token: Option<SecretString>,
    /// How long a drained worker waits for SIGTERM before `/healthz` fails, so that Kubernetes
    /// restarts a pod that was drained and then forgotten.
    pub drain_deadline_seconds: u64,
    /// Faults the worker makes on purpose, for tests of its failure handling; all off by
    /// default, and refused in production.
    #[serde(default)]
    pub fault_injection: FaultInjection,
    /// A second checkpoint run on a share of the jobs beside the served one; its results are
    /// stored under its own version and never shown as a competition's (`worker.shadow`).
    #[serde(default)]
    pub shadow: Option<ShadowSettings>,
}

/// `worker.shadow`: a candidate checkpoint tried on live traffic without being served.
#[derive(Debug, Clone, Deserialize)]
pub struct ShadowSettings {
    /// An Easel checkpoint whose image preprocessing is the served checkpoint's.
    pub model_dir: PathBuf,
    /// The share of jobs it also scores, 0 < share ≤ 1; which ones is decided by the submission
    /// id, so a redelivered job gets the same answer.
    pub share: f64,
}

/// `worker.fault_injection`: failures of the model call, triggered by a painting's description.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FaultInjection {
    /// A model call with a painting whose description contains this text panics.
    pub model_panic_on: Option<String>,
    /// A model call with a painting whose description contains this text returns an error.
    pub model_error_on: Option<String>,
}

impl FaultInjection {
    pub fn is_on(&self) -> bool {
        self.model_panic_on.as_deref().is_some_and(|t| !t.is_empty()) || self.model_error_on.as_deref().is_some_and(|t| !t.is_empty())
    }
}

impl WorkerSettings {
    /// The drain token, if one is set (an empty `APP_WORKER__DRAIN_TOKEN` counts as unset).
    pub fn drain_token(&self) -> Option<&SecretString> {
        self.drain_token.as_ref().filter(|t| !t.expose_secret().is_empty())
    }

    pub fn drain_deadline(&self) -> Duration {
        Duration::from_secs(self.drain_deadline_seconds)
    }

    pub fn batch_timeout(&self) -> Duration {
        Duration::from_millis(self.batch_timeout_ms)
    }

    pub fn max_batch_time(&self) -> Duration {
        Duration::from_secs(self.max_batch_seconds)
    }

    pub fn retry_policy(&self) -> crate::retry::Backoff {
        crate::retry::Backoff::new(
            Duration::from_millis(self.retry_initial_ms),
            Duration::from_millis(self.retry_max_ms),
            Duration::from_secs(self.retry_budget_seconds),
        )
    }
}

/// Where the worker runs the model: `cpu`, `cuda` (device 0) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeDevice {
    Cpu,
    Cuda(usize),
}

impl FromStr for ComputeDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device {other:?}: use cpu, cuda or cuda:N")),
        }
    }
}

impl<'de> Deserialize<'de> for ComputeDevice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The model's weight type on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDtype {
    F32,
    Bf16,
}

impl Settings {
    /// Loads the settings of `service` from `APP_CONFIG_DIR` (default `./config`), the
    /// environment file named by `APP_ENVIRONMENT` (default `local`) and `APP_*` variables.
    pub fn load(service: Service) -> Result<Self, ConfigurationError> {
        let dir = std::env::var_os("APP_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("config"));
        Self::load_from(service, &dir)
    }

    /// As [`Settings::load`], with the files in `dir`.
    pub fn load_from(service: Service, dir: &Path) -> Result<Self, ConfigurationError> {
        let environment: Environment =
            std::env::var("APP_ENVIRONMENT").unwrap_or_else(|_| "local".into()).parse()?;
        Self::load_layers(service, dir, environment, true)
    }

    /// Loads only the files in `dir`, without environment variables.
    pub fn load_files(service: Service, dir: &Path, environment: Environment) -> Result<Self, ConfigurationError> {
        Self::load_layers(service, dir, environment, false)
    }

    fn load_layers(
        service: Service,
        dir: &Path,
        environment: Environment,
        with_env: bool,
    ) -> Result<Self, ConfigurationError> {
        let load_error = |source| ConfigurationError::Load { dir: dir.to_path_buf(), source };
        let mut builder = config::Config::builder()
            .set_default("application.port", service.default_port())
            .map_err(load_error)?
            .add_source(config::File::from(dir.join("base.yaml")).required(true))
            .add_source(config::File::from(dir.join(format!("{}.yaml", environment.as_str()))).required(false));
        if with_env {
            builder = builder.add_source(
                config::Environment::with_prefix("APP")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true),
            );
        }
        let layered = builder.build().map_err(load_error)?;
        // A section this service does not use comes from base.yaml alone, so that a bad
        // `worker.*` value (or one of the wrong type) cannot stop the api.
        let settings: Settings = if service.unused_sections().is_empty() {
            layered.try_deserialize().map_err(load_error)?
        } else {
            let base = config::Config::builder()
                .add_source(config::File::from(dir.join("base.yaml")).required(true))
                .build()
                .map_err(load_error)?;
            let mut own = config::Config::builder().add_source(layered);
            for section in service.unused_sections() {
                let defaults = base.get::<config::Value>(section).map_err(load_error)?;
                own = own.set_override(*section, defaults).map_err(load_error)?;
            }
            own.build().and_then(|c| c.try_deserialize()).map_err(load_error)?
        };
        settings.validate(service, environment)?;
        Ok(settings)
    }

    fn validate(&self, service: Service, environment: Environment) -> Result<(), ConfigurationError> {
        let invalid = |key, message: &str| Err(ConfigurationError::Invalid { key, message: message.to_string() });
        self.database.connect_options()?;
        let uses = |section: &str| !service.unused_sections().contains(&section);
        if uses("rabbitmq") && self.rabbitmq.queue.is_empty() {
            return invalid("rabbitmq.queue", "must not be empty");
        }
        if uses("worker") {
            for (key, value) in [
                ("worker.batch_size", self.worker.batch_size as u64),
                ("worker.max_attempts", u64::from(self.worker.max_attempts)),
                ("worker.decode_concurrency", self.worker.decode_concurrency as u64),
                ("worker.drain_deadline_seconds", self.worker.drain_deadline_seconds),
            ] {
                if value == 0 {
                    return invalid(key, "must be at least 1");
                }
            }
            if let Some(shadow) = &self.worker.shadow
                && !(shadow.share > 0.0 && shadow.share <= 1.0)
            {
                return invalid("worker.shadow.share", "must be above 0 and at most 1");
            }
        }
        if uses("ingest") {
            for (key, value) in [
                ("ingest.decode_concurrency", self.ingest.decode_concurrency as u64),
                ("ingest.bulk_requests", self.ingest.bulk_requests as u64),
                ("ingest.bulk_concurrency", self.ingest.bulk_concurrency as u64),
                ("ingest.outbox_batch", self.ingest.outbox_batch.max(0) as u64),
                ("ingest.sweep_interval_seconds", self.ingest.sweep_interval_seconds),
                ("ingest.orphan_sweep_interval_seconds", self.ingest.orphan_sweep_interval_seconds),
                ("ingest.stuck_after_seconds", self.ingest.stuck_after_seconds),
            ] {
                if value == 0 {
                    return invalid(key, "must be at least 1");
                }
            }
        }
        if uses("dashboard") {
            for (key, value) in [("dashboard.session_hours", self.dashboard.session_hours), ("dashboard.image_reads", self.dashboard.image_reads as u64)] {
                if value == 0 {
                    return invalid(key, "must be at least 1");
                }
            }
        }
        if environment == Environment::Production {
            self.refuse_sample_credentials(service)?;
        }
        Ok(())
    }

    /// Production must not run on the credentials the config files ship for loopback
    /// development. Each service is checked for what it connects to: the api has no queue, so
    /// its sample value in `base.yaml` is harmless there.
    fn refuse_sample_credentials(&self, service: Service) -> Result<(), ConfigurationError> {
        let refuse = |key, message: &str| Err(ConfigurationError::Invalid { key, message: format!("{message} (APP_ENVIRONMENT=production)") });
        if url_password(self.database.url.expose_secret()).is_empty() {
            return refuse("database.url", "has no password: set APP_DATABASE__URL to the service's own role");
        }
        if service != Service::Api {
            // Parsed as lapin parses it: a URL without a password connects with `guest`.
            let amqp = lapin::uri::AMQPUri::from_str(self.rabbitmq.url.expose_secret())
                .map_err(|e| ConfigurationError::Invalid { key: "rabbitmq.url", message: e })?;
            let user = &amqp.authority.userinfo;
            if user.password.is_empty() || user.password == "guest" {
                return refuse("rabbitmq.url", "uses RabbitMQ's default credentials (guest, or no password): set APP_RABBITMQ__URL");
            }
        }
        let secret = self.s3.secret_access_key.expose_secret();
        if secret.is_empty() || secret == SAMPLE_S3_SECRET_ACCESS_KEY {
            return refuse("s3.secret_access_key", "is the sample key of config/base.yaml: set APP_S3__SECRET_ACCESS_KEY");
        }
        if service == Service::Worker && self.worker.fault_injection.is_on() {
            return refuse("worker.fault_injection", "is for tests only: unset it");
        }
        if service == Service::Worker
            && let Some(token) = self.worker.drain_token()
        {
            let token = token.expose_secret();
            if token == SAMPLE_DRAIN_TOKEN || token.chars().count() < MIN_DRAIN_TOKEN_CHARS {
                return refuse(
                    "worker.drain_token",
                    &format!("is the sample token of config/local.yaml or shorter than {MIN_DRAIN_TOKEN_CHARS} characters"),
                );
            }
        }
        Ok(())
    }

    /// Unacknowledged deliveries a worker holds: enough for the batch in the model, the one
    /// being fetched and decoded, and the one filling up.
    pub fn prefetch(&self) -> u16 {
        match self.rabbitmq.prefetch {
            0 => u16::try_from(self.worker.batch_size.saturating_mul(3)).unwrap_or(u16::MAX),
            n => n,
        }
    }
}

/// The S3 secret that `config/base.yaml` ships for the local SeaweedFS; production refuses it.
const SAMPLE_S3_SECRET_ACCESS_KEY: &str = "easel-secret-key";
/// The drain token that `config/local.yaml` ships; production refuses it.
const SAMPLE_DRAIN_TOKEN: &str = "local-drain-token";
const MIN_DRAIN_TOKEN_CHARS: usize = 16;

/// The password a connection URL carries, in `scheme://user:password@host/…` or in a
/// `password=` query parameter (libpq and sqlx read both); empty when it has none.
fn url_password(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = before_query.split('/').next().unwrap_or_default();
    let in_userinfo = authority.rsplit_once('@').and_then(|(userinfo, _)| userinfo.split_once(':')).map(|(_, p)| p);
    let in_query = query.split('&').find_map(|pair| pair.strip_prefix("password="));
    in_userinfo.filter(|p| !p.is_empty()).or(in_query).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_config() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
    }

    /// The ingest pod's memory limit in deploy/k8s covers the worst case of the configured
    /// upload limits, with 256 MiB left for the process itself.
    #[test]
    fn the_ingest_pods_memory_holds_its_worst_case_uploads() {
        let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s/base/ingest.yaml")).unwrap();
        let limits = manifest.split("limits:").nth(1).expect("a resources.limits block");
        let memory = limits.lines().find_map(|l| l.trim().strip_prefix("memory:")).expect("a memory limit").trim();
        let mib: u64 = memory.strip_suffix("Mi").map(|m| m.parse().unwrap()).or_else(|| memory.strip_suffix("Gi").map(|g| g.parse::<u64>().unwrap() * 1024)).expect("Mi or Gi");
        // production.yaml sets no `ingest` limits of its own: base.yaml's are the production ones.
        let production = std::fs::read_to_string(repo_config().join("production.yaml")).unwrap();
        assert!(!production.lines().any(|l| l.starts_with("ingest:")), "check production.yaml's ingest limits here too");
        let settings = Settings::load_files(Service::Ingest, &repo_config(), Environment::Local).unwrap();
        let needed = settings.ingest.worst_case_upload_bytes() + 256 * 1024 * 1024;
        assert!(needed <= mib * 1024 * 1024, "uploads may hold {} MiB, the pod has {mib} MiB", needed >> 20);
    }

    /// A config folder holding the repository's `base.yaml` and `local.yaml`, and a
    /// `production.yaml` with `production` as its text.
    struct ConfigDir(PathBuf);

    impl ConfigDir {
        fn new(production: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("easel-config-test-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            for file in ["base.yaml", "local.yaml"] {
                std::fs::copy(repo_config().join(file), dir.join(file)).unwrap();
            }
            std::fs::write(dir.join("production.yaml"), production).unwrap();
            Self(dir)
        }

        fn load(&self, service: Service, environment: Environment) -> Result<Settings, ConfigurationError> {
            Settings::load_files(service, &self.0, environment)
        }
    }

    impl Drop for ConfigDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A `production.yaml` with credentials of its own for everything; `replace` swaps whole
    /// sections (`("s3", "  secret_access_key: …")`).
    fn production(replace: &[(&str, &str)]) -> ConfigDir {
        let mut sections = vec![
            ("database", "  url: postgres://easel:s3cret@db.example:5432/easel"),
            ("rabbitmq", "  url: amqps://easel:s3cret@mq.example:5671/easel"),
            ("s3", "  access_key_id: AKIAEXAMPLE\n  secret_access_key: a-real-secret-key"),
            ("worker", "  drain_token: a-long-random-drain-token"),
        ];
        for &(name, body) in replace {
            sections.retain(|(n, _)| *n != name);
            sections.push((name, body));
        }
        ConfigDir::new(&sections.iter().map(|(name, body)| format!("{name}:\n{body}\n")).collect::<String>())
    }

    fn refused_key(result: Result<Settings, ConfigurationError>) -> &'static str {
        match result {
            Err(ConfigurationError::Invalid { key, .. }) => key,
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn production_accepts_its_own_credentials() {
        let dir = production(&[]);
        for service in [Service::Ingest, Service::Api, Service::Worker] {
            dir.load(service, Environment::Production).unwrap();
        }
    }

    #[test]
    fn production_refuses_the_shipped_files_as_they_are() {
        let dir = ConfigDir::new("");
        assert_eq!(refused_key(dir.load(Service::Worker, Environment::Production)), "database.url");
        // The same files are fine for local development.
        dir.load(Service::Worker, Environment::Local).unwrap();
    }

    #[test]
    fn production_refuses_a_database_url_without_a_password() {
        for url in ["postgres://postgres@127.0.0.1:5432/easel", "postgres://easel:@db/easel", "postgres://db.example/easel"] {
            let dir = production(&[("database", &format!("  url: {url}"))]);
            assert_eq!(refused_key(dir.load(Service::Api, Environment::Production)), "database.url", "{url}");
        }
        let dir = production(&[("database", "  url: postgres://easel@db.example/easel?sslmode=require&password=s3cret")]);
        dir.load(Service::Api, Environment::Production).unwrap();
    }

    #[test]
    fn production_refuses_rabbitmq_default_credentials() {
        for url in ["amqp://guest:guest@127.0.0.1:5672/%2f", "amqp://mq.example:5672/%2f", "amqp://easel@mq.example/%2f", "amqp://easel:@mq.example/%2f"] {
            let dir = production(&[("rabbitmq", &format!("  url: {url}"))]);
            assert_eq!(refused_key(dir.load(Service::Ingest, Environment::Production)), "rabbitmq.url", "{url}");
            assert_eq!(refused_key(dir.load(Service::Worker, Environment::Production)), "rabbitmq.url", "{url}");
            // The api never connects to the broker.
            dir.load(Service::Api, Environment::Production).unwrap();
        }
    }

    #[test]
    fn production_refuses_the_sample_s3_keys() {
        let sample = ConfigDir::new("");
        let base = sample.load(Service::Ingest, Environment::Local).unwrap();
        assert_eq!(base.s3.secret_access_key.expose_secret(), SAMPLE_S3_SECRET_ACCESS_KEY, "the constant follows base.yaml");
        let dir = production(&[("s3", &format!("  access_key_id: easel\n  secret_access_key: {SAMPLE_S3_SECRET_ACCESS_KEY}"))]);
        assert_eq!(refused_key(dir.load(Service::Ingest, Environment::Production)), "s3.secret_access_key");
        assert_eq!(refused_key(dir.load(Service::Worker, Environment::Production)), "s3.secret_access_key");
        // The api reads the dashboard's thumbnails from the bucket.
        assert_eq!(refused_key(dir.load(Service::Api, Environment::Production)), "s3.secret_access_key");
    }

    #[test]
    fn the_dashboard_settings_are_the_apis_alone() {
        let dir = production(&[("dashboard", "  session_hours: 0")]);
        assert_eq!(refused_key(dir.load(Service::Api, Environment::Production)), "dashboard.session_hours");
        dir.load(Service::Ingest, Environment::Production).unwrap();
        let file = config::Config::builder().add_source(config::File::from(repo_config().join("production.yaml"))).build().unwrap();
        assert_eq!(file.get_bool("dashboard.secure_cookies").ok(), Some(true), "production.yaml marks the session cookie Secure");
        let local = ConfigDir::new("").load(Service::Api, Environment::Local).unwrap();
        assert!(!local.dashboard.secure_cookies);
    }

    #[test]
    fn production_refuses_the_sample_or_a_short_drain_token() {
        let local = ConfigDir::new("").load(Service::Worker, Environment::Local).unwrap();
        let shipped = local.worker.drain_token().expect("local.yaml sets a drain token");
        assert_eq!(shipped.expose_secret(), SAMPLE_DRAIN_TOKEN, "the constant follows local.yaml");
        for token in [SAMPLE_DRAIN_TOKEN, "short"] {
            let dir = production(&[("worker", &format!("  drain_token: {token}"))]);
            assert_eq!(refused_key(dir.load(Service::Worker, Environment::Production)), "worker.drain_token");
            dir.load(Service::Ingest, Environment::Production).unwrap();
        }
        // No token at all is allowed: /drain then refuses every request.
        let dir = production(&[("worker", "  max_attempts: 5")]);
        assert!(dir.load(Service::Worker, Environment::Production).unwrap().worker.drain_token().is_none());
    }

    #[test]
    fn production_yaml_holds_no_drain_token() {
        // It comes from a Secret (APP_WORKER__DRAIN_TOKEN), never from a file in the image.
        let file = config::Config::builder().add_source(config::File::from(repo_config().join("production.yaml"))).build().unwrap();
        assert!(file.get_string("worker.drain_token").is_err());
    }

    #[test]
    fn an_empty_drain_token_counts_as_unset_and_a_zero_deadline_is_refused() {
        let dir = production(&[("worker", "  drain_token: \"\"")]);
        assert!(dir.load(Service::Worker, Environment::Production).unwrap().worker.drain_token().is_none());
        let dir = production(&[("worker", "  drain_deadline_seconds: 0")]);
        assert_eq!(refused_key(dir.load(Service::Worker, Environment::Production)), "worker.drain_deadline_seconds");
    }

    /// Each service loads and checks only its own sections: a bad worker value, even of the
    /// wrong type, stops the worker and neither ingest nor the api; a bad ingest value stops
    /// ingest (and the worker, which applies ingest's image limits), not the api.
    #[test]
    fn a_bad_value_stops_only_the_services_that_read_it() {
        let token = "  drain_token: a-long-random-drain-token\n";
        for worker in ["  batch_size: 0", "  batch_size: many", "  device: quantum"] {
            let dir = production(&[("worker", &format!("{token}{worker}"))]);
            assert!(dir.load(Service::Worker, Environment::Production).is_err(), "{worker}");
            let api = dir.load(Service::Api, Environment::Production).unwrap_or_else(|e| panic!("api with {worker}: {e}"));
            assert_eq!(api.worker.batch_size, 8, "the api sees base.yaml's worker section");
            dir.load(Service::Ingest, Environment::Production).unwrap_or_else(|e| panic!("ingest with {worker}: {e}"));
        }
        let dir = production(&[("ingest", "  bulk_requests: 0")]);
        assert_eq!(refused_key(dir.load(Service::Ingest, Environment::Production)), "ingest.bulk_requests");
        dir.load(Service::Api, Environment::Production).unwrap();
    }

    #[test]
    fn production_refuses_fault_injection() {
        let dir = production(&[("worker", "  drain_token: a-long-random-drain-token\n  fault_injection:\n    model_panic_on: boom")]);
        assert_eq!(refused_key(dir.load(Service::Worker, Environment::Production)), "worker.fault_injection");
        let local = ConfigDir::new("").load(Service::Worker, Environment::Local).unwrap();
        assert!(!local.worker.fault_injection.is_on(), "off unless a test turns it on");
    }

    #[test]
    fn url_password_reads_userinfo_and_query() {
        assert_eq!(url_password("postgres://u:p@h:5432/d"), "p");
        assert_eq!(url_password("postgres://u:p%40x@h/d"), "p%40x");
        assert_eq!(url_password("postgres://u@h/d?password=q&sslmode=require"), "q");
        assert_eq!(url_password("postgres://u@h/d"), "");
        assert_eq!(url_password("postgres://h/d"), "");
        assert_eq!(url_password("postgres://u:@h/d"), "");
    }
}
