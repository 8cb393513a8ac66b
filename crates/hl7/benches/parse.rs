//! `cargo bench -p aorta-hl7 --bench parse`: parse throughput of a 1.5 KB ORU^R01 with 12 OBX,
//! single core, against peers run on the same message in the same run: the er7 crate (in
//! process) and python-hl7 (`pip install hl7==0.4.5`, timed in a python3 subprocess; skipped
//! with a note if not installed). Each side parses the message and reads one value (OBX[12]-5),
//! so a lazy parser cannot win by doing nothing.

use std::hint::black_box;
use std::time::{Duration, Instant};

fn oru() -> String {
    aorta_hl7::samples::oru_r01()
}

/// Runs `f` for at least `min` and returns messages per second.
fn rate(min: Duration, mut f: impl FnMut() -> usize) -> f64 {
    for _ in 0..1000 {
        black_box(f());
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < min {
        for _ in 0..1000 {
            black_box(f());
        }
        n += 1000;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn python_hl7(msg: &str) -> Option<f64> {
    let script = r#"
import sys, time, hl7
msg = sys.stdin.read()
m = hl7.parse(msg); assert str(m.segments('OBX')[11][5]) != ''
n, start = 0, time.perf_counter()
while time.perf_counter() - start < 2.0:
    for _ in range(200):
        m = hl7.parse(msg); v = m.segments('OBX')[11][5]
    n += 200
print(n / (time.perf_counter() - start))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    use std::io::Write;
    child.stdin.take()?.write_all(msg.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn main() {
    let msg = oru();
    let bytes = msg.as_bytes();
    let path: aorta_hl7::Path = "OBX[12]-5".parse().unwrap();
    let ours_value = path
        .get(&aorta_hl7::parse(bytes).unwrap())
        .unwrap()
        .to_vec();
    let er7_path: er7::Path = "OBX[12]-5".parse().unwrap();
    let er7_value = er7::parse(&msg)
        .unwrap()
        .query_path(&er7_path)
        .into_iter()
        .next();
    assert_eq!(String::from_utf8(ours_value).unwrap(), "7.9");
    assert_eq!(
        er7_value.as_deref(),
        Some("7.9"),
        "er7 reads the same value"
    );
    let min = Duration::from_secs(2);
    let ours = rate(min, || {
        let m = aorta_hl7::parse(bytes).unwrap();
        path.get(&m).map_or(0, <[u8]>::len)
    });
    let ours_full = rate(min, || {
        // Visit every subcomponent: the cost of a full tree walk with lazy splitting.
        let m = aorta_hl7::parse(bytes).unwrap();
        m.segments()
            .flat_map(|s| s.fields())
            .flat_map(|f| f.repetitions())
            .flat_map(|r| r.components())
            .flat_map(|c| c.subcomponents())
            .map(<[u8]>::len)
            .sum()
    });
    let er7 = rate(min, || {
        let m = er7::parse(&msg).unwrap();
        m.query_path(&er7_path).first().map_or(0, String::len)
    });
    let mb = |r: f64| r * bytes.len() as f64 / 1e6;
    println!(
        "HL7 v2 parse, one core: {} B ORU^R01 with 12 OBX; parse + read OBX[12]-5",
        bytes.len()
    );
    println!("{:<34} {:>12} {:>9} {:>10}", "", "msg/s", "MB/s", "vs er7");
    println!(
        "{:<34} {:>12.0} {:>9.1} {:>10.2}",
        "aorta-hl7 (parse + 1 value)",
        ours,
        mb(ours),
        ours / er7
    );
    println!(
        "{:<34} {:>12.0} {:>9.1} {:>10.2}",
        "aorta-hl7 (parse + walk every value)",
        ours_full,
        mb(ours_full),
        ours_full / er7
    );
    println!(
        "{:<34} {:>12.0} {:>9.1} {:>10.2}",
        "er7 0.1.4 (parse + 1 value)",
        er7,
        mb(er7),
        1.0
    );
    match python_hl7(&msg) {
        Some(py) => {
            println!(
                "{:<34} {:>12.0} {:>9.1} {:>10.2}",
                "python-hl7 0.4.5 (parse + 1 value)",
                py,
                mb(py),
                py / er7
            );
            println!("aorta-hl7 / python-hl7: {:.0}x", ours / py);
        }
        None => println!("python-hl7: not installed (pip install hl7==0.4.5) - no ratio"),
    }
    println!(
        "target: >= 500,000 msg/s/core (20x the fastest JavaScript peer measured in research: 24k msg/CPU-s)"
    );
}
