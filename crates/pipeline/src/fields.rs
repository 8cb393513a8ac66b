//! Reading a few top-level fields straight from a JSON payload, without building a
//! `serde_json::Value`.
//!
//! A step whose every expression is a plain top-level field (`patient_id`, `hr`) needs only
//! those fields' scalars. Decoding the whole record into a `Value` costs an allocation per key,
//! per string and (with `arbitrary_precision`, which the FHIR models need) per number; this
//! reader validates the whole document with serde_json, skips the fields nobody reads without
//! allocating, and hands the wanted ones back as [`Val`]s borrowed from the payload.
//!
//! Semantics equal a `Value` decode followed by field lookups: a missing field is `null`, a
//! repeated key keeps its last value, numbers are integers when they are JSON integers that
//! fit an `i64` and decimals otherwise, and nested objects or arrays come back as `Val::Json`.

use crate::expr::Val;
use serde::de::{DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FieldsError {
    /// Not JSON (the message is serde_json's, with line and column).
    #[error("value is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
}

/// The top-level fields one step reads, resolved once when the step is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSet {
    names: Vec<String>,
}

impl FieldSet {
    /// A set of distinct names (duplicates are dropped; [`FieldSet::slot`] finds each).
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> FieldSet {
        let mut out: Vec<String> = Vec::new();
        for n in names {
            let n = n.into();
            if !out.contains(&n) {
                out.push(n);
            }
        }
        FieldSet { names: out }
    }

    /// The slot of `name` in what [`FieldSet::read`] fills.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// `true` when no field is read.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Fills `out` (one slot per name, `null` where absent) from `raw`. `Ok(false)` when the
    /// payload is JSON but not an object (the caller then decodes it in full); an error when it
    /// is not JSON at all.
    pub fn read<'a>(&self, raw: &'a [u8], out: &mut Vec<Val<'a>>) -> Result<bool, FieldsError> {
        out.clear();
        out.resize(self.names.len(), Val::Null);
        if Scan::new(raw).object(&self.names, out).is_some() {
            return Ok(true);
        }
        // Anything the scanner does not take (escapes, non-ASCII text, nested values, bad
        // syntax) goes through serde_json, which also words the error.
        for v in out.iter_mut() {
            *v = Val::Null;
        }
        self.read_serde(raw, out)
    }

    /// [`FieldSet::read`] through serde_json (the general path).
    fn read_serde<'a>(&self, raw: &'a [u8], out: &mut [Val<'a>]) -> Result<bool, FieldsError> {
        let first = raw.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            // Not an object: let serde_json say whether it is JSON at all.
            serde_json::from_slice::<IgnoredAny>(raw)?;
            return Ok(false);
        }
        let mut de = serde_json::Deserializer::from_slice(raw);
        de.deserialize_map(Top {
            names: &self.names,
            out,
        })?;
        de.end()?;
        Ok(true)
    }
}

struct Top<'n, 'o, 'a> {
    names: &'n [String],
    out: &'o mut [Val<'a>],
}

/// The fast path: a strict scanner for the flat objects events usually are (ASCII strings
/// without escapes, numbers, literals; nested values only where nobody reads them is not
/// taken either). `None` means "not taken": the caller then reads the document with serde_json,
/// so the scanner never has to word an error, and must only never accept what JSON rejects.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn new(b: &'a [u8]) -> Scan<'a> {
        Scan { b, i: 0 }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// A string of printable ASCII without escapes, as the text between its quotes.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..0x20 | 0x80.. => return None,
                _ => self.i += 1,
            }
        }
        let s = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        self.i += 1;
        Some(s)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// A number by JSON's grammar, as an integer when it is one that fits an `i64`.
    fn number(&mut self) -> Option<Val<'a>> {
        let start = self.i;
        let _ = self.eat(b'-');
        let int_start = self.i;
        let n = self.digits();
        if n == 0 || (n > 1 && self.b[int_start] == b'0') {
            return None;
        }
        let mut integer = true;
        if self.eat(b'.').is_some() {
            integer = false;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            integer = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        Some(if integer && n <= 18 {
            let mut v: i64 = 0;
            for d in &self.b[int_start..self.i] {
                v = v * 10 + i64::from(d - b'0');
            }
            Val::Int(if start == int_start { v } else { -v })
        } else {
            match text.parse::<i64>() {
                Ok(i) if integer => Val::Int(i),
                _ => Val::Float(text.parse::<f64>().ok()?),
            }
        })
    }

    fn literal(&mut self, word: &[u8], v: Val<'a>) -> Option<Val<'a>> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| {
            self.i = end;
            v
        })
    }

    /// A scalar value (containers are not taken).
    fn scalar(&mut self) -> Option<Val<'a>> {
        match *self.b.get(self.i)? {
            b'"' => self.string().map(|s| Val::Str(Cow::Borrowed(s))),
            b't' => self.literal(b"true", Val::Bool(true)),
            b'f' => self.literal(b"false", Val::Bool(false)),
            b'n' => self.literal(b"null", Val::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// The whole document, an object of scalars, into the slots of `names`.
    fn object(&mut self, names: &[String], out: &mut [Val<'a>]) -> Option<()> {
        self.ws();
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_none() {
            loop {
                let key = self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
                let v = self.scalar()?;
                if let Some(slot) = names.iter().position(|n| n == key) {
                    out[slot] = v;
                }
                self.ws();
                if self.eat(b',').is_some() {
                    self.ws();
                    continue;
                }
                self.eat(b'}')?;
                break;
            }
        }
        self.ws();
        (self.i == self.b.len()).then_some(())
    }
}

impl<'de> Visitor<'de> for Top<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(slot) = map.next_key_seed(Key(self.names))? {
            match slot {
                Some(i) => {
                    let raw: &'de RawValue = map.next_value()?;
                    self.out[i] = scalar(raw.get()).map_err(serde::de::Error::custom)?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A key, as the slot it fills (if any); compared without allocating.
struct Key<'n>(&'n [String]);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|n| n == v))
    }
}

/// One field's value from its (already validated) JSON text.
fn scalar(text: &str) -> Result<Val<'_>, serde_json::Error> {
    Ok(match text.as_bytes().first() {
        Some(b'"') => {
            let inner = &text[1..text.len() - 1];
            if inner.contains('\\') {
                Val::Str(Cow::Owned(serde_json::from_str::<String>(text)?))
            } else {
                Val::Str(Cow::Borrowed(inner))
            }
        }
        Some(b't') => Val::Bool(true),
        Some(b'f') => Val::Bool(false),
        Some(b'n') => Val::Null,
        Some(b'{' | b'[') => Val::Json(Cow::Owned(serde_json::from_str(text)?)),
        _ => match text.parse::<i64>() {
            Ok(i) => Val::Int(i),
            // JSON number grammar is a subset of what `f64::from_str` accepts.
            Err(_) => Val::Float(text.parse::<f64>().unwrap_or(f64::NAN)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{Expr, Meta, equal};
    use proptest::prelude::*;
    use serde_json::Value;

    fn read<'a>(set: &FieldSet, raw: &'a str) -> Result<Option<Vec<Val<'a>>>, FieldsError> {
        let mut out = Vec::new();
        let r = set.read(raw.as_bytes(), &mut out)?.then_some(out);
        // The fast scanner and serde_json agree wherever the scanner takes a document.
        let mut fast = vec![Val::Null; set.len()];
        if Scan::new(raw.as_bytes())
            .object(&set.names, &mut fast)
            .is_some()
        {
            let mut slow = vec![Val::Null; set.len()];
            assert!(set.read_serde(raw.as_bytes(), &mut slow).unwrap(), "{raw}");
            for (a, b) in fast.iter().zip(&slow) {
                assert!(equal(a, b) && a.kind() == b.kind(), "{raw}: {a:?} vs {b:?}");
            }
        }
        Ok(r)
    }

    #[test]
    fn the_scanner_takes_flat_objects_and_nothing_else() {
        let set = FieldSet::new(["a", "b"]);
        let takes = |raw: &str| {
            let mut out = vec![Val::Null; 2];
            Scan::new(raw.as_bytes())
                .object(&set.names, &mut out)
                .is_some()
        };
        for ok in [
            r#"{"a":1,"b":"x"}"#,
            " { \"a\" : -0.5e-3 , \"c\":true,\"d\":null } \n",
            "{}",
            r#"{"a":12345678901234567890}"#,
        ] {
            assert!(takes(ok), "{ok}");
            let _ = read(&set, ok).unwrap();
        }
        for no in [
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":.5}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a":1}x"#,
            r#"{"a":"\n"}"#,
            r#"{"a":"é"}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            "[1]",
        ] {
            assert!(!takes(no), "{no}");
        }
    }

    /// Every slot equals what the expression language reads from the decoded `Value`.
    fn same_as_value(names: &[&str], raw: &str) {
        let set = FieldSet::new(names.iter().copied());
        let v: Value = serde_json::from_str(raw).unwrap();
        let got = read(&set, raw).unwrap().unwrap();
        for (i, n) in names.iter().enumerate() {
            let want = Expr::parse(n).unwrap().eval(&v, &Meta::default()).unwrap();
            assert!(
                equal(&got[i], &want),
                "{n}: {:?} != {want:?} in {raw}",
                got[i]
            );
        }
    }

    #[test]
    fn reads_scalars_and_skips_the_rest() {
        same_as_value(
            &["patient_id", "ts", "hr", "missing", "ok", "none", "nested"],
            r#"{"patient_id":"p1","ts":1700000000000,"hr":72.5,"skip":{"a":[1,2,{"b":"c"}]},
               "ok":true,"none":null,"nested":{"x":1}}"#,
        );
    }

    #[test]
    fn escaped_strings_and_keys_are_decoded() {
        same_as_value(&["s"], r#"{"a\"b": 1, "s": "line\nnext \u00e9"}"#);
        let got = read(&FieldSet::new(["a\"b", "é"]), r#"{"a\"b": 1, "\u00e9": 2}"#)
            .unwrap()
            .unwrap();
        assert!(matches!(got[..], [Val::Int(1), Val::Int(2)]), "{got:?}");
        let set = FieldSet::new(["s"]);
        let got = read(&set, r#"{"s":"plain"}"#).unwrap().unwrap();
        assert!(matches!(&got[0], Val::Str(Cow::Borrowed("plain"))));
    }

    #[test]
    fn numbers_follow_the_value_decode() {
        same_as_value(
            &["i", "neg", "f", "e", "big", "zero"],
            r#"{"i": 42, "neg": -7, "f": 1.0, "e": 2.5e3, "big": 18446744073709551616, "zero": -0}"#,
        );
        let got = read(&FieldSet::new(["f"]), r#"{"f":1.0}"#)
            .unwrap()
            .unwrap();
        assert!(matches!(got[0], Val::Float(x) if x == 1.0));
    }

    #[test]
    fn last_duplicate_key_wins() {
        same_as_value(&["a"], r#"{"a": 1, "a": 2}"#);
    }

    #[test]
    fn not_an_object_and_not_json() {
        let set = FieldSet::new(["a"]);
        assert!(read(&set, "[1, 2]").unwrap().is_none());
        assert!(read(&set, " 5 ").unwrap().is_none());
        for bad in [
            "",
            "{",
            r#"{"a": 1,}"#,
            r#"{"a": 1} trailing"#,
            r#"{"a": tru}"#,
            r#"{"b": [1, }"#,
            r#"{"a": "unterminated}"#,
            "nope",
        ] {
            let e = read(&set, bad).unwrap_err().to_string();
            assert!(e.starts_with("value is not JSON"), "{bad:?}: {e}");
        }
    }

    proptest! {
        /// Random byte edits of a flat event: the scanner never takes what serde_json rejects,
        /// and agrees on every value it takes (checked inside `read`).
        #[test]
        fn scanner_never_accepts_broken_json(
            edits in proptest::collection::vec((0usize..64, any::<u8>()), 0..4),
        ) {
            let mut raw = br#"{"patient_id":"p17","ts":1700000000123,"hr":72.5,"spo2":-0.97e1,"ok":true,"n":null}"#.to_vec();
            for (at, byte) in edits {
                let at = at % raw.len();
                raw[at] = byte;
            }
            let set = FieldSet::new(["patient_id", "ts", "hr", "spo2", "ok", "n"]);
            let mut fast = vec![Val::Null; set.len()];
            if Scan::new(&raw).object(&set.names, &mut fast).is_some() {
                prop_assert!(serde_json::from_slice::<Value>(&raw).is_ok(), "{}", String::from_utf8_lossy(&raw));
                if let Ok(text) = std::str::from_utf8(&raw) {
                    let _ = read(&set, text);
                }
            }
        }

        /// Random objects of random values: the reader agrees with the full decode on every
        /// wanted field, and on which documents are JSON at all.
        #[test]
        fn agrees_with_value_decode(
            fields in proptest::collection::vec(("[a-c]{1,2}", value_text()), 0..6),
            cut in proptest::option::of(0usize..80),
        ) {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                .collect();
            let mut raw = format!("{{{}}}", body.join(","));
            if let Some(c) = cut {
                let mut c = c.min(raw.len());
                while !raw.is_char_boundary(c) {
                    c -= 1;
                }
                raw.truncate(c);
            }
            let names = ["a", "b", "ab", "zz"];
            let set = FieldSet::new(names);
            let full = serde_json::from_str::<Value>(&raw);
            match (read(&set, &raw), full) {
                (Ok(Some(got)), Ok(v)) => {
                    for (i, n) in names.iter().enumerate() {
                        let want = Expr::parse(n).unwrap().eval(&v, &Meta::default()).unwrap();
                        prop_assert!(equal(&got[i], &want), "{}: {:?} != {:?}", n, got[i], want);
                    }
                }
                (Ok(None), Ok(v)) => prop_assert!(!v.is_object()),
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(false, "reader {:?}, decode {:?} on {}", a.map(|_| ()), b.map(|_| ()), raw),
            }
        }
    }

    fn value_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            (-1e6f64..1e6).prop_map(|f| format!("{f}")),
            "[a-z\\\\\"é]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just("true".to_string()),
            Just("null".to_string()),
            Just(r#"{"x":[1,"y"]}"#.to_string()),
        ]
    }
}
