//! HL7 v2 → FHIR R4: one message in, one `batch` Bundle of `PUT`s out.
//!
//! Follows the HL7 v2-to-FHIR Implementation Guide (<https://build.fhir.org/ig/HL7/v2-to-fhir/>,
//! segment maps PID→Patient, PV1→Encounter, OBR→DiagnosticReport/ServiceRequest,
//! OBX→Observation, SPM→Specimen, RXA→Immunization, RXE/RXO→MedicationRequest, and its
//! datatype maps CX→Identifier, XPN→HumanName, XAD→Address, XTN→ContactPoint,
//! CWE→CodeableConcept, DTM→dateTime) and, where the IG leaves a choice open, what Microsoft's
//! FHIR-Converter templates do (`docs/fhir-mapping.md` lists the differences that remain).
//!
//! * **Ids are deterministic**: a UUID-shaped hash of the resource type and the fields that
//!   identify it (a patient's identifiers, an order's placer/filler numbers, …), so the same
//!   message always produces the same Bundle and a resend updates rather than duplicates.
//! * **Times** keep the sender's precision and offset; a time without an offset takes MSH-7's
//!   offset (HL7 v2.5.1 Ch. 2A.22: the sender's local time), else [`Options::default_offset`].
//! * Code systems named in CWE-3 are mapped to their FHIR URIs ([`system_uri`]).

use crate::datetime::{dtm_to_date, dtm_to_datetime, v2_offset_of};
use aorta_hl7::validate::Charset;
use aorta_hl7::{Delimiters, Message, Repetition, Segment};
use serde_json::{Map, Value, json};

/// Conversion settings.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Offset (`±hh:mm` or `Z`) for times that have none, when MSH-7 has none either.
    pub default_offset: Option<String>,
}

/// Why a message could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The message type has no mapping.
    #[error("no FHIR mapping for message type {0:?}")]
    Unsupported(String),
    /// A segment the mapping needs is missing.
    #[error("{structure} needs a {segment} segment")]
    Missing {
        /// The message structure.
        structure: String,
        /// The missing segment.
        segment: &'static str,
    },
}

/// The message types [`convert`] maps.
pub const SUPPORTED: &[&str] = &[
    "ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A05", "ADT^A08", "ADT^A11", "ADT^A13",
    "ADT^A28", "ADT^A31", "ORU^R01", "VXU^V04", "ORM^O01", "OML^O21", "RDE^O11",
];

/// Where v2 code-system names (HL7 table 0396) point in FHIR. Unknown names get
/// `http://example.com/v2-to-fhir-converter/CodeSystem/<name>`, as FHIR-Converter does.
pub fn system_uri(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    let known = match upper.as_str() {
        "LN" | "LOINC" => "http://loinc.org",
        "SCT" | "SNM" | "SNOMED" | "SNOMEDCT" | "SNM3" => "http://snomed.info/sct",
        "I10" | "I10C" | "ICD10CM" => "http://hl7.org/fhir/sid/icd-10-cm",
        "I9" | "I9C" | "ICD9CM" => "http://hl7.org/fhir/sid/icd-9-cm",
        "CVX" => "http://hl7.org/fhir/sid/cvx",
        "MVX" => "http://hl7.org/fhir/sid/mvx",
        "NDC" => "http://hl7.org/fhir/sid/ndc",
        "UCUM" => "http://unitsofmeasure.org",
        "RXNORM" | "RXN" => "http://www.nlm.nih.gov/research/umls/rxnorm",
        "C4" | "C5" | "CPT" | "CPT4" => "http://www.ama-assn.org/go/cpt",
        "CDCREC" => "urn:oid:2.16.840.1.113883.6.238",
        "ISO3166_1" | "ISO3166" => "urn:iso:std:iso:3166",
        "NPI" => "http://hl7.org/fhir/sid/us-npi",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    if let Some(n) = upper.strip_prefix("HL7")
        && n.len() == 4
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return format!("http://terminology.hl7.org/CodeSystem/v2-{n}");
    }
    format!(
        "http://example.com/v2-to-fhir-converter/CodeSystem/{}",
        name.replace(' ', "-")
    )
}

/// HL7 table 0203 (identifier type) display names for the codes seen in practice.
fn identifier_type_display(code: &str) -> Option<&'static str> {
    Some(match code {
        "MR" => "Medical record number",
        "SS" => "Social Security number",
        "PI" => "Patient internal identifier",
        "PT" => "Patient external identifier",
        "VN" => "Visit number",
        "AN" => "Account number",
        "DL" => "Driver's license number",
        "PN" => "Person number",
        "NPI" => "National provider identifier",
        "FI" => "Facility ID",
        "SB" => "Social Beneficiary Identifier",
        "MC" => "Patient's Medicare number",
        "MA" => "Patient Medicaid number",
        "MI" => "Military ID number",
        "ANON" => "Anonymous identifier",
        "PLAC" => "Placer identifier",
        "FILL" => "Filler identifier",
        "XX" => "Organization identifier",
        "HC" => "Health Card Number",
        "NI" => "National unique individual identifier",
        "BR" => "Birth registry number",
        "LR" => "Local Registry ID",
        "EI" => "Employee number",
        _ => return None,
    })
}

/// Reads values out of one message: decoded text of components and subcomponents.
struct Reader<'m, 'a> {
    msg: &'m Message<'a>,
    d: Delimiters,
    charset: Charset,
    offset: Option<String>,
}

impl<'a> Reader<'_, 'a> {
    fn text(&self, raw: &[u8]) -> Option<String> {
        if raw.is_empty() || raw == b"\"\"" {
            return None;
        }
        let s = self
            .charset
            .decode(&aorta_hl7::escape::decode(raw, &self.d));
        (!s.trim().is_empty()).then_some(s)
    }

    /// Component `n` (1-based), its first subcomponent, decoded.
    fn c(&self, r: &Repetition<'a>, n: usize) -> Option<String> {
        r.component(n)
            .and_then(|c| c.subcomponent(1))
            .and_then(|s| self.text(s))
    }

    /// Subcomponent `m` of component `n`.
    fn sc(&self, r: &Repetition<'a>, n: usize, m: usize) -> Option<String> {
        r.component(n)
            .and_then(|c| c.subcomponent(m))
            .and_then(|s| self.text(s))
    }

    fn reps(&self, seg: &Segment<'a>, field: usize) -> Vec<Repetition<'a>> {
        seg.field(field)
            .map(|f| f.repetitions().filter(|r| !r.raw().is_empty()).collect())
            .unwrap_or_default()
    }

    fn first(&self, seg: &Segment<'a>, field: usize) -> Option<Repetition<'a>> {
        self.reps(seg, field).into_iter().next()
    }

    /// Field `field`, component 1, decoded.
    fn f(&self, seg: &Segment<'a>, field: usize) -> Option<String> {
        self.first(seg, field).and_then(|r| self.c(&r, 1))
    }

    fn datetime(&self, v: Option<String>) -> Option<Value> {
        v.and_then(|v| dtm_to_datetime(&v, self.offset.as_deref()))
            .map(Value::String)
    }

    fn date(&self, v: Option<String>) -> Option<Value> {
        v.and_then(|v| dtm_to_date(&v)).map(Value::String)
    }

    /// CWE/CE/CNE → CodeableConcept (primary and alternate codings, original text).
    fn codeable(&self, r: &Repetition<'a>) -> Option<Value> {
        let mut codings = Vec::new();
        for (code, text, sys, ver) in [(1, 2, 3, 7), (4, 5, 6, 8)] {
            let Some(c) = self.c(r, code) else {
                continue;
            };
            let mut coding = Map::new();
            coding.insert("code".into(), json!(c));
            if let Some(t) = self.c(r, text) {
                coding.insert("display".into(), json!(t));
            }
            if let Some(s) = self.c(r, sys) {
                coding.insert("system".into(), json!(system_uri(&s)));
            }
            if let Some(v) = self.c(r, ver) {
                coding.insert("version".into(), json!(v));
            }
            codings.push(Value::Object(coding));
        }
        let mut cc = Map::new();
        if !codings.is_empty() {
            cc.insert("coding".into(), Value::Array(codings));
        }
        if let Some(t) = self.c(r, 9) {
            cc.insert("text".into(), json!(t));
        } else if cc.is_empty()
            && let Some(t) = self.c(r, 2)
        {
            cc.insert("text".into(), json!(t));
        }
        (!cc.is_empty()).then_some(Value::Object(cc))
    }

    /// A CWE units field's text (CWE-2, else the code CWE-1), for a Quantity's `unit`.
    fn unit_text(&self, seg: &Segment<'a>, field: usize) -> Option<String> {
        self.first(seg, field)
            .and_then(|u| self.c(&u, 2).or_else(|| self.c(&u, 1)))
    }

    fn codeable_field(&self, seg: &Segment<'a>, field: usize) -> Option<Value> {
        self.first(seg, field).and_then(|r| self.codeable(&r))
    }

    /// `concept` (from the CWE `r`) with `text` set to CWE-2 when CWE-9 gave none: the
    /// fields FHIR-Converter writes a text for (citizenship, nationality, species, veteran).
    fn with_text(&self, mut concept: Value, r: &Repetition<'a>) -> Value {
        if concept.get("text").is_none()
            && let Some(t) = self.c(r, 2)
        {
            concept["text"] = json!(t);
        }
        concept
    }

    /// A coded value in an HL7 table → CodeableConcept with the table's system.
    fn table_code(&self, seg: &Segment<'a>, field: usize, table: &str) -> Option<Value> {
        let r = self.first(seg, field)?;
        let mut v = self.codeable(&r)?;
        if let Some(c) = v.pointer_mut("/coding/0")
            && c.get("system").is_none()
        {
            c["system"] = json!(format!("http://terminology.hl7.org/CodeSystem/v2-{table}"));
        }
        Some(v)
    }

    /// CX → Identifier.
    fn identifier(&self, r: &Repetition<'a>) -> Option<Value> {
        let value = self.c(r, 1)?;
        let mut id = Map::new();
        id.insert("value".into(), json!(value));
        let system = assigner_system(self.sc(r, 4, 1), self.sc(r, 4, 2), self.sc(r, 4, 3));
        if let Some(s) = system {
            id.insert("system".into(), json!(s));
        }
        if let Some(t) = self.c(r, 5) {
            let mut coding =
                json!({"code": t, "system": "http://terminology.hl7.org/CodeSystem/v2-0203"});
            if let Some(d) = identifier_type_display(&t) {
                coding["display"] = json!(d);
            }
            id.insert("type".into(), json!({"coding": [coding]}));
        }
        if let Some(p) = period(self.date(self.c(r, 7)), self.date(self.c(r, 8))) {
            id.insert("period".into(), p);
        }
        Some(Value::Object(id))
    }

    /// EI (entity identifier) → Identifier, optionally typed PLAC/FILL.
    fn entity_identifier(&self, r: &Repetition<'a>, kind: Option<&str>) -> Option<Value> {
        let value = self.c(r, 1)?;
        let mut id = json!({"value": value});
        if let Some(system) = assigner_system(self.c(r, 2), self.c(r, 3), self.c(r, 4)) {
            id["system"] = json!(system);
        }
        if let Some(k) = kind {
            id["type"] = json!({"coding": [{"code": k, "system": "http://terminology.hl7.org/CodeSystem/v2-0203"}]});
        }
        Some(id)
    }

    /// The HumanName parts of an XPN, or of an XCN (whose name components are XPN's, one
    /// position later): family (its first subcomponent), given names, prefix, suffixes.
    fn human_name(
        &self,
        r: &Repetition<'a>,
        family: usize,
        given: &[usize],
        prefix: usize,
        suffix: &[usize],
    ) -> Map<String, Value> {
        let mut n = Map::new();
        if let Some(f) = self.sc(r, family, 1) {
            n.insert("family".into(), json!(f));
        }
        let given: Vec<String> = given.iter().filter_map(|&i| self.c(r, i)).collect();
        if !given.is_empty() {
            n.insert("given".into(), json!(given));
        }
        if let Some(p) = self.c(r, prefix) {
            n.insert("prefix".into(), json!([p]));
        }
        let suffix: Vec<String> = suffix.iter().filter_map(|&i| self.c(r, i)).collect();
        if !suffix.is_empty() {
            n.insert("suffix".into(), json!(suffix));
        }
        n
    }

    /// XPN → HumanName.
    fn name(&self, r: &Repetition<'a>) -> Option<Value> {
        // XPN-1 family, -2/-3 given, -4 suffix, -5 prefix, -6 degree and -14 professional
        // suffix (suffixes), -15 "called by" (a given name, as FHIR-Converter).
        let mut n = self.human_name(r, 1, &[2, 3, 15], 5, &[4, 6, 14]);
        if n.is_empty() {
            return None;
        }
        // XPN-10 validity range (DR), else XPN-12/13 effective and expiration dates.
        let start = self
            .date(self.sc(r, 10, 1))
            .or_else(|| self.date(self.c(r, 12)));
        let end = self
            .date(self.sc(r, 10, 2))
            .or_else(|| self.date(self.c(r, 13)));
        if let Some(p) = period(start, end) {
            n.insert("period".into(), p);
        }
        // Table 0200 → name-use (v2-to-FHIR ConceptMap "NameType").
        if let Some(u) = self.c(r, 7) {
            let use_ = match u.as_str() {
                "L" => Some("official"),
                "D" => Some("usual"),
                "M" | "B" => Some("maiden"),
                "N" | "A" => Some("nickname"),
                "C" => Some("old"),
                "T" => Some("temp"),
                "S" => Some("anonymous"),
                _ => None,
            };
            if let Some(u) = use_ {
                n.insert("use".into(), json!(u));
            }
        }
        Some(Value::Object(n))
    }

    /// XAD → Address.
    fn address(&self, r: &Repetition<'a>) -> Option<Value> {
        let mut a = Map::new();
        // XAD-1 (SAD: street or mailing address, street name, dwelling number), XAD-2, and
        // XAD-19 (addressee, v2.7+) each give a line.
        let mut lines: Vec<String> = (1..=3).filter_map(|m| self.sc(r, 1, m)).collect();
        lines.extend([2, 19].iter().filter_map(|&i| self.c(r, i)));
        if !lines.is_empty() {
            a.insert("line".into(), json!(lines));
        }
        for (i, k) in [(3, "city"), (4, "state"), (5, "postalCode"), (6, "country")] {
            if let Some(v) = self.c(r, i) {
                a.insert(k.into(), json!(v));
            }
        }
        // XAD-9 county: its code, else (a CWE from v2.6 on) its text.
        if let Some(v) = self.sc(r, 9, 1).or_else(|| self.sc(r, 9, 2)) {
            a.insert("district".into(), json!(v));
        }
        // XAD-12 validity range (DR), else XAD-13/14 effective and expiration dates.
        let start = self
            .date(self.sc(r, 12, 1))
            .or_else(|| self.date(self.c(r, 13)));
        let end = self
            .date(self.sc(r, 12, 2))
            .or_else(|| self.date(self.c(r, 14)));
        if let Some(p) = period(start, end) {
            a.insert("period".into(), p);
        }
        if a.is_empty() {
            return None;
        }
        // Table 0190 → address use/type.
        match self.c(r, 7).as_deref() {
            Some("H") => {
                a.insert("use".into(), json!("home"));
            }
            Some("B" | "O") => {
                a.insert("use".into(), json!("work"));
            }
            Some("C") => {
                a.insert("use".into(), json!("temp"));
            }
            Some("M") => {
                a.insert("type".into(), json!("postal"));
            }
            _ => {}
        }
        Some(Value::Object(a))
    }

    /// XTN → ContactPoint; `default_use` applies when XTN-2 names none (as FHIR-Converter:
    /// PID-13 home, PID-14 and NK1-6 work).
    fn telecom(&self, r: &Repetition<'a>, default_use: Option<&str>) -> Option<Value> {
        let equipment = self.c(r, 3);
        let value = if equipment.as_deref() == Some("Internet") {
            // XTN-4 communication address; senders often put it in XTN-1 instead.
            self.c(r, 4).or_else(|| self.c(r, 1))
        } else {
            self.c(r, 12)
                .or_else(|| {
                    let area = self.c(r, 6).unwrap_or_default();
                    self.c(r, 7).map(|local| format!("{area}{local}"))
                })
                .or_else(|| self.c(r, 1))
        }?;
        let mut t = json!({"value": value});
        // Table 0202 → contact-point-system.
        let system = match equipment.as_deref() {
            Some("PH" | "CP") => Some("phone"),
            Some("BP") => Some("pager"),
            Some("FX") => Some("fax"),
            Some("Internet" | "X.400") => Some("email"),
            Some(_) => Some("other"),
            None => None,
        };
        if let Some(s) = system {
            t["system"] = json!(s);
        }
        // Table 0201 → contact-point-use.
        let use_ = match self.c(r, 2).as_deref() {
            Some("PRN" | "ORN" | "VHN") => Some("home"),
            Some("WPN") => Some("work"),
            Some("PRS") => Some("mobile"),
            _ => default_use,
        };
        if let Some(u) = use_ {
            t["use"] = json!(u);
        }
        // XTN-13/14: the period it was in use; XTN-18: preference order.
        insert(
            &mut t,
            "period",
            period(self.date(self.c(r, 13)), self.date(self.c(r, 14))),
        );
        if let Some(rank) = self
            .c(r, 18)
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n > 0)
        {
            t["rank"] = json!(rank);
        }
        Some(t)
    }
}

/// The FHIR system of a v2 assigning authority / namespace (HD: namespace, universal id, its
/// type): `urn:oid:` for an ISO OID, else FHIR-Converter's `…/Identifier/<namespace>`.
fn assigner_system(
    ns: Option<String>,
    uid: Option<String>,
    uid_type: Option<String>,
) -> Option<String> {
    match (ns, uid, uid_type) {
        (_, Some(oid), Some(t)) if t.eq_ignore_ascii_case("ISO") => Some(format!("urn:oid:{oid}")),
        (Some(ns), _, _) => Some(format!(
            "http://example.com/v2-to-fhir-converter/Identifier/{}",
            ns.replace(' ', "-")
        )),
        _ => None,
    }
}

/// CX → Identifier whose assigner is the Organization CX-4 names, where CX-4 carries a
/// universal id (an HD with only a namespace stays in `system`).
fn cx_identifier(r: &Reader<'_, '_>, x: &Repetition<'_>, b: &mut Builder) -> Option<Value> {
    let mut id = r.identifier(x)?;
    if let Some(org) = hd_organization(r, x, 4, b) {
        id["assigner"] = json!({"reference": org});
    }
    Some(id)
}

/// The Organization an HD (assigning authority: namespace & universal id & its type, at
/// component `comp` of `x`) stands for: named by the namespace, identified by the universal
/// id (`urn:oid:` for an ISO OID, else typed by table 0301). None without a universal id.
fn hd_organization(
    r: &Reader<'_, '_>,
    x: &Repetition<'_>,
    comp: usize,
    b: &mut Builder,
) -> Option<String> {
    let uid = r.sc(x, comp, 2)?;
    let ns = r.sc(x, comp, 1);
    let kind = r.sc(x, comp, 3);
    let id = match kind.as_deref() {
        Some(k) if k.eq_ignore_ascii_case("ISO") => {
            json!({"system": "urn:ietf:rfc:3986", "value": format!("urn:oid:{uid}")})
        }
        Some(k) => {
            json!({"value": uid, "type": {"coding": [{"code": k, "system": "http://terminology.hl7.org/CodeSystem/v2-0301"}]}})
        }
        None => json!({"value": uid}),
    };
    let mut org = json!({"resourceType": "Organization", "identifier": [id]});
    if let Some(n) = &ns {
        org["name"] = json!(n);
    }
    let key = resource_id(
        "Organization",
        &[
            ns.as_deref().unwrap_or(""),
            &uid,
            kind.as_deref().unwrap_or(""),
        ],
    );
    Some(b.add(org, key))
}

/// XON (organization name ^ type ^ id ^ … ^ assigning authority (6) ^ … ^ identifier (10))
/// → Organization.
fn xon_organization(r: &Reader<'_, '_>, x: &Repetition<'_>, b: &mut Builder) -> Option<String> {
    let name = r.c(x, 1);
    let value = r.c(x, 10).or_else(|| r.c(x, 3));
    if name.is_none() && value.is_none() {
        return None;
    }
    let mut org = json!({"resourceType": "Organization"});
    if let Some(n) = &name {
        org["name"] = json!(n);
    }
    if let Some(v) = &value {
        let mut id = json!({"value": v});
        if let Some(system) = assigner_system(r.sc(x, 6, 1), r.sc(x, 6, 2), r.sc(x, 6, 3)) {
            id["system"] = json!(system);
        }
        org["identifier"] = json!([id]);
    }
    let key = resource_id(
        "Organization",
        &[
            name.as_deref().unwrap_or(""),
            &org["identifier"].to_string(),
        ],
    );
    Some(b.add(org, key))
}

/// Sets `subject` and `encounter` references where known.
fn link(res: &mut Value, patient: Option<&str>, encounter: Option<&str>) {
    if let Some(p) = patient {
        res["subject"] = json!({"reference": p});
    }
    if let Some(e) = encounter {
        res["encounter"] = json!({"reference": e});
    }
}

/// Placer (ORC-2, else OBR-2) and filler (ORC-3, else OBR-3) order numbers.
fn order_identifiers(
    r: &Reader<'_, '_>,
    orc: Option<&Segment<'_>>,
    obr: Option<&Segment<'_>>,
) -> Vec<Value> {
    let mut ids = Vec::new();
    for (field, kind) in [(2, "PLAC"), (3, "FILL")] {
        let x = orc
            .and_then(|o| r.first(o, field))
            .or_else(|| obr.and_then(|o| r.first(o, field)));
        if let Some(id) = x.and_then(|x| r.entity_identifier(&x, Some(kind))) {
            ids.push(id);
        }
    }
    ids
}

/// A deterministic id: a UUID-shaped hash of the resource type and its identifying fields.
pub fn resource_id(resource_type: &str, parts: &[&str]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(resource_type.as_bytes());
    for p in parts {
        h.update(&[0]);
        h.update(p.as_bytes());
    }
    let v = h.digest128();
    let x = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

struct Builder {
    entries: Vec<Value>,
    /// The ServiceRequests made so far, by the index of the segment that opens their order
    /// group (ORC, or an OBR on its own): what a later OBR/OBX is `basedOn`.
    orders: Vec<(usize, String)>,
}

impl Builder {
    /// The order in force at segment `index`: the last order group opened before it.
    fn order_at(&self, index: usize) -> Option<&str> {
        self.orders
            .iter()
            .rev()
            .find(|(i, _)| *i < index)
            .map(|(_, r)| r.as_str())
    }

    fn add(&mut self, mut resource: Value, id: String) -> String {
        let rt = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        resource["id"] = json!(id);
        let reference = format!("{rt}/{id}");
        // One entry per resource: an id is a hash of what identifies the resource, so a
        // second one (the same assigning authority on two identifiers) is the same resource.
        if self
            .entries
            .iter()
            .any(|e| e["request"]["url"].as_str() == Some(reference.as_str()))
        {
            return reference;
        }
        self.entries.push(json!({
            "fullUrl": format!("urn:uuid:{id}"),
            "resource": resource,
            "request": {"method": "PUT", "url": reference},
        }));
        reference
    }
}

/// A SimpleQuantity from a v2 NM (exact decimal) and an optional unit text.
fn simple_quantity(value: Option<String>, unit: Option<String>) -> Option<Value> {
    let v = value?;
    let v = v.trim();
    if !is_decimal(v) {
        return None;
    }
    let mut q = json!({"value": Value::Number(decimal(v))});
    if let Some(u) = unit {
        q["unit"] = json!(u);
    }
    Some(q)
}

/// A FHIR Period of whichever ends are known (`None` when neither is).
fn period(start: Option<Value>, end: Option<Value>) -> Option<Value> {
    let mut p = Map::new();
    if let Some(v) = start {
        p.insert("start".into(), v);
    }
    if let Some(v) = end {
        p.insert("end".into(), v);
    }
    (!p.is_empty()).then_some(Value::Object(p))
}

fn insert(obj: &mut Value, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        obj[key] = v;
    }
}

fn non_empty(items: Vec<Value>) -> Option<Value> {
    (!items.is_empty()).then_some(Value::Array(items))
}

/// Converts one message into a `batch` Bundle of `PUT` requests.
pub fn convert(msg: &Message<'_>, options: &Options) -> Result<Value, ConvertError> {
    let msh = msg
        .segment_at(0)
        .ok_or(ConvertError::Unsupported(String::new()))?;
    let mut r = Reader {
        msg,
        d: msg.delimiters(),
        charset: aorta_hl7::validate::charset(msg),
        offset: None,
    };
    let msh7 = r.f(&msh, 7);
    r.offset = msh7
        .as_deref()
        .and_then(v2_offset_of)
        .or_else(|| options.default_offset.clone());
    let t = r.first(&msh, 9);
    let ty = t.as_ref().and_then(|t| r.c(t, 1)).unwrap_or_default();
    let ev = t.as_ref().and_then(|t| r.c(t, 2)).unwrap_or_default();
    let kind = format!("{ty}^{ev}");
    if !SUPPORTED.contains(&kind.as_str()) {
        return Err(ConvertError::Unsupported(kind));
    }
    let mut b = Builder {
        entries: Vec::new(),
        orders: Vec::new(),
    };
    let pid = msg.segment("PID", 1);
    let patient_ref = match &pid {
        Some(pid) => Some(patient(&r, pid, &mut b)),
        None if ty == "ADT" || ty == "VXU" => {
            return Err(ConvertError::Missing {
                structure: kind,
                segment: "PID",
            });
        }
        None => None,
    };
    let encounter_ref = msg.segment("PV1", 1).map(|pv1| {
        encounter(
            &r,
            &pv1,
            msg.segment("PV2", 1).as_ref(),
            &ev,
            patient_ref.as_deref(),
            &mut b,
        )
    });
    let (p, e) = (patient_ref.as_deref(), encounter_ref.as_deref());
    match ty.as_str() {
        "ORU" => orders(&r, p, e, &mut b),
        "VXU" => {
            // VXU's ORC is the immunization order (v2-to-FHIR IG: ORC → ServiceRequest).
            orders(&r, p, e, &mut b);
            immunizations(&r, p, &mut b);
        }
        "ORM" | "OML" => orders(&r, p, e, &mut b),
        "RDE" => medication_orders(&r, p, e, &mut b),
        _ => {}
    }
    if let Some(p) = p {
        referrals(&r, p, e, &mut b);
        accident_and_death(&r, p, e, &mut b);
    }
    // OBX becomes an Observation in every message type (ADT and VXU carry them too); only a
    // result message turns OBR into a DiagnosticReport.
    results(&r, p, e, &mut b, ty == "ORU");
    let mut bundle = json!({"resourceType": "Bundle", "type": "batch"});
    // Bundle.timestamp is an instant: only a MSH-7 with seconds and an offset qualifies.
    let instant = r.datetime(msh7).filter(|t| {
        t.as_str()
            .is_some_and(|t| crate::datetime::check(crate::datetime::Kind::Instant, t).is_ok())
    });
    insert(&mut bundle, "timestamp", instant);
    if let Some(id) = msg.control_id().and_then(|c| r.text(c)) {
        bundle["identifier"] = json!({"value": id});
    }
    bundle["entry"] = Value::Array(b.entries);
    Ok(bundle)
}

fn patient(r: &Reader<'_, '_>, pid: &Segment<'_>, b: &mut Builder) -> String {
    let mut p = json!({"resourceType": "Patient"});
    let mut ids: Vec<Value> = [2, 3, 4]
        .iter()
        .flat_map(|&f| r.reps(pid, f))
        .filter_map(|x| cx_identifier(r, &x, b))
        .collect();
    let ssn = |v: String| json!({"value": v, "type": {"coding": [{"code": "SB", "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "display": "Social Beneficiary Identifier"}]}, "system": "http://hl7.org/fhir/sid/us-ssn"});
    ids.extend(r.f(pid, 19).map(ssn));
    if let Some(dl) = r.first(pid, 20)
        && let Some(v) = r.c(&dl, 1)
    {
        let mut id = json!({"value": v, "type": {"coding": [{"code": "DL"}]}});
        if let Some(s) = r.c(&dl, 2) {
            id["system"] = json!(system_uri(&s));
        }
        if let Some(e) = r.date(r.c(&dl, 3)) {
            id["period"] = json!({"end": e});
        }
        ids.push(id);
    }
    // A guarantor who is the patient (GT1-11 SEL) and the insurance segments add the
    // patient's own identifiers (v2-to-FHIR GT1/IN2 maps); their ids are not part of the
    // Patient's resource id, so a message with or without GT1 updates the same Patient.
    let own = ids.len();
    let guarantor = r
        .msg
        .segments()
        .find(|s| s.id() == b"GT1" && r.f(s, 11).as_deref() == Some("SEL"));
    if let Some(gt1) = &guarantor {
        ids.extend(r.reps(gt1, 2).iter().filter_map(|x| cx_identifier(r, x, b)));
        ids.extend(r.f(gt1, 12).map(ssn));
        ids.extend(
            r.reps(gt1, 19)
                .iter()
                .filter_map(|x| cx_identifier(r, x, b)),
        );
    }
    let insured_is_patient = r
        .msg
        .segment("IN1", 1)
        .and_then(|in1| r.f(&in1, 17))
        .is_some_and(|rel| rel == "SEL" || rel == "01");
    for in2 in r.msg.segments().filter(|s| s.id() == b"IN2") {
        // IN2-61 patient member number; IN2-6/8/10 (Medicare, Medicaid, military ids) are
        // the insured's, the patient's only when the insured is the patient.
        ids.extend(
            r.reps(&in2, 61)
                .iter()
                .filter_map(|x| cx_identifier(r, x, b)),
        );
        if insured_is_patient {
            for (f, code, system) in [
                (6, "MC", Some("http://hl7.org/fhir/sid/us-medicare")),
                (8, "MA", None),
                (10, "MI", None),
            ] {
                if let Some(v) = r.f(&in2, f) {
                    let mut id = json!({"value": v, "type": {"coding": [{"code": code, "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "display": identifier_type_display(code)}]}});
                    if let Some(sys) = system {
                        id["system"] = json!(sys);
                    }
                    ids.push(id);
                }
            }
        }
    }
    let key: Vec<String> = ids[..own]
        .iter()
        .map(|i| {
            format!(
                "{}|{}",
                i["system"].as_str().unwrap_or(""),
                i["value"].as_str().unwrap_or("")
            )
        })
        .collect();
    insert(&mut p, "identifier", non_empty(ids));
    insert(
        &mut p,
        "name",
        // PID-5 names, then PID-9 aliases.
        non_empty(
            [5, 9]
                .iter()
                .flat_map(|&f| r.reps(pid, f))
                .chain(guarantor.iter().flat_map(|g| r.reps(g, 3)))
                .filter_map(|x| r.name(&x))
                .collect(),
        ),
    );
    insert(&mut p, "gender", gender(r.f(pid, 8)).map(|g| json!(g)));
    insert(&mut p, "birthDate", r.date(r.f(pid, 7)));
    // A birth date with a time of day keeps the time in the core `patient-birthTime`
    // extension on the date (http://hl7.org/fhir/R4/extension-patient-birthtime.html).
    if let Some(dtm) = r.f(pid, 7).filter(|d| d.len() > 8)
        && let Some(t) = r
            .datetime(Some(dtm))
            .filter(|t| t.as_str().is_some_and(|t| t.contains('T')))
    {
        p["_birthDate"] = json!({"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": t}]});
    }
    insert(
        &mut p,
        "address",
        non_empty(
            r.reps(pid, 11)
                .iter()
                .cloned()
                .chain(guarantor.iter().flat_map(|g| r.reps(g, 5)))
                .filter_map(|x| r.address(&x))
                .collect(),
        ),
    );
    let mut telecom: Vec<Value> = r
        .reps(pid, 13)
        .iter()
        .filter_map(|x| r.telecom(x, Some("home")))
        .collect();
    telecom.extend(
        r.reps(pid, 14)
            .iter()
            .filter_map(|x| r.telecom(x, Some("work"))),
    );
    // PID-40 (v2.7+) carries every telecom with its own use.
    telecom.extend(r.reps(pid, 40).iter().filter_map(|x| r.telecom(x, None)));
    if let Some(g) = &guarantor {
        telecom.extend(
            r.reps(g, 6)
                .iter()
                .filter_map(|x| r.telecom(x, Some("home"))),
        );
        telecom.extend(
            r.reps(g, 7)
                .iter()
                .filter_map(|x| r.telecom(x, Some("work"))),
        );
    }
    insert(&mut p, "telecom", non_empty(telecom));
    let contacts: Vec<Value> = r
        .msg
        .segments()
        .filter(|s| s.id() == b"NK1")
        .filter_map(|nk1| contact(r, &nk1))
        .collect();
    insert(&mut p, "contact", non_empty(contacts));
    if let Some(mut m) = r.codeable_field(pid, 16) {
        if let Some(c) = m.pointer_mut("/coding/0") {
            c["system"] = json!("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus");
        }
        p["maritalStatus"] = m;
    }
    match r.f(pid, 30).as_deref() {
        Some("Y") => {
            p["deceasedDateTime"] = r.datetime(r.f(pid, 29)).unwrap_or(json!(true));
            if p["deceasedDateTime"] == json!(true) {
                p.as_object_mut().map(|o| o.remove("deceasedDateTime"));
                p["deceasedBoolean"] = json!(true);
            }
        }
        Some("N") => p["deceasedBoolean"] = json!(false),
        _ => {
            insert(&mut p, "deceasedDateTime", r.datetime(r.f(pid, 29)));
        }
    }
    match (
        r.f(pid, 24).as_deref(),
        r.f(pid, 25).and_then(|n| n.parse::<i64>().ok()),
    ) {
        (_, Some(n)) => p["multipleBirthInteger"] = json!(n),
        (Some("Y"), None) => p["multipleBirthBoolean"] = json!(true),
        (Some("N"), None) => p["multipleBirthBoolean"] = json!(false),
        _ => {}
    }
    // US Core race (PID-10) and ethnicity (PID-22) extensions, CDC Race & Ethnicity codes.
    let mut ext = Vec::new();
    for (field, url) in [
        (
            10,
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
        ),
        (
            22,
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
        ),
    ] {
        let mut parts = Vec::new();
        let mut texts = Vec::new();
        for rep in r.reps(pid, field) {
            let Some(code) = r.c(&rep, 1) else { continue };
            let mut display = r.c(&rep, 2);
            let mut code = code;
            // Table 0189 (ethnic group) codes → CDC Race & Ethnicity, the system US Core
            // binds (v2-to-FHIR ConceptMap "EthnicGroup").
            if field == 22
                && r.c(&rep, 3)
                    .is_none_or(|s| s.eq_ignore_ascii_case("HL70189"))
                && let Some((cdc, name)) = match code.as_str() {
                    "H" => Some(("2135-2", "Hispanic or Latino")),
                    "N" => Some(("2186-5", "Non Hispanic or Latino")),
                    _ => None,
                }
            {
                code = cdc.to_string();
                display = Some(name.to_string());
            }
            let mut coding = json!({"code": code, "system": "urn:oid:2.16.840.1.113883.6.238"});
            if let Some(v) = r.c(&rep, 7) {
                coding["version"] = json!(v);
            }
            if let Some(d) = &display {
                coding["display"] = json!(d);
                texts.push(d.clone());
            }
            parts.push(json!({"url": "ombCategory", "valueCoding": coding}));
        }
        if !parts.is_empty() {
            let text = if texts.is_empty() {
                "unknown".to_string()
            } else {
                // Joined as FHIR-Converter joins them, so the two stay comparable.
                texts.join("+")
            };
            parts.push(json!({"url": "text", "valueString": text}));
            ext.push(json!({"url": url, "extension": parts}));
        }
    }
    // Core R4 patient extensions (http://hl7.org/fhir/R4/patient-profiles.html).
    if let Some(mmn) = r.first(pid, 6).and_then(|x| r.sc(&x, 1, 1)) {
        ext.push(json!({"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName", "valueString": mmn}));
    }
    if let Some(place) = r.f(pid, 23) {
        ext.push(json!({"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueAddress": {"text": place}}));
    }
    if let Some(mut rel) = r.codeable_field(pid, 17) {
        if let Some(c) = rel.pointer_mut("/coding/0") {
            c["system"] = json!("http://terminology.hl7.org/CodeSystem/v3-ReligiousAffiliation");
        }
        ext.push(json!({"url": "http://hl7.org/fhir/StructureDefinition/patient-religion", "valueCodeableConcept": rel}));
    }
    // PID-26 citizenship and PID-39 tribal citizenship; PID-28 nationality.
    for (field, url) in [
        (
            26,
            "http://hl7.org/fhir/StructureDefinition/patient-citizenship",
        ),
        (
            39,
            "http://hl7.org/fhir/StructureDefinition/patient-citizenship",
        ),
        (
            28,
            "http://hl7.org/fhir/StructureDefinition/patient-nationality",
        ),
    ] {
        for x in r.reps(pid, field) {
            if let Some(code) = r.codeable(&x).map(|c| r.with_text(c, &x)) {
                ext.push(json!({"url": url, "extension": [{"url": "code", "valueCodeableConcept": code}]}));
            }
        }
    }
    // PID-27 veteran military status, under FHIR-Converter's extension URL (core R4 has none).
    if let Some(x) = r.first(pid, 27)
        && let Some(c) = r.codeable(&x).map(|c| r.with_text(c, &x))
    {
        ext.push(json!({"url": "http://example.com/v2-to-fhir-converter/StructureDefinition/VeteranMilitaryStatus", "valueCodeableConcept": c}));
    }
    let animal: Vec<Value> = [(35, "species"), (36, "breed")]
        .iter()
        .filter_map(|&(f, name)| {
            let x = r.first(pid, f)?;
            r.codeable(&x)
                .map(|c| json!({"url": name, "valueCodeableConcept": r.with_text(c, &x)}))
        })
        .collect();
    if !animal.is_empty() {
        ext.push(json!({"url": "http://hl7.org/fhir/StructureDefinition/patient-animal", "extension": animal}));
    }
    ext.extend(patient_context_extensions(r));
    insert(&mut p, "extension", non_empty(ext));
    // PD1-3 patient primary facility (XON) and PD1-4 primary care provider (XCN).
    if let Some(pd1) = r.msg.segment("PD1", 1) {
        let mut gp: Vec<Value> = r
            .reps(&pd1, 3)
            .iter()
            .filter_map(|x| xon_organization(r, x, b))
            .map(|o| json!({"reference": o}))
            .collect();
        gp.extend(
            r.reps(&pd1, 4)
                .iter()
                .filter_map(|x| practitioner(r, x, b))
                .map(|o| json!({"reference": o})),
        );
        insert(&mut p, "generalPractitioner", non_empty(gp));
    }
    if let Some(mut lang) = r.codeable_field(pid, 15) {
        bcp47_languages(&mut lang);
        p["communication"] = json!([{"language": lang, "preferred": true}]);
    }
    let id = if key.is_empty() {
        resource_id(
            "Patient",
            &[
                &p["name"].to_string(),
                p["birthDate"].as_str().unwrap_or(""),
            ],
        )
    } else {
        let k: Vec<&str> = key.iter().map(String::as_str).collect();
        resource_id("Patient", &k)
    };
    b.add(p, id)
}

/// Patient extensions from segments other than PID: PD1-14 place of worship (core
/// `patient-congregation`), PV1-16 VIP indicator (core `patient-importance`), DB1-4/-5/-6
/// disability indicator and period (FHIR-Converter's extension URLs; core R4 has none).
fn patient_context_extensions(r: &Reader<'_, '_>) -> Vec<Value> {
    let mut ext = Vec::new();
    if let Some(pd1) = r.msg.segment("PD1", 1)
        && let Some(place) = r.f(&pd1, 14)
    {
        ext.push(json!({"url": "http://hl7.org/fhir/StructureDefinition/patient-congregation", "valueString": place}));
    }
    if let Some(pv1) = r.msg.segment("PV1", 1)
        && let Some(vip) = r.codeable_field(&pv1, 16)
    {
        ext.push(json!({"url": "http://hl7.org/fhir/StructureDefinition/patient-importance", "valueCodeableConcept": vip}));
    }
    if let Some(db1) = r.msg.segment("DB1", 1) {
        let flag = match r.f(&db1, 4).as_deref() {
            Some("Y") => Some(true),
            Some("N") => Some(false),
            _ => None,
        };
        if let Some(f) = flag {
            ext.push(json!({"url": "http://example.com/v2-to-fhir-converter/StructureDefinition/patient-disabilityIndicator", "valueBoolean": f}));
        }
        if let Some(p) = period(r.date(r.f(&db1, 5)), r.date(r.f(&db1, 6))) {
            ext.push(json!({"url": "http://example.com/v2-to-fhir-converter/StructureDefinition/DisabilityPeriod", "valuePeriod": p}));
        }
    }
    ext
}

/// PID-15 codes from table 0296 (ISO 639-2, three letters) → BCP-47, the code system FHIR
/// binds `Patient.communication.language` to (as FHIR-Converter does). Codings of other
/// systems and unknown codes are left as sent.
fn bcp47_languages(concept: &mut Value) {
    let Some(codings) = concept.get_mut("coding").and_then(Value::as_array_mut) else {
        return;
    };
    for c in codings {
        let from_0296 = c["system"] == "http://terminology.hl7.org/CodeSystem/v2-0296";
        let code = c["code"].as_str().unwrap_or("").to_ascii_lowercase();
        let mapped = match code.as_str() {
            "ara" => Some(("ar", "Arabic")),
            "chi" | "zho" => Some(("zh", "Chinese")),
            "deu" | "ger" => Some(("de", "German")),
            "eng" => Some(("en", "English")),
            "fra" | "fre" => Some(("fr", "French")),
            "hin" => Some(("hi", "Hindi")),
            "ita" => Some(("it", "Italian")),
            "jpn" => Some(("ja", "Japanese")),
            "kor" => Some(("ko", "Korean")),
            "pol" => Some(("pl", "Polish")),
            "por" => Some(("pt", "Portuguese")),
            "rus" => Some(("ru", "Russian")),
            "spa" => Some(("es", "Spanish")),
            "tgl" => Some(("tl", "Tagalog")),
            "vie" => Some(("vi", "Vietnamese")),
            _ => None,
        };
        if let (true, Some((bcp, display))) = (from_0296, mapped) {
            c["code"] = json!(bcp);
            c["display"] = json!(display);
            c["system"] = json!("urn:ietf:bcp:47");
        }
    }
}

/// Table 0001 → administrative-gender (v2-to-FHIR ConceptMap "AdministrativeSex").
fn gender(code: Option<String>) -> Option<&'static str> {
    match code.as_deref() {
        Some("M") => Some("male"),
        Some("F") => Some("female"),
        Some("O" | "A" | "N") => Some("other"),
        Some("U") => Some("unknown"),
        _ => None,
    }
}

/// NK1 (next of kin / associated party) → Patient.contact: name (NK1-2), address (NK1-4),
/// telecom (NK1-5; NK1-6 business, default use work; NK1-40 and NK1-41), relationship from the
/// contact role (NK1-7, table 0131), period (NK1-8/9), gender (NK1-15). As FHIR-Converter's
/// NK1 template; the organisation of NK1-13 is not mapped (no Organization resources yet).
fn contact(r: &Reader<'_, '_>, nk1: &Segment<'_>) -> Option<Value> {
    let mut c = json!({});
    if let Some(name) = r.first(nk1, 2).and_then(|x| r.name(&x)) {
        c["name"] = name;
    }
    if let Some(a) = r.first(nk1, 4).and_then(|x| r.address(&x)) {
        c["address"] = a;
    }
    let telecom: Vec<Value> = [(5, None), (6, Some("work")), (40, Some("work")), (41, None)]
        .into_iter()
        .flat_map(|(f, default_use)| {
            r.reps(nk1, f)
                .into_iter()
                .filter_map(move |x| r.telecom(&x, default_use))
        })
        .collect();
    insert(&mut c, "telecom", non_empty(telecom));
    if let Some(role) = r.first(nk1, 7)
        && let Some(code) = r.c(&role, 1)
    {
        // Table 0131 (Contact Role).
        let display = match code.as_str() {
            "C" => Some("Emergency Contact"),
            "E" => Some("Employer"),
            "F" => Some("Federal Agency"),
            "I" => Some("Insurance Company"),
            "N" => Some("Next-of-Kin"),
            "S" => Some("State Agency"),
            "O" => Some("Other"),
            "U" => Some("Unknown"),
            _ => None,
        };
        let mut coding =
            json!({"code": code, "system": "http://terminology.hl7.org/CodeSystem/v2-0131"});
        if let Some(d) = display.map(str::to_string).or_else(|| r.c(&role, 2)) {
            coding["display"] = json!(d);
        }
        c["relationship"] = json!([{"coding": [coding]}]);
    }
    insert(
        &mut c,
        "period",
        period(r.date(r.f(nk1, 8)), r.date(r.f(nk1, 9))),
    );
    insert(&mut c, "gender", gender(r.f(nk1, 15)).map(|g| json!(g)));
    (c.as_object().is_some_and(|o| !o.is_empty())).then_some(c)
}

fn encounter(
    r: &Reader<'_, '_>,
    pv1: &Segment<'_>,
    pv2: Option<&Segment<'_>>,
    event: &str,
    patient: Option<&str>,
    b: &mut Builder,
) -> String {
    let mut e = json!({"resourceType": "Encounter"});
    // Table 0004 patient class → v3-ActCode (v2-to-FHIR ConceptMap "PatientClass").
    let class = match r.f(pv1, 2).as_deref() {
        Some("E") => ("EMER", "emergency"),
        Some("I") => ("IMP", "inpatient encounter"),
        Some("O") => ("AMB", "ambulatory"),
        Some("P") => ("PRENC", "pre-admission"),
        Some("R") => ("IMP", "inpatient encounter"),
        Some("B") => ("OBSENC", "observation encounter"),
        _ => ("", ""),
    };
    if !class.0.is_empty() {
        e["class"] = json!({"code": class.0, "display": class.1, "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode"});
    } else if let Some(c) = r.f(pv1, 2) {
        e["class"] = json!({"code": c, "system": "http://terminology.hl7.org/CodeSystem/v2-0004"});
    } else {
        // Encounter.class is 1..1 in R4; PV1-2 is required in v2 too, but not always sent.
        e["class"] = json!({"code": "UNK", "display": "unknown", "system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"});
    }
    let discharged = r.f(pv1, 45).is_some();
    let status = match event {
        "A03" => "finished",
        "A05" | "A14" => "planned",
        "A11" | "A27" => "cancelled",
        _ if discharged => "finished",
        "A01" | "A02" | "A04" | "A06" | "A07" | "A08" | "A13" => "in-progress",
        _ => "unknown",
    };
    e["status"] = json!(status);
    // PV1-19 is the visit number whatever CX-5 says (v2-to-FHIR PV1 map: type VN); PV1-50,
    // the alternate visit id, keeps its own type.
    let mut ids = Vec::new();
    if let Some(vn) = r.first(pv1, 19)
        && let Some(mut id) = cx_identifier(r, &vn, b)
    {
        id["type"] = json!({"coding": [{"code": "VN", "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "display": "Visit number"}], "text": "visit number"});
        ids.push(id);
    }
    ids.extend(r.first(pv1, 50).and_then(|x| cx_identifier(r, &x, b)));
    insert(&mut e, "identifier", non_empty(ids));
    insert(
        &mut e,
        "type",
        r.table_code(pv1, 4, "0007")
            .map(|c| with_display(c, admission_type_display))
            .map(|c| json!([c])),
    );
    if let Some(s) = r.f(pv1, 10) {
        e["serviceType"] = json!({"coding": [{"code": s}]});
    }
    insert(
        &mut e,
        "period",
        period(r.datetime(r.f(pv1, 44)), r.datetime(r.f(pv1, 45))),
    );
    let mut hosp = Map::new();
    if let Some(id) = r.first(pv1, 5).and_then(|x| cx_identifier(r, &x, b)) {
        hosp.insert("preAdmissionIdentifier".into(), id);
    }
    if let Some(v) = r.table_code(pv1, 13, "0092") {
        let readmission = |c: &str| (c == "R").then_some("Re-admission");
        hosp.insert("reAdmission".into(), with_display(v, readmission));
    }
    if let Some(v) = r.codeable_field(pv1, 14) {
        hosp.insert("admitSource".into(), v);
    }
    if let Some(v) = r.codeable_field(pv1, 36) {
        hosp.insert("dischargeDisposition".into(), v);
    }
    if let Some(v) = r.codeable_field(pv1, 38) {
        hosp.insert("dietPreference".into(), json!([v]));
    }
    if !hosp.is_empty() {
        e["hospitalization"] = Value::Object(hosp);
    }
    // PV1-7/8/9/17 (XCN) → participants (v3-ParticipationType) and Practitioner resources.
    let mut participants = Vec::new();
    // PV1-52 (other healthcare provider) and PV2-13 (referral source) as FHIR-Converter maps them.
    for (seg, field, code, label) in [
        (Some(pv1), 7, "ATND", "attender"),
        (Some(pv1), 8, "REF", "referrer"),
        (Some(pv1), 9, "CON", "consultant"),
        (Some(pv1), 17, "ADM", "admitter"),
        (Some(pv1), 52, "PART", "Participation"),
        (pv2, 13, "REF", "referrer"),
    ] {
        let Some(seg) = seg else { continue };
        for x in r.reps(seg, field) {
            let Some(pr) = practitioner(r, &x, b) else {
                continue;
            };
            participants.push(json!({
                "type": [{"coding": [{"code": code, "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "display": label}], "text": label}],
                "individual": {"reference": pr},
            }));
        }
    }
    insert(&mut e, "participant", non_empty(participants));
    // PV1-3/6/11/42/43 (PL) → Encounter.location with its status (v2-to-FHIR PV1 map).
    let mut locations = Vec::new();
    for (field, status, temporary) in [
        (3, "active", false),
        (6, "completed", false),
        (11, "active", true),
        (42, "planned", false),
        (43, "completed", true),
    ] {
        for x in r.reps(pv1, field) {
            let Some(loc) = location(r, &x, b) else {
                continue;
            };
            let mut l = json!({"status": status, "location": {"reference": loc}});
            if temporary {
                l["extension"] = json!([{"url": "http://hl7.org/fhir/uv/v2mappings/StructureDefinition/temporary-location", "valueBoolean": true}]);
            }
            locations.push(l);
        }
    }
    insert(&mut e, "location", non_empty(locations));
    if let Some(pv2) = pv2 {
        pv2_details(r, pv2, &mut e);
    }
    if let Some(p) = patient {
        insert(&mut e, "diagnosis", non_empty(diagnoses(r, p, b)));
    }
    if let Some(p) = patient {
        e["subject"] = json!({"reference": p});
    }
    let key = e["identifier"].to_string();
    let id = resource_id(
        "Encounter",
        &[
            patient.unwrap_or(""),
            &key,
            e["period"].to_string().as_str(),
        ],
    );
    b.add(e, id)
}

/// The PV2 fields an Encounter takes: reason PV2-3, expected length of stay PV2-11 (days),
/// visit priority PV2-25 (table 0217 → v3-ActPriority, the v2-to-FHIR ConceptMap), mode of
/// arrival PV2-38 (table 0430, core extension `encounter-modeOfArrival`).
fn pv2_details(r: &Reader<'_, '_>, pv2: &Segment<'_>, e: &mut Value) {
    if let Some(reason) = r.codeable_field(pv2, 3) {
        e["reasonCode"] = json!([reason]);
    }
    if let Some(days) = r.f(pv2, 11).filter(|d| is_decimal(d)) {
        e["length"] = json!({"value": Value::Number(decimal(&days)), "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"});
    }
    if let Some(x) = r.first(pv2, 25) {
        let codings: Vec<Value> = [(1, 7), (4, 8)]
            .iter()
            .filter_map(|&(code, version)| {
                let (code, display) = match r.c(&x, code)?.as_str() {
                    "1" => ("EM", "emergency"),
                    "2" => ("UR", "urgent"),
                    "3" => ("EL", "elective"),
                    _ => return None,
                };
                let mut c = json!({"code": code, "display": display, "system": "http://terminology.hl7.org/CodeSystem/v3-ActPriority"});
                if let Some(v) = r.c(&x, version) {
                    c["version"] = json!(v);
                }
                Some(c)
            })
            .collect();
        if !codings.is_empty() {
            e["priority"] = json!({"coding": codings});
        }
    }
    if let Some(mode) = r.f(pv2, 38) {
        let display = match mode.as_str() {
            "A" => Some("Ambulance"),
            "C" => Some("Car"),
            "F" => Some("On foot"),
            "H" => Some("Helicopter"),
            "O" => Some("Other"),
            "P" => Some("Public Transport"),
            "U" => Some("Unknown"),
            _ => None,
        };
        let mut coding =
            json!({"code": mode, "system": "http://terminology.hl7.org/CodeSystem/v2-0430"});
        if let Some(d) = display {
            coding["display"] = json!(d);
        }
        e["extension"] = json!([{"url": "http://hl7.org/fhir/StructureDefinition/encounter-modeOfArrival", "valueCoding": coding}]);
    }
}

/// DG1 → Condition (code DG1-3 with DG1-4 as text, onset DG1-5, asserted DG1-19 in the core
/// `condition-assertedDate` extension, asserter DG1-16), and the Encounter.diagnosis entry
/// that names it: use from DG1-6 (table 0052: A admitting → AD, F final → DD), rank DG1-15.
fn diagnoses(r: &Reader<'_, '_>, patient: &str, b: &mut Builder) -> Vec<Value> {
    let mut out = Vec::new();
    for dg1 in r.msg.segments().filter(|s| s.id() == b"DG1") {
        let mut c = json!({"resourceType": "Condition", "subject": {"reference": patient}});
        let mut code = r.codeable_field(&dg1, 3);
        if let Some(text) = r.f(&dg1, 4) {
            code.get_or_insert_with(|| json!({}))["text"] = json!(text);
        }
        let Some(code) = code else { continue };
        c["code"] = code;
        insert(&mut c, "onsetDateTime", r.datetime(r.f(&dg1, 5)));
        if let Some(t) = r.datetime(r.f(&dg1, 19)) {
            c["extension"] = json!([{"url": "http://hl7.org/fhir/StructureDefinition/condition-assertedDate", "valueDateTime": t}]);
        }
        if let Some(p) = r.first(&dg1, 16).and_then(|x| practitioner(r, &x, b)) {
            c["asserter"] = json!({"reference": p});
        }
        let id = resource_id(
            "Condition",
            &[
                patient,
                &c["code"].to_string(),
                &r.f(&dg1, 1).unwrap_or_default(),
            ],
        );
        let reference = b.add(c, id);
        let mut d = json!({"condition": {"reference": reference}});
        let role = match r.f(&dg1, 6).as_deref() {
            Some("A") => Some(("AD", "Admission Diagnosis")),
            Some("F") => Some(("DD", "Discharge Diagnosis")),
            // W (working) has no diagnosis-role counterpart.
            _ => None,
        };
        if let Some((code, display)) = role {
            d["use"] = json!({"coding": [{"code": code, "display": display, "system": "http://terminology.hl7.org/CodeSystem/diagnosis-role"}]});
        }
        if let Some(rank) = r
            .f(&dg1, 15)
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n > 0)
        {
            d["rank"] = json!(rank);
        }
        out.push(d);
    }
    out
}

/// HL7 table 0007 (admission type) displays.
fn admission_type_display(code: &str) -> Option<&'static str> {
    Some(match code {
        "A" => "Accident",
        "C" => "Elective",
        "E" => "Emergency",
        "L" => "Labor and Delivery",
        "N" => "Newborn (Birth in healthcare facility)",
        "R" => "Routine",
        "U" => "Urgent",
        _ => return None,
    })
}

/// Adds the display `table` gives for the first coding's code, where it has none.
fn with_display(mut concept: Value, table: impl Fn(&str) -> Option<&'static str>) -> Value {
    if let Some(c) = concept.pointer_mut("/coding/0")
        && c.get("display").is_none()
        && let Some(d) = c["code"].as_str().and_then(&table)
    {
        c["display"] = json!(d);
    }
    concept
}

/// PL (point of care ^ room ^ bed ^ facility …) → Location named by its parts.
fn location(r: &Reader<'_, '_>, x: &Repetition<'_>, b: &mut Builder) -> Option<String> {
    let parts: Vec<String> = [1, 2, 3, 4].iter().filter_map(|&i| r.c(x, i)).collect();
    if parts.is_empty() {
        return None;
    }
    let name = parts.join(" ");
    let mut l = json!({"resourceType": "Location", "name": name, "mode": "instance"});
    if let Some(d) = r.c(x, 9) {
        l["description"] = json!(d);
    }
    let id = resource_id("Location", &[&name]);
    Some(b.add(l, id))
}

/// XCN → Practitioner (identifier XCN-1 in the XCN-9 namespace, name XCN-2..6).
fn practitioner(r: &Reader<'_, '_>, x: &Repetition<'_>, b: &mut Builder) -> Option<String> {
    let mut p = json!({"resourceType": "Practitioner"});
    let id_value = r.c(x, 1);
    if let Some(v) = &id_value {
        let mut id = json!({"value": v});
        if let Some(system) = assigner_system(r.sc(x, 9, 1), r.sc(x, 9, 2), r.sc(x, 9, 3)) {
            id["system"] = json!(system);
        }
        p["identifier"] = json!([id]);
    }
    // XCN-2 family, -3/-4 given, -5 suffix, -6 prefix.
    let n = r.human_name(x, 2, &[3, 4], 6, &[5]);
    if id_value.is_none() && n.is_empty() {
        return None;
    }
    let name = Value::Object(n);
    let id = resource_id(
        "Practitioner",
        &[
            id_value.as_deref().unwrap_or(""),
            &p["identifier"].to_string(),
            &name.to_string(),
        ],
    );
    if name.as_object().is_some_and(|n| !n.is_empty()) {
        p["name"] = json!([name]);
    }
    Some(b.add(p, id))
}

/// XCN → a PractitionerRole for the Practitioner it names (the v2-to-FHIR IG's
/// "XCN[PractitionerRole]": a person acting in a role for this order or result).
fn practitioner_role(r: &Reader<'_, '_>, x: &Repetition<'_>, b: &mut Builder) -> Option<String> {
    let p = practitioner(r, x, b)?;
    let id = resource_id("PractitionerRole", &[&p]);
    Some(b.add(
        json!({"resourceType": "PractitionerRole", "practitioner": {"reference": p}}),
        id,
    ))
}

/// OBX-11 (table 0085) → Observation.status (v2-to-FHIR ConceptMap "ObservationResultStatus").
fn observation_status(code: Option<&str>) -> &'static str {
    match code {
        Some("F" | "U") => "final",
        Some("C") => "corrected",
        Some("A") => "amended",
        Some("P" | "R" | "S") => "preliminary",
        Some("I") => "registered",
        Some("D" | "W") => "entered-in-error",
        Some("X" | "N") => "cancelled",
        _ => "unknown",
    }
}

/// The display of an OBX-8 code (table 0078) in FHIR's v3-ObservationInterpretation code
/// system (terminology.hl7.org), for the codes the two share.
fn interpretation_display(code: &str) -> Option<&'static str> {
    Some(match code {
        "<" => "Off scale low",
        ">" => "Off scale high",
        "A" => "Abnormal",
        "AA" => "Critical abnormal",
        "B" => "Better",
        "D" => "Significant change down",
        "DET" => "Detected",
        "H" => "High",
        "HH" => "Critical high",
        "HU" => "Significantly high",
        "I" => "Intermediate",
        "IND" => "Indeterminate",
        "L" => "Low",
        "LL" => "Critical low",
        "LU" => "Significantly low",
        "N" => "Normal",
        "ND" => "Not detected",
        "NEG" => "Negative",
        "POS" => "Positive",
        "R" => "Resistant",
        "S" => "Susceptible",
        "U" => "Significant change up",
        "W" => "Worse",
        _ => return None,
    })
}

/// Short names of table 0085 (Observation Result Status) codes, as FHIR-Converter shows them.
fn result_status_display(code: &str) -> Option<&'static str> {
    Some(match code {
        "C" => "Corrected",
        "D" => "Deleted",
        "F" => "Final",
        "I" => "In Process",
        "N" => "Not Asked",
        "O" => "Order Detail",
        "P" => "Preliminary",
        "R" => "Results Entered",
        "S" => "Partial",
        "U" => "Final (status change)",
        "W" => "Wrong",
        "X" => "Cannot Obtain",
        _ => return None,
    })
}

/// OBR-25 (table 0123) → DiagnosticReport.status.
fn report_status(code: Option<&str>) -> &'static str {
    match code {
        Some("F") => "final",
        Some("C") => "corrected",
        Some("P") => "preliminary",
        Some("A" | "R" | "S") => "partial",
        Some("I" | "O") => "registered",
        Some("X") => "cancelled",
        _ => "unknown",
    }
}

fn observation(
    r: &Reader<'_, '_>,
    obx: &Segment<'_>,
    notes: &[Value],
    patient: Option<&str>,
    encounter: Option<&str>,
    context: &str,
    b: &mut Builder,
) -> Option<String> {
    let mut o = json!({"resourceType": "Observation"});
    o["status"] = json!(observation_status(r.f(obx, 11).as_deref()));
    if let Some(code) = r.f(obx, 11) {
        // The v2 result status as sent (the FHIR status is a lossy map of it), under the
        // extension URL FHIR-Converter writes, so the two stay comparable.
        let display = result_status_display(&code);
        let mut coding =
            json!({"code": code, "system": "http://terminology.hl7.org/CodeSystem/v2-0085"});
        if let Some(d) = display {
            coding["display"] = json!(d);
        }
        o["extension"] = json!([{
            "url": "http://example.com/v2-to-fhir-converter/Observation_Status",
            "valueCodeableConcept": {"coding": [coding], "text": display.unwrap_or(code.as_str())},
        }]);
    }
    o["code"] = r.codeable_field(obx, 3)?;
    let vt = r.f(obx, 2).unwrap_or_default();
    let values = r.reps(obx, 5);
    let range = r.f(obx, 7).map(|range| {
        let mut rr = json!({"text": range});
        if let Some((lo, hi)) = range.split_once('-')
            && is_decimal(lo.trim())
            && is_decimal(hi.trim())
        {
            rr["low"] = json!({"value": Value::Number(decimal(lo.trim()))});
            rr["high"] = json!({"value": Value::Number(decimal(hi.trim()))});
        }
        rr
    });
    let textual = !matches!(
        vt.as_str(),
        "NM" | "SN" | "CWE" | "CE" | "CNE" | "CF" | "DT" | "TS" | "DTM" | "TM"
    );
    if textual {
        let text: Vec<String> = values.iter().filter_map(|x| r.text(x.raw())).collect();
        if !text.is_empty() {
            o["valueString"] = json!(text.join("\n"));
        }
        insert(&mut o, "referenceRange", range.map(|rr| json!([rr])));
    } else if values.len() > 1 {
        // A repeating structured OBX-5 (two readings of one code): one component per value,
        // each with the code and the reference range, as FHIR-Converter writes it.
        let components: Vec<Value> = values
            .iter()
            .filter_map(|v| {
                let (key, value) = obx_value(r, obx, &vt, v)?;
                let mut c = json!({"code": o["code"].clone()});
                c[key] = value;
                insert(
                    &mut c,
                    "referenceRange",
                    range.clone().map(|rr| json!([rr])),
                );
                Some(c)
            })
            .collect();
        insert(&mut o, "component", non_empty(components));
    } else {
        if let Some((key, value)) = values.first().and_then(|v| obx_value(r, obx, &vt, v)) {
            o[key] = value;
        }
        insert(&mut o, "referenceRange", range.map(|rr| json!([rr])));
    }
    let interp: Vec<Value> = r
        .reps(obx, 8)
        .iter()
        .filter_map(|x| {
            let mut c = r.codeable(x)?;
            if let Some(cd) = c.pointer_mut("/coding/0") {
                cd["system"] =
                    json!("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation");
                if let Some(d) = cd["code"].as_str().and_then(interpretation_display) {
                    cd["display"] = json!(d);
                }
            }
            Some(c)
        })
        .collect();
    insert(&mut o, "interpretation", non_empty(interp));
    insert(&mut o, "effectiveDateTime", r.datetime(r.f(obx, 14)));
    insert(&mut o, "method", r.codeable_field(obx, 17));
    insert(&mut o, "bodySite", r.codeable_field(obx, 20));
    if let Some(id) = r.first(obx, 21).and_then(|x| r.entity_identifier(&x, None)) {
        o["identifier"] = json!([id]);
    }
    if !notes.is_empty() {
        o["note"] = json!(notes);
    }
    // OBX-16 responsible observer and OBX-25 performing organization's medical director
    // (PractitionerRole), OBX-23 performing organization.
    let mut performers: Vec<Value> = r
        .reps(obx, 16)
        .iter()
        .chain(r.reps(obx, 25).iter())
        .filter_map(|x| practitioner_role(r, x, b))
        .map(|p| json!({"reference": p}))
        .collect();
    performers.extend(
        r.first(obx, 23)
            .and_then(|x| xon_organization(r, &x, b))
            .map(|o| json!({"reference": o})),
    );
    insert(&mut o, "performer", non_empty(performers));
    link(&mut o, patient, encounter);
    if let Some(order) = b.order_at(obx.index()) {
        o["basedOn"] = json!([{"reference": order}]);
    }
    let id = resource_id(
        "Observation",
        &[
            context,
            &r.f(obx, 1).unwrap_or_default(),
            &o["code"].to_string(),
            &r.f(obx, 14).unwrap_or_default(),
        ],
    );
    Some(b.add(o, id))
}

/// One structured OBX-5 value by its OBX-2 type: NM/SN → Quantity (comparator, OBX-6 unit,
/// UCUM when the unit names no other system), coded → CodeableConcept, DT/DTM → dateTime.
/// A number that does not parse stays a string; TM has no FHIR value type here.
fn obx_value(
    r: &Reader<'_, '_>,
    obx: &Segment<'_>,
    vt: &str,
    v: &Repetition<'_>,
) -> Option<(&'static str, Value)> {
    match vt {
        "NM" | "SN" => {
            let (comparator, num) = if vt == "SN" {
                (r.c(v, 1), r.c(v, 2))
            } else {
                (None, r.c(v, 1))
            };
            let Some(n) = num.as_deref().map(str::trim).filter(|n| is_decimal(n)) else {
                return r.text(v.raw()).map(|t| ("valueString", json!(t)));
            };
            let mut q = json!({"value": Value::Number(decimal(n))});
            if let Some(c) = comparator.filter(|c| ["<", "<=", ">", ">="].contains(&c.as_str())) {
                q["comparator"] = json!(c);
            }
            if let Some(u) = r.first(obx, 6) {
                if let Some(unit) = r.c(&u, 2).or_else(|| r.c(&u, 1)) {
                    q["unit"] = json!(unit);
                }
                if let Some(code) = r.c(&u, 1) {
                    match r.c(&u, 3).map(|s| system_uri(&s)) {
                        None => {
                            q["system"] = json!("http://unitsofmeasure.org");
                            q["code"] = json!(code);
                        }
                        Some(sys) if sys.starts_with("http://example.com/") => {}
                        Some(sys) => {
                            q["system"] = json!(sys);
                            q["code"] = json!(code);
                        }
                    }
                }
            }
            Some(("valueQuantity", q))
        }
        "CWE" | "CE" | "CNE" | "CF" => r.codeable(v).map(|c| ("valueCodeableConcept", c)),
        "DT" => r.date(r.c(v, 1)).map(|d| ("valueDateTime", d)),
        "TS" | "DTM" => r.datetime(r.c(v, 1)).map(|d| ("valueDateTime", d)),
        _ => None,
    }
}

/// An HL7 v2 NM value (optional sign, digits, optional point and digits; `.5` allowed).
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    (!int.is_empty() || !frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(s.contains('.') && frac.is_empty())
}

/// A v2 NM as a FHIR decimal, digits exactly as written (FHIR keeps `7.20` distinct from
/// `7.2`) but in JSON's number grammar: no `+`, no leading zeros, a digit before the point.
fn decimal(s: &str) -> serde_json::Number {
    let (sign, body) = match s.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let text = if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    };
    serde_json::from_str(&text).unwrap_or_else(|_| serde_json::Number::from(0))
}

/// NTE segments following `at` (until the next non-NTE, non-Z segment) → Annotations.
fn notes_after(r: &Reader<'_, '_>, at: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut i = at + 1;
    while let Some(s) = r.msg.segment_at(i) {
        match s.id() {
            b"NTE" => {
                let text: Vec<String> = r
                    .reps(&s, 3)
                    .iter()
                    .filter_map(|x| r.text(x.raw()))
                    .collect();
                if !text.is_empty() {
                    let mut n = json!({"text": text.join("\n")});
                    insert(&mut n, "time", r.datetime(r.f(&s, 6)));
                    out.push(n);
                }
            }
            id if id.first() == Some(&b'Z') || id == b"PRT" => {}
            _ => break,
        }
        i += 1;
    }
    out
}

fn results(
    r: &Reader<'_, '_>,
    patient: Option<&str>,
    encounter: Option<&str>,
    b: &mut Builder,
    reports: bool,
) {
    let mut report: Option<(Value, Vec<Value>, String)> = None;
    let mut specimens = Vec::new();
    let flush = |report: &mut Option<(Value, Vec<Value>, String)>,
                 specimens: &mut Vec<Value>,
                 b: &mut Builder| {
        if let Some((mut dr, results, key)) = report.take() {
            if !results.is_empty() {
                dr["result"] = Value::Array(results);
            }
            if !specimens.is_empty() {
                dr["specimen"] = Value::Array(std::mem::take(specimens));
            }
            let id = resource_id("DiagnosticReport", &[patient.unwrap_or(""), &key]);
            b.add(dr, id);
        }
    };
    for s in r.msg.segments() {
        match s.id() {
            b"OBR" => {
                flush(&mut report, &mut specimens, b);
                if let Some(sp) = obr_specimen(r, &s, patient, b) {
                    specimens.push(json!({"reference": sp}));
                }
                if !reports {
                    continue;
                }
                let mut dr = json!({"resourceType": "DiagnosticReport"});
                let mut ids = Vec::new();
                if let Some(x) = r
                    .first(&s, 2)
                    .and_then(|x| r.entity_identifier(&x, Some("PLAC")))
                {
                    ids.push(x);
                }
                if let Some(x) = r
                    .first(&s, 3)
                    .and_then(|x| r.entity_identifier(&x, Some("FILL")))
                {
                    ids.push(x);
                }
                let key = format!("{}|{}", json!(ids), r.f(&s, 4).unwrap_or_default());
                insert(&mut dr, "identifier", non_empty(ids));
                dr["status"] = json!(report_status(r.f(&s, 25).as_deref()));
                insert(&mut dr, "code", r.codeable_field(&s, 4));
                if dr.get("code").is_none() {
                    dr["code"] = json!({"text": "unknown"});
                }
                insert(&mut dr, "effectiveDateTime", r.datetime(r.f(&s, 7)));
                insert(
                    &mut dr,
                    "issued",
                    r.f(&s, 22).and_then(|v| {
                        let t = dtm_to_datetime(&v, r.offset.as_deref())?;
                        crate::datetime::check(crate::datetime::Kind::Instant, &t).ok()?;
                        Some(json!(t))
                    }),
                );
                link(&mut dr, patient, encounter);
                if let Some(order) = b.order_at(s.index() + 1) {
                    dr["basedOn"] = json!([{"reference": order}]);
                }
                report = Some((dr, Vec::new(), key));
            }
            b"OBX" => {
                let context = report.as_ref().map(|x| x.2.clone()).unwrap_or_default();
                let notes = notes_after(r, s.index());
                if let Some(o) = observation(r, &s, &notes, patient, encounter, &context, b)
                    && let Some((_, results, _)) = report.as_mut()
                {
                    results.push(json!({"reference": o}));
                }
            }
            b"SPM" => {
                if let Some(sp) = specimen(r, &s, patient, b) {
                    specimens.push(json!({"reference": sp}));
                }
            }
            _ => {}
        }
    }
    flush(&mut report, &mut specimens, b);
}

/// The specimen an OBR describes (v2-to-FHIR IG "OBR[Specimen]", as ReportStream and
/// FHIR-Converter map it): type and body site from OBR-15 (SPS), collection period OBR-7/8,
/// quantity OBR-9, received time OBR-14. None unless OBR-9, -14 or -15 is sent.
fn obr_specimen(
    r: &Reader<'_, '_>,
    obr: &Segment<'_>,
    patient: Option<&str>,
    b: &mut Builder,
) -> Option<String> {
    // Only an OBR that says something about a specimen (volume, source, received time) has
    // one: OBR-7 alone is just the observation time (vital signs have no specimen).
    if [9, 14, 15].iter().all(|&f| r.f(obr, f).is_none()) {
        return None;
    }
    let mut sp = json!({"resourceType": "Specimen"});
    let mut collection = Map::new();
    let (start, end) = (r.datetime(r.f(obr, 7)), r.datetime(r.f(obr, 8)));
    match (start, end) {
        (Some(s), None) => {
            collection.insert("collectedDateTime".into(), s);
        }
        (s, e) => {
            if let Some(p) = period(s, e) {
                collection.insert("collectedPeriod".into(), p);
            }
        }
    }
    if let Some(q) = r.first(obr, 9)
        && let Some(quantity) =
            simple_quantity(r.c(&q, 1), r.sc(&q, 2, 2).or_else(|| r.sc(&q, 2, 1)))
    {
        collection.insert("quantity".into(), quantity);
    }
    // SPS: each component a CWE written with subcomponents.
    let sps_concept = |rep: &Repetition<'_>, comp: usize| -> Option<Value> {
        let code = r.sc(rep, comp, 1);
        let display = r.sc(rep, comp, 2);
        if code.is_none() && display.is_none() {
            return None;
        }
        let mut coding = Map::new();
        if let Some(c) = code {
            coding.insert("code".into(), json!(c));
        }
        if let Some(d) = &display {
            coding.insert("display".into(), json!(d));
        }
        if let Some(sys) = r.sc(rep, comp, 3) {
            coding.insert("system".into(), json!(system_uri(&sys)));
        }
        Some(json!({"coding": [Value::Object(coding)]}))
    };
    if let Some(sps) = r.first(obr, 15) {
        insert(&mut sp, "type", sps_concept(&sps, 1));
        if let Some(site) = sps_concept(&sps, 4) {
            collection.insert("bodySite".into(), site);
        }
    }
    if !collection.is_empty() {
        sp["collection"] = Value::Object(collection);
    }
    insert(&mut sp, "receivedTime", r.datetime(r.f(obr, 14)));
    if let Some(p) = patient {
        sp["subject"] = json!({"reference": p});
    }
    let id = resource_id(
        "Specimen",
        &[
            patient.unwrap_or(""),
            "OBR",
            &r.f(obr, 2).unwrap_or_default(),
            &r.f(obr, 3).unwrap_or_default(),
            &obr.index().to_string(),
        ],
    );
    Some(b.add(sp, id))
}

fn specimen(
    r: &Reader<'_, '_>,
    spm: &Segment<'_>,
    patient: Option<&str>,
    b: &mut Builder,
) -> Option<String> {
    let mut sp = json!({"resourceType": "Specimen"});
    let mut ids = Vec::new();
    if let Some(eip) = r.first(spm, 2) {
        // EIP: placer assigned identifier (1), filler assigned identifier (2), each an EI
        // written with subcomponents.
        if let Some(v) = r.sc(&eip, 1, 1) {
            ids.push(json!({"value": v, "type": {"coding": [{"code": "PLAC", "system": "http://terminology.hl7.org/CodeSystem/v2-0203"}]}}));
        }
        if let Some(v) = r.sc(&eip, 2, 1) {
            ids.push(json!({"value": v, "type": {"coding": [{"code": "FILL", "system": "http://terminology.hl7.org/CodeSystem/v2-0203"}]}}));
        }
    }
    let key = json!(ids).to_string();
    insert(&mut sp, "identifier", non_empty(ids));
    // SPM-4 specimen type: table 0487 unless the sender names another system.
    insert(&mut sp, "type", r.table_code(spm, 4, "0487"));
    // SPM-20 specimen availability (Y/N) → status.
    match r.f(spm, 20).as_deref() {
        Some("Y") => sp["status"] = json!("available"),
        Some("N") => sp["status"] = json!("unavailable"),
        _ => {}
    }
    let mut collection = Map::new();
    if let Some(v) = r.codeable_field(spm, 8) {
        collection.insert("bodySite".into(), v);
    }
    if let Some(v) = r.codeable_field(spm, 7) {
        collection.insert("method".into(), v);
    }
    if let Some(rng) = r.first(spm, 17)
        && let Some(s) = r.datetime(r.sc(&rng, 1, 1))
    {
        collection.insert("collectedDateTime".into(), s);
    }
    if !collection.is_empty() {
        sp["collection"] = Value::Object(collection);
    }
    insert(&mut sp, "receivedTime", r.datetime(r.f(spm, 18)));
    if let Some(p) = patient {
        sp["subject"] = json!({"reference": p});
    }
    let id = resource_id(
        "Specimen",
        &[
            patient.unwrap_or(""),
            &key,
            &r.f(spm, 1).unwrap_or_default(),
        ],
    );
    Some(b.add(sp, id))
}

fn immunizations(r: &Reader<'_, '_>, patient: Option<&str>, b: &mut Builder) {
    for rxa in r.msg.segments().filter(|s| s.id() == b"RXA") {
        let mut im = json!({"resourceType": "Immunization"});
        // RXA-20 completion status (table 0322) → Immunization.status.
        im["status"] = json!(match r.f(&rxa, 20).as_deref() {
            Some("RE" | "NA") => "not-done",
            Some("PA") => "completed",
            _ if r.f(&rxa, 21).as_deref() == Some("D") => "entered-in-error",
            _ => "completed",
        });
        im["vaccineCode"] = r
            .codeable_field(&rxa, 5)
            .unwrap_or(json!({"text": "unknown"}));
        match r.datetime(r.f(&rxa, 3)) {
            Some(t) => im["occurrenceDateTime"] = t,
            None => im["occurrenceString"] = json!("unknown"),
        }
        if let Some(p) = patient {
            im["patient"] = json!({"reference": p});
        }
        if let Some(amount) = r
            .f(&rxa, 6)
            .filter(|a| is_decimal(a.trim()) && a.trim() != "999")
        {
            let mut q = json!({"value": Value::Number(decimal(amount.trim()))});
            if let Some(u) = r.first(&rxa, 7) {
                if let Some(code) = r.c(&u, 1) {
                    q["code"] = json!(code);
                    q["system"] = json!("http://unitsofmeasure.org");
                }
                if let Some(unit) = r.c(&u, 2).or_else(|| r.c(&u, 1)) {
                    q["unit"] = json!(unit);
                }
            }
            im["doseQuantity"] = q;
        }
        // The order this administration belongs to: the ORC before it.
        let orc = r
            .msg
            .segments()
            .take_while(|s| s.index() < rxa.index())
            .filter(|s| s.id() == b"ORC")
            .last();
        insert(
            &mut im,
            "identifier",
            non_empty(order_identifiers(r, orc.as_ref(), None)),
        );
        // RXA-9 information source (NIP001): 00 is a new record, from the source itself.
        match r.f(&rxa, 9).as_deref() {
            Some("00") => im["primarySource"] = json!(true),
            Some(c) if c.len() == 2 && c.starts_with('0') => im["primarySource"] = json!(false),
            _ => {}
        }
        // ORC-12 ordering provider (OP) and RXA-10 administering provider (AP), table 0443.
        let mut performers = Vec::new();
        for (x, code, display) in [
            (
                orc.as_ref().and_then(|o| r.first(o, 12)),
                "OP",
                "Ordering Provider",
            ),
            (r.first(&rxa, 10), "AP", "Administering Provider"),
        ] {
            if let Some(p) = x.and_then(|x| practitioner(r, &x, b)) {
                performers.push(json!({"function": {"coding": [{"code": code, "display": display, "system": "http://terminology.hl7.org/CodeSystem/v2-0443"}]}, "actor": {"reference": p}}));
            }
        }
        insert(&mut im, "performer", non_empty(performers));
        insert(&mut im, "lotNumber", r.f(&rxa, 15).map(|v| json!(v)));
        insert(&mut im, "expirationDate", r.date(r.f(&rxa, 16)));
        if let Some(rxr) = r
            .msg
            .segments()
            .find(|s| s.id() == b"RXR" && s.index() > rxa.index())
        {
            insert(&mut im, "route", r.codeable_field(&rxr, 1));
            insert(&mut im, "site", r.codeable_field(&rxr, 2));
        }
        let id = resource_id(
            "Immunization",
            &[
                patient.unwrap_or(""),
                &im["vaccineCode"].to_string(),
                &r.f(&rxa, 3).unwrap_or_default(),
            ],
        );
        b.add(im, id);
    }
}

/// FHIR-Converter's code system for the Observations it derives from non-OBX segments; kept
/// so the two stay comparable (docs/fhir-mapping.md: no standard code covers "death
/// certificate signed" or "police notified" as observation codes).
const DERIVED_OBSERVATION: &str =
    "http://example.com/v2-to-fhir-converter/CodeSystem/observation-code";

/// A v2 ID of table 0136 (Y/N) → CodeableConcept, or None for anything else.
fn yes_no(v: Option<String>) -> Option<Value> {
    let (code, display) = match v.as_deref() {
        Some("Y") => ("Y", "Yes"),
        Some("N") => ("N", "No"),
        _ => return None,
    };
    Some(
        json!({"coding": [{"code": code, "display": display, "system": "http://terminology.hl7.org/CodeSystem/v2-0136"}]}),
    )
}

/// RF1 (referral) → ServiceRequest, as FHIR-Converter maps it: status RF1-1 (table 0283),
/// priority RF1-2 (table 0280), category RF1-3, identifiers RF1-6/-11, authoredOn RF1-9,
/// reason RF1-10 with RF1-14 as text, performers RF1-19 (XON) / RF1-20 (XCN), note RF1-24.
fn referrals(r: &Reader<'_, '_>, patient: &str, encounter: Option<&str>, b: &mut Builder) {
    for rf1 in r.msg.segments().filter(|s| s.id() == b"RF1") {
        let mut sr = json!({"resourceType": "ServiceRequest", "intent": "order"});
        sr["status"] = json!(match r.f(&rf1, 1).as_deref() {
            Some("A") => "active",
            Some("P") => "on-hold",
            Some("R") => "revoked",
            _ => "unknown",
        });
        let priority = match r.f(&rf1, 2).as_deref() {
            Some("S") => Some("stat"),
            Some("A") => Some("asap"),
            Some("R") => Some("routine"),
            _ => None,
        };
        insert(&mut sr, "priority", priority.map(|p| json!(p)));
        let mut category = vec![
            json!({"coding": [{"code": "patient-referral-request", "display": "Patient Referral Request", "system": "http://example.com/v2-to-fhir-converter/CodeSystem/additional-service-request-category-codes"}]}),
        ];
        category.extend(r.codeable_field(&rf1, 3));
        sr["category"] = json!(category);
        let ids: Vec<Value> = [6, 11]
            .iter()
            .filter_map(|&f| r.first(&rf1, f))
            .filter_map(|x| r.entity_identifier(&x, None))
            .collect();
        let key = json!(ids).to_string();
        insert(&mut sr, "identifier", non_empty(ids));
        insert(&mut sr, "authoredOn", r.datetime(r.f(&rf1, 9)));
        let mut reason = r.codeable_field(&rf1, 10);
        if let Some(text) = r.f(&rf1, 14) {
            let concept = reason.get_or_insert_with(|| json!({}));
            concept["text"] = json!(text);
        }
        insert(&mut sr, "reasonCode", reason.map(|c| json!([c])));
        let mut performers: Vec<Value> = r
            .reps(&rf1, 19)
            .iter()
            .filter_map(|x| xon_organization(r, x, b))
            .map(|o| json!({"reference": o}))
            .collect();
        for x in r.reps(&rf1, 20) {
            if let Some(p) = practitioner(r, &x, b) {
                performers.push(json!({"reference": p}));
            }
        }
        insert(&mut sr, "performer", non_empty(performers));
        if let Some(note) = r.f(&rf1, 24) {
            sr["note"] = json!([{"text": note}]);
        }
        link(&mut sr, Some(patient), encounter);
        let id = resource_id(
            "ServiceRequest",
            &[patient, "RF1", &key, &rf1.index().to_string()],
        );
        b.add(sr, id);
    }
}

/// ACC (accident) and PDA (patient death and autopsy) → Observations, as FHIR-Converter
/// derives them: the accident as an `injury-incident` Observation (date ACC-1, place ACC-3 /
/// address ACC-11 as a Location in the VRDR `Observation-Location` extension, description
/// ACC-8, entered by ACC-7, id ACC-13, and the job-related (ACC-5), death (ACC-6) and
/// police-notified (ACC-10) indicators as components); PDA-3/-6/-9 (death certified,
/// autopsy, coroner indicators) as one yes/no Observation each.
fn accident_and_death(r: &Reader<'_, '_>, patient: &str, encounter: Option<&str>, b: &mut Builder) {
    let code = |code: &str, display: &str, system: &str| json!({"coding": [{"code": code, "display": display, "system": system}]});
    for acc in r.msg.segments().filter(|s| s.id() == b"ACC") {
        let mut o = json!({"resourceType": "Observation", "status": "final"});
        o["code"] = code(
            "injury-incident",
            "Injury Incident Description Narrative",
            DERIVED_OBSERVATION,
        );
        insert(&mut o, "effectiveDateTime", r.datetime(r.f(&acc, 1)));
        insert(&mut o, "valueString", r.f(&acc, 8).map(|d| json!(d)));
        let indicators = "http://example.com/v2-to-fhir-converter/CodeSystem/accident-indicator";
        let components: Vec<Value> = [
            (5, "AJRI", "Accident Job Related Indicator"),
            (6, "ADI", "Accident Death Indicator"),
            (10, "PNI", "Police Notified Indicator"),
        ]
        .iter()
        .filter_map(|&(f, c, d)| {
            yes_no(r.f(&acc, f))
                .map(|v| json!({"code": code(c, d, indicators), "valueCodeableConcept": v}))
        })
        .collect();
        insert(&mut o, "component", non_empty(components));
        let place = r.f(&acc, 3);
        let address = r.first(&acc, 11).and_then(|x| r.address(&x));
        if place.is_some() || address.is_some() {
            let mut loc = json!({"resourceType": "Location"});
            insert(&mut loc, "name", place.map(|p| json!(p)));
            insert(&mut loc, "address", address);
            let id = resource_id("Location", &[&loc.to_string()]);
            let reference = b.add(loc, id);
            o["extension"] = json!([{"url": "http://hl7.org/fhir/us/vrdr/StructureDefinition/Observation-Location", "valueReference": {"reference": reference}}]);
        }
        if let Some(p) = r.first(&acc, 7).and_then(|x| practitioner(r, &x, b)) {
            o["performer"] = json!([{"reference": p}]);
        }
        insert(
            &mut o,
            "identifier",
            r.f(&acc, 13).map(|v| json!([{"value": v}])),
        );
        link(&mut o, Some(patient), encounter);
        let id = resource_id("Observation", &[patient, "ACC", &o.to_string()]);
        b.add(o, id);
    }
    for pda in r.msg.segments().filter(|s| s.id() == b"PDA") {
        for (f, c, d) in [
            (3, "death-certificate", "Death Certificate"),
            (6, "autopsy", "Autopsy"),
            (9, "coroner", "Coroner"),
        ] {
            let Some(v) = yes_no(r.f(&pda, f)) else {
                continue;
            };
            let mut o = json!({"resourceType": "Observation", "status": "final", "code": code(c, d, DERIVED_OBSERVATION), "valueCodeableConcept": v});
            link(&mut o, Some(patient), encounter);
            let id = resource_id(
                "Observation",
                &[patient, "PDA", c, &pda.index().to_string()],
            );
            b.add(o, id);
        }
    }
}

/// ORC-5 (table 0038) → request status.
fn request_status(code: Option<&str>) -> &'static str {
    match code {
        Some("CA" | "DC" | "RP") => "revoked",
        Some("CM") => "completed",
        Some("HD") => "on-hold",
        Some("IP" | "SC" | "A") => "active",
        Some("ER") => "entered-in-error",
        _ => "unknown",
    }
}

/// Order groups: an ORC with the OBR that follows it, or an OBR on its own (ORC is optional
/// in ORU_R01).
fn order_groups<'a>(r: &Reader<'_, 'a>) -> Vec<(usize, Option<Segment<'a>>, Option<Segment<'a>>)> {
    let mut groups: Vec<(usize, Option<Segment<'a>>, Option<Segment<'a>>)> = Vec::new();
    for s in r.msg.segments() {
        match s.id() {
            b"ORC" => groups.push((s.index(), Some(s), None)),
            b"OBR" => match groups.last_mut() {
                Some((_, Some(_), obr @ None)) => *obr = Some(s),
                _ => groups.push((s.index(), None, Some(s))),
            },
            _ => {}
        }
    }
    groups
}

fn orders(r: &Reader<'_, '_>, patient: Option<&str>, encounter: Option<&str>, b: &mut Builder) {
    // ServiceRequest.subject is 1..1 in R4: a message without a PID (ORU's patient group is
    // optional) gets its results but no order.
    if patient.is_none() {
        return;
    }
    for (i, orc, obr) in order_groups(r) {
        let (orc, obr) = (orc.as_ref(), obr.as_ref());
        let mut sr = json!({"resourceType": "ServiceRequest"});
        let status = orc.and_then(|o| r.f(o, 5));
        sr["status"] = json!(match status {
            Some(s) => request_status(Some(&s)),
            // A result's order has been carried out.
            None if obr.and_then(|o| r.f(o, 25)).is_some() => "completed",
            None => "unknown",
        });
        // ORC-1 (table 0119): an order control of NW/RO/… is an order.
        sr["intent"] = json!("order");
        let ids = order_identifiers(r, orc, obr);
        let key = json!(ids).to_string();
        insert(&mut sr, "identifier", non_empty(ids));
        if let Some(obr) = obr {
            insert(&mut sr, "code", r.codeable_field(obr, 4));
            insert(&mut sr, "occurrenceDateTime", r.datetime(r.f(obr, 7)));
            if let Some(p) = r.codeable_field(obr, 5)
                && let Some(code) = p.pointer("/coding/0/code").and_then(Value::as_str)
            {
                let pr = match code {
                    "S" => Some("stat"),
                    "A" => Some("asap"),
                    "R" => Some("routine"),
                    _ => None,
                };
                insert(&mut sr, "priority", pr.map(|x| json!(x)));
            }
        }
        insert(
            &mut sr,
            "authoredOn",
            orc.and_then(|o| r.datetime(r.f(o, 9))),
        );
        // ORC-12 ordering provider, else OBR-16.
        let orderer = orc
            .and_then(|o| r.first(o, 12))
            .or_else(|| obr.and_then(|o| r.first(o, 16)));
        if let Some(role) = orderer.and_then(|x| practitioner_role(r, &x, b)) {
            sr["requester"] = json!({"reference": role});
        }
        link(&mut sr, patient, encounter);
        // OBR-29 parent, else ORC-8 parent order (EIP: placer ^ filler order numbers) → the
        // parent ServiceRequest this one is `basedOn` (v2-to-FHIR OBR/ORC maps), of the same
        // status and intent.
        if let Some(eip) = obr
            .and_then(|o| r.first(o, 29))
            .or_else(|| orc.and_then(|o| r.first(o, 8)))
        {
            let ids: Vec<Value> = [(1, "PLAC"), (2, "FILL")]
                .iter()
                .filter_map(|&(c, kind)| {
                    let v = r.sc(&eip, c, 1)?;
                    let mut id = json!({"value": v, "type": {"coding": [{"code": kind, "system": "http://terminology.hl7.org/CodeSystem/v2-0203"}]}});
                    if let Some(system) = assigner_system(r.sc(&eip, c, 2), r.sc(&eip, c, 3), r.sc(&eip, c, 4)) {
                        id["system"] = json!(system);
                    }
                    Some(id)
                })
                .collect();
            if !ids.is_empty() {
                let mut parent = json!({"resourceType": "ServiceRequest", "status": sr["status"].clone(), "intent": sr["intent"].clone(), "identifier": ids});
                link(&mut parent, patient, None);
                let id = resource_id(
                    "ServiceRequest",
                    &[
                        patient.unwrap_or(""),
                        "parent",
                        &parent["identifier"].to_string(),
                    ],
                );
                sr["basedOn"] = json!([{"reference": b.add(parent, id)}]);
            }
        }
        let id = resource_id(
            "ServiceRequest",
            &[patient.unwrap_or(""), &key, &i.to_string()],
        );
        let reference = b.add(sr, id);
        b.orders.push((i, reference));
    }
}

fn medication_orders(
    r: &Reader<'_, '_>,
    patient: Option<&str>,
    encounter: Option<&str>,
    b: &mut Builder,
) {
    // MedicationRequest.subject is 1..1 in R4 (as for orders).
    if patient.is_none() {
        return;
    }
    let segs: Vec<Segment<'_>> = r.msg.segments().collect();
    for (i, orc) in segs.iter().enumerate().filter(|(_, s)| s.id() == b"ORC") {
        let group: Vec<&Segment<'_>> = segs[i + 1..]
            .iter()
            .take_while(|s| s.id() != b"ORC")
            .collect();
        // The RXR (route) that follows a segment within its group, before the next RX?.
        let route_after = |kind: &[u8]| {
            group
                .iter()
                .skip_while(|s| s.id() != kind)
                .skip(1)
                .take_while(|s| s.id() == b"RXR" || s.id() == b"RXC" || s.id() == b"NTE")
                .find(|s| s.id() == b"RXR")
                .copied()
        };
        let rxe = group.iter().find(|s| s.id() == b"RXE").copied();
        let rxo = group.iter().find(|s| s.id() == b"RXO").copied();
        let status = match request_status(r.f(orc, 5).as_deref()) {
            "revoked" => "cancelled",
            // No ORC-5: a new order (ORC-1 NW, table 0119) is active, as FHIR-Converter reads it.
            "unknown" if r.f(orc, 1).as_deref() == Some("NW") => "active",
            "unknown" => "unknown",
            s => s,
        };
        let ids = order_identifiers(r, Some(orc), None);
        let key = json!(ids).to_string();
        let base = |intent: &str| {
            let mut mr =
                json!({"resourceType": "MedicationRequest", "status": status, "intent": intent});
            insert(&mut mr, "identifier", non_empty(ids.clone()));
            insert(&mut mr, "authoredOn", r.datetime(r.f(orc, 9)));
            link(&mut mr, patient, encounter);
            mr
        };
        // RXO is the order as placed (original-order); RXE the pharmacy's (filler's)
        // encoding of it (filler-order), based on the RXO request where both are sent.
        let mut original = None;
        if let Some(rxo) = rxo {
            let mut mr = base("original-order");
            mr["medicationCodeableConcept"] = r
                .codeable_field(rxo, 1)
                .unwrap_or(json!({"text": "unknown"}));
            // RXO-2 requested give amount with RXO-4 units; RXO-7 administration
            // instructions for the patient; RXO-11/12 dispense amount, RXO-13 refills.
            let mut dose = dosage(r, rxo, (2, 4), route_after(b"RXO"));
            if let Some(text) = r
                .first(rxo, 7)
                .and_then(|x| r.c(&x, 2).or_else(|| r.c(&x, 1)))
            {
                dose.insert("patientInstruction".into(), json!(text));
            }
            if !dose.is_empty() {
                mr["dosageInstruction"] = json!([dose]);
            }
            insert(&mut mr, "dispenseRequest", dispense(r, rxo, (11, 12, 13)));
            let id = resource_id(
                "MedicationRequest",
                &[patient.unwrap_or(""), &key, &i.to_string(), "RXO"],
            );
            original = Some(b.add(mr, id));
        }
        if let Some(rxe) = rxe {
            let mut mr = base("filler-order");
            mr["medicationCodeableConcept"] = r
                .codeable_field(rxe, 2)
                .unwrap_or(json!({"text": "unknown"}));
            if let Some(o) = &original {
                mr["basedOn"] = json!([{"reference": o}]);
            }
            // RXE-3 give amount (minimum) with RXE-5 give units; RXE-7 provider's
            // administration instructions; RXE-10/11 dispense amount, RXE-12 refills.
            let mut dose = dosage(r, rxe, (3, 5), route_after(b"RXE"));
            let extra: Vec<Value> = r
                .reps(rxe, 7)
                .iter()
                .filter_map(|x| r.codeable(x))
                .collect();
            if !extra.is_empty() {
                dose.insert("additionalInstruction".into(), json!(extra));
            }
            if !dose.is_empty() {
                mr["dosageInstruction"] = json!([dose]);
            }
            insert(&mut mr, "dispenseRequest", dispense(r, rxe, (10, 11, 12)));
            let id = resource_id(
                "MedicationRequest",
                &[patient.unwrap_or(""), &key, &i.to_string()],
            );
            b.add(mr, id);
        }
    }
}

/// A Dosage from an RXO/RXE amount and unit field pair, with the route (RXR-1) and site
/// (RXR-2) of the RXR that follows it.
fn dosage(
    r: &Reader<'_, '_>,
    seg: &Segment<'_>,
    (amount, units): (usize, usize),
    rxr: Option<&Segment<'_>>,
) -> Map<String, Value> {
    let mut d = Map::new();
    let unit = r.unit_text(seg, units);
    if let Some(dose) = simple_quantity(r.f(seg, amount), unit) {
        d.insert("doseAndRate".into(), json!([{"doseQuantity": dose}]));
    }
    if let Some(rxr) = rxr {
        if let Some(route) = r.codeable_field(rxr, 1) {
            d.insert("route".into(), route);
        }
        if let Some(site) = r.codeable_field(rxr, 2) {
            d.insert("site".into(), site);
        }
    }
    d
}

/// A dispense request from an RXO/RXE (amount, units, number of refills) field triple.
fn dispense(
    r: &Reader<'_, '_>,
    seg: &Segment<'_>,
    (amount, units, refills): (usize, usize, usize),
) -> Option<Value> {
    let mut d = Map::new();
    let unit = r.unit_text(seg, units);
    if let Some(q) = simple_quantity(r.f(seg, amount), unit) {
        d.insert("quantity".into(), q);
    }
    if let Some(n) = r.f(seg, refills).and_then(|n| n.trim().parse::<u32>().ok()) {
        d.insert("numberOfRepeatsAllowed".into(), json!(n));
    }
    (!d.is_empty()).then_some(Value::Object(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(raw: &str) -> Value {
        let m = aorta_hl7::parse(raw.as_bytes()).unwrap();
        convert(&m, &Options::default()).unwrap()
    }

    /// The Bundle passes strict R4 validation, every resource in it too.
    fn assert_valid(b: &Value) {
        let bytes = serde_json::to_vec(b).unwrap();
        if let Err(o) = crate::parse_resource(&bytes, crate::Mode::Strict) {
            panic!("{o}");
        }
    }

    fn of_type<'v>(b: &'v Value, rt: &str) -> Vec<&'v Value> {
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .filter(|r| r["resourceType"] == rt)
            .collect()
    }

    const ORU: &str = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101083000-0500||ORU^R01^ORU_R01|MSG1|P|2.5.1\r\
        PID|1||12345^^^HOSP&1.2.3&ISO^MR||Doe^Jane^Q||19700228|F|||1 Main St^^Springfield^IL^62701^USA^H||^PRN^PH^^1^217^5551234\r\
        PV1|1|O|||||||||||||||||V1^^^HOSP^VN|||||||||||||||||||||||||202601010800\r\
        OBR|1|P1^EHR|F1^LAB|24323-8^Comprehensive metabolic panel^LN|||202601010745|||||||||||||||202601010829||CH|F\r\
        OBX|1|NM|2345-7^Glucose^LN||105.50|mg/dL^milligrams per deciliter^UCUM|70-99|H|||F|||202601010745\r\
        NTE|1||Fasting\r\
        OBX|2|ST|8251-1^Comment^LN||hemolysed \\T\\ repeated||||||F\r\
        OBX|3|CWE|600-7^Culture^LN||27268008^Salmonella^SCT||||||P\r\
        OBX|4|SN|2160-0^Creatinine^LN||<^0.5|mg/dL^^UCUM|||||F\r";

    #[test]
    fn an_oru_becomes_patient_encounter_report_and_observations() {
        let b = bundle(ORU);
        assert_eq!(b["type"], "batch");
        assert_eq!(b["timestamp"], "2026-01-01T08:30:00-05:00");
        let p = of_type(&b, "Patient")[0];
        assert_eq!(p["identifier"][0]["system"], "urn:oid:1.2.3");
        assert_eq!(p["identifier"][0]["type"]["coding"][0]["code"], "MR");
        assert_eq!(p["name"][0]["family"], "Doe");
        assert_eq!(p["name"][0]["given"], json!(["Jane", "Q"]));
        assert_eq!(p["gender"], "female");
        assert_eq!(p["birthDate"], "1970-02-28");
        assert_eq!(p["address"][0]["city"], "Springfield");
        assert_eq!(p["address"][0]["use"], "home");
        assert_eq!(p["telecom"][0]["value"], "2175551234");
        let e = of_type(&b, "Encounter")[0];
        assert_eq!(e["class"]["code"], "AMB");
        assert_eq!(
            e["period"]["start"], "2026-01-01T08:00:00-05:00",
            "MSH-7's offset"
        );
        let dr = of_type(&b, "DiagnosticReport")[0];
        assert_eq!(dr["status"], "final");
        assert_eq!(dr["code"]["coding"][0]["system"], "http://loinc.org");
        assert_eq!(dr["result"].as_array().unwrap().len(), 4);
        assert_eq!(dr["issued"], "2026-01-01T08:29:00-05:00");
        let obs = of_type(&b, "Observation");
        assert_eq!(
            obs[0]["valueQuantity"]["value"].to_string(),
            "105.50",
            "decimal kept exactly"
        );
        assert_eq!(obs[0]["valueQuantity"]["code"], "mg/dL");
        assert_eq!(obs[0]["referenceRange"][0]["low"]["value"], json!(70));
        assert_eq!(obs[0]["interpretation"][0]["coding"][0]["code"], "H");
        assert_eq!(obs[0]["note"][0]["text"], "Fasting");
        assert_eq!(obs[1]["valueString"], "hemolysed & repeated");
        assert_eq!(
            obs[2]["valueCodeableConcept"]["coding"][0]["system"],
            "http://snomed.info/sct"
        );
        assert_eq!(obs[2]["status"], "preliminary");
        assert_eq!(obs[3]["valueQuantity"]["comparator"], "<");
        // Results and the report are based on the order of their OBR group.
        let sr = of_type(&b, "ServiceRequest")[0];
        let order = format!("ServiceRequest/{}", sr["id"].as_str().unwrap());
        assert_eq!(obs[3]["basedOn"][0]["reference"], json!(order));
        assert_eq!(dr["basedOn"][0]["reference"], json!(order));
        // Every resource is valid R4 (strict), and so is the Bundle.
        assert_valid(&b);
    }

    #[test]
    fn a_repeating_numeric_value_becomes_components() {
        let raw = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101083000-0500||ORU^R01|M2|P|2.5.1\r\
            PID|1||12345^^^HOSP^MR||Doe^Jane\r\
            OBR|1|P1|F1|85354-9^BP panel^LN\r\
            OBX|1|NM|8867-4^Heart rate^LN||60~120|/min^^UCUM|50-100||||F\r";
        let b = bundle(raw);
        let o = of_type(&b, "Observation")[0];
        assert!(o.get("valueQuantity").is_none(), "{o}");
        let c = o["component"].as_array().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1]["code"]["coding"][0]["code"], "8867-4");
        assert_eq!(c[1]["valueQuantity"]["value"], json!(120));
        assert_eq!(c[1]["valueQuantity"]["code"], "/min");
        assert_eq!(c[0]["referenceRange"][0]["high"]["value"], json!(100));
        assert_valid(&b);
    }

    #[test]
    fn pv1_and_pv2_details_reach_the_encounter() {
        let raw = "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260101083000-0500||ADT^A01|M3|P|2.5.1\r\
            PID|1||12345^^^HOSP^MR||Doe^Jane\r\
            PV1|1|I|||||||||||R||||||V77^^^HOSP^AM|||||||||||||||||||||||||||||||A9^^^HOSP^MR\r\
            PV2|||||||||||3||||||||||||||2^^^3\r";
        let b = bundle(raw);
        let e = of_type(&b, "Encounter")[0];
        assert_eq!(e["identifier"][0]["value"], "V77");
        assert_eq!(
            e["identifier"][0]["type"]["coding"][0]["code"], "VN",
            "PV1-19 is the visit number"
        );
        assert_eq!(e["identifier"][1]["value"], "A9", "PV1-50");
        assert_eq!(
            e["hospitalization"]["reAdmission"]["coding"][0]["display"],
            "Re-admission"
        );
        assert_eq!(
            e["length"],
            json!({"value": 3, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"})
        );
        let p = &e["priority"]["coding"];
        assert_eq!(
            (p[0]["code"].as_str(), p[1]["code"].as_str()),
            (Some("UR"), Some("EL"))
        );
        assert_valid(&b);
    }

    #[test]
    fn patient_takes_birth_time_extensions_and_full_addresses() {
        let raw = "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260101083000-0500||ADT^A04|M4|P|2.8\r\
            PID|1||12345^^^HOSP^MR||Doe^Jane||198808181126+0215|||2106-3^White^CDCREC~2028-9^Asian^CDCREC|1000&Main St^Apt 2^Town^MI^99999^USA^H^^&W^^^20000110&20000120|||||||||||H^Hispanic^HL70189||||US^United States^ISO3166_1|V1^retired^ART||||||||||||CA^Canada^ISO3166_1\r\
            PD1||||||||||||||Methodist Church\r\
            PV1|1|O\r\
            DB1|1|||Y|20210830|20210930\r";
        let b = bundle(raw);
        let p = of_type(&b, "Patient")[0];
        assert_eq!(p["birthDate"], "1988-08-18");
        assert_eq!(
            p["_birthDate"]["extension"][0]["valueDateTime"],
            "1988-08-18T11:26:00+02:15"
        );
        let a = &p["address"][0];
        assert_eq!(a["line"], json!(["1000", "Main St", "Apt 2"]));
        assert_eq!(a["district"], "W");
        assert_eq!(
            a["period"],
            json!({"start": "2000-01-10", "end": "2000-01-20"})
        );
        let ext = p["extension"].as_array().unwrap();
        let by_url = |tail: &str| -> Vec<&Value> {
            ext.iter()
                .filter(|e| e["url"].as_str().unwrap().ends_with(tail))
                .collect()
        };
        let race = by_url("us-core-race")[0];
        assert_eq!(race["extension"][2]["valueString"], "White+Asian");
        let eth = by_url("us-core-ethnicity")[0];
        assert_eq!(
            eth["extension"][0]["valueCoding"]["code"], "2135-2",
            "table 0189 H"
        );
        let citizenship = by_url("patient-citizenship");
        assert_eq!(citizenship.len(), 2, "PID-26 and PID-39");
        assert_eq!(
            citizenship[1]["extension"][0]["valueCodeableConcept"]["text"],
            "Canada"
        );
        assert_eq!(by_url("VeteranMilitaryStatus").len(), 1);
        assert_eq!(
            by_url("patient-congregation")[0]["valueString"],
            "Methodist Church"
        );
        assert_eq!(
            by_url("patient-disabilityIndicator")[0]["valueBoolean"],
            true
        );
        assert_eq!(
            by_url("DisabilityPeriod")[0]["valuePeriod"]["end"],
            "2021-09-30"
        );
        assert_valid(&b);
    }

    #[test]
    fn referrals_accidents_and_death_details_become_resources() {
        let raw = "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260101083000-0500||ADT^A01|M5|P|2.8\r\
            PID|1||12345^^^HOSP^MR||Doe^Jane\r\
            PV1|1|E\r\
            RF1|P^Pending^HL70283|A^ASAP^HL70280|EXTERNAL|||R-1^REF|||20260101|S-1^Spine^C4||||Spinal fracture\r\
            ACC|20251231||Route 50||Y|N||car accident||Y|||5348\r\
            PDA|||Y|||N|||N\r";
        let b = bundle(raw);
        let sr = of_type(&b, "ServiceRequest");
        assert_eq!(sr.len(), 1);
        assert_eq!(sr[0]["status"], "on-hold");
        assert_eq!(sr[0]["priority"], "asap");
        assert_eq!(sr[0]["identifier"][0]["value"], "R-1");
        assert_eq!(sr[0]["reasonCode"][0]["text"], "Spinal fracture");
        let obs = of_type(&b, "Observation");
        let by_code = |c: &str| {
            obs.iter()
                .find(|o| o["code"]["coding"][0]["code"] == c)
                .copied()
                .unwrap_or_else(|| panic!("no {c} Observation"))
        };
        let acc = by_code("injury-incident");
        assert_eq!(acc["valueString"], "car accident");
        assert_eq!(acc["effectiveDateTime"], "2025-12-31");
        assert_eq!(acc["component"].as_array().unwrap().len(), 3);
        assert_eq!(acc["identifier"][0]["value"], "5348");
        assert!(
            acc["extension"][0]["valueReference"]["reference"]
                .as_str()
                .unwrap()
                .starts_with("Location/")
        );
        assert_eq!(
            by_code("death-certificate")["valueCodeableConcept"]["coding"][0]["code"],
            "Y"
        );
        assert_eq!(
            by_code("coroner")["valueCodeableConcept"]["coding"][0]["code"],
            "N"
        );
        assert_valid(&b);
    }

    #[test]
    fn an_rde_gives_the_placed_order_and_the_pharmacy_order_based_on_it() {
        let raw = "MSH|^~\\&|RX|HOSP|EHR|HOSP|20260101083000-0500||RDE^O11|M6|P|2.5.1\r\
            PID|1||12345^^^HOSP^MR||Doe^Jane\r\
            ORC|NW|111^EPC|||||||20260101080000\r\
            RXO|00047040230^Ampicillin 250 mg caps^NDC|2||caps^capsule||^Take with food|^1 tablet twice daily||||10|caps^capsule|3\r\
            RXR|PO^Oral\r\
            RXE||2669^Ampicillin 250 mg^NDC|2||caps^capsule||Titrate~Store cold|||10|caps^capsule|3\r\
            RXR|PO^Oral|LA^Left arm\r";
        let b = bundle(raw);
        let mr = of_type(&b, "MedicationRequest");
        assert_eq!(mr.len(), 2);
        let (placed, filled) = (mr[0], mr[1]);
        assert_eq!(placed["intent"], "original-order");
        assert_eq!(placed["status"], "active");
        let d = &placed["dosageInstruction"][0];
        assert_eq!(d["patientInstruction"], "1 tablet twice daily");
        assert_eq!(d["route"]["coding"][0]["code"], "PO");
        assert_eq!(
            d["doseAndRate"][0]["doseQuantity"],
            json!({"value": 2, "unit": "capsule"})
        );
        assert_eq!(placed["dispenseRequest"]["numberOfRepeatsAllowed"], 3);
        assert_eq!(filled["intent"], "filler-order");
        assert_eq!(
            filled["basedOn"][0]["reference"],
            json!(format!(
                "MedicationRequest/{}",
                placed["id"].as_str().unwrap()
            ))
        );
        let d = &filled["dosageInstruction"][0];
        assert_eq!(d["site"]["coding"][0]["code"], "LA", "the RXR after RXE");
        assert_eq!(d["additionalInstruction"].as_array().unwrap().len(), 2);
        assert_valid(&b);
    }

    #[test]
    fn a_parent_order_becomes_the_service_request_an_order_is_based_on() {
        let raw = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101083000-0500||ORU^R01|M7|P|2.5.1\r\
            PID|1||12345^^^HOSP^MR||Doe^Jane\r\
            ORC|RE|P2|F2|||||P1^F1\r\
            OBR|1|P2|F2|600-7^Culture^LN|||||||||||||||||||||F\r";
        let b = bundle(raw);
        let sr = of_type(&b, "ServiceRequest");
        assert_eq!(sr.len(), 2);
        let parent = sr
            .iter()
            .find(|s| s["identifier"][0]["value"] == "P1")
            .unwrap();
        let child = sr
            .iter()
            .find(|s| s["identifier"][0]["value"] == "P2")
            .unwrap();
        assert_eq!(parent["identifier"][1]["value"], "F1");
        assert_eq!(parent["status"], child["status"]);
        assert_eq!(
            child["basedOn"][0]["reference"],
            json!(format!("ServiceRequest/{}", parent["id"].as_str().unwrap()))
        );
    }

    #[test]
    fn observers_and_orderers_are_practitioner_roles() {
        let raw = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101083000-0500||ORU^R01|M8|P|2.5.1\r\
            PID|1||12345^^^HOSP^MR||Doe^Jane\r\
            ORC|RE|P2|F2|||||||||77^Order^Olga\r\
            OBR|1|P2|F2|600-7^Culture^LN|||||||||||||||||||||F\r\
            OBX|1|ST|8251-1^Comment^LN||fine||||||F|||||88^Watch^Walt|||||||Good Lab\r";
        let b = bundle(raw);
        let roles = of_type(&b, "PractitionerRole");
        assert_eq!(roles.len(), 2);
        let sr = of_type(&b, "ServiceRequest")[0];
        let o = of_type(&b, "Observation")[0];
        let refs = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x["reference"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(
            sr["requester"]["reference"]
                .as_str()
                .unwrap()
                .starts_with("PractitionerRole/")
        );
        let p = refs(&o["performer"]);
        assert!(
            p[0].starts_with("PractitionerRole/") && p[1].starts_with("Organization/"),
            "{p:?}"
        );
        assert_valid(&b);
    }

    #[test]
    fn a_self_guarantor_and_the_insurance_add_the_patients_own_ids() {
        let base = "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260101083000-0500||ADT^A04|M9|P|2.5.1\r\
            PID|1||12345^^^HOSP^MR||Doe^Jane\r\
            PV1|1|O\r";
        let with = format!(
            "{base}GT1|1|G1^^^HOSP^MR|Doe^Jane||9 Elm St^^Town^MI|^PRN^PH^^^555^1234567|||||SEL|123-45-6789\r\
             IN1|1||||||||||||||||SEL\r\
             IN2||||||MC-1|||||||||||||||||||||||||||||||||||||||||||||||||||||||M-9^^^HOSP^MB\r"
        );
        let b = bundle(&with);
        let p = of_type(&b, "Patient")[0];
        let values: Vec<&str> = p["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["value"].as_str().unwrap())
            .collect();
        assert_eq!(values, ["12345", "G1", "123-45-6789", "M-9", "MC-1"]);
        assert_eq!(p["address"][0]["city"], "Town", "the guarantor's address");
        assert_eq!(p["telecom"][0]["value"], "5551234567");
        // The extra identifiers do not change which Patient this is.
        let plain = bundle(base);
        assert_eq!(p["id"], of_type(&plain, "Patient")[0]["id"]);
        // A guarantor who is someone else adds nothing.
        let other = bundle(&with.replace("|SEL|123", "|SPO|123"));
        assert_eq!(
            of_type(&other, "Patient")[0]["identifier"]
                .as_array()
                .unwrap()
                .len(),
            3,
            "PID-3 and the IN2 ids"
        );
    }

    #[test]
    fn diagnoses_become_conditions_the_encounter_names() {
        let raw = "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260101083000-0500||ADT^A01|M10|P|2.5.1\r\
            PID|1||12345^^^HOSP^MR||Doe^Jane|||||||||||||||||||||||||||||||||||x@example.org^NET^Internet\r\
            PV1|1|I\r\
            DG1|1||I21^Acute myocardial infarction^I10|Heart attack|20260101070000|A|||||||||1\r";
        let b = bundle(raw);
        let c = of_type(&b, "Condition")[0];
        assert_eq!(c["code"]["text"], "Heart attack");
        assert_eq!(c["onsetDateTime"], "2026-01-01T07:00:00-05:00");
        let d = &of_type(&b, "Encounter")[0]["diagnosis"][0];
        assert_eq!(d["use"]["coding"][0]["code"], "AD");
        assert_eq!(d["rank"], 1);
        assert_eq!(
            d["condition"]["reference"],
            json!(format!("Condition/{}", c["id"].as_str().unwrap()))
        );
        let t = &of_type(&b, "Patient")[0]["telecom"][0];
        assert_eq!(
            (t["value"].as_str(), t["system"].as_str()),
            (Some("x@example.org"), Some("email"))
        );
        assert_valid(&b);
    }

    #[test]
    fn ids_are_deterministic_and_references_resolve() {
        let a = bundle(ORU);
        assert_eq!(a, bundle(ORU));
        let urls: Vec<&str> = a["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["request"]["url"].as_str().unwrap())
            .collect();
        let obs = of_type(&a, "Observation")[0];
        assert!(urls.contains(&obs["subject"]["reference"].as_str().unwrap()));
        let other = ORU.replace("12345^^^", "99999^^^");
        let b = bundle(&other);
        assert_ne!(
            of_type(&a, "Patient")[0]["id"],
            of_type(&b, "Patient")[0]["id"]
        );
    }

    #[test]
    fn a_vxu_becomes_an_immunization() {
        let b = bundle(
            "MSH|^~\\&|IIS|X|Y|Z|20260101||VXU^V04^VXU_V04|1|P|2.5.1\r\
             PID|1||7^^^IIS^MR||Roe^Rick||20250101|M\r\
             ORC|RE||197023^CDC\r\
             RXA|0|1|20260105||08^HEPB-PEDIATRIC/ADOLESCENT^CVX|.5|mL^mL^UCUM||00^New Record^NIP001|77^Nurse^Nia|||||LOT1|20270101|MSD^Merck^MVX|||CP|A\r\
             RXR|C28161^Intramuscular^NCIT|LA^Left Arm^HL70163\r",
        );
        let im = of_type(&b, "Immunization")[0];
        assert_eq!(im["status"], "completed");
        assert_eq!(
            im["vaccineCode"]["coding"][0]["system"],
            "http://hl7.org/fhir/sid/cvx"
        );
        assert_eq!(im["occurrenceDateTime"], "2026-01-05");
        assert_eq!(im["doseQuantity"]["value"].to_string(), "0.5");
        assert_eq!(im["lotNumber"], "LOT1");
        assert_eq!(
            im["identifier"][0]["value"], "197023",
            "ORC-3 filler order number"
        );
        assert_eq!(im["primarySource"], true);
        assert_eq!(im["performer"][0]["function"]["coding"][0]["code"], "AP");
        let sr = of_type(&b, "ServiceRequest");
        assert_eq!(sr.len(), 1, "the VXU's ORC is the order");
        assert_eq!(
            im["site"]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/v2-0163"
        );
        assert_valid(&b);
    }

    #[test]
    fn v2_numbers_become_json_decimals_as_written() {
        for (v2, fhir) in [
            (".5", "0.5"),
            ("+7.20", "7.20"),
            ("-0.5", "-0.5"),
            ("007", "7"),
            ("0", "0"),
        ] {
            assert!(is_decimal(v2), "{v2}");
            assert_eq!(decimal(v2).to_string(), fhir);
        }
        for bad in ["", ".", "5.", "1e3", "1,5", "--1"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn unsupported_types_say_so() {
        let m = aorta_hl7::parse(b"MSH|^~\\&|A|B|C|D|20260101||QRY^A19|1|P|2.3\rQRD|1\r").unwrap();
        assert_eq!(
            convert(&m, &Options::default()),
            Err(ConvertError::Unsupported("QRY^A19".into()))
        );
    }
}
