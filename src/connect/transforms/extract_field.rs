//! `ExtractField$Key` / `$Value`: replaces the key or value with one of its fields; with
//! `field.syntax.version=V2`, a nested field by a dotted path. A null key or value, or a
//! missing field, gives null.

use super::super::config::{ConfigDef, ConfigKey, Parsed, Type, Validator};
use super::super::record::ConnectRecord;
use super::field_path::{FieldPath, syntax_version_key};
use super::support::{Side, keyed_plugins, replace_null_with_default};
use super::{Transform, TransformPlugin};

const DOC: &str = "Extract the specified field from a Struct when schema present, or a Map in the case of schemaless \
                   data. Any null values are passed through unmodified.";

/// The `$Key` and `$Value` plugins.
pub(super) fn plugins() -> [TransformPlugin; 2] {
    keyed_plugins!("ExtractField", DOC, config_def, create)
}

fn config_def() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::required("field", Type::String, "Field name to extract.")
            .check(Validator::NonEmpty)
            .importance(super::super::config::Importance::Medium),
        replace_null_with_default(),
        syntax_version_key(),
    ])
}

struct ExtractField {
    side: Side,
    path: FieldPath,
}

fn create(p: &Parsed, side: Side) -> Result<Box<dyn Transform>, String> {
    let path = FieldPath::new(p.str("field"), p.str("field.syntax.version")).map_err(|e| format!("field: {e}"))?;
    Ok(Box::new(ExtractField { side, path }))
}

impl Transform for ExtractField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        let slot = self.side.of_mut(&mut record);
        if slot.is_null() {
            return Ok(Some(record));
        }
        let extracted = self.path.value_from(slot)?.clone();
        *slot = extracted;
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, build, record, transform};
    use serde_json::json;

    #[test]
    fn connects_documented_examples() {
        // Kafka's docs: field=id turns {"id": 42, "name": "x"} into 42.
        let t = transform("ExtractField$Value", &[("field", "id")]);
        assert_eq!(
            apply(t.as_ref(), record("t", json!({"id": 42, "name": "x"}))).value,
            json!(42)
        );
        assert_eq!(apply(t.as_ref(), record("t", json!({"name": "x"}))).value, json!(null));
        assert_eq!(apply(t.as_ref(), record("t", json!(null))).value, json!(null));
        let e = t.apply(record("t", json!(5))).unwrap_err();
        assert!(e.contains("[field extraction], found: integer"), "{e}");
    }

    #[test]
    fn nested_paths_with_the_v2_syntax() {
        let v = json!({"after": {"id": 1, "a.b": {"c": 2}}, "after.id": "flat"});
        let t = transform(
            "ExtractField$Value",
            &[("field", "after.id"), ("field.syntax.version", "V2")],
        );
        assert_eq!(apply(t.as_ref(), record("t", v.clone())).value, json!(1));
        let t = transform(
            "ExtractField$Value",
            &[("field", "after.`a.b`.c"), ("field.syntax.version", "v2")],
        );
        assert_eq!(apply(t.as_ref(), record("t", v.clone())).value, json!(2));
        // V1 (the default) reads the dotted name as one field.
        let t = transform("ExtractField$Value", &[("field", "after.id")]);
        assert_eq!(apply(t.as_ref(), record("t", v)).value, json!("flat"));
        let t = transform("ExtractField$Key", &[("field", "id")]);
        let mut r = record("t", json!("v"));
        r.key = json!({"id": "k"});
        assert_eq!(apply(t.as_ref(), r).key, json!("k"));
        let e = build("ExtractField$Value", &[("field", "`a"), ("field.syntax.version", "V2")])
            .err()
            .unwrap();
        assert!(e.contains("Incomplete backtick pair"), "{e}");
        assert!(build("ExtractField$Value", &[("field", "a"), ("field.syntax.version", "V3")]).is_err());
    }
}
