//! `FileStreamSource` and `FileStreamSink`, with Kafka's class names and keys: the lines of a
//! file into a topic (offset `{"filename"}` → `{"position"}`, the byte after the last line
//! written; follows appends and survives rotation by name), and topics into a file as JSON
//! lines.

mod sink;
mod source;

use super::super::config::{ConfigDef, ConfigKey, Parsed, Type, Validator};
use super::super::plugin::{Connector, Kind, SinkTask, SourceContext, SourceTask, TaskError};

/// The file source plugin.
#[derive(Debug)]
pub struct FileSource;

/// The file sink plugin.
#[derive(Debug)]
pub struct FileSink;

impl Connector for FileSource {
    fn class(&self) -> &'static str {
        "org.apache.kafka.connect.file.FileStreamSourceConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["FileStreamSource"]
    }

    fn kind(&self) -> Kind {
        Kind::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().with([
            ConfigKey::required("file", Type::String, "The file to read, line by line.").check(Validator::NonEmpty),
            ConfigKey::required(
                "topic",
                Type::String,
                "The topic to write each line to (as a JSON string).",
            )
            .check(Validator::NonEmpty),
            ConfigKey::optional(
                "batch.size",
                Type::Int,
                "2000",
                "The most lines written in one transaction.",
            )
            .check(Validator::Range(Some(1), Some(100_000))),
            ConfigKey::optional(
                "poll.interval.ms",
                Type::Long,
                "100",
                "How long to wait for new lines at the end of the file before looking again.",
            )
            .check(Validator::Range(Some(1), Some(60_000))),
        ])
    }

    fn source_topics(&self, config: &Parsed) -> Vec<String> {
        vec![config.str("topic").to_owned()]
    }

    fn source_task(&self, config: &Parsed, context: SourceContext) -> Result<Box<dyn SourceTask>, TaskError> {
        Ok(Box::new(source::Task::new(config, &context)))
    }
}

impl Connector for FileSink {
    fn class(&self) -> &'static str {
        "org.apache.kafka.connect.file.FileStreamSinkConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["FileStreamSink"]
    }

    fn kind(&self) -> Kind {
        Kind::Sink
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().with([ConfigKey::required(
            "file",
            Type::String,
            "The file to append each record's value to, as one JSON line (created if missing).",
        )
        .check(Validator::NonEmpty)])
    }

    fn sink_task(&self, config: &Parsed, _connector: &str, _task: u32) -> Result<Box<dyn SinkTask>, TaskError> {
        Ok(Box::new(sink::Task::new(config.str("file"))))
    }
}
