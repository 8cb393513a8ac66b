//! ELR rules: the real CDC / ReportStream corpus (every labelled Valid file passes, every
//! Invalid one fails with the named rules, every other file's outcome pinned), a battery of
//! single-defect mutations of our own fixture (each fails exactly its rule), and a property
//! test that no input makes the check panic.

use aorta_clinical::elr::{self, Interpretation, Severity};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;

const FIXTURE: &[u8] = include_bytes!("fixtures/elr-covid-positive.hl7");

fn errors(raw: &[u8]) -> Vec<&'static str> {
    elr::check_bytes(raw).failed_rules()
}

/// Replaces field `f` of the first `seg` segment (HL7 numbering; MSH counts MSH-1 as the
/// separator, so MSH field n is at split index n - 1).
fn set_field(raw: &[u8], seg: &str, f: usize, value: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let mut done = false;
    let segs: Vec<String> = text
        .split('\r')
        .map(|s| {
            if done || !s.starts_with(&format!("{seg}|")) {
                return s.to_string();
            }
            done = true;
            let mut parts: Vec<String> = s.split('|').map(str::to_string).collect();
            let i = if seg == "MSH" { f - 1 } else { f };
            while parts.len() <= i {
                parts.push(String::new());
            }
            parts[i] = value.to_string();
            parts.join("|")
        })
        .collect();
    assert!(done, "no {seg} segment");
    segs.join("\r").into_bytes()
}

fn drop_segment(raw: &[u8], seg: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    text.split('\r')
        .filter(|s| !s.starts_with(&format!("{seg}|")))
        .collect::<Vec<_>>()
        .join("\r")
        .into_bytes()
}

#[test]
fn the_fixture_passes_with_every_element() {
    let r = elr::check_bytes(FIXTURE);
    assert!(r.is_valid(), "{:?}", r.errors);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.jurisdiction.as_deref(), Some("WA"));
    assert_eq!(r.facility, "05D2222542");
    assert_eq!(r.control_id, "RL-000123");
    // The age answer (OBX-29 QST) is not a result.
    assert_eq!(r.results.len(), 1);
    let res = &r.results[0];
    assert_eq!(res.loinc.as_deref(), Some("94500-6"));
    assert_eq!(res.interpretation, Interpretation::Positive);
    assert_eq!(res.performing_lab.clia.as_deref(), Some("05D2222542"));
    assert_eq!(res.specimen_type.as_deref(), Some("258500001"));
    // 2021-02-27 09:30 wall clock, read as UTC.
    assert_eq!(res.collected_ms, Some(1_614_418_200_000));
}

#[test]
fn each_single_defect_fails_exactly_its_rule() {
    let f = FIXTURE;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "msh-9-message-type",
            set_field(f, "MSH", 9, "ADT^A01^ADT_A01"),
        ),
        ("msh-10-control-id", set_field(f, "MSH", 10, "")),
        ("msh-11-processing-id", set_field(f, "MSH", 11, "D")),
        ("msh-12-version", set_field(f, "MSH", 12, "2.4")),
        (
            "msh-21-profile",
            set_field(
                f,
                "MSH",
                21,
                "NOTF_ORU_v3.0^PHINProfileID^2.16.840.1.114222.4.10.3^ISO",
            ),
        ),
        ("pid-3-patient-id", set_field(f, "PID", 3, "")),
        ("pid-5-patient-name", set_field(f, "PID", 5, "")),
        // Without a birth date the QST age answer still satisfies the rule: drop both.
        (
            "pid-7-birth-date-or-age",
            drop_segment(&set_field(f, "PID", 7, ""), "OBX|2"),
        ),
        (
            "pid-7-birth-date-or-age",
            set_field(f, "PID", 7, "19801345"),
        ),
        (
            "pid-11-address",
            set_field(f, "PID", 11, "100 Main St^^Seattle"),
        ),
        ("result-loinc", {
            let local = set_field(f, "OBR", 4, "COV^Covid PCR^L");
            set_field(&local, "OBX", 3, "COV^Covid PCR^L")
        }),
        ("obx-5-value", set_field(f, "OBX", 5, "")),
        ("obx-11-status", set_field(f, "OBX", 11, "Q")),
        ("result-snomed", set_field(f, "OBX", 5, "DET^Detected^SCT")),
        ("specimen-type", set_field(f, "SPM", 4, "")),
        ("specimen-collection-time", {
            let no_spm = set_field(f, "SPM", 17, "");
            set_field(&no_spm, "OBR", 7, "")
        }),
        ("specimen-collection-time", {
            let bad = set_field(f, "SPM", 17, "20210231");
            set_field(&bad, "OBR", 7, "")
        }),
        (
            "result-before-collection",
            set_field(f, "OBX", 19, "20210226"),
        ),
        ("performing-lab", {
            let none = set_field(f, "OBX", 23, "");
            set_field(&none, "MSH", 4, "")
        }),
        ("obr-present", drop_segment(f, "OBR")),
    ];
    for (rule, msg) in &cases {
        assert_eq!(
            errors(msg),
            vec![*rule],
            "mutation for {rule}: {}",
            String::from_utf8_lossy(msg).replace('\r', "\n")
        );
        assert!(elr::rule(rule).is_some_and(|r| r.severity == Severity::Error));
    }
    // Warnings never fail a message, and each names its HHS element.
    for (rule, msg) in [
        (
            "performing-lab-clia",
            set_field(
                f,
                "OBX",
                23,
                "Riverside Lab^L^^^^CLIA&2.16.840.1.113883.4.7&ISO^XX^^^05X2222542",
            ),
        ),
        ("hhs-07-race", set_field(f, "PID", 10, "")),
        (
            "hhs-11-county",
            set_field(f, "PID", 11, "100 Main St^^Seattle^WA^98101^USA^H"),
        ),
        ("msh-11-not-production", set_field(f, "MSH", 11, "T")),
    ] {
        let r = elr::check_bytes(&msg);
        assert!(r.is_valid(), "{rule}: {:?}", r.errors);
        assert_eq!(r.warned_rules(), vec![rule]);
    }
    // Bytes that are not HL7.
    assert_eq!(errors(b"hello"), vec!["hl7-parse"]);
    // An unknown state is valid but has no jurisdiction (routing is default-deny).
    let r = elr::check_bytes(&set_field(f, "PID", 11, "1 Rue^^Paris^IDF^75001^FRA"));
    assert!(r.is_valid());
    assert_eq!(r.jurisdiction, None);
    // A resend with a new MSH-7 keeps the fingerprint; a changed result does not.
    let a = elr::check_bytes(f).fingerprint;
    assert_eq!(
        a,
        elr::check_bytes(&set_field(f, "MSH", 7, "20210302000000")).fingerprint
    );
    assert_ne!(
        a,
        elr::check_bytes(&set_field(f, "OBX", 5, "260415000^Not detected^SCT")).fingerprint
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Random byte edits of a valid message never panic, and every finding names a rule of
    /// the table with the severity it is filed under.
    #[test]
    fn no_input_panics(edits in proptest::collection::vec((0usize..2000, any::<u8>()), 0..12), cut in 0usize..2100) {
        let mut m = FIXTURE.to_vec();
        for (i, b) in edits {
            let i = i % m.len();
            m[i] = b;
        }
        m.truncate(cut.max(1));
        let r = elr::check_bytes(&m);
        for f in &r.errors {
            prop_assert_eq!(elr::rule(f.rule).map(|x| x.severity), Some(Severity::Error));
        }
        for f in &r.warnings {
            prop_assert_eq!(elr::rule(f.rule).map(|x| x.severity), Some(Severity::Warning));
        }
    }
}

/// The label a file's author gave it in its name (the repository directory words
/// "validator"/"validation" do not count).
fn label(name: &str) -> &'static str {
    let n = name
        .to_ascii_lowercase()
        .replace("validator", "")
        .replace("validation", "");
    if n.contains("fail_onboarding_pass_prod") {
        "valid"
    } else if n.contains("invalid") || n.contains("error") {
        "invalid"
    } else if n.contains("valid") || n.contains("good") {
        "valid"
    } else {
        "-"
    }
}

#[test]
fn corpus_outcomes_match_the_manifest() {
    let Some(root) = aorta_testkit::corpus("hl7v2") else {
        return;
    };
    let manifest = include_str!("elr-corpus.tsv");
    let mut listed = BTreeSet::new();
    let mut wrong = Vec::new();
    let (mut pass, mut fail, mut messages) = (0, 0, 0);
    let mut by_rule: std::collections::BTreeMap<&str, usize> = Default::default();
    println!("{:<100} {:>4} {:<8} outcome", "file", "msgs", "label");
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (path, count, expected, note) = (
            cols[0],
            cols[1],
            cols[2],
            cols.get(3).copied().unwrap_or(""),
        );
        listed.insert(path.to_string());
        let bytes = std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let batch = aorta_hl7::parse_stream(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut rules = BTreeSet::new();
        for m in &batch.messages {
            rules.extend(elr::check_message(m).failed_rules());
        }
        messages += batch.messages.len();
        let outcome = if rules.is_empty() {
            pass += 1;
            "pass".to_string()
        } else {
            fail += 1;
            for r in &rules {
                *by_rule.entry(r).or_default() += 1;
            }
            format!(
                "fail:{}",
                rules.iter().copied().collect::<Vec<_>>().join(",")
            )
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        let l = label(name);
        println!("{name:<100} {:>4} {l:<8} {outcome}", batch.messages.len());
        if outcome != expected || count != batch.messages.len().to_string() {
            wrong.push(format!(
                "{path}: got {outcome} ({} messages), manifest says {expected} ({count})",
                batch.messages.len()
            ));
        }
        let exception = note.starts_with("exception:");
        if l == "valid" && expected != "pass" && !exception {
            wrong.push(format!(
                "{path}: labelled valid but expected {expected} without an exception note"
            ));
        }
        if l == "invalid" && expected == "pass" {
            wrong.push(format!("{path}: labelled invalid but expected to pass"));
        }
    }
    // Every labelled ORU file in the two ELR directories is in the manifest.
    for dir in ["cdc-data-exchange-hl7", "cdc-prime-reportstream/other"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let rel = format!("{dir}/{name}");
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let is_oru = aorta_hl7::parse_stream(&bytes).is_ok_and(|b| {
                b.messages
                    .first()
                    .and_then(|m| m.message_type())
                    .is_some_and(|t| t.starts_with(b"ORU^R01"))
            });
            if is_oru && label(&name) != "-" && !listed.contains(&rel) {
                wrong.push(format!(
                    "{rel}: a labelled ORU^R01 file missing from elr-corpus.tsv"
                ));
            }
        }
    }
    println!(
        "ELR corpus: {} files, {messages} messages; {pass} files pass, {fail} fail; files per failed rule: {by_rule:?}",
        pass + fail
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(pass + fail >= 50, "the manifest lost files");
}

#[test]
fn rules_are_documented_for_users() {
    let Ok(doc) = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/clinical.md"),
    ) else {
        panic!("docs/clinical.md missing");
    };
    for r in elr::RULES {
        assert!(
            doc.contains(&format!("`{}`", r.id)),
            "docs/clinical.md does not list rule {}",
            r.id
        );
    }
}
