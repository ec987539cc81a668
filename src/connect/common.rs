//! The keys every connector has (Kafka Connect's common connector configs, the error handling
//! keys, and Weir's restart policy), read once into [`Common`].

use super::config::{ConfigDef, ConfigKey, Importance, Parsed, Type, Validator};
use super::plugin::Kind;

/// Keys of every connector.
pub fn common_def(kind: Kind) -> ConfigDef {
    let def = ConfigDef::new()
        .open_prefix("transforms.")
        .open_prefix("predicates.")
        .with([
            ConfigKey::required("name", Type::String, "Globally unique name to use for this connector.")
                .check(Validator::NonEmpty),
            ConfigKey::required(
                "connector.class",
                Type::String,
                "Name or alias of the class for this connector (e.g. FileStreamSource).",
            ),
            ConfigKey::optional(
                "tasks.max",
                Type::Int,
                "1",
                "Maximum number of tasks to use for this connector.",
            )
            .check(Validator::Range(Some(1), Some(64)))
            .importance(Importance::High),
            ConfigKey::optional(
                "key.converter",
                Type::Class,
                "",
                "Accepted for compatibility; keys are read and written as schemaless JSON.",
            )
            .importance(Importance::Low),
            ConfigKey::optional(
                "value.converter",
                Type::Class,
                "",
                "Accepted for compatibility; values are read and written as schemaless JSON.",
            )
            .importance(Importance::Low),
            ConfigKey::optional(
                "key.converter.schemas.enable",
                Type::Boolean,
                "false",
                "Accepted for compatibility.",
            )
            .importance(Importance::Low),
            ConfigKey::optional(
                "value.converter.schemas.enable",
                Type::Boolean,
                "false",
                "Accepted for compatibility.",
            )
            .importance(Importance::Low),
            ConfigKey::optional(
                "transforms",
                Type::List,
                "",
                "Aliases of the transforms to apply to records, in order.",
            )
            .group("Transforms"),
            ConfigKey::optional(
                "predicates",
                Type::List,
                "",
                "Aliases of the predicates transforms may use.",
            )
            .group("Predicates"),
        ])
        .with(error_keys())
        .with(restart_keys());
    match kind {
        Kind::Sink => def.with([
            ConfigKey::optional("topics", Type::List, "", "Topics to consume (or give topics.regex).")
                .importance(Importance::High),
            ConfigKey::optional(
                "topics.regex",
                Type::String,
                "",
                "Regular expression of the topics to consume.",
            )
            .check(Validator::Regex)
            .importance(Importance::High),
            ConfigKey::optional(
                "consumer.max.poll.records",
                Type::Int,
                "500",
                "Most records handed to the sink in one batch.",
            )
            .check(Validator::Range(Some(1), Some(10_000))),
        ]),
        Kind::Source => def.with([ConfigKey::optional(
            "topic.creation.default.partitions",
            Type::Int,
            "1",
            "Partitions of topics the connector writes that do not exist yet (created when it starts).",
        )
        .check(Validator::Range(Some(1), Some(10_000)))]),
    }
}

fn error_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::optional(
            "errors.retry.timeout",
            Type::Long,
            "0",
            "How long a failed operation is retried, in ms (0: not retried, -1: forever). Retries back off \
exponentially with jitter.",
        )
        .check(Validator::Range(Some(-1), None))
        .group("Error Handling"),
        ConfigKey::optional(
            "errors.retry.delay.max.ms",
            Type::Long,
            "60000",
            "Longest wait between two retries, in ms.",
        )
        .check(Validator::Range(Some(1), None))
        .group("Error Handling"),
        ConfigKey::optional(
            "errors.tolerance",
            Type::String,
            "none",
            "none: an error fails the task; all: the record is skipped (and dead-lettered when a dead-letter topic \
is set).",
        )
        .check(Validator::OneOf(&["none", "all"]))
        .group("Error Handling"),
        ConfigKey::optional(
            "errors.log.enable",
            Type::Boolean,
            "false",
            "Log each error and the record's position.",
        )
        .group("Error Handling"),
        ConfigKey::optional(
            "errors.log.include.messages",
            Type::Boolean,
            "false",
            "Also log the record's key and value.",
        )
        .group("Error Handling"),
        ConfigKey::optional(
            "errors.deadletterqueue.topic.name",
            Type::String,
            "",
            "Topic for records that failed conversion, transformation, or (unlike Kafka Connect) the write to the \
external system (created if missing).",
        )
        .group("Error Handling"),
        ConfigKey::optional(
            "errors.deadletterqueue.topic.replication.factor",
            Type::Int,
            "1",
            "Accepted for compatibility (Weir keeps one copy).",
        )
        .group("Error Handling")
        .importance(Importance::Low),
        ConfigKey::optional(
            "errors.deadletterqueue.context.headers.enable",
            Type::Boolean,
            "false",
            "Add __connect.errors.* headers (stage, error, original topic, partition and offset) to dead letters.",
        )
        .group("Error Handling"),
    ]
}

fn restart_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::optional(
            "restart.on.failure",
            Type::Boolean,
            "false",
            "Restart failed tasks automatically with exponential backoff (Kafka Connect never does).",
        )
        .group("Restarts"),
        ConfigKey::optional(
            "restart.backoff.max.ms",
            Type::Long,
            "300000",
            "Longest wait before an automatic restart, in ms (the first is after 1 s, then doubling).",
        )
        .check(Validator::Range(Some(100), None))
        .group("Restarts"),
    ]
}

/// What errors do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerance {
    /// An error fails the task.
    None,
    /// An error skips the record.
    All,
}

/// The common keys of one connector, typed.
#[derive(Debug, Clone)]
pub struct Common {
    /// `tasks.max`.
    pub tasks_max: usize,
    /// `errors.retry.timeout` in ms (-1 forever).
    pub retry_timeout_ms: i64,
    /// `errors.retry.delay.max.ms`.
    pub retry_delay_max_ms: u64,
    /// `errors.tolerance`.
    pub tolerance: Tolerance,
    /// `errors.log.enable`.
    pub log_errors: bool,
    /// `errors.log.include.messages`.
    pub log_messages: bool,
    /// `errors.deadletterqueue.topic.name`.
    pub dlq_topic: Option<String>,
    /// `errors.deadletterqueue.context.headers.enable`.
    pub dlq_headers: bool,
    /// `restart.on.failure`.
    pub restart_on_failure: bool,
    /// `restart.backoff.max.ms`.
    pub restart_backoff_max_ms: u64,
    /// Sinks: `topics`.
    pub topics: Vec<String>,
    /// Sinks: `topics.regex`.
    pub topics_regex: Option<String>,
    /// Sinks: `consumer.max.poll.records`.
    pub max_poll_records: usize,
    /// Sources: `topic.creation.default.partitions`.
    pub default_partitions: u32,
}

impl Common {
    /// Reads the common keys of a validated config.
    pub fn new(p: &Parsed) -> Self {
        Self {
            tasks_max: p.int("tasks.max").clamp(1, 64) as usize,
            retry_timeout_ms: p.int("errors.retry.timeout"),
            retry_delay_max_ms: p.int("errors.retry.delay.max.ms").max(1) as u64,
            tolerance: if p.str("errors.tolerance").eq_ignore_ascii_case("all") {
                Tolerance::All
            } else {
                Tolerance::None
            },
            log_errors: p.bool("errors.log.enable"),
            log_messages: p.bool("errors.log.include.messages"),
            dlq_topic: p.opt("errors.deadletterqueue.topic.name").map(str::to_owned),
            dlq_headers: p.bool("errors.deadletterqueue.context.headers.enable"),
            restart_on_failure: p.bool("restart.on.failure"),
            restart_backoff_max_ms: p.int("restart.backoff.max.ms").max(100) as u64,
            topics: p.list("topics"),
            topics_regex: p.opt("topics.regex").map(str::to_owned),
            max_poll_records: p.int("consumer.max.poll.records").clamp(1, 10_000) as usize,
            default_partitions: p.int("topic.creation.default.partitions").clamp(1, 10_000) as u32,
        }
    }
}
