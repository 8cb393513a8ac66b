//! # aorta-pipeline — declarative stream processing over the log
//!
//! Owns pipelines: sources (topics) → operators → sinks, declared in TOML and run as
//! consumers of the log.
//!
//! | module | what it owns |
//! |---|---|
//! | [`config`] | `[[pipelines]]`: steps, sinks, defaults; unknown keys rejected with their path |
//! | [`expr`] | the expression language of `when`/`set`/`key`/aggregate inputs |
//! | [`ops`] | operators: filter, map, project, route, dedupe, window, enrich, early-warning, hl7-to-fhir, validate |
//! | [`fields`] | reading the top-level fields a step needs straight from JSON bytes (no `Value` tree) |
//! | [`agg`] | window aggregates (count, sum, avg, min, max, first, last, count_distinct, percentile) |
//! | [`chain`] | one input partition's steps: events in, routed events out, dead letters |
//! | [`sink`] | file (JSON lines, rotation), Parquet (part files), PostgreSQL (upsert) and webhook (retry, dead letter) sinks |
//! | [`table`] | `enrich` reference tables from a keyed topic, a CSV file or a PostgreSQL query |
//! | [`state`] | checkpoints in redb: offsets + operator state + output positions, atomically |
//! | [`changelog`] | the same per-partition checkpoints on a compacted topic, so a partition that moves to another worker (Kafka) keeps its state |
//! | [`runner`] | the read → process → write → checkpoint loop; restart without loss or duplicates |
//!
//! ## Invariants
//! * Operators are deterministic functions of (state, input): no wall clock, no randomness.
//!   This is what makes a replay from a checkpoint reproduce the same outputs with the same
//!   identities, and so what makes restarts exact on the embedded backend.
//! * An operator that fails on one event never stops the pipeline: the event goes to the
//!   dead-letter topic with `aorta.error` and `aorta.operator` headers.
//! * Every output carries `aorta.lineage` (`topic/partition/offset` of its source record).
//! * A checkpoint is taken only after the outputs it covers are durable; group offsets are
//!   committed only after the checkpoint (and, on a shared log, its changelog records).
//! * Everything is bounded: reads per round (`max_read_bytes`), open windows, dedupe keys.
//!
//! ## Must not depend on
//! A concrete log backend (only the `aorta_log::Log` trait), any server, or clinical rules of
//! its own (`early-warning` feeds `aorta_clinical::surveillance`, which holds the rules).

pub mod agg;
pub mod chain;
pub mod changelog;
pub mod config;
pub mod duration;
pub mod error;
pub mod event;
pub mod expr;
pub mod fields;
pub mod ops;
pub mod runner;
pub mod sink;
pub mod state;
pub mod table;

pub use config::{PipelineConfig, parse_pipelines};
pub use error::PipelineError;
pub use runner::{PipelineStats, RunOptions, RunReport, Runner, StartAt, check};
pub use state::StateStore;
