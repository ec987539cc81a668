//! One task's loop: a source task polls its system and writes records and source offsets in one
//! transaction; a sink task consumes through the group `connect-<name>`, writes to its system
//! and commits only what was acknowledged. Both apply the transform chain and the error
//! policy (retries with backoff, tolerance, dead letters), and obey pause and stop.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesOrdered;
use serde_json::Value;
use tokio::sync::watch;

use super::common::{Common, Tolerance};
use super::metrics::TaskMetrics;
use super::plugin::{Flush, PutError, SinkTask, SourceBatch, SourceTask, TaskError};
use super::record::ConnectRecord;
use super::status::{State, Target};
use super::transforms::Chain;
use crate::broker::groups::{Committer, OffsetReset, PartitionOffset, Polled};
use crate::broker::produce::{PayloadInput, ProduceRequest, RecordInput, ValueInput};
use crate::broker::{
    Broker, Caller, Consumer, JoinOptions, PreparedTxn, StateTable, StateWrite, Subscription, Transaction, TxnProduce,
};
use crate::error::ErrorCode;
use crate::storage::Format;

/// A task's current state and failure trace, shared with the status API.
#[derive(Debug, Clone)]
pub struct TaskStatus {
    /// The state.
    pub state: State,
    /// Why it failed.
    pub trace: Option<String>,
}

/// Shared task status.
pub type StatusCell = Arc<Mutex<TaskStatus>>;

/// Everything a task loop needs.
pub struct TaskRun {
    /// The broker.
    pub broker: Broker,
    /// The connector's principal.
    pub caller: Caller,
    /// The connector.
    pub connector: String,
    /// The task's number.
    pub task: u32,
    /// The common keys.
    pub common: Common,
    /// The transforms.
    pub chain: Chain,
    /// Its status.
    pub status: StatusCell,
    /// What it is asked to be.
    pub target: watch::Receiver<Target>,
    /// Its metrics.
    pub metrics: TaskMetrics,
}

/// Where a record failed, as Connect's `__connect.errors.stage` names it.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    /// Reading the source.
    TaskPoll,
    /// Writing the external system.
    TaskPut,
    /// A transform.
    Transformation,
    /// Reading the stored value.
    ValueConverter,
    /// Writing to a topic.
    KafkaProduce,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Self::TaskPoll => "TASK_POLL",
            Self::TaskPut => "TASK_PUT",
            Self::Transformation => "TRANSFORMATION",
            Self::ValueConverter => "VALUE_CONVERTER",
            Self::KafkaProduce => "KAFKA_PRODUCE",
        }
    }
}

/// Retries with exponential backoff and jitter until `errors.retry.timeout` runs out.
struct Backoff<'a> {
    run: &'a TaskRun,
    what: &'static str,
    started: Instant,
    delay: Duration,
}

impl Backoff<'_> {
    /// After a failure: waits before the next try and returns true, or returns false when the
    /// error is not retriable, the time is up or the task is stopping.
    async fn again(&mut self, e: &TaskError) -> bool {
        let run = self.run;
        let timeout = run.common.retry_timeout_ms;
        let elapsed = self.started.elapsed().as_millis() as i64;
        if !e.retriable || timeout == 0 || (timeout > 0 && elapsed >= timeout) || run.stopping() {
            return false;
        }
        run.metrics.retries.increment(1);
        tracing::warn!(connector = %run.connector, task = run.task, error = %e.message, what = self.what, "retrying");
        let max_delay = Duration::from_millis(run.common.retry_delay_max_ms);
        let jitter = self.delay.mul_f64(fastrand::f64() * 0.5);
        let mut wait = (self.delay + jitter).min(max_delay);
        if timeout > 0 {
            wait = wait.min(Duration::from_millis((timeout - elapsed).max(1) as u64));
        }
        tokio::time::sleep(wait).await;
        self.delay = (self.delay * 2).min(max_delay);
        true
    }
}

/// A task ends: stopped as asked, or failed with a trace.
#[derive(Debug)]
pub enum Ended {
    /// Stopped.
    Stopped,
    /// Failed.
    Failed(String),
}

impl TaskRun {
    fn set(&self, state: State, trace: Option<String>) {
        let mut s = self.status.lock().expect("task status lock");
        s.state = state;
        s.trace = trace;
    }

    /// Waits while paused. Returns false when the task is to stop.
    async fn runnable(&self, target_rx: &mut watch::Receiver<Target>) -> bool {
        loop {
            if self.broker.shutdown_token().is_cancelled() {
                return false;
            }
            let target = *target_rx.borrow_and_update();
            match target {
                Target::Running => {
                    self.set(State::Running, None);
                    return true;
                }
                Target::Stopped => return false,
                Target::Paused => {
                    self.set(State::Paused, None);
                    if target_rx.changed().await.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    /// Whether the task should stop now (checked between operations).
    fn stopping(&self) -> bool {
        *self.target.borrow() == Target::Stopped || self.broker.shutdown_token().is_cancelled()
    }

    /// A retry schedule per `errors.retry.timeout` and `errors.retry.delay.max.ms`.
    fn backoff(&self, what: &'static str) -> Backoff<'_> {
        Backoff {
            run: self,
            what,
            started: Instant::now(),
            delay: Duration::from_millis(100),
        }
    }

    /// Handles a failed record per `errors.tolerance`: with `all` it is logged, counted and
    /// dead-lettered (when a topic is set) and the task goes on; with `none` the task fails.
    async fn record_failed(
        &self,
        stage: Stage,
        error: &str,
        record: &ConnectRecord,
        original: Option<(&str, u32, u64)>,
    ) -> Result<(), String> {
        self.metrics.errors.increment(1);
        if self.common.log_errors {
            let position = original.map(|(t, p, o)| format!("{t}/{p}@{o}")).unwrap_or_default();
            if self.common.log_messages {
                tracing::warn!(connector = %self.connector, task = self.task, stage = stage.as_str(), error, position, key = %record.key, value = %record.value, "record failed");
            } else {
                tracing::warn!(connector = %self.connector, task = self.task, stage = stage.as_str(), error, position, "record failed");
            }
        }
        if self.common.tolerance == Tolerance::None {
            return Err(format!("{} failed: {error}", stage.as_str()));
        }
        if let Some(topic) = &self.common.dlq_topic {
            self.dead_letter(topic, stage, error, record, original)
                .await
                .map_err(|e| format!("writing to the dead-letter topic '{topic}' failed: {e}"))?;
        }
        Ok(())
    }

    async fn dead_letter(
        &self,
        topic: &str,
        stage: Stage,
        error: &str,
        record: &ConnectRecord,
        original: Option<(&str, u32, u64)>,
    ) -> Result<(), String> {
        let mut headers: Vec<(String, String)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        if self.common.dlq_headers {
            let mut h = |k: &str, v: String| headers.push((format!("__connect.errors.{k}"), v));
            if let Some((t, p, o)) = original {
                h("topic", t.to_owned());
                h("partition", p.to_string());
                h("offset", o.to_string());
            }
            h("connector.name", self.connector.clone());
            h("task.id", self.task.to_string());
            h("stage", stage.as_str().to_owned());
            h("exception.message", error.to_owned());
        }
        let key = record.key_bytes();
        let value = record.value_bytes();
        let header_bytes: Vec<(&[u8], &[u8])> = headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
        let req = ProduceRequest {
            records: vec![RecordInput {
                key: key.as_deref().map(PayloadInput::JsonLine),
                value: value
                    .as_deref()
                    .map_or(ValueInput::Null, |v| ValueInput::Given(PayloadInput::JsonLine(v))),
                headers: header_bytes,
                partition: None,
                timestamp: record.timestamp,
            }],
            key_format: Format::Json,
            value_format: Format::Json,
            durability: None,
            idempotency: None,
        };
        ensure_topic(&self.broker, &self.caller, topic, 1).await?;
        let outcome = self
            .broker
            .produce(&self.caller, topic, req)
            .await
            .map_err(|e| e.detail)?;
        if let Some(Err(e)) = outcome.results().next() {
            return Err(e.detail.clone());
        }
        self.metrics.dead_lettered.increment(1);
        Ok(())
    }

    /// Runs the chain on a record; a failure goes through [`Self::record_failed`].
    async fn transform(
        &self,
        record: ConnectRecord,
        original: Option<(&str, u32, u64)>,
    ) -> Result<Option<ConnectRecord>, String> {
        if self.chain.is_empty() {
            return Ok(Some(record));
        }
        match self.chain.apply(record.clone()) {
            Ok(r) => Ok(r),
            Err((alias, e)) => {
                let error = format!("transform '{alias}': {e}");
                self.record_failed(Stage::Transformation, &error, &record, original)
                    .await
                    .map(|()| None)
            }
        }
    }
}

/// Creates a topic if it does not exist yet.
pub async fn ensure_topic(broker: &Broker, caller: &Caller, topic: &str, partitions: u32) -> Result<(), String> {
    match broker
        .create_topic(caller, topic, Some(partitions), &BTreeMap::new())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == ErrorCode::TopicAlreadyExists => Ok(()),
        Err(e) => Err(format!("topic '{topic}': {}", e.detail)),
    }
}

/// The state table of a connector's source offsets.
pub fn offsets_table(connector: &str) -> StateTable {
    StateTable::new(format!("connector:{connector}"), "offsets").expect("connector names are valid state names")
}

/// The key of a source partition in the offsets table: its canonical JSON text.
pub fn partition_key(partition: &Value) -> Vec<u8> {
    partition.to_string().into_bytes()
}

/// Batches a source task may have read ahead of the one being written (being prepared or
/// prepared): enough to keep every stage busy while another is slow for a moment.
const AHEAD: usize = 4;

/// Runs a source task until it is stopped or fails.
///
/// A task that may poll ahead runs as a pipeline: while batch N is written (on the log writer),
/// the batches after it are encoded and checked by the broker (on blocking threads:
/// [`prepare_beside`]) and the next one is read from the source (on the task), up to
/// [`AHEAD`] batches ahead; one write at a time, in the order the batches were read, the batches
/// that became ready meanwhile merged into one transaction ([`next_write`]). A batch's offsets
/// are written with it, so a batch read ahead and never written is read again after a restart
/// (still exactly once). A task that may not (it acknowledges upstream what it
/// hands out) has one batch at a time.
pub async fn run_source(run: TaskRun, task: Box<dyn SourceTask>) -> Ended {
    if task.polls_ahead() {
        run_pipelined(&run, task).await
    } else {
        run_serial(&run, task).await
    }
}

/// One batch at a time: poll, prepare, write, acknowledge.
async fn run_serial(run: &TaskRun, mut task: Box<dyn SourceTask>) -> Ended {
    let table = offsets_table(&run.connector);
    let mut target = run.target.clone();
    loop {
        if !run.runnable(&mut target).await {
            return Ended::Stopped;
        }
        let polled = match next_polled(run, &table, task.as_mut()).await {
            None => return Ended::Stopped,
            Some(Ok(None)) => {
                tokio::task::yield_now().await;
                continue;
            }
            Some(Ok(Some(p))) => p,
            Some(Err(trace)) => return Ended::Failed(trace),
        };
        let written = match prepare_beside(run, polled).await {
            Ok(ready) => write_ready(run, ready).await,
            Err(trace) => Err(trace),
        };
        if let Err(trace) = written {
            return Ended::Failed(trace);
        }
        if let Err(e) = task.committed().await {
            return Ended::Failed(format!("acknowledging the source failed: {}", e.message));
        }
    }
}

/// What a poll in flight gives back: the task (moved into the poll while it runs) and the
/// batch, as [`next_polled`] answers.
type Polling<'a> = Pin<Box<dyn Future<Output = (Box<dyn SourceTask>, Option<PolledResult>)> + Send + 'a>>;

/// A poll's batch: `Ok(None)` when there is nothing to write.
type PolledResult = Result<Option<PolledBatch>, String>;

/// The pipeline of a task that may poll ahead (see [`run_source`]). While the task is paused
/// or stopping nothing new starts; what is in flight finishes first.
async fn run_pipelined(run: &TaskRun, task: Box<dyn SourceTask>) -> Ended {
    let table = offsets_table(&run.connector);
    let mut target = run.target.clone();
    let mut idle = Some(task);
    let mut polling: Option<Polling<'_>> = None;
    let mut preparing = FuturesOrdered::new();
    let mut ready: VecDeque<ReadyBatch> = VecDeque::new();
    let mut writing = None;
    let max_records = run.broker.config().max_records_per_request;
    // The runtime dropped the task's target: it is going away.
    let mut detached = false;
    // The target the task's status last showed.
    let mut shown = None;
    loop {
        let now = *target.borrow_and_update();
        if shown != Some(now) && !detached {
            match now {
                Target::Running => run.set(State::Running, None),
                Target::Paused => run.set(State::Paused, None),
                Target::Stopped => {}
            }
            shown = Some(now);
        }
        let running = !detached && now == Target::Running && !run.broker.shutdown_token().is_cancelled();
        if running {
            if writing.is_none()
                && let Some(batch) = next_write(&mut ready, max_records)
            {
                writing = Some(Box::pin(write_ready(run, batch)));
            }
            if preparing.len() + ready.len() < AHEAD
                && let Some(mut task) = idle.take()
            {
                let table = &table;
                polling = Some(Box::pin(async move {
                    let polled = next_polled(run, table, task.as_mut()).await;
                    (task, polled)
                }));
            }
        } else if writing.is_none() && polling.is_none() && preparing.is_empty() {
            // Paused or stopping, with nothing in flight: wait until running again.
            if detached || !run.runnable(&mut target).await {
                return Ended::Stopped;
            }
            continue;
        }
        tokio::select! {
            written = async { writing.as_mut().expect("checked").await }, if writing.is_some() => {
                writing = None;
                if let Err(trace) = written {
                    return Ended::Failed(trace);
                }
            }
            Some(prepared) = preparing.next(), if !preparing.is_empty() => match prepared {
                Ok(batch) => ready.push_back(batch),
                Err(trace) => return Ended::Failed(trace),
            },
            (task, polled) = async { polling.as_mut().expect("checked").await }, if polling.is_some() => {
                polling = None;
                idle = Some(task);
                match polled {
                    Some(Ok(Some(batch))) => preparing.push_back(prepare_beside(run, batch)),
                    Some(Err(trace)) => return Ended::Failed(trace),
                    // Nothing to write, or stopped: the loop looks at the target again.
                    Some(Ok(None)) | None => tokio::task::yield_now().await,
                }
            }
            changed = target.changed(), if !detached => detached = changed.is_err(),
        }
    }
}

/// The next write: the first ready batch, with the prepared batches queued after it merged in
/// while the records stay within `max` (the most one transaction may hold). Batches that became
/// ready while the write before them ran are written in one transaction, all or none, their
/// records in the order they were read and the offsets of the last one staying: the log writer
/// writes larger groups instead of waiting between small ones.
fn next_write(ready: &mut VecDeque<ReadyBatch>, max: usize) -> Option<ReadyBatch> {
    let mut first = ready.pop_front()?;
    while let Some(next) = ready.pop_front() {
        match first.merge(next, max) {
            Ok(()) => {}
            Err(next) => {
                ready.push_front(*next);
                break;
            }
        }
    }
    Some(first)
}

/// Polls the next batch and transforms it: `None` when the task is stopped first,
/// `Some(Ok(None))` when there is nothing to write.
async fn next_polled(
    run: &TaskRun,
    table: &StateTable,
    task: &mut dyn SourceTask,
) -> Option<Result<Option<PolledBatch>, String>> {
    let stop = run.target.clone();
    let polled = tokio::select! {
        r = poll_with_retries(run, task) => r,
        () = stopped(stop) => return None,
    };
    run.metrics.polled();
    Some(match polled {
        Ok(batch) if batch.is_empty() => Ok(None),
        Ok(batch) => transform_batch(run, table, batch).await,
        Err(e) => Err(format!("TASK_POLL failed: {}", e.message)),
    })
}

/// Polls a source, retrying per the error policy.
async fn poll_with_retries(run: &TaskRun, task: &mut dyn SourceTask) -> Result<SourceBatch, TaskError> {
    let mut backoff = run.backoff("poll");
    loop {
        match task.poll().await {
            Ok(r) => return Ok(r),
            Err(e) if backoff.again(&e).await => {}
            Err(e) => return Err(e),
        }
    }
}

/// Completes when the target becomes `Stopped`.
async fn stopped(mut target: watch::Receiver<Target>) {
    let _ = target.wait_for(|t| *t == Target::Stopped).await;
}

/// A polled batch with its records transformed and the offsets it reached as state writes.
struct PolledBatch {
    out: Vec<ConnectRecord>,
    state: Vec<StateWrite>,
}

/// A polled batch with its transaction prepared by the broker (`None` when preparing failed:
/// it is prepared again, and the failure handled, when the batch is written).
struct ReadyBatch {
    out: Vec<ConnectRecord>,
    state: Vec<StateWrite>,
    prepared: Option<PreparedTxn>,
}

impl ReadyBatch {
    /// Appends `next` to this batch, to be written in one transaction (see [`next_write`]);
    /// `next` comes back when either was not prepared or both hold more than `max` records.
    fn merge(&mut self, next: ReadyBatch, max: usize) -> Result<(), Box<ReadyBatch>> {
        if self.prepared.is_none() || self.out.len() + next.out.len() > max {
            return Err(Box::new(next));
        }
        let mut next = next;
        let (Some(first), Some(more)) = (self.prepared.as_mut(), next.prepared.take()) else {
            return Err(Box::new(next));
        };
        if let Err(more) = first.merge(more) {
            next.prepared = Some(*more);
            return Err(Box::new(next));
        }
        self.out.extend(next.out);
        self.state.extend(next.state);
        Ok(())
    }
}

/// Transforms a polled batch (`None`: nothing to write).
async fn transform_batch(run: &TaskRun, table: &StateTable, batch: SourceBatch) -> Result<Option<PolledBatch>, String> {
    run.metrics.records_in.increment(batch.records.len() as u64);
    let out = if run.chain.is_empty() {
        batch.records
    } else {
        let mut out = Vec::with_capacity(batch.records.len());
        for mut r in batch.records {
            r.decode_text()
                .map_err(|e| format!("TASK_POLL failed: a record's JSON text does not parse: {e}"))?;
            if let Some(t) = run.transform(r, None).await? {
                out.push(t);
            }
        }
        out
    };
    let offsets: BTreeMap<Vec<u8>, Vec<u8>> = batch
        .offsets
        .iter()
        .map(|(p, o)| (partition_key(p), o.to_string().into_bytes()))
        .collect();
    let state: Vec<StateWrite> = offsets
        .into_iter()
        .map(|(key, value)| StateWrite::Put {
            table: table.clone(),
            key,
            value,
        })
        .collect();
    Ok((!out.is_empty() || !state.is_empty()).then_some(PolledBatch { out, state }))
}

/// Encodes a batch and has the broker check it, on a blocking thread: the CPU-heavy part of
/// writing, done beside the task's reading and the log writer's writing.
async fn prepare_beside(run: &TaskRun, batch: PolledBatch) -> Result<ReadyBatch, String> {
    let (broker, caller) = (run.broker.clone(), run.caller.clone());
    tokio::task::spawn_blocking(move || {
        let PolledBatch { out, state } = batch;
        let prepared = Encoded::new(&out)
            .ok()
            .and_then(|bytes| broker.prepare(&caller, source_txn(&bytes, &state)).ok());
        ReadyBatch { out, state, prepared }
    })
    .await
    // A panic lost the batch, which was not written: the task fails and reads it again.
    .map_err(|e| format!("KAFKA_PRODUCE failed: preparing a batch: {e}"))
}

/// The transaction of a batch: its records and the source offsets they reach.
fn source_txn<'a>(bytes: &'a Encoded<'_>, state: &[StateWrite]) -> Transaction<'a> {
    Transaction {
        produce: bytes.produce(),
        commit: None,
        state: state.to_vec(),
        durability: None,
    }
}

/// Writes a ready batch's records and offsets in one transaction, retrying per the error
/// policy (a retry prepares the transaction again).
async fn write_ready(run: &TaskRun, ready: ReadyBatch) -> Result<(), String> {
    let ReadyBatch {
        out,
        state,
        mut prepared,
    } = ready;
    let mut backoff = run.backoff("write");
    // A topic deleted after the batch was prepared is created again, as preparing does.
    let mut recreated = 0;
    loop {
        let p = match prepared.take() {
            Some(p) => Ok(p),
            None => prepare(run, &out, &state).await,
        };
        let e = match p {
            Ok(p) => match run.broker.write_prepared(p).await {
                Ok(_) => {
                    run.metrics.records_out.increment(out.len() as u64);
                    return Ok(());
                }
                Err(e) if e.code == ErrorCode::TopicNotFound && recreated < out.len() => {
                    recreated += 1;
                    continue;
                }
                // The store asks its clients to wait: a task waits as any client does (this is
                // not a failure of the source, so `errors.retry.timeout` does not apply).
                Err(e) if e.backpressure_wait().is_some() && !run.stopping() => {
                    run.metrics.retries.increment(1);
                    tokio::time::sleep(e.backpressure_wait().unwrap_or_default()).await;
                    continue;
                }
                Err(e) => task_error(e),
            },
            Err(e) => e,
        };
        if !backoff.again(&e).await {
            return Err(format!("KAFKA_PRODUCE failed: {}", e.message));
        }
    }
}

/// Prepares the transaction of a batch and its source offsets; a topic that does not exist yet
/// is created and the transaction prepared again.
async fn prepare(run: &TaskRun, out: &[ConnectRecord], state: &[StateWrite]) -> Result<PreparedTxn, TaskError> {
    let bytes = Encoded::new(out)?;
    let mut created = 0;
    loop {
        match run.broker.prepare(&run.caller, source_txn(&bytes, state)) {
            Ok(p) => return Ok(p),
            // The store asks its clients to wait: a task waits as any client does.
            Err(e) if e.backpressure_wait().is_some() && !run.stopping() => {
                run.metrics.retries.increment(1);
                tokio::time::sleep(e.backpressure_wait().unwrap_or_default()).await;
            }
            Err(e) if e.code == ErrorCode::TopicNotFound && created < out.len() => {
                let topic = missing_topic(&e.field, out);
                ensure_topic(&run.broker, &run.caller, &topic, run.common.default_partitions)
                    .await
                    .map_err(TaskError::fatal)?;
                created += 1;
            }
            Err(e) => return Err(task_error(e)),
        }
    }
}

/// A broker error as a task error: retriable when the broker is busy or shutting down.
fn task_error(e: crate::error::Error) -> TaskError {
    match e.code {
        ErrorCode::Unavailable | ErrorCode::Overloaded | ErrorCode::QuotaExceeded => TaskError::retriable(e.detail),
        _ => TaskError::fatal(format!("{}: {}", e.code, e.detail)),
    }
}

/// Which topic a `topic_not_found` of a transaction was about (`produce[i].topic`).
fn missing_topic(field: &Option<String>, records: &[ConnectRecord]) -> String {
    let topics = group_topics(records);
    field
        .as_deref()
        .and_then(|f| f.strip_prefix("produce["))
        .and_then(|f| f.split(']').next())
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| topics.get(i).cloned())
        .unwrap_or_default()
}

/// The distinct topics of a batch, in first-seen order.
fn group_topics(records: &[ConnectRecord]) -> Vec<String> {
    let mut topics: Vec<String> = Vec::new();
    for r in records {
        if !topics.contains(&r.topic) {
            topics.push(r.topic.clone());
        }
    }
    topics
}

/// A batch's records as the bytes the broker stores, grouped by topic: keys and values as
/// compact JSON text, handed to the broker as single-line JSON, which it stores without parsing
/// again. A record that carries its own text (a source wrote it) lends it; the others' are
/// written one after another into one buffer (no allocation per record).
struct Encoded<'a> {
    records: &'a [ConnectRecord],
    /// The JSON text of the keys and values of records without text of their own.
    text: String,
    /// Per record without text of its own: where its key and its value are in `text`.
    spans: Vec<(Span, Span)>,
    headers: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// Where a key or value is in [`Encoded`]'s text (`None`: no key, a tombstone).
type Span = Option<Range<usize>>;

impl<'a> Encoded<'a> {
    fn new(records: &'a [ConnectRecord]) -> Result<Self, TaskError> {
        let written = records.iter().filter(|r| r.text.is_none()).count();
        let mut text = Vec::with_capacity(written * 128);
        let mut span = |write: &dyn Fn(&mut Vec<u8>) -> bool| -> Span {
            let start = text.len();
            write(&mut text).then_some(start..text.len())
        };
        let spans = records
            .iter()
            .map(|r| match r.text {
                Some(_) => (None, None),
                None => (span(&|t| r.write_key(t)), span(&|t| r.write_value(t))),
            })
            .collect();
        // JSON text is UTF-8: a failure here would be a bug, and fails the task, not the data.
        let text = String::from_utf8(text).map_err(|e| TaskError::fatal(format!("encoding a batch: {e}")))?;
        Ok(Self {
            records,
            text,
            spans,
            headers: records.iter().map(ConnectRecord::header_bytes).collect(),
        })
    }

    /// Record `i`'s key as JSON text: its own, or as written into `text`.
    fn key(&self, i: usize) -> Option<PayloadInput<'_>> {
        match &self.records[i].text {
            Some(own) => own.key.as_deref().map(PayloadInput::JsonLine),
            None => self.written(&self.spans[i].0),
        }
    }

    /// Record `i`'s value as JSON text, as [`Self::key`].
    fn value(&self, i: usize) -> Option<PayloadInput<'_>> {
        match &self.records[i].text {
            Some(own) => own.value.as_deref().map(PayloadInput::JsonLine),
            None => self.written(&self.spans[i].1),
        }
    }

    /// The JSON text at a span of `text`.
    fn written(&self, span: &Span) -> Option<PayloadInput<'_>> {
        span.as_ref()
            .and_then(|s| self.text.get(s.clone()))
            .map(PayloadInput::JsonLine)
    }

    fn produce(&self) -> Vec<TxnProduce<'_>> {
        group_topics(self.records)
            .into_iter()
            .map(|topic| {
                let records = self
                    .records
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.topic == topic)
                    .map(|(i, r)| RecordInput {
                        key: self.key(i),
                        value: self.value(i).map_or(ValueInput::Null, ValueInput::Given),
                        headers: self.headers[i]
                            .iter()
                            .map(|(k, v)| (k.as_slice(), v.as_slice()))
                            .collect(),
                        partition: r.partition.map(i64::from),
                        timestamp: r.timestamp,
                    })
                    .collect();
                TxnProduce {
                    topic,
                    request: ProduceRequest {
                        records,
                        key_format: Format::Json,
                        value_format: Format::Json,
                        durability: None,
                        idempotency: None,
                    },
                }
            })
            .collect()
    }
}

/// The consumer group of a sink connector.
pub fn sink_group(connector: &str) -> String {
    format!("connect-{connector}")
}

/// Runs a sink task until it is stopped or fails.
pub async fn run_sink(run: TaskRun, mut task: Box<dyn SinkTask>) -> Ended {
    let subscription = match &run.common.topics_regex {
        Some(re) => match regex::Regex::new(&format!("^(?:{re})$")) {
            Ok(re) => Subscription::Pattern(re),
            Err(e) => return Ended::Failed(format!("topics.regex: {e}")),
        },
        None => Subscription::Topics(run.common.topics.iter().cloned().collect()),
    };
    let options = JoinOptions {
        subscription,
        session_timeout: Duration::from_secs(30),
        auto_offset_reset: OffsetReset::Earliest,
        strategy: crate::broker::groups::Strategy::Sticky,
        auto_commit: false,
        streaming: false,
        resume: Default::default(),
    };
    let group = sink_group(&run.connector);
    let mut consumer = match join_with_retries(&run, &group, options).await {
        Ok(Some(c)) => c,
        Ok(None) => return Ended::Stopped,
        Err(e) => return Ended::Failed(format!("KAFKA_CONSUME failed: {}", e.message)),
    };
    // A batch polled and read while the one before it was put, and the batches put whose
    // offsets are not committed yet.
    let mut ready: Option<SinkBatch> = None;
    let mut settling = Settling::default();
    // Records as text for a sink that writes text, when no transform needs their values.
    let text = task.reads_text() && run.chain.is_empty();
    loop {
        if run.stopping() {
            return match settling.all(&run).await {
                Ok(()) => Ended::Stopped,
                Err(trace) => Ended::Failed(trace),
            };
        }
        if *run.target.borrow() == Target::Paused {
            if let Err(trace) = settling.all(&run).await {
                return Ended::Failed(trace);
            }
            // Stay in the group while paused: renew the lease now and then.
            run.set(State::Paused, None);
            let mut target = run.target.clone();
            let _ = tokio::time::timeout(Duration::from_secs(5), target.changed()).await;
            let _ = consumer.heartbeat();
            continue;
        }
        run.set(State::Running, None);
        let batch = match ready.take() {
            Some(b) => b,
            None => {
                if let Err(trace) = settling.all(&run).await {
                    return Ended::Failed(trace);
                }
                match poll_batch(&run, &mut consumer, text).await {
                    Ok(Some(b)) => b,
                    Ok(None) => continue,
                    Err(trace) => return Ended::Failed(trace),
                }
            }
        };
        if let Err(trace) = settling.room(&run).await {
            return Ended::Failed(trace);
        }
        // The external system takes this batch while the batches before are flushed and
        // committed and the next one is polled and read.
        let SinkBatch {
            topics,
            records,
            offsets,
        } = batch;
        let work = async {
            tokio::join!(
                deliver(&run, task.as_mut(), &topics, records),
                poll_batch(&run, &mut consumer, text)
            )
        };
        let (delivered, next) = match settling.beside(&run, work).await {
            Ok(done) => done,
            Err(trace) => return Ended::Failed(trace),
        };
        if let Err(trace) = delivered {
            return Ended::Failed(trace);
        }
        settling.put(
            consumer.committer(),
            Written {
                offsets,
                flush: task.flush(),
            },
        );
        match next {
            Ok(b) => ready = b,
            Err(trace) => return Ended::Failed(trace),
        }
    }
}

/// Batches put but not flushed and committed yet, at most [`UNSETTLED`]: each one's flush
/// already runs; their offsets are committed one batch after the other, each once its flush
/// completed, while the loop puts the next batches.
#[derive(Default)]
struct Settling<'a> {
    /// The oldest batch's flush, then commit.
    current: Option<Settle<'a>>,
    /// The batches after it, oldest first, with the member that commits them.
    queued: VecDeque<(Committer, Written)>,
}

/// A batch's flush, then commit.
type Settle<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Batches a sink may have put whose flush has not been committed: two, so that a batch's
/// commit runs beside the next one's flush.
const UNSETTLED: usize = 2;

impl<'a> Settling<'a> {
    fn len(&self) -> usize {
        self.queued.len() + usize::from(self.current.is_some())
    }

    /// A batch was put and its flush started.
    fn put(&mut self, committer: Committer, written: Written) {
        self.queued.push_back((committer, written));
    }

    /// Starts the next batch's settling when none runs.
    fn start(&mut self, run: &'a TaskRun) {
        if self.current.is_none()
            && let Some((committer, written)) = self.queued.pop_front()
        {
            self.current = Some(Box::pin(async move { settle(run, &committer, written).await }));
        }
    }

    /// Settles the oldest batch.
    async fn one(&mut self, run: &'a TaskRun) -> Result<(), String> {
        self.start(run);
        if let Some(current) = self.current.as_mut() {
            let settled = current.await;
            self.current = None;
            settled?;
        }
        Ok(())
    }

    /// Settles batches until there is room for one more.
    async fn room(&mut self, run: &'a TaskRun) -> Result<(), String> {
        while self.len() >= UNSETTLED {
            self.one(run).await?;
        }
        Ok(())
    }

    /// Settles every batch.
    async fn all(&mut self, run: &'a TaskRun) -> Result<(), String> {
        while self.len() > 0 {
            self.one(run).await?;
        }
        Ok(())
    }

    /// Runs `work` while settling batches in order beside it.
    async fn beside<T>(&mut self, run: &'a TaskRun, work: impl Future<Output = T>) -> Result<T, String> {
        let mut work = std::pin::pin!(work);
        loop {
            self.start(run);
            let Some(current) = self.current.as_mut() else {
                return Ok(work.await);
            };
            tokio::select! {
                done = &mut work => return Ok(done),
                settled = current => {
                    self.current = None;
                    settled?;
                }
            }
        }
    }
}

/// A batch the sink took: the offsets to commit once its flush completed.
struct Written {
    offsets: Vec<PartitionOffset>,
    flush: Flush,
}

/// Waits for a written batch's flush, then commits its offsets.
async fn settle(run: &TaskRun, committer: &Committer, written: Written) -> Result<(), String> {
    written.flush.await.map_err(|e| format!("TASK_FLUSH failed: {e}"))?;
    commit(run, committer, written.offsets).await
}

/// Commits the offsets of a written and flushed batch (a partition the group gave to another
/// member meanwhile is skipped: its new owner reads it again from the last commit).
async fn commit(run: &TaskRun, committer: &Committer, offsets: Vec<PartitionOffset>) -> Result<(), String> {
    loop {
        match committer.commit(Some(offsets.clone()), None).await {
            // Refused by backpressure: wait as asked, as any client does.
            Err(e) if e.backpressure_wait().is_some() && !run.stopping() => {
                tokio::time::sleep(e.backpressure_wait().unwrap_or_default()).await;
            }
            Err(e) if e.code != ErrorCode::PartitionNotOwned => {
                return Err(format!("committing offsets failed: {}: {}", e.code, e.detail));
            }
            _ => break,
        }
    }
    run.metrics.set_lag(&run.broker, committer.group());
    Ok(())
}

/// A polled batch read as Connect records, ready for a sink.
struct SinkBatch {
    /// The topics read.
    topics: Vec<String>,
    /// Each record: where it was read, and the record or why it could not be read.
    records: Vec<SinkRecord>,
    /// The offsets to commit once the batch is written.
    offsets: Vec<PartitionOffset>,
}

/// A polled record: where it was read (topic index, partition, offset), and the record or why
/// it could not be read.
type SinkRecord = ((usize, u32, u64), Result<ConnectRecord, String>);

/// Polls the sink's group and reads what came as Connect records, as text when `text` (see
/// [`SinkTask::reads_text`]); `None`: nothing came, or the group rebalanced.
async fn poll_batch(run: &TaskRun, consumer: &mut Consumer, text: bool) -> Result<Option<SinkBatch>, String> {
    let polled = consumer
        .poll(run.common.max_poll_records, 8 << 20, Duration::from_millis(500))
        .await;
    run.metrics.polled();
    let fetched = match polled {
        Ok(Polled::Records(f)) if !f.is_empty() => f,
        Ok(_) => return Ok(None),
        Err(e) => return Err(format!("KAFKA_CONSUME failed: {}: {}", e.code, e.detail)),
    };
    run.metrics
        .records_in
        .increment(fetched.iter().map(|f| f.count as u64).sum());
    Ok(Some(read_batch(fetched, text)))
}

/// Reads fetched records as Connect records (their keys and values as JSON text when `text`).
fn read_batch(fetched: Vec<crate::broker::FetchResult>, text: bool) -> SinkBatch {
    let read = if text {
        ConnectRecord::from_view_text
    } else {
        ConnectRecord::from_view
    };
    let mut batch = SinkBatch {
        topics: Vec::new(),
        records: Vec::new(),
        offsets: Vec::new(),
    };
    for (i, f) in fetched.iter().enumerate() {
        batch.records.extend(f.records().map(|(offset, view)| {
            let record = read(&f.topic, f.partition, offset, &view);
            ((i, f.partition, offset), record)
        }));
        batch.offsets.push(PartitionOffset {
            topic: f.topic.clone(),
            partition: f.partition,
            offset: f.next_offset,
        });
    }
    batch.topics = fetched.into_iter().map(|f| f.topic).collect();
    batch
}

/// How often a sink looks again for topics that do not exist yet.
const TOPIC_WAIT: Duration = Duration::from_millis(500);

/// Joins the sink's group (`None`: stopped first). Like a Kafka consumer, a sink waits for
/// topics that do not exist yet, however long it takes and whatever `errors.retry.timeout`
/// says: a sink is often created before the source that creates its topic with its first
/// records. Other failures are retried per the error policy.
async fn join_with_retries(run: &TaskRun, group: &str, options: JoinOptions) -> Result<Option<Consumer>, TaskError> {
    let mut backoff = run.backoff("join");
    let mut waiting = false;
    loop {
        let e = match Consumer::join(&run.broker, run.caller.clone(), group, options.clone()).await {
            Ok(c) => return Ok(Some(c)),
            Err(e) if e.code == ErrorCode::TopicNotFound => {
                if !waiting {
                    // Waiting is the task's normal work, as a Kafka consumer's is: it runs.
                    if *run.target.borrow() == Target::Running {
                        run.set(State::Running, None);
                    }
                    tracing::info!(connector = %run.connector, task = run.task, reason = %e.detail, "waiting for the sink's topics to be created");
                    waiting = true;
                }
                let shutdown = run.broker.shutdown_token();
                tokio::select! {
                    () = tokio::time::sleep(TOPIC_WAIT) => {}
                    () = stopped(run.target.clone()) => return Ok(None),
                    () = shutdown.cancelled() => return Ok(None),
                }
                continue;
            }
            Err(e) => TaskError::fatal(format!("{}: {}", e.code, e.detail)),
        };
        if !backoff.again(&e).await {
            return Err(e);
        }
    }
}

/// Transforms and writes one polled batch to the sink, handling failed records per the error
/// policy.
async fn deliver(
    run: &TaskRun,
    task: &mut dyn SinkTask,
    topics: &[String],
    records: Vec<SinkRecord>,
) -> Result<(), String> {
    let mut batch: Vec<ConnectRecord> = Vec::with_capacity(records.len());
    // Where each record of the batch was read (transforms may change its topic).
    let mut origins: Vec<(&str, u32, u64)> = Vec::with_capacity(records.len());
    for ((t, partition, offset), record) in records {
        let topic = topics[t].as_str();
        let origin = Some((topic, partition, offset));
        match record {
            Ok(r) => {
                if let Some(t) = run.transform(r, origin).await? {
                    batch.push(t);
                    origins.push((topic, partition, offset));
                }
            }
            Err(e) => {
                let raw = ConnectRecord {
                    topic: topic.to_owned(),
                    partition: Some(partition),
                    offset: Some(offset),
                    ..ConnectRecord::default()
                };
                run.record_failed(Stage::ValueConverter, &e, &raw, origin).await?;
            }
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    let mut backoff = run.backoff("put");
    let result = loop {
        let e = match task.put(&batch).await {
            Ok(()) => break Ok(Vec::new()),
            Err(PutError::Records(failed)) => break Ok(failed),
            Err(PutError::Retriable(e)) => TaskError::retriable(e),
            Err(PutError::Fatal(e)) => TaskError::fatal(e),
        };
        if !backoff.again(&e).await {
            break Err(e);
        }
    };
    let failed = match result {
        Ok(failed) => failed,
        // Unlike Kafka Connect, a batch the external system would not take even after the
        // retries is dead-lettered when errors are tolerated, rather than failing the task.
        Err(e) if run.common.tolerance == Tolerance::All => (0..batch.len()).map(|i| (i, e.message.clone())).collect(),
        Err(e) => return Err(format!("TASK_PUT failed: {}", e.message)),
    };
    run.metrics.put((batch.len() - failed.len()) as u64);
    for (i, error) in failed {
        if let (Some(r), Some(origin)) = (batch.get(i), origins.get(i)) {
            run.record_failed(Stage::TaskPut, &error, r, Some(*origin)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
