//! The supervisor: connector configs and target states (persisted in the state table
//! `connect/connectors`), their tasks (each a supervised async task: a panic or error fails
//! that task only), restarts with optional backoff, and the operations behind the REST API.
//! Every operation authorizes the caller on the `connector` resource.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::common::{Common, common_def};
use super::config::{ConfigDef, KeyReport, Parsed, RawConfig, Validation, ValueReport};
use super::connectors;
use super::metrics::TaskMetrics;
use super::plugin::{Connector, Kind, SourceContext, names};
use super::status::{
    ActiveTopics, ConnectorInfo, ConnectorOffsets, ConnectorStatus, PartitionOffsetEntry, PluginInfo, State, StateView,
    Target, TaskId, TaskInfo, TaskStateView,
};
use super::transforms::{Chain, predicate_plugins, transform_plugins};
use super::worker::{
    Ended, StatusCell, TaskRun, TaskStatus, offsets_table, partition_key, run_sink, run_source, sink_group,
};
use crate::broker::caller::{self, PatternType, grants_within};
use crate::broker::groups::PartitionOffset;
use crate::broker::{Broker, Caller, Durability, Operation, Permission, Principal, Resource, StateTable, StateWrite};
use crate::error::{Error, ErrorCode, Result};

/// The namespace of the runtime's own tables.
const NAMESPACE: &str = "connect";

/// A connector as stored: what survives a restart of Weir.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    config: RawConfig,
    target: Target,
    grants: Vec<Permission>,
}

struct Task {
    status: StatusCell,
    handle: JoinHandle<()>,
}

struct Entry {
    stored: Stored,
    plugin: Arc<dyn Connector>,
    state: State,
    trace: Option<String>,
    task_configs: Vec<RawConfig>,
    tasks: Vec<Task>,
    target: watch::Sender<Target>,
}

/// A connector to create.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// Its name.
    pub name: String,
    /// Its config.
    pub config: RawConfig,
    /// The state it starts in (default `RUNNING`).
    pub initial_state: Option<Target>,
}

/// The connector runtime. Cheap to clone.
#[derive(Clone)]
pub struct Connect {
    inner: Arc<Inner>,
}

struct Inner {
    broker: Broker,
    plugins: Vec<Arc<dyn Connector>>,
    connectors: tokio::sync::Mutex<BTreeMap<String, Entry>>,
    worker_id: String,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("worker_id", &self.inner.worker_id)
            .finish()
    }
}

fn table() -> StateTable {
    StateTable::new(NAMESPACE, "connectors").expect("a valid table name")
}

fn not_found(name: &str) -> Error {
    Error::new(ErrorCode::ConnectorNotFound, format!("Connector {name} not found")).with_field("connector")
}

fn invalid(messages: Vec<String>, field: Option<&str>) -> Error {
    let n = messages.len();
    let mut e = Error::new(
        ErrorCode::InvalidConnectorConfig,
        format!(
            "Connector configuration is invalid and contains the following {n} error(s):\n{}\nYou can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`",
            messages.join("\n")
        ),
    );
    if let Some(f) = field {
        e = e.with_field(format!("config.{f}"));
    }
    e
}

impl Connect {
    /// Starts the runtime: loads the stored connectors and starts each in its stored state.
    /// It stops with the broker (registered as one of its runtimes).
    pub async fn start(broker: Broker) -> Result<Self> {
        let connect = Self {
            inner: Arc::new(Inner {
                worker_id: broker.config().listen.to_string(),
                broker: broker.clone(),
                plugins: connectors::all(),
                connectors: tokio::sync::Mutex::new(BTreeMap::new()),
            }),
        };
        let mut stored = Vec::new();
        broker.state_scan_prefix(&Caller::internal(), &table(), b"", |k, v| {
            stored.push((String::from_utf8_lossy(k).into_owned(), v.to_vec()));
            true
        })?;
        {
            let mut map = connect.inner.connectors.lock().await;
            for (name, raw) in stored {
                match serde_json::from_slice::<Stored>(&raw) {
                    Ok(s) => connect.install(&mut map, &name, s),
                    Err(e) => tracing::error!(connector = %name, error = %e, "unreadable stored connector skipped"),
                }
            }
            tracing::info!(connectors = map.len(), "connect runtime started");
        }
        let c = connect.clone();
        let shutdown = broker.shutdown_token();
        broker.register_runtime(tokio::spawn(async move {
            shutdown.cancelled().await;
            c.shutdown().await;
        }));
        Ok(connect)
    }

    /// Stops every task (on server shutdown): their last transactions are complete before the
    /// log writer stops.
    async fn shutdown(&self) {
        let mut map = self.inner.connectors.lock().await;
        // Every task is told first, then all are awaited together: a slow one delays the
        // shutdown by its own grace period, not by the sum of everyone's.
        for entry in map.values_mut() {
            entry.target.send_replace(Target::Stopped);
        }
        futures::future::join_all(map.values_mut().map(stop_tasks)).await;
        tracing::info!("connect runtime stopped");
    }

    fn plugin(&self, name: &str) -> Result<Arc<dyn Connector>> {
        self.inner
            .plugins
            .iter()
            .find(|p| names(p.as_ref(), name))
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::PluginNotFound,
                    format!("Failed to find any class that implements Connector and which name matches {name}"),
                )
                .with_field("connector.class")
            })
    }

    /// The full definition of a plugin's config: the common keys and its own.
    fn definition(plugin: &dyn Connector) -> ConfigDef {
        common_def(plugin.kind()).with(plugin.config_def().keys().iter().cloned())
    }

    // ---- plugins ----

    /// `GET /v1/connector-plugins`: connectors, and with `connectors_only = false` also
    /// transforms and predicates.
    pub fn plugins(&self, connectors_only: bool) -> Vec<PluginInfo> {
        let mut out: Vec<PluginInfo> = self
            .inner
            .plugins
            .iter()
            .map(|p| PluginInfo {
                class: p.class().to_owned(),
                kind: match p.kind() {
                    Kind::Source => "source".into(),
                    Kind::Sink => "sink".into(),
                },
                version: p.version().to_owned(),
            })
            .collect();
        if !connectors_only {
            let version = env!("CARGO_PKG_VERSION").to_owned();
            out.extend(transform_plugins().into_iter().map(|t| PluginInfo {
                class: t.class.to_owned(),
                kind: "transformation".into(),
                version: version.clone(),
            }));
            out.extend(predicate_plugins().into_iter().map(|p| PluginInfo {
                class: p.class.to_owned(),
                kind: "predicate".into(),
                version: version.clone(),
            }));
        }
        out
    }

    /// `GET /v1/connector-plugins/{p}/config`.
    pub fn plugin_config(&self, plugin: &str) -> Result<Vec<super::config::Definition>> {
        if let Ok(p) = self.plugin(plugin) {
            return Ok(Self::definition(p.as_ref()).definitions());
        }
        if let Some(t) = transform_plugins()
            .into_iter()
            .find(|t| t.class == plugin || t.aliases.contains(&plugin))
        {
            return Ok((t.config)().definitions());
        }
        if let Some(p) = predicate_plugins()
            .into_iter()
            .find(|p| p.class == plugin || p.aliases.contains(&plugin))
        {
            return Ok((p.config)().definitions());
        }
        Err(self.plugin(plugin).err().expect("no plugin found"))
    }

    /// `PUT /v1/connector-plugins/{p}/config/validate`: every key's value and errors.
    pub fn validate(&self, plugin: &str, config: &RawConfig) -> Result<Validation> {
        let p = self.plugin(plugin)?;
        Ok(self.check(p.as_ref(), config))
    }

    /// Validates a config with the plugin's definition, its transforms and predicates, and its
    /// own cross-key checks.
    fn check(&self, plugin: &dyn Connector, config: &RawConfig) -> Validation {
        let def = Self::definition(plugin);
        let mut v = def.validate(plugin.class(), config);
        let mut extra: Vec<(String, String)> = Vec::new();
        if let Err(problems) = Chain::build(config) {
            extra.extend(problems);
        }
        if plugin.kind() == Kind::Sink {
            let topics = config.get("topics").is_some_and(|t| !t.trim().is_empty());
            let regex = config.get("topics.regex").is_some_and(|t| !t.trim().is_empty());
            if topics == regex {
                extra.push(("topics".into(), "Must configure one of topics or topics.regex".into()));
            }
        }
        if v.error_count == 0 && extra.is_empty() {
            match Parsed::new(&def, config) {
                Ok(parsed) => extra.extend(plugin.validate(&parsed)),
                Err(e) => extra.push(("connector.class".into(), e)),
            }
        }
        for (key, message) in extra {
            add_error(&mut v, &key, config.get(&key), message);
        }
        v
    }

    // ---- lifecycle ----

    /// Creates a connector (`409` if one of that name exists) and starts it.
    pub async fn create(&self, caller: &Caller, req: CreateRequest) -> Result<ConnectorInfo> {
        caller::authorize(caller, Operation::Create, Resource::Connector, &req.name)?;
        validate_name(&req.name)?;
        let mut config = req.config;
        check_name_key(&req.name, &mut config)?;
        let plugin = self.plugin(config.get("connector.class").map_or("", String::as_str))?;
        let stored = self.admit(
            caller,
            plugin.as_ref(),
            &req.name,
            config,
            req.initial_state.unwrap_or(Target::Running),
        )?;
        let mut map = self.inner.connectors.lock().await;
        if map.contains_key(&req.name) {
            return Err(Error::new(
                ErrorCode::ConnectorAlreadyExists,
                format!("Connector {} already exists", req.name),
            )
            .with_field("name"));
        }
        self.persist(&req.name, Some(&stored)).await?;
        self.inner
            .broker
            .audit(caller, "connector.create", Resource::Connector, &req.name);
        self.install(&mut map, &req.name, stored);
        Ok(info_of(&req.name, &map[&req.name]))
    }

    /// Checks a config and works out the grants of the connector's principal: refused when it
    /// is invalid or needs more than the creator holds.
    fn admit(
        &self,
        caller: &Caller,
        plugin: &dyn Connector,
        name: &str,
        config: RawConfig,
        target: Target,
    ) -> Result<Stored> {
        let v = self.check(plugin, &config);
        if v.error_count > 0 {
            return Err(invalid(v.messages(), v.first_error_key()));
        }
        let parsed = Parsed::new(&Self::definition(plugin), &config).map_err(|e| invalid(vec![e], None))?;
        let grants = self.grants(plugin, name, &parsed, &config);
        grants_within(caller, &grants)?;
        Ok(Stored { config, target, grants })
    }

    /// The grants of a connector's principal: exactly the topics and group its config names (for
    /// a source, the topics its transforms may route records to as well). With authentication
    /// off every caller may do everything, connectors too.
    fn grants(&self, plugin: &dyn Connector, name: &str, p: &Parsed, config: &RawConfig) -> Vec<Permission> {
        if !self.inner.broker.auth_enabled() {
            return [Resource::Topic, Resource::Group]
                .into_iter()
                .map(|resource| Permission {
                    resource,
                    name: String::new(),
                    pattern: PatternType::Prefix,
                    operations: vec![
                        Operation::Read,
                        Operation::Write,
                        Operation::Create,
                        Operation::Describe,
                    ],
                })
                .collect();
        }
        let common = Common::new(p);
        let mut grants = Vec::new();
        let topic = |t: &str, ops: &[Operation]| match t.strip_suffix('*') {
            Some(prefix) => Permission {
                resource: Resource::Topic,
                name: prefix.to_owned(),
                pattern: PatternType::Prefix,
                operations: ops.to_vec(),
            },
            None => Permission::literal(Resource::Topic, t, ops),
        };
        match plugin.kind() {
            Kind::Source => {
                let topics = plugin.source_topics(p);
                let routed = Chain::build(config).map(|chain| chain.topics_out(topics.clone()));
                for t in routed.unwrap_or(topics) {
                    grants.push(topic(&t, &[Operation::Write, Operation::Create]));
                }
            }
            Kind::Sink => {
                if common.topics_regex.is_some() {
                    grants.push(topic("*", &[Operation::Read]));
                }
                for t in &common.topics {
                    grants.push(topic(t, &[Operation::Read]));
                }
                grants.push(Permission::literal(
                    Resource::Group,
                    sink_group(name),
                    &[Operation::Read],
                ));
            }
        }
        if let Some(dlq) = &common.dlq_topic {
            grants.push(topic(dlq, &[Operation::Write, Operation::Create]));
        }
        grants
    }

    async fn persist(&self, name: &str, stored: Option<&Stored>) -> Result<()> {
        let write = match stored {
            Some(s) => StateWrite::Put {
                table: table(),
                key: name.as_bytes().to_vec(),
                value: serde_json::to_vec(s).map_err(Error::internal)?,
            },
            None => StateWrite::Delete {
                table: table(),
                key: name.as_bytes().to_vec(),
            },
        };
        self.inner
            .broker
            .state_write(&Caller::internal(), vec![write], Durability::Fsync)
            .await
    }

    /// Puts a connector in the map and starts it in its target state.
    fn install(&self, map: &mut BTreeMap<String, Entry>, name: &str, stored: Stored) {
        let plugin = match self.plugin(stored.config.get("connector.class").map_or("", String::as_str)) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(connector = %name, error = %e.detail, "stored connector's plugin is gone");
                return;
            }
        };
        let (target, _) = watch::channel(stored.target);
        let mut entry = Entry {
            stored,
            plugin,
            state: State::Unassigned,
            trace: None,
            task_configs: Vec::new(),
            tasks: Vec::new(),
            target,
        };
        self.start_tasks(name, &mut entry);
        map.insert(name.to_owned(), entry);
    }

    /// Splits the connector into task configs and starts them (in its target state).
    fn start_tasks(&self, name: &str, entry: &mut Entry) {
        entry.tasks.clear();
        entry.trace = None;
        let target = entry.stored.target;
        if target == Target::Stopped {
            entry.state = State::Stopped;
            entry.task_configs.clear();
            return;
        }
        let def = Self::definition(entry.plugin.as_ref());
        let configs = Parsed::new(&def, &entry.stored.config).and_then(|p| {
            let max = Common::new(&p).tasks_max;
            entry.plugin.task_configs(&p, max)
        });
        match configs {
            Ok(configs) => {
                entry.task_configs = configs;
                entry.state = target.state();
            }
            Err(e) => {
                entry.state = State::Failed;
                entry.trace = Some(e);
                return;
            }
        }
        entry.target.send_replace(target);
        for (i, cfg) in entry.task_configs.clone().into_iter().enumerate() {
            let task = self.spawn_task(name, entry, i as u32, cfg);
            entry.tasks.push(task);
        }
    }

    fn caller_of(name: &str, stored: &Stored) -> Caller {
        Caller::with(Principal::Connector { name: name.to_owned() }, stored.grants.clone())
    }

    /// Starts one supervised task.
    fn spawn_task(&self, name: &str, entry: &Entry, id: u32, config: RawConfig) -> Task {
        let status: StatusCell = Arc::new(Mutex::new(TaskStatus {
            state: State::Unassigned,
            trace: None,
        }));
        let ctx = TaskSpawn {
            broker: self.inner.broker.clone(),
            caller: Self::caller_of(name, &entry.stored),
            connector: name.to_owned(),
            task: id,
            config,
            plugin: entry.plugin.clone(),
            status: status.clone(),
            target: entry.target.subscribe(),
        };
        Task {
            status,
            handle: tokio::spawn(supervise(ctx)),
        }
    }

    async fn entry<T>(&self, caller: &Caller, op: Operation, name: &str, f: impl FnOnce(&mut Entry) -> T) -> Result<T> {
        caller::authorize(caller, op, Resource::Connector, name)?;
        let mut map = self.inner.connectors.lock().await;
        let entry = map.get_mut(name).ok_or_else(|| not_found(name))?;
        Ok(f(entry))
    }

    /// Lists the connectors the caller may describe.
    pub async fn list(&self, caller: &Caller) -> Vec<String> {
        let map = self.inner.connectors.lock().await;
        map.keys()
            .filter(|n| caller::authorize(caller, Operation::Describe, Resource::Connector, n).is_ok())
            .cloned()
            .collect()
    }

    /// A connector's name, config (secrets masked), tasks and type.
    pub async fn info(&self, caller: &Caller, name: &str) -> Result<ConnectorInfo> {
        self.entry(caller, Operation::Describe, name, |e| info_of(name, e))
            .await
    }

    /// A connector's config (secrets masked).
    pub async fn config(&self, caller: &Caller, name: &str) -> Result<RawConfig> {
        self.entry(caller, Operation::Describe, name, |e| masked(e, &e.stored.config))
            .await
    }

    /// A connector's state and its tasks' states.
    pub async fn status(&self, caller: &Caller, name: &str) -> Result<ConnectorStatus> {
        let worker = self.inner.worker_id.clone();
        self.entry(caller, Operation::Describe, name, |e| status_of(name, e, &worker))
            .await
    }

    /// A connector's tasks with their configs (secrets masked).
    pub async fn tasks(&self, caller: &Caller, name: &str) -> Result<Vec<TaskInfo>> {
        self.entry(caller, Operation::Describe, name, |e| {
            e.task_configs
                .iter()
                .enumerate()
                .map(|(i, c)| TaskInfo {
                    id: TaskId {
                        connector: name.to_owned(),
                        task: i as u32,
                    },
                    config: masked(e, &unresolved(&e.stored.config, c)),
                })
                .collect()
        })
        .await
    }

    /// One task's state.
    pub async fn task_status(&self, caller: &Caller, name: &str, task: u32) -> Result<TaskStateView> {
        let worker = self.inner.worker_id.clone();
        self.entry(caller, Operation::Describe, name, |e| {
            status_of(name, e, &worker)
                .tasks
                .into_iter()
                .find(|t| t.id == task)
                .ok_or_else(|| task_not_found(name, task))
        })
        .await?
    }

    /// Creates or replaces a connector's config (`true` when it was created). The tasks restart
    /// with the new config.
    pub async fn put_config(
        &self,
        caller: &Caller,
        name: &str,
        mut config: RawConfig,
    ) -> Result<(bool, ConnectorInfo)> {
        validate_name(name)?;
        check_name_key(name, &mut config)?;
        let exists = self.inner.connectors.lock().await.contains_key(name);
        if !exists {
            let info = self
                .create(
                    caller,
                    CreateRequest {
                        name: name.to_owned(),
                        config,
                        initial_state: None,
                    },
                )
                .await?;
            return Ok((true, info));
        }
        caller::authorize(caller, Operation::Alter, Resource::Connector, name)?;
        let plugin = self.plugin(config.get("connector.class").map_or("", String::as_str))?;
        let mut map = self.inner.connectors.lock().await;
        let entry = map.get_mut(name).ok_or_else(|| not_found(name))?;
        let stored = self.admit(caller, plugin.as_ref(), name, config, entry.stored.target)?;
        self.persist(name, Some(&stored)).await?;
        stop_tasks(entry).await;
        entry.stored = stored;
        entry.plugin = plugin;
        self.start_tasks(name, entry);
        self.inner
            .broker
            .audit(caller, "connector.alter", Resource::Connector, name);
        Ok((false, info_of(name, entry)))
    }

    /// Merges changes into a connector's config (`None` removes a key) and restarts its tasks.
    pub async fn patch_config(
        &self,
        caller: &Caller,
        name: &str,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorInfo> {
        let mut config = self
            .entry(caller, Operation::Alter, name, |e| e.stored.config.clone())
            .await?;
        for (k, v) in changes {
            match v {
                Some(v) => config.insert(k, v),
                None => config.remove(&k),
            };
        }
        Ok(self.put_config(caller, name, config).await?.1)
    }

    /// Deletes a connector: its tasks stop, its config, offsets and (sinks) group offsets go,
    /// so a connector created again with the same name starts fresh.
    pub async fn delete(&self, caller: &Caller, name: &str) -> Result<()> {
        caller::authorize(caller, Operation::Delete, Resource::Connector, name)?;
        let mut entry = {
            let mut map = self.inner.connectors.lock().await;
            map.remove(name).ok_or_else(|| not_found(name))?
        };
        entry.target.send_replace(Target::Stopped);
        stop_tasks(&mut entry).await;
        self.persist(name, None).await?;
        self.clear_offsets(name, entry.plugin.kind()).await?;
        self.inner
            .broker
            .audit(caller, "connector.delete", Resource::Connector, name);
        Ok(())
    }

    async fn clear_offsets(&self, name: &str, kind: Kind) -> Result<()> {
        let internal = Caller::internal();
        match kind {
            Kind::Source => {
                self.inner
                    .broker
                    .state_write(
                        &internal,
                        vec![StateWrite::DeleteNamespace {
                            namespace: format!("connector:{name}"),
                        }],
                        Durability::Fsync,
                    )
                    .await
            }
            Kind::Sink => match self.inner.broker.delete_group(&internal, &sink_group(name)).await {
                Err(e) if e.code != ErrorCode::GroupNotFound => Err(e),
                _ => Ok(()),
            },
        }
    }

    /// Moves a connector to a target state and persists it.
    async fn set_target(&self, caller: &Caller, name: &str, target: Target) -> Result<()> {
        caller::authorize(caller, Operation::Alter, Resource::Connector, name)?;
        let mut map = self.inner.connectors.lock().await;
        let entry = map.get_mut(name).ok_or_else(|| not_found(name))?;
        let was = entry.stored.target;
        entry.stored.target = target;
        self.persist(name, Some(&entry.stored)).await?;
        match (was, target) {
            (Target::Stopped, Target::Running | Target::Paused) => self.start_tasks(name, entry),
            (_, Target::Stopped) => {
                entry.target.send_replace(Target::Stopped);
                stop_tasks(entry).await;
                entry.state = State::Stopped;
                entry.task_configs.clear();
            }
            (_, t) => {
                entry.target.send_replace(t);
                if entry.state != State::Failed {
                    entry.state = t.state();
                }
            }
        }
        let action = match target {
            Target::Running => "connector.resume",
            Target::Paused => "connector.pause",
            Target::Stopped => "connector.stop",
        };
        self.inner.broker.audit(caller, action, Resource::Connector, name);
        Ok(())
    }

    /// Pauses a connector.
    pub async fn pause(&self, caller: &Caller, name: &str) -> Result<()> {
        self.set_target(caller, name, Target::Paused).await
    }

    /// Resumes a paused or stopped connector.
    pub async fn resume(&self, caller: &Caller, name: &str) -> Result<()> {
        self.set_target(caller, name, Target::Running).await
    }

    /// Stops a connector: its tasks shut down, its config stays.
    pub async fn stop(&self, caller: &Caller, name: &str) -> Result<()> {
        self.set_target(caller, name, Target::Stopped).await
    }

    /// Restarts one task.
    pub async fn restart_task(&self, caller: &Caller, name: &str, task: u32) -> Result<()> {
        caller::authorize(caller, Operation::Alter, Resource::Connector, name)?;
        let mut map = self.inner.connectors.lock().await;
        let entry = map.get_mut(name).ok_or_else(|| not_found(name))?;
        let cfg = entry
            .task_configs
            .get(task as usize)
            .cloned()
            .ok_or_else(|| task_not_found(name, task))?;
        let old = &entry.tasks[task as usize];
        old.handle.abort();
        let fresh = self.spawn_task(name, entry, task, cfg);
        entry.tasks[task as usize] = fresh;
        Ok(())
    }

    /// Restarts a connector, and with `include_tasks` its tasks (with `only_failed`, only the
    /// failed ones). Returns the status with the restarting ones as `RESTARTING` when tasks are
    /// involved, as Connect's 202 answer does.
    pub async fn restart(
        &self,
        caller: &Caller,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<ConnectorStatus>> {
        caller::authorize(caller, Operation::Alter, Resource::Connector, name)?;
        let worker = self.inner.worker_id.clone();
        let mut map = self.inner.connectors.lock().await;
        let entry = map.get_mut(name).ok_or_else(|| not_found(name))?;
        let failed = |s: &StatusCell| s.lock().expect("task status lock").state == State::Failed;
        if !include_tasks {
            if !only_failed || entry.state == State::Failed {
                stop_tasks(entry).await;
                self.start_tasks(name, entry);
            }
            return Ok(None);
        }
        let mut restarting = BTreeSet::new();
        for (i, t) in entry.tasks.iter().enumerate() {
            if !only_failed || failed(&t.status) {
                restarting.insert(i as u32);
            }
        }
        let mut status = status_of(name, entry, &worker);
        for t in &mut status.tasks {
            if restarting.contains(&t.id) {
                t.state = State::Restarting;
                t.trace = None;
            }
        }
        if !only_failed || entry.state == State::Failed {
            status.connector.state = State::Restarting;
            stop_tasks(entry).await;
            self.start_tasks(name, entry);
        } else {
            for i in restarting {
                let cfg = entry.task_configs[i as usize].clone();
                entry.tasks[i as usize].handle.abort();
                let fresh = self.spawn_task(name, entry, i, cfg);
                entry.tasks[i as usize] = fresh;
            }
        }
        Ok(Some(status))
    }

    /// The topics a connector uses, `{"<name>": {"topics": […]}}`.
    pub async fn topics(&self, caller: &Caller, name: &str) -> Result<ActiveTopics> {
        let topics = self
            .entry(caller, Operation::Describe, name, |e| {
                let def = Self::definition(e.plugin.as_ref());
                let Ok(p) = Parsed::new(&def, &e.stored.config) else {
                    return Vec::new();
                };
                match e.plugin.kind() {
                    Kind::Source => e.plugin.source_topics(&p),
                    Kind::Sink => Common::new(&p).topics,
                }
            })
            .await?;
        let mut inner = BTreeMap::new();
        inner.insert("topics".to_owned(), topics);
        Ok([(name.to_owned(), inner)].into_iter().collect())
    }

    /// `PUT …/topics/reset`: accepted (Weir derives the topics from the config, so there is no
    /// history to forget).
    pub async fn reset_topics(&self, caller: &Caller, name: &str) -> Result<()> {
        self.entry(caller, Operation::Alter, name, |_| ()).await
    }

    /// A connector's offsets: a source's per source partition, a sink's per topic partition.
    pub async fn offsets(&self, caller: &Caller, name: &str) -> Result<ConnectorOffsets> {
        let kind = self
            .entry(caller, Operation::Describe, name, |e| e.plugin.kind())
            .await?;
        let internal = Caller::internal();
        let mut offsets = Vec::new();
        match kind {
            Kind::Source => {
                self.inner
                    .broker
                    .state_scan_prefix(&internal, &offsets_table(name), b"", |k, v| {
                        if let (Ok(p), Ok(o)) = (serde_json::from_slice(k), serde_json::from_slice(v)) {
                            offsets.push(PartitionOffsetEntry {
                                partition: p,
                                offset: o,
                            });
                        }
                        true
                    })?;
            }
            Kind::Sink => match self.inner.broker.describe_group(&internal, &sink_group(name)) {
                Ok(d) => offsets.extend(d.partitions.iter().filter_map(|p| {
                    Some(PartitionOffsetEntry {
                        partition: serde_json::json!({"kafka_topic": p.topic, "kafka_partition": p.partition}),
                        offset: serde_json::json!({"kafka_offset": p.committed_offset?}),
                    })
                })),
                Err(e) if e.code == ErrorCode::GroupNotFound => {}
                Err(e) => return Err(e),
            },
        }
        Ok(ConnectorOffsets { offsets })
    }

    /// Changes offsets of a stopped connector (`offset: null` resets a partition).
    pub async fn alter_offsets(&self, caller: &Caller, name: &str, change: ConnectorOffsets) -> Result<String> {
        let kind = self.stopped_kind(caller, name).await?;
        let internal = Caller::internal();
        match kind {
            Kind::Source => {
                let table = offsets_table(name);
                let writes = change
                    .offsets
                    .iter()
                    .map(|e| match &e.offset {
                        Value::Null => StateWrite::Delete {
                            table: table.clone(),
                            key: partition_key(&e.partition),
                        },
                        o => StateWrite::Put {
                            table: table.clone(),
                            key: partition_key(&e.partition),
                            value: o.to_string().into_bytes(),
                        },
                    })
                    .collect();
                self.inner
                    .broker
                    .state_write(&internal, writes, Durability::Fsync)
                    .await?;
            }
            Kind::Sink => self.alter_sink_offsets(name, &change).await?,
        }
        Ok("The offsets for this connector have been altered successfully".into())
    }

    async fn alter_sink_offsets(&self, name: &str, change: &ConnectorOffsets) -> Result<()> {
        let broker = &self.inner.broker;
        let mut explicit = Vec::new();
        for (i, e) in change.offsets.iter().enumerate() {
            let field = |f: &str| format!("offsets[{i}].{f}");
            let topic = e.partition["kafka_topic"].as_str().ok_or_else(|| {
                Error::invalid_parameter(
                    &field("partition"),
                    "a sink's partition is {\"kafka_topic\", \"kafka_partition\"}",
                )
            })?;
            let partition = e.partition["kafka_partition"].as_u64().ok_or_else(|| {
                Error::invalid_parameter(&field("partition"), "kafka_partition must be a partition number")
            })? as u32;
            let offset = match &e.offset {
                Value::Null => {
                    let t = broker.describe_topic(&Caller::internal(), topic)?;
                    t.partitions
                        .get(partition as usize)
                        .map_or(0, |(_, s)| s.earliest_offset)
                }
                o => o["kafka_offset"].as_u64().ok_or_else(|| {
                    Error::invalid_parameter(&field("offset"), "a sink's offset is {\"kafka_offset\": n}")
                })?,
            };
            explicit.push(PartitionOffset {
                topic: topic.to_owned(),
                partition,
                offset,
            });
        }
        broker
            .reset_offsets(
                &Caller::internal(),
                &sink_group(name),
                None,
                Some(explicit),
                None,
                false,
            )
            .await
            .map(|_| ())
    }

    /// Resets every offset of a stopped connector.
    pub async fn reset_offsets(&self, caller: &Caller, name: &str) -> Result<String> {
        let kind = self.stopped_kind(caller, name).await?;
        self.clear_offsets(name, kind).await?;
        Ok("The offsets for this connector have been reset successfully".into())
    }

    async fn stopped_kind(&self, caller: &Caller, name: &str) -> Result<Kind> {
        self.entry(caller, Operation::Alter, name, |e| {
            if e.stored.target == Target::Stopped {
                Ok(e.plugin.kind())
            } else {
                Err(Error::new(
                    ErrorCode::ConnectorNotStopped,
                    format!("Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"),
                ))
            }
        })
        .await?
    }
}

/// Connector names: 1–255 printable characters without `/` (they appear in paths and keys).
fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 255 || name.contains('/') || name.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorCode::InvalidConnectorConfig,
            "connector names are 1 to 255 printable characters, without '/'",
        )
        .with_field("name"));
    }
    Ok(())
}

/// The config's `name` must be the connector's name (filled in when absent).
fn check_name_key(name: &str, config: &mut RawConfig) -> Result<()> {
    match config.get("name") {
        Some(n) if n != name => Err(Error::new(
            ErrorCode::InvalidConnectorConfig,
            format!("Connector name configuration ({n}) doesn't match connector name in the URL ({name})"),
        )
        .with_field("config.name")),
        Some(_) => Ok(()),
        None => {
            config.insert("name".into(), name.to_owned());
            Ok(())
        }
    }
}

fn task_not_found(name: &str, task: u32) -> Error {
    Error::new(ErrorCode::TaskNotFound, format!("Task {name}-{task} not found")).with_field("task")
}

/// A task's config with the secret references of the connector's config put back where the
/// task got their resolved values (a task config is derived from resolved values).
fn unresolved(stored: &RawConfig, task: &RawConfig) -> RawConfig {
    task.iter()
        .map(|(k, v)| match stored.get(k) {
            Some(s) if super::config::is_reference(s) => (k.clone(), s.clone()),
            _ => (k.clone(), v.clone()),
        })
        .collect()
}

fn masked(e: &Entry, config: &RawConfig) -> RawConfig {
    Connect::definition(e.plugin.as_ref()).masked(config)
}

fn info_of(name: &str, e: &Entry) -> ConnectorInfo {
    ConnectorInfo {
        name: name.to_owned(),
        config: masked(e, &e.stored.config),
        tasks: (0..e.task_configs.len() as u32)
            .map(|task| TaskId {
                connector: name.to_owned(),
                task,
            })
            .collect(),
        kind: e.plugin.kind(),
    }
}

fn status_of(name: &str, e: &Entry, worker: &str) -> ConnectorStatus {
    ConnectorStatus {
        name: name.to_owned(),
        connector: StateView {
            state: e.state,
            worker_id: worker.to_owned(),
            trace: e.trace.clone(),
        },
        tasks: e
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let s = t.status.lock().expect("task status lock");
                TaskStateView {
                    id: i as u32,
                    state: s.state,
                    worker_id: worker.to_owned(),
                    trace: s.trace.clone(),
                }
            })
            .collect(),
        kind: e.plugin.kind(),
    }
}

/// Adds an error to a validation answer, on the key's entry (made when the key is not defined).
fn add_error(v: &mut Validation, key: &str, value: Option<&String>, message: String) {
    v.error_count += 1;
    if let Some(c) = v.configs.iter_mut().find(|c| c.value.name == key) {
        c.value.errors.push(message);
        return;
    }
    let mut definition = super::config::ConfigKey::optional("", super::config::Type::String, "", "").definition(0);
    definition.name = key.to_owned();
    definition.display_name = key.to_owned();
    definition.group = "Transforms".into();
    v.configs.push(KeyReport {
        definition,
        value: ValueReport {
            name: key.to_owned(),
            value: value.cloned(),
            recommended_values: Vec::new(),
            errors: vec![message],
            visible: true,
        },
    });
}

/// Stops a connector's tasks: each has until 10 s from now to end by itself (its current
/// batch finished and committed), then it is aborted.
async fn stop_tasks(entry: &mut Entry) {
    entry.target.send_replace(Target::Stopped);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for t in entry.tasks.drain(..) {
        let abort = t.handle.abort_handle();
        if tokio::time::timeout_at(deadline, t.handle).await.is_err() {
            abort.abort();
        }
    }
}

/// What a supervised task needs to start (again).
struct TaskSpawn {
    broker: Broker,
    caller: Caller,
    connector: String,
    task: u32,
    config: RawConfig,
    plugin: Arc<dyn Connector>,
    status: StatusCell,
    target: watch::Receiver<Target>,
}

/// Runs a task; a panic or an error fails this task only. With `restart.on.failure` a failed
/// task is started again after a backoff that doubles from 1 s up to `restart.backoff.max.ms`.
async fn supervise(s: TaskSpawn) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let ended = std::panic::AssertUnwindSafe(run_task(&s)).catch_unwind().await;
        let trace = match ended {
            Ok(Ended::Stopped) => {
                set_status(&s.status, State::Unassigned, None);
                return;
            }
            Ok(Ended::Failed(trace)) => trace,
            Err(panic) => format!("the task panicked: {}", panic_message(&panic)),
        };
        tracing::error!(connector = %s.connector, task = s.task, trace = %trace, "connector task failed");
        set_status(&s.status, State::Failed, Some(trace));
        let restart = restart_policy(&s);
        let Some(max) = restart else { return };
        let mut target = s.target.clone();
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = target.wait_for(|t| *t == Target::Stopped) => return,
        }
        backoff = (backoff * 2).min(max);
        set_status(&s.status, State::Restarting, None);
    }
}

/// The longest restart backoff, when the task restarts automatically.
fn restart_policy(s: &TaskSpawn) -> Option<Duration> {
    let def = common_def(s.plugin.kind());
    let p = Parsed::new(&def, &s.config).ok()?;
    let c = Common::new(&p);
    c.restart_on_failure
        .then(|| Duration::from_millis(c.restart_backoff_max_ms))
}

fn set_status(cell: &StatusCell, state: State, trace: Option<String>) {
    let mut s = cell.lock().expect("task status lock");
    s.state = state;
    s.trace = trace;
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Builds and runs one task until it stops or fails.
async fn run_task(s: &TaskSpawn) -> Ended {
    let def = Connect::definition(s.plugin.as_ref());
    let parsed = match Parsed::new(&def, &s.config) {
        Ok(p) => p,
        Err(e) => return Ended::Failed(e),
    };
    let chain = match Chain::build(&s.config) {
        Ok(c) => c,
        Err(problems) => {
            let msg: Vec<String> = problems.iter().map(|(k, m)| format!("{k}: {m}")).collect();
            return Ended::Failed(msg.join("; "));
        }
    };
    let run = TaskRun {
        broker: s.broker.clone(),
        caller: s.caller.clone(),
        connector: s.connector.clone(),
        task: s.task,
        common: Common::new(&parsed),
        chain,
        status: s.status.clone(),
        target: s.target.clone(),
        metrics: TaskMetrics::new(&s.connector, s.task),
    };
    match s.plugin.kind() {
        Kind::Source => {
            let broker = s.broker.clone();
            let table = offsets_table(&s.connector);
            let ctx = SourceContext::new(s.connector.clone(), s.task, move |partition| {
                broker
                    .state_get(&Caller::internal(), &table, &partition_key(partition))
                    .ok()
                    .flatten()
                    .and_then(|v| serde_json::from_slice(&v).ok())
            });
            match s.plugin.source_task(&parsed, ctx) {
                Ok(task) => run_source(run, task).await,
                Err(e) => Ended::Failed(e.message),
            }
        }
        Kind::Sink => match s.plugin.sink_task(&parsed, &s.connector, s.task) {
            Ok(task) => run_sink(run, task).await,
            Err(e) => Ended::Failed(e.message),
        },
    }
}
