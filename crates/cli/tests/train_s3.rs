//! `easel train` and `easel eval` on a manifest whose images live in the project's S3 bucket
//! (a real S3 server: SeaweedFS from `scripts/deps-up.sh`, configured by `config/`).

mod common;

use std::path::Path;
use std::process::Command;

use common::{easel, run};
use easel_core::configuration::{Service, Settings};
use easel_core::storage::ImageStore;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `easel` with the services' configuration and its own bucket.
fn easel_with_bucket(bucket: &str) -> Command {
    let mut cmd = easel();
    cmd.env("APP_CONFIG_DIR", repo().join("config")).env("APP_S3__BUCKET", bucket);
    cmd
}

#[test]
fn train_and_eval_read_s3_images_and_name_a_missing_object_by_line() {
    // One fixed bucket: each run overwrites the same ten objects instead of leaving new ones.
    let bucket = "easel-cli-train-test".to_string();
    let mut settings = Settings::load_from(Service::Worker, &repo().join("config")).expect("config/");
    settings.s3.bucket = bucket.clone();
    let store = ImageStore::new(&settings.s3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(store.ensure_bucket()).expect("SeaweedFS on the configured endpoint (scripts/deps-up.sh)");

    let tmp = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for i in 0..10u32 {
        let c = (i * 25) as u8;
        let image = image::RgbImage::from_fn(56, 56, |x, y| image::Rgb([c, (x * 4) as u8, (y * 4) as u8]));
        let mut png = std::io::Cursor::new(Vec::new());
        image.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let key = format!("training/{i}.png");
        runtime.block_on(store.put(&key, png.into_inner().into(), "image/png")).expect("putting an image");
        lines.push(serde_json::json!({"image": format!("s3://{bucket}/{key}"), "overall": 10.0 + 8.0 * i as f32}).to_string());
    }
    let data = tmp.path().join("data.jsonl");
    std::fs::write(&data, lines.join("\n")).unwrap();

    let base = tmp.path().join("base");
    run(easel().args(["model", "init", "--preset", "tiny", "--out"]).arg(&base));
    let out = tmp.path().join("trained");
    let train = |data: &Path, out: &Path| {
        let mut cmd = easel_with_bucket(&bucket);
        cmd.args(["train", "--quiet", "--head-only", "--epochs", "3", "--seed", "1", "--base"])
            .arg(&base)
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(out);
        cmd
    };
    run(&mut train(&data, &out));
    assert!(out.join("head.safetensors").is_file());
    let split: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("split.json")).unwrap()).unwrap();
    assert_eq!(split["train_lines"].as_array().unwrap().len() + split["val_lines"].as_array().unwrap().len(), 10, "{split}");

    let report = tmp.path().join("report");
    run(easel_with_bucket(&bucket).args(["eval", "--model"]).arg(&out).arg("--data").arg(&data).arg("--out").arg(&report));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["rows"], 10);

    // A row naming an object that is not there stops training before it starts, by line.
    lines.insert(2, serde_json::json!({"image": format!("s3://{bucket}/training/missing.png"), "overall": 50}).to_string());
    let broken = tmp.path().join("broken.jsonl");
    std::fs::write(&broken, lines.join("\n")).unwrap();
    let output = train(&broken, &tmp.path().join("never")).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3:") && stderr.contains("missing.png"), "{stderr}");
    // Another bucket is refused, not read.
    std::fs::write(&broken, serde_json::json!({"image": "s3://someone-elses/x.png", "overall": 50}).to_string()).unwrap();
    let output = train(&broken, &tmp.path().join("never")).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("only the project's bucket"), "{}", String::from_utf8_lossy(&output.stderr));
}
