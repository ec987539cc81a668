//! Key encodings for every column family.
//!
//! All integers are fixed-width big-endian, so the byte order of encoded keys is the numeric
//! order of their fields and a RocksDB iterator walks a partition in offset order.
//!
//! ```text
//! records CF    RecordKey (16 bytes)
//! +-----------------+-----------------+---------------------------------+
//! | topic_id  u32BE | partition u32BE | base_offset u64BE               |
//! +-----------------+-----------------+---------------------------------+
//!
//! time CF       TimeIndexKey (24 bytes, empty value): a sparse time index, one entry about
//!               every MiB of a partition's batches (and at its first batch)
//! +-----------------+-----------------+----------------------+-------------------+
//! | topic_id  u32BE | partition u32BE | max_before u64BE     | base_offset u64BE |
//! +-----------------+-----------------+----------------------+-------------------+
//!               max_before: the largest timestamp of every record before base_offset
//!               (0 when none), so it never decreases along a partition
//!
//! meta CF       PartitionKey (10 bytes), the per-partition counters
//! +------+------+-----------------+-----------------+
//! | 'p'  | '/'  | topic_id  u32BE | partition u32BE |
//! +------+------+-----------------+-----------------+
//!               TopicKey: "t/" + topic name (UTF-8);  "next_topic_id" counter
//!               TokenKey: "k/" + token id (its record holds only a hash of the secret)
//!
//! offsets CF    GroupOffsetKey (committed consumer-group offsets)
//! +----------------------+------+-----------------+-----------------+
//! | group name (UTF-8)   | 0x00 | topic_id  u32BE | partition u32BE |
//! +----------------------+------+-----------------+-----------------+
//!               group names never contain 0x00, so one group's keys are contiguous
//!
//! idem CF       IdempotencyKey
//! +-----------------+--------------------------------+
//! | topic_id  u32BE | idempotency key bytes (1..=255) |
//! +-----------------+--------------------------------+
//!
//! state CF      StateKey (namespaced key-value tables of connectors, queries, the runtimes)
//! +-------------------+------+---------------+------+-----------------------+
//! | namespace (UTF-8) | 0x00 | table (UTF-8) | 0x00 | key bytes (any)       |
//! +-------------------+------+---------------+------+-----------------------+
//!               namespace and table names never contain 0x00, so one table's keys (and one
//!               namespace's tables) are contiguous, and a table's keys sort by their bytes
//! ```

/// Length of an encoded [`RecordKey`].
pub const RECORD_KEY_LEN: usize = 16;

/// Identifies one record batch: its topic, partition and the offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    /// Internal topic id (never reused).
    pub topic_id: u32,
    /// Partition number.
    pub partition: u32,
    /// Offset of the first record of the batch.
    pub base_offset: u64,
}

impl RecordKey {
    /// Encodes the key.
    pub fn encode(&self) -> [u8; RECORD_KEY_LEN] {
        let mut out = [0u8; RECORD_KEY_LEN];
        out[0..4].copy_from_slice(&self.topic_id.to_be_bytes());
        out[4..8].copy_from_slice(&self.partition.to_be_bytes());
        out[8..16].copy_from_slice(&self.base_offset.to_be_bytes());
        out
    }

    /// Decodes a key; `None` unless `bytes` is exactly one encoded key.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; RECORD_KEY_LEN] = bytes.try_into().ok()?;
        Some(Self {
            topic_id: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            partition: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            base_offset: u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        })
    }

    /// The key range `[start, end)` of a partition's batches whose base offset is below `to_offset`.
    pub fn range_below(topic_id: u32, partition: u32, to_offset: u64) -> ([u8; RECORD_KEY_LEN], [u8; RECORD_KEY_LEN]) {
        (
            Self {
                topic_id,
                partition,
                base_offset: 0,
            }
            .encode(),
            Self {
                topic_id,
                partition,
                base_offset: to_offset,
            }
            .encode(),
        )
    }

    /// The first key of a topic (all its partitions).
    pub fn topic_start(topic_id: u32) -> [u8; RECORD_KEY_LEN] {
        Self {
            topic_id,
            partition: 0,
            base_offset: 0,
        }
        .encode()
    }

    /// The exclusive end key of a topic: the start of the next topic id.
    pub fn topic_end(topic_id: u32) -> Vec<u8> {
        match topic_id.checked_add(1) {
            Some(next) => Self::topic_start(next).to_vec(),
            None => vec![0xff; RECORD_KEY_LEN + 1],
        }
    }
}

/// Length of an encoded [`TimeIndexKey`].
pub const TIME_INDEX_KEY_LEN: usize = 24;

/// One entry of a partition's sparse time index: no record before `base_offset` has a
/// timestamp above `max_before`. The first record at or after a timestamp `t` is therefore at
/// or after the `base_offset` of the last entry whose `max_before` is below `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeIndexKey {
    /// Internal topic id.
    pub topic_id: u32,
    /// Partition number.
    pub partition: u32,
    /// The largest timestamp (ms) of the records before `base_offset`; 0 when there are none.
    pub max_before: u64,
    /// The base offset of a batch.
    pub base_offset: u64,
}

impl TimeIndexKey {
    /// Encodes the key.
    pub fn encode(&self) -> [u8; TIME_INDEX_KEY_LEN] {
        let mut out = [0u8; TIME_INDEX_KEY_LEN];
        out[0..4].copy_from_slice(&self.topic_id.to_be_bytes());
        out[4..8].copy_from_slice(&self.partition.to_be_bytes());
        out[8..16].copy_from_slice(&self.max_before.to_be_bytes());
        out[16..24].copy_from_slice(&self.base_offset.to_be_bytes());
        out
    }

    /// Decodes a key; `None` unless `bytes` is exactly one encoded key.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; TIME_INDEX_KEY_LEN] = bytes.try_into().ok()?;
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(Self {
            topic_id: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            partition: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            max_before: u64_at(8),
            base_offset: u64_at(16),
        })
    }

    /// The first key of a partition's index whose `max_before` is `max_before`.
    pub fn partition_at(topic_id: u32, partition: u32, max_before: u64) -> [u8; TIME_INDEX_KEY_LEN] {
        Self {
            topic_id,
            partition,
            max_before,
            base_offset: 0,
        }
        .encode()
    }

    /// The exclusive end of a partition's index.
    pub fn partition_end(topic_id: u32, partition: u32) -> Vec<u8> {
        match partition.checked_add(1) {
            Some(next) => Self::partition_at(topic_id, next, 0).to_vec(),
            None => RecordKey::topic_end(topic_id),
        }
    }
}

/// Prefix of [`PartitionKey`]s in the meta column family.
pub const PARTITION_KEY_PREFIX: &[u8; 2] = b"p/";
/// Length of an encoded [`PartitionKey`].
pub const PARTITION_KEY_LEN: usize = 10;

/// Names one partition of one topic (meta column family: the partition's counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    /// Internal topic id.
    pub topic_id: u32,
    /// Partition number.
    pub partition: u32,
}

impl PartitionKey {
    /// Encodes the key.
    pub fn encode(&self) -> [u8; PARTITION_KEY_LEN] {
        let mut out = [0u8; PARTITION_KEY_LEN];
        out[0..2].copy_from_slice(PARTITION_KEY_PREFIX);
        out[2..6].copy_from_slice(&self.topic_id.to_be_bytes());
        out[6..10].copy_from_slice(&self.partition.to_be_bytes());
        out
    }

    /// Decodes a key; `None` unless `bytes` is exactly one encoded key.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; PARTITION_KEY_LEN] = bytes.try_into().ok()?;
        if &b[0..2] != PARTITION_KEY_PREFIX {
            return None;
        }
        Some(Self {
            topic_id: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
            partition: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
        })
    }
}

/// Prefix of topic descriptors in the meta column family.
pub const TOPIC_KEY_PREFIX: &[u8; 2] = b"t/";

/// Key of a topic descriptor: `t/` followed by the topic name.
pub fn topic_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + name.len());
    k.extend_from_slice(TOPIC_KEY_PREFIX);
    k.extend_from_slice(name.as_bytes());
    k
}

/// Prefix of API token records in the meta column family (`k/` + token id).
pub const TOKEN_KEY_PREFIX: &[u8; 2] = b"k/";

/// Key of an API token record: `k/` followed by the token id.
pub fn token_key(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + id.len());
    k.extend_from_slice(TOKEN_KEY_PREFIX);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key of the topic id counter in the meta column family.
pub const NEXT_TOPIC_ID_KEY: &[u8] = b"next_topic_id";

/// Key of a stored idempotent-produce result: topic id, then the client's key bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdempotencyKey {
    /// Internal topic id.
    pub topic_id: u32,
    /// The `Idempotency-Key` header value.
    pub key: Vec<u8>,
}

impl IdempotencyKey {
    /// Encodes the key.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.key.len());
        out.extend_from_slice(&self.topic_id.to_be_bytes());
        out.extend_from_slice(&self.key);
        out
    }

    /// Decodes a key; `None` if it is shorter than its topic id.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 4 {
            return None;
        }
        Some(Self {
            topic_id: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            key: bytes[4..].to_vec(),
        })
    }
}

/// Key of a committed offset: group, topic id, partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupOffsetKey {
    /// Consumer group name (no NUL bytes).
    pub group: String,
    /// Internal topic id.
    pub topic_id: u32,
    /// Partition.
    pub partition: u32,
}

impl GroupOffsetKey {
    /// Encodes the key.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.group.len() + 9);
        out.extend_from_slice(self.group.as_bytes());
        out.push(0);
        out.extend_from_slice(&self.topic_id.to_be_bytes());
        out.extend_from_slice(&self.partition.to_be_bytes());
        out
    }

    /// Decodes a key; `None` if it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 9 {
            return None;
        }
        let (head, tail) = bytes.split_at(bytes.len() - 9);
        if tail[0] != 0 || head.contains(&0) {
            return None;
        }
        Some(Self {
            group: String::from_utf8(head.to_vec()).ok()?,
            topic_id: u32::from_be_bytes([tail[1], tail[2], tail[3], tail[4]]),
            partition: u32::from_be_bytes([tail[5], tail[6], tail[7], tail[8]]),
        })
    }

    /// The key range `[start, end)` holding every offset of a group.
    pub fn group_range(group: &str) -> (Vec<u8>, Vec<u8>) {
        let mut start = group.as_bytes().to_vec();
        start.push(0);
        let mut end = group.as_bytes().to_vec();
        end.push(1);
        (start, end)
    }
}

/// One namespaced key-value table of the state column family (e.g. namespace `query:q1`,
/// table `agg`). Names are 1 to 255 bytes of UTF-8 without NUL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateTable {
    /// Who owns the table: a principal name such as `connector:orders-jdbc`, or a runtime's name.
    pub namespace: String,
    /// The table's name within its namespace.
    pub table: String,
}

/// Why a namespace or table name is refused.
pub fn state_name_error(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 255 {
        Some("must be 1 to 255 bytes")
    } else if name.contains('\0') {
        Some("must not contain NUL")
    } else {
        None
    }
}

impl StateTable {
    /// A table handle; `None` when a name is empty, longer than 255 bytes or holds a NUL.
    pub fn new(namespace: impl Into<String>, table: impl Into<String>) -> Option<Self> {
        let (namespace, table) = (namespace.into(), table.into());
        if state_name_error(&namespace).is_some() || state_name_error(&table).is_some() {
            return None;
        }
        Some(Self { namespace, table })
    }

    /// The first bytes of every key of this table.
    pub fn prefix(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.namespace.len() + self.table.len() + 2);
        out.extend_from_slice(self.namespace.as_bytes());
        out.push(0);
        out.extend_from_slice(self.table.as_bytes());
        out.push(0);
        out
    }

    /// The encoded key of `key` in this table.
    pub fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut out = self.prefix();
        out.extend_from_slice(key);
        out
    }

    /// The key range `[start, end)` of the whole table.
    pub fn range(&self) -> (Vec<u8>, Vec<u8>) {
        let start = self.prefix();
        let mut end = start.clone();
        *end.last_mut().expect("prefix ends with NUL") = 1;
        (start, end)
    }

    /// Decodes a state key into its table and key; `None` if it is not one.
    pub fn decode(bytes: &[u8]) -> Option<(Self, &[u8])> {
        let ns_end = memchr::memchr(0, bytes)?;
        let rest = &bytes[ns_end + 1..];
        let t_end = memchr::memchr(0, rest)?;
        let namespace = std::str::from_utf8(&bytes[..ns_end]).ok()?;
        let table = std::str::from_utf8(&rest[..t_end]).ok()?;
        Some((Self::new(namespace, table)?, &rest[t_end + 1..]))
    }
}

/// The key range `[start, end)` of every table of a namespace.
pub fn state_namespace_range(namespace: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = namespace.as_bytes().to_vec();
    start.push(0);
    let mut end = namespace.as_bytes().to_vec();
    end.push(1);
    (start, end)
}

/// The smallest byte string greater than every string starting with `prefix` (`None` when the
/// prefix is all 0xff bytes: nothing is greater): the exclusive end of a prefix scan.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn group_name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._-]{1,40}"
    }

    proptest! {
        #[test]
        fn record_key_round_trips(t: u32, p: u32, o: u64) {
            let k = RecordKey { topic_id: t, partition: p, base_offset: o };
            prop_assert_eq!(RecordKey::decode(&k.encode()), Some(k));
        }

        #[test]
        fn record_key_order_is_numeric_order(a: (u32, u32, u64), b: (u32, u32, u64)) {
            let ka = RecordKey { topic_id: a.0, partition: a.1, base_offset: a.2 };
            let kb = RecordKey { topic_id: b.0, partition: b.1, base_offset: b.2 };
            prop_assert_eq!(ka.encode().cmp(&kb.encode()), ka.cmp(&kb));
        }

        #[test]
        fn record_key_topic_bounds_enclose_topic(t in 0u32..u32::MAX, p: u32, o: u64) {
            let k = RecordKey { topic_id: t, partition: p, base_offset: o }.encode();
            prop_assert!(k.as_slice() >= RecordKey::topic_start(t).as_slice());
            prop_assert!(k.as_slice() < RecordKey::topic_end(t).as_slice());
        }

        #[test]
        fn time_index_key_round_trips_and_orders(a: (u32, u32, u64, u64), b: (u32, u32, u64, u64)) {
            let k = |(topic_id, partition, max_before, base_offset)| TimeIndexKey { topic_id, partition, max_before, base_offset };
            let (ka, kb) = (k(a), k(b));
            prop_assert_eq!(TimeIndexKey::decode(&ka.encode()), Some(ka));
            prop_assert_eq!(ka.encode().cmp(&kb.encode()), ka.cmp(&kb));
            // A partition's keys sort inside its bounds.
            prop_assert!(ka.encode().as_slice() >= TimeIndexKey::partition_at(ka.topic_id, ka.partition, 0).as_slice());
            prop_assert!(ka.encode().as_slice() < TimeIndexKey::partition_end(ka.topic_id, ka.partition).as_slice());
        }

        #[test]
        fn partition_key_round_trips_and_orders(a: (u32, u32), b: (u32, u32)) {
            let ka = PartitionKey { topic_id: a.0, partition: a.1 };
            let kb = PartitionKey { topic_id: b.0, partition: b.1 };
            prop_assert_eq!(PartitionKey::decode(&ka.encode()), Some(ka));
            prop_assert_eq!(ka.encode().cmp(&kb.encode()), ka.cmp(&kb));
        }

        #[test]
        fn idempotency_key_round_trips_and_orders(a: (u32, Vec<u8>), b: (u32, Vec<u8>)) {
            let ka = IdempotencyKey { topic_id: a.0, key: a.1 };
            let kb = IdempotencyKey { topic_id: b.0, key: b.1 };
            prop_assert_eq!(IdempotencyKey::decode(&ka.encode()), Some(ka.clone()));
            prop_assert_eq!(ka.encode().cmp(&kb.encode()), ka.cmp(&kb));
        }

        #[test]
        fn group_offset_key_round_trips_and_orders(
            a in (group_name(), any::<u32>(), any::<u32>()),
            b in (group_name(), any::<u32>(), any::<u32>()),
        ) {
            let ka = GroupOffsetKey { group: a.0, topic_id: a.1, partition: a.2 };
            let kb = GroupOffsetKey { group: b.0, topic_id: b.1, partition: b.2 };
            prop_assert_eq!(GroupOffsetKey::decode(&ka.encode()), Some(ka.clone()));
            if ka.group == kb.group {
                prop_assert_eq!(ka.encode().cmp(&kb.encode()), (ka.topic_id, ka.partition).cmp(&(kb.topic_id, kb.partition)));
            }
            let (start, end) = GroupOffsetKey::group_range(&ka.group);
            prop_assert!(ka.encode() >= start && ka.encode() < end);
            if ka.group != kb.group {
                prop_assert!(kb.encode() < start || kb.encode() >= end);
            }
        }

        #[test]
        fn state_key_round_trips_and_orders_within_a_table(
            ns in "[a-z:._-]{1,20}", table in "[a-z_]{1,12}", other_ns in "[a-z:._-]{1,20}",
            a: Vec<u8>, b: Vec<u8>,
        ) {
            let t = StateTable::new(ns.clone(), table).unwrap();
            let (ka, kb) = (t.key(&a), t.key(&b));
            let (dt, dk) = StateTable::decode(&ka).unwrap();
            prop_assert_eq!(&dt, &t);
            prop_assert_eq!(dk, a.as_slice());
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            let (start, end) = t.range();
            prop_assert!(ka >= start && ka < end);
            let (ns_start, ns_end) = state_namespace_range(&ns);
            prop_assert!(ka >= ns_start && ka < ns_end);
            // Another namespace's keys are outside this one's range.
            if other_ns != ns {
                let o = StateTable::new(other_ns, "x").unwrap().key(&b);
                prop_assert!(o < ns_start || o >= ns_end);
            }
        }

        #[test]
        fn prefix_end_bounds_every_extension(prefix: Vec<u8>, tail: Vec<u8>) {
            let mut k = prefix.clone();
            k.extend_from_slice(&tail);
            match prefix_end(&prefix) {
                Some(end) => prop_assert!(k < end && prefix < end),
                None => prop_assert!(prefix.iter().all(|&b| b == 0xff)),
            }
        }

        #[test]
        fn decoders_never_panic(bytes: Vec<u8>) {
            let _ = StateTable::decode(&bytes);
            let _ = RecordKey::decode(&bytes);
            let _ = PartitionKey::decode(&bytes);
            let _ = IdempotencyKey::decode(&bytes);
            let _ = GroupOffsetKey::decode(&bytes);
        }
    }
}
