//! Running a query: reading its input partitions (the joined table first, so enrichment sees
//! the table as of the events), feeding the engine, and — for persistent queries — writing the
//! output records, the state changes and the input offsets in one transaction, so that a query
//! resumes after `kill -9` with no double counting and no gap. Push queries run the same loop
//! with state in memory and their rows sent to the client.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use super::catalog::Source;
use super::exec::{Engine, InRecord, Out, Skip};
use super::input::decode_payload;
use super::state::State;
use super::value::Datum;
use crate::broker::{Broker, Caller, FetchRequest, FetchResult, StartAt};
use crate::error::{ErrorCode, Result};
use crate::storage::{Format, Payload};

/// Records read from one partition per poll at most.
const BATCH: usize = 2000;

/// Counters of a running query.
#[derive(Debug, Default)]
pub struct Stats {
    /// Input records read.
    pub records_in: AtomicU64,
    /// Records written (persistent) or sent (push).
    pub records_out: AtomicU64,
    /// Records that could not be read.
    pub errors: AtomicU64,
    /// Records dropped as late.
    pub late: AtomicU64,
    /// The last error, for `GET /v1/queries/{id}`.
    pub last_error: std::sync::Mutex<Option<String>>,
    /// Whether the query has read everything there was when last looked.
    pub caught_up: std::sync::atomic::AtomicBool,
}

impl Stats {
    fn error(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().expect("stats lock") = Some(e);
    }
}

/// Where a query reads: topic, partition → next offset.
pub type Positions = BTreeMap<(String, u32), u64>;

/// Reads a stored record's key and value as JSON.
pub fn json_of(p: Option<Payload<'_>>) -> std::result::Result<Json, String> {
    let Some(p) = p else { return Ok(Json::Null) };
    match p.format {
        Format::Json => serde_json::from_slice(p.bytes).map_err(|e| format!("not JSON: {e}")),
        Format::String => Ok(serde_json::from_slice(p.bytes)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(p.bytes).into_owned()))),
        Format::Binary => Err("binary values cannot be read as JSON".into()),
    }
}

/// What one read of the input brought.
pub struct Read {
    /// Records of the joined table.
    pub table: Vec<FetchResult>,
    /// Records of the input stream.
    pub stream: Vec<FetchResult>,
}

impl Read {
    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.table.iter().all(|f| f.count == 0) && self.stream.iter().all(|f| f.count == 0)
    }
}

/// The input of a running query.
#[derive(Clone)]
pub struct Input {
    /// The broker.
    pub broker: Broker,
    /// Who reads.
    pub caller: Caller,
    /// The stream topic.
    pub topic: String,
    /// The joined table's topic.
    pub table_topic: Option<String>,
}

impl Input {
    /// The partitions of a topic.
    fn partitions(&self, topic: &str) -> Result<u32> {
        Ok(self.broker.topic_for_read(&self.caller, topic)?.partitions().len() as u32)
    }

    /// Where reading starts for partitions with no position yet.
    pub async fn init(&self, pos: &mut Positions, earliest: bool) -> Result<()> {
        for (topic, from_start) in [(Some(self.topic.clone()), earliest), (self.table_topic.clone(), true)] {
            let Some(topic) = topic else { continue };
            let t = self.broker.topic_for_read(&self.caller, &topic)?;
            for p in 0..self.partitions(&topic)? {
                if let std::collections::btree_map::Entry::Vacant(e) = pos.entry((topic.clone(), p)) {
                    let start = if from_start { StartAt::Earliest } else { StartAt::Latest };
                    e.insert(self.broker.position(&self.caller, &t, p, start).await?);
                }
            }
        }
        Ok(())
    }

    /// Reads what is there: the table until caught up (bounded), then the stream.
    pub async fn read(&self, pos: &mut Positions, earliest: bool) -> Result<Read> {
        self.init(pos, earliest).await?;
        let mut table = Vec::new();
        if let Some(t) = &self.table_topic {
            table = self.read_topic(t, pos).await?;
            if table.iter().any(|f| f.count > 0) {
                // The table first: the stream waits until the table is caught up.
                return Ok(Read {
                    table,
                    stream: Vec::new(),
                });
            }
        }
        let stream = self.read_topic(&self.topic, pos).await?;
        Ok(Read { table, stream })
    }

    async fn read_topic(&self, topic: &str, pos: &mut Positions) -> Result<Vec<FetchResult>> {
        let mut out = Vec::new();
        for p in 0..self.partitions(topic)? {
            let at = *pos.get(&(topic.to_owned(), p)).unwrap_or(&0);
            let req = FetchRequest {
                start: StartAt::Offset(at),
                max_records: BATCH,
                max_bytes: 8 << 20,
                wait: Duration::ZERO,
            };
            let f = match self.broker.fetch(&self.caller, topic, p, req).await {
                Ok(f) => f,
                // Retention moved the start: go on from the earliest record.
                Err(e) if e.code == ErrorCode::OffsetOutOfRange => {
                    let t = self.broker.topic_for_read(&self.caller, topic)?;
                    let at = self.broker.position(&self.caller, &t, p, StartAt::Earliest).await?;
                    pos.insert((topic.to_owned(), p), at);
                    continue;
                }
                Err(e) => return Err(e),
            };
            pos.insert((topic.to_owned(), p), f.next_offset);
            out.push(f);
        }
        Ok(out)
    }

    /// Waits until a topic of the input has new records, or `timeout`.
    pub async fn wait(&self, timeout: Duration, stop: &CancellationToken) {
        let mut watches = Vec::new();
        for t in std::iter::once(&self.topic).chain(self.table_topic.iter()) {
            if let Ok(t) = self.broker.topic_for_read(&self.caller, t) {
                watches.push(t.subscribe());
            }
        }
        let changed = async {
            if watches.is_empty() {
                return std::future::pending().await;
            }
            let futs = watches.iter_mut().map(|w| Box::pin(w.changed()));
            let _ = futures::future::select_all(futs).await;
        };
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep(timeout) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// A record that could not be read: where it is and why.
#[derive(Debug, Clone)]
pub struct BadRecord {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Why.
    pub error: String,
}

/// A record of the input stream made ready for the engine.
#[derive(Debug)]
pub struct Prepared {
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Its timestamp.
    pub timestamp: i64,
    /// Its key and its value as a row of the input's columns, or why it could not be read.
    pub input: std::result::Result<(Json, Vec<Datum>), String>,
}

/// What one read brought, made ready for the engine: the stream's records decoded and in the
/// order they are processed in (by timestamp, then partition and offset). Decoding is most of
/// a simple query's work, so a persistent query prepares its next batch while the engine runs.
pub struct Batch {
    /// Records of the joined table, as read.
    pub table: Vec<FetchResult>,
    /// The stream's topic.
    pub topic: String,
    /// The stream's records.
    pub records: Vec<Prepared>,
    /// Whether nothing at all was read.
    pub empty: bool,
}

/// A stream record as sorted: timestamp, partition, offset, key, value.
type Sortable<'a> = (i64, u32, u64, Option<Payload<'a>>, Option<Payload<'a>>);

/// Decodes and orders what was read for the stream `source`.
pub fn prepare(source: &Source, read: Read) -> Batch {
    let empty = read.is_empty();
    let mut order: Vec<Sortable<'_>> = Vec::new();
    for f in &read.stream {
        order.extend(
            f.records()
                .map(|(offset, r)| (r.timestamp, f.partition, offset, r.key, r.value)),
        );
    }
    if !order.is_sorted_by_key(|r| (r.0, r.1, r.2)) {
        order.sort_unstable_by_key(|r| (r.0, r.1, r.2));
    }
    let records = order
        .into_iter()
        .map(|(timestamp, partition, offset, key, value)| Prepared {
            partition,
            offset,
            timestamp,
            input: json_of(key).and_then(|k| decode_payload(source, value).map(|row| (k, row))),
        })
        .collect();
    let topic = read.stream.first().map(|f| f.topic.clone()).unwrap_or_default();
    Batch {
        table: read.table,
        topic,
        records,
        empty,
    }
}

/// What a batch adds to a query's counters. The caller adds it once the batch counts: a
/// persistent query when the batch's write is done, as it redoes a batch whose write was refused.
#[derive(Debug, Default)]
pub struct Counts {
    /// Input records of the stream.
    pub records_in: u64,
    /// Records dropped as late.
    pub late: u64,
    /// Records that could not be read (table or stream).
    pub bad: Vec<BadRecord>,
}

impl Counts {
    /// Reports the batch's late and skipped records: metrics, and a log line per record skipped.
    pub fn report(&self, query: &str) {
        if self.late > 0 {
            metrics::counter!("weir_query_late_records_total", "query" => query.to_owned()).increment(self.late);
        }
        for b in &self.bad {
            let (topic, partition, offset) = (&b.topic, b.partition, b.offset);
            tracing::warn!(query, topic, partition, offset, error = %b.error, "record skipped");
            metrics::counter!("weir_query_record_errors_total", "query" => query.to_owned()).increment(1);
        }
    }
}

impl Stats {
    /// Adds a batch's counts and reports them ([`Counts::report`]); the last record skipped is
    /// kept as the last error.
    pub fn add(&self, query: &str, c: &Counts) {
        c.report(query);
        self.records_in.fetch_add(c.records_in, Ordering::Relaxed);
        self.late.fetch_add(c.late, Ordering::Relaxed);
        for b in &c.bad {
            self.error(format!("{}/{}@{}: {}", b.topic, b.partition, b.offset, b.error));
        }
    }
}

/// Feeds a batch to the engine, in order: table records, then stream records. Returns the
/// outputs and what the batch adds to the query's counters.
pub fn process(engine: &mut Engine, st: &mut dyn State, batch: Batch) -> (Vec<Out>, Counts) {
    let mut out = Vec::new();
    let mut counts = Counts {
        records_in: batch.records.len() as u64,
        ..Counts::default()
    };
    for f in &batch.table {
        for (offset, r) in f.records() {
            let kv = json_of(r.key).and_then(|k| json_of(r.value).map(|v| (k, v)));
            let res = match kv {
                Ok((k, v)) => engine.on_table(st, &k, &v),
                Err(e) => Err(Skip::Bad(e)),
            };
            if let Err(Skip::Bad(e)) = res {
                counts.bad.push(bad(&f.topic, f.partition, offset, e));
            }
        }
    }
    for r in batch.records {
        let res = match r.input {
            Ok((key, row)) => engine.on_record(
                st,
                InRecord {
                    key: &key,
                    row,
                    timestamp: r.timestamp,
                },
                &mut out,
            ),
            Err(e) => Err(Skip::Bad(e)),
        };
        match res {
            Ok(()) => {}
            Err(Skip::Late) => counts.late += 1,
            Err(Skip::Bad(e)) => counts.bad.push(bad(&batch.topic, r.partition, r.offset, e)),
        }
    }
    (out, counts)
}

fn bad(topic: &str, partition: u32, offset: u64, error: String) -> BadRecord {
    BadRecord {
        topic: topic.to_owned(),
        partition,
        offset,
        error,
    }
}

/// Tracks idle time: how far to move the watermark when no event comes.
#[derive(Debug)]
pub struct Idle {
    timeout: Duration,
    since: Instant,
    advanced: Instant,
}

impl Idle {
    /// Idle after `timeout` without events.
    pub fn new(timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            timeout,
            since: now,
            advanced: now,
        }
    }

    /// An event came.
    pub fn event(&mut self) {
        self.since = Instant::now();
        self.advanced = self.since;
    }

    /// The ms to move the watermark by now (0 while not idle): the time spent idle since the
    /// last move, never a jump to the wall clock.
    pub fn take(&mut self) -> i64 {
        let now = Instant::now();
        if now.duration_since(self.since) < self.timeout {
            return 0;
        }
        let base = self.advanced.max(self.since + self.timeout);
        let by = now.saturating_duration_since(base).as_millis() as i64;
        if by > 0 {
            self.advanced = now;
        }
        by
    }
}
