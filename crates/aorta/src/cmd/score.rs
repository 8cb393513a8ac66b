//! `aorta score news2|qsofa|sirs`: reads JSON lines of observations and prints one JSON line
//! per input with the total, each sub-score or criterion, and the band — so a clinical safety
//! officer can check the implementation against their own cases. A line that cannot be
//! scored prints `{"line": N, "error": "…"}` in its place (the output stays aligned with the
//! input) and the command exits 1 at the end.

use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Which score.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Which {
    /// NEWS2 (RCP 2017): rr, spo2, spo2_scale, on_oxygen, sbp, hr, consciousness (A|C|V|P|U), temp; age, pregnant for scope.
    News2,
    /// qSOFA (Sepsis-3): rr, sbp, gcs, altered_mentation.
    Qsofa,
    /// SIRS (ACCP/SCCM 1992): temp, hr, rr, paco2, wbc (×10⁹/L), bands_pct.
    Sirs,
}

/// `aorta score …`
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The score.
    pub which: Which,
    /// JSON-lines file; default stdin.
    pub file: Option<PathBuf>,
}

fn score_line(which: Which, v: Value) -> Result<Value, String> {
    let de = |e: serde_json::Error| e.to_string();
    let out = match which {
        Which::News2 => {
            let i = serde_json::from_value(v).map_err(de)?;
            serde_json::to_value(aorta_clinical::news2::score(&i).map_err(|e| e.to_string())?)
        }
        Which::Qsofa => {
            let i = serde_json::from_value(v).map_err(de)?;
            serde_json::to_value(aorta_clinical::qsofa::score(&i).map_err(|e| e.to_string())?)
        }
        Which::Sirs => {
            let i = serde_json::from_value(v).map_err(de)?;
            serde_json::to_value(aorta_clinical::sirs::score(&i).map_err(|e| e.to_string())?)
        }
    };
    out.map_err(|e| e.to_string())
}

pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let input: Box<dyn BufRead> = match &args.file {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (mut scored, mut failed) = (0u64, 0u64);
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<Value>(&line)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|v| score_line(args.which, v));
        match result {
            Ok(mut v) => {
                scored += 1;
                if let Value::Object(m) = &mut v {
                    m.shift_insert(0, "line".into(), json!(n + 1));
                }
                writeln!(out, "{v}")?;
            }
            Err(e) => {
                failed += 1;
                writeln!(out, "{}", json!({"line": n + 1, "error": e}))?;
            }
        }
    }
    out.flush()?;
    eprintln!("{scored} scored, {failed} could not be scored");
    anyhow::ensure!(failed == 0, "{failed} input line(s) could not be scored");
    Ok(())
}
