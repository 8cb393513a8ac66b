//! # aorta-fhir — FHIR R4
//!
//! Owns FHIR R4 as Aorta reads, checks and writes it:
//!
//! | module | what it owns |
//! |---|---|
//! | [`model`] | the typed R4 model (every resource and datatype), from the `fhir` crate |
//! | [`parse`] | JSON in: well-formedness, the typed model, unknown elements by mode |
//! | [`validate`] | structural, temporal, reference and code-shape checks |
//! | [`outcome`] | [`OperationOutcome`]: severity, issue type, FHIRPath-like location |
//! | [`datetime`] | the R4 date/time grammar and HL7 v2 DTM conversion (timezones) |
//! | [`v2`] | HL7 v2 → FHIR R4 mapping: one message → one `batch` Bundle of `PUT`s |
//!
//! ## Why the `fhir` crate for the model
//! The typed model is `fhir` 4.1.2 (R4 only): it covers all 146 R4 resources, keeps decimals
//! exactly (`120.50` stays `120.50`), round-trips 603 of the 604 official R4 examples
//! JSON-equal (the 604th, an ExampleScenario, breaks a cardinality rule of its own type), and
//! builds on rustc 1.95 (4.2 needs 1.96). It does not reject unknown elements, missing
//! required elements or malformed dates; [`parse`] and [`validate`] add those. Writing our own
//! subset would have meant ~40 datatypes by hand for the 16 resource types we use.
//!
//! ## Invariants
//! * Nothing is lost silently: an element the model does not carry is reported (warning in
//!   lenient mode, error in strict mode), and callers keep the JSON as received.
//! * Every error is an [`OperationOutcome`] issue with a location, never a panic.
//!
//! ## Must not depend on
//! The log, I/O or async runtimes: JSON (and HL7 v2) in, resources and outcomes out.

pub mod datetime;
pub mod outcome;
pub mod parse;
pub mod v2;
pub mod validate;

/// The FHIR R4 model (`fhir::r4`): `model::resources::Patient`, `model::types::HumanName`, …
pub use fhir::r4 as model;
pub use outcome::{Issue, IssueType, OperationOutcome, Severity};
pub use parse::{Mode, Parsed, from_json, parse_resource};
