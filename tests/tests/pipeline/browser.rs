//! The dashboard in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven through WebDriver against the real services. An organiser signs
//! in and reads the leaderboard (its thumbnails load), an entry and the distribution, and sees a
//! progress bar follow a late entry without a reload; a juror
//! scores three entries of a blind round with the keyboard and cannot open the organiser's
//! pages; the round's agreement page then shows the new figures; a browser without a session
//! lands on the sign-in page. Every page is saved as a screenshot (`target/screenshots/`) and
//! checked not to be blank.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::Value;

use easel_tests::dashboard::{Browser, blind_round_with_a_juror};
use easel_tests::{TestApp, paintings};

const SLUG: &str = "open-salon";
const ENTRIES: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisers_and_jurors_use_the_dashboard_in_a_browser() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.create_competition(SLUG, None).await.status(), 201);
    app.start_worker().await;
    for (i, painting) in paintings()[..ENTRIES].iter().enumerate() {
        app.submit_painting(SLUG, painting, &format!("salon-{i}")).await;
    }
    app.wait_until_settled(ENTRIES as i64, Duration::from_secs(120)).await;
    let (juror_token, round_id) = blind_round_with_a_juror(&app, SLUG, "Grace").await;
    let organiser = app.create_key("organiser", &[&format!("competition:{SLUG}:read"), &format!("competition:{SLUG}:manage")]).await;
    let api = app.api_url.clone();
    let base = format!("{api}/dashboard/competitions/{SLUG}");

    let browser = Browser::start("dashboard").await.expect("a headless Chromium");

    // Without a session, a page sends the browser to the sign-in page, which comes back.
    browser.open(&base).await.unwrap();
    let path = browser.path().await.unwrap();
    assert!(path.starts_with("/dashboard/sign-in?next="), "{path}");
    browser.screenshot("01-sign-in").await.unwrap();
    let key = browser.client.find(Locator::Css("input[name=key]")).await.unwrap();
    key.send_keys(&organiser).await.unwrap();
    key.send_keys("\u{E007}").await.unwrap();
    browser.settle().await.unwrap();
    assert_eq!(browser.path().await.unwrap(), format!("/dashboard/competitions/{SLUG}"), "back to the page asked for");

    // The leaderboard: a row per entry, every thumbnail loaded.
    let rows = browser.client.find_all(Locator::Css("table.leaderboard tbody tr")).await.unwrap();
    assert_eq!(rows.len(), ENTRIES);
    let widths = wait_for_images(&browser, "img.thumb").await;
    assert_eq!(widths.len(), ENTRIES);
    assert!(widths.iter().all(|w| *w > 0), "every thumbnail loads: {widths:?}");
    browser.screenshot("02-leaderboard").await.unwrap();

    // Sorting by a rubric dimension, through its column header.
    browser.client.find(Locator::LinkText("Color")).await.unwrap().click().await.unwrap();
    browser.settle().await.unwrap();
    assert!(browser.path().await.unwrap().contains("sort=color"));

    // An entry: its preview, the chart of its scores, its critique.
    browser.client.find(Locator::Css("table.leaderboard tbody tr td a")).await.unwrap().click().await.unwrap();
    browser.settle().await.unwrap();
    assert!(browser.path().await.unwrap().contains("/entries/"));
    assert!(wait_for_images(&browser, "img.preview").await.iter().all(|w| *w > 0), "the preview loads");
    browser.client.find(Locator::Css("svg[role=img]")).await.expect("the rubric chart");
    let critique = browser.client.find(Locator::Css("div.critique")).await.unwrap().text().await.unwrap();
    assert!(!critique.trim().is_empty());
    browser.screenshot("03-entry").await.unwrap();
    browser.open(&format!("{base}/distribution")).await.unwrap();
    assert_eq!(browser.client.find_all(Locator::Css("svg[role=img]")).await.unwrap().len(), 6);
    browser.screenshot("04-distribution").await.unwrap();
    browser.open(&format!("{api}/dashboard")).await.unwrap();
    browser.screenshot("05-competitions").await.unwrap();

    // The progress bar follows a late entry without a reload (the page polls every 5 s).
    browser.client.execute("window.easelNotReloaded = true", vec![]).await.unwrap();
    app.submit_painting(SLUG, &paintings()[ENTRIES], "salon-late").await;
    let started = std::time::Instant::now();
    loop {
        let seen = browser
            .client
            .execute(
                "return window.easelNotReloaded === true ? document.querySelector('div.progress .done').textContent + '/' + \
                 document.querySelector('div.progress .total').textContent : 'reloaded'",
                vec![],
            )
            .await
            .unwrap();
        if seen == format!("{}/{}", ENTRIES + 1, ENTRIES + 1) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the progress bar shows {seen}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The juror, in a fresh session: three entries scored blind, with the keyboard alone.
    browser.sign_out_by_forgetting().await.unwrap();
    browser.sign_in(&api, &juror_token).await.unwrap();
    browser.client.find(Locator::LinkText("Score entries")).await.unwrap().click().await.unwrap();
    browser.settle().await.unwrap();
    let judge_path = format!("/dashboard/competitions/{SLUG}/rounds/{round_id}/judge");
    assert!(browser.path().await.unwrap().starts_with(&judge_path));
    let page = browser.client.source().await.unwrap();
    assert!(!page.contains("salon-"), "a blind round shows no entry id");
    browser.screenshot("06-judge").await.unwrap();
    for (i, score) in ["7", "4", "9"].iter().enumerate() {
        assert!(wait_for_images(&browser, "img.preview").await.iter().all(|w| *w > 0), "the juror sees the image");
        // The score field has the focus: type the score, then Enter.
        let focused = browser.client.active_element().await.unwrap();
        assert_eq!(focused.attr("name").await.unwrap().as_deref(), Some("score"), "the score field starts focused");
        focused.send_keys(&format!("{score}\u{E007}")).await.unwrap();
        let scored = format!("{} of {ENTRIES} entries scored", i + 1);
        let text = browser.main_text_containing(&scored).await.unwrap();
        assert!(text.contains(&scored), "{text}");
        assert!(text.contains("Saved."));
    }
    browser.screenshot("07-judge-after-three").await.unwrap();
    let scores: Vec<f64> = sqlx::query_scalar("SELECT score FROM juror_scores ORDER BY updated_at").fetch_all(&app.pool).await.unwrap();
    assert_eq!(scores, [7.0, 4.0, 9.0]);

    // The organiser's pages are not the juror's.
    browser.open(&base).await.unwrap();
    let title = browser.client.title().await.unwrap();
    assert!(title.starts_with("Not allowed"), "{title}");
    assert!(browser.client.find_all(Locator::Css("table.leaderboard")).await.unwrap().is_empty());
    browser.screenshot("08-juror-forbidden").await.unwrap();

    // Back as the organiser: the round's agreement page counts the three new scores.
    browser.sign_out_by_forgetting().await.unwrap();
    browser.sign_in(&api, &organiser).await.unwrap();
    browser.open(&format!("{base}/rounds/{round_id}")).await.unwrap();
    let compared = browser.client.find(Locator::Css("dd.n")).await.unwrap().text().await.unwrap();
    assert_eq!(compared.trim(), "3", "the agreement figures include the juror's three scores");
    browser.client.find(Locator::Css("svg[role=img]")).await.expect("the scatter");
    browser.screenshot("09-agreement").await.unwrap();
    browser.open(&format!("{base}/audit")).await.unwrap();
    let log = browser.client.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert_eq!(log.matches("score_set").count(), 3, "{log}");
    browser.screenshot("10-audit").await.unwrap();

    // A phone-sized window: the leaderboard still renders (the table scrolls inside its box).
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.open(&base).await.unwrap();
    let overflow: Value = browser.client.execute("return document.documentElement.scrollWidth <= window.innerWidth + 1", vec![]).await.unwrap();
    assert_eq!(overflow, Value::Bool(true), "the page itself does not scroll sideways on a phone");
    browser.screenshot("11-leaderboard-phone").await.unwrap();

    browser.close().await.unwrap();
}

/// Waits for every `selector` image to finish loading; their natural widths (0: broken).
async fn wait_for_images(browser: &Browser, selector: &str) -> Vec<u64> {
    let script = format!(
        "const images = Array.from(document.querySelectorAll({selector:?})); \
         return images.every(i => i.complete) ? images.map(i => i.naturalWidth) : null;"
    );
    let started = std::time::Instant::now();
    loop {
        let result = browser.client.execute(&script, vec![]).await.unwrap();
        if let Some(widths) = result.as_array() {
            return widths.iter().map(|w| w.as_u64().unwrap_or(0)).collect();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{selector} images did not load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
