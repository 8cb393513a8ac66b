//! `aorta fhir validate`: check FHIR R4 JSON resources and print the OperationOutcome.

use aorta_fhir::{Mode, Severity, parse_resource};
use clap::Subcommand;
use std::path::PathBuf;

/// `aorta fhir …`
#[derive(Subcommand, Debug)]
pub enum FhirCmd {
    /// Validate FHIR R4 JSON files (a resource or a Bundle each); exit 1 on any error.
    Validate {
        /// JSON files; `-` reads stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Unknown elements are errors (default: warnings).
        #[arg(long)]
        strict: bool,
        /// Print each file's OperationOutcome as FHIR JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: FhirCmd) -> anyhow::Result<()> {
    let FhirCmd::Validate {
        files,
        strict,
        json,
    } = cmd;
    let mode = if strict { Mode::Strict } else { Mode::Lenient };
    let mut bad = 0;
    for file in &files {
        let bytes = super::hl7::read(file)?;
        let outcome = match parse_resource(&bytes, mode) {
            Ok(p) => p.outcome,
            Err(o) => {
                bad += 1;
                o
            }
        };
        if json {
            println!("{}", outcome.to_json());
            continue;
        }
        for i in &outcome.issues {
            println!("{}: {i}", file.display());
        }
        if !outcome.issues.iter().any(|i| i.severity >= Severity::Error) {
            eprintln!(
                "{}: valid ({} warning(s))",
                file.display(),
                outcome.issues.len()
            );
        }
    }
    anyhow::ensure!(bad == 0, "{bad} of {} file(s) invalid", files.len());
    Ok(())
}
