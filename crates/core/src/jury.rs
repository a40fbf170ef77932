//! What the jury routes of both services share: who the juror is, which round is meant, and a
//! round's scores gathered for the statistics of `easel-agreement`.

use easel_agreement::round as analysis;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::{self, Access, Caller};
use crate::db::competitions::Competition;
use crate::db::juror_scores::{self, StoredScore};
use crate::db::jurors::{self, Juror};
use crate::db::rounds::{self, Round, RoundEntry};
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
