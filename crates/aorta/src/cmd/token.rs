//! `aorta token create|list|revoke`: API bearer tokens. The token is printed once; only its
//! SHA-256 is stored (in `[server] tokens`, default `<data_dir>/tokens.json`).

use aorta_server::{Role, TokenStore};
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token and print it (once).
    Create {
        /// admin, operator, clinician, auditor or ingest.
        #[arg(long)]
        role: Role,
        /// A label for people and the audit trail [default: <role>].
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (ids, labels, roles; never the tokens).
    List,
    /// Revoke a token by id; a running server refuses it within a second.
    Revoke {
        /// The id shown by `list` (the 8 hex digits after `aorta_`).
        id: String,
    },
}

pub fn run(path: &Path, cmd: TokenCmd) -> anyhow::Result<()> {
    let store = TokenStore::open(path)?;
    match cmd {
        TokenCmd::Create { role, name } => {
            let name = name.unwrap_or_else(|| role.name().to_string());
            let (entry, token) = store.create(role, &name)?;
            eprintln!(
                "created token {} ({}, role {}) in {}; it is shown only now:",
                entry.id,
                entry.name,
                entry.role,
                path.display()
            );
            println!("{token}");
        }
        TokenCmd::List => {
            let list = store.list()?;
            if list.is_empty() {
                eprintln!("no tokens in {}", path.display());
            }
            for e in list {
                println!("{}  {:<9}  {}  {}", e.id, e.role, e.created, e.name);
            }
        }
        TokenCmd::Revoke { id } => {
            let gone = store.revoke(&id)?;
            eprintln!("revoked {} ({}, role {})", gone.id, gone.name, gone.role);
        }
    }
    Ok(())
}
