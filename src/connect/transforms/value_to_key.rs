//! `ValueToKey`: replaces the key with a map of some fields of the value (a field the value
//! lacks is null in the key, as in Connect).

use serde_json::{Map, Value};

use super::super::config::{ConfigDef, ConfigKey, Parsed, Type, Validator};
use super::super::record::ConnectRecord;
use super::support::{replace_null_with_default, require_map};
use super::{Transform, TransformPlugin};

const PURPOSE: &str = "copying fields from value to key";

/// The plugin.
pub(super) fn plugins() -> [TransformPlugin; 1] {
    [TransformPlugin {
        class: "org.apache.kafka.connect.transforms.ValueToKey",
        aliases: &["ValueToKey"],
        doc: "Replace the record key with a new key formed from a subset of fields in the record value.",
        config: config_def,
        create,
    }]
}

fn config_def() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::required(
            "fields",
            Type::List,
            "Field names on the record value to extract as the record key.",
        )
        .check(Validator::NonEmpty),
        replace_null_with_default(),
    ])
}

struct ValueToKey {
    fields: Vec<String>,
}

fn create(p: &Parsed) -> Result<Box<dyn Transform>, String> {
    Ok(Box::new(ValueToKey {
        fields: p.list("fields"),
    }))
}

impl Transform for ValueToKey {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        let value = require_map(&record.value, PURPOSE)?;
        let key: Map<String, Value> = self
            .fields
            .iter()
            .map(|f| (f.clone(), value.get(f).cloned().unwrap_or(Value::Null)))
            .collect();
        record.key = Value::Object(key);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, record, transform};
    use serde_json::json;

    #[test]
    fn the_key_is_made_of_value_fields() {
        // Kafka's docs: fields=userId,city,state
        let t = transform("ValueToKey", &[("fields", "userId,city,state")]);
        let v = json!({"userId": 7, "city": "Paris", "state": "IDF", "other": 1});
        let out = apply(t.as_ref(), record("t", v.clone()));
        assert_eq!(out.key, json!({"userId": 7, "city": "Paris", "state": "IDF"}));
        assert_eq!(out.value, v);
        let t = transform(
            "org.apache.kafka.connect.transforms.ValueToKey",
            &[("fields", "id,nope")],
        );
        assert_eq!(
            apply(t.as_ref(), record("t", json!({"id": 1}))).key,
            json!({"id": 1, "nope": null})
        );
        let e = t.apply(record("t", json!(null))).unwrap_err();
        assert!(e.contains("[copying fields from value to key], found: null"), "{e}");
    }
}
