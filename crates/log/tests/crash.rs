//! Crash test: a child process appends batches from several concurrent producers and prints
//! every acknowledged offset; the parent SIGKILLs it at random moments, reopens the log and
//! checks that every acknowledged record is present, intact and in order, and that nothing
//! that is not a real record is ever served.
//!
//! The child is this same test binary, re-executed with `AORTA_CRASH_CHILD_DIR` set, so no
//! extra binary ships with the library. Kills: `AORTA_CRASH_KILLS` (default 30).
//!
//! SIGKILL tests process crashes (the page cache survives). Power loss is a different fault;
//! the engine's answer to it is fdatasync before acknowledgement, which this test cannot
//! exercise without a VM — see docs/ARCHITECTURE.md.

use aorta_log::{
    EmbeddedConfig, EmbeddedLog, Log, ReadOptions, Record, TopicConfig, TopicPartition,
};
use bytes::Bytes;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOPIC: &str = "crash";
const PARTITIONS: u32 = 3;
const PRODUCERS: u32 = 8;
const GROUP: &str = "crash-consumers";
const TEST_NAME: &str = "every_acknowledged_record_survives_sigkill";

/// The value of record `seq` of producer `producer` in child run `run`: a header that names
/// it, then a payload derived from the header, then the payload's CRC. Anything else is garbage.
fn make_value(run: u32, producer: u32, seq: u64, len: usize) -> Vec<u8> {
    let mut v = format!("{run}:{producer}:{seq}:{len}:").into_bytes();
    let payload: Vec<u8> = (0..len)
        .map(|i| (seq as usize * 31 + i * 7 + producer as usize) as u8)
        .collect();
    let crc = crc32c::crc32c(&payload);
    v.extend_from_slice(&payload);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// Parses and verifies a value; `None` means garbage.
fn check_value(v: &[u8]) -> Option<(u32, u32, u64)> {
    let mut parts = v.splitn(5, |&b| b == b':');
    let run: u32 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let producer: u32 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let seq: u64 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let len: usize = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    (make_value(run, producer, seq, len) == v).then_some((run, producer, seq))
}

fn config(dir: &std::path::Path) -> EmbeddedConfig {
    EmbeddedConfig::new(dir)
}

/// Child mode: produce until killed.
fn child(dir: &str, run: u32) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let log = EmbeddedLog::open(config(std::path::Path::new(dir))).unwrap();
        let stdout = Arc::new(Mutex::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for producer in 0..PRODUCERS {
            let log = log.clone();
            let stdout = stdout.clone();
            tasks.push(tokio::spawn(async move {
                let mut seq = 0u64;
                loop {
                    let (n, partition, lens) = {
                        let mut rng = rand::rng();
                        let n = rng.random_range(1..=10u64);
                        let lens: Vec<usize> = (0..n).map(|_| rng.random_range(0..300)).collect();
                        (n, rng.random_range(0..PARTITIONS), lens)
                    };
                    let batch: Vec<Record> = lens
                        .iter()
                        .enumerate()
                        .map(|(i, &len)| {
                            Record::new(Bytes::from(make_value(run, producer, seq + i as u64, len)))
                                .with_key(format!("p{producer}"))
                        })
                        .collect();
                    let ack = log.append(TOPIC, partition, batch).await.unwrap();
                    let line = format!(
                        "ACK {run} {producer} {seq} {n} {partition} {}\n",
                        ack.offsets[0]
                    );
                    let mut out = stdout.lock().unwrap();
                    out.write_all(line.as_bytes()).unwrap();
                    out.flush().unwrap();
                    seq += n;
                }
            }));
        }
        // A committer: durably commits every partition's high watermark for GROUP and prints
        // each commit once `commit` has returned.
        {
            let log = log.clone();
            let stdout = stdout.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    let mut offsets = Vec::new();
                    for p in 0..PARTITIONS {
                        let hw = log.offsets(TOPIC, p).await.unwrap().high_watermark;
                        offsets.push((TopicPartition::new(TOPIC, p), hw));
                    }
                    log.commit(GROUP, &offsets).await.unwrap();
                    let list: Vec<String> = offsets.iter().map(|(_, o)| o.to_string()).collect();
                    let line = format!("COMMIT {}\n", list.join(" "));
                    let mut out = stdout.lock().unwrap();
                    out.write_all(line.as_bytes()).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    std::process::exit(0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Id {
    run: u32,
    producer: u32,
    seq: u64,
}

#[test]
fn every_acknowledged_record_survives_sigkill() {
    if let Ok(dir) = std::env::var("AORTA_CRASH_CHILD_DIR") {
        let run = std::env::var("AORTA_CRASH_RUN").unwrap().parse().unwrap();
        child(&dir, run);
    }
    let kills: u32 = std::env::var("AORTA_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let log = EmbeddedLog::open(config(dir.path())).unwrap();
        // Small segments so that kills also land inside segment rolls.
        let cfg = TopicConfig {
            partitions: PARTITIONS,
            segment_bytes: 64 << 10,
            ..Default::default()
        };
        log.create_topic(TOPIC, cfg).await.unwrap();
    });
    // (partition, offset) -> record identity, for every acknowledged record of every run.
    let mut acked: HashMap<(u32, u64), Id> = HashMap::new();
    let mut rng = rand::rng();
    let exe = std::env::current_exe().unwrap();
    let mut total_acks = 0usize;
    // The last commit the child reported as done, per partition.
    let mut committed = [0u64; PARTITIONS as usize];
    let mut commits = 0usize;
    for run in 0..kills {
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env("AORTA_CRASH_CHILD_DIR", dir.path())
            .env("AORTA_CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    match line {
                        Ok(l) => lines.lock().unwrap().push(l),
                        Err(_) => break,
                    }
                }
            })
        };
        // Let it get going (at least one ack), then kill it at a random moment.
        let start = Instant::now();
        while lines.lock().unwrap().iter().all(|l| !l.starts_with("ACK "))
            && start.elapsed() < Duration::from_secs(20)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..250)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        let lines = lines.lock().unwrap();
        let mut run_acks = 0;
        for l in lines.iter().filter(|l| l.starts_with("ACK ")) {
            let f: Vec<u64> = l[4..].split(' ').map(|x| x.parse().unwrap()).collect();
            let (producer, seq, n, partition, base) = (f[1] as u32, f[2], f[3], f[4] as u32, f[5]);
            for i in 0..n {
                let id = Id {
                    run,
                    producer,
                    seq: seq + i,
                };
                assert!(
                    acked.insert((partition, base + i), id).is_none(),
                    "offset acknowledged twice"
                );
            }
            run_acks += 1;
        }
        for l in lines.iter().filter(|l| l.starts_with("COMMIT ")) {
            for (p, o) in l[7..].split(' ').enumerate() {
                committed[p] = committed[p].max(o.parse().unwrap());
            }
            commits += 1;
        }
        assert!(
            run_acks > 0,
            "run {run}: the child acknowledged nothing before it was killed"
        );
        total_acks += run_acks;
        verify(dir.path(), &acked, &committed, &rt);
    }
    eprintln!(
        "crash test: {kills} SIGKILLs, {total_acks} acknowledged batches, {} acknowledged records, all present; {commits} acknowledged commits, none lost",
        acked.len()
    );
}

/// Reopens the log after a kill and checks it against everything acknowledged so far.
fn verify(
    dir: &std::path::Path,
    acked: &HashMap<(u32, u64), Id>,
    committed: &[u64],
    rt: &tokio::runtime::Runtime,
) {
    rt.block_on(async {
        let log = EmbeddedLog::open(config(dir)).unwrap();
        let mut seen: HashSet<Id> = HashSet::new();
        for p in 0..PARTITIONS {
            let mut from = 0;
            let mut last_seq: HashMap<(u32, u32), u64> = HashMap::new();
            loop {
                let b = log
                    .read(TOPIC, p, from, ReadOptions::default())
                    .await
                    .unwrap();
                if b.records.is_empty() {
                    break;
                }
                for c in &b.records {
                    assert_eq!(c.offset, from, "offsets are dense");
                    from += 1;
                    let Some((run, producer, seq)) = check_value(&c.record.value) else {
                        panic!("partition {p} offset {} serves garbage", c.offset);
                    };
                    let id = Id { run, producer, seq };
                    assert!(seen.insert(id), "record {id:?} served twice");
                    if let Some(want) = acked.get(&(p, c.offset)) {
                        assert_eq!(
                            *want, id,
                            "partition {p} offset {} holds another record",
                            c.offset
                        );
                    }
                    // One producer's records in one partition appear in the order it sent them.
                    if let Some(prev) = last_seq.insert((run, producer), seq) {
                        assert!(
                            seq > prev,
                            "producer {run}/{producer} out of order in partition {p}"
                        );
                    }
                }
            }
            for (&(ap, off), id) in acked.iter().filter(|((ap, _), _)| *ap == p) {
                assert!(
                    off < from,
                    "acknowledged record {id:?} at {ap}/{off} is missing (log ends at {from})"
                );
            }
            let stored = log
                .committed(GROUP, &TopicPartition::new(TOPIC, p))
                .await
                .unwrap()
                .unwrap_or(0);
            assert!(
                stored >= committed[p as usize],
                "partition {p}: committed offset {} was acknowledged, the log has {stored}",
                committed[p as usize]
            );
            assert!(
                stored <= from,
                "partition {p}: committed offset {stored} is past the end {from}"
            );
        }
    });
}
