//! `enrich`: the stream–table join. Each event's `key` is looked up in a reference table
//! ([`crate::table`]); the matching row (or the chosen `fields` of it) is written at `into`.
//! Events without a row are kept (left join), dropped (inner join) or dead-lettered, as
//! configured.

use super::{OpResult, Operator, Out, reject};
use crate::config::{EnrichConfig, OnMissing, TableConfig};
use crate::event::Event;
use crate::expr::{Expr, Val, set_path};
use crate::table::Table;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The operator.
pub struct Enrich {
    key: Expr,
    into: String,
    fields: Vec<String>,
    on_missing: OnMissing,
    source: String,
    table: Arc<Table>,
    dropped: u64,
}

impl Enrich {
    /// Builds it over a shared table (loaded by the runner before the first event).
    pub fn new(config: &EnrichConfig, table: Arc<Table>) -> Result<Enrich, String> {
        if config.into.is_empty() {
            return Err("enrich needs into = \"path\" for the matched row".into());
        }
        Expr::parse(&config.into)
            .ok()
            .and_then(|e| e.root_field().map(|_| ()))
            .ok_or_else(|| format!("enrich into {:?} must be a path like a.b", config.into))?;
        let source = match &config.table {
            TableConfig::Topic { topic } => {
                aorta_log::validate_topic_name(topic).map_err(|e| format!("enrich table: {e}"))?;
                format!("topic {topic}")
            }
            TableConfig::Csv {
                path,
                delimiter,
                key,
                ..
            } => {
                if !delimiter.is_ascii() {
                    return Err(format!(
                        "enrich csv delimiter {delimiter:?} must be one ASCII character"
                    ));
                }
                format!("csv {} by {key}", path.display())
            }
            TableConfig::Postgres { query, key, .. } => {
                if query.trim().is_empty() {
                    return Err("enrich postgres table needs a query".into());
                }
                format!("postgres ({}) by {key}", query.trim())
            }
        };
        Ok(Enrich {
            key: config.key.clone(),
            into: config.into.clone(),
            fields: config.fields.clone(),
            on_missing: config.on_missing,
            source,
            table,
            dropped: 0,
        })
    }
}

impl Operator for Enrich {
    fn kind(&self) -> &'static str {
        "enrich"
    }

    fn describe(&self) -> String {
        format!(
            "enrich {} = {}[{}] ({:?} when missing)",
            self.into, self.source, self.key, self.on_missing
        )
    }

    fn process(&mut self, mut e: Event, out: &mut Out) -> OpResult {
        if e.json.is_none() {
            return reject(e, "enrich needs a JSON payload");
        }
        let key = match self.key.eval(e.value(), &e.meta()) {
            Ok(Val::Null) => None,
            Ok(v) => Some(v.to_key_string()),
            Err(x) => {
                let reason = format!("enrich key {}: {x}", self.key);
                return reject(e, reason);
            }
        };
        let row = key.as_deref().and_then(|k| self.table.get(k));
        let Some(row) = row else {
            match self.on_missing {
                OnMissing::Keep => out.next(e),
                OnMissing::Drop => self.dropped += 1,
                OnMissing::DeadLetter => {
                    let reason = match key {
                        Some(k) => format!("enrich: no row for key {k:?} in {}", self.source),
                        None => format!("enrich: key {} is null", self.key),
                    };
                    return reject(e, reason);
                }
            }
            return Ok(());
        };
        let row = if self.fields.is_empty() {
            row
        } else {
            let mut picked = Map::new();
            for f in &self.fields {
                picked.insert(f.clone(), row.get(f).cloned().unwrap_or(Value::Null));
            }
            Value::Object(picked)
        };
        let json = e.json.get_or_insert(Value::Null);
        if let Err(x) = set_path(json, &self.into, row) {
            return reject(e, x.to_string());
        }
        out.next(e);
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }
}
