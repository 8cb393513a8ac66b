//! Every route, its access policy and its summary, in one table.
//!
//! The router is built from [`ROUTES`] (an exhaustive `match` gives each [`RouteId`] its
//! handler), the OpenAPI document is generated from it, and the guard looks each request's route
//! up in it: a route cannot exist without a policy, and the security test walks this table.

use crate::auth::Role;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token (liveness only).
    Public,
    /// A token with one of these roles.
    Roles(&'static [Role]),
}

impl Access {
    /// Whether `role` may call.
    pub fn admits(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Roles(r) => r.contains(&role),
        }
    }
}

/// Names a handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum RouteId {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Topics,
    Topic,
    Records,
    Pipelines,
    DeadLetters,
    Replay,
    Alerts,
    AckAlert,
    Audit,
    AuditVerify,
    FhirMetadata,
    FhirCreate,
    FhirUpdate,
    FhirBundle,
    LoginPage,
    Login,
    Console,
    Overview,
    AlertStream,
    Message,
    ElrAggregates,
    RestartPipeline,
}

/// One route.
#[derive(Clone, Copy, Debug)]
pub struct RouteSpec {
    /// Handler.
    pub id: RouteId,
    /// HTTP method.
    pub method: &'static str,
    /// Path template (axum syntax: `{name}`).
    pub path: &'static str,
    /// Policy.
    pub access: Access,
    /// Whether a successful call writes an audit entry (it reads bodies or patient data, or it
    /// changes what the system holds).
    pub audited: bool,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
}

use Role::*;
const OPS: &[Role] = &[Admin, Operator];
const ADMIN: &[Role] = &[Admin];
const CLINICAL: &[Role] = &[Admin, Clinician];
const AUDIT: &[Role] = &[Admin, Auditor];
const INGEST: &[Role] = &[Admin, Ingest];
const REPORTS: &[Role] = &[Admin, Operator, Clinician];
const ANY: &[Role] = &[Admin, Operator, Clinician, Auditor, Ingest];

const fn r(
    id: RouteId,
    method: &'static str,
    path: &'static str,
    access: Access,
    audited: bool,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec {
        id,
        method,
        path,
        access,
        audited,
        summary,
    }
}

/// The whole API.
pub const ROUTES: &[RouteSpec] = &[
    r(
        RouteId::Healthz,
        "GET",
        "/healthz",
        Access::Public,
        false,
        "Liveness: the process answers.",
    ),
    r(
        RouteId::Readyz,
        "GET",
        "/readyz",
        Access::Roles(ANY),
        false,
        "Readiness: the log answers, no pipeline has failed and no sink is down (503 with the reasons otherwise).",
    ),
    r(
        RouteId::Metrics,
        "GET",
        "/metrics",
        Access::Roles(OPS),
        false,
        "Prometheus metrics (text format 0.0.4).",
    ),
    r(
        RouteId::OpenApi,
        "GET",
        "/api/openapi.json",
        Access::Roles(ANY),
        false,
        "This document.",
    ),
    r(
        RouteId::Topics,
        "GET",
        "/api/topics",
        Access::Roles(OPS),
        false,
        "Topics with partitions, offsets and sizes.",
    ),
    r(
        RouteId::Topic,
        "GET",
        "/api/topics/{topic}",
        Access::Roles(OPS),
        false,
        "One topic: partitions, end offsets and consumer lag per group (pipelines' groups and ?group=).",
    ),
    r(
        RouteId::Records,
        "GET",
        "/api/topics/{topic}/records",
        Access::Roles(ADMIN),
        true,
        "Records by offset range (?partition, ?from, ?limit), with bodies. Audited.",
    ),
    r(
        RouteId::Pipelines,
        "GET",
        "/api/pipelines",
        Access::Roles(OPS),
        false,
        "Pipelines: status, counters, throughput, lag, sinks that are down, restarts.",
    ),
    r(
        RouteId::RestartPipeline,
        "POST",
        "/api/pipelines/{name}/restart",
        Access::Roles(OPS),
        true,
        "Restart a pipeline: a failed one at once (no back-off wait), a running one after it stops cleanly (checkpoint taken). 202.",
    ),
    r(
        RouteId::DeadLetters,
        "GET",
        "/api/dead-letters/{topic}",
        Access::Roles(OPS),
        false,
        "Dead letters with their reasons; bodies only for admin (audited).",
    ),
    r(
        RouteId::Replay,
        "POST",
        "/api/dead-letters/{topic}/replay",
        Access::Roles(OPS),
        true,
        "Re-inject selected dead letters into their source topic (or `to`). Audited.",
    ),
    r(
        RouteId::AlertStream,
        "GET",
        "/api/alerts/stream",
        Access::Roles(CLINICAL),
        true,
        "Alerts and acknowledgements as server-sent events (the last 20, then live). Audited.",
    ),
    r(
        RouteId::Alerts,
        "GET",
        "/api/alerts",
        Access::Roles(CLINICAL),
        true,
        "Alerts with acknowledgement state (?patient, ?limit). Audited.",
    ),
    r(
        RouteId::AckAlert,
        "POST",
        "/api/alerts/{id}/ack",
        Access::Roles(CLINICAL),
        true,
        "Acknowledge an alert. Audited.",
    ),
    r(
        RouteId::ElrAggregates,
        "GET",
        "/api/elr/aggregates",
        Access::Roles(REPORTS),
        false,
        "Daily lab-report aggregates: tests, positives, positivity per jurisdiction, LOINC and collection day (?jurisdiction, ?loinc, ?limit). No patient data.",
    ),
    r(
        RouteId::Audit,
        "GET",
        "/api/audit",
        Access::Roles(AUDIT),
        false,
        "Audit entries (?from, ?limit).",
    ),
    r(
        RouteId::AuditVerify,
        "GET",
        "/api/audit/verify",
        Access::Roles(AUDIT),
        false,
        "Recompute the audit hash chain.",
    ),
    r(
        RouteId::Message,
        "GET",
        "/api/messages/{topic}/{partition}/{offset}",
        Access::Roles(ADMIN),
        true,
        "One record; HL7 v2 as named segments and fields with its FHIR R4 mapping. Audited.",
    ),
    r(
        RouteId::Overview,
        "GET",
        "/api/overview",
        Access::Roles(OPS),
        false,
        "Topics, pipelines and MLLP listeners in one call (the console's first tab).",
    ),
    r(
        RouteId::LoginPage,
        "GET",
        "/login",
        Access::Public,
        false,
        "The console's sign-in form (no data).",
    ),
    r(
        RouteId::Login,
        "POST",
        "/login",
        Access::Public,
        false,
        "Check a token and set it as an HttpOnly, SameSite=Strict cookie for the console.",
    ),
    r(
        RouteId::Console,
        "GET",
        "/console",
        Access::Roles(ANY),
        false,
        "The web console.",
    ),
    r(
        RouteId::FhirMetadata,
        "GET",
        "/fhir/metadata",
        Access::Roles(ANY),
        false,
        "FHIR CapabilityStatement.",
    ),
    r(
        RouteId::FhirCreate,
        "POST",
        "/fhir/{type}",
        Access::Roles(INGEST),
        false,
        "Create a FHIR R4 resource: 201 with Location, or 400/422 with an OperationOutcome.",
    ),
    r(
        RouteId::FhirUpdate,
        "PUT",
        "/fhir/{type}/{id}",
        Access::Roles(INGEST),
        false,
        "Create or update a FHIR R4 resource by id.",
    ),
    r(
        RouteId::FhirBundle,
        "POST",
        "/fhir",
        Access::Roles(INGEST),
        false,
        "A batch or transaction Bundle.",
    ),
];

impl RouteId {
    /// Every route id. [`RouteId::index`] is an exhaustive match, so a new variant does not
    /// compile until it is placed here, and the test below fails until it has a row in
    /// [`ROUTES`].
    pub const ALL: [RouteId; 26] = {
        use RouteId::*;
        [
            Healthz,
            Readyz,
            Metrics,
            OpenApi,
            Topics,
            Topic,
            Records,
            Pipelines,
            DeadLetters,
            Replay,
            Alerts,
            AckAlert,
            Audit,
            AuditVerify,
            FhirMetadata,
            FhirCreate,
            FhirUpdate,
            FhirBundle,
            LoginPage,
            Login,
            Console,
            Overview,
            AlertStream,
            Message,
            ElrAggregates,
            RestartPipeline,
        ]
    };

    /// Position in [`RouteId::ALL`].
    pub const fn index(self) -> usize {
        use RouteId::*;
        match self {
            Healthz => 0,
            Readyz => 1,
            Metrics => 2,
            OpenApi => 3,
            Topics => 4,
            Topic => 5,
            Records => 6,
            Pipelines => 7,
            DeadLetters => 8,
            Replay => 9,
            Alerts => 10,
            AckAlert => 11,
            Audit => 12,
            AuditVerify => 13,
            FhirMetadata => 14,
            FhirCreate => 15,
            FhirUpdate => 16,
            FhirBundle => 17,
            LoginPage => 18,
            Login => 19,
            Console => 20,
            Overview => 21,
            AlertStream => 22,
            Message => 23,
            ElrAggregates => 24,
            RestartPipeline => 25,
        }
    }
}

/// The spec for a method and matched path template.
pub fn lookup(method: &str, path: &str) -> Option<&'static RouteSpec> {
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

/// The OpenAPI 3.1 document, generated from [`ROUTES`].
pub fn openapi() -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let mut paths = Map::new();
    for route in ROUTES {
        let params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "operationId": format!("{:?}", route.id),
            "summary": route.summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK"},
                "401": {"description": "No valid bearer token"},
                "403": {"description": "The token's role may not call this route"}
            },
        });
        match route.access {
            Access::Public => op["security"] = json!([]),
            Access::Roles(roles) => {
                op["x-aorta-roles"] = json!(roles.iter().map(|r| r.name()).collect::<Vec<_>>());
            }
        }
        if route.audited {
            op["x-aorta-audited"] = json!(true);
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Aorta API", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_id_has_exactly_one_row_in_the_table() {
        for (i, id) in RouteId::ALL.iter().enumerate() {
            assert_eq!(id.index(), i, "{id:?} is out of place in RouteId::ALL");
            let rows = ROUTES.iter().filter(|r| r.id == *id).count();
            assert_eq!(rows, 1, "{id:?} has {rows} rows in ROUTES");
        }
        assert_eq!(ROUTES.len(), RouteId::ALL.len());
    }
}
