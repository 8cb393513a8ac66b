//! `op = "elr"`: electronic lab reporting. Checks each HL7 v2 ORU^R01 (bytes) against the ELR
//! rules of `aorta_clinical::elr`, drops exact resends, and passes on one JSON event per
//! accepted message: its summary, normalised results and the message itself.
//!
//! A message that fails an error rule is dead-lettered; the reason and the header
//! `aorta.elr.failed-rules` name every failed rule, `aorta.elr.findings` holds each finding
//! with its location (never a value). Duplicates: the same sending facility, MSH-10 and
//! fingerprint (every segment after MSH) is dropped and counted; the same facility and MSH-10
//! with a different fingerprint fails `msh-10-unique`. The remembered ids are bounded by
//! `max_messages` (the oldest forgotten first) and checkpointed with the offsets.

use super::{OpResult, Operator, Out, reject};
use crate::event::Event;
use aorta_clinical::elr::{self, ElrReport};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// The operator.
pub struct Elr {
    max_messages: usize,
    /// facility|MSH-10 → (fingerprint, arrival sequence).
    seen: HashMap<String, (u64, u64)>,
    /// arrival sequence → facility|MSH-10, to forget the oldest.
    order: BTreeMap<u64, String>,
    next_seq: u64,
    dropped: u64,
}

impl Elr {
    /// Builds it.
    pub fn new(max_messages: usize) -> Result<Elr, String> {
        if max_messages == 0 {
            return Err("elr max_messages must be at least 1".into());
        }
        Ok(Elr {
            max_messages,
            seen: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            dropped: 0,
        })
    }

    fn remember(&mut self, id: String, fingerprint: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, id.clone());
        self.seen.insert(id, (fingerprint, seq));
        while self.seen.len() > self.max_messages {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.seen.remove(&oldest);
        }
    }
}

fn findings_json(r: &ElrReport) -> Value {
    serde_json::to_value(&r.errors).unwrap_or(Value::Null)
}

impl Operator for Elr {
    fn kind(&self) -> &'static str {
        "elr"
    }
    fn describe(&self) -> String {
        format!(
            "elr: {} rules ({} errors, the rest warnings); exact resends dropped (remembering {} messages)",
            elr::RULES.len(),
            elr::RULES
                .iter()
                .filter(|r| r.severity == elr::Severity::Error)
                .count(),
            self.max_messages
        )
    }
    fn process(&mut self, mut e: Event, out: &mut Out) -> OpResult {
        let mut report = elr::check_bytes(&e.raw);
        let id = format!("{}|{}", report.facility, report.control_id);
        if report.is_valid() {
            match self.seen.get(&id) {
                Some((fp, _)) if *fp == report.fingerprint => {
                    self.dropped += 1;
                    return Ok(());
                }
                Some(_) => {
                    report.errors.push(elr::Finding {
                        rule: "msh-10-unique",
                        location: "MSH-10".into(),
                        message: "an earlier message from this sending facility had this control id and different content".into(),
                    });
                }
                None => {}
            }
        }
        if !report.is_valid() {
            let rules = report.failed_rules().join(",");
            e.headers.push((
                "aorta.elr.failed-rules".into(),
                Bytes::from(rules.clone().into_bytes()),
            ));
            e.headers.push((
                "aorta.elr.findings".into(),
                Bytes::from(findings_json(&report).to_string().into_bytes()),
            ));
            let detail: Vec<String> = report
                .errors
                .iter()
                .map(|f| format!("{} at {}: {}", f.rule, f.location, f.message))
                .collect();
            return reject(
                e,
                format!("ELR rules failed: {rules} ({})", detail.join("; ")),
            );
        }
        self.remember(id, report.fingerprint);
        let results: Vec<Value> = report
            .results
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                if let (Some(obj), Some((code, display))) =
                    (v.as_object_mut(), r.interpretation.snomed())
                {
                    obj.insert(
                        "normalized".into(),
                        json!({"system": "http://snomed.info/sct", "code": code, "display": display}),
                    );
                }
                v
            })
            .collect();
        let value = json!({
            "facility": report.facility,
            "control_id": report.control_id,
            "version": report.version,
            "profile": report.profile,
            "jurisdiction": report.jurisdiction,
            "warnings": report.warned_rules(),
            "results": results,
            "hl7": String::from_utf8_lossy(&e.raw),
        });
        out.next(e.derive(value));
        Ok(())
    }
    fn dropped(&self) -> u64 {
        self.dropped
    }
    fn snapshot(&self) -> Option<super::State> {
        let ids: Vec<(&u64, &String, u64)> = self
            .order
            .iter()
            .map(|(seq, id)| (seq, id, self.seen.get(id).map_or(0, |x| x.0)))
            .collect();
        super::state_of(&json!({"next_seq": self.next_seq, "ids": ids, "dropped": self.dropped}))
    }
    fn restore(&mut self, state: &super::RawValue) -> Result<(), String> {
        #[derive(serde::Deserialize)]
        struct S {
            next_seq: u64,
            ids: Vec<(u64, String, u64)>,
            dropped: u64,
        }
        let s: S = super::state_as(state)?;
        self.next_seq = s.next_seq;
        self.dropped = s.dropped;
        self.seen.clear();
        self.order.clear();
        for (seq, id, fp) in s.ids {
            self.order.insert(seq, id.clone());
            self.seen.insert(id, (fp, seq));
        }
        Ok(())
    }
}
