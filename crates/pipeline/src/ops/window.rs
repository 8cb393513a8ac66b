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

use super::{Operator, Out, event_time};
use crate::agg::{AggSpec, WindowAccs};
use crate::config::{WindowConfig, WindowKind};
use crate::event::Event;
use crate::expr::{Expr, Val};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

#[derive(Serialize, Deserialize)]
struct Snapshot {
    stream_time: i64,
    seq: u64,
    late: u64,
    open: Vec<((i64, String, i64), Open)>,
    sessions: Vec<(String, Vec<(i64, Session)>)>,
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
    /// Tumbling/hopping windows by (end, key, start).
    open: BTreeMap<(i64, String, i64), Open>,
    /// Sessions per key by start.
    sessions: HashMap<String, BTreeMap<i64, Session>>,
    /// Sessions by (close time, key, start).
    closing: BTreeSet<(i64, String, i64)>,
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
        Ok(Window {
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
            open: BTreeMap::new(),
            sessions: HashMap::new(),
            closing: BTreeSet::new(),
        })
    }

    fn open_count(&self) -> usize {
        self.open.len() + self.closing.len()
    }

    fn emit(&self, template: &Event, key: &str, start: i64, end: i64, o: &Open, out: &mut Out) {
        let mut v = Map::new();
        v.insert(self.key_field.clone(), o.key.clone());
        v.insert("window_start".into(), Value::from(start));
        v.insert("window_end".into(), Value::from(end));
        for (spec, acc) in self.specs.iter().zip(&o.accs.accs) {
            v.insert(spec.name.clone(), acc.finish(spec.func));
        }
        let mut e = template.derive(Value::Object(v));
        e.key = Some(Bytes::copy_from_slice(key.as_bytes()));
        e.timestamp_ms = if self.kind == WindowKind::Session {
            end
        } else {
            end - 1
        };
        out.next(e);
    }

    fn close(&mut self, template: &Event, upto: i64, out: &mut Out) {
        while let Some(entry) = self.open.first_entry() {
            if entry.key().0 > upto {
                break;
            }
            let ((end, key, start), o) = entry.remove_entry();
            self.emit(template, &key, start, end, &o, out);
        }
        while let Some(first) = self.closing.first() {
            if first.0 > upto {
                break;
            }
            let Some((_, key, start)) = self.closing.pop_first() else {
                break;
            };
            let Some(per_key) = self.sessions.get_mut(&key) else {
                continue;
            };
            if let Some(s) = per_key.remove(&start) {
                let o = Open {
                    key: s.key,
                    accs: s.accs,
                };
                if per_key.is_empty() {
                    self.sessions.remove(&key);
                }
                self.emit(template, &key, start, s.end, &o, out);
            }
        }
    }

    fn add_session(
        &mut self,
        key: String,
        key_json: Value,
        ts: i64,
        values: &[Val<'_>],
        seq: u64,
    ) -> Result<(), String> {
        let gap = self.gap;
        let per_key = self.sessions.entry(key.clone()).or_default();
        // Sessions of one key are disjoint and at least `gap` apart: those within `gap` of `ts`
        // are the last ones starting before `ts + gap`.
        let mut merged: Vec<(i64, Session)> = Vec::new();
        let starts: Vec<i64> = per_key
            .range(..ts.saturating_add(gap))
            .rev()
            .take_while(|(_, s)| s.end > ts.saturating_sub(gap))
            .map(|(st, _)| *st)
            .collect();
        if starts.is_empty() && self.open.len() + self.closing.len() >= self.max_open {
            return Err(format!(
                "more than {} open windows in this partition (max_open_windows)",
                self.max_open
            ));
        }
        for st in starts {
            if let Some(s) = per_key.remove(&st) {
                self.closing
                    .remove(&(s.end.saturating_add(gap), key.clone(), st));
                merged.push((st, s));
            }
        }
        let mut session = Session {
            end: ts,
            key: key_json,
            accs: WindowAccs::new(&self.specs),
        };
        let mut start = ts;
        session.accs.add_values(&self.specs, values, ts, seq)?;
        for (st, s) in merged {
            start = start.min(st);
            session.end = session.end.max(s.end);
            session.accs.merge(&self.specs, s.accs);
        }
        self.closing
            .insert((session.end.saturating_add(gap), key, start));
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

    fn process(&mut self, e: Event, out: &mut Out) -> Result<(), String> {
        let key_val = self
            .key
            .eval(e.value(), &e.meta())
            .map_err(|x| x.to_string())?;
        if matches!(key_val, Val::Null) {
            return Err(format!("window key `{}` is null", self.key));
        }
        let key = key_val.to_key_string();
        let key_json = key_val.into_json();
        let ts = event_time(self.time.as_ref(), &e)?;
        let mut values = Vec::with_capacity(self.specs.len());
        for spec in &self.specs {
            values.push(match &spec.input {
                None => Val::Bool(true),
                Some(x) => x
                    .eval(e.value(), &e.meta())
                    .map_err(|err| format!("aggregate {:?}: {err}", spec.name))?,
            });
        }
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
                        let slot = (end, key.clone(), start);
                        if !self.open.contains_key(&slot) && self.open_count() >= self.max_open {
                            return Err(format!(
                                "more than {} open windows in this partition (max_open_windows)",
                                self.max_open
                            ));
                        }
                        let specs = &self.specs;
                        let o = self.open.entry(slot).or_insert_with(|| Open {
                            key: key_json.clone(),
                            accs: WindowAccs::new(specs),
                        });
                        o.accs.add_values(specs, &values, ts, seq)?;
                        accepted = true;
                    }
                    start -= self.advance;
                }
            }
            WindowKind::Session => {
                if ts >= watermark {
                    self.add_session(key, key_json, ts, &values, seq)?;
                    accepted = true;
                }
            }
        }
        drop(values);
        self.stream_time = stream_time;
        let template = Event {
            key: None,
            raw: Bytes::new(),
            json: None,
            timestamp_ms: e.timestamp_ms,
            headers: Vec::new(),
            origin: e.origin.clone(),
        };
        if !accepted {
            self.late += 1;
            match &self.late_topic {
                Some(t) => out.topic(t, e),
                None => {}
            }
        }
        self.close(&template, watermark, out);
        Ok(())
    }

    fn end_of_input(&mut self, out: &mut Out) {
        let template = Event {
            key: None,
            raw: Bytes::new(),
            json: None,
            timestamp_ms: self.stream_time,
            headers: Vec::new(),
            origin: crate::event::Origin {
                topic: "".into(),
                partition: 0,
                offset: u64::MAX,
            },
        };
        self.close(&template, i64::MAX, out);
    }

    fn dropped(&self) -> u64 {
        if self.late_topic.is_some() {
            0
        } else {
            self.late
        }
    }

    fn snapshot(&self) -> Option<Value> {
        let mut sessions: Vec<(String, Vec<(i64, Session)>)> = self
            .sessions
            .iter()
            .map(|(k, m)| (k.clone(), m.iter().map(|(s, v)| (*s, v.clone())).collect()))
            .collect();
        sessions.sort_by(|a, b| a.0.cmp(&b.0));
        let snap = Snapshot {
            stream_time: self.stream_time,
            seq: self.seq,
            late: self.late,
            open: self
                .open
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            sessions,
        };
        serde_json::to_value(snap).ok()
    }

    fn restore(&mut self, state: Value) -> Result<(), String> {
        let s: Snapshot = serde_json::from_value(state).map_err(|e| e.to_string())?;
        self.stream_time = s.stream_time;
        self.seq = s.seq;
        self.late = s.late;
        self.open = s.open.into_iter().collect();
        self.sessions.clear();
        self.closing.clear();
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
}
