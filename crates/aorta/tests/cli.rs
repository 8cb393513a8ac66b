//! The `aorta` command line, run as a user would: a real process on a temporary data dir.

use std::io::Write;
use std::process::{Command, Output, Stdio};

struct Aorta {
    dir: tempfile::TempDir,
}

impl Aorta {
    fn new() -> Self {
        Aorta {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aorta"))
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "aorta {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args, b"");
        assert!(!out.status.success(), "aorta {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }
}

#[test]
fn produce_then_consume_round_trips_lines_keys_and_headers() {
    let a = Aorta::new();
    a.ok(&["topics", "create", "adt", "--partitions", "3"], b"");
    let input: String = (0..300)
        .map(|i| format!("MRN{:03}|message {i}\n", i % 17))
        .collect();
    a.ok(
        &[
            "produce",
            "adt",
            "--key-separator",
            "|",
            "--header",
            "src=test",
            "--batch",
            "64",
        ],
        input.as_bytes(),
    );
    let out = a.ok(
        &["consume", "adt", "--from-beginning", "--format", "json"],
        b"",
    );
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 300);
    for r in &rows {
        let key = r["key"].as_str().unwrap();
        let p = aorta_log::partitioner::partition_for_key(key.as_bytes(), 3);
        assert_eq!(r["partition"], p, "key {key} on the murmur2 partition");
        assert_eq!(r["headers"][0]["name"], "src");
        assert_eq!(r["headers"][0]["value"], "test");
    }
    let mut values: Vec<&str> = rows.iter().map(|r| r["value"].as_str().unwrap()).collect();
    values.sort_by_key(|v| v[8..].parse::<u32>().unwrap());
    let want: Vec<String> = (0..300).map(|i| format!("message {i}")).collect();
    assert_eq!(values, want);
    // Text output of one partition is in offset order.
    let p0 = a.ok(
        &["consume", "adt", "--from-beginning", "--partition", "0"],
        b"",
    );
    let nums: Vec<u32> = p0.lines().map(|l| l[8..].parse().unwrap()).collect();
    assert!(nums.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn whole_files_are_single_records_kept_byte_for_byte() {
    let a = Aorta::new();
    let f = a.dir.path().join("oru.hl7");
    let msg = b"MSH|^~\\&|LAB|HOSP|||20260101||ORU^R01|1|P|2.5.1\rPID|1||123\rOBX|1|NM|8867-4^Heart rate^LN||72|/min\r";
    std::fs::write(&f, msg).unwrap();
    a.ok(
        &[
            "produce",
            "oru",
            "--create",
            "--record-per-file",
            f.to_str().unwrap(),
        ],
        b"",
    );
    let out = a.ok(
        &["consume", "oru", "--from-beginning", "--format", "json"],
        b"",
    );
    let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["value"].as_str().unwrap().as_bytes(), msg);
    // Binary values come back as base64.
    let bin = a.dir.path().join("bin");
    std::fs::write(&bin, [0xffu8, 0x00, 0xfe]).unwrap();
    a.ok(
        &["produce", "oru", "--record-per-file", bin.to_str().unwrap()],
        b"",
    );
    let out = a.ok(
        &["consume", "oru", "--offset", "1", "--format", "json"],
        b"",
    );
    let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["value_base64"], "/wD+");
}

#[test]
fn a_consumer_group_resumes_where_it_committed() {
    let a = Aorta::new();
    a.ok(
        &["produce", "t", "--create", "--partitions", "2"],
        b"1\n2\n3\n",
    );
    assert_eq!(
        a.ok(&["consume", "t", "--group", "g", "--from-beginning"], b"")
            .lines()
            .count(),
        3
    );
    assert_eq!(
        a.ok(&["consume", "t", "--group", "g", "--from-beginning"], b""),
        "",
        "committed offsets win over --from-beginning"
    );
    a.ok(&["produce", "t"], b"4\n");
    assert_eq!(a.ok(&["consume", "t", "--group", "g"], b""), "4\n");
    // --max-records commits only what was printed.
    a.ok(&["produce", "t", "--partition", "1"], b"5\n6\n7\n");
    assert_eq!(
        a.ok(&["consume", "t", "--group", "g", "--max-records", "1"], b""),
        "5\n"
    );
    assert_eq!(a.ok(&["consume", "t", "--group", "g"], b""), "6\n7\n");
}

#[test]
fn errors_name_the_thing_and_the_fix() {
    let a = Aorta::new();
    a.ok(&["topics", "create", "adt", "--partitions", "2"], b"");
    let e = a.fails(&["consume", "missing"]);
    assert!(
        e.contains(
            "topic \"missing\" does not exist; create it with `aorta topics create missing`"
        ),
        "{e}"
    );
    let e = a.fails(&["consume", "adt", "--partition", "5"]);
    assert!(
        e.contains("topic \"adt\" has 2 partition(s); partition 5 does not exist"),
        "{e}"
    );
    let e = a.fails(&["produce", "nope"]);
    assert!(e.contains("--create"), "{e}");
    let e = a.fails(&["topics", "create", "adt"]);
    assert!(e.contains("already exists"), "{e}");
    let e = a.fails(&["--fsync", "sometimes", "topics", "list"]);
    assert!(e.contains("interval:<milliseconds>"), "{e}");
    let out = a.run(
        &["produce", "adt", "--key-separator", ":"],
        b"no separator here\n",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1 has no key separator"));
    let e = a.fails(&["consume", "adt", "--offset", "99", "--partition", "0"]);
    assert!(e.contains("offset 99 is out of range"), "{e}");
}

#[test]
fn a_second_process_on_the_same_data_dir_is_told_who_holds_it() {
    let a = Aorta::new();
    a.ok(&["topics", "create", "t"], b"");
    let mut follower = Command::new(env!("CARGO_BIN_EXE_aorta"))
        .arg("--data-dir")
        .arg(a.dir.path().join("data"))
        .args(["consume", "t", "--follow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the follower holds the lock (its pid is in LOCK), without racing it for the
    // lock ourselves; then a second process must be refused and told who holds it.
    let lock = a.dir.path().join("data/LOCK");
    let me = format!("pid {}", follower.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != me {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let e = a.fails(&["topics", "list"]);
    follower.kill().unwrap();
    follower.wait().unwrap();
    assert!(e.contains(&format!("pid {}", follower.id())), "{e}");
    assert!(e.contains("--data-dir"), "{e}");
}

/// The demo's summary names a first alert for each of the three septic beds.
fn every_septic_bed_alerted(out: &str) {
    for bed in [3, 7, 10] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("bed {bed:>2}: sepsis")) && l.contains("first alert")),
            "bed {bed}: {out}"
        );
    }
}

/// The demo's lab-reporting summary: every report stored, the two defective ones
/// dead-lettered naming their rule, the resend dropped, the closed daily aggregates checked.
fn lab_reports_checked(out: &str) {
    assert!(
        out.contains("61 reports sent, 61 on hl7.elr; 58 accepted, 2 dead-lettered (specimen-type; result-loinc), 1 resend dropped"),
        "{out}"
    );
    assert!(
        out.contains("each equal to the count the labs sent"),
        "{out}"
    );
    assert!(
        out.contains("routed: elr.wa 20, elr.or 8, elr.tx 10, elr.unrouted 20"),
        "{out}"
    );
}

#[test]
fn demo_alerts_on_every_deteriorating_patient_and_is_repeatable() {
    let a = Aorta::new();
    let args = [
        "demo",
        "--hours",
        "8",
        "--round-ms",
        "30",
        "--api",
        "127.0.0.1:0",
    ];
    for _ in 0..2 {
        let out = a.ok(&args, b"");
        every_septic_bed_alerted(&out);
        lab_reports_checked(&out);
        assert!(out.contains("12 stable patients: 0 alerted"), "{out}");
        assert!(
            out.contains("1 NEWS2 scope flag"),
            "the child is flagged: {out}"
        );
        assert!(
            out.contains("latency from a message's ACK to its alert"),
            "{out}"
        );
        let acked: u64 = out
            .split(" HL7 messages ACKed AA, all ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert_eq!(
            acked,
            16 + 16 * 32,
            "admissions and 32 rounds of vitals, all on the log"
        );
    }
}

#[test]
fn topics_describe_and_delete() {
    let a = Aorta::new();
    a.ok(
        &[
            "topics",
            "create",
            "lab",
            "--partitions",
            "2",
            "--retention-ms",
            "3600000",
        ],
        b"",
    );
    a.ok(&["produce", "lab"], b"x\ny\n");
    let d = a.ok(&["topics", "describe", "lab"], b"");
    assert!(d.contains("topic lab: 2 partition(s), 2 record(s)"), "{d}");
    assert!(d.contains("retention_ms=3600000"), "{d}");
    a.ok(&["topics", "delete", "lab"], b"");
    assert!(a.ok(&["topics", "list"], b"").contains("no topics yet"));
}

#[test]
fn hl7_parse_prints_a_tree_and_json_with_decoded_values() {
    let a = Aorta::new();
    let f = a.dir.path().join("adt.hl7");
    std::fs::write(&f, b"MSH|^~\\&|ADT1|GOOD HEALTH|AORTA|AORTA|20260101||ADT^A01|MSG1|P|2.5.1\rPID|1||111^^^GHH^MR~222^^^SSA^SS||Smith \\T\\ Sons^Anna\r").unwrap();
    let tree = a.ok(&["hl7", "parse", f.to_str().unwrap()], b"");
    assert!(
        tree.contains("message 1: ADT^A01 control id MSG1, 2 segments"),
        "{tree}"
    );
    assert!(tree.contains("PID-3[2].4  SSA"), "{tree}");
    assert!(tree.contains("PID-5.1  Smith & Sons"), "{tree}");
    let json: serde_json::Value = serde_json::from_str(
        a.ok(
            &["hl7", "parse", "--json", "-"],
            &std::fs::read(&f).unwrap(),
        )
        .trim(),
    )
    .unwrap();
    assert_eq!(json["segments"][1]["id"], "PID");
    assert_eq!(
        json["segments"][1]["fields"][2][1][3][0], "SSA",
        "PID-3, repetition 2, component 4"
    );
    assert_eq!(json["segments"][1]["fields"][4][0][0][0], "Smith & Sons");
    assert_eq!(
        json["segments"][0]["fields"][1][0][0][0], "^~\\&",
        "MSH-2 kept whole"
    );
}

#[test]
fn hl7_validate_lists_every_problem_and_fails() {
    let a = Aorta::new();
    let good = a.dir.path().join("good.hl7");
    std::fs::write(
        &good,
        b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5.1\rEVN|A01\rPID|1||123\rPV1|1|I\r",
    )
    .unwrap();
    let no_pv1 = a.dir.path().join("no_pv1.hl7");
    std::fs::write(
        &no_pv1,
        b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5.1\rEVN|A01\rPID|1||123\rAL1|1\r",
    )
    .unwrap();
    let bad = a.dir.path().join("bad.hl7");
    std::fs::write(
        &bad,
        b"MSH|^~\\&|A|B|C|D|20260101||ADT|||2.5.1\rPID|1||open \\T\r",
    )
    .unwrap();
    let out = a.run(&["hl7", "validate", good.to_str().unwrap()], b"");
    assert!(out.status.success());
    let out = a.run(
        &[
            "hl7",
            "validate",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        b"",
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.hl7: message 1: MSH-9"), "{text}");
    assert!(text.contains("MSH-10"), "{text}");
    assert!(
        text.contains("PID-3: an escape sequence is not closed"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 problem(s) in 2 file(s)"));
    let out = a.run(&["hl7", "validate", no_pv1.to_str().unwrap()], b"");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("segment 4 (AL1): required segment PV1 of ADT_A01 is missing here"),
        "{text}"
    );
}

#[test]
fn hl7_to_fhir_produces_bundles_that_fhir_validate_accepts() {
    let a = Aorta::new();
    let oru = a.dir.path().join("oru.hl7");
    std::fs::write(
        &oru,
        b"MSH|^~\\&|LAB|H|EHR|H|20260101083000+0100||ORU^R01|M1|P|2.5.1\r\
          PID|1||42^^^H^MR||Doe^Jane||19700228|F\r\
          OBR|1||F1^LAB|2345-7^Glucose^LN|||202601010745|||||||||||||||202601010829||CH|F\r\
          OBX|1|NM|2345-7^Glucose^LN||105|mg/dL^^UCUM|70-99|H|||F\r\
          MSH|^~\\&|LAB|H|EHR|H|20260101||QRY^A19|M2|P|2.5.1\rQRD|1\r",
    )
    .unwrap();
    let out = a.run(&["hl7", "to-fhir", oru.to_str().unwrap()], b"");
    assert!(!out.status.success(), "the QRY cannot be converted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("message 2: no FHIR mapping for message type \"QRY^A19\""),
        "{stderr}"
    );
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 1);
    let bundle: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(bundle["timestamp"], "2026-01-01T08:30:00+01:00");
    let types: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    // A report is written after the observations it references.
    assert_eq!(
        types,
        [
            "Patient",
            "ServiceRequest",
            "Observation",
            "DiagnosticReport"
        ]
    );
    let file = a.dir.path().join("bundle.json");
    std::fs::write(&file, lines[0]).unwrap();
    let out = a.run(
        &["fhir", "validate", "--strict", file.to_str().unwrap()],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let bad = a.dir.path().join("bad.json");
    std::fs::write(
        &bad,
        br#"{"resourceType":"Observation","code":{"text":"x"},"status":"done"}"#,
    )
    .unwrap();
    let out = a.run(&["fhir", "validate", bad.to_str().unwrap()], b"");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("error code-invalid at Observation.status"),
        "{text}"
    );
}

#[test]
fn pipeline_check_prints_the_topology_and_names_mistakes() {
    let a = Aorta::new();
    let cfg = a.dir.path().join("aorta.toml");
    std::fs::write(
        &cfg,
        r#"
[[pipelines]]
name = "hr-1m"
from = ["vitals"]
sinks = [{ type = "topic", topic = "vitals.1m" }]
[[pipelines.steps]]
op = "window"
key = "patient_id"
time = "ts"
size = "1m"
aggregates = { n = "count()", avg_hr = "avg(hr)" }
"#,
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let out = a.ok(&["--config", cfg_s, "pipeline", "check"], b"");
    assert!(
        out.contains("window tumbling 60000 ms by patient_id"),
        "{out}"
    );
    assert!(out.contains("-> topic vitals.1m"), "{out}");
    assert!(out.contains("errors -> hr-1m.dlq"), "{out}");
    for (bad, says) in [
        ("when = \"hr >\"", "expected a value"),
        ("whn = \"1\"", "unknown field `whn`"),
    ] {
        std::fs::write(
            &cfg,
            format!("[[pipelines]]\nname = \"x\"\nfrom = [\"a\"]\nsinks = [{{ type = \"topic\", topic = \"b\" }}]\n[[pipelines.steps]]\nop = \"filter\"\n{bad}\n"),
        )
        .unwrap();
        let err = a.fails(&["--config", cfg_s, "pipeline", "check"]);
        assert!(err.contains(says), "{err}");
    }
    std::fs::write(
        &cfg,
        "[[pipelines]]\nname = \"x\"\nfrom = [\"a\"]\nsinks = [{ type = \"topic\", topic = \"b\" }]\n[[pipelines.steps]]\nop = \"window\"\nkey = \"k\"\nsize = \"1m\"\naggregates = { m = \"median(hr)\" }\n",
    )
    .unwrap();
    let err = a.fails(&["--config", cfg_s, "pipeline", "check"]);
    assert!(
        err.contains("steps[0]") && err.contains("unknown function \"median\""),
        "{err}"
    );
}

#[test]
fn score_prints_one_explained_line_per_input_and_fails_on_bad_lines() {
    let a = Aorta::new();
    let input = concat!(
        r#"{"rr":24,"spo2":93,"spo2_scale":1,"on_oxygen":false,"sbp":105,"hr":112,"consciousness":"A","temp":38.4}"#,
        "\n",
        r#"{"rr":16,"spo2":97,"spo2_scale":2,"on_oxygen":true,"sbp":120,"hr":70,"consciousness":"A","temp":37}"#,
        "\n"
    );
    let out = a.ok(&["score", "news2"], input.as_bytes());
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[0]["total"], 8);
    assert_eq!(lines[0]["band"], "high");
    assert_eq!(lines[0]["subscores"]["hr"], 2);
    // Scale 2, 97 % on oxygen: 3 + 2 for oxygen.
    assert_eq!(lines[1]["total"], 5);
    assert_eq!(lines[1]["band"], "medium");

    let out = a.ok(&["score", "qsofa"], br#"{"rr":22,"sbp":100,"gcs":15}"#);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["score"].as_u64(), v["positive"].as_bool()),
        (Some(2), Some(true))
    );
    let out = a.ok(
        &["score", "sirs"],
        br#"{"temp":38.2,"hr":95,"rr":18,"paco2":40,"wbc":9,"bands_pct":2}"#,
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["score"].as_u64(), v["complete"].as_bool()),
        (Some(2), Some(true))
    );

    // A typo, an impossible value and a non-JSON line: each answered in place, exit 1.
    let out = a.run(
        &["score", "news2"],
        b"{\"heart_rate\":80}\n{\"temp\":98.6}\nnot json\n{\"rr\":30}\n",
    );
    assert!(!out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0]["error"].as_str().unwrap().contains("heart_rate"));
    assert!(lines[1]["error"].as_str().unwrap().contains("°F"));
    assert!(lines[2]["error"].as_str().unwrap().contains("not JSON"));
    assert_eq!(lines[3]["total"], 3);
}

#[test]
fn demo_runs_on_kafka_twice_against_the_same_cluster() {
    let Some(broker) = aorta_testkit::broker() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for run in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_aorta"))
            .current_dir(dir.path())
            .args(["--kafka", &broker.bootstrap])
            .args([
                "demo",
                "--hours",
                "8",
                "--round-ms",
                "30",
                "--api",
                "127.0.0.1:0",
            ])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "run {run}: {said}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("(kafka log)"), "{said}");
        every_septic_bed_alerted(&said);
        lab_reports_checked(&said);
        assert!(said.contains("all 528 on hl7.inbound"), "run {run}: {said}");
    }
}
