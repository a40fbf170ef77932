//! The critique-similarity embedder against sentence-transformers: all-MiniLM-L6-v2 embeddings
//! of a few sentences (one past the 256-token limit) from
//! `scripts/reference/make_minilm_fixture.py`. Needs `.cache/minilm` (scripts/fetch-minilm.sh).

use std::path::Path;

use candle_core::Device;
use easel_train::embed::{MODEL_FILES, SentenceEmbedder, cosine};

fn minilm_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/minilm");
    let missing: Vec<&str> = MODEL_FILES.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
    assert!(
        missing.is_empty(),
        "all-MiniLM-L6-v2 is not in {} (missing {missing:?}): run scripts/fetch-minilm.sh first",
        dir.display()
    );
    dir
}

#[test]
fn minilm_embeddings_match_sentence_transformers() {
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_reference.json"))
            .unwrap(),
    )
    .unwrap();
    let sentences: Vec<&str> = fixture["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let reference: Vec<Vec<f32>> = serde_json::from_value(fixture["embeddings"].clone()).unwrap();
    let embedder = SentenceEmbedder::load(&minilm_dir(), &Device::Cpu).unwrap();
    let ours = embedder.embed(&sentences).unwrap();
    let mut worst = 1f32;
    let mut max_diff = 0f32;
    for (a, b) in ours.iter().zip(&reference) {
        assert_eq!(a.len(), 384);
        worst = worst.min(cosine(a, b));
        max_diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(max_diff, f32::max);
    }
    eprintln!("MiniLM vs sentence-transformers: min cosine {worst}, max |Δ| {max_diff:e}");
    assert!(worst >= 0.9999, "min cosine {worst}");
    // Pairwise similarities as sentence-transformers computes them.
    let cos: Vec<Vec<f32>> = serde_json::from_value(fixture["cosine"].clone()).unwrap();
    let sims = embedder.similarities(&sentences[..4], &sentences[1..5]).unwrap();
    for (i, s) in sims.iter().enumerate() {
        assert!((s - cos[i][i + 1]).abs() < 1e-4, "pair {i}: {s} vs {}", cos[i][i + 1]);
    }
}

#[test]
fn a_missing_model_folder_says_how_to_fetch_it() {
    let empty = tempfile::tempdir().unwrap();
    let err = SentenceEmbedder::load(empty.path(), &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("scripts/fetch-minilm.sh"), "{err}");
}
