//! The JDBC sink task: each batch the runtime hands over is written in one database
//! transaction, as runs of rows per table and operation (insert, upsert, update, delete): on
//! PostgreSQL plain inserts as one `COPY` per run and the other operations as one statement per
//! run (`jsonb_populate_recordset`) — either way the database converts each JSON value to its
//! column's type — and multi-row statements on MariaDB. Tables are created
//! and widened when asked (`auto.create`, `auto.evolve`) before the transaction. With
//! `exactly.once` the next offset of each topic partition is stored in the same transaction,
//! and records below it are skipped: no duplicate even after `kill -9`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::db::{Dialect, Pool, Target, transient};
use super::query;
use crate::connect::plugin::{PutError, SinkTask};
use crate::connect::record::ConnectRecord;

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InsertMode {
    /// Plain inserts.
    Insert,
    /// Insert or replace by the primary key.
    Upsert,
    /// Update by the primary key (rows that are not there are not created).
    Update,
}

/// Where the primary key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PkMode {
    /// No key.
    None,
    /// The record's topic, partition and offset.
    Kafka,
    /// The record's key.
    RecordKey,
    /// Fields of the record's value.
    RecordValue,
}

/// The sink's settings.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub target: Target,
    pub connector: String,
    pub insert_mode: InsertMode,
    pub pk_mode: PkMode,
    pub pk_fields: Vec<String>,
    pub auto_create: bool,
    pub auto_evolve: bool,
    pub delete_enabled: bool,
    pub table_format: String,
    pub fields_whitelist: Vec<String>,
    pub batch_size: usize,
    pub max_retries: u32,
    pub retry_backoff: Duration,
    pub exactly_once: bool,
    pub offsets_table: String,
}

/// What a record asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Write,
    Delete,
}

/// One record as a row of a table.
#[derive(Debug, Clone)]
struct Row {
    table: String,
    op: Op,
    /// Key columns first, then the others, in record order.
    columns: Vec<(String, Value)>,
    keys: usize,
}

/// The JDBC sink task.
pub(super) struct Task {
    s: Settings,
    pool: Pool,
    /// Known tables: column name → data type (lower case).
    tables: HashMap<String, BTreeMap<String, String>>,
    /// Exactly-once: the next offset to write per (topic, partition), once loaded.
    offsets: Option<HashMap<(String, u32), u64>>,
}

impl Task {
    pub(super) fn new(s: Settings) -> Self {
        let pool = s.target.pool(2, Duration::from_secs(10));
        Self {
            s,
            pool,
            tables: HashMap::new(),
            offsets: None,
        }
    }

    fn dialect(&self) -> Dialect {
        self.s.target.dialect
    }

    /// A record as a row, or why it cannot be one.
    fn row(&self, r: &ConnectRecord) -> Result<Option<Row>, String> {
        let table = self.s.table_format.replace("${topic}", &r.topic);
        if r.value.is_null() {
            if !self.s.delete_enabled {
                return Ok(None);
            }
            let columns = self.key_columns(r, None)?;
            let keys = columns.len();
            return Ok(Some(Row {
                table,
                op: Op::Delete,
                columns,
                keys,
            }));
        }
        let Value::Object(value) = &r.value else {
            return Err("the value is not a JSON object (one field per column)".into());
        };
        let mut columns = self.key_columns(r, Some(value))?;
        let keys = columns.len();
        for (k, v) in value {
            let listed = self.s.fields_whitelist.is_empty() || self.s.fields_whitelist.contains(k);
            if listed && !columns[..keys].iter().any(|(c, _)| c == k) {
                columns.push((k.clone(), v.clone()));
            }
        }
        if columns.is_empty() {
            return Err("the record has no field to write".into());
        }
        Ok(Some(Row {
            table,
            op: Op::Write,
            columns,
            keys,
        }))
    }

    /// The key columns of a record per `pk.mode`.
    fn key_columns(
        &self,
        r: &ConnectRecord,
        value: Option<&Map<String, Value>>,
    ) -> Result<Vec<(String, Value)>, String> {
        let fields = &self.s.pk_fields;
        match self.s.pk_mode {
            PkMode::None => Ok(Vec::new()),
            PkMode::Kafka => {
                let names = if fields.len() == 3 {
                    fields.clone()
                } else {
                    ["__connect_topic", "__connect_partition", "__connect_offset"]
                        .map(String::from)
                        .to_vec()
                };
                let values = [
                    Value::String(r.topic.clone()),
                    r.partition.map_or(Value::Null, Value::from),
                    r.offset.map_or(Value::Null, Value::from),
                ];
                Ok(names.into_iter().zip(values).collect())
            }
            PkMode::RecordKey => match &r.key {
                Value::Null => Err("pk.mode=record_key but the record has no key".into()),
                Value::Object(key) => pick(key, fields, "the key"),
                primitive => match fields.as_slice() {
                    [one] => Ok(vec![(one.clone(), primitive.clone())]),
                    _ => Err(
                        "pk.mode=record_key with a key that is not an object needs exactly one pk.fields name".into(),
                    ),
                },
            },
            PkMode::RecordValue => match value {
                Some(v) => pick(v, fields, "the value"),
                None => Err("a tombstone has no value to take pk.mode=record_value fields from".into()),
            },
        }
    }

    /// Loads the stored offsets of this connector (exactly-once), creating their table.
    async fn load_offsets(&mut self) -> Result<(), PutError> {
        if !self.s.exactly_once || self.offsets.is_some() {
            return Ok(());
        }
        let d = self.dialect();
        let t = d.quote(&self.s.offsets_table);
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {t} (connector VARCHAR(255) NOT NULL, topic VARCHAR(255) NOT NULL, \
             kafka_partition INT NOT NULL, next_offset BIGINT NOT NULL, PRIMARY KEY (connector, topic, kafka_partition))"
        );
        self.execute(&create).await?;
        let sql = format!(
            "SELECT CAST(CONCAT(topic, '|', kafka_partition, '|', next_offset) AS CHAR(600)) FROM {t} WHERE connector = {}",
            d.param(1)
        );
        let sql = if d == Dialect::Postgres {
            sql.replace("CHAR(600)", "TEXT")
        } else {
            sql
        };
        let rows = query::strings(&self.pool, &sql, &[query::Bind::Text(self.s.connector.clone())])
            .await
            .map_err(|e| self.s.target.put_error("reading the stored offsets", &e))?;
        let mut offsets = HashMap::new();
        for r in rows {
            let mut parts = r.rsplitn(3, '|');
            let (Some(next), Some(partition), Some(topic)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if let (Ok(next), Ok(partition)) = (next.parse(), partition.parse()) {
                offsets.insert((topic.to_owned(), partition), next);
            }
        }
        self.offsets = Some(offsets);
        Ok(())
    }

    /// Whether a record was written before (exactly-once).
    fn seen(&self, r: &ConnectRecord) -> bool {
        let (Some(offsets), Some(p), Some(o)) = (&self.offsets, r.partition, r.offset) else {
            return false;
        };
        offsets.get(&(r.topic.clone(), p)).is_some_and(|next| o < *next)
    }

    /// Runs a statement outside the batch transaction (DDL).
    async fn execute(&self, sql: &str) -> Result<(), PutError> {
        let result = match &self.pool {
            Pool::Pg(p) => sqlx::query(sql).execute(p).await.map(drop),
            Pool::My(p) => sqlx::query(sql).execute(p).await.map(drop),
        };
        result.map_err(|e| self.s.target.put_error("changing the table", &e))
    }

    /// Makes sure the table exists with every column of its rows (per auto.create and
    /// auto.evolve).
    async fn ensure_table(&mut self, rows: &[&Row]) -> Result<(), PutError> {
        let Some(first) = rows.first() else { return Ok(()) };
        let table = first.table.clone();
        if !self.tables.contains_key(&table) {
            let cols = self.read_columns(&table).await?;
            if cols.is_empty() {
                if !self.s.auto_create {
                    return Err(PutError::Fatal(format!(
                        "table '{table}' does not exist (create it, or set auto.create=true)"
                    )));
                }
                self.create_table(&table, rows).await?;
            }
            let cols = self.read_columns(&table).await?;
            self.tables.insert(table.clone(), cols);
        }
        let known = self.tables.get(&table).cloned().unwrap_or_default();
        let mut missing: Vec<(String, &Value)> = Vec::new();
        for r in rows {
            for (c, v) in &r.columns {
                if !known.contains_key(c) && !missing.iter().any(|(m, _)| m == c) {
                    missing.push((c.clone(), v));
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if !self.s.auto_evolve {
            let names: Vec<_> = missing.iter().map(|(c, _)| c.as_str()).collect();
            return Err(PutError::Fatal(format!(
                "table '{table}' has no column {} (add it, or set auto.evolve=true)",
                names.join(", ")
            )));
        }
        let d = self.dialect();
        for (c, v) in missing {
            let sql = format!(
                "ALTER TABLE {} ADD COLUMN {} {} NULL",
                d.quote(&table),
                d.quote(&c),
                sql_type(d, v, false)
            );
            self.execute(&sql).await?;
        }
        let cols = self.read_columns(&table).await?;
        self.tables.insert(table, cols);
        Ok(())
    }

    async fn read_columns(&self, table: &str) -> Result<BTreeMap<String, String>, PutError> {
        // The whole name is one identifier: no schema is split off.
        let cols = query::columns(&self.pool, None, table).await.map_err(|e| {
            self.s
                .target
                .put_error(&format!("reading the columns of '{table}'"), &e)
        })?;
        Ok(cols.into_iter().map(|(n, t, _)| (n, t)).collect())
    }

    async fn create_table(&self, table: &str, rows: &[&Row]) -> Result<(), PutError> {
        let d = self.dialect();
        let first = rows[0];
        let mut defs: Vec<String> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for r in rows {
            for (i, (c, v)) in r.columns.iter().enumerate() {
                if seen.contains(&c.as_str()) {
                    continue;
                }
                seen.push(c);
                let key = i < r.keys;
                let null = if key { "NOT NULL" } else { "NULL" };
                defs.push(format!("{} {} {null}", d.quote(c), sql_type(d, v, key)));
            }
        }
        if first.keys > 0 {
            let pk: Vec<String> = first.columns[..first.keys].iter().map(|(c, _)| d.quote(c)).collect();
            defs.push(format!("PRIMARY KEY ({})", pk.join(", ")));
        }
        let sql = format!("CREATE TABLE IF NOT EXISTS {} ({})", d.quote(table), defs.join(", "));
        tracing::info!(connector = %self.s.connector, table, "creating table");
        self.execute(&sql).await
    }
}

/// Takes the key fields (all when `fields` is empty) of an object.
fn pick(obj: &Map<String, Value>, fields: &[String], what: &str) -> Result<Vec<(String, Value)>, String> {
    if fields.is_empty() {
        return Ok(obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    }
    fields
        .iter()
        .map(|f| match obj.get(f) {
            Some(v) if !v.is_null() => Ok((f.clone(), v.clone())),
            _ => Err(format!("pk.fields: {what} has no field '{f}'")),
        })
        .collect()
}

/// The column type `auto.create`/`auto.evolve` give a JSON value.
fn sql_type(d: Dialect, v: &Value, key: bool) -> &'static str {
    match (d, v) {
        (_, Value::Bool(_)) => "BOOLEAN",
        (_, Value::Number(n)) if n.is_i64() || n.is_u64() => "BIGINT",
        (Dialect::Postgres, Value::Number(_)) => "DOUBLE PRECISION",
        (Dialect::MySql, Value::Number(_)) => "DOUBLE",
        (Dialect::Postgres, Value::Object(_) | Value::Array(_)) => "JSONB",
        (Dialect::MySql, Value::Object(_) | Value::Array(_)) => "LONGTEXT",
        (Dialect::Postgres, _) => "TEXT",
        (Dialect::MySql, _) if key => "VARCHAR(255)",
        (Dialect::MySql, _) => "LONGTEXT",
    }
}

#[async_trait]
impl SinkTask for Task {
    async fn put(&mut self, records: &[ConnectRecord]) -> Result<(), PutError> {
        self.load_offsets().await?;
        let mut rows: Vec<Row> = Vec::with_capacity(records.len());
        let mut failed: Vec<(usize, String)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            if self.seen(r) {
                continue;
            }
            match self.row(r) {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => {}
                Err(e) => failed.push((i, e)),
            }
        }
        let mut by_table: Vec<&Row> = rows.iter().filter(|r| r.op == Op::Write).collect();
        by_table.sort_by(|a, b| a.table.cmp(&b.table));
        for group in by_table.chunk_by(|a, b| a.table == b.table) {
            self.ensure_table(group).await?;
        }
        let ends = self.next_offsets(records);
        let mut attempt = 0;
        loop {
            match self.write(&rows, &ends).await {
                Ok(()) => break,
                Err(e) if transient(&e) && attempt < self.s.max_retries => {
                    attempt += 1;
                    tracing::warn!(connector = %self.s.connector, attempt, error = %self.s.target.describe(&e), "write failed; retrying");
                    tokio::time::sleep(self.s.retry_backoff).await;
                }
                Err(e) => return Err(self.s.target.put_error("writing the batch", &e)),
            }
        }
        if let Some(offsets) = &mut self.offsets {
            offsets.extend(ends);
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(PutError::Records(failed))
        }
    }
}

impl Task {
    /// The next offset per topic partition after this batch.
    fn next_offsets(&self, records: &[ConnectRecord]) -> HashMap<(String, u32), u64> {
        let mut ends: HashMap<(String, u32), u64> = HashMap::new();
        if !self.s.exactly_once {
            return ends;
        }
        for r in records {
            if let (Some(p), Some(o)) = (r.partition, r.offset) {
                let e = ends.entry((r.topic.clone(), p)).or_default();
                *e = (*e).max(o + 1);
            }
        }
        ends
    }

    /// Writes the rows (and the offsets) in one transaction.
    async fn write(&self, rows: &[Row], ends: &HashMap<(String, u32), u64>) -> Result<(), sqlx::Error> {
        let runs = runs(rows, self.s.batch_size);
        match &self.pool {
            Pool::Pg(p) => {
                let mut tx = p.begin().await?;
                for run in &runs {
                    if let Some((sql, data)) = self.pg_copy(run) {
                        let mut copy = tx.copy_in_raw(&sql).await?;
                        copy.send(data).await?;
                        copy.finish().await?;
                        continue;
                    }
                    let (sql, json) = self.pg_statement(run);
                    sqlx::query(&sql).bind(json).execute(&mut *tx).await?;
                }
                for ((topic, partition), next) in ends {
                    let sql = format!(
                        "INSERT INTO {} (connector, topic, kafka_partition, next_offset) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (connector, topic, kafka_partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                        Dialect::Postgres.quote(&self.s.offsets_table)
                    );
                    sqlx::query(&sql)
                        .bind(&self.s.connector)
                        .bind(topic)
                        .bind(i32::try_from(*partition).unwrap_or(i32::MAX))
                        .bind(i64::try_from(*next).unwrap_or(i64::MAX))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
            Pool::My(p) => {
                let mut tx = p.begin().await?;
                for run in &runs {
                    for (sql, binds) in self.my_statements(run) {
                        let mut q = sqlx::query(&sql);
                        for b in binds {
                            q = bind_my(q, b);
                        }
                        q.execute(&mut *tx).await?;
                    }
                }
                for ((topic, partition), next) in ends {
                    let sql = format!(
                        "INSERT INTO {} (connector, topic, kafka_partition, next_offset) VALUES (?, ?, ?, ?) \
                         ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset)",
                        Dialect::MySql.quote(&self.s.offsets_table)
                    );
                    sqlx::query(&sql)
                        .bind(&self.s.connector)
                        .bind(topic)
                        .bind(i64::from(*partition))
                        .bind(i64::try_from(*next).unwrap_or(i64::MAX))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
        }
    }

    /// A run of plain inserts into PostgreSQL as `COPY … FROM STDIN` and its data in COPY's
    /// text format: the fastest way in, and the same conversion as the JSON statement's (each
    /// value goes through its column type's text input; json columns take the value's JSON
    /// text). `None` for other runs, or when a column's type is not known to read alike.
    fn pg_copy(&self, run: &Run<'_>) -> Option<(String, Vec<u8>)> {
        if run.op != Op::Write || self.s.insert_mode != InsertMode::Insert {
            return None;
        }
        let types = self.tables.get(&run.table)?;
        let cols = run.column_names();
        let kinds: Vec<CopyKind> = cols
            .iter()
            .map(|c| types.get(c).and_then(|t| copy_kind(t)))
            .collect::<Option<_>>()?;
        let d = Dialect::Postgres;
        let list: Vec<String> = cols.iter().map(|c| d.quote(c)).collect();
        let sql = format!("COPY {} ({}) FROM STDIN", d.quote(&run.table), list.join(", "));
        let mut data = Vec::with_capacity(run.rows.len() * 64);
        for row in &run.rows {
            for (i, (col, kind)) in cols.iter().zip(&kinds).enumerate() {
                if i > 0 {
                    data.push(b'\t');
                }
                let value = row.columns.iter().find(|(c, _)| c == col).map(|(_, v)| v);
                copy_value(&mut data, value.unwrap_or(&Value::Null), *kind);
            }
            data.push(b'\n');
        }
        Some((sql, data))
    }

    /// One PostgreSQL statement for a run, with its rows as one JSON array parameter.
    fn pg_statement(&self, run: &Run<'_>) -> (String, Value) {
        let d = Dialect::Postgres;
        let t = d.quote(&run.table);
        let cols = run.column_names();
        let list: Vec<String> = cols.iter().map(|c| d.quote(c)).collect();
        let list = list.join(", ");
        let keys: Vec<String> = run.key_names().iter().map(|c| d.quote(c)).collect();
        let rows: Vec<Value> = run
            .rows
            .iter()
            .map(|r| Value::Object(r.columns.iter().cloned().collect()))
            .collect();
        let src = format!("jsonb_populate_recordset(NULL::{t}, $1::jsonb)");
        let others: Vec<String> = list_without(&cols, &run.key_names())
            .iter()
            .map(|c| d.quote(c))
            .collect();
        let on_keys = keys
            .iter()
            .map(|k| format!("w.{k} = s.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = match (run.op, self.s.insert_mode) {
            (Op::Delete, _) => format!("DELETE FROM {t} AS w USING {src} AS s WHERE {on_keys}"),
            (Op::Write, InsertMode::Insert) => format!("INSERT INTO {t} ({list}) SELECT {list} FROM {src}"),
            (Op::Write, InsertMode::Upsert) => {
                let action = if others.is_empty() {
                    "NOTHING".to_owned()
                } else {
                    let set: Vec<String> = others.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
                    format!("UPDATE SET {}", set.join(", "))
                };
                format!(
                    "INSERT INTO {t} ({list}) SELECT {list} FROM {src} ON CONFLICT ({}) DO {action}",
                    keys.join(", ")
                )
            }
            (Op::Write, InsertMode::Update) if others.is_empty() => "SELECT 1 WHERE $1::jsonb IS NULL".to_owned(),
            (Op::Write, InsertMode::Update) => {
                let set: Vec<String> = others.iter().map(|c| format!("{c} = s.{c}")).collect();
                format!("UPDATE {t} AS w SET {} FROM {src} AS s WHERE {on_keys}", set.join(", "))
            }
        };
        (sql, Value::Array(rows))
    }

    /// MariaDB statements for a run: multi-row inserts, or one statement per row.
    fn my_statements(&self, run: &Run<'_>) -> Vec<(String, Vec<MyValue>)> {
        let d = Dialect::MySql;
        let t = d.quote(&run.table);
        let cols = run.column_names();
        let keys = run.key_names();
        let others = list_without(&cols, &keys);
        let types = self.tables.get(&run.table);
        let value_of = |r: &Row, c: &str| -> MyValue {
            let v = r.columns.iter().find(|(n, _)| n == c).map_or(&Value::Null, |(_, v)| v);
            my_value(v, types.and_then(|t| t.get(c)).map(String::as_str))
        };
        let mut out = Vec::new();
        match (run.op, self.s.insert_mode) {
            (Op::Write, InsertMode::Insert | InsertMode::Upsert) => {
                let list: Vec<String> = cols.iter().map(|c| d.quote(c)).collect();
                let per_stmt = (30_000 / cols.len().max(1)).max(1);
                for chunk in run.rows.chunks(per_stmt) {
                    let one = format!("({})", vec!["?"; cols.len()].join(", "));
                    let mut sql = format!(
                        "INSERT INTO {t} ({}) VALUES {}",
                        list.join(", "),
                        vec![one; chunk.len()].join(", ")
                    );
                    if self.s.insert_mode == InsertMode::Upsert {
                        let set: Vec<String> = if others.is_empty() {
                            keys.iter().map(|k| format!("{0} = {0}", d.quote(k))).collect()
                        } else {
                            others
                                .iter()
                                .map(|c| format!("{0} = VALUES({0})", d.quote(c)))
                                .collect()
                        };
                        sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {}", set.join(", ")));
                    }
                    let binds = chunk
                        .iter()
                        .flat_map(|r| cols.iter().map(|c| value_of(r, c.as_str())))
                        .collect();
                    out.push((sql, binds));
                }
            }
            (Op::Write, _) if others.is_empty() => {}
            (op, _) => {
                let cond: Vec<String> = keys.iter().map(|k| format!("{} = ?", d.quote(k))).collect();
                for r in &run.rows {
                    let (sql, mut binds) = if op == Op::Delete {
                        (format!("DELETE FROM {t} WHERE {}", cond.join(" AND ")), Vec::new())
                    } else {
                        let set: Vec<String> = others.iter().map(|c| format!("{} = ?", d.quote(c))).collect();
                        let binds = others.iter().map(|c| value_of(r, c.as_str())).collect();
                        (
                            format!("UPDATE {t} SET {} WHERE {}", set.join(", "), cond.join(" AND ")),
                            binds,
                        )
                    };
                    binds.extend(keys.iter().map(|k| value_of(r, k.as_str())));
                    out.push((sql, binds));
                }
            }
        }
        out
    }
}

/// Rows of one table and operation, written by one statement.
#[derive(Debug)]
struct Run<'a> {
    table: String,
    op: Op,
    rows: Vec<&'a Row>,
}

impl Run<'_> {
    fn column_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for r in &self.rows {
            for (c, _) in &r.columns {
                if !names.contains(c) {
                    names.push(c.clone());
                }
            }
        }
        names
    }

    fn key_names(&self) -> Vec<String> {
        self.rows
            .first()
            .map(|r| r.columns[..r.keys].iter().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default()
    }
}

fn list_without(all: &[String], without: &[String]) -> Vec<String> {
    all.iter().filter(|c| !without.contains(c)).cloned().collect()
}

/// Splits rows into runs of one table and operation, in order, at most `size` rows each; a
/// key written twice in a run keeps its last row (one statement cannot touch a row twice).
fn runs(rows: &[Row], size: usize) -> Vec<Run<'_>> {
    let mut out: Vec<Run<'_>> = Vec::new();
    for r in rows {
        let fits = out.last().is_some_and(|run| {
            run.table == r.table && run.op == r.op && run.rows.len() < size.max(1) && run.rows[0].keys == r.keys
        });
        if !fits {
            out.push(Run {
                table: r.table.clone(),
                op: r.op,
                rows: Vec::new(),
            });
        }
        if let Some(run) = out.last_mut() {
            if r.keys > 0 {
                let key = &r.columns[..r.keys];
                run.rows.retain(|o| &o.columns[..o.keys] != key);
            }
            run.rows.push(r);
        }
    }
    out
}

/// How a column reads a value from COPY's text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyKind {
    /// Through the type's text input: a string as its text, other values as their JSON text.
    Text,
    /// A json or jsonb column: every value as its JSON text.
    Json,
}

/// The COPY reading of a PostgreSQL column type (information_schema's `data_type`, lower
/// case), for the types whose text input reads a value as `jsonb_populate_recordset` does.
fn copy_kind(ty: &str) -> Option<CopyKind> {
    match ty {
        "json" | "jsonb" => Some(CopyKind::Json),
        "smallint" | "integer" | "bigint" | "numeric" | "real" | "double precision" | "text" | "character varying"
        | "character" | "boolean" | "date" | "uuid" | "bytea" => Some(CopyKind::Text),
        t if t.starts_with("timestamp") || t.starts_with("time ") => Some(CopyKind::Text),
        _ => None,
    }
}

/// Appends a value in COPY's text format: `\N` for null; backslash, tab and line breaks
/// escaped.
fn copy_value(out: &mut Vec<u8>, v: &Value, kind: CopyKind) {
    match (v, kind) {
        (Value::Null, _) => out.extend_from_slice(b"\\N"),
        (Value::String(s), CopyKind::Text) => copy_text(out, s.as_bytes()),
        (Value::Bool(b), CopyKind::Text) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        (other, _) => copy_text(out, other.to_string().as_bytes()),
    }
}

/// Appends text with COPY's escapes.
fn copy_text(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// A MariaDB parameter.
#[derive(Debug, Clone, PartialEq)]
enum MyValue {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
}

/// A JSON value as a MariaDB parameter for a column of `ty`: booleans as 1/0, nested JSON as
/// its text, ISO timestamps for date-time columns in MariaDB's format (UTC).
fn my_value(v: &Value, ty: Option<&str>) -> MyValue {
    match v {
        Value::Null => MyValue::Null,
        Value::Bool(b) => MyValue::Int(i64::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(MyValue::Int)
            .or_else(|| n.as_u64().map(MyValue::UInt))
            .unwrap_or_else(|| MyValue::Float(n.as_f64().unwrap_or_default())),
        Value::String(s) if matches!(ty, Some("datetime" | "timestamp")) => MyValue::Text(datetime_text(s)),
        Value::String(s) => MyValue::Text(s.clone()),
        other => MyValue::Text(other.to_string()),
    }
}

/// `2026-01-02T03:04:05.5Z` (or with an offset) as `2026-01-02 03:04:05.500000` in UTC;
/// other text as it is.
fn datetime_text(s: &str) -> String {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string();
    }
    s.replacen('T', " ", 1)
}

fn bind_my<'q>(
    q: sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>,
    v: MyValue,
) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    match v {
        MyValue::Null => q.bind(None::<String>),
        MyValue::Int(i) => q.bind(i),
        MyValue::UInt(u) => q.bind(u),
        MyValue::Float(f) => q.bind(f),
        MyValue::Text(t) => q.bind(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(table: &str, key: i64, v: i64) -> Row {
        Row {
            table: table.into(),
            op: Op::Write,
            columns: vec![("id".into(), json!(key)), ("v".into(), json!(v))],
            keys: 1,
        }
    }

    #[test]
    fn copy_text_escapes_what_copy_reads_specially() {
        let mut out = Vec::new();
        for (v, kind) in [
            (json!("a\tb\\c\nd\re"), CopyKind::Text),
            (json!(null), CopyKind::Text),
            (json!(true), CopyKind::Text),
            (json!(12.5), CopyKind::Text),
            (json!({"k": "x\ty"}), CopyKind::Text),
            (json!("s"), CopyKind::Json),
        ] {
            copy_value(&mut out, &v, kind);
            out.push(b'|');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"a\tb\\c\nd\re|\N|true|12.5|{"k":"x\\ty"}|"s"|"#
        );
        assert_eq!(copy_kind("timestamp without time zone"), Some(CopyKind::Text));
        assert_eq!(copy_kind("jsonb"), Some(CopyKind::Json));
        assert_eq!(copy_kind("ARRAY"), None);
        assert_eq!(copy_kind("USER-DEFINED"), None);
    }

    #[test]
    fn runs_keep_order_and_the_last_row_of_a_key() {
        let rows = vec![
            row("a", 1, 1),
            row("a", 2, 1),
            row("a", 1, 2),
            row("b", 1, 1),
            row("a", 3, 1),
        ];
        let runs = runs(&rows, 10);
        let shape: Vec<(String, Vec<i64>)> = runs
            .iter()
            .map(|r| {
                (
                    r.table.clone(),
                    r.rows.iter().map(|x| x.columns[1].1.as_i64().unwrap()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![("a".into(), vec![1, 2]), ("b".into(), vec![1]), ("a".into(), vec![1])]
        );
        assert_eq!(super::runs(&rows, 1).len(), 5);
    }

    #[test]
    fn values_bind_as_mariadb_expects() {
        assert_eq!(my_value(&json!(true), None), MyValue::Int(1));
        assert_eq!(my_value(&json!({"a": 1}), None), MyValue::Text(r#"{"a":1}"#.into()));
        assert_eq!(
            my_value(&json!("2026-01-02T03:04:05.5Z"), Some("datetime")),
            MyValue::Text("2026-01-02 03:04:05.500000".into())
        );
        assert_eq!(
            my_value(&json!("2026-01-02T03:04:05"), Some("datetime")),
            MyValue::Text("2026-01-02 03:04:05".into())
        );
        assert_eq!(sql_type(Dialect::MySql, &json!("x"), true), "VARCHAR(255)");
    }
}
