//! Problem details (RFC 9457): the one place where error codes become HTTP statuses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, ErrorCode};

/// The HTTP status of each error code.
pub const fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::TopicNotFound
        | ErrorCode::PartitionNotFound
        | ErrorCode::NotFound
        | ErrorCode::ConnectorNotFound
        | ErrorCode::PluginNotFound
        | ErrorCode::TaskNotFound => StatusCode::NOT_FOUND,
        ErrorCode::ConnectorAlreadyExists | ErrorCode::StreamAlreadyExists => StatusCode::CONFLICT,
        ErrorCode::SqlSyntaxError | ErrorCode::SqlInvalid => StatusCode::BAD_REQUEST,
        ErrorCode::StreamNotFound | ErrorCode::QueryNotFound => StatusCode::NOT_FOUND,
        ErrorCode::InvalidConnectorConfig | ErrorCode::ConnectorNotStopped => StatusCode::BAD_REQUEST,
        ErrorCode::TopicAlreadyExists
        | ErrorCode::RebalanceInProgress
        | ErrorCode::IllegalGeneration
        | ErrorCode::PartitionNotOwned
        | ErrorCode::NoCommittedOffset
        | ErrorCode::GroupNotEmpty => StatusCode::CONFLICT,
        ErrorCode::GroupNotFound | ErrorCode::UnknownMember => StatusCode::NOT_FOUND,
        ErrorCode::InvalidTopicName
        | ErrorCode::InvalidGroupName
        | ErrorCode::InvalidConfig
        | ErrorCode::InvalidRecord
        | ErrorCode::InvalidBase64
        | ErrorCode::InvalidJson
        | ErrorCode::InvalidParameter => StatusCode::BAD_REQUEST,
        ErrorCode::OffsetOutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::RecordTooLarge | ErrorCode::RequestTooLarge | ErrorCode::TooManyRecords => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
        ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal | ErrorCode::CorruptRecordBatch => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An `application/problem+json` body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:weir:problem:topic_not_found",
    "title": "Not Found",
    "status": 404,
    "code": "topic_not_found",
    "detail": "topic 'orders' does not exist",
    "field": "topic"
}))]
pub struct Problem {
    /// `urn:weir:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable error code.
    pub code: ErrorCode,
    /// What went wrong, for humans.
    pub detail: String,
    /// The offending request field (JSON path, query or path parameter, header), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Code-specific members (e.g. `generation` and `assignment` of `rebalance_in_progress`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Problem {
    /// The problem for an error.
    pub fn from_error(e: &Error) -> Self {
        let status = status_of(e.code);
        Self {
            kind: format!("urn:weir:problem:{}", e.code),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: e.code,
            detail: e.detail.clone(),
            field: e.field.clone(),
            extensions: e.extensions.as_deref().cloned(),
        }
    }
}

/// An [`Error`] on its way out as a problem+json response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(&self.0)
    }
}

/// Renders an error as a problem+json response.
pub fn problem_response(e: &Error) -> Response {
    let problem = Problem::from_error(e);
    let status = status_of(e.code);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    match e.code {
        ErrorCode::Unavailable | ErrorCode::Overloaded | ErrorCode::QuotaExceeded => {
            // Whole seconds, rounded up, from the wait the service computed (else 1 s).
            let secs = e
                .extensions
                .as_ref()
                .and_then(|x| x.get("retry_after_ms"))
                .and_then(serde_json::Value::as_u64)
                .map_or(1, |ms| ms.div_ceil(1000).max(1));
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        ErrorCode::Unauthenticated => {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"weir\""),
            );
        }
        // The problem carries the new assignment: the member may go on at once.
        ErrorCode::RebalanceInProgress => {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        }
        _ => {}
    }
    resp
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
