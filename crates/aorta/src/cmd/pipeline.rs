//! `aorta pipeline check|run` and `aorta replay`: the `[[pipelines]]` of `aorta.toml`.

use crate::config::Config;
use anyhow::Context;
use aorta_log::Log;
use aorta_pipeline::{
    PipelineConfig, PipelineStats, RunOptions, RunReport, Runner, StartAt, StateStore,
};
use clap::{Args, Subcommand};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Subcommand, Debug)]
pub enum PipelineCmd {
    /// Check every pipeline of the config (expressions, steps, sinks) and print its topology.
    Check,
    /// Run one pipeline in the foreground (Ctrl-C/SIGTERM stops it after a checkpoint).
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pipeline's name.
    pub name: String,
    /// Stop at the end of the input as it is now, emitting what windows still hold.
    #[arg(long)]
    pub until_end: bool,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The pipeline whose steps are replayed.
    #[arg(long)]
    pub pipeline: String,
    /// Where to start: an offset (`0`, applied to every source partition) or an RFC 3339 time.
    #[arg(long)]
    pub from: String,
    /// Topic that receives the replay's output (instead of the pipeline's sinks).
    #[arg(long)]
    pub to: String,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The checkpoint store of this config.
pub fn state_store(config: &Config) -> anyhow::Result<StateStore> {
    let dir = match (&config.state.dir, config.log.backend) {
        (Some(d), _) => d.clone(),
        (None, crate::config::Backend::Embedded) => config.log.embedded.data_dir.join("pipelines"),
        (None, crate::config::Backend::Kafka) => "./aorta-state".into(),
    };
    Ok(StateStore::open(&dir.join("state.redb"))?)
}

fn find<'a>(config: &'a Config, name: &str) -> anyhow::Result<&'a PipelineConfig> {
    config.pipelines.iter().find(|p| p.name == name).with_context(|| {
        let names: Vec<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
        if names.is_empty() {
            format!("no pipeline {name:?}: the config declares no [[pipelines]] (pass --config aorta.toml)")
        } else {
            format!("no pipeline {name:?}; the config declares {names:?}")
        }
    })
}

/// Checks names are unique and every pipeline builds.
pub fn check_all(config: &Config) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in &config.pipelines {
        anyhow::ensure!(
            seen.insert(p.name.as_str()),
            "two pipelines are named {:?}",
            p.name
        );
        lines.extend(aorta_pipeline::check(p)?);
    }
    Ok(lines)
}

/// Prints progress every second until `stop`.
fn progress(name: String, stats: Arc<PipelineStats>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut last = 0u64;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
            let n = stats.input.load(Ordering::Relaxed);
            eprintln!(
                "{name}: {n} in ({} /s), {} out, {} dead-lettered, {} checkpoints, {:.0} s",
                n - last,
                stats.output.load(Ordering::Relaxed),
                stats.dead_lettered.load(Ordering::Relaxed),
                stats.checkpoints.load(Ordering::Relaxed),
                start.elapsed().as_secs_f64()
            );
            last = n;
        }
    });
}

async fn run_one(
    log: Arc<dyn Log>,
    pipeline: PipelineConfig,
    options: RunOptions,
    json: bool,
) -> anyhow::Result<RunReport> {
    let name = pipeline.name.clone();
    let runner = Runner::new(log, pipeline, options)?;
    let (stop, stopped) = watch::channel(false);
    let (done, done_rx) = watch::channel(false);
    progress(name.clone(), runner.stats(), done_rx);
    let started = Instant::now();
    let task = tokio::spawn(runner.run(stopped));
    tokio::spawn(async move {
        super::serve::signalled().await;
        eprintln!("stopping {name} after its next checkpoint");
        stop.send_replace(true);
    });
    let report = task.await??;
    done.send_replace(true);
    let secs = started.elapsed().as_secs_f64();
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report, secs);
    }
    Ok(report)
}

pub fn print_report(r: &RunReport, secs: f64) {
    eprintln!(
        "{} in, {} out, {} dead-lettered, {} already written before a restart, {:.1} s ({:.0} records/s)",
        r.input,
        r.output,
        r.dead_lettered,
        r.suppressed,
        secs,
        r.input as f64 / secs.max(1e-9)
    );
    for (i, (kind, c)) in r.steps.iter().enumerate() {
        eprintln!(
            "  [{i}] {kind}: {} in, {} out, {} dropped, {} errors",
            c.input, c.output, c.dropped, c.errors
        );
    }
}

/// `aorta pipeline check`: builds every pipeline (no log needed) and prints the topology.
pub fn check(config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.pipelines.is_empty(),
        "the config declares no [[pipelines]] (pass --config aorta.toml)"
    );
    for l in check_all(config)? {
        println!("{l}");
    }
    Ok(())
}

/// `aorta pipeline run`.
pub async fn run(log: Arc<dyn Log>, config: &Config, args: RunArgs) -> anyhow::Result<()> {
    let p = find(config, &args.name)?.clone();
    let options = RunOptions {
        until_end: args.until_end,
        idle_wait: Duration::from_millis(20),
        state: state_store(config)?,
        start: None,
        restore_changelog: true,
    };
    run_one(log, p, options, args.json).await.map(|_| ())
}

fn parse_start(s: &str) -> anyhow::Result<StartAt> {
    if let Ok(o) = s.parse::<u64>() {
        return Ok(StartAt::Offset(o));
    }
    let ns = aorta_fhir::datetime::to_utc_nanos(s).with_context(|| {
        format!("--from {s:?} must be an offset (e.g. 0) or an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)")
    })?;
    Ok(StartAt::TimeMs(ns.div_euclid(1_000_000) as i64))
}

/// `aorta replay`: the pipeline's steps over its history, into a new topic, as a one-off run
/// with its own (fresh) state; the live pipeline's checkpoint is not touched.
pub async fn replay(log: Arc<dyn Log>, config: &Config, args: ReplayArgs) -> anyhow::Result<()> {
    let mut p = find(config, &args.pipeline)?.clone();
    let start = parse_start(&args.from)?;
    let name = format!("{}.replay.{}", p.name, args.to);
    p.name = name.clone();
    p.group = Some(format!("pipeline.{name}"));
    p.sinks = vec![aorta_pipeline::config::SinkConfig::Topic {
        topic: args.to.clone(),
        key: None,
        partitions: 1,
    }];
    let state = state_store(config)?;
    state.reset(&name)?;
    let options = RunOptions {
        until_end: true,
        idle_wait: Duration::from_millis(20),
        state,
        start: Some(start),
        restore_changelog: true,
    };
    eprintln!(
        "replaying {} from {} into topic {}",
        args.pipeline, args.from, args.to
    );
    run_one(log, p, options, args.json).await.map(|_| ())
}

/// Builds runners for every pipeline of the config (`aorta serve`).
pub fn runners(
    log: &Arc<dyn Log>,
    config: &Config,
    options: &RunOptions,
) -> anyhow::Result<Vec<Runner>> {
    if config.pipelines.is_empty() {
        return Ok(Vec::new());
    }
    check_all(config)?;
    let mut out = Vec::new();
    for p in &config.pipelines {
        out.push(Runner::new(log.clone(), p.clone(), options.clone())?);
    }
    Ok(out)
}

/// How `aorta serve` runs its pipelines: unbounded, from their checkpoints.
pub fn serve_options(config: &Config) -> anyhow::Result<RunOptions> {
    Ok(RunOptions {
        until_end: false,
        idle_wait: Duration::from_millis(20),
        state: state_store(config)?,
        start: None,
        restore_changelog: !config.state.ignore_changelog,
    })
}
