//! The start page: the competitions the key knows, with live progress, and where to go next.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use easel_core::auth::Access;
use easel_core::db::{jurors, rounds, submissions};
use maud::{Markup, html};
use serde::Serialize;

use super::known_competitions;
use crate::dashboard::layout;
use crate::dashboard::viewer::{PageError, PageResult, Viewer};
use crate::dashboard::ROOT;
use crate::state::AppState;

/// `GET /dashboard`.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> PageResult<Markup> {
    let mut cards = Vec::new();
    for competition in known_competitions(&state, &viewer).await? {
        let slug = competition.slug.clone();
        let readable = viewer.key.scopes.allows(&slug, Access::Read);
        let juror = if viewer.key.scopes.allows(&slug, Access::Judge) {
            jurors::find_by_key(&state.pool, competition.id, viewer.key.id).await.map_err(PageError::database)?
        } else {
            None
        };
        if !readable && juror.is_none() {
            continue;
        }
        let progress = if readable { Some(submissions::progress(&state.pool, competition.id).await.map_err(PageError::database)?) } else { None };
        let rounds = rounds::list(&state.pool, competition.id).await.map_err(PageError::database)?;
        let base = format!("{ROOT}/competitions/{slug}");
        cards.push(html! {
            li.card {
                h2 { (competition.title) }
                p.muted { code { (slug) } }
                @if let Some(p) = progress {
                    (layout::progress(&slug, p.done, p.failed, p.total()))
                    ul {
                        li { a href=(base) { "Leaderboard" } }
                        li { a href={ (base) "/distribution" } { "Score distribution" } }
                        li { a href={ (base) "/audit" } { "Audit log" } }
                    }
                }
                @if !rounds.is_empty() {
                    h3 { "Rounds" }
                    ul {
                        @for round in &rounds {
                            li {
                                (round.name) " "
                                span.muted { "(" (round.entries) " entries" @if round.closed_at.is_some() { ", closed" } ")" } " "
                                @if readable { a href={ (base) "/rounds/" (round.id) } { "Agreement" } " " }
                                @if juror.is_some() && round.closed_at.is_none() { a.button href={ (base) "/rounds/" (round.id) "/judge" } { "Score entries" } }
                            }
                        }
                    }
                }
            }
        });
    }
    let body = html! {
        h1 { "Competitions" }
        @if cards.is_empty() {
            p { "This key holds no competition yet." }
        } @else {
            ul.cards { @for card in &cards { (card) } }
        }
    };
    Ok(layout::page("Competitions", Some(&viewer), body))
}

#[derive(Debug, Serialize)]
pub struct ProgressJson {
    queued: i64,
    processing: i64,
    done: i64,
    failed: i64,
    total: i64,
}

/// `GET /dashboard/progress.json`: progress of every competition the key may read, by slug (what
/// `app.js` refreshes the bars from).
pub async fn progress(State(state): State<AppState>, viewer: Viewer) -> PageResult<Json<BTreeMap<String, ProgressJson>>> {
    let mut all = BTreeMap::new();
    for competition in known_competitions(&state, &viewer).await? {
        if !viewer.key.scopes.allows(&competition.slug, Access::Read) {
            continue;
        }
        let p = submissions::progress(&state.pool, competition.id).await.map_err(PageError::database)?;
        all.insert(
            competition.slug,
            ProgressJson { queued: p.queued, processing: p.processing, done: p.done, failed: p.failed, total: p.total() },
        );
    }
    Ok(Json(all))
}
