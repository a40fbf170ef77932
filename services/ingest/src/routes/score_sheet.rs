//! An organiser imports a whole score sheet into a round: CSV with the columns `external_id`,
//! `juror` and `score`, optionally the five rubric criteria, `note` and `conflict`. All or
//! nothing: one bad row refuses the file with a 422 that names its line.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use easel_core::auth::{self, Access, Caller};
use easel_core::db::audit::{self, Action, NewEntry};
use easel_core::db::juror_scores::{self, ScoreWrite};
use easel_core::db::{jurors, rounds};
use easel_core::domain::{JurorScore, Name, Scale};
use easel_core::http::{ApiError, ApiPath, ErrorBody};
use easel_core::jury;
use easel_rubric::{CRITERIA, Rubric};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use easel_core::jury::round_closed;
use crate::state::AppState;

/// The largest sheet, in bytes.
pub const MAX_SHEET_BYTES: usize = 16 * 1024 * 1024;
/// The most rows in one sheet.
pub const MAX_SHEET_ROWS: usize = 200_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct SheetImported {
    /// Rows in the sheet.
    pub rows: usize,
    /// Scores that were new or changed (the others were already so).
    pub changed: usize,
    /// Jurors the sheet named that the competition did not have (added without keys).
    pub jurors_created: Vec<String>,
}

/// Imports a score sheet into a round (replacing those jurors' earlier scores of those entries).
#[utoipa::path(
    post,
    path = "/v1/competitions/{slug}/rounds/{round}/scores.csv",
    params(("slug" = String, Path, description = "The competition"), ("round" = Uuid, Path, description = "The round")),
    request_body(content = String, content_type = "text/csv",
        description = "Header row, then one score per row: external_id, juror, score [, originality, color, texture, composition, content] [, note] [, conflict]"),
    responses(
        (status = 200, body = SheetImported),
        (status = 400, description = "The round id is not a UUID", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not manage this competition (`admin` or `competition:<slug>:manage`)", body = ErrorBody),
        (status = 404, description = "No such competition or round", body = ErrorBody),
        (status = 409, description = "The round is closed", body = ErrorBody),
        (status = 413, description = "Over 16 MiB", body = ErrorBody),
        (status = 422, description = "A bad row (the message names its line); nothing was imported", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<ApiPath<(String, Uuid)>, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SheetImported>, ApiError> {
    let ApiPath((slug, round_id)) = path?;
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Manage, false).await?;
    let admin = caller.key()?;
    let body = body.map_err(|e| ApiError::new(e.status(), "request.too_large", e.body_text()))?;
    let round = jury::round(&state.pool, &competition, round_id).await?;
    let entries = rounds::entries(&state.pool, round.id, None).await.map_err(ApiError::database)?;
    let by_external_id: HashMap<String, Uuid> =
        entries.into_iter().filter_map(|e| e.external_id.map(|x| (x, e.submission_id))).collect();
    let sheet = parse(&body, round.scale(), &by_external_id).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "sheet.invalid", e))?;

    let mut tx = state.pool.begin().await.map_err(ApiError::database)?;
    if rounds::lock_open(&mut tx, round.id).await.map_err(ApiError::database)?.is_none() {
        return Err(round_closed());
    }
    let (ids, created) = jurors::find_or_create(&mut tx, competition.id, &sheet.jurors).await.map_err(ApiError::database)?;
    let mut writes = Vec::with_capacity(sheet.rows.len());
    for row in &sheet.rows {
        let juror_id = *ids.get(row.juror.as_str()).ok_or_else(|| ApiError::internal("a juror just added is not there"))?;
        writes.push(ScoreWrite { submission_id: row.submission_id, juror_id, score: row.score.clone() });
    }
    let before = juror_scores::upsert(&mut tx, round.id, &writes).await.map_err(ApiError::database)?;

    let mut log: Vec<NewEntry> = created
        .iter()
        .filter_map(|name| ids.get(name).map(|id| (name, id)))
        .map(|(name, id)| {
            NewEntry::by(admin, competition.id, Action::JurorCreated, json!({ "juror_id": id }))
                .change(None::<()>, Some(json!({ "name": name, "key_id": null })))
                .reason("named in an imported score sheet")
        })
        .collect();
    let mut changed = 0;
    for ((write, old), row) in writes.iter().zip(before).zip(&sheet.rows) {
        if old.as_ref().map(|o| &o.score) == Some(&write.score) {
            continue;
        }
        changed += 1;
        let subject = json!({
            "round_id": round.id, "submission_id": write.submission_id, "juror_id": write.juror_id, "juror": row.juror.as_str(),
        });
        log.push(
            NewEntry::by(admin, competition.id, Action::ScoreSet, subject)
                .change(old.map(|o| o.score), Some(&write.score))
                .reason(format!("imported score sheet, line {}", row.line)),
        );
    }
    audit::append(&mut *tx, &log).await.map_err(ApiError::database)?;
    tx.commit().await.map_err(ApiError::database)?;
    tracing::info!(round = %round.id, rows = sheet.rows.len(), changed, "score sheet imported");
    Ok(Json(SheetImported { rows: sheet.rows.len(), changed, jurors_created: created }))
}

/// A checked sheet.
#[derive(Debug)]
struct Sheet {
    rows: Vec<Row>,
    /// Every juror named, once each.
    jurors: Vec<Name>,
}

#[derive(Debug)]
struct Row {
    line: u64,
    submission_id: Uuid,
    juror: Name,
    score: JurorScore,
}

/// The columns a sheet may have.
#[derive(Debug, Default)]
struct Columns {
    external_id: usize,
    juror: usize,
    score: usize,
    rubric: Option<[usize; 5]>,
    note: Option<usize>,
    conflict: Option<usize>,
}

fn columns(header: &csv::StringRecord) -> Result<Columns, String> {
    let mut found: HashMap<String, usize> = HashMap::new();
    for (i, name) in header.iter().enumerate() {
        let name = name.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
        let known = ["external_id", "juror", "score", "note", "conflict"].contains(&name.as_str()) || CRITERIA.contains(&name.as_str());
        if !known {
            return Err(format!("line 1: unknown column {name:?}; the columns are external_id, juror, score, the five rubric criteria ({}), note and conflict", CRITERIA.join(", ")));
        }
        if found.insert(name.clone(), i).is_some() {
            return Err(format!("line 1: the column {name:?} appears twice"));
        }
    }
    let required = |name: &str| found.get(name).copied().ok_or_else(|| format!("line 1: the header has no {name:?} column"));
    let criteria: Vec<Option<usize>> = CRITERIA.iter().map(|c| found.get(*c).copied()).collect();
    let rubric = match criteria.iter().filter(|c| c.is_some()).count() {
        0 => None,
        5 => Some([0, 1, 2, 3, 4].map(|i| criteria[i].unwrap_or_default())),
        _ => return Err(format!("line 1: give all five rubric columns ({}) or none", CRITERIA.join(", "))),
    };
    Ok(Columns {
        external_id: required("external_id")?,
        juror: required("juror")?,
        score: required("score")?,
        rubric,
        note: found.get("note").copied(),
        conflict: found.get("conflict").copied(),
    })
}

fn parse(body: &[u8], scale: Scale, entries: &HashMap<String, Uuid>) -> Result<Sheet, String> {
    if body.len() > MAX_SHEET_BYTES {
        return Err(format!("the sheet is over {MAX_SHEET_BYTES} bytes"));
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(body);
    let header = reader.headers().map_err(|e| format!("line 1: {e}"))?.clone();
    let cols = columns(&header)?;
    let mut rows = Vec::new();
    let mut seen: HashMap<(Uuid, String), u64> = HashMap::new();
    let mut jurors: Vec<Name> = Vec::new();
    let mut juror_names: HashSet<String> = HashSet::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.position() {
            Some(p) => format!("line {}: {e}", p.line()),
            None => e.to_string(),
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or_default();
        if rows.len() == MAX_SHEET_ROWS {
            return Err(format!("line {line}: a sheet holds at most {MAX_SHEET_ROWS} rows"));
        }
        let at = |e: String| format!("line {line}: {e}");
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let external_id = cell(cols.external_id);
        let submission_id = *entries
            .get(external_id)
            .ok_or_else(|| at(format!("no entry of this round has the external_id {external_id:?}")))?;
        let juror = Name::parse("juror", cell(cols.juror)).map_err(|e| at(e.to_string()))?;
        let number = |field: &str, raw: &str| -> Result<Option<f64>, String> {
            if raw.is_empty() {
                return Ok(None);
            }
            raw.parse::<f64>().map(Some).map_err(|_| at(format!("{field} {raw:?} is not a number")))
        };
        let score = number("score", cell(cols.score))?;
        let rubric = match cols.rubric {
            None => None,
            Some(indices) => {
                let values: Vec<Option<f64>> =
                    indices.iter().zip(CRITERIA).map(|(&i, name)| number(name, cell(i))).collect::<Result<_, _>>()?;
                match values.iter().filter(|v| v.is_some()).count() {
                    0 => None,
                    5 => Some(Rubric::from_array([0, 1, 2, 3, 4].map(|i| values[i].unwrap_or_default()))),
                    _ => return Err(at("give all five rubric scores or none".into())),
                }
            }
        };
        let conflict = match cols.conflict.map(cell).unwrap_or("") {
            "" | "0" | "false" | "no" => false,
            "1" | "true" | "yes" => true,
            other => return Err(at(format!("conflict {other:?} is not true/false"))),
        };
        let note = cols.note.map(cell).filter(|n| !n.is_empty());
        let score = JurorScore::parse(scale, score, rubric, note, conflict).map_err(|e| at(e.to_string()))?;
        if let Some(first) = seen.insert((submission_id, juror.as_str().to_string()), line) {
            return Err(at(format!("{:?} scored {external_id:?} already on line {first}", juror.as_str())));
        }
        if juror_names.insert(juror.as_str().to_string()) {
            jurors.push(juror.clone());
        }
        rows.push(Row { line, submission_id, juror, score });
    }
    if rows.is_empty() {
        return Err("the sheet has no rows".into());
    }
    Ok(Sheet { rows, jurors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> HashMap<String, Uuid> {
        [("A-1", 1u128), ("A-2", 2), ("=cmd", 3)].into_iter().map(|(x, n)| (x.to_string(), Uuid::from_u128(n))).collect()
    }

    const SCALE: Scale = Scale { min: 1, max: 10 };

    fn error(sheet: &str) -> String {
        parse(sheet.as_bytes(), SCALE, &entries()).unwrap_err()
    }

    #[test]
    fn a_good_sheet_parses() {
        let sheet = "external_id,juror,score,originality,color,texture,composition,content,note,conflict\n\
                     A-1,Anna,7,6,7,8,7,6,\"fine, really\",\n\
                     A-2,\"Smith, J.\",3.5,,,,,,,\n\
                     A-2,Anna,,,,,,,,true\n";
        let parsed = parse(sheet.as_bytes(), SCALE, &entries()).unwrap();
        assert_eq!(parsed.rows.len(), 3);
        assert_eq!(parsed.jurors.iter().map(Name::as_str).collect::<Vec<_>>(), ["Anna", "Smith, J."]);
        assert_eq!(parsed.rows[0].score.rubric.map(|r| r.to_array()), Some([6.0, 7.0, 8.0, 7.0, 6.0]));
        assert_eq!(parsed.rows[0].score.note.as_deref(), Some("fine, really"));
        assert!(parsed.rows[2].score.conflict && parsed.rows[2].score.score.is_none());
        assert_eq!(parsed.rows[1].line, 3);
    }

    #[test]
    fn bad_rows_name_their_line() {
        let head = "external_id,juror,score\n";
        assert!(error(&format!("{head}A-1,Anna,7\nA-9,Anna,7\n")).starts_with("line 3: no entry"));
        assert!(error(&format!("{head}A-1,Anna,11\n")).starts_with("line 2: score"));
        assert!(error(&format!("{head}A-1,Anna,seven\n")).starts_with("line 2: score \"seven\""));
        assert!(error(&format!("{head}A-1,Anna,NaN\n")).starts_with("line 2:"));
        assert!(error(&format!("{head}A-1,Anna,7\nA-1,Anna,8\n")).contains("already on line 2"));
        assert!(error(&format!("{head}A-1,,7\n")).starts_with("line 2: juror"));
        assert!(error(&format!("{head}A-1,Anna\u{202e},7\n")).starts_with("line 2: juror"));
        assert!(error(&format!("{head}A-1,Anna,7,extra\n")).starts_with("line 2:"));
        assert!(error(&format!("{head}A-1,Anna,\n")).starts_with("line 2: score"));
        assert!(error("external_id,juror\nA-1,Anna\n").contains("no \"score\" column"));
        assert!(error("external_id,juror,score,originality\n").contains("all five rubric columns"));
        assert!(error("external_id,juror,score,bribe\n").contains("unknown column"));
        assert!(error(head).contains("no rows"));
        assert!(error("").starts_with("line 1"));
        assert!(error(&format!("{head}\"A-1,Anna,7\n")).starts_with("line"));
    }

    #[test]
    fn hostile_cells_are_data_not_commands() {
        let parsed = parse(b"external_id,juror,score\n=cmd,@SUM(A1),5\n", SCALE, &entries()).unwrap();
        assert_eq!(parsed.rows[0].submission_id, Uuid::from_u128(3));
        assert_eq!(parsed.rows[0].juror.as_str(), "@SUM(A1)");
        let bytes = [b"external_id,juror,score\nA-1,".as_slice(), &[0xff, 0xfe], b",5\n"].concat();
        assert!(parse(&bytes, SCALE, &entries()).is_err(), "not UTF-8");
    }
}
