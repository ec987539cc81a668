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
    last_sweep: Mutex<Option<Instant>>,
}

/// How often full buckets are forgotten.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

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
            last_sweep: Mutex::new(None),
        }
    }

    /// Forgets the buckets that have refilled by `now` (at most every [`SWEEP_EVERY`]): a
    /// principal that comes back starts with a full bucket, exactly what it would have found,
    /// so the map holds only principals active within about a second, not every one ever seen.
    pub(crate) fn sweep(&self, now: Instant) {
        {
            let mut last = self.last_sweep.lock().expect("quota sweep lock");
            if last.is_some_and(|l| now.saturating_duration_since(l) < SWEEP_EVERY) {
                return;
            }
            *last = Some(now);
        }
        let rates = self.rates;
        self.buckets.lock().expect("quota lock").retain(|(_, kind), b| {
            let rate = rates[index(*kind)] as f64;
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < rate
        });
    }

    /// Number of buckets held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().expect("quota lock").len()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::caller::Principal;

    fn caller(i: usize) -> Caller {
        Caller::with(
            Principal::Token {
                id: format!("t{i}"),
                name: "n".into(),
            },
            Vec::new(),
        )
    }

    #[test]
    fn refilled_buckets_are_forgotten_and_busy_ones_kept() {
        let q = Quotas::new(10, 0, 0);
        for i in 0..100 {
            q.take(&caller(i), Kind::Requests, 1, false).unwrap();
        }
        // Drained to the bottom: still owes a second of refill.
        for _ in 0..10 {
            let _ = q.take(&caller(0), Kind::Requests, 1, false);
        }
        assert_eq!(q.len(), 100);
        let now = Instant::now();
        q.sweep(now + std::time::Duration::from_millis(500));
        assert_eq!(
            q.len(),
            1,
            "buckets refilled after 0.5 s are gone; the drained one stays"
        );
        q.sweep(now + std::time::Duration::from_secs(3));
        assert_eq!(q.len(), 1, "sweeps run at most every 10 s");
        q.sweep(now + std::time::Duration::from_secs(20));
        assert_eq!(q.len(), 0);
        // A principal that comes back starts with a full bucket, as it would have found it.
        for _ in 0..10 {
            q.take(&caller(0), Kind::Requests, 1, false).unwrap();
        }
        assert!(q.take(&caller(0), Kind::Requests, 1, false).is_err());
    }
}
