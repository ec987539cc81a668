//! Atomic transactions: records to any number of topics and partitions, a consumer-group
//! commit fenced by the member's generation, and state-table changes — written as one RocksDB
//! write through the log writer: all of it or none of it, visible to readers only once written.
//!
//! This is how a consume → process → produce loop becomes exactly-once: its output, its input
//! offsets and its state cannot be split by a crash.

use serde::Serialize;

use super::caller::{self, Caller, Operation, Resource};
use super::groups::{PartitionOffset, validate_group_name};
use super::log::TopicAppend;
use super::produce::{ProduceRequest, RecordAck};
use super::state::{StateWrite, authorize_state};
use super::topics::Durability;
use super::{Broker, quotas};
use crate::error::{Error, ErrorCode, Result};

/// Records for one topic within a transaction (formats from the request; its `durability`
/// and `idempotency` are not used: the transaction has its own durability).
#[derive(Debug, Clone)]
pub struct TxnProduce<'a> {
    /// The topic.
    pub topic: String,
    /// The records and their formats.
    pub request: ProduceRequest<'a>,
}

/// Offsets a group member commits within a transaction.
#[derive(Debug, Clone)]
pub struct TxnCommit {
    /// The group.
    pub group: String,
    /// The member (bound to the caller's principal).
    pub member_id: String,
    /// The member's generation: a stale one fails the whole transaction.
    pub generation: u64,
    /// Offsets: the next offset to read per partition, as Kafka commits.
    pub offsets: Vec<PartitionOffset>,
}

/// One atomic unit of work.
#[derive(Debug, Clone, Default)]
pub struct Transaction<'a> {
    /// Records to append.
    pub produce: Vec<TxnProduce<'a>>,
    /// Offsets to commit.
    pub commit: Option<TxnCommit>,
    /// State changes (in the caller's own namespace).
    pub state: Vec<StateWrite>,
    /// `fsync` makes the transaction survive power loss (the strictest topic's setting wins
    /// when not given).
    pub durability: Option<Durability>,
}

/// Where one topic's records of a transaction were written.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TopicAcks {
    /// The topic.
    pub topic: String,
    /// Per record, in request order.
    pub results: Vec<RecordAckView>,
}

/// Where a record was written.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct RecordAckView {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Timestamp, ms since the epoch.
    pub timestamp: i64,
}

impl From<RecordAck> for RecordAckView {
    fn from(a: RecordAck) -> Self {
        Self {
            partition: a.partition,
            offset: a.offset,
            timestamp: a.timestamp,
        }
    }
}

/// What a transaction wrote.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TxnOutcome {
    /// Per topic, where each record went.
    pub produce: Vec<TopicAcks>,
    /// The committed offsets.
    pub committed: Vec<PartitionOffset>,
}

/// A transaction checked, authorized and encoded, ready to be written: what
/// [`Broker::prepare`] makes and [`Broker::write_prepared`] writes. A runtime that moves data
/// in batches prepares the next batch while the one before is being written.
pub struct PreparedTxn {
    writes: Vec<TopicAppend>,
    encoded: Vec<(String, super::produce::Encoded, usize)>,
    commit: Option<super::groups::GroupCommit>,
    state: Vec<StateWrite>,
    sync: bool,
}

impl std::fmt::Debug for PreparedTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedTxn")
            .field("topics", &self.encoded.iter().map(|(t, _, _)| t).collect::<Vec<_>>())
            .field("state", &self.state.len())
            .field("sync", &self.sync)
            .finish()
    }
}

impl PreparedTxn {
    /// Appends `next`'s records and state changes after this transaction's, so that both are
    /// written in one write: all of both, or none of either. A runtime with several batches
    /// prepared while the one before was written writes them together. Transactions that commit
    /// offsets are not merged (each has its own member check): `next` comes back.
    pub fn merge(&mut self, next: PreparedTxn) -> std::result::Result<(), Box<PreparedTxn>> {
        if self.commit.is_some() || next.commit.is_some() {
            return Err(Box::new(next));
        }
        self.writes.extend(next.writes);
        self.encoded.extend(next.encoded);
        self.state.extend(next.state);
        self.sync |= next.sync;
        Ok(())
    }
}

impl Broker {
    /// Runs a transaction: everything in it is written in one write, or nothing is. A record
    /// that cannot be written, a stale generation or a partition the member no longer owns
    /// fails the whole transaction.
    pub async fn transact(&self, caller: &Caller, txn: Transaction<'_>) -> Result<TxnOutcome> {
        let prepared = self.prepare(caller, txn)?;
        self.write_prepared(prepared).await
    }

    /// Checks, authorizes and encodes a transaction without writing it (see [`PreparedTxn`]).
    /// The member's generation and ownership are checked again when it is written.
    pub fn prepare(&self, caller: &Caller, txn: Transaction<'_>) -> Result<PreparedTxn> {
        if txn.produce.is_empty() && txn.commit.is_none() && txn.state.is_empty() {
            return Err(Error::invalid_parameter(
                "produce",
                "a transaction needs records to produce, offsets to commit or state to write",
            ));
        }
        let total: usize = txn.produce.iter().map(|p| p.request.records.len()).sum();
        let max = self.inner.config.max_records_per_request;
        if total > max {
            return Err(Error::new(
                ErrorCode::TooManyRecords,
                format!("{total} records in one transaction; the limit is {max}"),
            )
            .with_field("produce"));
        }
        for w in &txn.state {
            authorize_state(caller, w.namespace())?;
        }
        if !txn.produce.is_empty() {
            self.admit_append()?;
        }
        let (writes, encoded, bytes_in, strictest) = self.encode_txn(caller, &txn.produce)?;
        let commit = match &txn.commit {
            Some(c) => {
                validate_group_name(&c.group).map_err(|e| e.with_field("commit.group"))?;
                caller::authorize(caller, Operation::Read, Resource::Group, &c.group)?;
                let gc = self
                    .member_commit(
                        caller,
                        &c.group,
                        &c.member_id,
                        Some(c.generation),
                        Some(c.offsets.clone()),
                    )
                    .map_err(|e| prefix_field(e, "commit"))?;
                Some(gc)
            }
            None => None,
        };
        self.inner
            .quotas
            .take(caller, quotas::Kind::ProduceBytes, bytes_in, false)?;
        Ok(PreparedTxn {
            writes,
            encoded,
            commit,
            state: txn.state,
            sync: txn.durability.unwrap_or(strictest) == Durability::Fsync,
        })
    }

    /// Writes a prepared transaction: all of it or none of it.
    pub async fn write_prepared(&self, txn: PreparedTxn) -> Result<TxnOutcome> {
        let committed = txn
            .commit
            .as_ref()
            .map(|c| c.offsets.iter().map(|(_, o)| o.clone()).collect())
            .unwrap_or_default();
        let bases = self.write_atomic(txn.writes, txn.commit, txn.state, txn.sync).await?;
        let mut produce = Vec::with_capacity(txn.encoded.len());
        let mut at = 0;
        for (topic, enc, parts) in txn.encoded {
            produce.push(TopicAcks {
                topic,
                results: enc.acks(&bases[at..at + parts]).into_iter().map(Into::into).collect(),
            });
            at += parts;
        }
        metrics::counter!("weir_transactions_total").increment(1);
        Ok(TxnOutcome { produce, committed })
    }

    /// Authorizes and encodes the records of a transaction, topic by topic. Any record that
    /// cannot be written fails the transaction, naming it.
    #[allow(clippy::type_complexity)]
    fn encode_txn(
        &self,
        caller: &Caller,
        produce: &[TxnProduce<'_>],
    ) -> Result<(
        Vec<TopicAppend>,
        Vec<(String, super::produce::Encoded, usize)>,
        u64,
        Durability,
    )> {
        let mut writes = Vec::with_capacity(produce.len());
        let mut encoded = Vec::with_capacity(produce.len());
        let mut bytes_in = 0;
        let mut strictest = Durability::Wal;
        for (i, p) in produce.iter().enumerate() {
            caller::authorize(caller, Operation::Write, Resource::Topic, &p.topic)?;
            let topic = self
                .lookup(&p.topic)
                .map_err(|e| e.with_field(format!("produce[{i}].topic")))?;
            if p.request.records.is_empty() {
                return Err(Error::new(ErrorCode::InvalidRecord, "records must not be empty")
                    .with_field(format!("produce[{i}].records")));
            }
            let mut enc = self.encode(&topic, &p.request);
            if let Some(e) = enc.errors.drain(..).next() {
                return Err(prefix_field(e, &format!("produce[{i}]")));
            }
            if topic.produce_settings().1 == Durability::Fsync {
                strictest = Durability::Fsync;
            }
            bytes_in += enc.bytes_in;
            let parts = std::mem::take(&mut enc.parts);
            encoded.push((topic.name.clone(), enc, parts.len()));
            writes.push(TopicAppend { topic, parts });
        }
        Ok((writes, encoded, bytes_in, strictest))
    }
}

/// Puts a part of the transaction in front of an error's field (`records[3].value` →
/// `produce[1].records[3].value`).
fn prefix_field(mut e: Error, prefix: &str) -> Error {
    e.field = Some(match e.field.take() {
        Some(f) => format!("{prefix}.{f}"),
        None => prefix.to_owned(),
    });
    e
}
