//! The CDC source task. On its first poll it checks the server (`wal_level`), finds the included
//! tables, makes sure of the publication and the slot, and reads the stored offset; then it
//! snapshots (per `snapshot.mode`, resuming a snapshot at the stored table and key) and streams.
//!
//! Source partition `{"server": <topic.prefix>}`; offsets:
//! - snapshot: `{"lsn": <slot start>, "snapshot": {"table": "s.t", "after": [key as text]}}`
//! - stream: `{"lsn": <commit end LSN>, "txId": <xid>}` — the last transaction written.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use serde_json::{Map, Value, json};
use sqlx::Executor as _;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, Postgres};

use super::db::{self, Table, TableRef};
use super::pgoutput::{self, Datum, Message, Relation};
use super::values::{self, Source};
use super::{Settings, SnapshotMode};
use crate::connect::plugin::{SourceBatch, SourceContext, SourceTask, TaskError};
use crate::connect::record::ConnectRecord;

/// How long a poll waits for changes before answering with what it has.
const POLL_WAIT: Duration = Duration::from_millis(200);

/// The CDC task.
pub(super) struct Task {
    s: Settings,
    context: SourceContext,
    pool: Option<PgPool>,
    phase: Phase,
}

enum Phase {
    /// Not connected yet.
    Start,
    /// Reading tables `tables[index..]`, the current one after `after`.
    Snapshot(Snapshot),
    /// Streaming from the slot.
    Stream(Box<Stream>),
    /// `initial_only` finished: nothing more to do.
    Done,
}

struct Snapshot {
    lsn: u64,
    /// The connection holding the slot's exported snapshot (first run only; a resumed snapshot
    /// reads the current state).
    exported: Option<PoolConnection<Postgres>>,
    tables: Vec<(String, String)>,
    index: usize,
    current: Option<Table>,
    after: Option<Vec<String>>,
}

struct Stream {
    /// The replication client (`None` after the stream broke: reconnected on the next poll).
    client: Option<ReplicationClient>,
    /// The highest commit end LSN written (skipped when streamed again).
    written: u64,
    /// The highest LSN acknowledged to the slot.
    acked: u64,
    /// The end LSN of the last transaction handed to the worker.
    handed: u64,
    relations: HashMap<u32, RelationInfo>,
    txn: Option<Txn>,
}

/// A table the stream described: its columns, its key columns, and its topic (`None`: not in
/// `table.include.list`, its changes are skipped).
struct RelationInfo {
    rel: Relation,
    key: Vec<usize>,
    topic: Option<String>,
}

struct Txn {
    xid: u32,
    commit_ms: i64,
    records: Vec<ConnectRecord>,
}

impl Task {
    pub(super) fn new(s: Settings, context: SourceContext) -> Self {
        Self {
            s,
            context,
            pool: None,
            phase: Phase::Start,
        }
    }

    fn partition(&self) -> Value {
        json!({"server": self.s.prefix})
    }

    async fn pool(&mut self) -> Result<PgPool, TaskError> {
        if let Some(p) = &self.pool {
            return Ok(p.clone());
        }
        let pool = db::connect(&self.s).await?;
        self.pool = Some(pool.clone());
        Ok(pool)
    }

    /// Checks the server and decides where to begin from the stored offset.
    async fn start(&mut self) -> Result<Phase, TaskError> {
        let pool = self.pool().await?;
        db::check_wal_level(&self.s, &pool).await?;
        let tables = db::included_tables(&self.s, &pool).await?;
        let stored = self.context.offset(&self.partition());
        let in_snapshot = stored.as_ref().and_then(|o| o.get("snapshot")).cloned();
        let stored_lsn = stored.as_ref().and_then(|o| o["lsn"].as_u64());
        if self.s.snapshot != SnapshotMode::InitialOnly {
            db::ensure_publication(&self.s, &pool, &tables).await?;
        }
        match (self.s.snapshot, &stored) {
            (SnapshotMode::InitialOnly, None) => {
                let lsn = db::current_lsn(&self.s, &pool).await?;
                return Ok(Phase::Snapshot(Snapshot::new(lsn, tables, None)));
            }
            (SnapshotMode::Initial, None) => {
                tracing::info!(connector = %self.context.connector, tables = tables.len(), "cdc snapshot starting");
                let snap = match db::slot_position(&self.s, &pool).await? {
                    Some(lsn) => Snapshot::new(lsn, tables, None),
                    None => {
                        let mut conn = pool.acquire().await.map_err(|e| db::error(&self.s, "connecting", &e))?;
                        let lsn = db::create_slot_with_snapshot(&self.s, &mut conn).await?;
                        let mut snap = Snapshot::new(lsn, tables, None);
                        snap.exported = Some(conn);
                        snap
                    }
                };
                return Ok(Phase::Snapshot(snap));
            }
            _ => {}
        }
        if let (Some(at), Some(lsn)) = (in_snapshot, stored_lsn) {
            tracing::info!(connector = %self.context.connector, "cdc snapshot resuming");
            let position = serde_json::from_value::<Position>(at).ok();
            return Ok(Phase::Snapshot(Snapshot::new(lsn, tables, position)));
        }
        if self.s.snapshot == SnapshotMode::InitialOnly {
            return Ok(Phase::Done);
        }
        let slot_lsn = db::ensure_slot(&self.s, &pool).await?;
        Ok(Phase::Stream(Box::new(Stream::new(stored_lsn.unwrap_or(slot_lsn)))))
    }

    /// The next snapshot page as records; `None` when the snapshot is complete.
    async fn snapshot_page(&mut self, snap: &mut Snapshot) -> Result<Option<SourceBatch>, TaskError> {
        let pool = self.pool().await?;
        while snap.index < snap.tables.len() {
            if snap.current.is_none() {
                let (schema, name) = &snap.tables[snap.index];
                snap.current = Some(db::describe(&self.s, &pool, TableRef::Name(schema, name)).await?);
            }
            let Some(table) = snap.current.as_ref() else {
                continue;
            };
            let rows = match snap.exported.as_mut() {
                Some(conn) => db::snapshot_page(&self.s, conn, table, snap.after.as_deref(), self.s.fetch_size).await?,
                None => {
                    let mut conn = pool.acquire().await.map_err(|e| db::error(&self.s, "connecting", &e))?;
                    db::snapshot_page(&self.s, &mut conn, table, snap.after.as_deref(), self.s.fetch_size).await?
                }
            };
            if rows.is_empty() {
                snap.index += 1;
                snap.current = None;
                snap.after = None;
                continue;
            }
            let mut batch = SourceBatch::with_capacity(rows.len());
            for (row, key) in rows {
                batch.records.push(self.snapshot_record(table, snap.lsn, &row));
                snap.after = Some(key);
            }
            let offset = json!({"lsn": snap.lsn, "snapshot": {"table": table.full_name(), "after": snap.after}});
            batch.reach(&self.partition(), offset);
            return Ok(Some(batch));
        }
        if let Some(mut conn) = snap.exported.take() {
            conn.execute("COMMIT")
                .await
                .map_err(|e| db::error(&self.s, "ending the snapshot transaction", &e))?;
        }
        Ok(None)
    }

    fn snapshot_record(&self, table: &Table, lsn: u64, row: &[Option<String>]) -> ConnectRecord {
        let after: Map<String, Value> = table
            .columns
            .iter()
            .zip(row)
            .map(|((name, oid, _), v)| {
                (
                    name.clone(),
                    v.as_deref().map_or(Value::Null, |t| values::from_text(*oid, t)),
                )
            })
            .collect();
        let key_value = record_key(table.key.iter().map(|&i| table.columns[i].0.as_str()), &after);
        let now = chrono::Utc::now().timestamp_millis();
        let source = Source {
            server: &self.s.prefix,
            db: &self.s.dbname,
            schema: &table.schema,
            table: &table.name,
            tx_id: None,
            lsn,
            ts_ms: now,
            snapshot: "true",
        };
        let mut record = ConnectRecord::new(
            self.s.topic(&table.schema, &table.name),
            values::envelope("r", None, Some(after), &source),
        );
        record.key = key_value;
        record
    }

    /// Streams whole transactions until one poll's worth is gathered or the stream is idle.
    async fn stream(&mut self, st: &mut Stream) -> Result<SourceBatch, TaskError> {
        if st.client.is_none() {
            st.client = Some(self.replication(st).await?);
            st.relations.clear();
            st.txn = None;
        }
        let mut out = SourceBatch::default();
        let deadline = tokio::time::Instant::now() + POLL_WAIT;
        while out.records.len() < self.s.max_batch {
            let Some(client) = st.client.as_mut() else { break };
            let event = match tokio::time::timeout_at(deadline, client.recv()).await {
                Err(_) => break,
                Ok(Ok(Some(e))) => e,
                Ok(Ok(None)) => {
                    st.client = None;
                    break;
                }
                Ok(Err(e)) => {
                    // The next poll opens the stream again at the written position; only a
                    // failure to reconnect fails the task (or is retried per errors.retry.*).
                    tracing::warn!(connector = %self.context.connector, error = %e, "cdc: replication stream broke; reconnecting");
                    st.client = None;
                    break;
                }
            };
            self.on_event(st, event, &mut out).await?;
        }
        Ok(out)
    }

    /// Opens the replication stream at the written position. A slot still held by the session
    /// of a killed process (PostgreSQL notices within moments) is waited for, up to 30 s.
    async fn replication(&self, st: &Stream) -> Result<ReplicationClient, TaskError> {
        let config = ReplicationConfig::new(
            self.s.host.clone(),
            self.s.user.clone(),
            self.s.password.clone(),
            self.s.dbname.clone(),
            self.s.slot.clone(),
            self.s.publication.clone(),
        )
        .with_port(self.s.port)
        .with_start_lsn(Lsn::from_u64(st.written))
        .with_ack_lsn(Lsn::from_u64(st.written))
        .with_status_interval(self.s.heartbeat)
        .with_wakeup_interval(self.s.heartbeat)
        .with_buffer_size(self.s.max_batch.max(64) * 2)
        .with_application_name("weir-cdc");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let e = match ReplicationClient::connect(config.clone()).await {
                Ok(c) => return Ok(c),
                Err(e) => e,
            };
            let message = format!(
                "replication connection to {}:{} (slot '{}', publication '{}'): {e}",
                self.s.host, self.s.port, self.s.slot, self.s.publication
            );
            if e.to_string().contains("is active") && tokio::time::Instant::now() < deadline {
                tracing::info!(connector = %self.context.connector, slot = %self.s.slot, "cdc: slot still held; waiting");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            return Err(if e.is_transient() {
                TaskError::retriable(message)
            } else {
                TaskError::fatal(message)
            });
        }
    }

    async fn on_event(&self, st: &mut Stream, event: ReplicationEvent, out: &mut SourceBatch) -> Result<(), TaskError> {
        match event {
            ReplicationEvent::Begin {
                xid,
                commit_time_micros,
                ..
            } => {
                st.txn = Some(Txn {
                    xid,
                    commit_ms: values::pg_micros_to_unix_ms(commit_time_micros),
                    records: Vec::new(),
                });
            }
            ReplicationEvent::XLogData { data, .. } => {
                let message = pgoutput::decode(&data).map_err(|e| TaskError::fatal(e.to_string()))?;
                self.on_message(st, message).await?;
            }
            ReplicationEvent::Commit { end_lsn, .. } => {
                let end = end_lsn.as_u64();
                if let Some(txn) = st.txn.take()
                    && end > st.written
                {
                    out.records.extend(txn.records.into_iter().map(|mut record| {
                        if let Some(source) = record.value.get_mut("source") {
                            source["lsn"] = json!(end);
                        }
                        record
                    }));
                    // Also after a transaction with no change for us: its position is written
                    // (and acknowledged) as any other, so the slot keeps up.
                    out.reach(&self.partition(), json!({"lsn": end, "txId": txn.xid}));
                    st.handed = end;
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                // Nothing is pending: everything before the server's position is written.
                if st.txn.is_none() && out.is_empty() && st.handed <= st.written && wal_end.as_u64() > st.acked {
                    st.acked = wal_end.as_u64();
                    if let Some(c) = &st.client {
                        c.update_applied_lsn(wal_end);
                    }
                }
            }
            ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    async fn on_message(&self, st: &mut Stream, message: Message) -> Result<(), TaskError> {
        match message {
            Message::Relation(r) => {
                let topic = self
                    .s
                    .includes(&r.schema, &r.name)
                    .then(|| self.s.topic(&r.schema, &r.name));
                let key = match topic {
                    Some(_) => self.key_columns(&r).await?,
                    None => Vec::new(),
                };
                st.relations.insert(r.id, RelationInfo { rel: r, key, topic });
            }
            Message::Insert { relation, new } => self.change(st, relation, None, Some(&new))?,
            Message::Update { relation, old, new } => {
                // Without an old tuple (default replica identity, key unchanged) it is still an update.
                let old = old.unwrap_or_default();
                self.change(st, relation, Some(&old), Some(&new))?;
            }
            Message::Delete { relation, old } => self.change(st, relation, Some(&old), None)?,
            Message::Truncate { relations } => {
                tracing::warn!(connector = %self.context.connector, tables = relations.len(), "cdc: TRUNCATE is not captured");
            }
            Message::Other(_) => {}
        }
        Ok(())
    }

    /// The primary key columns of a relation (by index), from the catalog. A table dropped since
    /// (its changes still in the slot) falls back to the replica identity the stream describes,
    /// unless that is `FULL` (every column) or `NOTHING`.
    async fn key_columns(&self, r: &Relation) -> Result<Vec<usize>, TaskError> {
        let from_stream = || -> Vec<usize> {
            if !matches!(r.replica_identity, b'd' | b'i') {
                return Vec::new();
            }
            (0..r.columns.len()).filter(|&i| r.columns[i].identity).collect()
        };
        let Some(pool) = &self.pool else {
            return Ok(from_stream());
        };
        let table = match db::describe(&self.s, pool, TableRef::Oid(r.id)).await {
            Ok(t) => t,
            Err(e) if e.retriable => return Err(e),
            Err(e) => {
                tracing::warn!(connector = %self.context.connector, table = %format!("{}.{}", r.schema, r.name), error = %e.message, "cdc: table not in the catalog; keys from its replica identity");
                return Ok(from_stream());
            }
        };
        Ok(table
            .key
            .iter()
            .filter_map(|&i| {
                let name = &table.columns.get(i)?.0;
                r.columns.iter().position(|c| &c.name == name)
            })
            .collect())
    }

    /// Turns one change into records in the open transaction.
    fn change(
        &self,
        st: &mut Stream,
        relation: u32,
        old: Option<&[Datum]>,
        new: Option<&[Datum]>,
    ) -> Result<(), TaskError> {
        let Some(RelationInfo { rel, key, topic }) = st.relations.get(&relation) else {
            return Err(TaskError::fatal(format!(
                "pgoutput: change of relation {relation} before its description"
            )));
        };
        let Some(topic) = topic else {
            return Ok(());
        };
        let Some(txn) = st.txn.as_mut() else {
            return Err(TaskError::fatal("pgoutput: change outside a transaction"));
        };
        let row = |data: &[Datum]| -> Map<String, Value> {
            rel.columns
                .iter()
                .zip(data)
                .map(|(c, d)| (c.name.clone(), values::from_datum(c.type_oid, d)))
                .collect()
        };
        // An update's missing old tuple reads as no `before`, as in Debezium.
        let before = old.filter(|o| !o.is_empty()).map(row);
        let after = new.map(row);
        let keys = key.iter().map(|&i| rel.columns.get(i).map_or("", |c| c.name.as_str()));
        let old_key = before.as_ref().map(|b| record_key(keys.clone(), b));
        let new_key = after.as_ref().map(|a| record_key(keys, a));
        let is_update = old.is_some() && new.is_some();
        let source = Source {
            server: &self.s.prefix,
            db: &self.s.dbname,
            schema: &rel.schema,
            table: &rel.name,
            tx_id: Some(txn.xid),
            lsn: 0,
            ts_ms: txn.commit_ms,
            snapshot: "false",
        };
        let emit = |records: &mut Vec<ConnectRecord>, op: &str, key: Value, b, a| {
            let mut r = ConnectRecord::new(topic.as_str(), values::envelope(op, b, a, &source));
            r.key = key.clone();
            records.push(r);
            if op == "d" {
                let mut tombstone = ConnectRecord::new(topic.as_str(), Value::Null);
                tombstone.key = key;
                records.push(tombstone);
            }
        };
        match (old_key, new_key) {
            (None, Some(k)) => emit(&mut txn.records, if is_update { "u" } else { "c" }, k, before, after),
            (Some(k), None) => emit(&mut txn.records, "d", k, before, None),
            (Some(old_k), Some(new_k)) if old_k != new_k && !key.is_empty() => {
                // The primary key changed: Debezium's delete of the old key, then a create.
                emit(&mut txn.records, "d", old_k, before, None);
                emit(&mut txn.records, "c", new_k, None, after);
            }
            (Some(_), Some(k)) => emit(&mut txn.records, "u", k, before, after),
            (None, None) => {}
        }
        Ok(())
    }
}

/// The record key: the primary key's columns as an object, null without a primary key.
fn record_key<'a>(names: impl Iterator<Item = &'a str>, row: &Map<String, Value>) -> Value {
    let key: Map<String, Value> = names
        .map(|n| (n.to_owned(), row.get(n).cloned().unwrap_or(Value::Null)))
        .collect();
    if key.is_empty() {
        Value::Null
    } else {
        Value::Object(key)
    }
}

/// Where a snapshot stopped.
#[derive(serde::Deserialize)]
struct Position {
    table: String,
    after: Option<Vec<String>>,
}

impl Snapshot {
    fn new(lsn: u64, tables: Vec<(String, String)>, at: Option<Position>) -> Self {
        let (index, after) = match at {
            Some(p) => match tables.iter().position(|(s, t)| format!("{s}.{t}") == p.table) {
                Some(i) => (i, p.after),
                // The table is gone or no longer included: the ones after it by name.
                None => (
                    tables.iter().filter(|(s, t)| format!("{s}.{t}") < p.table).count(),
                    None,
                ),
            },
            None => (0, None),
        };
        Self {
            lsn,
            exported: None,
            tables,
            index,
            current: None,
            after,
        }
    }
}

impl Stream {
    fn new(written: u64) -> Self {
        Self {
            client: None,
            written,
            acked: written,
            handed: written,
            relations: HashMap::new(),
            txn: None,
        }
    }
}

#[async_trait]
impl SourceTask for Task {
    async fn poll(&mut self) -> Result<SourceBatch, TaskError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Start);
        let (phase, batch) = match phase {
            Phase::Start => (self.start().await?, SourceBatch::default()),
            Phase::Snapshot(mut snap) => match self.snapshot_page(&mut snap).await {
                Ok(Some(batch)) => (Phase::Snapshot(snap), batch),
                Ok(None) => (self.after_snapshot(snap.lsn).await?, SourceBatch::default()),
                Err(e) => {
                    self.phase = Phase::Snapshot(snap);
                    return Err(e);
                }
            },
            Phase::Stream(mut st) => {
                let result = self.stream(&mut st).await;
                self.phase = Phase::Stream(st);
                return result;
            }
            Phase::Done => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                (Phase::Done, SourceBatch::default())
            }
        };
        self.phase = phase;
        Ok(batch)
    }

    /// The slot is acknowledged in [`Self::committed`] up to what was handed out: nothing may
    /// be handed out that is not written yet.
    fn polls_ahead(&self) -> bool {
        false
    }

    async fn committed(&mut self) -> Result<(), TaskError> {
        if let Phase::Stream(st) = &mut self.phase
            && st.handed > st.written
        {
            st.written = st.handed;
            if st.handed > st.acked {
                st.acked = st.handed;
                if let Some(c) = &st.client {
                    c.update_applied_lsn(Lsn::from_u64(st.handed));
                }
            }
        }
        Ok(())
    }
}

impl Task {
    async fn after_snapshot(&mut self, lsn: u64) -> Result<Phase, TaskError> {
        tracing::info!(connector = %self.context.connector, "cdc snapshot complete");
        if self.s.snapshot == SnapshotMode::InitialOnly {
            return Ok(Phase::Done);
        }
        Ok(Phase::Stream(Box::new(Stream::new(lsn))))
    }
}
