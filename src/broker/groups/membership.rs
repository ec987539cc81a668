//! A member's calls: join, heartbeat, leave, poll, commit and seek. Every call but join must
//! come from the principal that joined.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{
    Fence, Group, GroupCommit, Heartbeat, JoinOptions, Member, MemberView, OffsetReset, PartitionOffset, Poll,
    PollOutcome, SESSION_TIMEOUT_RANGE, SeekTo, Subscription, TopicPartition, not_owned, unknown_member,
    validate_group_name,
};
use crate::broker::caller::{self, Caller, Operation, Resource};
use crate::broker::fetch::StartAt;
use crate::broker::topics::{Durability, Topic};
use crate::broker::{Broker, now_ms};
use crate::error::{Error, ErrorCode, Result};

/// Decrements a member's in-flight count when a request ends (however it ends).
struct InFlight {
    broker: Broker,
    group: String,
    member: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut groups = self.broker.inner.groups.lock();
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

/// A partition a member owns, with where it reads next.
type Owned = (Arc<Topic>, u32, u64);

impl Broker {
    /// Claims the member's released partitions and returns those it owns, with positions
    /// (initialised from the committed offset or the reset policy).
    fn claim(&self, g: &mut Group, member: &str) -> Result<Vec<Owned>> {
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
                None => start_position(m, &tp, committed, earliest, next)?,
            };
            // Retention may have moved the start past the position.
            let pos = pos.clamp(earliest, next);
            m.positions.insert(tp, pos);
            owned.push((topic, part.index, pos));
        }
        Ok(owned)
    }

    /// Joins a group (creating it) and returns the member's view. The member is bound to the
    /// caller's principal, and is assigned only topics the caller may read.
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
        let mut groups = self.inner.groups.lock();
        let g = groups.entry(group.to_owned()).or_insert_with(Group::new);
        let joined = self.inner.groups.seq.fetch_add(1, Ordering::Relaxed);
        let mut caller = caller.clone();
        caller.request_id = None;
        g.members.insert(
            id.clone(),
            Member {
                options,
                caller,
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
        g.take_ownership(&id);
        tracing::info!(group, member = %id, generation, "member joined");
        Ok(g.view(&id))
    }

    /// Renews the lease; tells the member of a rebalance.
    pub fn heartbeat(&self, caller: &Caller, group: &str, member: &str) -> Result<Heartbeat> {
        caller::authorize(caller, Operation::Read, Resource::Group, group)?;
        self.with_group(group, |g| {
            let rebalanced = g.touch(group, member, caller)?.is_some();
            g.release(member);
            g.take_ownership(member);
            Ok(Heartbeat {
                view: g.view(member),
                rebalanced,
            })
        })
    }

    /// Leaves at once; the member's partitions move to the others.
    pub fn leave_group(&self, caller: &Caller, group: &str, member: &str) -> Result<()> {
        caller::authorize(caller, Operation::Read, Resource::Group, group)?;
        let topics = self.topic_shapes();
        self.with_group(group, |g| {
            let m = g.members.get(member).ok_or_else(|| unknown_member(group, member))?;
            if m.caller.principal != caller.principal {
                return Err(super::foreign_member(group, member));
            }
            g.remove_member(member);
            g.rebalance(&topics);
            tracing::info!(group, member, generation = g.generation, "member left");
            Ok(())
        })
    }

    /// Polls records from the member's partitions, long-polling up to `wait`. A rebalance is
    /// an outcome of its own, carrying the member's new view.
    pub async fn group_poll(
        &self,
        caller: &Caller,
        group: &str,
        member: &str,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<PollOutcome> {
        caller::authorize(caller, Operation::Read, Resource::Group, group)?;
        let start = self.with_group(group, |g| {
            if let Some(view) = g.touch(group, member, caller)? {
                return Ok(Err(view));
            }
            let m = g.members.get_mut(member).expect("touched");
            m.in_flight += 1;
            Ok(Ok((g.changed.subscribe(), m.options.auto_commit)))
        })?;
        let (mut changed, auto_commit) = match start {
            Ok(s) => s,
            Err(view) => return Ok(PollOutcome::Rebalanced(view)),
        };
        let _in_flight = InFlight {
            broker: self.clone(),
            group: group.to_owned(),
            member: member.to_owned(),
        };
        if auto_commit {
            self.group_commit(caller, group, member, None, None, None).await?;
        }
        let wait = wait.min(Duration::from_millis(self.inner.config.max_wait_ms));
        let deadline = tokio::time::Instant::now() + wait;
        let shutdown = self.shutdown_token();
        let mut ended = std::pin::pin!(caller.credential_ended());
        let rotate = self.inner.groups.seq.fetch_add(1, Ordering::Relaxed) as usize;
        loop {
            changed.borrow_and_update();
            let step = self.with_group(group, |g| {
                if let Some(view) = g.touch(group, member, caller)? {
                    return Ok(Err(view));
                }
                g.release(member);
                self.claim(g, member).map(Ok)
            })?;
            let owned = match step {
                Ok(owned) => owned,
                Err(view) => return Ok(PollOutcome::Rebalanced(view)),
            };
            let fetched = self
                .read_owned(caller, group, &owned, rotate, max_records, max_bytes)
                .await?;
            if !fetched.is_empty() || tokio::time::Instant::now() >= deadline || shutdown.is_cancelled() {
                return self.advance_positions(group, member, fetched);
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
                end = &mut ended => return Err(end.error()),
            }
        }
    }

    /// Reads from the owned partitions the caller may still read, starting at a rotating one
    /// so that every partition gets its turn, within the record and byte limits.
    async fn read_owned(
        &self,
        caller: &Caller,
        group: &str,
        owned: &[Owned],
        rotate: usize,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<crate::broker::FetchResult>> {
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
            if caller::authorize(caller, Operation::Read, Resource::Topic, &topic.name).is_err() {
                // The grant went away: the partition is reassigned at the next tick.
                self.with_group(group, |g| {
                    g.needs_rebalance = true;
                    Ok(())
                })?;
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
        Ok(fetched)
    }

    /// Moves the member's positions past what a poll returns, and answers the poll.
    fn advance_positions(
        &self,
        group: &str,
        member: &str,
        fetched: Vec<crate::broker::FetchResult>,
    ) -> Result<PollOutcome> {
        let view = self.with_group(group, |g| {
            let generation = g.generation;
            let owners = g.owners.clone();
            let m = g.members.get_mut(member).ok_or_else(|| unknown_member(group, member))?;
            for f in &fetched {
                let tp = TopicPartition {
                    topic: f.topic.clone(),
                    partition: f.partition,
                };
                // Positions of partitions revoked and already released are dropped.
                if owners.get(&tp).is_some_and(|o| o == member) || m.known_generation < generation {
                    m.positions.insert(tp, f.next_offset);
                }
            }
            Ok(g.view(member))
        })?;
        Ok(PollOutcome::Records(Poll { view, fetched }))
    }

    /// Commits explicit offsets (checked against the generation and ownership when written),
    /// or with `None` the positions of everything returned so far.
    pub async fn group_commit(
        &self,
        caller: &Caller,
        group: &str,
        member: &str,
        generation: Option<u64>,
        offsets: Option<Vec<PartitionOffset>>,
        durability: Option<Durability>,
    ) -> Result<Vec<PartitionOffset>> {
        caller::authorize(caller, Operation::Read, Resource::Group, group)?;
        let commit = self.member_commit(caller, group, member, generation, offsets)?;
        if commit.offsets.is_empty() {
            return Ok(Vec::new());
        }
        let committed = commit.offsets.iter().map(|(_, o)| o.clone()).collect();
        let sync = durability == Some(Durability::Fsync);
        self.write_atomic(Vec::new(), Some(commit), Vec::new(), sync).await?;
        Ok(committed)
    }

    /// Checks a member's commit now (the writer checks membership again when it writes it):
    /// the member is the caller's, knows the current generation (and is in `generation` if
    /// given), owns each partition, and no offset is past its partition's end.
    pub(crate) fn member_commit(
        &self,
        caller: &Caller,
        group: &str,
        member: &str,
        generation: Option<u64>,
        offsets: Option<Vec<PartitionOffset>>,
    ) -> Result<GroupCommit> {
        let offsets = self.with_group(group, |g| {
            // A stale generation is told as such before the member hears of the rebalance.
            let m = g.members.get(member).ok_or_else(|| unknown_member(group, member))?;
            if m.caller.principal != caller.principal {
                return Err(super::foreign_member(group, member));
            }
            if let Some(gen_) = generation
                && gen_ != g.generation
            {
                return Err(super::illegal_generation(gen_, g.generation));
            }
            g.touch_current(group, member, caller)?;
            g.take_ownership(member);
            let list: Vec<PartitionOffset> = match offsets {
                None => g.members[member]
                    .positions
                    .iter()
                    .filter(|(tp, _)| g.owns(member, tp))
                    .map(|(tp, &offset)| PartitionOffset {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset,
                    })
                    .collect(),
                Some(list) => list,
            };
            let mut entries = Vec::with_capacity(list.len());
            for (i, o) in list.into_iter().enumerate() {
                let tp = TopicPartition {
                    topic: o.topic.clone(),
                    partition: o.partition,
                };
                if !g.owns(member, &tp) {
                    return Err(not_owned(&tp, g.generation).with_field(format!("offsets[{i}]")));
                }
                let topic = self.lookup(&o.topic)?;
                check_commit_offset(&topic, &o, i)?;
                entries.push((topic.id, o));
            }
            Ok(entries)
        })?;
        Ok(GroupCommit {
            group: group.to_owned(),
            fence: Fence::Member {
                member: member.to_owned(),
                principal: caller.principal.clone(),
                generation,
            },
            offsets,
        })
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
            g.touch_current(group, member, caller)?;
            g.release(member);
            let owned: Vec<TopicPartition> = self
                .claim(g, member)?
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

    /// Where `to` is in a partition.
    pub(super) async fn resolve_seek(&self, tp: &TopicPartition, to: SeekTo) -> Result<u64> {
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
}

/// Where a member starts reading a partition it has no position in: where a reconnecting
/// stream left off or the committed offset (the further of the two), else per its reset policy.
fn start_position(m: &Member, tp: &TopicPartition, committed: Option<u64>, earliest: u64, next: u64) -> Result<u64> {
    let start = match (m.options.resume.get(tp).copied(), committed) {
        (Some(r), Some(c)) => Some(r.max(c)),
        (r, c) => r.or(c),
    };
    match start {
        Some(o) if (earliest..=next).contains(&o) => Ok(o),
        _ => match m.options.auto_offset_reset {
            OffsetReset::Earliest => Ok(earliest),
            OffsetReset::Latest => Ok(next),
            OffsetReset::None => Err(Error::new(
                ErrorCode::NoCommittedOffset,
                format!(
                    "partition {} of '{}' has no committed offset and auto_offset_reset is none",
                    tp.partition, tp.topic
                ),
            )
            .with_field("auto_offset_reset")),
        },
    }
}

/// Refuses a commit past a partition's end.
pub(super) fn check_commit_offset(topic: &Topic, o: &PartitionOffset, i: usize) -> Result<()> {
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
    Ok(())
}
