//! MLLP framing (HL7 v2 Transport Specification, MLLP release 2: a frame is `0x0B`, the
//! message, `0x1C 0x0D`). The decoder enforces a maximum frame size, skips junk before a start
//! byte (and reports how much), returns every complete frame in a read, and completes a frame at
//! its end block: the trailing `0x0D` is expected but not waited for (a sender that omits it and
//! waits for the ACK is served; a `0x0D` arriving later is consumed, not counted as junk).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Start block.
pub const SB: u8 = 0x0B;
/// End block.
pub const EB: u8 = 0x1C;
/// Carriage return after the end block.
pub const CR: u8 = 0x0D;

/// Framing errors.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A frame grew past the limit before its end block arrived.
    #[error(
        "MLLP frame exceeds {max} bytes without an end block; raise max_frame_bytes or fix the sender"
    )]
    FrameTooLarge {
        /// The limit.
        max: usize,
    },
    /// The connection failed.
    #[error("MLLP connection: {0}")]
    Io(#[from] std::io::Error),
}

/// A decoded frame: the message bytes, and how many junk bytes preceded its start block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message, verbatim.
    pub payload: Bytes,
    /// Bytes skipped before `0x0B`.
    pub skipped: usize,
}

/// The codec. `max_frame_bytes` bounds the buffered bytes of one frame.
#[derive(Debug, Clone)]
pub struct MllpCodec {
    max_frame_bytes: usize,
    skipped: usize,
    /// The last frame ended at the buffer's end: a `0x0D` first in the next bytes is its trailer.
    expect_cr: bool,
}

impl MllpCodec {
    /// A codec with a frame limit.
    pub fn new(max_frame_bytes: usize) -> Self {
        MllpCodec {
            max_frame_bytes,
            skipped: 0,
            expect_cr: false,
        }
    }
}

impl Decoder for MllpCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if self.expect_cr && !buf.is_empty() {
            self.expect_cr = false;
            if buf[0] == CR {
                buf.advance(1);
            }
        }
        // Resync: drop everything before the first start byte.
        match buf.iter().position(|&b| b == SB) {
            Some(0) => {}
            Some(n) => {
                self.skipped += n;
                buf.advance(n);
            }
            None => {
                self.skipped += buf.len();
                buf.clear();
                return Ok(None);
            }
        }
        // Find the end block after the start byte.
        let Some(end) = buf[1..].iter().position(|&b| b == EB).map(|p| p + 1) else {
            if buf.len() > self.max_frame_bytes + 1 {
                return Err(CodecError::FrameTooLarge {
                    max: self.max_frame_bytes,
                });
            }
            return Ok(None);
        };
        if end - 1 > self.max_frame_bytes {
            return Err(CodecError::FrameTooLarge {
                max: self.max_frame_bytes,
            });
        }
        // A start byte inside the frame means the previous frame was cut off: resync there.
        if let Some(restart) = buf[1..end].iter().rposition(|&b| b == SB).map(|p| p + 1) {
            self.skipped += restart;
            buf.advance(restart);
            return self.decode(buf);
        }
        // The frame ends at the end block; take its CR if it is here, else expect it next.
        let trailer = match buf.get(end + 1) {
            Some(&CR) => 2,
            Some(_) => 1, // lenient: end block without its CR
            None => {
                self.expect_cr = true;
                1
            }
        };
        let mut frame = buf.split_to(end + trailer);
        frame.advance(1);
        frame.truncate(end - 1);
        let skipped = std::mem::take(&mut self.skipped);
        Ok(Some(Frame {
            payload: frame.freeze(),
            skipped,
        }))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        // At EOF an end block without its CR still ends the frame.
        if let Some(f) = self.decode(buf)? {
            return Ok(Some(f));
        }
        if buf.len() >= 2 && buf[0] == SB && buf[buf.len() - 1] == EB {
            let mut frame = buf.split_to(buf.len());
            frame.advance(1);
            frame.truncate(frame.len() - 1);
            return Ok(Some(Frame {
                payload: frame.freeze(),
                skipped: std::mem::take(&mut self.skipped),
            }));
        }
        Ok(None)
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for MllpCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: T, buf: &mut BytesMut) -> Result<(), CodecError> {
        let msg = msg.as_ref();
        buf.reserve(msg.len() + 3);
        buf.put_u8(SB);
        buf.put_slice(msg);
        buf.put_u8(EB);
        buf.put_u8(CR);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(input: &[u8], max: usize) -> Result<Vec<Frame>, CodecError> {
        let mut c = MllpCodec::new(max);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(f) = c.decode(&mut buf)? {
            out.push(f);
        }
        if let Some(f) = c.decode_eof(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn several_frames_in_one_read_and_junk_before_a_start() {
        let got = frames(
            b"junk\x0bMSH|1\x1c\x0d\x0bMSH|2\x1c\x0d\r\n\x0bMSH|3\x1c\x0d",
            100,
        )
        .unwrap();
        let p: Vec<&[u8]> = got.iter().map(|f| &f.payload[..]).collect();
        assert_eq!(p, [&b"MSH|1"[..], b"MSH|2", b"MSH|3"]);
        assert_eq!(got.iter().map(|f| f.skipped).collect::<Vec<_>>(), [4, 0, 2]);
    }

    #[test]
    fn a_cut_off_frame_is_dropped_at_the_next_start() {
        let got = frames(b"\x0bMSH|half\x0bMSH|whole\x1c\x0d", 100).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].payload[..], b"MSH|whole");
        assert_eq!(got[0].skipped, 9);
    }

    #[test]
    fn frames_over_the_limit_are_refused() {
        assert!(matches!(
            frames(b"\x0b0123456789\x1c\x0d", 5),
            Err(CodecError::FrameTooLarge { max: 5 })
        ));
        assert!(matches!(
            frames(b"\x0b0123456789", 5),
            Err(CodecError::FrameTooLarge { .. })
        ));
        assert_eq!(frames(b"\x0b01234\x1c\x0d", 5).unwrap().len(), 1);
    }

    #[test]
    fn a_frame_completes_at_its_end_block_and_a_late_cr_is_not_junk() {
        let mut c = MllpCodec::new(100);
        let mut buf = BytesMut::from(&b"\x0bMSH|1\x1c"[..]);
        let f = c
            .decode(&mut buf)
            .unwrap()
            .expect("frame without waiting for CR");
        assert_eq!(&f.payload[..], b"MSH|1");
        buf.extend_from_slice(b"\x0d\x0bMSH|2\x1c\x0d");
        let f = c.decode(&mut buf).unwrap().unwrap();
        assert_eq!((&f.payload[..], f.skipped), (&b"MSH|2"[..], 0));
    }

    #[test]
    fn end_block_without_cr_is_tolerated() {
        let got = frames(b"\x0bMSH|1\x1c\x0bMSH|2\x1c", 100).unwrap();
        assert_eq!(
            got.iter().map(|f| f.payload.to_vec()).collect::<Vec<_>>(),
            [b"MSH|1".to_vec(), b"MSH|2".to_vec()]
        );
    }

    proptest! {
        #[test]
        fn any_split_of_any_frames_decodes_the_same(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no framing bytes", |b| *b != SB && *b != EB), 1..50), 1..6), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
            let mut wire = BytesMut::new();
            let mut c = MllpCodec::new(1000);
            for m in &msgs { c.encode(m.as_slice(), &mut wire).unwrap(); }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.sort();
            let mut dec = MllpCodec::new(1000);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain(std::iter::once(wire.len())) {
                buf.extend_from_slice(&wire[last..p]);
                last = p;
                while let Some(f) = dec.decode(&mut buf).unwrap() { got.push(f.payload.to_vec()); }
            }
            prop_assert_eq!(got, msgs);
        }
    }
}
