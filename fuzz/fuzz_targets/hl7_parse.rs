//! Any bytes: parsing, walking every value, decoding escapes, header checks and strict
//! validation must end without panicking (and, by libFuzzer's timeouts, without hanging).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = aorta_hl7::parse_stream(data) {
        for m in &batch.messages {
            let _ = m.validate_header();
            let _ = aorta_hl7::validate::validate(m);
            for s in m.segments() {
                for f in s.fields() {
                    let _ = f.decoded();
                    for r in f.repetitions() {
                        for c in r.components() {
                            let _ = c.decoded();
                            for x in c.subcomponents() {
                                let _ = aorta_hl7::escape::decode(x, &m.delimiters());
                            }
                        }
                    }
                }
            }
            let _ = aorta_hl7::ack::build(m, aorta_hl7::ack::AckCode::Accept, "F", "20260101", None);
        }
    }
    let _ = aorta_hl7::parse(data);
});
