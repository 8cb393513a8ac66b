//! Any byte stream, cut into arbitrary chunks: the MLLP decoder never panics, never returns a
//! frame larger than its limit, and every frame it returns is a contiguous part of the input.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let chunk = usize::from(cut % 64) + 1;
    let mut codec = aorta_mllp::codec::MllpCodec::new(256);
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.payload.len() <= 256);
                    assert!(stream.windows(frame.payload.len().max(1)).any(|w| frame.payload.is_empty() || w == &frame.payload[..]));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
