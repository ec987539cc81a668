//! Topic administration through HTTP.
mod common;

use common::{Server, client, expect_problem};
use serde_json::{Value, json};

#[tokio::test]
async fn create_list_describe_alter_delete() {
    let s = Server::start();
    let t = s.create_topic("orders", 3, json!({"retention.ms": 86_400_000})).await;
    assert_eq!(t["name"], "orders");
    assert_eq!(t["partition_count"], 3);
    assert_eq!(t["config"]["retention.ms"], 86_400_000);
    assert_eq!(t["config"]["retention.bytes"], -1);
    assert_eq!(t["config"]["cleanup.policy"], "delete");
    assert_eq!(t["config"]["durability"], "wal");
    assert_eq!(t["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(
        t["partitions"][2],
        json!({"partition": 2, "earliest_offset": 0, "next_offset": 0, "records": 0, "bytes": 0})
    );

    s.create_topic("clicks", 1, json!({})).await;
    let list: Value = s.get_json("/v1/topics").await;
    let names: Vec<_> = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["clicks", "orders"]);

    s.produce(
        "orders",
        json!({"records": [{"value": 1, "partition": 1}, {"value": 2, "partition": 1}]}),
    )
    .await;
    let d: Value = s.get_json("/v1/topics/orders").await;
    assert_eq!(d["partitions"][1]["next_offset"], 2);
    assert_eq!(d["partitions"][1]["records"], 2);
    assert!(d["partitions"][1]["bytes"].as_u64().unwrap() > 0);

    let r = client()
        .patch(s.url("/v1/topics/orders"))
        .json(&json!({"partitions": 5, "config": {"retention.ms": null, "durability": "fsync", "max.message.bytes": "2048"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["partition_count"], 5);
    assert_eq!(a["config"]["retention.ms"], 604_800_000);
    assert_eq!(a["config"]["durability"], "fsync");
    assert_eq!(a["config"]["max.message.bytes"], 2048);
    // The new partitions take records.
    let p = s
        .produce("orders", json!({"records": [{"value": 3, "partition": 4}]}))
        .await;
    assert_eq!(p["results"][0]["partition"], 4);

    let r = client().delete(s.url("/v1/topics/orders")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    expect_problem(
        client().get(s.url("/v1/topics/orders")).send().await.unwrap(),
        404,
        "topic_not_found",
    )
    .await;
    expect_problem(
        client().delete(s.url("/v1/topics/orders")).send().await.unwrap(),
        404,
        "topic_not_found",
    )
    .await;
}

#[tokio::test]
async fn recreated_topic_never_shows_old_records() {
    let s = Server::start();
    s.create_topic("t", 1, json!({})).await;
    s.produce("t", json!({"records": [{"value": "old-1"}, {"value": "old-2"}]}))
        .await;
    assert_eq!(
        client().delete(s.url("/v1/topics/t")).send().await.unwrap().status(),
        204
    );
    let t = s.create_topic("t", 1, json!({})).await;
    assert_eq!(t["partitions"][0]["next_offset"], 0);
    let f = s.fetch("t", 0, "offset=earliest").await;
    assert_eq!(f["records"], json!([]));
    s.produce("t", json!({"records": [{"value": "new"}]})).await;
    let f = s.fetch("t", 0, "offset=0").await;
    assert_eq!(f["records"].as_array().unwrap().len(), 1);
    assert_eq!(f["records"][0]["value"], "new");
    assert_eq!(f["records"][0]["offset"], 0);
}

#[tokio::test]
async fn invalid_topics_and_configs_are_rejected_with_codes() {
    let s = Server::start();
    let post = |body: Value| client().post(s.url("/v1/topics")).json(&body).send();
    for name in ["", ".", "..", "has space", "slash/y", &"x".repeat(250)] {
        let p = expect_problem(post(json!({"name": name})).await.unwrap(), 400, "invalid_topic_name").await;
        assert_eq!(p["field"], "name");
    }
    let p = expect_problem(
        post(json!({"name": "a", "config": {"cleanup.policy": "compact"}}))
            .await
            .unwrap(),
        400,
        "invalid_config",
    )
    .await;
    assert_eq!(p["field"], "config.cleanup.policy");
    assert!(p["detail"].as_str().unwrap().contains("compact"));
    let p = expect_problem(
        post(json!({"name": "a", "config": {"retention.ms": "soon"}}))
            .await
            .unwrap(),
        400,
        "invalid_config",
    )
    .await;
    assert_eq!(p["field"], "config.retention.ms");
    let p = expect_problem(
        post(json!({"name": "a", "config": {"segment.bytes": 1}}))
            .await
            .unwrap(),
        400,
        "invalid_config",
    )
    .await;
    assert_eq!(p["field"], "config.segment.bytes");
    let p = expect_problem(
        post(json!({"name": "a", "partitions": 0})).await.unwrap(),
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(p["field"], "partitions");
    let p = expect_problem(
        post(json!({"name": "a", "partitions": "two"})).await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert_eq!(p["field"], "partitions");
    let p = expect_problem(post(json!({"nam": "a"})).await.unwrap(), 400, "invalid_json").await;
    assert!(p["detail"].as_str().unwrap().contains("nam"));
    let r = client()
        .post(s.url("/v1/topics"))
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_json").await;
    let r = client()
        .post(s.url("/v1/topics"))
        .header("content-type", "text/xml")
        .body("<a/>")
        .send()
        .await
        .unwrap();
    expect_problem(r, 415, "unsupported_media_type").await;

    s.create_topic("dup", 2, json!({})).await;
    expect_problem(post(json!({"name": "dup"})).await.unwrap(), 409, "topic_already_exists").await;
    let r = client()
        .patch(s.url("/v1/topics/dup"))
        .json(&json!({"partitions": 1}))
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, 400, "invalid_parameter").await;
    assert_eq!(p["field"], "partitions");
    let r = client()
        .patch(s.url("/v1/topics/dup"))
        .json(&json!({"config": {"durability": "sometimes"}}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_config").await;
    // Nothing was changed by the rejected requests.
    let d: Value = s.get_json("/v1/topics/dup").await;
    assert_eq!(d["partition_count"], 2);
    assert_eq!(d["config"]["durability"], "wal");
    let list: Value = s.get_json("/v1/topics").await;
    assert_eq!(list["topics"].as_array().unwrap().len(), 1);

    expect_problem(client().get(s.url("/v1/nope")).send().await.unwrap(), 404, "not_found").await;
    expect_problem(
        client().put(s.url("/v1/topics")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
}
