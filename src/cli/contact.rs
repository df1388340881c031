//! `smimekit contact …`: correspondents' certificates.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use smimekit::Error;
use smimekit::cert::{self, CertInfo};
use smimekit::contacts::{self, Contact, ContactMeta, ContactStore, Provenance, SelectOptions};
use smimekit::trust::TrustStore;

use super::Global;
use super::output;

/// Contact commands.
#[derive(Subcommand)]
pub enum ContactCommand {
    /// Add correspondents' certificates: PEM or DER (.pem .crt .cer .der), PKCS#7 bundles (.p7b .p7c), or
    /// signed messages (.eml: the verified signer, with the same rules as harvesting by 'verify').
    Add {
        /// Certificate files. Everything is checked before anything is stored.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// For a signed message whose signer is not trusted (a self-signed correspondent): show the signer's
        /// fingerprint for comparison and add the certificate once confirmed (the content must be intact).
        #[arg(long)]
        accept_signer: bool,
        /// With --accept-signer: do not ask (you compared the fingerprint already).
        #[arg(long, requires = "accept_signer")]
        yes: bool,
    },
    /// List your contacts' certificates (flags expired and soon-expiring ones).
    List {
        /// Only the certificates that expire within DAYS days (default 30), soonest first; expired ones are
        /// left out.
        #[arg(long, value_name = "DAYS", num_args = 0..=1, default_missing_value = "30")]
        expiring: Option<u32>,
    },
    /// Show every certificate of an address, marking the one used for encryption and why.
    Show {
        /// The contact's e-mail address.
        address: String,
    },
    /// Remove every certificate of an address, or one certificate by fingerprint.
    Remove {
        /// E-mail address or fingerprint (at least 8 hex digits).
        target: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Write the certificate used for encryption to an address (PEM).
    Export {
        /// E-mail address (or a fingerprint).
        address: String,
        /// Output file ("-" for standard output).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Always encrypt to this certificate for the address (while it is usable).
    Prefer {
        /// The contact's e-mail address.
        address: String,
        /// Fingerprint (at least 8 hex digits) of one of the address's certificates.
        #[arg(required_unless_present = "clear")]
        fingerprint: Option<String>,
        /// Remove the pin instead.
        #[arg(long, conflicts_with = "fingerprint")]
        clear: bool,
    },
}

#[derive(serde::Serialize)]
struct ContactJson {
    status: &'static str,
    #[serde(flatten)]
    cert: CertInfo,
    meta: ContactMeta,
    pinned_for: Vec<String>,
    /// Revocation status known to the cache (no network), when the issuer is known.
    revocation: Option<smimekit::revocation::CertRevocation>,
}

/// Cached revocation lookups (issuers: anchors, contact intermediates, ID chains).
fn rev_lookup(home: &smimekit::home::Home) -> Result<smimekit::revocation::CachedLookup> {
    let mut issuers = TrustStore::new(home).certs()?;
    issuers.extend(ContactStore::new(home).intermediates()?);
    for i in smimekit::ids::IdStore::new(home).list()? {
        issuers.extend(i.chain.iter().cloned());
    }
    Ok(smimekit::revocation::CachedLookup::new(
        home.root(),
        issuers,
    ))
}

fn contact_json(
    store: &ContactStore,
    c: &Contact,
    now: i64,
    rev: &smimekit::revocation::CachedLookup,
) -> Result<ContactJson> {
    let info = c.info(now);
    let mut pinned_for = Vec::new();
    for a in &c.meta.addresses {
        if store.pinned(a)?.as_deref() == Some(c.fingerprint.as_str()) {
            pinned_for.push(a.clone());
        }
    }
    Ok(ContactJson {
        revocation: rev.status(&c.cert),
        status: info.status(),
        cert: info,
        meta: c.meta.clone(),
        pinned_for,
    })
}

fn flag(info: &CertInfo) -> String {
    match info.status() {
        "valid" => String::new(),
        st => format!("  [{}]", st.to_uppercase()),
    }
}

fn select_opts<'a>(anchors: &'a [openssl::x509::X509]) -> SelectOptions<'a> {
    SelectOptions {
        anchors,
        system: true,
        now: cert::now(),
    }
}

/// Runs a contact command.
pub fn run(g: &Global, c: &ContactCommand) -> Result<i32> {
    let home = g.home()?;
    let store = ContactStore::new(&home);
    let now = cert::now();
    match c {
        ContactCommand::Add {
            files,
            accept_signer,
            yes,
        } => {
            // Read and check every file before taking the lock: a bad file changes nothing.
            let mut leaves = Vec::new();
            let mut intermediates = Vec::new();
            let mut eml = Vec::new();
            for f in files {
                let name = f.display().to_string();
                if name.to_ascii_lowercase().ends_with(".eml") {
                    // A message, not a certificate file: its size is a message's (attachments included).
                    eml.push((name, smimekit::input::read(Some(f))?.to_vec()));
                    continue;
                }
                let data = super::read_file(f)?;
                let certs = contacts::certs_from_file(&data, &name)?;
                let cl = contacts::classify(certs);
                for l in &cl.leaves {
                    contacts::check_contact(l).map_err(|e| e.context(&name))?;
                }
                for r in &cl.roots {
                    output::note(&format!(
                        "{name}: not storing the root certificate {} (bundles never add trust; use 'smimekit trust add' to trust it)",
                        smimekit::display::field(&cert::name_to_string(r.subject_name()))
                    ));
                }
                leaves.extend(
                    cl.leaves
                        .into_iter()
                        .map(|l| (l, Provenance::file(&name, now))),
                );
                intermediates.extend(cl.intermediates);
            }
            let mut messages = Vec::new();
            for (n, d) in &eml {
                match verified_message(&home, n, d) {
                    Ok(v) => messages.push((n.clone(), v, d.as_slice())),
                    // An untrusted signer, accepted by the user after comparing the fingerprint.
                    Err(_) if *accept_signer => {
                        for o in super::signer::signers_of(&home, n, d)? {
                            if !o.problems.is_empty() {
                                return Err(Error::bad_input(format!(
                                    "{n}: the signer's certificate cannot be a contact: {}",
                                    o.problems.join("; ")
                                ))
                                .hint("nothing was added")
                                .into());
                            }
                            contacts::check_contact(&o.cert).map_err(|e| e.context(n))?;
                            if !super::signer::confirm(g, *yes, "adding as a contact", &o)? {
                                output::note("nothing added");
                                return Ok(2);
                            }
                            leaves.push((o.cert, Provenance::file(n, now)));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            if leaves.is_empty() && messages.is_empty() {
                let what = if files.len() == 1 {
                    format!("{} holds", files[0].display())
                } else {
                    "the files hold".to_string()
                };
                return Err(Error::bad_input(format!(
                    "{what} only CA certificates: CA certificates are not contacts"
                ))
                .hint("use 'smimekit trust add' to trust a CA")
                .into());
            }
            let lock = home.lock()?;
            if !messages.is_empty() {
                return add_messages(g, &home, &lock, leaves, &intermediates, &messages);
            }
            let shown: Vec<_> = leaves.iter().map(|(l, _)| l.clone()).collect();
            let report = store.add_batch(&lock, leaves, &intermediates)?;
            for a in &report.added {
                for k in &a.key_changes {
                    output::warn(&k.message());
                }
            }
            for l in &shown {
                let (kept, ignored) = cert::emails_counted(l);
                if ignored > 0 {
                    output::note(&format!(
                        "{}: the certificate lists more than {} e-mail addresses; only the first {} are considered ({ignored} ignored)",
                        cert::name_to_string(l.subject_name()),
                        smimekit::limits::MAX_CERT_ADDRESSES,
                        kept.len()
                    ));
                }
            }
            if g.json {
                output::json(&report)?;
            } else {
                let mut s = String::new();
                for (a, l) in report.added.iter().zip(&shown) {
                    let info = CertInfo::new(l, now);
                    let encrypt = if info.can_encrypt {
                        ""
                    } else {
                        "  (cannot receive encrypted mail)"
                    };
                    s += &format!(
                        "{} {}  {}{}{}\n",
                        if a.new { "added" } else { "already present:" },
                        &a.fingerprint[..16],
                        smimekit::display::addresses(&info.emails),
                        encrypt,
                        flag(&info)
                    );
                }
                if report.intermediates_added > 0 {
                    s += &format!(
                        "kept {} intermediate CA certificate(s) for chain building\n",
                        report.intermediates_added
                    );
                }
                output::print(&s)?;
            }
            Ok(0)
        }
        ContactCommand::List { expiring } => {
            let mut all = store.list()?;
            let rev = rev_lookup(&home)?;
            // By address (then fingerprint), the order a person looks for.
            all.sort_by_cached_key(|c| {
                (
                    c.emails().first().map(|e| e.to_lowercase()),
                    c.fingerprint.clone(),
                )
            });
            if let Some(days) = expiring {
                let until = now + i64::from(*days) * 86_400;
                all.retain(|c| {
                    let na = cert::unix_time(c.cert.not_after());
                    na >= now && na <= until
                });
                all.sort_by_key(|c| cert::unix_time(c.cert.not_after()));
                if !g.json && all.is_empty() {
                    output::print(&format!(
                        "No contact certificate expires within {days} days.\n"
                    ))?;
                    return Ok(0);
                }
            }
            if g.json {
                #[derive(serde::Serialize)]
                struct I {
                    fingerprint: String,
                    subject: String,
                    not_after: String,
                }
                #[derive(serde::Serialize)]
                struct L {
                    contacts: Vec<ContactJson>,
                    intermediates: Vec<I>,
                }
                let contacts = all
                    .iter()
                    .map(|c| contact_json(&store, c, now, &rev))
                    .collect::<Result<_>>()?;
                let intermediates = store
                    .intermediates()?
                    .iter()
                    .map(|c| I {
                        fingerprint: cert::fingerprint(c),
                        subject: cert::name_to_string(c.subject_name()),
                        not_after: cert::rfc3339(cert::unix_time(c.not_after())),
                    })
                    .collect();
                output::json(&L {
                    contacts,
                    intermediates,
                })?;
                return Ok(0);
            }
            if all.is_empty() {
                output::print(
                    "No contacts. Add a certificate with 'smimekit contact add FILE', or verify a signed message from them.\n",
                )?;
                return Ok(0);
            }
            let mut s = String::new();
            for c in &all {
                let info = c.info(now);
                s += &format!(
                    "{}  {}  {}  until {}{}{}{}\n",
                    &c.fingerprint[..16],
                    smimekit::display::addresses(&info.emails),
                    info.key,
                    &info.not_after[..10.min(info.not_after.len())],
                    if info.can_encrypt {
                        ""
                    } else {
                        "  signing only"
                    },
                    flag(&info),
                    smimekit::revocation::list_flag(rev.status(&c.cert).as_ref())
                );
            }
            output::print(&s)?;
            Ok(0)
        }
        ContactCommand::Show { address } => {
            let certs = store.for_address(address)?;
            let anchors = TrustStore::new(&home).certs()?;
            let rev = rev_lookup(&home)?;
            let sel = store.select_for_encryption(address, &select_opts(&anchors))?;
            if certs.is_empty() {
                // The "no certificate for ADDRESS" error with its hint.
                sel.clone().into_chosen()?;
            }
            if g.json {
                #[derive(serde::Serialize)]
                struct S {
                    address: String,
                    certificates: Vec<ContactJson>,
                    selection: smimekit::contacts::Selection,
                }
                output::json(&S {
                    address: address.clone(),
                    certificates: certs
                        .iter()
                        .map(|c| contact_json(&store, c, now, &rev))
                        .collect::<Result<_>>()?,
                    selection: sel,
                })?;
                return Ok(0);
            }
            let mut s = format!(
                "{}: {} certificate(s)\n",
                output::clean(address),
                certs.len()
            );
            for c in &certs {
                let info = c.info(now);
                let chosen = sel
                    .chosen
                    .as_ref()
                    .is_some_and(|x| x.fingerprint == c.fingerprint);
                s += &format!(
                    "\n{} {}\n    subject: {}\n    issuer:  {}\n    key:     {}   valid {} → {}{}\n",
                    if chosen { "*" } else { " " },
                    c.fingerprint,
                    smimekit::display::field(&info.subject),
                    smimekit::display::field(&info.issuer),
                    info.key,
                    info.not_before,
                    info.not_after,
                    flag(&info)
                );
                if let Some(r) = rev.status(&c.cert) {
                    s += &format!(
                        "    revocation: {} (from the cache)\n",
                        output::clean(&smimekit::revocation::describe(&r))
                    );
                }
                if let Some(caps) = &c.meta.capabilities {
                    s += &format!(
                        "    capabilities ({}): {}\n",
                        c.meta.capabilities_time.as_deref().unwrap_or("?"),
                        caps.iter()
                            .map(|o| smimekit::ossl::signed::oid_name(o))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                if let Some(p) = c.meta.provenance.last() {
                    let from = match p.source {
                        contacts::Source::Message => format!(
                            "message {} from {}",
                            p.message_id.as_deref().unwrap_or("?"),
                            p.from.as_deref().unwrap_or("?")
                        ),
                        contacts::Source::File => {
                            format!("file {}", p.file.as_deref().unwrap_or("?"))
                        }
                        contacts::Source::Backup => "a backup".to_string(),
                    };
                    s += &format!("    seen:    {} ({})\n", output::clean(&from), p.seen_at);
                }
                if chosen {
                    s += &format!(
                        "    → used for encryption: {}\n",
                        output::clean(&sel.reason)
                    );
                } else if let Some(w) = sel.why_not(&c.fingerprint) {
                    s += &format!("    → not used: {}\n", output::clean(&w));
                }
            }
            if sel.chosen.is_none() {
                s += &format!(
                    "\nNo certificate can be used to encrypt to {}: {}\n",
                    output::clean(address),
                    output::clean(&sel.reason)
                );
            }
            output::print(&s)?;
            Ok(0)
        }
        ContactCommand::Remove { target, yes } => {
            let victims: Vec<Contact> = if target.contains('@') {
                store.for_address(target)?
            } else {
                vec![store.get(target)?]
            };
            if victims.is_empty() {
                return Err(
                    Error::not_found(format!("no contact certificate for {target}"))
                        .hint("run 'smimekit contact list' to see your contacts")
                        .into(),
                );
            }
            let what = victims
                .iter()
                .map(|v| v.label())
                .collect::<Vec<_>>()
                .join(", ");
            let question = format!(
                "Remove the contact certificate(s) {}?",
                output::clean(&what)
            );
            if !super::confirm(g, *yes, &format!("removing {what}"), &question)? {
                output::note("nothing removed");
                return Ok(2);
            }
            let lock = home.lock()?;
            let removed = store.remove(&lock, target)?;
            if g.json {
                output::json(&removed)?;
            } else {
                for r in &removed {
                    output::note(&format!(
                        "removed {} ({})",
                        smimekit::display::addresses(&r.addresses),
                        &r.fingerprint[..16]
                    ));
                }
            }
            Ok(0)
        }
        ContactCommand::Export {
            address,
            output: out,
        } => {
            output::stdout_carries_message(out.as_os_str() == "-");
            let (cert, fingerprint) = if address.contains('@') {
                let anchors = TrustStore::new(&home).certs()?;
                let sel = store.select_for_encryption(address, &select_opts(&anchors))?;
                let reason = sel.reason.clone();
                let chosen = sel.into_chosen()?;
                output::note(&format!(
                    "exporting {} ({reason})",
                    &chosen.fingerprint[..16]
                ));
                (chosen.cert, chosen.fingerprint)
            } else {
                let c = store.get(address)?;
                (c.cert, c.fingerprint)
            };
            output::write_output(Some(out), &cert.to_pem()?)?;
            if g.json {
                output::json(&serde_json::json!({"fingerprint": fingerprint, "written": out}))?;
            }
            Ok(0)
        }
        ContactCommand::Prefer {
            address,
            fingerprint,
            clear,
        } => {
            let lock = home.lock()?;
            if *clear {
                let was = store.unpin(&lock, address)?;
                match &was {
                    Some(fp) => {
                        output::note(&format!("{address}: no longer pinned to {}", &fp[..16]))
                    }
                    None => output::note(&format!("{address} had no pinned certificate")),
                }
                if g.json {
                    output::json(
                        &serde_json::json!({"address": address, "pinned": null, "unpinned": was}),
                    )?;
                }
                return Ok(0);
            }
            let fp = store.prefer(&lock, address, fingerprint.as_deref().unwrap_or_default())?;
            drop(lock);
            let anchors = TrustStore::new(&home).certs()?;
            let sel = store.select_for_encryption(address, &select_opts(&anchors))?;
            let usable = sel.chosen.as_ref().is_some_and(|c| c.fingerprint == fp);
            if usable {
                output::note(&format!(
                    "{address}: mail will be encrypted to {}",
                    &fp[..16]
                ));
            } else {
                output::warn(&format!(
                    "{address}: pinned {}, but it cannot be used now ({}); it will be used when it can",
                    &fp[..16],
                    sel.why_not(&fp).unwrap_or_default()
                ));
            }
            if g.json {
                output::json(
                    &serde_json::json!({"address": address, "pinned": fp, "usable_now": usable}),
                )?;
            }
            Ok(0)
        }
    }
}

/// Verifies a signed message for `contact add`: only a valid signature (integrity, trust, address match) gives a
/// contact, as with harvesting by `verify`. Anything else is an error, so the whole command changes nothing.
fn verified_message<'a>(
    home: &smimekit::home::Home,
    name: &str,
    data: &'a [u8],
) -> Result<smimekit::smime::verify::Verified<'a>> {
    let opts = super::message::default_verify_options(home)?;
    let v = smimekit::smime::verify::verify(data, &opts).map_err(|e| e.context(name))?;
    if !v.report.is_valid() {
        let why: Vec<String> = v
            .report
            .signers
            .iter()
            .flat_map(|s| s.reasons.iter().cloned())
            .chain(v.report.warnings.iter().cloned())
            .collect();
        return Err(Error::bad_input(format!(
            "{name}: the signature did not verify ({}); nothing was added",
            if why.is_empty() {
                v.report.status.to_string()
            } else {
                why.join("; ")
            }
        ))
        .hint("only a verified signer is added to the contacts; check the message with 'smimekit verify FILE'; a self-signed correspondent: add --accept-signer to compare the fingerprint and add it")
        .into());
    }
    Ok(v)
}

/// `contact add` with signed messages (and maybe certificate files): everything was checked; store it all.
fn add_messages(
    g: &Global,
    home: &smimekit::home::Home,
    lock: &smimekit::home::WriteLock,
    leaves: Vec<(openssl::x509::X509, Provenance)>,
    intermediates: &[openssl::x509::X509],
    messages: &[(String, smimekit::smime::verify::Verified<'_>, &[u8])],
) -> Result<i32> {
    let store = ContactStore::new(home);
    let now = cert::now();
    let report = if leaves.is_empty() && intermediates.is_empty() {
        None
    } else {
        Some(store.add_batch(lock, leaves, intermediates)?)
    };
    for a in report.iter().flat_map(|r| &r.added) {
        for k in &a.key_changes {
            output::warn(&k.message());
        }
    }
    let mut harvests = Vec::new();
    for (name, v, raw) in messages {
        let h = super::message::harvest_verified(home, lock, raw, v)?;
        for k in &h.key_changes {
            output::warn(k);
        }
        harvests.push((name.clone(), v, h));
    }
    if g.json {
        let msgs: Vec<serde_json::Value> = harvests
            .iter()
            .map(|(n, v, h)| {
                serde_json::json!({
                    "file": n,
                    "signers": v.report.signers.iter().filter_map(|s| s.fingerprint.clone()).collect::<Vec<_>>(),
                    "harvest": h,
                })
            })
            .collect();
        output::json(&serde_json::json!({"certificates": report, "messages": msgs}))?;
        return Ok(0);
    }
    let mut s = String::new();
    if let Some(r) = &report {
        for a in &r.added {
            s += &format!(
                "{} {}\n",
                if a.new { "added" } else { "already present:" },
                &a.fingerprint[..16]
            );
        }
    }
    for (n, v, h) in &harvests {
        for sg in &v.report.signers {
            let Some(fp) = &sg.fingerprint else { continue };
            let info = sg.certificate().map(|c| CertInfo::new(c, now));
            let emails = info.map(|i| i.emails.join(", ")).unwrap_or_default();
            s += &format!(
                "{} {}  {}  (signer of {})\n",
                if h.added.contains(fp) {
                    "added"
                } else {
                    "already present:"
                },
                &fp[..16],
                smimekit::display::field(&emails),
                output::clean(n)
            );
        }
        for note in &h.notes {
            s += &format!("note: {note}\n");
        }
    }
    output::print(&s)?;
    Ok(0)
}
