//! Partition assignment for consumer-group members.
//!
//! The algorithm is Kafka's `RangeAssignor` (the Java client's historical default): for each
//! topic, the members subscribed to it are sorted by member id, the partitions are split into
//! contiguous ranges, and the first `partitions % members` members get one extra partition.
//! Backends that coordinate groups themselves (the embedded log) use it; Kafka brokers run
//! their own assignor.

use crate::record::TopicPartition;
use std::collections::BTreeMap;

/// One member's subscription: its id and the topics (with partition counts) it wants.
#[derive(Clone, Debug)]
pub struct Subscription {
    /// Member id; assignment order follows its sort order.
    pub member_id: String,
    /// Topics the member subscribes to.
    pub topics: Vec<String>,
}

/// Assigns partitions of `partition_counts` to `members` with the range strategy. Every
/// partition of every subscribed topic goes to exactly one subscribed member.
pub fn range_assign(
    members: &[Subscription],
    partition_counts: &BTreeMap<String, u32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> = members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let mut subscribed: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.iter().any(|t| t == topic))
            .map(|m| m.member_id.as_str())
            .collect();
        if subscribed.is_empty() {
            continue;
        }
        subscribed.sort_unstable();
        let n = subscribed.len() as u32;
        let per = count / n;
        let extra = count % n;
        let mut next = 0u32;
        for (i, member) in subscribed.iter().enumerate() {
            let i = i as u32;
            let take = per + u32::from(i < extra);
            if let Some(list) = out.get_mut(*member) {
                list.extend((next..next + take).map(|p| TopicPartition::new(topic.clone(), p)));
            }
            next += take;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str, topics: &[&str]) -> Subscription {
        Subscription {
            member_id: id.into(),
            topics: topics.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn splits_like_kafka_range_assignor() {
        // Kafka RangeAssignor doc example: 2 consumers, topic with 3 partitions:
        // C0 gets [t0p0, t0p1], C1 gets [t0p2].
        let counts = BTreeMap::from([("t0".to_string(), 3)]);
        let got = range_assign(&[sub("C1", &["t0"]), sub("C0", &["t0"])], &counts);
        let parts = |m: &str| got[m].iter().map(|tp| tp.partition).collect::<Vec<_>>();
        assert_eq!(parts("C0"), vec![0, 1]);
        assert_eq!(parts("C1"), vec![2]);
    }

    #[test]
    fn every_partition_exactly_once() {
        let counts = BTreeMap::from([("a".to_string(), 7), ("b".to_string(), 2)]);
        let members = [
            sub("m1", &["a", "b"]),
            sub("m2", &["a"]),
            sub("m3", &["a", "b"]),
        ];
        let got = range_assign(&members, &counts);
        let mut all: Vec<_> = got.values().flatten().cloned().collect();
        all.sort();
        let mut want: Vec<_> = (0..7).map(|p| TopicPartition::new("a", p)).collect();
        want.extend((0..2).map(|p| TopicPartition::new("b", p)));
        assert_eq!(all, want);
        assert!(got["m2"].iter().all(|tp| tp.topic == "a"));
    }
}
