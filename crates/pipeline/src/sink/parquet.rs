//! Parquet sink: rows in columnar part files for analytics (DuckDB, Spark, pandas, Athena).
//!
//! A Parquet file is written once, with its footer last, so rows cannot be appended to it.
//! The sink therefore stages the open part's rows as JSON lines in a hidden file
//! (`.part-000007.staging.jsonl`), fdatasynced before `write` returns, and turns the staged
//! rows into `part-000007.parquet` when the part is full (`max_rows` rows or `max_bytes` staged
//! bytes), older than `max_age`, or when the pipeline stops or reaches the end of its input.
//! A part is written to a temporary name, synced and renamed, so a reader never sees half a
//! file.
//!
//! Crash safety: the checkpoint holds (open part, staged bytes, rows). `recover` deletes parts
//! finished after the checkpoint and cuts the open part's staging file back to the checkpoint;
//! the replayed events then stage the same rows again. A staging file is deleted only once a
//! checkpoint beyond its part is durable (`checkpointed`), so a part finished after the last
//! checkpoint can always be rebuilt. With rolling by rows or bytes only, a run killed and
//! restarted leaves byte-identical part files to a run that never crashed; `max_age` and
//! stops close parts at wall-clock moments, so then the rows (in order) are the same but the
//! file boundaries may differ.

use super::{Sink, Undelivered};
use crate::config::{ParquetCompression, ParquetSinkConfig, ParquetType};
use crate::event::Event;
use async_trait::async_trait;
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};
use serde_json::{Value, json};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The sink.
pub struct ParquetSink {
    config: ParquetSinkConfig,
    schema: TypePtr,
    props: WriterPropertiesPtr,
    /// Index of the open part.
    part: u64,
    staging: Option<File>,
    staged_bytes: u64,
    rows: u64,
    /// When the open part got its first row (for `max_age`).
    opened: Option<Instant>,
    /// Parts finished since the last checkpoint: their staging files go once it is durable.
    finished: Vec<u64>,
}

/// Errors building the schema (a bad column name).
fn schema_for(config: &ParquetSinkConfig) -> Result<TypePtr, String> {
    let mut fields = Vec::new();
    for (name, kind) in &config.columns.0 {
        let (physical, logical) = match kind {
            ParquetType::String => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
            ParquetType::Json => (Physical::BYTE_ARRAY, Some(LogicalType::Json)),
            ParquetType::Int64 => (Physical::INT64, None),
            ParquetType::Double => (Physical::DOUBLE, None),
            ParquetType::Bool => (Physical::BOOLEAN, None),
            ParquetType::Timestamp => (
                Physical::INT64,
                Some(LogicalType::timestamp(true, TimeUnit::MILLIS)),
            ),
        };
        let t = Type::primitive_type_builder(name, physical)
            .with_repetition(Repetition::OPTIONAL)
            .with_logical_type(logical)
            .build()
            .map_err(|e| format!("column `{name}`: {e}"))?;
        fields.push(Arc::new(t));
    }
    Type::group_type_builder("aorta")
        .with_fields(fields)
        .build()
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// One cell, checked against its column type and normalised for staging: strings, integers
/// (timestamps as epoch milliseconds), doubles, booleans or null.
fn cell(name: &str, kind: ParquetType, v: Option<&Value>) -> Result<Value, String> {
    let v = match v {
        None | Some(Value::Null) => return Ok(Value::Null),
        Some(v) => v,
    };
    let wrong = |want: &str| {
        let mut shown = v.to_string();
        if shown.len() > 40 {
            let mut cut = 40;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
            shown.push('…');
        }
        Err(format!(
            "column `{name}` wants {want}, the event has {shown}"
        ))
    };
    match kind {
        ParquetType::String => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(_) | Value::Bool(_) => Ok(Value::String(v.to_string())),
            _ => wrong("a string"),
        },
        ParquetType::Json => Ok(Value::String(v.to_string())),
        ParquetType::Int64 => match v.as_i64() {
            Some(i) => Ok(json!(i)),
            None => match v.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(json!(f as i64)),
                _ => wrong("an integer"),
            },
        },
        ParquetType::Double => match v.as_f64() {
            Some(f) => Ok(json!(f)),
            None => wrong("a number"),
        },
        ParquetType::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            _ => wrong("true or false"),
        },
        ParquetType::Timestamp => match v {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(json!(i)),
                None => wrong("epoch milliseconds or an RFC 3339 date-time"),
            },
            Value::String(s) => match aorta_fhir::datetime::to_utc_nanos(s) {
                Some(ns) => Ok(json!(ns.div_euclid(1_000_000) as i64)),
                None => wrong("epoch milliseconds or an RFC 3339 date-time"),
            },
            _ => wrong("epoch milliseconds or an RFC 3339 date-time"),
        },
    }
}

/// A column being filled for one row group.
enum Buf {
    Bytes(Vec<ByteArray>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
}

struct Col {
    buf: Buf,
    defs: Vec<i16>,
}

impl Col {
    fn new(kind: ParquetType) -> Col {
        let buf = match kind {
            ParquetType::String | ParquetType::Json => Buf::Bytes(Vec::new()),
            ParquetType::Int64 | ParquetType::Timestamp => Buf::I64(Vec::new()),
            ParquetType::Double => Buf::F64(Vec::new()),
            ParquetType::Bool => Buf::Bool(Vec::new()),
        };
        Col {
            buf,
            defs: Vec::new(),
        }
    }

    /// Adds a staged cell; `false` when it does not fit the column (a damaged staging file).
    fn push(&mut self, v: &Value) -> bool {
        if v.is_null() {
            self.defs.push(0);
            return true;
        }
        let ok = match &mut self.buf {
            Buf::Bytes(b) => v
                .as_str()
                .map(|s| b.push(ByteArray::from(s.as_bytes().to_vec())))
                .is_some(),
            Buf::I64(b) => v.as_i64().map(|i| b.push(i)).is_some(),
            Buf::F64(b) => v.as_f64().map(|f| b.push(f)).is_some(),
            Buf::Bool(b) => v.as_bool().map(|x| b.push(x)).is_some(),
        };
        if ok {
            self.defs.push(1);
        }
        ok
    }

    fn clear(&mut self) {
        self.defs.clear();
        match &mut self.buf {
            Buf::Bytes(b) => b.clear(),
            Buf::I64(b) => b.clear(),
            Buf::F64(b) => b.clear(),
            Buf::Bool(b) => b.clear(),
        }
    }
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `(part, is_staging)` for the sink's own file names.
fn parse_name(name: &str) -> Option<(u64, bool)> {
    if let Some(n) = name
        .strip_prefix("part-")
        .and_then(|s| s.strip_suffix(".parquet"))
    {
        return n.parse().ok().map(|p| (p, false));
    }
    name.strip_prefix(".part-")
        .and_then(|s| s.strip_suffix(".staging.jsonl"))
        .and_then(|n| n.parse().ok())
        .map(|p| (p, true))
}

impl ParquetSink {
    /// A sink writing part files under `config.dir`.
    pub fn new(config: ParquetSinkConfig) -> Result<ParquetSink, String> {
        if config.max_rows == 0 || config.row_group_rows == 0 {
            return Err("max_rows and row_group_rows must be at least 1".into());
        }
        let schema = schema_for(&config)?;
        let compression = match config.compression {
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::None => Compression::UNCOMPRESSED,
        };
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(compression)
                .set_max_row_group_row_count(Some(config.row_group_rows))
                .build(),
        );
        Ok(ParquetSink {
            config,
            schema,
            props,
            part: 0,
            staging: None,
            staged_bytes: 0,
            rows: 0,
            opened: None,
            finished: Vec::new(),
        })
    }

    fn part_path(&self, part: u64) -> PathBuf {
        self.config.dir.join(format!("part-{part:06}.parquet"))
    }

    fn staging_path(&self, part: u64) -> PathBuf {
        self.config
            .dir
            .join(format!(".part-{part:06}.staging.jsonl"))
    }

    /// The sink's files in its directory: (part, is_staging, path).
    fn own_files(&self) -> std::io::Result<Vec<(u64, bool, PathBuf)>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.config.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if let Some((p, staging)) = parse_name(&name) {
                out.push((p, staging, e.path()));
            } else if name.starts_with(".part-") && name.ends_with(".parquet.tmp") {
                // A part that was being written when the process died.
                std::fs::remove_file(e.path())?;
            }
        }
        Ok(out)
    }

    fn staging(&mut self) -> std::io::Result<&mut File> {
        if self.staging.is_none() {
            std::fs::create_dir_all(&self.config.dir)?;
            let path = self.staging_path(self.part);
            let f = OpenOptions::new().create(true).append(true).open(&path)?;
            self.staged_bytes = f.metadata()?.len();
            self.staging = Some(f);
        }
        self.staging
            .as_mut()
            .ok_or_else(|| other("staging file not open"))
    }

    /// Turns the open part's staged rows into its Parquet file and opens the next part.
    fn finish_part(&mut self) -> std::io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        if let Some(f) = self.staging.take() {
            f.sync_data()?;
        }
        let part = self.part;
        let tmp = self.config.dir.join(format!(".part-{part:06}.parquet.tmp"));
        let file = File::create(&tmp)?;
        let mut writer = SerializedFileWriter::new(file, self.schema.clone(), self.props.clone())
            .map_err(other)?;
        let kinds: Vec<ParquetType> = self.config.columns.0.iter().map(|(_, k)| *k).collect();
        let mut cols: Vec<Col> = kinds.iter().map(|k| Col::new(*k)).collect();
        let reader = BufReader::new(File::open(self.staging_path(part))?);
        let mut in_group = 0usize;
        let mut written = 0u64;
        for line in reader.lines() {
            let line = line?;
            let row: Vec<Value> = serde_json::from_str(&line).map_err(other)?;
            if row.len() != cols.len() {
                return Err(other(format!(
                    "staged row {written} of part {part} has {} cells, the schema {}",
                    row.len(),
                    cols.len()
                )));
            }
            for (c, v) in cols.iter_mut().zip(&row) {
                if !c.push(v) {
                    return Err(other(format!(
                        "staged row {written} of part {part}: {v} does not fit its column"
                    )));
                }
            }
            in_group += 1;
            written += 1;
            if in_group == self.config.row_group_rows {
                write_group(&mut writer, &mut cols)?;
                in_group = 0;
            }
        }
        if in_group > 0 {
            write_group(&mut writer, &mut cols)?;
        }
        if written != self.rows {
            return Err(other(format!(
                "part {part}: {written} rows staged on disk, {} expected",
                self.rows
            )));
        }
        let file = writer.into_inner().map_err(other)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, self.part_path(part))?;
        sync_dir(&self.config.dir);
        tracing::debug!(part, rows = written, dir = %self.config.dir.display(), "parquet part written");
        self.finished.push(part);
        self.part += 1;
        self.staged_bytes = 0;
        self.rows = 0;
        self.opened = None;
        Ok(())
    }

    fn write_sync(&mut self, events: &[(Event, String)]) -> std::io::Result<Vec<Undelivered>> {
        let mut undelivered = Vec::new();
        let mut line = Vec::new();
        for (index, (e, _)) in events.iter().enumerate() {
            let Some(obj) = e.json.as_ref().and_then(Value::as_object) else {
                undelivered.push(Undelivered {
                    index,
                    reason: "the parquet sink takes JSON objects".into(),
                });
                continue;
            };
            let row: Result<Vec<Value>, String> = self
                .config
                .columns
                .0
                .iter()
                .map(|(name, kind)| cell(name, *kind, obj.get(name)))
                .collect();
            let row = match row {
                Ok(r) => r,
                Err(reason) => {
                    undelivered.push(Undelivered { index, reason });
                    continue;
                }
            };
            line.clear();
            serde_json::to_writer(&mut line, &row).map_err(other)?;
            line.push(b'\n');
            self.staging()?.write_all(&line)?;
            self.staged_bytes += line.len() as u64;
            self.rows += 1;
            if self.opened.is_none() {
                self.opened = Some(Instant::now());
            }
            if self.rows >= self.config.max_rows || self.staged_bytes >= self.config.max_bytes {
                self.finish_part()?;
            }
        }
        if let Some(f) = &self.staging {
            f.sync_data()?;
        }
        self.roll_if_old()?;
        Ok(undelivered)
    }

    fn roll_if_old(&mut self) -> std::io::Result<bool> {
        match (self.config.max_age, self.opened) {
            (Some(age), Some(t)) if t.elapsed().as_millis() as i64 >= age.ms() => {
                self.finish_part()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn recover_sync(&mut self, position: Option<Value>) -> std::io::Result<()> {
        self.staging = None;
        self.finished.clear();
        let files = self.own_files()?;
        let Some(p) = position else {
            // No checkpoint: never touch what is there; start after it.
            self.part = files.iter().map(|(p, _, _)| p + 1).max().unwrap_or(0);
            self.staged_bytes = 0;
            self.rows = 0;
            self.opened = None;
            return Ok(());
        };
        let part = p.get("part").and_then(Value::as_u64).unwrap_or(0);
        let bytes = p.get("bytes").and_then(Value::as_u64).unwrap_or(0);
        let rows = p.get("rows").and_then(Value::as_u64).unwrap_or(0);
        for (q, staging, path) in &files {
            // Parts finished after the checkpoint are rebuilt from the replay; staging files
            // of parts before it are leftovers of a cleanup the crash interrupted.
            let stale = if *staging { *q != part } else { *q >= part };
            if stale {
                std::fs::remove_file(path)?;
            }
        }
        let staging = self.staging_path(part);
        match std::fs::metadata(&staging) {
            Ok(m) if m.len() >= bytes => {
                if m.len() > bytes {
                    let f = OpenOptions::new().write(true).open(&staging)?;
                    f.set_len(bytes)?;
                    f.sync_all()?;
                }
            }
            Ok(m) => {
                return Err(other(format!(
                    "{} holds {} bytes, the checkpoint says {bytes}: staged rows were lost",
                    staging.display(),
                    m.len()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && bytes == 0 => {}
            Err(e) => return Err(e),
        }
        sync_dir(&self.config.dir);
        self.part = part;
        self.staged_bytes = bytes;
        self.rows = rows;
        self.opened = (rows > 0).then(Instant::now);
        Ok(())
    }

    fn forget_finished(&mut self) {
        for part in std::mem::take(&mut self.finished) {
            let path = self.staging_path(part);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not delete a staging file (it is deleted at the next restart)");
            }
        }
    }
}

fn write_group(writer: &mut SerializedFileWriter<File>, cols: &mut [Col]) -> std::io::Result<()> {
    let mut group = writer.next_row_group().map_err(other)?;
    for col in cols.iter_mut() {
        let mut w = group
            .next_column()
            .map_err(other)?
            .ok_or_else(|| other("fewer columns in the schema than in the row"))?;
        let defs = Some(col.defs.as_slice());
        let r = match (&col.buf, w.untyped()) {
            (Buf::Bytes(v), ColumnWriter::ByteArrayColumnWriter(c)) => c.write_batch(v, defs, None),
            (Buf::I64(v), ColumnWriter::Int64ColumnWriter(c)) => c.write_batch(v, defs, None),
            (Buf::F64(v), ColumnWriter::DoubleColumnWriter(c)) => c.write_batch(v, defs, None),
            (Buf::Bool(v), ColumnWriter::BoolColumnWriter(c)) => c.write_batch(v, defs, None),
            _ => return Err(other("column type and writer disagree")),
        };
        r.map_err(other)?;
        w.close().map_err(other)?;
        col.clear();
    }
    group.close().map_err(other)?;
    Ok(())
}

#[async_trait]
impl Sink for ParquetSink {
    fn describe(&self) -> String {
        format!(
            "parquet {} ({} columns, parts of up to {} rows)",
            self.config.dir.display(),
            self.config.columns.0.len(),
            self.config.max_rows
        )
    }

    async fn write(&mut self, events: &[(Event, String)]) -> Result<Vec<Undelivered>, String> {
        let dir = self.config.dir.display().to_string();
        tokio::task::block_in_place(|| self.write_sync(events))
            .map_err(|e| format!("writing parquet under {dir}: {e}"))
    }

    fn position(&self) -> Value {
        json!({"part": self.part, "bytes": self.staged_bytes, "rows": self.rows})
    }

    async fn recover(&mut self, position: Option<Value>) -> Result<(), String> {
        let dir = self.config.dir.display().to_string();
        tokio::task::block_in_place(|| self.recover_sync(position))
            .map_err(|e| format!("recovering parquet under {dir}: {e}"))
    }

    async fn checkpointed(&mut self) {
        tokio::task::block_in_place(|| self.forget_finished());
    }

    async fn idle(&mut self) -> Result<bool, String> {
        let dir = self.config.dir.display().to_string();
        tokio::task::block_in_place(|| self.roll_if_old())
            .map_err(|e| format!("writing parquet under {dir}: {e}"))
    }

    async fn close(&mut self) -> Result<(), String> {
        let dir = self.config.dir.display().to_string();
        tokio::task::block_in_place(|| self.finish_part())
            .map_err(|e| format!("writing parquet under {dir}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_checked_against_their_column() {
        assert_eq!(
            cell("n", ParquetType::Int64, Some(&json!(3.0))),
            Ok(json!(3))
        );
        assert!(cell("n", ParquetType::Int64, Some(&json!(3.5))).is_err());
        assert_eq!(
            cell(
                "t",
                ParquetType::Timestamp,
                Some(&json!("2024-03-01T10:00:00+01:00"))
            ),
            Ok(json!(1_709_283_600_000i64))
        );
        assert!(cell("t", ParquetType::Timestamp, Some(&json!("2024-03-01"))).is_err());
        assert_eq!(
            cell("s", ParquetType::String, Some(&json!(7))),
            Ok(json!("7"))
        );
        assert!(cell("s", ParquetType::String, Some(&json!([1]))).is_err());
        assert_eq!(cell("b", ParquetType::Bool, None), Ok(Value::Null));
        let e = cell("hr", ParquetType::Double, Some(&json!("fast"))).unwrap_err();
        assert_eq!(e, "column `hr` wants a number, the event has \"fast\"");
    }

    #[test]
    fn only_the_sinks_own_names_are_parsed() {
        assert_eq!(parse_name("part-000012.parquet"), Some((12, false)));
        assert_eq!(parse_name(".part-000012.staging.jsonl"), Some((12, true)));
        assert_eq!(parse_name("notes.parquet"), None);
        assert_eq!(parse_name("part-x.parquet"), None);
    }
}
