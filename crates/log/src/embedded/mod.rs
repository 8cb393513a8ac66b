//! # The embedded log engine
//!
//! Aorta's default backend: zero set-up, one machine, durable on local disk.
//!
//! ## Constraints
//! * **Nothing acknowledged is lost.** [`Log::append`](crate::Log::append) resolves only after
//!   the batch is on stable storage (`fsync = always`, the default). A reader never sees a
//!   record before that point, so nothing a consumer acted on can vanish in a crash.
//! * **Nothing damaged is served.** Every batch carries a CRC32C; reads verify it and fail with
//!   [`LogError::Corrupt`] naming the file and byte position instead of returning bad bytes.
//! * **One process per data directory**, enforced by an exclusive lock on `<data>/LOCK`.
//! * **Bounded**: record, batch and read sizes, partitions per topic and open read handles are
//!   limited by [`Limits`]; segment positions are 32-bit, so segments are at most 2 GiB.
//!
//! ## On-disk layout
//! ```text
//! <data_dir>/
//!   LOCK                                 flock'd while open; holds the owner's pid
//!   topics/<topic>/topic.json            TopicConfig, written atomically (tmp + fsync + rename)
//!   topics/<topic>/<partition>/
//!       00000000000000000000.log         segment: record batches back to back
//!       00000000000000000000.idx         sparse index of a *closed* segment
//!       00000000000000004096.log         ... named by their first offset, 20 digits
//!       <segment>.log.torn-<ms>          bytes cut from a torn tail at recovery (kept for audit)
//!   groups/<group>.offsets               committed offsets of one consumer group
//! ```
//!
//! ## Record batch format (little-endian)
//! ```text
//! 0  u64 base_offset     first offset of the batch (not covered by the CRC: patched under the lock)
//! 8  u32 length          bytes after this field
//! 12 u32 crc32c          Castagnoli CRC of bytes 16..end
//! 16 u8  magic = 1, u8 flags = 0, u16 reserved = 0
//! 20 u32 record_count    ≥ 1
//! 24 i64 max_timestamp   newest record create time in the batch (time retention)
//! 32 records: u32 length, i64 timestamp_ms, i32 key_len (-1 = no key), key,
//!             u32 value_len, value, u16 header_count, { u16 name_len, name, u32 len, value }*
//! ```
//! A base offset hit by bit rot is caught by the offset-continuity check (each batch must start
//! where the previous ended), and a damaged length by the CRC over the bytes it delimits.
//!
//! Index entries are 16 bytes: `u32 relative_offset, u32 position, i64 max_timestamp_so_far`,
//! one every `index_interval_bytes` (4 KiB) of log. A read looks up the last entry at or before
//! its offset and scans forward from there.
//!
//! ## Writes and group commit
//! Producers encode and checksum their batch outside any lock. Under the partition's writer
//! lock they only take the next offset, patch it in and `pwrite` at the end of the active
//! segment. Then, with `fsync = always`, each producer waits until its last offset is durable:
//! the first waiter to find no sync in progress becomes the *leader*, snapshots the end of the
//! log and calls `fdatasync` once; everyone whose batch lies below that end returns together.
//! While one leader syncs, others keep writing, so under load one fdatasync covers many
//! producers' batches. `interval:<ms>` publishes on write and fsyncs from a background thread;
//! `never` leaves flushing to the OS (a crash of the machine can lose recent records).
//!
//! A failed fdatasync **fences** the partition: Linux may drop the dirty pages after reporting
//! the error, so a retried fsync could report success for data that is gone. Appends then fail
//! with [`LogError::Fenced`] until the process restarts and recovers from disk.
//!
//! Segments roll when the next batch would pass `segment_bytes`: the old segment is fsynced,
//! its index written and fsynced, then the new file is created and the directory fsynced.
//!
//! ## Recovery (on open)
//! * Closed segments were fsynced when they rolled; they are trusted. Their index is loaded (or
//!   rebuilt by a header scan if missing or implausible) and the batches after the last index
//!   entry are scanned to find the newest timestamp. Their CRCs are checked on every read.
//! * The active (last) segment is scanned in full: framing, offset continuity and CRC. At the
//!   first batch that fails, the segment is cut; the cut bytes go to a `.torn-<ms>` side file and
//!   a warning is logged. Everything before the cut was written before the crash; everything
//!   acknowledged lies before it, because acknowledgement waits for the fdatasync that covers it.
//!   Damage inside the active segment is indistinguishable from a torn write and is treated the
//!   same way (as Kafka does for its unflushed segments): the side file keeps those bytes.
//! * The surviving tail is fdatasync'd before anything is served.
//!
//! ## Retention
//! Only closed segments are deleted, oldest first: by time when their newest record is older
//! than `retention_ms`, by size while the partition would still hold at least
//! `retention_bytes` without the oldest segment (Kafka's rule). It runs after each roll and on
//! [`EmbeddedLog::enforce_retention`]. The active segment is never deleted.
//!
//! ## Committed offsets
//! One small file per consumer group: `AOFS` magic, u32 CRC32C and u32 length of a JSON body,
//! replaced atomically (write temp, fsync, rename, fsync directory) on every commit. A file whose
//! CRC fails stops the open with an error naming it; offsets are never silently reset.
//!
//! ## Consumer groups
//! Groups are coordinated in-process (one process owns the directory): members join with
//! their subscriptions, Kafka's range assignor splits partitions, and every join or leave bumps
//! the generation and publishes new assignments to all members.

mod batch;
mod offsets;
mod partition;
mod segment;

use crate::api::validate_topic_name;
use crate::api::{
    AppendAck, Assignment, Log, Membership, PartitionOffsets, ReadBatch, ReadOptions, TopicConfig,
    TopicDescription,
};
use crate::error::LogError;
use crate::group::{Subscription, range_assign};
use crate::limits::Limits;
use crate::record::{Record, TopicPartition};
use async_trait::async_trait;
use offsets::OffsetStore;
use partition::{EngineShared, Partition, sync_dir};
use segment::FdCache;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, warn};

/// When appended records reach stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every append waits for an fdatasync that covers it (group-committed). The default.
    #[default]
    Always,
    /// Appends return after the write; a background thread fsyncs every N milliseconds.
    Interval(Duration),
    /// Never fsync; the OS writes back when it likes. For tests and scratch data only.
    Never,
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = LogError;
    fn from_str(s: &str) -> Result<Self, LogError> {
        let bad = || {
            LogError::InvalidConfig(format!(
                "fsync = {s:?}: expected \"always\", \"never\" or \"interval:<milliseconds>\" (e.g. \"interval:100\")"
            ))
        };
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => {
                let ms: u64 = s
                    .strip_prefix("interval:")
                    .and_then(|v| v.parse().ok())
                    .filter(|&v| v > 0)
                    .ok_or_else(bad)?;
                Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl Serialize for FsyncPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for FsyncPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How to open an embedded log. Every field has a working default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Where the data lives. Default `./aorta-data`.
    pub data_dir: PathBuf,
    /// `always` (default), `interval:<ms>` or `never`.
    pub fsync: FsyncPolicy,
    /// Bytes of log between sparse index entries. Default 4096.
    pub index_interval_bytes: u64,
    /// Bounds.
    pub limits: Limits,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            data_dir: PathBuf::from("./aorta-data"),
            fsync: FsyncPolicy::Always,
            index_interval_bytes: 4096,
            limits: Limits::default(),
        }
    }
}

impl EmbeddedConfig {
    /// Defaults with the given data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            data_dir: data_dir.into(),
            ..Default::default()
        }
    }
}

struct Topic {
    name: String,
    config: TopicConfig,
    dir: PathBuf,
    partitions: Vec<Arc<Partition>>,
}

impl Topic {
    fn partition(&self, p: u32) -> Result<&Arc<Partition>, LogError> {
        self.partitions
            .get(p as usize)
            .ok_or_else(|| LogError::UnknownPartition {
                topic: self.name.clone(),
                partition: p,
                partitions: self.partitions.len() as u32,
            })
    }

    fn describe(&self) -> TopicDescription {
        TopicDescription {
            name: self.name.clone(),
            config: self.config.clone(),
            partitions: self.partitions.iter().map(|p| p.state()).collect(),
        }
    }
}

#[derive(Default)]
struct GroupState {
    generation: u64,
    members: BTreeMap<String, (Vec<String>, watch::Sender<Assignment>)>,
}

#[derive(Default)]
struct Coordinator {
    next_member: u64,
    groups: HashMap<String, GroupState>,
}

type Topics = RwLock<BTreeMap<String, Arc<Topic>>>;

/// Flushes every partition's dirty data (the `interval` policy's flusher and close).
fn flush_topics(topics: &Topics) {
    let snapshot: Vec<Arc<Topic>> = topics
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    for t in snapshot {
        for p in &t.partitions {
            if let Err(e) = p.flush() {
                warn!(error = %e, "background flush failed");
            }
        }
    }
}

struct Inner {
    config: EmbeddedConfig,
    shared: Arc<EngineShared>,
    /// Shared with the `interval` flusher thread, which must never hold `Inner` itself: if it
    /// did, the last handle could be dropped while it flushes, `Inner` would then drop on the
    /// flusher thread (which cannot join itself) and the directory lock would outlive the
    /// caller's drop.
    topics: Arc<Topics>,
    offsets: OffsetStore,
    coordinator: Mutex<Coordinator>,
    flusher: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    // Held for the lifetime of the log: the OS releases the lock when the file closes.
    _lock: File,
}

/// The embedded, on-disk log. Cheap to clone; all clones share one open directory.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

impl fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("data_dir", &self.inner.config.data_dir)
            .field("fsync", &self.inner.config.fsync)
            .finish()
    }
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let ctx = format!("{what} {}", path.display());
    move |e| LogError::io(ctx, e)
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        f.write_all(bytes).map_err(io_err("writing", &tmp))?;
        f.sync_all().map_err(io_err("syncing", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err("renaming into", path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log in `config.data_dir`, recovering every partition.
    pub fn open(config: EmbeddedConfig) -> Result<EmbeddedLog, LogError> {
        let limits = &config.limits;
        if config.index_interval_bytes == 0 {
            return Err(LogError::InvalidConfig(
                "index_interval_bytes must be at least 1".into(),
            ));
        }
        if limits.max_segment_bytes > (2u64 << 30) {
            return Err(LogError::InvalidConfig(format!(
                "limits.max_segment_bytes = {} exceeds 2 GiB (segment positions are 32-bit)",
                limits.max_segment_bytes
            )));
        }
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir.join("topics"))
            .map_err(io_err("creating data directory", dir))?;
        std::fs::create_dir_all(dir.join("groups"))
            .map_err(io_err("creating data directory", dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err("opening", &lock_path))?;
        if let Err(e) = lock.try_lock() {
            // The holder writes its pid right after locking; a brand-new file may still be
            // empty for a moment, so look a few times before giving up on naming it.
            let mut holder = None;
            for _ in 0..20 {
                holder = std::fs::read_to_string(&lock_path)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty());
                if holder.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            return Err(LogError::Locked {
                dir: dir.clone(),
                holder: holder.unwrap_or_else(|| format!("lock error: {e}")),
            });
        }
        // Overwrite in place, then trim: the file is never empty while held, so another
        // process that finds it locked can always read who holds it.
        let me = format!("pid {}", std::process::id());
        {
            use std::os::unix::fs::FileExt;
            lock.write_all_at(me.as_bytes(), 0)
                .map_err(io_err("writing", &lock_path))?;
        }
        lock.set_len(me.len() as u64)
            .map_err(io_err("writing", &lock_path))?;

        let shared = Arc::new(EngineShared {
            limits: config.limits.clone(),
            fsync: config.fsync,
            fdcache: FdCache::new(config.limits.max_open_segments),
            index_interval_bytes: config.index_interval_bytes,
            fsyncs: AtomicU64::new(0),
        });
        let topics_dir = dir.join("topics");
        let mut topics = BTreeMap::new();
        for entry in std::fs::read_dir(&topics_dir).map_err(io_err("listing", &topics_dir))? {
            let entry = entry.map_err(io_err("listing", &topics_dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(".creating-") || name.starts_with(".deleting-") {
                // An interrupted create or delete: finish it (the rename is the commit point).
                warn!(path = %path.display(), "removing leftovers of an interrupted topic create/delete");
                std::fs::remove_dir_all(&path).map_err(io_err("removing", &path))?;
                continue;
            }
            if validate_topic_name(&name).is_err() {
                warn!(path = %path.display(), "ignoring a directory that is not a topic");
                continue;
            }
            let topic = Self::open_topic(&name, path, &shared)?;
            topics.insert(name, Arc::new(topic));
        }
        let offsets = OffsetStore::open(dir.join("groups"))?;
        let inner = Arc::new(Inner {
            config,
            shared,
            topics: Arc::new(RwLock::new(topics)),
            offsets,
            coordinator: Mutex::new(Coordinator::default()),
            flusher: Mutex::new(None),
            _lock: lock,
        });
        if let FsyncPolicy::Interval(every) = inner.config.fsync {
            let (tx, rx) = mpsc::channel::<()>();
            let topics = inner.topics.clone();
            let handle = std::thread::Builder::new()
                .name("aorta-log-flusher".into())
                .spawn(move || {
                    // Runs until `Inner::drop` closes the channel (and then joins this thread).
                    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                        flush_topics(&topics);
                    }
                })
                .map_err(|e| LogError::io("starting the fsync flusher thread", e))?;
            *inner.flusher.lock().unwrap_or_else(|e| e.into_inner()) = Some((tx, handle));
        }
        Ok(EmbeddedLog { inner })
    }

    fn open_topic(name: &str, dir: PathBuf, shared: &Arc<EngineShared>) -> Result<Topic, LogError> {
        let meta = dir.join("topic.json");
        let text = std::fs::read(&meta).map_err(io_err("reading", &meta))?;
        let config: TopicConfig = serde_json::from_slice(&text).map_err(|e| LogError::Corrupt {
            file: meta.clone(),
            position: 0,
            offset: None,
            detail: format!("topic metadata is not valid: {e}"),
        })?;
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            partitions.push(Arc::new(Partition::open(
                name,
                p,
                dir.join(p.to_string()),
                config.clone(),
                shared.clone(),
            )?));
        }
        Ok(Topic {
            name: name.to_string(),
            config,
            dir,
            partitions,
        })
    }

    /// The directory this log lives in.
    pub fn data_dir(&self) -> &Path {
        &self.inner.config.data_dir
    }

    /// fdatasync calls made so far (all partitions): lets benchmarks report records per sync.
    pub fn fsync_count(&self) -> u64 {
        self.inner.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// How many segment read handles are open now (bounded by `limits.max_open_segments`).
    pub fn open_segment_handles(&self) -> usize {
        self.inner.shared.fdcache.open_count()
    }

    /// Applies retention to every partition as of `now_ms`; returns segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let topics: Vec<Arc<Topic>> = self.inner.topics_snapshot();
        let mut n = 0;
        for t in topics {
            for p in &t.partitions {
                n += p.enforce_retention(now_ms)?;
            }
        }
        Ok(n)
    }

    /// Closes the active segment of a partition and starts a new one (admin and tests).
    pub fn roll(&self, topic: &str, partition: u32) -> Result<(), LogError> {
        self.inner.topic(topic)?.partition(partition)?.roll()
    }

    /// Flushes every partition now (meaningful for `interval` and `never`).
    pub fn flush(&self) -> Result<(), LogError> {
        for t in self.inner.topics_snapshot() {
            for p in &t.partitions {
                p.flush()?;
            }
        }
        Ok(())
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, LogError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, LogError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| LogError::Internal(format!("log worker failed: {e}")))?
    }
}

impl Inner {
    fn topics_snapshot(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>, LogError> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| LogError::UnknownTopic {
                topic: name.to_string(),
            })
    }

    fn flush_all(&self) {
        flush_topics(&self.topics);
    }

    fn create_topic(&self, name: &str, config: TopicConfig) -> Result<TopicDescription, LogError> {
        validate_topic_name(name)?;
        let limits = &self.config.limits;
        if config.partitions == 0 || config.partitions > limits.max_partitions_per_topic {
            return Err(LogError::InvalidConfig(format!(
                "topic \"{name}\": partitions = {} must be between 1 and {} (limits.max_partitions_per_topic)",
                config.partitions, limits.max_partitions_per_topic
            )));
        }
        if config.segment_bytes < 4096 || config.segment_bytes > limits.max_segment_bytes {
            return Err(LogError::InvalidConfig(format!(
                "topic \"{name}\": segment_bytes = {} must be between 4096 and {} (limits.max_segment_bytes)",
                config.segment_bytes, limits.max_segment_bytes
            )));
        }
        if config.retention_ms.is_some_and(|r| r <= 0) {
            return Err(LogError::InvalidConfig(format!(
                "topic \"{name}\": retention_ms must be positive (omit it to keep records forever)"
            )));
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if topics.contains_key(name) {
            return Err(LogError::TopicExists {
                topic: name.to_string(),
            });
        }
        let topics_dir = self.config.data_dir.join("topics");
        let staging = topics_dir.join(format!(".creating-{name}"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io_err("creating", &staging))?;
        let meta = serde_json::to_vec_pretty(&config)
            .map_err(|e| LogError::Internal(format!("serialising topic config: {e}")))?;
        write_atomic(&staging.join("topic.json"), &meta)?;
        for p in 0..config.partitions {
            Partition::create_files(&staging.join(p.to_string()))?;
        }
        sync_dir(&staging)?;
        let dir = topics_dir.join(name);
        std::fs::rename(&staging, &dir).map_err(io_err("renaming into", &dir))?;
        sync_dir(&topics_dir)?;
        let topic = EmbeddedLog::open_topic(name, dir, &self.shared)?;
        let desc = topic.describe();
        topics.insert(name.to_string(), Arc::new(topic));
        debug!(
            topic = name,
            partitions = config.partitions,
            "created topic"
        );
        Ok(desc)
    }

    fn delete_topic(&self, name: &str) -> Result<(), LogError> {
        let topic = {
            let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
            topics.remove(name).ok_or_else(|| LogError::UnknownTopic {
                topic: name.to_string(),
            })?
        };
        for p in &topic.partitions {
            p.evict_handles();
        }
        let topics_dir = self.config.data_dir.join("topics");
        let doomed = topics_dir.join(format!(".deleting-{name}"));
        std::fs::rename(&topic.dir, &doomed).map_err(io_err("renaming", &topic.dir))?;
        sync_dir(&topics_dir)?;
        std::fs::remove_dir_all(&doomed).map_err(io_err("removing", &doomed))?;
        self.offsets.forget_topic(name)?;
        Ok(())
    }

    fn rebalance(&self, coord: &mut Coordinator, group: &str) {
        let Some(state) = coord.groups.get_mut(group) else {
            return;
        };
        state.generation += 1;
        let subs: Vec<Subscription> = state
            .members
            .iter()
            .map(|(id, (topics, _))| Subscription {
                member_id: id.clone(),
                topics: topics.clone(),
            })
            .collect();
        let mut counts = BTreeMap::new();
        for s in &subs {
            for t in &s.topics {
                if let Ok(topic) = self.topic(t) {
                    counts.insert(t.clone(), topic.partitions.len() as u32);
                }
            }
        }
        let assigned = range_assign(&subs, &counts);
        for (id, (_, tx)) in &state.members {
            let mut partitions = assigned.get(id).cloned().unwrap_or_default();
            partitions.sort();
            tx.send_replace(Assignment {
                generation: state.generation,
                partitions,
            });
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((tx, handle)) = self
            .flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            drop(tx);
            let _ = handle.join();
        }
        if matches!(self.config.fsync, FsyncPolicy::Interval(_)) {
            self.flush_all();
        }
    }
}

#[async_trait]
impl Log for EmbeddedLog {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn create_topic(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<TopicDescription, LogError> {
        let name = name.to_string();
        self.blocking(move |inner| inner.create_topic(&name, config))
            .await
    }

    async fn delete_topic(&self, name: &str) -> Result<(), LogError> {
        let name = name.to_string();
        self.blocking(move |inner| inner.delete_topic(&name)).await
    }

    async fn list_topics(&self) -> Result<Vec<TopicDescription>, LogError> {
        Ok(self
            .inner
            .topics_snapshot()
            .iter()
            .map(|t| t.describe())
            .collect())
    }

    async fn describe_topic(&self, name: &str) -> Result<TopicDescription, LogError> {
        Ok(self.inner.topic(name)?.describe())
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<AppendAck, LogError> {
        let part = self.inner.topic(topic)?.partition(partition)?.clone();
        let n = records.len() as u64;
        let base = tokio::task::spawn_blocking(move || part.append(&records))
            .await
            .map_err(|e| LogError::Internal(format!("append worker failed: {e}")))??;
        Ok(AppendAck {
            partition,
            offsets: (base..base + n).collect(),
        })
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        options: ReadOptions,
    ) -> Result<ReadBatch, LogError> {
        let limits = &self.inner.config.limits;
        if options.max_bytes > limits.max_read_bytes {
            return Err(LogError::InvalidConfig(format!(
                "read max_bytes = {} exceeds limits.max_read_bytes = {}",
                options.max_bytes, limits.max_read_bytes
            )));
        }
        let part = self.inner.topic(topic)?.partition(partition)?.clone();
        if !options.max_wait.is_zero() && part.offsets().high_watermark == from {
            let mut rx = part.watch_high_watermark();
            // Timing out just means "nothing new yet": the read below returns an empty batch.
            let _ = tokio::time::timeout(options.max_wait, rx.wait_for(|hw| *hw > from)).await;
        }
        tokio::task::spawn_blocking(move || part.read(from, options.max_bytes))
            .await
            .map_err(|e| LogError::Internal(format!("read worker failed: {e}")))?
    }

    async fn offsets(&self, topic: &str, partition: u32) -> Result<PartitionOffsets, LogError> {
        Ok(self.inner.topic(topic)?.partition(partition)?.offsets())
    }

    async fn commit(&self, group: &str, offsets: &[(TopicPartition, u64)]) -> Result<(), LogError> {
        for (tp, _) in offsets {
            self.inner.topic(&tp.topic)?.partition(tp.partition)?;
        }
        let group = group.to_string();
        let offsets = offsets.to_vec();
        self.blocking(move |inner| inner.offsets.commit(&group, &offsets))
            .await
    }

    async fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, LogError> {
        Ok(self.inner.offsets.get(group, tp))
    }

    async fn join_group(&self, group: &str, topics: &[String]) -> Result<Membership, LogError> {
        if group.is_empty() {
            return Err(LogError::Group {
                group: group.into(),
                reason: "the group id is empty".into(),
            });
        }
        if topics.is_empty() {
            return Err(LogError::Group {
                group: group.into(),
                reason: "a member must subscribe to at least one topic".into(),
            });
        }
        for t in topics {
            self.inner.topic(t)?;
        }
        let (tx, rx) = watch::channel(Assignment::default());
        let member_id = {
            let mut coord = self
                .inner
                .coordinator
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            coord.next_member += 1;
            let id = format!("{group}-member-{:06}", coord.next_member);
            coord
                .groups
                .entry(group.to_string())
                .or_default()
                .members
                .insert(id.clone(), (topics.to_vec(), tx));
            self.inner.rebalance(&mut coord, group);
            id
        };
        let weak = Arc::downgrade(&self.inner);
        let (g, m) = (group.to_string(), member_id.clone());
        let leave = Box::new(move || {
            if let Some(inner) = weak.upgrade() {
                let mut coord = inner.coordinator.lock().unwrap_or_else(|e| e.into_inner());
                let empty = coord.groups.get_mut(&g).is_some_and(|s| {
                    s.members.remove(&m);
                    s.members.is_empty()
                });
                if empty {
                    coord.groups.remove(&g);
                } else {
                    inner.rebalance(&mut coord, &g);
                }
            }
        });
        Ok(Membership::new(group.to_string(), member_id, rx, leave))
    }
}
