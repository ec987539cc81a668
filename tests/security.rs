//! Security through the real server: credentials on every operation of the OpenAPI spec,
//! grants, token lifecycle (expiry, instant revocation, live streams), JWTs, TLS and mutual TLS,
//! quotas, load shedding, CORS, safe defaults, and secrets kept out of logs and responses.
mod common;

use std::process::Command;
use std::time::Duration;

use common::{ADMIN, Server, auth, client, create_token, expect_problem};
use serde_json::{Value, json};

async fn admin_server(args: &[&str]) -> Server {
    Server::start_admin(args)
}

/// What the table test calls each operation with.
struct Fixture {
    /// A file for the file-source connectors to read.
    file: String,
}

/// A group member: its id and generation.
#[derive(Clone)]
struct Member {
    id: String,
    generation: u64,
}

/// Fills the path parameters of an operation.
fn fill(path: &str, member: &Member) -> String {
    path.replace("{topic}", "t")
        .replace("{partition}", "0")
        .replace("{group}", "g")
        .replace("{member}", &member.id)
        .replace("{id}", "tok_missing")
        .replace("{connector}", "c")
        .replace("{task}", "0")
        .replace("{plugin}", "FileStreamSource")
        .replace("{name}", "s0")
}

/// The query string an operation is called with.
fn query_for(path: &str) -> &'static str {
    match path {
        "/v1/groups/{group}/events" | "/v1/groups/{group}/ws" => "topics=t",
        _ => "",
    }
}

/// The JSON body an operation is called with.
fn body_for(method: &str, path: &str, f: &Fixture, member: &Member) -> Option<Value> {
    let source = json!({"connector.class": "FileStreamSource", "file": f.file, "topic": "t"});
    Some(match (method, path) {
        ("post", "/v1/topics") => json!({"name": "t2"}),
        ("patch", "/v1/topics/{topic}") => json!({"config": {"retention.ms": 1000000}}),
        ("post", "/v1/topics/{topic}/records") => json!({"records": [{"value": 1}]}),
        ("post", "/v1/groups/{group}/members") => json!({"topics": ["t"]}),
        ("post", "/v1/groups/{group}/members/{member}/positions:seek") => json!({"to": "earliest"}),
        ("post", "/v1/groups/{group}/offsets:reset") => json!({"to": "earliest", "dry_run": true, "topics": ["t"]}),
        ("post", "/v1/tokens") => json!({"name": "x"}),
        ("post", "/v1/transactions") => json!({
            "produce": [{"topic": "t", "records": [{"value": 1}]}],
            "commit": {"group": "g", "member_id": member.id, "generation": member.generation,
                       "offsets": [{"topic": "t", "partition": 0, "offset": 0}]}}),
        ("post", "/v1/connectors") => json!({"name": "c2", "config": source}),
        ("put", "/v1/connectors/{connector}/config") => source,
        ("patch", "/v1/connectors/{connector}/config") => json!({"tasks.max": "1"}),
        ("patch", "/v1/connectors/{connector}/offsets") => json!({"offsets": []}),
        ("post", "/v1/sql") => json!({"sql": "CREATE STREAM s1 (a TEXT) WITH (topic = 't')"}),
        ("post", "/v1/query") => json!({"sql": "SELECT * FROM s0"}),
        ("put", "/v1/connector-plugins/{plugin}/config/validate") => {
            json!({"connector.class": "FileStreamSource", "name": "x", "topic": "t"})
        }
        _ => return None,
    })
}

/// Every string at a dotted path of a JSON value, through arrays.
fn strings_at<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a str> {
    match (v, path) {
        (Value::Array(items), _) => items.iter().flat_map(|i| strings_at(i, path)).collect(),
        (Value::String(s), []) => vec![s.as_str()],
        (Value::Object(m), [first, rest @ ..]) => m.get(*first).map(|x| strings_at(x, rest)).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The resource names an `x-weir-permissions` name stands for in this call (none: not needed).
fn names(template: &str, body: Option<&Value>, query: &str, member: &Member) -> Vec<String> {
    if let Some(path) = template.strip_prefix("{body.").and_then(|t| t.strip_suffix('}')) {
        let path: Vec<&str> = path.split('.').collect();
        return body
            .map(|b| strings_at(b, &path).into_iter().map(String::from).collect())
            .unwrap_or_default();
    }
    if let Some(name) = template.strip_prefix("{query.").and_then(|t| t.strip_suffix('}')) {
        return form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
            .collect();
    }
    match template {
        // Every connector of this test is a file source writing to `t`.
        "{connector.writes}" => vec!["t".into()],
        "{connector.reads}" | "{connector.group}" => Vec::new(),
        // The SQL of this test: CREATE STREAM s1 over `t`, and a pull query on table s0 over `t`.
        "{sql.creates}" => vec!["s1".into()],
        "{sql.topics}" | "{sql.reads}" => vec!["t".into()],
        _ => vec![fill(template, member)],
    }
}

/// The grants `x-weir-permissions` lists for this call, as token permissions.
fn grants_of(op: &Value, body: Option<&Value>, query: &str, member: &Member) -> Vec<Value> {
    let entries = op["x-weir-permissions"].as_array().expect("x-weir-permissions");
    let mut grants = Vec::new();
    for e in entries {
        for name in names(e["name"].as_str().unwrap(), body, query, member) {
            grants.push(json!({"resource": e["resource"], "name": name, "operations": [e["operation"]]}));
        }
    }
    grants
}

/// Calls an operation as the table test does: its status and, but for a WebSocket, its JSON
/// body.
async fn call(
    s: &Server,
    method: &str,
    path: &str,
    f: &Fixture,
    member: &Member,
    token: Option<&str>,
) -> (u16, Option<Value>) {
    let query = query_for(path);
    let mut url = s.url(&fill(path, member));
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    if path.ends_with("/ws") {
        return (ws_handshake(&url, token).await, None);
    }
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut r = client().request(m, url).timeout(Duration::from_secs(5));
    if let Some(t) = token {
        r = auth(r, t);
    }
    if let Some(b) = body_for(method, path, f, member) {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    if r.headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"))
    {
        return (status, None);
    }
    if status == 401 {
        assert_eq!(
            r.headers().get("www-authenticate").map(|v| v.to_str().unwrap()),
            Some("Bearer realm=\"weir\""),
            "{method} {path}"
        );
    }
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).ok())
}

/// The status of a WebSocket handshake.
async fn ws_handshake(url: &str, token: Option<&str>) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = url.replace("http://", "ws://").into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => resp.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("websocket handshake to {url}: {e}"),
    }
}

/// Joins group `g` as `token` by a pattern, which needs only `read` on the group (the member
/// is assigned no topic the token may not read).
async fn join_by_pattern(s: &Server, token: &str) -> Member {
    let r = auth(client().post(s.url("/v1/groups/g/members")), token)
        .json(&json!({"topic_pattern": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "join by pattern");
    let v: Value = r.json().await.unwrap();
    Member {
        id: v["member_id"].as_str().unwrap().to_owned(),
        generation: v["generation"].as_u64().unwrap(),
    }
}

/// The items of a listing (a bare array, or an object's first array).
fn listed(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Object(m) => m.values().find_map(Value::as_array).cloned().unwrap_or_default(),
        _ => panic!("not a listing: {v}"),
    }
}

/// For every operation of the served spec: no credential or a bad one is 401; a token without
/// the grants its `x-weir-permissions` lists is 403 (an empty listing for listings); a token
/// holding exactly those grants, and nothing more, is not refused.
#[tokio::test]
async fn every_operation_needs_credentials_and_the_right_permission() {
    let s = admin_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.txt");
    std::fs::write(&file, "one\n").unwrap();
    let f = Fixture {
        file: file.to_str().unwrap().to_owned(),
    };
    let r = auth(client().post(s.url("/v1/topics")), ADMIN)
        .json(&json!({"name": "t", "partitions": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = auth(client().post(s.url("/v1/connectors")), ADMIN)
        .json(&json!({"name": "c", "config": {"connector.class": "FileStreamSource", "file": f.file, "topic": "t"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = auth(client().post(s.url("/v1/sql")), ADMIN)
        .json(&json!({"sql": "CREATE TABLE s0 (a TEXT PRIMARY KEY) WITH (topic = 't')"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, unrelated) = create_token(
        &s,
        ADMIN,
        json!({"name": "unrelated", "permissions": [{"resource": "topic", "name": "other", "operations": ["read"]}]}),
    )
    .await;
    // Someone's member, for the calls that are refused before the member matters.
    let anyone = join_by_pattern(&s, ADMIN).await;

    let spec: Value = s.get_json("/openapi.json").await;
    let mut ops: Vec<(String, String, Value)> = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((method.clone(), path.clone(), op.clone()));
        }
    }
    // Deletions last, so that they do not remove what other operations use.
    ops.sort_by_key(|(m, _, _)| m == "delete");
    let listings = [
        "/v1/topics",
        "/v1/groups",
        "/v1/connectors",
        "/v1/queries",
        "/v1/streams",
        "/v1/tables",
    ];
    let mut checked = 0;
    for (method, path, op) in &ops {
        let name = format!("{method} {path}");
        let needed = op["x-weir-permissions"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no x-weir-permissions"));
        let public = op["security"] == json!([{}]);
        if public {
            assert!(needed.is_empty(), "{name}: public, yet needs {needed:?}");
            let (status, _) = call(&s, method, path, &f, &anyone, None).await;
            assert_eq!(status, 200, "{name} is public");
            continue;
        }
        for token in [None, Some("weir_not-a-real-token")] {
            let (status, body) = call(&s, method, path, &f, &anyone, token).await;
            assert_eq!(status, 401, "{name} with {token:?}");
            if let Some(b) = body {
                assert_eq!(b["code"], "unauthenticated", "{name}: {b}");
            }
        }

        let (status, body) = call(&s, method, path, &f, &anyone, Some(&unrelated)).await;
        if needed.is_empty() {
            assert_eq!(status, 200, "{name} needs no grant");
            if method == "get" && listings.contains(&path.as_str()) {
                let body = body.unwrap();
                assert!(listed(&body).is_empty(), "{name} leaked {body}");
            }
        } else {
            assert_eq!(status, 403, "{name} without the grant: {body:?}");
            if let Some(b) = body {
                assert_eq!(b["code"], "forbidden", "{name}: {b}");
                if path.starts_with("/v1/connectors") {
                    // Kafka Connect's error shape, with Weir's code.
                    assert_eq!(b["error_code"], 403, "{name}: {b}");
                } else {
                    assert_eq!(b["status"], 403, "{name}: {b}");
                }
            }
        }

        // Exactly the listed grants, and a member of its own where the call takes one.
        let body = body_for(method, path, &f, &anyone);
        let grants = grants_of(op, body.as_ref(), query_for(path), &anyone);
        let (_, exact) = create_token(&s, ADMIN, json!({"name": "exact", "permissions": grants})).await;
        let member = if path.contains("{member}") || path == "/v1/transactions" {
            join_by_pattern(&s, &exact).await
        } else {
            anyone.clone()
        };
        let (status, answer) = call(&s, method, path, &f, &member, Some(&exact)).await;
        assert!(
            ![401, 403].contains(&status),
            "{name} with exactly {grants:?}: {status} {answer:?}"
        );
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} operations checked");
    // The forbidden answer does not tell whether a resource exists.
    let a = auth(client().get(s.url("/v1/topics/t")), &unrelated)
        .send()
        .await
        .unwrap();
    let b = auth(client().get(s.url("/v1/topics/nope")), &unrelated)
        .send()
        .await
        .unwrap();
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (403, 403));
}

#[tokio::test]
async fn tokens_grant_expire_and_revoke_instantly_including_live_streams() {
    let s = admin_server(&[]).await;
    auth(client().post(s.url("/v1/topics")), ADMIN)
        .json(&json!({"name": "orders"}))
        .send()
        .await
        .unwrap();
    let (id, reader) = create_token(
        &s,
        ADMIN,
        json!({"name": "reader", "permissions": [{"resource": "topic", "name": "orders", "operations": ["read"]}]}),
    )
    .await;
    assert!(reader.starts_with("weir_") && reader.len() > 40);
    let fetch = |t: &str| auth(client().get(s.url("/v1/topics/orders/partitions/0/records")), t).send();
    assert_eq!(fetch(&reader).await.unwrap().status(), 200);
    let r = auth(client().post(s.url("/v1/topics/orders/records")), &reader)
        .json(&json!({"records": [{"value": 1}]}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 403, "forbidden").await;
    // A token may not mint tokens without alter on cluster.
    let r = auth(client().post(s.url("/v1/tokens")), &reader)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 403, "forbidden").await;

    // The list shows no secrets, and no hash either.
    let list = auth(client().get(s.url("/v1/tokens")), ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains(&id) && !list.contains(&reader) && !list.contains("hash"),
        "{list}"
    );

    // A live SSE stream, authenticated by query parameter as a browser EventSource would, ends on revocation.
    let stream = client()
        .get(s.url(&format!(
            "/v1/topics/orders/events?offset=earliest&access_token={reader}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let r = auth(client().delete(s.url(&format!("/v1/tokens/{id}"))), ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.bytes()).await;
    assert!(ended.is_ok(), "the stream of a revoked token stayed open");
    expect_problem(fetch(&reader).await.unwrap(), 401, "unauthenticated").await;
    // The same via cookie is refused too.
    let r = client()
        .get(s.url("/v1/topics/orders"))
        .header("cookie", format!("weir_token={reader}"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 401, "unauthenticated").await;

    // Expiry.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (_, short) = create_token(
        &s,
        ADMIN,
        json!({"name": "short", "expires_at": now + 1500, "permissions": [{"resource": "topic", "name": "orders", "operations": ["read"]}]}),
    )
    .await;
    assert_eq!(fetch(&short).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let p = expect_problem(fetch(&short).await.unwrap(), 401, "unauthenticated").await;
    assert!(p["detail"].as_str().unwrap().contains("expired"));
    let r = auth(client().post(s.url("/v1/tokens")), ADMIN)
        .json(&json!({"name": "past", "expires_at": now - 1}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_parameter").await;

    // Secrets never reach the logs.
    let logs = s.logs.lock().unwrap().join("\n");
    assert!(
        !logs.contains(&reader) && !logs.contains(&short) && !logs.contains(ADMIN),
        "a secret was logged"
    );
    assert!(
        logs.contains("\"target\":\"audit\"") && logs.contains("token.revoke"),
        "no audit line for the revocation"
    );
}

#[tokio::test]
async fn tokens_survive_restart_and_revocations_too() {
    let mut s = admin_server(&[]).await;
    let (_, keep) = create_token(
        &s,
        ADMIN,
        json!({"name": "keep", "permissions": [{"resource": "cluster", "name": "weir", "operations": ["describe"]}]}),
    )
    .await;
    let (gone_id, gone) = create_token(&s, ADMIN, json!({"name": "gone"})).await;
    auth(client().delete(s.url(&format!("/v1/tokens/{gone_id}"))), ADMIN)
        .send()
        .await
        .unwrap();
    s.stop();
    s.restart();
    assert_eq!(
        auth(client().get(s.url("/v1/tokens")), &keep)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    expect_problem(
        auth(client().get(s.url("/v1/tokens")), &gone).send().await.unwrap(),
        401,
        "unauthenticated",
    )
    .await;
}

fn jwt(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn jwts_are_verified_and_mapped_to_permissions() {
    let secret = "jwt-secret-for-tests-0123456789";
    let dir = tempfile::tempdir().unwrap();
    // An ES256 key of our own, published in a JWKS file.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = key.public_key_raw();
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    // And an RS256 key (a test-only fixture: RSA keys take long to generate).
    let rsa_jwk: Value = serde_json::from_str(include_str!("fixtures/rs256-test-key.jwk.json")).unwrap();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}, rsa_jwk]});
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let s = Server::start_env(
        &[
            "--jwt-issuer",
            "https://idp.test",
            "--jwt-audience",
            "weir",
            "--jwt-jwks-file",
            jwks_path.to_str().unwrap(),
        ],
        &[("WEIR_JWT_HS256_SECRET", secret), ("WEIR_ADMIN_TOKEN", ADMIN)],
    );
    auth(client().post(s.url("/v1/topics")), ADMIN)
        .json(&json!({"name": "orders"}))
        .send()
        .await
        .unwrap();
    let good = json!({"sub": "alice", "iss": "https://idp.test", "aud": "weir", "exp": epoch() + 300,
        "weir_permissions": "topic:orders:read|write group:billing:read"});
    let get = |t: String| auth(client().get(s.url("/v1/topics/orders/partitions/0/records")), &t).send();
    assert_eq!(get(jwt(good.clone(), secret)).await.unwrap().status(), 200);
    let r = auth(client().post(s.url("/v1/topics")), &jwt(good.clone(), secret))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 403, "forbidden").await;
    for (what, claims, key) in [
        ("bad signature", good.clone(), "another-secret-0123456789abcdef"),
        (
            "wrong issuer",
            json!({"sub": "a", "iss": "https://evil", "aud": "weir", "exp": epoch() + 300}),
            secret,
        ),
        (
            "wrong audience",
            json!({"sub": "a", "iss": "https://idp.test", "aud": "other", "exp": epoch() + 300}),
            secret,
        ),
        (
            "expired",
            json!({"sub": "a", "iss": "https://idp.test", "aud": "weir", "exp": epoch() - 600}),
            secret,
        ),
    ] {
        let p = expect_problem(get(jwt(claims, key)).await.unwrap(), 401, "unauthenticated").await;
        assert!(p["detail"].as_str().unwrap().starts_with("JWT rejected"), "{what}: {p}");
    }
    // ES256 from the JWKS.
    let header = jsonwebtoken::Header {
        alg: jsonwebtoken::Algorithm::ES256,
        kid: Some("k1".into()),
        ..Default::default()
    };
    let ec = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    let claims = json!({"sub": "bob", "iss": "https://idp.test", "aud": "weir", "exp": epoch() + 300, "weir_permissions": ["topic:orders:read"]});
    let es = jsonwebtoken::encode(&header, &claims, &ec).unwrap();
    assert_eq!(get(es).await.unwrap().status(), 200);
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    expect_problem(get(forged).await.unwrap(), 401, "unauthenticated").await;

    // RS256 from the JWKS: accepted when signed by its key, refused when tampered with or when
    // it names a key of another family.
    let rsa = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("fixtures/rs256-test-key.pem")).unwrap();
    let rs_header = jsonwebtoken::Header {
        alg: jsonwebtoken::Algorithm::RS256,
        kid: Some("rsa1".into()),
        ..Default::default()
    };
    let rs = jsonwebtoken::encode(&rs_header, &claims, &rsa).unwrap();
    let r = get(rs.clone()).await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let (head, rest) = rs.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let wider = json!({"sub": "bob", "iss": "https://idp.test", "aud": "weir", "exp": epoch() + 300,
        "weir_permissions": ["topic:*:read", "topic:*:write"]});
    let tampered = format!("{head}.{}.{signature}", b64(wider.to_string().as_bytes()));
    expect_problem(get(tampered).await.unwrap(), 401, "unauthenticated").await;
    let wrong_family = jsonwebtoken::Header {
        kid: Some("k1".into()),
        ..rs_header
    };
    let confused = jsonwebtoken::encode(&wrong_family, &claims, &rsa).unwrap();
    expect_problem(get(confused).await.unwrap(), 401, "unauthenticated").await;
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1 and a client certificate `CN=billing-app`.
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "weir test ca");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
        cp.distinguished_name.push(DnType::CommonName, "billing-app");
        let client = cp.signed_by(&client_key, &issuer).unwrap();
        let w = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        w("ca.pem", ca_cert.pem());
        w("server.pem", server.pem());
        w("server.key", server_key.serialize_pem());
        w("client.pem", client.pem());
        w("client.key", client_key.serialize_pem());
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
}

/// curl over TLS: (HTTP version, status) or None when the connection failed.
fn curl(pki: &Pki, url: &str, client_cert: bool, extra: &[&str]) -> Option<(String, u16)> {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        "--http2",
        "--cacert",
        &pki.path("ca.pem"),
    ]);
    if client_cert {
        c.args(["--cert", &pki.path("client.pem"), "--key", &pki.path("client.key")]);
    }
    let out = c.args(extra).arg(url).output().expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (v, code) = text.split_once(' ')?;
    let code: u16 = code.trim().parse().ok()?;
    (out.status.success() && code != 0).then(|| (v.to_owned(), code))
}

#[tokio::test]
async fn https_with_http2_and_mutual_tls_principals() {
    let pki = Pki::new();
    let config = pki.dir.path().join("weir.toml");
    std::fs::write(
        &config,
        r#"[[grants]]
principal = "cert:CN=billing-app"
permissions = [{ resource = "topic", name = "orders", operations = ["read"] }]
"#,
    )
    .unwrap();
    let s = Server::start_env(
        &[
            "--tls-cert",
            &pki.path("server.pem"),
            "--tls-key",
            &pki.path("server.key"),
            "--tls-client-ca",
            &pki.path("ca.pem"),
            "--config",
            config.to_str().unwrap(),
        ],
        &[("WEIR_ADMIN_TOKEN", ADMIN)],
    );
    let base = s.base.replace("http://", "https://");
    let url = |p: &str| format!("{base}{p}");
    let admin = format!("Authorization: Bearer {ADMIN}");
    // With a client certificate: HTTP/2 over TLS, the certificate's subject is the principal.
    let (version, code) = curl(
        &pki,
        &url("/v1/topics"),
        true,
        &[
            "-X",
            "POST",
            "-H",
            &admin,
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"name":"orders"}"#,
        ],
    )
    .unwrap();
    assert_eq!((version.as_str(), code), ("2", 201));
    assert_eq!(
        curl(&pki, &url("/v1/topics/orders/partitions/0/records"), true, &[])
            .unwrap()
            .1,
        200
    );
    assert_eq!(
        curl(
            &pki,
            &url("/v1/topics/orders/records"),
            true,
            &[
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                r#"{"records":[{"value":1}]}"#
            ]
        )
        .unwrap()
        .1,
        403
    );
    // HTTP/1.1 works too.
    let (version, code) = curl(&pki, &url("/healthz"), true, &["--http1.1"]).unwrap();
    assert_eq!((version.as_str(), code), ("1.1", 200));
    // Without a client certificate the handshake is refused.
    assert_eq!(curl(&pki, &url("/healthz"), false, &[]), None);
    // Plain HTTP to the TLS port gets nowhere.
    assert!(client().get(s.url("/healthz")).send().await.is_err());
}

#[tokio::test]
async fn quotas_answer_429_with_retry_after() {
    let s = Server::start_with(&["--quota-requests-per-sec", "5", "--quota-produce-bytes-per-sec", "2000"]);
    let mut limited = None;
    for _ in 0..30 {
        let r = client().get(s.url("/v1/topics")).send().await.unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("30 requests at once never hit a 5/s quota");
    assert!(r.headers().contains_key("retry-after"));
    expect_problem(r, 429, "quota_exceeded").await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let s2 = Server::start_with(&["--quota-produce-bytes-per-sec", "2000"]);
    s2.create_topic("q", 1, json!({})).await;
    let big = json!({"records": [{"value": "x".repeat(1500)}]});
    let first = client()
        .post(s2.url("/v1/topics/q/records"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = client()
        .post(s2.url("/v1/topics/q/records"))
        .json(&big)
        .send()
        .await
        .unwrap();
    expect_problem(second, 429, "quota_exceeded").await;
    // Nothing of the refused request was written.
    assert_eq!(
        s2.fetch("q", 0, "offset=0").await["records"].as_array().unwrap().len(),
        1
    );
}

/// The fetch-bytes quota is charged after the read, as Kafka does: a fetch that overdraws is
/// served, the next one waits until the debt is repaid.
#[tokio::test]
async fn fetch_bytes_quota_charges_after_the_read() {
    let s = Server::start_with(&["--quota-fetch-bytes-per-sec", "2000"]);
    s.create_topic("fq", 1, json!({})).await;
    let records: Vec<Value> = (0..3).map(|_| json!({"value": "x".repeat(1500)})).collect();
    let r = client()
        .post(s.url("/v1/topics/fq/records"))
        .json(&json!({ "records": records }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fetch = || {
        client()
            .get(s.url("/v1/topics/fq/partitions/0/records?offset=0"))
            .send()
    };
    let first = fetch().await.unwrap();
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert_eq!(
        body["records"].as_array().unwrap().len(),
        3,
        "an overdrawing fetch is still served whole"
    );
    let refused = fetch().await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    let p = expect_problem(refused, 429, "quota_exceeded").await;
    let wait = p["retry_after_ms"].as_u64().expect("retry_after_ms");
    // About 4.5 KB owed at 2000 bytes/s beyond the one-second burst.
    assert!((500..=3000).contains(&wait), "retry_after_ms {wait}");
    tokio::time::sleep(Duration::from_millis(wait + 100)).await;
    assert_eq!(
        fetch().await.unwrap().status(),
        200,
        "served again once the debt is repaid"
    );
}
#[tokio::test]
async fn load_is_shed_with_503_instead_of_queueing() {
    let s = Server::start_with(&["--max-concurrent-requests", "2", "--max-streams", "1"]);
    s.create_topic("busy", 1, json!({})).await;
    let url = s.url("/v1/topics/busy/partitions/0/records?offset=0&wait_ms=3000");
    let polls: Vec<_> = (0..2).map(|_| tokio::spawn(client().get(url.clone()).send())).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = client().get(s.url("/v1/topics")).send().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    expect_problem(r, 503, "overloaded").await;
    for p in polls {
        assert_eq!(p.await.unwrap().unwrap().status(), 200);
    }
    let first = client().get(s.url("/v1/topics/busy/events")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    expect_problem(
        client().get(s.url("/v1/topics/busy/events")).send().await.unwrap(),
        503,
        "overloaded",
    )
    .await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        client()
            .get(s.url("/v1/topics/busy/events"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn cors_preflight_allows_only_configured_origins() {
    let s = Server::start_with(&["--cors-allowed-origins", "https://shop.example"]);
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, s.url("/v1/topics/orders/records"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://shop.example").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://shop.example");
    assert!(
        ok.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let bad = preflight("https://evil.example").await.unwrap();
    assert!(bad.headers().get("access-control-allow-origin").is_none());
    // Off by default.
    let plain = Server::start();
    let r = client()
        .request(reqwest::Method::OPTIONS, plain.url("/v1/topics"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn public_addresses_need_an_identity_source_or_an_explicit_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("WEIR_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("insecure-allow-unauthenticated"), "{err}");
    // With an identity source (or the loudly named flag) it starts; a bad token length does not.
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env("WEIR_ADMIN_TOKEN", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
}

#[tokio::test]
async fn audit_lines_go_to_the_log_and_the_audit_topic() {
    let s = Server::start_env(&["--audit-topic", "weir.audit"], &[("WEIR_ADMIN_TOKEN", ADMIN)]);
    let r = auth(client().post(s.url("/v1/topics")), ADMIN)
        .json(&json!({"name": "orders"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        auth(client().delete(s.url("/v1/topics/orders")), ADMIN)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let mut actions = Vec::new();
    for _ in 0..50 {
        let v: Value = auth(
            client().get(s.url("/v1/topics/weir.audit/partitions/0/records?offset=earliest")),
            ADMIN,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        // The audit topic's own creation (by the server) is audited too; look at "orders".
        actions = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["value"]["name"] == "orders")
            .map(|r| r["value"]["action"].as_str().unwrap().to_owned())
            .collect();
        if actions.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(actions, ["topic.create", "topic.delete"]);
    let logs = s.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("topic.create") && logs.contains("\"principal\":\"admin\""),
        "no audit log line"
    );
}

#[tokio::test]
async fn tls_certificate_is_reloaded_on_sighup() {
    let first = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::copy(first.path("server.pem"), &cert).unwrap();
    std::fs::copy(first.path("server.key"), &key).unwrap();
    let s = Server::start_with(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let url = format!("{}/healthz", s.base.replace("http://", "https://"));
    assert_eq!(curl(&first, &url, false, &[]).map(|r| r.1), Some(200));
    // A new certificate from another CA: trusted only after the reload.
    let second = Pki::new();
    std::fs::copy(second.path("server.pem"), &cert).unwrap();
    std::fs::copy(second.path("server.key"), &key).unwrap();
    assert_eq!(curl(&second, &url, false, &[]), None);
    let pid = s.pid();
    Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    let mut ok = None;
    for _ in 0..50 {
        ok = curl(&second, &url, false, &[]);
        if ok.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ok.map(|r| r.1), Some(200));
    assert_eq!(curl(&first, &url, false, &[]), None);
}

// Multi-threaded: the identity provider must answer while the test thread waits for the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_can_come_from_a_url() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = key.public_key_raw();
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k2", "alg": "ES256", "use": "sig",
        "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}]});
    // An identity provider of our own on loopback.
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || async move { axum::Json(jwks.clone()) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = Server::start_with(&["--jwt-jwks-url", &idp]);
    let header = jsonwebtoken::Header {
        alg: jsonwebtoken::Algorithm::ES256,
        kid: Some("k2".into()),
        ..Default::default()
    };
    let claims = json!({"sub": "carol", "exp": epoch() + 300, "weir_permissions": ["cluster:weir:describe"]});
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        auth(client().get(s.url("/metrics")), &token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = auth(client().post(s.url("/v1/tokens")), &token)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 403, "forbidden").await;
    expect_problem(
        client().get(s.url("/metrics")).send().await.unwrap(),
        401,
        "unauthenticated",
    )
    .await;
}
