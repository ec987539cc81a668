//! The OpenAPI document: info and tags here; paths come from the handlers' annotations via
//! the router (`utoipa-axum`), so the spec cannot drift from the routes.

use utoipa::OpenApi;

/// Top-level OpenAPI metadata.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir",
        description = "Kafka's Producer, Consumer, Connect and Streams APIs over plain HTTP, on an embedded RocksDB topic log. \
Errors are `application/problem+json` with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "topics", description = "Create, describe, change and delete topics"),
        (name = "records", description = "Produce and fetch records; stream them as Server-Sent Events"),
        (name = "groups", description = "Consumer groups: membership, polling, commits, administration, streaming"),
        (name = "connect", description = "Kafka Connect's REST API: connectors, tasks, offsets, plugins"),
        (name = "streams", description = "Continuous SQL over topics: statements, push and pull queries, queries, streams and tables"),
        (name = "transactions", description = "Produce and commit offsets atomically: exactly-once consume → process → produce"),
        (name = "security", description = "API tokens"),
        (name = "system", description = "Health, readiness and metrics"),
    ),
    components(schemas(crate::error::ErrorCode))
)]
pub struct ApiDoc;

/// The complete spec, as served at `/openapi.json`.
pub fn spec() -> utoipa::openapi::OpenApi {
    let (_, api) = super::api_router().split_for_parts();
    api
}

/// The spec as pretty JSON with a trailing newline, as stored in `openapi/openapi.json`.
pub fn spec_json() -> String {
    let mut s = spec().to_pretty_json().expect("the spec serializes");
    s.push('\n');
    s
}
