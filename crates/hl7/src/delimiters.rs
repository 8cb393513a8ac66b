//! The delimiters a message declares in MSH-1 and MSH-2 (or FHS/BHS-1 and -2).

use crate::error::{ParseError, ParseErrorKind};

/// A message's delimiters. The defaults are `|^~\&`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delimiters {
    /// Field separator (MSH-1).
    pub field: u8,
    /// Component separator (MSH-2, 1st).
    pub component: u8,
    /// Repetition separator (MSH-2, 2nd).
    pub repetition: u8,
    /// Escape character (MSH-2, 3rd); legacy messages may have none.
    pub escape: Option<u8>,
    /// Subcomponent separator (MSH-2, 4th); legacy messages may have none.
    pub subcomponent: Option<u8>,
    /// Truncation character (MSH-2, 5th, HL7 v2.7+).
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: Some(b'\\'),
            subcomponent: Some(b'&'),
            truncation: None,
        }
    }
}

/// Lenient rule: any 7-bit character but line breaks, NUL and space may be a delimiter. Real
/// senders (and nHapi's accepted fuzz cases) use odd characters, letters and digits included;
/// strict validation reports those separately. Bytes of 0x80 and above are refused: as
/// delimiters they would cut multi-byte UTF-8 and ISO-8859 text apart.
fn usable(b: u8) -> bool {
    b < 0x80 && !matches!(b, b'\r' | b'\n' | b' ' | 0)
}

impl Delimiters {
    /// Reads the delimiters from a header segment (`MSH|^~\&|…`) starting at `seg[0]`.
    /// `offset` is the segment's position in the input, for error spans. Returns the
    /// delimiters and the length of MSH-2 as written (the encoding characters).
    pub fn from_header(seg: &[u8], offset: usize) -> Result<(Delimiters, usize), ParseError> {
        let id = String::from_utf8_lossy(&seg[..seg.len().min(3)]).into_owned();
        if seg.len() < 5 {
            return Err(ParseError::new(
                ParseErrorKind::HeaderTooShort(id),
                offset..offset + seg.len(),
            ));
        }
        let field = seg[3];
        let bad = |msg: String, at: usize| {
            let mut e = ParseError::new(
                ParseErrorKind::BadDelimiters(msg),
                offset + at..offset + at + 1,
            );
            e.segment = Some(0);
            e
        };
        if !usable(field) {
            return Err(bad(
                format!("field separator {:?} is not usable", field as char),
                3,
            ));
        }
        let enc_end = seg[4..]
            .iter()
            .position(|&b| b == field)
            .map_or(seg.len(), |p| p + 4);
        let raw_enc = &seg[4..enc_end];
        // `^~\\&` (the escape character doubled) is what systems that JSON- or Java-escaped
        // their MSH-2 send; it means `^~\&`.
        let collapsed;
        let enc = if raw_enc.len() == 5
            && raw_enc[2] == raw_enc[3]
            && !raw_enc[..2].contains(&raw_enc[2])
        {
            collapsed = [raw_enc[0], raw_enc[1], raw_enc[2], raw_enc[4]];
            &collapsed[..]
        } else {
            raw_enc
        };
        if enc.len() < 2 || enc.len() > 5 {
            return Err(bad(
                format!(
                    "MSH-2 has {} encoding characters; 2 to 5 are allowed ({:?})",
                    enc.len(),
                    String::from_utf8_lossy(enc)
                ),
                4,
            ));
        }
        for (i, &b) in enc.iter().enumerate() {
            if !usable(b) || b == field {
                return Err(bad(
                    format!("encoding character {:?} is not usable", b as char),
                    4 + i,
                ));
            }
            if enc[..i].contains(&b) {
                return Err(bad(
                    format!(
                        "encoding character {:?} appears twice in MSH-2; each must be distinct",
                        b as char
                    ),
                    4 + i,
                ));
            }
        }
        let d = Delimiters {
            field,
            component: enc[0],
            repetition: enc[1],
            escape: enc.get(2).copied(),
            subcomponent: enc.get(3).copied(),
            truncation: enc.get(4).copied(),
        };
        Ok((d, raw_enc.len()))
    }

    /// MSH-2 as it would be written.
    pub fn encoding_characters(&self) -> Vec<u8> {
        let mut v = vec![self.component, self.repetition];
        v.extend(self.escape);
        v.extend(self.subcomponent);
        v.extend(self.truncation);
        v
    }
}
