//! Arbitrary bodies, content types and parameters never make the server fail (5xx), panic or
//! hang: every client mistake is a 4xx problem, and the server stays healthy.
mod common;

use common::{Server, client};
use serde_json::{Value, json};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() % max as u64) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn body(rng: &mut Rng) -> Vec<u8> {
    let fragments: [&[u8]; 14] = [
        br#"{"records": [{"value": 1}]}"#,
        br#"{"records": [{"value": "AAA", "key": null}], "value_format": "binary"}"#,
        br#"{"records": [{"value": {"a": [1, 2, {"b": null}]}, "headers": {"x": "y"}, "partition": 0}]}"#,
        br#"{"records": [{"value": 1, "partition": 4294967296}]}"#,
        br#"{"records": [{"value": 1, "timestamp": 1e300}]}"#,
        br#"{"records": {"value": 1}}"#,
        br#"{"records": [{"value": "\ud800"}], "value_format": "string"}"#,
        br#"{"records": [{"value": 1, "headers": {"h": null}}]}"#,
        br#"{"records": [{"value": 1, "key_format": "xml"}]}"#,
        br#"[1, 2, 3]"#,
        br#"{"records": [null]}"#,
        b"\xff\xfe\x00",
        b"",
        br#"{"name": "t", "partitions": -1, "config": {"retention.ms": [1]}}"#,
    ];
    match rng.next() % 4 {
        0 => rng.bytes(256),
        1 => {
            let depth = (rng.next() % 2000) as usize;
            let mut v = vec![b'['; depth];
            v.extend(std::iter::repeat_n(b']', depth));
            v
        }
        2 => {
            let f = rng.pick(&fragments).to_vec();
            let cut = (rng.next() % (f.len() as u64 + 1)) as usize;
            f[..cut].to_vec()
        }
        _ => rng.pick(&fragments).to_vec(),
    }
}

#[tokio::test]
async fn arbitrary_requests_get_4xx_problems_never_5xx() {
    let s = Server::start_with(&["--max-request-bytes", "65536"]);
    s.create_topic("fz", 2, json!({})).await;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let content_types = [
        "application/json",
        "application/x-ndjson",
        "text/plain",
        "application/octet-stream",
        "application/xml",
        "multipart/form-data; boundary=x",
        "",
    ];
    let paths = [
        "/v1/topics",
        "/v1/topics/fz",
        "/v1/topics/fz/records",
        "/v1/topics/fz/records?key=%ff&partition=-1",
        "/v1/topics/fz/records?partition=99999999999&timestamp=x",
        "/v1/topics/fz/records?value_format=binary&durability=never",
        "/v1/topics/fz/partitions/0/records?offset=-1",
        "/v1/topics/fz/partitions/4294967296/records",
        "/v1/topics/fz/partitions/0/records?offset=0&wait_ms=abc&max_bytes=0",
        "/v1/topics/fz/partitions/0/records?timestamp=-5",
        "/v1/topics/fz/events?partition=x",
        "/v1/topics/..%2f..%2fetc/records",
        "/v1/topics/%00/records",
    ];
    let methods = [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::PATCH,
        reqwest::Method::PUT,
    ];
    for case in 0..300 {
        let method = rng.pick(&methods).clone();
        let path = *rng.pick(&paths);
        let ct = *rng.pick(&content_types);
        let b = body(&mut rng);
        let mut req = client().request(method.clone(), s.url(path)).body(b.clone());
        if !ct.is_empty() {
            req = req.header("content-type", ct);
        }
        if path.contains("/events") && method == reqwest::Method::GET {
            continue; // a successful event stream never ends by itself
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("case {case}: {method} {path}: {e}"));
        let status = r.status().as_u16();
        assert!(
            status < 500,
            "case {case}: {method} {path} {ct} {:?} -> {status}",
            String::from_utf8_lossy(&b)
        );
        if status >= 400 {
            let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            let v: Value = r.json().await.unwrap();
            assert_eq!(ct.as_deref(), Some("application/problem+json"), "case {case}");
            assert!(v["code"].is_string(), "case {case}: {v}");
        }
    }
    let ok = client().get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}
