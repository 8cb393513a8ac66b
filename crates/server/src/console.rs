//! The web console: one server-rendered page with a little vanilla JavaScript (no build step),
//! the login that turns a token into a cookie, the live alert stream (server-sent events) and
//! the message viewer (an HL7 v2 message as named segments and fields beside its FHIR mapping).
//!
//! The console calls the same API as everyone else, with the same policies. A browser cannot
//! attach a bearer header to a page load or an `EventSource`, so `POST /login` checks a token
//! and stores it in an `HttpOnly`, `SameSite=Strict` cookie that the guard accepts in place of
//! the header. Requests authenticated by that cookie that change something (any method but
//! GET) must also carry `X-Aorta-Csrf: 1`, which a cross-site form cannot send.

use crate::api::{ApiError, audit_action};
use crate::auth::Principal;
use crate::{AppState, PipelineStatus};
use aorta_log::{LogError, ReadOptions};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// The cookie the console's login sets.
pub const COOKIE: &str = "aorta_token";
/// The header cookie-authenticated writes must carry.
pub const CSRF_HEADER: &str = "x-aorta-csrf";

const PAGE: &str = include_str!("console.html");

const LOGIN: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Aorta — sign in</title>
<style>body{font:15px system-ui,sans-serif;margin:10vh auto;max-width:28rem;color:#1d2733}input{width:100%;padding:.5rem;font:inherit;margin:.5rem 0}button{padding:.5rem 1rem;font:inherit}</style></head>
<body><h1>Aorta console</h1><p>Paste an API token (<code>aorta token create --role admin</code>).</p>
<form method="post" action="/login"><input name="token" type="password" autocomplete="off" placeholder="aorta_…" autofocus><button id="signin">Sign in</button></form>
<p style="color:#a00">{error}</p></body></html>"#;

/// `GET /login`.
pub async fn login_page() -> Html<String> {
    Html(LOGIN.replace("{error}", ""))
}

/// `POST /login`: a form with `token`; sets the cookie and redirects to the console.
pub async fn login(State(state): State<AppState>, body: Bytes) -> Response {
    let form = String::from_utf8_lossy(&body);
    let token = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .unwrap_or("")
        .trim()
        .to_string();
    match state.tokens.authenticate(Some(&format!("Bearer {token}"))) {
        Ok(p) => {
            tracing::info!(token = %p.id, role = %p.role, "console sign-in");
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/console".to_string()),
                    (
                        header::SET_COOKIE,
                        format!(
                            "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"
                        ),
                    ),
                ],
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::UNAUTHORIZED,
            Html(LOGIN.replace(
                "{error}",
                "That token is not valid (unknown, revoked or mistyped).",
            )),
        )
            .into_response(),
    }
}

/// The token in the console cookie, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

/// `GET /console`.
pub async fn page(Extension(who): Extension<Principal>) -> Html<String> {
    Html(
        PAGE.replace("{{role}}", who.role.name())
            .replace("{{name}}", &html_escape(&who.name)),
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One event of the alert stream: `(sequence, kind, JSON)`.
pub type HubEvent = Arc<(u64, &'static str, String)>;

/// Tails the alert and ack topics once for the whole process and fans the records out to every
/// SSE client: a client costs a channel receiver, not a reader of its own. Keeps the last 20
/// events for clients that connect later. A client too slow to keep up with the channel
/// (1,024 events) is told how many it missed (`lagged` event) and continues.
pub struct AlertHub {
    tx: broadcast::Sender<HubEvent>,
    recent: Mutex<VecDeque<HubEvent>>,
}

impl AlertHub {
    /// Starts the tail.
    pub fn start(state: &AppState) -> Arc<AlertHub> {
        let (tx, _) = broadcast::channel(1024);
        let hub = Arc::new(AlertHub {
            tx,
            recent: Mutex::new(VecDeque::new()),
        });
        let mut topics: Vec<(String, &'static str)> = state
            .config
            .alert_topics
            .iter()
            .map(|t| (t.clone(), "alert"))
            .collect();
        topics.push((state.config.ack_topic.clone(), "ack"));
        let log = state.log.clone();
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            let mut positions: BTreeMap<(String, u32), u64> = BTreeMap::new();
            let mut seq = 0u64;
            loop {
                let Some(hub) = weak.upgrade() else { return };
                let mut any = false;
                for (topic, kind) in &topics {
                    let d = match log.describe_topic(topic).await {
                        Ok(d) => d,
                        Err(LogError::UnknownTopic { .. }) => continue,
                        Err(e) => {
                            tracing::warn!(topic, error = %e, "alert stream: topic unreadable");
                            continue;
                        }
                    };
                    for p in &d.partitions {
                        let at = positions
                            .entry((topic.clone(), p.partition))
                            .or_insert_with(|| {
                                p.high_watermark.saturating_sub(20).max(p.log_start)
                            });
                        if *at >= p.high_watermark {
                            continue;
                        }
                        let Ok(b) = log
                            .read(topic, p.partition, *at, ReadOptions::default())
                            .await
                        else {
                            continue;
                        };
                        *at = b.next_offset(*at);
                        for r in b.records {
                            let Ok(v) = serde_json::from_slice::<Value>(&r.record.value) else {
                                continue;
                            };
                            if *kind == "alert"
                                && v.get("kind").and_then(Value::as_str) != Some("alert")
                            {
                                continue;
                            }
                            seq += 1;
                            any = true;
                            let e: HubEvent = Arc::new((seq, *kind, v.to_string()));
                            let mut recent = hub.recent.lock().unwrap_or_else(|e| e.into_inner());
                            recent.push_back(e.clone());
                            if recent.len() > 20 {
                                recent.pop_front();
                            }
                            drop(recent);
                            let _ = hub.tx.send(e);
                        }
                    }
                }
                drop(hub);
                if !any {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        hub
    }

    /// The recent events and a receiver for the ones after them.
    fn subscribe(&self) -> (Vec<HubEvent>, broadcast::Receiver<HubEvent>) {
        let rx = self.tx.subscribe();
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        (recent, rx)
    }
}

/// `GET /api/alerts/stream`: server-sent events, one `alert` event per alert record (the last
/// 20 first, then live), `ack` events for acknowledgements, a keep-alive comment every 15 s.
pub async fn alert_stream(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    audit_action(
        &state,
        &who,
        "stream-alerts",
        "all patients (live)".into(),
        &headers,
    )
    .await?;
    let hub = state
        .alert_hub
        .get_or_init(|| AlertHub::start(&state))
        .clone();
    let (recent, rx) = hub.subscribe();
    // Events in `recent` may also arrive on `rx`: skip those by sequence.
    let seen = recent.last().map_or(0, |e| e.0);
    let first = futures::stream::iter(
        recent
            .into_iter()
            .map(|e| Ok::<Event, Infallible>(Event::default().event(e.1).data(e.2.clone()))),
    );
    let live = futures::stream::unfold((rx, seen, hub), |(mut rx, seen, hub)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if e.0 <= seen => continue,
                Ok(e) => {
                    let ev = Event::default().event(e.1).data(e.2.clone());
                    return Some((Ok(ev), (rx, seen, hub)));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let ev = Event::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{n}}}"));
                    return Some((Ok(ev), (rx, seen, hub)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures::StreamExt;
    Ok(Sse::new(first.chain(live))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// `GET /api/messages/{topic}/{partition}/{offset}`: one record; an HL7 v2 message as named
/// segments and fields with its FHIR R4 mapping. Audited.
pub async fn message(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path((topic, partition, offset)): Path<(String, u32, u64)>,
) -> Result<Response, ApiError> {
    let c = crate::api::read_one(&state, &topic, partition, offset).await?;
    audit_action(
        &state,
        &who,
        "read-message",
        format!("{topic}/{partition}/{offset}"),
        &headers,
    )
    .await?;
    let raw = String::from_utf8_lossy(&c.record.value).into_owned();
    let mut out = json!({
        "topic": topic, "partition": partition, "offset": offset,
        "timestamp_ms": c.record.timestamp_ms,
        "headers": c.record.headers.iter().map(|h| json!([h.0, String::from_utf8_lossy(&h.1)])).collect::<Vec<_>>(),
        "raw": raw,
    });
    match aorta_hl7::parse(&c.record.value) {
        Ok(msg) => {
            let segments: Vec<Value> = msg
                .segments()
                .map(|s| {
                    let id = String::from_utf8_lossy(s.id()).into_owned();
                    let fields: Vec<Value> = s
                        .fields()
                        .enumerate()
                        .skip(1)
                        .filter(|(_, f)| !f.raw().is_empty())
                        .map(|(n, f)| {
                            json!({
                                "n": n,
                                "name": aorta_hl7::names::field_name(&id, n),
                                "value": String::from_utf8_lossy(f.raw()),
                            })
                        })
                        .collect();
                    json!({"id": id, "name": aorta_hl7::names::segment_name(&id), "fields": fields})
                })
                .collect();
            out["hl7"] = Value::Array(segments);
            out["fhir"] = match aorta_fhir::v2::convert(&msg, &aorta_fhir::v2::Options::default()) {
                Ok(bundle) => bundle,
                Err(e) => json!({"error": e.to_string()}),
            };
        }
        Err(e) => out["hl7_error"] = json!(e.to_string()),
    }
    Ok(Json(out).into_response())
}

/// `GET /api/overview`: what the console's first tab shows, in one call.
pub async fn overview(State(state): State<AppState>) -> Result<Response, ApiError> {
    let topics = state.log.list_topics().await?;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let pipelines: Vec<Value> = state
        .components
        .pipelines
        .iter()
        .map(|p| {
            let status = p.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
            json!({
                "name": p.name, "from": p.from, "dead_letter_topic": p.dead_letter_topic,
                "running": status == PipelineStatus::Running, "status": status,
                "input": n(&p.stats.input), "output": n(&p.stats.output), "dead_lettered": n(&p.stats.dead_lettered),
                "restarts": n(&p.control.restarts),
                "sinks_down": p.stats.sinks_down.lock().unwrap_or_else(|e| e.into_inner()).values().map(|(s, e)| json!({"sink": s, "error": e})).collect::<Vec<_>>(),
                "steps": p.stats.steps.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, c)| json!({"op": k, "in": c.input, "out": c.output, "dropped": c.dropped, "errors": c.errors})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mllp: Vec<Value> = state
        .components
        .mllp
        .iter()
        .map(|m| json!({"listen": m.listen, "topic": m.topic, "accepted": n(&m.stats.accepted), "rejected": n(&m.stats.rejected), "connections": n(&m.stats.connections)}))
        .collect();
    Ok(Json(json!({
        "backend": state.log.backend(),
        "uptime_s": state.started.elapsed().as_secs(),
        "topics": topics.iter().map(|t| json!({
            "name": t.name,
            "partitions": t.partitions.len(),
            "records": t.partitions.iter().map(|p| p.high_watermark - p.log_start).sum::<u64>(),
            "bytes": t.partitions.iter().map(|p| p.size_bytes).sum::<u64>(),
        })).collect::<Vec<_>>(),
        "pipelines": pipelines,
        "mllp": mllp,
        "alert_topics": state.config.alert_topics,
    }))
    .into_response())
}
