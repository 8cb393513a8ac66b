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
        Ok(Chain {
            counters: vec![OpCounters::default(); built.len()],
            ops: built,
            format: config.format,
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

    /// Decodes a consumed record into an event (JSON errors are dead-lettered).
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
        if self.format == Format::Json {
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
