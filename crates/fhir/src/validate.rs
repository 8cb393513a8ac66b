//! Validation of FHIR R4 resources (JSON plus the typed model) into an [`OperationOutcome`].
//!
//! Checked:
//! * **FHIR JSON rules** (R4 §2.6.2 "JSON Representation"): no `null` except as a placeholder in
//!   a primitive array that has a `_name` sibling, no empty objects or arrays, no empty strings,
//!   resource ids `[A-Za-z0-9\-\.]{1,64}`.
//! * **Required elements** (min cardinality 1 in the R4 resource definitions) of the resource
//!   types Aorta maps and ingests, including those inside backbone elements — [`REQUIRED`].
//! * **Required value-set bindings** (administrative-gender, observation-status, …): the model's
//!   own check (`fhir::validate::Validate`), which knows every R4 required binding.
//! * **Dates and times**: the R4 grammar and calendar for the temporal elements in
//!   [`temporal_kind`] ([`crate::datetime`]).
//! * **References** (R4 §2.3.0 "Resource References"): `Type/id[/_history/vid]`, an absolute
//!   URL ending so, `urn:uuid:`, `urn:oid:`, or `#local`.
//! * **Code shapes** for the systems Aorta emits: LOINC (`nnnnn-n` with its mod-10 check digit,
//!   LOINC Users' Guide, "Calculating Mod 10 check digits"; also `LP`/`LA`/`LG`/`LL` part and
//!   answer codes), SNOMED CT (6–18 digits with the Verhoeff check digit, SNOMED CT Technical
//!   Implementation Guide §6.6 "Check-digit"), and UCUM unit codes (printable ASCII without
//!   spaces, balanced brackets; The Unified Code for Units of Measure §2.1–§2.2).
//!
//! Not checked: invariants (FHIRPath constraints), profiles, terminology lookups.

use crate::datetime::{self, Kind};
use crate::outcome::{IssueType, OperationOutcome, Severity};
use fhir::validate::Validate;
use serde_json::{Map, Value};

/// Required elements per resource type: paths relative to the resource; `x[x]` is a choice
/// element; a path through an array applies to each item. Source: the R4 resource definitions
/// (min cardinality ≥ 1), <http://hl7.org/fhir/R4/resourcelist.html>.
pub const REQUIRED: &[(&str, &[&str])] = &[
    (
        "Bundle",
        &["type", "entry.request.method", "entry.request.url"],
    ),
    (
        "Claim",
        &[
            "status",
            "type",
            "use",
            "patient",
            "created",
            "provider",
            "priority",
            "insurance",
            "insurance.sequence",
            "insurance.focal",
            "insurance.coverage",
            "item.sequence",
            "item.productOrService",
            "careTeam.sequence",
            "careTeam.provider",
            "diagnosis.sequence",
            "diagnosis.diagnosis[x]",
        ],
    ),
    (
        "ClaimResponse",
        &[
            "status",
            "type",
            "use",
            "patient",
            "created",
            "insurer",
            "outcome",
            "item.itemSequence",
            "item.adjudication",
            "item.adjudication.category",
            "total.category",
            "total.amount",
        ],
    ),
    ("DiagnosticReport", &["status", "code", "media.link"]),
    (
        "Encounter",
        &[
            "status",
            "class",
            "statusHistory.status",
            "statusHistory.period",
            "classHistory.class",
            "classHistory.period",
            "diagnosis.condition",
            "location.location",
        ],
    ),
    (
        "Immunization",
        &[
            "status",
            "vaccineCode",
            "patient",
            "occurrence[x]",
            "performer.actor",
            "protocolApplied.doseNumber[x]",
        ],
    ),
    ("Location", &["position.longitude", "position.latitude"]),
    (
        "MedicationRequest",
        &["status", "intent", "medication[x]", "subject"],
    ),
    ("Observation", &["status", "code", "component.code"]),
    (
        "OperationOutcome",
        &["issue", "issue.severity", "issue.code"],
    ),
    ("Organization", &[]),
    (
        "Patient",
        &["communication.language", "link.other", "link.type"],
    ),
    ("Practitioner", &["qualification.code"]),
    (
        "Provenance",
        &[
            "target",
            "recorded",
            "agent",
            "agent.who",
            "entity.role",
            "entity.what",
        ],
    ),
    ("ServiceRequest", &["status", "intent", "subject"]),
    ("Specimen", &[]),
];

/// The temporal type of an element, by name (and, where the name is ambiguous, resource type).
/// Covers the temporal elements of the resource types in [`REQUIRED`] and their datatypes.
pub fn temporal_kind(resource_type: &str, name: &str) -> Option<Kind> {
    Some(match name {
        "birthDate" | "expirationDate" | "valueDate" | "servicedDate" => Kind::Date,
        // Claim.accident.date, ClaimResponse.payment.date
        "date" if matches!(resource_type, "Claim" | "ClaimResponse") => Kind::Date,
        "issued" | "lastUpdated" | "timestamp" | "valueInstant" | "effectiveInstant" => {
            Kind::Instant
        }
        "recorded" if resource_type == "Provenance" => Kind::Instant,
        "recorded" | "authoredOn" | "created" | "receivedTime" | "start" | "end" | "time"
        | "publicationDate" | "presentationDate" => Kind::DateTime,
        "valueTime" | "openingTime" | "closingTime" => Kind::Time,
        n if n.ends_with("DateTime") => Kind::DateTime,
        _ => return None,
    })
}

/// Everything wrong with `json` (one resource, possibly a Bundle), given its typed form.
/// (Resources inside a Bundle's entries are not typed by the model; [`crate::parse`] types and
/// checks each of them with [`model_issues`].)
pub fn validate(json: &Value, typed: &fhir::r4::resources::Resource) -> OperationOutcome {
    let mut out = OperationOutcome::default();
    let rt = json
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Resource");
    model_issues(typed, rt, &mut out);
    walk_resource(json, rt, &mut out);
    out
}

/// The model's own checks (required value-set bindings, primitive formats), at `location`.
pub fn model_issues(
    typed: &fhir::r4::resources::Resource,
    location: &str,
    out: &mut OperationOutcome,
) {
    for issue in typed.validate() {
        let code = if issue.message.contains("value set") {
            IssueType::CodeInvalid
        } else {
            IssueType::Value
        };
        let path = issue.path.trim_end_matches(".code");
        out.error(code, format!("{location}.{path}"), issue.message);
    }
}

pub(crate) fn walk_resource(json: &Value, location: &str, out: &mut OperationOutcome) {
    let Some(obj) = json.as_object() else {
        return;
    };
    let rt = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(id) = obj.get("id").and_then(Value::as_str)
        && !valid_id(id)
    {
        out.error(
            IssueType::Value,
            format!("{location}.id"),
            format!("{id:?} is not a valid id ([A-Za-z0-9-.], 1 to 64 characters)"),
        );
    }
    // Invariant bdl-3: a batch or transaction entry carries its request.
    if rt == "Bundle"
        && matches!(
            obj.get("type").and_then(Value::as_str),
            Some("batch" | "transaction")
        )
        && let Some(Value::Array(entries)) = obj.get("entry")
    {
        for (i, e) in entries.iter().enumerate() {
            if e.get("request").is_none() {
                out.error(
                    IssueType::Required,
                    format!("{location}.entry[{i}].request"),
                    "a batch or transaction entry needs a request (invariant bdl-3)",
                );
            }
        }
    }
    if let Some((_, required)) = REQUIRED.iter().find(|(t, _)| *t == rt) {
        for path in *required {
            let parts: Vec<&str> = path.split('.').collect();
            check_required(json, &parts, location, out);
        }
    }
    walk(obj, rt, &mut location.to_string(), out);
}

fn check_required(v: &Value, parts: &[&str], location: &str, out: &mut OperationOutcome) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let Some(obj) = v.as_object() else {
        return;
    };
    let found: Option<(&String, &Value)> = match first.strip_suffix("[x]") {
        Some(prefix) => obj.iter().find(|(k, _)| {
            k.strip_prefix(prefix)
                .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_uppercase()))
        }),
        None => obj.get_key_value(*first),
    };
    match (found, rest.is_empty()) {
        (None, true) => out.error(
            IssueType::Required,
            format!("{location}.{first}"),
            format!("{first} is required (minimum cardinality 1)"),
        ),
        (None, false) => {}
        (Some(_), true) => {}
        (Some((k, Value::Array(items))), false) => {
            for (i, item) in items.iter().enumerate() {
                check_required(item, rest, &format!("{location}.{k}[{i}]"), out);
            }
        }
        (Some((k, item)), false) => check_required(item, rest, &format!("{location}.{k}"), out),
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Walks an element. `loc` is the location so far, extended and restored in place so that a
/// clean resource costs no allocation per element (only a reported issue copies it).
fn walk(obj: &Map<String, Value>, rt: &str, loc: &mut String, out: &mut OperationOutcome) {
    if obj.is_empty() {
        out.error(
            IssueType::Structure,
            loc.clone(),
            "an object must not be empty",
        );
    }
    if let Some(Value::String(r)) = obj.get("reference")
        && !valid_reference(r)
    {
        out.error(
            IssueType::Invalid,
            format!("{loc}.reference"),
            format!(
                "{r:?} is not a reference (Type/id, an absolute URL, urn:uuid:, urn:oid: or #id)"
            ),
        );
    }
    check_coding(obj, loc, out);
    for (k, v) in obj {
        let base = loc.len();
        loc.push('.');
        loc.push_str(k);
        match v {
            Value::Null => out.error(
                IssueType::Structure,
                loc.clone(),
                "null is not allowed here",
            ),
            Value::String(s) => {
                if s.trim().is_empty() {
                    out.error(
                        IssueType::Value,
                        loc.clone(),
                        "a string must have non-whitespace content",
                    );
                } else if let Some(kind) = temporal_kind(rt, k)
                    && let Err(e) = datetime::check(kind, s)
                {
                    out.error(
                        IssueType::Value,
                        loc.clone(),
                        format!("{s:?} is not a valid {}: {e}", kind.name()),
                    );
                }
            }
            Value::Array(items) if items.is_empty() => {
                out.error(
                    IssueType::Structure,
                    loc.clone(),
                    "an array must not be empty",
                );
            }
            Value::Array(items) => {
                let has_twin = match k.strip_prefix('_') {
                    Some(b) => obj.contains_key(b),
                    None => items.iter().any(Value::is_null) && obj.contains_key(&format!("_{k}")),
                };
                for (i, item) in items.iter().enumerate() {
                    let here = loc.len();
                    use std::fmt::Write;
                    let _ = write!(loc, "[{i}]");
                    match item {
                        Value::Null if has_twin => {}
                        Value::Null => out.error(
                            IssueType::Structure,
                            loc.clone(),
                            "null is only allowed in a primitive array with a _ sibling",
                        ),
                        Value::Object(o) if o.contains_key("resourceType") => {
                            walk_resource(item, &loc.clone(), out);
                        }
                        Value::Object(o) => walk(o, rt, loc, out),
                        Value::String(s) => {
                            if let Some(kind) = temporal_kind(rt, k)
                                && let Err(e) = datetime::check(kind, s)
                            {
                                out.error(
                                    IssueType::Value,
                                    loc.clone(),
                                    format!("{s:?} is not a valid {}: {e}", kind.name()),
                                );
                            }
                        }
                        _ => {}
                    }
                    loc.truncate(here);
                }
            }
            Value::Object(o) if o.contains_key("resourceType") => {
                walk_resource(v, &loc.clone(), out);
            }
            Value::Object(o) => walk(o, rt, loc, out),
            _ => {}
        }
        loc.truncate(base);
    }
}

fn valid_reference(r: &str) -> bool {
    if let Some(local) = r.strip_prefix('#') {
        return local.is_empty() || valid_id(local);
    }
    if let Some(u) = r.strip_prefix("urn:uuid:") {
        return u.len() == 36
            && u.char_indices().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
    }
    if let Some(o) = r.strip_prefix("urn:oid:") {
        return !o.is_empty()
            && o.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    }
    // Any absolute URL may be a reference (it need not be a FHIR server's).
    if let Some(at) = r.find("://") {
        let scheme = &r[..at];
        return !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && r.len() > at + 3
            && !r.contains(char::is_whitespace);
    }
    let mut parts: Vec<&str> = r.split('/').collect();
    if parts.len() >= 4 && parts[parts.len() - 2] == "_history" {
        parts.truncate(parts.len() - 2);
    }
    let n = parts.len();
    if n < 2 {
        return false;
    }
    let (ty, id) = (parts[n - 2], parts[n - 1]);
    ty.starts_with(|c: char| c.is_ascii_uppercase())
        && ty.chars().all(|c| c.is_ascii_alphanumeric())
        && valid_id(id)
}

fn check_coding(obj: &Map<String, Value>, location: &str, out: &mut OperationOutcome) {
    let (Some(Value::String(system)), Some(Value::String(code))) =
        (obj.get("system"), obj.get("code"))
    else {
        return;
    };
    let problem = match system.as_str() {
        "http://loinc.org" if !loinc_ok(code) => Some(format!(
            "{code:?} is not a LOINC code (nnnnn-n with a valid check digit, or an LP/LA/LG/LL code)"
        )),
        "http://snomed.info/sct" if !snomed_expression_ok(code) => Some(format!(
            "{code:?} is not a SNOMED CT identifier or expression (concept ids of 6 to 18 digits with a valid Verhoeff check digit)"
        )),
        "http://unitsofmeasure.org" if !ucum_ok(code) => Some(format!(
            "{code:?} is not a UCUM code (printable ASCII, no spaces, balanced brackets)"
        )),
        _ => None,
    };
    if let Some(p) = problem {
        out.push(
            Severity::Error,
            IssueType::CodeInvalid,
            format!("{location}.code"),
            p,
        );
    }
}

/// A LOINC code: `nnnnn-n` with the LOINC mod-10 check digit, or a part/answer/group code.
pub fn loinc_ok(code: &str) -> bool {
    let Some((body, check)) = code.split_once('-') else {
        return false;
    };
    let check_ok = check.len() == 1 && check.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = body
        .strip_prefix("LP")
        .or_else(|| body.strip_prefix("LA"))
        .or_else(|| body.strip_prefix("LG"))
        .or_else(|| body.strip_prefix("LL"))
    {
        return check_ok && !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    }
    if !check_ok || body.is_empty() || body.len() > 7 || !body.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // Luhn-style: from the right, every other digit (starting with the rightmost) doubled.
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                x / 10 + x % 10
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10 == u32::from(check.as_bytes()[0] - b'0')
}

/// A SNOMED CT identifier: 6–18 digits, no leading zero, valid Verhoeff check digit.
pub fn snomed_ok(code: &str) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    if !(6..=18).contains(&code.len())
        || !code.bytes().all(|b| b.is_ascii_digit())
        || code.starts_with('0')
    {
        return false;
    }
    let c = code.bytes().rev().enumerate().fold(0u8, |c, (i, b)| {
        D[c as usize][P[i % 8][(b - b'0') as usize] as usize]
    });
    c == 0
}

/// A SNOMED CT concept id, or a compositional-grammar expression (`71341001:272741003=7771000`)
/// whose concept ids are all valid.
pub fn snomed_expression_ok(code: &str) -> bool {
    if snomed_ok(code) {
        return true;
    }
    let ids: Vec<&str> = code
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .collect();
    code.contains([':', '=', '+'])
        && !ids.is_empty()
        && code
            .chars()
            .all(|c| c.is_ascii_digit() || ":=+,{}()| ".contains(c))
        && ids.iter().all(|t| snomed_ok(t))
}

/// A plausible UCUM code (the syntax's character rules; not a full unit parse).
pub fn ucum_ok(code: &str) -> bool {
    if code.is_empty() || !code.bytes().all(|b| (33..=126).contains(&b)) {
        return false;
    }
    let mut depth_round = 0i32;
    let mut depth_square = 0i32;
    let mut in_annotation = false;
    for b in code.bytes() {
        match b {
            b'{' if !in_annotation => in_annotation = true,
            b'}' if in_annotation => in_annotation = false,
            b'{' | b'}' => return false,
            _ if in_annotation => {}
            b'(' => depth_round += 1,
            b')' => depth_round -= 1,
            b'[' => depth_square += 1,
            b']' => depth_square -= 1,
            _ => {}
        }
        if depth_round < 0 || depth_square < 0 {
            return false;
        }
    }
    depth_round == 0 && depth_square == 0 && !in_annotation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loinc_check_digits() {
        for ok in [
            "8867-4",
            "2345-7",
            "718-7",
            "94500-6",
            "LP31755-9",
            "LA6576-8",
        ] {
            assert!(loinc_ok(ok), "{ok}");
        }
        for bad in ["8867-5", "8867", "abc-1", "12345678-0", "-4", "8867-44"] {
            assert!(!loinc_ok(bad), "{bad}");
        }
    }

    #[test]
    fn snomed_check_digits() {
        for ok in ["22298006", "38341003", "27268008", "125097000", "404684003"] {
            assert!(snomed_ok(ok), "{ok}");
        }
        for bad in ["22298007", "12345", "022298006", "2229800a"] {
            assert!(!snomed_ok(bad), "{bad}");
        }
        assert!(snomed_expression_ok("71341001:272741003=7771000"));
        assert!(!snomed_expression_ok("71341001:272741003=7771001"));
        assert!(!snomed_expression_ok("abc"));
    }

    #[test]
    fn ucum_shapes() {
        for ok in [
            "mm[Hg]",
            "/min",
            "kg/m2",
            "10*3/uL",
            "{beats}/min",
            "%",
            "mg/dL",
            "Cel",
        ] {
            assert!(ucum_ok(ok), "{ok}");
        }
        for bad in ["", "mm Hg", "mm[Hg", "kg)", "{a", "µg"] {
            assert!(!ucum_ok(bad), "{bad}");
        }
    }

    #[test]
    fn references() {
        for ok in [
            "Patient/123",
            "Patient/a.b-c/_history/2",
            "http://example.org/fhir/Observation/1",
            "http://www.optdocs.com/prescription/12345",
            "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
            "urn:oid:1.2.840.113619",
            "#p1",
        ] {
            assert!(valid_reference(ok), "{ok}");
        }
        for bad in [
            "Patient",
            "patient/1",
            "Patient/",
            "Patient/a b",
            "http:// x",
            "urn:uuid:123",
            "urn:oid:1..2",
        ] {
            assert!(!valid_reference(bad), "{bad}");
        }
    }
}
