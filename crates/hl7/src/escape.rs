//! HL7 v2 escape sequences (HL7 v2.5.1 Chapter 2, section 2.7 "Use of escape sequences in text
//! fields").
//!
//! Decoding rules (documented, and tested against HAPI's escaped/unescaped OBX pair):
//! * `\F\ \S\ \T\ \R\ \E\` → the message's field, component, subcomponent, repetition and escape
//!   characters (whatever MSH-1/MSH-2 declare).
//! * `\Xhh…\` → the bytes given in hex (an odd or invalid hex string is kept verbatim).
//! * `\.br\` → a line feed.
//! * Other formatting and character-set escapes (`\H\ \N\ \.sp\ \.in\ \Cxxyy\ \Mxxyyzz\ \Zxxx\`
//!   …) are kept verbatim: their meaning depends on the receiving display, not on the data.
//! * An escape character without a closing one is kept verbatim (lenient).

use crate::delimiters::Delimiters;
use std::borrow::Cow;

fn hex(s: &[u8]) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|p| {
            let h = (p[0] as char).to_digit(16)?;
            let l = (p[1] as char).to_digit(16)?;
            Some((h * 16 + l) as u8)
        })
        .collect()
}

/// Decodes the escape sequences of a raw value. Borrows when there is nothing to decode.
pub fn decode<'a>(raw: &'a [u8], d: &Delimiters) -> Cow<'a, [u8]> {
    let Some(esc) = d.escape else {
        return Cow::Borrowed(raw);
    };
    if !raw.contains(&esc) {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != esc {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(len) = raw[i + 1..].iter().position(|&c| c == esc) else {
            out.extend_from_slice(&raw[i..]);
            break;
        };
        let seq = &raw[i + 1..i + 1 + len];
        let whole = &raw[i..i + 2 + len];
        match seq {
            b"F" => out.push(d.field),
            b"S" => out.push(d.component),
            b"T" => out.extend(d.subcomponent.or(Some(b'&'))),
            b"R" => out.push(d.repetition),
            b"E" => out.push(esc),
            b".br" => out.push(b'\n'),
            [b'X', h @ ..] => match hex(h) {
                Some(bytes) => out.extend_from_slice(&bytes),
                None => out.extend_from_slice(whole),
            },
            _ => out.extend_from_slice(whole),
        }
        i += 2 + len;
    }
    Cow::Owned(out)
}

/// Escapes a value so it can be written into a field: delimiters become `\F\ \S\ \T\ \R\ \E\`,
/// and CR/LF become `\X0D\`/`\X0A\` so they cannot end a segment.
pub fn encode(value: &[u8], d: &Delimiters) -> Vec<u8> {
    let esc = d.escape.unwrap_or(b'\\');
    let mut out = Vec::with_capacity(value.len());
    let put = |out: &mut Vec<u8>, code: &[u8]| {
        out.push(esc);
        out.extend_from_slice(code);
        out.push(esc);
    };
    for &b in value {
        if b == esc {
            put(&mut out, b"E");
        } else if b == d.field {
            put(&mut out, b"F");
        } else if b == d.component {
            put(&mut out, b"S");
        } else if Some(b) == d.subcomponent {
            put(&mut out, b"T");
        } else if b == d.repetition {
            put(&mut out, b"R");
        } else if b == b'\r' {
            put(&mut out, b"X0D");
        } else if b == b'\n' {
            put(&mut out, b"X0A");
        } else {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_escapes_follow_the_message_delimiters() {
        let d = Delimiters::default();
        assert_eq!(
            &*decode(br"Smith \T\ Sons \F\ \S\ \R\ \E\", &d),
            b"Smith & Sons | ^ ~ \\"
        );
        assert_eq!(
            &*decode(br"line1\.br\line2\X0D0A\end", &d),
            b"line1\nline2\r\nend"
        );
        assert_eq!(
            &*decode(br"\H\bold\N\ \Zcustom\", &d),
            br"\H\bold\N\ \Zcustom\"
        );
        assert_eq!(&*decode(br"\Xzz\ and \X1\", &d), br"\Xzz\ and \X1\");
        assert_eq!(&*decode(br"dangling \F", &d), br"dangling \F");
        assert!(matches!(decode(b"plain", &d), Cow::Borrowed(_)));
        // Non-ASCII text before an escape stays intact (a bug found in other parsers).
        assert_eq!(
            decode("Müller\\T\\Söhne".as_bytes(), &d).as_ref(),
            "Müller&Söhne".as_bytes()
        );
        let custom = Delimiters {
            field: b'#',
            component: b'!',
            repetition: b'$',
            escape: Some(b'?'),
            subcomponent: Some(b'%'),
            truncation: None,
        };
        assert_eq!(&*decode(b"a?F?b?S?c?E?", &custom), b"a#b!c?");
    }

    #[test]
    fn encode_then_decode_is_identity() {
        let d = Delimiters::default();
        let v = b"a|b^c~d\\e&f\rg\nh";
        assert_eq!(&*decode(&encode(v, &d), &d), v);
    }
}
