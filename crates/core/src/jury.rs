//! What the jury routes of both services share: who the juror is, which round is meant, and a
//! round's scores gathered for the statistics of `easel-agreement`.

use axum::http::StatusCode;
use easel_agreement::round as analysis;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::{self, Access, Caller, KeyCaller};
use crate::db::audit::{self, Action, NewEntry};
use crate::db::competitions::Competition;
use crate::db::juror_scores::{self, ScoreWrite, StoredScore};
use crate::db::jurors::{self, Juror};
use crate::db::rounds::{self, Round, RoundEntry};
use crate::domain::JurorScore;
use crate::http::ApiError;

/// The competition and the juror whose `judge` key is calling: 401 without a key, 404 for a
/// competition the key holds nothing in, 403 for a key that is not a juror's.
pub async fn juror(pool: &PgPool, caller: &Caller, slug: &str) -> Result<(Competition, Juror), ApiError> {
    let (competition, _) = auth::competition(pool, caller, slug, Access::Judge, false).await?;
    let key = caller.key()?;
    let juror = jurors::find_by_key(pool, competition.id, key.id)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| auth::forbidden("this is for jurors: use the key made with POST /v1/competitions/{slug}/jurors"))?;
    Ok((competition, juror))
}

/// The round `id` of the competition, or 404.
pub async fn round(pool: &PgPool, competition: &Competition, id: Uuid) -> Result<Round, ApiError> {
    rounds::find(pool, competition.id, id)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| ApiError::not_found("round.not_found", format!("there is no round {id} in this competition")))
}

/// The 404 for an entry that is not in the round.
pub fn entry_not_in_round(submission_id: Uuid) -> ApiError {
    ApiError::not_found("entry.not_found", format!("the round holds no entry {submission_id}"))
}

/// Checks the round holds the entry, or 404.
pub async fn entry_in_round(pool: &PgPool, round: &Round, submission_id: Uuid) -> Result<(), ApiError> {
    if rounds::holds(pool, round.id, submission_id).await.map_err(ApiError::database)? {
        Ok(())
    } else {
        Err(entry_not_in_round(submission_id))
    }
}

/// The 409 for a score sent to a closed round.
pub fn round_closed() -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "round.closed", "the round is closed: it takes no scores")
}

/// Records `juror`'s score of an entry of an open round — the API's `PUT …/scores/{id}` and the
/// dashboard's scoring page both come here. A new score replaces the juror's earlier one, and a
/// change goes to the audit log in the same transaction; 409 once the round is closed (the
/// round's lock is held, so a score cannot slip in as the round closes: `rounds::lock_open`). The caller has checked the round
/// holds the entry.
pub async fn record_score(
    pool: &PgPool,
    key: &KeyCaller,
    competition: &Competition,
    juror: &Juror,
    round: &Round,
    submission_id: Uuid,
    score: JurorScore,
) -> Result<StoredScore, ApiError> {
    let mut tx = pool.begin().await.map_err(ApiError::database)?;
    if rounds::lock_open(&mut tx, round.id).await.map_err(ApiError::database)?.is_none() {
        return Err(round_closed());
    }
    let write = ScoreWrite { submission_id, juror_id: juror.id, score: score.clone() };
    let before = juror_scores::upsert(&mut tx, round.id, std::slice::from_ref(&write)).await.map_err(ApiError::database)?;
    let before = before.into_iter().next().flatten();
    if before.as_ref().map(|b| &b.score) != Some(&score) {
        let subject = json!({ "round_id": round.id, "submission_id": submission_id, "juror_id": juror.id, "juror": juror.name });
        let entry = NewEntry::by(key, competition.id, Action::ScoreSet, subject).change(before.map(|b| b.score), Some(&score));
        audit::append(&mut *tx, &[entry]).await.map_err(ApiError::database)?;
    }
    let stored = juror_scores::find(&mut *tx, round.id, submission_id, juror.id)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| ApiError::internal("a score just written is not there"))?;
    tx.commit().await.map_err(ApiError::database)?;
    Ok(stored)
}

/// A round's entries, jurors and scores, as stored and as the statistics take them.
#[derive(Debug, Clone)]
pub struct RoundScores {
    pub entries: Vec<RoundEntry>,
    pub jurors: Vec<Juror>,
    /// Every score, declared conflicts included.
    pub scores: Vec<StoredScore>,
    /// Conflicts left out.
    pub data: analysis::RoundData,
}

/// Gathers a round's scores, with the model's scores of `model_version`.
pub async fn round_scores(pool: &PgPool, round: &Round, model_version: Option<&str>) -> Result<RoundScores, sqlx::Error> {
    let entries = rounds::entries(pool, round.id, model_version).await?;
    let jurors = jurors::list(pool, round.competition_id).await?;
    let scores = juror_scores::for_round(pool, round.id).await?;
    let scale = round.scale();
    let data = analysis::RoundData {
        scale: analysis::Scale { min: i64::from(scale.min), max: i64::from(scale.max) },
        entries: entries.iter().map(|e| analysis::Entry { id: e.submission_id, model: e.model_score.map(f64::from) }).collect(),
        jurors: jurors.iter().map(|j| analysis::Juror { id: j.id, name: j.name.clone() }).collect(),
        scores: scores
            .iter()
            .filter(|s| !s.score.conflict)
            .filter_map(|s| s.score.score.map(|score| analysis::JurorScore { entry: s.submission_id, juror: s.juror_id, score }))
            .collect(),
    };
    Ok(RoundScores { entries, jurors, scores, data })
}
