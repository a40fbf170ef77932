//! The jury's read side: rounds and jurors, a round's standings and agreement figures, a
//! calibration of zero-shot scores on its panel, its scores as a long CSV for analysis. (Jurors, rounds and scores are written through ingest.)

pub mod agreement;
pub mod calibration;
pub mod roster;
pub mod scores_csv;
pub mod standings;

use easel_core::auth::{self, Access, Caller};
use easel_core::db::competitions::Competition;
use easel_core::db::rounds::Round;
use easel_core::http::ApiError;
use easel_core::jury;
use uuid::Uuid;

use crate::state::AppState;

/// The competition and round named by the path, for a caller who may read the competition
/// (organisers: `admin` or `competition:<slug>:read`; a juror's key gets 403).
pub async fn readable_round(state: &AppState, caller: &Caller, slug: &str, round_id: Uuid) -> Result<(Competition, Round), ApiError> {
    let (competition, _) = auth::competition(&state.pool, caller, slug, Access::Read, false).await?;
    let round = jury::round(&state.pool, &competition, round_id).await?;
    Ok((competition, round))
}
