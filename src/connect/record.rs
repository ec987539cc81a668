//! The record connectors and transforms work on: Kafka Connect's schemaless JSON view of a
//! record (key and value as JSON values, headers by name), and its conversion from and to the
//! broker's stored records.

use base64::Engine as _;
use serde_json::Value;

use crate::storage::{Format, Payload, RecordView};

/// A record as a connector, a transform or a predicate sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectRecord {
    /// The topic it goes to (sources) or came from (sinks).
    pub topic: String,
    /// The partition, when chosen (sources) or read from (sinks).
    pub partition: Option<u32>,
    /// The key; `Null` when there is none.
    pub key: Value,
    /// The value; `Null` is a tombstone.
    pub value: Value,
    /// Headers in order; values are JSON (strings for text headers).
    pub headers: Vec<(String, Value)>,
    /// Timestamp, ms since the epoch (sources: `None` takes the time of the write).
    pub timestamp: Option<i64>,
    /// Sinks: the offset it was read at.
    pub offset: Option<u64>,
    /// Sources: the key and value as JSON text the source wrote itself (`key` and `value` are
    /// then `Null` until [`Self::decode_text`] builds them for a transform).
    pub text: Option<JsonText>,
}

/// A key and value as compact, single-line JSON text (`None`: no key, a tombstone), written by
/// a source that builds the text straight from what it reads: stored as it is, with no JSON
/// value built for a record no transform looks at.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonText {
    /// The key's text.
    pub key: Option<String>,
    /// The value's text.
    pub value: Option<String>,
}

impl ConnectRecord {
    /// A record for `topic` with this value and no key.
    pub fn new(topic: impl Into<String>, value: Value) -> Self {
        Self {
            topic: topic.into(),
            value,
            ..Self::default()
        }
    }

    /// A record for `topic` whose key and value are JSON text (see [`JsonText`]): the caller
    /// writes compact, single-line JSON, which is stored without being parsed again.
    pub fn from_text(topic: impl Into<String>, text: JsonText) -> Self {
        debug_assert!(
            [&text.key, &text.value]
                .into_iter()
                .flatten()
                .all(|t| !t.contains('\n') && serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()),
            "a source wrote text that is not single-line JSON: {text:?}"
        );
        Self {
            topic: topic.into(),
            text: Some(text),
            ..Self::default()
        }
    }

    /// Builds `key` and `value` from the record's JSON text, for the transforms.
    pub fn decode_text(&mut self) -> Result<(), String> {
        let Some(text) = self.text.take() else {
            return Ok(());
        };
        let parse = |t: Option<String>| t.map_or(Ok(Value::Null), |t| serde_json::from_str(&t));
        self.key = parse(text.key).map_err(|e| format!("key: {e}"))?;
        self.value = parse(text.value).map_err(|e| format!("value: {e}"))?;
        Ok(())
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&Value> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Reads a stored record: a JSON payload as its JSON value, a string payload as a JSON
    /// string, a binary payload as its base64 text (what Connect's JSON converter gives for
    /// bytes); header values as text when they are UTF-8, else base64.
    pub fn from_view(topic: &str, partition: u32, offset: u64, r: &RecordView<'_>) -> Result<Self, String> {
        Ok(Self {
            key: payload_value(r.key).map_err(|e| format!("key: {e}"))?,
            value: payload_value(r.value).map_err(|e| format!("value: {e}"))?,
            ..Self::stored(topic, partition, offset, r)
        })
    }

    /// Reads a stored record as [`Self::from_view`] does, but keeps its key and value as the
    /// JSON text of those values ([`JsonText`]) and builds no JSON value: a JSON payload as
    /// stored (one line, as every stored JSON value is), a string payload as a JSON string, a
    /// binary payload as its base64 text in a JSON string. For a sink that writes records out
    /// as JSON text and runs no transform: no value is parsed and serialized again.
    pub fn from_view_text(topic: &str, partition: u32, offset: u64, r: &RecordView<'_>) -> Result<Self, String> {
        let text = JsonText {
            key: payload_text(r.key).map_err(|e| format!("key: {e}"))?,
            value: payload_text(r.value).map_err(|e| format!("value: {e}"))?,
        };
        Ok(Self {
            text: Some(text),
            ..Self::stored(topic, partition, offset, r)
        })
    }

    /// A stored record's topic, partition, offset, timestamp and headers (header values as
    /// text when they are UTF-8, else base64), without key or value.
    fn stored(topic: &str, partition: u32, offset: u64, r: &RecordView<'_>) -> Self {
        Self {
            topic: topic.to_owned(),
            partition: Some(partition),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| {
                    let value = match std::str::from_utf8(v) {
                        Ok(s) => Value::String(s.to_owned()),
                        Err(_) => Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
                    };
                    (String::from_utf8_lossy(k).into_owned(), value)
                })
                .collect(),
            timestamp: Some(r.timestamp),
            offset: Some(offset),
            ..Self::default()
        }
    }

    /// Appends the key as stored (compact JSON text, one line: the source's text when it wrote
    /// one); `false`, with nothing written, for a null key.
    pub fn write_key(&self, out: &mut Vec<u8>) -> bool {
        write_part(out, self.text.as_ref().map(|t| &t.key), &self.key)
    }

    /// Appends the value as stored, as [`Self::write_key`]; `false` for a tombstone.
    pub fn write_value(&self, out: &mut Vec<u8>) -> bool {
        write_part(out, self.text.as_ref().map(|t| &t.value), &self.value)
    }

    /// The key as stored ([`Self::write_key`]), `None` for a null key.
    pub fn key_bytes(&self) -> Option<String> {
        part_string(|out| self.write_key(out))
    }

    /// The value as stored ([`Self::write_value`]), `None` for a tombstone.
    pub fn value_bytes(&self) -> Option<String> {
        part_string(|out| self.write_value(out))
    }

    /// Header values as stored bytes: strings as their text, other values as JSON text.
    pub fn header_bytes(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.headers
            .iter()
            .map(|(k, v)| {
                let bytes = match v {
                    Value::String(s) => s.clone().into_bytes(),
                    other => other.to_string().into_bytes(),
                };
                (k.clone().into_bytes(), bytes)
            })
            .collect()
    }
}

/// Appends a value's compact JSON text (one line: serde_json escapes line breaks in strings).
/// A string with nothing to escape (a line of a file, most often) is copied as it is: serde
/// looks at it byte by byte.
pub fn write_json(out: &mut Vec<u8>, value: &Value) {
    if let Value::String(s) = value
        && !crate::json_text::needs_escape(s.as_bytes())
    {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing a `Value` into a `Vec` cannot fail: its keys are strings, its numbers finite.
    serde_json::to_writer(out, value).expect("a JSON value writes to memory");
}

/// Appends a key's or value's stored text: the source's `text` when the record carries text,
/// else the JSON value's (nothing for `Null`).
fn write_part(out: &mut Vec<u8>, text: Option<&Option<String>>, value: &Value) -> bool {
    match text {
        Some(text) => text.as_deref().map(|t| out.extend_from_slice(t.as_bytes())).is_some(),
        None if value.is_null() => false,
        None => {
            write_json(out, value);
            true
        }
    }
}

/// What `write` appends, as a string (`None` when it wrote nothing).
fn part_string(write: impl FnOnce(&mut Vec<u8>) -> bool) -> Option<String> {
    let mut out = Vec::new();
    // JSON text and the texts of strings are UTF-8: nothing is ever replaced.
    write(&mut out).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// Appends a string's JSON text, as [`write_json`] writes a string value.
pub fn push_json_str(out: &mut String, s: &str) {
    if crate::json_text::needs_escape(s.as_bytes()) {
        // Serializing a string cannot fail.
        out.push_str(&serde_json::to_string(s).expect("a string serializes"));
    } else {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// A stored key's or value's JSON text (see [`ConnectRecord::from_view_text`]); `None` when
/// there is none.
fn payload_text(p: Option<Payload<'_>>) -> Result<Option<String>, String> {
    let Some(p) = p else { return Ok(None) };
    let text = match p.format {
        // Stored JSON is one line; should a raw line break ever be there, it is whitespace, as
        // produce makes it.
        Format::Json => String::from_utf8(crate::broker::produce::single_line(p.bytes).into_owned())
            .map_err(|e| format!("stored JSON is not UTF-8: {e}"))?,
        Format::String => {
            let mut out = String::with_capacity(p.bytes.len() + 2);
            push_json_str(&mut out, &String::from_utf8_lossy(p.bytes));
            out
        }
        Format::Binary => format!("\"{}\"", base64::engine::general_purpose::STANDARD.encode(p.bytes)),
    };
    Ok(Some(text))
}

fn payload_value(p: Option<Payload<'_>>) -> Result<Value, String> {
    let Some(p) = p else { return Ok(Value::Null) };
    match p.format {
        Format::Json => serde_json::from_slice(p.bytes).map_err(|e| format!("stored JSON does not parse: {e}")),
        Format::String => Ok(Value::String(String::from_utf8_lossy(p.bytes).into_owned())),
        Format::Binary => Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(p.bytes))),
    }
}

/// A field of a JSON object by a dotted path (`a.b.c`); `None` when absent.
pub fn field<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, part| v.get(part))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn stored_records_read_as_json_values() {
        let view = RecordView {
            timestamp: 5,
            key: Some(Payload {
                format: Format::String,
                bytes: b"k1",
            }),
            value: Some(Payload {
                format: Format::Json,
                bytes: br#"{"a":{"b":2}}"#,
            }),
            headers: vec![
                (b"h".as_slice(), b"v".as_slice()),
                (b"bin".as_slice(), [0xffu8].as_slice()),
            ],
        };
        let r = ConnectRecord::from_view("t", 1, 9, &view).unwrap();
        assert_eq!(r.key, Value::String("k1".into()));
        assert_eq!(field(&r.value, "a.b"), Some(&Value::from(2)));
        assert_eq!(r.header("bin"), Some(&Value::String("/w==".into())));
        assert_eq!((r.partition, r.offset, r.timestamp), (Some(1), Some(9), Some(5)));
        assert_eq!(r.value_bytes().unwrap(), r#"{"a":{"b":2}}"#);
        assert_eq!(r.key_bytes().unwrap(), r#""k1""#);
        for v in [
            json!("plain text é"),
            json!("a \"quote\""),
            json!("tab\there"),
            json!("back\\slash"),
            json!("\u{1}"),
        ] {
            let mut out = Vec::new();
            write_json(&mut out, &v);
            assert_eq!(out, serde_json::to_vec(&v).unwrap(), "{v}");
            let mut text = String::from("x");
            push_json_str(&mut text, v.as_str().unwrap());
            assert_eq!(text, format!("x{v}"));
        }
        let text = JsonText {
            key: Some(r#"{"id":1}"#.into()),
            value: Some(r#"{"id":1,"s":"a\nb"}"#.into()),
        };
        let mut r = ConnectRecord::from_text("t", text);
        assert_eq!(r.key, Value::Null, "no value is built until asked");
        assert_eq!(r.value_bytes().unwrap(), r#"{"id":1,"s":"a\nb"}"#);
        r.decode_text().unwrap();
        assert_eq!(
            (r.key.clone(), r.value.clone()),
            (json!({"id": 1}), json!({"id": 1, "s": "a\nb"}))
        );
        assert_eq!(r.key_bytes().unwrap(), r#"{"id":1}"#);
        assert_eq!(r.text, None);
        let tomb = ConnectRecord::new("t", Value::Null);
        assert!(tomb.value_bytes().is_none() && tomb.key_bytes().is_none());
    }

    #[test]
    fn stored_records_read_as_text_keep_the_stored_json_and_quote_the_rest() {
        let payload = |format, bytes| Some(Payload { format, bytes });
        let view = |key, value| RecordView {
            timestamp: 5,
            key,
            value,
            headers: vec![(b"h".as_slice(), b"v".as_slice())],
        };
        let text = |v: &RecordView<'_>| {
            let r = ConnectRecord::from_view_text("t", 1, 9, v).unwrap();
            let as_value = ConnectRecord::from_view("t", 1, 9, v).unwrap();
            // Everything but key and value is as `from_view` reads it.
            assert_eq!(
                (&r.headers, r.offset, r.timestamp),
                (&as_value.headers, as_value.offset, as_value.timestamp)
            );
            assert_eq!(
                (r.key.clone(), r.value.clone()),
                (Value::Null, Value::Null),
                "no value is built"
            );
            // The text is the JSON of the value `from_view` reads.
            for (text, value) in [(r.key_bytes(), &as_value.key), (r.value_bytes(), &as_value.value)] {
                let parsed = text
                    .as_deref()
                    .map_or(Value::Null, |t| serde_json::from_str(t).unwrap());
                assert_eq!(&parsed, value);
            }
            (r.key_bytes(), r.value_bytes())
        };
        let stored = br#"{"b": 1, "a": [1, 2]}"#;
        assert_eq!(
            text(&view(payload(Format::String, b"k\"1"), payload(Format::Json, stored))),
            (
                Some(r#""k\"1""#.to_owned()),
                Some(r#"{"b": 1, "a": [1, 2]}"#.to_owned())
            )
        );
        assert_eq!(
            text(&view(None, payload(Format::Binary, &[0, 1, 2]))),
            (None, Some(r#""AAEC""#.to_owned()))
        );
        assert_eq!(
            text(&view(payload(Format::Json, b"7"), None)),
            (Some("7".to_owned()), None)
        );
        let broken = view(None, payload(Format::Json, b"{\"a\":\n1}"));
        assert_eq!(text(&broken).1.as_deref(), Some(r#"{"a": 1}"#), "one line");
        assert!(ConnectRecord::from_view_text("t", 0, 0, &view(None, payload(Format::Json, &[0xff]))).is_err());
    }
}
