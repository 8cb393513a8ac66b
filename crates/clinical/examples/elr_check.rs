//! Checks HL7 v2 files against the ELR rules: `cargo run -p aorta-clinical --example elr_check -- FILE…`
//! prints, per message, the failed error rules and warnings.
fn main() {
    for path in std::env::args().skip(1) {
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("{path}: unreadable");
            continue;
        };
        let Ok(batch) = aorta_hl7::parse_stream(&bytes) else {
            eprintln!("{path}: not HL7");
            continue;
        };
        for (i, m) in batch.messages.iter().enumerate() {
            let r = aorta_clinical::elr::check_message(m);
            let name = path.rsplit('/').next().unwrap_or(&path);
            println!(
                "{name}#{i} jur={:?} results={} errors={:?} warnings={:?}",
                r.jurisdiction,
                r.results.len(),
                r.errors
                    .iter()
                    .map(|f| format!("{}@{}", f.rule, f.location))
                    .collect::<Vec<_>>(),
                r.warned_rules()
            );
        }
    }
}
