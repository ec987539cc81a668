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

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&Value> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Reads a stored record: a JSON payload as its JSON value, a string payload as a JSON
    /// string, a binary payload as its base64 text (what Connect's JSON converter gives for
    /// bytes); header values as text when they are UTF-8, else base64.
    pub fn from_view(topic: &str, partition: u32, offset: u64, r: &RecordView<'_>) -> Result<Self, String> {
        Ok(Self {
            topic: topic.to_owned(),
            partition: Some(partition),
            key: payload_value(r.key).map_err(|e| format!("key: {e}"))?,
            value: payload_value(r.value).map_err(|e| format!("value: {e}"))?,
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
        })
    }

    /// The key as stored bytes (JSON text), `None` for a null key.
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        (!self.key.is_null()).then(|| self.key.to_string().into_bytes())
    }

    /// The value as stored bytes (JSON text), `None` for a tombstone.
    pub fn value_bytes(&self) -> Option<Vec<u8>> {
        (!self.value.is_null()).then(|| self.value.to_string().into_bytes())
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
        assert_eq!(r.value_bytes().unwrap(), br#"{"a":{"b":2}}"#);
        assert_eq!(r.key_bytes().unwrap(), br#""k1""#);
        let tomb = ConnectRecord::new("t", Value::Null);
        assert!(tomb.value_bytes().is_none() && tomb.key_bytes().is_none());
    }
}
