//! Hardening of the HTTP door through the real server: streams that end when their credential
//! does, JWT leeway, where ambient credentials (cookie, query token) are accepted, header-read
//! and idle timeouts, the bound on memory held by request bodies, and configs refused at load.
mod common;

use std::process::Command;
use std::time::Duration;

use common::{ADMIN, Server, auth, client, create_token, expect_problem};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const JWT_SECRET: &str = "jwt-secret-for-tests-0123456789";

fn epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn jwt(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A server with an admin token and HS256 JWTs, and a topic `orders`.
async fn secured(args: &[&str]) -> Server {
    let s = Server::start_env(
        args,
        &[("WEIR_ADMIN_TOKEN", ADMIN), ("WEIR_JWT_HS256_SECRET", JWT_SECRET)],
    );
    let r = auth(client().post(s.url("/v1/topics")), ADMIN)
        .json(&json!({"name": "orders"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    s
}

#[test]
fn cors_wildcard_origin_with_credentials_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--cors-allowed-origins", "*", "--cors-allow-credentials"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "weir started: {err}");
    assert_eq!(out.status.code(), Some(1), "a clean error exit, not a panic: {err}");
    assert!(
        err.contains("cors_allowed_origins") && err.contains("cors_allow_credentials"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test]
async fn jwt_expiry_leeway_is_a_setting_of_a_few_seconds() {
    let s = secured(&[]).await;
    let claims = |exp: i64| json!({"sub": "alice", "exp": exp, "weir_permissions": "topic:orders:read"});
    let fetch = |t: String| auth(client().get(s.url("/v1/topics/orders/partitions/0/records")), &t).send();
    assert_eq!(fetch(jwt(claims(epoch() + 60))).await.unwrap().status(), 200);
    // Expired 10 s ago: within the 30 s the server once allowed, beyond the default 5 s.
    let p = expect_problem(fetch(jwt(claims(epoch() - 10))).await.unwrap(), 401, "unauthenticated").await;
    assert!(p["detail"].as_str().unwrap().contains("JWT rejected"), "{p}");
    // The leeway is configurable.
    let lenient = secured(&["--jwt-leeway-secs", "60"]).await;
    let r = auth(
        client().get(lenient.url("/v1/topics/orders/partitions/0/records")),
        &jwt(claims(epoch() - 10)),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
}

/// Mints an API token with the given grants.
async fn token(s: &Server, permissions: Value) -> (String, String) {
    create_token(s, ADMIN, json!({"name": "app", "permissions": permissions})).await
}

/// A WebSocket handshake with extra headers: the HTTP status the server answered.
async fn ws_status(url: &str, headers: &[(&str, &str)]) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => resp.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("websocket handshake to {url}: {e}"),
    }
}

#[tokio::test]
async fn cookie_and_query_tokens_only_open_event_streams_and_websockets() {
    let s = secured(&[]).await;
    // A topic named like the stream route's last segment: matching by suffix would let it in.
    let r = auth(client().post(s.url("/v1/topics")), ADMIN)
        .json(&json!({"name": "events"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (_, t) = token(
        &s,
        json!([{"resource": "topic", "name": "", "pattern": "prefix", "operations": ["read", "write"]},
               {"resource": "group", "name": "g", "operations": ["read"]}]),
    )
    .await;
    let cookie = format!("weir_token={t}");
    // A cross-site form post: text/plain, the cookie attached by the browser.
    let r = client()
        .post(s.url("/v1/topics/orders/records"))
        .header("content-type", "text/plain")
        .header("cookie", &cookie)
        .body("forged")
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, 401, "unauthenticated").await;
    assert!(p["detail"].as_str().unwrap().contains("Authorization: Bearer"), "{p}");
    let r = client()
        .post(s.url(&format!("/v1/topics/orders/records?access_token={t}")))
        .header("content-type", "text/plain")
        .body("forged")
        .send()
        .await
        .unwrap();
    expect_problem(r, 401, "unauthenticated").await;
    for path in [
        "/v1/topics/orders",
        "/v1/topics/events",
        "/v1/topics/orders/partitions/0/records",
    ] {
        let r = client()
            .get(s.url(&format!("{path}?access_token={t}")))
            .send()
            .await
            .unwrap();
        expect_problem(r, 401, "unauthenticated").await;
        let r = client()
            .get(s.url(path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        expect_problem(r, 401, "unauthenticated").await;
    }
    // Nothing was written; with the header the same token works everywhere.
    let v: Value = auth(
        client().get(s.url("/v1/topics/orders/partitions/0/records?offset=earliest")),
        &t,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["records"], json!([]), "a forged produce was written: {v}");

    // The event streams and the WebSocket accept both.
    for url in [
        format!("/v1/topics/orders/events?access_token={t}"),
        format!("/v1/groups/g/events?topics=orders&access_token={t}"),
    ] {
        let r = client().get(s.url(&url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
    }
    for url in ["/v1/topics/orders/events", "/v1/groups/g/events?topics=orders"] {
        let r = client().get(s.url(url)).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
    }
    let ws = s.url("/v1/groups/g/ws?topics=orders").replace("http://", "ws://");
    assert_eq!(ws_status(&ws, &[("cookie", &cookie)]).await, 101);
    assert_eq!(ws_status(&format!("{ws}&access_token={t}"), &[]).await, 101);
    assert_eq!(ws_status(&ws, &[]).await, 401);
}

/// Reads an event stream until the server ends it (at most 20 s): its events as (event, data),
/// keep-alive comments left out.
async fn stream_to_end(r: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(r.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(20), r.text())
        .await
        .expect("the stream did not end")
        .unwrap();
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            Some((event?, serde_json::from_str(&data).unwrap()))
        })
        .collect()
}

/// Asserts the last event is the `unauthenticated` problem with `detail`.
fn assert_ends_with_problem(events: &[(String, Value)], detail: &str) {
    let (event, data) = events.last().expect("no events");
    assert_eq!(event, "error", "{events:?}");
    assert_eq!(data["code"], "unauthenticated", "{data}");
    assert_eq!(data["status"], 401, "{data}");
    assert_eq!(data["detail"], detail, "{data}");
}

/// Reads WebSocket messages until the server's close frame: (code, reason).
async fn ws_close<S>(ws: &mut S) -> (u16, String)
where
    S: futures::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    use futures::StreamExt as _;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("no close frame within 20 s")
            .expect("the socket ended without a close frame")
            .unwrap();
        if let WsMessage::Close(frame) = msg {
            let frame = frame.expect("a close frame with a code");
            return (u16::from(frame.code), frame.reason.to_string());
        }
    }
}

#[tokio::test]
async fn jwt_streams_end_at_expiry_saying_why() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let s = secured(&[]).await;
    let exp = epoch() + 3;
    let t = jwt(json!({"sub": "alice", "exp": exp,
        "weir_permissions": "topic:orders:read group:g:read group:w:read"}));
    let opened = std::time::Instant::now();
    let topic = auth(client().get(s.url("/v1/topics/orders/events?offset=earliest")), &t)
        .send()
        .await
        .unwrap();
    let group = auth(client().get(s.url("/v1/groups/g/events?topics=orders")), &t)
        .send()
        .await
        .unwrap();
    let mut req = s
        .url("/v1/groups/w/ws?topics=orders")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {t}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    // Records flow while the token is valid.
    let r = auth(client().post(s.url("/v1/topics/orders/records")), ADMIN)
        .json(&json!({"records": [{"value": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (topic, group, closed) = tokio::join!(stream_to_end(topic), stream_to_end(group), ws_close(&mut ws));
    let lasted = opened.elapsed();
    assert!(
        lasted >= Duration::from_millis(1500),
        "ended after {lasted:?}, before exp"
    );
    assert!(topic.iter().any(|(e, d)| e == "record" && d["value"] == 1), "{topic:?}");
    assert_ends_with_problem(&topic, "the credential expired");
    assert_eq!(group[0].0, "member", "{group:?}");
    assert_ends_with_problem(&group, "the credential expired");
    assert_eq!(closed, (1008, "the credential expired".to_owned()));
}

#[tokio::test]
async fn revoked_token_streams_end_saying_why() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let s = secured(&[]).await;
    let (id, t) = token(
        &s,
        json!([{"resource": "topic", "name": "orders", "operations": ["read"]},
               {"resource": "group", "name": "w", "operations": ["read"]}]),
    )
    .await;
    // As a browser's EventSource opens it: the token in the query string.
    let stream = client()
        .get(s.url(&format!("/v1/topics/orders/events?access_token={t}")))
        .send()
        .await
        .unwrap();
    let mut req = s
        .url("/v1/groups/w/ws?topics=orders")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {t}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let r = auth(client().delete(s.url(&format!("/v1/tokens/{id}"))), ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (events, closed) = tokio::join!(stream_to_end(stream), ws_close(&mut ws));
    assert_ends_with_problem(&events, "the credential was revoked");
    assert_eq!(closed, (1008, "the credential was revoked".to_owned()));
}

/// A raw TCP connection to the server.
async fn tcp(s: &Server) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (at most 20 s): what it sent, and when it
/// closed.
async fn read_until_closed(conn: &mut tokio::net::TcpStream) -> (Vec<u8>, std::time::Instant) {
    use tokio::io::AsyncReadExt as _;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), conn.read(&mut buf))
            .await
            .expect("the connection stayed open for 20 s")
            .unwrap_or(0);
        if n == 0 {
            return (got, std::time::Instant::now());
        }
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn a_client_trickling_headers_is_disconnected_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt as _;
    let s = Server::start_with(&["--header-read-timeout-ms", "1000", "--idle-timeout-ms", "60000"]);
    let mut conn = tcp(&s).await;
    conn.write_all(b"GET /healthz HT").await.unwrap();
    let sent = std::time::Instant::now();
    let (answer, closed) = read_until_closed(&mut conn).await;
    let after = closed - sent;
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Whole requests are served as before.
    assert_eq!(client().get(s.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    use tokio::io::AsyncWriteExt as _;
    let s = Server::start_with(&["--idle-timeout-ms", "1500"]);
    let in_range = |d: Duration| d >= Duration::from_millis(1200) && d < Duration::from_secs(6);

    // HTTP/1.1 kept alive after a request, then silent (the header timeout is 10 s).
    let mut h1 = tcp(&s).await;
    h1.write_all(b"GET /healthz HTTP/1.1\r\nhost: weir\r\n\r\n")
        .await
        .unwrap();
    let sent = std::time::Instant::now();
    let (answer, closed) = read_until_closed(&mut h1).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(in_range(closed - sent), "HTTP/1.1 closed after {:?}", closed - sent);

    // HTTP/2 with prior knowledge: the preface and SETTINGS, then silence; GOAWAY, then close.
    let mut h2 = tcp(&s).await;
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let sent = std::time::Instant::now();
    let (frames, closed) = read_until_closed(&mut h2).await;
    assert!(in_range(closed - sent), "HTTP/2 closed after {:?}", closed - sent);
    let mut types = Vec::new();
    let mut at = 0;
    while at + 9 <= frames.len() {
        let len = u32::from_be_bytes([0, frames[at], frames[at + 1], frames[at + 2]]) as usize;
        types.push(frames[at + 3]);
        at += 9 + len;
    }
    assert!(types.contains(&7), "no GOAWAY among frame types {types:?}");

    // A connection that never sends a byte.
    let mut silent = tcp(&s).await;
    let opened = std::time::Instant::now();
    let (_, closed) = read_until_closed(&mut silent).await;
    assert!(
        in_range(closed - opened),
        "silent connection closed after {:?}",
        closed - opened
    );
}

#[tokio::test]
async fn long_polls_and_streams_are_not_idle() {
    let s = Server::start_with(&["--idle-timeout-ms", "1000"]);
    s.create_topic("quiet", 1, json!({})).await;
    // One client, one connection: the long poll and then the stream share it.
    let c = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
    let started = std::time::Instant::now();
    let r = c
        .get(s.url("/v1/topics/quiet/partitions/0/records?offset=0&wait_ms=2500"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["records"], json!([]));

    let mut events = common::Events::new(c.get(s.url("/v1/topics/quiet/events")).send().await.unwrap());
    let ws_url = s.url("/v1/groups/quiet/ws?topics=quiet").replace("http://", "ws://");
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.produce("quiet", json!({"records": [{"value": "late"}]})).await;
    let (_, event, data) = events.next().await;
    assert_eq!((event.as_str(), &data["value"]), ("record", &json!("late")));
    // The WebSocket, quiet as long, still delivers.
    use futures::StreamExt as _;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .unwrap();
        if let WsMessage::Text(t) = msg {
            let m: Value = serde_json::from_str(&t).unwrap();
            if m["type"] == "record" {
                assert_eq!(m["record"]["value"], "late");
                break;
            }
        }
    }
}

/// A produce body of one record whose value is `tag` then `len` bytes of filler.
fn big_record(tag: usize, len: usize) -> String {
    json!({"records": [{"value": format!("{tag:03}:{}", "x".repeat(len))}]}).to_string()
}

/// Produces `body`, with a declared length or (`chunked`) as a stream of unknown length.
async fn produce_raw(s: &Server, body: String, chunked: bool) -> reqwest::Response {
    let req = client()
        .post(s.url("/v1/topics/big/records"))
        .header("content-type", "application/json");
    let req = if chunked {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            body.into_bytes().chunks(256 * 1024).map(|c| Ok(c.to_vec())).collect();
        req.body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
    } else {
        req.body(body)
    };
    req.send().await.unwrap()
}

#[tokio::test]
async fn request_bodies_share_a_memory_budget() {
    const LEN: usize = 4_000_000;
    let s = Server::start_with(&[
        "--max-request-bytes",
        "5000000",
        "--max-inflight-body-bytes",
        "10000000",
    ]);
    s.create_topic("big", 1, json!({"max.message.bytes": 5000000})).await;
    // 16 bodies of 4 MB at once (half with Content-Length, half chunked) against a 10 MB budget.
    let sends = (0..16).map(|i| {
        let s = &s;
        async move { (i, produce_raw(s, big_record(i, LEN), i % 2 == 1).await) }
    });
    let mut stored = std::collections::BTreeSet::new();
    let mut refused = 0;
    for (i, r) in futures::future::join_all(sends).await {
        match r.status().as_u16() {
            200 => {
                stored.insert(i);
            }
            503 => {
                assert!(r.headers().contains_key("retry-after"), "request {i}");
                let p = expect_problem(r, 503, "overloaded").await;
                assert!(p["detail"].as_str().unwrap().contains("request bodies"), "{p}");
                refused += 1;
            }
            other => panic!("request {i}: {other} {}", r.text().await.unwrap()),
        }
    }
    assert!(refused > 0, "16 bodies of 4 MB fit in a 10 MB budget");
    assert!(!stored.is_empty(), "every body was refused");

    // What was acknowledged is stored whole; nothing refused was.
    let mut found = std::collections::BTreeSet::new();
    let mut offset = 0;
    loop {
        let v = s.fetch("big", 0, &format!("offset={offset}&max_bytes=20000000")).await;
        for r in v["records"].as_array().unwrap() {
            let value = r["value"].as_str().unwrap();
            assert_eq!(value.len(), LEN + 4, "a stored value was cut");
            assert!(value[4..].bytes().all(|b| b == b'x'), "a stored value was changed");
            found.insert(value[..3].parse::<usize>().unwrap());
        }
        offset = v["next_offset"].as_u64().unwrap();
        if offset >= v["high_watermark"].as_u64().unwrap() {
            break;
        }
    }
    assert_eq!(found, stored);

    // Every reservation was released: bodies one at a time always fit.
    for i in 100..104 {
        let r = produce_raw(&s, big_record(i, LEN), i % 2 == 1).await;
        assert_eq!(r.status(), 200, "body {i} alone");
    }
    // A body over max_request_bytes is refused as too large, before it is read.
    let r = produce_raw(&s, big_record(200, 6_000_000), false).await;
    expect_problem(r, 413, "request_too_large").await;
}

#[tokio::test]
async fn an_ndjson_stream_longer_than_the_budget_is_budgeted_by_the_lines_it_holds() {
    let s = Server::start_with(&["--max-request-bytes", "100000", "--max-inflight-body-bytes", "100000"]);
    s.create_topic("lines", 1, json!({})).await;
    let line = |i: usize| format!("{{\"value\": \"{i:04}{}\"}}\n", "y".repeat(300));
    let pieces: Vec<Result<String, std::io::Error>> = (0..1000).map(|i| Ok(line(i))).collect();
    let r = client()
        .post(s.url("/v1/topics/lines/records"))
        .header("content-type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let results: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 1000, "{}", &text[..text.len().min(500)]);
    assert!(results.iter().all(|r| r.get("offset").is_some()), "{}", &text[..500]);
}
