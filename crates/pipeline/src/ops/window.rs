//! `op = "window"`: event-time windows per key, with watermarks and allowed lateness.
//!
//! ## Semantics (Kafka Streams' vocabulary)
//! * **Stream time** is the largest event time this partition's operator has seen. The
//!   **watermark** is `stream time − grace`.
//! * **Tumbling** windows are `[k·size, (k+1)·size)` (aligned to the epoch). **Hopping** windows
//!   are `[k·advance, k·advance + size)`; an event belongs to every one that contains it.
//!   A window **closes** — its result is emitted, once, and its state dropped — when the
//!   watermark reaches its end. An event is added to each of its windows that is still open;
//!   if all of them are closed it is **late**: sent to `late_topic` (or dropped and counted).
//! * **Session** windows group a key's events that are less than `gap` apart. A session
//!   `[first, last]` closes when the watermark reaches `last + gap`. An event with an event time
//!   below the watermark is late (it could belong to a session that already closed); any other
//!   event starts a session or extends — and possibly merges — open ones.
//! * Results are emitted only when a window closes (final results, no updates), ordered by
//!   window end, then key, then start. When the input ends (bounded runs, replays) every open
//!   window is emitted, as a watermark at +∞ would.
//! * The output value is `{<key field>, window_start, window_end, <aggregates>…}`: the key
//!   field is named after the key expression when it is a plain path (`patient_id`), else
//!   `key`. `window_end` is exclusive for tumbling/hopping windows and the last event's time
//!   for sessions. The output record's key is the window key; its timestamp is `window_end − 1`
//!   (tumbling/hopping) or `window_end` (session).
//!
//! State (open windows, stream time) is snapshotted into the pipeline's checkpoint.

//! Hot path: as the first step of a JSON pipeline whose key, time and aggregate inputs are all
//! top-level fields, the window reads those fields straight from the record's bytes
//! ([`crate::fields`]) and the record is never decoded into a `Value`. The key is formatted
//! into a reused buffer and looked up by `&str` in seeded fast-hash maps; a window's key is
//! allocated once, when the window opens; aggregate inputs are evaluated once per event and
//! compared in place.

use super::{OpResult, Operator, Out, reject, time_of};
use crate::agg::{AggSpec, Inputs, WindowAccs, eval_inputs};
use crate::config::{WindowConfig, WindowKind};
use crate::event::{Event, Origin};
use crate::expr::{Expr, Val};
use crate::fields::FieldSet;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Where the key, time and aggregate inputs are among the fields read from raw JSON.
struct RawPlan {
    fields: FieldSet,
    key: usize,
    time: Option<usize>,
    /// Per aggregate: its input's slot (`None` for `count()`).
    aggs: Vec<Option<usize>>,
}

impl RawPlan {
    /// A plan when every expression is a single top-level field.
    fn new(key: &Expr, time: Option<&Expr>, specs: &[AggSpec]) -> Option<RawPlan> {
        let mut names = vec![key.single_field()?];
        if let Some(t) = time {
            names.push(t.single_field()?);
        }
        for s in specs {
            if let Some(x) = &s.input {
                names.push(x.single_field()?);
            }
        }
        let fields = FieldSet::new(names.iter().copied());
        let slot = |e: &Expr| e.single_field().and_then(|f| fields.slot(f));
        Some(RawPlan {
            key: slot(key)?,
            time: match time {
                Some(t) => Some(slot(t)?),
                None => None,
            },
            aggs: specs
                .iter()
                .map(|s| s.input.as_ref().and_then(slot))
                .collect(),
            fields,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Open {
    key: Value,
    accs: WindowAccs,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Session {
    end: i64,
    key: Value,
    accs: WindowAccs,
}

#[derive(Deserialize)]
struct Snapshot {
    stream_time: i64,
    seq: u64,
    late: u64,
    open: Vec<((i64, String, i64), Open)>,
    sessions: Vec<(String, Vec<(i64, Session)>)>,
}

/// [`Snapshot`] by reference: what a checkpoint writes, without copying the windows.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    stream_time: i64,
    seq: u64,
    late: u64,
    open: Vec<((i64, &'a str, i64), &'a Open)>,
    sessions: Vec<(&'a str, Vec<(i64, &'a Session)>)>,
}

/// The operator.
pub struct Window {
    key: Expr,
    key_field: String,
    time: Option<Expr>,
    kind: WindowKind,
    size: i64,
    advance: i64,
    gap: i64,
    grace: i64,
    late_topic: Option<String>,
    specs: Vec<AggSpec>,
    max_open: usize,
    stream_time: i64,
    seq: u64,
    late: u64,
    /// Tumbling/hopping windows: key → start → state.
    open: HashMap<String, HashMap<i64, Open>>,
    /// Sessions: key → start → state.
    sessions: HashMap<String, BTreeMap<i64, Session>>,
    /// Every open window by (close time, key, start): the emission order.
    closing: BTreeSet<(i64, String, i64)>,
    keybuf: String,
    /// Set when the expressions allow reading fields from raw JSON.
    plan: Option<RawPlan>,
    /// The chain hands this step undecoded JSON ([`Operator::takes_raw_json`]).
    raw_json: bool,
}

/// Writes a key's text form (as [`Val::to_key_string`]) into `buf` without allocating for
/// strings and integers.
fn key_text(v: &Val<'_>, buf: &mut String) {
    buf.clear();
    match v {
        Val::Str(s) => buf.push_str(s),
        Val::Int(i) => {
            let _ = write!(buf, "{i}");
        }
        other => buf.push_str(&other.to_key_string()),
    }
}

impl Window {
    /// Builds it from its config, checking sizes and aggregates.
    pub fn new(c: &WindowConfig) -> Result<Window, String> {
        let ms = |d: Option<crate::duration::Duration>, what: &str| -> Result<i64, String> {
            match d {
                Some(d) if d.ms() > 0 => Ok(d.ms()),
                _ => Err(format!(
                    "a {:?} window needs {what} (e.g. {what} = \"1m\")",
                    c.kind
                )),
            }
        };
        let (size, advance, gap) = match c.kind {
            WindowKind::Tumbling => {
                let s = ms(c.size, "size")?;
                (s, s, 0)
            }
            WindowKind::Hopping => {
                let s = ms(c.size, "size")?;
                let a = ms(c.advance, "advance")?;
                if a > s {
                    return Err(format!(
                        "hopping advance ({a} ms) is longer than size ({s} ms): events between windows would be lost"
                    ));
                }
                if s / a > 1000 {
                    return Err("hopping size/advance is over 1000 windows per event".into());
                }
                (s, a, 0)
            }
            WindowKind::Session => (0, 0, ms(c.gap, "gap")?),
        };
        if c.aggregates.is_empty() {
            return Err("a window needs at least one aggregate, e.g. n = \"count()\"".into());
        }
        let specs = c
            .aggregates
            .iter()
            .map(|(n, s)| AggSpec::parse(n, s))
            .collect::<Result<Vec<_>, _>>()?;
        let key_field = c
            .key
            .root_field()
            .map_or("key", |_| c.key.source())
            .to_string();
        for reserved in [key_field.as_str(), "window_start", "window_end"] {
            if specs.iter().any(|s| s.name == reserved) {
                return Err(format!(
                    "aggregate name {reserved:?} clashes with an output field"
                ));
            }
        }
        if let Some(t) = &c.late_topic {
            aorta_log::validate_topic_name(t).map_err(|e| e.to_string())?;
        }
        let plan = RawPlan::new(&c.key, c.time.as_ref(), &specs);
        Ok(Window {
            plan,
            raw_json: false,
            key: c.key.clone(),
            key_field,
            time: c.time.clone(),
            kind: c.kind,
            size,
            advance,
            gap,
            grace: c.grace.ms(),
            late_topic: c.late_topic.clone(),
            specs,
            max_open: c.max_open_windows.max(1),
            stream_time: i64::MIN,
            seq: 0,
            late: 0,
            open: HashMap::default(),
            sessions: HashMap::default(),
            closing: BTreeSet::new(),
            keybuf: String::new(),
        })
    }

    fn too_many(&self) -> String {
        format!(
            "more than {} open windows in this partition (max_open_windows)",
            self.max_open
        )
    }

    fn emit(&self, origin: &Origin, key: &str, start: i64, end: i64, o: Open, out: &mut Out) {
        let mut v = Map::new();
        v.insert(self.key_field.clone(), o.key);
        v.insert("window_start".into(), Value::from(start));
        v.insert("window_end".into(), Value::from(end));
        for (spec, acc) in self.specs.iter().zip(&o.accs.accs) {
            v.insert(spec.name.clone(), acc.finish(spec.func));
        }
        out.next(Event {
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            raw: Bytes::new(),
            json: Some(Value::Object(v)),
            timestamp_ms: if self.kind == WindowKind::Session {
                end
            } else {
                end - 1
            },
            headers: Vec::new(),
            origin: origin.clone(),
        });
    }

    /// Emits (in close-time, key, start order) every window that closes at or before `upto`.
    fn close(&mut self, origin: &Origin, upto: i64, out: &mut Out) {
        while self.closing.first().is_some_and(|c| c.0 <= upto) {
            let Some((close_at, key, start)) = self.closing.pop_first() else {
                break;
            };
            match self.kind {
                WindowKind::Session => {
                    let Some(per_key) = self.sessions.get_mut(&key) else {
                        continue;
                    };
                    let Some(s) = per_key.remove(&start) else {
                        continue;
                    };
                    if per_key.is_empty() {
                        self.sessions.remove(&key);
                    }
                    let o = Open {
                        key: s.key,
                        accs: s.accs,
                    };
                    self.emit(origin, &key, start, s.end, o, out);
                }
                _ => {
                    let Some(per_key) = self.open.get_mut(&key) else {
                        continue;
                    };
                    let Some(o) = per_key.remove(&start) else {
                        continue;
                    };
                    if per_key.is_empty() {
                        self.open.remove(&key);
                    }
                    self.emit(origin, &key, start, close_at, o, out);
                }
            }
        }
    }

    /// Adds one event to its windows; `Ok(false)` when it is late.
    fn add(&mut self, e: &Event) -> Result<bool, String> {
        if self.raw_json
            && e.json.is_none()
            && let Some(plan) = self.plan.take()
        {
            let r = self.add_raw(&plan, e);
            self.plan = Some(plan);
            return r;
        }
        self.add_from(e.value(), e)
    }

    /// [`Window::add`] by reading the plan's fields from the undecoded JSON bytes.
    fn add_raw(&mut self, plan: &RawPlan, e: &Event) -> Result<bool, String> {
        let mut slots = Vec::with_capacity(plan.fields.len());
        if !plan
            .fields
            .read(&e.raw, &mut slots)
            .map_err(|x| x.to_string())?
        {
            // JSON but not an object: decode it and evaluate as usual.
            let v: Value = serde_json::from_slice(&e.raw).map_err(|x| x.to_string())?;
            return self.add_from(&v, e);
        }
        // Cloned, not moved out: an aggregate may read the key's field too.
        let key_val = slots[plan.key].clone();
        let ts = match (plan.time, &self.time) {
            (Some(i), Some(expr)) => time_of(slots[i].clone(), expr)?,
            _ => e.timestamp_ms,
        };
        self.add_with_key(key_val, ts, &Inputs::Slots(&slots, &plan.aggs))
    }

    /// [`Window::add`] by evaluating the expressions against a decoded payload.
    fn add_from(&mut self, value: &Value, e: &Event) -> Result<bool, String> {
        let meta = e.meta();
        let key_val = self.key.eval(value, &meta).map_err(|x| x.to_string())?;
        let ts = match &self.time {
            None => e.timestamp_ms,
            Some(expr) => time_of(expr.eval(value, &meta).map_err(|x| x.to_string())?, expr)?,
        };
        let values = eval_inputs(&self.specs, value, &meta)?;
        self.add_with_key(key_val, ts, &Inputs::Values(&values))
    }

    fn add_with_key(
        &mut self,
        key_val: Val<'_>,
        ts: i64,
        values: &Inputs<'_, '_>,
    ) -> Result<bool, String> {
        if matches!(key_val, Val::Null) {
            return Err(format!("window key `{}` is null", self.key));
        }
        let mut keybuf = std::mem::take(&mut self.keybuf);
        key_text(&key_val, &mut keybuf);
        let r = self.add_keyed(&key_val, &keybuf, ts, values);
        self.keybuf = keybuf;
        r
    }

    fn add_keyed(
        &mut self,
        key_val: &Val<'_>,
        key: &str,
        ts: i64,
        values: &Inputs<'_, '_>,
    ) -> Result<bool, String> {
        let stream_time = self.stream_time.max(ts);
        let watermark = stream_time.saturating_sub(self.grace);
        self.seq += 1;
        let seq = self.seq;
        let mut accepted = false;
        match self.kind {
            WindowKind::Tumbling | WindowKind::Hopping => {
                let mut start = ts.div_euclid(self.advance) * self.advance;
                while start + self.size > ts {
                    let end = start + self.size;
                    if end > watermark {
                        let specs = &self.specs;
                        if let Some(o) = self.open.get_mut(key).and_then(|m| m.get_mut(&start)) {
                            o.accs.add_values(specs, values, ts, seq)?;
                        } else {
                            if self.closing.len() >= self.max_open {
                                return Err(self.too_many());
                            }
                            let mut accs = WindowAccs::new(specs);
                            // A window opens only with an event it took.
                            accs.add_values(specs, values, ts, seq)?;
                            self.closing.insert((end, key.to_string(), start));
                            self.open.entry(key.to_string()).or_default().insert(
                                start,
                                Open {
                                    key: key_val.clone().into_json(),
                                    accs,
                                },
                            );
                        }
                        accepted = true;
                    }
                    start -= self.advance;
                }
            }
            WindowKind::Session => {
                if ts >= watermark {
                    self.add_session(key, key_val, ts, values, seq)?;
                    accepted = true;
                }
            }
        }
        self.stream_time = stream_time;
        Ok(accepted)
    }

    fn add_session(
        &mut self,
        key: &str,
        key_val: &Val<'_>,
        ts: i64,
        values: &Inputs<'_, '_>,
        seq: u64,
    ) -> Result<(), String> {
        let gap = self.gap;
        // Sessions of one key are disjoint and at least `gap` apart: those within `gap` of `ts`
        // are the last ones starting before `ts + gap`.
        let starts: Vec<i64> = self.sessions.get(key).map_or_else(Vec::new, |per_key| {
            per_key
                .range(..ts.saturating_add(gap))
                .rev()
                .take_while(|(_, s)| s.end > ts.saturating_sub(gap))
                .map(|(st, _)| *st)
                .collect()
        });
        if starts.is_empty() && self.closing.len() >= self.max_open {
            return Err(self.too_many());
        }
        let per_key = self.sessions.entry(key.to_string()).or_default();
        let mut session = Session {
            end: ts,
            key: key_val.clone().into_json(),
            accs: WindowAccs::new(&self.specs),
        };
        session.accs.add_values(&self.specs, values, ts, seq)?;
        let mut start = ts;
        for st in starts {
            if let Some(s) = per_key.remove(&st) {
                self.closing
                    .remove(&(s.end.saturating_add(gap), key.to_string(), st));
                start = start.min(st);
                session.end = session.end.max(s.end);
                session.accs.merge(&self.specs, s.accs);
            }
        }
        self.closing
            .insert((session.end.saturating_add(gap), key.to_string(), start));
        per_key.insert(start, session);
        Ok(())
    }
}

impl Operator for Window {
    fn kind(&self) -> &'static str {
        "window"
    }

    fn describe(&self) -> String {
        let shape = match self.kind {
            WindowKind::Tumbling => format!("tumbling {} ms", self.size),
            WindowKind::Hopping => format!("hopping {} ms every {} ms", self.size, self.advance),
            WindowKind::Session => format!("session gap {} ms", self.gap),
        };
        let aggs: Vec<String> = self.specs.iter().map(|s| s.name.clone()).collect();
        format!(
            "window {shape} by {} (grace {} ms, late -> {}) -> [{}]",
            self.key,
            self.grace,
            self.late_topic.as_deref().unwrap_or("dropped"),
            aggs.join(", ")
        )
    }

    fn process(&mut self, e: Event, out: &mut Out) -> OpResult {
        let accepted = match self.add(&e) {
            Ok(a) => a,
            Err(reason) => return reject(e, reason),
        };
        let origin = e.origin.clone();
        if !accepted {
            self.late += 1;
            if let Some(t) = &self.late_topic {
                out.topic(t, e);
            }
        }
        let watermark = self.stream_time.saturating_sub(self.grace);
        self.close(&origin, watermark, out);
        Ok(())
    }

    fn end_of_input(&mut self, out: &mut Out) {
        // The runner gives these outputs their origin (the end of the input).
        let origin = Origin {
            topic: "".into(),
            partition: 0,
            offset: u64::MAX,
        };
        self.close(&origin, i64::MAX, out);
    }

    fn dropped(&self) -> u64 {
        if self.late_topic.is_some() {
            0
        } else {
            self.late
        }
    }

    fn snapshot(&self) -> Option<super::State> {
        let mut sessions: Vec<(&str, Vec<(i64, &Session)>)> = self
            .sessions
            .iter()
            .map(|(k, m)| (k.as_str(), m.iter().map(|(s, v)| (*s, v)).collect()))
            .collect();
        sessions.sort_by(|a, b| a.0.cmp(b.0));
        let open = if self.kind == WindowKind::Session {
            Vec::new()
        } else {
            self.closing
                .iter()
                .filter_map(|(end, key, start)| {
                    let o = self.open.get(key)?.get(start)?;
                    Some(((*end, key.as_str(), *start), o))
                })
                .collect()
        };
        let snap = SnapshotRef {
            stream_time: self.stream_time,
            seq: self.seq,
            late: self.late,
            open,
            sessions,
        };
        super::state_of(&snap)
    }

    fn restore(&mut self, state: &super::RawValue) -> Result<(), String> {
        let s: Snapshot = super::state_as(state)?;
        self.stream_time = s.stream_time;
        self.seq = s.seq;
        self.late = s.late;
        self.open.clear();
        self.sessions.clear();
        self.closing.clear();
        for ((end, key, start), o) in s.open {
            self.closing.insert((end, key.clone(), start));
            self.open.entry(key).or_default().insert(start, o);
        }
        for (key, list) in s.sessions {
            let mut m = BTreeMap::new();
            for (start, sess) in list {
                self.closing
                    .insert((sess.end.saturating_add(self.gap), key.clone(), start));
                m.insert(start, sess);
            }
            self.sessions.insert(key, m);
        }
        Ok(())
    }

    fn topics(&self) -> Vec<String> {
        self.late_topic.iter().cloned().collect()
    }

    fn takes_raw_json(&mut self) -> bool {
        self.raw_json = self.plan.is_some();
        self.raw_json
    }
}
