//! HL7 v2 → FHIR compared with Microsoft FHIR-Converter's expected output
//! (`hl7v2/fhir-converter/cases.tsv`: input message, expected Bundle).
//!
//! For every case whose message type Aorta maps: the conversion succeeds, the Bundle passes
//! strict R4 validation, and its resources are compared with the expected ones of the same
//! types, element by element: each resource is flattened to `path = value` leaves (array
//! indices dropped, `id`/`meta`/`text` ignored, a reference reduced to the type it points
//! to), each expected resource is paired with the produced resource that shares most leaves,
//! and the match rate is shared leaves / expected leaves. Date-times compare as instants (the
//! expected files were written on a machine at +05:30). The summary prints the rate per message
//! type and per resource type.

use aorta_fhir::v2::{Options, SUPPORTED, convert};
use aorta_fhir::{Mode, datetime, parse_resource};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

const MAPPED: &[&str] = &[
    "Patient",
    "Encounter",
    "Observation",
    "DiagnosticReport",
    "Specimen",
    "Immunization",
    "ServiceRequest",
    "MedicationRequest",
];

/// The rate below which this test fails: today's figure (0.575) less a margin, so a regression shows.
/// The target of the issue is 0.90; docs/fhir-mapping.md says where the gap is.
const FLOOR: f64 = 0.56;

fn leaves(v: &Value, path: &str, out: &mut HashMap<String, usize>) {
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

fn flat(r: &Value) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    leaves(r, r["resourceType"].as_str().unwrap_or(""), &mut m);
    m
}

fn shared(a: &HashMap<String, usize>, b: &HashMap<String, usize>) -> usize {
    a.iter()
        .map(|(k, n)| (*n).min(*b.get(k).unwrap_or(&0)))
        .sum()
}

fn resources<'v>(bundle: &'v Value, rt: &str) -> Vec<&'v Value> {
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
struct Tally {
    cases: usize,
    matched: usize,
    compared: usize,
}

#[test]
fn conversions_match_fhir_converter() {
    let Some(root) = aorta_testkit::corpus("hl7v2/fhir-converter") else {
        return;
    };
    let cases = std::fs::read_to_string(root.join("cases.tsv")).unwrap();
    let mut by_message: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_resource: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut missing_leaves: HashMap<String, usize> = HashMap::new();
    let mut failures = Vec::new();
    let mut skipped = 0;
    for line in cases.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (input, expected) = (cols[1], cols[2]);
        let bytes = std::fs::read(root.join(input)).unwrap();
        let msg = aorta_hl7::parse(&bytes).unwrap();
        let t = msg
            .segment_at(0)
            .and_then(|s| s.field(9))
            .and_then(|f| f.repetition(1));
        let kind = t
            .map(|t| {
                let c = |n| {
                    t.component(n)
                        .map(|c| String::from_utf8_lossy(c.raw()).into_owned())
                        .unwrap_or_default()
                };
                format!("{}^{}", c(1), c(2))
            })
            .unwrap_or_default();
        if !SUPPORTED.contains(&kind.as_str()) {
            skipped += 1;
            continue;
        }
        let ours = match convert(&msg, &Options::default()) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{input}: {e}"));
                continue;
            }
        };
        if let Err(o) = parse_resource(&serde_json::to_vec(&ours).unwrap(), Mode::Strict) {
            failures.push(format!("{input}: our Bundle is not valid R4: {o}"));
        }
        let want: Value =
            serde_json::from_slice(&std::fs::read(root.join(expected)).unwrap()).unwrap();
        let tally = by_message.entry(kind.clone()).or_default();
        tally.cases += 1;
        for rt in MAPPED {
            let mut mine: Vec<HashMap<String, usize>> =
                resources(&ours, rt).into_iter().map(flat).collect();
            for w in resources(&want, rt) {
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
                                *missing_leaves.entry(key).or_default() += lost;
                            }
                        }
                        n
                    }
                    None => {
                        *missing_leaves
                            .entry(format!("{rt} (not produced)"))
                            .or_default() += total;
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
    let (mut m, mut c) = (0, 0);
    eprintln!("HL7 v2 -> FHIR vs FHIR-Converter (elements of mapped resource types):");
    for (k, t) in &by_message {
        eprintln!(
            "  {k:8} {:3} cases  {:5}/{:5} = {:5.1}%",
            t.cases,
            t.matched,
            t.compared,
            100.0 * t.matched as f64 / t.compared.max(1) as f64
        );
        m += t.matched;
        c += t.compared;
    }
    for (k, t) in &by_resource {
        eprintln!(
            "  {k:18} {:3} resources {:5}/{:5} = {:5.1}%",
            t.cases,
            t.matched,
            t.compared,
            100.0 * t.matched as f64 / t.compared.max(1) as f64
        );
    }
    let rate = m as f64 / c.max(1) as f64;
    eprintln!(
        "  overall {m}/{c} = {:.1}% ({skipped} cases of unmapped types skipped)",
        100.0 * rate
    );
    let mut top: Vec<_> = missing_leaves.into_iter().collect();
    top.sort_by_key(|x| std::cmp::Reverse(x.1));
    eprintln!("  most-missed elements: {:?}", &top[..top.len().min(25)]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!by_message.is_empty(), "no case of a mapped type");
    assert!(rate >= FLOOR, "match rate {rate:.3} fell below {FLOOR}");
}
