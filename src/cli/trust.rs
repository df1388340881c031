//! `smimekit trust …`: the user's trust anchors.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use smimekit::cert::{self, CertInfo};
use smimekit::trust::TrustStore;

use super::Global;
use super::output;
use super::signer;

/// Trust-anchor commands.
#[derive(Subcommand)]
pub enum TrustCommand {
    /// Trust a root (or intermediate) certificate for verifying signatures; given a signed message (.eml),
    /// trust its signer's certificate after showing its fingerprint for comparison (a self-signed
    /// correspondent).
    Add {
        /// PEM or DER certificate file(s), or signed messages.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Trust a message's signer without asking (you compared the fingerprint already).
        #[arg(long)]
        yes: bool,
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
        TrustCommand::Add { files, yes } => {
            let mut certs = Vec::new();
            let mut offered = Vec::new();
            for f in files {
                let data = super::read_file(f)?;
                let name = f.display().to_string();
                if signer::is_message(&name, &data) {
                    offered.extend(signer::signers_of(&home, &name, &data)?);
                } else {
                    certs.extend(cert::parse_certs(&data, &name)?);
                }
            }
            // A message's signer only once the user compared its fingerprint; every answer before any change.
            for o in offered {
                for p in &o.problems {
                    output::warn(&format!("{}: {p}", &o.fingerprint[..16]));
                }
                if !signer::confirm(g, *yes, "trusting", &o)? {
                    output::note("nothing trusted");
                    return Ok(2);
                }
                certs.push(o.cert);
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
