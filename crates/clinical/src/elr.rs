//! Electronic laboratory reporting (ELR): checks an HL7 v2 ORU^R01 lab-result message against
//! the reporting essentials, normalises each result, and says which jurisdiction it is for.
//!
//! ## Sources
//! * HL7 Version 2.5.1 Implementation Guide: Electronic Laboratory Reporting to Public Health,
//!   Release 1 (US Realm) — the `PHLabReport-NoAck` / `PHLabReport-Ack` message profiles
//!   (OID 2.16.840.1.113883.9.11), field usage of MSH, PID, OBR, OBX, SPM.
//! * The NIST COVID-19 ELR conformance profiles the CDC's HL7 pipeline validates with, one per
//!   accepted version: 2.3, 2.3.1, 2.3.z, 2.5, 2.5.1 (`_nist_covid19_elr_profiles` in
//!   CDCgov/data-exchange-hl7). In 2.5.1, MSH-21 is RE, PID-3 and PID-5 are R, SPM-4 and SPM-17
//!   are RE, OBX-5 is required unless OBX-11 is `X`.
//! * HHS, *COVID-19 Pandemic Response, Laboratory Data Reporting: CARES Act Section 18115*
//!   (4 June 2020, updated 8 January 2021): the 18 required data elements.
//! * CMS CLIA numbers: ten characters, two digits, the letter `D` (or `Z` for the CDC's
//!   placeholders used by at-home tests), seven digits.
//! * SNOMED CT qualifier values for qualitative results: 260373001 Detected, 260415000 Not
//!   detected, 10828004 Positive, 260385009 Negative, 419984006 Inconclusive, 720735008
//!   Presumptive positive, 455371000124106 Invalid result (as LIVD maps SARS-CoV-2 results).
//!
//! ## Rules
//! [`RULES`] lists every rule with its id, severity and what it checks; docs/clinical.md has
//! the same table for users. An **error** fails the message (the pipeline dead-letters it with
//! every failed rule named); a **warning** is reported and the message passes. The HHS 18
//! elements are warnings: the guidance asks for them "if known", and most real feeds omit
//! some (race, county); a health department sees which ones a lab is missing.
//!
//! ## Version differences
//! v2.3.x has no SPM segment: the specimen is OBR-15 (specimen source) and its collection time
//! OBR-7. In 2.5.1 they are SPM-4 and SPM-17.1, with OBR-7 (which the ELR guide makes equal to
//! SPM-17.1) as the fallback. The performing laboratory is OBX-23 (XON, id in component 10) in
//! 2.5.1 and OBX-15 (CE, `id^name^CLIA`) before; MSH-4 (`name^id^CLIA`) is the last fallback.
//!
//! ## What counts as a result
//! Every OBX except ask-at-order-entry answers: OBX-29 = `QST`, an OBX-3 in the
//! `PHINQUESTION` code system, or an OBX-3 LOINC from [`AOE_LOINC`] (age at collection, first
//! test, symptomatic, …). A result's test code is its
//! OBX-3 LOINC, or the LOINC of its order (OBR-4) when OBX-3 carries a local code only.
//!
//! ## Event time
//! [`LabResult::collected_ms`] is the collection time **as the laboratory wrote it** (its
//! wall-clock, offset ignored) read as if it were UTC: a day bucket is then the lab's local day,
//! which is how jurisdictions count tests per day.

use aorta_hl7::{Delimiters, Message, Segment};
use serde::Serialize;
use std::borrow::Cow;

/// Whether a failed rule fails the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The message is rejected.
    Error,
    /// Reported; the message passes.
    Warning,
}

/// One rule.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rule {
    /// Stable id, used in dead-letter reasons, headers and docs.
    pub id: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// What it checks.
    pub summary: &'static str,
}

const fn e(id: &'static str, summary: &'static str) -> Rule {
    Rule {
        id,
        severity: Severity::Error,
        summary,
    }
}

const fn w(id: &'static str, summary: &'static str) -> Rule {
    Rule {
        id,
        severity: Severity::Warning,
        summary,
    }
}

/// Every rule, in the order they are checked.
pub const RULES: &[Rule] = &[
    e(
        "hl7-parse",
        "the bytes are an HL7 v2 message with a valid MSH header",
    ),
    e("msh-9-message-type", "MSH-9 is ORU^R01"),
    e("msh-10-control-id", "MSH-10 (message control id) is valued"),
    e(
        "msh-10-unique",
        "no other message with different content had this MSH-10 from the same sending facility (checked by the pipeline step; an identical resend is a duplicate, dropped)",
    ),
    e(
        "msh-11-processing-id",
        "MSH-11, when valued, is P (production) or T (training); D (debugging) and other values are not reports",
    ),
    w(
        "msh-11-not-production",
        "MSH-11 is T (training) or empty: counted, but the sender should be asked",
    ),
    e(
        "msh-12-version",
        "MSH-12 is 2.3, 2.3.1, 2.3.z, 2.5 or 2.5.1 (the versions with a COVID-19 ELR profile)",
    ),
    e(
        "msh-21-profile",
        "MSH-21, when valued, names a lab-report profile (PHLabReport-*, PHLIP_*, or OID 2.16.840.1.113883.9.11): a case notification is not a lab report",
    ),
    w(
        "msh-4-clia",
        "a sending facility identified as CLIA (MSH-4.3) has a CLIA-shaped id (MSH-4.2)",
    ),
    e("pid-3-patient-id", "PID-3 has an identifier"),
    e(
        "pid-5-patient-name",
        "PID-5 has a family or given name, or declares a pseudonym (name type S) for de-identified feeds; not required for at-home tests (performing CLIA a CDC 00Z placeholder)",
    ),
    e(
        "pid-7-birth-date-or-age",
        "PID-7 is a valid date, or an age-at-collection answer (LOINC 35659-2, 30525-0, 21612-7) is given; not required for at-home tests",
    ),
    e(
        "pid-11-address",
        "PID-11 has a state or a ZIP code (the jurisdiction is the state)",
    ),
    e(
        "obr-present",
        "the message has at least one OBR with a result",
    ),
    e(
        "result-loinc",
        "each result has a LOINC test code (OBX-3, or its order's OBR-4)",
    ),
    e(
        "obx-5-value",
        "each result has a value (OBX-5) unless its status (OBX-11) is X",
    ),
    e(
        "obx-11-status",
        "each result's status (OBX-11) is a code of HL7 table 0085",
    ),
    e(
        "result-snomed",
        "a coded result in SNOMED CT (SCT/SNM) has a SNOMED-shaped code (6-18 digits)",
    ),
    e(
        "specimen-type",
        "each order has a specimen type (SPM-4, or OBR-15 before v2.5)",
    ),
    e(
        "specimen-collection-time",
        "each order has a valid collection time (SPM-17.1, or OBR-7)",
    ),
    e(
        "result-before-collection",
        "no result time (OBX-14, OBX-19) is before the specimen's collection time",
    ),
    e(
        "performing-lab",
        "each result names its performing laboratory or gives its CLIA (OBX-23, OBX-15, or MSH-4)",
    ),
    w(
        "performing-lab-clia",
        "a performing laboratory identified as CLIA has a CLIA-shaped id (two digits, D or Z, seven digits)",
    ),
    w(
        "hhs-02-device",
        "HHS 2: device identifier (OBX-17 or OBX-18)",
    ),
    w(
        "hhs-04-result-date",
        "HHS 4: test result date (OBX-19 or OBR-22)",
    ),
    w(
        "hhs-05-specimen-id",
        "HHS 5: accession number / specimen id (SPM-2 or OBR-3)",
    ),
    w("hhs-07-race", "HHS 7: patient race (PID-10)"),
    w("hhs-08-ethnicity", "HHS 8: patient ethnicity (PID-22)"),
    w("hhs-09-sex", "HHS 9: patient sex (PID-8)"),
    w(
        "hhs-10-zip",
        "HHS 10: patient residence ZIP code (PID-11.5)",
    ),
    w(
        "hhs-11-county",
        "HHS 11: patient residence county (PID-11.9)",
    ),
    w(
        "hhs-12-ordering-provider",
        "HHS 12: ordering provider name and NPI (ORC-12 or OBR-16)",
    ),
    w(
        "hhs-13-provider-zip",
        "HHS 13: ordering provider (or facility) ZIP code (ORC-24 or ORC-22)",
    ),
    w(
        "hhs-15-performing-zip",
        "HHS 15: performing facility ZIP code (OBX-24.5)",
    ),
    w(
        "hhs-17-order-date",
        "HHS 17: date test ordered (ORC-15 or OBR-6)",
    ),
];

/// Looks a rule up by id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// LOINC codes of ask-at-order-entry questions (HHS guidance, LIVD AOE list): answers about
/// the patient, never results to count.
pub const AOE_LOINC: &[&str] = &[
    "95417-2", // first test for condition of interest
    "95418-0", // employed in a healthcare setting
    "95419-8", // has symptoms related to condition of interest
    "65222-2", // date of symptom onset
    "11368-8", // illness or injury onset date and time
    "77974-4", // hospitalized for condition of interest
    "95420-6", // admitted to ICU for condition of interest
    "95421-4", // resides in a congregate care setting
    "82810-3", // pregnancy status
    "35659-2", // age at specimen collection
    "30525-0", // age
    "21612-7", // age, reported
    "76691-5", // gender identity
    "95416-4", // ordering provider's role (HHS extension)
    "67098-4", // reason for test or procedure
    "75325-1", // symptom
    "11449-6", // pregnancy status (older code)
    "56816-2", // patient location
];

const AGE_LOINC: &[&str] = &["35659-2", "30525-0", "21612-7"];

/// Postal codes of US jurisdictions that receive ELR: the 50 states, DC and the territories.
pub const JURISDICTIONS: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
    "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY", "DC", "PR", "VI", "GU", "AS", "MP",
];

/// A result's meaning, normalised across SNOMED codes and free-text values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpretation {
    /// Detected, positive, presumptive positive.
    Positive,
    /// Not detected, negative.
    Negative,
    /// Inconclusive, indeterminate, invalid.
    Inconclusive,
    /// Anything else (a number, a comment, "not performed").
    Unknown,
}

impl Interpretation {
    /// The SNOMED CT code of a normalised qualitative result, if this is one.
    pub fn snomed(self) -> Option<(&'static str, &'static str)> {
        match self {
            Interpretation::Positive => Some(("260373001", "Detected")),
            Interpretation::Negative => Some(("260415000", "Not detected")),
            Interpretation::Inconclusive => Some(("419984006", "Inconclusive")),
            Interpretation::Unknown => None,
        }
    }
}

/// A coded value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Coded {
    /// Code.
    pub code: String,
    /// Display text, if any.
    pub display: Option<String>,
    /// Coding system as written (`SCT`, `LN`, `L` …).
    pub system: Option<String>,
}

/// The laboratory that performed a test.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Lab {
    /// CLIA number, if given.
    pub clia: Option<String>,
    /// Name, if given.
    pub name: Option<String>,
}

/// One test result, normalised.
#[derive(Clone, Debug, Serialize)]
pub struct LabResult {
    /// Where it is: `OBX[3]` (the third OBX of the message).
    pub location: String,
    /// The test's LOINC code (OBX-3, or the order's OBR-4).
    pub loinc: Option<String>,
    /// The LOINC display text.
    pub loinc_text: Option<String>,
    /// OBX-2.
    pub value_type: Option<String>,
    /// OBX-5 as text (first component for coded values).
    pub value: Option<String>,
    /// OBX-5 when coded.
    pub coded: Option<Coded>,
    /// Normalised meaning.
    pub interpretation: Interpretation,
    /// OBX-6 units.
    pub units: Option<String>,
    /// OBX-8 abnormal flag.
    pub abnormal_flag: Option<String>,
    /// OBX-11.
    pub status: Option<String>,
    /// Specimen collection time as written (HL7 TS).
    pub collected: Option<String>,
    /// Collection wall-clock time as epoch milliseconds (see the module doc).
    pub collected_ms: Option<i64>,
    /// Specimen type code.
    pub specimen_type: Option<String>,
    /// Performing laboratory.
    pub performing_lab: Lab,
}

/// One failed rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Rule id (see [`RULES`]).
    pub rule: &'static str,
    /// Where: `PID-5`, `OBX[2]-5` …
    pub location: String,
    /// What is wrong (never a patient value).
    pub message: String,
}

/// What [`check`] found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ElrReport {
    /// Sending facility (MSH-4: its id when given, else its name).
    pub facility: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-12.
    pub version: String,
    /// MSH-21 first identifier.
    pub profile: Option<String>,
    /// The patient's state (PID-11.4), when it is a known US jurisdiction.
    pub jurisdiction: Option<String>,
    /// The results, in message order (ask-at-order-entry answers left out).
    pub results: Vec<LabResult>,
    /// Failed error rules.
    pub errors: Vec<Finding>,
    /// Failed warning rules.
    pub warnings: Vec<Finding>,
    /// FNV-1a of every segment after MSH: the same report resent with a new MSH-7 has the
    /// same fingerprint.
    pub fingerprint: u64,
}

impl ElrReport {
    /// No error rule failed.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The ids of the failed error rules, each once, in [`RULES`] order.
    pub fn failed_rules(&self) -> Vec<&'static str> {
        ids(&self.errors)
    }

    /// The ids of the failed warning rules, each once, in [`RULES`] order.
    pub fn warned_rules(&self) -> Vec<&'static str> {
        ids(&self.warnings)
    }

    fn fail(
        &mut self,
        rule: &'static str,
        location: impl Into<String>,
        message: impl Into<String>,
    ) {
        debug_assert!(self::rule(rule).is_some(), "unknown ELR rule {rule}");
        let f = Finding {
            rule,
            location: location.into(),
            message: message.into(),
        };
        match self::rule(rule).map(|r| r.severity) {
            Some(Severity::Warning) => self.warnings.push(f),
            _ => self.errors.push(f),
        }
    }
}

fn ids(fs: &[Finding]) -> Vec<&'static str> {
    RULES
        .iter()
        .map(|r| r.id)
        .filter(|id| fs.iter().any(|f| f.rule == *id))
        .collect()
}

/// Parses and checks one message. Bytes that are not HL7 v2 fail `hl7-parse`.
pub fn check_bytes(raw: &[u8]) -> ElrReport {
    match aorta_hl7::parse(raw) {
        Ok(m) => check_message(&m),
        Err(err) => parse_failure(err.to_string()),
    }
}

/// Checks a parsed message whose header has not been validated yet (a bad MSH fails
/// `hl7-parse`).
pub fn check_message(m: &Message<'_>) -> ElrReport {
    match m.validate_header() {
        Ok(()) => check(m),
        Err(err) => parse_failure(err.to_string()),
    }
}

fn parse_failure(message: String) -> ElrReport {
    let mut r = ElrReport::default();
    r.fail("hl7-parse", "message", message);
    r
}

/// One order: its OBR, its OBX, its SPM.
struct Group<'a> {
    obr: Segment<'a>,
    obx: Vec<(usize, Segment<'a>)>,
    spm: Option<Segment<'a>>,
}

/// Checks one parsed message.
pub fn check(msg: &Message<'_>) -> ElrReport {
    let d = msg.delimiters();
    let v = |s: &Segment<'_>, f: usize, c: usize| value(s, &d, f, c);
    let mut r = ElrReport::default();
    let Some(msh) = msg.segment_at(0) else {
        return parse_failure("no MSH segment".into());
    };

    // Message header.
    r.control_id = v(&msh, 10, 1).unwrap_or_default();
    r.version = v(&msh, 12, 1).unwrap_or_default();
    r.facility = v(&msh, 4, 2).or_else(|| v(&msh, 4, 1)).unwrap_or_default();
    r.profile = v(&msh, 21, 1);
    let (t1, t2) = (v(&msh, 9, 1), v(&msh, 9, 2));
    if t1.as_deref() != Some("ORU") || t2.as_deref() != Some("R01") {
        r.fail(
            "msh-9-message-type",
            "MSH-9",
            format!(
                "message type is {}^{}, not ORU^R01",
                t1.unwrap_or_default(),
                t2.unwrap_or_default()
            ),
        );
    }
    if r.control_id.is_empty() {
        r.fail("msh-10-control-id", "MSH-10", "MSH-10 is empty");
    }
    match v(&msh, 11, 1).as_deref() {
        Some("P") => {}
        None | Some("T") => r.fail(
            "msh-11-not-production",
            "MSH-11",
            "processing id is not P (production)",
        ),
        Some(other) => r.fail(
            "msh-11-processing-id",
            "MSH-11",
            format!("processing id {other:?} is neither P nor T"),
        ),
    }
    let version = r.version.to_ascii_lowercase();
    let v23 = matches!(version.as_str(), "2.3" | "2.3.1" | "2.3.z");
    if !v23 && !matches!(version.as_str(), "2.5" | "2.5.1") {
        r.fail(
            "msh-12-version",
            "MSH-12",
            format!("version {:?} has no ELR profile", r.version),
        );
    }
    if let Some(f) = msh.field(21).filter(|f| !f.raw().is_empty()) {
        let lab_report = f.repetitions().any(|rep| {
            let id = rep
                .component(1)
                .map(|c| text(c.raw(), &d))
                .unwrap_or_default();
            let oid = rep
                .component(3)
                .map(|c| text(c.raw(), &d))
                .unwrap_or_default();
            id.starts_with("PHLabReport")
                || id.starts_with("PHLIP")
                || oid == "2.16.840.1.113883.9.11"
        });
        if !lab_report {
            r.fail(
                "msh-21-profile",
                "MSH-21",
                format!(
                    "profile {:?} is not a lab-report profile",
                    r.profile.clone().unwrap_or_default()
                ),
            );
        }
    }
    if eq_ci(v(&msh, 4, 3), "CLIA") && !v(&msh, 4, 2).is_some_and(|c| is_clia(&c)) {
        r.fail(
            "msh-4-clia",
            "MSH-4.2",
            "sending facility is marked CLIA but its id is not a CLIA number",
        );
    }

    // Patient.
    let pid = msg.segment("PID", 1);
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut obx_index = 0;
    for s in msg.segments() {
        match s.id() {
            b"OBR" => groups.push(Group {
                obr: s,
                obx: Vec::new(),
                spm: None,
            }),
            b"OBX" => {
                obx_index += 1;
                if let Some(g) = groups.last_mut() {
                    g.obx.push((obx_index, s));
                }
            }
            b"SPM" => {
                if let Some(g) = groups.last_mut()
                    && g.spm.is_none()
                {
                    g.spm = Some(s);
                }
            }
            _ => {}
        }
    }
    let age_given = groups.iter().flat_map(|g| &g.obx).any(|(_, o)| {
        v(o, 3, 1).is_some_and(|c| AGE_LOINC.contains(&c.as_str())) && v(o, 5, 1).is_some()
    });
    match &pid {
        None => {
            r.fail("pid-3-patient-id", "PID", "no PID segment");
            r.fail("pid-5-patient-name", "PID", "no PID segment");
            if !age_given {
                r.fail("pid-7-birth-date-or-age", "PID", "no PID segment");
            }
            r.fail("pid-11-address", "PID", "no PID segment");
        }
        Some(p) => {
            // At-home (over-the-counter) tests are reported under the CDC's placeholder CLIAs
            // (00Z…) and may be anonymous (HHS guidance for self-tests).
            let placeholder = |c: Option<String>| c.is_some_and(|c| c.starts_with("00Z"));
            let at_home = placeholder(v(&msh, 4, 2))
                || groups
                    .iter()
                    .flat_map(|g| &g.obx)
                    .any(|(_, o)| placeholder(v(o, 15, 1)) || placeholder(v(o, 23, 10)));
            check_patient(&mut r, p, &d, age_given || at_home, at_home)
        }
    }

    // Orders and results.
    let msh4 = Lab {
        clia: eq_ci(v(&msh, 4, 3), "CLIA")
            .then(|| v(&msh, 4, 2))
            .flatten(),
        name: v(&msh, 4, 1),
    };
    let mut any_result = false;
    let mut parent_specimen: Option<String> = None;
    for (gi, g) in groups.iter().enumerate() {
        let obr_loinc = loinc(&g.obr, &d, 4);
        let (collected, mut specimen) = match &g.spm {
            Some(spm) => (
                v(spm, 17, 1).or_else(|| v(&g.obr, 7, 1)),
                v(spm, 4, 1).or_else(|| v(&g.obr, 15, 1)),
            ),
            None => (v(&g.obr, 7, 1), v(&g.obr, 15, 1)),
        };
        // A child order (susceptibilities: OBR-26 parent result or OBR-29 parent valued)
        // tests its parent's specimen.
        if specimen.is_none() && (v(&g.obr, 26, 1).is_some() || v(&g.obr, 29, 1).is_some()) {
            specimen = parent_specimen.clone();
        }
        if specimen.is_some() {
            parent_specimen = specimen.clone();
        }
        let obr_at = format!("OBR[{}]", gi + 1);
        let results: Vec<&(usize, Segment<'_>)> = g
            .obx
            .iter()
            .filter(|(_, o)| {
                !eq_ci(v(o, 29, 1), "QST")
                    && !eq_ci(v(o, 3, 3), "PHINQUESTION")
                    && !loinc(o, &d, 3).is_some_and(|(c, _)| AOE_LOINC.contains(&c.as_str()))
            })
            .collect();
        if results.is_empty() {
            continue;
        }
        any_result = true;
        if specimen.is_none() {
            r.fail(
                "specimen-type",
                obr_at.clone(),
                if v23 {
                    "no specimen source (OBR-15)"
                } else {
                    "no specimen type (SPM-4 or OBR-15)"
                },
            );
        }
        let collected_ts = collected.as_deref().and_then(Ts::parse);
        if collected_ts.is_none() {
            r.fail(
                "specimen-collection-time",
                obr_at.clone(),
                match &collected {
                    None => "no collection time (SPM-17.1 or OBR-7)".to_string(),
                    Some(_) => "collection time is not an HL7 date/time".to_string(),
                },
            );
        }
        for (n, o) in results {
            let at = format!("OBX[{n}]");
            let own = loinc(o, &d, 3);
            let (code, code_text) = match own.or_else(|| obr_loinc.clone()) {
                Some((c, t)) => (Some(c), t),
                None => {
                    r.fail(
                        "result-loinc",
                        format!("{at}-3"),
                        "neither OBX-3 nor its order's OBR-4 has a LOINC code",
                    );
                    (None, None)
                }
            };
            let status = v(o, 11, 1);
            let value_raw = o.field(5).map(|f| f.raw()).unwrap_or_default();
            if value_raw.is_empty() && status.as_deref() != Some("X") {
                r.fail(
                    "obx-5-value",
                    format!("{at}-5"),
                    "no value and status is not X",
                );
            }
            match status.as_deref() {
                Some(s) if "CDFINOPRSUWX".contains(s) && s.len() == 1 => {}
                other => r.fail(
                    "obx-11-status",
                    format!("{at}-11"),
                    format!("status {:?} is not in HL7 table 0085", other.unwrap_or("")),
                ),
            }
            let value_type = v(o, 2, 1);
            let coded = matches!(value_type.as_deref(), Some("CE" | "CWE" | "CNE"))
                .then(|| coded(o, &d, 5))
                .flatten();
            if let Some(c) = &coded
                && c.system.as_deref().is_some_and(is_snomed_system)
                && !is_snomed_code(&c.code)
            {
                r.fail(
                    "result-snomed",
                    format!("{at}-5"),
                    "coded as SNOMED CT but the code is not a SNOMED identifier",
                );
            }
            let value = match &coded {
                Some(c) => Some(c.code.clone()),
                None => o
                    .field(5)
                    .and_then(|f| f.repetition(1))
                    .map(|rep| text(rep.raw(), &d))
                    .filter(|s| !s.is_empty()),
            };
            let interpretation = interpret(coded.as_ref(), value.as_deref());
            if let Some(c) = &collected_ts {
                for (f, name) in [(14, "OBX-14"), (19, "OBX-19")] {
                    if let Some(t) = v(o, f, 1).as_deref().and_then(Ts::parse)
                        && t.before(c)
                    {
                        r.fail(
                            "result-before-collection",
                            format!("{at}-{f}"),
                            format!("{name} is earlier than the specimen's collection time"),
                        );
                    }
                }
            }
            let lab = performing_lab(o, &d).unwrap_or_else(|| msh4.clone());
            if lab.clia.is_none() && lab.name.is_none() {
                r.fail(
                    "performing-lab",
                    at.clone(),
                    "no performing laboratory (OBX-23, OBX-15 or MSH-4)",
                );
            }
            if let Some(c) = &lab.clia
                && !is_clia(c)
            {
                r.fail(
                    "performing-lab-clia",
                    at.clone(),
                    "performing laboratory's CLIA is not two digits, D or Z, seven digits",
                );
            }
            // HHS 18 (warnings).
            if v(o, 17, 1).is_none() && v(o, 18, 1).is_none() {
                r.fail("hhs-02-device", at.clone(), "no device identifier");
            }
            if v(o, 19, 1).is_none() && v(&g.obr, 22, 1).is_none() {
                r.fail("hhs-04-result-date", at.clone(), "no result date");
            }
            if let Some(zip) = o
                .field(24)
                .and_then(|f| f.repetition(1))
                .and_then(|x| x.component(5))
                && !zip.raw().is_empty()
            {
            } else {
                r.fail(
                    "hhs-15-performing-zip",
                    at.clone(),
                    "no performing facility ZIP",
                );
            }
            r.results.push(LabResult {
                location: at,
                loinc: code,
                loinc_text: code_text,
                value_type,
                value,
                coded,
                interpretation,
                units: v(o, 6, 1),
                abnormal_flag: v(o, 8, 1),
                status,
                collected: collected.clone(),
                collected_ms: collected_ts.as_ref().map(Ts::wall_clock_ms),
                specimen_type: specimen.clone(),
                performing_lab: lab,
            });
        }
        if g.spm
            .as_ref()
            .and_then(|s| value(s, &d, 2, 1).or_else(|| value(s, &d, 2, 2)))
            .is_none()
            && v(&g.obr, 3, 1).is_none()
        {
            r.fail(
                "hhs-05-specimen-id",
                obr_at.clone(),
                "no accession or specimen id",
            );
        }
        if v(&g.obr, 16, 1).is_none() && msg.segment("ORC", 1).and_then(|o| v(&o, 12, 1)).is_none()
        {
            r.fail(
                "hhs-12-ordering-provider",
                obr_at.clone(),
                "no ordering provider",
            );
        }
        if v(&g.obr, 6, 1).is_none() && msg.segment("ORC", 1).and_then(|o| v(&o, 15, 1)).is_none() {
            r.fail("hhs-17-order-date", obr_at, "no order date");
        }
    }
    if !any_result {
        r.fail("obr-present", "OBR", "no OBR with a result (OBX)");
    }
    if let Some(orc) = msg.segment("ORC", 1) {
        if value(&orc, &d, 24, 5).is_none() && value(&orc, &d, 22, 5).is_none() {
            r.fail(
                "hhs-13-provider-zip",
                "ORC-24",
                "no ordering provider or facility ZIP",
            );
        }
    } else {
        r.fail("hhs-13-provider-zip", "ORC", "no ORC segment");
    }
    r.fingerprint = fingerprint(msg);
    r
}

fn check_patient(
    r: &mut ElrReport,
    p: &Segment<'_>,
    d: &Delimiters,
    age_given: bool,
    anonymous_ok: bool,
) {
    let v = |f: usize, c: usize| value(p, d, f, c);
    let id_given = p.field(3).is_some_and(|f| {
        f.repetitions()
            .any(|x| x.component(1).is_some_and(|c| !text(c.raw(), d).is_empty()))
    });
    if !id_given {
        r.fail("pid-3-patient-id", "PID-3", "no patient identifier");
    }
    let named = p.field(5).is_some_and(|f| {
        f.repetitions().any(|x| {
            let c = |n: usize| x.component(n).map(|c| text(c.raw(), d)).unwrap_or_default();
            // Name type S (pseudonym); two corpus labs put it in component 8.
            !c(1).is_empty()
                || !c(2).is_empty()
                || c(7).eq_ignore_ascii_case("S")
                || c(8).eq_ignore_ascii_case("S")
        })
    });
    if !named && !anonymous_ok {
        r.fail(
            "pid-5-patient-name",
            "PID-5",
            "no family or given name and no pseudonym declaration (name type S)",
        );
    }
    match v(7, 1) {
        Some(dob) if Ts::parse(&dob).is_some() => {}
        Some(_) => r.fail(
            "pid-7-birth-date-or-age",
            "PID-7",
            "birth date is not an HL7 date",
        ),
        None if age_given => {}
        None => r.fail(
            "pid-7-birth-date-or-age",
            "PID-7",
            "no birth date and no age at collection",
        ),
    }
    let state = v(11, 4).map(|s| s.to_ascii_uppercase());
    let zip = v(11, 5);
    if state.is_none() && zip.is_none() {
        r.fail("pid-11-address", "PID-11", "no state and no ZIP code");
    }
    r.jurisdiction = state.filter(|s| JURISDICTIONS.contains(&s.as_str()));
    if v(10, 1).is_none() {
        r.fail("hhs-07-race", "PID-10", "no race");
    }
    if v(22, 1).is_none() {
        r.fail("hhs-08-ethnicity", "PID-22", "no ethnicity");
    }
    if v(8, 1).is_none() {
        r.fail("hhs-09-sex", "PID-8", "no sex");
    }
    if zip.is_none() {
        r.fail("hhs-10-zip", "PID-11.5", "no ZIP code");
    }
    if v(11, 9).is_none() {
        r.fail("hhs-11-county", "PID-11.9", "no county");
    }
}

/// The performing laboratory of one OBX: OBX-23 (2.5.1), else OBX-15 (2.3–2.5).
fn performing_lab(o: &Segment<'_>, d: &Delimiters) -> Option<Lab> {
    let name23 = value(o, d, 23, 1);
    let id23 = value(o, d, 23, 10);
    if name23.is_some() || id23.is_some() {
        return Some(Lab {
            clia: id23,
            name: name23,
        });
    }
    let id15 = value(o, d, 15, 1);
    let name15 = value(o, d, 15, 2);
    if id15.is_some() || name15.is_some() {
        let is_clia_system = eq_ci(value(o, d, 15, 3), "CLIA");
        return Some(Lab {
            clia: if is_clia_system { id15.clone() } else { None },
            name: name15.or(if is_clia_system { None } else { id15 }),
        });
    }
    None
}

/// A LOINC code from a CE/CWE field: the identifier when its system is `LN`, else the
/// alternate identifier when that one is `LN`.
fn loinc(s: &Segment<'_>, d: &Delimiters, f: usize) -> Option<(String, Option<String>)> {
    let c = |n| value(s, d, f, n);
    if eq_ci(c(3), "LN") {
        return c(1).map(|code| (code, c(2)));
    }
    if eq_ci(c(6), "LN") {
        return c(4).map(|code| (code, c(5)));
    }
    None
}

fn coded(s: &Segment<'_>, d: &Delimiters, f: usize) -> Option<Coded> {
    let c = |n| value(s, d, f, n);
    c(1).map(|code| Coded {
        code,
        display: c(2),
        system: c(3),
    })
}

fn is_snomed_system(s: &str) -> bool {
    // SN appears for SNOMED in a v2.3.z corpus message (ND); SNM is SNOMED International.
    matches!(
        s.to_ascii_uppercase().as_str(),
        "SCT" | "SNM" | "SNOMED" | "SNOMED-CT" | "SN"
    )
}

fn is_snomed_code(c: &str) -> bool {
    (6..=18).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit())
}

/// Normalises a result: SNOMED qualifier codes first, then the words labs write.
pub fn interpret(coded: Option<&Coded>, value: Option<&str>) -> Interpretation {
    if let Some(c) = coded {
        match c.code.as_str() {
            "260373001" | "10828004" | "720735008" => return Interpretation::Positive,
            "260415000" | "260385009" => return Interpretation::Negative,
            "419984006" | "455371000124106" | "82334004" => return Interpretation::Inconclusive,
            _ => {}
        }
    }
    let words = coded
        .and_then(|c| c.display.as_deref())
        .into_iter()
        .chain(value)
        .map(|s| s.trim().to_ascii_lowercase());
    for w in words {
        match w.as_str() {
            "detected" | "positive" | "pos" | "presumptive positive" | "reactive" => {
                return Interpretation::Positive;
            }
            "not detected" | "negative" | "neg" | "undetected" | "non-reactive" | "nonreactive" => {
                return Interpretation::Negative;
            }
            "inconclusive" | "indeterminate" | "invalid" | "equivocal" => {
                return Interpretation::Inconclusive;
            }
            _ => {}
        }
    }
    Interpretation::Unknown
}

/// A CLIA number: two digits, `D` (or `Z` for CDC placeholders), seven digits.
pub fn is_clia(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[..2].iter().all(u8::is_ascii_digit)
        && matches!(b[2], b'D' | b'Z')
        && b[3..].iter().all(u8::is_ascii_digit)
}

fn eq_ci(s: Option<String>, want: &str) -> bool {
    s.is_some_and(|s| s.eq_ignore_ascii_case(want))
}

/// Component `c` (its first subcomponent) of the first repetition of field `f`, decoded and
/// trimmed; `None` when empty.
fn value(s: &Segment<'_>, d: &Delimiters, f: usize, c: usize) -> Option<String> {
    let comp = s.field(f)?.repetition(1)?.component(c)?;
    let sub = comp.subcomponent(1).unwrap_or(comp.raw());
    let t = text(sub, d);
    (!t.is_empty() && t != "\"\"").then_some(t)
}

fn text(raw: &[u8], d: &Delimiters) -> String {
    match aorta_hl7::escape::decode(raw, d) {
        Cow::Borrowed(b) => String::from_utf8_lossy(b).trim().to_string(),
        Cow::Owned(b) => String::from_utf8_lossy(&b).trim().to_string(),
    }
}

fn fingerprint(msg: &Message<'_>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for s in msg.segments().skip(1) {
        for &b in s.raw().iter().chain(b"\r") {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// An HL7 TS/DTM: `YYYY[MM[DD[HH[MM[SS[.S…]]]]]][±ZZZZ]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ts {
    /// The digits before any fraction, 4 to 14 of them.
    digits: String,
    /// The wall-clock time as written, read as UTC, in epoch milliseconds.
    wall_ms: i64,
    /// UTC offset in minutes, when given.
    offset_min: Option<i32>,
}

impl Ts {
    /// Parses a TS; `None` when it is not one (or names an impossible date).
    pub fn parse(s: &str) -> Option<Ts> {
        let s = s.trim();
        let (main, offset) = match s.find(['+', '-']) {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        let (whole, frac) = match main.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (main, None),
        };
        if !matches!(whole.len(), 4 | 6 | 8 | 10 | 12 | 14)
            || !whole.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let millis = match frac {
            None => 0,
            Some(f)
                if whole.len() == 14
                    && !f.is_empty()
                    && f.len() <= 4
                    && f.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let padded = format!("{f:0<3}");
                padded[..3].parse().ok()?
            }
            Some(_) => return None,
        };
        let offset_min = match offset {
            None => None,
            Some(o) => {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let digits = &o[1..];
                if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let h: i32 = digits[..2].parse().ok()?;
                let m: i32 = digits[2..].parse().ok()?;
                if h > 14 || m > 59 {
                    return None;
                }
                Some(sign * (h * 60 + m))
            }
        };
        let ts = Ts {
            digits: whole.to_string(),
            // The digits alone carry no offset: aorta_hl7::dtm reads them as UTC.
            wall_ms: aorta_hl7::dtm::dtm_to_ms(whole.as_bytes())? + i64::from(millis),
            offset_min,
        };
        let (y, mo, d, h, mi, se) = ts.parts();
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days_in = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let ok = (1..=12).contains(&mo)
            && d >= 1
            && d <= days_in[(mo - 1) as usize]
            && h < 24
            && mi < 60
            && se < 60;
        ok.then_some(ts)
    }

    fn parts(&self) -> (i64, i64, i64, i64, i64, i64) {
        let n = |a: usize, b: usize, default: i64| {
            self.digits
                .get(a..b)
                .and_then(|x| x.parse().ok())
                .unwrap_or(default)
        };
        (
            n(0, 4, 1970),
            n(4, 6, 1),
            n(6, 8, 1),
            n(8, 10, 0),
            n(10, 12, 0),
            n(12, 14, 0),
        )
    }

    /// The wall-clock time as written, read as UTC, in epoch milliseconds (missing parts are
    /// the start of the period: `2020` is 2020-01-01T00:00).
    pub fn wall_clock_ms(&self) -> i64 {
        self.wall_ms
    }

    /// Whether `self` is before `other`, at the precision both have. With both offsets given
    /// the instants are compared; otherwise the wall-clock times.
    pub fn before(&self, other: &Ts) -> bool {
        let both = self.offset_min.zip(other.offset_min);
        if let Some((a, b)) = both
            && self.digits.len() >= 12
            && other.digits.len() >= 12
        {
            let ia = self.wall_clock_ms() - i64::from(a) * 60_000;
            let ib = other.wall_clock_ms() - i64::from(b) * 60_000;
            return ia < ib;
        }
        let n = self.digits.len().min(other.digits.len());
        self.digits[..n] < other.digits[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clia_shape() {
        assert!(is_clia("52D0669558"));
        assert!(is_clia("00Z0000042"));
        assert!(!is_clia("1123456789040002"));
        assert!(!is_clia("52X0669558"));
        assert!(!is_clia("5D06695581"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(Ts::parse("19700101").map(|t| t.wall_clock_ms()), Some(0));
        assert_eq!(
            Ts::parse("20200319110000").map(|t| t.wall_clock_ms()),
            Some(1_584_615_600_000)
        );
        // The offset does not move the wall clock.
        assert_eq!(
            Ts::parse("20240403120000-0400").map(|t| t.wall_clock_ms()),
            Ts::parse("20240403120000").map(|t| t.wall_clock_ms())
        );
        assert_eq!(
            Ts::parse("20000229").map(|t| t.wall_clock_ms() / 86_400_000),
            Some(11_016)
        );
        for bad in [
            "2021022",
            "20210230",
            "20211301",
            "2021-01-01",
            "20210101250000",
            "20210101+05",
            "",
        ] {
            assert_eq!(Ts::parse(bad), None, "{bad}");
        }
        let a = Ts::parse("20200119040700").unwrap();
        let b = Ts::parse("202101290955").unwrap();
        assert!(a.before(&b));
        assert!(!b.before(&a));
        // Same day at day precision: not before.
        assert!(
            !Ts::parse("20200624")
                .unwrap()
                .before(&Ts::parse("202006241300").unwrap())
        );
        // Offsets: 10:00-0500 is 15:00Z, after 14:00Z.
        assert!(
            !Ts::parse("202001011000-0500")
                .unwrap()
                .before(&Ts::parse("202001011400+0000").unwrap())
        );
    }

    #[test]
    fn interpretations() {
        let c = |code: &str, display: &str| Coded {
            code: code.into(),
            display: Some(display.into()),
            system: Some("SCT".into()),
        };
        assert_eq!(
            interpret(Some(&c("260373001", "Detected")), None),
            Interpretation::Positive
        );
        assert_eq!(
            interpret(Some(&c("260415000", "x")), None),
            Interpretation::Negative
        );
        assert_eq!(
            interpret(Some(&c("L123", "POSITIVE")), None),
            Interpretation::Positive
        );
        assert_eq!(interpret(None, Some("Negative")), Interpretation::Negative);
        assert_eq!(
            interpret(None, Some("Not performed")),
            Interpretation::Unknown
        );
        assert_eq!(interpret(None, Some("12.5")), Interpretation::Unknown);
    }

    #[test]
    fn every_rule_id_is_unique() {
        for (i, r) in RULES.iter().enumerate() {
            assert!(RULES[i + 1..].iter().all(|o| o.id != r.id), "{}", r.id);
        }
    }
}
