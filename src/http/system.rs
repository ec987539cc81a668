//! Health, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{Problem, problem_response};
use crate::error::{Error, ErrorCode};

/// Health or readiness.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Status {
    /// `ok` or `ready`.
    pub status: &'static str,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "system", operation_id = "get_health",
    extensions(("x-weir-permissions" = json!([]))),
    security(()),
    summary = "Liveness",
    responses((status = 200, description = "The server is alive.", body = Status)))]
pub async fn healthz() -> axum::Json<Status> {
    axum::Json(Status { status: "ok" })
}

/// Readiness: the store is open and the server is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "system", operation_id = "get_readiness",
    extensions(("x-weir-permissions" = json!([]))),
    security(()),
    summary = "Readiness",
    responses(
        (status = 200, description = "Ready to serve.", body = Status, example = json!({"status": "ready"})),
        (status = 503, description = "`unavailable`: shutting down.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(s): State<AppState>) -> Response {
    if s.broker.shutdown_token().is_cancelled() {
        return problem_response(&Error::new(ErrorCode::Unavailable, "the server is shutting down"));
    }
    axum::Json(Status { status: "ready" }).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "system", operation_id = "get_metrics",
    extensions(("x-weir-permissions" = json!([
        {"resource": "cluster", "name": "weir", "operation": "describe"},
    ]))),
    summary = "Prometheus metrics",
    responses((status = 200, description = "Metrics in the Prometheus text format (needs `describe` on `cluster`).", content_type = "text/plain",
        body = String, example = json!("# TYPE weir_records_in_total counter\nweir_records_in_total{topic=\"orders\"} 42\n")),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json")))]
pub async fn metrics(State(s): State<AppState>, caller: crate::broker::Caller) -> Response {
    match s.broker.storage_bytes(&caller).await {
        Ok(bytes) => metrics::gauge!("weir_storage_bytes").set(bytes as f64),
        Err(e) => return problem_response(&e),
    }
    let mut resp = (StatusCode::OK, s.metrics.render()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}
