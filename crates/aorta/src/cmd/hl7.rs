//! `aorta hl7 parse|validate`: look inside HL7 v2 files.

use anyhow::Context;
use aorta_hl7::validate::{text, validate};
use aorta_hl7::{Message, escape, parse_stream};
use clap::Subcommand;
use std::io::{Read, Write};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum Hl7Cmd {
    /// Print each message as a tree of decoded values (or JSON with --json).
    Parse {
        /// An HL7 file (one or more messages, batches allowed); `-` reads stdin.
        file: PathBuf,
        /// One JSON object per message: {"segments":[{"id":"PID","fields":[[[["comp","sub"]]]]}]}
        /// (fields from 1 → repetitions → components → subcomponents, decoded strings).
        #[arg(long)]
        json: bool,
    },
    /// Check files strictly and list every problem (exit 1 if any).
    Validate {
        /// HL7 files; `-` reads stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
    } else {
        buf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(buf)
}

/// One message as the JSON tree the issue specifies.
fn json(m: &Message<'_>) -> serde_json::Value {
    let d = m.delimiters();
    let segments: Vec<serde_json::Value> = m
        .segments()
        .map(|s| {
            let header = s.index() == 0;
            let fields: Vec<serde_json::Value> = s
                .fields()
                .skip(1)
                .enumerate()
                .map(|(i, f)| {
                    let literal = header && i < 2; // MSH-1, MSH-2 are not split or decoded
                    let reps: Vec<serde_json::Value> = f
                        .repetitions()
                        .map(|r| {
                            let comps: Vec<serde_json::Value> = r
                                .components()
                                .map(|c| {
                                    let subs: Vec<String> = c
                                        .subcomponents()
                                        .map(|x| {
                                            if literal {
                                                text(m, x)
                                            } else {
                                                text(m, &escape::decode(x, &d))
                                            }
                                        })
                                        .collect();
                                    subs.into()
                                })
                                .collect();
                            comps.into()
                        })
                        .collect();
                    reps.into()
                })
                .collect();
            serde_json::json!({ "id": text(m, s.id()), "fields": fields })
        })
        .collect();
    serde_json::json!({ "segments": segments })
}

fn tree(out: &mut impl Write, n: usize, m: &Message<'_>) -> std::io::Result<()> {
    let d = m.delimiters();
    let show = |b: &[u8]| text(m, b);
    writeln!(
        out,
        "message {n}: {} control id {}, {} segments",
        m.message_type().map(show).unwrap_or_default(),
        m.control_id().map(show).unwrap_or_default(),
        m.len()
    )?;
    for s in m.segments() {
        let id = show(s.id());
        writeln!(out, "  {id}")?;
        for (fi, f) in s.fields().enumerate().skip(1) {
            if f.raw().is_empty() {
                continue;
            }
            if s.index() == 0 && fi <= 2 {
                writeln!(out, "    {id}-{fi}  {}", show(f.raw()))?;
                continue;
            }
            let reps: Vec<_> = f.repetitions().collect();
            for (ri, r) in reps.iter().enumerate() {
                let at = if reps.len() > 1 {
                    format!("{id}-{fi}[{}]", ri + 1)
                } else {
                    format!("{id}-{fi}")
                };
                writeln!(out, "    {at}  {}", show(&escape::decode(r.raw(), &d)))?;
                let comps: Vec<_> = r.components().collect();
                if comps.len() > 1 {
                    for (ci, c) in comps
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.raw().is_empty())
                    {
                        writeln!(out, "      {at}.{}  {}", ci + 1, show(&c.decoded()))?;
                        let subs: Vec<_> = c.subcomponents().collect();
                        if subs.len() > 1 {
                            for (si, x) in subs.iter().enumerate().filter(|(_, x)| !x.is_empty()) {
                                writeln!(
                                    out,
                                    "        {at}.{}.{}  {}",
                                    ci + 1,
                                    si + 1,
                                    show(&escape::decode(x, &d))
                                )?;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn run(cmd: Hl7Cmd) -> anyhow::Result<()> {
    match cmd {
        Hl7Cmd::Parse {
            file,
            json: as_json,
        } => {
            let bytes = read(&file)?;
            let batch =
                parse_stream(&bytes).with_context(|| format!("parsing {}", file.display()))?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for (i, m) in batch.messages.iter().enumerate() {
                let r = if as_json {
                    writeln!(out, "{}", json(m))
                } else {
                    tree(&mut out, i + 1, m)
                };
                if let Err(e) = r {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(e.into());
                }
            }
            out.flush().ok();
        }
        Hl7Cmd::Validate { files } => {
            let mut problems = 0;
            for file in &files {
                let bytes = read(file)?;
                match parse_stream(&bytes) {
                    Err(e) => {
                        println!("{}: {e}", file.display());
                        problems += 1;
                    }
                    Ok(batch) => {
                        for (i, m) in batch.messages.iter().enumerate() {
                            for p in validate(m) {
                                println!(
                                    "{}: message {}: {}: {} (bytes {}..{})",
                                    file.display(),
                                    i + 1,
                                    p.location,
                                    p.message,
                                    p.span.start,
                                    p.span.end
                                );
                                problems += 1;
                            }
                        }
                    }
                }
            }
            if problems > 0 {
                anyhow::bail!("{problems} problem(s) in {} file(s)", files.len());
            }
            eprintln!("{} file(s): no problems found", files.len());
        }
    }
    Ok(())
}
