//! Connect through the real server: Kafka Connect's REST shapes, and the compliance suite every
//! connector passes (create, move data, pause and resume, stop and the offsets API, restart of
//! Weir, `kill -9` — sources: no duplicate and no gap; sinks: no loss — and delete), plus dead
//! letters and the permissions of a connector's principal.
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{ADMIN, Server, client, create_connector, send, unique};
use serde_json::{Value, json};

/// Waits up to `secs` for `cond` to hold on `GET path`'s body; panics with the last body.
async fn wait_for(s: &Server, path: &str, secs: u64, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, v) = send(s, "GET", path, None).await;
        if cond(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path} never satisfied the condition: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn state(v: &Value) -> (&str, Vec<&str>) {
    (
        v["connector"]["state"].as_str().unwrap_or(""),
        v["tasks"]
            .as_array()
            .map(|t| t.iter().map(|t| t["state"].as_str().unwrap_or("")).collect())
            .unwrap_or_default(),
    )
}

async fn wait_state(s: &Server, name: &str, want: &str) -> Value {
    wait_for(s, &format!("/v1/connectors/{name}/status"), 20, |v| {
        let (c, t) = state(v);
        c == want && !t.is_empty() && t.iter().all(|t| *t == want)
    })
    .await
}

/// Waits for `n` records in a dead-letter topic and returns them.
async fn dead_letters(s: &Server, dlq: &str, n: usize) -> Vec<Value> {
    let path = format!("/v1/topics/{dlq}/partitions/0/records?offset=earliest");
    let v = wait_for(s, &path, 20, |v| v["records"].as_array().is_some_and(|r| r.len() == n)).await;
    v["records"].as_array().unwrap().clone()
}

/// Every record of a topic partition 0, from the start.
async fn topic_values(s: &Server, topic: &str) -> Vec<Value> {
    let (status, v) = send(
        s,
        "GET",
        &format!("/v1/topics/{topic}/partitions/0/records?offset=earliest&max_records=10000"),
        None,
    )
    .await;
    if status != 200 {
        return Vec::new();
    }
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].clone())
        .collect()
}

#[tokio::test]
async fn connect_rest_api_has_connects_shapes() {
    let s = Server::start();
    let (st, v) = send(&s, "GET", "/v1", None).await;
    assert_eq!(st, 200);
    assert!(v["version"].is_string() && v["kafka_cluster_id"].is_string(), "{v}");
    let (_, plugins) = send(&s, "GET", "/v1/connector-plugins", None).await;
    let classes: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["class"].as_str().unwrap())
        .collect();
    assert!(
        classes.contains(&"org.apache.kafka.connect.file.FileStreamSourceConnector"),
        "{plugins}"
    );
    assert!(
        plugins
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["type"] == "source" || p["type"] == "sink")
    );
    let (_, defs) = send(&s, "GET", "/v1/connector-plugins/FileStreamSource/config", None).await;
    let file = defs.as_array().unwrap().iter().find(|d| d["name"] == "file").unwrap();
    assert_eq!(
        (file["type"].as_str(), file["required"].as_bool()),
        (Some("STRING"), Some(true))
    );
    let batch = defs
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "batch.size")
        .unwrap();
    assert_eq!(batch["default_value"], "2000");

    // Validate: per-field errors, unknown keys, Connect's shape.
    let (st, v) = send(
        &s,
        "PUT",
        "/v1/connector-plugins/FileStreamSourceConnector/config/validate",
        Some(json!({"connector.class": "FileStreamSource", "name": "x", "topic": "t", "batch.size": "0", "fiel": "a"})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["error_count"], 3, "{v}");
    let errors: BTreeMap<String, Vec<String>> = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["value"]["errors"].as_array().unwrap().is_empty())
        .map(|c| {
            (
                c["value"]["name"].as_str().unwrap().to_owned(),
                serde_json::from_value(c["value"]["errors"].clone()).unwrap(),
            )
        })
        .collect();
    assert!(
        errors["file"][0].contains("Missing required configuration"),
        "{errors:?}"
    );
    assert!(errors["batch.size"][0].contains("must be between 1 and"), "{errors:?}");
    assert!(errors["fiel"][0].contains("did you mean \"file\""), "{errors:?}");

    // Create: the same messages in Connect's error shape; 404 for an unknown plugin.
    let name = unique("shape");
    let (st, e) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(json!({"name": name, "config": {"connector.class": "FileStreamSource", "topic": "t"}})),
    )
    .await;
    assert_eq!((st, e["error_code"].as_u64()), (400, Some(400)), "{e}");
    assert_eq!(e["code"], "invalid_connector_config");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Missing required configuration \"file\""),
        "{e}"
    );
    let (st, e) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(json!({"name": name, "config": {"connector.class": "NoSuchConnector"}})),
    )
    .await;
    assert_eq!((st, e["code"].as_str()), (404, Some("plugin_not_found")), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "a\n").unwrap();
    let topic = unique("shape-t");
    let config = json!({"connector.class": "FileStreamSource", "file": path, "topic": topic, "tasks.max": 1});
    let (st, info) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(json!({"name": name, "config": config})),
    )
    .await;
    assert_eq!(st, 201, "{info}");
    assert_eq!(info["type"], "source");
    assert_eq!(info["tasks"], json!([{"connector": name, "task": 0}]));
    assert_eq!(info["config"]["tasks.max"], "1", "numbers are taken as their text");
    let (st, _) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(json!({"name": name, "config": config})),
    )
    .await;
    assert_eq!(st, 409);
    wait_state(&s, &name, "RUNNING").await;
    let (_, list) = send(&s, "GET", "/v1/connectors", None).await;
    assert!(list.as_array().unwrap().contains(&json!(name)));
    let (_, expanded) = send(&s, "GET", "/v1/connectors?expand=status&expand=info", None).await;
    assert_eq!(expanded[&name]["status"]["connector"]["state"], "RUNNING", "{expanded}");
    assert_eq!(expanded[&name]["info"]["name"], name.as_str());
    let (_, tasks) = send(&s, "GET", &format!("/v1/connectors/{name}/tasks"), None).await;
    assert_eq!(tasks[0]["id"], json!({"connector": name, "task": 0}));
    let (st, t) = send(&s, "GET", &format!("/v1/connectors/{name}/tasks/0/status"), None).await;
    assert_eq!(
        (st, t["state"].as_str(), t["id"].as_u64()),
        (200, Some("RUNNING"), Some(0))
    );
    let (st, e) = send(&s, "GET", &format!("/v1/connectors/{name}/tasks/7/status"), None).await;
    assert_eq!((st, e["code"].as_str()), (404, Some("task_not_found")));
    let (_, topics) = send(&s, "GET", &format!("/v1/connectors/{name}/topics"), None).await;
    assert_eq!(topics[&name]["topics"], json!([topic]));

    // PUT updates (200), PATCH merges and removes with null.
    let mut updated = config.clone();
    updated["batch.size"] = json!("5");
    let (st, _) = send(&s, "PUT", &format!("/v1/connectors/{name}/config"), Some(updated)).await;
    assert_eq!(st, 200);
    let (st, _) = send(
        &s,
        "PATCH",
        &format!("/v1/connectors/{name}/config"),
        Some(json!({"batch.size": null})),
    )
    .await;
    assert_eq!(st, 200);
    let (_, cfg) = send(&s, "GET", &format!("/v1/connectors/{name}/config"), None).await;
    assert!(cfg.get("batch.size").is_none(), "{cfg}");
    assert_eq!(cfg["name"], name.as_str());
    let (st, _) = send(
        &s,
        "PUT",
        &format!("/v1/connectors/{name}/config"),
        Some(json!({"connector.class": "FileStreamSource", "file": path, "topic": topic, "name": "other"})),
    )
    .await;
    assert_eq!(st, 400, "a config whose name differs from the URL's is refused");
    // Offsets change only while stopped.
    let (st, e) = send(&s, "DELETE", &format!("/v1/connectors/{name}/offsets"), None).await;
    assert_eq!((st, e["code"].as_str()), (400, Some("connector_not_stopped")), "{e}");
    let (st, v) = send(
        &s,
        "POST",
        &format!("/v1/connectors/{name}/restart?includeTasks=true"),
        None,
    )
    .await;
    assert_eq!(st, 202);
    assert_eq!(v["tasks"][0]["state"], "RESTARTING", "{v}");
    wait_state(&s, &name, "RUNNING").await;
    let (st, _) = send(&s, "DELETE", &format!("/v1/connectors/{name}"), None).await;
    assert_eq!(st, 204);
    let (st, e) = send(&s, "GET", &format!("/v1/connectors/{name}"), None).await;
    assert_eq!((st, e["error_code"].as_u64()), (404, Some(404)));
}

/// A connector under the compliance suite: how to feed it and what it delivered.
#[async_trait]
trait Fixture: Send + Sync {
    /// The connector's config.
    fn config(&self) -> Value;
    /// Makes items `range` available to the connector (lines in a file, records in a topic).
    async fn feed(&self, s: &Server, range: std::ops::Range<u64>);
    /// The items delivered so far, by number, with how often each was.
    async fn delivered(&self, s: &Server) -> BTreeMap<u64, usize>;
    /// Whether a duplicate is a failure (exactly-once sources) or allowed (at-least-once sinks).
    fn exactly_once(&self) -> bool;
}

struct FileSourceFixture {
    path: std::path::PathBuf,
    topic: String,
}

#[async_trait]
impl Fixture for FileSourceFixture {
    fn config(&self) -> Value {
        json!({"connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
               "file": self.path, "topic": self.topic, "batch.size": "50", "poll.interval.ms": "20"})
    }

    async fn feed(&self, _s: &Server, range: std::ops::Range<u64>) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap();
        let text: String = range.map(|i| format!("line-{i}\n")).collect();
        f.write_all(text.as_bytes()).unwrap();
    }

    async fn delivered(&self, s: &Server) -> BTreeMap<u64, usize> {
        let mut out = BTreeMap::new();
        for v in topic_values(s, &self.topic).await {
            let n: u64 = v.as_str().unwrap().trim_start_matches("line-").parse().unwrap();
            *out.entry(n).or_default() += 1;
        }
        out
    }

    fn exactly_once(&self) -> bool {
        true
    }
}

struct FileSinkFixture {
    path: std::path::PathBuf,
    topic: String,
}

#[async_trait]
impl Fixture for FileSinkFixture {
    fn config(&self) -> Value {
        json!({"connector.class": "FileStreamSink", "file": self.path, "topics": self.topic})
    }

    async fn feed(&self, s: &Server, range: std::ops::Range<u64>) {
        let records: Vec<Value> = range.map(|i| json!({"value": {"n": i}})).collect();
        for chunk in records.chunks(500) {
            s.produce(&self.topic, json!({"records": chunk})).await;
        }
    }

    async fn delivered(&self, _s: &Server) -> BTreeMap<u64, usize> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            *out.entry(v["n"].as_u64().unwrap()).or_default() += 1;
        }
        out
    }

    fn exactly_once(&self) -> bool {
        false
    }
}

/// Waits until items `0..n` are all delivered, and checks duplicates per the fixture.
async fn expect_delivered(s: &Server, f: &dyn Fixture, n: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = f.delivered(s).await;
        let missing = (0..n).filter(|i| !got.contains_key(i)).count();
        if missing == 0 {
            let dupes: Vec<_> = got.iter().filter(|(_, c)| **c > 1).map(|(i, _)| *i).collect();
            if f.exactly_once() {
                assert!(dupes.is_empty(), "{what}: duplicates {dupes:?}");
            }
            assert!(got.keys().all(|i| *i < n), "{what}: items that were never fed");
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {missing} of {n} items missing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The compliance suite: every connector passes it.
async fn compliance(mut s: Server, f: &dyn Fixture) {
    let name = unique("comply");
    f.feed(&s, 0..100).await;
    create_connector(&s, &name, f.config()).await;
    expect_delivered(&s, f, 100, "first batch").await;

    // Paused: nothing moves; resumed: everything does.
    assert_eq!(
        send(&s, "PUT", &format!("/v1/connectors/{name}/pause"), None).await.0,
        202
    );
    wait_state(&s, &name, "PAUSED").await;
    let before = f.delivered(&s).await.len();
    f.feed(&s, 100..150).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(f.delivered(&s).await.len(), before, "a paused connector moved data");
    assert_eq!(
        send(&s, "PUT", &format!("/v1/connectors/{name}/resume"), None).await.0,
        202
    );
    expect_delivered(&s, f, 150, "after resume").await;

    // Stopped: its offsets can be read and changed; it resumes from them.
    assert_eq!(
        send(&s, "PUT", &format!("/v1/connectors/{name}/stop"), None).await.0,
        204
    );
    wait_for(&s, &format!("/v1/connectors/{name}/status"), 20, |v| {
        v["connector"]["state"] == "STOPPED"
    })
    .await;
    let (st, offsets) = send(&s, "GET", &format!("/v1/connectors/{name}/offsets"), None).await;
    assert_eq!(st, 200);
    assert!(!offsets["offsets"].as_array().unwrap().is_empty(), "{offsets}");
    let (st, _) = send(
        &s,
        "PATCH",
        &format!("/v1/connectors/{name}/offsets"),
        Some(offsets.clone()),
    )
    .await;
    assert_eq!(st, 200, "writing back the same offsets");
    f.feed(&s, 150..200).await;
    assert_eq!(
        send(&s, "PUT", &format!("/v1/connectors/{name}/resume"), None).await.0,
        202
    );
    expect_delivered(&s, f, 200, "after stop and resume").await;

    // A restart of Weir loses nothing and repeats nothing (for exactly-once sources).
    s.stop();
    s.restart();
    wait_state(&s, &name, "RUNNING").await;
    f.feed(&s, 200..300).await;
    expect_delivered(&s, f, 300, "after a restart").await;

    // kill -9 in the middle of a large batch.
    f.feed(&s, 300..5000).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.kill9();
    s.restart();
    expect_delivered(&s, f, 5000, "after kill -9").await;

    // Deleted: its offsets go too.
    assert_eq!(send(&s, "DELETE", &format!("/v1/connectors/{name}"), None).await.0, 204);
    let (st, _) = send(&s, "GET", &format!("/v1/connectors/{name}/offsets"), None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn file_source_passes_the_compliance_suite() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let f = FileSourceFixture {
        path: dir.path().join("source.txt"),
        topic: unique("fsrc"),
    };
    compliance(s, &f).await;
}

#[tokio::test]
async fn file_sink_passes_the_compliance_suite() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fsink");
    s.create_topic(&topic, 3, json!({})).await;
    let f = FileSinkFixture {
        path: dir.path().join("sink.jsonl"),
        topic,
    };
    compliance(s, &f).await;
}

#[tokio::test]
async fn a_recreated_connector_starts_fresh_and_rotation_is_followed() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rot.log");
    let topic = unique("rot");
    std::fs::write(&path, "a\nb\n").unwrap();
    let name = unique("rot");
    let config = json!({"connector.class": "FileStreamSource", "file": path, "topic": topic, "poll.interval.ms": "20"});
    let create = || {
        send(
            &s,
            "POST",
            "/v1/connectors",
            Some(json!({"name": name, "config": config})),
        )
    };
    assert_eq!(create().await.0, 201);
    wait_values(&s, &topic, 2).await;
    // Rotation: the file is renamed and a new one starts; the old one's last line without a
    // newline is read too.
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"c").unwrap();
    }
    std::fs::rename(&path, dir.path().join("rot.log.1")).unwrap();
    std::fs::write(&path, "d\n").unwrap();
    let v = wait_values(&s, &topic, 4).await;
    assert_eq!(v, [json!("a"), json!("b"), json!("c"), json!("d")]);
    // Deleted and created again: its offsets were deleted, so it reads the file from the start.
    assert_eq!(send(&s, "DELETE", &format!("/v1/connectors/{name}"), None).await.0, 204);
    assert_eq!(create().await.0, 201);
    let v = wait_values(&s, &topic, 5).await;
    assert_eq!(v.last(), Some(&json!("d")), "{v:?}");
    assert_eq!(topic_values(&s, &topic).await.len(), 5);
}

/// A source refused by backpressure (here its principal's produce quota) waits the time it is
/// told and goes on, as any client does: not a failure, even with `errors.retry.timeout` 0.
#[tokio::test]
async fn a_source_held_back_by_its_quota_waits_and_delivers_every_line_once() {
    let s = Server::start_with(&["--quota-produce-bytes-per-sec", "20000"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quota.log");
    let lines: Vec<String> = (0..1500)
        .map(|i| format!("line {i:05} of a file read under a quota"))
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let topic = unique("quota");
    let name = unique("quota");
    let config = json!({"connector.class": "FileStreamSource", "file": path, "topic": topic,
                        "batch.size": "200", "errors.retry.timeout": "0"});
    create_connector(&s, &name, config).await;
    // ~75 KB at 20 KB/s: a few seconds of waiting on the quota.
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        let v = topic_values(&s, &topic).await;
        if v.len() >= lines.len() {
            break v;
        }
        let (_, status) = send(&s, "GET", &format!("/v1/connectors/{name}/status"), None).await;
        assert_ne!(status["tasks"][0]["state"], "FAILED", "{status}");
        assert!(Instant::now() < deadline, "only {} of {} lines", v.len(), lines.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let want: Vec<Value> = lines.iter().map(|l| json!(l)).collect();
    assert_eq!(got, want, "every line once, in order");
    wait_state(&s, &name, "RUNNING").await;
    let metrics = s.get_text("/metrics").await;
    let retried = metrics
        .lines()
        .filter(|l| l.starts_with("weir_connector_retries_total") && l.contains(&name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(retried > 0.0, "the waits are counted as retries: {metrics}");
}

/// Waits until a topic holds at least `n` records and returns their values.
async fn wait_values(s: &Server, topic: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = topic_values(s, topic).await;
        if v.len() >= n {
            return v;
        }
        assert!(Instant::now() < deadline, "only {} of {n} records: {v:?}", v.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn failed_writes_go_to_the_dead_letter_topic_with_context_headers() {
    let s = Server::start();
    let topic = unique("dlq-in");
    let dlq = unique("dlq");
    s.create_topic(&topic, 1, json!({})).await;
    s.produce(&topic, json!({"records": [{"value": {"n": 1}}, {"value": {"n": 2}}]}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    // A directory is not a file one can append to: every write fails.
    let name = unique("dlq");
    let (st, v) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(json!({"name": name, "config": {
            "connector.class": "FileStreamSink", "file": dir.path(), "topics": topic,
            "errors.tolerance": "all", "errors.retry.timeout": "300", "errors.retry.delay.max.ms": "50",
            "errors.deadletterqueue.topic.name": dlq, "errors.deadletterqueue.context.headers.enable": "true"}})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let records = dead_letters(&s, &dlq, 2).await;
    assert_eq!(records[0]["value"], json!({"n": 1}));
    let h = &records[1]["headers"];
    assert_eq!(h["__connect.errors.topic"], topic.as_str(), "{h}");
    assert_eq!(h["__connect.errors.partition"], "0");
    assert_eq!(h["__connect.errors.offset"], "1");
    assert_eq!(h["__connect.errors.stage"], "TASK_PUT");
    assert_eq!(h["__connect.errors.connector.name"], name.as_str());
    assert!(
        h["__connect.errors.exception.message"]
            .as_str()
            .unwrap()
            .contains(dir.path().to_str().unwrap())
    );
    // The task goes on, and the metrics count it.
    wait_state(&s, &name, "RUNNING").await;
    let metrics = s.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("weir_connector_dead_lettered_total") && l.contains(&name)),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_task_that_fails_says_why_and_restarts_when_asked() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fail");
    s.create_topic(&topic, 1, json!({})).await;
    s.produce(&topic, json!({"records": [{"value": 1}]})).await;
    let name = unique("fail");
    let (st, _) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(
            json!({"name": name, "config": {"connector.class": "FileStreamSink", "file": dir.path(), "topics": topic}}),
        ),
    )
    .await;
    assert_eq!(st, 201);
    let v = wait_for(&s, &format!("/v1/connectors/{name}/status"), 20, |v| {
        v["tasks"][0]["state"] == "FAILED"
    })
    .await;
    let trace = v["tasks"][0]["trace"].as_str().unwrap();
    assert!(trace.contains("TASK_PUT failed"), "{trace}");
    // Fix the cause, restart the failed task: it delivers.
    let file = dir.path().join("out.jsonl");
    let (st, _) = send(
        &s,
        "PUT",
        &format!("/v1/connectors/{name}/config"),
        Some(json!({"connector.class": "FileStreamSink", "file": file, "topics": topic})),
    )
    .await;
    assert_eq!(st, 200);
    wait_state(&s, &name, "RUNNING").await;
    wait_file(&file, "1\n").await;
}

#[tokio::test]
async fn a_sink_created_before_its_topic_waits_for_it() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let topic = unique("later");
    let name = unique("early-sink");
    // No errors.retry.timeout: the default gives up at once on a failure, but a missing topic
    // is not one (a Kafka consumer waits for it too).
    let config = json!({"connector.class": "FileStreamSink", "file": file, "topics": topic});
    create_connector(&s, &name, config).await;
    wait_state(&s, &name, "RUNNING").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, v) = send(&s, "GET", &format!("/v1/connectors/{name}/status"), None).await;
    assert_eq!(state(&v), ("RUNNING", vec!["RUNNING"]), "{v}");
    s.create_topic(&topic, 1, json!({})).await;
    s.produce(&topic, json!({"records": [{"value": {"n": 1}}, {"value": "two"}]}))
        .await;
    wait_file(&file, "{\"n\":1}\n\"two\"\n").await;
    // Stopped while it waits for another topic that never comes: it stops, it does not fail.
    let waiting = unique("waiting-sink");
    let never = unique("never");
    let config = json!({"connector.class": "FileStreamSink", "file": dir.path().join("never.jsonl"), "topics": never});
    create_connector(&s, &waiting, config).await;
    wait_state(&s, &waiting, "RUNNING").await;
    let (st, _) = send(&s, "PUT", &format!("/v1/connectors/{waiting}/stop"), None).await;
    assert_eq!(st, 204);
    let v = wait_for(&s, &format!("/v1/connectors/{waiting}/status"), 20, |v| {
        v["connector"]["state"] == "STOPPED"
    })
    .await;
    assert!(!v.to_string().contains("FAILED"), "{v}");
}

/// Waits until `file` holds exactly `want`.
async fn wait_file(file: &std::path::Path, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text == want {
            return;
        }
        assert!(Instant::now() < deadline, "the file holds {text:?}, not {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_file_sink_writes_values_as_stored_and_as_json_values_after_a_transform() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("as-stored");
    s.create_topic(&topic, 1, json!({})).await;
    // A JSON value keeps the producer's text (key order, spaces; its line breaks are stored as
    // spaces), a string is written as a JSON string, binary as base64, a tombstone as null.
    // (Sent as text: a client's `json!` would sort the keys.)
    let pretty = "{\"records\": [{\"value\": {\"b\": 1, \"a\": [1, 2]}}, {\"value\": {\"z\": \"x\",\n \"y\": 2}}, {\"key\": \"k\", \"value\": null}]}";
    let r = client()
        .post(s.url(&format!("/v1/topics/{topic}/records")))
        .header("content-type", "application/json")
        .body(pretty)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    s.produce(
        &topic,
        json!({"value_format": "string", "records": [{"value": "say \"hi\"\tthere"}]}),
    )
    .await;
    s.produce(
        &topic,
        json!({"value_format": "binary", "records": [{"value": "AAEC"}]}),
    )
    .await;
    let expected_raw =
        "{\"b\": 1, \"a\": [1, 2]}\n{\"z\": \"x\",  \"y\": 2}\nnull\n\"say \\\"hi\\\"\\tthere\"\n\"AAEC\"\n";
    let raw = dir.path().join("raw.jsonl");
    let name = unique("as-stored-sink");
    create_connector(
        &s,
        &name,
        json!({"connector.class": "FileStreamSink", "file": raw, "topics": topic}),
    )
    .await;
    wait_file(&raw, expected_raw).await;
    // With a transform the values are JSON values: written again in compact form.
    let transformed = dir.path().join("transformed.jsonl");
    let name = unique("transformed-sink");
    let config = json!({"connector.class": "FileStreamSink", "file": transformed, "topics": topic,
        "transforms": "tag", "transforms.tag.type": "org.apache.kafka.connect.transforms.Filter",
        "transforms.tag.predicate": "tomb", "predicates": "tomb",
        "predicates.tomb.type": "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone"});
    create_connector(&s, &name, config).await;
    wait_file(
        &transformed,
        "{\"a\":[1,2],\"b\":1}\n{\"y\":2,\"z\":\"x\"}\n\"say \\\"hi\\\"\\tthere\"\n\"AAEC\"\n",
    )
    .await;
}

#[tokio::test]
async fn a_connector_gets_no_more_than_its_creator_holds() {
    let s = Server::start_admin(&[]);
    let auth = |r: reqwest::RequestBuilder, t: &str| r.header("authorization", format!("Bearer {t}"));
    let r = auth(client().post(s.url("/v1/tokens")), ADMIN)
        .json(&json!({"name": "ops", "permissions": [
            {"resource": "connector", "name": "c-", "pattern": "prefix", "operations": ["create", "describe", "delete"]},
            {"resource": "topic", "name": "allowed", "operations": ["write", "create"]}]}))
        .send()
        .await
        .unwrap();
    let token: Value = r.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.txt");
    std::fs::write(&path, "x\n").unwrap();
    let create = |name: &str, topic: &str| {
        auth(client().post(s.url("/v1/connectors")), &token)
            .json(
                &json!({"name": name, "config": {"connector.class": "FileStreamSource", "file": path, "topic": topic}}),
            )
            .send()
    };
    let r = create("c-ok", "allowed").await.unwrap();
    assert_eq!(r.status(), 201);
    let r = create("c-bad", "other").await.unwrap();
    assert_eq!(r.status(), 403, "a connector may not write a topic its creator may not");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["code"], "forbidden");
    let r = create("x-named", "allowed").await.unwrap();
    assert_eq!(r.status(), 403, "connector names need the grant too");
    // The connector writes as its own principal.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = auth(
            client().get(s.url("/v1/topics/allowed/partitions/0/records?offset=earliest")),
            ADMIN,
        )
        .send()
        .await
        .unwrap();
        if r.status() == 200 && r.json::<Value>().await.unwrap()["records"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the connector wrote nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = auth(client().get(s.url("/v1/groups")), ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// A source whose transforms reroute its records is granted the topics they go to, and its
/// creator must hold them.
#[tokio::test]
async fn a_routing_source_is_granted_the_topics_it_routes_to() {
    let s = Server::start_admin(&[]);
    let token = |topics: &[&str]| {
        let mut permissions = vec![
            json!({"resource": "connector", "name": "r-", "pattern": "prefix", "operations": ["create", "describe"]}),
        ];
        permissions.extend(
            topics
                .iter()
                .map(|t| json!({"resource": "topic", "name": t, "operations": ["write", "create"]})),
        );
        common::create_token(&s, ADMIN, json!({"name": "ops", "permissions": permissions}))
    };
    let (_, narrow) = token(&["orders"]).await;
    let (_, wide) = token(&["orders", "orders-copy"]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.txt");
    std::fs::write(&path, "x\n").unwrap();
    let create = |name: &str, token: &str| {
        common::auth(client().post(s.url("/v1/connectors")), token)
            .json(&json!({"name": name, "config": {
                "connector.class": "FileStreamSource", "file": path, "topic": "orders",
                "transforms": "Copy", "transforms.Copy.type": "RegexRouter",
                "transforms.Copy.regex": "(.*)", "transforms.Copy.replacement": "$1-copy"}}))
            .send()
    };
    let r = create("r-narrow", &narrow).await.unwrap();
    assert_eq!(
        r.status(),
        403,
        "the creator may not write where the records are routed"
    );
    let r = create("r-wide", &wide).await.unwrap();
    assert_eq!(r.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = s.url("/v1/topics/orders-copy/partitions/0/records?offset=earliest");
    loop {
        let r = common::auth(client().get(&url), ADMIN).send().await.unwrap();
        if r.status() == 200 {
            let v: Value = r.json().await.unwrap();
            if let Some(first) = v["records"].get(0) {
                assert_eq!(first["value"], "x");
                break;
            }
        }
        assert!(Instant::now() < deadline, "nothing reached the routed topic");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- the data generator and the HTTP sink ----

/// Every record of partition 0 of a topic, paged through: `(key, value)` pairs.
async fn all_records(s: &Server, topic: &str) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let (status, v) = send(
            s,
            "GET",
            &format!("/v1/topics/{topic}/partitions/0/records?offset={offset}&max_records=5000&max_bytes=8388608"),
            None,
        )
        .await;
        let records = v["records"].as_array().cloned().unwrap_or_default();
        if status != 200 || records.is_empty() {
            return out;
        }
        out.extend(records.into_iter().map(|r| (r["key"].clone(), r["value"].clone())));
        offset = v["next_offset"].as_u64().unwrap();
    }
}

/// The orders a datagen connector wrote, by order id, with how often each was written; the
/// key of each is its order id as a string.
async fn orders_written(s: &Server, topic: &str) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for (key, value) in all_records(s, topic).await {
        let id = value["orderid"].as_u64().unwrap();
        assert_eq!(key, json!(id.to_string()), "orders are keyed by their id");
        *out.entry(id).or_default() += 1;
    }
    out
}

/// Waits until at least `n` orders were written, asserting none twice; returns how many.
async fn wait_orders(s: &Server, topic: &str, n: usize, what: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = orders_written(s, topic).await;
        let dupes: Vec<_> = got.iter().filter(|(_, c)| **c > 1).map(|(i, _)| *i).collect();
        assert!(dupes.is_empty(), "{what}: orders written twice: {dupes:?}");
        if got.len() >= n {
            return got.len();
        }
        assert!(Instant::now() < deadline, "{what}: only {} of {n} orders", got.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The compliance steps for a generator (there is nothing to feed): create, deliver, pause and
/// resume, stop and the offsets API, restart of Weir, `kill -9` while it generates — every
/// order id exactly once, each the same record an uninterrupted run gives — and delete.
#[tokio::test]
async fn datagen_passes_the_compliance_steps() {
    const TOTAL: u64 = 6000;
    let mut s = Server::start();
    let topic = unique("dg-orders");
    let name = unique("dg");
    let config = json!({"connector.class": "DatagenConnector", "kafka.topic": topic, "quickstart": "orders",
        "iterations": TOTAL, "max.interval": "5", "random.seed": "11", "tasks.max": "2"});
    let (st, v) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(json!({"name": name, "config": config})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["tasks"].as_array().unwrap().len(), 2, "{v}");
    let n = wait_orders(&s, &topic, 100, "first records").await;

    // Paused: nothing moves; resumed: it goes on.
    assert_eq!(
        send(&s, "PUT", &format!("/v1/connectors/{name}/pause"), None).await.0,
        202
    );
    wait_state(&s, &name, "PAUSED").await;
    let paused = orders_written(&s, &topic).await.len();
    assert!(paused >= n);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        orders_written(&s, &topic).await.len(),
        paused,
        "a paused generator moved"
    );
    assert_eq!(
        send(&s, "PUT", &format!("/v1/connectors/{name}/resume"), None).await.0,
        202
    );
    wait_orders(&s, &topic, paused + 100, "after resume").await;

    // Stopped: one offset per task, which can be written back; it resumes from them.
    assert_eq!(
        send(&s, "PUT", &format!("/v1/connectors/{name}/stop"), None).await.0,
        204
    );
    wait_for(&s, &format!("/v1/connectors/{name}/status"), 20, |v| {
        v["connector"]["state"] == "STOPPED"
    })
    .await;
    let stopped = orders_written(&s, &topic).await.len();
    let (st, offsets) = send(&s, "GET", &format!("/v1/connectors/{name}/offsets"), None).await;
    assert_eq!(st, 200);
    let mut partitions: Vec<Value> = offsets["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["partition"].clone())
        .collect();
    partitions.sort_by_key(|p| p["task"].as_u64());
    assert_eq!(
        partitions,
        [
            json!({"quickstart": "orders", "task": 0}),
            json!({"quickstart": "orders", "task": 1})
        ],
        "{offsets}"
    );
    let positions: u64 = offsets["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["offset"]["position"].as_u64().unwrap())
        .sum();
    // Task i's position is its next number (task 0 has 0, 2, 4, …; task 1 has 1, 3, …): the
    // two together are 2 × written + 1.
    assert_eq!(positions, 2 * stopped as u64 + 1, "{offsets}");
    let (st, _) = send(
        &s,
        "PATCH",
        &format!("/v1/connectors/{name}/offsets"),
        Some(offsets.clone()),
    )
    .await;
    assert_eq!(st, 200, "writing back the same offsets");
    assert_eq!(
        orders_written(&s, &topic).await.len(),
        stopped,
        "a stopped generator moved"
    );
    assert_eq!(
        send(&s, "PUT", &format!("/v1/connectors/{name}/resume"), None).await.0,
        202
    );
    let resumed = wait_orders(&s, &topic, stopped + 100, "after stop and resume").await;

    // A restart of Weir: it goes on from where it was.
    s.stop();
    s.restart();
    wait_state(&s, &name, "RUNNING").await;
    wait_orders(&s, &topic, resumed + 100, "after a restart").await;

    // kill -9 while it generates: no order lost, none twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_kill = orders_written(&s, &topic).await.len() as u64;
    assert!(before_kill < TOTAL, "the kill must come while it generates");
    s.kill9();
    s.restart();
    wait_orders(&s, &topic, TOTAL as usize, "after kill -9").await;
    let got = orders_written(&s, &topic).await;
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), (0..TOTAL).collect::<Vec<_>>());

    // Record n is the record an uninterrupted run of the same seed gives (event times follow
    // max.interval: 5 ms per record number here).
    let reference_topic = unique("dg-ref");
    let reference = unique("dg-ref");
    let (st, _) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(
            json!({"name": reference, "config": {"connector.class": "Datagen", "kafka.topic": reference_topic,
            "iterations": TOTAL, "max.interval": "0", "random.seed": "11"}}),
        ),
    )
    .await;
    assert_eq!(st, 201);
    wait_orders(&s, &reference_topic, TOTAL as usize, "reference run").await;
    let strip = |mut v: Value| {
        let t = v.as_object_mut().unwrap().remove("ordertime").unwrap();
        (v, t.as_i64().unwrap())
    };
    let mut expected: BTreeMap<u64, Value> = BTreeMap::new();
    for (_, v) in all_records(&s, &reference_topic).await {
        expected.insert(v["orderid"].as_u64().unwrap(), strip(v).0);
    }
    for (_, v) in all_records(&s, &topic).await {
        let id = v["orderid"].as_u64().unwrap();
        let (rest, time) = strip(v);
        assert_eq!(rest, expected[&id], "order {id}");
        assert_eq!(time, 1_704_067_200_000 + 5 * id as i64, "order {id}");
    }

    // Deleted: its offsets go too.
    assert_eq!(send(&s, "DELETE", &format!("/v1/connectors/{name}"), None).await.0, 204);
    let (st, _) = send(&s, "GET", &format!("/v1/connectors/{name}/offsets"), None).await;
    assert_eq!(st, 404);
}

/// A local HTTP endpoint for the HTTP sink: keeps each request's JSON body; answers every
/// `fail_every`-th request with a 503 (which the sink retries), or every request with
/// `status` and a body that echoes the request's credentials (as careless servers do).
#[derive(Clone, Default)]
struct Receiver {
    bodies: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    fail_every: u64,
    status: Option<u16>,
}

impl Receiver {
    /// Serves on 127.0.0.1 and returns the URL to send to.
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/ingest", axum::routing::post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }
}

async fn receive(
    axum::extract::State(r): axum::extract::State<Receiver>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> (axum::http::StatusCode, String) {
    use std::sync::atomic::Ordering;
    let n = r.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if let Some(status) = r.status {
        let auth = headers.get("authorization").map_or("", |v| v.to_str().unwrap_or(""));
        return (
            axum::http::StatusCode::from_u16(status).unwrap(),
            format!("refused: you sent {auth}"),
        );
    }
    if r.fail_every > 0 && n % r.fail_every == 0 {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy".into());
    }
    r.bodies.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
    (axum::http::StatusCode::OK, String::new())
}

struct HttpSinkFixture {
    receiver: Receiver,
    url: String,
    topic: String,
}

#[async_trait]
impl Fixture for HttpSinkFixture {
    fn config(&self) -> Value {
        json!({"connector.class": "io.confluent.connect.http.HttpSinkConnector", "http.api.url": self.url,
               "topics": self.topic, "batch.max.size": "50", "retry.backoff.ms": "10",
               "headers": "X-Source:weir"})
    }

    async fn feed(&self, s: &Server, range: std::ops::Range<u64>) {
        let records: Vec<Value> = range.map(|i| json!({"value": {"n": i}})).collect();
        for chunk in records.chunks(500) {
            s.produce(&self.topic, json!({"records": chunk})).await;
        }
    }

    async fn delivered(&self, _s: &Server) -> BTreeMap<u64, usize> {
        let mut out = BTreeMap::new();
        for body in self.receiver.bodies.lock().unwrap().iter() {
            let batch = body.as_array().expect("batch.max.size > 1 sends arrays");
            assert!(!batch.is_empty() && batch.len() <= 50, "{body}");
            for v in batch {
                *out.entry(v["n"].as_u64().unwrap()).or_default() += 1;
            }
        }
        out
    }

    fn exactly_once(&self) -> bool {
        false
    }
}

// Multi-threaded: the receiver must answer while the test waits for Weir to stop or start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_passes_the_compliance_suite() {
    let s = Server::start();
    let topic = unique("hsink");
    s.create_topic(&topic, 3, json!({})).await;
    let receiver = Receiver {
        fail_every: 7,
        ..Receiver::default()
    };
    let url = receiver.serve().await;
    let f = HttpSinkFixture { receiver, url, topic };
    compliance(s, &f).await;
    let failed = f.receiver.requests.load(std::sync::atomic::Ordering::Relaxed) / 7;
    assert!(failed > 0, "some requests were answered 503 and retried");
}

/// Credentials of the HTTP sink never show: not in its config, its tasks' configs, validate,
/// a dead letter's error header, nor any log line — even when the server echoes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_credentials_are_hidden_in_answers_and_logs() {
    const TOKEN: &str = "tok-SECRET-9f2c41";
    const PASSWORD: &str = "pw-SECRET-77ab";
    // base64 of "svc:pw-SECRET-77ab", as a Basic authorization header carries it.
    const ENCODED: &str = "c3ZjOnB3LVNFQ1JFVC03N2Fi";
    let s = Server::start();
    let topic = unique("hsecret");
    let dlq = unique("hsecret-dlq");
    s.create_topic(&topic, 1, json!({})).await;
    s.produce(&topic, json!({"records": [{"value": {"n": 1}}]})).await;
    let receiver = Receiver {
        status: Some(401),
        ..Receiver::default()
    };
    let url = receiver.serve().await;
    let common = json!({"connector.class": "HttpSink", "http.api.url": url, "topics": topic,
        "errors.tolerance": "all", "errors.log.enable": "true", "errors.log.include.messages": "true",
        "errors.deadletterqueue.topic.name": dlq, "errors.deadletterqueue.context.headers.enable": "true"});
    let mut bearer = common.clone();
    bearer["auth.type"] = json!("BEARER");
    bearer["bearer.token"] = json!(TOKEN);
    let mut basic = common.clone();
    basic["auth.type"] = json!("BASIC");
    basic["connection.user"] = json!("svc");
    basic["connection.password"] = json!(PASSWORD);
    let mut names = Vec::new();
    for config in [bearer, basic] {
        let name = unique("hsecret");
        let mut with_name = config.clone();
        with_name["name"] = json!(name);
        create_connector(&s, &name, config).await;
        let (_, v) = send(
            &s,
            "PUT",
            "/v1/connector-plugins/HttpSink/config/validate",
            Some(with_name),
        )
        .await;
        assert_eq!(v["error_count"], 0, "{v}");
        assert!(!v.to_string().contains("SECRET"), "{v}");
        names.push(name);
    }
    // Both refused records land in the dead-letter topic, with the answer in the error header.
    let letters = dead_letters(&s, &dlq, 2).await;
    for letter in &letters {
        let message = letter["headers"]["__connect.errors.exception.message"]
            .as_str()
            .unwrap();
        assert!(
            message.contains("answered 401 Unauthorized: refused: you sent"),
            "{message}"
        );
        assert!(message.contains("[hidden]"), "{message}");
        assert!(!message.contains("SECRET") && !message.contains(ENCODED), "{message}");
    }
    for name in &names {
        let (_, config) = send(&s, "GET", &format!("/v1/connectors/{name}/config"), None).await;
        let hidden = if config["auth.type"] == "BEARER" {
            "bearer.token"
        } else {
            "connection.password"
        };
        assert_eq!(config[hidden], "[hidden]", "{config}");
        for path in ["", "/tasks", "/status"] {
            let (_, v) = send(&s, "GET", &format!("/v1/connectors/{name}{path}"), None).await;
            assert!(!v.to_string().contains("SECRET"), "{path}: {v}");
        }
    }
    let logs = s.logs.lock().unwrap().clone();
    assert!(
        logs.iter().any(|l| l.contains("record failed") && l.contains("401")),
        "the failures are logged"
    );
    for line in &logs {
        assert!(
            !line.contains("SECRET") && !line.contains(ENCODED),
            "a secret in a log line: {line}"
        );
    }
}

#[tokio::test]
async fn a_failed_task_restarts_by_itself_when_asked_to() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("auto");
    s.create_topic(&topic, 1, json!({})).await;
    s.produce(&topic, json!({"records": [{"value": {"n": 1}}]})).await;
    // The directory does not exist yet: every write fails, the task fails.
    let out_dir = dir.path().join("later");
    let file = out_dir.join("out.jsonl");
    let name = unique("auto");
    let (st, v) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(
            json!({"name": name, "config": {"connector.class": "FileStreamSink", "file": file, "topics": topic,
            "restart.on.failure": "true", "restart.backoff.max.ms": "500"}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    wait_for(&s, &format!("/v1/connectors/{name}/status"), 20, |v| {
        v["tasks"][0]["state"] == "FAILED"
    })
    .await;
    // Once the cause is gone, a restart with backoff delivers without anyone asking.
    std::fs::create_dir_all(&out_dir).unwrap();
    wait_file(&file, "{\"n\":1}\n").await;
    wait_state(&s, &name, "RUNNING").await;
}

#[tokio::test]
async fn connectors_start_in_their_initial_state_and_keep_secret_references() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("init");
    s.create_topic(&topic, 1, json!({})).await;
    s.produce(&topic, json!({"records": [{"value": 1}]})).await;
    // The sink's file comes from a properties file: the reference is stored and shown, never its value.
    let out = dir.path().join("secret-out.jsonl");
    let props = dir.path().join("sink.properties");
    std::fs::write(&props, format!("out.file={}\n", out.display())).unwrap();
    let reference = format!("${{file:{}:out.file}}", props.display());
    let name = unique("init");
    let (st, v) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(json!({"name": name, "initial_state": "PAUSED",
            "config": {"connector.class": "FileStreamSink", "file": reference, "topics": topic}})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    wait_state(&s, &name, "PAUSED").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!out.exists(), "a connector created paused moved data");
    assert_eq!(
        send(&s, "PUT", &format!("/v1/connectors/{name}/resume"), None).await.0,
        202
    );
    wait_file(&out, "1\n").await;
    for path in [
        format!("/v1/connectors/{name}/config"),
        format!("/v1/connectors/{name}/tasks"),
    ] {
        let (_, v) = send(&s, "GET", &path, None).await;
        let text = v.to_string();
        assert!(text.contains("${file:"), "{path}: {text}");
        assert!(
            !text.contains("secret-out.jsonl"),
            "{path} shows the resolved value: {text}"
        );
    }
    // Created stopped: no task runs, the offsets can be set at once.
    let name2 = unique("init-stopped");
    let (st, _) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(json!({"name": name2, "initial_state": "STOPPED",
            "config": {"connector.class": "FileStreamSink", "file": out, "topics": topic}})),
    )
    .await;
    assert_eq!(st, 201);
    let (_, st2) = send(&s, "GET", &format!("/v1/connectors/{name2}/status"), None).await;
    assert_eq!(
        (
            st2["connector"]["state"].as_str(),
            st2["tasks"].as_array().map(Vec::len)
        ),
        (Some("STOPPED"), Some(0))
    );
    let (st, _) = send(&s, "DELETE", &format!("/v1/connectors/{name2}/offsets"), None).await;
    assert_eq!(st, 200);
}

/// Shutdown tells every connector's tasks to stop at once and gives them one grace period
/// together: two sinks stuck in requests that never get an answer delay it by one period of
/// 10 s, not two.
#[tokio::test]
async fn shutdown_waits_for_stuck_tasks_together() {
    let mut s = Server::start();
    let topic = unique("stuck");
    s.create_topic(&topic, 1, json!({})).await;
    // A receiver that takes requests and never answers them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(conn);
        }
    });
    for name in ["stuck-a", "stuck-b"] {
        let config = json!({"connector.class": "HttpSink", "topics": topic, "http.api.url": url,
            "request.timeout.ms": "120000"});
        create_connector(&s, name, config).await;
    }
    s.produce(&topic, json!({"records": [{"value": 1}]})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while accepted.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "the sinks never sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    s.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(17), "shutdown took {took:?}");
}

/// A table name unique to this process and call (letters, digits and underscores).
fn sql_name(prefix: &str) -> String {
    unique(prefix).replace('-', "_")
}

struct JdbcSourceFixture {
    db: sqlx::PgPool,
    table: String,
    topic: String,
}

#[async_trait]
impl Fixture for JdbcSourceFixture {
    fn config(&self) -> Value {
        json!({"connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
               "connection.url": "jdbc:postgresql://127.0.0.1:5432/test", "mode": "incrementing",
               "incrementing.column.name": "id", "table.whitelist": self.table, "topic.prefix": "cmp-",
               "batch.max.rows": "500", "poll.interval.ms": "20"})
    }

    async fn feed(&self, _s: &Server, range: std::ops::Range<u64>) {
        let sql = format!(
            "INSERT INTO {} (n) SELECT g FROM generate_series({}, {}) g ORDER BY g",
            self.table,
            range.start,
            range.end - 1
        );
        sqlx::query(&sql).execute(&self.db).await.unwrap();
    }

    async fn delivered(&self, s: &Server) -> BTreeMap<u64, usize> {
        let mut out = BTreeMap::new();
        for v in topic_values(s, &self.topic).await {
            *out.entry(v["n"].as_u64().unwrap()).or_default() += 1;
        }
        out
    }

    fn exactly_once(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn jdbc_source_passes_the_compliance_suite() {
    let s = Server::start();
    let db = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap();
    let table = sql_name("cmp_src");
    let create = format!("CREATE TABLE {table} (id SERIAL PRIMARY KEY, n BIGINT NOT NULL)");
    sqlx::query(&create).execute(&db).await.unwrap();
    let topic = format!("cmp-{table}");
    let f = JdbcSourceFixture {
        db: db.clone(),
        table: table.clone(),
        topic,
    };
    compliance(s, &f).await;
    sqlx::query(&format!("DROP TABLE {table}")).execute(&db).await.unwrap();
}

struct JdbcSinkFixture {
    db: sqlx::MySqlPool,
    topic: String,
}

#[async_trait]
impl Fixture for JdbcSinkFixture {
    fn config(&self) -> Value {
        json!({"connector.class": "JdbcSinkConnector", "connection.url": "jdbc:mariadb://127.0.0.1:3306/test",
               "topics": self.topic, "auto.create": "true", "exactly.once": "true",
               "exactly.once.offsets.table": format!("{}_offsets", self.topic)})
    }

    async fn feed(&self, s: &Server, range: std::ops::Range<u64>) {
        let records: Vec<Value> = range.map(|i| json!({"value": {"n": i}})).collect();
        for chunk in records.chunks(500) {
            s.produce(&self.topic, json!({"records": chunk})).await;
        }
    }

    async fn delivered(&self, _s: &Server) -> BTreeMap<u64, usize> {
        let sql = format!("SELECT n FROM `{}`", self.topic);
        let rows: Vec<i64> = sqlx::query_scalar(&sql).fetch_all(&self.db).await.unwrap_or_default();
        let mut out = BTreeMap::new();
        for n in rows {
            *out.entry(n as u64).or_default() += 1;
        }
        out
    }

    /// With `exactly.once=true` the sink repeats nothing, even after `kill -9`.
    fn exactly_once(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn jdbc_sink_exactly_once_passes_the_compliance_suite() {
    let s = Server::start();
    let db = sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/test")
        .await
        .unwrap();
    let topic = sql_name("cmp_sink");
    s.create_topic(&topic, 1, json!({})).await;
    let f = JdbcSinkFixture {
        db: db.clone(),
        topic: topic.clone(),
    };
    compliance(s, &f).await;
    for t in [topic.clone(), format!("{topic}_offsets")] {
        sqlx::query(&format!("DROP TABLE `{t}`")).execute(&db).await.unwrap();
    }
}
