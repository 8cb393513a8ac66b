//! Files and streams of messages, including HL7 batch files:
//! `[FHS [BHS] MSH… [BTS]] [FTS]`. Each MSH starts a new message; batch envelope segments are
//! kept aside; a segment before the first MSH that is not an envelope is an error.

use crate::error::{ParseError, ParseErrorKind};
use crate::message::{Message, segment_ranges, skip_noise};
use std::ops::Range;

/// What a file or stream held.
#[derive(Debug)]
pub struct Batch<'a> {
    /// The messages, in order.
    pub messages: Vec<Message<'a>>,
    /// Batch envelope segments (FHS, BHS, BTS, FTS) by id and raw bytes.
    pub envelope: Vec<(&'a [u8], &'a [u8])>,
}

/// Splits `input` into messages (lenient about BOM, MLLP bytes, blank lines and terminators).
pub fn parse_stream(input: &[u8]) -> Result<Batch<'_>, ParseError> {
    let from = skip_noise(input);
    let ranges = segment_ranges(input, from);
    if ranges.is_empty() {
        return Err(ParseError::new(ParseErrorKind::Empty, 0..input.len()));
    }
    let mut batch = Batch {
        messages: Vec::new(),
        envelope: Vec::new(),
    };
    let mut current: Vec<Range<usize>> = Vec::new();
    // A file holds at most one FHS (closed by FTS); batches (BHS … BTS) may repeat but not nest.
    let (mut file_open, mut batch_open) = (false, false);
    for r in ranges {
        let seg = &input[r.clone()];
        let id = &seg[..seg.len().min(3)];
        let nested = |what: &str| {
            ParseError::new(
                ParseErrorKind::Batch(format!("cannot have more than one {what}")),
                r.clone(),
            )
        };
        match id {
            b"MSH" => {
                if !current.is_empty() {
                    batch
                        .messages
                        .push(Message::from_segments(input, std::mem::take(&mut current))?);
                }
                current.push(r);
                continue;
            }
            b"FHS" if file_open => return Err(nested("FHS")),
            b"BHS" if batch_open => return Err(nested("BHS")),
            b"FHS" => file_open = true,
            b"BHS" => batch_open = true,
            b"BTS" => batch_open = false,
            b"FTS" => file_open = false,
            _ => {}
        }
        if matches!(id, b"FHS" | b"BHS" | b"BTS" | b"FTS") {
            if !current.is_empty() {
                batch
                    .messages
                    .push(Message::from_segments(input, std::mem::take(&mut current))?);
            }
            batch.envelope.push((id, seg));
            continue;
        }
        if current.is_empty() {
            return Err(ParseError::new(
                ParseErrorKind::NoHeader,
                r.start..r.start + id.len(),
            ));
        }
        current.push(r);
    }
    if !current.is_empty() {
        batch.messages.push(Message::from_segments(input, current)?);
    }
    Ok(batch)
}
