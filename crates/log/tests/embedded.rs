//! Behaviour of the embedded log through the `Log` trait: the spec of issue #2, one test each.

use aorta_log::conformance::read_partition;
use aorta_log::{
    EmbeddedConfig, EmbeddedLog, FsyncPolicy, Limits, Log, LogError, ReadOptions, Record,
    TopicConfig, TopicPartition, partitioner::partition_for_key,
};
use bytes::Bytes;
use std::time::Duration;

fn open(dir: &std::path::Path) -> EmbeddedLog {
    EmbeddedLog::open(EmbeddedConfig::new(dir)).expect("open log")
}

fn topic(partitions: u32, segment_bytes: u64) -> TopicConfig {
    TopicConfig {
        partitions,
        segment_bytes,
        ..TopicConfig::default()
    }
}

fn rec(i: usize) -> Record {
    Record::new(format!("value-{i}"))
        .with_key(format!("key-{i}"))
        .with_header("source", Bytes::from_static(b"test"))
        .with_timestamp(1_700_000_000_000 + i as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_create_list_describe_delete() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let desc = log.create_topic("adt", topic(3, 1 << 20)).await.unwrap();
    assert_eq!(desc.partitions.len(), 3);
    log.create_topic("oru", TopicConfig::default())
        .await
        .unwrap();
    let names: Vec<_> = log
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["adt", "oru"]);
    assert!(matches!(
        log.create_topic("adt", TopicConfig::default()).await,
        Err(LogError::TopicExists { .. })
    ));
    assert!(matches!(
        log.create_topic("bad/name", TopicConfig::default()).await,
        Err(LogError::InvalidTopicName { .. })
    ));
    log.delete_topic("adt").await.unwrap();
    let err = log.describe_topic("adt").await.unwrap_err();
    assert!(err.to_string().contains("aorta topics create adt"), "{err}");
    // Survives reopen.
    drop(log);
    let log = open(dir.path());
    let names: Vec<_> = log
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["oru"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_then_read_round_trips_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("t", topic(1, 4096)).await.unwrap();
    let mut written = Vec::new();
    for b in 0..20 {
        let batch: Vec<Record> = (0..7).map(|i| rec(b * 7 + i)).collect();
        let ack = log.append("t", 0, batch.clone()).await.unwrap();
        assert_eq!(
            ack.offsets,
            ((b * 7) as u64..(b * 7 + 7) as u64).collect::<Vec<_>>()
        );
        written.extend(batch);
    }
    let desc = log.describe_topic("t").await.unwrap();
    assert!(desc.partitions[0].segments > 1, "4 KiB segments must roll");
    let mut log = Some(log);
    for phase in ["before reopen", "after reopen"] {
        let l = match log.take() {
            Some(l) => l,
            None => open(dir.path()),
        };
        let got = read_partition(&l, "t", 0).await;
        assert_eq!(got.len(), written.len(), "{phase}");
        for (i, c) in got.iter().enumerate() {
            assert_eq!(c.offset, i as u64);
            assert_eq!(c.record, written[i]);
        }
        // Reading from the middle of a batch starts exactly there.
        let mid = l.read("t", 0, 45, ReadOptions::default()).await.unwrap();
        assert_eq!(mid.records[0].offset, 45);
        assert_eq!(mid.records[0].record, written[45]);
        drop(l);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_respects_max_bytes_but_returns_at_least_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("t", TopicConfig::default()).await.unwrap();
    let big = Record::new(vec![7u8; 10_000]);
    log.append("t", 0, vec![big.clone(), big.clone(), big])
        .await
        .unwrap();
    let opts = ReadOptions {
        max_bytes: 100,
        ..Default::default()
    };
    assert_eq!(log.read("t", 0, 0, opts).await.unwrap().records.len(), 1);
    let opts = ReadOptions {
        max_bytes: 20_000,
        ..Default::default()
    };
    assert_eq!(log.read("t", 0, 0, opts).await.unwrap().records.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_and_unknown_partition_errors_name_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("adt", topic(3, 1 << 20)).await.unwrap();
    log.append("adt", 1, vec![rec(0)]).await.unwrap();
    let e = log
        .read("adt", 7, 0, ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "topic \"adt\" has 3 partition(s); partition 7 does not exist"
    );
    let e = log
        .read("adt", 1, 5, ReadOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            LogError::OffsetOutOfRange {
                log_start: 0,
                high_watermark: 1,
                ..
            }
        ),
        "{e}"
    );
    // Reading at the end is empty, not an error.
    assert!(
        log.read("adt", 1, 1, ReadOptions::default())
            .await
            .unwrap()
            .records
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_on_the_murmur2_partition() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("k", topic(6, 1 << 20)).await.unwrap();
    let records: Vec<Record> = (0..200).map(rec).collect();
    let placed = log.produce("k", records.clone(), 0).await.unwrap();
    for (r, (p, _)) in records.iter().zip(&placed) {
        assert_eq!(*p, partition_for_key(r.key.as_ref().unwrap(), 6));
    }
    // Per-key order is kept: offsets for one partition increase in input order.
    for p in 0..6 {
        let offs: Vec<u64> = placed
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert!(offs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(read_partition(&log, "k", p).await.len(), offs.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_reopen_and_are_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("t", topic(2, 1 << 20)).await.unwrap();
    let tp0 = TopicPartition::new("t", 0);
    let tp1 = TopicPartition::new("t", 1);
    log.commit("billing", &[(tp0.clone(), 10), (tp1.clone(), 3)])
        .await
        .unwrap();
    log.commit("odd group/name", &[(tp0.clone(), 4)])
        .await
        .unwrap();
    log.commit("billing", &[(tp0.clone(), 11)]).await.unwrap();
    let unknown = log
        .commit("billing", &[(TopicPartition::new("t", 9), 1)])
        .await;
    assert!(matches!(unknown, Err(LogError::UnknownPartition { .. })));
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.committed("billing", &tp0).await.unwrap(), Some(11));
    assert_eq!(log.committed("billing", &tp1).await.unwrap(), Some(3));
    assert_eq!(
        log.committed("odd group/name", &tp0).await.unwrap(),
        Some(4)
    );
    assert_eq!(log.committed("nobody", &tp0).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_offsets_file_stops_the_open_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("t", TopicConfig::default()).await.unwrap();
    log.commit("g", &[(TopicPartition::new("t", 0), 5)])
        .await
        .unwrap();
    drop(log);
    let f = dir.path().join("groups/g.offsets");
    let mut data = std::fs::read(&f).unwrap();
    let last = data.len() - 2;
    data[last] ^= 0x20;
    std::fs::write(&f, data).unwrap();
    let err = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).unwrap_err();
    assert!(
        matches!(err, LogError::Corrupt { ref file, .. } if file == &f),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _log = open(dir.path());
    let err = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LogError::Locked { .. }), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    assert!(msg.contains("--data-dir"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_share_partitions_and_rebalance_on_leave() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("t", topic(6, 1 << 20)).await.unwrap();
    let topics = vec!["t".to_string()];
    let a = log.join_group("workers", &topics).await.unwrap();
    assert_eq!(a.assignment().partitions.len(), 6);
    let mut b = log.join_group("workers", &topics).await.unwrap();
    let (aa, ba) = (a.assignment(), b.assignment());
    assert_eq!(aa.generation, ba.generation);
    assert_eq!(aa.partitions.len(), 3);
    assert_eq!(ba.partitions.len(), 3);
    assert!(aa.partitions.iter().all(|p| !ba.partitions.contains(p)));
    drop(a);
    let after = tokio::time::timeout(Duration::from_secs(5), b.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.partitions.len(), 6);
    assert!(after.generation > ba.generation);
    assert!(log.join_group("w", &["missing".to_string()]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_read_wakes_when_records_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("t", TopicConfig::default()).await.unwrap();
    let reader = {
        let log = log.clone();
        tokio::spawn(async move {
            let opts = ReadOptions {
                max_wait: Duration::from_secs(10),
                ..Default::default()
            };
            log.read("t", 0, 0, opts).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.append("t", 0, vec![rec(1)]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.records.len(), 1);
    // With nothing arriving, a bounded wait returns empty.
    let opts = ReadOptions {
        max_wait: Duration::from_millis(20),
        ..Default::default()
    };
    assert!(log.read("t", 0, 1, opts).await.unwrap().records.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_closed_segment_is_reported_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("t", topic(1, 4096)).await.unwrap();
    for b in 0..30 {
        log.append("t", 0, (0..5).map(|i| rec(b * 5 + i)).collect())
            .await
            .unwrap();
    }
    drop(log);
    let seg = dir.path().join("topics/t/0/00000000000000000000.log");
    let mut data = std::fs::read(&seg).unwrap();
    // Flip one bit inside the value of a record of the second batch.
    // The first batch is 12 bytes of offset and length plus `length` bytes.
    let second = 12 + u32::from_le_bytes(data[8..12].try_into().unwrap()) as usize;
    let target = second + 60;
    data[target] ^= 0x01;
    std::fs::write(&seg, data).unwrap();

    let log = open(dir.path());
    let err = log
        .read(
            "t",
            0,
            0,
            ReadOptions {
                max_bytes: 1 << 20,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    match &err {
        LogError::Corrupt {
            file,
            position,
            offset,
            ..
        } => {
            assert_eq!(file, &seg);
            assert_eq!(*position, second as u64);
            assert_eq!(*offset, Some(5));
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("00000000000000000000.log") && msg.contains("offset 5"),
        "{msg}"
    );
    // Records before the damaged batch are still served; so are later segments.
    let first = log
        .read(
            "t",
            0,
            0,
            ReadOptions {
                max_bytes: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.records[0].offset, 0);
    let hw = log.offsets("t", 0).await.unwrap().high_watermark;
    assert_eq!(
        log.read("t", 0, hw - 1, ReadOptions::default())
            .await
            .unwrap()
            .records
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("t", TopicConfig::default()).await.unwrap();
    for i in 0..10 {
        log.append("t", 0, vec![rec(i)]).await.unwrap();
    }
    drop(log);
    let seg = dir.path().join("topics/t/0/00000000000000000000.log");
    let before = std::fs::read(&seg).unwrap();
    // A half-written batch: the first 40 bytes of a copy of the last batch with the next offset.
    let mut torn = before[before.len() - 60..before.len() - 20].to_vec();
    torn[0..8].copy_from_slice(&10u64.to_le_bytes());
    let mut data = before.clone();
    data.extend_from_slice(&torn);
    std::fs::write(&seg, &data).unwrap();

    let log = open(dir.path());
    assert_eq!(log.offsets("t", 0).await.unwrap().high_watermark, 10);
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        before,
        "segment cut back to the last intact batch"
    );
    let side: Vec<_> = std::fs::read_dir(seg.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".torn-"))
        .collect();
    assert_eq!(side.len(), 1);
    assert_eq!(std::fs::read(side[0].path()).unwrap(), torn);
    // And appends continue at offset 10.
    assert_eq!(
        log.append("t", 0, vec![rec(10)]).await.unwrap().offsets,
        vec![10]
    );
    assert_eq!(read_partition(&log, "t", 0).await.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_size_and_time_deletes_only_closed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let cfg = TopicConfig {
        partitions: 1,
        segment_bytes: 4096,
        retention_bytes: Some(10_000),
        ..Default::default()
    };
    log.create_topic("s", cfg).await.unwrap();
    for i in 0..200 {
        log.append("s", 0, vec![rec(i)]).await.unwrap();
    }
    let st = &log.describe_topic("s").await.unwrap().partitions[0];
    assert!(st.log_start > 0, "size retention advanced the log start");
    assert!(
        st.size_bytes >= 10_000 && st.size_bytes < 10_000 + 4096 + 200,
        "size {}",
        st.size_bytes
    );
    let e = log
        .read("s", 0, 0, ReadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, LogError::OffsetOutOfRange { .. }));
    assert_eq!(
        read_partition(&log, "s", 0).await.last().unwrap().offset,
        199
    );

    let cfg = TopicConfig {
        partitions: 1,
        segment_bytes: 4096,
        retention_ms: Some(60_000),
        ..Default::default()
    };
    log.create_topic("t", cfg).await.unwrap();
    for i in 0..100 {
        log.append("t", 0, vec![rec(i)]).await.unwrap(); // timestamps in 2023
    }
    log.roll("t", 0).unwrap();
    assert!(log.enforce_retention(aorta_log::record::now_ms()).unwrap() > 0);
    let st = &log.describe_topic("t").await.unwrap().partitions[0];
    assert_eq!(
        st.segments, 1,
        "every closed segment was older than an hour; the active one stays"
    );
    assert_eq!(st.log_start, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_enforced_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_record_bytes: 1000,
        max_batch_bytes: 10_000,
        max_batch_records: 50,
        max_headers_per_record: 2,
        max_read_bytes: 1 << 16,
        max_open_segments: 2,
        max_partitions_per_topic: 4,
        ..Limits::default()
    };
    let log = EmbeddedLog::open(EmbeddedConfig {
        limits,
        ..EmbeddedConfig::new(dir.path())
    })
    .unwrap();
    log.create_topic("t", topic(1, 4096)).await.unwrap();

    let e = log
        .append("t", 0, vec![rec(0), Record::new(vec![0u8; 1001])])
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            LogError::RecordTooLarge {
                index: 1,
                size: 1001,
                max: 1000,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("limits.max_record_bytes"));
    let e = log
        .append("t", 0, (0..51).map(rec).collect())
        .await
        .unwrap_err();
    assert!(matches!(e, LogError::BatchTooLarge { size: 51, .. }), "{e}");
    let e = log
        .append(
            "t",
            0,
            (0..20).map(|_| Record::new(vec![1u8; 900])).collect(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("limits.max_batch_bytes"), "{e}");
    let many_headers = rec(0).with_header("a", "1").with_header("b", "2");
    let e = log.append("t", 0, vec![many_headers]).await.unwrap_err();
    assert!(
        e.to_string().contains("limits.max_headers_per_record"),
        "{e}"
    );
    let e = log.append("t", 0, vec![]).await.unwrap_err();
    assert!(matches!(e, LogError::BatchTooLarge { size: 0, .. }));
    let e = log
        .create_topic("wide", topic(5, 1 << 20))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("limits.max_partitions_per_topic"),
        "{e}"
    );
    let e = log.create_topic("tiny", topic(1, 100)).await.unwrap_err();
    assert!(e.to_string().contains("segment_bytes"), "{e}");
    let e = log
        .read(
            "t",
            0,
            0,
            ReadOptions {
                max_bytes: 1 << 17,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("limits.max_read_bytes"), "{e}");
    // Nothing rejected was written.
    assert_eq!(log.offsets("t", 0).await.unwrap().high_watermark, 0);

    // Open read handles stay within max_open_segments while reading across many segments.
    for b in 0..80 {
        log.append("t", 0, (0..5).map(|i| rec(b * 5 + i)).collect())
            .await
            .unwrap();
    }
    assert!(log.describe_topic("t").await.unwrap().partitions[0].segments >= 5);
    let mut from = 0;
    let mut n = 0;
    loop {
        let b = log
            .read(
                "t",
                0,
                from,
                ReadOptions {
                    max_bytes: 300,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if b.records.is_empty() {
            break;
        }
        n += b.records.len();
        from = b.next_offset(from);
        assert!(
            log.open_segment_handles() <= 2,
            "{} handles open",
            log.open_segment_handles()
        );
    }
    assert_eq!(n, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_policies_parse_and_all_keep_data_across_a_clean_close() {
    assert_eq!(
        "always".parse::<FsyncPolicy>().unwrap(),
        FsyncPolicy::Always
    );
    assert_eq!(
        "interval:250".parse::<FsyncPolicy>().unwrap(),
        FsyncPolicy::Interval(Duration::from_millis(250))
    );
    assert!("interval:0".parse::<FsyncPolicy>().is_err());
    assert!(
        "sometimes"
            .parse::<FsyncPolicy>()
            .unwrap_err()
            .to_string()
            .contains("interval:<milliseconds>")
    );
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(5)),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = EmbeddedConfig {
            fsync: policy,
            ..EmbeddedConfig::new(dir.path())
        };
        let log = EmbeddedLog::open(cfg.clone()).unwrap();
        log.create_topic("t", TopicConfig::default()).await.unwrap();
        for i in 0..50 {
            log.append("t", 0, vec![rec(i)]).await.unwrap();
        }
        drop(log);
        let log = EmbeddedLog::open(cfg).unwrap();
        assert_eq!(read_partition(&log, "t", 0).await.len(), 50, "{policy}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("t", TopicConfig::default()).await.unwrap();
    let before = log.fsync_count();
    let mut tasks = Vec::new();
    for p in 0..32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                log.append("t", 0, vec![rec(p * 1000 + i)]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let syncs = log.fsync_count() - before;
    assert_eq!(log.offsets("t", 0).await.unwrap().high_watermark, 640);
    assert!(
        syncs < 640,
        "640 appends took {syncs} fdatasyncs: group commit did not group"
    );
}

/// Dropping the last handle while the `interval` flusher is mid-flush must still close the log
/// on the caller's thread: an immediate reopen finds the directory unlocked. (The flusher used
/// to hold the engine itself while flushing; the engine then dropped on the flusher thread,
/// which panicked joining itself and kept the lock a moment longer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_while_the_interval_flusher_runs_releases_the_lock_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EmbeddedConfig {
        fsync: "interval:1".parse().unwrap(),
        ..EmbeddedConfig::new(dir.path())
    };
    let log = EmbeddedLog::open(cfg.clone()).unwrap();
    log.create_topic("t", TopicConfig::default()).await.unwrap();
    drop(log);
    for i in 0..300 {
        let log = EmbeddedLog::open(cfg.clone()).unwrap_or_else(|e| panic!("reopen {i}: {e}"));
        log.append("t", 0, vec![rec(i)]).await.unwrap();
        // Let the flusher wake up, so some drops land while it is flushing.
        std::thread::sleep(std::time::Duration::from_micros(900));
        drop(log);
    }
    let log = EmbeddedLog::open(cfg).unwrap();
    assert_eq!(read_partition(&log, "t", 0).await.len(), 300);
}
