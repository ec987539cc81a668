//! Column values into JSON, and change events into Debezium's envelope. The snapshot reads each
//! column as text (`col::text`) and the replication stream sends text, so both go through the
//! same conversion by type OID and a row reads the same either way.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::pgoutput::Datum;

/// What Debezium puts in place of an unchanged TOASTed value the stream did not send.
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";

/// A column's value from PostgreSQL's text output: integers and finite floats as JSON numbers,
/// booleans as booleans, `json`/`jsonb` nested, `bytea` as base64, `numeric` as an exact
/// decimal string, everything else (dates, timestamps, uuids, arrays, …) as the text itself.
pub fn from_text(type_oid: u32, text: &str) -> Value {
    match type_oid {
        // `boolout` gives t/f (the stream), a cast to text true/false (the snapshot).
        16 => Value::Bool(text == "t" || text == "true"),
        20 | 21 | 23 | 26 => text
            .parse::<i64>()
            .map_or_else(|_| Value::String(text.into()), Value::from),
        700 | 701 => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(text.into()), Value::Number),
        114 | 3802 => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())),
        17 => bytea(text),
        _ => Value::String(text.into()),
    }
}

/// `bytea`'s hex output (`\x0102`) as base64; other forms are kept as text.
fn bytea(text: &str) -> Value {
    let Some(hex) = text.strip_prefix("\\x") else {
        return Value::String(text.into());
    };
    let bytes: Option<Vec<u8>> = hex
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect();
    match bytes {
        Some(b) if hex.len() % 2 == 0 => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        _ => Value::String(text.into()),
    }
}

/// A datum of the stream as JSON.
pub fn from_datum(type_oid: u32, datum: &Datum) -> Value {
    match datum {
        Datum::Null => Value::Null,
        Datum::Unchanged => Value::String(UNAVAILABLE.into()),
        Datum::Text(t) => from_text(type_oid, t),
        Datum::Binary(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

/// Where a change came from: Debezium's `source` block.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// `topic.prefix` (Debezium's logical server name).
    pub server: &'a str,
    /// The database.
    pub db: &'a str,
    /// The table's schema.
    pub schema: &'a str,
    /// The table.
    pub table: &'a str,
    /// The transaction id (none in the snapshot).
    pub tx_id: Option<u32>,
    /// The LSN: the commit's end in the stream, the slot's start in the snapshot.
    pub lsn: u64,
    /// The commit time in ms (the read time in the snapshot).
    pub ts_ms: i64,
    /// `"true"`/`"last"` in the snapshot, `"false"` in the stream.
    pub snapshot: &'a str,
}

/// Debezium's change event value: `before`, `after`, `source`, `op` and `ts_ms`.
pub fn envelope(
    op: &str,
    before: Option<Map<String, Value>>,
    after: Option<Map<String, Value>>,
    s: &Source<'_>,
) -> Value {
    let now = chrono::Utc::now().timestamp_millis();
    json!({
        "before": before.map_or(Value::Null, Value::Object),
        "after": after.map_or(Value::Null, Value::Object),
        "source": {
            "version": env!("CARGO_PKG_VERSION"),
            "connector": "postgresql",
            "name": s.server,
            "ts_ms": s.ts_ms,
            "snapshot": s.snapshot,
            "db": s.db,
            "schema": s.schema,
            "table": s.table,
            "txId": s.tx_id,
            "lsn": s.lsn,
        },
        "op": op,
        "ts_ms": now,
    })
}

/// Milliseconds since the Unix epoch of a PostgreSQL timestamp (µs since 2000-01-01).
pub fn pg_micros_to_unix_ms(micros: i64) -> i64 {
    const PG_EPOCH_MS: i64 = 946_684_800_000;
    micros.div_euclid(1000).saturating_add(PG_EPOCH_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_text_by_type() {
        assert_eq!(from_text(23, "42"), json!(42));
        assert_eq!(from_text(20, "-9007199254740993"), json!(-9_007_199_254_740_993_i64));
        assert_eq!(from_text(16, "t"), json!(true));
        assert_eq!(from_text(16, "f"), json!(false));
        assert_eq!(from_text(16, "true"), json!(true));
        assert_eq!(from_text(16, "false"), json!(false));
        assert_eq!(from_text(701, "1.5"), json!(1.5));
        assert_eq!(from_text(701, "NaN"), json!("NaN"));
        assert_eq!(
            from_text(1700, "12345678901234567890.123"),
            json!("12345678901234567890.123")
        );
        assert_eq!(from_text(3802, r#"{"a": [1, 2]}"#), json!({"a": [1, 2]}));
        assert_eq!(from_text(17, "\\x68690a"), json!("aGkK"));
        assert_eq!(from_text(17, "\\x6"), json!("\\x6"));
        assert_eq!(from_text(1114, "2024-01-02 03:04:05"), json!("2024-01-02 03:04:05"));
    }

    #[test]
    fn unchanged_toast_is_debeziums_placeholder() {
        assert_eq!(from_datum(25, &Datum::Unchanged), json!(UNAVAILABLE));
        assert_eq!(from_datum(25, &Datum::Null), Value::Null);
    }

    #[test]
    fn converts_postgres_time() {
        assert_eq!(pg_micros_to_unix_ms(0), 946_684_800_000);
        assert_eq!(pg_micros_to_unix_ms(1_500), 946_684_800_001);
    }
}
