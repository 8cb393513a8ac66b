//! The PostgreSQL sink against the real server while its connection is killed again and again
//! (`pg_terminate_backend` every 150 ms): every window still arrives, once, with the right
//! values — the sink reconnects and retries the batch, and upserts make a retried batch
//! harmless.

mod common;

use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, Record, TopicConfig};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_reach_postgres_exactly_once_while_the_connection_keeps_dying() {
    let Some(url) = aorta_testkit::postgres_url() else {
        return;
    };
    let table = format!("aorta_flaky_{}", std::process::id());
    let admin = client(&url).await;
    admin
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
    log.create_topic("in", TopicConfig::default())
        .await
        .unwrap();
    let mut expected: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    let recs: Vec<Record> = (0..30_000i64)
        .map(|i| {
            let k = format!("k{}", i % 50);
            let ts = i * 10;
            let e = expected.entry((k.clone(), ts / 1000 * 1000)).or_default();
            e.0 += 1;
            e.1 = e.1.max(i % 97);
            Record::new(json!({"k": k, "ts": ts, "v": i % 97}).to_string())
        })
        .collect();
    log.append("in", 0, recs).await.unwrap();

    let app = format!("aorta_flaky_{}", std::process::id());
    let toml = format!(
        r#"
[[pipelines]]
name = "pg"
from = ["in"]
max_read_bytes = 4096
checkpoint_interval = 0
[[pipelines.steps]]
op = "window"
key = "k"
time = "ts"
size = 1000
aggregates = {{ n = "count()", mx = "max(v)" }}
[[pipelines.sinks]]
type = "postgres"
url = "{url} application_name={app}"
table = "{table}"
create_table = true
max_attempts = 50
key = ["k", "window_start"]
columns = {{ k = "text", window_start = "bigint", window_end = "bigint", n = "bigint", mx = "bigint" }}
"#
    );
    // Kill the sink's connection over and over while it writes.
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let killer = {
        let (done, kills, url, app) = (done.clone(), kills.clone(), url.clone(), app.clone());
        tokio::spawn(async move {
            let c = client(&url).await;
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(150)).await;
                let rows = c
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                        &[&app],
                    )
                    .await
                    .unwrap();
                kills.fetch_add(rows.len() as u64, Ordering::Relaxed);
            }
        })
    };
    let report = common::run_until_end(&log, &toml, &dir.path().join("state.redb")).await;
    done.store(true, Ordering::Relaxed);
    killer.await.unwrap();
    let killed = kills.load(Ordering::Relaxed);
    eprintln!(
        "{} windows written while {killed} connections were killed",
        report.output
    );
    assert!(killed >= 3, "the connection was killed only {killed} times");

    let rows = admin
        .query(
            &format!("SELECT k, window_start, n, mx FROM {table} ORDER BY k, window_start"),
            &[],
        )
        .await
        .unwrap();
    let got: BTreeMap<(String, i64), (i64, i64)> = rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect();
    assert_eq!(got.len(), expected.len(), "every window, once");
    assert_eq!(got, expected);
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}
