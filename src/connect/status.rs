//! Connector and task states, and the status, info and offsets shapes of Kafka Connect's REST
//! API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::RawConfig;
use super::plugin::Kind;

/// A connector's or task's state, as Connect names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Not started (yet).
    Unassigned,
    /// Moving data.
    Running,
    /// Paused: tasks keep their resources but move nothing.
    Paused,
    /// Stopped: tasks shut down, config kept.
    Stopped,
    /// Failed: see the trace.
    Failed,
    /// Being restarted.
    Restarting,
}

/// What a connector is asked to be (persisted; the state it resumes in after a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = TargetState)]
pub enum Target {
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Stopped.
    Stopped,
}

impl Target {
    /// The state a healthy connector in this target is in.
    pub fn state(self) -> State {
        match self {
            Self::Running => State::Running,
            Self::Paused => State::Paused,
            Self::Stopped => State::Stopped,
        }
    }
}

/// A connector's or task's state in a status answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StateView {
    /// The state.
    pub state: State,
    /// Where it runs (this server's address).
    pub worker_id: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// A task's state in a status answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskStateView {
    /// The task's number.
    pub id: u32,
    /// The state.
    pub state: State,
    /// Where it runs.
    pub worker_id: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// `GET /v1/connectors/{c}/status`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "orders-file", "connector": {"state": "RUNNING", "worker_id": "127.0.0.1:8080"},
    "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "127.0.0.1:8080"}], "type": "source"}))]
pub struct ConnectorStatus {
    /// The connector.
    pub name: String,
    /// The connector's own state.
    pub connector: StateView,
    /// Its tasks.
    pub tasks: Vec<TaskStateView>,
    /// `source` or `sink`.
    #[serde(rename = "type")]
    pub kind: Kind,
}

/// A task's id.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskId {
    /// The connector.
    pub connector: String,
    /// The task's number.
    pub task: u32,
}

/// `GET /v1/connectors/{c}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "orders-file", "config": {"connector.class": "FileStreamSource", "file": "/var/log/orders.log", "topic": "orders", "name": "orders-file"},
    "tasks": [{"connector": "orders-file", "task": 0}], "type": "source"}))]
pub struct ConnectorInfo {
    /// The connector.
    pub name: String,
    /// Its config (secrets shown as `[hidden]`).
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub config: RawConfig,
    /// Its tasks.
    pub tasks: Vec<TaskId>,
    /// `source` or `sink`.
    #[serde(rename = "type")]
    pub kind: Kind,
}

/// A task and its config, as `GET /v1/connectors/{c}/tasks` lists them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": {"connector": "orders-file", "task": 0}, "config": {"connector.class": "FileStreamSource", "file": "/var/log/orders.log", "topic": "orders", "name": "orders-file"}}))]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// Its config (secrets shown as `[hidden]`).
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub config: RawConfig,
}

/// One source partition's offset, or a sink's consumed position (`{"kafka_topic",
/// "kafka_partition"}` → `{"kafka_offset"}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PartitionOffsetEntry {
    /// Which part of the source (or which topic partition, for sinks).
    #[schema(value_type = Object)]
    pub partition: Value,
    /// How far it was read; `null` in a PATCH resets it.
    #[schema(value_type = Option<Object>)]
    pub offset: Value,
}

/// `GET /v1/connectors/{c}/offsets`, and the body of its PATCH.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"offsets": [{"partition": {"filename": "/var/log/orders.log"}, "offset": {"position": 4096}}]}))]
pub struct ConnectorOffsets {
    /// The offsets.
    pub offsets: Vec<PartitionOffsetEntry>,
}

/// A plugin in `GET /v1/connector-plugins`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"class": "org.apache.kafka.connect.file.FileStreamSourceConnector", "type": "source", "version": "0.1.0"}))]
pub struct PluginInfo {
    /// Its class name.
    pub class: String,
    /// `source`, `sink`, `transformation` or `predicate`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its version.
    pub version: String,
}

/// The topics a connector used, `{"<connector>": {"topics": [...]}}`.
pub type ActiveTopics = BTreeMap<String, BTreeMap<String, Vec<String>>>;
