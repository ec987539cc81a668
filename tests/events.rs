//! Server-Sent Events: live delivery and resumption with Last-Event-ID.
mod common;

use std::time::Duration;

use common::{Events, Server, client, expect_problem};
use serde_json::{Value, json};

#[tokio::test]
async fn sse_streams_live_records_and_resumes_by_last_event_id() {
    let s = Server::start();
    s.create_topic("sse", 2, json!({})).await;
    s.produce("sse", json!({"records": [{"value": "a", "partition": 0}, {"value": "b", "partition": 1}, {"value": "c", "partition": 0}]}))
        .await;

    let mut ev = Events::open(&s.url("/v1/topics/sse/events?offset=earliest")).await;
    let mut seen = Vec::new();
    let mut second_id = String::new();
    for i in 0..3 {
        let (id, event, data) = ev.next().await;
        assert_eq!(event, "record");
        assert_eq!(data["topic"], "sse");
        seen.push(data["value"].as_str().unwrap().to_owned());
        if i == 1 {
            second_id = id;
        }
    }
    let first_two: Vec<String> = seen[..2].to_vec();
    seen.sort();
    assert_eq!(seen, ["a", "b", "c"]);

    // Live: a record written now arrives on the open stream.
    s.produce("sse", json!({"records": [{"value": "live", "partition": 1}]}))
        .await;
    let (_, _, data) = ev.next().await;
    assert_eq!(data["value"], "live");
    assert_eq!(data["partition"], 1);
    drop(ev);

    // Resume after the second event: the rest, and what was written meanwhile, exactly once.
    s.produce("sse", json!({"records": [{"value": "later", "partition": 0}]}))
        .await;
    let r = client()
        .get(s.url("/v1/topics/sse/events"))
        .header("last-event-id", &second_id)
        .send()
        .await
        .unwrap();
    let mut ev = Events::new(r);
    let mut rest = Vec::new();
    for _ in 0..3 {
        let (_, _, data) = ev.next().await;
        rest.push(data["value"].as_str().unwrap().to_owned());
    }
    rest.sort();
    // Everything after the second event, once: the remaining first-round record, "live", "later".
    let mut want: Vec<String> = ["a", "b", "c", "live", "later"]
        .iter()
        .map(|v| v.to_string())
        .filter(|v| !first_two.contains(v))
        .collect();
    want.sort();
    assert_eq!(rest, want);
    // And nothing more.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), ev.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn sse_single_partition_from_offset_and_bad_input() {
    let s = Server::start();
    s.create_topic("one", 2, json!({})).await;
    let records: Vec<Value> = (0..5).map(|i| json!({"value": i, "partition": 1})).collect();
    s.produce("one", json!({"records": records})).await;
    let r = client()
        .get(s.url("/v1/topics/one/events?partition=1&offset=3"))
        .send()
        .await
        .unwrap();
    let mut ev = Events::new(r);
    let (id, _, data) = ev.next().await;
    assert_eq!(data["offset"], 3);
    assert_eq!(id, "1:4");
    let (id, _, data) = ev.next().await;
    assert_eq!(data["offset"], 4);
    assert_eq!(id, "1:5");

    let get = |q: &str| client().get(s.url(&format!("/v1/topics/one/events{q}"))).send();
    expect_problem(get("?partition=9").await.unwrap(), 404, "partition_not_found").await;
    expect_problem(get("?offset=2").await.unwrap(), 400, "invalid_parameter").await;
    expect_problem(get("?partition=1&offset=99").await.unwrap(), 416, "offset_out_of_range").await;
    let r = client()
        .get(s.url("/v1/topics/one/events"))
        .header("last-event-id", "garbage")
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_parameter").await;
    expect_problem(
        client().get(s.url("/v1/topics/none/events")).send().await.unwrap(),
        404,
        "topic_not_found",
    )
    .await;
}
