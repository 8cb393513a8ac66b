//! HL7 v2 → FHIR compared with CDC ReportStream's datatype and segment mapping inventory
//! (`cdc-prime-reportstream/datatests/mappinginventory/catchall/**`: one small v2 message per
//! `.hl7` file, ReportStream's FHIR Bundle for it in the `.fhir` file of the same name).
//!
//! A pair *applies* when its message type is one Aorta maps and the expected Bundle holds
//! resources of the types Aorta produces; those are compared element by element as in the
//! FHIR-Converter test (`common`). ReportStream writes much of the v2 content into its own
//! extensions (`https://reportstream.cdc.gov/fhir/StructureDefinition/…`) and into resources
//! Aorta does not produce (MessageHeader, Provenance, Organization, PractitionerRole); those
//! leaves count as missed. The summary prints the rate per inventory folder.

mod common;

use aorta_fhir::v2::{Options, SUPPORTED, convert};
use aorta_fhir::{IssueType, Mode, parse_resource};
use common::{MAPPED, Tally, compare, report, resources};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Today's figure less a margin, so that a regression shows. See docs/fhir-mapping.md.
const FLOOR: f64 = 0.17;

fn hl7_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            hl7_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "hl7") {
            out.push(p);
        }
    }
}

#[test]
fn conversions_match_reportstream_where_they_apply() {
    let Some(root) =
        aorta_testkit::corpus("hl7v2/cdc-prime-reportstream/datatests/mappinginventory/catchall")
    else {
        return;
    };
    let mut files = Vec::new();
    hl7_files(&root, &mut files);
    assert!(files.len() >= 200, "only {} pairs found", files.len());
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_resource: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut missing: HashMap<String, usize> = HashMap::new();
    let (mut unmapped_type, mut no_resources, mut refused) = (0, 0, Vec::new());
    let mut sender_codes = 0;
    let mut failures = Vec::new();
    for input in &files {
        let Ok(want_bytes) = std::fs::read(input.with_extension("fhir")) else {
            continue;
        };
        let want: Value = serde_json::from_slice(&want_bytes).unwrap();
        if MAPPED.iter().all(|rt| resources(&want, rt).is_empty()) {
            no_resources += 1;
            continue;
        }
        let bytes = std::fs::read(input).unwrap();
        let name = input
            .strip_prefix(&root)
            .unwrap_or(input)
            .display()
            .to_string();
        let msg = match aorta_hl7::parse(&bytes) {
            Ok(m) => m,
            Err(e) => {
                refused.push(format!("{name}: does not parse: {e}"));
                continue;
            }
        };
        let kind = common::message_kind(&msg);
        if !SUPPORTED.contains(&kind.as_str()) {
            unmapped_type += 1;
            continue;
        }
        let ours = match convert(&msg, &Options::default()) {
            Ok(b) => b,
            Err(e) => {
                refused.push(format!("{name}: {e}"));
                continue;
            }
        };
        // The inventory's test values include codes that do not fit the code system they
        // name (`PrimaryCode^…^LN`); the mapping keeps what the sender wrote, and validation
        // rightly flags it. Anything else invalid in our Bundle is a mapping bug.
        if let Err(o) = parse_resource(&serde_json::to_vec(&ours).unwrap(), Mode::Strict) {
            let (sent, ours_wrong): (Vec<_>, Vec<_>) = o
                .issues
                .iter()
                .partition(|i| i.code == IssueType::CodeInvalid);
            if !sent.is_empty() {
                sender_codes += 1;
            }
            if !ours_wrong.is_empty() {
                let list: Vec<String> = ours_wrong.iter().map(|i| i.to_string()).collect();
                failures.push(format!(
                    "{name}: our Bundle is not valid R4: {}",
                    list.join("; ")
                ));
            }
        }
        let group = Path::new(&name)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let tally = groups.entry(group).or_default();
        tally.cases += 1;
        compare(&ours, &want, tally, &mut by_resource, &mut missing);
    }
    let compared: usize = groups.values().map(|t| t.cases).sum();
    let rate = report(
        "HL7 v2 -> FHIR vs CDC ReportStream mapping inventory (elements of mapped resource types)",
        &groups,
        &by_resource,
        missing,
        &format!(
            "{compared} of {} pairs compared; {no_resources} expect none of the mapped resource types, {unmapped_type} are of unmapped message types, {} refused; {sender_codes} carry codes that do not fit their code system",
            files.len(),
            refused.len()
        ),
    );
    for r in &refused {
        eprintln!("  refused: {r}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared > 0, "no pair applies");
    assert!(rate >= FLOOR, "match rate {rate:.3} fell below {FLOOR}");
}
