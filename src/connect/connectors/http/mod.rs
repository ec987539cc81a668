//! `HttpSinkConnector`, with Confluent's class name and keys where they exist: each record's
//! value is sent as JSON to a URL (or up to `batch.max.size` values as one JSON array), with
//! static headers and basic or bearer authentication. 5xx answers, 408, 429, timeouts and
//! connection errors are retried with backoff; any other answer but 2xx means the records of
//! that request can never be written (dead-lettered or failing the task per
//! `errors.tolerance`). Delivery is at-least-once.

mod sink;
#[cfg(test)]
mod tests;

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};

use super::super::config::{ConfigDef, ConfigKey, Importance, Parsed, Type, Validator};
use super::super::plugin::{Connector, Kind, SinkTask, TaskError};

/// The HTTP sink plugin.
#[derive(Debug)]
pub struct HttpSink;

impl Connector for HttpSink {
    fn class(&self) -> &'static str {
        "io.confluent.connect.http.HttpSinkConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["HttpSink"]
    }

    fn kind(&self) -> Kind {
        Kind::Sink
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .with(connection_keys())
            .with(auth_keys())
            .with(delivery_keys())
    }

    fn validate(&self, config: &Parsed) -> Vec<(String, String)> {
        Settings::new(config).err().unwrap_or_default()
    }

    fn sink_task(&self, config: &Parsed, connector: &str, task: u32) -> Result<Box<dyn SinkTask>, TaskError> {
        let settings = Settings::new(config).map_err(|problems| {
            let msg: Vec<String> = problems.into_iter().map(|(k, m)| format!("{k}: {m}")).collect();
            TaskError::fatal(msg.join("; "))
        })?;
        Ok(Box::new(sink::Task::new(settings, connector, task)?))
    }
}

fn connection_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::required(
            "http.api.url",
            Type::String,
            "The URL records are sent to (http or https). Errors and logs show it without its query string or \
user info; the key itself is shown as given, so put credentials in the auth.type keys (always hidden).",
        )
        .check(Validator::Custom(check_url))
        .group("Connection"),
        ConfigKey::optional(
            "request.method",
            Type::String,
            "POST",
            "The HTTP method of each request.",
        )
        .check(Validator::OneOf(&["POST", "PUT", "PATCH"]))
        .group("Connection")
        .importance(Importance::High),
        ConfigKey::optional(
            "headers",
            Type::String,
            "",
            "Headers sent with every request, as Name:value pairs separated by header.separator (e.g. \
X-Source:weir|X-Env:prod). Shown in answers: put credentials in the auth.type keys, which are always \
hidden.",
        )
        .group("Connection"),
        ConfigKey::optional(
            "header.separator",
            Type::String,
            "|",
            "The separator between the pairs of headers.",
        )
        .check(Validator::NonEmpty)
        .group("Connection")
        .importance(Importance::Low),
        ConfigKey::optional(
            "request.timeout.ms",
            Type::Int,
            "30000",
            "How long one request may take, connection included, before it counts as failed (and is retried).",
        )
        .check(Validator::Range(Some(1), Some(3_600_000)))
        .group("Connection"),
    ]
}

fn auth_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::optional(
            "auth.type",
            Type::String,
            "NONE",
            "How requests authenticate: NONE, BASIC (connection.user and connection.password) or BEARER \
(bearer.token).",
        )
        .check(Validator::OneOf(&["NONE", "BASIC", "BEARER"]))
        .group("Authentication")
        .importance(Importance::High),
        ConfigKey::optional(
            "connection.user",
            Type::String,
            "",
            "The user name for BASIC authentication.",
        )
        .group("Authentication"),
        ConfigKey::optional(
            "connection.password",
            Type::Password,
            "",
            "The password for BASIC authentication (never shown).",
        )
        .group("Authentication"),
        ConfigKey::optional(
            "bearer.token",
            Type::Password,
            "",
            "The token for BEARER authentication (never shown).",
        )
        .group("Authentication"),
    ]
}

fn delivery_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::optional(
            "batch.max.size",
            Type::Int,
            "1",
            "The most records sent in one request. 1 sends each record's value as the body; more sends a JSON \
array of values. A request holds at most consumer.max.poll.records records.",
        )
        .check(Validator::Range(Some(1), Some(10_000)))
        .group("Batching")
        .importance(Importance::High),
        ConfigKey::optional(
            "request.body.format",
            Type::String,
            "json",
            "The body's format: json (record values as JSON; null values, i.e. tombstones, are not sent).",
        )
        .check(Validator::OneOf(&["json"]))
        .group("Batching"),
        ConfigKey::optional(
            "max.retries",
            Type::Int,
            "10",
            "How often a request that failed with a 5xx, 408 or 429 answer, a timeout or a connection error is \
tried again before the batch is handed back to the runtime (which retries it per errors.retry.timeout).",
        )
        .check(Validator::Range(Some(0), Some(1_000)))
        .group("Retries"),
        ConfigKey::optional(
            "retry.backoff.ms",
            Type::Long,
            "3000",
            "The wait before the first retry, in ms; it doubles with each retry (with jitter, at most 60 s). A \
Retry-After answer header lengthens it.",
        )
        .check(Validator::Range(Some(0), Some(600_000)))
        .group("Retries"),
    ]
}

/// Accepts absolute http and https URLs with a host.
fn check_url(value: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(value.trim())
        .map_err(|e| format!("Invalid value for configuration http.api.url: not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(
            "Invalid value for configuration http.api.url: must be an http:// or https:// URL with a host".into(),
        );
    }
    Ok(())
}

/// The HTTP sink's config, typed and checked.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    url: reqwest::Url,
    method: reqwest::Method,
    /// Every request's headers, authorization included (marked sensitive).
    headers: HeaderMap,
    batch: usize,
    max_retries: u32,
    backoff: Duration,
    timeout: Duration,
    /// Texts never to show: the password, the token and the encoded credentials.
    secrets: Vec<String>,
}

impl Settings {
    /// Reads a validated config; the problems are `(key, message)` pairs.
    fn new(p: &Parsed) -> Result<Self, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let url = reqwest::Url::parse(p.str("http.api.url"));
        let method = reqwest::Method::from_bytes(p.str("request.method").to_ascii_uppercase().as_bytes());
        let mut headers = match parse_headers(p.str("headers"), p.str("header.separator")) {
            Ok(h) => h,
            Err(e) => {
                problems.push(("headers".to_owned(), e));
                HeaderMap::new()
            }
        };
        // Defaults that a header of the `headers` key replaces.
        headers
            .entry(CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
        headers.entry(USER_AGENT).or_insert(HeaderValue::from_static(concat!(
            "weir-http-sink/",
            env!("CARGO_PKG_VERSION")
        )));
        let (authorization, mut secrets) = authorization(p, &mut problems);
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, value);
        }
        if let Some(pw) = url.as_ref().ok().and_then(|u| u.password()) {
            secrets.push(pw.to_owned());
        }
        let (Ok(url), Ok(method), true) = (url, method, problems.is_empty()) else {
            if problems.is_empty() {
                problems.push(("http.api.url".into(), "not a valid URL or method".into()));
            }
            return Err(problems);
        };
        Ok(Self {
            url,
            method,
            headers,
            batch: p.int("batch.max.size").clamp(1, 10_000) as usize,
            max_retries: p.int("max.retries").clamp(0, 1_000) as u32,
            backoff: Duration::from_millis(p.int("retry.backoff.ms").max(0) as u64),
            timeout: Duration::from_millis(p.int("request.timeout.ms").max(1) as u64),
            secrets,
        })
    }

    /// The URL as errors and logs show it: no user info, no query string.
    fn shown_url(&self) -> String {
        let mut u = self.url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.set_query(None);
        u.set_fragment(None);
        u.to_string()
    }
}

/// The `Authorization` header `auth.type` asks for, and the texts that must never be shown.
fn authorization(p: &Parsed, problems: &mut Vec<(String, String)>) -> (Option<HeaderValue>, Vec<String>) {
    let user = p.str("connection.user");
    let password = p.str("connection.password");
    let token = p.str("bearer.token");
    let mut secrets: Vec<String> = [password, token]
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let value = match p.str("auth.type").to_ascii_uppercase().as_str() {
        "BASIC" if user.is_empty() => {
            problems.push((
                "connection.user".into(),
                "BASIC authentication needs connection.user".into(),
            ));
            None
        }
        "BASIC" => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            secrets.push(encoded.clone());
            Some(format!("Basic {encoded}"))
        }
        "BEARER" if token.is_empty() => {
            problems.push(("bearer.token".into(), "BEARER authentication needs bearer.token".into()));
            None
        }
        "BEARER" => Some(format!("Bearer {token}")),
        _ => None,
    };
    let header = value.and_then(|v| match HeaderValue::from_str(&v) {
        Ok(mut h) => {
            h.set_sensitive(true);
            Some(h)
        }
        Err(_) => {
            problems.push((
                "auth.type".into(),
                "the credentials hold characters a header cannot".into(),
            ));
            None
        }
    });
    (header, secrets)
}

/// Parses `Name:value<sep>Name2:value2` (a value may hold `:`; empty pairs are skipped).
fn parse_headers(text: &str, separator: &str) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    if text.trim().is_empty() {
        return Ok(map);
    }
    for pair in text.split(separator).map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = pair.split_once(':') else {
            return Err(format!("'{pair}' is not a Name:value pair"));
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("'{}' is not a header name", name.trim()))?;
        let value =
            HeaderValue::from_str(value.trim()).map_err(|_| format!("the value of header '{name}' is not valid"))?;
        map.append(name, value);
    }
    Ok(map)
}
