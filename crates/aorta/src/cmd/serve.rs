//! `aorta serve`: run the configured sources and pipelines against the log until SIGTERM or
//! Ctrl-C, then stop accepting, let in-flight messages finish (their ACKs are sent), let each
//! pipeline finish its round and checkpoint, and exit.

use crate::config::Config;
use aorta_log::Log;
use aorta_mllp::{MllpServer, MllpSourceConfig};
use std::sync::Arc;
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
    let sources = if config.sources.mllp.is_empty() {
        vec![MllpSourceConfig::default()]
    } else {
        config.sources.mllp.clone()
    };
    let (stop, stopped) = watch::channel(false);
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
        running.push((
            tokio::spawn(server.run(stopped.clone())),
            stats,
            source.listen,
        ));
    }
    let mut pipelines = Vec::new();
    for runner in super::pipeline::runners(&log, config)? {
        let stats = runner.stats();
        pipelines.push((tokio::spawn(runner.run(stopped.clone())), stats));
    }
    if !pipelines.is_empty() {
        eprintln!("{} pipeline(s) running", pipelines.len());
    }
    signalled().await;
    eprintln!("stopping: no new connections; finishing in-flight messages");
    stop.send_replace(true);
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
    for (p, (task, _)) in config.pipelines.iter().zip(pipelines) {
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
