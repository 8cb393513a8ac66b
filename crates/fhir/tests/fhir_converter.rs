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

mod common;

use aorta_fhir::v2::{Options, SUPPORTED, convert};
use aorta_fhir::{Mode, parse_resource};
use common::{Tally, compare, report};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The rate below which this test fails: today's figure (0.824) less a margin, so a regression shows.
/// The target of the issue is 0.90; docs/fhir-mapping.md says where the gap is.
const FLOOR: f64 = 0.80;

#[test]
fn conversions_match_fhir_converter() {
    let Some(root) = aorta_testkit::corpus("hl7v2/fhir-converter") else {
        return;
    };
    let cases = std::fs::read_to_string(root.join("cases.tsv")).unwrap();
    let mut by_message: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_resource: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut missing_leaves: HashMap<String, usize> = HashMap::new();
    let mut failures = Vec::new();
    let mut skipped = 0;
    for line in cases.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (input, expected) = (cols[1], cols[2]);
        let bytes = std::fs::read(root.join(input)).unwrap();
        let msg = aorta_hl7::parse(&bytes).unwrap();
        let kind = common::message_kind(&msg);
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
        if let Some(dir) = std::env::var_os("AORTA_FHIR_DUMP") {
            // Diagnostic aid: each produced Bundle next to its expected one, for diffing.
            let name = std::path::Path::new(input)
                .file_stem()
                .unwrap()
                .to_string_lossy();
            let dir = std::path::Path::new(&dir);
            std::fs::create_dir_all(dir).unwrap();
            let pretty = |v: &Value| serde_json::to_vec_pretty(v).unwrap();
            std::fs::write(dir.join(format!("{name}.ours.json")), pretty(&ours)).unwrap();
            std::fs::write(dir.join(format!("{name}.want.json")), pretty(&want)).unwrap();
        }
        let tally = by_message.entry(kind.clone()).or_default();
        tally.cases += 1;
        compare(&ours, &want, tally, &mut by_resource, &mut missing_leaves);
    }
    let rate = report(
        "HL7 v2 -> FHIR vs FHIR-Converter (elements of mapped resource types)",
        &by_message,
        &by_resource,
        missing_leaves,
        &format!("{skipped} cases of unmapped types skipped"),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!by_message.is_empty(), "no case of a mapped type");
    assert!(rate >= FLOOR, "match rate {rate:.3} fell below {FLOOR}");
}
