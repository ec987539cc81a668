//! Produce and fetch through HTTP: formats, partitioning, long-polling, NDJSON, idempotency and
//! every bad input's error code.
mod common;

use std::time::{Duration, Instant};

use common::{Server, client, expect_problem};
use serde_json::{Value, json};

/// Kafka's partition for a key whose murmur2 is `h` (values from Kafka's own tests).
fn kafka_partition(h: i32, n: u32) -> u64 {
    u64::from(((h as u32) & 0x7fff_ffff) % n)
}

#[tokio::test]
async fn produce_and_fetch_round_trip_in_every_format() {
    let s = Server::start();
    s.create_topic("events", 1, json!({})).await;
    let r = s
        .produce(
            "events",
            json!({"records": [
                {"key": {"user": 7}, "value": {"page": "/home", "n": [1, 2.5, null]}, "headers": {"source": "web", "trace": "abc"}, "timestamp": 1_732_500_000_000i64},
                {"value": "plain string"},
                {"value": null},
                {"key": "k", "value": 42}
            ]}),
        )
        .await;
    assert_eq!(r["failed"], 0);
    let offsets: Vec<_> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [0, 1, 2, 3]);
    assert_eq!(r["results"][0]["timestamp"], 1_732_500_000_000i64);

    let f = s.fetch("events", 0, "offset=0").await;
    assert_eq!(f["next_offset"], 4);
    assert_eq!(f["high_watermark"], 4);
    let recs = f["records"].as_array().unwrap();
    assert_eq!(recs.len(), 4);
    assert_eq!(
        recs[0],
        json!({"topic": "events", "partition": 0, "offset": 0, "timestamp": 1_732_500_000_000i64,
               "key": {"user": 7}, "value": {"page": "/home", "n": [1, 2.5, null]},
               "headers": {"source": "web", "trace": "abc"}})
    );
    assert_eq!(recs[1]["value"], "plain string");
    assert_eq!(recs[1]["key"], Value::Null);
    assert_eq!(recs[2]["value"], Value::Null);
    assert_eq!(recs[3]["value"], 42);

    // string and binary formats, rendered back as produced.
    let r = s
        .produce(
            "events",
            json!({"key_format": "string", "value_format": "binary",
                   "records": [{"key": "user-1", "value": "AAEC/w=="}]}),
        )
        .await;
    assert_eq!(r["results"][0]["offset"], 4);
    let f = s.fetch("events", 0, "offset=4").await;
    assert_eq!(f["records"][0]["key"], "user-1");
    assert_eq!(f["records"][0]["key_format"], "string");
    assert_eq!(f["records"][0]["value"], "AAEC/w==");
    assert_eq!(f["records"][0]["value_format"], "binary");
    // Render JSON values as base64 on request.
    let f = s.fetch("events", 0, "offset=3&max_records=1&value_format=binary").await;
    assert_eq!(f["records"][0]["value"], "NDI=");
    assert_eq!(f["records"].as_array().unwrap().len(), 1);
    assert_eq!(f["next_offset"], 4);
}

#[tokio::test]
async fn keyed_records_land_where_kafka_puts_them() {
    let s = Server::start();
    s.create_topic("keyed", 7, json!({})).await;
    let cases = [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("abc", 479_470_107),
    ];
    let records: Vec<Value> = cases.iter().map(|(k, _)| json!({"key": k, "value": 1})).collect();
    let r = s
        .produce("keyed", json!({"key_format": "string", "records": records}))
        .await;
    for (i, (k, h)) in cases.iter().enumerate() {
        assert_eq!(r["results"][i]["partition"], kafka_partition(*h, 7), "key {k}");
    }
    // Same key, same partition, every time.
    let again = s
        .produce(
            "keyed",
            json!({"key_format": "string", "records": [{"key": "foobar", "value": 2}]}),
        )
        .await;
    assert_eq!(again["results"][0]["partition"], r["results"][1]["partition"]);
    // Keyless records spread over all partitions across requests.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..14 {
        let r = s.produce("keyed", json!({"records": [{"value": "x"}]})).await;
        seen.insert(r["results"][0]["partition"].as_u64().unwrap());
    }
    assert_eq!(seen.len(), 7);
}

/// Several MiB of log (several time-index entries), timestamps that rise but with one outlier
/// far ahead of its neighbours: every lookup returns the first record at or after its timestamp, before and after a
/// `kill -9` and restart, as a brute-force search over what was produced says.
#[tokio::test]
async fn fetch_by_timestamp_over_a_large_partition_with_an_outlier() {
    let mut s = Server::start();
    // Kept for ever: the timestamps are from 1970, which retention would otherwise remove.
    s.create_topic("tsl", 1, json!({"retention.ms": -1})).await;
    let value = "v".repeat(1000);
    let mut stamps = Vec::new();
    for r in 0..30i64 {
        let records: Vec<Value> = (0..100i64)
            .map(|i| {
                let offset = r * 100 + i;
                let ts = if offset == 150 {
                    10_000_000
                } else {
                    10_000 + offset * 10
                };
                stamps.push(ts);
                json!({"value": value, "timestamp": ts})
            })
            .collect();
        s.produce("tsl", json!({ "records": records })).await;
    }
    let targets = [
        0, 10_000, 11_495, 11_500, 11_501, 25_000, 34_990, 35_000, 35_001, 39_990, 40_000, 9_999_999, 10_000_000,
        10_000_001,
    ];
    for round in ["before restart", "after restart"] {
        for t in targets {
            let want = stamps.iter().position(|&ts| ts >= t);
            let f = s.fetch("tsl", 0, &format!("timestamp={t}&max_records=1")).await;
            match want {
                Some(offset) => assert_eq!(f["records"][0]["offset"], offset, "{round}: timestamp {t}"),
                None => assert_eq!(f["records"], json!([]), "{round}: timestamp {t}"),
            }
        }
        // The index is written with the records: it survives kill -9 like them.
        s.kill9();
        s.restart();
    }
}

#[tokio::test]
async fn fetch_by_timestamp_earliest_latest_and_limits() {
    let s = Server::start();
    s.create_topic("ts", 1, json!({})).await;
    let records: Vec<Value> = (0..10)
        .map(|i| json!({"value": i, "timestamp": 1000 + i * 100}))
        .collect();
    s.produce("ts", json!({"records": records})).await;
    let f = s.fetch("ts", 0, "timestamp=1450").await;
    assert_eq!(f["records"][0]["offset"], 5);
    assert_eq!(f["records"][0]["timestamp"], 1500);
    let f = s.fetch("ts", 0, "timestamp=999999").await;
    assert_eq!(f["records"], json!([]));
    assert_eq!(f["next_offset"], 10);
    let f = s.fetch("ts", 0, "offset=earliest&max_records=3").await;
    assert_eq!(f["records"].as_array().unwrap().len(), 3);
    assert_eq!(f["next_offset"], 3);
    let f = s.fetch("ts", 0, "offset=latest").await;
    assert_eq!(f["records"], json!([]));
    assert_eq!(f["next_offset"], 10);
    // max_bytes: at least one record, then stop before exceeding.
    let f = s.fetch("ts", 0, "offset=0&max_bytes=1").await;
    assert_eq!(f["records"].as_array().unwrap().len(), 1);
    let f = s.fetch("ts", 0, "offset=10").await;
    assert_eq!(f["records"], json!([]));
}

#[tokio::test]
async fn long_poll_wakes_on_produce_and_times_out_empty() {
    let s = Server::start();
    s.create_topic("lp", 2, json!({})).await;
    // Times out empty.
    let started = Instant::now();
    let f = s.fetch("lp", 0, "offset=0&wait_ms=300").await;
    assert_eq!(f["records"], json!([]));
    assert!(started.elapsed() >= Duration::from_millis(290));

    // Wakes when a record arrives on its partition.
    let url = s.url("/v1/topics/lp/partitions/1/records?offset=0&wait_ms=20000");
    let poll = tokio::spawn(async move {
        let r = client().get(url).send().await.unwrap();
        (Instant::now(), r.json::<Value>().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the poll returned before any record was written");
    let produced_at = Instant::now();
    s.produce("lp", json!({"records": [{"value": "wake", "partition": 1}]}))
        .await;
    let (woke_at, f) = poll.await.unwrap();
    assert_eq!(f["records"][0]["value"], "wake");
    let waited = woke_at.saturating_duration_since(produced_at);
    assert!(waited < Duration::from_secs(5), "long-poll took {waited:?} to wake");
}

#[tokio::test]
async fn raw_bodies_are_single_records() {
    let s = Server::start();
    s.create_topic("raw", 3, json!({})).await;
    let post = |ct: &'static str, q: &str, body: Vec<u8>| {
        client()
            .post(s.url(&format!("/v1/topics/raw/records{q}")))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r: Value = post(
        "application/octet-stream",
        "?key=foobar",
        br#"{"event": "signup"}"#.to_vec(),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(r["results"][0]["partition"], kafka_partition(-790_332_482, 3));
    let p = r["results"][0]["partition"].as_u64().unwrap() as u32;
    let f = s.fetch("raw", p, "offset=0").await;
    assert_eq!(f["records"][0]["value"], json!({"event": "signup"}));
    assert_eq!(f["records"][0]["key"], "foobar");
    assert_eq!(f["records"][0]["key_format"], "string");

    // foobar's partition is 0 for 3 partitions; use another one for the next two records.
    assert_eq!(p, 0);
    let r: Value = post("text/plain", "?partition=2", b"hello world".to_vec())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["results"][0]["partition"], 2);
    let r: Value = post("application/octet-stream", "?partition=2", vec![0, 159, 146, 150])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["results"][0]["offset"], 1);
    let f = s.fetch("raw", 2, "offset=0").await;
    assert_eq!(f["records"][0]["value"], "hello world");
    assert_eq!(f["records"][0]["value_format"], "string");
    assert_eq!(f["records"][1]["value"], "AJ+Slg==");
    assert_eq!(f["records"][1]["value_format"], "binary");
    let p = expect_problem(
        post("text/plain", "?partition=9", b"x".to_vec()).await.unwrap(),
        404,
        "partition_not_found",
    )
    .await;
    assert_eq!(p["field"], "records[0].partition");
}

#[tokio::test]
async fn ndjson_stream_is_acknowledged_line_by_line() {
    let s = Server::start();
    s.create_topic("nd", 1, json!({})).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let url = s.url("/v1/topics/nd/records");
    let req = tokio::spawn(async move {
        client()
            .post(url)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap()
    });
    tx.send(Ok(b"{\"value\": 1}\n{\"value\": 2}\n".to_vec())).await.unwrap();
    let resp = req.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let mut stream = resp.bytes_stream();
    use futures::StreamExt;
    let mut text = String::new();
    // The first two acknowledgements arrive while the request body is still open.
    while text.matches('\n').count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    tx.send(Ok(b"not json\n{\"value\": 3, \"partition\": 5}\n{\"value\":".to_vec()))
        .await
        .unwrap();
    tx.send(Ok(b" 4}\n".to_vec())).await.unwrap();
    drop(tx);
    while let Some(chunk) = stream.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[0]["offset"], 0);
    assert_eq!(lines[1]["offset"], 1);
    assert_eq!(lines[2]["error"]["code"], "invalid_json");
    assert_eq!(lines[3]["error"]["code"], "partition_not_found");
    assert_eq!(lines[3]["error"]["field"], "partition");
    assert_eq!(lines[4]["offset"], 2);
    let f = s.fetch("nd", 0, "offset=0").await;
    let values: Vec<_> = f["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(values, [json!(1), json!(2), json!(4)]);
}

#[tokio::test]
async fn idempotent_retry_appends_nothing() {
    let s = Server::start();
    s.create_topic("idem", 1, json!({})).await;
    let body = json!({"records": [{"value": "a"}, {"value": "b"}]});
    let send = |key: &'static str, body: Value| {
        client()
            .post(s.url("/v1/topics/idem/records"))
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send("order-981", body.clone()).await.unwrap();
    assert!(first.headers().get("idempotency-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let second = send("order-981", body.clone()).await.unwrap();
    assert_eq!(second.headers()["idempotency-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second);
    let f = s.fetch("idem", 0, "offset=0").await;
    assert_eq!(f["records"].as_array().unwrap().len(), 2);
    // Concurrent retries of a new key still append once.
    let retries: Vec<_> = (0..8).map(|_| send("order-982", body.clone())).collect();
    let mut answers = Vec::new();
    for r in futures::future::join_all(retries).await {
        answers.push(r.unwrap().json::<Value>().await.unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    let f = s.fetch("idem", 0, "offset=0").await;
    assert_eq!(f["records"].as_array().unwrap().len(), 4);
    // The same key with another body is refused, and nothing is appended.
    let p = expect_problem(
        send("order-981", json!({"records": [{"value": "c"}]})).await.unwrap(),
        422,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(p["field"], "Idempotency-Key");
    // A different key appends.
    send("order-983", body).await.unwrap();
    let f = s.fetch("idem", 0, "offset=0").await;
    assert_eq!(f["records"].as_array().unwrap().len(), 6);
}

/// The replay of a request whose records went to several partitions, with one refused, gives
/// back each record's own result in request order.
#[tokio::test]
async fn idempotent_replay_keeps_per_record_results() {
    let s = Server::start();
    s.create_topic("idem-mixed", 2, json!({"max.message.bytes": 100})).await;
    let body = json!({"records": [
        {"value": 1, "partition": 1},
        {"value": 2, "partition": 0},
        {"value": "x".repeat(200), "partition": 0},
        {"value": 3, "partition": 1},
        {"value": 4, "partition": 0},
    ]});
    let send = || {
        client()
            .post(s.url("/v1/topics/idem-mixed/records"))
            .header("idempotency-key", "mixed-1")
            .json(&body)
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(first["failed"], 1, "{first}");
    let placed: Vec<(Value, Value)> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["partition"].clone(), r["offset"].clone()))
        .collect();
    assert_eq!(
        placed,
        vec![
            (json!(1), json!(0)),
            (json!(0), json!(0)),
            (Value::Null, Value::Null),
            (json!(1), json!(1)),
            (json!(0), json!(1)),
        ]
    );
    assert_eq!(first["results"][2]["error"]["code"], "record_too_large");
    let second = send().await.unwrap();
    assert_eq!(second.headers()["idempotency-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second);
}

#[tokio::test]
async fn idempotency_window_expires() {
    let s = Server::start_with(&["--idempotency-window-ms", "300", "--retention-check-interval-ms", "100"]);
    s.create_topic("w", 1, json!({})).await;
    let send = || {
        client()
            .post(s.url("/v1/topics/w/records"))
            .header("idempotency-key", "k1")
            .json(&json!({"records": [{"value": 1}]}))
            .send()
    };
    send().await.unwrap();
    send().await.unwrap();
    assert_eq!(
        s.fetch("w", 0, "offset=0").await["records"].as_array().unwrap().len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = send().await.unwrap();
    assert!(r.headers().get("idempotency-replayed").is_none());
    assert_eq!(
        s.fetch("w", 0, "offset=0").await["records"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn bad_input_gets_problem_codes_and_stores_nothing() {
    let s = Server::start_with(&["--max-request-bytes", "4096", "--max-records-per-request", "5"]);
    s.create_topic("b", 2, json!({"max.message.bytes": 100})).await;
    let post_json = |topic: &str, body: Value| {
        client()
            .post(s.url(&format!("/v1/topics/{topic}/records")))
            .json(&body)
            .send()
    };
    let post_raw = |ct: &'static str, body: Vec<u8>| {
        client()
            .post(s.url("/v1/topics/b/records"))
            .header("content-type", ct)
            .body(body)
            .send()
    };

    let p = expect_problem(
        post_json("nope", json!({"records": [{"value": 1}]})).await.unwrap(),
        404,
        "topic_not_found",
    )
    .await;
    assert_eq!(p["field"], "topic");
    let p = expect_problem(
        post_json("b", json!({"records": [{"value": 1, "partition": 2}]}))
            .await
            .unwrap(),
        404,
        "partition_not_found",
    )
    .await;
    assert_eq!(p["field"], "records[0].partition");
    let p = expect_problem(
        post_raw("application/json", b"{\"records\": [".to_vec()).await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("EOF"));
    let p = expect_problem(
        post_json("b", json!({"records": [{"value": 1, "headers": {"h": 5}}]}))
            .await
            .unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert_eq!(p["field"], "records[0].headers.h");
    let p = expect_problem(
        post_json("b", json!({"records": [{"key": 1}]})).await.unwrap(),
        400,
        "invalid_record",
    )
    .await;
    assert_eq!(p["field"], "records[0].value");
    let p = expect_problem(
        post_json("b", json!({"records": []})).await.unwrap(),
        400,
        "invalid_record",
    )
    .await;
    assert_eq!(p["field"], "records");
    let p = expect_problem(
        post_raw("application/xml", b"<r/>".to_vec()).await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(p["field"], "Content-Type");
    let p = expect_problem(
        post_json("b", json!({"value_format": "binary", "records": [{"value": "***"}]}))
            .await
            .unwrap(),
        400,
        "invalid_base64",
    )
    .await;
    assert_eq!(p["field"], "records[0].value");
    let p = expect_problem(
        post_json("b", json!({"value_format": "string", "records": [{"value": 5}]}))
            .await
            .unwrap(),
        400,
        "invalid_record",
    )
    .await;
    assert_eq!(p["field"], "records[0].value");
    let p = expect_problem(
        post_json("b", json!({"records": [{"value": "x".repeat(200)}]}))
            .await
            .unwrap(),
        413,
        "record_too_large",
    )
    .await;
    assert_eq!(p["field"], "records[0].value");
    let p = expect_problem(
        post_raw("application/octet-stream", vec![b'x'; 5000]).await.unwrap(),
        413,
        "request_too_large",
    )
    .await;
    assert_eq!(p["field"], "body");
    let many: Vec<Value> = (0..6).map(|i| json!({"value": i})).collect();
    let p = expect_problem(
        post_json("b", json!({"records": many})).await.unwrap(),
        413,
        "too_many_records",
    )
    .await;
    assert_eq!(p["field"], "records");
    let p = expect_problem(
        post_json("b", json!({"records": [{"value": 1, "timestamp": -5}]}))
            .await
            .unwrap(),
        400,
        "invalid_record",
    )
    .await;
    assert_eq!(p["field"], "records[0].timestamp");
    let p = expect_problem(
        post_json("b", json!({"records": [{"value": 1}], "extra": true}))
            .await
            .unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("extra"));

    // Partial failure: the good records are written, the response says how many failed.
    let r = post_json(
        "b",
        json!({"records": [{"value": 1, "partition": 0}, {"value": "x".repeat(200)}, {"value": 3, "partition": 0}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["failed"], 1);
    assert_eq!(v["results"][0]["offset"], 0);
    assert_eq!(v["results"][1]["error"]["code"], "record_too_large");
    assert_eq!(v["results"][1]["error"]["field"], "records[1].value");
    assert_eq!(v["results"][2]["offset"], 1);

    // Fetch errors.
    let get = |path: &str| client().get(s.url(path)).send();
    let p = expect_problem(
        get("/v1/topics/b/partitions/0/records?offset=3").await.unwrap(),
        416,
        "offset_out_of_range",
    )
    .await;
    assert_eq!(p["field"], "offset");
    expect_problem(
        get("/v1/topics/b/partitions/7/records").await.unwrap(),
        404,
        "partition_not_found",
    )
    .await;
    let p = expect_problem(
        get("/v1/topics/b/partitions/x/records").await.unwrap(),
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(p["field"], "partition");
    let p = expect_problem(
        get("/v1/topics/b/partitions/0/records?offset=soon").await.unwrap(),
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(p["field"], "offset");
    let p = expect_problem(
        get("/v1/topics/b/partitions/0/records?max_records=-1").await.unwrap(),
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(p["field"], "max_records");
    let p = expect_problem(
        get("/v1/topics/b/partitions/0/records?ofset=1").await.unwrap(),
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(p["field"], "ofset");
    expect_problem(
        get("/v1/topics/zz/partitions/0/records").await.unwrap(),
        404,
        "topic_not_found",
    )
    .await;

    // Only the two good records of the partial request were stored.
    let d: Value = get("/v1/topics/b").await.unwrap().json().await.unwrap();
    let total: u64 = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["records"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2);
}

/// A client that sends `Expect: 100-continue` (as `curl -T` does) is told to go on before it
/// sends its NDJSON lines, rather than answered before it has sent any.
#[tokio::test]
async fn ndjson_upload_expecting_continue_is_told_to_continue() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start();
    s.create_topic("nd-expect", 1, json!({})).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/topics/nd-expect/records HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-ndjson\r\n\
         transfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("an interim answer before the body is sent")
            .unwrap();
        assert!(n > 0, "connection closed");
        got.extend_from_slice(&buf[..n]);
    }
    let interim = String::from_utf8_lossy(&got).to_string();
    assert!(interim.starts_with("HTTP/1.1 100 Continue\r\n"), "{interim}");
    let lines = b"{\"value\":1}\n{\"value\":2}\n";
    let body = format!(
        "{:x}\r\n{}\r\n0\r\n\r\n",
        lines.len(),
        std::str::from_utf8(lines).unwrap()
    );
    conn.write_all(body.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let text = loop {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the answer")
            .unwrap();
        rest.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&rest).to_string();
        // The chunked answer ends with its last, empty chunk.
        if n == 0 || text.ends_with("0\r\n\r\n") {
            break text;
        }
    };
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\"offset\":0") && text.contains("\"offset\":1"), "{text}");
    let f = s.fetch("nd-expect", 0, "offset=0").await;
    assert_eq!(f["records"].as_array().unwrap().len(), 2);
}

/// `results=partitions` answers a large batch with each partition's first offset and count (as
/// Kafka's produce response does), failed records by index, and the records are where it says.
#[tokio::test]
async fn partitions_answer_is_compact_and_true() {
    let s = Server::start();
    s.create_topic("compact", 3, json!({})).await;
    let mut records: Vec<Value> = (0..1000)
        .map(|i| json!({"key": format!("k{}", i % 7), "value": base64_of(&format!("v{i}"))}))
        .collect();
    records[5]["value"] = json!("not base64!");
    let body = json!({"value_format": "binary", "key_format": "string", "records": records});
    let send = |query: &'static str| {
        client()
            .post(s.url(&format!("/v1/topics/compact/records{query}")))
            .header("idempotency-key", "batch-1")
            .json(&body)
            .send()
    };
    let r = send("?results=partitions").await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.len() < 400, "{} bytes: {text}", text.len());
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["failed"], 1);
    assert_eq!(answer["errors"][0]["index"], 5);
    assert_eq!(answer["errors"][0]["error"]["code"], "invalid_base64");
    assert_eq!(answer["errors"][0]["error"]["field"], "records[5].value");
    let runs = answer["partitions"].as_array().unwrap();
    let total: u64 = runs.iter().map(|p| p["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 999);
    for run in runs {
        let (p, base, count) = (
            run["partition"].as_u64().unwrap(),
            run["base_offset"].as_u64().unwrap(),
            run["count"].as_u64().unwrap(),
        );
        let f = s
            .fetch("compact", p as u32, &format!("offset={base}&max_records=1000"))
            .await;
        assert_eq!(f["records"].as_array().unwrap().len() as u64, count, "partition {p}");
        assert_eq!(f["records"][0]["offset"], base);
    }
    // A replay renders the stored outcome in the shape asked for, and the records shape agrees.
    let replayed = send("?results=partitions").await.unwrap();
    assert_eq!(replayed.headers()["idempotency-replayed"], "true");
    assert_eq!(replayed.json::<Value>().await.unwrap(), answer);
    let per_record: Value = send("").await.unwrap().json().await.unwrap();
    assert_eq!(per_record["results"].as_array().unwrap().len(), 1000);
    assert_eq!(per_record["results"][5]["error"]["code"], "invalid_base64");

    // No shape but these two, and none for NDJSON streams, which answer per line.
    let bad = client()
        .post(s.url("/v1/topics/compact/records?results=summary"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(expect_problem(bad, 400, "invalid_parameter").await["field"], "results");
    let ndjson = client()
        .post(s.url("/v1/topics/compact/records?results=partitions"))
        .header("content-type", "application/x-ndjson")
        .body("{\"value\":1}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_problem(ndjson, 400, "invalid_parameter").await["field"],
        "results"
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
