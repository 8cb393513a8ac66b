//! Element-by-element comparison of a produced FHIR Bundle with an expected one, shared by
//! the FHIR-Converter and ReportStream comparisons.
//!
//! Each resource is flattened to `path = value` leaves (array indices dropped, top-level
//! `id`/`meta`/`text` ignored, a reference reduced to the type it points to, date-times
//! compared as instants); each expected resource is paired with the produced resource of the
//! same type that shares most leaves; the match rate is shared leaves / expected leaves.

use aorta_fhir::datetime;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The resource types the v2 mapping produces (the ones compared).
pub const MAPPED: &[&str] = &[
    "Patient",
    "Encounter",
    "Observation",
    "DiagnosticReport",
    "Specimen",
    "Immunization",
    "ServiceRequest",
    "MedicationRequest",
];

pub fn leaves(v: &Value, path: &str, out: &mut HashMap<String, usize>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if matches!(k.as_str(), "id" | "meta" | "text") && path.matches('.').count() == 0 {
                    continue;
                }
                if k == "reference" {
                    let ty = x.as_str().and_then(|r| r.split('/').next()).unwrap_or("");
                    *out.entry(format!("{path}.reference=<{ty}>")).or_default() += 1;
                    continue;
                }
                leaves(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| leaves(x, path, out)),
        Value::String(s) => {
            let norm = match datetime::to_utc_nanos(s) {
                Some(n) => format!("@{n}"),
                None => s.clone(),
            };
            *out.entry(format!("{path}={norm}")).or_default() += 1;
        }
        Value::Number(n) => {
            let f = n.as_f64().map_or(n.to_string(), |f| f.to_string());
            *out.entry(format!("{path}={f}")).or_default() += 1;
        }
        other => *out.entry(format!("{path}={other}")).or_default() += 1,
    }
}

pub fn flat(r: &Value) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    leaves(r, r["resourceType"].as_str().unwrap_or(""), &mut m);
    m
}

pub fn shared(a: &HashMap<String, usize>, b: &HashMap<String, usize>) -> usize {
    a.iter()
        .map(|(k, n)| (*n).min(*b.get(k).unwrap_or(&0)))
        .sum()
}

pub fn resources<'v>(bundle: &'v Value, rt: &str) -> Vec<&'v Value> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| &e["resource"])
                .filter(|r| r["resourceType"] == rt)
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Default)]
pub struct Tally {
    pub cases: usize,
    pub matched: usize,
    pub compared: usize,
}

/// `TYPE^EVENT` of a message's MSH-9.
pub fn message_kind(msg: &aorta_hl7::Message<'_>) -> String {
    msg.segment_at(0)
        .and_then(|s| s.field(9))
        .and_then(|f| f.repetition(1))
        .map(|t| {
            let c = |n| {
                t.component(n)
                    .map(|c| String::from_utf8_lossy(c.raw()).into_owned())
                    .unwrap_or_default()
            };
            format!("{}^{}", c(1), c(2))
        })
        .unwrap_or_default()
}

/// Compares `ours` with `want` resource type by resource type; adds to `tally` (this case's
/// group), `by_resource` and `missing` (expected leaves not produced, by path).
pub fn compare(
    ours: &Value,
    want: &Value,
    tally: &mut Tally,
    by_resource: &mut BTreeMap<&'static str, Tally>,
    missing: &mut HashMap<String, usize>,
) {
    for rt in MAPPED {
        let mut mine: Vec<HashMap<String, usize>> =
            resources(ours, rt).into_iter().map(flat).collect();
        for w in resources(want, rt) {
            let w = flat(w);
            let total: usize = w.values().sum();
            let best = mine
                .iter()
                .enumerate()
                .map(|(i, m)| (shared(&w, m), i))
                .max();
            let hit = match best {
                Some((n, i)) => {
                    let m = mine.remove(i);
                    for (k, c) in &w {
                        let lost = c.saturating_sub(*m.get(k).unwrap_or(&0));
                        if lost > 0 {
                            let key = k.split('=').next().unwrap_or("").to_string();
                            *missing.entry(key).or_default() += lost;
                        }
                    }
                    n
                }
                None => {
                    *missing.entry(format!("{rt} (not produced)")).or_default() += total;
                    0
                }
            };
            tally.matched += hit;
            tally.compared += total;
            let r = by_resource.entry(rt).or_default();
            r.matched += hit;
            r.compared += total;
            r.cases += 1;
        }
    }
}

/// Prints one summary line per group and per resource type and the most-missed elements;
/// returns the overall rate.
pub fn report(
    title: &str,
    groups: &BTreeMap<String, Tally>,
    by_resource: &BTreeMap<&'static str, Tally>,
    missing: HashMap<String, usize>,
    skipped: &str,
) -> f64 {
    let (mut m, mut c) = (0, 0);
    eprintln!("{title}:");
    for (k, t) in groups {
        eprintln!(
            "  {k:24} {:3} cases  {:5}/{:5} = {:5.1}%",
            t.cases,
            t.matched,
            t.compared,
            100.0 * t.matched as f64 / t.compared.max(1) as f64
        );
        m += t.matched;
        c += t.compared;
    }
    for (k, t) in by_resource {
        eprintln!(
            "  {k:18} {:3} resources {:5}/{:5} = {:5.1}%",
            t.cases,
            t.matched,
            t.compared,
            100.0 * t.matched as f64 / t.compared.max(1) as f64
        );
    }
    let rate = m as f64 / c.max(1) as f64;
    eprintln!("  overall {m}/{c} = {:.1}% ({skipped})", 100.0 * rate);
    let mut top: Vec<_> = missing.into_iter().collect();
    top.sort_by_key(|x| std::cmp::Reverse(x.1));
    eprintln!("  most-missed elements: {:?}", &top[..top.len().min(25)]);
    rate
}
