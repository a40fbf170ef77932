//! Easel's read side: a submission's status and result, a competition's leaderboard (keyset
//! pagination), progress counts and streamed CSV/JSONL exports, with an OpenAPI document.
//! It reads Postgres only.

pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
