//! The digital-ID store: private keys with their certificates and chains, `HOME/ids/<sha256>.pem`, and keys
//! waiting for a certificate from a CA, `HOME/pending/<key-sha256>.pem`.
//!
//! Each ID is one PEM file (encrypted PKCS#8 key, certificate, chain), so adding or deleting an ID is a single
//! atomic file operation. Keys are encrypted at rest with PBES2 / PBKDF2-HMAC-SHA256 ([`KEY_KDF_ITERATIONS`]) /
//! AES-256-CBC, unless the user chose `--no-passphrase`.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder, X509Ref, X509Req, X509ReqBuilder};
use zeroize::Zeroizing;

use crate::cert::{self, CertInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::home::Home;
use crate::ossl::pkcs8;
use crate::secret::Secret;

/// PBKDF2 iterations protecting keys at rest (OWASP 2023 for PBKDF2-HMAC-SHA256).
pub const KEY_KDF_ITERATIONS: u32 = 600_000;

const DIR: &str = "ids";
const PENDING: &str = "pending";

/// A digital ID as stored.
#[derive(Clone)]
pub struct Identity {
    /// SHA-256 fingerprint of the certificate (the ID's name in the store).
    pub fingerprint: String,
    /// The certificate.
    pub cert: X509,
    /// The chain that came with it (intermediates, perhaps the root).
    pub chain: Vec<X509>,
    /// Whether the key is protected by a passphrase.
    pub key_protected: bool,
    key_pem: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .field("key_protected", &self.key_protected)
            .finish()
    }
}

impl Identity {
    /// Certificate summary as of `now`.
    pub fn info(&self, now: i64) -> CertInfo {
        CertInfo::new(&self.cert, now)
    }
    /// The certificate's e-mail addresses.
    pub fn emails(&self) -> Vec<String> {
        cert::emails(&self.cert)
    }
    /// Decrypts the private key. `passphrase` is required when the key is protected.
    pub fn unlock(&self, passphrase: Option<&Secret>) -> Result<PKey<Private>> {
        let key = if self.key_protected {
            let pass = passphrase.ok_or_else(|| {
                Error::new(
                    ErrorKind::MissingSecret,
                    format!("the ID {} needs its passphrase", self.label()),
                )
            })?;
            pkcs8::decrypt_private_key_pem(&self.key_pem, pass.expose()).map_err(|e| {
                if e.kind() == ErrorKind::WrongSecret {
                    Error::new(ErrorKind::WrongSecret, format!("wrong passphrase for the ID {}", self.label()))
                        .hint("try again; the passphrase is the one chosen when the ID was imported or created")
                } else {
                    e
                }
            })?
        } else {
            PKey::private_key_from_pem(&self.key_pem).map_err(|e| {
                Error::store(format!("the key of ID {} is damaged", self.label())).detail(e)
            })?
        };
        Ok(key)
    }
    /// A short human label: first e-mail address and fingerprint prefix.
    pub fn label(&self) -> String {
        let email = self
            .emails()
            .into_iter()
            .next()
            .unwrap_or_else(|| cert::name_to_string(self.cert.subject_name()));
        format!("{email} ({})", &self.fingerprint[..16])
    }
}

/// A key created with a CSR, waiting for its certificate.
pub struct PendingKey {
    /// SHA-256 of the public key (DER SubjectPublicKeyInfo).
    pub id: String,
    /// The request sent to the CA.
    pub csr: X509Req,
    /// The requested e-mail address.
    pub email: String,
    /// For a renewal (`id renew`): the fingerprint of the ID this key is to replace.
    pub renews: Option<String>,
    /// Whether the key is protected by a passphrase.
    pub key_protected: bool,
    key_pem: Zeroizing<Vec<u8>>,
    /// The pending-key file as stored (what a backup carries).
    file: Zeroizing<Vec<u8>>,
}

impl PendingKey {
    /// A short label: the address and the key's id prefix.
    pub fn label(&self) -> String {
        format!(
            "{} (pending key {})",
            self.email,
            &self.id[..16.min(self.id.len())]
        )
    }
    /// The pending-key file as stored: a comment header, the PKCS#8 key (encrypted under its passphrase
    /// unless stored without one) and the CSR, PEM. This is what a backup carries.
    pub fn stored_file(&self) -> &[u8] {
        &self.file
    }
}

/// The outcome of adding an ID.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Added {
    /// Fingerprint of the ID.
    pub fingerprint: String,
    /// False when the same ID was already in the store (nothing changed).
    pub new: bool,
}

/// Key types offered by `id new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// RSA 2048 bits.
    Rsa2048,
    /// RSA 3072 bits (default).
    Rsa3072,
    /// RSA 4096 bits.
    Rsa4096,
    /// EC on P-256.
    EcP256,
    /// EC on P-384.
    EcP384,
}

/// The ID store of a home.
pub struct IdStore<'a> {
    home: &'a Home,
}

/// Splits a PEM file into (label, whole block bytes) pairs.
pub fn pem_blocks(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines() {
        let l = line.trim_end();
        if let Some(label) = l
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
        {
            cur = Some((label.to_string(), format!("{l}\n")));
        } else if let Some((label, mut body)) = cur.take() {
            body.push_str(l);
            body.push('\n');
            if l.starts_with("-----END ") {
                out.push((label, body.into_bytes()));
            } else {
                cur = Some((label, body));
            }
        }
    }
    out
}

fn key_to_pem(
    key: &PKeyRef<Private>,
    passphrase: Option<&Secret>,
) -> Result<(Zeroizing<Vec<u8>>, bool)> {
    match passphrase {
        Some(p) if !p.is_empty() => Ok((
            Zeroizing::new(pkcs8::encrypt_private_key_pem(
                key,
                p.expose(),
                KEY_KDF_ITERATIONS,
            )?),
            true,
        )),
        Some(_) => Err(Error::usage("the passphrase is empty")
            .hint("choose a passphrase, or pass --no-passphrase to store the key unprotected")),
        None => Ok((Zeroizing::new(key.private_key_to_pem_pkcs8()?), false)),
    }
}

impl<'a> IdStore<'a> {
    /// The IDs of `home`.
    pub fn new(home: &'a Home) -> Self {
        IdStore { home }
    }

    fn load(&self, path: &std::path::Path) -> Result<Identity> {
        let data = self.home.read(path)?;
        let damaged = |why: &str| {
            Error::store(format!("the ID file {} is damaged ({why})", path.display()))
                .hint("restore it from a backup (smimekit id restore) or delete the file")
        };
        let mut key = None;
        let mut certs = Vec::new();
        for (label, block) in pem_blocks(&data) {
            match label.as_str() {
                "ENCRYPTED PRIVATE KEY" => key = Some((block, true)),
                "PRIVATE KEY" => key = Some((block, false)),
                "CERTIFICATE" => {
                    certs.push(X509::from_pem(&block).map_err(|_| damaged("bad certificate"))?)
                }
                _ => {}
            }
        }
        let (key_pem, key_protected) = key.ok_or_else(|| damaged("no key"))?;
        if certs.is_empty() {
            return Err(damaged("no certificate"));
        }
        let cert = certs.remove(0);
        Ok(Identity {
            fingerprint: cert::fingerprint(&cert),
            cert,
            chain: certs,
            key_protected,
            key_pem: Zeroizing::new(key_pem),
        })
    }

    /// Every ID, sorted by fingerprint.
    pub fn list(&self) -> Result<Vec<Identity>> {
        self.home
            .list(DIR, ".pem")?
            .iter()
            .map(|p| self.load(p))
            .collect()
    }

    /// Finds one ID by e-mail address or fingerprint prefix (≥ 8 hex digits).
    pub fn find(&self, query: &str) -> Result<Identity> {
        let all = self.list()?;
        if query.contains('@') {
            let mut m: Vec<Identity> = all
                .into_iter()
                .filter(|i| crate::address::contains(&i.emails(), query))
                .collect();
            return match m.len() {
                0 => Err(Error::not_found(format!("no digital ID for {query}"))
                    .hint("run 'smimekit id list' to see your IDs, or import one with 'smimekit id import FILE.p12'")),
                1 => Ok(m.remove(0)),
                _ => {
                    // Several IDs for one address: prefer the one valid now with the latest notBefore.
                    let now = cert::now();
                    m.sort_by_key(|i| {
                        let info = i.info(now);
                        (info.expired || info.not_yet_valid, std::cmp::Reverse(cert::unix_time(i.cert.not_before())))
                    });
                    Ok(m.remove(0))
                }
            };
        }
        crate::trust::find_by_fingerprint(all, query, |i| &i.fingerprint, "digital ID")
    }

    /// IDs whose certificate carries `addr`.
    pub fn for_address(&self, addr: &str) -> Result<Vec<Identity>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|i| crate::address::contains(&i.emails(), addr))
            .collect())
    }

    /// Adds an ID from a key and certificate; the key is encrypted with `passphrase` (None: unprotected).
    /// The caller holds the store lock. Adding an ID that is already present changes nothing.
    pub fn add(
        &self,
        key: &PKeyRef<Private>,
        cert: &X509Ref,
        chain: &[X509],
        passphrase: Option<&Secret>,
    ) -> Result<Added> {
        check_pair(key, cert)?;
        let fp = cert::fingerprint(cert);
        if self.home.dir(DIR).join(format!("{fp}.pem")).exists() {
            return Ok(Added {
                fingerprint: fp,
                new: false,
            });
        }
        let (key_pem, protected) = key_to_pem(key, passphrase)?;
        self.write(cert, chain, &key_pem, protected)
    }

    fn write(
        &self,
        cert: &X509Ref,
        chain: &[X509],
        key_pem: &[u8],
        _protected: bool,
    ) -> Result<Added> {
        self.write_file(cert, chain, key_pem, false)
    }

    /// Writes an ID file atomically; an existing one is left alone unless `replace`.
    fn write_file(
        &self,
        cert: &X509Ref,
        chain: &[X509],
        key_pem: &[u8],
        replace: bool,
    ) -> Result<Added> {
        let fp = cert::fingerprint(cert);
        let dir = self.home.ensure_dir(DIR)?;
        let path = dir.join(format!("{fp}.pem"));
        if path.exists() && !replace {
            return Ok(Added {
                fingerprint: fp,
                new: false,
            });
        }
        let mut out = Zeroizing::new(Vec::new());
        out.extend_from_slice(
            format!(
                "# smimekit digital ID\n# subject: {}\n# emails: {}\n",
                cert::name_to_string(cert.subject_name()),
                cert::emails(cert).join(", ")
            )
            .as_bytes(),
        );
        out.extend_from_slice(key_pem);
        out.extend(cert.to_pem()?);
        for c in chain {
            out.extend(c.to_pem()?);
        }
        self.home.write_atomic(&path, &out)?;
        Ok(Added {
            fingerprint: fp,
            new: true,
        })
    }

    /// Replaces the chain stored with `id` by `certs`, after checking that they link: each certificate must
    /// have issued the one before it (issuer name and signature), starting from the ID's certificate; they are
    /// stored in that order. Certificates that link to nothing are refused, and so is an empty chain. Returns
    /// the chain as stored. The caller holds the lock.
    pub fn replace_chain(&self, id: &Identity, certs: &[X509]) -> Result<Vec<X509>> {
        let chain = link_chain(&id.cert, certs)?;
        self.write_file(&id.cert, &chain, &id.key_pem, true)?;
        Ok(chain)
    }

    /// Re-encrypts the key of `id` under `new` (None: stored unprotected), after checking that `key` is its
    /// private key. The ID file is replaced atomically: on any failure the old file, and passphrase, stay.
    /// The caller holds the lock.
    pub fn change_passphrase(
        &self,
        id: &Identity,
        key: &PKeyRef<Private>,
        new: Option<&Secret>,
    ) -> Result<()> {
        check_pair(key, &id.cert)?;
        let (key_pem, _) = key_to_pem(key, new)?;
        self.write_file(&id.cert, &id.chain, &key_pem, true)?;
        Ok(())
    }

    /// Deletes the ID. The caller holds the lock.
    pub fn delete(&self, id: &Identity) -> Result<()> {
        self.home
            .remove(&self.home.dir(DIR).join(format!("{}.pem", id.fingerprint)))
    }

    /// Keys waiting for a certificate.
    pub fn pending(&self) -> Result<Vec<PendingKey>> {
        let mut out = Vec::new();
        for p in self.home.list(PENDING, ".pem")? {
            let data = self.home.read(&p)?;
            let id = p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            out.push(parse_pending(&id, data).map_err(|_| {
                Error::store(format!("the pending key file {} is damaged", p.display()))
                    .hint("delete it and create a new request")
            })?);
        }
        Ok(out)
    }

    /// Finds one pending key by its id prefix (≥ 8 hex digits) or its e-mail address.
    pub fn find_pending(&self, query: &str) -> Result<PendingKey> {
        let all = self.pending()?;
        if query.contains('@') {
            let mut m: Vec<PendingKey> = all
                .into_iter()
                .filter(|p| crate::address::same(&p.email, query))
                .collect();
            return match m.len() {
                1 => Ok(m.remove(0)),
                0 => Err(
                    Error::not_found(format!("no digital ID or pending key for {query}"))
                        .hint("run 'smimekit id list' to see your IDs and pending keys"),
                ),
                n => Err(
                    Error::usage(format!("{n} pending keys are waiting for {query}"))
                        .hint("name one by the key id 'smimekit id list' shows"),
                ),
            };
        }
        crate::trust::find_by_fingerprint(all, query, |p| &p.id, "pending key")
    }

    /// Deletes a pending key (its certificate can then never be installed). The caller holds the lock.
    pub fn delete_pending(&self, p: &PendingKey) -> Result<()> {
        self.home
            .remove(&self.home.dir(PENDING).join(format!("{}.pem", p.id)))
    }

    /// Stores a pending-key file carried by a backup ([`PendingKey::stored_file`]) unless that key is already
    /// pending or already an ID (its certificate was installed). Its name is recomputed from the CSR's public key, never taken from the backup. Returns whether it
    /// was new. The caller holds the lock.
    pub fn restore_pending(&self, file: &[u8]) -> Result<bool> {
        let (id, der) = check_pending_file(file)?;
        let dir = self.home.ensure_dir(PENDING)?;
        let path = dir.join(format!("{id}.pem"));
        if path.exists() {
            return Ok(false);
        }
        // Its certificate was installed since the backup: the key is an ID now, not pending.
        let installed = self.list()?.iter().any(|i| {
            i.cert
                .public_key()
                .and_then(|k| k.public_key_to_der())
                .is_ok_and(|d| d == der)
        });
        if installed {
            return Ok(false);
        }
        self.home.write_atomic(&path, file)?;
        Ok(true)
    }

    /// Stores a new key and its CSR as a pending ID. The caller holds the lock.
    pub fn add_pending(
        &self,
        key: &PKeyRef<Private>,
        csr: &X509Req,
        passphrase: Option<&Secret>,
    ) -> Result<String> {
        self.add_pending_for(key, csr, passphrase, None)
    }

    /// [`add_pending`](Self::add_pending), recording that the key renews the ID `renews`.
    pub fn add_pending_for(
        &self,
        key: &PKeyRef<Private>,
        csr: &X509Req,
        passphrase: Option<&Secret>,
        renews: Option<&Identity>,
    ) -> Result<String> {
        let id = pubkey_id(key)?;
        let (key_pem, _) = key_to_pem(key, passphrase)?;
        let dir = self.home.ensure_dir(PENDING)?;
        // A renewal's CSR may name its address only in subjectAltName: the header keeps it for listings.
        let email = match renews {
            Some(old) => old.emails().into_iter().next().unwrap_or_default(),
            None => csr_email(csr),
        };
        let mut header = format!(
            "# smimekit pending key (waiting for a certificate)\n{EMAIL}{}\n",
            email.replace(['\r', '\n'], "")
        );
        if let Some(old) = renews {
            header += &format!("{RENEWS}{}\n", old.fingerprint);
        }
        let mut out = Zeroizing::new(header.into_bytes());
        out.extend_from_slice(&key_pem);
        out.extend(csr.to_pem()?);
        self.home
            .write_atomic(&dir.join(format!("{id}.pem")), &out)?;
        Ok(id)
    }

    /// Pairs an issued certificate with its pending key, checking that they match, and makes it an ID.
    /// The caller holds the lock.
    pub fn install_cert(&self, cert: &X509Ref, chain: &[X509]) -> Result<Added> {
        let pubkey = cert.public_key()?;
        let pending = self.pending()?;
        let Some(p) = pending.into_iter().find(|p| {
            p.csr
                .public_key()
                .map(|k| k.public_eq(&pubkey))
                .unwrap_or(false)
        }) else {
            if let Ok(present) = self.find(&cert::fingerprint(cert)) {
                return Err(Error::usage(format!(
                    "the certificate is already installed: {}",
                    present.label()
                ))
                .hint(format!(
                    "to replace its chain, run 'smimekit id add-chain {} CHAIN.pem'",
                    &present.fingerprint[..16]
                )));
            }
            return Err(Error::not_found(format!(
                "no pending key matches the certificate for {}",
                cert::emails(cert).join(", ")
            ))
            .hint("install the certificate on the machine where 'smimekit id new --csr' made the request; 'smimekit id list' shows pending keys"));
        };
        let added = self.write(cert, chain, &p.key_pem, p.key_protected)?;
        self.home
            .remove(&self.home.dir(PENDING).join(format!("{}.pem", p.id)))?;
        Ok(added)
    }
}

/// Checks a pending-key file carried by a backup (see [`PendingKey::stored_file`]): it must hold a key and a
/// CSR, and an unprotected key must be the CSR's (an encrypted one can only be checked when it is opened).
/// Returns its name in the store (the SHA-256 of the CSR's public key, never a name from the file) and that
/// public key (DER).
pub fn check_pending_file(file: &[u8]) -> Result<(String, Vec<u8>)> {
    let bad = || {
        Error::bad_input("the backup carries a damaged pending key")
            .hint("make the backup again from the original home; nothing was restored")
    };
    let probe = parse_pending("", file.to_vec()).map_err(|_| bad())?;
    let der = probe
        .csr
        .public_key()
        .and_then(|k| k.public_key_to_der())
        .map_err(|_| bad())?;
    if !probe.key_protected {
        let key = PKey::private_key_from_pem(&probe.key_pem).map_err(|_| bad())?;
        if key.public_key_to_der().ok().as_ref() != Some(&der) {
            return Err(bad());
        }
    }
    let id = cert::hex(&openssl::hash::hash(MessageDigest::sha256(), &der)?);
    Ok((id, der))
}

/// The header line of a pending-key file naming the ID it renews.
const RENEWS: &str = "# renews: ";
/// The header line of a pending-key file naming its address.
const EMAIL: &str = "# email: ";

/// Parses a pending-key file (`id` is its name in the store).
fn parse_pending(id: &str, data: Vec<u8>) -> std::result::Result<PendingKey, ()> {
    let mut key = None;
    let mut csr = None;
    for (label, block) in pem_blocks(&data) {
        match label.as_str() {
            "ENCRYPTED PRIVATE KEY" => key = Some((block, true)),
            "PRIVATE KEY" => key = Some((block, false)),
            "CERTIFICATE REQUEST" => csr = X509Req::from_pem(&block).ok(),
            _ => {}
        }
    }
    let (Some((key_pem, key_protected)), Some(csr)) = (key, csr) else {
        return Err(());
    };
    // Only a fingerprint is taken from the comment (64 hex digits), whatever else the line holds.
    let renews = String::from_utf8_lossy(&data)
        .lines()
        .find_map(|l| l.strip_prefix(RENEWS).map(|v| v.trim().to_string()))
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()));
    let mut email = csr_email(&csr);
    if email.is_empty() {
        email = String::from_utf8_lossy(&data)
            .lines()
            .find_map(|l| l.strip_prefix(EMAIL).map(|v| v.trim().to_string()))
            .unwrap_or_default();
    }
    Ok(PendingKey {
        id: id.to_string(),
        csr,
        email,
        renews,
        key_protected,
        key_pem: Zeroizing::new(key_pem),
        file: Zeroizing::new(data),
    })
}

fn csr_email(csr: &X509Req) -> String {
    csr.subject_name()
        .entries_by_nid(Nid::PKCS9_EMAILADDRESS)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .unwrap_or_default()
}

fn pubkey_id(key: &PKeyRef<Private>) -> Result<String> {
    let der = key.public_key_to_der()?;
    Ok(cert::hex(&openssl::hash::hash(
        MessageDigest::sha256(),
        &der,
    )?))
}

/// Whether `leaf`'s issuer is a trust anchor of `home` or of the system: whether the certificate validates
/// (now, for any purpose) without a chain. `id install-cert` warns when it does not and no chain was given.
pub fn issuer_is_anchor(home: &Home, leaf: &X509Ref) -> Result<bool> {
    let anchors = crate::trust::TrustStore::new(home).certs()?;
    let report = crate::trust::verify_chain(
        leaf,
        &[],
        &crate::trust::ChainOptions {
            anchors: &anchors,
            system: true,
            at: cert::now(),
            // No OpenSSL purpose: only the path matters here.
            purpose: crate::trust::Purpose::Encrypt,
        },
    )?;
    Ok(report.trusted)
}

/// Orders `certs` into the chain above `leaf`: each certificate must be the issuer of the one before it (its
/// subject is the issuer name, and its key verifies the signature). Every certificate given must be used.
pub fn link_chain(leaf: &X509Ref, certs: &[X509]) -> Result<Vec<X509>> {
    if certs.is_empty() {
        return Err(Error::usage("the chain file holds no certificate")
            .hint("pass the PEM file of the intermediate CA certificate(s) your CA gave you"));
    }
    let mut rest: Vec<X509> = certs.to_vec();
    let mut chain: Vec<X509> = Vec::new();
    let mut cur = leaf.to_owned();
    // A self-signed certificate ends the chain.
    while !rest.is_empty() && !is_self_issued(&cur) {
        let Some(i) = rest.iter().position(|c| issued(c, &cur)) else {
            break;
        };
        let next = rest.remove(i);
        chain.push(next.clone());
        cur = next;
    }
    if chain.is_empty() {
        return Err(Error::bad_input(format!(
            "the chain does not link to the certificate: none of its certificates issued {}",
            cert::name_to_string(leaf.issuer_name())
        ))
        .hint("pass the certificate of the CA that issued yours (and its own issuers); nothing was changed"));
    }
    if let Some(extra) = rest.first() {
        return Err(Error::bad_input(format!(
            "the chain file holds a certificate that does not link: {}",
            cert::name_to_string(extra.subject_name())
        ))
        .hint("keep only the certificates above yours in the chain file; nothing was changed"));
    }
    Ok(chain)
}

/// Whether `issuer` issued `c`: names match and `issuer`'s key verifies the signature.
fn issued(issuer: &X509Ref, c: &X509Ref) -> bool {
    let names = matches!(
        (issuer.subject_name().to_der(), c.issuer_name().to_der()),
        (Ok(a), Ok(b)) if a == b
    );
    names
        && issuer
            .public_key()
            .and_then(|k| c.verify(&k))
            .unwrap_or(false)
}

fn is_self_issued(c: &X509Ref) -> bool {
    matches!(
        (c.subject_name().to_der(), c.issuer_name().to_der()),
        (Ok(a), Ok(b)) if a == b
    )
}

/// A CSR for renewing `old`: the same subject name and e-mail addresses, signed by the new `key`.
pub fn renewal_csr(key: &PKeyRef<Private>, old: &X509Ref) -> Result<X509Req> {
    let emails = cert::emails(old);
    if emails.is_empty() {
        return Err(
            Error::unusable("the ID's certificate has no e-mail address to renew")
                .hint("create a new request with 'smimekit id new --email ADDRESS --csr OUT.csr'"),
        );
    }
    let mut b = X509ReqBuilder::new()?;
    b.set_version(0)?;
    b.set_subject_name(old.subject_name())?;
    b.set_pubkey(key)?;
    let mut exts = Stack::new()?;
    exts.push(usage_for(key)?)?;
    exts.push(ExtendedKeyUsage::new().email_protection().build()?)?;
    let mut san = SubjectAlternativeName::new();
    for e in &emails {
        san.email(e);
    }
    exts.push(san.build(&b.x509v3_context(None))?)?;
    b.add_extensions(&exts)?;
    b.sign(key, digest_for(key))?;
    Ok(b.build())
}

/// A new key of the same type and size as the certificate's (RSA: at least 2048 bits).
pub fn key_like(c: &X509Ref) -> Result<PKey<Private>> {
    let pk = c.public_key()?;
    let spec = match pk.id() {
        openssl::pkey::Id::EC => {
            if pk.bits() >= 384 {
                KeySpec::EcP384
            } else {
                KeySpec::EcP256
            }
        }
        _ => match pk.bits() {
            b if b > 3072 => KeySpec::Rsa4096,
            b if b > 2048 => KeySpec::Rsa3072,
            _ => KeySpec::Rsa2048,
        },
    };
    generate_key(spec)
}

/// Fails unless `key` is the private half of `cert`.
pub fn check_pair(key: &PKeyRef<Private>, cert: &X509Ref) -> Result<()> {
    let pk = cert.public_key()?;
    if !pk.public_eq(key) {
        return Err(Error::bad_input("the private key does not belong to the certificate")
            .hint("the PKCS#12 file pairs a key with someone else's certificate; export it again from the original client"));
    }
    Ok(())
}

/// Generates a new key.
pub fn generate_key(spec: KeySpec) -> Result<PKey<Private>> {
    Ok(match spec {
        KeySpec::Rsa2048 => PKey::from_rsa(Rsa::generate(2048)?)?,
        KeySpec::Rsa3072 => PKey::from_rsa(Rsa::generate(3072)?)?,
        KeySpec::Rsa4096 => PKey::from_rsa(Rsa::generate(4096)?)?,
        KeySpec::EcP256 => PKey::from_ec_key(EcKey::generate(
            EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?.as_ref(),
        )?)?,
        KeySpec::EcP384 => PKey::from_ec_key(EcKey::generate(
            EcGroup::from_curve_name(Nid::SECP384R1)?.as_ref(),
        )?)?,
    })
}

fn usage_for(key: &PKeyRef<Private>) -> Result<openssl::x509::X509Extension> {
    let mut ku = KeyUsage::new();
    ku.critical().digital_signature().non_repudiation();
    if key.id() == openssl::pkey::Id::EC {
        ku.key_agreement();
    } else {
        ku.key_encipherment();
    }
    Ok(ku.build()?)
}

fn digest_for(key: &PKeyRef<Private>) -> MessageDigest {
    if key.bits() >= 384 && key.id() == openssl::pkey::Id::EC {
        MessageDigest::sha384()
    } else {
        MessageDigest::sha256()
    }
}

fn subject(email: &str, name: Option<&str>) -> Result<openssl::x509::X509Name> {
    let mut n = X509NameBuilder::new()?;
    n.append_entry_by_nid(Nid::COMMONNAME, name.unwrap_or(email))?;
    n.append_entry_by_nid(Nid::PKCS9_EMAILADDRESS, email)?;
    Ok(n.build())
}

fn check_email(email: &str) -> Result<()> {
    if crate::address::normalize(email).is_none() {
        return Err(Error::usage(format!("'{email}' is not an e-mail address"))
            .hint("pass --email you@example.com"));
    }
    Ok(())
}

/// A self-signed S/MIME certificate for testing: SAN e-mail, keyUsage for signing and key transport/agreement,
/// EKU emailProtection, valid `days` days.
pub fn self_signed(
    key: &PKeyRef<Private>,
    email: &str,
    name: Option<&str>,
    days: u32,
) -> Result<X509> {
    check_email(email)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    let subj = subject(email, name)?;
    b.set_subject_name(&subj)?;
    b.set_issuer_name(&subj)?;
    b.set_pubkey(key)?;
    let (nb, na) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(days)?);
    b.set_not_before(&nb)?;
    b.set_not_after(&na)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(usage_for(key)?)?;
    b.append_extension(ExtendedKeyUsage::new().email_protection().build()?)?;
    let san = SubjectAlternativeName::new()
        .email(email)
        .build(&b.x509v3_context(None, None))?;
    b.append_extension(san)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(false)
        .build(&b.x509v3_context(None, None));
    if let Ok(aki) = aki {
        b.append_extension(aki)?;
    }
    b.sign(key, digest_for(key))?;
    Ok(b.build())
}

/// A certificate signing request asking a CA for an S/MIME certificate for `email`.
pub fn csr(key: &PKeyRef<Private>, email: &str, name: Option<&str>) -> Result<X509Req> {
    check_email(email)?;
    let mut b = X509ReqBuilder::new()?;
    b.set_version(0)?;
    let subj = subject(email, name)?;
    b.set_subject_name(&subj)?;
    b.set_pubkey(key)?;
    let mut exts = Stack::new()?;
    exts.push(usage_for(key)?)?;
    exts.push(ExtendedKeyUsage::new().email_protection().build()?)?;
    exts.push(
        SubjectAlternativeName::new()
            .email(email)
            .build(&b.x509v3_context(None))?,
    )?;
    b.add_extensions(&exts)?;
    b.sign(key, digest_for(key))?;
    Ok(b.build())
}
