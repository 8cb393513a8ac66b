//! FHIR R4 REST ingest.
//!
//! * `POST /fhir/{type}`: the server assigns the id (32 hex digits of the SHA-256 of the body as
//!   received), so a client's retry of the same body lands on the same id and key.
//! * `PUT /fhir/{type}/{id}`: the body's `id` must equal the URL's.
//! * `POST /fhir` with a `batch` Bundle (each entry on its own; the answer is a
//!   `batch-response`) or a `transaction` Bundle (every entry is validated first; one invalid
//!   entry rejects the whole Bundle and nothing is written).
//!
//! A valid resource is appended to `<prefix><ResourceType>` keyed by its id, and 201 (200 for
//! PUT) is sent only once it is durable. Aorta does not keep a current-version index, so PUT
//! answers 200 whether or not the id was seen before. An invalid one gets 400 (not JSON, not a
//! resource, wrong type for the URL) or 422 (validation) with the OperationOutcome, and the body
//! as received goes to the dead-letter topic with the outcome in its `aorta.error` and
//! `aorta.outcome` headers. Bodies over `max_body_bytes` get 413, other media types 415.

use crate::{AppState, FhirIngestConfig};
use aorta_fhir::{IssueType, Mode, OperationOutcome, Parsed, Severity};
use aorta_log::{LogError, Record, TopicConfig};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const FHIR_JSON: &str = "application/fhir+json";

/// An OperationOutcome response.
pub fn outcome_response(status: StatusCode, o: &OperationOutcome) -> Response {
    json_response(status, &o.to_json())
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, FHIR_JSON)],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

fn problem(status: StatusCode, code: IssueType, location: &str, msg: String) -> Response {
    let mut o = OperationOutcome::default();
    o.push(Severity::Error, code, location, msg);
    outcome_response(status, &o)
}

fn mode(c: &FhirIngestConfig) -> Mode {
    if c.strict {
        Mode::Strict
    } else {
        Mode::Lenient
    }
}

/// A resource type name as a topic suffix: R4 type names are `[A-Z][A-Za-z]+`.
fn type_ok(t: &str) -> bool {
    t.len() >= 2
        && t.len() <= 64
        && t.starts_with(|c: char| c.is_ascii_uppercase())
        && t.chars().all(|c| c.is_ascii_alphabetic())
}

/// R4 `id`: `[A-Za-z0-9\-\.]{1,64}`.
fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Reads the body, checking the media type and the size limit.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != FHIR_JSON && media != "application/json" {
        return Err(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            "",
            format!("content type {ct:?} is not supported: send application/fhir+json"),
        ));
    }
    let limit = state.config.fhir.max_body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            IssueType::TooCostly,
            "",
            format!(
                "the body is larger than the limit of {limit} bytes (server.fhir.max_body_bytes)"
            ),
        )
    })
}

async fn ensure_topic(state: &AppState, topic: &str, partitions: u32) -> Result<(), LogError> {
    if state
        .known_topics
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(topic)
    {
        return Ok(());
    }
    match state
        .log
        .create_topic(
            topic,
            TopicConfig {
                partitions,
                ..TopicConfig::default()
            },
        )
        .await
    {
        Ok(_) | Err(LogError::TopicExists { .. }) => {}
        Err(e) => return Err(e),
    }
    state
        .known_topics
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(topic.to_string());
    Ok(())
}

fn log_unavailable(e: LogError) -> Response {
    tracing::error!(error = %e, "FHIR ingest could not write to the log");
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        IssueType::Informational,
        "",
        format!("the resource was not stored (retry later): {e}"),
    )
}

/// Keeps a rejected body, with why, on the dead-letter topic.
async fn dead_letter(state: &AppState, body: &[u8], rtype: &str, outcome: &OperationOutcome) {
    state.fhir_ingest.add(&[rtype, "rejected"], 1);
    let topic = &state.config.fhir.dead_letter_topic;
    if let Err(e) = ensure_topic(state, topic, 1).await {
        tracing::error!(error = %e, "FHIR dead-letter topic unavailable: a rejected resource is only in the 4xx answer");
        return;
    }
    let summary: String = outcome
        .errors()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let record = Record::new(Bytes::copy_from_slice(body))
        .with_header("aorta.error", summary)
        .with_header(
            "aorta.outcome",
            serde_json::to_vec(&outcome.to_json()).unwrap_or_default(),
        )
        .with_header("aorta.source", "fhir-rest");
    if let Err(e) = state.log.append(topic, 0, vec![record]).await {
        tracing::error!(error = %e, "could not write a rejected FHIR resource to the dead-letter topic");
    }
}

/// Status for an outcome: 400 when the input is not a resource at all, 422 when it is one that
/// fails validation.
fn reject_status(o: &OperationOutcome) -> StatusCode {
    if o.issues.iter().any(|i| i.severity == Severity::Fatal) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

/// Validates one resource for `rtype` (and `id` when the URL names one).
fn check(
    json: Value,
    rtype: &str,
    url_id: Option<&str>,
    mode: Mode,
) -> Result<Parsed, OperationOutcome> {
    let parsed = aorta_fhir::from_json(json, mode)?;
    let mut o = OperationOutcome::default();
    if parsed.resource_type() != rtype {
        o.push(
            Severity::Fatal,
            IssueType::Invalid,
            "resourceType",
            format!(
                "the body is a {} but the URL says {rtype}",
                parsed.resource_type()
            ),
        );
    }
    if let Some(want) = url_id {
        match parsed.id() {
            Some(id) if id == want => {}
            Some(id) => o.error(
                IssueType::Invalid,
                format!("{rtype}.id"),
                format!("the body's id {id:?} is not the URL's {want:?}"),
            ),
            None => o.error(
                IssueType::Required,
                format!("{rtype}.id"),
                "an update (PUT) needs the resource's id in the body",
            ),
        }
    }
    if o.has_errors() { Err(o) } else { Ok(parsed) }
}

/// Assigns the id of a created resource: the same body always gets the same id.
fn assigned_id(body: &[u8]) -> String {
    crate::auth::sha256_hex(body)[..32].to_string()
}

/// Appends valid resources (`(type, id, json)`) to their per-type topics, durably.
async fn store(state: &AppState, resources: Vec<(String, String, Value)>) -> Result<(), LogError> {
    let c = &state.config.fhir;
    let mut by_topic: std::collections::BTreeMap<String, Vec<Record>> = Default::default();
    for (rtype, id, json) in resources {
        state.fhir_ingest.add(&[&rtype, "stored"], 1);
        let record = Record::new(serde_json::to_vec(&json).unwrap_or_default())
            .with_key(id)
            .with_header("content-type", FHIR_JSON)
            .with_header("aorta.source", "fhir-rest");
        by_topic
            .entry(format!("{}{rtype}", c.topic_prefix))
            .or_default()
            .push(record);
    }
    for (topic, records) in by_topic {
        ensure_topic(state, &topic, c.partitions.max(1)).await?;
        state.log.produce(&topic, records, 0).await?;
    }
    Ok(())
}

fn parse_json(body: &[u8]) -> Result<Value, OperationOutcome> {
    serde_json::from_slice(body).map_err(|e| {
        let mut o = OperationOutcome::default();
        o.push(
            Severity::Fatal,
            IssueType::Structure,
            "",
            format!("not valid JSON: {e}"),
        );
        o
    })
}

async fn single(
    state: AppState,
    rtype: String,
    url_id: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !type_ok(&rtype) {
        return problem(
            StatusCode::NOT_FOUND,
            IssueType::NotSupported,
            "",
            format!("{rtype:?} is not a FHIR resource type"),
        );
    }
    if let Some(id) = &url_id
        && !id_ok(id)
    {
        return problem(
            StatusCode::BAD_REQUEST,
            IssueType::Value,
            "",
            format!("{id:?} is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})"),
        );
    }
    let body = match read_body(&state, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let checked = parse_json(&body)
        .and_then(|j| check(j, &rtype, url_id.as_deref(), mode(&state.config.fhir)));
    let parsed = match checked {
        Ok(p) => p,
        Err(o) => {
            dead_letter(&state, &body, &rtype, &o).await;
            return outcome_response(reject_status(&o), &o);
        }
    };
    let created = url_id.is_none();
    let id = url_id.unwrap_or_else(|| assigned_id(&body));
    let mut json = parsed.json;
    json["id"] = Value::String(id.clone());
    if let Err(e) = store(&state, vec![(rtype.clone(), id.clone(), json.clone())]).await {
        return log_unavailable(e);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut r = json_response(status, &json);
    if let Ok(v) = format!("fhir/{rtype}/{id}").parse() {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `POST /fhir/{type}`.
pub async fn create(
    State(state): State<AppState>,
    Path(rtype): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    single(state, rtype, None, headers, body).await
}

/// `PUT /fhir/{type}/{id}`.
pub async fn update(
    State(state): State<AppState>,
    Path((rtype, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    single(state, rtype, Some(id), headers, body).await
}

/// One Bundle entry, checked: `(type, id, resource, created)` or its outcome.
fn check_entry(
    i: usize,
    entry: &Value,
    mode: Mode,
) -> Result<(String, String, Value, bool), OperationOutcome> {
    let at = format!("Bundle.entry[{i}]");
    let mut o = OperationOutcome::default();
    let method = entry.pointer("/request/method").and_then(Value::as_str);
    let url = entry
        .pointer("/request/url")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(resource) = entry.get("resource").cloned() else {
        o.error(
            IssueType::Required,
            format!("{at}.resource"),
            "each entry needs a resource",
        );
        return Err(o);
    };
    let (rtype, url_id) = match url.split_once('/') {
        Some((t, id)) => (t.to_string(), Some(id.to_string())),
        None => (url.to_string(), None),
    };
    let url_id = match (method, url_id) {
        (Some("POST"), None) => None,
        (Some("PUT"), Some(id)) if id_ok(&id) => Some(id),
        _ => {
            o.error(
                IssueType::NotSupported,
                format!("{at}.request"),
                format!(
                    "only POST <Type> and PUT <Type>/<id> entries are accepted (got {:?} {url:?})",
                    method.unwrap_or("no method")
                ),
            );
            return Err(o);
        }
    };
    if !type_ok(&rtype) {
        o.error(
            IssueType::Invalid,
            format!("{at}.request.url"),
            format!("{url:?} does not name a resource type"),
        );
        return Err(o);
    }
    let bytes = serde_json::to_vec(&resource).unwrap_or_default();
    let parsed = check(resource, &rtype, url_id.as_deref(), mode).map_err(|mut o| {
        for issue in &mut o.issues {
            let rest = issue
                .location
                .strip_prefix(rtype.as_str())
                .unwrap_or(&issue.location)
                .trim_start_matches('.');
            issue.location = if rest.is_empty() {
                format!("{at}.resource")
            } else {
                format!("{at}.resource.{rest}")
            };
        }
        o
    })?;
    let created = url_id.is_none();
    let id = url_id.unwrap_or_else(|| assigned_id(&bytes));
    let mut json = parsed.json;
    json["id"] = Value::String(id.clone());
    Ok((rtype, id, json, created))
}

/// `POST /fhir` with a batch or transaction Bundle.
pub async fn bundle(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(&state, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let json = match parse_json(&body) {
        Ok(j) => j,
        Err(o) => {
            dead_letter(&state, &body, "Bundle", &o).await;
            return outcome_response(StatusCode::BAD_REQUEST, &o);
        }
    };
    let kind = json.get("type").and_then(Value::as_str).unwrap_or("");
    if json.get("resourceType").and_then(Value::as_str) != Some("Bundle")
        || !matches!(kind, "batch" | "transaction")
    {
        let mut o = OperationOutcome::default();
        o.push(
            Severity::Fatal,
            IssueType::Invalid,
            "Bundle.type",
            "POST /fhir takes a Bundle of type batch or transaction",
        );
        dead_letter(&state, &body, "Bundle", &o).await;
        return outcome_response(StatusCode::BAD_REQUEST, &o);
    }
    let entries = json
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let m = mode(&state.config.fhir);
    let checked: Vec<_> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| check_entry(i, e, m))
        .collect();
    if kind == "transaction" {
        let mut all = OperationOutcome::default();
        for r in &checked {
            if let Err(o) = r {
                all.issues.extend(o.issues.iter().cloned());
            }
        }
        if all.has_errors() {
            dead_letter(&state, &body, "Bundle", &all).await;
            return outcome_response(StatusCode::UNPROCESSABLE_ENTITY, &all);
        }
    }
    let mut responses = Vec::with_capacity(checked.len());
    let mut to_store = Vec::new();
    for (i, r) in checked.into_iter().enumerate() {
        match r {
            Ok((rtype, id, json, created)) => {
                let status = if created { "201 Created" } else { "200 OK" };
                responses.push(
                    json!({"response": {"status": status, "location": format!("{rtype}/{id}")}}),
                );
                to_store.push((rtype, id, json));
            }
            Err(o) => {
                let raw =
                    serde_json::to_vec(&entries[i].get("resource").cloned().unwrap_or(Value::Null))
                        .unwrap_or_default();
                let rtype = entries[i]
                    .pointer("/resource/resourceType")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                dead_letter(&state, &raw, rtype, &o).await;
                let code = reject_status(&o);
                responses.push(json!({"response": {"status": format!("{} {}", code.as_u16(), code.canonical_reason().unwrap_or("")), "outcome": o.to_json()}}));
            }
        }
    }
    if let Err(e) = store(&state, to_store).await {
        return log_unavailable(e);
    }
    let answer = json!({
        "resourceType": "Bundle",
        "type": format!("{kind}-response"),
        "entry": responses,
    });
    json_response(StatusCode::OK, &answer)
}

/// `GET /fhir/metadata`: what this endpoint accepts.
pub async fn metadata(State(state): State<AppState>) -> Response {
    let c = &state.config.fhir;
    let cs = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": crate::audit::rfc3339_now(),
        "kind": "instance",
        "software": {"name": "Aorta", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": format!("Aorta FHIR R4 ingest: valid resources to {}<type> topics, rejects to {}", c.topic_prefix, c.dead_letter_topic)},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "application/json"],
        "rest": [{
            "mode": "server",
            "security": {"description": "Bearer token with role admin or ingest (aorta token create --role ingest)."},
            "resource": [{
                "type": "Resource",
                "interaction": [{"code": "create"}, {"code": "update"}],
                "updateCreate": true,
            }],
            "interaction": [{"code": "batch"}, {"code": "transaction"}],
        }],
    });
    json_response(StatusCode::OK, &cs)
}
