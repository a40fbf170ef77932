//! OpenAPI schemas, flat as the JSON is: utoipa's derive would render the flattened rubric as
//! an `allOf`, so the `f32` rubrics the APIs serve describe themselves as one object of
//! required numbers.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::{CRITERIA, OUTPUTS, Rubric, RubricScores};

/// An object whose `names` are all required `f32`s.
fn numbers(names: &[&str], description: &str) -> RefOr<Schema> {
    names
        .iter()
        .fold(ObjectBuilder::new().description(Some(description)), |object, &name| {
            object.property(name, f32::schema()).required(name)
        })
        .into()
}

impl PartialSchema for RubricScores<f32> {
    fn schema() -> RefOr<Schema> {
        numbers(&OUTPUTS, "The overall score and a score per rubric criterion.")
    }
}

impl ToSchema for RubricScores<f32> {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("RubricScores")
    }
}

impl PartialSchema for Rubric<f32> {
    fn schema() -> RefOr<Schema> {
        numbers(&CRITERIA, "A value per rubric criterion.")
    }
}

impl ToSchema for Rubric<f32> {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Rubric")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn schemas_are_flat_objects_of_required_floats() {
        for (schema, names) in [(RubricScores::<f32>::schema(), &OUTPUTS[..]), (Rubric::<f32>::schema(), &CRITERIA[..])]
        {
            let schema = serde_json::to_value(schema).unwrap();
            assert_eq!(schema["type"], "object");
            assert_eq!(schema["required"], json!(names));
            let properties = schema["properties"].as_object().unwrap();
            assert_eq!(properties.len(), names.len());
            for name in names {
                assert_eq!(properties[*name], json!({"type": "number", "format": "float"}));
            }
            assert!(matches!(schema.get("allOf"), None | Some(Value::Null)));
        }
        assert_eq!(RubricScores::<f32>::name(), "RubricScores");
        assert_eq!(Rubric::<f32>::name(), "Rubric");
    }
}
