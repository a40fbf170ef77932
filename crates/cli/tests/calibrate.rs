//! `easel calibrate` on a plain Hugging Face folder (the zero-shot fixture of the model crate:
//! a tiny random Qwen2-VL with the real Qwen tokenizer, from scripts/fetch-qwen-tokenizer.sh):
//! the new checkpoint links the original's files and serves calibrated scores; bad `--out`
//! folders and head checkpoints are refused.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{easel, run, score_records};

/// The fixture checkpoint with the real tokenizer beside it, as a plain HF folder.
fn plain_hf_folder(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tokenizer = root.join(".cache/qwen-tokenizer/tokenizer.json");
    assert!(
        tokenizer.is_file(),
        "{} is missing: run scripts/fetch-qwen-tokenizer.sh",
        tokenizer.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    for entry in
        std::fs::read_dir(root.join("crates/model/tests/fixtures/zero-shot/checkpoint")).unwrap()
    {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::copy(&tokenizer, dir.join("tokenizer.json")).unwrap();
    dir.to_path_buf()
}

/// Ten 56×56 paintings rated overall, three of them on color too.
fn rated(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let mut lines = Vec::new();
    for i in 0..10u32 {
        let c = (i * 25) as u8;
        image::RgbImage::from_fn(56, 56, |x, y| {
            image::Rgb([c, (x * 4) as u8, 255 - (y * 4) as u8])
        })
        .save(dir.join(format!("img/{i}.png")))
        .unwrap();
        let mut row =
            serde_json::json!({"image": format!("img/{i}.png"), "overall": 10.0 + 8.0 * i as f32});
        if i < 3 {
            row["color"] = serde_json::json!(30.0 + i as f32);
        }
        lines.push(row.to_string());
    }
    let path = dir.join("rated.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn calibrate(model: &Path, data: &Path, out: &Path) -> std::process::Command {
    let mut cmd = easel();
    cmd.args(["calibrate", "--quiet", "--batch", "4", "--model"])
        .arg(model)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out);
    cmd
}

fn fails(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn calibrate_writes_a_linked_checkpoint_that_serves_calibrated_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let model = plain_hf_folder(&tmp.path().join("qwen"));
    let data = rated(&tmp.path().join("data"));
    let out = tmp.path().join("qwen-jury");
    let output = run(&mut calibrate(&model, &data, &out));
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}");
    assert!(
        stdout.contains("linear: 10 entries (fewer than 30)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not calibrated: 0 entries have a texture score"),
        "{stdout}"
    );

    // The original's files, hard-linked; the original keeps no easel.json.
    let weights = "model-00001-of-00002.safetensors";
    assert_eq!(
        std::fs::metadata(out.join(weights)).unwrap().ino(),
        std::fs::metadata(model.join(weights)).unwrap().ino()
    );
    assert!(out.join("tokenizer.json").is_file() && !model.join("easel.json").exists());

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("easel.json")).unwrap()).unwrap();
    assert_eq!(manifest["scoring"], "zero-shot");
    let calibration = &manifest["calibration"];
    assert_eq!(calibration["entries"], 10);
    assert_eq!(calibration["maps"]["overall"]["method"], "linear");
    assert_eq!(
        calibration["maps"]["color"]["method"], "linear",
        "3 rows are enough for a line"
    );
    assert!(calibration["maps"]["texture"].is_null());
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("calibration-report.json")).unwrap(),
    )
    .unwrap();
    let overall = &report["outputs"][0];
    assert_eq!(
        (overall["name"].as_str(), overall["n"].as_u64()),
        (Some("overall"), Some(10))
    );
    assert_eq!(overall["cross_validation"]["folds"], 5);
    assert!(
        overall["cross_validation"]["mae_raw"]
            .as_f64()
            .unwrap()
            .is_finite()
    );

    // Served: every overall score inside the jury's range (the map is a clamped monotone line
    // fitted on 10–82), and a zero-shot version of its own.
    let scored = tmp.path().join("scores.jsonl");
    run(easel()
        .args(["score", "--quiet", "--max-new-tokens", "0", "--model"])
        .arg(&out)
        .arg("--out")
        .arg(&scored)
        .arg(data.parent().unwrap().join("img")));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&scored)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 10);
    for row in &rows {
        let overall = row["overall"].as_f64().unwrap();
        assert!((1.0..=100.0).contains(&overall), "{row}");
    }

    // A second run into the same folder, into the model itself or inside it, is refused.
    assert!(fails(&mut calibrate(&model, &data, &out)).contains("is not empty"));
    assert!(fails(&mut calibrate(&model, &data, &model)).contains("--out is --model"));
    assert!(
        fails(&mut calibrate(&model, &data, &model.join("calibrated")))
            .contains("is inside --model")
    );
    // The calibrated checkpoint can be calibrated again (from its raw scores).
    run(&mut calibrate(&out, &data, &tmp.path().join("again")));
}

#[test]
fn a_head_checkpoint_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    run(easel()
        .args(["model", "init", "--preset", "tiny", "--out"])
        .arg(&base));
    let data = rated(&tmp.path().join("data"));
    let out = tmp.path().join("out");
    let stderr = fails(&mut calibrate(&base, &data, &out));
    assert!(
        stderr.contains("scores with a trained regression head"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written");
}

fn install(model: &Path, file: &Path, out: &Path) -> std::process::Command {
    let mut cmd = easel();
    cmd.args(["calibrate", "--model"])
        .arg(model)
        .arg("--calibration")
        .arg(file)
        .arg("--out")
        .arg(out);
    cmd
}

#[test]
fn a_calibration_fitted_by_the_api_is_installed_as_is() {
    let tmp = tempfile::tempdir().unwrap();
    let model = plain_hf_folder(&tmp.path().join("qwen"));
    let data = rated(&tmp.path().join("data"));
    let images = data.parent().unwrap().join("img");
    let before = score_records(&model, &images, &tmp.path().join("before.jsonl"));
    let served = before[0]["model_version"].as_str().unwrap().to_string();

    // The API's response: a flat line for overall (every score becomes 42), nothing else.
    let section = serde_json::json!({
        "entries": 12, "note": "round R1 of salon",
        "maps": {"overall": {"method": "linear", "slope": 0.0, "intercept": 42.0},
                 "originality": null, "color": null, "texture": null, "composition": null, "content": null},
    });
    let response = |version: &str, calibration: serde_json::Value| {
        serde_json::json!({"round_id": "0190c1d2-0000-7000-8000-000000000000", "model_version": version,
                           "paired": 12, "outputs": [], "calibration": calibration})
    };
    let write = |name: &str, value: &serde_json::Value| {
        let path = tmp.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path
    };
    let file = write("round.json", &response(&served, section.clone()));
    let out = tmp.path().join("qwen-round");
    let output = run(&mut install(&model, &file, &out));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("served as"), "{stdout}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("easel.json")).unwrap()).unwrap();
    assert_eq!(manifest["scoring"], "zero-shot");
    assert_eq!(manifest["calibration"], section);
    assert!(!out.join("calibration-report.json").exists());

    let after = score_records(&out, &images, &tmp.path().join("after.jsonl"));
    assert_eq!(after.len(), before.len());
    let version = after[0]["model_version"].as_str().unwrap();
    assert_ne!(version, served, "a calibration is a new model version");
    for a in &after {
        let b = before.iter().find(|b| b["file"] == a["file"]).unwrap();
        assert!((a["overall"].as_f64().unwrap() - 42.0).abs() < 1e-4, "{a}");
        // Uncalibrated outputs are served as before.
        assert_eq!(a["color"], b["color"]);
        assert_eq!(a["levels"], b["levels"]);
    }

    // The easel.json section alone is accepted too.
    run(&mut install(
        &model,
        &write("section.json", &section),
        &tmp.path().join("qwen-section"),
    ));

    // Refused, writing nothing: another version's scores, no calibration, a decreasing map,
    // not JSON, a head checkpoint, and --data with --calibration.
    let refused = tmp.path().join("refused");
    let cases = [
        (
            write("other.json", &response("someone-else+zs-00000000", section.clone())),
            "was fitted on the raw scores of someone-else",
        ),
        (
            write("none.json", &response(&served, serde_json::Value::Null)),
            "holds no calibration",
        ),
        (
            write(
                "bad.json",
                &serde_json::json!({"entries": 3, "maps": {
                    "overall": {"method": "isotonic", "knots": [[10, 50], [20, 40]]},
                    "originality": null, "color": null, "texture": null, "composition": null, "content": null}}),
            ),
            "invalid calibration",
        ),
        (write("text.json", &serde_json::json!("x")), "neither"),
    ];
    for (file, expected) in &cases {
        let stderr = fails(&mut install(&model, file, &refused));
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(!refused.exists(), "nothing written for {expected}");
    }
    std::fs::write(tmp.path().join("garbage.json"), "{{{").unwrap();
    let stderr = fails(&mut install(&model, &tmp.path().join("garbage.json"), &refused));
    assert!(stderr.contains("is not JSON"), "{stderr}");

    let head = tmp.path().join("head");
    run(easel()
        .args(["model", "init", "--preset", "tiny", "--out"])
        .arg(&head));
    let stderr = fails(&mut install(&head, &file, &refused));
    assert!(stderr.contains("trained regression head"), "{stderr}");
    let stderr = fails(install(&model, &file, &refused).arg("--data").arg(&data));
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    assert!(!refused.exists());
}
