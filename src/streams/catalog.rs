//! The catalog: declared streams and tables (a topic, its columns, key, event time and
//! watermark) and persistent queries, kept in the state table `streams/catalog` so that they
//! survive restarts.

use serde::{Deserialize, Serialize};

use super::sql::{ColumnDef, Emit, Kind, OptionValue, Options, SqlError};
use super::value::SqlType;

/// A stream or table over a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Source {
    /// Its name (lower case).
    pub name: String,
    /// Stream or table.
    #[schema(value_type = String)]
    pub kind: Kind,
    /// The topic it reads (or a query writes).
    pub topic: String,
    /// The value format (`json`).
    pub format: String,
    /// Its columns.
    #[schema(value_type = Vec<Object>)]
    pub columns: Vec<ColumnDef>,
    /// The event-time column; `None`: the record timestamp.
    pub timestamp: Option<String>,
    /// How far behind the newest event time the watermark trails, ms.
    pub watermark_delay_ms: i64,
    /// The persistent query that writes it, for `CREATE … AS SELECT`.
    pub query: Option<String>,
}

impl Source {
    /// The table's primary key columns (empty: the record key).
    pub fn key_columns(&self) -> Vec<&ColumnDef> {
        self.columns.iter().filter(|c| c.primary_key).collect()
    }

    /// The position of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A persistent query as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredQuery {
    /// Its id (e.g. `CTAS_ORDERS_PER_HOUR_1`).
    pub id: String,
    /// The statement that started it.
    pub sql: String,
    /// The stream or table it writes.
    pub sink: String,
    /// The sink's kind.
    pub sink_kind: Kind,
    /// Its emit mode.
    pub emit: Emit,
    /// Its options (`grace`, `retention`, `idle_timeout`, `errors_topic`, …) as given.
    pub options: Vec<(String, String)>,
    /// The principal that created it, for the record.
    pub created_by: String,
    /// The grants of its principal.
    pub grants: Vec<crate::broker::Permission>,
}

/// Reads an option as text.
pub fn option_text(o: &Options, key: &str) -> Option<String> {
    o.get(key).map(|v| match v {
        OptionValue::Text(s) => s.clone(),
        OptionValue::Number(n) => format!("{n}"),
        OptionValue::Duration(ms) => format!("{ms}"),
    })
}

/// Reads an option as a duration in ms: an `INTERVAL`, or a number of ms.
pub fn option_ms(o: &Options, key: &str, line: usize, column: usize) -> Result<Option<i64>, SqlError> {
    match o.get(key) {
        None => Ok(None),
        Some(OptionValue::Duration(ms)) => Ok(Some(*ms)),
        Some(OptionValue::Number(n)) if *n >= 0.0 => Ok(Some(*n as i64)),
        Some(OptionValue::Text(t)) => t.trim().parse::<i64>().map(Some).map_err(|_| {
            SqlError::at(
                line,
                column,
                format!("{key}: give an INTERVAL or a number of ms, not '{t}'"),
            )
        }),
        Some(other) => Err(SqlError::at(line, column, format!("{key}: invalid value {other:?}"))),
    }
}

/// Builds a declared source from `CREATE STREAM|TABLE name (…) WITH (…)`.
pub fn declare(
    kind: Kind,
    name: &str,
    columns: Vec<ColumnDef>,
    options: &Options,
    line: usize,
    column: usize,
) -> Result<Source, SqlError> {
    let err = |m: String| SqlError::at(line, column, m);
    for key in options.keys() {
        if ![
            "topic",
            "kafka_topic",
            "format",
            "value_format",
            "timestamp",
            "watermark_delay",
            "partitions",
            "key",
        ]
        .contains(&key.as_str())
        {
            return Err(err(format!(
                "unknown option '{key}' (topic, format, timestamp, watermark_delay, partitions, key)"
            )));
        }
    }
    if columns.is_empty() {
        return Err(err(format!("{name}: declare its columns")));
    }
    let topic = option_text(options, "topic")
        .or_else(|| option_text(options, "kafka_topic"))
        .ok_or_else(|| err(format!("{name}: WITH (topic = '…') names the topic it reads")))?;
    crate::broker::topics::validate_topic_name(&topic).map_err(|e| err(e.detail))?;
    let format = option_text(options, "format")
        .or_else(|| option_text(options, "value_format"))
        .unwrap_or_else(|| "json".into())
        .to_lowercase();
    if format != "json" {
        return Err(err(format!("format '{format}' is not supported (json)")));
    }
    let mut columns = columns;
    if let Some(key) = option_text(options, "key") {
        let key = key.to_lowercase();
        let c = columns
            .iter_mut()
            .find(|c| c.name == key)
            .ok_or_else(|| err(format!("key column '{key}' is not declared")))?;
        c.primary_key = true;
    }
    if kind == Kind::Stream && columns.iter().any(|c| c.primary_key) {
        return Err(err("a stream has no primary key; declare a TABLE".into()));
    }
    let timestamp = option_text(options, "timestamp").map(|t| t.to_lowercase());
    if let Some(t) = &timestamp {
        let c = columns
            .iter()
            .find(|c| &c.name == t)
            .ok_or_else(|| err(format!("timestamp column '{t}' is not declared")))?;
        if !matches!(c.ty, SqlType::Timestamp | SqlType::Bigint | SqlType::Int) {
            return Err(err(format!(
                "timestamp column '{t}' must be TIMESTAMP or BIGINT, not {}",
                c.ty
            )));
        }
    }
    Ok(Source {
        name: name.to_owned(),
        kind,
        topic,
        format,
        columns,
        timestamp,
        watermark_delay_ms: option_ms(options, "watermark_delay", line, column)?.unwrap_or(0),
        query: None,
    })
}
