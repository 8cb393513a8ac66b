//! `aorta bench pipeline`: the stream-processing benchmark of the pipeline issue. N vitals
//! events (patient_id, ts, hr, rr, temp, sbp, spo2; one per patient per second, in event-time
//! order, as `research/peer-benchmarks/stream/gen_vitals.py` lays them out) are stored in the
//! durable log as JSON records; a pipeline computes per-patient 1-minute tumbling windows with
//! count, avg and max of each vital, reading from the log and writing every window to a topic.
//! In the same run, DuckDB (in memory, the issue's baseline) computes the same query over a
//! CSV of the same events; both checksums must agree. Peak memory (VmHWM) is reported.

use aorta_log::{EmbeddedConfig, EmbeddedLog, FsyncPolicy, Log, Record, TopicConfig};
use aorta_pipeline::{RunOptions, Runner, StateStore, parse_pipelines};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct PipelineBenchArgs {
    /// Events.
    #[arg(long, default_value_t = 5_000_000)]
    pub events: usize,
    /// Patients (one event per patient per second).
    #[arg(long, default_value_t = 1000)]
    pub patients: usize,
    /// Input partitions (keyed by patient).
    #[arg(long, default_value_t = 2)]
    pub partitions: u32,
    /// Directory for the log, the CSV and the state (default: a temporary one, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Python with duckdb for the baseline (default: scripts/ensure-duckdb.sh's virtualenv).
    #[arg(long, env = "AORTA_DUCKDB_PYTHON")]
    pub python: Option<PathBuf>,
    /// DuckDB threads.
    #[arg(long, default_value_t = 2)]
    pub duckdb_threads: usize,
}

/// Deterministic xorshift, so every run stores the same events.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Roughly normal (sum of 4 uniforms), clamped.
    fn around(&mut self, mean: f64, sd: f64, lo: f64, hi: f64) -> f64 {
        let u: f64 = (0..4)
            .map(|_| (self.next() >> 11) as f64 / (1u64 << 53) as f64)
            .sum();
        (mean + (u - 2.0) * sd * 1.73).clamp(lo, hi)
    }
}

const PIPELINE: &str = r#"
[[pipelines]]
name = "bench-vitals-1m"
from = ["bench.vitals"]
[[pipelines.steps]]
op = "window"
key = "patient_id"
time = "ts"
size = "1m"
aggregates = { cnt = "count()", avg_hr = "avg(hr)", max_hr = "max(hr)", avg_rr = "avg(rr)", max_rr = "max(rr)", avg_temp = "avg(temp)", max_temp = "max(temp)", avg_sbp = "avg(sbp)", max_sbp = "max(sbp)", avg_spo2 = "avg(spo2)", max_spo2 = "max(spo2)" }
[[pipelines.sinks]]
type = "topic"
topic = "bench.vitals.1m"
"#;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub async fn run(args: PipelineBenchArgs, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let scratch = args.dir.is_none();
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| data_dir.join(format!("bench-pipeline-{}", std::process::id())));
    std::fs::create_dir_all(&dir)?;
    let result = measure(&args, &dir).await;
    if scratch {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn measure(args: &PipelineBenchArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut cfg = EmbeddedConfig::new(dir.join("log"));
    // Loading the input is set-up, not the measurement: one fdatasync at the end.
    cfg.fsync = FsyncPolicy::Never;
    let log: Arc<dyn Log> = Arc::new(EmbeddedLog::open(cfg)?);
    let _ = log.delete_topic("bench.vitals").await;
    let _ = log.delete_topic("bench.vitals.1m").await;
    log.create_topic(
        "bench.vitals",
        TopicConfig {
            partitions: args.partitions,
            ..TopicConfig::default()
        },
    )
    .await?;
    let csv_path = dir.join("vitals.csv");
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_path)?);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let base: i64 = 1_709_251_200_000;
    let t0 = Instant::now();
    let mut batch = Vec::with_capacity(20_000);
    let mut bytes = 0usize;
    for i in 0..args.events {
        let pid = (i % args.patients) as i64;
        let ts = base + (i / args.patients) as i64 * 1000 + pid % 1000;
        let hr = rng.around(80.0, 12.0, 30.0, 200.0) as i64;
        let rr = rng.around(16.0, 3.0, 4.0, 40.0) as i64;
        let temp = (rng.around(37.0, 0.5, 34.0, 42.0) * 10.0).round() / 10.0;
        let sbp = rng.around(120.0, 15.0, 60.0, 240.0) as i64;
        let spo2 = rng.around(97.0, 1.5, 70.0, 100.0) as i64;
        writeln!(csv, "{pid},{ts},{hr},{rr},{temp},{sbp},{spo2}")?;
        let v = format!(
            "{{\"patient_id\":{pid},\"ts\":{ts},\"hr\":{hr},\"rr\":{rr},\"temp\":{temp},\"sbp\":{sbp},\"spo2\":{spo2}}}"
        );
        bytes += v.len();
        batch.push(Record::new(v).with_key(pid.to_string()).with_timestamp(ts));
        if batch.len() == batch.capacity() {
            log.produce("bench.vitals", std::mem::take(&mut batch), 0)
                .await?;
            batch.reserve(20_000);
        }
    }
    if !batch.is_empty() {
        log.produce("bench.vitals", batch, 0).await?;
    }
    csv.flush()?;
    drop(csv);
    eprintln!(
        "stored {} events ({:.0} MiB of JSON, {} partitions) and their CSV in {:.1} s",
        args.events,
        bytes as f64 / 1048576.0,
        args.partitions,
        t0.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_kib();

    // Aorta: from the durable log, through the window operator, into a topic.
    let config = parse_pipelines(PIPELINE)?.remove(0);
    let options = RunOptions {
        until_end: true,
        idle_wait: Duration::from_millis(10),
        state: StateStore::open(&dir.join("state/state.redb"))?,
        start: None,
        restore_changelog: true,
    };
    options.state.reset(&config.name)?;
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let t = Instant::now();
    let report = Runner::new(log.clone(), config, options)?
        .run(stopped)
        .await?;
    let ours = t.elapsed().as_secs_f64();
    let rss = peak_rss_kib();
    // Checksum over what reached the output topic.
    let (mut windows, mut sum_cnt, mut sum_avg_hr, mut sum_max_hr) = (0u64, 0u64, 0f64, 0i64);
    let mut next = 0;
    loop {
        let b = log
            .read(
                "bench.vitals.1m",
                0,
                next,
                aorta_log::ReadOptions {
                    max_bytes: 8 << 20,
                    ..Default::default()
                },
            )
            .await?;
        if b.records.is_empty() {
            break;
        }
        next = b.next_offset(next);
        for r in b.records {
            let v: serde_json::Value = serde_json::from_slice(&r.record.value)?;
            windows += 1;
            sum_cnt += v["cnt"].as_u64().unwrap_or(0);
            sum_avg_hr += v["avg_hr"].as_f64().unwrap_or(0.0);
            sum_max_hr += v["max_hr"].as_i64().unwrap_or(0);
        }
    }
    let ours_ck = format!(
        "windows={windows} sum_cnt={sum_cnt} sum_avg_hr={sum_avg_hr:.3} sum_max_hr={sum_max_hr}"
    );
    let ours_rate = args.events as f64 / ours;
    println!(
        "aorta    {:>12.0} events/s  ({:.2} s, {} in, {} windows out; peak RSS {} MiB, {} MiB before the run)  {ours_ck}",
        ours_rate,
        ours,
        report.input,
        report.output,
        rss / 1024,
        rss_before / 1024
    );

    // DuckDB in memory: the table is loaded first, only the query is timed (as the peer script).
    let python = match args.python.clone() {
        Some(p) => p,
        None => {
            let home = std::env::var("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/aorta/venv-duckdb/bin/python")
        }
    };
    let script = format!(
        r#"
import duckdb, time
con = duckdb.connect(); con.execute("SET threads={threads}")
con.execute("CREATE TABLE v AS SELECT * FROM read_csv('{csv}', header=false, columns={{'patient_id':'INTEGER','ts':'BIGINT','hr':'SMALLINT','rr':'SMALLINT','temp':'DOUBLE','sbp':'SMALLINT','spo2':'SMALLINT'}})")
q = """SELECT patient_id, ts // 60000 AS win, count(*) AS cnt,
  avg(hr) AS avg_hr, max(hr) AS max_hr, avg(rr) AS avg_rr, max(rr) AS max_rr,
  avg(temp) AS avg_temp, max(temp) AS max_temp, avg(sbp) AS avg_sbp, max(sbp) AS max_sbp,
  avg(spo2) AS avg_spo2, max(spo2) AS max_spo2 FROM v GROUP BY patient_id, win"""
best = None
for _ in range(3):
    t0 = time.perf_counter()
    r = con.execute(f"SELECT count(*), sum(cnt), sum(avg_hr), sum(max_hr) FROM ({{q}})").fetchone()
    dt = time.perf_counter() - t0
    best = dt if best is None else min(best, dt)
print(best, r[0], r[1], repr(r[2]), r[3], duckdb.__version__)
"#,
        threads = args.duckdb_threads,
        csv = csv_path.display()
    );
    let out = std::process::Command::new(&python)
        .args(["-c", &script])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let f: Vec<&str> = text.split_whitespace().collect();
            anyhow::ensure!(f.len() == 6, "unexpected DuckDB output: {text}");
            let num = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
            let rate = args.events as f64 / num(0);
            let ck = format!(
                "windows={} sum_cnt={} sum_avg_hr={:.3} sum_max_hr={}",
                f[1],
                f[2],
                num(3),
                f[4]
            );
            println!(
                "duckdb   {rate:>12.0} events/s  (DuckDB {}, in memory, {} threads, best of 3)  {ck}",
                f[5], args.duckdb_threads
            );
            let same = num(1) == windows as f64
                && num(2) == sum_cnt as f64
                && num(4) == sum_max_hr as f64
                && (num(3) - sum_avg_hr).abs() <= 1e-9 * sum_avg_hr.abs();
            println!(
                "ratio    aorta/duckdb = {:.3} (DuckDB is {:.1}x faster); checksums {}",
                ours_rate / rate,
                rate / ours_rate,
                if same { "equal" } else { "DIFFER" }
            );
            anyhow::ensure!(same, "the checksums differ: ours {ours_ck}, duckdb {ck}");
        }
        Ok(o) => anyhow::bail!(
            "the DuckDB baseline failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => anyhow::bail!(
            "cannot run {} for the DuckDB baseline ({e}); run scripts/ensure-duckdb.sh or pass --python",
            python.display()
        ),
    }
    println!(
        "peers measured on this machine (research/peer-benchmarks/REPORT.md, same query, 5M events, CSV source): PyFlink 2.3.0 150,124 events/s, Bytewax 0.21.1 151,508 events/s -> aorta is {:.1}x PyFlink, {:.1}x Bytewax",
        ours_rate / 150_124.0,
        ours_rate / 151_508.0
    );
    Ok(())
}
