//! `smimekit id …`: digital IDs.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use smimekit::cert::{self, CertInfo};
use smimekit::ids::{IdStore, Identity, KeySpec};
use smimekit::ossl::p12::Profile;
use smimekit::secret::Secret;
use smimekit::{Error, ErrorKind, pkcs12};

use super::Global;
use super::output;
use super::secrets::Kind;

/// Digital-ID commands.
#[derive(Subcommand)]
pub enum IdCommand {
    /// Import a PKCS#12 file (.p12/.pfx; DER, base64 or PEM-wrapped).
    Import {
        /// The PKCS#12 file.
        file: PathBuf,
        /// Store the key without a passphrase (for unattended signing; anyone who can read the home can use it).
        #[arg(long)]
        no_passphrase: bool,
        /// Accept a PKCS#12 file without an integrity MAC.
        #[arg(long)]
        allow_unauthenticated: bool,
    },
    /// List your IDs (and keys waiting for a certificate).
    List,
    /// Show one ID in detail.
    Show {
        /// E-mail address or fingerprint (at least 8 hex digits).
        id: String,
    },
    /// Export an ID as PKCS#12 (or just its certificate, to give to others).
    Export {
        /// E-mail address or fingerprint.
        id: String,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
        /// Algorithms of the PKCS#12 file.
        #[arg(long, value_enum, default_value_t = ProfileArg::Modern)]
        profile: ProfileArg,
        /// Write only the certificate (PEM).
        #[arg(long)]
        cert_only: bool,
    },
    /// Back up every ID, trust anchor and contact into one password-protected PKCS#12 file.
    Backup {
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Restore a backup (merging: IDs already present are kept). Shows every trust anchor, ID and pin it
    /// would add and asks first; IDs and contacts for addresses that have another key here are flagged.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Store restored keys without a passphrase.
        #[arg(long)]
        no_passphrase: bool,
        /// Add everything without asking (trust anchors and flagged IDs/contacts included). With --batch and
        /// without --yes, those are left out and the rest is restored.
        #[arg(long)]
        yes: bool,
    },
    /// Delete an ID (or a pending key) from the store.
    Delete {
        /// E-mail address or fingerprint (or a pending key's id, as 'id list' shows it).
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Create a new key: a self-signed test ID, or (with --csr) a request for a certificate authority.
    New {
        /// The e-mail address of the ID.
        #[arg(long)]
        email: String,
        /// The name shown in the certificate (default: the address).
        #[arg(long)]
        name: Option<String>,
        /// Key type.
        #[arg(long, value_enum, default_value_t = KeyArg::Rsa3072)]
        key: KeyArg,
        /// Validity of a self-signed certificate, in days (at least 1).
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
        /// Write a certificate signing request to this file instead of self-signing; the key waits in the store
        /// until `id install-cert`.
        #[arg(long, value_name = "OUT.csr")]
        csr: Option<PathBuf>,
        /// Store the key without a passphrase.
        #[arg(long)]
        no_passphrase: bool,
    },
    /// Replace the CA chain stored with an ID (checked to link to its certificate).
    AddChain {
        /// E-mail address or fingerprint of the ID.
        id: String,
        /// The intermediate CA certificate(s), PEM (the root may be included).
        file: PathBuf,
    },
    /// Change the passphrase protecting an ID's key (asks for the current one first).
    Passwd {
        /// E-mail address or fingerprint.
        id: String,
        /// Read the new passphrase from FILE (else $SMIMEKIT_NEW_PASSPHRASE, else a prompt, asked twice).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
        /// Store the key without a passphrase from now on.
        #[arg(long, conflicts_with = "new_passphrase_file")]
        no_passphrase: bool,
    },
    /// Make a new key and a request (CSR) renewing an ID: same subject and addresses. The old ID stays usable
    /// until the new certificate is installed with `id install-cert`.
    Renew {
        /// E-mail address or fingerprint of the ID to renew.
        id: String,
        /// Write the certificate signing request to this file.
        #[arg(long, value_name = "OUT.csr")]
        csr: PathBuf,
        /// Store the new key without a passphrase.
        #[arg(long)]
        no_passphrase: bool,
    },
    /// Install the certificate a CA issued for a pending key.
    InstallCert {
        /// The issued certificate (PEM or DER; a PEM file may carry the chain too).
        cert: PathBuf,
        /// The CA chain (PEM).
        #[arg(long)]
        chain: Option<PathBuf>,
    },
}

/// PKCS#12 export profiles.
#[derive(Clone, Copy, ValueEnum)]
pub enum ProfileArg {
    /// AES-256-CBC, PBKDF2-HMAC-SHA256 (600,000 iterations), SHA-256 MAC.
    Modern,
    /// 3DES with a SHA-1 MAC, for older Windows, macOS and iOS.
    Compat,
    /// RC2-40 certificates and a 3DES key with a SHA-1 MAC (gpgsm 2.2, very old clients).
    Legacy,
}

/// Key types for `id new`.
#[derive(Clone, Copy, ValueEnum)]
pub enum KeyArg {
    /// RSA 2048.
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// RSA 4096.
    Rsa4096,
    /// EC P-256.
    EcP256,
    /// EC P-384.
    EcP384,
}

fn new_passphrase(g: &Global, no_passphrase: bool, what: &str) -> Result<Option<Secret>> {
    if no_passphrase {
        output::warn(&format!(
            "{what} will be stored WITHOUT a passphrase: anyone who can read the home can use it"
        ));
        return Ok(None);
    }
    Ok(Some(g.secrets().get(
        Kind::Passphrase,
        &format!("a new passphrase to protect {what} in the store"),
        true,
    )?))
}

/// Refuses, before any password is asked, a file `id import` cannot take but another command can: a
/// certificate, a key+certificate PEM, a key, a CSR or a message, naming the command that takes it.
fn not_a_p12(data: &[u8], what: &str) -> Result<()> {
    use smimekit::cert::FileKind;
    let (is, hint) = match cert::sniff(data) {
        FileKind::Unknown => return Ok(()),
        FileKind::Certificates => (
            "a certificate without its private key",
            format!(
                "the certificate a CA issued for a key made with 'id new --csr': 'smimekit id install-cert {what}'; a correspondent's certificate: 'smimekit contact add {what}'; a CA to trust: 'smimekit trust add {what}'"
            ),
        ),
        FileKind::KeyAndCertificate => (
            "a private key and a certificate in PEM",
            format!(
                "make a PKCS#12 file of them first ('openssl pkcs12 -export -in {what} -out id.p12'), then 'smimekit id import id.p12'"
            ),
        ),
        FileKind::PrivateKey => (
            "a private key alone",
            "an ID needs the key and its certificate in one PKCS#12 file ('openssl pkcs12 -export -inkey KEY -in CERT -out id.p12')".to_string(),
        ),
        FileKind::CertificateRequest => (
            "a certificate signing request",
            "send it to your certificate authority, then install what it issues with 'smimekit id install-cert CERT'".to_string(),
        ),
        FileKind::Message => (
            "an e-mail message",
            format!(
                "to keep the signer's certificate: 'smimekit contact add {what}'; to read it: 'smimekit verify' or 'smimekit decrypt'"
            ),
        ),
    };
    Err(
        Error::bad_input(format!("{what} is {is}, not a PKCS#12 file (.p12/.pfx)"))
            .hint(hint)
            .into(),
    )
}

/// Opens the key of `id`, asking for its passphrase if it has one.
pub fn unlock(g: &Global, id: &Identity) -> Result<openssl::pkey::PKey<openssl::pkey::Private>> {
    if !id.key_protected {
        return Ok(id.unlock(None)?);
    }
    let pass = g.secrets().get(
        Kind::Passphrase,
        &format!("the passphrase of {}", id.label()),
        false,
    )?;
    Ok(id.unlock(Some(&pass))?)
}

/// An ID in JSON: the certificate's fields (`fingerprint` among them, once) and the store's.
#[derive(serde::Serialize)]
struct IdJson {
    key_protected: bool,
    status: &'static str,
    #[serde(flatten)]
    cert: CertInfo,
    chain: Vec<String>,
    /// Revocation status known to the cache (no network), when the issuer is known.
    revocation: Option<smimekit::revocation::CertRevocation>,
}

/// Cached revocation lookups for the home's IDs (issuers: anchors, ID chains, contact intermediates).
fn rev_lookup(
    home: &smimekit::home::Home,
    ids: &[Identity],
) -> Result<smimekit::revocation::CachedLookup> {
    let mut issuers = smimekit::trust::TrustStore::new(home).certs()?;
    for i in ids {
        issuers.extend(i.chain.iter().cloned());
    }
    issuers.extend(smimekit::contacts::ContactStore::new(home).intermediates()?);
    Ok(smimekit::revocation::CachedLookup::new(
        home.root(),
        issuers,
    ))
}

fn id_json(i: &Identity, rev: &smimekit::revocation::CachedLookup) -> IdJson {
    let info = i.info(cert::now());
    IdJson {
        revocation: rev.status(&i.cert),
        key_protected: i.key_protected,
        status: info.status(),
        chain: i
            .chain
            .iter()
            .map(|c| cert::name_to_string(c.subject_name()))
            .collect(),
        cert: info,
    }
}

fn abilities(i: &CertInfo) -> &'static str {
    match (i.can_sign, i.can_encrypt) {
        (true, true) => "sign+decrypt",
        (true, false) => "sign only",
        (false, true) => "decrypt only",
        (false, false) => "neither sign nor decrypt",
    }
}

/// Runs an id command.
pub fn run(g: &Global, c: &IdCommand) -> Result<i32> {
    let home = g.home()?;
    let store = IdStore::new(&home);
    match c {
        IdCommand::Import {
            file,
            no_passphrase,
            allow_unauthenticated,
        } => {
            let data = super::read_p12_file(file)?;
            let what = file.display().to_string();
            not_a_p12(&data, &what)?;
            let password =
                g.secrets()
                    .get(Kind::Password, &format!("the password of {what}"), false)?;
            let read = pkcs12::read_identities(&data, &what, &password, *allow_unauthenticated)?;
            drop(password);
            let pass = new_passphrase(g, *no_passphrase, "the imported key")?;
            let _lock = home.lock()?;
            let report = pkcs12::store_identities(&home, read, pass.as_ref())?;
            for w in &report.warnings {
                output::warn(w);
            }
            if g.json {
                output::json(&report)?;
            } else {
                for a in &report.ids {
                    let id = store.find(&a.fingerprint)?;
                    let state = if a.new {
                        "imported"
                    } else {
                        "already in the store (nothing changed)"
                    };
                    output::print(&format!("{} — {}: {}\n", report.format, state, id.label()))?;
                }
            }
            Ok(0)
        }
        IdCommand::List => {
            let mut ids = store.list()?;
            // By address (then fingerprint), the order a person looks for.
            ids.sort_by_cached_key(|i| {
                (
                    i.emails().first().map(|e| e.to_lowercase()),
                    i.fingerprint.clone(),
                )
            });
            let pending = store.pending()?;
            let rev = rev_lookup(&home, &ids)?;
            if g.json {
                #[derive(serde::Serialize)]
                struct P {
                    id: String,
                    email: String,
                    key_protected: bool,
                    renews: Option<String>,
                }
                #[derive(serde::Serialize)]
                struct L {
                    ids: Vec<IdJson>,
                    pending: Vec<P>,
                }
                output::json(&L {
                    ids: ids.iter().map(|i| id_json(i, &rev)).collect(),
                    pending: pending
                        .iter()
                        .map(|p| P {
                            id: p.id.clone(),
                            email: p.email.clone(),
                            key_protected: p.key_protected,
                            renews: p.renews.clone(),
                        })
                        .collect(),
                })?;
                return Ok(0);
            }
            if ids.is_empty() && pending.is_empty() {
                output::print(
                    "No digital IDs. Import one with 'smimekit id import FILE.p12' or create a test ID with 'smimekit id new --email you@example.com'.\n",
                )?;
                return Ok(0);
            }
            let mut s = String::new();
            let now = cert::now();
            for i in &ids {
                let info = i.info(now);
                let mut flag = match info.status() {
                    "valid" => String::new(),
                    st => format!("  [{}]", st.to_uppercase()),
                };
                let renewal = pending
                    .iter()
                    .find(|p| p.renews.as_deref() == Some(i.fingerprint.as_str()))
                    .map(|p| format!("  renewal pending (key {})", &p.id[..16]))
                    .unwrap_or_default();
                flag += smimekit::revocation::list_flag(rev.status(&i.cert).as_ref());
                s += &format!(
                    "{}  {}  {}  until {}  {}{}{}\n",
                    &i.fingerprint[..16],
                    smimekit::display::addresses(&info.emails),
                    info.key,
                    &info.not_after[..10],
                    abilities(&info),
                    flag,
                    renewal
                );
            }
            for p in &pending {
                let renews = p
                    .renews
                    .as_deref()
                    .map(|fp| format!(", renews {}", &fp[..16]))
                    .unwrap_or_default();
                s += &format!(
                    "{}  {}  pending: waiting for a certificate (smimekit id install-cert){}\n",
                    &p.id[..16],
                    output::clean(&p.email),
                    renews
                );
            }
            output::print(&s)?;
            Ok(0)
        }
        IdCommand::Show { id } => {
            let i = store.find(id)?;
            let rev = rev_lookup(&home, std::slice::from_ref(&i))?;
            let j = id_json(&i, &rev);
            if g.json {
                output::json(&j)?;
            } else {
                let c = &j.cert;
                let mut s = String::new();
                s += &format!("Digital ID     {}\n", i.label());
                s += &format!("Subject        {}\n", smimekit::display::field(&c.subject));
                s += &format!(
                    "E-mail         {}\n",
                    smimekit::display::addresses(&c.emails)
                );
                s += &format!("Issuer         {}\n", output::clean(&c.issuer));
                s += &format!("Serial         {}\n", c.serial);
                if let Some(r) = &j.revocation {
                    s += &format!(
                        "Revocation     {} (from the cache)\n",
                        output::clean(&smimekit::revocation::describe(r))
                    );
                }
                s += &format!(
                    "Valid          {} to {} [{}]\n",
                    c.not_before,
                    c.not_after,
                    c.status()
                );
                s += &format!(
                    "Key            {}{}\n",
                    c.key,
                    if i.key_protected {
                        " (passphrase-protected)"
                    } else {
                        " (NOT protected)"
                    }
                );
                s += &format!(
                    "Key usage      {}\n",
                    if c.key_usage_present {
                        c.key_usage.join(", ")
                    } else {
                        "(any)".into()
                    }
                );
                s += &format!(
                    "Extended usage {}\n",
                    if c.extended_key_usage.is_empty() {
                        "(any)".into()
                    } else {
                        c.extended_key_usage.join(", ")
                    }
                );
                s += &format!("Can            {}\n", abilities(c));
                s += &format!("SHA-256        {}\n", c.fingerprint);
                for ch in &j.chain {
                    s += &format!("Chain          {}\n", output::clean(ch));
                }
                for w in &c.weaknesses {
                    s += &format!("Weak           {w}\n");
                }
                output::print(&s)?;
            }
            Ok(0)
        }
        IdCommand::Export {
            id,
            output: out,
            profile,
            cert_only,
        } => {
            let i = store.find(id)?;
            if *cert_only {
                let mut pem = i.cert.to_pem()?;
                for c in &i.chain {
                    if !cert::is_ca(c) || c.subject_name().to_der()? != c.issuer_name().to_der()? {
                        pem.extend(c.to_pem()?);
                    }
                }
                smimekit::home::write_atomic(out, &pem)?;
                if g.json {
                    output::json(
                        &serde_json::json!({"fingerprint": i.fingerprint, "written": out, "content": "certificate"}),
                    )?;
                } else {
                    output::note(&format!(
                        "wrote the certificate of {} to {}",
                        i.label(),
                        out.display()
                    ));
                }
                return Ok(0);
            }
            let profile = match profile {
                ProfileArg::Modern => Profile::Modern,
                ProfileArg::Compat => Profile::Compat,
                ProfileArg::Legacy => Profile::Legacy,
            };
            if !matches!(profile, Profile::Modern) {
                output::warn(
                    "this profile uses weak legacy encryption; use it only for clients that cannot read the modern one",
                );
            }
            let key = unlock(g, &i)?;
            let password = g.secrets().get(
                Kind::Password,
                &format!("a password for {}", out.display()),
                true,
            )?;
            let der = pkcs12::export(&i, &key, &password, profile)?;
            smimekit::home::write_atomic(out, &der)?;
            if g.json {
                output::json(
                    &serde_json::json!({"fingerprint": i.fingerprint, "written": out, "content": "pkcs12", "profile": format!("{profile:?}").to_lowercase()}),
                )?;
            } else {
                output::note(&format!("exported {} to {}", i.label(), out.display()));
            }
            Ok(0)
        }
        IdCommand::Backup { output: out } => {
            let shared = g
                .secrets()
                .get(Kind::Passphrase, "the passphrase of your IDs", false)
                .ok();
            let password = g.secrets().get(
                Kind::Password,
                &format!("a password for the backup {}", out.display()),
                true,
            )?;
            let contact_store = smimekit::contacts::ContactStore::new(&home);
            let contacts = contact_store.for_backup()?;
            let mut unlock_one = |i: &Identity| -> smimekit::Result<_> {
                if !i.key_protected {
                    return i.unlock(None);
                }
                match shared.as_ref().map(|p| i.unlock(Some(p))) {
                    Some(Ok(k)) => Ok(k),
                    Some(Err(e)) if e.kind() != ErrorKind::WrongSecret || g.batch => Err(e),
                    _ => {
                        let p = g
                            .secrets()
                            .get(
                                Kind::Passphrase,
                                &format!("the passphrase of {}", i.label()),
                                false,
                            )
                            // Keep the secrets error as it is (its hint names --passphrase-file).
                            .map_err(|e| {
                                e.downcast::<Error>().unwrap_or_else(|e| {
                                    Error::new(ErrorKind::MissingSecret, e.to_string())
                                })
                            })?;
                        i.unlock(Some(&p))
                    }
                }
            };
            let metadata = contact_store.metadata_for_backup()?;
            let _spinner = super::progress::Spinner::start("deriving keys and writing the backup");
            let (der, counts) = pkcs12::backup(
                &home,
                &password,
                &contacts,
                Some(&metadata),
                &mut unlock_one,
            )?;
            smimekit::home::write_atomic(out, &der)?;
            if g.json {
                output::json(&counts)?;
            } else {
                output::print(&format!(
                    "Backed up {} ID(s), {} pending key(s), {} trust anchor(s), {} contact certificate(s) and {} intermediate CA certificate(s) to {}\n",
                    counts.ids,
                    counts.pending,
                    counts.anchors,
                    counts.contacts,
                    counts.intermediates,
                    out.display()
                ))?;
            }
            Ok(0)
        }
        IdCommand::Restore {
            file,
            no_passphrase,
            yes,
        } => {
            let data = super::read_p12_file(file)?;
            let what = file.display().to_string();
            not_a_p12(&data, &what)?;
            let password = g.secrets().get(
                Kind::Password,
                &format!("the password of the backup {what}"),
                false,
            )?;
            let mut plan = {
                let _spinner = super::progress::Spinner::start("reading the backup");
                pkcs12::read_backup(&data, &what, &password)?
            };
            // Show what would be added and ask: a backup from someone else must not take over silently.
            let review = smimekit::restore::review(&home, &plan)?;
            let mut left_out = Vec::new();
            if review.needs_confirmation() && !*yes {
                if g.batch {
                    left_out = review.without_unconfirmed(&mut plan);
                    eprint!("{}", output::clean(&review.render()));
                } else {
                    eprint!("{}", output::clean(&review.render()));
                    let ok = super::confirm(
                        g,
                        false,
                        "restoring trust anchors or IDs",
                        "Add these to your store? Only confirm a backup you made yourself.",
                    )?;
                    if !ok {
                        output::note("nothing restored");
                        return Ok(2);
                    }
                }
            }
            let local_contacts: Vec<String> = smimekit::contacts::ContactStore::new(&home)
                .list()?
                .into_iter()
                .map(|c| c.fingerprint)
                .collect();
            let pending_before = store.pending()?.len();
            let pass = if plan.ids.is_empty() {
                None
            } else {
                new_passphrase(g, *no_passphrase, "the restored keys")?
            };
            let lock = home.lock()?;
            let (added, anchors) = {
                let _spinner = super::progress::Spinner::start("protecting the restored keys");
                pkcs12::restore_ids_and_anchors(&home, &plan, pass.as_ref())?
            };
            let contact_store = smimekit::contacts::ContactStore::new(&home);
            let contacts = contact_store.restore(&lock, plan.contacts.clone())?;
            let mut notes = left_out;
            if let Some(m) = &plan.contacts_metadata {
                notes.extend(
                    contact_store
                        .restore_metadata(&lock, m, &local_contacts)?
                        .notes,
                );
            }
            let new = added.iter().filter(|a| a.new).count();
            let pending_added = store.pending()?.len() - pending_before;
            if g.json {
                output::json(&serde_json::json!({
                    "ids": added,
                    "pending_added": pending_added,
                    "anchors_added": anchors,
                    "contacts": plan.contacts.len(),
                    "review": review,
                    "notes": notes,
                }))?;
            } else {
                for n in &notes {
                    output::note(n);
                }
                output::print(&format!(
                    "Restored {new} new ID(s) ({} already present), {pending_added} pending key(s), {anchors} new trust anchor(s), {} new contact certificate(s) ({} already present)\n",
                    added.len() - new,
                    contacts.added,
                    contacts.present
                ))?;
            }
            Ok(0)
        }
        IdCommand::Delete { id, yes } => {
            let i = match store.find(id) {
                Ok(i) => i,
                // Not an ID: perhaps a key waiting for its certificate.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let Ok(p) = store.find_pending(id) else {
                        return Err(e.into());
                    };
                    let question = format!(
                        "Delete {}? A certificate issued for it can then never be installed.",
                        p.label()
                    );
                    if !super::confirm(g, *yes, &format!("deleting {}", p.label()), &question)? {
                        output::note("nothing deleted");
                        return Ok(2);
                    }
                    let _lock = home.lock()?;
                    store.delete_pending(&p)?;
                    if g.json {
                        output::json(&serde_json::json!({"deleted_pending": p.id}))?;
                    } else {
                        output::note(&format!("deleted {}", p.label()));
                    }
                    return Ok(0);
                }
                Err(e) => return Err(e.into()),
            };
            let question = format!("Delete the digital ID {} and its private key?", i.label());
            if !super::confirm(g, *yes, &format!("deleting {}", i.label()), &question)? {
                output::note("nothing deleted");
                return Ok(2);
            }
            let _lock = home.lock()?;
            store.delete(&i)?;
            if g.json {
                output::json(&serde_json::json!({"deleted": i.fingerprint}))?;
            } else {
                output::note(&format!("deleted the digital ID {}", i.label()));
            }
            Ok(0)
        }
        IdCommand::New {
            email,
            name,
            key,
            days,
            csr,
            no_passphrase,
        } => {
            let spec = match key {
                KeyArg::Rsa2048 => KeySpec::Rsa2048,
                KeyArg::Rsa3072 => KeySpec::Rsa3072,
                KeyArg::Rsa4096 => KeySpec::Rsa4096,
                KeyArg::EcP256 => KeySpec::EcP256,
                KeyArg::EcP384 => KeySpec::EcP384,
            };
            let pass = new_passphrase(g, *no_passphrase, &format!("the key of {email}"))?;
            let k = smimekit::ids::generate_key(spec)?;
            if let Some(out) = csr {
                let req = smimekit::ids::csr(&k, email, name.as_deref())?;
                let _lock = home.lock()?;
                let id = store.add_pending(&k, &req, pass.as_ref())?;
                smimekit::home::write_atomic(out, &req.to_pem()?)?;
                if g.json {
                    output::json(&serde_json::json!({"pending": id, "email": email, "csr": out}))?;
                    return Ok(0);
                }
                output::print(&format!(
                    "Created a key for {email} and wrote the certificate request to {}.\nSend it to your certificate authority, then run: smimekit id install-cert ISSUED.pem\n(pending key {})\n",
                    out.display(),
                    &id[..16]
                ))?;
                return Ok(0);
            }
            let c = smimekit::ids::self_signed(&k, email, name.as_deref(), *days)?;
            let _lock = home.lock()?;
            let added = store.add(&k, &c, &[], pass.as_ref())?;
            let i = store.find(&added.fingerprint)?;
            if g.json {
                output::json(
                    &serde_json::json!({"fingerprint": i.fingerprint, "email": email, "self_signed": true, "days": days}),
                )?;
                return Ok(0);
            }
            output::print(&format!(
                "Created a self-signed test ID: {} (valid {days} days)\n",
                i.label()
            ))?;
            output::note(
                "self-signed IDs are for testing: correspondents must trust this certificate explicitly",
            );
            Ok(0)
        }
        IdCommand::AddChain { id, file } => {
            let i = store.find(id)?;
            let certs = cert::parse_certs(&super::read_file(file)?, &file.display().to_string())?;
            let _lock = home.lock()?;
            // Read again under the lock: what is rewritten is the ID as it is now.
            let i = store.find(&i.fingerprint)?;
            let chain = store.replace_chain(&i, &certs)?;
            let names: Vec<String> = chain
                .iter()
                .map(|c| cert::name_to_string(c.subject_name()))
                .collect();
            if g.json {
                output::json(&serde_json::json!({"fingerprint": i.fingerprint, "chain": names}))?;
            } else {
                let mut s = format!("Replaced the chain of {}:\n", i.label());
                for n in &names {
                    s += &format!("  {}\n", output::clean(n));
                }
                output::print(&s)?;
            }
            Ok(0)
        }
        IdCommand::Passwd {
            id,
            new_passphrase_file,
            no_passphrase,
        } => {
            let i = store.find(id)?;
            // The current passphrase first: nothing is asked or changed for someone who does not know it.
            let key = unlock(g, &i)?;
            let new = if *no_passphrase {
                output::warn(&format!(
                    "the key of {} will be stored WITHOUT a passphrase: anyone who can read the home can use it",
                    i.label()
                ));
                None
            } else {
                Some(g.secrets().get_new(
                    new_passphrase_file.as_deref(),
                    &format!("the new passphrase of {}", i.label()),
                )?)
            };
            let _lock = home.lock()?;
            // Read again under the lock (a chain replaced meanwhile is kept); the key is checked against it.
            let i = store.find(&i.fingerprint)?;
            store.change_passphrase(&i, &key, new.as_ref())?;
            if g.json {
                output::json(
                    &serde_json::json!({"fingerprint": i.fingerprint, "key_protected": new.is_some()}),
                )?;
            } else {
                output::note(&format!("changed the passphrase of {}", i.label()));
            }
            Ok(0)
        }
        IdCommand::Renew {
            id,
            csr,
            no_passphrase,
        } => {
            let i = store.find(id)?;
            let k = smimekit::ids::key_like(&i.cert)?;
            let req = smimekit::ids::renewal_csr(&k, &i.cert)?;
            let pass = new_passphrase(g, *no_passphrase, &format!("the new key of {}", i.label()))?;
            let _lock = home.lock()?;
            let pid = store.add_pending_for(&k, &req, pass.as_ref(), Some(&i))?;
            // The request file after the key is stored; if it cannot be written, the key goes too.
            if let Err(e) = req
                .to_pem()
                .map_err(smimekit::Error::from)
                .and_then(|pem| smimekit::home::write_atomic(csr, &pem))
            {
                if let Ok(p) = store.find_pending(&pid) {
                    let _ = store.delete_pending(&p);
                }
                return Err(e.into());
            }
            if g.json {
                output::json(
                    &serde_json::json!({"pending": pid, "renews": i.fingerprint, "csr": csr}),
                )?;
                return Ok(0);
            }
            output::print(&format!(
                "Created a new key renewing {} and wrote the certificate request to {}.\nSend it to your certificate authority, then run: smimekit id install-cert ISSUED.pem\nThe current ID stays in use until then. (pending key {})\n",
                i.label(),
                csr.display(),
                &pid[..16]
            ))?;
            Ok(0)
        }
        IdCommand::InstallCert { cert: file, chain } => {
            let data = super::read_file(file)?;
            let mut certs = cert::parse_certs(&data, &file.display().to_string())?;
            let leaf = certs.remove(0);
            if let Some(ch) = chain {
                certs.extend(cert::parse_certs(
                    &super::read_file(ch)?,
                    &ch.display().to_string(),
                )?);
            }
            let _lock = home.lock()?;
            let added = store.install_cert(&leaf, &certs)?;
            let i = store.find(&added.fingerprint)?;
            let info = i.info(cert::now());
            if !info.can_sign && !info.can_encrypt {
                output::warn("the certificate allows neither e-mail signing nor encryption");
            }
            if certs.is_empty() && !smimekit::ids::issuer_is_anchor(&home, &leaf)? {
                output::warn(&format!(
                    "the certificate's issuer ({}) is not a trust anchor and no chain was given: correspondents may not be able to verify your signatures. Add the chain with 'smimekit id add-chain {} CHAIN.pem'",
                    info.issuer,
                    &i.fingerprint[..16]
                ));
            }
            if g.json {
                output::json(
                    &serde_json::json!({"fingerprint": i.fingerprint, "installed": true}),
                )?;
                return Ok(0);
            }
            output::print(&format!(
                "Installed the certificate: {} is ready ({})\n",
                i.label(),
                abilities(&info)
            ))?;
            Ok(0)
        }
    }
}
