//! A worker on a plain Hugging Face checkpoint (no `easel.json`, no head) scores zero-shot: its
//! results say so, carry each score's uncertainty through the submission view, the leaderboard
//! and both exports, and sit under a version that names the prompts.

use std::time::Duration;

use easel_tests::{TestApp, paintings, zero_shot_model};
use serde_json::Value;

const ENTRIES: usize = 3;
const OUTPUTS: [&str; 6] = ["overall", "originality", "color", "texture", "composition", "content"];

/// Six uncertainties, each a standard deviation of a five-level distribution on 1–100.
fn assert_uncertainty(value: &Value) {
    for name in OUTPUTS {
        let sd = value[name].as_f64().unwrap_or_else(|| panic!("no uncertainty for {name}: {value}"));
        assert!((0.0..=49.5 + 1e-3).contains(&sd), "{name}: {sd}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_hf_checkpoint_scores_zero_shot_with_uncertainty() {
    let model = zero_shot_model();
    let mut app = TestApp::options().configure(move |s| s.worker.model_dir = model).spawn().await;
    assert_eq!(app.create_competition("zero-shot-salon", None).await.status(), 201);
    let mut ids = Vec::new();
    for (i, painting) in paintings().iter().take(ENTRIES).enumerate() {
        ids.push(app.submit_painting("zero-shot-salon", painting, &format!("zs-{i}")).await);
    }
    app.start_worker().await;
    app.wait_until_settled(ENTRIES as i64, Duration::from_secs(120)).await;
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, ENTRIES as i64);
    assert_eq!(app.count("SELECT count(*) FROM results WHERE scoring = 'zero-shot' AND uncertainty IS NOT NULL").await, ENTRIES as i64);

    let (status, submission) = app.api_json(&format!("/v1/submissions/{}", ids[0])).await;
    assert_eq!(status, 200, "{submission}");
    let result = &submission["result"];
    assert_eq!(result["scoring"], "zero-shot", "{result}");
    assert_uncertainty(&result["uncertainty"]);
    let version = result["model_version"].as_str().unwrap();
    assert!(version.starts_with("qwen2-vl-zero-shot+zs-"), "the version names the folder and the prompts: {version}");
    for name in OUTPUTS {
        let score = result["scores"][name].as_f64().unwrap();
        assert!((1.0..=100.0).contains(&score), "{name}: {score}");
    }

    let (status, page) = app.api_json("/v1/competitions/zero-shot-salon/results").await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), ENTRIES);
    for item in items {
        assert_eq!(item["scoring"], "zero-shot");
        assert_uncertainty(&item["uncertainty"]);
    }

    let (status, text) = app.api_text("/v1/competitions/zero-shot-salon/export.csv").await;
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), ENTRIES);
    for row in &rows {
        assert_eq!(&row[column("scoring")], "zero-shot");
        for name in OUTPUTS {
            let sd: f64 = row[column(&format!("uncertainty_{name}"))].parse().unwrap();
            assert!((0.0..=49.6).contains(&sd));
        }
    }

    let (status, text) = app.api_text("/v1/competitions/zero-shot-salon/export.jsonl").await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), ENTRIES);
    for line in &lines {
        assert_eq!(line["scoring"], "zero-shot");
        assert_uncertainty(&line["uncertainty"]);
    }
}
