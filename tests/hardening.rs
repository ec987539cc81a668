//! Hardening of the HTTP door through the real server: streams that end when their credential
//! does, JWT leeway, where ambient credentials (cookie, query token) are accepted, header-read
//! and idle timeouts, the bound on memory held by request bodies, and configs refused at load.
mod common;

use std::process::Command;

use common::{Server, client, expect_problem};
use serde_json::{Value, json};

const ADMIN: &str = "admin-secret-0123456789abcdef";
const JWT_SECRET: &str = "jwt-secret-for-tests-0123456789";

fn auth(r: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    r.header("authorization", format!("Bearer {token}"))
}

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
    let p = expect_problem(
        fetch(jwt(claims(epoch() - 10))).await.unwrap(),
        401,
        "unauthenticated",
    )
    .await;
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
    let r = auth(client().post(s.url("/v1/tokens")), ADMIN)
        .json(&json!({"name": "app", "permissions": permissions}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
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
    assert!(
        p["detail"].as_str().unwrap().contains("Authorization: Bearer"),
        "{p}"
    );
    let r = client()
        .post(s.url(&format!("/v1/topics/orders/records?access_token={t}")))
        .header("content-type", "text/plain")
        .body("forged")
        .send()
        .await
        .unwrap();
    expect_problem(r, 401, "unauthenticated").await;
    for path in ["/v1/topics/orders", "/v1/topics/events", "/v1/topics/orders/partitions/0/records"] {
        let r = client()
            .get(s.url(&format!("{path}?access_token={t}")))
            .send()
            .await
            .unwrap();
        expect_problem(r, 401, "unauthenticated").await;
        let r = client().get(s.url(path)).header("cookie", &cookie).send().await.unwrap();
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
