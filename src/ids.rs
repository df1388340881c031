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
    key_pem: Zeroizing<Vec<u8>>,
    key_protected: bool,
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
        let fp = cert::fingerprint(cert);
        let dir = self.home.ensure_dir(DIR)?;
        let path = dir.join(format!("{fp}.pem"));
        if path.exists() {
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
                return Err(Error::store(format!(
                    "the pending key file {} is damaged",
                    p.display()
                ))
                .hint("delete it and create a new request"));
            };
            let id = p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let email = csr_email(&csr);
            out.push(PendingKey {
                id,
                csr,
                email,
                key_pem: Zeroizing::new(key_pem),
                key_protected,
            });
        }
        Ok(out)
    }

    /// Stores a new key and its CSR as a pending ID. The caller holds the lock.
    pub fn add_pending(
        &self,
        key: &PKeyRef<Private>,
        csr: &X509Req,
        passphrase: Option<&Secret>,
    ) -> Result<String> {
        let id = pubkey_id(key)?;
        let (key_pem, _) = key_to_pem(key, passphrase)?;
        let dir = self.home.ensure_dir(PENDING)?;
        let mut out = Zeroizing::new(
            format!(
                "# smimekit pending key (waiting for a certificate)\n# email: {}\n",
                csr_email(csr)
            )
            .into_bytes(),
        );
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
