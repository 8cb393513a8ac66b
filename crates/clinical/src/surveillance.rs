//! Early-warning surveillance: per patient, the latest value of each parameter with its time
//! and provenance; on every change, NEWS2, qSOFA and SIRS over the values still fresh; alerts
//! with suppression and escalation. Pure state — the caller feeds observations in event-time
//! order per patient and sends the alerts wherever it likes.
//!
//! ## Observations used (LOINC)
//! | parameter | LOINC | unit expected |
//! |---|---|---|
//! | respiratory rate | 9279-1 | /min |
//! | heart rate | 8867-4 | /min |
//! | body temperature | 8310-5 (also 8331-1 oral, 8332-9 rectal, 8328-7 axillary, 8333-7 tympanic) | Cel (`[degF]` converted) |
//! | systolic BP | 8480-6, alone or as a component of the BP panel 85354-9 / 55284-4 | mm[Hg] |
//! | SpO₂ | 59408-5 (pulse oximetry), 2708-6 (arterial O₂ saturation) | % |
//! | inspired O₂ | 3150-0 (FiO₂; > 21 % or > 0.21 means supplemental oxygen), 3151-8 (O₂ flow; > 0 means oxygen) | % or fraction; L/min |
//! | consciousness | 67775-7 (level of responsiveness: A, C, V, P, U as code or text) | — |
//! | Glasgow Coma Scale | 9269-2 | {score} |
//! | lactate | 2524-7, 32693-4 | mmol/L |
//! | white cells | 6690-2, 26464-8 | 10*3/uL = 10⁹/L |
//! | PaCO₂ | 2019-8 | mm[Hg] |
//! | band neutrophils | 764-1, 26508-2 | % |
//! | pregnancy status | 82810-3 (SNOMED 77386006 pregnant) | — |
//!
//! A GCS without an ACVPU observation counts for NEWS2 as Alert at 15 and as new confusion
//! below 15 (our mapping; the RCP chart uses ACVPU only). Lactate is carried in the alert's
//! evidence but scores in none of the three.
//!
//! ## Stale and missing values
//! A value counts while it is younger than its parameter's maximum age at the time of the
//! evaluation (defaults: vital signs 4 h, consciousness/GCS and oxygen 12 h, laboratory values
//! 24 h — Aorta's defaults, not from a guideline; configurable). Older or absent values are
//! missing: they score nothing and are listed, so a total is a lower bound.
//!
//! ## Alerts
//! A score's level is NEWS2's Chart 4 band (1 low–medium, 2 medium, 3 high) or the qSOFA/SIRS
//! point count. An alert is raised when the level reaches the configured threshold and either
//! no alert for that score was raised within the suppression window, or the level is higher
//! than the last alert's (escalation).

use crate::news2::{self, Consciousness, News2, News2Input, RiskBand};
use crate::qsofa::{self, Qsofa, QsofaInput};
use crate::sirs::{self, Sirs, SirsInput};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The parameters kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// Respiratory rate.
    Rr,
    /// Heart rate.
    Hr,
    /// Temperature, °C.
    Temp,
    /// Systolic blood pressure.
    Sbp,
    /// Oxygen saturation.
    Spo2,
    /// 1 when on supplemental oxygen, 0 on air.
    OnOxygen,
    /// ACVPU as 0 = A, 1 = C, 2 = V, 3 = P, 4 = U.
    Consciousness,
    /// Glasgow Coma Scale.
    Gcs,
    /// Lactate, mmol/L.
    Lactate,
    /// White cell count, 10⁹/L.
    Wbc,
    /// PaCO₂, mmHg.
    Paco2,
    /// Band neutrophils, %.
    BandsPct,
    /// 1 when pregnant.
    Pregnant,
}

impl Param {
    /// The parameter of a LOINC code, if it is one we use.
    pub fn from_loinc(code: &str) -> Option<Param> {
        Some(match code {
            "9279-1" => Param::Rr,
            "8867-4" => Param::Hr,
            "8310-5" | "8331-1" | "8332-9" | "8328-7" | "8333-7" => Param::Temp,
            "8480-6" => Param::Sbp,
            "59408-5" | "2708-6" => Param::Spo2,
            "3150-0" | "3151-8" => Param::OnOxygen,
            "67775-7" => Param::Consciousness,
            "9269-2" => Param::Gcs,
            "2524-7" | "32693-4" => Param::Lactate,
            "6690-2" | "26464-8" => Param::Wbc,
            "2019-8" => Param::Paco2,
            "764-1" | "26508-2" => Param::BandsPct,
            "82810-3" => Param::Pregnant,
            _ => return None,
        })
    }

    /// Accepted range (same limits as the scores' inputs).
    fn range(self) -> (&'static str, f64, f64, &'static str) {
        match self {
            Param::Rr => ("rr", 0.0, 120.0, "/min"),
            Param::Hr => ("hr", 0.0, 350.0, "/min"),
            Param::Temp => ("temp", 20.0, 45.0, "°C"),
            Param::Sbp => ("sbp", 0.0, 350.0, "mmHg"),
            Param::Spo2 => ("spo2", 0.0, 100.0, "%"),
            Param::Gcs => ("gcs", 3.0, 15.0, "points"),
            Param::Lactate => ("lactate", 0.0, 50.0, "mmol/L"),
            Param::Wbc => ("wbc", 0.0, 1000.0, "×10⁹/L"),
            Param::Paco2 => ("paco2", 5.0, 250.0, "mmHg"),
            Param::BandsPct => ("bands_pct", 0.0, 100.0, "%"),
            Param::OnOxygen | Param::Consciousness | Param::Pregnant => ("flag", 0.0, 4.0, ""),
        }
    }

    fn group(self) -> Group {
        match self {
            Param::Rr | Param::Hr | Param::Temp | Param::Sbp | Param::Spo2 => Group::Vital,
            Param::Consciousness | Param::Gcs | Param::OnOxygen => Group::Neuro,
            Param::Pregnant => Group::Status,
            _ => Group::Lab,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Vital,
    Neuro,
    Lab,
    Status,
}

/// One observed value, with where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Obs {
    /// What was observed.
    pub param: Param,
    /// The value in the unit of [`Param`].
    pub value: f64,
    /// Event time, ms since the epoch.
    pub time_ms: i64,
    /// The source resource (`Observation/abc`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The LOINC code it came with.
    pub code: String,
    /// `topic/partition/offset` of the record it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
}

/// Maximum ages of values, ms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxAge {
    /// Vital signs. Default 4 h.
    #[serde(default = "four_hours")]
    pub vitals_ms: i64,
    /// Consciousness, GCS, oxygen. Default 12 h.
    #[serde(default = "twelve_hours")]
    pub neuro_ms: i64,
    /// Laboratory values. Default 24 h.
    #[serde(default = "one_day")]
    pub labs_ms: i64,
}

fn four_hours() -> i64 {
    4 * 3_600_000
}
fn twelve_hours() -> i64 {
    12 * 3_600_000
}
fn one_day() -> i64 {
    24 * 3_600_000
}

impl Default for MaxAge {
    fn default() -> Self {
        MaxAge {
            vitals_ms: four_hours(),
            neuro_ms: twelve_hours(),
            labs_ms: one_day(),
        }
    }
}

impl MaxAge {
    fn of(&self, p: Param) -> i64 {
        match p.group() {
            Group::Vital => self.vitals_ms,
            Group::Neuro => self.neuro_ms,
            Group::Lab => self.labs_ms,
            Group::Status => i64::MAX,
        }
    }
}

/// Which score an alert rule watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    /// NEWS2; level = band (1 low–medium, 2 medium, 3 high).
    News2,
    /// qSOFA; level = points.
    Qsofa,
    /// SIRS; level = criteria met.
    Sirs,
}

/// One alert rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// The score.
    pub score: ScoreKind,
    /// Alert at this level or above (NEWS2: 1 low–medium, 2 medium, 3 high).
    pub level: u8,
    /// No new alert at the same or a lower level within this window, ms.
    pub suppress_ms: i64,
}

impl AlertRule {
    /// Sensible defaults: NEWS2 medium (the RCP's urgent-response threshold), qSOFA ≥ 2, SIRS
    /// ≥ 2, each suppressed for 4 h.
    pub fn defaults() -> Vec<AlertRule> {
        vec![
            AlertRule {
                score: ScoreKind::News2,
                level: 2,
                suppress_ms: four_hours(),
            },
            AlertRule {
                score: ScoreKind::Qsofa,
                level: 2,
                suppress_ms: four_hours(),
            },
            AlertRule {
                score: ScoreKind::Sirs,
                level: 2,
                suppress_ms: four_hours(),
            },
        ]
    }
}

/// The three scores at one moment, with the values they used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// When (the newest observation's time), ms.
    pub time_ms: i64,
    /// NEWS2.
    pub news2: News2,
    /// qSOFA.
    pub qsofa: Qsofa,
    /// SIRS.
    pub sirs: Sirs,
    /// The fresh values used, by parameter.
    pub used: Vec<Obs>,
    /// Values present but too old to count.
    pub stale: Vec<Param>,
}

/// A raised alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The score that crossed.
    pub score: ScoreKind,
    /// Its level.
    pub level: u8,
    /// Its total (NEWS2 aggregate, qSOFA points, SIRS criteria).
    pub total: u8,
    /// NEWS2 band, for NEWS2 alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<RiskBand>,
    /// Raised because the level rose within the suppression window.
    pub escalation: bool,
    /// When, ms.
    pub time_ms: i64,
}

/// What one patient's state holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientState {
    /// Latest observation per parameter.
    pub latest: BTreeMap<Param, Obs>,
    /// Birth date as days since the epoch, if known (for the NEWS2 age scope).
    #[serde(default)]
    pub birth_day: Option<i64>,
    /// Last alert per score: (time ms, level).
    #[serde(default)]
    pub last_alert: BTreeMap<ScoreKind, (i64, u8)>,
}

impl PatientState {
    /// Records an observation; an older value than the one held is ignored (returns false).
    pub fn observe(&mut self, obs: Obs) -> bool {
        if self
            .latest
            .get(&obs.param)
            .is_some_and(|o| o.time_ms > obs.time_ms)
        {
            return false;
        }
        self.latest.insert(obs.param, obs);
        true
    }

    /// Scores what is fresh at `now_ms`.
    pub fn evaluate(&self, now_ms: i64, max_age: &MaxAge) -> Evaluation {
        let mut used = Vec::new();
        let mut stale = Vec::new();
        let mut v: BTreeMap<Param, f64> = BTreeMap::new();
        for (p, o) in &self.latest {
            if now_ms - o.time_ms <= max_age.of(*p) {
                v.insert(*p, o.value);
                if *p != Param::Pregnant {
                    used.push(o.clone());
                }
            } else {
                stale.push(*p);
            }
        }
        let get = |p| v.get(&p).copied();
        let consciousness = match (get(Param::Consciousness), get(Param::Gcs)) {
            (Some(c), _) => Some(match c as u8 {
                0 => Consciousness::Alert,
                1 => Consciousness::Confusion,
                2 => Consciousness::Voice,
                3 => Consciousness::Pain,
                _ => Consciousness::Unresponsive,
            }),
            (None, Some(g)) if g >= 15.0 => Some(Consciousness::Alert),
            (None, Some(_)) => Some(Consciousness::Confusion),
            (None, None) => None,
        };
        let age = self
            .birth_day
            .map(|b| ((now_ms.div_euclid(86_400_000) - b) as f64 / 365.2425).floor());
        let n_input = News2Input {
            rr: get(Param::Rr),
            spo2: get(Param::Spo2),
            spo2_scale: None,
            on_oxygen: get(Param::OnOxygen).map(|o| o > 0.0),
            sbp: get(Param::Sbp),
            hr: get(Param::Hr),
            consciousness,
            temp: get(Param::Temp),
            age,
            pregnant: get(Param::Pregnant).map(|p| p > 0.0),
        };
        // Values were range-checked when observed; a score that still refuses is reported as
        // not applicable rather than dropped.
        let news2 = news2::score(&n_input)
            .unwrap_or_else(|e| News2::not_applicable(format!("input refused: {e}"), 1));
        let qsofa = qsofa::score(&QsofaInput {
            rr: get(Param::Rr),
            sbp: get(Param::Sbp),
            gcs: get(Param::Gcs),
            altered_mentation: get(Param::Consciousness).map(|c| c > 0.0),
        })
        .unwrap_or_else(|_| empty_qsofa());
        let sirs = sirs::score(&SirsInput {
            temp: get(Param::Temp),
            hr: get(Param::Hr),
            rr: get(Param::Rr),
            paco2: get(Param::Paco2),
            wbc: get(Param::Wbc),
            bands_pct: get(Param::BandsPct),
        })
        .unwrap_or_else(|_| empty_sirs());
        Evaluation {
            time_ms: now_ms,
            news2,
            qsofa,
            sirs,
            used,
            stale,
        }
    }

    /// The alerts `eval` raises under `rules`, remembering them for suppression.
    pub fn alerts(&mut self, eval: &Evaluation, rules: &[AlertRule]) -> Vec<Alert> {
        let mut out = Vec::new();
        for rule in rules {
            let (level, total, band) = match rule.score {
                ScoreKind::News2 => match (eval.news2.total, eval.news2.band) {
                    (Some(t), Some(b)) => (news2_level(b), t, Some(b)),
                    _ => continue,
                },
                ScoreKind::Qsofa => (eval.qsofa.score, eval.qsofa.score, None),
                ScoreKind::Sirs => (eval.sirs.score, eval.sirs.score, None),
            };
            if level < rule.level {
                continue;
            }
            let last = self.last_alert.get(&rule.score).copied();
            let within = last.is_some_and(|(t, _)| eval.time_ms - t < rule.suppress_ms);
            let escalation = within && last.is_some_and(|(_, l)| level > l);
            if within && !escalation {
                continue;
            }
            self.last_alert.insert(rule.score, (eval.time_ms, level));
            out.push(Alert {
                score: rule.score,
                level,
                total,
                band,
                escalation,
                time_ms: eval.time_ms,
            });
        }
        out
    }
}

/// NEWS2's band as an alert level.
pub fn news2_level(b: RiskBand) -> u8 {
    match b {
        RiskBand::Low => 0,
        RiskBand::LowMedium => 1,
        RiskBand::Medium => 2,
        RiskBand::High => 3,
    }
}

fn empty_qsofa() -> Qsofa {
    Qsofa {
        score: 0,
        criteria: BTreeMap::new(),
        positive: false,
        missing: vec!["rr".into(), "sbp".into(), "mentation".into()],
        complete: false,
    }
}

fn empty_sirs() -> Sirs {
    Sirs {
        score: 0,
        criteria: BTreeMap::new(),
        positive: false,
        missing: vec!["temp".into(), "hr".into(), "resp".into(), "wbc".into()],
        complete: false,
    }
}

/// What a FHIR resource contributes to surveillance.
#[derive(Clone, Debug, PartialEq)]
pub enum Finding {
    /// Observations of a patient (a BP panel gives its systolic component).
    Observations {
        /// `Patient/…` reference.
        patient: String,
        /// The values.
        obs: Vec<Obs>,
    },
    /// A Patient resource with a birth date.
    BirthDate {
        /// `Patient/<id>`.
        patient: String,
        /// Days since the epoch.
        day: i64,
    },
    /// Nothing we use (another resource type, or a code not in the list).
    Ignored,
}

fn loinc_codes(concept: &Value) -> impl Iterator<Item = &str> {
    concept
        .get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| {
            c.get("system")
                .and_then(Value::as_str)
                .is_none_or(|s| s == "http://loinc.org")
        })
        .filter_map(|c| c.get("code").and_then(Value::as_str))
}

fn quantity(v: &Value, param: Param) -> Result<Option<f64>, String> {
    let Some(q) = v.get("valueQuantity") else {
        return Ok(None);
    };
    let Some(x) = q.get("value").and_then(Value::as_f64) else {
        return Err("valueQuantity has no numeric value".into());
    };
    let unit = q
        .get("code")
        .or_else(|| q.get("unit"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok(Some(match (param, unit) {
        (Param::Temp, "[degF]" | "degF" | "°F" | "F") => (x - 32.0) * 5.0 / 9.0,
        (Param::Paco2, "kPa") => x * 7.500_62,
        // FiO2 as a fraction or a percentage; flow in L/min.
        (Param::OnOxygen, "%") => f64::from(u8::from(x > 21.0)),
        (Param::OnOxygen, "L/min" | "l/min") => f64::from(u8::from(x > 0.0)),
        (Param::OnOxygen, _) => f64::from(u8::from(if x <= 1.0 { x > 0.21 } else { x > 21.0 })),
        _ => x,
    }))
}

fn coded(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = v.get("valueString").and_then(Value::as_str) {
        out.push(s.to_string());
    }
    if let Some(cc) = v.get("valueCodeableConcept") {
        if let Some(t) = cc.get("text").and_then(Value::as_str) {
            out.push(t.to_string());
        }
        for c in cc
            .get("coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for k in ["code", "display"] {
                if let Some(s) = c.get(k).and_then(Value::as_str) {
                    out.push(s.to_string());
                }
            }
        }
    }
    out
}

fn acvpu(texts: &[String]) -> Option<f64> {
    for t in texts {
        let t = t.trim().to_ascii_lowercase();
        let v = match t.as_str() {
            "a" | "alert" => 0.0,
            "c" | "new confusion" | "confusion" | "confused" => 1.0,
            "v" | "voice" | "responds to voice" => 2.0,
            "p" | "pain" | "responds to pain" => 3.0,
            "u" | "unresponsive" => 4.0,
            _ => continue,
        };
        return Some(v);
    }
    None
}

/// Event time of an Observation: effectiveDateTime, effectiveInstant, effectivePeriod.start,
/// else issued — parsed by `to_ms` (the caller's FHIR dateTime parser).
fn obs_time(v: &Value, to_ms: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
    ["effectiveDateTime", "effectiveInstant"]
        .iter()
        .filter_map(|k| v.get(*k).and_then(Value::as_str))
        .chain(
            v.get("effectivePeriod")
                .and_then(|p| p.get("start"))
                .and_then(Value::as_str),
        )
        .chain(v.get("issued").and_then(Value::as_str))
        .find_map(to_ms)
}

/// Reads what a FHIR R4 resource (JSON) says for surveillance. `to_ms` parses FHIR dateTimes
/// (with a time) to epoch ms; `date_to_day` parses a FHIR date to days since the epoch.
/// Errors name what is wrong with a resource that has a code we use.
pub fn read_fhir(
    v: &Value,
    to_ms: &dyn Fn(&str) -> Option<i64>,
    date_to_day: &dyn Fn(&str) -> Option<i64>,
) -> Result<Finding, String> {
    match v.get("resourceType").and_then(Value::as_str) {
        Some("Patient") => {
            let (Some(id), Some(bd)) = (
                v.get("id").and_then(Value::as_str),
                v.get("birthDate").and_then(Value::as_str),
            ) else {
                return Ok(Finding::Ignored);
            };
            match date_to_day(bd) {
                Some(day) => Ok(Finding::BirthDate {
                    patient: format!("Patient/{id}"),
                    day,
                }),
                None => Ok(Finding::Ignored),
            }
        }
        Some("Observation") => read_observation(v, to_ms),
        _ => Ok(Finding::Ignored),
    }
}

fn read_observation(v: &Value, to_ms: &dyn Fn(&str) -> Option<i64>) -> Result<Finding, String> {
    if matches!(
        v.get("status").and_then(Value::as_str),
        Some("entered-in-error" | "cancelled" | "registered")
    ) {
        return Ok(Finding::Ignored);
    }
    let codes: Vec<&str> = v
        .get("code")
        .map(|c| loinc_codes(c).collect())
        .unwrap_or_default();
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .map(|i| format!("Observation/{i}"));
    let mut obs = Vec::new();
    let mut push = |param: Param, code: &str, value: f64, time_ms: i64| {
        obs.push(Obs {
            param,
            value,
            time_ms,
            id: id.clone(),
            code: code.to_string(),
            lineage: None,
        });
    };
    let mut wanted = false;
    let time = obs_time(v, to_ms);
    for code in &codes {
        let Some(param) = Param::from_loinc(code) else {
            continue;
        };
        wanted = true;
        let Some(t) = time else {
            return Err(format!("Observation {code} has no effective time"));
        };
        let value = match param {
            Param::Consciousness => acvpu(&coded(v)),
            Param::Pregnant => {
                let c = coded(v);
                Some(f64::from(u8::from(c.iter().any(|s| {
                    s == "77386006" || s.eq_ignore_ascii_case("pregnant")
                }))))
            }
            _ => quantity(v, param)?,
        };
        match value {
            Some(x) => {
                let (name, lo, hi, unit) = param.range();
                crate::input::check(name, Some(x), lo, hi, unit)
                    .map_err(|e| format!("Observation {code}: {e}"))?;
                push(param, code, x, t)
            }
            None => {
                return Err(format!(
                    "Observation {code} has no value Aorta can read (valueQuantity, or ACVPU/pregnancy as code or text)"
                ));
            }
        }
    }
    // Blood-pressure panels: the systolic component.
    for comp in v
        .get("component")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ccodes: Vec<&str> = comp
            .get("code")
            .map(|c| loinc_codes(c).collect())
            .unwrap_or_default();
        if ccodes.contains(&"8480-6") {
            wanted = true;
            let Some(t) = time else {
                return Err("Observation 8480-6 component has no effective time".into());
            };
            if let Some(x) = quantity(comp, Param::Sbp)? {
                push(Param::Sbp, "8480-6", x, t);
            }
        }
    }
    if !wanted {
        return Ok(Finding::Ignored);
    }
    let Some(patient) = v
        .get("subject")
        .and_then(|s| s.get("reference"))
        .and_then(Value::as_str)
    else {
        return Err("Observation has no subject.reference (the patient)".into());
    };
    Ok(Finding::Observations {
        patient: patient.to_string(),
        obs,
    })
}
