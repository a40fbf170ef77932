use std::time::{SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Mutex;

use super::{PUBLISHED_AT_MS_HEADER, QueueError, connect, declare_topology};
use crate::configuration::RabbitMqSettings;
use crate::domain::JobMessage;

/// Publishes jobs with publisher confirms over one lazily (re)opened connection. A failed
/// publish drops the connection; the next call opens a fresh one, so a restarted broker is
/// picked up without a restart of the service.
pub struct Publisher {
    settings: RabbitMqSettings,
    name: String,
    link: Mutex<Option<Link>>,
}

struct Link {
    connection: Connection,
    channel: Channel,
}

impl Publisher {
    pub fn new(settings: &RabbitMqSettings, name: &str) -> Self {
        Self { settings: settings.clone(), name: name.to_string(), link: Mutex::new(None) }
    }

    /// Publishes every job and waits until the broker has confirmed each one (persisted to the
    /// quorum queue); an error means some may not have been.
    pub async fn publish(&self, jobs: &[JobMessage]) -> Result<(), QueueError> {
        let mut link = self.link.lock().await;
        let result = self.publish_on(&mut link, jobs).await;
        if result.is_err() {
            close(link.take()).await;
        }
        result
    }

    async fn publish_on(&self, link: &mut Option<Link>, jobs: &[JobMessage]) -> Result<(), QueueError> {
        let channel = &self.open(link).await?.channel;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        // AMQP's timestamp is whole seconds; the header carries milliseconds for the queue-wait
        // metric.
        let mut headers = FieldTable::default();
        headers.insert(PUBLISHED_AT_MS_HEADER.into(), AMQPValue::LongLongInt(now.as_millis() as i64));
        let mut confirms = Vec::with_capacity(jobs.len());
        for job in jobs {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(job.submission_id.to_string().into())
                .with_timestamp(now.as_secs())
                .with_headers(headers.clone())
                .with_app_id(self.name.as_str().into());
            // `mandatory`: a message no queue takes comes back instead of vanishing.
            let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
            confirms.push(channel.basic_publish("", &self.settings.queue, options, &job.to_json(), properties).await?);
        }
        let timeout = self.settings.confirm_timeout();
        for confirm in confirms {
            let confirmation = tokio::time::timeout(timeout, confirm)
                .await
                .map_err(|_| QueueError::ConfirmTimeout(timeout))??;
            match confirmation {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(returned)) => {
                    return Err(QueueError::NotConfirmed(format!(
                        "returned as unroutable ({})",
                        returned.reply_text
                    )));
                }
                Confirmation::Nack(_) => return Err(QueueError::NotConfirmed("nacked by the broker".into())),
                Confirmation::NotRequested => {
                    return Err(QueueError::NotConfirmed("confirms are not enabled on the channel".into()));
                }
            }
        }
        Ok(())
    }

    async fn open<'a>(&self, link: &'a mut Option<Link>) -> Result<&'a Link, QueueError> {
        if link.as_ref().is_some_and(|l| !l.channel.status().connected()) {
            close(link.take()).await;
        }
        if link.is_none() {
            let connection = connect(&self.settings, &self.name).await?;
            let channel = connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            declare_topology(&channel, &self.settings).await?;
            *link = Some(Link { connection, channel });
        }
        link.as_ref().ok_or_else(|| QueueError::Connect("no connection".into()))
    }

    pub async fn close(&self) {
        close(self.link.lock().await.take()).await;
    }
}

async fn close(link: Option<Link>) {
    if let Some(link) = link {
        let _ = link.connection.close(200, "closing").await;
    }
}
