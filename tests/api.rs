//! The API's self-description: OpenAPI document, docs page, health, readiness and metrics.
mod common;

use common::{Server, client};
use serde_json::{Value, json};

#[tokio::test]
async fn served_openapi_equals_the_committed_spec() {
    let s = Server::start();
    let served: Value = s.get_json("/openapi.json").await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let generated = weir::http::openapi::spec_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        served, committed,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test --test api` or `weir openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_operation_is_documented_with_examples_and_errors() {
    let spec: Value = serde_json::from_str(&weir::http::openapi::spec_json()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let has_example = |content: &Value| -> bool {
        content.as_object().unwrap().values().any(|media| {
            if media.get("example").is_some() || media.get("examples").is_some() {
                return true;
            }
            let schema = &media["schema"];
            let target = schema["$ref"]
                .as_str()
                .and_then(|r| r.rsplit('/').next())
                .map(|n| &schemas[n])
                .unwrap_or(schema);
            target.get("example").is_some()
        })
    };
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let name = format!("{method} {path}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: no summary"
            );
            let responses = op["responses"].as_object().unwrap();
            let ok = responses
                .iter()
                .find(|(code, _)| code.starts_with('2') || code.as_str() == "101")
                .unwrap_or_else(|| panic!("{name}: no success"));
            // 204 and 202 (accepted, as Kafka Connect answers pause and resume) carry no body.
            if ok.0 != "204" && !(ok.0 == "202" && ok.1.get("content").is_none()) {
                assert!(has_example(&ok.1["content"]), "{name}: no response example");
            }
            if let Some(body) = op.get("requestBody") {
                assert!(has_example(&body["content"]), "{name}: no request example");
            }
            if path.starts_with("/v1/") {
                assert!(
                    responses.keys().any(|c| c.starts_with('4') || c.starts_with('5')),
                    "{name}: no error responses"
                );
            }
            let grants = op["x-weir-permissions"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: no x-weir-permissions"));
            for g in grants {
                let resource = g["resource"].as_str().unwrap_or_default();
                let operation = g["operation"].as_str().unwrap_or_default();
                assert!(
                    ["topic", "group", "connector", "query", "cluster"].contains(&resource)
                        && ["read", "write", "create", "delete", "alter", "describe"].contains(&operation)
                        && g["name"].as_str().is_some_and(|n| !n.is_empty()),
                    "{name}: bad grant {g}"
                );
            }
            // Cookie and query tokens are declared exactly where they are accepted.
            let ambient = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.get("access_token").is_some() || r.get("weir_token").is_some())
            });
            let streams = path.ends_with("/events") || path.ends_with("/ws");
            assert_eq!(
                ambient,
                streams && method == "get",
                "{name}: security {}",
                op["security"]
            );
        }
    }
    assert!(operations >= 10, "only {operations} operations");
    assert_eq!(spec["security"], json!([{"bearer": []}]));
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        (&schemes["access_token"]["in"], &schemes["weir_token"]["in"]),
        (&json!("query"), &json!("cookie"))
    );
}

#[tokio::test]
async fn docs_health_ready_and_metrics() {
    let s = Server::start();
    let r = client().get(s.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger"), "{html}");
    assert!(
        !html.contains("https://"),
        "the docs page must not load anything from the internet"
    );
    let js = client().get(s.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    // No call to Swagger's online validator; the bearer scheme is there for the console's Authorize.
    let init = client()
        .get(s.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
    assert!(init.contains("/openapi.json"), "{init}");
    let served: Value = s.get_json("/openapi.json").await;
    assert_eq!(served["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(s.get_json("/healthz").await, json!({"status": "ok"}));
    assert_eq!(s.get_json("/readyz").await, json!({"status": "ready"}));

    s.create_topic("m", 1, json!({})).await;
    s.produce("m", json!({"records": [{"value": "x"}, {"value": "y"}]}))
        .await;
    s.fetch("m", 0, "offset=0").await;
    // Made-up methods are counted under one label, not one series each.
    for m in ["FOO1", "FOO2"] {
        let r = client()
            .request(reqwest::Method::from_bytes(m.as_bytes()).unwrap(), s.url("/v1/topics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
    }
    let text = s.get_text("/metrics").await;
    for needle in [
        "weir_records_in_total{topic=\"m\"} 2",
        "weir_records_out_total{topic=\"m\"} 2",
        "weir_bytes_in_total{topic=\"m\"}",
        "weir_bytes_out_total{topic=\"m\"}",
        "weir_produce_duration_seconds_bucket",
        "weir_fetch_duration_seconds_bucket",
        "weir_http_requests_total{route=\"/v1/topics/{topic}/records\",method=\"POST\",status=\"200\"} 1",
        "weir_http_request_duration_seconds_bucket",
        "weir_storage_bytes",
        "weir_store_immutable_memtables 0",
        "weir_store_write_stopped 0",
        "weir_http_requests_total{route=\"/v1/topics\",method=\"OTHER\",status=\"405\"} 2",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    assert!(!text.contains("FOO1"), "a made-up method became a label:\n{text}");
}
