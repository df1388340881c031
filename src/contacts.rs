//! The contacts store: correspondents' certificates, what we learnt about them from their signed messages, and
//! the choice of the certificate to encrypt to.
//!
//! Layout:
//! ```text
//! HOME/contacts/<sha256>.pem                 a correspondent's certificate (PEM, `# comment` header)
//! HOME/contacts/intermediates/<sha256>.pem   a CA certificate that came with a chain (never a contact)
//! HOME/contacts/index.json                   {"format": 1, "contacts": {fp: meta}, "intermediates": {fp: …},
//!                                             "addresses": {normalized address: {"pinned": fp}}}
//! ```
//! The index is the commit point: certificate files are written first, then the index is replaced atomically;
//! a certificate file without an index entry is ignored (the leftover of an interrupted write). A removal
//! replaces the index first and deletes the files afterwards. Every write happens under the home's
//! [`WriteLock`], which the writing methods take as a parameter.
//!
//! Choosing a certificate ([`ContactStore::select_for_encryption`]) is deterministic and explained: the
//! candidates are the certificates whose address matches ([`crate::address`]); expired or not-yet-valid ones,
//! ones that cannot receive encrypted mail and ones whose chain fails are dropped (each with its reason); of
//! the rest the pinned one wins (`contact prefer`), then the one named by the contact's latest
//! encryption-key preference (only if its chain is trusted), then one with a trusted chain over one whose
//! issuer is unknown, then the newest notBefore, then the lowest fingerprint.

use std::collections::BTreeMap;
use std::path::PathBuf;

use openssl::pkcs7::Pkcs7;
use openssl::pkey::Id;
use openssl::x509::{X509, X509KeyUsage, X509Ref};

use crate::address;
use crate::cert::{self, CertInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::home::{Home, WriteLock};
use crate::limits::{
    MAX_CERT_BUNDLE_BYTES, MAX_CERTS_PER_FILE, MAX_PROVENANCE, SIGNING_TIME_SKEW_SECS,
};
use crate::trust::{self, ChainOptions, Purpose};

/// Format of `contacts/index.json` written by this build; a newer one is refused.
pub const INDEX_FORMAT: u32 = 1;

const DIR: &str = "contacts";
const INTER_DIR: &str = "contacts/intermediates";
const INDEX: &str = "index.json";

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A verified signed message.
    Message,
    /// `contact add FILE`.
    File,
    /// `id restore`.
    Backup,
}

/// One sighting of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// Kind of source.
    pub source: Source,
    /// Message-ID of the message (source "message").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Date header of the message, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// From address of the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// When we saw it, RFC 3339.
    pub seen_at: String,
    /// File name (sources "file" and "backup").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl Provenance {
    /// Added from the file `name` at `now`.
    pub fn file(name: &str, now: i64) -> Self {
        Provenance {
            source: Source::File,
            message_id: None,
            date: None,
            from: None,
            seen_at: cert::rfc3339(now),
            file: Some(name.to_string()),
        }
    }
    /// Restored from a backup (file name if known) at `now`.
    pub fn backup(file: Option<&str>, now: i64) -> Self {
        Provenance {
            source: Source::Backup,
            file: file.map(str::to_string),
            ..Provenance::file("", now)
        }
    }
    /// Harvested from a verified signed message.
    pub fn message(
        message_id: Option<&str>,
        date: Option<&str>,
        from: Option<&str>,
        now: i64,
    ) -> Self {
        Provenance {
            source: Source::Message,
            message_id: message_id.map(str::to_string),
            date: date.map(str::to_string),
            from: from.map(str::to_string),
            seen_at: cert::rfc3339(now),
            file: None,
        }
    }
}

/// What we know about one contact certificate (its entry in the index).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ContactMeta {
    /// SHA-256 fingerprint of the certificate.
    pub fingerprint: String,
    /// The certificate's e-mail addresses (as in the certificate).
    pub addresses: Vec<String>,
    /// SMIMECapabilities OIDs of the latest verified signed message, in the sender's order; `None` when that
    /// message had none (or no message was seen).
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// Signing time of the message the capabilities came from, RFC 3339.
    #[serde(default)]
    pub capabilities_time: Option<String>,
    /// Fingerprint of the certificate the sender prefers for encryption (SMIMEEncryptionKeyPreference of the
    /// same message), resolved by the caller.
    #[serde(default)]
    pub encryption_key_preference: Option<String>,
    /// Where and when the certificate was seen (newest last, at most [`MAX_PROVENANCE`]).
    #[serde(default)]
    pub provenance: Vec<Provenance>,
    /// Addresses for which this certificate, harvested from a signed message, brought a new key while the
    /// address already had a certificate: recorded, but not used for encryption until confirmed
    /// (`contact prefer`, or `contact add` of the certificate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed: Vec<String>,
    /// When it entered the store, RFC 3339.
    pub added_at: String,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct AddressMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct IntermediateMeta {
    subject: String,
    added_at: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Index {
    format: u32,
    #[serde(default)]
    contacts: BTreeMap<String, ContactMeta>,
    #[serde(default)]
    intermediates: BTreeMap<String, IntermediateMeta>,
    #[serde(default)]
    addresses: BTreeMap<String, AddressMeta>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            format: INDEX_FORMAT,
            contacts: BTreeMap::new(),
            intermediates: BTreeMap::new(),
            addresses: BTreeMap::new(),
        }
    }
}

/// A contact certificate with its metadata.
#[derive(Debug, Clone)]
pub struct Contact {
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// The certificate.
    pub cert: X509,
    /// What we know about it.
    pub meta: ContactMeta,
}

impl Contact {
    /// Certificate summary as of `now`.
    pub fn info(&self, now: i64) -> CertInfo {
        CertInfo::new(&self.cert, now)
    }
    /// The certificate's e-mail addresses.
    pub fn emails(&self) -> Vec<String> {
        cert::emails(&self.cert)
    }
    /// Is this certificate used for `addr`: an address of the certificate that it is bound to (a harvested
    /// certificate is bound only to the From addresses of the verified messages it came with).
    pub fn serves(&self, addr: &str) -> bool {
        address::contains(&self.meta.addresses, addr) && address::contains(&self.emails(), addr)
    }
    /// A short label: first address and fingerprint prefix.
    pub fn label(&self) -> String {
        format!(
            "{} ({})",
            self.emails().into_iter().next().unwrap_or_default(),
            &self.fingerprint[..16]
        )
    }
}

/// A contact's certificate changed: a different key or issuer for an address that already had a certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyChange {
    /// The address concerned (as in the new certificate).
    pub address: String,
    /// The newest certificate previously on file for the address.
    pub old_fingerprint: String,
    /// The certificate just added.
    pub new_fingerprint: String,
    /// No earlier certificate of the address has the new certificate's issuer.
    pub different_issuer: bool,
    /// No earlier certificate of the address has the new certificate's public key.
    pub different_key: bool,
}

impl KeyChange {
    /// "alice@example.com's certificate changed (new key, other issuer): possible impersonation or just a renewal".
    pub fn message(&self) -> String {
        let mut what = Vec::new();
        if self.different_key {
            what.push("new key");
        }
        if self.different_issuer {
            what.push("different issuer");
        }
        format!(
            "{}'s certificate changed ({}; was {}, now {}): possibly an impersonation, or just a renewal — check with them",
            self.address,
            what.join(", "),
            &self.old_fingerprint[..16],
            &self.new_fingerprint[..16]
        )
    }
}

/// The outcome of adding one certificate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AddOutcome {
    /// Fingerprint of the certificate.
    pub fingerprint: String,
    /// False when it was already a contact (only the provenance was updated).
    pub new: bool,
    /// Addresses whose certificate changed to another key or issuer (empty when none, or not new).
    pub key_changes: Vec<KeyChange>,
}

/// The outcome of a batch add.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AddReport {
    /// One entry per contact certificate, in input order.
    pub added: Vec<AddOutcome>,
    /// Intermediate CA certificates newly kept for chain building.
    pub intermediates_added: usize,
}

/// Capabilities learnt from one verified signed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilitiesUpdate {
    /// SMIMECapabilities OIDs in order, `None` when the message carried no such attribute.
    pub capabilities: Option<Vec<String>>,
    /// The message's signingTime (unix seconds). The caller decides what to use when it is absent.
    pub signing_time: i64,
    /// The fingerprint named by SMIMEEncryptionKeyPreference, resolved by the caller.
    pub encryption_key_preference: Option<String>,
}

/// What [`ContactStore::record_capabilities`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapsOutcome {
    /// Recorded (the message is newer than the one on file).
    Recorded,
    /// Ignored: the signing time is more than [`SIGNING_TIME_SKEW_SECS`] in the future (RFC 8551 §2.7.1).
    FutureSigningTime,
    /// Ignored: the capabilities on file come from a message signed at the same time or later.
    NotNewer,
}

/// A certificate removed by [`ContactStore::remove`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Removed {
    /// Fingerprint.
    pub fingerprint: String,
    /// Its addresses.
    pub addresses: Vec<String>,
}

/// What [`ContactStore::restore`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreReport {
    /// New contact certificates.
    pub added: usize,
    /// Contact certificates already present.
    pub present: usize,
    /// Intermediate CA certificates newly kept.
    pub intermediates: usize,
    /// Entries not restored, with the reason.
    pub skipped: Vec<String>,
}

/// Certificates of an input sorted by role.
#[derive(Debug, Default)]
pub struct Classified {
    /// End-entity certificates (candidate contacts).
    pub leaves: Vec<X509>,
    /// CA certificates that are not self-issued: kept for chain building.
    pub intermediates: Vec<X509>,
    /// Self-issued CA certificates: never stored (certs-only input never adds trust anchors, T41).
    pub roots: Vec<X509>,
}

/// Sorts certificates into leaves, intermediates and roots.
pub fn classify(certs: Vec<X509>) -> Classified {
    let mut c = Classified::default();
    for x in certs {
        if !cert::is_ca(&x) {
            c.leaves.push(x);
        } else if self_issued(&x) {
            c.roots.push(x);
        } else {
            c.intermediates.push(x);
        }
    }
    c
}

fn self_issued(c: &X509Ref) -> bool {
    match (c.subject_name().to_der(), c.issuer_name().to_der()) {
        (Ok(s), Ok(i)) => s == i,
        _ => false,
    }
}

/// Fails unless `cert` can be a contact: not a CA, with at least one usable e-mail address.
pub fn check_contact(c: &X509Ref) -> Result<()> {
    let subject = cert::name_to_string(c.subject_name());
    if cert::is_ca(c) {
        return Err(Error::bad_input(format!(
            "{subject} is a CA certificate: CA certificates are not contacts"
        ))
        .hint("use 'smimekit trust add' to trust a CA"));
    }
    let emails = cert::emails(c);
    if emails.is_empty() {
        return Err(Error::bad_input(format!(
            "the certificate {subject} has no e-mail address, so it cannot be a contact"
        ))
        .hint("S/MIME certificates name their address in subjectAltName (rfc822Name) or emailAddress; ask for an S/MIME certificate"));
    }
    if !emails.iter().any(|e| address::normalize(e).is_some()) {
        return Err(Error::bad_input(format!(
            "the certificate {subject} has no usable e-mail address ({})",
            emails.join(", ")
        ))
        .hint("ask the sender for a certificate with a valid e-mail address"));
    }
    Ok(())
}

/// Reads certificates from a file's bytes: PEM (certificates and/or PKCS#7 blocks), DER certificate, or DER
/// PKCS#7 certs-only bundle (`.p7b`, `.p7c`). `name` is used in messages. A PKCS#7 with signers (a signed
/// message) and a file with a private key are refused; `.eml` messages go through verification instead.
pub fn certs_from_file(data: &[u8], name: &str) -> Result<Vec<X509>> {
    if data.len() > MAX_CERT_BUNDLE_BYTES {
        return Err(Error::limit(format!(
            "{name} is larger than {} MiB",
            MAX_CERT_BUNDLE_BYTES / (1024 * 1024)
        )));
    }
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".eml") || lower.ends_with(".msg") || lower.ends_with(".p7m") {
        return Err(Error::unsupported(format!(
            "{name} looks like a message, not a certificate file"
        ))
        .hint("save a signed message as .eml and run 'smimekit contact add FILE.eml' or 'smimekit verify FILE' (Outlook .msg files are not MIME: save as .eml first)"));
    }
    let mut certs = Vec::new();
    if data.windows(11).any(|w| w == b"-----BEGIN ") {
        for (label, block) in crate::ids::pem_blocks(data) {
            match label.as_str() {
                "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                    let c = X509::from_pem(&block).map_err(|e| {
                        Error::bad_input(format!("{name}: a PEM certificate block is damaged"))
                            .detail(e)
                            .hint("check that the file is complete and unmodified")
                    })?;
                    certs.push(c);
                }
                "PKCS7" | "CERTIFICATE CHAIN" => {
                    let p7 = Pkcs7::from_pem(&block).map_err(|e| {
                        Error::bad_input(format!("{name}: the PEM PKCS#7 block is damaged"))
                            .detail(e)
                            .hint("check that the file is complete and unmodified")
                    })?;
                    certs.extend(pkcs7_certs(&p7, name)?);
                }
                l if l.contains("PRIVATE KEY") => {
                    return Err(Error::bad_input(format!(
                        "{name} contains a private key; contacts are other people's certificates"
                    ))
                    .hint("import your own digital ID with 'smimekit id import FILE.p12'; send others only your certificate"));
                }
                _ => {}
            }
            if certs.len() > MAX_CERTS_PER_FILE {
                break;
            }
        }
        if certs.is_empty() {
            return Err(
                Error::bad_input(format!("{name}: no certificate found in the PEM file"))
                    .hint("pass a file with CERTIFICATE or PKCS7 blocks"),
            );
        }
    } else if let Ok(c) = X509::from_der(data) {
        certs.push(c);
    } else if let Ok(p7) = Pkcs7::from_der(data) {
        certs.extend(pkcs7_certs(&p7, name)?);
    } else {
        let _ = openssl::error::ErrorStack::get();
        return Err(Error::bad_input(format!(
            "{name} is neither a certificate nor a PKCS#7 certificate bundle"
        ))
        .hint("pass .pem, .crt, .cer or .der certificates, or a .p7b/.p7c bundle"));
    }
    if certs.len() > MAX_CERTS_PER_FILE {
        return Err(Error::limit(format!(
            "{name} holds more than {MAX_CERTS_PER_FILE} certificates"
        )));
    }
    Ok(certs)
}

fn pkcs7_certs(p7: &Pkcs7, name: &str) -> Result<Vec<X509>> {
    let signed = p7.signed().ok_or_else(|| {
        Error::bad_input(format!(
            "{name} is a PKCS#7 structure but not a certificate bundle"
        ))
        .hint("pass a certs-only .p7b/.p7c file (e.g. from 'openssl crl2pkcs7 -nocrl -certfile …')")
    })?;
    if has_signers(&p7.to_der()?) {
        return Err(Error::bad_input(format!(
            "{name} is a signed message, not a certificate bundle; its certificates are not added unverified"
        ))
        .hint("verify it with 'smimekit verify' (a verified signer is added to your contacts)"));
    }
    let certs: Vec<X509> = signed
        .certificates()
        .map(|s| s.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default();
    if certs.is_empty() {
        return Err(Error::bad_input(format!(
            "{name}: the PKCS#7 bundle holds no certificate"
        )));
    }
    Ok(certs)
}

/// True if a DER PKCS#7 SignedData has at least one SignerInfo (ContentInfo → [0] → SignedData → last SET).
fn has_signers(der: &[u8]) -> bool {
    let walk = || -> Result<bool> {
        let ci = crate::der::parse_one(der)?;
        let kids = ci.children()?;
        let Some(explicit) = kids.get(1) else {
            return Ok(false);
        };
        let sd = explicit
            .children()?
            .into_iter()
            .next()
            .ok_or_else(|| Error::bad_input("empty"))?;
        let last = sd.children()?.into_iter().last();
        Ok(match last {
            Some(t) if t.tag == crate::der::tag::SET => !t.children()?.is_empty(),
            _ => false,
        })
    };
    // An unreadable structure is treated as signed: refuse rather than import unverified certificates.
    walk().unwrap_or(true)
}

/// Where anchors come from and when the choice is made.
#[derive(Debug, Clone)]
pub struct SelectOptions<'a> {
    /// The user's trust anchors.
    pub anchors: &'a [X509],
    /// Also trust the system store.
    pub system: bool,
    /// The time of the choice, unix seconds.
    pub now: i64,
}

/// The certificate chosen for an address.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Chosen {
    /// Its fingerprint.
    pub fingerprint: String,
    /// The certificate.
    #[serde(skip)]
    pub cert: X509,
    /// Whether its chain verified to a trust anchor (false: the issuer is unknown).
    pub chain_trusted: bool,
}

/// A certificate of the address that cannot be used, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejected {
    /// Its fingerprint.
    pub fingerprint: String,
    /// Every reason, e.g. "expired on 2025-01-01T00:00:00Z".
    pub why: Vec<String>,
}

/// The choice of a certificate for an address, with its explanation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Selection {
    /// The address asked for.
    pub address: String,
    /// The certificate to encrypt to, if any is usable.
    pub chosen: Option<Chosen>,
    /// Why that one (or why none).
    pub reason: String,
    /// Usable certificates, best first (the chosen one first).
    pub usable: Vec<String>,
    /// Certificates of the address that cannot be used.
    pub rejected: Vec<Rejected>,
    /// Notes on the usable ones not chosen (e.g. "issuer unknown"), by fingerprint.
    pub notes: BTreeMap<String, String>,
}

impl Selection {
    /// Why the certificate `fp` is not the chosen one (None if it is).
    pub fn why_not(&self, fp: &str) -> Option<String> {
        if self.chosen.as_ref().is_some_and(|c| c.fingerprint == fp) {
            return None;
        }
        if let Some(r) = self.rejected.iter().find(|r| r.fingerprint == fp) {
            return Some(r.why.join("; "));
        }
        Some(match self.notes.get(fp) {
            Some(n) => format!("usable, but another certificate ranks first ({n})"),
            None => "usable, but another certificate ranks first".into(),
        })
    }

    /// The chosen certificate, or the error `encrypt` reports: NotFound when the address has no certificate,
    /// Unusable (with every reason) when none can be used.
    pub fn into_chosen(self) -> Result<Chosen> {
        if let Some(c) = self.chosen {
            return Ok(c);
        }
        if self.rejected.is_empty() {
            return Err(
                Error::not_found(format!("no certificate for {}", self.address)).hint(
                    "add one with 'smimekit contact add FILE' or verify a signed message from them",
                ),
            );
        }
        let reasons: Vec<String> = self
            .rejected
            .iter()
            .map(|r| format!("{}: {}", &r.fingerprint[..16], r.why.join("; ")))
            .collect();
        Err(Error::unusable(format!(
            "no usable certificate for {}: {}",
            self.address,
            reasons.join(" | ")
        ))
        .hint("ask them for a current encryption certificate (a verified signed message from them adds it), or add one with 'smimekit contact add FILE'"))
    }
}

/// Why `c` cannot receive encrypted mail (None if it can).
fn encrypt_problem(c: &X509Ref) -> Option<String> {
    if cert::can_encrypt(c) {
        return None;
    }
    let mut why = Vec::new();
    let ku = c.key_usage();
    match c.public_key().map(|k| k.id()) {
        Ok(Id::RSA) => {
            if ku.is_some_and(|k| !k.contains(X509KeyUsage::KEY_ENCIPHERMENT)) {
                why.push("RSA key whose keyUsage lacks keyEncipherment (signing only)".to_string());
            }
        }
        Ok(Id::EC) => {
            if ku.is_some_and(|k| !k.contains(X509KeyUsage::KEY_AGREEMENT)) {
                why.push("EC key whose keyUsage lacks keyAgreement (signing only)".to_string());
            }
        }
        Ok(_) => why.push(format!(
            "its key type ({}) cannot receive encrypted mail",
            cert::key_description(c).0
        )),
        Err(_) => why.push("its public key cannot be read".to_string()),
    }
    if !cert::eku_allows_email(c) {
        why.push("extendedKeyUsage lacks emailProtection".to_string());
    }
    if why.is_empty() {
        why.push("not usable for encryption (CA-only key usage)".to_string());
    }
    Some(why.join("; "))
}

/// Chain errors that only mean "no path to an anchor is known" (the issuer is unknown), as opposed to a chain
/// that is known and broken.
fn issuer_unknown(err: &str) -> bool {
    let e = err.to_ascii_lowercase().replace('-', " ");
    e.contains("unable to get local issuer")
        || e.contains("unable to get issuer certificate")
        || e.contains("self signed certificate")
        || e.contains("unable to verify the first certificate")
}

struct Candidate {
    contact: Contact,
    trusted: bool,
    note: Option<String>,
    not_before: i64,
}

/// The contacts of a home.
pub struct ContactStore<'a> {
    home: &'a Home,
    /// Changes held in memory until [`ContactStore::commit`] (a [`ContactStore::staged`] store).
    stage: Option<std::cell::RefCell<Stage>>,
}

/// What a staged store has changed but not yet written: the index, the certificate files to write, and the
/// certificates it has read or added (parsed once, by fingerprint).
#[derive(Default)]
struct Stage {
    index: Option<Index>,
    files: Vec<(PathBuf, Vec<u8>)>,
    certs: std::collections::HashMap<(&'static str, String), X509>,
}

impl<'a> ContactStore<'a> {
    /// The contacts of `home`.
    pub fn new(home: &'a Home) -> Self {
        ContactStore { home, stage: None }
    }

    /// A store whose writes are held in memory, for many changes written at once (`scan` harvests thousands
    /// of messages): every method reads its own staged changes, and nothing reaches the disk until
    /// [`ContactStore::commit`], which writes the certificate files and then the index (the commit point),
    /// each atomically. Dropping it uncommitted changes nothing.
    pub fn staged(home: &'a Home) -> Self {
        ContactStore {
            home,
            stage: Some(Default::default()),
        }
    }

    /// Writes what a [`ContactStore::staged`] store holds: certificate files first, then the index. Nothing
    /// to write (or a store that is not staged) writes nothing.
    pub fn commit(&self, _lock: &WriteLock) -> Result<()> {
        let Some(stage) = &self.stage else {
            return Ok(());
        };
        let (files, index) = {
            let mut st = stage.borrow_mut();
            (std::mem::take(&mut st.files), st.index.take())
        };
        let Some(index) = index else { return Ok(()) };
        if !files.is_empty() {
            self.home.ensure_dir(DIR)?;
            self.home.ensure_dir(INTER_DIR)?;
        }
        for (p, bytes) in &files {
            self.home.write_atomic(p, bytes)?;
        }
        self.home.ensure_dir(DIR)?;
        let mut bytes = serde_json::to_vec_pretty(&index).expect("serialize the index");
        bytes.push(b'\n');
        self.home.write_atomic(&self.index_path(), &bytes)
    }

    /// A certificate file's bytes: the staged ones when a staged write made it, else the file's.
    fn read_bytes(&self, path: &std::path::Path) -> Result<Vec<u8>> {
        if let Some(st) = &self.stage
            && let Some((_, b)) = st.borrow().files.iter().rev().find(|(p, _)| p == path)
        {
            return Ok(b.clone());
        }
        self.home.read(path)
    }

    /// A certificate file: written now, or staged.
    fn put_file(&self, path: &std::path::Path, bytes: &[u8]) -> Result<()> {
        match &self.stage {
            Some(st) => {
                st.borrow_mut()
                    .files
                    .push((path.to_path_buf(), bytes.to_vec()));
                Ok(())
            }
            None => self.home.write_atomic(path, bytes),
        }
    }

    fn index_path(&self) -> PathBuf {
        self.home.dir(DIR).join(INDEX)
    }

    fn read_index(&self) -> Result<Index> {
        if let Some(st) = &self.stage
            && let Some(idx) = &st.borrow().index
        {
            // (A copy per harvested message: cheap beside verifying it.)
            return Ok(idx.clone());
        }
        let path = self.index_path();
        let bytes = match self.home.read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Io && !path.exists() => return Ok(Index::default()),
            Err(e) => return Err(e),
        };
        let idx: Index = serde_json::from_slice(&bytes).map_err(|e| {
            Error::store(format!("the contacts index {} is damaged: {e}", path.display()))
                .hint("restore it from a backup ('smimekit id restore'), or delete it and add the contacts again")
        })?;
        let ok = idx.contacts.iter().all(|(k, m)| {
            is_fp(k)
                && m.fingerprint == *k
                && m.encryption_key_preference.as_deref().is_none_or(is_fp)
        }) && idx.intermediates.keys().all(|k| is_fp(k))
            && idx
                .addresses
                .values()
                .all(|a| a.pinned.as_deref().is_none_or(is_fp));
        if !ok && idx.format <= INDEX_FORMAT {
            return Err(Error::store(format!(
                "the contacts index {} is damaged: an entry is not a SHA-256 fingerprint",
                path.display()
            ))
            .hint("restore it from a backup ('smimekit id restore'), or delete it and add the contacts again"));
        }
        if idx.format > INDEX_FORMAT {
            return Err(Error::store(format!(
                "the contacts index {} has format {} but this smimekit reads format {INDEX_FORMAT}",
                path.display(),
                idx.format
            ))
            .hint("upgrade smimekit"));
        }
        Ok(idx)
    }

    fn write_index(&self, _lock: &WriteLock, idx: &Index) -> Result<()> {
        let mut idx = idx.clone();
        idx.format = INDEX_FORMAT;
        if let Some(st) = &self.stage {
            st.borrow_mut().index = Some(idx);
            return Ok(());
        }
        self.home.ensure_dir(DIR)?;
        let mut bytes = serde_json::to_vec_pretty(&idx).expect("serialize the index");
        bytes.push(b'\n');
        self.home.write_atomic(&self.index_path(), &bytes)
    }

    fn load_cert(&self, dir: &'static str, fp: &str) -> Result<X509> {
        let Some(st) = &self.stage else {
            return self.read_cert(dir, fp);
        };
        let key = (dir, fp.to_string());
        if let Some(c) = st.borrow().certs.get(&key) {
            return Ok(c.clone());
        }
        let c = self.read_cert(dir, fp)?;
        st.borrow_mut().certs.insert(key, c.clone());
        Ok(c)
    }

    fn read_cert(&self, dir: &str, fp: &str) -> Result<X509> {
        let path = self.home.dir(dir).join(format!("{fp}.pem"));
        let damaged = |why: String| {
            Error::store(format!("the contact file {} {why}", path.display())).hint(format!(
                "remove the entry with 'smimekit contact remove {}' and add the certificate again",
                &fp[..fp.len().min(16)]
            ))
        };
        let data = self
            .read_bytes(&path)
            .map_err(|e| damaged(format!("cannot be read ({e})")))?;
        // OpenSSL's error text is a detail, never part of the message.
        let c = X509::from_pem(&data).map_err(|e| damaged("is damaged".into()).detail(e))?;
        if cert::fingerprint(&c) != fp {
            return Err(damaged(
                "does not hold the certificate its name says".into(),
            ));
        }
        Ok(c)
    }

    fn contacts_of(&self, idx: &Index) -> Result<Vec<Contact>> {
        idx.contacts
            .iter()
            .map(|(fp, meta)| {
                Ok(Contact {
                    fingerprint: fp.clone(),
                    cert: self.load_cert(DIR, fp)?,
                    meta: meta.clone(),
                })
            })
            .collect()
    }

    /// Every contact certificate, sorted by fingerprint.
    pub fn list(&self) -> Result<Vec<Contact>> {
        self.contacts_of(&self.read_index()?)
    }

    /// The certificates serving `addr` (compared with [`address::same`]): it is among the certificate's
    /// addresses and the addresses it is bound to (see [`ContactStore::add_from_message`]).
    pub fn for_address(&self, addr: &str) -> Result<Vec<Contact>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|c| c.serves(addr))
            .collect())
    }

    /// The contact whose fingerprint starts with `prefix` (at least 8 hex digits).
    pub fn get(&self, prefix: &str) -> Result<Contact> {
        trust::find_by_fingerprint(self.list()?, prefix, |c| &c.fingerprint, "contact")
    }

    /// The certificate pinned for `addr` with `contact prefer`, if any.
    pub fn pinned(&self, addr: &str) -> Result<Option<String>> {
        let Some(key) = address::normalize(addr) else {
            return Ok(None);
        };
        Ok(self
            .read_index()?
            .addresses
            .get(&key)
            .and_then(|a| a.pinned.clone()))
    }

    /// The intermediate CA certificates kept for chain building (never contacts).
    pub fn intermediates(&self) -> Result<Vec<X509>> {
        self.read_index()?
            .intermediates
            .keys()
            .map(|fp| self.load_cert(INTER_DIR, fp))
            .collect()
    }

    /// Adds one contact certificate (see [`ContactStore::add_batch`]).
    pub fn add_cert(&self, lock: &WriteLock, c: &X509, prov: Provenance) -> Result<AddOutcome> {
        let mut r = self.add_batch(lock, vec![(c.clone(), prov)], &[])?;
        Ok(r.added.remove(0))
    }

    /// Keeps CA certificates for chain building. Self-issued (root) and non-CA certificates are refused.
    /// Returns how many were new.
    pub fn add_intermediates(&self, lock: &WriteLock, certs: &[X509]) -> Result<usize> {
        Ok(self.add_batch(lock, Vec::new(), certs)?.intermediates_added)
    }

    /// Adds contact certificates and intermediates in one commit: everything is validated first (a CA
    /// certificate or one without an e-mail address fails the whole batch and changes nothing), then the
    /// certificate files are written, then the index. A certificate already present only gains a provenance
    /// entry. For each new certificate, addresses that already had a certificate with another key or issuer
    /// are reported as [`KeyChange`]s.
    pub fn add_batch(
        &self,
        lock: &WriteLock,
        certs: Vec<(X509, Provenance)>,
        intermediates: &[X509],
    ) -> Result<AddReport> {
        self.add_inner(lock, certs, intermediates, None, None)
            .map(|(r, _)| r)
    }

    /// Harvest from a signed message (`smime::harvest`). The caller MUST have verified the message
    /// (integrity, trusted chain, From matches the signer's address — T40) and passes only the *signer's*
    /// certificate, the chain certificates it used (only non-root CA certificates are kept, as intermediates),
    /// the provenance, and the capabilities of that message. Certificates carried by the message but not part
    /// of the signer's chain must not be passed. One commit; returns the add outcome and what happened to the
    /// capabilities.
    ///
    /// The certificate is bound to `from` only (the address the verification checked): its other addresses
    /// are not used for encryption until the certificate is added explicitly (`contact add`) or a verified
    /// message from that address binds it too. A certificate listing eve@ and alice@ sent by eve never
    /// becomes a candidate for alice@.
    #[allow(clippy::too_many_arguments)]
    pub fn add_from_message(
        &self,
        lock: &WriteLock,
        signer: &X509,
        chain: &[X509],
        prov: Provenance,
        caps: Option<CapabilitiesUpdate>,
        now: i64,
        from: &str,
    ) -> Result<(AddOutcome, Option<CapsOutcome>)> {
        let inter = classify(chain.to_vec()).intermediates;
        let (mut r, co) = self.add_inner(
            lock,
            vec![(signer.clone(), prov)],
            &inter,
            caps.map(|c| (c, now)),
            Some(from),
        )?;
        Ok((r.added.remove(0), co))
    }

    fn add_inner(
        &self,
        lock: &WriteLock,
        certs: Vec<(X509, Provenance)>,
        intermediates: &[X509],
        caps: Option<(CapabilitiesUpdate, i64)>,
        bind: Option<&str>,
    ) -> Result<(AddReport, Option<CapsOutcome>)> {
        // 1. Validate everything before writing anything.
        for (c, _) in &certs {
            check_contact(c)?;
        }
        for c in intermediates {
            if !cert::is_ca(c) || self_issued(c) {
                return Err(Error::bad_input(format!(
                    "{} is not an intermediate CA certificate",
                    cert::name_to_string(c.subject_name())
                ))
                .hint("only non-root CA certificates are kept for chain building; trust roots with 'smimekit trust add'"));
            }
        }
        let mut idx = self.read_index()?;
        // Only the certificates (every file is still read, so a damaged store is still an error); their
        // metadata is not copied (a scan harvests thousands of messages through here).
        let mut known: Vec<(String, X509)> = idx
            .contacts
            .keys()
            .map(|fp| Ok((fp.clone(), self.load_cert(DIR, fp)?)))
            .collect::<Result<_>>()?;
        let now_s = cert::rfc3339(cert::now());
        let mut report = AddReport::default();
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        // 2. Stage the changes in memory.
        for (c, prov) in certs {
            let fp = cert::fingerprint(&c);
            // The addresses this certificate serves: all of its own when added explicitly, only the verified
            // From when harvested.
            let all = cert::emails(&c);
            let bound: Vec<String> = match bind {
                None => all.clone(),
                Some(b) => all
                    .iter()
                    .filter(|e| address::same(e, b))
                    .cloned()
                    .collect(),
            };
            if let Some(meta) = idx.contacts.get_mut(&fp) {
                if bind.is_none() {
                    // Added explicitly: the user vouches for it.
                    meta.unconfirmed.clear();
                }
                for a in &bound {
                    if !address::contains(&meta.addresses, a) {
                        meta.addresses.push(a.clone());
                    }
                }
                push_provenance(meta, prov);
                report.added.push(AddOutcome {
                    fingerprint: fp,
                    new: false,
                    key_changes: Vec::new(),
                });
                continue;
            }
            let key_changes = key_changes(&c, &fp, &known, &bound);
            // A harvested certificate with a new key for an address that had one waits for confirmation.
            let unconfirmed: Vec<String> = if bind.is_some() {
                key_changes
                    .iter()
                    .filter(|k| k.different_key)
                    .map(|k| k.address.clone())
                    .collect()
            } else {
                Vec::new()
            };
            let addresses = bound;
            files.push((
                self.home.dir(DIR).join(format!("{fp}.pem")),
                pem_with_header("smimekit contact", &c, &addresses)?,
            ));
            idx.contacts.insert(
                fp.clone(),
                ContactMeta {
                    fingerprint: fp.clone(),
                    addresses,
                    capabilities: None,
                    capabilities_time: None,
                    encryption_key_preference: None,
                    provenance: vec![prov],
                    added_at: now_s.clone(),
                    unconfirmed,
                },
            );
            known.push((fp.clone(), c));
            report.added.push(AddOutcome {
                fingerprint: fp,
                new: true,
                key_changes,
            });
        }
        for c in intermediates {
            let fp = cert::fingerprint(c);
            if idx.intermediates.contains_key(&fp) {
                continue;
            }
            files.push((
                self.home.dir(INTER_DIR).join(format!("{fp}.pem")),
                pem_with_header("smimekit intermediate CA (for chain building only)", c, &[])?,
            ));
            idx.intermediates.insert(
                fp,
                IntermediateMeta {
                    subject: cert::name_to_string(c.subject_name()),
                    added_at: now_s.clone(),
                },
            );
            report.intermediates_added += 1;
        }
        let mut caps_outcome = None;
        if let Some((update, now)) = caps {
            let fp = report
                .added
                .first()
                .map(|a| a.fingerprint.clone())
                .unwrap_or_default();
            caps_outcome = Some(apply_caps(&mut idx, &fp, update, now)?);
        }
        // 3. Certificate files first, then the index (the commit point).
        if self.stage.is_none() && !files.is_empty() {
            self.home.ensure_dir(DIR)?;
            if files
                .iter()
                .any(|(p, _)| p.starts_with(self.home.dir(INTER_DIR)))
            {
                self.home.ensure_dir(INTER_DIR)?;
            }
        }
        for (p, bytes) in &files {
            self.put_file(p, bytes)?;
        }
        self.write_index(lock, &idx)?;
        Ok((report, caps_outcome))
    }

    /// Records the capabilities and encryption-key preference of a verified signed message from the holder of
    /// `fingerprint`, unless its signing time is more than [`SIGNING_TIME_SKEW_SECS`] after `now` or not newer than
    /// the message the current record came from (RFC 8551 §2.7.1, T41). The newest message replaces the whole
    /// record (a newer message without capabilities clears them). Never call this for a message that did not
    /// verify.
    pub fn record_capabilities(
        &self,
        lock: &WriteLock,
        fingerprint: &str,
        update: CapabilitiesUpdate,
        now: i64,
    ) -> Result<CapsOutcome> {
        let mut idx = self.read_index()?;
        let out = apply_caps(&mut idx, fingerprint, update, now)?;
        if out == CapsOutcome::Recorded {
            self.write_index(lock, &idx)?;
        }
        Ok(out)
    }

    /// Removes contact certificates: every certificate carrying an address (when `query` contains '@'), or the
    /// one whose fingerprint starts with `query`. Pins naming them are dropped. The index is replaced first,
    /// then the files are deleted.
    pub fn remove(&self, lock: &WriteLock, query: &str) -> Result<Vec<Removed>> {
        let mut idx = self.read_index()?;
        let victims: Vec<String> = if query.contains('@') {
            let key = address_key(query, "contact's")?;
            let v: Vec<String> = idx
                .contacts
                .values()
                .filter(|m| address::contains(&m.addresses, query))
                .map(|m| m.fingerprint.clone())
                .collect();
            if v.is_empty() {
                return Err(
                    Error::not_found(format!("no contact certificate for {query}"))
                        .hint("run 'smimekit contact list' to see your contacts"),
                );
            }
            // The address's pin goes with its certificates.
            idx.addresses.remove(&key);
            v
        } else {
            let fps: Vec<String> = idx.contacts.keys().cloned().collect();
            vec![trust::find_by_fingerprint(fps, query, |s| s, "contact")?]
        };
        let mut removed = Vec::new();
        for fp in &victims {
            if let Some(m) = idx.contacts.remove(fp) {
                removed.push(Removed {
                    fingerprint: fp.clone(),
                    addresses: m.addresses,
                });
            }
        }
        idx.addresses
            .retain(|_, a| a.pinned.as_ref().is_none_or(|p| !victims.contains(p)));
        self.write_index(lock, &idx)?;
        for fp in &victims {
            let p = self.home.dir(DIR).join(format!("{fp}.pem"));
            match self.home.remove(&p) {
                Ok(()) => {}
                Err(_) if !p.exists() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Pins the certificate whose fingerprint starts with `fp_prefix` for `addr`: it is chosen for encryption
    /// whenever it is usable. Returns the full fingerprint.
    pub fn prefer(&self, lock: &WriteLock, addr: &str, fp_prefix: &str) -> Result<String> {
        let key = address_key(addr, "contact's")?;
        let mut idx = self.read_index()?;
        let fps: Vec<String> = idx.contacts.keys().cloned().collect();
        let fp = trust::find_by_fingerprint(fps, fp_prefix, |s| s, "contact")?;
        let meta = &idx.contacts[&fp];
        if !address::contains(&meta.addresses, addr) {
            return Err(Error::usage(format!(
                "the certificate {} is for {}, not {addr}",
                &fp[..16],
                meta.addresses.join(", ")
            ))
            .hint(format!(
                "run 'smimekit contact show {addr}' to see its certificates"
            )));
        }
        idx.addresses.entry(key).or_default().pinned = Some(fp.clone());
        // Pinning confirms a new key for this address.
        if let Some(m) = idx.contacts.get_mut(&fp) {
            m.unconfirmed.retain(|a| !address::same(a, addr));
        }
        self.write_index(lock, &idx)?;
        Ok(fp)
    }

    /// Drops the pin of `addr`; returns the fingerprint that was pinned.
    pub fn unpin(&self, lock: &WriteLock, addr: &str) -> Result<Option<String>> {
        let key = address_key(addr, "contact's")?;
        let mut idx = self.read_index()?;
        let old = idx.addresses.remove(&key).and_then(|a| a.pinned);
        if old.is_some() {
            self.write_index(lock, &idx)?;
        }
        Ok(old)
    }

    /// Certificates for `id backup`: each contact under its first address, then each intermediate under the
    /// empty address. (Metadata — capabilities, pins, provenance — is not part of a backup.)
    pub fn for_backup(&self) -> Result<Vec<(String, X509)>> {
        let mut out: Vec<(String, X509)> = self
            .list()?
            .into_iter()
            .map(|c| (c.emails().into_iter().next().unwrap_or_default(), c.cert))
            .collect();
        out.extend(
            self.intermediates()?
                .into_iter()
                .map(|c| (String::new(), c)),
        );
        Ok(out)
    }

    /// The contacts' metadata (capabilities, encryption-key preferences, provenance, pins) as JSON, for
    /// [`crate::pkcs12::backup`]: the certificates travel as certificate bags, this travels beside them.
    pub fn metadata_for_backup(&self) -> Result<Vec<u8>> {
        let mut idx = self.read_index()?;
        idx.intermediates.clear();
        Ok(serde_json::to_vec(&idx).expect("serializable index"))
    }

    /// Merges a backup's metadata into the contacts (after their certificates were restored), never outranking
    /// what is here. Every row is validated as the index reader and harvest validate theirs (SHA-256
    /// fingerprints, a capabilities time that parses and is not in the future, dotted OIDs); a bad row is
    /// dropped with a note and the rest is restored. Capabilities and the encryption-key preference are taken
    /// only for a contact that has none recorded here; provenance entries are added; a pin is restored only for
    /// an address that has no pin and no certificate of its own here (`local_before`: the contacts'
    /// fingerprints before the restore). Metadata of certificates not in the store is ignored. One commit.
    pub fn restore_metadata(
        &self,
        lock: &WriteLock,
        json: &[u8],
        local_before: &[String],
    ) -> Result<MetadataRestore> {
        let mut out = MetadataRestore::default();
        let Ok(backup) = serde_json::from_slice::<serde_json::Value>(json) else {
            out.notes.push(
                "the contacts metadata in the backup cannot be read; the certificates were restored without it"
                    .into(),
            );
            return Ok(out);
        };
        let now = cert::now();
        let mut idx = self.read_index()?;
        let rows = backup
            .get("contacts")
            .and_then(|c| c.as_object())
            .cloned()
            .unwrap_or_default();
        for (fp, row) in rows {
            let b = match serde_json::from_value::<ContactMeta>(row) {
                Ok(b) => b,
                Err(e) => {
                    out.notes
                        .push(format!("contact metadata {fp} dropped: malformed ({e})"));
                    continue;
                }
            };
            if let Err(why) = validate_restored_meta(&fp, &b, now) {
                out.notes.push(format!(
                    "contact metadata {} dropped: {why}",
                    header_text(&fp)
                ));
                continue;
            }
            let Some(cur) = idx.contacts.get_mut(&fp) else {
                continue;
            };
            let mut touched = false;
            // What was recorded here (by a verified message or the user) is never replaced by a backup.
            let local_caps = cur.capabilities_time.is_some()
                || cur.capabilities.is_some()
                || cur.encryption_key_preference.is_some();
            if !local_caps && b.capabilities_time.is_some() {
                cur.capabilities = b.capabilities.clone();
                cur.capabilities_time = b.capabilities_time.clone();
                cur.encryption_key_preference = b.encryption_key_preference.clone();
                touched = true;
            }
            for p in b.provenance {
                if !cur.provenance.contains(&p) {
                    cur.provenance.push(p);
                    touched = true;
                }
            }
            let n = cur.provenance.len();
            if n > MAX_PROVENANCE {
                cur.provenance.drain(..n - MAX_PROVENANCE);
            }
            out.changed += usize::from(touched);
        }
        for (addr, pin) in pins_in_metadata(json) {
            if !idx.contacts.contains_key(&pin) {
                continue;
            }
            let Some(key) = address::normalize(&addr) else {
                continue;
            };
            let local_other = local_before.iter().any(|fp| {
                *fp != pin
                    && idx
                        .contacts
                        .get(fp)
                        .is_some_and(|m| address::contains(&m.addresses, &addr))
            });
            let entry = idx.addresses.entry(key).or_default();
            if entry.pinned.is_some() || local_other {
                out.notes.push(format!(
                    "the backup's pin for {} was not restored: the address has its own certificate or pin here",
                    header_text(&addr)
                ));
                continue;
            }
            entry.pinned = Some(pin);
            out.changed += 1;
        }
        if out.changed > 0 {
            self.write_index(lock, &idx)?;
        }
        Ok(out)
    }

    /// Restores the certificates of a backup (merging): CA certificates become intermediates (roots are
    /// skipped), others contacts; entries that cannot be contacts are skipped with the reason. One commit.
    pub fn restore(&self, lock: &WriteLock, entries: Vec<(String, X509)>) -> Result<RestoreReport> {
        let mut report = RestoreReport::default();
        let now = cert::now();
        let c = classify(entries.into_iter().map(|(_, c)| c).collect());
        for r in &c.roots {
            report.skipped.push(format!(
                "{}: a root certificate (restore trust anchors with the anchors of the backup)",
                cert::name_to_string(r.subject_name())
            ));
        }
        // Contacts already present are kept as they are (no extra provenance entry): restoring twice changes
        // nothing.
        let present: std::collections::HashSet<String> =
            self.list()?.into_iter().map(|c| c.fingerprint).collect();
        let mut leaves = Vec::new();
        let mut already = 0;
        for l in c.leaves {
            if present.contains(&cert::fingerprint(&l)) {
                already += 1;
                continue;
            }
            match check_contact(&l) {
                Ok(()) => leaves.push((l, Provenance::backup(None, now))),
                Err(e) => report.skipped.push(e.to_string()),
            }
        }
        let r = self.add_batch(lock, leaves, &c.intermediates)?;
        report.added = r.added.iter().filter(|a| a.new).count();
        report.present = r.added.len() - report.added + already;
        report.intermediates = r.intermediates_added;
        Ok(report)
    }

    /// Chooses the certificate to encrypt to for `addr` and explains the choice (see the module docs). Fails
    /// only when the store cannot be read or `addr` is not an address; "nothing usable" is a [`Selection`]
    /// without `chosen` (use [`Selection::into_chosen`] for the errors `encrypt` reports).
    pub fn select_for_encryption(&self, addr: &str, opts: &SelectOptions) -> Result<Selection> {
        let norm = address_key(addr, "recipient's")?;
        let idx = self.read_index()?;
        let all: Vec<Contact> = self
            .contacts_of(&idx)?
            .into_iter()
            .filter(|c| c.serves(addr))
            .collect();
        let untrusted = self.intermediates()?;
        let chain_opts = ChainOptions {
            anchors: opts.anchors,
            system: opts.system,
            at: opts.now,
            purpose: Purpose::Encrypt,
        };
        let mut sel = Selection {
            address: addr.to_string(),
            chosen: None,
            reason: String::new(),
            usable: Vec::new(),
            rejected: Vec::new(),
            notes: BTreeMap::new(),
        };
        let mut cands: Vec<Candidate> = Vec::new();
        let pinned_fp = idx.addresses.get(&norm).and_then(|a| a.pinned.clone());
        let mut skipped_unconfirmed = Vec::new();
        for c in all.iter().cloned() {
            let nb = cert::unix_time(c.cert.not_before());
            let na = cert::unix_time(c.cert.not_after());
            let mut why = Vec::new();
            if address::contains(&c.meta.unconfirmed, addr)
                && pinned_fp.as_deref() != Some(c.fingerprint.as_str())
            {
                why.push(format!(
                    "a new key seen in a signed message, not yet confirmed: compare its fingerprint with {addr}, then 'smimekit contact prefer {addr} {}'",
                    &c.fingerprint[..16]
                ));
                skipped_unconfirmed.push(c.fingerprint[..16].to_string());
            }
            if opts.now > na {
                why.push(format!("expired on {}", cert::rfc3339(na)));
            }
            if opts.now < nb {
                why.push(format!("not valid before {}", cert::rfc3339(nb)));
            }
            if let Some(p) = encrypt_problem(&c.cert) {
                why.push(format!("cannot be used for encryption: {p}"));
            }
            let mut trusted = false;
            let mut note = None;
            if why.is_empty() {
                match trust::verify_chain(&c.cert, &untrusted, &chain_opts) {
                    Ok(r) if r.trusted => trusted = true,
                    Ok(r) => {
                        let err = r.error.unwrap_or_else(|| "unknown error".into());
                        if issuer_unknown(&err) {
                            note = Some(format!("issuer not trusted or unknown: {err}"));
                        } else {
                            why.push(format!(
                                "its certificate chain does not verify: {err}{}",
                                r.error_depth
                                    .map(|d| format!(" (at depth {d})"))
                                    .unwrap_or_default()
                            ));
                        }
                    }
                    Err(e) => why.push(format!("its certificate chain could not be checked: {e}")),
                }
            }
            if why.is_empty() {
                cands.push(Candidate {
                    contact: c,
                    trusted,
                    note,
                    not_before: nb,
                });
            } else {
                sel.rejected.push(Rejected {
                    fingerprint: c.fingerprint,
                    why,
                });
            }
        }
        if all.is_empty() {
            sel.reason = format!("no certificate for {addr}");
            return Ok(sel);
        }
        if cands.is_empty() {
            sel.reason = format!(
                "none of the {} certificate(s) for {addr} can be used",
                all.len()
            );
            return Ok(sel);
        }
        // Default ranking: trusted chain first, then newest notBefore, then lowest fingerprint.
        cands.sort_by(|a, b| {
            b.trusted
                .cmp(&a.trusted)
                .then(b.not_before.cmp(&a.not_before))
                .then(a.contact.fingerprint.cmp(&b.contact.fingerprint))
        });
        let mut reason_prefix = String::new();
        if !skipped_unconfirmed.is_empty() {
            reason_prefix = format!(
                "skipped the newer, unconfirmed certificate(s) {} ('smimekit contact prefer {addr} FINGERPRINT' to use one); ",
                skipped_unconfirmed.join(", ")
            );
        }
        let pinned = pinned_fp;
        let mut pick: Option<(usize, String)> = None;
        if let Some(p) = &pinned {
            if let Some(i) = cands.iter().position(|c| &c.contact.fingerprint == p) {
                pick = Some((i, "pinned with 'smimekit contact prefer'".into()));
            } else {
                let why = sel
                    .rejected
                    .iter()
                    .find(|r| &r.fingerprint == p)
                    .map(|r| r.why.join("; "))
                    .unwrap_or_else(|| "no longer in the store".into());
                reason_prefix += &format!(
                    "the pinned certificate {} is not usable ({why}); ",
                    &p[..16]
                );
            }
        }
        if pick.is_none() {
            // The contact's latest encryption-key preference: from the certificate whose recorded message is the
            // newest. Honoured only for a usable certificate of the same address with a trusted chain (T41).
            let latest = all
                .iter()
                .filter_map(|c| {
                    let t = c
                        .meta
                        .capabilities_time
                        .as_deref()
                        .and_then(|t| cert::parse_time(t).ok())?;
                    Some((t, c))
                })
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.fingerprint.cmp(&a.1.fingerprint)));
            if let Some((t, c)) = latest
                && let Some(pref) = &c.meta.encryption_key_preference
            {
                match cands.iter().position(|x| &x.contact.fingerprint == pref) {
                    Some(i) if cands[i].trusted => {
                        pick = Some((
                            i,
                            format!(
                                "named by the encryption-key preference of their latest signed message ({})",
                                cert::rfc3339(t)
                            ),
                        ))
                    }
                    Some(_) => {
                        reason_prefix += &format!(
                            "their preferred certificate {} is ignored because its chain is not trusted; ",
                            &pref[..16]
                        )
                    }
                    None => {
                        reason_prefix += &format!(
                            "their preferred certificate {} is not usable; ",
                            &pref[..16]
                        )
                    }
                }
            }
        }
        let (i, reason) = pick.unwrap_or_else(|| {
            let c = &cands[0];
            let r = if cands.len() == 1 {
                "the only usable certificate".to_string()
            } else if c.trusted && !cands[1].trusted {
                "the only usable certificate with a trusted chain".to_string()
            } else {
                format!(
                    "the newest of {} usable certificates (valid from {})",
                    cands.len(),
                    cert::rfc3339(c.not_before)
                )
            };
            (0, r)
        });
        let chosen = cands.remove(i);
        cands.insert(0, chosen);
        let c0 = &cands[0];
        sel.reason = format!("{reason_prefix}{reason}");
        if let Some(n) = &c0.note {
            sel.reason += &format!("; warning: {n}");
        }
        sel.chosen = Some(Chosen {
            fingerprint: c0.contact.fingerprint.clone(),
            cert: c0.contact.cert.clone(),
            chain_trusted: c0.trusted,
        });
        for c in &cands {
            sel.usable.push(c.contact.fingerprint.clone());
            if let Some(n) = &c.note {
                sel.notes.insert(c.contact.fingerprint.clone(), n.clone());
            }
        }
        Ok(sel)
    }
}

/// A full SHA-256 fingerprint: 64 lowercase hex digits.
fn is_fp(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn push_provenance(meta: &mut ContactMeta, prov: Provenance) {
    meta.provenance.push(prov);
    let n = meta.provenance.len();
    if n > MAX_PROVENANCE {
        meta.provenance.drain(..n - MAX_PROVENANCE);
    }
}

/// The normalized form of `addr` (the index key), or the usage error for a command given something that is not
/// an address; `whose` names it in the hint ("contact's", "recipient's").
fn address_key(addr: &str, whose: &str) -> Result<String> {
    address::normalize(addr).ok_or_else(|| {
        Error::usage(format!("'{addr}' is not an e-mail address"))
            .hint(format!("give the {whose} address, e.g. bob@example.org"))
    })
}

fn apply_caps(
    idx: &mut Index,
    fp: &str,
    update: CapabilitiesUpdate,
    now: i64,
) -> Result<CapsOutcome> {
    let meta = idx
        .contacts
        .get_mut(fp)
        .ok_or_else(|| Error::not_found(format!("no contact certificate with fingerprint {fp}")))?;
    if let Some(p) = &update.encryption_key_preference
        && !is_fp(p)
    {
        return Err(Error::bad_input(format!(
            "the encryption-key preference '{p}' is not a SHA-256 fingerprint"
        )));
    }
    if update.signing_time > now + SIGNING_TIME_SKEW_SECS {
        return Ok(CapsOutcome::FutureSigningTime);
    }
    if let Some(old) = meta
        .capabilities_time
        .as_deref()
        .and_then(|t| cert::parse_time(t).ok())
        && update.signing_time <= old
    {
        return Ok(CapsOutcome::NotNewer);
    }
    meta.capabilities = update.capabilities;
    meta.capabilities_time = Some(cert::rfc3339(update.signing_time));
    meta.encryption_key_preference = update.encryption_key_preference;
    Ok(CapsOutcome::Recorded)
}

/// What [`ContactStore::restore_metadata`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MetadataRestore {
    /// Contacts and addresses that gained something.
    pub changed: usize,
    /// Rows dropped or not applied, with the reason.
    pub notes: Vec<String>,
}

/// The pins (address, fingerprint) in a backup's contacts metadata whose fingerprint is well-formed.
pub fn pins_in_metadata(json: &[u8]) -> Vec<(String, String)> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else {
        return Vec::new();
    };
    v.get("addresses")
        .and_then(|a| a.as_object())
        .map(|a| {
            a.iter()
                .filter_map(|(addr, m)| {
                    let pin = m.get("pinned")?.as_str()?;
                    (is_fp(pin) && address::normalize(addr).is_some())
                        .then(|| (addr.clone(), pin.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A restored metadata row, checked as the index reader checks fingerprints and as harvest checks signing
/// times (a capabilities time in the future would outrank every genuine message).
fn validate_restored_meta(
    fp: &str,
    m: &ContactMeta,
    now: i64,
) -> std::result::Result<(), &'static str> {
    if !is_fp(fp) || m.fingerprint != fp {
        return Err("its fingerprint is not a SHA-256 fingerprint");
    }
    if m.encryption_key_preference
        .as_deref()
        .is_some_and(|p| !is_fp(p))
    {
        return Err("its encryption-key preference is not a SHA-256 fingerprint");
    }
    if let Some(t) = &m.capabilities_time {
        match cert::parse_time(t) {
            Ok(t) if t <= now + SIGNING_TIME_SKEW_SECS => {}
            Ok(_) => return Err("its capabilities time is in the future"),
            Err(_) => return Err("its capabilities time is not a time"),
        }
    }
    let oid = |o: &String| {
        !o.is_empty()
            && o.len() <= 128
            && o.split('.').count() >= 2
            && o.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if m.capabilities.as_ref().is_some_and(|c| !c.iter().all(oid)) {
        return Err("its capabilities are not object identifiers");
    }
    Ok(())
}

fn key_changes(
    new: &X509Ref,
    new_fp: &str,
    known: &[(String, X509)],
    addrs: &[String],
) -> Vec<KeyChange> {
    let new_key = new.public_key().ok();
    let new_issuer = new.issuer_name().to_der().ok();
    let mut out = Vec::new();
    // The canonical addresses of each known certificate, computed once (not once per new address).
    let known_addrs: Vec<std::collections::HashSet<String>> = known
        .iter()
        .map(|(_, c)| {
            cert::emails(c)
                .iter()
                .filter_map(|e| address::normalize(e))
                .collect()
        })
        .collect();
    for addr in addrs.iter().cloned() {
        let Some(norm) = address::normalize(&addr) else {
            continue;
        };
        let olds: Vec<&(String, X509)> = known
            .iter()
            .zip(&known_addrs)
            .filter(|((fp, _), addrs)| fp != new_fp && addrs.contains(&norm))
            .map(|(k, _)| k)
            .collect();
        let Some(newest) = olds.iter().max_by(|a, b| {
            cert::unix_time(a.1.not_before())
                .cmp(&cert::unix_time(b.1.not_before()))
                .then(b.0.cmp(&a.0))
        }) else {
            continue;
        };
        let different_key = !olds.iter().any(|(_, c)| match (&new_key, c.public_key()) {
            (Some(n), Ok(o)) => n.public_eq(&o),
            _ => false,
        });
        let different_issuer = !olds
            .iter()
            .any(|(_, c)| c.issuer_name().to_der().ok() == new_issuer);
        if different_key || different_issuer {
            out.push(KeyChange {
                address: addr,
                old_fingerprint: newest.0.clone(),
                new_fingerprint: new_fp.to_string(),
                different_issuer,
                different_key,
            });
        }
    }
    out
}

fn header_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn pem_with_header(title: &str, c: &X509Ref, addresses: &[String]) -> Result<Vec<u8>> {
    let mut out = format!(
        "# {title}\n# subject: {}\n",
        header_text(&cert::name_to_string(c.subject_name()))
    );
    if !addresses.is_empty() {
        out += &format!("# addresses: {}\n", header_text(&addresses.join(", ")));
    }
    let mut out = out.into_bytes();
    out.extend(c.to_pem()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::x509::X509NameBuilder;
    use openssl::x509::extension::{
        BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    };

    const DAY: i64 = 86_400;

    fn rsa() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }
    fn ec() -> PKey<Private> {
        let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
    }

    struct Ca {
        key: PKey<Private>,
        cert: X509,
    }

    /// What a test certificate looks like.
    struct Spec<'a> {
        cn: &'a str,
        email: Option<&'a str>,
        ku: Option<&'a [&'a str]>,
        eku: Option<&'a str>,
        from: i64,
        until: i64,
        ca: bool,
    }

    impl<'a> Spec<'a> {
        fn leaf(email: &'a str) -> Self {
            let now = cert::now();
            Spec {
                cn: "leaf",
                email: Some(email),
                ku: Some(&["digitalSignature", "keyEncipherment", "keyAgreement"]),
                eku: Some("emailProtection"),
                from: now - 10 * DAY,
                until: now + 300 * DAY,
                ca: false,
            }
        }

        /// A CA certificate `cn` with keyUsage `ku`, valid `from`..`until`.
        fn ca(cn: &'a str, ku: &'a [&'a str], from: i64, until: i64) -> Self {
            Spec {
                cn,
                email: None,
                ku: Some(ku),
                eku: None,
                from,
                until,
                ca: true,
            }
        }
    }

    fn make(spec: &Spec, key: &PKey<Private>, issuer: Option<&Ca>) -> X509 {
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_nid(Nid::COMMONNAME, spec.cn).unwrap();
        let n = n.build();
        b.set_subject_name(&n).unwrap();
        b.set_issuer_name(issuer.map(|i| i.cert.subject_name()).unwrap_or(&n))
            .unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(spec.from).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(spec.until).unwrap())
            .unwrap();
        if spec.ca {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
        } else {
            b.append_extension(BasicConstraints::new().build().unwrap())
                .unwrap();
        }
        if let Some(ku) = spec.ku {
            let mut k = KeyUsage::new();
            k.critical();
            for u in ku {
                match *u {
                    "digitalSignature" => k.digital_signature(),
                    "keyEncipherment" => k.key_encipherment(),
                    "keyAgreement" => k.key_agreement(),
                    "keyCertSign" => k.key_cert_sign(),
                    "cRLSign" => k.crl_sign(),
                    other => panic!("{other}"),
                };
            }
            b.append_extension(k.build().unwrap()).unwrap();
        }
        if let Some(e) = spec.eku {
            let mut x = ExtendedKeyUsage::new();
            match e {
                "emailProtection" => x.email_protection(),
                "serverAuth" => x.server_auth(),
                other => panic!("{other}"),
            };
            b.append_extension(x.build().unwrap()).unwrap();
        }
        if let Some(email) = spec.email {
            let san = SubjectAlternativeName::new()
                .email(email)
                .build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))
                .unwrap();
            b.append_extension(san).unwrap();
        }
        let signer = issuer.map(|i| &i.key).unwrap_or(key);
        b.sign(signer, MessageDigest::sha256()).unwrap();
        b.build()
    }

    /// A CA made from `spec` (an EC key), signed by `issuer` or self-signed.
    fn new_ca_from(spec: &Spec, issuer: Option<&Ca>) -> Ca {
        let key = ec();
        let cert = make(spec, &key, issuer);
        Ca { key, cert }
    }

    /// A self-signed root `cn`, valid well around now.
    fn new_ca(cn: &str) -> Ca {
        let now = cert::now();
        let spec = Spec::ca(
            cn,
            &["keyCertSign", "cRLSign"],
            now - 1000 * DAY,
            now + 1000 * DAY,
        );
        new_ca_from(&spec, None)
    }

    fn issue(ca: &Ca, spec: &Spec) -> X509 {
        make(spec, &ec(), Some(ca))
    }

    /// A default leaf for `email` issued by `ca` whose validity starts `days` days from now (negative: in the
    /// past), so tests can order certificates by notBefore.
    fn issue_from(ca: &Ca, email: &str, days: i64) -> X509 {
        issue(
            ca,
            &Spec {
                from: cert::now() + days * DAY,
                ..Spec::leaf(email)
            },
        )
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        home: Home,
    }

    fn fixture() -> Fixture {
        let d = tempfile::tempdir().unwrap();
        let home = Home::open(&d.path().join("h")).unwrap();
        Fixture { _dir: d, home }
    }

    fn add(f: &Fixture, c: &X509) -> AddOutcome {
        let lock = f.home.lock().unwrap();
        ContactStore::new(&f.home)
            .add_cert(&lock, c, Provenance::file("test.pem", cert::now()))
            .unwrap()
    }

    fn select(f: &Fixture, addr: &str, anchors: &[X509]) -> Selection {
        ContactStore::new(&f.home)
            .select_for_encryption(
                addr,
                &SelectOptions {
                    anchors,
                    system: false,
                    now: cert::now(),
                },
            )
            .unwrap()
    }

    fn chosen(s: &Selection) -> &str {
        &s.chosen.as_ref().expect("a chosen certificate").fingerprint
    }

    #[test]
    fn expired_is_rejected_even_if_newer() {
        let f = fixture();
        let ca = new_ca("CA");
        let now = cert::now();
        let valid = issue(&ca, &Spec::leaf("bob@example.org"));
        let expired = issue(
            &ca,
            &Spec {
                from: now - 5 * DAY,
                until: now - DAY,
                ..Spec::leaf("bob@example.org")
            },
        );
        add(&f, &valid);
        add(&f, &expired);
        let s = select(&f, "bob@example.org", std::slice::from_ref(&ca.cert));
        assert_eq!(chosen(&s), cert::fingerprint(&valid));
        assert!(s.chosen.as_ref().unwrap().chain_trusted);
        let why = s.why_not(&cert::fingerprint(&expired)).unwrap();
        assert!(why.contains("expired"), "{why}");
    }

    #[test]
    fn not_yet_valid_is_rejected() {
        let f = fixture();
        let ca = new_ca("CA");
        let future = issue_from(&ca, "bob@example.org", 5);
        add(&f, &future);
        let s = select(&f, "bob@example.org", &[]);
        assert!(s.chosen.is_none());
        assert!(s.rejected[0].why[0].contains("not valid before"));
        let e = s.into_chosen().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unusable);
        assert!(e.message().contains("not valid before"), "{e}");
    }

    #[test]
    fn signing_only_is_rejected() {
        let f = fixture();
        let ca = new_ca("CA");
        let now = cert::now();
        // RSA: keyEncipherment needed.
        let sign_only = make(
            &Spec {
                ku: Some(&["digitalSignature"]),
                from: now - DAY,
                ..Spec::leaf("bob@example.org")
            },
            &rsa(),
            Some(&ca),
        );
        let enc = make(
            &Spec {
                ku: Some(&["digitalSignature", "keyEncipherment"]),
                from: now - 30 * DAY,
                ..Spec::leaf("bob@example.org")
            },
            &rsa(),
            Some(&ca),
        );
        add(&f, &sign_only);
        add(&f, &enc);
        let s = select(&f, "bob@example.org", std::slice::from_ref(&ca.cert));
        assert_eq!(chosen(&s), cert::fingerprint(&enc));
        let why = s.why_not(&cert::fingerprint(&sign_only)).unwrap();
        assert!(why.contains("keyEncipherment"), "{why}");
    }

    #[test]
    fn rsa_needs_key_encipherment_and_ec_needs_key_agreement() {
        let f = fixture();
        let ca = new_ca("CA");
        let rsa_ka = make(
            &Spec {
                ku: Some(&["digitalSignature", "keyAgreement"]),
                ..Spec::leaf("rsa@example.org")
            },
            &rsa(),
            Some(&ca),
        );
        let ec_ke = make(
            &Spec {
                ku: Some(&["digitalSignature", "keyEncipherment"]),
                ..Spec::leaf("ec@example.org")
            },
            &ec(),
            Some(&ca),
        );
        let ec_ka = make(
            &Spec {
                ku: Some(&["digitalSignature", "keyAgreement"]),
                ..Spec::leaf("ec2@example.org")
            },
            &ec(),
            Some(&ca),
        );
        let rsa_ke = make(
            &Spec {
                ku: Some(&["keyEncipherment"]),
                ..Spec::leaf("rsa2@example.org")
            },
            &rsa(),
            Some(&ca),
        );
        for c in [&rsa_ka, &ec_ke, &ec_ka, &rsa_ke] {
            add(&f, c);
        }
        let anchors = [ca.cert.clone()];
        let s = select(&f, "rsa@example.org", &anchors);
        assert!(s.chosen.is_none());
        assert!(s.rejected[0].why[0].contains("keyEncipherment"));
        let s = select(&f, "ec@example.org", &anchors);
        assert!(s.chosen.is_none());
        assert!(s.rejected[0].why[0].contains("keyAgreement"));
        assert_eq!(
            chosen(&select(&f, "ec2@example.org", &anchors)),
            cert::fingerprint(&ec_ka)
        );
        assert_eq!(
            chosen(&select(&f, "rsa2@example.org", &anchors)),
            cert::fingerprint(&rsa_ke)
        );
    }

    #[test]
    fn eku_without_email_protection_is_rejected() {
        let f = fixture();
        let ca = new_ca("CA");
        let c = issue(
            &ca,
            &Spec {
                eku: Some("serverAuth"),
                ..Spec::leaf("bob@example.org")
            },
        );
        add(&f, &c);
        let s = select(&f, "bob@example.org", std::slice::from_ref(&ca.cert));
        assert!(s.chosen.is_none());
        assert!(s.rejected[0].why.join(";").contains("emailProtection"));
    }

    #[test]
    fn newest_not_before_wins_then_pin_then_unpin() {
        let f = fixture();
        let ca = new_ca("CA");
        let old = issue_from(&ca, "bob@example.org", -50);
        let new = issue_from(&ca, "bob@example.org", -5);
        add(&f, &old);
        add(&f, &new);
        let anchors = [ca.cert.clone()];
        let s = select(&f, "bob@example.org", &anchors);
        assert_eq!(chosen(&s), cert::fingerprint(&new));
        assert!(s.reason.contains("newest"), "{}", s.reason);
        assert_eq!(s.usable.len(), 2);

        let store = ContactStore::new(&f.home);
        let lock = f.home.lock().unwrap();
        let fp = store
            .prefer(&lock, "BOB@example.org", &cert::fingerprint(&old)[..12])
            .unwrap();
        assert_eq!(fp, cert::fingerprint(&old));
        let s = select(&f, "bob@example.org", &anchors);
        assert_eq!(chosen(&s), cert::fingerprint(&old));
        assert!(s.reason.contains("pinned"));
        assert_eq!(store.pinned("bob@EXAMPLE.org").unwrap(), Some(fp.clone()));
        // A certificate of another address cannot be pinned.
        let carol = issue(&ca, &Spec::leaf("carol@example.org"));
        drop(lock);
        add(&f, &carol);
        let lock = f.home.lock().unwrap();
        let e = store
            .prefer(&lock, "bob@example.org", &cert::fingerprint(&carol))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert_eq!(store.unpin(&lock, "bob@example.org").unwrap(), Some(fp));
        let s = select(&f, "bob@example.org", &anchors);
        assert_eq!(chosen(&s), cert::fingerprint(&new));
    }

    #[test]
    fn pinned_but_expired_falls_back_with_explanation() {
        let f = fixture();
        let ca = new_ca("CA");
        let now = cert::now();
        let expired = issue(
            &ca,
            &Spec {
                from: now - 50 * DAY,
                until: now - DAY,
                ..Spec::leaf("bob@example.org")
            },
        );
        let good = issue(&ca, &Spec::leaf("bob@example.org"));
        add(&f, &expired);
        add(&f, &good);
        let lock = f.home.lock().unwrap();
        ContactStore::new(&f.home)
            .prefer(&lock, "bob@example.org", &cert::fingerprint(&expired))
            .unwrap();
        let s = select(&f, "bob@example.org", std::slice::from_ref(&ca.cert));
        assert_eq!(chosen(&s), cert::fingerprint(&good));
        assert!(s.reason.contains("pinned certificate"), "{}", s.reason);
    }

    #[test]
    fn encryption_key_preference_wins_over_newest_only_with_trusted_chain() {
        let f = fixture();
        let ca = new_ca("CA");
        let now = cert::now();
        let enc = issue_from(&ca, "bob@example.org", -50);
        let signing = issue_from(&ca, "bob@example.org", -5);
        add(&f, &enc);
        add(&f, &signing);
        let store = ContactStore::new(&f.home);
        let lock = f.home.lock().unwrap();
        let out = store
            .record_capabilities(
                &lock,
                &cert::fingerprint(&signing),
                CapabilitiesUpdate {
                    capabilities: Some(vec!["2.16.840.1.101.3.4.1.42".into()]),
                    signing_time: now - 60,
                    encryption_key_preference: Some(cert::fingerprint(&enc)),
                },
                now,
            )
            .unwrap();
        assert_eq!(out, CapsOutcome::Recorded);
        let s = select(&f, "bob@example.org", std::slice::from_ref(&ca.cert));
        assert_eq!(chosen(&s), cert::fingerprint(&enc));
        assert!(s.reason.contains("preference"), "{}", s.reason);
        // Without a trusted chain the preference is not honoured (T41).
        let s = select(&f, "bob@example.org", &[]);
        assert_eq!(chosen(&s), cert::fingerprint(&signing));
        assert!(s.reason.contains("not trusted"), "{}", s.reason);
    }

    #[test]
    fn preference_for_another_identity_is_ignored() {
        let f = fixture();
        let ca = new_ca("CA");
        let now = cert::now();
        let bob = issue(&ca, &Spec::leaf("bob@example.org"));
        let carol = issue(&ca, &Spec::leaf("carol@example.org"));
        add(&f, &bob);
        add(&f, &carol);
        let lock = f.home.lock().unwrap();
        ContactStore::new(&f.home)
            .record_capabilities(
                &lock,
                &cert::fingerprint(&bob),
                CapabilitiesUpdate {
                    capabilities: None,
                    signing_time: now,
                    encryption_key_preference: Some(cert::fingerprint(&carol)),
                },
                now,
            )
            .unwrap();
        let s = select(&f, "bob@example.org", std::slice::from_ref(&ca.cert));
        assert_eq!(chosen(&s), cert::fingerprint(&bob));
        assert!(s.reason.contains("not usable"), "{}", s.reason);
        // A preference that is not a fingerprint is refused.
        let e = ContactStore::new(&f.home)
            .record_capabilities(
                &lock,
                &cert::fingerprint(&bob),
                CapabilitiesUpdate {
                    capabilities: None,
                    signing_time: now + 1,
                    encryption_key_preference: Some("../../x".into()),
                },
                now,
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
    }

    #[test]
    fn index_entries_must_be_fingerprints() {
        let f = fixture();
        let _lock = f.home.lock().unwrap();
        f.home.ensure_dir(DIR).unwrap();
        let evil = r#"{"format":1,"contacts":{"../../ids/x":{"fingerprint":"../../ids/x","addresses":[],"provenance":[],"added_at":"now"}}}"#;
        std::fs::write(f.home.dir(DIR).join(INDEX), evil).unwrap();
        let e = ContactStore::new(&f.home).list().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store);
        assert!(e.message().contains("damaged"));
    }

    #[test]
    fn mixed_case_and_idn_addresses() {
        let f = fixture();
        let ca = new_ca("CA");
        let c = issue(&ca, &Spec::leaf("Bob.Smith@Example.ORG"));
        add(&f, &c);
        let s = select(&f, "bob.smith@example.org", std::slice::from_ref(&ca.cert));
        assert_eq!(chosen(&s), cert::fingerprint(&c));
        let s = select(&f, "BOB.SMITH@EXAMPLE.org", std::slice::from_ref(&ca.cert));
        assert_eq!(chosen(&s), cert::fingerprint(&c));

        let idn = issue(&ca, &Spec::leaf("user@xn--bcher-kva.example"));
        add(&f, &idn);
        let s = select(&f, "user@bücher.example", std::slice::from_ref(&ca.cert));
        assert_eq!(chosen(&s), cert::fingerprint(&idn));
        // UTF-8 everywhere, odd input: no crash, just nothing found or a usage error.
        let store = ContactStore::new(&f.home);
        let opts = SelectOptions {
            anchors: &[],
            system: false,
            now: cert::now(),
        };
        for a in [
            "ünïcødé@例え.テスト",
            "用户@例子.广告",
            "\u{202e}evil@example.org",
        ] {
            if let Ok(s) = store.select_for_encryption(a, &opts) {
                assert!(s.chosen.is_none());
                assert_eq!(s.into_chosen().unwrap_err().kind(), ErrorKind::NotFound);
            }
        }
        for a in ["", "no-at-sign", "a\0b@example.org", "@"] {
            let e = store.select_for_encryption(a, &opts).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage);
        }
        assert!(store.for_address("ünïcødé@例え.テスト").unwrap().is_empty());
    }

    #[test]
    fn no_certificate_is_not_found_with_hint() {
        let f = fixture();
        let e = select(&f, "bob@example.org", &[])
            .into_chosen()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.message(), "no certificate for bob@example.org");
        assert!(e.hint_text().unwrap().contains("smimekit contact add FILE"));
    }

    #[test]
    fn unknown_issuer_is_usable_but_ranks_after_trusted() {
        let f = fixture();
        let ca = new_ca("CA");
        let other = new_ca("Unknown CA");
        let trusted = issue_from(&ca, "bob@example.org", -50);
        let unknown = issue_from(&other, "bob@example.org", -1);
        add(&f, &trusted);
        add(&f, &unknown);
        let s = select(&f, "bob@example.org", std::slice::from_ref(&ca.cert));
        assert_eq!(chosen(&s), cert::fingerprint(&trusted));
        assert!(s.reason.contains("trusted chain"), "{}", s.reason);
        assert!(s.notes.contains_key(&cert::fingerprint(&unknown)));
        // Alone, an unknown issuer is still usable (with a warning in the reason).
        let s = select(&f, "bob@example.org", &[]);
        assert!(!s.chosen.as_ref().unwrap().chain_trusted);
        assert!(s.reason.contains("warning"));
    }

    #[test]
    fn chain_through_stored_intermediate() {
        let f = fixture();
        let root = new_ca("Root");
        let now = cert::now();
        let int = new_ca_from(
            &Spec::ca(
                "Intermediate",
                &["keyCertSign", "cRLSign"],
                now - 100 * DAY,
                now + 100 * DAY,
            ),
            Some(&root),
        );
        let leaf = issue(&int, &Spec::leaf("bob@example.org"));
        let store = ContactStore::new(&f.home);
        let lock = f.home.lock().unwrap();
        let r = store
            .add_batch(
                &lock,
                vec![(leaf.clone(), Provenance::file("b.p7b", now))],
                std::slice::from_ref(&int.cert),
            )
            .unwrap();
        assert_eq!(r.intermediates_added, 1);
        // Roots and leaves are not intermediates.
        assert!(
            store
                .add_intermediates(&lock, std::slice::from_ref(&root.cert))
                .is_err()
        );
        assert!(
            store
                .add_intermediates(&lock, std::slice::from_ref(&leaf))
                .is_err()
        );
        assert_eq!(store.intermediates().unwrap().len(), 1);
        assert_eq!(
            store.list().unwrap().len(),
            1,
            "intermediates are not contacts"
        );
        drop(lock);
        let s = select(&f, "bob@example.org", std::slice::from_ref(&root.cert));
        assert!(s.chosen.as_ref().unwrap().chain_trusted);
    }

    #[test]
    fn broken_chain_is_rejected() {
        let f = fixture();
        let root = new_ca("Root");
        let now = cert::now();
        // An intermediate that expired: the chain is known and broken.
        let int = new_ca_from(
            &Spec::ca(
                "Intermediate",
                &["keyCertSign", "cRLSign"],
                now - 100 * DAY,
                now - DAY,
            ),
            Some(&root),
        );
        let leaf = issue(&int, &Spec::leaf("bob@example.org"));
        let lock = f.home.lock().unwrap();
        ContactStore::new(&f.home)
            .add_batch(
                &lock,
                vec![(leaf.clone(), Provenance::file("b.pem", now))],
                std::slice::from_ref(&int.cert),
            )
            .unwrap();
        drop(lock);
        let s = select(&f, "bob@example.org", std::slice::from_ref(&root.cert));
        assert!(s.chosen.is_none());
        assert!(s.rejected[0].why[0].contains("chain"), "{:?}", s.rejected);
    }

    fn caps_of(f: &Fixture, fp: &str) -> ContactMeta {
        ContactStore::new(&f.home).get(fp).unwrap().meta
    }

    #[test]
    fn capabilities_update_rules() {
        let f = fixture();
        let ca = new_ca("CA");
        let c = issue(&ca, &Spec::leaf("alice@example.com"));
        let fp = add(&f, &c).fingerprint;
        let store = ContactStore::new(&f.home);
        let lock = f.home.lock().unwrap();
        let now = cert::now();
        let upd = |caps: &str, t: i64| CapabilitiesUpdate {
            capabilities: Some(vec![caps.to_string()]),
            signing_time: t,
            encryption_key_preference: None,
        };
        // Far future: ignored (RFC 8551 §2.7.1).
        assert_eq!(
            store
                .record_capabilities(&lock, &fp, upd("future", now + 3600), now)
                .unwrap(),
            CapsOutcome::FutureSigningTime
        );
        assert!(caps_of(&f, &fp).capabilities.is_none());
        // Within the clock skew: accepted.
        assert_eq!(
            store
                .record_capabilities(&lock, &fp, upd("skew", now + 200), now)
                .unwrap(),
            CapsOutcome::Recorded
        );
        assert_eq!(
            caps_of(&f, &fp).capabilities,
            Some(vec!["skew".to_string()])
        );
        // Older: ignored.
        assert_eq!(
            store
                .record_capabilities(&lock, &fp, upd("older", now - DAY), now)
                .unwrap(),
            CapsOutcome::NotNewer
        );
        let m = caps_of(&f, &fp);
        assert_eq!(m.capabilities, Some(vec!["skew".to_string()]));
        assert_eq!(m.capabilities_time, Some(cert::rfc3339(now + 200)));
        // Newer: replaces, in order.
        let newer = CapabilitiesUpdate {
            capabilities: Some(vec!["b".into(), "a".into()]),
            signing_time: now + 250,
            encryption_key_preference: None,
        };
        assert_eq!(
            store
                .record_capabilities(&lock, &fp, newer, now + 100)
                .unwrap(),
            CapsOutcome::Recorded
        );
        assert_eq!(
            caps_of(&f, &fp).capabilities,
            Some(vec!["b".to_string(), "a".to_string()])
        );
        // Unknown certificate: NotFound.
        assert_eq!(
            store
                .record_capabilities(&lock, &"0".repeat(64), upd("x", now), now)
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn add_from_message_records_caps_and_intermediates_in_one_commit() {
        let f = fixture();
        let root = new_ca("Root");
        let now = cert::now();
        let c = issue(&root, &Spec::leaf("alice@example.com"));
        let lock = f.home.lock().unwrap();
        let store = ContactStore::new(&f.home);
        let (out, caps) = store
            .add_from_message(
                &lock,
                &c,
                std::slice::from_ref(&root.cert),
                Provenance::message(
                    Some("<1@example.com>"),
                    Some("Tue, 24 Nov 2026 10:00:00 +0000"),
                    Some("alice@example.com"),
                    now,
                ),
                Some(CapabilitiesUpdate {
                    capabilities: Some(vec!["2.16.840.1.101.3.4.1.46".into()]),
                    signing_time: now - 10,
                    encryption_key_preference: None,
                }),
                now,
                "alice@example.com",
            )
            .unwrap();
        assert!(out.new);
        assert_eq!(caps, Some(CapsOutcome::Recorded));
        // The root that came with the message is not kept (never a trust anchor, T41).
        assert!(store.intermediates().unwrap().is_empty());
        let m = store.get(&out.fingerprint).unwrap().meta;
        assert_eq!(m.provenance[0].source, Source::Message);
        assert_eq!(
            m.provenance[0].message_id.as_deref(),
            Some("<1@example.com>")
        );
    }

    #[test]
    fn ca_certificate_is_rejected() {
        let f = fixture();
        let ca = new_ca("CA");
        let lock = f.home.lock().unwrap();
        let e = ContactStore::new(&f.home)
            .add_cert(&lock, &ca.cert, Provenance::file("ca.pem", 0))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert!(e.message().contains("CA certificates are not contacts"));
        assert!(e.hint_text().unwrap().contains("smimekit trust add"));
    }

    #[test]
    fn certificate_without_email_is_rejected() {
        let f = fixture();
        let ca = new_ca("CA");
        let c = issue(
            &ca,
            &Spec {
                email: None,
                ..Spec::leaf("x@example.org")
            },
        );
        let lock = f.home.lock().unwrap();
        let e = ContactStore::new(&f.home)
            .add_cert(&lock, &c, Provenance::file("c.pem", 0))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert!(e.message().contains("no e-mail address"), "{e}");
    }

    #[test]
    fn key_change_is_reported() {
        let f = fixture();
        let ca1 = new_ca("CA one");
        let ca2 = new_ca("CA two");
        let now = cert::now();
        let first = issue_from(&ca1, "alice@example.com", -100);
        assert!(add(&f, &first).key_changes.is_empty());
        // Same issuer, new key (a renewal or a replacement).
        let key2 = ec();
        let second = make(
            &Spec {
                from: now - 50 * DAY,
                ..Spec::leaf("Alice@Example.com")
            },
            &key2,
            Some(&ca1),
        );
        let out = add(&f, &second);
        assert!(out.new);
        assert_eq!(out.key_changes.len(), 1);
        let k = &out.key_changes[0];
        assert!(k.different_key && !k.different_issuer);
        assert_eq!(k.old_fingerprint, cert::fingerprint(&first));
        assert_eq!(k.new_fingerprint, cert::fingerprint(&second));
        assert!(k.message().contains("impersonation"));
        // Same key as before, other issuer.
        let third = make(&Spec::leaf("alice@example.com"), &key2, Some(&ca2));
        let out = add(&f, &third);
        let k = &out.key_changes[0];
        assert!(!k.different_key && k.different_issuer);
        assert_eq!(k.old_fingerprint, cert::fingerprint(&second));
        // Adding a known certificate again: no change, just provenance.
        let again = add(&f, &first);
        assert!(!again.new && again.key_changes.is_empty());
        let m = ContactStore::new(&f.home)
            .get(&again.fingerprint)
            .unwrap()
            .meta;
        assert_eq!(m.provenance.len(), 2);
    }

    #[test]
    fn failed_add_leaves_the_index_unchanged() {
        let f = fixture();
        let ca = new_ca("CA");
        let a = issue(&ca, &Spec::leaf("a@example.org"));
        add(&f, &a);
        let index = f.home.dir(DIR).join(INDEX);
        let before = std::fs::read(&index).unwrap();
        let b = issue(&ca, &Spec::leaf("b@example.org"));
        let bad = issue(
            &ca,
            &Spec {
                email: None,
                ..Spec::leaf("x@example.org")
            },
        );
        let lock = f.home.lock().unwrap();
        let store = ContactStore::new(&f.home);
        let now = cert::now();
        assert!(
            store
                .add_batch(
                    &lock,
                    vec![
                        (b.clone(), Provenance::file("b", now)),
                        (bad, Provenance::file("bad", now))
                    ],
                    &[],
                )
                .is_err()
        );
        assert!(
            store
                .add_batch(&lock, vec![], std::slice::from_ref(&ca.cert))
                .is_err()
        );
        assert_eq!(std::fs::read(&index).unwrap(), before);
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(
            !f.home
                .dir(DIR)
                .join(format!("{}.pem", cert::fingerprint(&b)))
                .exists()
        );
    }

    #[test]
    fn cert_file_without_index_entry_is_ignored_and_damage_is_reported() {
        let f = fixture();
        let ca = new_ca("CA");
        let a = issue(&ca, &Spec::leaf("a@example.org"));
        let orphan = issue(&ca, &Spec::leaf("o@example.org"));
        add(&f, &a);
        // An interrupted add: the certificate file was written, the index was not.
        std::fs::write(
            f.home
                .dir(DIR)
                .join(format!("{}.pem", cert::fingerprint(&orphan))),
            orphan.to_pem().unwrap(),
        )
        .unwrap();
        let store = ContactStore::new(&f.home);
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(store.for_address("o@example.org").unwrap().is_empty());
        // Adding it for real afterwards works.
        add(&f, &orphan);
        assert_eq!(store.list().unwrap().len(), 2);
        // A file that does not hold the certificate its name says is reported, not used.
        let p = f
            .home
            .dir(DIR)
            .join(format!("{}.pem", cert::fingerprint(&a)));
        std::fs::write(&p, orphan.to_pem().unwrap()).unwrap();
        assert_eq!(store.list().unwrap_err().kind(), ErrorKind::Store);
        // And a damaged index is a store error.
        std::fs::write(f.home.dir(DIR).join(INDEX), b"{not json").unwrap();
        assert_eq!(store.list().unwrap_err().kind(), ErrorKind::Store);
        std::fs::write(f.home.dir(DIR).join(INDEX), br#"{"format": 99}"#).unwrap();
        let e = store.list().unwrap_err();
        assert!(e.hint_text().unwrap().contains("upgrade"));
    }

    #[test]
    fn remove_by_address_and_fingerprint() {
        let f = fixture();
        let ca = new_ca("CA");
        let a1 = issue(&ca, &Spec::leaf("a@example.org"));
        let a2 = issue(&ca, &Spec::leaf("a@example.org"));
        let b = issue(&ca, &Spec::leaf("b@example.org"));
        for c in [&a1, &a2, &b] {
            add(&f, c);
        }
        let store = ContactStore::new(&f.home);
        let lock = f.home.lock().unwrap();
        store
            .prefer(&lock, "a@example.org", &cert::fingerprint(&a1))
            .unwrap();
        let r = store.remove(&lock, "A@EXAMPLE.ORG").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(store.pinned("a@example.org").unwrap(), None);
        assert!(
            !f.home
                .dir(DIR)
                .join(format!("{}.pem", cert::fingerprint(&a1)))
                .exists()
        );
        assert_eq!(
            store.remove(&lock, "a@example.org").unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let r = store.remove(&lock, &cert::fingerprint(&b)[..10]).unwrap();
        assert_eq!(r[0].addresses, vec!["b@example.org".to_string()]);
        assert!(store.list().unwrap().is_empty());
        assert_eq!(
            store.remove(&lock, "xyz").unwrap_err().kind(),
            ErrorKind::Usage
        );
        // Something with '@' that is not an address: a usage error that says what to give.
        for e in [
            store.remove(&lock, "a@").unwrap_err(),
            store.unpin(&lock, "@example.org").unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::Usage);
            assert!(e.message().contains("is not an e-mail address"), "{e}");
            assert!(e.hint_text().unwrap().contains("bob@example.org"), "{e}");
        }
    }

    #[test]
    fn restored_metadata_is_validated_and_never_outranks_local() {
        let f = fixture();
        let root = new_ca("Root");
        let a = issue(&root, &Spec::leaf("a@example.org"));
        let b = issue(&root, &Spec::leaf("b@example.org"));
        let lock = f.home.lock().unwrap();
        let store = ContactStore::new(&f.home);
        let now = cert::now();
        store
            .add_batch(
                &lock,
                vec![
                    (a.clone(), Provenance::file("a", now)),
                    (b.clone(), Provenance::file("b", now)),
                ],
                &[],
            )
            .unwrap();
        let (fa, fb) = (cert::fingerprint(&a), cert::fingerprint(&b));
        let row = |fp: &str, time: &str, pref: &str| {
            serde_json::json!({"fingerprint": fp, "addresses": [], "capabilities": ["2.16.840.1.101.3.4.1.46"],
                "capabilities_time": time, "encryption_key_preference": pref, "added_at": "2026-01-01T00:00:00Z"})
        };
        let json = serde_json::json!({"format": 1, "contacts": {
            fa.clone(): row(&fa, "9999-12-31T00:00:00Z", &fa),
            fb.clone(): row(&fb, "2026-01-01T00:00:00Z", "not-a-fingerprint"),
        }, "addresses": {"a@example.org": {"pinned": fa.clone()}}});
        let r = store
            .restore_metadata(
                &lock,
                json.to_string().as_bytes(),
                &[fa.clone(), fb.clone()],
            )
            .unwrap();
        // Only the pin is applied (a@ has no other certificate here); both bad rows are dropped.
        assert_eq!(r.changed, 1, "{r:?}");
        assert_eq!(r.notes.len(), 2, "{r:?}");
        assert!(r.notes.iter().any(|n| n.contains("in the future")), "{r:?}");
        assert!(r.notes.iter().any(|n| n.contains("preference")), "{r:?}");
        // The index stays readable and unchanged.
        assert!(
            store
                .list()
                .unwrap()
                .iter()
                .all(|c| c.meta.capabilities_time.is_none())
        );
        // A well-formed row for a contact with nothing recorded is taken; then it never replaces what is here.
        let good =
            serde_json::json!({"contacts": {fa.clone(): row(&fa, "2026-01-01T00:00:00Z", &fa)}});
        let r = store
            .restore_metadata(&lock, good.to_string().as_bytes(), &[])
            .unwrap();
        assert_eq!(r.changed, 1);
        let newer =
            serde_json::json!({"contacts": {fa.clone(): row(&fa, "2026-06-01T00:00:00Z", &fb)}});
        store
            .restore_metadata(&lock, newer.to_string().as_bytes(), &[])
            .unwrap();
        let c = store.get(&fa).unwrap();
        assert_eq!(
            c.meta.encryption_key_preference.as_deref(),
            Some(fa.as_str())
        );
    }

    #[test]
    fn backup_and_restore_round_trip() {
        let f = fixture();
        let root = new_ca("Root");
        let now = cert::now();
        let int = new_ca_from(
            &Spec::ca("Intermediate", &["keyCertSign"], now - DAY, now + DAY * 100),
            Some(&root),
        );
        let a = issue(&int, &Spec::leaf("a@example.org"));
        let lock = f.home.lock().unwrap();
        let store = ContactStore::new(&f.home);
        store
            .add_batch(
                &lock,
                vec![(a.clone(), Provenance::file("a", now))],
                std::slice::from_ref(&int.cert),
            )
            .unwrap();
        let backup = store.for_backup().unwrap();
        assert_eq!(backup.len(), 2);
        assert_eq!(backup[0].0, "a@example.org");
        assert_eq!(backup[1].0, "");

        let g = fixture();
        let lock2 = g.home.lock().unwrap();
        let store2 = ContactStore::new(&g.home);
        let mut entries = backup.clone();
        entries.push(("root".into(), root.cert.clone()));
        let r = store2.restore(&lock2, entries).unwrap();
        assert_eq!((r.added, r.present, r.intermediates), (1, 0, 1));
        assert_eq!(r.skipped.len(), 1);
        assert_eq!(
            store2.list().unwrap()[0].meta.provenance[0].source,
            Source::Backup
        );
        let r = store2.restore(&lock2, backup).unwrap();
        assert_eq!((r.added, r.present, r.intermediates), (0, 1, 0));
    }

    #[test]
    fn certs_from_file_formats() {
        let ca = new_ca("CA");
        let a = issue(&ca, &Spec::leaf("a@example.org"));
        let b = issue(&ca, &Spec::leaf("b@example.org"));
        // PEM with comments and two blocks.
        let mut pem = b"# comment\n".to_vec();
        pem.extend(a.to_pem().unwrap());
        pem.extend(b.to_pem().unwrap());
        assert_eq!(certs_from_file(&pem, "two.pem").unwrap().len(), 2);
        // DER.
        let der = a.to_der().unwrap();
        let got = certs_from_file(&der, "a.der").unwrap();
        assert_eq!(cert::fingerprint(&got[0]), cert::fingerprint(&a));
        // Garbage, empty PEM, a private key, a message.
        assert_eq!(
            certs_from_file(b"hello", "x.crt").unwrap_err().kind(),
            ErrorKind::BadInput
        );
        assert!(certs_from_file(b"-----BEGIN FOO-----\n-----END FOO-----\n", "x.pem").is_err());
        let key = ec().private_key_to_pem_pkcs8().unwrap();
        let e = certs_from_file(&key, "k.pem").unwrap_err();
        assert!(e.message().contains("private key"));
        assert_eq!(
            certs_from_file(b"From: a", "m.eml").unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        // A truncated DER certificate.
        assert!(certs_from_file(&der[..der.len() / 2], "t.der").is_err());
    }

    #[test]
    fn signed_pkcs7_is_not_a_bundle() {
        use openssl::pkcs7::Pkcs7Flags;
        use openssl::stack::Stack;
        let ca = new_ca("CA");
        let key = ec();
        let signer = make(&Spec::leaf("eve@example.org"), &key, Some(&ca));
        let mut extra = Stack::new().unwrap();
        extra.push(ca.cert.clone()).unwrap();
        let p7 = Pkcs7::sign(&signer, &key, &extra, b"hi", Pkcs7Flags::BINARY).unwrap();
        let e = certs_from_file(&p7.to_der().unwrap(), "evil.p7b").unwrap_err();
        assert!(e.message().contains("signed message"), "{e}");
        let e = certs_from_file(&p7.to_pem().unwrap(), "evil.p7c").unwrap_err();
        assert!(e.message().contains("signed message"), "{e}");
    }

    #[test]
    fn classify_sorts_roles() {
        let root = new_ca("Root");
        let now = cert::now();
        let int = make(
            &Spec::ca("Int", &["keyCertSign"], now - DAY, now + DAY),
            &ec(),
            Some(&root),
        );
        let leaf = issue(&root, &Spec::leaf("a@example.org"));
        let c = classify(vec![root.cert.clone(), int, leaf]);
        assert_eq!(
            (c.leaves.len(), c.intermediates.len(), c.roots.len()),
            (1, 1, 1)
        );
    }
}
