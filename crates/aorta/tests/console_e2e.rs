//! The console in a real browser, on the ready-made sepsis configuration: `aorta serve` with
//! `configs/sepsis.toml`, headless Chromium driven by `tests/browser/console.mjs`
//! (playwright-core). The browser signs in, watches a NEWS2 alert appear live after an HL7 ORU
//! is sent over MLLP, acknowledges it, replays a dead letter from the UI and opens the message
//! viewer; with the ELR pipelines beside sepsis it sends two lab reports over the second MLLP
//! listener, reads the closed daily aggregate on the Lab reports tab, and restarts the
//! `elr-route` pipeline from the overview. Afterwards the log is checked: the replayed record is back on its source topic, the
//! ack is durable, the audit chain verifies, and the server's logs hold no patient identifiers.
//!
//! Needs node, `tests/browser/node_modules` (`npm ci` there) and Chromium (Debian `chromium`);
//! `.ci/run` installs them. Missing, the test fails in CI and skips loudly elsewhere.
//! `AORTA_UPDATE_SCREENSHOTS=1` writes the screenshots into `docs/`.

use aorta_log::conformance::read_partition;
use aorta_log::{EmbeddedConfig, EmbeddedLog, Log};
use aorta_testkit::free_port;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn missing_tools() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("Chromium ({chromium}; apt-get install chromium)"));
    }
    if !repo()
        .join("tests/browser/node_modules/playwright-core")
        .exists()
    {
        return Some("playwright-core (cd tests/browser && npm ci)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node".into());
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_a_live_alert_acks_it_and_replays_a_dead_letter() {
    if let Some(what) = missing_tools() {
        if std::env::var_os("CI").is_some() {
            panic!("console browser test needs {what}");
        }
        eprintln!("SKIPPED console_e2e: {what} is missing (CI installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mllp, api, elr_mllp) = (free_port(), free_port(), free_port());
    let sepsis = std::fs::read_to_string(repo().join("configs/sepsis.toml")).unwrap();
    // The ELR pipelines beside sepsis, as `aorta demo` runs them (one [server] table).
    let elr = std::fs::read_to_string(repo().join("configs/elr.toml")).unwrap();
    let elr_server = "[server]\nlisten = \"127.0.0.1:8080\"\n";
    assert!(elr.contains(elr_server));
    let config_text = format!(
        "[log.embedded]\ndata_dir = \"{}\"\n\n{}\n{}",
        data.display(),
        sepsis
            .replace("127.0.0.1:2575", &format!("127.0.0.1:{mllp}"))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{api}")),
        elr.replace(elr_server, "")
            .replace("127.0.0.1:2576", &format!("127.0.0.1:{elr_mllp}"))
    );
    assert!(config_text.contains(&format!("127.0.0.1:{api}")));
    // Two lab reports: a positive SARS-CoV-2 PCR from Washington collected 2021-02-27, and the
    // same a year later, whose collection time moves the watermark past the first day's window
    // (grace 3 days), so the console has one closed daily aggregate to show.
    let fixture = std::fs::read_to_string(
        repo().join("crates/clinical/tests/fixtures/elr-covid-positive.hl7"),
    )
    .unwrap();
    let later = fixture
        .replace("2021", "2022")
        .replace("RL-000123", "RL-000124");
    let elr_messages = serde_json::json!([fixture, later]).to_string();
    let config = dir.path().join("aorta.toml");
    std::fs::write(&config, config_text).unwrap();
    let aorta = env!("CARGO_BIN_EXE_aorta");
    let out = Command::new(aorta)
        .arg("--config")
        .arg(&config)
        .args(["token", "create", "--role", "admin", "--name", "browser"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let log_file = dir.path().join("serve.log");
    let mut server = Command::new(aorta)
        .arg("--config")
        .arg(&config)
        .args(["--log-format", "json", "serve"])
        .env("AORTA_LOG", "debug,hyper=info,h2=info")
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{api}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "the API did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let shots = if std::env::var_os("AORTA_UPDATE_SCREENSHOTS").is_some() {
        repo().join("docs")
    } else {
        dir.path().to_path_buf()
    };
    let browser = Command::new("node")
        .arg(repo().join("tests/browser/console.mjs"))
        .env("AORTA_BASE", &base)
        .env("AORTA_TOKEN", &token)
        .env("AORTA_MLLP", format!("127.0.0.1:{mllp}"))
        .env("AORTA_ELR_MLLP", format!("127.0.0.1:{elr_mllp}"))
        .env("AORTA_ELR_MESSAGES", &elr_messages)
        .env("AORTA_SHOTS", &shots)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&browser.stdout).into_owned();
    let errs = String::from_utf8_lossy(&browser.stderr).into_owned();
    // Per-operator counters in /metrics: the two ORUs went through hl7-to-fhir.
    let metrics = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let exited = server.wait().unwrap();
    assert!(
        browser.status.success(),
        "browser: {said}\n{errs}\nserver log tail: {}",
        tail(&log_file)
    );
    assert!(exited.success());
    let seen: serde_json::Value = serde_json::from_str(said.trim()).unwrap();
    let hl7_in = r#"aorta_operator_records_total{pipeline="sepsis-fhir",step="0",op="hl7-to-fhir",kind="in"}"#;
    let line = metrics
        .lines()
        .find(|l| l.starts_with(hl7_in))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert_eq!(line.rsplit(' ').next(), Some("2"), "{line}");
    let ew_errors = r#"aorta_operator_records_total{pipeline="sepsis-alerts",step="0",op="early-warning",kind="errors"}"#;
    let line = metrics
        .lines()
        .find(|l| l.starts_with(ew_errors))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        line.ends_with(" 1") || line.ends_with(" 2"),
        "the HR of 400 (and its replay): {line}"
    );
    eprintln!("console saw: {seen}");
    assert!(shots.join("console-alerts.png").exists());
    assert!(shots.join("console-labs.png").exists());

    let log = EmbeddedLog::open(EmbeddedConfig::new(&data)).unwrap();
    let mut replayed = 0;
    for p in log
        .describe_topic("fhir.clinical")
        .await
        .unwrap()
        .partitions
    {
        for r in read_partition(&log, "fhir.clinical", p.partition).await {
            if r.record
                .headers
                .iter()
                .any(|h| h.0 == "aorta.replayed-from")
            {
                replayed += 1;
            }
        }
    }
    assert_eq!(
        replayed, 1,
        "the dead letter replayed from the UI is back on fhir.clinical"
    );
    assert_eq!(read_partition(&log, "aorta.alerts.acks", 0).await.len(), 1);
    let verified = aorta_server::audit::verify(&log, "aorta.audit")
        .await
        .unwrap();
    assert!(verified.broken.is_none());
    assert!(
        verified.entries >= 4,
        "stream, ack, dead letters, replay, message: {verified:?}"
    );
    let logs = std::fs::read_to_string(&log_file).unwrap();
    for phi in ["TESTPATIENT", "CON001", "19500101"] {
        assert!(!logs.contains(phi), "the server log contains {phi:?}");
    }
}

fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    s.lines().rev().take(15).collect::<Vec<_>>().join("\n")
}
