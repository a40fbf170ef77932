//! The data manifest: one row per artwork, as JSON Lines or CSV, validated in full before any
//! training starts. Every bad row is reported with its line number; no row is ever dropped.
//!
//! JSONL, one object per line (blank lines are allowed):
//! ```json
//! {"id": "a17", "image": "images/a17.jpg", "description": "Oil on linen.",
//!  "overall": 72, "originality": 70, "color": 80, "texture": 65, "composition": 74, "content": 71,
//!  "raters": {"ann": 70, "ben": 74}, "critique": "Originality: ...", "meta": {"anything": 1}}
//! ```
//! CSV: a header row with the same column names; raters as `rater_<name>` columns; `meta_*`
//! columns are ignored; an empty cell is an absent value.
//!
//! `image` is a path relative to the manifest (or absolute), or `s3://bucket/key`. `overall`
//! and the rubric scores are in 1–100; the rubric scores are optional; `overall` may be left out
//! when raters' scores are given (it is then their mean). `id` defaults to the line number.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use easel_model::{OUTPUTS, Rubric, RubricScores};
use serde_json::Value;

use crate::error::{Result, TrainError};

/// Lowest and highest score a manifest may hold.
pub const SCORE_RANGE: (f32, f32) = (1.0, 100.0);

/// Where an artwork's image lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageRef {
    /// A file on this machine (relative paths are resolved against the manifest's folder).
    Local(PathBuf),
    /// An object in a bucket (`s3://bucket/key`), read through an S3-backed [`ImageSource`].
    S3 { bucket: String, key: String },
}

impl ImageRef {
    /// Parses a manifest's `image` field; `base` is the manifest's folder.
    pub fn parse(text: &str, base: &Path) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("image is empty".into());
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(Self::S3 { bucket: bucket.into(), key: key.into() })
                }
                _ => Err(format!("{text:?} is not s3://bucket/key")),
            };
        }
        if text.contains("://") {
            return Err(format!("{text:?}: only local paths and s3:// URLs are supported"));
        }
        let path = Path::new(text);
        Ok(Self::Local(if path.is_absolute() { path.to_path_buf() } else { base.join(path) }))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// Reads images named by a manifest. The local-file source is [`LocalFiles`]; the CLI wires an
/// S3-backed one (this crate does not depend on any cloud SDK).
pub trait ImageSource: Send + Sync {
    /// A cheap up-front check that the image exists and looks like an image.
    fn check(&self, image: &ImageRef) -> std::result::Result<(), String>;
    /// The encoded bytes.
    fn read(&self, image: &ImageRef) -> std::result::Result<Vec<u8>, String>;
}

/// Images on the local file system; `s3://` references are refused with a clear message.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFiles;

impl ImageSource for LocalFiles {
    fn check(&self, image: &ImageRef) -> std::result::Result<(), String> {
        match image {
            ImageRef::Local(path) => {
                let reader = image::ImageReader::open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?
                    .with_guessed_format()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if reader.format().is_none() {
                    return Err(format!("{}: not a recognised image format", path.display()));
                }
                reader.into_dimensions().map(|_| ()).map_err(|e| format!("{}: {e}", path.display()))
            }
            ImageRef::S3 { .. } => Err(format!("{image}: s3:// images need the S3 image source")),
        }
    }

    fn read(&self, image: &ImageRef) -> std::result::Result<Vec<u8>, String> {
        match image {
            ImageRef::Local(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
            ImageRef::S3 { .. } => Err(format!("{image}: s3:// images need the S3 image source")),
        }
    }
}

/// One artwork of the manifest, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// 1-based line of the manifest the row came from.
    pub line: usize,
    pub id: String,
    pub image: ImageRef,
    pub description: String,
    /// 1–100: the given overall score, or the raters' mean.
    pub overall: f32,
    /// The rubric scores, each optional.
    pub rubric: Rubric<Option<f32>>,
    /// Each rater's overall score, by rater name.
    pub raters: BTreeMap<String, f32>,
    pub critique: Option<String>,
}

impl Example {
    /// Targets in [`OUTPUTS`] order (overall first); `None` where a rubric score is absent.
    pub fn targets(&self) -> [Option<f32>; 6] {
        RubricScores { overall: Some(self.overall), rubric: self.rubric }.into_array()
    }
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: PathBuf,
    pub examples: Vec<Example>,
}

impl Dataset {
    /// Reads and validates `path` (`.csv` is CSV, anything else JSON Lines), checking every
    /// image through `source`. Fails with every bad row listed.
    pub fn load(path: &Path, source: &dyn ImageSource) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let rows = if is_csv { csv_rows(&text) } else { jsonl_rows(&text) };
        let examples = validate(rows, &base, source).map_err(|errors| ManifestErrors { path: path.to_path_buf(), errors })?;
        Ok(Self { path: path.to_path_buf(), examples })
    }

    /// Every rater named anywhere in the manifest, sorted.
    pub fn raters(&self) -> Vec<String> {
        let mut names: Vec<String> = self.examples.iter().flat_map(|e| e.raters.keys().cloned()).collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

/// One problem with one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the manifest (0: the file as a whole).
    pub line: usize,
    pub message: String,
}

/// Everything wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestErrors {
    pub path: PathBuf,
    pub errors: Vec<RowError>,
}

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = {
            let mut lines: Vec<usize> = self.errors.iter().map(|e| e.line).collect();
            lines.dedup();
            lines.len()
        };
        write!(f, "{}: {} problem(s) in {rows} row(s); nothing was trained on", self.path.display(), self.errors.len())?;
        for e in &self.errors {
            write!(f, "\n  line {}: {}", e.line, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

/// A row before validation: its line and its fields (`Err` when the line does not parse).
type RawRow = (usize, std::result::Result<serde_json::Map<String, Value>, String>);

fn jsonl_rows(text: &str) -> Vec<RawRow> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let parsed = match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(_) => Err("not a JSON object".to_string()),
                Err(e) => Err(format!("invalid JSON: {e}")),
            };
            (i + 1, parsed)
        })
        .collect()
}

fn csv_rows(text: &str) -> Vec<RawRow> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return vec![(1, Err(format!("unreadable CSV header: {e}")))],
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                rows.push((line, Err(format!("unreadable CSV row: {e}"))));
            }
            Ok(record) => {
                let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
                let mut map = serde_json::Map::new();
                let mut raters = serde_json::Map::new();
                let mut bad = Vec::new();
                for (name, cell) in headers.iter().zip(record.iter()) {
                    if cell.is_empty() || name.starts_with("meta_") {
                        continue;
                    }
                    let rater = name.strip_prefix("rater_").or_else(|| name.strip_prefix("rater:"));
                    if OUTPUTS.contains(&name) || rater.is_some() {
                        let value = match cell.parse::<f64>() {
                            Ok(v) => Value::from(v),
                            Err(_) => {
                                bad.push(format!("{name}: {cell:?} is not a number"));
                                continue;
                            }
                        };
                        match rater {
                            Some(r) => {
                                raters.insert(r.to_string(), value);
                            }
                            None => {
                                map.insert(name.to_string(), value);
                            }
                        }
                    } else {
                        map.insert(name.to_string(), Value::String(cell.to_string()));
                    }
                }
                if !raters.is_empty() {
                    map.insert("raters".into(), Value::Object(raters));
                }
                rows.push((line, if bad.is_empty() { Ok(map) } else { Err(bad.join("; ")) }));
            }
        }
    }
    rows
}

/// The fields a row may have, in the order an unknown field's error lists them.
fn known_fields() -> Vec<&'static str> {
    ["id", "image", "description"].into_iter().chain(OUTPUTS).chain(["raters", "critique", "meta"]).collect()
}

fn score(value: &Value, name: &str) -> std::result::Result<f32, String> {
    let v = value.as_f64().ok_or_else(|| format!("{name}: {value} is not a number"))?;
    let (lo, hi) = SCORE_RANGE;
    if !(v.is_finite() && (f64::from(lo)..=f64::from(hi)).contains(&v)) {
        return Err(format!("{name}: {v} is outside {lo}–{hi}"));
    }
    Ok(v as f32)
}

fn optional_text(fields: &serde_json::Map<String, Value>, name: &str, problems: &mut Vec<String>) -> Option<String> {
    match fields.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problems.push(format!("{name}: expected text, got {other}"));
            None
        }
    }
}

/// Turns one row's fields into an example, or lists everything wrong with it.
fn parse_row(
    line: usize,
    fields: &serde_json::Map<String, Value>,
    base: &Path,
    source: &dyn ImageSource,
) -> std::result::Result<Example, Vec<String>> {
    let mut problems = Vec::new();
    let known = known_fields();
    for key in fields.keys() {
        if !known.contains(&key.as_str()) {
            problems
                .push(format!("unknown field {key:?} (known: {}; put other data under \"meta\")", known.join(", ")));
        }
    }
    let id = match fields.get("id") {
        None | Some(Value::Null) => format!("line{line}"),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            problems.push(format!("id: expected text or a number, got {other}"));
            String::new()
        }
    };
    let image = match fields.get("image") {
        Some(Value::String(s)) => match ImageRef::parse(s, base) {
            Ok(image) => {
                if let Err(e) = source.check(&image) {
                    problems.push(format!("image: {e}"));
                }
                Some(image)
            }
            Err(e) => {
                problems.push(format!("image: {e}"));
                None
            }
        },
        None | Some(Value::Null) => {
            problems.push("image is missing".into());
            None
        }
        Some(other) => {
            problems.push(format!("image: expected a path or s3:// URL, got {other}"));
            None
        }
    };
    let description = optional_text(fields, "description", &mut problems).unwrap_or_default();
    let critique = optional_text(fields, "critique", &mut problems).filter(|c| !c.trim().is_empty());

    let mut raters = BTreeMap::new();
    match fields.get("raters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                match score(value, &format!("raters.{name}")) {
                    Ok(v) => {
                        raters.insert(name.clone(), v);
                    }
                    Err(e) => problems.push(e),
                }
            }
        }
        Some(Value::Array(values)) => {
            for (i, value) in values.iter().enumerate() {
                match score(value, &format!("raters[{i}]")) {
                    Ok(v) => {
                        raters.insert(format!("rater{}", i + 1), v);
                    }
                    Err(e) => problems.push(e),
                }
            }
        }
        Some(other) => problems.push(format!("raters: expected {{name: score}} or [scores], got {other}")),
    }
    let overall = match fields.get("overall") {
        Some(value) if !value.is_null() => score(value, "overall").map_err(|e| problems.push(e)).ok(),
        _ if !raters.is_empty() => Some(raters.values().sum::<f32>() / raters.len() as f32),
        _ => {
            problems.push("overall is missing (give an overall score or raters' scores)".into());
            None
        }
    };
    let rubric = Rubric::names().map(|name| {
        let value = fields.get(name).filter(|v| !v.is_null())?;
        score(value, name).map_err(|e| problems.push(e)).ok()
    });
    match (image, overall) {
        (Some(image), Some(overall)) if problems.is_empty() => {
            Ok(Example { line, id, image, description, overall, rubric, raters, critique })
        }
        _ => Err(problems),
    }
}

fn validate(rows: Vec<RawRow>, base: &Path, source: &dyn ImageSource) -> std::result::Result<Vec<Example>, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut examples = Vec::new();
    let mut seen_ids: HashMap<String, usize> = HashMap::new();
    let mut seen_images: HashMap<ImageRef, usize> = HashMap::new();
    if rows.is_empty() {
        errors.push(RowError { line: 0, message: "the manifest has no rows".into() });
    }
    for (line, fields) in rows {
        let fields = match fields {
            Ok(fields) => fields,
            Err(message) => {
                errors.push(RowError { line, message });
                continue;
            }
        };
        match parse_row(line, &fields, base, source) {
            Ok(example) => {
                let mut duplicate = false;
                if let Some(first) = seen_ids.insert(example.id.clone(), line) {
                    errors.push(RowError { line, message: format!("duplicate id {:?} (first on line {first})", example.id) });
                    duplicate = true;
                }
                if let Some(first) = seen_images.insert(example.image.clone(), line) {
                    errors.push(RowError {
                        line,
                        message: format!("duplicate image {} (first on line {first}); it would leak between splits", example.image),
                    });
                    duplicate = true;
                }
                if !duplicate {
                    examples.push(example);
                }
            }
            Err(problems) => errors.extend(problems.into_iter().map(|message| RowError { line, message })),
        }
    }
    if errors.is_empty() { Ok(examples) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_image_references() {
        let base = Path::new("/data");
        assert_eq!(ImageRef::parse("a/b.png", base).unwrap(), ImageRef::Local("/data/a/b.png".into()));
        assert_eq!(ImageRef::parse("/x.png", base).unwrap(), ImageRef::Local("/x.png".into()));
        assert_eq!(
            ImageRef::parse("s3://art/entries/1.jpg", base).unwrap(),
            ImageRef::S3 { bucket: "art".into(), key: "entries/1.jpg".into() }
        );
        assert!(ImageRef::parse("s3://art", base).is_err());
        assert!(ImageRef::parse("https://x/y.png", base).is_err());
        assert!(ImageRef::parse("  ", base).is_err());
    }
}
