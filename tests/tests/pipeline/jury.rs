//! Juries end to end: 60 paintings scored by the model, four jurors scoring a blind round with
//! their own keys, a fifth rater's sheet imported as CSV, the standings and agreement figures
//! checked against the database, a round shortlisted by the model with its screening recall,
//! an override with its audit entry, and the long export.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use easel_tests::{SubmitForm, TestApp, paintings};

const ENTRIES: usize = 60;
const SECRET_ARTIST: &str = "SECRET-ARTIST";
const SECRET_EXIF: &str = "SECRET-EXIF-OWNER";

/// A JPEG with an EXIF segment, an XMP packet and a comment, each naming someone.
fn with_metadata(jpeg: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], [0xFF, 0xD8]);
    let segment = |marker: u8, payload: &[u8]| {
        let mut s = vec![0xFF, marker];
        s.extend(((payload.len() + 2) as u16).to_be_bytes());
        s.extend(payload);
        s
    };
    // A minimal little-endian TIFF: header, an IFD with no entries, then the secret.
    let mut exif = b"Exif\0\0II*\0\x08\0\0\0\0\0\0\0\0\0".to_vec();
    exif.extend(SECRET_EXIF.as_bytes());
    let xmp = format!("http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><dc:creator>{SECRET_EXIF}</dc:creator></x:xmpmeta>");
    let mut out = jpeg[..2].to_vec();
    out.extend(segment(0xE1, &exif));
    out.extend(segment(0xE1, xmp.as_bytes()));
    out.extend(segment(0xFE, SECRET_EXIF.as_bytes()));
    out.extend(&jpeg[2..]);
    out
}

/// A juror's score of the entry ranked `rank` (0 = the model's best) of `n`: the model's
/// order on a 1–10 scale, shifted by the juror's leniency, with a little disagreement.
fn juror_score(rank: usize, n: usize, juror: usize) -> f64 {
    let base = 10.0 - 9.0 * rank as f64 / (n - 1) as f64;
    let bias = [0.0, -2.0, 1.0, 0.5][juror];
    let noise = [-1.0, 0.0, 1.0, 0.0, 0.5][(rank * 7 + juror * 3) % 5];
    (base + bias + noise).round().clamp(1.0, 10.0)
}

struct Jury<'a> {
    app: &'a TestApp,
    slug: &'a str,
}

impl Jury<'_> {
    fn ingest(&self, path: &str) -> String {
        format!("{}/v1/competitions/{}{path}", self.app.ingest_url, self.slug)
    }

    fn api(&self, path: &str) -> String {
        format!("{}/v1/competitions/{}{path}", self.app.api_url, self.slug)
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("a response");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jury_scores_blind_rounds_beside_the_model_and_its_agreement_is_measured() {
    let mut app = TestApp::options().configure(|s| s.worker.batch_size = 8).spawn().await;
    let slug = "salon";
    assert_eq!(app.create_competition(slug, None).await.status(), 201);
    app.start_worker().await;

    // 60 entries, each with the artist's name in its description; one carries metadata.
    let all = paintings();
    let ids: Vec<Uuid> = futures::stream::iter(all[..ENTRIES].iter().enumerate())
        .map(|(i, p)| {
            let app = &app;
            async move {
                let bytes = if i == 0 { with_metadata(&p.bytes) } else { p.bytes.clone() };
                let form = SubmitForm::image(bytes, &p.file, Some("image/jpeg"))
                    .external_id(&format!("E-{i:02}"))
                    .description(&format!("Oil on canvas by {SECRET_ARTIST}-{i}"));
                let response = app.submit(slug, form).await;
                let status = response.status();
                let body: Value = response.json().await.unwrap();
                assert!(status.is_success(), "{status} {body}");
                body["id"].as_str().unwrap().parse::<Uuid>().unwrap()
            }
        })
        .buffered(8)
        .collect()
        .await;
    app.wait_until_settled(ENTRIES as i64, Duration::from_secs(600)).await;
    app.assert_exactly_once().await;
    let jury = Jury { app: &app, slug };
    let external: HashMap<Uuid, String> = ids.iter().enumerate().map(|(i, id)| (*id, format!("E-{i:02}"))).collect();

    // The model's order.
    let model: HashMap<Uuid, f32> =
        sqlx::query_as::<_, (Uuid, f32)>("SELECT submission_id, score FROM results").fetch_all(&app.pool).await.unwrap().into_iter().collect();
    let mut by_model: Vec<Uuid> = ids.clone();
    by_model.sort_by(|a, b| model[b].total_cmp(&model[a]).then(b.cmp(a)));
    let rank: HashMap<Uuid, usize> = by_model.iter().enumerate().map(|(r, id)| (*id, r)).collect();

    // Four jurors, each with a key of their own.
    let mut jurors = Vec::new();
    for name in ["Anna Müller", "Ben Harsh", "Chloé Lenient", "Dev O'Brien"] {
        let (status, body) = jury.json(app.http.post(jury.ingest("/jurors")).json(&json!({ "name": name }))).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["name"], name);
        jurors.push((body["id"].as_str().unwrap().to_string(), app.client(body["token"].as_str().unwrap())));
    }
    let (status, _) = jury.json(app.http.post(jury.ingest("/jurors")).json(&json!({ "name": "Anna Müller" }))).await;
    assert_eq!(status, 409, "juror names are unique");

    // Round 1: every entry, blind, 1–10.
    let body = json!({ "name": "First round", "scale_min": 1, "scale_max": 10, "blind": true });
    let (status, round1) = jury.json(app.http.post(jury.ingest("/rounds")).json(&body)).await;
    assert_eq!(status, 201, "{round1}");
    assert_eq!(round1["entries"], ENTRIES);
    let r1 = round1["id"].as_str().unwrap().to_string();

    // Each juror's queue: the whole round, in an order of their own that does not change, and
    // nothing that says whose work it is or what anyone else thought of it.
    let mut orders = Vec::new();
    for (_, client) in &jurors {
        let url = jury.ingest(&format!("/rounds/{r1}/queue?limit=500"));
        let (status, queue) = jury.json(client.get(&url)).await;
        assert_eq!(status, 200, "{queue}");
        assert_blind(&queue);
        let order: Vec<String> = queue["entries"].as_array().unwrap().iter().map(|e| e["submission_id"].as_str().unwrap().to_string()).collect();
        assert_eq!(order.len(), ENTRIES);
        let (_, again) = jury.json(client.get(&url)).await;
        let again: Vec<&str> = again["entries"].as_array().unwrap().iter().map(|e| e["submission_id"].as_str().unwrap()).collect();
        assert_eq!(order, again, "the order is stable");
        orders.push(order);
    }
    assert!(orders.windows(2).all(|w| w[0] != w[1]), "each juror has an order of their own");

    // The image a juror sees is a fresh JPEG without the file's metadata.
    let (_, queue) = jury.json(jurors[0].1.get(jury.ingest(&format!("/rounds/{r1}/queue?limit=500")))).await;
    let entry0 = queue["entries"].as_array().unwrap().iter().find(|e| e["submission_id"] == ids[0].to_string()).unwrap().clone();
    let image = jurors[0].1.get(format!("{}{}", app.ingest_url, entry0["image_url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/jpeg");
    let bytes = image.bytes().await.unwrap();
    assert!(easel_imaging::decode(&bytes, &easel_imaging::DecodeLimits::default()).is_ok());
    assert!(!bytes.windows(SECRET_EXIF.len()).any(|w| w == SECRET_EXIF.as_bytes()), "metadata leaked into the juror's copy");
    for marker in [[0xFF, 0xE1], [0xFF, 0xFE]] {
        assert!(!bytes.windows(2).any(|w| w == marker), "an APP1/COM segment in the copy");
    }

    // The four jurors score every entry; the last declares a conflict on one.
    let conflicted = by_model[5];
    for (j, (_, client)) in jurors.iter().enumerate() {
        let writes = futures::stream::iter(ids.iter().copied())
            .map(|id| {
                let mut body = json!({ "score": juror_score(rank[&id], ENTRIES, j) });
                if j == 3 && id == conflicted {
                    body = json!({ "conflict": true, "note": "my student's work" });
                }
                if j == 0 && rank[&id] < 10 {
                    body["rubric"] = json!({"originality": 8, "color": 7, "texture": 6.5, "composition": 9, "content": 7});
                }
                let url = jury.ingest(&format!("/rounds/{r1}/scores/{id}"));
                async move { client.put(url).json(&body).send().await.unwrap().status() }
            })
            .buffered(4)
            .collect::<Vec<_>>()
            .await;
        assert!(writes.iter().all(|s| *s == 200), "{writes:?}");
    }
    // Out of scale, and a second look that changes a score.
    let second = by_model[20];
    let url = jury.ingest(&format!("/rounds/{r1}/scores/{second}"));
    let (status, error) = jury.json(jurors[0].1.put(&url).json(&json!({ "score": 11 }))).await;
    assert_eq!(status, 422, "{error}");
    let first = juror_score(rank[&second], ENTRIES, 0);
    let changed = if first > 5.0 { first - 1.0 } else { first + 1.0 };
    let (status, stored) = jury.json(jurors[0].1.put(&url).json(&json!({ "score": changed, "note": "second look" }))).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["score"], changed);

    // A juror sees their own scores in the queue, and only those.
    let (_, queue) = jury.json(jurors[0].1.get(jury.ingest(&format!("/rounds/{r1}/queue?limit=500")))).await;
    assert_eq!(queue["scored"], ENTRIES);
    assert_blind(&queue);
    let (_, pending) = jury.json(jurors[0].1.get(jury.ingest(&format!("/rounds/{r1}/queue?pending=true")))).await;
    assert_eq!(pending["entries"].as_array().unwrap().len(), 0);

    // A fifth rater's sheet, imported by the organiser; a bad sheet changes nothing.
    let mut sheet = String::from("external_id,juror,score,originality,color,texture,composition,content\n");
    for id in &ids {
        let s = juror_score(rank[id], ENTRIES, 2);
        sheet.push_str(&format!("{},Dr. Sheet,{s},{s},{s},{s},{s},{s}\n", external[id]));
    }
    let csv_url = jury.ingest(&format!("/rounds/{r1}/scores.csv"));
    let scores_before = app.count("SELECT count(*) FROM juror_scores").await;
    let bad = sheet.replacen("E-03,Dr. Sheet", "E-03,Dr. Sheet\u{202e}", 1);
    let (status, error) = jury.json(app.http.post(&csv_url).header("content-type", "text/csv").body(bad)).await;
    assert_eq!(status, 422, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("line"), "{error}");
    assert_eq!(app.count("SELECT count(*) FROM juror_scores").await, scores_before, "nothing imported from a bad sheet");
    let (status, imported) = jury.json(app.http.post(&csv_url).header("content-type", "text/csv").body(sheet)).await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["rows"], ENTRIES);
    assert_eq!(imported["jurors_created"], json!(["Dr. Sheet"]));
    assert_eq!(app.count("SELECT count(*) FROM juror_scores").await, scores_before + ENTRIES as i64);

    // Standings agree with the database.
    let (status, standings) = jury.json(app.http.get(jury.api(&format!("/rounds/{r1}/standings?normalise=z")))).await;
    assert_eq!(status, 200, "{standings}");
    let panel: HashMap<Uuid, (f64, i64)> = sqlx::query_as::<_, (Uuid, f64, i64)>(
        "SELECT submission_id, avg(score), count(*) FROM juror_scores WHERE NOT conflict GROUP BY submission_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, mean, n)| (id, (mean, n)))
    .collect();
    let items = standings["items"].as_array().unwrap();
    assert_eq!(items.len(), ENTRIES);
    for item in items {
        let id: Uuid = item["submission_id"].as_str().unwrap().parse().unwrap();
        let (mean, n) = panel[&id];
        assert!((item["panel_mean"].as_f64().unwrap() - mean).abs() < 1e-9);
        assert_eq!(item["scores"], n);
        assert_eq!(item["panel_score"], item["panel_mean_z"]);
        assert!((item["model_score"].as_f64().unwrap() - f64::from(model[&id])).abs() < 1e-4);
    }
    let z: Vec<f64> = items.iter().map(|i| i["panel_score"].as_f64().unwrap()).collect();
    assert!(z.windows(2).all(|w| w[0] >= w[1]), "sorted by the panel score, best first");

    // A head's scores are on its training data's scale: no calibration to fit.
    let (status, error) = jury.json(app.http.get(jury.api(&format!("/rounds/{r1}/calibration")))).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "calibration.not_zero_shot", "{error}");

    // Agreement: the model against the panel mean, figured again here.
    let (status, agreement) = jury.json(app.http.get(jury.api(&format!("/rounds/{r1}/agreement")))).await;
    assert_eq!(status, 200, "{agreement}");
    assert_eq!(agreement["n"], ENTRIES);
    let (xs, ys): (Vec<f64>, Vec<f64>) = ids.iter().map(|id| (f64::from(model[id]), panel[id].0)).unzip();
    let pearson = agreement["model_vs_panel"]["pearson"].as_f64().unwrap();
    assert!((pearson - pearson_of(&xs, &ys)).abs() < 1e-6, "{pearson} vs {}", pearson_of(&xs, &ys));
    for figure in ["spearman", "kendall", "mae_calibrated", "qwk"] {
        assert!(agreement["model_vs_panel"][figure].is_f64(), "{figure}: {agreement}");
        let ci = &agreement["model_vs_panel"]["ci95"][figure];
        assert!(ci[0].as_f64().unwrap() <= ci[1].as_f64().unwrap(), "{figure}: {ci}");
    }
    assert!(agreement["model_vs_panel"]["spearman"].as_f64().unwrap() > 0.8, "jurors follow the model's order: {agreement}");
    let jurors_stats = agreement["jurors"].as_array().unwrap();
    assert_eq!(jurors_stats.len(), 5);
    let dev = jurors_stats.iter().find(|j| j["juror"] == "Dev O'Brien").unwrap();
    assert_eq!(dev["n"], ENTRIES - 1, "the conflicted score is left out");
    let ben = jurors_stats.iter().find(|j| j["juror"] == "Ben Harsh").unwrap();
    let chloe = jurors_stats.iter().find(|j| j["juror"] == "Chloé Lenient").unwrap();
    assert!(ben["mean"].as_f64().unwrap() < chloe["mean"].as_f64().unwrap(), "leniency shows");
    assert!(agreement["inter_juror"]["icc2_1"].is_f64(), "{agreement}");
    assert!(agreement["screening"].is_null());
    assert!(agreement["reasons"]["screening"].is_string());
    assert!(!agreement.to_string().contains("NaN"));

    // Round 2: the model's top 10 of round 1.
    let body = json!({ "name": "Shortlist", "scale_min": 1, "scale_max": 5, "blind": true,
                       "shortlist_from": r1, "by": "model", "top": 10 });
    let (status, round2) = jury.json(app.http.post(jury.ingest("/rounds")).json(&body)).await;
    assert_eq!(status, 201, "{round2}");
    assert_eq!(round2["entries"], 10);
    let r2 = round2["id"].as_str().unwrap().to_string();
    let shortlist: HashSet<Uuid> = sqlx::query_scalar("SELECT submission_id FROM round_entries WHERE round_id = $1::uuid")
        .bind(&r2)
        .fetch_all(&app.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(shortlist, by_model[..10].iter().copied().collect::<HashSet<_>>());
    for id in by_model[..3].iter() {
        let url = jury.ingest(&format!("/rounds/{r2}/scores/{id}"));
        assert_eq!(jurors[1].1.put(url).json(&json!({ "score": 4 })).send().await.unwrap().status(), 200);
    }
    let outside = jury.ingest(&format!("/rounds/{r2}/scores/{}", by_model[30]));
    assert_eq!(jurors[1].1.put(outside).json(&json!({ "score": 4 })).send().await.unwrap().status(), 404);

    // Screening: how much of the panel's own top 10 (round 1) the model's shortlist kept.
    let (_, agreement2) = jury.json(app.http.get(jury.api(&format!("/rounds/{r2}/agreement")))).await;
    let (_, raw) = jury.json(app.http.get(jury.api(&format!("/rounds/{r1}/standings?normalise=none")))).await;
    let mut panel_order: Vec<(Uuid, f64)> = raw["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["submission_id"].as_str().unwrap().parse().unwrap(), i["panel_mean"].as_f64().unwrap()))
        .collect();
    panel_order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let panel_order: Vec<Uuid> = panel_order.into_iter().map(|(id, _)| id).collect();
    let kept = panel_order[..10].iter().filter(|id| shortlist.contains(id)).count();
    assert_eq!(agreement2["screening"]["top"], 10, "{agreement2}");
    assert!((agreement2["screening"]["recall"].as_f64().unwrap() - kept as f64 / 10.0).abs() < 1e-12, "{agreement2}");

    // A closed round takes no scores.
    let round_url = jury.ingest(&format!("/rounds/{r2}"));
    let (status, closed) = jury.json(app.http.patch(&round_url).json(&json!({ "closed": true }))).await;
    assert_eq!(status, 200, "{closed}");
    let url = jury.ingest(&format!("/rounds/{r2}/scores/{}", by_model[4]));
    assert_eq!(jurors[1].1.put(&url).json(&json!({ "score": 4 })).send().await.unwrap().status(), 409);
    assert_eq!(app.http.patch(&round_url).json(&json!({ "closed": false })).send().await.unwrap().status(), 200);
    assert_eq!(jurors[1].1.put(&url).json(&json!({ "score": 4 })).send().await.unwrap().status(), 200);

    // An override, shown beside the model's score, and its audit entry.
    let target = by_model[59];
    let url = format!("{}/v1/submissions/{target}/override", app.ingest_url);
    let (status, body) = jury.json(app.http.post(&url).json(&json!({ "score": 0.5, "reason": "x" }))).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = jury.json(app.http.post(&url).json(&json!({ "score": 97, "reason": "the jury chair's call" }))).await;
    assert_eq!(status, 200, "{body}");
    let (_, submission) = app.api_json(&format!("/v1/submissions/{target}")).await;
    assert_eq!(submission["result"]["override"]["score"], 97.0, "{submission}");
    assert_eq!(submission["result"]["effective_score"], 97.0, "{submission}");
    assert!((submission["result"]["score"].as_f64().unwrap() - f64::from(model[&target])).abs() < 1e-4);
    let (_, board) = app.api_json(&format!("/v1/competitions/{slug}/results?limit=1")).await;
    assert_eq!(board["items"][0]["submission_id"], target.to_string(), "the override ranks it first: {board}");

    // Another override, pulling the model's best down: paged in sevens, the leaderboard is the
    // effective order, overrides merged in at their place.
    let demoted = by_model[0];
    let url = format!("{}/v1/submissions/{demoted}/override", app.ingest_url);
    assert_eq!(app.http.post(&url).json(&json!({ "score": 2.5, "reason": "disqualified: a copy" })).send().await.unwrap().status(), 200);
    let mut effective: Vec<(Uuid, f32)> = model.iter().map(|(id, s)| (*id, *s)).collect();
    for (id, score) in [(target, 97.0), (demoted, 2.5)] {
        effective.iter_mut().find(|(i, _)| *i == id).unwrap().1 = score;
    }
    effective.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    let mut paged: Vec<Uuid> = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = app.api_json(&format!("/v1/competitions/{slug}/results?limit=7{cursor}")).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            paged.push(item["submission_id"].as_str().unwrap().parse().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged, effective.iter().map(|(id, _)| *id).collect::<Vec<_>>());

    let (_, export) = app.api_text(&format!("/v1/competitions/{slug}/export.csv")).await;
    let mut reader = csv::Reader::from_reader(export.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let row = reader.records().map(Result::unwrap).find(|r| r[column("submission_id")] == target.to_string()).unwrap();
    assert_eq!(row[column("override_score")].parse::<f32>().unwrap(), 97.0);
    assert_eq!(row[column("effective_score")].parse::<f32>().unwrap(), 97.0);
    assert_eq!(row[column("score")].parse::<f32>().unwrap(), model[&target]);

    let (status, audit) = app.api_json(&format!("/v1/competitions/{slug}/audit?limit=1000")).await;
    assert_eq!(status, 200, "{audit}");
    let log = audit["items"].as_array().unwrap();
    let actions = |action: &str| log.iter().filter(|e| e["action"] == action).count();
    assert_eq!(actions("juror_created"), 5, "four by hand, one from the sheet");
    assert_eq!(actions("round_created"), 2);
    assert_eq!(actions("round_closed") + actions("round_reopened"), 2);
    // 4 × 60 by the jurors, one changed, 60 imported, 3 + 1 in round 2.
    assert_eq!(actions("score_set"), 4 * ENTRIES + 1 + ENTRIES + 4);
    assert_eq!(actions("override_set"), 2);
    let override_entry = log.iter().find(|e| e["action"] == "override_set").unwrap();
    assert_eq!(override_entry["subject"]["submission_id"], target.to_string());
    assert_eq!(override_entry["old"], Value::Null);
    assert_eq!(override_entry["new"], 97.0);
    assert_eq!(override_entry["reason"], "the jury chair's call");
    assert!(override_entry["key_name"].is_string() && override_entry["at"].is_string());
    let second_look = log
        .iter()
        .rev()
        .find(|e| e["action"] == "score_set" && e["subject"]["submission_id"] == second.to_string() && e["subject"]["juror"] == "Anna Müller")
        .unwrap();
    assert_eq!(second_look["old"]["score"], first);
    assert_eq!(second_look["new"]["score"], changed);
    // Append-only, whoever asks.
    assert!(sqlx::query("UPDATE audit_log SET reason = 'forged'").execute(&app.pool).await.is_err());
    assert!(sqlx::query("DELETE FROM audit_log").execute(&app.pool).await.is_err());
    assert!(sqlx::query("TRUNCATE audit_log").execute(&app.pool).await.is_err());

    // The long export: every non-conflicted juror score and the model's seven per entry.
    let (status, text) = app.api_text(&format!("/v1/competitions/{slug}/rounds/{r1}/scores.csv")).await;
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(reader.headers().unwrap(), vec!["submission_id", "external_id", "rater", "dimension", "score"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let juror_rows = 4 * ENTRIES - 1 + 10 * 5 + ENTRIES * 6;
    assert_eq!(rows.len(), juror_rows + ENTRIES * 7);
    let version: String = sqlx::query_scalar("SELECT model_version FROM results LIMIT 1").fetch_one(&app.pool).await.unwrap();
    for row in &rows {
        let id: Uuid = row[0].parse().unwrap();
        assert_eq!(row[1], external[&id]);
        let score: f64 = row[4].parse().unwrap();
        if row[2].starts_with("model:") {
            assert_eq!(&row[2], format!("model:{version}"));
            if &row[3] == "score" {
                assert!((score - f64::from(model[&id])).abs() < 1e-4);
            }
        } else {
            assert!((1.0..=10.0).contains(&score), "{row:?}");
        }
    }
}

/// Nothing in a blind queue tells whose work an entry is or what anyone else scored.
fn assert_blind(queue: &Value) {
    let text = queue.to_string();
    for leak in [SECRET_ARTIST, SECRET_EXIF, "\"E-", "external_id", "description", "model_score"] {
        assert!(!text.contains(leak), "{leak} in a blind queue: {text}");
    }
    let allowed: HashSet<&str> = ["submission_id", "image_url", "width", "height", "your_score"].into();
    for entry in queue["entries"].as_array().unwrap() {
        for key in entry.as_object().unwrap().keys() {
            assert!(allowed.contains(key.as_str()), "{key} in a blind queue entry");
        }
    }
}

fn pearson_of(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}
