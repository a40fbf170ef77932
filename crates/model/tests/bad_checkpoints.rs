//! Broken checkpoints fail with an error that names the problem, never a panic.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use easel_model::{ModelError, Qwen2Vl};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-hub")
}

/// A private copy of the sharded hub-layout fixture.
fn copy_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn load(dir: &Path) -> Result<Qwen2Vl, ModelError> {
    Qwen2Vl::load(dir, &Device::Cpu, DType::F32, None)
}

fn shards(dir: &Path) -> Vec<PathBuf> {
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("model-"))
        .collect();
    shards.sort();
    shards
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_string(&value).unwrap()).unwrap();
}

#[test]
fn the_fixture_itself_loads() {
    assert!(shards(&fixture()).len() >= 2, "the hub fixture is sharded");
    load(&fixture()).expect("loads");
}

#[test]
fn missing_and_truncated_shards() {
    let dir = copy_fixture();
    let shard = shards(dir.path()).pop().unwrap();
    let name = shard.file_name().unwrap().to_string_lossy().to_string();
    let bytes = std::fs::read(&shard).unwrap();

    std::fs::remove_file(&shard).unwrap();
    let err = load(dir.path()).err().expect("fails");
    assert!(matches!(err, ModelError::MissingFile { .. }) && err.to_string().contains(&name), "{err}");

    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(dir.path()).err().expect("fails");
    assert!(err.to_string().contains("truncated") && err.to_string().contains(&name), "{err}");

    std::fs::write(&shard, b"not a safetensors file").unwrap();
    let err = load(dir.path()).err().expect("fails");
    assert!(matches!(err, ModelError::InvalidFile { .. }), "{err}");
}

#[test]
fn wrong_configs() {
    let dir = copy_fixture();
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    assert!(matches!(load(dir.path()), Err(ModelError::InvalidFile { .. })));

    let dir = copy_fixture();
    edit_config(dir.path(), |c| c["rope_scaling"]["mrope_section"] = serde_json::json!([1, 1, 1]));
    let err = load(dir.path()).err().expect("fails");
    assert!(err.to_string().contains("mrope_section"), "{err}");

    // Self-consistent config, but not the shapes in the weights.
    let dir = copy_fixture();
    edit_config(dir.path(), |c| {
        c["intermediate_size"] = serde_json::json!(96);
    });
    let err = load(dir.path()).err().expect("fails");
    assert!(matches!(err, ModelError::Weights(_)) && err.to_string().contains("mlp"), "{err}");

    let dir = copy_fixture();
    edit_config(dir.path(), |c| c["num_hidden_layers"] = serde_json::json!(3));
    let err = load(dir.path()).err().expect("fails");
    assert!(err.to_string().contains("layers.2"), "{err}");

    let dir = copy_fixture();
    edit_config(dir.path(), |c| c["image_token_id"] = serde_json::json!(5));
    let err = load(dir.path()).err().expect("fails");
    assert!(err.to_string().contains("<|image_pad|>"), "{err}");
}

#[test]
fn missing_files() {
    for file in ["config.json", "tokenizer.json", "model.safetensors.index.json"] {
        let dir = copy_fixture();
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let err = load(dir.path()).err().unwrap_or_else(|| panic!("loads without {file}"));
        println!("without {file}: {err}");
        assert!(matches!(err, ModelError::MissingFile { .. }), "{file}: {err}");
    }
    let err = load(Path::new("/nonexistent/checkpoint")).err().expect("fails");
    assert!(matches!(err, ModelError::MissingFile { .. }));
}
