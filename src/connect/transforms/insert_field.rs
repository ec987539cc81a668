//! `InsertField$Key` / `$Value`: adds fields from the record's topic, partition, offset (sinks
//! only), timestamp, or a static value. A null key or value passes through unchanged.

use serde_json::Value;

use super::super::config::{ConfigDef, ConfigKey, Parsed, Type};
use super::super::record::ConnectRecord;
use super::support::{Side, keyed_plugins, replace_null_with_default, require_map_mut};
use super::{Transform, TransformPlugin};

const DOC: &str = "Insert field(s) using attributes from the record metadata or a configured static value.";
const PURPOSE: &str = "field insertion";

/// The `$Key` and `$Value` plugins.
pub(super) fn plugins() -> [TransformPlugin; 2] {
    keyed_plugins!("InsertField", DOC, config_def, create)
}

fn config_def() -> ConfigDef {
    let field = |name: &'static str, doc: &'static str| ConfigKey::optional(name, Type::String, "", doc);
    ConfigDef::new().with([
        field("topic.field", "Field name for Kafka topic. Suffix with ! to make this a required field, or ? to keep it optional (the default)."),
        field("partition.field", "Field name for Kafka partition. Suffix with ! to make this a required field, or ? to keep it optional (the default)."),
        field("offset.field", "Field name for Kafka offset - only applicable to sink connectors. Suffix with ! to make this a required field, or ? to keep it optional (the default)."),
        field("timestamp.field", "Field name for record timestamp (ms since the epoch). Suffix with ! to make this a required field, or ? to keep it optional (the default)."),
        field("static.field", "Field name for static data field. Suffix with ! to make this a required field, or ? to keep it optional (the default)."),
        field("static.value", "Static field value, if field name configured."),
        replace_null_with_default(),
    ])
}

/// The field name of a `*.field` key, without its `!` (required) or `?` (optional) suffix:
/// without a schema, whether a field is optional changes nothing.
fn field_name(spec: Option<&str>) -> Option<String> {
    spec.map(|s| s.strip_suffix(['!', '?']).unwrap_or(s).to_owned())
}

struct InsertField {
    side: Side,
    topic: Option<String>,
    partition: Option<String>,
    offset: Option<String>,
    timestamp: Option<String>,
    fixed: Option<(String, String)>,
}

fn create(p: &Parsed, side: Side) -> Result<Box<dyn Transform>, String> {
    let fixed = match (field_name(p.opt("static.field")), p.opt("static.value")) {
        (Some(f), Some(v)) => Some((f, v.to_owned())),
        (Some(f), None) => return Err(format!("static.value: No value specified for static field: {f}")),
        (None, _) => None,
    };
    let t = InsertField {
        side,
        topic: field_name(p.opt("topic.field")),
        partition: field_name(p.opt("partition.field")),
        offset: field_name(p.opt("offset.field")),
        timestamp: field_name(p.opt("timestamp.field")),
        fixed,
    };
    if t.topic.is_none() && t.partition.is_none() && t.offset.is_none() && t.timestamp.is_none() && t.fixed.is_none() {
        return Err("No field insertion configured".into());
    }
    Ok(Box::new(t))
}

impl Transform for InsertField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        if self.side.of(&record).is_null() {
            return Ok(Some(record));
        }
        let offset = match (&self.offset, record.offset) {
            (Some(_), None) => {
                return Err(format!(
                    "Only SinkRecord supported for [{PURPOSE}], found: a source record (offset.field applies to sink connectors)"
                ));
            }
            (_, offset) => offset,
        };
        let (topic, partition, timestamp) = (record.topic.clone(), record.partition, record.timestamp);
        let map = require_map_mut(self.side.of_mut(&mut record), PURPOSE)?;
        if let Some(f) = &self.topic {
            map.insert(f.clone(), Value::String(topic));
        }
        if let (Some(f), Some(p)) = (&self.partition, partition) {
            map.insert(f.clone(), Value::from(p));
        }
        if let (Some(f), Some(o)) = (&self.offset, offset) {
            map.insert(f.clone(), Value::from(o));
        }
        if let (Some(f), Some(ts)) = (&self.timestamp, timestamp) {
            map.insert(f.clone(), Value::from(ts));
        }
        if let Some((f, v)) = &self.fixed {
            map.insert(f.clone(), Value::String(v.clone()));
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, build, record, transform};
    use serde_json::json;

    #[test]
    fn connects_documented_example_adds_a_static_field() {
        // Kafka's docs: static.field=MessageSource, static.value=Kafka Connect framework.
        let t = transform(
            "InsertField$Value",
            &[
                ("static.field", "MessageSource"),
                ("static.value", "Kafka Connect framework"),
            ],
        );
        let out = apply(t.as_ref(), record("t", json!({"line": "foo"})));
        assert_eq!(
            out.value,
            json!({"line": "foo", "MessageSource": "Kafka Connect framework"})
        );
    }

    #[test]
    fn metadata_fields_come_from_the_record() {
        let t = transform(
            "org.apache.kafka.connect.transforms.InsertField$Value",
            &[
                ("topic.field", "topic!"),
                ("partition.field", "part?"),
                ("offset.field", "off"),
                ("timestamp.field", "ts"),
            ],
        );
        let mut r = record("orders", json!({"a": 1}));
        (r.partition, r.offset, r.timestamp) = (Some(2), Some(40), Some(1_700_000_000_000));
        let out = apply(t.as_ref(), r);
        assert_eq!(
            out.value,
            json!({"a": 1, "topic": "orders", "part": 2, "off": 40, "ts": 1_700_000_000_000_i64})
        );
        // A source record has no offset: Connect refuses offset.field there.
        let e = t.apply(record("orders", json!({}))).unwrap_err();
        assert!(e.contains("Only SinkRecord supported"), "{e}");
    }

    #[test]
    fn key_variant_tombstones_and_non_maps() {
        let t = transform("InsertField$Key", &[("topic.field", "t")]);
        let mut r = record("x", json!("v"));
        r.key = json!({"id": 1});
        let out = apply(t.as_ref(), r);
        assert_eq!((out.key, out.value), (json!({"id": 1, "t": "x"}), json!("v")));
        // A null key passes through.
        assert_eq!(apply(t.as_ref(), record("x", json!(1))).key, json!(null));
        let t = transform("InsertField$Value", &[("topic.field", "t")]);
        let e = t.apply(record("x", json!("text"))).unwrap_err();
        assert_eq!(
            e,
            "Only Map objects supported in absence of schema for [field insertion], found: string"
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        let e = build("InsertField$Value", &[]).err().unwrap();
        assert!(e.contains("No field insertion configured"), "{e}");
        let e = build("InsertField$Value", &[("static.field", "s")]).err().unwrap();
        assert!(e.contains("No value specified for static field: s"), "{e}");
    }
}
