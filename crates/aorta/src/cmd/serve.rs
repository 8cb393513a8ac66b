//! `aorta serve`: run the configured sources, pipelines and the HTTP API against the log until
//! SIGTERM or Ctrl-C, then stop accepting (MLLP connections and HTTP requests), let in-flight
//! messages finish (their ACKs are sent), let each pipeline finish its round and checkpoint,
//! and exit. `aorta demo` starts the same way.
//!
//! Each pipeline runs under a supervisor: a run that fails (a sink out of retries, a log error)
//! is started again from its checkpoint after a back-off (1 s, doubling to 60 s; reset after a
//! minute of healthy running), and `POST /api/pipelines/{name}/restart` restarts a failed
//! pipeline at once or a running one after a clean stop. While it waits, the pipeline's status
//! is `failed` with the reason, so `/readyz` answers 503.

use crate::config::Config;
use anyhow::Context;
use aorta_log::Log;
use aorta_mllp::{MllpServer, MllpSourceConfig};
use aorta_pipeline::{PipelineConfig, PipelineError, RunOptions, RunReport, Runner};
use aorta_server::{AppState, Components, MllpInfo, PipelineControl, PipelineInfo, PipelineStatus};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub async fn signalled() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

type MllpTask = (JoinHandle<()>, Arc<aorta_mllp::Stats>, String);

/// A one-thread runtime beside the main one. `serve` runs the MLLP sources on one, so that an
/// ACK (the latency a sending system feels) never waits in a queue behind API requests, SSE
/// streams or pipeline I/O on the main runtime; their durable appends run on its blocking pool.
pub(crate) struct DedicatedRuntime(Option<tokio::runtime::Runtime>);

impl DedicatedRuntime {
    pub(crate) fn new(thread_name: &str) -> std::io::Result<DedicatedRuntime> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(thread_name)
            .enable_all()
            .build()?;
        Ok(DedicatedRuntime(Some(rt)))
    }

    pub(crate) fn handle(&self) -> anyhow::Result<tokio::runtime::Handle> {
        self.0
            .as_ref()
            .map(|rt| rt.handle().clone())
            .ok_or_else(|| anyhow::anyhow!("the runtime is shut down"))
    }
}

impl Drop for DedicatedRuntime {
    /// Dropping a runtime blocks, which is not allowed inside the main runtime: its tasks have
    /// ended by now (shutdown waited for them), so let its threads go in the background.
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
type PipelineTask = (String, JoinHandle<Result<RunReport, PipelineError>>);

/// Everything `serve` runs.
pub struct Running {
    /// The (metered) log everything writes to.
    pub log: Arc<dyn Log>,
    /// Bound MLLP addresses, in config order.
    pub mllp_addrs: Vec<SocketAddr>,
    /// The API's address and state, when it runs.
    pub api: Option<(SocketAddr, AppState)>,
    /// Counters of what runs.
    pub components: Components,
    stop: watch::Sender<bool>,
    mllp: Vec<MllpTask>,
    pipelines: Vec<PipelineTask>,
    api_task: Option<JoinHandle<std::io::Result<()>>>,
    /// Held for the MLLP tasks' lifetime (declared last: dropped after them).
    _ingest: DedicatedRuntime,
}

/// Starts the MLLP sources, the pipelines and the API of `config`.
pub async fn start(log: Arc<dyn Log>, config: &Config) -> anyhow::Result<Running> {
    let (log, log_metrics) = aorta_server::metered::MeteredLog::wrap(log);
    let sources = if config.sources.mllp.is_empty() {
        vec![MllpSourceConfig::default()]
    } else {
        config.sources.mllp.clone()
    };
    let (stop, stopped) = watch::channel(false);
    let mut components = Components {
        log_metrics: Some(log_metrics),
        ..Default::default()
    };
    let mut mllp = Vec::new();
    let mut mllp_addrs = Vec::new();
    let ingest = DedicatedRuntime::new("aorta-ingest")?;
    let on_ingest = ingest.handle()?;
    for source in sources {
        // Bound on the ingest runtime so that the listener and its connections are driven by
        // its reactor.
        let bind = {
            let (source, log) = (source.clone(), log.clone());
            on_ingest.spawn(async move { MllpServer::bind(source, log).await })
        };
        let server = bind.await??;
        let addr = server.local_addr()?;
        tracing::info!(%addr, topic = %source.topic, "MLLP listening");
        let stats = server.stats();
        components.mllp.push(MllpInfo {
            listen: source.listen.clone(),
            topic: source.topic.clone(),
            dead_letter_topic: source.dead_letter_topic.clone(),
            stats: stats.clone(),
        });
        mllp_addrs.push(addr);
        mllp.push((
            on_ingest.spawn(server.run(stopped.clone())),
            stats,
            source.listen,
        ));
    }
    let mut pipelines = Vec::new();
    let options = if config.pipelines.is_empty() {
        None
    } else {
        Some(super::pipeline::serve_options(config)?)
    };
    for (runner, p) in options
        .as_ref()
        .map(|o| super::pipeline::runners(&log, config, o))
        .transpose()?
        .unwrap_or_default()
        .into_iter()
        .zip(&config.pipelines)
    {
        let status = Arc::new(Mutex::new(PipelineStatus::Running));
        let control = Arc::new(PipelineControl::default());
        components.pipelines.push(PipelineInfo {
            name: p.name.clone(),
            group: p.group(),
            from: p.from.clone(),
            dead_letter_topic: p.dead_letter_topic(),
            stats: runner.stats(),
            status: status.clone(),
            control: control.clone(),
        });
        let supervisor = Supervisor {
            log: log.clone(),
            config: p.clone(),
            options: options.clone().context("pipelines without run options")?,
            status,
            control,
            stop: stopped.clone(),
        };
        pipelines.push((p.name.clone(), tokio::spawn(supervisor.run(runner))));
    }
    let (api, api_task) = if config.server.listen.is_empty() {
        (None, None)
    } else {
        let mut server_config = config.server.clone();
        server_config.alert_topics = config.alert_topics();
        let state = aorta_server::prepare(
            log.clone(),
            server_config,
            config.tokens_path(),
            components.clone(),
        )
        .await?;
        let mut until = stopped.clone();
        let (addr, task) = aorta_server::serve(state.clone(), async move {
            let _ = until.wait_for(|s| *s).await;
        })
        .await?;
        (Some((addr, state)), Some(task))
    };
    Ok(Running {
        log,
        mllp_addrs,
        api,
        components,
        stop,
        mllp,
        pipelines,
        api_task,
        _ingest: ingest,
    })
}

/// Runs one pipeline until shutdown, restarting it (see the module comment).
struct Supervisor {
    log: Arc<dyn Log>,
    config: PipelineConfig,
    options: RunOptions,
    status: Arc<Mutex<PipelineStatus>>,
    control: Arc<PipelineControl>,
    stop: watch::Receiver<bool>,
}

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Supervisor {
    fn set(&self, s: PipelineStatus) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    async fn run(mut self, first: Runner) -> Result<RunReport, PipelineError> {
        let name = self.config.name.clone();
        let stats = first.stats();
        let mut next = Some(first);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let runner = match next.take() {
                Some(r) => Ok(r),
                None => Runner::new(self.log.clone(), self.config.clone(), self.options.clone())
                    .map(|r| r.with_stats(stats.clone())),
            };
            let started = Instant::now();
            let mut requested = false;
            let result = match runner {
                Err(e) => Err(e),
                Ok(runner) => {
                    self.set(PipelineStatus::Running);
                    let (tx, rx) = watch::channel(false);
                    let run = runner.run(rx);
                    tokio::pin!(run);
                    let mut stopping = false;
                    loop {
                        tokio::select! {
                            r = &mut run => break r,
                            _ = self.stop.wait_for(|s| *s), if !stopping => {
                                stopping = true;
                                tx.send_replace(true);
                            }
                            _ = self.control.restart.notified(), if !stopping => {
                                tracing::info!(pipeline = %name, "restart requested: stopping the run cleanly");
                                requested = true;
                                stopping = true;
                                tx.send_replace(true);
                            }
                        }
                    }
                }
            };
            if *self.stop.borrow() {
                self.set(match &result {
                    Ok(_) => PipelineStatus::Stopped,
                    Err(e) => PipelineStatus::Failed(e.to_string()),
                });
                if let Err(e) = &result {
                    tracing::error!(pipeline = %name, error = %e, "pipeline stopped");
                }
                return result;
            }
            match result {
                Ok(report) if !requested => {
                    self.set(PipelineStatus::Stopped);
                    return Ok(report);
                }
                Ok(_) => backoff = FIRST_BACKOFF,
                Err(e) => {
                    if started.elapsed() > MAX_BACKOFF {
                        backoff = FIRST_BACKOFF;
                    }
                    tracing::error!(pipeline = %name, error = %e, retry_in_s = backoff.as_secs(), "pipeline failed; restarting from its checkpoint");
                    self.set(PipelineStatus::Failed(format!(
                        "{e} (restarting in {} s, or POST /api/pipelines/{name}/restart)",
                        backoff.as_secs()
                    )));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.control.restart.notified() => {
                            tracing::info!(pipeline = %name, "restart requested");
                        }
                        _ = self.stop.wait_for(|s| *s) => return Err(e),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            self.control.restarts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Running {
    /// Records the pipelines have not processed yet: per source partition, its end minus the
    /// pipeline group's committed offset (committed at every checkpoint, which a caught-up
    /// pipeline takes when it goes idle).
    pub async fn backlog(&self) -> u64 {
        let mut behind = 0;
        for p in &self.components.pipelines {
            for topic in &p.from {
                let Ok(d) = self.log.describe_topic(topic).await else {
                    continue;
                };
                for part in &d.partitions {
                    let tp = aorta_log::TopicPartition {
                        topic: topic.clone(),
                        partition: part.partition,
                    };
                    let done = match self.log.committed(&p.group, &tp).await {
                        Ok(Some(c)) => c,
                        _ => part.log_start,
                    };
                    behind += part.high_watermark.saturating_sub(done);
                }
            }
        }
        behind
    }

    /// Waits until the pipelines have caught up, or `limit` passes; returns what is left.
    pub async fn drain(&self, limit: std::time::Duration) -> u64 {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let behind = self.backlog().await;
            if behind == 0 || std::time::Instant::now() > deadline {
                return behind;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stops accepting, drains, checkpoints; returns each pipeline's report.
    pub async fn shutdown(self) -> anyhow::Result<Vec<(String, Result<RunReport, PipelineError>)>> {
        self.stop.send_replace(true);
        if let Some(task) = self.api_task {
            task.await??;
        }
        for (task, _, _) in self.mllp {
            task.await?;
        }
        let mut out = Vec::new();
        for (name, task) in self.pipelines {
            out.push((name, task.await?));
        }
        Ok(out)
    }
}

pub async fn run(log: Arc<dyn Log>, config: &Config) -> anyhow::Result<()> {
    let running = start(log, config).await?;
    for (addr, m) in running.mllp_addrs.iter().zip(&running.components.mllp) {
        eprintln!(
            "MLLP listening on {addr} -> topic {} (rejects -> {}), {} log",
            m.topic,
            m.dead_letter_topic,
            running.log.backend()
        );
    }
    if !running.components.pipelines.is_empty() {
        eprintln!("{} pipeline(s) running", running.components.pipelines.len());
    }
    if let Some((addr, state)) = &running.api {
        eprintln!(
            "API on http://{addr} (tokens: {}; /healthz is open, everything else needs `aorta token create`)",
            state.tokens.path().display()
        );
    }
    signalled().await;
    eprintln!("stopping: no new connections; finishing in-flight messages and requests");
    let stats: Vec<_> = running
        .mllp
        .iter()
        .map(|(_, s, l)| (s.clone(), l.clone()))
        .collect();
    let reports = running.shutdown().await?;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    for (stats, listen) in stats {
        eprintln!(
            "MLLP {listen}: {} accepted, {} duplicates, {} rejected, {} failed, {} connections",
            n(&stats.accepted),
            n(&stats.duplicates),
            n(&stats.rejected),
            n(&stats.failed),
            n(&stats.connections)
        );
    }
    for (name, report) in reports {
        match report {
            Ok(report) => {
                eprintln!("pipeline {name}:");
                super::pipeline::print_report(&report, 0.0);
            }
            Err(e) => eprintln!("pipeline {name} had stopped: {e}"),
        }
    }
    Ok(())
}
