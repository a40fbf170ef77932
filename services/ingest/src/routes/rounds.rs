//! Rounds: an organiser opens a round over every entry, or over a shortlist of an earlier
//! round (the model's top N, or the panel's), and closes it when judging ends.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use easel_agreement::round::{self as analysis, Normalise};
use easel_core::auth::{self, Access, Caller};
use easel_core::db::audit::{self, Action, NewEntry};
use easel_core::db::rounds::{self, Round, Shortlist};
use easel_core::db::competitions::Competition;
use easel_core::domain::{Name, Scale, ValidationError};
use easel_core::http::{ApiError, ApiJson, ApiPath, ErrorBody};
use easel_core::jury;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::state::AppState;

/// The largest shortlist.
const MAX_TOP: i64 = 100_000;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ShortlistBy {
    /// The model's score.
    Model,
    /// The panel's mean score in the earlier round.
    Panel,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRound {
    /// 1–100 printable characters; unique in the competition.
    #[schema(example = "First round")]
    pub name: String,
    /// The scale's whole-number bounds (at most 1000 steps apart).
    #[schema(example = 1)]
    pub scale_min: i64,
    #[schema(example = 10)]
    pub scale_max: i64,
    /// Jurors see no entry id, artist's text or metadata, and no other score.
    pub blind: bool,
    /// Shortlist from this earlier round of the competition; without it the round holds every
    /// entry (but failed ones) there is now.
    pub shortlist_from: Option<Uuid>,
    /// With `shortlist_from`: rank by the model's score or the panel's mean.
    pub by: Option<ShortlistBy>,
    /// With `shortlist_from`: how many entries to keep (ties broken by submission id).
    pub top: Option<i64>,
    /// With `by: "panel"`: the raw panel mean (`none`, the default) or the mean of each
    /// juror's z-scores (`z`, which evens out harsh and lenient jurors).
    pub normalise: Option<Normalise>,
    /// With `by: "model"`: the model version to rank by; default the competition's pinned
    /// version, else the newest that scored it.
    pub model_version: Option<String>,
}

/// Opens a round of judging.
#[utoipa::path(
    post,
    path = "/v1/competitions/{slug}/rounds",
    params(("slug" = String, Path, description = "The competition")),
    request_body = NewRound,
    responses(
        (status = 201, body = Round),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not manage this competition (`admin` or `competition:<slug>:manage`)", body = ErrorBody),
        (status = 404, description = "No such competition", body = ErrorBody),
        (status = 409, description = "The competition has a round of this name", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid name, scale or shortlist", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    body: Result<ApiJson<NewRound>, ApiError>,
) -> Result<(StatusCode, Json<Round>), ApiError> {
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Manage, false).await?;
    let admin = caller.key()?;
    let ApiJson(body) = body?;
    let name = Name::parse("name", &body.name)?;
    let scale = Scale::parse(body.scale_min, body.scale_max)?;
    let (shortlist, entries) = match body.shortlist_from {
        None => {
            if body.by.is_some() || body.top.is_some() || body.normalise.is_some() || body.model_version.is_some() {
                return Err(ValidationError::new("shortlist_from", "`by`, `top`, `normalise` and `model_version` shape a shortlist: give `shortlist_from` too").into());
            }
            (None, rounds::all_entries(&state.pool, competition.id).await.map_err(ApiError::database)?)
        }
        Some(from) => {
            let (shortlist, entries) = shortlist(&state, &competition, from, &body).await?;
            (Some(shortlist), entries)
        }
    };

    let mut tx = state.pool.begin().await.map_err(ApiError::database)?;
    let round = rounds::insert(&mut tx, competition.id, &name, scale, body.blind, shortlist.as_ref(), &entries)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "round.exists", format!("the competition has a round named {:?}", name.as_str())))?;
    let entry = NewEntry::by(admin, competition.id, Action::RoundCreated, json!({ "round_id": round.id })).change(None::<()>, Some(&round));
    audit::append(&mut *tx, &[entry]).await.map_err(ApiError::database)?;
    tx.commit().await.map_err(ApiError::database)?;
    tracing::info!(round = %round.id, competition = %competition.slug, entries = round.entries, "round created");
    Ok((StatusCode::CREATED, Json(round)))
}

/// The entries a shortlist keeps.
async fn shortlist(state: &AppState, competition: &Competition, from: Uuid, body: &NewRound) -> Result<(Shortlist, Vec<Uuid>), ApiError> {
    let invalid = |field: &'static str, message: String| ApiError::from(ValidationError::new(field, message));
    let source = rounds::find(&state.pool, competition.id, from)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| invalid("shortlist_from", format!("the competition has no round {from}")))?;
    let by = body.by.ok_or_else(|| invalid("by", "a shortlist needs `by`: \"model\" or \"panel\"".into()))?;
    let top = body.top.ok_or_else(|| invalid("top", "a shortlist needs `top`".into()))?;
    if !(1..=MAX_TOP).contains(&top) {
        return Err(invalid("top", format!("must be 1 to {MAX_TOP}")));
    }
    let top = top as i32;
    match by {
        ShortlistBy::Model => {
            if body.normalise.is_some() {
                return Err(invalid("normalise", "only a panel shortlist is normalised".into()));
            }
            let version = easel_core::versions::resolve(&state.pool, competition, body.model_version.as_deref())
                .await?
                .ok_or_else(|| invalid("by", "the model has scored no entry of this competition yet".into()))?;
            let entries = rounds::top_by_model(&state.pool, source.id, &version, top).await.map_err(ApiError::database)?;
            if entries.is_empty() {
                return Err(invalid("by", format!("model version {version:?} scored no entry of round {from}")));
            }
            Ok((Shortlist { from, by: "model", top, model_version: Some(version) }, entries))
        }
        ShortlistBy::Panel => {
            if body.model_version.is_some() {
                return Err(invalid("model_version", "only a model shortlist takes a model version".into()));
            }
            let scores = jury::round_scores(&state.pool, &source, None).await.map_err(ApiError::database)?;
            let entries = analysis::panel_top(&scores.data, body.normalise.unwrap_or_default(), top as usize);
            if entries.is_empty() {
                return Err(invalid("by", format!("the panel scored no entry of round {from}")));
            }
            Ok((Shortlist { from, by: "panel", top, model_version: None }, entries))
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundChange {
    /// Close the round (it takes no more scores) or reopen it.
    pub closed: bool,
}

/// Closes or reopens a round.
#[utoipa::path(
    patch,
    path = "/v1/competitions/{slug}/rounds/{round}",
    params(("slug" = String, Path, description = "The competition"), ("round" = Uuid, Path, description = "The round")),
    request_body = RoundChange,
    responses(
        (status = 200, body = Round),
        (status = 400, description = "The body is not JSON, or the round id is not a UUID", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not manage this competition (`admin` or `competition:<slug>:manage`)", body = ErrorBody),
        (status = 404, description = "No such competition or round", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "The body is not `{\"closed\": true|false}`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn change(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<ApiPath<(String, Uuid)>, ApiError>,
    body: Result<ApiJson<RoundChange>, ApiError>,
) -> Result<Json<Round>, ApiError> {
    let ApiPath((slug, round_id)) = path?;
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Manage, false).await?;
    let admin = caller.key()?;
    let ApiJson(body) = body?;
    let mut tx = state.pool.begin().await.map_err(ApiError::database)?;
    let (before, after) = rounds::set_closed(&mut tx, competition.id, round_id, body.closed)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| ApiError::not_found("round.not_found", format!("there is no round {round_id} in this competition")))?;
    if before.closed_at.is_some() != after.closed_at.is_some() {
        let action = if body.closed { Action::RoundClosed } else { Action::RoundReopened };
        let entry = NewEntry::by(admin, competition.id, action, json!({ "round_id": round_id }))
            .change(Some(json!({ "closed_at": before.closed_at })), Some(json!({ "closed_at": after.closed_at })));
        audit::append(&mut *tx, &[entry]).await.map_err(ApiError::database)?;
    }
    tx.commit().await.map_err(ApiError::database)?;
    Ok(Json(after))
}
