//! # aorta-kafka — the `Log` trait over Apache Kafka
//!
//! Aorta's scale-out backend: the same [`aorta_log::Log`] trait the embedded engine implements,
//! on any Kafka-compatible cluster (Apache Kafka, Confluent, Redpanda, MSK), through rdkafka with
//! a bundled librdkafka. Scale-out is Kafka's: more `aorta` workers in one consumer group.
//!
//! | piece | how |
//! |---|---|
//! | append | idempotent `FutureProducer` (`acks=all`, `enable.idempotence=true`); every record of a batch is enqueued to the chosen partition, and the call resolves only when every delivery report is in |
//! | read | one positioned consumer per partition (no group), `auto.offset.reset=error`, partition-EOF events tell "caught up" without a round trip |
//! | groups | [`Log::join_group`] runs a group consumer that subscribes, publishes each rebalance on the membership's watch channel and **pauses** its partitions: it holds the assignment and heartbeats; records are read through `read` |
//! | commit | through the live member of that group in this process (generation-checked by the broker), else as a standalone commit |
//! | admin | `AdminClient` create/delete; metadata and watermarks for list/describe |
//!
//! ## Invariants
//! * Keys are partitioned by the caller (murmur2, [`aorta_log::partitioner`]); the producer's
//!   own partitioner is never used, so both backends agree.
//! * An append that returns `Ok` was acknowledged by all in-sync replicas.
//! * Delivery is at-least-once: a retried append after a timeout can duplicate records; the
//!   idempotent producer removes retries *inside* librdkafka only. Exactly-once would need
//!   Kafka transactions, which this backend does not use (and the CI broker refuses).
//!
//! ## Must not depend on
//! The embedded engine's internals, anything healthcare-specific, or any server code.

use aorta_log::{
    AppendAck, Assignment, ConsumedRecord, Log, LogError, Membership, PartitionOffsets,
    PartitionState, ReadBatch, ReadOptions, Record, TopicConfig, TopicDescription, TopicPartition,
    validate_topic_name,
};
use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{debug, warn};

const BACKEND: &str = "kafka";

/// How to reach the cluster. Every field but `bootstrap` has a working default.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub bootstrap: String,
    /// librdkafka properties passed to every client: `security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `ssl.ca.location`, … (see librdkafka's CONFIGURATION.md).
    pub properties: BTreeMap<String, String>,
    /// Replication factor for topics Aorta creates; -1 uses the broker's default.
    pub replication_factor: i32,
    /// Bound on every request and on waiting for acknowledgements.
    pub request_timeout_ms: u64,
    /// Consumer-group session timeout: how long before a silent member's partitions move.
    pub session_timeout_ms: u64,
    /// How many partition readers to keep open (least recently used are closed).
    pub max_readers: usize,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap: "127.0.0.1:9092".into(),
            properties: BTreeMap::new(),
            replication_factor: -1,
            request_timeout_ms: 30_000,
            session_timeout_ms: 10_000,
            max_readers: 256,
        }
    }
}

impl KafkaConfig {
    /// Defaults with the given bootstrap servers.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap: bootstrap.into(),
            ..Default::default()
        }
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c.set("socket.timeout.ms", self.request_timeout_ms.to_string());
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

fn backend_err(operation: impl Into<String>, e: impl std::fmt::Display) -> LogError {
    LogError::Backend {
        backend: BACKEND,
        operation: operation.into(),
        reason: e.to_string(),
    }
}

/// Maps an admin operation's per-topic results to the log's typed errors.
fn admin_outcome(
    results: Vec<Result<String, (String, RDKafkaErrorCode)>>,
    name: &str,
    doing: &str,
) -> Result<(), LogError> {
    for r in results {
        if let Err((_, code)) = r {
            return Err(match code {
                RDKafkaErrorCode::TopicAlreadyExists => {
                    LogError::TopicExists { topic: name.into() }
                }
                RDKafkaErrorCode::UnknownTopicOrPartition => {
                    LogError::UnknownTopic { topic: name.into() }
                }
                RDKafkaErrorCode::InvalidTopic => LogError::InvalidTopicName {
                    name: name.into(),
                    reason: "the broker refused it",
                },
                other => backend_err(format!("{doing} topic {name}"), other),
            });
        }
    }
    Ok(())
}

fn code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// Reader clients turn on partition-EOF events; they are the normal "caught up" signal, not
/// errors, so this context keeps them out of the error log.
struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if !eof {
            warn!(error = %error, reason, "kafka reader client error");
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// One reader client per topic: a single consumer (one fetch session for all its partitions),
/// whose messages are split into a queue per partition.
struct TopicReader {
    consumer: Arc<BaseConsumer<ReaderContext>>,
    partitions: Mutex<HashMap<u32, SharedReader>>,
    used: Mutex<Instant>,
}

/// A partition's queue and where it stands, reused while reads continue where the last ended.
struct Reader {
    queue: PartitionQueue<ReaderContext>,
    /// Next offset the queue will deliver, if positioned.
    position: Option<u64>,
    /// Whether the partition is in the consumer's assignment.
    assigned: bool,
    log_start: u64,
    high_watermark: u64,
}

/// A partition reader shared by concurrent `read` calls on the same partition.
type SharedReader = Arc<Mutex<Reader>>;

struct GroupContext {
    tx: watch::Sender<Assignment>,
    generation: AtomicU64,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = match rebalance {
            Rebalance::Assign(tpl) => {
                // The member only holds the assignment; records are read through `read`.
                if let Err(e) = consumer.pause(tpl) {
                    warn!(error = %e, "could not pause assigned partitions");
                }
                tpl.elements()
                    .iter()
                    .map(|e| TopicPartition::new(e.topic(), e.partition() as u32))
                    .collect()
            }
            Rebalance::Revoke(_) => Vec::new(),
            Rebalance::Error(e) => {
                warn!(error = %e, "consumer group rebalance error");
                return;
            }
        };
        let mut partitions: Vec<TopicPartition> = partitions;
        partitions.sort();
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.tx.send_replace(Assignment {
            generation,
            partitions,
        });
    }
}

/// A live group member: its consumer, polled by a thread until the membership is dropped.
struct Member {
    consumer: Arc<BaseConsumer<GroupContext>>,
    stop: Arc<AtomicBool>,
}

struct Inner {
    config: KafkaConfig,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Metadata and watermark queries.
    meta: BaseConsumer,
    readers: Mutex<HashMap<String, Arc<TopicReader>>>,
    members: Mutex<HashMap<String, Weak<Member>>>,
}

/// The Kafka backend. Cheap to clone.
#[derive(Clone)]
pub struct KafkaLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("bootstrap", &self.inner.config.bootstrap)
            .finish()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LogError::Internal(format!("kafka worker failed: {e}")))?
}

impl KafkaLog {
    /// Connects (lazily: librdkafka connects on first use) and checks that the cluster answers
    /// a metadata request within the request timeout.
    pub async fn connect(config: KafkaConfig) -> Result<KafkaLog, LogError> {
        let producer: FutureProducer = config
            .client()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set("message.timeout.ms", config.request_timeout_ms.to_string())
            .create()
            .map_err(|e| backend_err("creating the producer", e))?;
        let admin: AdminClient<DefaultClientContext> = config
            .client()
            .create()
            .map_err(|e| backend_err("creating the admin client", e))?;
        let meta: BaseConsumer = config
            .client()
            .create()
            .map_err(|e| backend_err("creating the metadata client", e))?;
        let log = KafkaLog {
            inner: Arc::new(Inner {
                config,
                producer,
                admin,
                meta,
                readers: Mutex::new(HashMap::new()),
                members: Mutex::new(HashMap::new()),
            }),
        };
        let inner = log.inner.clone();
        blocking(move || {
            inner
                .meta
                .fetch_metadata(None, inner.config.timeout())
                .map(|_| ())
                .map_err(|e| {
                    backend_err(
                        format!("connecting to {}", inner.config.bootstrap),
                        format!("{e}; check --kafka and that the brokers are reachable"),
                    )
                })
        })
        .await?;
        Ok(log)
    }
}

impl Inner {
    fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        let md = self
            .meta
            .fetch_metadata(Some(topic), self.config.timeout())
            .map_err(|e| backend_err(format!("metadata of {topic}"), e))?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| LogError::UnknownTopic {
                topic: topic.into(),
            })?;
        if t.error().is_some() || t.partitions().is_empty() {
            return Err(LogError::UnknownTopic {
                topic: topic.into(),
            });
        }
        Ok(t.partitions().len() as u32)
    }

    fn check_partition(&self, topic: &str, partition: u32) -> Result<(), LogError> {
        let partitions = self.partition_count(topic)?;
        if partition >= partitions {
            return Err(LogError::UnknownPartition {
                topic: topic.into(),
                partition,
                partitions,
            });
        }
        Ok(())
    }

    fn watermarks(&self, topic: &str, partition: u32) -> Result<(u64, u64), LogError> {
        let (lo, hi) = self
            .meta
            .fetch_watermarks(topic, partition as i32, self.config.timeout())
            .map_err(|e| match code(&e) {
                Some(
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownPartition,
                ) => match self.check_partition(topic, partition) {
                    Err(err) => err,
                    Ok(()) => backend_err(format!("watermarks of {topic}/{partition}"), e),
                },
                _ => backend_err(format!("watermarks of {topic}/{partition}"), e),
            })?;
        Ok((lo.max(0) as u64, hi.max(0) as u64))
    }

    fn describe(&self, topic: &str) -> Result<TopicDescription, LogError> {
        let n = self.partition_count(topic)?;
        let mut partitions = Vec::with_capacity(n as usize);
        for p in 0..n {
            let (lo, hi) = self.watermarks(topic, p)?;
            partitions.push(PartitionState {
                partition: p,
                log_start: lo,
                high_watermark: hi,
                size_bytes: 0,
                segments: 0,
            });
        }
        Ok(TopicDescription {
            name: topic.to_string(),
            // Retention and segment settings live in the broker's topic config; Aorta reports
            // the partition count it can see and leaves the rest at "not known here".
            config: TopicConfig {
                partitions: n,
                retention_ms: None,
                retention_bytes: None,
                segment_bytes: 0,
                compact: false,
            },
            partitions,
        })
    }

    fn topic_reader(&self, topic: &str) -> Result<Arc<TopicReader>, LogError> {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = readers.get(topic) {
            *r.used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            return Ok(r.clone());
        }
        if readers.len() >= self.config.max_readers.max(1) {
            let oldest = readers
                .iter()
                .min_by_key(|(_, r)| *r.used.lock().unwrap_or_else(|e| e.into_inner()))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                readers.remove(&k);
            }
        }
        let consumer: BaseConsumer<ReaderContext> = self
            .config
            .client()
            .set("group.id", "aorta-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "true")
            .create_with_context(ReaderContext)
            .map_err(|e| backend_err("creating a reader", e))?;
        let r = Arc::new(TopicReader {
            consumer: Arc::new(consumer),
            partitions: Mutex::new(HashMap::new()),
            used: Mutex::new(Instant::now()),
        });
        readers.insert(topic.to_string(), r.clone());
        Ok(r)
    }

    fn reader(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<(Arc<TopicReader>, SharedReader), LogError> {
        let t = self.topic_reader(topic)?;
        let mut parts = t.partitions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = parts.get(&partition) {
            let r = r.clone();
            drop(parts);
            return Ok((t, r));
        }
        // Split the queue before the partition is assigned, so no message lands elsewhere.
        let queue = t
            .consumer
            .split_partition_queue(topic, partition as i32)
            .ok_or_else(|| {
                backend_err(
                    format!("reading {topic}/{partition}"),
                    "librdkafka gave no partition queue",
                )
            })?;
        let r = Arc::new(Mutex::new(Reader {
            queue,
            position: None,
            assigned: false,
            log_start: 0,
            high_watermark: 0,
        }));
        parts.insert(partition, r.clone());
        drop(parts);
        Ok((t, r))
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        options: ReadOptions,
    ) -> Result<ReadBatch, LogError> {
        let (topic_reader, reader) = self.reader(topic, partition)?;
        let mut r = reader.lock().unwrap_or_else(|e| e.into_inner());
        let out_of_range = |lo: u64, hi: u64| LogError::OffsetOutOfRange {
            topic: topic.into(),
            partition,
            requested: from,
            log_start: lo,
            high_watermark: hi,
        };
        if from >= r.high_watermark || from < r.log_start || r.position.is_none() {
            let (lo, hi) = self.watermarks(topic, partition)?;
            r.log_start = lo;
            r.high_watermark = r.high_watermark.max(hi);
            if from < lo || from > hi {
                return Err(out_of_range(lo, hi));
            }
        }
        let mut batch = ReadBatch {
            records: Vec::new(),
            log_start: r.log_start,
            high_watermark: r.high_watermark,
        };
        let at_end = from >= r.high_watermark;
        if at_end && options.max_wait.is_zero() {
            return Ok(batch);
        }
        if r.position != Some(from) {
            let consumer = &topic_reader.consumer;
            let position_err = |e: KafkaError| {
                backend_err(format!("positioning a reader on {topic}/{partition}"), e)
            };
            if r.assigned {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(topic, partition as i32);
                consumer.incremental_unassign(&tpl).map_err(position_err)?;
                r.assigned = false;
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, partition as i32, Offset::Offset(from as i64))
                .map_err(position_err)?;
            consumer.incremental_assign(&tpl).map_err(position_err)?;
            r.assigned = true;
            r.position = Some(from);
        }
        // Serve the shared consumer's own queue (client-level events; messages arrive on the
        // partition queues). An out-of-range error may surface there rather than on the
        // partition queue: report it instead of waiting out the timeout.
        if let Some(Err(e)) = topic_reader.consumer.poll(Duration::ZERO)
            && code(&e) == Some(RDKafkaErrorCode::OffsetOutOfRange)
        {
            r.position = None;
            let (lo, hi) = self.watermarks(topic, partition)?;
            return Err(out_of_range(lo, hi));
        }
        let deadline = Instant::now()
            + if at_end {
                options.max_wait
            } else {
                self.config.timeout()
            };
        let mut bytes = 0usize;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // Once something arrived, only drain what is already buffered.
            let wait = if batch.records.is_empty() {
                (deadline - now).min(Duration::from_millis(100))
            } else {
                Duration::ZERO
            };
            match r.queue.poll(wait) {
                Some(Ok(m)) => {
                    let offset = m.offset().max(0) as u64;
                    if offset < from {
                        continue;
                    }
                    let record = Record {
                        key: m.key().map(Bytes::copy_from_slice),
                        value: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
                        headers: m
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|h| {
                                        (
                                            h.key.to_string(),
                                            Bytes::copy_from_slice(h.value.unwrap_or_default()),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                    };
                    let size = record.payload_len();
                    if !batch.records.is_empty() && bytes + size > options.max_bytes {
                        // Keep it for the next read: reposition there.
                        r.position = None;
                        break;
                    }
                    bytes += size;
                    r.position = Some(offset + 1);
                    r.high_watermark = r.high_watermark.max(offset + 1);
                    batch.records.push(ConsumedRecord { offset, record });
                    if bytes >= options.max_bytes {
                        break;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    if !batch.records.is_empty() || options.max_wait.is_zero() {
                        break;
                    }
                }
                Some(Err(e)) if code(&e) == Some(RDKafkaErrorCode::OffsetOutOfRange) => {
                    r.position = None;
                    let (lo, hi) = self.watermarks(topic, partition)?;
                    return Err(out_of_range(lo, hi));
                }
                Some(Err(e)) => {
                    r.position = None;
                    return Err(backend_err(format!("reading {topic}/{partition}"), e));
                }
                None => {
                    if !batch.records.is_empty() {
                        break;
                    }
                }
            }
        }
        batch.high_watermark = r.high_watermark;
        batch.log_start = r.log_start;
        Ok(batch)
    }

    fn group_client(&self, group: &str) -> Result<BaseConsumer, LogError> {
        self.config
            .client()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| backend_err(format!("creating a client for group {group}"), e))
    }

    fn commit(&self, group: &str, offsets: &[(TopicPartition, u64)]) -> Result<(), LogError> {
        if offsets.is_empty() {
            // librdkafka reads an empty list as "commit what you stored", which we never use.
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, o) in offsets {
            self.check_partition(&tp.topic, tp.partition)?;
            tpl.add_partition_offset(&tp.topic, tp.partition as i32, Offset::Offset(*o as i64))
                .map_err(|e| backend_err("building a commit", e))?;
        }
        let member = self
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group)
            .and_then(Weak::upgrade);
        let result = match &member {
            Some(m) => m.consumer.commit(&tpl, CommitMode::Sync),
            None => self.group_client(group)?.commit(&tpl, CommitMode::Sync),
        };
        result.map_err(|e| {
            let hint = if member.is_none() {
                " (a commit from outside the group is refused while the group has active members; commit from a member)"
            } else {
                ""
            };
            backend_err(format!("committing offsets of group {group}"), format!("{e}{hint}"))
        })
    }

    fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, LogError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&tp.topic, tp.partition as i32);
        let client = self.group_client(group)?;
        let got = client
            .committed_offsets(tpl, self.config.timeout())
            .map_err(|e| backend_err(format!("reading committed offsets of group {group}"), e))?;
        Ok(got
            .find_partition(&tp.topic, tp.partition as i32)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o as u64),
                _ => None,
            }))
    }
}

#[async_trait]
impl Log for KafkaLog {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn create_topic(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<TopicDescription, LogError> {
        validate_topic_name(name)?;
        if config.partitions == 0 {
            return Err(LogError::InvalidConfig(format!(
                "topic \"{name}\": partitions must be at least 1"
            )));
        }
        let retention_ms = config.retention_ms.map(|v| v.to_string());
        let retention_bytes = config.retention_bytes.map(|v| v.to_string());
        let segment_bytes = config.segment_bytes.to_string();
        let mut topic = NewTopic::new(
            name,
            config.partitions as i32,
            TopicReplication::Fixed(self.inner.config.replication_factor),
        );
        if let Some(v) = &retention_ms {
            topic = topic.set("retention.ms", v);
        }
        if let Some(v) = &retention_bytes {
            topic = topic.set("retention.bytes", v);
        }
        if config.segment_bytes != TopicConfig::default().segment_bytes {
            topic = topic.set("segment.bytes", &segment_bytes);
        }
        if config.compact {
            topic = topic.set("cleanup.policy", "compact");
        }
        let opts = AdminOptions::new().operation_timeout(Some(self.inner.config.timeout()));
        let results = self
            .inner
            .admin
            .create_topics([&topic], &opts)
            .await
            .map_err(|e| backend_err(format!("creating topic {name}"), e))?;
        admin_outcome(results, name, "creating")?;
        // Creation is asynchronous in Kafka: wait until metadata shows every partition.
        let inner = self.inner.clone();
        let name = name.to_string();
        blocking(move || {
            let deadline = Instant::now() + inner.config.timeout();
            loop {
                match inner.describe(&name) {
                    Ok(d) if d.partitions.len() as u32 == config.partitions => return Ok(d),
                    _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    Ok(d) => return Ok(d),
                    Err(e) => return Err(e),
                }
            }
        })
        .await
    }

    async fn delete_topic(&self, name: &str) -> Result<(), LogError> {
        let opts = AdminOptions::new().operation_timeout(Some(self.inner.config.timeout()));
        let results = self
            .inner
            .admin
            .delete_topics(&[name], &opts)
            .await
            .map_err(|e| backend_err(format!("deleting topic {name}"), e))?;
        admin_outcome(results, name, "deleting")?;
        self.inner
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    async fn list_topics(&self) -> Result<Vec<TopicDescription>, LogError> {
        let inner = self.inner.clone();
        blocking(move || {
            let md = inner
                .meta
                .fetch_metadata(None, inner.config.timeout())
                .map_err(|e| backend_err("listing topics", e))?;
            let mut names: Vec<String> = md
                .topics()
                .iter()
                .map(|t| t.name().to_string())
                .filter(|n| !n.starts_with("__"))
                .collect();
            names.sort();
            names.iter().map(|n| inner.describe(n)).collect()
        })
        .await
    }

    async fn describe_topic(&self, name: &str) -> Result<TopicDescription, LogError> {
        let inner = self.inner.clone();
        let name = name.to_string();
        blocking(move || inner.describe(&name)).await
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<AppendAck, LogError> {
        if records.is_empty() {
            return Err(LogError::BatchTooLarge {
                what: "record count",
                size: 0,
                max: 0,
                knob: "a batch needs at least one record",
            });
        }
        let mut pending = Vec::with_capacity(records.len());
        for r in &records {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k.as_str(),
                    value: Some(v.as_ref()),
                });
            }
            let mut fr = FutureRecord::to(topic)
                .partition(partition as i32)
                .payload(r.value.as_ref())
                .timestamp(r.timestamp_ms)
                .headers(headers);
            if let Some(k) = &r.key {
                fr = fr.key(k.as_ref());
            }
            loop {
                match self.inner.producer.send_result(fr) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((e, back)) if code(&e) == Some(RDKafkaErrorCode::QueueFull) => {
                        // librdkafka's queue is full: let deliveries drain, then retry.
                        fr = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => {
                        return Err(backend_err(format!("appending to {topic}/{partition}"), e));
                    }
                }
            }
        }
        let mut offsets = Vec::with_capacity(pending.len());
        for d in pending {
            match d.await {
                Ok(Ok(delivery)) => offsets.push(delivery.offset.max(0) as u64),
                Ok(Err((e, _))) => {
                    return Err(match code(&e) {
                        Some(
                            RDKafkaErrorCode::UnknownTopicOrPartition
                            | RDKafkaErrorCode::UnknownPartition,
                        ) => {
                            let inner = self.inner.clone();
                            let t = topic.to_string();
                            blocking(move || inner.check_partition(&t, partition))
                                .await
                                .err()
                                .unwrap_or_else(|| {
                                    backend_err(format!("appending to {topic}/{partition}"), e)
                                })
                        }
                        Some(RDKafkaErrorCode::MessageSizeTooLarge) => backend_err(
                            format!("appending to {topic}/{partition}"),
                            format!("{e}: a record exceeds the broker's message.max.bytes"),
                        ),
                        _ => backend_err(format!("appending to {topic}/{partition}"), e),
                    });
                }
                Err(_) => {
                    return Err(LogError::Internal(
                        "the producer dropped a delivery report".into(),
                    ));
                }
            }
        }
        Ok(AppendAck { partition, offsets })
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        options: ReadOptions,
    ) -> Result<ReadBatch, LogError> {
        let inner = self.inner.clone();
        let topic = topic.to_string();
        blocking(move || inner.read(&topic, partition, from, options)).await
    }

    async fn offsets(&self, topic: &str, partition: u32) -> Result<PartitionOffsets, LogError> {
        let inner = self.inner.clone();
        let topic = topic.to_string();
        blocking(move || {
            let (log_start, high_watermark) = inner.watermarks(&topic, partition)?;
            Ok(PartitionOffsets {
                log_start,
                high_watermark,
            })
        })
        .await
    }

    async fn commit(&self, group: &str, offsets: &[(TopicPartition, u64)]) -> Result<(), LogError> {
        let inner = self.inner.clone();
        let group = group.to_string();
        let offsets = offsets.to_vec();
        blocking(move || inner.commit(&group, &offsets)).await
    }

    async fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, LogError> {
        let inner = self.inner.clone();
        let group = group.to_string();
        let tp = tp.clone();
        blocking(move || inner.committed(&group, &tp)).await
    }

    async fn join_group(&self, group: &str, topics: &[String]) -> Result<Membership, LogError> {
        if topics.is_empty() {
            return Err(LogError::Group {
                group: group.into(),
                reason: "a member must subscribe to at least one topic".into(),
            });
        }
        for t in topics {
            self.describe_topic(t).await?;
        }
        let (tx, mut rx) = watch::channel(Assignment::default());
        let context = GroupContext {
            tx,
            generation: AtomicU64::new(0),
        };
        let config = &self.inner.config;
        let consumer: BaseConsumer<GroupContext> = config
            .client()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("session.timeout.ms", config.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (config.session_timeout_ms / 5).max(100).to_string(),
            )
            .set("partition.assignment.strategy", "range")
            .create_with_context(context)
            .map_err(|e| backend_err(format!("joining group {group}"), e))?;
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&refs)
            .map_err(|e| backend_err(format!("joining group {group}"), e))?;
        let member = Arc::new(Member {
            consumer: Arc::new(consumer),
            stop: Arc::new(AtomicBool::new(false)),
        });
        {
            let consumer = member.consumer.clone();
            let stop = member.stop.clone();
            std::thread::Builder::new()
                .name(format!("aorta-group-{group}"))
                .spawn(move || {
                    // Serves rebalance callbacks; partitions are paused, so no records arrive here.
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
                            debug!(error = %e, "group consumer event");
                        }
                    }
                    consumer.unsubscribe();
                })
                .map_err(|e| LogError::io("starting the group thread", e))?;
        }
        self.inner
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(group.to_string(), Arc::downgrade(&member));
        // Return once the first assignment has arrived, so callers start with a real one.
        let assigned = matches!(
            tokio::time::timeout(config.timeout(), rx.wait_for(|a| a.generation > 0)).await,
            Ok(Ok(_))
        );
        if !assigned {
            member.stop.store(true, Ordering::Relaxed);
            return Err(backend_err(
                format!("joining group {group}"),
                "no partition assignment within the request timeout",
            ));
        }
        // The broker's member id is not exposed by rdkafka; this one is unique in the process.
        static MEMBERS: AtomicU64 = AtomicU64::new(0);
        let member_id = format!(
            "{group}-{}-{}",
            std::process::id(),
            MEMBERS.fetch_add(1, Ordering::Relaxed) + 1
        );
        let held = member.clone();
        let leave = Box::new(move || {
            held.stop.store(true, Ordering::Relaxed);
        });
        Ok(Membership::new(group.to_string(), member_id, rx, leave))
    }
}
