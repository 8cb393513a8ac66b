//! FHIR R4 `date`, `dateTime`, `instant` and `time`: the grammar, calendar validity, and the
//! conversion from HL7 v2 `DTM`/`DT` values, the usual source of timezone bugs.
//!
//! Grammar: FHIR R4 §2.24.0.1 "Primitive Types" (<http://hl7.org/fhir/R4/datatypes.html>):
//! * `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`; no time, no timezone.
//! * `dateTime`: a `date`, or `YYYY-MM-DDThh:mm:ss[.f+]` followed by `Z` or `±hh:mm`; "if hours
//!   and minutes are specified, a time zone SHALL be populated"; seconds are required.
//! * `instant`: always to the second, always with a timezone.
//! * `time`: `hh:mm:ss[.f+]`, no timezone.
//!
//! Offsets are limited to -14:00..+14:00 (the regex in the spec); days must exist in their month
//! (leap years included), which the spec's regex alone does not check.
//!
//! HL7 v2 `DTM` (v2.5.1 Chapter 2A.22): `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`. A value
//! without an offset is in the sender's local time; the converter takes the offset of MSH-7
//! when the caller passes it, otherwise a configured default. The precision the sender gave is
//! kept (a v2 date stays a FHIR date; missing minutes/seconds become `00`, as FHIR requires
//! seconds once a time is present).

/// What kind of temporal primitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `date`.
    Date,
    /// `dateTime`.
    DateTime,
    /// `instant`.
    Instant,
    /// `time`.
    Time,
}

impl Kind {
    /// The FHIR type name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Date => "date",
            Kind::DateTime => "dateTime",
            Kind::Instant => "instant",
            Kind::Time => "time",
        }
    }
}

fn digits(s: &[u8], n: usize) -> Option<u32> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s[..n].iter().fold(0, |a, d| a * 10 + u32::from(d - b'0')))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (hour, minute, second, nanoseconds)
type Hms = (u32, u32, u32, u32);

/// Parsed pieces of a FHIR temporal value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Parts {
    year: u32,
    month: Option<u32>,
    day: Option<u32>,
    time: Option<Hms>,
    /// Offset in minutes east of UTC.
    offset: Option<i32>,
}

fn parse_date(s: &[u8]) -> Result<(Parts, usize), String> {
    let year = digits(s, 4).ok_or("the year must be 4 digits")?;
    if year == 0 {
        return Err("year 0000 does not exist".into());
    }
    let mut p = Parts {
        year,
        month: None,
        day: None,
        time: None,
        offset: None,
    };
    let mut at = 4;
    if s.get(at) == Some(&b'-') {
        let m = digits(&s[at + 1..], 2).ok_or("the month must be 2 digits")?;
        if !(1..=12).contains(&m) {
            return Err(format!("month {m:02} does not exist"));
        }
        p.month = Some(m);
        at += 3;
        if s.get(at) == Some(&b'-') {
            let d = digits(&s[at + 1..], 2).ok_or("the day must be 2 digits")?;
            if d == 0 || d > days_in_month(year, m) {
                return Err(format!("{year:04}-{m:02} has no day {d:02}"));
            }
            p.day = Some(d);
            at += 3;
        }
    }
    Ok((p, at))
}

fn parse_time(s: &[u8]) -> Result<(Hms, usize), String> {
    let h = digits(s, 2).ok_or("the hour must be 2 digits")?;
    if s.get(2) != Some(&b':') {
        return Err("expected ':' after the hour".into());
    }
    let mi = digits(&s[3..], 2).ok_or("the minutes must be 2 digits")?;
    if s.get(5) != Some(&b':') {
        return Err("seconds are required (hh:mm:ss)".into());
    }
    let sec = digits(&s[6..], 2).ok_or("the seconds must be 2 digits")?;
    if h > 23 || mi > 59 || sec > 60 {
        return Err(format!("{h:02}:{mi:02}:{sec:02} is not a time of day"));
    }
    let mut at = 8;
    let mut nanos = 0;
    if s.get(at) == Some(&b'.') {
        let frac: Vec<u8> = s[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        if frac.is_empty() {
            return Err("a '.' must be followed by digits".into());
        }
        nanos = frac
            .iter()
            .take(9)
            .chain(std::iter::repeat(&b'0'))
            .take(9)
            .fold(0, |a, d| a * 10 + u32::from(d - b'0'));
        at += 1 + frac.len();
    }
    Ok(((h, mi, sec, nanos), at))
}

fn parse_offset(s: &[u8]) -> Result<i32, String> {
    match s.first() {
        Some(b'Z') if s.len() == 1 => Ok(0),
        Some(sign @ (b'+' | b'-')) if s.len() == 6 && s[3] == b':' => {
            let (Some(h), Some(m)) = (digits(&s[1..], 2), digits(&s[4..], 2)) else {
                return Err("the offset must be ±hh:mm".into());
            };
            if m > 59 || h > 14 || (h == 14 && m > 0) {
                return Err("the offset must be between -14:00 and +14:00".into());
            }
            let v = (h * 60 + m) as i32;
            Ok(if *sign == b'-' { -v } else { v })
        }
        _ => Err("the timezone must be Z or ±hh:mm".into()),
    }
}

fn parse(kind: Kind, s: &str) -> Result<Parts, String> {
    let b = s.as_bytes();
    if kind == Kind::Time {
        let (t, at) = parse_time(b)?;
        if at != b.len() {
            return Err("a time has no timezone or trailing text".into());
        }
        return Ok(Parts {
            year: 1,
            month: None,
            day: None,
            time: Some(t),
            offset: None,
        });
    }
    let (mut p, at) = parse_date(b)?;
    let rest = &b[at..];
    if rest.is_empty() {
        return match kind {
            Kind::Instant => Err("an instant needs a time and a timezone".into()),
            _ => Ok(p),
        };
    }
    if kind == Kind::Date {
        return Err("a date has no time or timezone".into());
    }
    if rest[0] != b'T' || p.day.is_none() {
        return Err("a time must follow a full date, after 'T'".into());
    }
    let (t, used) = parse_time(&rest[1..])?;
    p.time = Some(t);
    let tz = &rest[1 + used..];
    if tz.is_empty() {
        return Err("a time needs a timezone (Z or ±hh:mm)".into());
    }
    p.offset = Some(parse_offset(tz)?);
    Ok(p)
}

/// Checks `s` against the grammar of `kind`; the error says what is wrong.
pub fn check(kind: Kind, s: &str) -> Result<(), String> {
    parse(kind, s).map(|_| ())
}

/// True when `offset` is `Z` or `±hh:mm`: exactly the values that complete a FHIR instant.
pub fn is_offset(offset: &str) -> bool {
    check(Kind::Instant, &format!("2000-01-01T00:00:00{offset}")).is_ok()
}

/// Days from 1970-01-01 to the given civil date (the HL7 crate's calendar conversion).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    aorta_hl7::dtm::days_from_civil(y, i64::from(m), i64::from(d))
}

/// A `dateTime`/`instant` with a time as nanoseconds since the Unix epoch (UTC), for comparing
/// values written with different offsets. `None` for values without a time.
pub fn to_utc_nanos(s: &str) -> Option<i128> {
    let p = parse(Kind::DateTime, s).ok()?;
    let (h, mi, sec, ns) = p.time?;
    let days = days_from_civil(i64::from(p.year), p.month?, p.day?);
    let secs =
        days * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - i64::from(p.offset.unwrap_or(0)) * 60;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(ns))
}

/// A FHIR `date` with at least a day (`1950-07-04`) as days since the Unix epoch.
pub fn date_to_days(s: &str) -> Option<i64> {
    let p = parse(Kind::Date, s).ok()?;
    Some(days_from_civil(i64::from(p.year), p.month?, p.day?))
}

/// Civil date of a day number (the inverse of `days_from_civil`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let (y, m, d) = aorta_hl7::dtm::civil_from_days(z);
    // Month and day are 1..=12 and 1..=31 by construction.
    (y, m as u32, d as u32)
}

/// Epoch milliseconds as a FHIR `instant` in UTC (`2026-12-03T10:04:05.123Z`).
pub fn format_utc_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, sec, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{milli:03}Z")
}

/// An HL7 v2 offset `+hhmm` / `-hhmm` as `±hh:mm`.
fn v2_offset(z: &[u8]) -> Option<String> {
    if z.len() != 5 || !matches!(z[0], b'+' | b'-') {
        return None;
    }
    let h = digits(&z[1..], 2)?;
    let m = digits(&z[3..], 2)?;
    if m > 59 || h > 14 || (h == 14 && m > 0) {
        return None;
    }
    Some(format!("{}{h:02}:{m:02}", z[0] as char))
}

/// The `±hh:mm` offset of an HL7 v2 DTM (e.g. MSH-7), if it has one.
pub fn v2_offset_of(dtm: &str) -> Option<String> {
    let b = dtm.trim().as_bytes();
    let at = b.iter().position(|&c| c == b'+' || c == b'-')?;
    v2_offset(&b[at..])
}

/// Converts an HL7 v2 `DTM`/`DT`/`TS` value to a FHIR `dateTime`, keeping its precision.
/// `default_offset` (`±hh:mm` or `Z`) is used when the value has a time but no offset; without
/// one such a value is cut to its date (FHIR forbids a time without a timezone). `None` when
/// the value is not a valid DTM.
pub fn dtm_to_datetime(dtm: &str, default_offset: Option<&str>) -> Option<String> {
    let b = dtm.trim().as_bytes();
    let (body, zone) = match b.iter().position(|&c| c == b'+' || c == b'-') {
        Some(at) => (&b[..at], Some(v2_offset(&b[at..])?)),
        None => (b, None),
    };
    let (main, frac) = match body.iter().position(|&c| c == b'.') {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    if !main.iter().all(u8::is_ascii_digit) || !matches!(main.len(), 4 | 6 | 8 | 10 | 12 | 14) {
        return None;
    }
    if frac.is_some_and(|f| f.is_empty() || !f.iter().all(u8::is_ascii_digit) || main.len() != 14) {
        return None;
    }
    let s = |r: std::ops::Range<usize>| std::str::from_utf8(&main[r]).unwrap_or("00");
    let mut out = s(0..4).to_string();
    if main.len() >= 6 {
        out += &format!("-{}", s(4..6));
    }
    if main.len() >= 8 {
        out += &format!("-{}", s(6..8));
    }
    if main.len() >= 10 {
        let zone = match zone.as_deref().or(default_offset) {
            Some("+00:00") | Some("-00:00") => Some("Z".to_string()),
            Some(z) => Some(z.to_string()),
            None => None,
        };
        if let Some(zone) = zone {
            let mm = if main.len() >= 12 { s(10..12) } else { "00" };
            let ss = if main.len() >= 14 { s(12..14) } else { "00" };
            out += &format!("T{}:{mm}:{ss}", s(8..10));
            if let Some(f) = frac {
                out += &format!(".{}", std::str::from_utf8(f).unwrap_or("0"));
            }
            out += &zone;
        }
    }
    check(Kind::DateTime, &out).ok()?;
    Some(out)
}

/// Converts an HL7 v2 `DT`/`DTM` to a FHIR `date` (its date part, at the precision given).
pub fn dtm_to_date(dtm: &str) -> Option<String> {
    let b = dtm.trim().as_bytes();
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = match n {
        4 | 6 => n,
        n if n >= 8 => 8,
        _ => return None,
    };
    let d = std::str::from_utf8(&b[..n]).ok()?;
    dtm_to_datetime(d, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn formatted_instants_parse_back_to_the_same_millisecond(ms in -62_000_000_000_000i64..253_000_000_000_000i64) {
            let s = format_utc_ms(ms);
            prop_assert_eq!(check(Kind::Instant, &s), Ok(()));
            prop_assert_eq!(to_utc_nanos(&s), Some(i128::from(ms) * 1_000_000));
        }
    }

    #[test]
    fn dates_to_day_numbers() {
        assert_eq!(date_to_days("1970-01-01"), Some(0));
        assert_eq!(date_to_days("2000-03-01"), Some(11_017));
        assert_eq!(date_to_days("1969-12-31"), Some(-1));
        assert_eq!(date_to_days("1970-01"), None);
        assert_eq!(format_utc_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_utc_ms(951_782_400_000 + 3_723_004),
            "2000-02-29T01:02:03.004Z"
        );
    }

    #[test]
    fn the_grammar_from_the_spec() {
        for ok in ["2018", "1973-06", "1905-08-23", "2000-02-29"] {
            assert_eq!(check(Kind::Date, ok), Ok(()), "{ok}");
            assert_eq!(check(Kind::DateTime, ok), Ok(()), "{ok}");
        }
        for ok in [
            "2015-02-07T13:28:17-05:00",
            "2017-01-01T00:00:00.000Z",
            "2017-01-01T00:00:00Z",
            "1999-12-31T23:59:60+14:00",
        ] {
            assert_eq!(check(Kind::DateTime, ok), Ok(()), "{ok}");
            assert_eq!(check(Kind::Instant, ok), Ok(()), "{ok}");
        }
        for bad in [
            "2015-02-29",
            "1900-02-29",
            "2018-13",
            "2018-00-01",
            "18",
            "0000",
            "2018-1-01",
            "20180101",
            "2018-01-01T10:00",
            "2018-01-01T10:00:00",
            "2018-01-01T24:00:00Z",
            "2018-01-01T10:00:00+15:00",
            "2018-01-01T10:00:00+0500",
            "2018-01T10:00:00Z",
            "2018-01-01T10:00:00.Z",
            "2018-01-01 10:00:00Z",
        ] {
            assert!(check(Kind::DateTime, bad).is_err(), "{bad}");
        }
        assert!(check(Kind::Date, "2018-01-01T10:00:00Z").is_err());
        assert!(check(Kind::Instant, "2018-01-01").is_err());
        assert_eq!(check(Kind::Time, "13:28:17.239"), Ok(()));
        assert!(check(Kind::Time, "13:28").is_err());
        assert!(check(Kind::Time, "13:28:17Z").is_err());
    }

    #[test]
    fn v2_dtm_keeps_precision_and_offset() {
        let c = |v, d| dtm_to_datetime(v, d);
        assert_eq!(c("1988", None).as_deref(), Some("1988"));
        assert_eq!(c("198808", None).as_deref(), Some("1988-08"));
        assert_eq!(c("19880818", None).as_deref(), Some("1988-08-18"));
        assert_eq!(
            c("198808181126+0215", None).as_deref(),
            Some("1988-08-18T11:26:00+02:15")
        );
        assert_eq!(
            c("20210817151943.4+0200", None).as_deref(),
            Some("2021-08-17T15:19:43.4+02:00")
        );
        assert_eq!(
            c("2021081715-0500", None).as_deref(),
            Some("2021-08-17T15:00:00-05:00")
        );
        assert_eq!(
            c("20210817151943+0000", None).as_deref(),
            Some("2021-08-17T15:19:43Z")
        );
        // No offset: the caller's default (MSH-7's offset, or configured), else the date.
        assert_eq!(
            c("20290801070724", Some("+01:15")).as_deref(),
            Some("2029-08-01T07:07:24+01:15")
        );
        assert_eq!(c("20290801070724", None).as_deref(), Some("2029-08-01"));
        for bad in [
            "",
            "2029080",
            "20291301",
            "20290230",
            "20290801256000",
            "2029-08-01",
            "20290801070724+2500",
            "20290801070724+05",
            "20290801.5",
        ] {
            assert_eq!(c(bad, Some("Z")), None, "{bad}");
        }
        assert_eq!(
            dtm_to_date("198808181126+0215").as_deref(),
            Some("1988-08-18")
        );
        assert_eq!(v2_offset_of("198908181126+0215").as_deref(), Some("+02:15"));
        assert_eq!(v2_offset_of("198908181126"), None);
    }

    #[test]
    fn instants_compare_across_offsets() {
        assert_eq!(
            to_utc_nanos("1989-08-18T14:41:00+05:30"),
            to_utc_nanos("1989-08-18T11:26:00+02:15")
        );
        assert_eq!(to_utc_nanos("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            to_utc_nanos("1970-01-01T00:00:01.5-00:30"),
            Some(1_801_500_000_000)
        );
        assert_eq!(to_utc_nanos("1970-01-01"), None);
    }

    proptest! {
        /// Any valid v2 DTM with an offset converts to a valid FHIR dateTime denoting the same
        /// instant (checked against a direct computation from the v2 fields).
        #[test]
        fn every_valid_dtm_converts_to_the_same_instant(
            y in 1u32..9999, mo in 1u32..=12, d in 1u32..=31, h in 0u32..24, mi in 0u32..60,
            s in 0u32..60, neg: bool, oh in 0u32..14, om in 0u32..60,
        ) {
            prop_assume!(d <= days_in_month(y, mo));
            let sign = if neg { '-' } else { '+' };
            let dtm = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}{sign}{oh:02}{om:02}");
            let fhir = dtm_to_datetime(&dtm, None).expect("valid");
            prop_assert_eq!(check(Kind::Instant, &fhir), Ok(()));
            let off = (oh * 60 + om) as i64 * if neg { -1 } else { 1 };
            let expect = (days_from_civil(i64::from(y), mo, d) * 86_400
                + i64::from(h * 3600 + mi * 60 + s) - off * 60) as i128 * 1_000_000_000;
            prop_assert_eq!(to_utc_nanos(&fhir), Some(expect));
        }

        /// Nothing panics, and whatever is accepted is valid FHIR.
        #[test]
        fn any_text_converts_to_valid_fhir_or_nothing(s in "[0-9+\\-.]{0,24}") {
            if let Some(v) = dtm_to_datetime(&s, Some("Z")) {
                prop_assert_eq!(check(Kind::DateTime, &v), Ok(()));
            }
            let _ = check(Kind::Instant, &s);
        }
    }
}
