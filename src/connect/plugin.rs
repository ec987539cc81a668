//! What a connector plugin is: its class names, its config definition, how it splits its
//! work into task configs, and the source or sink tasks it starts. Every connector folder
//! under `connectors/` provides one [`Plugin`]; the runtime drives the tasks.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use super::config::{ConfigDef, Parsed, RawConfig};
use super::record::ConnectRecord;

/// Whether a connector moves data into topics or out of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Reads an external system, writes topics.
    Source,
    /// Reads topics, writes an external system.
    Sink,
}

/// What a source task's poll read: records, and where in its source each part it read from
/// (a source partition) stands once they are written. Partitions and offsets are JSON objects
/// of the connector's choosing, e.g. `{"filename": …}` → `{"position": …}`, as in Kafka
/// Connect; unlike Connect, offsets are given per batch, not per record, as the runtime writes
/// a batch and the offsets it reached in one transaction anyway.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceBatch {
    /// The records (each one's `topic` says where it goes).
    pub records: Vec<ConnectRecord>,
    /// Per source partition read: the offset it reached (each partition once).
    pub offsets: Vec<(Value, Value)>,
}

impl SourceBatch {
    /// A batch with room for `n` records.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            records: Vec::with_capacity(n),
            offsets: Vec::new(),
        }
    }

    /// Adds a record read from `partition`, which stands at `offset` after it.
    pub fn push(&mut self, record: ConnectRecord, partition: &Value, offset: Value) {
        self.records.push(record);
        self.reach(partition, offset);
    }

    /// Says that `partition` stands at `offset` once the batch is written.
    pub fn reach(&mut self, partition: &Value, offset: Value) {
        // Batches usually come from one partition, the last one pushed: look there first.
        match self.offsets.iter_mut().rev().find(|(p, _)| p == partition) {
            Some((_, o)) => *o = offset,
            None => self.offsets.push((partition.clone(), offset)),
        }
    }

    /// Whether the batch holds nothing: no record and no offset.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.offsets.is_empty()
    }
}

/// Looks up the committed offset of a source partition.
type OffsetLookup = Arc<dyn Fn(&Value) -> Option<Value> + Send + Sync>;

/// What a source task may ask the runtime.
#[derive(Clone)]
pub struct SourceContext {
    /// The connector's name.
    pub connector: String,
    /// The task's number.
    pub task: u32,
    offsets: OffsetLookup,
}

impl std::fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceContext")
            .field("connector", &self.connector)
            .field("task", &self.task)
            .finish()
    }
}

impl SourceContext {
    /// A context whose committed offsets come from `offsets`.
    pub fn new(
        connector: impl Into<String>,
        task: u32,
        offsets: impl Fn(&Value) -> Option<Value> + Send + Sync + 'static,
    ) -> Self {
        Self {
            connector: connector.into(),
            task,
            offsets: Arc::new(offsets),
        }
    }

    /// The committed offset of a source partition: written in the same transaction as the last
    /// records read from it, so a task that resumes from it neither repeats nor skips a record.
    pub fn offset(&self, partition: &Value) -> Option<Value> {
        (self.offsets)(partition)
    }
}

/// An error of a task. `retriable` errors are retried per `errors.retry.timeout`; others fail
/// the task (with the message as its trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// What went wrong (never a secret).
    pub message: String,
    /// Whether trying again may succeed (a connection refused, a timeout, a 5xx).
    pub retriable: bool,
}

impl TaskError {
    /// An error that trying again may fix.
    pub fn retriable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retriable: true,
        }
    }

    /// An error that fails the task.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retriable: false,
        }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A running source task.
#[async_trait]
pub trait SourceTask: Send {
    /// Reads what is available (waiting a little if nothing is: the runtime calls it in a
    /// loop). An empty answer is fine. The records and their source offsets are written in one
    /// transaction before the next poll.
    async fn poll(&mut self) -> Result<SourceBatch, TaskError>;

    /// Whether the runtime may poll the next batch while the last one is being written (it
    /// does by default: a batch read ahead and then lost in a crash was never written with its
    /// offsets, so it is read again). A source that acknowledges its reads upstream in
    /// [`Self::committed`] must say no: it would acknowledge what it read ahead.
    fn polls_ahead(&self) -> bool {
        true
    }

    /// Called after the records of the last poll were written (for sources that acknowledge
    /// their reads upstream, e.g. a replication slot).
    async fn committed(&mut self) -> Result<(), TaskError> {
        Ok(())
    }
}

/// How a sink's write of a batch went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutError {
    /// The whole batch can be tried again (retried per `errors.retry.timeout`).
    Retriable(String),
    /// These records (by index in the batch) can never be written: dead letter or fail per
    /// `errors.tolerance`; the others were written.
    Records(Vec<(usize, String)>),
    /// The task cannot go on.
    Fatal(String),
}

/// What [`SinkTask::flush`] hands back: completes when everything put before it is durable in
/// the external system (`Err`: it may not be; the message says why).
pub type Flush = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'static>>;

/// A running sink task.
#[async_trait]
pub trait SinkTask: Send {
    /// Writes a batch to the external system. A batch's offsets are committed only after it
    /// returns `Ok` (or the failed records went to the dead-letter topic) and its
    /// [`Self::flush`] completed: at-least-once delivery.
    async fn put(&mut self, records: &[ConnectRecord]) -> Result<(), PutError>;

    /// Starts making everything put so far durable (Kafka Connect's `flush`), called after each
    /// batch's `put`. The future does not hold the task: the runtime puts the next batch while
    /// it runs (so two flushes may run at once), and commits the batches' offsets in order,
    /// each once its flush completed; a failed flush fails the task with nothing more
    /// committed, so the batch is delivered again. By default `put` is durable when
    /// it returns and there is nothing to wait for.
    fn flush(&mut self) -> Flush {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether `put` reads keys and values only as their stored JSON text
    /// ([`ConnectRecord::write_key`], [`ConnectRecord::write_value`]): records then reach it
    /// as text, with no JSON value built for them, unless a transform needs the values.
    fn reads_text(&self) -> bool {
        false
    }
}

/// A connector plugin.
pub trait Connector: Send + Sync {
    /// Its full class name (Kafka's where one exists).
    fn class(&self) -> &'static str;

    /// Other names it is known by (the simple class name, short aliases).
    fn aliases(&self) -> &'static [&'static str];

    /// Source or sink.
    fn kind(&self) -> Kind;

    /// Its version.
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    /// Its own keys (the runtime adds the common ones: `name`, `tasks.max`, `errors.*`, …).
    fn config_def(&self) -> ConfigDef;

    /// Checks across keys that a single key's validator cannot make: `(key, message)` pairs.
    fn validate(&self, _config: &Parsed) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Splits the work into at most `max_tasks` task configs (the connector's config plus
    /// whatever each task needs).
    fn task_configs(&self, config: &Parsed, max_tasks: usize) -> Result<Vec<RawConfig>, String> {
        let _ = max_tasks;
        Ok(vec![config.raw().clone()])
    }

    /// The topics a source writes, as far as its config tells (for permissions and `topics`).
    fn source_topics(&self, _config: &Parsed) -> Vec<String> {
        Vec::new()
    }

    /// Starts a source task.
    fn source_task(&self, _config: &Parsed, _context: SourceContext) -> Result<Box<dyn SourceTask>, TaskError> {
        Err(TaskError::fatal("not a source connector"))
    }

    /// Starts a sink task.
    fn sink_task(&self, _config: &Parsed, _connector: &str, _task: u32) -> Result<Box<dyn SinkTask>, TaskError> {
        Err(TaskError::fatal("not a sink connector"))
    }
}

/// Whether `name` names this plugin: its class, its simple class name, or an alias.
pub fn names(c: &dyn Connector, name: &str) -> bool {
    let class = c.class();
    name == class || class.rsplit('.').next() == Some(name) || c.aliases().contains(&name)
}
