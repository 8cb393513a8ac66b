//! One module per top-level command.

pub mod audit;
pub mod bench;
pub mod bench_fhir;
pub mod bench_kafka;
pub mod bench_mllp;
pub mod bench_pipeline;
pub mod bench_sepsis;
pub mod consume;
pub mod demo;
mod demo_elr;
pub mod eval;
pub mod fhir;
pub mod hl7;
pub mod pipeline;
pub mod produce;
pub mod score;
pub mod serve;
pub mod token;
pub mod topics;

/// Human-readable byte count (KiB, MiB, GiB).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// p50, p99 and max of samples (sorted in place); NaN for none.
pub fn quantiles(v: &mut [f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    (q(0.5), q(0.99), v[v.len() - 1])
}
