//! Group administration: list, describe (with committed offsets and lag), delete, and reset
//! the committed offsets of a group with no members.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::{
    Fence, Group, GroupCommit, GroupDescription, GroupSummary, MemberDescription, OffsetChange, PartitionLag,
    PartitionOffset, SeekTo, TopicPartition, group_not_found, validate_group_name,
};
use crate::broker::Broker;
use crate::broker::caller::{self, Caller, Operation, Resource};
use crate::broker::log::Op;
use crate::broker::topics::Topic;
use crate::error::{Error, ErrorCode, Result};

/// A partition whose committed offset a reset changes, and the offset asked for (if explicit).
type ResetTarget = (Arc<Topic>, u32, Option<u64>);

impl Broker {
    /// Lists the groups the caller may describe.
    pub fn list_groups(&self, caller: &Caller) -> Vec<GroupSummary> {
        let groups = self.inner.groups.lock();
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

    /// Describes a group: members, assignment, committed offsets and lag — the partitions of
    /// topics the caller may not describe are left out.
    pub fn describe_group(&self, caller: &Caller, group: &str) -> Result<GroupDescription> {
        caller::authorize(caller, Operation::Describe, Resource::Group, group)?;
        let by_id: HashMap<u32, Arc<Topic>> = self.all_topics().into_iter().map(|t| (t.id, t)).collect();
        let visible = |topic: &str| caller::authorize(caller, Operation::Describe, Resource::Topic, topic).is_ok();
        self.with_group(group, |g| {
            let members = g
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    principal: m.caller.principal.name(),
                    assignment: m.assignment.iter().filter(|tp| visible(&tp.topic)).cloned().collect(),
                    pending: g.pending(id).into_iter().filter(|tp| visible(&tp.topic)).collect(),
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
                .filter(|(topic, _)| visible(topic))
                .filter_map(|(topic, partition)| self.lag(g, topic, partition))
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

    /// Committed offset, end and lag of one partition of a group.
    fn lag(&self, g: &Group, topic: String, partition: u32) -> Option<PartitionLag> {
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
        let mut groups = self.inner.groups.lock();
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
        let (current, existing) = {
            let groups = self.inner.groups.lock();
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
        let named = explicit.is_some() || topics.is_some();
        let mut targets = self.reset_targets(&current, explicit.as_deref(), topics.as_deref())?;
        // Named topics must be describable; of the group's own offsets, the others are left alone.
        if named {
            for (t, _, _) in &targets {
                caller::authorize(caller, Operation::Describe, Resource::Topic, &t.name)?;
            }
        } else {
            targets
                .retain(|(t, _, _)| caller::authorize(caller, Operation::Describe, Resource::Topic, &t.name).is_ok());
        }
        let mut changes = Vec::new();
        let mut offsets = Vec::new();
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
            changes.push(OffsetChange {
                topic: topic.name.clone(),
                partition,
                offset,
                previous_offset: current.get(&(topic.id, partition)).copied(),
            });
            offsets.push((
                topic.id,
                PartitionOffset {
                    topic: topic.name.clone(),
                    partition,
                    offset,
                },
            ));
        }
        if !dry_run && !offsets.is_empty() {
            // The writer checks again, in its order, that no member joined meanwhile.
            let commit = GroupCommit {
                group: group.to_owned(),
                fence: Fence::NoMembers,
                offsets,
            };
            self.write_atomic(Vec::new(), Some(commit), Vec::new(), true).await?;
            tracing::info!(group, partitions = changes.len(), "offsets reset");
            self.audit(caller, "group.offsets_reset", Resource::Group, group);
        }
        Ok(changes)
    }

    /// The partitions a reset changes: the explicit ones, every partition of the named topics,
    /// or every partition the group has committed offsets for.
    fn reset_targets(
        &self,
        current: &HashMap<(u32, u32), u64>,
        explicit: Option<&[PartitionOffset]>,
        topics: Option<&[String]>,
    ) -> Result<Vec<ResetTarget>> {
        let mut targets = Vec::new();
        if let Some(list) = explicit {
            for (i, o) in list.iter().enumerate() {
                if topics.is_some_and(|t| !t.contains(&o.topic)) {
                    continue;
                }
                let t = self
                    .lookup(&o.topic)
                    .map_err(|e| e.with_field(format!("offsets[{i}].topic")))?;
                t.partition(o.partition)
                    .map_err(|e| e.with_field(format!("offsets[{i}].partition")))?;
                targets.push((t, o.partition, Some(o.offset)));
            }
        } else if let Some(names) = topics {
            for (i, name) in names.iter().enumerate() {
                let t = self.lookup(name).map_err(|e| e.with_field(format!("topics[{i}]")))?;
                for p in 0..t.partitions().len() as u32 {
                    targets.push((t.clone(), p, None));
                }
            }
        } else {
            let by_id: HashMap<u32, Arc<Topic>> = self.all_topics().into_iter().map(|t| (t.id, t)).collect();
            let mut keys: Vec<_> = current.keys().copied().collect();
            keys.sort();
            for (id, p) in keys {
                if let Some(t) = by_id.get(&id) {
                    targets.push((t.clone(), p, None));
                }
            }
        }
        Ok(targets)
    }
}
