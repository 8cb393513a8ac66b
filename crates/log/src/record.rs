//! The nouns that flow through the log.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One record header: a UTF-8 name and opaque bytes, as in Kafka.
pub type Header = (String, Bytes);

/// A record as a producer hands it to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Optional partitioning key (murmur2-hashed when the caller does not choose a partition).
    pub key: Option<Bytes>,
    /// The payload, kept byte-for-byte.
    pub value: Bytes,
    /// Ordered headers; names may repeat.
    pub headers: Vec<Header>,
    /// Create time in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

impl Record {
    /// A keyless record stamped with the current wall-clock time.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Record {
            key: None,
            value: value.into(),
            headers: Vec::new(),
            timestamp_ms: now_ms(),
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the create timestamp.
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// Bytes of key, value and headers: the figure the record-size limit applies to.
    pub fn payload_len(&self) -> usize {
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

/// A record read back from the log, with where it lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The partition-relative offset.
    pub offset: u64,
    /// The record as it was appended.
    pub record: Record,
}

/// A (topic, partition) pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number, from 0.
    pub partition: u32,
}

impl TopicPartition {
    /// Builds a pair.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
