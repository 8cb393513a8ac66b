//! One partition of the embedded log: its segments, the single writer, group commit, reads,
//! recovery and retention. See the design note in `embedded/mod.rs`.

use super::FsyncPolicy;
use super::batch::{self, BatchHeader, HEADER_LEN};
use super::segment::{self, FdCache, IndexEntry, OBSERVE, PUBLISH, ScanSpec, Segment};
use crate::api::{PartitionOffsets, PartitionState, ReadBatch, TopicConfig};
use crate::error::LogError;
use crate::limits::Limits;
use crate::record::Record;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use tokio::sync::watch;
use tracing::{info, warn};

/// Settings every partition of one open log shares.
#[derive(Debug)]
pub struct EngineShared {
    /// Bounds.
    pub limits: Limits,
    /// When appends are made durable.
    pub fsync: FsyncPolicy,
    /// Read handles for closed and active segments.
    pub fdcache: FdCache,
    /// Bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// fdatasync calls made (all partitions), for benchmarks and metrics.
    pub fsyncs: AtomicU64,
}

struct Writer {
    file: Arc<File>,
    segment: Arc<Segment>,
    pos: u64,
    next_offset: u64,
    last_indexed: Option<u64>,
    dirty: bool,
}

#[derive(Default)]
struct SyncState {
    /// Everything below this offset is on stable storage.
    durable: u64,
    /// A leader is inside fdatasync.
    syncing: bool,
    /// Set forever after a failed fsync (see [`LogError::Fenced`]).
    fenced: Option<String>,
}

/// One partition.
pub struct Partition {
    topic: String,
    id: u32,
    dir: PathBuf,
    config: TopicConfig,
    shared: Arc<EngineShared>,
    segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
    high_watermark: AtomicU64,
    log_start: AtomicU64,
    hw_tx: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them half-updated in a way that matters:
    // the writer re-derives nothing from a poisoned state, so recover the guard.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let ctx = format!("{what} {}", path.display());
    move |e| LogError::io(ctx, e)
}

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing directory", dir))
}

impl Partition {
    /// Creates the directory and first (empty) segment of a new partition.
    pub fn create_files(dir: &Path) -> Result<(), LogError> {
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let seg = Segment::new(dir, 0);
        File::create(&seg.path).map_err(io_err("creating", &seg.path))?;
        sync_dir(dir)
    }

    /// Opens a partition directory, recovering from a crash: closed segments are trusted
    /// (their batches are CRC-checked on read), the active segment is scanned in full and cut
    /// at the first batch that fails framing, offset continuity or CRC. The cut bytes are kept
    /// in a `.torn-<ms>` side file, never silently dropped.
    pub fn open(
        topic: &str,
        id: u32,
        dir: PathBuf,
        config: TopicConfig,
        shared: Arc<EngineShared>,
    ) -> Result<Partition, LogError> {
        let mut bases = Vec::new();
        let mut idx_files = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".log") {
                match stem.parse::<u64>() {
                    Ok(b) => bases.push(b),
                    Err(_) => {
                        warn!(file = %name, "ignoring unexpected file in partition directory")
                    }
                }
            } else if let Some(stem) = name.strip_suffix(".idx")
                && let Ok(b) = stem.parse::<u64>()
            {
                idx_files.push(b);
            }
        }
        bases.sort_unstable();
        for b in idx_files {
            if bases.binary_search(&b).is_err() {
                // A crash between deleting a segment's .log and its .idx leaves an orphan.
                let p = dir.join(segment::segment_file_name(b, "idx"));
                std::fs::remove_file(&p).map_err(io_err("removing orphan index", &p))?;
            }
        }
        if bases.is_empty() {
            Self::create_files(&dir)?;
            bases.push(0);
        }
        let interval = shared.index_interval_bytes;
        let mut segments = BTreeMap::new();
        let last = bases.len() - 1;
        for (i, &base) in bases.iter().enumerate() {
            let seg = Segment::new(&dir, base);
            if i < last {
                Self::open_closed(&seg, bases[i + 1], interval)?;
            }
            segments.insert(base, Arc::new(seg));
        }
        let active = segments
            .get(&bases[last])
            .cloned()
            .ok_or_else(|| LogError::Internal("active segment vanished during open".into()))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&active.path)
            .map_err(io_err("opening", &active.path))?;
        let len = file
            .metadata()
            .map_err(io_err("reading size of", &active.path))?
            .len();
        let scan = segment::scan(ScanSpec {
            file: &file,
            path: &active.path,
            base_offset: active.base_offset,
            start: 0,
            start_offset: active.base_offset,
            len,
            index_interval: interval,
            verify_crc: true,
        })?;
        if scan.valid_len < len {
            let why = scan.stopped.clone().unwrap_or_default();
            isolate_tail(&file, &active.path, scan.valid_len, len)?;
            warn!(
                segment = %active.path.display(), kept_bytes = scan.valid_len, cut_bytes = len - scan.valid_len,
                reason = %why, "recovered a torn tail: cut the active segment after its last intact batch"
            );
        }
        if shared.fsync != FsyncPolicy::Never {
            // Bytes that survived a process crash may still be only in the page cache.
            file.sync_data().map_err(io_err("syncing", &active.path))?;
        }
        let last_indexed = scan.index.last().map(|e| u64::from(e.position));
        *active.index.write().unwrap_or_else(|e| e.into_inner()) = scan.index;
        active.size.store(scan.valid_len, PUBLISH);
        active.readable_len.store(scan.valid_len, PUBLISH);
        active.next_offset.store(scan.next_offset, PUBLISH);
        active.max_timestamp.store(scan.max_timestamp, PUBLISH);
        let hw = scan.next_offset;
        let log_start = bases[0];
        let (hw_tx, _) = watch::channel(hw);
        Ok(Partition {
            topic: topic.to_string(),
            id,
            dir,
            config,
            shared,
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer {
                file: Arc::new(file),
                segment: active,
                pos: scan.valid_len,
                next_offset: hw,
                last_indexed,
                dirty: false,
            }),
            sync: Mutex::new(SyncState {
                durable: hw,
                ..Default::default()
            }),
            sync_cv: Condvar::new(),
            high_watermark: AtomicU64::new(hw),
            log_start: AtomicU64::new(log_start),
            hw_tx,
        })
    }

    /// Loads a closed segment: index from disk (rebuilt if missing or implausible), end offset
    /// and newest timestamp from the batches after the last index entry.
    fn open_closed(seg: &Segment, next_base: u64, interval: u64) -> Result<(), LogError> {
        let file = File::open(&seg.path).map_err(io_err("opening", &seg.path))?;
        let len = file
            .metadata()
            .map_err(io_err("reading size of", &seg.path))?
            .len();
        let index = match seg.load_index(len) {
            Some(ix) => ix,
            None => {
                info!(segment = %seg.path.display(), "rebuilding sparse index");
                let s = segment::scan(ScanSpec {
                    file: &file,
                    path: &seg.path,
                    base_offset: seg.base_offset,
                    start: 0,
                    start_offset: seg.base_offset,
                    len,
                    index_interval: interval,
                    verify_crc: false,
                })?;
                *seg.index.write().unwrap_or_else(|e| e.into_inner()) = s.index.clone();
                seg.persist_index()?;
                s.index
            }
        };
        let (pos, off, ts) = index.last().map_or((0, seg.base_offset, i64::MIN), |e| {
            (
                u64::from(e.position),
                seg.base_offset + u64::from(e.relative_offset),
                e.max_timestamp,
            )
        });
        let tail = segment::scan(ScanSpec {
            file: &file,
            path: &seg.path,
            base_offset: seg.base_offset,
            start: pos,
            start_offset: off,
            len,
            index_interval: u64::MAX,
            verify_crc: false,
        })?;
        if let Some(why) = &tail.stopped {
            warn!(segment = %seg.path.display(), position = tail.valid_len, reason = %why,
                "closed segment is damaged; reads that reach this position will fail");
        } else if tail.next_offset != next_base {
            warn!(segment = %seg.path.display(), ends_at = tail.next_offset, next_segment = next_base,
                "closed segment does not end where the next one starts");
        }
        *seg.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        seg.size.store(len, PUBLISH);
        seg.readable_len.store(len, PUBLISH);
        seg.next_offset.store(next_base, PUBLISH);
        seg.max_timestamp.store(ts.max(tail.max_timestamp), PUBLISH);
        Ok(())
    }

    /// Appends one batch; returns its first offset once the batch is durable under the policy.
    pub fn append(&self, records: &[Record]) -> Result<u64, LogError> {
        let len = batch::validate(records, &self.shared.limits)?;
        let mut buf = Vec::new();
        batch::encode(records, len, &mut buf);
        let max_ts = records
            .iter()
            .map(|r| r.timestamp_ms)
            .max()
            .unwrap_or(i64::MIN);
        self.check_fenced()?;
        let (base, end, rolled) = {
            let mut w = lock(&self.writer);
            let mut rolled = false;
            if w.pos > 0 && w.pos + len as u64 > self.config.segment_bytes {
                self.roll_locked(&mut w)?;
                rolled = true;
            }
            let base = w.next_offset;
            batch::set_base_offset(&mut buf, base);
            w.file
                .write_all_at(&buf, w.pos)
                .map_err(io_err("writing", &w.segment.path))?;
            let seg = w.segment.clone();
            seg.max_timestamp.fetch_max(max_ts, Ordering::AcqRel);
            if w.last_indexed
                .is_none_or(|l| w.pos - l >= self.shared.index_interval_bytes)
            {
                seg.index
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(IndexEntry {
                        relative_offset: (base - seg.base_offset) as u32,
                        position: w.pos as u32,
                        max_timestamp: seg.max_timestamp.load(OBSERVE),
                    });
                w.last_indexed = Some(w.pos);
            }
            w.pos += len as u64;
            w.next_offset += records.len() as u64;
            w.dirty = true;
            seg.size.store(w.pos, PUBLISH);
            seg.next_offset.store(w.next_offset, PUBLISH);
            if self.shared.fsync != FsyncPolicy::Always {
                self.publish(&seg, w.pos, w.next_offset);
            }
            (base, w.next_offset, rolled)
        };
        if self.shared.fsync == FsyncPolicy::Always {
            self.wait_durable(end)?;
        }
        if rolled {
            self.enforce_retention(crate::record::now_ms())?;
        }
        Ok(base)
    }

    fn check_fenced(&self) -> Result<(), LogError> {
        match &lock(&self.sync).fenced {
            Some(reason) => Err(self.fenced(reason)),
            None => Ok(()),
        }
    }

    fn fenced(&self, reason: &str) -> LogError {
        LogError::Fenced {
            topic: self.topic.clone(),
            partition: self.id,
            reason: reason.to_string(),
        }
    }

    /// Makes `seg` readable up to `len` and the partition up to `next_offset`, then wakes
    /// readers waiting for new records.
    fn publish(&self, seg: &Segment, len: u64, next_offset: u64) {
        seg.readable_len.fetch_max(len, Ordering::AcqRel);
        self.high_watermark.fetch_max(next_offset, Ordering::AcqRel);
        self.hw_tx.send_if_modified(|v| {
            let grew = *v < next_offset;
            if grew {
                *v = next_offset;
            }
            grew
        });
    }

    /// Group commit: waits until `target` (one past the caller's last offset) is durable. The
    /// first waiter to find no sync running becomes the leader, snapshots the writer's end and
    /// fdatasyncs once for every batch written so far; the others wait on the condvar. While a
    /// leader syncs, producers keep writing into the page cache, so the next sync covers them
    /// all — many producers, one fdatasync.
    fn wait_durable(&self, target: u64) -> Result<(), LogError> {
        let mut st = lock(&self.sync);
        loop {
            if let Some(reason) = &st.fenced {
                return Err(self.fenced(reason));
            }
            if st.durable >= target {
                return Ok(());
            }
            if st.syncing {
                st = self.sync_cv.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.syncing = true;
            drop(st);
            let result = self.sync_once();
            st = lock(&self.sync);
            st.syncing = false;
            let mut stalled = false;
            match result {
                Ok(Some(end)) => st.durable = st.durable.max(end),
                // Nothing dirty yet `target` is not durable: every path that clears the dirty
                // flag advances `durable`, so this is a broken invariant. Fail loudly rather
                // than spin.
                Ok(None) => stalled = st.durable < target,
                Err(e) => st.fenced = Some(e.to_string()),
            }
            self.sync_cv.notify_all();
            if stalled {
                return Err(LogError::Internal(format!(
                    "{}/{}: offset {target} is written but neither dirty nor durable (durable up to {})",
                    self.topic, self.id, st.durable
                )));
            }
        }
    }

    /// One fdatasync of the active segment covering everything written so far. Returns the
    /// offset now durable, or `None` if nothing was dirty.
    fn sync_once(&self) -> Result<Option<u64>, LogError> {
        let (file, seg, pos, end) = {
            let mut w = lock(&self.writer);
            if !w.dirty {
                return Ok(None);
            }
            w.dirty = false;
            (w.file.clone(), w.segment.clone(), w.pos, w.next_offset)
        };
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = file.sync_data() {
            // Mark dirty again so a later flush does not believe this data is safe.
            lock(&self.writer).dirty = true;
            return Err(LogError::io(format!("fdatasync {}", seg.path.display()), e));
        }
        self.publish(&seg, pos, end);
        Ok(Some(end))
    }

    /// Flushes dirty data (used by the `interval` policy's flusher and at close).
    pub fn flush(&self) -> Result<(), LogError> {
        let mut st = lock(&self.sync);
        while st.syncing {
            st = self.sync_cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.syncing = true;
        drop(st);
        let result = self.sync_once();
        let mut st = lock(&self.sync);
        st.syncing = false;
        let out = match result {
            Ok(end) => {
                if let Some(end) = end {
                    st.durable = st.durable.max(end);
                }
                Ok(())
            }
            Err(e) => {
                st.fenced = Some(e.to_string());
                Err(e)
            }
        };
        self.sync_cv.notify_all();
        out
    }

    /// Closes the active segment (fsync, index written) and starts a new one. Caller holds the
    /// writer lock; takes the sync lock briefly (lock order: writer, then sync).
    fn roll_locked(&self, w: &mut Writer) -> Result<(), LogError> {
        let old = w.segment.clone();
        if self.shared.fsync != FsyncPolicy::Never {
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = w.file.sync_data() {
                let err = LogError::io(format!("fdatasync {}", old.path.display()), e);
                lock(&self.sync).fenced = Some(err.to_string());
                self.sync_cv.notify_all();
                return Err(err);
            }
        }
        old.persist_index()?;
        self.publish(&old, w.pos, w.next_offset);
        {
            let mut st = lock(&self.sync);
            st.durable = st.durable.max(w.next_offset);
        }
        self.sync_cv.notify_all();
        let seg = Arc::new(Segment::new(&self.dir, w.next_offset));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&seg.path)
            .map_err(io_err("creating segment", &seg.path))?;
        sync_dir(&self.dir)?;
        self.segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seg.base_offset, seg.clone());
        w.file = Arc::new(file);
        w.segment = seg;
        w.pos = 0;
        w.last_indexed = None;
        w.dirty = false;
        Ok(())
    }

    /// Starts a new segment now, even if the active one is not full (tests, admin).
    pub fn roll(&self) -> Result<(), LogError> {
        let mut w = lock(&self.writer);
        if w.pos == 0 {
            return Ok(());
        }
        self.roll_locked(&mut w)
    }

    /// Offsets now.
    pub fn offsets(&self) -> PartitionOffsets {
        PartitionOffsets {
            log_start: self.log_start.load(OBSERVE),
            high_watermark: self.high_watermark.load(OBSERVE),
        }
    }

    /// A receiver that changes whenever the high watermark grows.
    pub fn watch_high_watermark(&self) -> watch::Receiver<u64> {
        self.hw_tx.subscribe()
    }

    /// Size and segment count.
    pub fn state(&self) -> PartitionState {
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        let off = self.offsets();
        PartitionState {
            partition: self.id,
            log_start: off.log_start,
            high_watermark: off.high_watermark,
            size_bytes: segs.values().map(|s| s.size.load(OBSERVE)).sum(),
            segments: segs.len() as u32,
        }
    }

    fn out_of_range(&self, requested: u64) -> LogError {
        let off = self.offsets();
        LogError::OffsetOutOfRange {
            topic: self.topic.clone(),
            partition: self.id,
            requested,
            log_start: off.log_start,
            high_watermark: off.high_watermark,
        }
    }

    /// Reads records from `from`, up to `max_bytes` of payload (at least one record when any
    /// is available). Never returns bytes above the readable mark, and checks every batch's
    /// CRC and offset continuity before decoding it.
    pub fn read(&self, from: u64, max_bytes: usize) -> Result<ReadBatch, LogError> {
        let high_watermark = self.high_watermark.load(OBSERVE);
        let log_start = self.log_start.load(OBSERVE);
        if from < log_start || from > high_watermark {
            return Err(self.out_of_range(from));
        }
        let mut out = ReadBatch {
            records: Vec::new(),
            log_start,
            high_watermark,
        };
        if from == high_watermark {
            return Ok(out);
        }
        let segs: Vec<Arc<Segment>> = {
            let map = self.segments.read().unwrap_or_else(|e| e.into_inner());
            let Some((&first, _)) = map.range(..=from).next_back() else {
                return Err(self.out_of_range(from));
            };
            map.range(first..).map(|(_, s)| s.clone()).collect()
        };
        let mut bytes = 0usize;
        let mut decoded = Vec::new();
        let mut header_buf = [0u8; HEADER_LEN];
        for seg in segs {
            let readable = seg.readable_len.load(OBSERVE);
            let (mut pos, mut expect) = seg.lookup(from);
            if pos >= readable {
                continue;
            }
            let file = match self.shared.fdcache.get(&seg.path) {
                Ok(f) => f,
                Err(LogError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    // Retention deleted the segment after we looked it up.
                    return Err(self.out_of_range(from));
                }
                Err(e) => return Err(e),
            };
            let corrupt = |pos: u64, offset: Option<u64>, detail: String| LogError::Corrupt {
                file: seg.path.clone(),
                position: pos,
                offset,
                detail,
            };
            while pos < readable {
                if readable - pos < HEADER_LEN as u64 {
                    return Err(corrupt(pos, None, "truncated batch header".into()));
                }
                file.read_exact_at(&mut header_buf, pos)
                    .map_err(io_err("reading", &seg.path))?;
                let Some(h) = BatchHeader::parse(&header_buf) else {
                    return Err(corrupt(
                        pos,
                        None,
                        "bytes that are not a batch header".into(),
                    ));
                };
                if h.base_offset != expect {
                    return Err(corrupt(
                        pos,
                        Some(h.base_offset),
                        format!("batch claims offset {}, expected {expect}", h.base_offset),
                    ));
                }
                let total = h.total_len as u64;
                if pos + total > readable {
                    return Err(corrupt(
                        pos,
                        Some(h.base_offset),
                        format!("batch of {total} bytes runs past the readable end {readable}"),
                    ));
                }
                if h.next_offset() <= from {
                    pos += total;
                    expect = h.next_offset();
                    continue;
                }
                let mut body = vec![0u8; h.total_len];
                file.read_exact_at(&mut body, pos)
                    .map_err(io_err("reading", &seg.path))?;
                if !batch::crc_ok(&body, &h) {
                    return Err(corrupt(pos, Some(h.base_offset), "CRC32C mismatch: the batch was damaged on disk; its records are not served".into()));
                }
                decoded.clear();
                batch::decode(&Bytes::from(body), &h, from, &mut decoded)
                    .map_err(|d| corrupt(pos, Some(h.base_offset), d))?;
                for r in decoded.drain(..) {
                    if r.offset >= high_watermark {
                        return Ok(out);
                    }
                    let size = r.record.payload_len();
                    if !out.records.is_empty() && bytes + size > max_bytes {
                        return Ok(out);
                    }
                    bytes += size;
                    out.records.push(r);
                }
                if bytes >= max_bytes {
                    return Ok(out);
                }
                pos += total;
                expect = h.next_offset();
            }
        }
        Ok(out)
    }

    /// Deletes closed segments past the topic's retention: by time (newest record older than
    /// `retention_ms` before `now_ms`) and by size (while the partition would still hold at
    /// least `retention_bytes` without the oldest segment, as Kafka does). The active segment
    /// is never deleted. Returns how many segments were deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        if self.config.retention_ms.is_none() && self.config.retention_bytes.is_none() {
            return Ok(0);
        }
        let mut deleted = 0;
        loop {
            let victim = {
                let map = self.segments.read().unwrap_or_else(|e| e.into_inner());
                if map.len() <= 1 {
                    break;
                }
                let Some((_, oldest)) = map.iter().next() else {
                    break;
                };
                let total: u64 = map.values().map(|s| s.size.load(OBSERVE)).sum();
                let size = oldest.size.load(OBSERVE);
                let by_time = self
                    .config
                    .retention_ms
                    .is_some_and(|r| oldest.max_timestamp.load(OBSERVE) < now_ms.saturating_sub(r));
                let by_size = self
                    .config
                    .retention_bytes
                    .is_some_and(|limit| total.saturating_sub(size) >= limit);
                if !(by_time || by_size) {
                    break;
                }
                oldest.clone()
            };
            {
                let mut map = self.segments.write().unwrap_or_else(|e| e.into_inner());
                map.remove(&victim.base_offset);
                if let Some((&next, _)) = map.iter().next() {
                    self.log_start.store(next, PUBLISH);
                }
            }
            self.shared.fdcache.evict(&victim.path);
            std::fs::remove_file(&victim.path).map_err(io_err("deleting segment", &victim.path))?;
            match std::fs::remove_file(&victim.index_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("deleting index", &victim.index_path)(e)),
            }
            info!(topic = %self.topic, partition = self.id, segment = victim.base_offset,
                next_offset = victim.next_offset.load(OBSERVE), "retention deleted segment");
            deleted += 1;
        }
        if deleted > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(deleted)
    }

    /// Drops cached read handles (before the partition's files are deleted).
    pub fn evict_handles(&self) {
        for seg in self
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            self.shared.fdcache.evict(&seg.path);
        }
    }
}

/// Moves the bytes `[from, len)` of a segment into a side file and truncates the segment.
fn isolate_tail(file: &File, path: &Path, from: u64, len: u64) -> Result<(), LogError> {
    let mut tail = vec![0u8; (len - from) as usize];
    file.read_exact_at(&mut tail, from)
        .map_err(io_err("reading", path))?;
    let side = PathBuf::from(format!(
        "{}.torn-{}",
        path.display(),
        crate::record::now_ms()
    ));
    std::fs::write(&side, &tail).map_err(io_err("writing", &side))?;
    File::open(&side)
        .and_then(|f| f.sync_all())
        .map_err(io_err("syncing", &side))?;
    file.set_len(from).map_err(io_err("truncating", path))?;
    file.sync_all().map_err(io_err("syncing", path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}
