//! # aorta-hl7 — HL7 v2 messages (ER7 encoding)
//!
//! Owns the bytes-to-structure side of HL7 v2: finding messages in a stream, their delimiters,
//! segments, fields, repetitions, components and subcomponents; decoding escape sequences;
//! addressing values by terser-like paths; building ACK/NAK replies.
//!
//! | module | what it owns |
//! |---|---|
//! | [`dtm`] | HL7 DTM timestamps ↔ Unix milliseconds |
//! | [`delimiters`] | MSH-1/MSH-2 (or FHS/BHS) delimiter detection and validation |
//! | [`message`] | [`Message`], [`Segment`], [`Field`] … borrowed views, located lazily |
//! | [`stream`] | splitting a file or stream into messages; FHS/BHS/BTS/FTS batches |
//! | [`escape`] | `\F\ \S\ \T\ \R\ \E\ \Xhh\ \.br\` decoding and encoding |
//! | [`path`] | terser-like paths: `PID-3[2].4.2`, `OBX[3]-5` |
//! | [`names`] | segment and field names (v2.5.1) for viewers and messages |
//! | [`ack`] | ACK/NAK (MSA, ERR with HL7 table 0357 codes) |
//! | [`structure`] | message-structure grammars (`ORU_R01`, `ADT_A01` …) and checking against them |
//! | [`validate`] | strict checks (every problem with its location), MSH-18 character sets |
//! | [`error`] | [`ParseError`]: kind, byte span, segment and field |
//!
//! ## Invariants
//! * Zero-copy: every view borrows the input; nothing is allocated to locate a value. Segment
//!   boundaries are found in one pass; fields and below are split only when asked for.
//! * Values are raw (escaped) until decoded with [`escape::decode`] or the `decoded` accessors.
//! * Never panics on any input: every index is checked; malformed input is a [`ParseError`].
//!
//! ## Must not depend on
//! I/O, async runtimes, the log, or FHIR: bytes in, values out.

pub mod ack;
pub mod delimiters;
pub mod dtm;
pub mod error;
pub mod escape;
pub mod message;
pub mod names;
pub mod path;
pub mod samples;
pub mod stream;
pub mod structure;
pub mod validate;

pub use delimiters::Delimiters;
pub use error::{ParseError, ParseErrorKind};
pub use message::{Component, Field, Message, Repetition, Segment};
pub use path::Path;
pub use stream::{Batch, parse_stream};

/// Parses one message (lenient: a UTF-8 BOM, MLLP framing bytes, leading whitespace and any mix
/// of `\r`, `\n`, `\r\n` segment terminators are accepted).
pub fn parse(input: &[u8]) -> Result<Message<'_>, ParseError> {
    Message::parse(input)
}
