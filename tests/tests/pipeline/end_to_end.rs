use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use uuid::Uuid;

use easel_tests::bench::prometheus::Snapshot;
use easel_tests::{TestApp, paintings};

/// 40 single uploads, 100 in one multipart bulk request and 74 in a zip: 214 paintings, two
/// workers. Every submission ends `done` with exactly one result, and the leaderboard, the
/// progress counts and both exports agree with the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_paintings_in_single_and_bulk_uploads_are_each_scored_once() {
    let mut app = TestApp::options().configure(|s| s.worker.batch_size = 8).spawn().await;
    let weights = serde_json::json!({"originality": 2.0, "color": 1.0, "texture": 1.0, "composition": 1.0, "content": 1.0});
    assert_eq!(app.create_competition("met", Some(weights)).await.status(), 201);
    let all = paintings();
    assert_eq!(all.len(), 174, "the sample set");

    app.start_worker().await;
    app.start_worker().await;

    let singles: Vec<Uuid> = futures::stream::iter(all[..40].iter().enumerate())
        .map(|(i, p)| {
            let app = &app;
            async move { app.submit_painting("met", p, &format!("single-{i}")).await }
        })
        .buffered(8)
        .collect()
        .await;
    assert_eq!(singles.len(), 40);

    let bulk: Vec<_> = all[..100].iter().enumerate().map(|(i, p)| (p, format!("bulk-{i}"))).collect();
    let response = app.submit_bulk("met", &bulk).await;
    assert_eq!(response.status(), 200);
    let outcome: serde_json::Value = response.json().await.unwrap();
    assert_eq!((outcome["accepted"].as_u64(), outcome["rejected"].as_u64()), (Some(100), Some(0)), "{outcome}");

    let zipped: Vec<_> = all[100..].iter().enumerate().map(|(i, p)| (p, format!("zip-{i}"))).collect();
    let response = app.submit_zip("met", &zipped).await;
    assert_eq!(response.status(), 200);
    let outcome: serde_json::Value = response.json().await.unwrap();
    assert_eq!((outcome["accepted"].as_u64(), outcome["rejected"].as_u64()), (Some(74), Some(0)), "{outcome}");

    const TOTAL: i64 = 214;
    app.wait_until_settled(TOTAL, Duration::from_secs(600)).await;
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, TOTAL);
    assert_eq!(app.count("SELECT count(*) FROM results").await, TOTAL);
    app.assert_exactly_once().await;
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0, "every job was published");
    // Identical bytes are stored once (content-addressed): 174 distinct paintings.
    assert_eq!(app.objects_in_bucket().await, 174);

    // Each job was scored by exactly one worker.
    let mut scored = 0.0;
    for i in 0..2 {
        scored += Snapshot::parse(&app.worker(i).metrics().await).sum("easel_jobs_total", &[("outcome", "done")]);
    }
    assert_eq!(scored, TOTAL as f64, "jobs the two workers scored");

    // Progress.
    let (status, progress) = app.api_json("/v1/competitions/met/progress").await;
    assert_eq!(status, 200);
    assert_eq!(progress["done"], TOTAL);
    assert_eq!(progress["total"], TOTAL);
    for state in ["queued", "processing", "failed"] {
        assert_eq!(progress[state], 0, "{progress}");
    }

    // The leaderboard, page by page, against the database.
    let db_scores: HashMap<Uuid, f32> = sqlx::query_as::<_, (Uuid, f32)>("SELECT submission_id, score FROM results")
        .fetch_all(&app.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/competitions/met/results?limit=50".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = app.api_json(&path).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            let id: Uuid = item["submission_id"].as_str().unwrap().parse().unwrap();
            let score = item["score"].as_f64().unwrap() as f32;
            assert_eq!(db_scores[&id], score);
            let scores = &item["scores"];
            let weighted = (2.0 * scores["originality"].as_f64().unwrap()
                + scores["color"].as_f64().unwrap()
                + scores["texture"].as_f64().unwrap()
                + scores["composition"].as_f64().unwrap()
                + scores["content"].as_f64().unwrap())
                / 6.0;
            assert!((weighted - f64::from(score)).abs() < 1e-3, "the score is the rubric-weighted mean: {item}");
            seen.push((score, id));
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), TOTAL as usize);
    assert_eq!(seen.iter().map(|(_, id)| *id).collect::<HashSet<_>>().len(), TOTAL as usize, "no entry twice");
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "best first");

    let (_, page) = app.api_json(&format!("/v1/competitions/met/results?limit={TOTAL}")).await;
    assert!(page["next_cursor"].is_null(), "an exactly full last page has no next page");

    // A score filter.
    let threshold = seen[seen.len() / 2].0;
    let (_, page) = app.api_json(&format!("/v1/competitions/met/results?limit=500&min_score={threshold}")).await;
    let filtered = page["items"].as_array().unwrap();
    assert_eq!(filtered.len(), seen.iter().filter(|(s, _)| *s >= threshold).count());

    // One submission in full.
    let id = singles[0];
    let (status, submission) = app.api_json(&format!("/v1/submissions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(submission["status"], "done");
    assert_eq!(submission["external_id"], "single-0");
    assert_eq!(submission["description"], all[0].description.as_str());
    let result = &submission["result"];
    for dimension in ["overall", "originality", "color", "texture", "composition", "content"] {
        let value = result["scores"][dimension].as_f64().unwrap();
        assert!((1.0..=100.0).contains(&value), "{dimension}: {value}");
    }
    assert!(result["timings"]["batch_size"].as_f64().unwrap() >= 1.0, "{result}");
    // A trained head's scores: no zero-shot uncertainty.
    assert_eq!(result["scoring"], "head", "{result}");
    assert!(result["uncertainty"].is_null(), "{result}");
    let version: String = sqlx::query_scalar("SELECT model_version FROM results WHERE submission_id = $1").bind(id).fetch_one(&app.pool).await.unwrap();
    assert_eq!(result["model_version"], version.as_str());

    // Exports: every submission once, with the database's scores.
    let (status, csv_text) = app.api_text("/v1/competitions/met/export.csv").await;
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    let (id_col, score_col, status_col) = (column("submission_id"), column("score"), column("status"));
    let mut exported = HashSet::new();
    for row in reader.records() {
        let row = row.unwrap();
        let id: Uuid = row[id_col].parse().unwrap();
        assert_eq!(&row[status_col], "done");
        assert_eq!(row[score_col].parse::<f32>().unwrap(), db_scores[&id]);
        assert!(exported.insert(id), "{id} exported twice");
    }
    assert_eq!(exported.len(), TOTAL as usize);

    let (status, jsonl) = app.api_text("/v1/competitions/met/export.jsonl").await;
    assert_eq!(status, 200);
    let lines: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), TOTAL as usize);
    let ids: HashSet<Uuid> = lines.iter().map(|l| l["submission_id"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(ids, exported);
}
