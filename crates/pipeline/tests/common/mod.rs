//! Helpers shared by the pipeline integration tests.

use aorta_log::Log;
use aorta_pipeline::{RunOptions, RunReport, Runner, StateStore, parse_pipelines};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Runs the first pipeline of `toml` over its input as it is now (a bounded run), with its
/// checkpoints in `state`.
#[allow(dead_code)] // not every test file runs the first pipeline
pub async fn run_until_end(log: &Arc<dyn Log>, toml: &str, state: &Path) -> RunReport {
    let config = parse_pipelines(toml).unwrap().remove(0);
    run_config(log, config, state).await
}

/// Runs the pipeline called `name` of `toml` like [`run_until_end`].
#[allow(dead_code)] // not every test file runs several pipelines
pub async fn run_named(log: &Arc<dyn Log>, toml: &str, name: &str, state: &Path) -> RunReport {
    let config = parse_pipelines(toml)
        .unwrap()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no pipeline {name}"));
    run_config(log, config, state).await
}

async fn run_config(
    log: &Arc<dyn Log>,
    config: aorta_pipeline::PipelineConfig,
    state: &Path,
) -> RunReport {
    let options = RunOptions {
        until_end: true,
        idle_wait: Duration::from_millis(10),
        state: StateStore::open(state).unwrap(),
        start: None,
        restore_changelog: true,
    };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    Runner::new(log.clone(), config, options)
        .unwrap()
        .run(stopped)
        .await
        .unwrap()
}

/// Every record of every partition of `topic`, partition by partition (empty if the topic
/// does not exist).
#[allow(dead_code)] // not every test file reads topics back
pub async fn read_all(log: &Arc<dyn Log>, topic: &str) -> Vec<aorta_log::ConsumedRecord> {
    let Ok(d) = log.describe_topic(topic).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in d.partitions {
        let mut next = p.log_start;
        while next < p.high_watermark {
            let b = log
                .read(topic, p.partition, next, aorta_log::ReadOptions::default())
                .await
                .unwrap();
            next = b.next_offset(next);
            out.extend(b.records);
        }
    }
    out
}
