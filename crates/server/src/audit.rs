//! The audit trail: an append-only, hash-chained record of every read of message bodies or
//! patient data, and of every action that changes what the system holds (replays, acks).
//!
//! Each entry is one record on the audit topic (one partition, so one order). Its `hash` is
//! SHA-256 over the previous entry's hash and the entry's own canonical JSON (the entry with
//! `hash` empty), and `seq` counts from 0. [`verify`] recomputes the chain: an edited entry
//! breaks its own hash, a removed or inserted one breaks `seq` or `prev`. An entry is written
//! (and fsynced) *before* the data it covers is returned; when the audit topic cannot be
//! written the request fails, so there is no unaudited read.
//!
//! Entries name what was touched (`topic/partition/offset` ranges, alert ids), never values, so
//! the trail itself holds no PHI.
//!
//! What the chain cannot show alone: a cut of the newest entries. `aorta audit verify` prints
//! the head (`seq`, `hash`); keeping that somewhere else (a ticket, a SIEM) closes the gap.

use crate::auth::{Principal, hex};
use aorta_log::{Log, LogError, ReadOptions, Record, TopicConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::Mutex;

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// When (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// Token id of the caller.
    pub actor: String,
    /// Token label.
    pub actor_name: String,
    /// The caller's role.
    pub role: String,
    /// What was done (`read-records`, `read-dead-letters`, `replay`, `list-alerts`, `ack-alert`).
    pub action: String,
    /// What it was done to (`topic/partition/from..to`, an alert id).
    pub target: String,
    /// Why, as the caller stated it (`Aorta-Purpose` header), e.g. `treatment`, `incident-4711`.
    pub purpose: Option<String>,
    /// Hash of the previous entry ([`GENESIS`] for the first).
    pub prev: String,
    /// SHA-256 over `prev` and this entry with `hash` empty.
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry should carry.
    pub fn compute_hash(&self) -> String {
        let mut unsigned = self.clone();
        unsigned.hash = String::new();
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(b"\n");
        // Serialising a struct of strings and integers cannot fail.
        h.update(serde_json::to_vec(&unsigned).unwrap_or_default());
        hex(&h.finalize())
    }
}

/// Errors of the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The audit topic could not be read or written.
    #[error("audit topic {topic}: {source}")]
    Log {
        /// The topic.
        topic: String,
        /// What failed.
        source: LogError,
    },
}

/// What to write: the rest is filled in by [`AuditLog::record`].
#[derive(Clone, Debug)]
pub struct Action<'a> {
    /// Who.
    pub principal: &'a Principal,
    /// What.
    pub action: &'a str,
    /// On what.
    pub target: String,
    /// Why (stated by the caller).
    pub purpose: Option<String>,
}

/// The writer: one chain head, appends serialised.
pub struct AuditLog {
    log: Arc<dyn Log>,
    topic: String,
    head: Mutex<(u64, String)>,
}

impl AuditLog {
    /// Opens the trail on `topic`, creating it, and reads its head so the chain continues.
    pub async fn open(log: Arc<dyn Log>, topic: &str) -> Result<AuditLog, AuditError> {
        let err = |source| AuditError::Log {
            topic: topic.to_string(),
            source,
        };
        match log.create_topic(topic, TopicConfig::default()).await {
            Ok(_) | Err(LogError::TopicExists { .. }) => {}
            Err(e) => return Err(err(e)),
        }
        let offsets = log.offsets(topic, 0).await.map_err(err)?;
        let mut head = (0, GENESIS.to_string());
        if offsets.high_watermark > offsets.log_start {
            let last = log
                .read(topic, 0, offsets.high_watermark - 1, ReadOptions::default())
                .await
                .map_err(err)?;
            if let Some(r) = last.records.last() {
                match serde_json::from_slice::<AuditEntry>(&r.record.value) {
                    Ok(e) => head = (e.seq + 1, e.hash),
                    Err(e) => tracing::error!(
                        topic,
                        error = %e,
                        "the newest audit entry is unreadable; continuing the chain from it will fail verification until investigated"
                    ),
                }
            }
        }
        Ok(AuditLog {
            log,
            topic: topic.to_string(),
            head: Mutex::new(head),
        })
    }

    /// The audit topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Appends one entry and returns once it is durable.
    pub async fn record(&self, action: Action<'_>) -> Result<AuditEntry, AuditError> {
        let mut head = self.head.lock().await;
        let mut entry = AuditEntry {
            seq: head.0,
            at: rfc3339_now(),
            actor: action.principal.id.clone(),
            actor_name: action.principal.name.clone(),
            role: action.principal.role.name().to_string(),
            action: action.action.to_string(),
            target: action.target,
            purpose: action.purpose,
            prev: head.1.clone(),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        let value = serde_json::to_vec(&entry).unwrap_or_default();
        let record = Record::new(value).with_key(entry.actor.clone());
        self.log
            .append(&self.topic, 0, vec![record])
            .await
            .map_err(|source| AuditError::Log {
                topic: self.topic.clone(),
                source,
            })?;
        *head = (entry.seq + 1, entry.hash.clone());
        Ok(entry)
    }
}

/// The result of checking a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Entries checked.
    pub entries: u64,
    /// `(seq, hash)` of the last good entry.
    pub head: Option<(u64, String)>,
    /// The first problem, with the log offset where it is.
    pub broken: Option<Broken>,
}

/// Where and why a chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// Offset of the offending record on the audit topic.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// Reads the whole audit topic and checks every link.
pub async fn verify(log: &dyn Log, topic: &str) -> Result<Verification, AuditError> {
    let err = |source| AuditError::Log {
        topic: topic.to_string(),
        source,
    };
    let offsets = log.offsets(topic, 0).await.map_err(err)?;
    let mut out = Verification {
        entries: 0,
        head: None,
        broken: None,
    };
    let (mut want_seq, mut want_prev) = (0u64, GENESIS.to_string());
    let mut from = offsets.log_start;
    if from > 0 {
        out.broken = Some(Broken {
            offset: from,
            reason: format!(
                "the topic starts at offset {from}: earlier entries were deleted (retention must be off for the audit topic)"
            ),
        });
        return Ok(out);
    }
    while from < offsets.high_watermark {
        let batch = log
            .read(topic, 0, from, ReadOptions::default())
            .await
            .map_err(err)?;
        if batch.records.is_empty() {
            break;
        }
        for r in &batch.records {
            let problem = match serde_json::from_slice::<AuditEntry>(&r.record.value) {
                Err(e) => Some(format!("not an audit entry: {e}")),
                Ok(e) if e.seq != want_seq => Some(format!(
                    "seq {} where {want_seq} was expected (an entry was removed or inserted)",
                    e.seq
                )),
                Ok(e) if e.prev != want_prev => Some(format!(
                    "entry {} does not link to the previous entry's hash",
                    e.seq
                )),
                Ok(e) if e.compute_hash() != e.hash => Some(format!(
                    "entry {} was altered: its hash does not match its content",
                    e.seq
                )),
                Ok(e) => {
                    want_seq = e.seq + 1;
                    want_prev = e.hash.clone();
                    out.entries += 1;
                    out.head = Some((e.seq, e.hash));
                    None
                }
            };
            if let Some(reason) = problem {
                out.broken = Some(Broken {
                    offset: r.offset,
                    reason,
                });
                return Ok(out);
            }
        }
        from = batch.next_offset(from);
    }
    Ok(out)
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn rfc3339_now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    aorta_fhir::datetime::format_utc_ms(ms)
}
