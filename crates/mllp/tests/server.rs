//! The MLLP server against the embedded log, in process.

use aorta_log::conformance::read_partition;
use aorta_log::{EmbeddedConfig, EmbeddedLog, Log};
use aorta_mllp::{MllpClient, MllpServer, MllpSourceConfig};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

fn oru(i: usize) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LAB|HOSP|AORTA|AORTA|20260101120000||ORU^R01^ORU_R01|CTRL{i:05}|P|2.5.1\rPID|1||MRN{i}^^^HOSP^MR||DOE^JANE\rOBX|1|NM|8867-4^Heart rate^LN||{}|/min\r",
        60 + i % 40
    )
    .into_bytes()
}

struct Running {
    addr: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<aorta_mllp::Stats>,
    log: Arc<dyn Log>,
    _dir: tempfile::TempDir,
}

async fn start(config: MllpSourceConfig) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).unwrap());
    start_on(config, log, dir).await
}

async fn start_on(config: MllpSourceConfig, log: Arc<dyn Log>, dir: tempfile::TempDir) -> Running {
    let server = MllpServer::bind(
        MllpSourceConfig {
            listen: "127.0.0.1:0".into(),
            ..config
        },
        log.clone(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let stats = server.stats();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(server.run(rx));
    Running {
        addr,
        stop,
        task,
        stats,
        log,
        _dir: dir,
    }
}

async fn all(log: &dyn Log, topic: &str) -> Vec<aorta_log::ConsumedRecord> {
    read_partition(log, topic, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_msh7_ahead_of_the_clock_is_stored_at_the_receive_time() {
    let s = start(MllpSourceConfig::default()).await;
    let mut client = MllpClient::connect(&s.addr, Duration::from_secs(10))
        .await
        .unwrap();
    let msg = String::from_utf8(oru(1))
        .unwrap()
        .replace("20260101120000", "20991231000000");
    let before = aorta_log::record::now_ms();
    assert_eq!(client.send(msg.as_bytes()).await.unwrap().code, "AA");
    let after = aorta_log::record::now_ms();
    let recs = all(s.log.as_ref(), "hl7.inbound").await;
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].record.value.as_ref(),
        msg.as_bytes(),
        "stored verbatim"
    );
    let t = recs[0].record.timestamp_ms;
    assert!((before..=after).contains(&t), "{before} <= {t} <= {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_aa_message_is_in_the_topic_byte_for_byte() {
    let s = start(MllpSourceConfig::default()).await;
    let mut tasks = Vec::new();
    for c in 0..4 {
        let addr = s.addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = MllpClient::connect(&addr, Duration::from_secs(10))
                .await
                .unwrap();
            for i in (c * 50)..(c * 50 + 50) {
                let ack = client.send(&oru(i)).await.unwrap();
                assert_eq!(ack.code, "AA");
                assert_eq!(ack.control_id, format!("CTRL{i:05}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let recs = all(s.log.as_ref(), "hl7.inbound").await;
    assert_eq!(recs.len(), 200);
    let mut seen: Vec<usize> = recs
        .iter()
        .map(|r| {
            let key = String::from_utf8(r.record.key.clone().unwrap().to_vec()).unwrap();
            let i: usize = key.trim_start_matches("CTRL").parse().unwrap();
            assert_eq!(
                r.record.value.as_ref(),
                oru(i).as_slice(),
                "stored verbatim"
            );
            assert_eq!(
                r.record.timestamp_ms, 1_767_268_800_000,
                "timestamp from MSH-7"
            );
            assert_eq!(
                r.record.headers[0],
                (
                    "hl7.type".to_string(),
                    bytes::Bytes::from_static(b"ORU^R01^ORU_R01")
                )
            );
            i
        })
        .collect();
    seen.sort();
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    assert_eq!(s.stats.accepted.load(Ordering::Relaxed), 200);
    s.stop.send(true).unwrap();
    s.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacceptable_messages_get_ar_and_go_to_the_dead_letter_topic() {
    let s = start(MllpSourceConfig::default()).await;
    let mut c = MllpClient::connect(&s.addr, Duration::from_secs(10))
        .await
        .unwrap();
    let cases: [(&[u8], &str); 4] = [
        (b"PID|1||123\r", "100^Segment sequence error"),
        (
            b"MSH|^~\\&|A|B|C|D|20260101||ORU|C1|P|2.5.1\r",
            "200^Unsupported message type",
        ),
        (
            b"MSH|^~\\&|A|B|C|D|20260101||ORU^R01|C2|P|9.9\r",
            "203^Unsupported version id",
        ),
        (
            b"MSH|^~\\&|A|B|C|D|20260101||ORU^R01||P|2.5.1\r",
            "101^Required field missing",
        ),
    ];
    for (msg, code) in cases {
        let ack = c.send(msg).await.unwrap();
        assert_eq!(ack.code, "AR", "{}", String::from_utf8_lossy(msg));
        let text = String::from_utf8_lossy(&ack.raw).into_owned();
        assert!(text.contains(code), "{text}");
        assert!(text.contains("\rERR|"), "{text}");
    }
    let dlq = all(s.log.as_ref(), "hl7.dlq").await;
    assert_eq!(dlq.len(), 4);
    for (r, (msg, _)) in dlq.iter().zip(cases) {
        assert_eq!(r.record.value.as_ref(), msg);
        assert_eq!(r.record.headers[0].0, "aorta.reject.reason");
    }
    assert!(all(s.log.as_ref(), "hl7.inbound").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_message_is_acknowledged_but_stored_once() {
    let s = start(MllpSourceConfig::default()).await;
    let mut c = MllpClient::connect(&s.addr, Duration::from_secs(10))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(c.send(&oru(7)).await.unwrap().code, "AA");
    }
    assert_eq!(all(s.log.as_ref(), "hl7.inbound").await.len(), 1);
    assert_eq!(s.stats.duplicates.load(Ordering::Relaxed), 2);
    // A reused control id with other content is another message: stored, never dropped.
    let mut other = oru(7);
    let at = other.len() - 8;
    other[at] = b'9';
    assert_eq!(c.send(&other).await.unwrap().code, "AA");
    let stored = all(s.log.as_ref(), "hl7.inbound").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].record.value.as_ref(), other.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dedupe_window_survives_a_restart() {
    let s = start(MllpSourceConfig::default()).await;
    let mut c = MllpClient::connect(&s.addr, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(c.send(&oru(7)).await.unwrap().code, "AA");
    drop(c);
    // Stored before a restart, received long before the window: not a resend any more.
    let old = aorta_log::Record::new(oru(8)).with_header(
        aorta_mllp::server::RECEIVED_HEADER,
        (aorta_log::record::now_ms() - 700_000).to_string(),
    );
    s.log.append("hl7.inbound", 0, vec![old]).await.unwrap();
    let Running {
        stop,
        task,
        log,
        _dir,
        ..
    } = s;
    stop.send(true).unwrap();
    task.await.unwrap();

    // The sender never saw the ACK and resends after the restart.
    let s = start_on(MllpSourceConfig::default(), log, _dir).await;
    let mut c = MllpClient::connect(&s.addr, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(c.send(&oru(7)).await.unwrap().code, "AA");
    assert_eq!(s.stats.duplicates.load(Ordering::Relaxed), 1);
    assert_eq!(c.send(&oru(8)).await.unwrap().code, "AA");
    assert_eq!(s.stats.duplicates.load(Ordering::Relaxed), 1);
    let stored = all(s.log.as_ref(), "hl7.inbound").await;
    let values: Vec<&[u8]> = stored.iter().map(|r| r.record.value.as_ref()).collect();
    assert_eq!(values, vec![&oru(7)[..], &oru(8)[..], &oru(8)[..]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_pipelined_frames_limits_and_shutdown() {
    let s = start(MllpSourceConfig {
        max_connections: 2,
        max_frame_bytes: 4096,
        ..MllpSourceConfig::default()
    })
    .await;
    // Junk, then two frames in one write: two ACKs come back in order.
    let mut raw = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let mut wire = b"\r\nnoise".to_vec();
    for i in [1, 2] {
        wire.push(0x0B);
        wire.extend(oru(i));
        wire.extend([0x1C, 0x0D]);
    }
    raw.write_all(&wire).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.iter().filter(|&&b| b == 0x1C).count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let first = text.find("MSA|AA|CTRL00001").unwrap();
    let second = text.find("MSA|AA|CTRL00002").unwrap();
    assert!(first < second);
    assert_eq!(s.stats.junk_bytes.load(Ordering::Relaxed), 7);
    // A third connection beyond max_connections = 2 is closed at once.
    let _second = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "refused connection is closed");
    assert_eq!(s.stats.refused.load(Ordering::Relaxed), 1);
    // An oversized frame closes its connection.
    raw.write_all(&[0x0B]).await.unwrap();
    raw.write_all(&vec![b'x'; 5000]).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    // Shutdown returns once connections are done.
    s.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), s.task)
        .await
        .unwrap()
        .unwrap();
}
