//! One module per page.

pub mod audit;
pub mod competitions;
pub mod distribution;
pub mod entry;
pub mod judge;
pub mod leaderboard;
pub mod round;

use easel_core::auth::{self, Access, Scope};
use easel_core::db::competitions::{self as competition_rows, Competition};

use super::viewer::{PageResult, Viewer};
use crate::state::AppState;

/// The competition `slug` for a viewer who may read it (organisers and researchers; a juror's
/// key gets 403, a key that holds nothing there 404).
async fn readable(state: &AppState, viewer: &Viewer, slug: &str) -> PageResult<Competition> {
    Ok(auth::competition(&state.pool, &viewer.caller, slug, Access::Read, false).await?.0)
}

/// The competitions a viewer holds any scope in (every one for an admin), newest first.
async fn known_competitions(state: &AppState, viewer: &Viewer) -> PageResult<Vec<Competition>> {
    const MAX_LISTED: i64 = 200;
    let slugs: Option<Vec<String>> = (!viewer.key.scopes.is_admin()).then(|| {
        viewer
            .key
            .scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Competition { slug, .. } => Some(slug.as_str().to_string()),
                Scope::Admin => None,
            })
            .collect()
    });
    competition_rows::list(&state.pool, slugs.as_deref(), MAX_LISTED).await.map_err(super::viewer::PageError::database)
}
