//! The Streams API over HTTP: `POST /v1/sql` runs statements, `POST /v1/query` runs a push
//! query (rows as NDJSON over HTTP/1.1 chunked, or Server-Sent Events) or a pull query, and
//! `/v1/queries`, `/v1/streams`, `/v1/tables` describe what runs and what is declared.

use std::convert::Infallible;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value as JsonValue, json};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiResult, Problem};
use super::extract::json_body;
use crate::broker::Caller;
use crate::streams::sql::Kind;
use crate::streams::{QueryInfo, Row, SourceInfo, StatementResult};

/// Body of `POST /v1/sql`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sql": "CREATE STREAM orders (order_id TEXT, user_id TEXT, amount DECIMAL(12,2), status TEXT, ts TIMESTAMP) WITH (topic='orders', timestamp='ts', partitions=3);\nCREATE TABLE orders_per_hour AS SELECT window_start, COUNT(*) AS orders FROM TUMBLE(orders, ts, INTERVAL '1' HOUR) GROUP BY window_start, window_end EMIT FINAL;"}))]
pub struct SqlRequest {
    /// One or more statements separated by `;`.
    pub sql: String,
}

/// Answer of `POST /v1/sql`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"results": [{"statement": "CREATE STREAM orders (…) WITH (topic='orders')", "status": "ok", "message": "STREAM orders created on topic orders"},
    {"statement": "CREATE TABLE orders_per_hour AS SELECT …", "status": "ok", "message": "TABLE orders_per_hour is written by query CTAS_ORDERS_PER_HOUR_1", "query_id": "CTAS_ORDERS_PER_HOUR_1"}]}))]
pub struct SqlResponse {
    /// One result per statement, in order.
    pub results: Vec<StatementResult>,
}

/// Run SQL statements.
#[utoipa::path(
    post, path = "/v1/sql", tag = "streams", operation_id = "run_sql",
    extensions(("x-weir-permissions" = json!([
        {"resource": "query", "name": "{sql.creates}", "operation": "create"},
        {"resource": "topic", "name": "{sql.topics}", "operation": "describe"},
    ]))),
    summary = "Run SQL statements",
    description = "Runs `CREATE STREAM|TABLE … WITH (…)`, `CREATE STREAM|TABLE … AS SELECT …`, `INSERT INTO … SELECT …`, \
`DROP STREAM|TABLE`, `TERMINATE <query id>`, `SHOW STREAMS|TABLES|QUERIES`, `DESCRIBE <name>` and `EXPLAIN` in order. \
The first statement that fails stops the script: the problem says why, with `line` and `column` in the script, \
`statement_index`, and `completed` (the results of the statements before it, which took effect).",
    request_body(content = SqlRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The result of each statement.", body = SqlResponse),
        (status = 400, description = "`sql_syntax_error`, `sql_invalid` (with `line`, `column`), `invalid_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`stream_not_found`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`stream_already_exists`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sql(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<SqlResponse>> {
    let req: SqlRequest = json_body(&headers, body, s.broker.config().max_request_bytes).await?;
    let results = s.streams.execute(&caller, &req.sql).await?;
    Ok(Json(SqlResponse { results }))
}

/// Body of `POST /v1/query`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sql": "SELECT user_id, amount FROM orders WHERE amount > 100 EMIT CHANGES LIMIT 10", "properties": {"auto.offset.reset": "earliest"}}))]
pub struct QueryRequest {
    /// One `SELECT`: with `EMIT CHANGES` (or `EMIT FINAL`) a push query, without a pull query on a table.
    pub sql: String,
    /// `auto.offset.reset`: `latest` (default: rows from now on) or `earliest` (the stream's history first).
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

/// One line of a query's NDJSON answer: first a header, then rows, and always a last end.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(example = json!({"row": {"user_id": "User_7", "amount": 129.5}}))]
pub enum QueryLine {
    /// The first line.
    Header(QueryHeaderLine),
    /// A row.
    Row(QueryRowLine),
    /// The last line.
    End(QueryEndLine),
}

/// The first line of a query's NDJSON answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryHeaderLine {
    /// The query id and the columns.
    pub header: QueryHeader,
}

/// A row line of a query's NDJSON answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryRowLine {
    /// The output columns by name.
    #[schema(value_type = Object)]
    pub row: serde_json::Map<String, JsonValue>,
}

/// The last line of a query's NDJSON answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryEndLine {
    /// Why the query ended.
    pub end: QueryEnd,
}

/// The header of a query's answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"query_id": "transient_3f2a9c1b7d4e", "columns": [{"name": "user_id", "type": "TEXT"}]}))]
pub struct QueryHeader {
    /// The query's id (`DELETE /v1/queries/{id}` ends a push query).
    pub query_id: String,
    /// The output columns, in order.
    pub columns: Vec<QueryColumn>,
}

/// An output column of a query.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryColumn {
    /// Column name.
    pub name: String,
    /// SQL type (`BIGINT`, `TEXT`, `DECIMAL(10,2)`, …).
    #[serde(rename = "type")]
    pub kind: String,
}

/// The end of a query's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryEnd {
    /// `limit reached`, `terminated`, `client gone`, `complete` (a pull query), or an error.
    pub reason: String,
}

/// Run a push or pull query.
#[utoipa::path(
    post, path = "/v1/query", tag = "streams", operation_id = "run_query",
    extensions(("x-weir-permissions" = json!([
        {"resource": "topic", "name": "{sql.reads}", "operation": "read"},
    ])), ("x-weir-events" = json!({
        "header": {"data": {"$ref": "#/components/schemas/QueryHeader"}},
        "row": {"data": {"type": "object", "description": "The output columns by name."}},
        "end": {"data": {"$ref": "#/components/schemas/QueryEnd"}},
    }))),
    summary = "Run a push or pull query",
    description = "A `SELECT … EMIT CHANGES` streams rows as they change, as NDJSON over HTTP/1.1 chunked (a header line \
`{\"header\": {\"query_id\", \"columns\"}}`, then `{\"row\": {…}}` lines, and always a last line `{\"end\": {\"reason\"}}`), or as \
Server-Sent Events (`Accept: text/event-stream`; events `header`, `row`, `end`). It ends on `LIMIT`, when the client goes \
away, or on `DELETE /v1/queries/{id}`. A `SELECT` without `EMIT` on a table is a pull query: its current rows, at once, \
up to `pull_query_max_rows`, in the same format.",
    request_body(content = QueryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Rows: as NDJSON (each line a `QueryLine`: a header, rows, an end), or with \
`Accept: text/event-stream` as Server-Sent Events `header`, `row` and `end` whose data are the members of those lines \
(see `x-weir-events`).", content(
            (QueryLine = "application/x-ndjson",
             example = json!("{\"header\":{\"query_id\":\"transient_3f2a9c1b7d4e\",\"columns\":[{\"name\":\"user_id\",\"type\":\"TEXT\"}]}}\n{\"row\":{\"user_id\":\"User_7\"}}\n{\"end\":{\"reason\":\"limit reached\"}}\n")),
            (String = "text/event-stream",
             example = json!("event: header\ndata: {\"query_id\":\"transient_3f2a9c1b7d4e\",\"columns\":[{\"name\":\"user_id\",\"type\":\"TEXT\"}]}\n\nevent: row\ndata: {\"user_id\":\"User_7\"}\n\nevent: end\ndata: {\"reason\":\"limit reached\"}\n\n")),
        )),
        (status = 400, description = "`sql_syntax_error`, `sql_invalid` (with `line`, `column`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller may not read a topic of the query.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn query(State(s): State<AppState>, caller: Caller, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let req: QueryRequest = json_body(&headers, body, s.broker.config().max_request_bytes).await?;
    let earliest = req
        .properties
        .get("auto.offset.reset")
        .is_some_and(|v| v.eq_ignore_ascii_case("earliest"));
    let rows = s.streams.select(&caller, &req.sql, earliest).await?;
    let header = json!({"query_id": rows.id, "columns": rows.columns});
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let stream = tokio_stream::wrappers::ReceiverStream::new(rows.rows);
    if sse {
        let head = futures::stream::once(async move {
            Ok::<_, Infallible>(Event::default().event("header").data(header.to_string()))
        });
        let rest = tokio_stream::StreamExt::map(stream, |r| {
            Ok(match r {
                Row::Data(v) => Event::default().event("row").data(v),
                Row::End(reason) => Event::default()
                    .event("end")
                    .data(json!({"reason": reason}).to_string()),
            })
        });
        let events = futures::StreamExt::chain(head, rest);
        return Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response());
    }
    let head = futures::stream::once(async move { Ok::<_, Infallible>(line(json!({"header": header}))) });
    let rest = tokio_stream::StreamExt::map(stream, |r| {
        Ok(match r {
            Row::Data(v) => Bytes::from(format!("{{\"row\":{v}}}\n")),
            Row::End(reason) => line(json!({"end": {"reason": reason}})),
        })
    });
    let body = Body::from_stream(futures::StreamExt::chain(head, rest));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

fn line(v: JsonValue) -> Bytes {
    let mut b = v.to_string().into_bytes();
    b.push(b'\n');
    Bytes::from(b)
}

/// The persistent queries.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"queries": [{"id": "CTAS_ORDERS_PER_HOUR_1", "sql": "CREATE TABLE orders_per_hour AS SELECT …", "state": "RUNNING",
    "sink": "orders_per_hour", "records_in": 5000, "records_out": 24, "errors": 0, "late_records": 0, "last_error": null,
    "inputs": [{"topic": "orders", "partition": 0, "position": 5000, "end": 5000, "lag": 0}], "state_bytes": 2048}]}))]
pub struct QueryList {
    /// The queries the caller may describe.
    pub queries: Vec<QueryInfo>,
}

/// List persistent queries.
#[utoipa::path(get, path = "/v1/queries", tag = "streams", operation_id = "list_queries", summary = "List persistent queries",
    extensions(("x-weir-permissions" = json!([]))),
    responses(
        (status = 200, description = "Queries with state, counters, input positions and lag, state size.", body = QueryList),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_queries(State(s): State<AppState>, caller: Caller) -> Json<QueryList> {
    Json(QueryList {
        queries: s.streams.queries(&caller).await,
    })
}

/// Describe a persistent query.
#[utoipa::path(get, path = "/v1/queries/{id}", tag = "streams", operation_id = "get_query", summary = "Describe a query",
    extensions(("x-weir-permissions" = json!([{"resource": "query", "name": "{id}", "operation": "describe"}]))),
    params(("id" = String, Path, description = "Query id")),
    responses(
        (status = 200, description = "State, counters, input positions and lag, state size, last error.", body = QueryInfo,
         example = json!({"id": "CTAS_ORDERS_PER_HOUR_1", "sql": "CREATE TABLE orders_per_hour AS SELECT …", "state": "RUNNING", "sink": "orders_per_hour",
            "records_in": 5000, "records_out": 24, "errors": 1, "late_records": 3, "last_error": "orders/0@17: column amount: expected DECIMAL(12,2), got \"x\"",
            "inputs": [{"topic": "orders", "partition": 0, "position": 5000, "end": 5000, "lag": 0}], "state_bytes": 2048})),
        (status = 404, description = "`query_not_found`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_query(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<QueryInfo>> {
    Ok(Json(s.streams.query(&caller, &id).await?))
}

/// Terminate a query.
#[utoipa::path(delete, path = "/v1/queries/{id}", tag = "streams", operation_id = "terminate_query", summary = "Terminate a query",
    extensions(("x-weir-permissions" = json!([{"resource": "query", "name": "{id}", "operation": "delete"}]))),
    description = "Stops a persistent query (its state is deleted; what it wrote stays) or ends a push query.",
    params(("id" = String, Path, description = "Query id")),
    responses(
        (status = 204, description = "Terminated."),
        (status = 404, description = "`query_not_found`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_query(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.streams.terminate(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Declared streams or tables.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{"name": "orders", "type": "STREAM", "topic": "orders", "format": "json",
    "columns": [{"name": "order_id", "type": "TEXT", "key": false}], "timestamp": "ts", "watermark_delay_ms": 5000, "written_by": null, "read_by": ["CTAS_ORDERS_PER_HOUR_1"]}]}))]
pub struct SourceList {
    /// The streams or tables the caller may describe.
    pub items: Vec<SourceInfo>,
}

/// List streams.
#[utoipa::path(get, path = "/v1/streams", tag = "streams", operation_id = "list_streams",
    extensions(("x-weir-permissions" = json!([]))), summary = "List streams",
    responses((status = 200, description = "Declared streams.", body = SourceList),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json")))]
pub async fn list_streams(State(s): State<AppState>, caller: Caller) -> Json<SourceList> {
    Json(SourceList {
        items: s.streams.sources(&caller, Kind::Stream).await,
    })
}

/// List tables.
#[utoipa::path(get, path = "/v1/tables", tag = "streams", operation_id = "list_tables",
    extensions(("x-weir-permissions" = json!([]))), summary = "List tables",
    responses((status = 200, description = "Declared tables.", body = SourceList),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json")))]
pub async fn list_tables(State(s): State<AppState>, caller: Caller) -> Json<SourceList> {
    Json(SourceList {
        items: s.streams.sources(&caller, Kind::Table).await,
    })
}

/// Describe a stream.
#[utoipa::path(get, path = "/v1/streams/{name}", tag = "streams", operation_id = "get_stream",
    extensions(("x-weir-permissions" = json!([{"resource": "query", "name": "{name}", "operation": "describe"}]))), summary = "Describe a stream",
    params(("name" = String, Path, description = "Stream name")),
    responses(
        (status = 200, description = "Topic, columns, event time, the queries that write and read it.", body = SourceInfo,
         example = json!({"name": "orders", "type": "STREAM", "topic": "orders", "format": "json", "columns": [{"name": "order_id", "type": "TEXT", "key": false}],
            "timestamp": "ts", "watermark_delay_ms": 5000, "written_by": null, "read_by": []})),
        (status = 404, description = "`stream_not_found`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_stream(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<SourceInfo>> {
    describe(&s, &caller, &name, "STREAM").await
}

/// Describe a table.
#[utoipa::path(get, path = "/v1/tables/{name}", tag = "streams", operation_id = "get_table",
    extensions(("x-weir-permissions" = json!([{"resource": "query", "name": "{name}", "operation": "describe"}]))), summary = "Describe a table",
    params(("name" = String, Path, description = "Table name")),
    responses(
        (status = 200, description = "Topic, columns and key, the queries that write and read it.", body = SourceInfo,
         example = json!({"name": "customers", "type": "TABLE", "topic": "customers", "format": "json", "columns": [{"name": "customer_id", "type": "TEXT", "key": true}],
            "timestamp": null, "watermark_delay_ms": 0, "written_by": null, "read_by": ["CSAS_ENRICHED_2"]})),
        (status = 404, description = "`stream_not_found`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_table(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<SourceInfo>> {
    describe(&s, &caller, &name, "TABLE").await
}

async fn describe(s: &AppState, caller: &Caller, name: &str, kind: &str) -> ApiResult<Json<SourceInfo>> {
    let info = s.streams.describe(caller, &name.to_lowercase()).await?;
    if info.kind != kind {
        return Err(crate::error::Error::new(
            crate::error::ErrorCode::StreamNotFound,
            format!("'{name}' is a {}, not a {kind}", info.kind),
        )
        .with_field("name")
        .into());
    }
    Ok(Json(info))
}
