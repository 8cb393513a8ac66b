//! The backend conformance suite: one set of checks that every [`Log`] backend must pass, run by
//! the embedded tests (`crates/log/tests/conformance.rs`) and the Kafka tests against a real
//! broker (`crates/kafka/tests/conformance.rs`). Enabled by the `conformance` feature; test code.
//!
//! Each check panics with a message naming what differed.

use crate::partitioner::partition_for_key;
use crate::{
    Assignment, Log, LogError, Membership, ReadOptions, Record, TopicConfig, TopicPartition,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// What a backend's test provides.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new handle on the same stored state (the previous handle has been dropped): a reopen
    /// of the data directory, or a new client of the same cluster.
    async fn open(&self) -> Arc<dyn Log>;
    /// How long rebalances may take on this backend.
    fn rebalance_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }
}

fn cfg(partitions: u32) -> TopicConfig {
    TopicConfig {
        partitions,
        ..TopicConfig::default()
    }
}

/// Reads a whole partition from its start.
pub async fn read_partition(log: &dyn Log, topic: &str, p: u32) -> Vec<crate::ConsumedRecord> {
    let mut out = Vec::new();
    let range = log.offsets(topic, p).await.expect("offsets");
    let (mut from, end) = (range.log_start, range.high_watermark);
    while from < end {
        let b = log
            .read(topic, p, from, ReadOptions::default())
            .await
            .expect("read");
        assert!(
            !b.records.is_empty(),
            "{topic}/{p}: read at {from} below the end {end} returned nothing"
        );
        for r in &b.records {
            assert_eq!(r.offset, from, "{topic}/{p}: offsets must be dense");
            from += 1;
        }
        out.extend(b.records);
    }
    out
}

/// Appends from several concurrent tasks to every partition; each partition then holds each
/// task's records in the order the task sent them, none lost, none duplicated.
pub async fn ordering_and_no_loss(h: &dyn Harness) {
    let log = h.open().await;
    let topic = "conf-order";
    log.create_topic(topic, cfg(3)).await.expect("create");
    let mut tasks = Vec::new();
    for producer in 0..4u32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..10u32 {
                for p in 0..3u32 {
                    let batch: Vec<Record> = (0..25u32)
                        .map(|i| Record::new(format!("{producer}:{}", b * 25 + i)))
                        .collect();
                    let ack = log.append(topic, p, batch).await.expect("append");
                    assert_eq!(ack.offsets.len(), 25);
                    assert!(
                        ack.offsets.windows(2).all(|w| w[0] < w[1]),
                        "offsets of one batch increase"
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer task");
    }
    for p in 0..3 {
        let recs = read_partition(log.as_ref(), topic, p).await;
        assert_eq!(recs.len(), 4 * 250, "partition {p}: no loss, no duplicates");
        let mut last: BTreeMap<String, u32> = BTreeMap::new();
        let mut seen = HashSet::new();
        for r in &recs {
            let v = String::from_utf8(r.record.value.to_vec()).expect("utf8");
            assert!(seen.insert(v.clone()), "partition {p}: {v} twice");
            let (producer, seq) = v.split_once(':').expect("value");
            let seq: u32 = seq.parse().expect("seq");
            if let Some(prev) = last.insert(producer.to_string(), seq) {
                assert!(
                    seq > prev,
                    "partition {p}: producer {producer} out of order ({prev} then {seq})"
                );
            }
        }
    }
}

/// Keys, values, headers (with repeats and binary values), timestamps and a 900 KB record
/// come back exactly; keyed records land on the murmur2 partition.
pub async fn records_round_trip_exactly(h: &dyn Harness) {
    let log = h.open().await;
    let topic = "conf-records";
    log.create_topic(topic, cfg(4)).await.expect("create");
    let big = Bytes::from(
        (0..900_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let records = vec![
        Record::new("plain").with_timestamp(1_700_000_000_123),
        Record::new("keyed")
            .with_key("MRN-0042")
            .with_timestamp(1_700_000_000_456),
        Record::new(Bytes::from_static(&[0, 159, 146, 150, 255]))
            .with_key(Bytes::from_static(&[1, 2, 3]))
            .with_header("trace", "a")
            .with_header("trace", "b")
            .with_header("bin", Bytes::from_static(&[0, 255]))
            .with_header("empty", Bytes::new())
            .with_timestamp(1_700_000_000_789),
        Record::new(big)
            .with_key("large")
            .with_timestamp(1_700_000_001_000),
        Record::new(Bytes::new())
            .with_key("empty-value")
            .with_timestamp(1_700_000_002_000),
    ];
    let placed = log
        .produce(topic, records.clone(), 1)
        .await
        .expect("produce");
    for (r, (p, off)) in records.iter().zip(&placed) {
        if let Some(k) = &r.key {
            assert_eq!(
                *p,
                partition_for_key(k, 4),
                "key {k:?} on its murmur2 partition"
            );
        } else {
            assert_eq!(*p, 1, "keyless record on the caller's partition");
        }
        let b = log
            .read(
                topic,
                *p,
                *off,
                ReadOptions {
                    max_bytes: 2 << 20,
                    ..Default::default()
                },
            )
            .await
            .expect("read");
        let got = &b.records[0];
        assert_eq!(got.offset, *off);
        assert_eq!(got.record.key, r.key);
        assert_eq!(
            got.record.value, r.value,
            "value of the record at {p}/{off}"
        );
        assert_eq!(got.record.headers, r.headers);
        assert_eq!(got.record.timestamp_ms, r.timestamp_ms);
    }
}

/// Errors: unknown topic, unknown partition, offsets past the end, a duplicate topic.
pub async fn errors_are_typed(h: &dyn Harness) {
    let log = h.open().await;
    let topic = "conf-errors";
    log.create_topic(topic, cfg(2)).await.expect("create");
    assert!(matches!(
        log.create_topic(topic, cfg(2)).await,
        Err(LogError::TopicExists { .. })
    ));
    assert!(matches!(
        log.describe_topic("conf-missing").await,
        Err(LogError::UnknownTopic { .. })
    ));
    assert!(matches!(
        log.offsets(topic, 5).await,
        Err(LogError::UnknownPartition {
            partition: 5,
            partitions: 2,
            ..
        })
    ));
    log.append(topic, 0, vec![Record::new("x")])
        .await
        .expect("append");
    assert!(matches!(
        log.read(topic, 0, 7, ReadOptions::default()).await,
        Err(LogError::OffsetOutOfRange {
            requested: 7,
            high_watermark: 1,
            ..
        })
    ));
    let at_end = log
        .read(topic, 0, 1, ReadOptions::default())
        .await
        .expect("read at end");
    assert!(at_end.records.is_empty());
    log.delete_topic(topic).await.expect("delete");
    let names: Vec<String> = log
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        !names.contains(&topic.to_string()),
        "deleted topic still listed: {names:?}"
    );
}

/// Committed offsets are per group and survive a restart of the client / process.
pub async fn committed_offsets_survive_restart(h: &dyn Harness) {
    let topic = "conf-commits";
    {
        let log = h.open().await;
        log.create_topic(topic, cfg(2)).await.expect("create");
        log.append(
            topic,
            1,
            (0..10).map(|i| Record::new(format!("{i}"))).collect(),
        )
        .await
        .expect("append");
        log.commit("billing", &[(TopicPartition::new(topic, 1), 7)])
            .await
            .expect("commit");
        log.commit("billing", &[(TopicPartition::new(topic, 0), 0)])
            .await
            .expect("commit");
        log.commit("audit", &[(TopicPartition::new(topic, 1), 3)])
            .await
            .expect("commit");
    }
    let log = h.open().await;
    assert_eq!(
        log.committed("billing", &TopicPartition::new(topic, 1))
            .await
            .expect("committed"),
        Some(7)
    );
    assert_eq!(
        log.committed("billing", &TopicPartition::new(topic, 0))
            .await
            .expect("committed"),
        Some(0)
    );
    assert_eq!(
        log.committed("audit", &TopicPartition::new(topic, 1))
            .await
            .expect("committed"),
        Some(3)
    );
    assert_eq!(
        log.committed("nobody", &TopicPartition::new(topic, 1))
            .await
            .expect("committed"),
        None
    );
    assert_eq!(
        read_partition(log.as_ref(), topic, 1).await.len(),
        10,
        "records survive too"
    );
}

async fn until(
    m: &mut Membership,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Assignment) -> bool,
) -> Assignment {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let a = m.assignment();
        if pred(&a) {
            return a;
        }
        match tokio::time::timeout_at(deadline, m.changed()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{what}: {e}"),
            Err(_) => panic!("{what}: timed out; last assignment {:?}", m.assignment()),
        }
    }
}

/// Two members split a 6-partition topic; when one leaves, the other gets everything.
pub async fn group_rebalances_on_join_and_leave(h: &dyn Harness) {
    let log = h.open().await;
    let topic = "conf-group";
    log.create_topic(topic, cfg(6)).await.expect("create");
    let topics = vec![topic.to_string()];
    let t = h.rebalance_timeout();
    let mut a = log.join_group("workers", &topics).await.expect("join a");
    until(&mut a, t, "a alone gets all 6", |x| x.partitions.len() == 6).await;
    let mut b = log.join_group("workers", &topics).await.expect("join b");
    let aa = until(&mut a, t, "a gets half", |x| x.partitions.len() == 3).await;
    let ba = until(&mut b, t, "b gets half", |x| x.partitions.len() == 3).await;
    let all: HashSet<_> = aa
        .partitions
        .iter()
        .chain(&ba.partitions)
        .cloned()
        .collect();
    assert_eq!(
        all.len(),
        6,
        "together they cover every partition: {aa:?} {ba:?}"
    );
    drop(a);
    let after = until(&mut b, t, "b takes over after a leaves", |x| {
        x.partitions.len() == 6
    })
    .await;
    assert!(after.generation > ba.generation);
}
