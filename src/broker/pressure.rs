//! Backpressure from the store: a sampler reads how far RocksDB's memtable flushes and
//! compactions are behind writes (also exported as metrics), and appends are refused with
//! `503 overloaded` and a `Retry-After` while they are too far behind — so that clients back
//! off and latency rises smoothly, instead of every producer waiting through a write stall.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::Broker;
use crate::error::{Error, ErrorCode, Result};
use crate::storage::WritePressure;

/// How often the store is sampled.
const SAMPLE: Duration = Duration::from_millis(50);

/// Level-0 files of the records family at which appends are refused: RocksDB slows writes down
/// at 20 (`level0_slowdown_writes_trigger`'s default), so this leaves room for compaction.
const SHED_AT_LEVEL0_FILES: u64 = 16;

/// The last sample, and the threshold it is judged by.
#[derive(Debug)]
pub(crate) struct Pressure {
    shedding: AtomicBool,
    retry_after_ms: AtomicU64,
    /// Full memtables waiting for a flush at which appends are refused
    /// ([`crate::storage::StoreOptions::shed_at_immutable`]).
    shed_at_immutable: u64,
}

impl Pressure {
    /// Not shedding; appends will be refused at `shed_at_immutable` full memtables.
    pub(crate) fn new(shed_at_immutable: u64) -> Self {
        Self {
            shedding: AtomicBool::new(false),
            retry_after_ms: AtomicU64::new(0),
            shed_at_immutable,
        }
    }
}

/// Whether a sample means appends should wait, and for how long.
fn shed(p: &WritePressure, shed_at_immutable: u64) -> Option<u64> {
    if p.stopped {
        return Some(1000);
    }
    if p.immutable_memtables >= shed_at_immutable || p.level0_files >= SHED_AT_LEVEL0_FILES || p.delayed_rate > 0 {
        return Some(200);
    }
    None
}

fn export(p: &WritePressure) {
    metrics::gauge!("weir_store_write_stopped").set(if p.stopped { 1.0 } else { 0.0 });
    metrics::gauge!("weir_store_delayed_write_rate_bytes").set(p.delayed_rate as f64);
    metrics::gauge!("weir_store_immutable_memtables").set(p.immutable_memtables as f64);
    metrics::gauge!("weir_store_flush_pending").set(if p.flush_pending { 1.0 } else { 0.0 });
    metrics::gauge!("weir_store_pending_compaction_bytes").set(p.pending_compaction_bytes as f64);
    metrics::gauge!("weir_store_level0_files").set(p.level0_files as f64);
}

/// Starts the sampler.
pub(super) fn spawn(broker: Broker) {
    let shutdown = broker.shutdown_token();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let p = broker.inner.store.write_pressure();
            export(&p);
            let state = &broker.inner.pressure;
            match shed(&p, state.shed_at_immutable) {
                Some(ms) => {
                    if !state.shedding.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            immutable_memtables = p.immutable_memtables,
                            stopped = p.stopped,
                            "store is behind; refusing appends for a moment"
                        );
                    }
                    state.retry_after_ms.store(ms, Ordering::Relaxed);
                }
                None => state.shedding.store(false, Ordering::Relaxed),
            }
        }
    });
}

impl Broker {
    /// Refuses an append while the store is too far behind (`503 overloaded`, `Retry-After`).
    pub(crate) fn admit_append(&self) -> Result<()> {
        let state = &self.inner.pressure;
        if !state.shedding.load(Ordering::Relaxed) {
            return Ok(());
        }
        metrics::counter!("weir_store_shed_appends_total").increment(1);
        let mut ext = serde_json::Map::new();
        ext.insert(
            "retry_after_ms".into(),
            state.retry_after_ms.load(Ordering::Relaxed).into(),
        );
        Err(Error::new(
            ErrorCode::Overloaded,
            "the store is behind with writing data to disk; retry shortly",
        )
        .with_extensions(ext))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_wait_while_flushes_are_far_behind() {
        let at = crate::storage::StoreOptions::default().shed_at_immutable();
        let ok = WritePressure::default();
        assert_eq!(shed(&ok, at), None);
        let behind = WritePressure {
            immutable_memtables: at,
            ..ok
        };
        assert_eq!(shed(&behind, at), Some(200));
        let level0 = WritePressure {
            level0_files: SHED_AT_LEVEL0_FILES,
            ..ok
        };
        assert_eq!(shed(&level0, at), Some(200));
        let stopped = WritePressure { stopped: true, ..ok };
        assert_eq!(shed(&stopped, at), Some(1000));
        let one_waiting = WritePressure {
            immutable_memtables: 1,
            flush_pending: true,
            ..ok
        };
        assert_eq!(shed(&one_waiting, at), None, "a flush in progress is normal");
    }
}
