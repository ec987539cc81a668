//! Golden tests of the Streams SQL: each `tests/golden/<case>.sql` runs against the records of
//! `<case>.input.json` (topics in order, each record's key, value and timestamp) on an
//! in-process broker, and the records its query writes must equal `<case>.expected.json`.
//! The four seed workloads' inputs and expected outputs come from `tests/golden/gen.py`, which
//! computes them independently of Weir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir::broker::produce::ProduceRequest;
use weir::broker::{Broker, Caller, FetchRequest, PayloadInput, RecordInput, StartAt, ValueInput};
use weir::storage::Format;
use weir::streams::Streams;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Produces a topic's records in order (creating the topic).
pub async fn feed(b: &Broker, topic: &Value) {
    let me = Caller::internal();
    let name = topic["name"].as_str().unwrap();
    let partitions = topic["partitions"].as_u64().unwrap_or(1) as u32;
    // Kept forever: the records' timestamps are in the past, and retention (7 days by default)
    // would delete them while the query reads.
    let config: BTreeMap<String, Value> = [("retention.ms".to_owned(), json!(-1))].into();
    b.create_topic(&me, name, Some(partitions), &config).await.unwrap();
    let records = topic["records"].as_array().unwrap();
    for chunk in records.chunks(500) {
        let texts: Vec<(Option<String>, String, i64)> = chunk
            .iter()
            .map(|r| {
                let key = (!r["key"].is_null()).then(|| r["key"].to_string());
                (key, r["value"].to_string(), r["timestamp"].as_i64().unwrap_or(0))
            })
            .collect();
        let req = ProduceRequest {
            records: texts
                .iter()
                .map(|(k, v, t)| RecordInput {
                    key: k.as_deref().map(PayloadInput::Json),
                    value: if v == "null" {
                        ValueInput::Null
                    } else {
                        ValueInput::Given(PayloadInput::Json(v))
                    },
                    headers: Vec::new(),
                    partition: None,
                    timestamp: Some(*t),
                })
                .collect(),
            key_format: Format::Json,
            value_format: Format::Json,
            durability: None,
            idempotency: None,
        };
        let out = b.produce(&me, name, req).await.unwrap();
        assert_eq!(out.failed(), 0, "input of {name}");
    }
}

/// Every record of a topic (all partitions, in partition then offset order) as key and value.
pub async fn records(b: &Broker, topic: &str) -> Vec<Value> {
    let me = Caller::internal();
    let Ok(t) = b.describe_topic(&me, topic) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (p, _) in &t.partitions {
        let mut at = 0;
        loop {
            let req = FetchRequest {
                start: StartAt::Offset(at),
                max_records: 10_000,
                max_bytes: 64 << 20,
                wait: Duration::ZERO,
            };
            let Ok(f) = b.fetch(&me, topic, *p, req).await else {
                break;
            };
            if f.count == 0 {
                break;
            }
            for (_, r) in f.records() {
                let parse = |p: Option<weir::storage::Payload<'_>>| {
                    p.map_or(Value::Null, |p| serde_json::from_slice(p.bytes).unwrap_or(Value::Null))
                };
                out.push(json!({"key": parse(r.key), "value": parse(r.value)}));
            }
            at = f.next_offset;
        }
    }
    out
}

/// Waits until the query's output stops changing (and every query has read its input).
pub async fn settle(b: &Broker, s: &Streams, topic: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut last, mut stable) = (Vec::new(), 0);
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = records(b, topic).await;
        let caught_up = s
            .queries(&Caller::internal())
            .await
            .iter()
            .all(|q| !q.inputs.is_empty() && q.inputs.iter().all(|i| i["lag"] == 0));
        stable = if now == last && caught_up { stable + 1 } else { 0 };
        if stable >= 5 {
            return now;
        }
        assert!(Instant::now() < deadline, "output of {topic} never settled");
        last = now;
    }
}

async fn run_case(name: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = golden_dir();
    let sql = std::fs::read_to_string(dir.join(format!("{name}.sql"))).unwrap();
    let input: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.input.json"))).unwrap()).unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let b = weir::testing::broker_in(tmp.path()).await;
    let s = Streams::start(b.clone()).await.unwrap();
    for t in input["topics"].as_array().unwrap() {
        feed(&b, t).await;
    }
    s.execute(&Caller::internal(), &sql)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let topic = expected["topic"].as_str().unwrap();
    let got = settle(&b, &s, topic).await;
    let info = serde_json::to_string(&s.queries(&Caller::internal()).await).unwrap();
    let want = expected["records"].as_array().unwrap();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{name}: record {i} differs");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{name}: {} records, expected {}; queries: {info}",
        got.len(),
        want.len()
    );
    b.close().await;
}

#[tokio::test]
async fn golden_orders_per_hour() {
    run_case("orders_per_hour").await;
}

#[tokio::test]
async fn golden_active_users() {
    run_case("active_users").await;
}

#[tokio::test]
async fn golden_revenue_per_day() {
    run_case("revenue_per_day").await;
}

#[tokio::test]
async fn golden_enriched_orders() {
    run_case("enriched_orders").await;
}

#[tokio::test]
async fn golden_filter_project() {
    run_case("filter_project").await;
}

#[tokio::test]
async fn golden_changes_having() {
    run_case("changes_having").await;
}

#[tokio::test]
async fn golden_sessions() {
    run_case("sessions").await;
}

#[tokio::test]
async fn golden_late_grace() {
    run_case("late_grace").await;
}

#[tokio::test]
async fn golden_global_aggregate() {
    run_case("global_aggregate").await;
}

#[tokio::test]
async fn golden_join_composite() {
    run_case("join_composite").await;
}

#[tokio::test]
async fn golden_bad_records() {
    run_case("bad_records").await;
}

/// Every case in the folder has a test above (a new golden file cannot be forgotten).
#[test]
fn every_golden_case_is_run() {
    let listed = include_str!("sql_golden.rs");
    for e in std::fs::read_dir(golden_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "sql") {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_owned();
            assert!(
                listed.contains(&format!("run_case(\"{stem}\")")),
                "golden case {stem} has no test"
            );
        }
    }
}
