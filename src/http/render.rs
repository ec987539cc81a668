//! Writes records as JSON straight from their stored bytes: a JSON payload is copied verbatim,
//! a string payload is escaped, a binary payload is base64-encoded. No intermediate values.

use base64::Engine as _;

use crate::storage::{Format, Payload, RecordView};

/// How the client asked keys and values to be rendered (`None`: as produced).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rendering {
    /// Rendering of keys.
    pub key: Option<Format>,
    /// Rendering of values.
    pub value: Option<Format>,
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

fn write_lossy(out: &mut Vec<u8>, bytes: &[u8]) {
    write_str(out, &String::from_utf8_lossy(bytes));
}

/// Writes a payload and returns the format it was rendered in.
fn write_payload(out: &mut Vec<u8>, p: Option<Payload<'_>>, want: Option<Format>) -> Format {
    let Some(p) = p else {
        out.extend_from_slice(b"null");
        return Format::Json;
    };
    let format = match want {
        // Only bytes stored as JSON can be rendered as JSON; others keep their own format.
        Some(Format::Json) | None => p.format,
        Some(f) => f,
    };
    match format {
        Format::Json => out.extend_from_slice(p.bytes),
        Format::String => write_lossy(out, p.bytes),
        Format::Binary => {
            out.push(b'"');
            let start = out.len();
            let n = base64::encoded_len(p.bytes.len(), true).unwrap_or(0);
            out.resize(start + n, 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(p.bytes, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + written);
            out.push(b'"');
        }
    }
    format
}

/// Writes one record in the fetch format:
/// `{"topic","partition","offset","timestamp","key","value","headers"}`, plus `key_format` /
/// `value_format` when a payload is not rendered as JSON. `topic_json` is the topic name
/// already JSON-encoded (with quotes).
pub fn write_record(
    out: &mut Vec<u8>,
    topic_json: &[u8],
    partition: u32,
    offset: u64,
    r: &RecordView<'_>,
    rendering: Rendering,
) {
    let mut ibuf = itoa::Buffer::new();
    out.extend_from_slice(b"{\"topic\":");
    out.extend_from_slice(topic_json);
    out.extend_from_slice(b",\"partition\":");
    out.extend_from_slice(ibuf.format(partition).as_bytes());
    out.extend_from_slice(b",\"offset\":");
    out.extend_from_slice(ibuf.format(offset).as_bytes());
    out.extend_from_slice(b",\"timestamp\":");
    out.extend_from_slice(ibuf.format(r.timestamp).as_bytes());
    out.extend_from_slice(b",\"key\":");
    let kf = write_payload(out, r.key, rendering.key);
    out.extend_from_slice(b",\"value\":");
    let vf = write_payload(out, r.value, rendering.value);
    out.extend_from_slice(b",\"headers\":{");
    // Header values from HTTP are text; one from an in-process client may be any bytes: then
    // every value of the record is base64 and `header_format` says so.
    let binary_headers = r.headers.iter().any(|(_, v)| std::str::from_utf8(v).is_err());
    for (i, (k, v)) in r.headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_lossy(out, k);
        out.push(b':');
        if binary_headers {
            write_payload(
                out,
                Some(Payload {
                    format: Format::Binary,
                    bytes: v,
                }),
                None,
            );
        } else {
            write_lossy(out, v);
        }
    }
    out.push(b'}');
    if binary_headers {
        out.extend_from_slice(b",\"header_format\":\"binary\"");
    }
    if kf != Format::Json {
        out.extend_from_slice(b",\"key_format\":\"");
        out.extend_from_slice(kf.as_str().as_bytes());
        out.push(b'"');
    }
    if vf != Format::Json {
        out.extend_from_slice(b",\"value_format\":\"");
        out.extend_from_slice(vf.as_str().as_bytes());
        out.push(b'"');
    }
    out.push(b'}');
}

/// Writes the records of several reads as the elements of a JSON array (without brackets).
pub fn write_records(out: &mut Vec<u8>, reads: &[crate::broker::FetchResult], rendering: Rendering) {
    let mut first = true;
    for f in reads {
        let tj = topic_json(&f.topic);
        for (offset, r) in f.records() {
            if !first {
                out.push(b',');
            }
            first = false;
            write_record(out, &tj, f.partition, offset, &r, rendering);
        }
    }
}

/// A 200 response with a JSON body that was written by hand.
pub fn json_response(body: Vec<u8>) -> axum::response::Response {
    // Built directly: `(StatusCode, Vec<u8>)` would set an octet-stream type to be replaced.
    let mut resp = axum::response::Response::new(axum::body::Body::from(body));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The topic name as a JSON string.
pub fn topic_json(name: &str) -> Vec<u8> {
    serde_json::to_vec(name).expect("a string always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_format_as_valid_json() {
        let r = RecordView {
            timestamp: 5,
            key: Some(Payload {
                format: Format::String,
                bytes: b"k\"1",
            }),
            value: Some(Payload {
                format: Format::Binary,
                bytes: &[0, 255, 1],
            }),
            headers: vec![(b"h".as_slice(), b"v".as_slice())],
        };
        let mut out = Vec::new();
        write_record(&mut out, &topic_json("t"), 1, 2, &r, Rendering::default());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"topic": "t", "partition": 1, "offset": 2, "timestamp": 5, "key": "k\"1",
                "value": "AP8B", "headers": {"h": "v"}, "key_format": "string", "value_format": "binary"})
        );
        let j = RecordView {
            timestamp: 0,
            key: None,
            value: Some(Payload {
                format: Format::Json,
                bytes: br#"{"a":[1,2]}"#,
            }),
            headers: vec![],
        };
        out.clear();
        write_record(
            &mut out,
            &topic_json("t"),
            0,
            0,
            &j,
            Rendering {
                key: None,
                value: Some(Format::Binary),
            },
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["value"], "eyJhIjpbMSwyXX0=");
        assert_eq!(v["key"], serde_json::Value::Null);
    }
}
