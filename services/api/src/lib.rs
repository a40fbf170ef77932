//! Easel's read side: a submission's status and result, a competition's leaderboard (keyset
//! pagination), progress counts and streamed CSV/JSONL exports, with an OpenAPI document.
//! It reads Postgres, and the thumbnails and previews the pipeline stored in S3; its dashboard
//! (`/dashboard`) serves the same to people in a browser, and takes jurors' scores.

pub mod dashboard;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
