//! Transactions (`weir bench --transactions`, issue #14): consume → transactional produce of
//! 100-byte records as a web service does it — poll a batch as a consumer-group member, then
//! `POST /v1/transactions` with the batch's values for another topic and the member's offsets —
//! next to plain batch produce of the same records in the same run (its ceiling; target ≥ 70 %).
//!
//! The plain produce phase runs first and writes the input topic, so the transactional phase
//! reads exactly what plain produce wrote; afterwards the output topic's end offsets and the
//! group's committed offsets are checked against the records the phase counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::Method;
use serde_json::{Value, json};

use super::platform::{self, Api, Report};
use super::{BenchArgs, Row, Tally, histogram, post_loop, records_body};

const PARTITIONS: u32 = 4;
const MEMBERS: usize = 4;
const BATCH: usize = 1000;
const GROUP: &str = "bench-tx";

/// How the benchmark measures, as the report says it.
const METHOD: &str = "Four members of one consumer group each poll up to 1000 records of 100 B and \
write them to another topic with their input offsets committed in the same `POST /v1/transactions`, for \
`--seconds` (default 30); after the run the output topic's end offsets and the group's committed offsets must \
equal the records counted. Ceiling: plain batch produce of the same records (1000 a request, 4 connections) in \
the same run, which also writes the input. Latency: one poll + transaction cycle.";

/// Runs the transactions benchmark on a fresh server in `dir`.
pub(super) async fn run(args: &BenchArgs, dir: &Path) -> anyhow::Result<Report> {
    let secs = platform::phase_seconds(args);
    let server = platform::start(args, dir)?;
    let api = server.api.clone();
    for topic in ["tx-in", "tx-out"] {
        super::create_topic(&api.base, topic, PARTITIONS).await?;
    }
    let mut report = Report::new("Transactions (issue #14)", METHOD);

    // Ceiling: plain batch produce of the same records, which also fills the input topic.
    let (body, _) = records_body(BATCH, 100);
    let mut plain = Tally::default();
    plain.add(
        post_loop(
            &format!("{}/v1/topics/tx-in/records", api.base),
            body,
            "application/json",
            MEMBERS,
            secs,
        )
        .await,
    );
    let plain = plain.row(
        &format!("  ceiling: plain batch produce, {BATCH} × 100 B, {MEMBERS} connections"),
        BATCH as u64,
        BATCH as u64 * 100,
    );
    let (written, _) = api.topic_end("tx-in").await?;

    let (moved, elapsed, latency) = consume_transform_produce(&api, written, secs).await?;
    let tx = Row::new(
        &format!("consume → transactional produce, {BATCH} × 100 B, {MEMBERS} members"),
        moved,
        moved * 100,
        elapsed,
        &latency,
    );
    let (out, _) = api.topic_end("tx-out").await?;
    let committed = committed_total(&api.ok(Method::GET, &format!("/v1/groups/{GROUP}"), None).await?);
    anyhow::ensure!(
        out == moved && committed == moved,
        "the phase counted {moved} records moved, but tx-out holds {out} and the group committed {committed}"
    );
    let ratio = platform::pct(tx.records_per_s, plain.records_per_s);
    report.row(tx.clone(), platform::vs(&tx, &plain, "plain produce"));
    report.row(plain, "");
    report.note(format!(
        "Checked after the run: tx-out holds {out} records and the group committed offsets for {committed}, as counted."
    ));
    report.target_pct(
        "transactional consume → produce ≥ 70 % of plain batch produce",
        ratio,
        70.0,
    );
    server.stop().await?;
    Ok(report)
}

/// `MEMBERS` members of a fresh group move records from `tx-in` to `tx-out` in transactions
/// for `seconds` (or until all `available` records are moved); returns the records moved, the
/// time and the latencies of the poll + transaction cycles.
async fn consume_transform_produce(
    api: &Api,
    available: u64,
    seconds: f64,
) -> anyhow::Result<(u64, Duration, Histogram<u64>)> {
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        let join = json!({"topics": ["tx-in"], "auto_offset_reset": "earliest", "assignment_strategy": "range"});
        let v = api
            .ok(Method::POST, &format!("/v1/groups/{GROUP}/members"), Some(&join))
            .await?;
        let id = v["member_id"].as_str().unwrap_or_default().to_owned();
        members.push(id);
    }
    let moved = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = members
        .into_iter()
        .map(|id| {
            let (api, moved) = (api.clone(), moved.clone());
            tokio::spawn(async move { member_loop(&api, &id, &moved, available, deadline).await })
        })
        .collect();
    let mut latency = histogram();
    for t in tasks {
        latency
            .add(t.await??)
            .map_err(|e| anyhow::anyhow!("merge histograms: {e:?}"))?;
    }
    Ok((moved.load(Ordering::Relaxed), started.elapsed(), latency))
}

/// A poll's answer, as far as the loop needs it: borrowed from the answer's bytes, values
/// kept as their JSON text (a lean client, as the plain produce ceiling's is).
#[derive(serde::Deserialize)]
struct Poll<'a> {
    generation: Option<u64>,
    #[serde(default, borrow)]
    records: Vec<Polled<'a>>,
}

#[derive(serde::Deserialize)]
struct Polled<'a> {
    #[serde(borrow)]
    topic: std::borrow::Cow<'a, str>,
    partition: u64,
    offset: u64,
    #[serde(borrow)]
    value: &'a serde_json::value::RawValue,
}

/// One member's loop: poll, then write the values to `tx-out` and commit in one transaction.
async fn member_loop(
    api: &Api,
    id: &str,
    moved: &AtomicU64,
    available: u64,
    deadline: Instant,
) -> anyhow::Result<Histogram<u64>> {
    let mut latency = histogram();
    let mut generation = 0u64;
    let poll = format!(
        "{}/v1/groups/{GROUP}/members/{id}/records?max_records={BATCH}&wait_ms=100",
        api.base
    );
    let commit = format!("{}/v1/transactions", api.base);
    while Instant::now() < deadline && moved.load(Ordering::Relaxed) < available {
        let t = Instant::now();
        let r = api.client.get(&poll).send().await?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        if status == 409 {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            generation = v["generation"].as_u64().unwrap_or(generation);
            continue;
        }
        anyhow::ensure!(status == 200, "poll: {status} {}", String::from_utf8_lossy(&bytes));
        let polled: Poll = serde_json::from_slice(&bytes)?;
        generation = polled.generation.unwrap_or(generation);
        let Some((body, n)) = transaction(&polled, id, generation) else {
            continue;
        };
        let r = api
            .client
            .post(&commit)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let answer = r.bytes().await?;
        match status {
            200 => {
                moved.fetch_add(n, Ordering::Relaxed);
                latency.saturating_record(t.elapsed().as_micros() as u64);
            }
            // A rebalance between the poll and the transaction: nothing was written; the
            // partitions' new owners read those records again from the committed offsets.
            409 => {
                let v: Value = serde_json::from_slice(&answer).unwrap_or_default();
                generation = v["generation"].as_u64().unwrap_or(generation);
            }
            _ => anyhow::bail!("transaction: {status} {}", String::from_utf8_lossy(&answer)),
        }
    }
    Ok(latency)
}

/// The transaction for a poll's answer: its records' values to `tx-out` and, for each
/// partition read, the offset after its last record; with the number of records. `None` when
/// the poll returned nothing.
fn transaction(poll: &Poll<'_>, member: &str, generation: u64) -> Option<(Vec<u8>, u64)> {
    if poll.records.is_empty() {
        return None;
    }
    let mut next: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    let mut records = Vec::with_capacity(poll.records.len() * 120);
    records.push(b'[');
    for (i, r) in poll.records.iter().enumerate() {
        let e = next.entry((r.topic.as_ref(), r.partition)).or_insert(0);
        *e = (*e).max(r.offset + 1);
        if i > 0 {
            records.push(b',');
        }
        records.extend_from_slice(b"{\"value\":");
        records.extend_from_slice(r.value.get().as_bytes());
        records.push(b'}');
    }
    records.push(b']');
    let offsets: Vec<Value> = next
        .into_iter()
        .map(|((topic, partition), offset)| json!({"topic": topic, "partition": partition, "offset": offset}))
        .collect();
    let commit = json!({"group": GROUP, "member_id": member, "generation": generation, "offsets": offsets});
    let mut body = b"{\"produce\":[{\"topic\":\"tx-out\",\"records\":".to_vec();
    body.extend_from_slice(&records);
    body.extend_from_slice(b"}],\"commit\":");
    body.extend_from_slice(commit.to_string().as_bytes());
    body.push(b'}');
    Some((body, poll.records.len() as u64))
}

/// The records committed by a group, from its description: the sum of its committed offsets.
fn committed_total(group: &Value) -> u64 {
    group["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["committed_offset"].as_u64())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_becomes_one_transaction_committing_the_offset_after_each_partition() {
        let poll = json!({"generation": 3, "records": [
            {"topic": "tx-in", "partition": 0, "offset": 7, "value": "a"},
            {"topic": "tx-in", "partition": 1, "offset": 2, "value": "b"},
            {"topic": "tx-in", "partition": 0, "offset": 8, "value": {"c": 1}},
        ]});
        let text = poll.to_string();
        let poll: Poll = serde_json::from_str(&text).unwrap();
        let (body, n) = transaction(&poll, "m-1", 3).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(n, 3);
        assert_eq!(body["produce"][0]["topic"], "tx-out");
        assert_eq!(body["produce"][0]["records"][2]["value"], json!({"c": 1}));
        assert_eq!(body["commit"]["generation"], 3);
        assert_eq!(body["commit"]["member_id"], "m-1");
        assert_eq!(
            body["commit"]["offsets"],
            json!([{"topic": "tx-in", "partition": 0, "offset": 9}, {"topic": "tx-in", "partition": 1, "offset": 3}])
        );
        let empty: Poll = serde_json::from_str(r#"{"records": []}"#).unwrap();
        assert!(transaction(&empty, "m", 1).is_none());
    }

    #[test]
    fn sums_the_committed_offsets_of_a_group_description() {
        let g = json!({"partitions": [{"committed_offset": 40, "end_offset": 42}, {"committed_offset": 2},
            {"end_offset": 9}]});
        assert_eq!(committed_total(&g), 42);
    }
}
