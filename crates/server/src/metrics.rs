//! Prometheus text exposition (format 0.0.4) and the server's own counters.
//!
//! Counters that other layers keep (MLLP stats, pipeline stats, latency histograms) are read at
//! scrape time, so nothing is double-booked. Label values are escaped per the format (`\\`,
//! `\"`, `\n`) and never carry PHI: they are topic, pipeline, listener and route names.

use aorta_log::metrics::BUCKETS_US;
use aorta_log::{Histogram, HistogramSnapshot};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Builds one exposition document.
#[derive(Default)]
pub struct Exposition {
    out: String,
    declared: std::collections::HashSet<String>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)], extra: Option<(&str, &str)>) -> String {
    let all: Vec<String> = pairs
        .iter()
        .copied()
        .chain(extra)
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if all.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", all.join(","))
    }
}

impl Exposition {
    fn declare(&mut self, name: &str, kind: &str, help: &str) {
        if self.declared.insert(name.to_string()) {
            let _ = writeln!(self.out, "# HELP {name} {help}");
            let _ = writeln!(self.out, "# TYPE {name} {kind}");
        }
    }

    /// A counter sample (`name` must end in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: u64) {
        self.declare(name, "counter", help);
        let _ = writeln!(self.out, "{name}{} {v}", labels(l, None));
    }

    /// A gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: f64) {
        self.declare(name, "gauge", help);
        let _ = writeln!(self.out, "{name}{} {v}", labels(l, None));
    }

    /// A histogram in seconds from a microsecond snapshot.
    pub fn histogram(&mut self, name: &str, help: &str, l: &[(&str, &str)], s: &HistogramSnapshot) {
        self.declare(name, "histogram", help);
        let mut cumulative = 0;
        for (bound, n) in BUCKETS_US.iter().zip(&s.buckets) {
            cumulative += n;
            let le = format!("{}", *bound as f64 / 1e6);
            let _ = writeln!(
                self.out,
                "{name}_bucket{} {cumulative}",
                labels(l, Some(("le", &le)))
            );
        }
        let _ = writeln!(
            self.out,
            "{name}_bucket{} {}",
            labels(l, Some(("le", "+Inf"))),
            s.count
        );
        let _ = writeln!(
            self.out,
            "{name}_sum{} {}",
            labels(l, None),
            s.sum_us as f64 / 1e6
        );
        let _ = writeln!(self.out, "{name}_count{} {}", labels(l, None), s.count);
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Requests per route and status, and their latency.
#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
}

impl HttpMetrics {
    /// Counts one request.
    pub fn observe(&self, route: &str, status: u16, took: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route.to_string(), status))
            .or_default() += 1;
        let h = self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(route.to_string())
            .or_default()
            .clone();
        h.record(took);
    }

    /// Writes the HTTP series.
    pub fn render(&self, x: &mut Exposition) {
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            x.counter(
                "aorta_http_requests_total",
                "HTTP requests answered, by route template and status.",
                &[("route", route), ("status", &status.to_string())],
                *n,
            );
        }
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            x.histogram(
                "aorta_http_request_duration_seconds",
                "Time to answer an HTTP request, by route template.",
                &[("route", route)],
                &h.snapshot(),
            );
        }
    }
}

/// Counts kept under a lock by label set (FHIR ingest outcomes, alert acks).
#[derive(Default)]
pub struct LabelledCounter(Mutex<BTreeMap<Vec<String>, u64>>);

impl LabelledCounter {
    /// Adds `n` to the series with these label values.
    pub fn add(&self, values: &[&str], n: u64) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(values.iter().map(|s| s.to_string()).collect())
            .or_default() += n;
    }

    /// Writes every series.
    pub fn render(&self, x: &mut Exposition, name: &str, help: &str, names: &[&str]) {
        for (values, n) in self.0.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let l: Vec<(&str, &str)> = names
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            x.counter(name, help, &l, *n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_families_declared_once() {
        let mut x = Exposition::default();
        x.counter("a_total", "h", &[("t", "x\"y\\z\nw")], 1);
        x.counter("a_total", "h", &[("t", "b")], 2);
        let s = x.finish();
        assert_eq!(s.matches("# TYPE a_total counter").count(), 1);
        assert!(s.contains(r#"a_total{t="x\"y\\z\nw"} 1"#), "{s}");
    }
}
