//! One segment: a `.log` file of record batches plus its sparse `.idx`, and the bounded cache
//! of read handles shared by all segments.

use super::batch::{self, BatchHeader, HEADER_LEN};
use crate::error::LogError;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// One sparse index entry: 16 bytes on disk, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Base offset of the batch, relative to the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of that batch in the `.log` file.
    pub position: u32,
    /// Largest timestamp of all batches before and including this one (for time retention).
    pub max_timestamp: i64,
}

const INDEX_ENTRY_LEN: usize = 16;

impl IndexEntry {
    fn to_bytes(self) -> [u8; INDEX_ENTRY_LEN] {
        let mut b = [0u8; INDEX_ENTRY_LEN];
        b[0..4].copy_from_slice(&self.relative_offset.to_le_bytes());
        b[4..8].copy_from_slice(&self.position.to_le_bytes());
        b[8..16].copy_from_slice(&self.max_timestamp.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> IndexEntry {
        let mut r = [0u8; 4];
        r.copy_from_slice(&b[0..4]);
        let mut p = [0u8; 4];
        p.copy_from_slice(&b[4..8]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[8..16]);
        IndexEntry {
            relative_offset: u32::from_le_bytes(r),
            position: u32::from_le_bytes(p),
            max_timestamp: i64::from_le_bytes(t),
        }
    }
}

/// File name of a segment: the base offset, zero-padded to 20 digits (sorts as numbers do).
pub fn segment_file_name(base_offset: u64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// A segment of one partition. Shared by the writer and readers through `Arc`.
#[derive(Debug)]
pub struct Segment {
    /// Offset of the first batch.
    pub base_offset: u64,
    /// The `.log` file.
    pub path: PathBuf,
    /// The `.idx` file.
    pub index_path: PathBuf,
    /// Sparse index, ascending by offset and position.
    pub index: RwLock<Vec<IndexEntry>>,
    /// Bytes readers may look at: only batches that are durable (or written, under fsync
    /// policies that do not wait) lie below this mark.
    pub readable_len: AtomicU64,
    /// Bytes written to the file.
    pub size: AtomicU64,
    /// One past the last offset written.
    pub next_offset: AtomicU64,
    /// Largest record timestamp written (i64::MIN when empty).
    pub max_timestamp: AtomicI64,
}

impl Segment {
    /// A segment whose files are at `dir/<base>.log` and `dir/<base>.idx`.
    pub fn new(dir: &Path, base_offset: u64) -> Segment {
        Segment {
            base_offset,
            path: dir.join(segment_file_name(base_offset, "log")),
            index_path: dir.join(segment_file_name(base_offset, "idx")),
            index: RwLock::new(Vec::new()),
            readable_len: AtomicU64::new(0),
            size: AtomicU64::new(0),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
        }
    }

    /// Byte position of the last indexed batch at or before `offset` (0 when none).
    pub fn lookup(&self, offset: u64) -> (u64, u64) {
        let rel = offset
            .saturating_sub(self.base_offset)
            .min(u64::from(u32::MAX)) as u32;
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let i = index.partition_point(|e| e.relative_offset <= rel);
        if i == 0 {
            (0, self.base_offset)
        } else {
            let e = index[i - 1];
            (
                u64::from(e.position),
                self.base_offset + u64::from(e.relative_offset),
            )
        }
    }

    /// Writes the whole in-memory index to the `.idx` file and fsyncs it (done when the segment
    /// is closed; the active segment's index is rebuilt by the recovery scan instead).
    pub fn persist_index(&self) -> Result<(), LogError> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let mut buf = Vec::with_capacity(index.len() * INDEX_ENTRY_LEN);
        for e in index.iter() {
            buf.extend_from_slice(&e.to_bytes());
        }
        // Atomic replace: a crash mid-write leaves the old index or none, never a torn one.
        super::write_atomic(&self.index_path, &buf)
    }

    /// Loads a closed segment's index; `None` if the file is missing or implausible for a log
    /// of `log_len` bytes (then the caller rebuilds it by scanning).
    pub fn load_index(&self, log_len: u64) -> Option<Vec<IndexEntry>> {
        let data = std::fs::read(&self.index_path).ok()?;
        if data.len() % INDEX_ENTRY_LEN != 0 || (data.is_empty() && log_len > 0) {
            return None;
        }
        let entries: Vec<IndexEntry> = data
            .chunks_exact(INDEX_ENTRY_LEN)
            .map(IndexEntry::from_bytes)
            .collect();
        let sorted = entries
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position);
        let first_ok = entries
            .first()
            .is_none_or(|e| e.position == 0 && e.relative_offset == 0);
        let in_file = entries
            .last()
            .is_none_or(|e| u64::from(e.position) + HEADER_LEN as u64 <= log_len);
        (sorted && first_ok && in_file).then_some(entries)
    }
}

/// What a scan of batch headers found.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Byte position after the last good batch.
    pub valid_len: u64,
    /// One past the last offset of the last good batch.
    pub next_offset: u64,
    /// Largest timestamp among good batches.
    pub max_timestamp: i64,
    /// Index rebuilt from the scan.
    pub index: Vec<IndexEntry>,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped: Option<String>,
}

/// What to scan: batches of `file` from `start` (a batch boundary whose first offset is
/// `start_offset`) to `len`.
pub struct ScanSpec<'a> {
    /// The open segment file.
    pub file: &'a File,
    /// Its path, for errors.
    pub path: &'a Path,
    /// The segment's base offset (index entries are relative to it).
    pub base_offset: u64,
    /// Byte position to start at.
    pub start: u64,
    /// Offset of the batch at `start`.
    pub start_offset: u64,
    /// Bytes of the file to scan.
    pub len: u64,
    /// Bytes between index entries in the rebuilt index.
    pub index_interval: u64,
    /// Read whole batches and check their CRC (else headers only).
    pub verify_crc: bool,
}

/// Walks the batches checking framing and offset continuity, and the CRC when asked. Stops at
/// the first batch that fails; the caller decides whether that is a torn tail (truncate) or
/// damage (report).
pub fn scan(spec: ScanSpec<'_>) -> Result<ScanResult, LogError> {
    let ScanSpec {
        file,
        path,
        base_offset,
        start,
        start_offset,
        len,
        index_interval,
        verify_crc,
    } = spec;
    let mut res = ScanResult {
        valid_len: start,
        next_offset: start_offset,
        max_timestamp: i64::MIN,
        ..Default::default()
    };
    let mut pos = start;
    let mut last_indexed: Option<u64> = None;
    let mut header_buf = [0u8; HEADER_LEN];
    let mut body = Vec::new();
    while pos < len {
        if len - pos < HEADER_LEN as u64 {
            res.stopped = Some(format!(
                "{} bytes at the end are too short for a batch header",
                len - pos
            ));
            break;
        }
        file.read_exact_at(&mut header_buf, pos)
            .map_err(|e| LogError::io(format!("reading {}", path.display()), e))?;
        let Some(h) = BatchHeader::parse(&header_buf) else {
            res.stopped = Some("bytes that are not a batch header".into());
            break;
        };
        if h.base_offset != res.next_offset {
            res.stopped = Some(format!(
                "batch claims offset {}, expected {}",
                h.base_offset, res.next_offset
            ));
            break;
        }
        if pos + h.total_len as u64 > len {
            res.stopped = Some(format!(
                "batch of {} bytes runs past the end of the file",
                h.total_len
            ));
            break;
        }
        if verify_crc {
            body.resize(h.total_len, 0);
            file.read_exact_at(&mut body, pos)
                .map_err(|e| LogError::io(format!("reading {}", path.display()), e))?;
            if !batch::crc_ok(&body, &h) {
                res.stopped = Some("CRC32C mismatch".into());
                break;
            }
        }
        res.max_timestamp = res.max_timestamp.max(h.max_timestamp);
        if last_indexed.is_none_or(|l| pos - l >= index_interval) {
            res.index.push(IndexEntry {
                relative_offset: (h.base_offset - base_offset) as u32,
                position: pos as u32,
                max_timestamp: res.max_timestamp,
            });
            last_indexed = Some(pos);
        }
        pos += h.total_len as u64;
        res.valid_len = pos;
        res.next_offset = h.next_offset();
    }
    Ok(res)
}

/// A bounded LRU of read-only file handles, so that a data directory with thousands of closed
/// segments never exhausts file descriptors (`Limits::max_open_segments`).
#[derive(Debug)]
pub struct FdCache {
    capacity: usize,
    inner: Mutex<FdCacheInner>,
}

#[derive(Debug, Default)]
struct FdCacheInner {
    tick: u64,
    files: HashMap<PathBuf, (Arc<File>, u64)>,
}

impl FdCache {
    /// A cache holding at most `capacity` (at least 1) handles.
    pub fn new(capacity: usize) -> FdCache {
        FdCache {
            capacity: capacity.max(1),
            inner: Mutex::new(FdCacheInner::default()),
        }
    }

    /// A read handle for `path`, opening it (and closing the least recently used) if needed.
    pub fn get(&self, path: &Path) -> Result<Arc<File>, LogError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((f, t)) = inner.files.get_mut(path) {
            *t = tick;
            return Ok(f.clone());
        }
        let f = Arc::new(
            OpenOptions::new()
                .read(true)
                .open(path)
                .map_err(|e| LogError::io(format!("opening segment {}", path.display()), e))?,
        );
        if inner.files.len() >= self.capacity
            && let Some(oldest) = inner
                .files
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(p, _)| p.clone())
        {
            inner.files.remove(&oldest);
        }
        inner.files.insert(path.to_path_buf(), (f.clone(), tick));
        Ok(f)
    }

    /// Forgets a handle (the file is being deleted or rewritten).
    pub fn evict(&self, path: &Path) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.files.remove(path);
    }

    /// How many handles are open now.
    pub fn open_count(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .files
            .len()
    }
}

/// Which offsets order `Ordering` the segment fields use: writers publish with `Release`,
/// readers load with `Acquire`, so a reader that sees a length also sees the bytes below it.
pub const PUBLISH: Ordering = Ordering::Release;
/// See [`PUBLISH`].
pub const OBSERVE: Ordering = Ordering::Acquire;
