//! With the `utoipa` feature, the report types describe themselves for OpenAPI.
#![cfg(feature = "utoipa")]

use easel_agreement::round::{Agreement, Standing};
use utoipa::PartialSchema;

#[test]
fn reports_have_schemas_with_their_fields() {
    let agreement = serde_json::to_string(&Agreement::schema()).unwrap();
    for field in ["model_vs_panel", "inter_juror", "jurors", "disagreements", "threshold", "reasons", "normalise"] {
        assert!(agreement.contains(field), "{field} missing from {agreement}");
    }
    let standing = serde_json::to_string(&Standing::schema()).unwrap();
    assert!(standing.contains("panel_mean_z"), "{standing}");
}
