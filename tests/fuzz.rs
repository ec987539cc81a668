//! Property-based fuzzing of the whole router in-process: arbitrary methods, paths, headers and
//! bodies, with authentication on and off. No input may panic the server or get a 5xx: every
//! client mistake is a 4xx problem.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use tower::ServiceExt as _;

const ADMIN: &str = "fuzz-admin-token-0123456789";

struct App {
    rt: tokio::runtime::Runtime,
    open: axum::Router,
    secured: axum::Router,
    _dirs: Vec<tempfile::TempDir>,
}

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (open, secured) = rt.block_on(async {
            let mut c = weir::Config {
                data_dir: a.path().to_path_buf(),
                ..Default::default()
            };
            let open = weir::Broker::open(c.clone()).await.unwrap();
            c.data_dir = b.path().to_path_buf();
            c.admin_token = Some(ADMIN.into());
            let secured = weir::Broker::open(c).await.unwrap();
            for broker in [&open, &secured] {
                let caller = weir::broker::Caller::internal();
                broker
                    .create_topic(&caller, "fz", Some(2), &Default::default())
                    .await
                    .unwrap();
            }
            let (c1, c2) = (
                weir::connect::Connect::start(open.clone()).await.unwrap(),
                weir::connect::Connect::start(secured.clone()).await.unwrap(),
            );
            let (s1, s2) = (
                weir::streams::Streams::start(open.clone()).await.unwrap(),
                weir::streams::Streams::start(secured.clone()).await.unwrap(),
            );
            (weir::http::router(open, c1, s1), weir::http::router(secured, c2, s2))
        });
        App {
            rt,
            open,
            secured,
            _dirs: vec![a, b],
        }
    })
}

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "HEAD"])
}

fn path() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "/v1/topics",
        "/v1/topics/fz",
        "/v1/topics/fz/records",
        "/v1/topics/fz/partitions/0/records",
        "/v1/topics/fz/partitions/9/records",
        "/v1/groups",
        "/v1/groups/g",
        "/v1/groups/g/members",
        "/v1/groups/g/members/m/records",
        "/v1/groups/g/members/m/offsets",
        "/v1/groups/g/offsets:reset",
        "/v1/tokens",
        "/v1/tokens/x",
        "/metrics",
        "/readyz",
    ]);
    let segment = "[a-zA-Z0-9._%:~-]{0,12}";
    let query = prop::option::of("[a-z_]{1,12}=[a-zA-Z0-9%-]{0,10}(&[a-z_]{1,12}=[a-zA-Z0-9%-]{0,10}){0,3}");
    (known, prop::collection::vec(segment, 0..3), query).prop_map(|(k, extra, q)| {
        let mut p = k.to_owned();
        for e in extra {
            p.push('/');
            p.push_str(&e);
        }
        if let Some(q) = q {
            p.push('?');
            p.push_str(&q);
        }
        p
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let json_like = prop::sample::select(vec![
        r#"{"records":[{"value":1}]}"#,
        r#"{"records":[{"key":"k","value":{"a":[1,2]},"headers":{"h":"v"},"partition":1}]}"#,
        r#"{"records":[{"value":"***"}],"value_format":"binary"}"#,
        r#"{"name":"fz2","partitions":2,"config":{"retention.ms":1000}}"#,
        r#"{"topics":["fz"],"assignment_strategy":"sticky"}"#,
        r#"{"to":"earliest","dry_run":true}"#,
        r#"{"name":"t","permissions":[{"resource":"topic","name":"x","operations":["read"]}]}"#,
        r#"{"value":1}"#,
    ])
    .prop_flat_map(|s| (Just(s.as_bytes().to_vec()), 0..=s.len()))
    .prop_map(|(b, cut)| b[..cut].to_vec());
    prop_oneof![prop::collection::vec(any::<u8>(), 0..200), json_like]
}

fn header_value() -> impl Strategy<Value = String> {
    "[ -~]{0,40}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_input_gets_a_5xx_or_panics(
        method in method(),
        path in path(),
        body in body(),
        content_type in prop::sample::select(vec!["application/json", "application/x-ndjson", "text/plain", "application/octet-stream", "text/xml", ""]),
        authorization in prop::option::of(prop_oneof![header_value(), Just(format!("Bearer {ADMIN}")), "Bearer [ -~]{0,30}"]),
        secured in any::<bool>(),
        idempotency in prop::option::of(header_value()),
    ) {
        let a = app();
        let router = if secured { a.secured.clone() } else { a.open.clone() };
        let mut req = Request::builder().method(method).uri(&path);
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        if let Some(v) = &authorization {
            req = req.header("authorization", v.as_str());
        }
        if let Some(v) = &idempotency {
            req = req.header("idempotency-key", v.as_str());
        }
        let Ok(req) = req.body(Body::from(body)) else { return Ok(()) };
        let status = a.rt.block_on(async {
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            // Streams would never end: only look at their status.
            if resp.headers().get("content-type").is_none_or(|v| v != "text/event-stream") {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), axum::body::to_bytes(resp.into_body(), 1 << 24)).await;
            }
            status
        });
        prop_assert!(status.as_u16() < 500, "{method} {path} -> {status}");
    }
}
