//! Terser-like paths for configuration and the console: `PID-3`, `PID-3[2].4.2`, `OBX[3]-5`,
//! `MSH-9.1`. Segment and repetition indexes are 1-based and default to 1, so `PID-3` is the
//! first repetition of PID-3 (as HAPI's Terser reads it); `PID-3[2]` is the second.

use crate::message::Message;
use std::fmt;
use std::str::FromStr;

/// A parsed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// Segment id, e.g. `OBX`.
    pub segment: String,
    /// Which occurrence of the segment (1-based).
    pub segment_rep: usize,
    /// Field number (HL7 numbering).
    pub field: usize,
    /// Field repetition (1-based).
    pub repetition: usize,
    /// Component (1-based), if addressed.
    pub component: Option<usize>,
    /// Subcomponent (1-based), if addressed.
    pub subcomponent: Option<usize>,
}

/// Why a path string is not a path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid HL7 path {path:?}: {reason} (examples: PID-3, PID-3[2].4.2, OBX[3]-5)")]
pub struct PathError {
    path: String,
    reason: &'static str,
}

fn index(s: &str) -> Option<(usize, &str)> {
    // "[n]" at the start of s.
    let rest = s.strip_prefix('[')?;
    let end = rest.find(']')?;
    let n: usize = rest[..end].parse().ok().filter(|&n| n >= 1)?;
    Some((n, &rest[end + 1..]))
}

impl FromStr for Path {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Path, PathError> {
        let err = |reason| PathError {
            path: s.to_string(),
            reason,
        };
        let (seg, rest) = s
            .split_once('-')
            .ok_or_else(|| err("missing '-' before the field number"))?;
        let (segment, segment_rep) = match seg.find('[') {
            Some(i) => {
                let (n, tail) = index(&seg[i..]).ok_or_else(|| err("bad segment index"))?;
                if !tail.is_empty() {
                    return Err(err("unexpected text after the segment index"));
                }
                (&seg[..i], n)
            }
            None => (seg, 1),
        };
        if segment.len() != 3
            || !segment
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(err("segment ids are 3 characters A-Z or 0-9"));
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let field: usize = rest[..digits]
            .parse()
            .map_err(|_| err("missing field number"))?;
        let mut tail = &rest[digits..];
        let mut repetition = 1;
        if tail.starts_with('[') {
            let (n, t) = index(tail).ok_or_else(|| err("bad repetition index"))?;
            repetition = n;
            tail = t;
        }
        let mut parts = Vec::new();
        while let Some(t) = tail.strip_prefix('.') {
            let digits = t.bytes().take_while(u8::is_ascii_digit).count();
            let n: usize = t[..digits]
                .parse()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| err("components are numbered from 1"))?;
            parts.push(n);
            tail = &t[digits..];
        }
        if !tail.is_empty() || parts.len() > 2 {
            return Err(err(
                "expected at most .component.subcomponent after the field",
            ));
        }
        Ok(Path {
            segment: segment.to_string(),
            segment_rep,
            field,
            repetition,
            component: parts.first().copied(),
            subcomponent: parts.get(1).copied(),
        })
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.segment)?;
        if self.segment_rep != 1 {
            write!(f, "[{}]", self.segment_rep)?;
        }
        write!(f, "-{}", self.field)?;
        if self.repetition != 1 {
            write!(f, "[{}]", self.repetition)?;
        }
        if let Some(c) = self.component {
            write!(f, ".{c}")?;
        }
        if let Some(s) = self.subcomponent {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

impl Path {
    /// The raw value at this path, if the message has it.
    pub fn get<'a>(&self, msg: &Message<'a>) -> Option<&'a [u8]> {
        let seg = msg.segment(&self.segment, self.segment_rep)?;
        let field = seg.field(self.field)?;
        let rep = field.repetition(self.repetition)?;
        let Some(c) = self.component else {
            return Some(rep.raw());
        };
        let comp = rep.component(c)?;
        match self.subcomponent {
            None => Some(comp.raw()),
            Some(s) => comp.subcomponent(s),
        }
    }
}
