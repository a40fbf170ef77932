//! Resume after an interruption: a run stopped mid-epoch (inside a gradient-accumulation
//! group's epoch) and resumed ends with the same trainables, optimiser moments and metrics as
//! an uninterrupted run with the same seed.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use easel_train::data::LocalFiles;
use easel_train::split::SplitSpec;
use easel_train::trainable::LoraSpec;
use easel_train::trainer::Silent;
use easel_train::{TrainError, train};

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn max_diff(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f32;
    for (name, x) in a {
        let y = &b[name];
        let d = (x - y).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        worst = worst.max(d);
    }
    worst
}

#[test]
fn interrupted_and_resumed_equals_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let base = common::tiny_checkpoint(&tmp.path().join("base"), 8);
    common::scale_lm_head(&base, 30.0);
    common::short_prompt(&base);
    let data = common::synthetic_dataset(&tmp.path().join("data"), 8, 2, true);
    let configure = |out: &Path| {
        let mut c = common::config(&base, &data, out);
        c.split = SplitSpec::Holdout { val_fraction: 0.25 };
        c.epochs = 3;
        c.batch_size = 2;
        c.grad_accum = 2;
        c.lora = Some(LoraSpec { rank: 4, alpha: 8.0, targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()], include_vision: false });
        c
    };
    let cpu = Device::Cpu;

    let straight = tmp.path().join("straight");
    let full = train(&configure(&straight), &cpu, DType::F32, &LocalFiles, false, &mut Silent).unwrap();
    assert_eq!(full.steps, 6, "6 training rows, micro-batches of 2, accumulation 2: 2 steps per epoch");
    assert!(!full.interrupted);

    let interrupted = tmp.path().join("interrupted");
    let mut first = configure(&interrupted);
    first.max_steps = Some(3);
    let part = train(&first, &cpu, DType::F32, &LocalFiles, false, &mut Silent).unwrap();
    assert!(part.interrupted && part.steps == 3 && part.epochs_completed == 1, "{part:?}");

    // Starting over in the same folder, or resuming with other settings, is refused.
    let again = train(&configure(&interrupted), &cpu, DType::F32, &LocalFiles, false, &mut Silent).unwrap_err();
    assert!(again.to_string().contains("--resume"), "{again}");
    let mut changed = configure(&interrupted);
    changed.lr *= 2.0;
    assert!(matches!(train(&changed, &cpu, DType::F32, &LocalFiles, true, &mut Silent), Err(TrainError::Resume(_))));

    let resumed = train(&configure(&interrupted), &cpu, DType::F32, &LocalFiles, true, &mut Silent).unwrap();
    assert_eq!(resumed.steps, 6);
    assert!(!resumed.interrupted);

    let state_diff = max_diff(
        &tensors(&straight.join("training/trainables.safetensors")),
        &tensors(&interrupted.join("training/trainables.safetensors")),
    );
    let head_diff = max_diff(&tensors(&straight.join("head.safetensors")), &tensors(&interrupted.join("head.safetensors")));
    let adapter_diff = max_diff(
        &tensors(&straight.join("adapter/adapter_model.safetensors")),
        &tensors(&interrupted.join("adapter/adapter_model.safetensors")),
    );
    eprintln!("resume vs uninterrupted: trainables+moments {state_diff:e}, head {head_diff:e}, adapter {adapter_diff:e}");
    assert!(state_diff <= 1e-6 && head_diff <= 1e-6 && adapter_diff <= 1e-6);
    assert_eq!(full.best_epoch, resumed.best_epoch);
    for (a, b) in full.history.iter().zip(&resumed.history) {
        assert!((a.train_loss - b.train_loss).abs() < 1e-6, "{a:?}\n{b:?}");
        assert_eq!(a.val.as_ref().map(|v| v.rows), b.val.as_ref().map(|v| v.rows));
    }
}
