//! The broker as in-process clients use it (no HTTP): clients with principals of their own,
//! the typed consumer, state tables inside transactions, and a damaged batch that a consumer
//! can seek past.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use weir::broker::groups::Polled;
use weir::broker::groups::{OffsetReset, SeekTo};
use weir::broker::produce::ProduceRequest;
use weir::broker::{
    Broker, Caller, Consumer, Durability, FetchRequest, JoinOptions, Operation, PayloadInput, Permission, Principal,
    RecordInput, Resource, StartAt, StateTable, StateWrite, Subscription, Transaction, TxnProduce, ValueInput,
};
use weir::error::ErrorCode;
use weir::storage::{Format, RecordKey, Store, StoreOptions};
use weir::testing::broker_in;

fn records(values: &[&'static str]) -> ProduceRequest<'static> {
    ProduceRequest {
        records: values
            .iter()
            .map(|v| RecordInput {
                key: None,
                value: ValueInput::Given(PayloadInput::Json(v)),
                headers: Vec::new(),
                partition: Some(0),
                timestamp: None,
            })
            .collect(),
        key_format: Format::Json,
        value_format: Format::Json,
        durability: None,
        idempotency: None,
    }
}

async fn topic(b: &Broker, name: &str) {
    b.create_topic(&Caller::internal(), name, Some(1), &BTreeMap::new())
        .await
        .unwrap();
}

fn options(topic: &str) -> JoinOptions {
    JoinOptions {
        subscription: Subscription::Topics([topic.to_owned()].into()),
        session_timeout: Duration::from_secs(30),
        auto_offset_reset: OffsetReset::Earliest,
        strategy: Default::default(),
        auto_commit: false,
        streaming: false,
        resume: Default::default(),
    }
}

fn fetch_at(offset: u64) -> FetchRequest {
    FetchRequest {
        start: StartAt::Offset(offset),
        max_records: 100,
        max_bytes: 1 << 20,
        wait: Duration::ZERO,
    }
}

fn values(f: &weir::broker::FetchResult) -> Vec<String> {
    f.records()
        .map(|(_, r)| String::from_utf8(r.value.unwrap().bytes.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn clients_act_as_their_own_principal_with_only_their_grants() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker_in(dir.path()).await;
    topic(&b, "allowed").await;
    topic(&b, "other").await;
    let client = Caller::with(
        Principal::Connector { name: "c1".into() },
        vec![Permission::literal(Resource::Topic, "allowed", &[Operation::Write])],
    );
    b.produce(&client, "allowed", records(&["1"])).await.unwrap();
    let e = b.produce(&client, "other", records(&["1"])).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    // Its state namespace is its own principal's.
    let own = StateTable::new("connector:c1", "offsets").unwrap();
    let foreign = StateTable::new("connector:c2", "offsets").unwrap();
    b.state_write(
        &client,
        vec![StateWrite::Put {
            table: own.clone(),
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        }],
        Durability::Wal,
    )
    .await
    .unwrap();
    assert_eq!(b.state_get(&client, &own, b"k").unwrap(), Some(b"v".to_vec()));
    let e = b.state_get(&client, &foreign, b"k").unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    b.close().await;
}

#[tokio::test]
async fn state_changes_commit_with_records_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker_in(dir.path()).await;
    topic(&b, "out").await;
    let me = Caller::internal();
    let t = StateTable::new("query:q1", "agg").unwrap();
    let put = |k: &str, v: &str| StateWrite::Put {
        table: t.clone(),
        key: k.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    };
    let txn = Transaction {
        produce: vec![TxnProduce {
            topic: "out".into(),
            request: records(&["{\"n\":1}"]),
        }],
        commit: None,
        state: vec![put("a/1", "1"), put("a/2", "2"), put("b/1", "3")],
        durability: None,
    };
    let out = b.transact(&me, txn).await.unwrap();
    assert_eq!(out.produce[0].results[0].offset, 0);
    let mut seen = Vec::new();
    b.state_scan_prefix(&me, &t, b"a/", |k, v| {
        seen.push((k.to_vec(), v.to_vec()));
        true
    })
    .unwrap();
    assert_eq!(
        seen,
        [(b"a/1".to_vec(), b"1".to_vec()), (b"a/2".to_vec(), b"2".to_vec())]
    );
    // A record that cannot be written fails the state changes with it.
    let bad = Transaction {
        produce: vec![TxnProduce {
            topic: "out".into(),
            request: records(&["not json"]),
        }],
        commit: None,
        state: vec![put("c/1", "x")],
        durability: None,
    };
    let mut bad = bad;
    bad.produce[0].request.records[0].value = ValueInput::Given(PayloadInput::Bytes(b"{"));
    assert!(b.transact(&me, bad).await.is_err());
    assert_eq!(b.state_get(&me, &t, b"c/1").unwrap(), None);
    // Ranges and deletes.
    b.state_write(
        &me,
        vec![StateWrite::DeleteRange {
            table: t.clone(),
            from: b"a/".to_vec(),
            to: Some(b"a/2".to_vec()),
        }],
        Durability::Wal,
    )
    .await
    .unwrap();
    let mut keys = Vec::new();
    b.state_scan(&me, &t, Bound::Unbounded, Bound::Included(b"b/1"), |k, _| {
        keys.push(k.to_vec());
        true
    })
    .unwrap();
    assert_eq!(keys, [b"a/2".to_vec(), b"b/1".to_vec()]);
    assert!(b.state_bytes(&me, "query:q1").unwrap() > 0);
    b.state_write(
        &me,
        vec![StateWrite::DeleteNamespace {
            namespace: "query:q1".into(),
        }],
        Durability::Wal,
    )
    .await
    .unwrap();
    assert_eq!(b.state_bytes(&me, "query:q1").unwrap(), 0);
    b.close().await;
}

#[tokio::test]
async fn prepared_transactions_merged_are_written_as_one_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker_in(dir.path()).await;
    topic(&b, "m1").await;
    topic(&b, "m2").await;
    let me = Caller::internal();
    let t = StateTable::new("connector:m", "offsets").unwrap();
    let txn = |topics: &[&str], values: &[&'static str], position: &str| Transaction {
        produce: topics
            .iter()
            .map(|topic| TxnProduce {
                topic: (*topic).into(),
                request: records(values),
            })
            .collect(),
        commit: None,
        state: vec![StateWrite::Put {
            table: t.clone(),
            key: b"file".to_vec(),
            value: position.as_bytes().to_vec(),
        }],
        durability: None,
    };
    let mut first = b.prepare(&me, txn(&["m1"], &["1", "2"], "10")).unwrap();
    let second = b.prepare(&me, txn(&["m2", "m1"], &["3"], "20")).unwrap();
    first.merge(second).unwrap();
    let out = b.write_prepared(first).await.unwrap();
    let acks: Vec<(String, Vec<u64>)> = out
        .produce
        .iter()
        .map(|p| (p.topic.clone(), p.results.iter().map(|r| r.offset).collect()))
        .collect();
    let expected = [("m1", vec![0, 1]), ("m2", vec![0]), ("m1", vec![2])];
    let expected: Vec<(String, Vec<u64>)> = expected.into_iter().map(|(t, o)| (t.to_owned(), o)).collect();
    assert_eq!(
        acks, expected,
        "each record's ack, in the order the transactions were merged"
    );
    let m1 = b.fetch(&me, "m1", 0, fetch_at(0)).await.unwrap();
    assert_eq!(values(&m1), ["1", "2", "3"]);
    // The later transaction's state change is the one that stays.
    assert_eq!(b.state_get(&me, &t, b"file").unwrap(), Some(b"20".to_vec()));
    b.close().await;
}

#[tokio::test]
async fn a_consumer_polls_commits_and_leaves_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker_in(dir.path()).await;
    topic(&b, "in").await;
    b.produce(&Caller::internal(), "in", records(&["1", "2"]))
        .await
        .unwrap();
    let mut c = Consumer::join(&b, Caller::internal(), "g", options("in"))
        .await
        .unwrap();
    let Polled::Records(fetched) = c.poll(10, 1 << 20, Duration::from_millis(100)).await.unwrap() else {
        panic!("a first poll after joining brings records");
    };
    assert_eq!(values(&fetched[0]), ["1", "2"]);
    c.commit(None, None).await.unwrap();
    // A second member joins: the first learns of it as a typed outcome.
    let other = Consumer::join(&b, Caller::internal(), "g", options("in"))
        .await
        .unwrap();
    assert!(matches!(
        c.poll(10, 1 << 20, Duration::ZERO).await.unwrap(),
        Polled::Rebalanced
    ));
    assert_eq!(c.view().generation, other.view().generation);
    drop(other);
    drop(c);
    let d = b.describe_group(&Caller::internal(), "g").unwrap();
    assert!(d.members.is_empty(), "dropped consumers left the group");
    assert_eq!(d.partitions[0].committed_offset, Some(2));
    b.close().await;
}

#[tokio::test]
async fn a_damaged_batch_is_reported_and_can_be_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker_in(dir.path()).await;
    topic(&b, "t").await;
    for v in [["1", "2"], ["3", "4"], ["5", "6"]] {
        b.produce(&Caller::internal(), "t", records(&v)).await.unwrap();
    }
    b.close().await;
    drop(b);
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let d: serde_json::Value = serde_json::from_slice(&store.topics().unwrap()[0]).unwrap();
        let key = RecordKey {
            topic_id: d["id"].as_u64().unwrap() as u32,
            partition: 0,
            base_offset: 2,
        };
        store.overwrite_batch_for_tests(key, b"\x01garbage").unwrap();
    }
    let b = broker_in(dir.path()).await;
    let me = Caller::internal();
    let before = b.fetch(&me, "t", 0, fetch_at(0)).await.unwrap();
    assert_eq!(values(&before), ["1", "2"], "records before the damage are served");
    let e = b.fetch(&me, "t", 0, fetch_at(2)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CorruptRecordBatch);
    let ext = e.extensions.as_deref().unwrap();
    assert_eq!(
        (
            ext["topic"].as_str(),
            ext["offset"].as_u64(),
            ext["next_offset"].as_u64()
        ),
        (Some("t"), Some(2), Some(4))
    );
    assert!(e.detail.contains("seek to offset 4"), "{}", e.detail);
    // A group member gets the same error, seeks past it, and goes on.
    let mut c = Consumer::join(&b, me.clone(), "g", options("t")).await.unwrap();
    assert!(matches!(
        c.poll(10, 1 << 20, Duration::ZERO).await,
        Ok(Polled::Records(_))
    ));
    let e = c.poll(10, 1 << 20, Duration::ZERO).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CorruptRecordBatch);
    c.seek(SeekTo::Offset(4), None).await.unwrap();
    let Polled::Records(after) = c.poll(10, 1 << 20, Duration::ZERO).await.unwrap() else {
        panic!("records after the damaged batch");
    };
    assert_eq!(values(&after[0]), ["5", "6"]);
    drop(c);
    b.close().await;
}

/// The timestamp of record `i` of [`numbered`]: recent (retention keeps it), its own per record.
fn stamp(i: u64) -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        now.as_millis() as i64 - 60_000
    });
    base + i as i64 * 7
}

/// A batch of `n` JSON numbers from `first`, each with a timestamp of its own.
fn numbered(first: u64, n: u64) -> ProduceRequest<'static> {
    let mut req = records(&[]);
    req.records = (first..first + n)
        .map(|i| RecordInput {
            key: None,
            value: ValueInput::Given(PayloadInput::Json(Box::leak(i.to_string().into_boxed_str()))),
            headers: Vec::new(),
            partition: Some(0),
            timestamp: Some(stamp(i)),
        })
        .collect();
    req
}

#[tokio::test]
async fn reads_that_start_and_end_inside_stored_batches_return_exactly_what_was_asked() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker_in(dir.path()).await;
    topic(&b, "t").await;
    let me = Caller::internal();
    for first in [0, 10, 20] {
        b.produce(&me, "t", numbered(first, 10)).await.unwrap();
    }
    // (start, max records, max bytes) → the offsets read.
    for (start, max, bytes, want) in [
        (3, 4, 1 << 20, 3..7),
        (8, 5, 1 << 20, 8..13),
        (5, 100, 1 << 20, 5..30),
        (27, 2, 1 << 20, 27..29),
        (12, 100, 5, 12..14),
        (0, 1, 1, 0..1),
    ] {
        let req = FetchRequest {
            max_records: max,
            max_bytes: bytes,
            ..fetch_at(start)
        };
        let f = b.fetch(&me, "t", 0, req).await.unwrap();
        let got: Vec<(u64, i64, String)> = f
            .records()
            .map(|(o, r)| {
                (
                    o,
                    r.timestamp,
                    String::from_utf8(r.value.unwrap().bytes.to_vec()).unwrap(),
                )
            })
            .collect();
        let expected: Vec<(u64, i64, String)> = want.clone().map(|o| (o, stamp(o), o.to_string())).collect();
        assert_eq!(
            got, expected,
            "read from {start}, at most {max} records and {bytes} bytes"
        );
        assert_eq!(
            (f.start_offset, f.next_offset, f.count),
            (want.start, want.end, (want.end - want.start) as usize)
        );
    }
    b.close().await;
}
