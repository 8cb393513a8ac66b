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
use crate::runner::PipelineStats;
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;

/// Where a sink says that its destination is down (it is retrying) or back up. The runner
/// gives each sink one; `/readyz` and `/api/pipelines` read it from the pipeline's stats.
#[derive(Clone, Default)]
pub struct SinkHealth {
    slot: Option<(Arc<PipelineStats>, usize, String)>,
}

impl SinkHealth {
    /// Reports into `stats` as sink number `index`, described as `describe`.
    pub fn new(stats: Arc<PipelineStats>, index: usize, describe: String) -> SinkHealth {
        SinkHealth {
            slot: Some((stats, index, describe)),
        }
    }

    /// The destination refused or did not answer; the sink retries.
    pub fn down(&self, why: &str) {
        if let Some((stats, i, d)) = &self.slot {
            let mut m = stats.sinks_down.lock().unwrap_or_else(|e| e.into_inner());
            m.insert(*i, (d.clone(), why.to_string()));
        }
    }

    /// A write went through.
    pub fn up(&self) {
        if let Some((stats, i, _)) = &self.slot {
            let mut m = stats.sinks_down.lock().unwrap_or_else(|e| e.into_inner());
            if !m.is_empty() {
                m.remove(i);
            }
        }
    }
}

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

    /// Gives the sink its health reporter (sinks that retry a remote destination use it).
    fn set_health(&mut self, _health: SinkHealth) {}

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
