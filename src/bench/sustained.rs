//! Steady-state produce (`weir bench --sustained`): each workload runs for a minute or more
//! against a fresh server, long enough for memtable flushes and compactions to fall into their
//! steady pace (at least `--sustained-seconds`, and until four times the records column
//! family's memtable budget is written), and reports throughput and latency percentiles over the
//! whole run, the requests backpressure refused, and the write stalls RocksDB logged — next to
//! raw RocksDB appends of the same batches for the same time, on a store with the same options.
//!
//! `--external` confirms the in-process figure from outside: it starts `weir serve` as its own
//! process and loads it with `wrk` (see [`external`]).

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use base64::Engine as _;
use hdrhistogram::Histogram;
use serde_json::json;

use super::{BenchArgs, Row, create_topic_with, histogram, load, ms, start_server};
use crate::config::Config;
use crate::storage::{BatchBuilder, Format, Payload, RecordView, Store};

pub mod external;

/// One produce workload: what each request carries and how many connections send it.
pub(crate) struct Workload {
    /// The report's name of the workload.
    pub name: String,
    /// The request body.
    pub body: Bytes,
    /// Records in one request.
    pub records: u64,
    /// Payload bytes in one request (values only).
    pub payload: u64,
    /// Connections sending it.
    pub connections: usize,
    /// Partitions of the topic written.
    pub partitions: u32,
    /// The same records as one encoded batch, for the raw storage ceiling.
    pub batch: Vec<u8>,
}

impl Workload {
    /// `count` records of `size` random bytes each, sent as `value_format: binary` (base64) — the
    /// issue's workload: incompressible payloads that JSON cannot carry as they are.
    pub fn binary(count: usize, size: usize, connections: usize, partitions: u32) -> Self {
        let values: Vec<Vec<u8>> = (0..count)
            .map(|_| (0..size).map(|_| fastrand::u8(..)).collect())
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD;
        let records: Vec<_> = values.iter().map(|v| json!({"value": b64.encode(v)})).collect();
        let body = serde_json::to_vec(&json!({"value_format": "binary", "records": records})).unwrap_or_default();
        let batch = encode(values.iter().map(|v| (Format::Binary, v.as_slice())));
        Self {
            name: format!(
                "{count} × {} binary records, {connections} connections",
                size_label(size)
            ),
            body: body.into(),
            records: count as u64,
            payload: (count * size) as u64,
            connections,
            partitions,
            batch,
        }
    }

    /// `count` JSON string values of `size` bytes (quotes included).
    pub fn json(count: usize, size: usize, connections: usize, partitions: u32) -> Self {
        let values: Vec<String> = (0..count).map(|i| event(i, size)).collect();
        let records: Vec<String> = values.iter().map(|v| format!("{{\"value\":{v}}}")).collect();
        let body = format!("{{\"records\":[{}]}}", records.join(","));
        let batch = encode(values.iter().map(|v| (Format::Json, v.as_bytes())));
        let what = if count == 1 {
            "single-record".to_owned()
        } else {
            format!("{count} ×")
        };
        Self {
            name: format!("{what} {} JSON records, {connections} connections", size_label(size)),
            body: body.into(),
            records: count as u64,
            payload: (count * size) as u64,
            connections,
            partitions,
            batch,
        }
    }
}

/// An order event of `size` bytes as JSON: numbered, with random user, amount and note, so that
/// a batch compresses as real events do (repeated names, varied values), not as a repeated byte.
fn event(i: usize, size: usize) -> String {
    let head = format!(
        "{{\"order_id\":{i},\"user\":\"user-{}\",\"amount\":{}.{:02},\"status\":\"paid\",\"note\":\"",
        fastrand::u32(..100_000),
        fastrand::u32(..1000),
        fastrand::u8(..100)
    );
    let pad = size.saturating_sub(head.len() + 2);
    let note: String = (0..pad).map(|_| fastrand::alphanumeric()).collect();
    format!("{head}{note}\"}}")
}

fn size_label(size: usize) -> String {
    if size >= 1024 {
        format!("{} KB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// Values as one stored batch, as the log writer stores what one request wrote to a partition.
fn encode<'a>(values: impl Iterator<Item = (Format, &'a [u8])>) -> Vec<u8> {
    let mut b = BatchBuilder::with_capacity(1 << 20);
    for (format, bytes) in values {
        b.push(&RecordView {
            timestamp: 1_732_500_000_000,
            key: None,
            value: Some(Payload { format, bytes }),
            headers: vec![],
        });
    }
    b.finish()
}

/// The workloads of the sustained benchmark: the 1 KB binary batches on one partition,
/// 100-byte JSON batches on four, single records on four.
pub(crate) fn workloads(batch_connections: usize) -> Vec<Workload> {
    vec![
        Workload::binary(1000, 1024, batch_connections, 1),
        Workload::json(1000, 100, batch_connections, 4),
        Workload::json(1, 100, 64, 4),
    ]
}

/// The workloads `--workloads` names (all when none is named).
fn chosen(args: &BenchArgs) -> Vec<Workload> {
    let names = ["1kb", "100b", "single"];
    workloads(args.batch_connections.max(1))
        .into_iter()
        .zip(names)
        .filter(|(_, name)| args.workloads.is_empty() || args.workloads.iter().any(|w| w == name))
        .map(|(w, _)| w)
        .collect()
}

/// What a sustained run of Weir measured.
pub(crate) struct Run {
    /// Requests answered 2xx, and their latencies (µs).
    pub accepted: u64,
    /// Requests refused by backpressure (503 or 429).
    pub refused: u64,
    /// Time taken.
    pub elapsed: Duration,
    /// Latencies of the accepted requests, in µs.
    pub latency: Histogram<u64>,
}

/// Runs the sustained benchmark and prints its report (also to `args.out` when given).
pub async fn main(args: &BenchArgs, tmp: &Path) -> anyhow::Result<()> {
    let budget = (args.store.write_buffer_bytes as u64) * u64::try_from(args.store.max_write_buffers).unwrap_or(1);
    let mut report = table_head();
    let mut targets = String::new();
    for (i, w) in chosen(args).iter().enumerate() {
        let dir = tmp.join(format!("sustained-{i}"));
        let (run, stalls) = run_weir(args, &dir, w, 4 * budget).await?;
        std::fs::remove_dir_all(&dir).ok();
        let raw_dir = tmp.join(format!("raw-{i}"));
        let (raw_requests, raw_elapsed, raw_stalls) = run_raw(args, &raw_dir, &w.batch, run.elapsed)?;
        std::fs::remove_dir_all(&raw_dir).ok();
        let weir = Row::new(
            &w.name,
            run.accepted * w.records,
            run.accepted * w.payload,
            run.elapsed,
            &run.latency,
        );
        let raw = Row::new(
            "  ceiling: raw RocksDB appends, same batches and time",
            raw_requests * w.records,
            raw_requests * w.payload,
            raw_elapsed,
            &histogram(),
        );
        let pct = 100.0 * weir.records_per_s / raw.records_per_s.max(1.0);
        report.push_str(&line(&weir, run.refused, stalls, &format!("{pct:.0} % of raw")));
        report.push_str(&line(&raw, 0, raw_stalls, ""));
        targets.push_str(&format!(
            "| {} | {:.0} s | {} stalls, p99 {} ms, {pct:.0} % of raw |\n",
            w.name,
            run.elapsed.as_secs_f64(),
            stalls,
            ms(weir.p99_us)
        ));
        println!("{}", report.lines().last().unwrap_or_default());
    }
    let doc = format!(
        "## Sustained produce\n\nProduced by `cargo run --release -- bench --sustained` ({} s or more per workload).\n\n\
{report}\n| Workload | Run | Stalls, p99, vs raw |\n|---|---:|---|\n{targets}\nMemtable budget: {} MiB \
({} × {} MiB); store options: {:?}\n\n{}\n",
        args.sustained_seconds,
        budget >> 20,
        args.store.max_write_buffers,
        args.store.write_buffer_bytes >> 20,
        args.store,
        super::machine()
    );
    println!("{doc}");
    if let Some(path) = &args.out {
        super::write_section(path, &doc)?;
    }
    Ok(())
}

fn table_head() -> String {
    "| Workload | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | refused | stalls logged | vs ceiling |\n\
|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        .to_owned()
}

fn line(r: &Row, refused: u64, stalls: usize, vs: &str) -> String {
    format!("| {} | {refused} | {stalls} | {vs} |\n", r.cells())
}

/// Loads a fresh in-process server with `w` until `args.sustained_seconds` have passed and
/// `min_bytes` of payload are written; returns what it measured and the stalls RocksDB logged.
async fn run_weir(args: &BenchArgs, dir: &Path, w: &Workload, min_bytes: u64) -> anyhow::Result<(Run, usize)> {
    let config = Config {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        writer_priority_boost: args.writer_priority_boost,
        store: args.store.clone(),
        ..Config::default()
    };
    let (addr, stop, thread) = start_server(config)?;
    let base = format!("http://{addr}");
    create_topic_with(&base, "sustained", w.partitions, retention()).await?;
    let post = load::Post::new(
        &format!("{base}/v1/topics/sustained/records"),
        "application/json",
        &w.body,
    )?;
    let min_requests = min_bytes.div_ceil(w.payload.max(1));
    let secs = args.sustained_seconds;
    // Run in steps so that a workload short of its bytes goes on; at most five times as long.
    let mut run = drive_accepting(&post, w.connections, secs).await?;
    while run.accepted < min_requests && run.elapsed.as_secs_f64() < 5.0 * secs {
        let more = drive_accepting(&post, w.connections, 10.0).await?;
        run.accepted += more.accepted;
        run.refused += more.refused;
        run.elapsed += more.elapsed;
        run.latency.add(more.latency).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let _ = stop.send(());
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    Ok((run, stalls_logged(dir)))
}

/// Topic settings of the sustained runs: size-based retention, so that minutes of writes keep
/// to a few GB on disk and retention's range deletes run as in a long-lived deployment.
fn retention() -> serde_json::Value {
    json!({"retention.ms": -1, "retention.bytes": 2_i64 << 30})
}

/// Sends `req` over `connections` keep-alive connections for `seconds`, as a client that honours
/// backpressure would: a 503 or 429 is counted and waited out (`retry_after_ms` of the problem,
/// at most a second) before the next request.
pub(crate) async fn drive_accepting(req: &load::Post, connections: usize, seconds: f64) -> anyhow::Result<Run> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let req = req.clone();
            tokio::spawn(async move {
                let mut conn = load::Conn::open(&req).await?;
                let (mut ok, mut refused, mut latency) = (0u64, 0u64, histogram());
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match conn.send_allowing_refusal(&req).await? {
                        None => {
                            latency.saturating_record(t.elapsed().as_micros() as u64);
                            ok += 1;
                        }
                        Some(wait) => {
                            refused += 1;
                            tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
                        }
                    }
                }
                anyhow::Ok((ok, refused, latency))
            })
        })
        .collect();
    let mut run = Run {
        accepted: 0,
        refused: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
    };
    for t in tasks {
        let (ok, refused, latency) = t.await??;
        run.accepted += ok;
        run.refused += refused;
        run.latency.add(latency).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

/// Appends `batch` to a fresh store with the benchmark's options for `time`, from one thread at
/// the log writer's priority; returns the batches written, the time taken and the stalls logged.
pub(crate) fn run_raw(
    args: &BenchArgs,
    dir: &Path,
    batch: &[u8],
    time: Duration,
) -> anyhow::Result<(u64, Duration, usize)> {
    let store = Store::open(dir, &args.store)?;
    let (n, elapsed) = tokio::task::block_in_place(|| {
        super::raw_append(&store, batch, time.as_secs_f64(), args.writer_priority_boost)
    })?;
    drop(store);
    Ok((n, elapsed, stalls_logged(dir)))
}

/// Write stalls RocksDB logged in the store in `dir`: its info log's "Stalling writes" (writes
/// slowed down) and "Stopping writes" (writes stopped) lines. Each kind of reason, with its numbers
/// blanked out, is printed with its count.
pub(crate) fn stalls_logged(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with("LOG") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for l in text.lines() {
            if let Some(at) = l.find("Stalling writes").or_else(|| l.find("Stopping writes")) {
                *reasons.entry(stall_reason(&l[at..])).or_default() += 1;
            }
        }
    }
    for (reason, n) in &reasons {
        println!("  {} stalled: {n} × {reason}", dir.display());
    }
    reasons.values().sum()
}

/// A stall line's reason with its numbers as `N`, so that lines of one kind count together.
fn stall_reason(line: &str) -> String {
    let mut out = String::new();
    for c in line.chars().take(120) {
        if c.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_stall_lines_of_every_info_log() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("LOG"),
            "x [default] Stalling writes because we have 3 immutable memtables (waiting for flush)\nok\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("LOG.old.1"),
            "y Stopping writes because we have 6 immutable memtables\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("OPTIONS-1"), "Stalling writes").unwrap();
        assert_eq!(stalls_logged(dir.path()), 2);
        assert_eq!(
            stall_reason("Stalling writes because we have 3 immutable memtables (waiting for flush), 4 max"),
            "Stalling writes because we have N immutable memtables (waiting for flush), N max"
        );
    }

    #[test]
    fn workloads_carry_what_they_say() {
        let w = Workload::binary(10, 1024, 8, 1);
        let body: serde_json::Value = serde_json::from_slice(&w.body).unwrap();
        assert_eq!(body["records"].as_array().unwrap().len(), 10);
        assert_eq!(w.payload, 10 * 1024);
        let single = Workload::json(1, 100, 64, 4);
        let body: serde_json::Value = serde_json::from_slice(&single.body).unwrap();
        assert!(body["records"][0]["value"]["order_id"].is_number());
        for i in [0, 7, 123_456] {
            let e = event(i, 100);
            assert_eq!(e.len(), 100, "{e}");
            assert!(serde_json::from_str::<serde_json::Value>(&e).unwrap().is_object());
        }
        assert_eq!(single.payload, 100);
    }
}
