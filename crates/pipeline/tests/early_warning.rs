//! The `early-warning` step over FHIR Observations: alerts with every sub-score, the
//! observations used and their lineage, a DetectedIssue that validates, suppression and
//! escalation, the NEWS2 scope flag, stale values, and dead letters for unreadable input.

mod common;

use aorta_fhir::{Mode, parse_resource};
use aorta_log::{EmbeddedConfig, EmbeddedLog, Log, Record, TopicConfig};
use serde_json::{Value, json};
use std::sync::Arc;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const H: i64 = 3_600_000;

fn obs(id: &str, patient: &str, code: &str, t: i64, value: Value) -> Value {
    let mut o = json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": aorta_fhir::datetime::format_utc_ms(t),
    });
    match value {
        Value::String(s) => o["valueCodeableConcept"] = json!({"coding": [{"code": s}]}),
        v => o["valueQuantity"] = json!({"value": v}),
    }
    o
}

async fn run(events: &[Value]) -> (tempfile::TempDir, Arc<dyn Log>) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
    log.create_topic("fhir", TopicConfig::default())
        .await
        .unwrap();
    let recs: Vec<Record> = events.iter().map(|v| Record::new(v.to_string())).collect();
    log.append("fhir", 0, recs).await.unwrap();
    let toml = r#"
[[pipelines]]
name = "ew"
from = ["fhir"]
[[pipelines.steps]]
op = "early-warning"
rules = [{ score = "news2", level = 2, suppress = "4h" }, { score = "sirs", level = 2, suppress = "4h" }]
[[pipelines.sinks]]
type = "topic"
topic = "alerts"
"#;
    common::run_until_end(&log, toml, &dir.path().join("state")).await;
    (dir, log)
}

async fn read(
    log: &Arc<dyn Log>,
    topic: &str,
) -> Vec<(Value, Vec<(String, String)>, Option<String>)> {
    common::read_all(log, topic)
        .await
        .into_iter()
        .map(|r| {
            let headers = r
                .record
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).to_string()))
                .collect();
            let key = r
                .record
                .key
                .map(|k| String::from_utf8_lossy(&k).to_string());
            (
                serde_json::from_slice(&r.record.value).unwrap(),
                headers,
                key,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_explain_themselves_and_follow_suppression_and_escalation() {
    // The issue's example patient, one observation at a time: NEWS2 climbs through medium
    // (alert) to high (escalation inside the suppression window).
    let p = "p1";
    let mut events = vec![
        obs("rr1", p, "9279-1", T0, json!(24)),      // rr 2
        obs("sp1", p, "59408-5", T0, json!(93)),     // spo2 2
        obs("o21", p, "3150-0", T0, json!(21)),      // air 0
        obs("bp1", p, "8480-6", T0, json!(105)),     // sbp 1   -> 5: medium, alert
        obs("hr1", p, "8867-4", T0, json!(112)),     // hr 2    -> 7: high, escalation
        obs("cv1", p, "67775-7", T0, json!("A")),    // A 0
        obs("tp1", p, "8310-5", T0, json!(38.4)),    // temp 1  -> 8: high, suppressed
        obs("hr2", p, "8867-4", T0 + H, json!(115)), // still high: suppressed
        // Five hours later, outside the 4 h window: the T0 vital signs are stale (4 h), ACVPU
        // and air are not (12 h). HR 135 alone is low–medium (no alert); RR 26 makes it
        // medium — a new alert, the window having passed; SpO2 91 makes it high: escalation.
        obs("hr3", p, "8867-4", T0 + 5 * H, json!(135)),
        obs("rr3", p, "9279-1", T0 + 5 * H, json!(26)),
        obs("sp3", p, "59408-5", T0 + 5 * H, json!(91)),
    ];
    // A child: flagged once, never NEWS2-scored.
    events.push(json!({"resourceType": "Patient", "id": "kid", "birthDate": "2015-06-01"}));
    events.push(obs("k1", "kid", "9279-1", T0, json!(40)));
    events.push(obs("k2", "kid", "8867-4", T0, json!(160)));
    // Unreadable: no value; impossible value; no patient.
    events.push(
        json!({"resourceType": "Observation", "id": "bad1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p9"}, "effectiveDateTime": "2026-01-01T00:00:00Z"}),
    );
    events.push(obs("bad2", "p9", "8867-4", T0, json!(900)));
    let mut nobody = obs("bad3", "p9", "8867-4", T0, json!(80));
    nobody.as_object_mut().unwrap().remove("subject");
    events.push(nobody);
    // Codes and resources the step does not use are dropped, not errors.
    events.push(obs("x", p, "2345-7", T0, json!(5.5)));
    events.push(json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress"}));

    let (_dir, log) = run(&events).await;
    let out = read(&log, "alerts").await;
    let alerts: Vec<&Value> = out
        .iter()
        .map(|(v, _, _)| v)
        .filter(|v| v["kind"] == "alert" && v["patient"] == "Patient/p1" && v["score"] == "news2")
        .collect();
    let got: Vec<(i64, u64, bool)> = alerts
        .iter()
        .map(|a| {
            (
                (a["time_ms"].as_i64().unwrap() - T0) / H,
                a["total"].as_u64().unwrap(),
                a["escalation"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(0, 5, false), (0, 7, true), (5, 6, false), (5, 9, true)],
        "{alerts:#?}"
    );
    assert_eq!(alerts[0]["band"], "medium");
    assert_eq!(alerts[1]["band"], "high");

    // The high alert explains itself: sub-scores and the observations with their lineage.
    let a = alerts[1];
    assert_eq!(a["news2"]["subscores"]["hr"], 2);
    assert_eq!(a["news2"]["subscores"]["rr"], 2);
    assert_eq!(a["news2"]["missing"], json!(["consciousness", "temp"]));
    let used: Vec<(&str, &str)> = a["observations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o["lineage"].as_str().unwrap()))
        .collect();
    assert_eq!(
        used,
        [
            ("Observation/rr1", "fhir/0/0"),
            ("Observation/hr1", "fhir/0/4"),
            ("Observation/bp1", "fhir/0/3"),
            ("Observation/sp1", "fhir/0/1"),
            ("Observation/o21", "fhir/0/2"),
        ]
    );
    // The last alert: temperature and blood pressure from T0 have gone stale.
    let late = alerts[3];
    assert_eq!(late["stale"], json!(["temp", "sbp"]));
    assert_eq!(late["news2"]["missing"], json!(["sbp", "temp"]));
    assert_eq!(late["news2"]["subscores"]["consciousness"], 0);
    // The DetectedIssue is valid FHIR R4 with the observations as evidence.
    let di = &a["detected_issue"];
    let parsed = parse_resource(di.to_string().as_bytes(), Mode::Strict);
    assert!(parsed.is_ok(), "{:?}", parsed.err());
    assert_eq!(di["severity"], "high");
    assert_eq!(di["patient"]["reference"], "Patient/p1");
    assert_eq!(di["evidence"][0]["detail"].as_array().unwrap().len(), 5);
    // Alerts are keyed by patient and carry the triggering record's lineage.
    let (_, headers, key) = out.iter().find(|(v, _, _)| v == a).unwrap();
    assert_eq!(key.as_deref(), Some("Patient/p1"));
    assert!(headers.contains(&("aorta.lineage".into(), "fhir/0/4".into())));

    // The child: one scope flag, no NEWS2 alert, but SIRS still alerts (RR 40, HR 160).
    let kid: Vec<&Value> = out
        .iter()
        .map(|(v, _, _)| v)
        .filter(|v| v["patient"] == "Patient/kid")
        .collect();
    assert_eq!(kid[0]["kind"], "not-applicable");
    assert!(kid[0]["reason"].as_str().unwrap().contains("under 16"));
    assert_eq!(
        kid.iter().filter(|v| v["kind"] == "not-applicable").count(),
        1
    );
    assert!(
        !kid.iter()
            .any(|v| v["score"] == "news2" && v["kind"] == "alert")
    );
    assert!(
        kid.iter()
            .any(|v| v["score"] == "sirs" && v["kind"] == "alert")
    );

    // Dead letters, each with its reason.
    let dlq = read(&log, "ew.dlq").await;
    let reasons: Vec<&str> = dlq
        .iter()
        .map(|(_, h, _)| {
            h.iter()
                .find(|(k, _)| k == "aorta.error")
                .map(|(_, v)| v.as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("no value"), "{}", reasons[0]);
    assert!(reasons[1].contains("hr = 900"), "{}", reasons[1]);
    assert!(reasons[2].contains("subject.reference"), "{}", reasons[2]);
}
