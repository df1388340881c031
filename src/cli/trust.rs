//! `smimekit trust …`: the user's trust anchors.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use smimekit::cert::{self, CertInfo};
use smimekit::trust::TrustStore;

use super::Global;
use super::output;

/// Trust-anchor commands.
#[derive(Subcommand)]
pub enum TrustCommand {
    /// Trust a root (or intermediate) certificate for verifying signatures.
    Add {
        /// PEM or DER certificate file(s).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List your trust anchors.
    List,
    /// Stop trusting an anchor.
    Remove {
        /// SHA-256 fingerprint (at least 8 hex digits).
        fingerprint: String,
    },
}

/// Runs a trust command.
pub fn run(g: &Global, c: &TrustCommand) -> Result<i32> {
    let home = g.home()?;
    let store = TrustStore::new(&home);
    match c {
        TrustCommand::Add { files } => {
            let mut certs = Vec::new();
            for f in files {
                let data = super::read_file(f)?;
                certs.extend(cert::parse_certs(&data, &f.display().to_string())?);
            }
            let _lock = home.lock()?;
            let mut done = Vec::new();
            for c in &certs {
                let info = CertInfo::new(c, cert::now());
                if !info.is_ca {
                    output::warn(&format!(
                        "{} is not a CA certificate; only that exact certificate will be trusted",
                        smimekit::display::field(&info.subject)
                    ));
                }
                let (fp, new) = store.add(c)?;
                output::note(&format!(
                    "{} trust anchor {} ({fp})",
                    if new { "added" } else { "already present:" },
                    smimekit::display::field(&info.subject)
                ));
                done.push(
                    serde_json::json!({"fingerprint": fp, "subject": info.subject, "new": new}),
                );
            }
            if g.json {
                output::json(&done)?;
            }
            Ok(0)
        }
        TrustCommand::List => {
            let infos = smimekit::trust::describe(&store.list()?);
            if g.json {
                output::json(&infos)?;
            } else if infos.is_empty() {
                output::print(
                    "No trust anchors of your own (the system's are used too unless --no-system-trust).\n",
                )?;
            } else {
                let mut s = String::new();
                for i in &infos {
                    s += &format!(
                        "{}  {}  until {} [{}]\n",
                        i.fingerprint,
                        smimekit::display::field(&i.subject),
                        i.not_after,
                        i.status()
                    );
                }
                output::print(&s)?;
            }
            Ok(0)
        }
        TrustCommand::Remove { fingerprint } => {
            let _lock = home.lock()?;
            let a = store.remove(fingerprint)?;
            if g.json {
                output::json(&serde_json::json!({"removed": a.fingerprint}))?;
            }
            output::note(&format!(
                "removed trust anchor {} ({})",
                cert::name_to_string(a.cert.subject_name()),
                a.fingerprint
            ));
            Ok(0)
        }
    }
}
