//! `weir bench --cdc`: PostgreSQL change data capture next to its ceiling. Starts a PostgreSQL
//! of its own (`initdb` into a temporary directory, `wal_level=logical`, a free port), commits
//! `--cdc-changes` inserts in transactions of 1000 rows, then reads the same changes twice from
//! two slots created before them: with `pg_recvlogical` (pgoutput into a file: the ceiling) and
//! with the `PostgresConnector` of an in-process Weir (until the topic holds every change).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::{BenchArgs, start_server, tempfile_dir};
use crate::config::Config;

/// A PostgreSQL started for the benchmark; stopped on drop.
struct Pg {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

/// Runs a PostgreSQL tool, as the `postgres` user when running as root (initdb refuses root).
fn tool(bin: &Path, name: &str, args: &[&str]) -> anyhow::Result<Output> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(name));
        c
    } else {
        Command::new(bin.join(name))
    };
    let out = cmd.args(args).output().with_context(|| format!("running {name}"))?;
    if !out.status.success() {
        bail!("{name} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}

fn bindir() -> anyhow::Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .context("no PostgreSQL binaries (pg_config or /usr/lib/postgresql/*/bin)")
}

impl Pg {
    fn start(dir: PathBuf) -> anyhow::Result<Self> {
        let bin = bindir()?;
        std::fs::create_dir_all(&dir)?;
        let _ = Command::new("chown").arg("postgres:").arg(&dir).status();
        let data = dir.join("data");
        let data_s = data.to_string_lossy().into_owned();
        tool(
            &bin,
            "initdb",
            &["-D", &data_s, "-A", "trust", "-U", "postgres", "--no-sync"],
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let opts = format!(
            "-c wal_level=logical -p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.display()
        );
        let log = dir.join("log").to_string_lossy().into_owned();
        tool(&bin, "pg_ctl", &["-D", &data_s, "-w", "-l", &log, "-o", &opts, "start"])?;
        Ok(Self { bin, dir, port })
    }

    fn sql(&self, sql: &str) -> anyhow::Result<String> {
        let port = self.port.to_string();
        let out = tool(
            &self.bin,
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-Atq",
                "-c",
                sql,
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let _ = tool(&self.bin, "pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

/// Runs the CDC benchmark and prints its rows.
pub(super) async fn main(args: &BenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile_dir()?;
    let pg = Pg::start(tmp.join("pg"))?;
    let changes = args.cdc_changes.max(1000) / 1000 * 1000;
    pg.sql("CREATE TABLE bench_cdc (id int PRIMARY KEY, payload text)")?;
    pg.sql("CREATE PUBLICATION bench_pub FOR TABLE bench_cdc")?;
    pg.sql("SELECT pg_create_logical_replication_slot('recv_bench', 'pgoutput')")?;
    pg.sql("SELECT pg_create_logical_replication_slot('weir_bench', 'pgoutput')")?;
    for start in (0..changes).step_by(1000) {
        pg.sql(&format!(
            "INSERT INTO bench_cdc SELECT g, repeat('x', 100) FROM generate_series({}, {}) g",
            start + 1,
            start + 1000
        ))?;
    }
    let end = pg.sql("SELECT pg_current_wal_lsn()")?;

    let recv = recvlogical(&pg, &end, &pg.dir.join("recv.out"))?;
    let weir = weir_cdc(&pg, &tmp, changes).await?;
    let rate = |d: Duration| changes as f64 / d.as_secs_f64();
    println!("| CDC workload ({changes} inserts, 1000 per transaction) | changes/s | vs pg_recvlogical |");
    println!("|---|---:|---:|");
    println!(
        "| Weir PostgresConnector → topic | {:.0} | {:.0} % |",
        rate(weir),
        100.0 * recv.as_secs_f64() / weir.as_secs_f64()
    );
    println!("| pg_recvlogical (pgoutput to a file) | {:.0} | 100 % |", rate(recv));
    drop(pg);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// How long `pg_recvlogical` takes to stream the slot up to `end`.
fn recvlogical(pg: &Pg, end: &str, file: &Path) -> anyhow::Result<Duration> {
    let port = pg.port.to_string();
    let file = file.to_string_lossy().into_owned();
    let started = Instant::now();
    tool(
        &pg.bin,
        "pg_recvlogical",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "--slot",
            "recv_bench",
            "--start",
            "--endpos",
            end,
            "--no-loop",
            "-o",
            "proto_version=1",
            "-o",
            "publication_names=bench_pub",
            "-f",
            &file,
        ],
    )?;
    Ok(started.elapsed())
}

/// How long Weir's connector takes from its creation until the topic holds every change.
async fn weir_cdc(pg: &Pg, tmp: &Path, changes: u64) -> anyhow::Result<Duration> {
    let config = Config {
        data_dir: tmp.join("weir"),
        listen: "127.0.0.1:0".parse()?,
        ..Config::default()
    };
    let (addr, stop, server) = start_server(config)?;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    let body = json!({"name": "bench-cdc", "config": {
        "connector.class": "PostgresConnector", "database.hostname": "127.0.0.1",
        "database.port": pg.port.to_string(), "database.user": "postgres", "database.dbname": "postgres",
        "topic.prefix": "bench", "slot.name": "weir_bench", "publication.name": "bench_pub",
        "publication.autocreate.mode": "disabled", "snapshot.mode": "never",
    }});
    let r = http.post(format!("{base}/v1/connectors")).json(&body).send().await?;
    if !r.status().is_success() {
        bail!("creating the connector: {}", r.text().await?);
    }
    let topic = format!("{base}/v1/topics/bench.public.bench_cdc");
    let deadline = started + Duration::from_secs(600);
    loop {
        let v: Value = http.get(&topic).send().await?.json().await?;
        if v["partitions"][0]["next_offset"].as_u64().unwrap_or(0) >= changes {
            break;
        }
        if Instant::now() > deadline {
            let status: Value = http
                .get(format!("{base}/v1/connectors/bench-cdc/status"))
                .send()
                .await?
                .json()
                .await?;
            bail!("Weir did not capture {changes} changes in 600 s: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let _ = tokio::task::spawn_blocking(move || server.join()).await;
    Ok(elapsed)
}
