//! Encode → parse round trips for random messages with random delimiters, and the parser's
//! handling of odd but real inputs.

use aorta_hl7::{Delimiters, Path, escape, parse, parse_stream};
use proptest::prelude::*;

/// Values as a sender means them (decoded): segments → fields → repetitions → components →
/// subcomponents. Field 0 is the segment id.
type Segment = (String, Vec<Vec<Vec<Vec<Vec<u8>>>>>);

fn delimiters() -> impl Strategy<Value = Delimiters> {
    // Six distinct usable characters: field, component, repetition, escape, subcomponent,
    // truncation (used only sometimes, as in v2.7+).
    proptest::sample::subsequence(b"|^~\\&#*$%!@+?:;=".to_vec(), 6)
        .prop_shuffle()
        .prop_flat_map(|c| (Just(c), any::<bool>()))
        .prop_map(|(c, trunc)| Delimiters {
            field: c[0],
            component: c[1],
            repetition: c[2],
            escape: Some(c[3]),
            subcomponent: Some(c[4]),
            truncation: trunc.then_some(c[5]),
        })
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    // Any printable ASCII (delimiters included: they must be escaped), some UTF-8, CR/LF.
    proptest::collection::vec(
        prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\r'), 1 => Just(b'\n'), 1 => Just(0xC3u8)],
        0..12,
    )
    .prop_map(|mut v| {
        // Keep 0xC3 as the first byte of a valid 2-byte UTF-8 sequence.
        let mut i = 0;
        while i < v.len() {
            if v[i] == 0xC3 {
                v.insert(i + 1, 0xA9);
                i += 1;
            }
            i += 1;
        }
        v
    })
}

fn segment() -> impl Strategy<Value = Segment> {
    let id = "[A-Z][A-Z0-9]{2}".prop_filter("not a header", |s| {
        !matches!(s.as_str(), "MSH" | "FHS" | "BHS" | "BTS" | "FTS")
    });
    let field = proptest::collection::vec(
        proptest::collection::vec(proptest::collection::vec(value(), 1..3), 1..4),
        1..3,
    );
    (id, proptest::collection::vec(field, 0..6))
}

fn encode(d: &Delimiters, msh: &[Vec<u8>], segs: &[Segment]) -> Vec<u8> {
    let mut out = b"MSH".to_vec();
    out.push(d.field);
    out.extend(d.encoding_characters());
    for f in msh {
        out.push(d.field);
        out.extend(escape::encode(f, d));
    }
    for (id, fields) in segs {
        out.push(b'\r');
        out.extend(id.as_bytes());
        for reps in fields {
            out.push(d.field);
            let reps: Vec<Vec<u8>> = reps
                .iter()
                .map(|comps| {
                    let comps: Vec<Vec<u8>> = comps
                        .iter()
                        .map(|subs| {
                            subs.iter()
                                .map(|s| escape::encode(s, d))
                                .collect::<Vec<_>>()
                                .join(&d.subcomponent.unwrap())
                        })
                        .collect();
                    comps.join(&d.component)
                })
                .collect();
            out.extend(reps.join(&d.repetition));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn every_value_survives_encode_then_parse(d in delimiters(), msh in proptest::collection::vec(value(), 9..12), segs in proptest::collection::vec(segment(), 0..6), crlf in 0u8..3) {
        let mut msh = msh;
        msh[5] = b"ADT^A01".iter().map(|&b| if b == b'^' { d.component } else { b }).collect(); // MSH-9, raw
        let mut bytes = encode(&d, &msh, &segs);
        // Any terminator style.
        if crlf > 0 {
            let term: &[u8] = if crlf == 1 { b"\n" } else { b"\r\n" };
            let mut v = Vec::new();
            for &b in &bytes { if b == b'\r' { v.extend_from_slice(term) } else { v.push(b) } }
            bytes = v;
        }
        let m = parse(&bytes).unwrap();
        prop_assert_eq!(m.delimiters(), d);
        prop_assert_eq!(m.len(), 1 + segs.len());
        for (i, (id, fields)) in segs.iter().enumerate() {
            let s = m.segment_at(i + 1).unwrap();
            prop_assert_eq!(s.id(), id.as_bytes());
            prop_assert_eq!(s.fields().count(), 1 + fields.len());
            for (fi, reps) in fields.iter().enumerate() {
                let f = s.field(fi + 1).unwrap();
                let got: Vec<Vec<Vec<Vec<u8>>>> = f.repetitions().map(|r| r.components().map(|c| c.subcomponents().map(|x| escape::decode(x, &d).into_owned()).collect()).collect()).collect();
                prop_assert_eq!(&got, reps);
            }
        }
        // MSH fields after MSH-2 come back decoded, MSH-9 raw.
        let msh_seg = m.segment_at(0).unwrap();
        for (i, v) in msh.iter().enumerate() {
            if i == 5 { continue; }
            prop_assert_eq!(&*msh_seg.field(i + 3).unwrap().decoded(), &v[..]);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), prefix in prop_oneof![Just(&b""[..]), Just(&b"MSH|^~\\&|"[..]), Just(&b"\xEF\xBB\xBFMSH|"[..])]) {
        let mut input = prefix.to_vec();
        input.extend(bytes);
        if let Ok(b) = parse_stream(&input) {
            for m in &b.messages {
                let _ = m.validate_header();
                for s in m.segments() { for f in s.fields() { for r in f.repetitions() { for c in r.components() { let _ = c.decoded(); } } } }
            }
        }
    }
}

#[test]
fn odd_real_world_delimiters_and_framing() {
    // v2.7 truncation character, custom separators, `*` as component separator.
    for (msg, comp) in [
        (&b"MSH|^~\\&#|A|B\rPID|1||X^Y"[..], b'^'),
        (&b"MSH|*~\\&|A|B\rPID|1||X*Y"[..], b'*'),
        (&b"MSH$%~\\&$A$B\rPID$1$$X%Y"[..], b'%'),
    ] {
        let m = parse(msg).unwrap();
        assert_eq!(m.delimiters().component, comp);
        let pid3 = m.segment("PID", 1).unwrap().field(3).unwrap();
        let comps: Vec<&[u8]> = pid3
            .repetition(1)
            .unwrap()
            .components()
            .map(|c| c.raw())
            .collect();
        assert_eq!(comps, [&b"X"[..], b"Y"]);
    }
    // BOM, MLLP framing, mixed terminators, blank lines.
    let framed = b"\x0B\xEF\xBB\xBFMSH|^~\\&|A\r\nPID|1\n\nOBX|1\rOBX|2\r\x1C\r";
    let m = parse(framed).unwrap();
    let ids: Vec<&[u8]> = m.segments().map(|s| s.id()).collect();
    assert_eq!(ids, [&b"MSH"[..], b"PID", b"OBX", b"OBX"]);
    // Legacy three encoding characters (no subcomponent separator).
    let m = parse(b"MSH|^~\\|A\rPID|1||a&b^c").unwrap();
    let c: Vec<&[u8]> = m
        .segment("PID", 1)
        .unwrap()
        .field(3)
        .unwrap()
        .repetition(1)
        .unwrap()
        .component(1)
        .unwrap()
        .subcomponents()
        .collect();
    assert_eq!(c, [&b"a&b"[..]]);
    // Errors name where: duplicate encoding characters (hl7apy's case), no MSH, empty.
    let e = parse(b"MSH|^&&^|A").unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
    assert_eq!(e.span, 6..7);
    assert!(
        parse(b"PID|1")
            .unwrap_err()
            .to_string()
            .contains("segment received before message header")
    );
    assert!(parse(b"\r\n  ").is_err());
}

#[test]
fn terser_paths_address_values() {
    let m = parse(b"MSH|^~\\&|LAB|H|||20260101||ORU^R01|42|P|2.5.1\rPID|1||111^^^H^MR~222^^^SSA^SS&x&y\rOBX|1|NM|a\rOBX|2|NM|b\rOBX|3|NM|8867-4^Heart rate^LN||72").unwrap();
    let get = |p: &str| {
        p.parse::<Path>()
            .unwrap()
            .get(&m)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(get("MSH-9.1").as_deref(), Some("ORU"));
    assert_eq!(get("MSH-10").as_deref(), Some("42"));
    assert_eq!(
        get("PID-3").as_deref(),
        Some("111^^^H^MR"),
        "first repetition"
    );
    assert_eq!(get("PID-3[2].1").as_deref(), Some("222"));
    assert_eq!(get("PID-3[2].5.2").as_deref(), Some("x"));
    assert_eq!(get("OBX[3]-5").as_deref(), Some("72"));
    assert_eq!(get("OBX[3]-3.2").as_deref(), Some("Heart rate"));
    assert_eq!(get("OBX[4]-5"), None);
    assert_eq!(
        "OBX[3]-3[2].1.1".parse::<Path>().unwrap().to_string(),
        "OBX[3]-3[2].1.1"
    );
    for bad in [
        "PID",
        "PID-",
        "pid-3",
        "PID-3.0",
        "PID-3[0]",
        "PID-3.1.2.3",
        "PID-3x",
    ] {
        let e = bad.parse::<Path>().unwrap_err();
        assert!(e.to_string().contains("examples"), "{bad}: {e}");
    }
    assert!(m.validate_header().is_ok());
    let bad = parse(b"MSH|^~\\&|A|B|C|D|T||ORU|1|P|2.5").unwrap();
    assert!(
        bad.validate_header()
            .unwrap_err()
            .to_string()
            .contains("MSH-9")
    );
    for ok in ["2.3.z", "2.5.1", "2.9"] {
        let m = format!("MSH|^~\\&|A|B|C|D|T||ORU^R01|1|P|{ok}");
        assert!(
            parse(m.as_bytes()).unwrap().validate_header().is_ok(),
            "{ok}"
        );
    }
    for bad in ["2.", "2.5.", "2.z", "2.5.zz", "2.5.z.1", "2..1"] {
        let m = format!("MSH|^~\\&|A|B|C|D|T||ORU^R01|1|P|{bad}");
        assert!(
            parse(m.as_bytes()).unwrap().validate_header().is_err(),
            "{bad}"
        );
    }
    let bad = parse(b"MSH|^~\\&|A|B|C|D|T||ORU^R01|1|P|3.0").unwrap();
    assert!(
        bad.validate_header()
            .unwrap_err()
            .to_string()
            .contains("MSH-12")
    );
}
