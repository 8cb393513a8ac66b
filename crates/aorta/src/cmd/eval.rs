//! `aorta eval physionet`: replays PhysioNet/CinC 2019 ICU stays through the early-warning
//! pipeline and compares each stay's first alert with its first `SepsisLabel = 1` hour.
//!
//! Each hourly PSV row becomes FHIR R4 Observations (LOINC-coded HR, SpO₂, temperature, SBP,
//! respiratory rate, FiO₂, PaCO₂, WBC, lactate; event time = a fixed admission instant + ICULOS
//! hours), stored in an embedded log keyed by patient. Each value is its own Observation and is
//! evaluated as it arrives, in the column order of `COLUMNS`, as a monitor feed delivers
//! them: a new heart rate is scored with the temperature still held from an hour before. A pipeline with one `early-warning` step
//! (SIRS ≥ 2 and qSOFA ≥ 2; the data has no GCS, so qSOFA is the partial RR + SBP form) writes
//! its alerts to a topic; the command reads them back and prints, per score, the confusion
//! table (alert at or before onset vs sepsis), alerts only after onset, and the lead-time
//! distribution.
//!
//! Note on the labels: the challenge sets `SepsisLabel = 1` from 6 hours *before* the clinical
//! onset (t_sepsis − 6 h) for septic patients, so "lead time" here is measured against that
//! shifted label. These scores are known to be weak predictors; the point is a correct, fast and
//! explainable evaluation.
//!
//! Data: Reyna MA et al., *Early Prediction of Sepsis From Clinical Data: The PhysioNet/
//! Computing in Cardiology Challenge 2019*, Crit Care Med 2020;48(2):210–217; Goldberger AL et
//! al., PhysioNet, Circulation 2000;101(23):e215–e220 (CC BY 4.0).

use aorta_log::{EmbeddedConfig, EmbeddedLog, FsyncPolicy, Log, ReadOptions, Record, TopicConfig};
use aorta_pipeline::{RunOptions, Runner, StateStore, parse_pipelines};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `aorta eval …`
#[derive(Subcommand, Debug)]
pub enum EvalCmd {
    /// Replay PhysioNet 2019 sepsis stays through the early-warning pipeline.
    Physionet(PhysionetArgs),
}

#[derive(Args, Debug)]
pub struct PhysionetArgs {
    /// The sample folder (with manifest.tsv and patients/). Default:
    /// $AORTA_CORPUS/vitals/physionet2019_sepsis_setB_sample.
    pub dir: Option<PathBuf>,
    /// Only the first N stays of the manifest (CI runs a subset).
    #[arg(long)]
    pub stays: Option<usize>,
    /// Print one JSON line per stay (first alert hours, onset hour), then the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The hour every stay is taken to start at (ICULOS 0): 2019-01-01T00:00:00Z.
const ADMISSION_MS: i64 = 1_546_300_800_000;

/// PSV column → (LOINC, UCUM unit).
const COLUMNS: [(&str, &str, &str); 9] = [
    ("HR", "8867-4", "/min"),
    ("O2Sat", "59408-5", "%"),
    ("Temp", "8310-5", "Cel"),
    ("SBP", "8480-6", "mm[Hg]"),
    ("Resp", "9279-1", "/min"),
    ("FiO2", "3150-0", "1"),
    ("PaCO2", "2019-8", "mm[Hg]"),
    ("WBC", "6690-2", "10*3/uL"),
    ("Lactate", "2524-7", "mmol/L"),
];

struct Stay {
    id: String,
    file: PathBuf,
    septic: bool,
    /// Row index (0-based) of the first SepsisLabel = 1 row, from the manifest.
    onset_row: Option<i64>,
    /// ICULOS hour of that row (set when the rows are read).
    onset_hour: Option<i64>,
}

fn manifest(dir: &Path, limit: Option<usize>) -> anyhow::Result<Vec<Stay>> {
    let path = dir.join("manifest.tsv");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (is this the PhysioNet sample folder?)",
            path.display()
        )
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        anyhow::ensure!(
            f.len() >= 4,
            "{}:{}: expected 4 columns",
            path.display(),
            n + 1
        );
        let file = dir.join(f[0]);
        let id = Path::new(f[0])
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(f[0])
            .to_string();
        let septic = f[2] == "1";
        let first_row: i64 = f[3].parse().map_err(|_| {
            anyhow::anyhow!("{}:{}: bad row index {:?}", path.display(), n + 1, f[3])
        })?;
        out.push(Stay {
            id,
            file,
            septic,
            onset_row: (first_row >= 0).then_some(first_row),
            onset_hour: None,
        });
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(out)
}

/// The stay's rows as Observations; sets `onset_hour` to the ICULOS of the onset row.
fn observations(stay: &mut Stay) -> anyhow::Result<Vec<Record>> {
    let text = std::fs::read_to_string(&stay.file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", stay.file.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('|').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let los = col("ICULOS")
        .ok_or_else(|| anyhow::anyhow!("{}: no ICULOS column", stay.file.display()))?;
    let wanted: Vec<(usize, &str, &str, &str)> = COLUMNS
        .iter()
        .filter_map(|(c, code, unit)| col(c).map(|i| (i, *c, *code, *unit)))
        .collect();
    let patient = format!("Patient/{}", stay.id);
    let mut recs = Vec::new();
    for (row, line) in lines.enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        let hour: i64 = f
            .get(los)
            .and_then(|s| s.parse::<f64>().ok())
            .map(|h| h as i64)
            .ok_or_else(|| {
                anyhow::anyhow!("{}: row {} has no ICULOS", stay.file.display(), row + 2)
            })?;
        if stay.onset_row == Some(row as i64) {
            stay.onset_hour = Some(hour);
        }
        let t = aorta_fhir::datetime::format_utc_ms(ADMISSION_MS + hour * 3_600_000);
        for (i, name, code, unit) in &wanted {
            let Some(v) = f
                .get(*i)
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite())
            else {
                continue;
            };
            let obs = json!({
                "resourceType": "Observation",
                "id": format!("{}-{hour}-{name}", stay.id),
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}], "text": name},
                "subject": {"reference": patient},
                "effectiveDateTime": t,
                "valueQuantity": {"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
            });
            recs.push(
                Record::new(obs.to_string())
                    .with_key(patient.clone())
                    .with_timestamp(ADMISSION_MS + hour * 3_600_000),
            );
        }
    }
    anyhow::ensure!(
        stay.onset_row.is_none() || stay.onset_hour.is_some(),
        "{}: the manifest's onset row is past the end",
        stay.file.display()
    );
    Ok(recs)
}

const PIPELINE: &str = r#"
[[pipelines]]
name = "physionet-sepsis"
from = ["physionet.observations"]
[[pipelines.steps]]
op = "early-warning"
rules = [{ score = "sirs", level = 2 }, { score = "qsofa", level = 2 }, { score = "news2", level = 2 }]
[[pipelines.sinks]]
type = "topic"
topic = "physionet.alerts"
"#;

#[derive(Default)]
struct Table {
    tp: u64,
    fn_: u64,
    fp: u64,
    tn: u64,
    after_onset: u64,
    leads: Vec<i64>,
}

fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[i])
}

pub async fn run(cmd: EvalCmd) -> anyhow::Result<()> {
    let EvalCmd::Physionet(args) = cmd;
    let dir = match args.dir {
        Some(d) => d,
        None => {
            let root = std::env::var_os("AORTA_CORPUS")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("../shared/data"));
            root.join("vitals/physionet2019_sepsis_setB_sample")
        }
    };
    let mut stays = manifest(&dir, args.stays)?;
    let scratch = tempfile::tempdir()?;
    let mut cfg = EmbeddedConfig::new(scratch.path().join("log"));
    cfg.fsync = FsyncPolicy::Never;
    let log: Arc<dyn Log> = Arc::new(EmbeddedLog::open(cfg)?);
    log.create_topic(
        "physionet.observations",
        TopicConfig {
            partitions: 2,
            ..TopicConfig::default()
        },
    )
    .await?;
    let t0 = Instant::now();
    let mut n_obs = 0usize;
    for (i, stay) in stays.iter_mut().enumerate() {
        let recs = observations(stay)?;
        n_obs += recs.len();
        log.produce("physionet.observations", recs, 0).await?;
        if !args.json && (i + 1) % 200 == 0 {
            eprintln!("loaded {} stays ({n_obs} observations)", i + 1);
        }
    }
    let load = t0.elapsed();
    let config = parse_pipelines(PIPELINE)?.remove(0);
    let options = RunOptions {
        until_end: true,
        idle_wait: Duration::from_millis(10),
        state: StateStore::open(&scratch.path().join("state"))?,
        start: None,
        restore_changelog: true,
    };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let t1 = Instant::now();
    let report = Runner::new(log.clone(), config, options)?
        .run(stopped)
        .await?;
    let processing = t1.elapsed();
    anyhow::ensure!(
        report.dead_lettered == 0,
        "{} observations were dead-lettered (see physionet-sepsis.dlq)",
        report.dead_lettered
    );

    // First alert hour per stay and score.
    let mut first: BTreeMap<(String, String), i64> = BTreeMap::new();
    let d = log.describe_topic("physionet.alerts").await?;
    let mut alerts = 0u64;
    for p in d.partitions {
        let mut next = p.log_start;
        while next < p.high_watermark {
            let b = log
                .read(
                    "physionet.alerts",
                    p.partition,
                    next,
                    ReadOptions::default(),
                )
                .await?;
            next = b.next_offset(next);
            for r in b.records {
                let v: Value = serde_json::from_slice(&r.record.value)?;
                if v["kind"] != "alert" {
                    continue;
                }
                alerts += 1;
                let stay = v["patient"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("Patient/")
                    .to_string();
                let score = v["score"].as_str().unwrap_or("").to_string();
                let hour = (v["time_ms"].as_i64().unwrap_or(0) - ADMISSION_MS) / 3_600_000;
                let e = first.entry((stay, score)).or_insert(hour);
                *e = (*e).min(hour);
            }
        }
    }
    let scores = ["sirs", "qsofa", "news2"];
    let mut tables: BTreeMap<&str, Table> = BTreeMap::new();
    for stay in &stays {
        let mut line =
            json!({"stay": stay.id, "septic": stay.septic, "onset_hour": stay.onset_hour});
        for s in scores {
            let a = first.get(&(stay.id.clone(), s.to_string())).copied();
            line[format!("first_{s}_alert_hour")] = json!(a);
            let t = tables.entry(s).or_default();
            match (stay.onset_hour, a) {
                (Some(on), Some(h)) if h <= on => {
                    t.tp += 1;
                    t.leads.push(on - h);
                }
                (Some(_), Some(_)) => {
                    t.fn_ += 1;
                    t.after_onset += 1;
                }
                (Some(_), None) => t.fn_ += 1,
                (None, Some(_)) => t.fp += 1,
                (None, None) => t.tn += 1,
            }
        }
        if args.json {
            println!("{line}");
        }
    }
    let rate = report.input as f64 / processing.as_secs_f64().max(1e-9);
    let mut summary = json!({
        "stays": stays.len(),
        "septic": stays.iter().filter(|s| s.onset_hour.is_some()).count(),
        "observations": n_obs,
        "alerts": alerts,
        "load_s": load.as_secs_f64(),
        "pipeline_s": processing.as_secs_f64(),
        "observations_per_s": rate,
    });
    for (s, t) in tables.iter_mut() {
        t.leads.sort_unstable();
        let sens = t.tp as f64 / (t.tp + t.fn_).max(1) as f64;
        let spec = t.tn as f64 / (t.tn + t.fp).max(1) as f64;
        let ppv = t.tp as f64 / (t.tp + t.fp).max(1) as f64;
        summary[*s] = json!({
            "tp": t.tp, "fn": t.fn_, "fp": t.fp, "tn": t.tn, "alert_only_after_onset": t.after_onset,
            "sensitivity": sens, "specificity": spec, "ppv": ppv,
            "lead_hours": {"min": t.leads.first(), "p25": quantile(&t.leads, 0.25), "median": quantile(&t.leads, 0.5),
                           "p75": quantile(&t.leads, 0.75), "max": t.leads.last()},
        });
    }
    if args.json {
        println!("{summary}");
        return Ok(());
    }
    println!(
        "PhysioNet 2019 set B sample: {} stays ({} septic), {n_obs} observations, {alerts} alerts",
        stays.len(),
        summary["septic"]
    );
    println!(
        "pipeline: {:.2} s ({rate:.0} observations/s); loading {:.2} s",
        processing.as_secs_f64(),
        load.as_secs_f64()
    );
    println!("alert = first alert at or before the first SepsisLabel=1 hour (label = onset - 6 h)");
    println!("score   TP    FN    FP    TN   sens   spec   PPV  late  lead h: min p25 med p75 max");
    for s in scores {
        let t = &tables[s];
        let q = |x: f64| quantile(&t.leads, x).map_or("-".into(), |v| v.to_string());
        println!(
            "{s:<6}{:>4}  {:>4}  {:>4}  {:>4}  {:>5.2}  {:>5.2}  {:>4.2}  {:>4}  {:>3} {:>3} {:>3} {:>3} {:>3}",
            t.tp,
            t.fn_,
            t.fp,
            t.tn,
            t.tp as f64 / (t.tp + t.fn_).max(1) as f64,
            t.tn as f64 / (t.tn + t.fp).max(1) as f64,
            t.tp as f64 / (t.tp + t.fp).max(1) as f64,
            t.after_onset,
            q(0.0),
            q(0.25),
            q(0.5),
            q(0.75),
            q(1.0)
        );
    }
    println!("(qSOFA is partial: the data has no GCS. These scores are weak sepsis predictors.)");
    Ok(())
}
