//! Checks shared by the scores' inputs.

/// An input no score can be computed from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A value outside what a living patient can have (or in the wrong unit).
    #[error("{parameter} = {value} is outside {min}–{max} {unit}{hint}")]
    OutOfRange {
        /// Parameter name as in the input (`hr`, `temp`, …).
        parameter: &'static str,
        /// The value given.
        value: f64,
        /// Lowest accepted.
        min: f64,
        /// Highest accepted.
        max: f64,
        /// Unit expected.
        unit: &'static str,
        /// A hint (e.g. "; is it in °F?").
        hint: &'static str,
    },
    /// A value that is not a number.
    #[error("{parameter} is not a finite number")]
    NotANumber {
        /// Parameter name.
        parameter: &'static str,
    },
    /// A field the score does not know (a typo would otherwise score as missing).
    #[error("{0}")]
    Invalid(String),
}

/// Accepts `v` if it lies in `[min, max]`.
pub(crate) fn check(
    parameter: &'static str,
    v: Option<f64>,
    min: f64,
    max: f64,
    unit: &'static str,
) -> Result<Option<f64>, InputError> {
    let Some(x) = v else { return Ok(None) };
    if !x.is_finite() {
        return Err(InputError::NotANumber { parameter });
    }
    if x < min || x > max {
        let hint = if parameter == "temp" && (90.0..=115.0).contains(&x) {
            "; is it in °F? give °C"
        } else if parameter == "paco2" && x < 15.0 {
            "; is it in kPa? give mmHg"
        } else {
            ""
        };
        return Err(InputError::OutOfRange {
            parameter,
            value: x,
            min,
            max,
            unit,
            hint,
        });
    }
    Ok(Some(x))
}

/// Rounds to `decimals` places, halves up (the charts' resolution). The tiny nudge makes a
/// decimal half such as 36.05 (stored as 36.04999…) round up as written.
pub(crate) fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    ((x * f) + 1e-7).round() / f
}

/// Criteria met, by name, and the names that could not be evaluated (`None`), in order; plus
/// how many were met.
pub(crate) fn tally<const N: usize>(
    items: [(&str, Option<bool>); N],
) -> (std::collections::BTreeMap<String, bool>, Vec<String>, u8) {
    let mut criteria = std::collections::BTreeMap::new();
    let mut missing = Vec::new();
    for (name, met) in items {
        match met {
            Some(m) => {
                criteria.insert(name.to_string(), m);
            }
            None => missing.push(name.to_string()),
        }
    }
    let score = criteria.values().filter(|&&m| m).count() as u8;
    (criteria, missing, score)
}
