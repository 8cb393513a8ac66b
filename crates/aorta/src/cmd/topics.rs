//! `aorta topics create|list|describe|delete`.

use super::human_bytes;
use aorta_log::{Log, LogError, TopicConfig, TopicDescription};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum TopicsCmd {
    /// Create a topic.
    Create {
        /// Topic name: 1-249 characters from a-z A-Z 0-9 . _ -
        name: String,
        /// Number of partitions (fixed once created).
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Delete closed segments whose newest record is older than this many milliseconds.
        #[arg(long)]
        retention_ms: Option<i64>,
        /// Delete the oldest closed segments while a partition holds more than this.
        #[arg(long)]
        retention_bytes: Option<u64>,
        /// Roll to a new segment file at this size.
        #[arg(long, default_value_t = TopicConfig::default().segment_bytes)]
        segment_bytes: u64,
        /// Keep only the latest record per key (Kafka: cleanup.policy=compact; the embedded
        /// log records the setting but keeps every record).
        #[arg(long)]
        compact: bool,
        /// Succeed without changes if the topic exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topics with record counts and sizes.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show a topic's settings and per-partition offsets.
    Describe {
        /// Topic name.
        name: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Delete a topic and all of its records.
    Delete {
        /// Topic name.
        name: String,
    },
}

fn records(t: &TopicDescription) -> u64 {
    t.partitions
        .iter()
        .map(|p| p.high_watermark - p.log_start)
        .sum()
}

/// Sizes are known on the embedded log only; Kafka brokers do not report them to clients.
fn size_of(log: &dyn Log, bytes: u64) -> String {
    if log.backend() == "embedded" {
        human_bytes(bytes)
    } else {
        "n/a".into()
    }
}

pub async fn run(log: &dyn Log, cmd: TopicsCmd) -> anyhow::Result<()> {
    match cmd {
        TopicsCmd::Create {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            segment_bytes,
            compact,
            if_not_exists,
        } => {
            let config = TopicConfig {
                partitions,
                retention_ms,
                retention_bytes,
                segment_bytes,
                compact,
            };
            match log.create_topic(&name, config).await {
                Ok(d) => println!(
                    "created topic {} with {} partition(s)",
                    d.name,
                    d.partitions.len()
                ),
                Err(LogError::TopicExists { .. }) if if_not_exists => {
                    println!("topic {name} already exists")
                }
                Err(e) => return Err(e.into()),
            }
        }
        TopicsCmd::List { json } => {
            let topics = log.list_topics().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&topics)?);
            } else if topics.is_empty() {
                println!("no topics yet; create one with `aorta topics create NAME`");
            } else {
                println!(
                    "{:<32} {:>10} {:>12} {:>10}",
                    "TOPIC", "PARTITIONS", "RECORDS", "SIZE"
                );
                for t in &topics {
                    let size = t.partitions.iter().map(|p| p.size_bytes).sum();
                    println!(
                        "{:<32} {:>10} {:>12} {:>10}",
                        t.name,
                        t.partitions.len(),
                        records(t),
                        size_of(log, size)
                    );
                }
            }
        }
        TopicsCmd::Describe { name, json } => {
            let t = log.describe_topic(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                let c = &t.config;
                println!(
                    "topic {}: {} partition(s), {} record(s)",
                    t.name,
                    t.partitions.len(),
                    records(&t)
                );
                if log.backend() == "embedded" {
                    println!(
                        "  segment_bytes={} retention_ms={} retention_bytes={}",
                        c.segment_bytes,
                        c.retention_ms.map_or("none".into(), |v| v.to_string()),
                        c.retention_bytes.map_or("none".into(), |v| v.to_string()),
                    );
                } else {
                    println!(
                        "  retention and segment settings are the {} cluster's topic config",
                        log.backend()
                    );
                }
                println!(
                    "  {:>9} {:>12} {:>14} {:>10} {:>8}",
                    "PARTITION", "LOG_START", "HIGH_WATERMARK", "SIZE", "SEGMENTS"
                );
                for p in &t.partitions {
                    println!(
                        "  {:>9} {:>12} {:>14} {:>10} {:>8}",
                        p.partition,
                        p.log_start,
                        p.high_watermark,
                        size_of(log, p.size_bytes),
                        if log.backend() == "embedded" {
                            p.segments.to_string()
                        } else {
                            "n/a".into()
                        }
                    );
                }
            }
        }
        TopicsCmd::Delete { name } => {
            log.delete_topic(&name).await?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}
