//! The score distribution of a competition: a histogram per rubric output.

use axum::extract::{Path, State};
use easel_core::db::results;
use easel_core::versions;
use maud::{Markup, PreEscaped, html};

use super::readable;
use crate::dashboard::viewer::{PageError, PageResult, Viewer};
use crate::dashboard::{charts, layout};
use crate::state::AppState;

/// `GET /dashboard/competitions/{slug}/distribution`.
pub async fn page(State(state): State<AppState>, viewer: Viewer, Path(slug): Path<String>) -> PageResult<Markup> {
    let competition = readable(&state, &viewer, &slug).await?;
    let version = versions::default(&state.pool, &competition).await?;
    let histograms = match &version {
        Some(v) => Some(results::histograms(&state.pool, competition.id, v).await.map_err(PageError::database)?),
        None => None,
    };
    let body = html! {
        (layout::competition_tabs(&slug, &competition.title, "Distribution"))
        h1 { (competition.title) ": score distribution" }
        @match (&version, &histograms) {
            (Some(version), Some(histograms)) => {
                @let n: i64 = histograms.overall.iter().sum();
                p.muted { (n) " entries scored by model version " code { (version) } ". Bins of ten points: 1–10, 10–20, …, 90–100." }
                div.charts {
                    @for (name, counts) in histograms.iter() {
                        figure {
                            (PreEscaped(charts::histogram(name, &counts)))
                            figcaption { (name) ": " (counts.iter().map(i64::to_string).collect::<Vec<_>>().join(" · ")) }
                        }
                    }
                }
            }
            _ => { p { "No entry has been scored yet." } }
        }
    };
    Ok(layout::page(&format!("{} distribution", competition.title), Some(&viewer), body))
}
