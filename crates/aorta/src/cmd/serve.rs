//! `aorta serve`: run the configured sources, pipelines and the HTTP API against the log until
//! SIGTERM or Ctrl-C, then stop accepting (MLLP connections and HTTP requests), let in-flight
//! messages finish (their ACKs are sent), let each pipeline finish its round and checkpoint,
//! and exit.

use crate::config::Config;
use aorta_log::Log;
use aorta_mllp::{MllpServer, MllpSourceConfig};
use aorta_server::{Components, MllpInfo, PipelineInfo, PipelineStatus};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

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

pub async fn run(log: Arc<dyn Log>, config: &Config) -> anyhow::Result<()> {
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
    let mut running = Vec::new();
    for source in sources {
        let server = MllpServer::bind(source.clone(), log.clone()).await?;
        eprintln!(
            "MLLP listening on {} -> topic {} (rejects -> {}), {} log",
            server.local_addr()?,
            source.topic,
            source.dead_letter_topic,
            log.backend()
        );
        let stats = server.stats();
        components.mllp.push(MllpInfo {
            listen: source.listen.clone(),
            topic: source.topic.clone(),
            dead_letter_topic: source.dead_letter_topic.clone(),
            stats: stats.clone(),
        });
        running.push((
            tokio::spawn(server.run(stopped.clone())),
            stats,
            source.listen,
        ));
    }
    let mut pipelines = Vec::new();
    for (runner, p) in super::pipeline::runners(&log, config)?
        .into_iter()
        .zip(&config.pipelines)
    {
        let status = Arc::new(Mutex::new(PipelineStatus::Running));
        components.pipelines.push(PipelineInfo {
            name: p.name.clone(),
            group: p.group(),
            from: p.from.clone(),
            dead_letter_topic: p.dead_letter_topic(),
            stats: runner.stats(),
            status: status.clone(),
        });
        let run = runner.run(stopped.clone());
        pipelines.push(tokio::spawn(async move {
            let result = run.await;
            *status.lock().unwrap_or_else(|e| e.into_inner()) = match &result {
                Ok(_) => PipelineStatus::Stopped,
                Err(e) => PipelineStatus::Failed(e.to_string()),
            };
            result
        }));
    }
    if !pipelines.is_empty() {
        eprintln!("{} pipeline(s) running", pipelines.len());
    }
    let api = if config.server.listen.is_empty() {
        None
    } else {
        let mut server_config = config.server.clone();
        server_config.alert_topics = config.alert_topics();
        let tokens = config.tokens_path();
        let state =
            aorta_server::prepare(log.clone(), server_config, tokens.clone(), components).await?;
        let mut until = stopped.clone();
        let (addr, task) = aorta_server::serve(state, async move {
            let _ = until.wait_for(|s| *s).await;
        })
        .await?;
        eprintln!(
            "API on http://{addr} (tokens: {}; /healthz is open, everything else needs `aorta token create`)",
            tokens.display()
        );
        Some(task)
    };
    signalled().await;
    eprintln!("stopping: no new connections; finishing in-flight messages and requests");
    stop.send_replace(true);
    if let Some(task) = api {
        task.await??;
    }
    for (task, stats, listen) in running {
        task.await?;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "MLLP {listen}: {} accepted, {} duplicates, {} rejected, {} failed, {} connections",
            n(&stats.accepted),
            n(&stats.duplicates),
            n(&stats.rejected),
            n(&stats.failed),
            n(&stats.connections)
        );
    }
    for (p, task) in config.pipelines.iter().zip(pipelines) {
        match task.await? {
            Ok(report) => {
                eprintln!("pipeline {}:", p.name);
                super::pipeline::print_report(&report, 0.0);
            }
            Err(e) => eprintln!("pipeline {} had stopped: {e}", p.name),
        }
    }
    Ok(())
}
