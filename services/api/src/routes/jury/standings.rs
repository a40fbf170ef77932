//! A round's standings: each entry's panel mean (raw, and with every juror's scores
//! z-normalised and mapped back onto the round's scale), how many scores it has, and the
//! model's score.

use std::cmp::Ordering;

use axum::Json;
use axum::extract::State;
use easel_agreement::round::{self as analysis, Normalise};
use easel_core::auth::Caller;
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use easel_core::jury;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::readable_round;
use crate::routes::model_version;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// The panel score (`panel_score`: raw or normalised, as asked).
    #[default]
    Panel,
    PanelMean,
    PanelMeanZ,
    Model,
    Scores,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Desc,
    Asc,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StandingsParams {
    /// `none` (default): `panel_score` is the raw panel mean; `z`: the mean of each juror's
    /// z-scores, mapped back onto the round's scale.
    #[param(value_type = Option<String>)]
    pub normalise: Option<Normalise>,
    /// `panel` (default), `panel_mean`, `panel_mean_z`, `model` or `scores`.
    #[param(value_type = Option<String>)]
    pub sort: Option<SortBy>,
    /// `desc` (default) or `asc`; entries without the value sort last either way.
    #[param(value_type = Option<String>)]
    pub order: Option<Order>,
    /// The model's scores of this version; default the competition's pinned version, else the
    /// newest that scored it.
    pub model_version: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Standings {
    pub round_id: Uuid,
    pub normalise: Normalise,
    pub model_version: Option<String>,
    pub items: Vec<StandingView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StandingView {
    pub submission_id: Uuid,
    pub external_id: Option<String>,
    /// `panel_mean` or `panel_mean_z`, as `normalise` asks.
    pub panel_score: Option<f64>,
    /// The mean of the jurors' scores (declared conflicts left out).
    pub panel_mean: Option<f64>,
    /// The mean of the jurors' z-scores on the round's scale.
    pub panel_mean_z: Option<f64>,
    /// How many jurors scored it.
    pub scores: usize,
    /// The model's score (1–100).
    pub model_score: Option<f64>,
}

/// A round's standings.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/rounds/{round}/standings",
    params(("slug" = String, Path, description = "The competition"), ("round" = Uuid, Path, description = "The round"), StandingsParams),
    responses(
        (status = 200, body = Standings),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition (a juror's may not)", body = ErrorBody),
        (status = 404, description = "No such competition or round", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn standings(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<ApiPath<(String, Uuid)>, ApiError>,
    params: Result<ApiQuery<StandingsParams>, ApiError>,
) -> Result<Json<Standings>, ApiError> {
    let ApiPath((slug, round_id)) = path?;
    let (competition, round) = readable_round(&state, &caller, &slug, round_id).await?;
    let ApiQuery(params) = params?;
    let version = model_version(&state.pool, &competition, params.model_version).await?;
    let scores = jury::round_scores(&state.pool, &round, version.as_deref()).await.map_err(ApiError::database)?;
    let normalise = params.normalise.unwrap_or_default();
    let mut items: Vec<StandingView> = analysis::standings(&scores.data)
        .into_iter()
        .zip(&scores.entries)
        .map(|(s, entry)| StandingView {
            submission_id: s.submission_id,
            external_id: entry.external_id.clone(),
            panel_score: s.panel(normalise),
            panel_mean: s.panel_mean,
            panel_mean_z: s.panel_mean_z,
            scores: s.scores,
            model_score: s.model_score,
        })
        .collect();
    sort(&mut items, params.sort.unwrap_or_default(), params.order.unwrap_or_default());
    Ok(Json(Standings { round_id: round.id, normalise, model_version: version, items }))
}

fn sort(items: &mut [StandingView], by: SortBy, order: Order) {
    let key = |s: &StandingView| match by {
        SortBy::Panel => s.panel_score,
        SortBy::PanelMean => s.panel_mean,
        SortBy::PanelMeanZ => s.panel_mean_z,
        SortBy::Model => s.model_score,
        SortBy::Scores => Some(s.scores as f64),
    };
    items.sort_by(|a, b| {
        let by_value = match (key(a), key(b)) {
            (Some(x), Some(y)) => {
                let o = x.total_cmp(&y);
                if order == Order::Desc { o.reverse() } else { o }
            }
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_value.then(a.submission_id.cmp(&b.submission_id))
    });
}
