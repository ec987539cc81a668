//! `HoistField$Key` / `$Value`: wraps the key or value in a map under one field (null too).

use serde_json::{Map, Value};

use super::super::config::{ConfigDef, ConfigKey, Parsed, Type};
use super::super::record::ConnectRecord;
use super::support::{Side, keyed_plugins};
use super::{Transform, TransformPlugin};

const DOC: &str = "Wrap data using the specified field name in a Struct when schema present, or a Map in the case \
                   of schemaless data.";

/// The `$Key` and `$Value` plugins.
pub(super) fn plugins() -> [TransformPlugin; 2] {
    keyed_plugins!("HoistField", DOC, config_def, create)
}

fn config_def() -> ConfigDef {
    ConfigDef::new().with([ConfigKey::required(
        "field",
        Type::String,
        "Field name for the single field that will be created in the resulting Struct or Map.",
    )
    .importance(super::super::config::Importance::Medium)])
}

struct HoistField {
    side: Side,
    field: String,
}

fn create(p: &Parsed, side: Side) -> Result<Box<dyn Transform>, String> {
    Ok(Box::new(HoistField {
        side,
        field: p.str("field").to_owned(),
    }))
}

impl Transform for HoistField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        let slot = self.side.of_mut(&mut record);
        let mut map = Map::new();
        map.insert(self.field.clone(), std::mem::take(slot));
        *slot = Value::Object(map);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, record, transform};
    use serde_json::json;

    #[test]
    fn connects_documented_example() {
        // Kafka's docs: field=line turns "foo" into {"line": "foo"}.
        let t = transform("HoistField$Value", &[("field", "line")]);
        assert_eq!(
            apply(t.as_ref(), record("t", json!("foo"))).value,
            json!({"line": "foo"})
        );
        assert_eq!(apply(t.as_ref(), record("t", json!(null))).value, json!({"line": null}));
        let t = transform("org.apache.kafka.connect.transforms.HoistField$Key", &[("field", "id")]);
        let mut r = record("t", json!(1));
        r.key = json!(42);
        let out = apply(t.as_ref(), r);
        assert_eq!((out.key, out.value), (json!({"id": 42}), json!(1)));
    }
}
