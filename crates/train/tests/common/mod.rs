//! Shared fixtures: tiny random checkpoints and synthetic datasets whose scores are known
//! functions of the images' colours.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use easel_model::init::{Preset, init_checkpoint};
use easel_train::optim::{AdamWConfig, ScheduleKind};
use easel_train::split::SplitSpec;
use easel_train::trainable::{LossWeights, RegressionLoss};
use easel_train::TrainConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn tiny_checkpoint(dir: &Path, seed: u64) -> PathBuf {
    init_checkpoint(Preset::Tiny, dir, seed).unwrap();
    dir.to_path_buf()
}

/// The true overall score of a painting with mean colour `(r, g, b)` in 0–255.
pub fn overall_of(r: f32, _g: f32, b: f32) -> f32 {
    5.0 + 90.0 * (0.7 * r + 0.3 * b) / 255.0
}

pub fn color_of(_r: f32, g: f32, _b: f32) -> f32 {
    5.0 + 90.0 * g / 255.0
}

/// Writes `n` 56×56 PNGs of random base colours with pixel noise, and `data.jsonl` whose scores
/// follow [`overall_of`] and [`color_of`]; originality on every other row (the rest masked);
/// with `critiques`, a short critique per row.
pub fn synthetic_dataset(dir: &Path, n: usize, seed: u64, critiques: bool) -> PathBuf {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut lines = Vec::new();
    for i in 0..n {
        let base: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..255.0));
        let img = image::RgbImage::from_fn(56, 56, |_, _| {
            image::Rgb(std::array::from_fn(|c| (base[c] + rng.random_range(-12.0..12.0)).clamp(0.0, 255.0) as u8))
        });
        let name = format!("images/p{i:03}.png");
        img.save(dir.join(&name)).unwrap();
        let (r, g, b) = (base[0], base[1], base[2]);
        let mut row = serde_json::json!({
            "id": format!("p{i:03}"),
            "image": name,
            "description": format!("Study number {i}."),
            "overall": overall_of(r, g, b),
            "color": color_of(r, g, b),
        });
        if i % 2 == 0 {
            row["originality"] = serde_json::json!(5.0 + 90.0 * (1.0 - r / 255.0));
        }
        if critiques {
            let warm = if r > b { "warm" } else { "cool" };
            row["critique"] = serde_json::json!(format!("Color: {warm} and calm. Texture: even."));
        }
        lines.push(row.to_string());
    }
    let path = dir.join("data.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// A small, fast configuration.
pub fn config(base: &Path, data: &Path, out: &Path) -> TrainConfig {
    TrainConfig {
        split: SplitSpec::Holdout { val_fraction: 0.2 },
        seed: 11,
        epochs: 2,
        batch_size: 4,
        grad_accum: 1,
        lr: 1e-3,
        head_lr: 1e-2,
        warmup_steps: 2,
        schedule: ScheduleKind::Cosine,
        adam: AdamWConfig::default(),
        loss: LossWeights { regression: 1.0, lm: 1.0, kind: RegressionLoss::Mse },
        save_every: 0,
        ..TrainConfig::new(base, data, out)
    }
}

/// Scales `lm_head.weight` of a tiny checkpoint by `factor`. The random init (σ = 0.02 over a
/// 64-wide hidden state after RMSNorm) gives logits within ±1.5, far below a real model's
/// scale; no amount of LoRA on the frozen decoder could then make a token likely.
pub fn scale_lm_head(dir: &Path, factor: f64) {
    let path = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    let w = tensors.get_mut("lm_head.weight").unwrap();
    *w = (&*w * factor).unwrap();
    candle_core::safetensors::save(&tensors, &path).unwrap();
}

/// Replaces the checkpoint's (long) default system prompt with a short one that still shows the
/// rubric, description and scores: the byte-level tiny tokenizer makes every character a token,
/// and the LM tests run faster on short sequences.
pub fn short_prompt(dir: &Path) {
    let mut manifest = easel_model::Manifest::read(dir).unwrap();
    manifest.prompt.system = "Judge {{ rubric | join(',') }}. {{ description }}{% if scores %} Score {{ scores.overall }}, color {{ scores.color }}.{% endif %}".into();
    manifest.prompt.user = "Critique.".into();
    manifest.write(dir).unwrap();
}
