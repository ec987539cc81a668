//! `/v1/topics/{topic}/records` and `/v1/topics/{topic}/partitions/{partition}/records`:
//! produce (JSON batch, raw body, NDJSON stream) and fetch (with long-polling).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{Params, media_type, parse_json, read_body};
use super::limits::BodyReservation;
use super::produce_answer::{ProduceAnswer, RecordResult, ResultsShape, produce_answer};
use super::produce_body;
use super::render::{Rendering, json_response, write_records};
use crate::broker::produce::ProduceRequest;
use crate::broker::{
    Broker, Caller, Durability, FetchRequest, Idempotency, PayloadInput, RecordInput, StartAt, ValueInput,
};
use crate::error::{Error, ErrorCode};
use crate::storage::Format;

/// A field that distinguishes "absent" from an explicit `null`.
#[derive(Debug, Default, Clone, Copy)]
pub enum RawField<'a> {
    /// Not in the object.
    #[default]
    Missing,
    /// Present, as raw JSON (possibly `null`).
    Present(&'a RawValue),
}

impl<'de: 'a, 'a> Deserialize<'de> for RawField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(RawField::Present)
    }
}

/// One record to produce.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord<'a> {
    /// Optional key: any JSON value by default; a string with `key_format` `string` or `binary`
    /// (base64). Keyed records go to the partition Kafka's default partitioner picks.
    #[serde(borrow, default)]
    #[schema(value_type = serde_json::Value)]
    pub key: Option<&'a RawValue>,
    /// The value (required; `null` is Kafka's tombstone): any JSON value by default; a string
    /// with `value_format` `string` or `binary` (base64).
    #[serde(borrow, default)]
    #[schema(value_type = serde_json::Value, required = true)]
    pub value: RawField<'a>,
    /// Headers: names to UTF-8 string values.
    #[serde(borrow, default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub headers: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    /// Explicit partition; otherwise chosen from the key, or spread when there is no key.
    #[serde(default, deserialize_with = "crate::json_int::opt")]
    pub partition: Option<i64>,
    /// Timestamp in ms since the epoch; default: the time the server received the record.
    #[serde(default, deserialize_with = "crate::json_int::opt")]
    pub timestamp: Option<i64>,
}

/// Body of a JSON produce request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "records": [
        {"key": "customer-17", "value": {"order": 981, "total": 25.5}, "headers": {"source": "web"}},
        {"value": {"order": 982, "total": 7.0}, "partition": 2, "timestamp": 1732500000000i64}
    ]
}))]
pub struct ProduceBody<'a> {
    /// The records, written in order (per partition).
    #[serde(borrow)]
    pub records: Vec<ProduceRecord<'a>>,
    /// How keys are given: `json` (default), `string` or `binary` (base64).
    pub key_format: Option<Format>,
    /// How values are given: `json` (default), `string` or `binary` (base64).
    pub value_format: Option<Format>,
}

/// Query parameters of produce.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProduceParams {
    /// Raw body only: the record key (text).
    pub key: Option<String>,
    /// Raw body only: explicit partition.
    #[param(value_type = Option<u32>)]
    pub partition: Option<String>,
    /// Raw body only: timestamp, ms since the epoch.
    #[param(value_type = Option<i64>)]
    pub timestamp: Option<String>,
    /// How keys are given (`json`, `string`, `binary`). Raw bodies default to `string`.
    pub key_format: Option<Format>,
    /// How values are given (`json`, `string`, `binary`). Raw bodies default to `json` when the
    /// body is JSON, else `string` for `text/plain` and `binary` for `application/octet-stream`.
    pub value_format: Option<Format>,
    /// `fsync` to have this request fsynced before it is acknowledged, whatever the topic says.
    pub durability: Option<Durability>,
    /// The answer's shape: `records` (default, one result per record) or `partitions` (each
    /// partition's `base_offset` and `count`, failed records by index). Not for NDJSON streams.
    #[param(inline)]
    pub results: Option<ResultsShape>,
}

/// The broker's view of a record read by the serde path.
pub(crate) fn to_input<'a>(r: &'a ProduceRecord<'a>) -> RecordInput<'a> {
    RecordInput {
        key: r.key.map(|k| PayloadInput::Json(k.get())),
        value: match r.value {
            RawField::Missing => ValueInput::Missing,
            RawField::Present(v) if v.get() == "null" => ValueInput::Null,
            RawField::Present(v) => ValueInput::Given(PayloadInput::Json(v.get())),
        },
        headers: r.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect(),
        partition: r.partition,
        timestamp: r.timestamp,
    }
}

/// The `max_records` (default 500), `max_bytes` (default 1 MiB) and `wait_ms` (default 0) of a
/// read, as given in a query string.
pub fn read_limits(
    max_records: &Option<String>,
    max_bytes: &Option<String>,
    wait_ms: &Option<String>,
) -> Result<(usize, usize, Duration), Error> {
    Ok((
        parse_num("max_records", max_records.as_deref())?.unwrap_or(500),
        parse_num("max_bytes", max_bytes.as_deref())?.unwrap_or(1 << 20),
        Duration::from_millis(parse_num("wait_ms", wait_ms.as_deref())?.unwrap_or(0)),
    ))
}

/// The answer header saying that a read's `wait_ms` was over the server's `max_wait_ms`, and so
/// waited only that long: its value is the cap in ms.
pub const WAIT_CAPPED: &str = "weir-wait-capped";

/// Says in `resp` that `asked` was cut to the server's `max_wait_ms` (nothing when it was not).
pub fn say_wait_capped(resp: &mut Response, asked: Duration, max_wait_ms: u64) {
    if asked > Duration::from_millis(max_wait_ms) {
        resp.headers_mut().insert(WAIT_CAPPED, HeaderValue::from(max_wait_ms));
    }
}

/// Parses an optional numeric query parameter, naming it in the error.
pub fn parse_num<T: std::str::FromStr>(field: &str, v: Option<&str>) -> Result<Option<T>, Error> {
    v.map(|s| {
        s.parse::<T>()
            .map_err(|_| Error::invalid_parameter(field, format!("{field} must be a non-negative integer, not '{s}'")))
    })
    .transpose()
}

fn idempotency(headers: &HeaderMap, body: &[u8], extra: &str) -> Result<Option<Idempotency>, Error> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .map_err(|_| Error::invalid_parameter("Idempotency-Key", "Idempotency-Key must be visible ASCII"))?
        .to_owned();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(body);
    h.update(extra.as_bytes());
    Ok(Some(Idempotency {
        key,
        fingerprint: h.digest(),
    }))
}

/// Produce records.
#[utoipa::path(
    post, path = "/v1/topics/{topic}/records", tag = "records", operation_id = "produce",
    extensions(("x-weir-permissions" = json!([{"resource": "topic", "name": "{topic}", "operation": "write"}]))),
    summary = "Produce records",
    description = "Appends records to a topic. `application/json` takes a batch; a raw body \
(`application/octet-stream` or `text/plain`) is one record with its key in the `key` query parameter; \
`application/x-ndjson` is a stream of record objects, one per line, answered by an NDJSON stream of \
results in order as records are written. Records that cannot be written get an `error` entry while the \
others are written; when every record fails the answer is a problem. With an `Idempotency-Key` header, a \
retry within the server's window returns the original results and appends nothing.",
    params(
        ("topic" = String, Path, description = "Topic name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this request safe"),
        ProduceParams,
    ),
    request_body(content(
        (ProduceBody = "application/json"),
        (String = "application/x-ndjson", example = json!("{\"key\":\"a\",\"value\":{\"n\":1}}\n{\"value\":{\"n\":2}}\n")),
        (String = "text/plain", example = json!("hello")),
        (inline(super::openapi::RawBody) = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "Per-record results (for NDJSON: one result object per line).", content(
            (ProduceAnswer = "application/json"),
            (RecordResult = "application/x-ndjson", example = json!({"partition": 0, "offset": 7, "timestamp": 1732500000000i64})),
        ), headers(("Idempotency-Replayed" = String, description = "`true` when this is the stored result of an earlier request"))),
        (status = 400, description = "`invalid_json`, `invalid_record`, `invalid_base64`, `invalid_parameter`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`topic_not_found`, `partition_not_found`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`request_too_large`, `record_too_large`, `too_many_records`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn produce(
    State(s): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
    Params(p): Params<ProduceParams>,
    request: Request,
) -> ApiResult<Response> {
    // The request itself rather than a `HeaderMap` extractor, which clones every header.
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let limit = s.broker.config().max_request_bytes;
    let shape = p.results.unwrap_or_default();
    let mt = media_type(&headers);
    match mt.as_deref() {
        None | Some("application/json") => {
            reject_raw_params(&p)?;
            let bytes = read_body(body, limit).await?;
            let slow: ProduceBody<'_>;
            let (records, key_format, value_format) = match produce_body::parse_body(&bytes) {
                Some(fast) => (fast.records, fast.key_format, fast.value_format),
                None => {
                    super::extract::refuse_array(
                        &bytes,
                        "wrap the records in an object: {\"records\": [{\"value\": …}, …]}",
                    )?;
                    slow = parse_json(&bytes)?;
                    (
                        slow.records.iter().map(to_input).collect(),
                        slow.key_format,
                        slow.value_format,
                    )
                }
            };
            let request = ProduceRequest {
                records,
                key_format: key_format.or(p.key_format).unwrap_or_default(),
                value_format: value_format.or(p.value_format).unwrap_or_default(),
                durability: p.durability,
                idempotency: idempotency(&headers, &bytes, "")?,
            };
            Ok(produce_answer(s.broker.produce(&caller, &topic, request).await?, shape))
        }
        Some(mt) if NDJSON_TYPES.contains(&mt) => {
            reject_raw_params(&p)?;
            if p.results.is_some() {
                return Err(Error::invalid_parameter(
                    "results",
                    "results is not supported on NDJSON streams, which answer one line per record",
                )
                .into());
            }
            if headers.contains_key("idempotency-key") {
                return Err(Error::invalid_parameter(
                    "Idempotency-Key",
                    "Idempotency-Key is not supported on NDJSON streams; use a JSON batch",
                )
                .into());
            }
            s.broker.topic(&caller, &topic)?;
            let held = s.limits.bodies.reservation();
            Ok(produce_ndjson(s.broker.clone(), caller, topic, p, body, held).await)
        }
        Some(ct @ ("application/octet-stream" | "text/plain")) => {
            let bytes = read_body(body, limit).await?;
            let value_format = p.value_format.unwrap_or_else(|| {
                if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
                    Format::Json
                } else if ct == "text/plain" && std::str::from_utf8(&bytes).is_ok() {
                    Format::String
                } else {
                    Format::Binary
                }
            });
            let record = RecordInput {
                key: p.key.as_deref().map(|k| PayloadInput::Bytes(k.as_bytes())),
                value: ValueInput::Given(PayloadInput::Bytes(&bytes)),
                headers: Vec::new(),
                partition: parse_num::<i64>("partition", p.partition.as_deref())?,
                timestamp: parse_num::<i64>("timestamp", p.timestamp.as_deref())?,
            };
            let extra = format!("{:?}|{:?}|{:?}", p.key, p.partition, p.timestamp);
            let request = ProduceRequest {
                records: vec![record],
                key_format: p.key_format.unwrap_or(Format::String),
                value_format,
                durability: p.durability,
                idempotency: idempotency(&headers, &bytes, &extra)?,
            };
            Ok(produce_answer(s.broker.produce(&caller, &topic, request).await?, shape))
        }
        Some(other) => Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Type '{other}' is not accepted; use application/json, application/x-ndjson, \
                 application/octet-stream or text/plain"
            ),
        )
        .with_field("Content-Type")
        .into()),
    }
}

fn reject_raw_params(p: &ProduceParams) -> Result<(), Error> {
    for (name, set) in [
        ("key", p.key.is_some()),
        ("partition", p.partition.is_some()),
        ("timestamp", p.timestamp.is_some()),
    ] {
        if set {
            return Err(Error::invalid_parameter(
                name,
                format!("the {name} query parameter applies to raw bodies only; put it in the record"),
            ));
        }
    }
    Ok(())
}

fn ndjson_line(r: RecordResult) -> Bytes {
    let mut v = serde_json::to_vec(&r).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// An NDJSON line as read by the fast path, or by serde when the fast path left it.
enum Line<'a> {
    Fast(RecordInput<'a>),
    Slow(ProduceRecord<'a>),
}

/// The media types of a streaming NDJSON produce.
const NDJSON_TYPES: [&str; 3] = ["application/x-ndjson", "application/jsonl", "application/x-jsonlines"];

/// Whether a request is a streaming NDJSON produce, whose handler reserves body memory itself
/// (for the lines it holds, not for the whole stream, which may be any length).
pub fn streams_body(req: &Request) -> bool {
    req.method() == axum::http::Method::POST
        && req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .is_some_and(|p| p.as_str() == "/v1/topics/{topic}/records")
        && media_type(req.headers()).is_some_and(|mt| NDJSON_TYPES.contains(&mt.as_str()))
}

/// Answers an NDJSON stream once its first chunk is in: reading the body before the answer's head
/// goes out is what makes hyper send `100 Continue` to a client that asked for it (`curl -T`
/// otherwise waits a second before it sends anything).
async fn produce_ndjson(
    broker: Broker,
    caller: Caller,
    topic: String,
    p: ProduceParams,
    body: Body,
    held: BodyReservation,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let limit = broker.config().max_request_bytes;
    let max_records = broker.config().max_records_per_request;
    let mut stream = body.into_data_stream().peekable();
    std::pin::Pin::new(&mut stream).peek().await;
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let chunk = stream.next().await;
            let eof = !matches!(chunk, Some(Ok(_)));
            if let Some(Ok(c)) = chunk {
                buf.extend_from_slice(&c);
            }
            // The lines held, against the memory budget for bodies.
            if let Err(e) = held.resize(buf.len()) {
                let _ = tx
                    .send(Ok(ndjson_line(Err::<crate::broker::RecordAck, _>(e).into())))
                    .await;
                return;
            }
            let cut = if eof {
                buf.len()
            } else {
                buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
            };
            if cut == 0 && !eof {
                if buf.len() > limit {
                    let e = Error::new(
                        ErrorCode::RequestTooLarge,
                        format!("an NDJSON line exceeds {limit} bytes"),
                    );
                    let _ = tx
                        .send(Ok(ndjson_line(Err::<crate::broker::RecordAck, _>(e).into())))
                        .await;
                    return;
                }
                continue;
            }
            let lines: Vec<u8> = buf.drain(..cut).collect();
            let lines: Vec<&[u8]> = lines
                .split(|&b| b == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .collect();
            for group in lines.chunks(max_records) {
                // The fast path per line; the serde path for the lines it leaves (and their errors).
                let read: Vec<Result<Line<'_>, Error>> = group
                    .iter()
                    .map(|l| match produce_body::parse_record(l) {
                        Some(r) => Ok(Line::Fast(r)),
                        None => parse_json(l).map(Line::Slow),
                    })
                    .collect();
                let parsed: Vec<Result<RecordInput<'_>, Error>> = read
                    .iter()
                    .map(|l| match l {
                        Ok(Line::Fast(r)) => Ok(r.clone()),
                        Ok(Line::Slow(r)) => Ok(to_input(r)),
                        Err(e) => Err(e.clone()),
                    })
                    .collect();
                let results = produce_lines(&broker, &caller, &topic, &p, &parsed).await;
                for r in results {
                    if tx.send(Ok(ndjson_line(r))).await.is_err() {
                        return;
                    }
                }
            }
            if eof {
                return;
            }
            let _ = held.resize(buf.len());
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    resp
}

async fn produce_lines(
    broker: &Broker,
    caller: &Caller,
    topic: &str,
    p: &ProduceParams,
    parsed: &[Result<RecordInput<'_>, Error>],
) -> Vec<RecordResult> {
    let records: Vec<RecordInput<'_>> = parsed.iter().filter_map(|r| r.as_ref().ok()).cloned().collect();
    let mut outcome = if records.is_empty() {
        Vec::new().into_iter()
    } else {
        let req = ProduceRequest {
            records,
            key_format: p.key_format.unwrap_or_default(),
            value_format: p.value_format.unwrap_or_default(),
            durability: p.durability,
            idempotency: None,
        };
        match broker.produce(caller, topic, req).await {
            Ok(o) => o.into_results().into_iter(),
            Err(e) => vec![Err(e); parsed.iter().filter(|r| r.is_ok()).count()].into_iter(),
        }
    };
    parsed
        .iter()
        .map(|r| match r {
            Ok(_) => {
                let mut res = outcome
                    .next()
                    .unwrap_or_else(|| Err(Error::new(ErrorCode::Internal, "missing result")));
                if let Err(e) = &mut res {
                    // Fields are named per line in a stream, not per request.
                    e.field = e
                        .field
                        .take()
                        .map(|f| f.split_once('.').map_or(f.clone(), |(_, rest)| rest.to_owned()));
                }
                res.into()
            }
            Err(e) => Err::<crate::broker::RecordAck, _>(e.clone()).into(),
        })
        .collect()
}

/// Query parameters of fetch.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FetchParams {
    /// Where to start: an offset, `earliest` (default) or `latest`.
    pub offset: Option<String>,
    /// Start at the first record whose timestamp is at or after this (ms since the epoch).
    #[param(value_type = Option<i64>)]
    pub timestamp: Option<String>,
    /// Most records to return (default 500).
    #[param(value_type = Option<u32>)]
    pub max_records: Option<String>,
    /// Most payload bytes to return (default 1 MiB; at least one record is returned).
    #[param(value_type = Option<u64>)]
    pub max_bytes: Option<String>,
    /// Long-poll: wait up to this many ms for a first record (default 0).
    /// Over the server's `max_wait_ms` (default 60000) it waits that long and says so in the
    /// `Weir-Wait-Capped` header.
    #[param(value_type = Option<u64>)]
    pub wait_ms: Option<String>,
    /// Render keys as `json` (as produced), `string` or `binary` (base64).
    pub key_format: Option<Format>,
    /// Render values as `json` (as produced), `string` or `binary` (base64).
    pub value_format: Option<Format>,
}

/// One record as read.
#[derive(Debug, Serialize, ToSchema)]
pub struct FetchedRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Timestamp, ms since the epoch.
    pub timestamp: i64,
    /// Key as produced (JSON), or a string, or base64 with `key_format` `binary`.
    pub key: serde_json::Value,
    /// Value as produced (JSON), or a string, or base64 with `value_format` `binary`.
    pub value: serde_json::Value,
    /// Headers.
    pub headers: BTreeMap<String, String>,
    /// Present when the key is not rendered as JSON: `string` or `binary`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_format: Option<Format>,
    /// Present when the value is not rendered as JSON: `string` or `binary`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_format: Option<Format>,
}

/// Response of fetch.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "records": [{"topic": "orders", "partition": 0, "offset": 41, "timestamp": 1732500000000i64,
                 "key": "customer-17", "value": {"order": 981, "total": 25.5}, "headers": {"source": "web"}}],
    "next_offset": 42,
    "high_watermark": 42
}))]
pub struct FetchResponse {
    /// Records in offset order.
    pub records: Vec<FetchedRecord>,
    /// The offset to ask for next.
    pub next_offset: u64,
    /// The partition's next offset to be written, when read.
    pub high_watermark: u64,
}

/// Parses the start of a read from `offset` / `timestamp` parameters.
pub fn start_at(offset: Option<&str>, timestamp: Option<&str>, default: StartAt) -> Result<StartAt, Error> {
    match (offset, timestamp) {
        (Some(_), Some(_)) => Err(Error::invalid_parameter(
            "timestamp",
            "give either offset or timestamp, not both",
        )),
        (None, Some(t)) => Ok(StartAt::Timestamp(
            parse_num::<i64>("timestamp", Some(t))?
                .filter(|t| *t >= 0)
                .ok_or_else(|| Error::invalid_parameter("timestamp", "timestamp must be ms since the epoch, >= 0"))?,
        )),
        (Some("earliest"), None) => Ok(StartAt::Earliest),
        (Some("latest"), None) => Ok(StartAt::Latest),
        (Some(o), None) => o.parse().map(StartAt::Offset).map_err(|_| {
            Error::invalid_parameter(
                "offset",
                format!("offset must be an integer, 'earliest' or 'latest', not '{o}'"),
            )
        }),
        (None, None) => Ok(default),
    }
}

/// Parses a partition path segment.
pub fn parse_partition(p: &str) -> Result<u32, Error> {
    p.parse().map_err(|_| {
        Error::invalid_parameter(
            "partition",
            format!("partition must be a non-negative integer, not '{p}'"),
        )
    })
}

/// Fetch records from a partition.
#[utoipa::path(
    get, path = "/v1/topics/{topic}/partitions/{partition}/records", tag = "records", operation_id = "fetch_records",
    extensions(("x-weir-permissions" = json!([{"resource": "topic", "name": "{topic}", "operation": "read"}]))),
    summary = "Fetch records from a partition",
    description = "Returns records from `offset` (or the first at or after `timestamp`, or `earliest` / \
`latest`). With `wait_ms` the request long-polls: it answers as soon as a record arrives, or empty at the deadline.",
    params(
        ("topic" = String, Path, description = "Topic name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"),
        ("partition" = u32, Path, description = "Partition"),
        FetchParams,
    ),
    responses(
        (status = 200, description = "Records, the next offset to ask for, and the high watermark.", body = FetchResponse,
         headers(("Weir-Wait-Capped" = u64, description = "Present when `wait_ms` was over the server's `max_wait_ms`: the wait used instead, in ms"))),
        (status = 400, description = "`invalid_parameter`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`topic_not_found`, `partition_not_found`.", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "`offset_out_of_range`: below the earliest or past the next offset.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn fetch(
    State(s): State<AppState>,
    caller: Caller,
    Path((topic, partition)): Path<(String, String)>,
    Params(p): Params<FetchParams>,
) -> ApiResult<Response> {
    let partition = parse_partition(&partition)?;
    let (max_records, max_bytes, wait) = read_limits(&p.max_records, &p.max_bytes, &p.wait_ms)?;
    let req = FetchRequest {
        start: start_at(p.offset.as_deref(), p.timestamp.as_deref(), StartAt::Earliest)?,
        max_records,
        max_bytes,
        wait,
    };
    let res = s
        .broker
        .fetch(&caller, &topic, partition, req)
        .await
        .map_err(ApiError)?;
    let rendering = Rendering {
        key: p.key_format,
        value: p.value_format,
    };
    let mut out = Vec::with_capacity(res.bytes + res.count * 96 + 64);
    out.extend_from_slice(b"{\"records\":[");
    write_records(&mut out, std::slice::from_ref(&res), rendering);
    out.extend_from_slice(b"],\"next_offset\":");
    out.extend_from_slice(itoa::Buffer::new().format(res.next_offset).as_bytes());
    out.extend_from_slice(b",\"high_watermark\":");
    out.extend_from_slice(itoa::Buffer::new().format(res.high_watermark).as_bytes());
    out.push(b'}');
    let mut resp = json_response(out);
    say_wait_capped(&mut resp, wait, s.broker.config().max_wait_ms);
    Ok(resp)
}
