//! Text from clients and from the model is untrusted: bidirectional controls are refused at the
//! edge, and exported CSV cannot smuggle formulas into a spreadsheet.

use std::time::Duration;

use easel_tests::{SubmitForm, TestApp, paintings};

/// A right-to-left override: `entry\u{202E}gpj.exe` displays as `entryexe.jpg`.
const RLO: char = '\u{202E}';

async fn refused(response: reqwest::Response, code: &str, what: &str) {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_else(|e| panic!("{what}: the error is not JSON: {e}"));
    assert_eq!(status, 422, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("bidirectional")), "{what}: {body}");
}

/// Bidirectional controls in a description, an external id (single or bulk) or a competition
/// title are refused with a 422 naming the field, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_controls_are_refused_in_client_text() {
    let app = TestApp::spawn().await;
    assert_eq!(app.create_competition("hostile", None).await.status(), 201);
    let painting = &paintings()[0];

    let description = format!("A calm harbour {RLO}gpj.exe");
    refused(app.submit("hostile", SubmitForm::painting(painting).description(&description)).await, "invalid.description", "description").await;
    let external_id = format!("entry{RLO}1-yrtne");
    refused(app.submit("hostile", SubmitForm::painting(painting).external_id(&external_id)).await, "invalid.external_id", "external id").await;
    let isolate = "entry-\u{2066}7\u{2069}";
    refused(app.submit("hostile", SubmitForm::painting(painting).external_id(isolate)).await, "invalid.external_id", "an isolate").await;

    let outcome: serde_json::Value = app.submit_bulk("hostile", &[(painting, external_id.clone())]).await.json().await.unwrap();
    assert_eq!((outcome["accepted"].as_u64(), outcome["rejected"].as_u64()), (Some(0), Some(1)), "{outcome}");
    assert_eq!(outcome["items"][0]["error"]["code"], "invalid.external_id", "{outcome}");

    let title = serde_json::json!({ "slug": "spoofed", "title": format!("Spring salon {RLO}6202") });
    let response = app.http.post(format!("{}/v1/competitions", app.ingest_url)).json(&title).send().await.unwrap();
    refused(response, "invalid.title", "competition title").await;

    assert_eq!(app.count("SELECT count(*) FROM submissions").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM competitions").await, 1);
    assert_eq!(app.objects_in_bucket().await, 0);
}

/// External ids that a spreadsheet would run as formulas come back in the CSV export quoted
/// with `'`, scores as plain numbers; the JSON-lines export carries them unchanged. Stored
/// critiques hold no control characters but line breaks and tabs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_export_cells_cannot_be_formulas() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.create_competition("formulas", None).await.status(), 201);
    let ids = ["=HYPERLINK(\"http://evil.example/x\",\"open me\")", "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3", "plain-entry"];
    for (painting, id) in paintings().iter().zip(ids) {
        app.submit_painting("formulas", painting, id).await;
    }
    app.start_worker().await;
    app.wait_until_settled(ids.len() as i64, Duration::from_secs(120)).await;
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE status = 'done'").await, ids.len() as i64);

    let (status, csv_text) = app.api_text("/v1/competitions/formulas/export.csv").await;
    assert_eq!(status, 200, "{csv_text}");
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    let (id_col, score_col, critique_col) = (column("external_id"), column("score"), column("critique"));
    let mut exported = Vec::new();
    for row in reader.records() {
        let row = row.unwrap();
        let score: f32 = row[score_col].parse().unwrap_or_else(|e| panic!("score {:?}: {e}", &row[score_col]));
        assert!((1.0..=100.0).contains(&score), "{score}");
        assert!(!row[critique_col].starts_with(['=', '+', '-', '@', '\t', '\r']), "critique {:?}", &row[critique_col]);
        exported.push(row[id_col].to_string());
    }
    exported.sort();
    let mut expected: Vec<String> =
        ids.iter().map(|id| if id.starts_with(['=', '@', '-']) { format!("'{id}") } else { id.to_string() }).collect();
    expected.sort();
    assert_eq!(exported, expected);
    assert!(exported.iter().any(|id| id.starts_with("'=HYPERLINK(")), "{exported:?}");

    let (status, jsonl) = app.api_text("/v1/competitions/formulas/export.jsonl").await;
    assert_eq!(status, 200);
    let mut raw: Vec<String> =
        jsonl.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["external_id"].as_str().unwrap().to_string()).collect();
    raw.sort();
    let mut sent: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    sent.sort();
    assert_eq!(raw, sent, "the JSON-lines export is not escaped");

    let dirty = app
        .count("SELECT count(*) FROM results WHERE critique ~ '[\\x01-\\x08\\x0B-\\x1F\\x7F\\u202A-\\u202E\\u2066-\\u2069]' OR char_length(critique) > 8192")
        .await;
    assert_eq!(dirty, 0, "critiques stored with control characters or over the cap");
}
