//! Test harness: starts the real `weir` binary on 127.0.0.1:0 in a temporary data directory and
//! talks HTTP to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// A running server process.
pub struct Server {
    pub base: String,
    pub dir: PathBuf,
    _tmp: Option<Arc<tempfile::TempDir>>,
    child: Option<Child>,
    pub logs: Arc<Mutex<Vec<String>>>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Server {
    /// A server in a fresh data directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server in a fresh data directory, with extra `weir serve` flags.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_env(args, &[])
    }

    /// A server in a fresh data directory, with extra flags and environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let tmp = Arc::new(tempfile::tempdir().expect("tempdir"));
        let dir = tmp.path().join("data");
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut s = Self::spawn(&dir, args.iter().map(|s| s.to_string()).collect(), env);
        s._tmp = Some(tmp);
        s
    }

    fn spawn(dir: &Path, args: Vec<String>, env: Vec<(String, String)>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(&args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start weir");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "weir listening"
                {
                    let _ = tx.send(v["fields"]["addr"].as_str().unwrap_or_default().to_owned());
                }
                l.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("weir did not start: {:?}", logs.lock().unwrap());
            }
        };
        Self {
            base: format!("http://{addr}"),
            dir: dir.to_path_buf(),
            _tmp: None,
            child: Some(child),
            logs,
            args,
            env,
        }
    }

    /// Stops with SIGTERM (graceful) and waits for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let status = c.wait().expect("wait");
            assert!(
                status.success(),
                "weir exited with {status}: {:?}",
                self.logs.lock().unwrap()
            );
        }
    }

    /// Kills with SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-KILL").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// Starts a new process on the same data directory (after `stop` or `kill9`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        let next = Self::spawn(&self.dir.clone(), self.args.clone(), self.env.clone());
        self.base = next.base.clone();
        self.logs = next.logs.clone();
        let mut next = next;
        self.child = next.child.take();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GETs `path` and reads its JSON answer, whatever the status.
    pub async fn get_json(&self, path: &str) -> Value {
        client().get(self.url(path)).send().await.unwrap().json().await.unwrap()
    }

    /// GETs `path` and reads its answer as text, whatever the status.
    pub async fn get_text(&self, path: &str) -> String {
        client().get(self.url(path)).send().await.unwrap().text().await.unwrap()
    }

    /// Creates a topic and returns its description.
    pub async fn create_topic(&self, name: &str, partitions: u32, config: Value) -> Value {
        let r = client()
            .post(self.url("/v1/topics"))
            .json(&json!({"name": name, "partitions": partitions, "config": config}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "create topic {name}");
        r.json().await.unwrap()
    }

    /// Produces a JSON batch and returns the response body (asserting 200).
    pub async fn produce(&self, topic: &str, body: Value) -> Value {
        let r = client()
            .post(self.url(&format!("/v1/topics/{topic}/records")))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "produce: {v}");
        v
    }

    /// Fetches with a query string and returns the body (asserting 200).
    pub async fn fetch(&self, topic: &str, partition: u32, query: &str) -> Value {
        let r = client()
            .get(self.url(&format!("/v1/topics/{topic}/partitions/{partition}/records?{query}")))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "fetch: {v}");
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The admin token of servers started with authentication on ([`Server::start_admin`]).
pub const ADMIN: &str = "admin-secret-0123456789abcdef";

impl Server {
    /// A server with authentication on and [`ADMIN`] as its admin token, with extra flags.
    pub fn start_admin(args: &[&str]) -> Self {
        Self::start_env(args, &[("WEIR_ADMIN_TOKEN", ADMIN)])
    }
}

/// A request with a bearer token.
pub fn auth(r: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    r.header("authorization", format!("Bearer {token}"))
}

/// Mints an API token as `as_token` (the body of `POST /v1/tokens`); returns its id and secret.
pub async fn create_token(s: &Server, as_token: &str, body: Value) -> (String, String) {
    let r = auth(client().post(s.url("/v1/tokens")), as_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "create token");
    let v: Value = r.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

/// Sends `method path` with an optional JSON body; returns the status and the JSON answer
/// (`null` when the answer is not JSON).
pub async fn send(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = client().request(m, s.url(path));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates connector `name` with `config` through the Connect API; asserts `201 Created`.
pub async fn create_connector(s: &Server, name: &str, config: Value) {
    let (st, v) = send(
        s,
        "POST",
        "/v1/connectors",
        Some(json!({"name": name, "config": config})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
}

/// A shared HTTP client.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Asserts a problem+json answer with the given status and code; returns the problem.
pub async fn expect_problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status, "status");
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let v: Value = r.json().await.unwrap();
    assert_eq!(ct, "application/problem+json", "content type of {v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["status"], status, "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    v
}

/// A topic name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Reads Server-Sent Events (id, event, JSON data) from a streaming response, skipping
/// keep-alive comments; waits at most 10 s for each event.
pub struct Events {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl Events {
    /// Opens an event stream, asserting a 200 `text/event-stream` answer.
    pub async fn open(url: &str) -> Self {
        let r = client().get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/event-stream"), "{url}: {ct}");
        Self::new(r)
    }

    pub fn new(r: reqwest::Response) -> Self {
        use futures::StreamExt as _;
        Self {
            stream: r.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    pub async fn next(&mut self) -> (String, String, Value) {
        use futures::StreamExt as _;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("event: ").or_else(|| line.strip_prefix("event:")) {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
                        data.push_str(v);
                    }
                }
                if event.is_empty() && data.is_empty() {
                    continue; // keep-alive comment
                }
                return (id, event, serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("no event within 10 s")
                .expect("stream ended")
                .unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}
