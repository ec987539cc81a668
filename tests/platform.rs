//! The broker as a platform, through the real server: members bound to their principal,
//! pattern subscriptions limited to readable topics, descriptions that leak nothing, long polls
//! that end with their credential, commits and config changes in the writer's order, offsets
//! of deleted topics removed, and atomic transactions — exactly once across `kill -9`.
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{ADMIN, Server, auth, client, create_token, expect_problem, unique};
use serde_json::{Value, json};

/// A token with these grants (each `[resource, name, pattern, [ops]]`); returns (id, secret).
async fn token(s: &Server, grants: Value) -> (String, String) {
    let perms: Vec<Value> = grants
        .as_array()
        .unwrap()
        .iter()
        .map(|g| json!({"resource": g[0], "name": g[1], "pattern": g[2], "operations": g[3]}))
        .collect();
    create_token(s, ADMIN, json!({"name": unique("t"), "permissions": perms})).await
}

async fn admin_topic(s: &Server, name: &str, partitions: u32) {
    let r = auth(client().post(s.url("/v1/topics")), ADMIN)
        .json(&json!({"name": name, "partitions": partitions}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn admin_produce(s: &Server, topic: &str, values: &[i64]) {
    let records: Vec<Value> = values.iter().map(|v| json!({"value": v, "partition": 0})).collect();
    let r = auth(client().post(s.url(&format!("/v1/topics/{topic}/records"))), ADMIN)
        .json(&json!({"records": records}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn call(method: &str, s: &Server, token: &str, path: &str, body: Option<Value>) -> reqwest::Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = auth(client().request(m, s.url(path)), token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

async fn join(s: &Server, token: &str, group: &str, body: Value) -> Value {
    let r = call("POST", s, token, &format!("/v1/groups/{group}/members"), Some(body)).await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn members_are_bound_to_their_principal_and_patterns_to_readable_topics() {
    let s = Server::start_admin(&[]);
    let (readable, hidden) = (unique("pat-a"), unique("pat-b"));
    let prefix = readable.split('-').take(2).collect::<Vec<_>>().join("-");
    admin_topic(&s, &readable, 1).await;
    admin_topic(&s, &hidden, 1).await;
    admin_produce(&s, &readable, &[1, 2]).await;
    admin_produce(&s, &hidden, &[3, 4]).await;
    let group = unique("bound");
    let (_, alice) = token(
        &s,
        json!([
            ["topic", readable, "literal", ["read"]],
            ["group", group, "literal", ["read"]]
        ]),
    )
    .await;
    let (_, bob) = token(&s, json!([["group", group, "literal", ["read"]]])).await;

    // A pattern that matches both topics: only the readable one is assigned and served.
    let pattern = format!("{}.*", regex_escape(&prefix));
    let view = join(
        &s,
        &alice,
        &group,
        json!({"topic_pattern": pattern, "auto_offset_reset": "earliest"}),
    )
    .await;
    let member = view["member_id"].as_str().unwrap().to_owned();
    let topics: Vec<&str> = view["assignment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tp| tp["topic"].as_str().unwrap())
        .collect();
    assert_eq!(topics, [readable.as_str()], "{view}");
    let path = format!("/v1/groups/{group}/members/{member}");
    let r = call("GET", &s, &alice, &format!("{path}/records?wait_ms=200"), None).await;
    assert_eq!(r.status(), 200);
    let polled: Value = r.json().await.unwrap();
    let values: Vec<i64> = polled["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_i64().unwrap())
        .collect();
    assert_eq!(values, [1, 2], "only the readable topic is served: {polled}");
    // A topic that appears later and matches is not assigned either.
    let later = format!("{prefix}-later");
    admin_topic(&s, &later, 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = call("POST", &s, &alice, &format!("{path}/heartbeat"), None).await;
    let hb: Value = r.json().await.unwrap();
    assert!(!hb.to_string().contains(&later), "{hb}");

    // Another principal with read on the group cannot act as the member.
    for (method, suffix, body) in [
        ("GET", "/records", None),
        ("POST", "/offsets", Some(json!({"offsets": []}))),
        ("POST", "/heartbeat", None),
        ("POST", "/positions:seek", Some(json!({"to": "earliest"}))),
        ("DELETE", "", None),
    ] {
        let r = call(method, &s, &bob, &format!("{path}{suffix}"), body).await;
        expect_problem(r, 403, "forbidden").await;
    }
    // The description names the member's principal, and leaves out topics Bob may not describe.
    let d: Value = call("GET", &s, &bob, &format!("/v1/groups/{group}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(d["members"][0]["principal"].as_str().unwrap().starts_with("token:"));
    assert_eq!(d["partitions"], json!([]), "{d}");
    assert_eq!(d["members"][0]["assignment"], json!([]), "{d}");
    let d: Value = call("GET", &s, ADMIN, &format!("/v1/groups/{group}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["partitions"][0]["topic"], readable.as_str(), "{d}");
    // Alice still is the member.
    let r = call("DELETE", &s, &alice, &path, None).await;
    assert_eq!(r.status(), 204);
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[tokio::test]
async fn long_polls_end_when_their_token_is_revoked() {
    let s = Server::start_admin(&[]);
    let topic = unique("lp");
    admin_topic(&s, &topic, 1).await;
    let group = unique("lpg");
    let (id, t) = token(
        &s,
        json!([
            ["topic", topic, "literal", ["read"]],
            ["group", group, "literal", ["read"]]
        ]),
    )
    .await;
    let view = join(&s, &t, &group, json!({"topics": [topic]})).await;
    let member = view["member_id"].as_str().unwrap().to_owned();
    let (fetch_path, poll_path) = (
        format!("/v1/topics/{topic}/partitions/0/records?offset=latest&wait_ms=30000"),
        format!("/v1/groups/{group}/members/{member}/records?wait_ms=30000"),
    );
    let fetch = call("GET", &s, &t, &fetch_path, None);
    let poll = call("GET", &s, &t, &poll_path, None);
    let revoke = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = call("DELETE", &s, ADMIN, &format!("/v1/tokens/{id}"), None).await;
        assert_eq!(r.status(), 204);
    };
    let started = std::time::Instant::now();
    let (f, p, ()) = tokio::join!(fetch, poll, revoke);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the long polls outlived the token"
    );
    for r in [f, p] {
        let body = expect_problem(r, 401, "unauthenticated").await;
        assert!(body["detail"].as_str().unwrap().contains("revoked"), "{body}");
    }
}

#[tokio::test]
async fn commits_and_config_changes_apply_in_the_writers_order() {
    let mut s = Server::start();
    let topic = unique("order");
    s.create_topic(&topic, 1, json!({})).await;
    let values: Vec<Value> = (0..100).map(|i| json!({"value": i})).collect();
    s.produce(&topic, json!({"records": values})).await;
    let group = unique("og");
    let r = client()
        .post(s.url(&format!("/v1/groups/{group}/members")))
        .json(&json!({"topics": [topic]}))
        .send()
        .await
        .unwrap();
    let member: Value = r.json().await.unwrap();
    let member = member["member_id"].as_str().unwrap().to_owned();
    // Many concurrent commits: whatever order they land in, memory is what the disk holds.
    let commits = (1..=60u64).map(|o| {
        client()
            .post(s.url(&format!("/v1/groups/{group}/members/{member}/offsets")))
            .json(&json!({"offsets": [{"topic": topic, "partition": 0, "offset": o}]}))
            .send()
    });
    for r in futures::future::join_all(commits).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    // Concurrent changes of different config keys are all kept.
    let patches = (0..20).map(|i| {
        let body = if i % 2 == 0 {
            json!({"config": {"retention.ms": 1_000_000 + i}})
        } else {
            json!({"config": {"max.message.bytes": 2_000_000 + i}})
        };
        client().patch(s.url(&format!("/v1/topics/{topic}"))).json(&body).send()
    });
    for r in futures::future::join_all(patches).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    let t = s.get_json(&format!("/v1/topics/{topic}")).await;
    let retention = t["config"]["retention.ms"].as_i64().unwrap();
    let max_bytes = t["config"]["max.message.bytes"].as_i64().unwrap();
    assert!((1_000_000..1_000_020).contains(&retention), "{t}");
    assert!((2_000_000..2_000_020).contains(&max_bytes), "{t}");

    let in_memory = s.get_json(&format!("/v1/groups/{group}")).await["partitions"][0]["committed_offset"].clone();
    s.stop();
    s.restart();
    let on_disk = s.get_json(&format!("/v1/groups/{group}")).await["partitions"][0]["committed_offset"].clone();
    assert_eq!(in_memory, on_disk);
    let t2 = s.get_json(&format!("/v1/topics/{topic}")).await;
    assert_eq!(t["config"], t2["config"]);
}

#[tokio::test]
async fn offsets_of_a_deleted_topic_are_removed() {
    let mut s = Server::start();
    let topic = unique("gone");
    s.create_topic(&topic, 2, json!({})).await;
    s.produce(&topic, json!({"records": [{"value": 1, "partition": 0}]}))
        .await;
    let group = unique("gg");
    let r = client()
        .post(s.url(&format!("/v1/groups/{group}/offsets:reset")))
        .json(&json!({"to": "latest", "topics": [topic]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.get_json(&format!("/v1/groups/{group}")).await["partitions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = client()
        .delete(s.url(&format!("/v1/topics/{topic}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The group held nothing else: it is gone with the offsets.
    let r = client()
        .get(s.url(&format!("/v1/groups/{group}")))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "group_not_found").await;
    // A topic of the same name starts with no committed offsets, also after a restart.
    s.create_topic(&topic, 2, json!({})).await;
    s.stop();
    s.restart();
    let r = client()
        .get(s.url(&format!("/v1/groups/{group}")))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "group_not_found").await;
}

/// Joins `group` on `topic` as an anonymous member and returns (member id, generation).
async fn join_anon(s: &Server, group: &str, topic: &str) -> (String, u64) {
    let r = client()
        .post(s.url(&format!("/v1/groups/{group}/members")))
        .json(&json!({"topics": [topic], "auto_offset_reset": "earliest"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (
        v["member_id"].as_str().unwrap().into(),
        v["generation"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn transactions_write_everything_or_nothing() {
    let s = Server::start();
    let (input, out_a, out_b) = (unique("tin"), unique("touta"), unique("toutb"));
    s.create_topic(&input, 1, json!({})).await;
    s.create_topic(&out_a, 2, json!({})).await;
    s.create_topic(&out_b, 1, json!({})).await;
    s.produce(&input, json!({"records": [{"value": 1}, {"value": 2}]}))
        .await;
    let group = unique("tg");
    let (member, generation) = join_anon(&s, &group, &input).await;
    let txn = |body: Value| client().post(s.url("/v1/transactions")).json(&body).send();

    let r = txn(json!({
        "produce": [
            {"topic": out_a, "records": [{"key": "k1", "value": {"n": 1}}, {"value": 2, "partition": 1}]},
            {"topic": out_b, "key_format": "string", "records": [{"key": "x", "value": "y"}]}],
        "commit": {"group": group, "member_id": member, "generation": generation,
                   "offsets": [{"topic": input, "partition": 0, "offset": 1}]}}))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["produce"][0]["results"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["produce"][1]["results"][0]["offset"], 0, "{v}");
    assert_eq!(v["committed"][0]["offset"], 1, "{v}");
    let committed = |s: &Server| {
        let url = s.url(&format!("/v1/groups/{group}"));
        async move {
            let d: Value = client().get(url).send().await.unwrap().json().await.unwrap();
            d["partitions"][0]["committed_offset"].clone()
        }
    };
    assert_eq!(committed(&s).await, 1);

    // A stale generation: 409, and neither the records nor the commit are written.
    let before = s.fetch(&out_b, 0, "offset=earliest").await["high_watermark"].clone();
    let r = txn(json!({
        "produce": [{"topic": out_b, "records": [{"value": 3}]}],
        "commit": {"group": group, "member_id": member, "generation": generation + 5,
                   "offsets": [{"topic": input, "partition": 0, "offset": 2}]}}))
    .await
    .unwrap();
    expect_problem(r, 409, "illegal_generation").await;
    // A bad record anywhere: 400 naming it, nothing written.
    let r = txn(json!({
        "produce": [{"topic": out_b, "records": [{"value": 3}]},
                    {"topic": out_a, "value_format": "binary", "records": [{"value": "x"}, {"value": "!!"}]}],
        "commit": {"group": group, "member_id": member, "generation": generation,
                   "offsets": [{"topic": input, "partition": 0, "offset": 2}]}}))
    .await
    .unwrap();
    let p = expect_problem(r, 400, "invalid_base64").await;
    assert_eq!(p["field"], "produce[1].records[0].value", "{p}");
    // Offsets past the end: 416, nothing written.
    let r = txn(json!({
        "produce": [{"topic": out_b, "records": [{"value": 3}]}],
        "commit": {"group": group, "member_id": member, "generation": generation,
                   "offsets": [{"topic": input, "partition": 0, "offset": 99}]}}))
    .await
    .unwrap();
    expect_problem(r, 416, "offset_out_of_range").await;
    assert_eq!(s.fetch(&out_b, 0, "offset=earliest").await["high_watermark"], before);
    assert_eq!(committed(&s).await, 1);
    // Commit-only and produce-only transactions are valid; an empty one is not.
    let r = txn(
        json!({"commit": {"group": group, "member_id": member, "generation": generation,
        "offsets": [{"topic": input, "partition": 0, "offset": 2}]}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(committed(&s).await, 2);
    let r = txn(json!({"produce": [{"topic": out_b, "records": [{"value": 4}]}]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = txn(json!({})).await.unwrap();
    expect_problem(r, 400, "invalid_parameter").await;
}

#[tokio::test]
async fn a_transactional_loop_is_exactly_once_across_kill_9() {
    let mut s = Server::start();
    let (input, output) = (unique("eo-in"), unique("eo-out"));
    s.create_topic(&input, 2, json!({})).await;
    s.create_topic(&output, 1, json!({})).await;
    const N: i64 = 300;
    for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
        let records: Vec<Value> = chunk.iter().map(|i| json!({"value": i, "partition": i % 2})).collect();
        s.produce(&input, json!({"records": records})).await;
    }
    let group = unique("eo");
    let mut kills = 0;
    loop {
        // Run the loop until a kill at a random moment (or until all input is consumed).
        let done = tokio::select! {
            done = transform_loop(&s, &group, &input, &output) => done,
            _ = tokio::time::sleep(Duration::from_millis(150 + 97 * kills)) => false,
        };
        if done {
            break;
        }
        s.kill9();
        kills += 1;
        s.restart();
        assert!(kills < 40, "the loop never finished");
    }
    assert!(kills >= 2, "the test must kill the server mid-loop (kills: {kills})");
    let out = s.fetch(&output, 0, "offset=earliest&max_records=10000").await;
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for r in out["records"].as_array().unwrap() {
        *seen.entry(r["value"]["in"].as_i64().unwrap()).or_default() += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "duplicates after {kills} kills: {dupes:?}");
    assert_eq!(seen.len() as i64, N, "every input exactly once after {kills} kills");
}

/// Consumes `input` as a member of `group`, writing each record's transform to `output` and
/// committing its offset in the same transaction. Returns true once the whole input is done.
async fn transform_loop(s: &Server, group: &str, input: &str, output: &str) -> bool {
    let (member, mut generation) = join_anon(s, group, input).await;
    let base = format!("/v1/groups/{group}/members/{member}");
    loop {
        let r = client()
            .get(s.url(&format!("{base}/records?max_records=7&wait_ms=300")))
            .send()
            .await;
        let Ok(r) = r else { return false };
        let status = r.status().as_u16();
        let Ok(v) = r.json::<Value>().await else { return false };
        if status == 409 {
            generation = v["generation"].as_u64().unwrap_or(generation);
            continue;
        }
        assert_eq!(status, 200, "{v}");
        let records = v["records"].as_array().unwrap();
        if records.is_empty() {
            return true;
        }
        generation = v["generation"].as_u64().unwrap();
        let out: Vec<Value> = records
            .iter()
            .map(|r| json!({"value": {"in": r["value"], "p": r["partition"]}}))
            .collect();
        let mut next: BTreeMap<u64, u64> = BTreeMap::new();
        for r in records {
            next.insert(r["partition"].as_u64().unwrap(), r["offset"].as_u64().unwrap() + 1);
        }
        let offsets: Vec<Value> = next
            .iter()
            .map(|(p, o)| json!({"topic": input, "partition": p, "offset": o}))
            .collect();
        let body = json!({"produce": [{"topic": output, "records": out}],
            "commit": {"group": group, "member_id": member, "generation": generation, "offsets": offsets}});
        match client().post(s.url("/v1/transactions")).json(&body).send().await {
            Ok(r) if r.status() == 200 => {}
            // One member at a time: nothing fences it (a 409 would leave its positions ahead).
            Ok(r) => panic!("transaction failed: {}", r.text().await.unwrap_or_default()),
            Err(_) => return false,
        }
    }
}
