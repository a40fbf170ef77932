//! Likely copies of the same work among a competition's entries (re-saved, resized, cropped or
//! colour-shifted), found by the perceptual hash ingest stores for every submission.

use axum::Json;
use axum::extract::State;
use easel_core::auth::{self, Access, Caller};
use easel_core::db::submissions::{self, Hashed};
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use easel_imaging::phash::{self, PerceptualHash};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::state::AppState;

/// Most clusters one response lists.
const MAX_CLUSTERS: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DuplicatesParams {
    /// Two images are copies when their hashes differ in at most this many bits (default
    /// `easel_imaging::phash::DEFAULT_MAX_DISTANCE`; docs/VERSIONS.md gives its precision and recall).
    pub max_distance: Option<u32>,
    /// Also look for copies in every other competition (needs `admin`).
    #[serde(default)]
    pub across_competitions: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Duplicates {
    pub competition: String,
    pub max_distance: u32,
    pub across_competitions: bool,
    /// The competition's submissions that have a hash (those made before hashing existed have none).
    pub hashed: usize,
    /// Groups of likely copies, largest first; each has at least one entry of this competition.
    pub clusters: Vec<DuplicateCluster>,
    /// More clusters than the 1000 listed.
    pub truncated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicateCluster {
    pub members: Vec<DuplicateMember>,
    /// The close pairs that link the members (a chain A–B–C links A and C without listing A–C).
    pub pairs: Vec<DuplicatePair>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicateMember {
    pub submission_id: Uuid,
    pub competition: String,
    pub external_id: Option<String>,
    /// The perceptual hash, as hex.
    pub phash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicatePair {
    pub a: Uuid,
    pub b: Uuid,
    /// Bits in which the two hashes differ.
    pub distance: u32,
}

/// Clusters of likely copies of the same painting among the competition's submissions (or
/// between them and every other competition's, for an admin). Needs `competition:<slug>:read`.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/duplicates",
    params(("slug" = String, Path, description = "The competition"), DuplicatesParams),
    responses(
        (status = 200, body = Duplicates),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition, or searches across competitions without `admin`", body = ErrorBody),
        (status = 404, description = "No such competition", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn duplicates(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    params: Result<ApiQuery<DuplicatesParams>, ApiError>,
) -> Result<Json<Duplicates>, ApiError> {
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Read, false).await?;
    let ApiQuery(params) = params?;
    let max_distance = params.max_distance.unwrap_or(phash::DEFAULT_MAX_DISTANCE);
    if max_distance > phash::MAX_DISTANCE_LIMIT {
        return Err(ApiError::bad_request(
            "invalid.max_distance",
            format!("max_distance must be 0 to {}", phash::MAX_DISTANCE_LIMIT),
        ));
    }
    if params.across_competitions {
        caller.require_admin()?;
    }
    let scope = (!params.across_competitions).then_some(competition.id);
    let rows = submissions::phashes(&state.pool, scope).await.map_err(ApiError::database)?;
    let competition_id = competition.id;
    // All pairs of a large competition are a second of CPU: off the async workers.
    let (hashed, clusters, truncated) =
        tokio::task::spawn_blocking(move || find(rows, competition_id, max_distance)).await.map_err(ApiError::internal)?;
    Ok(Json(Duplicates {
        competition: competition.slug,
        max_distance,
        across_competitions: params.across_competitions,
        hashed,
        clusters,
        truncated,
    }))
}

/// The clusters that hold an entry of `competition`: within it, or (when `rows` spans every
/// competition) with the entries of others that are within `max_distance` of one of its own.
fn find(rows: Vec<Hashed>, competition: Uuid, max_distance: u32) -> (usize, Vec<DuplicateCluster>, bool) {
    let rows: Vec<(Hashed, PerceptualHash)> =
        rows.into_iter().filter_map(|r| PerceptualHash::from_bytes(&r.phash).map(|h| (r, h))).collect();
    let (own, others): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(r, _)| r.competition_id == competition);
    let hashed = own.len();
    // Another competition's entry takes part only when it is close to one of this one's.
    let own_hashes: Vec<PerceptualHash> = own.iter().map(|(_, h)| *h).collect();
    let mut candidates = own;
    candidates.extend(others.into_iter().filter(|(_, h)| own_hashes.iter().any(|o| o.distance(*h) <= max_distance)));
    let items: Vec<(usize, PerceptualHash)> = candidates.iter().enumerate().map(|(i, (_, h))| (i, *h)).collect();
    let mut found: Vec<DuplicateCluster> = phash::clusters(&items, max_distance)
        .into_iter()
        .filter(|c| c.members.iter().any(|&i| candidates[i].0.competition_id == competition))
        .map(|c| {
            let member = |i: usize| {
                let (r, h) = &candidates[i];
                DuplicateMember {
                    submission_id: r.id,
                    competition: r.competition_slug.clone(),
                    external_id: r.external_id.clone(),
                    phash: h.to_string(),
                }
            };
            let pairs = c
                .pairs
                .iter()
                .map(|&(a, b, distance)| DuplicatePair { a: candidates[c.members[a]].0.id, b: candidates[c.members[b]].0.id, distance })
                .collect();
            DuplicateCluster { members: c.members.iter().map(|&i| member(i)).collect(), pairs }
        })
        .collect();
    found.sort_by_key(|c| std::cmp::Reverse(c.members.len()));
    let truncated = found.len() > MAX_CLUSTERS;
    found.truncate(MAX_CLUSTERS);
    (hashed, found, truncated)
}
