//! Moving digital IDs in and out as PKCS#12: `id import`, `id export`, `id backup`, `id restore`.
//!
//! The PKCS#12 mechanics (bags, algorithms, limits) live in [`crate::ossl::p12`]; this module decides what goes
//! into which file and how it lands in the store.

use base64::Engine;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::cert;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::ids::{Added, IdStore, Identity};
use crate::ossl::p12::{self, BuildEntry, Profile};
use crate::secret::Secret;
use crate::trust::TrustStore;

/// Friendly-name prefix of trust anchors inside a backup.
pub const ANCHOR_PREFIX: &str = "smimekit-anchor:";
/// secretTypeId of the contacts' metadata (capabilities, pins, provenance; JSON) inside a backup: an OID under
/// the UUID arc 2.25 (ITU-T X.667), which needs no registration.
pub const CONTACTS_METADATA_OID: &str = "2.25.251595081384917929959779046716300568925";

/// secretTypeId of a pending key (made by `id new --csr` or `id renew`, waiting for its certificate) inside a
/// backup: one secretBag per key, whose value is the pending-key file exactly as stored (the PKCS#8 key, still
/// encrypted under its own passphrase unless it was stored without one, then the CSR, PEM). An OID under the
/// UUID arc 2.25.
pub const PENDING_KEY_OID: &str = "2.25.167778664818421853696285469080821221299";

/// Friendly-name prefix of contacts' certificates inside a backup.
pub const CONTACT_PREFIX: &str = "smimekit-contact:";

/// What `import` found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    /// What kind of PKCS#12 the file was, e.g. "legacy RC2-40 PKCS#12 (3DES key, SHA-1 MAC)".
    pub format: String,
    /// Whether the file used legacy algorithms (it is stored re-encrypted with modern ones).
    pub legacy: bool,
    /// The IDs added or found already present.
    pub ids: Vec<Added>,
    /// Warnings (expired certificate, not for e-mail…).
    pub warnings: Vec<String>,
}

/// Reads a PKCS#12 given as DER, as base64, or wrapped in `-----BEGIN PKCS12-----`.
pub fn decode_input(data: &[u8], what: &str) -> Result<Vec<u8>> {
    if data.first() == Some(&0x30) {
        return Ok(data.to_vec());
    }
    let text = String::from_utf8_lossy(data);
    let body: String = if text.contains("-----BEGIN ") {
        text.lines().filter(|l| !l.starts_with("-----")).collect()
    } else {
        text.to_string()
    };
    let cleaned: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let not_p12 = |why: &str| {
        Error::bad_input(format!("{what} is not a PKCS#12 file{why}"))
            .hint("pass the .p12 or .pfx file exported by your mail client or CA")
    };
    let der = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|_| not_p12(" (neither DER nor base64)"))?;
    if der.first() != Some(&0x30) {
        return Err(not_p12(""));
    }
    Ok(der)
}

/// A PKCS#12 file read and checked, not yet stored.
pub struct ReadP12 {
    /// What was found.
    pub report: ImportReport,
    idents: Vec<p12::IdentityParts>,
}

/// Reads every identity of a PKCS#12 file, checking limits before any key-derivation work.
pub fn read_identities(
    data: &[u8],
    what: &str,
    password: &Secret,
    allow_no_mac: bool,
) -> Result<ReadP12> {
    let contents = open(data, what, password, allow_no_mac)?;
    let summary = &contents.summary;
    let idents = p12::identities(&contents).map_err(|e| e.context(what))?;
    let now = cert::now();
    let mut warnings = Vec::new();
    if summary.legacy {
        warnings.push(format!(
            "{what} uses legacy algorithms ({}); the key is stored re-encrypted with AES-256",
            summary.description
        ));
    }
    for (_, c, _) in &idents {
        let info = cert::CertInfo::new(c, now);
        let label = info.emails.first().cloned().unwrap_or(info.subject.clone());
        if info.expired {
            warnings.push(format!(
                "{label}: the certificate expired on {} (kept so old mail stays readable)",
                info.not_after
            ));
        } else if info.expires_soon {
            warnings.push(format!(
                "{label}: the certificate expires on {}",
                info.not_after
            ));
        }
        if info.emails.is_empty() {
            warnings.push(format!("{label}: the certificate has no e-mail address"));
        }
        if !info.can_sign && !info.can_encrypt {
            warnings.push(format!(
                "{label}: the certificate allows neither e-mail signing nor encryption"
            ));
        }
    }
    let report = ImportReport {
        format: summary.description.clone(),
        legacy: summary.legacy,
        ids: Vec::new(),
        warnings,
    };
    Ok(ReadP12 { report, idents })
}

/// Stores what [`read_identities`] found, protecting keys with `passphrase` (None: unprotected).
/// The caller holds the store lock. IDs already present are left as they are.
pub fn store_identities(
    home: &Home,
    read: ReadP12,
    passphrase: Option<&Secret>,
) -> Result<ImportReport> {
    let store = IdStore::new(home);
    let mut report = read.report;
    for (k, c, chain) in &read.idents {
        let added = store.add(k, c, chain, passphrase)?;
        if !added.new && !chain.is_empty() {
            // Present already: nothing is replaced, but a chain the stored ID lacks deserves a pointer.
            let stored = store.find(&added.fingerprint)?;
            let fps = |v: &[X509]| v.iter().map(|c| cert::fingerprint(c)).collect::<Vec<_>>();
            if fps(&stored.chain) != fps(chain) {
                report.warnings.push(format!(
                    "{} is already in the store with another chain (kept as it is); to store the chain of this file, save it as PEM and run 'smimekit id add-chain {} CHAIN.pem'",
                    stored.label(),
                    &stored.fingerprint[..16]
                ));
            }
        }
        report.ids.push(added);
    }
    Ok(report)
}

/// Decodes and opens a PKCS#12 file: limits checked before any key-derivation work, errors named after `what`.
fn open(
    data: &[u8],
    what: &str,
    password: &Secret,
    allow_no_mac: bool,
) -> Result<p12::P12Contents> {
    let der = decode_input(data, what)?;
    p12::parse_checked(&der, password, allow_no_mac).map_err(|e| e.context(what))
}

/// A PKCS#12 file for one ID (key, certificate and chain) under `password`.
pub fn export(
    id: &Identity,
    key: &PKey<Private>,
    password: &Secret,
    profile: Profile,
) -> Result<Vec<u8>> {
    p12::build(
        &[BuildEntry::Identity {
            key,
            cert: &id.cert,
            chain: &id.chain,
            friendly_name: &friendly_name(id),
        }],
        password,
        profile,
    )
}

/// The friendlyName an ID gets in an export or backup: its first e-mail address (what mail clients show), else
/// its fingerprint.
fn friendly_name(id: &Identity) -> String {
    id.emails()
        .into_iter()
        .next()
        .unwrap_or_else(|| id.fingerprint.clone())
}

/// One modern PKCS#12 holding every ID (each key with its certificate and chain), every trust anchor and
/// every contact certificate, under `password`. `unlock` opens each ID's key (it may prompt).
pub fn backup(
    home: &Home,
    password: &Secret,
    contacts: &[(String, X509)],
    contacts_metadata: Option<&[u8]>,
    unlock: &mut dyn FnMut(&Identity) -> Result<PKey<Private>>,
) -> Result<(Vec<u8>, BackupCounts)> {
    let ids = IdStore::new(home).list()?;
    let pending = IdStore::new(home).pending()?;
    let anchors = TrustStore::new(home).list()?;
    // The contacts' metadata alone is not worth a backup (and no passphrase should be asked for).
    if ids.is_empty() && pending.is_empty() && anchors.is_empty() && contacts.is_empty() {
        return Err(Error::not_found(
            "there is nothing to back up: the store has no IDs, anchors or contacts",
        )
        .hint("import an ID with 'smimekit id import FILE.p12' or add a trust anchor with 'smimekit trust add CERT.pem' first"));
    }
    let keys: Vec<PKey<Private>> = ids.iter().map(unlock).collect::<Result<_>>()?;
    let names: Vec<String> = ids.iter().map(friendly_name).collect();
    let anchor_names: Vec<String> = anchors
        .iter()
        .map(|a| format!("{ANCHOR_PREFIX}{}", a.fingerprint))
        .collect();
    let contact_names: Vec<String> = contacts
        .iter()
        .map(|(addr, _)| format!("{CONTACT_PREFIX}{addr}"))
        .collect();
    let mut entries = Vec::new();
    for ((i, k), n) in ids.iter().zip(&keys).zip(&names) {
        entries.push(BuildEntry::Identity {
            key: k,
            cert: &i.cert,
            chain: &i.chain,
            friendly_name: n,
        });
    }
    for (a, n) in anchors.iter().zip(&anchor_names) {
        entries.push(BuildEntry::Cert {
            cert: &a.cert,
            friendly_name: n,
        });
    }
    if let Some(m) = contacts_metadata {
        entries.push(BuildEntry::Secret {
            type_oid: CONTACTS_METADATA_OID,
            value: m,
        });
    }
    for ((_, c), n) in contacts.iter().zip(&contact_names) {
        entries.push(BuildEntry::Cert {
            cert: c,
            friendly_name: n,
        });
    }
    for p in &pending {
        entries.push(BuildEntry::Secret {
            type_oid: PENDING_KEY_OID,
            value: p.stored_file(),
        });
    }
    let der = p12::build(&entries, password, Profile::Modern)?;
    Ok((
        der,
        BackupCounts {
            ids: ids.len(),
            pending: pending.len(),
            anchors: anchors.len(),
            contacts: contacts.iter().filter(|(a, _)| !a.is_empty()).count(),
            intermediates: contacts.iter().filter(|(a, _)| a.is_empty()).count(),
        },
    ))
}

/// How many things a backup holds or a restore brought back.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackupCounts {
    /// Digital IDs.
    pub ids: usize,
    /// Pending keys (waiting for a certificate).
    pub pending: usize,
    /// Trust anchors.
    pub anchors: usize,
    /// Contact certificates.
    pub contacts: usize,
    /// CA certificates kept for the contacts' chains (filed under an empty address).
    pub intermediates: usize,
}

/// What a restore found in the file, before anything is written.
pub struct RestorePlan {
    /// Identities: key, certificate, chain.
    pub ids: Vec<p12::IdentityParts>,
    /// Anchor certificates.
    pub anchors: Vec<X509>,
    /// Contact certificates with the address they were filed under.
    pub contacts: Vec<(String, X509)>,
    /// The contacts' metadata (see [`crate::contacts::ContactStore::metadata_for_backup`]), if the backup has it.
    pub contacts_metadata: Option<Vec<u8>>,
    /// Pending-key files (see [`PENDING_KEY_OID`]).
    pub pending: Vec<Vec<u8>>,
}

/// Reads a backup file made by [`backup`] (or any PKCS#12: its identities are restored).
pub fn read_backup(data: &[u8], what: &str, password: &Secret) -> Result<RestorePlan> {
    let contents = open(data, what, password, false)?;
    let ids = if contents.keys.is_empty() {
        Vec::new()
    } else {
        p12::identities(&contents).map_err(|e| e.context(what))?
    };
    let mut anchors = Vec::new();
    let mut contacts = Vec::new();
    for c in &contents.certs {
        match c.friendly_name.as_deref() {
            Some(n) if n.starts_with(ANCHOR_PREFIX) => anchors.push(c.cert.clone()),
            Some(n) if n.starts_with(CONTACT_PREFIX) => {
                contacts.push((n[CONTACT_PREFIX.len()..].to_string(), c.cert.clone()))
            }
            _ => {}
        }
    }
    let contacts_metadata = contents
        .secrets
        .iter()
        .find(|s| s.type_oid == CONTACTS_METADATA_OID)
        .map(|s| s.value.clone());
    let pending: Vec<Vec<u8>> = contents
        .secrets
        .iter()
        .filter(|s| s.type_oid == PENDING_KEY_OID)
        .map(|s| s.value.clone())
        .collect();
    // Checked before anything is written: a damaged one fails the restore with the store unchanged.
    for p in &pending {
        crate::ids::check_pending_file(p).map_err(|e| e.context(what))?;
    }
    Ok(RestorePlan {
        ids,
        anchors,
        contacts,
        contacts_metadata,
        pending,
    })
}

/// Writes the IDs and anchors of a restore plan into the store (merging: present ones are kept as they are).
/// The caller holds the lock and handles contacts.
pub fn restore_ids_and_anchors(
    home: &Home,
    plan: &RestorePlan,
    passphrase: Option<&Secret>,
) -> Result<(Vec<Added>, usize)> {
    let store = IdStore::new(home);
    let mut added = Vec::new();
    for (k, c, chain) in &plan.ids {
        added.push(store.add(k, c, chain, passphrase)?);
    }
    for p in &plan.pending {
        store.restore_pending(p)?;
    }
    let trust = TrustStore::new(home);
    let mut n = 0;
    for a in &plan.anchors {
        if trust.add(a)?.1 {
            n += 1;
        }
    }
    Ok((added, n))
}
