//! Reference tables for `enrich` (stream–table joins): rows by key, materialised in memory from
//! a keyed topic, a CSV file or a PostgreSQL query, shared by every input partition of a
//! pipeline.
//!
//! * **topic**: the latest value per record key (a compacted topic's view); an empty or `null`
//!   value deletes the key (tombstone). The whole topic is read before the first event is
//!   processed (as Kafka Streams bootstraps a global table), then new records are applied
//!   between rounds.
//! * **csv**: a header row, then one row per line; `key` names the key column. Cells that are
//!   JSON numbers become numbers, empty cells `null`, the rest strings. Reloaded when the file
//!   changes (checked every `refresh`).
//! * **postgres**: `query` runs at start and every `refresh`; each row becomes a JSON object
//!   (`row_to_json`, so column types are kept); `key` names the key column.
//!
//! A table that cannot be loaded at start stops the pipeline with the reason (joining against
//! nothing would silently produce wrong output); a refresh that fails keeps the previous rows
//! and is retried at the next refresh. Updates are applied between rounds, so one round sees
//! one version of the table. A replay joins against the table as it is then, not as it was.

use crate::config::TableConfig;
use aorta_log::{Log, LogError, ReadOptions};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

/// Rows by key, shared by a pipeline's partitions.
#[derive(Debug, Default)]
pub struct Table {
    rows: RwLock<HashMap<String, Value>>,
}

impl Table {
    /// The row for `key`, if any.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.rows.read().ok()?.get(key).cloned()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.read().map_or(0, |r| r.len())
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn replace(&self, rows: HashMap<String, Value>) {
        if let Ok(mut r) = self.rows.write() {
            *r = rows;
        }
    }

    fn apply(&self, updates: Vec<(String, Option<Value>)>) {
        if let Ok(mut r) = self.rows.write() {
            for (k, v) in updates {
                match v {
                    Some(v) => r.insert(k, v),
                    None => r.remove(&k),
                };
            }
        }
    }
}

/// A table with its source and refresh state.
pub struct TableSource {
    config: TableConfig,
    max_rows: usize,
    table: Arc<Table>,
    /// Topic tables: next offset per partition.
    next: Vec<u64>,
    /// File tables: modification time of the loaded file.
    loaded_mtime: Option<SystemTime>,
    last_refresh: Option<Instant>,
}

/// Turns a key cell into the key string expressions are matched against.
fn key_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A CSV cell as JSON: numbers, null for empty, strings otherwise.
fn cell(s: &str) -> Value {
    if s.is_empty() {
        return Value::Null;
    }
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Number(_)) => v,
        _ => Value::String(s.to_string()),
    }
}

/// Reads a CSV table (used at start and on reload).
pub fn read_csv(
    path: &Path,
    key: &str,
    delimiter: u8,
    max_rows: usize,
) -> Result<HashMap<String, Value>, String> {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_path(path)
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    let headers = r
        .headers()
        .map_err(|e| format!("{}: header row: {e}", path.display()))?
        .clone();
    let Some(ki) = headers.iter().position(|h| h == key) else {
        return Err(format!(
            "{}: no key column {key:?} (columns: {:?})",
            path.display(),
            headers.iter().collect::<Vec<_>>()
        ));
    };
    let mut rows = HashMap::new();
    for (n, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        let Some(k) = rec.get(ki).filter(|k| !k.is_empty()) else {
            return Err(format!(
                "{}: row {} has an empty key {key:?}",
                path.display(),
                n + 2
            ));
        };
        let row: Map<String, Value> = headers
            .iter()
            .zip(rec.iter())
            .map(|(h, c)| (h.to_string(), cell(c)))
            .collect();
        rows.insert(k.to_string(), Value::Object(row));
        if rows.len() > max_rows {
            return Err(format!(
                "{}: more than max_rows = {max_rows} rows",
                path.display()
            ));
        }
    }
    Ok(rows)
}

async fn read_postgres(
    url: &str,
    query: &str,
    key: &str,
    max_rows: usize,
) -> Result<HashMap<String, Value>, String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let task = tokio::spawn(conn);
    let sql = format!("SELECT row_to_json(q)::text FROM ({query}) AS q");
    let result = client
        .query(sql.as_str(), &[])
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) => format!("query: {}: {}", db.code().code(), db.message()),
            None => format!("query: {e}"),
        });
    drop(client);
    task.abort();
    let mut rows = HashMap::new();
    for row in result? {
        let text: String = row.try_get(0).map_err(|e| format!("row: {e}"))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("row: {e}"))?;
        let Some(k) = v.get(key).and_then(key_string) else {
            return Err(format!("a row has no usable key column {key:?}: {text}"));
        };
        rows.insert(k, v);
        if rows.len() > max_rows {
            return Err(format!("more than max_rows = {max_rows} rows"));
        }
    }
    Ok(rows)
}

impl TableSource {
    /// An empty table for `config`; nothing is read until [`TableSource::load`].
    pub fn new(config: TableConfig, max_rows: usize) -> TableSource {
        TableSource {
            config,
            max_rows,
            table: Arc::new(Table::default()),
            next: Vec::new(),
            loaded_mtime: None,
            last_refresh: None,
        }
    }

    /// The shared table.
    pub fn table(&self) -> Arc<Table> {
        self.table.clone()
    }

    /// One line for the topology.
    pub fn describe(&self) -> String {
        match &self.config {
            TableConfig::Topic { topic } => format!("topic {topic}"),
            TableConfig::Csv { path, key, .. } => format!("csv {} by {key}", path.display()),
            TableConfig::Postgres { key, .. } => format!("postgres query by {key}"),
        }
    }

    /// Loads the table fully (at start). An error stops the pipeline.
    pub async fn load(&mut self, log: &Arc<dyn Log>) -> Result<(), String> {
        match &self.config {
            TableConfig::Topic { topic } => {
                let d = log.describe_topic(topic).await.map_err(|e| match e {
                    LogError::UnknownTopic { .. } => {
                        format!("table topic {topic:?} does not exist")
                    }
                    e => format!("table topic {topic:?}: {e}"),
                })?;
                self.next = d.partitions.iter().map(|p| p.log_start).collect();
                self.poll_topic(log).await?;
            }
            TableConfig::Csv { .. } | TableConfig::Postgres { .. } => self.reload().await?,
        }
        self.last_refresh = Some(Instant::now());
        tracing::info!(table = %self.describe(), rows = self.table.len(), "enrich table loaded");
        Ok(())
    }

    /// Between rounds: applies new topic records; reloads a changed file or re-runs the query
    /// when `refresh` is due. Failures keep the current rows (and are logged).
    pub async fn refresh(&mut self, log: &Arc<dyn Log>) {
        let result = match &self.config {
            TableConfig::Topic { .. } => self.poll_topic(log).await,
            TableConfig::Csv { refresh, .. } | TableConfig::Postgres { refresh, .. } => {
                if self
                    .last_refresh
                    .is_some_and(|t| (t.elapsed().as_millis() as i64) < refresh.ms())
                {
                    return;
                }
                self.last_refresh = Some(Instant::now());
                self.reload().await
            }
        };
        if let Err(e) = result {
            tracing::warn!(table = %self.describe(), error = %e, "enrich table refresh failed; keeping the rows loaded before");
        }
    }

    async fn reload(&mut self) -> Result<(), String> {
        match &self.config {
            TableConfig::Csv {
                path,
                key,
                delimiter,
                ..
            } => {
                let mtime = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if self.loaded_mtime == Some(mtime) {
                    return Ok(());
                }
                let (path, key, delim, max) =
                    (path.clone(), key.clone(), *delimiter as u8, self.max_rows);
                let rows = tokio::task::spawn_blocking(move || read_csv(&path, &key, delim, max))
                    .await
                    .map_err(|e| e.to_string())??;
                self.table.replace(rows);
                self.loaded_mtime = Some(mtime);
            }
            TableConfig::Postgres {
                url, query, key, ..
            } => {
                let rows = read_postgres(url, query, key, self.max_rows).await?;
                self.table.replace(rows);
            }
            TableConfig::Topic { .. } => {}
        }
        Ok(())
    }

    async fn poll_topic(&mut self, log: &Arc<dyn Log>) -> Result<(), String> {
        let TableConfig::Topic { topic } = &self.config else {
            return Ok(());
        };
        let mut skipped = 0u64;
        for (p, next) in self.next.iter_mut().enumerate() {
            loop {
                let batch = log
                    .read(topic, p as u32, *next, ReadOptions::default())
                    .await
                    .map_err(|e| format!("table topic {topic:?}: {e}"))?;
                if batch.records.is_empty() {
                    *next = (*next).max(batch.log_start);
                    break;
                }
                *next = batch.next_offset(*next);
                let mut updates = Vec::with_capacity(batch.records.len());
                for r in batch.records {
                    let Some(k) = r
                        .record
                        .key
                        .as_deref()
                        .and_then(|k| std::str::from_utf8(k).ok())
                    else {
                        skipped += 1;
                        continue;
                    };
                    if r.record.value.is_empty() {
                        updates.push((k.to_string(), None));
                        continue;
                    }
                    match serde_json::from_slice::<Value>(&r.record.value) {
                        Ok(Value::Null) => updates.push((k.to_string(), None)),
                        Ok(v) => updates.push((k.to_string(), Some(v))),
                        Err(_) => skipped += 1,
                    }
                }
                self.table.apply(updates);
                if self.table.len() > self.max_rows {
                    return Err(format!(
                        "table topic {topic:?} holds more than max_rows = {} keys",
                        self.max_rows
                    ));
                }
                if *next >= batch.high_watermark {
                    break;
                }
            }
        }
        if skipped > 0 {
            tracing::warn!(table = %self.describe(), skipped, "table records without a UTF-8 key or with a value that is not JSON were skipped");
        }
        Ok(())
    }
}

/// The tables of one pipeline's `enrich` steps, by step index.
#[derive(Default)]
pub struct Tables {
    sources: Vec<(usize, TableSource)>,
}

impl Tables {
    /// One empty table per `enrich` step of `config`.
    pub fn for_pipeline(config: &crate::config::PipelineConfig) -> Tables {
        let sources = config
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                crate::config::StepConfig::Enrich(e) => {
                    Some((i, TableSource::new(e.table.clone(), e.max_rows)))
                }
                _ => None,
            })
            .collect();
        Tables { sources }
    }

    /// The table of step `index`.
    pub fn table(&self, index: usize) -> Option<Arc<Table>> {
        self.sources
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, s)| s.table())
    }

    /// Loads every table; the first failure names its step.
    pub async fn load(&mut self, log: &Arc<dyn Log>) -> Result<(), String> {
        for (i, s) in &mut self.sources {
            s.load(log)
                .await
                .map_err(|e| format!("steps[{i}] (enrich): {e}"))?;
        }
        Ok(())
    }

    /// Applies updates between rounds.
    pub async fn refresh(&mut self, log: &Arc<dyn Log>) {
        for (_, s) in &mut self.sources {
            s.refresh(log).await;
        }
    }
}
