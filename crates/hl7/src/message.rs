//! Borrowed views of a message. Locating segments is one pass over the bytes; fields,
//! repetitions, components and subcomponents are split lazily, only when asked for.

use crate::delimiters::Delimiters;
use crate::error::{ParseError, ParseErrorKind};
use crate::escape;
use std::borrow::Cow;
use std::ops::Range;

/// Bytes that may precede a message and are not part of it: a UTF-8 BOM, MLLP start/end
/// bytes, whitespace. Returns how many to skip.
pub(crate) fn skip_noise(input: &[u8]) -> usize {
    let mut i = 0;
    loop {
        if input[i..].starts_with(&[0xEF, 0xBB, 0xBF]) {
            i += 3;
        } else if i < input.len() && matches!(input[i], b'\r' | b'\n' | b' ' | b'\t' | 0x0B | 0x1C)
        {
            i += 1;
        } else {
            return i;
        }
    }
}

/// Splits `input[from..]` into segment ranges: any of `\r`, `\n`, `\r\n` ends a segment, MLLP
/// end bytes end one too, and blank lines are skipped.
pub(crate) fn segment_ranges(input: &[u8], from: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = from;
    for (i, &b) in input.iter().enumerate().skip(from) {
        if matches!(b, b'\r' | b'\n' | 0x1C | 0x0B) {
            if i > start && !input[start..i].iter().all(|c| c.is_ascii_whitespace()) {
                out.push(start..i);
            }
            start = i + 1;
        }
    }
    if input.len() > start && !input[start..].iter().all(|c| c.is_ascii_whitespace()) {
        out.push(start..input.len());
    }
    out
}

/// Whether a segment starts with one of the header ids that declare delimiters.
pub(crate) fn is_header_id(seg: &[u8]) -> bool {
    seg.len() >= 4 && matches!(&seg[..3], b"MSH" | b"FHS" | b"BHS")
}

/// One HL7 v2 message: its delimiters and the byte ranges of its segments in the input.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    input: &'a [u8],
    segments: Vec<Range<usize>>,
    delimiters: Delimiters,
}

impl<'a> Message<'a> {
    /// Parses one message (see [`crate::parse`]).
    pub fn parse(input: &'a [u8]) -> Result<Message<'a>, ParseError> {
        let from = skip_noise(input);
        if from >= input.len() {
            return Err(ParseError::new(ParseErrorKind::Empty, 0..input.len()));
        }
        let ranges = segment_ranges(input, from);
        Self::from_segments(input, ranges)
    }

    /// A message from segment ranges whose first one must be MSH.
    pub(crate) fn from_segments(
        input: &'a [u8],
        segments: Vec<Range<usize>>,
    ) -> Result<Message<'a>, ParseError> {
        let Some(first) = segments.first().cloned() else {
            return Err(ParseError::new(ParseErrorKind::Empty, 0..input.len()));
        };
        let head = &input[first.clone()];
        if !head.starts_with(b"MSH") {
            let mut e = ParseError::new(
                ParseErrorKind::NoHeader,
                first.start..first.start + head.len().min(3),
            );
            e.segment = Some(0);
            return Err(e);
        }
        let (delimiters, _) = Delimiters::from_header(head, first.start)?;
        Ok(Message {
            input,
            segments,
            delimiters,
        })
    }

    /// The delimiters declared in MSH-1/MSH-2.
    pub fn delimiters(&self) -> Delimiters {
        self.delimiters
    }

    /// The bytes from the start of MSH to the end of the last segment.
    pub fn raw(&self) -> &'a [u8] {
        let (Some(a), Some(b)) = (self.segments.first(), self.segments.last()) else {
            return &[];
        };
        &self.input[a.start..b.end]
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Never true for a parsed message (it has at least MSH).
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// All segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'a>> + '_ {
        (0..self.segments.len()).filter_map(move |i| self.segment_at(i))
    }

    /// The segment at position `i` (0 = MSH).
    pub fn segment_at(&self, i: usize) -> Option<Segment<'a>> {
        let r = self.segments.get(i)?;
        Some(Segment {
            raw: &self.input[r.clone()],
            offset: r.start,
            delimiters: self.delimiters,
            index: i,
        })
    }

    /// The `n`-th (1-based) segment with this id, e.g. `segment("OBX", 3)`.
    pub fn segment(&self, id: &str, n: usize) -> Option<Segment<'a>> {
        self.segments()
            .filter(|s| s.id() == id.as_bytes())
            .nth(n.checked_sub(1)?)
    }

    /// MSH-9 (message type) raw, e.g. `ORU^R01^ORU_R01`.
    pub fn message_type(&self) -> Option<&'a [u8]> {
        self.segment_at(0)?.field(9).map(|f| f.raw())
    }

    /// Checks what every receiver needs from MSH to interpret a message: MSH-9 with a message
    /// type and trigger event, and an HL7 v2 version in MSH-12 (2.1 to 2.9.x, or a local variant such as `2.3.z`). Source: HL7
    /// v2.5.1 Chapter 2, MSH segment definition (2.15.9). (MSH-10, needed to acknowledge, is
    /// the MLLP receiver's check.)
    pub fn validate_header(&self) -> Result<(), ParseError> {
        let Some(msh) = self.segment_at(0) else {
            return Err(ParseError::new(ParseErrorKind::Empty, 0..0));
        };
        let fail = |field: usize, what: String| {
            let mut e = ParseError::new(ParseErrorKind::Header(what), msh.span());
            e.segment = Some(0);
            e.field = Some(field);
            e
        };
        let token =
            |b: &[u8]| !b.is_empty() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
        let t = msh.field(9).and_then(|f| f.repetition(1));
        let (ty, ev) = (
            t.and_then(|r| r.component(1)),
            t.and_then(|r| r.component(2)),
        );
        let ok_type = ty.is_some_and(|c| token(c.raw()) && c.raw().len() == 3);
        let ok_event = ev.is_some_and(|c| token(c.raw())) || ty.is_some_and(|c| c.raw() == b"ACK");
        if !ok_type || !ok_event {
            let raw = msh
                .field(9)
                .map(|f| String::from_utf8_lossy(f.raw()).into_owned())
                .unwrap_or_default();
            return Err(fail(
                9,
                format!("MSH-9 message type {raw:?} is not TYPE^EVENT (e.g. ORU^R01)"),
            ));
        }
        let version = msh
            .field(12)
            .and_then(|f| f.repetition(1))
            .and_then(|r| r.component(1))
            .map(|c| c.raw())
            .unwrap_or_default();
        let known = version.len() >= 3
            && version.starts_with(b"2.")
            && version[2].is_ascii_digit()
            && version[2] != b'0'
            && {
                // `2.5.1`, and local variants marked by a final letter part (`2.3.z`, used by
                // state ELR feeds).
                let parts: Vec<&[u8]> = version[2..].split(|c| *c == b'.').collect();
                let last = parts.len() - 1;
                parts.iter().enumerate().all(|(i, p)| {
                    (!p.is_empty() && p.iter().all(u8::is_ascii_digit))
                        || (i == last && i > 0 && p.len() == 1 && p[0].is_ascii_alphabetic())
                })
            };
        if !known {
            return Err(fail(
                12,
                format!(
                    "MSH-12 version {:?} is not an HL7 v2 version (2.1 to 2.9)",
                    String::from_utf8_lossy(version)
                ),
            ));
        }
        Ok(())
    }

    /// MSH-10 (message control id) raw.
    pub fn control_id(&self) -> Option<&'a [u8]> {
        self.segment_at(0)?.field(10).map(|f| f.raw())
    }
}

/// One segment.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    raw: &'a [u8],
    offset: usize,
    delimiters: Delimiters,
    index: usize,
}

impl<'a> Segment<'a> {
    /// The segment id (the bytes before the first field separator).
    pub fn id(&self) -> &'a [u8] {
        let end = self
            .raw
            .iter()
            .position(|&b| b == self.delimiters.field)
            .unwrap_or(self.raw.len());
        &self.raw[..end]
    }

    /// The segment's bytes, without terminator.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Where it lies in the input.
    pub fn span(&self) -> Range<usize> {
        self.offset..self.offset + self.raw.len()
    }

    /// Position in the message (0 = MSH).
    pub fn index(&self) -> usize {
        self.index
    }

    fn is_header(&self) -> bool {
        is_header_id(self.raw) && self.raw[3] == self.delimiters.field
    }

    /// Fields from 0 (the id). For MSH/FHS/BHS, field 1 is the field separator and field 2 the
    /// encoding characters, as HL7 numbers them.
    pub fn fields(&self) -> impl Iterator<Item = Field<'a>> + use<'a> {
        let d = self.delimiters;
        let raw = self.raw;
        let literal = |raw: &'a [u8]| Field {
            raw,
            delimiters: d,
            literal: true,
        };
        // Header segments: id, MSH-1 (the separator itself), MSH-2 (unsplit), then the rest.
        // Others: the id, then the rest. `rest` is None when nothing follows.
        let (lead, rest): ([Option<Field<'a>>; 3], Option<&'a [u8]>) = if self.is_header() {
            // MSH-2 runs to the next field separator (its written length can differ from the
            // number of delimiters, e.g. `^~\\&`).
            let enc_end = raw[4..]
                .iter()
                .position(|&b| b == d.field)
                .map_or(raw.len(), |p| p + 4);
            let lead = [
                Some(literal(&raw[..3])),
                Some(literal(&raw[3..4])),
                Some(literal(&raw[4..enc_end])),
            ];
            (lead, raw.get(enc_end + 1..))
        } else {
            // Field 0 of other segments is an ordinary field (a well-formed id has no delimiter).
            let id_end = raw.iter().position(|&b| b == d.field).unwrap_or(raw.len());
            (
                [
                    Some(Field {
                        raw: &raw[..id_end],
                        delimiters: d,
                        literal: false,
                    }),
                    None,
                    None,
                ],
                raw.get(id_end + 1..),
            )
        };
        let tail = rest
            .into_iter()
            .flat_map(move |r| r.split(move |&b| b == d.field))
            .map(move |f| Field {
                raw: f,
                delimiters: d,
                literal: false,
            });
        lead.into_iter().flatten().chain(tail)
    }

    /// Field `n` in HL7 numbering (0 = segment id; for MSH, 1 = field separator).
    pub fn field(&self, n: usize) -> Option<Field<'a>> {
        self.fields().nth(n)
    }
}

/// One field: zero or more repetitions.
#[derive(Clone, Copy, Debug)]
pub struct Field<'a> {
    raw: &'a [u8],
    delimiters: Delimiters,
    /// MSH-1 and MSH-2 (and the segment id) are never split.
    literal: bool,
}

impl<'a> Field<'a> {
    /// Raw (escaped) bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The HL7 null value `""` (delete the value), as opposed to an empty field.
    pub fn is_null(&self) -> bool {
        self.raw == b"\"\""
    }

    /// Repetitions (one for a field without a repetition separator, even when empty).
    pub fn repetitions(&self) -> impl Iterator<Item = Repetition<'a>> + use<'a> {
        let d = self.delimiters;
        let literal = self.literal;
        let sep = if literal { None } else { Some(d.repetition) };
        split(self.raw, sep).map(move |r| Repetition {
            raw: r,
            delimiters: d,
            literal,
        })
    }

    /// Repetition `n`, 1-based.
    pub fn repetition(&self, n: usize) -> Option<Repetition<'a>> {
        self.repetitions().nth(n.checked_sub(1)?)
    }

    /// The escape-decoded value of the whole field (delimiters inside stay as they are).
    pub fn decoded(&self) -> Cow<'a, [u8]> {
        if self.literal {
            Cow::Borrowed(self.raw)
        } else {
            escape::decode(self.raw, &self.delimiters)
        }
    }
}

/// One repetition of a field.
#[derive(Clone, Copy, Debug)]
pub struct Repetition<'a> {
    raw: &'a [u8],
    delimiters: Delimiters,
    literal: bool,
}

impl<'a> Repetition<'a> {
    /// Raw bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Components (at least one).
    pub fn components(&self) -> impl Iterator<Item = Component<'a>> + use<'a> {
        let d = self.delimiters;
        let sep = if self.literal {
            None
        } else {
            Some(d.component)
        };
        let literal = self.literal;
        split(self.raw, sep).map(move |c| Component {
            raw: c,
            delimiters: d,
            literal,
        })
    }

    /// Component `n`, 1-based.
    pub fn component(&self, n: usize) -> Option<Component<'a>> {
        self.components().nth(n.checked_sub(1)?)
    }
}

/// One component.
#[derive(Clone, Copy, Debug)]
pub struct Component<'a> {
    raw: &'a [u8],
    delimiters: Delimiters,
    literal: bool,
}

impl<'a> Component<'a> {
    /// Raw bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Subcomponents (at least one), raw.
    pub fn subcomponents(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let sep = if self.literal {
            None
        } else {
            self.delimiters.subcomponent
        };
        split(self.raw, sep)
    }

    /// Subcomponent `n`, 1-based, raw.
    pub fn subcomponent(&self, n: usize) -> Option<&'a [u8]> {
        self.subcomponents().nth(n.checked_sub(1)?)
    }

    /// The escape-decoded value.
    pub fn decoded(&self) -> Cow<'a, [u8]> {
        escape::decode(self.raw, &self.delimiters)
    }
}

/// Splits on `sep`, or yields the whole slice when there is none. An empty slice yields one
/// empty piece, as an empty field is still one (empty) value.
fn split<'a>(raw: &'a [u8], sep: Option<u8>) -> impl Iterator<Item = &'a [u8]> + 'a {
    let (whole, sep) = match sep {
        Some(s) => (None, Some(s)),
        None => (Some(raw), None),
    };
    whole.into_iter().chain(
        sep.into_iter()
            .flat_map(move |s| raw.split(move |&b| b == s)),
    )
}
