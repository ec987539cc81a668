//! `GET /v1/topics/{topic}/events`: Server-Sent Events that stream records as they are written.
//!
//! Each event's `id` is the stream position after that record, as
//! `partition:next_offset` pairs joined by commas (e.g. `0:42,1:17`), so a browser `EventSource`
//! that reconnects with `Last-Event-ID` resumes with no gap and no duplicate.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::IntoParams;

use super::AppState;
use super::error::{ApiResult, Problem};
use super::extract::Params;
use super::records::{parse_partition, start_at};
use super::render::{Rendering, topic_json, write_record};
use crate::broker::{Broker, Caller, FetchRequest, StartAt, Topic};
use crate::error::{Error, ErrorCode};
use crate::storage::Format;

/// Query parameters of the event stream.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only this partition (default: all partitions).
    #[param(value_type = Option<u32>)]
    pub partition: Option<String>,
    /// `earliest`, `latest` (default) or, with `partition`, an offset.
    pub offset: Option<String>,
    /// Start at the first record at or after this time (ms since the epoch).
    #[param(value_type = Option<i64>)]
    pub timestamp: Option<String>,
    /// Render keys as `json` (as produced), `string` or `binary`.
    pub key_format: Option<Format>,
    /// Render values as `json` (as produced), `string` or `binary`.
    pub value_format: Option<Format>,
    /// The bearer token, for browsers' `EventSource`, which cannot send headers (a `weir_token`
    /// cookie works too). Never logged.
    pub access_token: Option<String>,
}

/// How long a stream's last event may wait for room in a slow client's queue.
pub const FINAL_EVENT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// An `error` event whose data is the problem+json object of `e`.
pub fn problem_event(e: &Error) -> Event {
    let data = serde_json::to_string(&super::error::Problem::from_error(e)).unwrap_or_default();
    Event::default().event("error").data(data)
}

/// Encodes stream positions as an event id.
pub fn encode_position(pos: &BTreeMap<u32, u64>) -> String {
    pos.iter()
        .map(|(p, o)| format!("{p}:{o}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Decodes an event id made by [`encode_position`].
pub fn decode_position(id: &str) -> Option<BTreeMap<u32, u64>> {
    if id.trim().is_empty() {
        return Some(BTreeMap::new());
    }
    id.split(',')
        .map(|pair| {
            let (p, o) = pair.trim().split_once(':')?;
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect()
}

/// Stream records as Server-Sent Events.
#[utoipa::path(
    get, path = "/v1/topics/{topic}/events", tag = "records", operation_id = "stream_topic_events",
    extensions(("x-weir-permissions" = json!([{"resource": "topic", "name": "{topic}", "operation": "read"}])),
        ("x-weir-events" = json!({
            "record": {"id": "The position after the record: `partition:next_offset,…` for every partition read.",
                       "data": {"$ref": "#/components/schemas/FetchedRecord"}},
            "error": {"data": {"$ref": "#/components/schemas/Problem"}},
        }))),
    security(("bearer" = []), ("access_token" = []), ("weir_token" = [])),
    summary = "Stream records as Server-Sent Events",
    description = "Streams records as they are written (event `record`, data = one record in the fetch \
format). Each event id is the position after it; reconnecting with `Last-Event-ID` resumes with no gap and \
no duplicate. Comments are sent every 15 s to keep the connection open. When the caller's credential expires \
or is revoked, the stream ends with an `error` event whose data is the problem (`unauthenticated`).",
    params(
        ("topic" = String, Path, description = "Topic name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event"),
        EventParams,
    ),
    responses(
        (status = 200, description = "An event stream: events `record` and `error`, their data as `x-weir-events` says.", content_type = "text/event-stream", body = String,
         example = json!("id: 0:42\nevent: record\ndata: {\"topic\":\"orders\",\"partition\":0,\"offset\":41,\"timestamp\":1732500000000,\"key\":null,\"value\":{\"n\":1},\"headers\":{}}\n\n")),
        (status = 400, description = "`invalid_parameter`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`topic_not_found`, `partition_not_found`.", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "`offset_out_of_range`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn events(
    State(s): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
    Params(p): Params<EventParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let topic = s.broker.topic_for_read(&caller, &topic)?;
    let only = p.partition.as_deref().map(parse_partition).transpose()?;
    if let Some(part) = only {
        topic.partition(part)?;
    }
    let start = start_at(p.offset.as_deref(), p.timestamp.as_deref(), StartAt::Latest)?;
    if only.is_none() && matches!(start, StartAt::Offset(_)) {
        return Err(Error::invalid_parameter("offset", "a numeric offset needs a partition").into());
    }
    let resume =
        match headers.get("last-event-id") {
            Some(v) => Some(v.to_str().ok().and_then(decode_position).ok_or_else(|| {
                Error::invalid_parameter("Last-Event-ID", "Last-Event-ID is not an id this server sent")
            })?),
            None => None,
        };
    let mut positions = BTreeMap::new();
    for part in topic.partitions().iter() {
        if only.is_some_and(|o| o != part.index) {
            continue;
        }
        let pos = match resume.as_ref().and_then(|r| r.get(&part.index)) {
            Some(&o) => o.clamp(part.earliest_offset(), part.next_offset()),
            None if resume.is_some() => part.earliest_offset(),
            None => s.broker.position(&caller, &topic, part.index, start).await?,
        };
        positions.insert(part.index, pos);
    }
    let permit = s.limits.open_stream()?;
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(256);
    let rendering = Rendering {
        key: p.key_format,
        value: p.value_format,
    };
    let ended = caller.credential_ended();
    tokio::spawn(async move {
        let _permit = permit;
        let name = topic.name.clone();
        tokio::select! {
            _ = pump(s.broker.clone(), caller, topic, only, positions, rendering, tx.clone()) => {}
            end = ended => {
                tracing::info!(topic = %name, reason = ?end, "event stream closed: credential ended");
                let _ = tx.send_timeout(Ok(problem_event(&end.error())), FINAL_EVENT_WAIT).await;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

async fn pump(
    broker: Broker,
    caller: Caller,
    topic: Arc<Topic>,
    only: Option<u32>,
    mut positions: BTreeMap<u32, u64>,
    rendering: Rendering,
    tx: mpsc::Sender<Result<Event, Infallible>>,
) {
    let shutdown = broker.shutdown_token();
    let mut changes = topic.subscribe();
    let tj = topic_json(&topic.name);
    let mut buf = Vec::new();
    loop {
        changes.borrow_and_update();
        if topic.is_deleted() {
            let e = Error::new(ErrorCode::TopicNotFound, format!("topic '{}' was deleted", topic.name));
            let _ = tx.send(Ok(problem_event(&e))).await;
            return;
        }
        let parts = topic.partitions();
        if only.is_none() {
            for p in parts.iter() {
                positions.entry(p.index).or_insert(0);
            }
        }
        let mut sent = false;
        let indexes: Vec<u32> = positions.keys().copied().collect();
        for index in indexes {
            let part = &parts[index as usize];
            let pos = positions[&index].max(part.earliest_offset());
            if pos >= part.next_offset() {
                continue;
            }
            let req = FetchRequest {
                start: StartAt::Offset(pos),
                max_records: 1000,
                max_bytes: 1 << 20,
                wait: std::time::Duration::ZERO,
            };
            let res = match broker.fetch(&caller, &topic.name, index, req).await {
                Ok(res) => res,
                Err(e) => {
                    let _ = tx.send(Ok(problem_event(&e))).await;
                    return;
                }
            };
            for (offset, r) in res.records() {
                buf.clear();
                write_record(&mut buf, &tj, index, offset, &r, rendering);
                positions.insert(index, offset + 1);
                let data = String::from_utf8_lossy(&buf).into_owned();
                let ev = Event::default()
                    .event("record")
                    .id(encode_position(&positions))
                    .data(data);
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
                sent = true;
            }
            positions.insert(index, res.next_offset.max(positions[&index]));
        }
        if sent {
            continue;
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = shutdown.cancelled() => return,
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let pos: BTreeMap<u32, u64> = [(0, 5), (2, 17)].into_iter().collect();
        assert_eq!(decode_position(&encode_position(&pos)), Some(pos));
        assert_eq!(decode_position("x"), None);
        assert_eq!(decode_position("0:1,zz"), None);
    }
}
