//! # aorta-clinical — clinical scores
//!
//! Owns the early-warning scores Aorta's clinical applications compute, as pure functions of
//! one patient's observations:
//!
//! | module | score | source |
//! |---|---|---|
//! | [`news2`] | NEWS2 total, sub-scores, clinical-risk band | Royal College of Physicians, *National Early Warning Score (NEWS) 2*, December 2017, Chart 1 and Chart 4 |
//! | [`qsofa`] | qSOFA (0–3, positive at ≥ 2) | Singer et al., Sepsis-3, *JAMA* 2016;315(8):801–810; Seymour et al., *JAMA* 2016;315(8):762–774 |
//! | [`sirs`] | SIRS criteria (0–4, positive at ≥ 2) | Bone et al., ACCP/SCCM Consensus Conference, *Chest* 1992;101:1644–1655 |
//! | [`elr`] | electronic lab reporting: the ELR rules (named, error or warning), result normalisation (SNOMED), jurisdiction | HL7 v2.5.1 ELR IG R1; NIST COVID-19 ELR profiles; HHS CARES Act §18115 guidance (2020) |
//! | [`surveillance`] | per-patient latest values (LOINC list, staleness), the three scores on every change, alerts with suppression and escalation | the above |
//!
//! ## Invariants
//! * Every result explains itself: each parameter's sub-score (or criterion), which inputs were
//!   missing, and whether the result is complete. A missing parameter is never taken as normal
//!   silently: it scores nothing, is listed in `missing`, and `complete` is false — so a
//!   partial total is a lower bound of the full one (every sub-score is ≥ 0).
//! * Physiologically impossible inputs (negative rates, SpO₂ above 100 %, a temperature that
//!   looks like Fahrenheit) are errors, never scores.
//! * Band edges follow the published charts exactly; the rounding of measured values to the
//!   charts' resolution is stated in each module.
//!
//! ## Must not depend on
//! The log, pipelines, I/O or async runtimes: numbers (or, for [`elr`], a parsed HL7 v2
//! message from `aorta-hl7`, itself pure) in, explained scores and findings out. Staleness
//! (how old a value may be) belongs to the caller that keeps the latest values.

pub mod elr;
pub mod news2;
pub mod qsofa;
pub mod sirs;
pub mod surveillance;

mod input;

pub use input::InputError;
pub use news2::{Consciousness, News2, News2Input, RiskBand};
pub use qsofa::{Qsofa, QsofaInput};
pub use sirs::{Sirs, SirsInput};
