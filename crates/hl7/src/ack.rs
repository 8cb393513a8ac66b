//! ACK and NAK replies (original acknowledgement mode).
//!
//! Source: HL7 v2.5.1 Chapter 2, section 2.9 (acknowledgement), the MSA and ERR segment
//! definitions (2.15.8, 2.15.5), HL7 table 0008 (acknowledgment code) and HL7 table 0357
//! (message error condition codes). The reply uses the original's delimiters, swaps sender and
//! receiver, echoes MSH-10 in MSA-2, and carries an ERR segment (ERR-2 location, ERR-3 code from
//! table 0357, ERR-4 severity) for AE/AR.

use crate::escape;
use crate::message::Message;

/// HL7 table 0008, original mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckCode {
    /// Application Accept.
    Accept,
    /// Application Error: the message was understood but not accepted; resend may work.
    Error,
    /// Application Reject: the message cannot be accepted (unsupported type, bad header).
    Reject,
}

impl AckCode {
    /// The code as written in MSA-1.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// HL7 table 0357, message error condition codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// 0: Message accepted.
    Accepted = 0,
    /// 100: Segment sequence error.
    SegmentSequence = 100,
    /// 101: Required field missing.
    RequiredFieldMissing = 101,
    /// 102: Data type error.
    DataType = 102,
    /// 103: Table value not found.
    TableValueNotFound = 103,
    /// 200: Unsupported message type.
    UnsupportedMessageType = 200,
    /// 201: Unsupported event code.
    UnsupportedEventCode = 201,
    /// 202: Unsupported processing id.
    UnsupportedProcessingId = 202,
    /// 203: Unsupported version id.
    UnsupportedVersionId = 203,
    /// 204: Unknown key identifier.
    UnknownKey = 204,
    /// 205: Duplicate key identifier.
    DuplicateKey = 205,
    /// 206: Application record locked.
    RecordLocked = 206,
    /// 207: Application internal error.
    InternalError = 207,
}

impl ErrorCode {
    /// The table's text for the code.
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::Accepted => "Message accepted",
            ErrorCode::SegmentSequence => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataType => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEventCode => "Unsupported event code",
            ErrorCode::UnsupportedProcessingId => "Unsupported processing id",
            ErrorCode::UnsupportedVersionId => "Unsupported version id",
            ErrorCode::UnknownKey => "Unknown key identifier",
            ErrorCode::DuplicateKey => "Duplicate key identifier",
            ErrorCode::RecordLocked => "Application record locked",
            ErrorCode::InternalError => "Application internal error",
        }
    }
}

/// What went wrong, for the ERR segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckError {
    /// Table 0357 code.
    pub code: ErrorCode,
    /// Human-readable detail (escaped when written).
    pub detail: String,
    /// ERR-2 location as `SEG^sequence^field` (e.g. `PID^1^3`), if known.
    pub location: Option<(String, usize, usize)>,
}

/// Builds the reply to `original`: `control_id` becomes the ACK's MSH-10 and `timestamp` its
/// MSH-7 (`YYYYMMDDHHMMSS`). Segments end with `\r`.
pub fn build(
    original: &Message<'_>,
    code: AckCode,
    control_id: &str,
    timestamp: &str,
    error: Option<&AckError>,
) -> Vec<u8> {
    let d = original.delimiters();
    let msh = original.segment_at(0);
    let get = |n: usize| {
        msh.and_then(|s| s.field(n))
            .map(|f| f.raw())
            .unwrap_or_default()
    };
    let trigger = msh
        .and_then(|s| s.field(9))
        .and_then(|f| f.repetition(1))
        .and_then(|r| r.component(2))
        .map(|c| c.raw())
        .unwrap_or_default();
    let f = d.field;
    let c = d.component;
    let mut out = Vec::with_capacity(256);
    let field = |out: &mut Vec<u8>, v: &[u8]| {
        out.push(f);
        out.extend_from_slice(v);
    };
    out.extend_from_slice(b"MSH");
    out.push(f);
    out.extend_from_slice(&d.encoding_characters());
    for v in [get(5), get(6), get(3), get(4), timestamp.as_bytes(), b""] {
        field(&mut out, v);
    }
    let mut msg_type = b"ACK".to_vec();
    if !trigger.is_empty() {
        msg_type.push(c);
        msg_type.extend_from_slice(trigger);
        msg_type.push(c);
        msg_type.extend_from_slice(b"ACK");
    }
    field(&mut out, &msg_type);
    field(&mut out, &escape::encode(control_id.as_bytes(), &d));
    field(&mut out, get(11));
    field(&mut out, get(12));
    out.push(b'\r');
    out.extend_from_slice(b"MSA");
    field(&mut out, code.as_str().as_bytes());
    field(&mut out, get(10));
    if let Some(e) = error {
        // MSA-3 (text) for receivers on versions before ERR-3 existed.
        field(&mut out, &escape::encode(e.detail.as_bytes(), &d));
        out.push(b'\r');
        out.extend_from_slice(b"ERR");
        field(&mut out, b"");
        let location = e
            .location
            .as_ref()
            .map(|(s, seq, fld)| {
                let mut v = escape::encode(s.as_bytes(), &d);
                v.push(c);
                v.extend_from_slice(seq.to_string().as_bytes());
                v.push(c);
                v.extend_from_slice(fld.to_string().as_bytes());
                v
            })
            .unwrap_or_default();
        field(&mut out, &location);
        let mut cwe = (e.code as u16).to_string().into_bytes();
        cwe.push(c);
        cwe.extend_from_slice(&escape::encode(e.code.text().as_bytes(), &d));
        cwe.push(c);
        cwe.extend_from_slice(b"HL70357");
        field(&mut out, &cwe);
        field(&mut out, if code == AckCode::Accept { b"I" } else { b"E" });
        if !e.detail.is_empty() {
            // ERR-8 user message.
            for _ in 5..8 {
                field(&mut out, b"");
            }
            field(&mut out, &escape::encode(e.detail.as_bytes(), &d));
        }
    }
    out.push(b'\r');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const ORU: &[u8] = b"MSH|^~\\&|LAB|HOSP|AORTA|AORTA|20260101120000||ORU^R01^ORU_R01|CTRL42|P|2.5.1\rPID|1||123\r";

    #[test]
    fn accept_echoes_control_id_and_swaps_parties() {
        let m = parse(ORU).unwrap();
        let ack = build(&m, AckCode::Accept, "ACK1", "20260101120001", None);
        let a = parse(&ack).unwrap();
        let msh = a.segment_at(0).unwrap();
        let f = |n| {
            std::str::from_utf8(msh.field(n).unwrap().raw())
                .unwrap()
                .to_string()
        };
        assert_eq!(
            (f(3), f(4), f(5), f(6)),
            ("AORTA".into(), "AORTA".into(), "LAB".into(), "HOSP".into())
        );
        assert_eq!(f(9), "ACK^R01^ACK");
        assert_eq!(f(10), "ACK1");
        assert_eq!(f(12), "2.5.1");
        let msa = a.segment("MSA", 1).unwrap();
        assert_eq!(msa.field(1).unwrap().raw(), b"AA");
        assert_eq!(msa.field(2).unwrap().raw(), b"CTRL42");
        assert!(a.segment("ERR", 1).is_none());
    }

    #[test]
    fn errors_carry_table_0357_codes_and_escaped_detail() {
        let m = parse(ORU).unwrap();
        let e = AckError {
            code: ErrorCode::RequiredFieldMissing,
            detail: "PID-3 is empty | fix the sender".into(),
            location: Some(("PID".into(), 1, 3)),
        };
        let ack = build(&m, AckCode::Error, "ACK2", "20260101120001", Some(&e));
        let a = parse(&ack).unwrap();
        assert_eq!(a.segment("MSA", 1).unwrap().field(1).unwrap().raw(), b"AE");
        let err = a.segment("ERR", 1).unwrap();
        assert_eq!(err.field(2).unwrap().raw(), b"PID^1^3");
        assert_eq!(
            err.field(3).unwrap().raw(),
            b"101^Required field missing^HL70357"
        );
        assert_eq!(err.field(4).unwrap().raw(), b"E");
        assert_eq!(
            &*err.field(8).unwrap().decoded(),
            b"PID-3 is empty | fix the sender"
        );
    }
}
