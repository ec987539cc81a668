//! Rows into JSON text, per the README's table: integers as numbers, exact numerics as
//! decimal strings (or numbers with `numeric.mapping=best_fit`), floats as numbers, text as
//! strings, booleans, dates `YYYY-MM-DD`, times `HH:MM:SS[.ffffff]`, timestamps ISO 8601
//! (`…Z` when the column has a time zone), PostgreSQL JSON/JSONB as nested JSON, binary as
//! base64, NULL as null. A type outside the table is an error naming the column.
//!
//! A statement's columns are looked at once (a [`Plan`]); each row is then written straight
//! into the JSON text of its value and its key ([`Row`]), with no JSON value built in between.
//! The text is what serde_json writes for the same object: compact, keys sorted.

use std::fmt::{Display, Write as _};
use std::ops::Range;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;
use serde_json::Value;
use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgRow;
use sqlx::{Column, TypeInfo as _};

use crate::connect::record::push_json_str;

/// How exact numerics are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Numeric {
    /// As decimal strings: no digit lost.
    Exact,
    /// As JSON numbers: integers when the value has no fraction, else doubles.
    BestFit,
}

/// What a source takes from each row besides its value.
#[derive(Debug, Clone, Default)]
pub(super) struct Shape {
    /// The key columns (none: records without a key).
    pub key: Vec<String>,
    /// The timestamp columns: the first that holds a timestamp is the row's.
    pub timestamps: Vec<String>,
    /// The incrementing column.
    pub incrementing: Option<String>,
}

/// A row read, as a source hands it out.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    /// The row as a JSON object's text, one key per column.
    pub value: String,
    /// The key columns as a JSON object's text (`None`: the shape has no key).
    pub key: Option<String>,
    /// The text of the row's timestamp, as written in the value.
    pub timestamp: Option<String>,
    /// The incrementing column's value, when it is an integer.
    pub incrementing: Option<i64>,
}

/// How the rows of one statement are written.
#[derive(Debug)]
pub(super) struct Plan<K> {
    /// The columns, sorted by name (of equal names the last, as a JSON object keeps it).
    cells: Vec<Cell<K>>,
    /// The key columns sorted by name: their `"name":` and their cell (`None`: not read).
    key: Option<Vec<(String, Option<usize>)>>,
    /// The cells of the timestamp columns, in the configured order.
    timestamps: Vec<usize>,
    incrementing: Option<usize>,
}

#[derive(Debug)]
struct Cell<K> {
    /// The column's index in the row.
    column: usize,
    /// `"name":`.
    label: String,
    kind: K,
}

impl<K: Copy> Plan<K> {
    /// The plan for rows of these columns (name and type name); an error names a column whose
    /// type has no mapping.
    pub fn new<C: Column>(columns: &[C], kind_of: impl Fn(&str) -> Option<K>, shape: &Shape) -> Result<Self, String> {
        let mut named = Vec::with_capacity(columns.len());
        for (i, col) in columns.iter().enumerate() {
            let ty = col.type_info().name();
            let kind = kind_of(ty).ok_or_else(|| {
                format!(
                    "column '{}' of type {ty}: type {ty} cannot be mapped (cast it in a query)",
                    col.name()
                )
            })?;
            named.push((col.name(), i, kind));
        }
        // Sorted by name, keeping the order of equal names; then the last of each name.
        named.sort_by(|a, b| a.0.cmp(b.0));
        named.reverse();
        named.dedup_by(|later, first| later.0 == first.0);
        named.reverse();
        let find = |name: &str| named.iter().position(|(n, _, _)| *n == name);
        let key = (!shape.key.is_empty()).then(|| {
            let mut key: Vec<&String> = shape.key.iter().collect();
            key.sort();
            key.dedup();
            key.into_iter().map(|k| (label(k), find(k))).collect()
        });
        Ok(Self {
            timestamps: shape.timestamps.iter().filter_map(|c| find(c)).collect(),
            incrementing: shape.incrementing.as_deref().and_then(find),
            key,
            cells: named
                .into_iter()
                .map(|(name, column, kind)| Cell {
                    column,
                    label: label(name),
                    kind,
                })
                .collect(),
        })
    }

    /// Writes a row: `cell` writes the JSON text of column `i`, of kind `K`, at the end of the
    /// text it is given. `spans` is scratch space; `hint` the text's expected length.
    pub fn write(
        &self,
        cell: impl Fn(usize, K, &mut String) -> Result<(), String>,
        spans: &mut Vec<Range<usize>>,
        hint: usize,
    ) -> Result<Row, String> {
        let mut value = String::with_capacity(hint);
        spans.clear();
        value.push('{');
        for (n, c) in self.cells.iter().enumerate() {
            if n > 0 {
                value.push(',');
            }
            value.push_str(&c.label);
            let start = value.len();
            cell(c.column, c.kind, &mut value)?;
            spans.push(start..value.len());
        }
        value.push('}');
        let text = |cell: usize| value.get(spans[cell].clone()).unwrap_or("null");
        let key = self.key.as_ref().map(|key| {
            let mut out = String::with_capacity(16 * key.len());
            out.push('{');
            for (n, (label, cell)) in key.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(label);
                out.push_str(cell.map_or("null", text));
            }
            out.push('}');
            out
        });
        let timestamp = self.timestamps.iter().find_map(|&c| unquote(text(c)));
        let incrementing = self.incrementing.and_then(|c| text(c).parse().ok());
        Ok(Row {
            value,
            key,
            timestamp,
            incrementing,
        })
    }
}

/// `"name":` for a column called `name`.
fn label(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 3);
    push_json_str(&mut s, name);
    s.push(':');
    s
}

/// The string a JSON string's text holds (`None`: not a string).
fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str(text).ok()
    } else {
        Some(inner.to_owned())
    }
}

/// Appends a timestamp without time zone, as written (`%Y-%m-%dT%H:%M:%S%.f`).
fn push_naive(s: &mut String, t: &NaiveDateTime) {
    if !push_plain(s, t) {
        let _ = write!(s, "{}", t.format("%Y-%m-%dT%H:%M:%S%.f"));
    }
}

/// A timestamp with time zone, as written (UTC, RFC 3339 with 0, 3, 6 or 9 fraction digits).
pub(super) fn utc_text(t: &DateTime<Utc>) -> String {
    let mut s = String::with_capacity(31);
    push_utc(&mut s, t);
    s
}

fn push_utc(s: &mut String, t: &DateTime<Utc>) {
    if push_plain(s, &t.naive_utc()) {
        s.push('Z');
    } else {
        s.push_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
}

/// Appends the text of [`push_naive`] digit by digit, for years 0–9999 and no leap second
/// (`false`, and nothing written, otherwise): chrono parses its format string on every call and
/// the formatting machinery is slow, a cost a source pays per row.
fn push_plain(s: &mut String, t: &NaiveDateTime) -> bool {
    use chrono::{Datelike as _, Timelike as _};
    let (Ok(year), nanos) = (u32::try_from(t.year()), t.nanosecond()) else {
        return false;
    };
    if year > 9999 || nanos >= 1_000_000_000 {
        return false;
    }
    digits(s, year, 4);
    for (sep, n) in [
        ('-', t.month()),
        ('-', t.day()),
        ('T', t.hour()),
        (':', t.minute()),
        (':', t.second()),
    ] {
        s.push(sep);
        digits(s, n, 2);
    }
    match nanos {
        0 => {}
        n if n % 1_000_000 == 0 => fraction(s, n / 1_000_000, 3),
        n if n % 1_000 == 0 => fraction(s, n / 1_000, 6),
        n => fraction(s, n, 9),
    }
    true
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

fn decimal(d: Decimal, mapping: Numeric) -> Value {
    match mapping {
        Numeric::Exact => Value::String(d.to_string()),
        Numeric::BestFit if d.fract().is_zero() => d.to_i64().map_or_else(|| Value::String(d.to_string()), Value::from),
        Numeric::BestFit => d.to_f64().map_or(Value::Null, Value::from),
    }
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

/// The writers of one cell's JSON text, shared by both databases.
mod put {
    use super::*;

    pub fn null(out: &mut String) {
        out.push_str("null");
    }

    pub fn bool(out: &mut String, b: bool) {
        out.push_str(if b { "true" } else { "false" });
    }

    pub fn int(out: &mut String, n: impl itoa::Integer) {
        out.push_str(itoa::Buffer::new().format(n));
    }

    pub fn float(out: &mut String, f: f64) {
        value(out, &super::float(f));
    }

    pub fn decimal(out: &mut String, d: Decimal, mapping: Numeric) {
        match mapping {
            Numeric::Exact => quoted(out, d),
            Numeric::BestFit => value(out, &super::decimal(d, mapping)),
        }
    }

    /// A value whose text holds nothing JSON escapes (digits, dashes, colons, dots).
    pub fn quoted(out: &mut String, v: impl Display) {
        out.push('"');
        let _ = write!(out, "{v}");
        out.push('"');
    }

    pub fn naive(out: &mut String, t: &NaiveDateTime) {
        out.push('"');
        push_naive(out, t);
        out.push('"');
    }

    pub fn utc(out: &mut String, t: &DateTime<Utc>) {
        out.push('"');
        push_utc(out, t);
        out.push('"');
    }

    pub fn bytes(out: &mut String, b: &[u8]) {
        out.push('"');
        base64::engine::general_purpose::STANDARD.encode_string(b, out);
        out.push('"');
    }

    pub fn value(out: &mut String, v: &Value) {
        out.push_str(&v.to_string());
    }
}

/// Writes a decoded cell, or `null`.
fn cell<T>(out: &mut String, v: Option<T>, write: impl FnOnce(&mut String, T)) {
    match v {
        Some(v) => write(out, v),
        None => put::null(out),
    }
}

/// Column `i` of a row as a `T` (`None`: NULL); an error names the column.
fn get<'r, R, T>(row: &'r R, i: usize) -> Result<Option<T>, String>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    row.try_get::<Option<T>, _>(i).map_err(|e| {
        let col = &row.columns()[i];
        format!("column '{}' of type {}: {e}", col.name(), col.type_info().name())
    })
}

/// How a PostgreSQL column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PgKind {
    Bool,
    I16,
    I32,
    I64,
    Oid,
    F32,
    F64,
    Numeric,
    Text,
    Uuid,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Json,
    Bytea,
}

impl PgKind {
    /// The kind of a type name (`None`: not mapped).
    pub fn of(ty: &str) -> Option<Self> {
        Some(match ty {
            "BOOL" => Self::Bool,
            "INT2" => Self::I16,
            "INT4" => Self::I32,
            "INT8" => Self::I64,
            "OID" => Self::Oid,
            "FLOAT4" => Self::F32,
            "FLOAT8" => Self::F64,
            "NUMERIC" => Self::Numeric,
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "CITEXT" => Self::Text,
            "UUID" => Self::Uuid,
            "DATE" => Self::Date,
            "TIME" => Self::Time,
            "TIMESTAMP" => Self::Timestamp,
            "TIMESTAMPTZ" => Self::TimestampTz,
            "JSON" | "JSONB" => Self::Json,
            "BYTEA" => Self::Bytea,
            _ => return None,
        })
    }
}

/// Writes column `i` of a PostgreSQL row; an error names the column.
pub(super) fn pg_cell(row: &PgRow, i: usize, kind: PgKind, mapping: Numeric, out: &mut String) -> Result<(), String> {
    match kind {
        PgKind::Bool => cell(out, get::<_, bool>(row, i)?, put::bool),
        PgKind::I16 => cell(out, get::<_, i16>(row, i)?, put::int),
        PgKind::I32 => cell(out, get::<_, i32>(row, i)?, put::int),
        PgKind::I64 => cell(out, get::<_, i64>(row, i)?, put::int),
        PgKind::Oid => cell(out, get::<_, sqlx::postgres::types::Oid>(row, i)?, |o, v| {
            put::int(o, v.0)
        }),
        PgKind::F32 => cell(out, get::<_, f32>(row, i)?, |o, f| put::float(o, f64::from(f))),
        PgKind::F64 => cell(out, get::<_, f64>(row, i)?, put::float),
        PgKind::Numeric => cell(out, get::<_, Decimal>(row, i)?, |o, d| put::decimal(o, d, mapping)),
        PgKind::Text => cell(out, get::<_, &str>(row, i)?, push_json_str),
        PgKind::Uuid => cell(out, get::<_, uuid::Uuid>(row, i)?, put::quoted),
        PgKind::Date => cell(out, get::<_, NaiveDate>(row, i)?, put::quoted),
        PgKind::Time => cell(out, get::<_, NaiveTime>(row, i)?, put::quoted),
        PgKind::Timestamp => cell(out, get::<_, NaiveDateTime>(row, i)?, |o, t| put::naive(o, &t)),
        PgKind::TimestampTz => cell(out, get::<_, DateTime<Utc>>(row, i)?, |o, t| put::utc(o, &t)),
        PgKind::Json => cell(out, get::<_, Value>(row, i)?, |o, v| put::value(o, &v)),
        PgKind::Bytea => cell(out, get::<_, &[u8]>(row, i)?, put::bytes),
    }
    Ok(())
}

/// How a MariaDB/MySQL column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MyKind {
    Bool,
    Int,
    Unsigned,
    F32,
    F64,
    Decimal,
    Text,
    Json,
    Date,
    Time,
    DateTime,
    Timestamp,
    Binary,
}

impl MyKind {
    /// The kind of a type name (`None`: not mapped).
    pub fn of(ty: &str) -> Option<Self> {
        Some(match ty {
            "BOOLEAN" => Self::Bool,
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => Self::Int,
            t if t.ends_with("UNSIGNED") => Self::Unsigned,
            "FLOAT" => Self::F32,
            "DOUBLE" => Self::F64,
            "DECIMAL" => Self::Decimal,
            "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => Self::Text,
            "JSON" => Self::Json,
            "DATE" => Self::Date,
            "TIME" => Self::Time,
            "DATETIME" => Self::DateTime,
            "TIMESTAMP" => Self::Timestamp,
            "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BIT" => Self::Binary,
            _ => return None,
        })
    }
}

/// Writes column `i` of a MariaDB/MySQL row; an error names the column.
pub(super) fn my_cell(
    row: &MySqlRow,
    i: usize,
    kind: MyKind,
    mapping: Numeric,
    out: &mut String,
) -> Result<(), String> {
    match kind {
        MyKind::Bool => cell(out, get::<_, bool>(row, i)?, put::bool),
        MyKind::Int => cell(out, get::<_, i64>(row, i)?, put::int),
        MyKind::Unsigned => cell(out, get::<_, u64>(row, i)?, put::int),
        MyKind::F32 => cell(out, get::<_, f32>(row, i)?, |o, f| put::float(o, f64::from(f))),
        MyKind::F64 => cell(out, get::<_, f64>(row, i)?, put::float),
        MyKind::Decimal => cell(out, get::<_, Decimal>(row, i)?, |o, d| put::decimal(o, d, mapping)),
        MyKind::Text => cell(out, get::<_, &str>(row, i)?, push_json_str),
        MyKind::Json => cell(out, get::<_, Value>(row, i)?, |o, v| put::value(o, &v)),
        MyKind::Date => cell(out, get::<_, NaiveDate>(row, i)?, put::quoted),
        MyKind::Time => cell(out, get::<_, NaiveTime>(row, i)?, put::quoted),
        MyKind::DateTime => cell(out, get::<_, NaiveDateTime>(row, i)?, |o, t| put::naive(o, &t)),
        MyKind::Timestamp => cell(out, get::<_, DateTime<Utc>>(row, i)?, |o, t| put::utc(o, &t)),
        MyKind::Binary => cell(out, get::<_, &[u8]>(row, i)?, put::bytes),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn naive_text(t: &NaiveDateTime) -> String {
        let mut s = String::new();
        push_naive(&mut s, t);
        s
    }

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
