//! Every bound the log enforces. An unbounded queue or buffer is a latent outage; each limit
//! here is documented, enforced with a clear [`LogError`](crate::LogError), and tested.

use serde::{Deserialize, Serialize};

/// Bounds on what the log accepts and holds open. Defaults suit a single edge node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest record (key + value + header names and values), in bytes. Default 8 MiB:
    /// HL7 messages with embedded PDFs fit; images should travel by claim check.
    pub max_record_bytes: usize,
    /// Largest append batch, in encoded bytes. Default 64 MiB.
    pub max_batch_bytes: usize,
    /// Most records in one append batch. Default 1,000,000.
    pub max_batch_records: usize,
    /// Most headers on one record. Default 256.
    pub max_headers_per_record: usize,
    /// Largest `max_bytes` a single read may ask for. Default 64 MiB.
    pub max_read_bytes: usize,
    /// Most closed-segment files kept open for reading at once (an LRU closes the rest).
    /// Active segments hold one write handle per partition on top. Default 512.
    pub max_open_segments: usize,
    /// Most partitions one topic may have. Default 1024.
    pub max_partitions_per_topic: u32,
    /// Largest segment file a topic may configure. Positions inside a segment are 32-bit, so
    /// this can be at most 2 GiB; default 1 GiB.
    pub max_segment_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 8 << 20,
            max_batch_bytes: 64 << 20,
            max_batch_records: 1_000_000,
            max_headers_per_record: 256,
            max_read_bytes: 64 << 20,
            max_open_segments: 512,
            max_partitions_per_topic: 1024,
            max_segment_bytes: 1 << 30,
        }
    }
}
