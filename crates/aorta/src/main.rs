//! `aorta`: the binary edge. Parses the command line, sets up logging, opens the log backend
//! and hands off to one module per command. Business logic lives in the library crates; errors
//! become `anyhow` only here.

mod cmd;

use anyhow::Context;
use aorta_log::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Aorta: the event hub for healthcare data. Durable topics on local disk by default.
#[derive(Parser, Debug)]
#[command(name = "aorta", version, about, propagate_version = true)]
pub struct Cli {
    /// Where the embedded log keeps its data.
    #[arg(
        long,
        global = true,
        env = "AORTA_DATA_DIR",
        default_value = "./aorta-data"
    )]
    data_dir: PathBuf,
    /// When appends reach disk: always (default; ack after fdatasync), interval:<ms>, never.
    #[arg(long, global = true, env = "AORTA_FSYNC", default_value = "always")]
    fsync: FsyncPolicy,
    /// Format of diagnostic logs on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, list, describe and delete topics.
    Topics {
        #[command(subcommand)]
        action: cmd::topics::TopicsCmd,
    },
    /// Append records from stdin or files (one record per line, or per file).
    Produce(cmd::produce::ProduceArgs),
    /// Print records of a topic as text or JSON lines.
    Consume(cmd::consume::ConsumeArgs),
    /// Run Aorta's main job on the embedded log (for now: an HL7 round trip; see README).
    Demo(cmd::demo::DemoArgs),
    /// Benchmarks that print ratios against a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        what: cmd::bench::BenchCmd,
    },
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AORTA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Opens the log the command line points at.
pub fn open_log(cli_data_dir: &std::path::Path, fsync: FsyncPolicy) -> anyhow::Result<EmbeddedLog> {
    let config = EmbeddedConfig {
        fsync,
        ..EmbeddedConfig::new(cli_data_dir)
    };
    EmbeddedLog::open(config)
        .with_context(|| format!("opening the log in {}", cli_data_dir.display()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Topics { action } => {
            let log = open_log(&cli.data_dir, cli.fsync)?;
            cmd::topics::run(&log, action).await
        }
        Command::Produce(args) => {
            let log = open_log(&cli.data_dir, cli.fsync)?;
            cmd::produce::run(&log, args).await
        }
        Command::Consume(args) => {
            let log = open_log(&cli.data_dir, cli.fsync)?;
            cmd::consume::run(&log, args).await
        }
        Command::Demo(args) => {
            let log = open_log(&cli.data_dir, cli.fsync)?;
            cmd::demo::run(&log, args).await
        }
        Command::Bench { what } => cmd::bench::run(what, &cli.data_dir).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
