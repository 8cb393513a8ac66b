//! # aorta-log — topics, partitions, offsets, consumer groups
//!
//! This crate owns Aorta's *log*: the ordered, durable, partitioned sequence of records that
//! every other layer reads from and writes to. It has two parts:
//!
//! | module          | what it owns |
//! |-----------------|--------------|
//! | [`Log`] (`api`) | the backend-neutral trait: create/list/describe/delete topics, batch append that returns offsets only once durable, reads by offset with a byte limit, consumer-group membership and explicit commits |
//! | [`record`]      | the nouns: [`Record`], [`ConsumedRecord`], [`TopicPartition`] |
//! | [`partitioner`] | Kafka-compatible murmur2 key partitioning, so a key lands on the same partition number on every backend |
//! | [`group`]       | the range assignor shared by every backend that assigns partitions itself |
//! | [`limits`]      | every bound the log enforces (record, batch, read sizes, open files, partitions) |
//! | [`metrics`]     | [`Histogram`]: the lock-free latency histogram every layer records into |
//! | [`embedded`]    | the default backend: segment files on local disk with CRC32C, group commit and crash recovery |
//! | [`error`]       | [`LogError`]: each variant names the thing and the fix |
//!
//! ## Example
//! ```
//! use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, ReadOptions, Record, TopicConfig};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), aorta_log::LogError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path()))?;
//! log.create_topic("adt", TopicConfig { partitions: 3, ..TopicConfig::default() }).await?;
//! // Keyed records go to the murmur2 partition of their key; the call returns once durable.
//! let placed = log.produce("adt", vec![Record::new("MSH|^~\\&|...").with_key("MRN001")], 0).await?;
//! let (partition, offset) = placed[0];
//! let batch = log.read("adt", partition, offset, ReadOptions::default()).await?;
//! assert_eq!(batch.records[0].record.key.as_deref(), Some(&b"MRN001"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! ## Invariants
//! * Offsets in a partition are dense and strictly increasing from the log start offset.
//! * [`Log::append`] returns only after the batch is durable under the configured fsync policy
//!   (`always`: fdatasync'd), and a reader never sees a record before that point.
//! * A record that fails its checksum is never returned: the read fails with
//!   [`LogError::Corrupt`] naming the file and byte position.
//! * Every input is bounded by [`Limits`]; exceeding a bound is an error, never a panic.
//!
//! ## Must not depend on
//! Anything healthcare-specific (HL7, FHIR, clinical rules), any network server, or a concrete
//! Kafka client: the Kafka backend lives in its own crate and depends on this one.

pub mod api;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod embedded;
pub mod error;
pub mod group;
pub mod limits;
pub mod metrics;
pub mod partitioner;
pub mod record;

pub use api::{
    AppendAck, Assignment, Log, Membership, PartitionOffsets, PartitionState, ReadBatch,
    ReadOptions, TopicConfig, TopicDescription, validate_topic_name,
};
pub use embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
pub use error::LogError;
pub use limits::Limits;
pub use metrics::{Histogram, HistogramSnapshot};
pub use record::{ConsumedRecord, Header, Record, TopicPartition};

/// Result alias used throughout the crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
