//! Encodings of state: order-preserving integers for keys, and values tagged with their type
//! so that a decimal or a timestamp comes back exactly as it went in.

use serde_json::Value as Json;
#[cfg(test)]
use serde_json::json;

use super::value::Datum;

/// An i64 as 8 bytes whose byte order is numeric order.
pub fn ord(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// The i64 of [`ord`] (0 for anything but 8 bytes).
pub fn unord(b: &[u8]) -> i64 {
    <[u8; 8]>::try_from(b).map_or(0, |a| (u64::from_be_bytes(a) ^ (1 << 63)) as i64)
}

/// A value tagged with its type, as JSON: the format [`write_state`] writes.
#[cfg(test)]
pub fn datum_to_state(d: &Datum) -> Json {
    match d {
        Datum::Null => Json::Null,
        Datum::Bool(b) => json!({"b": b}),
        Datum::Int(i) => json!({"i": i}),
        Datum::Double(f) => json!({"f": f}),
        Datum::Decimal(x) => json!({"d": x.to_string()}),
        Datum::Text(s) => json!({"s": s}),
        Datum::Timestamp(t) => json!({"t": t}),
        Datum::Json(v) => json!({"j": v}),
    }
}

/// Appends a value tagged with its type to `buf` as JSON text: `{"i":7}`, `{"s":"x"}`,
/// `{"d":"1.50"}` (decimals as text, exactly), `null`. Keys of state are compared as bytes, so
/// the text of a value is always the same.
pub fn write_state(buf: &mut Vec<u8>, d: &Datum) {
    let tagged = |buf: &mut Vec<u8>, tag: &[u8], write: &dyn Fn(&mut Vec<u8>) -> serde_json::Result<()>| {
        buf.extend_from_slice(b"{\"");
        buf.extend_from_slice(tag);
        buf.extend_from_slice(b"\":");
        write(buf).expect("writing JSON into memory cannot fail");
        buf.push(b'}');
    };
    match d {
        Datum::Null => buf.extend_from_slice(b"null"),
        Datum::Bool(b) => tagged(buf, b"b", &|w| serde_json::to_writer(w, b)),
        Datum::Int(i) => tagged(buf, b"i", &|w| serde_json::to_writer(w, i)),
        Datum::Double(f) => tagged(buf, b"f", &|w| serde_json::to_writer(w, &Json::from(*f))),
        Datum::Decimal(x) => tagged(buf, b"d", &|w| serde_json::to_writer(w, &x.to_string())),
        Datum::Text(s) => tagged(buf, b"s", &|w| serde_json::to_writer(w, s)),
        Datum::Timestamp(t) => tagged(buf, b"t", &|w| serde_json::to_writer(w, t)),
        Datum::Json(v) => tagged(buf, b"j", &|w| serde_json::to_writer(w, v)),
    }
}

/// The value of a tagged JSON value written by [`write_state`].
pub fn datum_from_state(j: &Json) -> Datum {
    let Some(obj) = j.as_object() else { return Datum::Null };
    let Some((tag, v)) = obj.iter().next() else {
        return Datum::Null;
    };
    match tag.as_str() {
        "b" => v.as_bool().map_or(Datum::Null, Datum::Bool),
        "i" => v.as_i64().map_or(Datum::Null, Datum::Int),
        "f" => v.as_f64().map_or(Datum::Null, Datum::Double),
        "d" => v
            .as_str()
            .and_then(|s| s.parse().ok())
            .map_or(Datum::Null, Datum::Decimal),
        "s" => v.as_str().map_or(Datum::Null, |s| Datum::Text(s.to_owned())),
        "t" => v.as_i64().map_or(Datum::Null, Datum::Timestamp),
        "j" => Datum::Json(v.clone()),
        _ => Datum::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ord_round_trips_and_orders(a: i64, b: i64) {
            prop_assert_eq!(unord(&ord(a)), a);
            prop_assert_eq!(ord(a).cmp(&ord(b)), a.cmp(&b));
        }

        #[test]
        fn tagged_values_round_trip(i: i64, s in ".*", f in -1e12f64..1e12, cents in -1_000_000_000i64..1_000_000_000) {
            for d in [
                Datum::Int(i),
                Datum::Text(s.clone()),
                Datum::Double(f),
                Datum::Timestamp(i),
                Datum::Decimal(rust_decimal::Decimal::new(cents, 2)),
                Datum::Null,
                Datum::Bool(i % 2 == 0),
            ] {
                prop_assert_eq!(datum_from_state(&datum_to_state(&d)), d);
            }
        }

        #[test]
        fn written_state_is_the_text_of_the_tagged_value(i: i64, s in ".*", f in proptest::num::f64::ANY, cents: i64, b: bool) {
            let values = [
                Datum::Null,
                Datum::Bool(b),
                Datum::Int(i),
                Datum::Double(f),
                Datum::Decimal(rust_decimal::Decimal::new(cents, 2)),
                Datum::Text(s.clone()),
                Datum::Timestamp(i),
                Datum::Json(json!({"a": [s, i, b]})),
            ];
            for d in values {
                let mut buf = Vec::new();
                write_state(&mut buf, &d);
                prop_assert_eq!(String::from_utf8(buf).unwrap(), datum_to_state(&d).to_string());
            }
        }

        #[test]
        fn decoding_arbitrary_state_never_panics(bytes: Vec<u8>) {
            let _ = unord(&bytes);
            if let Ok(j) = serde_json::from_slice::<Json>(&bytes) {
                let _ = datum_from_state(&j);
            }
        }
    }
}
