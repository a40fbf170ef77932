//! Easel's ingest service: creates competitions, takes submissions (one at a time or in bulk),
//! validates each image before anything is stored, stores it under its sha256 in S3, writes the
//! submission and its job in one transaction, and relays the jobs to RabbitMQ with publisher
//! confirms; re-enqueues submissions stuck past a deadline (the sweeper) and marks the
//! submissions of dead-lettered jobs failed.

pub mod archive;
pub mod dead_letters;
pub mod openapi;
pub mod orphans;
pub mod periodic;
pub mod relay;
pub mod routes;
pub mod spool;
pub mod staging;
pub mod sweeper;
pub mod startup;
pub mod state;
