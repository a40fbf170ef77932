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
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApplicationSettings {
    pub host: String,
    pub port: u16,
    pub shutdown_grace_seconds: u64,
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
    pub outbox_batch: i64,
    pub outbox_poll_ms: u64,
}

impl IngestSettings {
    /// What an uploaded image may cost to decode.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_bytes: self.max_image_bytes,
            max_side: self.max_side,
            max_pixels: self.max_pixels,
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
}

impl WorkerSettings {
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
        let settings: Settings =
            builder.build().and_then(|c| c.try_deserialize()).map_err(load_error)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigurationError> {
        let invalid = |key, message: &str| Err(ConfigurationError::Invalid { key, message: message.to_string() });
        self.database.connect_options()?;
        if self.worker.batch_size == 0 {
            return invalid("worker.batch_size", "must be at least 1");
        }
        if self.worker.max_attempts == 0 {
            return invalid("worker.max_attempts", "must be at least 1");
        }
        if self.worker.decode_concurrency == 0 {
            return invalid("worker.decode_concurrency", "must be at least 1");
        }
        if self.rabbitmq.queue.is_empty() {
            return invalid("rabbitmq.queue", "must not be empty");
        }
        if self.ingest.bulk_concurrency == 0 {
            return invalid("ingest.bulk_concurrency", "must be at least 1");
        }
        if self.ingest.outbox_batch < 1 {
            return invalid("ingest.outbox_batch", "must be at least 1");
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
