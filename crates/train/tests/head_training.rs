//! The head-only fast path on a synthetic dataset whose scores are a known function of the
//! images' colours: held-out Pearson ≥ 0.9, and the checkpoint it writes is served by
//! `Assessor::load` unchanged.

mod common;

use candle_core::{DType, Device};
use easel_model::{ArtworkInput, Assessor, LoadOptions};
use easel_train::batch::prepare_image;
use easel_train::data::{Dataset, LocalFiles};
use easel_train::metrics::pearson;
use easel_train::split::split;
use easel_train::trainer::Silent;
use easel_train::train;

#[test]
fn head_learns_colour_scores_and_the_checkpoint_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let base = common::tiny_checkpoint(&tmp.path().join("base"), 3);
    let data = common::synthetic_dataset(&tmp.path().join("data"), 100, 5, false);
    let out = tmp.path().join("out");
    let mut config = common::config(&base, &data, &out);
    config.head_only = true;
    config.lora = None;
    config.epochs = 60;
    config.batch_size = 16;
    config.warmup_steps = 5;
    config.head_lr = 3e-3;

    let start = std::time::Instant::now();
    let summary = train(&config, &Device::Cpu, DType::F32, &LocalFiles, false, &mut Silent).unwrap();
    let val = summary.history.iter().filter_map(|m| m.val.clone()).next_back().unwrap();
    eprintln!(
        "head-only: {} steps in {:.1}s; last epoch val Pearson {:.4}, MAE {:.2}; best epoch {:?}",
        summary.steps,
        start.elapsed().as_secs_f64(),
        val.pearson_overall,
        val.mae_overall,
        summary.best_epoch
    );
    assert_eq!((summary.train_rows, summary.val_rows), (80, 20));
    // The features were cached once.
    assert!(std::fs::read_dir(out.join("training")).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with("features-")));

    // The written checkpoint, served as `easel score` and the worker serve it.
    let assessor = Assessor::load(&out, LoadOptions::cpu()).unwrap();
    let dataset = Dataset::load(&data, &LocalFiles).unwrap();
    let scores: Vec<f32> = dataset.examples.iter().map(|e| e.overall).collect();
    let held_out = split(&scores, config.split, config.seed).val;
    let inputs: Vec<ArtworkInput> = held_out
        .iter()
        .map(|&i| ArtworkInput { image: prepare_image(&dataset.examples[i], &LocalFiles, assessor.processor()).unwrap(), description: None })
        .collect();
    let predicted = assessor.score(&inputs).unwrap();
    let overall: Vec<f32> = predicted.iter().map(|s| s.scores.overall).collect();
    let truth: Vec<f32> = held_out.iter().map(|&i| dataset.examples[i].overall).collect();
    let color: Vec<f32> = predicted.iter().map(|s| s.scores.rubric.color).collect();
    let color_truth: Vec<f32> = held_out.iter().map(|&i| dataset.examples[i].rubric.color.unwrap()).collect();
    let (r_overall, r_color) = (pearson(&overall, &truth), pearson(&color, &color_truth));
    eprintln!("served checkpoint, held-out Pearson: overall {r_overall:.4}, color {r_color:.4}");
    assert!(r_overall >= 0.9, "held-out Pearson {r_overall}");
    assert!(r_color >= 0.9, "held-out colour Pearson {r_color}");
    assert!(assessor.manifest().lora.is_none());
}
