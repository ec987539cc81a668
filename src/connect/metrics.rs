//! Per connector and task metrics on `/metrics`: records in and out, errors, retries,
//! dead-lettered records, a sink's lag, and the time of the last poll and put.

use metrics::{Counter, Gauge};

use crate::broker::{Broker, Caller};

/// One task's metric handles (labelled `connector` and `task`).
#[derive(Debug, Clone)]
pub struct TaskMetrics {
    /// Records read from the source system (sources) or from topics (sinks).
    pub records_in: Counter,
    /// Records written to topics (sources) or to the external system (sinks).
    pub records_out: Counter,
    /// Records that failed (converted, transformed or written).
    pub errors: Counter,
    /// Operations retried.
    pub retries: Counter,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: Counter,
    lag: Gauge,
    last_poll: Gauge,
    last_put: Gauge,
}

impl TaskMetrics {
    /// The handles of one task.
    pub fn new(connector: &str, task: u32) -> Self {
        let labels = [("connector", connector.to_owned()), ("task", task.to_string())];
        Self {
            records_in: metrics::counter!("weir_connector_records_in_total", &labels),
            records_out: metrics::counter!("weir_connector_records_out_total", &labels),
            errors: metrics::counter!("weir_connector_errors_total", &labels),
            retries: metrics::counter!("weir_connector_retries_total", &labels),
            dead_lettered: metrics::counter!("weir_connector_dead_lettered_total", &labels),
            lag: metrics::gauge!("weir_connector_lag_records", &labels),
            last_poll: metrics::gauge!("weir_connector_last_poll_timestamp_seconds", &labels),
            last_put: metrics::gauge!("weir_connector_last_put_timestamp_seconds", &labels),
        }
    }

    fn now() -> f64 {
        crate::broker::now_ms() as f64 / 1000.0
    }

    /// A poll happened.
    pub fn polled(&self) {
        self.last_poll.set(Self::now());
    }

    /// A sink wrote `n` records.
    pub fn put(&self, n: u64) {
        self.records_out.increment(n);
        self.last_put.set(Self::now());
    }

    /// A sink's lag: records in its topics not yet committed by its group.
    pub fn set_lag(&self, broker: &Broker, group: &str) {
        if let Ok(d) = broker.describe_group(&Caller::internal(), group) {
            self.lag.set(d.partitions.iter().map(|p| p.lag).sum::<u64>() as f64);
        }
    }
}
