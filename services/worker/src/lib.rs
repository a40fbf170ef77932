//! Easel's scoring worker. Jobs arrive from RabbitMQ (manual acks, a prefetch); each image is
//! fetched from S3 and decoded as soon as its job arrives, while the model works on the batch
//! before; a batch (up to `batch_size` jobs or `batch_timeout_ms`) goes through the model in one
//! call; its results are written in one transaction and only then acknowledged.
//!
//! ```text
//! intake ──batches──▶ assess ──settled batches──▶ record
//! (consume, fetch,     (claim, model)              (one transaction, then ack / dead-letter /
//!  decode in tasks)                                 requeue)
//! ```

pub mod assess;
pub mod drain;
pub mod heartbeat;
pub mod intake;
pub mod job;
pub mod model;
pub mod record;
pub mod startup;
