//! A round's agreement page: the model-vs-panel scatter, the agreement figures and the list of
//! disagreements (the same figures as `GET /v1/competitions/{slug}/rounds/{round}/agreement`).

use axum::extract::{Path, State};
use easel_agreement::round as analysis;
use easel_core::jury;
use easel_core::versions;
use maud::{Markup, PreEscaped, html};
use uuid::Uuid;

use crate::dashboard::viewer::{PageError, PageResult, Viewer};
use crate::dashboard::{ROOT, charts, layout};
use crate::routes::jury::{agreement, readable_round};
use crate::state::AppState;

/// `GET /dashboard/competitions/{slug}/rounds/{round}`.
pub async fn page(State(state): State<AppState>, viewer: Viewer, Path((slug, round_id)): Path<(String, Uuid)>) -> PageResult<Markup> {
    let (competition, round) = readable_round(&state, &viewer.caller, &slug, round_id).await?;
    let version = versions::default(&state.pool, &competition).await?;
    let scores = jury::round_scores(&state.pool, &round, version.as_deref()).await.map_err(PageError::database)?;
    let options = agreement::default_options(&round);
    let standings = analysis::standings(&scores.data);
    let names: std::collections::HashMap<Uuid, String> =
        scores.entries.iter().map(|e| (e.submission_id, e.external_id.clone().unwrap_or_else(|| e.submission_id.to_string()[..8].to_string()))).collect();
    let view = agreement::view(&state, &competition, &round, version.clone(), scores, options).await?;
    let a = &view.agreement;
    let flagged: std::collections::HashSet<Uuid> = a.disagreements.iter().map(|d| d.submission_id).collect();
    let points: Vec<charts::Point> = standings
        .iter()
        .filter_map(|s| {
            Some(charts::Point { model: s.model_score?, panel: s.panel(options.normalise)?, disagreement: flagged.contains(&s.submission_id) })
        })
        .collect();
    let m = &a.model_vs_panel;
    let base = format!("{ROOT}/competitions/{slug}");
    let figure = |name: &str, key: &str, value: Option<f64>| {
        let reason = a.reasons.get(key).cloned();
        html! { dt { (name) } dd { (layout::figure(value)) @if let Some(r) = reason { " " span.muted { "(" (r) ")" } } } }
    };
    let body = html! {
        (layout::competition_tabs(&slug, &competition.title, ""))
        h1 { "Round " (round.name) ": model and panel" }
        p.muted {
            (round.entries) " entries, scale " (round.scale_min) "–" (round.scale_max)
            @if round.blind { ", blind" }
            @if round.closed_at.is_some() { ", closed" }
            ". Model version " @match &version { Some(v) => code { (v) }, None => "–" } "."
        }
        div.entry {
            figure.chart {
                (PreEscaped(charts::scatter(&points, (f64::from(round.scale_min), f64::from(round.scale_max)))))
                figcaption { "Each entry the model and at least one juror scored: blue circles; listed disagreements: orange squares." }
            }
            div {
                h2 { "Agreement" }
                dl.figures {
                    dt { "Entries compared" } dd.n { (a.n) }
                    (figure("Pearson r", "model_vs_panel.pearson", m.pearson))
                    (figure("Spearman ρ", "model_vs_panel.spearman", m.spearman))
                    (figure("Kendall τ", "model_vs_panel.kendall", m.kendall))
                    (figure("MAE after calibration", "model_vs_panel.mae_calibrated", m.mae_calibrated))
                    (figure("Weighted κ", "model_vs_panel.qwk", m.qwk))
                    (figure("Jurors' ICC(2,1)", "inter_juror.icc2_1", a.inter_juror.icc2_1))
                }
                @if let Some(s) = &view.screening {
                    p { "Screening recall: " (layout::figure(Some(s.recall))) " of the panel's top " (s.top) "." }
                }
            }
        }
        h2 { "Disagreements" }
        @if a.disagreements.is_empty() {
            p.muted { "None: no entry where the model and the panel differ by more than " (a.threshold) " standard deviations." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Entry" } th.num { "Model z" } th.num { "Panel z" } } }
                tbody { @for d in &a.disagreements {
                    tr {
                        td { a href={ (base) "/entries/" (d.submission_id) } { (names.get(&d.submission_id).cloned().unwrap_or_default()) } }
                        td.num { (layout::figure(Some(d.model_z))) }
                        td.num { (layout::figure(Some(d.panel_z))) }
                    }
                } }
            } }
        }
    };
    Ok(layout::page(&format!("Round {}", round.name), Some(&viewer), body))
}
