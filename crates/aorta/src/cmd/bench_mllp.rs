//! `aorta bench mllp`: durable HL7 ingest over MLLP (embedded log, fsync=always), msg/s and ACK
//! latency with 1, 8 and 32 connections, as a ratio to the disk's own fdatasync'd write
//! bandwidth measured in the same run; then a paced run at a fixed rate for the p99 target.
//! Client and server share this process (and the machine's cores).

use aorta_log::{EmbeddedConfig, EmbeddedLog, Log};
use aorta_mllp::{MllpClient, MllpServer, MllpSourceConfig};
use clap::Args;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Args, Debug)]
pub struct MllpBenchArgs {
    /// Messages per run.
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
    /// Connection counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub connections: Vec<usize>,
    /// Rate of the paced run (msg/s), with the largest connection count; 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Seconds of the paced run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
}

fn message(conn: usize, i: usize) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|LAB|GOOD HEALTH HOSPITAL|AORTA|AORTA|20260101120000||ORU^R01^ORU_R01|B{conn}-{i}|P|2.5.1\rPID|1||MRN{i}^^^GHH^MR||EVERYWOMAN^EVE||19620320|F\rOBR|1|ORD{i}|R-{i}|24331-1^Lipid panel^LN\r"
    );
    for k in 1..=8 {
        m.push_str(&format!(
            "OBX|{k}|NM|2093-3^Cholesterol^LN||{}|mg/dL^mg/dL^UCUM|<200|N|||F|||20260101115500\r",
            150 + (i + k) % 90
        ));
    }
    m.into_bytes()
}

struct Outcome {
    msgs_per_s: f64,
    bytes_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn run_once(
    dir: &Path,
    connections: usize,
    total: usize,
    pace: Option<(u64, Duration)>,
) -> anyhow::Result<Outcome> {
    let log: Arc<dyn Log> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir))?);
    let server = MllpServer::bind(
        MllpSourceConfig {
            listen: "127.0.0.1:0".into(),
            max_connections: connections + 1,
            ..Default::default()
        },
        log,
    )
    .await?;
    let addr = server.local_addr()?.to_string();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(server.run(stopped));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let addr = addr.clone();
        let n = match pace {
            Some((rate, secs)) => (rate as f64 * secs.as_secs_f64() / connections as f64) as usize,
            None => total / connections,
        };
        let interval =
            pace.map(|(rate, _)| Duration::from_secs_f64(connections as f64 / rate as f64));
        tasks.push(tokio::spawn(async move {
            let mut client = MllpClient::connect(&addr, Duration::from_secs(30)).await?;
            let mut lat = Vec::with_capacity(n);
            let mut bytes = 0usize;
            // Stagger paced connections so they do not all fire at once.
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |iv| {
                    iv.mul_f64(c as f64 / connections as f64)
                });
            for i in 0..n {
                if let Some(iv) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += iv;
                }
                let m = message(c, i);
                bytes += m.len();
                let t = Instant::now();
                let ack = client.send(&m).await?;
                anyhow::ensure!(ack.code == "AA", "got {} for a valid message", ack.code);
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>((lat, bytes))
        }));
    }
    let mut lat = Vec::new();
    let mut bytes = 0;
    for t in tasks {
        let (l, b) = t.await??;
        lat.extend(l);
        bytes += b;
    }
    let secs = start.elapsed().as_secs_f64();
    stop.send_replace(true);
    task.await?;
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    Ok(Outcome {
        msgs_per_s: lat.len() as f64 / secs,
        bytes_per_s: bytes as f64 / secs,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    })
}

pub async fn run(args: MllpBenchArgs, data_dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.messages > 0 && args.connections.iter().all(|&c| c > 0),
        "--messages and --connections must be positive"
    );
    let root = data_dir.join(format!("bench-mllp-{}", std::process::id()));
    anyhow::ensure!(!root.exists(), "{} already exists", root.display());
    std::fs::create_dir_all(&root)?;
    let result = bench(&args, &root).await;
    let _ = std::fs::remove_dir_all(&root);
    result
}

async fn bench(args: &MllpBenchArgs, root: &Path) -> anyhow::Result<()> {
    const MIB: f64 = 1024.0 * 1024.0;
    let size = message(0, 0).len();
    println!(
        "aorta bench mllp: {} messages of ~{size} B per run (ORU^R01, 8 OBX), embedded log, fsync=always, client and server in one process",
        args.messages
    );
    super::bench::disk_write_bandwidth(root, 256 << 20)?; // warm-up
    let disk = super::bench::disk_write_bandwidth(root, 256 << 20)? * MIB;
    println!(
        "disk baseline: 256 MiB sequential writes + fdatasync: {:.0} MiB/s",
        disk / MIB
    );
    println!();
    println!(
        "{:>11} {:>10} {:>10} {:>10} {:>10} {:>14}",
        "connections", "msg/s", "MiB/s", "p50 ms", "p99 ms", "ratio to disk"
    );
    for (i, &c) in args.connections.iter().enumerate() {
        let o = run_once(&root.join(format!("run{i}")), c, args.messages, None).await?;
        println!(
            "{c:>11} {:>10.0} {:>10.1} {:>10.2} {:>10.2} {:>14.3}",
            o.msgs_per_s,
            o.bytes_per_s / MIB,
            o.p50_ms,
            o.p99_ms,
            o.bytes_per_s / disk
        );
    }
    if args.rate > 0 {
        let c = args.connections.iter().copied().max().unwrap_or(1);
        let o = run_once(
            &root.join("paced"),
            c,
            0,
            Some((args.rate, Duration::from_secs(args.seconds))),
        )
        .await?;
        println!();
        println!(
            "paced at {} msg/s over {c} connections for {} s: achieved {:.0} msg/s, ACK p50 {:.2} ms, p99 {:.2} ms (target p99 <= 5 ms at 10k msg/s)",
            args.rate, args.seconds, o.msgs_per_s, o.p50_ms, o.p99_ms
        );
    }
    Ok(())
}
