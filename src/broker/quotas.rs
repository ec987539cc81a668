//! Per-principal quotas (token buckets): requests per second, produce bytes per second and
//! fetch bytes per second. Exceeding one answers `quota_exceeded` with the time to wait; fetch
//! bytes are charged after the read (a fetch may overdraw, the next one waits), as Kafka does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::caller::Caller;
use crate::error::{Error, ErrorCode, Result};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Which quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Requests,
    ProduceBytes,
    FetchBytes,
}

/// All quota buckets.
pub(crate) struct Quotas {
    rates: [u64; 3],
    buckets: Mutex<HashMap<(String, Kind), Bucket>>,
}

fn index(kind: Kind) -> usize {
    match kind {
        Kind::Requests => 0,
        Kind::ProduceBytes => 1,
        Kind::FetchBytes => 2,
    }
}

impl Quotas {
    /// Quotas with these per-second rates (0: unlimited).
    pub(crate) fn new(requests: u64, produce_bytes: u64, fetch_bytes: u64) -> Self {
        Self {
            rates: [requests, produce_bytes, fetch_bytes],
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `amount` from the caller's bucket; `overdraw` lets it go negative (charge after the
    /// fact). Refuses when the bucket cannot pay (or is already in debt).
    pub(crate) fn take(&self, caller: &Caller, kind: Kind, amount: u64, overdraw: bool) -> Result<()> {
        let rate = self.rates[index(kind)];
        if rate == 0 {
            return Ok(());
        }
        let rate = rate as f64;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("quota lock");
        let b = buckets
            .entry((caller.principal.name(), kind))
            .or_insert(Bucket { tokens: rate, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        let amount = amount as f64;
        // A request larger than the burst may pass when the bucket is full, then owes the rest.
        if b.tokens >= amount || (overdraw && b.tokens >= 0.0) || (b.tokens >= rate && amount > rate) {
            b.tokens -= amount;
            return Ok(());
        }
        let wait = ((amount.min(rate) - b.tokens) / rate).max(0.001);
        let what = match kind {
            Kind::Requests => "requests per second",
            Kind::ProduceBytes => "produce bytes per second",
            Kind::FetchBytes => "fetch bytes per second",
        };
        let mut ext = serde_json::Map::new();
        ext.insert("retry_after_ms".into(), ((wait * 1000.0).ceil() as u64).into());
        Err(Error::new(
            ErrorCode::QuotaExceeded,
            format!("quota of {rate} {what} exceeded; retry in {wait:.3} s"),
        )
        .with_extensions(ext))
    }
}
