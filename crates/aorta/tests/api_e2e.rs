//! `aorta serve` as users run it: tokens made with `aorta token create`, HL7 v2 over MLLP and
//! FHIR over REST in, the API and `/metrics` read with those tokens, SIGTERM, then
//! `aorta audit verify` on the real trail and on a tampered copy. The server's own logs
//! (JSON, debug level) must not contain the patient's name, MRN or birth date.

use aorta_log::conformance::read_partition;
use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, Record, TopicConfig};
use aorta_testkit::free_port;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn aorta(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aorta"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn token(config: &Path, role: &str) -> String {
    let out = aorta(config, &["token", "create", "--role", role]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The patient of `aorta_hl7::samples::oru_r01()`.
const PHI: [&str; 4] = ["EVERYWOMAN", "555-44-3333", "19620320", "Chalmers"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_with_tokens_audits_reads_and_logs_no_phi() {
    let dir = tempfile::tempdir().unwrap();
    let (mllp_port, api_port) = (free_port(), free_port());
    let config = dir.path().join("aorta.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "[log.embedded]\ndata_dir = \"{}\"\n[[sources.mllp]]\nlisten = \"127.0.0.1:{mllp_port}\"\n[server]\nlisten = \"127.0.0.1:{api_port}\"\n",
            data.display()
        ),
    )
    .unwrap();
    let admin = token(&config, "admin");
    let operator = token(&config, "operator");
    let list = aorta(&config, &["token", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(!listed.contains(&admin), "list never shows a token");

    let log_file = dir.path().join("serve.log");
    let mut server = Command::new(env!("CARGO_BIN_EXE_aorta"))
        .arg("--config")
        .arg(&config)
        .args(["--log-format", "json", "serve"])
        .env("AORTA_LOG", "debug,hyper=info,h2=info,reqwest=info")
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the API did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut client =
        aorta_mllp::MllpClient::connect(&format!("127.0.0.1:{mllp_port}"), Duration::from_secs(5))
            .await
            .unwrap();
    for i in 0..20 {
        let msg = aorta_hl7::samples::oru_r01().replace("LAB000123", &format!("LAB{i:06}"));
        assert_eq!(client.send(msg.as_bytes()).await.unwrap().code, "AA");
    }
    let get = |path: &str, token: &str| {
        http.get(format!("{base}{path}"))
            .bearer_auth(token)
            .header("aorta-purpose", "e2e")
            .send()
    };
    assert_eq!(
        http.get(format!("{base}/api/topics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let topics: serde_json::Value = serde_json::from_str(
        &get("/api/topics", &operator)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let inbound = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "hl7.inbound")
        .unwrap();
    assert_eq!(inbound["partitions"][0]["high_watermark"], 20);
    assert_eq!(
        get("/api/topics/hl7.inbound/records", &operator)
            .await
            .unwrap()
            .status(),
        403,
        "operators never read bodies"
    );
    let recs = get("/api/topics/hl7.inbound/records?from=0&limit=5", &admin)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(recs.contains("EVERYWOMAN"), "the admin reads the body");
    let patient = serde_json::json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}], "birthDate": "1974-12-25"});
    let r = http
        .post(format!("{base}/fhir/Patient"))
        .bearer_auth(&admin)
        .header("content-type", "application/fhir+json")
        .body(patient.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let metrics = get("/metrics", &operator)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("aorta_mllp_messages_total{listener=\"127.0.0.1:"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("aorta_mllp_messages_total")
                && l.contains("outcome=\"accepted\"")
                && l.ends_with(" 20")),
        "{metrics}"
    );
    let ready = get("/readyz", &operator).await.unwrap();
    assert_eq!(ready.status(), 200);

    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(
        server.wait().unwrap().success(),
        "serve exits cleanly on SIGTERM"
    );

    let verify = aorta(&config, &["audit", "verify"]);
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(said.contains("1 entries verified"), "{said}");

    // A copy of the trail with the one entry's target edited: verify names it and fails.
    {
        let log = EmbeddedLog::open(EmbeddedConfig::new(&data)).unwrap();
        let entries = read_partition(&log, "aorta.audit", 0).await;
        log.create_topic("audit.copy", TopicConfig::default())
            .await
            .unwrap();
        let text = String::from_utf8(entries[0].record.value.to_vec()).unwrap();
        let edited = text.replace("hl7.inbound/0/0..4", "hl7.inbound/0/0..0");
        assert_ne!(text, edited);
        log.append("audit.copy", 0, vec![Record::new(edited)])
            .await
            .unwrap();
    }
    let verify = aorta(&config, &["audit", "verify", "--topic", "audit.copy"]);
    assert!(!verify.status.success());
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        said.contains("broken at offset 0") && said.contains("altered"),
        "{said}"
    );

    let logs = std::fs::read_to_string(&log_file).unwrap();
    assert!(logs.lines().count() > 20, "debug logging was on: {logs}");
    for phi in PHI {
        assert!(!logs.contains(phi), "the server log contains {phi:?}");
    }
}
