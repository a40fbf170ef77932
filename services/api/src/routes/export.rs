//! Streamed exports: rows go from Postgres, a page at a time, to the client in chunks, never
//! all in memory, and no pool connection waits on a slow client.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use easel_core::auth::{self, Access, Caller};
use easel_core::db::results::{self, ExportRow};
use easel_core::export::csv_safe;
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use easel_rubric::OUTPUTS;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::mpsc;
use utoipa::IntoParams;
use uuid::Uuid;

use super::model_version;
use crate::state::AppState;

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 32 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// Default: the competition's pinned model version, else the newest that scored it.
    pub model_version: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Csv,
    JsonLines,
}

/// Every submission of a competition with its result, as CSV (header row first; empty cells
/// where there is no result). A text cell that a spreadsheet could read as a formula (starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return) starts with `'`; scores are plain numbers.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/export.csv",
    params(("slug" = String, Path, description = "The competition"), ExportParams),
    responses(
        (status = 200, content_type = "text/csv", description = "submission_id, external_id, status, failure_code, model_version, score, overall, originality, color, texture, composition, content, critique, created_at, override_score, effective_score, scoring, uncertainty_overall, uncertainty_originality, uncertainty_color, uncertainty_texture, uncertainty_composition, uncertainty_content"),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn export_csv(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    params: Result<ApiQuery<ExportParams>, ApiError>,
) -> Result<Response, ApiError> {
    export(state, caller, slug, params, Format::Csv).await
}

/// Every submission of a competition with its result, one JSON object per line.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/export.jsonl",
    params(("slug" = String, Path, description = "The competition"), ExportParams),
    responses(
        (status = 200, content_type = "application/x-ndjson", description = "One object per submission, with the CSV's columns as fields"),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn export_jsonl(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    params: Result<ApiQuery<ExportParams>, ApiError>,
) -> Result<Response, ApiError> {
    export(state, caller, slug, params, Format::JsonLines).await
}

/// Exports read every column, descriptions and critiques included: never public.
async fn export(
    state: AppState,
    caller: Caller,
    slug: String,
    params: Result<ApiQuery<ExportParams>, ApiError>,
    format: Format,
) -> Result<Response, ApiError> {
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Read, false).await?;
    let ApiQuery(params) = params?;
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

/// Rows read from Postgres per query.
const PAGE_ROWS: i64 = 500;

/// Encodes rows into chunks until the rows end or the client goes away (the send fails). Rows
/// are read a page at a time, and no connection is held while a chunk waits for the client. A
/// database error mid-way ends the body with an error, so the client sees a broken download
/// rather than a short one.
async fn produce(pool: PgPool, competition_id: Uuid, version: Option<String>, format: Format, tx: mpsc::Sender<Chunk>) {
    let mut encoder = Encoder::new(format);
    let mut after = None;
    loop {
        let page = match results::export_page(&pool, competition_id, version.as_deref(), after, PAGE_ROWS).await {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "export failed");
                let _ = tx.send(Err(std::io::Error::other(e))).await;
                return;
            }
        };
        let last_page = (page.len() as i64) < PAGE_ROWS;
        after = page.last().map(|row| (row.created_at, row.submission_id));
        for row in &page {
            if let Err(e) = encoder.push(row) {
                tracing::error!(error = %e, "export failed");
                let _ = tx.send(Err(e)).await;
                return;
            }
            if encoder.pending() >= CHUNK && tx.send(Ok(encoder.take())).await.is_err() {
                return;
            }
        }
        if last_page {
            break;
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
                writer.serialize(CsvRow::from(row)).map_err(std::io::Error::other)?;
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

/// An export row as CSV cells: every text cell through [`csv_safe`], so that opening the file
/// in a spreadsheet cannot run a cell as a formula; numbers stay numbers.
#[derive(Serialize)]
struct CsvRow<'a> {
    submission_id: Uuid,
    external_id: Option<Cow<'a, str>>,
    status: Cow<'a, str>,
    failure_code: Option<Cow<'a, str>>,
    model_version: Option<Cow<'a, str>>,
    score: Option<f32>,
    /// Six cells in the head's order: the csv crate writes an array's items as cells, but cannot
    /// write a flattened struct.
    scores: [Option<f32>; 6],
    critique: Option<Cow<'a, str>>,
    created_at: DateTime<Utc>,
    override_score: Option<f32>,
    effective_score: Option<f32>,
    scoring: Option<Cow<'a, str>>,
    /// Six cells, `uncertainty_overall` … `uncertainty_content`, in the head's order.
    uncertainty: [Option<f32>; 6],
}

impl<'a> From<&'a ExportRow> for CsvRow<'a> {
    fn from(row: &'a ExportRow) -> Self {
        // Taken apart whole, so that a column added to the export cannot miss the escaping.
        let ExportRow {
            submission_id,
            external_id,
            status,
            failure_code,
            model_version,
            score,
            scores,
            critique,
            created_at,
            override_score,
            effective_score,
            scoring,
            uncertainty,
        } = row;
        let text = |cell: &'a Option<String>| cell.as_deref().map(csv_safe);
        Self {
            submission_id: *submission_id,
            external_id: text(external_id),
            status: csv_safe(status),
            failure_code: text(failure_code),
            model_version: text(model_version),
            score: *score,
            scores: scores.to_array(),
            critique: text(critique),
            created_at: *created_at,
            override_score: *override_score,
            effective_score: *effective_score,
            scoring: text(scoring),
            uncertainty: uncertainty.as_ref().map_or([None; 6], |u| u.0.to_array().map(Some)),
        }
    }
}

/// The CSV header row, in `ExportRow`'s field order (its scores flattened).
fn csv_header() -> Vec<u8> {
    // A JSON line's `uncertainty` object is six cells here, one per output.
    let uncertainty = OUTPUTS.map(|name| format!("uncertainty_{name}"));
    let columns: Vec<&str> = ["submission_id", "external_id", "status", "failure_code", "model_version", "score"]
        .into_iter()
        .chain(OUTPUTS)
        .chain(["critique", "created_at", "override_score", "effective_score", "scoring"])
        .chain(uncertainty.iter().map(String::as_str))
        .collect();
    let mut header = columns.join(",").into_bytes();
    header.push(b'\n');
    header
}

#[cfg(test)]
mod tests {
    use easel_rubric::RubricScores;

    use super::*;

    #[test]
    fn csv_text_cells_cannot_be_formulas() {
        let row = ExportRow {
            submission_id: Uuid::nil(),
            external_id: Some("=HYPERLINK(\"http://evil.example\",\"open\")".into()),
            status: "done".into(),
            failure_code: None,
            model_version: Some("easel-v1".into()),
            score: Some(-0.0),
            scores: RubricScores::from_array([71.5, 60.0, 70.0, 80.0, 90.0, 100.0].map(Some)),
            critique: Some("@SUM(1+1)\n-a second line".into()),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            override_score: Some(88.5),
            effective_score: Some(88.5),
            scoring: Some("zero-shot".into()),
            uncertainty: Some(sqlx::types::Json(RubricScores::from_array([4.5, 1.0, 2.0, 3.0, 4.0, 5.25]))),
        };
        let mut encoder = Encoder::new(Format::Csv);
        encoder.push(&row).unwrap();
        let bytes = encoder.take();
        let mut reader = csv::Reader::from_reader(bytes.as_ref());
        let header = reader.headers().unwrap().clone();
        let record = reader.records().next().unwrap().unwrap();
        let cell = |name: &str| &record[header.iter().position(|h| h == name).unwrap()];
        assert_eq!(cell("external_id"), "'=HYPERLINK(\"http://evil.example\",\"open\")");
        assert_eq!(cell("critique"), "'@SUM(1+1)\n-a second line");
        assert_eq!(cell("model_version"), "easel-v1");
        // Numbers are written as numbers, a negative one included.
        assert_eq!(cell("score"), "-0.0");
        assert_eq!(cell("overall"), "71.5");
        assert_eq!(cell("effective_score"), "88.5");
        assert_eq!(cell("scoring"), "zero-shot");
        assert_eq!(cell("uncertainty_overall"), "4.5");
        assert_eq!(cell("uncertainty_content"), "5.25");
        assert_eq!(record.len(), header.len());
    }

    #[test]
    fn csv_columns_and_json_fields_stay_as_documented() {
        let header = String::from_utf8(csv_header()).unwrap();
        assert_eq!(
            header,
            "submission_id,external_id,status,failure_code,model_version,score,overall,originality,color,texture,\
             composition,content,critique,created_at,override_score,effective_score,scoring,uncertainty_overall,\
             uncertainty_originality,uncertainty_color,uncertainty_texture,uncertainty_composition,uncertainty_content\n"
        );
        // A submission without a result: empty cells, and nulls in its JSON line, in the same order.
        let row = ExportRow {
            submission_id: Uuid::nil(),
            external_id: None,
            status: "pending".into(),
            failure_code: None,
            model_version: None,
            score: None,
            scores: RubricScores::from_array([None; 6]),
            critique: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            override_score: None,
            effective_score: None,
            scoring: None,
            uncertainty: None,
        };
        let mut csv = Encoder::new(Format::Csv);
        csv.push(&row).unwrap();
        let text = String::from_utf8(csv.take().to_vec()).unwrap();
        assert_eq!(text.lines().nth(1).unwrap(), format!("{},,pending,,,,,,,,,,,1970-01-01T00:00:00Z,,,,,,,,,", Uuid::nil()));
        let mut jsonl = Encoder::new(Format::JsonLines);
        jsonl.push(&row).unwrap();
        let line = String::from_utf8(jsonl.take().to_vec()).unwrap();
        let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line).unwrap();
        // The JSON line has one `uncertainty` field where the CSV has six columns.
        let columns: Vec<&str> = header
            .trim_end()
            .split(',')
            .map(|c| if c.starts_with("uncertainty_") { "uncertainty" } else { c })
            .fold(Vec::new(), |mut columns, c| {
                if columns.last() != Some(&c) {
                    columns.push(c);
                }
                columns
            });
        assert_eq!(fields.len(), columns.len());
        let positions: Vec<usize> = columns.iter().map(|c| line.find(&format!("\"{c}\":")).expect(c)).collect();
        assert!(positions.is_sorted(), "{line}");
        assert_eq!(fields["composition"], serde_json::Value::Null);
    }
}
