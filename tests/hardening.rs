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
