//! `aorta produce`: append records from stdin or files.

use anyhow::{Context, bail};
use aorta_log::{Log, Record, TopicConfig};
use bytes::Bytes;
use clap::Args;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Topic to append to.
    pub topic: String,
    /// Input files; none or `-` reads stdin.
    pub files: Vec<PathBuf>,
    /// Key for every record (murmur2 chooses the partition, as Kafka does).
    #[arg(long, conflicts_with = "key_separator")]
    pub key: Option<String>,
    /// Split each line at the first SEP into key and value (like kafka-console-producer's parse.key).
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Write every record to this partition.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Make each whole file one record (HL7 files with \r segment ends, JSON documents, images).
    #[arg(long)]
    pub record_per_file: bool,
    /// Header NAME=VALUE added to every record; repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// Records per append batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Create the topic (with --partitions) if it does not exist.
    #[arg(long)]
    pub create: bool,
    /// Partitions for --create.
    #[arg(long, default_value_t = 1, requires = "create")]
    pub partitions: u32,
}

struct Producer<'a> {
    log: &'a dyn Log,
    args: &'a ProduceArgs,
    partitions: u32,
    headers: Vec<(String, Bytes)>,
    pending: Vec<Record>,
    batches: u32,
    sent: u64,
    bytes: u64,
    per_partition: BTreeMap<u32, u64>,
    started: Instant,
    last_progress: Instant,
    progress: bool,
}

impl Producer<'_> {
    fn add(&mut self, key: Option<Bytes>, value: Bytes) {
        let mut r = Record::new(value);
        r.key = key.or_else(|| self.args.key.clone().map(Bytes::from));
        r.headers = self.headers.clone();
        self.pending.push(r);
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.bytes += batch.iter().map(|r| r.payload_len() as u64).sum::<u64>();
        let n = batch.len() as u64;
        if let Some(p) = self.args.partition {
            self.log.append(&self.args.topic, p, batch).await?;
            *self.per_partition.entry(p).or_default() += n;
        } else {
            // Keyless records go round-robin by batch; keyed ones follow murmur2.
            let fallback = self.batches % self.partitions;
            for (p, _) in self.log.produce(&self.args.topic, batch, fallback).await? {
                *self.per_partition.entry(p).or_default() += 1;
            }
        }
        self.batches += 1;
        self.sent += n;
        if self.progress && self.last_progress.elapsed() >= Duration::from_secs(1) {
            self.last_progress = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            eprint!(
                "\rproduced {} records ({:.0} records/s)",
                self.sent,
                self.sent as f64 / secs
            );
        }
        Ok(())
    }

    async fn push(&mut self, key: Option<Bytes>, value: Bytes) -> anyhow::Result<()> {
        self.add(key, value);
        if self.pending.len() >= self.args.batch {
            self.flush().await?;
        }
        Ok(())
    }

    async fn line(&mut self, mut line: Vec<u8>) -> anyhow::Result<()> {
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            return Ok(());
        }
        match &self.args.key_separator {
            Some(sep) => {
                let sep = sep.as_bytes();
                let Some(at) = line.windows(sep.len()).position(|w| w == sep) else {
                    bail!(
                        "line {} has no key separator {:?}; every line must look like KEY{}VALUE",
                        self.sent + self.pending.len() as u64 + 1,
                        String::from_utf8_lossy(sep),
                        String::from_utf8_lossy(sep)
                    );
                };
                let value = line.split_off(at + sep.len());
                line.truncate(at);
                self.push(Some(Bytes::from(line)), Bytes::from(value)).await
            }
            None => self.push(None, Bytes::from(line)).await,
        }
    }

    async fn reader(&mut self, name: &str, mut input: Box<dyn BufRead + '_>) -> anyhow::Result<()> {
        if self.args.record_per_file {
            let mut buf = Vec::new();
            input
                .read_to_end(&mut buf)
                .with_context(|| format!("reading {name}"))?;
            return self.push(None, Bytes::from(buf)).await;
        }
        loop {
            let mut line = Vec::new();
            let n = input
                .read_until(b'\n', &mut line)
                .with_context(|| format!("reading {name}"))?;
            if n == 0 {
                return Ok(());
            }
            self.line(line).await?;
        }
    }
}

pub async fn run(log: &dyn Log, args: ProduceArgs) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let desc = match log.describe_topic(&args.topic).await {
        Ok(d) => d,
        Err(aorta_log::LogError::UnknownTopic { .. }) if args.create => {
            let cfg = TopicConfig {
                partitions: args.partitions,
                ..TopicConfig::default()
            };
            log.create_topic(&args.topic, cfg).await?
        }
        Err(e) => {
            return Err(
                anyhow::Error::from(e).context("add --create to create the topic on the fly")
            );
        }
    };
    let partitions = desc.partitions.len() as u32;
    if let Some(p) = args.partition
        && p >= partitions
    {
        bail!(
            "topic \"{}\" has {partitions} partition(s); partition {p} does not exist",
            args.topic
        );
    }
    let mut headers = Vec::new();
    for h in &args.headers {
        let Some((k, v)) = h.split_once('=') else {
            bail!("--header {h:?} must look like NAME=VALUE");
        };
        headers.push((k.to_string(), Bytes::from(v.to_string())));
    }
    let mut p = Producer {
        log,
        args: &args,
        partitions,
        headers,
        pending: Vec::new(),
        batches: 0,
        sent: 0,
        bytes: 0,
        per_partition: BTreeMap::new(),
        started: Instant::now(),
        last_progress: Instant::now(),
        progress: std::io::stderr().is_terminal(),
    };
    let stdin_only = args.files.is_empty() || args.files.iter().all(|f| f.as_os_str() == "-");
    if stdin_only {
        let stdin = std::io::stdin();
        p.reader("stdin", Box::new(stdin.lock())).await?;
    } else {
        for f in &args.files {
            if f.as_os_str() == "-" {
                let stdin = std::io::stdin();
                p.reader("stdin", Box::new(stdin.lock())).await?;
            } else {
                let file =
                    std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
                p.reader(
                    &f.display().to_string(),
                    Box::new(std::io::BufReader::new(file)),
                )
                .await?;
            }
            // With one record per file, each file is flushed on its own only when the batch fills.
        }
    }
    p.flush().await?;
    if p.progress {
        eprintln!();
    }
    let spread: Vec<String> = p
        .per_partition
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    eprintln!(
        "produced {} record(s), {}, to {} (partition:records {}) in {:.2} s",
        p.sent,
        super::human_bytes(p.bytes),
        args.topic,
        if spread.is_empty() {
            "-".to_string()
        } else {
            spread.join(" ")
        },
        p.started.elapsed().as_secs_f64()
    );
    Ok(())
}
