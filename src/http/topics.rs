//! `/v1/topics`: create, list, describe, alter and delete topics.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiResult, Problem};
use super::extract::json_body;
use crate::broker::{Caller, TopicConfig, TopicInfo};

/// Body of `POST /v1/topics`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "orders", "partitions": 3, "config": {"retention.ms": 604800000}}))]
pub struct CreateTopic {
    /// Topic name: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
    #[schema(
        pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"
    )]
    pub name: String,
    /// Number of partitions (default 1).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "crate::json_int::opt")]
    pub partitions: Option<u32>,
    /// Settings under Kafka's names: `retention.ms`, `retention.bytes`, `max.message.bytes`,
    /// `cleanup.policy` (`delete`), `durability` (`wal` | `fsync`).
    #[serde(default)]
    #[schema(value_type = TopicSettings)]
    pub config: BTreeMap<String, Value>,
}

/// Topic settings as a request gives them, under Kafka's config names (for the document: the
/// broker reads them from a map, and also takes the numbers as numeric strings, as Kafka tools
/// send them). `null` restores a setting's default.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"retention.ms": 604800000, "durability": "fsync"}))]
pub struct TopicSettings {
    /// Age after which records are deleted, in ms; -1 keeps them forever.
    #[serde(rename = "retention.ms", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1)]
    pub retention_ms: Option<i64>,
    /// Bytes kept per partition; -1 for no limit.
    #[serde(rename = "retention.bytes", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1)]
    pub retention_bytes: Option<i64>,
    /// Largest record (key, value and headers), in bytes.
    #[serde(rename = "max.message.bytes", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_message_bytes: Option<i64>,
    /// `delete`, the only policy supported so far.
    #[serde(rename = "cleanup.policy", skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^delete$")]
    pub cleanup_policy: Option<String>,
    /// `wal` (survives a crash) or `fsync` (survives power loss).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<crate::broker::topics::Durability>,
}

/// Body of `PATCH /v1/topics/{topic}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"partitions": 6, "config": {"retention.ms": 86400000, "durability": "fsync"}}))]
pub struct AlterTopic {
    /// New partition count; it can only grow.
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "crate::json_int::opt")]
    pub partitions: Option<u32>,
    /// Settings to change; `null` restores a setting's default.
    #[serde(default)]
    #[schema(value_type = TopicSettings)]
    pub config: BTreeMap<String, Value>,
}

/// One partition of a topic.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: u32,
    /// Offset of the oldest retained record.
    pub earliest_offset: u64,
    /// Offset the next record will get (the high watermark).
    pub next_offset: u64,
    /// Number of retained records.
    pub records: u64,
    /// Bytes of retained records as stored.
    pub bytes: u64,
}

/// A topic.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "name": "orders",
    "partition_count": 1,
    "created_at": 1732500000000i64,
    "config": {"retention.ms": 604800000, "retention.bytes": -1, "max.message.bytes": 1048588,
               "cleanup.policy": "delete", "durability": "wal"},
    "partitions": [{"partition": 0, "earliest_offset": 0, "next_offset": 42, "records": 42, "bytes": 5120}]
}))]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Number of partitions.
    pub partition_count: u32,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Effective settings.
    pub config: TopicConfig,
    /// Per-partition offsets and sizes.
    pub partitions: Vec<PartitionDescription>,
}

impl From<TopicInfo> for TopicDescription {
    fn from(t: TopicInfo) -> Self {
        Self {
            name: t.name,
            partition_count: t.partitions.len() as u32,
            created_at: t.created_at,
            config: t.config,
            partitions: t
                .partitions
                .into_iter()
                .map(|(partition, s)| PartitionDescription {
                    partition,
                    earliest_offset: s.earliest_offset,
                    next_offset: s.next_offset,
                    records: s.next_offset - s.earliest_offset,
                    bytes: s.bytes,
                })
                .collect(),
        }
    }
}

/// Body of `GET /v1/topics`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicList {
    /// The topics, by name.
    pub topics: Vec<TopicDescription>,
}

/// Create a topic.
#[utoipa::path(
    post, path = "/v1/topics", tag = "topics", operation_id = "create_topic",
    extensions(("x-weir-permissions" = json!([
        {"resource": "topic", "name": "{body.name}", "operation": "create"},
    ]))),
    summary = "Create a topic",
    request_body(content = CreateTopic, content_type = "application/json"),
    responses(
        (status = 201, description = "The topic was created.", body = TopicDescription),
        (status = 400, description = "`invalid_topic_name`, `invalid_config`, `invalid_parameter` or `invalid_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`topic_already_exists`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_topic(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<TopicDescription>)> {
    let req: CreateTopic = json_body(&headers, body, s.broker.config().max_request_bytes).await?;
    let info = s
        .broker
        .create_topic(&caller, &req.name, req.partitions, &req.config)
        .await?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// List topics.
#[utoipa::path(
    get, path = "/v1/topics", tag = "topics", operation_id = "list_topics",
    extensions(("x-weir-permissions" = json!([]))),
    summary = "List topics",
    responses(
        (status = 200, description = "All topics the caller may see, by name.", body = TopicList,
         example = json!({"topics": [{"name": "orders", "partition_count": 1, "created_at": 1732500000000i64,
            "config": {"retention.ms": 604800000, "retention.bytes": -1, "max.message.bytes": 1048588, "cleanup.policy": "delete", "durability": "wal"},
            "partitions": [{"partition": 0, "earliest_offset": 0, "next_offset": 42, "records": 42, "bytes": 5120}]}]})),
        (status = 500, description = "`internal`: a server fault.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_topics(State(s): State<AppState>, caller: Caller) -> Json<TopicList> {
    Json(TopicList {
        topics: s.broker.list_topics(&caller).into_iter().map(Into::into).collect(),
    })
}

/// Describe a topic.
#[utoipa::path(
    get, path = "/v1/topics/{topic}", tag = "topics", operation_id = "get_topic",
    extensions(("x-weir-permissions" = json!([
        {"resource": "topic", "name": "{topic}", "operation": "describe"},
    ]))),
    summary = "Describe a topic",
    params(("topic" = String, Path, description = "Topic name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$")),
    responses(
        (status = 200, description = "The topic with its partitions.", body = TopicDescription),
        (status = 404, description = "`topic_not_found`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_topic(
    State(s): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
) -> ApiResult<Json<TopicDescription>> {
    Ok(Json(s.broker.describe_topic(&caller, &topic)?.into()))
}

/// Change a topic's config or raise its partition count.
#[utoipa::path(
    patch, path = "/v1/topics/{topic}", tag = "topics", operation_id = "alter_topic",
    extensions(("x-weir-permissions" = json!([{"resource": "topic", "name": "{topic}", "operation": "alter"}]))),
    summary = "Change a topic's config or partition count",
    params(("topic" = String, Path, description = "Topic name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$")),
    request_body(content = AlterTopic, content_type = "application/json"),
    responses(
        (status = 200, description = "The changed topic.", body = TopicDescription),
        (status = 400, description = "`invalid_config`, `invalid_parameter` (e.g. fewer partitions) or `invalid_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`topic_not_found`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn alter_topic(
    State(s): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<TopicDescription>> {
    let req: AlterTopic = json_body(&headers, body, s.broker.config().max_request_bytes).await?;
    Ok(Json(
        s.broker
            .alter_topic(&caller, &topic, req.partitions, &req.config)
            .await?
            .into(),
    ))
}

/// Delete a topic and all its records.
#[utoipa::path(
    delete, path = "/v1/topics/{topic}", tag = "topics", operation_id = "delete_topic",
    extensions(("x-weir-permissions" = json!([{"resource": "topic", "name": "{topic}", "operation": "delete"}]))),
    summary = "Delete a topic",
    params(("topic" = String, Path, description = "Topic name: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$")),
    responses(
        (status = 204, description = "The topic and its records are gone."),
        (status = 404, description = "`topic_not_found`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_topic(
    State(s): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
) -> ApiResult<StatusCode> {
    s.broker.delete_topic(&caller, &topic).await?;
    Ok(StatusCode::NO_CONTENT)
}
