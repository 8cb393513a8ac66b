//! `enrich` against each table source: a CSV file, a keyed topic (latest value per key,
//! tombstones, updates applied while the pipeline runs) and a PostgreSQL query (column types
//! kept), with each `on_missing` policy.

mod common;

use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, ReadOptions, Record, TopicConfig};
use aorta_pipeline::{RunOptions, Runner, StateStore, parse_pipelines};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

async fn log_with_events(dir: &Path, events: &[Value]) -> Arc<dyn Log> {
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.join("log"))).unwrap());
    log.create_topic("obs", TopicConfig::default())
        .await
        .unwrap();
    append(&log, "obs", events).await;
    log
}

async fn append(log: &Arc<dyn Log>, topic: &str, events: &[Value]) {
    let recs: Vec<Record> = events.iter().map(|v| Record::new(v.to_string())).collect();
    log.append(topic, 0, recs).await.unwrap();
}

async fn values(log: &Arc<dyn Log>, topic: &str) -> Vec<Value> {
    common::read_all(log, topic)
        .await
        .into_iter()
        .map(|r| serde_json::from_slice(&r.record.value).unwrap())
        .collect()
}

fn pipeline(table: &str, on_missing: &str, fields: &str) -> String {
    format!(
        r#"
[[pipelines]]
name = "enr"
from = ["obs"]
[[pipelines.steps]]
op = "enrich"
key = "ward"
into = "ward_info"
on_missing = "{on_missing}"
{fields}
table = {table}
[[pipelines.sinks]]
type = "topic"
topic = "out"
"#
    )
}

fn events() -> Vec<Value> {
    vec![
        json!({"n": 1, "ward": "W1"}),
        json!({"n": 2, "ward": 2}),
        json!({"n": 3, "ward": "W9"}),
        json!({"n": 4}),
        json!({"n": 5, "ward": "W1"}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_table_joins_with_each_missing_policy() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("wards.csv");
    std::fs::write(
        &csv,
        "ward_id,name,beds,zip\nW1,\"Cardiology, 3rd floor\",24,01234\n2,ICU,12,\nW3,Oncology,30,99999\n",
    )
    .unwrap();
    let table = format!(
        "{{ type = \"csv\", path = {:?}, key = \"ward_id\" }}",
        csv.display().to_string()
    );

    // keep: a left join.
    let log = log_with_events(dir.path(), &events()).await;
    let r =
        common::run_until_end(&log, &pipeline(&table, "keep", ""), &dir.path().join("s1")).await;
    let out = values(&log, "out").await;
    assert_eq!(r.output, 5);
    let w1 = json!({"ward_id": "W1", "name": "Cardiology, 3rd floor", "beds": 24, "zip": "01234"});
    assert_eq!(out[0], json!({"n": 1, "ward": "W1", "ward_info": w1}));
    // A numeric key matches the text key "2"; an empty cell is null.
    assert_eq!(
        out[1]["ward_info"],
        json!({"ward_id": 2, "name": "ICU", "beds": 12, "zip": null})
    );
    assert_eq!(out[2], json!({"n": 3, "ward": "W9"}));
    assert_eq!(out[3], json!({"n": 4}));
    assert_eq!(out[4]["ward_info"]["name"], "Cardiology, 3rd floor");

    // drop: an inner join, with fields picked.
    let dir2 = tempfile::tempdir().unwrap();
    let log = log_with_events(dir2.path(), &events()).await;
    let r = common::run_until_end(
        &log,
        &pipeline(&table, "drop", "fields = [\"name\"]"),
        &dir2.path().join("s"),
    )
    .await;
    let out = values(&log, "out").await;
    let ns: Vec<i64> = out.iter().map(|v| v["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, [1, 2, 5]);
    assert_eq!(out[1]["ward_info"], json!({"name": "ICU"}));
    assert_eq!(r.steps[0].1.dropped, 2);

    // dead-letter: the misses go to the DLQ with the reason.
    let dir3 = tempfile::tempdir().unwrap();
    let log = log_with_events(dir3.path(), &events()).await;
    let r = common::run_until_end(
        &log,
        &pipeline(&table, "dead-letter", ""),
        &dir3.path().join("s"),
    )
    .await;
    assert_eq!(r.dead_lettered, 2);
    let dlq = log
        .read("enr.dlq", 0, 0, ReadOptions::default())
        .await
        .unwrap();
    let reasons: Vec<String> = dlq
        .records
        .iter()
        .map(|r| {
            let h = r
                .record
                .headers
                .iter()
                .find(|(k, _)| k == "aorta.error")
                .unwrap();
            String::from_utf8(h.1.to_vec()).unwrap()
        })
        .collect();
    assert!(
        reasons[0].contains("no row for key \"W9\""),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("is null"), "{}", reasons[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_csv_or_key_column_stops_the_pipeline_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_events(dir.path(), &events()).await;
    let run = |table: String| {
        let log = log.clone();
        let state = dir.path().join("s");
        async move {
            let config = parse_pipelines(&pipeline(&table, "keep", ""))
                .unwrap()
                .remove(0);
            let options = RunOptions {
                until_end: true,
                idle_wait: Duration::from_millis(10),
                state: StateStore::open(&state).unwrap(),
                start: None,
                restore_changelog: true,
            };
            let (_tx, rx) = tokio::sync::watch::channel(false);
            Runner::new(log, config, options)
                .unwrap()
                .run(rx)
                .await
                .err()
                .map(|e| e.to_string())
        }
    };
    let missing = dir.path().join("nope.csv");
    let e = run(format!(
        "{{ type = \"csv\", path = {:?}, key = \"id\" }}",
        missing.display().to_string()
    ))
    .await
    .expect("a missing file must fail");
    assert!(
        e.contains("steps[0] (enrich)") && e.contains("nope.csv"),
        "{e}"
    );
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "a,b\n1,2\n").unwrap();
    let e = run(format!(
        "{{ type = \"csv\", path = {:?}, key = \"id\" }}",
        csv.display().to_string()
    ))
    .await
    .expect("a missing key column must fail");
    assert!(e.contains("no key column \"id\""), "{e}");
    let e = run("{ type = \"topic\", topic = \"wards\" }".into())
        .await
        .expect("a missing table topic must fail");
    assert!(e.contains("table topic \"wards\" does not exist"), "{e}");
    assert!(
        values(&log, "out").await.is_empty(),
        "nothing may be joined against a table that did not load"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_table_keeps_the_latest_value_per_key_and_follows_updates() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_events(
        dir.path(),
        &[json!({"n": 1, "ward": "W1"}), json!({"n": 2, "ward": "W2"})],
    )
    .await;
    log.create_topic("wards", TopicConfig::default())
        .await
        .unwrap();
    let keyed = |k: &str, v: &str| Record::new(v.to_string()).with_key(k.to_string());
    log.append(
        "wards",
        0,
        vec![
            keyed("W1", r#"{"name":"old"}"#),
            keyed("W2", r#"{"name":"ICU"}"#),
            keyed("W1", r#"{"name":"Cardiology"}"#),
            keyed("W2", ""), // tombstone
        ],
    )
    .await
    .unwrap();
    let config = parse_pipelines(&pipeline(
        "{ type = \"topic\", topic = \"wards\" }",
        "keep",
        "",
    ))
    .unwrap()
    .remove(0);
    let options = RunOptions {
        until_end: false,
        idle_wait: Duration::from_millis(10),
        state: StateStore::open(&dir.path().join("s")).unwrap(),
        start: None,
        restore_changelog: true,
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Runner::new(log.clone(), config, options).unwrap().run(rx));
    let wait_for = |n: usize| {
        let log = log.clone();
        async move {
            for _ in 0..500 {
                if values(&log, "out").await.len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("outputs did not reach {n}");
        }
    };
    wait_for(2).await;
    // An update while running is applied before later events are joined.
    log.append("wards", 0, vec![keyed("W2", r#"{"name":"ICU North"}"#)])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&log, "obs", &[json!({"n": 3, "ward": "W2"})]).await;
    wait_for(3).await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    let out = values(&log, "out").await;
    assert_eq!(
        out[0]["ward_info"],
        json!({"name": "Cardiology"}),
        "latest value wins"
    );
    assert_eq!(out[1].get("ward_info"), None, "a tombstone deletes the key");
    assert_eq!(out[2]["ward_info"], json!({"name": "ICU North"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_query_table_keeps_column_types() {
    let Some(url) = aorta_testkit::postgres_url() else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let t = format!("aorta_wards_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (id text PRIMARY KEY, name text, beds int, icu boolean, rate numeric);
             INSERT INTO {t} VALUES ('W1', 'Cardiology', 24, false, 1.5), ('2', 'ICU', 12, true, null), ('W3', 'closed', 0, false, 0)"
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_events(dir.path(), &events()).await;
    let table = format!(
        "{{ type = \"postgres\", url = \"{url}\", query = \"SELECT id, name, beds, icu, rate FROM {t} WHERE beds > 0\", key = \"id\" }}"
    );
    common::run_until_end(&log, &pipeline(&table, "keep", ""), &dir.path().join("s")).await;
    let out = values(&log, "out").await;
    assert_eq!(
        out[0]["ward_info"],
        json!({"id": "W1", "name": "Cardiology", "beds": 24, "icu": false, "rate": 1.5})
    );
    assert_eq!(
        out[1]["ward_info"],
        json!({"id": "2", "name": "ICU", "beds": 12, "icu": true, "rate": null})
    );
    assert_eq!(out[2].get("ward_info"), None);
    client
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
}
