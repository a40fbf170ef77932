//! The sample paintings: 174 CC0 Metropolitan Museum JPEGs fetched by
//! `scripts/fetch-paintings.sh` into `.cache/paintings` (or `EASEL_PAINTINGS_DIR`).

use std::path::PathBuf;
use std::sync::OnceLock;

use serde::Deserialize;

/// A sample painting with the museum's description of it.
#[derive(Debug, Clone)]
pub struct Painting {
    pub file: String,
    pub external_id: String,
    pub description: String,
    pub bytes: Vec<u8>,
}

#[derive(Deserialize)]
struct Line {
    file: String,
    external_id: String,
    description: String,
}

pub fn paintings_dir() -> PathBuf {
    std::env::var_os("EASEL_PAINTINGS_DIR").map(PathBuf::from).unwrap_or_else(|| crate::repo_root().join(".cache/paintings"))
}

/// All sample paintings, read once.
pub fn paintings() -> &'static [Painting] {
    static PAINTINGS: OnceLock<Vec<Painting>> = OnceLock::new();
    PAINTINGS.get_or_init(|| {
        let dir = paintings_dir();
        let manifest = std::fs::read_to_string(dir.join("manifest.jsonl")).unwrap_or_else(|e| {
            panic!("cannot read {}/manifest.jsonl ({e}); run scripts/fetch-paintings.sh first", dir.display())
        });
        manifest
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let line: Line = serde_json::from_str(line).expect("a manifest line");
                let bytes = std::fs::read(dir.join(&line.file)).unwrap_or_else(|e| panic!("{}: {e}", line.file));
                Painting { file: line.file, external_id: line.external_id, description: line.description, bytes }
            })
            .collect()
    })
}
