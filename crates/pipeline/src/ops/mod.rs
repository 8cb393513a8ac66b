//! Operators: one module per kind, each a config-built struct implementing [`Operator`].
//!
//! An operator sees one event at a time, in partition order, and pushes what it produces into
//! an [`Out`]: to the next step, or straight to a topic (routes, late records). An `Err` sends
//! the event to the dead-letter topic with the reason. Operators are deterministic functions of
//! their state and input (no wall clock), which is what lets a restart replay from a checkpoint
//! and produce exactly the outputs it had produced before.

mod basic;
mod dedupe;
mod early_warning;
mod elr;
mod enrich;
mod fhir;
mod window;

pub use basic::{Explode, Filter, Map, Project, Route};
pub use dedupe::Dedupe;
pub use early_warning::EarlyWarning;
pub use elr::Elr;
pub use enrich::Enrich;
pub use fhir::{Hl7ToFhir, ValidateFhir};
pub use window::Window;

use crate::config::StepConfig;
use crate::event::Event;
pub use serde_json::value::RawValue;

/// An operator's checkpointed state: its JSON, serialised straight from the operator's own
/// structures. (Building a `serde_json::Value` tree first, cloning every string into it and
/// dropping it again cost more than the rest of a checkpoint for thousands of patients.)
pub type State = Box<RawValue>;

/// Serialises operator state (`None` if it cannot be: the step is then checkpointed as
/// stateless, which `restore` reports when the state is needed).
pub fn state_of<T: serde::Serialize + ?Sized>(value: &T) -> Option<State> {
    serde_json::value::to_raw_value(value).ok()
}

/// Reads operator state back (rare: at start and on assignment). Through a `Value` on
/// purpose: with serde_json's `arbitrary_precision` (enabled in this build by a dependency),
/// internally tagged enums such as the window accumulators cannot take numbers straight from
/// text ("invalid type: map, expected f64").
pub fn state_as<T: serde::de::DeserializeOwned>(state: &RawValue) -> Result<T, String> {
    let value: serde_json::Value = serde_json::from_str(state.get()).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Where an operator sends an event.
#[derive(Debug)]
pub enum Dest {
    /// The next step (or the pipeline's sinks after the last step).
    Next,
    /// A topic, leaving the pipeline.
    Topic(String),
}

/// What an operator produced for one input.
#[derive(Debug, Default)]
pub struct Out {
    /// Events, in order.
    pub events: Vec<(Dest, Event)>,
}

impl Out {
    /// Sends to the next step.
    pub fn next(&mut self, e: Event) {
        self.events.push((Dest::Next, e));
    }

    /// Sends to a topic.
    pub fn topic(&mut self, t: &str, e: Event) {
        self.events.push((Dest::Topic(t.to_string()), e));
    }
}

/// An event an operator could not process, handed back with the reason (it goes to the
/// dead-letter topic as it was given to the operator).
#[derive(Debug)]
pub struct Rejected {
    /// The event.
    pub event: Event,
    /// Why.
    pub reason: String,
}

/// What `process` returns.
pub type OpResult = Result<(), Box<Rejected>>;

/// Hands `event` back with `reason`.
pub fn reject(event: Event, reason: impl Into<String>) -> OpResult {
    Err(Box::new(Rejected {
        event,
        reason: reason.into(),
    }))
}

/// Counters an operator keeps (exported as metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OpCounters {
    /// Events in.
    pub input: u64,
    /// Events out (to the next step or a topic).
    pub output: u64,
    /// Events dropped on purpose (filtered, duplicate, late without a late topic).
    pub dropped: u64,
    /// Events dead-lettered.
    pub errors: u64,
}

/// One step of a pipeline.
pub trait Operator: Send + Sync {
    /// The `op` name, for logs, metrics and the topology.
    fn kind(&self) -> &'static str;

    /// One line describing the configured step, for `aorta pipeline check`.
    fn describe(&self) -> String;

    /// Processes one event. On failure the event comes back untouched (or, for `map`, as far
    /// as it got) with the reason.
    fn process(&mut self, event: Event, out: &mut Out) -> OpResult;

    /// Called once the input ends (bounded runs and replays): emit what is still held, as a
    /// watermark at +∞ would.
    fn end_of_input(&mut self, _out: &mut Out) {}

    /// Events dropped on purpose since the start (not errors).
    fn dropped(&self) -> u64 {
        0
    }

    /// The state to checkpoint (`None`: stateless).
    fn snapshot(&self) -> Option<State> {
        None
    }

    /// Restores checkpointed state.
    fn restore(&mut self, _state: &RawValue) -> Result<(), String> {
        Ok(())
    }

    /// Topics this operator may write to directly (routes, late records).
    fn topics(&self) -> Vec<String> {
        Vec::new()
    }

    /// Asked once, of the first step of a JSON pipeline: can this step take its events with
    /// the payload left undecoded (`json` is `None`, the JSON bytes are in `raw`) and read
    /// what it needs itself ([`crate::fields`])? `true` commits the step to it: it must then
    /// reject a payload that is not JSON, with the reason, as the decoder would have.
    fn takes_raw_json(&mut self) -> bool {
        false
    }
}

/// Builds an operator from its config, checking everything that can be checked up front.
/// `table` is the shared reference table of an `enrich` step.
pub fn build(
    step: &StepConfig,
    table: Option<std::sync::Arc<crate::table::Table>>,
) -> Result<Box<dyn Operator>, String> {
    Ok(match step {
        StepConfig::Filter { when } => Box::new(Filter::new(when.clone())),
        StepConfig::Map { set, remove } => Box::new(Map::new(set.clone(), remove.clone())),
        StepConfig::Project { fields } => Box::new(Project::new(fields.clone())?),
        StepConfig::Route { routes, default } => {
            Box::new(Route::new(routes.clone(), default.clone())?)
        }
        StepConfig::Dedupe {
            key,
            window,
            time,
            max_keys,
        } => Box::new(Dedupe::new(key.clone(), *window, time.clone(), *max_keys)?),
        StepConfig::Window(w) => Box::new(Window::new(w)?),
        StepConfig::EarlyWarning(c) => Box::new(EarlyWarning::new(c)?),
        StepConfig::Enrich(e) => Box::new(Enrich::new(e, table.unwrap_or_default())?),
        StepConfig::Hl7ToFhir {
            emit,
            default_offset,
        } => Box::new(Hl7ToFhir::new(*emit, default_offset.clone())?),
        StepConfig::Validate { strict } => Box::new(ValidateFhir::new(*strict)),
        StepConfig::Elr { max_messages } => Box::new(Elr::new(*max_messages)?),
        StepConfig::Explode { path, keep } => Box::new(Explode::new(path.clone(), keep.clone())?),
    })
}

/// Reads an event time: an integer (epoch ms) or an RFC 3339 dateTime string.
pub(crate) fn event_time(time: Option<&crate::expr::Expr>, e: &Event) -> Result<i64, String> {
    let Some(expr) = time else {
        return Ok(e.timestamp_ms);
    };
    time_of(
        expr.eval(e.value(), &e.meta())
            .map_err(|err| err.to_string())?,
        expr,
    )
}

/// An event time from the value `expr` gave: epoch ms, or an RFC 3339 dateTime string.
pub(crate) fn time_of(v: crate::expr::Val<'_>, expr: &crate::expr::Expr) -> Result<i64, String> {
    use crate::expr::Val;
    match v {
        Val::Int(i) => Ok(i),
        Val::Float(f) if f.is_finite() => Ok(f as i64),
        Val::Str(s) => aorta_fhir::datetime::to_utc_nanos(&s)
            .map(|ns| ns.div_euclid(1_000_000) as i64)
            .ok_or_else(|| format!("event time {s:?} ({expr}) is not a dateTime with a time")),
        other => Err(format!(
            "event time `{expr}` is {} (need epoch milliseconds or an RFC 3339 dateTime)",
            other.to_key_string()
        )),
    }
}
