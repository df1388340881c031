//! Trust anchors (the user's own, beside the system store) and certificate path validation.
//!
//! OpenSSL 3.0's `CMS_verify` ignores intermediates handed to it, so verification builds chains here with an
//! `X509StoreContext`, from the message's certificates, the contacts and the anchors.

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::ssl::SslFiletype;
use openssl::stack::Stack;
use openssl::x509::X509PurposeId;
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509, X509Ref, X509StoreContext};

use crate::cert::{self, CertInfo};
use crate::error::{Error, Result};
use crate::home::Home;

pub use crate::limits::{MAX_CHAIN_DEPTH, MAX_UNTRUSTED};

const DIR: &str = "trust";

/// The user's trust anchors, `HOME/trust/<sha256>.pem`.
pub struct TrustStore<'a> {
    home: &'a Home,
}

/// One stored anchor.
#[derive(Debug, Clone)]
pub struct Anchor {
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// The certificate.
    pub cert: X509,
}

impl<'a> TrustStore<'a> {
    /// The anchors of `home`.
    pub fn new(home: &'a Home) -> Self {
        TrustStore { home }
    }

    /// All anchors, sorted by fingerprint.
    pub fn list(&self) -> Result<Vec<Anchor>> {
        let mut out = Vec::new();
        for p in self.home.list(DIR, ".pem")? {
            let data = self.home.read(&p)?;
            let cert = X509::from_pem(&data).map_err(|e| {
                Error::store(format!("trust anchor file {} is damaged", p.display()))
                    .detail(e)
                    .hint("remove it and add the anchor again")
            })?;
            out.push(Anchor {
                fingerprint: cert::fingerprint(&cert),
                cert,
            });
        }
        Ok(out)
    }

    /// The anchor certificates.
    pub fn certs(&self) -> Result<Vec<X509>> {
        Ok(self.list()?.into_iter().map(|a| a.cert).collect())
    }

    /// Adds `cert` as an anchor; returns its fingerprint and whether it was new. The caller holds the lock.
    pub fn add(&self, cert: &X509Ref) -> Result<(String, bool)> {
        let fp = cert::fingerprint(cert);
        let dir = self.home.ensure_dir(DIR)?;
        let path = dir.join(format!("{fp}.pem"));
        if path.exists() {
            return Ok((fp, false));
        }
        let mut pem = format!(
            "# smimekit trust anchor\n# subject: {}\n",
            cert::name_to_string(cert.subject_name())
        )
        .into_bytes();
        pem.extend(cert.to_pem()?);
        self.home.write_atomic(&path, &pem)?;
        Ok((fp, true))
    }

    /// Removes the anchor whose fingerprint starts with `prefix`. The caller holds the lock.
    pub fn remove(&self, prefix: &str) -> Result<Anchor> {
        let a = find_by_fingerprint(self.list()?, prefix, |a| &a.fingerprint, "trust anchor")?;
        self.home
            .remove(&self.home.dir(DIR).join(format!("{}.pem", a.fingerprint)))?;
        Ok(a)
    }
}

/// Picks the single item whose fingerprint starts with `prefix` (at least 8 hex digits, colons ignored).
pub fn find_by_fingerprint<T>(
    items: Vec<T>,
    prefix: &str,
    fp: impl Fn(&T) -> &String,
    what: &str,
) -> Result<T> {
    let p: String = prefix
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if p.len() < 8 || !p.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(
            Error::usage(format!("'{prefix}' is not a fingerprint")).hint(
                "give at least 8 hex digits of the SHA-256 fingerprint shown by the list command",
            ),
        );
    }
    let mut m: Vec<T> = items
        .into_iter()
        .filter(|i| fp(i).starts_with(&p))
        .collect();
    match m.len() {
        0 => Err(
            Error::not_found(format!("no {what} has a fingerprint starting with {p}"))
                .hint("list them to see the fingerprints"),
        ),
        1 => Ok(m.remove(0)),
        n => Err(
            Error::usage(format!("{n} {what}s have a fingerprint starting with {p}"))
                .hint("give more digits"),
        ),
    }
}

/// What a certificate is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Signing e-mail (keyUsage digitalSignature/nonRepudiation, EKU emailProtection when present).
    Sign,
    /// Receiving encrypted e-mail. The chain is validated with no OpenSSL purpose: its S/MIME-encrypt purpose
    /// demands keyEncipherment, which EC (key-agreement) certificates never have; the certificate's own usage
    /// is checked by [`crate::cert::can_encrypt`], and every CA's extendedKeyUsage (emailProtection or
    /// anyExtendedKeyUsage when present) here, as the S/MIME-sign purpose checks it for signing.
    Encrypt,
    /// Signing e-mail or code (git commits and tags): validated with no OpenSSL purpose (OpenSSL 3.0 has no
    /// code-signing purpose); the leaf's usage is checked by [`crate::cert::can_sign_code`].
    SignCode,
}

/// Where anchors come from and when to validate.
#[derive(Debug, Clone)]
pub struct ChainOptions<'a> {
    /// The user's anchors (and any `--ca` files).
    pub anchors: &'a [X509],
    /// Also trust the system store.
    pub system: bool,
    /// Validation time, unix seconds.
    pub at: i64,
    /// The purpose checked.
    pub purpose: Purpose,
}

/// The outcome of path validation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainReport {
    /// A path to an anchor was found and every check held.
    pub trusted: bool,
    /// OpenSSL's reason when not trusted.
    pub error: Option<String>,
    /// Depth of the certificate that failed (0 = the leaf).
    pub error_depth: Option<u32>,
    /// Subjects of the chain built, leaf first.
    pub chain: Vec<String>,
    /// The validation time used, RFC 3339.
    pub at: String,
    /// The certificates of the chain built, leaf first (what harvesting may keep as intermediates).
    #[serde(skip)]
    pub certs: Vec<X509>,
}

/// Validates `leaf` at `opts.at` with `untrusted` as candidate intermediates.
///
/// With `opts.system`, the user's anchors are tried alone first: loading the system store parses every
/// certificate of the system bundle (about 15 ms, more than the rest of a small encrypt), and a chain that
/// is valid to one of the user's anchors is valid with more anchors too. Only when that fails is the
/// validation repeated with the system store, and its report is the one returned.
pub fn verify_chain(
    leaf: &X509Ref,
    untrusted: &[X509],
    opts: &ChainOptions,
) -> Result<ChainReport> {
    if opts.system && !opts.anchors.is_empty() {
        let mine = verify_chain_in(leaf, untrusted, opts, false)?;
        if mine.trusted {
            return Ok(mine);
        }
    }
    verify_chain_in(leaf, untrusted, opts, opts.system)
}

fn verify_chain_in(
    leaf: &X509Ref,
    untrusted: &[X509],
    opts: &ChainOptions,
    system: bool,
) -> Result<ChainReport> {
    let mut b = X509StoreBuilder::new()?;
    if system {
        match hashed_system_dir() {
            Some(dir) => b
                .add_lookup(X509Lookup::hash_dir())?
                .add_dir(dir, SslFiletype::PEM)?,
            None => b.set_default_paths()?,
        }
    }
    for a in opts.anchors {
        // Adding the same certificate twice is harmless but reports an error in some versions.
        let _ = b.add_cert(a.clone());
    }
    let _ = openssl::error::ErrorStack::get();
    let mut param = X509VerifyParam::new()?;
    param.set_time(opts.at as libc::time_t);
    param.set_depth(MAX_CHAIN_DEPTH);
    // OpenSSL's S/MIME-encrypt purpose demands keyEncipherment, which EC (key agreement) certificates never
    // have; encryption usability is checked by `cert::can_encrypt` instead, and the chain here.
    if opts.purpose == Purpose::Sign {
        param.set_purpose(X509PurposeId::SMIME_SIGN)?;
    }
    b.set_param(&param)?;
    let store = b.build();
    let mut chain = Stack::new()?;
    for c in untrusted.iter().take(MAX_UNTRUSTED) {
        chain.push(c.clone())?;
    }
    let mut ctx = X509StoreContext::new()?;
    let report = ctx.init(&store, leaf, &chain, |c| {
        let ok = c.verify_cert()?;
        let certs: Vec<X509> = c
            .chain()
            .map(|s| s.iter().map(|x| x.to_owned()).collect())
            .unwrap_or_default();
        // Without an OpenSSL purpose (see above) the CAs' extendedKeyUsage is not checked: check it here, as
        // the S/MIME-sign purpose does for signing chains, so a CA limited to TLS cannot issue a recipient.
        let eku_fault = (ok && opts.purpose == Purpose::Encrypt)
            .then(|| {
                certs.iter().enumerate().skip(1).find(|(_, x)| !cert::eku_allows_email(x)).map(|(i, x)| {
                    (
                        i as u32,
                        format!(
                            "the CA {} may not issue e-mail certificates (its extendedKeyUsage lacks emailProtection)",
                            cert::name_to_string(x.subject_name())
                        ),
                    )
                })
            })
            .flatten();
        let ok = ok && eku_fault.is_none();
        Ok(ChainReport {
            trusted: ok,
            error: match &eku_fault {
                Some((_, e)) => Some(e.clone()),
                None => (!ok).then(|| c.error().error_string().to_string()),
            },
            error_depth: match &eku_fault {
                Some((d, _)) => Some(*d),
                None => (!ok).then(|| c.error_depth()),
            },
            chain: certs
                .iter()
                .map(|x| cert::name_to_string(x.subject_name()))
                .collect(),
            at: cert::rfc3339(opts.at),
            certs,
        })
    })?;
    Ok(report)
}

/// The system certificate folder (`SSL_CERT_DIR`, else OpenSSL's default), when it is a hashed folder
/// (`c_rehash`: a `<subject hash>.<n>` link per certificate) and the system bundle file in effect is the
/// default one (`SSL_CERT_FILE` unset, or naming the same file).
///
/// `set_default_paths` parses the whole bundle file (`ca-certificates.crt`, ~140 certificates) each time a
/// store is built: 17 ms, three quarters of a small `encrypt`. A hashed folder is looked up lazily (only the
/// certificates whose subject is asked for are read), and where the distribution provides one (Debian,
/// Ubuntu, Alpine: `update-ca-certificates` writes both) it holds the same certificates as the default
/// bundle. Elsewhere (no hashed folder, or another bundle named) the full defaults are loaded.
fn hashed_system_dir() -> Option<&'static str> {
    static DIR: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let loc = crate::ossl::x509::default_cert_locations()?;
        let (default_file, file_env, default_dir, dir_env) =
            (loc.file, loc.file_env, loc.dir, loc.dir_env);
        if let Some(f) = std::env::var_os(file_env) {
            let same = match (
                std::fs::canonicalize(&f),
                std::fs::canonicalize(default_file),
            ) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            if !same {
                return None;
            }
        }
        let dir = match std::env::var(dir_env) {
            Ok(d) => d,
            Err(std::env::VarError::NotPresent) => default_dir.to_string(),
            Err(_) => return None,
        };
        if dir.contains(':') {
            return None; // a list of folders: not worth judging, load the defaults
        }
        let hashed = std::fs::read_dir(&dir).ok()?.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let (hash, n) = name.split_once('.').unwrap_or(("", ""));
            hash.len() == 8
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        });
        hashed.then_some(dir)
    })
    .as_deref()
}

/// Summaries of anchors for listings.
pub fn describe(anchors: &[Anchor]) -> Vec<CertInfo> {
    let now = cert::now();
    anchors
        .iter()
        .map(|a| CertInfo::new(&a.cert, now))
        .collect()
}

/// Chain results reused across the messages of one run (`scan`): the same signer certificate with the same
/// candidate intermediates, anchors, purpose and validation time always gives the same result, so path
/// validation (a store to build, system lookups, a signature check per chain link) runs once per signer and
/// message-certificate set instead of once per message. The anchor store for each trust setting is built once
/// too.
///
/// The cache keeps the certificates given to [`ChainCache::new`] (the run's anchors and known certificates)
/// alive and recognises them by identity; any other certificate (those a message carries) enters the key by its
/// SHA-256 fingerprint. A result is therefore only reused for exactly the same inputs, whatever options it is
/// used with; the run's fixed validation time is part of the key.
pub struct ChainCache {
    /// Kept alive so that their addresses identify them for as long as the cache exists.
    fixed: Vec<X509>,
    fixed_ptrs: std::collections::HashSet<usize>,
    results: std::sync::Mutex<std::collections::HashMap<Vec<u8>, ChainReport>>,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl ChainCache {
    /// A cache for runs over `fixed` certificates (the anchors and known certificates of the options it serves).
    pub fn new(fixed: &[X509]) -> ChainCache {
        ChainCache {
            fixed: fixed.to_vec(),
            fixed_ptrs: fixed.iter().map(|c| c.as_ptr() as usize).collect(),
            results: Default::default(),
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    fn part(&self, c: &X509Ref, key: &mut Vec<u8>) {
        let p = c.as_ptr() as usize;
        if self.fixed_ptrs.contains(&p) {
            key.push(b'p');
            key.extend_from_slice(&p.to_le_bytes());
        } else {
            key.push(b'f');
            match c.digest(openssl::hash::MessageDigest::sha256()) {
                Ok(d) => key.extend_from_slice(&d),
                // No fingerprint: a key nobody else can produce, so nothing is shared.
                Err(_) => key.extend_from_slice(&(key.len() as u64 ^ p as u64).to_le_bytes()),
            }
        }
    }

    /// [`verify_chain`], answered from the cache when the same question was asked before.
    pub fn verify_chain(
        &self,
        leaf: &X509Ref,
        untrusted: &[X509],
        opts: &ChainOptions,
    ) -> Result<ChainReport> {
        debug_assert!(!self.fixed.is_empty() || self.fixed_ptrs.is_empty());
        let mut key = Vec::with_capacity(64 + 9 * (untrusted.len() + opts.anchors.len()));
        key.extend_from_slice(&opts.at.to_le_bytes());
        key.push(opts.system as u8);
        key.push(opts.purpose as u8);
        self.part(leaf, &mut key);
        key.push(b'|');
        for c in untrusted.iter().take(MAX_UNTRUSTED) {
            self.part(c, &mut key);
        }
        key.push(b'|');
        for c in opts.anchors {
            self.part(c, &mut key);
        }
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(r) = self
            .results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            self.hits.fetch_add(1, Relaxed);
            return Ok(r.clone());
        }
        self.misses.fetch_add(1, Relaxed);
        let r = verify_chain(leaf, untrusted, opts)?;
        let mut m = self.results.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() < crate::limits::MAX_CACHED_CHAINS {
            m.insert(key, r.clone());
        }
        Ok(r)
    }

    /// How many questions were answered from the cache, and how many were computed.
    pub fn stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }
}
