//! Kafka's default partitioner: murmur2 of the key bytes, made positive, modulo the partition
//! count; keyless records go round-robin over all partitions.

use std::sync::atomic::{AtomicU32, Ordering};

/// Kafka's 32-bit MurmurHash2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's Java client picks for a keyed record.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) as u32) & 0x7fff_ffff) % partitions
}

/// Spreads keyless records over all partitions, one produce request at a time.
#[derive(Debug, Default)]
pub struct RoundRobin(AtomicU32);

impl RoundRobin {
    /// The next partition for a keyless record.
    pub fn next(&self, partitions: u32) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed) % partitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key.as_bytes()), want, "{key}");
        }
    }

    #[test]
    fn partition_is_positive_modulo() {
        // toPositive(-790332482) % 3 = 1357151166 % 3
        assert_eq!(
            partition_for_key(b"foobar", 3),
            (((-790_332_482i32) & 0x7fff_ffff) as u32) % 3
        );
        let rr = RoundRobin::default();
        let seen: std::collections::BTreeSet<u32> = (0..6).map(|_| rr.next(3)).collect();
        assert_eq!(seen.len(), 3);
    }
}
