//! The Streams runtime: executes statements against the catalog, runs persistent queries
//! (restarted with the server), push queries (rows streamed to a client) and pull queries
//! (answered at once). Every operation authorizes its caller; a persistent query runs as
//! `query:<id>` with grants for exactly the topics it reads and writes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value as Json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::catalog::{self, Source, StoredQuery, option_ms, option_text};
use super::exec::{Engine, Out, Settings, VIEW, decode};
use super::plan::{self, Plan};
use super::run::{self, Idle, Input, Positions, Stats};
use super::sql::{self, Emit, Kind, Parsed, ShowWhat, SqlError, Statement};
use super::state::{MemState, State, StoreState};
use crate::broker::caller::{self, PatternType, grants_within};
use crate::broker::produce::{PayloadInput, ProduceRequest, RecordInput, ValueInput};
use crate::broker::{
    Broker, Caller, Durability, Operation, Permission, Principal, Resource, StateTable, StateWrite, Transaction,
    TxnProduce,
};
use crate::error::{Error, ErrorCode, Result};
use crate::storage::Format;

const NAMESPACE: &str = "streams";
/// Default time without events after which the watermark moves on by the time spent idle.
const DEFAULT_IDLE_MS: i64 = 10_000;

/// An error of the Streams API (an [`Error`] with the SQL position in its extensions).
pub type StreamsError = Error;

/// The error for a SQL problem: code, message, line and column.
pub fn sql_error(code: ErrorCode, e: &SqlError) -> Error {
    let mut ext = serde_json::Map::new();
    ext.insert("line".into(), e.line.into());
    ext.insert("column".into(), e.column.into());
    Error::new(code, format!("{} (line {}, column {})", e.message, e.line, e.column))
        .with_field("sql")
        .with_extensions(ext)
}

/// The result of one statement.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatementResult {
    /// The statement's text.
    pub statement: String,
    /// `ok`.
    pub status: String,
    /// What happened.
    pub message: String,
    /// The persistent query started, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    /// What `SHOW`, `DESCRIBE` and `EXPLAIN` list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub objects: Vec<Json>,
}

/// A column of a query's rows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: String,
}

/// A stream or table as described.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SourceInfo {
    /// Its name.
    pub name: String,
    /// `STREAM` or `TABLE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its topic.
    pub topic: String,
    /// Its format.
    pub format: String,
    /// Its columns, with `key: true` on primary key columns.
    #[schema(value_type = Vec<Object>)]
    pub columns: Vec<Json>,
    /// The event-time column (none: the record timestamp).
    pub timestamp: Option<String>,
    /// The watermark delay, ms.
    pub watermark_delay_ms: i64,
    /// The query that writes it.
    pub written_by: Option<String>,
    /// The queries that read it.
    pub read_by: Vec<String>,
}

/// A persistent query as described.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueryInfo {
    /// Its id.
    pub id: String,
    /// The statement.
    pub sql: String,
    /// `RUNNING`.
    pub state: String,
    /// What it writes.
    pub sink: String,
    /// Input records read.
    pub records_in: u64,
    /// Records written.
    pub records_out: u64,
    /// Records that could not be read.
    pub errors: u64,
    /// Records dropped as late.
    pub late_records: u64,
    /// The last record error.
    pub last_error: Option<String>,
    /// Per input partition: position, end and lag.
    #[schema(value_type = Vec<Object>)]
    pub inputs: Vec<Json>,
    /// Bytes of state.
    pub state_bytes: u64,
}

/// A message of a push or pull query's output.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// A row: the text of a JSON object of the output columns, in their order.
    Data(String),
    /// The end, and why.
    End(String),
}

/// A running push query's output.
#[derive(Debug)]
pub struct PushRows {
    /// The query id (`DELETE /v1/queries/{id}` ends it).
    pub id: String,
    /// Its columns.
    pub columns: Vec<Column>,
    /// Rows as they change; the last message is an `End`.
    pub rows: mpsc::Receiver<Row>,
}

struct Running {
    stored: StoredQuery,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    stats: Arc<Stats>,
    positions: Arc<Mutex<Positions>>,
    inputs: Vec<String>,
}

struct Inner {
    broker: Broker,
    catalog: RwLock<BTreeMap<String, Source>>,
    queries: tokio::sync::Mutex<BTreeMap<String, Running>>,
    pushes: Mutex<BTreeMap<String, CancellationToken>>,
    next_id: AtomicU64,
    pull_max_rows: usize,
}

/// The Streams runtime. Cheap to clone.
#[derive(Clone)]
pub struct Streams {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams").finish()
    }
}

struct Snapshot<'a>(&'a BTreeMap<String, Source>);

impl plan::Catalog for Snapshot<'_> {
    fn source(&self, name: &str) -> Option<Source> {
        self.0.get(name).cloned()
    }
}

fn table(name: &str) -> StateTable {
    StateTable::new(NAMESPACE, name).expect("valid table names")
}

/// Where in the script a planning error is: the first use of the name it quotes (`'x'`) in
/// the statement, else the statement's start.
fn locate(p: &Parsed, message: &str) -> (usize, usize) {
    let Some(name) = message.split('\'').nth(1).filter(|n| !n.is_empty()) else {
        return (p.line, p.column);
    };
    let needle = name.rsplit('.').next().unwrap_or(name).to_lowercase();
    let text = p.text.to_lowercase();
    let is_word = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
    let mut from = 0;
    while let Some(i) = text[from..].find(&needle).map(|i| i + from) {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        if is_word(before) && is_word(after) {
            let prefix = &p.text[..i];
            let lines = prefix.matches('\n').count();
            let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count());
            let (l0, c0) = p.text_at;
            return if lines == 0 {
                (l0, c0 + col)
            } else {
                (l0 + lines, col + 1)
            };
        }
        from = i + needle.len();
    }
    (p.line, p.column)
}

fn invalid(p: &Parsed, message: impl Into<String>) -> Error {
    sql_error(ErrorCode::SqlInvalid, &SqlError::at(p.line, p.column, message))
}

fn ok(p: &Parsed, message: impl Into<String>) -> StatementResult {
    StatementResult {
        statement: p.text.clone(),
        status: "ok".into(),
        message: message.into(),
        query_id: None,
        objects: Vec::new(),
    }
}

impl Streams {
    /// Starts the runtime: loads the catalog and restarts the persistent queries. It stops with
    /// the broker (registered as one of its runtimes).
    pub async fn start(broker: Broker) -> Result<Self> {
        let s = Self {
            inner: Arc::new(Inner {
                pull_max_rows: broker.config().pull_query_max_rows,
                broker: broker.clone(),
                catalog: RwLock::new(BTreeMap::new()),
                queries: tokio::sync::Mutex::new(BTreeMap::new()),
                pushes: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(1),
            }),
        };
        s.load().await?;
        let c = s.clone();
        let shutdown = broker.shutdown_token();
        broker.register_runtime(tokio::spawn(async move {
            shutdown.cancelled().await;
            c.shutdown().await;
        }));
        Ok(s)
    }

    async fn load(&self) -> Result<()> {
        let internal = Caller::internal();
        let mut sources = BTreeMap::new();
        self.inner
            .broker
            .state_scan_prefix(&internal, &table("sources"), b"", |k, v| {
                if let Ok(s) = serde_json::from_slice::<Source>(v) {
                    sources.insert(String::from_utf8_lossy(k).into_owned(), s);
                }
                true
            })?;
        *self.inner.catalog.write().expect("catalog lock") = sources;
        let mut stored = Vec::new();
        self.inner
            .broker
            .state_scan_prefix(&internal, &table("queries"), b"", |_, v| {
                if let Ok(q) = serde_json::from_slice::<StoredQuery>(v) {
                    stored.push(q);
                }
                true
            })?;
        for q in stored {
            let n = q.id.rsplit('_').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            self.inner.next_id.fetch_max(n + 1, Ordering::Relaxed);
            if let Err(e) = self.restart_query(q.clone()).await {
                tracing::error!(query = %q.id, error = %e.detail, "stored query could not be restarted");
            }
        }
        Ok(())
    }

    async fn shutdown(&self) {
        let mut queries = self.inner.queries.lock().await;
        for (_, r) in std::mem::take(&mut *queries) {
            r.stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), r.handle).await;
        }
        for (_, t) in std::mem::take(&mut *self.inner.pushes.lock().expect("pushes lock")) {
            t.cancel();
        }
        tracing::info!("streams runtime stopped");
    }

    fn catalog(&self) -> BTreeMap<String, Source> {
        self.inner.catalog.read().expect("catalog lock").clone()
    }

    // ---- statements ----

    /// Runs a script of statements in order, stopping at the first error (the statements
    /// before it took effect; the error says where it is).
    pub async fn execute(&self, caller: &Caller, script: &str) -> Result<Vec<StatementResult>> {
        let statements = sql::parse(script).map_err(|e| sql_error(ErrorCode::SqlSyntaxError, &e))?;
        let mut out = Vec::new();
        for (i, p) in statements.iter().enumerate() {
            match self.statement(caller, p).await {
                Ok(r) => out.push(r),
                Err(mut e) => {
                    let ext = e.extensions.get_or_insert_with(Default::default);
                    ext.insert("statement_index".into(), i.into());
                    ext.insert("completed".into(), serde_json::to_value(&out).unwrap_or_default());
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    async fn statement(&self, caller: &Caller, p: &Parsed) -> Result<StatementResult> {
        match &p.statement {
            Statement::CreateSource {
                kind,
                name,
                columns,
                options,
            } => {
                self.create_source(caller, p, *kind, name, columns.clone(), options)
                    .await
            }
            Statement::CreateAs { kind, name, .. } => self.create_as(caller, p, *kind, name).await,
            Statement::InsertInto { target, .. } => self.create_as(caller, p, Kind::Stream, target).await,
            Statement::Drop { kind, name, if_exists } => self.drop_source(caller, p, *kind, name, *if_exists).await,
            Statement::Terminate { id } => {
                self.terminate(caller, id).await.map_err(|e| match e.code {
                    ErrorCode::QueryNotFound => invalid(p, e.detail),
                    _ => e,
                })?;
                Ok(ok(p, format!("query {id} terminated")))
            }
            Statement::Show(what) => Ok(self.show(caller, p, *what).await),
            Statement::Describe { name } => {
                let info = self
                    .describe(caller, name)
                    .await
                    .map_err(|_| invalid(p, format!("unknown stream or table '{name}'")))?;
                let mut r = ok(p, name.clone());
                r.objects.push(serde_json::to_value(info).map_err(Error::internal)?);
                Ok(r)
            }
            Statement::ExplainQuery { id } => {
                let q = self.query(caller, id).await.map_err(|e| invalid(p, e.detail))?;
                let mut r = ok(p, q.sql.clone());
                r.objects.push(serde_json::to_value(q).map_err(Error::internal)?);
                Ok(r)
            }
            Statement::ExplainSelect { query, emit } => {
                let plan = self.plan(p, query, *emit)?;
                let mut r = ok(p, plan::explain(&plan));
                r.objects.push(Json::String(plan::explain(&plan)));
                Ok(r)
            }
            Statement::Select { .. } => Err(invalid(p, "run SELECT through POST /v1/query (push and pull queries)")),
        }
    }

    fn plan(&self, p: &Parsed, query: &sqlparser::ast::Query, emit: Option<Emit>) -> Result<Plan> {
        let cat = self.catalog();
        plan::plan(query, emit, &Snapshot(&cat)).map_err(|m| {
            let (line, column) = locate(p, &m);
            sql_error(ErrorCode::SqlInvalid, &SqlError::at(line, column, m))
        })
    }

    async fn create_source(
        &self,
        caller: &Caller,
        p: &Parsed,
        kind: Kind,
        name: &str,
        columns: Vec<sql::ColumnDef>,
        options: &sql::Options,
    ) -> Result<StatementResult> {
        caller::authorize(caller, Operation::Create, Resource::Query, name)?;
        let source = catalog::declare(kind, name, columns, options, p.line, p.column)
            .map_err(|e| sql_error(ErrorCode::SqlInvalid, &e))?;
        if self.catalog().contains_key(name) {
            return Err(sql_error(
                ErrorCode::StreamAlreadyExists,
                &SqlError::at(
                    p.line,
                    p.column,
                    format!("a stream or table named '{name}' exists already"),
                ),
            ));
        }
        caller::authorize(caller, Operation::Describe, Resource::Topic, &source.topic)?;
        if self
            .inner
            .broker
            .topic_for_read(&Caller::internal(), &source.topic)
            .is_err()
        {
            let partitions = match options.get("partitions") {
                Some(sql::OptionValue::Number(n)) if *n >= 1.0 => *n as u32,
                _ => {
                    return Err(invalid(
                        p,
                        format!(
                            "topic '{}' does not exist: create it, or give WITH (partitions = n) to have it created",
                            source.topic
                        ),
                    ));
                }
            };
            self.inner
                .broker
                .create_topic(caller, &source.topic, Some(partitions), &BTreeMap::new())
                .await?;
        }
        self.save_source(&source).await?;
        Ok(ok(
            p,
            format!("{} {name} created on topic {}", kind_name(kind), source.topic),
        ))
    }

    async fn save_source(&self, s: &Source) -> Result<()> {
        let w = StateWrite::Put {
            table: table("sources"),
            key: s.name.as_bytes().to_vec(),
            value: serde_json::to_vec(s).map_err(Error::internal)?,
        };
        self.inner
            .broker
            .state_write(&Caller::internal(), vec![w], Durability::Fsync)
            .await?;
        self.inner
            .catalog
            .write()
            .expect("catalog lock")
            .insert(s.name.clone(), s.clone());
        Ok(())
    }

    /// `CREATE STREAM|TABLE … AS SELECT` and `INSERT INTO … SELECT`: plans the query, creates
    /// the sink (and its topic), and starts the query.
    async fn create_as(&self, caller: &Caller, p: &Parsed, kind: Kind, name: &str) -> Result<StatementResult> {
        let (query, emit, options, insert) = match &p.statement {
            Statement::CreateAs {
                query, emit, options, ..
            } => (query, *emit, options.clone(), false),
            Statement::InsertInto { query, emit, .. } => (query, *emit, sql::Options::new(), true),
            _ => unreachable!("create_as handles CREATE … AS and INSERT INTO"),
        };
        let plan = self.plan(p, query, emit)?;
        if kind == Kind::Stream && plan.is_table() && !insert {
            return Err(invalid(p, "an aggregate makes a TABLE: CREATE TABLE … AS SELECT"));
        }
        if kind == Kind::Table && !plan.is_table() {
            return Err(invalid(
                p,
                "CREATE TABLE … AS needs an aggregate (GROUP BY); a stateless query makes a STREAM",
            ));
        }
        let existing = self.catalog().get(name).cloned();
        let id = self.next_query_id(
            if insert {
                "INSERTQUERY"
            } else if kind == Kind::Table {
                "CTAS"
            } else {
                "CSAS"
            },
            name,
        );
        caller::authorize(caller, Operation::Create, Resource::Query, name)?;
        let sink = match (insert, existing) {
            (true, Some(s)) => {
                check_insert_columns(p, &s, &plan)?;
                s
            }
            (true, None) => return Err(invalid(p, format!("INSERT INTO: unknown stream '{name}'"))),
            (false, Some(_)) => {
                return Err(sql_error(
                    ErrorCode::StreamAlreadyExists,
                    &SqlError::at(
                        p.line,
                        p.column,
                        format!("a stream or table named '{name}' exists already"),
                    ),
                ));
            }
            (false, None) => sink_source(p, kind, name, &plan, &options, &id)?,
        };
        let stored = StoredQuery {
            id: id.clone(),
            sql: p.text.clone(),
            sink: sink.name.clone(),
            sink_kind: sink.kind,
            emit: plan.emit,
            options: options
                .keys()
                .filter_map(|k| option_text(&options, k).map(|v| (k.clone(), v)))
                .collect(),
            created_by: caller.principal.name(),
            grants: self.grants(&plan, &sink, &options),
        };
        grants_within(caller, &stored.grants)?;
        let partitions = match options.get("partitions") {
            Some(sql::OptionValue::Number(n)) if *n >= 1.0 => *n as u32,
            _ => self
                .inner
                .broker
                .topic_for_read(&Caller::internal(), &plan.input.topic)
                .map(|t| t.partitions().len() as u32)
                .unwrap_or(1),
        };
        let qcaller = query_caller(&stored);
        self.create_sink_topic(&qcaller, &plan, &sink.topic, partitions)
            .await
            .map_err(|e| invalid(p, e.detail))?;
        if let Some(t) = option_text(&options, "errors_topic") {
            crate::connect::worker::ensure_topic(&self.inner.broker, &qcaller, &t, 1)
                .await
                .map_err(|m| invalid(p, m))?;
        }
        self.settings(&stored).map_err(|m| invalid(p, m))?;
        let w = StateWrite::Put {
            table: table("queries"),
            key: id.as_bytes().to_vec(),
            value: serde_json::to_vec(&stored).map_err(Error::internal)?,
        };
        self.inner
            .broker
            .state_write(&Caller::internal(), vec![w], Durability::Fsync)
            .await?;
        if !insert {
            self.save_source(&sink).await?;
        }
        self.spawn(stored, plan).await?;
        self.inner.broker.audit(caller, "query.create", Resource::Query, &id);
        let mut r = ok(
            p,
            format!("{} {} is written by query {id}", kind_name(sink.kind), sink.name),
        );
        r.query_id = Some(id);
        Ok(r)
    }

    /// Creates a query's sink topic (if missing) with the input topic's retention: results
    /// carry their input's event time, so a shorter retention would delete a replay's results.
    async fn create_sink_topic(&self, caller: &Caller, plan: &Plan, topic: &str, partitions: u32) -> Result<()> {
        let mut config = BTreeMap::new();
        if let Ok(input) = self.inner.broker.describe_topic(&Caller::internal(), &plan.input.topic) {
            config.insert("retention.ms".to_owned(), Json::from(input.config.retention_ms));
            config.insert("retention.bytes".to_owned(), Json::from(input.config.retention_bytes));
        }
        match self
            .inner
            .broker
            .create_topic(caller, topic, Some(partitions), &config)
            .await
        {
            Err(e) if e.code != ErrorCode::TopicAlreadyExists => Err(e),
            _ => Ok(()),
        }
    }

    fn next_query_id(&self, prefix: &str, name: &str) -> String {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{prefix}_{clean}_{n}")
    }

    /// The grants of a query's principal: read its inputs, write (and create) its sink.
    fn grants(&self, plan: &Plan, sink: &Source, options: &sql::Options) -> Vec<Permission> {
        if !self.inner.broker.auth_enabled() {
            return vec![Permission {
                resource: Resource::Topic,
                name: String::new(),
                pattern: PatternType::Prefix,
                operations: vec![
                    Operation::Read,
                    Operation::Write,
                    Operation::Create,
                    Operation::Describe,
                ],
            }];
        }
        let mut g = vec![Permission::literal(
            Resource::Topic,
            &plan.input.topic,
            &[Operation::Read],
        )];
        if let Some(j) = &plan.join {
            g.push(Permission::literal(Resource::Topic, &j.table.topic, &[Operation::Read]));
        }
        g.push(Permission::literal(
            Resource::Topic,
            &sink.topic,
            &[Operation::Write, Operation::Create],
        ));
        if let Some(t) = option_text(options, "errors_topic") {
            g.push(Permission::literal(
                Resource::Topic,
                t,
                &[Operation::Write, Operation::Create],
            ));
        }
        g
    }

    fn settings(&self, q: &StoredQuery) -> std::result::Result<(Settings, i64, Option<String>), String> {
        let opts: sql::Options = q
            .options
            .iter()
            .map(|(k, v)| (k.clone(), sql::OptionValue::Text(v.clone())))
            .collect();
        let ms = |k: &str| option_ms(&opts, k, 0, 0).map_err(|e| e.message);
        Ok((
            Settings {
                grace_ms: ms("grace")?.unwrap_or(0),
                retention_ms: ms("retention")?,
            },
            ms("idle_timeout")?.unwrap_or(DEFAULT_IDLE_MS),
            option_text(&opts, "errors_topic"),
        ))
    }

    async fn restart_query(&self, q: StoredQuery) -> Result<()> {
        let parsed = sql::parse(&q.sql).map_err(|e| sql_error(ErrorCode::SqlSyntaxError, &e))?;
        let p = parsed
            .first()
            .ok_or_else(|| Error::internal("a stored query without a statement"))?;
        let (query, emit) = match &p.statement {
            Statement::CreateAs { query, emit, .. } | Statement::InsertInto { query, emit, .. } => (query, *emit),
            _ => return Err(Error::internal("a stored query that is not a query")),
        };
        let plan = self.plan(p, query, emit)?;
        self.spawn(q, plan).await
    }

    async fn spawn(&self, stored: StoredQuery, plan: Plan) -> Result<()> {
        let (settings, idle_ms, errors_topic) = self
            .settings(&stored)
            .map_err(|m| Error::new(ErrorCode::SqlInvalid, m))?;
        let sink_topic = self
            .catalog()
            .get(&stored.sink)
            .map(|s| s.topic.clone())
            .ok_or_else(|| Error::internal("a query's sink is missing from the catalog"))?;
        let stop = CancellationToken::new();
        let stats = Arc::new(Stats::default());
        let positions = Arc::new(Mutex::new(Positions::new()));
        let mut inputs = vec![plan.input.name.clone()];
        if let Some(j) = &plan.join {
            inputs.push(j.table.name.clone());
        }
        let ctx = Persistent {
            broker: self.inner.broker.clone(),
            caller: query_caller(&stored),
            id: stored.id.clone(),
            sink_topic,
            errors_topic,
            input: Input {
                broker: self.inner.broker.clone(),
                caller: query_caller(&stored),
                topic: plan.input.topic.clone(),
                table_topic: plan.join.as_ref().map(|j| j.table.topic.clone()),
            },
            engine: Engine::new(plan, settings),
            idle: Idle::new(Duration::from_millis(idle_ms.max(1) as u64)),
            stop: stop.clone(),
            stats: stats.clone(),
            positions: positions.clone(),
        };
        let handle = tokio::spawn(ctx.run());
        tracing::info!(query = %stored.id, sink = %stored.sink, "query started");
        self.inner.queries.lock().await.insert(
            stored.id.clone(),
            Running {
                stored,
                stop,
                handle,
                stats,
                positions,
                inputs,
            },
        );
        Ok(())
    }

    async fn drop_source(
        &self,
        caller: &Caller,
        p: &Parsed,
        kind: Kind,
        name: &str,
        if_exists: bool,
    ) -> Result<StatementResult> {
        caller::authorize(caller, Operation::Delete, Resource::Query, name)?;
        let Some(s) = self.catalog().get(name).cloned() else {
            if if_exists {
                return Ok(ok(p, format!("{name} does not exist")));
            }
            return Err(sql_error(
                ErrorCode::StreamNotFound,
                &SqlError::at(
                    p.line,
                    p.column,
                    format!("unknown {} '{name}'", kind_name(kind).to_lowercase()),
                ),
            ));
        };
        if s.kind != kind {
            return Err(invalid(p, format!("'{name}' is a {}", kind_name(s.kind))));
        }
        let users: Vec<String> = self
            .inner
            .queries
            .lock()
            .await
            .values()
            .filter(|r| r.inputs.contains(&s.name) || r.stored.sink == s.name)
            .map(|r| r.stored.id.clone())
            .collect();
        if !users.is_empty() {
            return Err(invalid(
                p,
                format!(
                    "cannot drop {name}: queries {} use it; TERMINATE them first",
                    users.join(", ")
                ),
            ));
        }
        let w = StateWrite::Delete {
            table: table("sources"),
            key: name.as_bytes().to_vec(),
        };
        self.inner
            .broker
            .state_write(&Caller::internal(), vec![w], Durability::Fsync)
            .await?;
        self.inner.catalog.write().expect("catalog lock").remove(name);
        Ok(ok(p, format!("{} {name} dropped (its topic is kept)", kind_name(kind))))
    }

    /// Stops a persistent query (its state is deleted; its sink stays) or ends a push query.
    pub async fn terminate(&self, caller: &Caller, id: &str) -> Result<()> {
        caller::authorize(caller, Operation::Delete, Resource::Query, id)?;
        if let Some(t) = self.inner.pushes.lock().expect("pushes lock").remove(id) {
            t.cancel();
            return Ok(());
        }
        let running = self.inner.queries.lock().await.remove(id);
        let Some(r) = running else {
            return Err(Error::new(ErrorCode::QueryNotFound, format!("query '{id}' does not exist")).with_field("id"));
        };
        r.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), r.handle).await;
        let writes = vec![
            StateWrite::Delete {
                table: table("queries"),
                key: id.as_bytes().to_vec(),
            },
            StateWrite::DeleteNamespace {
                namespace: format!("query:{id}"),
            },
        ];
        self.inner
            .broker
            .state_write(&Caller::internal(), writes, Durability::Fsync)
            .await?;
        self.inner.broker.audit(caller, "query.terminate", Resource::Query, id);
        tracing::info!(query = id, "query terminated");
        Ok(())
    }

    async fn show(&self, caller: &Caller, p: &Parsed, what: ShowWhat) -> StatementResult {
        let mut r = ok(p, "");
        match what {
            ShowWhat::Streams | ShowWhat::Tables => {
                let want = if what == ShowWhat::Streams {
                    Kind::Stream
                } else {
                    Kind::Table
                };
                r.objects = self
                    .sources(caller, want)
                    .await
                    .into_iter()
                    .filter_map(|s| serde_json::to_value(s).ok())
                    .collect();
            }
            ShowWhat::Queries => {
                r.objects = self
                    .queries(caller)
                    .await
                    .into_iter()
                    .filter_map(|q| serde_json::to_value(q).ok())
                    .collect();
            }
        }
        r.message = format!("{} object(s)", r.objects.len());
        r
    }

    /// The streams or tables the caller may describe.
    pub async fn sources(&self, caller: &Caller, kind: Kind) -> Vec<SourceInfo> {
        let names: Vec<String> = self
            .catalog()
            .values()
            .filter(|s| s.kind == kind)
            .map(|s| s.name.clone())
            .collect();
        let mut out = Vec::new();
        for n in names {
            if let Ok(i) = self.describe(caller, &n).await {
                out.push(i);
            }
        }
        out
    }

    /// Describes a stream or table.
    pub async fn describe(&self, caller: &Caller, name: &str) -> Result<SourceInfo> {
        caller::authorize(caller, Operation::Describe, Resource::Query, name)?;
        let s = self.catalog().get(name).cloned().ok_or_else(|| {
            Error::new(ErrorCode::StreamNotFound, format!("unknown stream or table '{name}'")).with_field("name")
        })?;
        let queries = self.inner.queries.lock().await;
        Ok(SourceInfo {
            name: s.name.clone(),
            kind: kind_name(s.kind).into(),
            topic: s.topic.clone(),
            format: s.format.clone(),
            columns: s
                .columns
                .iter()
                .map(|c| serde_json::json!({"name": c.name, "type": c.ty.to_string(), "key": c.primary_key}))
                .collect(),
            timestamp: s.timestamp.clone(),
            watermark_delay_ms: s.watermark_delay_ms,
            written_by: queries
                .values()
                .find(|r| r.stored.sink == s.name)
                .map(|r| r.stored.id.clone()),
            read_by: queries
                .values()
                .filter(|r| r.inputs.contains(&s.name))
                .map(|r| r.stored.id.clone())
                .collect(),
        })
    }

    /// The persistent queries the caller may describe.
    pub async fn queries(&self, caller: &Caller) -> Vec<QueryInfo> {
        let ids: Vec<String> = self.inner.queries.lock().await.keys().cloned().collect();
        let mut out = Vec::new();
        for id in ids {
            if let Ok(q) = self.query(caller, &id).await {
                out.push(q);
            }
        }
        out
    }

    /// Describes a persistent query: state, counters, input positions and lag, state size.
    pub async fn query(&self, caller: &Caller, id: &str) -> Result<QueryInfo> {
        caller::authorize(caller, Operation::Describe, Resource::Query, id)?;
        let queries = self.inner.queries.lock().await;
        let r = queries.get(id).ok_or_else(|| {
            Error::new(ErrorCode::QueryNotFound, format!("query '{id}' does not exist")).with_field("id")
        })?;
        let positions = r.positions.lock().expect("positions lock").clone();
        let inputs = positions
            .iter()
            .map(|((topic, p), at)| {
                let end = self
                    .inner
                    .broker
                    .topic_for_read(&Caller::internal(), topic)
                    .ok()
                    .and_then(|t| t.partition(*p).ok())
                    .map_or(*at, |part| part.next_offset());
                serde_json::json!({"topic": topic, "partition": p, "position": at, "end": end, "lag": end.saturating_sub(*at)})
            })
            .collect();
        let stats = &r.stats;
        Ok(QueryInfo {
            id: id.to_owned(),
            sql: r.stored.sql.clone(),
            state: if r.handle.is_finished() {
                "FAILED".into()
            } else {
                "RUNNING".into()
            },
            sink: r.stored.sink.clone(),
            records_in: stats.records_in.load(Ordering::Relaxed),
            records_out: stats.records_out.load(Ordering::Relaxed),
            errors: stats.errors.load(Ordering::Relaxed),
            late_records: stats.late.load(Ordering::Relaxed),
            last_error: stats.last_error.lock().expect("stats lock").clone(),
            inputs,
            state_bytes: self
                .inner
                .broker
                .state_bytes(&Caller::internal(), &format!("query:{id}"))
                .unwrap_or(0),
        })
    }

    // ---- push and pull queries ----

    /// Runs a `SELECT`: with `EMIT` a push query (rows as they change, until `LIMIT`, the
    /// client goes away, or `DELETE /v1/queries/{id}`), else a pull query on a table (the
    /// current rows, at once).
    pub async fn select(&self, caller: &Caller, sql_text: &str, earliest: bool) -> Result<PushRows> {
        let parsed = sql::parse(sql_text).map_err(|e| sql_error(ErrorCode::SqlSyntaxError, &e))?;
        let [p] = parsed.as_slice() else {
            return Err(Error::new(ErrorCode::SqlInvalid, "give one SELECT").with_field("sql"));
        };
        let Statement::Select { query, emit } = &p.statement else {
            return Err(invalid(
                p,
                "POST /v1/query runs one SELECT; other statements go to POST /v1/sql",
            ));
        };
        let plan = self.plan(p, query, *emit)?;
        caller::authorize(caller, Operation::Read, Resource::Topic, &plan.input.topic)?;
        if let Some(j) = &plan.join {
            caller::authorize(caller, Operation::Read, Resource::Topic, &j.table.topic)?;
        }
        let columns = plan
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                ty: c.ty.to_string(),
            })
            .collect();
        if emit.is_none() {
            return self.pull(p, plan, columns).await;
        }
        if plan.input.kind != Kind::Stream {
            return Err(invalid(
                p,
                "a push query reads a stream; SELECT from a table without EMIT is a pull query",
            ));
        }
        let input = Input {
            broker: self.inner.broker.clone(),
            caller: caller.clone(),
            topic: plan.input.topic.clone(),
            table_topic: plan.join.as_ref().map(|j| j.table.topic.clone()),
        };
        // Positions are fixed now: what is produced once the answer has begun is in it.
        let mut positions = Positions::new();
        input.init(&mut positions, earliest).await?;
        let id = format!("transient_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let stop = CancellationToken::new();
        self.inner
            .pushes
            .lock()
            .expect("pushes lock")
            .insert(id.clone(), stop.clone());
        let (tx, rx) = mpsc::channel(1024);
        let push = Push {
            input,
            positions,
            limit: plan.limit,
            engine: Engine::new(
                plan,
                Settings {
                    grace_ms: 0,
                    retention_ms: None,
                },
            ),
            id: id.clone(),
            stop,
            tx,
            earliest,
            ended: Box::pin(caller.credential_ended()),
            streams: self.clone(),
        };
        tokio::spawn(push.run());
        Ok(PushRows { id, columns, rows: rx })
    }

    /// A pull query: the current rows of a table, filtered and projected, up to the row cap.
    async fn pull(&self, p: &Parsed, plan: Plan, columns: Vec<Column>) -> Result<PushRows> {
        if plan.input.kind != Kind::Table {
            return Err(invalid(
                p,
                "a pull query reads a table; add EMIT CHANGES for a push query on a stream",
            ));
        }
        if plan.is_table() || plan.join.is_some() {
            return Err(invalid(
                p,
                "a pull query selects rows of one table (no GROUP BY or JOIN)",
            ));
        }
        let cap = self.inner.pull_max_rows;
        let rows = match plan.input.query.clone() {
            Some(qid) => self.view_rows(&qid, cap + 1)?,
            None => self.topic_rows(&plan, cap + 1).await?,
        };
        let mut out = Vec::new();
        let mut capped = false;
        for v in rows {
            let Ok(row) = decode(&plan.input, &v) else { continue };
            let cx = super::expr::Ctx::row(&row, 0);
            if let Some(f) = &plan.filter
                && !f.eval(&cx).map_err(|m| invalid(p, m))?.is_true()
            {
                continue;
            }
            if out.len() == cap.min(plan.limit.map_or(usize::MAX, |l| l as usize)) {
                capped = out.len() == cap;
                break;
            }
            out.push(Row::Data(
                super::exec::project(&plan.columns, &cx).map_err(|e| invalid(p, e))?,
            ));
        }
        out.push(Row::End(if capped {
            format!("row cap of {cap} reached")
        } else {
            "complete".into()
        }));
        let (tx, rx) = mpsc::channel(out.len().max(1));
        for r in out {
            let _ = tx.try_send(r);
        }
        Ok(PushRows {
            id: "pull".into(),
            columns,
            rows: rx,
        })
    }

    /// The current rows of a table a query maintains.
    fn view_rows(&self, query: &str, cap: usize) -> Result<Vec<Json>> {
        let t = StateTable::new(format!("query:{query}"), VIEW).expect("valid names");
        let mut rows = Vec::new();
        self.inner
            .broker
            .state_scan_prefix(&Caller::internal(), &t, b"", |_, v| {
                if let Ok(j) = serde_json::from_slice(v) {
                    rows.push(j);
                }
                rows.len() < cap
            })?;
        Ok(rows)
    }

    /// The current rows of a declared table: its topic folded to the latest value per key.
    async fn topic_rows(&self, plan: &Plan, cap: usize) -> Result<Vec<Json>> {
        let input = Input {
            broker: self.inner.broker.clone(),
            caller: Caller::internal(),
            topic: plan.input.topic.clone(),
            table_topic: None,
        };
        let mut pos = Positions::new();
        let mut latest: BTreeMap<String, Json> = BTreeMap::new();
        loop {
            let read = input.read(&mut pos, true).await?;
            if read.is_empty() {
                break;
            }
            for f in &read.stream {
                for (_, r) in f.records() {
                    let (Ok(k), Ok(v)) = (run::json_of(r.key), run::json_of(r.value)) else {
                        continue;
                    };
                    let key = table_key(&plan.input, &k, &v);
                    if v.is_null() {
                        latest.remove(&key);
                    } else {
                        latest.insert(key, v);
                    }
                }
            }
            if latest.len() > cap.saturating_mul(4) {
                break;
            }
        }
        Ok(latest.into_values().collect())
    }
}

/// The key of a declared table's record: its primary key columns, else the record key.
fn table_key(s: &Source, key: &Json, value: &Json) -> String {
    let pk = s.key_columns();
    let vals: Vec<&Json> = match (pk.as_slice(), value.is_null()) {
        ([], _) => return key.to_string(),
        // A tombstone names its row by the record key: the value, or an object of the columns.
        ([_], true) => vec![key],
        (cols, true) => cols.iter().map(|c| key.get(&c.name).unwrap_or(&Json::Null)).collect(),
        (cols, false) => cols.iter().map(|c| value.get(&c.name).unwrap_or(&Json::Null)).collect(),
    };
    serde_json::to_string(&vals).unwrap_or_default()
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Stream => "STREAM",
        Kind::Table => "TABLE",
    }
}

fn query_caller(q: &StoredQuery) -> Caller {
    Caller::with(Principal::Query { id: q.id.clone() }, q.grants.clone())
}

/// The sink of `CREATE … AS SELECT`: its topic (`topic` option, else its name) and the
/// query's output columns.
fn sink_source(p: &Parsed, kind: Kind, name: &str, plan: &Plan, options: &sql::Options, id: &str) -> Result<Source> {
    for key in options.keys() {
        if ![
            "topic",
            "kafka_topic",
            "partitions",
            "grace",
            "retention",
            "idle_timeout",
            "errors_topic",
            "format",
            "value_format",
        ]
        .contains(&key.as_str())
        {
            return Err(invalid(
                p,
                format!("unknown option '{key}' (topic, partitions, grace, retention, idle_timeout, errors_topic)"),
            ));
        }
    }
    let topic = option_text(options, "topic")
        .or_else(|| option_text(options, "kafka_topic"))
        .unwrap_or_else(|| name.to_owned());
    crate::broker::topics::validate_topic_name(&topic).map_err(|e| invalid(p, e.detail))?;
    let agg = plan.aggregate.as_ref();
    let columns = plan
        .columns
        .iter()
        .map(|c| sql::ColumnDef {
            name: c.name.to_lowercase(),
            ty: c.ty,
            primary_key: agg.is_some_and(|a| a.key_names.iter().any(|k| k.eq_ignore_ascii_case(&c.name))),
        })
        .collect();
    Ok(Source {
        name: name.to_owned(),
        kind,
        topic,
        format: "json".into(),
        columns,
        timestamp: None,
        watermark_delay_ms: 0,
        query: Some(id.to_owned()),
    })
}

fn check_insert_columns(p: &Parsed, target: &Source, plan: &Plan) -> Result<()> {
    if target.kind != Kind::Stream {
        return Err(invalid(p, "INSERT INTO writes a stream"));
    }
    let want: Vec<&str> = target.columns.iter().map(|c| c.name.as_str()).collect();
    let got: Vec<String> = plan.columns.iter().map(|c| c.name.to_lowercase()).collect();
    if want != got {
        return Err(invalid(
            p,
            format!(
                "INSERT INTO {}: the query's columns ({}) must be the stream's ({})",
                target.name,
                got.join(", "),
                want.join(", ")
            ),
        ));
    }
    Ok(())
}

/// A persistent query's loop.
struct Persistent {
    broker: Broker,
    caller: Caller,
    id: String,
    sink_topic: String,
    errors_topic: Option<String>,
    input: Input,
    engine: Engine,
    idle: Idle,
    stop: CancellationToken,
    stats: Arc<Stats>,
    positions: Arc<Mutex<Positions>>,
}

/// The work a persistent query has under way beside the batch it processes: the previous
/// batch's commit and the next batch's read.
#[derive(Default)]
struct Pipeline {
    commit: Option<InFlight>,
    next_read: Option<tokio::task::JoinHandle<Result<(run::Batch, Positions)>>>,
}

/// A batch's commit, written while the next batch is read and processed.
struct InFlight {
    commit: tokio::task::JoinHandle<Result<()>>,
    /// What its batch adds to the query's counters, added once it is written.
    counts: run::Counts,
    /// The records it writes to the sink.
    records: u64,
    /// The input positions once it is written.
    positions: Positions,
}

impl Persistent {
    async fn run(mut self) {
        let mut st = StoreState::new(self.broker.clone(), self.caller.clone(), format!("query:{}", self.id));
        let mut pos = load_positions(&mut st);
        let mut pipe = Pipeline::default();
        while !self.stop.is_cancelled() {
            match self.step(&mut st, &mut pos, &mut pipe).await {
                Ok(true) => {}
                Ok(false) => {
                    self.stats.caught_up.store(true, Ordering::Relaxed);
                    self.input.wait(Duration::from_millis(100), &self.stop).await;
                }
                Err(e) => {
                    // Backpressure is no failure: the query waits the time it is told, as any
                    // client does, and then redoes the batch from its last written position.
                    let wait = e.backpressure_wait();
                    if wait.is_none() {
                        tracing::warn!(query = %self.id, error = %e.detail, "query batch failed; retrying");
                        *self.stats.last_error.lock().expect("stats lock") = Some(e.detail.clone());
                    }
                    pipe.next_read = None;
                    // A commit in flight that was written still counts; one that failed is redone.
                    let _ = self.settle(&mut pipe.commit).await;
                    st.discard();
                    self.engine = Engine::new(self.engine.plan().clone(), self.engine_settings());
                    pos = load_positions(&mut st);
                    *self.positions.lock().expect("positions lock") = pos.clone();
                    tokio::select! {
                        () = tokio::time::sleep(wait.unwrap_or(Duration::from_millis(500))) => {}
                        () = self.stop.cancelled() => {}
                    }
                }
            }
        }
        if let Err(e) = self.settle(&mut pipe.commit).await {
            tracing::warn!(query = %self.id, error = %e.detail, "the last batch of the query was not written");
        }
        tracing::info!(query = %self.id, "query stopped");
    }

    fn engine_settings(&self) -> Settings {
        self.engine.settings()
    }

    /// Waits for the commit in flight, if any, and counts it.
    async fn settle(&self, inflight: &mut Option<InFlight>) -> Result<()> {
        let Some(f) = inflight.take() else { return Ok(()) };
        f.commit
            .await
            .map_err(|e| Error::new(ErrorCode::Internal, format!("query commit task: {e}")))??;
        self.stats.add(&self.id, &f.counts);
        self.stats.records_out.fetch_add(f.records, Ordering::Relaxed);
        metrics::counter!("weir_query_records_out_total", "query" => self.id.clone()).increment(f.records);
        *self.positions.lock().expect("positions lock") = f.positions;
        Ok(())
    }

    /// Reads and processes one batch, and starts its commit once the previous batch's is
    /// written: while a batch is processed, the next one is read and the previous one written.
    /// Returns whether anything was read.
    async fn step(&mut self, st: &mut StoreState, pos: &mut Positions, pipe: &mut Pipeline) -> Result<bool> {
        let batch = match pipe.next_read.take() {
            Some(h) => {
                let (batch, next) = h
                    .await
                    .map_err(|e| Error::new(ErrorCode::Internal, format!("query read task: {e}")))??;
                *pos = next;
                batch
            }
            None => run::prepare(&self.engine.plan().input, self.input.read(pos, true).await?),
        };
        let read_some = !batch.empty;
        if read_some {
            let (input, source, mut next) = (self.input.clone(), self.engine.plan().input.clone(), pos.clone());
            pipe.next_read = Some(beside(async move {
                let read = input.read(&mut next, true).await?;
                Ok((run::prepare(&source, read), next))
            }));
        }
        let got_events = !batch.records.is_empty();
        let (mut out, counts) = run::process(&mut self.engine, st, batch);
        tracing::debug!(query = %self.id, out = out.len(), positions = ?pos, "batch");
        if got_events {
            self.idle.event();
            self.stats.caught_up.store(false, Ordering::Relaxed);
        } else {
            let by = self.idle.take();
            if by > 0 && self.engine.has_open_windows(st) {
                self.engine.advance_idle(st, by, &mut out);
            }
        }
        if read_some {
            save_positions(st, pos);
        }
        self.engine.save(st);
        let writes = st.take_writes();
        self.settle(&mut pipe.commit).await?;
        if out.is_empty() && writes.is_empty() {
            self.stats.add(&self.id, &counts);
            *self.positions.lock().expect("positions lock") = pos.clone();
            return Ok(read_some);
        }
        let side: Vec<Out> = match &self.errors_topic {
            Some(_) => counts
                .bad
                .iter()
                .map(|b| Out {
                    key: Json::Null,
                    value: serde_json::json!({"query": self.id, "topic": b.topic, "partition": b.partition,
                        "offset": b.offset, "error": b.error})
                    .to_string(),
                    timestamp: crate::broker::now_ms(),
                })
                .collect(),
            None => Vec::new(),
        };
        let records = out.len() as u64;
        let (broker, caller) = (self.broker.clone(), self.caller.clone());
        let topics = [self.sink_topic.clone(), self.errors_topic.clone().unwrap_or_default()];
        let commit = beside(async move {
            let batches = [
                (topics[0].as_str(), out.as_slice()),
                (topics[1].as_str(), side.as_slice()),
            ];
            commit(&broker, &caller, &batches, writes).await
        });
        pipe.commit = Some(InFlight {
            commit,
            counts,
            records,
            positions: pos.clone(),
        });
        Ok(read_some)
    }
}

/// Runs work beside the calling task, on a thread of its own. A task spawned onto the runtime
/// from a busy task waits in that worker's next-task slot, which other workers do not take
/// from, until the busy task yields: it would run after the batch it was meant to overlap.
fn beside<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(work))
}

fn position_key(topic: &str, partition: u32) -> Vec<u8> {
    let mut k = topic.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

fn load_positions(st: &mut dyn State) -> Positions {
    st.scan("offsets", &[], &[0xff], usize::MAX)
        .into_iter()
        .filter_map(|(k, v)| {
            let at = k.iter().position(|b| *b == 0)?;
            let topic = String::from_utf8(k[..at].to_vec()).ok()?;
            let p = u32::from_be_bytes(k.get(at + 1..at + 5)?.try_into().ok()?);
            let o = u64::from_be_bytes(v.as_slice().try_into().ok()?);
            Some(((topic, p), o))
        })
        .collect()
}

fn save_positions(st: &mut dyn State, pos: &Positions) {
    for ((topic, p), o) in pos {
        st.put("offsets", &position_key(topic, *p), o.to_be_bytes().to_vec());
    }
}

/// Writes a batch's outputs (per topic), state and positions in one transaction.
async fn commit(broker: &Broker, caller: &Caller, batches: &[(&str, &[Out])], state: Vec<StateWrite>) -> Result<()> {
    let keys: Vec<Vec<Option<String>>> = batches
        .iter()
        .map(|(_, out)| {
            out.iter()
                .map(|o| (!o.key.is_null()).then(|| o.key.to_string()))
                .collect()
        })
        .collect();
    let produce = batches
        .iter()
        .zip(&keys)
        .filter(|((topic, out), _)| !out.is_empty() && !topic.is_empty())
        .map(|((topic, out), keys)| TxnProduce {
            topic: (*topic).to_owned(),
            request: ProduceRequest {
                records: keys
                    .iter()
                    .zip(out.iter())
                    .map(|(k, o)| RecordInput {
                        key: k.as_deref().map(PayloadInput::JsonLine),
                        value: ValueInput::Given(PayloadInput::JsonLine(&o.value)),
                        headers: Vec::new(),
                        partition: None,
                        timestamp: Some(o.timestamp.max(0)),
                    })
                    .collect(),
                key_format: Format::Json,
                value_format: Format::Json,
                durability: None,
                idempotency: None,
            },
        })
        .collect();
    broker
        .transact(
            caller,
            Transaction {
                produce,
                commit: None,
                state,
                durability: None,
            },
        )
        .await
        .map(|_| ())
}

/// A push query's loop.
struct Push {
    input: Input,
    positions: Positions,
    engine: Engine,
    limit: Option<u64>,
    id: String,
    stop: CancellationToken,
    tx: mpsc::Sender<Row>,
    earliest: bool,
    ended: std::pin::Pin<Box<dyn std::future::Future<Output = crate::broker::CredentialEnd> + Send>>,
    streams: Streams,
}

impl Push {
    async fn run(mut self) {
        let reason = self.rows().await;
        let _ = self.tx.send(Row::End(reason)).await;
        self.streams.inner.pushes.lock().expect("pushes lock").remove(&self.id);
    }

    async fn rows(&mut self) -> String {
        let mut st = MemState::default();
        let mut pos = std::mem::take(&mut self.positions);
        let mut sent = 0u64;
        let mut idle = Idle::new(Duration::from_millis(DEFAULT_IDLE_MS as u64));
        loop {
            if self.stop.is_cancelled() {
                return "terminated".into();
            }
            if self.streams.inner.broker.shutdown_token().is_cancelled() {
                return "server shutting down".into();
            }
            let read = match self.input.read(&mut pos, self.earliest).await {
                Ok(r) => r,
                Err(e) => return format!("error: {}", e.detail),
            };
            let batch = run::prepare(&self.engine.plan().input, read);
            let (got_events, empty) = (!batch.records.is_empty(), batch.empty);
            let (mut out, counts) = run::process(&mut self.engine, &mut st, batch);
            counts.report(&self.id);
            if got_events {
                idle.event();
            } else {
                let by = idle.take();
                if by > 0 && self.engine.has_open_windows(&mut st) {
                    self.engine.advance_idle(&mut st, by, &mut out);
                }
            }
            for o in out {
                if self.tx.send(Row::Data(o.value)).await.is_err() {
                    return "client gone".into();
                }
                sent += 1;
                if self.limit.is_some_and(|l| sent >= l) {
                    return "limit reached".into();
                }
            }
            if empty {
                let wait = self.input.wait(Duration::from_millis(200), &self.stop);
                tokio::select! {
                    () = wait => {}
                    () = self.tx.closed() => return "client gone".into(),
                    end = &mut self.ended => return end.error().detail,
                }
            }
        }
    }
}
