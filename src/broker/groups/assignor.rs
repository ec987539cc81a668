//! Partition assignors: `range` and `roundrobin` as in Kafka, and `sticky`, which keeps every
//! partition where it was unless balance requires a move.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One partition of one topic, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition.
    #[serde(deserialize_with = "crate::json_int::int")]
    pub partition: u32,
}

/// How a group's partitions are spread over its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Per topic, contiguous ranges of partitions to members in member order (Kafka's default).
    #[default]
    Range,
    /// All partitions dealt out one by one to the subscribed members in turn.
    Roundrobin,
    /// Balanced, moving as few partitions as possible from their previous owners.
    Sticky,
}

/// A member as the assignor sees it.
#[derive(Debug)]
pub struct MemberSubscription<'a> {
    /// Member id (members are ordered by it).
    pub id: &'a str,
    /// Topics it is subscribed to (existing ones).
    pub topics: BTreeSet<String>,
    /// What it owned before (for `sticky`).
    pub previous: &'a BTreeSet<TopicPartition>,
}

/// Assigns every partition of `partitions` (topic → partition count) to one subscribed member.
pub fn assign(
    strategy: Strategy,
    members: &[MemberSubscription<'_>],
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> =
        members.iter().map(|m| (m.id.to_owned(), BTreeSet::new())).collect();
    let mut sorted: Vec<&MemberSubscription<'_>> = members.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(b.id));
    match strategy {
        Strategy::Range => {
            for (topic, &count) in partitions {
                let subs: Vec<_> = sorted.iter().filter(|m| m.topics.contains(topic)).collect();
                if subs.is_empty() {
                    continue;
                }
                let n = subs.len() as u32;
                let (per, extra) = (count / n, count % n);
                let mut start = 0;
                for (i, m) in subs.iter().enumerate() {
                    let len = per + u32::from((i as u32) < extra);
                    let set = out.get_mut(m.id).expect("member");
                    set.extend((start..start + len).map(|partition| TopicPartition {
                        topic: topic.clone(),
                        partition,
                    }));
                    start += len;
                }
            }
        }
        Strategy::Roundrobin => {
            let mut cursor = 0usize;
            for (topic, &count) in partitions {
                for partition in 0..count {
                    for step in 0..sorted.len() {
                        let m = sorted[(cursor + step) % sorted.len()];
                        if m.topics.contains(topic) {
                            out.get_mut(m.id).expect("member").insert(TopicPartition {
                                topic: topic.clone(),
                                partition,
                            });
                            cursor = (cursor + step + 1) % sorted.len();
                            break;
                        }
                    }
                }
            }
        }
        Strategy::Sticky => sticky(&sorted, partitions, &mut out),
    }
    out
}

fn sticky(
    members: &[&MemberSubscription<'_>],
    partitions: &BTreeMap<String, u32>,
    out: &mut BTreeMap<String, BTreeSet<TopicPartition>>,
) {
    if members.is_empty() {
        return;
    }
    let exists = |tp: &TopicPartition| partitions.get(&tp.topic).is_some_and(|&n| tp.partition < n);
    let total: usize = partitions
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.topics.contains(*t)))
        .map(|(_, &n)| n as usize)
        .sum();
    let (floor, mut at_ceiling) = (total / members.len(), total % members.len());
    // Keep what each member still may own, most-loaded first, within its quota.
    let mut taken = BTreeSet::new();
    let mut order: Vec<_> = members.to_vec();
    order.sort_by_key(|m| std::cmp::Reverse(m.previous.len()));
    for m in order {
        let quota = if at_ceiling > 0 { floor + 1 } else { floor };
        let keep: Vec<TopicPartition> = m
            .previous
            .iter()
            .filter(|tp| exists(tp) && m.topics.contains(&tp.topic) && !taken.contains(*tp))
            .take(quota)
            .cloned()
            .collect();
        if keep.len() == floor + 1 && at_ceiling > 0 {
            at_ceiling -= 1;
        }
        taken.extend(keep.iter().cloned());
        out.get_mut(m.id).expect("member").extend(keep);
    }
    // Give the rest, one by one, to the least-loaded subscribed member.
    for (topic, &count) in partitions {
        for partition in 0..count {
            let tp = TopicPartition {
                topic: topic.clone(),
                partition,
            };
            if taken.contains(&tp) {
                continue;
            }
            let best = members
                .iter()
                .filter(|m| m.topics.contains(topic))
                .min_by_key(|m| (out[m.id].len(), m.id))
                .map(|m| m.id.to_owned());
            if let Some(id) = best {
                out.get_mut(&id).expect("member").insert(tp.clone());
                taken.insert(tp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: u32) -> TopicPartition {
        TopicPartition {
            topic: t.into(),
            partition: p,
        }
    }

    fn subs<'a>(ids: &[&'a str], topics: &[&str], prev: &'a [BTreeSet<TopicPartition>]) -> Vec<MemberSubscription<'a>> {
        ids.iter()
            .zip(prev)
            .map(|(id, previous)| MemberSubscription {
                id,
                topics: topics.iter().map(|t| t.to_string()).collect(),
                previous,
            })
            .collect()
    }

    fn parts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn range_splits_each_topic_contiguously() {
        let prev = vec![BTreeSet::new(); 2];
        let a = assign(
            Strategy::Range,
            &subs(&["a", "b"], &["x", "y"], &prev),
            &parts(&[("x", 3), ("y", 3)]),
        );
        assert_eq!(
            a["a"],
            [tp("x", 0), tp("x", 1), tp("y", 0), tp("y", 1)].into_iter().collect()
        );
        assert_eq!(a["b"], [tp("x", 2), tp("y", 2)].into_iter().collect());
    }

    #[test]
    fn roundrobin_deals_partitions_in_turn() {
        let prev = vec![BTreeSet::new(); 2];
        let a = assign(
            Strategy::Roundrobin,
            &subs(&["a", "b"], &["x", "y"], &prev),
            &parts(&[("x", 3), ("y", 3)]),
        );
        assert_eq!(a["a"], [tp("x", 0), tp("x", 2), tp("y", 1)].into_iter().collect());
        assert_eq!(a["b"], [tp("x", 1), tp("y", 0), tp("y", 2)].into_iter().collect());
    }

    #[test]
    fn sticky_moves_only_what_balance_needs() {
        let p = parts(&[("x", 6)]);
        let none = vec![BTreeSet::new(); 3];
        let first = assign(Strategy::Sticky, &subs(&["a", "b", "c"], &["x"], &none), &p);
        assert!(first.values().all(|s| s.len() == 2));
        // c leaves: a and b keep theirs and split c's.
        let prev = vec![first["a"].clone(), first["b"].clone()];
        let second = assign(Strategy::Sticky, &subs(&["a", "b"], &["x"], &prev), &p);
        assert!(first["a"].is_subset(&second["a"]) && first["b"].is_subset(&second["b"]));
        assert_eq!(second["a"].len() + second["b"].len(), 6);
        assert_eq!(second["a"].len(), 3);
        // d joins: each keeps at least its floor; d only gets moved partitions.
        let prev = vec![second["a"].clone(), second["b"].clone(), BTreeSet::new()];
        let third = assign(Strategy::Sticky, &subs(&["a", "b", "d"], &["x"], &prev), &p);
        assert!(third.values().all(|s| s.len() == 2));
        assert!(third["a"].is_subset(&second["a"]) && third["b"].is_subset(&second["b"]));
    }

    #[test]
    fn every_partition_is_assigned_exactly_once() {
        for strategy in [Strategy::Range, Strategy::Roundrobin, Strategy::Sticky] {
            let prev = vec![BTreeSet::new(); 3];
            let a = assign(
                strategy,
                &subs(&["a", "b", "c"], &["x", "y"], &prev),
                &parts(&[("x", 7), ("y", 2)]),
            );
            let all: Vec<_> = a.values().flatten().collect();
            let unique: BTreeSet<_> = all.iter().collect();
            assert_eq!(all.len(), 9, "{strategy:?}");
            assert_eq!(unique.len(), 9, "{strategy:?}");
        }
    }
}
