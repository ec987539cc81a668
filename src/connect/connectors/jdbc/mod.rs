//! `JdbcSourceConnector` and `JdbcSinkConnector`, with Confluent's class names and keys, for
//! PostgreSQL and MariaDB/MySQL (`connection.url` in JDBC form): tables or a query into
//! topics (bulk, incrementing, timestamp or timestamp+incrementing; offsets written with the
//! records), and topics into tables (insert, upsert or update; one database transaction per
//! batch; exactly-once by choice). The database work goes through `sqlx`.

mod db;
mod query;
mod sink;
mod source;
mod types;

use std::time::Duration;

use super::super::config::{ConfigDef, ConfigKey, Importance, Parsed, RawConfig, Type, Validator};
use super::super::plugin::{Connector, Kind, SinkTask, SourceContext, SourceTask, TaskError};
use db::Target;
use types::Numeric;

/// The JDBC source plugin.
#[derive(Debug)]
pub struct JdbcSource;

/// The JDBC sink plugin.
#[derive(Debug)]
pub struct JdbcSink;

fn connection_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::required(
            "connection.url",
            Type::String,
            "The database: jdbc:postgresql://host:port/db, jdbc:mariadb://host:port/db or jdbc:mysql://host:port/db. \
Shown in answers: put the password in connection.password.",
        )
        .check(Validator::Custom(check_url))
        .group("Database")
        .importance(Importance::High),
        ConfigKey::optional(
            "connection.user",
            Type::String,
            "",
            "The database user (default: postgres or root).",
        )
        .group("Database")
        .importance(Importance::High),
        ConfigKey::optional(
            "connection.password",
            Type::Password,
            "",
            "The database password (never shown).",
        )
        .group("Database")
        .importance(Importance::High),
    ]
}

fn check_url(value: &str) -> Result<(), String> {
    Target::parse(value, "", "")
        .map(drop)
        .map_err(|e| format!("Invalid value for configuration connection.url: {e}"))
}

/// The connection target of a config.
fn target(config: &Parsed) -> Result<Target, String> {
    Target::parse(
        config.str("connection.url"),
        config.str("connection.user"),
        config.str("connection.password"),
    )
}

fn problems_to_error(problems: Vec<(String, String)>) -> TaskError {
    let msg: Vec<String> = problems.into_iter().map(|(k, m)| format!("{k}: {m}")).collect();
    TaskError::fatal(msg.join("; "))
}

impl Connector for JdbcSource {
    fn class(&self) -> &'static str {
        "io.confluent.connect.jdbc.JdbcSourceConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["JdbcSource"]
    }

    fn kind(&self) -> Kind {
        Kind::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().with(connection_keys()).with(source_keys())
    }

    fn validate(&self, config: &Parsed) -> Vec<(String, String)> {
        source_settings(config, 0).err().unwrap_or_default()
    }

    fn task_configs(&self, config: &Parsed, max_tasks: usize) -> Result<Vec<RawConfig>, String> {
        let include = include_list(config);
        let n = if config.opt("query").is_some() {
            1
        } else if include.is_empty() {
            max_tasks.max(1)
        } else {
            include.len().clamp(1, max_tasks.max(1))
        };
        let mut raw = config.raw().clone();
        raw.insert("tasks.max".into(), n.to_string());
        Ok(vec![raw; n])
    }

    fn source_topics(&self, config: &Parsed) -> Vec<String> {
        let prefix = config.str("topic.prefix");
        if config.opt("query").is_some() {
            return vec![prefix.to_owned()];
        }
        include_list(config)
            .iter()
            .map(|t| format!("{prefix}{}", t.rsplit('.').next().unwrap_or(t)))
            .collect()
    }

    fn source_task(&self, config: &Parsed, context: SourceContext) -> Result<Box<dyn SourceTask>, TaskError> {
        let tasks = config.int("tasks.max").max(1) as usize;
        let settings = source_settings(config, tasks).map_err(problems_to_error)?;
        Ok(Box::new(source::Task::new(settings, context)))
    }
}

fn include_list(config: &Parsed) -> Vec<String> {
    let mut l = config.list("table.whitelist");
    l.extend(config.list("table.include.list"));
    l
}

fn source_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::required(
            "mode",
            Type::String,
            "How new rows are found: bulk (the whole table each poll), incrementing (a strictly increasing \
column), timestamp (a timestamp column), timestamp+incrementing (both: exact, and sees updates).",
        )
        .check(Validator::OneOf(&[
            "bulk",
            "incrementing",
            "timestamp",
            "timestamp+incrementing",
        ]))
        .group("Mode")
        .importance(Importance::High),
        ConfigKey::optional(
            "incrementing.column.name",
            Type::String,
            "",
            "The strictly increasing integer column (incrementing modes).",
        )
        .group("Mode"),
        ConfigKey::optional(
            "timestamp.column.name",
            Type::List,
            "",
            "The timestamp column(s) (timestamp modes); with several, the first that is not NULL counts.",
        )
        .group("Mode"),
        ConfigKey::optional(
            "timestamp.delay.interval.ms",
            Type::Long,
            "0",
            "How far behind the database's clock the reader stays, in ms: rows of transactions that commit \
within this time after their timestamp are not missed.",
        )
        .check(Validator::Range(Some(0), None))
        .group("Mode"),
        ConfigKey::optional(
            "timestamp.initial",
            Type::Long,
            "",
            "Where timestamp modes start when there is no offset: ms since the epoch, or -1 for now (default: \
from the first row).",
        )
        .group("Mode"),
        ConfigKey::optional(
            "validate.non.null",
            Type::Boolean,
            "true",
            "Fail when the incrementing or (single) timestamp column may be NULL (such rows are never read).",
        )
        .group("Mode"),
        ConfigKey::optional(
            "table.whitelist",
            Type::List,
            "",
            "Tables to read (default: every table of the schema). Same as table.include.list.",
        )
        .group("Tables"),
        ConfigKey::optional("table.include.list", Type::List, "", "Tables to read.").group("Tables"),
        ConfigKey::optional(
            "table.blacklist",
            Type::List,
            "",
            "Tables not to read. Same as table.exclude.list.",
        )
        .group("Tables"),
        ConfigKey::optional("table.exclude.list", Type::List, "", "Tables not to read.").group("Tables"),
        ConfigKey::optional(
            "query",
            Type::String,
            "",
            "A query to read instead of tables (its rows go to the topic named topic.prefix).",
        )
        .group("Tables"),
        ConfigKey::optional(
            "topic.prefix",
            Type::String,
            "",
            "Prefix of each table's topic (the topic is prefix + table name); with query, the topic itself.",
        )
        .group("Topics")
        .importance(Importance::High),
        ConfigKey::optional(
            "poll.interval.ms",
            Type::Int,
            "5000",
            "How often a table that had no new rows is looked at again, in ms.",
        )
        .check(Validator::Range(Some(1), Some(86_400_000)))
        .group("Polling"),
        ConfigKey::optional(
            "batch.max.rows",
            Type::Int,
            "100",
            "The most rows read by one query (and written in one transaction).",
        )
        .check(Validator::Range(Some(1), Some(100_000)))
        .group("Polling"),
        ConfigKey::optional(
            "numeric.mapping",
            Type::String,
            "none",
            "Exact numerics (NUMERIC, DECIMAL): none or precision_only give exact decimal strings; best_fit gives \
JSON numbers (integers when there is no fraction).",
        )
        .check(Validator::OneOf(&[
            "none",
            "precision_only",
            "best_fit",
            "best_fit_eager_double",
        ]))
        .group("Mapping"),
    ]
}

/// The source's settings, or every problem by key.
fn source_settings(c: &Parsed, tasks: usize) -> Result<source::Settings, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let target = target(c).map_err(|e| problems.push(("connection.url".into(), e))).ok();
    let mode = source::Mode::parse(c.str("mode"));
    let incrementing = c.str("incrementing.column.name").to_owned();
    let timestamps = c.list("timestamp.column.name");
    if matches!(
        mode,
        Some(source::Mode::Incrementing | source::Mode::TimestampIncrementing)
    ) && incrementing.is_empty()
    {
        problems.push((
            "incrementing.column.name".into(),
            format!("required with mode {}", c.str("mode")),
        ));
    }
    if matches!(
        mode,
        Some(source::Mode::Timestamp | source::Mode::TimestampIncrementing)
    ) && timestamps.is_empty()
    {
        problems.push((
            "timestamp.column.name".into(),
            format!("required with mode {}", c.str("mode")),
        ));
    }
    let include = include_list(c);
    let mut exclude = c.list("table.blacklist");
    exclude.extend(c.list("table.exclude.list"));
    let query = c.opt("query").map(str::to_owned);
    if query.is_some() && !include.is_empty() {
        problems.push(("query".into(), "give either query or table.whitelist, not both".into()));
    }
    if !include.is_empty() && !exclude.is_empty() {
        problems.push((
            "table.blacklist".into(),
            "give either table.whitelist or table.blacklist, not both".into(),
        ));
    }
    if query.is_some() && c.opt("topic.prefix").is_none() {
        problems.push(("topic.prefix".into(), "required with query: it names the topic".into()));
    }
    let timestamp_initial = match c.opt("timestamp.initial") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(ms) if ms >= -1 => Some(ms),
            _ => {
                problems.push(("timestamp.initial".into(), "must be ms since the epoch or -1".into()));
                None
            }
        },
    };
    let (Some(target), Some(mode), true) = (target, mode, problems.is_empty()) else {
        return Err(problems);
    };
    Ok(source::Settings {
        target,
        mode,
        incrementing,
        timestamps,
        include,
        exclude,
        query,
        topic_prefix: c.str("topic.prefix").to_owned(),
        poll_interval: Duration::from_millis(c.int("poll.interval.ms").max(1) as u64),
        batch_max_rows: c.int("batch.max.rows").max(1) as usize,
        delay_ms: c.int("timestamp.delay.interval.ms").max(0),
        timestamp_initial,
        validate_non_null: c.bool("validate.non.null"),
        numeric: if c.str("numeric.mapping").starts_with("best_fit") {
            Numeric::BestFit
        } else {
            Numeric::Exact
        },
        tasks,
    })
}

impl Connector for JdbcSink {
    fn class(&self) -> &'static str {
        "io.confluent.connect.jdbc.JdbcSinkConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["JdbcSink"]
    }

    fn kind(&self) -> Kind {
        Kind::Sink
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().with(connection_keys()).with(sink_keys())
    }

    fn validate(&self, config: &Parsed) -> Vec<(String, String)> {
        sink_settings(config, "").err().unwrap_or_default()
    }

    fn task_configs(&self, config: &Parsed, max_tasks: usize) -> Result<Vec<RawConfig>, String> {
        // Exactly-once keeps one task: its stored offsets are read once, when it starts.
        let n = if config.bool("exactly.once") {
            1
        } else {
            max_tasks.max(1)
        };
        Ok(vec![config.raw().clone(); n])
    }

    fn sink_task(&self, config: &Parsed, connector: &str, _task: u32) -> Result<Box<dyn SinkTask>, TaskError> {
        let settings = sink_settings(config, connector).map_err(problems_to_error)?;
        Ok(Box::new(sink::Task::new(settings)))
    }
}

fn sink_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::optional(
            "insert.mode",
            Type::String,
            "insert",
            "insert, upsert (PostgreSQL ON CONFLICT, MariaDB ON DUPLICATE KEY) or update (by the primary key).",
        )
        .check(Validator::OneOf(&["insert", "upsert", "update"]))
        .group("Writes")
        .importance(Importance::High),
        ConfigKey::optional(
            "pk.mode",
            Type::String,
            "none",
            "Where the primary key comes from: none, kafka (topic, partition, offset), record_key or record_value.",
        )
        .check(Validator::OneOf(&["none", "kafka", "record_key", "record_value"]))
        .group("Writes")
        .importance(Importance::High),
        ConfigKey::optional(
            "pk.fields",
            Type::List,
            "",
            "The key columns: fields of the key (record_key; one name for a key that is not an object) or of the \
value (record_value); default all of them. With kafka, three names for topic, partition and offset.",
        )
        .group("Writes"),
        ConfigKey::optional(
            "fields.whitelist",
            Type::List,
            "",
            "The value fields written (default all); key fields are always written.",
        )
        .group("Writes"),
        ConfigKey::optional(
            "delete.enabled",
            Type::Boolean,
            "false",
            "A record with a null value (a tombstone) deletes the row of its key (needs pk.mode=record_key); \
otherwise tombstones are skipped.",
        )
        .group("Writes"),
        ConfigKey::optional(
            "table.name.format",
            Type::String,
            "${topic}",
            "The table of a record; ${topic} is replaced by its topic. The result is one quoted identifier.",
        )
        .check(Validator::NonEmpty)
        .group("Tables"),
        ConfigKey::optional(
            "auto.create",
            Type::Boolean,
            "false",
            "Create a missing table from the first batch's fields (and key).",
        )
        .group("Tables"),
        ConfigKey::optional(
            "auto.evolve",
            Type::Boolean,
            "false",
            "Add a nullable column for a field the table does not have.",
        )
        .group("Tables"),
        ConfigKey::optional(
            "batch.size",
            Type::Int,
            "3000",
            "The most rows written by one statement (a batch, up to consumer.max.poll.records, is one transaction).",
        )
        .check(Validator::Range(Some(1), Some(100_000)))
        .group("Writes"),
        ConfigKey::optional(
            "max.retries",
            Type::Int,
            "10",
            "How often a write that failed for a connection problem or a deadlock is tried again before the batch \
is handed back to the runtime.",
        )
        .check(Validator::Range(Some(0), Some(1_000)))
        .group("Retries"),
        ConfigKey::optional(
            "retry.backoff.ms",
            Type::Int,
            "3000",
            "The wait between those tries, in ms.",
        )
        .check(Validator::Range(Some(0), Some(600_000)))
        .group("Retries"),
        ConfigKey::optional(
            "exactly.once",
            Type::Boolean,
            "false",
            "Store the consumed offsets in a table of the target database in the same transaction as the rows, and \
skip what it says was written: no duplicate even after a crash (one task).",
        )
        .group("Delivery")
        .importance(Importance::High),
        ConfigKey::optional(
            "exactly.once.offsets.table",
            Type::String,
            "weir_sink_offsets",
            "The table of the stored offsets (created if missing; one row per connector, topic and partition).",
        )
        .check(Validator::NonEmpty)
        .group("Delivery"),
    ]
}

/// The sink's settings, or every problem by key.
fn sink_settings(c: &Parsed, connector: &str) -> Result<sink::Settings, Vec<(String, String)>> {
    use sink::{InsertMode, PkMode};
    let mut problems = Vec::new();
    let target = target(c).map_err(|e| problems.push(("connection.url".into(), e))).ok();
    let insert_mode = match c.str("insert.mode") {
        "upsert" => InsertMode::Upsert,
        "update" => InsertMode::Update,
        _ => InsertMode::Insert,
    };
    let pk_mode = match c.str("pk.mode") {
        "kafka" => PkMode::Kafka,
        "record_key" => PkMode::RecordKey,
        "record_value" => PkMode::RecordValue,
        _ => PkMode::None,
    };
    let pk_fields = c.list("pk.fields");
    if insert_mode != InsertMode::Insert && pk_mode == PkMode::None {
        problems.push((
            "pk.mode".into(),
            format!("insert.mode={} needs a primary key: set pk.mode", c.str("insert.mode")),
        ));
    }
    if c.bool("delete.enabled") && pk_mode != PkMode::RecordKey {
        problems.push(("delete.enabled".into(), "needs pk.mode=record_key".into()));
    }
    if pk_mode == PkMode::Kafka && !pk_fields.is_empty() && pk_fields.len() != 3 {
        problems.push((
            "pk.fields".into(),
            "with pk.mode=kafka, give three names (topic, partition, offset) or none".into(),
        ));
    }
    let Some(target) = target.filter(|_| problems.is_empty()) else {
        return Err(problems);
    };
    Ok(sink::Settings {
        target,
        connector: connector.to_owned(),
        insert_mode,
        pk_mode,
        pk_fields,
        auto_create: c.bool("auto.create"),
        auto_evolve: c.bool("auto.evolve"),
        delete_enabled: c.bool("delete.enabled"),
        table_format: c.str("table.name.format").to_owned(),
        fields_whitelist: c.list("fields.whitelist"),
        batch_size: c.int("batch.size").max(1) as usize,
        max_retries: c.int("max.retries").clamp(0, 1000) as u32,
        retry_backoff: Duration::from_millis(c.int("retry.backoff.ms").max(0) as u64),
        exactly_once: c.bool("exactly.once"),
        offsets_table: c.str("exactly.once.offsets.table").to_owned(),
    })
}
