//! PostgreSQL sink: batched upserts by primary key, so a replay after a crash rewrites the
//! same rows instead of duplicating them.
//!
//! A batch is one statement with one parameter — the batch as a JSON array — expanded
//! server-side by `jsonb_to_recordset` into typed columns, then `INSERT … ON CONFLICT (key) DO
//! UPDATE`. Within a batch the last event of each key wins (PostgreSQL refuses to update one
//! row twice in a statement). Failures are retried with exponential backoff (100 ms doubling,
//! capped at 5 s), reconnecting each time, up to `max_attempts`; then the pipeline stops with
//! the error rather than drop rows.

use super::{Sink, SinkHealth, Undelivered};
use crate::config::PostgresSinkConfig;
use crate::event::Event;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// The sink.
pub struct PostgresSink {
    config: PostgresSinkConfig,
    client: Option<Client>,
    upsert: String,
    created: bool,
    health: SinkHealth,
}

fn ident_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

fn table_sql(t: &str) -> String {
    t.split('.').map(quote).collect::<Vec<_>>().join(".")
}

impl PostgresSink {
    /// Checks the config (names, types, key) and prepares the statement.
    pub fn new(config: PostgresSinkConfig) -> Result<PostgresSink, String> {
        if !config.table.split('.').all(ident_ok) || config.table.split('.').count() > 2 {
            return Err(format!(
                "postgres table {:?} must be name or schema.name of letters, digits and _",
                config.table
            ));
        }
        if config.columns.is_empty() {
            return Err("postgres sink needs columns = { name = \"sql type\", … }".into());
        }
        for (c, ty) in &config.columns {
            if !ident_ok(c) {
                return Err(format!(
                    "postgres column {c:?} must be letters, digits and _"
                ));
            }
            if ty.is_empty()
                || !ty
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || " _(),[]".contains(ch))
            {
                return Err(format!(
                    "postgres column {c:?}: type {ty:?} is not a SQL type name"
                ));
            }
        }
        if config.key.is_empty() {
            return Err("postgres sink needs key = [columns]: rows are upserted by it".into());
        }
        for k in &config.key {
            if !config.columns.contains_key(k) {
                return Err(format!("postgres key column {k:?} is not in columns"));
            }
        }
        let cols: Vec<String> = config.columns.keys().map(|c| quote(c)).collect();
        let typed: Vec<String> = config
            .columns
            .iter()
            .map(|(c, t)| format!("{} {t}", quote(c)))
            .collect();
        let keys: Vec<String> = config.key.iter().map(|c| quote(c)).collect();
        let updates: Vec<String> = config
            .columns
            .keys()
            .filter(|c| !config.key.contains(c))
            .map(|c| format!("{0} = EXCLUDED.{0}", quote(c)))
            .collect();
        let conflict = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        let upsert = format!(
            "INSERT INTO {table} ({cols}) SELECT {cols} FROM jsonb_to_recordset($1::text::jsonb) AS x({typed}) ON CONFLICT ({keys}) {conflict}",
            table = table_sql(&config.table),
            cols = cols.join(", "),
            typed = typed.join(", "),
            keys = keys.join(", "),
        );
        Ok(PostgresSink {
            config,
            client: None,
            upsert,
            created: false,
            health: SinkHealth::default(),
        })
    }

    /// The statement a batch runs (for the topology and tests).
    pub fn statement(&self) -> &str {
        &self.upsert
    }

    async fn connect(&mut self) -> Result<&Client, String> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let (client, conn) = tokio_postgres::connect(&self.config.url, NoTls)
                .await
                .map_err(|e| format!("connecting: {e}"))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!(error = %e, "postgres sink connection closed");
                }
            });
            self.client = Some(client);
        }
        if self.config.create_table && !self.created {
            let typed: Vec<String> = self
                .config
                .columns
                .iter()
                .map(|(c, t)| format!("{} {t}", quote(c)))
                .collect();
            let keys: Vec<String> = self.config.key.iter().map(|c| quote(c)).collect();
            let ddl = format!(
                "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
                table_sql(&self.config.table),
                typed.join(", "),
                keys.join(", ")
            );
            if let Some(c) = &self.client {
                c.batch_execute(&ddl)
                    .await
                    .map_err(|e| format!("creating table: {e}"))?;
            }
            self.created = true;
        }
        self.client
            .as_ref()
            .ok_or_else(|| "not connected".to_string())
    }

    fn rows(&self, events: &[(Event, String)]) -> String {
        // Last event per key wins; first-seen order is kept.
        let mut order: Vec<Value> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (e, _) in events {
            let v = e.value();
            let mut row = Map::new();
            for c in self.config.columns.keys() {
                row.insert(c.clone(), v.get(c).cloned().unwrap_or(Value::Null));
            }
            let k: Vec<&Value> = self.config.key.iter().map(|c| &row[c]).collect();
            let k = serde_json::to_string(&k).unwrap_or_default();
            match index.get(&k) {
                Some(&i) => order[i] = Value::Object(row),
                None => {
                    index.insert(k, order.len());
                    order.push(Value::Object(row));
                }
            }
        }
        Value::Array(order).to_string()
    }
}

#[async_trait]
impl Sink for PostgresSink {
    fn describe(&self) -> String {
        format!(
            "postgres {} (upsert by {:?})",
            self.config.table, self.config.key
        )
    }

    fn set_health(&mut self, health: SinkHealth) {
        self.health = health;
    }

    async fn write(&mut self, events: &[(Event, String)]) -> Result<Vec<Undelivered>, String> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.rows(events);
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let upsert = self.upsert.clone();
            let result = match self.connect().await {
                Ok(c) => c
                    .execute(upsert.as_str(), &[&rows])
                    .await
                    .map(|_| ())
                    .map_err(|e| match e.as_db_error() {
                        Some(db) => format!("{}: {}", db.code().code(), db.message()),
                        None => e.to_string(),
                    }),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    self.health.up();
                    return Ok(Vec::new());
                }
                Err(e) if attempt >= self.config.max_attempts.max(1) => {
                    return Err(format!("{e} (after {attempt} attempts)"));
                }
                Err(e) => {
                    tracing::warn!(table = %self.config.table, attempt, error = %e, "postgres sink write failed; retrying");
                    self.health.down(&e);
                    self.client = None;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
