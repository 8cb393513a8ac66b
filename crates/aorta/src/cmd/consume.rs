//! `aorta consume`: print records as text or JSON lines, optionally as a consumer group.

use anyhow::bail;
use aorta_log::{
    ConsumedRecord, Log, LogError, Membership, ReadBatch, ReadOptions, TopicPartition,
};
use base64::Engine;
use clap::{Args, ValueEnum};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::time::{Duration, Instant};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The value bytes, one record per line.
    Text,
    /// One JSON object per record: topic, partition, offset, timestamp, key, value, headers.
    Json,
}

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Read only this partition (default: all, or the group's assignment).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Start at the oldest retained record (default: the end, as Kafka's console consumer).
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Start at this offset (with --partition, or in every partition).
    #[arg(long)]
    pub offset: Option<u64>,
    /// Consume as this consumer group: start at its committed offsets and commit progress.
    #[arg(long)]
    pub group: Option<String>,
    /// Keep waiting for new records (Ctrl-C to stop; the group's progress is committed).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Stop after this many records.
    #[arg(long)]
    pub max_records: Option<u64>,
}

/// A bytes field as JSON: a string when it is UTF-8, else base64 under `<name>_base64`.
fn bytes_field(obj: &mut serde_json::Map<String, serde_json::Value>, name: &str, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => obj.insert(name.to_string(), s.into()),
        Err(_) => obj.insert(
            format!("{name}_base64"),
            base64::engine::general_purpose::STANDARD.encode(b).into(),
        ),
    };
}

fn json_line(topic: &str, partition: u32, c: &ConsumedRecord) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    o.insert("topic".into(), topic.into());
    o.insert("partition".into(), partition.into());
    o.insert("offset".into(), c.offset.into());
    o.insert("timestamp_ms".into(), c.record.timestamp_ms.into());
    match &c.record.key {
        Some(k) => bytes_field(&mut o, "key", k),
        None => {
            o.insert("key".into(), serde_json::Value::Null);
        }
    }
    bytes_field(&mut o, "value", &c.record.value);
    let headers: Vec<serde_json::Value> = c
        .record
        .headers
        .iter()
        .map(|(k, v)| {
            let mut h = serde_json::Map::new();
            h.insert("name".into(), k.as_str().into());
            bytes_field(&mut h, "value", v);
            h.into()
        })
        .collect();
    o.insert("headers".into(), headers.into());
    o.into()
}

type ReadFuture<'a> =
    Pin<Box<dyn Future<Output = (u32, u64, Result<ReadBatch, LogError>)> + Send + 'a>>;

fn read_at<'a>(
    log: &'a dyn Log,
    topic: &'a str,
    partition: u32,
    from: u64,
    wait: Duration,
) -> ReadFuture<'a> {
    Box::pin(async move {
        let opts = ReadOptions {
            max_bytes: 1 << 20,
            max_wait: wait,
        };
        (
            partition,
            from,
            log.read(topic, partition, from, opts).await,
        )
    })
}

/// Writes records; returns false when the reader of stdout went away (e.g. `| head`).
fn emit(
    out: &mut impl Write,
    format: Format,
    topic: &str,
    partition: u32,
    records: &[ConsumedRecord],
) -> anyhow::Result<bool> {
    let result = (|| -> std::io::Result<()> {
        for c in records {
            match format {
                Format::Text => {
                    out.write_all(&c.record.value)?;
                    out.write_all(b"\n")?;
                }
                Format::Json => {
                    serde_json::to_writer(&mut *out, &json_line(topic, partition, c))?;
                    out.write_all(b"\n")?;
                }
            }
        }
        out.flush()
    })();
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Where to start reading a partition: an explicit offset, else the group's committed offset,
/// else the beginning (`--from-beginning`) or the end.
async fn start_offset(log: &dyn Log, args: &ConsumeArgs, p: u32) -> anyhow::Result<u64> {
    let topic = args.topic.as_str();
    let range = log.offsets(topic, p).await?;
    let committed = match &args.group {
        Some(g) => log.committed(g, &TopicPartition::new(topic, p)).await?,
        None => None,
    };
    Ok(match (args.offset, committed) {
        (Some(o), _) => o,
        (None, Some(c)) => c.clamp(range.log_start, range.high_watermark),
        (None, None) if args.from_beginning => range.log_start,
        (None, None) => range.high_watermark,
    })
}

fn assigned(m: &Membership, topic: &str) -> Vec<u32> {
    m.assignment()
        .partitions
        .iter()
        .filter(|tp| tp.topic == topic)
        .map(|tp| tp.partition)
        .collect()
}

pub async fn run(log: &dyn Log, args: ConsumeArgs) -> anyhow::Result<()> {
    let topic = args.topic.as_str();
    let desc = log.describe_topic(topic).await?;
    let count = desc.partitions.len() as u32;
    let mut membership = match (&args.group, args.partition) {
        (Some(g), None) => Some(log.join_group(g, &[topic.to_string()]).await?),
        _ => None,
    };
    let partitions: Vec<u32> = match (args.partition, &membership) {
        (Some(p), _) if p >= count => {
            bail!("topic \"{topic}\" has {count} partition(s); partition {p} does not exist")
        }
        (Some(p), _) => vec![p],
        (None, Some(m)) => assigned(m, topic),
        (None, None) => (0..count).collect(),
    };
    let mut position: BTreeMap<u32, u64> = BTreeMap::new();
    for p in partitions {
        position.insert(p, start_offset(log, &args, p).await?);
    }
    let wait = if args.follow {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let mut last_commit = Instant::now();
    let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
    // Each pass reads the current assignment; a rebalance (follow mode) starts a new pass.
    'passes: loop {
        let mut pending: FuturesUnordered<ReadFuture<'_>> = position
            .iter()
            .map(|(&p, &from)| read_at(log, topic, p, from, wait))
            .collect();
        loop {
            // With nothing assigned (a rebalance can leave a member idle), a follower waits for
            // the next assignment instead of treating "no reads in flight" as the end.
            let idle = pending.is_empty();
            if idle && !(args.follow && membership.is_some()) {
                break 'passes;
            }
            let rebalance = async {
                match (&mut membership, args.follow) {
                    (Some(m), true) => m.changed().await,
                    _ => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                n = pending.next(), if !idle => n,
                a = rebalance => {
                    a?;
                    let Some(m) = &membership else { unreachable!("rebalance without membership") };
                    let now = assigned(m, topic);
                    if let Some(g) = &args.group {
                        commit_in_flight(log, g, topic, &position).await;
                        last_commit = Instant::now();
                    }
                    position.retain(|p, _| now.contains(p));
                    for p in now {
                        if let std::collections::btree_map::Entry::Vacant(slot) = position.entry(p) {
                            slot.insert(start_offset(log, &args, p).await?);
                        }
                    }
                    tracing::info!(partitions = ?position.keys().collect::<Vec<_>>(), "rebalanced");
                    continue 'passes;
                }
                _ = &mut ctrl_c => None,
            };
            let Some((p, from, result)) = next else {
                break 'passes;
            };
            let batch = result?;
            let mut records = batch.records;
            if let Some(max) = args.max_records {
                records.truncate((max - printed) as usize);
            }
            if !records.is_empty() {
                position.insert(p, batch_next(&records));
                printed += records.len() as u64;
                if !emit(&mut out, args.format, topic, p, &records)? {
                    break 'passes;
                }
            }
            if args.max_records.is_some_and(|m| printed >= m) {
                break 'passes;
            }
            if let Some(g) = &args.group
                && last_commit.elapsed() >= Duration::from_secs(1)
            {
                commit_in_flight(log, g, topic, &position).await;
                last_commit = Instant::now();
            }
            let got_some = !records.is_empty();
            if args.follow || got_some {
                pending.push(read_at(
                    log,
                    topic,
                    p,
                    if got_some { batch_next(&records) } else { from },
                    wait,
                ));
            }
        }
    }
    drop(out);
    if let Some(g) = &args.group {
        commit(log, g, topic, &position).await?;
    }
    drop(membership);
    if printed == 0
        && !args.follow
        && !args.from_beginning
        && args.offset.is_none()
        && args.group.is_none()
    {
        eprintln!(
            "no new records after the end of {topic}; add --from-beginning to read the stored ones"
        );
    }
    Ok(())
}

fn batch_next(records: &[ConsumedRecord]) -> u64 {
    records.last().map_or(0, |r| r.offset + 1)
}

/// A periodic or rebalance-time commit. Its failure (e.g. refused during a rebalance) costs at
/// most reprocessing after a restart, which at-least-once allows; so warn and keep consuming.
async fn commit_in_flight(log: &dyn Log, group: &str, topic: &str, position: &BTreeMap<u32, u64>) {
    if let Err(e) = commit(log, group, topic, position).await {
        tracing::warn!(error = %format!("{e:#}"), "offset commit failed; will retry at the next commit");
    }
}

async fn commit(
    log: &dyn Log,
    group: &str,
    topic: &str,
    position: &BTreeMap<u32, u64>,
) -> anyhow::Result<()> {
    let offsets: Vec<(TopicPartition, u64)> = position
        .iter()
        .map(|(&p, &o)| (TopicPartition::new(topic, p), o))
        .collect();
    log.commit(group, &offsets).await?;
    Ok(())
}
