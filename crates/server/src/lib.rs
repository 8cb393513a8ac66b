//! # aorta-server — the HTTP API, FHIR REST ingest, health, metrics and PHI security
//!
//! Owns what operators, clinical users and feeding systems reach over HTTP:
//!
//! | module | what it owns |
//! |---|---|
//! | [`routes`] | the one table of routes with their role policy; the router and the OpenAPI document are built from it |
//! | [`auth`] | bearer tokens (`aorta_<id>_<secret>`, stored as SHA-256) and the [`Role`]s |
//! | [`audit`] | the append-only, hash-chained audit trail on its own topic, and its verification |
//! | [`api`] | topics, records, pipelines, dead letters and replay, alerts and acks, audit |
//! | [`console`] | the web console page, cookie sign-in, the live alert stream (SSE) and the HL7/FHIR message viewer |
//! | [`fhir`] | FHIR R4 REST ingest: validated resources to per-type topics, the rest to a dead-letter topic |
//! | [`metrics`] | Prometheus text exposition of every layer's counters and latency histograms |
//! | [`tls`] | HTTPS with rustls: handshakes off the accept loop |
//! | [`metered`] | the log decorator that times durable appends |
//!
//! ## Invariants
//! * Deny by default: every route but `/healthz` needs a valid token whose role the route's
//!   policy admits; a request whose route has no policy is refused.
//! * No unaudited read of bodies or patient data: the audit entry is durable before the data is
//!   sent, and when it cannot be written the request fails (503).
//! * Nothing accepted is lost: FHIR ingest answers 201 only after the resource is durable on
//!   its topic, and a rejected resource is kept on the dead-letter topic with its outcome.
//! * Logs name routes, token ids and offsets, never bodies or patient identifiers.
//!
//! ## Must not depend on
//! The `aorta` binary (config files, the CLI) or a concrete log backend: the server is handed
//! an `Arc<dyn Log>` and the running components' counters.

pub mod api;
pub mod audit;
pub mod auth;
pub mod console;
pub mod fhir;
pub mod metered;
pub mod metrics;
pub mod routes;
pub mod tls;

pub use auth::{Principal, Role, TokenStore};
pub use routes::{Access, ROUTES, RouteId, RouteSpec};

use aorta_log::Log;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// `[server]` in `aorta.toml`. Every key has a default that works.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address of the API. Default `127.0.0.1:8080`; `""` turns the server off.
    pub listen: String,
    /// Token file. Default `<data_dir>/tokens.json` (set by the binary).
    pub tokens: Option<PathBuf>,
    /// The audit topic. Default `aorta.audit`.
    pub audit_topic: String,
    /// Topics that carry alerts (`{"kind":"alert", …}` records). Default: the topic sinks of the
    /// pipelines that have an `early-warning` step (filled in by the binary).
    pub alert_topics: Vec<String>,
    /// Where acknowledgements are written. Default `aorta.alerts.acks`.
    pub ack_topic: String,
    /// The daily lab-report aggregates (`configs/elr.toml`'s `elr-aggregate` sink). Default
    /// `elr.aggregates`.
    pub elr_aggregates_topic: String,
    /// Most records one read returns. Default 500.
    pub max_read_records: usize,
    /// FHIR REST ingest.
    pub fhir: FhirIngestConfig,
    /// HTTPS: `[server.tls] cert_path`, `key_path` (PEM). Default: plain HTTP.
    pub tls: Option<aorta_mllp::tls::TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            tokens: None,
            audit_topic: "aorta.audit".into(),
            alert_topics: Vec::new(),
            ack_topic: "aorta.alerts.acks".into(),
            elr_aggregates_topic: "elr.aggregates".into(),
            max_read_records: 500,
            fhir: FhirIngestConfig::default(),
            tls: None,
        }
    }
}

/// `[server.fhir]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FhirIngestConfig {
    /// Valid resources go to `<prefix><ResourceType>`. Default `fhir.`.
    pub topic_prefix: String,
    /// Rejected resources go here with their OperationOutcome. Default `fhir.dlq`.
    pub dead_letter_topic: String,
    /// Partitions of topics created for new resource types. Default 3.
    pub partitions: u32,
    /// Largest request body. Default 8 MiB.
    pub max_body_bytes: usize,
    /// Reject unknown elements (`strict`) or keep them with a warning (`lenient`, default).
    pub strict: bool,
}

impl Default for FhirIngestConfig {
    fn default() -> Self {
        FhirIngestConfig {
            topic_prefix: "fhir.".into(),
            dead_letter_topic: "fhir.dlq".into(),
            partitions: 3,
            max_body_bytes: 8 << 20,
            strict: false,
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The token file.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The audit topic.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    /// The TLS certificate or key.
    #[error(transparent)]
    Tls(#[from] aorta_mllp::tls::TlsError),
    /// The listen address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// How a pipeline is doing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum PipelineStatus {
    /// Reading and writing.
    Running,
    /// Stopped by shutdown.
    Stopped,
    /// Stopped by an error.
    Failed(String),
}

/// A running pipeline as the server sees it.
#[derive(Clone)]
pub struct PipelineInfo {
    /// Its name.
    pub name: String,
    /// Its consumer group.
    pub group: String,
    /// Its source topics.
    pub from: Vec<String>,
    /// Its dead-letter topic.
    pub dead_letter_topic: String,
    /// Live counters.
    pub stats: Arc<aorta_pipeline::PipelineStats>,
    /// Set by whoever runs it.
    pub status: Arc<Mutex<PipelineStatus>>,
    /// Restart requests to whoever runs it.
    pub control: Arc<PipelineControl>,
}

/// The channel between the API and the supervisor that runs a pipeline.
#[derive(Debug, Default)]
pub struct PipelineControl {
    /// Signalled by `POST /api/pipelines/{name}/restart`.
    pub restart: tokio::sync::Notify,
    /// Runs started after the first (failures and requests).
    pub restarts: std::sync::atomic::AtomicU64,
}

/// A running MLLP listener as the server sees it.
#[derive(Clone)]
pub struct MllpInfo {
    /// Listen address.
    pub listen: String,
    /// Topic it appends to.
    pub topic: String,
    /// Its dead-letter topic.
    pub dead_letter_topic: String,
    /// Live counters.
    pub stats: Arc<aorta_mllp::Stats>,
}

/// What the process runs besides the API.
#[derive(Clone, Default)]
pub struct Components {
    /// Pipelines.
    pub pipelines: Vec<PipelineInfo>,
    /// MLLP listeners.
    pub mllp: Vec<MllpInfo>,
    /// The log's latency histograms, when it is wrapped in [`metered::MeteredLog`].
    pub log_metrics: Option<Arc<metered::LogMetrics>>,
}

/// Shared by every handler.
pub struct Shared {
    /// The log.
    pub log: Arc<dyn Log>,
    /// Settings.
    pub config: ServerConfig,
    /// Tokens.
    pub tokens: TokenStore,
    /// The audit trail.
    pub audit: audit::AuditLog,
    /// Running components.
    pub components: Components,
    /// HTTP counters.
    pub http: metrics::HttpMetrics,
    /// FHIR ingest outcomes by (resource type, outcome).
    pub fhir_ingest: metrics::LabelledCounter,
    /// Audit entries written, by action.
    pub audited: metrics::LabelledCounter,
    /// Topics known to exist (FHIR per-type topics created on first use).
    pub known_topics: Mutex<std::collections::HashSet<String>>,
    /// Process start.
    pub started: Instant,
    /// The alert stream's fan-out, started by the first SSE client.
    pub alert_hub: std::sync::OnceLock<Arc<console::AlertHub>>,
}

/// The state handed to handlers.
pub type AppState = Arc<Shared>;

/// Prepares the server: opens the token file and the audit trail.
pub async fn prepare(
    log: Arc<dyn Log>,
    config: ServerConfig,
    tokens: PathBuf,
    components: Components,
) -> Result<AppState, ServerError> {
    let tokens = TokenStore::open(tokens)?;
    if tokens.list()?.is_empty() {
        tracing::warn!(
            file = %tokens.path().display(),
            "no API tokens yet: every request but /healthz is refused; create one with `aorta token create --role admin`"
        );
    }
    let audit = audit::AuditLog::open(log.clone(), &config.audit_topic).await?;
    Ok(Arc::new(Shared {
        log,
        config,
        tokens,
        audit,
        components,
        http: Default::default(),
        fhir_ingest: Default::default(),
        audited: Default::default(),
        known_topics: Default::default(),
        started: Instant::now(),
        alert_hub: std::sync::OnceLock::new(),
    }))
}

fn handler(id: RouteId) -> MethodRouter<AppState> {
    match id {
        RouteId::Healthz => get(api::healthz),
        RouteId::Readyz => get(api::readyz),
        RouteId::Metrics => get(api::metrics),
        RouteId::OpenApi => get(api::openapi),
        RouteId::Topics => get(api::topics),
        RouteId::Topic => get(api::topic),
        RouteId::Records => get(api::records),
        RouteId::Pipelines => get(api::pipelines),
        RouteId::DeadLetters => get(api::dead_letters),
        RouteId::Replay => post(api::replay),
        RouteId::Alerts => get(api::alerts),
        RouteId::AckAlert => post(api::ack_alert),
        RouteId::ElrAggregates => get(api::elr_aggregates),
        RouteId::RestartPipeline => post(api::restart_pipeline),
        RouteId::Audit => get(api::audit_entries),
        RouteId::AuditVerify => get(api::audit_verify),
        RouteId::FhirMetadata => get(fhir::metadata),
        RouteId::FhirCreate => post(fhir::create),
        RouteId::FhirUpdate => put(fhir::update),
        RouteId::FhirBundle => post(fhir::bundle),
        RouteId::LoginPage => get(console::login_page),
        RouteId::Login => post(console::login),
        RouteId::Console => get(console::page),
        RouteId::Overview => get(console::overview),
        RouteId::AlertStream => get(console::alert_stream),
        RouteId::Message => get(console::message),
    }
}

/// The router: every route of [`ROUTES`] behind the guard.
pub fn router(state: AppState) -> Router {
    let mut router: Router<AppState> = Router::new();
    for spec in ROUTES {
        router = router.route(spec.path, handler(spec.id));
    }
    router
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Binds and serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>), ServerError> {
    let addr = state.config.listen.clone();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let tls = match &state.config.tls {
        Some(t) => Some(aorta_mllp::tls::server_config(t)?),
        None => None,
    };
    let app = router(state);
    let task = match tls {
        Some(config) => {
            let listener =
                tls::TlsListener::new(listener, config).map_err(|source| ServerError::Bind {
                    addr: addr.clone(),
                    source,
                })?;
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            })
        }
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }),
    };
    Ok((local, task))
}

/// Authenticates, authorises and counts every request.
async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let route_label = matched.clone().unwrap_or_else(|| "unmatched".into());
    let fhir = req.uri().path().starts_with("/fhir");
    let spec = matched.as_deref().and_then(|p| routes::lookup(&method, p));
    let response = 'answer: {
        if spec.is_some_and(|s| s.access == Access::Public) {
            break 'answer next.run(req).await;
        }
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // The console's cookie stands in for the header (see `console`).
        let cookie = bearer
            .is_none()
            .then(|| console::cookie_token(req.headers()))
            .flatten();
        let presented = bearer.or_else(|| cookie.as_ref().map(|t| format!("Bearer {t}")));
        let principal = match state.tokens.authenticate(presented.as_deref()) {
            Ok(p) => p,
            Err(denied) => {
                let why = match denied {
                    auth::Denied::Missing => "a bearer token is required",
                    auth::Denied::Invalid => {
                        "the bearer token is not valid (unknown, revoked or malformed)"
                    }
                };
                let mut r = api::error_response(StatusCode::UNAUTHORIZED, why, fhir);
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"aorta\""),
                );
                break 'answer r;
            }
        };
        if cookie.is_some() && method != "GET" && !req.headers().contains_key(console::CSRF_HEADER)
        {
            break 'answer api::error_response(
                StatusCode::FORBIDDEN,
                "a request authenticated by the console cookie must carry X-Aorta-Csrf: 1",
                fhir,
            );
        }
        match spec {
            Some(s) if s.access.admits(principal.role) => {}
            Some(_) => {
                tracing::info!(route = %route_label, token = %principal.id, role = %principal.role, "forbidden");
                break 'answer api::error_response(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "role {} may not call {method} {route_label}",
                        principal.role
                    ),
                    fhir,
                );
            }
            // A path of the table called with another method: the router answers 405.
            None if matched
                .as_deref()
                .is_some_and(|m| ROUTES.iter().any(|r| r.path == m)) => {}
            // A route that is not in the table has no policy: refused (deny by default).
            None if matched.is_some() => {
                tracing::error!(route = %route_label, "route without an access policy refused");
                break 'answer api::error_response(
                    StatusCode::FORBIDDEN,
                    &format!("{method} {route_label} has no access policy"),
                    fhir,
                );
            }
            // No such path: 404 for an authenticated caller.
            None => {}
        }
        req.extensions_mut().insert(principal);
        next.run(req).await
    };
    let status = response.status().as_u16();
    state.http.observe(&route_label, status, start.elapsed());
    tracing::debug!(method, route = %route_label, status, took_ms = start.elapsed().as_millis() as u64, "http");
    response
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        api::error_response(StatusCode::INTERNAL_SERVER_ERROR, &self.to_string(), false)
    }
}
