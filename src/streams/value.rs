//! SQL types and values: how a JSON field is read as a declared column type, how values
//! compare and compute, and how they are written back as JSON.

use std::cmp::Ordering;
use std::fmt;
use std::io::Write as _;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A column's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum SqlType {
    /// `BOOLEAN`.
    Boolean,
    /// `INT` (32-bit).
    Int,
    /// `BIGINT`.
    Bigint,
    /// `DOUBLE`.
    Double,
    /// `DECIMAL(p, s)`: exact.
    Decimal {
        /// Precision.
        precision: u8,
        /// Scale.
        scale: u8,
    },
    /// `TEXT` (also `VARCHAR`, `STRING`).
    Text,
    /// `TIMESTAMP`: ms since the epoch, read from epoch milliseconds or ISO-8601 text.
    Timestamp,
    /// Any JSON value (nested objects and arrays).
    Json,
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boolean => f.write_str("BOOLEAN"),
            Self::Int => f.write_str("INT"),
            Self::Bigint => f.write_str("BIGINT"),
            Self::Double => f.write_str("DOUBLE"),
            Self::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            Self::Text => f.write_str("TEXT"),
            Self::Timestamp => f.write_str("TIMESTAMP"),
            Self::Json => f.write_str("JSON"),
        }
    }
}

/// A value in a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (INT and BIGINT).
    Int(i64),
    /// A double.
    Double(f64),
    /// An exact decimal.
    Decimal(Decimal),
    /// Text.
    Text(String),
    /// A timestamp, ms since the epoch.
    Timestamp(i64),
    /// A nested JSON value (objects and arrays).
    Json(Json),
}

impl Datum {
    /// Whether it is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// Reads a JSON field as a declared type; `Err` says why it does not fit (an error for this
    /// record, not for the query).
    pub fn from_json(v: &Json, ty: SqlType) -> Result<Self, String> {
        if v.is_null() {
            return Ok(Self::Null);
        }
        let mismatch = || format!("expected {ty}, got {v}");
        Ok(match ty {
            SqlType::Boolean => Self::Bool(v.as_bool().ok_or_else(mismatch)?),
            SqlType::Int => {
                let n = int_of(v).ok_or_else(mismatch)?;
                i32::try_from(n).map_err(|_| format!("{n} does not fit INT"))?;
                Self::Int(n)
            }
            SqlType::Bigint => Self::Int(int_of(v).ok_or_else(mismatch)?),
            SqlType::Double => Self::Double(match v {
                Json::Number(n) => n.as_f64().ok_or_else(mismatch)?,
                Json::String(s) => s.trim().parse().map_err(|_| mismatch())?,
                _ => return Err(mismatch()),
            }),
            SqlType::Decimal { scale, .. } => {
                let d = match v {
                    Json::Number(n) => Decimal::from_str(&n.to_string())
                        .or_else(|_| Decimal::from_scientific(&n.to_string()))
                        .map_err(|_| mismatch())?,
                    Json::String(s) => Decimal::from_str(s.trim()).map_err(|_| mismatch())?,
                    _ => return Err(mismatch()),
                };
                Self::Decimal(
                    d.round_dp_with_strategy(u32::from(scale), rust_decimal::RoundingStrategy::MidpointAwayFromZero),
                )
            }
            SqlType::Text => Self::Text(match v {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                Json::Bool(b) => b.to_string(),
                _ => return Err(mismatch()),
            }),
            SqlType::Timestamp => Self::Timestamp(match v {
                Json::Number(n) => n.as_i64().ok_or_else(mismatch)?,
                Json::String(s) => parse_timestamp(s).ok_or_else(mismatch)?,
                _ => return Err(mismatch()),
            }),
            SqlType::Json => Self::Json(v.clone()),
        })
    }

    /// The value as JSON: decimals as numbers (exact when a double holds them, else as text),
    /// timestamps as epoch milliseconds.
    pub fn to_json(&self) -> Json {
        match self {
            Self::Null => Json::Null,
            Self::Bool(b) => Json::Bool(*b),
            Self::Int(n) => Json::from(*n),
            Self::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
            Self::Decimal(d) => decimal_json(d),
            Self::Text(s) => Json::String(s.clone()),
            Self::Timestamp(t) => Json::from(*t),
            Self::Json(v) => v.clone(),
        }
    }

    /// A value read from JSON without a declared type (nested fields, untyped expressions).
    pub fn from_untyped(v: &Json) -> Self {
        match v {
            Json::Null => Self::Null,
            Json::Bool(b) => Self::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Self::Int(i),
                None => Self::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => Self::Text(s.clone()),
            other => Self::Json(other.clone()),
        }
    }

    /// The value as a number for arithmetic.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(n) | Self::Timestamp(n) => Some(*n as f64),
            Self::Double(d) => Some(*d),
            Self::Decimal(d) => d.to_string().parse().ok(),
            _ => None,
        }
    }

    /// The value as an integer (truncating doubles and decimals).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(n) | Self::Timestamp(n) => Some(*n),
            Self::Double(d) if d.is_finite() => Some(*d as i64),
            Self::Decimal(d) => d.trunc().to_string().parse().ok(),
            Self::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Truthiness for WHERE and HAVING: only TRUE passes.
    pub fn is_true(&self) -> bool {
        matches!(self, Self::Bool(true))
    }

    /// SQL comparison: `None` when either side is NULL or the types do not compare.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        use Datum::*;
        match (self, other) {
            (Null, _) | (_, Null) => None,
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Text(a), Text(b)) => Some(a.cmp(b)),
            (Decimal(a), Decimal(b)) => Some(a.cmp(b)),
            (Int(a), Int(b)) | (Timestamp(a), Timestamp(b)) | (Int(a), Timestamp(b)) | (Timestamp(a), Int(b)) => {
                Some(a.cmp(b))
            }
            (Decimal(a), Int(b)) => Some(a.cmp(&rust_decimal::Decimal::from(*b))),
            (Int(a), Decimal(b)) => Some(rust_decimal::Decimal::from(*a).cmp(b)),
            (Json(a), Json(b)) => (a == b).then_some(Ordering::Equal),
            (a, b) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        }
    }

    /// A total order for grouping and sorting keys (NULL first, then by type and value).
    pub fn key_bytes(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }
}

impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => f.write_str(s),
            Self::Null => f.write_str("NULL"),
            other => write!(f, "{}", other.to_json()),
        }
    }
}

fn int_of(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
        }),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// How a decimal is written as JSON: an integer or a number when that is exact, else its text.
enum DecimalJson {
    Int(i64),
    Float(f64),
    Text(String),
}

fn decimal_repr(d: &Decimal) -> DecimalJson {
    let n = d.normalize();
    if n.scale() == 0
        && let Ok(i) = i64::try_from(n.mantissa())
    {
        return DecimalJson::Int(i);
    }
    let text = n.to_string();
    if let Ok(f) = text.parse::<f64>()
        && let Some(num) = serde_json::Number::from_f64(f)
    {
        let shown = num.to_string();
        if shown == text || shown.parse::<Decimal>().ok() == Some(n) {
            return DecimalJson::Float(f);
        }
    }
    DecimalJson::Text(text)
}

fn decimal_json(d: &Decimal) -> Json {
    match decimal_repr(d) {
        DecimalJson::Int(i) => Json::from(i),
        DecimalJson::Float(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        DecimalJson::Text(t) => Json::String(t),
    }
}

impl Datum {
    /// Appends the text of [`Self::to_json`] to `buf` without building the JSON value.
    pub fn write_json(&self, buf: &mut Vec<u8>) {
        let written = match self {
            Self::Null => buf.write_all(b"null"),
            Self::Bool(b) => buf.write_all(if *b { b"true" } else { b"false" }),
            Self::Int(n) | Self::Timestamp(n) => buf.write_all(itoa::Buffer::new().format(*n).as_bytes()),
            Self::Double(d) => serde_json::to_writer(&mut *buf, d).map_err(std::io::Error::from),
            Self::Decimal(d) => match decimal_repr(d) {
                DecimalJson::Int(i) => buf.write_all(itoa::Buffer::new().format(i).as_bytes()),
                DecimalJson::Float(f) => serde_json::to_writer(&mut *buf, &f).map_err(std::io::Error::from),
                DecimalJson::Text(t) => serde_json::to_writer(&mut *buf, &t).map_err(std::io::Error::from),
            },
            Self::Text(s) => serde_json::to_writer(&mut *buf, s).map_err(std::io::Error::from),
            Self::Json(v) => serde_json::to_writer(&mut *buf, v).map_err(std::io::Error::from),
        };
        written.expect("writing JSON into memory cannot fail");
    }
}

/// Reads an ISO-8601 timestamp (`2026-11-30T10:15:00Z`, with offset or fraction, or a date) or
/// epoch milliseconds given as text, as ms since the epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// Writes ms since the epoch as ISO-8601 UTC with milliseconds.
pub fn format_timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_fields_read_as_declared_types() {
        let d = |v: Json, t| Datum::from_json(&v, t);
        assert_eq!(d(json!(3), SqlType::Int), Ok(Datum::Int(3)));
        assert!(d(json!(3_000_000_000i64), SqlType::Int).is_err());
        assert_eq!(
            d(
                json!("12.305"),
                SqlType::Decimal {
                    precision: 12,
                    scale: 2
                }
            ),
            Ok(Datum::Decimal("12.31".parse().unwrap()))
        );
        assert_eq!(
            d(json!("2026-11-30T00:00:01Z"), SqlType::Timestamp),
            Ok(Datum::Timestamp(1_795_996_801_000))
        );
        assert_eq!(d(json!(1000), SqlType::Timestamp), Ok(Datum::Timestamp(1000)));
        assert!(d(json!("x"), SqlType::Bigint).is_err());
        assert_eq!(d(json!(null), SqlType::Bigint), Ok(Datum::Null));
        assert_eq!(d(json!({"a": 1}), SqlType::Json), Ok(Datum::Json(json!({"a": 1}))));
    }

    #[test]
    fn decimals_stay_exact_and_print_as_numbers() {
        let a: Decimal = "0.1".parse().unwrap();
        let b: Decimal = "0.2".parse().unwrap();
        assert_eq!(Datum::Decimal(a + b).to_json(), json!(0.3));
        assert_eq!(Datum::Decimal("25.50".parse().unwrap()).to_json(), json!(25.5));
        assert_eq!(
            Datum::Int(2).compare(&Datum::Decimal("1.5".parse().unwrap())),
            Some(Ordering::Greater)
        );
        assert_eq!(Datum::Null.compare(&Datum::Int(1)), None);
    }

    /// Decimals as JSON, the plain way: the shortcuts of `decimal_repr` must agree with it.
    fn reference_decimal_json(d: &Decimal) -> Json {
        let n = d.normalize();
        if n.fract().is_zero()
            && let Ok(i) = n.to_string().parse::<i64>()
        {
            return Json::from(i);
        }
        let text = n.to_string();
        match text.parse::<f64>() {
            Ok(f)
                if serde_json::Number::from_f64(f)
                    .is_some_and(|x| x.to_string().parse::<Decimal>().ok() == Some(n)) =>
            {
                serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
            }
            _ => Json::String(text),
        }
    }

    proptest::proptest! {
        #[test]
        fn decimals_are_written_as_the_plain_way_writes_them(mantissa in proptest::num::i64::ANY, small in -100_000i64..100_000, scale in 0u32..20) {
            for d in [Decimal::new(mantissa, scale), Decimal::new(small, scale % 5)] {
                proptest::prop_assert_eq!(decimal_json(&d), reference_decimal_json(&d));
            }
        }

        #[test]
        fn written_json_is_the_text_of_the_json_value(
            i: i64,
            f in proptest::num::f64::ANY,
            mantissa in proptest::num::i64::ANY,
            scale in 0u32..20,
            text in ".*",
        ) {
            let values = [
                Datum::Null,
                Datum::Bool(i % 2 == 0),
                Datum::Int(i),
                Datum::Timestamp(i),
                Datum::Double(f),
                Datum::Decimal(Decimal::new(mantissa, scale)),
                Datum::Decimal(Decimal::new(i % 100_000, scale % 4)),
                Datum::Text(text.clone()),
                Datum::Json(json!({"t": text, "n": [i, f.is_finite()]})),
            ];
            for d in values {
                let mut buf = Vec::new();
                d.write_json(&mut buf);
                proptest::prop_assert_eq!(String::from_utf8(buf).unwrap(), d.to_json().to_string());
            }
        }
    }
}
