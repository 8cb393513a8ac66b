//! Sinks other than topics (topics are written by the runner itself, so that every topic a
//! pipeline writes — sinks, routes, late records, dead letters — gets the same restart
//! suppression). A sink's `write` returns once the batch is durable; its `position` goes into
//! the checkpoint and `recover` brings it back to that position after a crash.

mod file;
mod parquet;
mod postgres;
mod webhook;

pub use file::FileSink;
pub use parquet::ParquetSink;
pub use postgres::PostgresSink;
pub use webhook::WebhookSink;

use crate::event::Event;
use async_trait::async_trait;
use serde_json::Value;

/// An event a sink gave up on (it goes to the pipeline's dead-letter topic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undelivered {
    /// Its index in the batch given to `write`.
    pub index: usize,
    /// Why.
    pub reason: String,
}

/// A destination outside the log.
#[async_trait]
pub trait Sink: Send + Sync {
    /// One line for the topology (`file out/vitals.jsonl`).
    fn describe(&self) -> String;

    /// Writes a batch of events, each with its output identity (`aorta.emit`, the same after
    /// a restart); returns once the batch is durable. `Err` stops the pipeline (the sink could
    /// not go on after its retries); events the sink gave up on one by one come back in the
    /// `Ok` list and go to the dead-letter topic.
    async fn write(&mut self, events: &[(Event, String)]) -> Result<Vec<Undelivered>, String>;

    /// The position to checkpoint after a successful write.
    fn position(&self) -> Value {
        Value::Null
    }

    /// Returns the sink to a checkpointed position (`None`: no checkpoint yet), undoing what
    /// was written after it where the sink can (files), or relying on idempotence (upserts).
    async fn recover(&mut self, _position: Option<Value>) -> Result<(), String> {
        Ok(())
    }

    /// Called once the checkpoint holding the last `position` is durable: what the sink kept
    /// to rebuild its output after a crash before that checkpoint can go.
    async fn checkpointed(&mut self) {}

    /// Called when the pipeline has nothing to read; `Ok(true)` when the sink's position
    /// moved (a part closed on age), so that a checkpoint follows.
    async fn idle(&mut self) -> Result<bool, String> {
        Ok(false)
    }

    /// Called when the pipeline stops or reaches the end of its input, before its last
    /// checkpoint: buffered output becomes visible (a Parquet part is closed).
    async fn close(&mut self) -> Result<(), String> {
        Ok(())
    }
}
