//! Connect (`weir bench --connect`, issue #16): connectors driven through the Connect REST API
//! (`/v1/connectors`) of an in-process server, their progress measured from outside — topic
//! end offsets for sources, the output file's size for the file sink, a local receiver's count
//! for the HTTP sink — next to ceilings measured in the same run:
//!
//! - file source lines/s vs plain batch produce of records of the same size (target ≥ 70 %);
//! - file sink records/s vs a plain file write of the same lines, in the sink's batches, each
//!   synced as the sink syncs them (target ≥ 70 %);
//! - datagen records/s (orders quickstart, as fast as it goes) vs the same plain produce;
//! - HTTP sink records/s into a local no-op receiver vs POSTs of the same batches to it.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use reqwest::Method;
use serde_json::{Value, json};

use super::platform::{self, Api, Report};
use super::{BenchArgs, Row, Tally, histogram, post_loop, records_body};

/// Records in one plain produce request, and connections sending them.
const BATCH: usize = 1000;
const CONNECTIONS: usize = 4;
/// Records a sink is handed at a time (`consumer.max.poll.records`' default), and so the HTTP
/// sink's batch and the plain file write's chunk.
const SINK_BATCH: usize = 500;

/// How the benchmark measures, as the report says it.
const METHOD: &str = "Connectors created with `PUT /v1/connectors/{name}/config` move a file of \
100-byte lines (200 000 per second of phase, at most 10 million; `--platform-records`) into a topic (file \
source: one connector after another over the same file, each from its start, for `--seconds`), that topic into a file (file sink) and into a local no-op receiver (HTTP sink, batches of 500), each \
until done or for `--seconds` (default 30); datagen writes orders as fast as it can for `--seconds`. Progress \
is read from topic end offsets, the sink file's size (every line checked afterwards) and the receiver's count. \
Ceilings in the same run: plain batch produce (1000 × 100 B, 4 connections, on a server of its own whose \
data is deleted before the connectors' server starts, so that its compactions do not run beside them), a plain file write of the same \
lines synced every 500 as the sink syncs its batches, direct POSTs of the same batches to the receiver.";

/// The `i`-th line of the source file: 98 characters, so that its value as a JSON string is
/// 100 bytes, as the plain produce ceiling's records are.
fn line(i: u64) -> String {
    format!("{i:010} {}", "x".repeat(87))
}

/// The line the file sink writes for the `i`-th line: its value as JSON, and a newline.
fn sink_line(i: u64) -> String {
    format!("\"{}\"\n", line(i))
}

/// Runs the Connect benchmark on a fresh server in `dir`.
pub(super) async fn run(args: &BenchArgs, dir: &Path) -> anyhow::Result<Report> {
    let secs = platform::phase_seconds(args);
    let lines = platform::backlog(args, secs);
    std::fs::create_dir_all(dir)?;
    let plain = plain_produce(args, &dir.join("ceiling"), secs).await?;
    let server = platform::start(args, &dir.join("weir"))?;
    let api = server.api.clone();
    let mut report = Report::new("Connect (issue #16)", METHOD);

    let (source, read) = file_source(&api, dir, lines, secs).await?;
    let source_pct = platform::pct(source.records_per_s, plain.records_per_s);
    report.row(source.clone(), platform::vs(&source, &plain, "plain produce"));
    let datagen = datagen(&api, secs).await?;
    report.row(datagen.clone(), platform::vs(&datagen, &plain, "plain produce"));
    report.row(plain, "");

    let (sink, written) = file_sink(&api, dir, read, lines, secs).await?;
    let write = plain_file_write(&dir.join("plain.jsonl"), written.max(SINK_BATCH as u64), secs)?;
    let sink_pct = platform::pct(sink.records_per_s, write.records_per_s);
    report.row(sink.clone(), platform::vs(&sink, &write, "file write"));
    report.row(write, "");

    let (http, receiver) = http_sink(&api, read, secs).await?;
    report.row(http.clone(), platform::vs(&http, &receiver, "direct POSTs"));
    report.row(receiver, "");
    report.target_pct("file source lines/s ≥ 70 % of plain batch produce", source_pct, 70.0);
    report.target_pct("file sink records/s ≥ 70 % of a plain file write", sink_pct, 70.0);
    server.stop().await?;
    Ok(report)
}

/// The sources' ceiling: plain batch produce of 100-byte records, on a server of its own whose
/// data is deleted (and the disk synced) before the connectors run, as the connectors' server
/// would otherwise compact the ceiling's data beside them.
async fn plain_produce(args: &BenchArgs, dir: &Path, secs: f64) -> anyhow::Result<Row> {
    let server = platform::start(args, dir)?;
    super::create_topic(&server.api.base, "c-plain", 1).await?;
    let (body, _) = records_body(BATCH, 100);
    let mut plain = Tally::default();
    let url = format!("{}/v1/topics/c-plain/records", server.api.base);
    plain.add(post_loop(&url, body, "application/json", CONNECTIONS, secs).await);
    server.stop().await?;
    platform::quiet_disk(dir);
    Ok(plain.row(
        &format!("  ceiling: plain batch produce, {BATCH} × 100 B, {CONNECTIONS} connections"),
        BATCH as u64,
        BATCH as u64 * 100,
    ))
}

/// Creates (or replaces) connector `name` with `config`.
async fn create(api: &Api, name: &str, config: Value) -> anyhow::Result<()> {
    api.ok(Method::PUT, &format!("/v1/connectors/{name}/config"), Some(&config))
        .await?;
    Ok(())
}

/// Deletes connector `name` (its tasks stop).
async fn delete(api: &Api, name: &str) -> anyhow::Result<()> {
    api.ok(Method::DELETE, &format!("/v1/connectors/{name}"), None).await?;
    Ok(())
}

/// File sources reading a file of `lines` lines into `c-lines`, one after another (each a
/// connector of its own, from the start of the file) until `secs` pass, so that the phase runs
/// as long as the others and measures a steady state, not a burst; its row and the records
/// the topic holds once the last source is deleted.
async fn file_source(api: &Api, dir: &Path, lines: u64, secs: f64) -> anyhow::Result<(Row, u64)> {
    let path = dir.join("source.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for i in 0..lines {
        writeln!(f, "{}", line(i))?;
    }
    f.into_inner()?.sync_all()?;
    super::create_topic(&api.base, "c-lines", 1).await?;
    let started = Instant::now();
    let mut rounds = 0;
    loop {
        let left = secs - started.elapsed().as_secs_f64();
        let name = format!("bench-file-source-{rounds}");
        let config = json!({"connector.class": "FileStreamSource", "file": path, "topic": "c-lines"});
        create(api, &name, config).await?;
        let goal = (rounds + 1) * lines;
        let (read, _) = platform::watch(left, goal, || async { Ok(api.topic_end("c-lines").await?.0) }).await?;
        delete(api, &name).await?;
        rounds += 1;
        if read < goal || started.elapsed().as_secs_f64() >= secs {
            break;
        }
    }
    let elapsed = started.elapsed();
    // What the sinks read: everything the sources wrote, including after the measurement.
    let total = api.topic_end("c-lines").await?.0;
    let row = Row::new(
        &format!(
            "file source, 100 B lines, {total} ({rounds} × a file of {lines}) in {:.1} s",
            elapsed.as_secs_f64()
        ),
        total,
        total * 100,
        elapsed,
        &histogram(),
    );
    Ok((row, total))
}

/// A datagen source of orders as fast as it goes, for `secs`.
async fn datagen(api: &Api, secs: f64) -> anyhow::Result<Row> {
    super::create_topic(&api.base, "c-datagen", 1).await?;
    create(
        api,
        "bench-datagen",
        json!({"connector.class": "DatagenConnector", "kafka.topic": "c-datagen", "quickstart": "orders",
               "max.interval": "0", "iterations": "-1", "random.seed": "7"}),
    )
    .await?;
    let end = || api.topic_end("c-datagen");
    // The first records show the task is up: measure from there.
    platform::watch(30.0, 1, || async { Ok(end().await?.0) }).await?;
    let (n0, b0) = end().await?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let (n1, b1) = end().await?;
    let elapsed = started.elapsed();
    delete(api, "bench-datagen").await?;
    let n = n1 - n0;
    Ok(Row::new(
        &format!("datagen source, orders quickstart, {} B records", (b1 - b0) / n.max(1)),
        n,
        b1 - b0,
        elapsed,
        &histogram(),
    ))
}

/// A file sink writing the `records` of `c-lines` to a file; its row and the records written.
/// The topic holds the source file's `lines` lines over and over.
async fn file_sink(api: &Api, dir: &Path, records: u64, lines: u64, secs: f64) -> anyhow::Result<(Row, u64)> {
    let path = dir.join("sink.jsonl");
    let per_line = sink_line(0).len() as u64;
    create(
        api,
        "bench-file-sink",
        json!({"connector.class": "FileStreamSink", "file": path, "topics": "c-lines"}),
    )
    .await?;
    let size = || std::fs::metadata(&path).map_or(0, |m| m.len());
    let (_, elapsed) = platform::watch(secs, records, || async { Ok(size() / per_line) }).await?;
    // Whole lines by the deadline (the sink may be in the middle of appending a batch).
    let written = size() / per_line;
    let bytes = written * per_line;
    delete(api, "bench-file-sink").await?;
    // Every line counted is really there, whole and in order.
    let text = std::fs::read(&path)?;
    anyhow::ensure!(
        text.len() as u64 >= bytes,
        "the sink file has {} bytes, fewer than the {bytes} counted",
        text.len()
    );
    for (i, l) in text[..bytes as usize].split_inclusive(|b| *b == b'\n').enumerate() {
        anyhow::ensure!(
            l == sink_line(i as u64 % lines).as_bytes(),
            "sink line {i} is not line {} of the source",
            i as u64 % lines
        );
    }
    let row = Row::new(
        &format!(
            "file sink, JSON lines, {written} of {records} in {:.1} s",
            elapsed.as_secs_f64()
        ),
        written,
        written * 100,
        elapsed,
        &histogram(),
    );
    Ok((row, written))
}

/// Ceiling of the file sink: the same lines appended to a file in the sink's batches, each
/// synced (`sync_data`) as the sink syncs its batches, for `lines` lines or `secs` of writing.
/// Only the writes and syncs are timed, not making the lines.
fn plain_file_write(path: &Path, lines: u64, secs: f64) -> anyhow::Result<Row> {
    let budget = Duration::from_secs_f64(secs);
    let mut spent = Duration::ZERO;
    let mut written = 0u64;
    while written < lines && spent < budget {
        let n = (lines - written).min(SINK_BATCH as u64);
        let chunk: String = (written..written + n).map(sink_line).collect();
        let t = Instant::now();
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        f.write_all(chunk.as_bytes())?;
        f.sync_data()?;
        spent += t.elapsed();
        written += n;
    }
    Ok(Row::new(
        &format!("  ceiling: plain file write, same lines, synced every {SINK_BATCH}"),
        written,
        written * 100,
        spent,
        &histogram(),
    ))
}

/// An HTTP sink POSTing the `records` of `c-lines` in batches to a local no-op receiver, then
/// direct POSTs of the same batches to it; their rows.
async fn http_sink(api: &Api, records: u64, secs: f64) -> anyhow::Result<(Row, Row)> {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let (addr, stop, _thread) = super::spawn_server("sink-receiver", move |listener, stop| async move {
        let app = Router::new().route(
            "/sink",
            post(move |body: Bytes| {
                let counter = counter.clone();
                async move {
                    let n = serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body).map_or(1, |v| v.len());
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    "{}"
                }
            }),
        );
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.await;
            })
            .await;
    })?;
    create(
        api,
        "bench-http-sink",
        json!({"connector.class": "HttpSink", "topics": "c-lines", "http.api.url": format!("http://{addr}/sink"),
               "batch.max.size": SINK_BATCH.to_string()}),
    )
    .await?;
    let (got, elapsed) = platform::watch(secs, records, || async { Ok(received.load(Ordering::Relaxed)) }).await?;
    delete(api, "bench-http-sink").await?;
    let sink = Row::new(
        &format!(
            "HTTP sink, batches of {SINK_BATCH}, {got} of {records} in {:.1} s",
            elapsed.as_secs_f64()
        ),
        got,
        got * 100,
        elapsed,
        &histogram(),
    );
    let batch: Vec<String> = (0..SINK_BATCH as u64).map(line).collect();
    let body = Bytes::from(serde_json::to_vec(&batch)?);
    let before = received.load(Ordering::Relaxed);
    let (n, el, lat) = post_loop(&format!("http://{addr}/sink"), body, "application/json", 1, secs).await;
    let counted = received.load(Ordering::Relaxed) - before;
    anyhow::ensure!(
        counted == n * SINK_BATCH as u64,
        "receiver counted {counted}, sent {n} batches"
    );
    let _ = stop.send(());
    let direct = Row::new(
        "  ceiling: direct POSTs of the same batches, 1 connection",
        counted,
        counted * 100,
        el,
        &lat,
    );
    Ok((sink, direct))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_100_byte_json_strings_and_numbered() {
        assert_eq!(serde_json::to_string(&line(7)).unwrap().len(), 100);
        assert!(line(12).starts_with("0000000012 "));
        assert_eq!(sink_line(3), format!("{}\n", serde_json::to_string(&line(3)).unwrap()));
    }

    #[test]
    fn the_plain_file_write_writes_every_line_it_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let row = plain_file_write(&path, 1234, 60.0).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1234);
        assert_eq!(text.lines().nth(1000).unwrap(), sink_line(1000).trim_end());
        assert!(row.records_per_s > 0.0);
    }
}
