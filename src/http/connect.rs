//! Kafka Connect's REST API under `/v1`: connectors, their config, status, tasks, lifecycle
//! and offsets, and the plugin listing with config validation — Connect's paths, status codes
//! and JSON shapes, so tools written for Connect work with base URL `http://host:port/v1`.
//! Errors are Connect's `{"error_code", "message"}`, which also carries Weir's `code`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::extract::{Params, json_body};
use crate::broker::Caller;
use crate::connect::CreateRequest;
use crate::connect::config::{Definition, RawConfig, Validation, from_json};
use crate::connect::status::{
    ActiveTopics, ConnectorInfo, ConnectorOffsets, ConnectorStatus, PluginInfo, Target, TaskInfo, TaskStateView,
};
use crate::error::Error;

/// An error in Kafka Connect's shape, with Weir's stable code.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error_code": 404, "message": "Connector orders-file not found", "code": "connector_not_found"}))]
pub struct ConnectErrorBody {
    /// The HTTP status.
    pub error_code: u16,
    /// What went wrong.
    pub message: String,
    /// Weir's stable error code.
    #[schema(value_type = String)]
    pub code: crate::error::ErrorCode,
    /// The offending field, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error on its way out in Connect's shape.
#[derive(Debug)]
pub struct ConnectError(pub Error);

impl From<Error> for ConnectError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        let status = super::error::status_of(self.0.code);
        let body = ConnectErrorBody {
            error_code: status.as_u16(),
            message: self.0.detail,
            code: self.0.code,
            field: self.0.field,
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"weir\"".parse().expect("a valid header"),
            );
        }
        resp
    }
}

type ConnectResult<T> = Result<T, ConnectError>;

/// Reads a JSON object body of string-valued config keys.
async fn config_body(s: &AppState, headers: &HeaderMap, body: Body) -> Result<BTreeMap<String, Option<String>>, Error> {
    let v: serde_json::Map<String, Value> = json_body(headers, body, s.broker.config().max_request_bytes).await?;
    from_json(&v).map_err(|e| Error::new(crate::error::ErrorCode::InvalidJson, e).with_field("body"))
}

fn present(map: BTreeMap<String, Option<String>>) -> RawConfig {
    map.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()
}

/// Version information.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"version": "0.1.0", "commit": "weir", "kafka_cluster_id": "weir"}))]
pub struct ServerInfo {
    /// Weir's version.
    pub version: String,
    /// Build id.
    pub commit: String,
    /// The cluster id (`weir`).
    pub kafka_cluster_id: String,
}

/// Version information (Kafka Connect's `GET /`).
#[utoipa::path(get, path = "/v1", tag = "connect", operation_id = "get_connect_cluster",
    extensions(("x-weir-permissions" = json!([]))),
    summary = "Version information",
    responses((status = 200, description = "Version, commit and cluster id.", body = ServerInfo)))]
pub async fn root() -> Json<ServerInfo> {
    Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        commit: "weir".into(),
        kafka_cluster_id: crate::broker::tokens::CLUSTER.into(),
    })
}

/// Query parameters of the connector list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `status` and/or `info` (repeat the parameter for both).
    pub expand: Option<String>,
}

/// List connectors.
#[utoipa::path(get, path = "/v1/connectors", tag = "connect", operation_id = "list_connectors",
    extensions(("x-weir-permissions" = json!([]))),
    summary = "List connectors",
    description = "Names of the connectors the caller may describe; with `expand=status` and/or `expand=info`, an \
object from name to `{\"status\": …, \"info\": …}`.",
    params(ListParams),
    responses((status = 200, description = "Names, or expanded descriptions.", body = Object,
        example = json!(["orders-file", "orders-archive"])),
        (status = 401, description = "`unauthenticated`.", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn list(State(s): State<AppState>, caller: Caller, uri: axum::http::Uri) -> ConnectResult<Json<Value>> {
    let expand: Vec<String> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "expand")
        .map(|(_, v)| v.into_owned())
        .collect();
    let names = s.connect.list(&caller).await;
    if expand.is_empty() {
        return Ok(Json(serde_json::to_value(names).map_err(Error::internal)?));
    }
    let mut out = serde_json::Map::new();
    for name in names {
        let mut item = serde_json::Map::new();
        if expand.iter().any(|e| e == "status") {
            let st = s.connect.status(&caller, &name).await?;
            item.insert("status".into(), serde_json::to_value(st).map_err(Error::internal)?);
        }
        if expand.iter().any(|e| e == "info") {
            let info = s.connect.info(&caller, &name).await?;
            item.insert("info".into(), serde_json::to_value(info).map_err(Error::internal)?);
        }
        out.insert(name, Value::Object(item));
    }
    Ok(Json(Value::Object(out)))
}

/// Body of a create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "orders-file", "config": {"connector.class": "FileStreamSource", "file": "/var/log/orders.log", "topic": "orders"}}))]
pub struct CreateBody {
    /// The connector's name.
    pub name: String,
    /// Its config: string values (numbers and booleans are taken as their text).
    #[schema(value_type = BTreeMap<String, String>)]
    pub config: serde_json::Map<String, Value>,
    /// `RUNNING` (default), `PAUSED` or `STOPPED`.
    pub initial_state: Option<Target>,
}

/// Create a connector.
#[utoipa::path(post, path = "/v1/connectors", tag = "connect", operation_id = "create_connector",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{body.name}", "operation": "create"},
        {"resource": "topic", "name": "{connector.writes}", "operation": "write"},
        {"resource": "topic", "name": "{connector.writes}", "operation": "create"},
        {"resource": "topic", "name": "{connector.reads}", "operation": "read"},
        {"resource": "group", "name": "{connector.group}", "operation": "read"},
    ]))),
    summary = "Create a connector",
    request_body(content = CreateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The connector, started in its initial state.", body = ConnectorInfo),
        (status = 400, description = "`invalid_connector_config` (every error, as validate lists them), `invalid_json`.", body = ConnectErrorBody),
        (status = 404, description = "`plugin_not_found`.", body = ConnectErrorBody),
        (status = 409, description = "`connector_already_exists`.", body = ConnectErrorBody),
    ))]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ConnectResult<(StatusCode, Json<ConnectorInfo>)> {
    let req: CreateBody = json_body(&headers, body, s.broker.config().max_request_bytes).await?;
    let config =
        from_json(&req.config).map_err(|e| Error::new(crate::error::ErrorCode::InvalidJson, e).with_field("config"))?;
    let info = s
        .connect
        .create(
            &caller,
            CreateRequest {
                name: req.name,
                config: present(config),
                initial_state: req.initial_state,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Describe a connector.
#[utoipa::path(get, path = "/v1/connectors/{connector}", tag = "connect", operation_id = "get_connector",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "describe"},
    ]))),
    summary = "Describe a connector",
    params(("connector" = String, Path, description = "Connector name")),
    responses(
        (status = 200, description = "Name, config (secrets hidden), tasks and type.", body = ConnectorInfo),
        (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn info(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
) -> ConnectResult<Json<ConnectorInfo>> {
    Ok(Json(s.connect.info(&caller, &c).await?))
}

/// Delete a connector.
#[utoipa::path(delete, path = "/v1/connectors/{connector}", tag = "connect", operation_id = "delete_connector",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "delete"},
    ]))),
    summary = "Delete a connector",
    description = "Stops its tasks and deletes its config and its offsets: a connector created again with the same \
name starts fresh.",
    params(("connector" = String, Path, description = "Connector name")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn delete(State(s): State<AppState>, caller: Caller, Path(c): Path<String>) -> ConnectResult<StatusCode> {
    s.connect.delete(&caller, &c).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A connector's config.
#[utoipa::path(get, path = "/v1/connectors/{connector}/config", tag = "connect", operation_id = "get_connector_config",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "describe"},
    ]))),
    summary = "Get a connector's config",
    params(("connector" = String, Path, description = "Connector name")),
    responses(
        (status = 200, description = "The config (secrets shown as `[hidden]`).", body = BTreeMap<String, String>,
         example = json!({"connector.class": "FileStreamSource", "file": "/var/log/orders.log", "topic": "orders", "name": "orders-file"})),
        (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn get_config(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
) -> ConnectResult<Json<RawConfig>> {
    Ok(Json(s.connect.config(&caller, &c).await?))
}

/// Create or replace a connector's config.
#[utoipa::path(put, path = "/v1/connectors/{connector}/config", tag = "connect", operation_id = "put_connector_config",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "create"},
        {"resource": "connector", "name": "{connector}", "operation": "alter"},
        {"resource": "topic", "name": "{connector.writes}", "operation": "write"},
        {"resource": "topic", "name": "{connector.writes}", "operation": "create"},
        {"resource": "topic", "name": "{connector.reads}", "operation": "read"},
        {"resource": "group", "name": "{connector.group}", "operation": "read"},
    ]))),
    summary = "Create or update a connector",
    params(("connector" = String, Path, description = "Connector name")),
    request_body(content = BTreeMap<String, String>, content_type = "application/json",
        example = json!({"connector.class": "FileStreamSource", "file": "/var/log/orders.log", "topic": "orders"})),
    responses(
        (status = 200, description = "Updated; the tasks restarted with the new config.", body = ConnectorInfo),
        (status = 201, description = "Created.", body = ConnectorInfo),
        (status = 400, description = "`invalid_connector_config`, `invalid_json`.", body = ConnectErrorBody),
        (status = 404, description = "`plugin_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn put_config(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ConnectResult<(StatusCode, Json<ConnectorInfo>)> {
    let config = present(config_body(&s, &headers, body).await?);
    let (created, info) = s.connect.put_config(&caller, &c, config).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(info)))
}

/// Merge changes into a connector's config.
#[utoipa::path(patch, path = "/v1/connectors/{connector}/config", tag = "connect", operation_id = "patch_connector_config",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "alter"},
        {"resource": "topic", "name": "{connector.writes}", "operation": "write"},
        {"resource": "topic", "name": "{connector.writes}", "operation": "create"},
        {"resource": "topic", "name": "{connector.reads}", "operation": "read"},
        {"resource": "group", "name": "{connector.group}", "operation": "read"},
    ]))),
    summary = "Patch a connector's config",
    description = "Merges the given keys into the config; a `null` value removes a key.",
    params(("connector" = String, Path, description = "Connector name")),
    request_body(content = BTreeMap<String, Option<String>>, content_type = "application/json", example = json!({"batch.size": "500", "transforms": null})),
    responses(
        (status = 200, description = "The updated connector.", body = ConnectorInfo),
        (status = 400, description = "`invalid_connector_config`, `invalid_json`.", body = ConnectErrorBody),
        (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn patch_config(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ConnectResult<Json<ConnectorInfo>> {
    let changes = config_body(&s, &headers, body).await?;
    Ok(Json(s.connect.patch_config(&caller, &c, changes).await?))
}

/// A connector's status.
#[utoipa::path(get, path = "/v1/connectors/{connector}/status", tag = "connect", operation_id = "get_connector_status",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "describe"},
    ]))),
    summary = "Get a connector's status",
    params(("connector" = String, Path, description = "Connector name")),
    responses(
        (status = 200, description = "The connector's and its tasks' states, with the trace of a failure.", body = ConnectorStatus),
        (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn status(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
) -> ConnectResult<Json<ConnectorStatus>> {
    Ok(Json(s.connect.status(&caller, &c).await?))
}

/// A connector's tasks.
#[utoipa::path(get, path = "/v1/connectors/{connector}/tasks", tag = "connect", operation_id = "list_connector_tasks",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "describe"},
    ]))),
    summary = "List a connector's tasks",
    params(("connector" = String, Path, description = "Connector name")),
    responses(
        (status = 200, description = "Each task's id and config (secrets hidden).", body = Vec<TaskInfo>,
         example = json!([{"id": {"connector": "orders-file", "task": 0}, "config": {"connector.class": "FileStreamSource", "file": "/var/log/orders.log", "topic": "orders", "name": "orders-file"}}])),
        (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn tasks(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
) -> ConnectResult<Json<Vec<TaskInfo>>> {
    Ok(Json(s.connect.tasks(&caller, &c).await?))
}

/// A task's status.
#[utoipa::path(get, path = "/v1/connectors/{connector}/tasks/{task}/status", tag = "connect", operation_id = "get_connector_task_status",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "describe"},
    ]))),
    summary = "Get a task's status",
    params(("connector" = String, Path, description = "Connector name"), ("task" = u32, Path, description = "Task number")),
    responses(
        (status = 200, description = "The task's state.", body = TaskStateView,
         example = json!({"id": 0, "state": "FAILED", "worker_id": "127.0.0.1:8080", "trace": "TASK_PUT failed: connection refused"})),
        (status = 404, description = "`connector_not_found`, `task_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn task_status(
    State(s): State<AppState>,
    caller: Caller,
    Path((c, task)): Path<(String, u32)>,
) -> ConnectResult<Json<TaskStateView>> {
    Ok(Json(s.connect.task_status(&caller, &c, task).await?))
}

/// Restart a task.
#[utoipa::path(post, path = "/v1/connectors/{connector}/tasks/{task}/restart", tag = "connect", operation_id = "restart_connector_task",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "alter"},
    ]))),
    summary = "Restart a task",
    params(("connector" = String, Path, description = "Connector name"), ("task" = u32, Path, description = "Task number")),
    responses(
        (status = 204, description = "Restarted."),
        (status = 404, description = "`connector_not_found`, `task_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn restart_task(
    State(s): State<AppState>,
    caller: Caller,
    Path((c, task)): Path<(String, u32)>,
) -> ConnectResult<StatusCode> {
    s.connect.restart_task(&caller, &c, task).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query parameters of a connector restart.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RestartParams {
    /// Restart the tasks too (default false).
    #[serde(rename = "includeTasks")]
    #[param(rename = "includeTasks")]
    pub include_tasks: Option<bool>,
    /// Only what failed (default false).
    #[serde(rename = "onlyFailed")]
    #[param(rename = "onlyFailed")]
    pub only_failed: Option<bool>,
}

/// Restart a connector.
#[utoipa::path(post, path = "/v1/connectors/{connector}/restart", tag = "connect", operation_id = "restart_connector",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "alter"},
    ]))),
    summary = "Restart a connector",
    params(("connector" = String, Path, description = "Connector name"), RestartParams),
    responses(
        (status = 202, description = "With `includeTasks`: the status, with the restarting instances as `RESTARTING`.", body = ConnectorStatus),
        (status = 204, description = "The connector restarted."),
        (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn restart(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
    Params(p): Params<RestartParams>,
) -> ConnectResult<Response> {
    let status = s
        .connect
        .restart(
            &caller,
            &c,
            p.include_tasks.unwrap_or(false),
            p.only_failed.unwrap_or(false),
        )
        .await?;
    Ok(match status {
        Some(st) => (StatusCode::ACCEPTED, Json(st)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Pause a connector.
#[utoipa::path(put, path = "/v1/connectors/{connector}/pause", tag = "connect", operation_id = "pause_connector",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "alter"},
    ]))),
    summary = "Pause a connector",
    params(("connector" = String, Path, description = "Connector name")),
    responses((status = 202, description = "Pausing."), (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody)))]
pub async fn pause(State(s): State<AppState>, caller: Caller, Path(c): Path<String>) -> ConnectResult<StatusCode> {
    s.connect.pause(&caller, &c).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Resume a connector.
#[utoipa::path(put, path = "/v1/connectors/{connector}/resume", tag = "connect", operation_id = "resume_connector",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "alter"},
    ]))),
    summary = "Resume a connector",
    params(("connector" = String, Path, description = "Connector name")),
    responses((status = 202, description = "Resuming."), (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody)))]
pub async fn resume(State(s): State<AppState>, caller: Caller, Path(c): Path<String>) -> ConnectResult<StatusCode> {
    s.connect.resume(&caller, &c).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Stop a connector.
#[utoipa::path(put, path = "/v1/connectors/{connector}/stop", tag = "connect", operation_id = "stop_connector",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "alter"},
    ]))),
    summary = "Stop a connector",
    description = "Shuts its tasks down and keeps its config; its offsets can then be changed.",
    params(("connector" = String, Path, description = "Connector name")),
    responses((status = 204, description = "Stopped."), (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody)))]
pub async fn stop(State(s): State<AppState>, caller: Caller, Path(c): Path<String>) -> ConnectResult<StatusCode> {
    s.connect.stop(&caller, &c).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The topics a connector uses.
#[utoipa::path(get, path = "/v1/connectors/{connector}/topics", tag = "connect", operation_id = "list_connector_topics",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "describe"},
    ]))),
    summary = "List a connector's topics",
    params(("connector" = String, Path, description = "Connector name")),
    responses(
        (status = 200, description = "`{\"<connector>\": {\"topics\": […]}}`.", body = Object, example = json!({"orders-file": {"topics": ["orders"]}})),
        (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn topics(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
) -> ConnectResult<Json<ActiveTopics>> {
    Ok(Json(s.connect.topics(&caller, &c).await?))
}

/// Reset a connector's active topics.
#[utoipa::path(put, path = "/v1/connectors/{connector}/topics/reset", tag = "connect", operation_id = "reset_connector_topics",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "alter"},
    ]))),
    summary = "Reset a connector's topics",
    params(("connector" = String, Path, description = "Connector name")),
    responses((status = 202, description = "Accepted."), (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody)))]
pub async fn reset_topics(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
) -> ConnectResult<StatusCode> {
    s.connect.reset_topics(&caller, &c).await?;
    Ok(StatusCode::ACCEPTED)
}

/// A connector's offsets.
#[utoipa::path(get, path = "/v1/connectors/{connector}/offsets", tag = "connect", operation_id = "get_connector_offsets",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "describe"},
    ]))),
    summary = "Get a connector's offsets",
    params(("connector" = String, Path, description = "Connector name")),
    responses(
        (status = 200, description = "Per source partition (sources) or topic partition (sinks).", body = ConnectorOffsets),
        (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn offsets(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
) -> ConnectResult<Json<ConnectorOffsets>> {
    Ok(Json(s.connect.offsets(&caller, &c).await?))
}

/// A message answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    /// What happened.
    pub message: String,
}

/// Change a stopped connector's offsets.
#[utoipa::path(patch, path = "/v1/connectors/{connector}/offsets", tag = "connect", operation_id = "alter_connector_offsets",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "alter"},
    ]))),
    summary = "Alter a connector's offsets",
    description = "Only while the connector is STOPPED. An `offset` of `null` resets that partition.",
    params(("connector" = String, Path, description = "Connector name")),
    request_body(content = ConnectorOffsets, content_type = "application/json"),
    responses(
        (status = 200, description = "Altered.", body = Message, example = json!({"message": "The offsets for this connector have been altered successfully"})),
        (status = 400, description = "`connector_not_stopped`, `invalid_json`, `invalid_parameter`.", body = ConnectErrorBody),
        (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn alter_offsets(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ConnectResult<Json<Message>> {
    let change: ConnectorOffsets = json_body(&headers, body, s.broker.config().max_request_bytes).await?;
    let message = s.connect.alter_offsets(&caller, &c, change).await?;
    Ok(Json(Message { message }))
}

/// Reset a stopped connector's offsets.
#[utoipa::path(delete, path = "/v1/connectors/{connector}/offsets", tag = "connect", operation_id = "reset_connector_offsets",
    extensions(("x-weir-permissions" = json!([
        {"resource": "connector", "name": "{connector}", "operation": "alter"},
    ]))),
    summary = "Reset a connector's offsets",
    description = "Only while the connector is STOPPED: it starts from the beginning when resumed.",
    params(("connector" = String, Path, description = "Connector name")),
    responses(
        (status = 200, description = "Reset.", body = Message, example = json!({"message": "The offsets for this connector have been reset successfully"})),
        (status = 400, description = "`connector_not_stopped`.", body = ConnectErrorBody),
        (status = 404, description = "`connector_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn reset_offsets(
    State(s): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
) -> ConnectResult<Json<Message>> {
    let message = s.connect.reset_offsets(&caller, &c).await?;
    Ok(Json(Message { message }))
}

/// Query parameters of the plugin list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PluginParams {
    /// Only connectors (default true); false adds transforms and predicates.
    #[serde(rename = "connectorsOnly")]
    #[param(rename = "connectorsOnly")]
    pub connectors_only: Option<bool>,
}

/// List plugins.
#[utoipa::path(get, path = "/v1/connector-plugins", tag = "connect", operation_id = "list_connector_plugins",
    extensions(("x-weir-permissions" = json!([]))),
    summary = "List connector plugins",
    params(PluginParams),
    responses((status = 200, description = "Plugins with class, type and version.", body = Vec<PluginInfo>,
        example = json!([{"class": "org.apache.kafka.connect.file.FileStreamSourceConnector", "type": "source", "version": "0.1.0"}])),
        (status = 401, description = "`unauthenticated`.", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn plugins(
    State(s): State<AppState>,
    _caller: Caller,
    Params(p): Params<PluginParams>,
) -> Json<Vec<PluginInfo>> {
    Json(s.connect.plugins(p.connectors_only.unwrap_or(true)))
}

/// A plugin's config definition.
#[utoipa::path(get, path = "/v1/connector-plugins/{plugin}/config", tag = "connect", operation_id = "get_connector_plugin_config",
    extensions(("x-weir-permissions" = json!([]))),
    summary = "Describe a plugin's config",
    params(("plugin" = String, Path, description = "Class name or alias")),
    responses(
        (status = 200, description = "Every key with type, default, importance and documentation.", body = Vec<Definition>,
         example = json!([{"name": "file", "type": "STRING", "required": true, "default_value": null, "importance": "HIGH",
            "documentation": "The file to read, line by line.", "group": "Common", "width": "NONE", "display_name": "file", "dependents": [], "order": 1}])),
        (status = 404, description = "`plugin_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn plugin_config(
    State(s): State<AppState>,
    _caller: Caller,
    Path(p): Path<String>,
) -> ConnectResult<Json<Vec<Definition>>> {
    Ok(Json(s.connect.plugin_config(&p)?))
}

/// Validate a config.
#[utoipa::path(put, path = "/v1/connector-plugins/{plugin}/config/validate", tag = "connect", operation_id = "validate_connector_config",
    extensions(("x-weir-permissions" = json!([]))),
    summary = "Validate a connector config",
    description = "Every key's value, errors and recommended values, in Connect's shape; unknown keys are reported.",
    params(("plugin" = String, Path, description = "Class name or alias")),
    request_body(content = BTreeMap<String, String>, content_type = "application/json",
        example = json!({"connector.class": "FileStreamSource", "name": "x", "topic": "orders"})),
    responses(
        (status = 200, description = "The validation report (`error_count` 0 when valid).", body = Validation),
        (status = 400, description = "`invalid_json`.", body = ConnectErrorBody),
        (status = 404, description = "`plugin_not_found`.", body = ConnectErrorBody),
    ))]
pub async fn validate(
    State(s): State<AppState>,
    _caller: Caller,
    Path(p): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ConnectResult<Json<Validation>> {
    let config = present(config_body(&s, &headers, body).await?);
    Ok(Json(s.connect.validate(&p, &config)?))
}
