//! Checkpoints in a redb file: for each pipeline, every input partition's next offset and
//! operator state, plus the positions of its outputs, written in **one ACID transaction**, so a
//! restart resumes from a point where state, input and output agree.

use crate::error::PipelineError;
use aorta_log::TopicPartition;
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PARTITIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("partition_checkpoints");
const PIPELINES: TableDefinition<&str, &[u8]> = TableDefinition::new("pipeline_checkpoints");

/// One input partition's progress.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PartitionCheckpoint {
    /// The next offset to process.
    pub next_offset: u64,
    /// Each operator's state, in step order (`null` for stateless ones), as written.
    pub states: Vec<Option<crate::ops::State>>,
}

impl PartialEq for PartitionCheckpoint {
    /// Equal offsets and byte-equal states (operators serialise deterministically).
    fn eq(&self, other: &Self) -> bool {
        self.next_offset == other.next_offset
            && self.states.len() == other.states.len()
            && self
                .states
                .iter()
                .zip(&other.states)
                .all(|(a, b)| a.as_ref().map(|v| v.get()) == b.as_ref().map(|v| v.get()))
    }
}

/// Where the pipeline's outputs stood at the checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputCheckpoint {
    /// For every topic the pipeline writes: each partition's end offset.
    pub topics: BTreeMap<String, Vec<u64>>,
    /// Each non-topic sink's position, in sink order.
    pub sinks: Vec<Value>,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct StateStore {
    db: Arc<Database>,
    path: PathBuf,
}

fn key(pipeline: &str, tp: &TopicPartition) -> String {
    format!("{pipeline}\u{1f}{}\u{1f}{}", tp.topic, tp.partition)
}

impl StateStore {
    /// Opens (or creates) the store file.
    pub fn open(path: &Path) -> Result<StateStore, PipelineError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| PipelineError::State {
                path: path.display().to_string(),
                message: format!("creating its directory: {e}"),
            })?;
        }
        let db = Database::create(path).map_err(|e| PipelineError::State {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(StateStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> PipelineError {
        PipelineError::State {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The last checkpoint of `pipeline`: its outputs' positions and each partition's progress.
    pub fn load(
        &self,
        pipeline: &str,
    ) -> Result<
        (
            Option<OutputCheckpoint>,
            BTreeMap<TopicPartition, PartitionCheckpoint>,
        ),
        PipelineError,
    > {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let mut parts = BTreeMap::new();
        let outputs = match tx.open_table(PIPELINES) {
            Ok(t) => match t.get(pipeline).map_err(|e| self.err(e))? {
                Some(v) => Some(serde_json::from_slice(v.value()).map_err(|e| self.err(e))?),
                None => None,
            },
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(self.err(e)),
        };
        match tx.open_table(PARTITIONS) {
            Ok(t) => {
                let prefix = format!("{pipeline}\u{1f}");
                for item in t.range(prefix.as_str()..).map_err(|e| self.err(e))? {
                    let (k, v) = item.map_err(|e| self.err(e))?;
                    let k = k.value();
                    let Some(rest) = k.strip_prefix(&prefix) else {
                        break;
                    };
                    let Some((topic, p)) = rest.rsplit_once('\u{1f}') else {
                        continue;
                    };
                    let Ok(p) = p.parse() else { continue };
                    let cp: PartitionCheckpoint =
                        serde_json::from_slice(v.value()).map_err(|e| self.err(e))?;
                    parts.insert(TopicPartition::new(topic, p), cp);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(self.err(e)),
        }
        Ok((outputs, parts))
    }

    /// Writes a checkpoint atomically and durably.
    pub fn save(
        &self,
        pipeline: &str,
        outputs: &OutputCheckpoint,
        partitions: &[(TopicPartition, PartitionCheckpoint)],
    ) -> Result<(), PipelineError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(PIPELINES).map_err(|e| self.err(e))?;
            let v = serde_json::to_vec(outputs).map_err(|e| self.err(e))?;
            t.insert(pipeline, v.as_slice()).map_err(|e| self.err(e))?;
            let mut t = tx.open_table(PARTITIONS).map_err(|e| self.err(e))?;
            for (tp, cp) in partitions {
                let v = serde_json::to_vec(cp).map_err(|e| self.err(e))?;
                t.insert(key(pipeline, tp).as_str(), v.as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forgets everything of `pipeline` (a replay starts from scratch).
    pub fn reset(&self, pipeline: &str) -> Result<(), PipelineError> {
        let (_, parts) = self.load(pipeline)?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(PIPELINES).map_err(|e| self.err(e))?;
            t.remove(pipeline).map_err(|e| self.err(e))?;
            let mut t = tx.open_table(PARTITIONS).map_err(|e| self.err(e))?;
            for tp in parts.keys() {
                t.remove(key(pipeline, tp).as_str())
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_is_per_pipeline() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(&dir.path().join("state.redb")).unwrap();
        assert_eq!(s.load("a").unwrap().1.len(), 0);
        let tp0 = TopicPartition::new("in", 0);
        let tp1 = TopicPartition::new("in", 1);
        let out = OutputCheckpoint {
            topics: [("o".to_string(), vec![3, 4])].into(),
            sinks: vec![serde_json::json!({"len": 10})],
        };
        let cp = PartitionCheckpoint {
            next_offset: 7,
            states: vec![None, crate::ops::state_of(&serde_json::json!({"n": 1}))],
        };
        s.save(
            "a",
            &out,
            &[
                (tp0.clone(), cp.clone()),
                (tp1.clone(), PartitionCheckpoint::default()),
            ],
        )
        .unwrap();
        s.save(
            "ab",
            &OutputCheckpoint::default(),
            &[(tp0.clone(), PartitionCheckpoint::default())],
        )
        .unwrap();
        drop(s);
        let s = StateStore::open(&dir.path().join("state.redb")).unwrap();
        let (o, parts) = s.load("a").unwrap();
        assert_eq!(o.unwrap(), out);
        assert_eq!(parts.len(), 2, "pipeline \"ab\" is not mixed in");
        assert_eq!(parts[&tp0], cp);
        s.reset("a").unwrap();
        assert!(s.load("a").unwrap().0.is_none());
        assert_eq!(s.load("ab").unwrap().1.len(), 1);
    }

    /// Window accumulators (internally tagged, with floats) and dedupe keys survive the trip
    /// through a checkpoint's bytes: the restored chain snapshots byte-equal and emits the same.
    #[test]
    fn operator_state_round_trips_through_a_checkpoint() {
        use crate::chain::Chain;
        use crate::event::{Event, Origin};
        use crate::table::Tables;
        let config = crate::config::parse_pipelines(
            r#"[[pipelines]]
name = "p"
from = ["in"]
sinks = [{ type = "topic", topic = "out" }]
[[pipelines.steps]]
op = "dedupe"
key = "id"
window = "1h"
time = "ts"
[[pipelines.steps]]
op = "window"
key = "k"
time = "ts"
size = "1m"
aggregates = { n = "count()", s = "sum(x)", a = "avg(x)", m = "max(x)", p = "percentile(x, 0.5)", d = "count_distinct(c)" }
"#,
        )
        .unwrap()
        .remove(0);
        let tables = Tables::for_pipeline(&config);
        let mut a = Chain::build(&config, &tables).unwrap();
        let event = |i: u64| {
            let json = serde_json::json!({"id": i, "c": i % 7, "k": format!("k{}", i % 3), "ts": 1_000 * i as i64, "x": 0.5 + i as f64});
            Event {
                key: None,
                raw: bytes::Bytes::from(json.to_string()),
                json: Some(json),
                timestamp_ms: 0,
                headers: Vec::new(),
                origin: Origin {
                    topic: "in".into(),
                    partition: 0,
                    offset: i,
                },
            }
        };
        let mut out_a = Vec::new();
        for i in 0..20 {
            a.push(event(i), &mut out_a);
        }
        let cp = PartitionCheckpoint {
            next_offset: 20,
            states: a.snapshot(),
        };
        assert!(cp.states.iter().all(Option::is_some));
        let back: PartitionCheckpoint =
            serde_json::from_slice(&serde_json::to_vec(&cp).unwrap()).unwrap();
        assert_eq!(back, cp);
        let mut b = Chain::build(&config, &tables).unwrap();
        b.restore(back.states).unwrap();
        let again = PartitionCheckpoint {
            next_offset: 20,
            states: b.snapshot(),
        };
        assert_eq!(again, cp, "the restored state snapshots the same");
        let (mut tail_a, mut tail_b) = (Vec::new(), Vec::new());
        for i in 20..200 {
            a.push(event(i), &mut tail_a);
            b.push(event(i), &mut tail_b);
        }
        assert!(!tail_a.is_empty());
        let values = |v: &Vec<(crate::chain::Target, Event)>| -> Vec<String> {
            v.iter().map(|(_, e)| e.value().to_string()).collect()
        };
        assert_eq!(values(&tail_a), values(&tail_b));
    }
}
