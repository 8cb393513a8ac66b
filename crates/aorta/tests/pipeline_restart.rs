//! A pipeline SIGKILLed mid-stream, again and again, then run to the end, leaves exactly what
//! a run that was never interrupted leaves: the same output records (keys, values, headers, in
//! the same order per partition), the same JSON-lines files and Parquet parts byte for byte, and
//! the same rows in PostgreSQL. Embedded backend, 3 input partitions, tumbling windows with late data.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EVENTS: usize = 240_000;
const PATIENTS: usize = 500;

fn aorta(data: &Path, config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aorta"));
    c.arg("--data-dir").arg(data).arg("--config").arg(config);
    c
}

fn ok(mut c: Command, stdin: &[u8]) -> String {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn input() -> Vec<u8> {
    // Vitals, one per patient per second, arriving up to 4 s out of order; every 97th event is
    // 90 s late (past the grace, so it goes to the late topic).
    let mut s = String::new();
    for i in 0..EVENTS {
        let p = i % PATIENTS;
        let sec = (i / PATIENTS) as i64;
        let mut ts = 1_700_000_000_000 + sec * 1000 - ((i * 7919) % 4000) as i64;
        if i % 97 == 0 {
            ts -= 90_000;
        }
        let hr = 50 + (i * 31) % 90;
        let spo2 = 88 + (i * 17) % 12;
        s.push_str(&format!(
            "P{p:04}|{{\"patient_id\":\"P{p:04}\",\"ts\":{ts},\"hr\":{hr},\"spo2\":{spo2}}}\n"
        ));
    }
    s.into_bytes()
}

fn config(dir: &Path, table: Option<(&str, &str)>) -> PathBuf {
    let mut t = format!(
        r#"
[[pipelines]]
name = "vitals-1m"
from = ["vitals"]
max_read_bytes = 65536
# Several checkpoints before each kill (a clean run takes ~3 s; kills land at 5-15 % of it),
# so restarts restore real window state, not only the base checkpoint.
checkpoint_interval = "50ms"

[[pipelines.steps]]
op = "filter"
when = "hr > 0"

[[pipelines.steps]]
op = "window"
key = "patient_id"
time = "ts"
size = "1m"
grace = "10s"
late_topic = "vitals.late"
aggregates = {{ n = "count()", avg_hr = "avg(hr)", max_hr = "max(hr)", min_spo2 = "min(spo2)", p50_hr = "percentile(hr, 0.5)" }}

[[pipelines.sinks]]
type = "topic"
topic = "vitals.1m"
partitions = 3

[[pipelines.sinks]]
type = "file"
path = "{}"
max_bytes = 400000

[[pipelines.sinks]]
type = "parquet"
dir = "{}"
max_rows = 1000
columns = {{ patient_id = "string", window_start = "timestamp", window_end = "timestamp", n = "int64", avg_hr = "double", max_hr = "int64", min_spo2 = "int64", p50_hr = "double" }}
"#,
        dir.join("out/vitals-1m.jsonl").display(),
        dir.join("parquet").display()
    );
    if let Some((url, table)) = table {
        t.push_str(&format!(
            r#"
[[pipelines.sinks]]
type = "postgres"
url = "{url}"
table = "{table}"
create_table = true
key = ["patient_id", "window_start"]
columns = {{ patient_id = "text", window_start = "bigint", window_end = "bigint", n = "bigint", avg_hr = "double precision", max_hr = "int", min_spo2 = "int", p50_hr = "double precision" }}
"#
        ));
    }
    let p = dir.join("aorta.toml");
    std::fs::write(&p, t).unwrap();
    p
}

fn prepare(dir: &Path, table: Option<(&str, &str)>) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let cfg = config(dir, table);
    let mut c = aorta(&data, &cfg);
    c.args(["topics", "create", "vitals", "--partitions", "3"]);
    ok(c, b"");
    let mut c = aorta(&data, &cfg);
    c.args(["produce", "vitals", "--key-separator", "|"]);
    ok(c, &input());
    (data, cfg)
}

fn run_to_end(data: &Path, cfg: &Path) -> String {
    let mut c = aorta(data, cfg);
    c.args(["pipeline", "run", "vitals-1m", "--until-end", "--json"]);
    ok(c, b"")
}

/// Every record of a topic as JSON, per partition in offset order, with everything but the
/// record timestamp (late records keep their input record's time, which `produce` stamped
/// with the wall clock, differently in the two data directories).
fn topic(data: &Path, cfg: &Path, name: &str) -> Vec<String> {
    let mut c = aorta(data, cfg);
    c.args(["consume", name, "--from-beginning", "--format", "json"]);
    let mut lines: Vec<(u64, String)> = ok(c, b"")
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("timestamp_ms");
            (v["partition"].as_u64().unwrap(), v.to_string())
        })
        .collect();
    lines.sort_by_key(|(p, _)| *p);
    lines.into_iter().map(|(_, l)| l).collect()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn rows(url: &str, table: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            &format!(
                "SELECT row_to_json(t)::text FROM {table} t ORDER BY patient_id, window_start"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

async fn drop_table(url: &str, table: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_equals_a_clean_run() {
    let pg = aorta_testkit::postgres_url();
    let tag = std::process::id();
    let (t_clean, t_crash) = (
        format!("aorta_t_clean_{tag}"),
        format!("aorta_t_crash_{tag}"),
    );
    if let Some(url) = &pg {
        drop_table(url, &t_clean).await;
        drop_table(url, &t_crash).await;
    }

    let clean = tempfile::tempdir().unwrap();
    let (clean_data, clean_cfg) =
        prepare(clean.path(), pg.as_deref().map(|u| (u, t_clean.as_str())));
    let t0 = Instant::now();
    let clean_report = run_to_end(&clean_data, &clean_cfg);
    let clean_secs = t0.elapsed().as_secs_f64();

    let crashy = tempfile::tempdir().unwrap();
    let (data, cfg) = prepare(crashy.path(), pg.as_deref().map(|u| (u, t_crash.as_str())));
    let mut kills = 0;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(tag);
    for _ in 0..6 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        // Kill somewhere between 5 % and 15 % of a clean run's duration after the start: each
        // restart resumes where the last checkpoint was, so six kills stay inside the work.
        let frac = 0.05 + ((seed >> 33) % 10) as f64 / 100.0;
        let mut c = aorta(&data, &cfg);
        let mut child = c
            .args(["pipeline", "run", "vitals-1m", "--until-end"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs_f64(clean_secs * frac));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 3, "only {kills} runs were killed mid-stream");
    let report = run_to_end(&data, &cfg);
    eprintln!("clean run ({clean_secs:.1} s): {clean_report}\nafter {kills} SIGKILLs: {report}");
    let resumed: serde_json::Value = serde_json::from_str(&report).unwrap();
    let resumed_input = resumed["input"].as_u64().unwrap();
    assert!(
        resumed_input < EVENTS as u64,
        "the last run read {resumed_input} of {EVENTS} events: it restored no checkpoint taken mid-stream"
    );

    let expected = topic(&clean_data, &clean_cfg, "vitals.1m");
    assert!(expected.len() > 3000, "{} windows", expected.len());
    let got = topic(&data, &cfg, "vitals.1m");
    assert_eq!(got.len(), expected.len(), "no window lost or written twice");
    assert_eq!(got, expected, "the same output records, in the same order");
    assert_eq!(
        topic(&data, &cfg, "vitals.late"),
        topic(&clean_data, &clean_cfg, "vitals.late"),
        "the same late records"
    );
    for (sink, sub) in [("file", "out"), ("parquet", "parquet")] {
        let (f_got, f_exp) = (
            files(&crashy.path().join(sub)),
            files(&clean.path().join(sub)),
        );
        assert!(f_exp.len() > 1, "the {sink} sink rotated");
        assert_eq!(
            f_got.iter().map(|(n, b)| (n, b.len())).collect::<Vec<_>>(),
            f_exp.iter().map(|(n, b)| (n, b.len())).collect::<Vec<_>>(),
            "{sink} sink files"
        );
        assert!(f_got == f_exp, "{sink} sink contents differ");
    }
    if let Some(url) = &pg {
        let exp = rows(url, &t_clean).await;
        assert_eq!(exp.len(), expected.len());
        assert_eq!(rows(url, &t_crash).await, exp, "postgres rows");
        drop_table(url, &t_clean).await;
        drop_table(url, &t_crash).await;
    }
}
