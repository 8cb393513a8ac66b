//! `op = "early-warning"`: the sepsis / deterioration surveillance step. The clinical rules —
//! the LOINC list, staleness, NEWS2, qSOFA, SIRS, suppression and escalation — live in
//! `aorta_clinical::surveillance`; this step only feeds it FHIR resources in partition order
//! and turns its alerts into events.
//!
//! Input: FHIR R4 JSON (Observations with the codes of the surveillance list; Patients for the
//! birth date). Other resources and codes are dropped (counted); an Observation with a code we
//! use but no readable value, time or patient is dead-lettered with the reason. **All of a
//! patient's resources must reach the same partition** — key the input topic by patient
//! (e.g. a `topic` sink with `key = "subject.reference"` after `hl7-to-fhir`).
//!
//! Output (key = the patient reference), one per alert:
//! `{"kind": "alert", "alert_id", "patient", "score", "level", "total", "band", "escalation",
//! "time", "news2", "qsofa", "sirs", "observations": [{param, code, value, time, id,
//! lineage}], "stale", "detected_issue": <FHIR DetectedIssue>}` — each observation's
//! `lineage` is the `topic/partition/offset` it was read from. A patient out of NEWS2's scope
//! gets one `{"kind": "not-applicable", …}` event instead of NEWS2 alerts. With
//! `emit = "evaluations"`, every change also emits `{"kind": "evaluation", …}`.

use super::{OpResult, Operator, Out, reject};
use crate::config::{EarlyWarningConfig, EarlyWarningEmit};
use crate::event::Event;
use aorta_clinical::news2::RiskBand;
use aorta_clinical::surveillance::{
    self, Alert, AlertRule, Evaluation, Finding, MaxAge, PatientState, ScoreKind,
};
use aorta_fhir::datetime::{date_to_days, format_utc_ms, to_utc_nanos};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Held {
    state: PatientState,
    /// The NEWS2 scope flag was emitted.
    #[serde(default)]
    flagged: bool,
    /// Newest event time seen, ms (for eviction).
    #[serde(default)]
    touched: i64,
}

/// The operator.
pub struct EarlyWarning {
    rules: Vec<AlertRule>,
    max_age: MaxAge,
    emit: EarlyWarningEmit,
    max_patients: usize,
    patients: HashMap<String, Held>,
    dropped: u64,
}

fn to_ms(s: &str) -> Option<i64> {
    to_utc_nanos(s).map(|ns| ns.div_euclid(1_000_000) as i64)
}

/// FNV-1a, for short stable ids.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn score_name(k: ScoreKind) -> &'static str {
    match k {
        ScoreKind::News2 => "news2",
        ScoreKind::Qsofa => "qsofa",
        ScoreKind::Sirs => "sirs",
    }
}

fn severity(a: &Alert) -> &'static str {
    match (a.score, a.band) {
        (ScoreKind::News2, Some(RiskBand::High)) => "high",
        (ScoreKind::News2, Some(RiskBand::Medium)) => "moderate",
        (ScoreKind::News2, _) => "low",
        (_, _) if a.level >= 3 => "high",
        _ => "moderate",
    }
}

fn observations(eval: &Evaluation) -> Value {
    Value::Array(
        eval.used
            .iter()
            .map(|o| {
                json!({
                    "param": o.param,
                    "code": o.code,
                    "value": o.value,
                    "time": format_utc_ms(o.time_ms),
                    "id": o.id,
                    "lineage": o.lineage,
                })
            })
            .collect(),
    )
}

/// A FHIR R4 DetectedIssue for an alert, its evidence the Observations used.
fn detected_issue(patient: &str, a: &Alert, eval: &Evaluation, id: &str) -> Value {
    let what = match a.band {
        Some(b) => format!(
            "{} {} ({})",
            score_name(a.score).to_uppercase(),
            a.total,
            serde_json::to_value(b)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ),
        None => format!("{} {}", score_name(a.score).to_uppercase(), a.total),
    };
    let mut evidence: Vec<Value> = eval
        .used
        .iter()
        .filter_map(|o| o.id.as_ref())
        .map(|r| json!({"reference": r}))
        .collect();
    evidence.dedup();
    let mut di = json!({
        "resourceType": "DetectedIssue",
        "id": id,
        "status": "preliminary",
        "code": {"text": format!("Early warning: {what}")},
        "severity": severity(a),
        "patient": {"reference": patient},
        "identifiedDateTime": format_utc_ms(a.time_ms),
        "detail": format!("{what}{} from {} observation(s)", if a.escalation { ", escalated" } else { "" }, eval.used.len()),
    });
    if !evidence.is_empty() {
        di["evidence"] = json!([{ "detail": evidence }]);
    }
    di
}

impl EarlyWarning {
    /// Builds it.
    pub fn new(config: &EarlyWarningConfig) -> Result<EarlyWarning, String> {
        if config.rules.is_empty() {
            return Err("early-warning needs at least one rule".into());
        }
        let mut rules = Vec::new();
        for (i, r) in config.rules.iter().enumerate() {
            let max = match r.score {
                ScoreKind::News2 => 3,
                ScoreKind::Qsofa => 3,
                ScoreKind::Sirs => 4,
            };
            if r.level == 0 || r.level > max {
                return Err(format!(
                    "early-warning rules[{i}]: level {} for {} must be 1–{max}",
                    r.level,
                    score_name(r.score)
                ));
            }
            rules.push(AlertRule {
                score: r.score,
                level: r.level,
                suppress_ms: r.suppress.ms(),
            });
        }
        if config.max_patients == 0 {
            return Err("early-warning max_patients must be at least 1".into());
        }
        Ok(EarlyWarning {
            rules,
            max_age: MaxAge {
                vitals_ms: config.max_age.vitals.ms(),
                neuro_ms: config.max_age.neuro.ms(),
                labs_ms: config.max_age.labs.ms(),
            },
            emit: config.emit,
            max_patients: config.max_patients,
            patients: HashMap::new(),
            dropped: 0,
        })
    }

    fn evict(&mut self) {
        if self.patients.len() <= self.max_patients {
            return;
        }
        // Forget the least recently updated tenth (ties by reference, so it is deterministic).
        let mut by_age: Vec<(i64, String)> = self
            .patients
            .iter()
            .map(|(k, h)| (h.touched, k.clone()))
            .collect();
        by_age.sort();
        let n = (self.max_patients / 10).max(1) + self.patients.len() - self.max_patients;
        for (_, k) in by_age.into_iter().take(n) {
            self.patients.remove(&k);
        }
    }

    fn emit_event(e: &Event, patient: &str, v: Value, out: &mut Out) {
        let mut d = e.derive(v);
        d.key = Some(Bytes::copy_from_slice(patient.as_bytes()));
        out.next(d);
    }
}

impl Operator for EarlyWarning {
    fn kind(&self) -> &'static str {
        "early-warning"
    }

    fn describe(&self) -> String {
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|r| {
                format!(
                    "{} ≥ {} (suppress {} ms)",
                    score_name(r.score),
                    r.level,
                    r.suppress_ms
                )
            })
            .collect();
        format!(
            "early-warning NEWS2/qSOFA/SIRS, alert on [{}]",
            rules.join(", ")
        )
    }

    fn process(&mut self, e: Event, out: &mut Out) -> OpResult {
        let finding = match surveillance::read_fhir(e.value(), &to_ms, &date_to_days) {
            Ok(f) => f,
            Err(reason) => return reject(e, format!("early-warning: {reason}")),
        };
        let (patient, obs) = match finding {
            Finding::Ignored => {
                self.dropped += 1;
                return Ok(());
            }
            Finding::BirthDate { patient, day } => {
                self.patients.entry(patient).or_default().state.birth_day = Some(day);
                self.evict();
                return Ok(());
            }
            Finding::Observations { patient, obs } => (patient, obs),
        };
        let lineage = e.origin.lineage();
        let held = self.patients.entry(patient.clone()).or_default();
        let mut changed = false;
        for mut o in obs {
            o.lineage = Some(lineage.clone());
            held.touched = held.touched.max(o.time_ms);
            changed |= held.state.observe(o);
        }
        if !changed {
            self.dropped += 1;
            return Ok(());
        }
        let now = held
            .state
            .latest
            .values()
            .map(|o| o.time_ms)
            .max()
            .unwrap_or(held.touched);
        let eval = held.state.evaluate(now, &self.max_age);
        let alerts = held.state.alerts(&eval, &self.rules);
        if let Some(reason) = &eval.news2.not_applicable
            && !held.flagged
        {
            held.flagged = true;
            let v = json!({
                "kind": "not-applicable",
                "patient": patient,
                "score": "news2",
                "reason": reason,
                "time": format_utc_ms(now),
            });
            Self::emit_event(&e, &patient, v, out);
        }
        if self.emit == EarlyWarningEmit::Evaluations {
            let v = json!({
                "kind": "evaluation",
                "patient": patient,
                "time": format_utc_ms(now),
                "time_ms": now,
                "news2": eval.news2,
                "qsofa": eval.qsofa,
                "sirs": eval.sirs,
                "observations": observations(&eval),
                "stale": eval.stale,
            });
            Self::emit_event(&e, &patient, v, out);
        }
        for a in &alerts {
            let alert_id = format!(
                "ew-{}-{:016x}-{}",
                score_name(a.score),
                fnv(&patient),
                a.time_ms
            );
            let v = json!({
                "kind": "alert",
                "alert_id": alert_id,
                "patient": patient,
                "score": score_name(a.score),
                "level": a.level,
                "total": a.total,
                "band": a.band,
                "escalation": a.escalation,
                "time": format_utc_ms(a.time_ms),
                "time_ms": a.time_ms,
                "news2": eval.news2,
                "qsofa": eval.qsofa,
                "sirs": eval.sirs,
                "observations": observations(&eval),
                "stale": eval.stale,
                "detected_issue": detected_issue(&patient, a, &eval, &alert_id),
            });
            Self::emit_event(&e, &patient, v, out);
        }
        self.evict();
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }

    fn snapshot(&self) -> Option<super::State> {
        let sorted: std::collections::BTreeMap<&String, &Held> = self.patients.iter().collect();
        super::state_of(&sorted)
    }

    fn restore(&mut self, state: &super::RawValue) -> Result<(), String> {
        self.patients = super::state_as(state)?;
        Ok(())
    }
}
