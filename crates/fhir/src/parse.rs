//! Reading FHIR R4 JSON: well-formedness, the typed model, unknown elements, validation.
//!
//! Unknown elements are found by comparing the input with the typed model's re-serialisation:
//! anything the model does not carry (a misspelt element, an element from another FHIR
//! release) is reported by its path. [`Mode::Strict`] rejects them; [`Mode::Lenient`] reports
//! them as warnings and keeps them, since callers store and forward the JSON as received.

use crate::outcome::{IssueType, OperationOutcome, Severity};
use fhir::r4::resources::Resource;
use serde_json::Value;

/// How unknown elements are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Reported as warnings; the JSON is kept as received.
    #[default]
    Lenient,
    /// Reported as errors.
    Strict,
}

/// A resource that parsed and validated without errors.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The JSON as received (unknown elements included).
    pub json: Value,
    /// The typed model.
    pub resource: Resource,
    /// Warnings (never errors).
    pub outcome: OperationOutcome,
}

impl Parsed {
    /// `resourceType`.
    pub fn resource_type(&self) -> &str {
        self.json
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `id`, if present.
    pub fn id(&self) -> Option<&str> {
        self.json.get("id").and_then(Value::as_str)
    }
}

/// Parses and validates one resource (a Bundle is one resource; its entries are checked too).
pub fn parse_resource(bytes: &[u8], mode: Mode) -> Result<Parsed, OperationOutcome> {
    let mut out = OperationOutcome::default();
    let json: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            out.push(
                Severity::Fatal,
                IssueType::Structure,
                "",
                format!("not valid JSON: {e}"),
            );
            return Err(out);
        }
    };
    from_json(json, mode)
}

/// As [`parse_resource`], from JSON already read.
pub fn from_json(json: Value, mode: Mode) -> Result<Parsed, OperationOutcome> {
    let mut out = OperationOutcome::default();
    let Some(rt) = json.get("resourceType").and_then(Value::as_str) else {
        out.push(
            Severity::Fatal,
            IssueType::Structure,
            "",
            "not a FHIR resource: a JSON object with resourceType is expected",
        );
        return Err(out);
    };
    let severity = match mode {
        Mode::Strict => Severity::Error,
        Mode::Lenient => Severity::Warning,
    };
    let rt = rt.to_string();
    crate::validate::walk_resource(&json, &rt, &mut out);
    let mut model = OperationOutcome::default();
    let resource = typed(&json, &rt, severity, &mut model);
    let required_found = out.issues.iter().any(|i| i.code == IssueType::Required);
    out.issues.extend(
        model
            .issues
            .into_iter()
            .filter(|i| !(required_found && i.diagnostics.starts_with("missing field"))),
    );
    let Some(resource) = resource else {
        return Err(out);
    };
    if out.has_errors() {
        return Err(out);
    }
    Ok(Parsed {
        json,
        resource,
        outcome: out,
    })
}

/// Types `json` with the model at `location`, reporting what the model rejects or loses and its
/// own checks. Entries of a Bundle (which the model keeps untyped) are typed one by one.
fn typed(
    json: &Value,
    location: &str,
    severity: Severity,
    out: &mut OperationOutcome,
) -> Option<Resource> {
    let resource: Resource = match serde_path_to_error::deserialize(json) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let rt = json
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if inner.starts_with("unknown variant") && (path == "." || path == "resourceType") {
                out.error(
                    IssueType::NotSupported,
                    format!("{location}.resourceType"),
                    format!("{rt:?} is not an R4 resource type"),
                );
                return None;
            }
            let at = if path == "." {
                locate(json)
                    .map(|l| format!("{location}{}", &l[rt.len()..]))
                    .unwrap_or_else(|| location.to_string())
            } else {
                format!("{location}.{path}")
            };
            out.error(IssueType::Structure, at, inner);
            return None;
        }
    };
    let back = serde_json::to_value(&resource).unwrap_or(Value::Null);
    diff(json, &back, &mut location.to_string(), severity, out);
    crate::validate::model_issues(&resource, location, out);
    if let Some(entries) = json.get("entry").and_then(Value::as_array)
        && json.get("resourceType").and_then(Value::as_str) == Some("Bundle")
    {
        for (i, e) in entries.iter().enumerate() {
            if let Some(r) = e.get("resource")
                && r.get("resourceType").and_then(Value::as_str).is_some()
            {
                typed(r, &format!("{location}.entry[{i}].resource"), severity, out);
            }
        }
    }
    Some(resource)
}

/// Finds which element of a resource the model rejects (serde loses the path inside the
/// model's tagged enum): the element whose removal makes the rest acceptable, followed into
/// arrays and nested resources: `Patient.active`, `Bundle.entry[3].resource.birthDate`.
fn locate(json: &Value) -> Option<String> {
    let obj = json.as_object()?;
    let rt = obj.get("resourceType")?.as_str()?;
    let parses = |o: serde_json::Map<String, Value>| {
        serde_json::from_value::<Resource>(Value::Object(o)).is_ok()
    };
    for (k, v) in obj {
        if k == "resourceType" {
            continue;
        }
        let mut without = obj.clone();
        without.remove(k);
        if !parses(without) {
            continue;
        }
        if let Value::Array(items) = v {
            for (i, item) in items.iter().enumerate() {
                let mut rest = items.clone();
                rest.remove(i);
                let mut with_rest = obj.clone();
                if rest.is_empty() {
                    with_rest.remove(k);
                } else {
                    with_rest.insert(k.clone(), Value::Array(rest));
                }
                if !parses(with_rest) {
                    continue;
                }
                let inner = item
                    .get("resource")
                    .map(|r| (r, ".resource"))
                    .or_else(|| item.get("resourceType").map(|_| (item, "")));
                if let Some((r, suffix)) = inner
                    && let Some(deeper) = locate(r)
                {
                    let tail = deeper.split_once('.').map_or("", |(_, t)| t);
                    let dot = if tail.is_empty() { "" } else { "." };
                    return Some(format!("{rt}.{k}[{i}]{suffix}{dot}{tail}"));
                }
                return Some(format!("{rt}.{k}[{i}]"));
            }
        }
        return Some(format!("{rt}.{k}"));
    }
    None
}

/// Reports what `input` has that `model` (its typed re-serialisation) lost. `at` is extended
/// and restored in place; only a reported difference copies it.
fn diff(
    input: &Value,
    model: &Value,
    at: &mut String,
    severity: Severity,
    out: &mut OperationOutcome,
) {
    match (input, model) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let base = at.len();
                at.push('.');
                at.push_str(k);
                match b.get(k) {
                    Some(w) => diff(v, w, at, severity, out),
                    // Nulls, empty strings and empty containers are the validator's to report.
                    None if is_empty(v) => {}
                    None => out.push(
                        severity,
                        IssueType::NotSupported,
                        at.clone(),
                        format!("unknown element {k:?}"),
                    ),
                }
                at.truncate(base);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                let base = at.len();
                use std::fmt::Write;
                let _ = write!(at, "[{i}]");
                diff(v, w, at, severity, out);
                at.truncate(base);
            }
        }
        (a, b) if a == b => {}
        (a, _) if is_empty(a) => {}
        _ => out.push(
            severity,
            IssueType::Value,
            at.clone(),
            "the value is not kept exactly by the R4 model".to_string(),
        ),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty() || a.iter().all(Value::is_null),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_elements_are_warnings_or_errors_by_mode() {
        let raw = br#"{"resourceType":"Patient","gender":"female","favouriteColour":"blue","name":[{"family":"X","nickname":"Y"}]}"#;
        let p = parse_resource(raw, Mode::Lenient).unwrap();
        let locs: Vec<&str> = p
            .outcome
            .issues
            .iter()
            .map(|i| i.location.as_str())
            .collect();
        assert_eq!(
            locs,
            ["Patient.favouriteColour", "Patient.name[0].nickname"]
        );
        assert_eq!(p.json["favouriteColour"], "blue", "kept as received");
        let e = parse_resource(raw, Mode::Strict).unwrap_err();
        assert_eq!(e.errors().count(), 2);
        assert!(e.issues.iter().all(|i| i.code == IssueType::NotSupported));
    }

    #[test]
    fn malformed_input_is_fatal_with_the_position() {
        let e = parse_resource(b"{\"resourceType\": \"Patient\",", Mode::Lenient).unwrap_err();
        assert_eq!(e.issues[0].severity, Severity::Fatal);
        assert!(e.issues[0].diagnostics.contains("line 1"), "{e}");
        let e = parse_resource(b"[1,2]", Mode::Lenient).unwrap_err();
        assert!(e.issues[0].diagnostics.contains("resourceType"), "{e}");
        let e = parse_resource(br#"{"resourceType":"Pateint"}"#, Mode::Lenient).unwrap_err();
        assert_eq!(e.issues[0].code, IssueType::NotSupported, "{e}");
        let e = parse_resource(
            br#"{"resourceType":"Patient","active":"yes"}"#,
            Mode::Lenient,
        )
        .unwrap_err();
        assert_eq!(e.issues[0].location, "Patient.active", "{e}");
        let e = parse_resource(
            br#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient"}},{"resource":{"resourceType":"Patient","active":"yes"}}]}"#,
            Mode::Lenient,
        )
        .unwrap_err();
        assert_eq!(
            e.issues[0].location, "Bundle.entry[1].resource.active",
            "{e}"
        );
    }
}
