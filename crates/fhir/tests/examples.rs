//! The official FHIR R4 examples (`fhir/r4-spec-examples/examples`, 604 files) and the value
//! assertions written for them (`fhir_value_assertions.jsonl`, 13,400 lines): every example
//! re-serialises JSON-equal through the typed model, every assertion holds on the
//! re-serialised JSON, and every example of the resource types Aorta maps and ingests passes
//! strict validation.

use aorta_fhir::{Mode, model::resources::Resource, parse_resource};
use serde_json::Value;
use std::collections::HashMap;

const OURS: &[&str] = &[
    "Patient",
    "Encounter",
    "Observation",
    "DiagnosticReport",
    "Specimen",
    "ServiceRequest",
    "MedicationRequest",
    "Immunization",
    "Organization",
    "Practitioner",
    "Location",
    "Provenance",
    "Bundle",
    "OperationOutcome",
    "Claim",
    "ClaimResponse",
];

/// Examples the model cannot read, with the reason.
const MODEL_REJECTS: &[(&str, &str)] = &[(
    "examplescenario-questionnaire.json",
    "the ExampleScenario example omits an element its own definition requires (missing field `linkId`); not a type Aorta uses",
)];

fn at<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = v;
    for part in path.split('.') {
        let (name, idx) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = cur.get(name)?;
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y)
        }
        _ => a == b,
    }
}

#[test]
fn official_examples_round_trip_and_assertions_hold() {
    let Some(root) = aorta_testkit::corpus("fhir/r4-spec-examples") else {
        return;
    };
    let mut reserialised: HashMap<String, Value> = HashMap::new();
    let (mut files, mut ours, mut rejected) = (0, 0, Vec::new());
    let mut problems = Vec::new();
    for e in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        files += 1;
        let json: Value = serde_json::from_str(&text).unwrap();
        let typed = match serde_json::from_str::<Resource>(&text) {
            Ok(t) => t,
            Err(e) => {
                rejected.push(name.clone());
                if !MODEL_REJECTS.iter().any(|(f, _)| *f == name) {
                    problems.push(format!("{name}: the model rejects it: {e}"));
                }
                continue;
            }
        };
        let back = serde_json::to_value(&typed).unwrap();
        if back != json {
            problems.push(format!("{name}: not JSON-equal after the round trip"));
        }
        let rt = json["resourceType"].as_str().unwrap_or_default();
        if OURS.contains(&rt) {
            ours += 1;
            if let Err(o) = parse_resource(text.as_bytes(), Mode::Strict) {
                problems.push(format!("{name}: strict validation rejects it: {o}"));
            }
        }
        reserialised.insert(format!("examples/{name}"), back);
    }
    let (mut held, mut skipped) = (0, 0);
    let lines = std::fs::read_to_string(root.join("fhir_value_assertions.jsonl")).unwrap();
    for line in lines.lines() {
        let a: Value = serde_json::from_str(line).unwrap();
        let file = a["file"].as_str().unwrap();
        let Some(doc) = reserialised.get(file) else {
            skipped += 1;
            continue;
        };
        let path = a["path"].as_str().unwrap();
        match at(doc, path) {
            Some(v) if same(v, &a["expected"]) => held += 1,
            got => problems.push(format!(
                "{file} {path}: expected {}, got {got:?}",
                a["expected"]
            )),
        }
    }
    eprintln!(
        "R4 examples: {files} files, {} round-trip JSON-equal, {ours} of Aorta's types pass strict validation; \
         value assertions: {held} hold, {skipped} on examples the model rejects ({rejected:?})",
        files - rejected.len()
    );
    assert!(
        files >= 600,
        "expected the 604 official examples, found {files}"
    );
    assert!(held >= 13_000, "only {held} assertions checked");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
