//! How well the model agrees with a round's panel, and the jurors with each other; for a round
//! shortlisted by the model, how much of the panel's own top it kept.

use axum::Json;
use axum::extract::State;
use easel_agreement::round::{self as analysis, Agreement, AgreementOptions, Normalise};
use easel_core::auth::Caller;
use easel_core::db::competitions::Competition;
use easel_core::db::rounds::Round;
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use easel_core::jury;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::readable_round;
use crate::routes::model_version;
use crate::state::AppState;

/// Bootstrap resamples behind each 95 % interval.
const RESAMPLES: usize = 2000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AgreementParams {
    /// The panel value the model is compared with: `none` (default), the raw panel mean; `z`,
    /// the mean of each juror's z-scores mapped back onto the round's scale.
    #[param(value_type = Option<String>)]
    pub normalise: Option<Normalise>,
    /// An entry is a disagreement when its model and panel z-scores differ by more than this
    /// (0 < threshold ≤ 10; default 1.5).
    pub threshold: Option<f64>,
    /// The model's scores of this version; default the competition's pinned version, else the
    /// newest that scored it.
    pub model_version: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgreementView {
    pub round_id: Uuid,
    pub model_version: Option<String>,
    #[serde(flatten)]
    pub agreement: Agreement,
    /// For a round shortlisted by the model: the share of the panel's top `top` in the earlier
    /// round that the model's shortlist kept. Null otherwise (and `reasons.screening` says why).
    pub screening: Option<Screening>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Screening {
    /// The round the shortlist was drawn from.
    pub from_round: Uuid,
    pub top: usize,
    pub recall: f64,
}

/// A round's agreement figures. Every figure is a number or null, never NaN; each null has
/// its reason under `reasons`.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/rounds/{round}/agreement",
    params(("slug" = String, Path, description = "The competition"), ("round" = Uuid, Path, description = "The round"), AgreementParams),
    responses(
        (status = 200, body = AgreementView),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition (a juror's may not)", body = ErrorBody),
        (status = 404, description = "No such competition or round", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn agreement(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<ApiPath<(String, Uuid)>, ApiError>,
    params: Result<ApiQuery<AgreementParams>, ApiError>,
) -> Result<Json<AgreementView>, ApiError> {
    let ApiPath((slug, round_id)) = path?;
    let (competition, round) = readable_round(&state, &caller, &slug, round_id).await?;
    let ApiQuery(params) = params?;
    let threshold = params.threshold.unwrap_or(AgreementOptions::DEFAULT_THRESHOLD);
    if !(threshold.is_finite() && threshold > 0.0 && threshold <= 10.0) {
        return Err(ApiError::bad_request("invalid.query", "threshold must be a number above 0 and at most 10"));
    }
    let normalise = params.normalise.unwrap_or_default();
    let version = model_version(&state.pool, &competition, params.model_version).await?;
    let scores = jury::round_scores(&state.pool, &round, version.as_deref()).await.map_err(ApiError::database)?;
    let view = view(&state, &competition, &round, version, scores, AgreementOptions {
        normalise,
        threshold,
        resamples: RESAMPLES,
        seed: seed(round.id),
    })
    .await?;
    Ok(Json(view))
}

/// The agreement figures of a round from its gathered scores (the API's route and the
/// dashboard's round page).
pub async fn view(
    state: &AppState,
    competition: &Competition,
    round: &Round,
    model_version: Option<String>,
    scores: jury::RoundScores,
    options: AgreementOptions,
) -> Result<AgreementView, ApiError> {
    let entries: Vec<Uuid> = scores.entries.iter().map(|e| e.submission_id).collect();
    // The bootstrap is seconds of CPU for a large round: off the async workers.
    let mut agreement = tokio::task::spawn_blocking(move || analysis::agreement(&scores.data, &options))
        .await
        .map_err(ApiError::internal)?;
    let screening = match screening(state, competition, round, &entries, options.normalise).await? {
        Ok(screening) => Some(screening),
        Err(reason) => {
            agreement.reasons.insert("screening".into(), reason);
            None
        }
    };
    Ok(AgreementView { round_id: round.id, model_version, agreement, screening })
}

/// The options the API uses by default for a round: the raw panel mean, the default threshold,
/// the same bootstrap as the route.
pub fn default_options(round: &Round) -> AgreementOptions {
    AgreementOptions { normalise: Normalise::None, threshold: AgreementOptions::DEFAULT_THRESHOLD, resamples: RESAMPLES, seed: seed(round.id) }
}

/// The same round gives the same intervals (and calibration folds) on every call.
pub(super) fn seed(round: Uuid) -> u64 {
    let bytes = round.as_bytes();
    u64::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]])
}

/// Recall of the panel's top N (in the round the shortlist came from) in the model's shortlist,
/// `shortlist` (the round's entries).
async fn screening(
    state: &AppState,
    competition: &Competition,
    round: &Round,
    shortlist: &[Uuid],
    normalise: Normalise,
) -> Result<Result<Screening, String>, ApiError> {
    let (Some(from), Some("model"), Some(top)) = (round.shortlist_from, round.shortlist_by.as_deref(), round.shortlist_top) else {
        return Ok(Err("the round is not a shortlist made by the model".into()));
    };
    let source = jury::round(&state.pool, competition, from).await?;
    let source_scores = jury::round_scores(&state.pool, &source, None).await.map_err(ApiError::database)?;
    let panel_top = analysis::panel_top(&source_scores.data, normalise, usize::try_from(top).unwrap_or(0));
    Ok(match analysis::recall(&panel_top, shortlist) {
        Some(recall) => Ok(Screening { from_round: from, top: panel_top.len(), recall }),
        None => Err(format!("the panel scored no entry of round {from}, the round the shortlist came from")),
    })
}
