//! Easel's shared service parts: domain types, typed configuration, the S3 image store, the
//! RabbitMQ jobs queue, Postgres access, telemetry, metrics and the HTTP pieces every service
//! serves. Knows nothing of the model.

pub mod auth;
pub mod configuration;
pub mod db;
pub mod domain;
pub mod export;
pub mod http;
pub mod jury;
pub mod metrics;
pub mod queue;
pub mod retry;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod versions;

pub use configuration::{Service, Settings};
