//! Scale-out on Kafka: two `aorta` worker processes in one consumer group share a 6-partition
//! topic; one is SIGKILLed; the other takes over its partitions; every record produced is
//! processed at least once (checked by sequence numbers). At-least-once is the promise: records
//! the killed worker printed but had not committed are processed again by the survivor.

use aorta_kafka::{KafkaConfig, KafkaLog};
use aorta_log::{Log, Record, TopicConfig};
use std::collections::{BTreeSet, HashSet};
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
