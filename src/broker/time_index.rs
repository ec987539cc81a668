//! The sparse time index that fetch-by-timestamp starts from: its upkeep by the log writer and
//! its lookup.
//!
//! An entry `(max_before, base_offset)` says that no record before `base_offset` has a timestamp
//! above `max_before` (see [`TimeIndexKey`]). The writer adds one at a partition's first batch
//! and then about every [`INTERVAL`] bytes of batches, in the same RocksDB write as the batch, so
//! the index costs one small key per MiB of log. To find the first record at or after `t`, a
//! reader takes the last entry whose `max_before` is below `t` and scans batches from its base
//! offset: at most about one interval (and a batch) before the answer.
//!
//! Correctness needs only that every stored `max_before` is at least the true maximum before its
//! offset, so the writer's in-memory state may over-estimate (after a failed write) but never
//! under-estimate; entries are optional (fewer entries mean longer scans, never wrong answers),
//! which is why retention may drop those below the earliest offset, and why a partition written
//! before the index existed gets its entries on its first append after an upgrade.

use std::collections::HashMap;

use crate::error::Result;
use crate::storage::{BatchHeader, Store, StoreBatch, TimeIndexKey};

/// Bytes of batches between two index entries of a partition.
pub(crate) const INTERVAL: u64 = 1 << 20;

/// One partition's index upkeep state, owned by the log writer.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// The largest timestamp appended so far (an upper bound), if any.
    max: Option<u64>,
    /// Bytes appended since the last entry; `None` before the first entry.
    since_entry: Option<u64>,
}

impl State {
    /// Accounts a batch appended at `base`; returns the entry due at it, if any.
    fn on_append(
        &mut self,
        topic_id: u32,
        partition: u32,
        base: u64,
        max_timestamp: i64,
        bytes: u64,
    ) -> Option<TimeIndexKey> {
        let due = self.since_entry.is_none_or(|n| n >= INTERVAL);
        let entry = due.then(|| TimeIndexKey {
            topic_id,
            partition,
            max_before: self.max.unwrap_or(0),
            base_offset: base,
        });
        self.since_entry = Some(if due { 0 } else { self.since_entry.unwrap_or(0) } + bytes);
        let ts = max_timestamp.max(0) as u64;
        self.max = Some(self.max.map_or(ts, |m| m.max(ts)));
        entry
    }
}

/// The writer's index state of every partition it has appended to since the process started.
#[derive(Debug, Default)]
pub(crate) struct Upkeep {
    states: HashMap<(u32, u32), State>,
}

impl Upkeep {
    /// Adds to `batch` the index entry due with `records` appended at `base` of a partition
    /// whose earliest offset is `earliest`. A partition seen for the first time is caught up
    /// from the store first: from its last entry, or from `earliest` when it has none (data
    /// written before the index existed), and those entries go into the same write.
    pub(crate) fn on_append(
        &mut self,
        store: &Store,
        batch: &mut StoreBatch<'_>,
        (topic_id, partition, earliest): (u32, u32, u64),
        base: u64,
        records: &[u8],
    ) -> Result<()> {
        let state = match self.states.get_mut(&(topic_id, partition)) {
            Some(s) => s,
            None => {
                let mut s = State::default();
                let from = match store.time_index_last(topic_id, partition)? {
                    Some(last) => {
                        s.max = Some(last.max_before);
                        s.since_entry = Some(0);
                        last.base_offset.max(earliest)
                    }
                    None => earliest,
                };
                let mut catch_up = Vec::new();
                let mut failed = None;
                store.scan_batches(topic_id, partition, from, |at, bytes| {
                    match BatchHeader::parse(bytes) {
                        Ok(h) => {
                            catch_up.extend(s.on_append(topic_id, partition, at, h.max_timestamp, bytes.len() as u64))
                        }
                        Err(e) => failed = Some(e),
                    }
                    failed.is_none()
                })?;
                if let Some(e) = failed {
                    return Err(crate::storage::StorageError::from(e).into());
                }
                for k in catch_up {
                    batch.put_time_index(k);
                }
                self.states.entry((topic_id, partition)).or_insert(s)
            }
        };
        let h = BatchHeader::parse(records).map_err(crate::storage::StorageError::from)?;
        if let Some(k) = state.on_append(topic_id, partition, base, h.max_timestamp, records.len() as u64) {
            batch.put_time_index(k);
        }
        Ok(())
    }

    /// Forgets every partition's state (after a failed write: it is reloaded from the store).
    pub(crate) fn reset(&mut self) {
        self.states.clear();
    }

    /// Forgets a deleted topic's partitions.
    pub(crate) fn forget_topic(&mut self, topic_id: u32) {
        self.states.retain(|(t, _), _| *t != topic_id);
    }
}

/// Deletes, in `batch`, the index entries of a partition that retention has left below
/// `new_earliest`.
pub(crate) fn prune(
    store: &Store,
    batch: &mut StoreBatch<'_>,
    topic_id: u32,
    partition: u32,
    new_earliest: u64,
) -> Result<()> {
    let keep_from = store.time_index_first_from(topic_id, partition, new_earliest)?;
    batch.delete_time_index_before(topic_id, partition, keep_from);
    Ok(())
}

/// Where a scan for the first record at or after `timestamp` starts: the base offset of the
/// last index entry below it, or `earliest`.
pub(crate) fn scan_start(store: &Store, topic_id: u32, partition: u32, timestamp: i64, earliest: u64) -> Result<u64> {
    let below = timestamp.max(0) as u64;
    Ok(match store.time_index_last_below(topic_id, partition, below)? {
        Some(k) => k.base_offset.max(earliest),
        None => earliest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{BatchBuilder, Format, Payload, RecordKey, RecordView, StoreOptions};

    /// A batch of one 64 KiB record stamped `ts`.
    fn batch(ts: i64) -> Vec<u8> {
        let value = vec![0u8; 64 << 10];
        let mut b = BatchBuilder::with_capacity(value.len() + 64);
        b.push(&RecordView {
            timestamp: ts,
            key: None,
            value: Some(Payload {
                format: Format::Binary,
                bytes: &value,
            }),
            headers: vec![],
        });
        b.finish()
    }

    /// Appends one-record batches stamped `stamps` at offsets `from..`, with or without upkeep.
    fn append(store: &Store, upkeep: Option<&mut Upkeep>, partition: u32, from: u64, stamps: &[i64]) {
        let mut upkeep = upkeep;
        for (i, &ts) in stamps.iter().enumerate() {
            let base = from + i as u64;
            let bytes = batch(ts);
            let mut b = store.batch();
            if let Some(u) = upkeep.as_deref_mut() {
                u.on_append(store, &mut b, (7, partition, 0), base, &bytes).unwrap();
            }
            b.put_batch(
                RecordKey {
                    topic_id: 7,
                    partition,
                    base_offset: base,
                },
                &bytes,
            );
            store.write(b, false).unwrap();
        }
    }

    /// Every lookup starts at or before the answer (the first record at or after the target) and
    /// at most an interval's worth of batches (16 of 64 KiB) and one before it.
    fn check(store: &Store, partition: u32, stamps: &[i64], earliest: u64) {
        for target in [0, 5, 15, 100, 250, 390, 400, 555, 4_999, 5_000, 5_001] {
            let start = scan_start(store, 7, partition, target, earliest).unwrap();
            let answer = stamps
                .iter()
                .enumerate()
                .skip(earliest as usize)
                .find(|(_, t)| **t >= target)
                .map_or(stamps.len() as u64, |(i, _)| i as u64);
            assert!(
                start >= earliest && start <= answer,
                "target {target}: start {start}, answer {answer}"
            );
            assert!(answer - start <= 17, "target {target}: start {start}, answer {answer}");
        }
    }

    #[test]
    fn lookups_start_near_the_answer_and_never_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let mut upkeep = Upkeep::default();
        // Partition 0 rises steadily; partition 1 has an early outlier, which every lookup
        // below it must still find.
        let steady: Vec<i64> = (0..40).map(|b| b * 10).collect();
        let mut outlier = steady.clone();
        outlier[3] = 5_000;
        append(&store, Some(&mut upkeep), 0, 0, &steady);
        append(&store, Some(&mut upkeep), 1, 0, &outlier);
        check(&store, 0, &steady, 0);
        check(&store, 1, &outlier, 0);
        // The index lets a lookup skip most of the partition.
        assert!(scan_start(&store, 7, 0, 390, 0).unwrap() >= 32);

        // After a restart the writer picks up where the stored entries leave off.
        let mut restarted = Upkeep::default();
        let more: Vec<i64> = (40..80).map(|b| b * 10).collect();
        append(&store, Some(&mut restarted), 0, 40, &more);
        let all: Vec<i64> = steady.iter().chain(&more).copied().collect();
        check(&store, 0, &all, 0);
        assert!(scan_start(&store, 7, 0, 790, 0).unwrap() >= 64);

        // Retention drops the entries below the new earliest offset; lookups stay right.
        let mut b = store.batch();
        prune(&store, &mut b, 7, 0, 50).unwrap();
        b.delete_batches_below(7, 0, 50);
        store.write(b, false).unwrap();
        assert!(store.time_index_first_from(7, 0, 0).unwrap().unwrap().base_offset >= 50);
        check(&store, 0, &all, 50);
    }

    #[test]
    fn a_partition_written_before_the_index_gets_its_entries_on_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let old: Vec<i64> = (0..40).map(|b| b * 10).collect();
        append(&store, None, 0, 0, &old);
        assert_eq!(
            scan_start(&store, 7, 0, 390, 0).unwrap(),
            0,
            "no index: scan from the start"
        );
        let mut upkeep = Upkeep::default();
        append(&store, Some(&mut upkeep), 0, 40, &[400]);
        let all: Vec<i64> = old.iter().copied().chain([400]).collect();
        check(&store, 0, &all, 0);
        assert!(scan_start(&store, 7, 0, 390, 0).unwrap() >= 32);
    }

    #[test]
    fn entries_come_at_the_first_batch_then_every_interval_with_the_max_before() {
        let mut s = State::default();
        let half = INTERVAL / 2;
        let e = s.on_append(1, 0, 0, 50, half);
        assert_eq!(e.map(|k| (k.max_before, k.base_offset)), Some((0, 0)));
        assert!(s.on_append(1, 0, 10, 20, half).is_none());
        // The interval is full: the next batch gets an entry with the max of everything before.
        let e = s.on_append(1, 0, 20, 30, 1);
        assert_eq!(e.map(|k| (k.max_before, k.base_offset)), Some((50, 20)));
        assert!(s.on_append(1, 0, 21, 90, 1).is_none());
        assert_eq!(s.max, Some(90));
    }
}
