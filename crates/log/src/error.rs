//! Errors of the log. Each message names the thing that is wrong and, where there is one, the fix.

use std::path::PathBuf;

/// Everything that can go wrong in the log, on any backend.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The topic does not exist.
    #[error("topic \"{topic}\" does not exist; create it with `aorta topics create {topic}`")]
    UnknownTopic {
        /// Topic name.
        topic: String,
    },
    /// A topic of that name already exists.
    #[error("topic \"{topic}\" already exists")]
    TopicExists {
        /// Topic name.
        topic: String,
    },
    /// The topic name is not allowed.
    #[error("invalid topic name {name:?}: {reason} (use 1-249 characters from a-z A-Z 0-9 . _ -)")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The partition number is out of range.
    #[error(
        "topic \"{topic}\" has {partitions} partition(s); partition {partition} does not exist"
    )]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// Requested partition.
        partition: u32,
        /// How many the topic has.
        partitions: u32,
    },
    /// A read asked for an offset outside the partition's range.
    #[error(
        "offset {requested} is out of range for {topic}/{partition}: valid offsets are {log_start}..={high_watermark} (retention may have deleted older records)"
    )]
    OffsetOutOfRange {
        /// Topic name.
        topic: String,
        /// Partition.
        partition: u32,
        /// Requested offset.
        requested: u64,
        /// First offset still stored.
        log_start: u64,
        /// Next offset to be written.
        high_watermark: u64,
    },
    /// A record exceeds [`Limits::max_record_bytes`](crate::Limits::max_record_bytes) or the
    /// header count limit.
    #[error(
        "record {index} of the batch is too large: {what} is {size}, the limit is {max} ({knob})"
    )]
    RecordTooLarge {
        /// Position of the record in the batch.
        index: usize,
        /// What was measured.
        what: &'static str,
        /// Measured size.
        size: usize,
        /// The limit.
        max: usize,
        /// The config key that raises it.
        knob: &'static str,
    },
    /// A batch exceeds the batch limits.
    #[error("batch too large: {what} is {size}, the limit is {max} ({knob}); split the batch")]
    BatchTooLarge {
        /// What was measured.
        what: &'static str,
        /// Measured size.
        size: usize,
        /// The limit.
        max: usize,
        /// The config key that raises it.
        knob: &'static str,
    },
    /// A configuration value is not acceptable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Stored data failed verification. The damaged bytes are never served.
    #[error(
        "corrupt data in {file} at byte {position}{}: {detail}",
        offset.map(|o| format!(" (batch starting at offset {o})")).unwrap_or_default()
    )]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte position of the damaged batch in that file.
        position: u64,
        /// The batch's first offset, when it could be read.
        offset: Option<u64>,
        /// What check failed.
        detail: String,
    },
    /// Another process holds the data directory.
    #[error(
        "data directory {dir} is locked by another process ({holder}): the embedded log has one owner at a time; stop that process (e.g. a running `aorta consume --follow`) or pass a different --data-dir"
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
    /// A partition stopped accepting writes after an fsync failure (the kernel may have dropped
    /// dirty pages, so retrying the fsync could report success for lost data).
    #[error(
        "{topic}/{partition} is fenced after a failed fsync ({reason}); restart Aorta to recover from the last durable state"
    )]
    Fenced {
        /// Topic name.
        topic: String,
        /// Partition.
        partition: u32,
        /// The original I/O error.
        reason: String,
    },
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The consumer group operation is not valid.
    #[error("consumer group \"{group}\": {reason}")]
    Group {
        /// Group id.
        group: String,
        /// What is wrong.
        reason: String,
    },
    /// The backend (a Kafka cluster) refused or failed an operation.
    #[error("{operation} failed on the {backend} backend: {reason}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What was being done, naming the topic/group.
        operation: String,
        /// The backend's own error.
        reason: String,
    },
    /// A backend-internal failure (a worker task panicked or a client library failed).
    #[error("internal error in the log backend: {0}")]
    Internal(String),
}

impl LogError {
    /// Wraps an I/O error with a context string.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LogError::Io {
            context: context.into(),
            source,
        }
    }
}
