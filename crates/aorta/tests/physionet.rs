//! `aorta eval physionet` on a subset of the PhysioNet 2019 stays, checked against a plain
//! re-computation from the PSV files in this test: the first SIRS ≥ 2 and (partial) qSOFA ≥ 2
//! hour of every stay, with the documented staleness (vital signs 4 h, labs 24 h), and the
//! onset hour from the `SepsisLabel` column. The command goes through the whole path — FHIR
//! Observations in the log, the early-warning pipeline step, alerts read back from a topic.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Stays checked (`AORTA_PHYSIONET_STAYS=800` for the whole sample).
fn stays() -> usize {
    std::env::var("AORTA_PHYSIONET_STAYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
}

/// First hour of SIRS ≥ 2, partial qSOFA ≥ 2, and of SepsisLabel = 1 for one PSV file.
fn reference(file: &Path) -> (Option<i64>, Option<i64>, Option<i64>) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('|').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let sent = [
        "HR", "O2Sat", "Temp", "SBP", "Resp", "FiO2", "PaCO2", "WBC", "Lactate",
    ];
    let labs = ["PaCO2", "WBC", "Lactate"];
    let mut last: BTreeMap<&str, (f64, i64)> = BTreeMap::new();
    let (mut sirs, mut qsofa, mut onset) = (None, None, None);
    for line in lines {
        let f: Vec<&str> = line.split('|').collect();
        let hour = f[col("ICULOS")].parse::<f64>().unwrap() as i64;
        if onset.is_none() && f[col("SepsisLabel")] == "1" {
            onset = Some(hour);
        }
        // Each value is its own Observation, evaluated as it arrives (in column order), as a
        // monitor feed delivers them.
        for c in sent {
            let Ok(v) = f[col(c)].parse::<f64>() else {
                continue;
            };
            if !v.is_finite() {
                continue;
            }
            last.insert(c, (v, hour));
            let fresh = |c: &str| {
                let max = if labs.contains(&c) { 24 } else { 4 };
                last.get(c)
                    .filter(|(_, t)| hour - t <= max)
                    .map(|(v, _)| *v)
            };
            let met = |c: &str, p: &dyn Fn(f64) -> bool| fresh(c).is_some_and(p);
            let n = [
                met("Temp", &|t| !(36.0..=38.0).contains(&t)),
                met("HR", &|h| h > 90.0),
                met("Resp", &|r| r > 20.0) || met("PaCO2", &|p| p < 32.0),
                met("WBC", &|w| !(4.0..=12.0).contains(&w)),
            ]
            .iter()
            .filter(|&&m| m)
            .count();
            if n >= 2 && sirs.is_none() {
                sirs = Some(hour);
            }
            if met("Resp", &|r| r >= 22.0) && met("SBP", &|s| s <= 100.0) && qsofa.is_none() {
                qsofa = Some(hour);
            }
        }
    }
    (sirs, qsofa, onset)
}

#[test]
fn the_physionet_replay_matches_a_plain_recomputation() {
    let Some(dir) = aorta_testkit::corpus("vitals/physionet2019_sepsis_setB_sample") else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_aorta"))
        .args(["eval", "physionet"])
        .arg(&dir)
        .args(["--stays", &stays().to_string(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, stays) = lines.split_last().unwrap();
    assert_eq!(stays.len(), self::stays());
    let (mut tp, mut fp, mut with_alert) = (0, 0, 0);
    for s in stays {
        let id = s["stay"].as_str().unwrap();
        let (sirs, qsofa, onset) = reference(&dir.join("patients").join(format!("{id}.psv")));
        assert_eq!(s["onset_hour"].as_i64(), onset, "{id}: onset hour");
        assert_eq!(
            s["first_sirs_alert_hour"].as_i64(),
            sirs,
            "{id}: first SIRS alert"
        );
        assert_eq!(
            s["first_qsofa_alert_hour"].as_i64(),
            qsofa,
            "{id}: first qSOFA alert"
        );
        match (onset, sirs) {
            (Some(o), Some(h)) if h <= o => tp += 1,
            (None, Some(_)) => fp += 1,
            _ => {}
        }
        with_alert += usize::from(sirs.is_some());
    }
    assert_eq!(summary["sirs"]["tp"], tp);
    assert_eq!(summary["sirs"]["fp"], fp);
    assert!(
        with_alert > self::stays() / 4,
        "the subset should raise SIRS alerts ({with_alert})"
    );
    eprintln!("physionet subset: {summary}");
}
