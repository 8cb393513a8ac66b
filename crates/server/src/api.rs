//! The JSON API handlers. Each one's route and policy is in [`crate::routes::ROUTES`].

use crate::audit::{self, Action};
use crate::auth::{Principal, Role};
use crate::metrics::Exposition;
use crate::{AppState, PipelineStatus};
use aorta_log::{ConsumedRecord, Log, LogError, ReadOptions, Record, TopicPartition};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The header in which a caller states why it reads patient data; it lands in the audit entry.
pub const PURPOSE_HEADER: &str = "aorta-purpose";

/// A JSON error (or, under `/fhir`, an OperationOutcome).
pub fn error_response(status: StatusCode, message: &str, fhir: bool) -> Response {
    if fhir {
        let mut o = aorta_fhir::OperationOutcome::default();
        let kind = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => aorta_fhir::IssueType::Invalid,
            StatusCode::PAYLOAD_TOO_LARGE => aorta_fhir::IssueType::TooCostly,
            StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::NOT_FOUND => {
                aorta_fhir::IssueType::NotSupported
            }
            _ => aorta_fhir::IssueType::Invalid,
        };
        o.push(aorta_fhir::Severity::Error, kind, "", message.to_string());
        return crate::fhir::outcome_response(status, &o);
    }
    (status, Json(json!({"error": message}))).into_response()
}

/// An API failure with its status.
pub struct ApiError(StatusCode, String);

impl ApiError {
    /// An error with this status.
    pub fn status(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError(status, msg.into())
    }

    fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.0, &self.1, false)
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        let status = match e {
            LogError::UnknownTopic { .. }
            | LogError::UnknownPartition { .. }
            | LogError::OffsetOutOfRange { .. } => StatusCode::NOT_FOUND,
            LogError::InvalidTopicName { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

impl From<audit::AuditError> for ApiError {
    fn from(e: audit::AuditError) -> Self {
        tracing::error!(error = %e, "audit trail unavailable: refusing the request");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the audit trail cannot be written, so the request is refused: {e}"),
        )
    }
}

type ApiResult = Result<Response, ApiError>;

fn purpose(headers: &HeaderMap) -> Option<String> {
    headers
        .get(PURPOSE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect())
}

/// Writes one audit entry (durably) for `who`; fails the request when the trail is down.
pub async fn audit_action(
    state: &AppState,
    who: &Principal,
    action: &str,
    target: String,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    state
        .audit
        .record(Action {
            principal: who,
            action,
            target,
            purpose: purpose(headers),
        })
        .await?;
    state.audited.add(&[action], 1);
    Ok(())
}

/// `GET /healthz`.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Unknown paths.
pub async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "no such route: see /api/openapi.json",
        false,
    )
}

/// `GET /readyz`.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    match tokio::time::timeout(Duration::from_secs(2), state.log.list_topics()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => problems.push(format!("log ({}): {e}", state.log.backend())),
        Err(_) => problems.push(format!(
            "log ({}): no answer within 2 s",
            state.log.backend()
        )),
    }
    for p in &state.components.pipelines {
        if let PipelineStatus::Failed(why) = &*p.status.lock().unwrap_or_else(|e| e.into_inner()) {
            problems.push(format!("pipeline {}: {why}", p.name));
        }
        for (sink, why) in sinks_down(p) {
            problems.push(format!(
                "pipeline {} sink {sink}: down, retrying: {why}",
                p.name
            ));
        }
    }
    if problems.is_empty() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "problems": problems})),
        )
            .into_response()
    }
}

/// `GET /api/openapi.json`.
pub async fn openapi() -> Response {
    Json(crate::routes::openapi()).into_response()
}

async fn lag(log: &dyn Log, group: &str, topic: &str, partition: u32, hw: u64, start: u64) -> u64 {
    let tp = TopicPartition {
        topic: topic.to_string(),
        partition,
    };
    match log.committed(group, &tp).await {
        Ok(Some(c)) => hw.saturating_sub(c),
        _ => hw.saturating_sub(start),
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut x = Exposition::default();
    x.gauge("aorta_up", "1 while the process serves.", &[], 1.0);
    x.gauge(
        "aorta_uptime_seconds",
        "Seconds since the server started.",
        &[],
        state.started.elapsed().as_secs_f64(),
    );
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    for m in &state.components.mllp {
        let l = [("listener", m.listen.as_str())];
        x.counter(
            "aorta_mllp_connections_total",
            "MLLP connections accepted.",
            &l,
            n(&m.stats.connections),
        );
        for (outcome, v) in [
            ("accepted", &m.stats.accepted),
            ("duplicate", &m.stats.duplicates),
            ("rejected", &m.stats.rejected),
            ("failed", &m.stats.failed),
        ] {
            x.counter(
                "aorta_mllp_messages_total",
                "HL7 v2 messages received over MLLP, by outcome (accepted = durable and ACKed AA).",
                &[("listener", m.listen.as_str()), ("outcome", outcome)],
                n(v),
            );
        }
        x.histogram(
            "aorta_mllp_ack_latency_seconds",
            "From a complete MLLP frame received to its ACK written (append and fsync included).",
            &l,
            &m.stats.ack_latency.snapshot(),
        );
    }
    for p in &state.components.pipelines {
        let l = [("pipeline", p.name.as_str())];
        let s = &p.stats;
        for (name, help, v) in [
            (
                "aorta_pipeline_records_in_total",
                "Records a pipeline read.",
                &s.input,
            ),
            (
                "aorta_pipeline_records_out_total",
                "Records a pipeline wrote to sinks and topics.",
                &s.output,
            ),
            (
                "aorta_pipeline_dead_lettered_total",
                "Records a pipeline dead-lettered.",
                &s.dead_lettered,
            ),
            (
                "aorta_pipeline_suppressed_total",
                "Outputs not written again after a restart.",
                &s.suppressed,
            ),
            (
                "aorta_pipeline_checkpoints_total",
                "Checkpoints taken.",
                &s.checkpoints,
            ),
        ] {
            x.counter(name, help, &l, n(v));
        }
        let steps = s.steps.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (i, (kind, c)) in steps.iter().enumerate() {
            let step = i.to_string();
            for (what, v) in [
                ("in", c.input),
                ("out", c.output),
                ("dropped", c.dropped),
                ("errors", c.errors),
            ] {
                x.counter(
                    "aorta_operator_records_total",
                    "Events per pipeline step: in, out, dropped on purpose, dead-lettered (errors).",
                    &[
                        ("pipeline", p.name.as_str()),
                        ("step", step.as_str()),
                        ("op", kind.as_str()),
                        ("kind", what),
                    ],
                    v,
                );
            }
        }
        let up = matches!(
            *p.status.lock().unwrap_or_else(|e| e.into_inner()),
            PipelineStatus::Running
        );
        x.gauge(
            "aorta_pipeline_running",
            "1 while the pipeline runs.",
            &l,
            if up { 1.0 } else { 0.0 },
        );
        for topic in &p.from {
            if let Ok(d) = state.log.describe_topic(topic).await {
                for part in &d.partitions {
                    let lag = lag(
                        &*state.log,
                        &p.group,
                        topic,
                        part.partition,
                        part.high_watermark,
                        part.log_start,
                    )
                    .await;
                    x.gauge(
                        "aorta_consumer_lag_records",
                        "Records between a group's committed offset and the partition's end.",
                        &[
                            ("group", p.group.as_str()),
                            ("topic", topic.as_str()),
                            ("partition", &part.partition.to_string()),
                        ],
                        lag as f64,
                    );
                }
            }
        }
    }
    if let Ok(topics) = state.log.list_topics().await {
        for t in &topics {
            for p in &t.partitions {
                let part = p.partition.to_string();
                let l = [("topic", t.name.as_str()), ("partition", part.as_str())];
                x.gauge(
                    "aorta_topic_high_watermark",
                    "Next offset to be written.",
                    &l,
                    p.high_watermark as f64,
                );
                x.gauge(
                    "aorta_topic_size_bytes",
                    "Bytes on disk (0 where the backend cannot tell).",
                    &l,
                    p.size_bytes as f64,
                );
            }
            if state.config.alert_topics.contains(&t.name) {
                let total: u64 = t
                    .partitions
                    .iter()
                    .map(|p| p.high_watermark - p.log_start)
                    .sum();
                x.gauge(
                    "aorta_alert_records",
                    "Records on an alert topic (alerts and evaluations).",
                    &[("topic", t.name.as_str())],
                    total as f64,
                );
            }
        }
    }
    if let Some(lm) = &state.components.log_metrics {
        let l = [("backend", state.log.backend())];
        x.histogram(
            "aorta_log_append_duration_seconds",
            "Durable appends, until fsynced (embedded) or acknowledged (Kafka).",
            &l,
            &lm.append.snapshot(),
        );
        x.histogram(
            "aorta_log_read_duration_seconds",
            "Log reads that did not wait for new records.",
            &l,
            &lm.read.snapshot(),
        );
        x.counter(
            "aorta_log_append_errors_total",
            "Appends that failed.",
            &l,
            n(&lm.append_errors),
        );
        x.counter(
            "aorta_log_read_errors_total",
            "Reads that failed.",
            &l,
            n(&lm.read_errors),
        );
    }
    state.fhir_ingest.render(
        &mut x,
        "aorta_fhir_ingest_total",
        "FHIR resources received over REST, by type and outcome.",
        &["resource_type", "outcome"],
    );
    state.audited.render(
        &mut x,
        "aorta_audit_entries_total",
        "Audit entries written by this process, by action.",
        &["action"],
    );
    state.http.render(&mut x);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        x.finish(),
    )
        .into_response()
}

/// `GET /api/topics`.
pub async fn topics(State(state): State<AppState>) -> ApiResult {
    let topics = state.log.list_topics().await?;
    Ok(Json(json!({"backend": state.log.backend(), "topics": topics})).into_response())
}

/// `?group=` (repeatable as a comma list).
#[derive(Deserialize)]
pub struct TopicQuery {
    group: Option<String>,
}

/// `GET /api/topics/{topic}`.
pub async fn topic(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<TopicQuery>,
) -> ApiResult {
    let d = state.log.describe_topic(&name).await?;
    let mut groups: Vec<String> = state
        .components
        .pipelines
        .iter()
        .filter(|p| p.from.contains(&name))
        .map(|p| p.group.clone())
        .collect();
    groups.extend(
        q.group
            .iter()
            .flat_map(|g| g.split(',').map(str::to_string)),
    );
    groups.sort();
    groups.dedup();
    let mut lags = serde_json::Map::new();
    for g in &groups {
        let mut per = Vec::new();
        for p in &d.partitions {
            let tp = TopicPartition {
                topic: name.clone(),
                partition: p.partition,
            };
            let committed = state.log.committed(g, &tp).await?;
            per.push(json!({
                "partition": p.partition,
                "committed": committed,
                "lag": lag(&*state.log, g, &name, p.partition, p.high_watermark, p.log_start).await,
            }));
        }
        lags.insert(g.clone(), Value::Array(per));
    }
    Ok(Json(json!({"topic": d, "groups": lags})).into_response())
}

/// `?partition=&from=&limit=`.
#[derive(Deserialize)]
pub struct RangeQuery {
    partition: Option<u32>,
    from: Option<u64>,
    limit: Option<usize>,
}

/// Reads up to `limit` records of one partition from `from` (default: the newest `limit`).
async fn read_range(
    state: &AppState,
    topic: &str,
    q: &RangeQuery,
) -> Result<(u32, u64, Vec<ConsumedRecord>, u64), ApiError> {
    let partition = q.partition.unwrap_or(0);
    let limit = q
        .limit
        .unwrap_or(50)
        .clamp(1, state.config.max_read_records);
    let offsets = state.log.offsets(topic, partition).await?;
    let from = q
        .from
        .unwrap_or_else(|| offsets.high_watermark.saturating_sub(limit as u64))
        .max(offsets.log_start);
    let mut out = Vec::new();
    let mut at = from;
    while out.len() < limit && at < offsets.high_watermark {
        let batch = state
            .log
            .read(topic, partition, at, ReadOptions::default())
            .await?;
        if batch.records.is_empty() {
            break;
        }
        at = batch.next_offset(at);
        out.extend(batch.records.into_iter().take(limit - out.len()));
    }
    Ok((partition, from, out, offsets.high_watermark))
}

fn header_json(r: &Record) -> Value {
    Value::Array(
        r.headers
            .iter()
            .map(|h| json!([h.0, String::from_utf8_lossy(&h.1)]))
            .collect(),
    )
}

fn record_json(c: &ConsumedRecord, with_body: bool) -> Value {
    let r = &c.record;
    let mut v = json!({
        "offset": c.offset,
        "timestamp_ms": r.timestamp_ms,
        "headers": header_json(r),
        "value_bytes": r.value.len(),
    });
    if with_body {
        v["key"] = r.key.as_ref().map_or(Value::Null, |k| {
            Value::String(String::from_utf8_lossy(k).into())
        });
        match std::str::from_utf8(&r.value) {
            Ok(s) => v["value"] = Value::String(s.to_string()),
            Err(_) => {
                v["value_base64"] =
                    Value::String(base64::engine::general_purpose::STANDARD.encode(&r.value))
            }
        }
    }
    v
}

fn range_target(topic: &str, partition: u32, records: &[ConsumedRecord]) -> String {
    match (records.first(), records.last()) {
        (Some(a), Some(b)) => format!("{topic}/{partition}/{}..{}", a.offset, b.offset),
        _ => format!("{topic}/{partition}/(none)"),
    }
}

/// `GET /api/topics/{topic}/records`.
pub async fn records(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(topic): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult {
    let (partition, from, recs, hw) = read_range(&state, &topic, &q).await?;
    audit_action(
        &state,
        &who,
        "read-records",
        range_target(&topic, partition, &recs),
        &headers,
    )
    .await?;
    let next = recs.last().map_or(from, |r| r.offset + 1);
    Ok(Json(json!({
        "topic": topic, "partition": partition, "from": from, "next": next, "high_watermark": hw,
        "records": recs.iter().map(|r| record_json(r, true)).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /api/pipelines`.
pub async fn pipelines(State(state): State<AppState>) -> ApiResult {
    let up = state.started.elapsed().as_secs_f64().max(1e-3);
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut out = Vec::new();
    for p in &state.components.pipelines {
        let mut total_lag = 0;
        for t in &p.from {
            if let Ok(d) = state.log.describe_topic(t).await {
                for part in &d.partitions {
                    total_lag += lag(
                        &*state.log,
                        &p.group,
                        t,
                        part.partition,
                        part.high_watermark,
                        part.log_start,
                    )
                    .await;
                }
            }
        }
        let status = p.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let down: Vec<Value> = sinks_down(p)
            .into_iter()
            .map(|(sink, why)| json!({"sink": sink, "error": why}))
            .collect();
        out.push(json!({
            "sinks_down": down,
            "restarts": n(&p.control.restarts),
            "name": p.name, "group": p.group, "from": p.from, "dead_letter_topic": p.dead_letter_topic,
            "status": status,
            "input": n(&p.stats.input), "output": n(&p.stats.output),
            "dead_lettered": n(&p.stats.dead_lettered), "suppressed": n(&p.stats.suppressed),
            "checkpoints": n(&p.stats.checkpoints),
            "input_per_s": n(&p.stats.input) as f64 / up,
            "lag": total_lag,
        }));
    }
    Ok(Json(json!({"pipelines": out})).into_response())
}

/// The sinks of `p` whose destination is down: (description, last error).
fn sinks_down(p: &crate::PipelineInfo) -> Vec<(String, String)> {
    let m = p.stats.sinks_down.lock().unwrap_or_else(|e| e.into_inner());
    m.values().cloned().collect()
}

/// `POST /api/pipelines/{name}/restart`.
pub async fn restart_pipeline(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    let Some(p) = state.components.pipelines.iter().find(|p| p.name == name) else {
        let known: Vec<&str> = state
            .components
            .pipelines
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no pipeline {name:?}; this server runs {known:?}"),
        ));
    };
    let status = p.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if status == PipelineStatus::Stopped {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("pipeline {name:?} is stopped (the server is shutting down)"),
        ));
    }
    audit_action(&state, &who, "restart-pipeline", name.clone(), &headers).await?;
    p.control.restart.notify_one();
    tracing::info!(pipeline = %name, by = %who.id, "pipeline restart requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"pipeline": name, "restart": "requested", "was": status})),
    )
        .into_response())
}

/// `GET /api/dead-letters/{topic}`: reasons for everyone admitted, bodies for admin only.
pub async fn dead_letters(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(topic): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult {
    let (partition, from, recs, hw) = read_range(&state, &topic, &q).await?;
    let bodies = who.role == Role::Admin;
    if bodies {
        audit_action(
            &state,
            &who,
            "read-dead-letters",
            range_target(&topic, partition, &recs),
            &headers,
        )
        .await?;
    }
    let next = recs.last().map_or(from, |r| r.offset + 1);
    Ok(Json(json!({
        "topic": topic, "partition": partition, "from": from, "next": next, "high_watermark": hw,
        "bodies": bodies,
        "records": recs.iter().map(|r| record_json(r, bodies)).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// The record at one offset, or 404 naming the partition's range.
pub async fn read_one(
    state: &AppState,
    topic: &str,
    partition: u32,
    offset: u64,
) -> Result<ConsumedRecord, ApiError> {
    let one = ReadOptions {
        max_bytes: 1,
        max_wait: Duration::ZERO,
    };
    let batch = state.log.read(topic, partition, offset, one).await?;
    let (start, end) = (batch.log_start, batch.high_watermark);
    batch
        .records
        .into_iter()
        .find(|c| c.offset == offset)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "{topic}/{partition}/{offset}: no such record (log start {start}, end {end})"
                ),
            )
        })
}

/// `POST /api/dead-letters/{topic}/replay` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Partition of the dead-letter topic. Default 0.
    #[serde(default)]
    partition: u32,
    /// Offsets to re-inject.
    offsets: Vec<u64>,
    /// Target topic; default: the topic in each record's `aorta.lineage` header.
    to: Option<String>,
}

/// Headers describing a failure, dropped when a record is re-injected.
const FAILURE_HEADERS: [&str; 5] = [
    "aorta.error",
    "aorta.operator",
    "aorta.reject.reason",
    "aorta.emit",
    "aorta.lineage",
];

/// `POST /api/dead-letters/{topic}/replay`.
pub async fn replay(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(topic): Path<String>,
    body: Result<Json<ReplayRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(req) = body.map_err(|e| ApiError::bad(e.body_text()))?;
    if req.offsets.is_empty() || req.offsets.len() > state.config.max_read_records {
        return Err(ApiError::bad(format!(
            "offsets: give 1 to {} offsets",
            state.config.max_read_records
        )));
    }
    // Read and check everything first: a replay either re-injects all selected records or none.
    let mut plan: Vec<(String, u64, Record)> = Vec::new();
    for &offset in &req.offsets {
        let c = read_one(&state, &topic, req.partition, offset).await?;
        let lineage_topic = c
            .record
            .headers
            .iter()
            .find(|h| h.0 == "aorta.lineage")
            .and_then(|h| std::str::from_utf8(&h.1).ok())
            .and_then(|l| l.rsplitn(3, '/').nth(2))
            .map(str::to_string);
        let Some(target) = req.to.clone().or(lineage_topic) else {
            return Err(ApiError::bad(format!(
                "{topic}/{}/{offset} has no aorta.lineage header naming its source topic: give `to`",
                req.partition
            )));
        };
        if target == topic {
            return Err(ApiError::bad(
                "refusing to replay a dead-letter topic into itself",
            ));
        }
        let mut r = c.record;
        r.headers
            .retain(|h| !FAILURE_HEADERS.contains(&h.0.as_str()));
        r = r.with_header(
            "aorta.replayed-from",
            format!("{topic}/{}/{offset}", req.partition),
        );
        plan.push((target, offset, r));
    }
    let mut targets: Vec<&str> = plan.iter().map(|(t, _, _)| t.as_str()).collect();
    targets.sort();
    targets.dedup();
    let offsets: Vec<String> = req.offsets.iter().map(u64::to_string).collect();
    audit_action(
        &state,
        &who,
        "replay",
        format!(
            "{topic}/{}/{} -> {}",
            req.partition,
            offsets.join(","),
            targets.join(",")
        ),
        &headers,
    )
    .await?;
    let mut results = Vec::new();
    for (target, offset, record) in plan {
        let placed = state.log.produce(&target, vec![record], 0).await?;
        let (p, o) = placed[0];
        tracing::info!(dead_letters = %topic, offset, to = %target, partition = p, at = o, token = %who.id, "dead letter replayed");
        results.push(json!({"offset": offset, "to": target, "partition": p, "at": o}));
    }
    Ok(Json(json!({"replayed": results})).into_response())
}

/// `?patient=&limit=`.
#[derive(Deserialize)]
pub struct AlertQuery {
    patient: Option<String>,
    limit: Option<usize>,
}

/// The JSON values of the newest `scan` records of each partition of `topic` (`u64::MAX`:
/// all), in partition then offset order, with their partition and offset. Records that are not
/// JSON are skipped; an unknown topic has none.
async fn tail_json(
    state: &AppState,
    topic: &str,
    scan: u64,
) -> Result<Vec<(u32, u64, Value)>, ApiError> {
    let mut out = Vec::new();
    let d = match state.log.describe_topic(topic).await {
        Ok(d) => d,
        Err(LogError::UnknownTopic { .. }) => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for p in &d.partitions {
        let mut at = p.high_watermark.saturating_sub(scan).max(p.log_start);
        while at < p.high_watermark {
            let b = state
                .log
                .read(topic, p.partition, at, ReadOptions::default())
                .await?;
            if b.records.is_empty() {
                break;
            }
            at = b.next_offset(at);
            for r in b.records {
                if let Ok(v) = serde_json::from_slice::<Value>(&r.record.value) {
                    out.push((p.partition, r.offset, v));
                }
            }
        }
    }
    Ok(out)
}

/// Acks by alert id, read from the ack topic.
async fn acks(state: &AppState) -> Result<HashMap<String, Value>, ApiError> {
    let mut out = HashMap::new();
    for (_, _, v) in tail_json(state, &state.config.ack_topic, u64::MAX).await? {
        if let Some(id) = v.get("alert_id").and_then(Value::as_str) {
            out.entry(id.to_string()).or_insert(v);
        }
    }
    Ok(out)
}

/// Every alert on the alert topics (newest `scan` records per partition).
async fn scan_alerts(state: &AppState, scan: u64) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for topic in &state.config.alert_topics {
        for (partition, offset, mut v) in tail_json(state, topic, scan).await? {
            if v.get("kind").and_then(Value::as_str) == Some("alert") {
                v["source"] = json!(format!("{topic}/{partition}/{offset}"));
                out.push(v);
            }
        }
    }
    out.sort_by_key(|v| std::cmp::Reverse(v.get("time_ms").and_then(Value::as_i64).unwrap_or(0)));
    Ok(out)
}

/// `GET /api/alerts`.
pub async fn alerts(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<AlertQuery>,
) -> ApiResult {
    let limit = q
        .limit
        .unwrap_or(100)
        .clamp(1, state.config.max_read_records);
    let mut list = scan_alerts(&state, 10_000).await?;
    if let Some(p) = &q.patient {
        list.retain(|a| a.get("patient").and_then(Value::as_str) == Some(p));
    }
    list.truncate(limit);
    let acks = acks(&state).await?;
    for a in &mut list {
        let id = a
            .get("alert_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        a["ack"] = acks.get(&id).cloned().unwrap_or(Value::Null);
    }
    let scope = q
        .patient
        .as_deref()
        .map_or("all patients".to_string(), |p| format!("patient {p}"));
    audit_action(
        &state,
        &who,
        "list-alerts",
        format!("{} alerts of {scope}", list.len()),
        &headers,
    )
    .await?;
    Ok(Json(json!({"alerts": list})).into_response())
}

/// `GET /api/elr/aggregates` query.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ElrQuery {
    jurisdiction: Option<String>,
    loinc: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/elr/aggregates`: the closed daily windows, newest day first (the latest record
/// per jurisdiction, LOINC and day wins, so a replay's rewrite replaces the first).
pub async fn elr_aggregates(State(state): State<AppState>, Query(q): Query<ElrQuery>) -> ApiResult {
    let limit = q
        .limit
        .unwrap_or(200)
        .clamp(1, state.config.max_read_records);
    let topic = &state.config.elr_aggregates_topic;
    let mut latest: BTreeMap<(String, String, i64), Value> = BTreeMap::new();
    for (_, _, v) in tail_json(&state, topic, 100_000).await? {
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (j, l) = (field("jurisdiction"), field("loinc"));
        if q.jurisdiction
            .as_ref()
            .is_some_and(|x| !x.eq_ignore_ascii_case(&j))
            || q.loinc.as_ref().is_some_and(|x| *x != l)
        {
            continue;
        }
        let day = v.get("window_start").and_then(Value::as_i64).unwrap_or(0);
        latest.insert((j, l, day), v);
    }
    let mut list: Vec<Value> = latest.into_values().collect();
    list.sort_by_key(|v| {
        std::cmp::Reverse(v.get("window_start").and_then(Value::as_i64).unwrap_or(0))
    });
    list.truncate(limit);
    Ok(Json(json!({"topic": topic, "aggregates": list})).into_response())
}

/// `POST /api/alerts/{id}/ack` body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Free text for the record (e.g. "reviewed, fluids started").
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/alerts/{id}/ack`.
pub async fn ack_alert(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Option<Json<AckRequest>>,
) -> ApiResult {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let all = scan_alerts(&state, u64::MAX).await?;
    let Some(alert) = all
        .iter()
        .find(|a| a.get("alert_id").and_then(Value::as_str) == Some(id.as_str()))
    else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no alert {id:?} on {:?}", state.config.alert_topics),
        ));
    };
    if let Some(existing) = acks(&state).await?.remove(&id) {
        return Ok((
            StatusCode::CONFLICT,
            Json(json!({"error": "already acknowledged", "ack": existing})),
        )
            .into_response());
    }
    audit_action(&state, &who, "ack-alert", id.clone(), &headers).await?;
    let ack = json!({
        "alert_id": id,
        "patient": alert.get("patient"),
        "by": who.id, "by_name": who.name,
        "at": audit::rfc3339_now(),
        "note": req.note,
    });
    let topic = &state.config.ack_topic;
    match state
        .log
        .create_topic(topic, aorta_log::TopicConfig::default())
        .await
    {
        Ok(_) | Err(LogError::TopicExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let record = Record::new(serde_json::to_vec(&ack).unwrap_or_default()).with_key(id.clone());
    state.log.produce(topic, vec![record], 0).await?;
    Ok((StatusCode::CREATED, Json(json!({"ack": ack}))).into_response())
}

/// `?from=&limit=` on the audit topic.
#[derive(Deserialize)]
pub struct AuditQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/audit`.
pub async fn audit_entries(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult {
    let topic = state.audit.topic().to_string();
    let range = RangeQuery {
        partition: Some(0),
        from: q.from,
        limit: q.limit,
    };
    let (_, from, recs, hw) = read_range(&state, &topic, &range).await?;
    let entries: Vec<Value> = recs
        .iter()
        .map(|r| {
            serde_json::from_slice(&r.record.value)
                .unwrap_or_else(|_| json!({"unreadable_offset": r.offset}))
        })
        .collect();
    Ok(
        Json(json!({"topic": topic, "from": from, "high_watermark": hw, "entries": entries}))
            .into_response(),
    )
}

/// `GET /api/audit/verify`.
pub async fn audit_verify(State(state): State<AppState>) -> ApiResult {
    let v = audit::verify(&*state.log, state.audit.topic()).await?;
    let status = if v.broken.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(v))).into_response())
}
