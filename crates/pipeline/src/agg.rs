//! Window aggregates: `count()`, `count(x)`, `sum(x)`, `avg(x)`, `min(x)`, `max(x)`,
//! `first(x)`, `last(x)` (by event time; ties keep arrival order), `count_distinct(x)` and
//! `percentile(x, q)`.
//!
//! Semantics follow SQL: `null` (or a missing field) is skipped by every aggregate except
//! `count()`; `sum`/`avg`/`min`/`max` of no values are `null`. `percentile` is exact and
//! interpolates linearly between the two nearest ranks (as DuckDB's `quantile_cont` and
//! PostgreSQL's `percentile_cont`): rank `(n − 1)·q`. It keeps every value of the window, so its
//! memory is bounded by the window's event count.
//!
//! Accumulators merge (session windows merge when an event bridges two sessions), and
//! serialise to JSON for checkpoints.

use crate::expr::{Expr, Meta, Val};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use std::collections::BTreeSet;

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AggFn {
    /// Events (no argument) or non-null values.
    Count,
    /// Sum of numbers.
    Sum,
    /// Mean of numbers.
    Avg,
    /// Smallest number or string.
    Min,
    /// Largest number or string.
    Max,
    /// Value at the earliest event time.
    First,
    /// Value at the latest event time.
    Last,
    /// Number of distinct values.
    CountDistinct,
    /// Exact linear-interpolated percentile, `q` in [0, 1].
    Percentile(f64),
}

/// One `name = "fn(expr)"` entry.
#[derive(Clone, Debug)]
pub struct AggSpec {
    /// Output field.
    pub name: String,
    /// The function.
    pub func: AggFn,
    /// Its input; `None` only for `count()`.
    pub input: Option<Expr>,
}

impl AggSpec {
    /// Parses `fn(expr)` / `percentile(expr, q)` / `count()`.
    pub fn parse(name: &str, text: &str) -> Result<AggSpec, String> {
        let t = text.trim();
        let (Some(open), true) = (t.find('('), t.ends_with(')')) else {
            return Err(format!(
                "aggregate {name:?} = {text:?}: write fn(expression), e.g. avg(hr)"
            ));
        };
        let fname = t[..open].trim();
        let inner = t[open + 1..t.len() - 1].trim();
        let mut arg = inner;
        let func = match fname {
            "count" => AggFn::Count,
            "sum" => AggFn::Sum,
            "avg" => AggFn::Avg,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            "first" => AggFn::First,
            "last" => AggFn::Last,
            "count_distinct" => AggFn::CountDistinct,
            "percentile" => {
                let Some(comma) = inner.rfind(',') else {
                    return Err(format!(
                        "aggregate {name:?}: percentile needs (expression, q), e.g. percentile(hr, 0.9)"
                    ));
                };
                let q: f64 = inner[comma + 1..].trim().parse().map_err(|_| {
                    format!("aggregate {name:?}: the percentile's q must be a number in [0, 1]")
                })?;
                if !(0.0..=1.0).contains(&q) {
                    return Err(format!(
                        "aggregate {name:?}: q = {q} is outside [0, 1] (0.9 is the 90th percentile)"
                    ));
                }
                arg = inner[..comma].trim();
                AggFn::Percentile(q)
            }
            other => {
                return Err(format!(
                    "aggregate {name:?}: unknown function {other:?} (count, sum, avg, min, max, first, last, count_distinct, percentile)"
                ));
            }
        };
        let input = if arg.is_empty() {
            if func != AggFn::Count {
                return Err(format!("aggregate {name:?}: {fname}() needs an expression"));
            }
            None
        } else {
            Some(Expr::parse(arg).map_err(|e| format!("aggregate {name:?}: {e}"))?)
        };
        Ok(AggSpec {
            name: name.to_string(),
            func,
            input,
        })
    }
}

/// The running state of one aggregate in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum Acc {
    /// Count.
    N {
        /// Count so far.
        n: u64,
    },
    /// Sum and avg.
    S {
        /// Sum of values.
        sum: f64,
        /// Number of values.
        n: u64,
    },
    /// Min or max.
    M {
        /// Best value so far (`null` while none).
        v: Extreme,
    },
    /// First or last, with its event time and arrival sequence.
    T {
        /// The value.
        v: Value,
        /// Its event time.
        ts: i64,
        /// Its arrival order (for ties).
        seq: u64,
        /// Set once a value was taken.
        set: bool,
    },
    /// Distinct values (their JSON text).
    D {
        /// The set.
        set: BTreeSet<String>,
    },
    /// Every value, for percentiles.
    P {
        /// The values.
        vals: Vec<f64>,
    },
}

impl Acc {
    /// An empty accumulator for `f`.
    pub fn new(f: AggFn) -> Acc {
        match f {
            AggFn::Count => Acc::N { n: 0 },
            AggFn::Sum | AggFn::Avg => Acc::S { sum: 0.0, n: 0 },
            AggFn::Min | AggFn::Max => Acc::M { v: Extreme::None },
            AggFn::First | AggFn::Last => Acc::T {
                v: Value::Null,
                ts: 0,
                seq: 0,
                set: false,
            },
            AggFn::CountDistinct => Acc::D {
                set: BTreeSet::new(),
            },
            AggFn::Percentile(_) => Acc::P { vals: Vec::new() },
        }
    }

    /// Whether [`Acc::add`] takes `v`, with its reason if not; changes nothing (a window then
    /// takes an event into every aggregate or into none).
    pub fn check(&self, f: AggFn, v: &Val<'_>) -> Result<(), String> {
        if matches!(v, Val::Null) {
            return Ok(());
        }
        match self {
            Acc::S { .. } if v.as_f64().is_none() => {
                Err(format!("{f:?} needs numbers, got {}", v.to_key_string()))
            }
            Acc::P { .. } if v.as_f64().is_none() => Err(format!(
                "percentile needs numbers, got {}",
                v.to_key_string()
            )),
            Acc::M { v: best } => {
                if !matches!(v, Val::Int(_) | Val::Float(_) | Val::Str(_)) {
                    Err(format!(
                        "{f:?} needs numbers or strings, got {}",
                        v.to_key_string()
                    ))
                } else if *best != Extreme::None && compare_val(v, best).is_none() {
                    Err(format!(
                        "{f:?} cannot compare {} with {}: mixed kinds",
                        v.to_key_string(),
                        best.to_json()
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Adds one event's value.
    pub fn add(&mut self, f: AggFn, v: &Val<'_>, ts: i64, seq: u64) -> Result<(), String> {
        self.check(f, v)?;
        self.apply(f, v, ts, seq);
        Ok(())
    }

    /// Adds a value [`Acc::check`] took.
    fn apply(&mut self, f: AggFn, v: &Val<'_>, ts: i64, seq: u64) {
        if matches!(v, Val::Null) {
            return;
        }
        match self {
            Acc::N { n } => *n += 1,
            Acc::S { sum, n } => {
                *sum += v.as_f64().unwrap_or(0.0);
                *n += 1;
            }
            Acc::M { v: best } => {
                // Compared in place: the value is copied only when it is the new extreme.
                let take = match compare_val(v, best) {
                    None => *best == Extreme::None,
                    Some(o) => (f == AggFn::Min && o.is_lt()) || (f == AggFn::Max && o.is_gt()),
                };
                if take {
                    *best = Extreme::of(v);
                }
            }
            Acc::T {
                v: cur,
                ts: cts,
                seq: cseq,
                set,
            } => {
                let later = (ts, seq) > (*cts, *cseq);
                let take = !*set || if f == AggFn::Last { later } else { !later };
                if take {
                    *cur = v.clone().into_json();
                    *cts = ts;
                    *cseq = seq;
                    *set = true;
                }
            }
            Acc::D { set } => {
                set.insert(v.to_key_string());
            }
            Acc::P { vals } => vals.push(v.as_f64().unwrap_or(f64::NAN)),
        }
    }

    /// Folds `other` (a later or earlier part of the same window) into this one.
    pub fn merge(&mut self, f: AggFn, other: Acc) {
        match (self, other) {
            (Acc::N { n }, Acc::N { n: m }) => *n += m,
            (Acc::S { sum, n }, Acc::S { sum: s2, n: n2 }) => {
                *sum += s2;
                *n += n2;
            }
            (Acc::M { v }, Acc::M { v: o })
                if o != Extreme::None
                    && (*v == Extreme::None
                        || compare(&o, v).is_some_and(|c| {
                            (f == AggFn::Min && c.is_lt()) || (f == AggFn::Max && c.is_gt())
                        })) =>
            {
                *v = o;
            }
            (
                Acc::T { v, ts, seq, set },
                Acc::T {
                    v: v2,
                    ts: t2,
                    seq: s2,
                    set: set2,
                },
            ) if set2 => {
                let later = (t2, s2) > (*ts, *seq);
                if !*set || if f == AggFn::Last { later } else { !later } {
                    *v = v2;
                    *ts = t2;
                    *seq = s2;
                    *set = true;
                }
            }
            (Acc::D { set }, Acc::D { set: s2 }) => set.extend(s2),
            (Acc::P { vals }, Acc::P { vals: v2 }) => vals.extend(v2),
            _ => {}
        }
    }

    /// The aggregate's value.
    pub fn finish(&self, f: AggFn) -> Value {
        let num = |x: f64| Number::from_f64(x).map_or(Value::Null, Value::Number);
        match self {
            Acc::N { n } => Value::from(*n),
            Acc::S { sum, n } => {
                if *n == 0 {
                    Value::Null
                } else if f == AggFn::Avg {
                    num(*sum / *n as f64)
                } else {
                    num(*sum)
                }
            }
            Acc::M { v } => v.to_json(),
            Acc::T { v, .. } => v.clone(),
            Acc::D { set } => Value::from(set.len() as u64),
            Acc::P { vals } => {
                let AggFn::Percentile(q) = f else {
                    return Value::Null;
                };
                if vals.is_empty() {
                    return Value::Null;
                }
                let mut s = vals.clone();
                s.sort_by(f64::total_cmp);
                let rank = (s.len() - 1) as f64 * q;
                let lo = rank.floor() as usize;
                let hi = rank.ceil() as usize;
                num(s[lo] + (rank - lo as f64) * (s[hi] - s[lo]))
            }
        }
    }
}

fn compare_val(a: &Val<'_>, b: &Extreme) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Val::Int(i), Extreme::Int(j)) => Some(i.cmp(j)),
        (Val::Int(_) | Val::Float(_), Extreme::Int(_) | Extreme::Float(_)) => {
            a.as_f64()?.partial_cmp(&b.as_f64()?)
        }
        (Val::Str(x), Extreme::Str(y)) => Some(x.as_ref().cmp(y.as_str())),
        _ => None,
    }
}

fn compare(a: &Extreme, b: &Extreme) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Extreme::Int(i), Extreme::Int(j)) => Some(i.cmp(j)),
        (Extreme::Str(x), Extreme::Str(y)) => Some(x.cmp(y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// A min/max so far, typed, so that each comparison is a comparison (a JSON number would be
/// re-parsed from its text on every event under `arbitrary_precision`). Checkpointed as the
/// plain JSON value (`null`, a number or a string).
#[derive(Clone, Debug, PartialEq)]
pub enum Extreme {
    /// No value yet.
    None,
    /// An integer.
    Int(i64),
    /// A decimal.
    Float(f64),
    /// A string.
    Str(String),
}

impl Extreme {
    /// From a number or string (anything else is `None`; callers check the kind first).
    fn of(v: &Val<'_>) -> Extreme {
        match v {
            Val::Int(i) => Extreme::Int(*i),
            Val::Float(f) => Extreme::Float(*f),
            Val::Str(s) => Extreme::Str(s.to_string()),
            _ => Extreme::None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Extreme::Int(i) => Some(*i as f64),
            Extreme::Float(f) => Some(*f),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Extreme::None => Value::Null,
            Extreme::Int(i) => Value::from(*i),
            Extreme::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Extreme::Str(s) => Value::String(s.clone()),
        }
    }
}

impl Serialize for Extreme {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Extreme::None => s.serialize_unit(),
            Extreme::Int(i) => s.serialize_i64(*i),
            Extreme::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Extreme::Float(_) => s.serialize_unit(),
            Extreme::Str(x) => s.serialize_str(x),
        }
    }
}

impl<'de> Deserialize<'de> for Extreme {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Extreme, D::Error> {
        // Through a `Value`: numbers then read the same whatever serde_json's features.
        Ok(match Value::deserialize(d)? {
            Value::Null => Extreme::None,
            Value::Number(n) => match n.as_i64() {
                Some(i) => Extreme::Int(i),
                None => Extreme::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(x) => Extreme::Str(x),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "a min/max state is a number or a string, not {other}"
                )));
            }
        })
    }
}

/// Evaluates each aggregate's input against one event, in spec order (`true` for `count()`).
pub fn eval_inputs<'a>(
    specs: &[AggSpec],
    value: &'a Value,
    meta: &Meta<'a>,
) -> Result<Vec<Val<'a>>, String> {
    specs
        .iter()
        .map(|spec| match &spec.input {
            None => Ok(Val::Bool(true)),
            Some(e) => e
                .eval(value, meta)
                .map_err(|err| format!("aggregate {:?}: {err}", spec.name)),
        })
        .collect()
}

/// One event's aggregate inputs, by aggregate: values evaluated for it, or slots of the fields
/// read from its bytes (no per-event vector either way).
pub enum Inputs<'v, 'a> {
    /// One value per aggregate.
    Values(&'v [Val<'a>]),
    /// Field slots, and per aggregate the slot of its input (`None` for `count()`).
    Slots(&'v [Val<'a>], &'v [Option<usize>]),
}

static COUNTED: Val<'static> = Val::Bool(true);

impl<'v, 'a> Inputs<'v, 'a> {
    /// Aggregate `i`'s input (`true` for `count()`).
    pub fn get(&self, i: usize) -> &'v Val<'a> {
        match self {
            Inputs::Values(v) => v.get(i).unwrap_or(&COUNTED),
            Inputs::Slots(slots, at) => match at.get(i).copied().flatten() {
                Some(s) => slots.get(s).unwrap_or(&COUNTED),
                None => &COUNTED,
            },
        }
    }
}

/// The accumulators of one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowAccs {
    /// Events in the window (`count()` semantics, kept even without a count aggregate).
    pub events: u64,
    /// One accumulator per aggregate, in spec order.
    pub accs: Vec<Acc>,
}

impl WindowAccs {
    /// Empty accumulators for `specs`.
    pub fn new(specs: &[AggSpec]) -> WindowAccs {
        WindowAccs {
            events: 0,
            accs: specs.iter().map(|s| Acc::new(s.func)).collect(),
        }
    }

    /// Adds one event: into every aggregate, or (with the first reason) into none.
    pub fn add(
        &mut self,
        specs: &[AggSpec],
        value: &Value,
        meta: &Meta<'_>,
        ts: i64,
        seq: u64,
    ) -> Result<(), String> {
        let values = eval_inputs(specs, value, meta)?;
        self.add_values(specs, &Inputs::Values(&values), ts, seq)
    }

    /// Adds one event whose aggregate inputs were already evaluated (in spec order).
    pub fn add_values(
        &mut self,
        specs: &[AggSpec],
        inputs: &Inputs<'_, '_>,
        ts: i64,
        seq: u64,
    ) -> Result<(), String> {
        for (i, (spec, acc)) in specs.iter().zip(&self.accs).enumerate() {
            acc.check(spec.func, inputs.get(i))
                .map_err(|err| format!("aggregate {:?}: {err}", spec.name))?;
        }
        self.events += 1;
        for (i, (spec, acc)) in specs.iter().zip(self.accs.iter_mut()).enumerate() {
            acc.apply(spec.func, inputs.get(i), ts, seq);
        }
        Ok(())
    }

    /// Folds another part of the same window in.
    pub fn merge(&mut self, specs: &[AggSpec], other: WindowAccs) {
        self.events += other.events;
        for ((spec, acc), o) in specs.iter().zip(self.accs.iter_mut()).zip(other.accs) {
            acc.merge(spec.func, o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(spec: &str, vals: &[Value]) -> Value {
        let s = AggSpec::parse("x", spec).unwrap();
        let mut acc = Acc::new(s.func);
        for (i, v) in vals.iter().enumerate() {
            let val = s.input.as_ref().map_or(Val::Bool(true), |e| {
                e.eval(v, &Meta::default()).unwrap().into_static()
            });
            acc.add(s.func, &val, i as i64, i as u64).unwrap();
        }
        acc.finish(s.func)
    }

    #[test]
    fn sql_semantics() {
        let vals = [
            json!({"v": 3}),
            json!({"v": null}),
            json!({"v": 1}),
            json!({}),
            json!({"v": 2}),
        ];
        assert_eq!(run("count()", &vals), json!(5));
        assert_eq!(run("count(v)", &vals), json!(3));
        assert_eq!(run("sum(v)", &vals), json!(6.0));
        assert_eq!(run("avg(v)", &vals), json!(2.0));
        assert_eq!(run("min(v)", &vals), json!(1));
        assert_eq!(run("max(v)", &vals), json!(3));
        assert_eq!(run("first(v)", &vals), json!(3));
        assert_eq!(run("last(v)", &vals), json!(2));
        assert_eq!(run("count_distinct(v)", &vals), json!(3));
        assert_eq!(run("avg(v)", &[json!({})]), Value::Null);
    }

    #[test]
    fn percentile_interpolates_like_percentile_cont() {
        let vals: Vec<Value> = [15, 20, 35, 40, 50]
            .iter()
            .map(|v| json!({"v": v}))
            .collect();
        // PostgreSQL: percentile_cont(0.4) over (15,20,35,40,50) = 29; 0.5 = 35; 0.9 = 46.
        assert_eq!(run("percentile(v, 0.4)", &vals), json!(29.0));
        assert_eq!(run("percentile(v, 0.5)", &vals), json!(35.0));
        assert_eq!(run("percentile(v, 0.9)", &vals), json!(46.0));
        assert_eq!(run("percentile(v, 0)", &vals), json!(15.0));
        assert_eq!(run("percentile(v, 1)", &vals), json!(50.0));
    }

    #[test]
    fn bad_specs_are_explained() {
        assert!(
            AggSpec::parse("a", "avg")
                .unwrap_err()
                .contains("fn(expression)")
        );
        assert!(
            AggSpec::parse("a", "median(hr)")
                .unwrap_err()
                .contains("unknown function")
        );
        assert!(
            AggSpec::parse("a", "percentile(hr, 90)")
                .unwrap_err()
                .contains("outside [0, 1]")
        );
        assert!(
            AggSpec::parse("a", "sum()")
                .unwrap_err()
                .contains("needs an expression")
        );
    }

    #[test]
    fn merging_equals_adding_everything_to_one() {
        let specs: Vec<AggSpec> = [
            ("n", "count()"),
            ("s", "sum(v)"),
            ("mx", "max(v)"),
            ("l", "last(v)"),
            ("d", "count_distinct(v)"),
            ("p", "percentile(v, 0.5)"),
        ]
        .iter()
        .map(|(n, s)| AggSpec::parse(n, s).unwrap())
        .collect();
        let vals: Vec<Value> = (0..10).map(|i| json!({"v": (i * 7) % 5})).collect();
        let mut whole = WindowAccs::new(&specs);
        let mut a = WindowAccs::new(&specs);
        let mut b = WindowAccs::new(&specs);
        for (i, v) in vals.iter().enumerate() {
            whole
                .add(&specs, v, &Meta::default(), i as i64, i as u64)
                .unwrap();
            let part = if i % 3 == 0 { &mut a } else { &mut b };
            part.add(&specs, v, &Meta::default(), i as i64, i as u64)
                .unwrap();
        }
        b.merge(&specs, a);
        for (i, s) in specs.iter().enumerate() {
            assert_eq!(
                whole.accs[i].finish(s.func),
                b.accs[i].finish(s.func),
                "{}",
                s.name
            );
        }
    }
}
