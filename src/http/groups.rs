//! `/v1/groups`: consumer groups over plain HTTP — join, heartbeat, poll, commit, seek, leave,
//! administration, and a group member that is an SSE stream.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiResult, Problem};
use super::extract::{Params, json_body, parse_json, read_body, require_json};
use super::records::read_limits;
use super::render::{Rendering, json_response, topic_json, write_record, write_records};
use crate::broker::groups::{
    DEFAULT_SESSION_TIMEOUT_MS, GroupDescription, GroupSummary, JoinOptions, MemberView, OffsetChange, OffsetReset,
    PartitionOffset, PollOutcome, Polled, SeekTo, Strategy, Subscription, TopicPartition,
};
use crate::broker::topics::Durability;
use crate::broker::{Broker, Caller, Consumer};
use crate::error::{Error, ErrorCode};

/// Body of a join.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"topics": ["orders"], "session_timeout_ms": 30000, "auto_offset_reset": "earliest", "assignment_strategy": "sticky"}))]
pub struct JoinRequest {
    /// Topics to consume (or give `topic_pattern`).
    pub topics: Option<Vec<String>>,
    /// A regular expression; every topic whose whole name matches is consumed, including
    /// topics created later.
    pub topic_pattern: Option<String>,
    /// Lease: the member is removed after this long without a request (default 30000).
    #[schema(minimum = 100, maximum = 3600000)]
    #[serde(default, deserialize_with = "crate::json_int::opt")]
    pub session_timeout_ms: Option<u64>,
    /// Where to start without a committed offset: `earliest`, `latest` (default) or `none`.
    pub auto_offset_reset: Option<OffsetReset>,
    /// `range` (default), `roundrobin` or `sticky`; the group uses its longest-standing member's.
    pub assignment_strategy: Option<Strategy>,
    /// Commit what the previous poll returned at every poll (default false).
    pub auto_commit: Option<bool>,
}

fn subscription(topics: Option<Vec<String>>, pattern: Option<String>) -> Result<Subscription, Error> {
    match (topics, pattern) {
        (Some(_), Some(_)) => Err(Error::invalid_parameter(
            "topic_pattern",
            "give topics or topic_pattern, not both",
        )),
        (None, Some(p)) => regex::RegexBuilder::new(&format!("^(?:{p})$"))
            .size_limit(1 << 20)
            .build()
            .map(Subscription::Pattern)
            .map_err(|e| Error::invalid_parameter("topic_pattern", format!("invalid regular expression: {e}"))),
        (Some(t), None) if !t.is_empty() => Ok(Subscription::Topics(t.into_iter().collect())),
        _ => Err(Error::invalid_parameter(
            "topics",
            "give at least one topic or a topic_pattern",
        )),
    }
}

/// Join a group.
#[utoipa::path(
    post, path = "/v1/groups/{group}/members", tag = "groups", operation_id = "join_group",
    extensions(("x-weir-permissions" = json!([
        {"resource": "group", "name": "{group}", "operation": "read"},
        {"resource": "topic", "name": "{body.topics}", "operation": "read"},
    ]))),
    summary = "Join a consumer group",
    description = "Creates the group if needed and adds a member; the group rebalances. The member id is used \
in every later call; every call renews the member's lease.",
    params(("group" = String, Path, description = "Group name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$")),
    request_body(content = JoinRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The member, its generation and assignment.", body = MemberView,
         example = json!({"member_id": "billing-5f0c…", "generation": 4, "assignment": [{"topic": "orders", "partition": 0}], "pending": []})),
        (status = 400, description = "`invalid_group_name`, `invalid_parameter`, `invalid_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`topic_not_found`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn join(
    State(s): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<MemberView>)> {
    let req: JoinRequest = json_body(&headers, body, s.broker.config().max_request_bytes).await?;
    let options = JoinOptions {
        subscription: subscription(req.topics, req.topic_pattern)?,
        session_timeout: Duration::from_millis(req.session_timeout_ms.unwrap_or(DEFAULT_SESSION_TIMEOUT_MS)),
        auto_offset_reset: req.auto_offset_reset.unwrap_or_default(),
        strategy: req.assignment_strategy.unwrap_or_default(),
        auto_commit: req.auto_commit.unwrap_or(false),
        streaming: false,
        resume: HashMap::new(),
    };
    Ok((
        StatusCode::CREATED,
        Json(s.broker.join_group(&caller, &group, options).await?),
    ))
}

/// Leave a group.
#[utoipa::path(
    delete, path = "/v1/groups/{group}/members/{member}", tag = "groups", operation_id = "leave_group",
    extensions(("x-weir-permissions" = json!([{"resource": "group", "name": "{group}", "operation": "read"}]))),
    summary = "Leave a consumer group",
    params(("group" = String, Path, description = "Group name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"), ("member" = String, Path, description = "Member id")),
    responses(
        (status = 204, description = "The member left; its partitions move to the others."),
        (status = 404, description = "`group_not_found`, `unknown_member`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn leave(
    State(s): State<AppState>,
    caller: Caller,
    Path((group, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.broker.leave_group(&caller, &group, &member)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Renew a member's lease.
#[utoipa::path(
    post, path = "/v1/groups/{group}/members/{member}/heartbeat", tag = "groups", operation_id = "heartbeat",
    extensions(("x-weir-permissions" = json!([{"resource": "group", "name": "{group}", "operation": "read"}]))),
    summary = "Renew a member's lease",
    params(("group" = String, Path, description = "Group name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"), ("member" = String, Path, description = "Member id")),
    responses(
        (status = 200, description = "The member's generation and assignment.", body = MemberView,
         example = json!({"member_id": "billing-5f0c…", "generation": 4, "assignment": [{"topic": "orders", "partition": 0}], "pending": []})),
        (status = 404, description = "`group_not_found`, `unknown_member`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`rebalance_in_progress`: the problem carries `generation`, `assignment`, `pending`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn heartbeat(
    State(s): State<AppState>,
    caller: Caller,
    Path((group, member)): Path<(String, String)>,
) -> ApiResult<Json<MemberView>> {
    let hb = s.broker.heartbeat(&caller, &group, &member)?;
    if hb.rebalanced {
        return Err(hb.view.rebalance_error().into());
    }
    Ok(Json(hb.view))
}

/// Query parameters of a group poll.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PollParams {
    /// Most records (default 500).
    #[param(value_type = Option<u32>)]
    pub max_records: Option<String>,
    /// Most payload bytes (default 1 MiB).
    #[param(value_type = Option<u64>)]
    pub max_bytes: Option<String>,
    /// Long-poll up to this many ms for a first record (default 0).
    /// Over the server's `max_wait_ms` (default 60000) it waits that long and says so in the
    /// `Weir-Wait-Capped` header.
    #[param(value_type = Option<u64>)]
    pub wait_ms: Option<String>,
}

/// A poll's answer (records in the fetch format).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"generation": 4, "assignment": [{"topic": "orders", "partition": 0}], "pending": [],
    "records": [{"topic": "orders", "partition": 0, "offset": 41, "timestamp": 1732500000000i64, "key": "customer-17", "value": {"total": 25.5}, "headers": {}}]}))]
pub struct PollResponse {
    /// Group generation.
    pub generation: u64,
    /// Assigned partitions.
    pub assignment: Vec<TopicPartition>,
    /// Assigned partitions not yet released by their previous owner.
    pub pending: Vec<TopicPartition>,
    /// Records, in offset order per partition.
    pub records: Vec<super::records::FetchedRecord>,
}

/// Poll records as a group member.
#[utoipa::path(
    get, path = "/v1/groups/{group}/members/{member}/records", tag = "groups", operation_id = "poll",
    extensions(("x-weir-permissions" = json!([{"resource": "group", "name": "{group}", "operation": "read"}]))),
    summary = "Poll records as a group member",
    description = "Returns records from the member's partitions, from the committed offset (or per \
`auto_offset_reset`), long-polling up to `wait_ms`. After a rebalance the member gets `409 rebalance_in_progress` \
once, with the new assignment, never an empty success.",
    params(("group" = String, Path, description = "Group name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"), ("member" = String, Path, description = "Member id"), PollParams),
    responses(
        (status = 200, description = "Records with the member's generation and assignment.", body = PollResponse,
         headers(("Weir-Wait-Capped" = u64, description = "Present when `wait_ms` was over the server's `max_wait_ms`: the wait used instead, in ms"))),
        (status = 400, description = "`invalid_parameter`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`group_not_found`, `unknown_member`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`rebalance_in_progress` (with `Retry-After`, `generation`, `assignment`), `no_committed_offset`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn poll(
    State(s): State<AppState>,
    caller: Caller,
    Path((group, member)): Path<(String, String)>,
    Params(p): Params<PollParams>,
) -> ApiResult<Response> {
    let (max_records, max_bytes, wait) = read_limits(&p.max_records, &p.max_bytes, &p.wait_ms)?;
    let poll = match s
        .broker
        .group_poll(&caller, &group, &member, max_records, max_bytes, wait)
        .await?
    {
        PollOutcome::Records(poll) => poll,
        PollOutcome::Rebalanced(view) => return Err(view.rebalance_error().into()),
    };
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"generation\":");
    out.extend_from_slice(itoa::Buffer::new().format(poll.view.generation).as_bytes());
    out.extend_from_slice(b",\"assignment\":");
    serde_json::to_writer(&mut out, &poll.view.assignment).map_err(Error::internal)?;
    out.extend_from_slice(b",\"pending\":");
    serde_json::to_writer(&mut out, &poll.view.pending).map_err(Error::internal)?;
    out.extend_from_slice(b",\"records\":[");
    write_records(&mut out, &poll.fetched, Rendering::default());
    out.extend_from_slice(b"]}");
    let mut resp = json_response(out);
    super::records::say_wait_capped(&mut resp, wait, s.broker.config().max_wait_ms);
    Ok(resp)
}

/// Body of a commit (an empty body commits everything returned so far).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"generation": 4, "offsets": [{"topic": "orders", "partition": 0, "offset": 42}]}))]
pub struct CommitRequest {
    /// The generation the member is in; a stale one is refused (`illegal_generation`).
    #[serde(default, deserialize_with = "crate::json_int::opt")]
    pub generation: Option<u64>,
    /// Offsets to commit: the next offset to read, as in Kafka.
    pub offsets: Option<Vec<PartitionOffset>>,
    /// `wal` (default: survives a crash of the server) or `fsync` (also survives power loss).
    pub durability: Option<Durability>,
}

/// What was committed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"committed": [{"topic": "orders", "partition": 0, "offset": 42}]}))]
pub struct CommitResponse {
    /// Committed offsets.
    pub committed: Vec<PartitionOffset>,
}

/// Commit offsets.
#[utoipa::path(
    post, path = "/v1/groups/{group}/members/{member}/offsets", tag = "groups", operation_id = "commit_offsets",
    extensions(("x-weir-permissions" = json!([{"resource": "group", "name": "{group}", "operation": "read"}]))),
    summary = "Commit offsets",
    description = "Commits the given offsets (the next offset to read), or with an empty body the positions of \
everything the member was returned so far. The member must be the caller's own (`403 forbidden` for \
another principal). Ownership and generation are checked when the commit is written, in the order of all \
writes. A commit survives a crash of the server (`kill -9`); with `\"durability\": \"fsync\"` also power loss.",
    params(("group" = String, Path, description = "Group name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"), ("member" = String, Path, description = "Member id")),
    request_body(content = CommitRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The committed offsets.", body = CommitResponse),
        (status = 400, description = "`invalid_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`group_not_found`, `unknown_member`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`illegal_generation`, `partition_not_owned`, `rebalance_in_progress`.", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "`offset_out_of_range`: past the partition's end.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn commit(
    State(s): State<AppState>,
    caller: Caller,
    Path((group, member)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<CommitResponse>> {
    let bytes = read_body(body, s.broker.config().max_request_bytes).await?;
    let (generation, offsets, durability) = if bytes.iter().all(u8::is_ascii_whitespace) {
        (None, None, None)
    } else {
        require_json(&headers)?;
        let req: CommitRequest = parse_json(&bytes)?;
        (req.generation, req.offsets, req.durability)
    };
    let committed = s
        .broker
        .group_commit(&caller, &group, &member, generation, offsets, durability)
        .await?;
    Ok(Json(CommitResponse { committed }))
}

/// Where to seek or reset to.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = PositionTarget)]
pub enum Target {
    /// The oldest retained record.
    Earliest,
    /// The end.
    Latest,
    /// The first record at or after `timestamp`.
    Timestamp,
    /// `offset` (seek only).
    Offset,
    /// The listed `offsets` (reset only).
    Offsets,
}

/// Body of a seek.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "timestamp", "timestamp": 1732500000000i64, "partitions": [{"topic": "orders", "partition": 0}]}))]
pub struct SeekRequest {
    /// `earliest`, `latest`, `timestamp` or `offset`.
    pub to: Target,
    /// With `to: timestamp`.
    #[serde(default, deserialize_with = "crate::json_int::opt")]
    pub timestamp: Option<i64>,
    /// With `to: offset`.
    #[serde(default, deserialize_with = "crate::json_int::opt")]
    pub offset: Option<u64>,
    /// Partitions to move (default: all the member owns).
    pub partitions: Option<Vec<TopicPartition>>,
}

/// New positions.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"positions": [{"topic": "orders", "partition": 0, "offset": 17}]}))]
pub struct SeekResponse {
    /// Where the next poll starts, per partition.
    pub positions: Vec<PartitionOffset>,
}

fn seek_target(
    to: Target,
    timestamp: Option<i64>,
    offset: Option<u64>,
    allow_offset: bool,
) -> Result<Option<SeekTo>, Error> {
    Ok(match to {
        Target::Earliest => Some(SeekTo::Earliest),
        Target::Latest => Some(SeekTo::Latest),
        Target::Timestamp => {
            Some(SeekTo::Timestamp(timestamp.filter(|t| *t >= 0).ok_or_else(|| {
                Error::invalid_parameter("timestamp", "give a timestamp >= 0")
            })?))
        }
        Target::Offset if allow_offset => Some(SeekTo::Offset(
            offset.ok_or_else(|| Error::invalid_parameter("offset", "give an offset"))?,
        )),
        Target::Offsets if !allow_offset => None,
        _ => return Err(Error::invalid_parameter("to", "this target is not allowed here")),
    })
}

/// Move a member's positions.
#[utoipa::path(
    post, path = "/v1/groups/{group}/members/{member}/positions:seek", tag = "groups", operation_id = "seek",
    extensions(("x-weir-permissions" = json!([{"resource": "group", "name": "{group}", "operation": "read"}]))),
    summary = "Seek a member's partitions",
    params(("group" = String, Path, description = "Group name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"), ("member" = String, Path, description = "Member id")),
    request_body(content = SeekRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new positions.", body = SeekResponse),
        (status = 400, description = "`invalid_parameter`, `invalid_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`group_not_found`, `unknown_member`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`partition_not_owned`, `rebalance_in_progress`.", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "`offset_out_of_range`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn seek(
    State(s): State<AppState>,
    caller: Caller,
    Path((group, member)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<SeekResponse>> {
    let req: SeekRequest = json_body(&headers, body, s.broker.config().max_request_bytes).await?;
    let to = seek_target(req.to, req.timestamp, req.offset, true)?.expect("seek targets are concrete");
    let positions = s.broker.seek(&caller, &group, &member, to, req.partitions).await?;
    Ok(Json(SeekResponse { positions }))
}

/// The group list.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"groups": [{"group": "billing", "state": "stable", "generation": 4, "members": 2}]}))]
pub struct GroupList {
    /// Groups by name.
    pub groups: Vec<GroupSummary>,
}

/// List consumer groups.
#[utoipa::path(
    get, path = "/v1/groups", tag = "groups", operation_id = "list_groups",
    extensions(("x-weir-permissions" = json!([]))),
    summary = "List consumer groups",
    responses(
        (status = 200, description = "Groups with state, generation and member count.", body = GroupList),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(s): State<AppState>, caller: Caller) -> Json<GroupList> {
    Json(GroupList {
        groups: s.broker.list_groups(&caller),
    })
}

/// Describe a consumer group.
#[utoipa::path(
    get, path = "/v1/groups/{group}", tag = "groups", operation_id = "describe_group",
    extensions(("x-weir-permissions" = json!([
        {"resource": "group", "name": "{group}", "operation": "describe"},
    ]))),
    summary = "Describe a consumer group",
    params(("group" = String, Path, description = "Group name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$")),
    responses(
        (status = 200, description = "State, members with assignments, committed offsets and lag.", body = GroupDescription,
         example = json!({"group": "billing", "state": "stable", "generation": 4,
            "members": [{"member_id": "billing-5f0c…", "assignment": [{"topic": "orders", "partition": 0}], "pending": [], "last_seen": 1732500000000i64, "session_timeout_ms": 30000, "assignment_strategy": "range"}],
            "partitions": [{"topic": "orders", "partition": 0, "committed_offset": 40, "end_offset": 42, "lag": 2}]})),
        (status = 404, description = "`group_not_found`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn describe(
    State(s): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
) -> ApiResult<Json<GroupDescription>> {
    Ok(Json(s.broker.describe_group(&caller, &group)?))
}

/// Delete an empty consumer group.
#[utoipa::path(
    delete, path = "/v1/groups/{group}", tag = "groups", operation_id = "delete_group",
    extensions(("x-weir-permissions" = json!([{"resource": "group", "name": "{group}", "operation": "delete"}]))),
    summary = "Delete a consumer group",
    params(("group" = String, Path, description = "Group name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$")),
    responses(
        (status = 204, description = "The group and its committed offsets are gone."),
        (status = 404, description = "`group_not_found`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`group_not_empty`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(State(s): State<AppState>, caller: Caller, Path(group): Path<String>) -> ApiResult<StatusCode> {
    s.broker.delete_group(&caller, &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `offsets:reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "timestamp", "timestamp": 1732500000000i64, "topics": ["orders"], "dry_run": true}))]
pub struct ResetRequest {
    /// `earliest`, `latest`, `timestamp` or `offsets`.
    pub to: Target,
    /// With `to: timestamp`.
    #[serde(default, deserialize_with = "crate::json_int::opt")]
    pub timestamp: Option<i64>,
    /// With `to: offsets`.
    pub offsets: Option<Vec<PartitionOffset>>,
    /// Only these topics (default: the topics the group has committed offsets for).
    pub topics: Option<Vec<String>>,
    /// Report what would change, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Result of `offsets:reset`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"dry_run": true, "offsets": [{"topic": "orders", "partition": 0, "offset": 0, "previous_offset": 40}]}))]
pub struct ResetResponse {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// New (or would-be) offsets.
    pub offsets: Vec<OffsetChange>,
}

/// Reset a group's committed offsets.
#[utoipa::path(
    post, path = "/v1/groups/{group}/offsets:reset", tag = "groups", operation_id = "reset_group_offsets",
    extensions(("x-weir-permissions" = json!([
        {"resource": "group", "name": "{group}", "operation": "alter"},
        {"resource": "topic", "name": "{body.topics}", "operation": "describe"},
        {"resource": "topic", "name": "{body.offsets.topic}", "operation": "describe"},
    ]))),
    summary = "Reset a group's committed offsets",
    description = "Only while the group has no members. With `dry_run` nothing changes.",
    params(("group" = String, Path, description = "Group name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$")),
    request_body(content = ResetRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new offsets with the previous ones.", body = ResetResponse),
        (status = 400, description = "`invalid_parameter`, `invalid_json`, `invalid_group_name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`group_not_found`, `topic_not_found`, `partition_not_found`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`group_not_empty`.", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "`offset_out_of_range`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reset(
    State(s): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ResetResponse>> {
    let req: ResetRequest = json_body(&headers, body, s.broker.config().max_request_bytes).await?;
    let to = seek_target(req.to, req.timestamp, None, false)?;
    let explicit = match (req.to, req.offsets) {
        (Target::Offsets, Some(o)) => Some(o),
        (Target::Offsets, None) => {
            return Err(Error::invalid_parameter("offsets", "give offsets with to: offsets").into());
        }
        (_, Some(_)) => return Err(Error::invalid_parameter("offsets", "offsets go with to: offsets").into()),
        (_, None) => None,
    };
    let offsets = s
        .broker
        .reset_offsets(&caller, &group, to, explicit, req.topics, req.dry_run)
        .await?;
    Ok(Json(ResetResponse {
        dry_run: req.dry_run,
        offsets,
    }))
}

/// Query parameters of the group event stream.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GroupEventParams {
    /// Comma-separated topics (or give `topic_pattern`).
    pub topics: Option<String>,
    /// Regular expression over whole topic names.
    pub topic_pattern: Option<String>,
    /// `earliest`, `latest` (default) or `none`.
    pub auto_offset_reset: Option<OffsetReset>,
    /// `range` (default), `roundrobin` or `sticky`.
    pub assignment_strategy: Option<Strategy>,
    /// Commit what was sent before each next read (default false: commit with the member id).
    pub auto_commit: Option<bool>,
    /// The bearer token, for browsers' `EventSource` (a `weir_token` cookie works too). Never logged.
    pub access_token: Option<String>,
}

/// Encodes stream positions (`topic:partition:next_offset`, comma-separated) as an event id.
pub fn encode_positions(pos: &BTreeMap<TopicPartition, u64>) -> String {
    pos.iter()
        .map(|(tp, o)| format!("{}:{}:{o}", tp.topic, tp.partition))
        .collect::<Vec<_>>()
        .join(",")
}

/// Decodes an id made by [`encode_positions`].
pub fn decode_positions(id: &str) -> Option<BTreeMap<TopicPartition, u64>> {
    if id.trim().is_empty() {
        return Some(BTreeMap::new());
    }
    id.split(',')
        .map(|item| {
            let mut it = item.trim().rsplitn(3, ':');
            let offset = it.next()?.parse().ok()?;
            let partition = it.next()?.parse().ok()?;
            let topic = it.next()?.to_owned();
            Some((TopicPartition { topic, partition }, offset))
        })
        .collect()
}

/// Consume as a group member over Server-Sent Events.
#[utoipa::path(
    get, path = "/v1/groups/{group}/events", tag = "groups", operation_id = "stream_group_events",
    extensions(("x-weir-permissions" = json!([
        {"resource": "group", "name": "{group}", "operation": "read"},
        {"resource": "topic", "name": "{query.topics}", "operation": "read"},
    ])), ("x-weir-events" = json!({
        "member": {"data": {"$ref": "#/components/schemas/MemberView"}},
        "rebalance": {"data": {"$ref": "#/components/schemas/MemberView"}},
        "record": {"id": "The stream position after the record: `topic:partition:next_offset,…`.",
                   "data": {"$ref": "#/components/schemas/FetchedRecord"}},
        "error": {"data": {"$ref": "#/components/schemas/Problem"}},
    }))),
    security(("bearer" = []), ("access_token" = []), ("weir_token" = [])),
    summary = "Consume as a group member over Server-Sent Events",
    description = "Joins the group as a member whose lease is the open connection. Events: `member` (first, \
with `member_id`), `rebalance` (on every assignment change), `record` (data in the fetch format; id = stream \
position). Reconnecting with `Last-Event-ID` resumes with no gap. Commit with the member id, or `auto_commit=true`. \
When the caller's credential expires or is revoked, the stream ends with an `error` event (problem `unauthenticated`).",
    params(("group" = String, Path, description = "Group name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"), ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event"), GroupEventParams),
    responses(
        (status = 200, description = "An event stream: events `member`, `rebalance`, `record` and `error`, their data as `x-weir-events` says.", content_type = "text/event-stream", body = String,
         example = json!("event: member\ndata: {\"member_id\":\"billing-5f0c\",\"generation\":1,\"assignment\":[{\"topic\":\"orders\",\"partition\":0}],\"pending\":[]}\n\nid: orders:0:42\nevent: record\ndata: {\"topic\":\"orders\",\"partition\":0,\"offset\":41,\"timestamp\":1732500000000,\"key\":null,\"value\":1,\"headers\":{}}\n\n")),
        (status = 400, description = "`invalid_parameter`, `invalid_group_name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`topic_not_found`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn events(
    State(s): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
    Params(p): Params<GroupEventParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (options, resume) = stream_member_options(p, &headers)?;
    let permit = s.limits.open_stream()?;
    let consumer = Consumer::join(&s.broker, caller.clone(), &group, options).await?;
    let (tx, rx) = mpsc::channel::<Out>(256);
    let ended = caller.credential_ended();
    tokio::spawn(async move {
        let _permit = permit;
        tokio::select! {
            _ = pump(s.broker.shutdown_token(), consumer, resume, tx.clone()) => {}
            end = ended => {
                tracing::info!(group = %group, reason = ?end, "group event stream closed: credential ended");
                let _ = tx.send_timeout(problem_out(&end.error()), super::events::FINAL_EVENT_WAIT).await;
            }
        }
    });
    let events = tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), |o| {
        Ok::<_, Infallible>(o.into_event())
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// Join options of a member whose lease is a connection (SSE or WebSocket), and where it resumes.
fn stream_member_options(
    p: GroupEventParams,
    headers: &HeaderMap,
) -> Result<(JoinOptions, BTreeMap<TopicPartition, u64>), Error> {
    let topics = p.topics.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    });
    let resume =
        match headers.get("last-event-id") {
            Some(v) => v.to_str().ok().and_then(decode_positions).ok_or_else(|| {
                Error::invalid_parameter("Last-Event-ID", "Last-Event-ID is not an id this server sent")
            })?,
            None => BTreeMap::new(),
        };
    let options = JoinOptions {
        subscription: subscription(topics, p.topic_pattern)?,
        session_timeout: Duration::from_millis(DEFAULT_SESSION_TIMEOUT_MS),
        auto_offset_reset: p.auto_offset_reset.unwrap_or_default(),
        strategy: p.assignment_strategy.unwrap_or_default(),
        auto_commit: p.auto_commit.unwrap_or(false),
        streaming: true,
        resume: resume.iter().map(|(tp, o)| (tp.clone(), *o)).collect(),
    };
    Ok((options, resume))
}

/// A message of a streaming member: `member`, `rebalance`, `record`, `committed` or `error`,
/// with JSON data; records carry their stream position as id.
#[derive(Debug)]
pub struct Out {
    kind: &'static str,
    id: Option<String>,
    data: String,
}

impl Out {
    fn into_event(self) -> Event {
        let ev = Event::default().event(self.kind).data(self.data);
        match self.id {
            Some(id) => ev.id(id),
            None => ev,
        }
    }

    /// `{"type": "record", "id", "record": …}`, `{"type": "error", "error": problem}`, or
    /// `{"type": kind, …data}`.
    fn into_ws_json(self) -> String {
        let data: serde_json::Value = serde_json::from_str(&self.data).unwrap_or_default();
        let mut msg = serde_json::Map::new();
        msg.insert("type".into(), self.kind.into());
        match (self.kind, data) {
            ("record", data) => {
                msg.insert("id".into(), self.id.unwrap_or_default().into());
                msg.insert("record".into(), data);
            }
            ("error", data) => {
                msg.insert("error".into(), data);
            }
            (_, serde_json::Value::Object(m)) => msg.extend(m),
            (_, other) => {
                msg.insert("data".into(), other);
            }
        }
        serde_json::Value::Object(msg).to_string()
    }
}

/// A message a WebSocket member sends.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
#[schema(as = WsClientMessage, example = json!({"type": "commit", "offsets": [{"topic": "orders", "partition": 0, "offset": 42}]}))]
pub enum WsCommand {
    /// Commit the given offsets, or everything sent so far.
    Commit {
        /// The generation the offsets were read in (default: the member's current one).
        #[schema(minimum = 0)]
        #[serde(default, deserialize_with = "crate::json_int::opt")]
        generation: Option<u64>,
        /// The offsets to commit (default: everything sent so far).
        offsets: Option<Vec<PartitionOffset>>,
    },
}

/// A message the server sends a WebSocket member (for the documentation; [`Out`] writes them).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
#[schema(example = json!({"type": "record", "id": "orders:0:42", "record": {"topic": "orders", "partition": 0, "offset": 41,
    "timestamp": 1732500000000i64, "key": null, "value": 1, "headers": {}}}))]
pub enum WsServerMessage {
    /// First: the member joined.
    Member {
        /// Member id (for commits over HTTP).
        member_id: String,
        /// Group generation.
        generation: u64,
        /// Partitions assigned to the member in this generation.
        assignment: Vec<TopicPartition>,
        /// Assigned partitions still being released by their previous owner.
        pending: Vec<TopicPartition>,
    },
    /// The assignment changed.
    Rebalance {
        /// Member id.
        member_id: String,
        /// The new generation.
        generation: u64,
        /// Partitions assigned to the member in this generation.
        assignment: Vec<TopicPartition>,
        /// Assigned partitions still being released by their previous owner.
        pending: Vec<TopicPartition>,
    },
    /// A record, with the stream position after it.
    Record {
        /// `topic:partition:next_offset,…` (resume with `Last-Event-ID`).
        id: String,
        /// The record, in the fetch format.
        record: super::records::FetchedRecord,
    },
    /// The answer to a commit.
    Committed {
        /// What was committed.
        committed: Vec<PartitionOffset>,
    },
    /// A problem; the socket closes after it when it ends the member.
    Error {
        /// The problem.
        error: Problem,
    },
}

/// Consume as a group member over a WebSocket.
#[utoipa::path(
    get, path = "/v1/groups/{group}/ws", tag = "groups", operation_id = "group_websocket",
    extensions(("x-weir-permissions" = json!([
        {"resource": "group", "name": "{group}", "operation": "read"},
        {"resource": "topic", "name": "{query.topics}", "operation": "read"},
    ])), ("x-weir-websocket" = json!({
        "server": {"$ref": "#/components/schemas/WsServerMessage"},
        "client": {"$ref": "#/components/schemas/WsClientMessage"},
    }))),
    security(("bearer" = []), ("access_token" = []), ("weir_token" = [])),
    summary = "Consume as a group member over a WebSocket",
    description = "The event stream's member semantics over one socket, with commits in-band. The server sends \
JSON text messages `{\"type\":\"member\"|\"rebalance\", …view}`, `{\"type\":\"record\",\"id\":position,\"record\":…}`, \
`{\"type\":\"committed\",\"committed\":[…]}` and `{\"type\":\"error\",\"error\":problem}`. The client sends \
`{\"type\":\"commit\"}` (everything sent so far) or `{\"type\":\"commit\",\"offsets\":[…]}`. Closing the socket leaves \
the group. Query parameters as for the event stream; `Last-Event-ID` resumes. When the caller's credential \
expires or is revoked, the server closes the socket with code 1008 (policy violation) and the reason.",
    params(("group" = String, Path, description = "Group name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"), GroupEventParams),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol. Text messages are JSON: the server's are \
`WsServerMessage`, the client's `WsClientMessage` (see `x-weir-websocket`).", body = String,
         example = json!("{\"type\":\"record\",\"id\":\"orders:0:42\",\"record\":{\"topic\":\"orders\",\"partition\":0,\"offset\":41,\"timestamp\":1732500000000,\"key\":null,\"value\":1,\"headers\":{}}}")),
        (status = 400, description = "`invalid_parameter` (also: not a WebSocket request), `invalid_group_name`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`topic_not_found`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn websocket(
    State(s): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
    Params(p): Params<GroupEventParams>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let (options, resume) = stream_member_options(p, &headers)?;
    let permit = s.limits.open_stream()?;
    // Joining authorizes; a request that is no upgrade leaves again when the consumer drops.
    let consumer = Consumer::join(&s.broker, caller.clone(), &group, options).await?;
    let upgrade = upgrade.map_err(|e| Error::invalid_parameter("Upgrade", format!("not a WebSocket request: {e}")))?;
    Ok(upgrade.on_upgrade(move |socket| async move {
        let _permit = permit;
        ws_member(s.broker.clone(), caller, consumer, resume, socket).await;
    }))
}

/// Serves a WebSocket member until the socket, the member or the caller's credential ends. When
/// the credential expires or is revoked, the socket is closed with code 1008 (policy violation)
/// and the reason.
async fn ws_member(
    broker: Broker,
    caller: Caller,
    consumer: Consumer,
    resume: BTreeMap<TopicPartition, u64>,
    socket: WebSocket,
) {
    use futures::{SinkExt as _, StreamExt as _};
    let member = consumer.member_id().to_owned();
    let group = consumer.group().to_owned();
    let ended = caller.credential_ended();
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Out>(256);
    let sender = async {
        while let Some(out) = rx.recv().await {
            if sink.send(Message::text(out.into_ws_json())).await.is_err() {
                return;
            }
        }
    };
    let receiver = async {
        while let Some(Ok(msg)) = incoming.next().await {
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(_) => return,
                _ => continue,
            };
            let out = match serde_json::from_str::<WsCommand>(&text) {
                Ok(WsCommand::Commit { generation, offsets }) => {
                    match broker
                        .group_commit(&caller, &group, &member, generation, offsets, None)
                        .await
                    {
                        Ok(c) => Out {
                            kind: "committed",
                            id: None,
                            data: serde_json::json!({"committed": c}).to_string(),
                        },
                        Err(e) => problem_out(&e),
                    }
                }
                Err(e) => problem_out(&Error::new(ErrorCode::InvalidJson, format!("invalid message: {e}"))),
            };
            if tx.send(out).await.is_err() {
                return;
            }
        }
    };
    // What ended the member and whether queued messages (the error that ended it) still go out.
    let (error, flush) = tokio::select! {
        e = pump(broker.shutdown_token(), consumer, resume, tx.clone()) => (e, true),
        _ = sender => return,
        _ = receiver => (None, false),
        end = ended => {
            tracing::info!(group = %group, member = %member, reason = ?end, "group websocket closed: credential ended");
            (Some(end.error()), false)
        }
    };
    let goodbye = async {
        while flush && let Ok(out) = rx.try_recv() {
            if sink.send(Message::text(out.into_ws_json())).await.is_err() {
                return;
            }
        }
        if let Some(e) = error.filter(|e| e.code == ErrorCode::Unauthenticated) {
            let frame = CloseFrame {
                code: close_code::POLICY,
                reason: e.detail.into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
    };
    let _ = tokio::time::timeout(super::events::FINAL_EVENT_WAIT, goodbye).await;
}

fn problem_out(e: &Error) -> Out {
    Out {
        kind: "error",
        id: None,
        data: serde_json::to_string(&super::error::Problem::from_error(e)).unwrap_or_default(),
    }
}

/// Streams a member's records and rebalances to `tx` until the receiver goes away, the server
/// shuts down or an error ends it (sent as an `error` message, and returned). The member leaves
/// the group when the consumer is dropped.
async fn pump(
    shutdown: tokio_util::sync::CancellationToken,
    mut consumer: Consumer,
    mut positions: BTreeMap<TopicPartition, u64>,
    tx: mpsc::Sender<Out>,
) -> Option<Error> {
    let view_event = |kind: &'static str, v: &MemberView| Out {
        kind,
        id: None,
        data: serde_json::to_string(v).unwrap_or_default(),
    };
    if tx.send(view_event("member", consumer.view())).await.is_err() {
        return None;
    }
    let mut shown = (consumer.view().generation, consumer.view().assignment.clone());
    let mut buf = Vec::new();
    loop {
        let polled = tokio::select! {
            r = consumer.poll(1000, 1 << 20, Duration::from_secs(10)) => r,
            _ = tx.closed() => return None,
            _ = shutdown.cancelled() => return None,
        };
        let fetched = match polled {
            Ok(Polled::Records(fetched)) => fetched,
            Ok(Polled::Rebalanced) => Vec::new(),
            Err(e) => {
                let _ = tx.send(problem_out(&e)).await;
                return Some(e);
            }
        };
        let view = consumer.view();
        if (view.generation, &view.assignment) != (shown.0, &shown.1) {
            shown = (view.generation, view.assignment.clone());
            if tx.send(view_event("rebalance", view)).await.is_err() {
                return None;
            }
        }
        for f in &fetched {
            let tj = topic_json(&f.topic);
            for (offset, r) in f.records() {
                buf.clear();
                write_record(&mut buf, &tj, f.partition, offset, &r, Rendering::default());
                positions.insert(
                    TopicPartition {
                        topic: f.topic.clone(),
                        partition: f.partition,
                    },
                    offset + 1,
                );
                let out = Out {
                    kind: "record",
                    id: Some(encode_positions(&positions)),
                    data: String::from_utf8_lossy(&buf).into_owned(),
                };
                if tx.send(out).await.is_err() {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let pos: BTreeMap<TopicPartition, u64> = [
            (
                TopicPartition {
                    topic: "orders.eu".into(),
                    partition: 0,
                },
                5,
            ),
            (
                TopicPartition {
                    topic: "a_b-c".into(),
                    partition: 12,
                },
                17,
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(decode_positions(&encode_positions(&pos)), Some(pos));
        assert_eq!(decode_positions("orders:x:1"), None);
    }
}
