//! HL7 DTM timestamps (`YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`, HL7 v2.5.1 Chapter 2A, DTM)
//! to and from Unix milliseconds, without a calendar library.

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; H. Hinnant's algorithm).
/// Shared with `aorta_fhir::datetime`: the one calendar conversion in Aorta.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month 1–12, day 1–31) of a day number: the inverse of
/// [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses an HL7 DTM into Unix milliseconds (UTC when no offset is given). `None` when it is not
/// a plausible DTM.
pub fn dtm_to_ms(raw: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    let (main, offset) = match s.find(['+', '-']) {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    let (digits, frac) = main.split_once('.').unwrap_or((main, ""));
    if digits.len() < 4 || digits.len() % 2 != 0 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |a: usize, b: usize, default: i64| {
        digits.get(a..b).map_or(Some(default), |v| v.parse().ok())
    };
    let (y, mo, d) = (num(0, 4, 0)?, num(4, 6, 1)?, num(6, 8, 1)?);
    let (h, mi, se) = (num(8, 10, 0)?, num(10, 12, 0)?, num(12, 14, 0)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let ms = if frac.is_empty() {
        0
    } else {
        let f: String = frac.chars().chain("000".chars()).take(3).collect();
        f.parse::<i64>().ok()?
    };
    let mut t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + se;
    if let Some(o) = offset {
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let z = &o[1..];
        if z.len() != 4 || !z.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (zh, zm): (i64, i64) = (z[..2].parse().ok()?, z[2..].parse().ok()?);
        t -= sign * (zh * 3600 + zm * 60);
    }
    Some(t * 1000 + ms)
}

/// Unix milliseconds as an HL7 DTM in UTC, to the second: `YYYYMMDDHHMMSS`.
pub fn ms_to_dtm(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtm_round_trips_and_honours_offsets() {
        assert_eq!(dtm_to_ms(b"19700101000000"), Some(0));
        assert_eq!(dtm_to_ms(b"20260101"), Some(1_767_225_600_000));
        assert_eq!(dtm_to_ms(b"198908181126+0215"), dtm_to_ms(b"198908180911"));
        assert_eq!(dtm_to_ms(b"20260101120000.5-0500"), Some(1_767_286_800_500));
        assert_eq!(ms_to_dtm(1_767_286_800_500), "20260101170000");
        for bad in [
            &b""[..],
            b"2026",
            b"202613",
            b"20260101250000",
            b"abc",
            b"20260101+05",
        ] {
            if bad == b"2026" {
                assert!(dtm_to_ms(bad).is_some());
                continue;
            }
            assert_eq!(dtm_to_ms(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        for ms in [0i64, 951_782_400_000, 4_102_444_799_000] {
            assert_eq!(dtm_to_ms(ms_to_dtm(ms).as_bytes()), Some(ms));
        }
    }
}
