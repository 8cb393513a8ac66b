//! Scale-out on Kafka: two `aorta` worker processes in one consumer group share a 6-partition
//! topic; one is SIGKILLed; the other takes over its partitions; every record produced is
//! processed at least once (checked by sequence numbers). At-least-once is the promise: records
//! the killed worker printed but had not committed are processed again by the survivor.

use aorta_kafka::{KafkaConfig, KafkaLog};
use aorta_log::{Log, Record, TopicConfig};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Seen = Arc<Mutex<Vec<(u32, u64)>>>;

/// Starts a worker and a thread that collects (partition, seq) of every record it prints.
/// Its diagnostics go to `<config dir>/<name>.log` (read back if the test fails).
fn worker(config: &std::path::Path, name: &str) -> (Child, Seen) {
    let log = std::fs::File::create(config.with_file_name(format!("{name}.log"))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_aorta"))
        .arg("--config")
        .arg(config)
        .args([
            "consume",
            "work",
            "--group",
            "workers",
            "--follow",
            "--from-beginning",
            "--format",
            "json",
        ])
        .env("AORTA_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let seen: Seen = Arc::default();
    let out = child.stdout.take().unwrap();
    let s = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let seq = v["value"]
                .as_str()
                .unwrap()
                .trim_start_matches("seq-")
                .parse()
                .unwrap();
            s.lock()
                .unwrap()
                .push((v["partition"].as_u64().unwrap() as u32, seq));
        }
    });
    (child, seen)
}

async fn produce(log: &KafkaLog, seqs: std::ops::Range<u64>) {
    for chunk in seqs.collect::<Vec<_>>().chunks(50) {
        let records = chunk
            .iter()
            .map(|s| Record::new(format!("seq-{s}")).with_key(format!("k{s}")))
            .collect();
        log.produce("work", records, 0).await.unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether the workers together processed every sequence number below `total`.
fn all_processed(workers: &[&Seen], total: u64) -> bool {
    let got: HashSet<u64> = workers
        .iter()
        .flat_map(|w| w.lock().unwrap().iter().map(|x| x.1).collect::<Vec<_>>())
        .collect();
    (0..total).all(|s| got.contains(&s))
}

fn wait_until(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_partitions_move_to_the_survivor_and_nothing_is_lost() {
    let Some(broker) = aorta_testkit::broker() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aorta.toml");
    std::fs::write(
        &config,
        format!("[log]\nbackend = \"kafka\"\n[log.kafka]\nbootstrap = \"{}\"\nreplication_factor = 1\nsession_timeout_ms = 6000\n", broker.bootstrap),
    )
    .unwrap();
    let log = KafkaLog::connect(KafkaConfig {
        replication_factor: 1,
        ..KafkaConfig::new(broker.bootstrap.clone())
    })
    .await
    .unwrap();
    log.create_topic(
        "work",
        TopicConfig {
            partitions: 6,
            ..TopicConfig::default()
        },
    )
    .await
    .unwrap();

    let (mut a, seen_a) = worker(&config, "worker-a");
    let (mut b, seen_b) = worker(&config, "worker-b");
    // Phase 1: both running; keep producing until each has processed records.
    let mut next = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen_a.lock().unwrap().is_empty() || seen_b.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "both workers should get a share");
        produce(&log, next..next + 100).await;
        next += 100;
    }
    let phase1 = next;
    wait_until(
        "phase 1 is fully processed",
        Duration::from_secs(60),
        || all_processed(&[&seen_a, &seen_b], phase1),
    );
    let parts_a: BTreeSet<u32> = seen_a.lock().unwrap().iter().map(|x| x.0).collect();
    let parts_b: BTreeSet<u32> = seen_b.lock().unwrap().iter().map(|x| x.0).collect();
    eprintln!("before the kill: worker A processed partitions {parts_a:?}, worker B {parts_b:?}");

    a.kill().unwrap(); // SIGKILL: no leave-group, no final commit
    a.wait().unwrap();
    let b_before = seen_b.lock().unwrap().len();
    // Phase 2: only B is alive; it must take over A's partitions once the session times out.
    produce(&log, next..next + 600).await;
    let total = next + 600;
    wait_until(
        "the survivor processes every record",
        Duration::from_secs(90),
        || all_processed(&[&seen_a, &seen_b], total),
    );
    let after: BTreeSet<u32> = seen_b.lock().unwrap()[b_before..]
        .iter()
        .map(|x| x.0)
        .collect();
    eprintln!("after the kill: worker B processed partitions {after:?}");
    assert_eq!(
        after,
        (0..6).collect::<BTreeSet<u32>>(),
        "the survivor serves all 6 partitions"
    );
    assert!(
        !parts_a.is_empty() && !parts_b.is_empty(),
        "each worker had a share"
    );
    let (na, nb) = (seen_a.lock().unwrap().len(), seen_b.lock().unwrap().len());
    eprintln!(
        "{total} records produced; A processed {na}, B {nb}; {} processed twice (at-least-once)",
        na + nb - total as usize
    );
    b.kill().unwrap();
    b.wait().unwrap();
    if std::env::var_os("AORTA_SHOW_WORKER_LOGS").is_some() {
        for name in ["worker-a", "worker-b"] {
            eprintln!(
                "--- {name}\n{}",
                std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap()
            );
        }
    }
}

/// The partitions a worker's last group assignment gave its pipeline (from its JSON log).
fn pipeline_partitions(log: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            let m = v["fields"]["message"].as_str().unwrap_or("");
            m == "joined the pipeline's consumer group" || m == "group rebalanced"
        })
        .filter_map(|v| v["fields"]["partitions"].as_u64())
        .next_back()
}

const TAG_PIPELINE: &str = r#"[[pipelines]]
name = "tag"
from = ["vitals-in"]
steps = [{ op = "map", set = { seen = "true" } }]
sinks = [{ type = "topic", topic = "vitals-out", partitions = 6 }]
"#;

fn serve_worker(
    dir: &std::path::Path,
    bootstrap: &str,
    name: &str,
    pipelines: &str,
) -> (Child, std::path::PathBuf) {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"[log]
backend = "kafka"
[log.kafka]
bootstrap = "{bootstrap}"
replication_factor = 1
session_timeout_ms = 6000
[state]
dir = "{state}"
[[sources.mllp]]
listen = "127.0.0.1:{mllp}"
[server]
listen = ""

{pipelines}"#,
            state = dir.join(format!("{name}-state")).display(),
            mllp = aorta_testkit::free_port(),
        ),
    )
    .unwrap();
    let log_path = dir.join(format!("{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_aorta"))
        .arg("--config")
        .arg(&config)
        .args(["--log-format", "json", "serve"])
        .env("AORTA_LOG", "info,rdkafka=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    (child, log_path)
}

/// Every record value of `topic` as JSON, partition by partition.
async fn topic_values(log: &KafkaLog, topic: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(d) = log.describe_topic(topic).await else {
        return out;
    };
    for p in d.partitions {
        let mut at = p.log_start;
        while at < p.high_watermark {
            let b = log
                .read(topic, p.partition, at, aorta_log::ReadOptions::default())
                .await
                .unwrap();
            if b.records.is_empty() {
                break;
            }
            at = b.next_offset(at);
            for r in b.records {
                out.push(serde_json::from_slice(&r.record.value).unwrap());
            }
        }
    }
    out
}

async fn out_seqs(log: &KafkaLog) -> HashSet<u64> {
    topic_values(log, "vitals-out")
        .await
        .into_iter()
        .map(|v| {
            assert_eq!(v["seen"], true);
            v["seq"].as_u64().unwrap()
        })
        .collect()
}

/// A client of `broker` with a fresh 6-partition input topic.
async fn kafka_with_input(broker: &aorta_testkit::Broker, topic: &str) -> KafkaLog {
    let log = KafkaLog::connect(KafkaConfig {
        replication_factor: 1,
        ..KafkaConfig::new(broker.bootstrap.clone())
    })
    .await
    .unwrap();
    log.create_topic(
        topic,
        TopicConfig {
            partitions: 6,
            ..TopicConfig::default()
        },
    )
    .await
    .unwrap();
    log
}

/// Two `aorta serve` workers running the same pipeline, with their JSON logs.
struct Workers {
    a: Child,
    b: Child,
    log_a: std::path::PathBuf,
    log_b: std::path::PathBuf,
}

impl Workers {
    fn start(dir: &std::path::Path, bootstrap: &str, pipeline: &str) -> Workers {
        let (a, log_a) = serve_worker(dir, bootstrap, "worker-a", pipeline);
        let (b, log_b) = serve_worker(dir, bootstrap, "worker-b", pipeline);
        Workers { a, b, log_a, log_b }
    }

    /// `what`, followed by both workers' logs (for a failing assertion).
    fn show(&self, what: &str) -> String {
        format!(
            "{what}\n--- worker-a\n{}\n--- worker-b\n{}",
            std::fs::read_to_string(&self.log_a).unwrap_or_default(),
            std::fs::read_to_string(&self.log_b).unwrap_or_default()
        )
    }

    /// Waits until the group has split the 6 input partitions between the two.
    async fn wait_for_split(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (pa, pb) = (
                pipeline_partitions(&self.log_a),
                pipeline_partitions(&self.log_b),
            );
            if let (Some(x), Some(y)) = (pa, pb)
                && x > 0
                && y > 0
                && x + y == 6
            {
                eprintln!("split: worker A {x} partitions, worker B {y}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}",
                self.show("the group never split the partitions")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs worker A: no leave-group, no final checkpoint or commit.
    fn kill_a(&mut self) {
        self.a.kill().unwrap();
        self.a.wait().unwrap();
    }

    /// SIGTERMs worker B and checks that it stops cleanly.
    fn stop_b(&mut self) {
        unsafe { libc::kill(self.b.id() as i32, libc::SIGTERM) };
        let ok = self.b.wait().unwrap().success();
        assert!(ok, "{}", self.show("worker B did not stop cleanly"));
    }
}

async fn produce_json(log: &KafkaLog, seqs: std::ops::Range<u64>) {
    for chunk in seqs.collect::<Vec<_>>().chunks(100) {
        let records = chunk
            .iter()
            .map(|s| Record::new(format!("{{\"seq\":{s}}}")).with_key(format!("k{s}")))
            .collect();
        log.produce("vitals-in", records, 0).await.unwrap();
    }
}

/// A pipeline run by two `aorta serve` workers on Kafka: the group splits the input's
/// partitions between them; one is SIGKILLed and the other takes all of them over; every
/// input record reaches the output (at least once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_s_partitions_are_split_between_workers_and_move_on_a_kill() {
    let Some(broker) = aorta_testkit::broker() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = kafka_with_input(&broker, "vitals-in").await;
    produce_json(&log, 0..600).await;
    let mut w = Workers::start(dir.path(), &broker.bootstrap, TAG_PIPELINE);
    w.wait_for_split().await;
    produce_json(&log, 600..1200).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while out_seqs(&log).await.len() < 1200 {
        assert!(
            Instant::now() < deadline,
            "{}",
            w.show("phase 1 never completed")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.kill_a();
    produce_json(&log, 1200..2000).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = out_seqs(&log).await;
        if (0..2000).all(|s| got.contains(&s)) && pipeline_partitions(&w.log_b) == Some(6) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            w.show(&format!("after the kill: {} of 2000 out", got.len()))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.stop_b();
}

/// The window pipeline of the changelog test: results to a topic and, upserted by key, to
/// PostgreSQL `table`.
fn window_pipeline(pg_url: &str, table: &str) -> String {
    format!(
        r#"[[pipelines]]
name = "per-key"
from = ["w-in"]
[[pipelines.steps]]
op = "window"
key = "k"
time = "ts"
kind = "tumbling"
size = "100s"
aggregates = {{ n = "count()", total = "sum(seq)" }}
[[pipelines.sinks]]
type = "topic"
topic = "w-out"
partitions = 6
[[pipelines.sinks]]
type = "postgres"
url = "{pg_url}"
table = "{table}"
create_table = true
key = ["k", "window_start"]
columns = {{ k = "text", window_start = "bigint", n = "bigint", total = "double precision" }}
"#
    )
}

async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Event time of input `seq` in the window test: one second apart from an epoch-aligned base.
const BASE_MS: i64 = 1_700_000_000_000;
const WINDOW_MS: i64 = 100_000;

async fn produce_keyed(log: &KafkaLog, seqs: std::ops::Range<u64>) {
    for chunk in seqs.collect::<Vec<_>>().chunks(100) {
        let records = chunk
            .iter()
            .map(|s| {
                let k = format!("k{}", s % 60);
                let ts = BASE_MS + *s as i64 * 1000;
                Record::new(format!("{{\"seq\":{s},\"k\":\"{k}\",\"ts\":{ts}}}")).with_key(k)
            })
            .collect();
        log.produce("w-in", records, 0).await.unwrap();
    }
}

/// Every window result in `w-out`: (key, window_start) → each emitted (n, total).
async fn window_results(log: &KafkaLog) -> BTreeMap<(String, i64), Vec<(u64, u64)>> {
    let mut out: BTreeMap<(String, i64), Vec<(u64, u64)>> = BTreeMap::new();
    for v in topic_values(log, "w-out").await {
        let k = v["k"].as_str().unwrap().to_string();
        let n = v["n"].as_u64().unwrap();
        let total = v["total"].as_f64().unwrap() as u64;
        out.entry((k, v["window_start"].as_i64().unwrap()))
            .or_default()
            .push((n, total));
    }
    out
}

/// A stateful pipeline (per-key 100 s tumbling windows) run by two Kafka workers: one is
/// SIGKILLed while it holds open windows and is processing; the survivor restores those
/// partitions' window state from the pipeline's changelog topic and every window result,
/// including each emitted again after the takeover, equals an independent count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_partition_continues_with_its_window_state_from_the_changelog() {
    let Some(broker) = aorta_testkit::broker() else {
        return;
    };
    let Some(pg_url) = aorta_testkit::postgres_url() else {
        return;
    };
    let table = format!("aorta_kafka_windows_{}", std::process::id());
    pg(&pg_url)
        .await
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .unwrap();
    let pipeline = window_pipeline(&pg_url, &table);
    let dir = tempfile::tempdir().unwrap();
    let log = kafka_with_input(&broker, "w-in").await;
    produce_keyed(&log, 0..600).await;
    let mut w = Workers::start(dir.path(), &broker.bootstrap, &pipeline);
    w.wait_for_split().await;
    produce_keyed(&log, 600..1200).await;
    // Wait until the changelog records all 1200 inputs: both workers hold open windows
    // (1100 s..1200 s) whose state exists only in their memory, local stores and the changelog.
    let changelog = aorta_pipeline::changelog::topic_for("pipeline.per-key");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = log.describe_topic("w-in").await.unwrap();
        let cps = aorta_pipeline::changelog::read_latest(&log, &changelog)
            .await
            .unwrap_or_default();
        let covered = d.partitions.iter().all(|p| {
            cps.get(&aorta_log::TopicPartition::new(
                "w-in".to_string(),
                p.partition,
            ))
            .is_some_and(|cp| cp.next_offset == p.high_watermark)
        });
        if covered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            w.show("the changelog never covered the input")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Kill A while it works on more input.
    produce_keyed(&log, 1200..1500).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    w.kill_a();
    produce_keyed(&log, 1500..2000).await;
    // One far-future record per partition moves every watermark past the last window.
    for p in 0..6 {
        let v = format!(
            "{{\"seq\":0,\"k\":\"flush-{p}\",\"ts\":{}}}",
            BASE_MS + 10_000_000
        );
        log.append("w-in", p, vec![Record::new(v)]).await.unwrap();
    }
    let mut expected: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for s in 0..2000u64 {
        let start = BASE_MS + (s as i64 * 1000) / WINDOW_MS * WINDOW_MS;
        let e = expected.entry((format!("k{}", s % 60), start)).or_default();
        e.0 += 1;
        e.1 += s;
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let got = loop {
        let got = window_results(&log).await;
        if expected.keys().all(|k| got.contains_key(k)) && pipeline_partitions(&w.log_b) == Some(6)
        {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            w.show(&format!(
                "after the kill: {} of {} windows out",
                got.len(),
                expected.len()
            ))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut repeated = 0;
    for (k, results) in &got {
        let want = expected
            .get(k)
            .unwrap_or_else(|| panic!("unexpected window {k:?}: {results:?}"));
        for r in results {
            assert_eq!(
                r, want,
                "window {k:?}: emitted {results:?}, true (count, sum) {want:?}"
            );
        }
        repeated += results.len() - 1;
    }
    // The PostgreSQL sink upserted the same results: one row per window, equal to the count.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows: BTreeMap<(String, i64), (u64, u64)> = pg(&pg_url)
            .await
            .query(
                &format!("SELECT k, window_start, n, total FROM {table}"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let n: i64 = r.get(2);
                let total: f64 = r.get(3);
                ((r.get(0), r.get(1)), (n as u64, total as u64))
            })
            .collect();
        if rows.len() >= expected.len() || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        rows, expected,
        "{table}: rows after the takeover vs the independent count"
    );
    eprintln!(
        "{} windows, all equal to the independent count (topic and {} PostgreSQL rows); {repeated} emitted again after the takeover",
        got.len(),
        rows.len()
    );
    w.stop_b();
    pg(&pg_url)
        .await
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}
