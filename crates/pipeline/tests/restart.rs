//! The restart path in isolation: outputs written after the last checkpoint (a crash between
//! the durable write and the checkpoint) are recognised and not written again; the file sink
//! is cut back to the checkpoint and rewritten.
//!
//! The crash is made exact: run the pipeline over a first part of the input, keep a copy of its
//! checkpoint store, run it over the rest (outputs + checkpoint), then put the old checkpoint
//! back — which is precisely "outputs durable, checkpoint not" — and run again.

mod common;

use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, Record, TopicConfig};
use aorta_pipeline::RunReport;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

async fn run(log: &Arc<dyn Log>, dir: &Path) -> RunReport {
    let toml = format!(
        r#"
[[pipelines]]
name = "r"
from = ["in"]
[[pipelines.steps]]
op = "route"
routes = [{{ when = "v % 10 == 0", to = "tens" }}]
[[pipelines.steps]]
op = "window"
key = "k"
time = "ts"
size = 1000
aggregates = {{ n = "count()", s = "sum(v)" }}
[[pipelines.sinks]]
type = "topic"
topic = "out"
partitions = 2
[[pipelines.sinks]]
type = "file"
path = "{}"
"#,
        dir.join("out.jsonl").display()
    );
    common::run_until_end(log, &toml, &dir.join("state/state.redb")).await
}

async fn append(log: &Arc<dyn Log>, from: usize, to: usize) {
    let recs = (from..to)
        .map(|i| Record::new(json!({"k": format!("k{}", i % 7), "ts": i * 37, "v": i}).to_string()))
        .collect();
    log.append("in", 0, recs).await.unwrap();
}

async fn dump(
    log: &Arc<dyn Log>,
    topic: &str,
) -> Vec<(Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>)> {
    let mut out = Vec::new();
    let parts = log.describe_topic(topic).await.unwrap().partitions.len() as u32;
    for p in 0..parts {
        for r in aorta_log::conformance::read_partition(log.as_ref(), topic, p).await {
            out.push((
                r.record.key.map(|k| k.to_vec()),
                r.record.value.to_vec(),
                r.record
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, v.to_vec()))
                    .collect(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_written_after_the_last_checkpoint_are_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
    log.create_topic("in", TopicConfig::default())
        .await
        .unwrap();
    append(&log, 0, 3000).await;
    run(&log, dir.path()).await;
    std::fs::copy(
        dir.path().join("state/state.redb"),
        dir.path().join("checkpoint-copy.redb"),
    )
    .unwrap();
    append(&log, 3000, 9000).await;
    let second = run(&log, dir.path()).await;
    assert!(second.output > 500, "{second:?}");
    let (out, tens) = (dump(&log, "out").await, dump(&log, "tens").await);
    let file = std::fs::read(dir.path().join("out.jsonl")).unwrap();

    // "Crash": the outputs of the second run are durable, its checkpoint is lost.
    std::fs::copy(
        dir.path().join("checkpoint-copy.redb"),
        dir.path().join("state/state.redb"),
    )
    .unwrap();
    let third = run(&log, dir.path()).await;
    assert_eq!(third.input, second.input, "the same input was replayed");
    assert_eq!(
        third.suppressed, second.output,
        "every output of the lost round is recognised: {third:?}"
    );
    assert_eq!(
        dump(&log, "out").await,
        out,
        "nothing written twice to the sink topic"
    );
    assert_eq!(
        dump(&log, "tens").await,
        tens,
        "nothing written twice to the route topic"
    );
    assert_eq!(
        std::fs::read(dir.path().join("out.jsonl")).unwrap(),
        file,
        "the file sink was cut back and rewritten identically"
    );
}
