//! Helpers shared by the integration tests.

use std::collections::BTreeSet;

use serde_json::Value;

/// The paths of every `null` in an agreement report serialised to JSON, named as its `reasons`
/// name them: `model_vs_panel.pearson`, `jurors.<juror_id>.sd`.
pub fn null_paths(report: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    walk(report, String::new(), &mut found);
    found
}

fn walk(value: &Value, path: String, found: &mut BTreeSet<String>) {
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match value {
        Value::Null => {
            found.insert(path);
        }
        Value::Object(fields) => {
            for (key, field) in fields {
                // The reasons themselves, and ids, are not figures.
                if path.is_empty() && key == "reasons" {
                    continue;
                }
                walk(field, join(key), found);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = match item.get("juror_id").and_then(Value::as_str) {
                    Some(id) if path == "jurors" => id.to_string(),
                    _ => i.to_string(),
                };
                walk(item, join(&name), found);
            }
        }
        _ => {}
    }
}

/// Asserts that every null figure has a reason and every reason names a null figure (or the
/// two notes that are not figures: `disagreements`, `threshold`).
pub fn assert_reasons_explain_nulls(report: &Value, context: &str) {
    let nulls = null_paths(report);
    let reasons: BTreeSet<String> = report["reasons"]
        .as_object()
        .expect("reasons is an object")
        .keys()
        .filter(|k| *k != "disagreements" && *k != "threshold")
        .cloned()
        .collect();
    assert_eq!(nulls, reasons, "{context}: null figures and reasons differ");
    for (key, reason) in report["reasons"].as_object().unwrap() {
        assert!(reason.as_str().is_some_and(|r| !r.is_empty()), "{context}: empty reason for {key}");
    }
}

/// Asserts no NaN or infinity hides in a value's Debug form (serde_json would print them as
/// `null`, so the JSON alone cannot show them).
pub fn assert_no_nan(debug: &str, context: &str) {
    assert!(!debug.contains("NaN") && !debug.contains("inf"), "{context}: non-finite number in {debug}");
}
