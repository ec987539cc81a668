//! The error type shared by every layer, and the one enum of stable error codes.
//!
//! Services return [`Error`]; only `http/error.rs` decides which HTTP status a code maps to.
//! Codes are part of the public API: once published, a code keeps its name and meaning.

use std::fmt;

/// A stable, machine-readable error code, serialized in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The named topic does not exist.
    TopicNotFound,
    /// A topic with this name exists already.
    TopicAlreadyExists,
    /// The topic name breaks Kafka's naming rules.
    InvalidTopicName,
    /// A topic config key or value is invalid or unsupported.
    InvalidConfig,
    /// The partition does not exist in the topic.
    PartitionNotFound,
    /// The requested offset is below the earliest or past the next offset.
    OffsetOutOfRange,
    /// A record is malformed (missing value, wrong type, bad header, ...).
    InvalidRecord,
    /// A key or value declared `binary` is not valid base64.
    InvalidBase64,
    /// A record is larger than the topic's `max.message.bytes`.
    RecordTooLarge,
    /// The request body exceeds the server's request limit.
    RequestTooLarge,
    /// The request carries more records than the server accepts at once.
    TooManyRecords,
    /// The request body is not valid JSON or does not have the expected shape.
    InvalidJson,
    /// The request's `Content-Type` is not accepted by this endpoint.
    UnsupportedMediaType,
    /// A query or path parameter is invalid.
    InvalidParameter,
    /// An `Idempotency-Key` was reused with a different request body.
    IdempotencyKeyReused,
    /// A consumer group name breaks Kafka's naming rules.
    InvalidGroupName,
    /// The consumer group does not exist.
    GroupNotFound,
    /// The member is not (or no longer) in the group: rejoin.
    UnknownMember,
    /// The group rebalanced since the member last heard; the answer carries the new assignment.
    RebalanceInProgress,
    /// A commit carried a generation that is not the group's current one.
    IllegalGeneration,
    /// The member does not own the partition in the current generation.
    PartitionNotOwned,
    /// `auto_offset_reset` is `none` and the partition has no committed offset.
    NoCommittedOffset,
    /// The operation needs a group without members.
    GroupNotEmpty,
    /// Missing, malformed, expired or revoked credentials.
    Unauthenticated,
    /// Valid credentials without the needed permission.
    Forbidden,
    /// A per-principal quota was exceeded; retry after `Retry-After` seconds.
    QuotaExceeded,
    /// The server sheds load: too many concurrent requests or streams.
    Overloaded,
    /// No such route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The request's URI is longer than the server reads.
    UriTooLong,
    /// The request has more header fields, or more header bytes, than the server reads.
    HeadersTooLarge,
    /// The server is shutting down or not ready.
    Unavailable,
    /// No connector of that name.
    ConnectorNotFound,
    /// A connector of that name exists already.
    ConnectorAlreadyExists,
    /// A connector config is invalid; the message lists every error, as `validate` does.
    InvalidConnectorConfig,
    /// No connector, transform or predicate plugin of that name.
    PluginNotFound,
    /// The connector has no task of that number.
    TaskNotFound,
    /// Offsets can only be changed while the connector is stopped.
    ConnectorNotStopped,
    /// A SQL statement does not parse; the problem carries `line` and `column`.
    SqlSyntaxError,
    /// A SQL statement parses but cannot run (unknown column, wrong type, unsupported form);
    /// the problem carries `line` and `column`.
    SqlInvalid,
    /// No stream or table of that name.
    StreamNotFound,
    /// A stream or table of that name exists already.
    StreamAlreadyExists,
    /// No query of that id.
    QueryNotFound,
    /// A stored record batch could not be decoded; the problem names topic, partition and the
    /// batch's offsets, and a consumer may seek past it.
    CorruptRecordBatch,
    /// An unexpected server-side failure; details are in the server log.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TopicNotFound => "topic_not_found",
            Self::TopicAlreadyExists => "topic_already_exists",
            Self::InvalidTopicName => "invalid_topic_name",
            Self::InvalidConfig => "invalid_config",
            Self::PartitionNotFound => "partition_not_found",
            Self::OffsetOutOfRange => "offset_out_of_range",
            Self::InvalidRecord => "invalid_record",
            Self::InvalidBase64 => "invalid_base64",
            Self::RecordTooLarge => "record_too_large",
            Self::RequestTooLarge => "request_too_large",
            Self::TooManyRecords => "too_many_records",
            Self::InvalidJson => "invalid_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidParameter => "invalid_parameter",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::InvalidGroupName => "invalid_group_name",
            Self::GroupNotFound => "group_not_found",
            Self::UnknownMember => "unknown_member",
            Self::RebalanceInProgress => "rebalance_in_progress",
            Self::IllegalGeneration => "illegal_generation",
            Self::PartitionNotOwned => "partition_not_owned",
            Self::NoCommittedOffset => "no_committed_offset",
            Self::GroupNotEmpty => "group_not_empty",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::QuotaExceeded => "quota_exceeded",
            Self::Overloaded => "overloaded",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::Unavailable => "unavailable",
            Self::ConnectorNotFound => "connector_not_found",
            Self::ConnectorAlreadyExists => "connector_already_exists",
            Self::InvalidConnectorConfig => "invalid_connector_config",
            Self::PluginNotFound => "plugin_not_found",
            Self::TaskNotFound => "task_not_found",
            Self::ConnectorNotStopped => "connector_not_stopped",
            Self::SqlSyntaxError => "sql_syntax_error",
            Self::SqlInvalid => "sql_invalid",
            Self::StreamNotFound => "stream_not_found",
            Self::StreamAlreadyExists => "stream_already_exists",
            Self::QueryNotFound => "query_not_found",
            Self::CorruptRecordBatch => "corrupt_record_batch",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a stable code, a human detail, and the offending field when there is one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Error {
    /// The stable code.
    pub code: ErrorCode,
    /// A human-readable explanation, safe to show to the caller.
    pub detail: String,
    /// The request field (JSON path, query or path parameter) at fault, if any.
    pub field: Option<String>,
    /// Extra members for the problem document (e.g. the new assignment of a rebalance).
    pub extensions: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl Error {
    /// How long a refusal of backpressure (`overloaded`, `quota_exceeded`) asks its client to
    /// wait before trying again; `None` for any other error.
    pub fn backpressure_wait(&self) -> Option<std::time::Duration> {
        if !matches!(self.code, ErrorCode::Overloaded | ErrorCode::QuotaExceeded) {
            return None;
        }
        let asked = self.extensions.as_ref().and_then(|x| x.get("retry_after_ms"));
        let ms = asked.and_then(serde_json::Value::as_u64).unwrap_or(200);
        Some(std::time::Duration::from_millis(ms.clamp(1, 10_000)))
    }

    /// An error with a code and a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            field: None,
            extensions: None,
        }
    }

    /// Names the offending field.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds extension members to the problem document.
    #[must_use]
    pub fn with_extensions(mut self, extensions: serde_json::Map<String, serde_json::Value>) -> Self {
        self.extensions = Some(Box::new(extensions));
        self
    }

    /// An internal failure: the cause is logged here and never returned to the caller.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal server error")
    }

    /// Shorthand for `invalid_parameter` naming the parameter.
    pub fn invalid_parameter(field: &str, detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameter, detail).with_field(field)
    }

    /// Shorthand for `topic_not_found`.
    pub fn topic_not_found(name: &str) -> Self {
        Self::new(ErrorCode::TopicNotFound, format!("topic '{name}' does not exist")).with_field("topic")
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
