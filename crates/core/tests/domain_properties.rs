//! Property tests of the parsers at the edge — competition slugs and titles, descriptions,
//! external ids, rubric weights, scopes, key names and tokens: arbitrary input never panics,
//! and whatever parses round-trips and holds the invariant its type documents.

use easel_core::auth::{Scope, Scopes, parse_key_name, parse_token};
use easel_core::domain::{CompetitionSlug, CompetitionTitle, Description, ExternalId, RubricWeights};
use easel_rubric::Rubric;
use proptest::prelude::*;

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Any text, weighted towards what the parsers must refuse: controls, bidi controls, slug-like
/// and scope-like shapes, and long strings.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9-]{0,70}",
        "[a-zA-Z0-9 _.:@()'/-]{0,120}",
        "(admin|competition:[a-z0-9-]{0,10}:(submit|read|judge|write)|competition::read|[a-z:]{0,20})",
        "easel_[0-9a-fA-F]{60,68}",
        prop::collection::vec(
            prop_oneof![
                any::<char>(),
                prop::sample::select(vec!['\0', '\n', '\r', '\t', '\u{7f}', '\u{85}', '\u{202E}', '\u{2066}', '\u{200F}', '\u{061C}', ' ', 'é', '😀']),
            ],
            0..300,
        )
        .prop_map(|chars| chars.into_iter().collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn slugs(raw in text()) {
        if let Ok(slug) = CompetitionSlug::parse(&raw) {
            prop_assert_eq!(slug.as_str(), raw.as_str());
            prop_assert!((3..=64).contains(&raw.len()));
            prop_assert!(raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            prop_assert!(!raw.starts_with('-') && !raw.ends_with('-'));
            prop_assert_eq!(CompetitionSlug::parse(slug.as_str()), Ok(slug.clone()));
            prop_assert_eq!(serde_json::to_value(&slug).unwrap(), serde_json::json!(raw));
        }
    }

    #[test]
    fn titles(raw in text()) {
        match CompetitionTitle::parse(&raw) {
            Ok(title) => {
                let s = title.as_str();
                prop_assert_eq!(s, raw.trim());
                prop_assert!(!s.is_empty() && s.chars().count() <= 200);
                prop_assert!(!s.chars().any(|c| c.is_control() || is_bidi_control(c)), "{s:?}");
                prop_assert_eq!(CompetitionTitle::parse(s).map(|t| t.as_str().to_string()), Ok(s.to_string()));
            }
            Err(e) => prop_assert_eq!(e.field, "title"),
        }
    }

    #[test]
    fn descriptions(raw in text(), max in 0usize..400) {
        match Description::parse(&raw, max) {
            Ok(description) => {
                prop_assert_eq!(description.as_str(), raw.as_str());
                prop_assert!(raw.len() <= max);
                prop_assert!(raw.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')), "{raw:?}");
                prop_assert!(!raw.chars().any(is_bidi_control));
                prop_assert_eq!(Description::parse_bytes(raw.as_bytes(), max), Ok(description));
            }
            Err(e) => prop_assert_eq!(e.field, "description"),
        }
    }

    #[test]
    fn description_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300), max in 0usize..400) {
        if let Ok(description) = Description::parse_bytes(&bytes, max) {
            prop_assert_eq!(description.as_str().as_bytes(), bytes.as_slice());
            prop_assert!(bytes.len() <= max);
        }
    }

    #[test]
    fn external_ids(raw in text(), max in 0usize..400) {
        match ExternalId::parse(&raw, max) {
            Ok(id) => {
                prop_assert_eq!(id.as_str(), raw.as_str());
                prop_assert!(!raw.is_empty() && raw.len() <= max);
                prop_assert!(!raw.chars().any(|c| c.is_control() || is_bidi_control(c)), "{raw:?}");
                prop_assert_eq!(ExternalId::parse(id.as_str(), max), Ok(id));
            }
            Err(e) => prop_assert_eq!(e.field, "external_id"),
        }
    }

    #[test]
    fn rubric_weights(
        weights in prop::array::uniform5(prop_oneof![
            0.0f32..=100.0,
            any::<f32>(),
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(-0.0f32),
            Just(0.0f32),
            Just(RubricWeights::MAX),
            Just(f32::MIN_POSITIVE),
        ]),
    ) {
        let raw = RubricWeights(Rubric::from_array(weights));
        match RubricWeights::parse(raw) {
            Ok(parsed) => {
                prop_assert!(weights.iter().all(|w| (0.0..=RubricWeights::MAX).contains(w)));
                let normalised = parsed.0.to_array();
                prop_assert!(normalised.iter().all(|w| w.is_finite() && (0.0..=1.0).contains(w)), "{normalised:?}");
                let sum: f32 = normalised.iter().sum();
                prop_assert!((sum - 1.0).abs() < 1e-4, "sums to {sum}");
                // Parsing the normalised weights again changes them no more than rounding does.
                let again = RubricWeights::parse(parsed).expect("normalised weights parse");
                prop_assert!((again.0.originality - parsed.0.originality).abs() < 1e-5);
                // A JSON round trip keeps them.
                let json = serde_json::to_string(&parsed).unwrap();
                prop_assert_eq!(serde_json::from_str::<RubricWeights>(&json).unwrap(), parsed);
            }
            Err(e) => prop_assert_eq!(e.field, "rubric_weights"),
        }
    }

    #[test]
    fn scopes(raw in text()) {
        match Scope::parse(&raw) {
            Ok(scope) => {
                prop_assert_eq!(scope.to_string(), raw.clone());
                prop_assert_eq!(Scope::parse(&scope.to_string()), Ok(scope.clone()));
                let json = serde_json::to_string(&scope).unwrap();
                prop_assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
            }
            Err(e) => prop_assert_eq!(e.field, "scopes"),
        }
    }

    #[test]
    fn scope_lists(raw in prop::collection::vec(text(), 0..70)) {
        match Scopes::parse(&raw) {
            Ok(scopes) => {
                prop_assert!(!raw.is_empty() && raw.len() <= easel_core::auth::MAX_SCOPES);
                let strings = scopes.to_strings();
                // Duplicates dropped, order kept, every one of them given.
                let mut distinct: Vec<&String> = Vec::new();
                for s in &raw {
                    if !distinct.contains(&s) {
                        distinct.push(s);
                    }
                }
                prop_assert_eq!(strings.iter().collect::<Vec<_>>(), distinct);
                prop_assert_eq!(Scopes::parse(&strings), Ok(scopes.clone()));
                prop_assert_eq!(scopes.is_admin(), raw.iter().any(|s| s == "admin"));
            }
            Err(e) => prop_assert_eq!(e.field, "scopes"),
        }
    }

    #[test]
    fn key_names(raw in text()) {
        match parse_key_name(&raw) {
            Ok(name) => {
                prop_assert_eq!(name.as_str(), raw.trim());
                prop_assert!(!name.is_empty() && name.chars().count() <= 100);
                prop_assert!(name.chars().all(|c| c.is_alphanumeric() || c == ' ' || "-_.:@()'/".contains(c)), "{name:?}");
                prop_assert!(!name.chars().any(|c| c.is_control() || is_bidi_control(c)));
                prop_assert_eq!(parse_key_name(&name), Ok(name.clone()));
            }
            Err(e) => prop_assert_eq!(e.field, "name"),
        }
    }

    #[test]
    fn tokens(raw in text()) {
        let parsed = parse_token(&raw);
        let shaped = raw.strip_prefix("easel_").is_some_and(|d| d.len() == 64 && d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        prop_assert_eq!(parsed.is_some(), shaped, "{:?}", raw);
        if let Some(hash) = parsed {
            prop_assert_eq!(parse_token(&raw), Some(hash));
            prop_assert!(hash.matches(&hash.0));
            prop_assert!(!hash.matches(&hash.0[..31]));
        }
    }
}
