//! A competition's audit log, oldest first, a hundred entries a page.

use axum::extract::{Path, Query, State};
use easel_core::db::audit;
use maud::{Markup, html};
use serde::Deserialize;

use super::readable;
use crate::dashboard::viewer::{PageError, PageResult, Viewer};
use crate::dashboard::{ROOT, layout};
use crate::state::AppState;

const PAGE_SIZE: i64 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Entries after this id.
    after: Option<i64>,
}

/// `GET /dashboard/competitions/{slug}/audit`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> PageResult<Markup> {
    let competition = readable(&state, &viewer, &slug).await?;
    let Query(params) = params.map_err(PageError::query)?;
    let after = params.after.unwrap_or(0).max(0);
    let mut entries = audit::page(&state.pool, competition.id, after, PAGE_SIZE + 1).await.map_err(PageError::database)?;
    let more = entries.len() as i64 > PAGE_SIZE;
    entries.truncate(PAGE_SIZE as usize);
    let json = |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_default();
    let body = html! {
        (layout::competition_tabs(&slug, &competition.title, "Audit log"))
        h1 { (competition.title) ": audit log" }
        p.muted { "Every override, juror score change and round change: which key, when, what, and why. Append-only." }
        @if entries.is_empty() {
            p { "Nothing recorded" @if after > 0 { " after this point" } "." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "When (UTC)" } th { "Key" } th { "Action" } th { "Subject" } th { "Before" } th { "After" } th { "Reason" } } }
                tbody { @for e in &entries {
                    tr {
                        td { (e.at.format("%Y-%m-%d %H:%M:%S")) }
                        td { (e.key_name.clone().unwrap_or_else(|| "–".into())) }
                        td { code { (e.action) } }
                        td { pre.json { (json(&e.subject.0)) } }
                        td { @if let Some(old) = &e.old { pre.json { (json(&old.0)) } } }
                        td { @if let Some(new) = &e.new { pre.json { (json(&new.0)) } } }
                        td { @if let Some(r) = &e.reason { (r) } }
                    }
                } }
            } }
        }
        nav.pager aria-label="Pages" {
            @if after > 0 { a href={ (ROOT) "/competitions/" (slug) "/audit" } { "← From the start" } }
            @if more { @if let Some(last) = entries.last() { a rel="next" href={ (ROOT) "/competitions/" (slug) "/audit?after=" (last.id) } { "Next →" } } }
        }
    };
    Ok(layout::page(&format!("{} audit log", competition.title), Some(&viewer), body))
}
