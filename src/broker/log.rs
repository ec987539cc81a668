//! The log writer: one thread that owns offset assignment, topic changes and group commit.
//!
//! Every mutation of the store goes through [`LogWriter`] as an [`Op`]. The thread takes all
//! ops that are waiting, writes the appends among them as one RocksDB `WriteBatch` (fsynced if
//! any of them asked for it, so concurrent fsync producers share one fsync), and only then
//! publishes the new high watermarks and acknowledges. Admin ops (create, alter, delete,
//! truncate) are written on their own, fsynced, in queue order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::groups::{GroupCommit, Groups};
use super::state::StateWrite;
use super::topics::{Partition, Topic, TopicConfig, TopicDescriptor};
use crate::error::{Error, ErrorCode, Result};
use crate::storage::{IdempotencyKey, PartitionKey, PartitionStats, RecordKey, Store, StoreBatch};

/// Most ops grouped into one write.
const MAX_GROUP_OPS: usize = 1024;
/// Most bytes grouped into one write.
const MAX_GROUP_BYTES: usize = 32 << 20;

/// The registry of live topics by name.
pub(crate) type Registry = Arc<RwLock<HashMap<String, Arc<Topic>>>>;

/// One partition's share of an append.
#[derive(Debug)]
pub(crate) struct PartAppend {
    pub partition: u32,
    pub batch: Vec<u8>,
    pub count: u32,
}

/// Renders the stored idempotency result once base offsets are known.
pub(crate) type RenderIdempotency = Box<dyn FnOnce(&[u64]) -> Vec<u8> + Send>;

/// Batches for some partitions of one topic.
pub(crate) struct TopicAppend {
    pub topic: Arc<Topic>,
    pub parts: Vec<PartAppend>,
}

/// One atomic write: record batches for any topics and partitions, a fenced consumer-group
/// commit and state-table changes — all of it in one RocksDB write, or none of it.
pub(crate) struct AppendOp {
    pub writes: Vec<TopicAppend>,
    pub sync: bool,
    pub idempotency: Option<(IdempotencyKey, RenderIdempotency)>,
    /// Offsets to commit, checked against the group's membership when written.
    pub commit: Option<GroupCommit>,
    pub state: Vec<StateWrite>,
    /// Base offset of each part, in `writes` then `parts` order.
    pub reply: oneshot::Sender<Result<Vec<u64>>>,
}

impl AppendOp {
    /// An op of record batches, a commit and state changes, with no idempotency result.
    pub fn atomic(
        writes: Vec<TopicAppend>,
        commit: Option<GroupCommit>,
        state: Vec<StateWrite>,
        sync: bool,
        reply: oneshot::Sender<Result<Vec<u64>>>,
    ) -> Self {
        Self {
            writes,
            sync,
            idempotency: None,
            commit,
            state,
            reply,
        }
    }

    /// An op that only appends batches to one topic (a plain produce).
    pub fn produce(
        topic: Arc<Topic>,
        parts: Vec<PartAppend>,
        sync: bool,
        reply: oneshot::Sender<Result<Vec<u64>>>,
    ) -> Self {
        Self {
            writes: vec![TopicAppend { topic, parts }],
            sync,
            idempotency: None,
            commit: None,
            state: Vec::new(),
            reply,
        }
    }
}

/// A mutation of the store.
pub(crate) enum Op {
    Append(AppendOp),
    CreateTopic {
        name: String,
        partitions: u32,
        config: TopicConfig,
        reply: oneshot::Sender<Result<Arc<Topic>>>,
    },
    /// Config changes are applied to the config as it is when the writer reaches them, so that
    /// concurrent changes of different keys are all kept.
    AlterTopic {
        topic: Arc<Topic>,
        partitions: Option<u32>,
        changes: BTreeMap<String, Value>,
        defaults: TopicConfig,
        reply: oneshot::Sender<Result<()>>,
    },
    DeleteTopic {
        name: String,
        reply: oneshot::Sender<Result<Arc<Topic>>>,
    },
    Truncate {
        topic: Arc<Topic>,
        partition: u32,
        new_earliest: u64,
        freed_bytes: u64,
    },
    /// Forgets idempotency results chosen by a retention pass, each only if it is still the
    /// result created at the given time (a key reused since keeps its fresh result).
    ExpireIdempotency {
        keys: Vec<(IdempotencyKey, i64)>,
    },
    DeleteGroupOffsets {
        group: String,
        reply: oneshot::Sender<Result<()>>,
    },
    PutToken {
        id: String,
        record: Vec<u8>,
        reply: oneshot::Sender<Result<()>>,
    },
    DeleteToken {
        id: String,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// Handle to the writer thread. Dropping every handle (and [`LogWriter::shutdown`]) ends it.
pub(crate) struct LogWriter {
    tx: RwLock<Option<mpsc::Sender<Op>>>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl LogWriter {
    /// Starts the writer thread. While it writes large groups it runs `priority_boost` nice steps
    /// ahead of the server, when the process may raise priorities (see `Priority`).
    pub fn start(
        store: Store,
        registry: Registry,
        groups: Arc<Groups>,
        last_topic_id: u32,
        priority_boost: u8,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(4096);
        let mut w = Writer {
            store,
            registry,
            groups,
            last_topic_id,
            rx,
            pending: HashMap::new(),
            time_index: Default::default(),
        };
        let thread = std::thread::Builder::new()
            .name("weir-log-writer".into())
            .spawn(move || {
                let mut priority = Priority::new(priority_boost);
                w.run(&mut priority)
            })?;
        Ok(Self {
            tx: RwLock::new(Some(tx)),
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Queues an op; waits when the queue is full (backpressure).
    pub async fn send(&self, op: Op) -> Result<()> {
        let unavailable = || Error::new(ErrorCode::Unavailable, "the server is shutting down");
        let tx = self
            .tx
            .read()
            .expect("writer sender lock")
            .clone()
            .ok_or_else(unavailable)?;
        tx.send(op).await.map_err(|_| unavailable())
    }

    /// Sends an op and awaits its reply.
    pub async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply)).await?;
        rx.await
            .map_err(|_| Error::new(ErrorCode::Unavailable, "the server is shutting down"))?
    }

    /// Stops accepting ops, lets the thread finish what is queued, flush the WAL and exit.
    pub fn shutdown(&self) {
        drop(self.tx.write().expect("writer sender lock").take());
        if let Some(t) = self.thread.lock().expect("writer thread lock").take() {
            let _ = t.join();
        }
    }
}

struct Writer {
    store: Store,
    registry: Registry,
    /// Consumer groups: commits are checked against membership and applied to memory here, in
    /// the order they are written.
    groups: Arc<Groups>,
    last_topic_id: u32,
    rx: mpsc::Receiver<Op>,
    /// The partitions of the group being appended, with their counters as they grow.
    pending: HashMap<(u32, u32), (Arc<Partition>, PartitionStats)>,
    /// The time index's upkeep state.
    time_index: super::time_index::Upkeep,
}

fn now_ms() -> i64 {
    super::now_ms()
}

/// How long the writer looks for more ops before it sleeps (see `Writer::next_op`).
const IDLE_SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Groups of at least this many bytes make the writer raise its priority.
const BOOST_GROUP_BYTES: usize = 64 << 10;
/// Consecutive smaller groups after which it drops back to the server's priority.
const SMALL_GROUPS_TO_DROP: u32 = 16;

/// The writer thread's scheduling priority: raised while it writes large groups.
///
/// A group of large record batches (1000 records of 100 B are ~100 KB) takes the writer
/// ~100 µs or more, and every request in flight waits for it: there the writer is the stage to
/// run first, and with the default scheduler weights request workers woken by the network preempt
/// it (measured: a fifth of its time spent waiting in the run queue on a busy two-core machine;
/// with the boost, 6 %; batch produce +5-15 % records/s). Small groups (single records) are the opposite
/// case: a boosted writer preempts the worker that just handed it one record, writes groups of
/// one, and single-record produce lost 15 % that way. Hence the boost follows the group size,
/// with hysteresis so that a mixed load does not switch priority on every group.
struct Priority {
    /// Nice value the thread started with.
    base: i32,
    /// Nice value while raised.
    raised: i32,
    /// Whether the thread runs at `raised` now.
    is_raised: bool,
    /// Consecutive small groups written while raised.
    small_run: u32,
    /// False when there is no boost to give, or raising failed (no permission): no more tries.
    enabled: bool,
}

impl Priority {
    fn new(boost: u8) -> Self {
        // Without a readable nice value there is nothing to raise from: stay disabled.
        let base = thread_nice().ok();
        let start = base.unwrap_or(0);
        Self {
            base: start,
            raised: boosted(start, boost),
            is_raised: false,
            small_run: 0,
            enabled: boost > 0 && base.is_some(),
        }
    }

    /// Adjusts the priority for a group of `bytes` about to be written.
    fn before_group(&mut self, bytes: usize) {
        if !self.enabled {
            return;
        }
        if bytes >= BOOST_GROUP_BYTES {
            self.small_run = 0;
            if !self.is_raised {
                match set_thread_nice(self.raised) {
                    Ok(()) => self.is_raised = true,
                    Err(e) => {
                        self.enabled = false;
                        tracing::warn!(
                            error = %e,
                            "the log writer runs at the server's own priority: raising it needs CAP_SYS_NICE \
                             (or root); batch produce under CPU contention is slower (set \
                             writer_priority_boost = 0 to not try)"
                        );
                    }
                }
            }
        } else if self.is_raised {
            self.small_run += 1;
            if self.small_run >= SMALL_GROUPS_TO_DROP && set_thread_nice(self.base).is_ok() {
                self.is_raised = false;
                self.small_run = 0;
            }
        }
    }
}

/// Lowers the calling thread's nice value by `boost` steps (on Linux nice is per thread), to at
/// most -20. Returns the nice value before and after. Lowering nice needs `CAP_SYS_NICE` (root
/// has it); raising it back, see [`set_thread_nice`], needs nothing.
pub fn raise_thread_priority(boost: u8) -> std::io::Result<(i32, i32)> {
    let from = thread_nice()?;
    let to = boosted(from, boost);
    set_thread_nice(to)?;
    Ok((from, to))
}

/// The nice value `boost` steps above `nice`, within the range Linux allows (-20 at best).
fn boosted(nice: i32, boost: u8) -> i32 {
    (nice - i32::from(boost)).max(-20)
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
pub fn thread_nice() -> std::io::Result<i32> {
    Ok(rustix::process::getpriority_process(Some(rustix::thread::gettid()))?)
}

/// Sets the calling thread's nice value.
#[cfg(target_os = "linux")]
pub fn set_thread_nice(nice: i32) -> std::io::Result<()> {
    Ok(rustix::process::setpriority_process(
        Some(rustix::thread::gettid()),
        nice,
    )?)
}

/// The calling thread's nice value (only Linux has per-thread nice values).
#[cfg(not(target_os = "linux"))]
pub fn thread_nice() -> std::io::Result<i32> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Sets the calling thread's nice value (only Linux has per-thread nice values).
#[cfg(not(target_os = "linux"))]
pub fn set_thread_nice(_nice: i32) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

impl Writer {
    fn run(&mut self, priority: &mut Priority) {
        let mut group = Vec::new();
        while let Some(op) = self.next_op() {
            let mut bytes = op_bytes(&op);
            group.push(op);
            while group.len() < MAX_GROUP_OPS && bytes < MAX_GROUP_BYTES {
                match self.rx.try_recv() {
                    Ok(op) => {
                        bytes += op_bytes(&op);
                        group.push(op);
                    }
                    Err(_) => break,
                }
            }
            priority.before_group(bytes);
            let mut appends = Vec::new();
            for op in group.drain(..) {
                match op {
                    Op::Append(a) => appends.push(a),
                    admin => {
                        self.append(&mut appends);
                        self.admin(admin);
                    }
                }
            }
            self.append(&mut appends);
        }
        if let Err(e) = self.store.flush_wal() {
            tracing::error!(error = %e, "flushing the write-ahead log at shutdown failed");
        }
        tracing::debug!("log writer stopped");
    }

    /// The next op: looked for a while, yielding the CPU in between, before the thread sleeps.
    ///
    /// A sleeping writer costs the producer that wakes it a futex wake-up and itself a
    /// context switch; on a virtual machine that is a cross-CPU interrupt and a few µs on
    /// each side, per group. Under single-record load from 64 connections ~5 % of the request
    /// workers' time went to waking the writer and ~40 % of the writer's to being switched back
    /// in; with the spin the writer switches half as often and the load runs ~8 % faster (batch
    /// produce a few % faster). Under steady load the next op comes within the spin; an idle
    /// server sleeps after at most `IDLE_SPIN` of yielding.
    fn next_op(&mut self) -> Option<Op> {
        let started = std::time::Instant::now();
        loop {
            match self.rx.try_recv() {
                Ok(op) => return Some(op),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) if started.elapsed() < IDLE_SPIN => std::thread::yield_now(),
                Err(mpsc::error::TryRecvError::Empty) => return self.rx.blocking_recv(),
            }
        }
    }

    fn append(&mut self, appends: &mut Vec<AppendOp>) {
        if appends.is_empty() {
            return;
        }
        // Record batches plus, per partition, a key, stats and RocksDB's framing.
        let room: usize = appends.iter().map(AppendOp::bytes).sum::<usize>() + 64 * appends.len();
        let mut batch = self.store.batch_with_capacity(room + 1024);
        // Kept between groups (emptied, its room kept): one fewer allocation and rehash a group.
        let mut pending = std::mem::take(&mut self.pending);
        let mut sync = false;
        let mut acked = Vec::with_capacity(appends.len());
        let mut topics: Vec<Arc<Topic>> = Vec::new();
        let mut commits = Vec::new();
        // Commits are checked and applied under the groups lock, held until memory follows disk.
        let groups = Arc::clone(&self.groups);
        let mut guard = appends.iter().any(|a| a.commit.is_some()).then(|| groups.lock());
        for a in appends.drain(..) {
            if let Some(t) = a.writes.iter().find(|w| w.topic.is_deleted()) {
                let _ = a.reply.send(Err(Error::topic_not_found(&t.topic.name)));
                continue;
            }
            if let (Some(c), Some(g)) = (&a.commit, guard.as_deref())
                && let Err(e) = c.check(g)
            {
                let _ = a.reply.send(Err(e));
                continue;
            }
            let mut bases = Vec::with_capacity(a.writes.iter().map(|w| w.parts.len()).sum());
            for w in &a.writes {
                put_parts(
                    &self.store,
                    &mut self.time_index,
                    &mut batch,
                    &mut pending,
                    w,
                    &mut bases,
                );
                if !topics.iter().any(|t| Arc::ptr_eq(t, &w.topic)) {
                    topics.push(w.topic.clone());
                }
            }
            if let Some((key, render)) = a.idempotency {
                batch.put_idempotency(&key, &render(&bases));
            }
            if let Some(c) = a.commit {
                c.put(&mut batch);
                commits.push(c);
            }
            for s in &a.state {
                s.put(&mut batch);
            }
            sync |= a.sync;
            acked.push((a.reply, bases));
        }
        for ((topic_id, partition), (_, stats)) in &pending {
            batch.put_partition_stats(
                PartitionKey {
                    topic_id: *topic_id,
                    partition: *partition,
                },
                stats,
            );
        }
        match self.store.write(batch, sync) {
            Ok(()) => {
                for (_, (part, stats)) in pending.drain() {
                    part.publish(stats);
                }
                if let Some(g) = guard.as_deref_mut() {
                    for c in &commits {
                        c.apply(g);
                    }
                }
                drop(guard);
                for t in topics {
                    t.notify();
                }
                for (reply, bases) in acked {
                    let _ = reply.send(Ok(bases));
                }
            }
            Err(e) => {
                drop(guard);
                self.time_index.reset();
                let err = Error::from(e);
                for (reply, _) in acked {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
        pending.clear();
        self.pending = pending;
    }

    fn admin(&mut self, op: Op) {
        match op {
            Op::Append(_) => unreachable!("appends are grouped"),
            Op::CreateTopic {
                name,
                partitions,
                config,
                reply,
            } => {
                let _ = reply.send(self.create_topic(name, partitions, config));
            }
            Op::AlterTopic {
                topic,
                partitions,
                changes,
                defaults,
                reply,
            } => {
                let _ = reply.send(self.alter_topic(&topic, partitions, &changes, &defaults));
            }
            Op::DeleteTopic { name, reply } => {
                let _ = reply.send(self.delete_topic(&name));
            }
            Op::Truncate {
                topic,
                partition,
                new_earliest,
                freed_bytes,
            } => {
                if let Err(e) = self.truncate(&topic, partition, new_earliest, freed_bytes) {
                    tracing::error!(topic = %topic.name, partition, error = %e, "retention delete failed");
                }
            }
            Op::PutToken { id, record, reply } => {
                let mut batch = self.store.batch();
                batch.put_token(&id, &record);
                let _ = reply.send(self.store.write(batch, true).map_err(Error::from));
            }
            Op::DeleteToken { id, reply } => {
                let mut batch = self.store.batch();
                batch.delete_token(&id);
                let _ = reply.send(self.store.write(batch, true).map_err(Error::from));
            }
            Op::DeleteGroupOffsets { group, reply } => {
                let mut batch = self.store.batch();
                batch.delete_group_offsets(&group);
                let _ = reply.send(self.store.write(batch, true).map_err(Error::from));
            }
            Op::ExpireIdempotency { keys } => {
                if let Err(e) = self.expire_idempotency(&keys) {
                    tracing::error!(error = %e, "expiring idempotency keys failed");
                }
            }
        }
    }

    /// Deletes the chosen idempotency results that are still the ones chosen: a key reused
    /// since (a newer `created_at`) keeps its fresh result.
    fn expire_idempotency(&mut self, keys: &[(IdempotencyKey, i64)]) -> Result<()> {
        let mut batch = self.store.batch();
        for (key, chosen) in keys {
            let Some(raw) = self.store.idempotency_get(key)? else {
                continue;
            };
            if super::produce::stored_created_at(&raw) <= *chosen {
                batch.delete_idempotency(key);
            }
        }
        self.store.write(batch, false)?;
        Ok(())
    }

    fn create_topic(&mut self, name: String, partitions: u32, config: TopicConfig) -> Result<Arc<Topic>> {
        if self.registry.read().expect("registry lock").contains_key(&name) {
            return Err(
                Error::new(ErrorCode::TopicAlreadyExists, format!("topic '{name}' already exists")).with_field("name"),
            );
        }
        let id = self
            .last_topic_id
            .checked_add(1)
            .ok_or_else(|| Error::new(ErrorCode::Internal, "topic ids exhausted"))?;
        let d = TopicDescriptor {
            id,
            name: name.clone(),
            partitions,
            created_at: now_ms(),
            config,
        };
        let mut batch = self.store.batch();
        batch.put_topic(&name, &serde_json::to_vec(&d).map_err(Error::internal)?);
        batch.put_last_topic_id(id);
        for p in 0..partitions {
            batch.put_partition_stats(
                PartitionKey {
                    topic_id: id,
                    partition: p,
                },
                &PartitionStats::default(),
            );
        }
        self.store.write(batch, true)?;
        self.last_topic_id = id;
        let parts = (0..partitions)
            .map(|p| Arc::new(Partition::new(p, PartitionStats::default())))
            .collect();
        let topic = Arc::new(Topic::new(&d, parts));
        self.registry
            .write()
            .expect("registry lock")
            .insert(name, topic.clone());
        Ok(topic)
    }

    fn alter_topic(
        &mut self,
        topic: &Arc<Topic>,
        partitions: Option<u32>,
        changes: &BTreeMap<String, Value>,
        defaults: &TopicConfig,
    ) -> Result<()> {
        if topic.is_deleted() {
            return Err(Error::topic_not_found(&topic.name));
        }
        let mut config = topic.config();
        config.apply(changes, defaults)?;
        let current = topic.partitions();
        let have = current.len() as u32;
        let partitions = partitions.unwrap_or(have);
        if partitions < have {
            return Err(Error::new(
                ErrorCode::InvalidParameter,
                format!("topic '{}' has {have} partitions; the count can only grow", topic.name),
            )
            .with_field("partitions"));
        }
        let mut d = topic.descriptor();
        d.partitions = partitions;
        d.config = config.clone();
        let mut batch = self.store.batch();
        batch.put_topic(&topic.name, &serde_json::to_vec(&d).map_err(Error::internal)?);
        for p in have..partitions {
            batch.put_partition_stats(
                PartitionKey {
                    topic_id: topic.id,
                    partition: p,
                },
                &PartitionStats::default(),
            );
        }
        self.store.write(batch, true)?;
        topic.set_config(config);
        if partitions > have {
            let mut all: Vec<_> = current.iter().cloned().collect();
            all.extend((have..partitions).map(|p| Arc::new(Partition::new(p, PartitionStats::default()))));
            topic.set_partitions(all);
        }
        Ok(())
    }

    fn delete_topic(&mut self, name: &str) -> Result<Arc<Topic>> {
        let topic = self
            .registry
            .write()
            .expect("registry lock")
            .remove(name)
            .ok_or_else(|| Error::topic_not_found(name))?;
        topic.mark_deleted();
        let mut batch = self.store.batch();
        batch.delete_topic(name);
        batch.delete_topic_data(topic.id);
        self.time_index.forget_topic(topic.id);
        for p in topic.partitions().iter() {
            batch.delete_partition_stats(PartitionKey {
                topic_id: topic.id,
                partition: p.index,
            });
        }
        let forgotten = self.groups.lock_and_forget_topic(topic.id, |keys| {
            for k in keys {
                batch.delete_committed_offset(k);
            }
            self.store.write(batch, true).map_err(Error::from)
        })?;
        if forgotten > 0 {
            tracing::info!(
                topic = name,
                offsets = forgotten,
                "committed offsets of the deleted topic removed"
            );
        }
        Ok(topic)
    }

    fn truncate(&mut self, topic: &Arc<Topic>, partition: u32, new_earliest: u64, freed: u64) -> Result<()> {
        if topic.is_deleted() {
            return Ok(());
        }
        let part = topic.partition(partition)?;
        let mut stats = part.stats();
        if new_earliest <= stats.earliest_offset {
            return Ok(());
        }
        stats.earliest_offset = new_earliest.min(stats.next_offset);
        stats.bytes = stats.bytes.saturating_sub(freed);
        let mut batch = self.store.batch();
        batch.delete_batches_below(topic.id, partition, new_earliest);
        super::time_index::prune(&self.store, &mut batch, topic.id, partition, new_earliest)?;
        batch.put_partition_stats(
            PartitionKey {
                topic_id: topic.id,
                partition,
            },
            &stats,
        );
        self.store.write(batch, false)?;
        part.publish(stats);
        Ok(())
    }
}

/// Adds one topic's batches to a write at the next offsets of their partitions.
fn put_parts(
    store: &Store,
    time_index: &mut super::time_index::Upkeep,
    batch: &mut StoreBatch<'_>,
    pending: &mut HashMap<(u32, u32), (Arc<Partition>, PartitionStats)>,
    w: &TopicAppend,
    bases: &mut Vec<u64>,
) {
    let parts = w.topic.partitions();
    for p in &w.parts {
        let part = &parts[p.partition as usize];
        let (_, stats) = pending
            .entry((w.topic.id, p.partition))
            .or_insert_with(|| (part.clone(), part.stats()));
        let base = stats.next_offset;
        let at = (w.topic.id, p.partition, stats.earliest_offset);
        if let Err(e) = time_index.on_append(store, batch, at, base, &p.batch) {
            // Without the entry, timestamp lookups scan further: slower, never wrong.
            tracing::error!(topic = %w.topic.name, partition = p.partition, error = %e, "time index upkeep failed");
        }
        batch.put_batch(
            RecordKey {
                topic_id: w.topic.id,
                partition: p.partition,
                base_offset: base,
            },
            &p.batch,
        );
        stats.next_offset += u64::from(p.count);
        stats.bytes += p.batch.len() as u64;
        bases.push(base);
    }
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Append(a) => a.bytes(),
        _ => 0,
    }
}

impl AppendOp {
    /// Bytes of record batches the op appends.
    fn bytes(&self) -> usize {
        self.writes
            .iter()
            .flat_map(|w| w.parts.iter())
            .map(|p| p.batch.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a fresh thread (nice values are per thread: the test's own is left alone).
    fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().expect("test thread")
    }

    /// The writer answers ops that come while it looks for more and ops that wake it from
    /// sleep, and its thread ends once the last sender is gone, whether that happens while it
    /// looks for more (right after an op) or while it sleeps.
    #[test]
    fn writer_answers_while_spinning_and_after_sleeping_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let store = Store::open(&path, &crate::storage::StoreOptions::default()).unwrap();
            let groups = Arc::new(Groups::load(Vec::new()));
            let writer = LogWriter::start(store, Registry::default(), groups, 0, 0).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let commit = |offset: u64| {
                rt.block_on(writer.call(|reply| Op::PutToken {
                    id: format!("t{offset}"),
                    record: b"{}".to_vec(),
                    reply,
                }))
            };
            let mut answers = vec![commit(1), commit(2)];
            // Long after the spin: the writer sleeps and must be woken.
            std::thread::sleep(IDLE_SPIN * 100);
            answers.push(commit(3));
            // Shut down right after an answer, while the writer still looks for more.
            writer.shutdown();
            let _ = done.send(answers.into_iter().all(|a| a.is_ok()));
        });
        let all_ok = finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the writer answers and its thread ends after shutdown");
        assert!(all_ok, "every op was answered with success");
    }

    /// A retention pass chooses expired idempotency results; the writer deletes one only if it
    /// is still the result chosen, so a key reused in between keeps its fresh result (and a
    /// retry of the new request is answered from it instead of appending again).
    #[test]
    fn idempotency_expiry_keeps_a_result_newer_than_the_one_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::storage::StoreOptions::default()).unwrap();
        let key = IdempotencyKey {
            topic_id: 1,
            key: b"k".to_vec(),
        };
        let put = |created_at: i64| {
            let mut b = store.batch();
            b.put_idempotency(&key, format!("{{\"created_at\":{created_at}}}").as_bytes());
            store.write(b, false).unwrap();
        };
        put(200);
        let groups = Arc::new(Groups::load(Vec::new()));
        let writer = LogWriter::start(store.clone(), Registry::default(), groups, 0, 0).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let expire = |chosen: i64| {
            rt.block_on(async {
                writer
                    .send(Op::ExpireIdempotency {
                        keys: vec![(key.clone(), chosen)],
                    })
                    .await
                    .unwrap();
                // Ops are handled in order: once this one is answered, the expiry is done.
                writer
                    .call(|reply| Op::DeleteToken { id: "x".into(), reply })
                    .await
                    .unwrap();
            })
        };
        expire(100);
        assert!(
            store.idempotency_get(&key).unwrap().is_some(),
            "the newer result is kept"
        );
        expire(200);
        assert!(
            store.idempotency_get(&key).unwrap().is_none(),
            "the chosen result is deleted"
        );
        writer.shutdown();
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn priority_follows_group_size_with_hysteresis() {
        let (base, after_large, after_few_small, after_many_small, enabled) = on_thread(|| {
            let mut p = Priority::new(10);
            let base = thread_nice().unwrap();
            p.before_group(BOOST_GROUP_BYTES);
            let after_large = thread_nice().unwrap();
            for _ in 0..SMALL_GROUPS_TO_DROP - 1 {
                p.before_group(100);
            }
            let after_few_small = thread_nice().unwrap();
            p.before_group(100);
            let after_many_small = thread_nice().unwrap();
            (base, after_large, after_few_small, after_many_small, p.enabled)
        });
        if enabled {
            assert_eq!(after_large, (base - 10).max(-20), "a large group raises the priority");
            assert_eq!(after_few_small, after_large, "a few small groups keep it");
            assert_eq!(after_many_small, base, "a run of small groups drops it");
        } else {
            // No CAP_SYS_NICE: the writer gives up at once and stays where it was.
            assert_eq!((after_large, after_many_small), (base, base));
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn no_boost_leaves_the_priority_alone() {
        let (before, after) = on_thread(|| {
            let mut p = Priority::new(0);
            let before = thread_nice().unwrap();
            p.before_group(BOOST_GROUP_BYTES * 4);
            (before, thread_nice().unwrap())
        });
        assert_eq!(before, after);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn raise_and_restore() {
        let r = on_thread(|| {
            let before = thread_nice().unwrap();
            let raised = raise_thread_priority(3);
            if let Ok((from, to)) = raised {
                assert_eq!((from, to), (before, (before - 3).max(-20)));
                assert_eq!(thread_nice().unwrap(), to);
                set_thread_nice(from).unwrap();
            }
            thread_nice().unwrap() == before
        });
        assert!(r, "the nice value is back where it was");
    }
}
