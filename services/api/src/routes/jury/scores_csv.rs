//! A round's scores in long format — one row per entry, rater and dimension — that pandas
//! (`pd.read_csv`) and R (`read.csv`) read as is: `submission_id, external_id, rater, dimension,
//! score`. `rater` is a juror's name or `model:<version>`; `dimension` is `score` (a juror's
//! score; the model's leaderboard score), `overall` (the model's) or a rubric criterion.
//! Declared conflicts are left out, as from every figure.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use easel_core::auth::Caller;
use easel_core::db::rounds;
use easel_core::export::csv_safe;
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use easel_core::jury;
use futures::stream;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::readable_round;
use crate::routes::model_version;
use crate::state::AppState;

/// Entries written per chunk of the response.
const ENTRIES_PER_CHUNK: usize = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ScoresCsvParams {
    /// The model's scores of this version; default the competition's pinned version, else the
    /// newest that scored it.
    pub model_version: Option<String>,
}

/// One juror's scores of one entry: their name, and (dimension, score) pairs.
type RaterScores = (String, Vec<(&'static str, f64)>);

/// A round's scores, jurors' and the model's, in long format.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/rounds/{round}/scores.csv",
    params(("slug" = String, Path, description = "The competition"), ("round" = Uuid, Path, description = "The round"), ScoresCsvParams),
    responses(
        (status = 200, content_type = "text/csv", description = "submission_id, external_id, rater, dimension, score"),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition (a juror's may not)", body = ErrorBody),
        (status = 404, description = "No such competition or round", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn scores_csv(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<ApiPath<(String, Uuid)>, ApiError>,
    params: Result<ApiQuery<ScoresCsvParams>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiPath((slug, round_id)) = path?;
    let (competition, round) = readable_round(&state, &caller, &slug, round_id).await?;
    let ApiQuery(params) = params?;
    let version = model_version(&state.pool, &competition, params.model_version).await?;
    let scores = jury::round_scores(&state.pool, &round, version.as_deref()).await.map_err(ApiError::database)?;
    let model = match &version {
        Some(v) => rounds::model_scores(&state.pool, round.id, v).await.map_err(ApiError::database)?,
        None => Vec::new(),
    };
    let model_rater = version.map(|v| format!("model:{v}")).unwrap_or_default();
    let names: HashMap<Uuid, String> = scores.jurors.iter().map(|j| (j.id, j.name.clone())).collect();
    let mut by_entry: HashMap<Uuid, Vec<RaterScores>> = HashMap::new();
    for s in scores.scores.iter().filter(|s| !s.score.conflict) {
        let Some(score) = s.score.score else { continue };
        let mut dims = vec![("score", score)];
        if let Some(rubric) = s.score.rubric {
            dims.extend(rubric.iter());
        }
        let name = names.get(&s.juror_id).cloned().unwrap_or_default();
        by_entry.entry(s.submission_id).or_default().push((name, dims));
    }
    for raters in by_entry.values_mut() {
        raters.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let mut model: HashMap<Uuid, rounds::ModelScores> = model.into_iter().map(|m| (m.submission_id, m)).collect();

    let entries = scores.entries;
    let chunks = entries.chunks(ENTRIES_PER_CHUNK).map(|chunk| chunk.to_vec()).collect::<Vec<_>>();
    let mut first = true;
    let body = chunks.into_iter().map(move |chunk| {
        let mut writer = csv::Writer::from_writer(Vec::new());
        if std::mem::take(&mut first) {
            writer.write_record(["submission_id", "external_id", "rater", "dimension", "score"])?;
        }
        for entry in chunk {
            let id = entry.submission_id.to_string();
            let external_id = csv_safe(entry.external_id.as_deref().unwrap_or("")).into_owned();
            let mut row = |rater: &str, dimension: &str, score: String| {
                writer.write_record([id.as_str(), external_id.as_str(), &csv_safe(rater), dimension, &score])
            };
            for (name, dims) in by_entry.remove(&entry.submission_id).unwrap_or_default() {
                for (dimension, score) in dims {
                    row(&name, dimension, score.to_string())?;
                }
            }
            if let Some(m) = model.remove(&entry.submission_id) {
                row(&model_rater, "score", m.score.to_string())?;
                for (dimension, score) in m.scores.iter() {
                    row(&model_rater, dimension, score.to_string())?;
                }
            }
        }
        writer.into_inner().map_err(|e| std::io::Error::other(e.to_string()))
    });
    let filename = format!("{}-{}-scores.csv", competition.slug, round.id);
    Ok((
        [(CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\""))],
        Body::from_stream(stream::iter(body)),
    )
        .into_response())
}
