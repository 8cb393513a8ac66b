//! Window results checked against DuckDB on the same events.
//!
//! Events arrive out of order (up to 8 s) and some very late (20–120 s). The test decides which
//! (event, window) pairs a correct stream processor must accept by the rule the window module
//! documents — a window closes when `max event time seen − grace` reaches its end (sessions: an
//! event below that watermark is late) — with a plain scan written here. DuckDB then computes
//! every aggregate over exactly those pairs with SQL (`GROUP BY`, `quantile_cont`,
//! `arg_max`, sessions by `lag`/running `sum`). Every window must be equal: counts, min, max,
//! first, last and distinct counts exactly; sums, averages and percentiles within 1e-9
//! relative (DuckDB and we may add the same doubles in another order). The late records the
//! pipeline sent to its late topic must be exactly the ones the scan says are late.

mod common;

use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, Record, TopicConfig};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

const BASE: i64 = 1_700_000_000_000;
const GRACE: i64 = 5_000;

#[derive(Clone, Debug)]
struct Ev {
    k: String,
    ts: i64,
    hr: i64,
    temp: f64,
    code: String,
}

/// A small deterministic generator (no dependency, same data on every machine).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Arrival order = vector order. `spread` ms between arrivals; event times jittered back.
fn events(n: usize, keys: u64, spread: i64, seed: u64) -> Vec<Ev> {
    let mut r = Lcg(seed);
    let mut used = HashSet::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let k = format!("p{:02}", r.below(keys));
        let base = BASE + i as i64 * spread;
        let mut ts = if r.below(100) < 2 {
            base - 20_000 - r.below(100_000) as i64
        } else {
            base - r.below(8_000) as i64
        };
        // Most times sit on a 250 ms grid, so events land exactly on window starts, ends and
        // watermarks (the off-by-one cases).
        ts = ts.div_euclid(250) * 250;
        while !used.insert((k.clone(), ts)) {
            ts += 1;
        }
        out.push(Ev {
            k,
            ts,
            hr: 40 + r.below(120) as i64,
            temp: 35.0 + r.below(60) as f64 / 10.0,
            code: format!("c{}", r.below(7)),
        });
    }
    out
}

/// Runs `toml` (one pipeline reading topic `in`) over the events; returns the output topic's
/// values and the source offsets of what reached the late topic.
async fn run_pipeline(dir: &Path, toml: &str, evs: &[Ev]) -> (Vec<Value>, BTreeSet<u64>) {
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.join("log"))).unwrap());
    log.create_topic("in", TopicConfig::default())
        .await
        .unwrap();
    for chunk in evs.chunks(5_000) {
        let recs = chunk
            .iter()
            .map(|e| {
                Record::new(
                    json!({"k": e.k, "ts": e.ts, "hr": e.hr, "temp": e.temp, "code": e.code})
                        .to_string(),
                )
            })
            .collect();
        log.append("in", 0, recs).await.unwrap();
    }
    let report = common::run_until_end(&log, toml, &dir.join("state.redb")).await;
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    let read = |topic: &'static str| {
        let log = log.clone();
        async move { aorta_log::conformance::read_partition(log.as_ref(), topic, 0).await }
    };
    let out: Vec<Value> = read("out")
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.record.value).unwrap())
        .collect();
    let late: BTreeSet<u64> = read("late")
        .await
        .iter()
        .map(|r| {
            let lineage = r
                .record
                .headers
                .iter()
                .find(|(k, _)| k == "aorta.lineage")
                .map(|(_, v)| String::from_utf8(v.to_vec()).unwrap())
                .unwrap();
            lineage.rsplit('/').next().unwrap().parse().unwrap()
        })
        .collect();
    (out, late)
}

const AGGS: &str = r#"aggregates = { n = "count()", sum_temp = "sum(temp)", avg_hr = "avg(hr)", min_hr = "min(hr)", max_temp = "max(temp)", first_hr = "first(hr)", last_hr = "last(hr)", codes = "count_distinct(code)", p90 = "percentile(hr, 0.9)" }"#;

const SQL_AGGS: &str = "count(*) AS n, sum(temp) AS sum_temp, avg(hr) AS avg_hr, min(hr) AS min_hr, max(temp) AS max_temp, arg_min(hr, ts) AS first_hr, arg_max(hr, ts) AS last_hr, count(DISTINCT code) AS codes, quantile_cont(hr, 0.9) AS p90";

/// Runs `sql` in DuckDB over `rows.csv` (k, ws, ts, hr, temp, code) and returns the rows.
fn duckdb(py: &Path, dir: &Path, rows: &[(String, i64, &Ev)], sql: &str) -> Vec<Value> {
    let csv = dir.join("rows.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    writeln!(f, "k,ws,ts,hr,temp,code").unwrap();
    for (k, ws, e) in rows {
        writeln!(f, "{k},{ws},{},{},{},{}", e.ts, e.hr, e.temp, e.code).unwrap();
    }
    drop(f);
    let out = dir.join("expected.json");
    let script = format!(
        "import duckdb\n\
         con = duckdb.connect()\n\
         con.execute(\"CREATE TABLE ev AS SELECT * FROM read_csv('{csv}', header=true, columns={{'k':'VARCHAR','ws':'BIGINT','ts':'BIGINT','hr':'BIGINT','temp':'DOUBLE','code':'VARCHAR'}})\")\n\
         con.execute(\"\"\"COPY ({sql}) TO '{out}' (FORMAT JSON)\"\"\")\n",
        csv = csv.display(),
        out = out.display(),
    );
    let status = std::process::Command::new(py)
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success(), "duckdb failed");
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * y.abs().max(1.0),
        _ => a == b,
    }
}

/// Compares every window (keyed by k + window_start) field by field.
fn compare(ours: &[Value], expected: &[Value]) {
    let index = |rows: &[Value], k: &str| -> BTreeMap<(String, i64), Value> {
        rows.iter()
            .map(|r| {
                (
                    (
                        r[k].as_str().unwrap().to_string(),
                        r["window_start"].as_i64().unwrap(),
                    ),
                    r.clone(),
                )
            })
            .collect()
    };
    let ours = index(ours, "k");
    let expected = index(expected, "k");
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same windows"
    );
    for (w, exp) in &expected {
        let got = &ours[w];
        for field in [
            "window_end",
            "n",
            "min_hr",
            "max_temp",
            "first_hr",
            "last_hr",
            "codes",
        ] {
            assert_eq!(got[field].as_f64(), exp[field].as_f64(), "{w:?} {field}");
        }
        for field in ["sum_temp", "avg_hr", "p90"] {
            assert!(
                close(&got[field], &exp[field]),
                "{w:?} {field}: {} vs {}",
                got[field],
                exp[field]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumbling_and_hopping_windows_equal_duckdb_with_out_of_order_and_late_data() {
    let Some(py) = aorta_testkit::duckdb_python() else {
        return;
    };
    let evs = events(30_000, 20, 50, 7);
    for (kind, size, advance) in [
        ("tumbling", 10_000i64, 10_000i64),
        ("hopping", 10_000, 4_000),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[[pipelines]]\nname = \"w\"\nfrom = [\"in\"]\nsinks = [{{ type = \"topic\", topic = \"out\" }}]\n\
             [[pipelines.steps]]\nop = \"window\"\nkey = \"k\"\ntime = \"ts\"\nkind = \"{kind}\"\nsize = {size}\nadvance = {advance}\ngrace = {GRACE}\nlate_topic = \"late\"\n{AGGS}\n"
        );
        let (ours, late) = run_pipeline(dir.path(), &toml, &evs).await;
        // The reference scan: which (event, window) pairs are accepted.
        let mut stream_time = i64::MIN;
        let mut rows = Vec::new();
        let mut expected_late = BTreeSet::new();
        for (offset, e) in evs.iter().enumerate() {
            stream_time = stream_time.max(e.ts);
            let watermark = stream_time - GRACE;
            let mut accepted = false;
            let mut start = e.ts.div_euclid(advance) * advance;
            while start + size > e.ts {
                if start + size > watermark {
                    rows.push((e.k.clone(), start, e));
                    accepted = true;
                }
                start -= advance;
            }
            if !accepted {
                expected_late.insert(offset as u64);
            }
        }
        assert!(
            expected_late.len() > 100,
            "{kind}: the data must have late events ({})",
            expected_late.len()
        );
        let sql = format!(
            "SELECT k, ws AS window_start, ws + {size} AS window_end, {SQL_AGGS} FROM ev GROUP BY k, ws"
        );
        let expected = duckdb(&py, dir.path(), &rows, &sql);
        assert!(expected.len() > 1000, "{kind}: {} windows", expected.len());
        compare(&ours, &expected);
        assert_eq!(late, expected_late, "{kind}: the late records");
        eprintln!(
            "{kind}: {} windows equal DuckDB's; {} late records sent to the late topic",
            expected.len(),
            late.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_windows_equal_duckdb_with_out_of_order_and_late_data() {
    let Some(py) = aorta_testkit::duckdb_python() else {
        return;
    };
    const GAP: i64 = 3_000;
    // Sparse keys: per key an event every ~1.2 s on average, so gaps above 3 s are common.
    let evs = events(20_000, 60, 20, 11);
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[[pipelines]]\nname = \"s\"\nfrom = [\"in\"]\nsinks = [{{ type = \"topic\", topic = \"out\" }}]\n\
         [[pipelines.steps]]\nop = \"window\"\nkey = \"k\"\ntime = \"ts\"\nkind = \"session\"\ngap = {GAP}\ngrace = {GRACE}\nlate_topic = \"late\"\n{AGGS}\n"
    );
    let (ours, late) = run_pipeline(dir.path(), &toml, &evs).await;
    let mut stream_time = i64::MIN;
    let mut rows = Vec::new();
    let mut expected_late = BTreeSet::new();
    for (offset, e) in evs.iter().enumerate() {
        stream_time = stream_time.max(e.ts);
        if e.ts >= stream_time - GRACE {
            rows.push((e.k.clone(), 0, e));
        } else {
            expected_late.insert(offset as u64);
        }
    }
    assert!(expected_late.len() > 100, "the data must have late events");
    let sql = format!(
        "WITH o AS (SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY k ORDER BY ts) < {GAP} THEN 0 ELSE 1 END AS brk FROM ev), \
         s AS (SELECT *, sum(brk) OVER (PARTITION BY k ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o) \
         SELECT k, min(ts) AS window_start, max(ts) AS window_end, {SQL_AGGS} FROM s GROUP BY k, sid"
    );
    let expected = duckdb(&py, dir.path(), &rows, &sql);
    assert!(expected.len() > 1000, "{} sessions", expected.len());
    assert!(
        expected.iter().any(|r| r["n"].as_i64().unwrap() > 3),
        "some sessions hold several events"
    );
    compare(&ours, &expected);
    assert_eq!(late, expected_late, "the late records");
    eprintln!(
        "session: {} windows equal DuckDB's; {} late records",
        expected.len(),
        late.len()
    );
}
