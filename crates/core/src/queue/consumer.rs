use futures::StreamExt;
use lapin::acker::Acker;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};

use super::{PUBLISHED_AT_MS_HEADER, QueueError, connect, declare_topology, ready_messages};
use crate::configuration::RabbitMqSettings;
use crate::domain::JobMessage;

/// A consumer of the jobs queue with manual acks. It does not reconnect by itself: when
/// [`JobConsumer::next`] ends, the owner opens a new one (the broker has already put the
/// unacknowledged deliveries back in the queue).
pub struct JobConsumer {
    connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
    queue: String,
}

/// One job handed to this consumer; settle it with exactly one of ack, requeue or dead-letter.
#[derive(Debug)]
pub struct JobDelivery {
    /// The job, or why its payload could not be read (such a delivery can only be dead-lettered).
    pub job: Result<JobMessage, String>,
    /// How many times the broker delivered this job before (0 on the first delivery).
    pub previous_deliveries: u32,
    /// When it was published (milliseconds since the epoch), if the publisher said.
    pub published_at_ms: Option<u64>,
    /// Why the broker dead-lettered it (`rejected`, `delivery_limit`, …), on the dead-letter
    /// queue only.
    pub death_reason: Option<String>,
    acker: Acker,
}

impl JobConsumer {
    /// Connects, declares the topology and starts consuming with `prefetch` unacknowledged
    /// deliveries at most.
    pub async fn connect(settings: &RabbitMqSettings, name: &str, prefetch: u16) -> Result<Self, QueueError> {
        Self::consume(settings, &settings.queue, name, prefetch).await
    }

    /// As [`JobConsumer::connect`], on the dead-letter queue `<queue>.dead`.
    pub async fn connect_dead_letters(settings: &RabbitMqSettings, name: &str, prefetch: u16) -> Result<Self, QueueError> {
        Self::consume(settings, &settings.dead_letter_queue(), name, prefetch).await
    }

    async fn consume(settings: &RabbitMqSettings, queue: &str, name: &str, prefetch: u16) -> Result<Self, QueueError> {
        let connection = connect(settings, name).await?;
        let channel = connection.create_channel().await?;
        declare_topology(&channel, settings).await?;
        channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
        let consumer = channel.basic_consume(queue, name, BasicConsumeOptions::default(), FieldTable::default()).await?;
        Ok(Self { connection, channel, consumer, queue: queue.to_string() })
    }

    /// The next delivery; `None` once the consumer is cancelled or its connection is gone.
    pub async fn next(&mut self) -> Option<Result<JobDelivery, QueueError>> {
        match self.consumer.next().await? {
            Ok(delivery) => Some(Ok(JobDelivery::from(delivery))),
            Err(e) => Some(Err(e.into())),
        }
    }

    /// Asks the broker to stop sending; deliveries already sent still arrive through `next`.
    pub async fn cancel(&self) -> Result<(), QueueError> {
        self.channel.basic_cancel(self.consumer.tag().as_str(), BasicCancelOptions::default()).await?;
        Ok(())
    }

    /// Messages waiting in the queue it consumes.
    pub async fn queue_depth(&self) -> Result<u32, QueueError> {
        ready_messages(&self.connection, &self.queue).await
    }

    /// Closes the connection; unacknowledged deliveries go back to the queue.
    pub async fn close(&self) {
        let _ = self.connection.close(200, "closing").await;
    }
}

impl From<Delivery> for JobDelivery {
    fn from(delivery: Delivery) -> Self {
        let job = JobMessage::from_json(&delivery.data).map_err(|e| format!("unreadable job payload: {e}"));
        let header = |name: &str| delivery.properties.headers().as_ref().and_then(|headers| headers.inner().get(name).and_then(amqp_i64));
        let previous_deliveries = header("x-delivery-count")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(if delivery.redelivered { 1 } else { 0 });
        let published_at_ms = header(PUBLISHED_AT_MS_HEADER)
            .and_then(|ms| u64::try_from(ms).ok())
            .or_else(|| delivery.properties.timestamp().map(|s| s * 1000));
        let death_reason = delivery.properties.headers().as_ref().and_then(|headers| match headers.inner().get("x-first-death-reason") {
            Some(AMQPValue::LongString(reason)) => Some(reason.to_string()),
            Some(AMQPValue::ShortString(reason)) => Some(reason.to_string()),
            _ => None,
        });
        Self { job, previous_deliveries, published_at_ms, death_reason, acker: delivery.acker }
    }
}

fn amqp_i64(value: &AMQPValue) -> Option<i64> {
    let n: i64 = match *value {
        AMQPValue::ShortShortInt(n) => n.into(),
        AMQPValue::ShortShortUInt(n) => n.into(),
        AMQPValue::ShortInt(n) => n.into(),
        AMQPValue::ShortUInt(n) => n.into(),
        AMQPValue::LongInt(n) => n.into(),
        AMQPValue::LongUInt(n) => n.into(),
        AMQPValue::LongLongInt(n) => n,
        _ => return None,
    };
    Some(n)
}

impl JobDelivery {
    /// Done with: the broker forgets it.
    pub async fn ack(&self) -> Result<(), QueueError> {
        self.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// Hands it back for another try (counts towards the queue's delivery limit).
    pub async fn requeue(&self) -> Result<(), QueueError> {
        self.acker.nack(BasicNackOptions { requeue: true, multiple: false }).await?;
        Ok(())
    }

    /// Refuses it for good: the broker moves it to the dead-letter queue.
    pub async fn dead_letter(&self) -> Result<(), QueueError> {
        self.acker.nack(BasicNackOptions { requeue: false, multiple: false }).await?;
        Ok(())
    }
}
