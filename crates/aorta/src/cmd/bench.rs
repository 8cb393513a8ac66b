//! `aorta bench log`: durable append and read throughput of the embedded log, printed as ratios
//! to the disk's own fdatasync'd sequential write bandwidth measured in the same run.

use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, ReadOptions, Record, TopicConfig};
use bytes::Bytes;
use clap::{Args, Subcommand};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Durable append (1/8/64 producers, 200 B and 1.5 KB records) and warm read throughput.
    Log(LogBenchArgs),
    /// Produce/consume through Aorta's Kafka backend vs raw rdkafka (needs --kafka).
    Kafka(super::bench_kafka::KafkaBenchArgs),
    /// Durable HL7 ingest over MLLP: msg/s and ACK latency with 1/8/32 connections.
    Mllp(super::bench_mllp::MllpBenchArgs),
    /// FHIR parse+validate vs fhir.resources, and HL7 v2 -> FHIR conversion throughput.
    Fhir(super::bench_fhir::FhirBenchArgs),
    /// Per-patient 1-minute windows over N vitals events from the log, vs DuckDB in memory.
    Pipeline(super::bench_pipeline::PipelineBenchArgs),
    /// The sepsis job under load: vitals over MLLP -> alert latency at fixed rates, and the API
    /// with 200 concurrent clients during ingest.
    Sepsis(super::bench_sepsis::SepsisBenchArgs),
}

#[derive(Args, Debug)]
pub struct LogBenchArgs {
    /// Directory on the disk to measure (default: <data-dir>/bench-<pid>, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// MiB written per run.
    #[arg(long, default_value_t = 256)]
    pub mib: u64,
    /// Concurrent producer counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub producers: Vec<usize>,
    /// Record value sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "200,1500")]
    pub record_sizes: Vec<usize>,
    /// Payload bytes per append batch (each producer's batch).
    #[arg(long, default_value_t = 256 * 1024)]
    pub batch_bytes: usize,
    /// Repetitions of each (baseline, Aorta) pair; the median ratio is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

const MIB: f64 = 1024.0 * 1024.0;

/// Sequential write of `bytes` in 1 MiB blocks followed by one fdatasync, like
/// `dd if=/dev/zero of=F bs=1M count=N conv=fdatasync`. Returns MiB/s.
pub(crate) fn disk_write_bandwidth(dir: &Path, bytes: u64) -> anyhow::Result<f64> {
    let path = dir.join("disk-baseline.bin");
    let block: Vec<u8> = (0..1 << 20).map(|i| (i * 7 + 13) as u8).collect();
    let start = Instant::now();
    {
        let mut f = std::fs::File::create(&path)?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            f.write_all(&block[..n])?;
            left -= n as u64;
        }
        f.sync_data()?;
    }
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(bytes as f64 / MIB / secs)
}

/// Reads every file under `dir` with pread into one reused buffer: the raw warm-cache read speed.
fn raw_read_bandwidth(dir: &Path) -> anyhow::Result<(u64, f64)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                files.push(p);
            }
        }
    }
    let mut buf = vec![0u8; 4 << 20];
    let mut total = 0u64;
    let start = Instant::now();
    for p in files {
        let f = std::fs::File::open(&p)?;
        let mut pos = 0u64;
        loop {
            let n = f.read_at(&mut buf, pos)?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            total += n as u64;
        }
    }
    Ok((total, total as f64 / MIB / start.elapsed().as_secs_f64()))
}

struct Run {
    payload_mib_s: f64,
    records_s: f64,
    disk_mib_s: f64,
    fsyncs: u64,
}

async fn append_run(
    dir: &Path,
    producers: usize,
    record_size: usize,
    total: u64,
    batch_bytes: usize,
) -> anyhow::Result<(Run, EmbeddedLog)> {
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir))?;
    log.create_topic("bench", TopicConfig::default()).await?;
    let per_batch = (batch_bytes / record_size).max(1);
    let batches_total = (total as usize).div_ceil(record_size * per_batch);
    let value = Bytes::from(
        (0..record_size)
            .map(|i| (i * 31 + 7) as u8)
            .collect::<Vec<u8>>(),
    );
    let batch: Vec<Record> = (0..per_batch).map(|_| Record::new(value.clone())).collect();
    let fsyncs_before = log.fsync_count();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let n = batches_total / producers + usize::from(p < batches_total % producers);
        let log = log.clone();
        let batch = batch.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                log.append("bench", 0, batch.clone()).await?;
            }
            Ok::<_, aorta_log::LogError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let records = (batches_total * per_batch) as f64;
    let payload = records * record_size as f64;
    let on_disk = log.describe_topic("bench").await?.partitions[0].size_bytes as f64;
    Ok((
        Run {
            payload_mib_s: payload / MIB / secs,
            records_s: records / secs,
            disk_mib_s: on_disk / MIB / secs,
            fsyncs: log.fsync_count() - fsyncs_before,
        },
        log,
    ))
}

async fn read_run(log: &EmbeddedLog) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    let (mut records, mut bytes, mut from) = (0u64, 0u64, 0u64);
    loop {
        let b = log
            .read(
                "bench",
                0,
                from,
                ReadOptions {
                    max_bytes: 4 << 20,
                    ..Default::default()
                },
            )
            .await?;
        if b.records.is_empty() {
            break;
        }
        records += b.records.len() as u64;
        bytes += b
            .records
            .iter()
            .map(|r| r.record.value.len() as u64)
            .sum::<u64>();
        from = b.next_offset(from);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((bytes as f64 / MIB / secs, records as f64 / secs))
}

pub async fn run(
    cmd: BenchCmd,
    data_dir: &Path,
    kafka: Option<aorta_kafka::KafkaConfig>,
) -> anyhow::Result<()> {
    let args = match cmd {
        BenchCmd::Log(args) => args,
        BenchCmd::Kafka(args) => return super::bench_kafka::run(args, kafka).await,
        BenchCmd::Mllp(args) => return super::bench_mllp::run(args, data_dir).await,
        BenchCmd::Fhir(args) => return super::bench_fhir::run(args),
        BenchCmd::Pipeline(args) => return super::bench_pipeline::run(args, data_dir).await,
        BenchCmd::Sepsis(args) => return super::bench_sepsis::run(args, data_dir).await,
    };
    anyhow::ensure!(
        args.mib > 0 && args.batch_bytes > 0,
        "--mib and --batch-bytes must be positive"
    );
    anyhow::ensure!(
        args.producers.iter().all(|&p| p > 0),
        "--producers must all be positive"
    );
    anyhow::ensure!(
        args.record_sizes.iter().all(|&s| s > 0),
        "--record-sizes must all be positive"
    );
    let root = args
        .dir
        .clone()
        .unwrap_or_else(|| data_dir.join(format!("bench-{}", std::process::id())));
    anyhow::ensure!(
        !root.exists(),
        "{} already exists; pass an empty or new --dir",
        root.display()
    );
    std::fs::create_dir_all(&root)?;
    let result = bench(&args, &root).await;
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn bench(args: &LogBenchArgs, root: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(args.repeat > 0, "--repeat must be at least 1");
    let total = args.mib << 20;
    println!(
        "aorta bench log: {} MiB per run, batches of {} KiB per producer, fsync=always, {} repetition(s), in {}",
        args.mib,
        args.batch_bytes / 1024,
        args.repeat,
        root.display()
    );
    println!(
        "each Aorta run is paired with a disk baseline written just before it to the same directory:"
    );
    println!(
        "  {} MiB of sequential 1 MiB writes + one fdatasync (like dd bs=1M conv=fdatasync)",
        args.mib
    );
    // Warm-up: the first write to fresh space on some disks is much slower than the rest.
    disk_write_bandwidth(root, total)?;
    println!();
    println!(
        "{:>7} {:>9} {:>13} {:>13} {:>11} {:>13} {:>8} {:>10} {:>7}",
        "record",
        "producers",
        "payload MiB/s",
        "records/s",
        "disk MiB/s",
        "baseline MiB/s",
        "fsyncs",
        "KiB/fsync",
        "ratio"
    );
    let mut best_8plus: Option<f64> = None;
    let mut reads = Vec::new();
    for &size in &args.record_sizes {
        let mut last_log = None;
        for (i, &producers) in args.producers.iter().enumerate() {
            let mut runs = Vec::new();
            for rep in 0..args.repeat {
                let baseline = disk_write_bandwidth(root, total)?;
                let dir = root.join(format!("r{size}-p{producers}-{rep}"));
                let (run, log) = append_run(&dir, producers, size, total, args.batch_bytes).await?;
                let keep = i + 1 == args.producers.len() && rep + 1 == args.repeat;
                if keep {
                    last_log = Some((log, dir));
                } else {
                    drop(log);
                    std::fs::remove_dir_all(&dir)?;
                }
                runs.push((run, baseline));
            }
            let ratio = median(runs.iter().map(|(r, b)| r.payload_mib_s / b).collect());
            let med = |f: &dyn Fn(&(Run, f64)) -> f64| median(runs.iter().map(f).collect());
            if producers >= 8 {
                best_8plus = Some(best_8plus.map_or(ratio, |b: f64| b.max(ratio)));
            }
            let fsyncs = med(&|(r, _)| r.fsyncs as f64);
            println!(
                "{:>6}B {:>9} {:>13.0} {:>13.0} {:>11.0} {:>13.0} {:>8.0} {:>10.0} {:>7.2}",
                size,
                producers,
                med(&|(r, _)| r.payload_mib_s),
                med(&|(r, _)| r.records_s),
                med(&|(r, _)| r.disk_mib_s),
                med(&|(_, b)| *b),
                fsyncs,
                total as f64 / 1024.0 / fsyncs.max(1.0),
                ratio
            );
        }
        if let Some((log, dir)) = last_log {
            let (mib_s, rec_s) = read_run(&log).await?;
            drop(log);
            let (_, raw) = raw_read_bandwidth(&dir)?;
            reads.push((size, mib_s, rec_s, raw));
            std::fs::remove_dir_all(&dir)?;
        }
    }
    println!();
    println!(
        "ratio = median over repetitions of (payload MiB/s / paired baseline MiB/s); payload excludes"
    );
    println!("Aorta's framing, disk MiB/s includes it; other columns are medians too");
    println!("warm page-cache reads (whole topic, 4 MiB reads, CRC-checked and decoded):");
    for (size, mib_s, rec_s, raw) in reads {
        println!(
            "  {size:>5} B records: {mib_s:.0} MiB/s payload, {rec_s:.0} records/s; raw pread of the same files {raw:.0} MiB/s (ratio {:.2})",
            mib_s / raw
        );
    }
    println!();
    match best_8plus {
        Some(r) => println!("best ratio with >= 8 producers: {r:.2} (target >= 0.70)"),
        None => println!("no run with >= 8 producers (target applies to >= 8 producers)"),
    }
    Ok(())
}
