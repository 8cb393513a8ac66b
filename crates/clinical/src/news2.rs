//! NEWS2 — the National Early Warning Score 2.
//!
//! Source: Royal College of Physicians. *National Early Warning Score (NEWS) 2: Standardising
//! the assessment of acute-illness severity in the NHS.* Updated report of a working party.
//! London: RCP, December 2017. ISBN 978-1-86016-682-2. **Chart 1** (the scoring system) and
//! **Chart 4** (clinical response to trigger thresholds).
//!
//! Chart 1, as implemented (each row's bands cover every value at the chart's resolution):
//!
//! | parameter | 3 | 2 | 1 | 0 | 1 | 2 | 3 |
//! |---|---|---|---|---|---|---|---|
//! | respiration rate /min | ≤ 8 | | 9–11 | 12–20 | | 21–24 | ≥ 25 |
//! | SpO₂ scale 1 % | ≤ 91 | 92–93 | 94–95 | ≥ 96 | | | |
//! | SpO₂ scale 2 % | ≤ 83 | 84–85 | 86–87 | 88–92, or ≥ 93 on air | 93–94 on oxygen | 95–96 on oxygen | ≥ 97 on oxygen |
//! | air or oxygen | | oxygen | | air | | | |
//! | systolic BP mmHg | ≤ 90 | 91–100 | 101–110 | 111–219 | | | ≥ 220 |
//! | pulse /min | ≤ 40 | | 41–50 | 51–90 | 91–110 | 111–130 | ≥ 131 |
//! | consciousness | | | | Alert | | | new Confusion, Voice, Pain, Unresponsive |
//! | temperature °C | ≤ 35.0 | | 35.1–36.0 | 36.1–38.0 | 38.1–39.0 | ≥ 39.1 | |
//!
//! * **Scale 2** is only for patients with confirmed hypercapnic respiratory failure and a
//!   prescribed target range of 88–92 % (the RCP's footnote); the caller says which scale
//!   applies (`spo2_scale`, default 1).
//! * The +2 for supplemental oxygen is added in addition to the SpO₂ sub-score, on both
//!   scales.
//! * **Resolution**: respiration rate, SpO₂, systolic BP and pulse are rounded to whole numbers
//!   and temperature to 0.1 °C, halves up, before banding (our rule: the chart is written at
//!   that resolution and does not say how finer measurements fall).
//! * **Scope**: NEWS2 is not validated for under-16s or in pregnancy; when the input says so
//!   ([`News2Input::age`] < 16 or [`News2Input::pregnant`]), the result is
//!   [`News2::not_applicable`] with the reason, and no total.
//!
//! Chart 4 bands ([`RiskBand`]): aggregate 0–4 **low**; a score of 3 in any single parameter
//! (with an aggregate below 5) **low–medium**; 5–6 **medium** (the key threshold for an urgent
//! response); ≥ 7 **high** (emergency response).

use crate::input::{InputError, check, round_to};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// ACVPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consciousness {
    /// Alert.
    #[serde(rename = "A", alias = "alert")]
    Alert,
    /// New confusion (or delirium).
    #[serde(rename = "C", alias = "confusion")]
    Confusion,
    /// Responds to voice.
    #[serde(rename = "V", alias = "voice")]
    Voice,
    /// Responds to pain.
    #[serde(rename = "P", alias = "pain")]
    Pain,
    /// Unresponsive.
    #[serde(rename = "U", alias = "unresponsive")]
    Unresponsive,
}

/// One set of observations. Every field may be missing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct News2Input {
    /// Respiration rate, breaths/min.
    #[serde(default)]
    pub rr: Option<f64>,
    /// Oxygen saturation, %.
    #[serde(default)]
    pub spo2: Option<f64>,
    /// 1 (default) or 2 (confirmed hypercapnic respiratory failure, target 88–92 %).
    #[serde(default)]
    pub spo2_scale: Option<u8>,
    /// On supplemental oxygen (any device or flow) rather than air.
    #[serde(default)]
    pub on_oxygen: Option<bool>,
    /// Systolic blood pressure, mmHg.
    #[serde(default)]
    pub sbp: Option<f64>,
    /// Pulse, beats/min.
    #[serde(default)]
    pub hr: Option<f64>,
    /// ACVPU.
    #[serde(default)]
    pub consciousness: Option<Consciousness>,
    /// Temperature, °C.
    #[serde(default)]
    pub temp: Option<f64>,
    /// Age in years (scope check only).
    #[serde(default)]
    pub age: Option<f64>,
    /// Known to be pregnant (scope check only).
    #[serde(default)]
    pub pregnant: Option<bool>,
}

/// Chart 4's clinical-risk bands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RiskBand {
    /// Aggregate 0–4, no single parameter at 3.
    Low,
    /// A single parameter at 3, aggregate below 5: urgent ward-based response.
    LowMedium,
    /// Aggregate 5–6: urgent response.
    Medium,
    /// Aggregate ≥ 7: emergency response.
    High,
}

/// An explained NEWS2 result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct News2 {
    /// Aggregate score 0–20 (`None` when not applicable). With missing parameters it is the
    /// sum of those present: a lower bound.
    pub total: Option<u8>,
    /// Each scored parameter's sub-score (`rr`, `spo2`, `air_or_oxygen`, `sbp`, `hr`,
    /// `consciousness`, `temp`).
    pub subscores: BTreeMap<String, u8>,
    /// The Chart 4 band of `total` (`None` when not applicable).
    pub band: Option<RiskBand>,
    /// Whether any single parameter scored 3.
    pub any_parameter_3: bool,
    /// The SpO₂ scale used.
    pub spo2_scale: u8,
    /// Parameters that were not given.
    pub missing: Vec<String>,
    /// All seven parameters were given.
    pub complete: bool,
    /// Why NEWS2 was not computed (under 16, pregnancy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_applicable: Option<String>,
}

fn rr_score(rr: f64) -> u8 {
    match round_to(rr, 0) {
        x if x <= 8.0 => 3,
        x if x <= 11.0 => 1,
        x if x <= 20.0 => 0,
        x if x <= 24.0 => 2,
        _ => 3,
    }
}

fn spo2_scale1(s: f64) -> u8 {
    match round_to(s, 0) {
        x if x <= 91.0 => 3,
        x if x <= 93.0 => 2,
        x if x <= 95.0 => 1,
        _ => 0,
    }
}

fn spo2_scale2(s: f64, on_oxygen: bool) -> u8 {
    match round_to(s, 0) {
        x if x <= 83.0 => 3,
        x if x <= 85.0 => 2,
        x if x <= 87.0 => 1,
        x if x <= 92.0 => 0,
        _ if !on_oxygen => 0,
        x if x <= 94.0 => 1,
        x if x <= 96.0 => 2,
        _ => 3,
    }
}

fn sbp_score(sbp: f64) -> u8 {
    match round_to(sbp, 0) {
        x if x <= 90.0 => 3,
        x if x <= 100.0 => 2,
        x if x <= 110.0 => 1,
        x if x <= 219.0 => 0,
        _ => 3,
    }
}

fn hr_score(hr: f64) -> u8 {
    match round_to(hr, 0) {
        x if x <= 40.0 => 3,
        x if x <= 50.0 => 1,
        x if x <= 90.0 => 0,
        x if x <= 110.0 => 1,
        x if x <= 130.0 => 2,
        _ => 3,
    }
}

fn temp_score(t: f64) -> u8 {
    match round_to(t, 1) {
        x if x <= 35.0 => 3,
        x if x <= 36.0 => 1,
        x if x <= 38.0 => 0,
        x if x <= 39.0 => 1,
        _ => 2,
    }
}

/// The Chart 4 band of an aggregate.
pub fn band(total: u8, any_parameter_3: bool) -> RiskBand {
    match total {
        t if t >= 7 => RiskBand::High,
        t if t >= 5 => RiskBand::Medium,
        _ if any_parameter_3 => RiskBand::LowMedium,
        _ => RiskBand::Low,
    }
}

impl News2 {
    /// The result for a patient out of NEWS2's scope.
    pub fn not_applicable(reason: impl Into<String>, spo2_scale: u8) -> News2 {
        News2 {
            total: None,
            subscores: BTreeMap::new(),
            band: None,
            any_parameter_3: false,
            spo2_scale,
            missing: Vec::new(),
            complete: false,
            not_applicable: Some(reason.into()),
        }
    }
}

/// Scores one set of observations.
pub fn score(input: &News2Input) -> Result<News2, InputError> {
    let scale = input.spo2_scale.unwrap_or(1);
    if !matches!(scale, 1 | 2) {
        return Err(InputError::Invalid(format!(
            "spo2_scale = {scale}: NEWS2 has scale 1 and scale 2"
        )));
    }
    let rr = check("rr", input.rr, 0.0, 120.0, "/min")?;
    let spo2 = check("spo2", input.spo2, 0.0, 100.0, "%")?;
    let sbp = check("sbp", input.sbp, 0.0, 350.0, "mmHg")?;
    let hr = check("hr", input.hr, 0.0, 350.0, "/min")?;
    let temp = check("temp", input.temp, 20.0, 45.0, "°C")?;
    let age = check("age", input.age, 0.0, 130.0, "years")?;
    if let Some(a) = age
        && a < 16.0
    {
        return Ok(News2::not_applicable(
            format!(
                "age {a} is under 16: NEWS2 is not validated for children (use a paediatric score)"
            ),
            scale,
        ));
    }
    if input.pregnant == Some(true) {
        return Ok(News2::not_applicable(
            "pregnant: NEWS2 is not validated in pregnancy (use an obstetric score)",
            scale,
        ));
    }
    let mut subscores = BTreeMap::new();
    let mut missing = Vec::new();
    let mut put = |name: &str, s: Option<u8>| match s {
        Some(s) => {
            subscores.insert(name.to_string(), s);
        }
        None => missing.push(name.to_string()),
    };
    put("rr", rr.map(rr_score));
    put(
        "spo2",
        spo2.and_then(|s| match scale {
            1 => Some(spo2_scale1(s)),
            // Scale 2 above 92 % depends on air or oxygen; without it the band is unknown.
            _ => match input.on_oxygen {
                Some(o) => Some(spo2_scale2(s, o)),
                None if round_to(s, 0) <= 92.0 => Some(spo2_scale2(s, false)),
                None => None,
            },
        }),
    );
    put(
        "air_or_oxygen",
        input.on_oxygen.map(|o| if o { 2 } else { 0 }),
    );
    put("sbp", sbp.map(sbp_score));
    put("hr", hr.map(hr_score));
    put(
        "consciousness",
        input
            .consciousness
            .map(|c| if c == Consciousness::Alert { 0 } else { 3 }),
    );
    put("temp", temp.map(temp_score));
    let total: u8 = subscores.values().sum();
    let any3 = subscores.values().any(|&s| s == 3);
    Ok(News2 {
        total: Some(total),
        band: Some(band(total, any3)),
        any_parameter_3: any3,
        complete: missing.is_empty(),
        subscores,
        spo2_scale: scale,
        missing,
        not_applicable: None,
    })
}
