//! The JDBC source task: reads its share of the tables (or the custom query) in the
//! configured mode and hands out rows with their source offsets, which the runtime writes in
//! the same transaction as the records.
//!
//! - `bulk`: the whole table each `poll.interval.ms`.
//! - `incrementing`: rows with the column above the last one read, in its order.
//! - `timestamp`: rows with a timestamp after the last one read and before the database's
//!   clock minus `timestamp.delay.interval.ms`; a batch never ends inside a group of equal
//!   timestamps, so no row of the group is skipped.
//! - `timestamp+incrementing`: rows after the last (timestamp, id) pair, in that order.
//!
//! Rows of a transaction that commits late are read as long as it commits within the delay:
//! the upper bound keeps the reader behind the clock by that much.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::db::{Dialect, Pool, Target};
use super::query::{self, Bind, Failure, Rows};
use super::types::{Numeric, Row, Shape};
use crate::connect::plugin::{SourceBatch, SourceContext, SourceTask, TaskError};
use crate::connect::record::{ConnectRecord, JsonText};

/// How rows are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Everything, every time.
    Bulk,
    /// By a strictly increasing column.
    Incrementing,
    /// By a timestamp.
    Timestamp,
    /// By a timestamp, then an increasing column.
    TimestampIncrementing,
}

impl Mode {
    /// Reads `mode`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "bulk" => Self::Bulk,
            "incrementing" => Self::Incrementing,
            "timestamp" => Self::Timestamp,
            "timestamp+incrementing" => Self::TimestampIncrementing,
            _ => return None,
        })
    }

    fn incrementing(self) -> bool {
        matches!(self, Self::Incrementing | Self::TimestampIncrementing)
    }

    fn timestamp(self) -> bool {
        matches!(self, Self::Timestamp | Self::TimestampIncrementing)
    }
}

/// The source's settings.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub target: Target,
    pub mode: Mode,
    pub incrementing: String,
    pub timestamps: Vec<String>,
    /// Tables to read (empty: every table of the schema but the excluded ones).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub query: Option<String>,
    pub topic_prefix: String,
    pub poll_interval: Duration,
    pub batch_max_rows: usize,
    pub delay_ms: i64,
    /// `timestamp.initial`: ms since the epoch, or -1 for the current time.
    pub timestamp_initial: Option<i64>,
    pub validate_non_null: bool,
    pub numeric: Numeric,
    /// This task's share: tables whose index modulo `tasks` is `task`.
    pub tasks: usize,
}

/// Where a table has been read to.
#[derive(Debug, Clone, Default, PartialEq)]
struct Offset {
    /// The last timestamp read, as written in records, and its column type.
    timestamp: Option<(String, String)>,
    incrementing: Option<i64>,
}

impl Offset {
    fn from_json(v: &Value) -> Self {
        let timestamp = v["timestamp"].as_str().map(|t| {
            let ty = v["timestamp_type"].as_str().unwrap_or("TIMESTAMP").to_owned();
            (t.to_owned(), ty)
        });
        Self {
            timestamp,
            incrementing: v["incrementing"].as_i64(),
        }
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        if let Some((t, ty)) = &self.timestamp {
            o.insert("timestamp".into(), Value::String(t.clone()));
            o.insert("timestamp_type".into(), Value::String(ty.clone()));
        }
        if let Some(i) = self.incrementing {
            o.insert("incrementing".into(), Value::from(i));
        }
        Value::Object(o)
    }
}

/// One table (or the query) and how far it has been read.
struct Reader {
    /// `FROM` clause: a quoted table or the query in parentheses.
    from: String,
    topic: String,
    partition: Value,
    offset: Offset,
    /// The key columns, and the columns the mode reads offsets from.
    shape: Arc<Shape>,
    next_poll: Instant,
    /// Bulk rows not handed out yet.
    pending: Vec<Row>,
    checked: bool,
    table: Option<String>,
    /// The next rows, being read while the ones before them are written.
    ahead: Option<Ahead>,
}

/// A query of the rows after a reader's offset, started on a task of its own when a full batch
/// was read: the database reads the next rows, and they are mapped to JSON, while the rows
/// before them are written. Dropping it (the task stops or fails) cancels the query.
struct Ahead(tokio::task::JoinHandle<Result<Rows, TaskError>>);

impl Ahead {
    async fn rows(mut self) -> Result<Rows, TaskError> {
        (&mut self.0)
            .await
            .map_err(|e| TaskError::fatal(format!("reading rows ahead: {e}")))?
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The JDBC source task.
pub(super) struct Task {
    settings: Settings,
    context: SourceContext,
    pool: Pool,
    readers: Option<Vec<Reader>>,
    next: usize,
}

impl Task {
    pub(super) fn new(settings: Settings, context: SourceContext) -> Self {
        let pool = settings.target.pool(2, Duration::from_secs(10));
        Self {
            settings,
            context,
            pool,
            readers: None,
            next: 0,
        }
    }

    fn dialect(&self) -> Dialect {
        self.settings.target.dialect
    }

    /// This task's tables (or its query), with their committed offsets.
    async fn readers(&self) -> Result<Vec<Reader>, TaskError> {
        let s = &self.settings;
        if let Some(q) = &s.query {
            let partition = json!({"query": q});
            return Ok(vec![self.reader(
                format!("({q}) weir_query"),
                s.topic_prefix.clone(),
                partition,
                None,
                Vec::new(),
            )]);
        }
        let mut tables = if s.include.is_empty() {
            query::tables(&self.pool)
                .await
                .map_err(|e| s.target.task_error("listing the tables", &e))?
        } else {
            s.include.clone()
        };
        tables.retain(|t| !s.exclude.contains(t));
        let mut readers = Vec::new();
        for (i, table) in tables.into_iter().enumerate() {
            if i % s.tasks.max(1) != self.context.task as usize {
                continue;
            }
            let key = query::primary_key(&self.pool, &table).await.map_err(|e| {
                s.target
                    .task_error(&format!("reading the primary key of '{table}'"), &e)
            })?;
            let short = table.rsplit('.').next().unwrap_or(&table).to_owned();
            readers.push(self.reader(
                self.dialect().quote_qualified(&table),
                format!("{}{short}", s.topic_prefix),
                json!({"table": table}),
                Some(table.clone()),
                key,
            ));
        }
        Ok(readers)
    }

    fn reader(&self, from: String, topic: String, partition: Value, table: Option<String>, key: Vec<String>) -> Reader {
        let s = &self.settings;
        let shape = Shape {
            key,
            timestamps: if s.mode.timestamp() {
                s.timestamps.clone()
            } else {
                Vec::new()
            },
            incrementing: s.mode.incrementing().then(|| s.incrementing.clone()),
        };
        let offset = self
            .context
            .offset(&partition)
            .map(|o| Offset::from_json(&o))
            .unwrap_or_default();
        Reader {
            from,
            topic,
            partition,
            offset,
            shape: Arc::new(shape),
            next_poll: Instant::now(),
            pending: Vec::new(),
            checked: false,
            table,
            ahead: None,
        }
    }

    /// Checks once that the mode's columns exist and, with `validate.non.null`, are NOT NULL.
    async fn check(&self, r: &Reader) -> Result<(), TaskError> {
        let (Some(table), s) = (&r.table, &self.settings) else {
            return Ok(());
        };
        let (schema, name) = query::split(table);
        let cols = query::columns(&self.pool, schema, name)
            .await
            .map_err(|e| s.target.task_error(&format!("reading the columns of '{table}'"), &e))?;
        if cols.is_empty() {
            return Err(TaskError::fatal(format!("table '{table}' does not exist")));
        }
        let mut needed: Vec<(&str, &str)> = Vec::new();
        if s.mode.incrementing() {
            needed.push(("incrementing.column.name", s.incrementing.as_str()));
        }
        if s.mode.timestamp() {
            needed.extend(s.timestamps.iter().map(|t| ("timestamp.column.name", t.as_str())));
        }
        for (key, col) in needed {
            match cols.iter().find(|(c, _, _)| c == col) {
                None => {
                    return Err(TaskError::fatal(format!(
                        "{key}: table '{table}' has no column '{col}'"
                    )));
                }
                Some((_, _, true)) if s.validate_non_null && (key.starts_with("inc") || s.timestamps.len() == 1) => {
                    return Err(TaskError::fatal(format!(
                        "{key}: column '{col}' of table '{table}' may be NULL (rows with NULL are never read); \
make it NOT NULL or set validate.non.null=false"
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Reads the next rows of one table.
    async fn read(&self, r: &mut Reader) -> Result<SourceBatch, TaskError> {
        let s = &self.settings;
        let limit = s.batch_max_rows;
        if s.mode == Mode::Bulk {
            if r.pending.is_empty() {
                let sql = format!("SELECT * FROM {}", r.from);
                let rows = self.run(&sql, &[], &r.shape).await?;
                r.pending = rows.rows;
                r.pending.reverse();
                r.offset.timestamp = None;
            }
            let n = r.pending.len().min(limit);
            let out: Vec<_> = r.pending.split_off(r.pending.len() - n).into_iter().rev().collect();
            if r.pending.is_empty() {
                r.next_poll = Instant::now() + s.poll_interval;
            }
            let mut batch = SourceBatch {
                records: out.into_iter().map(|row| self.record(r, row)).collect(),
                offsets: Vec::new(),
            };
            if !batch.records.is_empty() {
                let at = chrono::Utc::now().timestamp_millis();
                batch.reach(&r.partition, json!({"bulk": at}));
            }
            return Ok(batch);
        }
        let mut rows = match r.ahead.take() {
            Some(ahead) => ahead.rows().await?,
            None => {
                let (sql, binds) = self.statement(r, limit);
                self.run(&sql, &binds, &r.shape).await?
            }
        };
        let full = rows.rows.len() >= limit;
        if s.mode == Mode::Timestamp && full {
            rows = self.whole_groups(r, rows).await?;
        }
        if !full {
            r.next_poll = Instant::now() + s.poll_interval;
        }
        let ts_type = s.timestamps.iter().find_map(|c| rows.type_of(c)).map(str::to_owned);
        let mut out = SourceBatch::with_capacity(rows.rows.len());
        for mut row in rows.rows {
            if let (Some(ts), Some(ty)) = (row.timestamp.take(), &ts_type) {
                r.offset.timestamp = Some((ts, ty.clone()));
            }
            if s.mode.incrementing() {
                r.offset.incrementing = Some(self.incrementing_of(&row)?);
            }
            out.records.push(self.record(r, row));
        }
        if !out.records.is_empty() {
            out.reach(&r.partition, r.offset.to_json());
        }
        if full {
            r.ahead = Some(self.read_ahead(r, limit));
        }
        Ok(out)
    }

    /// Starts reading the rows after the reader's offset (see [`Ahead`]).
    fn read_ahead(&self, r: &Reader, limit: usize) -> Ahead {
        let (sql, binds) = self.statement(r, limit);
        let (pool, s) = (self.pool.clone(), &self.settings);
        let (target, numeric, shape) = (s.target.clone(), s.numeric, r.shape.clone());
        Ahead(tokio::spawn(async move {
            fetch(&pool, &target, numeric, &sql, &binds, &shape).await
        }))
    }

    /// In `timestamp` mode a full batch is cut before its last group of equal timestamps
    /// (read whole next time); a batch that is one group is read whole, whatever its size.
    async fn whole_groups(&self, r: &Reader, mut rows: Rows) -> Result<Rows, TaskError> {
        let last = rows.rows.last().and_then(|row| row.timestamp.clone());
        let kept = rows
            .rows
            .iter()
            .rposition(|row| row.timestamp != last)
            .map_or(0, |i| i + 1);
        if kept > 0 {
            rows.rows.truncate(kept);
            return Ok(rows);
        }
        let (Some(last), Some(ty)) = (last, self.settings.timestamps.iter().find_map(|c| rows.type_of(c))) else {
            return Ok(rows);
        };
        let sql = format!(
            "SELECT * FROM {} WHERE {} = {} ORDER BY {}",
            r.from,
            self.ts_expr(),
            self.cast(1, ty)?,
            self.ts_expr()
        );
        self.run(&sql, &[self.ts_bind(&last)], &r.shape).await
    }

    /// The query for the next rows after the reader's offset.
    fn statement(&self, r: &Reader, limit: usize) -> (String, Vec<Bind>) {
        let s = &self.settings;
        let d = self.dialect();
        let inc = d.quote(&s.incrementing);
        let ts = self.ts_expr();
        let mut binds = Vec::new();
        let param = |b: Bind, binds: &mut Vec<Bind>| {
            binds.push(b);
            d.param(binds.len())
        };
        let mut conds = Vec::new();
        if s.mode.timestamp() {
            let delay = param(Bind::Int(s.delay_ms), &mut binds);
            conds.push(match d {
                Dialect::Postgres => {
                    format!("{ts} < CURRENT_TIMESTAMP - CAST({delay} AS DOUBLE PRECISION) * INTERVAL '1 millisecond'")
                }
                Dialect::MySql => format!("{ts} < CURRENT_TIMESTAMP(6) - INTERVAL ({delay} * 1000) MICROSECOND"),
            });
            match (&r.offset.timestamp, s.mode) {
                (Some((t, ty)), Mode::Timestamp) => {
                    let cast = self.cast_or_text(&param(self.ts_bind(t), &mut binds), ty);
                    conds.push(format!("{ts} > {cast}"));
                }
                (Some((t, ty)), _) => {
                    let a = self.cast_or_text(&param(self.ts_bind(t), &mut binds), ty);
                    let b = self.cast_or_text(&param(self.ts_bind(t), &mut binds), ty);
                    let i = param(Bind::Int(r.offset.incrementing.unwrap_or(i64::MIN)), &mut binds);
                    conds.push(format!("({ts} > {a} OR ({ts} = {b} AND {inc} > {i}))"));
                }
                (None, _) => {
                    if let Some(initial) = self.initial() {
                        let p = param(Bind::Text(initial), &mut binds);
                        let cast = self.cast_or_text(&p, "TIMESTAMPTZ");
                        conds.push(format!("{ts} > {cast}"));
                    }
                }
            }
        } else if s.mode == Mode::Incrementing {
            let i = param(Bind::Int(r.offset.incrementing.unwrap_or(-1)), &mut binds);
            conds.push(format!("{inc} > {i}"));
        }
        let order = match s.mode {
            Mode::Incrementing => inc.clone(),
            Mode::Timestamp => ts.clone(),
            _ => format!("{ts}, {inc}"),
        };
        let sql = format!(
            "SELECT * FROM {} WHERE {} ORDER BY {order} LIMIT {limit}",
            r.from,
            conds.join(" AND ")
        );
        (sql, binds)
    }

    /// `timestamp.initial` as UTC text, when set.
    fn initial(&self) -> Option<String> {
        let ms = self.settings.timestamp_initial?;
        let t = if ms == -1 {
            chrono::Utc::now()
        } else {
            chrono::DateTime::from_timestamp_millis(ms)?
        };
        Some(super::types::utc_text(&t))
    }

    /// The timestamp expression: the column, or the first non-null of the columns.
    fn ts_expr(&self) -> String {
        let d = self.dialect();
        match self.settings.timestamps.as_slice() {
            [one] => d.quote(one),
            many => format!(
                "COALESCE({})",
                many.iter().map(|c| d.quote(c)).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// A timestamp parameter: PostgreSQL casts it to the column's type; MariaDB compares text
    /// in its own format (its session runs in UTC).
    fn cast(&self, n: usize, ty: &str) -> Result<String, TaskError> {
        let p = self.dialect().param(n);
        Ok(self.cast_or_text(&p, ty))
    }

    fn cast_or_text(&self, p: &str, ty: &str) -> String {
        match self.dialect() {
            Dialect::Postgres => {
                let ty = match ty {
                    "TIMESTAMP" | "DATE" | "TIMESTAMPTZ" => ty,
                    _ => "TIMESTAMPTZ",
                };
                format!("CAST({p} AS {ty})")
            }
            Dialect::MySql => p.to_owned(),
        }
    }

    fn ts_bind(&self, text: &str) -> Bind {
        match self.dialect() {
            Dialect::Postgres => Bind::Text(text.to_owned()),
            Dialect::MySql => Bind::Text(text.trim_end_matches('Z').replace('T', " ")),
        }
    }

    fn incrementing_of(&self, row: &Row) -> Result<i64, TaskError> {
        let col = &self.settings.incrementing;
        row.incrementing.ok_or_else(|| {
            TaskError::fatal(format!(
                "incrementing.column.name: column '{col}' is missing, NULL or not an integer in a row read"
            ))
        })
    }

    async fn run(&self, sql: &str, binds: &[Bind], shape: &Shape) -> Result<Rows, TaskError> {
        let s = &self.settings;
        fetch(&self.pool, &s.target, s.numeric, sql, binds, shape).await
    }

    fn record(&self, r: &Reader, row: Row) -> ConnectRecord {
        let text = JsonText {
            key: row.key,
            value: Some(row.value),
        };
        ConnectRecord::from_text(&r.topic, text)
    }
}

/// Runs a query and writes its rows, with the task's errors.
async fn fetch(
    pool: &Pool,
    target: &Target,
    numeric: Numeric,
    sql: &str,
    binds: &[Bind],
    shape: &Shape,
) -> Result<Rows, TaskError> {
    query::fetch(pool, sql, binds, numeric, shape)
        .await
        .map_err(|e| match e {
            Failure::Db(e) => target.task_error("reading rows", &e),
            Failure::Map(m) => TaskError::fatal(m),
        })
}

#[async_trait]
impl SourceTask for Task {
    async fn poll(&mut self) -> Result<SourceBatch, TaskError> {
        if self.readers.is_none() {
            self.readers = Some(self.readers().await?);
        }
        let mut readers = self.readers.take().unwrap_or_default();
        let result = self.poll_readers(&mut readers).await;
        self.readers = Some(readers);
        result
    }
}

impl Task {
    /// Reads the first table that is due and has rows; waits when none is due.
    async fn poll_readers(&mut self, readers: &mut [Reader]) -> Result<SourceBatch, TaskError> {
        if readers.is_empty() {
            tokio::time::sleep(self.settings.poll_interval).await;
            return Ok(SourceBatch::default());
        }
        let now = Instant::now();
        for step in 0..readers.len() {
            let i = (self.next + step) % readers.len();
            if readers[i].next_poll > now {
                continue;
            }
            if !readers[i].checked {
                self.check(&readers[i]).await?;
                readers[i].checked = true;
            }
            let out = self.read(&mut readers[i]).await?;
            if !out.is_empty() {
                self.next = (i + 1) % readers.len();
                return Ok(out);
            }
        }
        let wake = readers.iter().map(|r| r.next_poll).min().unwrap_or(now);
        let wait = wake
            .saturating_duration_since(Instant::now())
            .min(self.settings.poll_interval);
        tokio::time::sleep(wait.max(Duration::from_millis(5))).await;
        Ok(SourceBatch::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let o = Offset {
            timestamp: Some(("2026-01-01T00:00:00.5".into(), "TIMESTAMP".into())),
            incrementing: Some(7),
        };
        assert_eq!(Offset::from_json(&o.to_json()), o);
        assert_eq!(Offset::from_json(&json!({})), Offset::default());
        assert_eq!(Mode::parse("timestamp+incrementing"), Some(Mode::TimestampIncrementing));
        assert_eq!(Mode::parse("other"), None);
    }
}
