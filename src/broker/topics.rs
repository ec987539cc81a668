//! Topics: names, configs, the in-memory registry entries and their partitions' live counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use crate::error::{Error, ErrorCode, Result};
use crate::storage::PartitionStats;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Most partitions a topic may have.
pub const MAX_PARTITIONS: u32 = 10_000;
/// Kafka's default `retention.ms`: 7 days.
pub const DEFAULT_RETENTION_MS: i64 = 604_800_000;

/// Checks a topic name against Kafka's rules: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |detail: String| Err(Error::new(ErrorCode::InvalidTopicName, detail).with_field("name"));
    if name.is_empty() {
        return bad("topic name must not be empty".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad(format!(
            "topic name is {} characters long; the limit is {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return bad(format!("topic name cannot be '{name}'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(format!(
            "topic name contains '{c}'; allowed are ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// When a produce is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// In the write-ahead log (survives a crash of the process).
    #[default]
    Wal,
    /// In the write-ahead log and fsynced (survives power loss). Concurrent producers share fsyncs.
    Fsync,
}

/// A topic's settings, under Kafka's config names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicConfig {
    /// Age after which records are deleted, in ms; -1 keeps them forever.
    #[serde(rename = "retention.ms")]
    pub retention_ms: i64,
    /// Bytes kept per partition before the oldest records are deleted; -1 for no limit.
    #[serde(rename = "retention.bytes")]
    pub retention_bytes: i64,
    /// Largest record accepted, in bytes (key, value and headers).
    #[serde(rename = "max.message.bytes")]
    pub max_message_bytes: u64,
    /// `delete` (the only policy supported so far).
    #[serde(rename = "cleanup.policy")]
    pub cleanup_policy: String,
    /// `wal` (default) or `fsync`.
    pub durability: Durability,
}

impl TopicConfig {
    /// The config a new topic gets when it names nothing.
    pub fn defaults(max_message_bytes: u64) -> Self {
        Self {
            retention_ms: DEFAULT_RETENTION_MS,
            retention_bytes: -1,
            max_message_bytes,
            cleanup_policy: "delete".into(),
            durability: Durability::Wal,
        }
    }

    /// Applies Kafka-named settings over `self`. A `null` value restores the default.
    /// Values may be JSON numbers or numeric strings, as Kafka tools send them.
    pub fn apply(&mut self, changes: &BTreeMap<String, Value>, defaults: &TopicConfig) -> Result<()> {
        for (key, value) in changes {
            let field = format!("config.{key}");
            let invalid = |detail: String| Error::new(ErrorCode::InvalidConfig, detail).with_field(field.clone());
            let int = |min: i64| -> Result<i64> {
                let n = match value {
                    Value::Number(n) => crate::json_int::int::<_, i64>(n).ok(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                match n {
                    Some(n) if n >= min => Ok(n),
                    _ => Err(invalid(format!("{key} must be an integer >= {min}"))),
                }
            };
            let reset = value.is_null();
            match key.as_str() {
                "retention.ms" => self.retention_ms = if reset { defaults.retention_ms } else { int(-1)? },
                "retention.bytes" => self.retention_bytes = if reset { defaults.retention_bytes } else { int(-1)? },
                "max.message.bytes" => {
                    self.max_message_bytes = if reset {
                        defaults.max_message_bytes
                    } else {
                        int(1)? as u64
                    }
                }
                "cleanup.policy" => {
                    self.cleanup_policy = match (reset, value.as_str()) {
                        (true, _) | (false, Some("delete")) => "delete".into(),
                        (false, Some(p)) if p.split(',').any(|p| p.trim() == "compact") => {
                            return Err(invalid(
                                "cleanup.policy 'compact' is not supported yet; use 'delete'".into(),
                            ));
                        }
                        _ => return Err(invalid("cleanup.policy must be 'delete'".into())),
                    }
                }
                "durability" => {
                    self.durability = match (reset, value.as_str()) {
                        (true, _) | (false, Some("wal")) => Durability::Wal,
                        (false, Some("fsync")) => Durability::Fsync,
                        _ => return Err(invalid("durability must be 'wal' or 'fsync'".into())),
                    }
                }
                _ => {
                    return Err(invalid(format!(
                        "unknown topic config '{key}'; supported: retention.ms, retention.bytes, max.message.bytes, cleanup.policy, durability"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// What is stored about a topic in the meta column family.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicDescriptor {
    /// Internal id, never reused.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Settings.
    pub config: TopicConfig,
}

/// A partition's live counters. Only the log writer changes them, after its write succeeded.
#[derive(Debug)]
pub struct Partition {
    /// Partition number.
    pub index: u32,
    earliest: AtomicU64,
    next: AtomicU64,
    bytes: AtomicU64,
    high_watermark: watch::Sender<u64>,
}

impl Partition {
    /// A partition with the given stored counters.
    pub fn new(index: u32, stats: PartitionStats) -> Self {
        Self {
            index,
            earliest: AtomicU64::new(stats.earliest_offset),
            next: AtomicU64::new(stats.next_offset),
            bytes: AtomicU64::new(stats.bytes),
            high_watermark: watch::Sender::new(stats.next_offset),
        }
    }

    /// The current counters.
    pub fn stats(&self) -> PartitionStats {
        PartitionStats {
            earliest_offset: self.earliest.load(Ordering::Acquire),
            next_offset: self.next.load(Ordering::Acquire),
            bytes: self.bytes.load(Ordering::Acquire),
        }
    }

    /// Offset the next record will get: everything below it is readable.
    pub fn next_offset(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Offset of the oldest retained record.
    pub fn earliest_offset(&self) -> u64 {
        self.earliest.load(Ordering::Acquire)
    }

    /// A receiver that sees every new high watermark.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    /// Publishes new counters (log writer only) and wakes readers waiting for records.
    pub(crate) fn publish(&self, stats: PartitionStats) {
        self.earliest.store(stats.earliest_offset, Ordering::Release);
        self.bytes.store(stats.bytes, Ordering::Release);
        self.next.store(stats.next_offset, Ordering::Release);
        self.high_watermark.send_if_modified(|hw| {
            let changed = *hw != stats.next_offset;
            *hw = stats.next_offset;
            changed
        });
    }
}

/// A live topic.
#[derive(Debug)]
pub struct Topic {
    /// Internal id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    config: RwLock<TopicConfig>,
    partitions: RwLock<Arc<[Arc<Partition>]>>,
    deleted: AtomicBool,
    appended: watch::Sender<u64>,
    /// This topic's traffic counters, registered once (a labelled lookup per request costs more
    /// than the increment).
    pub(crate) metrics: TopicMetrics,
}

/// Records and bytes in and out of one topic (Prometheus counters labelled with its name).
#[derive(Debug)]
pub(crate) struct TopicMetrics {
    pub records_in: metrics::Counter,
    pub bytes_in: metrics::Counter,
    pub records_out: metrics::Counter,
    pub bytes_out: metrics::Counter,
}

impl TopicMetrics {
    fn new(topic: &str) -> Self {
        let name = topic.to_owned();
        Self {
            records_in: metrics::counter!("weir_records_in_total", "topic" => name.clone()),
            bytes_in: metrics::counter!("weir_bytes_in_total", "topic" => name.clone()),
            records_out: metrics::counter!("weir_records_out_total", "topic" => name.clone()),
            bytes_out: metrics::counter!("weir_bytes_out_total", "topic" => name),
        }
    }
}

impl Topic {
    /// A topic from its descriptor and its partitions' counters.
    pub fn new(d: &TopicDescriptor, partitions: Vec<Arc<Partition>>) -> Self {
        Self {
            id: d.id,
            name: d.name.clone(),
            created_at: d.created_at,
            config: RwLock::new(d.config.clone()),
            partitions: RwLock::new(partitions.into()),
            deleted: AtomicBool::new(false),
            appended: watch::Sender::new(0),
            metrics: TopicMetrics::new(&d.name),
        }
    }

    /// The current settings.
    pub fn config(&self) -> TopicConfig {
        self.config.read().expect("config lock").clone()
    }

    /// What produce needs of the settings, without copying them all: `max.message.bytes` and
    /// the durability.
    pub fn produce_settings(&self) -> (u64, Durability) {
        let c = self.config.read().expect("config lock");
        (c.max_message_bytes, c.durability)
    }

    /// The partitions, cheap to clone.
    pub fn partitions(&self) -> Arc<[Arc<Partition>]> {
        self.partitions.read().expect("partitions lock").clone()
    }

    /// One partition.
    pub fn partition(&self, index: u32) -> Result<Arc<Partition>> {
        let parts = self.partitions();
        parts.get(index as usize).cloned().ok_or_else(|| {
            Error::new(
                ErrorCode::PartitionNotFound,
                format!(
                    "topic '{}' has {} partitions; partition {index} does not exist",
                    self.name,
                    parts.len()
                ),
            )
            .with_field("partition")
        })
    }

    /// The descriptor to store.
    pub fn descriptor(&self) -> TopicDescriptor {
        TopicDescriptor {
            id: self.id,
            name: self.name.clone(),
            partitions: self.partitions().len() as u32,
            created_at: self.created_at,
            config: self.config(),
        }
    }

    /// Whether the topic was deleted (handles may outlive it).
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// A receiver that changes whenever any partition of the topic gets records (or the topic
    /// changes shape or is deleted).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    pub(crate) fn notify(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        for p in self.partitions().iter() {
            p.high_watermark.send_modify(|_| {});
        }
        self.notify();
    }

    pub(crate) fn set_config(&self, config: TopicConfig) {
        *self.config.write().expect("config lock") = config;
    }

    pub(crate) fn set_partitions(&self, partitions: Vec<Arc<Partition>>) {
        *self.partitions.write().expect("partitions lock") = partitions.into();
        self.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_topic_name_rules() {
        for ok in ["orders", "a", "A.b_c-9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "é", "a/b", &"x".repeat(250)] {
            assert_eq!(
                validate_topic_name(bad).unwrap_err().code,
                ErrorCode::InvalidTopicName,
                "{bad}"
            );
        }
    }

    #[test]
    fn config_apply_validates_and_resets() {
        let defaults = TopicConfig::defaults(1000);
        let mut c = defaults.clone();
        let changes: BTreeMap<String, Value> = serde_json::from_str(
            r#"{"retention.ms": "1000", "retention.bytes": 50, "durability": "fsync", "cleanup.policy": "delete"}"#,
        )
        .unwrap();
        c.apply(&changes, &defaults).unwrap();
        assert_eq!(
            (c.retention_ms, c.retention_bytes, c.durability),
            (1000, 50, Durability::Fsync)
        );
        let reset: BTreeMap<String, Value> = serde_json::from_str(r#"{"retention.ms": null}"#).unwrap();
        c.apply(&reset, &defaults).unwrap();
        assert_eq!(c.retention_ms, DEFAULT_RETENTION_MS);
        for bad in [
            r#"{"retention.ms": -2}"#,
            r#"{"cleanup.policy": "compact"}"#,
            r#"{"durability": "maybe"}"#,
            r#"{"segment.ms": 5}"#,
            r#"{"max.message.bytes": 0}"#,
        ] {
            let changes: BTreeMap<String, Value> = serde_json::from_str(bad).unwrap();
            let err = c.clone().apply(&changes, &defaults).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidConfig, "{bad}");
            assert!(err.field.unwrap().starts_with("config."));
        }
    }
}
