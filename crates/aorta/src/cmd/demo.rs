//! `aorta demo`: the main job, end to end, with nothing to install.
//!
//! Starts what `aorta --config configs/sepsis.toml serve` starts (MLLP listener, the
//! `sepsis-fhir` and `sepsis-alerts` pipelines, the HTTP API) on a fresh `demo` directory of
//! the data dir, then a simulated ward sends HL7 v2 over MLLP like a real interface engine
//! would: one ADT^A01 per admission, then an ORU^R01 with a vitals panel (HR, RR, temperature,
//! systolic BP, SpO₂, FiO₂, ACVPU) for every patient every 15 minutes of ward time, and labs
//! (lactate, WBC) for the sick. A few patients deteriorate into sepsis at set hours; one is a
//! child (NEWS2 does not apply: flagged, not scored). Alerts are printed as they appear on
//! `sepsis.alerts`, explained, and at the end the run is checked: every ACKed message is on
//! the log, every deteriorating patient alerted, no stable one did, and the latency from a
//! message's ACK to its alert is reported.
//!
//! Ward time runs fast (`--round-ms` real milliseconds per 15-minute round) and ends at the
//! present, so observation times are real past times. `--kafka` (global) runs it on Kafka.

use crate::config::{Backend, Config};
use aorta_log::ReadOptions;
use aorta_mllp::MllpClient;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The ready-made sepsis configuration (also `configs/sepsis.toml`).
pub const SEPSIS_TOML: &str = include_str!("../../../../configs/sepsis.toml");
/// The ready-made electronic lab reporting configuration (also `configs/elr.toml`).
pub const ELR_TOML: &str = include_str!("../../../../configs/elr.toml");

/// Lab reports the simulated laboratories send over the run.
const LAB_REPORTS: usize = 60;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Patients on the ward (at least 6: three deteriorate, one is a child).
    #[arg(long, default_value_t = 16)]
    pub patients: usize,
    /// Hours of ward time to simulate (4 rounds of vitals an hour).
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Real milliseconds per 15-minute round.
    #[arg(long, default_value_t = 400)]
    pub round_ms: u64,
    /// API address; taken or "": a free port / no API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub api: String,
    /// Keep serving (API, console, pipelines) after the ward's day, until Ctrl-C.
    #[arg(long)]
    pub stay: bool,
    /// Seed of the vitals' noise (the same seed gives the same ward).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Course {
    Stable,
    /// Sepsis developing from this round on.
    Sepsis(u32),
    Child,
}

pub(crate) struct Patient {
    mrn: String,
    family: &'static str,
    given: &'static str,
    dob: String,
    sex: &'static str,
    pub(crate) bed: usize,
    course: Course,
}

const FAMILY: [&str; 12] = [
    "OKAFOR",
    "LINDQVIST",
    "NAKAMURA",
    "DUBOIS",
    "SILVA",
    "KOWALSKI",
    "HASSAN",
    "MURPHY",
    "ROSSI",
    "CHEN",
    "MENDES",
    "NOVAK",
];
const GIVEN: [&str; 12] = [
    "ADA", "BJORN", "EMI", "LUC", "RITA", "PAWEL", "SAMIR", "NORA", "GIULIA", "WEI", "TOMAS", "IVA",
];

pub(crate) fn ward(n: usize, rounds: u32) -> Vec<Patient> {
    (0..n)
        .map(|i| {
            let course = match i {
                2 => Course::Sepsis(rounds / 6),
                6 => Course::Sepsis(rounds * 5 / 12),
                9 => Course::Sepsis(rounds * 2 / 3),
                4 => Course::Child,
                _ => Course::Stable,
            };
            let year = if course == Course::Child {
                2014
            } else {
                1940 + (i * 7 % 50) as u32
            };
            Patient {
                mrn: format!("W7{:05}", 10_000 + i * 37),
                family: FAMILY[i % FAMILY.len()],
                given: GIVEN[(i * 5) % GIVEN.len()],
                dob: format!("{year}{:02}{:02}", 1 + i % 12, 1 + i % 28),
                sex: if i % 2 == 0 { "F" } else { "M" },
                bed: i + 1,
                course,
            }
        })
        .collect()
}

/// `YYYYMMDDHHMMSS+0000` for a UTC time in ms.
fn hl7_ts(ms: i64) -> String {
    let iso = aorta_fhir::datetime::format_utc_ms(ms);
    let digits: String = iso.chars().take(19).filter(char::is_ascii_digit).collect();
    format!("{digits}+0000")
}

fn header(kind: &str, ctrl: &str, ts: &str) -> String {
    format!("MSH|^~\\&|WARDSIM|AORTA GENERAL|AORTA|AORTA|{ts}||{kind}|{ctrl}|P|2.5.1\r")
}

fn pid(p: &Patient) -> String {
    format!(
        "PID|1||{}^^^AGH^MR||{}^{}||{}|{}|||{} HARBOUR ROAD^^PORTSMOUTH^NH^03801^USA\r\
         PV1|1|I|WARD7^{:02}^1^AGH||||4411^ATTEND^JO^^^^DR|||MED\r",
        p.mrn,
        p.family,
        p.given,
        p.dob,
        p.sex,
        10 + p.bed,
        p.bed
    )
}

/// `run` makes control ids unique per run: an identical resend (same sender, MSH-10 and
/// bytes) is acknowledged without being stored again, which a second run in the same minute
/// on a Kafka topic that outlives it would otherwise be.
pub(crate) fn admission(p: &Patient, ms: i64, run: u64) -> String {
    let ts = hl7_ts(ms);
    format!(
        "{}EVN|A01|{ts}\r{}",
        header("ADT^A01^ADT_A01", &format!("ADM{}-{run}", p.mrn), &ts),
        pid(p)
    )
}

pub(crate) struct Vitals {
    pub(crate) hr: f64,
    pub(crate) rr: f64,
    pub(crate) temp: f64,
    pub(crate) sbp: f64,
    pub(crate) spo2: f64,
    pub(crate) fio2: f64,
    pub(crate) acvpu: &'static str,
    pub(crate) labs: Option<(f64, f64)>,
}

/// A patient's vitals at a round: stable ranges with noise, or a sepsis course that takes
/// about four hours from onset to full (tachycardia, tachypnoea, fever, falling BP and SpO₂,
/// new confusion at the end, lactate and WBC drawn twice).
pub(crate) fn vitals(p: &Patient, round: u32, rng: &mut StdRng) -> Vitals {
    let mut n = |spread: f64| rng.random_range(-spread..=spread);
    let s = match p.course {
        Course::Sepsis(onset) if round >= onset => (f64::from(round - onset) / 16.0).min(1.0),
        _ => 0.0,
    };
    let child = p.course == Course::Child;
    Vitals {
        hr: (if child { 82.0 } else { 76.0 } + 46.0 * s + n(6.0)).round(),
        rr: (if child { 18.0 } else { 15.0 } + 13.0 * s + n(1.5)).round(),
        temp: ((36.9 + 2.3 * s + n(0.3)) * 10.0).round() / 10.0,
        sbp: (124.0 - 38.0 * s + n(7.0)).round(),
        spo2: (97.5 - 6.0 * s + n(1.0)).round().min(100.0),
        fio2: if s > 0.6 { 28.0 } else { 21.0 },
        acvpu: if s > 0.85 {
            "C^New confusion"
        } else {
            "A^Alert"
        },
        labs: match p.course {
            Course::Sepsis(onset) if round == onset + 6 || round == onset + 14 => Some((
                ((1.2 + 3.6 * s) * 10.0_f64).round() / 10.0,
                (8.0 + 9.0 * s).round(),
            )),
            _ => None,
        },
    }
}

pub(crate) fn vitals_message(p: &Patient, seq: u64, ms: i64, v: &Vitals) -> String {
    let ts = hl7_ts(ms);
    let mut m = header("ORU^R01^ORU_R01", &format!("VS{seq:08}"), &ts);
    m += &pid(p);
    m += &format!(
        "OBR|1|VS{seq:08}^AGH||85353-1^Vital signs panel^LN|||{ts}|||||||||4411^ATTEND^JO^^^^DR||||||{ts}|||F\r"
    );
    let nm = [
        ("8867-4", "Heart rate", v.hr, "/min"),
        ("9279-1", "Respiratory rate", v.rr, "/min"),
        ("8310-5", "Body temperature", v.temp, "Cel"),
        ("8480-6", "Systolic blood pressure", v.sbp, "mm[Hg]"),
        (
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
            v.spo2,
            "%",
        ),
        ("3150-0", "Inhaled oxygen concentration", v.fio2, "%"),
    ];
    let mut i = 0;
    for (code, name, value, unit) in nm {
        i += 1;
        m += &format!("OBX|{i}|NM|{code}^{name}^LN||{value}|{unit}^{unit}^UCUM|||||F|||{ts}\r");
    }
    i += 1;
    m += &format!(
        "OBX|{i}|CWE|67775-7^Level of responsiveness^LN||{}^L||||||F|||{ts}\r",
        v.acvpu
    );
    if let Some((lactate, wbc)) = v.labs {
        i += 1;
        m += &format!("OBX|{i}|NM|2524-7^Lactate^LN||{lactate}|mmol/L^mmol/L^UCUM|||||F|||{ts}\r");
        i += 1;
        m += &format!("OBX|{i}|NM|6690-2^Leukocytes^LN||{wbc}|10*3/uL^10*3/uL^UCUM|||||F|||{ts}\r");
    }
    m
}

/// One alert as printed and checked.
struct Seen {
    patient: String,
    score: String,
    total: i64,
    band: String,
    time_ms: i64,
    arrived: Instant,
}

fn explain(a: &Value) -> String {
    let score = a["score"].as_str().unwrap_or("?");
    let parts: Vec<String> = match score {
        "news2" => a["news2"]["subscores"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| v.as_i64().unwrap_or(0) > 0)
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect()
            })
            .unwrap_or_default(),
        other => a[other]["criteria"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| v.as_bool() == Some(true))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default(),
    };
    parts.join(", ")
}

/// Records ever written to `hl7.inbound` (0 before it exists).
async fn topic_end(log: &dyn aorta_log::Log, topic: &str) -> anyhow::Result<u64> {
    match log.describe_topic(topic).await {
        Ok(d) => Ok(d.partitions.iter().map(|p| p.high_watermark).sum()),
        Err(aorta_log::LogError::UnknownTopic { .. }) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

pub async fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.patients >= 10,
        "--patients must be at least 10 (the ward has three deteriorating patients at beds 3, 7 and 10 and a child at bed 5)"
    );
    let sepsis: Config = toml::from_str(SEPSIS_TOML)?;
    let elr: Config = toml::from_str(ELR_TOML)?;
    if config.log.backend == Backend::Embedded {
        let dir = config.log.embedded.data_dir.join("demo");
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        config.log.embedded.data_dir = dir;
    } else {
        // On Kafka the topics outlive the run: the pipelines' local state starts afresh (their
        // groups resume at the committed offsets) and the alert board reads only new alerts.
        let dir = config
            .state
            .dir
            .clone()
            .unwrap_or_else(|| "./aorta-state".into())
            .join("demo");
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        config.state.dir = Some(dir);
        // … and so does their operator state: the last run's windows, dedupe keys and alert
        // suppression stay in the changelogs, unread.
        config.state.ignore_changelog = true;
    }
    config.sources = sepsis.sources;
    config.sources.mllp.extend(elr.sources.mllp);
    for s in &mut config.sources.mllp {
        s.listen = "127.0.0.1:0".into();
    }
    config.pipelines = sepsis.pipelines;
    config.pipelines.extend(elr.pipelines);
    config.server.listen = args.api.clone();
    if !args.api.is_empty() && std::net::TcpListener::bind(&args.api).is_err() {
        eprintln!("{} is taken: the API takes a free port instead", args.api);
        config.server.listen = "127.0.0.1:0".into();
    }
    let log = config.log.open().await?;
    let backend = log.backend();
    let running = super::serve::start(log, &config).await?;
    // On Kafka the topic may hold earlier runs: count this run's messages from here.
    let inbound_before = topic_end(&*running.log, "hl7.inbound").await?;
    let elr_topics = [
        "hl7.elr",
        "elr.accepted",
        "elr.dlq",
        "elr.aggregates",
        "elr.unrouted",
        "elr.wa",
        "elr.or",
        "elr.tx",
    ];
    let mut elr_before = BTreeMap::new();
    for t in elr_topics {
        elr_before.insert(t, topic_end(&*running.log, t).await?);
    }
    let log = running.log.clone();
    let mllp = running.mllp_addrs[0];
    let mllp_elr = running.mllp_addrs[1];
    println!(
        "Aorta demo: sepsis early warning on a simulated ward, and electronic lab reporting ({backend} log)"
    );
    println!(
        "  config: configs/sepsis.toml (MLLP {mllp} -> hl7.inbound -> sepsis-fhir -> fhir.clinical -> sepsis-alerts -> sepsis.alerts)"
    );
    println!(
        "          configs/elr.toml (MLLP {mllp_elr} -> hl7.elr -> elr -> elr.accepted -> elr-route -> elr.<state>; elr-aggregate -> elr.aggregates)"
    );
    if let Some((addr, state)) = &running.api {
        let (_, token) = state.tokens.create(aorta_server::Role::Admin, "demo")?;
        println!("  API: http://{addr}  (admin token for this run: {token})");
        println!("       curl -H 'Authorization: Bearer {token}' http://{addr}/api/alerts");
    }

    let rounds = args.hours * 4;
    let patients = ward(args.patients, rounds);
    let now = aorta_log::record::now_ms();
    let round_ms = 15 * 60 * 1000;
    // Whole minutes: HL7 times carry seconds, and alert times must name their message exactly.
    let t0 = (now - i64::from(rounds) * round_ms).div_euclid(60_000) * 60_000;
    let run = (now % 1_000_000_000) as u64;
    // Each patient's observations are a few seconds apart within a round, so an alert's time
    // names the message that caused it.
    let obs_time = |round: u32, bed: usize| t0 + i64::from(round) * round_ms + bed as i64 * 1000;

    // The alert board: tail sepsis.alerts while the ward runs.
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let tail_log = log.clone();
    let sent_at: Arc<std::sync::Mutex<BTreeMap<i64, (usize, Instant)>>> = Default::default();
    let sent = sent_at.clone();
    let tail = tokio::spawn(async move {
        let mut beds: HashMap<String, usize> = HashMap::new();
        let mut seen: Vec<Seen> = Vec::new();
        let mut flags = 0u64;
        let mut from = match tail_log.offsets("sepsis.alerts", 0).await {
            Ok(o) => o.high_watermark,
            Err(_) => 0,
        };
        let mut quiet_rounds = 0;
        loop {
            let batch = tail_log
                .read(
                    "sepsis.alerts",
                    0,
                    from,
                    ReadOptions {
                        max_bytes: 1 << 20,
                        max_wait: Duration::from_millis(100),
                    },
                )
                .await;
            let batch = match batch {
                Ok(b) => b,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if *done_rx.borrow_and_update() {
                        quiet_rounds += 1;
                        if quiet_rounds > 20 {
                            break;
                        }
                    }
                    continue;
                }
            };
            if batch.records.is_empty() {
                if *done_rx.borrow_and_update() {
                    quiet_rounds += 1;
                    if quiet_rounds > 20 {
                        break;
                    }
                }
                continue;
            }
            quiet_rounds = 0;
            from = batch.next_offset(from);
            for r in batch.records {
                let Ok(a) = serde_json::from_slice::<Value>(&r.record.value) else {
                    continue;
                };
                let patient = a["patient"].as_str().unwrap_or("?").to_string();
                let time_ms = a["time_ms"].as_i64().unwrap_or(0);
                if let Some((bed, _)) = sent.lock().unwrap_or_else(|e| e.into_inner()).get(&time_ms)
                {
                    beds.insert(patient.clone(), *bed);
                }
                let tag = beds
                    .get(&patient)
                    .map_or_else(|| patient.clone(), |b| format!("bed {b:>2}"));
                match a["kind"].as_str() {
                    Some("not-applicable") => {
                        flags += 1;
                        println!(
                            "  FLAG   {tag}: NEWS2 not applicable ({})",
                            a["reason"].as_str().unwrap_or("out of scope")
                        );
                    }
                    Some("alert") => {
                        let s = Seen {
                            patient: patient.clone(),
                            score: a["score"].as_str().unwrap_or("?").to_string(),
                            total: a["total"].as_i64().unwrap_or(0),
                            band: a["band"].as_str().unwrap_or("").to_string(),
                            time_ms,
                            arrived: Instant::now(),
                        };
                        let esc = if a["escalation"].as_bool() == Some(true) {
                            " (escalation)"
                        } else {
                            ""
                        };
                        let when = aorta_fhir::datetime::format_utc_ms(s.time_ms);
                        println!(
                            "  ALERT  {} {} {tag}  {:<5} {:>2} {:<6}{esc}: {}",
                            &when[5..10],
                            &when[11..16],
                            s.score.to_uppercase(),
                            s.total,
                            s.band,
                            explain(&a)
                        );
                        seen.push(s);
                    }
                    _ => {}
                }
            }
        }
        (seen, flags)
    });

    // The ward, and the labs.
    let mut client = MllpClient::connect(&mllp.to_string(), Duration::from_secs(10)).await?;
    let mut lab_client =
        MllpClient::connect(&mllp_elr.to_string(), Duration::from_secs(10)).await?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let lab_reports = super::demo_elr::reports(LAB_REPORTS, now, run, &mut rng);
    let mut labs_sent = 0usize;
    let mut acked = 0u64;
    let send = async |client: &mut MllpClient, msg: String| -> anyhow::Result<Instant> {
        let ack = client.send(msg.as_bytes()).await?;
        anyhow::ensure!(
            ack.code == "AA",
            "the server answered {} to a valid message",
            ack.code
        );
        Ok(Instant::now())
    };
    for p in &patients {
        send(&mut client, admission(p, t0 - 3_600_000, run)).await?;
        acked += 1;
    }
    println!(
        "  ward 7: {} patients admitted; {} hours of vitals follow, a round every {} ms (15 min of ward time)",
        patients.len(),
        args.hours,
        args.round_ms
    );
    let started = Instant::now();
    let mut seq = run * 1_000_000;
    for round in 0..rounds {
        let tick = Instant::now();
        for p in &patients {
            seq += 1;
            let v = vitals(p, round, &mut rng);
            let t = obs_time(round, p.bed);
            let at = send(&mut client, vitals_message(p, seq, t, &v)).await?;
            acked += 1;
            sent_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(t, (p.bed, at));
        }
        // The labs' reports, spread over the ward's rounds.
        let due = lab_reports.len() * (round as usize + 1) / rounds.max(1) as usize;
        while labs_sent < due {
            send(&mut lab_client, lab_reports[labs_sent].message.clone()).await?;
            labs_sent += 1;
        }
        if round % 16 == 15 {
            println!(
                "  … {} of {} hours sent ({acked} messages ACKed)",
                (round + 1) / 4,
                args.hours
            );
        }
        let spent = tick.elapsed();
        if let Some(rest) = Duration::from_millis(args.round_ms).checked_sub(spent) {
            tokio::time::sleep(rest).await;
        }
    }
    while labs_sent < lab_reports.len() {
        send(&mut lab_client, lab_reports[labs_sent].message.clone()).await?;
        labs_sent += 1;
    }
    let send_s = started.elapsed().as_secs_f64();
    // Let the pipelines drain, then stop the tail.
    running.drain(Duration::from_secs(30)).await;
    done_tx.send_replace(true);
    let (seen, flags) = tail.await?;

    // Check the run.
    let stored = topic_end(&*log, "hl7.inbound").await? - inbound_before;
    anyhow::ensure!(
        stored == acked,
        "{acked} messages were ACKed but hl7.inbound received {stored}"
    );
    let sent_at = sent_at.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let bed_of = |t: i64| sent_at.get(&t).map(|(bed, _)| *bed);
    let mut alerted_beds: BTreeMap<usize, (String, i64)> = BTreeMap::new();
    let mut latencies: Vec<f64> = Vec::new();
    for s in &seen {
        if let Some(bed) = bed_of(s.time_ms) {
            alerted_beds
                .entry(bed)
                .or_insert((s.score.clone(), s.time_ms));
            if let Some((_, at)) = sent_at.get(&s.time_ms) {
                latencies.push(s.arrived.saturating_duration_since(*at).as_secs_f64() * 1e3);
            }
        }
        let _ = (&s.patient, s.total, &s.band);
    }
    println!();
    println!(
        "Summary ({:.1} s of sending, {acked} HL7 messages ACKed AA, all {stored} on hl7.inbound)",
        send_s
    );
    let mut missed = Vec::new();
    let mut false_alarms = Vec::new();
    for p in &patients {
        let first = alerted_beds.get(&p.bed);
        match (p.course, first) {
            (Course::Sepsis(onset), Some((score, t))) => {
                let after = (*t - obs_time(onset, p.bed)) as f64 / 3_600_000.0;
                println!(
                    "  bed {:>2}: sepsis from ward hour {:>4.1}: first alert {} {after:.2} h after onset",
                    p.bed,
                    f64::from(onset) / 4.0,
                    score.to_uppercase()
                );
            }
            (Course::Sepsis(onset), None) => {
                println!(
                    "  bed {:>2}: sepsis from ward hour {:>4.1}: NO ALERT",
                    p.bed,
                    f64::from(onset) / 4.0
                );
                missed.push(p.bed);
            }
            (_, Some((score, _))) => {
                println!("  bed {:>2}: stable, but alerted ({score})", p.bed);
                false_alarms.push(p.bed);
            }
            _ => {}
        }
    }
    let stable = patients
        .iter()
        .filter(|p| p.course == Course::Stable)
        .count();
    println!(
        "  {} alerts in all; {stable} stable patients: {} alerted; the child: {flags} NEWS2 scope flag(s)",
        seen.len(),
        false_alarms.len()
    );
    if !latencies.is_empty() {
        let (p50, p99, max) = super::quantiles(&mut latencies);
        println!(
            "  latency from a message's ACK to its alert on sepsis.alerts: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} alerts)",
            latencies.len()
        );
    }
    if let Some(m) = running.components.mllp.first() {
        let h = m.stats.ack_latency.snapshot();
        if let (Some(p50), Some(p99)) = (h.quantile_bound_us(0.5), h.quantile_bound_us(0.99)) {
            println!(
                "  MLLP ACK latency (append + fsync): p50 ≤ {:.2} ms, p99 ≤ {:.2} ms",
                p50 as f64 / 1e3,
                p99 as f64 / 1e3
            );
        }
    }
    let elr_check = check_elr(&*log, &elr_before, &lab_reports).await;
    let dead: u64 = running
        .components
        .pipelines
        .iter()
        .filter(|p| p.name.starts_with("sepsis"))
        .map(|p| {
            p.stats
                .dead_lettered
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    println!(
        "  dead letters of the sepsis pipelines: {dead} (every simulated observation is readable, so none are expected)"
    );
    if args.stay {
        if let Some((addr, _)) = &running.api {
            println!("  serving on http://{addr} until Ctrl-C");
        }
        super::serve::signalled().await;
    }
    for (name, report) in running.shutdown().await? {
        if let Err(e) = report {
            anyhow::bail!("pipeline {name} failed: {e}");
        }
    }
    anyhow::ensure!(
        dead == 0,
        "{dead} records were dead-lettered: see the *.dlq topics"
    );
    elr_check?;
    anyhow::ensure!(
        missed.is_empty(),
        "deteriorating patients at beds {missed:?} raised no alert"
    );
    anyhow::ensure!(
        false_alarms.is_empty(),
        "stable patients at beds {false_alarms:?} raised alerts"
    );
    Ok(())
}

/// Prints the lab-reporting results and checks them against what the labs sent: every report
/// stored, the valid ones accepted and routed, the defective ones dead-lettered naming their
/// rule, the resend dropped, and every closed daily aggregate equal to the count sent.
async fn check_elr(
    log: &dyn aorta_log::Log,
    before: &BTreeMap<&str, u64>,
    reports: &[super::demo_elr::LabReport],
) -> anyhow::Result<()> {
    let since = |t: &'static str| before.get(t).copied().unwrap_or(0);
    let read = async |topic: &'static str| -> anyhow::Result<Vec<aorta_log::ConsumedRecord>> {
        let mut out = Vec::new();
        let Ok(end) = log.offsets(topic, 0).await.map(|o| o.high_watermark) else {
            return Ok(out);
        };
        let mut next = since(topic);
        while next < end {
            let b = log.read(topic, 0, next, ReadOptions::default()).await?;
            next = b.next_offset(next);
            out.extend(b.records);
        }
        Ok(out)
    };
    let stored = topic_end(log, "hl7.elr").await? - since("hl7.elr");
    let valid = reports
        .iter()
        .filter(|r| r.defect.is_none() && !r.resend)
        .count();
    let defective: Vec<&str> = reports.iter().filter_map(|r| r.defect).collect();
    let accepted = read("elr.accepted").await?.len();
    let dlq = read("elr.dlq").await?;
    let named: Vec<String> = dlq
        .iter()
        .map(|r| {
            r.record
                .headers
                .iter()
                .find(|(k, _)| k == "aorta.elr.failed-rules")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        })
        .collect();
    println!();
    println!(
        "Lab reporting: {} reports sent, {stored} on hl7.elr; {accepted} accepted, {} dead-lettered ({}), {} resend dropped",
        reports.len(),
        dlq.len(),
        named.join("; "),
        reports.iter().filter(|r| r.resend).count()
    );
    let mut routed = Vec::new();
    for t in ["elr.wa", "elr.or", "elr.tx", "elr.unrouted"] {
        routed.push(format!("{t} {}", read(t).await?.len()));
    }
    println!("  routed: {}", routed.join(", "));
    let expected = super::demo_elr::expected(reports);
    let mut closed: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for r in read("elr.aggregates").await? {
        let Ok(v) = serde_json::from_slice::<Value>(&r.record.value) else {
            continue;
        };
        let day = v["window_start"]
            .as_i64()
            .unwrap_or(0)
            .div_euclid(86_400_000);
        let j = v["jurisdiction"].as_str().unwrap_or("?").to_string();
        let tests = v["tests"].as_f64().unwrap_or(0.0) as u64;
        let pos = v["positives"].as_f64().unwrap_or(0.0) as u64;
        let e = closed.entry((j, day)).or_default();
        e.0 += tests;
        e.1 += pos;
    }
    let mut wrong = Vec::new();
    let mut per_state: BTreeMap<&str, (usize, u64, u64)> = BTreeMap::new();
    for ((j, day), (tests, pos)) in &closed {
        let e = per_state.entry(j).or_default();
        e.0 += 1;
        e.1 += tests;
        e.2 += pos;
        if expected.get(&(j.clone(), *day)) != Some(&(*tests, *pos)) {
            let date = aorta_fhir::datetime::format_utc_ms(day * 86_400_000);
            wrong.push(format!("{j} {}", &date[..10]));
        }
    }
    println!(
        "  daily aggregates on elr.aggregates ({} state-days closed; a day closes once collection times are 3 days past it), {}:",
        closed.len(),
        if wrong.is_empty() {
            "each equal to the count the labs sent"
        } else {
            "SOME DIFFER from the count the labs sent"
        }
    );
    for (j, (days, tests, pos)) in &per_state {
        println!(
            "    {j:<8} {days} days, {tests:>3} tests, {pos:>2} positive ({:.0} %)",
            if *tests > 0 {
                100.0 * *pos as f64 / *tests as f64
            } else {
                0.0
            }
        );
    }
    anyhow::ensure!(
        stored == reports.len() as u64,
        "{} lab reports were ACKed but hl7.elr received {stored}",
        reports.len()
    );
    anyhow::ensure!(
        accepted == valid,
        "{valid} valid lab reports were sent but {accepted} were accepted"
    );
    anyhow::ensure!(
        named.len() == defective.len() && named.iter().zip(&defective).all(|(n, d)| n == d),
        "dead-lettered lab reports named {named:?}, expected {defective:?}"
    );
    anyhow::ensure!(!closed.is_empty(), "no daily lab aggregate closed");
    anyhow::ensure!(
        wrong.is_empty(),
        "daily aggregates differ from the reports sent for {wrong:?}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ward_messages_are_valid_hl7_with_every_vital() {
        let patients = ward(16, 96);
        let mut rng = StdRng::seed_from_u64(1);
        let p = &patients[2];
        let v = vitals(p, 96, &mut rng);
        let msg = vitals_message(p, 1, 1_764_763_200_000, &v);
        let parsed = aorta_hl7::parse(msg.as_bytes()).unwrap();
        assert!(parsed.segment("OBX", 7).is_some());
        for code in [
            "8867-4", "9279-1", "8310-5", "8480-6", "59408-5", "3150-0", "67775-7",
        ] {
            assert!(msg.contains(&format!("|{code}^")), "{code}");
        }
        assert!(msg.contains("|20251203120000+0000|"), "{msg}");
        // Every OBX carries its time in OBX-14 and its status in OBX-11.
        for obx in msg.split('\r').filter(|s| s.starts_with("OBX")) {
            let f: Vec<&str> = obx.split('|').collect();
            assert_eq!(f[11], "F", "{obx}");
            assert_eq!(f[14], "20251203120000+0000", "{obx}");
        }
        assert!(aorta_hl7::parse(admission(p, 0, 1).as_bytes()).is_ok());
        // At full sepsis the vitals score high on NEWS2; a stable patient scores low.
        assert!(v.rr >= 25.0 && v.sbp <= 100.0 && v.temp >= 38.5, "{}", v.rr);
        let s = vitals(&patients[0], 96, &mut rng);
        assert!(s.rr <= 17.0 && s.sbp >= 110.0 && s.hr <= 90.0);
    }
}
