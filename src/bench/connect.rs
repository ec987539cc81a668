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
100-byte lines (200 000 per second of round, at most 10 million; `--platform-records`) into a topic (file \
source: one connector after another over the same file, each from its start), that topic into a file (file \
sink) and into a local no-op receiver (HTTP sink, batches of 500); datagen writes orders as fast as it can. \
Progress is read from topic end offsets, the sink file's size (every line checked afterwards) and the \
receiver's count. Each connector is measured next to its ceiling in the same run, the two alternating in \
`--rounds` rounds (default 3) of `--seconds / --rounds` each (default 30 s in all), so that a machine that \
speeds up or slows down during the run weighs on both alike: the file source next to plain batch produce \
(1000 × 100 B, 4 connections) on the same server, the file sink (paused between its rounds) next to a plain \
file write of the same lines synced every 500 as the sink syncs its batches. Datagen runs `--seconds`; the \
HTTP sink, until done or `--seconds`, then direct POSTs of the same batches to the receiver as long.";

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
    let rounds = args.rounds.max(1);
    let slice = secs / rounds as f64;
    let lines = platform::backlog(args, slice);
    std::fs::create_dir_all(dir)?;
    let server = platform::start(args, &dir.join("weir"))?;
    let api = server.api.clone();
    let mut report = Report::new("Connect (issue #16)", METHOD);

    let (source, plain) = file_source(&api, dir, lines, slice, rounds).await?;
    let source_pct = platform::pct(source.records_per_s, plain.records_per_s);
    report.row(source.clone(), platform::vs(&source, &plain, "plain produce"));
    let datagen = datagen(&api, secs).await?;
    report.row(datagen.clone(), platform::vs(&datagen, &plain, "plain produce"));
    report.row(plain, "");

    let read = api.topic_end("c-lines").await?.0;
    let (sink, write) = file_sink(&api, dir, read, slice, rounds).await?;
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

/// Pauses (`pause`) or resumes (`resume`) connector `name`.
async fn set_state(api: &Api, name: &str, state: &str) -> anyhow::Result<()> {
    let (status, body) = api
        .call(Method::PUT, &format!("/v1/connectors/{name}/{state}"), None)
        .await?;
    anyhow::ensure!(status == 202, "{state} {name}: {status} {body}");
    Ok(())
}

/// The file source next to its ceiling, in alternating rounds of `slice` seconds: plain batch
/// produce of 100-byte records to `c-plain`, then file sources reading a file of `lines` lines
/// into `c-lines`, one after another (each a connector of its own, from the start of the
/// file), so that the source runs the whole round and is measured in a steady state, not a
/// burst. Returns the source's row and the ceiling's.
async fn file_source(api: &Api, dir: &Path, lines: u64, slice: f64, rounds: usize) -> anyhow::Result<(Row, Row)> {
    let path = dir.join("source.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for i in 0..lines {
        writeln!(f, "{}", line(i))?;
    }
    f.into_inner()?.sync_all()?;
    super::create_topic(&api.base, "c-plain", 1).await?;
    super::create_topic(&api.base, "c-lines", 1).await?;
    let (body, _) = records_body(BATCH, 100);
    let url = format!("{}/v1/topics/c-plain/records", api.base);
    let (mut plain, mut spent, mut counted, mut connectors) = (Tally::default(), Duration::ZERO, 0, 0);
    for _ in 0..rounds {
        plain.add(post_loop(&url, body.clone(), "application/json", CONNECTIONS, slice).await);
        let started = Instant::now();
        let at_start = api.topic_end("c-lines").await?.0;
        loop {
            let left = slice - started.elapsed().as_secs_f64();
            let name = format!("bench-file-source-{connectors}");
            let config = json!({"connector.class": "FileStreamSource", "file": path, "topic": "c-lines"});
            let goal = api.topic_end("c-lines").await?.0 + lines;
            create(api, &name, config).await?;
            let (read, _) = platform::watch(left, goal, || async { Ok(api.topic_end("c-lines").await?.0) }).await?;
            connectors += 1;
            if read < goal || started.elapsed().as_secs_f64() >= slice {
                // Counted at the round's end: what the source writes until it is deleted
                // counts in no round.
                spent += started.elapsed();
                counted += read - at_start;
                delete(api, &name).await?;
                break;
            }
            delete(api, &name).await?;
        }
    }
    let plain = plain.row(
        &format!("  ceiling: plain batch produce, {BATCH} × 100 B, {CONNECTIONS} connections"),
        BATCH as u64,
        BATCH as u64 * 100,
    );
    let row = Row::new(
        &format!(
            "file source, 100 B lines, {counted} ({connectors} connectors over a file of {lines}) in {:.1} s",
            spent.as_secs_f64()
        ),
        counted,
        counted * 100,
        spent,
        &histogram(),
    );
    Ok((row, plain))
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

/// The file sink's connector.
const SINK: &str = "bench-file-sink";

/// The file sink next to its ceiling, in alternating rounds of `slice` seconds: the sink
/// (running for its round, paused after it) writing the `records` of `c-lines` to a file, then
/// a plain file write of the same lines. Returns their rows, once every line the sink wrote is
/// checked.
async fn file_sink(api: &Api, dir: &Path, records: u64, slice: f64, rounds: usize) -> anyhow::Result<(Row, Row)> {
    let path = dir.join("sink.jsonl");
    let per_line = sink_line(0).len() as u64;
    // Whole lines (the sink may be in the middle of appending a batch).
    let whole_lines = || std::fs::metadata(&path).map_or(0, |m| m.len()) / per_line;
    create(
        api,
        SINK,
        json!({"connector.class": "FileStreamSink", "file": path, "topics": "c-lines"}),
    )
    .await?;
    let mut write = PlainWrite::new(dir.join("plain.jsonl"));
    let (mut written, mut spent) = (0, Duration::ZERO);
    for round in 0..rounds {
        if round > 0 {
            set_state(api, SINK, "resume").await?;
        }
        let at_start = whole_lines();
        let (now, elapsed) = platform::watch(slice, records, || async { Ok(whole_lines()) }).await?;
        // Counted at the round's end: what the sink writes until it pauses counts in no round.
        written += now - at_start;
        spent += elapsed;
        set_state(api, SINK, "pause").await?;
        write.run(slice)?;
        if now >= records {
            break;
        }
    }
    delete(api, SINK).await?;
    check_sink_file(&path, whole_lines())?;
    let row = Row::new(
        &format!(
            "file sink, JSON lines, {written} of {records} in {:.1} s",
            spent.as_secs_f64()
        ),
        written,
        written * 100,
        spent,
        &histogram(),
    );
    Ok((row, write.row()))
}

/// Checks that the first `lines` lines of the sink's file are the sources' lines in the order
/// they were written: each source connector wrote the file's lines from its first, so each line
/// is the line after the one before it, or the first line again.
fn check_sink_file(path: &Path, lines: u64) -> anyhow::Result<()> {
    use std::io::BufRead as _;
    let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let (mut text, mut previous) = (String::new(), None::<u64>);
    for i in 0..lines {
        text.clear();
        reader.read_line(&mut text)?;
        let number = text.get(1..11).and_then(|n| n.parse::<u64>().ok());
        let fits = number.is_some_and(|n| n == 0 || Some(n) == previous.map(|p| p + 1));
        anyhow::ensure!(
            fits && number.map(sink_line).as_deref() == Some(text.as_str()),
            "sink line {i} ({:?}) is not the source line after {previous:?} nor its first",
            text.trim_end()
        );
        previous = number;
    }
    Ok(())
}

/// Ceiling of the file sink: the same lines appended to a file in the sink's batches, each
/// opened by name and synced (`sync_data`) as the sink syncs its batches. Only the writes and
/// syncs are timed, not making the lines.
struct PlainWrite {
    path: std::path::PathBuf,
    written: u64,
    spent: Duration,
}

impl PlainWrite {
    fn new(path: std::path::PathBuf) -> Self {
        Self {
            path,
            written: 0,
            spent: Duration::ZERO,
        }
    }

    /// One round: a fresh file written for `secs` of writing.
    fn run(&mut self, secs: f64) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(&self.path);
        let budget = Duration::from_secs_f64(secs);
        let mut spent = Duration::ZERO;
        while spent < budget {
            let first = self.written;
            let chunk: String = (first..first + SINK_BATCH as u64).map(sink_line).collect();
            let t = Instant::now();
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
            f.write_all(chunk.as_bytes())?;
            f.sync_data()?;
            spent += t.elapsed();
            self.written += SINK_BATCH as u64;
        }
        self.spent += spent;
        Ok(())
    }

    fn row(&self) -> Row {
        Row::new(
            &format!("  ceiling: plain file write, same lines, synced every {SINK_BATCH}"),
            self.written,
            self.written * 100,
            self.spent,
            &histogram(),
        )
    }
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
    fn the_plain_file_write_writes_every_line_it_counts_in_a_fresh_file_each_round() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut write = PlainWrite::new(path.clone());
        write.run(0.01).unwrap();
        let first = write.written;
        write.run(0.01).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(first >= SINK_BATCH as u64);
        assert_eq!(text.lines().count() as u64, write.written - first);
        assert_eq!(text.lines().next().unwrap(), sink_line(first).trim_end());
        assert!(write.row().records_per_s > 0.0);
    }

    #[test]
    fn the_sink_file_check_takes_the_sources_lines_in_order_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sink.jsonl");
        let file = |numbers: &[u64]| {
            std::fs::write(&path, numbers.iter().map(|&n| sink_line(n)).collect::<String>()).unwrap();
        };
        file(&[0, 1, 2, 0, 1]);
        check_sink_file(&path, 5).unwrap();
        for wrong in [&[0, 1, 1][..], &[0, 2], &[1], &[0, 1, 0, 2]] {
            file(wrong);
            assert!(check_sink_file(&path, wrong.len() as u64).is_err(), "{wrong:?}");
        }
        std::fs::write(&path, "\"0000000000 y\"\n").unwrap();
        assert!(check_sink_file(&path, 1).is_err(), "a line that is not the source's");
        file(&[0]);
        assert!(check_sink_file(&path, 2).is_err(), "fewer lines than counted");
    }
}
