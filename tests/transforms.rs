//! Single Message Transforms through the real server: a FileStreamSink whose chain filters,
//! hoists, reroutes and enriches records writes exactly what Connect would; the plugin listing
//! shows every transform and predicate; `validate` reports a bad transform key under its name.
mod common;

use std::time::{Duration, Instant};

use common::{Server, send, unique};
use serde_json::{Value, json};

/// The file's JSON lines once it has `n` of them (waits up to 20 s).
async fn lines(path: &std::path::Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(Instant::now() < deadline, "only {} lines: {text}", lines.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_sink_chain_filters_hoists_routes_and_inserts() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let topic = unique("orders");
    s.create_topic(&topic, 1, json!({})).await;
    s.produce(
        &topic,
        json!({"records": [
            {"value": "a"},
            {"value": "b", "headers": {"skip": "yes"}},
            {"value": {"x": 1}},
            {"value": "c", "headers": {"other": "1"}},
        ]}),
    )
    .await;
    let config = json!({
        "connector.class": "FileStreamSink", "file": file, "topics": topic,
        "transforms": "dropSkipped,wrap,route,tag",
        "transforms.dropSkipped.type": "org.apache.kafka.connect.transforms.Filter",
        "transforms.dropSkipped.predicate": "isSkipped",
        "transforms.wrap.type": "org.apache.kafka.connect.transforms.HoistField$Value",
        "transforms.wrap.field": "line",
        "transforms.route.type": "RegexRouter",
        "transforms.route.regex": "(\\w+)-(.*)",
        "transforms.route.replacement": "routed-$1",
        "transforms.tag.type": "InsertField$Value",
        "transforms.tag.topic.field": "topic",
        "transforms.tag.offset.field": "offset!",
        "transforms.tag.static.field": "source",
        "transforms.tag.static.value": "weir",
        "predicates": "isSkipped",
        "predicates.isSkipped.type": "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
        "predicates.isSkipped.name": "skip",
    });
    let (st, v) = send(
        &s,
        "POST",
        "/v1/connectors",
        Some(json!({"name": unique("chain"), "config": config})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let got = lines(&file, 3).await;
    let line = |value: Value, offset: u64| json!({"line": value, "offset": offset, "source": "weir", "topic": "routed-orders"});
    assert_eq!(
        got,
        [line(json!("a"), 0), line(json!({"x": 1}), 2), line(json!("c"), 3)]
    );
}

#[tokio::test]
async fn plugins_list_every_transform_and_validate_names_the_bad_key() {
    let s = Server::start();
    let (st, plugins) = send(&s, "GET", "/v1/connector-plugins?connectorsOnly=false", None).await;
    assert_eq!(st, 200);
    let of_type = |t: &str| -> Vec<String> {
        plugins
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == t)
            .map(|p| p["class"].as_str().unwrap().to_owned())
            .collect()
    };
    let transforms = of_type("transformation");
    let keyed = [
        "Cast",
        "ExtractField",
        "Flatten",
        "HeaderFrom",
        "HoistField",
        "InsertField",
        "MaskField",
        "ReplaceField",
        "TimestampConverter",
    ];
    let mut expected: Vec<String> = keyed
        .iter()
        .flat_map(|n| ["Key", "Value"].map(|side| format!("org.apache.kafka.connect.transforms.{n}${side}")))
        .chain(
            [
                "DropHeaders",
                "Filter",
                "InsertHeader",
                "RegexRouter",
                "TimestampRouter",
                "ValueToKey",
            ]
            .map(|n| format!("org.apache.kafka.connect.transforms.{n}")),
        )
        .chain(["io.debezium.transforms.ExtractNewRecordState".to_owned()])
        .collect();
    let mut listed = transforms.clone();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    let mut predicates = of_type("predicate");
    predicates.sort();
    assert_eq!(
        predicates,
        ["HasHeaderKey", "RecordIsTombstone", "TopicNameMatches"]
            .map(|n| format!("org.apache.kafka.connect.transforms.predicates.{n}"))
    );
    // A transform's keys are listed from its definition.
    let (st, defs) = send(
        &s,
        "GET",
        "/v1/connector-plugins/org.apache.kafka.connect.transforms.RegexRouter/config",
        None,
    )
    .await;
    assert_eq!(st, 200, "{defs}");
    let names: Vec<&str> = defs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["regex", "replacement"]);

    let config = |regex: &str| {
        json!({"connector.class": "FileStreamSink", "name": "x", "file": "/tmp/x", "topics": "t",
               "transforms": "x", "transforms.x.type": "RegexRouter",
               "transforms.x.regex": regex, "transforms.x.replacement": "$1"})
    };
    let path = "/v1/connector-plugins/FileStreamSink/config/validate";
    let (st, v) = send(&s, "PUT", path, Some(config("(a)-(.*)"))).await;
    assert_eq!((st, &v["error_count"]), (200, &json!(0)), "{v}");
    let (st, v) = send(&s, "PUT", path, Some(config("(unclosed"))).await;
    assert_eq!((st, &v["error_count"]), (200, &json!(1)), "{v}");
    let bad = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"]["name"] == "transforms.x.regex")
        .unwrap_or_else(|| panic!("no report for transforms.x.regex: {v}"));
    assert_eq!(bad["value"]["value"], "(unclosed");
    let error = bad["value"]["errors"][0].as_str().unwrap();
    assert!(error.contains("not a regular expression"), "{error}");
}
