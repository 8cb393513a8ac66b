//! A lock-free latency histogram, shared by the layers that time their work (log appends, MLLP
//! ACKs, HTTP requests) and rendered by the server as Prometheus histograms.
//!
//! Buckets are fixed upper bounds in microseconds, chosen to span a page-cache append (tens of
//! µs) to a stalled disk (seconds). Recording is one atomic add per bucket hit plus the sum and
//! count; nothing allocates or locks on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (`+Inf` is implicit).
pub const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// Counts of durations per bucket, plus their sum and count.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// A consistent-enough copy of a [`Histogram`] (each field is read atomically; a sample recorded
/// during the copy may be in `count` but not yet in its bucket, which Prometheus tolerates).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Non-cumulative count per bucket of [`BUCKETS_US`].
    pub buckets: Vec<u64>,
    /// Samples recorded, including those above the last bound.
    pub count: u64,
    /// Sum of all samples in microseconds.
    pub sum_us: u64,
}

impl Histogram {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the current counts.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// The smallest bucket bound (µs) at or under which at least `q` of the samples fall, or
    /// `None` with no samples or when the quantile lies above the last bound.
    pub fn quantile_bound_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let want = (q * self.count as f64).ceil() as u64;
        let mut seen = 0;
        for (b, n) in BUCKETS_US.iter().zip(&self.buckets) {
            seen += n;
            if seen >= want {
                return Some(*b);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_their_bucket_and_sum() {
        let h = Histogram::default();
        h.record(Duration::from_micros(50)); // on the bound: first bucket
        h.record(Duration::from_micros(51)); // just above: second
        h.record(Duration::from_millis(3)); // 5 ms bucket
        h.record(Duration::from_secs(60)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.sum_us, 50 + 51 + 3_000 + 60_000_000);
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[6], 1);
        assert_eq!(s.buckets.iter().sum::<u64>(), 3);
        assert_eq!(s.quantile_bound_us(0.5), Some(100));
        assert_eq!(s.quantile_bound_us(0.75), Some(5_000));
        assert_eq!(s.quantile_bound_us(1.0), None);
    }
}
