//! The jobs queue on RabbitMQ: a durable quorum queue with a delivery limit that dead-letters
//! to `<queue>.dead`. [`Publisher`] writes to it with publisher confirms; [`JobConsumer`] reads
//! it with manual acks and a prefetch.

mod consumer;
mod publisher;

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties};
use secrecy::ExposeSecret;

pub use consumer::{JobConsumer, JobDelivery};
pub use publisher::Publisher;

use crate::configuration::RabbitMqSettings;

/// Header with the publication time in milliseconds since the epoch.
pub(crate) const PUBLISHED_AT_MS_HEADER: &str = "x-easel-published-at-ms";

/// How long connecting to the broker may take before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot connect to RabbitMQ: {0}")]
    Connect(String),
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("RabbitMQ did not confirm the message: {0}")]
    NotConfirmed(String),
    #[error("RabbitMQ did not confirm within {0:?}")]
    ConfirmTimeout(Duration),
}

/// Opens a connection named after the service (RabbitMQ's management UI shows it).
pub(crate) async fn connect(settings: &RabbitMqSettings, name: &str) -> Result<Connection, QueueError> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
        .with_connection_name(name.into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(settings.url.expose_secret(), properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(QueueError::Connect(e.to_string())),
        Err(_) => Err(QueueError::Connect(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

/// Declares the dead-letter queue and the jobs queue (idempotent: same arguments every time).
pub(crate) async fn declare_topology(channel: &Channel, settings: &RabbitMqSettings) -> Result<(), QueueError> {
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(&settings.dead_letter_queue(), durable, quorum_arguments()).await?;

    let mut arguments = quorum_arguments();
    arguments.insert("x-delivery-limit".into(), AMQPValue::LongInt(settings.delivery_limit as i32));
    // The default exchange routes by queue name, so no dead-letter exchange needs declaring.
    arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(settings.dead_letter_queue().into()),
    );
    channel.queue_declare(&settings.queue, durable, arguments).await?;
    Ok(())
}

fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(ShortString::from("x-queue-type"), AMQPValue::LongString("quorum".into()));
    arguments
}

/// Messages ready in `queue` (not counting those delivered and unacknowledged).
pub(crate) async fn ready_messages(connection: &Connection, queue: &str) -> Result<u32, QueueError> {
    // A passive declare of a missing queue closes its channel, so it gets one of its own.
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let declared = channel.queue_declare(queue, passive, FieldTable::default()).await;
    let _ = channel.close(200, "done").await;
    Ok(declared?.message_count())
}
