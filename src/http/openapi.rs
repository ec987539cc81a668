//! The OpenAPI document: info, tags and security schemes here; paths come from the handlers'
//! annotations via the router (`utoipa-axum`), so the spec cannot drift from the routes. Each
//! operation states the grants it needs in `x-weir-permissions` (the description says how to
//! read them).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Top-level OpenAPI metadata.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir",
        description = "Kafka's Producer, Consumer, Connect and Streams APIs over plain HTTP, on an embedded RocksDB topic log. \
Errors are `application/problem+json` with a stable `code`. Authenticate with `Authorization: Bearer <token>` (an \
API token or a JWT), or a TLS client certificate; the event streams and the WebSocket also take the token as \
`?access_token=` or a `weir_token` cookie. Every operation lists the grants a caller needs in \
`x-weir-permissions`: `{\"resource\", \"name\", \"operation\"}` entries, all of which are needed (`[]`: any \
authenticated caller; listings then show only what the caller may describe). Names may hold placeholders: a \
path parameter (`{topic}`, `{group}`, `{connector}`); `{body.<path>}`, every string at that path of the JSON \
body (through arrays, e.g. `{body.produce.topic}`); `{query.<name>}`, every comma-separated item of that query \
parameter; and for connectors `{connector.writes}` (the topics the connector's config writes: a source's topics, \
the dead-letter topic), `{connector.reads}` (the topics a sink reads; `*` for `topics.regex`) and \
`{connector.group}` (a sink's group, `connect-<name>`), since a connector never gets more than its creator \
holds. An entry whose placeholder names nothing is not needed. Group member operations also need the caller to \
be the principal that joined.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = [])),
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

/// Declares how callers authenticate: a bearer token everywhere, and on the streaming operations
/// also the `access_token` query parameter and the `weir_token` cookie.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`weir_…`) or a JWT from the configured identity provider.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "access_token",
                "The bearer token as a query parameter: GET on the event streams and the WebSocket only.",
            ))),
        );
        components.add_security_scheme(
            "weir_token",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "weir_token",
                "The bearer token as a cookie: GET on the event streams and the WebSocket only.",
            ))),
        );
    }
}

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
