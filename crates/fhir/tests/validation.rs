//! A battery of broken resources: each is rejected with the issue type and location a FHIR
//! server would report, and the intact version of each is accepted.

use aorta_fhir::{IssueType, Mode, parse_resource};
use serde_json::{Value, json};

fn base(rt: &str) -> Value {
    match rt {
        "Patient" => json!({"resourceType": "Patient", "id": "p1", "gender": "female",
            "birthDate": "1970-02-28", "name": [{"family": "Doe", "given": ["Jane"]}]}),
        "Observation" => json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-11-26T10:00:00+01:00", "issued": "2026-11-26T10:05:00Z",
            "valueQuantity": {"value": 72.50, "unit": "beats/min",
                "system": "http://unitsofmeasure.org", "code": "/min"},
            "bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "368209003"}]}}),
        "Immunization" => json!({"resourceType": "Immunization", "status": "completed",
            "vaccineCode": {"text": "flu"}, "patient": {"reference": "Patient/p1"},
            "occurrenceDateTime": "2026-10-01"}),
        "Bundle" => json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": base("Patient"), "request": {"method": "PUT", "url": "Patient/p1"}},
            {"resource": base("Observation"), "request": {"method": "PUT", "url": "Observation/o1"}}]}),
        _ => unreachable!(),
    }
}

/// (what, resource type, change, expected issue type, expected location)
type Case = (
    &'static str,
    &'static str,
    fn(&mut Value),
    IssueType,
    &'static str,
);

const CASES: &[Case] = &[
    (
        "missing required status",
        "Observation",
        |v| {
            v.as_object_mut().unwrap().remove("status");
        },
        IssueType::Required,
        "Observation.status",
    ),
    (
        "missing required code",
        "Observation",
        |v| {
            v.as_object_mut().unwrap().remove("code");
        },
        IssueType::Required,
        "Observation.code",
    ),
    (
        "missing choice occurrence[x]",
        "Immunization",
        |v| {
            v.as_object_mut().unwrap().remove("occurrenceDateTime");
        },
        IssueType::Required,
        "Immunization.occurrence[x]",
    ),
    (
        "status not in its value set",
        "Observation",
        |v| v["status"] = json!("done"),
        IssueType::CodeInvalid,
        "Observation.status",
    ),
    (
        "gender not in its value set",
        "Patient",
        |v| v["gender"] = json!("F"),
        IssueType::CodeInvalid,
        "Patient.gender",
    ),
    (
        "impossible birth date",
        "Patient",
        |v| v["birthDate"] = json!("1970-02-30"),
        IssueType::Value,
        "Patient.birthDate",
    ),
    (
        "date with a time",
        "Patient",
        |v| v["birthDate"] = json!("1970-02-28T10:00:00Z"),
        IssueType::Value,
        "Patient.birthDate",
    ),
    (
        "dateTime without timezone",
        "Observation",
        |v| v["effectiveDateTime"] = json!("2026-11-26T10:00:00"),
        IssueType::Value,
        "Observation.effectiveDateTime",
    ),
    (
        "instant with date precision",
        "Observation",
        |v| v["issued"] = json!("2026-11-26"),
        IssueType::Value,
        "Observation.issued",
    ),
    (
        "v2-style timestamp",
        "Observation",
        |v| v["effectiveDateTime"] = json!("20261126100000+0100"),
        IssueType::Value,
        "Observation.effectiveDateTime",
    ),
    (
        "bad id",
        "Patient",
        |v| v["id"] = json!("p 1"),
        IssueType::Value,
        "Patient.id",
    ),
    (
        "relative reference without id",
        "Observation",
        |v| v["subject"] = json!({"reference": "Patient/"}),
        IssueType::Invalid,
        "Observation.subject.reference",
    ),
    (
        "lower-case reference type",
        "Observation",
        |v| v["subject"] = json!({"reference": "patient/p1"}),
        IssueType::Invalid,
        "Observation.subject.reference",
    ),
    (
        "LOINC check digit wrong",
        "Observation",
        |v| v["code"]["coding"][0]["code"] = json!("8867-5"),
        IssueType::CodeInvalid,
        "Observation.code.coding[0].code",
    ),
    (
        "SNOMED check digit wrong",
        "Observation",
        |v| v["bodySite"]["coding"][0]["code"] = json!("368209004"),
        IssueType::CodeInvalid,
        "Observation.bodySite.coding[0].code",
    ),
    (
        "UCUM code with a space",
        "Observation",
        |v| v["valueQuantity"]["code"] = json!("beats / min"),
        IssueType::CodeInvalid,
        "Observation.valueQuantity.code",
    ),
    (
        "null value",
        "Patient",
        |v| v["gender"] = Value::Null,
        IssueType::Structure,
        "Patient.gender",
    ),
    (
        "empty array",
        "Patient",
        |v| v["name"] = json!([]),
        IssueType::Structure,
        "Patient.name",
    ),
    (
        "empty string",
        "Patient",
        |v| v["name"][0]["family"] = json!(" "),
        IssueType::Value,
        "Patient.name[0].family",
    ),
    (
        "wrong JSON type",
        "Patient",
        |v| v["active"] = json!("yes"),
        IssueType::Structure,
        "Patient.active",
    ),
    (
        "unknown element (strict)",
        "Patient",
        |v| v["favouriteColour"] = json!("blue"),
        IssueType::NotSupported,
        "Patient.favouriteColour",
    ),
    (
        "entry without request",
        "Bundle",
        |v| {
            v["entry"][1].as_object_mut().unwrap().remove("request");
        },
        IssueType::Required,
        "Bundle.entry[1].request",
    ),
    (
        "entry request without method",
        "Bundle",
        |v| {
            v["entry"][0]["request"]
                .as_object_mut()
                .unwrap()
                .remove("method");
        },
        IssueType::Required,
        "Bundle.entry[0].request.method",
    ),
    (
        "broken resource inside a Bundle",
        "Bundle",
        |v| v["entry"][1]["resource"]["status"] = json!("done"),
        IssueType::CodeInvalid,
        "Bundle.entry[1].resource.status",
    ),
    (
        "unknown element inside a Bundle",
        "Bundle",
        |v| v["entry"][0]["resource"]["nickname"] = json!("J"),
        IssueType::NotSupported,
        "Bundle.entry[0].resource.nickname",
    ),
];

#[test]
fn every_broken_resource_is_rejected_with_the_right_issue() {
    for rt in ["Patient", "Observation", "Immunization", "Bundle"] {
        let ok = serde_json::to_vec(&base(rt)).unwrap();
        if let Err(o) = parse_resource(&ok, Mode::Strict) {
            panic!("the intact {rt} is rejected: {o}");
        }
    }
    let mut wrong = Vec::new();
    for (what, rt, change, code, location) in CASES {
        let mut v = base(rt);
        change(&mut v);
        let bytes = serde_json::to_vec(&v).unwrap();
        match parse_resource(&bytes, Mode::Strict) {
            Ok(_) => wrong.push(format!("{what}: accepted")),
            Err(o) => {
                if !o
                    .errors()
                    .any(|i| i.code == *code && i.location == *location)
                {
                    wrong.push(format!(
                        "{what}: expected {} at {location}, got {o}",
                        code.code()
                    ));
                }
                let j = o.to_json();
                assert_eq!(j["resourceType"], "OperationOutcome");
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn lenient_mode_keeps_unknown_elements_as_warnings() {
    let mut v = base("Patient");
    v["favouriteColour"] = json!("blue");
    let p = parse_resource(&serde_json::to_vec(&v).unwrap(), Mode::Lenient).unwrap();
    assert_eq!(p.outcome.issues.len(), 1);
    assert_eq!(p.json, v);
    assert_eq!(p.resource_type(), "Patient");
    assert_eq!(p.id(), Some("p1"));
}
