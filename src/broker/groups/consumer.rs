//! [`Consumer`]: a group member held by an in-process client (a connector task, a stream
//! query, a streaming HTTP member). It calls the same broker methods as the HTTP door, keeps
//! the member's current view, and leaves the group when dropped.

use std::time::Duration;

use super::{Heartbeat, JoinOptions, MemberView, PartitionOffset, PollOutcome, SeekTo, TopicPartition};
use crate::broker::caller::Caller;
use crate::broker::topics::Durability;
use crate::broker::{Broker, FetchResult};
use crate::error::Result;

/// A member of a consumer group, bound to its caller; leaves the group when dropped.
#[derive(Debug)]
pub struct Consumer {
    broker: Broker,
    caller: Caller,
    group: String,
    view: MemberView,
    left: bool,
}

/// Commits offsets as a member ([`Consumer::committer`]): the same checks and fencing as
/// [`Consumer::commit`], which it serves.
#[derive(Debug, Clone)]
pub struct Committer {
    broker: Broker,
    caller: Caller,
    group: String,
    member_id: String,
}

impl Committer {
    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Commits offsets, or with `None` everything the member polled so far (see
    /// [`Consumer::commit`]).
    pub async fn commit(
        &self,
        offsets: Option<Vec<PartitionOffset>>,
        durability: Option<Durability>,
    ) -> Result<Vec<PartitionOffset>> {
        self.broker
            .group_commit(&self.caller, &self.group, &self.member_id, None, offsets, durability)
            .await
    }
}

/// What one [`Consumer::poll`] brought.
#[derive(Debug)]
pub enum Polled {
    /// Records (none when the wait ran out), per partition.
    Records(Vec<FetchResult>),
    /// The group rebalanced: [`Consumer::view`] holds the new assignment.
    Rebalanced,
}

impl Consumer {
    /// Joins `group` as `caller`.
    pub async fn join(broker: &Broker, caller: Caller, group: &str, options: JoinOptions) -> Result<Self> {
        let view = broker.join_group(&caller, group, options).await?;
        Ok(Self {
            broker: broker.clone(),
            caller,
            group: group.to_owned(),
            view,
            left: false,
        })
    }

    /// The member id.
    pub fn member_id(&self) -> &str {
        &self.view.member_id
    }

    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The member's generation and assignment as last heard.
    pub fn view(&self) -> &MemberView {
        &self.view
    }

    /// Polls records, waiting up to `wait` for a first one.
    pub async fn poll(&mut self, max_records: usize, max_bytes: usize, wait: Duration) -> Result<Polled> {
        let outcome = self
            .broker
            .group_poll(
                &self.caller,
                &self.group,
                &self.view.member_id,
                max_records,
                max_bytes,
                wait,
            )
            .await?;
        Ok(match outcome {
            PollOutcome::Records(poll) => {
                self.view = poll.view;
                Polled::Records(poll.fetched)
            }
            PollOutcome::Rebalanced(view) => {
                self.view = view;
                Polled::Rebalanced
            }
        })
    }

    /// Commits offsets (the next offset to read per partition), or with `None` everything
    /// polled so far. Fenced by ownership: a partition is the member's until it releases it
    /// at its next poll after a rebalance, so what it processed can still be committed.
    pub async fn commit(
        &self,
        offsets: Option<Vec<PartitionOffset>>,
        durability: Option<Durability>,
    ) -> Result<Vec<PartitionOffset>> {
        self.committer().commit(offsets, durability).await
    }

    /// A handle that commits as this member without borrowing the consumer, so that a commit
    /// can run while the consumer polls.
    pub fn committer(&self) -> Committer {
        Committer {
            broker: self.broker.clone(),
            caller: self.caller.clone(),
            group: self.group.clone(),
            member_id: self.view.member_id.clone(),
        }
    }

    /// Renews the lease; updates the view when the group rebalanced.
    pub fn heartbeat(&mut self) -> Result<Heartbeat> {
        let hb = self.broker.heartbeat(&self.caller, &self.group, &self.view.member_id)?;
        self.view = hb.view.clone();
        Ok(hb)
    }

    /// Moves positions of owned partitions (all of them with `None`).
    pub async fn seek(&self, to: SeekTo, partitions: Option<Vec<TopicPartition>>) -> Result<Vec<PartitionOffset>> {
        self.broker
            .seek(&self.caller, &self.group, &self.view.member_id, to, partitions)
            .await
    }

    /// Leaves the group now.
    pub fn leave(mut self) -> Result<()> {
        self.left = true;
        self.broker.leave_group(&self.caller, &self.group, &self.view.member_id)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if !self.left {
            let _ = self.broker.leave_group(&self.caller, &self.group, &self.view.member_id);
        }
    }
}
