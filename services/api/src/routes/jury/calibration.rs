//! A calibration of zero-shot scores fitted on a round's juror scores: what a competition does
//! on day one, when it has a jury but no rated training set.
//!
//! For each output (overall, then the five criteria) the pairs are, per entry of the round, the
//! model version's *raw* zero-shot score (before any calibration the checkpoint had; stored by
//! the worker in `results.raw_scores`) and the panel's mean score — each juror's `score` for
//! `overall`, their rubric for the criteria, declared conflicts left out — moved from the
//! round's scale onto 1–100 (`1 + 99·(mean − min)/(max − min)`), the scale every served score
//! is on. The maps are fitted as `easel calibrate` fits them (`easel_agreement::calibration`:
//! isotonic from 30 entries, a line below, k-fold cross-validated), and `calibration` is
//! `easel.json`'s section, ready for `easel calibrate --calibration`.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use easel_agreement::calibration::{CalibrationSet, OutputFit, fit_outputs};
use easel_core::auth::Caller;
use easel_core::db::juror_scores::StoredScore;
use easel_core::db::rounds::{self, Round};
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use easel_core::jury;
use easel_rubric::{Rubric, RubricScores, ScoringMode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::readable_round;
use crate::routes::model_version;
use crate::state::AppState;

/// Folds of the cross-validation unless asked otherwise, and the most that may be asked.
const DEFAULT_FOLDS: usize = 5;
const MAX_FOLDS: usize = 20;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CalibrationParams {
    /// The model version whose zero-shot scores are calibrated; default the competition's
    /// pinned version, else the newest that scored it.
    pub model_version: Option<String>,
    /// Folds of the cross-validation that estimates each map's error on unseen entries
    /// (2–20, default 5; leave-one-out when there are fewer entries).
    pub folds: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalibrationView {
    pub round_id: Uuid,
    /// Null while no version has scored the competition.
    pub model_version: Option<String>,
    /// The round's scale, mapped onto 1–100 for the fit.
    pub scale_min: i32,
    pub scale_max: i32,
    /// Entries of the round.
    pub entries: usize,
    /// Entries the version scored zero-shot with raw scores kept, that at least one juror
    /// scored (without a conflict): what the maps are fitted on.
    pub paired: usize,
    /// Entries the version has not scored.
    pub unscored: usize,
    /// Entries the version scored before raw scores were kept (their served scores may already
    /// be calibrated, so they are left out).
    pub without_raw_scores: usize,
    pub folds: usize,
    /// Each output: entries, the map, why that method (or why none), cross-validated figures.
    pub outputs: Vec<OutputFit>,
    /// `easel.json`'s `calibration` section: `{entries, note, maps: {output: map | null}}`;
    /// null when no output could be fitted. Install it with
    /// `easel calibrate --model DIR --calibration FILE --out DIR2`.
    #[schema(value_type = Option<Object>)]
    pub calibration: Option<CalibrationSet>,
}

/// A calibration of a zero-shot model version onto the round's panel.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/rounds/{round}/calibration",
    params(("slug" = String, Path, description = "The competition"), ("round" = Uuid, Path, description = "The round"), CalibrationParams),
    responses(
        (status = 200, body = CalibrationView),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition (a juror's may not)", body = ErrorBody),
        (status = 404, description = "No such competition or round", body = ErrorBody),
        (status = 409, description = "The version scored the round with a trained head, not zero-shot", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn calibration(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<ApiPath<(String, Uuid)>, ApiError>,
    params: Result<ApiQuery<CalibrationParams>, ApiError>,
) -> Result<Json<CalibrationView>, ApiError> {
    let ApiPath((slug, round_id)) = path?;
    let (competition, round) = readable_round(&state, &caller, &slug, round_id).await?;
    let ApiQuery(params) = params?;
    let folds = params.folds.unwrap_or(DEFAULT_FOLDS);
    if !(2..=MAX_FOLDS).contains(&folds) {
        return Err(ApiError::bad_request("invalid.query", format!("folds must be 2 to {MAX_FOLDS}")));
    }
    let version = model_version(&state.pool, &competition, params.model_version).await?;
    let gathered = jury::round_scores(&state.pool, &round, None).await.map_err(ApiError::database)?;
    let results = match &version {
        Some(v) => rounds::raw_scores(&state.pool, round.id, v).await.map_err(ApiError::database)?,
        None => Vec::new(),
    };
    if let Some(head) = results.iter().find(|r| r.scoring == ScoringMode::Head) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "calibration.not_zero_shot",
            format!(
                "{} scored entry {} with its trained head, already on its training data's scale: a calibration maps zero-shot scores",
                version.as_deref().unwrap_or_default(),
                head.submission_id
            ),
        ));
    }

    let jurors: HashSet<Uuid> = gathered.jurors.iter().map(|j| j.id).collect();
    let panel = panel_means(&gathered.scores, &jurors, &round);
    let raw: HashMap<Uuid, RubricScores<f32>> =
        results.iter().filter_map(|r| r.raw_scores.as_ref().map(|raw| (r.submission_id, raw.0))).collect();
    let mut pairs: RubricScores<Vec<[f32; 2]>> = RubricScores::default();
    let mut paired = 0;
    for entry in &gathered.entries {
        let (Some(raw), Some(panel)) = (raw.get(&entry.submission_id), panel.get(&entry.submission_id)) else {
            continue;
        };
        paired += 1;
        for ((pairs, raw), target) in pairs.as_mut().zip(*raw).zip(*panel).into_array() {
            if let Some(target) = target {
                pairs.push([raw, target]);
            }
        }
    }

    let outputs = if version.is_none() {
        RubricScores::names()
            .into_array()
            .map(|name| OutputFit {
                name,
                n: 0,
                map: None,
                reason: "not calibrated: no model version has scored this competition yet".into(),
                cross_validation: None,
            })
            .to_vec()
    } else {
        fit_outputs(&pairs, folds, super::agreement::seed(round.id)).map_err(ApiError::internal)?
    };
    let calibration = outputs.iter().any(|o| o.map.is_some()).then(|| {
        let note = format!(
            "fitted on round {:?} ({}) of competition {}: {paired} entries' raw zero-shot scores of {} against the panel mean, scale {}–{} mapped onto 1–100",
            round.name,
            round.id,
            competition.slug,
            version.as_deref().unwrap_or_default(),
            round.scale_min,
            round.scale_max
        );
        CalibrationSet::from_fits(&outputs, paired, note)
    });
    let scored: HashSet<Uuid> = results.iter().map(|r| r.submission_id).collect();
    Ok(Json(CalibrationView {
        round_id: round.id,
        model_version: version,
        scale_min: round.scale_min,
        scale_max: round.scale_max,
        entries: gathered.entries.len(),
        paired,
        unscored: gathered.entries.iter().filter(|e| !scored.contains(&e.submission_id)).count(),
        without_raw_scores: results.iter().filter(|r| r.raw_scores.is_none()).count(),
        folds,
        outputs,
        calibration,
    }))
}

/// Each entry's panel mean per output on 1–100: the mean of its jurors' scores (`overall`) and
/// rubric scores (the criteria), conflicts and jurors no longer on the panel left out; `None`
/// for an output no juror gave. Entries no juror scored are absent.
fn panel_means(scores: &[StoredScore], jurors: &HashSet<Uuid>, round: &Round) -> HashMap<Uuid, RubricScores<Option<f32>>> {
    let (min, max) = (f64::from(round.scale_min), f64::from(round.scale_max));
    let mut sums: HashMap<Uuid, RubricScores<(f64, u32)>> = HashMap::new();
    for stored in scores.iter().filter(|s| !s.score.conflict && jurors.contains(&s.juror_id)) {
        let rubric = stored.score.rubric.map_or_else(Rubric::default, |r| r.map(Some));
        let given = RubricScores { overall: stored.score.score, rubric };
        let sum = sums.entry(stored.submission_id).or_default();
        for (sum, value) in sum.as_mut().zip(given).into_array() {
            if let Some(value) = value.filter(|v| v.is_finite()) {
                sum.0 += value;
                sum.1 += 1;
            }
        }
    }
    sums.into_iter()
        .map(|(entry, sum)| {
            let means = sum.map(|(total, n)| (n > 0).then(|| (1.0 + 99.0 * (total / f64::from(n) - min) / (max - min)) as f32));
            (entry, means)
        })
        .collect()
}
