//! The page shell every dashboard page shares, and small pieces of markup.

use maud::{DOCTYPE, Markup, html};

use super::viewer::Viewer;
use super::ROOT;

/// A whole page: the head (one stylesheet, one deferred script, both from this origin), the top
/// bar with the signed-in key and a sign-out button, and `body`.
pub fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Easel" }
                link rel="stylesheet" href={ (ROOT) "/static/app.css" };
                script src={ (ROOT) "/static/app.js" } defer {}
            }
            body {
                header.top {
                    a.brand href=(ROOT) { "Easel" }
                    @if let Some(viewer) = viewer {
                        div.who {
                            span { "Signed in as " strong { (viewer.key.name) } }
                            @if let Some(csrf) = &viewer.csrf {
                                form method="post" action={ (ROOT) "/sign-out" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button.link type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The tabs of a competition's pages; `current` is the one shown.
pub fn competition_tabs(slug: &str, title: &str, current: &str) -> Markup {
    let base = format!("{ROOT}/competitions/{slug}");
    let tabs = [("Leaderboard", base.clone()), ("Distribution", format!("{base}/distribution")), ("Audit log", format!("{base}/audit"))];
    html! {
        p.crumbs { a href=(ROOT) { "Competitions" } " › " (title) }
        nav.tabs aria-label="Competition pages" {
            @for (name, href) in &tabs {
                @if *name == current {
                    a.current href=(href) aria-current="page" { (name) }
                } @else {
                    a href=(href) { (name) }
                }
            }
        }
    }
}

/// A score as shown: one decimal.
pub fn score(value: f64) -> String {
    format!("{value:.1}")
}

/// An optional figure: three decimals, or a dash.
pub fn figure(value: Option<f64>) -> String {
    value.filter(|v| v.is_finite()).map_or_else(|| "–".into(), |v| format!("{v:.3}"))
}

/// A progress bar with its numbers, which `app.js` refreshes (`data-slug`).
pub fn progress(slug: &str, done: i64, failed: i64, total: i64) -> Markup {
    html! {
        div.progress data-slug=(slug) {
            progress value=(done + failed) max=(total.max(1)) aria-label={ "Scored entries of " (slug) } {}
            span.numbers { span.done { (done) } " scored, " span.failed { (failed) } " failed, of " span.total { (total) } }
        }
    }
}
