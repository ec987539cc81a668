//! The HTTP sink against a receiver on 127.0.0.1: request shape, batching, authentication,
//! retries and rejections, and config checks.

use super::*;
use crate::connect::config::RawConfig;

fn parsed(pairs: &[(&str, &str)]) -> Parsed {
    let raw: RawConfig = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Parsed::new(&HttpSink.config_def(), &raw).unwrap()
}

#[test]
fn config_problems_name_their_key() {
    let def = HttpSink.config_def();
    let raw: RawConfig = [("http.api.url", "ftp://x")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let v = def.validate("HttpSink", &raw);
    assert!(
        v.messages()
            .iter()
            .any(|m| m.starts_with("http.api.url: ") && m.contains("http://")),
        "{:?}",
        v.messages()
    );
    let problems = HttpSink.validate(&parsed(&[
        ("http.api.url", "http://127.0.0.1/"),
        ("auth.type", "BASIC"),
    ]));
    assert_eq!(problems[0].0, "connection.user");
    let problems = HttpSink.validate(&parsed(&[
        ("http.api.url", "http://127.0.0.1/"),
        ("auth.type", "bearer"),
    ]));
    assert_eq!(problems[0].0, "bearer.token");
    let problems = HttpSink.validate(&parsed(&[
        ("http.api.url", "http://127.0.0.1/"),
        ("headers", "X-A:1|nocolon"),
    ]));
    assert_eq!(
        problems,
        [("headers".to_owned(), "'nocolon' is not a Name:value pair".to_owned())]
    );
    let ok = parsed(&[
        ("http.api.url", "http://127.0.0.1/"),
        ("headers", "X-A:1;X-B: a:b ;Content-Type:application/x-ndjson"),
        ("header.separator", ";"),
    ]);
    let s = Settings::new(&ok).unwrap();
    assert_eq!(s.headers["x-a"], "1");
    assert_eq!(s.headers["x-b"], "a:b");
    assert_eq!(
        s.headers["content-type"], "application/x-ndjson",
        "a given header replaces the default"
    );
    assert!(s.headers.contains_key("user-agent"));
    assert_eq!(s.method, reqwest::Method::POST);
}

#[test]
fn the_shown_url_has_no_credentials_or_query() {
    let p = parsed(&[("http.api.url", "http://u:pw@127.0.0.1:9/in?key=k#f")]);
    assert_eq!(Settings::new(&p).unwrap().shown_url(), "http://127.0.0.1:9/in");
}

// ---- the task against a local receiver ----

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap as AxumHeaders, Method, StatusCode};
use serde_json::{Value, json};

use crate::connect::plugin::{PutError, SinkTask};
use crate::connect::record::ConnectRecord;

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: AxumHeaders,
    body: Value,
}

/// What the receiver answers next: a status and body, after a delay.
#[derive(Clone)]
struct Reply(u16, &'static str, u64);

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 answering per `script`, then 200.
    async fn start(script: &[Reply]) -> (Self, String) {
        let r = Self::default();
        r.script.lock().unwrap().extend(script.iter().cloned());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/in", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(handle).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn handle(
    State(r): State<Receiver>,
    method: Method,
    uri: axum::http::Uri,
    headers: AxumHeaders,
    body: bytes::Bytes,
) -> (StatusCode, String) {
    let reply = r.script.lock().unwrap().pop_front().unwrap_or(Reply(200, "ok", 0));
    r.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_owned(),
        headers: headers.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    tokio::time::sleep(Duration::from_millis(reply.2)).await;
    // Echoes the credentials, as some servers do in their errors.
    let auth = headers.get("authorization").map_or("", |v| v.to_str().unwrap_or(""));
    let body = reply.1.replace("{auth}", auth);
    (StatusCode::from_u16(reply.0).unwrap(), body)
}

fn task(url: &str, extra: &[(&str, &str)]) -> sink::Task {
    let mut pairs = vec![("http.api.url", url), ("retry.backoff.ms", "1")];
    pairs.extend_from_slice(extra);
    let settings = Settings::new(&parsed(&pairs)).unwrap();
    sink::Task::new(settings, "c", 0).unwrap()
}

fn records(n: u64) -> Vec<ConnectRecord> {
    (0..n)
        .map(|i| ConnectRecord {
            partition: Some(0),
            offset: Some(i),
            ..ConnectRecord::new("t", json!({"n": i}))
        })
        .collect()
}

#[tokio::test]
async fn requests_carry_the_method_headers_basic_auth_and_a_json_array_per_batch() {
    let (r, url) = Receiver::start(&[]).await;
    let mut t = task(
        &url,
        &[
            ("request.method", "PUT"),
            ("headers", "X-Source:weir|X-Link: http://a/b"),
            ("auth.type", "BASIC"),
            ("connection.user", "alice"),
            ("connection.password", "pa55"),
            ("batch.max.size", "2"),
        ],
    );
    let mut batch = records(3);
    batch[1].value = Value::Null; // a tombstone is not sent
    t.put(&batch).await.unwrap();
    let seen = r.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].method, Method::PUT);
    assert_eq!(seen[0].path, "/in");
    assert_eq!(seen[0].body, json!([{"n": 0}]));
    assert_eq!(
        seen[1].body,
        json!([{"n": 2}]),
        "batches are arrays even when one value is left"
    );
    let h = &seen[0].headers;
    assert_eq!(h["x-source"], "weir");
    assert_eq!(h["x-link"], "http://a/b");
    assert_eq!(h["content-type"], "application/json");
    // alice:pa55 in base64.
    assert_eq!(h["authorization"], "Basic YWxpY2U6cGE1NQ==");
}

#[tokio::test]
async fn bearer_auth_and_one_value_per_request() {
    let (r, url) = Receiver::start(&[]).await;
    let mut t = task(&url, &[("auth.type", "BEARER"), ("bearer.token", "tok-123")]);
    t.put(&records(2)).await.unwrap();
    let seen = r.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!((&seen[0].body, &seen[1].body), (&json!({"n": 0}), &json!({"n": 1})));
    assert_eq!(seen[1].headers["authorization"], "Bearer tok-123");
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_until_the_request_succeeds() {
    let (r, url) = Receiver::start(&[
        Reply(503, "busy", 0),
        Reply(500, "oops", 0),
        Reply(429, "slow down", 0),
        Reply(200, "late", 500),
    ])
    .await;
    let mut t = task(&url, &[("max.retries", "4"), ("request.timeout.ms", "200")]);
    t.put(&records(1)).await.unwrap();
    assert_eq!(r.seen().len(), 5, "three errors, one timeout, one success");
}

#[tokio::test]
async fn a_request_still_failing_is_handed_back_and_resumed_where_it_stopped() {
    let (r, url) = Receiver::start(&[Reply(200, "", 0), Reply(502, "down", 0), Reply(502, "down", 0)]).await;
    let mut t = task(&url, &[("max.retries", "1"), ("batch.max.size", "2")]);
    let batch = records(4);
    let e = t.put(&batch).await.unwrap_err();
    let PutError::Retriable(msg) = e else { panic!("{e:?}") };
    assert!(
        msg.contains("answered 502 Bad Gateway: down (after 1 retries)"),
        "{msg}"
    );
    assert_eq!(r.seen().len(), 3);
    // The runtime tries the same batch again: the answered first request is not repeated.
    t.put(&batch).await.unwrap();
    let bodies: Vec<Value> = r.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(bodies[3], json!([{"n": 2}, {"n": 3}]), "{bodies:?}");
    assert_eq!(bodies.len(), 4);
}

#[tokio::test]
async fn a_client_error_rejects_every_record_of_its_request_without_showing_secrets() {
    let (r, url) = Receiver::start(&[Reply(200, "", 0), Reply(401, "bad credentials: {auth}", 0)]).await;
    let mut t = task(
        &url,
        &[
            ("auth.type", "BEARER"),
            ("bearer.token", "s3cr3t-tok"),
            ("batch.max.size", "2"),
        ],
    );
    let e = t.put(&records(4)).await.unwrap_err();
    let PutError::Records(failed) = e else { panic!("{e:?}") };
    assert_eq!(failed.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [2, 3]);
    let msg = &failed[0].1;
    assert!(
        msg.contains("401 Unauthorized: bad credentials: Bearer [hidden]"),
        "{msg}"
    );
    assert!(!msg.contains("s3cr3t"), "{msg}");
    assert_eq!(r.seen().len(), 2, "a 4xx is not retried");
}

#[tokio::test]
async fn an_unreachable_url_is_retriable_and_names_the_url_without_credentials() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut t = task(
        &format!("http://bob:hunter22@127.0.0.1:{port}/x?token=q"),
        &[("max.retries", "1")],
    );
    let e = t.put(&records(1)).await.unwrap_err();
    let PutError::Retriable(msg) = e else { panic!("{e:?}") };
    assert!(
        msg.starts_with(&format!("POST http://127.0.0.1:{port}/x: cannot connect")),
        "{msg}"
    );
    assert!(!msg.contains("hunter22") && !msg.contains("token=q"), "{msg}");
}

#[test]
fn the_backoff_doubles_with_jitter_up_to_a_minute_and_honours_retry_after() {
    let t = task("http://127.0.0.1:9/", &[("retry.backoff.ms", "1000")]);
    let ms = Duration::from_millis;
    let first = t.delay(0, None);
    assert!(first >= ms(750) && first <= ms(1000), "{first:?}");
    let fourth = t.delay(3, None);
    assert!(fourth >= ms(6000) && fourth <= ms(8000), "{fourth:?}");
    assert!(t.delay(30, None) <= Duration::from_secs(60));
    assert_eq!(t.delay(0, Some(Duration::from_secs(5))), Duration::from_secs(5));
    assert_eq!(t.delay(0, Some(Duration::from_secs(3600))), Duration::from_secs(60));
}
