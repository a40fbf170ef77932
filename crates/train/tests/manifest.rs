//! Manifest validation: every bad row is reported with its line number, nothing is dropped.

use std::path::Path;

use easel_train::data::{Dataset, ImageRef, LocalFiles};
use easel_train::TrainError;

fn png(path: &Path) {
    image::RgbImage::from_pixel(30, 20, image::Rgb([200, 40, 10])).save(path).unwrap();
}

fn errors(path: &Path) -> Vec<(usize, String)> {
    match Dataset::load(path, &LocalFiles) {
        Err(TrainError::Manifest(m)) => m.errors.into_iter().map(|e| (e.line, e.message)).collect(),
        Err(other) => panic!("expected manifest errors, got {other}"),
        Ok(_) => panic!("expected manifest errors"),
    }
}

fn has(errors: &[(usize, String)], line: usize, needle: &str) -> bool {
    errors.iter().any(|(l, m)| *l == line && m.contains(needle))
}

#[test]
fn jsonl_reports_every_bad_row_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    png(&dir.path().join("a.png"));
    png(&dir.path().join("b.png"));
    std::fs::write(dir.path().join("junk.png"), b"not an image").unwrap();
    let lines = [
        r#"{"image": "a.png", "overall": 70, "color": 60, "raters": {"ann": 68, "ben": 72}, "critique": "Fine."}"#,
        r#"{"image": "missing.png", "overall": 50}"#,
        r#"{"image": "b.png", "overall": 150}"#,
        "",
        r#"{"image": "b.png", "colour": 40, "overall": 30}"#,
        r#"{"image": "junk.png", "overall": 40}"#,
        r#"not json"#,
        r#"{"overall": 40}"#,
        r#"{"image": "a.png", "overall": 20}"#,
        r#"{"image": "b.png"}"#,
        r#"{"image": "https://example.org/x.png", "overall": 20, "raters": [200]}"#,
        r#"{"image": "b.png", "overall": "high", "texture": 0}"#,
    ];
    let manifest = dir.path().join("data.jsonl");
    std::fs::write(&manifest, lines.join("\n")).unwrap();
    let errs = errors(&manifest);
    assert!(has(&errs, 2, "missing.png"), "{errs:#?}");
    assert!(has(&errs, 3, "overall: 150 is outside"), "{errs:#?}");
    assert!(has(&errs, 5, "unknown field \"colour\""), "{errs:#?}");
    assert!(has(&errs, 6, "junk.png"), "{errs:#?}");
    assert!(has(&errs, 7, "invalid JSON"), "{errs:#?}");
    assert!(has(&errs, 8, "image is missing"), "{errs:#?}");
    assert!(has(&errs, 9, "duplicate image"), "{errs:#?}");
    assert!(has(&errs, 10, "overall is missing"), "{errs:#?}");
    assert!(has(&errs, 11, "only local paths and s3://"), "{errs:#?}");
    assert!(has(&errs, 11, "raters[0]: 200"), "{errs:#?}");
    assert!(has(&errs, 12, "overall: \"high\" is not a number"), "{errs:#?}");
    assert!(has(&errs, 12, "texture: 0 is outside"), "{errs:#?}");
    // Line 1 is good; the blank line 4 is not a row.
    assert!(!errs.iter().any(|(l, _)| *l == 1 || *l == 4), "{errs:#?}");
    let message = Dataset::load(&manifest, &LocalFiles).unwrap_err().to_string();
    assert!(message.contains("line 12:") && message.contains("nothing was trained on"), "{message}");
}

#[test]
fn good_jsonl_and_csv_parse_alike() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("img")).unwrap();
    png(&dir.path().join("img/a.png"));
    png(&dir.path().join("img/b.png"));
    let jsonl = dir.path().join("data.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            r#"{"id": "a", "image": "img/a.png", "description": "Oil.", "overall": 70, "color": 61.5, "critique": "Good colour.", "meta": {"artist": "x"}}"#,
            "\n",
            r#"{"id": "b", "image": "img/b.png", "raters": {"ann": 40, "ben": 50}}"#,
            "\n"
        ),
    )
    .unwrap();
    let csv = dir.path().join("data.csv");
    std::fs::write(
        &csv,
        "id,image,description,overall,color,critique,rater_ann,rater_ben,meta_artist\n\
         a,img/a.png,Oil.,70,61.5,Good colour.,,,x\n\
         b,img/b.png,,,,,40,50,\n",
    )
    .unwrap();
    let a = Dataset::load(&jsonl, &LocalFiles).unwrap();
    let b = Dataset::load(&csv, &LocalFiles).unwrap();
    assert_eq!(a.len(), 2);
    for (x, y) in a.examples.iter().zip(&b.examples) {
        assert_eq!((&x.id, &x.image, &x.description, x.overall, x.rubric, &x.raters, &x.critique),
                   (&y.id, &y.image, &y.description, y.overall, y.rubric, &y.raters, &y.critique));
    }
    let first = &a.examples[0];
    assert_eq!(first.image, ImageRef::Local(dir.path().join("img/a.png")));
    assert_eq!(first.rubric.into_array(), [None, Some(61.5), None, None, None]);
    assert_eq!(first.targets()[0], Some(70.0));
    // Overall is the raters' mean when not given; the raters are kept.
    let second = &a.examples[1];
    assert_eq!(second.overall, 45.0);
    assert_eq!(second.raters.len(), 2);
    assert_eq!(a.raters(), vec!["ann".to_string(), "ben".to_string()]);
}

#[test]
fn csv_reports_bad_cells_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    png(&dir.path().join("a.png"));
    let csv = dir.path().join("data.csv");
    std::fs::write(&csv, "image,overall,texture\na.png,70,\nb.png,abc,\na.png,10,101\n").unwrap();
    let errs = errors(&csv);
    assert!(has(&errs, 3, "overall: \"abc\" is not a number"), "{errs:#?}");
    assert!(has(&errs, 4, "texture: 101 is outside"), "{errs:#?}");
    assert!(!errs.iter().any(|(l, _)| *l == 2), "{errs:#?}");
}

#[test]
fn s3_references_parse_and_need_an_s3_source() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("data.jsonl");
    std::fs::write(&manifest, r#"{"image": "s3://entries/2026/a.jpg", "overall": 50}"#).unwrap();
    let errs = errors(&manifest);
    assert!(has(&errs, 1, "s3:// images need the S3 image source"), "{errs:#?}");
}
