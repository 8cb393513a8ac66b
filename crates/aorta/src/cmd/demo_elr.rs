//! The demo's simulated laboratories: COVID-19 PCR results as HL7 v2.5.1 ELR (ORU^R01,
//! PHLabReport-NoAck) for patients across a few states, over ten days of specimen collection,
//! with the defects a real feed has: a report without a specimen type, one without a test
//! LOINC, one resent with a new MSH-7 (a duplicate), and patients whose state is not onboarded
//! or missing (unrouted). The demo checks the ELR flow's output against what it sent.

use rand::Rng;
use rand::rngs::StdRng;
use std::collections::BTreeMap;

/// One simulated report and what the ELR flow must do with it.
pub(crate) struct LabReport {
    pub(crate) message: String,
    /// `None`: a valid report; `Some(rule)`: must be dead-lettered naming this rule.
    pub(crate) defect: Option<&'static str>,
    /// A resend of an earlier report (dropped by the ELR step).
    pub(crate) resend: bool,
    pub(crate) state: Option<&'static str>,
    /// Collection day (days since 1970-01-01) and whether the result is positive.
    pub(crate) day: i64,
    pub(crate) positive: bool,
}

const LABS: [(&str, &str, &str); 3] = [
    ("Cascade Public Health Lab", "50D0612345", "98109"),
    ("Willamette Reference Lab", "38D0987654", "97201"),
    ("Gulf Coast Diagnostics", "45D0555111", "77002"),
];
const STATES: [(Option<&str>, &str); 6] = [
    (Some("WA"), "98101"),
    (Some("OR"), "97205"),
    (Some("TX"), "77002"),
    (Some("WA"), "98004"),
    // Not onboarded in configs/elr.toml, and no state at all: both unrouted.
    (Some("ID"), "83702"),
    (None, "99999"),
];

fn ts(ms: i64) -> String {
    let iso = aorta_fhir::datetime::format_utc_ms(ms);
    iso.chars().take(19).filter(char::is_ascii_digit).collect()
}

/// `n` reports whose collection times run over ten days up to a day before `now_ms`, in
/// time order.
pub(crate) fn reports(n: usize, now_ms: i64, run: u64, rng: &mut StdRng) -> Vec<LabReport> {
    // Collected over ten days ending a day ago, so every result time (20 h after
    // collection) is in the past.
    let span = 10 * 86_400_000;
    let start = now_ms - span - 86_400_000;
    let mut out = Vec::with_capacity(n + 1);
    for i in 0..n {
        let collected = start + (span / n as i64) * i as i64;
        let (state, zip) = STATES[i % STATES.len()];
        let (lab, clia, lab_zip) = LABS[i % LABS.len()];
        let positive = rng.random_bool(0.18);
        let defect = match i {
            7 => Some("specimen-type"),
            19 => Some("result-loinc"),
            _ => None,
        };
        let ctrl = format!("ELR{run}-{i:05}");
        let result = if positive {
            "260373001^Detected^SCT"
        } else {
            "260415000^Not detected^SCT"
        };
        let test = if defect == Some("result-loinc") {
            "COVPCR^COVID-19 PCR^L"
        } else {
            "94500-6^SARS-CoV-2 RNA Resp Ql NAA+probe^LN"
        };
        let specimen = if defect == Some("specimen-type") {
            ""
        } else {
            "258500001^Nasopharyngeal swab^SCT"
        };
        let c = ts(collected);
        let resulted = ts(collected + 20 * 3_600_000);
        let address = match state {
            Some(s) => format!("{} Elm St^^Springfield^{s}^{zip}^USA^H", 10 + i),
            None => format!("{} Elm St^^Springfield^^{zip}^USA^H", 10 + i),
        };
        let message = format!(
            "MSH|^~\\&|LIS^2.16.840.1.113883.3.999.1^ISO|{lab}^{clia}^CLIA|ELR^2.16.840.1.114222.4.3.2.10^ISO|PH^2.16.840.1.114222.4.1.3660^ISO|{resulted}||ORU^R01^ORU_R01|{ctrl}|P|2.5.1|||NE|NE|USA||||PHLabReport-NoAck^ELR_Receiver^2.16.840.1.113883.9.11^ISO\r\
             PID|1||LABPT{i:05}^^^{lab}&{clia}&CLIA^MR||Labpatient^Pat{i}||19{:02}0{}1{}|{}||2106-3^White^HL70005|{address}^^53033||||||||||||N^Not Hispanic or Latino^HL70189\r\
             ORC|RE|ORD{i}|ACC{i}^{lab}^{clia}^CLIA||||||||1234567893^Clinic^Casey^^^^^^NPI&2.16.840.1.113883.4.6&ISO^L^^^NPI|||{c}|||||||||200 Clinic Way^^Springfield^^{zip}^USA^B\r\
             OBR|1|ORD{i}|ACC{i}^{lab}^{clia}^CLIA|{test}|||{c}|||||||||1234567893^Clinic^Casey^^^^^^NPI&2.16.840.1.113883.4.6&ISO^L^^^NPI||||||{resulted}|||F\r\
             OBX|1|CWE|{test}||{result}||||||F|||{c}|||Cobas SARS-CoV-2_Roche_EUA^^99ELR||{resulted}||||{lab}^L^^^^CLIA&2.16.840.1.113883.4.7&ISO^XX^^^{clia}|1 Lab Rd^^Springfield^^{lab_zip}^USA^B\r\
             SPM|1|^SPC{i}&{lab}&{clia}&CLIA||{specimen}|||||||||||||{c}|{c}\r",
            40 + i % 50,
            1 + i % 9,
            i % 9,
            if i % 2 == 0 { "F" } else { "M" },
        );
        out.push(LabReport {
            message,
            defect,
            resend: false,
            state,
            day: collected.div_euclid(86_400_000),
            positive,
        });
    }
    // A lab's interface engine resends report 3 with a new MSH-7.
    if n > 3 {
        let r = &out[3];
        let msh7 = r.message.split('|').nth(6).unwrap_or_default().to_string();
        out.push(LabReport {
            message: r.message.replacen(&msh7, &ts(now_ms), 1),
            defect: None,
            resend: true,
            state: r.state,
            day: r.day,
            positive: r.positive,
        });
    }
    out
}

/// What the aggregates must say: (state or "unrouted", day) → (tests, positives), for valid
/// first sends.
pub(crate) fn expected(reports: &[LabReport]) -> BTreeMap<(String, i64), (u64, u64)> {
    let mut m: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.defect.is_none() && !r.resend) {
        let e = m
            .entry((r.state.unwrap_or("unrouted").to_string(), r.day))
            .or_default();
        e.0 += 1;
        e.1 += u64::from(r.positive);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn simulated_reports_fail_exactly_their_planted_rule() {
        let mut rng = StdRng::seed_from_u64(1);
        let reports = reports(40, 1_780_000_000_000, 1, &mut rng);
        assert_eq!(reports.len(), 41);
        for r in &reports {
            let check = aorta_clinical::elr::check_bytes(r.message.as_bytes());
            match r.defect {
                None => assert!(check.is_valid(), "{:?}\n{}", check.errors, r.message),
                Some(rule) => assert_eq!(check.failed_rules(), vec![rule]),
            }
            assert_eq!(check.jurisdiction.as_deref(), r.state);
        }
        let (a, b) = (&reports[3], &reports[40]);
        assert_ne!(a.message, b.message);
        assert_eq!(
            aorta_clinical::elr::check_bytes(a.message.as_bytes()).fingerprint,
            aorta_clinical::elr::check_bytes(b.message.as_bytes()).fingerprint
        );
    }
}
