//! The juror's scoring page: one entry at a time in the juror's own order, the round's scale,
//! a conflict-of-interest button, keyboard shortcuts. In a blind round the juror sees the image
//! only: no entry id, no artist's text, no other score.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use easel_core::db::juror_scores::{self, StoredScore};
use easel_core::db::rounds::{self, RoundEntry};
use easel_core::domain::JurorScore;
use easel_core::http::ApiError;
use easel_core::{jury, versions};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use crate::dashboard::session::verify_form;
use crate::dashboard::viewer::{PageError, PageResult, Viewer};
use crate::dashboard::{ROOT, layout};
use crate::state::AppState;

/// The most entries of a round the page walks through.
const MAX_ENTRIES: i64 = 20_000;
const MAX_NOTE_CHARS: usize = 4000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeParams {
    /// The entry to show; default the first this juror has not scored.
    entry: Option<Uuid>,
    /// The entry just scored (a confirmation is shown).
    saved: Option<Uuid>,
}

/// `GET /dashboard/competitions/{slug}/rounds/{round}/judge`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((slug, round_id)): Path<(String, Uuid)>,
    params: Result<Query<JudgeParams>, axum::extract::rejection::QueryRejection>,
) -> PageResult<Markup> {
    let Query(params) = params.map_err(PageError::query)?;
    render(&state, &viewer, &slug, round_id, params.entry, params.saved, None).await
}

#[derive(Debug, Deserialize)]
pub struct ScoreForm {
    csrf: String,
    score: Option<String>,
    note: Option<String>,
    /// Present when the conflict-of-interest button was pressed.
    conflict: Option<String>,
}

/// `POST /dashboard/competitions/{slug}/rounds/{round}/judge/{id}`: the juror's score (or
/// declared conflict) of one entry; then on to the next entry they have not scored.
pub async fn score(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((slug, round_id, submission_id)): Path<(String, Uuid, Uuid)>,
    form: Result<Form<ScoreForm>, axum::extract::rejection::FormRejection>,
) -> PageResult<Response> {
    let Form(form) = form.map_err(PageError::form)?;
    verify_form(&headers, &viewer, &form.csrf)?;
    let (competition, juror) = jury::juror(&state.pool, &viewer.caller, &slug).await?;
    let round = jury::round(&state.pool, &competition, round_id).await?;
    jury::entry_in_round(&state.pool, &round, submission_id).await?;
    let note = form.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let conflict = form.conflict.is_some();
    let parsed = match (conflict, form.score.as_deref().map(str::trim).filter(|s| !s.is_empty())) {
        (true, _) => JurorScore::parse(round.scale(), None, None, note, true).map_err(ApiError::from),
        (false, None) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid.score", "type a score, or declare a conflict of interest")),
        (false, Some(raw)) => match raw.replace(',', ".").parse::<f64>() {
            Ok(value) => JurorScore::parse(round.scale(), Some(value), None, note, false).map_err(ApiError::from),
            Err(_) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid.score", format!("{raw:?} is not a number"))),
        },
    };
    let score = match parsed {
        Ok(score) => score,
        Err(error) => {
            let status = error.status;
            let page = render(&state, &viewer, &slug, round_id, Some(submission_id), None, Some(error.message)).await?;
            return Ok((status, page).into_response());
        }
    };
    jury::record_score(&state.pool, &viewer.key, &competition, &juror, &round, submission_id, score).await?;
    Ok(Redirect::to(&format!("{ROOT}/competitions/{slug}/rounds/{round_id}/judge?saved={submission_id}")).into_response())
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    slug: &str,
    round_id: Uuid,
    asked: Option<Uuid>,
    saved: Option<Uuid>,
    error: Option<String>,
) -> PageResult<Markup> {
    let (competition, juror) = jury::juror(&state.pool, &viewer.caller, slug).await?;
    let round = jury::round(&state.pool, &competition, round_id).await?;
    let version = if round.blind { None } else { versions::default(&state.pool, &competition).await? };
    let entries = rounds::queue(&state.pool, round.id, juror.id, version.as_deref(), false, 0, MAX_ENTRIES).await.map_err(PageError::database)?;
    let mine = juror_scores::of_juror(&state.pool, round.id, juror.id).await.map_err(PageError::database)?;
    let position = match asked {
        Some(id) => Some(entries.iter().position(|e| e.submission_id == id).ok_or_else(|| PageError(jury::entry_not_in_round(id)))?),
        None => entries.iter().position(|e| !mine.contains_key(&e.submission_id)),
    };
    let base = format!("{ROOT}/competitions/{slug}/rounds/{round_id}/judge");
    let scored = entries.iter().filter(|e| mine.contains_key(&e.submission_id)).count();
    let closed = round.closed_at.is_some();
    let body = html! {
        p.crumbs { a href=(ROOT) { "Competitions" } " › " (competition.title) " › round " (round.name) }
        h1 { "Scoring: " (round.name) }
        p.muted {
            (scored) " of " (entries.len()) " entries scored. Scale " strong { (round.scale_min) " to " (round.scale_max) } "."
            @if round.blind { " A blind round: you see the image only." }
        }
        @if saved.is_some() { p.notice role="status" { "Saved." } }
        @if let Some(error) = &error { p.error role="alert" { (error) } }
        @if closed { p.error { "This round is closed: it takes no more scores." } }
        @match position {
            Some(i) => (entry(&base, &round, &entries, i, mine.get(&entries[i].submission_id), viewer, closed)),
            None => {
                p.notice { "You have scored every entry of this round. Thank you." }
                @if let Some(first) = entries.first() { p { a href={ (base) "?entry=" (first.submission_id) } { "Review your scores from the first entry" } } }
            }
        }
    };
    Ok(layout::page(&format!("Scoring {}", round.name), Some(viewer), body))
}

fn entry(
    base: &str,
    round: &rounds::Round,
    entries: &[RoundEntry],
    i: usize,
    mine: Option<&StoredScore>,
    viewer: &Viewer,
    closed: bool,
) -> Markup {
    let e = &entries[i];
    let previous = i.checked_sub(1).and_then(|p| entries.get(p));
    let next = entries.get(i + 1);
    let value = mine.and_then(|m| m.score.score).map(|v| v.to_string());
    let note = mine.and_then(|m| m.score.note.clone());
    html! {
        div.judge {
            div {
                img.preview src={ (base) "/" (e.submission_id) "/image.jpg" } alt={ "Entry " (i + 1) " of " (entries.len()) } width=(e.width) height=(e.height);
                @if !round.blind {
                    @if let Some(id) = &e.external_id { p { "Entry " strong { (id) } } }
                    @if let Some(d) = &e.description { p { (d) } }
                }
            }
            div {
                h2 { "Entry " (i + 1) " of " (entries.len()) }
                @if let Some(m) = mine {
                    p.muted { @if m.score.conflict { "You declared a conflict of interest for this entry." } @else { "Your score: " (value.clone().unwrap_or_default()) ". A new score replaces it." } }
                }
                @if let Some(csrf) = &viewer.csrf {
                    form.judge-form method="post" action={ (base) "/" (e.submission_id) } {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="score" { "Your score (" (round.scale_min) "–" (round.scale_max) ")" }
                        input #score type="number" name="score" min=(round.scale_min) max=(round.scale_max) step="any"
                            inputmode="decimal" value=[value.as_deref()] autofocus autocomplete="off" disabled[closed];
                        label for="note" { "Note for the organisers (optional)" }
                        textarea #note name="note" rows="3" maxlength=(MAX_NOTE_CHARS) disabled[closed] { @if let Some(n) = &note { (n) } }
                        div.actions {
                            button type="submit" disabled[closed] { "Save score" }
                            button.secondary type="submit" name="conflict" value="1" formnovalidate disabled[closed] { "Conflict of interest" }
                        }
                    }
                } @else {
                    p.error { "Sign in through the sign-in page to score (a key in an Authorization header can read this page only)." }
                }
                nav.pager aria-label="Entries" {
                    @if let Some(p) = previous { a rel="prev" href={ (base) "?entry=" (p.submission_id) } { "← Previous" } }
                    @if let Some(n) = next { a rel="next" href={ (base) "?entry=" (n.submission_id) } { "Next →" } }
                }
                h3 { "Keyboard" }
                ul.muted {
                    li { "Type the score, then " kbd { "Enter" } " to save and go on" }
                    li { kbd { "Esc" } " leaves the field; then " kbd { "N" } " next, " kbd { "P" } " previous, " kbd { "C" } " conflict of interest" }
                    li { "A digit anywhere starts typing a score" }
                }
            }
        }
    }
}
