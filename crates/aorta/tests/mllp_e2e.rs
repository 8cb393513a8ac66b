//! End to end through real processes: `aorta hl7 send` → `aorta serve` (MLLP) → embedded log.
//! Every message acknowledged AA is in the topic byte for byte, also after a SIGKILL of the
//! server in the middle of the stream.

use aorta_log::conformance::read_partition;
use aorta_log::{EmbeddedConfig, EmbeddedLog};
use aorta_testkit::free_port;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Starts `aorta serve` on a fresh data dir; returns the process and its MLLP address.
fn serve(dir: &Path) -> (Child, String) {
    let port = free_port();
    let config = dir.join("aorta.toml");
    std::fs::write(
        &config,
        format!(
            "[log.embedded]\ndata_dir = \"{}\"\n[[sources.mllp]]\nlisten = \"127.0.0.1:{port}\"\n[server]\nlisten = \"\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_aorta"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stderr(std::fs::File::create(dir.join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "aorta serve did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr)
}

async fn stored(dir: &Path) -> HashSet<Vec<u8>> {
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir.join("data"))).unwrap();
    read_partition(&log, "hl7.inbound", 0)
        .await
        .into_iter()
        .map(|r| r.record.value.to_vec())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oru_and_adt_corpus_is_acknowledged_and_stored_verbatim() {
    let Some(root) = aorta_testkit::corpus("hl7v2") else {
        return;
    };
    // The corpus's ORU and ADT files whose every message has a usable header.
    let inventory = std::fs::read_to_string(root.join("_INVENTORY.tsv")).unwrap();
    let mut files = Vec::new();
    let mut messages = Vec::new();
    for line in inventory.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if !(cols[8].starts_with("ORU") || cols[8].starts_with("ADT")) {
            continue;
        }
        let path = root.join(cols[0]);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(batch) = aorta_hl7::parse_stream(&bytes) else {
            continue;
        };
        let usable = batch
            .messages
            .iter()
            .all(|m| m.validate_header().is_ok() && m.control_id().is_some_and(|c| !c.is_empty()));
        if usable && !batch.messages.is_empty() {
            messages.extend(batch.messages.iter().map(|m| m.raw().to_vec()));
            files.push(path);
        }
    }
    assert!(
        files.len() > 100,
        "expected the ORU/ADT corpus, found {} files",
        files.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_aorta"))
        .args(["hl7", "send", "--to", &addr, "--connections", "4"])
        .args(&files)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains(&format!("ACKs: AA {}", messages.len())),
        "{report}"
    );
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(
        server.wait().unwrap().success(),
        "graceful shutdown exits 0"
    );
    let have = stored(dir.path()).await;
    for m in &messages {
        assert!(
            have.contains(m),
            "an AA-acknowledged message is missing from the topic"
        );
    }
    eprintln!(
        "{} files, {} messages, all AA and stored verbatim ({} distinct records)",
        files.len(),
        messages.len(),
        have.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_stream_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve(dir.path());
    let acked: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..3 {
        let (addr, acked) = (addr.clone(), acked.clone());
        clients.push(tokio::spawn(async move {
            let Ok(mut client) = aorta_mllp::MllpClient::connect(&addr, Duration::from_secs(10)).await else { return };
            for i in 0.. {
                let msg = format!(
                    "MSH|^~\\&|MON|ICU|AORTA|AORTA|20260101120000||ORU^R01^ORU_R01|C{c}-{i}|P|2.5.1\rPID|1||MRN{i}^^^ICU^MR\rOBX|1|NM|8867-4^Heart rate^LN||{}|/min\r",
                    60 + i % 50
                );
                match client.send(msg.as_bytes()).await {
                    Ok(ack) if ack.code == "AA" => acked.lock().unwrap().push(msg.into_bytes()),
                    Ok(ack) => panic!("unexpected {}", ack.code),
                    Err(_) => return, // the server died
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 300 {
        assert!(
            Instant::now() < deadline,
            "the server acknowledged too little"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let have = stored(dir.path()).await;
    let missing = acked.iter().filter(|m| !have.contains(*m)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged messages lost",
        acked.len()
    );
    eprintln!(
        "{} messages acknowledged before SIGKILL; all {} present after restart ({} stored)",
        acked.len(),
        acked.len(),
        have.len()
    );
}
