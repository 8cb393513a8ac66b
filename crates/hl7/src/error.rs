//! Parse errors: what is wrong and exactly where.

use std::ops::Range;

/// What kind of problem was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// Nothing but whitespace or framing bytes.
    #[error("the input holds no HL7 message")]
    Empty,
    /// The first segment is not MSH (or FHS/BHS for a batch).
    #[error("segment received before message header: a message must start with MSH")]
    NoHeader,
    /// The header segment is too short to hold its delimiters.
    #[error("the {0} segment is too short to hold the field separator and encoding characters")]
    HeaderTooShort(String),
    /// A delimiter is unusable (alphanumeric, a line break, or the same as another).
    #[error("invalid encoding characters: {0}")]
    BadDelimiters(String),
    /// A segment id is not 3 upper-case letters or digits.
    #[error("invalid segment id {0:?}: segment ids are 3 characters A-Z or 0-9")]
    BadSegmentId(String),
    /// A header field every receiver needs is missing or malformed.
    #[error("{0}")]
    Header(String),
    /// Batch structure is wrong (e.g. two FHS).
    #[error("batch structure: {0}")]
    Batch(String),
}

/// A parse error with its location in the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (bytes {}..{}{}{})", span.start, span.end,
    segment.map(|s| format!(", segment {}", s + 1)).unwrap_or_default(),
    field.map(|f| format!(", field {f}")).unwrap_or_default())]
pub struct ParseError {
    /// What is wrong.
    pub kind: ParseErrorKind,
    /// Byte range in the input.
    pub span: Range<usize>,
    /// Index of the segment in the message (0-based), when known.
    pub segment: Option<usize>,
    /// Field number (HL7 numbering), when known.
    pub field: Option<usize>,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, span: Range<usize>) -> Self {
        ParseError {
            kind,
            span,
            segment: None,
            field: None,
        }
    }
}
