//! `aorta --kafka HOST:PORT bench kafka`: produce and consume throughput through Aorta's Kafka
//! backend against raw rdkafka with the same producer settings, same broker, same run.

use aorta_kafka::{KafkaConfig, KafkaLog};
use aorta_log::{Log, ReadOptions, Record, TopicConfig};
use bytes::Bytes;
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct KafkaBenchArgs {
    /// Records per run.
    #[arg(long, default_value_t = 200_000)]
    pub records: usize,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 200)]
    pub record_size: usize,
    /// Partitions of the bench topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: u32,
    /// Records per Aorta append batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent appenders per partition on the Aorta side (each waits for its batch's acks,
    /// as MLLP connections and pipeline tasks do).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

fn raw_client(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.bootstrap);
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

async fn raw_produce(
    cfg: &KafkaConfig,
    topic: &str,
    args: &KafkaBenchArgs,
    value: &[u8],
) -> anyhow::Result<f64> {
    let producer: FutureProducer = raw_client(cfg)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()?;
    // Warm-up outside the timing: the idempotent producer's id, metadata, connections.
    producer
        .send(
            FutureRecord::<(), [u8]>::to(topic)
                .partition(0)
                .payload(value),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)?;
    let start = Instant::now();
    let mut pending = Vec::with_capacity(args.records);
    for i in 0..args.records {
        let p = (i / args.batch) as u32 % args.partitions;
        let mut rec = FutureRecord::<(), [u8]>::to(topic)
            .partition(p as i32)
            .payload(value);
        loop {
            match producer.send_result(rec) {
                Ok(d) => {
                    pending.push(d);
                    break;
                }
                Err((_, back)) => {
                    rec = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for d in pending {
        d.await?.map_err(|(e, _)| e)?;
    }
    Ok(args.records as f64 / start.elapsed().as_secs_f64())
}

fn raw_consume(cfg: &KafkaConfig, topic: &str, args: &KafkaBenchArgs) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = raw_client(cfg)
        .set("group.id", "aorta-bench-raw")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..args.partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let start = Instant::now();
    let mut n = 0;
    // Both topics hold the records plus one warm-up record.
    while n < args.records + 1 {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(_)) => n += 1,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("raw consumer stalled after {n} records"),
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn aorta_produce(
    log: &KafkaLog,
    topic: &str,
    args: &KafkaBenchArgs,
    value: &Bytes,
) -> anyhow::Result<f64> {
    // The same warm-up as the raw producer gets.
    log.append(topic, 0, vec![Record::new(value.clone())])
        .await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    let appenders = args.partitions as usize * args.concurrency.max(1);
    for task in 0..appenders {
        let p = (task % args.partitions as usize) as u32;
        let log = log.clone();
        let topic = topic.to_string();
        let batch: Vec<Record> = (0..args.batch)
            .map(|_| Record::new(value.clone()))
            .collect();
        let batches = (0..args.records / args.batch)
            .filter(|b| b % appenders == task)
            .count();
        tasks.push(tokio::spawn(async move {
            for _ in 0..batches {
                log.append(&topic, p, batch.clone()).await?;
            }
            Ok::<_, aorta_log::LogError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((args.records / args.batch * args.batch) as f64 / start.elapsed().as_secs_f64())
}

async fn aorta_consume(log: &KafkaLog, topic: &str, args: &KafkaBenchArgs) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..args.partitions {
        let log = log.clone();
        let topic = topic.to_string();
        tasks.push(tokio::spawn(async move {
            let end = log.offsets(&topic, p).await?.high_watermark;
            let (mut from, mut n) = (0u64, 0usize);
            while from < end {
                let b = log
                    .read(
                        &topic,
                        p,
                        from,
                        ReadOptions {
                            max_bytes: 4 << 20,
                            ..Default::default()
                        },
                    )
                    .await?;
                n += b.records.len();
                from = b.next_offset(from);
            }
            Ok::<_, aorta_log::LogError>(n)
        }));
    }
    let mut n = 0;
    for t in tasks {
        n += t.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

pub async fn run(args: KafkaBenchArgs, cfg: Option<KafkaConfig>) -> anyhow::Result<()> {
    let Some(cfg) = cfg else {
        anyhow::bail!("bench kafka needs a broker: aorta --kafka HOST:PORT bench kafka");
    };
    anyhow::ensure!(
        args.records > 0 && args.batch > 0 && args.partitions > 0,
        "--records, --batch and --partitions must be positive"
    );
    let log = KafkaLog::connect(cfg.clone()).await?;
    let run_id = std::process::id();
    let (raw_topic, aorta_topic) = (
        format!("bench-raw-{run_id}"),
        format!("bench-aorta-{run_id}"),
    );
    for t in [&raw_topic, &aorta_topic] {
        log.create_topic(
            t,
            TopicConfig {
                partitions: args.partitions,
                ..TopicConfig::default()
            },
        )
        .await?;
    }
    let value = Bytes::from(vec![b'x'; args.record_size]);
    println!(
        "aorta bench kafka: {} records of {} B over {} partitions, broker {}; acks=all, idempotent producer; aorta: {}-record batches, {} appends in flight per partition",
        args.records,
        args.record_size,
        args.partitions,
        cfg.bootstrap,
        args.batch,
        args.concurrency
    );
    let raw_p = raw_produce(&cfg, &raw_topic, &args, &value).await?;
    let aorta_p = aorta_produce(&log, &aorta_topic, &args, &value).await?;
    let raw_c = {
        let (cfg, topic, a) = (cfg.clone(), raw_topic.clone(), KafkaBenchArgs { ..args });
        tokio::task::spawn_blocking(move || raw_consume(&cfg, &topic, &a)).await??
    };
    let aorta_c = aorta_consume(&log, &aorta_topic, &args).await?;
    let mb = |r: f64| r * args.record_size as f64 / (1024.0 * 1024.0);
    println!(
        "{:<8} {:>16} {:>16} {:>8}",
        "", "raw rdkafka", "aorta kafka", "ratio"
    );
    println!(
        "{:<8} {:>10.0} rec/s {:>10.0} rec/s {:>8.2}   ({:.1} vs {:.1} MiB/s)",
        "produce",
        raw_p,
        aorta_p,
        aorta_p / raw_p,
        mb(raw_p),
        mb(aorta_p)
    );
    println!(
        "{:<8} {:>10.0} rec/s {:>10.0} rec/s {:>8.2}   ({:.1} vs {:.1} MiB/s)",
        "consume",
        raw_c,
        aorta_c,
        aorta_c / raw_c,
        mb(raw_c),
        mb(aorta_c)
    );
    println!("target: ratio >= 0.80 for both");
    for t in [&raw_topic, &aorta_topic] {
        log.delete_topic(t).await?;
    }
    Ok(())
}
