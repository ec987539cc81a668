//! The broker: topics, produce, fetch, retention and idempotency, as one service that every
//! door (HTTP today; connectors and streams later) calls with a [`Caller`].
//!
//! Mutations are funnelled through the single log writer thread (`log.rs`); reads go to the
//! store on the blocking pool and wait for new records on per-partition watches.

pub mod caller;
pub mod fetch;
pub mod groups;
mod jwt;
mod log;
pub use log::{raise_thread_priority, set_thread_nice};
pub mod partitioner;
mod pressure;
pub mod produce;
mod quotas;
mod retention;
pub mod state;
mod time_index;
pub mod tokens;
pub mod topics;
pub mod transactions;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use caller::{Caller, CredentialEnd, Operation, Permission, Principal, Resource};
pub use fetch::{FetchRequest, FetchResult, Records, StartAt};
pub use groups::{Consumer, JoinOptions, PollOutcome, Subscription};
pub use produce::{Idempotency, PayloadInput, ProduceOutcome, RecordAck, RecordInput, ValueInput};
pub use state::{StateTable, StateWrite};
pub use topics::{Durability, Partition, Topic, TopicConfig};
pub use transactions::{PreparedTxn, Transaction, TxnCommit, TxnOutcome, TxnProduce};

use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};
use crate::storage::{IdempotencyKey, PartitionKey, Store};
use log::{LogWriter, Op, Registry};
use partitioner::RoundRobin;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A topic's description, as reported to clients.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Settings.
    pub config: TopicConfig,
    /// Per-partition counters.
    pub partitions: Vec<(u32, crate::storage::PartitionStats)>,
}

/// The broker service. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Store,
    registry: Registry,
    writer: LogWriter,
    round_robin: RoundRobin,
    idempotency_locks: Mutex<HashMap<IdempotencyKey, Arc<tokio::sync::Mutex<()>>>>,
    groups: Arc<groups::Groups>,
    tokens: tokens::Tokens,
    jwt: Option<jwt::JwtVerifier>,
    quotas: quotas::Quotas,
    audit_tx: Option<tokio::sync::mpsc::Sender<String>>,
    shutdown: CancellationToken,
    /// Runtimes started on the broker (Connect, Streams): stopped before the log writer.
    runtimes: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Whether the store keeps up with writes (sampled by `pressure::spawn`).
    pressure: pressure::Pressure,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("data_dir", &self.inner.config.data_dir)
            .finish()
    }
}

impl Broker {
    /// Opens the store in `config.data_dir`, loads the topics and starts the log writer and the
    /// retention task. Must be called within a tokio runtime.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let jwt = jwt::JwtVerifier::from_config(&config).await?;
        let (audit_tx, audit_rx) = match &config.audit_topic {
            Some(_) => {
                let (tx, rx) = tokio::sync::mpsc::channel(16_384);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let quotas = quotas::Quotas::new(
            config.quota_requests_per_sec,
            config.quota_produce_bytes_per_sec,
            config.quota_fetch_bytes_per_sec,
        );
        let store = Store::open(&config.data_dir, &config.store)?;
        let shed_at_immutable = config.store.shed_at_immutable();
        let mut topics = HashMap::new();
        for raw in store.topics()? {
            let d: topics::TopicDescriptor = serde_json::from_slice(&raw)?;
            let mut parts = Vec::with_capacity(d.partitions as usize);
            for p in 0..d.partitions {
                let stats = store
                    .partition_stats(PartitionKey {
                        topic_id: d.id,
                        partition: p,
                    })?
                    .unwrap_or_default();
                parts.push(Arc::new(Partition::new(p, stats)));
            }
            topics.insert(d.name.clone(), Arc::new(Topic::new(&d, parts)));
        }
        tracing::info!(topics = topics.len(), data_dir = %config.data_dir.display(), "store opened");
        let registry: Registry = Arc::new(RwLock::new(topics));
        let groups = Arc::new(groups::Groups::load(store.committed_offsets()?));
        let writer = LogWriter::start(
            store.clone(),
            registry.clone(),
            groups.clone(),
            store.last_topic_id()?,
            config.writer_priority_boost,
        )?;
        let tokens = tokens::Tokens::load(store.tokens()?, config.admin_token.as_deref());
        let broker = Self {
            inner: Arc::new(Inner {
                config,
                store,
                registry,
                writer,
                round_robin: RoundRobin::default(),
                idempotency_locks: Mutex::new(HashMap::new()),
                groups,
                tokens,
                jwt,
                quotas,
                audit_tx,
                shutdown: CancellationToken::new(),
                runtimes: Mutex::new(Vec::new()),
                pressure: pressure::Pressure::new(shed_at_immutable),
            }),
        };
        if let (Some(topic), Some(rx)) = (broker.inner.config.audit_topic.clone(), audit_rx) {
            broker.spawn_audit_appender(topic.clone(), rx);
            if broker.lookup(&topic).is_err() {
                broker
                    .create_topic(&Caller::internal(), &topic, Some(1), &BTreeMap::new())
                    .await?;
            }
        }
        retention::spawn(broker.clone());
        groups::spawn(broker.clone());
        pressure::spawn(broker.clone());
        Ok(broker)
    }

    /// The server configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Cancelled when the server begins to shut down; long-lived streams end on it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Registers a runtime's task (Connect, Streams): [`Self::close`] waits for it to end —
    /// it ends on [`Self::shutdown_token`] — before it stops the log writer, so that nothing
    /// the runtime had acknowledged is lost.
    pub fn register_runtime(&self, task: tokio::task::JoinHandle<()>) {
        self.inner.runtimes.lock().expect("runtimes lock").push(task);
    }

    /// Stops background work and the runtimes, writes out everything queued, flushes the
    /// write-ahead log and stops the store's flushes and compactions. Call it once, after the
    /// HTTP server has drained; nothing writes to the broker after it.
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        let runtimes = std::mem::take(&mut *self.inner.runtimes.lock().expect("runtimes lock"));
        let grace = std::time::Duration::from_millis(self.inner.config.shutdown_grace_ms);
        for task in runtimes {
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!("a runtime did not stop within the shutdown grace period");
            }
        }
        let b = self.clone();
        let stop = move || {
            b.inner.writer.shutdown();
            b.inner.store.quiesce();
        };
        if tokio::task::spawn_blocking(stop).await.is_err() {
            tracing::error!("the log writer did not stop cleanly");
        }
    }

    /// Whether callers must authenticate (an identity source is configured).
    pub fn auth_enabled(&self) -> bool {
        self.inner.config.auth_enabled()
    }

    /// Writes an audit line: who changed what. Also appended to `audit_topic` when configured.
    pub fn audit(&self, caller: &Caller, action: &str, resource: Resource, name: &str) {
        let principal = caller.principal.name();
        tracing::info!(target: "audit", principal = %principal, action, resource = ?resource, name, request_id = ?caller.request_id, "audit");
        if let Some(tx) = &self.inner.audit_tx {
            let line = serde_json::json!({"time": now_ms(), "principal": principal, "action": action,
                "resource": resource, "name": name})
            .to_string();
            if tx.try_send(line).is_err() {
                tracing::warn!(action, "audit topic appender is behind; this line is only in the log");
            }
        }
    }

    /// Appends audit lines to the audit topic one at a time, in the order they were made.
    fn spawn_audit_appender(&self, topic: String, mut rx: tokio::sync::mpsc::Receiver<String>) {
        let broker = self.clone();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                let req = produce::ProduceRequest {
                    records: vec![RecordInput {
                        key: None,
                        value: ValueInput::Given(PayloadInput::Json(&line)),
                        headers: Vec::new(),
                        partition: None,
                        timestamp: None,
                    }],
                    key_format: crate::storage::Format::Json,
                    value_format: crate::storage::Format::Json,
                    durability: None,
                    idempotency: None,
                };
                if let Err(e) = broker.produce(&Caller::internal(), &topic, req).await {
                    tracing::warn!(error = %e, topic, "could not append to the audit topic");
                }
            }
        });
    }

    /// Counts one request against the caller's requests-per-second quota.
    pub fn charge_request(&self, caller: &Caller) -> Result<()> {
        self.inner.quotas.take(caller, quotas::Kind::Requests, 1, false)
    }

    /// Bytes used by the store, for a caller that may describe the cluster.
    pub async fn storage_bytes(&self, caller: &Caller) -> Result<u64> {
        caller::authorize(caller, Operation::Describe, Resource::Cluster, tokens::CLUSTER)?;
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.size_bytes())
            .await
            .map_err(Error::internal)
    }

    /// Looks a live topic up by name.
    pub fn topic(&self, caller: &Caller, name: &str) -> Result<Arc<Topic>> {
        caller::authorize(caller, Operation::Describe, caller::Resource::Topic, name)?;
        self.lookup(name)
    }

    /// Looks a live topic up by name for a caller that may read it.
    pub fn topic_for_read(&self, caller: &Caller, name: &str) -> Result<Arc<Topic>> {
        caller::authorize(caller, Operation::Read, caller::Resource::Topic, name)?;
        self.lookup(name)
    }

    fn lookup(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner
            .registry
            .read()
            .expect("registry lock")
            .get(name)
            .cloned()
            .ok_or_else(|| Error::topic_not_found(name))
    }

    fn all_topics(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self
            .inner
            .registry
            .read()
            .expect("registry lock")
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Creates a topic.
    pub async fn create_topic(
        &self,
        caller: &Caller,
        name: &str,
        partitions: Option<u32>,
        config: &BTreeMap<String, Value>,
    ) -> Result<TopicInfo> {
        topics::validate_topic_name(name)?;
        caller::authorize(caller, Operation::Create, caller::Resource::Topic, name)?;
        let partitions = partitions.unwrap_or(1);
        validate_partition_count(partitions)?;
        let defaults = self.default_topic_config();
        let mut cfg = defaults.clone();
        cfg.apply(config, &defaults)?;
        let topic = self
            .inner
            .writer
            .call(|reply| Op::CreateTopic {
                name: name.to_owned(),
                partitions,
                config: cfg,
                reply,
            })
            .await?;
        tracing::info!(topic = name, partitions, "topic created");
        self.audit(caller, "topic.create", Resource::Topic, name);
        Ok(describe(&topic))
    }

    /// Lists the topics the caller may see, by name.
    pub fn list_topics(&self, caller: &Caller) -> Vec<TopicInfo> {
        self.all_topics()
            .iter()
            .filter(|t| caller::authorize(caller, Operation::Describe, caller::Resource::Topic, &t.name).is_ok())
            .map(|t| describe(t))
            .collect()
    }

    /// Describes one topic.
    pub fn describe_topic(&self, caller: &Caller, name: &str) -> Result<TopicInfo> {
        Ok(describe(self.topic(caller, name)?.as_ref()))
    }

    /// Changes a topic's config (Kafka names; `null` restores a default) and/or raises its
    /// partition count.
    pub async fn alter_topic(
        &self,
        caller: &Caller,
        name: &str,
        partitions: Option<u32>,
        config: &BTreeMap<String, Value>,
    ) -> Result<TopicInfo> {
        caller::authorize(caller, Operation::Alter, caller::Resource::Topic, name)?;
        let topic = self.lookup(name)?;
        if let Some(p) = partitions {
            validate_partition_count(p)?;
        }
        // Checked here for a quick answer; applied by the writer to the config as it is then.
        topic.config().apply(config, &self.default_topic_config())?;
        let t = topic.clone();
        self.inner
            .writer
            .call(|reply| Op::AlterTopic {
                topic: t,
                partitions,
                changes: config.clone(),
                defaults: self.default_topic_config(),
                reply,
            })
            .await?;
        tracing::info!(topic = name, partitions = topic.partitions().len(), "topic altered");
        self.audit(caller, "topic.alter", Resource::Topic, name);
        Ok(describe(&topic))
    }

    /// Deletes a topic and all its records.
    pub async fn delete_topic(&self, caller: &Caller, name: &str) -> Result<()> {
        caller::authorize(caller, Operation::Delete, caller::Resource::Topic, name)?;
        let topic = self
            .inner
            .writer
            .call(|reply| Op::DeleteTopic {
                name: name.to_owned(),
                reply,
            })
            .await?;
        tracing::info!(topic = name, "topic deleted");
        self.audit(caller, "topic.delete", Resource::Topic, name);
        let store = self.inner.store.clone();
        let parts = topic.partitions().len() as u32;
        tokio::task::spawn_blocking(move || {
            for p in 0..parts {
                store.compact_records(topic.id, p, u64::MAX);
            }
        });
        Ok(())
    }

    /// Writes record batches, a group commit and state changes as one RocksDB write through
    /// the log writer (all or nothing), and returns the base offset of each batch.
    pub(crate) async fn write_atomic(
        &self,
        writes: Vec<log::TopicAppend>,
        commit: Option<groups::GroupCommit>,
        state: Vec<StateWrite>,
        sync: bool,
    ) -> Result<Vec<u64>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let op = log::AppendOp::atomic(writes, commit, state, sync, reply);
        self.inner.writer.send(Op::Append(op)).await?;
        rx.await
            .map_err(|_| Error::new(ErrorCode::Unavailable, "the server is shutting down"))?
    }

    fn default_topic_config(&self) -> TopicConfig {
        TopicConfig::defaults(self.inner.config.default_max_message_bytes)
    }
}

fn validate_partition_count(partitions: u32) -> Result<()> {
    if partitions == 0 || partitions > topics::MAX_PARTITIONS {
        return Err(Error::new(
            ErrorCode::InvalidParameter,
            format!("partitions must be between 1 and {}", topics::MAX_PARTITIONS),
        )
        .with_field("partitions"));
    }
    Ok(())
}

fn describe(t: &Topic) -> TopicInfo {
    TopicInfo {
        name: t.name.clone(),
        created_at: t.created_at,
        config: t.config(),
        partitions: t.partitions().iter().map(|p| (p.index, p.stats())).collect(),
    }
}
