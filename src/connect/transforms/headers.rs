//! The header transforms: `HeaderFrom$Key` / `$Value` (copy or move fields into headers),
//! `InsertHeader` (a header with a literal value) and `DropHeaders` (remove headers by name).
//! Headers are added after the existing ones, as Connect adds them.

use std::collections::BTreeSet;

use serde_json::Value;

use super::super::config::{ConfigDef, ConfigKey, Parsed, Type, Validator};
use super::super::record::ConnectRecord;
use super::support::{Side, keyed_plugins, replace_null_with_default, require_map_mut};
use super::{Transform, TransformPlugin};

const HEADER_FROM_DOC: &str = "Moves or copies fields in the key/value of a record into that record's headers. \
                               Corresponding elements of fields and headers together identify a field and the \
                               header it should be moved or copied to.";

/// Every header transform plugin.
pub(super) fn plugins() -> Vec<TransformPlugin> {
    let mut out = Vec::from(keyed_plugins!(
        "HeaderFrom",
        HEADER_FROM_DOC,
        header_from_config,
        create_header_from
    ));
    out.push(TransformPlugin {
        class: "org.apache.kafka.connect.transforms.InsertHeader",
        aliases: &["InsertHeader"],
        doc: "Add a header to each record.",
        config: insert_header_config,
        create: create_insert_header,
    });
    out.push(TransformPlugin {
        class: "org.apache.kafka.connect.transforms.DropHeaders",
        aliases: &["DropHeaders"],
        doc: "Removes one or more headers from each record.",
        config: drop_headers_config,
        create: create_drop_headers,
    });
    out
}

// ---- HeaderFrom ----

fn header_from_config() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::required(
            "fields",
            Type::List,
            "Field names in the record whose values are to be copied or moved to headers.",
        )
        .check(Validator::NonEmpty),
        ConfigKey::required(
            "headers",
            Type::List,
            "Header names, in the same order as the field names listed in the fields configuration property.",
        )
        .check(Validator::NonEmpty),
        ConfigKey::required(
            "operation",
            Type::String,
            "Either move if the fields are to be moved to the headers (removed from the key/value), or copy if the \
             fields are to be copied to the headers (retained in the key/value).",
        )
        .check(Validator::OneOf(&["move", "copy"])),
        replace_null_with_default(),
    ])
}

struct HeaderFrom {
    side: Side,
    pairs: Vec<(String, String)>,
    moving: bool,
}

fn create_header_from(p: &Parsed, side: Side) -> Result<Box<dyn Transform>, String> {
    let (fields, headers) = (p.list("fields"), p.list("headers"));
    if fields.len() != headers.len() {
        return Err("'fields' config must have the same number of elements as 'headers' config.".into());
    }
    Ok(Box::new(HeaderFrom {
        side,
        pairs: fields.into_iter().zip(headers).collect(),
        moving: p.str("operation").eq_ignore_ascii_case("move"),
    }))
}

impl Transform for HeaderFrom {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        let purpose = if self.moving { "header move" } else { "header copy" };
        let map = require_map_mut(self.side.of_mut(&mut record), purpose)?;
        let mut added = Vec::with_capacity(self.pairs.len());
        for (field, header) in &self.pairs {
            let value = if self.moving {
                map.remove(field)
            } else {
                map.get(field).cloned()
            };
            added.push((header.clone(), value.unwrap_or(Value::Null)));
        }
        record.headers.extend(added);
        Ok(Some(record))
    }
}

// ---- InsertHeader ----

fn insert_header_config() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::required("header", Type::String, "The name of the header."),
        ConfigKey::required(
            "value.literal",
            Type::String,
            "The literal value that is to be set as the header value on all records. Numbers, booleans, JSON arrays \
             and objects are typed as such; anything else is a string.",
        ),
    ])
}

struct InsertHeader {
    header: String,
    value: Value,
}

fn create_insert_header(p: &Parsed) -> Result<Box<dyn Transform>, String> {
    Ok(Box::new(InsertHeader {
        header: p.str("header").to_owned(),
        value: literal(p.str("value.literal")),
    }))
}

/// A literal typed as Connect's `Values.parseString` would: a number, boolean, array or map
/// when it reads as one, else the text itself.
fn literal(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_))) => v,
        _ => Value::String(text.to_owned()),
    }
}

impl Transform for InsertHeader {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        record.headers.push((self.header.clone(), self.value.clone()));
        Ok(Some(record))
    }
}

// ---- DropHeaders ----

fn drop_headers_config() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::required("headers", Type::List, "The name of the headers to be removed.").check(Validator::NonEmpty),
    ])
}

struct DropHeaders {
    names: BTreeSet<String>,
}

fn create_drop_headers(p: &Parsed) -> Result<Box<dyn Transform>, String> {
    Ok(Box::new(DropHeaders {
        names: p.list("headers").into_iter().collect(),
    }))
}

impl Transform for DropHeaders {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        record.headers.retain(|(name, _)| !self.names.contains(name));
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, build, record, transform};
    use serde_json::json;

    #[test]
    fn header_from_copies_or_moves_fields() {
        // Kafka's docs: fields=id,ts headers=record_id,ts operation=copy
        let t = transform(
            "HeaderFrom$Value",
            &[("fields", "id,ts"), ("headers", "record_id,ts"), ("operation", "copy")],
        );
        let mut r = record("t", json!({"id": 7, "ts": 100, "x": 1}));
        r.headers = vec![("h".into(), json!("old"))];
        let out = apply(t.as_ref(), r);
        assert_eq!(out.value, json!({"id": 7, "ts": 100, "x": 1}));
        assert_eq!(
            out.headers,
            vec![
                ("h".into(), json!("old")),
                ("record_id".into(), json!(7)),
                ("ts".into(), json!(100))
            ]
        );
        let t = transform(
            "org.apache.kafka.connect.transforms.HeaderFrom$Key",
            &[("fields", "id,nope"), ("headers", "key_id,n"), ("operation", "move")],
        );
        let mut r = record("t", json!(1));
        r.key = json!({"id": "k", "other": 2});
        let out = apply(t.as_ref(), r);
        assert_eq!(out.key, json!({"other": 2}));
        assert_eq!(
            out.headers,
            vec![("key_id".into(), json!("k")), ("n".into(), json!(null))]
        );
        let e = t.apply(record("t", json!(1))).unwrap_err();
        assert!(e.contains("[header move], found: null"), "{e}");
        let e = build(
            "HeaderFrom$Value",
            &[("fields", "a,b"), ("headers", "a"), ("operation", "copy")],
        )
        .err()
        .unwrap();
        assert!(e.contains("same number of elements"), "{e}");
        let e = build(
            "HeaderFrom$Value",
            &[("fields", "a"), ("headers", "a"), ("operation", "swap")],
        )
        .err()
        .unwrap();
        assert!(e.contains("String must be one of: move, copy"), "{e}");
    }

    #[test]
    fn insert_header_adds_a_typed_literal() {
        // Kafka's docs: header=MessageSource value.literal=Kafka Connect framework
        let t = transform(
            "InsertHeader",
            &[
                ("header", "MessageSource"),
                ("value.literal", "Kafka Connect framework"),
            ],
        );
        let out = apply(t.as_ref(), record("t", json!(1)));
        assert_eq!(
            out.headers,
            vec![("MessageSource".into(), json!("Kafka Connect framework"))]
        );
        let t = transform("InsertHeader", &[("header", "n"), ("value.literal", "42")]);
        assert_eq!(
            apply(t.as_ref(), record("t", json!(1))).headers,
            vec![("n".into(), json!(42))]
        );
        assert!(build("InsertHeader", &[("header", "n")]).is_err());
    }

    #[test]
    fn drop_headers_removes_every_header_of_those_names() {
        let t = transform("DropHeaders", &[("headers", "a,b")]);
        let mut r = record("t", json!(1));
        r.headers = vec![
            ("a".into(), json!(1)),
            ("c".into(), json!(2)),
            ("a".into(), json!(3)),
            ("b".into(), json!(4)),
        ];
        assert_eq!(apply(t.as_ref(), r).headers, vec![("c".into(), json!(2))]);
        assert!(build("DropHeaders", &[("headers", "")]).is_err());
        // A list of nothing but separators is empty too.
        let e = build("DropHeaders", &[("headers", " , ")]).err().unwrap();
        assert!(e.contains("must not be empty"), "{e}");
    }
}
