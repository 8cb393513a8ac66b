//! PHI redaction of every log line the binary writes.
//!
//! Aorta's log statements carry no message contents: they name topics, partitions, offsets,
//! pipelines and errors, and the end-to-end tests check that captured logs hold no test
//! patient's name, MRN or birth date. This module is the safety net for the line someone adds
//! tomorrow: every formatted event passes through [`Redacting`] before it reaches stderr, and
//! the value of any field whose name says it holds patient data is replaced by a marker
//! naming the kind of data, chosen by the HL7 v2 data type the field would hold:
//!
//! | kind | HL7 v2 type | field names |
//! |---|---|---|
//! | identifier | CX (PID-2/3/4, PID-19 SSN) | `mrn`, `patient_id`, `patient`, `identifier`, `ssn`, `account` |
//! | name | XPN (PID-5/6/9, NK1-2) | `patient_name`, `family`, `given`, `mothers_maiden_name`, `alias` |
//! | birth date | DTM (PID-7) | `birth_date`, `birthdate`, `dob` |
//! | address | XAD (PID-11) | `address`, `street`, `zip`, `postal_code` |
//! | telecom | XTN (PID-13/14) | `phone`, `telecom`, `email` |
//! | value | OBX-5, message bodies | `value`, `obx_value`, `result`, `body`, `message_text`, `segment` |
//!
//! JSON lines (`--log-format json`) are redacted in `fields` and in span fields; text lines in
//! their `name=value` pairs. A line that does not parse is written as it is (it came from the
//! formatter, not from input).

use std::io::Write;

/// The kind of patient data a field name holds, or `None`.
fn phi_kind(field: &str) -> Option<&'static str> {
    Some(match field.to_ascii_lowercase().as_str() {
        "mrn" | "patient_id" | "patient" | "identifier" | "ssn" | "account" => "identifier",
        "patient_name" | "family" | "given" | "mothers_maiden_name" | "alias" => "name",
        "birth_date" | "birthdate" | "dob" => "birth date",
        "address" | "street" | "zip" | "postal_code" => "address",
        "phone" | "telecom" | "email" => "telecom",
        "value" | "obx_value" | "result" | "body" | "message_text" | "segment" => "value",
        _ => return None,
    })
}

fn marker(kind: &str) -> String {
    format!("[{kind} redacted]")
}

/// Redacts one formatted log line (without its newline).
pub fn redact_line(line: &str) -> String {
    if line.trim_start().starts_with('{')
        && let Ok(mut v) = serde_json::from_str::<serde_json::Value>(line)
    {
        redact_json(&mut v, false);
        return v.to_string();
    }
    redact_text(line)
}

/// Replaces PHI fields in `fields`/`span`/`spans` objects (and, inside them, at any depth).
fn redact_json(v: &mut serde_json::Value, inside_fields: bool) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if inside_fields && let Some(kind) = phi_kind(k) {
                    *val = serde_json::Value::String(marker(kind));
                    continue;
                }
                let fields = inside_fields || matches!(k.as_str(), "fields" | "span" | "spans");
                redact_json(val, fields);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                redact_json(item, inside_fields);
            }
        }
        _ => {}
    }
}

/// Removes ANSI escape sequences (colours), so that field names can be read.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Text format: `key=value` pairs, where a value runs to the next space or is a quoted string.
fn redact_text(line: &str) -> String {
    let plain = strip_ansi(line);
    let mut out = String::with_capacity(plain.len());
    let mut rest = plain.as_str();
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .map_or(0, |i| i + 1);
        let key = &rest[key_start..eq];
        let after = &rest[eq + 1..];
        let value_len = if after.starts_with('"') {
            let mut escaped = false;
            let mut end = after.len();
            for (i, c) in after.char_indices().skip(1) {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            end
        } else {
            after.find(' ').unwrap_or(after.len())
        };
        out.push_str(&rest[..eq + 1]);
        match phi_kind(key) {
            Some(kind) => out.push_str(&marker(kind)),
            None => out.push_str(&after[..value_len]),
        }
        rest = &after[value_len..];
    }
    out.push_str(rest);
    out
}

/// A writer that redacts each complete line before passing it on; what is left of a line is
/// written when it is dropped (the formatter writes one event per writer).
pub struct Redacting<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> Redacting<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Redacting<W> {
        Redacting {
            inner,
            pending: Vec::new(),
        }
    }

    fn flush_lines(&mut self, all: bool) -> std::io::Result<()> {
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            self.inner.write_all(redact_line(&text).as_bytes())?;
            self.inner.write_all(b"\n")?;
        }
        if all && !self.pending.is_empty() {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            self.inner.write_all(redact_line(&text).as_bytes())?;
        }
        Ok(())
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.flush_lines(false)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_lines(true)?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Redacting<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(json: bool) -> String {
        let sink = Captured::default();
        let out = sink.clone();
        let make = move || Redacting::new(out.clone());
        let builder = tracing_subscriber::fmt()
            .with_writer(make)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO);
        let dispatch = if json {
            tracing::Dispatch::new(builder.json().finish())
        } else {
            tracing::Dispatch::new(builder.finish())
        };
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("admit", patient_id = "MRN-88231");
            let _g = span.enter();
            tracing::info!(
                pipeline = "sepsis-alerts",
                mrn = "MRN-88231",
                patient_name = "EVERYMAN^ADAM",
                birth_date = "19880818",
                value = 131.5,
                offset = 42,
                "test event"
            );
        });
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn patient_fields_are_redacted_and_the_rest_is_kept() {
        for json in [true, false] {
            let out = logged(json);
            for phi in ["MRN-88231", "EVERYMAN", "19880818", "131.5"] {
                assert!(!out.contains(phi), "{phi} leaked into: {out}");
            }
            for kept in [
                "sepsis-alerts",
                "42",
                "test event",
                "[identifier redacted]",
                "[name redacted]",
                "[birth date redacted]",
                "[value redacted]",
            ] {
                assert!(out.contains(kept), "{kept} missing from: {out}");
            }
        }
    }

    #[test]
    fn text_values_with_spaces_in_quotes_are_redacted_whole() {
        let line = r#"INFO x: msg patient_name="ADAM \"A\" EVERYMAN" topic=hl7.inbound"#;
        let out = redact_line(line);
        assert_eq!(
            out,
            r#"INFO x: msg patient_name=[name redacted] topic=hl7.inbound"#
        );
        let unchanged = "INFO aorta: MLLP listening addr=127.0.0.1:2575 topic=hl7.inbound";
        assert_eq!(redact_line(unchanged), unchanged);
    }
}
