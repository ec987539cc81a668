//! Consumer groups whose state lives in the server: membership with leases, assignment,
//! fetch positions, committed offsets, and the rebalance protocol.
//!
//! Any request from any client works: a member is just an id. Every request renews the
//! member's lease; a background tick removes members whose lease lapsed and rebalances when
//! subscribed topics change shape. A rebalance computes the next generation's assignment at
//! once, but a partition moves only when its previous owner has *released* it: when the old
//! owner next hears from the server (and is told of the new generation), leaves, or expires.
//! Until then the new owner sees the partition as `pending` and receives nothing from it, so two
//! live members never read the same partition at the same time.

pub mod assignor;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use assignor::{Strategy, TopicPartition};

use super::caller::{self, Caller, Operation, Resource};
use super::fetch::{FetchResult, StartAt};
use super::log::Op;
use super::topics::Topic;
use super::{Broker, now_ms};
use crate::error::{Error, ErrorCode, Result};
use crate::storage::GroupOffsetKey;

/// Shortest and longest session timeouts a member may ask for.
pub const SESSION_TIMEOUT_RANGE: (u64, u64) = (100, 3_600_000);
/// Default session timeout.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 30_000;
/// How often leases and subscriptions are checked.
const TICK: Duration = Duration::from_millis(100);

/// Where a member starts reading a partition with no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// At the oldest retained record.
    Earliest,
    /// At the end: only new records (Kafka's default).
    #[default]
    Latest,
    /// Nowhere: polling such a partition is an error (`no_committed_offset`).
    None,
}

/// What a member consumes.
#[derive(Debug, Clone)]
pub enum Subscription {
    /// These topics.
    Topics(BTreeSet<String>),
    /// Every topic whose whole name matches this regular expression.
    Pattern(regex::Regex),
}

impl Subscription {
    fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Topics(t) => t.contains(topic),
            Self::Pattern(re) => re.is_match(topic),
        }
    }
}

/// How a member joins.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// What it consumes.
    pub subscription: Subscription,
    /// Lease length.
    pub session_timeout: Duration,
    /// Start without a committed offset.
    pub auto_offset_reset: OffsetReset,
    /// Preferred assignor (the group uses its longest-standing member's).
    pub strategy: Strategy,
    /// Commit the positions of the previous poll at every poll.
    pub auto_commit: bool,
    /// The lease is an open connection (SSE): it does not expire by time, it ends with the stream.
    pub streaming: bool,
    /// Where to resume partitions once owned (from an SSE `Last-Event-ID`).
    pub resume: HashMap<TopicPartition, u64>,
}

/// A member's view of the group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    /// Member id.
    pub member_id: String,
    /// Group generation.
    pub generation: u64,
    /// Partitions assigned to the member in this generation.
    pub assignment: Vec<TopicPartition>,
    /// Assigned partitions still being released by their previous owner.
    pub pending: Vec<TopicPartition>,
}

/// A partition offset.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset (for commits: the next offset to read).
    pub offset: u64,
}

/// Records polled by a member.
#[derive(Debug)]
pub struct Poll {
    /// The member's view.
    pub view: MemberView,
    /// Records read, per partition.
    pub fetched: Vec<FetchResult>,
}

/// Where `seek` and `offsets:reset` move to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The oldest retained record.
    Earliest,
    /// The end.
    Latest,
    /// First record at or after this timestamp.
    Timestamp(i64),
    /// This offset (must be within the partition).
    Offset(u64),
}

/// One member in the admin view.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Assigned partitions.
    pub assignment: Vec<TopicPartition>,
    /// Assigned partitions not yet released by their previous owner.
    pub pending: Vec<TopicPartition>,
    /// Last request, ms since the epoch.
    pub last_seen: i64,
    /// Lease length in ms.
    pub session_timeout_ms: u64,
    /// Preferred assignor.
    pub assignment_strategy: Strategy,
}

/// Offsets and lag of one partition in the admin view.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Committed offset, if any.
    pub committed_offset: Option<u64>,
    /// The partition's next offset.
    pub end_offset: u64,
    /// Records not yet committed: end − committed (or end − earliest without a commit).
    pub lag: u64,
}

/// A group in the admin view.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupDescription {
    /// Group name.
    pub group: String,
    /// `stable`, `rebalancing` or `empty`.
    pub state: String,
    /// Generation.
    pub generation: u64,
    /// Members.
    pub members: Vec<MemberDescription>,
    /// Committed and assigned partitions with their lag.
    pub partitions: Vec<PartitionLag>,
}

/// A group in the list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupSummary {
    /// Group name.
    pub group: String,
    /// `stable`, `rebalancing` or `empty`.
    pub state: String,
    /// Generation.
    pub generation: u64,
    /// Number of members.
    pub members: usize,
}

/// One partition changed by `offsets:reset`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OffsetChange {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// New committed offset.
    pub offset: u64,
    /// Offset before, if any.
    pub previous_offset: Option<u64>,
}

struct Member {
    options: JoinOptions,
    joined: u64,
    last_seen: Instant,
    last_seen_ms: i64,
    in_flight: u32,
    known_generation: u64,
    assignment: BTreeSet<TopicPartition>,
    positions: HashMap<TopicPartition, u64>,
}

struct Group {
    generation: u64,
    members: BTreeMap<String, Member>,
    owners: HashMap<TopicPartition, String>,
    committed: HashMap<(u32, u32), u64>,
    shape: BTreeMap<String, u32>,
    changed: watch::Sender<u64>,
}

impl Group {
    fn new() -> Self {
        Self {
            generation: 0,
            members: BTreeMap::new(),
            owners: HashMap::new(),
            committed: HashMap::new(),
            shape: BTreeMap::new(),
            changed: watch::Sender::new(0),
        }
    }

    fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "empty"
        } else if self
            .members
            .iter()
            .any(|(id, m)| m.known_generation < self.generation || !self.pending(id).is_empty())
        {
            "rebalancing"
        } else {
            "stable"
        }
    }

    /// Assigned partitions whose previous owner has not released them yet.
    fn pending(&self, id: &str) -> Vec<TopicPartition> {
        self.members[id]
            .assignment
            .iter()
            .filter(|tp| self.owners.get(*tp).is_some_and(|o| o != id))
            .cloned()
            .collect()
    }

    /// The subscribed topics and their partition counts.
    fn subscribed_shape(&self, topics: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
        topics
            .iter()
            .filter(|(t, _)| self.members.values().any(|m| m.options.subscription.matches(t)))
            .map(|(t, n)| (t.clone(), *n))
            .collect()
    }

    fn rebalance(&mut self, topics: &BTreeMap<String, u32>) {
        self.generation += 1;
        let shape = self.subscribed_shape(topics);
        let strategy = self
            .members
            .values()
            .min_by_key(|m| m.joined)
            .map_or(Strategy::Range, |m| m.options.strategy);
        let assignment = {
            let subs: Vec<assignor::MemberSubscription<'_>> = self
                .members
                .iter()
                .map(|(id, m)| assignor::MemberSubscription {
                    id,
                    topics: shape
                        .keys()
                        .filter(|t| m.options.subscription.matches(t))
                        .cloned()
                        .collect(),
                    previous: &m.assignment,
                })
                .collect();
            assignor::assign(strategy, &subs, &shape)
        };
        for (id, set) in assignment {
            if let Some(m) = self.members.get_mut(&id) {
                m.assignment = set;
            }
        }
        self.owners
            .retain(|tp, _| shape.get(&tp.topic).is_some_and(|&n| tp.partition < n));
        self.shape = shape;
        self.changed.send_modify(|g| *g += 1);
    }

    fn remove_member(&mut self, id: &str) -> bool {
        if self.members.remove(id).is_none() {
            return false;
        }
        self.owners.retain(|_, owner| owner != id);
        true
    }

    fn view(&self, id: &str) -> MemberView {
        let m = &self.members[id];
        MemberView {
            member_id: id.to_owned(),
            generation: self.generation,
            assignment: m.assignment.iter().cloned().collect(),
            pending: self.pending(id),
        }
    }
}

/// All consumer groups.
pub(crate) struct Groups {
    groups: Mutex<HashMap<String, Group>>,
    seq: AtomicU64,
}

impl Groups {
    /// Groups with the committed offsets found in the store.
    pub(crate) fn load(committed: Vec<(GroupOffsetKey, u64)>) -> Self {
        let mut groups: HashMap<String, Group> = HashMap::new();
        for (k, offset) in committed {
            groups
                .entry(k.group)
                .or_insert_with(Group::new)
                .committed
                .insert((k.topic_id, k.partition), offset);
        }
        Self {
            groups: Mutex::new(groups),
            seq: AtomicU64::new(0),
        }
    }
}

/// Checks a group name against Kafka's naming rules (as for topics).
pub fn validate_group_name(name: &str) -> Result<()> {
    super::topics::validate_topic_name(name).map_err(|e| {
        Error::new(
            ErrorCode::InvalidGroupName,
            e.detail.replace("topic name", "group name"),
        )
        .with_field("group")
    })
}

fn group_not_found(group: &str) -> Error {
    Error::new(ErrorCode::GroupNotFound, format!("group '{group}' does not exist")).with_field("group")
}

fn unknown_member(group: &str, member: &str) -> Error {
    Error::new(
        ErrorCode::UnknownMember,
        format!("member '{member}' is not in group '{group}'; join again"),
    )
    .with_field("member")
}

fn rebalance_error(view: &MemberView) -> Error {
    let mut ext = serde_json::Map::new();
    ext.insert("generation".into(), view.generation.into());
    ext.insert(
        "assignment".into(),
        serde_json::to_value(&view.assignment).unwrap_or_default(),
    );
    ext.insert(
        "pending".into(),
        serde_json::to_value(&view.pending).unwrap_or_default(),
    );
    Error::new(
        ErrorCode::RebalanceInProgress,
        format!(
            "the group rebalanced to generation {}; this answer carries the new assignment",
            view.generation
        ),
    )
    .with_extensions(ext)
}

/// Decrements a member's in-flight count when a request ends (however it ends).
struct InFlight {
    broker: Broker,
    group: String,
    member: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut groups = self.broker.inner.groups.groups.lock().expect("groups lock");
        if let Some(m) = groups
            .get_mut(&self.group)
            .and_then(|g| g.members.get_mut(&self.member))
        {
            m.in_flight = m.in_flight.saturating_sub(1);
            m.last_seen = Instant::now();
            m.last_seen_ms = now_ms();
        }
    }
}

impl Broker {
    fn topic_shapes(&self) -> BTreeMap<String, u32> {
        self.all_topics()
            .iter()
            .map(|t| (t.name.clone(), t.partitions().len() as u32))
            .collect()
    }

    fn with_group<T>(&self, group: &str, f: impl FnOnce(&mut Group) -> Result<T>) -> Result<T> {
        let mut groups = self.inner.groups.groups.lock().expect("groups lock");
        let g = groups.get_mut(group).ok_or_else(|| group_not_found(group))?;
        f(g)
    }

    /// Renews a member's lease and checks that it knows the current generation: if not, it
    /// learns it now and gets `rebalance_in_progress` with its new assignment. Partitions it
    /// lost stay its own until its next poll, heartbeat or seek ([`Self::release`]), so that it
    /// can still commit what it processed from them.
    fn touch(g: &mut Group, group: &str, member: &str) -> Result<()> {
        let generation = g.generation;
        let m = g.members.get_mut(member).ok_or_else(|| unknown_member(group, member))?;
        m.last_seen = Instant::now();
        m.last_seen_ms = now_ms();
        if m.known_generation < generation {
            m.known_generation = generation;
            return Err(rebalance_error(&g.view(member)));
        }
        Ok(())
    }

    /// Releases the partitions a member lost in the current generation (after it was told).
    fn release(g: &mut Group, member: &str) {
        let Some(m) = g.members.get_mut(member) else { return };
        let assignment = &m.assignment;
        m.positions.retain(|tp, _| assignment.contains(tp));
        g.owners.retain(|tp, owner| owner != member || assignment.contains(tp));
    }

    /// Takes ownership of the member's assigned partitions that nobody holds any more.
    fn take_ownership(g: &mut Group, member: &str) {
        let Some(m) = g.members.get(member) else { return };
        for tp in &m.assignment {
            g.owners.entry(tp.clone()).or_insert_with(|| member.to_owned());
        }
    }

    /// Claims the member's released partitions and returns those it owns, with positions
    /// (initialised from the committed offset or the reset policy).
    fn claim(&self, g: &mut Group, member: &str) -> Result<Vec<(Arc<Topic>, u32, u64)>> {
        let assignment: Vec<TopicPartition> = g.members[member].assignment.iter().cloned().collect();
        let mut owned = Vec::new();
        for tp in assignment {
            match g.owners.get(&tp) {
                Some(o) if o != member => continue,
                Some(_) => {}
                None => {
                    g.owners.insert(tp.clone(), member.to_owned());
                }
            }
            let Ok(topic) = self.lookup(&tp.topic) else { continue };
            let Ok(part) = topic.partition(tp.partition) else {
                continue;
            };
            let (earliest, next) = (part.earliest_offset(), part.next_offset());
            let committed = g.committed.get(&(topic.id, tp.partition)).copied();
            let m = g.members.get_mut(member).expect("member");
            let pos = match m.positions.get(&tp) {
                Some(&p) => p,
                None => {
                    // Resume where a reconnecting stream left off, unless others committed further.
                    let start = match (m.options.resume.get(&tp).copied(), committed) {
                        (Some(r), Some(c)) => Some(r.max(c)),
                        (r, c) => r.or(c),
                    };
                    match start {
                        Some(o) if (earliest..=next).contains(&o) => o,
                        _ => match m.options.auto_offset_reset {
                            OffsetReset::Earliest => earliest,
                            OffsetReset::Latest => next,
                            OffsetReset::None => {
                                return Err(Error::new(
                                    ErrorCode::NoCommittedOffset,
                                    format!(
                                        "partition {} of '{}' has no committed offset and auto_offset_reset is none",
                                        tp.partition, tp.topic
                                    ),
                                )
                                .with_field("auto_offset_reset"));
                            }
                        },
                    }
                }
            };
            // Retention may have moved the start past the position.
            let pos = pos.clamp(earliest, next);
            m.positions.insert(tp, pos);
            owned.push((topic, part.index, pos));
        }
        Ok(owned)
    }

    /// Joins a group (creating it) and returns the member's view.
    pub async fn join_group(&self, caller: &Caller, group: &str, options: JoinOptions) -> Result<MemberView> {
        validate_group_name(group)?;
        caller::authorize(caller, Operation::Read, Resource::Group, group)?;
        if let Subscription::Topics(topics) = &options.subscription {
            if topics.is_empty() {
                return Err(Error::invalid_parameter(
                    "topics",
                    "give at least one topic or a topic_pattern",
                ));
            }
            for t in topics {
                caller::authorize(caller, Operation::Read, Resource::Topic, t)?;
                self.lookup(t)?;
            }
        }
        let (lo, hi) = SESSION_TIMEOUT_RANGE;
        let ms = options.session_timeout.as_millis() as u64;
        if !(lo..=hi).contains(&ms) {
            return Err(Error::invalid_parameter(
                "session_timeout_ms",
                format!("session_timeout_ms must be between {lo} and {hi}"),
            ));
        }
        let id = format!("{}-{}", group, uuid::Uuid::new_v4().simple());
        let topics = self.topic_shapes();
        let mut groups = self.inner.groups.groups.lock().expect("groups lock");
        let g = groups.entry(group.to_owned()).or_insert_with(Group::new);
        let joined = self.inner.groups.seq.fetch_add(1, Ordering::Relaxed);
        g.members.insert(
            id.clone(),
            Member {
                options,
                joined,
                last_seen: Instant::now(),
                last_seen_ms: now_ms(),
                in_flight: 0,
                known_generation: 0,
                assignment: BTreeSet::new(),
                positions: HashMap::new(),
            },
        );
        g.rebalance(&topics);
        let generation = g.generation;
        g.members.get_mut(&id).expect("member").known_generation = generation;
        Self::take_ownership(g, &id);
        tracing::info!(group, member = %id, generation, "member joined");
        metrics::counter!("weir_group_rebalances_total").increment(1);
        Ok(g.view(&id))
    }

    /// Renews the lease; tells the member of a rebalance.
    pub fn heartbeat(&self, caller: &Caller, group: &str, member: &str) -> Result<MemberView> {
        caller::authorize(caller, Operation::Read, Resource::Group, group)?;
        self.with_group(group, |g| {
            Self::touch(g, group, member)?;
            Self::release(g, member);
            Self::take_ownership(g, member);
            Ok(g.view(member))
        })
    }

    /// Leaves at once; the member's partitions move to the others.
    pub fn leave_group(&self, caller: &Caller, group: &str, member: &str) -> Result<()> {
        caller::authorize(caller, Operation::Read, Resource::Group, group)?;
        let topics = self.topic_shapes();
        self.with_group(group, |g| {
            if !g.remove_member(member) {
                return Err(unknown_member(group, member));
            }
            g.rebalance(&topics);
            tracing::info!(group, member, generation = g.generation, "member left");
            metrics::counter!("weir_group_rebalances_total").increment(1);
            Ok(())
        })
    }

    /// Polls records from the member's partitions, long-polling up to `wait`.
    pub async fn group_poll(
        &self,
        caller: &Caller,
        group: &str,
        member: &str,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Poll> {
        caller::authorize(caller, Operation::Read, Resource::Group, group)?;
        let (mut changed, auto_commit) = self.with_group(group, |g| {
            Self::touch(g, group, member)?;
            let m = g.members.get_mut(member).expect("touched");
            m.in_flight += 1;
            Ok((g.changed.subscribe(), m.options.auto_commit))
        })?;
        let _in_flight = InFlight {
            broker: self.clone(),
            group: group.to_owned(),
            member: member.to_owned(),
        };
        if auto_commit {
            self.commit_positions(group, member, None).await?;
        }
        let wait = wait.min(Duration::from_millis(self.inner.config.max_wait_ms));
        let deadline = tokio::time::Instant::now() + wait;
        let shutdown = self.shutdown_token();
        let rotate = self.inner.groups.seq.fetch_add(1, Ordering::Relaxed) as usize;
        loop {
            changed.borrow_and_update();
            let owned = self.with_group(group, |g| {
                Self::touch(g, group, member)?;
                Self::release(g, member);
                self.claim(g, member)
            })?;
            let mut fetched = Vec::new();
            let (mut records, mut bytes) = (0usize, 0usize);
            let n = owned.len();
            for i in 0..n {
                let (topic, partition, pos) = &owned[(i + rotate) % n];
                if records >= max_records || bytes >= max_bytes {
                    break;
                }
                if *pos >= topic.partition(*partition).map_or(0, |p| p.next_offset()) {
                    continue;
                }
                let res = self
                    .read(topic, *partition, *pos, max_records - records, max_bytes - bytes)
                    .await?;
                if res.count > 0 {
                    records += res.count;
                    bytes += res.bytes;
                    fetched.push(res);
                }
            }
            if !fetched.is_empty() || tokio::time::Instant::now() >= deadline || shutdown.is_cancelled() {
                let view = self.with_group(group, |g| {
                    let generation = g.generation;
                    let m = g.members.get_mut(member).ok_or_else(|| unknown_member(group, member))?;
                    for f in &fetched {
                        let tp = TopicPartition {
                            topic: f.topic.clone(),
                            partition: f.partition,
                        };
                        // Positions of partitions revoked and already released are dropped.
                        if g.owners.get(&tp).is_some_and(|o| o == member) || m.known_generation < generation {
                            m.positions.insert(tp, f.next_offset);
                        }
                    }
                    Ok(g.view(member))
                })?;
                return Ok(Poll { view, fetched });
            }
            let mut seen = BTreeSet::new();
            let mut topic_rx: Vec<watch::Receiver<u64>> = owned
                .iter()
                .filter(|(t, _, _)| seen.insert(t.id))
                .map(|(t, _, _)| t.subscribe())
                .collect();
            let any_topic = async {
                if topic_rx.is_empty() {
                    std::future::pending::<()>().await;
                }
                let futs = topic_rx.iter_mut().map(|r| Box::pin(r.changed()));
                let _ = futures::future::select_all(futs).await;
            };
            tokio::select! {
                _ = any_topic => {}
                _ = changed.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// Commits explicit offsets (checked against the generation and ownership), or with `None`
    /// the positions of everything returned so far.
    pub async fn group_commit(
        &self,
        caller: &Caller,
        group: &str,
        member: &str,
        generation: Option<u64>,
        offsets: Option<Vec<PartitionOffset>>,
    ) -> Result<Vec<PartitionOffset>> {
        caller::authorize(caller, Operation::Read, Resource::Group, group)?;
        if let Some(gen_) = generation {
            self.with_group(group, |g| {
                g.members.get(member).ok_or_else(|| unknown_member(group, member))?;
                if gen_ != g.generation {
                    return Err(Error::new(
                        ErrorCode::IllegalGeneration,
                        format!(
                            "generation {gen_} is not the group's current generation {}",
                            g.generation
                        ),
                    )
                    .with_field("generation"));
                }
                Ok(())
            })?;
        }
        self.commit_positions(group, member, offsets).await
    }

    async fn commit_positions(
        &self,
        group: &str,
        member: &str,
        offsets: Option<Vec<PartitionOffset>>,
    ) -> Result<Vec<PartitionOffset>> {
        let entries = self.with_group(group, |g| {
            Self::touch(g, group, member)?;
            Self::take_ownership(g, member);
            let m = &g.members[member];
            // Owned: assigned and claimed, or lost in this rebalance but not yet released.
            let owns = |tp: &TopicPartition| g.owners.get(tp).is_some_and(|o| o == member);
            let list: Vec<PartitionOffset> = match &offsets {
                None => m
                    .positions
                    .iter()
                    .filter(|(tp, _)| owns(tp))
                    .map(|(tp, &offset)| PartitionOffset {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset,
                    })
                    .collect(),
                Some(list) => list.clone(),
            };
            let mut entries = Vec::with_capacity(list.len());
            for (i, o) in list.iter().enumerate() {
                let tp = TopicPartition {
                    topic: o.topic.clone(),
                    partition: o.partition,
                };
                if !owns(&tp) {
                    return Err(Error::new(
                        ErrorCode::PartitionNotOwned,
                        format!(
                            "member does not own partition {} of '{}' in generation {}",
                            o.partition, o.topic, g.generation
                        ),
                    )
                    .with_field(format!("offsets[{i}]")));
                }
                let topic = self.lookup(&o.topic)?;
                let part = topic.partition(o.partition)?;
                if o.offset > part.next_offset() {
                    return Err(Error::new(
                        ErrorCode::OffsetOutOfRange,
                        format!(
                            "offset {} is past the end ({}) of partition {} of '{}'",
                            o.offset,
                            part.next_offset(),
                            o.partition,
                            o.topic
                        ),
                    )
                    .with_field(format!("offsets[{i}].offset")));
                }
                entries.push((topic.id, o.clone()));
            }
            Ok(entries)
        })?;
        self.store_offsets(group, entries).await
    }

    async fn store_offsets(&self, group: &str, entries: Vec<(u32, PartitionOffset)>) -> Result<Vec<PartitionOffset>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(GroupOffsetKey, u64)> = entries
            .iter()
            .map(|(id, o)| {
                (
                    GroupOffsetKey {
                        group: group.to_owned(),
                        topic_id: *id,
                        partition: o.partition,
                    },
                    o.offset,
                )
            })
            .collect();
        self.inner
            .writer
            .call(|reply| Op::CommitOffsets { entries: keys, reply })
            .await?;
        let mut groups = self.inner.groups.groups.lock().expect("groups lock");
        let g = groups.entry(group.to_owned()).or_insert_with(Group::new);
        for (id, o) in &entries {
            g.committed.insert((*id, o.partition), o.offset);
        }
        Ok(entries.into_iter().map(|(_, o)| o).collect())
    }

    /// Moves a member's positions on partitions it owns.
    pub async fn seek(
        &self,
        caller: &Caller,
        group: &str,
        member: &str,
        to: SeekTo,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Result<Vec<PartitionOffset>> {
        caller::authorize(caller, Operation::Read, Resource::Group, group)?;
        let targets = self.with_group(group, |g| {
            Self::touch(g, group, member)?;
            Self::release(g, member);
            let owned = self.claim(g, member)?;
            let owned: Vec<TopicPartition> = owned
                .iter()
                .map(|(t, p, _)| TopicPartition {
                    topic: t.name.clone(),
                    partition: *p,
                })
                .collect();
            match partitions {
                None => Ok(owned),
                Some(list) => {
                    for (i, tp) in list.iter().enumerate() {
                        if !owned.contains(tp) {
                            return Err(Error::new(
                                ErrorCode::PartitionNotOwned,
                                format!("member does not own partition {} of '{}'", tp.partition, tp.topic),
                            )
                            .with_field(format!("partitions[{i}]")));
                        }
                    }
                    Ok(list)
                }
            }
        })?;
        let mut out = Vec::new();
        for tp in targets {
            let offset = self.resolve_seek(&tp, to).await?;
            out.push(PartitionOffset {
                topic: tp.topic,
                partition: tp.partition,
                offset,
            });
        }
        self.with_group(group, |g| {
            let m = g.members.get_mut(member).ok_or_else(|| unknown_member(group, member))?;
            for o in &out {
                m.positions.insert(
                    TopicPartition {
                        topic: o.topic.clone(),
                        partition: o.partition,
                    },
                    o.offset,
                );
            }
            Ok(())
        })?;
        Ok(out)
    }

    async fn resolve_seek(&self, tp: &TopicPartition, to: SeekTo) -> Result<u64> {
        let topic = self.lookup(&tp.topic)?;
        let part = topic.partition(tp.partition)?;
        let start = match to {
            SeekTo::Earliest => StartAt::Earliest,
            SeekTo::Latest => StartAt::Latest,
            SeekTo::Timestamp(t) => StartAt::Timestamp(t),
            SeekTo::Offset(o) => StartAt::Offset(o),
        };
        self.resolve_start(&topic, &part, start).await
    }

    /// Lists groups.
    pub fn list_groups(&self, caller: &Caller) -> Vec<GroupSummary> {
        let groups = self.inner.groups.groups.lock().expect("groups lock");
        let mut out: Vec<GroupSummary> = groups
            .iter()
            .filter(|(name, _)| caller::authorize(caller, Operation::Describe, Resource::Group, name).is_ok())
            .map(|(name, g)| GroupSummary {
                group: name.clone(),
                state: g.state().to_owned(),
                generation: g.generation,
                members: g.members.len(),
            })
            .collect();
        out.sort_by(|a, b| a.group.cmp(&b.group));
        out
    }

    /// Describes a group: members, assignment, committed offsets and lag.
    pub fn describe_group(&self, caller: &Caller, group: &str) -> Result<GroupDescription> {
        caller::authorize(caller, Operation::Describe, Resource::Group, group)?;
        let by_id: HashMap<u32, Arc<Topic>> = self.all_topics().into_iter().map(|t| (t.id, t)).collect();
        self.with_group(group, |g| {
            let members = g
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    assignment: m.assignment.iter().cloned().collect(),
                    pending: g.pending(id),
                    last_seen: m.last_seen_ms,
                    session_timeout_ms: m.options.session_timeout.as_millis() as u64,
                    assignment_strategy: m.options.strategy,
                })
                .collect();
            let mut tps: BTreeSet<(String, u32)> = g
                .committed
                .keys()
                .filter_map(|(id, p)| by_id.get(id).map(|t| (t.name.clone(), *p)))
                .collect();
            tps.extend(
                g.members
                    .values()
                    .flat_map(|m| m.assignment.iter().map(|tp| (tp.topic.clone(), tp.partition))),
            );
            let partitions = tps
                .into_iter()
                .filter_map(|(topic, partition)| {
                    let t = self.lookup(&topic).ok()?;
                    let part = t.partition(partition).ok()?;
                    let committed = g.committed.get(&(t.id, partition)).copied();
                    let end = part.next_offset();
                    let lag = end.saturating_sub(committed.unwrap_or(part.earliest_offset()));
                    Some(PartitionLag {
                        topic,
                        partition,
                        committed_offset: committed,
                        end_offset: end,
                        lag,
                    })
                })
                .collect();
            Ok(GroupDescription {
                group: group.to_owned(),
                state: g.state().to_owned(),
                generation: g.generation,
                members,
                partitions,
            })
        })
    }

    /// Deletes a group without members, with its committed offsets.
    pub async fn delete_group(&self, caller: &Caller, group: &str) -> Result<()> {
        caller::authorize(caller, Operation::Delete, Resource::Group, group)?;
        self.with_group(group, |g| {
            if g.members.is_empty() {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorCode::GroupNotEmpty,
                    format!("group '{group}' has {} members", g.members.len()),
                ))
            }
        })?;
        self.inner
            .writer
            .call(|reply| Op::DeleteGroupOffsets {
                group: group.to_owned(),
                reply,
            })
            .await?;
        let mut groups = self.inner.groups.groups.lock().expect("groups lock");
        if groups.get(group).is_some_and(|g| g.members.is_empty()) {
            groups.remove(group);
        }
        tracing::info!(group, "group deleted");
        self.audit(caller, "group.delete", Resource::Group, group);
        Ok(())
    }

    /// Resets committed offsets of a group with no members (optionally as a dry run).
    pub async fn reset_offsets(
        &self,
        caller: &Caller,
        group: &str,
        to: Option<SeekTo>,
        explicit: Option<Vec<PartitionOffset>>,
        topics: Option<Vec<String>>,
        dry_run: bool,
    ) -> Result<Vec<OffsetChange>> {
        validate_group_name(group)?;
        caller::authorize(caller, Operation::Alter, Resource::Group, group)?;
        let by_id: HashMap<u32, Arc<Topic>> = self.all_topics().into_iter().map(|t| (t.id, t)).collect();
        let (current, existing) = {
            let groups = self.inner.groups.groups.lock().expect("groups lock");
            match groups.get(group) {
                Some(g) if !g.members.is_empty() => {
                    return Err(Error::new(
                        ErrorCode::GroupNotEmpty,
                        format!(
                            "group '{group}' has {} members; offsets can only be reset while it has none",
                            g.members.len()
                        ),
                    ));
                }
                Some(g) => (g.committed.clone(), true),
                None => (HashMap::new(), false),
            }
        };
        if !existing && topics.is_none() && explicit.is_none() {
            return Err(group_not_found(group));
        }
        let mut targets: Vec<(Arc<Topic>, u32, Option<u64>)> = Vec::new();
        if let Some(list) = &explicit {
            for (i, o) in list.iter().enumerate() {
                if topics.as_ref().is_some_and(|t| !t.contains(&o.topic)) {
                    continue;
                }
                let t = self
                    .lookup(&o.topic)
                    .map_err(|e| e.with_field(format!("offsets[{i}].topic")))?;
                t.partition(o.partition)
                    .map_err(|e| e.with_field(format!("offsets[{i}].partition")))?;
                targets.push((t, o.partition, Some(o.offset)));
            }
        } else if let Some(names) = &topics {
            for (i, name) in names.iter().enumerate() {
                let t = self.lookup(name).map_err(|e| e.with_field(format!("topics[{i}]")))?;
                for p in 0..t.partitions().len() as u32 {
                    targets.push((t.clone(), p, None));
                }
            }
        } else {
            let mut keys: Vec<_> = current.keys().copied().collect();
            keys.sort();
            for (id, p) in keys {
                if let Some(t) = by_id.get(&id) {
                    targets.push((t.clone(), p, None));
                }
            }
        }
        let mut changes = Vec::new();
        let mut entries = Vec::new();
        for (i, (topic, partition, explicit_offset)) in targets.into_iter().enumerate() {
            let tp = TopicPartition {
                topic: topic.name.clone(),
                partition,
            };
            let offset = match (explicit_offset, to) {
                (Some(o), _) => self
                    .resolve_seek(&tp, SeekTo::Offset(o))
                    .await
                    .map_err(|e| e.with_field(format!("offsets[{i}].offset")))?,
                (None, Some(to)) => self.resolve_seek(&tp, to).await?,
                (None, None) => return Err(Error::invalid_parameter("to", "give `to` or `offsets`")),
            };
            let previous = current.get(&(topic.id, partition)).copied();
            changes.push(OffsetChange {
                topic: topic.name.clone(),
                partition,
                offset,
                previous_offset: previous,
            });
            entries.push((
                topic.id,
                PartitionOffset {
                    topic: topic.name.clone(),
                    partition,
                    offset,
                },
            ));
        }
        if !dry_run {
            // Re-check under the lock that no member joined meanwhile.
            self.with_group(group, |g| {
                if g.members.is_empty() {
                    Ok(())
                } else {
                    Err(Error::new(ErrorCode::GroupNotEmpty, "a member joined during the reset"))
                }
            })
            .or_else(|e| {
                if e.code == ErrorCode::GroupNotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            self.store_offsets(group, entries).await?;
            tracing::info!(group, partitions = changes.len(), "offsets reset");
            self.audit(caller, "group.offsets_reset", Resource::Group, group);
        }
        Ok(changes)
    }

    /// One lease and subscription check over all groups (run every tick).
    fn groups_tick(&self) {
        self.inner.tokens.sweep();
        let topics = self.topic_shapes();
        let now = Instant::now();
        let mut groups = self.inner.groups.groups.lock().expect("groups lock");
        for (name, g) in groups.iter_mut() {
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| {
                    !m.options.streaming
                        && m.in_flight == 0
                        && now.duration_since(m.last_seen) > m.options.session_timeout
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in &expired {
                g.remove_member(id);
                tracing::info!(group = %name, member = %id, "member lease expired");
            }
            let shape_changed = !g.members.is_empty() && g.subscribed_shape(&topics) != g.shape;
            if !expired.is_empty() || shape_changed {
                g.rebalance(&topics);
                metrics::counter!("weir_group_rebalances_total").increment(1);
            }
        }
    }
}

/// Starts the lease and subscription checker.
pub(super) fn spawn(broker: Broker) {
    let shutdown = broker.shutdown_token();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => broker.groups_tick(),
                _ = shutdown.cancelled() => return,
            }
        }
    });
}
