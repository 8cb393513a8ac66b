//! qSOFA — the quick Sequential (Sepsis-related) Organ Failure Assessment.
//!
//! Sources: Singer M, Deutschman CS, Seymour CW, et al. *The Third International Consensus
//! Definitions for Sepsis and Septic Shock (Sepsis-3).* JAMA 2016;315(8):801–810. Seymour CW,
//! Liu VX, Iwashyna TJ, et al. *Assessment of Clinical Criteria for Sepsis.* JAMA
//! 2016;315(8):762–774 (altered mentation operationalised as a Glasgow Coma Scale below 15).
//!
//! One point each: respiratory rate **≥ 22/min**; systolic blood pressure **≤ 100 mmHg**;
//! **altered mentation** (GCS < 15, or stated). **≥ 2 is positive.** Values are compared as
//! given (no rounding).
//!
//! Missing criteria score nothing and are listed; `positive` is then judged on what is
//! present, which is what a "partial qSOFA" (e.g. respiratory rate and blood pressure only, as
//! in data sets without GCS) means.

use crate::input::{InputError, check, tally};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Inputs; every field may be missing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QsofaInput {
    /// Respiratory rate, /min.
    #[serde(default)]
    pub rr: Option<f64>,
    /// Systolic blood pressure, mmHg.
    #[serde(default)]
    pub sbp: Option<f64>,
    /// Glasgow Coma Scale, 3–15.
    #[serde(default)]
    pub gcs: Option<f64>,
    /// Altered mentation observed (instead of, or besides, a GCS).
    #[serde(default)]
    pub altered_mentation: Option<bool>,
}

/// An explained qSOFA result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Qsofa {
    /// Criteria met (0–3).
    pub score: u8,
    /// Each criterion evaluated (`rr`, `sbp`, `mentation`): met or not.
    pub criteria: BTreeMap<String, bool>,
    /// `score ≥ 2`.
    pub positive: bool,
    /// Criteria that could not be evaluated.
    pub missing: Vec<String>,
    /// All three criteria were evaluated.
    pub complete: bool,
}

/// Scores one set of observations.
pub fn score(input: &QsofaInput) -> Result<Qsofa, InputError> {
    let rr = check("rr", input.rr, 0.0, 120.0, "/min")?;
    let sbp = check("sbp", input.sbp, 0.0, 350.0, "mmHg")?;
    let gcs = check("gcs", input.gcs, 3.0, 15.0, "points")?;
    let mentation = match (gcs, input.altered_mentation) {
        (None, None) => None,
        (g, a) => Some(g.is_some_and(|g| g < 15.0) || a == Some(true)),
    };
    let (criteria, missing, score) = tally([
        ("rr", rr.map(|r| r >= 22.0)),
        ("sbp", sbp.map(|s| s <= 100.0)),
        ("mentation", mentation),
    ]);
    Ok(Qsofa {
        score,
        positive: score >= 2,
        complete: missing.is_empty(),
        criteria,
        missing,
    })
}
