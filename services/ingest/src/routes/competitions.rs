use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use easel_core::auth::{self, Access, Caller};
use easel_core::db::audit::{self, Action, NewEntry};
use easel_core::db::competitions::{self, Competition};
use easel_core::db::{results, submissions, workers};
use easel_core::domain::{CompetitionSlug, CompetitionTitle, RubricWeights};
use easel_core::http::{ApiError, ApiJson, ApiPath, ErrorBody};
use easel_core::versions;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCompetition {
    /// 3–64 of `a-z`, `0-9`, `-`.
    #[schema(example = "spring-salon-2026")]
    pub slug: String,
    pub title: String,
    /// Leaderboard weights of the rubric scores (normalised to sum to 1); without them the
    /// leaderboard ranks by the overall score.
    pub rubric_weights: Option<RubricWeights>,
    /// The leaderboard and progress are readable without a key (never descriptions, critiques
    /// or files). Default false.
    #[serde(default)]
    pub public_results: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompetitionCreated {
    pub id: uuid::Uuid,
    pub slug: String,
    pub title: String,
    pub rubric_weights: Option<RubricWeights>,
    pub public_results: bool,
    /// The model version reads default to; null: the newest that scored the competition.
    pub model_version: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Competition> for CompetitionCreated {
    fn from(c: Competition) -> Self {
        Self {
            id: c.id,
            slug: c.slug,
            title: c.title,
            rubric_weights: c.rubric_weights.map(|w| w.0),
            public_results: c.public_results,
            model_version: c.model_version,
            created_at: c.created_at,
        }
    }
}

/// Creates a competition.
#[utoipa::path(
    post,
    path = "/v1/competitions",
    request_body = NewCompetition,
    responses(
        (status = 201, body = CompetitionCreated),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key is not `admin`", body = ErrorBody),
        (status = 409, description = "The slug is taken", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid slug, title or weights", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<NewCompetition>, ApiError>,
) -> Result<(StatusCode, Json<CompetitionCreated>), ApiError> {
    caller.require_admin()?;
    let ApiJson(body) = body?;
    let slug = CompetitionSlug::parse(&body.slug)?;
    let title = CompetitionTitle::parse(&body.title)?;
    let weights = body.rubric_weights.map(RubricWeights::parse).transpose()?;
    let competition = competitions::insert(&state.pool, &slug, &title, weights, body.public_results)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| {
            ApiError::new(StatusCode::CONFLICT, "competition.exists", format!("the slug {slug} is taken"))
        })?;
    Ok((StatusCode::CREATED, Json(competition.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompetitionChange {
    /// Pin the model version every read of the competition defaults to (it must have scored the
    /// competition); `null` unpins (reads default to the newest version that scored it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub model_version: Option<Option<String>>,
}

/// A field that is present, even as `null` (`Some(None)`), apart from one that is absent (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// Changes a competition: pins (or unpins) the model version its reads default to. Needs
/// `admin` or `competition:<slug>:manage`; the change is in the audit log.
#[utoipa::path(
    patch,
    path = "/v1/competitions/{slug}",
    params(("slug" = String, Path, description = "The competition")),
    request_body = CompetitionChange,
    responses(
        (status = 200, body = CompetitionCreated),
        (status = 400, description = "The body is not JSON, or a bad model version", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not manage this competition (`admin` or `competition:<slug>:manage`)", body = ErrorBody),
        (status = 404, description = "No such competition", body = ErrorBody),
        (status = 409, description = "The model version has not scored this competition", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Unknown or mistyped field", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn change(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    body: Result<ApiJson<CompetitionChange>, ApiError>,
) -> Result<Json<CompetitionCreated>, ApiError> {
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Manage, false).await?;
    let key = caller.key()?;
    let ApiJson(body) = body?;
    let Some(pin) = body.model_version else {
        return Ok(Json(competition.into()));
    };
    let pin = pin.as_deref().map(|v| versions::parse("model_version", v)).transpose()?;
    if let Some(version) = &pin
        && !results::has_primary_version(&state.pool, competition.id, version).await.map_err(ApiError::database)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "competition.model_version_unscored",
            format!("model version {version:?} has scored no submission of this competition (shadow results do not count)"),
        ));
    }
    let mut tx = state.pool.begin().await.map_err(ApiError::database)?;
    let before = competitions::pin_model_version(&mut *tx, competition.id, pin.as_deref()).await.map_err(ApiError::database)?;
    if before != pin {
        let entry = NewEntry::by(key, competition.id, Action::ModelVersionPinned, json!({ "competition": competition.slug }))
            .change(Some(json!({ "model_version": before })), Some(json!({ "model_version": pin })));
        audit::append(&mut *tx, &[entry]).await.map_err(ApiError::database)?;
    }
    tx.commit().await.map_err(ApiError::database)?;
    tracing::info!(competition = %competition.slug, from = ?before, to = ?pin, "model version pinned");
    Ok(Json(Competition { model_version: pin, ..competition }.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescoreRequest {
    /// The version to score with: it must be the one every worker seen in the last three
    /// minutes serves. Default: that version.
    pub model_version: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rescore {
    pub competition: String,
    /// The version the submissions are re-queued for.
    pub model_version: String,
    /// Submissions re-queued (their results of other versions stay).
    pub queued: u64,
    /// Submissions this version had already scored.
    pub already_scored: u64,
    /// Submissions already queued or being scored, left as they are (the workers score them
    /// with this version).
    pub in_flight: u64,
    /// The version reads default to, so that the leaderboard does not switch versions while
    /// the rescore runs: an unpinned competition is pinned to the version it showed before.
    pub pinned_model_version: Option<String>,
}

/// Re-queues every submission of the competition for the model version the workers now serve
/// (through the outbox, like an upload). Results are unique per submission and version: the old
/// ones stay, and `GET …/compare` shows what switching would change; `GET …/progress` counts per
/// version. Needs `admin`; it is in the audit log.
#[utoipa::path(
    post,
    path = "/v1/competitions/{slug}/rescore",
    params(("slug" = String, Path, description = "The competition")),
    request_body = RescoreRequest,
    responses(
        (status = 202, body = Rescore),
        (status = 400, description = "The body is not JSON, or a bad model version", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key is not `admin`", body = ErrorBody),
        (status = 404, description = "No such competition", body = ErrorBody),
        (status = 409, description = "No worker is serving, the workers serve several versions, or not the one named", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Unknown or mistyped field", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rescore(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    body: Result<ApiJson<RescoreRequest>, ApiError>,
) -> Result<(StatusCode, Json<Rescore>), ApiError> {
    // A key that holds nothing in the competition gets its 404; a manager's key, 403.
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Manage, false).await?;
    let key = caller.require_admin()?;
    let ApiJson(body) = body?;
    let asked = body.model_version.as_deref().map(|v| versions::parse("model_version", v)).transpose()?;
    let served = workers::served_versions(&state.pool).await.map_err(ApiError::database)?;
    let conflict = |code: &str, message: String| ApiError::new(StatusCode::CONFLICT, code, message);
    let version = match (served.as_slice(), asked) {
        ([], _) => return Err(conflict("rescore.no_workers", "no worker has reported in the last three minutes".into())),
        ([one], None) => one.model_version.clone(),
        ([one], Some(asked)) if one.model_version == asked => asked,
        ([one], Some(asked)) => {
            return Err(conflict(
                "rescore.version_not_served",
                format!("the workers serve {:?}, not {asked:?}", one.model_version),
            ));
        }
        (several, _) => {
            let list: Vec<String> = several.iter().map(|s| format!("{:?} ({} workers)", s.model_version, s.workers)).collect();
            return Err(conflict(
                "rescore.versions_mixed",
                format!("the workers serve several versions ({}): rescore once every worker serves one", list.join(", ")),
            ));
        }
    };

    let mut tx = state.pool.begin().await.map_err(ApiError::database)?;
    let mut entries = Vec::new();
    let mut pinned = competition.model_version.clone();
    if pinned.is_none()
        && let Some(shown) = results::latest_model_version(&mut *tx, competition.id).await.map_err(ApiError::database)?
        && shown != version
    {
        competitions::pin_model_version(&mut *tx, competition.id, Some(&shown)).await.map_err(ApiError::database)?;
        entries.push(
            NewEntry::by(key, competition.id, Action::ModelVersionPinned, json!({ "competition": competition.slug }))
                .change(Some(json!({ "model_version": null })), Some(json!({ "model_version": shown })))
                .reason(format!("pinned by the rescore for {version:?}, so reads stay on the version they showed")),
        );
        pinned = Some(shown);
    }
    let done = submissions::rescore(&mut tx, competition.id, &version).await.map_err(ApiError::database)?;
    entries.push(NewEntry::by(key, competition.id, Action::Rescored, json!({ "competition": competition.slug })).change(
        None::<()>,
        Some(json!({ "model_version": version, "queued": done.queued, "already_scored": done.already_scored, "in_flight": done.in_flight })),
    ));
    audit::append(&mut *tx, &entries).await.map_err(ApiError::database)?;
    tx.commit().await.map_err(ApiError::database)?;
    state.jobs_written.notify_one();
    tracing::info!(competition = %competition.slug, model_version = %version, queued = done.queued, "rescore queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(Rescore {
            competition: competition.slug,
            model_version: version,
            queued: done.queued,
            already_scored: done.already_scored,
            in_flight: done.in_flight,
            pinned_model_version: pinned,
        }),
    ))
}
