//! The same painting entered twice: re-saved, resized, cropped and colour-shifted copies of
//! sample paintings, uploaded beside distinct ones, come back clustered with their originals —
//! within a competition, and across competitions for an admin.

use std::collections::BTreeSet;
use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbImage, imageops};
use reqwest::StatusCode;
use serde_json::Value;

use easel_imaging::phash::DEFAULT_MAX_DISTANCE;
use easel_tests::{SubmitForm, TestApp, paintings};

fn decode(bytes: &[u8]) -> RgbImage {
    image::load_from_memory(bytes).unwrap().to_rgb8()
}

fn jpeg(image: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(image).unwrap();
    out.into_inner()
}

fn png(image: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image.clone()).write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn resized_half(image: &RgbImage) -> RgbImage {
    imageops::resize(image, image.width() / 2, image.height() / 2, imageops::FilterType::Lanczos3)
}

/// 2.5 % off each side.
fn cropped(image: &RgbImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let (dx, dy) = (w / 40, h / 40);
    imageops::crop_imm(image, dx, dy, w - 2 * dx, h - 2 * dy).to_image()
}

fn colour_shifted(image: &RgbImage) -> RgbImage {
    let mut out = image.clone();
    for p in out.pixels_mut() {
        let [r, g, b] = p.0;
        p.0 = [(f32::from(r) * 1.05 + 8.0).min(255.0) as u8, g.saturating_add(8), (f32::from(b) * 0.95 + 8.0).min(255.0) as u8];
    }
    out
}

async fn upload(app: &TestApp, slug: &str, bytes: Vec<u8>, file: &str, external_id: &str) {
    let mime = if file.ends_with(".png") { "image/png" } else { "image/jpeg" };
    let response = app.submit(slug, SubmitForm::image(bytes, file, Some(mime)).external_id(external_id)).await;
    assert_eq!(response.status(), 202, "{external_id}");
}

/// Each cluster as the set of its members' external ids.
fn clusters(body: &Value) -> BTreeSet<BTreeSet<String>> {
    body["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["members"].as_array().unwrap().iter().map(|m| m["external_id"].as_str().unwrap().to_string()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_a_painting_cluster_with_it_and_nothing_else_does() {
    let app = TestApp::spawn().await;
    for slug in ["spring", "autumn"] {
        assert_eq!(app.create_competition(slug, None).await.status(), 201);
    }
    let originals: Vec<RgbImage> = paintings()[..8].iter().map(|p| decode(&p.bytes)).collect();
    for (i, painting) in paintings()[..8].iter().enumerate() {
        upload(&app, "spring", painting.bytes.clone(), &painting.file, &format!("p{i}")).await;
    }
    // Copies entered again under other ids: re-saved at JPEG quality 60, halved, cropped,
    // colour-shifted (as a PNG), and all four at once.
    upload(&app, "spring", jpeg(&originals[0], 60), "copy0.jpg", "p0-jpeg60").await;
    upload(&app, "spring", jpeg(&resized_half(&originals[1]), 90), "copy1.jpg", "p1-half").await;
    upload(&app, "spring", jpeg(&cropped(&originals[2]), 90), "copy2.jpg", "p2-crop").await;
    upload(&app, "spring", png(&colour_shifted(&originals[3])), "copy3.png", "p3-colour").await;
    let all = jpeg(&colour_shifted(&resized_half(&cropped(&originals[4]))), 60);
    upload(&app, "spring", all, "copy4.jpg", "p4-all").await;
    // An already-exhibited work, entered in another competition.
    upload(&app, "autumn", jpeg(&originals[5], 60), "copy5.jpg", "p5-autumn").await;
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE phash IS NULL").await, 0, "every upload is hashed");

    let (status, body) = app.api_json("/v1/competitions/spring/duplicates").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["max_distance"], DEFAULT_MAX_DISTANCE);
    assert_eq!(body["hashed"], 13);
    let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let expected: BTreeSet<BTreeSet<String>> = [
        set(&["p0", "p0-jpeg60"]),
        set(&["p1", "p1-half"]),
        set(&["p2", "p2-crop"]),
        set(&["p3", "p3-colour"]),
        set(&["p4", "p4-all"]),
    ]
    .into();
    assert_eq!(clusters(&body), expected, "{body}");
    for cluster in body["clusters"].as_array().unwrap() {
        for pair in cluster["pairs"].as_array().unwrap() {
            assert!(pair["distance"].as_u64().unwrap() <= u64::from(DEFAULT_MAX_DISTANCE), "{pair}");
        }
        for member in cluster["members"].as_array().unwrap() {
            assert_eq!(member["competition"], "spring");
            assert_eq!(member["phash"].as_str().unwrap().len() % 2, 0, "hex: {member}");
        }
    }

    // An admin looks across competitions: the autumn entry joins its spring original.
    let (status, body) = app.api_json("/v1/competitions/spring/duplicates?across_competitions=true").await;
    assert_eq!(status, 200, "{body}");
    assert!(clusters(&body).contains(&set(&["p5", "p5-autumn"])), "{body}");
    assert_eq!(clusters(&body).len(), 6);
    let (_, body) = app.api_json("/v1/competitions/autumn/duplicates").await;
    assert_eq!(body["clusters"].as_array().unwrap().len(), 0, "autumn alone holds no copies: {body}");

    // A distance of 0 keeps only identical hashes; out-of-range and hostile values are refused.
    let reader = app.client(&app.create_key("spring reader", &["competition:spring:read"]).await);
    let get = |query: &str| reader.get(format!("{}/v1/competitions/spring/duplicates{query}", app.api_url)).send();
    let response = get("?across_competitions=true").await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "only an admin looks into other competitions");
    for query in ["?max_distance=1000", "?max_distance=-1", "?max_distance=%00", "?max_distance=1e9", "?tolerance=3"] {
        let response = get(query).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    let response = get("?max_distance=0").await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(clusters(&body).len() <= 5, "{body}");
}
