//! Durable committed offsets: one checksummed file per consumer group, replaced atomically.

use super::write_atomic;
use crate::error::LogError;
use crate::record::TopicPartition;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MAGIC: &[u8; 4] = b"AOFS";

#[derive(Serialize, Deserialize)]
struct GroupFile {
    group: String,
    offsets: Vec<(String, u32, u64)>,
}

/// Committed offsets of all groups, cached in memory and persisted per group.
pub struct OffsetStore {
    dir: PathBuf,
    groups: Mutex<HashMap<String, BTreeMap<TopicPartition, u64>>>,
}

/// A file name for a group id: the id itself when it is filename-safe, else `x-<hex>`.
fn file_name(group: &str) -> String {
    let safe = !group.is_empty()
        && group.len() <= 200
        && !group.starts_with('.')
        && !group.starts_with("x-")
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if safe {
        format!("{group}.offsets")
    } else {
        let hex: String = group.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x-{hex}.offsets")
    }
}

fn decode(path: &Path, data: &[u8]) -> Result<GroupFile, LogError> {
    let corrupt = |detail: &str| LogError::Corrupt {
        file: path.to_path_buf(),
        position: 0,
        offset: None,
        detail: format!(
            "committed offsets: {detail}; restore the file or delete it to reset this group"
        ),
    };
    if data.len() < 12 || &data[0..4] != MAGIC {
        return Err(corrupt("missing AOFS header"));
    }
    let crc = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    let len = u32::from_le_bytes([data[8], data[9], data[10], data[11]]) as usize;
    let body = &data[12..];
    if body.len() != len || crc32c::crc32c(body) != crc {
        return Err(corrupt("CRC32C mismatch"));
    }
    serde_json::from_slice(body).map_err(|e| corrupt(&e.to_string()))
}

impl OffsetStore {
    /// Loads every group file in `dir`.
    pub fn open(dir: PathBuf) -> Result<OffsetStore, LogError> {
        let mut groups = HashMap::new();
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| LogError::io(format!("listing {}", dir.display()), e))?
        {
            let entry = entry.map_err(|e| LogError::io(format!("listing {}", dir.display()), e))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("offsets") {
                continue;
            }
            let data = std::fs::read(&path)
                .map_err(|e| LogError::io(format!("reading {}", path.display()), e))?;
            let file = decode(&path, &data)?;
            let map = file
                .offsets
                .into_iter()
                .map(|(t, p, o)| (TopicPartition::new(t, p), o))
                .collect();
            groups.insert(file.group, map);
        }
        Ok(OffsetStore {
            dir,
            groups: Mutex::new(groups),
        })
    }

    fn persist(&self, group: &str, map: &BTreeMap<TopicPartition, u64>) -> Result<(), LogError> {
        let body = serde_json::to_vec(&GroupFile {
            group: group.to_string(),
            offsets: map
                .iter()
                .map(|(tp, o)| (tp.topic.clone(), tp.partition, *o))
                .collect(),
        })
        .map_err(|e| LogError::Internal(format!("serialising offsets: {e}")))?;
        let mut data = Vec::with_capacity(body.len() + 12);
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        data.extend_from_slice(&(body.len() as u32).to_le_bytes());
        data.extend_from_slice(&body);
        write_atomic(&self.dir.join(file_name(group)), &data)
    }

    /// Durably records `offsets` for `group` (merged with what it had).
    pub fn commit(&self, group: &str, offsets: &[(TopicPartition, u64)]) -> Result<(), LogError> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let mut map = groups.get(group).cloned().unwrap_or_default();
        for (tp, o) in offsets {
            map.insert(tp.clone(), *o);
        }
        // Persist first: memory only changes once the commit is durable.
        self.persist(group, &map)?;
        groups.insert(group.to_string(), map);
        Ok(())
    }

    /// The committed offset, if any.
    pub fn get(&self, group: &str, tp: &TopicPartition) -> Option<u64> {
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group)
            .and_then(|m| m.get(tp).copied())
    }

    /// Drops offsets of a deleted topic from every group.
    pub fn forget_topic(&self, topic: &str) -> Result<(), LogError> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        for (group, map) in groups.iter_mut() {
            let before = map.len();
            map.retain(|tp, _| tp.topic != topic);
            if map.len() != before {
                self.persist(group, map)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_group_names_are_hex_encoded() {
        assert_eq!(file_name("billing"), "billing.offsets");
        assert_eq!(file_name("a/b"), "x-612f62.offsets");
        assert_eq!(file_name("x-1"), "x-782d31.offsets");
        assert_eq!(file_name(".."), "x-2e2e.offsets");
    }
}
