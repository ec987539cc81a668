//! `PostgresConnector`, with Debezium's class name, keys and change event envelope: an initial
//! snapshot of the included tables, then their inserts, updates and deletes from a logical
//! replication slot (`pgoutput`), into topics `<topic.prefix>.<schema>.<table>` keyed by the
//! primary key, a tombstone after each delete.
//!
//! ```text
//!  mod.rs       the plugin: config definition, settings
//!  db.rs        sqlx: checks, publication and slot (with its exported snapshot), table
//!               descriptions, snapshot reads
//!  task.rs      the source task: snapshot phase, then the replication stream
//!  pgoutput.rs  bounds-checked decoding of pgoutput change messages
//!  values.rs    column text to JSON; Debezium's envelope
//! ```
//!
//! The first snapshot reads the tables inside the snapshot the slot exported when it was
//! created, so it is the database exactly as of the slot's start; an interrupted snapshot resumes
//! after the last key written (as of the resume).
//!
//! Exactly-once across `kill -9`: each poll hands the worker whole transactions with the commit
//! LSN as their source offset, written with the records in one transaction; only after that
//! write is the LSN acknowledged to the slot, and on restart transactions at or below the
//! stored LSN are skipped.

mod db;
mod pgoutput;
mod task;
mod values;

use std::time::Duration;

use regex::Regex;

use super::super::config::{ConfigDef, ConfigKey, Importance, Parsed, Type, Validator};
use super::super::plugin::{Connector, Kind, SourceContext, SourceTask, TaskError};

pub use values::UNAVAILABLE;

/// The PostgreSQL change data capture plugin.
#[derive(Debug)]
pub struct PostgresCdc;

const SNAPSHOT_MODES: &[&str] = &["initial", "never", "initial_only"];
const AUTOCREATE_MODES: &[&str] = &["all_tables", "disabled", "filtered"];

impl Connector for PostgresCdc {
    fn class(&self) -> &'static str {
        "io.debezium.connector.postgresql.PostgresConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["PostgresConnector", "PostgresCdc", "postgres-cdc"]
    }

    fn kind(&self) -> Kind {
        Kind::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().with(connection_keys()).with(capture_keys())
    }

    fn source_topics(&self, config: &Parsed) -> Vec<String> {
        vec![format!("{}.*", config.str("topic.prefix"))]
    }

    fn source_task(&self, config: &Parsed, context: SourceContext) -> Result<Box<dyn SourceTask>, TaskError> {
        let settings = Settings::from_config(config).map_err(TaskError::fatal)?;
        Ok(Box::new(task::Task::new(settings, context)))
    }
}

fn connection_keys() -> [ConfigKey; 5] {
    [
        ConfigKey::required(
            "database.hostname",
            Type::String,
            "The PostgreSQL server's host name or address.",
        )
        .check(Validator::NonEmpty)
        .group("Connection"),
        ConfigKey::optional("database.port", Type::Int, "5432", "The PostgreSQL server's port.")
            .check(Validator::Range(Some(1), Some(65_535)))
            .group("Connection"),
        ConfigKey::required(
            "database.user",
            Type::String,
            "The user to connect as: it needs the REPLICATION attribute (or superuser), SELECT on the captured \
tables, and CREATE on the database when the publication is created for it.",
        )
        .check(Validator::NonEmpty)
        .group("Connection"),
        ConfigKey::optional(
            "database.password",
            Type::Password,
            "",
            "The user's password (never shown; `${env:NAME}` or `${file:path:key}` keep it out of the config).",
        )
        .group("Connection"),
        ConfigKey::required("database.dbname", Type::String, "The database to capture.")
            .check(Validator::NonEmpty)
            .group("Connection"),
    ]
}

fn capture_keys() -> [ConfigKey; 10] {
    [
        ConfigKey::required(
            "topic.prefix",
            Type::String,
            "The logical name of the server: changes of table s.t go to the topic <topic.prefix>.s.t.",
        )
        .check(Validator::Custom(topic_prefix)),
        ConfigKey::optional(
            "slot.name",
            Type::String,
            "debezium",
            "The logical replication slot to read.",
        )
        .check(Validator::Custom(identifier)),
        ConfigKey::optional(
            "publication.name",
            Type::String,
            "dbz_publication",
            "The publication the slot streams.",
        )
        .check(Validator::Custom(identifier)),
        ConfigKey::optional(
            "publication.autocreate.mode",
            Type::String,
            "all_tables",
            "When the publication does not exist: all_tables creates it FOR ALL TABLES (needs superuser), filtered \
creates it for the tables table.include.list matches (and sets its tables when it exists), disabled fails.",
        )
        .check(Validator::OneOf(AUTOCREATE_MODES)),
        ConfigKey::optional(
            "table.include.list",
            Type::List,
            "",
            "Regular expressions matched against whole schema.table names: only matching tables are captured \
(empty: every table of the publication).",
        )
        .check(Validator::Custom(regex_list))
        .importance(Importance::High),
        ConfigKey::optional(
            "snapshot.mode",
            Type::String,
            "initial",
            "initial: snapshot the tables when no offset is stored, then stream changes; never: only stream \
changes; initial_only: snapshot, then stop.",
        )
        .check(Validator::OneOf(SNAPSHOT_MODES)),
        ConfigKey::optional(
            "heartbeat.interval.ms",
            Type::Int,
            "10000",
            "How often a standby status update confirms the position written so far, also while no captured \
table changes, so PostgreSQL can recycle WAL.",
        )
        .check(Validator::Range(Some(100), Some(3_600_000))),
        ConfigKey::optional("plugin.name", Type::String, "pgoutput", "The logical decoding plugin.")
            .check(Validator::OneOf(&["pgoutput"])),
        ConfigKey::optional(
            "snapshot.fetch.size",
            Type::Int,
            "2048",
            "Rows read per snapshot query (and written per transaction).",
        )
        .check(Validator::Range(Some(1), Some(100_000))),
        ConfigKey::optional(
            "max.batch.size",
            Type::Int,
            "2048",
            "Change events written per transaction at most (whole database transactions are never split; a \
larger one is written alone).",
        )
        .check(Validator::Range(Some(1), Some(100_000))),
    ]
}

fn topic_prefix(v: &str) -> Result<(), String> {
    crate::broker::topics::validate_topic_name(v).map_err(|e| e.detail)
}

/// Slot and publication names: lower-case letters, digits and underscores (PostgreSQL's rule
/// for slot names, used for both so neither needs quoting).
fn identifier(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{v}' is not a valid name: use 1 to 63 lower-case letters, digits and underscores"
        ))
    }
}

fn regex_list(v: &str) -> Result<(), String> {
    for item in super::super::config::split_list(v) {
        Regex::new(&format!("^(?:{item})$")).map_err(|e| format!("'{item}' is not a valid regular expression: {e}"))?;
    }
    Ok(())
}

/// What the snapshot phase does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SnapshotMode {
    /// Snapshot when no offset is stored, then stream.
    Initial,
    /// Only stream.
    Never,
    /// Only snapshot.
    InitialOnly,
}

/// A task's settings, from its config.
#[derive(Clone)]
pub(crate) struct Settings {
    host: String,
    port: u16,
    user: String,
    password: String,
    dbname: String,
    prefix: String,
    slot: String,
    publication: String,
    autocreate: String,
    include: Vec<Regex>,
    snapshot: SnapshotMode,
    heartbeat: Duration,
    fetch_size: i64,
    max_batch: usize,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl Settings {
    fn from_config(p: &Parsed) -> Result<Self, String> {
        let include = p
            .list("table.include.list")
            .iter()
            .map(|i| Regex::new(&format!("^(?:{i})$")).map_err(|e| format!("table.include.list: {e}")))
            .collect::<Result<_, _>>()?;
        let snapshot = match p.str("snapshot.mode") {
            "never" => SnapshotMode::Never,
            "initial_only" => SnapshotMode::InitialOnly,
            _ => SnapshotMode::Initial,
        };
        Ok(Self {
            host: p.str("database.hostname").to_owned(),
            port: u16::try_from(p.int("database.port")).map_err(|_| "database.port: out of range".to_owned())?,
            user: p.str("database.user").to_owned(),
            password: p.raw().get("database.password").cloned().unwrap_or_default(),
            dbname: p.str("database.dbname").to_owned(),
            prefix: p.str("topic.prefix").to_owned(),
            slot: p.str("slot.name").to_owned(),
            publication: p.str("publication.name").to_owned(),
            autocreate: p.str("publication.autocreate.mode").to_ascii_lowercase(),
            include,
            snapshot,
            heartbeat: Duration::from_millis(p.int("heartbeat.interval.ms").max(100) as u64),
            fetch_size: p.int("snapshot.fetch.size").max(1),
            max_batch: p.int("max.batch.size").max(1) as usize,
        })
    }

    /// Whether `schema.table` is captured.
    fn includes(&self, schema: &str, table: &str) -> bool {
        let name = format!("{schema}.{table}");
        self.include.is_empty() || self.include.iter().any(|r| r.is_match(&name))
    }

    /// The topic of a table's changes (characters Kafka does not allow become `_`).
    fn topic(&self, schema: &str, table: &str) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        format!("{}.{}.{}", self.prefix, clean(schema), clean(table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::config::RawConfig;

    fn settings(extra: &[(&str, &str)]) -> Settings {
        let mut raw: RawConfig = [
            ("database.hostname", "h"),
            ("database.user", "u"),
            ("database.dbname", "d"),
            ("topic.prefix", "srv"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        raw.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let def = PostgresCdc.config_def();
        Settings::from_config(&Parsed::new(&def, &raw).unwrap()).unwrap()
    }

    #[test]
    fn topics_and_include_list() {
        let s = settings(&[("table.include.list", "public\\.orders, inv\\..*")]);
        assert!(s.includes("public", "orders"));
        assert!(!s.includes("public", "orders2"));
        assert!(s.includes("inv", "items"));
        assert_eq!(s.topic("public", "my table"), "srv.public.my_table");
        assert!(settings(&[]).includes("any", "thing"));
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let s = settings(&[("database.password", "s3cret")]);
        assert_eq!(s.password, "s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn names_are_checked() {
        assert!(identifier("weir_slot_1").is_ok());
        assert!(identifier("Bad-Name").is_err());
        assert!(regex_list("a\\.(").is_err());
        assert!(topic_prefix("bad prefix").is_err());
    }
}
