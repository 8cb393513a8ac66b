//! `OperationOutcome`: what parsing and validation report, in the shape FHIR servers return.
//!
//! Severity and issue type codes are the R4 value sets `issue-severity` and `issue-type`
//! (<http://hl7.org/fhir/R4/valueset-issue-type.html>); locations are FHIRPath-like
//! (`Patient.birthDate`, `Bundle.entry[2].resource.status`), as R4 recommends for
//! `OperationOutcome.issue.expression`.

use serde_json::{Value, json};
use std::fmt;

/// `OperationOutcome.issue.severity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// `information`.
    Information,
    /// `warning`: accepted, but worth a look.
    Warning,
    /// `error`: the content is not acceptable.
    Error,
    /// `fatal`: processing could not continue.
    Fatal,
}

impl Severity {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Severity::Information => "information",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Fatal => "fatal",
        }
    }
}

/// `OperationOutcome.issue.code` (the subset Aorta reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueType {
    /// `structure`: not well-formed JSON, or not the shape of the resource.
    Structure,
    /// `required`: a required element is missing.
    Required,
    /// `value`: an element's value is not valid for its type (a date, an id, a decimal).
    Value,
    /// `code-invalid`: a code not in its value set, or of the wrong shape for its system.
    CodeInvalid,
    /// `invalid`: something else is wrong (a reference's format).
    Invalid,
    /// `not-supported`: an element or resource type Aorta does not know.
    NotSupported,
    /// `too-costly`: over a size limit.
    TooCostly,
    /// `informational`.
    Informational,
}

impl IssueType {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::CodeInvalid => "code-invalid",
            IssueType::Invalid => "invalid",
            IssueType::NotSupported => "not-supported",
            IssueType::TooCostly => "too-costly",
            IssueType::Informational => "informational",
        }
    }
}

/// One issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// How bad.
    pub severity: Severity,
    /// What kind.
    pub code: IssueType,
    /// Where, FHIRPath-like; empty for the whole input.
    pub location: String,
    /// What is wrong, for a person.
    pub diagnostics: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} at {}: {}",
            self.severity.code(),
            self.code.code(),
            if self.location.is_empty() {
                "(input)"
            } else {
                &self.location
            },
            self.diagnostics
        )
    }
}

/// A list of issues; an error when any is `error` or `fatal`.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct OperationOutcome {
    /// The issues, in the order found.
    pub issues: Vec<Issue>,
}

impl fmt::Display for OperationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl OperationOutcome {
    /// Adds an issue.
    pub fn push(
        &mut self,
        severity: Severity,
        code: IssueType,
        location: impl Into<String>,
        diagnostics: impl Into<String>,
    ) {
        self.issues.push(Issue {
            severity,
            code,
            location: location.into(),
            diagnostics: diagnostics.into(),
        });
    }

    /// Adds an error.
    pub fn error(
        &mut self,
        code: IssueType,
        location: impl Into<String>,
        diagnostics: impl Into<String>,
    ) {
        self.push(Severity::Error, code, location, diagnostics);
    }

    /// True when any issue is an error or fatal.
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|i| i.severity >= Severity::Error)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(|i| i.severity >= Severity::Error)
    }

    /// The FHIR R4 JSON form. An outcome with no issues reports one `information` issue, as
    /// `OperationOutcome.issue` is `1..*`.
    pub fn to_json(&self) -> Value {
        let issues: Vec<Value> = if self.issues.is_empty() {
            vec![
                json!({"severity": "information", "code": "informational", "diagnostics": "no issues"}),
            ]
        } else {
            self.issues
                .iter()
                .map(|i| {
                    let mut v = json!({
                        "severity": i.severity.code(),
                        "code": i.code.code(),
                        "diagnostics": i.diagnostics,
                    });
                    if !i.location.is_empty() {
                        v["expression"] = json!([i.location]);
                    }
                    v
                })
                .collect()
        };
        json!({"resourceType": "OperationOutcome", "issue": issues})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_form_is_a_valid_r4_operation_outcome() {
        let mut o = OperationOutcome::default();
        o.error(IssueType::Required, "Observation.status", "missing");
        o.push(
            Severity::Warning,
            IssueType::NotSupported,
            "Observation.foo",
            "unknown",
        );
        assert!(o.has_errors());
        let j = o.to_json();
        assert_eq!(j["issue"][0]["expression"][0], "Observation.status");
        assert_eq!(j["issue"][1]["severity"], "warning");
        let typed: fhir::r4::resources::Resource = serde_json::from_value(j.clone()).unwrap();
        assert_eq!(serde_json::to_value(typed).unwrap(), j);
        assert_eq!(
            OperationOutcome::default().to_json()["issue"][0]["code"],
            "informational"
        );
    }
}
