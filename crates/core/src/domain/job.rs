use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The message on the jobs queue: "assess this submission". Everything else the worker needs
/// (description, competition weights) it reads from Postgres when it claims the batch; the
/// image key rides along so the download can start as soon as the job arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub submission_id: Uuid,
    pub image_key: String,
}

impl JobMessage {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a uuid and a string always serialise")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
