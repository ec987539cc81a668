//! `MaskField$Key` / `$Value`: replaces fields with their type's empty value (`0`, `0.0`,
//! `false`, `""`, `[]`, `{}`), or with `replacement` converted to the field's type (numbers and
//! strings only). Null fields stay null; as in Connect, a listed field the map lacks is set to
//! null.

use serde_json::{Map, Number, Value};

use super::super::config::{ConfigDef, ConfigKey, Parsed, Type, Validator};
use super::super::record::ConnectRecord;
use super::support::{Side, keyed_plugins, kind, replace_null_with_default, require_map_mut};
use super::{Transform, TransformPlugin};

const DOC: &str = "Mask specified fields with a valid null value for the field type (i.e. 0, false, empty string, and \
                   so on). For numeric and string fields, an optional replacement value can be specified that is \
                   converted to the correct type.";
const PURPOSE: &str = "mask fields";

/// The `$Key` and `$Value` plugins.
pub(super) fn plugins() -> [TransformPlugin; 2] {
    keyed_plugins!("MaskField", DOC, config_def, create)
}

fn config_def() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::required("fields", Type::List, "Names of fields to mask.").check(Validator::NonEmpty),
        ConfigKey::optional(
            "replacement",
            Type::String,
            "",
            "Custom value replacement, that will be applied to all 'fields' values (numeric or non-empty string values only).",
        )
        .importance(super::super::config::Importance::Low),
        replace_null_with_default(),
    ])
}

struct MaskField {
    side: Side,
    fields: Vec<String>,
    replacement: Option<String>,
}

fn create(p: &Parsed, side: Side) -> Result<Box<dyn Transform>, String> {
    Ok(Box::new(MaskField {
        side,
        fields: p.list("fields"),
        replacement: p.opt("replacement").map(str::to_owned),
    }))
}

impl MaskField {
    fn masked(&self, value: &Value) -> Result<Value, String> {
        match (&self.replacement, value) {
            (_, Value::Null) => Ok(Value::Null),
            (None, v) => Ok(empty_of(v)),
            (Some(r), Value::String(_)) => Ok(Value::String(r.clone())),
            (Some(r), Value::Number(n)) => replacement_number(r, n),
            (Some(_), other) => Err(format!(
                "Cannot mask value of type {} with custom replacement.",
                kind(other)
            )),
        }
    }
}

/// The empty value of a value's type.
fn empty_of(value: &Value) -> Value {
    match value {
        Value::Null => Value::Null,
        Value::Bool(_) => Value::Bool(false),
        Value::Number(n) if n.is_f64() => Value::from(0.0),
        Value::Number(_) => Value::from(0),
        Value::String(_) => Value::String(String::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Object(_) => Value::Object(Map::new()),
    }
}

/// The replacement as a number of the same kind as the masked one.
fn replacement_number(replacement: &str, like: &Number) -> Result<Value, String> {
    let bad = || format!("Unable to convert {replacement} to number");
    if like.is_f64() {
        let n: f64 = replacement.parse().map_err(|_| bad())?;
        Number::from_f64(n).map(Value::Number).ok_or_else(bad)
    } else {
        replacement.parse::<i64>().map(Value::from).map_err(|_| bad())
    }
}

impl Transform for MaskField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        let map = require_map_mut(self.side.of_mut(&mut record), PURPOSE)?;
        for field in &self.fields {
            let masked = self.masked(map.get(field).unwrap_or(&Value::Null))?;
            map.insert(field.clone(), masked);
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, build, record, transform};
    use serde_json::json;

    #[test]
    fn fields_get_their_types_empty_value() {
        let t = transform("MaskField$Value", &[("fields", "i,f,b,s,a,o,n,missing")]);
        let v = json!({"i": 7, "f": 1.5, "b": true, "s": "secret", "a": [1], "o": {"x": 1}, "n": null, "keep": 1});
        assert_eq!(
            apply(t.as_ref(), record("t", v)).value,
            json!({"i": 0, "f": 0.0, "b": false, "s": "", "a": [], "o": {}, "n": null, "missing": null, "keep": 1})
        );
    }

    #[test]
    fn connects_documented_example_with_a_replacement() {
        // Kafka's docs: fields=string_field, replacement=<redacted>
        let t = transform(
            "MaskField$Value",
            &[("fields", "string_field"), ("replacement", "<redacted>")],
        );
        let out = apply(t.as_ref(), record("t", json!({"string_field": "ssn", "n": 1})));
        assert_eq!(out.value, json!({"string_field": "<redacted>", "n": 1}));
        let t = transform("MaskField$Key", &[("fields", "i,f"), ("replacement", "9")]);
        let mut r = record("t", json!(null));
        r.key = json!({"i": 1, "f": 2.5});
        assert_eq!(apply(t.as_ref(), r).key, json!({"i": 9, "f": 9.0}));
    }

    #[test]
    fn impossible_masks_fail_clearly() {
        let t = transform("MaskField$Value", &[("fields", "b"), ("replacement", "x")]);
        let e = t.apply(record("t", json!({"b": true}))).unwrap_err();
        assert!(e.contains("Cannot mask value of type boolean"), "{e}");
        let t = transform("MaskField$Value", &[("fields", "i"), ("replacement", "x")]);
        let e = t.apply(record("t", json!({"i": 1}))).unwrap_err();
        assert!(e.contains("Unable to convert x to number"), "{e}");
        let e = t.apply(record("t", json!(null))).unwrap_err();
        assert!(e.contains("[mask fields], found: null"), "{e}");
        let e = build("MaskField$Value", &[]).err().unwrap();
        assert!(e.contains("Missing required configuration \"fields\""), "{e}");
    }
}
