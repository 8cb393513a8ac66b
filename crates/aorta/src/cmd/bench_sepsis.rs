//! `aorta bench sepsis`: the sepsis job end to end under load, in one process on the embedded
//! log (fsync always): HL7 v2 ORU^R01 vitals panels over MLLP at a fixed offered rate →
//! `sepsis-fhir` → `sepsis-alerts` (configs/sepsis.toml). Measured per rate:
//!
//! * MLLP ACK latency, from each message's *scheduled* send time (so a stalled server is not
//!   hidden by the client slowing down: no coordinated omission);
//! * vitals → alert latency: from a message's ACK to its alert being readable on
//!   `sepsis.alerts` (every message has a unique observation time, which the alert carries);
//! * then the API load test: the same ingest with N concurrent HTTP clients (three quarters
//!   polling the JSON API and `/metrics` once a second each, a quarter holding the SSE alert
//!   stream), reporting API latency and the ACK latency as a ratio to the same rate without
//!   clients.
//!
//! One "event" is one ORU^R01 with a seven-observation vitals panel. A tenth of the patients
//! alternate between normal and NEWS2-high visits (16 h of ward time apart, so suppression has
//! lapsed): about 5 % of messages raise alerts (NEWS2, qSOFA and SIRS each alert).

use super::demo::{Vitals, admission, vitals_message, ward};
use crate::config::Config;
use aorta_log::ReadOptions;
use aorta_mllp::MllpClient;
use clap::Args;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct SepsisBenchArgs {
    /// Offered rates (messages per second), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub rates: Vec<u64>,
    /// Seconds per rate.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// MLLP connections the load is spread over.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Patients.
    #[arg(long, default_value_t = 2000)]
    pub patients: usize,
    /// Concurrent API clients in the load test (0 skips it).
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Ingest rate during the load test.
    #[arg(long, default_value_t = 5000)]
    pub load_rate: u64,
    /// Directory for the data (default: a fresh `<data-dir>/bench-sepsis-<pid>`, removed after).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

const MINUTE: i64 = 60_000;

struct Phase {
    acks_ms: Vec<f64>,
    alert_ms: Vec<f64>,
    sent: u64,
    wall_s: f64,
    api_ms: Vec<f64>,
    sse_events: u64,
}

/// Shared between senders and the alert tail: the ACK instant of each observation time.
type AckTimes = Arc<Mutex<HashMap<i64, Instant>>>;

#[allow(clippy::too_many_arguments)]
async fn phase(
    mllp: &str,
    patients: &[super::demo::Patient],
    first: u64,
    rate: u64,
    seconds: u64,
    connections: usize,
    base_ms: i64,
    acked: AckTimes,
) -> anyhow::Result<(Vec<f64>, u64, f64)> {
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(connections as f64 / rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let mut client = MllpClient::connect(mllp, Duration::from_secs(30)).await?;
        let msgs: Vec<(i64, String)> = (c as u64..total)
            .step_by(connections)
            .map(|k| {
                let i = first + k;
                let p = &patients[(i % patients.len() as u64) as usize];
                let visit = i / patients.len() as u64;
                let sick = p.bed.is_multiple_of(10) && visit % 2 == 1;
                let t = base_ms + i as i64 * MINUTE;
                let v = if sick {
                    Vitals {
                        hr: 131.0,
                        rr: 27.0,
                        temp: 39.2,
                        sbp: 88.0,
                        spo2: 90.0,
                        fio2: 21.0,
                        acvpu: "A^Alert",
                        labs: None,
                    }
                } else {
                    Vitals {
                        hr: 72.0 + (i % 9) as f64,
                        rr: 14.0 + (i % 3) as f64,
                        temp: 36.8,
                        sbp: 124.0,
                        spo2: 97.0,
                        fio2: 21.0,
                        acvpu: "A^Alert",
                        labs: None,
                    }
                };
                (t, vitals_message(p, i, t, &v))
            })
            .collect();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(msgs.len());
            for (k, (t, m)) in msgs.into_iter().enumerate() {
                let due = start + interval * k as u32;
                tokio::time::sleep_until(due).await;
                let ack = client.send(m.as_bytes()).await?;
                anyhow::ensure!(ack.code == "AA", "ACK {}", ack.code);
                let now = tokio::time::Instant::now();
                lat.push((now - due).as_secs_f64() * 1e3);
                acked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(t, now.into_std());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let wall = (tokio::time::Instant::now() - start).as_secs_f64();
    Ok((all, total, wall))
}

pub async fn run(args: SepsisBenchArgs, data_dir: &std::path::Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.connections > 0 && args.patients >= 10,
        "--connections > 0 and --patients ≥ 10"
    );
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| data_dir.join(format!("bench-sepsis-{}", std::process::id())));
    let remove = args.dir.is_none();
    let mut config: Config = toml::from_str(super::demo::SEPSIS_TOML)?;
    config.log.embedded.data_dir = dir.clone();
    for s in &mut config.sources.mllp {
        s.listen = "127.0.0.1:0".into();
    }
    config.server.listen = "127.0.0.1:0".into();
    let log = config.log.open().await?;
    let running = super::serve::start(log, &config).await?;
    let log = running.log.clone();
    let mllp = running.mllp_addrs[0].to_string();
    let (api_addr, state) = running
        .api
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no API"))?;
    let patients = Arc::new(ward(args.patients, 96));
    let planned: u64 = args.rates.iter().map(|r| r * args.seconds).sum::<u64>()
        + 2 * args.load_rate * args.seconds;
    // Whole minutes: HL7 times carry seconds, and an alert's time must name its message.
    let base_ms =
        (aorta_log::record::now_ms() - (planned as i64 + 10) * MINUTE).div_euclid(MINUTE) * MINUTE;
    let mut client = MllpClient::connect(&mllp, Duration::from_secs(10)).await?;
    for p in patients.iter() {
        client
            .send(admission(p, base_ms - 3_600_000, 0).as_bytes())
            .await?;
    }
    drop(client);

    // The alert tail: arrival instant per observation time.
    let acked: AckTimes = Default::default();
    let alert_lat: Arc<Mutex<Vec<f64>>> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tail = {
        let (log, acked, alert_lat, stop) =
            (log.clone(), acked.clone(), alert_lat.clone(), stop.clone());
        tokio::spawn(async move {
            let mut from = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok(b) = log
                    .read(
                        "sepsis.alerts",
                        0,
                        from,
                        ReadOptions {
                            max_bytes: 1 << 20,
                            max_wait: Duration::from_millis(50),
                        },
                    )
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let now = Instant::now();
                from = b.next_offset(from);
                for r in b.records {
                    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.record.value) else {
                        continue;
                    };
                    if v["kind"] != "alert" {
                        continue;
                    }
                    let t = v["time_ms"].as_i64().unwrap_or(0);
                    if let Some(at) = acked.lock().unwrap_or_else(|e| e.into_inner()).get(&t) {
                        alert_lat
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(now.saturating_duration_since(*at).as_secs_f64() * 1e3);
                    }
                }
            }
        })
    };
    println!(
        "aorta bench sepsis: ORU^R01 vitals over MLLP -> hl7-to-fhir -> early-warning -> sepsis.alerts (embedded log, fsync always, {} connections, {} patients)",
        args.connections, args.patients
    );
    println!(
        "{:>12} {:>10} {:>22} {:>8} {:>26}",
        "offered/s", "achieved/s", "ACK p50/p99/max ms", "alerts", "ACK->alert p50/p99/max ms"
    );
    let mut first = 0u64;
    let senders_rt = super::serve::DedicatedRuntime::new("bench-mllp-senders")?;
    let senders = senders_rt.handle()?;
    let mut results: Vec<(String, Phase)> = Vec::new();
    let mut run_phase = async |label: String, rate: u64, clients: usize| -> anyhow::Result<Phase> {
        alert_lat.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let load = if clients > 0 {
            Some(api_load(api_addr, &state, clients)?)
        } else {
            None
        };
        // The senders (the measuring instrument) run on a runtime of their own, as they would
        // in a separate process: the in-process API clients must not delay a send or the
        // reading of its ACK, or their queueing would be counted as the server's latency.
        let (m, pts, acks_in) = (mllp.clone(), patients.clone(), acked.clone());
        let (secs, conns) = (args.seconds, args.connections);
        let (acks, sent, wall) = senders
            .spawn(async move { phase(&m, &pts, first, rate, secs, conns, base_ms, acks_in).await })
            .await??;
        first += sent;
        let behind = running.drain(Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (api_ms, sse_events) = match load {
            Some((stop, tasks)) => {
                stop.store(true, Ordering::Relaxed);
                let mut lat = Vec::new();
                let mut events = 0;
                for t in tasks {
                    let (l, e) = t.await?;
                    lat.extend(l);
                    events += e;
                }
                (lat, events)
            }
            None => (Vec::new(), 0),
        };
        let mut p = Phase {
            acks_ms: acks,
            alert_ms: alert_lat.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            sent,
            wall_s: wall,
            api_ms,
            sse_events,
        };
        let (a50, a99, amax) = super::quantiles(&mut p.acks_ms);
        let (l50, l99, lmax) = super::quantiles(&mut p.alert_ms);
        println!(
            "{label:>12} {:>10.0} {:>22} {:>8} {:>26}{}",
            p.sent as f64 / p.wall_s,
            format!("{a50:.2}/{a99:.2}/{amax:.1}"),
            p.alert_ms.len(),
            format!("{l50:.1}/{l99:.1}/{lmax:.1}"),
            if behind > 0 {
                format!("  ({behind} records still unprocessed after 60 s)")
            } else {
                String::new()
            }
        );
        Ok(p)
    };
    for &rate in &args.rates {
        let p = run_phase(format!("{rate}"), rate, 0).await?;
        results.push((format!("{rate}"), p));
    }
    if args.clients > 0 {
        let base = run_phase(format!("{} base", args.load_rate), args.load_rate, 0).await?;
        let mut loaded = run_phase(
            format!("{} +{}c", args.load_rate, args.clients),
            args.load_rate,
            args.clients,
        )
        .await?;
        let (b50, b99, _) = super::quantiles(&mut base.acks_ms.clone());
        let (l50, l99, _) = super::quantiles(&mut loaded.acks_ms.clone());
        let (p50, p99, pmax) = super::quantiles(&mut loaded.api_ms);
        println!(
            "load test: {} API clients ({} on the SSE alert stream) during {} msg/s ingest: {} API requests, p50 {p50:.1} ms, p99 {p99:.1} ms, max {pmax:.1} ms; {} SSE events delivered",
            args.clients,
            args.clients / 4,
            args.load_rate,
            loaded.api_ms.len(),
            loaded.sse_events
        );
        println!(
            "  ingest ACK latency with clients / without: p50 {:.2}x ({l50:.2} / {b50:.2} ms), p99 {:.2}x ({l99:.2} / {b99:.2} ms)",
            l50 / b50,
            l99 / b99
        );
    }
    if let Some(hwm) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
    {
        println!(
            "peak memory (VmHWM): {:.0} MiB",
            hwm.parse::<f64>().unwrap_or(0.0) / 1024.0
        );
    }
    stop.store(true, Ordering::Relaxed);
    tail.await?;
    running.shutdown().await?;
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Pause between one client's requests: a console or dashboard polling once a second (the
/// console itself refreshes every 2 s), not a flood; 150 such clients make ~150 requests/s.
const THINK: Duration = Duration::from_secs(1);

type Load = (
    Arc<AtomicBool>,
    Vec<tokio::task::JoinHandle<(Vec<f64>, u64)>>,
);

/// Starts `n` API clients: every fourth holds the SSE alert stream open and counts events, the
/// others loop over the read API and `/metrics`, timing each request.
fn api_load(
    addr: std::net::SocketAddr,
    state: &aorta_server::AppState,
    n: usize,
) -> anyhow::Result<Load> {
    let (_, operator) = state
        .tokens
        .create(aorta_server::Role::Operator, "bench-operator")?;
    let (_, clinician) = state
        .tokens
        .create(aorta_server::Role::Clinician, "bench-clinician")?;
    let stop = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .build()?;
    let requests = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for j in 0..n {
        let (stop, http, requests) = (stop.clone(), http.clone(), requests.clone());
        let base = format!("http://{addr}");
        let (operator, clinician) = (operator.clone(), clinician.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut events = 0u64;
            if j % 4 == 0 {
                let Ok(mut resp) = http
                    .get(format!("{base}/api/alerts/stream"))
                    .bearer_auth(&clinician)
                    .send()
                    .await
                else {
                    return (lat, 0);
                };
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await {
                        Ok(Ok(Some(c))) => {
                            events += c.windows(12).filter(|w| w == b"event: alert").count() as u64
                        }
                        Ok(_) => break,
                        Err(_) => {}
                    }
                }
                return (lat, events);
            }
            let paths = [
                "/api/topics",
                "/api/pipelines",
                "/api/overview",
                "/metrics",
                "/readyz",
            ];
            let mut k = j;
            // Spread the clients' first requests over the think time.
            tokio::time::sleep(THINK * (j as u32) / (n as u32).max(1)).await;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let t = Instant::now();
                let ok = http
                    .get(format!("{base}{}", paths[k % paths.len()]))
                    .bearer_auth(&operator)
                    .send()
                    .await;
                if let Ok(r) = ok {
                    let _ = r.bytes().await;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    requests.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(THINK).await;
            }
            (lat, events)
        }));
    }
    Ok((stop, tasks))
}
