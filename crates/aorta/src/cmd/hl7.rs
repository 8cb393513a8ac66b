//! `aorta hl7 parse|validate`: look inside HL7 v2 files.

use anyhow::Context;
use aorta_hl7::validate::{charset, validate};
use aorta_hl7::{Message, escape, parse_stream};
use clap::Subcommand;
use std::io::{Read, Write};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum Hl7Cmd {
    /// Print each message as a tree of decoded values (or JSON with --json).
    Parse {
        /// An HL7 file (one or more messages, batches allowed); `-` reads stdin.
        file: PathBuf,
        /// One JSON object per message: {"segments":[{"id":"PID","fields":[[[["comp","sub"]]]]}]}
        /// (fields from 1 → repetitions → components → subcomponents, decoded strings).
        #[arg(long)]
        json: bool,
    },
    /// Send the messages in files to an MLLP receiver and check every acknowledgement.
    Send {
        /// HL7 files (each may hold several messages or batches); `-` reads stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Receiver, host:port.
        #[arg(long)]
        to: String,
        /// Concurrent connections.
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Messages per second over all connections (0: as fast as ACKs come back).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Seconds to wait for each ACK.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// MLLP over TLS: trust the CA certificate(s) in this PEM file.
        #[arg(long, value_name = "PEM")]
        tls_ca: Option<PathBuf>,
        /// Name to verify the server certificate against (default: the host of --to).
        #[arg(long, requires = "tls_ca")]
        tls_server_name: Option<String>,
    },
    /// Convert each message to a FHIR R4 Bundle (one JSON line per message).
    ToFhir {
        /// An HL7 file; `-` reads stdin.
        file: PathBuf,
        /// Offset for times that have none when MSH-7 has none either (e.g. -05:00, Z);
        /// without it such times keep only their date.
        #[arg(long, value_name = "±hh:mm")]
        default_offset: Option<String>,
        /// Indent the JSON.
        #[arg(long)]
        pretty: bool,
    },
    /// Check files strictly and list every problem (exit 1 if any).
    Validate {
        /// HL7 files; `-` reads stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
    } else {
        buf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(buf)
}

/// One message as the JSON tree the issue specifies.
fn json(m: &Message<'_>) -> serde_json::Value {
    let d = m.delimiters();
    let cs = charset(m);
    let text = |b: &[u8]| cs.decode(b);
    let segments: Vec<serde_json::Value> = m
        .segments()
        .map(|s| {
            let header = s.index() == 0;
            let fields: Vec<serde_json::Value> = s
                .fields()
                .skip(1)
                .enumerate()
                .map(|(i, f)| {
                    let literal = header && i < 2; // MSH-1, MSH-2 are not split or decoded
                    let reps: Vec<serde_json::Value> = f
                        .repetitions()
                        .map(|r| {
                            let comps: Vec<serde_json::Value> = r
                                .components()
                                .map(|c| {
                                    let subs: Vec<String> = c
                                        .subcomponents()
                                        .map(|x| {
                                            if literal {
                                                text(x)
                                            } else {
                                                text(&escape::decode(x, &d))
                                            }
                                        })
                                        .collect();
                                    subs.into()
                                })
                                .collect();
                            comps.into()
                        })
                        .collect();
                    reps.into()
                })
                .collect();
            serde_json::json!({ "id": text(s.id()), "fields": fields })
        })
        .collect();
    serde_json::json!({ "segments": segments })
}

fn tree(out: &mut impl Write, n: usize, m: &Message<'_>) -> std::io::Result<()> {
    let d = m.delimiters();
    let cs = charset(m);
    let show = |b: &[u8]| cs.decode(b);
    writeln!(
        out,
        "message {n}: {} control id {}, {} segments",
        m.message_type().map(show).unwrap_or_default(),
        m.control_id().map(show).unwrap_or_default(),
        m.len()
    )?;
    for s in m.segments() {
        let id = show(s.id());
        writeln!(out, "  {id}")?;
        for (fi, f) in s.fields().enumerate().skip(1) {
            if f.raw().is_empty() {
                continue;
            }
            if s.index() == 0 && fi <= 2 {
                writeln!(out, "    {id}-{fi}  {}", show(f.raw()))?;
                continue;
            }
            let reps: Vec<_> = f.repetitions().collect();
            for (ri, r) in reps.iter().enumerate() {
                let at = if reps.len() > 1 {
                    format!("{id}-{fi}[{}]", ri + 1)
                } else {
                    format!("{id}-{fi}")
                };
                writeln!(out, "    {at}  {}", show(&escape::decode(r.raw(), &d)))?;
                let comps: Vec<_> = r.components().collect();
                if comps.len() > 1 {
                    for (ci, c) in comps
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.raw().is_empty())
                    {
                        writeln!(out, "      {at}.{}  {}", ci + 1, show(&c.decoded()))?;
                        let subs: Vec<_> = c.subcomponents().collect();
                        if subs.len() > 1 {
                            for (si, x) in subs.iter().enumerate().filter(|(_, x)| !x.is_empty()) {
                                writeln!(
                                    out,
                                    "        {at}.{}.{}  {}",
                                    ci + 1,
                                    si + 1,
                                    show(&escape::decode(x, &d))
                                )?;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

pub async fn run(cmd: Hl7Cmd) -> anyhow::Result<()> {
    match cmd {
        Hl7Cmd::Send {
            files,
            to,
            connections,
            rate,
            timeout,
            tls_ca,
            tls_server_name,
        } => {
            let tls = tls_ca.map(|ca| {
                let name = tls_server_name.unwrap_or_else(|| {
                    to.rsplit_once(':')
                        .map_or(to.clone(), |(h, _)| h.to_string())
                });
                (ca, name)
            });
            send(&files, &to, connections, rate, timeout, tls).await?
        }
        Hl7Cmd::Parse {
            file,
            json: as_json,
        } => {
            let bytes = read(&file)?;
            let batch =
                parse_stream(&bytes).with_context(|| format!("parsing {}", file.display()))?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for (i, m) in batch.messages.iter().enumerate() {
                let r = if as_json {
                    writeln!(out, "{}", json(m))
                } else {
                    tree(&mut out, i + 1, m)
                };
                if let Err(e) = r {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(e.into());
                }
            }
            out.flush().ok();
        }
        Hl7Cmd::ToFhir {
            file,
            default_offset,
            pretty,
        } => {
            if let Some(o) = &default_offset {
                anyhow::ensure!(
                    aorta_fhir::datetime::is_offset(o),
                    "--default-offset {o:?} must be Z or ±hh:mm"
                );
            }
            let options = aorta_fhir::v2::Options { default_offset };
            let bytes = read(&file)?;
            let batch =
                parse_stream(&bytes).with_context(|| format!("parsing {}", file.display()))?;
            let mut failed = 0;
            for (i, m) in batch.messages.iter().enumerate() {
                match aorta_fhir::v2::convert(m, &options) {
                    Ok(bundle) => {
                        let text = if pretty {
                            serde_json::to_string_pretty(&bundle)?
                        } else {
                            serde_json::to_string(&bundle)?
                        };
                        println!("{text}");
                    }
                    Err(e) => {
                        eprintln!("{}: message {}: {e}", file.display(), i + 1);
                        failed += 1;
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} message(s) not converted");
        }
        Hl7Cmd::Validate { files } => {
            let mut problems = 0;
            for file in &files {
                let bytes = read(file)?;
                match parse_stream(&bytes) {
                    Err(e) => {
                        println!("{}: {e}", file.display());
                        problems += 1;
                    }
                    Ok(batch) => {
                        for (i, m) in batch.messages.iter().enumerate() {
                            if aorta_hl7::structure::check(m).is_none() {
                                eprintln!(
                                    "{}: message {}: structure {} not checked (no grammar for it; see `aorta_hl7::structure`)",
                                    file.display(),
                                    i + 1,
                                    aorta_hl7::structure::structure_of(m)
                                        .unwrap_or_else(|| "(unknown)".into())
                                );
                            }
                            for p in validate(m) {
                                println!(
                                    "{}: message {}: {}: {} (bytes {}..{})",
                                    file.display(),
                                    i + 1,
                                    p.location,
                                    p.message,
                                    p.span.start,
                                    p.span.end
                                );
                                problems += 1;
                            }
                        }
                    }
                }
            }
            if problems > 0 {
                anyhow::bail!("{problems} problem(s) in {} file(s)", files.len());
            }
            eprintln!("{} file(s): no problems found", files.len());
        }
    }
    Ok(())
}

/// Sends every message of `files` over `connections` connections and reports the outcome.
async fn send(
    files: &[PathBuf],
    to: &str,
    connections: usize,
    rate: f64,
    timeout: u64,
    tls: Option<(PathBuf, String)>,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};
    anyhow::ensure!(connections > 0, "--connections must be at least 1");
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut skipped = 0;
    for f in files {
        let bytes = read(f)?;
        match parse_stream(&bytes) {
            Ok(b) => messages.extend(b.messages.iter().map(|m| m.raw().to_vec())),
            Err(e) => {
                eprintln!("skipping {}: {e}", f.display());
                skipped += 1;
            }
        }
    }
    anyhow::ensure!(
        !messages.is_empty(),
        "no HL7 messages found in {} file(s)",
        files.len()
    );
    let total = messages.len();
    let done = std::sync::Arc::new(AtomicU64::new(0));
    let per_conn_interval =
        (rate > 0.0).then(|| Duration::from_secs_f64(connections as f64 / rate));
    let started = Instant::now();
    let mut queues: Vec<Vec<Vec<u8>>> = vec![Vec::new(); connections];
    for (i, m) in messages.into_iter().enumerate() {
        queues[i % connections].push(m);
    }
    let mut tasks = Vec::new();
    for queue in queues.into_iter().filter(|q| !q.is_empty()) {
        let to = to.to_string();
        let done = done.clone();
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let wait = Duration::from_secs(timeout);
            let mut client = match &tls {
                Some((ca, name)) => {
                    aorta_mllp::MllpClient::connect_tls(&to, name, ca, wait).await?
                }
                None => aorta_mllp::MllpClient::connect(&to, wait).await?,
            };
            let mut results = Vec::with_capacity(queue.len());
            let mut next = Instant::now();
            for m in queue {
                if let Some(iv) = per_conn_interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += iv;
                }
                let t = Instant::now();
                let ack = client.send(&m).await?;
                results.push((ack.code, t.elapsed()));
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, aorta_mllp::client::ClientError>(results)
        }));
    }
    let progress = std::io::stderr().is_terminal();
    let ticker = progress.then(|| {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                eprint!("\rsent {} of {total}", done.load(Ordering::Relaxed));
            }
        })
    });
    let mut codes: std::collections::BTreeMap<String, usize> = Default::default();
    let mut latencies = Vec::with_capacity(total);
    let mut errors = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(results) => {
                for (code, lat) in results {
                    *codes.entry(code).or_default() += 1;
                    latencies.push(lat);
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Some(t) = ticker {
        t.abort();
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let summary: Vec<String> = codes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "sent {} of {total} messages to {to} over {connections} connection(s) in {secs:.2} s ({:.0} msg/s); ACKs: {}; latency p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        latencies.len() as f64 / secs,
        if summary.is_empty() {
            "none".into()
        } else {
            summary.join(", ")
        },
        pct(0.5),
        pct(0.99)
    );
    for e in &errors {
        eprintln!("connection failed: {e}");
    }
    let not_aa = latencies.len() - codes.get("AA").copied().unwrap_or(0);
    if !errors.is_empty() || not_aa > 0 || skipped > 0 {
        anyhow::bail!(
            "{not_aa} message(s) not accepted (AE/AR), {} connection error(s), {skipped} unreadable file(s)",
            errors.len()
        );
    }
    Ok(())
}
