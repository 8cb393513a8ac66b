//! The webhook sink against a local HTTP server that fails intermittently in every way an
//! endpoint does: 503s, 429 with `Retry-After`, connections closed before the answer (with the
//! request processed or not), answers slower than the client's timeout. Every event must arrive
//! (at least once, always under the same idempotency key); events the endpoint refuses for
//! good must be in the dead-letter topic after exactly the configured attempts, with the reason.

mod common;

use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, Record, TopicConfig};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server saw.
#[derive(Default)]
struct Seen {
    /// Requests answered 2xx or processed before the connection was dropped: (identity header,
    /// body).
    accepted: Vec<(String, Value)>,
    /// Attempts per event `n`, for the events that are always refused.
    refused_attempts: HashMap<i64, u32>,
}

struct Server {
    requests: AtomicU64,
    seen: Mutex<Seen>,
}

/// xorshift over the request number: the failure pattern is the same on every run.
fn roll(n: u64) -> u64 {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x % 100
}

async fn read_request(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(Vec<(String, String)>, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let headers: Vec<(String, String)> = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 8192];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Some((headers, body));
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn answer(s: &mut TcpStream, status: &str, extra: &str) -> bool {
    let body = format!("{{\"status\":\"{status}\"}}");
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
        body.len()
    );
    s.write_all(resp.as_bytes()).await.is_ok()
}

impl Server {
    fn accept(&self, headers: &[(String, String)], body: &[u8]) {
        let id = headers
            .iter()
            .find(|(k, _)| k == "idempotency-key" || k == "aorta-emit-ids")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(body).unwrap();
        self.seen.lock().unwrap().accepted.push((id, v));
    }

    async fn connection(self: Arc<Self>, mut s: TcpStream) {
        let mut buf = Vec::new();
        while let Some((headers, body)) = read_request(&mut s, &mut buf).await {
            let n = self.requests.fetch_add(1, Ordering::Relaxed);
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let refused = |k: &str| v.get(k).is_some_and(|b| b == true);
            if refused("poison") || refused("bad") {
                let key = v["n"].as_i64().unwrap();
                *self
                    .seen
                    .lock()
                    .unwrap()
                    .refused_attempts
                    .entry(key)
                    .or_default() += 1;
                let status = if refused("bad") {
                    "400 Bad Request"
                } else {
                    "500 Internal Server Error"
                };
                if !answer(&mut s, status, "").await {
                    return;
                }
                continue;
            }
            match roll(n) {
                0..10 => {
                    if !answer(&mut s, "503 Service Unavailable", "").await {
                        return;
                    }
                }
                10..16 => {
                    if !answer(&mut s, "429 Too Many Requests", "retry-after: 0\r\n").await {
                        return;
                    }
                }
                // Processed, then the connection dies before the answer: the client must
                // retry, and the server sees the event twice (same key).
                16..22 => {
                    self.accept(&headers, &body);
                    return;
                }
                // The connection dies before processing.
                22..26 => return,
                // Processed, but answered after the client gave up.
                26..29 => {
                    self.accept(&headers, &body);
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    let _ = answer(&mut s, "200 OK", "").await;
                    return;
                }
                _ => {
                    self.accept(&headers, &body);
                    if !answer(&mut s, "200 OK", "").await {
                        return;
                    }
                }
            }
        }
    }
}

async fn flaky_server() -> (String, Arc<Server>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = Arc::new(Server {
        requests: AtomicU64::new(0),
        seen: Mutex::new(Seen::default()),
    });
    let srv = server.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(srv.clone().connection(s));
        }
    });
    (url, server)
}

fn header<'a>(r: &'a aorta_log::ConsumedRecord, k: &str) -> &'a str {
    r.record
        .headers
        .iter()
        .find(|(h, _)| h == k)
        .map(|(_, v)| std::str::from_utf8(v).unwrap())
        .unwrap_or("")
}

const EVENTS: i64 = 1_500;
const ATTEMPTS: u32 = 15;

async fn setup(poison: &[i64], bad: &[i64]) -> (tempfile::TempDir, Arc<dyn Log>) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
    log.create_topic(
        "in",
        TopicConfig {
            partitions: 2,
            ..TopicConfig::default()
        },
    )
    .await
    .unwrap();
    for p in 0..2u32 {
        let recs: Vec<Record> = (0..EVENTS)
            .filter(|n| n % 2 == i64::from(p))
            .map(|n| {
                let mut v = json!({"n": n, "patient": format!("p{}", n % 37)});
                if poison.contains(&n) {
                    v["poison"] = json!(true);
                }
                if bad.contains(&n) {
                    v["bad"] = json!(true);
                }
                Record::new(v.to_string())
            })
            .collect();
        log.append("in", p, recs).await.unwrap();
    }
    (dir, log)
}

fn pipeline(url: &str, batch: usize, concurrency: usize) -> String {
    format!(
        r#"
[[pipelines]]
name = "hook"
from = ["in"]
max_read_bytes = 8192
[[pipelines.sinks]]
type = "webhook"
url = "{url}"
batch_size = {batch}
concurrency = {concurrency}
max_attempts = {ATTEMPTS}
backoff = "2ms"
max_backoff = "40ms"
timeout = "250ms"
headers = {{ "X-Source" = "aorta-test" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_endpoint_loses_nothing_and_refused_events_are_dead_lettered() {
    let poison = [7, 500, 1_201];
    let bad = [42, 999];
    let (dir, log) = setup(&poison, &bad).await;
    let (url, server) = flaky_server().await;
    let report =
        common::run_until_end(&log, &pipeline(&url, 1, 4), &dir.path().join("state")).await;

    let dlq = common::read_all(&log, "hook.dlq").await;
    let seen = server.seen.lock().unwrap();
    // Every deliverable event arrived, each always under one idempotency key, and distinct
    // events under distinct keys.
    let mut key_of: BTreeMap<i64, String> = BTreeMap::new();
    for (key, v) in &seen.accepted {
        let n = v["n"].as_i64().unwrap();
        assert!(!key.is_empty(), "request without an idempotency key");
        let k = key_of.entry(n).or_insert_with(|| key.clone());
        assert_eq!(k, key, "event {n} was sent under two keys");
    }
    let keys: BTreeSet<&String> = key_of.values().collect();
    assert_eq!(keys.len(), key_of.len(), "two events shared a key");
    let expected: BTreeSet<i64> = (0..EVENTS)
        .filter(|n| !poison.contains(n) && !bad.contains(n))
        .collect();
    let got: BTreeSet<i64> = key_of.keys().copied().collect();
    assert_eq!(got, expected, "events lost or refused events accepted");
    let duplicates = seen.accepted.len() - key_of.len();
    let requests = server.requests.load(Ordering::Relaxed);
    eprintln!(
        "webhook: {requests} requests for {} events, {} accepted ({duplicates} duplicates from lost answers)",
        EVENTS,
        seen.accepted.len()
    );
    assert!(
        duplicates > 0,
        "the server should have forced some redelivery"
    );
    assert!(
        requests > EVENTS as u64 + 200,
        "the server should have failed often"
    );

    // Refused events: exactly max_attempts tries for a 500, one for a 400, then dead letters.
    for n in poison {
        assert_eq!(
            seen.refused_attempts[&n], ATTEMPTS,
            "attempts for poison event {n}"
        );
    }
    for n in bad {
        assert_eq!(
            seen.refused_attempts[&n], 1,
            "a 400 must not be retried ({n})"
        );
    }
    drop(seen);
    let mut dead: BTreeMap<i64, String> = BTreeMap::new();
    for r in &dlq {
        let v: Value = serde_json::from_slice(&r.record.value).unwrap();
        dead.insert(
            v["n"].as_i64().unwrap(),
            header(r, "aorta.error").to_string(),
        );
        assert_eq!(header(r, "aorta.operator"), "hook/sinks[0]");
        assert!(header(r, "aorta.lineage").starts_with("in/"));
    }
    assert_eq!(dlq.len(), poison.len() + bad.len());
    for n in poison {
        let why = &dead[&n];
        assert!(
            why.contains("500") && why.contains(&format!("after {ATTEMPTS} attempts")),
            "{why}"
        );
    }
    for n in bad {
        assert!(
            dead[&n].contains("400") && dead[&n].contains("not retried"),
            "{}",
            dead[&n]
        );
    }
    assert_eq!(report.dead_lettered, (poison.len() + bad.len()) as u64);
    assert_eq!(report.output, EVENTS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_requests_carry_every_identity_in_order() {
    let (dir, log) = setup(&[], &[]).await;
    let (url, server) = flaky_server().await;
    common::run_until_end(&log, &pipeline(&url, 25, 3), &dir.path().join("state")).await;
    assert!(common::read_all(&log, "hook.dlq").await.is_empty());
    let seen = server.seen.lock().unwrap();
    let mut got: BTreeMap<i64, String> = BTreeMap::new();
    for (ids, body) in &seen.accepted {
        let items = body.as_array().expect("a batch is a JSON array");
        let ids: Vec<&str> = ids.split(',').collect();
        assert_eq!(ids.len(), items.len(), "one identity per element");
        assert!(items.len() <= 25);
        for (id, v) in ids.iter().zip(items) {
            let n = v["n"].as_i64().unwrap();
            let prev = got.insert(n, id.to_string());
            assert!(
                prev.is_none_or(|p| p == *id),
                "event {n} under two identities"
            );
        }
    }
    assert_eq!(got.len() as i64, EVENTS, "every event arrived");
}
