//! An entry: its image, the six scores as a chart, the critique, the model version, the jurors'
//! scores and any override.

use axum::extract::{Path, State};
use easel_core::db::{juror_scores, overrides, results};
use easel_core::http::ApiError;
use easel_core::versions;
use maud::{Markup, PreEscaped, html};
use uuid::Uuid;

use super::readable;
use crate::dashboard::viewer::{PageError, PageResult, Viewer};
use crate::dashboard::{ROOT, charts, images, layout};
use crate::state::AppState;

/// `GET /dashboard/competitions/{slug}/entries/{id}`.
pub async fn page(State(state): State<AppState>, viewer: Viewer, Path((slug, id)): Path<(String, String)>) -> PageResult<Markup> {
    let competition = readable(&state, &viewer, &slug).await?;
    let unknown = || PageError(ApiError::not_found("submission.not_found", "there is no such entry in this competition"));
    let id = Uuid::parse_str(&id).map_err(|_| unknown())?;
    let submission = images::submission_in(&state, id, &competition.slug).await?.ok_or_else(unknown)?;
    let version = versions::default(&state.pool, &competition).await?;
    let result = match &version {
        Some(v) => results::for_submission(&state.pool, id, v).await.map_err(PageError::database)?,
        None => None,
    };
    let override_ = overrides::find(&state.pool, id).await.map_err(PageError::database)?;
    let jury = juror_scores::of_entry(&state.pool, id).await.map_err(PageError::database)?;
    let status = submission.status().map_err(|e| PageError(ApiError::internal(e)))?;
    let name = submission.external_id.clone().unwrap_or_else(|| id.to_string());
    let base = format!("{ROOT}/competitions/{slug}");
    let body = html! {
        (layout::competition_tabs(&slug, &competition.title, ""))
        h1 { "Entry " (name) }
        div.entry {
            div {
                img.preview src={ (base) "/entries/" (id) "/preview.jpg" } alt={ "Entry " (name) }
                    width=(submission.width) height=(submission.height);
                @if let Some(description) = &submission.description {
                    h2 { "The artist's description" }
                    p { (description) }
                }
            }
            div {
                dl.figures {
                    dt { "Status" } dd { (status.as_str()) }
                    dt { "Model version" } dd { @match &version { Some(v) => code { (v) }, None => "–" } }
                    dt { "Image" } dd { (submission.width) " × " (submission.height) " " (submission.image_format) }
                    @if let Some(r) = &result {
                        dt { "Score" } dd { strong { (layout::score(f64::from(r.effective_score))) } }
                    }
                }
                @if let Some(o) = &override_ {
                    div.notice {
                        strong { "Override: " (layout::score(f64::from(o.score))) }
                        p { (o.reason) }
                    }
                }
                @if let Some(r) = &result {
                    figure.chart {
                        (PreEscaped(charts::rubric_bars(&r.scores)))
                        figcaption { "The model's six scores (1–100)." }
                    }
                    table {
                        caption.muted { "The same scores" }
                        tbody { @for (dimension, value) in r.scores.iter() { tr { th scope="row" { (dimension) } td.num { (layout::score(f64::from(value))) } } } }
                    }
                } @else {
                    p.muted { "Not scored yet." }
                }
            }
        }
        @if let Some(r) = &result {
            h2 { "Critique" }
            div.critique { (r.critique) }
        }
        h2 { "Jurors' scores" }
        @if jury.is_empty() {
            p.muted { "No juror has scored this entry." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Round" } th { "Juror" } th.num { "Score" } th { "Rubric" } th { "Note" } } }
                tbody {
                    @for s in &jury {
                        tr {
                            td { a href={ (base) "/rounds/" (s.round_id) } { (s.round) } }
                            td { (s.juror) }
                            td.num {
                                @if s.stored.score.conflict { "conflict of interest" }
                                @else if let Some(v) = s.stored.score.score { (layout::score(v)) }
                            }
                            td { @if let Some(rubric) = &s.stored.score.rubric {
                                (rubric.iter().map(|(n, v)| format!("{n} {}", layout::score(v))).collect::<Vec<_>>().join(", "))
                            } }
                            td { @if let Some(note) = &s.stored.score.note { (note) } }
                        }
                    }
                }
            } }
        }
    };
    Ok(layout::page(&format!("Entry {name}"), Some(&viewer), body))
}
