//! `aorta.toml`: one documented file, every key optional with a working default, unknown keys
//! rejected with their path. Command-line flags and environment variables override it.
//!
//! ```toml
//! [log]
//! backend = "embedded"          # or "kafka"
//!
//! [log.embedded]
//! data_dir = "./aorta-data"
//! fsync = "always"              # "interval:100", "never"
//! [log.embedded.limits]
//! max_record_bytes = 8388608
//!
//! [log.kafka]
//! bootstrap = "broker1:9092,broker2:9092"
//! replication_factor = 3
//! [log.kafka.properties]        # passed to librdkafka as-is
//! "security.protocol" = "SASL_SSL"
//! "sasl.mechanism" = "SCRAM-SHA-512"
//!
//! [[sources.mllp]]               # aorta serve: HL7 v2 over MLLP
//! listen = "0.0.0.0:2575"
//! topic = "hl7.inbound"
//! dead_letter_topic = "hl7.dlq"
//!
//! [server]                       # aorta serve: HTTP API, FHIR ingest, /metrics
//! listen = "127.0.0.1:8080"      # "" turns it off
//! tokens = "./aorta-data/tokens.json"
//! [server.fhir]
//! strict = false                 # true: reject unknown FHIR elements
//!
//! [state]                        # pipeline checkpoints
//! dir = "./aorta-data/pipelines"
//!
//! [[pipelines]]                  # see docs/pipelines.md
//! name = "hr-1m"
//! from = ["vitals"]
//! steps = [
//!   { op = "filter", when = "hr > 0" },
//!   { op = "window", key = "patient_id", time = "ts", size = "1m", aggregates = { n = "count()", avg_hr = "avg(hr)" } },
//! ]
//! sinks = [{ type = "topic", topic = "vitals.hr-1m" }]
//! ```

use anyhow::Context;
use aorta_kafka::KafkaConfig;
use aorta_log::EmbeddedConfig;
use serde::Deserialize;
use std::path::Path;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where records live.
    pub log: LogConfig,
    /// What `aorta serve` listens to.
    pub sources: SourcesConfig,
    /// Stream-processing pipelines (`[[pipelines]]`), run by `aorta serve` and
    /// `aorta pipeline run`.
    pub pipelines: Vec<aorta_pipeline::PipelineConfig>,
    /// Where pipeline checkpoints live.
    pub state: StateConfig,
    /// The HTTP API of `aorta serve`.
    pub server: aorta_server::ServerConfig,
}

impl Config {
    /// The token file: `[server] tokens`, else `<data_dir>/tokens.json`.
    pub fn tokens_path(&self) -> std::path::PathBuf {
        self.server
            .tokens
            .clone()
            .unwrap_or_else(|| self.log.embedded.data_dir.join("tokens.json"))
    }

    /// Alert topics: `[server] alert_topics`, else the topic sinks of pipelines with an
    /// `early-warning` step.
    pub fn alert_topics(&self) -> Vec<String> {
        if !self.server.alert_topics.is_empty() {
            return self.server.alert_topics.clone();
        }
        let mut out = Vec::new();
        for p in &self.pipelines {
            if p.steps
                .iter()
                .any(|s| matches!(s, aorta_pipeline::config::StepConfig::EarlyWarning(_)))
            {
                for sink in &p.sinks {
                    if let aorta_pipeline::config::SinkConfig::Topic { topic, .. } = sink {
                        out.push(topic.clone());
                    }
                }
            }
        }
        out
    }
}

/// `[state]`: pipeline checkpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of the checkpoint store. Default: `<data_dir>/pipelines` on the embedded
    /// backend, `./aorta-state` on Kafka.
    pub dir: Option<std::path::PathBuf>,
    /// Kafka only: do not restore operator state from the pipelines' changelog topics;
    /// partitions without a local checkpoint start at the group's committed offsets with empty
    /// state (windows, dedupe keys, alert suppression forgotten). Default false.
    pub ignore_changelog: bool,
}

/// Ingest sources for `aorta serve`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    /// HL7 v2 over MLLP listeners (`[[sources.mllp]]`). None configured: one on
    /// 127.0.0.1:2575 into topic `hl7.inbound`.
    pub mllp: Vec<aorta_mllp::MllpSourceConfig>,
}

/// Which backend, and each backend's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `embedded` (default) or `kafka`.
    pub backend: Backend,
    /// Settings of the embedded log.
    pub embedded: EmbeddedConfig,
    /// Settings of the Kafka backend (needed when `backend = "kafka"`).
    pub kafka: Option<KafkaConfig>,
}

/// The log backends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Segment files on local disk.
    #[default]
    Embedded,
    /// A Kafka-compatible cluster.
    Kafka,
}

impl LogConfig {
    /// Opens the configured backend.
    pub async fn open(&self) -> anyhow::Result<std::sync::Arc<dyn aorta_log::Log>> {
        match self.backend {
            Backend::Embedded => {
                let dir = &self.embedded.data_dir;
                let l = aorta_log::EmbeddedLog::open(self.embedded.clone())
                    .with_context(|| format!("opening the log in {}", dir.display()))?;
                Ok(std::sync::Arc::new(l))
            }
            Backend::Kafka => {
                let Some(k) = &self.kafka else {
                    anyhow::bail!(
                        "backend = \"kafka\" needs [log.kafka] bootstrap = \"host:port\" in the config, or --kafka host:port"
                    );
                };
                Ok(std::sync::Arc::new(
                    aorta_kafka::KafkaLog::connect(k.clone()).await?,
                ))
            }
        }
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config {} is not valid", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_optional() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.log.backend, Backend::Embedded);
        assert_eq!(
            c.log.embedded.data_dir,
            std::path::PathBuf::from("./aorta-data")
        );
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start().to_string() + "\n")
            .collect();
        let c: Config = toml::from_str(&example).unwrap();
        assert_eq!(c.log.embedded.fsync, aorta_log::FsyncPolicy::Always);
        let k = c.log.kafka.unwrap();
        assert_eq!(k.replication_factor, 3);
        assert_eq!(k.properties["security.protocol"], "SASL_SSL");
        assert_eq!(c.sources.mllp[0].listen, "0.0.0.0:2575");
        assert_eq!(
            c.sources.mllp[0].max_connections, 256,
            "unset keys keep their defaults"
        );
        assert_eq!(c.pipelines[0].name, "hr-1m");
        assert_eq!(c.pipelines[0].steps.len(), 2);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let err = toml::from_str::<Config>("[log.embedded]\nfsinc = \"always\"\n").unwrap_err();
        assert!(err.to_string().contains("fsinc"), "{err}");
        let err = toml::from_str::<Config>("[log]\nbackend = \"pulsar\"\n").unwrap_err();
        assert!(err.to_string().contains("pulsar"), "{err}");
    }
}
