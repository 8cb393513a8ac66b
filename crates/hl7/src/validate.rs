//! Strict checks: every conformance problem found in a message, with where it is. Lenient
//! parsing (the ingest default) accepts all of these; `aorta hl7 validate` reports them.
//!
//! Checked: the MSH header (MSH-9 type and trigger, MSH-10 control id, MSH-12 version),
//! segment ids, delimiters outside the standard `|^~\&` that are letters or digits, escape
//! sequences left open, text that is not in the character set MSH-18 declares, and the message
//! structure (required, foreign and misplaced segments; see [`crate::structure`]) for the
//! structures that have a grammar.
//! Not checked: data types and lengths of field values.

use crate::message::{Message, Segment};
use std::ops::Range;

/// One problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where, as a terser-like location (`MSH-9`, `PID-3`, `segment 4`).
    pub location: String,
    /// Byte range in the input.
    pub span: Range<usize>,
    /// What is wrong.
    pub message: String,
}

/// The character set a message declares in MSH-18 (first repetition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// ASCII (the default when MSH-18 is empty).
    Ascii,
    /// UTF-8 (`UNICODE UTF-8`).
    Utf8,
    /// ISO-8859-1 (`8859/1`).
    Latin1,
    /// Something else, named as written.
    Other,
}

/// MSH-18 read as a charset.
pub fn charset(msg: &Message<'_>) -> Charset {
    let v = msg
        .segment_at(0)
        .and_then(|s| s.field(18))
        .and_then(|f| f.repetition(1))
        .map(|r| r.raw().to_ascii_uppercase())
        .unwrap_or_default();
    match v.as_slice() {
        b"" | b"ASCII" => Charset::Ascii,
        b"UNICODE UTF-8" | b"UTF-8" | b"UNICODE" => Charset::Utf8,
        b"8859/1" => Charset::Latin1,
        _ => Charset::Other,
    }
}

impl Charset {
    /// Decodes bytes written in this character set: ISO-8859-1 byte by byte, everything else
    /// as UTF-8 (ASCII is a subset; invalid sequences become U+FFFD).
    pub fn decode(self, bytes: &[u8]) -> String {
        match self {
            Charset::Latin1 => bytes.iter().map(|&b| b as char).collect(),
            _ => String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

/// Decodes bytes of this message as text in the character set MSH-18 declares.
pub fn text(msg: &Message<'_>, bytes: &[u8]) -> String {
    charset(msg).decode(bytes)
}

fn seg_name(s: &Segment<'_>) -> String {
    String::from_utf8_lossy(s.id()).into_owned()
}

/// Every problem found in `msg`.
pub fn validate(msg: &Message<'_>) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(msh) = msg.segment_at(0) else {
        return out;
    };
    if let Err(e) = msg.validate_header() {
        out.push(Problem {
            location: format!("MSH-{}", e.field.unwrap_or(0)),
            span: e.span.clone(),
            message: e.kind.to_string(),
        });
    }
    if msh.field(10).is_none_or(|f| f.raw().is_empty()) {
        out.push(Problem {
            location: "MSH-10".into(),
            span: msh.span(),
            message: "MSH-10 message control id is empty: the message cannot be acknowledged"
                .into(),
        });
    }
    let d = msg.delimiters();
    for (name, b) in [
        ("field separator", Some(d.field)),
        ("component separator", Some(d.component)),
        ("repetition separator", Some(d.repetition)),
        ("escape character", d.escape),
        ("subcomponent separator", d.subcomponent),
    ] {
        if let Some(b) = b.filter(|b| b.is_ascii_alphanumeric() || b.is_ascii_control()) {
            out.push(Problem {
                location: "MSH-2".into(),
                span: msh.span(),
                message: format!(
                    "the {name} is {:?}, which also occurs in ordinary text",
                    b as char
                ),
            });
        }
    }
    if let Some((_, problems)) = crate::structure::check(msg) {
        out.extend(problems);
    }
    let cs = charset(msg);
    for s in msg.segments() {
        let id = s.id();
        let ok_id = id.len() == 3
            && id[0].is_ascii_uppercase()
            && id
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !ok_id {
            out.push(Problem {
                location: format!("segment {}", s.index() + 1),
                span: s.span(),
                message: format!(
                    "segment id {:?} is not 3 characters A-Z/0-9 (a line break inside a field?)",
                    String::from_utf8_lossy(id)
                ),
            });
        }
        for (n, f) in s.fields().enumerate().skip(1) {
            if s.index() == 0 && n <= 2 {
                continue;
            }
            let loc = || format!("{}-{n}", seg_name(&s));
            if let Some(esc) = d.escape {
                let count = f.raw().iter().filter(|&&b| b == esc).count();
                if count % 2 == 1 {
                    out.push(Problem {
                        location: loc(),
                        span: s.span(),
                        message: format!(
                            "an escape sequence is not closed (odd number of {:?})",
                            esc as char
                        ),
                    });
                }
            }
            let non_ascii = f.raw().iter().any(|&b| b >= 0x80);
            match cs {
                Charset::Ascii if non_ascii && std::str::from_utf8(f.raw()).is_ok() => out.push(Problem {
                    location: loc(),
                    span: s.span(),
                    message: "UTF-8 text but MSH-18 declares no character set (ASCII); declare UNICODE UTF-8".into(),
                }),
                Charset::Ascii | Charset::Utf8 if non_ascii && std::str::from_utf8(f.raw()).is_err() => out.push(Problem {
                    location: loc(),
                    span: s.span(),
                    message: "bytes that are not UTF-8 (ISO-8859-1?); declare 8859/1 in MSH-18 or send UTF-8".into(),
                }),
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    #[test]
    fn a_clean_message_has_no_problems() {
        let m =
            parse(b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5.1\rEVN|A01\rPID|1||123\rPV1|1|I\r")
                .unwrap();
        assert_eq!(validate(&m), vec![]);
    }

    #[test]
    fn every_problem_is_listed_with_its_location() {
        let raw = "MSH|^~\\&|A|B|C|D|20260101||ADT|||2.5.1\rPID|1||M\u{fc}ller \\T\rwrapped line\r"
            .as_bytes();
        let m = parse(raw).unwrap();
        let p = validate(&m);
        let locs: Vec<&str> = p.iter().map(|p| p.location.as_str()).collect();
        assert!(locs.contains(&"MSH-9"), "{p:?}");
        assert!(locs.contains(&"MSH-10"), "{p:?}");
        assert!(locs.contains(&"PID-3"), "{p:?}");
        assert!(locs.contains(&"segment 3"), "{p:?}");
        assert!(p.iter().any(|x| x.message.contains("not closed")));
        assert!(p.iter().any(|x| x.message.contains("UNICODE UTF-8")));
    }

    #[test]
    fn latin1_is_decoded_when_declared() {
        let m =
            parse(b"MSH|^~\\&|A|B|C|D|20260101||ADT^A31|1|P|2.5.1||||||8859/1\rEVN|A31\rPID|1||M\xfcller\rPV1|1|N\r")
                .unwrap();
        assert_eq!(charset(&m), Charset::Latin1);
        let v = m.segment("PID", 1).unwrap().field(3).unwrap().raw();
        assert_eq!(text(&m, v), "Müller");
        assert_eq!(validate(&m), vec![]);
    }
}
