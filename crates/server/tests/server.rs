//! The server end to end on loopback, against a real embedded log: route policy (every route of
//! the table), the audit chain and its tamper detection, FHIR REST ingest, dead-letter replay,
//! alert acknowledgement, and `/metrics` parsed by an independent Prometheus parser.

use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, ReadOptions, Record, TopicConfig};
use aorta_server::audit::{self, AuditEntry};
use aorta_server::{AppState, Components, ROUTES, Role, ServerConfig};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

struct Server {
    base: String,
    log: Arc<dyn Log>,
    state: AppState,
    tokens: HashMap<Role, String>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_with(
    mut config: ServerConfig,
    log: Option<Arc<dyn Log>>,
    components: Components,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> = match log {
        Some(l) => l,
        None => Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap()),
    };
    config.listen = "127.0.0.1:0".into();
    let state = aorta_server::prepare(
        log.clone(),
        config,
        dir.path().join("tokens.json"),
        components,
    )
    .await
    .unwrap();
    let mut tokens = HashMap::new();
    for role in Role::ALL {
        let (_, t) = state.tokens.create(role, &format!("test-{role}")).unwrap();
        tokens.insert(role, t);
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr, _task) = aorta_server::serve(state.clone(), async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    Server {
        base: format!("http://{addr}"),
        log,
        state,
        tokens,
        http: reqwest::Client::new(),
        _dir: dir,
        _stop: tx,
    }
}

async fn start() -> Server {
    start_with(ServerConfig::default(), None, Components::default()).await
}

impl Server {
    async fn call(
        &self,
        method: &str,
        path: &str,
        role: Option<Role>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (status, text) = self
            .raw(
                method,
                path,
                role,
                body.map(|b| b.to_string()),
                "application/fhir+json",
            )
            .await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        role: Option<Role>,
        body: Option<String>,
        content_type: &str,
    ) -> (u16, String) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(r) = role {
            req = req.bearer_auth(&self.tokens[&r]);
        }
        if let Some(b) = body {
            req = req.header("content-type", content_type).body(b);
        }
        let resp = req.header("aorta-purpose", "test").send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// Status and whether the answer asks for a bearer token; the body is not read (the alert
    /// stream never ends).
    async fn status_only(
        &self,
        method: &str,
        path: &str,
        role: Option<Role>,
        body: bool,
    ) -> (u16, bool) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(r) = role {
            req = req.bearer_auth(&self.tokens[&r]);
        }
        if body {
            req = req
                .header("content-type", "application/fhir+json")
                .body("{}");
        }
        let resp = req.send().await.unwrap();
        (
            resp.status().as_u16(),
            resp.headers().contains_key("www-authenticate"),
        )
    }

    async fn all(&self, topic: &str) -> Vec<aorta_log::ConsumedRecord> {
        let mut out = Vec::new();
        let Ok(d) = self.log.describe_topic(topic).await else {
            return out;
        };
        for p in d.partitions {
            let mut at = p.log_start;
            while at < p.high_watermark {
                let b = self
                    .log
                    .read(topic, p.partition, at, ReadOptions::default())
                    .await
                    .unwrap();
                at = b.next_offset(at);
                out.extend(b.records);
            }
        }
        out
    }
}

fn concrete(path: &str) -> String {
    path.replace("{topic}", "t")
        .replace("{partition}", "0")
        .replace("{offset}", "0")
        .replace("{id}", "x1")
        .replace("{type}", "Patient")
        .replace("{name}", "p")
}

#[tokio::test]
async fn every_route_refuses_a_missing_token_and_every_role_its_policy_does_not_admit() {
    let s = start().await;
    s.log
        .create_topic("t", TopicConfig::default())
        .await
        .unwrap();
    let mut checked = 0;
    for route in ROUTES {
        let path = concrete(route.path);
        let body = route.method != "GET";
        let (status, asks) = s.status_only(route.method, &path, None, body).await;
        match route.access {
            aorta_server::Access::Public => {
                assert!(!asks && status != 403, "{} {path}: {status}", route.method)
            }
            aorta_server::Access::Roles(_) => {
                assert!(
                    status == 401 && asks,
                    "{} {path} without a token: {status}",
                    route.method
                )
            }
        }
        for role in Role::ALL {
            let (status, _) = s.status_only(route.method, &path, Some(role), body).await;
            if route.access == aorta_server::Access::Public {
                // A sign-in with a bad form is refused on its own terms; never by role.
                assert_ne!(status, 403, "{role} on {} {path}", route.method);
            } else if route.access.admits(role) {
                assert!(
                    status != 401 && status != 403,
                    "{role} on {} {path}: {status}",
                    route.method
                );
            } else {
                assert_eq!(status, 403, "{role} on {} {path}", route.method);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * Role::ALL.len());
    // A made-up token, a token without the scheme, and a revoked one are all 401.
    let url = format!("{}/api/topics", s.base);
    for auth in [
        "Bearer aorta_12345678_nope",
        "aorta_x",
        "Basic YWRtaW46YWRtaW4=",
    ] {
        let r = s
            .http
            .get(&url)
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{auth}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    let op = s
        .state
        .tokens
        .list()
        .unwrap()
        .into_iter()
        .find(|e| e.role == Role::Operator)
        .unwrap();
    s.state.tokens.revoke(&op.id).unwrap();
    assert_eq!(
        s.call("GET", "/api/topics", Some(Role::Operator), None)
            .await
            .0,
        401
    );
    // Unknown paths do not reveal themselves without a token.
    assert_eq!(s.call("GET", "/api/nothing", None, None).await.0, 401);
    assert_eq!(
        s.call("GET", "/api/nothing", Some(Role::Admin), None)
            .await
            .0,
        404
    );
    // The OpenAPI document lists every route with its roles.
    let (_, doc) = s
        .call("GET", "/api/openapi.json", Some(Role::Auditor), None)
        .await;
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing from openapi",
            route.method,
            route.path
        );
    }
}

#[tokio::test]
async fn reads_of_bodies_and_patient_data_are_audited_and_tampering_is_detected() {
    let s = start().await;
    s.log
        .create_topic("hl7", TopicConfig::default())
        .await
        .unwrap();
    s.log
        .append(
            "hl7",
            0,
            (0..5)
                .map(|i| Record::new(format!("MSH|^~\\&|{i}|DOE^JANE")))
                .collect(),
        )
        .await
        .unwrap();
    let (st, got) = s
        .call(
            "GET",
            "/api/topics/hl7/records?from=1&limit=3",
            Some(Role::Admin),
            None,
        )
        .await;
    assert_eq!(st, 200, "{got}");
    let offsets: Vec<u64> = got["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [1, 2, 3]);
    assert_eq!(got["records"][0]["value"], "MSH|^~\\&|1|DOE^JANE");
    assert_eq!(
        s.call("GET", "/api/alerts", Some(Role::Clinician), None)
            .await
            .0,
        200
    );

    let (st, entries) = s.call("GET", "/api/audit", Some(Role::Auditor), None).await;
    assert_eq!(st, 200);
    let entries: Vec<AuditEntry> = serde_json::from_value(entries["entries"].clone()).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        (
            entries[0].seq,
            entries[0].action.as_str(),
            entries[0].target.as_str()
        ),
        (0, "read-records", "hl7/0/1..3")
    );
    assert_eq!(entries[0].role, "admin");
    assert_eq!(entries[0].purpose.as_deref(), Some("test"));
    assert_eq!(entries[1].prev, entries[0].hash);
    assert_eq!(entries[1].action, "list-alerts");
    // The trail names what was read, never its content.
    let raw: Vec<u8> = s
        .all("aorta.audit")
        .await
        .iter()
        .flat_map(|r| r.record.value.to_vec())
        .collect();
    assert!(!String::from_utf8_lossy(&raw).contains("DOE"));

    let (st, v) = s
        .call("GET", "/api/audit/verify", Some(Role::Auditor), None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["entries"], 2);

    // A second writer on the same topic (a restarted server) continues the chain.
    let again = audit::AuditLog::open(s.log.clone(), "aorta.audit")
        .await
        .unwrap();
    let who = aorta_server::Principal {
        id: "cafe0001".into(),
        name: "n".into(),
        role: Role::Admin,
    };
    let e = again
        .record(audit::Action {
            principal: &who,
            action: "read-records",
            target: "x/0/0..0".into(),
            purpose: None,
        })
        .await
        .unwrap();
    assert_eq!(e.seq, 2);
    assert_eq!(
        audit::verify(&*s.log, "aorta.audit").await.unwrap().entries,
        3
    );

    // Copy the trail with one change each way and check that verify finds it at the right place.
    let good = s.all("aorta.audit").await;
    let tampered = |name: &'static str, f: fn(usize, &mut AuditEntry) -> bool| {
        let log = s.log.clone();
        let good = good.clone();
        async move {
            log.create_topic(name, TopicConfig::default())
                .await
                .unwrap();
            for (i, r) in good.iter().enumerate() {
                let mut e: AuditEntry = serde_json::from_slice(&r.record.value).unwrap();
                if f(i, &mut e) {
                    log.append(name, 0, vec![Record::new(serde_json::to_vec(&e).unwrap())])
                        .await
                        .unwrap();
                }
            }
            audit::verify(&*log, name).await.unwrap()
        }
    };
    let edited = tampered("t.edited", |i, e| {
        if i == 1 {
            e.target = "all patients, nothing to see".into();
        }
        true
    })
    .await;
    let b = edited.broken.expect("an edited entry is detected");
    assert_eq!(b.offset, 1);
    assert!(b.reason.contains("altered"), "{}", b.reason);
    let rehashed = tampered("t.rehashed", |i, e| {
        if i == 1 {
            e.actor = "someone-else".into();
            e.hash = e.compute_hash();
        }
        true
    })
    .await;
    assert_eq!(
        rehashed.broken.map(|b| b.offset),
        Some(2),
        "re-hashing one entry breaks the next link"
    );
    let removed = tampered("t.removed", |i, _| i != 0).await;
    let b = removed.broken.expect("a removed entry is detected");
    assert_eq!(b.offset, 0);
    assert!(b.reason.contains("removed"), "{}", b.reason);
    assert!(tampered("t.same", |_, _| true).await.broken.is_none());
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "name": [{"family": "Chalmers", "given": ["Peter"]}], "gender": "male", "birthDate": "1974-12-25"})
}

#[tokio::test]
async fn fhir_ingest_stores_valid_resources_durably_and_dead_letters_the_rest() {
    let mut config = ServerConfig::default();
    config.fhir.max_body_bytes = 4096;
    let s = start_with(config, None, Components::default()).await;
    let ingest = Some(Role::Ingest);

    let (st, stored) = s
        .call("POST", "/fhir/Patient", ingest, Some(&patient()))
        .await;
    assert_eq!(st, 201, "{stored}");
    let id = stored["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let on_topic = s.all("fhir.Patient").await;
    assert_eq!(on_topic.len(), 1);
    assert_eq!(on_topic[0].record.key.as_deref(), Some(id.as_bytes()));
    let v: Value = serde_json::from_slice(&on_topic[0].record.value).unwrap();
    assert_eq!(v["name"][0]["family"], "Chalmers");
    // The same body again: the same id (a retry is idempotent by key).
    let (_, again) = s
        .call("POST", "/fhir/Patient", ingest, Some(&patient()))
        .await;
    assert_eq!(again["id"], id);
    let r = s
        .http
        .post(format!("{}/fhir/Patient", s.base))
        .bearer_auth(&s.tokens[&Role::Ingest])
        .header("content-type", "application/fhir+json; charset=utf-8")
        .body(patient().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        r.headers()["location"],
        format!("fhir/Patient/{id}").as_str()
    );

    // PUT with the id.
    let mut p = patient();
    p["id"] = json!("pat-1");
    assert_eq!(
        s.call("PUT", "/fhir/Patient/pat-1", ingest, Some(&p))
            .await
            .0,
        200
    );
    let (st, o) = s.call("PUT", "/fhir/Patient/pat-2", ingest, Some(&p)).await;
    assert_eq!(st, 422, "{o}");
    assert_eq!(o["resourceType"], "OperationOutcome");

    // Invalid: a bad date and a missing required element, each located.
    let bad = json!({"resourceType": "Observation", "code": {"text": "hr"}, "effectiveDateTime": "2024-13-01"});
    let (st, o) = s
        .call("POST", "/fhir/Observation", ingest, Some(&bad))
        .await;
    assert_eq!(st, 422, "{o}");
    let where_: Vec<&str> = o["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["expression"][0].as_str())
        .collect();
    assert!(where_.iter().any(|w| w.contains("status")), "{o}");
    assert!(where_.iter().any(|w| w.contains("effective")), "{o}");
    // Wrong type for the URL, not JSON, wrong media type, too large.
    assert_eq!(
        s.call("POST", "/fhir/Observation", ingest, Some(&patient()))
            .await
            .0,
        400
    );
    assert_eq!(
        s.raw(
            "POST",
            "/fhir/Patient",
            ingest,
            Some("{not json".into()),
            "application/fhir+json"
        )
        .await
        .0,
        400
    );
    assert_eq!(
        s.raw(
            "POST",
            "/fhir/Patient",
            ingest,
            Some(patient().to_string()),
            "text/plain"
        )
        .await
        .0,
        415
    );
    let mut big = patient();
    big["text"] = json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", "x".repeat(5000))});
    let (st, o) = s.call("POST", "/fhir/Patient", ingest, Some(&big)).await;
    assert_eq!(st, 413);
    assert_eq!(o["issue"][0]["code"], "too-costly");

    // Every rejected body is on the dead-letter topic with its reasons (415/413 never had one).
    let dlq = s.all("fhir.dlq").await;
    assert_eq!(
        dlq.len(),
        4,
        "PUT mismatch, invalid Observation, wrong type, not JSON"
    );
    let reason = |r: &aorta_log::ConsumedRecord| {
        r.record
            .headers
            .iter()
            .find(|h| h.0 == "aorta.error")
            .map(|h| String::from_utf8_lossy(&h.1).into_owned())
            .unwrap()
    };
    assert!(reason(&dlq[1]).contains("status"), "{}", reason(&dlq[1]));

    // A transaction with one bad entry writes nothing; a batch writes the good entries.
    let before = s.all("fhir.Patient").await.len();
    let entries = json!([
        {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": bad, "request": {"method": "POST", "url": "Observation"}},
    ]);
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let (st, o) = s.call("POST", "/fhir", ingest, Some(&tx)).await;
    assert_eq!(st, 422, "{o}");
    assert!(
        o["issue"][0]["expression"][0]
            .as_str()
            .unwrap()
            .starts_with("Bundle.entry[1].resource"),
        "{o}"
    );
    assert_eq!(s.all("fhir.Patient").await.len(), before);
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": entries});
    let (st, o) = s.call("POST", "/fhir", ingest, Some(&batch)).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["type"], "batch-response");
    assert_eq!(o["entry"][0]["response"]["status"], "201 Created");
    assert!(
        o["entry"][1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("422")
    );
    assert_eq!(s.all("fhir.Patient").await.len(), before + 1);

    let (st, cs) = s
        .call("GET", "/fhir/metadata", Some(Role::Ingest), None)
        .await;
    assert_eq!((st, cs["fhirVersion"].as_str()), (200, Some("4.0.1")));
}

#[tokio::test]
async fn dead_letters_show_reasons_to_operators_and_replay_into_the_source_topic() {
    let s = start().await;
    for t in ["vitals", "p.dlq"] {
        s.log.create_topic(t, TopicConfig::default()).await.unwrap();
    }
    s.log
        .append(
            "p.dlq",
            0,
            vec![
                Record::new(r#"{"patient":"p1","hr":"fast"}"#)
                    .with_header("aorta.error", "hr: expected a number")
                    .with_header("aorta.operator", "p/steps[0]:map")
                    .with_header("aorta.lineage", "vitals/0/5")
                    .with_key("p1"),
                Record::new("no lineage"),
            ],
        )
        .await
        .unwrap();
    let (st, v) = s
        .call(
            "GET",
            "/api/dead-letters/p.dlq?from=0",
            Some(Role::Operator),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["bodies"], false);
    assert!(
        v["records"][0].get("value").is_none(),
        "operators never see bodies: {v}"
    );
    assert_eq!(
        v["records"][0]["headers"][0],
        json!(["aorta.error", "hr: expected a number"])
    );
    let audited_before = s.all("aorta.audit").await.len();
    let (_, v) = s
        .call(
            "GET",
            "/api/dead-letters/p.dlq?from=0",
            Some(Role::Admin),
            None,
        )
        .await;
    assert_eq!(v["records"][0]["value"], r#"{"patient":"p1","hr":"fast"}"#);
    assert_eq!(s.all("aorta.audit").await.len(), audited_before + 1);

    let (st, v) = s
        .call(
            "POST",
            "/api/dead-letters/p.dlq/replay",
            Some(Role::Operator),
            Some(&json!({"offsets": [0]})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["replayed"][0]["to"], "vitals");
    let back = s.all("vitals").await;
    assert_eq!(back.len(), 1);
    assert_eq!(
        &back[0].record.value[..],
        br#"{"patient":"p1","hr":"fast"}"#
    );
    assert_eq!(back[0].record.key.as_deref(), Some(&b"p1"[..]));
    let names: Vec<&str> = back[0]
        .record
        .headers
        .iter()
        .map(|h| h.0.as_str())
        .collect();
    assert_eq!(names, ["aorta.replayed-from"]);
    // No lineage and no `to`: refused, nothing written; an offset that does not exist: 404.
    let (st, v) = s
        .call(
            "POST",
            "/api/dead-letters/p.dlq/replay",
            Some(Role::Operator),
            Some(&json!({"offsets": [1]})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        s.call(
            "POST",
            "/api/dead-letters/p.dlq/replay",
            Some(Role::Operator),
            Some(&json!({"offsets": [0, 9]}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        s.all("vitals").await.len(),
        1,
        "an all-or-nothing replay wrote nothing"
    );
    let (st, _) = s
        .call(
            "POST",
            "/api/dead-letters/p.dlq/replay",
            Some(Role::Operator),
            Some(&json!({"offsets": [1], "to": "vitals"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.all("vitals").await.len(), 2);
    let last = s.all("aorta.audit").await.pop().unwrap();
    let e: AuditEntry = serde_json::from_slice(&last.record.value).unwrap();
    assert_eq!(
        (e.action.as_str(), e.target.as_str()),
        ("replay", "p.dlq/0/1 -> vitals")
    );
}

#[tokio::test]
async fn alerts_are_listed_per_patient_and_acknowledged_once() {
    let config = ServerConfig {
        alert_topics: vec!["alerts".into()],
        ..Default::default()
    };
    let s = start_with(config, None, Components::default()).await;
    s.log
        .create_topic("alerts", TopicConfig::default())
        .await
        .unwrap();
    let alert = |id: &str, patient: &str, t: i64| {
        Record::new(json!({"kind": "alert", "alert_id": id, "patient": patient, "score": "news2", "total": 7, "time_ms": t}).to_string())
    };
    s.log
        .append(
            "alerts",
            0,
            vec![
                alert("a1", "Patient/1", 1),
                Record::new(r#"{"kind":"evaluation"}"#),
                alert("a2", "Patient/2", 2),
            ],
        )
        .await
        .unwrap();
    let c = Some(Role::Clinician);
    let (_, v) = s.call("GET", "/api/alerts", c, None).await;
    let ids: Vec<&str> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a2", "a1"], "newest first, evaluations left out");
    let (_, v) = s
        .call("GET", "/api/alerts?patient=Patient/1", c, None)
        .await;
    assert_eq!(v["alerts"].as_array().unwrap().len(), 1);
    let (st, v) = s
        .call(
            "POST",
            "/api/alerts/a1/ack",
            c,
            Some(&json!({"note": "reviewed"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        s.call("POST", "/api/alerts/a1/ack", c, Some(&json!({})))
            .await
            .0,
        409
    );
    assert_eq!(
        s.call("POST", "/api/alerts/nope/ack", c, Some(&json!({})))
            .await
            .0,
        404
    );
    let (_, v) = s.call("GET", "/api/alerts", c, None).await;
    assert_eq!(v["alerts"][1]["ack"]["note"], "reviewed");
    assert_eq!(v["alerts"][1]["ack"]["by_name"], "test-clinician");
    assert!(v["alerts"][0]["ack"].is_null());
    let acks = s.all("aorta.alerts.acks").await;
    assert_eq!(acks.len(), 1, "acks are durable records, keyed by alert id");
    assert_eq!(acks[0].record.key.as_deref(), Some(&b"a1"[..]));
}

#[tokio::test]
async fn elr_aggregates_list_the_latest_window_per_state_test_and_day() {
    let s = start_with(ServerConfig::default(), None, Components::default()).await;
    let (st, v) = s
        .call("GET", "/api/elr/aggregates", Some(Role::Operator), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["aggregates"], json!([]), "no topic yet: an empty list");
    s.log
        .create_topic("elr.aggregates", TopicConfig::default())
        .await
        .unwrap();
    let day = |j: &str, d: i64, tests: u64| {
        Record::new(
            json!({"jurisdiction": j, "loinc": "94500-6", "window_start": d * 86_400_000, "window_end": (d + 1) * 86_400_000, "tests": tests})
                .to_string(),
        )
    };
    s.log
        .append(
            "elr.aggregates",
            0,
            vec![
                day("WA", 1, 3),
                day("OR", 1, 1),
                day("WA", 2, 5),
                day("WA", 1, 4),
            ],
        )
        .await
        .unwrap();
    let (_, v) = s
        .call(
            "GET",
            "/api/elr/aggregates?jurisdiction=wa",
            Some(Role::Clinician),
            None,
        )
        .await;
    let got: Vec<(i64, u64)> = v["aggregates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["window_start"].as_i64().unwrap() / 86_400_000,
                a["tests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(2, 5), (1, 4)],
        "newest day first; a rewrite replaces the window"
    );
    let (_, v) = s
        .call("GET", "/api/elr/aggregates", Some(Role::Admin), None)
        .await;
    assert_eq!(v["aggregates"].as_array().unwrap().len(), 3);
    assert_eq!(
        s.call("GET", "/api/elr/aggregates", Some(Role::Auditor), None)
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let raw: Arc<dyn Log> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).unwrap());
    let (log, log_metrics) = aorta_server::metered::MeteredLog::wrap(raw);
    let mllp_config = aorta_mllp::MllpSourceConfig {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let mllp = aorta_mllp::MllpServer::bind(mllp_config.clone(), log.clone())
        .await
        .unwrap();
    let addr = mllp.local_addr().unwrap();
    let stats = mllp.stats();
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(mllp.run(stop_rx));
    let components = Components {
        mllp: vec![aorta_server::MllpInfo {
            listen: "mllp-test".into(),
            topic: mllp_config.topic.clone(),
            dead_letter_topic: mllp_config.dead_letter_topic.clone(),
            stats,
        }],
        log_metrics: Some(log_metrics),
        ..Default::default()
    };
    let s = start_with(ServerConfig::default(), Some(log), components).await;
    let mut client =
        aorta_mllp::MllpClient::connect(&addr.to_string(), std::time::Duration::from_secs(5))
            .await
            .unwrap();
    for i in 0..3 {
        let msg = aorta_hl7::samples::oru_r01().replace("LAB000123", &format!("LAB{i:06}"));
        assert_eq!(client.send(msg.as_bytes()).await.unwrap().code, "AA");
    }
    assert_eq!(
        s.call(
            "POST",
            "/fhir/Patient",
            Some(Role::Ingest),
            Some(&patient())
        )
        .await
        .0,
        201
    );
    assert_eq!(s.call("GET", "/metrics", None, None).await.0, 401);
    let (st, text) = s
        .raw("GET", "/metrics", Some(Role::Operator), None, "")
        .await;
    assert_eq!(st, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(
        value("aorta_mllp_messages_total", Some(("outcome", "accepted"))),
        3.0
    );
    assert_eq!(
        value("aorta_mllp_messages_total", Some(("outcome", "rejected"))),
        0.0
    );
    assert_eq!(
        value("aorta_mllp_ack_latency_seconds", None),
        3.0,
        "3 ACKs timed (+Inf bucket)"
    );
    assert!(
        value("aorta_log_append_duration_seconds", None) >= 4.0,
        "3 MLLP appends and one FHIR append"
    );
    assert_eq!(
        value("aorta_fhir_ingest_total", Some(("outcome", "stored"))),
        1.0
    );
    assert_eq!(
        value("aorta_topic_high_watermark", Some(("topic", "hl7.inbound"))),
        3.0
    );
    assert_eq!(
        value("aorta_http_requests_total", Some(("status", "401"))),
        1.0
    );
    assert_eq!(value("aorta_up", None), 1.0);
    // Histogram buckets are cumulative and end in +Inf = count.
    let h = scrape
        .samples
        .iter()
        .find(|s| s.metric == "aorta_mllp_ack_latency_seconds")
        .unwrap();
    let prometheus_parse::Value::Histogram(ref buckets) = h.value else {
        panic!("not a histogram")
    };
    assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
}

#[tokio::test]
async fn https_serves_with_the_configured_certificate_and_refuses_plain_http() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem_dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        pem_dir.path().join("cert.pem"),
        pem_dir.path().join("key.pem"),
    );
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let config = ServerConfig {
        tls: Some(aorta_mllp::tls::TlsConfig {
            cert_path: cert.clone(),
            key_path: key,
        }),
        ..Default::default()
    };
    let s = start_with(config, None, Components::default()).await;
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let r = trusting
        .get(format!("https://localhost:{port}/api/topics"))
        .bearer_auth(&s.tokens[&Role::Operator])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A client that does not trust the certificate, and plain HTTP, get nothing.
    assert!(
        reqwest::get(format!("https://localhost:{port}/healthz"))
            .await
            .is_err()
    );
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err()
    );
    // A bad key path is an error naming the file, at start.
    let bad = ServerConfig {
        tls: Some(aorta_mllp::tls::TlsConfig {
            cert_path: cert,
            key_path: "/nonexistent/key.pem".into(),
        }),
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).unwrap());
    let state = aorta_server::prepare(log, bad, dir.path().join("t.json"), Components::default())
        .await
        .unwrap();
    let err = aorta_server::serve(state, async {})
        .await
        .expect_err("a missing key fails the start");
    assert!(err.to_string().contains("/nonexistent/key.pem"), "{err}");
}
