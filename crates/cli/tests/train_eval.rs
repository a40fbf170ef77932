//! `easel train` → `easel score` → `easel eval` end to end on a tiny checkpoint, and
//! `easel bench train` at the tiny shape.

mod common;

use common::{easel, run, score_records};
use std::path::Path;

/// Eight 56×56 paintings with two raters and critiques (a few rubric scores missing).
fn dataset(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let mut lines = Vec::new();
    for i in 0..8u32 {
        let c = (i * 31 % 255) as u8;
        image::RgbImage::from_fn(56, 56, |x, y| image::Rgb([c, (x * 4) as u8, (y * 4) as u8]))
            .save(dir.join(format!("img/{i}.png")))
            .unwrap();
        let overall = 10.0 + 10.0 * i as f32;
        let mut row = serde_json::json!({
            "image": format!("img/{i}.png"), "description": "Acrylic on board.",
            "raters": {"ann": overall - 3.0, "ben": overall + 4.0 - (i % 3) as f32},
            "color": 20.0 + 9.0 * i as f32,
            "critique": "Originality: fresh. Color: bold. Texture: flat. Composition: balanced. Content: clear."
        });
        if i % 2 == 0 {
            row["texture"] = serde_json::json!(50.0);
        }
        lines.push(row.to_string());
    }
    let path = dir.join("data.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn minilm() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/minilm");
    assert!(
        dir.join("model.safetensors").is_file(),
        "run scripts/fetch-minilm.sh first ({} is missing)",
        dir.display()
    );
    dir
}

#[test]
fn train_then_score_then_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    run(easel()
        .args(["model", "init", "--preset", "tiny", "--seed", "2", "--out"])
        .arg(&base));
    // A short system prompt keeps the byte-level tiny tokenizer's sequences short.
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("easel.json")).unwrap()).unwrap();
    manifest["prompt"]["system"] =
        serde_json::json!("Judge {{ rubric | join(',') }}. {{ description }}");
    std::fs::write(base.join("easel.json"), manifest.to_string()).unwrap();
    let data = dataset(&tmp.path().join("data"));
    let out = tmp.path().join("trained");
    let output = run(easel()
        .args([
            "train",
            "--quiet",
            "--epochs",
            "2",
            "--batch-size",
            "2",
            "--grad-accum",
            "2",
            "--val-fraction",
            "0.25",
        ])
        .args([
            "--lora-rank",
            "4",
            "--lora-targets",
            "q_proj,v_proj",
            "--max-critique-tokens",
            "24",
            "--seed",
            "3",
        ])
        .arg("--base")
        .arg(&base)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("epoch 2: train loss") && stderr.contains("checkpoint in"),
        "{stderr}"
    );
    for file in [
        "easel.json",
        "head.safetensors",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "run.json",
        "metrics.json",
        "split.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(output.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(summary["steps"], 4);

    // The trained checkpoint is served by `easel score` as it is.
    let scored = tmp.path().join("scores.jsonl");
    run(easel()
        .args(["score", "--quiet", "--max-new-tokens", "4", "--model"])
        .arg(&out)
        .arg("--out")
        .arg(&scored)
        .arg(data.parent().unwrap().join("img")));
    assert_eq!(std::fs::read_to_string(&scored).unwrap().lines().count(), 8);

    // Evaluate on all rows, then on the held-out rows only.
    let report = tmp.path().join("report");
    run(easel()
        .args([
            "eval",
            "--quiet",
            "--max-new-tokens",
            "8",
            "--resamples",
            "200",
            "--model",
        ])
        .arg(&out)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&report)
        .arg("--minilm")
        .arg(minilm()));
    for file in [
        "report.json",
        "report.md",
        "scatter_overall.svg",
        "residuals_overall.svg",
        "dimensions.svg",
    ] {
        assert!(report.join(file).is_file(), "{file} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["rows"], 8);
    let names: Vec<&str> = json["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["overall", "color", "texture"]);
    assert_eq!(
        json["raters"]["model_vs_rater"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        json["raters"]["rater_vs_rater"].as_array().unwrap().len(),
        1
    );
    assert!(json["raters"]["mean_inter_rater_pearson"].as_f64().unwrap() > 0.9);
    assert_eq!(json["critique"]["reference_coverage"]["all_five"], 1.0);
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        md.contains("| overall | 8 |") && md.contains("ann vs ben"),
        "{md}"
    );
    assert!(
        std::fs::read_to_string(report.join("scatter_overall.svg"))
            .unwrap()
            .starts_with("<svg")
    );

    let held_out = tmp.path().join("held_out");
    run(easel()
        .args([
            "eval",
            "--quiet",
            "--max-new-tokens",
            "0",
            "--resamples",
            "50",
            "--model",
        ])
        .arg(&out)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&held_out)
        .arg("--split-file")
        .arg(out.join("split.json")));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(held_out.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["rows"], 2);
}

#[test]
fn bad_manifest_rows_stop_training_with_their_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    run(easel()
        .args(["model", "init", "--preset", "tiny", "--out"])
        .arg(&base));
    let data = tmp.path().join("data.csv");
    std::fs::write(&data, "image,overall\nnope.png,50\nalso-missing.png,500\n").unwrap();
    let out = easel()
        .args(["train", "--quiet", "--base"])
        .arg(&base)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("o"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2:")
            && stderr.contains("line 3:")
            && stderr.contains("500 is outside"),
        "{stderr}"
    );
}

#[test]
fn bench_train_runs_at_the_tiny_shape() {
    let out = run(easel().args([
        "bench",
        "train",
        "--preset",
        "tiny",
        "--random-weights",
        "--device",
        "cpu",
        "--steps",
        "2",
        "--image-size",
        "56",
        "--prompt-tokens",
        "32",
        "--critique-tokens",
        "16",
    ]));
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    let step: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(step["event"], "train_step");
    assert!(step["seconds_per_step"].as_f64().unwrap() > 0.0);
    assert!(step["loss"].as_f64().unwrap().is_finite());
}

/// The Qwen2.5-VL backbone (windowed vision tower) through the same commands: a head and a
/// LoRA adapter trained, the checkpoint scored, the model benched.
#[test]
fn qwen25_trains_scores_and_benches_through_the_same_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    run(easel()
        .args(["model", "init", "--preset", "qwen2.5-vl-tiny", "--out"])
        .arg(&base));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "qwen2_5_vl");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("easel.json")).unwrap()).unwrap();
    manifest["prompt"]["system"] = serde_json::json!("Judge. {{ description }}");
    std::fs::write(base.join("easel.json"), manifest.to_string()).unwrap();
    let data = dataset(&tmp.path().join("data"));
    let out = tmp.path().join("trained");
    let output = run(easel()
        .args(["train", "--quiet", "--epochs", "1", "--batch-size", "2", "--val-fraction", "0.25"])
        .args(["--lora-rank", "2", "--lora-targets", "q_proj,v_proj", "--max-critique-tokens", "8"])
        .arg("--base")
        .arg(&base)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("epoch 1: train loss"), "{stderr}");
    assert!(out.join("head.safetensors").is_file() && out.join("adapter/adapter_model.safetensors").is_file());

    let rows = score_records(&out, &data.parent().unwrap().join("img"), &tmp.path().join("scores.jsonl"));
    assert_eq!(rows.len(), 8);
    for row in &rows {
        assert_eq!(row["scoring"], "head", "{row}");
        assert!((1.0..=100.0).contains(&row["overall"].as_f64().unwrap()), "{row}");
    }

    let bench = run(easel().args([
        "bench", "model", "--preset", "qwen2.5-vl-tiny", "--random-weights", "--device", "cpu",
        "--image-size", "56", "--iters", "1", "--new-tokens", "2",
    ]));
    assert!(bench.status.success());
    assert!(!bench.stdout.is_empty(), "the bench printed nothing");
}
