//! SIRS — the systemic inflammatory response syndrome criteria.
//!
//! Source: Bone RC, Balk RA, Cerra FB, et al. *Definitions for sepsis and organ failure and
//! guidelines for the use of innovative therapies in sepsis.* The ACCP/SCCM Consensus
//! Conference Committee. Chest 1992;101(6):1644–1655.
//!
//! Four criteria, one point each, **≥ 2 is SIRS**:
//! * temperature **> 38 °C or < 36 °C**;
//! * heart rate **> 90/min**;
//! * respiratory rate **> 20/min or PaCO₂ < 32 mmHg** (4.3 kPa);
//! * white cell count **> 12 ×10⁹/L or < 4 ×10⁹/L, or > 10 % immature (band) forms**.
//!
//! The inequalities are strict (unlike NEWS2's inclusive bands); values are compared as given.
//! A criterion with two inputs is met when either is; it is undetermined (listed in
//! `missing`) only when none of its inputs is met and at least one is absent.

use crate::input::{InputError, check, tally};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Inputs; every field may be missing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SirsInput {
    /// Temperature, °C.
    #[serde(default)]
    pub temp: Option<f64>,
    /// Heart rate, /min.
    #[serde(default)]
    pub hr: Option<f64>,
    /// Respiratory rate, /min.
    #[serde(default)]
    pub rr: Option<f64>,
    /// PaCO₂, mmHg.
    #[serde(default)]
    pub paco2: Option<f64>,
    /// White cell count, ×10⁹/L (= ×10³/µL).
    #[serde(default)]
    pub wbc: Option<f64>,
    /// Immature (band) neutrophils, % of white cells.
    #[serde(default)]
    pub bands_pct: Option<f64>,
}

/// An explained SIRS result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sirs {
    /// Criteria met (0–4).
    pub score: u8,
    /// Each determined criterion (`temp`, `hr`, `resp`, `wbc`): met or not.
    pub criteria: BTreeMap<String, bool>,
    /// `score ≥ 2`.
    pub positive: bool,
    /// Criteria that could not be determined.
    pub missing: Vec<String>,
    /// Every criterion was determined.
    pub complete: bool,
}

/// Met if any part is met; not met if every part is present and unmet; else undetermined.
fn criterion(parts: &[Option<bool>]) -> Option<bool> {
    if parts.contains(&Some(true)) {
        Some(true)
    } else if parts.iter().all(Option::is_some) {
        Some(false)
    } else {
        None
    }
}

/// Evaluates one set of observations.
pub fn score(input: &SirsInput) -> Result<Sirs, InputError> {
    let temp = check("temp", input.temp, 20.0, 45.0, "°C")?;
    let hr = check("hr", input.hr, 0.0, 350.0, "/min")?;
    let rr = check("rr", input.rr, 0.0, 120.0, "/min")?;
    let paco2 = check("paco2", input.paco2, 5.0, 250.0, "mmHg")?;
    let wbc = check("wbc", input.wbc, 0.0, 1000.0, "×10⁹/L")?;
    let bands = check("bands_pct", input.bands_pct, 0.0, 100.0, "%")?;
    let (criteria, missing, score) = tally([
        ("temp", temp.map(|t| !(36.0..=38.0).contains(&t))),
        ("hr", hr.map(|h| h > 90.0)),
        (
            "resp",
            criterion(&[rr.map(|r| r > 20.0), paco2.map(|p| p < 32.0)]),
        ),
        (
            "wbc",
            criterion(&[
                wbc.map(|w| !(4.0..=12.0).contains(&w)),
                bands.map(|b| b > 10.0),
            ]),
        ),
    ]);
    Ok(Sirs {
        score,
        positive: score >= 2,
        complete: missing.is_empty(),
        criteria,
        missing,
    })
}
