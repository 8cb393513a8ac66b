//! FHIR operators: `hl7-to-fhir` (HL7 v2 bytes → FHIR R4, via `aorta_fhir::v2`) and
//! `validate` (FHIR R4 JSON → passed on, or dead-lettered with its OperationOutcome).

use super::{OpResult, Operator, Out, reject};
use crate::config::FhirEmit;
use crate::event::Event;
use bytes::Bytes;
use serde_json::Value;

/// `op = "hl7-to-fhir"`.
pub struct Hl7ToFhir {
    emit: FhirEmit,
    options: aorta_fhir::v2::Options,
}

impl Hl7ToFhir {
    /// Builds it; `default_offset` must be `Z` or `±hh:mm`.
    pub fn new(emit: FhirEmit, default_offset: Option<String>) -> Result<Hl7ToFhir, String> {
        if let Some(o) = &default_offset
            && !aorta_fhir::datetime::is_offset(o)
        {
            return Err(format!("default_offset {o:?} must be Z or ±hh:mm"));
        }
        Ok(Hl7ToFhir {
            emit,
            options: aorta_fhir::v2::Options { default_offset },
        })
    }
}

impl Operator for Hl7ToFhir {
    fn kind(&self) -> &'static str {
        "hl7-to-fhir"
    }
    fn describe(&self) -> String {
        format!("hl7-to-fhir emit {:?}", self.emit)
    }
    fn process(&mut self, e: Event, out: &mut Out) -> OpResult {
        let converted = match aorta_hl7::parse(&e.raw) {
            Ok(msg) => aorta_fhir::v2::convert(&msg, &self.options).map_err(|x| x.to_string()),
            Err(x) => Err(format!("not HL7 v2: {x}")),
        };
        let bundle = match converted {
            Ok(b) => b,
            Err(reason) => return reject(e, reason),
        };
        match self.emit {
            FhirEmit::Bundle => out.next(e.derive(bundle)),
            FhirEmit::Resources => {
                let entries = bundle
                    .get("entry")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for entry in entries {
                    let Some(resource) = entry.get("resource") else {
                        continue;
                    };
                    let mut d = e.derive(resource.clone());
                    if let Some(id) = resource.get("id").and_then(Value::as_str) {
                        d.key = Some(Bytes::copy_from_slice(id.as_bytes()));
                    }
                    out.next(d);
                }
            }
        }
        Ok(())
    }
}

/// `op = "validate"`.
pub struct ValidateFhir {
    mode: aorta_fhir::Mode,
}

impl ValidateFhir {
    /// Builds it.
    pub fn new(strict: bool) -> ValidateFhir {
        ValidateFhir {
            mode: if strict {
                aorta_fhir::Mode::Strict
            } else {
                aorta_fhir::Mode::Lenient
            },
        }
    }
}

impl Operator for ValidateFhir {
    fn kind(&self) -> &'static str {
        "validate"
    }
    fn describe(&self) -> String {
        format!("validate FHIR R4 ({:?})", self.mode)
    }
    fn process(&mut self, e: Event, out: &mut Out) -> OpResult {
        let Some(json) = &e.json else {
            return reject(e, "validate needs a JSON payload");
        };
        match aorta_fhir::from_json(json.clone(), self.mode) {
            Ok(_) => {
                out.next(e);
                Ok(())
            }
            Err(outcome) => reject(e, format!("invalid FHIR: {outcome}")),
        }
    }
}
