//! The `easel` binary end to end: init a checkpoint, score a folder, dump tensors, benchmark.

mod common;

use common::{easel, run};
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures")
}

fn write_png(path: &Path, width: u32, height: u32, seed: u8) {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x as u8).wrapping_mul(seed),
            (y as u8).wrapping_add(seed),
            seed,
        ])
    });
    img.save(path).unwrap();
}

#[test]
fn init_then_score_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    run(easel()
        .args(["model", "init", "--preset", "tiny", "--seed", "5", "--out"])
        .arg(&model));
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "chat_template.json",
        "preprocessor_config.json",
        "easel.json",
        "head.safetensors",
    ] {
        assert!(model.join(file).is_file(), "{file} missing");
    }

    let paintings = tmp.path().join("paintings");
    std::fs::create_dir_all(paintings.join("room2")).unwrap();
    write_png(&paintings.join("dawn.png"), 200, 150, 3);
    std::fs::write(
        paintings.join("dawn.txt"),
        "Oil on canvas: a harbour at dawn.",
    )
    .unwrap();
    write_png(&paintings.join("room2/night.png"), 90, 160, 7);
    std::fs::write(
        paintings.join("broken.jpg"),
        b"\xFF\xD8\xFF\xE0 definitely not a jpeg",
    )
    .unwrap();
    std::fs::write(
        paintings.join("notes.md"),
        "ignored: not an image extension",
    )
    .unwrap();

    for (name, csv) in [("results.jsonl", false), ("results.csv", true)] {
        let out_file = tmp.path().join(name);
        let out = run(easel()
            .args([
                "score",
                "--quiet",
                "--batch",
                "2",
                "--max-new-tokens",
                "6",
                "--model",
            ])
            .arg(&model)
            .arg("--out")
            .arg(&out_file)
            .arg(&paintings));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("scored 2 painting(s), skipped 1"),
            "{stderr}"
        );
        assert!(stderr.contains("broken.jpg"), "{stderr}");
        let text = std::fs::read_to_string(&out_file).unwrap();
        if csv {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let headers = reader.headers().unwrap().clone();
            for column in [
                "file",
                "overall",
                "originality",
                "color",
                "texture",
                "composition",
                "content",
                "critique",
                "model_version",
            ] {
                assert!(headers.iter().any(|h| h == column), "CSV lacks {column}");
            }
            assert_eq!(reader.records().count(), 2);
        } else {
            let records: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(records.len(), 2);
            for r in &records {
                let overall = r["overall"].as_f64().unwrap();
                assert!((1.0..=100.0).contains(&overall));
                assert_eq!(r["model_version"], "easel-tiny-random-seed5");
                assert!(r["preprocess_ms"].as_f64().unwrap() >= 0.0);
            }
            assert!(
                records
                    .iter()
                    .any(|r| r["file"].as_str().unwrap().ends_with("night.png"))
            );
        }
    }
}

#[test]
fn score_fails_clearly_without_images_or_model() {
    let tmp = tempfile::tempdir().unwrap();
    let out = easel()
        .args(["score", "--model"])
        .arg(tmp.path())
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no images found"));
    write_png(&tmp.path().join("a.png"), 40, 40, 1);
    let out = easel()
        .args(["score", "--model"])
        .arg(tmp.path().join("nope"))
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("easel.json"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `easel model dump` reproduces HF's tensors for the tiny hub fixture (the stable contract
/// for checking numerics from outside).
#[test]
fn dump_matches_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = candle_core::safetensors::load(
        fixtures().join("reference/hub_two_images.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    for from_file in [false, true] {
        let out = tmp.path().join(format!("dump-{from_file}.safetensors"));
        let mut cmd = easel();
        cmd.args(["model", "dump", "--model"])
            .arg(fixtures().join("tiny-hub"))
            .arg("--image")
            .arg(fixtures().join("images/a.png"))
            .arg("--image")
            .arg(fixtures().join("images/b.jpg"))
            .args([
                "--prompt",
                "Critique this painting: originality, color, texture, composition, content.",
            ])
            .args(["--max-new-tokens", "12", "--ignore-eos", "--out"])
            .arg(&out);
        if from_file {
            cmd.arg("--pixel-values-from")
                .arg(fixtures().join("reference/hub_two_images.safetensors"));
        }
        run(&mut cmd);
        let ours = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
        let ints = |t: &candle_core::Tensor| {
            t.to_dtype(DType::I64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<i64>()
                .unwrap()
        };
        assert_eq!(ints(&ours["input_ids"]), ints(&reference["input_ids"]));
        assert_eq!(
            ints(&ours["image_grid_thw"]),
            ints(&reference["image_grid_thw"])
        );
        assert_eq!(ours["logits"].dims(), reference["logits"].dims());
        let max_diff = |a: &candle_core::Tensor, b: &candle_core::Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        if from_file {
            // HF's own pixel values: the numerics match tightly, and greedy decoding agrees.
            assert!(max_diff(&ours["logits"], &reference["logits"]) < 1e-3);
            assert!(max_diff(&ours["vision_merged"], &reference["vision_merged"]) < 1e-4);
            assert_eq!(
                ints(&ours["generated_ids"]),
                ints(&reference["generated_ids"])
            );
        } else {
            // Our own preprocessing (JPEG decoder and resampler differ from PIL's by a few
            // levels): same shapes, logits close.
            let diff = max_diff(&ours["logits"], &reference["logits"]);
            println!("logits with our preprocessing: max |diff| {diff}");
            assert!(diff < 0.5, "{diff}");
        }
        assert_eq!(ours["generated_ids"].dims(), &[12]);
    }
}

/// The same contract on the Qwen2.5-VL fixture (windowed vision tower), with HF's pixel values.
#[test]
fn dump_matches_the_qwen25_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixtures().join("qwen25");
    let reference_path = dir.join("reference/two_images.safetensors");
    let reference = candle_core::safetensors::load(&reference_path, &Device::Cpu).unwrap();
    let out = tmp.path().join("dump.safetensors");
    run(easel()
        .args(["model", "dump", "--model"])
        .arg(dir.join("checkpoint"))
        .arg("--image")
        .arg(dir.join("images/wide.png"))
        .arg("--image")
        .arg(dir.join("images/tall.png"))
        .args([
            "--prompt",
            "Critique this painting: originality, color, texture, composition, content.",
        ])
        .args(["--max-new-tokens", "12", "--ignore-eos", "--pixel-values-from"])
        .arg(&reference_path)
        .arg("--out")
        .arg(&out));
    let ours = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    let ints = |t: &candle_core::Tensor| {
        t.to_dtype(DType::I64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<i64>()
            .unwrap()
    };
    let max_diff = |name: &str| {
        (&ours[name] - &reference[name])
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(ints(&ours["input_ids"]), ints(&reference["input_ids"]));
    assert_eq!(
        ints(&ours["image_grid_thw"]),
        ints(&reference["image_grid_thw"])
    );
    assert!(max_diff("vision_merged") < 1e-4);
    assert!(max_diff("logits") < 1e-3);
    assert_eq!(
        ints(&ours["generated_ids"]),
        ints(&reference["generated_ids"])
    );
}

#[test]
fn bench_runs_at_the_tiny_shape() {
    let out = run(easel().args([
        "bench",
        "model",
        "--preset",
        "tiny",
        "--random-weights",
        "--image-size",
        "112",
        "--batch",
        "1,3",
        "--new-tokens",
        "4",
        "--iters",
        "1",
    ]));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for path in ["score", "prefill", "generate"] {
        assert_eq!(
            lines.iter().filter(|l| l["path"] == path).count(),
            2,
            "{path}"
        );
    }
    assert!(
        lines
            .iter()
            .filter(|l| l["path"] == "score")
            .all(|l| l["images_per_s"].as_f64().unwrap() > 0.0)
    );
    // Every timed run, and on Linux the hypervisor's steal over them (a share, 0–100 %).
    for l in lines.iter().filter(|l| l.get("path").is_some()) {
        let samples = l["samples"].as_array().expect("samples");
        assert!(samples.len() == 1 && samples[0].as_f64().unwrap() > 0.0, "{l}");
        if cfg!(target_os = "linux") {
            let steal = l["steal_pct"].as_f64().expect("steal_pct on Linux");
            assert!((0.0..=100.0).contains(&steal), "{l}");
        }
    }
}

/// A CPU without AVX-512 (or without AVX2) must still run the default build: gemm's and Easel's
/// vector kernels are chosen at run time. Valgrind's CPU has AVX2 + FMA but no AVX-512, and
/// stops on an instruction it does not know, so the bench at the tiny shape under valgrind
/// runs every CPU kernel (few-row and many-row products, activations, softmax) on the AVX2
/// paths, and would fail on any AVX-512 instruction outside a dispatch.
#[test]
fn the_default_build_runs_on_a_cpu_without_avx512() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("valgrind is not installed: skipped (apt-get install valgrind)");
        return;
    }
    let out = run(Command::new("valgrind")
        .args(["--tool=none", "-q", "--error-exitcode=3", env!("CARGO_BIN_EXE_easel")])
        .args(["bench", "model", "--preset", "tiny", "--random-weights", "--image-size", "56"])
        .args(["--batch", "1,9", "--new-tokens", "2", "--iters", "1"]));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let built = lines.iter().find(|l| l["event"] == "model_built").expect("model_built");
    assert!(
        // (`off` when the suite runs with EASEL_CPU_KERNELS=0: gemm's dispatch is still tested.)
        ["avx2", "portable", "off"].contains(&built["cpu_kernels"].as_str().unwrap()),
        "under valgrind the kernels cannot be AVX-512: {built}"
    );
    assert_eq!(lines.iter().filter(|l| l["path"] == "generate").count(), 2);
    // The packed-weight kernels (few-row and many-row, bf16 and int8) dispatch the same way.
    for weights in ["bf16", "int8"] {
        let out = run(Command::new("valgrind")
            .args(["--tool=none", "-q", "--error-exitcode=3", env!("CARGO_BIN_EXE_easel")])
            .args(["bench", "model", "--preset", "tiny", "--random-weights", "--image-size", "56"])
            .args(["--batch", "1,9", "--new-tokens", "2", "--iters", "1", "--paths", "generate", "--weights", weights]));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().filter(|l| l.contains("\"path\":\"generate\"")).count(), 2, "{weights}: {stdout}");
    }
}

#[test]
fn bench_weights_compares_each_format_with_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    run(easel().args(["model", "init", "--preset", "tiny", "--seed", "3", "--out"]).arg(&model));
    let paintings = tmp.path().join("paintings");
    std::fs::create_dir_all(&paintings).unwrap();
    for seed in 1..=5u8 {
        write_png(&paintings.join(format!("p{seed}.png")), 80 + 20 * u32::from(seed), 120, seed);
    }
    std::fs::write(paintings.join("p1.txt"), "Oil on canvas.").unwrap();
    let out = run(easel()
        .args(["bench", "weights", "--critiques", "2", "--new-tokens", "5", "--batch", "2", "--model"])
        .arg(&model)
        .arg("--images")
        .arg(&paintings));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["event"], "reference");
    assert_eq!(lines[0]["paintings"], 5);
    for (line, weights) in lines[1..].iter().zip(["bf16", "int8"]) {
        assert_eq!(line["event"], "agreement");
        assert_eq!(line["weights"], weights);
        assert_eq!(line["critiques"], 2);
        let agreement = line["token_agreement"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&agreement), "{line}");
        assert!(line["tokens_compared"].as_u64().unwrap() >= 2, "{line}");
        assert!(line["score_speedup"].as_f64().unwrap() > 0.0);
        let max = line["score_max_abs_diff"].as_f64().unwrap();
        if weights == "int8" {
            assert_eq!(max, 0.0, "int8 leaves the vision tower, hence the head's scores, in f32");
        } else {
            assert!(max < 1.0, "bf16 moved a score by {max}");
        }
        for output in ["overall", "originality", "color", "texture", "composition", "content"] {
            assert!(line["score_max_abs_diff_by_output"][output].as_f64().unwrap() <= max);
        }
    }
    for (bad, says) in [("int4", "unknown weight format"), ("f32", "reference")] {
        let out = easel()
            .args(["bench", "weights", "--weights", bad, "--model"])
            .arg(&model)
            .arg("--images")
            .arg(&paintings)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{bad}: {stderr}");
    }
    // Packed weights off the f32 path: a clear refusal.
    let out = easel()
        .args(["score", "--quiet", "--dtype", "bf16", "--weights", "int8", "--model"])
        .arg(&model)
        .arg(&paintings)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dtype f32"), "{}", String::from_utf8_lossy(&out.stderr));
}
