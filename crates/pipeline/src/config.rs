//! Pipeline declarations (`[[pipelines]]` in `aorta.toml`). Every key but `name`, `from` and
//! the steps' own required keys has a default; unknown keys are rejected with their path.
//!
//! ```toml
//! [[pipelines]]
//! name = "vitals-1m"
//! from = ["vitals"]                  # source topics
//! # group = "pipeline.vitals-1m"     # consumer group (default: pipeline.<name>)
//! # format = "json"                  # json (default) | bytes (HL7 v2 and other raw payloads)
//! # dead_letter_topic = "vitals-1m.dlq"
//! # checkpoint_interval = "1s"       # state + offsets + output positions, atomically
//!
//! [[pipelines.steps]]
//! op = "filter"
//! when = "hr > 0 && exists(patient_id)"
//!
//! [[pipelines.steps]]
//! op = "window"
//! key = "patient_id"
//! time = "ts"                        # event time (epoch ms or RFC 3339); default: record time
//! kind = "tumbling"                  # tumbling | hopping (+ advance) | session (+ gap)
//! size = "1m"
//! grace = "5s"                       # allowed lateness after the window end
//! late_topic = "vitals.late"         # late records go here (default: dropped, counted)
//! aggregates = { n = "count()", avg_hr = "avg(hr)", max_hr = "max(hr)", p90_hr = "percentile(hr, 0.9)" }
//!
//! [[pipelines.sinks]]
//! type = "topic"
//! topic = "vitals.1m"
//! ```

use crate::duration::Duration;
use crate::expr::Expr;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One pipeline: sources → steps → sinks.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Unique name; used for the consumer group, the checkpoint and output headers.
    pub name: String,
    /// Source topics (at least one).
    pub from: Vec<String>,
    /// Consumer group. Default `pipeline.<name>`.
    #[serde(default)]
    pub group: Option<String>,
    /// How record values are decoded.
    #[serde(default)]
    pub format: Format,
    /// Where events that fail an operator go, with the reason in headers. Default `<name>.dlq`.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// The operators, in order.
    #[serde(default)]
    pub steps: Vec<StepConfig>,
    /// Where events that reach the end of the steps go. Events may also leave earlier
    /// through `route` steps.
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// Largest read per partition and round. Default 1 MiB.
    #[serde(default = "default_read_bytes")]
    pub max_read_bytes: usize,
    /// Take a checkpoint at most this often (and always when the pipeline stops or its input
    /// ends). Longer means less work per record; a restart then replays more (outputs already
    /// written are still not written again). Default 1s.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: Duration,
}

fn default_checkpoint_interval() -> Duration {
    Duration(1000)
}

fn default_read_bytes() -> usize {
    1 << 20
}

impl PipelineConfig {
    /// The consumer group.
    pub fn group(&self) -> String {
        self.group
            .clone()
            .unwrap_or_else(|| format!("pipeline.{}", self.name))
    }

    /// The dead-letter topic.
    pub fn dead_letter_topic(&self) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}.dlq", self.name))
    }
}

/// How a source record's value is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON; a value that is not JSON is dead-lettered.
    #[default]
    Json,
    /// Opaque bytes (HL7 v2, text); expressions see `null` until an operator decodes them.
    Bytes,
}

/// One operator.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StepConfig {
    /// Keep events for which `when` is true.
    Filter {
        /// Condition.
        when: Expr,
    },
    /// Set fields (dotted paths) to computed values and remove others.
    Map {
        /// `path = "expression"`, applied in order of the table.
        #[serde(default)]
        set: BTreeMap<String, Expr>,
        /// Paths to remove, after `set`.
        #[serde(default)]
        remove: Vec<String>,
    },
    /// Keep only these fields (dotted paths), in this order.
    Project {
        /// Paths to keep.
        fields: Vec<String>,
    },
    /// Send events to topics by predicate; the first matching route wins.
    Route {
        /// Routes, tried in order.
        routes: Vec<RouteConfig>,
        /// Topic for events no route matches. Default: they continue to the next step.
        #[serde(default)]
        default: Option<String>,
    },
    /// Drop events whose key was seen within the window.
    Dedupe {
        /// The identity of an event.
        key: Expr,
        /// How long a key is remembered (event time).
        window: Duration,
        /// Event time; default the record timestamp.
        #[serde(default)]
        time: Option<Expr>,
        /// Bound on remembered keys; past it, the oldest are forgotten. Default 1,000,000.
        #[serde(default = "default_max_keys")]
        max_keys: usize,
    },
    /// Event-time window aggregation.
    Window(WindowConfig),
    /// Stream–table join: adds the table row whose key equals `key` under `into`.
    Enrich(EnrichConfig),
    /// Early-warning surveillance over FHIR Observations: NEWS2, qSOFA and SIRS per patient,
    /// alerts with suppression and escalation.
    EarlyWarning(EarlyWarningConfig),
    /// Convert an HL7 v2 message (bytes) into FHIR R4.
    #[serde(rename = "hl7-to-fhir")]
    Hl7ToFhir {
        /// `bundle` (one batch Bundle per message) or `resources` (one event per resource,
        /// keyed by resource id). Default `resources`.
        #[serde(default)]
        emit: FhirEmit,
        /// Offset for times without one when MSH-7 has none (`±hh:mm` or `Z`).
        #[serde(default)]
        default_offset: Option<String>,
    },
    /// One event per element of a list (e.g. the results of a lab report), with fields of
    /// the parent kept.
    Explode {
        /// The list (a path).
        path: String,
        /// Parent fields (paths) copied into each element.
        #[serde(default)]
        keep: Vec<String>,
    },
    /// Electronic lab reporting: HL7 v2 ORU^R01 bytes checked against the ELR rules
    /// (docs/clinical.md), exact resends dropped, one JSON event per accepted message.
    Elr {
        /// Bound on remembered (facility, MSH-10) ids for duplicate detection. Default
        /// 1,000,000.
        #[serde(default = "default_max_keys")]
        max_messages: usize,
    },
    /// Validate FHIR R4 resources; invalid ones are dead-lettered with the OperationOutcome.
    Validate {
        /// Unknown elements are errors (true) or warnings (false, default).
        #[serde(default)]
        strict: bool,
    },
}

fn default_max_keys() -> usize {
    1_000_000
}

/// `op = "enrich"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// The event's join key (e.g. `patient_id`), matched against the table's key as text.
    pub key: Expr,
    /// Where the rows come from.
    pub table: TableConfig,
    /// Path the matched row is written to (e.g. `patient`).
    pub into: String,
    /// Only these columns of the row (default: all).
    #[serde(default)]
    pub fields: Vec<String>,
    /// What happens to an event without a matching row. Default `keep` (a left join: `into`
    /// is not set).
    #[serde(default)]
    pub on_missing: OnMissing,
    /// Bound on the table's rows; a bigger table fails to load. Default 10,000,000.
    #[serde(default = "default_table_rows")]
    pub max_rows: usize,
}

fn default_table_rows() -> usize {
    10_000_000
}

/// `op = "early-warning"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyWarningConfig {
    /// Alert rules. Default: NEWS2 medium (level 2), qSOFA ≥ 2, SIRS ≥ 2, each suppressed 4h.
    #[serde(default = "default_rules")]
    pub rules: Vec<AlertRuleConfig>,
    /// How old a value may be and still count.
    #[serde(default)]
    pub max_age: MaxAgeConfig,
    /// `alerts` (default): one event per alert (and one per patient out of NEWS2's scope);
    /// `evaluations`: also one event per change, alerting or not.
    #[serde(default)]
    pub emit: EarlyWarningEmit,
    /// Bound on patients held per partition; past it, the least recently updated are
    /// forgotten. Default 1,000,000.
    #[serde(default = "default_max_keys")]
    pub max_patients: usize,
}

/// One alert rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleConfig {
    /// `news2`, `qsofa` or `sirs`.
    pub score: aorta_clinical::surveillance::ScoreKind,
    /// Alert at this level or above: NEWS2 1 low–medium, 2 medium, 3 high; qSOFA/SIRS points.
    pub level: u8,
    /// No new alert at the same or a lower level within this window. Default 4h.
    #[serde(default = "default_suppress")]
    pub suppress: Duration,
}

fn default_suppress() -> Duration {
    Duration(4 * 3_600_000)
}

fn default_rules() -> Vec<AlertRuleConfig> {
    aorta_clinical::surveillance::AlertRule::defaults()
        .into_iter()
        .map(|r| AlertRuleConfig {
            score: r.score,
            level: r.level,
            suppress: Duration(r.suppress_ms),
        })
        .collect()
}

/// Maximum ages of values.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxAgeConfig {
    /// Vital signs. Default 4h.
    #[serde(default = "default_vitals_age")]
    pub vitals: Duration,
    /// Consciousness, GCS, oxygen. Default 12h.
    #[serde(default = "default_neuro_age")]
    pub neuro: Duration,
    /// Laboratory values. Default 24h.
    #[serde(default = "default_labs_age")]
    pub labs: Duration,
}

fn default_vitals_age() -> Duration {
    Duration(4 * 3_600_000)
}
fn default_neuro_age() -> Duration {
    Duration(12 * 3_600_000)
}
fn default_labs_age() -> Duration {
    Duration(24 * 3_600_000)
}

impl Default for MaxAgeConfig {
    fn default() -> Self {
        MaxAgeConfig {
            vitals: default_vitals_age(),
            neuro: default_neuro_age(),
            labs: default_labs_age(),
        }
    }
}

/// What `early-warning` emits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EarlyWarningEmit {
    /// Alerts only.
    #[default]
    Alerts,
    /// Every evaluation, plus alerts.
    Evaluations,
}

/// An `enrich` table's source.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum TableConfig {
    /// The latest JSON value per record key of a (compacted) topic; empty/null values delete.
    Topic {
        /// Topic name.
        topic: String,
    },
    /// A CSV file with a header row.
    Csv {
        /// File path.
        path: PathBuf,
        /// Key column.
        key: String,
        /// Field delimiter. Default `,`.
        #[serde(default = "default_delimiter")]
        delimiter: char,
        /// How often the file is checked for changes. Default 1m.
        #[serde(default = "default_refresh")]
        refresh: Duration,
    },
    /// The rows of a PostgreSQL query.
    Postgres {
        /// libpq-style connection string.
        url: String,
        /// A SELECT; each row becomes a JSON object.
        query: String,
        /// Key column.
        key: String,
        /// How often the query runs again. Default 1m.
        #[serde(default = "default_refresh")]
        refresh: Duration,
    },
}

fn default_delimiter() -> char {
    ','
}

fn default_refresh() -> Duration {
    Duration(60_000)
}

/// What `enrich` does with an event whose key has no row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnMissing {
    /// Pass it on without the row.
    #[default]
    Keep,
    /// Drop it (an inner join); counted.
    Drop,
    /// Send it to the dead-letter topic.
    DeadLetter,
}

/// One `route` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Condition.
    pub when: Expr,
    /// Destination topic.
    pub to: String,
}

/// What `hl7-to-fhir` emits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FhirEmit {
    /// One event per resource.
    #[default]
    Resources,
    /// One Bundle per message.
    Bundle,
}

/// Window kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size`, aligned to the epoch.
    #[default]
    Tumbling,
    /// Windows of `size` starting every `advance`.
    Hopping,
    /// Per key, events less than `gap` apart.
    Session,
}

/// `op = "window"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Group events by this (e.g. `patient_id`).
    pub key: Expr,
    /// Event time (epoch ms number, or RFC 3339 string). Default: the record timestamp.
    #[serde(default)]
    pub time: Option<Expr>,
    /// Kind of window.
    #[serde(default)]
    pub kind: WindowKind,
    /// Window length (tumbling, hopping).
    #[serde(default)]
    pub size: Option<Duration>,
    /// Hop (hopping windows).
    #[serde(default)]
    pub advance: Option<Duration>,
    /// Inactivity gap (session windows).
    #[serde(default)]
    pub gap: Option<Duration>,
    /// Allowed lateness: a window closes once stream time passes its end by this much.
    #[serde(default)]
    pub grace: Duration,
    /// Topic for records that arrive after all their windows closed. Default: dropped (counted).
    #[serde(default)]
    pub late_topic: Option<String>,
    /// `output_field = "fn(expression)"`: count(), count(x), sum, avg, min, max, first, last,
    /// count_distinct, percentile(x, q) with q in [0, 1].
    pub aggregates: BTreeMap<String, String>,
    /// Bound on open windows per partition. Default 1,000,000.
    #[serde(default = "default_max_keys")]
    pub max_open_windows: usize,
}

/// One sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// Append to a topic (created with `partitions` if missing).
    Topic {
        /// Topic name.
        topic: String,
        /// Record key; default the event's key.
        #[serde(default)]
        key: Option<Expr>,
        /// Partitions if the topic must be created. Default 1.
        #[serde(default = "one")]
        partitions: u32,
    },
    /// JSON lines in a file, rotated by size.
    File {
        /// File path; rotated files get `.1`, `.2`, … appended.
        path: PathBuf,
        /// Rotate once the file reaches this size. Default 256 MiB.
        #[serde(default = "default_rotate")]
        max_bytes: u64,
    },
    /// Columnar part files (Parquet) in a directory.
    Parquet(ParquetSinkConfig),
    /// Upsert into a PostgreSQL table.
    Postgres(PostgresSinkConfig),
    /// POST to an HTTP endpoint, retrying; dead-letter after `max_attempts`.
    Webhook(WebhookSinkConfig),
}

/// `type = "webhook"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    /// `http://` or `https://` endpoint; each request is a POST of `application/json`.
    pub url: String,
    /// Events per request: 1 (default) sends the event's JSON; more sends a JSON array.
    #[serde(default = "one_usize")]
    pub batch_size: usize,
    /// Requests in flight at once. Default 4 (1 keeps requests in order).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts per request before its events go to the dead-letter topic. Default 5.
    #[serde(default = "default_webhook_attempts")]
    pub max_attempts: u32,
    /// First retry delay, doubling each attempt. Default 200ms.
    #[serde(default = "default_backoff")]
    pub backoff: Duration,
    /// Longest retry delay (also caps a server's `Retry-After`). Default 10s.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// Per-request timeout (connect included). Default 10s.
    #[serde(default = "default_max_backoff")]
    pub timeout: Duration,
    /// Extra request headers (`{ "X-Source" = "aorta" }`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers whose values are secrets, read from environment variables when the pipeline
    /// starts (`{ Authorization = "ALERTS_WEBHOOK_AUTH" }`); never logged.
    #[serde(default)]
    pub headers_from_env: BTreeMap<String, String>,
}

fn one_usize() -> usize {
    1
}

fn default_concurrency() -> usize {
    4
}

fn default_webhook_attempts() -> u32 {
    5
}

fn default_backoff() -> Duration {
    Duration(200)
}

fn default_max_backoff() -> Duration {
    Duration(10_000)
}

fn one() -> u32 {
    1
}

fn default_rotate() -> u64 {
    256 << 20
}

/// `type = "parquet"`.
///
/// ```toml
/// [[pipelines.sinks]]
/// type = "parquet"
/// dir = "out/vitals-1m"            # part-000000.parquet, part-000001.parquet, …
/// columns = { patient_id = "string", window_start = "timestamp", n = "int64", avg_hr = "double" }
/// # max_rows = 1000000             # rows per part file
/// # max_bytes = 268435456          # or staged bytes per part
/// # max_age = "5m"                 # or age of the part's first row (default: none)
/// # row_group_rows = 131072
/// # compression = "snappy"         # snappy | none
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// Directory of the part files (created if missing).
    pub dir: PathBuf,
    /// Column name → type, in file order; each is filled from the event's field of that name
    /// (missing or null → null).
    pub columns: ParquetColumns,
    /// Rows per part file. Default 1,000,000.
    #[serde(default = "default_parquet_rows")]
    pub max_rows: u64,
    /// Close a part once its staged rows reach this many bytes. Default 256 MiB.
    #[serde(default = "default_rotate")]
    pub max_bytes: u64,
    /// Close a part once its first row is this old (wall clock). Default: never.
    #[serde(default)]
    pub max_age: Option<Duration>,
    /// Rows per row group inside a part. Default 131,072.
    #[serde(default = "default_row_group")]
    pub row_group_rows: usize,
    /// Page compression. Default snappy.
    #[serde(default)]
    pub compression: ParquetCompression,
}

/// A Parquet column's type.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParquetType {
    /// UTF-8 text (numbers and booleans are written as their JSON text).
    String,
    /// 64-bit integer (an integral double is accepted).
    Int64,
    /// 64-bit float.
    Double,
    /// Boolean.
    Bool,
    /// Instant in UTC, milliseconds; from epoch milliseconds or an RFC 3339 date-time.
    Timestamp,
    /// Any JSON value, as JSON text (Parquet's JSON logical type).
    Json,
}

/// Page compression of a Parquet sink.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCompression {
    /// Snappy (the common default of Parquet writers).
    #[default]
    Snappy,
    /// Uncompressed.
    None,
}

/// The columns of a Parquet sink, in the order written in the config.
#[derive(Clone, Debug)]
pub struct ParquetColumns(pub Vec<(String, ParquetType)>);

impl<'de> Deserialize<'de> for ParquetColumns {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Columns;
        impl<'de> serde::de::Visitor<'de> for Columns {
            type Value = ParquetColumns;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a table of column = type (string, int64, double, bool, timestamp, json)",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ParquetColumns, A::Error> {
                let mut out: Vec<(String, ParquetType)> = Vec::new();
                while let Some((name, kind)) = map.next_entry::<String, ParquetType>()? {
                    if name.is_empty() || out.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!(
                            "column {name:?} is empty or named twice"
                        )));
                    }
                    out.push((name, kind));
                }
                if out.is_empty() {
                    return Err(serde::de::Error::custom("no columns"));
                }
                Ok(ParquetColumns(out))
            }
        }
        d.deserialize_map(Columns)
    }
}

fn default_parquet_rows() -> u64 {
    1_000_000
}

fn default_row_group() -> usize {
    128 << 10
}

/// `type = "postgres"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    /// libpq-style connection string, e.g. `host=127.0.0.1 user=postgres dbname=test`.
    pub url: String,
    /// Table name (optionally `schema.table`).
    pub table: String,
    /// Column name → SQL type, filled from the event's field of the same name.
    pub columns: BTreeMap<String, String>,
    /// Primary-key columns: rows are upserted by these, so a replay writes each row once.
    pub key: Vec<String>,
    /// Create the table if it does not exist. Default false.
    #[serde(default)]
    pub create_table: bool,
    /// Attempts per batch before the pipeline stops with the error. Default 8.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    8
}

/// Why a config could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where in the document (`pipelines[0].steps[1].when`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Parses `[[pipelines]]` from a TOML document, naming the path of any mistake.
pub fn parse_pipelines(toml_text: &str) -> Result<Vec<PipelineConfig>, ConfigError> {
    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        pipelines: Vec<PipelineConfig>,
    }
    let de = toml::Deserializer::parse(toml_text).map_err(|e| ConfigError {
        path: String::from("(document)"),
        message: e.to_string(),
    })?;
    let doc: Doc = serde_path_to_error::deserialize(de).map_err(|e| ConfigError {
        path: e.path().to_string(),
        message: e.into_inner().message().to_string(),
    })?;
    Ok(doc.pipelines)
}
