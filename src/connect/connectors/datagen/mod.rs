//! `DatagenConnector`, in the spirit of Confluent's datagen: realistic, related quickstart data
//! (`orders`, `users`, `pageviews`, `payments`) at a set rate, for walkthroughs and benchmarks.
//! Record `n` is a pure function of `random.seed` and `n`, and a task's source offset
//! `{"quickstart", "task"}` → `{"position"}` is the number of its next record, so the data is
//! repeatable and exactly-once across `kill -9`.

mod quickstart;
mod task;

use std::time::Duration;

use quickstart::{Generator, Quickstart};

use super::super::config::{ConfigDef, ConfigKey, Importance, Parsed, RawConfig, Type, Validator};
use super::super::plugin::{Connector, Kind, SourceContext, SourceTask, TaskError};

/// The data generator plugin.
#[derive(Debug)]
pub struct Datagen;

impl Connector for Datagen {
    fn class(&self) -> &'static str {
        "io.confluent.kafka.connect.datagen.DatagenConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["DatagenConnector", "Datagen"]
    }

    fn kind(&self) -> Kind {
        Kind::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().with([
            ConfigKey::required(
                "kafka.topic",
                Type::String,
                "The topic to write the generated records to.",
            )
            .check(Validator::NonEmpty),
            ConfigKey::optional(
                "quickstart",
                Type::String,
                "orders",
                "The data set: orders (keyed by orderid), users (keyed by userid: User_1 … User_N, then updates \
of the same users), pageviews (keyed by userid) or payments (keyed by orderid: payment n pays order n). Orders, \
page views and payments refer to users User_1 … User_N, so a users connector with the same users.count and at \
least that many iterations has every user they name.",
            )
            .check(Validator::OneOf(Quickstart::NAMES))
            .importance(Importance::High),
            ConfigKey::optional(
                "max.interval",
                Type::Long,
                "500",
                "Milliseconds between two records of a task (0: as fast as possible). Event times in the data \
advance by this much per record number (1 ms when 0).",
            )
            .check(Validator::Range(Some(0), Some(3_600_000))),
            ConfigKey::optional(
                "iterations",
                Type::Long,
                "-1",
                "How many records to generate in all, over all tasks (-1: forever).",
            )
            .check(Validator::Range(Some(-1), None)),
            ConfigKey::optional(
                "random.seed",
                Type::Long,
                "0",
                "The seed of the data: the same seed gives the same records, record for record.",
            ),
            ConfigKey::optional(
                "users.count",
                Type::Long,
                "100",
                "How many users there are (User_1 … User_N): give every datagen connector that should agree on \
its users the same value.",
            )
            .check(Validator::Range(Some(1), Some(100_000_000))),
        ])
    }

    fn task_configs(&self, config: &Parsed, max_tasks: usize) -> Result<Vec<RawConfig>, String> {
        // Every task gets the same config: its number and `tasks.max` give its share.
        let mut raw = config.raw().clone();
        raw.insert("tasks.max".into(), max_tasks.to_string());
        Ok(vec![raw; max_tasks.max(1)])
    }

    fn source_topics(&self, config: &Parsed) -> Vec<String> {
        vec![config.str("kafka.topic").to_owned()]
    }

    fn source_task(&self, config: &Parsed, context: SourceContext) -> Result<Box<dyn SourceTask>, TaskError> {
        let quickstart = Quickstart::parse(config.str("quickstart"))
            .ok_or_else(|| TaskError::fatal(format!("unknown quickstart '{}'", config.str("quickstart"))))?;
        let interval_ms = config.int("max.interval").max(0);
        let generator = Generator::new(
            quickstart,
            config.int("random.seed") as u64,
            interval_ms.max(1),
            config.int("users.count").max(1) as u64,
        );
        let settings = task::Settings {
            topic: config.str("kafka.topic").to_owned(),
            generator,
            quickstart: quickstart.name(),
            interval: (interval_ms > 0).then(|| Duration::from_millis(interval_ms as u64)),
            iterations: u64::try_from(config.int("iterations")).ok(),
            tasks: config.int("tasks.max").clamp(1, 64) as u64,
        };
        Ok(Box::new(task::Task::new(settings, &context)))
    }
}
