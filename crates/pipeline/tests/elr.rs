//! The ELR flow of `configs/elr.toml` over the real CDC / ReportStream ELR corpus: every
//! message is accepted, dead-lettered with its failed rules, or dropped as an exact resend;
//! accepted reports reach their jurisdiction's topic (default deny); the daily aggregates equal
//! an independent count of the accepted results.

mod common;

use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, Record, TopicConfig};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn header(r: &aorta_log::ConsumedRecord, name: &str) -> Option<String> {
    r.record
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// Days since 1970-01-01 of `YYYYMMDD`, by counting (independent of the library's calendar).
fn day_number(yyyymmdd: &str) -> i64 {
    let y: i64 = yyyymmdd[0..4].parse().unwrap();
    let m: i64 = yyyymmdd.get(4..6).map_or(1, |s| s.parse().unwrap());
    let d: i64 = yyyymmdd.get(6..8).map_or(1, |s| s.parse().unwrap());
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut days = 0;
    if y >= 1970 {
        for yy in 1970..y {
            days += if leap(yy) { 366 } else { 365 };
        }
    } else {
        for yy in y..1970 {
            days -= if leap(yy) { 366 } else { 365 };
        }
    }
    let month = [
        31,
        if leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    days + month[..(m - 1) as usize].iter().sum::<i64>() + d - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elr_flow_validates_routes_dedupes_and_aggregates_the_corpus() {
    let Some(root) = aorta_testkit::corpus("hl7v2") else {
        return;
    };
    let manifest =
        std::fs::read_to_string(repo().join("crates/clinical/tests/elr-corpus.tsv")).unwrap();
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let path = line.split('\t').next().unwrap();
        let bytes = std::fs::read(root.join(path)).unwrap();
        let batch = aorta_hl7::parse_stream(&bytes).unwrap();
        messages.extend(batch.messages.iter().map(|m| m.raw().to_vec()));
    }
    // What the ELR rules say of each message, and the independent count of accepted results.
    let reports: Vec<_> = messages
        .iter()
        .map(|m| aorta_clinical::elr::check_bytes(m))
        .collect();
    let mut expected_ok: Vec<usize> = Vec::new();
    let mut seen_ids = BTreeMap::new();
    let mut expected_dup = 0;
    let mut expected_conflicts = 0;
    for (i, r) in reports.iter().enumerate() {
        if !r.is_valid() {
            continue;
        }
        let id = format!("{}|{}", r.facility, r.control_id);
        match seen_ids.get(&id) {
            Some(fp) if *fp == r.fingerprint => expected_dup += 1,
            // The corpus reuses control ids across its variants of one sample.
            Some(_) => expected_conflicts += 1,
            None => {
                seen_ids.insert(id, r.fingerprint);
                expected_ok.push(i);
            }
        }
    }
    // Resend the first three accepted messages (duplicates, dropped) and one changed copy
    // under the same MSH-10 (fails msh-10-unique).
    let resends: Vec<usize> = expected_ok.iter().take(3).copied().collect();
    for i in &resends {
        messages.push(messages[*i].clone());
    }
    let changed = String::from_utf8_lossy(&messages[expected_ok[0]])
        .trim_end()
        .to_string()
        + "\rNTE|1||a corrected comment\r";
    messages.push(changed.into_bytes());

    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
    log.create_topic("hl7.elr", TopicConfig::default())
        .await
        .unwrap();
    let recs: Vec<Record> = messages.iter().map(|m| Record::new(m.clone())).collect();
    log.append("hl7.elr", 0, recs).await.unwrap();

    // The shipped config, with the lateness bound lifted: the corpus spans 2015–2028 in no
    // order, and this test is about counting (lateness is tested in windows_reference).
    let toml = std::fs::read_to_string(repo().join("configs/elr.toml"))
        .unwrap()
        .replace("grace = \"3d\"", "grace = \"100000d\"");
    for name in ["elr", "elr-route", "elr-aggregate"] {
        common::run_named(&log, &toml, name, &dir.path().join(name)).await;
    }

    // Accepted, dead-lettered, dropped: every message is one of them.
    let accepted = common::read_all(&log, "elr.accepted").await;
    let dlq = common::read_all(&log, "elr.dlq").await;
    assert_eq!(accepted.len(), expected_ok.len());
    let invalid = reports.iter().filter(|r| !r.is_valid()).count();
    assert_eq!(
        dlq.len(),
        invalid + expected_conflicts + 1,
        "invalid corpus messages, reused control ids, and the changed copy"
    );
    assert_eq!(
        accepted.len() + dlq.len() + expected_dup + resends.len(),
        messages.len()
    );
    for r in &dlq {
        let rules = header(r, "aorta.elr.failed-rules").unwrap();
        assert!(!rules.is_empty());
        for rule in rules.split(',') {
            assert!(aorta_clinical::elr::rule(rule).is_some(), "{rule}");
        }
        let reason = header(r, "aorta.error").unwrap_or_default();
        assert!(reason.contains(&rules), "{reason}");
    }
    let unique_failures = dlq
        .iter()
        .filter(|r| header(r, "aorta.elr.failed-rules").as_deref() == Some("msh-10-unique"))
        .count();
    assert_eq!(unique_failures, expected_conflicts + 1);

    // Routing: each accepted report went to exactly its jurisdiction's topic or elr.unrouted.
    let onboarded = ["WA", "OR", "CA", "TX", "NY", "DC", "MI", "WI", "ND", "SD"];
    let mut want_topics: BTreeMap<String, usize> = BTreeMap::new();
    for i in &expected_ok {
        let t = match reports[*i].jurisdiction.as_deref() {
            Some(j) if onboarded.contains(&j) => format!("elr.{}", j.to_ascii_lowercase()),
            _ => "elr.unrouted".into(),
        };
        *want_topics.entry(t).or_default() += 1;
    }
    for (topic, n) in &want_topics {
        let got = common::read_all(&log, topic).await;
        assert_eq!(got.len(), *n, "{topic}");
        for r in got {
            let v: Value = serde_json::from_slice(&r.record.value).unwrap();
            let j = v["jurisdiction"].as_str().map(str::to_ascii_lowercase);
            if topic != "elr.unrouted" {
                assert_eq!(format!("elr.{}", j.unwrap()), *topic);
            }
        }
    }
    assert!(want_topics.len() >= 4, "{want_topics:?}");

    // Aggregates against an independent count: (jurisdiction, LOINC, collection day).
    type Counts = (u64, u64, u64, u64); // results, positives, negatives, inconclusive
    let mut want: BTreeMap<(String, String, i64), Counts> = BTreeMap::new();
    for i in &expected_ok {
        let r = &reports[*i];
        for res in &r.results {
            let j = r.jurisdiction.clone().unwrap_or_else(|| "unrouted".into());
            let collected = res.collected.as_deref().unwrap();
            let day = day_number(&collected[..collected.len().min(8)]);
            let c = want
                .entry((j, res.loinc.clone().unwrap(), day))
                .or_default();
            c.0 += 1;
            let text = format!("{:?} {:?}", res.coded.as_ref().map(|c| &c.code), res.value);
            let upper = text.to_ascii_uppercase();
            if upper.contains("260373001")
                || upper.contains("\"DETECTED\"")
                || upper.contains("\"POSITIVE\"")
            {
                c.1 += 1;
            } else if upper.contains("260415000")
                || upper.contains("NOT DETECTED")
                || upper.contains("NEGATIVE")
            {
                c.2 += 1;
            } else if upper.contains("419984006") {
                c.3 += 1;
            }
        }
    }
    let mut got: BTreeMap<(String, String, i64), Counts> = BTreeMap::new();
    for r in common::read_all(&log, "elr.aggregates").await {
        let v: Value = serde_json::from_slice(&r.record.value).unwrap();
        let start = v["window_start"].as_i64().unwrap();
        assert_eq!(v["window_end"].as_i64().unwrap() - start, 86_400_000);
        let k = (
            v["jurisdiction"].as_str().unwrap().to_string(),
            v["loinc"].as_str().unwrap().to_string(),
            start / 86_400_000,
        );
        // Counts are whole numbers, whether the aggregate wrote them as 3 or 3.0.
        let n = |f: &str| {
            let x = v[f].as_f64().unwrap_or_else(|| panic!("{f} in {v}"));
            assert_eq!(x.fract(), 0.0, "{f} in {v}");
            x as u64
        };
        let c = (
            n("results"),
            n("positives"),
            n("negatives"),
            n("inconclusive"),
        );
        assert_eq!(n("tests"), c.1 + c.2 + c.3);
        if c.1 + c.2 > 0 {
            let p = v["positivity"].as_f64().unwrap();
            assert!((p - c.1 as f64 / (c.1 + c.2) as f64).abs() < 1e-12);
        }
        assert!(got.insert(k, c).is_none(), "one row per window");
    }
    let keys: BTreeSet<_> = want.keys().collect();
    println!(
        "ELR aggregates: {} windows over {} accepted reports",
        got.len(),
        expected_ok.len()
    );
    for (k, c) in &got {
        println!("  {k:?}: {c:?}");
    }
    assert_eq!(got.keys().collect::<BTreeSet<_>>(), keys);
    assert_eq!(got, want);
    assert!(
        want.values().map(|c| c.1).sum::<u64>() > 0,
        "some positives"
    );
    assert!(
        want.values().map(|c| c.2).sum::<u64>() > 0,
        "some negatives"
    );
}
