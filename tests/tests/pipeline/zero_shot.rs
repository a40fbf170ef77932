//! A worker on a plain Hugging Face checkpoint (no `easel.json`, no head) scores zero-shot: its
//! results say so, carry each score's uncertainty through the submission view, the leaderboard
//! and both exports, and sit under a version that names the prompts. A jury round fits a
//! calibration of those scores through the API.

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

/// A competition with a jury but no rated training set: the worker scores zero-shot, two jurors
/// score a round, and the API fits the calibration on the raw scores and the panel means —
/// the same maps the test fits here from the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_calibrates_zero_shot_scores_onto_its_panel() {
    use easel_model::calibration::Calibration;
    use serde_json::json;
    use uuid::Uuid;

    const N: usize = 8;
    let model = zero_shot_model();
    let mut app = TestApp::options().configure(move |s| s.worker.model_dir = model).spawn().await;
    let slug = "calibrated-salon";
    assert_eq!(app.create_competition(slug, None).await.status(), 201);
    let mut ids = Vec::new();
    for (i, painting) in paintings().iter().take(N).enumerate() {
        ids.push(app.submit_painting(slug, painting, &format!("c-{i}")).await);
    }
    app.start_worker().await;
    app.wait_until_settled(N as i64, Duration::from_secs(180)).await;
    // Raw scores are kept beside the served ones (the same here: the folder has no calibration).
    let rows: Vec<(Uuid, String, f32, Value)> =
        sqlx::query_as("SELECT submission_id, model_version, overall, raw_scores FROM results").fetch_all(&app.pool).await.unwrap();
    assert_eq!(rows.len(), N);
    let version = rows[0].1.clone();
    let raw: std::collections::HashMap<Uuid, Value> = rows.iter().map(|(id, _, _, raw)| (*id, raw.clone())).collect();
    for (_, _, overall, raw) in &rows {
        assert!((raw["overall"].as_f64().unwrap() - f64::from(*overall)).abs() < 1e-4, "{raw}");
    }

    let ingest = |path: &str| format!("{}/v1/competitions/{slug}{path}", app.ingest_url);
    let mut jurors = Vec::new();
    for name in ["Ines", "Jun"] {
        let body: Value = app.http.post(ingest("/jurors")).json(&json!({ "name": name })).send().await.unwrap().json().await.unwrap();
        jurors.push(app.client(body["token"].as_str().unwrap()));
    }
    let round: Value = app
        .http
        .post(ingest("/rounds"))
        .json(&json!({ "name": "Open call", "scale_min": 1, "scale_max": 10, "blind": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let round_id = round["id"].as_str().unwrap().to_string();
    // Ines scores every entry and gives a rubric to the first four; Jun scores every entry but
    // declares a conflict on the last. Panel means on 1–10, moved onto 1–100 by the API.
    let mut overall_targets = Vec::new();
    let mut color_targets = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let ines = 1.0 + i as f64;
        let jun = (2.0 + i as f64).min(10.0);
        let mut body = json!({ "score": ines });
        if i < 4 {
            body["rubric"] = json!({ "originality": 2, "color": 3 + i, "texture": 4, "composition": 5, "content": 6 });
            color_targets.push((*id, 1.0 + 99.0 * ((3 + i) as f64 - 1.0) / 9.0));
        }
        let url = ingest(&format!("/rounds/{round_id}/scores/{id}"));
        assert_eq!(jurors[0].put(&url).json(&body).send().await.unwrap().status(), 200);
        let body = if i == N - 1 { json!({ "conflict": true }) } else { json!({ "score": jun }) };
        assert_eq!(jurors[1].put(&url).json(&body).send().await.unwrap().status(), 200);
        let mean = if i == N - 1 { ines } else { (ines + jun) / 2.0 };
        overall_targets.push((*id, 1.0 + 99.0 * (mean - 1.0) / 9.0));
    }

    let (status, view) = app.api_json(&format!("/v1/competitions/{slug}/rounds/{round_id}/calibration?folds=3")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["model_version"], version.as_str());
    assert_eq!((view["entries"].as_u64(), view["paired"].as_u64()), (Some(N as u64), Some(N as u64)), "{view}");
    assert_eq!((view["unscored"].as_u64(), view["without_raw_scores"].as_u64()), (Some(0), Some(0)));
    let outputs = view["outputs"].as_array().unwrap();
    let expected = |targets: &[(Uuid, f64)], output: &str| {
        let (x, y): (Vec<f32>, Vec<f32>) =
            targets.iter().map(|(id, t)| (raw[id][output].as_f64().unwrap() as f32, *t as f32)).unzip();
        Calibration::fit(&x, &y).unwrap().map
    };
    for (output, targets) in [("overall", &overall_targets), ("color", &color_targets)] {
        let fit = outputs.iter().find(|o| o["name"] == output).unwrap();
        assert_eq!(fit["n"].as_u64(), Some(targets.len() as u64), "{fit}");
        assert_eq!(fit["map"]["method"], "linear", "fewer than 30 entries: {fit}");
        let got: Calibration = serde_json::from_value(fit["map"].clone()).unwrap();
        let (Calibration::Linear { slope: a, intercept: b }, Calibration::Linear { slope: c, intercept: d }) = (&got, &expected(targets, output)) else {
            panic!("{got:?}");
        };
        assert!((a - c).abs() < 1e-4 && (b - d).abs() < 1e-3, "{output}: {got:?} vs {c}·x + {d}");
        assert_eq!(fit["cross_validation"]["folds"], 3, "{fit}");
        assert_eq!(view["calibration"]["maps"][output], fit["map"]);
    }
    assert_eq!(view["calibration"]["entries"], N);
    // No juror gave a rubric to the last four: the criteria were fitted on four entries.
    assert_eq!(outputs.iter().find(|o| o["name"] == "texture").unwrap()["n"], 4);

    // Another version's scores: none for this round, nothing to fit.
    let (status, other) =
        app.api_json(&format!("/v1/competitions/{slug}/rounds/{round_id}/calibration?model_version=nobody-v1")).await;
    assert_eq!(status, 200, "{other}");
    assert_eq!((other["paired"].as_u64(), other["unscored"].as_u64()), (Some(0), Some(N as u64)));
    assert!(other["calibration"].is_null(), "{other}");
}
