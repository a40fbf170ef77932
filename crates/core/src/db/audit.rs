//! `audit_log`: who changed what, when, from what to what, and why — append-only (the table
//! refuses UPDATE, DELETE and TRUNCATE).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use crate::auth::KeyCaller;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    JurorCreated,
    RoundCreated,
    RoundClosed,
    RoundReopened,
    /// A juror's score of an entry, new or changed (through the API or an imported sheet).
    ScoreSet,
    OverrideSet,
    OverrideCleared,
    /// The model version a competition's reads default to, pinned or unpinned.
    ModelVersionPinned,
    /// A competition's submissions re-queued for a model version.
    Rescored,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::JurorCreated => "juror_created",
            Action::RoundCreated => "round_created",
            Action::RoundClosed => "round_closed",
            Action::RoundReopened => "round_reopened",
            Action::ScoreSet => "score_set",
            Action::OverrideSet => "override_set",
            Action::OverrideCleared => "override_cleared",
            Action::ModelVersionPinned => "model_version_pinned",
            Action::Rescored => "rescored",
        }
    }
}

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub competition_id: Uuid,
    /// The key that made the change.
    pub key_id: Option<Uuid>,
    pub key_name: Option<String>,
    pub action: Action,
    /// What it was done to: ids of the round, the submission, the juror.
    pub subject: Value,
    pub old: Option<Value>,
    pub new: Option<Value>,
    pub reason: Option<String>,
}

impl NewEntry {
    /// An entry for a change `key` made to `subject`.
    pub fn by(key: &KeyCaller, competition_id: Uuid, action: Action, subject: Value) -> Self {
        Self {
            competition_id,
            key_id: Some(key.id),
            key_name: Some(key.name.clone()),
            action,
            subject,
            old: None,
            new: None,
            reason: None,
        }
    }

    pub fn change(mut self, old: Option<impl Serialize>, new: Option<impl Serialize>) -> Self {
        self.old = old.and_then(|v| serde_json::to_value(v).ok());
        self.new = new.and_then(|v| serde_json::to_value(v).ok());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// Appends entries (in order).
pub async fn append(db: impl PgExecutor<'_>, entries: &[NewEntry]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO audit_log (competition_id, key_id, key_name, action, subject, old, new, reason) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::jsonb[], $8::text[])",
    )
    .bind(entries.iter().map(|e| e.competition_id).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.key_id).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.key_name.clone()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.action.as_str()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| Json(e.subject.clone())).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.old.clone().map(Json)).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.new.clone().map(Json)).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.reason.clone()).collect::<Vec<_>>())
    .execute(db)
    .await
    .map(|_| ())
}

/// A logged change.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub key_id: Option<Uuid>,
    pub key_name: Option<String>,
    pub action: String,
    #[schema(value_type = Object)]
    pub subject: Json<Value>,
    #[schema(value_type = Option<Object>)]
    pub old: Option<Json<Value>>,
    #[schema(value_type = Option<Object>)]
    pub new: Option<Json<Value>>,
    pub reason: Option<String>,
}

/// A page of a competition's log, oldest first, after entry `after`.
pub async fn page(db: impl PgExecutor<'_>, competition_id: Uuid, after: i64, limit: i64) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, at, key_id, key_name, action, subject, old, new, reason FROM audit_log \
         WHERE competition_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(competition_id)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}
