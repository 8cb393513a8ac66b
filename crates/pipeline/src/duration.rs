//! Durations in configs: `250ms`, `30s`, `1m`, `4h`, `1d`, or a plain number of milliseconds.

use serde::Deserialize;
use std::fmt;

/// A non-negative duration in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub i64);

impl Duration {
    /// As a std duration (negative values count as zero).
    pub fn std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.max(0) as u64)
    }

    /// Milliseconds.
    pub fn ms(self) -> i64 {
        self.0
    }

    /// Parses `<number><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: i64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (write e.g. 500ms, 30s, 1m, 4h, 1d)"))?;
        let factor = match unit {
            "" | "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "{s:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                ));
            }
        };
        n.checked_mul(factor)
            .map(Duration)
            .ok_or_else(|| format!("{s:?} is too long"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms != 0 && ms % size == 0 {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Ms(n) if n >= 0 => Ok(Duration(n)),
            Raw::Ms(n) => Err(serde::de::Error::custom(format!(
                "a duration cannot be negative ({n})"
            ))),
            Raw::Text(s) => Duration::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(Duration::parse("250ms").unwrap().ms(), 250);
        assert_eq!(Duration::parse("30s").unwrap().ms(), 30_000);
        assert_eq!(Duration::parse("1m").unwrap().ms(), 60_000);
        assert_eq!(Duration::parse("4h").unwrap().ms(), 14_400_000);
        assert_eq!(Duration::parse("1d").unwrap().ms(), 86_400_000);
        assert_eq!(Duration::parse("42").unwrap().ms(), 42);
        assert!(Duration::parse("1w").unwrap_err().contains("unknown unit"));
        assert!(Duration::parse("m").is_err());
        assert_eq!(Duration(90_000).to_string(), "90s");
        assert_eq!(Duration(60_000).to_string(), "1m");
    }
}
