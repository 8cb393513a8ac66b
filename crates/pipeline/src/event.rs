//! What flows between operators: a record's payload (raw bytes, and its JSON when decoded),
//! key, timestamp, headers, and where it came from.

use crate::expr::Meta;
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;

/// Header naming the source record of an event: `topic/partition/offset`. Carried by every
/// record a pipeline writes, so an output can be traced back to the bytes that caused it.
pub const LINEAGE_HEADER: &str = "aorta.lineage";
/// Header naming why a record was dead-lettered.
pub const ERROR_HEADER: &str = "aorta.error";
/// Header naming the operator that failed (`<pipeline>/<index>:<op>`).
pub const OPERATOR_HEADER: &str = "aorta.operator";
/// Header of every pipeline output: `<pipeline>:<input partition>:<input offset>:<n>`, the
/// output's identity, used to suppress re-emission after a restart.
pub const EMIT_HEADER: &str = "aorta.emit";

/// Where an event was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Source topic.
    pub topic: Arc<str>,
    /// Source partition.
    pub partition: u32,
    /// Source offset.
    pub offset: u64,
}

impl Origin {
    /// `topic/partition/offset`.
    pub fn lineage(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// One event in a pipeline.
#[derive(Clone, Debug)]
pub struct Event {
    /// Record key.
    pub key: Option<Bytes>,
    /// The payload as received (kept for pass-through and dead-lettering).
    pub raw: Bytes,
    /// The decoded JSON payload; `None` for byte payloads (e.g. HL7 v2) not decoded as JSON.
    pub json: Option<Value>,
    /// Record timestamp (ms since the epoch).
    pub timestamp_ms: i64,
    /// Record headers, in order.
    pub headers: Vec<(String, Bytes)>,
    /// Where the event came from (derived events keep their source's origin).
    pub origin: Origin,
}

impl Event {
    /// The metadata expressions can read.
    pub fn meta(&self) -> Meta<'_> {
        Meta {
            key: self.key.as_deref(),
            timestamp_ms: self.timestamp_ms,
            topic: &self.origin.topic,
            partition: self.origin.partition,
            offset: self.origin.offset,
            headers: &self.headers,
        }
    }

    /// The JSON payload, or `null` for byte payloads.
    pub fn value(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.json.as_ref().unwrap_or(&NULL)
    }

    /// The payload to write: the JSON if the event has one (re-encoded when an operator changed
    /// it), else the raw bytes.
    pub fn encode(&self) -> Bytes {
        match &self.json {
            Some(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            None => self.raw.clone(),
        }
    }

    /// A derived event with a new JSON payload, keeping the key, time, headers and origin.
    pub fn derive(&self, json: Value) -> Event {
        Event {
            key: self.key.clone(),
            raw: Bytes::new(),
            json: Some(json),
            timestamp_ms: self.timestamp_ms,
            headers: self.headers.clone(),
            origin: self.origin.clone(),
        }
    }
}
