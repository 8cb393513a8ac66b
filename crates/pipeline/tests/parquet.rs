//! The Parquet sink, read back by an independent reader (DuckDB's `read_parquet`): every row
//! the pipeline wrote to its reference topic is in the part files, in order, with the right
//! types and nulls; events that do not fit the schema go to the dead-letter topic with the
//! column named; an exact crash (outputs durable, checkpoint lost) leaves byte-identical parts.

mod common;

use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, Record, TopicConfig};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

const BASE: i64 = 1_700_000_000_000;

fn config(dir: &Path, max_rows: u64) -> String {
    format!(
        r#"
[[pipelines]]
name = "pq"
from = ["in"]
[[pipelines.sinks]]
type = "topic"
topic = "out"
[[pipelines.sinks]]
type = "parquet"
dir = "{}"
max_rows = {max_rows}
row_group_rows = 256
columns = {{ patient_id = "string", ts = "timestamp", hr = "int64", temp = "double", on_oxygen = "bool", codes = "json" }}
"#,
        dir.join("parquet").display()
    )
}

/// Event `i`: every field present and typed, except for deliberate gaps (nulls, missing
/// fields), times as epoch ms or RFC 3339, and every 401st event with a non-integer `hr`.
fn event(i: usize) -> Value {
    let ts = BASE + i as i64 * 1000;
    let mut e = json!({
        "patient_id": format!("P{:03}", i % 37),
        "ts": ts,
        "hr": 60 + (i * 7) % 80,
        "temp": 36.0 + (i % 30) as f64 / 10.0,
        "on_oxygen": i.is_multiple_of(3),
        "codes": ["8867-4", {"n": i % 5}],
        "ignored": "not a column",
    });
    if i.is_multiple_of(2) {
        // The same instant as an RFC 3339 string with an offset.
        e["ts"] = json!(format!(
            "2023-11-14T23:{:02}:{:02}.000+01:00",
            13 + i / 60 % 40,
            i % 60
        ));
    }
    if i.is_multiple_of(11) {
        e["temp"] = Value::Null;
    }
    if i.is_multiple_of(13) {
        e.as_object_mut().unwrap().remove("on_oxygen");
    }
    if i % 401 == 7 {
        e["hr"] = json!("tachy");
    }
    e
}

async fn fresh_log(dir: &Path) -> Arc<dyn Log> {
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.join("log"))).unwrap());
    log.create_topic("in", TopicConfig::default())
        .await
        .unwrap();
    log
}

async fn append(log: &Arc<dyn Log>, from: usize, to: usize) {
    let recs = (from..to)
        .map(|i| Record::new(event(i).to_string()))
        .collect();
    log.append("in", 0, recs).await.unwrap();
}

fn parts(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("parquet"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// DuckDB's view of the part files: the rows (in file, then row order) and the schema.
fn duckdb_rows(py: &Path, dir: &Path) -> (Vec<Value>, Vec<Value>) {
    let glob = dir.join("parquet/part-*.parquet");
    let rows = dir.join("rows.json");
    let schema = dir.join("schema.json");
    let script = format!(
        "import duckdb\n\
         con = duckdb.connect()\n\
         con.execute(\"SET TimeZone = 'UTC'\")\n\
         src = \"read_parquet('{glob}', filename=true, file_row_number=true)\"\n\
         con.execute(f\"COPY (SELECT patient_id, epoch_ms(ts) AS ts, hr, temp, on_oxygen, codes::VARCHAR AS codes FROM {{src}} ORDER BY filename, file_row_number) TO '{rows}' (FORMAT JSON)\")\n\
         con.execute(f\"COPY (SELECT column_name, column_type FROM (DESCRIBE SELECT * EXCLUDE (filename, file_row_number) FROM {{src}})) TO '{schema}' (FORMAT JSON)\")\n",
        glob = glob.display(),
        rows = rows.display(),
        schema = schema.display(),
    );
    let status = std::process::Command::new(py)
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success(), "duckdb failed");
    let read = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    (read(&rows), read(&schema))
}

/// What the part files must hold for one event of the reference topic.
fn expected_row(e: &Value) -> Value {
    let ts = match &e["ts"] {
        Value::String(s) => aorta_fhir::datetime::to_utc_nanos(s)
            .unwrap()
            .div_euclid(1_000_000) as i64,
        v => v.as_i64().unwrap(),
    };
    json!({
        "patient_id": e["patient_id"],
        "ts": ts,
        "hr": e["hr"],
        "temp": e["temp"],
        "on_oxygen": e.get("on_oxygen").cloned().unwrap_or(Value::Null),
        "codes": e["codes"].to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_back_every_row_with_its_types_and_misfits_are_dead_lettered() {
    let Some(py) = aorta_testkit::duckdb_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(dir.path()).await;
    const N: usize = 5000;
    append(&log, 0, N).await;
    let report = common::run_until_end(
        &log,
        &config(dir.path(), 700),
        &dir.path().join("state.redb"),
    )
    .await;

    let bad: Vec<usize> = (0..N).filter(|i| i % 401 == 7).collect();
    assert_eq!(report.dead_lettered, bad.len() as u64, "{report:?}");
    let dlq = common::read_all(&log, "pq.dlq").await;
    assert_eq!(dlq.len(), bad.len());
    for (r, i) in dlq.iter().zip(&bad) {
        let v: Value = serde_json::from_slice(&r.record.value).unwrap();
        assert_eq!(v, event(*i), "the dead letter is the event itself");
        let reason = r
            .record
            .headers
            .iter()
            .find(|(k, _)| k == "aorta.error")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        assert_eq!(
            reason, "column `hr` wants an integer, the event has \"tachy\"",
            "{:?}",
            r.record.headers
        );
    }

    let reference: Vec<Value> = common::read_all(&log, "out")
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.record.value).unwrap())
        .collect();
    assert_eq!(reference.len(), N, "the topic sink takes every event");
    let expected: Vec<Value> = reference
        .iter()
        .filter(|e| e["hr"].is_i64())
        .map(expected_row)
        .collect();
    assert_eq!(expected.len(), N - bad.len());

    let files = parts(dir.path());
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let want: Vec<String> = (0..expected.len().div_ceil(700))
        .map(|p| format!("part-{p:06}.parquet"))
        .collect();
    assert_eq!(
        names, want,
        "full parts of 700 rows, the last closed at the end, no staging left"
    );

    let (rows, schema) = duckdb_rows(&py, dir.path());
    assert_eq!(rows.len(), expected.len());
    for (n, (got, want)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "row {n}");
    }
    let types: Vec<(String, String)> = schema
        .iter()
        .map(|c| {
            (
                c["column_name"].as_str().unwrap().to_string(),
                c["column_type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let t = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        types,
        vec![
            t("patient_id", "VARCHAR"),
            t("ts", "TIMESTAMP WITH TIME ZONE"),
            t("hr", "BIGINT"),
            t("temp", "DOUBLE"),
            t("on_oxygen", "BOOLEAN"),
            t("codes", "JSON"),
        ],
        "columns in config order with their Parquet types"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_parts_were_written_leaves_the_same_parts() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(dir.path()).await;
    let state = dir.path().join("state/state.redb");
    let cfg = config(dir.path(), 300);
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    // First run: 1000 events → parts 0–2 closed and part 3 closed at the end of input.
    append(&log, 0, 1000).await;
    common::run_until_end(&log, &cfg, &state).await;
    std::fs::copy(&state, dir.path().join("checkpoint-copy.redb")).unwrap();
    // Second run: more parts; then lose its checkpoint (its outputs are durable).
    append(&log, 1000, 4000).await;
    common::run_until_end(&log, &cfg, &state).await;
    let after_second = parts(dir.path());
    assert!(after_second.len() >= 12, "{} parts", after_second.len());
    std::fs::copy(dir.path().join("checkpoint-copy.redb"), &state).unwrap();
    // A half-written part of the crashed process, and a stray file of the user's.
    std::fs::write(
        dir.path().join("parquet/.part-000009.parquet.tmp"),
        b"PAR1 torn",
    )
    .unwrap();
    let third = common::run_until_end(&log, &cfg, &state).await;
    assert_eq!(third.input, 3000, "the lost round was replayed");
    assert!(
        parts(dir.path()) == after_second,
        "the replay rebuilt byte-identical part files and removed the torn one"
    );
}
