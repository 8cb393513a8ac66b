//! The backend-neutral log interface.
//!
//! Designed so that the Kafka backend can implement it over rdkafka without callers changing:
//! everything is async and batch-oriented, appends resolve only after the backend's durability
//! point (fdatasync here, `acks=all` delivery reports on Kafka), partition choice for keyed
//! records is murmur2 on both, and offsets are committed explicitly by the caller.

use crate::error::LogError;
use crate::partitioner::partition_for_key;
use crate::record::{ConsumedRecord, Record, TopicPartition};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// Kafka's topic-name rules: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), LogError> {
    let bad = |reason| {
        Err(LogError::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 249 {
        return bad("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("\".\" and \"..\" are reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("it contains a character that is not allowed");
    }
    Ok(())
}

/// Per-topic settings. Every field has a default that works.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicConfig {
    /// Number of partitions (fixed at creation). Default 1.
    pub partitions: u32,
    /// Delete closed segments whose newest record is older than this. `None` keeps forever.
    pub retention_ms: Option<i64>,
    /// Delete the oldest closed segments while a partition holds more than this. `None`: no limit.
    pub retention_bytes: Option<u64>,
    /// Roll to a new segment file once the active one reaches this size. Default 128 MiB.
    pub segment_bytes: u64,
    /// Keep only the latest record per key (Kafka `cleanup.policy=compact`), for topics that
    /// hold state such as pipeline changelogs. Default false. The embedded log does not compact
    /// (it keeps every record, so readers must take the last record per key themselves).
    pub compact: bool,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: 128 << 20,
            compact: false,
        }
    }
}

/// What a topic looks like now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Its settings.
    pub config: TopicConfig,
    /// One entry per partition, in partition order.
    pub partitions: Vec<PartitionState>,
}

/// Offsets and size of one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Partition number.
    pub partition: u32,
    /// First offset still stored.
    pub log_start: u64,
    /// Next offset to be written (one past the last readable record).
    pub high_watermark: u64,
    /// Bytes on disk (0 where the backend cannot tell).
    pub size_bytes: u64,
    /// Number of segment files (0 where the backend has none).
    pub segments: u32,
}

/// The offset range of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffsets {
    /// First offset still stored.
    pub log_start: u64,
    /// Next offset to be written.
    pub high_watermark: u64,
}

/// The outcome of a durable append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendAck {
    /// The partition written to.
    pub partition: u32,
    /// The offset of each record, in the order given. Contiguous on the embedded backend.
    pub offsets: Vec<u64>,
}

/// How a read behaves.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Stop adding records once this many payload bytes are collected. At least one record is
    /// returned when one is available, even if it is larger (as Kafka's fetch does).
    pub max_bytes: usize,
    /// When nothing is available at `from`, wait up to this long for new records.
    pub max_wait: Duration,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_bytes: 1 << 20,
            max_wait: Duration::ZERO,
        }
    }
}

/// Records read from one partition.
#[derive(Clone, Debug, Default)]
pub struct ReadBatch {
    /// The records, in offset order.
    pub records: Vec<ConsumedRecord>,
    /// First offset still stored when the read ran.
    pub log_start: u64,
    /// Next offset to be written when the read ran.
    pub high_watermark: u64,
}

impl ReadBatch {
    /// The offset to read from next.
    pub fn next_offset(&self, from: u64) -> u64 {
        self.records.last().map_or(from, |r| r.offset + 1)
    }
}

/// The partitions currently assigned to one group member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Increases on every rebalance of the group.
    pub generation: u64,
    /// Assigned partitions, sorted.
    pub partitions: Vec<TopicPartition>,
}

/// A live membership in a consumer group. Dropping it leaves the group, which rebalances the
/// remaining members. Backends publish each new assignment on the watch channel, so callers can
/// flush state for revoked partitions before reading newly assigned ones.
pub struct Membership {
    group: String,
    member_id: String,
    assignment: watch::Receiver<Assignment>,
    on_leave: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Membership {
    /// Used by backends to build a membership.
    pub fn new(
        group: String,
        member_id: String,
        assignment: watch::Receiver<Assignment>,
        on_leave: Box<dyn FnOnce() + Send + Sync>,
    ) -> Self {
        Membership {
            group,
            member_id,
            assignment,
            on_leave: Some(on_leave),
        }
    }

    /// The group id.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// This member's id, unique within the group.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The current assignment.
    pub fn assignment(&self) -> Assignment {
        self.assignment.borrow().clone()
    }

    /// Waits for the next rebalance and returns the new assignment.
    pub async fn changed(&mut self) -> Result<Assignment, LogError> {
        self.assignment
            .changed()
            .await
            .map_err(|_| LogError::Group {
                group: self.group.clone(),
                reason: "the coordinator shut down".into(),
            })?;
        Ok(self.assignment.borrow_and_update().clone())
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(leave) = self.on_leave.take() {
            leave();
        }
    }
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("group", &self.group)
            .field("member_id", &self.member_id)
            .field("assignment", &*self.assignment.borrow())
            .finish()
    }
}

/// The log: topics of partitioned, durable, ordered records plus consumer groups.
///
/// Implemented by [`EmbeddedLog`](crate::EmbeddedLog) and, in `aorta-kafka`, over rdkafka.
#[async_trait]
pub trait Log: Send + Sync {
    /// A short backend name for logs and metrics (`"embedded"`, `"kafka"`).
    fn backend(&self) -> &'static str;

    /// Creates a topic.
    async fn create_topic(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<TopicDescription, LogError>;

    /// Deletes a topic and all its records.
    async fn delete_topic(&self, name: &str) -> Result<(), LogError>;

    /// Lists all topics, sorted by name.
    async fn list_topics(&self) -> Result<Vec<TopicDescription>, LogError>;

    /// Describes one topic.
    async fn describe_topic(&self, name: &str) -> Result<TopicDescription, LogError>;

    /// Appends a batch to one partition and resolves once it is durable.
    async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<AppendAck, LogError>;

    /// Reads records at and after `from`.
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        options: ReadOptions,
    ) -> Result<ReadBatch, LogError>;

    /// The offset range of a partition.
    async fn offsets(&self, topic: &str, partition: u32) -> Result<PartitionOffsets, LogError>;

    /// Durably stores committed offsets (the next offset to consume) for a group.
    async fn commit(&self, group: &str, offsets: &[(TopicPartition, u64)]) -> Result<(), LogError>;

    /// The committed offset of a group for one partition, if any.
    async fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, LogError>;

    /// Joins a consumer group subscribed to `topics`.
    async fn join_group(&self, group: &str, topics: &[String]) -> Result<Membership, LogError>;

    /// Appends records to a topic, choosing each record's partition: murmur2 of the key when
    /// there is one (Kafka's default), otherwise `fallback_partition` (callers spread keyless
    /// records, e.g. round-robin per batch). Returns `(partition, offset)` per record, in input
    /// order. Partitions are written concurrently.
    async fn produce(
        &self,
        topic: &str,
        records: Vec<Record>,
        fallback_partition: u32,
    ) -> Result<Vec<(u32, u64)>, LogError> {
        let partitions = self.describe_topic(topic).await?.partitions.len() as u32;
        if fallback_partition >= partitions {
            return Err(LogError::UnknownPartition {
                topic: topic.to_string(),
                partition: fallback_partition,
                partitions,
            });
        }
        let mut by_partition: BTreeMap<u32, (Vec<usize>, Vec<Record>)> = BTreeMap::new();
        for (i, r) in records.into_iter().enumerate() {
            let p = r
                .key
                .as_deref()
                .map_or(fallback_partition, |k| partition_for_key(k, partitions));
            let slot = by_partition.entry(p).or_default();
            slot.0.push(i);
            slot.1.push(r);
        }
        let total: usize = by_partition.values().map(|(idx, _)| idx.len()).sum();
        let mut indices = Vec::with_capacity(by_partition.len());
        let mut pending = Vec::with_capacity(by_partition.len());
        for (p, (idx, recs)) in by_partition {
            indices.push(idx);
            pending.push(self.append(topic, p, recs));
        }
        let acks = futures::future::try_join_all(pending).await?;
        let mut out = vec![(0u32, 0u64); total];
        for (idx, ack) in indices.into_iter().zip(acks) {
            for (i, off) in idx.into_iter().zip(ack.offsets) {
                out[i] = (ack.partition, off);
            }
        }
        Ok(out)
    }
}
