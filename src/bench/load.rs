//! The benchmark's load generator for plain-HTTP POST workloads: a minimal HTTP/1.1 client that
//! sends one request, prepared once, over each keep-alive connection and reads the response
//! before sending it again, as `wrk` does.
//!
//! It shares the machine's two cores with the server it measures, so it does as little as it
//! can per request: the request bytes (head and body) are built once and written with one call,
//! and a response is only framed (status and `Content-Length`), never parsed. A general client
//! (reqwest) spent about an eighth of the machine on the batch produce workloads.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::{Buf as _, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A POST request prepared once and sent many times.
#[derive(Debug, Clone)]
pub(crate) struct Post {
    addr: SocketAddr,
    bytes: bytes::Bytes,
}

impl Post {
    /// The request `POST url` with `body` of `content_type`; `url` is `http://ip:port/path`.
    pub(crate) fn new(url: &str, content_type: &str, body: &[u8]) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .context("the load generator speaks plain http:// only")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr: SocketAddr = authority
            .parse()
            .context("the load generator needs an ip:port address")?;
        let path = if path.is_empty() { "/" } else { path };
        let mut bytes = format!(
            "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        Ok(Self {
            addr,
            bytes: bytes.into(),
        })
    }
}

/// Sends `req` over `concurrency` connections for `seconds`; returns the requests accepted, the
/// time taken and their latencies in µs. A refusal of backpressure (503, 429) is waited out as
/// it asks, as a well-behaved client does; any other answer but a 2xx is an error.
pub(crate) async fn run(
    req: &Post,
    concurrency: usize,
    seconds: f64,
) -> anyhow::Result<(u64, Duration, Histogram<u64>)> {
    drive(concurrency, seconds, |deadline| {
        let req = req.clone();
        async move {
            let mut conn = Conn::open(&req).await?;
            let mut runs = Runs::until(deadline);
            while runs.due() {
                if let Some(wait) = runs.time_accepted(conn.send_allowing_refusal(&req)).await? {
                    tokio::time::sleep(wait).await;
                }
            }
            Ok(runs.finish())
        }
    })
    .await
}

/// A keep-alive connection to a [`Post`]'s server that sends one request at a time.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Connects to the server `req` is addressed to.
    pub(crate) async fn open(req: &Post) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(req.addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: BytesMut::with_capacity(128 << 10),
        })
    }

    /// Sends `req` and reads its whole response; any answer but a 2xx is an error.
    pub(crate) async fn send(&mut self, req: &Post) -> anyhow::Result<()> {
        match exchange(&mut self.stream, &req.bytes, &mut self.buf).await? {
            (200..=299, _) => Ok(()),
            (_, text) => bail!("bench request failed: {text}"),
        }
    }

    /// Sends `req` and reads its whole response: `None` for a 2xx, the wait asked for by a
    /// refusal of backpressure (503 or 429: the problem's `retry_after_ms`, else 200 ms); any
    /// other answer is an error.
    pub(crate) async fn send_allowing_refusal(&mut self, req: &Post) -> anyhow::Result<Option<Duration>> {
        match exchange(&mut self.stream, &req.bytes, &mut self.buf).await? {
            (200..=299, _) => Ok(None),
            (429 | 503, text) => Ok(Some(Duration::from_millis(retry_after_ms(&text).unwrap_or(200)))),
            (_, text) => bail!("bench request failed: {text}"),
        }
    }
}

/// Runs `concurrency` tasks made by `task` (given the deadline, `seconds` from now) and merges
/// what they return: requests answered and their latencies. Returns those with the time taken.
pub(crate) async fn drive<F, T>(
    concurrency: usize,
    seconds: f64,
    task: F,
) -> anyhow::Result<(u64, Duration, Histogram<u64>)>
where
    F: Fn(Instant) -> T,
    T: Future<Output = anyhow::Result<(u64, Histogram<u64>)>> + Send + 'static,
{
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency).map(|_| tokio::spawn(task(deadline))).collect();
    let mut total = 0;
    let mut latency = super::histogram();
    for t in tasks {
        let (n, h) = t.await??;
        total += n;
        latency.add(h).map_err(|e| anyhow::anyhow!("merge histograms: {e:?}"))?;
    }
    Ok((total, started.elapsed(), latency))
}

/// One task's requests until a deadline: how many ran and their latencies in µs.
pub(crate) struct Runs {
    deadline: Instant,
    n: u64,
    latency: Histogram<u64>,
}

impl Runs {
    /// No requests yet; more are due until `deadline`.
    pub(crate) fn until(deadline: Instant) -> Self {
        Self {
            deadline,
            n: 0,
            latency: super::histogram(),
        }
    }

    /// Whether the deadline is still ahead.
    pub(crate) fn due(&self) -> bool {
        Instant::now() < self.deadline
    }

    /// Awaits one request, timing it.
    pub(crate) async fn time<T>(&mut self, request: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
        let t = Instant::now();
        let out = request.await?;
        self.latency.saturating_record(t.elapsed().as_micros() as u64);
        self.n += 1;
        Ok(out)
    }

    /// Awaits one request that backpressure may refuse (it answers the wait asked for): only
    /// an accepted one is counted and timed.
    pub(crate) async fn time_accepted(
        &mut self,
        request: impl Future<Output = anyhow::Result<Option<Duration>>>,
    ) -> anyhow::Result<Option<Duration>> {
        let t = Instant::now();
        let refused = request.await?;
        if refused.is_none() {
            self.latency.saturating_record(t.elapsed().as_micros() as u64);
            self.n += 1;
        }
        Ok(refused)
    }

    /// How many requests ran and their latencies.
    pub(crate) fn finish(self) -> (u64, Histogram<u64>) {
        (self.n, self.latency)
    }
}

/// Writes one request and reads its whole response: its status, and for any but a 2xx the
/// response's text.
async fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut BytesMut) -> anyhow::Result<(u16, String)> {
    stream.write_all(request).await?;
    loop {
        if let Some((status, len)) = frame(buf)?
            && buf.len() >= len
        {
            let text = if (200..300).contains(&status) {
                String::new()
            } else {
                String::from_utf8_lossy(&buf[..len]).into_owned()
            };
            buf.advance(len);
            return Ok((status, text));
        }
        buf.reserve(64 << 10);
        if stream.read_buf(buf).await? == 0 {
            bail!("the server closed the connection mid-response");
        }
    }
}

/// The `retry_after_ms` member of a problem response's text.
fn retry_after_ms(text: &str) -> Option<u64> {
    let at = text.find("\"retry_after_ms\":")? + "\"retry_after_ms\":".len();
    let digits: String = text[at..]
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The status and whole length (head and body) of the response at the start of `buf`, once its
/// head is in. Only `Content-Length` framing is understood (what the servers measured send).
fn frame(buf: &[u8]) -> anyhow::Result<Option<(u16, usize)>> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP/1.1 status line: {head:?}"))?;
    let length = head
        .split("\r\n")
        .skip(1)
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>())
        })
        .with_context(|| format!("response without Content-Length: {head:?}"))??;
    Ok(Some((status, end + 4 + length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_a_response_by_its_content_length() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        assert_eq!(frame(r).unwrap(), Some((200, r.len())));
        assert_eq!(frame(&r[..20]).unwrap(), None);
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(frame(chunked).is_err());
    }

    #[test]
    fn reads_the_wait_a_refusal_asks_for() {
        let r = "HTTP/1.1 503 Service Unavailable\r\n\r\n{\"code\":\"overloaded\",\"retry_after_ms\": 200}";
        assert_eq!(retry_after_ms(r), Some(200));
        assert_eq!(retry_after_ms("{\"code\":\"overloaded\"}"), None);
    }

    #[test]
    fn builds_the_request_once() {
        let p = Post::new("http://127.0.0.1:8080/v1/topics/t/records", "application/json", b"{}").unwrap();
        assert_eq!(p.addr, "127.0.0.1:8080".parse().unwrap());
        assert!(p.bytes.starts_with(b"POST /v1/topics/t/records HTTP/1.1\r\n"));
        assert!(p.bytes.ends_with(b"content-length: 2\r\n\r\n{}"));
        assert!(Post::new("https://127.0.0.1:1/", "text/plain", b"").is_err());
    }
}
