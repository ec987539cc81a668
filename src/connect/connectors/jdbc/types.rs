//! Column values into JSON, per the README's table: integers as numbers, exact numerics as
//! decimal strings (or numbers with `numeric.mapping=best_fit`), floats as numbers, text as
//! strings, booleans, dates `YYYY-MM-DD`, times `HH:MM:SS[.ffffff]`, timestamps ISO 8601
//! (`…Z` when the column has a time zone), PostgreSQL JSON/JSONB as nested JSON, binary as
//! base64, NULL as null. A type outside the table is an error naming the column.

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;
use serde_json::{Map, Value};
use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgRow;
use sqlx::{Column as _, Row as _, TypeInfo as _};

/// How exact numerics are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Numeric {
    /// As decimal strings: no digit lost.
    Exact,
    /// As JSON numbers: integers when the value has no fraction, else doubles.
    BestFit,
}

/// A timestamp without time zone, as written (`%Y-%m-%dT%H:%M:%S%.f`).
pub(super) fn naive_text(t: &NaiveDateTime) -> String {
    plain_text(t).unwrap_or_else(|| t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
}

/// The text of [`naive_text`] written digit by digit, for years 0–9999 and no leap second
/// (`None` otherwise): chrono parses its format string on every call and the formatting
/// machinery is slow, a cost a source pays per row.
fn plain_text(t: &NaiveDateTime) -> Option<String> {
    use chrono::{Datelike as _, Timelike as _};
    let (year, nanos) = (u32::try_from(t.year()).ok()?, t.nanosecond());
    if year > 9999 || nanos >= 1_000_000_000 {
        return None;
    }
    let mut s = String::with_capacity(30);
    digits(&mut s, year, 4);
    for (sep, n) in [
        ('-', t.month()),
        ('-', t.day()),
        ('T', t.hour()),
        (':', t.minute()),
        (':', t.second()),
    ] {
        s.push(sep);
        digits(&mut s, n, 2);
    }
    match nanos {
        0 => {}
        n if n % 1_000_000 == 0 => fraction(&mut s, n / 1_000_000, 3),
        n if n % 1_000 == 0 => fraction(&mut s, n / 1_000, 6),
        n => fraction(&mut s, n, 9),
    }
    Some(s)
}

/// Appends `n` as exactly `width` decimal digits (zero-padded; `n` < 10^`width`).
fn digits(s: &mut String, n: u32, width: u32) {
    for p in (0..width).rev() {
        let d = (n / 10u32.pow(p)) % 10;
        s.push(char::from(b'0' + d as u8));
    }
}

fn fraction(s: &mut String, n: u32, width: u32) {
    s.push('.');
    digits(s, n, width);
}

/// A timestamp with time zone, as written (UTC, RFC 3339 with 0, 3, 6 or 9 fraction digits).
pub(super) fn utc_text(t: &DateTime<Utc>) -> String {
    match plain_text(&t.naive_utc()) {
        Some(s) => s + "Z",
        None => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

fn decimal(d: Decimal, mapping: Numeric) -> Value {
    match mapping {
        Numeric::Exact => Value::String(d.to_string()),
        Numeric::BestFit if d.fract().is_zero() => d.to_i64().map_or_else(|| Value::String(d.to_string()), Value::from),
        Numeric::BestFit => d.to_f64().map_or(Value::Null, Value::from),
    }
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

/// A PostgreSQL row as a JSON object, one key per column (serde_json keeps keys sorted).
pub(super) fn pg_row(row: &PgRow, mapping: Numeric) -> Result<Map<String, Value>, String> {
    let mut out = Map::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let ty = col.type_info().name();
        let value = pg_value(row, i, ty, mapping).map_err(|e| format!("column '{}' of type {ty}: {e}", col.name()))?;
        out.insert(col.name().to_owned(), value);
    }
    Ok(out)
}

fn pg_value(row: &PgRow, i: usize, ty: &str, mapping: Numeric) -> Result<Value, String> {
    fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
        row: &'r PgRow,
        i: usize,
    ) -> Result<Option<T>, String> {
        row.try_get::<Option<T>, _>(i).map_err(|e| e.to_string())
    }
    let v = match ty {
        "BOOL" => get::<bool>(row, i)?.map(Value::Bool),
        "INT2" => get::<i16>(row, i)?.map(Value::from),
        "INT4" => get::<i32>(row, i)?.map(Value::from),
        "INT8" => get::<i64>(row, i)?.map(Value::from),
        "OID" => get::<sqlx::postgres::types::Oid>(row, i)?.map(|o| Value::from(o.0)),
        "FLOAT4" => get::<f32>(row, i)?.map(|f| float(f64::from(f))),
        "FLOAT8" => get::<f64>(row, i)?.map(float),
        "NUMERIC" => get::<Decimal>(row, i)?.map(|d| decimal(d, mapping)),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "CITEXT" => get::<String>(row, i)?.map(Value::String),
        "UUID" => get::<uuid::Uuid>(row, i)?.map(|u| Value::String(u.to_string())),
        "DATE" => get::<NaiveDate>(row, i)?.map(|d| Value::String(d.to_string())),
        "TIME" => get::<NaiveTime>(row, i)?.map(|t| Value::String(t.to_string())),
        "TIMESTAMP" => get::<NaiveDateTime>(row, i)?.map(|t| Value::String(naive_text(&t))),
        "TIMESTAMPTZ" => get::<DateTime<Utc>>(row, i)?.map(|t| Value::String(utc_text(&t))),
        "JSON" | "JSONB" => get::<Value>(row, i)?,
        "BYTEA" => get::<Vec<u8>>(row, i)?.map(|b| b64(&b)),
        other => return Err(format!("type {other} cannot be mapped (cast it in a query)")),
    };
    Ok(v.unwrap_or(Value::Null))
}

/// A MariaDB/MySQL row as a JSON object, one key per column (serde_json keeps keys sorted).
pub(super) fn my_row(row: &MySqlRow, mapping: Numeric) -> Result<Map<String, Value>, String> {
    let mut out = Map::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let ty = col.type_info().name();
        let value = my_value(row, i, ty, mapping).map_err(|e| format!("column '{}' of type {ty}: {e}", col.name()))?;
        out.insert(col.name().to_owned(), value);
    }
    Ok(out)
}

fn my_value(row: &MySqlRow, i: usize, ty: &str, mapping: Numeric) -> Result<Value, String> {
    fn get<'r, T: sqlx::Decode<'r, sqlx::MySql> + sqlx::Type<sqlx::MySql>>(
        row: &'r MySqlRow,
        i: usize,
    ) -> Result<Option<T>, String> {
        row.try_get::<Option<T>, _>(i).map_err(|e| e.to_string())
    }
    let v = match ty {
        "BOOLEAN" => get::<bool>(row, i)?.map(Value::Bool),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => get::<i64>(row, i)?.map(Value::from),
        t if t.ends_with("UNSIGNED") => get::<u64>(row, i)?.map(Value::from),
        "FLOAT" => get::<f32>(row, i)?.map(|f| float(f64::from(f))),
        "DOUBLE" => get::<f64>(row, i)?.map(float),
        "DECIMAL" => get::<Decimal>(row, i)?.map(|d| decimal(d, mapping)),
        "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => {
            get::<String>(row, i)?.map(Value::String)
        }
        "JSON" => get::<Value>(row, i)?,
        "DATE" => get::<NaiveDate>(row, i)?.map(|d| Value::String(d.to_string())),
        "TIME" => get::<NaiveTime>(row, i)?.map(|t| Value::String(t.to_string())),
        "DATETIME" => get::<NaiveDateTime>(row, i)?.map(|t| Value::String(naive_text(&t))),
        "TIMESTAMP" => get::<DateTime<Utc>>(row, i)?.map(|t| Value::String(utc_text(&t))),
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BIT" => {
            get::<Vec<u8>>(row, i)?.map(|b| b64(&b))
        }
        other => return Err(format!("type {other} cannot be mapped (cast it in a query)")),
    };
    Ok(v.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The hand-written timestamp texts are chrono's, for any instant chrono holds.
        #[test]
        fn naive_text_writes_what_chrono_writes(secs in -300_000_000_000i64..300_000_000_000, nanos in 0u32..2_000_000_000, round in 0u8..4) {
            let nanos = match round {
                0 => 0,
                1 => nanos / 1_000_000 * 1_000_000,
                2 => nanos / 1_000 * 1_000,
                _ => nanos,
            };
            if let Some(t) = DateTime::from_timestamp(secs, nanos) {
                prop_assert_eq!(utc_text(&t), t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
                let t = t.naive_utc();
                prop_assert_eq!(naive_text(&t), t.format("%Y-%m-%dT%H:%M:%S%.f").to_string());
            }
        }
    }

    #[test]
    fn numerics_are_exact_or_best_fit() {
        let d: Decimal = "12.500".parse().unwrap();
        assert_eq!(decimal(d, Numeric::Exact), Value::String("12.500".into()));
        assert_eq!(decimal(d, Numeric::BestFit), serde_json::json!(12.5));
        assert_eq!(
            decimal("42.00".parse().unwrap(), Numeric::BestFit),
            serde_json::json!(42)
        );
        let t = NaiveDate::from_ymd_opt(2026, 1, 2)
            .unwrap()
            .and_hms_micro_opt(3, 4, 5, 6)
            .unwrap();
        assert_eq!(naive_text(&t), "2026-01-02T03:04:05.000006");
        assert_eq!(utc_text(&t.and_utc()), "2026-01-02T03:04:05.000006Z");
    }
}
