//! Running a pipeline against the log.
//!
//! ## The loop
//! ```text
//! restore checkpoint ─▶ recover sinks ─▶ suppress set (outputs written after the checkpoint)
//! round: read every assigned partition from its next offset (≤ max_read_bytes each)
//!        ─▶ decode ─▶ steps (one Chain per input partition: its own state and watermark)
//!        ─▶ write: topics (sinks, routes, late, dead letters) concurrently, then the other
//!           sinks; every write is durable when it returns
//!        ─▶ checkpoint (at most every checkpoint_interval, and after idle_wait without input,
//!           when stopping or done):
//!           offsets + operator state + output positions, one redb transaction
//!        ─▶ commit the group's offsets (for lag; the checkpoint is what a restart trusts)
//! ```
//! A slow sink delays the next round, so consumption slows with it; memory is bounded by one
//! round's reads and outputs.
//!
//! ## Partitions
//! An unbounded run joins the pipeline's consumer group and processes the partitions the group
//! assigns it; on a new generation it checkpoints, drops revoked partitions and opens the new
//! ones. Bounded runs (`until_end`: replays, `pipeline run --until-end`) read every partition.
//!
//! ## Delivery
//! * **Embedded backend: exactly-once effect.** Operators are deterministic, so replaying from
//!   the checkpoint reproduces the same outputs with the same identities (`aorta.emit` =
//!   `<pipeline>:<topic>/<partition>:<offset>:<n>`). On restart the runner reads back what each
//!   output topic received after the checkpoint's positions and skips those identities; file
//!   sinks are truncated to the checkpoint, Parquet parts closed after it are rebuilt from their
//!   staged rows; PostgreSQL rows are upserted by key.
//! * **Kafka backend: at-least-once.** State is checkpointed locally with the offsets and also
//!   appended to the pipeline's changelog topic ([`crate::changelog`]); a partition that moves
//!   to another worker continues there from the changelog's offset with the state recorded at
//!   it, and what was done after that checkpoint is done again (topic outputs may repeat).

use crate::chain::{Chain, Target};
use crate::config::{PipelineConfig, SinkConfig};
use crate::error::PipelineError;
use crate::event::{EMIT_HEADER, ERROR_HEADER, Event, LINEAGE_HEADER, OPERATOR_HEADER, Origin};
use crate::expr::Expr;
use crate::sink::{FileSink, ParquetSink, PostgresSink, Sink, SinkHealth, WebhookSink};
use crate::state::{OutputCheckpoint, PartitionCheckpoint, StateStore};
use crate::table::Tables;
use aorta_log::{ConsumedRecord, Log, LogError, ReadOptions, Record, TopicConfig, TopicPartition};
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// How a run behaves.
#[derive(Clone)]
pub struct RunOptions {
    /// Stop once every input partition reaches the end it had when the run started, emitting
    /// what windows still hold (bounded runs, benchmarks, replays). Otherwise follow forever.
    pub until_end: bool,
    /// How long a read waits for new records when the pipeline is idle.
    pub idle_wait: Duration,
    /// Where checkpoints go.
    pub state: StateStore,
    /// Where to start when the pipeline has no checkpoint for a partition (replays). Default:
    /// the group's committed offset, else the partition's start.
    pub start: Option<StartAt>,
    /// On a shared log (Kafka), restore assigned partitions from the pipeline's changelog
    /// ([`crate::changelog`]). `false` starts partitions without a local checkpoint from the
    /// group's committed offsets with empty state (`aorta demo` on Kafka: a fresh ward on a
    /// cluster that kept the last run). Changelog records are written either way.
    pub restore_changelog: bool,
}

/// A replay's starting point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// This offset in every source partition (or the partition's start, if later).
    Offset(u64),
    /// The first records with a timestamp at or after this (ms); earlier ones are skipped.
    TimeMs(i64),
}

/// Live counters of a running pipeline (shared with `aorta serve` and metrics).
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Records read.
    pub input: AtomicU64,
    /// Records written to sinks and topics (dead letters excluded).
    pub output: AtomicU64,
    /// Records dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Outputs not written again after a restart (already written before the crash).
    pub suppressed: AtomicU64,
    /// Checkpoints taken.
    pub checkpoints: AtomicU64,
    /// Per step (kind and counters, summed over this worker's partitions), updated after every
    /// round. A partition that moves to another worker takes its counts with it.
    pub steps: std::sync::Mutex<Vec<(String, crate::ops::OpCounters)>>,
    /// Sinks whose destination is down right now (they are retrying): sink index →
    /// (description, last error).
    pub sinks_down: std::sync::Mutex<BTreeMap<usize, (String, String)>>,
}

/// Each step's counters summed over the partitions this worker runs.
fn step_counters(
    parts: &BTreeMap<TopicPartition, PartitionRun>,
) -> Vec<(String, crate::ops::OpCounters)> {
    let mut steps: Vec<(String, crate::ops::OpCounters)> = Vec::new();
    for run in parts.values() {
        for (i, (kind, c)) in run.chain.counters().into_iter().enumerate() {
            if steps.len() <= i {
                steps.push((kind.to_string(), Default::default()));
            }
            let s = &mut steps[i].1;
            s.input += c.input;
            s.output += c.output;
            s.dropped += c.dropped;
            s.errors += c.errors;
        }
    }
    steps
}

/// What a finished run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunReport {
    /// Records read.
    pub input: u64,
    /// Records written (sinks and topics, dead letters excluded).
    pub output: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Outputs suppressed as already written.
    pub suppressed: u64,
    /// Per step: kind and counters (summed over partitions).
    pub steps: Vec<(String, crate::ops::OpCounters)>,
}

enum SinkSlot {
    Topic { topic: String, key: Option<Expr> },
    Other(Box<dyn Sink>),
}

struct PartitionRun {
    topic: Arc<str>,
    chain: Chain,
    next: u64,
    /// Bounded runs: where this partition ends.
    end: Option<u64>,
}

fn sink_error(pipeline: &str, sink: &dyn Sink, message: String) -> PipelineError {
    PipelineError::Sink {
        pipeline: pipeline.to_string(),
        sink: sink.describe(),
        message,
    }
}

/// Runs one partition's batch through its chain; outputs carry their identities.
fn process_batch(
    name: &str,
    start: Option<StartAt>,
    tp: &TopicPartition,
    run: &mut PartitionRun,
    records: Vec<ConsumedRecord>,
) -> Vec<(Target, Event, String)> {
    let mut produced = Vec::new();
    let mut out = Vec::new();
    for rec in records {
        if run.end.is_some_and(|e| rec.offset >= e) {
            break;
        }
        let offset = rec.offset;
        run.next = offset + 1;
        if let Some(StartAt::TimeMs(t)) = start
            && rec.record.timestamp_ms < t
        {
            continue;
        }
        if let Some(e) = run.chain.decode(&run.topic, tp.partition, rec, &mut out) {
            run.chain.push(e, &mut out);
        }
        if !out.is_empty() {
            let prefix = format!("{name}:{tp}:{offset}");
            for (n, (t, e)) in out.drain(..).enumerate() {
                produced.push((t, e, format!("{prefix}:{n}")));
            }
        }
    }
    produced
}

/// A pipeline bound to a log, ready to run.
pub struct Runner {
    log: Arc<dyn Log>,
    config: PipelineConfig,
    options: RunOptions,
    sinks: Vec<SinkSlot>,
    output_topics: BTreeMap<String, u32>,
    stats: Arc<PipelineStats>,
    suppress: HashSet<String>,
    tables: Tables,
    /// The changelog topic, for unbounded runs on a shared log ([`crate::changelog`]).
    changelog: Option<String>,
    /// Per partition, the next offset the changelog last recorded (unchanged ones are not
    /// written again).
    logged: BTreeMap<TopicPartition, u64>,
}

/// Creates `topic` with `config` unless it exists (another worker may create it first).
pub(crate) async fn ensure_topic(
    log: &dyn Log,
    topic: &str,
    config: TopicConfig,
) -> Result<(), LogError> {
    match log.describe_topic(topic).await {
        Ok(_) => Ok(()),
        Err(LogError::UnknownTopic { .. }) => match log.create_topic(topic, config).await {
            Ok(_) | Err(LogError::TopicExists { .. }) => Ok(()),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

fn log_err(pipeline: &str) -> impl Fn(LogError) -> PipelineError + '_ {
    move |source| PipelineError::Log {
        pipeline: pipeline.to_string(),
        source,
    }
}

/// Builds every step and sink of `config` without touching the log: the topology check.
pub fn check(config: &PipelineConfig) -> Result<Vec<String>, PipelineError> {
    let chain = Chain::build(config, &Tables::for_pipeline(config))?;
    let mut lines = vec![format!(
        "pipeline {}: from {:?} as group {} ({:?})",
        config.name,
        config.from,
        config.group(),
        config.format
    )];
    for (i, d) in chain.describe().into_iter().enumerate() {
        lines.push(format!("  [{i}] {d}"));
    }
    for s in build_sinks(config)? {
        lines.push(format!(
            "  -> {}",
            match &s {
                SinkSlot::Topic { topic, key } => match key {
                    Some(k) => format!("topic {topic} (key {k})"),
                    None => format!("topic {topic}"),
                },
                SinkSlot::Other(s) => s.describe(),
            }
        ));
    }
    lines.push(format!("  errors -> {}", config.dead_letter_topic()));
    Ok(lines)
}

fn build_sinks(config: &PipelineConfig) -> Result<Vec<SinkSlot>, PipelineError> {
    let cfg_err = |message: String| PipelineError::Config {
        pipeline: config.name.clone(),
        message,
    };
    if config.from.is_empty() {
        return Err(cfg_err("from = [topics] is empty".into()));
    }
    let mut out = Vec::new();
    for (i, s) in config.sinks.iter().enumerate() {
        out.push(match s {
            SinkConfig::Topic { topic, key, .. } => {
                aorta_log::validate_topic_name(topic)
                    .map_err(|e| cfg_err(format!("sinks[{i}]: {e}")))?;
                SinkSlot::Topic {
                    topic: topic.clone(),
                    key: key.clone(),
                }
            }
            SinkConfig::File { path, max_bytes } => {
                SinkSlot::Other(Box::new(FileSink::new(path.clone(), *max_bytes)))
            }
            SinkConfig::Parquet(pq) => SinkSlot::Other(Box::new(
                ParquetSink::new(pq.clone()).map_err(|e| cfg_err(format!("sinks[{i}]: {e}")))?,
            )),
            SinkConfig::Postgres(pg) => SinkSlot::Other(Box::new(
                PostgresSink::new(pg.clone()).map_err(|e| cfg_err(format!("sinks[{i}]: {e}")))?,
            )),
            SinkConfig::Webhook(w) => SinkSlot::Other(Box::new(
                WebhookSink::new(w.clone()).map_err(|e| cfg_err(format!("sinks[{i}]: {e}")))?,
            )),
        });
    }
    if out.is_empty()
        && !config
            .steps
            .iter()
            .any(|s| matches!(s, crate::config::StepConfig::Route { .. }))
    {
        return Err(cfg_err(
            "no sinks: add [[pipelines.sinks]] (type = \"topic\", \"file\", \"parquet\", \"postgres\" or \"webhook\")".into(),
        ));
    }
    Ok(out)
}

impl Runner {
    /// Checks the pipeline and prepares its sinks.
    pub fn new(
        log: Arc<dyn Log>,
        config: PipelineConfig,
        options: RunOptions,
    ) -> Result<Runner, PipelineError> {
        let tables = Tables::for_pipeline(&config);
        let chain = Chain::build(&config, &tables)?;
        let sinks = build_sinks(&config)?;
        let mut output_topics = BTreeMap::new();
        for s in &config.sinks {
            if let SinkConfig::Topic {
                topic, partitions, ..
            } = s
            {
                output_topics.insert(topic.clone(), (*partitions).max(1));
            }
        }
        for t in chain.topics() {
            output_topics.entry(t).or_insert(1);
        }
        output_topics.entry(config.dead_letter_topic()).or_insert(1);
        Ok(Runner {
            log,
            config,
            options,
            sinks,
            output_topics,
            stats: Arc::new(PipelineStats::default()),
            suppress: HashSet::new(),
            tables,
            changelog: None,
            logged: BTreeMap::new(),
        })
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<PipelineStats> {
        self.stats.clone()
    }

    /// Counts into `stats` instead of fresh counters (a supervisor restarting the pipeline
    /// keeps one set of counters across runs).
    pub fn with_stats(mut self, stats: Arc<PipelineStats>) -> Runner {
        self.stats = stats;
        self
    }

    fn err(&self) -> impl Fn(LogError) -> PipelineError + '_ {
        log_err(&self.config.name)
    }

    async fn ensure_outputs(&self) -> Result<(), PipelineError> {
        for (t, partitions) in &self.output_topics {
            let cfg = TopicConfig {
                partitions: *partitions,
                ..TopicConfig::default()
            };
            ensure_topic(self.log.as_ref(), t, cfg)
                .await
                .map_err(self.err())?;
        }
        Ok(())
    }

    /// Source partitions; in follow mode, waits for missing topics to appear.
    async fn sources(
        &self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Vec<TopicPartition>, PipelineError> {
        let mut said = false;
        loop {
            let mut out = Vec::new();
            let mut missing = None;
            for t in &self.config.from {
                match self.log.describe_topic(t).await {
                    Ok(d) => out.extend(
                        d.partitions
                            .iter()
                            .map(|p| TopicPartition::new(t.clone(), p.partition)),
                    ),
                    Err(LogError::UnknownTopic { .. }) => missing = Some(t.clone()),
                    Err(e) => return Err(self.err()(e)),
                }
            }
            let Some(m) = missing else { return Ok(out) };
            if self.options.until_end {
                return Err(PipelineError::Config {
                    pipeline: self.config.name.clone(),
                    message: format!("source topic {m:?} does not exist"),
                });
            }
            if !said {
                tracing::info!(pipeline = %self.config.name, topic = %m, "waiting for the source topic to be created");
                said = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => return Ok(Vec::new()),
            }
            if *stop.borrow() {
                return Ok(Vec::new());
            }
        }
    }

    /// Everything this pipeline wrote to its output topics after the checkpoint's positions.
    async fn read_back(&mut self, outputs: &OutputCheckpoint) -> Result<(), PipelineError> {
        let prefix = format!("{}:", self.config.name);
        for (topic, ends) in &outputs.topics {
            for (p, from) in ends.iter().enumerate() {
                let p = p as u32;
                let Ok(offs) = self.log.offsets(topic, p).await else {
                    continue;
                };
                let mut next = (*from).max(offs.log_start);
                while next < offs.high_watermark {
                    let batch = self
                        .log
                        .read(topic, p, next, ReadOptions::default())
                        .await
                        .map_err(self.err())?;
                    if batch.records.is_empty() {
                        break;
                    }
                    next = batch.next_offset(next);
                    for r in batch.records {
                        for (k, v) in &r.record.headers {
                            if k == EMIT_HEADER
                                && let Ok(id) = std::str::from_utf8(v)
                                && id.starts_with(&prefix)
                            {
                                self.suppress.insert(id.to_string());
                            }
                        }
                    }
                }
            }
        }
        if !self.suppress.is_empty() {
            tracing::info!(pipeline = %self.config.name, outputs = self.suppress.len(), "outputs written after the last checkpoint will not be written again");
        }
        Ok(())
    }

    async fn output_positions(&self) -> Result<BTreeMap<String, Vec<u64>>, PipelineError> {
        let mut out = BTreeMap::new();
        for t in self.output_topics.keys() {
            let d = self.log.describe_topic(t).await.map_err(self.err())?;
            out.insert(
                t.clone(),
                d.partitions.iter().map(|p| p.high_watermark).collect(),
            );
        }
        Ok(out)
    }

    async fn checkpoint(
        &mut self,
        parts: &BTreeMap<TopicPartition, PartitionRun>,
    ) -> Result<(), PipelineError> {
        self.checkpoint_and(parts, true).await
    }

    /// A checkpoint; `commit`: also commit the offsets to the group (not after a rebalance
    /// took partitions away: the group has moved on, and a commit then can stall the client).
    async fn checkpoint_and(
        &mut self,
        parts: &BTreeMap<TopicPartition, PartitionRun>,
        commit: bool,
    ) -> Result<(), PipelineError> {
        let outputs = OutputCheckpoint {
            topics: self.output_positions().await?,
            sinks: self
                .sinks
                .iter()
                .filter_map(|s| match s {
                    SinkSlot::Other(s) => Some(s.position()),
                    SinkSlot::Topic { .. } => None,
                })
                .collect(),
        };
        let snaps: Vec<(TopicPartition, PartitionCheckpoint)> = parts
            .iter()
            .map(|(tp, run)| {
                (
                    tp.clone(),
                    PartitionCheckpoint {
                        next_offset: run.next,
                        states: run.chain.snapshot(),
                    },
                )
            })
            .collect();
        let changed: Vec<(TopicPartition, PartitionCheckpoint)> = match &self.changelog {
            Some(_) => snaps
                .iter()
                .filter(|(tp, cp)| self.logged.get(tp) != Some(&cp.next_offset))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let store = self.options.state.clone();
        let name = self.config.name.clone();
        tokio::task::spawn_blocking(move || store.save(&name, &outputs, &snaps))
            .await
            .map_err(|e| PipelineError::State {
                path: "checkpoint task".into(),
                message: e.to_string(),
            })??;
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        for s in self.sinks.iter_mut() {
            if let SinkSlot::Other(s) = s {
                s.checkpointed().await;
            }
        }
        if let Some(topic) = &self.changelog {
            match crate::changelog::write(self.log.as_ref(), topic, &changed).await {
                Ok(()) => {
                    for (tp, cp) in changed {
                        self.logged.insert(tp, cp.next_offset);
                    }
                }
                Err(e) => {
                    // No group commit either: a committed offset must never run ahead of the
                    // state the changelog holds for it.
                    tracing::warn!(pipeline = %self.config.name, changelog = %topic, error = %e, "changelog append failed (the local checkpoint holds the progress; retried at the next checkpoint)");
                    return Ok(());
                }
            }
        }
        let offsets: Vec<(TopicPartition, u64)> =
            parts.iter().map(|(tp, r)| (tp.clone(), r.next)).collect();
        if !commit || offsets.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.log.commit(&self.config.group(), &offsets).await {
            tracing::warn!(pipeline = %self.config.name, error = %e, "group offset commit failed (the checkpoint holds the progress)");
        }
        Ok(())
    }
}

/// Whether `id` was read back from an output after a restart (and forgets it: it is skipped
/// once).
fn suppress_remove(suppress: &mut HashSet<String>, id: &str) -> bool {
    !suppress.is_empty() && suppress.remove(id)
}

/// The record written for an output: its payload (dead letters keep the bytes as read), key,
/// and the lineage, identity and error headers.
fn record_for(pipeline: &str, target: &Target, e: &Event, id: &str, key: Option<&Expr>) -> Record {
    let mut headers: Vec<(String, Bytes)> = e
        .headers
        .iter()
        .filter(|(k, _)| k != EMIT_HEADER && k != LINEAGE_HEADER)
        .cloned()
        .collect();
    headers.push((LINEAGE_HEADER.into(), Bytes::from(e.origin.lineage())));
    headers.push((EMIT_HEADER.into(), Bytes::copy_from_slice(id.as_bytes())));
    let value = match target {
        Target::DeadLetter { reason, operator } => {
            headers.push((
                ERROR_HEADER.into(),
                Bytes::copy_from_slice(reason.as_bytes()),
            ));
            headers.push((
                OPERATOR_HEADER.into(),
                Bytes::from(format!("{pipeline}/{operator}")),
            ));
            if e.raw.is_empty() {
                e.encode()
            } else {
                e.raw.clone()
            }
        }
        _ => e.encode(),
    };
    let key = match key {
        Some(k) => match k.eval(e.value(), &e.meta()) {
            Ok(crate::expr::Val::Null) | Err(_) => None,
            Ok(v) => Some(Bytes::from(v.to_key_string())),
        },
        None => e.key.clone(),
    };
    Record {
        key,
        value,
        headers,
        timestamp_ms: e.timestamp_ms,
    }
}

impl Runner {
    /// Writes one round's outputs; returns once all are durable.
    async fn write(&mut self, produced: Vec<(Target, Event, String)>) -> Result<(), PipelineError> {
        let mut by_topic: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        let mut to_sinks: Vec<(Event, String)> = Vec::new();
        let mut output = 0u64;
        let mut dead = 0u64;
        let mut suppressed = 0u64;
        let dlq = self.config.dead_letter_topic();
        let mut suppress = std::mem::take(&mut self.suppress);
        for (target, e, id) in produced {
            // An identity read back from an output topic after a restart was written before
            // the crash: it is not written again.
            let mut fresh = |id: &str| {
                if suppress_remove(&mut suppress, id) {
                    suppressed += 1;
                    false
                } else {
                    true
                }
            };
            match &target {
                Target::Sinks => {
                    for (i, s) in self.sinks.iter().enumerate() {
                        if let SinkSlot::Topic { topic, key } = s {
                            let sid = if i == 0 {
                                id.clone()
                            } else {
                                format!("{id}:s{i}")
                            };
                            if fresh(&sid) {
                                let r =
                                    record_for(&self.config.name, &target, &e, &sid, key.as_ref());
                                by_topic.entry(topic.clone()).or_default().push(r);
                            }
                        }
                    }
                    output += 1;
                    to_sinks.push((e, id));
                }
                Target::Topic(t) => {
                    output += 1;
                    if fresh(&id) {
                        let r = record_for(&self.config.name, &target, &e, &id, None);
                        by_topic.entry(t.clone()).or_default().push(r);
                    }
                }
                Target::DeadLetter { .. } => {
                    dead += 1;
                    if fresh(&id) {
                        let r = record_for(&self.config.name, &target, &e, &id, None);
                        by_topic.entry(dlq.clone()).or_default().push(r);
                    }
                }
            }
        }
        self.suppress = suppress;
        let log = self.log.clone();
        let writes = by_topic.into_iter().map(|(t, recs)| {
            let log = log.clone();
            async move { log.produce(&t, recs, 0).await.map(|_| ()) }
        });
        futures::future::try_join_all(writes)
            .await
            .map_err(self.err())?;
        // Non-topic sinks are idempotent on replay (files are truncated to the checkpoint,
        // rows are upserted, webhook requests carry their identity), so they get every event,
        // suppressed or not.
        let mut undelivered: Vec<Record> = Vec::new();
        if !to_sinks.is_empty() {
            for (i, s) in self.sinks.iter_mut().enumerate() {
                if let SinkSlot::Other(s) = s {
                    let r = s.write(&to_sinks).await;
                    let failed = r.map_err(|m| sink_error(&self.config.name, s.as_ref(), m))?;
                    for f in failed {
                        let Some((e, id)) = to_sinks.get(f.index) else {
                            continue;
                        };
                        let target = Target::DeadLetter {
                            reason: f.reason,
                            operator: format!("sinks[{i}]"),
                        };
                        let did = format!("{id}:s{i}:dlq");
                        if suppress_remove(&mut self.suppress, &did) {
                            suppressed += 1;
                        } else {
                            undelivered.push(record_for(&self.config.name, &target, e, &did, None));
                        }
                        dead += 1;
                    }
                }
            }
        }
        if !undelivered.is_empty() {
            self.log
                .produce(&dlq, undelivered, 0)
                .await
                .map_err(self.err())?;
        }
        self.stats.output.fetch_add(output, Ordering::Relaxed);
        self.stats.dead_lettered.fetch_add(dead, Ordering::Relaxed);
        self.stats
            .suppressed
            .fetch_add(suppressed, Ordering::Relaxed);
        Ok(())
    }

    /// This pipeline's local checkpoint (read off the async threads).
    async fn load_checkpoint(
        &self,
    ) -> Result<
        (
            Option<OutputCheckpoint>,
            BTreeMap<TopicPartition, PartitionCheckpoint>,
        ),
        PipelineError,
    > {
        let name = self.config.name.clone();
        let store = self.options.state.clone();
        tokio::task::spawn_blocking(move || store.load(&name))
            .await
            .map_err(|e| PipelineError::State {
                path: "load task".into(),
                message: e.to_string(),
            })?
    }

    /// A new assignment of the pipeline's group: checkpoint what this worker had (its changelog
    /// records hand the revoked partitions' state to their next owner), drop revoked partitions,
    /// open newly assigned ones from the further-ahead of the local checkpoint and the
    /// changelog, else the group's committed offset.
    async fn rebalance(
        &mut self,
        parts: &mut BTreeMap<TopicPartition, PartitionRun>,
        assignment: aorta_log::Assignment,
    ) -> Result<(), PipelineError> {
        self.checkpoint_and(parts, false).await?;
        let now: std::collections::BTreeSet<TopicPartition> =
            assignment.partitions.into_iter().collect();
        let before = parts.len();
        parts.retain(|tp, _| now.contains(tp));
        let revoked = before - parts.len();
        let (_, mut saved) = self.load_checkpoint().await?;
        self.merge_changelog(&mut saved).await?;
        let mut added = 0;
        for tp in now {
            if let std::collections::btree_map::Entry::Vacant(slot) = parts.entry(tp) {
                let run = self.open_partition(slot.key(), &mut saved).await?;
                slot.insert(run);
                added += 1;
            }
        }
        tracing::info!(pipeline = %self.config.name, generation = assignment.generation, revoked, added, partitions = parts.len(), "group rebalanced");
        Ok(())
    }

    /// Folds the changelog's checkpoints (what other workers recorded) into `saved`; nothing
    /// without a changelog or with `restore_changelog` off.
    async fn merge_changelog(
        &mut self,
        saved: &mut BTreeMap<TopicPartition, PartitionCheckpoint>,
    ) -> Result<(), PipelineError> {
        let Some(topic) = self
            .changelog
            .as_ref()
            .filter(|_| self.options.restore_changelog)
        else {
            return Ok(());
        };
        let remote = crate::changelog::read_latest(self.log.as_ref(), topic)
            .await
            .map_err(log_err(&self.config.name))?;
        for (tp, cp) in &remote {
            self.logged.insert(tp.clone(), cp.next_offset);
        }
        let n = remote.len();
        crate::changelog::merge(saved, remote);
        tracing::debug!(pipeline = %self.config.name, changelog = %topic, partitions = n, "changelog read");
        Ok(())
    }

    /// Sets up one source partition: its chain restored from `saved` (the local checkpoint),
    /// else started per `options.start`, the group's committed offset or the log start.
    async fn open_partition(
        &self,
        tp: &TopicPartition,
        saved: &mut BTreeMap<TopicPartition, PartitionCheckpoint>,
    ) -> Result<PartitionRun, PipelineError> {
        let mut chain = Chain::build(&self.config, &self.tables)?;
        let next = match saved.remove(tp) {
            Some(cp) => {
                chain
                    .restore(cp.states)
                    .map_err(|message| PipelineError::Config {
                        pipeline: self.config.name.clone(),
                        message: format!("{tp}: {message}"),
                    })?;
                cp.next_offset
            }
            None => match self.options.start {
                Some(StartAt::Offset(o)) => o.max(
                    self.log
                        .offsets(&tp.topic, tp.partition)
                        .await
                        .map_err(self.err())?
                        .log_start,
                ),
                Some(StartAt::TimeMs(_)) => {
                    self.log
                        .offsets(&tp.topic, tp.partition)
                        .await
                        .map_err(self.err())?
                        .log_start
                }
                None => match self
                    .log
                    .committed(&self.config.group(), tp)
                    .await
                    .map_err(self.err())?
                {
                    Some(o) => o,
                    None => {
                        self.log
                            .offsets(&tp.topic, tp.partition)
                            .await
                            .map_err(self.err())?
                            .log_start
                    }
                },
            },
        };
        let end = if self.options.until_end {
            Some(
                self.log
                    .offsets(&tp.topic, tp.partition)
                    .await
                    .map_err(self.err())?
                    .high_watermark,
            )
        } else {
            None
        };
        Ok(PartitionRun {
            topic: Arc::from(tp.topic.as_str()),
            chain,
            next,
            end,
        })
    }

    /// Lets every sink make its buffered output visible (stop or end of input).
    async fn close_sinks(&mut self) -> Result<(), PipelineError> {
        for s in self.sinks.iter_mut() {
            if let SinkSlot::Other(s) = s {
                let r = s.close().await;
                r.map_err(|m| sink_error(&self.config.name, s.as_ref(), m))?;
            }
        }
        Ok(())
    }

    /// Runs until the input ends (bounded) or `stop` turns true, checkpointing every round.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
    ) -> Result<RunReport, PipelineError> {
        self.ensure_outputs().await?;
        let sources = self.sources(&mut stop).await?;
        let (outputs, saved) = self.load_checkpoint().await?;
        let first_run = outputs.is_none();
        if let Some(o) = &outputs {
            self.read_back(o).await?;
        }
        let mut positions = outputs.map(|o| o.sinks.into_iter()).into_iter().flatten();
        self.stats
            .sinks_down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for (i, s) in self.sinks.iter_mut().enumerate() {
            if let SinkSlot::Other(s) = s {
                s.set_health(SinkHealth::new(self.stats.clone(), i, s.describe()));
                let r = s.recover(positions.next()).await;
                r.map_err(|m| sink_error(&self.config.name, s.as_ref(), m))?;
            }
        }
        // Reference tables are complete before the first event is joined.
        self.tables
            .load(&self.log)
            .await
            .map_err(|message| PipelineError::Config {
                pipeline: self.config.name.clone(),
                message,
            })?;
        let mut parts: BTreeMap<TopicPartition, PartitionRun> = BTreeMap::new();
        let mut saved = saved;
        // Unbounded runs are members of the pipeline's consumer group and process the
        // partitions it assigns them (all of them when they run alone); bounded runs (replays,
        // `--until-end`) read every partition.
        let mut membership = None;
        let mut assigned = sources;
        if !self.options.until_end && !assigned.is_empty() {
            let m = self
                .log
                .join_group(&self.config.group(), &self.config.from)
                .await
                .map_err(self.err())?;
            assigned = m.assignment().partitions;
            tracing::info!(pipeline = %self.config.name, group = %self.config.group(), generation = m.assignment().generation, partitions = assigned.len(), "joined the pipeline's consumer group");
            membership = Some(m);
            if crate::changelog::wanted(self.log.as_ref()) {
                let topic = crate::changelog::topic_for(&self.config.group());
                crate::changelog::ensure(self.log.as_ref(), &topic)
                    .await
                    .map_err(self.err())?;
                self.changelog = Some(topic);
                self.merge_changelog(&mut saved).await?;
            }
        }
        let mut generation = membership.as_ref().map_or(0, |m| m.assignment().generation);
        // Resolves when the group rebalances (never without a group, or once it is gone).
        async fn rebalanced(m: &mut Option<aorta_log::Membership>) {
            let ok = match m {
                Some(m) => m.changed().await.is_ok(),
                None => false,
            };
            if !ok {
                std::future::pending::<()>().await
            }
        }
        for tp in assigned {
            let run = self.open_partition(&tp, &mut saved).await?;
            parts.insert(tp, run);
        }
        if first_run {
            // A base checkpoint before the first output: a crash before the first regular
            // checkpoint then still finds where the outputs stood, and suppresses what it wrote.
            self.checkpoint(&parts).await?;
        }
        tracing::info!(pipeline = %self.config.name, partitions = parts.len(), "pipeline running");
        let read_opts = ReadOptions {
            max_bytes: self.config.max_read_bytes.max(1024),
            max_wait: Duration::ZERO,
        };
        let mut dirty = false;
        let mut last_checkpoint = std::time::Instant::now();
        loop {
            if *stop.borrow() {
                self.close_sinks().await?;
                self.checkpoint(&parts).await?;
                break;
            }
            if let Some(a) = membership.as_ref().map(|m| m.assignment())
                && a.generation != generation
            {
                generation = a.generation;
                self.rebalance(&mut parts, a).await?;
                dirty = false;
            }
            self.tables.refresh(&self.log).await;
            let mut produced: Vec<(Target, Event, String)> = Vec::new();
            let keys: Vec<TopicPartition> = parts.keys().cloned().collect();
            // Read every partition, then process the batches in parallel (one thread per
            // partition with data: each has its own chain), then collect in partition order so
            // the outputs' order and identities never depend on thread timing.
            let mut batches: BTreeMap<TopicPartition, Vec<ConsumedRecord>> = BTreeMap::new();
            for tp in &keys {
                let run = parts.get_mut(tp).ok_or_else(|| PipelineError::State {
                    path: "partition table".into(),
                    message: format!("{tp} vanished"),
                })?;
                if run.end.is_some_and(|e| run.next >= e) {
                    continue;
                }
                let batch = self
                    .log
                    .read(&tp.topic, tp.partition, run.next, read_opts)
                    .await
                    .map_err(log_err(&self.config.name))?;
                if batch.records.is_empty() {
                    if batch.log_start > run.next {
                        tracing::warn!(pipeline = %self.config.name, %tp, from = run.next, to = batch.log_start, "records were deleted by retention before they were processed; skipping ahead");
                        run.next = batch.log_start;
                    }
                    continue;
                }
                self.stats
                    .input
                    .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                batches.insert(tp.clone(), batch.records);
            }
            let any = !batches.is_empty();
            let name = self.config.name.as_str();
            let start = self.options.start;
            let mut work: Vec<(&TopicPartition, &mut PartitionRun, Vec<ConsumedRecord>)> = parts
                .iter_mut()
                .filter_map(|(tp, run)| batches.remove(tp).map(|b| (tp, run, b)))
                .collect();
            if work.len() == 1 {
                let (tp, run, records) = work.pop().ok_or_else(|| PipelineError::State {
                    path: "round".into(),
                    message: "no work".into(),
                })?;
                produced = process_batch(name, start, tp, run, records);
            } else if !work.is_empty() {
                let results = tokio::task::block_in_place(|| {
                    std::thread::scope(|scope| {
                        let handles: Vec<_> = work
                            .into_iter()
                            .map(|(tp, run, records)| {
                                scope.spawn(move || process_batch(name, start, tp, run, records))
                            })
                            .collect();
                        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
                    })
                });
                for r in results {
                    match r {
                        Ok(mut v) => produced.append(&mut v),
                        Err(_) => {
                            return Err(PipelineError::State {
                                path: "operator thread".into(),
                                message: "an operator panicked".into(),
                            });
                        }
                    }
                }
            }
            // Only bounded runs finish (an unbounded one with no partitions assigned just waits).
            let finished = self.options.until_end
                && parts.values().all(|r| r.end.is_some_and(|e| r.next >= e));
            if finished {
                for (tp, run) in parts.iter_mut() {
                    let mut out = Vec::new();
                    run.chain.end_of_input(&mut out);
                    let prefix = format!("{}:{tp}:end", self.config.name);
                    for (n, (t, mut e)) in out.into_iter().enumerate() {
                        e.origin = Origin {
                            topic: run.topic.clone(),
                            partition: tp.partition,
                            offset: run.next,
                        };
                        produced.push((t, e, format!("{prefix}:{n}")));
                    }
                }
            }
            if any || finished {
                self.write(produced).await?;
                dirty = true;
                *self.stats.steps.lock().unwrap_or_else(|e| e.into_inner()) = step_counters(&parts);
            }
            if finished {
                self.close_sinks().await?;
            } else if !any {
                for s in self.sinks.iter_mut() {
                    if let SinkSlot::Other(s) = s {
                        let moved = s.idle().await;
                        dirty |= moved.map_err(|m| sink_error(&self.config.name, s.as_ref(), m))?;
                    }
                }
            }
            let due = last_checkpoint.elapsed().as_millis() as i64
                >= self.config.checkpoint_interval.ms();
            // Under a steady trickle of records a checkpoint after every short lull would put a
            // store commit (an fsync) in front of the next record; so an idle round checkpoints
            // only once the wait below found nothing for `idle_wait`.
            if dirty && (finished || due || *stop.borrow() || (!any && keys.is_empty())) {
                self.checkpoint(&parts).await?;
                last_checkpoint = std::time::Instant::now();
                dirty = false;
            }
            if finished {
                break;
            }
            if !any {
                // Idle: wait for new records, or for stop.
                if keys.is_empty() {
                    tokio::select! {
                        _ = tokio::time::sleep(self.options.idle_wait) => {}
                        _ = stop.changed() => {}
                        _ = rebalanced(&mut membership) => {}
                    }
                    continue;
                }
                // Wait on every assigned partition at once: the first to receive a record ends
                // the wait, so a record on any partition is picked up at once (waiting on one
                // partition in turn delayed the others by up to `idle_wait`).
                let wait = ReadOptions {
                    max_bytes: 1,
                    max_wait: self.options.idle_wait,
                };
                let log = &self.log;
                let waits = keys.iter().map(|tp| {
                    let next = parts.get(tp).map_or(0, |r| r.next);
                    Box::pin(log.read(&tp.topic, tp.partition, next, wait))
                });
                let quiet = tokio::select! {
                    (r, _, _) = futures::future::select_all(waits) => {
                        r.map_err(log_err(&self.config.name))?.records.is_empty()
                    }
                    _ = stop.changed() => false,
                    _ = rebalanced(&mut membership) => false,
                };
                if quiet && dirty {
                    self.checkpoint(&parts).await?;
                    last_checkpoint = std::time::Instant::now();
                    dirty = false;
                }
            }
        }
        let steps = step_counters(&parts);
        Ok(RunReport {
            input: self.stats.input.load(Ordering::Relaxed),
            output: self.stats.output.load(Ordering::Relaxed),
            dead_lettered: self.stats.dead_lettered.load(Ordering::Relaxed),
            suppressed: self.stats.suppressed.load(Ordering::Relaxed),
            steps,
        })
    }
}
