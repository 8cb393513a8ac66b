//! `op = "dedupe"`: drops an event whose key was accepted less than `window` before or after
//! it (event time). The remembered keys are bounded by `max_keys` and by time: keys older than
//! the stream time minus the window are forgotten.

use super::{OpResult, Operator, Out, event_time, reject};
use crate::duration::Duration;
use crate::event::Event;
use crate::expr::Expr;
use serde_json::json;
use std::collections::HashMap;

/// The operator.
pub struct Dedupe {
    key: Expr,
    window: Duration,
    time: Option<Expr>,
    max_keys: usize,
    seen: HashMap<String, i64>,
    stream_time: i64,
    since_sweep: usize,
    dropped: u64,
}

impl Dedupe {
    /// Builds it.
    pub fn new(
        key: Expr,
        window: Duration,
        time: Option<Expr>,
        max_keys: usize,
    ) -> Result<Dedupe, String> {
        if window.ms() <= 0 {
            return Err("dedupe window must be longer than 0".into());
        }
        if max_keys == 0 {
            return Err("dedupe max_keys must be at least 1".into());
        }
        Ok(Dedupe {
            key,
            window,
            time,
            max_keys,
            seen: HashMap::new(),
            stream_time: i64::MIN,
            since_sweep: 0,
            dropped: 0,
        })
    }

    fn identity(&self, e: &Event) -> Result<(String, i64), String> {
        let k = self
            .key
            .eval(e.value(), &e.meta())
            .map_err(|x| x.to_string())?;
        if matches!(k, crate::expr::Val::Null) {
            return Err(format!("dedupe key `{}` is null", self.key));
        }
        Ok((k.to_key_string(), event_time(self.time.as_ref(), e)?))
    }

    fn sweep(&mut self) {
        let horizon = self.stream_time.saturating_sub(self.window.ms());
        self.seen.retain(|_, t| *t >= horizon);
        if self.seen.len() > self.max_keys {
            // Forget the oldest first; ties by key so the result is deterministic.
            let mut all: Vec<(i64, String)> = self.seen.drain().map(|(k, t)| (t, k)).collect();
            all.sort();
            let keep = all.split_off(all.len() - self.max_keys);
            self.seen = keep.into_iter().map(|(t, k)| (k, t)).collect();
        }
        self.since_sweep = 0;
    }
}

impl Operator for Dedupe {
    fn kind(&self) -> &'static str {
        "dedupe"
    }
    fn describe(&self) -> String {
        format!("dedupe by {} within {}", self.key, self.window)
    }
    fn process(&mut self, e: Event, out: &mut Out) -> OpResult {
        let (k, ts) = match self.identity(&e) {
            Ok(x) => x,
            Err(reason) => return reject(e, reason),
        };
        self.stream_time = self.stream_time.max(ts);
        if let Some(&first) = self.seen.get(&k)
            && (ts - first).abs() < self.window.ms()
        {
            self.dropped += 1;
            return Ok(());
        }
        self.seen.insert(k, ts);
        self.since_sweep += 1;
        if self.since_sweep >= 4096 || self.seen.len() > self.max_keys {
            self.sweep();
        }
        out.next(e);
        Ok(())
    }
    fn dropped(&self) -> u64 {
        self.dropped
    }
    fn snapshot(&self) -> Option<super::State> {
        let mut keys: Vec<(&String, &i64)> = self.seen.iter().collect();
        keys.sort();
        super::state_of(
            &json!({"stream_time": self.stream_time, "seen": keys, "dropped": self.dropped}),
        )
    }
    fn restore(&mut self, state: &super::RawValue) -> Result<(), String> {
        #[derive(serde::Deserialize)]
        struct S {
            stream_time: i64,
            seen: Vec<(String, i64)>,
            dropped: u64,
        }
        let s: S = super::state_as(state)?;
        self.stream_time = s.stream_time;
        self.seen = s.seen.into_iter().collect();
        self.dropped = s.dropped;
        Ok(())
    }
}
