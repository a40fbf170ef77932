//! Bulk submissions for research studies: a manifest (CSV or JSONL) naming each file with its
//! optional external id and description, then the files — as parts of one multipart request,
//! or together in a zip. Every file is validated and stored like a single upload; all the
//! accepted ones are inserted, with their jobs, in one transaction.

use std::collections::HashMap;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::extract::multipart::Field;
use bytes::{Bytes, BytesMut};
use easel_core::configuration::IngestSettings;
use easel_core::auth::Caller;
use easel_core::db::submissions::{self, NewSubmission};
use easel_core::domain::{Description, ExternalId, SubmissionStatus};
use easel_core::http::{ApiError, ApiPath, ErrorBody, ErrorDetail};
use easel_core::metrics::{BULK_REQUESTS_IN_FLIGHT, SUBMISSIONS_TOTAL, Stage};
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{competition_to_submit, duplicate_field, multipart_error, multipart_rejection};
use crate::archive::{Archive, ArchiveError};
use crate::spool::{Spooled, spool};
use crate::staging::{Upload, stage, too_many_bytes};
use crate::state::AppState;

/// The multipart form of a bulk submission (for the OpenAPI document). Send either
/// `manifest` first and then one `files` part per file (its filename as in the manifest), or
/// a single `archive`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BulkForm {
    /// CSV with a header (`file,external_id,description`) or JSON lines
    /// (`{"file": ..., "external_id": ..., "description": ...}`); `.csv`/`.jsonl` filename or
    /// `text/csv`/`application/x-ndjson` type, else sniffed.
    #[schema(value_type = Option<String>, format = Binary)]
    manifest: Option<Vec<u8>>,
    /// The images, each part's filename matching a manifest `file`.
    #[schema(value_type = Option<Vec<String>>, format = Binary)]
    files: Option<Vec<Vec<u8>>>,
    /// A zip with `manifest.csv` or `manifest.jsonl` at its root and the files it names.
    #[schema(value_type = Option<String>, format = Binary)]
    archive: Option<Vec<u8>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkOutcome {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// One per manifest entry, in manifest order.
    pub items: Vec<BulkItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkItem {
    pub file: String,
    pub external_id: Option<String>,
    pub id: Option<Uuid>,
    pub status: Option<SubmissionStatus>,
    pub duplicate: bool,
    /// Why this entry was refused (nothing was stored for it).
    pub error: Option<ErrorDetail>,
}

/// Submits many paintings at once.
#[utoipa::path(
    post,
    path = "/v1/competitions/{slug}/bulk",
    params(("slug" = String, Path, description = "The competition")),
    request_body(content = BulkForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Each entry accepted, a duplicate, or refused with its reason", body = BulkOutcome),
        (status = 400, description = "Malformed form or manifest, or a file the manifest does not name", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not submit to this competition", body = ErrorBody),
        (status = 404, description = "Unknown competition (or one the key holds nothing in)", body = ErrorBody),
        (status = 413, description = "Over the bulk size or entry limit", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn submit_bulk(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<BulkOutcome>, ApiError> {
    let competition = competition_to_submit(&state, &caller, &slug).await?;
    let _serving = BulkSlot::take(&state)?;
    let mut multipart = multipart.map_err(multipart_rejection)?;
    let mut field = multipart
        .next_field()
        .await
        .map_err(multipart_error)?
        .ok_or_else(|| ApiError::bad_request("missing_field", "send a `manifest` part first, or an `archive`"))?;
    let batch = match field.name().unwrap_or_default() {
        "manifest" => {
            let hint = ManifestFormat::from_part(field.file_name(), field.content_type());
            let manifest = read_manifest(&mut field, &state.limits).await?;
            drop(field);
            let mut batch = Batch::new(&state, competition.id, parse_manifest(&manifest, hint, &state)?);
            while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
                if !matches!(field.name(), Some("files" | "file")) {
                    let name = field.name().unwrap_or_default().to_string();
                    return Err(ApiError::bad_request("invalid.multipart", format!("unexpected field {name:?} after the manifest; expected `files`")));
                }
                let file = field
                    .file_name()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_request("invalid.multipart", "a `files` part has no filename"))?;
                let declared_type = field.content_type().map(str::to_string);
                let image = spool(&mut field, state.limits.max_image_bytes).await?;
                batch.add_file(&file, image, declared_type).await?;
            }
            batch
        }
        "archive" => {
            let archive = spool(&mut field, state.limits.max_bulk_bytes).await?.ok_or_else(|| too_large("the archive"))?;
            drop(field);
            if multipart.next_field().await.map_err(multipart_error)?.is_some() {
                return Err(ApiError::bad_request("invalid.multipart", "send the archive alone"));
            }
            // The manifest and one entry per file it names, plus as many folders.
            let max_entries = 1 + 2 * state.limits.max_bulk_entries as u64;
            let max_manifest = state.limits.max_manifest_bytes();
            let (mut archive, manifest_name, manifest) = blocking(move || {
                let mut archive = Archive::open(archive.into_file(), max_entries)?;
                let (name, manifest) = archive.manifest(max_manifest)?;
                Ok((archive, name, manifest))
            })
            .await?;
            let manifest = manifest.ok_or_else(|| too_large("the manifest"))?;
            let format = if manifest_name.ends_with(".csv") { ManifestFormat::Csv } else { ManifestFormat::JsonLines };
            let mut batch = Batch::new(&state, competition.id, parse_manifest(&manifest, format, &state)?);
            // Every file in the archive must be named before anything is decompressed.
            let names = archive.file_names().map_err(|e| ApiError::bad_request("invalid.archive", e.to_string()))?;
            if let Some(stray) = names.into_iter().find(|n| n != manifest_name && !batch.index.contains_key(n)) {
                return Err(ApiError::bad_request("invalid.manifest", format!("the file {stray:?} is not in the manifest")));
            }
            let named: Vec<String> = batch.entries.iter().map(|e| e.file.clone()).filter(|f| archive.contains(f)).collect();
            let max_image = state.limits.max_image_bytes;
            for file in named {
                let name = file.clone();
                let (back, image) = blocking(move || {
                    let image = archive.extract(&name, max_image)?;
                    Ok((archive, image))
                })
                .await?;
                archive = back;
                batch.add_file(&file, image, None).await?;
            }
            batch
        }
        other => {
            return Err(ApiError::bad_request(
                "invalid.multipart",
                format!("unexpected first field {other:?}; expected `manifest` or `archive`"),
            ));
        }
    };
    let outcome = batch.finish().await?;
    for (outcome_name, count) in [("accepted", outcome.accepted), ("duplicate", outcome.duplicates), ("rejected", outcome.rejected)] {
        metrics::counter!(SUBMISSIONS_TOTAL, "outcome" => outcome_name).increment(count as u64);
    }
    Ok(Json(outcome))
}

/// One of the pod's `ingest.bulk_requests` slots, held while a bulk request is served and
/// counted in `easel_bulk_requests_in_flight`.
struct BulkSlot(#[allow(dead_code)] OwnedSemaphorePermit);

impl BulkSlot {
    /// A free slot, or 503 `ingest.busy` with Retry-After.
    fn take(state: &AppState) -> Result<Self, ApiError> {
        let permit = state.bulk_slots.clone().try_acquire_owned().map_err(|_| {
            let mut busy = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ingest.busy", "too many bulk requests at once; retry shortly");
            busy.retry_after = Some(5);
            busy
        })?;
        metrics::gauge!(BULK_REQUESTS_IN_FLIGHT).increment(1.0);
        Ok(Self(permit))
    }
}

impl Drop for BulkSlot {
    fn drop(&mut self) {
        metrics::gauge!(BULK_REQUESTS_IN_FLIGHT).decrement(1.0);
    }
}

fn too_large(what: &str) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request.too_large", format!("{what} is over the bulk size limit"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ManifestFormat {
    Csv,
    JsonLines,
    /// JSON lines if the first non-blank character is `{`, CSV otherwise.
    Sniff,
}

impl ManifestFormat {
    fn from_part(file_name: Option<&str>, content_type: Option<&str>) -> Self {
        let name = file_name.unwrap_or_default().to_ascii_lowercase();
        let kind = content_type.unwrap_or_default().to_ascii_lowercase();
        if name.ends_with(".csv") || kind.starts_with("text/csv") {
            Self::Csv
        } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") || kind.contains("ndjson") || kind.contains("jsonl") {
            Self::JsonLines
        } else {
            Self::Sniff
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestLine {
    file: String,
    external_id: Option<String>,
    description: Option<String>,
}

/// A manifest entry, parsed; `problem` refuses it (bad external id or description).
struct Entry {
    file: String,
    raw_external_id: Option<String>,
    external_id: Option<ExternalId>,
    description: Option<Description>,
    problem: Option<ApiError>,
}

fn parse_manifest(bytes: &[u8], format: ManifestFormat, state: &AppState) -> Result<Vec<Entry>, ApiError> {
    let bad = |message: String| ApiError::bad_request("invalid.manifest", message);
    let text = std::str::from_utf8(bytes).map_err(|_| bad("the manifest is not valid UTF-8".into()))?;
    let format = match format {
        ManifestFormat::Sniff if text.trim_start().starts_with('{') => ManifestFormat::JsonLines,
        ManifestFormat::Sniff => ManifestFormat::Csv,
        known => known,
    };
    let lines: Vec<ManifestLine> = match format {
        ManifestFormat::JsonLines => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(n, line)| serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", n + 1))))
            .collect::<Result<_, _>>()?,
        _ => csv::ReaderBuilder::new()
            .trim(csv::Trim::Headers)
            .from_reader(text.as_bytes())
            .deserialize()
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("CSV: {e}")))?,
    };
    if lines.is_empty() {
        return Err(bad("the manifest lists no files".into()));
    }
    if lines.len() > state.limits.max_bulk_entries {
        return Err(too_many_entries(state.limits.max_bulk_entries));
    }
    let mut seen = HashMap::new();
    let mut entries = Vec::with_capacity(lines.len());
    for (n, line) in lines.into_iter().enumerate() {
        if line.file.is_empty() {
            return Err(bad(format!("entry {}: `file` is empty", n + 1)));
        }
        if let Some(first) = seen.insert(line.file.clone(), n) {
            return Err(bad(format!("{:?} is listed twice (entries {} and {})", line.file, first + 1, n + 1)));
        }
        let external_id = line
            .external_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .map(|id| ExternalId::parse(id, state.limits.max_external_id_bytes))
            .transpose();
        let description = line
            .description
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| Description::parse(d, state.limits.max_description_bytes))
            .transpose();
        let (external_id, description, problem) = match (external_id, description) {
            (Ok(e), Ok(d)) => (e, d, None),
            (Err(e), _) | (_, Err(e)) => (None, None, Some(ApiError::from(e))),
        };
        entries.push(Entry { file: line.file, raw_external_id: line.external_id, external_id, description, problem });
    }
    Ok(entries)
}

/// Runs blocking archive work off the async threads; its errors as 4xx answers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)?.map_err(|e| match e {
        ArchiveError::TooManyEntries { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request.too_many_entries", e.to_string())
        }
        ArchiveError::Io(io) => ApiError::internal(io),
        other => ApiError::bad_request("invalid.archive", other.to_string()),
    })
}

/// Reads the manifest part, counting its lines as they arrive: one over `max_bulk_entries`
/// (and a header) ends the read at once with 413, as does a manifest over its byte bound.
async fn read_manifest(field: &mut Field<'_>, limits: &IngestSettings) -> Result<Bytes, ApiError> {
    let max_bytes = limits.max_manifest_bytes();
    let max_lines = limits.max_bulk_entries + 1;
    let mut buffer = BytesMut::new();
    let mut lines = 0usize;
    let mut line_has_text = false;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if buffer.len() + chunk.len() > max_bytes {
            return Err(too_large("the manifest"));
        }
        for &byte in chunk.iter() {
            match byte {
                b'\n' => {
                    lines += usize::from(line_has_text);
                    line_has_text = false;
                }
                b' ' | b'\t' | b'\r' => {}
                _ => line_has_text = true,
            }
        }
        if lines + usize::from(line_has_text) > max_lines {
            return Err(too_many_entries(limits.max_bulk_entries));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

fn too_many_entries(max: usize) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request.too_many_entries", format!("over the limit of {max} entries"))
}

/// A bulk request in progress: the manifest's entries and their files being staged, a few at
/// a time.
struct Batch<'a> {
    state: &'a AppState,
    competition_id: Uuid,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    slots: Vec<Slot>,
    running: JoinSet<(usize, Result<NewSubmission, ApiError>)>,
}

/// Where an entry's file is.
enum Slot {
    /// Not sent (yet).
    Missing,
    Staging,
    Staged(Result<NewSubmission, ApiError>),
}

impl<'a> Batch<'a> {
    fn new(state: &'a AppState, competition_id: Uuid, entries: Vec<Entry>) -> Self {
        let index = entries.iter().enumerate().map(|(i, e)| (e.file.clone(), i)).collect();
        let slots = entries.iter().map(|_| Slot::Missing).collect();
        Self { state, competition_id, entries, index, slots, running: JoinSet::new() }
    }

    /// Starts staging `file` (`None`: over the size limit), waiting first if enough are running.
    async fn add_file(&mut self, file: &str, image: Option<Spooled>, declared_type: Option<String>) -> Result<(), ApiError> {
        let i = *self.index.get(file).ok_or_else(|| {
            ApiError::bad_request("invalid.manifest", format!("the file {file:?} is not in the manifest"))
        })?;
        if !matches!(self.slots[i], Slot::Missing) {
            return Err(duplicate_field(file));
        }
        if let Some(problem) = self.entries[i].problem.take() {
            self.slots[i] = Slot::Staged(Err(problem));
            return Ok(());
        }
        let Some(image) = image else {
            self.slots[i] = Slot::Staged(Err(too_many_bytes(self.state.limits.max_image_bytes)));
            return Ok(());
        };
        while self.running.len() >= self.state.limits.bulk_concurrency {
            self.collect_one().await?;
        }
        let entry = &self.entries[i];
        let upload = Upload { image, declared_type, external_id: entry.external_id.clone(), description: entry.description.clone() };
        let (state, competition_id) = (self.state.clone(), self.competition_id);
        self.slots[i] = Slot::Staging;
        self.running.spawn(async move { (i, stage(&state, competition_id, upload).await) });
        Ok(())
    }

    async fn collect_one(&mut self) -> Result<(), ApiError> {
        if let Some(joined) = self.running.join_next().await {
            let (i, staged) = joined.map_err(ApiError::internal)?;
            self.slots[i] = Slot::Staged(staged);
        }
        Ok(())
    }

    /// Waits for the staging, inserts what passed in one transaction and reports every entry.
    async fn finish(mut self) -> Result<BulkOutcome, ApiError> {
        while !self.running.is_empty() {
            self.collect_one().await?;
        }
        let accepted: Vec<(usize, NewSubmission)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| match slot {
                Slot::Staged(Ok(new)) => Some((i, new.clone())),
                _ => None,
            })
            .collect();
        let rows: Vec<NewSubmission> = accepted.iter().map(|(_, new)| new.clone()).collect();
        let inserted = Stage::Insert
            .time(rows.len(), submissions::insert_with_jobs(&self.state.pool, &rows))
            .await
            .map_err(ApiError::database)?;
        self.state.jobs_written.notify_one();
        let mut by_entry: HashMap<usize, submissions::Inserted> =
            accepted.iter().map(|(i, _)| *i).zip(inserted).collect();

        let mut outcome = BulkOutcome { accepted: 0, duplicates: 0, rejected: 0, items: Vec::with_capacity(self.entries.len()) };
        for (i, entry) in self.entries.into_iter().enumerate() {
            let mut item = BulkItem {
                file: entry.file.clone(),
                external_id: entry.raw_external_id,
                id: None,
                status: None,
                duplicate: false,
                error: None,
            };
            if let Some(inserted) = by_entry.remove(&i).filter(|inserted| !inserted.conflict) {
                item.id = Some(inserted.id);
                item.status = Some(inserted.status);
                item.duplicate = !inserted.created;
                if inserted.created { outcome.accepted += 1 } else { outcome.duplicates += 1 }
            } else {
                let error = match std::mem::replace(&mut self.slots[i], Slot::Missing) {
                    Slot::Staged(Err(e)) => e,
                    Slot::Staged(Ok(_)) => super::submissions::conflict(),
                    _ => ApiError::bad_request("bulk.missing_file", format!("no file {:?} was sent", entry.file)),
                };
                item.error = Some(ErrorDetail { code: error.code, message: error.message });
                outcome.rejected += 1;
            }
            outcome.items.push(item);
        }
        Ok(outcome)
    }
}
