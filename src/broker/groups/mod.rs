//! Consumer groups whose state lives in the server: membership with leases, assignment,
//! fetch positions, committed offsets, and the rebalance protocol.
//!
//! A member is bound to the principal that joined: another caller that knows its id is refused
//! (`forbidden`). Every request renews the member's lease; a background tick removes members whose lease lapsed and rebalances when
//! subscribed topics change shape. A rebalance computes the next generation's assignment at
//! once, but a partition moves only when its previous owner has *released* it: when the old
//! owner next hears from the server (and is told of the new generation), leaves, or expires.
//! Until then the new owner sees the partition as `pending` and receives nothing from it, so two
//! live members never read the same partition at the same time.

mod admin;
pub mod assignor;
pub mod consumer;
mod membership;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use assignor::{Strategy, TopicPartition};
pub use consumer::{Committer, Consumer, Polled};

use super::caller::{self, Caller, Operation, Principal, Resource};
use super::fetch::FetchResult;
use super::{Broker, now_ms};
use crate::error::{Error, ErrorCode, Result};
use crate::storage::{GroupOffsetKey, StoreBatch};

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
    #[serde(deserialize_with = "crate::json_int::int")]
    pub partition: u32,
    /// Offset (for commits: the next offset to read).
    #[serde(deserialize_with = "crate::json_int::int")]
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

/// What a poll brings: records, or the news that the group rebalanced (the member's new view;
/// the member goes on polling with it — partitions it lost are released by that next call).
#[derive(Debug)]
pub enum PollOutcome {
    /// Records (possibly none when the wait ran out).
    Records(Poll),
    /// The group moved to a new generation since the member last heard.
    Rebalanced(MemberView),
}

/// A heartbeat's answer: the member's view, and whether it learns of a rebalance with it.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// The member's view.
    pub view: MemberView,
    /// Whether the group rebalanced since the member last heard.
    pub rebalanced: bool,
}

impl MemberView {
    /// The `rebalance_in_progress` error that carries this view (how the HTTP door and commits
    /// tell a member of a new generation).
    pub fn rebalance_error(&self) -> Error {
        let mut ext = serde_json::Map::new();
        ext.insert("generation".into(), self.generation.into());
        ext.insert(
            "assignment".into(),
            serde_json::to_value(&self.assignment).unwrap_or_default(),
        );
        ext.insert(
            "pending".into(),
            serde_json::to_value(&self.pending).unwrap_or_default(),
        );
        Error::new(
            ErrorCode::RebalanceInProgress,
            format!(
                "the group rebalanced to generation {}; this answer carries the new assignment",
                self.generation
            ),
        )
        .with_extensions(ext)
    }
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
    /// The principal the member is bound to (only it may act as the member).
    pub principal: String,
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
    /// The caller that joined, with its grants as of its latest request.
    caller: Caller,
    joined: u64,
    last_seen: Instant,
    last_seen_ms: i64,
    in_flight: u32,
    known_generation: u64,
    assignment: BTreeSet<TopicPartition>,
    positions: HashMap<TopicPartition, u64>,
}

impl Member {
    /// Whether the member subscribes to `topic` and may read it.
    fn consumes(&self, topic: &str) -> bool {
        self.options.subscription.matches(topic)
            && caller::authorize(&self.caller, Operation::Read, Resource::Topic, topic).is_ok()
    }
}

/// One consumer group's state (in memory; committed offsets are also in the store).
pub(crate) struct Group {
    generation: u64,
    members: BTreeMap<String, Member>,
    owners: HashMap<TopicPartition, String>,
    committed: HashMap<(u32, u32), u64>,
    shape: BTreeMap<String, u32>,
    /// A member's grants changed: the next tick rebalances.
    needs_rebalance: bool,
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
            needs_rebalance: false,
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

    /// The topics some member consumes (subscribes to and may read), with partition counts.
    fn subscribed_shape(&self, topics: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
        topics
            .iter()
            .filter(|(t, _)| self.members.values().any(|m| m.consumes(t)))
            .map(|(t, n)| (t.clone(), *n))
            .collect()
    }

    fn rebalance(&mut self, topics: &BTreeMap<String, u32>) {
        self.generation += 1;
        self.needs_rebalance = false;
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
                    topics: shape.keys().filter(|t| m.consumes(t)).cloned().collect(),
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
        metrics::counter!("weir_group_rebalances_total").increment(1);
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

    /// Whether `member` holds `tp`: assigned and claimed, or lost in this rebalance but not yet
    /// released (so that it can still commit what it processed).
    fn owns(&self, member: &str, tp: &TopicPartition) -> bool {
        self.owners.get(tp).is_some_and(|o| o == member)
    }

    /// Renews a member's lease for `caller`, which must be the principal that joined. Returns
    /// the member's new view when the group rebalanced since it last heard (it learns it now).
    /// Partitions it lost stay its own until it is told ([`Self::release`]), so that it can
    /// still commit what it processed from them.
    fn touch(&mut self, group: &str, member: &str, caller: &Caller) -> Result<Option<MemberView>> {
        let generation = self.generation;
        let m = self
            .members
            .get_mut(member)
            .ok_or_else(|| unknown_member(group, member))?;
        if m.caller.principal != caller.principal {
            return Err(foreign_member(group, member));
        }
        if m.caller.permissions != caller.permissions {
            // The caller's grants changed (a new JWT): what it may read may have changed too.
            m.caller = caller.clone();
            self.needs_rebalance = true;
        }
        m.last_seen = Instant::now();
        m.last_seen_ms = now_ms();
        if m.known_generation < generation {
            m.known_generation = generation;
            return Ok(Some(self.view(member)));
        }
        Ok(None)
    }

    /// [`Self::touch`], with a rebalance as the `rebalance_in_progress` error (for calls whose
    /// answer cannot carry the new view).
    fn touch_current(&mut self, group: &str, member: &str, caller: &Caller) -> Result<()> {
        match self.touch(group, member, caller)? {
            Some(view) => Err(view.rebalance_error()),
            None => Ok(()),
        }
    }

    /// Releases the partitions a member lost in the current generation (after it was told).
    fn release(&mut self, member: &str) {
        let Some(m) = self.members.get_mut(member) else { return };
        let assignment = &m.assignment;
        m.positions.retain(|tp, _| assignment.contains(tp));
        self.owners
            .retain(|tp, owner| owner != member || assignment.contains(tp));
    }

    /// Takes ownership of the member's assigned partitions that nobody holds any more.
    fn take_ownership(&mut self, member: &str) {
        let Some(m) = self.members.get(member) else { return };
        for tp in &m.assignment {
            self.owners.entry(tp.clone()).or_insert_with(|| member.to_owned());
        }
    }
}

/// The groups by name.
pub(crate) type GroupMap = HashMap<String, Group>;

/// All consumer groups.
pub(crate) struct Groups {
    groups: Mutex<GroupMap>,
    seq: AtomicU64,
}

impl Groups {
    /// Groups with the committed offsets found in the store.
    pub(crate) fn load(committed: Vec<(GroupOffsetKey, u64)>) -> Self {
        let mut groups: GroupMap = HashMap::new();
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

    /// Locks every group (the log writer holds it while it checks, writes and applies commits).
    pub(crate) fn lock(&self) -> MutexGuard<'_, GroupMap> {
        self.groups.lock().expect("groups lock")
    }

    /// Removes the committed offsets of a deleted topic: `write` gets their keys and writes their
    /// deletion; memory follows once it succeeded. Groups left with neither members nor offsets
    /// are forgotten. Returns how many offsets were removed.
    pub(crate) fn lock_and_forget_topic(
        &self,
        topic_id: u32,
        write: impl FnOnce(&[GroupOffsetKey]) -> Result<()>,
    ) -> Result<usize> {
        let mut groups = self.lock();
        let keys: Vec<GroupOffsetKey> = groups
            .iter()
            .flat_map(|(name, g)| {
                g.committed
                    .keys()
                    .filter(|(t, _)| *t == topic_id)
                    .map(|&(topic_id, partition)| GroupOffsetKey {
                        group: name.clone(),
                        topic_id,
                        partition,
                    })
            })
            .collect();
        write(&keys)?;
        for g in groups.values_mut() {
            g.committed.retain(|(t, _), _| *t != topic_id);
        }
        groups.retain(|_, g| !g.members.is_empty() || !g.committed.is_empty());
        Ok(keys.len())
    }
}

/// Who may commit offsets to a group, checked when the commit is written.
#[derive(Debug, Clone)]
pub(crate) enum Fence {
    /// A member, bound to its principal, owning every committed partition (and in
    /// `generation`, when given).
    Member {
        member: String,
        principal: Principal,
        generation: Option<u64>,
    },
    /// An administrative reset: only while the group has no members.
    NoMembers,
}

/// Offsets to commit to a group, checked and applied by the log writer in its write order.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    pub group: String,
    pub fence: Fence,
    /// Topic id and offset of each partition.
    pub offsets: Vec<(u32, PartitionOffset)>,
}

impl GroupCommit {
    /// Whether the commit may be written now.
    pub(crate) fn check(&self, groups: &GroupMap) -> Result<()> {
        let g = groups.get(&self.group);
        match &self.fence {
            Fence::NoMembers => match g {
                Some(g) if !g.members.is_empty() => Err(Error::new(
                    ErrorCode::GroupNotEmpty,
                    format!(
                        "group '{}' has members; offsets can only be reset while it has none",
                        self.group
                    ),
                )),
                _ => Ok(()),
            },
            Fence::Member {
                member,
                principal,
                generation,
            } => {
                let g = g.ok_or_else(|| group_not_found(&self.group))?;
                let m = g
                    .members
                    .get(member)
                    .ok_or_else(|| unknown_member(&self.group, member))?;
                if &m.caller.principal != principal {
                    return Err(foreign_member(&self.group, member));
                }
                if let Some(gen_) = generation
                    && *gen_ != g.generation
                {
                    return Err(illegal_generation(*gen_, g.generation));
                }
                for (i, (_, o)) in self.offsets.iter().enumerate() {
                    let tp = TopicPartition {
                        topic: o.topic.clone(),
                        partition: o.partition,
                    };
                    if !g.owns(member, &tp) {
                        return Err(not_owned(&tp, g.generation).with_field(format!("offsets[{i}]")));
                    }
                }
                Ok(())
            }
        }
    }

    /// Adds the commit to a write.
    pub(crate) fn put(&self, batch: &mut StoreBatch<'_>) {
        for (topic_id, o) in &self.offsets {
            let key = GroupOffsetKey {
                group: self.group.clone(),
                topic_id: *topic_id,
                partition: o.partition,
            };
            batch.put_committed_offset(&key, o.offset);
        }
    }

    /// Makes memory follow the written commit.
    pub(crate) fn apply(&self, groups: &mut GroupMap) {
        let g = groups.entry(self.group.clone()).or_insert_with(Group::new);
        for (topic_id, o) in &self.offsets {
            g.committed.insert((*topic_id, o.partition), o.offset);
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

fn foreign_member(group: &str, member: &str) -> Error {
    Error::new(
        ErrorCode::Forbidden,
        format!("member '{member}' of group '{group}' was joined by another principal; only it may act as the member"),
    )
    .with_field("member")
}

fn illegal_generation(given: u64, current: u64) -> Error {
    Error::new(
        ErrorCode::IllegalGeneration,
        format!("generation {given} is not the group's current generation {current}"),
    )
    .with_field("generation")
}

fn not_owned(tp: &TopicPartition, generation: u64) -> Error {
    Error::new(
        ErrorCode::PartitionNotOwned,
        format!(
            "member does not own partition {} of '{}' in generation {generation}",
            tp.partition, tp.topic
        ),
    )
}

impl Broker {
    fn topic_shapes(&self) -> BTreeMap<String, u32> {
        self.all_topics()
            .iter()
            .map(|t| (t.name.clone(), t.partitions().len() as u32))
            .collect()
    }

    fn with_group<T>(&self, group: &str, f: impl FnOnce(&mut Group) -> Result<T>) -> Result<T> {
        let mut groups = self.inner.groups.lock();
        let g = groups.get_mut(group).ok_or_else(|| group_not_found(group))?;
        f(g)
    }

    /// One lease and subscription check over all groups (run every tick).
    fn groups_tick(&self) {
        self.inner.tokens.sweep();
        self.inner.quotas.sweep(Instant::now());
        let topics = self.topic_shapes();
        let now = Instant::now();
        let mut groups = self.inner.groups.lock();
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
            if !expired.is_empty() || shape_changed || (g.needs_rebalance && !g.members.is_empty()) {
                g.rebalance(&topics);
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
