//! Numerical parity with HF transformers' Qwen2.5-VL, through the same loader, pipeline and
//! Assessor as Qwen2-VL.
//!
//! `tests/fixtures/qwen25/` was produced by `scripts/reference/make_qwen25_fixtures.py`: a tiny
//! random-weight Qwen2.5-VL in the hub layout whose vision tower has a full-attention block
//! between two windowed ones, two images whose merged grids split into windows unevenly, and
//! a text-only prompt. Every stage is compared on HF's own inputs, so a difference points at
//! one stage: preprocessing, window layout, each vision block, merger, M-RoPE positions,
//! decoder, logits, greedy tokens.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use easel_model::config::VisionKind;
use easel_model::generate::{GenerationConfig, Request, decode, prefill};
use easel_model::init::{Preset, init_checkpoint};
use easel_model::prompt::user_message;
use easel_model::rope::mrope_positions;
use easel_model::vision::VisionTower;
use easel_model::{ArtworkInput, Assessor, DecodeLimits, Grid, LoadOptions, Qwen2Vl};

use common::{Reference, assert_close, max_diff};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen25")
}

fn load() -> Qwen2Vl {
    Qwen2Vl::load(&fixtures().join("checkpoint"), &Device::Cpu, DType::F32, None).expect("loads")
}

/// The vision tower stage by stage on HF's pixel values; returns the merged visual tokens.
fn check_vision(vlm: &Qwen2Vl, r: &Reference, grids: &[Grid]) -> Tensor {
    let VisionTower::Qwen25(tower) = &vlm.model.vision else { panic!("config.json names qwen2_5_vl") };
    let pixels = r.get("pixel_values");
    let x = tower.patch_embed.forward(pixels).unwrap();
    assert_close("vision patch_embed", &x, r.get("vision_patch_embed"), 1e-5);

    // The window layout: which merged token goes where, and where each window ends.
    let inputs = tower.inputs(grids, &Device::Cpu).unwrap();
    let index: Vec<i64> = inputs.windows.index.iter().map(|&i| i64::from(i)).collect();
    assert_eq!(index, r.i64s("vision_window_index"), "window index");
    let cu: Vec<i64> = inputs.windows.cu_seqlens().iter().map(|&c| c as i64).collect();
    assert_eq!(cu, r.i64s("vision_cu_window_seqlens"), "cu_window_seqlens");
    assert!(inputs.windows.lengths.len() > grids.len(), "each image spans several windows");
    // The rotary tables ride along in window order; HF's hook sees them before reordering.
    let cos = Tensor::cat(&[&inputs.full.cos, &inputs.full.cos], 1).unwrap();
    assert_close("vision rotary cos", &inputs.from_windows(&cos).unwrap(), r.get("vision_rotary_cos"), 1e-6);
    let sin = Tensor::cat(&[&inputs.full.sin, &inputs.full.sin], 1).unwrap();
    assert_close("vision rotary sin", &inputs.from_windows(&sin).unwrap(), r.get("vision_rotary_sin"), 1e-6);

    // Each block on the previous one's reference output, so errors cannot pile up unseen.
    let mut x = inputs.to_windows(&x).unwrap();
    let mut kinds = Vec::new();
    for (i, block) in tower.blocks.iter().enumerate() {
        let full = tower.is_full_attention(i);
        kinds.push(full);
        let ours = block.forward(&x, inputs.attention(full)).unwrap();
        let theirs = r.get(&format!("vision_block{i}"));
        let what = format!("vision block {i} ({})", if full { "full attention" } else { "windowed" });
        assert_close(&what, &ours, theirs, 1e-5);
        x = theirs.clone();
    }
    assert!(kinds.contains(&true) && kinds.contains(&false), "both kinds of block run");
    assert_close("vision merger (window order)", &tower.merger.forward(&x).unwrap(), r.get("vision_merger_out"), 1e-5);

    // The whole tower, through the interface the rest of Easel calls, in image order.
    let merged = vlm.model.vision.forward(pixels, grids).unwrap();
    assert_close("vision merged", &merged, r.get("vision_merged"), 1e-5);
    let blocks_out = vlm.model.vision.forward_blocks(pixels, grids).unwrap();
    let reordered = inputs.from_windows(r.get(&format!("vision_block{}", tower.blocks.len() - 1))).unwrap();
    assert_close("vision blocks out (image order)", &blocks_out, &reordered, 1e-5);
    merged
}

fn check_case(case: &str, images: &[&str]) {
    println!("== qwen2.5-vl / {case}");
    let vlm = load();
    let model = &vlm.model;
    assert!(matches!(vlm.config().vision.kind, VisionKind::Qwen25 { .. }));
    let r = Reference::load(&fixtures().join("reference").join(format!("{case}.safetensors")));
    let grids = r.grids();
    assert_eq!(grids.len(), images.len());

    // The prompt: the checkpoint's chat template and tokenizer, placeholders expanded.
    let user_text = r.metadata.get("user_text").expect("user_text metadata");
    let messages = serde_json::json!([user_message(images.len(), user_text)]);
    let (text, ids) = vlm.encode_messages(&messages, &grids).expect("encodes");
    assert_eq!(&text, r.metadata.get("prompt").expect("prompt metadata"), "rendered prompt");
    assert_eq!(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), r.i64s("input_ids"), "input ids");

    // Our preprocessing: the same grids and pixel values as HF's processor.
    if !images.is_empty() {
        let limits = DecodeLimits::default().any_format();
        let prepared: Vec<_> = images
            .iter()
            .map(|image| vlm.processor.prepare_file(&fixtures().join("images").join(image), &limits).unwrap())
            .collect();
        let mut start = 0;
        for ((image, prepared), grid) in images.iter().zip(&prepared).zip(&grids) {
            assert_eq!(&prepared.grid, grid, "{image} grid");
            let (pixels, _) = vlm.pixel_values(&[prepared]).unwrap();
            let theirs = r.get("pixel_values").narrow(0, start, grid.num_patches()).unwrap();
            // wide.png is not resized: only float rounding differs. tall.png is resized
            // (vertically): bicubic agrees with PIL to one 8-bit level, 1/255/std ≤ 0.0143,
            // which is 6.7e-3 of the largest value.
            let resized = prepared.source_size != (grid.w as u32 * 14, grid.h as u32 * 14);
            let bound = if resized { 7e-3 } else { 1e-6 };
            assert_close(&format!("{image} pixel values"), &pixels, &theirs, bound);
            start += grid.num_patches();
        }
    }

    let positions = mrope_positions(&ids, vlm.config().image_token_id, &grids, 2).expect("positions");
    let ours_pos: Vec<i64> = positions.ids.iter().flatten().copied().collect();
    assert_eq!(ours_pos, r.i64s("position_ids"), "M-RoPE position ids");
    assert_eq!(positions.rope_delta(), r.i64s("rope_deltas")[0], "rope delta");

    let merged = (!grids.is_empty()).then(|| check_vision(&vlm, &r, &grids));

    // Decoder: spliced embeddings, first layer, full-prefill logits.
    let embeds = model.embed_with_images(std::slice::from_ref(&ids), merged.as_ref()).unwrap();
    assert_close("inputs_embeds", &embeds, r.get("inputs_embeds"), 1e-5);
    let rope = model.text.rope(std::slice::from_ref(&positions.ids)).unwrap();
    let len = ids.len();
    let causal: Vec<f32> = (0..len * len).map(|k| if k % len <= k / len { 0.0 } else { -1e9 }).collect();
    let mask = Tensor::from_vec(causal, (1, 1, len, len), &Device::Cpu).unwrap();
    let mut cache = model.text.new_cache(len);
    let layer0 = model.text.forward_embeds(&embeds, &rope, Some(&mask), Some(&mut cache), Some(1)).unwrap();
    assert_close("decoder layer 0", &layer0, r.get("layer0_out"), 1e-5);

    let request = Request { input_ids: ids.clone(), grids: grids.clone() };
    let state = prefill(model, &[request], merged.as_ref(), 12, true).unwrap();
    assert_close("prefill logits", &state.all_logits.clone().unwrap(), r.get("logits"), 1e-4);

    // Greedy decoding with the cache: same tokens, same per-step logits.
    let ref_steps = r.get("step_logits");
    let generation = GenerationConfig { stop_on_eos: false, ..GenerationConfig::greedy(12) };
    let mut worst = 0f32;
    let generated = decode(model, state, &generation, &vlm.eos_ids, |step, logits| {
        let (diff, scale) = max_diff(&logits.i(0).unwrap(), &ref_steps.i(step).unwrap());
        worst = worst.max(diff / scale);
        Ok(())
    })
    .unwrap();
    println!("step logits: worst relative difference {worst:.3e}");
    assert!(worst <= 1e-4, "decoding logits drift: {worst:e}");
    let tokens: Vec<i64> = generated[0].tokens.iter().map(|&t| i64::from(t)).collect();
    assert_eq!(tokens, r.i64s("generated_ids"), "greedy tokens");
}

#[test]
fn two_images_match_transformers() {
    check_case("two_images", &["wide.png", "tall.png"]);
}

#[test]
fn text_only_matches_transformers() {
    check_case("text_only", &[]);
}

/// The LoRA adapter sees the gated MLP's projections under their checkpoint names.
#[test]
fn lora_reaches_the_windowed_blocks() {
    let mut vlm = load();
    let names: Vec<String> =
        easel_model::lora::projections(&mut vlm.model, true).into_iter().map(|(name, _)| name).collect();
    for name in ["visual.blocks.0.attn.qkv", "visual.blocks.2.mlp.gate_proj", "visual.blocks.1.mlp.down_proj"] {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
    }
}

/// A `qwen2.5-vl-tiny` Easel checkpoint goes through the same Assessor as Qwen2-VL: the head
/// scores the pooled visual tokens and the language model writes a critique.
#[test]
fn assessor_scores_and_critiques_with_qwen25() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = init_checkpoint(Preset::Qwen25VlTiny, dir.path(), 5).unwrap();
    let config = easel_model::Config::from_file(&dir.path().join("config.json")).unwrap();
    assert!(matches!(config.vision.kind, VisionKind::Qwen25 { .. }));
    let options = LoadOptions::cpu().with_generation(GenerationConfig::greedy(8));
    let assessor = Assessor::load(dir.path(), options).expect("loads");
    assert_eq!(assessor.model_version(), manifest.model_version);
    let limits = DecodeLimits::default().any_format();
    let batch: Vec<ArtworkInput> = ["wide.png", "tall.png"]
        .iter()
        .map(|name| ArtworkInput {
            image: assessor.processor().prepare_file(&fixtures().join("images").join(name), &limits).unwrap(),
            description: Some("Oil on canvas.".into()),
        })
        .collect();
    let out = assessor.assess(&batch).unwrap();
    assert_eq!(out.len(), 2);
    for a in &out {
        for (name, v) in a.scores.iter() {
            assert!((1.0..=100.0).contains(&v), "{name} = {v}");
        }
        assert!(a.new_tokens > 0 && !a.critique.is_empty(), "a critique is written");
    }
    assert_ne!(out[0].scores, out[1].scores, "different paintings, different scores");
    let scores = assessor.score(&batch).unwrap();
    for (s, a) in scores.iter().zip(&out) {
        assert_eq!(s.scores, a.scores, "the score path agrees with the full one");
    }
}
