//! LoRA + head multi-task training through the full model: the critique loss falls well below
//! its start, the adapter is written in PEFT's layout and served by `Assessor::load`, and the
//! merged checkpoint (`easel model merge`) computes what the unmerged one does.

mod common;

use candle_core::{DType, Device};
use easel_model::generate::{Request, prefill};
use easel_model::lora::merge_checkpoint;
use easel_model::{ArtworkInput, Assessor, GenerationConfig, LoadOptions};
use easel_train::batch::prepare_image;
use easel_train::data::{Dataset, LocalFiles};
use easel_train::split::SplitSpec;
use easel_train::trainable::LoraSpec;
use easel_train::trainer::Silent;
use easel_train::train;

#[test]
fn critique_loss_falls_and_lora_checkpoint_serves_merged_or_not() {
    let tmp = tempfile::tempdir().unwrap();
    let base = common::tiny_checkpoint(&tmp.path().join("base"), 4);
    common::scale_lm_head(&base, 30.0);
    common::short_prompt(&base);
    let data = common::synthetic_dataset(&tmp.path().join("data"), 4, 9, true);
    let out = tmp.path().join("out");
    let mut config = common::config(&base, &data, &out);
    config.split = SplitSpec::Holdout { val_fraction: 0.0 };
    config.epochs = 15;
    config.batch_size = 4;
    config.lr = 1e-2;
    config.warmup_steps = 3;
    config.lora = Some(LoraSpec {
        rank: 8,
        alpha: 16.0,
        targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"].map(String::from).to_vec(),
        include_vision: false,
    });
    let start = std::time::Instant::now();
    let summary = train(&config, &Device::Cpu, DType::F32, &LocalFiles, false, &mut Silent).unwrap();
    let lm: Vec<f64> = summary.history.iter().map(|m| m.train_lm.unwrap()).collect();
    let (first, last) = (lm[0], *lm.last().unwrap());
    eprintln!(
        "LM loss {first:.3} → {last:.3} ({:.1}% of start) in {} steps, {:.1}s",
        100.0 * last / first,
        summary.steps,
        start.elapsed().as_secs_f64()
    );
    assert!(last < 0.5 * first, "critique loss {first} → {last}");

    // The adapter in PEFT's layout, named in easel.json.
    let adapter_config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter/adapter_config.json")).unwrap()).unwrap();
    assert_eq!(adapter_config["r"], 8);
    assert_eq!(adapter_config["peft_type"], "LORA");
    let weights = candle_core::safetensors::load(out.join("adapter/adapter_model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(weights.len(), 2 * 7 * 2, "A and B for 7 projections in 2 layers");
    assert!(weights.contains_key("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));

    // Served unmerged (LoRA attached at load) and merged: same logits, scores and critique.
    let merged_dir = tmp.path().join("merged");
    merge_checkpoint(&out, &merged_dir).unwrap();
    let options = LoadOptions::cpu().with_generation(GenerationConfig::greedy(12));
    let unmerged = Assessor::load(&out, options.clone()).unwrap();
    let merged = Assessor::load(&merged_dir, options).unwrap();
    assert!(unmerged.manifest().lora.is_some() && merged.manifest().lora.is_none());
    let dataset = Dataset::load(&data, &LocalFiles).unwrap();
    let example = &dataset.examples[0];
    let input = ArtworkInput {
        image: prepare_image(example, &LocalFiles, unmerged.processor()).unwrap(),
        description: Some(example.description.clone()),
    };
    let a = unmerged.assess(std::slice::from_ref(&input)).unwrap().remove(0);
    let b = merged.assess(std::slice::from_ref(&input)).unwrap().remove(0);
    assert_eq!(a.critique, b.critique);
    for (x, y) in a.scores.to_array().iter().zip(b.scores.to_array()) {
        assert!((x - y).abs() < 1e-4, "{:?} vs {:?}", a.scores, b.scores);
    }
    let logits = |assessor: &Assessor| {
        let vlm = assessor.vlm();
        let (pixels, grids) = vlm.pixel_values(&[&input.image]).unwrap();
        let merged_tokens = vlm.model.vision.forward(&pixels, &grids).unwrap();
        let messages = assessor.prompt().messages(Some("A study."), None).unwrap();
        let (_, ids) = vlm.encode_messages(&messages, &grids).unwrap();
        let state = prefill(&vlm.model, &[Request { input_ids: ids, grids }], Some(&merged_tokens), 1, true).unwrap();
        state.all_logits.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    let (la, lb) = (logits(&unmerged), logits(&merged));
    let scale = la.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = la.iter().zip(&lb).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    eprintln!("merged vs unmerged LoRA: max |Δ logit| {diff:e} (logit scale {scale:.1})");
    assert!(diff <= 1e-4 * scale.max(1.0), "max |Δ| {diff} at scale {scale}");
}
