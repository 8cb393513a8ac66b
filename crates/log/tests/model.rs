//! Model-based test: random sequences of append / read / commit / reopen / roll / retention run
//! against the real embedded log and a plain in-memory model; after every step they must agree.

use aorta_log::{
    EmbeddedConfig, EmbeddedLog, Log, LogError, ReadOptions, Record, TopicConfig, TopicPartition,
};
use bytes::Bytes;
use proptest::prelude::*;
use std::collections::HashMap;

const PARTITIONS: u32 = 2;
const SEGMENT_BYTES: u64 = 4096;
const RETENTION_BYTES: u64 = 12_000;
/// Largest encoded batch the strategy can produce (6 records of < 700 bytes each plus framing).
const MAX_BATCH: u64 = 6 * 800 + 64;

#[derive(Clone, Debug)]
enum Op {
    Append {
        partition: u32,
        records: Vec<(Option<u8>, usize, i64)>,
    },
    Read {
        partition: u32,
        from: i64,
        max_bytes: usize,
    },
    Commit {
        group: u8,
        partition: u32,
        offset: u64,
    },
    Reopen,
    Roll {
        partition: u32,
    },
    Retention,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PARTITIONS, proptest::collection::vec((proptest::option::of(any::<u8>()), 0usize..700, 0i64..1_000_000), 1..6))
            .prop_map(|(partition, records)| Op::Append { partition, records }),
        4 => (0..PARTITIONS, -2i64..200, 1usize..5000).prop_map(|(partition, from, max_bytes)| Op::Read { partition, from, max_bytes }),
        2 => (0u8..3, 0..PARTITIONS, 0u64..300).prop_map(|(group, partition, offset)| Op::Commit { group, partition, offset }),
        1 => Just(Op::Reopen),
        1 => (0..PARTITIONS).prop_map(|partition| Op::Roll { partition }),
        1 => Just(Op::Retention),
    ]
}

fn make_record(key: Option<u8>, len: usize, ts: i64, serial: u64) -> Record {
    let value: Vec<u8> = (0..len).map(|i| (serial as usize * 7 + i) as u8).collect();
    Record {
        key: key.map(|k| Bytes::from(vec![k; 3])),
        value: Bytes::from(value),
        headers: if serial.is_multiple_of(3) {
            vec![("n".into(), Bytes::from(serial.to_string()))]
        } else {
            vec![]
        },
        timestamp_ms: ts,
    }
}

#[derive(Default)]
struct Model {
    /// Every record ever appended, by partition, indexed by offset.
    records: Vec<Vec<Record>>,
    /// First offset the real log still holds (retention is the log's decision; the model checks
    /// that each move of it is allowed).
    log_start: Vec<u64>,
    committed: HashMap<(u8, u32), u64>,
}

fn config(dir: &std::path::Path) -> EmbeddedConfig {
    EmbeddedConfig {
        index_interval_bytes: 512,
        ..EmbeddedConfig::new(dir)
    }
}

async fn check_partition(
    log: &EmbeddedLog,
    model: &mut Model,
    p: u32,
) -> Result<(), TestCaseError> {
    let st = log.describe_topic("m").await.unwrap().partitions[p as usize].clone();
    let recs = &model.records[p as usize];
    prop_assert_eq!(
        st.high_watermark,
        recs.len() as u64,
        "high watermark of partition {}",
        p
    );
    prop_assert!(
        st.log_start >= model.log_start[p as usize],
        "log start went backwards"
    );
    prop_assert!(st.log_start <= st.high_watermark);
    if st.log_start > 0 {
        // Retention never deletes below the retained-bytes floor ...
        prop_assert!(
            st.size_bytes >= RETENTION_BYTES,
            "deleted too much: {} bytes left",
            st.size_bytes
        );
    }
    // ... and keeps the partition within floor + one closed segment + the active one.
    prop_assert!(
        st.size_bytes <= RETENTION_BYTES + 2 * (SEGMENT_BYTES + MAX_BATCH),
        "retention did not run: {} bytes",
        st.size_bytes
    );
    model.log_start[p as usize] = st.log_start;
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EmbeddedLog::open(config(dir.path())).unwrap();
    let cfg = TopicConfig {
        partitions: PARTITIONS,
        segment_bytes: SEGMENT_BYTES,
        retention_bytes: Some(RETENTION_BYTES),
        ..TopicConfig::default()
    };
    log.create_topic("m", cfg).await.unwrap();
    let mut model = Model {
        records: vec![Vec::new(); PARTITIONS as usize],
        log_start: vec![0; PARTITIONS as usize],
        ..Default::default()
    };
    let mut serial = 0u64;
    for op in ops {
        match op {
            Op::Append { partition, records } => {
                let batch: Vec<Record> = records
                    .into_iter()
                    .map(|(k, len, ts)| {
                        serial += 1;
                        make_record(k, len, ts, serial)
                    })
                    .collect();
                let ack = log.append("m", partition, batch.clone()).await.unwrap();
                let start = model.records[partition as usize].len() as u64;
                prop_assert_eq!(
                    ack.offsets,
                    (start..start + batch.len() as u64).collect::<Vec<_>>()
                );
                model.records[partition as usize].extend(batch);
            }
            Op::Read {
                partition,
                from,
                max_bytes,
            } => {
                let recs = &model.records[partition as usize];
                let start = model.log_start[partition as usize] as i64;
                // Aim around the valid range, including just outside it.
                let from = (start + from - 1).max(0) as u64;
                let opts = ReadOptions {
                    max_bytes,
                    ..Default::default()
                };
                let got = log.read("m", partition, from, opts).await;
                if from < start as u64 || from > recs.len() as u64 {
                    let out_of_range = matches!(got, Err(LogError::OffsetOutOfRange { .. }));
                    prop_assert!(
                        out_of_range,
                        "read at {} of [{}, {}]",
                        from,
                        start,
                        recs.len()
                    );
                } else {
                    let got = got.unwrap();
                    if from < recs.len() as u64 {
                        prop_assert!(!got.records.is_empty());
                    }
                    let mut bytes = 0;
                    for (i, c) in got.records.iter().enumerate() {
                        prop_assert_eq!(c.offset, from + i as u64);
                        prop_assert_eq!(&c.record, &recs[c.offset as usize]);
                        bytes += c.record.payload_len();
                    }
                    if got.records.len() > 1 {
                        prop_assert!(
                            bytes <= max_bytes,
                            "read {} bytes for max_bytes {}",
                            bytes,
                            max_bytes
                        );
                    }
                    // The next record would have overflowed max_bytes (or there is none).
                    let next = from + got.records.len() as u64;
                    if !got.records.is_empty() && next < recs.len() as u64 {
                        prop_assert!(bytes + recs[next as usize].payload_len() > max_bytes);
                    }
                }
            }
            Op::Commit {
                group,
                partition,
                offset,
            } => {
                let g = format!("g{group}");
                log.commit(&g, &[(TopicPartition::new("m", partition), offset)])
                    .await
                    .unwrap();
                model.committed.insert((group, partition), offset);
            }
            Op::Reopen => {
                drop(log);
                log = EmbeddedLog::open(config(dir.path())).unwrap();
            }
            Op::Roll { partition } => log.roll("m", partition).unwrap(),
            Op::Retention => {
                log.enforce_retention(aorta_log::record::now_ms()).unwrap();
            }
        }
        for p in 0..PARTITIONS {
            check_partition(&log, &mut model, p).await?;
        }
        for ((g, p), off) in &model.committed {
            let got = log
                .committed(&format!("g{g}"), &TopicPartition::new("m", *p))
                .await
                .unwrap();
            prop_assert_eq!(got, Some(*off));
        }
    }
    // Finally every retained record, read sequentially, equals the model.
    for p in 0..PARTITIONS {
        let recs = &model.records[p as usize];
        let mut from = model.log_start[p as usize];
        while from < recs.len() as u64 {
            let b = log
                .read("m", p, from, ReadOptions::default())
                .await
                .unwrap();
            for c in &b.records {
                prop_assert_eq!(&c.record, &recs[c.offset as usize]);
            }
            from = b.next_offset(from);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("AORTA_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]
    #[test]
    fn embedded_log_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
