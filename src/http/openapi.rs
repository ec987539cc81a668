//! The OpenAPI document: info, tags and security schemes here; paths come from the handlers'
//! annotations via the router (`utoipa-axum`), so the spec cannot drift from the routes. Each
//! operation states the grants it needs in `x-weir-permissions` (the description says how to
//! read them).

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Type};
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
        (name = "tokens", description = "API tokens: mint, list, revoke"),
        (name = "system", description = "Health, readiness and metrics"),
    ),
    components(schemas(crate::error::ErrorCode, super::groups::WsServerMessage, super::groups::WsCommand))
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

/// Documents the answers the HTTP door gives before any handler runs, on every operation it
/// guards (the door is one middleware for all routes, so its answers are declared in one place):
/// `401` and, where the operation needs grants or is a member's, `403` (authentication and
/// permissions), `429` (the per-principal request quota), `414` and `431` (a URI or headers over
/// what the server reads), `503` (load shedding, shutdown) and, on operations with a body, `413`
/// (`max_request_bytes`). Answers a handler already documents are
/// kept.
struct DoorResponses;

impl Modify for DoorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let connect = path.starts_with("/v1/connector");
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                door_responses(op, path, connect);
            }
        }
    }
}

fn door_responses(op: &mut Operation, path: &str, connect: bool) {
    let public = serde_json::to_value(&op.security).ok() == Some(serde_json::json!([{}]));
    let needs_grants = op
        .extensions
        .as_ref()
        .and_then(|x| x.get("x-weir-permissions"))
        .and_then(serde_json::Value::as_array)
        .is_some_and(|g| !g.is_empty());
    let mut add = |status: &str, response: Response| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert(RefOr::T(response));
    };
    if !public {
        add(
            "401",
            problem(
                "`unauthenticated`: no credential, or one that is bad, expired or revoked (with `WWW-Authenticate: Bearer`).",
                false,
            ),
        );
        if needs_grants || path.contains("{member}") {
            let detail = "`forbidden`: the credential lacks a grant listed in `x-weir-permissions`, or the member \
was joined by another principal. The same whether or not the resource exists.";
            add(
                "403",
                if connect {
                    connect_error(detail)
                } else {
                    problem(detail, false)
                },
            );
        }
        add(
            "429",
            problem(
                "`quota_exceeded`: the caller's request quota is spent; retry after `Retry-After` seconds.",
                true,
            ),
        );
    }
    if op.request_body.is_some() {
        add(
            "413",
            problem("`request_too_large`: the body is over `max_request_bytes`.", false),
        );
    }
    add(
        "414",
        problem("`uri_too_long`: the path and query are over 8 KiB.", false),
    );
    add(
        "431",
        problem(
            "`headers_too_large`: more than 100 header fields, or more than 64 KiB of them.",
            false,
        ),
    );
    add(
        "503",
        problem(
            "`overloaded`: too many concurrent requests or streams, or no room in the request-body memory budget; \
`unavailable`: shutting down. Retry after `Retry-After` seconds.",
            true,
        ),
    );
}

/// An `application/problem+json` answer.
fn problem(description: &str, retry_after: bool) -> Response {
    let mut r = ResponseBuilder::new().description(description).content(
        "application/problem+json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    if retry_after {
        r = r.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    r.build()
}

/// A Kafka Connect error answer (`{"error_code", "message", "code"}`).
fn connect_error(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ConnectErrorBody")))
                .build(),
        )
        .build()
}

/// The complete spec, as served at `/openapi.json`.
pub fn spec() -> utoipa::openapi::OpenApi {
    let (_, mut api) = super::api_router().split_for_parts();
    complete(&mut api);
    api
}

/// What is added once every route's operation is in the document: the door's answers.
pub fn complete(api: &mut utoipa::openapi::OpenApi) {
    DoorResponses.modify(api);
}

/// The spec as pretty JSON with a trailing newline, as stored in `openapi/openapi.json`.
pub fn spec_json() -> String {
    let mut s = spec().to_pretty_json().expect("the spec serializes");
    s.push('\n');
    s
}

/// A raw request body: any bytes, sent as they are (`type: string`, `format: binary`), so that
/// generated clients take bytes rather than a list of numbers.
pub struct RawBody;

impl utoipa::PartialSchema for RawBody {
    fn schema() -> RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .content_media_type("application/octet-stream")
            .description(Some("The record's value: the body's bytes."))
            .into()
    }
}

impl utoipa::ToSchema for RawBody {}
