//! The benchmark harness (`weir bench`): starts a server in-process on 127.0.0.1:0 and measures
//! each capability next to its ceiling on the same machine, in the same run:
//!
//! - batch produce (1000 records of 100 B and of 1 KB) vs a no-op axum POST handler taking the
//!   same body (HTTP ceiling) and raw RocksDB `WriteBatch` appends of the same batches (storage
//!   ceiling);
//! - single-record produce from 64 connections vs the no-op handler;
//! - catch-up fetch of a large backlog vs a raw scan of the same batches;
//! - one-record fetches by timestamp into that backlog vs the same by offset;
//! - produce-to-consume latency with a long-polling reader at half of peak single-record load;
//! - with `--cdc` only: PostgreSQL change data capture vs `pg_recvlogical` ([`cdc`]).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::config::Config;
use crate::storage::{BatchBuilder, BatchIter, Compaction, Format, Payload, RecordView, Store, StoreOptions};

mod cdc;
mod connect;
mod jdbc;
mod load;
mod platform;
mod streams;
mod sustained;
mod transactions;

/// Options of `weir bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Seconds each measured phase runs (default 5; 30 for the platform modes).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Records in the catch-up fetch backlog.
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: u64,
    /// Write the report (with the machine's description) to this Markdown file.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Rounds per produce workload: Weir and its ceilings alternate, `seconds / rounds` each.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Connections of the batch produce workloads (and their no-op ceiling): requests in flight,
    /// so that parsing some overlaps writing others. With 4, 15-25 % of the 2-core machine sat
    /// idle during Weir's rounds (requests waiting on each other, not on the CPU); 8 keep it busy.
    #[arg(long, default_value_t = 8)]
    pub batch_connections: usize,
    /// Run only the produce phases (batch and single-record, with their ceilings) and print them:
    /// a quick loop while working on the produce path.
    #[arg(long)]
    pub produce_only: bool,
    /// Nice steps by which Weir's log writer, and the raw storage ceiling's thread alike, run
    /// ahead of the rest (the server's `writer_priority_boost`; 0: no boost).
    #[arg(long, default_value_t = crate::config::default_writer_priority_boost())]
    pub writer_priority_boost: u8,
    /// Run the steady-state produce benchmark instead ([`sustained`]): each workload for
    /// `--sustained-seconds` or more against a fresh server, next to raw RocksDB appends.
    #[arg(long)]
    pub sustained: bool,
    /// With `--sustained`: load a `weir serve` process with `wrk` instead of the in-process load
    /// generator (wrk must be on PATH).
    #[arg(long, requires = "sustained")]
    pub external: bool,
    /// Seconds each sustained workload runs at least (below 60 it is not steady state).
    #[arg(long, default_value_t = 60.0)]
    pub sustained_seconds: f64,
    /// With `--sustained`: run only these workloads (`1kb`, `100b`, `single`).
    #[arg(long, value_delimiter = ',', value_parser = ["1kb", "100b", "single"])]
    pub workloads: Vec<String>,
    /// Store tuning to measure: compaction style of the records column family.
    #[arg(long, default_value = "level", value_parser = ["level", "universal"])]
    pub compaction: String,
    /// Store tuning to measure: LZ4 compression of blob files.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub blob_compression: bool,
    /// Store tuning to measure: memtables of the records column family.
    #[arg(long, default_value_t = StoreOptions::default().max_write_buffers)]
    pub memtables: i32,
    /// Store tuning to measure: size of one memtable, in MiB.
    #[arg(long, default_value_t = StoreOptions::default().write_buffer_bytes >> 20)]
    pub memtable_mib: usize,
    /// Store tuning to measure: background flush and compaction threads.
    #[arg(long, default_value_t = StoreOptions::default().background_jobs)]
    pub background_jobs: i32,
    /// Run the transactions benchmark ([`transactions`]): consume → transactional produce
    /// through `POST /v1/transactions`, next to plain batch produce.
    #[arg(long)]
    pub transactions: bool,
    /// Run the Connect benchmark ([`connect`]): file source and sink, datagen, HTTP sink.
    #[arg(long)]
    pub connect: bool,
    /// Run the Streams benchmark ([`streams`]): four persistent queries and push-query latency.
    #[arg(long)]
    pub streams: bool,
    /// Run all three platform benchmarks (transactions, Connect, Streams).
    #[arg(long)]
    pub platform: bool,
    /// Records of the platform benchmarks' backlogs (default: 200 000 per second of phase,
    /// at most 10 000 000).
    #[arg(long)]
    pub platform_records: Option<u64>,
    /// Run only the PostgreSQL change data capture benchmark (a PostgreSQL of its own with
    /// `wal_level=logical`): Weir's `PostgresConnector` next to `pg_recvlogical`.
    #[arg(long)]
    pub cdc: bool,
    /// Changes (inserts, 1000 per transaction) of the CDC benchmark.
    #[arg(long, default_value_t = 100_000)]
    pub cdc_changes: u64,
    /// Run only the JDBC connector phases (against the local PostgreSQL at 127.0.0.1:5432,
    /// database test) with their plain-SQL ceilings, and print them.
    #[arg(long)]
    pub jdbc: bool,
    /// Rows of the JDBC phases (50 million: each phase runs for a minute or more on a 2-core
    /// machine, a steady state rather than a burst dominated by the connector's start).
    #[arg(long, default_value_t = 50_000_000)]
    pub jdbc_rows: u64,
    /// The store options the flags above make (filled in by [`main`]).
    #[arg(skip)]
    pub store: StoreOptions,
}

impl BenchArgs {
    /// The store options the tuning flags ask for.
    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            write_buffer_bytes: self.memtable_mib << 20,
            max_write_buffers: self.memtables.max(2),
            compaction: if self.compaction == "universal" {
                Compaction::Universal
            } else {
                Compaction::Level
            },
            blob_compression: self.blob_compression,
            background_jobs: self.background_jobs.max(1),
            ..StoreOptions::default()
        }
    }
}

/// One measured line of the report.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    records_per_s: f64,
    mb_per_s: f64,
    p50_us: Option<u64>,
    p99_us: Option<u64>,
    p999_us: Option<u64>,
}

impl Row {
    /// The row's name, records/s, MB/s and latency percentiles as Markdown table cells.
    fn cells(&self) -> String {
        format!(
            "{} | {:.0} | {:.1} | {} | {} | {}",
            self.name,
            self.records_per_s,
            self.mb_per_s,
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.p999_us)
        )
    }

    fn new(name: &str, records: u64, bytes: u64, elapsed: Duration, lat: &Histogram<u64>) -> Self {
        let s = elapsed.as_secs_f64();
        Self {
            name: name.to_owned(),
            records_per_s: records as f64 / s,
            mb_per_s: bytes as f64 / s / 1e6,
            p50_us: (!lat.is_empty()).then(|| lat.value_at_quantile(0.5)),
            p99_us: (!lat.is_empty()).then(|| lat.value_at_quantile(0.99)),
            p999_us: (!lat.is_empty()).then(|| lat.value_at_quantile(0.999)),
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn ms(us: Option<u64>) -> String {
    us.map_or_else(|| "—".to_owned(), |us| format!("{:.2}", us as f64 / 1000.0))
}

/// Starts Weir on its own runtime thread; returns its address and a shutdown sender.
/// Runs `serve` on a listener of its own thread and two-worker runtime, as a server process on
/// this machine would: the server under test and its no-op ceiling run alike, apart from the
/// load generator's runtime. Returns the address, a stop sender and the thread.
fn spawn_server<F, Fut>(
    name: &str,
    serve: F,
) -> anyhow::Result<(
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
)>
where
    F: FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let name = name.to_owned();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addr_tx.send(listener.local_addr().expect("addr")).expect("send addr");
            serve(listener, stop_rx).await;
        });
    });
    Ok((addr_rx.recv_timeout(Duration::from_secs(60))?, stop_tx, handle))
}

/// Starts Weir with `config`; see [`spawn_server`].
fn start_server(
    config: Config,
) -> anyhow::Result<(
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
)> {
    spawn_server("weir-server", move |listener, stop| async move {
        if let Err(e) = crate::run(listener, config, async move {
            let _ = stop.await;
        })
        .await
        {
            tracing::error!(error = %e, "bench server failed");
        }
    })
}

/// Starts the no-op ceiling server: a POST handler that takes the body and answers with its
/// length; see [`spawn_server`].
fn start_noop() -> anyhow::Result<SocketAddr> {
    let (addr, stop, _thread) = spawn_server("noop-server", |listener, stop| async move {
        let app = Router::new().route(
            "/noop",
            post(|body: Bytes| async move { (axum::http::StatusCode::OK, format!("{{\"n\":{}}}", body.len())) }),
        );
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.await;
            })
            .await;
    })?;
    // Serves until the process ends.
    std::mem::forget(stop);
    Ok(addr)
}

/// Requests, time and latencies summed over the rounds of one workload.
#[derive(Default)]
struct Tally {
    requests: u64,
    elapsed: Duration,
    latency: Option<Histogram<u64>>,
}

impl Tally {
    fn add(&mut self, (requests, elapsed, latency): (u64, Duration, Histogram<u64>)) {
        self.requests += requests;
        self.elapsed += elapsed;
        match &mut self.latency {
            Some(h) => h.add(latency).expect("merge histograms"),
            None => self.latency = Some(latency),
        }
    }

    /// The row of `records_per_request` records and `bytes_per_request` payload bytes a request.
    fn row(&self, name: &str, records_per_request: u64, bytes_per_request: u64) -> Row {
        Row::new(
            name,
            self.requests * records_per_request,
            self.requests * bytes_per_request,
            self.elapsed,
            self.latency.as_ref().unwrap_or(&histogram()),
        )
    }
}

/// Runs `concurrency` connections POSTing `body` to the plain-HTTP `url` for `seconds` with the
/// lean load generator ([`load`]); returns (requests, elapsed, latencies).
async fn post_loop(
    url: &str,
    body: Bytes,
    content_type: &'static str,
    concurrency: usize,
    seconds: f64,
) -> (u64, Duration, Histogram<u64>) {
    let post = load::Post::new(url, content_type, &body).expect("bench URL");
    load::run(&post, concurrency, seconds).await.expect("bench requests")
}

/// Runs `concurrency` loops of POSTs of `body` to `url` for `seconds` with a given reqwest
/// client (for what the lean load generator does not speak: TLS, extra headers).
async fn post_loop_with(
    client: &reqwest::Client,
    url: &str,
    body: Bytes,
    content_type: &'static str,
    concurrency: usize,
    seconds: f64,
) -> (u64, Duration, Histogram<u64>) {
    // Parsed once: the load generator should spend as little as it can per request.
    let url: reqwest::Url = url.parse().expect("bench URL");
    load::drive(concurrency, seconds, |deadline| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let mut runs = load::Runs::until(deadline);
            while runs.due() {
                runs.time(async {
                    let r = client
                        .post(url.clone())
                        .header("content-type", content_type)
                        .body(body.clone())
                        .send()
                        .await?;
                    anyhow::ensure!(
                        r.status().is_success(),
                        "bench request failed: {} {:?}",
                        r.status(),
                        r.text().await
                    );
                    r.bytes().await?;
                    Ok(())
                })
                .await?;
            }
            Ok(runs.finish())
        }
    })
    .await
    .expect("bench requests")
}

fn records_body(count: usize, value_bytes: usize) -> (Bytes, Vec<Vec<u8>>) {
    // A JSON string value of exactly `value_bytes` bytes including its quotes.
    let value = format!("\"{}\"", "x".repeat(value_bytes.saturating_sub(2)));
    let records: Vec<Value> = (0..count)
        .map(|_| json!({"value": serde_json::from_str::<Value>(&value).unwrap()}))
        .collect();
    let body = serde_json::to_vec(&json!({"records": records})).expect("json");
    // The same records as the storage ceiling writes them: one encoded batch.
    let mut b = BatchBuilder::with_capacity(count * (value_bytes + 16));
    for _ in 0..count {
        b.push(&RecordView {
            timestamp: 1_732_500_000_000,
            key: None,
            value: Some(Payload {
                format: Format::Json,
                bytes: value.as_bytes(),
            }),
            headers: vec![],
        });
    }
    (Bytes::from(body), vec![b.finish()])
}

async fn create_topic(base: &str, name: &str, partitions: u32) -> anyhow::Result<()> {
    create_topic_with(base, name, partitions, json!({"retention.ms": -1})).await
}

/// Creates topic `name` with `partitions` and the settings `config`.
async fn create_topic_with(base: &str, name: &str, partitions: u32, config: Value) -> anyhow::Result<()> {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/topics"))
        .json(&json!({"name": name, "partitions": partitions, "config": config}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "create topic {name}: {}", r.status());
    Ok(())
}

/// POSTs the JSON batch `body` to `url` `requests` times, one after another (a backlog to read).
async fn fill(client: &reqwest::Client, url: &str, body: &Bytes, requests: u64) -> anyhow::Result<()> {
    for i in 0..requests {
        let r = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "fill backlog, request {i}: {}", r.status());
    }
    Ok(())
}

/// Raw storage ceiling: appends `batch` as fast as possible for `seconds`, from a thread at the
/// priority Weir's log writer gets (`boost` nice steps up), so that neither side is favoured.
fn raw_append(store: &Store, batch: &[u8], seconds: f64, boost: u8) -> anyhow::Result<(u64, Duration)> {
    let raised = (boost > 0)
        .then(|| crate::broker::raise_thread_priority(boost).ok())
        .flatten();
    let result = raw_append_loop(store, batch, seconds);
    if let Some((from, _)) = raised {
        crate::broker::set_thread_nice(from)?;
    }
    result
}

/// Whether this process can give the writer its boost: tried on a throwaway thread.
fn boost_note(boost: u8) -> String {
    if boost == 0 {
        return "off".into();
    }
    match std::thread::spawn(move || crate::broker::raise_thread_priority(boost)).join() {
        Ok(Ok(_)) => format!("{boost} nice steps"),
        _ => format!("{boost} asked, not applied (no CAP_SYS_NICE)"),
    }
}

fn raw_append_loop(store: &Store, batch: &[u8], seconds: f64) -> anyhow::Result<(u64, Duration)> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut n = 0u64;
    let chunk: Vec<Vec<u8>> = (0..64).map(|_| batch.to_vec()).collect();
    // A private topic id per run, appended to like a partition's log (nothing deleted meanwhile).
    static NEXT_TOPIC: AtomicU64 = AtomicU64::new(1_000_000);
    let topic = NEXT_TOPIC.fetch_add(1, Ordering::Relaxed) as u32;
    let mut offset = 0;
    while Instant::now() < deadline {
        offset = store.raw_append(topic, offset, &chunk)?;
        n += chunk.len() as u64;
    }
    Ok((n, started.elapsed()))
}

/// Runs the whole suite and prints (and optionally writes) the report.
pub async fn main(mut args: BenchArgs) -> anyhow::Result<()> {
    if args.cdc {
        return cdc::main(&args).await;
    }
    let tmp = tempfile_dir()?;
    args.store = args.store_options();
    if args.sustained {
        let result = if args.external {
            sustained::external::main(&args, &tmp).await
        } else {
            sustained::main(&args, &tmp).await
        };
        let _ = std::fs::remove_dir_all(&tmp);
        return result;
    }
    if args.transactions || args.connect || args.streams || args.platform {
        let result = platform::main(&args, &tmp).await;
        let _ = std::fs::remove_dir_all(&tmp);
        return result;
    }
    let config = Config {
        data_dir: tmp.join("weir"),
        listen: "127.0.0.1:0".parse()?,
        max_fetch_records: 10_000,
        writer_priority_boost: args.writer_priority_boost,
        ..Config::default()
    };
    let (addr, stop, server) = start_server(config)?;
    let base = format!("http://{addr}");
    let noop = format!("http://{}/noop", start_noop()?);
    if args.jdbc {
        let table = jdbc::run(&base, args.jdbc_rows).await?;
        println!("{table}");
        // The store closes before its files go (a process that exits while RocksDB still
        // closes may abort in its static destructors).
        let _ = stop.send(());
        tokio::task::spawn_blocking(move || server.join()).await?.ok();
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(());
    }
    let raw_store = Store::open(&tmp.join("raw"), &StoreOptions::default())?;
    let secs = args.seconds.unwrap_or(5.0);
    let mut report = String::new();
    let mut rows: Vec<(Row, Row, Option<Row>)> = Vec::new();

    // 1. Batch produce. Each workload runs in rounds that alternate Weir and its ceilings, so
    // that the machine's drift (a shared VM's speed changes over seconds) falls on both alike.
    let rounds = args.rounds.max(1);
    let slice = secs / rounds as f64;
    let conns = args.batch_connections.max(1);
    for (size, label) in [(100usize, "100 B"), (1024, "1 KB")] {
        let topic = format!("bench-batch-{size}");
        create_topic(&base, &topic, 4).await?;
        let (body, batches) = records_body(1000, size);
        let payload = (1000 * size) as u64;
        let url = format!("{base}/v1/topics/{topic}/records");
        let (mut weir, mut http, mut storage) = (Tally::default(), Tally::default(), Tally::default());
        for _ in 0..rounds {
            weir.add(post_loop(&url, body.clone(), "application/json", conns, slice).await);
            http.add(post_loop(&noop, body.clone(), "application/json", conns, slice).await);
            let (n, el) =
                tokio::task::block_in_place(|| raw_append(&raw_store, &batches[0], slice, args.writer_priority_boost))?;
            storage.add((n, el, histogram()));
        }
        rows.push((
            weir.row(
                &format!("batch produce, 1000 × {label}, {conns} connections"),
                1000,
                payload,
            ),
            http.row("  ceiling: no-op axum POST, same body", 1000, payload),
            Some(storage.row("  ceiling: raw RocksDB WriteBatch appends", 1000, payload)),
        ));
    }

    // 2. Single-record produce from 64 connections.
    create_topic(&base, "bench-single", 4).await?;
    let (body, _) = records_body(1, 100);
    let url = format!("{base}/v1/topics/bench-single/records");
    let (mut weir, mut http) = (Tally::default(), Tally::default());
    for _ in 0..rounds {
        weir.add(post_loop(&url, body.clone(), "application/json", 64, slice).await);
        http.add(post_loop(&noop, body.clone(), "application/json", 64, slice).await);
    }
    let single = weir.row("single-record produce, 100 B, 64 connections", 1, 100);
    let single_ceiling = http.row("  ceiling: no-op axum POST, same body", 1, 100);
    let peak_single = single.records_per_s;
    rows.push((single, single_ceiling, None));
    if args.produce_only {
        for (weir, c1, c2) in &rows {
            println!(
                "{:<50} {:>10.0} rec/s  p50 {} ms  p99 {} ms",
                weir.name,
                weir.records_per_s,
                ms(weir.p50_us),
                ms(weir.p99_us)
            );
            println!(
                "{:<50} {:>10.0} rec/s  ({:.0} %)",
                c1.name,
                c1.records_per_s,
                100.0 * weir.records_per_s / c1.records_per_s
            );
            if let Some(c) = c2 {
                println!(
                    "{:<50} {:>10.0} rec/s  ({:.0} %)",
                    c.name,
                    c.records_per_s,
                    100.0 * weir.records_per_s / c.records_per_s
                );
            }
        }
        let _ = stop.send(());
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(());
    }

    // 3. Catch-up fetch of a backlog.
    create_topic(&base, "bench-fetch", 1).await?;
    let (body, _) = records_body(1000, 100);
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/topics/bench-fetch/records");
    let filled = args.backlog.div_ceil(1000) * 1000;
    fill(&client, &url, &body, filled / 1000).await?;
    let (elapsed, h, records, bytes) = fetch_all(&client, &base, "bench-fetch", 1).await?;
    let fetch = Row::new(
        "catch-up fetch, 100 B records, 10000 per request",
        records,
        bytes,
        elapsed,
        &h,
    );
    // Ceiling: the same batches read straight from RocksDB and decoded, no HTTP or JSON.
    let store = Store::open(&tmp.join("raw-fetch"), &StoreOptions::default())?;
    let (_, batches) = records_body(1000, 100);
    let topic_id = 7;
    {
        let chunk: Vec<Vec<u8>> = (0..filled / 1000).map(|_| batches[0].clone()).collect();
        store.raw_append(topic_id, 0, &chunk)?;
    }
    let started = Instant::now();
    let mut raw_records = 0u64;
    store.scan_batches(topic_id, 0, 0, |_, bytes| {
        if let Ok((_, it)) = BatchIter::new(bytes) {
            raw_records += it.filter(|r| r.is_ok()).count() as u64;
        }
        true
    })?;
    let fetch_ceiling = Row::new(
        "  ceiling: raw RocksDB scan + decode, same batches",
        raw_records,
        raw_records * 100,
        started.elapsed(),
        &histogram(),
    );
    rows.push((fetch, fetch_ceiling, None));

    // 3b. Point reads into the backlog: by timestamp (the time index and a short scan) next to
    // by offset (a direct seek), one at a time at positions spread over the whole partition.
    let stamp_at = |offset: u64| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let v: Value = client
                .get(format!(
                    "{base}/v1/topics/bench-fetch/partitions/0/records?offset={offset}&max_records=1"
                ))
                .send()
                .await?
                .json()
                .await?;
            v["records"][0]["timestamp"]
                .as_i64()
                .ok_or_else(|| anyhow::anyhow!("no record at offset {offset}"))
        }
    };
    let (first, last) = (stamp_at(0).await?, stamp_at(filled - 1).await?);
    let span = (last - first + 1) as u64;
    let by_time = point_reads(&client, &base, "bench-fetch", secs, |r| {
        format!("timestamp={}", first + (r % span) as i64)
    })
    .await?;
    let by_offset = point_reads(&client, &base, "bench-fetch", secs, |r| {
        format!("offset={}", r % filled)
    })
    .await?;
    rows.push((
        Row::new(
            "fetch 1 record by timestamp, random over the backlog",
            by_time.0,
            by_time.0 * 100,
            by_time.1,
            &by_time.2,
        ),
        Row::new(
            "  ceiling: fetch 1 record by offset, same backlog",
            by_offset.0,
            by_offset.0 * 100,
            by_offset.1,
            &by_offset.2,
        ),
        None,
    ));

    // 4. Produce-to-consume latency at half of peak single-record load.
    create_topic(&base, "bench-e2e", 1).await?;
    let rate = (peak_single / 2.0).max(10.0);
    let (lat, delivered) = end_to_end(&base, rate, secs).await?;
    let e2e = Row::new(
        &format!("produce-to-consume, long-poll reader, {rate:.0} records/s offered"),
        delivered,
        delivered * 100,
        Duration::from_secs_f64(secs),
        &lat,
    );

    // 5. fsync durability: concurrent producers share fsyncs (group commit).
    create_topic(&base, "bench-fsync", 4).await?;
    let (body, _) = records_body(1, 100);
    let url = format!("{base}/v1/topics/bench-fsync/records?durability=fsync");
    let mut fsync_rows = Vec::new();
    for conns in [1usize, 8, 64] {
        let (n, el, h) = post_loop(&url, body.clone(), "application/json", conns, secs).await;
        fsync_rows.push(Row::new(
            &format!("fsync single-record produce, {conns} connections"),
            n,
            n * 100,
            el,
            &h,
        ));
    }

    // 6. Group consume with 1 and 4 members vs plain partition fetch of the same data.
    let group_backlog = (args.backlog / 2).max(40_000);
    create_topic(&base, "bench-group", 4).await?;
    let (body, _) = records_body(1000, 100);
    let url = format!("{base}/v1/topics/bench-group/records");
    // Keyless records of one request go to one partition; four requests cover the four.
    fill(&client, &url, &body, group_backlog / 1000).await?;
    let filled = (group_backlog / 1000) * 1000;
    let plain = fetch_all(&client, &base, "bench-group", 4).await?;
    let plain_row = Row::new(
        "  baseline: plain partition fetch of the same 4 partitions",
        filled,
        filled * 100,
        plain.0,
        &plain.1,
    );
    let mut group_rows = Vec::new();
    for members in [1usize, 4] {
        let (el, h) = group_consume(&base, &format!("bench-g{members}"), "bench-group", members, filled).await?;
        group_rows.push(Row::new(
            &format!("group consume, {members} member(s), 10000 per poll"),
            filled,
            filled * 100,
            el,
            &h,
        ));
    }

    // 7. Failover: time from a member leaving to its partitions being served by the other.
    let failover = failover_time(&base).await?;

    // 8. The cost of authentication and TLS: the same produce and fetch, off and on.
    let security_rows = security_cost(&tmp, secs, rounds, args.writer_priority_boost).await?;

    let _ = stop.send(());
    tokio::task::spawn_blocking(move || server.join()).await?.ok();

    // Report.
    let _ = writeln!(
        report,
        "| Benchmark | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | vs ceiling |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|---:|");
    let line = |r: &Row, pct: &str| format!("| {} | {pct} |\n", r.cells());
    for (weir, c1, c2) in &rows {
        let pct = format!(
            "{:.0} % of {}",
            100.0 * weir.records_per_s / c1.records_per_s,
            if c2.is_some() { "HTTP" } else { "ceiling" }
        );
        let pct = match c2 {
            Some(c) => format!(
                "{pct}, {:.0} % of storage",
                100.0 * weir.records_per_s / c.records_per_s
            ),
            None => pct,
        };
        report.push_str(&line(weir, &pct));
        report.push_str(&line(c1, ""));
        if let Some(c) = c2 {
            report.push_str(&line(c, ""));
        }
    }
    report.push_str(&line(&e2e, ""));
    let one = fsync_rows[0].records_per_s;
    for r in &fsync_rows {
        report.push_str(&line(r, &format!("{:.1}× one connection", r.records_per_s / one)));
    }
    for r in &group_rows {
        report.push_str(&line(
            r,
            &format!(
                "{:.0} % of plain fetch",
                100.0 * r.records_per_s / plain_row.records_per_s
            ),
        ));
    }
    report.push_str(&line(&plain_row, ""));
    let (base_produce, base_fetch) = (security_rows[0].0.records_per_s, security_rows[0].1.records_per_s);
    for (produce, fetch) in &security_rows {
        report.push_str(&line(
            produce,
            &format!(
                "{:.0} % of no auth, no TLS",
                100.0 * produce.records_per_s / base_produce
            ),
        ));
        report.push_str(&line(
            fetch,
            &format!("{:.0} % of no auth, no TLS", 100.0 * fetch.records_per_s / base_fetch),
        ));
    }
    let _ = writeln!(
        report,
        "\nFailover: a member leaves; its partitions are served to the other member after **{:.1} ms** \
(from the DELETE to the first record of a moved partition, median of {} runs; default settings).",
        failover.0, failover.1
    );
    // The targets of the issues, measured in this run.
    let pct = |a: f64, b: f64| 100.0 * a / b;
    let batch_vs_raw: Vec<f64> = rows
        .iter()
        .filter_map(|(w, _, st)| st.as_ref().map(|st| pct(w.records_per_s, st.records_per_s)))
        .collect();
    let single = &rows[2];
    let fetch = &rows[3].0;
    let auth_cost = security_rows
        .get(1)
        .map(|(p, f)| (100.0 - pct(p.records_per_s, base_produce)).max(100.0 - pct(f.records_per_s, base_fetch)))
        .unwrap_or(0.0);
    let group_pct: Vec<f64> = group_rows
        .iter()
        .map(|r| pct(r.records_per_s, plain_row.records_per_s))
        .collect();
    // One decimal: a rounded "60 %" next to "no" would read as a contradiction.
    let mut targets = String::from("| Target | Measured | Met |\n|---|---|---|\n");
    let mut target = |what: &str, measured: String, met: bool| {
        let _ = writeln!(
            targets,
            "| {what} | {measured} | {} |",
            if met { "yes" } else { "**no**" }
        );
    };
    target(
        "batch produce ≥ 70 % of raw RocksDB appends",
        batch_vs_raw
            .iter()
            .map(|p| format!("{p:.1} %"))
            .collect::<Vec<_>>()
            .join(" (100 B), ")
            + " (1 KB)",
        batch_vs_raw.iter().all(|p| *p >= 70.0),
    );
    let single_pct = pct(single.0.records_per_s, single.1.records_per_s);
    target(
        "single-record produce ≥ 60 % of the no-op handler",
        format!("{single_pct:.1} %"),
        single_pct >= 60.0,
    );
    target(
        "catch-up fetch ≥ 1 000 000 records/s (100 B)",
        format!("{:.0} records/s", fetch.records_per_s),
        fetch.records_per_s >= 1e6,
    );
    let p99 = e2e.p99_us.unwrap_or(u64::MAX) as f64 / 1000.0;
    target(
        "produce-to-consume p99 < 10 ms at half of peak",
        format!("{p99:.2} ms"),
        p99 < 10.0,
    );
    target(
        "group consume ≥ 80 % of plain fetch (1 and 4 members)",
        group_pct
            .iter()
            .map(|p| format!("{p:.1} %"))
            .collect::<Vec<_>>()
            .join(", "),
        group_pct.iter().all(|p| *p >= 80.0),
    );
    target(
        "member leaves → partitions served by others < 1 s",
        format!("{:.1} ms", failover.0),
        failover.0 < 1000.0,
    );
    target(
        "cost of API-token authentication < 10 %",
        format!("{auth_cost:.1} %"),
        auth_cost < 10.0,
    );
    report.push_str("\n## Targets\n\n");
    report.push_str(&targets);
    println!("{report}");
    if let Some(path) = args.out {
        let doc = format!(
            "## Short phases\n\nProduced by `cargo run --release -- bench` ({} s per phase; produce workloads in {} alternating rounds \
with their ceilings; backlog {} records; log writer priority boost: {}). Server and load generator share the machine: \
Weir and the no-op ceiling each run on their own 2-worker runtime, the load generator (a minimal HTTP/1.1 client, \
like wrk) on another.\n\n{}\n\n{}",
            secs,
            rounds,
            args.backlog,
            boost_note(args.writer_priority_boost),
            machine(),
            report
        );
        write_section(&path, &doc)?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

#[derive(serde::Deserialize)]
struct FetchSummary {
    records: Vec<serde::de::IgnoredAny>,
    next_offset: u64,
}

async fn end_to_end(base: &str, rate: f64, seconds: f64) -> anyhow::Result<(Histogram<u64>, u64)> {
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // As many producers as the peak was measured with: each sends one request at a time, so
    // with fewer of them a request slower than its tick interval skips ticks and the offered
    // rate is never reached (8 producers delivered ~60 % of it).
    let producers = 64usize;
    let per = rate / producers as f64;
    let url = format!("{base}/v1/topics/bench-e2e/records");
    let pad = "x".repeat(70);
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let (url, pad, stop) = (url.clone(), pad.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            // The lean load generator, as for the peak this rate is half of: a general client
            // costs the shared cores more per request than the server does.
            let request = |t: u64| {
                let body = format!("{{\"records\":[{{\"value\":{{\"t\":{t},\"pad\":\"{pad}\"}}}}]}}");
                load::Post::new(&url, "application/json", body.as_bytes())
            };
            let mut conn = load::Conn::open(&request(0)?).await?;
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                conn.send(&request(epoch.elapsed().as_micros() as u64)?).await?;
            }
            anyhow::Ok(())
        }));
    }
    let client = reqwest::Client::new();
    let mut h = histogram();
    let mut offset = 0u64;
    let mut delivered = 0u64;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline {
        let r = client
            .get(format!(
                "{base}/v1/topics/bench-e2e/partitions/0/records?offset={offset}&wait_ms=1000&max_records=10000"
            ))
            .send()
            .await?;
        let v: Value = r.json().await?;
        let now = epoch.elapsed().as_micros() as u64;
        for rec in v["records"].as_array().into_iter().flatten() {
            if let Some(t) = rec["value"]["t"].as_u64() {
                h.saturating_record(now.saturating_sub(t));
                delivered += 1;
            }
        }
        offset = v["next_offset"].as_u64().unwrap_or(offset);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok((h, delivered))
}

/// Reads every partition from offset 0 to its end with plain fetches of up to 10000 records;
/// returns the time, per-request latencies, records and response bytes.
/// One-record fetches from partition 0 of `topic`, one after another for `seconds`, the n-th
/// with the query `query(r)` for a pseudo-random `r`; each must return a record.
async fn point_reads(
    client: &reqwest::Client,
    base: &str,
    topic: &str,
    seconds: f64,
    query: impl Fn(u64) -> String,
) -> anyhow::Result<(u64, Duration, Histogram<u64>)> {
    let mut h = histogram();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let (mut n, mut r) = (0u64, 0x9e37_79b9_7f4a_7c15u64);
    while Instant::now() < deadline {
        // xorshift: positions spread over the partition, the same sequence every run.
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        let t = Instant::now();
        let body = client
            .get(format!(
                "{base}/v1/topics/{topic}/partitions/0/records?{}&max_records=1",
                query(r)
            ))
            .send()
            .await?
            .bytes()
            .await?;
        h.saturating_record(t.elapsed().as_micros() as u64);
        let v: FetchSummary = serde_json::from_slice(&body)?;
        anyhow::ensure!(v.records.len() == 1, "point read {} found no record", query(r));
        n += 1;
    }
    Ok((n, started.elapsed(), h))
}

async fn fetch_all(
    client: &reqwest::Client,
    base: &str,
    topic: &str,
    partitions: u32,
) -> anyhow::Result<(Duration, Histogram<u64>, u64, u64)> {
    let mut h = histogram();
    let started = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    for p in 0..partitions {
        let mut offset = 0u64;
        loop {
            let t = Instant::now();
            let body = client
                .get(format!("{base}/v1/topics/{topic}/partitions/{p}/records?offset={offset}&max_records=10000&max_bytes=16000000"))
                .send()
                .await?
                .bytes()
                .await?;
            h.saturating_record(t.elapsed().as_micros() as u64);
            let v: FetchSummary = serde_json::from_slice(&body)?;
            if v.records.is_empty() {
                break;
            }
            records += v.records.len() as u64;
            bytes += body.len() as u64;
            offset = v.next_offset;
        }
    }
    Ok((started.elapsed(), h, records, bytes))
}

/// `members` members of a fresh group read `total` records from `earliest`; returns the time.
async fn group_consume(
    base: &str,
    group: &str,
    topic: &str,
    members: usize,
    total: u64,
) -> anyhow::Result<(Duration, Histogram<u64>)> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..members {
        let v: Value = client
            .post(format!("{base}/v1/groups/{group}/members"))
            .json(&json!({"topics": [topic], "auto_offset_reset": "earliest", "assignment_strategy": "range"}))
            .send()
            .await?
            .json()
            .await?;
        ids.push(v["member_id"].as_str().unwrap_or_default().to_owned());
    }
    // Heartbeats until the group is stable (every member at one generation, nothing pending):
    // the joins' rebalances are measured by the failover phase, not counted as consumption.
    let settle = Instant::now() + Duration::from_secs(10);
    while Instant::now() < settle {
        let mut generations = Vec::new();
        for id in &ids {
            let r = client
                .post(format!("{base}/v1/groups/{group}/members/{id}/heartbeat"))
                .send()
                .await?;
            let ok = r.status() == 200;
            let v: Value = r.json().await?;
            if ok && v["pending"].as_array().is_some_and(|p| p.is_empty()) {
                generations.push(v["generation"].as_u64());
            }
        }
        if generations.len() == ids.len() && generations.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let consumed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in ids {
        let (client, consumed, base, group) = (client.clone(), consumed.clone(), base.to_owned(), group.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            while consumed.load(Ordering::Relaxed) < total {
                let t = Instant::now();
                let r = client
                    .get(format!(
                        "{base}/v1/groups/{group}/members/{id}/records?max_records=10000&max_bytes=16000000&wait_ms=100"
                    ))
                    .send()
                    .await
                    .expect("poll");
                let status = r.status();
                let body = r.bytes().await.expect("body");
                if status == 409 {
                    continue;
                }
                h.saturating_record(t.elapsed().as_micros() as u64);
                let v: FetchSummaryNoNext = serde_json::from_slice(&body).expect("poll body");
                consumed.fetch_add(v.records.len() as u64, Ordering::Relaxed);
            }
            h
        }));
    }
    let mut h = histogram();
    for t in tasks {
        h.add(t.await?).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    Ok((started.elapsed(), h))
}

#[derive(serde::Deserialize)]
struct FetchSummaryNoNext {
    records: Vec<serde::de::IgnoredAny>,
}

/// Median time from a member's DELETE to the other member receiving a record of a moved partition.
async fn failover_time(base: &str) -> anyhow::Result<(f64, usize)> {
    let client = reqwest::Client::new();
    create_topic(base, "bench-failover", 4).await?;
    let records: Vec<Value> = (0..4).map(|p| json!({"value": 1, "partition": p})).collect();
    let mut times = Vec::new();
    for run in 0..5 {
        let group = format!("bench-failover-{run}");
        let join = |c: reqwest::Client| {
            let url = format!("{base}/v1/groups/{group}/members");
            async move {
                let v: Value = c
                    .post(url)
                    .json(&json!({"topics": ["bench-failover"], "auto_offset_reset": "earliest"}))
                    .send()
                    .await?
                    .json()
                    .await?;
                anyhow::Ok(v)
            }
        };
        let a = join(client.clone()).await?;
        let b = join(client.clone()).await?;
        let (a_id, b_id) = (
            a["member_id"].as_str().unwrap_or_default().to_owned(),
            b["member_id"].as_str().unwrap_or_default().to_owned(),
        );
        // Both learn generation 2 and claim their partitions.
        for id in [&a_id, &b_id] {
            for _ in 0..3 {
                client
                    .get(format!("{base}/v1/groups/{group}/members/{id}/records"))
                    .send()
                    .await?;
            }
        }
        let hb: Value = client
            .post(format!("{base}/v1/groups/{group}/members/{a_id}/heartbeat"))
            .send()
            .await?
            .json()
            .await?;
        let moved: Vec<u64> = hb["assignment"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tp| tp["partition"].as_u64())
            .collect();
        // Every partition has a record waiting; nothing is committed, so the moved partitions
        // are served from the start as soon as they reach the remaining member.
        client
            .post(format!("{base}/v1/topics/bench-failover/records"))
            .json(&json!({"records": records}))
            .send()
            .await?;
        let started = Instant::now();
        client
            .delete(format!("{base}/v1/groups/{group}/members/{a_id}"))
            .send()
            .await?;
        loop {
            let r = client
                .get(format!("{base}/v1/groups/{group}/members/{b_id}/records?wait_ms=1000"))
                .send()
                .await?;
            if r.status() == 409 {
                continue;
            }
            let v: Value = r.json().await?;
            if v["records"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|rec| rec["partition"].as_u64().is_some_and(|p| moved.contains(&p)))
            {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "failover did not happen");
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times.len()))
}

/// Batch produce (1000 × 100 B, 4 connections) and catch-up fetch with no auth, with an API
/// token, and with a token over TLS (HTTP/1.1), each against its own server.
async fn security_cost(
    tmp: &std::path::Path,
    secs: f64,
    rounds: usize,
    writer_priority_boost: u8,
) -> anyhow::Result<Vec<(Row, Row)>> {
    const ADMIN: &str = "bench-admin-token-0123456789";
    let key = rcgen::KeyPair::generate()?;
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?.self_signed(&key)?;
    std::fs::write(tmp.join("cert.pem"), cert.pem())?;
    std::fs::write(tmp.join("key.pem"), key.serialize_pem())?;
    // One server per setting, all up at once, measured in alternating rounds so that the
    // machine's drift falls on every setting alike.
    let mut servers = Vec::new();
    for (i, (label, token, tls)) in [
        ("no auth, no TLS", false, false),
        ("API token", true, false),
        ("API token + TLS", true, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut config = Config {
            data_dir: tmp.join(format!("sec-{i}")),
            listen: "127.0.0.1:0".parse()?,
            writer_priority_boost,
            ..Config::default()
        };
        if token {
            config.admin_token = Some(ADMIN.into());
        }
        if tls {
            config.tls_cert = Some(tmp.join("cert.pem"));
            config.tls_key = Some(tmp.join("key.pem"));
        }
        let (addr, stop, server) = start_server(config)?;
        let scheme = if tls { "https" } else { "http" };
        let base = format!("{scheme}://{addr}");
        let mut headers = reqwest::header::HeaderMap::new();
        if token {
            headers.insert("authorization", format!("Bearer {ADMIN}").parse()?);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes())?)
            .http1_only()
            .build()?;
        let r = client
            .post(format!("{base}/v1/topics"))
            .json(&json!({"name": "sec", "partitions": 4}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "create topic: {}", r.status());
        servers.push((label, client, base, stop, server));
    }
    let (body, _) = records_body(1000, 100);
    let mut produce: Vec<Tally> = servers.iter().map(|_| Tally::default()).collect();
    for _ in 0..rounds {
        for ((_, client, base, ..), tally) in servers.iter().zip(&mut produce) {
            let url = format!("{base}/v1/topics/sec/records");
            tally.add(post_loop_with(client, &url, body.clone(), "application/json", 4, secs / rounds as f64).await);
        }
    }
    let mut fetch: Vec<(Duration, Histogram<u64>, u64, u64)> =
        servers.iter().map(|_| (Duration::ZERO, histogram(), 0, 0)).collect();
    for _ in 0..rounds {
        for ((_, client, base, ..), f) in servers.iter().zip(&mut fetch) {
            let (elapsed, h, records, bytes) = fetch_all(client, base, "sec", 4).await?;
            f.0 += elapsed;
            f.1.add(h).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            f.2 += records;
            f.3 += bytes;
        }
    }
    let mut out = Vec::new();
    for ((label, _, _, stop, server), (p, f)) in servers.into_iter().zip(produce.iter().zip(&fetch)) {
        let _ = stop.send(());
        tokio::task::spawn_blocking(move || server.join()).await?.ok();
        out.push((
            p.row(&format!("batch produce 1000 × 100 B, {label}"), 1000, 100_000),
            Row::new(&format!("catch-up fetch, {label}"), f.2, f.3, f.0, &f.1),
        ));
    }
    Ok(out)
}

/// Writes a report's `section` (Markdown, opening with its `## ` heading) into the file at `path`:
/// the file's section of that heading (up to the next `## `) is replaced, or the section appended
/// when it has none. So `--out BENCHMARKS.md` updates one mode's part of the document in place.
fn write_section(path: &std::path::Path, section: &str) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::write(path, splice(&old, section))?;
    Ok(())
}

/// `old` with the section that has `section`'s heading replaced by `section` (or `section`
/// appended); see [`write_section`].
fn splice(old: &str, section: &str) -> String {
    let heading = section.lines().next().unwrap_or_default();
    // The heading's whole line: "## Sustained produce" is not "## Sustained produce, from outside".
    let start = if old.starts_with(&format!("{heading}\n")) {
        Some(0)
    } else {
        old.find(&format!("\n{heading}\n")).map(|at| at + 1)
    };
    let Some(start) = start else {
        let sep = if old.is_empty() || old.ends_with("\n\n") {
            ""
        } else if old.ends_with('\n') {
            "\n"
        } else {
            "\n\n"
        };
        return format!("{old}{sep}{section}");
    };
    // The section ends at the next heading of its level or a higher one (not at a `# ` line: a
    // shell comment in a code block looks like one, and the file's title is above everything).
    let level = heading.bytes().take_while(|b| *b == b'#').count();
    let body = start + heading.len();
    let end = old[body..]
        .match_indices("\n#")
        .map(|(at, _)| body + at + 1)
        .find(|&at| {
            let hashes = old[at..].bytes().take_while(|b| *b == b'#').count();
            (2..=level).contains(&hashes) && old[at + hashes..].starts_with(' ')
        })
        .unwrap_or(old.len());
    let section = section.trim_end_matches('\n');
    let gap = if end < old.len() { "\n\n" } else { "\n" };
    format!("{}{section}{gap}{}", &old[..start], &old[end..])
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("weir-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let mem = read("/proc/meminfo").lines().next().unwrap_or("").to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let date = std::process::Command::new("date")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("- CPU: {cpu}, {cores} cores\n- {mem}\n- Linux {kernel}\n- Date: {date}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_replaces_the_platform_section_and_keeps_the_rest() {
        let new = "## Platform benchmarks\n\nnew\n";
        assert_eq!(splice("", new), new);
        assert_eq!(splice("# B\n\nx\n", new), "# B\n\nx\n\n## Platform benchmarks\n\nnew\n");
        let old = "# B\n\n## Results\n\nr\n\n## Platform benchmarks\n\nold\n### T\nold\n\n## Later\n\nl\n";
        assert_eq!(
            splice(old, new),
            "# B\n\n## Results\n\nr\n\n## Platform benchmarks\n\nnew\n\n## Later\n\nl\n"
        );
        assert_eq!(
            splice("# B\n\n## Platform benchmarks\n\nold\n", new),
            "# B\n\n## Platform benchmarks\n\nnew\n"
        );
        // A subsection replaces only itself.
        let platform = "## Platform benchmarks\n\nintro\n\n### T\n\nold t\n\n### C\n\nc\n\n## Later\n\nl\n";
        assert_eq!(
            splice(platform, "### T\n\nnew t\n"),
            "## Platform benchmarks\n\nintro\n\n### T\n\nnew t\n\n### C\n\nc\n\n## Later\n\nl\n"
        );
        assert_eq!(
            splice(platform, "### C\n\nnew c\n"),
            "## Platform benchmarks\n\nintro\n\n### T\n\nold t\n\n### C\n\nnew c\n\n## Later\n\nl\n"
        );
        let two = "## Sustained produce, from outside\n\nx\n";
        assert_eq!(
            splice(two, "## Sustained produce\n\ny\n"),
            "## Sustained produce, from outside\n\nx\n\n## Sustained produce\n\ny\n"
        );
    }
}
