//! Streams through the real server: SQL errors with positions, push queries over NDJSON and
//! SSE (LIMIT, DELETE), pull queries, query administration, the errors topic, idle window
//! closing, the four seed workloads resuming after `kill -9` with results identical to an
//! uninterrupted run, and a query waiting out its produce quota.
mod common;

use std::time::{Duration, Instant};

use common::{Server, client, expect_problem, unique};
use futures::StreamExt as _;
use serde_json::{Value, json};

async fn sql(s: &Server, text: &str) -> reqwest::Response {
    client()
        .post(s.url("/v1/sql"))
        .json(&json!({"sql": text}))
        .send()
        .await
        .unwrap()
}

async fn sql_ok(s: &Server, text: &str) -> Value {
    let r = sql(s, text).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{text}: {v}");
    v
}

/// A topic kept forever (records with old timestamps must not be deleted by retention).
async fn topic(s: &Server, name: &str) {
    s.create_topic(name, 1, json!({"retention.ms": -1})).await;
}

async fn produce(s: &Server, topic: &str, records: &[Value]) {
    for chunk in records.chunks(500) {
        s.produce(topic, json!({"records": chunk})).await;
    }
}

/// Reads NDJSON lines of a streaming answer until `n` lines or the end line.
struct Lines {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl Lines {
    async fn next(&mut self) -> Value {
        loop {
            if let Some(i) = self.buf.find('\n') {
                let line: String = self.buf.drain(..=i).collect();
                return serde_json::from_str(line.trim()).unwrap();
            }
            let chunk = tokio::time::timeout(Duration::from_secs(15), self.stream.next())
                .await
                .expect("a line within 15 s")
                .expect("the stream ended early")
                .unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn push(s: &Server, text: &str, earliest: bool) -> Lines {
    let mut body = json!({"sql": text});
    if earliest {
        body["properties"] = json!({"auto.offset.reset": "earliest"});
    }
    let r = client().post(s.url("/v1/query")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{text}");
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    Lines {
        stream: r.bytes_stream().boxed(),
        buf: String::new(),
    }
}

#[tokio::test]
async fn sql_errors_point_at_line_and_column() {
    let s = Server::start();
    let t = unique("errs");
    topic(&s, &t).await;
    let r = sql(
        &s,
        &format!("CREATE STREAM e1 (a TEXT) WITH (topic = '{t}');\n  SELEC 1;"),
    )
    .await;
    let p = expect_problem(r, 400, "sql_syntax_error").await;
    assert_eq!((p["line"].as_u64(), p["column"].as_u64()), (Some(2), Some(3)), "{p}");
    let r = sql(
        &s,
        &format!(
            "CREATE STREAM e2 (a TEXT, b BIGINT) WITH (topic = '{t}');\nCREATE STREAM e3 AS\n  SELECT a, nope FROM e2;"
        ),
    )
    .await;
    let p = expect_problem(r, 400, "sql_invalid").await;
    assert!(p["detail"].as_str().unwrap().contains("unknown column 'nope'"), "{p}");
    assert_eq!((p["line"].as_u64(), p["column"].as_u64()), (Some(3), Some(13)), "{p}");
    assert_eq!(p["statement_index"], 1);
    assert_eq!(
        p["completed"][0]["status"], "ok",
        "the first statement took effect: {p}"
    );
    let r = sql(&s, &format!("CREATE STREAM e2 (a TEXT) WITH (topic = '{t}')")).await;
    expect_problem(r, 409, "stream_already_exists").await;
    let r = sql(&s, "CREATE STREAM e4 (a TEXT) WITH (topic = 'no-such-topic')").await;
    let p = expect_problem(r, 400, "sql_invalid").await;
    assert!(
        p["detail"].as_str().unwrap().contains("partitions"),
        "says how to have it created: {p}"
    );
    let r = sql(&s, "CREATE TABLE x AS SELECT a FROM e2").await;
    expect_problem(r, 400, "sql_invalid").await;
    let r = sql(&s, "DROP STREAM nothing_here").await;
    expect_problem(r, 404, "stream_not_found").await;
}

#[tokio::test]
async fn push_queries_stream_rows_over_ndjson_and_sse() {
    let s = Server::start();
    let t = unique("push");
    topic(&s, &t).await;
    sql_ok(
        &s,
        &format!("CREATE STREAM p (user_id TEXT, amount DOUBLE) WITH (topic = '{t}')"),
    )
    .await;
    let mut q = push(
        &s,
        "SELECT user_id, amount * 2 AS twice FROM p WHERE amount > 1 EMIT CHANGES LIMIT 2",
        false,
    )
    .await;
    let header = q.next().await;
    let id = header["header"]["query_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("transient_"), "{header}");
    assert_eq!(
        header["header"]["columns"][1],
        json!({"name": "twice", "type": "DOUBLE"})
    );
    produce(
        &s,
        &t,
        &[
            json!({"value": {"user_id": "a", "amount": 0.5}}),
            json!({"value": {"user_id": "b", "amount": 2}}),
            json!({"value": {"user_id": "c", "amount": 3}}),
            json!({"value": {"user_id": "d", "amount": 4}}),
        ],
    )
    .await;
    assert_eq!(q.next().await, json!({"row": {"user_id": "b", "twice": 4.0}}));
    assert_eq!(q.next().await, json!({"row": {"user_id": "c", "twice": 6.0}}));
    assert_eq!(q.next().await, json!({"end": {"reason": "limit reached"}}));

    // From the earliest record, as Server-Sent Events.
    let r = client()
        .post(s.url("/v1/query"))
        .header("accept", "text/event-stream")
        .json(&json!({"sql": "SELECT user_id FROM p EMIT CHANGES LIMIT 2", "properties": {"auto.offset.reset": "earliest"}}))
        .send()
        .await
        .unwrap();
    let mut ev = common::Events::new(r);
    let (_, kind, data) = ev.next().await;
    assert_eq!(
        (kind.as_str(), data["columns"][0]["name"].as_str()),
        ("header", Some("user_id"))
    );
    assert_eq!(ev.next().await.2, json!({"user_id": "a"}));
    assert_eq!(ev.next().await.2, json!({"user_id": "b"}));
    let (_, kind, data) = ev.next().await;
    assert_eq!((kind.as_str(), data["reason"].as_str()), ("end", Some("limit reached")));

    // DELETE ends a push query, which says so.
    let mut q = push(&s, "SELECT * FROM p EMIT CHANGES", false).await;
    let id = q.next().await["header"]["query_id"].as_str().unwrap().to_owned();
    let r = client()
        .delete(s.url(&format!("/v1/queries/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(q.next().await, json!({"end": {"reason": "terminated"}}));
    // Many push queries over one topic at once.
    let mut many = Vec::new();
    for _ in 0..100 {
        many.push(push(&s, "SELECT user_id FROM p EMIT CHANGES LIMIT 1", false).await);
    }
    for q in &mut many {
        q.next().await;
    }
    let started = Instant::now();
    produce(&s, &t, &[json!({"value": {"user_id": "z", "amount": 1}})]).await;
    for q in &mut many {
        assert_eq!(q.next().await, json!({"row": {"user_id": "z"}}));
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "100 push queries were served in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn pull_queries_answer_with_current_rows() {
    let s = Server::start();
    let (b, c) = (unique("pull-buys"), unique("pull-cust"));
    topic(&s, &b).await;
    topic(&s, &c).await;
    produce(
        &s,
        &c,
        &[
            json!({"key": "u1", "value": {"id": "u1", "name": "Ann"}}),
            json!({"key": "u2", "value": {"id": "u2", "name": "Bo"}}),
            json!({"key": "u1", "value": {"id": "u1", "name": "Anna"}}),
            json!({"key": "u2", "value": null}),
        ],
    )
    .await;
    produce(
        &s,
        &b,
        &[
            json!({"value": {"user": "a", "amount": 2}}),
            json!({"value": {"user": "b", "amount": 5}}),
            json!({"value": {"user": "a", "amount": 1}}),
        ],
    )
    .await;
    sql_ok(
        &s,
        &format!(
            "CREATE TABLE cust (id TEXT PRIMARY KEY, name TEXT) WITH (topic = '{c}');
        CREATE STREAM buys (user TEXT, amount BIGINT) WITH (topic = '{b}');
        CREATE TABLE spend AS SELECT user, SUM(amount) AS total, COUNT(*) AS n FROM buys GROUP BY user"
        ),
    )
    .await;
    let pull = |q: &'static str| {
        let url = s.url("/v1/query");
        async move {
            let r = client().post(url).json(&json!({"sql": q})).send().await.unwrap();
            assert_eq!(r.status(), 200, "{q}");
            let text = r.text().await.unwrap();
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = pull("SELECT user, total FROM spend WHERE user = 'a'").await;
        if lines.len() == 3 && lines[1]["row"]["total"] == 3 {
            assert_eq!(lines[2], json!({"end": {"reason": "complete"}}));
            break;
        }
        assert!(Instant::now() < deadline, "{lines:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = pull("SELECT * FROM spend").await;
    assert_eq!(all.len(), 4, "{all:?}");
    // A declared table: the latest value per key; a tombstone deletes.
    let rows = pull("SELECT id, name FROM cust").await;
    assert_eq!(
        rows[1..],
        [
            json!({"row": {"id": "u1", "name": "Anna"}}),
            json!({"end": {"reason": "complete"}})
        ]
    );
    // A pull query on a stream is refused, with what to do.
    let r = client()
        .post(s.url("/v1/query"))
        .json(&json!({"sql": "SELECT * FROM buys"}))
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, 400, "sql_invalid").await;
    assert!(p["detail"].as_str().unwrap().contains("EMIT CHANGES"), "{p}");
}

#[tokio::test]
async fn queries_are_described_guarded_and_terminated() {
    let s = Server::start();
    let t = unique("admin");
    topic(&s, &t).await;
    produce(
        &s,
        &t,
        &[
            json!({"value": {"k": "x", "n": 1}}),
            json!({"value": {"k": "x", "n": "bad"}}),
            json!({"value": {"k": "y", "n": 3}}),
        ],
    )
    .await;
    let bad = unique("bad");
    let v = sql_ok(
        &s,
        &format!(
            "CREATE STREAM src (k TEXT, n BIGINT) WITH (topic = '{t}');
        CREATE TABLE per_k WITH (errors_topic = '{bad}') AS SELECT k, SUM(n) AS s FROM src GROUP BY k;"
        ),
    )
    .await;
    let id = v["results"][1]["query_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let q = loop {
        let q = s.get_json(&format!("/v1/queries/{id}")).await;
        if q["records_in"] == 3 && q["inputs"][0]["lag"] == 0 && q["records_out"] == 2 {
            break q;
        }
        assert!(Instant::now() < deadline, "{q}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (q["errors"].as_u64(), q["state"].as_str()),
        (Some(1), Some("RUNNING")),
        "{q}"
    );
    assert!(q["last_error"].as_str().unwrap().contains("column n"), "{q}");
    assert!(q["state_bytes"].as_u64().unwrap() > 0, "{q}");
    // The record that could not be read went to the errors topic, with where it was.
    let e = s.fetch(&bad, 0, "offset=earliest").await;
    let rec = &e["records"][0]["value"];
    assert_eq!(
        (rec["topic"].as_str(), rec["offset"].as_u64()),
        (Some(t.as_str()), Some(1)),
        "{e}"
    );
    // SHOW, DESCRIBE, EXPLAIN.
    let v = sql_ok(
        &s,
        "SHOW QUERIES; DESCRIBE per_k; EXPLAIN SELECT k, COUNT(*) FROM src GROUP BY k EMIT CHANGES",
    )
    .await;
    assert_eq!(v["results"][0]["objects"][0]["id"], id.as_str());
    assert_eq!(v["results"][1]["objects"][0]["written_by"], id.as_str());
    assert!(
        v["results"][2]["message"]
            .as_str()
            .unwrap()
            .contains("AGGREGATE BY [k]"),
        "{v}"
    );
    let streams = s.get_json("/v1/streams").await;
    assert_eq!(streams["items"][0]["read_by"][0], id.as_str(), "{streams}");
    assert_eq!(
        s.get_json("/v1/tables/per_k").await["columns"][0],
        json!({"name": "k", "type": "TEXT", "key": true})
    );
    // A stream in use cannot be dropped; after TERMINATE it can, and the query's state is gone.
    let r = sql(&s, "DROP STREAM src").await;
    let p = expect_problem(r, 400, "sql_invalid").await;
    assert!(p["detail"].as_str().unwrap().contains(&id), "{p}");
    sql_ok(&s, &format!("TERMINATE {id}")).await;
    let r = client().get(s.url(&format!("/v1/queries/{id}"))).send().await.unwrap();
    expect_problem(r, 404, "query_not_found").await;
    sql_ok(&s, "DROP TABLE per_k; DROP STREAM src").await;
    assert_eq!(s.get_json("/v1/streams").await["items"], json!([]));
}

#[tokio::test]
async fn a_quiet_stream_closes_its_last_window_by_idle_time() {
    let s = Server::start();
    let (t, out) = (unique("quiet"), unique("quiet-out"));
    topic(&s, &t).await;
    // Event times in 2001: far from the wall clock, as when history is replayed.
    let b = 1_000_000_000_000i64;
    produce(
        &s,
        &t,
        &[
            json!({"value": {"ts": b + 100}}),
            json!({"value": {"ts": b + 500}}),
            json!({"value": {"ts": b + 1500}}),
        ],
    )
    .await;
    sql_ok(&s, &format!("CREATE STREAM q (ts TIMESTAMP) WITH (topic = '{t}', timestamp = 'ts');
        CREATE TABLE q_per_s WITH (topic = '{out}', idle_timeout = 200) AS
          SELECT window_start, COUNT(*) AS n FROM TUMBLE(q, ts, INTERVAL '1' SECOND) GROUP BY window_start, window_end EMIT FINAL")).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let started = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let v = s.fetch(&out, 0, "offset=earliest").await;
        seen = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"].clone())
            .collect();
        assert!(Instant::now() < deadline, "the last window never closed: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        [
            json!({"window_start": b, "n": 2}),
            json!({"window_start": b + 1000, "n": 1})
        ]
    );
    // The last window needed ~0.5 s of event time past its records, given by idle time (200 ms
    // before idling starts): well under the wall clock's 25 years.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "closed after {:?}",
        started.elapsed()
    );
}

fn golden(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Every record of a topic as key and value.
async fn topic_records(s: &Server, topic: &str) -> Vec<Value> {
    let v = s.fetch(topic, 0, "offset=earliest&max_records=10000").await;
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!({"key": r["key"], "value": r["value"]}))
        .collect()
}

#[tokio::test]
async fn the_seed_workloads_resume_exactly_after_kill_9() {
    let mut s = Server::start();
    let scripts = ["orders_per_hour", "active_users", "revenue_per_day", "enriched_orders"];
    let input = golden("enriched_orders.input.json");
    let customers = input["topics"][0]["records"].as_array().unwrap().clone();
    let orders = golden("orders_per_hour.input.json")["topics"][0]["records"]
        .as_array()
        .unwrap()
        .clone();
    topic(&s, "customers").await;
    topic(&s, "orders").await;
    produce(&s, "customers", &customers).await;
    // One declaration of each source, then the four queries (each script's CREATE … AS).
    sql_ok(
        &s,
        "CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT, tier TEXT) WITH (topic = 'customers');
        CREATE STREAM orders (order_id TEXT, user_id TEXT, amount DECIMAL(12,2), status TEXT, ts TIMESTAMP)
          WITH (topic = 'orders', timestamp = 'ts', watermark_delay = INTERVAL '5' SECOND)",
    )
    .await;
    for name in scripts {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.sql")),
        )
        .unwrap();
        let query = &text[text
            .find("CREATE STREAM orders_enriched")
            .or_else(|| text.find("CREATE TABLE"))
            .unwrap()..];
        // The seed scripts' orders stream has no watermark delay except orders_per_hour's; the
        // shared declaration has it, so the others' expectations are computed with it below.
        sql_ok(&s, query).await;
    }
    // Orders arrive in chunks; the server is killed twice while the queries work.
    for (i, chunk) in orders.chunks(150).enumerate() {
        produce(&s, "orders", chunk).await;
        if i == 1 || i == 3 {
            tokio::time::sleep(Duration::from_millis(30 * i as u64)).await;
            s.kill9();
            s.restart();
        }
    }
    for name in scripts {
        let expected = golden(&format!("{name}.expected.json"));
        let topic = expected["topic"].as_str().unwrap();
        let want: Vec<Value> = expected["records"].as_array().unwrap().clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while Instant::now() < deadline {
            got = topic_records(&s, topic).await;
            if got.len() >= want.len().max(if name == "enriched_orders" { orders.len() } else { 0 }) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The shared stream trails by 5 s: a window ending within 5 s of the last order may stay open.
        let n = want.len().min(got.len());
        let queries = s.get_json("/v1/queries").await;
        assert!(
            want.len() - n <= 1,
            "{name}: {} of {} records; {queries}",
            got.len(),
            want.len()
        );
        assert_eq!(got[..n], want[..n], "{name}: results differ from an uninterrupted run");
        // The enrichment's golden case has the first 200 orders; here all of them are enriched.
        let total = if name == "enriched_orders" {
            orders.len()
        } else {
            want.len()
        };
        assert!(
            got.len() <= total,
            "{name}: duplicates after kill -9 ({} > {total})",
            got.len()
        );
    }
}

#[tokio::test]
async fn insert_into_merges_another_stream_into_a_query_output() {
    let s = Server::start();
    let (a, b, out) = (unique("ins-a"), unique("ins-b"), unique("ins-out"));
    topic(&s, &a).await;
    topic(&s, &b).await;
    produce(&s, &a, &[json!({"value": {"id": 1, "src": "web"}})]).await;
    produce(&s, &b, &[json!({"value": {"ident": 2}})]).await;
    sql_ok(
        &s,
        &format!(
            "CREATE STREAM ia (id BIGINT, src TEXT) WITH (topic = '{a}');
        CREATE STREAM ib (ident BIGINT) WITH (topic = '{b}');
        CREATE STREAM merged WITH (topic = '{out}') AS SELECT id, src FROM ia;
        INSERT INTO merged SELECT ident AS id, 'mobile' AS src FROM ib"
        ),
    )
    .await;
    let r = sql(&s, "INSERT INTO merged SELECT ident FROM ib").await;
    let p = expect_problem(r, 400, "sql_invalid").await;
    assert!(p["detail"].as_str().unwrap().contains("columns"), "{p}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut got: Vec<Value> = topic_records(&s, &out)
            .await
            .into_iter()
            .map(|r| r["value"].clone())
            .collect();
        got.sort_by_key(|v| v["id"].as_i64());
        if got.len() == 2 {
            assert_eq!(got, [json!({"id": 1, "src": "web"}), json!({"id": 2, "src": "mobile"})]);
            break;
        }
        assert!(Instant::now() < deadline, "{got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = sql_ok(&s, "SHOW QUERIES").await;
    assert_eq!(v["results"][0]["objects"].as_array().unwrap().len(), 2, "{v}");
}

/// A query refused by backpressure (here its principal's produce quota) waits the time it is
/// told and goes on: every record out once and in order, each counted once, and no error
/// recorded for it.
#[tokio::test]
async fn a_query_held_back_by_its_quota_waits_without_an_error() {
    let s = Server::start_with(&["--quota-produce-bytes-per-sec", "50000"]);
    let (t, out) = (unique("quota-in"), unique("quota-out"));
    topic(&s, &t).await;
    let records: Vec<Value> = (0..6000)
        .map(|i| json!({"value": {"id": i, "pad": "held back"}}))
        .collect();
    // One request larger than the burst passes on a full bucket; the query's own bucket is
    // another, and its ~200 KB of output, written 2000 records at a time, takes a few seconds
    // at 50 KB/s.
    s.produce(&t, json!({"records": records})).await;
    let v = sql_ok(
        &s,
        &format!(
            "CREATE STREAM held (id BIGINT, pad TEXT) WITH (topic = '{t}');
        CREATE STREAM held_out WITH (topic = '{out}') AS SELECT id, pad FROM held"
        ),
    )
    .await;
    let id = v["results"][1]["query_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = topic_records(&s, &out).await;
        if got.len() >= records.len() {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {} records",
            got.len(),
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ids: Vec<i64> = got.iter().filter_map(|r| r["value"]["id"].as_i64()).collect();
    assert_eq!(ids, (0..6000).collect::<Vec<i64>>(), "every record once, in order");
    // The counters follow the write they count: wait until the last batch's is added.
    let deadline = Instant::now() + Duration::from_secs(20);
    let q = loop {
        let q = s.get_json(&format!("/v1/queries/{id}")).await;
        if q["records_out"] == 6000 {
            break q;
        }
        assert!(Instant::now() < deadline, "{q}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A batch redone after a wait is counted once.
    assert_eq!(
        (q["state"].as_str(), q["errors"].as_u64(), &q["last_error"]),
        (Some("RUNNING"), Some(0), &Value::Null),
        "{q}"
    );
    assert_eq!(
        (q["records_in"].as_u64(), q["records_out"].as_u64()),
        (Some(6000), Some(6000)),
        "{q}"
    );
}
