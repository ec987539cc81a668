//! What the platform benchmarks (`weir bench --transactions | --connect | --streams |
//! --platform`) share: the report (a Markdown table of rows next to their ceilings, and a
//! targets table), a small JSON client for the in-process server, phase lengths and backlog
//! sizes, and the dispatch that runs the selected modes and writes `--out`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{BenchArgs, Row, ms};

/// Seconds of a phase when `--seconds` is not given: long enough for a steady state.
pub(super) const DEFAULT_PHASE_SECONDS: f64 = 30.0;

/// Seconds each phase of a platform mode runs: `--seconds`, else [`DEFAULT_PHASE_SECONDS`].
pub(super) fn phase_seconds(args: &BenchArgs) -> f64 {
    args.seconds.unwrap_or(DEFAULT_PHASE_SECONDS).max(0.5)
}

/// Records of a backlog that a phase of `seconds` reads or writes: `--platform-records`, else
/// 200 000 a second of phase, between 10 000 and 10 000 000 (up to 1 GB of 100-byte records):
/// enough that a phase reading it runs its whole length unless it goes faster than that.
pub(super) fn backlog(args: &BenchArgs, seconds: f64) -> u64 {
    args.platform_records
        .unwrap_or_else(|| ((seconds * 200_000.0) as u64).clamp(10_000, 10_000_000))
        .max(1000)
}

/// `a` as a percentage of `b` (0 when `b` is 0).
pub(super) fn pct(a: f64, b: f64) -> f64 {
    if b > 0.0 { 100.0 * a / b } else { 0.0 }
}

/// One line of a targets table.
struct Target {
    what: String,
    measured: String,
    met: bool,
}

/// The report of one platform mode: rows with their comparison, targets, notes.
pub(super) struct Report {
    title: String,
    method: String,
    rows: Vec<(Row, String)>,
    targets: Vec<Target>,
    notes: Vec<String>,
}

impl Report {
    /// An empty report headed `title`, its method said in one paragraph.
    pub(super) fn new(title: &str, method: &str) -> Self {
        Self {
            title: title.to_owned(),
            method: method.to_owned(),
            rows: Vec::new(),
            targets: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a row and what it is next to (e.g. "74 % of ceiling"; empty for a ceiling itself).
    pub(super) fn row(&mut self, row: Row, vs: impl Into<String>) {
        println!(
            "  {:<70} {:>12.0} records/s  p50 {} ms  p99 {} ms",
            row.name,
            row.records_per_s,
            ms(row.p50_us),
            ms(row.p99_us)
        );
        self.rows.push((row, vs.into()));
    }

    /// Adds a target: `measured` percentage of `at_least` percent.
    pub(super) fn target_pct(&mut self, what: &str, measured: f64, at_least: f64) {
        self.targets.push(Target {
            what: what.to_owned(),
            measured: format!("{measured:.1} %"),
            met: measured >= at_least,
        });
    }

    /// Adds a line under the tables.
    pub(super) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The section as Markdown: heading, results table, notes, targets table.
    pub(super) fn render(&self) -> String {
        let mut out = format!("### {}\n\n{}\n\n", self.title, self.method);
        out.push_str("| Benchmark | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | vs ceiling |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for (r, vs) in &self.rows {
            let _ = writeln!(out, "| {} | {vs} |", r.cells());
        }
        for n in &self.notes {
            let _ = write!(out, "\n{n}\n");
        }
        if !self.targets.is_empty() {
            out.push_str("\n| Target | Measured | Met |\n|---|---|---|\n");
            for t in &self.targets {
                let met = if t.met { "yes" } else { "**no**" };
                let _ = writeln!(out, "| {} | {} | {met} |", t.what, t.measured);
            }
        }
        out
    }
}

/// "N % of <what>" for the vs-ceiling column.
pub(super) fn vs(row: &Row, ceiling: &Row, what: &str) -> String {
    format!("{:.0} % of {what}", pct(row.records_per_s, ceiling.records_per_s))
}

/// A JSON client of the in-process server at `base`.
#[derive(Clone)]
pub(super) struct Api {
    /// The client (keep-alive connections).
    pub client: reqwest::Client,
    /// `http://ip:port`.
    pub base: String,
}

impl Api {
    /// A client of the server at `addr`.
    pub(super) fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: format!("http://{addr}"),
        }
    }

    /// Sends `method path` with the JSON `body` (if any); the status and the answer's JSON
    /// (`Null` when the answer is empty or not JSON).
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// `call`, requiring a 2xx answer.
    pub(super) async fn ok(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, v) = self.call(method.clone(), path, body).await?;
        anyhow::ensure!((200..300).contains(&status), "{method} {path}: {status} {v}");
        Ok(v)
    }

    /// The sum of a topic's partitions' `next_offset` and `bytes`.
    pub(super) async fn topic_end(&self, topic: &str) -> anyhow::Result<(u64, u64)> {
        let v = self
            .ok(reqwest::Method::GET, &format!("/v1/topics/{topic}"), None)
            .await?;
        Ok(sum_partitions(&v))
    }
}

/// The sums of `next_offset` and `bytes` over a topic description's `partitions`.
pub(super) fn sum_partitions(topic: &Value) -> (u64, u64) {
    topic["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .fold((0, 0), |(n, b), p| {
            (
                n + p["next_offset"].as_u64().unwrap_or(0),
                b + p["bytes"].as_u64().unwrap_or(0),
            )
        })
}

/// A server under test, started by [`start`].
pub(super) struct Server {
    /// Its client.
    pub api: Api,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Starts Weir in-process on `dir` with the store and writer settings of `args`.
pub(super) fn start(args: &BenchArgs, dir: &Path) -> anyhow::Result<Server> {
    let config = crate::config::Config {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        writer_priority_boost: args.writer_priority_boost,
        store: args.store.clone(),
        ..crate::config::Config::default()
    };
    let (addr, stop, thread) = super::start_server(config)?;
    Ok(Server {
        api: Api::new(addr),
        stop,
        thread,
    })
}

impl Server {
    /// Shuts the server down and waits until it has stopped (its store is closed).
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        tokio::task::spawn_blocking(move || self.thread.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the bench server panicked"))
    }
}

/// Samples `progress` every 50 ms from now until it reaches `target` or `seconds` pass; returns
/// the last value and the time taken.
pub(super) async fn watch<F, Fut>(seconds: f64, target: u64, mut progress: F) -> anyhow::Result<(u64, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    loop {
        let now = progress().await?;
        if now >= target || Instant::now() >= deadline {
            return Ok((now, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes a finished phase's data (its unwritten pages with it) and flushes what else is
/// pending to disk, so that the next phase does not share the machine with the last one's
/// writeback: the Connect phase alone leaves over a gigabyte of file data behind.
pub(super) fn quiet_disk(done: &Path) {
    let _ = std::fs::remove_dir_all(done);
    let _ = std::process::Command::new("sync").status();
}

/// Runs the platform modes `args` selects, prints their report and writes it to `--out`.
pub(super) async fn main(args: &BenchArgs, tmp: &Path) -> anyhow::Result<()> {
    let all = args.platform;
    let mut sections = Vec::new();
    if all || args.transactions {
        println!("transactions:");
        sections.push(
            super::transactions::run(args, &tmp.join("transactions"))
                .await?
                .render(),
        );
    }
    if all || args.connect {
        quiet_disk(&tmp.join("transactions"));
        println!("connect:");
        sections.push(super::connect::run(args, &tmp.join("connect")).await?.render());
    }
    if all || args.streams {
        quiet_disk(&tmp.join("connect"));
        println!("streams:");
        sections.push(super::streams::run(args, &tmp.join("streams")).await?.render());
    }
    let flags: Vec<&str> = [
        (args.platform, "--platform"),
        (args.transactions, "--transactions"),
        (args.connect, "--connect"),
        (args.streams, "--streams"),
    ]
    .into_iter()
    .filter_map(|(on, flag)| on.then_some(flag))
    .collect();
    let doc = format!(
        "## Platform benchmarks\n\nProduced by `weir bench {}` ({} s per phase{}).\n\n{}\n\n{}",
        flags.join(" "),
        phase_seconds(args),
        if cfg!(debug_assertions) {
            "; **debug build**"
        } else {
            ""
        },
        super::machine(),
        sections.join("\n")
    );
    println!("\n{doc}");
    if let Some(path) = &args.out {
        if all {
            super::write_section(path, &doc)?;
        } else {
            // Only the subsections this run produced: the other modes' results stay.
            for section in &sections {
                super::write_section(path, &produced_by(section, &flags, args))?;
            }
        }
    }
    Ok(())
}

/// A subsection with the command that produced it and the machine under its heading.
fn produced_by(section: &str, flags: &[&str], args: &BenchArgs) -> String {
    let (heading, rest) = section.split_once('\n').unwrap_or((section, ""));
    format!(
        "{heading}\n\nProduced by `weir bench {} --seconds {}`.\n\n{}\n{rest}",
        flags.join(" "),
        phase_seconds(args),
        super::machine()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_partitions_of_a_topic_description() {
        let v = serde_json::json!({"partitions": [{"next_offset": 5, "bytes": 500}, {"next_offset": 7, "bytes": 10}]});
        assert_eq!(sum_partitions(&v), (12, 510));
        assert_eq!(sum_partitions(&serde_json::json!({})), (0, 0));
    }

    #[test]
    fn percentages_never_divide_by_zero() {
        assert!((pct(35.0, 50.0) - 70.0).abs() < 1e-9);
        assert_eq!(pct(1.0, 0.0), 0.0);
    }

    #[test]
    fn renders_rows_notes_and_targets() {
        let h = super::super::histogram();
        let mut r = Report::new("Things", "How.");
        r.row(Row::new("a", 100, 1000, Duration::from_secs(2), &h), "50 % of b");
        r.note("a note");
        r.target_pct("a ≥ 70 % of b", 50.0, 70.0);
        r.target_pct("c ≥ 25 % of d", 25.0, 25.0);
        let md = r.render();
        assert!(md.starts_with("### Things\n\nHow.\n\n| Benchmark |"), "{md}");
        assert!(md.contains("| a | 50 | 0.0 | — | — | — | 50 % of b |"), "{md}");
        assert!(md.contains("\na note\n"), "{md}");
        assert!(md.contains("| a ≥ 70 % of b | 50.0 % | **no** |"), "{md}");
        assert!(md.contains("| c ≥ 25 % of d | 25.0 % | yes |"), "{md}");
    }

    #[test]
    fn backlogs_follow_the_phase_length_within_bounds() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let args = Cli::parse_from(["weir"]).bench;
        assert_eq!(phase_seconds(&args), DEFAULT_PHASE_SECONDS);
        assert_eq!(backlog(&args, 3.0), 600_000);
        assert_eq!(backlog(&args, 0.01), 10_000);
        assert_eq!(backlog(&args, 1000.0), 10_000_000);
        let args = Cli::parse_from(["weir", "--seconds", "3", "--platform-records", "2000"]).bench;
        assert_eq!(phase_seconds(&args), 3.0);
        assert_eq!(backlog(&args, 3.0), 2000);
    }
}
