//! What a new user meets in the first hour: errors that say what went wrong and what to do, the
//! flags, environment variables and README agreeing, and logs fit for a file.
mod common;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, client, expect_problem};
use serde_json::json;

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

#[tokio::test]
async fn a_large_key_is_named_as_the_key() {
    let s = Server::start();
    s.create_topic("big", 1, json!({})).await;
    let key = "k".repeat(2 << 20);
    let r = client()
        .post(s.url("/v1/topics/big/records"))
        .json(&json!({"records": [{"key": key, "value": 1}], "key_format": "string"}))
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, 413, "record_too_large").await;
    assert_eq!(p["field"], "records[0].key", "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("key 2097152, value 1"), "{detail}");
}

#[tokio::test]
async fn a_bare_array_of_records_is_told_to_wrap_them() {
    let s = Server::start();
    s.create_topic("arr", 1, json!({})).await;
    let r = client()
        .post(s.url("/v1/topics/arr/records"))
        .json(&json!([{"value": 1}]))
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, 400, "invalid_json").await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("{\"records\": ["), "{detail}");
    assert_eq!(p["field"], "body");
    // Any other JSON body: an object is wanted, and an array is not read as one.
    let r = client()
        .post(s.url("/v1/topics"))
        .json(&json!(["x", 1]))
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, 400, "invalid_json").await;
    assert!(p["detail"].as_str().unwrap().contains("send a JSON object"), "{p}");
}

#[tokio::test]
async fn integers_may_have_a_zero_fraction() {
    let s = Server::start();
    let r = client()
        .post(s.url("/v1/topics"))
        .json(&json!({"name": "floats", "partitions": 2.0, "config": {"retention.ms": 86400000.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body = json!({"records": [{"value": 1, "partition": 1.0, "timestamp": 5664.0}]});
    let results = s.produce("floats", body).await;
    assert_eq!(results["failed"], 0, "{results}");
    let fetched = s.fetch("floats", 1, "offset=0").await;
    assert_eq!(fetched["records"][0]["timestamp"], 5664);
    // A fraction is still not an integer.
    let r = client()
        .post(s.url("/v1/topics/floats/records"))
        .json(&json!({"records": [{"value": 1, "partition": 0.5}]}))
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, 400, "invalid_json").await;
    assert_eq!(p["field"], "records[0].partition", "{p}");
}

#[tokio::test]
async fn oversized_uris_and_headers_get_problems() {
    let s = Server::start();
    let r = client()
        .get(s.url(&format!("/v1/topics/{}", "a".repeat(20_000))))
        .send()
        .await
        .unwrap();
    expect_problem(r, 414, "uri_too_long").await;
    let mut req = client().get(s.url("/v1/topics"));
    for i in 0..120 {
        req = req.header(format!("x-h{i}"), "v");
    }
    expect_problem(req.send().await.unwrap(), 431, "headers_too_large").await;
    let r = client()
        .get(s.url("/v1/topics"))
        .header("x-big", "b".repeat(70_000))
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, 431, "headers_too_large").await;
    assert_eq!(p["field"], "x-big");
}

#[tokio::test]
async fn a_wait_over_the_cap_says_so() {
    let s = Server::start_with(&["--max-wait-ms", "200"]);
    s.create_topic("w", 1, json!({})).await;
    let started = Instant::now();
    let r = client()
        .get(s.url("/v1/topics/w/partitions/0/records?offset=0&wait_ms=30000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(r.headers()["weir-wait-capped"], "200");
    let r = client()
        .get(s.url("/v1/topics/w/partitions/0/records?offset=0&wait_ms=100"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("weir-wait-capped").is_none());
}

/// Starts a second server as `weir serve` with `args`, expecting it to fail; its stderr.
fn refused_start(args: &[&str]) -> String {
    let out = weir()
        .arg("serve")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "started: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_busy_port_is_named_with_the_flag_to_change_it() {
    let s = Server::start();
    let addr = s.base.trim_start_matches("http://");
    let dir = tempfile::tempdir().unwrap();
    let err = refused_start(&["--listen", addr, "--data-dir", dir.path().to_str().unwrap()]);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("--listen"), "{err}");
}

#[test]
fn a_data_directory_in_use_says_so_once() {
    let s = Server::start();
    let err = refused_start(&["--listen", "127.0.0.1:0", "--data-dir", s.dir.to_str().unwrap()]);
    let said = "is in use by another process";
    assert_eq!(err.matches(said).count(), 1, "{err}");
    assert!(
        err.contains("--data-dir") && !err.contains("Resource temporarily"),
        "{err}"
    );
}

#[test]
fn openapi_into_a_closed_pipe_is_no_panic() {
    let mut child = weir()
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{err}");
}

#[test]
fn logs_have_no_colour_codes_when_not_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = weir()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(&seen).contains("weir listening") && Instant::now() < deadline {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("weir listening"), "{text}");
    assert!(!text.contains('\x1b'), "colour codes in {text:?}");
}

/// The settings the README's configuration section lists, each as it says it can be given.
fn readme_settings() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a configuration section");
    let mut keys = Vec::new();
    for line in section.lines() {
        // The table: | `key` | `--flag` | `WEIR_…` | default |
        if let Some(rest) = line.strip_prefix("| `") {
            keys.push(rest.split('`').next().unwrap().to_owned());
        }
    }
    // The security settings paragraph: `key` (default), … each also as a flag and variable.
    let security = section
        .split("Security settings")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .expect("the security settings paragraph");
    for (i, part) in security.split('`').enumerate() {
        // Code spans that are keys (not `WEIR_…` variables, `[[grants]]` or commands).
        let key = !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        if i % 2 == 1 && key {
            keys.push(part.to_owned());
        }
    }
    keys
}

#[test]
fn every_setting_the_readme_lists_has_its_flag_and_variable() {
    let out = weir().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let keys = readme_settings();
    assert!(keys.len() > 30, "{keys:?}");
    for key in &keys {
        let flag = format!("--{}", key.replace('_', "-"));
        let env = format!("WEIR_{}", key.to_uppercase());
        assert!(help.contains(&flag), "weir serve --help lacks {flag}");
        assert!(help.contains(&format!("[env: {env}=")), "weir serve --help lacks {env}");
    }
    for secret in ["WEIR_ADMIN_TOKEN ", "WEIR_JWT_HS256_SECRET "] {
        assert!(help.contains(secret), "weir serve --help does not name {secret}");
    }
}

#[tokio::test]
async fn cors_settings_are_taken_as_flags() {
    let s = Server::start_with(&[
        "--cors-allowed-origins",
        "https://shop.example",
        "--cors-allowed-methods",
        "GET,PUT",
        "--cors-allowed-headers",
        "content-type,x-custom",
        "--cors-max-age-secs",
        "42",
    ]);
    let r = client()
        .request(reqwest::Method::OPTIONS, s.url("/v1/topics"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "x-custom")
        .send()
        .await
        .unwrap();
    let h = r.headers();
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("PUT") && !methods.contains("POST"), "{methods}");
    assert!(h["access-control-allow-headers"].to_str().unwrap().contains("x-custom"));
    assert_eq!(h["access-control-max-age"], "42");
}
