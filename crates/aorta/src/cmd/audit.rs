//! `aorta audit verify`: recompute the audit trail's hash chain.

use aorta_log::Log;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check every entry's hash and link; exit 1 at the first break, printing where and why.
    Verify {
        /// The audit topic [default: `[server] audit_topic`, aorta.audit].
        #[arg(long)]
        topic: Option<String>,
    },
}

pub async fn run(log: &dyn Log, default_topic: &str, cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::Verify { topic } => {
            let topic = topic.as_deref().unwrap_or(default_topic);
            let v = aorta_server::audit::verify(log, topic).await?;
            match (&v.broken, &v.head) {
                (Some(b), _) => {
                    anyhow::bail!(
                        "audit trail {topic} is broken at offset {} after {} good entries: {}",
                        b.offset,
                        v.entries,
                        b.reason
                    )
                }
                (None, Some((seq, hash))) => println!(
                    "audit trail {topic}: {} entries verified; head seq {seq} hash {hash} (keep this to detect a cut of newer entries)",
                    v.entries
                ),
                (None, None) => println!("audit trail {topic}: empty"),
            }
        }
    }
    Ok(())
}
