//! The sustained produce benchmark from outside (`weir bench --sustained --external`): this
//! binary started as `weir serve` in its own process, loaded by `wrk` (2 threads, the batch
//! connections) posting the batch — 1000 records of 1 KB random bytes, base64 in JSON —
//! to a one-partition topic, next to raw RocksDB appends of the same batch for the same time.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Workload, run_raw, stalls_logged};
use crate::bench::{BenchArgs, create_topic_with};

/// What wrk printed that the report uses.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct WrkSummary {
    /// Requests per second over the run (all answers).
    pub requests_per_s: f64,
    /// Latency percentiles, in ms: 50, 90, 99.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Answers other than 2xx and 3xx (refusals of backpressure).
    pub non_2xx: u64,
}

/// Runs the external benchmark and prints its report.
pub async fn main(args: &BenchArgs, tmp: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        Command::new("wrk").arg("--version").output().is_ok(),
        "the external benchmark needs wrk on PATH (Debian: apt-get install wrk)"
    );
    let w = Workload::binary(1000, 1024, args.batch_connections.max(1), 1);
    let dir = tmp.join("external");
    let body_file = tmp.join("external-body.json");
    std::fs::write(&body_file, &w.body)?;
    let script = tmp.join("external.lua");
    std::fs::write(&script, lua_script(&body_file))?;
    let (mut server, base) = start_serve(&dir).await?;
    create_topic_with(&base, "external", 1, super::retention()).await?;
    let secs = args.sustained_seconds.max(1.0).round() as u64;
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{}", w.connections),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(format!("{base}/v1/topics/external/records"))
        .output()?;
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = parse_wrk(&text).ok_or_else(|| anyhow::anyhow!("could not read wrk's output:\n{text}"))?;
    let stalls = stalls_logged(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let raw_dir = tmp.join("external-raw");
    let (raw, raw_elapsed, raw_stalls) = run_raw(args, &raw_dir, &w.batch, Duration::from_secs(secs))?;
    std::fs::remove_dir_all(&raw_dir).ok();
    let accepted_per_s = summary.requests_per_s - summary.non_2xx as f64 / secs as f64;
    let weir_rps = accepted_per_s * w.records as f64;
    let raw_rps = (raw * w.records) as f64 / raw_elapsed.as_secs_f64();
    let doc = format!(
        "## Sustained produce, from outside\n\nProduced by `cargo run --release -- bench --sustained --external`: \
`weir serve` in its own process, loaded by wrk.\n\n{}\n\n| From outside: wrk -t2 -c{} -d{secs}s, {} | records/s | p50 ms | p90 ms | p99 ms | refused | stalls logged \
| vs ceiling |\n|---|---:|---:|---:|---:|---:|---:|---:|\n| weir serve | {weir_rps:.0} | {:.2} | {:.2} | {:.2} | {} | \
{stalls} | {:.0} % of raw |\n|   ceiling: raw RocksDB appends, same batches and time | {raw_rps:.0} | — | — | — | 0 | \
{raw_stalls} | |\n",
        crate::bench::machine(),
        w.connections,
        w.name,
        summary.p50_ms,
        summary.p90_ms,
        summary.p99_ms,
        summary.non_2xx,
        100.0 * weir_rps / raw_rps.max(1.0)
    );
    println!("{doc}");
    if let Some(path) = &args.out {
        crate::bench::write_section(path, &doc)?;
    }
    Ok(())
}

/// A wrk script that POSTs the JSON body read from `body`.
fn lua_script(body: &Path) -> String {
    format!(
        "local f = io.open(\"{}\", \"rb\")\nwrk.method = \"POST\"\nwrk.body = f:read(\"*a\")\nf:close()\n\
wrk.headers[\"Content-Type\"] = \"application/json\"\n",
        body.display()
    )
}

/// Starts this binary as `weir serve` on a free loopback port with its data in `dir`; returns
/// the process and its base URL once it answers `/readyz`.
async fn start_serve(dir: &Path) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok((child, base));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("weir serve did not become ready on port {port}")
}

/// Reads wrk's `--latency` report: requests/s, the 50/90/99 % latencies and non-2xx answers.
pub(crate) fn parse_wrk(text: &str) -> Option<WrkSummary> {
    let mut s = WrkSummary::default();
    let mut seen_rate = false;
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => {
                s.requests_per_s = v.parse().ok()?;
                seen_rate = true;
            }
            (Some("50%"), Some(v)) => s.p50_ms = duration_ms(v)?,
            (Some("90%"), Some(v)) => s.p90_ms = duration_ms(v)?,
            (Some("99%"), Some(v)) => s.p99_ms = duration_ms(v)?,
            _ if line.starts_with("Non-2xx or 3xx responses:") => {
                s.non_2xx = line.rsplit(' ').next()?.parse().ok()?;
            }
            _ => {}
        }
    }
    seen_rate.then_some(s)
}

/// A wrk duration (`812.00us`, `29.31ms`, `1.02s`, `2.00m`) in milliseconds.
fn duration_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrks_report() {
        let text = "Running 1m test @ http://127.0.0.1:8080/v1/topics/external/records
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    30.12ms   50.01ms 477.00ms   95.00%
  Latency Distribution
     50%   29.00ms
     75%   35.00ms
     90%   40.50ms
     99%  477.00ms
  9000 requests in 1.00m, 1.00MB read
  Non-2xx or 3xx responses: 12
Requests/sec:    150.00
Transfer/sec:     17.00KB
";
        let s = parse_wrk(text).unwrap();
        assert_eq!(
            s,
            WrkSummary {
                requests_per_s: 150.0,
                p50_ms: 29.0,
                p90_ms: 40.5,
                p99_ms: 477.0,
                non_2xx: 12
            }
        );
        assert_eq!(duration_ms("812.00us"), Some(0.812));
        assert_eq!(duration_ms("1.50s"), Some(1500.0));
        assert!(parse_wrk("no report").is_none());
    }
}
