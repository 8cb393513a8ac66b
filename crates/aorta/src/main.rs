//! `aorta`: the binary edge. Parses the command line, sets up logging, opens the log backend
//! and hands off to one module per command. Business logic lives in the library crates; errors
//! become `anyhow` only here.

mod cmd;
mod config;
mod redact;

/// mimalloc: small, short-lived allocations (JSON fields, events) dominate the pipeline's hot
/// path, where it is markedly faster than the system allocator (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use aorta_kafka::KafkaConfig;
use aorta_log::{FsyncPolicy, Log};
use clap::{Parser, Subcommand, ValueEnum};
use config::{Backend, Config};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Aorta: the event hub for healthcare data. Durable topics on local disk by default.
#[derive(Parser, Debug)]
#[command(name = "aorta", version, about, propagate_version = true)]
pub struct Cli {
    /// Config file (TOML); flags and environment variables override it.
    #[arg(long, global = true, env = "AORTA_CONFIG")]
    config: Option<PathBuf>,
    /// Where the embedded log keeps its data [default: ./aorta-data].
    #[arg(long, global = true, env = "AORTA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// When appends reach disk: always (default; ack after fdatasync), interval:<ms>, never.
    #[arg(long, global = true, env = "AORTA_FSYNC")]
    fsync: Option<FsyncPolicy>,
    /// Use a Kafka cluster instead of the embedded log: bootstrap servers host:port[,host:port].
    #[arg(long, global = true, env = "AORTA_KAFKA", value_name = "BOOTSTRAP")]
    kafka: Option<String>,
    /// librdkafka property KEY=VALUE for the Kafka backend (security.protocol, sasl.*, ssl.*); repeatable.
    #[arg(long = "kafka-property", global = true, value_name = "KEY=VALUE")]
    kafka_properties: Vec<String>,
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
    /// Run the configured sources (HL7 v2 over MLLP), pipelines and the HTTP API (FHIR ingest,
    /// metrics) until SIGTERM/Ctrl-C.
    Serve,
    /// Create, list and revoke API bearer tokens.
    Token {
        #[command(subcommand)]
        action: cmd::token::TokenCmd,
    },
    /// Check the audit trail.
    Audit {
        #[command(subcommand)]
        action: cmd::audit::AuditCmd,
    },
    /// Inspect HL7 v2 files (parse, validate, convert to FHIR) and send them over MLLP.
    Hl7 {
        #[command(subcommand)]
        action: cmd::hl7::Hl7Cmd,
    },
    /// Validate FHIR R4 JSON resources.
    Fhir {
        #[command(subcommand)]
        action: cmd::fhir::FhirCmd,
    },
    /// Check and run the stream-processing pipelines of the config.
    Pipeline {
        #[command(subcommand)]
        action: cmd::pipeline::PipelineCmd,
    },
    /// Compute NEWS2, qSOFA or SIRS for JSON lines of observations (one explained result per line).
    Score(cmd::score::ScoreArgs),
    /// Evaluate the clinical pipelines on public data (PhysioNet 2019 sepsis stays).
    Eval {
        #[command(subcommand)]
        what: cmd::eval::EvalCmd,
    },
    /// Reprocess a pipeline's history (from an offset or a time) into a new topic.
    Replay(cmd::pipeline::ReplayArgs),
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
    // Every line passes the PHI redaction (src/redact.rs); colours off so that the text
    // format's field names stay readable to it.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(|| redact::Redacting::new(std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The log settings after merging flags, environment and the config file.
struct Resolved {
    config: Config,
}

impl Resolved {
    fn new(cli: &Cli) -> anyhow::Result<Resolved> {
        let mut config = match &cli.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        if let Some(d) = &cli.data_dir {
            config.log.embedded.data_dir = d.clone();
        }
        if let Some(f) = cli.fsync {
            config.log.embedded.fsync = f;
        }
        if let Some(b) = &cli.kafka {
            let k = config.log.kafka.get_or_insert_with(KafkaConfig::default);
            k.bootstrap = b.clone();
            config.log.backend = Backend::Kafka;
        }
        for p in &cli.kafka_properties {
            let Some((k, v)) = p.split_once('=') else {
                anyhow::bail!("--kafka-property {p:?} must look like KEY=VALUE");
            };
            let kafka = config.log.kafka.get_or_insert_with(KafkaConfig::default);
            kafka.properties.insert(k.to_string(), v.to_string());
        }
        Ok(Resolved { config })
    }

    fn data_dir(&self) -> &std::path::Path {
        &self.config.log.embedded.data_dir
    }

    /// Opens the configured backend.
    async fn open(&self) -> anyhow::Result<Arc<dyn Log>> {
        self.config.log.open().await
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let resolved = Resolved::new(&cli)?;
    match cli.command {
        Command::Topics { action } => {
            cmd::topics::run(resolved.open().await?.as_ref(), action).await
        }
        Command::Produce(args) => cmd::produce::run(resolved.open().await?.as_ref(), args).await,
        Command::Consume(args) => cmd::consume::run(resolved.open().await?.as_ref(), args).await,
        Command::Hl7 { action } => cmd::hl7::run(action).await,
        Command::Fhir { action } => cmd::fhir::run(action),
        Command::Score(args) => cmd::score::run(args),
        Command::Eval { what } => cmd::eval::run(what).await,
        Command::Serve => cmd::serve::run(resolved.open().await?, &resolved.config).await,
        Command::Token { action } => cmd::token::run(&resolved.config.tokens_path(), action),
        Command::Audit { action } => {
            let topic = resolved.config.server.audit_topic.clone();
            cmd::audit::run(resolved.open().await?.as_ref(), &topic, action).await
        }
        Command::Pipeline { action } => match action {
            // A check needs no log.
            cmd::pipeline::PipelineCmd::Check => cmd::pipeline::check(&resolved.config),
            cmd::pipeline::PipelineCmd::Run(args) => {
                cmd::pipeline::run(resolved.open().await?, &resolved.config, args).await
            }
        },
        Command::Replay(args) => {
            cmd::pipeline::replay(resolved.open().await?, &resolved.config, args).await
        }
        Command::Demo(args) => cmd::demo::run(resolved.config, args).await,
        Command::Bench { what } => {
            cmd::bench::run(what, resolved.data_dir(), resolved.config.log.kafka.clone()).await
        }
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
