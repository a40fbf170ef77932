//! Upload limits, so that one request cannot take an ingest pod down: zip archives refused from
//! their end record, manifests counted while they stream, aspect ratios the model refuses, and
//! a cap on bulk requests served at once. Each refusal stores nothing.

use std::io::Write;

use easel_tests::bench::prometheus::Snapshot;
use easel_tests::{SubmitForm, TestApp, paintings};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::recovery::eventually;

async fn refused(response: reqwest::Response, status: u16, code: &str, what: &str) {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_else(|e| panic!("{what}: the error is not JSON: {e}"));
    assert_eq!(got, status, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        zip.start_file(*name, stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn archive_form(bytes: Vec<u8>) -> Form {
    Form::new().part("archive", Part::bytes(bytes).file_name("entries.zip").mime_str("application/zip").unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_archives_and_manifests_are_refused_before_they_cost_anything() {
    let app = TestApp::options().configure(|s| s.ingest.max_bulk_entries = 5).spawn().await;
    assert_eq!(app.create_competition("limits", None).await.status(), 201);
    let bulk = format!("{}/v1/competitions/limits/bulk", app.ingest_url);
    let painting = &paintings()[0];

    // A zip whose end record claims 60,000 entries: refused from that record alone.
    let manifest = format!("{{\"file\": \"{}\"}}\n", painting.file);
    let mut bomb = zip_of(&[("manifest.jsonl", manifest.as_bytes()), (painting.file.as_str(), &painting.bytes)]);
    let eocd = bomb.windows(4).rposition(|w| w == [0x50, 0x4b, 0x05, 0x06]).unwrap();
    bomb[eocd + 8..eocd + 10].copy_from_slice(&60_000u16.to_le_bytes());
    bomb[eocd + 10..eocd + 12].copy_from_slice(&60_000u16.to_le_bytes());
    let response = app.http.post(&bulk).multipart(archive_form(bomb)).send().await.unwrap();
    refused(response, 413, "request.too_many_entries", "a zip claiming 60,000 entries").await;

    // A zip with a file its manifest does not name: refused before anything is decompressed.
    let stray = zip_of(&[("manifest.jsonl", manifest.as_bytes()), (painting.file.as_str(), &painting.bytes), ("extra.jpg", &painting.bytes)]);
    let response = app.http.post(&bulk).multipart(archive_form(stray)).send().await.unwrap();
    refused(response, 400, "invalid.manifest", "a zip with an unnamed file").await;

    // Not a zip at all.
    let response = app.http.post(&bulk).multipart(archive_form(b"PK\x03\x04 and then nonsense".to_vec())).send().await.unwrap();
    refused(response, 400, "invalid.archive", "not a zip").await;

    // A manifest part with more lines than entries allowed: cut off while it streams.
    let long: String = (0..50).map(|i| format!("{{\"file\": \"f{i}.jpg\"}}\n")).collect();
    let form = Form::new().part("manifest", Part::bytes(long.into_bytes()).file_name("manifest.jsonl"));
    let response = app.http.post(&bulk).multipart(form).send().await.unwrap();
    refused(response, 413, "request.too_many_entries", "a manifest of 50 lines").await;

    // Within the limits, the same archive shape goes through.
    let good = zip_of(&[("manifest.jsonl", manifest.as_bytes()), (painting.file.as_str(), &painting.bytes)]);
    let response = app.http.post(&bulk).multipart(archive_form(good)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome["accepted"], 1, "{outcome}");
    assert_eq!(app.count("SELECT count(*) FROM submissions").await, 1, "only the good archive stored anything");
    assert_eq!(app.objects_in_bucket().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aspect_ratio_the_model_refuses_is_refused_at_ingest() {
    let app = TestApp::spawn().await;
    assert_eq!(app.create_competition("ratios", None).await.status(), 201);
    let strip = image::RgbImage::from_pixel(1005, 5, image::Rgb([10, 200, 30]));
    let mut png = std::io::Cursor::new(Vec::new());
    strip.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let response = app.submit("ratios", SubmitForm::image(png.into_inner(), "strip.png", Some("image/png"))).await;
    refused(response, 422, "image.aspect_ratio", "a 201:1 strip").await;
    assert_eq!(app.count("SELECT count(*) FROM submissions").await, 0);
    assert_eq!(app.objects_in_bucket().await, 0);
}

/// With `ingest.bulk_requests = 1`, a second bulk request while one is being received gets 503
/// with Retry-After; single uploads are not held back by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_requests_beyond_the_pods_share_are_turned_away() {
    let app = TestApp::options().configure(|s| s.ingest.bulk_requests = 1).spawn().await;
    assert_eq!(app.create_competition("busy", None).await.status(), 201);

    // The first bulk request: headers and the start of its body, then it waits.
    let address = app.ingest_url.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/competitions/busy/bulk HTTP/1.1\r\nHost: easel\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: 100000\r\n\r\n\
         --XYZ\r\nContent-Disposition: form-data; name=\"manifest\"; filename=\"m.jsonl\"\r\n\r\n{{\"file\"",
        app.admin_token
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    // Wait until the first request holds the slot (`easel_bulk_requests_in_flight` 1); if it
    // never does, say what the server answered it.
    let started = std::time::Instant::now();
    while bulk_requests_in_flight(&app).await != 1.0 {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let mut answer = vec![0; 4096];
            let read = tokio::time::timeout(std::time::Duration::from_secs(1), slow.read(&mut answer)).await;
            let answer = match read {
                Ok(Ok(n)) => String::from_utf8_lossy(&answer[..n]).into_owned(),
                other => format!("no answer ({other:?})"),
            };
            panic!("the first bulk request never held the slot; the server answered it: {answer}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let form = Form::new().part("manifest", Part::bytes(b"{\"file\": \"a.jpg\"}\n".to_vec()).file_name("m.jsonl"));
    let response = app.http.post(format!("{}/v1/competitions/busy/bulk", app.ingest_url)).multipart(form).send().await.unwrap();
    assert!(response.headers().get("retry-after").is_some(), "503 says when to come back: {:?}", response.headers());
    refused(response, 503, "ingest.busy", "a second bulk request").await;
    assert_eq!(app.submit("busy", SubmitForm::painting(&paintings()[1]).external_id("single")).await.status(), 202);

    // A client that goes away frees its slot.
    drop(slow);
    let freed = || async { bulk_requests_in_flight(&app).await == 0.0 };
    eventually("the slot of a closed connection freed", std::time::Duration::from_secs(30), freed).await;
}

async fn bulk_requests_in_flight(app: &TestApp) -> f64 {
    Snapshot::parse(&app.ingest_metrics().await).sum("easel_bulk_requests_in_flight", &[])
}

/// A bulk request refused after one of its files was stored leaves an object no submission
/// refers to; the orphan sweep deletes it once it is old enough, and never a referenced one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_of_refused_requests_are_swept() {
    let app = TestApp::options()
        .configure(|s| {
            s.ingest.orphan_sweep_interval_seconds = 1;
            s.ingest.orphan_after_seconds = 2;
        })
        .spawn()
        .await;
    assert_eq!(app.create_competition("orphans", None).await.status(), 201);
    let (kept, dropped) = (&paintings()[2], &paintings()[3]);
    app.submit_painting("orphans", kept, "kept").await;

    // The manifest names one file; the file is stored, then a part the manifest does not name
    // refuses the whole request.
    let manifest = format!("{{\"file\": \"{}\", \"external_id\": \"gone\"}}\n", dropped.file);
    let form = Form::new()
        .part("manifest", Part::bytes(manifest.into_bytes()).file_name("manifest.jsonl"))
        .part("files", Part::bytes(dropped.bytes.clone()).file_name(dropped.file.clone()).mime_str("image/jpeg").unwrap())
        .part("files", Part::bytes(b"stray".to_vec()).file_name("stray.jpg"));
    let response = app.http.post(format!("{}/v1/competitions/orphans/bulk", app.ingest_url)).multipart(form).send().await.unwrap();
    refused(response, 400, "invalid.manifest", "a part the manifest does not name").await;
    assert_eq!(app.count("SELECT count(*) FROM submissions").await, 1);

    let started = std::time::Instant::now();
    while app.objects_in_bucket().await > 1 || app.derived_in_bucket().await > 2 {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the orphan and its copies were not swept");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // Past the age limit too, the referenced image and its thumbnail and preview stay.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(app.objects_in_bucket().await, 1, "the submitted painting's image is kept");
    assert_eq!(app.derived_in_bucket().await, 2, "the submitted painting's copies are kept");
    let key: String = sqlx::query_scalar("SELECT image_key FROM submissions").fetch_one(&app.pool).await.unwrap();
    assert_eq!(key, easel_core::storage::image_key(&easel_core::storage::sha256_hex(&kept.bytes)));
}
