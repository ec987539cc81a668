//! `Flatten$Key` / `$Value`: lifts nested maps' fields to the top, naming them by their path
//! joined with `delimiter` (`.` by default). Arrays and their contents are kept as they are;
//! null fields are kept; a null key or value passes through.

use serde_json::{Map, Value};

use super::super::config::{ConfigDef, ConfigKey, Parsed, Type};
use super::super::record::ConnectRecord;
use super::support::{Side, keyed_plugins, require_map_mut};
use super::{Transform, TransformPlugin};

const DOC: &str = "Flatten a nested data structure, generating names for each field by concatenating the field names \
                   at each level with a configurable delimiter character. Applies to Struct when schema present, or \
                   a Map in the case of schemaless data. Array fields and their contents are not modified. The \
                   default delimiter is '.'.";
const PURPOSE: &str = "flattening";

/// The `$Key` and `$Value` plugins.
pub(super) fn plugins() -> [TransformPlugin; 2] {
    keyed_plugins!("Flatten", DOC, config_def, create)
}

fn config_def() -> ConfigDef {
    ConfigDef::new().with([ConfigKey::optional(
        "delimiter",
        Type::String,
        ".",
        "Delimiter to insert between field names from the input record when generating field names for the output \
         record",
    )])
}

struct Flatten {
    side: Side,
    delimiter: String,
}

fn create(p: &Parsed, side: Side) -> Result<Box<dyn Transform>, String> {
    Ok(Box::new(Flatten {
        side,
        delimiter: p.str("delimiter").to_owned(),
    }))
}

impl Flatten {
    fn flatten_into(&self, map: Map<String, Value>, prefix: &str, out: &mut Map<String, Value>) {
        for (name, value) in map {
            let name = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}{}{name}", self.delimiter)
            };
            match value {
                Value::Object(inner) => self.flatten_into(inner, &name, out),
                other => {
                    out.insert(name, other);
                }
            }
        }
    }
}

impl Transform for Flatten {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        let slot = self.side.of_mut(&mut record);
        if slot.is_null() {
            return Ok(Some(record));
        }
        let map = std::mem::take(require_map_mut(slot, PURPOSE)?);
        let mut out = Map::new();
        self.flatten_into(map, "", &mut out);
        *slot = Value::Object(out);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, record, transform};
    use serde_json::json;

    #[test]
    fn connects_documented_example() {
        // Kafka's docs: {"content": {"id": 42, "name": {"first": "David", "middle": null, "last": "Wong"}}}
        let t = transform("Flatten$Value", &[]);
        let v = json!({"content": {"id": 42, "name": {"first": "David", "middle": null, "last": "Wong"}}, "tags": [{"a": 1}]});
        assert_eq!(
            apply(t.as_ref(), record("t", v)).value,
            json!({"content.id": 42, "content.name.first": "David", "content.name.middle": null,
                   "content.name.last": "Wong", "tags": [{"a": 1}]})
        );
        let t = transform("Flatten$Key", &[("delimiter", "_")]);
        let mut r = record("t", json!(null));
        r.key = json!({"a": {"b": 1}});
        assert_eq!(apply(t.as_ref(), r).key, json!({"a_b": 1}));
        let e = t.apply({
            let mut r = record("t", json!(null));
            r.key = json!("k");
            r
        });
        assert!(e.unwrap_err().contains("[flattening], found: string"));
    }
}
