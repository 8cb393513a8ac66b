//! Recovery from a damaged active segment, at every possible byte: whatever the tail looks like
//! after a crash (cut anywhere, followed by any junk), reopening keeps exactly the batches that
//! were complete before the damage, serves nothing else, and appends continue after them.

use aorta_log::conformance::read_partition;
use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, Record, TopicConfig};
use proptest::prelude::*;

fn records(sizes: &[usize], batch: usize) -> Vec<Record> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            Record::new(vec![(batch * 31 + i) as u8; n]).with_key(format!("b{batch}r{i}"))
        })
        .collect()
}

async fn read_all(log: &EmbeddedLog) -> Vec<Record> {
    read_partition(log, "t", 0)
        .await
        .into_iter()
        .map(|c| c.record)
        .collect()
}

async fn scenario(
    batches: Vec<Vec<usize>>,
    cut_at: f64,
    junk: Vec<u8>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("topics/t/0/00000000000000000000.log");
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).unwrap();
    log.create_topic("t", TopicConfig::default()).await.unwrap();
    // (end position of the batch in the file, its records)
    let mut written = Vec::new();
    for (i, sizes) in batches.iter().enumerate() {
        let recs = records(sizes, i);
        log.append("t", 0, recs.clone()).await.unwrap();
        written.push((std::fs::metadata(&seg).unwrap().len(), recs));
    }
    drop(log);
    let len = std::fs::metadata(&seg).unwrap().len();
    let cut = ((len as f64) * cut_at) as u64;
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(cut).unwrap();
    drop(f);
    let mut data = std::fs::read(&seg).unwrap();
    data.extend_from_slice(&junk);
    std::fs::write(&seg, &data).unwrap();

    let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).unwrap();
    let expected: Vec<Record> = written
        .iter()
        .filter(|(end, _)| *end <= cut)
        .flat_map(|(_, r)| r.clone())
        .collect();
    prop_assert_eq!(
        log.offsets("t", 0).await.unwrap().high_watermark,
        expected.len() as u64
    );
    prop_assert_eq!(&read_all(&log).await, &expected);
    // The log keeps working after the cut.
    let more = records(&[5, 6], 999);
    let ack = log.append("t", 0, more.clone()).await.unwrap();
    prop_assert_eq!(ack.offsets[0], expected.len() as u64);
    drop(log);
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).unwrap();
    let mut want = expected;
    want.extend(more);
    prop_assert_eq!(read_all(&log).await, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn any_cut_and_any_junk_recovers_the_complete_batches(
        batches in proptest::collection::vec(proptest::collection::vec(0usize..300, 1..5), 1..12),
        cut_at in 0.0f64..=1.0,
        junk in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(scenario(batches, cut_at, junk))?;
    }
}
