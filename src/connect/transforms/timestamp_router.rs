//! `TimestampRouter`: the topic becomes `topic.format` with `${topic}` replaced by the topic
//! and `${timestamp}` by the record's timestamp in `timestamp.format` (a `SimpleDateFormat`
//! pattern, UTC). A record without a timestamp is an error, as in Connect.

use super::super::config::{ConfigDef, ConfigKey, Importance, Parsed, Type, Validator};
use super::super::record::ConnectRecord;
use super::date_format::DateFormat;
use super::{Transform, TransformPlugin};

/// The plugin.
pub(super) fn plugins() -> [TransformPlugin; 1] {
    [TransformPlugin {
        class: "org.apache.kafka.connect.transforms.TimestampRouter",
        aliases: &["TimestampRouter"],
        doc: "Update the record's topic field as a function of the original topic value and the record timestamp. \
              This is mainly useful for sink connectors, since the topic field is often used to determine the \
              equivalent entity name in the destination system (e.g. database table or search index name).",
        config: config_def,
        create,
    }]
}

fn config_def() -> ConfigDef {
    ConfigDef::new().with([
        ConfigKey::optional(
            "topic.format",
            Type::String,
            "${topic}-${timestamp}",
            "Format string which can contain ${topic} and ${timestamp} as placeholders for the topic and timestamp, \
             respectively.",
        )
        .importance(Importance::High),
        ConfigKey::optional(
            "timestamp.format",
            Type::String,
            "yyyyMMdd",
            "Format string for the timestamp that is compatible with java.text.SimpleDateFormat.",
        )
        .check(Validator::Custom(check_format))
        .importance(Importance::High),
    ])
}

fn check_format(value: &str) -> Result<(), String> {
    DateFormat::new(value.trim())
        .map(|_| ())
        .map_err(|e| format!("Invalid value {value} for configuration timestamp.format: {e}"))
}

struct TimestampRouter {
    topic_format: String,
    timestamp_format: DateFormat,
}

fn create(p: &Parsed) -> Result<Box<dyn Transform>, String> {
    Ok(Box::new(TimestampRouter {
        topic_format: p.str("topic.format").to_owned(),
        timestamp_format: DateFormat::new(p.str("timestamp.format")).map_err(|e| format!("timestamp.format: {e}"))?,
    }))
}

impl Transform for TimestampRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        let Some(ts) = record.timestamp else {
            return Err(format!("Timestamp missing on record for topic {}", record.topic));
        };
        let formatted = self.timestamp_format.format(ts)?;
        record.topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &formatted);
        Ok(Some(record))
    }

    /// `topic.format` up to its first unknown: the timestamp, or the rest of a prefixed topic.
    fn topics_out(&self, topic: &str) -> Vec<String> {
        let (known, prefix) = match topic.strip_suffix('*') {
            Some(p) => (p, true),
            None => (topic, false),
        };
        let mut out = String::new();
        let mut rest = self.topic_format.as_str();
        loop {
            let next = [("${topic}", true), ("${timestamp}", false)]
                .into_iter()
                .filter_map(|(p, is_topic)| rest.find(p).map(|at| (at, p, is_topic)))
                .min();
            let Some((at, placeholder, is_topic)) = next else {
                out.push_str(rest);
                return vec![out];
            };
            out.push_str(&rest[..at]);
            if !is_topic {
                break;
            }
            out.push_str(known);
            if prefix {
                break;
            }
            rest = &rest[at + placeholder.len()..];
        }
        out.push('*');
        vec![out]
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::testing::{apply, build, record, transform};
    use serde_json::json;

    #[test]
    fn connects_documented_defaults_and_formats() {
        let mut r = record("orders", json!(1));
        r.timestamp = Some(1_483_957_845_123); // 2017-01-09T10:30:45.123Z
        let t = transform("TimestampRouter", &[]);
        assert_eq!(apply(t.as_ref(), r.clone()).topic, "orders-20170109");
        let t = transform(
            "org.apache.kafka.connect.transforms.TimestampRouter",
            &[
                ("topic.format", "${timestamp}_${topic}"),
                ("timestamp.format", "yyyy-MM'm'"),
            ],
        );
        assert_eq!(apply(t.as_ref(), r).topic, "2017-01m_orders");
        let e = t.apply(record("orders", json!(1))).unwrap_err();
        assert!(e.contains("Timestamp missing on record"), "{e}");
        let e = build("TimestampRouter", &[("timestamp.format", "yyyy-bb")])
            .err()
            .unwrap();
        assert!(e.contains("Illegal pattern character 'b'"), "{e}");
    }

    #[test]
    fn topics_out_stop_at_the_first_unknown() {
        let t = transform("TimestampRouter", &[]);
        assert_eq!(t.topics_out("orders"), ["orders-*"]);
        assert_eq!(t.topics_out("db.*"), ["db.*"]);
        let t = transform("TimestampRouter", &[("topic.format", "archive.${timestamp}.${topic}")]);
        assert_eq!(t.topics_out("orders"), ["archive.*"]);
        let t = transform("TimestampRouter", &[("topic.format", "all-${topic}-${topic}")]);
        assert_eq!(t.topics_out("a"), ["all-a-a"]);
        assert_eq!(t.topics_out("a*"), ["all-a*"]);
    }
}
