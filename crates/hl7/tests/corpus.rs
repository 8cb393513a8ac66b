//! The real-world corpus (`$AORTA_CORPUS/hl7v2`, default `../shared/data` beside the repo):
//! every file parses without panic, and for every file python-hl7 0.4.5 parsed, our
//! segment/field/repetition/component/subcomponent tree equals its reference parse in
//! `_python-hl7-parse-oracle/` (raw strings), except the differences listed in
//! `KNOWN_DIFFERENCES` with the reason python-hl7 is wrong there.

use aorta_hl7::parse_stream;
use aorta_hl7::validate::validate;

type Tree = Vec<Vec<Vec<Vec<Vec<Vec<String>>>>>>;

const NHAPI_REJECTS: &str = "fuzz inputs nHapi rejects: MSH-2 too short, duplicated or non-ASCII encoding characters; python-hl7 accepted them";

/// Where our parse differs from python-hl7's reference on purpose: a path prefix, whether our
/// side of the difference must be a rejection, and why python-hl7 (or the oracle's
/// preprocessing) is wrong there.
const KNOWN_DIFFERENCES: &[(&str, bool, &str)] = &[
    (
        "nhapi/BadInputs/PipeParser/HL7Exception/",
        true,
        NHAPI_REJECTS,
    ),
    (
        "nhapi/BadInputs/PipeParser/EncodingNotSupportedException/",
        true,
        NHAPI_REJECTS,
    ),
    (
        "nhapi/BadInputs/LegacyPipeParser/HL7Exception/",
        true,
        NHAPI_REJECTS,
    ),
    (
        "nhapi/BadInputs/LegacyPipeParser/EncodingNotSupportedException/",
        true,
        NHAPI_REJECTS,
    ),
    (
        "python-hl7/sample_bad_",
        true,
        "python-hl7's own tests expect these errors (segment before MSH, nested BHS/FHS); the oracle only parsed them after dropping the batch envelope",
    ),
    (
        "cdc-trusted-intermediary/Test/Message/msh_present_but_missing_msh-2.hl7",
        true,
        "CDC's test data requires rejecting a message without MSH-2",
    ),
    (
        "linuxforhealth-hl7v2-fhir-converter/sample_",
        false,
        "MSH-2 is written `^~\\\\&` (escape doubled); we read the intended `^~\\&`, python-hl7 takes the second backslash as the subcomponent separator and splits text such as `\\r` at it",
    ),
    (
        "fhir-converter/input/PC1-Problem-",
        false,
        "PRB-16 ends with a space; the oracle's preprocessing stripped trailing whitespace, we keep the bytes exactly",
    ),
    (
        "nhapi/inline_from_cs_tests/LegacyPipeParserV24Tests__05.hl7",
        false,
        "OBX-19 is a single space; the oracle's preprocessing stripped it, we keep the bytes exactly",
    ),
];

fn text(b: &[u8], latin1: bool) -> String {
    if latin1 {
        b.iter().map(|&c| c as char).collect()
    } else {
        String::from_utf8_lossy(b).into_owned()
    }
}

fn our_tree(bytes: &[u8], latin1: bool) -> Result<Tree, String> {
    let batch = parse_stream(bytes).map_err(|e| e.to_string())?;
    Ok(batch
        .messages
        .iter()
        .map(|m| {
            m.segments()
                .map(|s| {
                    s.fields()
                        .map(|f| {
                            f.repetitions()
                                .map(|r| {
                                    r.components()
                                        .map(|c| {
                                            c.subcomponents().map(|x| text(x, latin1)).collect()
                                        })
                                        .collect()
                                })
                                .collect()
                        })
                        .collect()
                })
                .collect()
        })
        .collect())
}

fn first_difference(ours: &Tree, theirs: &Tree) -> String {
    if ours.len() != theirs.len() {
        return format!("{} messages vs {}", ours.len(), theirs.len());
    }
    for (mi, (a, b)) in ours.iter().zip(theirs).enumerate() {
        if a.len() != b.len() {
            return format!("message {mi}: {} segments vs {}", a.len(), b.len());
        }
        for (si, (x, y)) in a.iter().zip(b).enumerate() {
            if x != y {
                let id = y.first().map(|f| format!("{f:?}")).unwrap_or_default();
                for (fi, (p, q)) in x.iter().zip(y).enumerate() {
                    if p != q {
                        return format!(
                            "message {mi} segment {si} {id} field {fi}: ours {p:?} vs {q:?}"
                        );
                    }
                }
                return format!(
                    "message {mi} segment {si} {id}: {} fields vs {}",
                    x.len(),
                    y.len()
                );
            }
        }
    }
    "equal".into()
}

#[test]
fn every_file_matches_the_python_hl7_reference_parse() {
    let Some(root) = aorta_testkit::corpus("hl7v2") else {
        return;
    };
    let oracle = root.join("_python-hl7-parse-oracle");
    let mut files = Vec::new();
    let mut stack = vec![oracle.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else if p.to_string_lossy().ends_with(".parsed.json") {
                files.push(p)
            }
        }
    }
    files.sort();
    assert!(
        files.len() > 1000,
        "expected the full oracle, found {} files",
        files.len()
    );
    let (mut compared, mut equal, mut rejected_by_oracle, mut absent, mut explained) =
        (0, 0, 0, 0, 0);
    let mut unexpected = Vec::new();
    for f in &files {
        let j: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let source = j["source"].as_str().unwrap();
        // Some oracle entries name inputs this copy of the corpus does not hold (a hidden split).
        let Ok(bytes) = std::fs::read(root.join(source)) else {
            absent += 1;
            continue;
        };
        let latin1 = j["decoded_as"] == "latin-1";
        let ours = our_tree(&bytes, latin1);
        if j["errors"].as_array().is_some_and(|e| !e.is_empty()) {
            rejected_by_oracle += 1; // parsed above without panicking; outcome may differ
            continue;
        }
        compared += 1;
        let theirs: Tree = serde_json::from_value(j["messages"].clone()).unwrap();
        let diff = match &ours {
            Ok(t) if *t == theirs => {
                equal += 1;
                continue;
            }
            Ok(t) => first_difference(t, &theirs),
            Err(e) => format!("we reject it: {e}"),
        };
        let known = KNOWN_DIFFERENCES.iter().find(|(prefix, must_reject, _)| {
            source.starts_with(prefix) && (!must_reject || ours.is_err())
        });
        match known {
            Some((_, _, why)) => {
                explained += 1;
                if std::env::var_os("AORTA_CORPUS_VERBOSE").is_some() {
                    eprintln!("known difference {source}: {diff} [{why}]");
                }
            }
            None => unexpected.push(format!("{source}: {diff}")),
        }
    }
    eprintln!(
        "corpus: {} oracle files; {absent} name inputs absent from this corpus copy; {compared} compared, {equal} identical, {explained} known differences; {rejected_by_oracle} rejected by python-hl7 (parsed here without panic)",
        files.len()
    );
    assert!(
        compared > 800,
        "only {compared} files compared: is the corpus complete?"
    );
    assert!(
        unexpected.is_empty(),
        "{} unexpected differences:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

/// nHapi's AFL-found inputs (`nhapi/BadInputs/<parser>/<expected outcome>/`): each must end
/// cleanly and quickly. `HL7Exception` and `EncodingNotSupportedException` files must be
/// rejected (by the parser, or by the header checks every receiver applies) or, where nHapi
/// rejects them for their structure, be reported by strict validation; `NoException` files must
/// be accepted by ingest.
/// These are well-formed ER7 with the same delimiters as inputs nHapi accepts; nHapi rejects
/// them for their segments (ids such as `00`, an ADT_A43 without EVN), which lenient ingest
/// stores and strict validation (`aorta hl7 validate`) reports.
const REJECTED_BY_STRICT_VALIDATION_ONLY: &[&str] = &[
    "PipeParser/HL7Exception/id_000092,sig_02,src_001582+001861,op_splice,rep_16",
    "PipeParser/HL7Exception/id_000119,sig_02,src_001911,op_havoc,rep_64",
];

#[test]
fn nhapi_bad_inputs_end_as_nhapi_expects() {
    let Some(root) = aorta_testkit::corpus("hl7v2") else {
        return;
    };
    let dir = root.join("nhapi/BadInputs");
    let mut checked = 0;
    let mut wrong = Vec::new();
    let mut strict_only = Vec::new();
    for parser in std::fs::read_dir(&dir).unwrap() {
        let parser = parser.unwrap().path();
        for outcome in std::fs::read_dir(&parser).unwrap() {
            let outcome = outcome.unwrap().path();
            let expect_ok = outcome.file_name().unwrap() == "NoException";
            for f in std::fs::read_dir(&outcome).unwrap() {
                let f = f.unwrap().path();
                let bytes = std::fs::read(&f).unwrap();
                let started = std::time::Instant::now();
                let result = parse_stream(&bytes).and_then(|b| {
                    b.messages.iter().try_for_each(|m| m.validate_header())?;
                    // Touch every value, as an ingest or the inspector would.
                    let n: usize = b
                        .messages
                        .iter()
                        .flat_map(|m| m.segments())
                        .flat_map(|s| s.fields())
                        .flat_map(|f| f.repetitions())
                        .flat_map(|r| r.components())
                        .map(|c| c.decoded().len())
                        .sum();
                    Ok(n)
                });
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(2),
                    "{} took too long",
                    f.display()
                );
                checked += 1;
                let name = f.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
                if result.is_ok() && !expect_ok {
                    let strict: usize = parse_stream(&bytes)
                        .map(|b| b.messages.iter().map(|m| validate(m).len()).sum())
                        .unwrap_or(0);
                    if strict > 0 {
                        strict_only.push(name.clone());
                        continue;
                    }
                }
                if result.is_ok() != expect_ok {
                    wrong.push(format!(
                        "{}: expected {}, got {:?}",
                        f.strip_prefix(&root).unwrap().display(),
                        outcome.file_name().unwrap().to_string_lossy(),
                        result.map(|_| "accepted")
                    ));
                }
            }
        }
    }
    eprintln!(
        "nHapi BadInputs: {checked} files, {} as nHapi expects ({} of them rejected by strict validation only)",
        checked - wrong.len(),
        strict_only.len()
    );
    strict_only.sort();
    assert_eq!(strict_only, REJECTED_BY_STRICT_VALIDATION_ONLY);
    assert!(checked >= 30, "expected nHapi's BadInputs, found {checked}");
    assert!(
        wrong.is_empty(),
        "{} outcomes differ from nHapi's:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
