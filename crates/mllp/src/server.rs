//! The MLLP server: one task per connection, messages handled in arrival order on each
//! connection, and the acknowledgement rule that the whole product rests on:
//!
//! **AA is sent only after the append that carried the message has returned**, i.e. after the
//! record is durable (fdatasync on the embedded log, `acks=all` on Kafka). Connections hand
//! their records to one batcher task, which appends everything queued as one `produce` call per
//! round; while one round waits for its sync the next gathers, so all senders share each
//! fdatasync without a blocking thread per message.
//!
//! Per message:
//! 1. parse leniently; a message whose MSH cannot be read, whose MSH-9/MSH-12 are unusable or
//!    whose MSH-10 is empty is **rejected** (AR + ERR with an HL7 table 0357 code) and written
//!    to the dead-letter topic with the reason in the `aorta.reject.reason` header;
//! 2. a resend — same sender (MSH-3/MSH-4), same MSH-10 **and the same bytes** within
//!    `dedupe_window_secs`, in this process — is acknowledged AA but not appended again: the
//!    sender resent because our ACK was lost. A reused MSH-10 with different content is a
//!    different message (legacy senders reset their counters) and is stored.
//!    The window survives restarts: every stored record carries its receive time
//!    (`aorta.received_ms`), and on start the server reads back the tail of its topic (at most
//!    `dedupe_capacity` records) received within the window. So the classic crash case — stored,
//!    killed before the ACK went out, resent by the sender — stores the message once;
//! 3. otherwise the raw bytes are appended verbatim to `topic`, keyed by MSH-10 (or `key_path`),
//!    timestamped by MSH-7 (the receive time when MSH-7 is unusable or more than 5 minutes
//!    ahead of this clock); if the append fails the
//!    reply is AE + ERR 207 and the sender retries.

use crate::codec::{CodecError, MllpCodec};
use aorta_hl7::ack::{self, AckCode, AckError, ErrorCode};
use aorta_hl7::dtm::{dtm_to_ms, ms_to_dtm};
use aorta_hl7::{Message, Path};
use aorta_log::{Log, LogError, Record, TopicConfig};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

/// One `[[sources.mllp]]` block. Every key has a working default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MllpSourceConfig {
    /// Address to listen on.
    pub listen: String,
    /// Topic for accepted messages (created with `partitions` if missing).
    pub topic: String,
    /// Topic for rejected messages.
    pub dead_letter_topic: String,
    /// Partitions when the topics are created.
    pub partitions: u32,
    /// Record key: a terser path (default MSH-10, the control id).
    pub key_path: String,
    /// Largest frame accepted; a larger one closes the connection.
    pub max_frame_bytes: usize,
    /// Most concurrent connections; more are closed at once.
    pub max_connections: usize,
    /// A connection silent this long is closed.
    pub idle_timeout_secs: u64,
    /// Duplicate MSH-10 window (0 disables).
    pub dedupe_window_secs: u64,
    /// Most (sender, control id) pairs remembered for deduplication.
    pub dedupe_capacity: usize,
    /// MLLP over TLS: `[sources.mllp.tls]` with `cert_path` and `key_path` (PEM). None: plain TCP.
    pub tls: Option<crate::tls::TlsConfig>,
}

impl Default for MllpSourceConfig {
    fn default() -> Self {
        MllpSourceConfig {
            listen: "127.0.0.1:2575".into(),
            topic: "hl7.inbound".into(),
            dead_letter_topic: "hl7.dlq".into(),
            partitions: 1,
            key_path: "MSH-10".into(),
            max_frame_bytes: 8 << 20,
            max_connections: 256,
            idle_timeout_secs: 300,
            dedupe_window_secs: 600,
            dedupe_capacity: 100_000,
            tls: None,
        }
    }
}

/// Server errors (start-up; per-connection problems are logged and counted).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// Address.
        addr: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The configuration is not usable.
    #[error("MLLP source config: {0}")]
    Config(String),
    /// The TLS certificate or key is not usable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The log refused to create the topics.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Counters, for logs, tests and (later) the metrics endpoint.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused at the connection limit.
    pub refused: AtomicU64,
    /// Messages appended and acknowledged AA.
    pub accepted: AtomicU64,
    /// Duplicates acknowledged without appending.
    pub duplicates: AtomicU64,
    /// Messages rejected (AR) and sent to the dead-letter topic.
    pub rejected: AtomicU64,
    /// Appends that failed (AE).
    pub failed: AtomicU64,
    /// Junk bytes skipped before start blocks.
    pub junk_bytes: AtomicU64,
    /// Time from a complete frame received to its ACK written (append and fsync included).
    pub ack_latency: aorta_log::Histogram,
}

/// (sender MSH-3|MSH-4, control id MSH-10, hash of the message bytes).
type DedupeKey = (Vec<u8>, Vec<u8>, u64);

struct Dedupe {
    window: Duration,
    capacity: usize,
    seen: HashMap<DedupeKey, Instant>,
    order: VecDeque<(DedupeKey, Instant)>,
}

impl Dedupe {
    /// Remembers keys seen before this process started, oldest first, with their age.
    fn seed(&mut self, mut seen: Vec<(u64, DedupeKey)>) {
        seen.sort_by_key(|(age, _)| std::cmp::Reverse(*age));
        let now = Instant::now();
        let skip = seen.len().saturating_sub(self.capacity.max(1));
        for (age_ms, key) in seen.into_iter().skip(skip) {
            let at = now
                .checked_sub(Duration::from_millis(age_ms))
                .unwrap_or(now);
            self.seen.insert(key.clone(), at);
            self.order.push_back((key, at));
        }
    }

    fn is_duplicate(&mut self, key: &DedupeKey) -> bool {
        self.expire();
        self.seen.contains_key(key)
    }

    fn remember(&mut self, key: DedupeKey) {
        if self.window.is_zero() {
            return;
        }
        let now = Instant::now();
        while self.order.len() >= self.capacity.max(1) {
            if let Some((k, at)) = self.order.pop_front()
                && self.seen.get(&k) == Some(&at)
            {
                self.seen.remove(&k);
            }
        }
        self.seen.insert(key.clone(), now);
        self.order.push_back((key, now));
    }

    fn expire(&mut self) {
        let now = Instant::now();
        while let Some((k, at)) = self.order.front() {
            if now.duration_since(*at) < self.window {
                break;
            }
            if self.seen.get(k) == Some(at) {
                self.seen.remove(k);
            }
            self.order.pop_front();
        }
    }
}

/// A record waiting for the batcher, and where to say whether it is durable.
struct AppendRequest {
    record: Record,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Most records one batched append carries.
const MAX_BATCH: usize = 1024;

/// How far ahead of this clock an MSH-7 may be and still time-stamp the record.
const MAX_FUTURE_MS: i64 = 5 * 60_000;

/// Appends what the connections queued as one `produce` call per round: while one call waits
/// for its fdatasync, the next round's records gather, so all connections share each sync with
/// one writer task instead of one blocking thread per message. Every request is answered only
/// after the call that carried it returned (the ACK-after-durable rule is unchanged).
async fn batcher(
    log: Arc<dyn Log>,
    topic: String,
    mut rx: tokio::sync::mpsc::Receiver<AppendRequest>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let records = batch.iter().map(|r| r.record.clone()).collect();
        let result = log
            .produce(&topic, records, 0)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        for r in batch.drain(..) {
            let _ = r.done.send(result.clone());
        }
    }
}

struct Shared {
    config: MllpSourceConfig,
    key_path: Path,
    log: Arc<dyn Log>,
    appends: tokio::sync::mpsc::Sender<AppendRequest>,
    stats: Arc<Stats>,
    dedupe: Mutex<Dedupe>,
    ack_seq: AtomicU64,
}

/// A bound, not yet running, MLLP server.
pub struct MllpServer {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
}

fn now_ms() -> i64 {
    aorta_log::record::now_ms()
}

impl MllpServer {
    /// Creates the topics if needed and binds the listen address.
    pub async fn bind(
        config: MllpSourceConfig,
        log: Arc<dyn Log>,
    ) -> Result<MllpServer, ServerError> {
        let key_path: Path = config
            .key_path
            .parse()
            .map_err(|e| ServerError::Config(format!("key_path: {e}")))?;
        if config.max_frame_bytes == 0 || config.max_connections == 0 {
            return Err(ServerError::Config(
                "max_frame_bytes and max_connections must be positive".into(),
            ));
        }
        for t in [&config.topic, &config.dead_letter_topic] {
            match log
                .create_topic(
                    t,
                    TopicConfig {
                        partitions: config.partitions,
                        ..TopicConfig::default()
                    },
                )
                .await
            {
                Ok(_) | Err(LogError::TopicExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let tls = match &config.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
                t,
            )?)),
            None => None,
        };
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen.clone(),
                    source,
                })?;
        let (appends, queued) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(batcher(log.clone(), config.topic.clone(), queued));
        let mut dedupe = Dedupe {
            window: Duration::from_secs(config.dedupe_window_secs),
            capacity: config.dedupe_capacity,
            seen: HashMap::new(),
            order: VecDeque::new(),
        };
        if config.dedupe_window_secs > 0 {
            let seen = recently_stored(log.as_ref(), &config).await?;
            info!(topic = %config.topic, records = seen.len(), "dedupe window restored from the topic");
            dedupe.seed(seen);
        }
        Ok(MllpServer {
            listener,
            tls,
            shared: Arc::new(Shared {
                config,
                key_path,
                log,
                appends,
                stats: Arc::default(),
                dedupe: Mutex::new(dedupe),
                ack_seq: AtomicU64::new(0),
            }),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// Serves until `shutdown` turns true: then stops accepting, lets every connection finish
    /// the message it is handling (its ACK is sent), closes them, and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let limit = Arc::new(Semaphore::new(self.shared.config.max_connections));
        let mut tasks = tokio::task::JoinSet::new();
        info!(listen = %self.shared.config.listen, topic = %self.shared.config.topic, "MLLP source listening");
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => { warn!(error = %e, "accept failed"); continue; }
                    };
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        self.shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                        warn!(%peer, max = self.shared.config.max_connections, "connection refused: max_connections reached");
                        drop(stream);
                        continue;
                    };
                    self.shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                    let shared = self.shared.clone();
                    let stop = shutdown.clone();
                    let tls = self.tls.clone();
                    tasks.spawn(async move {
                        let _permit = permit;
                        let _ = stream.set_nodelay(true);
                        match tls {
                            None => connection(shared, stream, peer, stop).await,
                            Some(acceptor) => {
                                // A client that never finishes its handshake must not hold a slot.
                                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                                    Ok(Ok(tls)) => connection(shared, tls, peer, stop).await,
                                    Ok(Err(e)) => warn!(%peer, error = %e, "TLS handshake failed"),
                                    Err(_) => warn!(%peer, "TLS handshake timed out"),
                                }
                            }
                        }
                    });
                }
                _ = shutdown.changed() => break,
            }
            while tasks.try_join_next().is_some() {}
        }
        info!(
            connections = tasks.len(),
            "MLLP source stopping: finishing in-flight messages"
        );
        while tasks.join_next().await.is_some() {}
    }
}

async fn connection<S>(
    shared: Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut framed = Framed::new(stream, MllpCodec::new(shared.config.max_frame_bytes));
    let idle = Duration::from_secs(shared.config.idle_timeout_secs.max(1));
    debug!(%peer, "MLLP connection open");
    loop {
        let next = tokio::select! {
            n = tokio::time::timeout(idle, framed.next()) => n,
            _ = stop.changed() => break,
        };
        let frame = match next {
            Err(_) => {
                debug!(%peer, "idle timeout");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(CodecError::FrameTooLarge { max }))) => {
                warn!(%peer, max, "frame too large; closing the connection");
                break;
            }
            Ok(Some(Err(e))) => {
                debug!(%peer, error = %e, "connection error");
                break;
            }
            Ok(Some(Ok(f))) => f,
        };
        if frame.skipped > 0 {
            shared
                .stats
                .junk_bytes
                .fetch_add(frame.skipped as u64, Ordering::Relaxed);
            warn!(%peer, bytes = frame.skipped, "skipped bytes before an MLLP start block");
        }
        // Handled to the end even if shutdown arrives meanwhile: the sender gets its ACK.
        let received = Instant::now();
        let reply = handle(&shared, frame.payload, peer).await;
        let sent = framed.send(reply).await;
        shared.stats.ack_latency.record(received.elapsed());
        if sent.is_err() {
            break;
        }
    }
    debug!(%peer, "MLLP connection closed");
}

fn fallback_header() -> &'static [u8] {
    b"MSH|^~\\&|||||||ACK||P|2.5.1\r"
}

async fn handle(shared: &Shared, payload: Bytes, peer: SocketAddr) -> Vec<u8> {
    let seq = shared.ack_seq.fetch_add(1, Ordering::Relaxed);
    let ack_id = format!("A{}{seq:06}", now_ms());
    let ts = ms_to_dtm(now_ms());
    let msg = match aorta_hl7::parse(&payload) {
        Ok(m) => m,
        Err(e) => {
            let reason = format!("unreadable message: {e}");
            reject(shared, &payload, &reason, peer).await;
            let Ok(fake) = aorta_hl7::parse(fallback_header()) else {
                return Vec::new();
            };
            let err = AckError {
                code: ErrorCode::SegmentSequence,
                detail: e.to_string(),
                location: Some(("MSH".into(), 1, 0)),
            };
            return ack::build(&fake, AckCode::Reject, &ack_id, &ts, Some(&err));
        }
    };
    let reject_with = |code: ErrorCode, field: usize, detail: String| AckError {
        code,
        detail,
        location: Some(("MSH".into(), 1, field)),
    };
    let problem = match msg.validate_header() {
        Err(e) if e.field == Some(12) => Some(reject_with(
            ErrorCode::UnsupportedVersionId,
            12,
            e.kind.to_string(),
        )),
        Err(e) => Some(reject_with(
            ErrorCode::UnsupportedMessageType,
            e.field.unwrap_or(9),
            e.kind.to_string(),
        )),
        Ok(()) if msg.control_id().is_none_or(<[u8]>::is_empty) => Some(reject_with(
            ErrorCode::RequiredFieldMissing,
            10,
            "MSH-10 message control id is empty".into(),
        )),
        Ok(()) => None,
    };
    if let Some(err) = problem {
        reject(shared, &payload, &err.detail, peer).await;
        return ack::build(&msg, AckCode::Reject, &ack_id, &ts, Some(&err));
    }
    let dedupe_key = dedupe_key(&msg, &payload);
    let control_id = dedupe_key.1.clone();
    let duplicate = shared
        .dedupe
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_duplicate(&dedupe_key);
    if duplicate {
        shared.stats.duplicates.fetch_add(1, Ordering::Relaxed);
        info!(control_id = %String::from_utf8_lossy(&control_id), "duplicate MSH-10 from the same sender: acknowledged, not appended again");
        return ack::build(&msg, AckCode::Accept, &ack_id, &ts, None);
    }
    let key = shared
        .key_path
        .get(&msg)
        .filter(|k| !k.is_empty())
        .unwrap_or(&control_id)
        .to_vec();
    let timestamp_ms = msg
        .segment_at(0)
        .and_then(|s| s.field(7))
        .and_then(|f| f.repetition(1))
        .and_then(|r| r.component(1))
        .and_then(|c| dtm_to_ms(c.raw()))
        // A sender whose clock runs ahead would otherwise be refused for good by a Kafka
        // broker that bounds future timestamps (nisshi does; Kafka 3.6+ can).
        .filter(|t| *t <= now_ms().saturating_add(MAX_FUTURE_MS))
        .unwrap_or_else(now_ms);
    let mut record = Record::new(payload.clone())
        .with_key(key)
        .with_timestamp(timestamp_ms);
    if let Some(t) = msg.message_type() {
        record = record.with_header("hl7.type", t.to_vec());
    }
    record = record.with_header(RECEIVED_HEADER, now_ms().to_string());
    let (done, durable) = tokio::sync::oneshot::channel();
    let queued = shared.appends.send(AppendRequest { record, done }).await;
    let outcome = match queued {
        Ok(()) => durable
            .await
            .unwrap_or_else(|_| Err("the append task stopped".into())),
        Err(_) => Err("the append task stopped".into()),
    };
    match outcome {
        Ok(_) => {
            shared
                .dedupe
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remember(dedupe_key);
            shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
            ack::build(&msg, AckCode::Accept, &ack_id, &ts, None)
        }
        Err(e) => {
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            warn!(error = %e, topic = %shared.config.topic, "append failed; replying AE so the sender retries");
            let err = AckError {
                code: ErrorCode::InternalError,
                detail: "the message could not be stored; resend it".into(),
                location: None,
            };
            ack::build(&msg, AckCode::Error, &ack_id, &ts, Some(&err))
        }
    }
}

/// Header with the receive time (ms since the epoch) of every stored message.
pub const RECEIVED_HEADER: &str = "aorta.received_ms";

/// The dedupe keys of the messages stored within the window, read back from the tail of the
/// topic (at most `dedupe_capacity` records per partition), with their age in ms.
async fn recently_stored(
    log: &dyn Log,
    config: &MllpSourceConfig,
) -> Result<Vec<(u64, DedupeKey)>, LogError> {
    let window_ms = config.dedupe_window_secs.saturating_mul(1000);
    let now = now_ms();
    let partitions = log.describe_topic(&config.topic).await?.partitions;
    let mut out = Vec::new();
    for o in partitions {
        let p = o.partition;
        let mut from = o
            .high_watermark
            .saturating_sub(config.dedupe_capacity as u64)
            .max(o.log_start);
        while from < o.high_watermark {
            let batch = log
                .read(&config.topic, p, from, aorta_log::ReadOptions::default())
                .await?;
            if batch.records.is_empty() {
                break;
            }
            from = batch.next_offset(from);
            for r in batch.records {
                let received = r
                    .record
                    .headers
                    .iter()
                    .find(|(k, _)| k == RECEIVED_HEADER)
                    .map(|(_, v)| v.as_ref())
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse::<i64>().ok());
                let Some(age) = received.map(|t| now.saturating_sub(t).max(0) as u64) else {
                    continue;
                };
                if age >= window_ms {
                    continue;
                }
                let Ok(msg) = aorta_hl7::parse(&r.record.value) else {
                    continue;
                };
                out.push((age, dedupe_key(&msg, &r.record.value)));
            }
        }
    }
    Ok(out)
}

/// What identifies a resend: the sender, MSH-10 and the exact bytes.
fn dedupe_key(msg: &Message<'_>, payload: &[u8]) -> DedupeKey {
    (
        sender_of(msg),
        msg.control_id().unwrap_or_default().to_vec(),
        content_hash(payload),
    )
}

/// A hash of the message bytes that is the same in every build (it is compared with records
/// stored by earlier runs).
fn content_hash(payload: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(payload)
}

/// MSH-3 and MSH-4 (sending application and facility), the sender's identity for deduplication.
fn sender_of(msg: &Message<'_>) -> Vec<u8> {
    let msh = msg.segment_at(0);
    let f = |n| {
        msh.and_then(|s| s.field(n))
            .map(|f| f.raw().to_vec())
            .unwrap_or_default()
    };
    let mut v = f(3);
    v.push(b'|');
    v.extend(f(4));
    v
}

async fn reject(shared: &Shared, payload: &Bytes, reason: &str, peer: SocketAddr) {
    shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
    // The reason names the problem, never the message's content (it may hold PHI).
    warn!(%peer, reason, "message rejected to the dead-letter topic");
    let record = Record::new(payload.clone())
        .with_header("aorta.reject.reason", reason.to_string())
        .with_header("aorta.source", format!("mllp {}", shared.config.listen));
    if let Err(e) = shared
        .log
        .append(&shared.config.dead_letter_topic, 0, vec![record])
        .await
    {
        warn!(error = %e, "could not write the rejected message to the dead-letter topic");
    }
}
