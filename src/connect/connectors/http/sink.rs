//! The HTTP sink task: splits a batch into requests of `batch.max.size` values, retries each
//! with backoff, and remembers how far a batch got, so that when the runtime hands the same
//! batch back after a retriable failure the requests already answered are not sent again.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;

use super::Settings;
use crate::connect::plugin::{PutError, SinkTask, TaskError};
use crate::connect::record::ConnectRecord;

/// The longest wait between two tries of a request.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How much of an answer's body is read for an error message.
const EXCERPT_READ: usize = 1024;

/// How much of an answer's body an error message shows.
const EXCERPT_SHOWN: usize = 200;

/// The HTTP sink task.
pub(super) struct Task {
    client: reqwest::Client,
    settings: Settings,
    url: String,
    connector: String,
    task: u32,
    /// How far the last batch got when a request of it failed for now.
    progress: Option<Progress>,
}

/// The part of a batch already answered.
struct Progress {
    batch: BatchId,
    /// Records before this index were answered.
    done: usize,
    /// Records answered with a rejection.
    rejected: Vec<(usize, String)>,
}

/// What tells two batches apart: their size and where their first and last records were read.
type BatchId = (
    usize,
    Option<(String, Option<u32>, Option<u64>)>,
    Option<(String, Option<u32>, Option<u64>)>,
);

fn batch_id(records: &[ConnectRecord]) -> BatchId {
    let at = |r: &ConnectRecord| (r.topic.clone(), r.partition, r.offset);
    (records.len(), records.first().map(at), records.last().map(at))
}

/// How one request went, after its retries.
enum Sent {
    /// Answered with 2xx (or nothing to send).
    Ok,
    /// Answered with a status that means these records can never be written.
    Rejected(String),
    /// Still failing after `max.retries` retries.
    Failing(String),
}

/// How one try of a request went.
enum Try {
    Ok,
    Rejected(String),
    /// Worth trying again, after at least the wait the server asked for.
    Again(String, Option<Duration>),
}

impl Task {
    pub(super) fn new(settings: Settings, connector: &str, task: u32) -> Result<Self, TaskError> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TaskError::fatal(format!("http client: {e}")))?;
        Ok(Self {
            client,
            url: settings.shown_url(),
            settings,
            connector: connector.to_owned(),
            task,
            progress: None,
        })
    }

    /// The body of one request: the value, or a JSON array of values when batching; `None`
    /// when there is nothing to send (only tombstones).
    fn body(&self, records: &[ConnectRecord]) -> Option<Bytes> {
        let values: Vec<&serde_json::Value> = records.iter().map(|r| &r.value).filter(|v| !v.is_null()).collect();
        let json = match values.as_slice() {
            [] => return None,
            [one] if self.settings.batch == 1 => serde_json::to_vec(one),
            many => serde_json::to_vec(many),
        };
        Some(Bytes::from(json.expect("JSON values serialize")))
    }

    /// Sends one request, retrying per `max.retries` and `retry.backoff.ms`.
    async fn send(&self, body: Bytes) -> Sent {
        let mut retries = 0;
        loop {
            match self.try_once(body.clone()).await {
                Try::Ok => return Sent::Ok,
                Try::Rejected(e) => return Sent::Rejected(e),
                Try::Again(e, _) if retries >= self.settings.max_retries => {
                    return Sent::Failing(format!("{e} (after {retries} retries)"));
                }
                Try::Again(e, asked) => {
                    let wait = self.delay(retries, asked);
                    tracing::warn!(connector = %self.connector, task = self.task, url = %self.url, error = %e, retry = retries + 1, wait_ms = wait.as_millis() as u64, "http sink request failed; retrying");
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
            }
        }
    }

    /// The wait before retry number `retries + 1`: doubling from `retry.backoff.ms`, with
    /// jitter, at least what a Retry-After header asked, at most [`MAX_BACKOFF`].
    pub(super) fn delay(&self, retries: u32, asked: Option<Duration>) -> Duration {
        let base = self
            .settings
            .backoff
            .saturating_mul(1 << retries.min(20))
            .min(MAX_BACKOFF);
        let jittered = base.mul_f64(0.75 + fastrand::f64() * 0.25);
        jittered.max(asked.unwrap_or_default()).min(MAX_BACKOFF)
    }

    async fn try_once(&self, body: Bytes) -> Try {
        let s = &self.settings;
        let request = self
            .client
            .request(s.method.clone(), s.url.clone())
            .headers(s.headers.clone())
            .body(body);
        let answer = match request.send().await {
            Ok(a) => a,
            Err(e) => return Try::Again(format!("{} {}: {}", s.method, self.url, self.describe(&e)), None),
        };
        let status = answer.status();
        if status.is_success() {
            return Try::Ok;
        }
        let asked = retry_after(&answer);
        let excerpt = self.excerpt(answer).await;
        let message = format!("{} {} answered {status}: {excerpt}", s.method, self.url);
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS
        {
            Try::Again(message, asked)
        } else {
            Try::Rejected(message)
        }
    }

    /// A failed request's error, without its URL (the shown one is used instead).
    fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!("timed out after {} ms", self.settings.timeout.as_millis());
        }
        let mut text = if e.is_connect() {
            "cannot connect".to_owned()
        } else {
            "request failed".to_owned()
        };
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.redact(&text)
    }

    /// The start of an answer's body, on one line, without secrets.
    async fn excerpt(&self, mut answer: reqwest::Response) -> String {
        let mut bytes = Vec::new();
        while bytes.len() < EXCERPT_READ {
            match answer.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let redacted = self.redact(&line);
        let mut shown: String = redacted.chars().take(EXCERPT_SHOWN).collect();
        if shown.len() < redacted.len() {
            shown.push('…');
        }
        if shown.is_empty() {
            "(no body)".to_owned()
        } else {
            shown
        }
    }

    /// `text` with every secret replaced by `[hidden]`.
    fn redact(&self, text: &str) -> String {
        self.settings.secrets.iter().fold(text.to_owned(), |t, s| {
            t.replace(s.as_str(), crate::connect::config::HIDDEN)
        })
    }
}

/// A `Retry-After` header given in seconds.
fn retry_after(answer: &reqwest::Response) -> Option<Duration> {
    let v = answer.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[async_trait]
impl SinkTask for Task {
    async fn put(&mut self, records: &[ConnectRecord]) -> Result<(), PutError> {
        let id = batch_id(records);
        let (mut start, mut rejected) = match self.progress.take() {
            Some(p) if p.batch == id => (p.done, p.rejected),
            _ => (0, Vec::new()),
        };
        while start < records.len() {
            let end = (start + self.settings.batch).min(records.len());
            let sent = match self.body(&records[start..end]) {
                Some(body) => self.send(body).await,
                None => Sent::Ok,
            };
            match sent {
                Sent::Ok => {}
                Sent::Rejected(e) => rejected.extend((start..end).map(|i| (i, e.clone()))),
                Sent::Failing(e) => {
                    self.progress = Some(Progress {
                        batch: id,
                        done: start,
                        rejected,
                    });
                    return Err(PutError::Retriable(e));
                }
            }
            start = end;
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(PutError::Records(rejected))
        }
    }
}
