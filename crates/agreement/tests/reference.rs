//! Every figure of `standings`, `agreement`, `top_by` and `recall` against the reference computed
//! with scipy, numpy, scikit-learn and pingouin by `scripts/reference/jury_stats.py`.
//!
//! The bootstrap intervals have no reference (a different random stream would give different
//! numbers); they are checked by their properties instead.

mod common;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use easel_agreement::round::{
    Agreement, AgreementOptions, Entry, Juror, JurorScore, Normalise, RoundData, Scale, agreement, recall, standings,
    top_by,
};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

const TOLERANCE: f64 = 1e-6;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    round: FixtureRound,
    options: FixtureOptions,
    expected: Expected,
}

/// A round as the database would hold it, before the caller drops conflicted scores.
#[derive(Deserialize)]
struct FixtureRound {
    scale: Scale,
    entries: Vec<Entry>,
    jurors: Vec<Juror>,
    scores: Vec<FixtureScore>,
}

#[derive(Deserialize)]
struct FixtureScore {
    entry: Uuid,
    juror: Uuid,
    score: f64,
    conflicted: bool,
}

#[derive(Deserialize)]
struct FixtureOptions {
    threshold: f64,
}

#[derive(Deserialize)]
struct Expected {
    standings: Value,
    agreement: BTreeMap<String, Value>,
    top: Top,
}

#[derive(Deserialize)]
struct Top {
    n: usize,
    panel: Vec<Uuid>,
    model: Vec<Uuid>,
    recall: Option<f64>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    serde_json::from_str(include_str!("fixtures/reference.json")).expect("the reference fixture parses")
});

impl Case {
    fn data(&self) -> RoundData {
        RoundData {
            scale: self.round.scale,
            entries: self.round.entries.clone(),
            jurors: self.round.jurors.clone(),
            scores: self
                .round
                .scores
                .iter()
                .filter(|s| !s.conflicted)
                .map(|s| JurorScore { entry: s.entry, juror: s.juror, score: s.score })
                .collect(),
        }
    }

    fn options(&self, normalise: Normalise) -> AgreementOptions {
        AgreementOptions { normalise, threshold: self.options.threshold, resamples: 500, seed: 42 }
    }
}

fn mode(name: &str) -> Normalise {
    match name {
        "none" => Normalise::None,
        "z" => Normalise::Z,
        other => panic!("unknown normalise mode {other}"),
    }
}

/// Asserts `actual` has every field of `expected`, numbers within [`TOLERANCE`], nulls where the
/// reference has nulls.
fn assert_close(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (e.as_f64().unwrap(), a.as_f64().unwrap());
            assert!((e - a).abs() <= TOLERANCE, "{path}: expected {e}, got {a}");
        }
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                let actual = a.get(key).unwrap_or_else(|| panic!("{path}.{key}: missing"));
                assert_close(value, actual, &format!("{path}.{key}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: expected {expected}, got {actual}");
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                assert_close(e, a, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(expected, actual, "{path}"),
    }
}

#[test]
fn the_fixture_covers_the_edge_cases() {
    let names: Vec<&str> = FIXTURE.cases.iter().map(|c| c.name.as_str()).collect();
    for name in ["normal", "ties", "one_juror", "constant", "unanimous", "too_few", "sparse", "disjoint"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let normal = FIXTURE.cases.iter().find(|c| c.name == "normal").unwrap();
    assert!(normal.round.scores.iter().filter(|s| s.conflicted).count() >= 2);
}

#[test]
fn standings_match_the_reference() {
    for case in &FIXTURE.cases {
        let actual = serde_json::to_value(standings(&case.data())).unwrap();
        assert_close(&case.expected.standings, &actual, &format!("{}.standings", case.name));
    }
}

#[test]
fn agreement_matches_the_reference() {
    for case in &FIXTURE.cases {
        for (name, expected) in &case.expected.agreement {
            let context = format!("{}.agreement[{name}]", case.name);
            let report = agreement(&case.data(), &case.options(mode(name)));
            let actual = serde_json::to_value(&report).unwrap();
            let mut expected = expected.clone();
            let defined = expected.as_object_mut().unwrap().remove("disagreements_defined").unwrap();
            assert_close(&expected, &actual, &context);
            assert_eq!(
                defined == Value::Bool(false),
                report.reasons.contains_key("disagreements"),
                "{context}: a reason for the disagreements iff they are undefined"
            );
            common::assert_reasons_explain_nulls(&actual, &context);
            common::assert_no_nan(&format!("{report:?}"), &context);
        }
    }
}

#[test]
fn top_and_recall_match_the_reference() {
    for case in &FIXTURE.cases {
        let table = standings(&case.data());
        let panel: Vec<(Uuid, Option<f64>)> = table.iter().map(|s| (s.submission_id, s.panel_mean)).collect();
        let model: Vec<(Uuid, Option<f64>)> = table.iter().map(|s| (s.submission_id, s.model_score)).collect();
        let top = &case.expected.top;
        let (panel_top, model_top) = (top_by(&panel, top.n), top_by(&model, top.n));
        assert_eq!(panel_top, top.panel, "{}: top by panel", case.name);
        assert_eq!(model_top, top.model, "{}: top by model", case.name);
        let found = recall(&panel_top, &model_top);
        assert!(found.zip(top.recall).is_none_or(|(a, e)| (a - e).abs() < TOLERANCE), "{}: recall", case.name);
        assert_eq!(found.is_some(), top.recall.is_some(), "{}: recall", case.name);
    }
}

/// The intervals of every case and mode, with their point estimates.
fn intervals(seed: u64) -> Vec<(String, Option<f64>, Option<[f64; 2]>)> {
    let mut all = Vec::new();
    for case in &FIXTURE.cases {
        for normalise in [Normalise::None, Normalise::Z] {
            let report: Agreement = agreement(&case.data(), &AgreementOptions { seed, ..case.options(normalise) });
            let (m, ci) = (&report.model_vs_panel, &report.model_vs_panel.ci95);
            let context = |figure: &str| format!("{}[{normalise:?}].{figure}", case.name);
            all.extend([
                (context("pearson"), m.pearson, ci.pearson),
                (context("spearman"), m.spearman, ci.spearman),
                (context("kendall"), m.kendall, ci.kendall),
                (context("mae_calibrated"), m.mae_calibrated, ci.mae_calibrated),
                (context("qwk"), m.qwk, ci.qwk),
            ]);
        }
    }
    all
}

#[test]
fn bootstrap_intervals_behave() {
    let first = intervals(42);
    let mut inside = 0;
    let mut defined = 0;
    for (context, point, ci) in &first {
        if point.is_none() {
            assert!(ci.is_none(), "{context}: an interval around an undefined figure");
        }
        if let (Some(point), Some([lo, hi])) = (point, ci) {
            defined += 1;
            assert!(lo <= hi, "{context}: [{lo}, {hi}]");
            if (lo..=hi).contains(&point) {
                inside += 1;
            }
        }
    }
    assert!(defined >= 20, "only {defined} intervals defined");
    // The point estimate usually lies inside its interval (not always: the percentile bootstrap
    // of a skewed statistic can miss it).
    assert!(inside * 10 >= defined * 9, "{inside} of {defined} intervals contain their estimate");
    assert_eq!(first, intervals(42), "the same seed gives the same intervals");
    let other = intervals(43);
    let changed = first.iter().zip(&other).filter(|(a, b)| a.2.is_some() && a.2 != b.2).count();
    assert!(changed * 2 > defined, "another seed changes the intervals ({changed} of {defined})");
}
