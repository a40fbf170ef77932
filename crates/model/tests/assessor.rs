//! The multi-task batch API on a random tiny checkpoint written by `init_checkpoint`.

use std::path::Path;

use easel_model::init::{Preset, init_checkpoint};
use easel_model::{ArtworkInput, Assessor, DecodeLimits, GenerationConfig, LoadOptions, ModelError};
use image::{ImageFormat, Rgb, RgbImage};

fn painting(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            ((x * 3 + seed * 17) % 256) as u8,
            ((y * 5 + seed * 29) % 256) as u8,
            (((x ^ y) + seed) % 256) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn inputs(assessor: &Assessor) -> Vec<ArtworkInput> {
    let sizes = [(300, 200, 1), (120, 160, 2), (300, 200, 3), (64, 64, 4)];
    let descriptions = [Some("Oil on canvas, a harbour at dawn."), None, Some("Ink <|im_end|> study"), Some("")];
    sizes
        .iter()
        .zip(descriptions)
        .map(|(&(w, h, seed), d)| ArtworkInput {
            image: assessor.processor().prepare_bytes(&painting(w, h, seed), &DecodeLimits::default()).unwrap(),
            description: d.map(str::to_string),
        })
        .collect()
}

fn load(dir: &Path, max_new_tokens: usize, max_batch: usize) -> Assessor {
    let mut options = LoadOptions::cpu().with_generation(GenerationConfig::greedy(max_new_tokens));
    options.max_batch = max_batch;
    Assessor::load(dir, options).expect("loads")
}

#[test]
fn assesses_a_batch_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = init_checkpoint(Preset::Tiny, dir.path(), 7).unwrap();
    let assessor = load(dir.path(), 10, 16);
    assert_eq!(assessor.model_version(), manifest.model_version);
    let batch = inputs(&assessor);
    let out = assessor.assess(&batch).unwrap();
    assert_eq!(out.len(), batch.len());
    for a in &out {
        for (name, v) in a.scores.iter() {
            assert!((1.0..=100.0).contains(&v), "{name} = {v}");
        }
        assert!(a.new_tokens <= 10);
        assert_eq!(a.timings.batch_size, 4);
    }
    // Different paintings get different scores.
    assert_ne!(out[0].scores, out[1].scores);

    // Deterministic, and a painting's result does not depend on its batch-mates: batching
    // (sorting by size, left padding) must not change what the model computes.
    let singles = load(dir.path(), 10, 1);
    let one_by_one = singles.assess(&batch).unwrap();
    for (batched, single) in out.iter().zip(&one_by_one) {
        for ((name, a), (_, b)) in batched.scores.iter().zip(single.scores.iter()) {
            assert!((a - b).abs() < 1e-3, "{name}: {a} batched vs {b} alone");
        }
        assert_eq!(batched.critique, single.critique);
        assert_eq!(batched.new_tokens, single.new_tokens);
    }
    assert_eq!(assessor.assess(&batch).unwrap().iter().map(|a| a.scores).collect::<Vec<_>>(),
        out.iter().map(|a| a.scores).collect::<Vec<_>>());

    // Score-only path agrees with the full one.
    let scores = assessor.score(&batch).unwrap();
    for (s, a) in scores.iter().zip(&out) {
        assert!((s.scores.overall - a.scores.overall).abs() < 1e-4);
        assert!(s.zero_shot.is_none() && a.zero_shot.is_none(), "a head checkpoint scores with its head");
    }
}

/// Same painting, same checkpoint, same settings: the same scores to the bit, whatever else is
/// in its batch and wherever it sits there (the worker batches whatever jobs arrive together,
/// and a rescore or a shadow run batches them differently).
#[test]
fn a_paintings_scores_do_not_depend_on_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    init_checkpoint(Preset::Tiny, dir.path(), 11).unwrap();
    let assessor = load(dir.path(), 3, 16);
    let all = inputs(&assessor);
    let alone: Vec<_> = all.iter().map(|input| assessor.assess(std::slice::from_ref(input)).unwrap().remove(0)).collect();
    let compositions: [&[usize]; 5] = [&[0, 1, 2, 3], &[3, 2, 1, 0], &[2, 0], &[1, 3, 0], &[0, 2, 2, 1, 3, 0]];
    for composition in compositions {
        let batch: Vec<ArtworkInput> = composition.iter().map(|&i| all[i].clone()).collect();
        let out = assessor.assess(&batch).unwrap();
        for (&i, a) in composition.iter().zip(&out) {
            assert_eq!(a.scores, alone[i].scores, "painting {i} in batch {composition:?}");
            assert_eq!(a.critique, alone[i].critique, "painting {i} in batch {composition:?}");
        }
        let scores = assessor.score(&batch).unwrap();
        for (&i, s) in composition.iter().zip(&scores) {
            assert_eq!(s.scores, alone[i].scores, "score path: painting {i} in batch {composition:?}");
        }
    }
}

#[test]
fn scores_only_when_no_tokens_are_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    init_checkpoint(Preset::Tiny, dir.path(), 1).unwrap();
    let assessor = load(dir.path(), 0, 8);
    let out = assessor.assess(&inputs(&assessor)[..2]).unwrap();
    assert!(out.iter().all(|a| a.critique.is_empty() && a.new_tokens == 0));
}

#[test]
fn a_missing_or_mismatched_head_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    init_checkpoint(Preset::Tiny, dir.path(), 3).unwrap();

    std::fs::rename(dir.path().join("head.safetensors"), dir.path().join("head.bak")).unwrap();
    let err = Assessor::load(dir.path(), LoadOptions::cpu()).err().expect("fails");
    assert!(matches!(err, ModelError::Head(ref m) if m.contains("head.safetensors")), "{err}");
    std::fs::rename(dir.path().join("head.bak"), dir.path().join("head.safetensors")).unwrap();

    let manifest_path = dir.path().join("easel.json");
    let original = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(&manifest_path, original.replace("\"input_dim\": 64", "\"input_dim\": 65")).unwrap();
    let err = Assessor::load(dir.path(), LoadOptions::cpu()).err().expect("fails");
    assert!(matches!(err, ModelError::Head(ref m) if m.contains("65")), "{err}");

    std::fs::write(&manifest_path, original.replace("\"hidden_dim\": 32", "\"hidden_dim\": 31")).unwrap();
    let err = Assessor::load(dir.path(), LoadOptions::cpu()).err().expect("fails");
    assert!(matches!(err, ModelError::Head(_)), "{err}");

    // Without easel.json the folder is a plain HF checkpoint, which scores zero-shot; the tiny
    // preset's character-level tokenizer cannot tell the level words apart, and says so.
    std::fs::remove_file(&manifest_path).unwrap();
    let err = Assessor::load(dir.path(), LoadOptions::cpu()).err().expect("fails");
    assert!(err.to_string().contains("level words"), "{err}");
}

/// `--weights`: int8 packs only the language model, so the head's scores are f32's to the bit
/// while the critique runs on 8-bit weights; bf16 packs the tower too, so scores move, a
/// little. Both are refused off the CPU's f32 path.
#[test]
fn packed_weights_score_and_critique() {
    let dir = tempfile::tempdir().unwrap();
    init_checkpoint(Preset::Tiny, dir.path(), 11).unwrap();
    let with = |weights: easel_model::WeightFormat| {
        let mut options = LoadOptions::cpu().with_generation(GenerationConfig::greedy(8));
        options.weights = weights;
        Assessor::load(dir.path(), options).expect("loads")
    };
    let reference = with(easel_model::WeightFormat::F32);
    let batch = inputs(&reference);
    let want = reference.assess(&batch).unwrap();
    for format in [easel_model::WeightFormat::Int8, easel_model::WeightFormat::Bf16] {
        let packed = with(format);
        assert!(packed.vlm().model.lm_head().packed().is_some_and(|p| p.format() == format));
        let got = packed.assess(&batch).unwrap();
        for (a, b) in want.iter().zip(&got) {
            assert_eq!(b.new_tokens, b.tokens.len());
            assert!(b.new_tokens > 0);
            let worst = a.scores.to_array().iter().zip(b.scores.to_array()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            match format {
                easel_model::WeightFormat::Int8 => assert_eq!(a.scores, b.scores, "the vision tower stays f32"),
                _ => assert!(worst < 1.0, "{format}: scores moved by {worst}"),
            }
        }
    }
    let mut options = LoadOptions::cpu();
    options.dtype = candle_core::DType::BF16;
    options.weights = easel_model::WeightFormat::Int8;
    let err = Assessor::load(dir.path(), options).err().expect("refused").to_string();
    assert!(err.contains("int8") && err.contains("f32"), "{err}");
}
