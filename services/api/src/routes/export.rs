//! Streamed exports: rows go from a Postgres cursor to the client in chunks, never all in
//! memory.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use easel_core::db::results::{self, ExportRow};
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use futures::StreamExt;
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::mpsc;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{find_competition, model_version};
use crate::startup::AppState;

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 32 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// Default: the model version that most recently scored the competition.
    pub model_version: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Csv,
    JsonLines,
}

/// Every submission of a competition with its result, as CSV (header row first; empty cells
/// where there is no result).
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/export.csv",
    params(("slug" = String, Path, description = "The competition"), ExportParams),
    responses(
        (status = 200, content_type = "text/csv", description = "submission_id, external_id, status, failure_code, model_version, score, overall, originality, color, texture, composition, content, critique, created_at"),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn export_csv(
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    export(state, slug, params, Format::Csv).await
}

/// Every submission of a competition with its result, one JSON object per line.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/export.jsonl",
    params(("slug" = String, Path, description = "The competition"), ExportParams),
    responses(
        (status = 200, content_type = "application/x-ndjson", description = "One object per submission, with the CSV's columns as fields"),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn export_jsonl(
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    export(state, slug, params, Format::JsonLines).await
}

async fn export(state: AppState, slug: String, params: ExportParams, format: Format) -> Result<Response, ApiError> {
    let competition = find_competition(&state.pool, &slug).await?;
    let version = model_version(&state.pool, &competition, params.model_version).await?;
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::JsonLines => ("application/x-ndjson", "jsonl"),
    };
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(produce(state.pool.clone(), competition.id, version, format, tx));
    let chunks = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    let disposition = format!("attachment; filename=\"{}.{extension}\"", competition.slug);
    Ok(([(CONTENT_TYPE, content_type.to_string()), (CONTENT_DISPOSITION, disposition)], Body::from_stream(chunks)).into_response())
}

type Chunk = Result<Bytes, std::io::Error>;

/// Encodes rows into chunks until the rows end or the client goes away (the send fails). A
/// database error mid-way ends the body with an error, so the client sees a broken download
/// rather than a short one.
async fn produce(pool: PgPool, competition_id: Uuid, version: Option<String>, format: Format, tx: mpsc::Sender<Chunk>) {
    let mut encoder = Encoder::new(format);
    let mut rows = results::export(&pool, competition_id, version);
    while let Some(row) = rows.next().await {
        let encoded = row.map_err(std::io::Error::other).and_then(|row| encoder.push(&row));
        if let Err(e) = encoded {
            tracing::error!(error = %e, "export failed");
            let _ = tx.send(Err(e)).await;
            return;
        }
        if encoder.pending() >= CHUNK && tx.send(Ok(encoder.take())).await.is_err() {
            return;
        }
    }
    match encoder.finish() {
        Ok(rest) if !rest.is_empty() => {
            let _ = tx.send(Ok(rest)).await;
        }
        Ok(_) => {}
        Err(e) => {
            let _ = tx.send(Err(e)).await;
        }
    }
}

/// Rows encoded and not yet sent.
struct Encoder {
    format: Format,
    buffer: Vec<u8>,
}

impl Encoder {
    fn new(format: Format) -> Self {
        // The CSV header goes out even when there are no rows.
        let buffer = match format {
            Format::Csv => csv_header(),
            Format::JsonLines => Vec::new(),
        };
        Self { format, buffer }
    }

    fn push(&mut self, row: &ExportRow) -> std::io::Result<()> {
        match self.format {
            Format::Csv => {
                let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(&mut self.buffer);
                writer.serialize(row).map_err(std::io::Error::other)?;
                writer.flush()
            }
            Format::JsonLines => {
                serde_json::to_writer(&mut self.buffer, row)?;
                self.buffer.push(b'\n');
                Ok(())
            }
        }
    }

    fn pending(&self) -> usize {
        self.buffer.len()
    }

    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.buffer))
    }

    fn finish(mut self) -> std::io::Result<Bytes> {
        Ok(self.take())
    }
}

/// The CSV header row, in `ExportRow`'s field order.
fn csv_header() -> Vec<u8> {
    let columns = [
        "submission_id", "external_id", "status", "failure_code", "model_version", "score", "overall", "originality",
        "color", "texture", "composition", "content", "critique", "created_at",
    ];
    let mut header = columns.join(",").into_bytes();
    header.push(b'\n');
    header
}
