use easel_tests::{SubmitForm, TestApp, paintings};

/// What a refused request must look like: the status, and a JSON error with the code.
async fn refused(response: reqwest::Response, status: u16, code: &str, what: &str) {
    let got = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_else(|e| panic!("{what}: the error is not JSON: {e}"));
    assert_eq!(got, status, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: no message: {body}");
}

/// A PNG whose header claims `width`×`height` (a decompression bomb's first bytes): it must be
/// refused from the header, before any pixel buffer exists.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    // A deflate stream of zeros would follow; the header alone must already be refused.
    let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01".to_vec();
    png.extend(((idat.len() - 4) as u32).to_be_bytes());
    png.extend(&idat);
    png.extend(crc32(&idat).to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_bytes() -> Vec<u8> {
    let image = image::RgbImage::from_pixel(32, 24, image::Rgb([200, 40, 40]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Every kind of bad upload gets a clear 4xx JSON error, and none of them stores an object,
/// writes a row or queues a job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_change_nothing() {
    const MAX_IMAGE: usize = 1 << 20;
    let app = TestApp::options().configure(|s| s.ingest.max_image_bytes = MAX_IMAGE).spawn().await;
    assert_eq!(app.create_competition("strict", None).await.status(), 201);
    let jpeg = paintings().iter().find(|p| p.bytes.len() > 50_000 && p.bytes.len() < MAX_IMAGE).expect("a mid-size painting");
    let image = |bytes: Vec<u8>, mime: Option<&str>| SubmitForm::image(bytes, "entry.jpg", mime);

    let cases: Vec<(&str, SubmitForm, u16, &str)> = vec![
        ("not an image", image(b"GIF? no: plain text pretending".to_vec(), Some("image/jpeg")), 415, "image.not_an_image"),
        ("an HTML page", image(b"<!doctype html><script>alert(1)</script>".to_vec(), None), 415, "image.not_an_image"),
        ("zero bytes", image(Vec::new(), Some("image/jpeg")), 422, "image.empty"),
        ("a truncated JPEG", image(jpeg.bytes[..jpeg.bytes.len() / 2].to_vec(), Some("image/jpeg")), 422, "image.truncated"),
        ("a 100000x100000 PNG", image(png_claiming(100_000, 100_000), Some("image/png")), 422, "image.too_large"),
        ("a PNG sent as a JPEG", image(png_bytes(), Some("image/jpeg")), 415, "image.content_type_mismatch"),
        ("over the size limit", image(vec![0xFF; MAX_IMAGE + 1], Some("image/jpeg")), 413, "image.too_many_bytes"),
        ("no image", SubmitForm::default().description("a description alone"), 400, "missing_field"),
        ("an oversized description", SubmitForm::painting(jpeg).description(&"é".repeat(5000)), 422, "invalid.description"),
        (
            "a description that is not UTF-8",
            SubmitForm { description: Some(vec![b'o', b'k', 0xFF, 0xFE]), ..SubmitForm::painting(jpeg) },
            422,
            "invalid.description",
        ),
        ("a NUL in the description", SubmitForm::painting(jpeg).description("fine\0then not"), 422, "invalid.description"),
        ("an escape sequence in the external id", SubmitForm::painting(jpeg).external_id("id\u{1b}[2J"), 422, "invalid.external_id"),
        ("an oversized external id", SubmitForm::painting(jpeg).external_id(&"x".repeat(201)), 422, "invalid.external_id"),
    ];
    for (what, form, status, code) in cases {
        refused(app.submit("strict", form).await, status, code, what).await;
    }
    // Refused before its body is read: the connection is closed, and the response says so, so
    // the client does not reuse it (the next request would fail on it).
    let response = app.submit("no-such-competition", SubmitForm::painting(jpeg)).await;
    let connection = response.headers().get("connection").map(|v| v.as_bytes().to_vec());
    assert_eq!(connection.as_deref(), Some(&b"close"[..]), "a refused upload's connection");
    refused(response, 404, "competition.not_found", "an unknown competition").await;

    // A form with an unexpected field, and a body that is not multipart at all.
    let form = reqwest::multipart::Form::new().text("imagee", "typo");
    let response = app.http.post(format!("{}/v1/competitions/strict/submissions", app.ingest_url)).multipart(form).send().await.unwrap();
    refused(response, 400, "invalid.multipart", "an unknown field").await;
    let response = app.http.post(format!("{}/v1/competitions/strict/submissions", app.ingest_url)).body("x").send().await.unwrap();
    assert!(response.status().is_client_error(), "a body that is not multipart: {}", response.status());

    // A bulk manifest naming a file that is not sent (that entry refused, by name), and one with
    // a line of the wrong shape (the whole request refused).
    let post_manifest = |bytes: &'static [u8], file_name: &'static str| {
        let manifest = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(file_name);
        app.http
            .post(format!("{}/v1/competitions/strict/bulk", app.ingest_url))
            .multipart(reqwest::multipart::Form::new().part("manifest", manifest))
            .send()
    };
    let response = post_manifest(b"file,external_id,description\nmissing.jpg,m-1,\n", "manifest.csv").await.unwrap();
    assert_eq!(response.status(), 200);
    let outcome: serde_json::Value = response.json().await.unwrap();
    assert_eq!((outcome["accepted"].as_u64(), outcome["rejected"].as_u64()), (Some(0), Some(1)), "{outcome}");
    assert_eq!(outcome["items"][0]["error"]["code"], "bulk.missing_file", "{outcome}");
    let response = post_manifest(b"{\"file\": 7}\n", "manifest.jsonl").await.unwrap();
    refused(response, 400, "invalid.manifest", "a manifest line of the wrong shape").await;

    // Competitions.
    let create = |body: serde_json::Value| app.http.post(format!("{}/v1/competitions", app.ingest_url)).json(&body).send();
    refused(create(serde_json::json!({"slug": "Bad Slug!", "title": "t"})).await.unwrap(), 422, "invalid.slug", "a bad slug").await;
    let negative = serde_json::json!({"slug": "weights", "title": "t", "rubric_weights": {"originality": -1, "color": 1, "texture": 1, "composition": 1, "content": 1}});
    refused(create(negative).await.unwrap(), 422, "invalid.rubric_weights", "a negative weight").await;
    let duplicate = create(serde_json::json!({"slug": "strict", "title": "again"})).await.unwrap();
    assert_eq!(duplicate.status(), 409, "a slug taken");

    // Nothing of it stored or queued.
    assert_eq!(app.count("SELECT count(*) FROM submissions").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
    assert_eq!(app.objects_in_bucket().await, 0);
    assert_eq!(app.queue_depth(&app.settings.rabbitmq.queue).await, 0);
    assert_eq!(app.count("SELECT count(*) FROM competitions").await, 1);

    // A bulk request with one good and one bad entry: the good one in, the bad one refused
    // with its reason, nothing stored for it.
    let mut truncated = jpeg.clone();
    truncated.file = "truncated.jpg".into();
    truncated.bytes.truncate(truncated.bytes.len() / 2);
    let outcome: serde_json::Value =
        app.submit_bulk("strict", &[(jpeg, "good".into()), (&truncated, "bad".into())]).await.json().await.unwrap();
    assert_eq!((outcome["accepted"].as_u64(), outcome["rejected"].as_u64()), (Some(1), Some(1)), "{outcome}");
    assert_eq!(outcome["items"][1]["error"]["code"], "image.truncated", "{outcome}");
    assert_eq!(app.count("SELECT count(*) FROM submissions").await, 1);
    assert_eq!(app.objects_in_bucket().await, 1);
}

/// The read side: unknown ids and competitions are 404s, malformed parameters 400s, all JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_refused() {
    let app = TestApp::spawn().await;
    assert_eq!(app.create_competition("reads", None).await.status(), 201);
    let cases = [
        ("/v1/submissions/0195f0a4-0000-7000-8000-000000000000", 404, "submission.not_found"),
        ("/v1/submissions/not-a-uuid", 400, "invalid.path"),
        ("/v1/competitions/nope/results", 404, "competition.not_found"),
        ("/v1/competitions/nope/progress", 404, "competition.not_found"),
        ("/v1/competitions/nope/export.csv", 404, "competition.not_found"),
        ("/v1/competitions/reads/results?limit=0", 400, "invalid.limit"),
        ("/v1/competitions/reads/results?cursor=garbage", 400, "invalid.cursor"),
        ("/v1/competitions/reads/results?colour=red", 400, "invalid.query"),
        ("/v1/nothing/here", 404, "not_found"),
    ];
    for (path, status, code) in cases {
        let response = app.http.get(format!("{}{path}", app.api_url)).send().await.unwrap();
        refused(response, status, code, path).await;
    }
    let response = app.http.delete(format!("{}/v1/competitions/reads/results", app.api_url)).send().await.unwrap();
    refused(response, 405, "method_not_allowed", "DELETE on a read-only route").await;
    let (status, page) = app.api_json("/v1/competitions/reads/results").await;
    assert_eq!(status, 200);
    assert_eq!(page["items"], serde_json::json!([]));
    let (status, openapi) = app.api_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(openapi["paths"]["/v1/competitions/{slug}/results"].is_object(), "{openapi}");
}
