//! Changelog topics: a pipeline's per-partition checkpoints kept on the log itself.
//!
//! On a shared log (Kafka) the worker that takes a partition over after a rebalance or a crash
//! has no local checkpoint for it. Each checkpoint therefore also appends, for every partition
//! whose progress changed, one record to the pipeline's changelog topic
//! (`<group>.changelog`, one partition, compacted): key `<topic>/<partition>`, value the
//! [`PartitionCheckpoint`] as JSON — the next source offset *and* the operator state at that
//! offset, so a restore is consistent by construction. The new owner reads the changelog once
//! per assignment, keeps the last record per key, and takes whichever of it and its own local
//! checkpoint is further ahead.
//!
//! Ordering that makes this safe: local checkpoint, then changelog append (durable when it
//! returns), then the group offset commit; a commit is skipped when the append failed, so a
//! committed offset never runs ahead of the state the changelog holds.
//!
//! The embedded backend does not use changelogs: one process owns every partition and its
//! local checkpoint is exact.

use crate::state::PartitionCheckpoint;
use aorta_log::{Log, LogError, ReadOptions, Record, TopicConfig, TopicPartition};
use std::collections::BTreeMap;

/// The changelog topic of the pipeline whose consumer group is `group`.
pub fn topic_for(group: &str) -> String {
    format!("{group}.changelog")
}

/// Whether runs on this log keep a changelog: only where partitions can move between
/// processes.
pub fn wanted(log: &dyn Log) -> bool {
    log.backend() != "embedded"
}

/// Creates the changelog topic when it does not exist yet.
pub async fn ensure(log: &dyn Log, topic: &str) -> Result<(), LogError> {
    let cfg = TopicConfig {
        partitions: 1,
        compact: true,
        ..TopicConfig::default()
    };
    crate::runner::ensure_topic(log, topic, cfg).await
}

fn key(tp: &TopicPartition) -> String {
    format!("{}/{}", tp.topic, tp.partition)
}

fn parse_key(k: &[u8]) -> Option<TopicPartition> {
    let k = std::str::from_utf8(k).ok()?;
    let (topic, p) = k.rsplit_once('/')?;
    Some(TopicPartition::new(topic.to_string(), p.parse().ok()?))
}

/// Appends one record per checkpoint; durable when it returns.
pub async fn write(
    log: &dyn Log,
    topic: &str,
    checkpoints: &[(TopicPartition, PartitionCheckpoint)],
) -> Result<(), LogError> {
    if checkpoints.is_empty() {
        return Ok(());
    }
    let mut records = Vec::with_capacity(checkpoints.len());
    for (tp, cp) in checkpoints {
        let value = serde_json::to_vec(cp).map_err(|e| {
            LogError::Internal(format!("encoding the changelog record of {tp}: {e}"))
        })?;
        records.push(Record::new(value).with_key(key(tp)));
    }
    log.append(topic, 0, records).await.map(|_| ())
}

/// The latest checkpoint per source partition in the changelog. Records that do not decode
/// (another version's format) are skipped with a warning: the partition then starts from the
/// group's committed offset, as without a changelog.
pub async fn read_latest(
    log: &dyn Log,
    topic: &str,
) -> Result<BTreeMap<TopicPartition, PartitionCheckpoint>, LogError> {
    let mut out = BTreeMap::new();
    let offsets = log.offsets(topic, 0).await?;
    let mut at = offsets.log_start;
    while at < offsets.high_watermark {
        let batch = log.read(topic, 0, at, ReadOptions::default()).await?;
        if batch.records.is_empty() {
            break;
        }
        at = batch.next_offset(at);
        for r in batch.records {
            let tp = r.record.key.as_deref().and_then(parse_key);
            let cp = serde_json::from_slice::<PartitionCheckpoint>(&r.record.value);
            match (tp, cp) {
                (Some(tp), Ok(cp)) => {
                    out.insert(tp, cp);
                }
                (tp, cp) => {
                    tracing::warn!(changelog = topic, offset = r.offset, partition = ?tp, error = ?cp.err().map(|e| e.to_string()), "changelog record skipped: it does not decode");
                }
            }
        }
    }
    Ok(out)
}

/// Folds the changelog's checkpoints into the local ones: per partition, the one further ahead.
pub fn merge(
    local: &mut BTreeMap<TopicPartition, PartitionCheckpoint>,
    remote: BTreeMap<TopicPartition, PartitionCheckpoint>,
) {
    for (tp, cp) in remote {
        match local.get(&tp) {
            Some(mine) if mine.next_offset >= cp.next_offset => {}
            _ => {
                local.insert(tp, cp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aorta_log::{EmbeddedConfig, EmbeddedLog};

    fn cp(next: u64) -> PartitionCheckpoint {
        PartitionCheckpoint {
            next_offset: next,
            states: vec![crate::ops::state_of(&serde_json::json!({ "n": next }))],
        }
    }

    #[tokio::test]
    async fn the_last_record_per_partition_wins_and_merge_keeps_the_furthest() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap();
        let topic = topic_for("pipeline.p");
        ensure(&log, &topic).await.unwrap();
        ensure(&log, &topic).await.unwrap(); // exists: fine
        let a = TopicPartition::new("in.a".to_string(), 0);
        let b = TopicPartition::new("in.a".to_string(), 1);
        write(&log, &topic, &[(a.clone(), cp(5)), (b.clone(), cp(2))])
            .await
            .unwrap();
        write(&log, &topic, &[(a.clone(), cp(9))]).await.unwrap();
        log.append(&topic, 0, vec![Record::new("not json").with_key("in.a/1")])
            .await
            .unwrap();
        let remote = read_latest(&log, &topic).await.unwrap();
        assert_eq!(remote.get(&a), Some(&cp(9)));
        assert_eq!(remote.get(&b), Some(&cp(2)));
        let mut local = BTreeMap::from([(a.clone(), cp(12)), (b.clone(), cp(1))]);
        merge(&mut local, remote);
        assert_eq!(local[&a], cp(12), "the local checkpoint is further ahead");
        assert_eq!(local[&b], cp(2), "the changelog is further ahead");
    }
}
