//! Sinks other than topics (topics are written by the runner itself, so that every topic a
//! pipeline writes — sinks, routes, late records, dead letters — gets the same restart
//! suppression). A sink's `write` returns once the batch is durable; its `position` goes into
//! the checkpoint and `recover` brings it back to that position after a crash.

mod file;
mod postgres;

pub use file::FileSink;
pub use postgres::PostgresSink;

use crate::event::Event;
use async_trait::async_trait;
use serde_json::Value;

/// A destination outside the log.
#[async_trait]
pub trait Sink: Send + Sync {
    /// One line for the topology (`file out/vitals.jsonl`).
    fn describe(&self) -> String;

    /// Writes a batch; returns once it is durable (or fails after the sink's retries).
    async fn write(&mut self, events: &[Event]) -> Result<(), String>;

    /// The position to checkpoint after a successful write.
    fn position(&self) -> Value {
        Value::Null
    }

    /// Returns the sink to a checkpointed position (`None`: no checkpoint yet), undoing what
    /// was written after it where the sink can (files), or relying on idempotence (upserts).
    async fn recover(&mut self, _position: Option<Value>) -> Result<(), String> {
        Ok(())
    }
}
