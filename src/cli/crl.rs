//! `smimekit crl …`: the revocation cache (CRLs by issuer and number, OCSP answers by certificate).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use smimekit::cert;
use smimekit::contacts::ContactStore;
use smimekit::ids::IdStore;
use smimekit::revocation::{cache, crl};
use smimekit::trust::TrustStore;

use super::Global;
use super::output;

/// CRL and revocation-cache commands.
#[derive(Subcommand)]
pub enum CrlCommand {
    /// List the cached CRLs (issuer, number, thisUpdate, nextUpdate, entries) and the cached OCSP answers.
    List,
    /// Add CRL files (DER or PEM) to the cache; they are used offline too. Signatures are checked when used.
    Add {
        /// CRL file(s).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Fetch the CRLs named by your IDs' and contacts' certificates (http:// distribution points).
    Update,
    /// Remove every cached CRL and OCSP answer.
    Clear {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a crl command.
pub fn run(g: &Global, c: &CrlCommand) -> Result<i32> {
    let home = g.home()?;
    match c {
        CrlCommand::List => {
            let now = cert::now();
            let mut rows = Vec::new();
            for (p, c) in cache::list_crls(&home)? {
                let next = c.next_update().map(|t| cert::rfc3339(cert::unix_time(t)));
                rows.push(serde_json::json!({
                    "issuer": cert::name_to_string(c.issuer_name()),
                    "number": cache::crl_number(&c),
                    "this_update": cert::rfc3339(cert::unix_time(c.last_update())),
                    "next_update": next,
                    "revoked": c.get_revoked().map(|r| r.len()).unwrap_or(0),
                    "current": crl::freshness(&c, now).is_none(),
                    "file": p.file_name().map(|f| f.to_string_lossy().to_string()),
                }));
            }
            let ocsp = home.list(cache::OCSP_DIR, ".der")?.len();
            if g.json {
                output::json(&serde_json::json!({"crls": rows, "ocsp_responses": ocsp}))?;
            } else {
                let mut s = String::new();
                if rows.is_empty() {
                    s += "no cached CRLs\n";
                }
                for r in &rows {
                    s += &format!(
                        "{}  number {}  thisUpdate {}  nextUpdate {}  {} revoked{}\n",
                        r["issuer"].as_str().unwrap_or(""),
                        r["number"].as_str().unwrap_or("-"),
                        r["this_update"].as_str().unwrap_or(""),
                        r["next_update"].as_str().unwrap_or("-"),
                        r["revoked"],
                        if r["current"].as_bool() == Some(true) {
                            ""
                        } else {
                            "  [OUT OF DATE]"
                        }
                    );
                }
                s += &format!("{ocsp} cached OCSP answer(s)\n");
                output::print(&s)?;
            }
            Ok(0)
        }
        CrlCommand::Add { files } => {
            // Everything is read and parsed before anything is stored.
            let mut crls = Vec::new();
            for f in files {
                let data = super::read_file(f)?;
                crls.push(crl::parse(&data).map_err(|e| e.context(f.display()))?);
            }
            let mut done = Vec::new();
            for c in &crls {
                let p = cache::store_crl(home.root(), c, None)?;
                let issuer = cert::name_to_string(c.issuer_name());
                output::note(&format!(
                    "added the CRL of {issuer} (number {})",
                    cache::crl_number(c).unwrap_or_else(|| "-".into())
                ));
                done.push(
                    serde_json::json!({"issuer": issuer, "number": cache::crl_number(c),
                    "file": p.file_name().map(|f| f.to_string_lossy().to_string())}),
                );
            }
            if g.json {
                output::json(&serde_json::json!({"added": done}))?;
            }
            Ok(0)
        }
        CrlCommand::Update => {
            let mut certs = Vec::new();
            let mut issuers = TrustStore::new(&home).certs()?;
            for i in IdStore::new(&home).list()? {
                certs.push(i.cert.clone());
                issuers.extend(i.chain.iter().cloned());
            }
            let contacts = ContactStore::new(&home);
            issuers.extend(contacts.intermediates()?);
            certs.extend(contacts.list()?.into_iter().map(|c| c.cert));
            let now = cert::now();
            let mut seen = Vec::new();
            let mut results = Vec::new();
            let mut failed = false;
            for c in &certs {
                let Some(issuer) = issuers.iter().find(|i| {
                    i.subject_name().to_der().ok() == c.issuer_name().to_der().ok()
                        && c.verify(&i.public_key().expect("key")).unwrap_or(false)
                }) else {
                    continue;
                };
                for url in crl::distribution_points(c) {
                    if seen.contains(&url) || seen.len() >= smimekit::limits::MAX_REVOCATION_FETCHES
                    {
                        continue;
                    }
                    seen.push(url.clone());
                    match crl::fetch(&url, issuer, now) {
                        Ok(x) => {
                            cache::store_crl(home.root(), &x, Some(&url))?;
                            output::note(&format!("fetched {url}"));
                            results.push(serde_json::json!({"url": url, "ok": true}));
                        }
                        Err(e) => {
                            failed = true;
                            output::warn(&format!("{url}: {e}"));
                            results.push(serde_json::json!({"url": url, "ok": false, "error": e.to_string()}));
                        }
                    }
                }
            }
            if g.json {
                output::json(&serde_json::json!({"fetched": results}))?;
            } else if seen.is_empty() {
                output::print(
                    "no certificate of yours or of your contacts names an http:// CRL distribution point\n",
                )?;
            }
            Ok(if failed { 2 } else { 0 })
        }
        CrlCommand::Clear { yes } => {
            if !super::confirm(
                g,
                *yes,
                "clearing the revocation cache",
                "Remove every cached CRL and OCSP answer?",
            )? {
                return Ok(2);
            }
            let _lock = home.lock()?;
            let n = cache::clear(&home)?;
            output::note(&format!("removed {n} cached file(s)"));
            Ok(0)
        }
    }
}
