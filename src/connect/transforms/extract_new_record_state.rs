//! Debezium's `ExtractNewRecordState`: turns a change event envelope (`before`, `after`, `op`,
//! `source`) into the row it leaves (`after`), for sinks that want plain rows. Deletes and
//! tombstones per `delete.tombstone.handling.mode` (or the older `delete.handling.mode` and
//! `drop.tombstones`); `add.fields` / `add.headers` copy envelope or source fields into the row
//! or the headers. Records that are not change events pass unchanged.

use serde_json::{Map, Value};

use super::super::config::{ConfigDef, ConfigKey, Parsed, Type, Validator};
use super::super::record::ConnectRecord;
use super::{Transform, TransformPlugin};

/// The plugin.
pub(super) fn plugins() -> [TransformPlugin; 1] {
    [TransformPlugin {
        class: "io.debezium.transforms.ExtractNewRecordState",
        aliases: &["ExtractNewRecordState"],
        doc: "Extracts the new state of a row from a Debezium change event (its 'after'); deletes become \
              tombstones, are dropped or are rewritten with a '__deleted' field, per delete.tombstone.handling.mode.",
        config: config_def,
        create,
    }]
}

const MODES: &[&str] = &["drop", "tombstone", "rewrite", "rewrite-with-tombstone"];

fn config_def() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::optional(
            "delete.tombstone.handling.mode",
            Type::String,
            "",
            "drop: deletes and tombstones are dropped; tombstone (the default): a delete becomes a tombstone, \
tombstones are dropped; rewrite: a delete becomes its old row with __deleted=true (other rows get \
__deleted=false), tombstones are dropped; rewrite-with-tombstone: as rewrite, tombstones kept.",
        )
        .check(Validator::Custom(mode)),
        ConfigKey::optional(
            "delete.handling.mode",
            Type::String,
            "",
            "Deprecated (Debezium 1.x/2.x): drop, rewrite or none (a delete becomes a tombstone). Used when \
delete.tombstone.handling.mode is not set.",
        )
        .check(Validator::Custom(legacy_mode)),
        ConfigKey::optional(
            "drop.tombstones",
            Type::Boolean,
            "",
            "Deprecated: whether tombstones are dropped. Used when delete.tombstone.handling.mode is not set.",
        ),
        ConfigKey::optional(
            "add.fields",
            Type::List,
            "",
            "Envelope or source fields to add to the row, named <prefix><field> (e.g. op,table,lsn,source.ts_ms \
gives __op, __table, __lsn, __source_ts_ms).",
        ),
        ConfigKey::optional("add.fields.prefix", Type::String, "__", "The prefix of added fields."),
        ConfigKey::optional(
            "add.headers",
            Type::List,
            "",
            "Envelope or source fields to add as headers, named <prefix><field>.",
        ),
        ConfigKey::optional("add.headers.prefix", Type::String, "__", "The prefix of added headers."),
    ])
}

fn mode(v: &str) -> Result<(), String> {
    if v.is_empty() || MODES.contains(&v) {
        Ok(())
    } else {
        Err(format!("'{v}' is not one of {}", MODES.join(", ")))
    }
}

fn legacy_mode(v: &str) -> Result<(), String> {
    if matches!(v, "" | "drop" | "rewrite" | "none") {
        Ok(())
    } else {
        Err(format!("'{v}' is not one of drop, rewrite, none"))
    }
}

/// What happens to deletes and tombstones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handling {
    /// Delete events: dropped, made tombstones, or rewritten as the old row with `__deleted`.
    delete: Delete,
    /// Whether tombstones pass.
    keep_tombstones: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delete {
    Drop,
    Tombstone,
    Rewrite,
}

impl Handling {
    fn from_config(p: &Parsed) -> Self {
        let (delete, keep_tombstones) = match p.str("delete.tombstone.handling.mode") {
            "drop" => (Delete::Drop, false),
            "rewrite" => (Delete::Rewrite, false),
            "rewrite-with-tombstone" => (Delete::Rewrite, true),
            "tombstone" => (Delete::Tombstone, false),
            _ => {
                let delete = match p.str("delete.handling.mode") {
                    "drop" => Delete::Drop,
                    "rewrite" => Delete::Rewrite,
                    "none" => Delete::Tombstone,
                    _ if p.opt("drop.tombstones").is_none() => Delete::Tombstone,
                    _ => Delete::Drop,
                };
                let keep = p
                    .opt("drop.tombstones")
                    .is_some_and(|v| v.eq_ignore_ascii_case("false"));
                (delete, keep)
            }
        };
        Self {
            delete,
            keep_tombstones,
        }
    }
}

struct ExtractNewRecordState {
    handling: Handling,
    fields: Vec<String>,
    fields_prefix: String,
    headers: Vec<String>,
    headers_prefix: String,
}

fn create(p: &Parsed) -> Result<Box<dyn Transform>, String> {
    Ok(Box::new(ExtractNewRecordState {
        handling: Handling::from_config(p),
        fields: p.list("add.fields"),
        fields_prefix: p.str("add.fields.prefix").to_owned(),
        headers: p.list("add.headers"),
        headers_prefix: p.str("add.headers.prefix").to_owned(),
    }))
}

/// An added field's value: `struct.field` names a field of a part of the envelope; a bare name
/// is a top-level field (`op`, `ts_ms`) or else a field of `source`.
fn envelope_field<'v>(envelope: &'v Map<String, Value>, name: &str) -> &'v Value {
    let found = match name.split_once('.') {
        Some((part, field)) => envelope.get(part).and_then(|p| p.get(field)),
        None => envelope
            .get(name)
            .filter(|_| !matches!(name, "before" | "after" | "source"))
            .or_else(|| envelope.get("source").and_then(|s| s.get(name))),
    };
    found.unwrap_or(&Value::Null)
}

/// Whether a value is a change event envelope.
fn is_envelope(value: &Value) -> Option<&Map<String, Value>> {
    let map = value.as_object()?;
    (map.contains_key("op") && map.contains_key("after") && map.contains_key("before")).then_some(map)
}

impl Transform for ExtractNewRecordState {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        if record.value.is_null() {
            return Ok(self.handling.keep_tombstones.then_some(record));
        }
        let Some(envelope) = is_envelope(&record.value) else {
            return Ok(Some(record));
        };
        let is_delete = envelope.get("op").and_then(Value::as_str) == Some("d");
        let row = match (is_delete, self.handling.delete) {
            (true, Delete::Drop) => return Ok(None),
            (true, Delete::Tombstone) => None,
            (true, Delete::Rewrite) => Some(envelope.get("before").cloned().unwrap_or(Value::Null)),
            (false, _) => Some(envelope.get("after").cloned().unwrap_or(Value::Null)),
        };
        let headers: Vec<(String, Value)> = self
            .headers
            .iter()
            .map(|h| {
                (
                    format!("{}{}", self.headers_prefix, h.replace('.', "_")),
                    envelope_field(envelope, h).clone(),
                )
            })
            .collect();
        let added: Vec<(String, Value)> = self
            .fields
            .iter()
            .map(|f| {
                (
                    format!("{}{}", self.fields_prefix, f.replace('.', "_")),
                    envelope_field(envelope, f).clone(),
                )
            })
            .collect();
        record.value = match row {
            None => Value::Null,
            Some(Value::Object(mut map)) => {
                map.extend(added);
                if self.handling.delete == Delete::Rewrite {
                    map.insert("__deleted".into(), Value::String(is_delete.to_string()));
                }
                Value::Object(map)
            }
            Some(other) => other,
        };
        record.headers.extend(headers);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, build, record, transform};
    use serde_json::{Value, json};

    fn event(op: &str, before: Value, after: Value) -> Value {
        json!({
            "before": before, "after": after, "op": op, "ts_ms": 5,
            "source": {"table": "orders", "schema": "public", "lsn": 42, "ts_ms": 4}
        })
    }

    const CLASS: &str = "io.debezium.transforms.ExtractNewRecordState";

    #[test]
    fn creates_and_updates_become_the_new_row() {
        let t = transform(CLASS, &[]);
        let r = apply(
            t.as_ref(),
            record("t", event("c", Value::Null, json!({"id": 1, "x": "a"}))),
        );
        assert_eq!(r.value, json!({"id": 1, "x": "a"}));
        let r = apply(
            t.as_ref(),
            record("t", event("u", json!({"id": 1}), json!({"id": 1, "x": "b"}))),
        );
        assert_eq!(r.value, json!({"id": 1, "x": "b"}));
        let r = apply(t.as_ref(), record("t", event("r", Value::Null, json!({"id": 2}))));
        assert_eq!(r.value, json!({"id": 2}));
    }

    #[test]
    fn by_default_a_delete_is_a_tombstone_and_tombstones_are_dropped() {
        let t = transform("ExtractNewRecordState", &[]);
        let mut delete = record("t", event("d", json!({"id": 1}), Value::Null));
        delete.key = json!({"id": 1});
        let r = apply(t.as_ref(), delete);
        assert_eq!((r.key, r.value), (json!({"id": 1}), Value::Null));
        assert_eq!(t.apply(record("t", Value::Null)), Ok(None));
    }

    #[test]
    fn delete_modes() {
        let delete = || record("t", event("d", json!({"id": 1, "x": "a"}), Value::Null));
        let drop = transform(CLASS, &[("delete.tombstone.handling.mode", "drop")]);
        assert_eq!(drop.apply(delete()), Ok(None));
        let rewrite = transform(CLASS, &[("delete.tombstone.handling.mode", "rewrite")]);
        assert_eq!(
            apply(rewrite.as_ref(), delete()).value,
            json!({"id": 1, "x": "a", "__deleted": "true"})
        );
        let created = apply(rewrite.as_ref(), record("t", event("c", Value::Null, json!({"id": 2}))));
        assert_eq!(created.value, json!({"id": 2, "__deleted": "false"}));
        assert_eq!(rewrite.apply(record("t", Value::Null)), Ok(None));
        let keep = transform(CLASS, &[("delete.tombstone.handling.mode", "rewrite-with-tombstone")]);
        assert!(keep.apply(record("t", Value::Null)).unwrap().is_some());
    }

    #[test]
    fn legacy_keys_still_work() {
        let t = transform(CLASS, &[("delete.handling.mode", "drop"), ("drop.tombstones", "false")]);
        assert_eq!(
            t.apply(record("t", event("d", json!({"id": 1}), Value::Null))),
            Ok(None)
        );
        assert!(t.apply(record("t", Value::Null)).unwrap().is_some());
        let t = transform(CLASS, &[("delete.handling.mode", "rewrite")]);
        let r = apply(t.as_ref(), record("t", event("d", json!({"id": 1}), Value::Null)));
        assert_eq!(r.value["__deleted"], json!("true"));
    }

    #[test]
    fn adds_fields_and_headers() {
        let t = transform(
            CLASS,
            &[("add.fields", "op,table,lsn,source.ts_ms"), ("add.headers", "op")],
        );
        let r = apply(t.as_ref(), record("t", event("u", Value::Null, json!({"id": 1}))));
        assert_eq!(
            r.value,
            json!({"id": 1, "__op": "u", "__table": "orders", "__lsn": 42, "__source_ts_ms": 4})
        );
        assert_eq!(r.header("__op"), Some(&json!("u")));
    }

    #[test]
    fn other_records_pass_and_bad_modes_are_refused() {
        let t = transform(CLASS, &[]);
        let r = apply(t.as_ref(), record("t", json!({"plain": true})));
        assert_eq!(r.value, json!({"plain": true}));
        let e = build(CLASS, &[("delete.tombstone.handling.mode", "keep")])
            .err()
            .unwrap();
        assert!(e.contains("delete.tombstone.handling.mode"), "{e}");
    }
}
