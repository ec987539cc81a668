//! Streams (`weir bench --streams`, issue #17): four persistent queries over one backlog of
//! ~100-byte JSON orders, each started with `POST /v1/sql` as the README shows and measured by
//! its input positions (`GET /v1/queries/{id}`) — a filter and projection, a tumbling COUNT by
//! key, a hopping COUNT(DISTINCT) and a stream–table LEFT JOIN — next to the raw read-and-parse
//! speed of the same input topic (its ceiling; targets ≥ 50 % stateless, ≥ 25 % stateful), and
//! the latency from a produce to the push-query row (`POST /v1/query`) that shows it.
//!
//! The ceiling is measured after the server has stopped, on the same data directory: a broker
//! opened without HTTP reads every partition of the input topic and parses each value as a JSON
//! object, as a query's reader must before it can evaluate anything.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::Method;
use serde_json::{Value, json};

use super::platform::{self, Api, Report};
use super::{BenchArgs, Row, histogram};

const INPUT: &str = "s-orders";
const PARTITIONS: u32 = 4;
const USERS: u64 = 1000;
/// Event time of the first order, and the step between orders (ms).
const T0: i64 = 1_767_225_600_000;
const STEP_MS: i64 = 10;
/// Records a second the latency phase offers.
const LATENCY_RATE: f64 = 1000.0;

/// How the benchmark measures, as the report says it.
const METHOD: &str = "Four persistent queries created with `POST /v1/sql` — a filter and projection, a \
tumbling COUNT by key and a hopping COUNT(DISTINCT) (both EMIT FINAL), a stream–table LEFT JOIN — each read \
the same backlog of 100-byte JSON orders (4 partitions; 200 000 per second of phase, at most 10 million) from \
the start, alone on the server, until done or for `--seconds` (default 30); events/s count the query's input \
positions (`GET /v1/queries/{id}`) from its CREATE, and its rows out are checked where the answer is known. \
Ceiling: the same topic read through the broker in-process (no HTTP) and each value parsed into a JSON object, \
in the same run. Latency: single-record produces at 1000/s, each timed from just before its request to its row \
on a push query's NDJSON stream (`POST /v1/query`); every record produced must show up.";

/// The `i`-th order: 100 bytes of JSON, user `i % USERS`, every third one `open`.
fn order(i: u64) -> String {
    let status = if i.is_multiple_of(3) { "open" } else { "paid" };
    format!(
        "{{\"order_id\":\"o{i:011}\",\"user_id\":\"{}\",\"amount\":{}.{:02},\"status\":\"{status}\",\"ts\":{}}}",
        user(i % USERS),
        100 + i % 500,
        i % 100,
        T0 + i as i64 * STEP_MS
    )
}

/// The id of user `u`: `User_0007` (fixed width, so that every order has the same size).
fn user(u: u64) -> String {
    format!("User_{u:04}")
}

/// Whether the filter query passes order `i` (`status = 'paid' AND amount > 150`).
fn passes_filter(i: u64) -> bool {
    !i.is_multiple_of(3) && (i % 500 > 50 || (i % 500 == 50 && !i.is_multiple_of(100)))
}

/// One query of the benchmark.
struct Query {
    name: &'static str,
    stateful: bool,
    /// Rows only when a window closes (so possibly none for a short backlog).
    windowed: bool,
    sql: &'static str,
}

const QUERIES: [Query; 4] = [
    Query {
        name: "filter + projection",
        stateful: false,
        windowed: false,
        sql: "CREATE STREAM b_paid AS SELECT order_id, UPPER(user_id) AS who, amount * 2 AS doubled \
FROM orders WHERE status = 'paid' AND amount > 150;",
    },
    Query {
        name: "tumbling COUNT by key, 1 min, EMIT FINAL",
        stateful: true,
        windowed: true,
        sql: "CREATE TABLE b_per_user AS SELECT user_id, window_start, window_end, COUNT(*) AS orders \
FROM TUMBLE(orders, ts, INTERVAL '1' MINUTE) GROUP BY user_id, window_start, window_end EMIT FINAL;",
    },
    Query {
        name: "hopping COUNT(DISTINCT), 5 min by 1 min, EMIT FINAL",
        stateful: true,
        windowed: true,
        sql: "CREATE TABLE b_active AS SELECT window_start, window_end, COUNT(DISTINCT user_id) AS users \
FROM HOP(orders, ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTES) GROUP BY window_start, window_end EMIT FINAL;",
    },
    Query {
        name: "stream–table LEFT JOIN",
        stateful: true,
        windowed: false,
        sql: "CREATE STREAM b_enriched AS SELECT o.order_id, o.amount, c.name, c.tier \
FROM orders o LEFT JOIN customers c ON o.user_id = c.customer_id;",
    },
];

/// Runs the Streams benchmark on a fresh server in `dir`.
pub(super) async fn run(args: &BenchArgs, dir: &Path) -> anyhow::Result<Report> {
    let secs = platform::phase_seconds(args);
    let orders = platform::backlog(args, secs);
    let data = dir.join("weir");
    let server = platform::start(args, &data)?;
    let api = server.api.clone();
    prepare(&api, orders).await?;
    let mut report = Report::new("Streams (issue #17)", METHOD);
    let mut measured = Vec::new();
    for q in &QUERIES {
        measured.push((q, persistent(&api, q, orders, secs).await?));
    }
    let latency = push_latency(&api, secs).await?;
    server.stop().await?;

    let ceiling = read_and_parse(&data).await?;
    anyhow::ensure!(ceiling.records_per_s > 0.0, "the ceiling read nothing from {INPUT}");
    for (q, row) in &measured {
        let vs = platform::vs(row, &ceiling, "read + parse");
        let pct = platform::pct(row.records_per_s, ceiling.records_per_s);
        if q.stateful {
            report.target_pct(&format!("{} ≥ 25 % of read + parse", q.name), pct, 25.0);
        } else {
            report.target_pct(&format!("{} ≥ 50 % of read + parse", q.name), pct, 50.0);
        }
        report.row(row.clone(), vs);
    }
    report.row(ceiling, "");
    report.row(latency, "");
    Ok(report)
}

/// Creates the topics, declares the stream and the table, and writes the customers and `n`
/// orders.
async fn prepare(api: &Api, n: u64) -> anyhow::Result<()> {
    super::create_topic(&api.base, INPUT, PARTITIONS).await?;
    super::create_topic(&api.base, "s-customers", 1).await?;
    super::create_topic(&api.base, "s-latency", 1).await?;
    let customers: Vec<Value> = (0..USERS)
        .map(|u| {
            let tier = if u % 10 == 0 { "gold" } else { "silver" };
            json!({"key": user(u), "value": {"customer_id": user(u), "name": format!("Customer {u}"), "tier": tier}})
        })
        .collect();
    api.ok(
        Method::POST,
        "/v1/topics/s-customers/records",
        Some(&json!({"key_format": "string", "records": customers})),
    )
    .await?;
    sql(
        api,
        &format!(
            "CREATE STREAM orders (order_id TEXT, user_id TEXT, amount DECIMAL(12,2), status TEXT, ts TIMESTAMP) \
WITH (topic = '{INPUT}', timestamp = 'ts');
CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT, tier TEXT) WITH (topic = 's-customers');
CREATE STREAM latency (t BIGINT, pad TEXT) WITH (topic = 's-latency');"
        ),
    )
    .await?;
    // Four writers, each a share of the batches of 1000.
    let batches = n.div_ceil(1000);
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let api = api.clone();
            tokio::spawn(async move {
                for b in (w..batches).step_by(4) {
                    let records: Vec<String> = (b * 1000..((b + 1) * 1000).min(n))
                        .map(|i| format!("{{\"value\":{}}}", order(i)))
                        .collect();
                    let body = format!("{{\"records\":[{}]}}", records.join(","));
                    let r = api
                        .client
                        .post(format!("{}/v1/topics/{INPUT}/records?results=partitions", api.base))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?;
                    anyhow::ensure!(r.status() == 200, "fill {INPUT}: {}", r.status());
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in writers {
        w.await??;
    }
    anyhow::ensure!(api.topic_end(INPUT).await?.0 == n, "{INPUT} does not hold {n} orders");
    Ok(())
}

/// Runs SQL statements; the answer's results.
async fn sql(api: &Api, text: &str) -> anyhow::Result<Vec<Value>> {
    let v = api.ok(Method::POST, "/v1/sql", Some(&json!({"sql": text}))).await?;
    Ok(v["results"].as_array().cloned().unwrap_or_default())
}

/// The sum of a query description's input positions on `topic`.
fn position(query: &Value, topic: &str) -> u64 {
    query["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["topic"] == topic)
        .filter_map(|i| i["position"].as_u64())
        .sum()
}

/// Starts `q`, measures its input positions until it has read all `orders` or `secs` pass,
/// checks what it wrote where the right answer is known, and terminates it.
async fn persistent(api: &Api, q: &Query, orders: u64, secs: f64) -> anyhow::Result<Row> {
    let results = sql(api, q.sql).await?;
    let id = results
        .first()
        .and_then(|r| r["query_id"].as_str())
        .ok_or_else(|| anyhow::anyhow!("{}: no query id in {results:?}", q.name))?
        .to_owned();
    let path = format!("/v1/queries/{id}");
    let describe = || api.ok(Method::GET, &path, None);
    let (read, elapsed) = platform::watch(secs, orders, || async { Ok(position(&describe().await?, INPUT)) }).await?;
    let info = describe().await?;
    sql(api, &format!("TERMINATE {id};")).await?;
    let out = info["records_out"].as_u64().unwrap_or(0);
    anyhow::ensure!(info["errors"].as_u64() == Some(0), "{}: record errors: {info}", q.name);
    if read == orders {
        let expected = match q.name {
            "filter + projection" => Some((0..orders).filter(|i| passes_filter(*i)).count() as u64),
            "stream–table LEFT JOIN" => Some(orders),
            _ => None,
        };
        if let Some(e) = expected {
            anyhow::ensure!(
                out == e,
                "{}: wrote {out} rows for {orders} orders, expected {e}",
                q.name
            );
        }
    }
    anyhow::ensure!(
        q.windowed || read == 0 || out > 0,
        "{}: read {read} orders and wrote nothing",
        q.name
    );
    Ok(Row::new(
        &format!(
            "{}, {read} of {orders} events in {:.1} s, {out} rows out",
            q.name,
            elapsed.as_secs_f64()
        ),
        read,
        read * 100,
        elapsed,
        &histogram(),
    ))
}

/// Produce → push-query row latency: a push query over `latency`, and single-record produces
/// at [`LATENCY_RATE`] for `secs`, each carrying the µs it was sent at.
async fn push_latency(api: &Api, secs: f64) -> anyhow::Result<Row> {
    let epoch = Instant::now();
    let mut push = api
        .client
        .post(format!("{}/v1/query", api.base))
        .json(&json!({"sql": "SELECT t FROM latency EMIT CHANGES"}))
        .send()
        .await?;
    anyhow::ensure!(push.status() == 200, "push query: {}", push.status());
    let mut lines = Lines::default();
    // The header line: the query is reading from here on.
    while lines.next_line().is_none() {
        let chunk = push.chunk().await?.ok_or_else(|| anyhow::anyhow!("push query ended"))?;
        lines.push(&chunk);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producers = 8;
    let tasks: Vec<_> = (0..producers)
        .map(|_| {
            let (api, stop, sent) = (api.clone(), stop.clone(), sent.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(producers as f64 / LATENCY_RATE));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let url = format!("{}/v1/topics/s-latency/records", api.base);
                let pad = "x".repeat(70);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let t = epoch.elapsed().as_micros() as u64;
                    let body = format!("{{\"records\":[{{\"value\":{{\"t\":{t},\"pad\":\"{pad}\"}}}}]}}");
                    let r = api
                        .client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?;
                    anyhow::ensure!(r.status() == 200, "produce: {}", r.status());
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    let mut h = histogram();
    let mut rows = 0u64;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let drain = until + Duration::from_secs(5);
    loop {
        while let Some(line) = lines.next_line() {
            if let Some(t) = row_time(&line)? {
                h.saturating_record((epoch.elapsed().as_micros() as u64).saturating_sub(t));
                rows += 1;
            }
        }
        let now = Instant::now();
        if now >= until {
            stop.store(true, Ordering::Relaxed);
        }
        // Done when the producers have stopped and every record they sent has shown up.
        let quiet = now >= until && tasks.iter().all(tokio::task::JoinHandle::is_finished);
        if (quiet && rows >= sent.load(Ordering::Relaxed)) || now >= drain {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), push.chunk()).await {
            Ok(chunk) => lines.push(&chunk?.ok_or_else(|| anyhow::anyhow!("push query ended"))?),
            Err(_) => continue,
        }
    }
    for t in tasks {
        t.await??;
    }
    let sent = sent.load(Ordering::Relaxed);
    anyhow::ensure!(rows == sent, "push query showed {rows} rows of {sent} records produced");
    Ok(latency_row(rows, started.elapsed(), &h))
}

fn latency_row(rows: u64, elapsed: Duration, h: &Histogram<u64>) -> Row {
    Row::new(
        &format!("produce → push-query row, {LATENCY_RATE:.0} records/s offered"),
        rows,
        rows * 100,
        elapsed,
        h,
    )
}

/// The `t` of a push query's row line; `None` for the header; an error for an end line.
fn row_time(line: &str) -> anyhow::Result<Option<u64>> {
    let v: Value = serde_json::from_str(line)?;
    if let Some(end) = v.get("end") {
        anyhow::bail!("the push query ended: {end}");
    }
    Ok(v["row"]["t"].as_u64())
}

/// Splits a byte stream into lines.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole line, without its newline.
    fn next_line(&mut self) -> Option<String> {
        let at = self.buf.iter().position(|b| *b == b'\n')?;
        let line: Vec<u8> = self.buf.drain(..=at).collect();
        Some(String::from_utf8_lossy(&line[..at]).trim_end_matches('\r').to_owned())
    }
}

/// The ceiling: every partition of the input topic read through a broker opened on `data`
/// (no HTTP), each value parsed as a JSON object.
async fn read_and_parse(data: &Path) -> anyhow::Result<Row> {
    use crate::broker::caller::Caller;
    use crate::broker::fetch::{FetchRequest, StartAt};
    let broker = crate::testing::broker_in(data).await;
    let caller = Caller::internal();
    let started = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    for p in 0..PARTITIONS {
        let mut at = 0u64;
        loop {
            let req = FetchRequest {
                start: StartAt::Offset(at),
                max_records: 10_000,
                max_bytes: 8 << 20,
                wait: Duration::ZERO,
            };
            let f = broker.fetch(&caller, INPUT, p, req).await?;
            if f.count == 0 {
                break;
            }
            for (_, r) in f.records() {
                let value = r.value.map_or(&[][..], |v| v.bytes);
                let row: serde_json::Map<String, Value> = serde_json::from_slice(value)?;
                anyhow::ensure!(row.contains_key("ts"), "an order without ts");
                records += 1;
                bytes += value.len() as u64;
            }
            at = f.next_offset;
        }
    }
    let elapsed = started.elapsed();
    broker.close().await;
    Ok(Row::new(
        "  ceiling: read + parse the same topic, in-process",
        records,
        bytes,
        elapsed,
        &histogram(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_json_of_about_100_bytes() {
        for i in [0u64, 7, 123_456, 9_999_999] {
            let o = order(i);
            let v: Value = serde_json::from_str(&o).unwrap();
            assert_eq!(v["user_id"], user(i % USERS));
            assert_eq!(o.len(), 100, "{o}");
        }
    }

    #[test]
    fn the_filter_predicate_matches_the_orders_values() {
        for i in 0..3000u64 {
            let v: Value = serde_json::from_str(&order(i)).unwrap();
            let expected = v["status"] == "paid" && v["amount"].as_f64().unwrap() > 150.0;
            assert_eq!(passes_filter(i), expected, "order {i}: {v}");
        }
    }

    #[test]
    fn reads_row_times_from_push_query_lines() {
        let mut l = Lines::default();
        l.push(b"{\"header\":{\"query_id\":\"q\"}}\n{\"row\":{\"t\":42}}\r\n{\"ro");
        assert_eq!(row_time(&l.next_line().unwrap()).unwrap(), None);
        assert_eq!(row_time(&l.next_line().unwrap()).unwrap(), Some(42));
        assert!(l.next_line().is_none());
        l.push(b"w\":{\"t\":7}}\n{\"end\":{\"reason\":\"terminated\"}}\n");
        assert_eq!(row_time(&l.next_line().unwrap()).unwrap(), Some(7));
        assert!(row_time(&l.next_line().unwrap()).is_err());
    }

    #[test]
    fn sums_input_positions_of_one_topic() {
        let q = json!({"inputs": [{"topic": INPUT, "partition": 0, "position": 5},
            {"topic": INPUT, "partition": 1, "position": 6}, {"topic": "s-customers", "partition": 0, "position": 9}]});
        assert_eq!(position(&q, INPUT), 11);
    }
}
