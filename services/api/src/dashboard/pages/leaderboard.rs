//! A competition's leaderboard: thumbnails, any rubric output as the order, a filter, paging.

use axum::extract::{Path, Query, State};
use easel_core::db::results::{self, BrowseQuery, SortKey};
use easel_core::versions;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::readable;
use crate::dashboard::layout;
use crate::dashboard::viewer::{PageError, PageResult, Viewer};
use crate::dashboard::ROOT;
use crate::state::AppState;

const PAGE_SIZE: i64 = 50;
const MAX_PAGE: i64 = 10_000;
const MAX_FILTER_CHARS: usize = 200;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderboardParams {
    /// `score` (default) or a rubric output.
    #[serde(skip_serializing_if = "Option::is_none")]
    sort: Option<String>,
    /// `desc` (default) or `asc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<String>,
    /// Entries whose id contains this.
    #[serde(skip_serializing_if = "Option::is_none", default, deserialize_with = "empty_as_none")]
    q: Option<String>,
    /// Entries scoring at least this.
    #[serde(skip_serializing_if = "Option::is_none", default, deserialize_with = "empty_as_none")]
    min: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default, deserialize_with = "empty_as_none")]
    model_version: Option<String>,
}

/// A form's empty field is no filter.
fn empty_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.filter(|s| !s.trim().is_empty()))
}

struct Parsed {
    sort: SortKey,
    ascending: bool,
    q: Option<String>,
    min: Option<f32>,
    page: i64,
}

fn parse(params: &LeaderboardParams) -> PageResult<Parsed> {
    let sort = match params.sort.as_deref() {
        None => SortKey::Score,
        Some(raw) => SortKey::parse(raw).ok_or_else(|| PageError::bad_request("sort must be score or a rubric output (overall, originality, color, texture, composition, content)"))?,
    };
    let ascending = match params.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(PageError::bad_request("order must be asc or desc")),
    };
    let q = params.q.as_deref().map(str::trim).map(str::to_string);
    if q.as_deref().is_some_and(|q| q.chars().count() > MAX_FILTER_CHARS || q.chars().any(char::is_control)) {
        return Err(PageError::bad_request(format!("the filter must be at most {MAX_FILTER_CHARS} characters, without control characters")));
    }
    let min = match params.min.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.trim()
                .parse::<f32>()
                .ok()
                .filter(|m| m.is_finite() && (1.0..=100.0).contains(m))
                .ok_or_else(|| PageError::bad_request("the lowest score must be a number from 1 to 100"))?,
        ),
    };
    let page = params.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(PageError::bad_request(format!("page must be 1 to {MAX_PAGE}")));
    }
    Ok(Parsed { sort, ascending, q, min, page })
}

/// `GET /dashboard/competitions/{slug}`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    params: Result<Query<LeaderboardParams>, axum::extract::rejection::QueryRejection>,
) -> PageResult<Markup> {
    let competition = readable(&state, &viewer, &slug).await?;
    let Query(params) = params.map_err(PageError::query)?;
    let parsed = parse(&params)?;
    let version = versions::resolve(&state.pool, &competition, params.model_version.as_deref()).await?;
    let base = format!("{ROOT}/competitions/{slug}");
    let (rows, total) = match &version {
        Some(version) => results::browse(
            &state.pool,
            &BrowseQuery {
                competition_id: competition.id,
                model_version: version.clone(),
                sort: parsed.sort,
                ascending: parsed.ascending,
                external_id_contains: parsed.q.clone(),
                min_score: parsed.min,
                offset: (parsed.page - 1) * PAGE_SIZE,
                limit: PAGE_SIZE,
            },
        )
        .await
        .map_err(PageError::database)?,
        None => (Vec::new(), 0),
    };
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    // A link to this page with some parameters changed.
    let link = |sort: Option<SortKey>, ascending: Option<bool>, page: Option<i64>| {
        let query = LeaderboardParams {
            sort: Some(sort.unwrap_or(parsed.sort)).filter(|s| *s != SortKey::Score).map(|s| s.as_str().to_string()),
            order: ascending.unwrap_or(parsed.ascending).then(|| "asc".to_string()),
            q: parsed.q.clone(),
            min: params.min.clone(),
            page: page.filter(|p| *p > 1),
            model_version: params.model_version.clone(),
        };
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        if query.is_empty() { base.clone() } else { format!("{base}?{query}") }
    };
    let header = |key: SortKey, label: &str| {
        let current = key == parsed.sort;
        // A click on the current column flips the order; another column starts best first.
        let href = link(Some(key), Some(current && !parsed.ascending), None);
        let sort_state = if parsed.ascending { "ascending" } else { "descending" };
        html! {
            @if current {
                th.num aria-sort=(sort_state) { a href=(href) { (label) (if parsed.ascending { " ▲" } else { " ▼" }) } }
            } @else {
                th.num { a href=(href) { (label) } }
            }
        }
    };
    let body = html! {
        (layout::competition_tabs(&slug, &competition.title, "Leaderboard"))
        h1 { (competition.title) ": leaderboard" }
        p.muted {
            @match &version {
                Some(v) => { "Model version " code { (v) } ". " (total) " entries match." }
                None => { "No entry has been scored yet." }
            }
        }
        form.filters method="get" action=(base) {
            div { label for="q" { "Entry id contains" } input #q type="search" name="q" value=[parsed.q.as_deref()] maxlength=(MAX_FILTER_CHARS); }
            div { label for="min" { "Lowest score" } input #min type="number" name="min" min="1" max="100" step="any" value=[params.min.as_deref()]; }
            div {
                label for="sort" { "Order by" }
                select #sort name="sort" {
                    @for key in SortKey::ALL { option value=(key.as_str()) selected[key == parsed.sort] { (key.as_str()) } }
                }
            }
            div {
                label for="order" { "Direction" }
                select #order name="order" {
                    option value="desc" selected[!parsed.ascending] { "best first" }
                    option value="asc" selected[parsed.ascending] { "lowest first" }
                }
            }
            @if let Some(v) = &params.model_version { input type="hidden" name="model_version" value=(v); }
            div { button type="submit" { "Apply" } }
        }
        div.table-wrap {
            table.leaderboard {
                caption.muted { "Page " (parsed.page) " of " (pages) }
                thead { tr {
                    th.num scope="col" { "#" }
                    th scope="col" { "Image" }
                    th scope="col" { "Entry" }
                    (header(SortKey::Score, "Score"))
                    (header(SortKey::Overall, "Overall"))
                    (header(SortKey::Originality, "Originality"))
                    (header(SortKey::Color, "Color"))
                    (header(SortKey::Texture, "Texture"))
                    (header(SortKey::Composition, "Composition"))
                    (header(SortKey::Content, "Content"))
                } }
                tbody {
                    @for (i, row) in rows.iter().enumerate() {
                        @let entry = format!("{base}/entries/{}", row.submission_id);
                        @let name = row.external_id.clone().unwrap_or_else(|| row.submission_id.to_string()[..8].to_string());
                        tr {
                            td.num { ((parsed.page - 1) * PAGE_SIZE + i as i64 + 1) }
                            td { a href=(entry) { img.thumb src={ (entry) "/thumbnail.jpg" } alt={ "Entry " (name) } width="64" height="64"; } }
                            td { a href=(entry) { (name) } }
                            td.num {
                                (layout::score(f64::from(row.effective_score)))
                                @if row.override_score.is_some() { " " abbr title="An organiser's override" { "(override)" } }
                            }
                            @for (_, value) in row.scores.iter() { td.num { (layout::score(f64::from(value))) } }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if parsed.page > 1 { a rel="prev" href=(link(None, None, Some(parsed.page - 1))) { "← Previous" } }
            span { "Page " (parsed.page) " of " (pages) }
            @if parsed.page < pages { a rel="next" href=(link(None, None, Some(parsed.page + 1))) { "Next →" } }
        }
    };
    Ok(layout::page(&format!("{} leaderboard", competition.title), Some(&viewer), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(sort: Option<&str>, q: Option<&str>, min: Option<&str>, page: Option<i64>) -> LeaderboardParams {
        LeaderboardParams { sort: sort.map(Into::into), q: q.map(Into::into), min: min.map(Into::into), page, ..Default::default() }
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(parse(&params(Some("color"), Some("entry"), Some("50"), Some(2))).is_ok());
        for bad in [
            params(Some("score desc; --"), None, None, None),
            params(None, Some(&"x".repeat(201)), None, None),
            params(None, Some("a\u{0}b"), None, None),
            params(None, None, Some("NaN"), None),
            params(None, None, Some("101"), None),
            params(None, None, None, Some(0)),
            params(None, None, None, Some(MAX_PAGE + 1)),
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }
}
