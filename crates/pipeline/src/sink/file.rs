//! JSON-lines file sink with size rotation. The active file is `path`; rotated files are
//! `path.1`, `path.2`, … (oldest first). `write` fdatasyncs before returning. The checkpoint
//! holds (rotations, active length); `recover` truncates what was written after it, so after a
//! crash the files hold exactly the lines of a run that never crashed.

use super::{Sink, Undelivered};
use crate::event::Event;
use async_trait::async_trait;
use serde_json::{Value, json};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The sink.
pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    file: Option<File>,
    len: u64,
    rotations: u64,
}

fn rotated(path: &Path, n: u64) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
}

impl FileSink {
    /// A sink writing to `path`.
    pub fn new(path: PathBuf, max_bytes: u64) -> FileSink {
        FileSink {
            path,
            max_bytes: max_bytes.max(1),
            file: None,
            len: 0,
            rotations: 0,
        }
    }

    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.len = f.metadata()?.len();
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("file not open"))
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_data()?;
        }
        self.rotations += 1;
        std::fs::rename(&self.path, rotated(&self.path, self.rotations))?;
        sync_dir(&self.path);
        self.len = 0;
        Ok(())
    }

    fn write_sync(&mut self, events: &[(Event, String)]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for (e, _) in events {
            buf.clear();
            match &e.json {
                Some(v) => serde_json::to_writer(&mut buf, v)?,
                None => serde_json::to_writer(&mut buf, &String::from_utf8_lossy(&e.raw))?,
            }
            buf.push(b'\n');
            if self.len > 0 && self.len + buf.len() as u64 > self.max_bytes {
                self.rotate()?;
            }
            let f = self.open()?;
            f.write_all(&buf)?;
            self.len += buf.len() as u64;
        }
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        Ok(())
    }

    fn recover_sync(&mut self, pos: Option<Value>) -> std::io::Result<()> {
        // No checkpoint yet: nothing of ours to undo; never touch what was there before.
        let Some(p) = pos else {
            self.open()?;
            return Ok(());
        };
        let rotations = p.get("rotations").and_then(Value::as_u64).unwrap_or(0);
        let len = p.get("len").and_then(Value::as_u64).unwrap_or(0);
        self.file = None;
        // A rotation after the checkpoint: the checkpointed active file is now `path.<r+1>`.
        let next = rotated(&self.path, rotations + 1);
        if next.exists() {
            let mut n = rotations + 2;
            while rotated(&self.path, n).exists() {
                std::fs::remove_file(rotated(&self.path, n))?;
                n += 1;
            }
            std::fs::rename(&next, &self.path)?;
        }
        if self.path.exists() {
            let f = OpenOptions::new().write(true).open(&self.path)?;
            if f.metadata()?.len() > len {
                f.set_len(len)?;
                f.sync_all()?;
            }
        }
        sync_dir(&self.path);
        self.rotations = rotations;
        self.open()?;
        Ok(())
    }
}

#[async_trait]
impl Sink for FileSink {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    async fn write(&mut self, events: &[(Event, String)]) -> Result<Vec<Undelivered>, String> {
        // Small synchronous writes: done in place (block_in_place keeps other tasks running on
        // the multi-threaded runtime).
        tokio::task::block_in_place(|| self.write_sync(events))
            .map(|()| Vec::new())
            .map_err(|e| format!("writing {}: {e}", self.path.display()))
    }

    fn position(&self) -> Value {
        json!({"rotations": self.rotations, "len": self.len})
    }

    async fn recover(&mut self, position: Option<Value>) -> Result<(), String> {
        tokio::task::block_in_place(|| self.recover_sync(position))
            .map_err(|e| format!("recovering {}: {e}", self.path.display()))
    }
}
