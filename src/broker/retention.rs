//! Background retention: deletes batches older than `retention.ms` or beyond
//! `retention.bytes` from the front of each partition (range deletes through the log writer),
//! compacts the freed range so that disk space comes back, and forgets expired idempotency keys.

use std::sync::Arc;
use std::time::Duration;

use super::log::Op;
use super::topics::Topic;
use super::{Broker, now_ms};
use crate::storage::{BatchHeader, IdempotencyKey};

/// Freed bytes above which a partition's deleted range is compacted at once.
const COMPACT_AFTER_BYTES: u64 = 1 << 20;

pub(super) fn spawn(broker: Broker) {
    let interval = Duration::from_millis(broker.inner.config.retention_check_interval_ms);
    let shutdown = broker.shutdown_token();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(e) = broker.retention_pass().await {
                tracing::warn!(error = %e, "retention pass failed");
            }
        }
    });
}

struct Truncation {
    topic: Arc<Topic>,
    partition: u32,
    new_earliest: u64,
    freed: u64,
}

impl Broker {
    /// Runs one retention pass over every topic.
    pub(crate) async fn retention_pass(&self) -> crate::error::Result<()> {
        let topics = self.all_topics();
        let store = self.inner.store.clone();
        let now = now_ms();
        let window = self.inner.config.idempotency_window_ms as i64;
        let (truncations, expired) = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for topic in topics {
                let cfg = topic.config();
                if cfg.retention_ms < 0 && cfg.retention_bytes < 0 {
                    continue;
                }
                let cutoff = if cfg.retention_ms >= 0 {
                    now.saturating_sub(cfg.retention_ms)
                } else {
                    i64::MIN
                };
                for part in topic.partitions().iter() {
                    let stats = part.stats();
                    let mut remaining = stats.bytes;
                    let mut new_earliest = stats.earliest_offset;
                    let mut freed = 0;
                    store.scan_batches(topic.id, part.index, stats.earliest_offset, |base, bytes| {
                        let Ok(h) = BatchHeader::parse(bytes) else { return false };
                        let end = base + u64::from(h.count);
                        let too_old = h.max_timestamp < cutoff;
                        let too_big = cfg.retention_bytes >= 0 && remaining > cfg.retention_bytes as u64;
                        if end > stats.next_offset || !(too_old || too_big) {
                            return false;
                        }
                        new_earliest = end;
                        remaining = remaining.saturating_sub(bytes.len() as u64);
                        freed += bytes.len() as u64;
                        true
                    })?;
                    if new_earliest > stats.earliest_offset {
                        out.push(Truncation {
                            topic: topic.clone(),
                            partition: part.index,
                            new_earliest,
                            freed,
                        });
                    }
                }
            }
            let mut expired = Vec::new();
            store.idempotency_scan(|key: IdempotencyKey, value| {
                let created = super::produce::stored_created_at(value);
                if created + window <= now {
                    expired.push((key, created));
                }
            })?;
            Ok::<_, crate::error::Error>((out, expired))
        })
        .await
        .map_err(crate::error::Error::internal)??;

        for t in truncations {
            tracing::debug!(topic = %t.topic.name, partition = t.partition, earliest = t.new_earliest, freed = t.freed, "retention");
            metrics::counter!("weir_retention_deleted_bytes_total").increment(t.freed);
            let (topic_id, partition, to, freed) = (t.topic.id, t.partition, t.new_earliest, t.freed);
            self.inner
                .writer
                .send(Op::Truncate {
                    topic: t.topic,
                    partition: t.partition,
                    new_earliest: t.new_earliest,
                    freed_bytes: t.freed,
                })
                .await?;
            if freed >= COMPACT_AFTER_BYTES {
                let store = self.inner.store.clone();
                tokio::task::spawn_blocking(move || store.compact_records(topic_id, partition, to));
            }
        }
        if !expired.is_empty() {
            self.inner.writer.send(Op::ExpireIdempotency { keys: expired }).await?;
        }
        Ok(())
    }
}
