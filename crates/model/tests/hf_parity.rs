//! Numerical parity with HF transformers' Qwen2-VL.
//!
//! The fixtures under `tests/fixtures/` were produced by `scripts/reference/make_fixtures.py`
//! from two tiny random-weight checkpoints (hub layout, sharded; transformers-5 layout, tied
//! embeddings). Every stage is compared on HF's own inputs, so a difference points at one
//! stage: preprocessing, vision blocks, merger, M-RoPE positions, decoder, logits, greedy tokens.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use easel_model::generate::{GenerationConfig, Request, decode, prefill};
use easel_model::prompt::user_message;
use easel_model::rope::mrope_positions;
use easel_model::{DecodeLimits, Qwen2Vl};

use common::{Reference, assert_close, max_diff};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

const CASES: [(&str, &[&str]); 4] = [
    ("one_image", &["a.png"]),
    ("two_images", &["a.png", "b.jpg"]),
    ("big_image", &["big.jpg"]),
    ("text_only", &[]),
];

/// Every stage of `tiny-{model_name}` against HF's; with `panels`, the dense layers' weights
/// held as inference holds them (`pack_weights(F32)`: gemm's kernel panels on the CPU).
fn check_model(model_name: &str, panels: bool) {
    let dir = fixtures().join(format!("tiny-{model_name}"));
    let mut vlm = Qwen2Vl::load(&dir, &Device::Cpu, DType::F32, None).expect("loads");
    if panels {
        vlm.model.pack_weights(easel_model::WeightFormat::F32).expect("packs");
        let packed = vlm.model.vision.projections_mut()[0].1.packed().is_some();
        assert_eq!(packed, easel_model::cpu::enabled(), "the panels are the weights that run");
    }
    let model = &vlm.model;
    for (case, images) in CASES {
        println!("== {model_name} / {case}");
        let r = Reference::load(&fixtures().join("reference").join(format!("{model_name}_{case}.safetensors")));
        let grids = r.grids();
        assert_eq!(grids.len(), images.len());

        // The prompt: the checkpoint's chat template and tokenizer, placeholders expanded.
        let user_text = r.metadata.get("user_text").expect("user_text metadata");
        let messages = serde_json::json!([user_message(images.len(), user_text)]);
        let (text, ids) = vlm.encode_messages(&messages, &grids).expect("encodes");
        assert_eq!(&text, r.metadata.get("prompt").expect("prompt metadata"), "rendered prompt");
        let ref_ids = r.i64s("input_ids");
        assert_eq!(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), ref_ids, "input ids");

        // Our preprocessing gives the same grid as HF's (values are checked in preprocess.rs).
        let limits = DecodeLimits::default().any_format();
        for (image, grid) in images.iter().zip(&grids) {
            let prepared = vlm.processor.prepare_file(&fixtures().join("images").join(image), &limits).unwrap();
            assert_eq!(&prepared.grid, grid, "{image} grid");
        }

        // M-RoPE positions and deltas.
        let positions = mrope_positions(&ids, vlm.config().image_token_id, &grids, 2).expect("positions");
        let ref_pos = r.i64s("position_ids");
        let ours_pos: Vec<i64> = positions.ids.iter().flatten().copied().collect();
        assert_eq!(ours_pos, ref_pos, "position ids");
        assert_eq!(positions.rope_delta(), r.i64s("rope_deltas")[0], "rope delta");

        // Vision tower on HF's pixel values, stage by stage.
        let merged = if grids.is_empty() {
            None
        } else {
            let pixels = r.get("pixel_values");
            let easel_model::vision::VisionTower::Qwen2(vision) = &model.vision else { panic!("a Qwen2-VL tower") };
            let x = vision.patch_embed.forward(pixels).unwrap();
            assert_close("vision patch_embed", &x, r.get("vision_patch_embed"), 1e-5);
            let inputs = vision.inputs(&grids, &Device::Cpu).unwrap();
            let cos = Tensor::cat(&[&inputs.cos, &inputs.cos], 1).unwrap();
            assert_close("vision rotary cos", &cos, r.get("vision_rotary_cos"), 1e-6);
            let x = vision.blocks[0].forward(&x, &inputs).unwrap();
            assert_close("vision block 0", &x, r.get("vision_block0"), 1e-5);
            let blocks_out = vision.forward_blocks(pixels, &grids).unwrap();
            assert_close("vision blocks out", &blocks_out, r.get("vision_blocks_out"), 1e-5);
            let merged = vision.merger.forward(&blocks_out).unwrap();
            assert_close("vision merged", &merged, r.get("vision_merged"), 1e-5);
            Some(merged)
        };

        // Decoder: spliced embeddings, first layer, full-prefill logits.
        let embeds = model.embed_with_images(std::slice::from_ref(&ids), merged.as_ref()).unwrap();
        assert_close("inputs_embeds", &embeds, r.get("inputs_embeds"), 1e-5);
        let rope = model.text.rope(std::slice::from_ref(&positions.ids)).unwrap();
        let mut cache = model.text.new_cache(ids.len());
        let len = ids.len();
        let causal: Vec<f32> = (0..len * len).map(|k| if k % len <= k / len { 0.0 } else { -1e9 }).collect();
        let mask = Tensor::from_vec(causal, (1, 1, len, len), &Device::Cpu).unwrap();
        let layer0 = model.text.forward_embeds(&embeds, &rope, Some(&mask), Some(&mut cache), Some(1)).unwrap();
        assert_close("decoder layer 0", &layer0, r.get("layer0_out"), 1e-5);

        let request = Request { input_ids: ids.clone(), grids: grids.clone() };
        let state = prefill(model, &[request], merged.as_ref(), 12, true).unwrap();
        let logits = state.all_logits.clone().unwrap();
        assert_close("prefill logits", &logits, r.get("logits"), 1e-4);

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
}

#[test]
fn hub_layout_matches_transformers() {
    check_model("hub", false);
}

#[test]
fn hub_layout_in_kernel_panels_matches_transformers() {
    check_model("hub", true);
}

#[test]
fn transformers5_layout_matches_transformers() {
    check_model("tf5", false);
}

/// bf16 and int8 weights (`--weights`) against the same reference: the logits of every case's
/// prompt within a bar relative to their scale (measured on an AMD EPYC with AVX512-BF16:
/// bf16 1.24e-2, int8 3.38e-2; bf16 rounds each weight by ≤ 2⁻⁹ relative and there the
/// prefill's activations too, int8 by ≤ 1/254 of its row's largest). The f32 path above is
/// unaffected: packing is opt-in.
#[test]
fn packed_weights_stay_near_transformers() {
    let dir = fixtures().join("tiny-hub");
    for (format, bar) in [(easel_model::WeightFormat::Bf16, 2.5e-2), (easel_model::WeightFormat::Int8, 6e-2)] {
        let mut vlm = Qwen2Vl::load(&dir, &Device::Cpu, DType::F32, None).expect("loads");
        vlm.model.pack_weights(format).expect("packs");
        let mut worst = 0f32;
        let (mut same, mut total) = (0usize, 0usize);
        for (case, images) in CASES {
            let r = Reference::load(&fixtures().join("reference").join(format!("hub_{case}.safetensors")));
            let grids = r.grids();
            let ids: Vec<u32> = r.i64s("input_ids").iter().map(|&i| i as u32).collect();
            assert_eq!(grids.len(), images.len());
            let merged = (!grids.is_empty()).then(|| vlm.model.vision.forward(r.get("pixel_values"), &grids).unwrap());
            let request = Request { input_ids: ids, grids };
            let state = prefill(&vlm.model, &[request], merged.as_ref(), 12, true).unwrap();
            let (diff, scale) = max_diff(&state.all_logits.clone().unwrap(), r.get("logits"));
            worst = worst.max(diff / scale);
            let generation = GenerationConfig { stop_on_eos: false, ..GenerationConfig::greedy(12) };
            let generated = decode(&vlm.model, state, &generation, &vlm.eos_ids, |_, _| Ok(())).unwrap();
            let want = r.i64s("generated_ids");
            same += generated[0].tokens.iter().zip(&want).filter(|(a, b)| i64::from(**a) == **b).count();
            total += want.len();
        }
        println!("{format}: prefill logits worst relative difference {worst:.3e}; greedy tokens {same}/{total} agree");
        assert!(worst <= bar, "{format}: logits {worst:e} from transformers' (bar {bar:e})");
        assert!(worst > 0.0, "{format}: the packed weights must be the ones running");
    }
}
