//! A built pipeline's steps for one input partition: events in, routed events out.

use crate::config::{Format, PipelineConfig};
use crate::error::PipelineError;
use crate::event::{Event, Origin};
use crate::ops::{self, Dest, OpCounters, Operator, Out, Rejected};
use crate::table::Tables;
use aorta_log::ConsumedRecord;
use serde_json::Value;
use std::sync::Arc;

/// Where a produced event goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The pipeline's sinks (the event passed every step).
    Sinks,
    /// A topic named by a step (route, late records).
    Topic(String),
    /// The dead-letter topic, with the reason and the failing step.
    DeadLetter {
        /// Why.
        reason: String,
        /// `<index>:<op>` of the failing step, or `decode`.
        operator: String,
    },
}

/// The steps of one pipeline for one input partition, with their counters.
pub struct Chain {
    ops: Vec<Box<dyn Operator>>,
    counters: Vec<OpCounters>,
    format: Format,
    /// The first step reads the JSON bytes itself ([`Operator::takes_raw_json`]): no decode.
    raw_first: bool,
}

impl Chain {
    /// Builds every step, or says which one is wrong. `enrich` steps share the tables of
    /// `tables` (one set per pipeline, whatever the number of partitions).
    pub fn build(config: &PipelineConfig, tables: &Tables) -> Result<Chain, PipelineError> {
        let mut built = Vec::with_capacity(config.steps.len());
        for (i, step) in config.steps.iter().enumerate() {
            built.push(ops::build(step, tables.table(i)).map_err(|message| {
                PipelineError::Config {
                    pipeline: config.name.clone(),
                    message: format!("steps[{i}]: {message}"),
                }
            })?);
        }
        let raw_first =
            config.format == Format::Json && built.first_mut().is_some_and(|o| o.takes_raw_json());
        Ok(Chain {
            counters: vec![OpCounters::default(); built.len()],
            ops: built,
            format: config.format,
            raw_first,
        })
    }

    /// One line per step.
    pub fn describe(&self) -> Vec<String> {
        self.ops.iter().map(|o| o.describe()).collect()
    }

    /// Topics the steps write to directly.
    pub fn topics(&self) -> Vec<String> {
        self.ops.iter().flat_map(|o| o.topics()).collect()
    }

    /// Each step's kind and counters.
    pub fn counters(&self) -> Vec<(&'static str, OpCounters)> {
        self.ops
            .iter()
            .zip(&self.counters)
            .map(|(o, c)| {
                let mut c = c.clone();
                c.dropped = o.dropped();
                (o.kind(), c)
            })
            .collect()
    }

    /// Decodes a consumed record into an event (JSON errors are dead-lettered). When the first
    /// step reads the bytes itself the payload stays undecoded, and that step dead-letters a
    /// payload that is not JSON.
    pub fn decode(
        &self,
        topic: &Arc<str>,
        partition: u32,
        rec: ConsumedRecord,
        out: &mut Vec<(Target, Event)>,
    ) -> Option<Event> {
        let r = rec.record;
        let mut e = Event {
            key: r.key,
            json: None,
            raw: r.value,
            timestamp_ms: r.timestamp_ms,
            headers: r.headers,
            origin: Origin {
                topic: topic.clone(),
                partition,
                offset: rec.offset,
            },
        };
        if self.format == Format::Json && !self.raw_first {
            match serde_json::from_slice::<Value>(&e.raw) {
                Ok(v) => e.json = Some(v),
                Err(err) => {
                    out.push((
                        Target::DeadLetter {
                            reason: format!("value is not JSON: {err}"),
                            operator: "decode".into(),
                        },
                        e,
                    ));
                    return None;
                }
            }
        }
        Some(e)
    }

    /// Runs one event through every step.
    pub fn push(&mut self, e: Event, out: &mut Vec<(Target, Event)>) {
        self.run_from(0, e, out);
    }

    fn run_from(&mut self, i: usize, e: Event, out: &mut Vec<(Target, Event)>) {
        if i == self.ops.len() {
            out.push((Target::Sinks, e));
            return;
        }
        self.counters[i].input += 1;
        let mut produced = Out::default();
        match self.ops[i].process(e, &mut produced) {
            Ok(()) => self.forward(i, produced, out),
            Err(rejected) => {
                self.counters[i].errors += 1;
                let Rejected { event, reason } = *rejected;
                out.push((
                    Target::DeadLetter {
                        reason,
                        operator: format!("{i}:{}", self.ops[i].kind()),
                    },
                    event,
                ));
            }
        }
    }

    fn forward(&mut self, i: usize, produced: Out, out: &mut Vec<(Target, Event)>) {
        for (dest, e) in produced.events {
            self.counters[i].output += 1;
            match dest {
                Dest::Next => self.run_from(i + 1, e, out),
                Dest::Topic(t) => out.push((Target::Topic(t), e)),
            }
        }
    }

    /// The input ended: each step, in order, emits what it holds (and that flows on).
    pub fn end_of_input(&mut self, out: &mut Vec<(Target, Event)>) {
        for i in 0..self.ops.len() {
            let mut produced = Out::default();
            self.ops[i].end_of_input(&mut produced);
            self.forward(i, produced, out);
        }
    }

    /// Every step's state, in order.
    pub fn snapshot(&self) -> Vec<Option<crate::ops::State>> {
        self.ops.iter().map(|o| o.snapshot()).collect()
    }

    /// Restores the steps' state from a checkpoint of the same pipeline.
    pub fn restore(&mut self, states: Vec<Option<crate::ops::State>>) -> Result<(), String> {
        if states.len() != self.ops.len() {
            return Err(format!(
                "the checkpoint has {} steps, the pipeline {}: the steps changed; replay the pipeline (aorta replay) to rebuild its state",
                states.len(),
                self.ops.len()
            ));
        }
        for (i, (op, s)) in self.ops.iter_mut().zip(states).enumerate() {
            if let Some(s) = s {
                op.restore(&s).map_err(|e| {
                    format!(
                        "steps[{i}] ({}): checkpointed state does not fit: {e}",
                        op.kind()
                    )
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aorta_log::Record;
    use bytes::Bytes;

    fn chain(first: &str) -> Chain {
        let toml = format!(
            r#"
[[pipelines]]
name = "w"
from = ["in"]
{first}
[[pipelines.steps]]
op = "window"
key = "patient_id"
time = "ts"
size = "1m"
grace = "10s"
late_topic = "late"
aggregates = {{ n = "count()", nv = "count(hr)", avg = "avg(hr)", hi = "max(hr)", lo = "min(name)", last = "last(hr)", pids = "count_distinct(patient_id)" }}
[[pipelines.sinks]]
type = "topic"
topic = "out"
"#
        );
        let configs = crate::parse_pipelines(&toml).unwrap();
        Chain::build(&configs[0], &Tables::default()).unwrap()
    }

    /// Outputs as (target, payload as JSON, or its bytes when it is not JSON). A late record
    /// of the raw path keeps its bytes as received while the decoded path re-encodes it, so
    /// payloads are compared as JSON.
    fn run(c: &mut Chain, payloads: &[String]) -> Vec<(Target, Result<Value, Bytes>)> {
        let topic: Arc<str> = "in".into();
        let mut out = Vec::new();
        for (offset, p) in payloads.iter().enumerate() {
            let rec = ConsumedRecord {
                offset: offset as u64,
                record: Record {
                    key: None,
                    value: Bytes::from(p.clone()),
                    headers: Vec::new(),
                    timestamp_ms: 5,
                },
            };
            if let Some(e) = c.decode(&topic, 0, rec, &mut out) {
                c.push(e, &mut out);
            }
        }
        c.end_of_input(&mut out);
        out.into_iter()
            .map(|(t, e)| {
                let t = match t {
                    // The failing step differs (decode vs the window): the reason must not.
                    Target::DeadLetter { reason, .. } => Target::DeadLetter {
                        reason,
                        operator: String::new(),
                    },
                    other => other,
                };
                let bytes = e.encode();
                (t, serde_json::from_slice(&bytes).map_err(|_| bytes))
            })
            .collect()
    }

    /// A window that reads its fields from the raw bytes gives exactly the outputs, late
    /// records and dead letters of the same window over decoded events.
    #[test]
    fn raw_field_window_equals_decoded_window() {
        let mut payloads = Vec::new();
        for i in 0..400i64 {
            let pid = format!("p{}", i % 7);
            let ts = 60_000 * (i / 40) + (i * 7919) % 50_000 - if i % 13 == 0 { 90_000 } else { 0 };
            payloads.push(match i % 11 {
                0 => format!(r#"{{"patient_id":"{pid}","ts":{ts},"name":"n\"{i}"}}"#),
                1 => format!(
                    r#"{{"ts":{ts},"patient_id":"{pid}","hr":{}.5,"extra":{{"a":[1,2]}}}}"#,
                    i % 90
                ),
                2 => format!(
                    r#"{{"patient_id":"{pid}","ts":"1970-01-01T00:0{}:00Z","hr":60}}"#,
                    i % 10
                ),
                3 if i % 3 == 0 => "not json".to_string(),
                4 if i % 3 == 0 => "[1,2]".to_string(),
                5 if i % 3 == 0 => format!(r#"{{"ts":{ts},"hr":1}}"#),
                6 if i % 3 == 0 => format!(r#"{{"patient_id":"{pid}","ts":{ts},"hr":"high"}}"#),
                _ => format!(
                    r#"{{"patient_id":"{pid}","ts":{ts},"hr":{},"hr":{},"name":"x{i}"}}"#,
                    i,
                    i % 100
                ),
            });
        }
        let mut raw = chain("");
        assert!(raw.raw_first, "a window of plain fields reads raw JSON");
        let mut decoded = chain("[[pipelines.steps]]\nop = \"filter\"\nwhen = \"true\"");
        assert!(!decoded.raw_first);
        let a = run(&mut raw, &payloads);
        let b: Vec<_> = run(&mut decoded, &payloads);
        assert!(a.iter().any(|(t, ..)| *t == Target::Sinks));
        assert!(a.iter().any(|(t, ..)| *t == Target::Topic("late".into())));
        let dead: Vec<&String> = a
            .iter()
            .filter_map(|(t, ..)| match t {
                Target::DeadLetter { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        assert!(
            dead.iter().any(|r| r.starts_with("value is not JSON")),
            "{dead:?}"
        );
        assert!(dead.iter().any(|r| r.contains("is null")), "{dead:?}");
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y);
        }
    }

    /// An event one aggregate cannot take is dead-lettered and counted by none of them, nor
    /// does it open a window.
    #[test]
    fn a_rejected_event_changes_no_aggregate() {
        for first in ["", "[[pipelines.steps]]\nop = \"filter\"\nwhen = \"true\""] {
            let mut c = chain(first);
            let out = run(
                &mut c,
                &[
                    r#"{"patient_id":"a","ts":1000,"hr":70,"name":"x"}"#.to_string(),
                    r#"{"patient_id":"a","ts":2000,"hr":"high","name":"y"}"#.to_string(),
                    r#"{"patient_id":"a","ts":3000,"hr":80,"name":5}"#.to_string(),
                    r#"{"patient_id":"b","ts":4000,"hr":"high"}"#.to_string(),
                ],
            );
            let sinks: Vec<&Value> = out
                .iter()
                .filter(|(t, _)| *t == Target::Sinks)
                .filter_map(|(_, v)| v.as_ref().ok())
                .collect();
            assert_eq!(sinks.len(), 1, "no window for b: {out:?}");
            let w = sinks[0];
            assert_eq!(
                (w["n"].clone(), w["nv"].clone()),
                (1.into(), 1.into()),
                "{w}"
            );
            assert_eq!(
                (w["hi"].clone(), w["lo"].clone()),
                (70.into(), "x".into()),
                "{w}"
            );
            let dead = out
                .iter()
                .filter(|(t, _)| matches!(t, Target::DeadLetter { .. }))
                .count();
            assert_eq!(dead, 3, "{out:?}");
        }
    }
}
