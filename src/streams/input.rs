//! Reading a stored record value as a row of a source's columns. A JSON object is read in one
//! pass straight into the declared columns: fields no column names are skipped without being
//! built, no JSON object is made, and a decimal is read from its text (exactly, not through a
//! double). A value this cannot read (not JSON, not an object, a field
//! of the wrong type) is read again by [`decode`](super::exec::decode) for its exact message.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr as _;

use rust_decimal::{Decimal, RoundingStrategy};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value as Json;
use serde_json::value::RawValue;

use super::catalog::Source;
use super::sql::ColumnDef;
use super::value::{Datum, SqlType};
use crate::storage::{Format, Payload};

/// A stored value as a row of `s`'s columns; `Err` says why it cannot be one (an error for this
/// record, not for the query).
pub fn decode_payload(s: &Source, p: Option<Payload<'_>>) -> Result<Vec<Datum>, String> {
    if let Some(p) = p
        && p.format == Format::Json
        && let Some(row) = read_object(&s.columns, p.bytes)
    {
        return Ok(row);
    }
    super::exec::decode(s, &super::run::json_of(p)?)
}

/// The row of a JSON object's bytes, or `None` when they are not one that fits the columns.
fn read_object(columns: &[ColumnDef], bytes: &[u8]) -> Option<Vec<Datum>> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let fields = Fields { columns }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    columns
        .iter()
        .zip(fields)
        .map(|(c, f)| datum(f.value.map(RawValue::get), c.ty).ok())
        .collect()
}

/// Reads a field's JSON text as a column type: the common shapes directly from the text, the
/// others through a JSON value as [`Datum::from_json`] reads them.
fn datum(raw: Option<&str>, ty: SqlType) -> Result<Datum, String> {
    let Some(raw) = raw else { return Ok(Datum::Null) };
    if let Some(d) = direct(raw, ty) {
        return Ok(d);
    }
    match (serde_json::from_str(raw).map_err(|e| e.to_string())?, ty) {
        (Json::String(s), SqlType::Text) => Ok(Datum::Text(s)),
        (v, ty) => Datum::from_json(&v, ty),
    }
}

/// A value read straight from its JSON text, when it has the plain shape of its type: a string
/// without escapes, an integer, a number literal, `true`, `false` or `null`.
fn direct(raw: &str, ty: SqlType) -> Option<Datum> {
    let b = raw.as_bytes();
    if raw == "null" {
        return Some(Datum::Null);
    }
    let number = b.first().is_some_and(|c| *c == b'-' || c.is_ascii_digit());
    match ty {
        SqlType::Text => {
            (b.len() >= 2 && b[0] == b'"' && !b.contains(&b'\\')).then(|| Datum::Text(raw[1..raw.len() - 1].to_owned()))
        }
        SqlType::Bigint => raw.parse::<i64>().ok().map(Datum::Int),
        SqlType::Timestamp => raw.parse::<i64>().ok().map(Datum::Timestamp),
        SqlType::Int => raw.parse::<i32>().ok().map(|n| Datum::Int(n.into())),
        SqlType::Decimal { scale, .. } if number => Decimal::from_str(raw).ok().map(|d| {
            Datum::Decimal(d.round_dp_with_strategy(u32::from(scale), RoundingStrategy::MidpointAwayFromZero))
        }),
        SqlType::Double if number => raw.parse::<f64>().ok().map(Datum::Double),
        SqlType::Boolean => match raw {
            "true" => Some(Datum::Bool(true)),
            "false" => Some(Datum::Bool(false)),
            _ => None,
        },
        _ => None,
    }
}

/// The value found for one column: by its exact name, or else by the first name (in byte
/// order, as a JSON object's fields are kept) that equals it ignoring ASCII case.
#[derive(Default)]
struct Field<'de> {
    value: Option<&'de RawValue>,
    exact: bool,
    other_name: Option<String>,
}

/// Reads an object's fields into the columns.
struct Fields<'c> {
    columns: &'c [ColumnDef],
}

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = Vec<Field<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Vec<Field<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<Field<'de>> = self.columns.iter().map(|_| Field::default()).collect();
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            if let Some(i) = self.columns.iter().position(|c| c.name == name) {
                fields[i] = Field {
                    value: Some(map.next_value()?),
                    exact: true,
                    other_name: None,
                };
                continue;
            }
            let other = self.columns.iter().zip(&fields).position(|(c, f)| {
                !f.exact && c.name.eq_ignore_ascii_case(&name) && f.other_name.as_deref().is_none_or(|o| *name <= *o)
            });
            match other {
                Some(i) => {
                    fields[i] = Field {
                        value: Some(map.next_value()?),
                        exact: false,
                        other_name: Some(name.into_owned()),
                    };
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }
}

/// A field name, borrowed from the input when it has no escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::sql::Kind;
    use proptest::prelude::*;

    fn source() -> Source {
        let col = |name: &str, ty| ColumnDef {
            name: name.into(),
            ty,
            primary_key: false,
        };
        Source {
            name: "s".into(),
            kind: Kind::Stream,
            topic: "t".into(),
            format: "json".into(),
            columns: vec![
                col("id", SqlType::Text),
                col("n", SqlType::Bigint),
                col(
                    "amount",
                    SqlType::Decimal {
                        precision: 12,
                        scale: 2,
                    },
                ),
                col("ts", SqlType::Timestamp),
                col("doc", SqlType::Json),
            ],
            timestamp: None,
            watermark_delay_ms: 0,
            query: None,
        }
    }

    fn slow(s: &Source, bytes: &[u8]) -> Result<Vec<Datum>, String> {
        let p = Payload {
            format: Format::Json,
            bytes,
        };
        super::super::exec::decode(s, &super::super::run::json_of(Some(p))?)
    }

    fn fast(s: &Source, bytes: &[u8]) -> Result<Vec<Datum>, String> {
        decode_payload(
            s,
            Some(Payload {
                format: Format::Json,
                bytes,
            }),
        )
    }

    #[test]
    fn reads_declared_columns_and_skips_the_rest() {
        let v = br#"{"ID":"a","id":"b","N":7,"extra":{"x":[1,2]},"amount":"1.005","ts":"2026-01-01T00:00:00Z","doc":{"k":[true]}}"#;
        let row = fast(&source(), v).unwrap();
        assert_eq!(row, slow(&source(), v).unwrap());
        assert_eq!(row[0], Datum::Text("b".into()));
        assert_eq!(row[1], Datum::Int(7));
    }

    #[test]
    fn errors_are_those_of_the_json_path() {
        for v in [&br#"[1]"#[..], br#"{"n":"x"}"#, b"not json", br#"{"n":1} trailing"#] {
            assert_eq!(fast(&source(), v), slow(&source(), v), "{}", String::from_utf8_lossy(v));
            assert!(fast(&source(), v).is_err());
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_json_path(
            names in proptest::collection::vec(prop_oneof!["id", "ID", "Id", "n", "N", "amount", "ts", "doc", "other", "i\\u0064"], 0..8),
            values in proptest::collection::vec(prop_oneof![
                Just("null".to_owned()), Just("\"text\"".to_owned()), Just("12".to_owned()), Just("-3.25".to_owned()),
                Just("\"7.5\"".to_owned()), Just("{\"a\":1}".to_owned()), Just("[1,\"x\"]".to_owned()), Just("true".to_owned()),
                Just("1700000000000".to_owned()), Just("\"2026-11-30T10:00:00Z\"".to_owned()),
            ], 8),
        ) {
            let body: Vec<String> = names.iter().zip(&values).map(|(n, v)| format!("\"{n}\":{v}")).collect();
            let text = format!("{{{}}}", body.join(","));
            prop_assert_eq!(fast(&source(), text.as_bytes()), slow(&source(), text.as_bytes()));
        }
    }
}
