//! Rounds no jury should produce, and some it will: the reports stay finite, explained, and
//! serialisable.

mod common;

use easel_agreement::round::{
    AgreementOptions, Entry, Juror, JurorScore, Normalise, RoundData, Scale, agreement, standings,
};
use proptest::prelude::*;
use uuid::Uuid;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn round(model: &[Option<f64>], jurors: usize, scores: &[(usize, usize, f64)]) -> RoundData {
    RoundData {
        scale: Scale { min: 1, max: 10 },
        entries: model.iter().enumerate().map(|(e, &m)| Entry { id: id(e as u128), model: m }).collect(),
        jurors: (0..jurors).map(|j| Juror { id: id(1000 + j as u128), name: format!("juror {j}") }).collect(),
        scores: scores
            .iter()
            .map(|&(e, j, score)| JurorScore { entry: id(e as u128), juror: id(1000 + j as u128), score })
            .collect(),
    }
}

/// Both reports, for both panel values, serialise to JSON without NaN, and every null is
/// explained.
fn assert_clean(data: &RoundData, options: AgreementOptions, context: &str) {
    let table = standings(data);
    common::assert_no_nan(&format!("{table:?}"), context);
    serde_json::to_string(&table).expect("standings serialise");
    for normalise in [Normalise::None, Normalise::Z] {
        let report = agreement(data, &AgreementOptions { normalise, ..options });
        let context = format!("{context} [{normalise:?}]");
        common::assert_no_nan(&format!("{report:?}"), &context);
        let json = serde_json::to_string(&report).expect("the report serialises");
        let value: serde_json::Value = serde_json::from_str(&json).expect("and parses back");
        common::assert_reasons_explain_nulls(&value, &context);
    }
}

fn quick() -> AgreementOptions {
    AgreementOptions { resamples: 50, ..AgreementOptions::default() }
}

#[test]
fn an_empty_round() {
    assert_clean(&round(&[], 0, &[]), quick(), "empty");
    let report = agreement(&round(&[], 0, &[]), &quick());
    assert_eq!((report.n, report.inter_juror.jurors, report.inter_juror.entries), (0, 0, 0));
    assert_eq!(report.reasons["inter_juror.icc2_1"], "no juror scored");
}

#[test]
fn a_single_entry() {
    assert_clean(&round(&[Some(50.0)], 2, &[(0, 0, 5.0), (0, 1, 6.0)]), quick(), "single");
}

#[test]
fn non_finite_inputs_are_ignored() {
    let data = round(
        &[Some(f64::NAN), Some(f64::INFINITY), Some(30.0), Some(60.0), Some(90.0)],
        2,
        &[(0, 0, 5.0), (1, 0, f64::NAN), (2, 0, 3.0), (3, 0, 6.0), (4, 0, 9.0), (2, 1, f64::NEG_INFINITY), (3, 1, 7.0)],
    );
    assert_clean(&data, quick(), "non-finite");
    let report = agreement(&data, &quick());
    assert_eq!(report.n, 3);
    assert_eq!(report.jurors[1].n, 1);
}

#[test]
fn extreme_magnitudes() {
    let data = round(
        &[Some(1e300), Some(-1e300), Some(1e-300), Some(5e307)],
        2,
        &[(0, 0, 1e308), (1, 0, -1e308), (2, 0, 1.0), (3, 0, 1e308), (0, 1, 1.0), (1, 1, 2.0), (2, 1, 3.0)],
    );
    assert_clean(&data, quick(), "extreme");
}

#[test]
fn unusable_options_fall_back_or_explain() {
    let data = round(
        &[Some(10.0), Some(40.0), Some(70.0), Some(90.0)],
        2,
        &[(0, 0, 2.0), (1, 0, 4.0), (2, 0, 8.0), (3, 0, 9.0), (0, 1, 1.0), (1, 1, 5.0), (2, 1, 6.0), (3, 1, 9.0)],
    );
    for threshold in [f64::NAN, f64::INFINITY, -1.0] {
        let options = AgreementOptions { threshold, resamples: 0, ..AgreementOptions::default() };
        assert_clean(&data, options, "bad options");
        let report = agreement(&data, &options);
        assert_eq!(report.threshold, AgreementOptions::DEFAULT_THRESHOLD);
        assert!(report.reasons.contains_key("threshold"));
        assert!(report.model_vs_panel.pearson.is_some() && report.model_vs_panel.ci95.pearson.is_none());
    }
}

#[test]
fn a_malformed_scale_does_not_panic() {
    let mut data = round(&[Some(10.0), Some(40.0), Some(70.0)], 1, &[(0, 0, 2.0), (1, 0, 4.0), (2, 0, 8.0)]);
    data.scale = Scale { min: 10, max: 1 };
    assert_clean(&data, quick(), "malformed scale");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any small round with integer scores and optional model scores gives a clean report.
    #[test]
    fn any_small_round_gives_a_clean_report(
        model in prop::collection::vec(prop::option::weighted(0.8, 1.0f64..100.0), 0..12),
        jurors in 0usize..4,
        scores in prop::collection::vec((0usize..12, 0usize..4, 1i64..=10), 0..40),
    ) {
        let scores: Vec<(usize, usize, f64)> = scores.into_iter().map(|(e, j, s)| (e, j, s as f64)).collect();
        assert_clean(&round(&model, jurors, &scores), AgreementOptions { resamples: 20, ..AgreementOptions::default() }, "proptest");
    }
}
