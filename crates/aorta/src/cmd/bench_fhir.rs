//! `aorta bench fhir`: FHIR R4 parse+validate throughput for Patient and Observation against
//! PyPI `fhir.resources` (R4B models, pydantic 2) on the same NDJSON files in the same run, and
//! HL7 v2 ORU^R01 → FHIR Bundle conversion throughput against parsing the same message alone.
//! One thread each (wall time on our side, process CPU time on the peer's).

use aorta_fhir::{Mode, parse_resource};
use clap::Args;
use serde_json::json;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct FhirBenchArgs {
    /// Resources of each type.
    #[arg(long, default_value_t = 50_000)]
    pub count: usize,
    /// Python with `fhir.resources` 8.x installed (the peer); see docs/benchmarks.md.
    #[arg(long, env = "AORTA_FHIR_PYTHON")]
    pub python: Option<PathBuf>,
    /// Seconds to run the HL7 → FHIR conversion (and its parse-only baseline).
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
}

/// Deterministic, US-Core-like test data: ~1 KB Patients and vital-sign Observations.
fn patient(i: usize) -> serde_json::Value {
    json!({
        "resourceType": "Patient", "id": format!("pat-{i}"),
        "meta": {"lastUpdated": "2026-11-26T10:00:00Z"},
        "identifier": [
            {"use": "usual", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
             "system": "urn:oid:1.2.36.146.595.217.0.1", "value": format!("MRN{i:08}")},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": format!("{:09}", 100_000_000 + i)}],
        "active": true,
        "name": [{"use": "official", "family": format!("Family{}", i % 997), "given": ["Alex", "J"]}],
        "telecom": [{"system": "phone", "value": format!("555-{:04}", i % 10_000), "use": "home"},
                    {"system": "email", "value": format!("p{i}@example.org")}],
        "gender": if i.is_multiple_of(2) { "female" } else { "male" },
        "birthDate": format!("{}-{:02}-{:02}", 1940 + i % 70, 1 + i % 12, 1 + i % 28),
        "address": [{"use": "home", "line": [format!("{} Main St", i % 900)], "city": "Springfield",
                     "state": "IL", "postalCode": "62701", "country": "US"}],
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]}, "preferred": true}]
    })
}

fn observation(i: usize) -> serde_json::Value {
    const VITALS: [(&str, &str, &str, &str); 5] = [
        ("8867-4", "Heart rate", "/min", "beats/minute"),
        ("9279-1", "Respiratory rate", "/min", "breaths/minute"),
        ("8310-5", "Body temperature", "Cel", "C"),
        ("59408-5", "Oxygen saturation", "%", "%"),
        ("8480-6", "Systolic blood pressure", "mm[Hg]", "mmHg"),
    ];
    let (code, name, ucum, unit) = VITALS[i % VITALS.len()];
    json!({
        "resourceType": "Observation", "id": format!("obs-{i}"),
        "meta": {"lastUpdated": "2026-11-26T10:00:00Z"},
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": name}], "text": name},
        "subject": {"reference": format!("Patient/pat-{}", i % 1000)},
        "effectiveDateTime": format!("2026-11-{:02}T{:02}:{:02}:00+01:00", 1 + i % 28, i % 24, i % 60),
        "issued": "2026-11-26T10:05:00.000Z",
        "performer": [{"reference": "Practitioner/nurse-1"}],
        "valueQuantity": {"value": 60 + (i % 40), "unit": unit, "system": "http://unitsofmeasure.org", "code": ucum},
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N"}]}]
    })
}

const PEER: &str = r#"
import sys, time
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.observation import Observation
import fhir.resources
for name, M in (("Patient", Patient), ("Observation", Observation)):
    lines = open(sys.argv[1] + "/" + name.lower() + "s.ndjson", "rb").read().splitlines()
    M.model_validate_json(lines[0])
    c0 = time.process_time()
    for l in lines:
        M.model_validate_json(l)
    cpu = time.process_time() - c0
    print(name, len(lines) / cpu, fhir.resources.__version__, flush=True)
"#;

fn default_python() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let p = Path::new(&home).join(".cache/aorta/venv-fhir/bin/python");
    p.exists().then_some(p)
}

/// Removes the bench's scratch directory however the run ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: FhirBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.count > 0, "--count must be positive");
    let dir =
        Scratch(std::env::temp_dir().join(format!("aorta-bench-fhir-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let mut ours = Vec::new();
    for (name, make) in [
        ("Patient", patient as fn(usize) -> serde_json::Value),
        ("Observation", observation),
    ] {
        let lines: Vec<String> = (0..args.count).map(|i| make(i).to_string()).collect();
        let bytes: usize = lines.iter().map(String::len).sum();
        std::fs::write(
            dir.0.join(format!("{}s.ndjson", name.to_lowercase())),
            lines.join("\n"),
        )?;
        // Sanity: every generated resource is valid.
        if let Err(o) = parse_resource(lines[0].as_bytes(), Mode::Strict) {
            anyhow::bail!("generated {name} is invalid: {o}");
        }
        let c0 = Instant::now();
        for l in &lines {
            black_box(parse_resource(black_box(l.as_bytes()), Mode::Lenient).is_ok());
        }
        let cpu = c0.elapsed().as_secs_f64();
        let rate = lines.len() as f64 / cpu;
        println!(
            "aorta-fhir {name:12} parse+validate: {rate:>9.0} res/s ({:.1} MB/s, {} B average)",
            bytes as f64 / cpu / 1e6,
            bytes / lines.len()
        );
        ours.push((name, rate));
    }
    match args.python.or_else(default_python) {
        None => println!(
            "peer fhir.resources: NOT MEASURED — no Python with fhir.resources found; install with \
             `python3 -m venv ~/.cache/aorta/venv-fhir && ~/.cache/aorta/venv-fhir/bin/pip install fhir.resources==8.3.0` \
             or pass --python"
        ),
        Some(py) => {
            let out = std::process::Command::new(&py)
                .arg("-c")
                .arg(PEER)
                .arg(&dir.0)
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "the fhir.resources peer failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                let (Some(name), Some(rate)) =
                    (f.first(), f.get(1).and_then(|r| r.parse::<f64>().ok()))
                else {
                    continue;
                };
                if let Some((_, mine)) = ours.iter().find(|(n, _)| n == name) {
                    println!(
                        "fhir.resources {} {name:12} model_validate_json: {rate:>9.0} res/CPU-s  -> aorta-fhir is {:.1}x",
                        f.get(2).unwrap_or(&"?"),
                        mine / rate
                    );
                }
            }
        }
    }
    // HL7 v2 → FHIR: the same ORU^R01 parsed only (baseline) and parsed + converted.
    let oru = aorta_hl7::samples::oru_r01();
    let options = aorta_fhir::v2::Options::default();
    let time_it = |convert: bool| {
        let c0 = Instant::now();
        let mut n = 0u64;
        while Instant::now() - c0 < Duration::from_secs(args.seconds.max(1)) {
            for _ in 0..100 {
                let Ok(m) = aorta_hl7::parse(black_box(oru.as_bytes())) else {
                    continue;
                };
                if convert {
                    black_box(aorta_fhir::v2::convert(&m, &options).is_ok());
                } else {
                    black_box(m.segment("OBX", 12).map(|s| s.raw().len()));
                }
                n += 1;
            }
        }
        n as f64 / (Instant::now() - c0).as_secs_f64()
    };
    let started = Instant::now();
    let parse = time_it(false);
    let convert = time_it(true);
    println!(
        "HL7 v2 -> FHIR R4 Bundle, {} B ORU^R01 with 12 OBX: {convert:.0} msg/s ({:.2} MB/s); parse alone {parse:.0} msg/s; conversion costs {:.1}x the parse ({:.1} s)",
        oru.len(),
        convert * oru.len() as f64 / 1e6,
        parse / convert,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
