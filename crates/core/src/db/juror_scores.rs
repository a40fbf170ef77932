//! `juror_scores`: the latest score of each juror for each entry of a round.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use easel_rubric::Rubric;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgExecutor, Row};
use uuid::Uuid;

use crate::domain::JurorScore;

/// A stored juror score.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredScore {
    pub submission_id: Uuid,
    pub juror_id: Uuid,
    pub score: JurorScore,
    pub updated_at: DateTime<Utc>,
}

impl<'r> FromRow<'r, PgRow> for StoredScore {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        // The five criteria are all set or all null (a table CHECK).
        let rubric = Rubric::<Option<f64>>::from_row(row)?.try_map(|value| value.ok_or(())).ok();
        Ok(Self {
            submission_id: row.try_get("submission_id")?,
            juror_id: row.try_get("juror_id")?,
            score: JurorScore {
                score: row.try_get("score")?,
                rubric,
                note: row.try_get("note")?,
                conflict: row.try_get("conflict")?,
            },
            updated_at: row.try_get("updated_at")?,
        })
    }
}

const COLUMNS: &str =
    "submission_id, juror_id, score, originality, color, texture, composition, content, note, conflict, updated_at";

/// One score to write.
#[derive(Debug, Clone)]
pub struct ScoreWrite {
    pub submission_id: Uuid,
    pub juror_id: Uuid,
    pub score: JurorScore,
}

/// Writes scores into a round (a juror's new score replaces their old one) and returns, for
/// each, the score it replaced — for the audit log. The caller makes sure no (entry, juror)
/// pair repeats and every entry is in the round.
pub async fn upsert(
    conn: &mut PgConnection,
    round_id: Uuid,
    writes: &[ScoreWrite],
) -> Result<Vec<Option<StoredScore>>, sqlx::Error> {
    let submissions: Vec<Uuid> = writes.iter().map(|w| w.submission_id).collect();
    let jurors: Vec<Uuid> = writes.iter().map(|w| w.juror_id).collect();
    let before: Vec<StoredScore> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM juror_scores \
         WHERE round_id = $1 AND (submission_id, juror_id) IN (SELECT * FROM UNNEST($2::uuid[], $3::uuid[])) \
         ORDER BY submission_id, juror_id FOR UPDATE"
    ))
    .bind(round_id)
    .bind(&submissions)
    .bind(&jurors)
    .fetch_all(&mut *conn)
    .await?;
    let mut before: HashMap<(Uuid, Uuid), StoredScore> =
        before.into_iter().map(|s| ((s.submission_id, s.juror_id), s)).collect();

    let criterion = |i: usize| writes.iter().map(|w| w.score.rubric.map(|r| r.to_array()[i])).collect::<Vec<Option<f64>>>();
    sqlx::query(
        "INSERT INTO juror_scores (round_id, submission_id, juror_id, score, originality, color, texture, composition, \
                                   content, note, conflict, updated_at) \
         SELECT $1, * , now() FROM UNNEST($2::uuid[], $3::uuid[], $4::float8[], $5::float8[], $6::float8[], \
                                           $7::float8[], $8::float8[], $9::float8[], $10::text[], $11::bool[]) \
         ON CONFLICT (round_id, submission_id, juror_id) DO UPDATE SET \
             score = EXCLUDED.score, originality = EXCLUDED.originality, color = EXCLUDED.color, \
             texture = EXCLUDED.texture, composition = EXCLUDED.composition, content = EXCLUDED.content, \
             note = EXCLUDED.note, conflict = EXCLUDED.conflict, updated_at = now()",
    )
    .bind(round_id)
    .bind(&submissions)
    .bind(&jurors)
    .bind(writes.iter().map(|w| w.score.score).collect::<Vec<_>>())
    .bind(criterion(0))
    .bind(criterion(1))
    .bind(criterion(2))
    .bind(criterion(3))
    .bind(criterion(4))
    .bind(writes.iter().map(|w| w.score.note.clone()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.score.conflict).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(writes.iter().map(|w| before.remove(&(w.submission_id, w.juror_id))).collect())
}

/// Every score of a round, conflicts included.
pub async fn for_round(db: impl PgExecutor<'_>, round_id: Uuid) -> Result<Vec<StoredScore>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM juror_scores WHERE round_id = $1 ORDER BY submission_id, juror_id"))
        .bind(round_id)
        .fetch_all(db)
        .await
}

/// One juror's score of one entry in a round.
pub async fn find(
    db: impl PgExecutor<'_>,
    round_id: Uuid,
    submission_id: Uuid,
    juror_id: Uuid,
) -> Result<Option<StoredScore>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM juror_scores WHERE round_id = $1 AND submission_id = $2 AND juror_id = $3"
    ))
    .bind(round_id)
    .bind(submission_id)
    .bind(juror_id)
    .fetch_optional(db)
    .await
}

/// One juror's scores in a round, by entry.
pub async fn of_juror(db: impl PgExecutor<'_>, round_id: Uuid, juror_id: Uuid) -> Result<HashMap<Uuid, StoredScore>, sqlx::Error> {
    let scores: Vec<StoredScore> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM juror_scores WHERE round_id = $1 AND juror_id = $2"))
            .bind(round_id)
            .bind(juror_id)
            .fetch_all(db)
            .await?;
    Ok(scores.into_iter().map(|s| (s.submission_id, s)).collect())
}

/// A juror's score of an entry, with the names of the round and the juror (an entry's page).
#[derive(Debug, Clone)]
pub struct EntryScore {
    pub round_id: Uuid,
    pub round: String,
    pub juror: String,
    pub stored: StoredScore,
}

/// Every juror score an entry has, over all rounds, oldest round first.
pub async fn of_entry(db: impl PgExecutor<'_>, submission_id: Uuid) -> Result<Vec<EntryScore>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT s.submission_id, s.juror_id, s.score, s.originality, s.color, s.texture, s.composition, s.content, \
                s.note, s.conflict, s.updated_at, r.id AS round_id, r.name AS round_name, j.name AS juror_name \
         FROM juror_scores s JOIN rounds r ON r.id = s.round_id JOIN jurors j ON j.id = s.juror_id \
         WHERE s.submission_id = $1 ORDER BY r.created_at, j.name",
    )
    .bind(submission_id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(EntryScore {
                round_id: row.try_get("round_id")?,
                round: row.try_get("round_name")?,
                juror: row.try_get("juror_name")?,
                stored: StoredScore::from_row(row)?,
            })
        })
        .collect()
}
