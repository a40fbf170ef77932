//! The measurement behind docs/MODEL.md's "Qwen3-VL: not yet": candle-transformers 0.11's
//! Qwen3-VL vision tower (the part Easel's score path would run) beside Easel's own Qwen2-VL and
//! Qwen2.5-VL towers, at one image size, f32 on the CPU, seconds per image (median of --iters).
//!
//! `cargo run --release -p easel-model --example qwen3_vl_tower -- [image_size] [iters]`
//!
//! Weights are zeros (the arithmetic, and so the time, of dense f32 layers does not depend on
//! the values); shapes are the published Qwen3-VL-2B tower (depth 24, width 1024, patch 16,
//! deepstack taps after blocks 5, 11, 17) and Easel's presets for the others. The towers differ
//! in size, so besides seconds per image it prints the blocks' dense GFLOP and the rate each
//! implementation reaches (Qwen2.5-VL's windowed attention counted as full attention: an upper
//! bound on its work).

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::qwen3_vl;
use easel_model::Grid;
use easel_model::init::Preset;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64());
    }
    Ok(median(samples))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let size: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(224);
    let iters: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let dev = Device::Cpu;

    // candle's Qwen3-VL (Qwen3-VL-2B's vision_config). candle-transformers 0.11 keeps the
    // tower private (`mod vision`): the whole model's forward is the only way in, so the text
    // model is cut to the three layers deepstack feeds, and its time is measured alone and
    // taken off.
    let cfg: qwen3_vl::config::Config = serde_json::from_value(serde_json::json!({
        "vision_config": {
            "depth": 24, "hidden_size": 1024, "out_hidden_size": 2048, "hidden_act": "gelu_pytorch_tanh",
            "intermediate_size": 4096, "num_heads": 16, "in_chans": 3, "patch_size": 16,
            "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 2304,
            "deepstack_visual_indexes": [5, 11, 17]
        },
        "text_config": {
            "head_dim": 128, "vocab_size": 4096, "hidden_size": 2048, "intermediate_size": 6144,
            "num_hidden_layers": 3, "num_attention_heads": 16, "num_key_value_heads": 8,
            "hidden_act": "silu", "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
            "tie_word_embeddings": true, "rope_theta": 5000000.0, "sliding_window": null
        },
        "image_token_id": 4000, "video_token_id": 4001, "vision_start_token_id": 4002, "vision_end_token_id": 4003
    }))
    .map_err(candle_core::Error::wrap)?;
    let v = &cfg.vision_config;
    let model = qwen3_vl::Qwen3VLModel::new(&cfg, VarBuilder::zeros(DType::F32, &dev))?;
    let side = size / v.patch_size;
    let (patches, tokens) = (side * side, side * side / 4);
    let pixels = Tensor::randn(0f32, 1.0, (patches, 3 * 2 * v.patch_size * v.patch_size), &dev)?;
    let grid = Tensor::new(&[[1u32, side as u32, side as u32]], &dev)?;
    let mut ids = vec![4002u32];
    ids.extend(std::iter::repeat_n(4000u32, tokens));
    ids.push(4003);
    let input_ids = Tensor::new(ids.as_slice(), &dev)?.unsqueeze(0)?;
    let run = |with_image: bool| -> Result<()> {
        let (px, g, pad) = if with_image {
            (Some(pixels.clone()), Some(grid.clone()), vec![vec![(1, 1 + tokens)]])
        } else {
            (None, None, vec![vec![]])
        };
        model.forward(&input_ids, px, None, g, None, vec![ids.len()], pad, vec![vec![]], &[0]).map(|_| ())
    };
    let whole = time(iters, || run(true))?;
    let text = time(iters, || run(false))?;
    let q3 = whole - text;
    // Dense FLOPs of the blocks: qkv + proj (4d²) and the MLP (2·d·i) per patch, the attention
    // (2·n²·d twice) per image.
    // (2·d·i for a two-layer MLP, 3·d·i for a gated one.)
    let flops = |n: usize, d: usize, i: usize, mlp_mats: usize, depth: usize| -> f64 {
        depth as f64 * (2.0 * n as f64 * (4 * d * d + mlp_mats * d * i) as f64 + 4.0 * (n * n * d) as f64)
    };
    let f3 = flops(patches, v.hidden_size, v.intermediate_size, 2, v.depth);
    println!(
        "{{\"tower\":\"qwen3-vl-2b (candle-transformers 0.11)\",\"image_size\":{size},\"patches\":{patches},\"seconds\":{q3:.3},\"gflop\":{:.1},\"gflop_per_s\":{:.0},\"whole_forward_s\":{whole:.3},\"text_only_s\":{text:.3}}}",
        f3 / 1e9,
        f3 / q3 / 1e9
    );
    drop(model);

    for name in ["qwen2-vl-2b", "qwen2.5-vl-3b"] {
        let preset = Preset::parse(name).map_err(candle_core::Error::wrap)?;
        let config = easel_model::Config::from_value(&preset.config_json(151_936, 151_643))
            .map_err(candle_core::Error::wrap)?;
        let vision = easel_model::vision::VisionTower::new(&config.vision, VarBuilder::zeros(DType::F32, &dev))?;
        let side = size / config.vision.patch_size;
        let pixels = Tensor::randn(0f32, 1.0, (side * side, config.vision.patch_len()), &dev)?;
        let grids = [Grid { t: 1, h: side, w: side }];
        let secs = time(iters, || vision.forward(&pixels, &grids).map(|_| ()))?;
        let v = &config.vision;
        let gated = matches!(v.kind, easel_model::config::VisionKind::Qwen25 { .. });
        let f = flops(side * side, v.embed_dim, v.intermediate_size, if gated { 3 } else { 2 }, v.depth);
        println!(
            "{{\"tower\":\"{name} (Easel)\",\"image_size\":{size},\"patches\":{},\"seconds\":{secs:.3},\"gflop\":{:.1},\"gflop_per_s\":{:.0}}}",
            side * side,
            f / 1e9,
            f / secs / 1e9
        );
    }
    Ok(())
}
