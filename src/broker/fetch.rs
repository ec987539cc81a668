//! Fetch: reading a partition from an offset, a timestamp, the start or the end, and
//! long-polling for records that have not been written yet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Broker;
use super::caller::{self, Caller, Operation};
use super::topics::{Partition, Topic};
use crate::error::{Error, ErrorCode, Result};
use crate::storage::{BatchHeader, BatchIter, RecordView, sub_batch};

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// At this offset.
    Offset(u64),
    /// At the oldest retained record.
    Earliest,
    /// At the end: only records written from now on.
    Latest,
    /// At the first record whose timestamp is at or after this (ms since the epoch).
    Timestamp(i64),
}

/// A fetch from one partition.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// Where to start.
    pub start: StartAt,
    /// Most records to return (capped by the server's limit).
    pub max_records: usize,
    /// Most payload bytes to return (at least one record is returned if there is one).
    pub max_bytes: usize,
    /// How long to wait for a first record when there is none yet.
    pub wait: Duration,
}

/// Records read from one partition: those with offsets in `[start_offset, next_offset)`.
#[derive(Debug, Clone)]
pub struct FetchResult {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset of the first record returned (or where the read started).
    pub start_offset: u64,
    /// Offset to read next.
    pub next_offset: u64,
    /// The partition's high watermark (next offset to be written) when read.
    pub high_watermark: u64,
    /// Number of records.
    pub count: usize,
    /// Payload bytes (keys, values, headers) of the records.
    pub bytes: usize,
    batches: Vec<(u64, Vec<u8>)>,
}

impl FetchResult {
    fn empty(topic: &Topic, partition: u32, offset: u64, high_watermark: u64) -> Self {
        Self {
            topic: topic.name.clone(),
            partition,
            start_offset: offset,
            next_offset: offset,
            high_watermark,
            count: 0,
            bytes: 0,
            batches: Vec::new(),
        }
    }

    /// Takes what the read wants of a stored batch whose first offset is `base`, as a batch of
    /// its own (only those records' bytes are copied). Returns whether the read goes on to the
    /// next batch, and the offset of a record that cannot be decoded, if the read reached one.
    fn take_from(&mut self, base: u64, bytes: &[u8], limits: &Limits) -> (bool, Option<u64>) {
        let Ok((header, mut iter)) = BatchIter::new(bytes) else {
            return (false, Some(limits.offset.max(base)));
        };
        let (mut o, mut taken, mut first) = (base, 0u32, base);
        let (mut start, mut end) = (0, 0);
        let (mut more, mut corrupt) = (true, None);
        loop {
            let at = bytes.len() - iter.rest().len();
            let Some(r) = iter.next() else { break };
            if o >= limits.offset {
                let Ok(r) = r else {
                    (more, corrupt) = (false, Some(o));
                    break;
                };
                let size = record_bytes(&r);
                if o >= limits.hw
                    || self.count >= limits.max_records
                    || (self.count > 0 && self.bytes + size > limits.max_bytes)
                {
                    more = false;
                    break;
                }
                if taken == 0 {
                    (first, start) = (o, at);
                }
                taken += 1;
                self.count += 1;
                self.bytes += size;
                self.next_offset = o + 1;
                end = bytes.len() - iter.rest().len();
            }
            o += 1;
        }
        if taken > 0 {
            self.batches
                .push((first, sub_batch(&header, taken, &bytes[start..end])));
        }
        (more, corrupt)
    }

    /// The records with their offsets, in offset order.
    pub fn records(&self) -> Records<'_> {
        Records {
            batches: self.batches.iter(),
            current: None,
            start: self.start_offset,
            end: self.next_offset,
        }
    }
}

/// The records of a [`FetchResult`] with their offsets, in offset order.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    batches: std::slice::Iter<'a, (u64, Vec<u8>)>,
    /// The batch being read: the offset of its next record, and its records.
    current: Option<(u64, BatchIter<'a>)>,
    start: u64,
    end: u64,
}

impl<'a> Iterator for Records<'a> {
    type Item = (u64, RecordView<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((offset, records)) = &mut self.current {
                // A record that cannot be decoded ends its batch (the read that took it
                // stopped before it).
                if let Some(Ok(r)) = records.next() {
                    let at = *offset;
                    *offset += 1;
                    if (self.start..self.end).contains(&at) {
                        return Some((at, r));
                    }
                    continue;
                }
            }
            let (base, bytes) = self.batches.next()?;
            self.current = BatchIter::new(bytes).ok().map(|(_, records)| (*base, records));
        }
    }
}

/// Where a read starts and how much it may take.
struct Limits {
    /// The first offset wanted.
    offset: u64,
    /// The high watermark when the read began: nothing at or after it is read.
    hw: u64,
    /// Most records.
    max_records: usize,
    /// Most payload bytes (past the first record).
    max_bytes: usize,
}

fn record_bytes(r: &RecordView<'_>) -> usize {
    r.key.map_or(0, |k| k.bytes.len())
        + r.value.map_or(0, |v| v.bytes.len())
        + r.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

impl Broker {
    /// Reads records from a partition, waiting up to `req.wait` for a first one.
    pub async fn fetch(&self, caller: &Caller, topic: &str, partition: u32, req: FetchRequest) -> Result<FetchResult> {
        let started = Instant::now();
        caller::authorize(caller, Operation::Read, caller::Resource::Topic, topic)?;
        let topic = self.lookup(topic)?;
        let part = topic.partition(partition)?;
        self.inner
            .quotas
            .take(caller, super::quotas::Kind::FetchBytes, 0, false)?;
        let mut hw_rx = part.subscribe();
        let offset = self.resolve_start(&topic, &part, req.start).await?;
        let wait = req.wait.min(Duration::from_millis(self.inner.config.max_wait_ms));
        let deadline = tokio::time::Instant::now() + wait;
        let shutdown = self.shutdown_token();
        let mut ended = std::pin::pin!(caller.credential_ended());
        loop {
            if topic.is_deleted() {
                return Err(Error::topic_not_found(&topic.name));
            }
            let hw = part.next_offset();
            if offset < hw || tokio::time::Instant::now() >= deadline {
                let res = self
                    .read(&topic, partition, offset, req.max_records, req.max_bytes)
                    .await?;
                let _ = self
                    .inner
                    .quotas
                    .take(caller, super::quotas::Kind::FetchBytes, res.bytes as u64, true);
                metrics::histogram!("weir_fetch_duration_seconds").record(started.elapsed().as_secs_f64());
                return Ok(res);
            }
            tokio::select! {
                _ = hw_rx.wait_for(|hw| *hw > offset) => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.cancelled() => {}
                end = &mut ended => return Err(end.error()),
            }
            if shutdown.is_cancelled() {
                return Ok(FetchResult::empty(&topic, partition, offset, part.next_offset()));
            }
        }
    }

    /// Resolves where a read of a partition starts, for a caller that may read the topic.
    pub async fn position(&self, caller: &Caller, topic: &Arc<Topic>, partition: u32, start: StartAt) -> Result<u64> {
        caller::authorize(caller, Operation::Read, caller::Resource::Topic, &topic.name)?;
        let part = topic.partition(partition)?;
        self.resolve_start(topic, &part, start).await
    }

    /// Resolves where a read starts; an offset outside `[earliest, next]` is an error.
    pub(super) async fn resolve_start(&self, topic: &Arc<Topic>, part: &Partition, start: StartAt) -> Result<u64> {
        match start {
            StartAt::Earliest => Ok(part.earliest_offset()),
            StartAt::Latest => Ok(part.next_offset()),
            StartAt::Offset(o) => {
                let (earliest, next) = (part.earliest_offset(), part.next_offset());
                if o < earliest || o > next {
                    return Err(Error::new(
                        ErrorCode::OffsetOutOfRange,
                        format!(
                            "offset {o} is out of range for partition {} of '{}': earliest is {earliest}, next is {next}",
                            part.index, topic.name
                        ),
                    )
                    .with_field("offset"));
                }
                Ok(o)
            }
            StartAt::Timestamp(ts) => {
                let store = self.inner.store.clone();
                let (topic_id, partition) = (topic.id, part.index);
                let (earliest, hw) = (part.earliest_offset(), part.next_offset());
                tokio::task::spawn_blocking(move || {
                    let mut found = None;
                    let from = super::time_index::scan_start(&store, topic_id, partition, ts, earliest)?;
                    store.scan_batches(topic_id, partition, from, |base, bytes| {
                        match BatchHeader::parse(bytes) {
                            Ok(h) if h.max_timestamp >= ts => {}
                            _ => return true,
                        }
                        let Ok((_, iter)) = BatchIter::new(bytes) else {
                            return true;
                        };
                        for (i, r) in iter.enumerate() {
                            let offset = base + i as u64;
                            if matches!(r, Ok(ref r) if r.timestamp >= ts) && offset >= earliest && offset < hw {
                                found = Some(offset);
                                return false;
                            }
                        }
                        true
                    })?;
                    Ok::<_, Error>(found.unwrap_or(hw))
                })
                .await
                .map_err(Error::internal)?
            }
        }
    }

    /// Reads what is there now, without waiting, with no permission check: callers inside the
    /// broker authorize first. Always returns at least one record when the partition has one at
    /// `offset`, even if it is larger than `max_bytes`. A batch that cannot be decoded where the
    /// read starts is a `corrupt_record_batch` error naming where it is and where to seek past it.
    pub(super) async fn read(
        &self,
        topic: &Arc<Topic>,
        partition: u32,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<FetchResult> {
        let part = topic.partition(partition)?;
        let hw = part.next_offset();
        let mut res = FetchResult::empty(topic, partition, offset, hw);
        let max_records = max_records.clamp(1, self.inner.config.max_fetch_records);
        let max_bytes = max_bytes.clamp(1, self.inner.config.max_fetch_bytes);
        if offset >= hw {
            return Ok(res);
        }
        let store = self.inner.store.clone();
        let topic_id = topic.id;
        let (mut res, corrupt) = tokio::task::spawn_blocking(move || {
            let mut corrupt = None;
            let limits = Limits {
                offset,
                hw,
                max_records,
                max_bytes,
            };
            store.scan_batches(topic_id, partition, offset, |base, bytes| {
                let (more, damaged) = res.take_from(base, bytes, &limits);
                corrupt = damaged.map(|at| (base, at));
                more
            })?;
            if let Some((first, _)) = res.batches.first() {
                res.start_offset = *first;
            }
            // Records read before the damage are returned; the next read starts at it.
            let corrupt = match corrupt {
                Some((base, at)) if res.count == 0 => {
                    Some((at, store.next_batch_base(topic_id, partition, base)?.unwrap_or(hw)))
                }
                _ => None,
            };
            Ok::<_, Error>((res, corrupt))
        })
        .await
        .map_err(Error::internal)??;
        if let Some((at, skip_to)) = corrupt {
            return Err(corrupt_batch(topic, partition, at, skip_to));
        }
        if res.count == 0 {
            // Retention removed what was asked for: continue from what remains.
            res.start_offset = res.start_offset.max(part.earliest_offset());
            res.next_offset = res.start_offset;
        }
        topic.metrics.records_out.increment(res.count as u64);
        topic.metrics.bytes_out.increment(res.bytes as u64);
        Ok(res)
    }
}

/// The error for a batch that cannot be decoded: where it is, and the offset to seek to past it.
fn corrupt_batch(topic: &Topic, partition: u32, offset: u64, skip_to: u64) -> Error {
    metrics::counter!("weir_corrupt_record_batches_total", "topic" => topic.name.clone()).increment(1);
    tracing::error!(topic = %topic.name, partition, offset, skip_to, "stored record batch cannot be decoded");
    let mut ext = serde_json::Map::new();
    ext.insert("topic".into(), topic.name.clone().into());
    ext.insert("partition".into(), partition.into());
    ext.insert("offset".into(), offset.into());
    ext.insert("next_offset".into(), skip_to.into());
    Error::new(
        ErrorCode::CorruptRecordBatch,
        format!(
            "the records of partition {partition} of '{}' from offset {offset} cannot be decoded; \
             seek to offset {skip_to} to skip them",
            topic.name
        ),
    )
    .with_extensions(ext)
}
