//! PKCS#12 (RFC 7292): inspect, import and build `.p12`/`.pfx` files.
//!
//! - [`summarize`] walks the DER with [`crate::der`] (no password, no key derivation) and reports the MAC,
//!   the bag encryptions and the largest iteration count. [`check_limits`] then refuses hostile or
//!   unauthenticated files before any KDF work runs (security checklist T42, T43).
//! - [`parse`] opens a file bag by bag through OpenSSL's PKCS#12 API. (The `openssl` crate's `Pkcs12::parse2`
//!   returns one key and one certificate and hides bag attributes.) It keeps every key and certificate with
//!   its localKeyID and friendlyName. [`identities`] and [`pick_identity`] pair keys with their certificates
//!   and chains.
//! - [`build`] writes one standard PKCS#12 holding any number of identities and extra certificates
//!   (`id export` and `id backup`) in a chosen [`Profile`] (T44).
//!
//! Every `unsafe` block sits in a small private function with a `SAFETY` comment. OpenSSL objects are owned
//! by RAII guards (`OwnedStack`, `Owned`, `P8`) that free them with the matching `*_free`/`pop_free`.

use std::ffi::{c_char, c_int, c_uchar, c_void};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs7::Pkcs7Ref;
use openssl::pkcs12::{Pkcs12, Pkcs12Ref};
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::x509::{X509, X509Ref, X509VerifyResult};
use openssl_sys as sys;
use zeroize::Zeroizing;

use crate::cert::hex;
use crate::der::{self, Tlv, tag};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{
    MAX_KDF_ITERATIONS, MAX_KDF_TOTAL_ITERATIONS, P12_MAX_BAG_DEPTH, P12_MAX_CHAIN,
    scrypt_within_limits,
};
use crate::ossl::provider;
use crate::ossl::{cvt, cvt_p};
use crate::secret::Secret;

// ---------------------------------------------------------------------------------------------------------
// Limits and profile parameters
// ---------------------------------------------------------------------------------------------------------

/// PBKDF2 iterations of the [`Profile::Modern`] key and certificate bags (OWASP 2023 for PBKDF2-HMAC-SHA256).
pub const MODERN_ITERATIONS: u32 = 600_000;

/// MAC iterations of the [`Profile::Modern`] profile.
///
/// As high as the bag encryption's: the MAC is keyed by the password, so its key derivation is an oracle
/// for offline guessing. With OpenSSL's default of 2048 the 600,000 PBKDF2 iterations would protect
/// nothing. It costs about a third of a second when writing and again when reading.
pub const MODERN_MAC_ITERATIONS: u32 = 600_000;

/// Iterations (bags and MAC) of the [`Profile::Compat`] and [`Profile::Legacy`] profiles: OpenSSL's
/// default (`PKCS12_DEFAULT_ITER`) and what `openssl pkcs12 -export -legacy` writes. Old importers
/// were tested with counts around 2000, so we do not go higher.
pub const LEGACY_ITERATIONS: u32 = 2048;

/// Length in bytes of every salt we write (bags, PBKDF2 and MAC); OpenSSL 3.0 defaults to 8.
const SALT_LEN: c_int = 16;

// The caps on reading (iterations, scrypt cost, bag depth, chain length) are in `limits.rs`.

/// Encryption and MAC choices for [`build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// PBES2 + PBKDF2-HMAC-SHA256 ([`MODERN_ITERATIONS`]) + AES-256-CBC for both key and certificate
    /// bags, 16-byte salts, and an HMAC-SHA-256 MAC with [`MODERN_MAC_ITERATIONS`]. Read by OpenSSL 3
    /// (`openssl pkcs12 -info` shows "PBES2, PBKDF2, AES-256-CBC, Iteration 600000, PRF hmacWithSHA256");
    /// not by gpgsm 2.2.
    #[default]
    Modern,
    /// `pbeWithSHA1And3-KeyTripleDES-CBC` for key and certificates, SHA-1 MAC, [`LEGACY_ITERATIONS`]:
    /// for older Windows, macOS and iOS that cannot read AES/PBES2 PKCS#12 files. gpgsm 2.2 imports it
    /// too (checked by hand; its 3DES salts are drawn so that gpgsm derives the key right, see
    /// [`pbe_salt`]).
    Compat,
    /// RC2-40 certificates, 3DES key, SHA-1 MAC, [`LEGACY_ITERATIONS`]: exactly what
    /// `openssl pkcs12 -export -legacy` writes and what gpgsm 2.2 imports (always: unlike OpenSSL we
    /// skip the one 3DES salt in 128 that gpgsm cannot use, see [`pbe_salt`]). Needs OpenSSL's legacy
    /// provider. RC2-40 protects nothing; only the key bag is really encrypted.
    Legacy,
}

struct ProfileParams {
    key_nid: c_int,
    cert_nid: c_int,
    iter: c_int,
    mac_md: MessageDigest,
    mac_iter: c_int,
}

impl Profile {
    fn params(self) -> ProfileParams {
        match self {
            Profile::Modern => ProfileParams {
                key_nid: sys::NID_aes_256_cbc,
                cert_nid: sys::NID_aes_256_cbc,
                iter: MODERN_ITERATIONS as c_int,
                mac_md: MessageDigest::sha256(),
                mac_iter: MODERN_MAC_ITERATIONS as c_int,
            },
            Profile::Compat => ProfileParams {
                key_nid: sys::NID_pbe_WithSHA1And3_Key_TripleDES_CBC,
                cert_nid: sys::NID_pbe_WithSHA1And3_Key_TripleDES_CBC,
                iter: LEGACY_ITERATIONS as c_int,
                mac_md: MessageDigest::sha1(),
                mac_iter: LEGACY_ITERATIONS as c_int,
            },
            Profile::Legacy => ProfileParams {
                key_nid: sys::NID_pbe_WithSHA1And3_Key_TripleDES_CBC,
                cert_nid: sys::NID_pbe_WithSHA1And40BitRC2_CBC,
                iter: LEGACY_ITERATIONS as c_int,
                mac_md: MessageDigest::sha1(),
                mac_iter: LEGACY_ITERATIONS as c_int,
            },
        }
    }

    /// A human description of what the profile writes, in the style of [`P12Summary::description`].
    pub fn describe(self) -> &'static str {
        match self {
            Profile::Modern => "modern PKCS#12 (AES-256-CBC, PBKDF2-HMAC-SHA256, SHA-256 MAC)",
            Profile::Compat => "legacy PKCS#12 (3DES, SHA-1 MAC)",
            Profile::Legacy => "legacy RC2-40 PKCS#12 (3DES key, SHA-1 MAC)",
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Public data types
// ---------------------------------------------------------------------------------------------------------

/// scrypt parameters found in a PBES2 algorithm (RFC 7914).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ScryptParams {
    /// CPU/memory cost N.
    pub n: u64,
    /// Block size r.
    pub r: u64,
    /// Parallelisation p.
    pub p: u64,
}

impl ScryptParams {
    /// Memory in bytes the derivation needs (128·r·N, saturating).
    pub fn memory(&self) -> u64 {
        128u64.saturating_mul(self.r).saturating_mul(self.n)
    }
    /// Work N·r·p (saturating).
    pub fn work(&self) -> u64 {
        self.n.saturating_mul(self.r).saturating_mul(self.p)
    }
}

/// What a PKCS#12 file says about itself without the password: from [`summarize`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct P12Summary {
    /// True if the file has a MAC (password integrity).
    pub has_mac: bool,
    /// The MAC digest: `"sha1"`, `"sha256"`, `"sha384"`, `"sha512"`… (OpenSSL's names), `"pbmac1-<prf>"`
    /// for RFC 9579 PBMAC1, or the dotted OID if unknown.
    pub mac_digest: Option<String>,
    /// The MAC's iteration count (1 when the field is absent, as RFC 7292 says).
    pub mac_iterations: Option<u64>,
    /// Every distinct bag or safe encryption we can see, in order of appearance: e.g.
    /// `"PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC"`, `"pbeWithSHA1And40BitRC2-CBC"`,
    /// `"pbeWithSHA1And3-KeyTripleDES-CBC"`, `"envelopedData"`, or a dotted OID.
    /// Key bags inside encrypted safes are not visible before decryption.
    pub bag_encryptions: Vec<String>,
    /// The largest iteration count over the MAC, PBE and PBKDF2 parameters we can see.
    pub max_iterations: u64,
    /// The sum of those iteration counts: the key-derivation work of opening the file.
    pub total_iterations: u64,
    /// scrypt parameters we can see (rare in PKCS#12).
    pub scrypt: Vec<ScryptParams>,
    /// True if anything is weaker than PBES2 + AES + a SHA-2 PRF/MAC (RC2, RC4, DES, 3DES, SHA-1/MD5
    /// MAC, HMAC-SHA1 PRF) or a private key is stored unencrypted. Import such files with a warning
    /// and store them re-encrypted.
    pub legacy: bool,
    /// A human description, e.g. `"modern PKCS#12 (AES-256-CBC, PBKDF2-HMAC-SHA256, SHA-256 MAC)"` or
    /// `"legacy RC2-40 PKCS#12 (3DES key, SHA-1 MAC)"`.
    pub description: String,
}

/// A private key found in a PKCS#12 file.
#[derive(Clone)]
pub struct P12Key {
    /// The key.
    pub key: PKey<Private>,
    /// The bag's localKeyID attribute, which links it to its certificate.
    pub local_key_id: Option<Vec<u8>>,
    /// The bag's friendlyName attribute.
    pub friendly_name: Option<String>,
}

impl fmt::Debug for P12Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P12Key")
            .field("key", &key_type(&self.key))
            .field("local_key_id", &self.local_key_id.as_deref().map(hex))
            .field("friendly_name", &self.friendly_name)
            .finish()
    }
}

/// A certificate found in a PKCS#12 file.
#[derive(Clone)]
pub struct P12Cert {
    /// The certificate.
    pub cert: X509,
    /// The bag's localKeyID attribute; set on the certificate that belongs to a key.
    pub local_key_id: Option<Vec<u8>>,
    /// The bag's friendlyName attribute.
    pub friendly_name: Option<String>,
}

impl fmt::Debug for P12Cert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P12Cert")
            .field("subject", &subject_str(&self.cert))
            .field("local_key_id", &self.local_key_id.as_deref().map(hex))
            .field("friendly_name", &self.friendly_name)
            .finish()
    }
}

/// Everything [`parse`] found, in file order.
#[derive(Debug, Clone)]
pub struct P12Contents {
    /// The private keys.
    pub keys: Vec<P12Key>,
    /// The certificates (leaves, CA certificates and others).
    pub certs: Vec<P12Cert>,
    /// The file's [`summarize`] result (for warnings such as "legacy format").
    pub summary: P12Summary,
    /// How many bags were skipped because we do not use them (CRL and non-X.509 certificate bags).
    pub skipped_bags: usize,
    /// secretBags whose value is an OCTET STRING.
    pub secrets: Vec<P12Secret>,
}

/// `(key, leaf, chain)`: a digital ID as [`identities`] and [`pick_identity`] return it.
pub type IdentityParts = (PKey<Private>, X509, Vec<X509>);

/// One digital ID assembled from a [`P12Contents`] by [`find_identities`].
#[derive(Clone)]
pub struct P12Identity {
    /// The private key.
    pub key: PKey<Private>,
    /// The leaf certificate: the one whose public key matches [`key`](Self::key).
    pub cert: X509,
    /// The issuers of the leaf found in the file, in issuer order (the leaf's issuer first).
    pub chain: Vec<X509>,
    /// The key's friendlyName, else the leaf certificate's.
    pub friendly_name: Option<String>,
    /// The key's localKeyID, else the leaf certificate's.
    pub local_key_id: Option<Vec<u8>>,
}

impl P12Identity {
    /// `(key, leaf, chain)`, the shape [`pick_identity`] returns.
    pub fn into_parts(self) -> IdentityParts {
        (self.key, self.cert, self.chain)
    }
}

impl From<P12Identity> for IdentityParts {
    fn from(i: P12Identity) -> Self {
        i.into_parts()
    }
}

impl fmt::Debug for P12Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P12Identity")
            .field("subject", &subject_str(&self.cert))
            .field(
                "chain",
                &self
                    .chain
                    .iter()
                    .map(|c| subject_str(c))
                    .collect::<Vec<_>>(),
            )
            .field("friendly_name", &self.friendly_name)
            .finish()
    }
}

/// One entry of a file written by [`build`].
pub enum BuildEntry<'a> {
    /// A digital ID: key bag and leaf certificate bag linked by a localKeyID (the leaf's SHA-1
    /// fingerprint, as OpenSSL does), both named `friendly_name`; `chain` certificates go in unnamed bags.
    Identity {
        /// The private key.
        key: &'a PKeyRef<Private>,
        /// Its certificate; must match the key.
        cert: &'a X509Ref,
        /// Issuer certificates to include.
        chain: &'a [X509],
        /// The friendlyName of both bags (empty: none).
        friendly_name: &'a str,
    },
    /// A certificate without key (a contact or a trust anchor).
    Cert {
        /// The certificate.
        cert: &'a X509Ref,
        /// Its friendlyName (empty: none).
        friendly_name: &'a str,
    },
    /// Opaque data in a secretBag (RFC 7292 §4.2.5), e.g. smimekit's contacts metadata in a backup: the
    /// secretTypeId is `type_oid` (dotted), the value an OCTET STRING. Stored in the encrypted safe.
    Secret {
        /// The secretTypeId.
        type_oid: &'a str,
        /// The bytes.
        value: &'a [u8],
    },
}

/// A secretBag read from a PKCS#12 file.
#[derive(Debug, Clone)]
pub struct P12Secret {
    /// The secretTypeId, dotted.
    pub type_oid: String,
    /// The value (the contents of an OCTET STRING; any other value is skipped).
    pub value: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------------------
// summarize: a pure DER walk
// ---------------------------------------------------------------------------------------------------------

const OID_DATA: &str = "1.2.840.113549.1.7.1";
const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_ENVELOPED_DATA: &str = "1.2.840.113549.1.7.3";
const OID_ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
const OID_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.1";
const OID_SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
const OID_CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
const OID_SAFE_CONTENTS_BAG: &str = "1.2.840.113549.1.12.10.1.6";
const OID_PBES2: &str = "1.2.840.113549.1.5.13";
const OID_PBKDF2: &str = "1.2.840.113549.1.5.12";
const OID_PBMAC1: &str = "1.2.840.113549.1.5.14";
const OID_SCRYPT: &str = "1.3.6.1.4.1.11591.4.11";

/// A password-based encryption algorithm as seen in the DER.
#[derive(Debug, Clone, PartialEq)]
struct Alg {
    /// Full name for [`P12Summary::bag_encryptions`].
    name: String,
    /// Name used in descriptions: "AES-256-CBC, PBKDF2-HMAC-SHA256" or "3DES".
    desc: String,
    /// Short cipher name: "AES-256-CBC", "RC2-40", "3DES".
    short: String,
    /// PBES2 with AES and a SHA-2 PRF (or scrypt).
    modern: bool,
    /// Iteration counts (PBE or PBKDF2).
    iterations: Vec<u64>,
    scrypt: Option<ScryptParams>,
}

#[derive(Debug, Clone)]
struct MacInfo {
    /// OpenSSL-style digest name, "pbmac1-…", or the OID.
    digest: String,
    /// "SHA-256 MAC".
    desc: String,
    modern: bool,
    iterations: u64,
    /// PBKDF2 iterations inside PBMAC1 parameters.
    kdf_iterations: Option<u64>,
}

#[derive(Debug, Clone)]
enum Bag {
    /// An unencrypted keyBag.
    Key,
    /// A pkcs8ShroudedKeyBag.
    Shrouded(Alg),
    Cert,
    Nested(Vec<Bag>),
    Other,
}

#[derive(Debug, Clone)]
enum Safe {
    Data(Vec<Bag>),
    Encrypted(Alg),
    Enveloped,
    Unknown(String),
}

#[derive(Debug, Clone)]
struct Walk {
    mac: Option<MacInfo>,
    safes: Vec<Safe>,
}

fn not_pfx(der: &[u8], why: impl fmt::Display) -> Error {
    let e = if looks_like_pfx(der) {
        Error::bad_input("the PKCS#12 file is damaged or truncated")
            .hint("check that it is the complete, unmodified file (e.g. not a text-mode download)")
    } else if der.starts_with(b"-----BEGIN") {
        Error::bad_input("not a PKCS#12 file")
            .hint("this is PEM text; a PKCS#12 file (.p12/.pfx) is binary DER")
    } else {
        Error::bad_input("not a PKCS#12 file").hint("expected a binary .p12 or .pfx file")
    };
    e.detail(why)
}

/// True if `der` starts like a PFX: SEQUENCE { INTEGER 3, …
fn looks_like_pfx(der: &[u8]) -> bool {
    if der.first() != Some(&tag::SEQUENCE) {
        return false;
    }
    let Some(&l0) = der.get(1) else { return false };
    let hdr = if l0 <= 0x80 {
        2
    } else {
        2 + usize::from(l0 & 0x7f)
    };
    der.get(hdr..hdr + 3) == Some(&[tag::INTEGER, 1, 3][..])
}

fn damaged(what: &str) -> Error {
    Error::bad_input(format!("the PKCS#12 file is damaged ({what})"))
        .hint("check that it is the complete, unmodified file")
}

/// Children of a SEQUENCE, or a "damaged" error naming `what`.
fn seq_children<'a>(t: &Tlv<'a>, what: &str) -> Result<Vec<Tlv<'a>>> {
    if t.tag != tag::SEQUENCE {
        return Err(damaged(&format!("{what} is not a SEQUENCE")));
    }
    t.children().map_err(|e| damaged(&format!("{what}: {e}")))
}

/// An iteration count: errors if not a non-negative INTEGER; saturates at `u64::MAX`.
fn count(t: &Tlv<'_>, what: &str) -> Result<u64> {
    if t.tag != tag::INTEGER || t.value.is_empty() {
        return Err(damaged(&format!("{what} is not an INTEGER")));
    }
    if t.value[0] & 0x80 != 0 {
        return Err(damaged(&format!("negative {what}")));
    }
    Ok(t.as_u64().unwrap_or(u64::MAX))
}

/// (contentType, explicit content) of a ContentInfo.
fn content_info<'a>(t: &Tlv<'a>) -> Result<(String, Option<Tlv<'a>>)> {
    let k = seq_children(t, "ContentInfo")?;
    let oid = k
        .first()
        .and_then(|o| o.oid())
        .ok_or_else(|| damaged("ContentInfo without a type"))?;
    let content = match k.get(1) {
        None => None,
        Some(c) if c.tag == 0xa0 => {
            let inner = c
                .children()
                .map_err(|e| damaged(&format!("ContentInfo content: {e}")))?;
            Some(
                *inner
                    .first()
                    .ok_or_else(|| damaged("empty ContentInfo content"))?,
            )
        }
        Some(_) => return Err(damaged("ContentInfo content is not [0]")),
    };
    Ok((oid, content))
}

fn pbe_v1(oid: &str) -> Option<(&'static str, &'static str)> {
    Some(match oid {
        "1.2.840.113549.1.12.1.1" => ("pbeWithSHA1And128BitRC4", "RC4-128"),
        "1.2.840.113549.1.12.1.2" => ("pbeWithSHA1And40BitRC4", "RC4-40"),
        "1.2.840.113549.1.12.1.3" => ("pbeWithSHA1And3-KeyTripleDES-CBC", "3DES"),
        "1.2.840.113549.1.12.1.4" => ("pbeWithSHA1And2-KeyTripleDES-CBC", "2-key 3DES"),
        "1.2.840.113549.1.12.1.5" => ("pbeWithSHA1And128BitRC2-CBC", "RC2-128"),
        "1.2.840.113549.1.12.1.6" => ("pbeWithSHA1And40BitRC2-CBC", "RC2-40"),
        "1.2.840.113549.1.5.1" => ("pbeWithMD2AndDES-CBC", "DES"),
        "1.2.840.113549.1.5.3" => ("pbeWithMD5AndDES-CBC", "DES"),
        "1.2.840.113549.1.5.4" => ("pbeWithMD2AndRC2-CBC", "RC2-64"),
        "1.2.840.113549.1.5.6" => ("pbeWithMD5AndRC2-CBC", "RC2-64"),
        "1.2.840.113549.1.5.10" => ("pbeWithSHA1AndDES-CBC", "DES"),
        "1.2.840.113549.1.5.11" => ("pbeWithSHA1AndRC2-CBC", "RC2-64"),
        _ => return None,
    })
}

fn pbes2_cipher(oid: &str) -> Option<(&'static str, bool)> {
    Some(match oid {
        "2.16.840.1.101.3.4.1.2" => ("AES-128-CBC", true),
        "2.16.840.1.101.3.4.1.22" => ("AES-192-CBC", true),
        "2.16.840.1.101.3.4.1.42" => ("AES-256-CBC", true),
        "2.16.840.1.101.3.4.1.6" => ("AES-128-GCM", true),
        "2.16.840.1.101.3.4.1.26" => ("AES-192-GCM", true),
        "2.16.840.1.101.3.4.1.46" => ("AES-256-GCM", true),
        "1.2.840.113549.3.7" => ("DES-EDE3-CBC", false),
        "1.2.840.113549.3.2" => ("RC2-CBC", false),
        "1.3.14.3.2.7" => ("DES-CBC", false),
        _ => return None,
    })
}

fn hmac_prf(oid: &str) -> Option<(&'static str, bool)> {
    Some(match oid {
        "1.2.840.113549.2.7" => ("HMAC-SHA1", false),
        "1.2.840.113549.2.8" => ("HMAC-SHA224", true),
        "1.2.840.113549.2.9" => ("HMAC-SHA256", true),
        "1.2.840.113549.2.10" => ("HMAC-SHA384", true),
        "1.2.840.113549.2.11" => ("HMAC-SHA512", true),
        "1.2.840.113549.2.12" => ("HMAC-SHA512-224", true),
        "1.2.840.113549.2.13" => ("HMAC-SHA512-256", true),
        "2.16.840.1.101.3.4.2.13" => ("HMAC-SHA3-224", true),
        "2.16.840.1.101.3.4.2.14" => ("HMAC-SHA3-256", true),
        "2.16.840.1.101.3.4.2.15" => ("HMAC-SHA3-384", true),
        "2.16.840.1.101.3.4.2.16" => ("HMAC-SHA3-512", true),
        _ => return None,
    })
}

/// (OpenSSL name, display name, modern) of a MAC digest.
fn mac_digest(oid: &str) -> Option<(&'static str, &'static str, bool)> {
    Some(match oid {
        "1.3.14.3.2.26" => ("sha1", "SHA-1", false),
        "2.16.840.1.101.3.4.2.1" => ("sha256", "SHA-256", true),
        "2.16.840.1.101.3.4.2.2" => ("sha384", "SHA-384", true),
        "2.16.840.1.101.3.4.2.3" => ("sha512", "SHA-512", true),
        "2.16.840.1.101.3.4.2.4" => ("sha224", "SHA-224", true),
        "2.16.840.1.101.3.4.2.5" => ("sha512-224", "SHA-512/224", true),
        "2.16.840.1.101.3.4.2.6" => ("sha512-256", "SHA-512/256", true),
        "2.16.840.1.101.3.4.2.7" => ("sha3-224", "SHA3-224", true),
        "2.16.840.1.101.3.4.2.8" => ("sha3-256", "SHA3-256", true),
        "2.16.840.1.101.3.4.2.9" => ("sha3-384", "SHA3-384", true),
        "2.16.840.1.101.3.4.2.10" => ("sha3-512", "SHA3-512", true),
        "1.2.840.113549.2.5" => ("md5", "MD5", false),
        "1.2.840.113549.2.2" => ("md2", "MD2", false),
        _ => return None,
    })
}

/// PBKDF2-params: (iterations, PRF name, PRF modern).
fn pbkdf2_params(params: Option<&Tlv<'_>>) -> Result<(u64, String, bool)> {
    let p = seq_children(
        params.ok_or_else(|| damaged("PBKDF2 without parameters"))?,
        "PBKDF2 parameters",
    )?;
    let iter = count(
        p.get(1)
            .ok_or_else(|| damaged("PBKDF2 without iteration count"))?,
        "PBKDF2 iteration count",
    )?;
    // keyLength INTEGER OPTIONAL, then prf AlgorithmIdentifier DEFAULT hmacWithSHA1.
    let (prf, modern) = match p.iter().skip(2).find(|t| t.tag == tag::SEQUENCE) {
        None => ("HMAC-SHA1".to_string(), false),
        Some(a) => {
            let oid = seq_children(a, "PBKDF2 PRF")?
                .first()
                .and_then(|o| o.oid())
                .unwrap_or_default();
            match hmac_prf(&oid) {
                Some((n, m)) => (n.to_string(), m),
                None => (oid, false),
            }
        }
    };
    Ok((iter, prf, modern))
}

/// Reads an AlgorithmIdentifier of a password-based encryption scheme.
fn parse_alg(t: &Tlv<'_>) -> Result<Alg> {
    let k = seq_children(t, "encryption AlgorithmIdentifier")?;
    let oid = k
        .first()
        .and_then(|o| o.oid())
        .ok_or_else(|| damaged("encryption algorithm without an OID"))?;
    let params = k.get(1);
    if let Some((name, short)) = pbe_v1(&oid) {
        let p = seq_children(
            params.ok_or_else(|| damaged("PBE without parameters"))?,
            "PBE parameters",
        )?;
        let iter = count(
            p.get(1)
                .ok_or_else(|| damaged("PBE without iteration count"))?,
            "PBE iteration count",
        )?;
        return Ok(Alg {
            name: name.into(),
            desc: short.into(),
            short: short.into(),
            modern: false,
            iterations: vec![iter],
            scrypt: None,
        });
    }
    if oid != OID_PBES2 {
        return Ok(Alg {
            name: oid.clone(),
            desc: oid.clone(),
            short: oid,
            modern: false,
            iterations: vec![],
            scrypt: None,
        });
    }
    let p = seq_children(
        params.ok_or_else(|| damaged("PBES2 without parameters"))?,
        "PBES2 parameters",
    )?;
    let (kdf, enc) = match (p.first(), p.get(1)) {
        (Some(a), Some(b)) => (
            seq_children(a, "PBES2 key derivation")?,
            seq_children(b, "PBES2 encryption scheme")?,
        ),
        _ => return Err(damaged("incomplete PBES2 parameters")),
    };
    let kdf_oid = kdf.first().and_then(|o| o.oid()).unwrap_or_default();
    let enc_oid = enc.first().and_then(|o| o.oid()).unwrap_or_default();
    let (cipher, cipher_modern) = match pbes2_cipher(&enc_oid) {
        Some((c, m)) => (c.to_string(), m),
        None => (enc_oid, false),
    };
    let (kdf_name, kdf_modern, iterations, scrypt) = match kdf_oid.as_str() {
        OID_PBKDF2 => {
            let (iter, prf, m) = pbkdf2_params(kdf.get(1))?;
            (format!("PBKDF2-{prf}"), m, vec![iter], None)
        }
        OID_SCRYPT => {
            let sp = seq_children(
                kdf.get(1)
                    .ok_or_else(|| damaged("scrypt without parameters"))?,
                "scrypt parameters",
            )?;
            let get = |i: usize, what: &str| -> Result<u64> {
                count(
                    sp.get(i)
                        .ok_or_else(|| damaged(&format!("scrypt without {what}")))?,
                    what,
                )
            };
            let s = ScryptParams {
                n: get(1, "scrypt N")?,
                r: get(2, "scrypt r")?,
                p: get(3, "scrypt p")?,
            };
            (
                format!("scrypt(N={},r={},p={})", s.n, s.r, s.p),
                true,
                vec![],
                Some(s),
            )
        }
        other => (other.to_string(), false, vec![], None),
    };
    Ok(Alg {
        name: format!("PBES2/{kdf_name}/{cipher}"),
        desc: format!("{cipher}, {kdf_name}"),
        short: cipher,
        modern: kdf_modern && cipher_modern,
        iterations,
        scrypt,
    })
}

fn parse_mac(t: &Tlv<'_>) -> Result<MacInfo> {
    let k = seq_children(t, "MacData")?;
    let digest_info = seq_children(
        k.first().ok_or_else(|| damaged("empty MacData"))?,
        "MAC DigestInfo",
    )?;
    let alg = seq_children(
        digest_info
            .first()
            .ok_or_else(|| damaged("empty DigestInfo"))?,
        "MAC algorithm",
    )?;
    let oid = alg
        .first()
        .and_then(|o| o.oid())
        .ok_or_else(|| damaged("MAC algorithm without an OID"))?;
    let iterations = match k.get(2) {
        Some(i) => count(i, "MAC iteration count")?,
        None => 1,
    };
    if oid == OID_PBMAC1 {
        // RFC 9579: PBMAC1-params { keyDerivationFunc (PBKDF2), messageAuthScheme (HMAC) }.
        let p = seq_children(
            alg.get(1)
                .ok_or_else(|| damaged("PBMAC1 without parameters"))?,
            "PBMAC1 parameters",
        )?;
        let kdf = seq_children(
            p.first().ok_or_else(|| damaged("PBMAC1 without KDF"))?,
            "PBMAC1 KDF",
        )?;
        let (kdf_iter, _, kdf_modern) =
            if kdf.first().and_then(|o| o.oid()).as_deref() == Some(OID_PBKDF2) {
                pbkdf2_params(kdf.get(1))?
            } else {
                (0, String::new(), false)
            };
        let scheme = p
            .get(1)
            .map(|s| seq_children(s, "PBMAC1 scheme"))
            .transpose()?;
        let scheme_oid = scheme
            .and_then(|s| s.first().and_then(|o| o.oid()))
            .unwrap_or_default();
        let (hmac, hmac_modern) = hmac_prf(&scheme_oid)
            .map(|(n, m)| (n.to_string(), m))
            .unwrap_or((scheme_oid, false));
        return Ok(MacInfo {
            digest: format!("pbmac1-{}", hmac.to_ascii_lowercase()),
            desc: format!("PBMAC1 {hmac} MAC"),
            modern: kdf_modern && hmac_modern,
            iterations,
            kdf_iterations: Some(kdf_iter),
        });
    }
    let (digest, desc, modern) = match mac_digest(&oid) {
        Some((n, d, m)) => (n.to_string(), format!("{d} MAC"), m),
        None => (oid.clone(), format!("{oid} MAC"), false),
    };
    Ok(MacInfo {
        digest,
        desc,
        modern,
        iterations,
        kdf_iterations: None,
    })
}

fn parse_bag(t: &Tlv<'_>, depth: usize) -> Result<Bag> {
    let k = seq_children(t, "SafeBag")?;
    let oid = k
        .first()
        .and_then(|o| o.oid())
        .ok_or_else(|| damaged("SafeBag without a type"))?;
    let value = || -> Result<Tlv<'_>> {
        let v = k
            .get(1)
            .filter(|v| v.tag == 0xa0)
            .ok_or_else(|| damaged("SafeBag without a value"))?;
        let inner = v
            .children()
            .map_err(|e| damaged(&format!("SafeBag value: {e}")))?;
        inner
            .first()
            .copied()
            .ok_or_else(|| damaged("empty SafeBag value"))
    };
    Ok(match oid.as_str() {
        OID_KEY_BAG => Bag::Key,
        OID_SHROUDED_KEY_BAG => {
            let epki = seq_children(&value()?, "EncryptedPrivateKeyInfo")?;
            Bag::Shrouded(parse_alg(
                epki.first()
                    .ok_or_else(|| damaged("empty EncryptedPrivateKeyInfo"))?,
            )?)
        }
        OID_CERT_BAG => Bag::Cert,
        OID_SAFE_CONTENTS_BAG => {
            if depth >= P12_MAX_BAG_DEPTH {
                return Err(Error::limit(format!(
                    "the PKCS#12 file nests bags deeper than {P12_MAX_BAG_DEPTH} levels"
                )));
            }
            Bag::Nested(parse_bags(&value()?, depth + 1)?)
        }
        _ => Bag::Other,
    })
}

/// SafeContents ::= SEQUENCE OF SafeBag.
fn parse_bags(t: &Tlv<'_>, depth: usize) -> Result<Vec<Bag>> {
    seq_children(t, "SafeContents")?
        .iter()
        .map(|b| parse_bag(b, depth))
        .collect()
}

/// One element of the AuthenticatedSafe.
fn parse_safe(t: &Tlv<'_>) -> Result<Safe> {
    let (oid, content) = content_info(t)?;
    Ok(match oid.as_str() {
        OID_DATA => {
            let octets = match content {
                Some(c) => c
                    .octets()
                    .map_err(|e| damaged(&format!("data safe: {e}")))?,
                None => Vec::new(),
            };
            if octets.is_empty() {
                Safe::Data(Vec::new())
            } else {
                let sc =
                    der::parse_one(&octets).map_err(|e| damaged(&format!("data safe: {e}")))?;
                Safe::Data(parse_bags(&sc, 0)?)
            }
        }
        OID_ENCRYPTED_DATA => {
            let c = content.ok_or_else(|| damaged("encryptedData without content"))?;
            let ed = seq_children(&c, "EncryptedData")?;
            let eci = seq_children(
                ed.get(1)
                    .ok_or_else(|| damaged("EncryptedData without content info"))?,
                "EncryptedContentInfo",
            )?;
            Safe::Encrypted(parse_alg(
                eci.get(1)
                    .ok_or_else(|| damaged("EncryptedContentInfo without algorithm"))?,
            )?)
        }
        OID_ENVELOPED_DATA => Safe::Enveloped,
        _ => Safe::Unknown(oid),
    })
}

fn walk(der: &[u8]) -> Result<Walk> {
    let top = der::parse_one(der).map_err(|e| not_pfx(der, e))?;
    if top.tag != tag::SEQUENCE {
        return Err(not_pfx(der, "the top level is not a SEQUENCE"));
    }
    let k = top.children().map_err(|e| not_pfx(der, e))?;
    if !(2..=3).contains(&k.len()) || k[0].tag != tag::INTEGER || k[1].tag != tag::SEQUENCE {
        return Err(not_pfx(der, "not a PFX structure"));
    }
    match k[0].as_u64() {
        Some(3) => {}
        v => {
            return Err(Error::unsupported(format!(
                "the PKCS#12 file has version {}; only version 3 is defined",
                v.map_or("?".to_string(), |v| v.to_string())
            )));
        }
    }
    let (oid, content) = content_info(&k[1]).map_err(|e| not_pfx(der, e))?;
    match oid.as_str() {
        OID_DATA => {}
        OID_SIGNED_DATA => {
            return Err(Error::unsupported("the PKCS#12 file uses public-key integrity mode (signedData)")
                .hint("smimekit reads password-protected PKCS#12 files; export the ID again with a password"));
        }
        _ => return Err(not_pfx(der, format!("authSafe content type {oid}"))),
    }
    let octets = content
        .ok_or_else(|| damaged("authSafe without content"))?
        .octets()
        .map_err(|e| damaged(&format!("authSafe: {e}")))?;
    let auth = der::parse_one(&octets).map_err(|e| damaged(&format!("AuthenticatedSafe: {e}")))?;
    let safes = seq_children(&auth, "AuthenticatedSafe")?
        .iter()
        .map(parse_safe)
        .collect::<Result<Vec<_>>>()?;
    let mac = k.get(2).map(parse_mac).transpose()?;
    Ok(Walk { mac, safes })
}

/// What [`summarize`] accumulates.
#[derive(Default)]
struct Tally {
    encryptions: Vec<String>,
    max_iter: u64,
    total_iter: u64,
    scrypt: Vec<ScryptParams>,
    /// Distinct key-bag algorithms ("unencrypted" for a keyBag).
    key_algs: Vec<Alg>,
    /// Distinct encrypted-safe algorithms.
    safe_algs: Vec<Alg>,
    plain_key: bool,
    plain_certs: bool,
    enveloped: bool,
    all_modern: bool,
}

impl Tally {
    fn iterations(&mut self, n: u64) {
        self.max_iter = self.max_iter.max(n);
        self.total_iter = self.total_iter.saturating_add(n);
    }
    fn alg(&mut self, a: &Alg, key: bool) {
        for &n in &a.iterations {
            self.iterations(n);
        }
        if let Some(s) = a.scrypt {
            self.scrypt.push(s);
        }
        if !self.encryptions.contains(&a.name) {
            self.encryptions.push(a.name.clone());
        }
        self.all_modern &= a.modern;
        let list = if key {
            &mut self.key_algs
        } else {
            &mut self.safe_algs
        };
        if !list.contains(a) && !list.iter().any(|b| b.name == a.name) {
            list.push(a.clone());
        }
    }
    fn bags(&mut self, bags: &[Bag]) {
        for b in bags {
            match b {
                Bag::Key => {
                    self.plain_key = true;
                    self.all_modern = false;
                }
                Bag::Shrouded(a) => self.alg(a, true),
                Bag::Cert => self.plain_certs = true,
                Bag::Nested(inner) => self.bags(inner),
                Bag::Other => {}
            }
        }
    }
}

fn join_short(algs: &[Alg]) -> String {
    algs.iter()
        .map(|a| a.short.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// "AES-256-CBC/PBKDF2-HMAC-SHA256 + 3DES": algorithm descriptions for one item of a list.
fn join_desc(algs: &[Alg]) -> String {
    algs.iter()
        .map(|a| a.desc.replace(", ", "/"))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Describes a PKCS#12 file from its DER alone: MAC, bag encryptions, iteration counts. No password is
/// needed and no key derivation runs; the walk is bounded by [`crate::der`].
///
/// Errors: [`ErrorKind::BadInput`] "not a PKCS#12 file" for anything else (or "damaged" for a broken
/// PFX), [`ErrorKind::Unsupported`] for public-key integrity mode.
pub fn summarize(der: &[u8]) -> Result<P12Summary> {
    Ok(summary_of(&walk(der)?))
}

fn summary_of(w: &Walk) -> P12Summary {
    let mut t = Tally {
        all_modern: true,
        ..Tally::default()
    };
    if let Some(m) = &w.mac {
        t.iterations(m.iterations);
        if let Some(k) = m.kdf_iterations {
            t.iterations(k);
        }
    }
    for s in &w.safes {
        match s {
            Safe::Data(bags) => t.bags(bags),
            Safe::Encrypted(a) => t.alg(a, false),
            Safe::Enveloped => {
                t.enveloped = true;
                if !t.encryptions.iter().any(|e| e == "envelopedData") {
                    t.encryptions.push("envelopedData".into());
                }
            }
            Safe::Unknown(oid) => {
                if !t.encryptions.contains(oid) {
                    t.encryptions.push(oid.clone());
                }
                t.all_modern = false;
            }
        }
    }
    let mac_modern = w.mac.as_ref().is_none_or(|m| m.modern);
    let legacy = !(t.all_modern && mac_modern);
    let kind = if legacy { "legacy" } else { "modern" };
    let mac_desc = w
        .mac
        .as_ref()
        .map_or("no MAC".to_string(), |m| m.desc.clone());

    let mut all: Vec<Alg> = t.key_algs.clone();
    for a in &t.safe_algs {
        if !all.iter().any(|b| b.name == a.name) {
            all.push(a.clone());
        }
    }
    let mut items: Vec<String> = Vec::new();
    let description = if all.len() == 1
        && !t.plain_key
        && !(t.plain_certs && !t.key_algs.is_empty() && t.safe_algs.is_empty())
    {
        // One scheme protects everything: "modern PKCS#12 (AES-256-CBC, PBKDF2-HMAC-SHA256, SHA-256 MAC)".
        format!("{kind} PKCS#12 ({}, {mac_desc})", all[0].desc)
    } else if t.safe_algs.len() == 1
        && t.key_algs.len() == 1
        && !t.plain_key
        && [&t.safe_algs[0], &t.key_algs[0]]
            .iter()
            .all(|a| a.desc == a.short)
    {
        // The classic legacy layout (PKCS#12 PBEs, no PBES2): "legacy RC2-40 PKCS#12 (3DES key, SHA-1 MAC)".
        format!(
            "{kind} {} PKCS#12 ({} key, {mac_desc})",
            join_short(&t.safe_algs),
            join_desc(&t.key_algs)
        )
    } else {
        if !t.key_algs.is_empty() {
            items.push(format!("{} key", join_desc(&t.key_algs)));
        }
        if t.plain_key {
            items.push("unencrypted key".into());
        }
        if !t.safe_algs.is_empty() {
            items.push(format!("{} certificates", join_desc(&t.safe_algs)));
        }
        if t.plain_certs && t.safe_algs.is_empty() {
            items.push("unencrypted certificates".into());
        }
        if t.enveloped {
            items.push("public-key encrypted safe".into());
        }
        items.push(mac_desc);
        format!("{kind} PKCS#12 ({})", items.join(", "))
    };
    P12Summary {
        has_mac: w.mac.is_some(),
        mac_digest: w.mac.as_ref().map(|m| m.digest.clone()),
        mac_iterations: w.mac.as_ref().map(|m| m.iterations),
        bag_encryptions: t.encryptions,
        max_iterations: t.max_iter,
        total_iterations: t.total_iter,
        scrypt: t.scrypt,
        legacy,
        description,
    }
}

fn iterations_error(n: u64, limit: u64, total: bool) -> Error {
    let what = if total { "in total " } else { "" };
    Error::limit(format!(
        "the PKCS#12 file asks for {n} key-derivation iterations {what}(the limit is {limit}); refusing to open it"
    ))
    .hint("a legitimate file never needs this much work; a hostile one can hang the tool. Re-export it with fewer iterations")
}

/// Refuses a file whose key derivation would take too long, or that has no MAC.
///
/// - any iteration count above [`MAX_KDF_ITERATIONS`], or a sum above [`MAX_KDF_TOTAL_ITERATIONS`] →
///   [`ErrorKind::Limit`] "the PKCS#12 file asks for N key-derivation iterations" (T43);
/// - scrypt above [`MAX_SCRYPT_MEMORY`](crate::limits::MAX_SCRYPT_MEMORY) or
///   [`MAX_SCRYPT_WORK`](crate::limits::MAX_SCRYPT_WORK) → [`ErrorKind::Limit`];
/// - no MAC and not `allow_no_mac` → [`ErrorKind::Unsupported`], hinting at `--allow-unauthenticated` (T42).
///
/// [`parse`] calls this itself; call it directly to refuse a file before asking for its password.
pub fn check_limits(s: &P12Summary, allow_no_mac: bool) -> Result<()> {
    if s.max_iterations > MAX_KDF_ITERATIONS {
        return Err(iterations_error(
            s.max_iterations,
            MAX_KDF_ITERATIONS,
            false,
        ));
    }
    if s.total_iterations > MAX_KDF_TOTAL_ITERATIONS {
        return Err(iterations_error(
            s.total_iterations,
            MAX_KDF_TOTAL_ITERATIONS,
            true,
        ));
    }
    for p in &s.scrypt {
        if !scrypt_within_limits(p.n, p.r, p.p) {
            return Err(Error::limit(format!(
                "the PKCS#12 file asks for scrypt with N={}, r={}, p={} ({} MiB); refusing to open it",
                p.n,
                p.r,
                p.p,
                p.memory() / (1 << 20)
            ))
            .hint("a legitimate file never needs this much memory or work; re-export it with smaller scrypt parameters"));
        }
    }
    if !s.has_mac && !allow_no_mac {
        return Err(Error::unsupported(
            "the PKCS#12 file has no MAC, so nothing shows whether it was tampered with",
        )
        .hint("if you trust where the file came from, repeat with --allow-unauthenticated"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Safe wrappers of the FFI declarations in `ossl::sys`
// ---------------------------------------------------------------------------------------------------------

use super::sys::{
    PKCS12_SAFEBAG, PKCS12_SAFEBAG_create_cert, PKCS12_SAFEBAG_create_pkcs8_encrypt,
    PKCS12_SAFEBAG_free, PKCS12_SAFEBAG_get_bag_nid, PKCS12_SAFEBAG_get_nid,
    PKCS12_SAFEBAG_get0_attr, PKCS12_SAFEBAG_get0_p8inf, PKCS12_SAFEBAG_get0_safes,
    PKCS12_SAFEBAG_get1_cert, PKCS12_add_friendlyname_utf8, PKCS12_add_localkeyid,
    PKCS12_add_safes, PKCS12_decrypt_skey, PKCS12_mac_present, PKCS12_pack_p7data,
    PKCS12_pack_p7encdata, PKCS12_unpack_authsafes, PKCS12_unpack_p7data, PKCS12_unpack_p7encdata,
    PKCS12_verify_mac, d2i_PKCS12_SAFEBAG, i2d_PKCS12_SAFEBAG,
};

/// An element type of an owned OpenSSL stack, with its free function.
trait StackItem {
    /// Frees one element.
    const FREE: unsafe extern "C" fn(*mut c_void);
}

/// `PKCS12_SAFEBAG` elements.
enum BagItem {}
/// `PKCS7` elements.
enum P7Item {}

unsafe extern "C" fn free_bag(p: *mut c_void) {
    // SAFETY: only installed as the free function of stacks (and `Owned` values) holding PKCS12_SAFEBAGs.
    unsafe { PKCS12_SAFEBAG_free(p.cast()) }
}

unsafe extern "C" fn free_p7(p: *mut c_void) {
    // SAFETY: only installed as the free function of stacks (and `Owned` values) holding PKCS7s.
    unsafe { sys::PKCS7_free(p.cast()) }
}

impl StackItem for BagItem {
    const FREE: unsafe extern "C" fn(*mut c_void) = free_bag;
}
impl StackItem for P7Item {
    const FREE: unsafe extern "C" fn(*mut c_void) = free_p7;
}

/// One owned OpenSSL object of type `T`, freed on drop unless pushed onto an [`OwnedStack`].
struct Owned<T: StackItem> {
    ptr: NonNull<c_void>,
    _t: PhantomData<T>,
}

impl<T: StackItem> Owned<T> {
    /// Takes ownership of `p` (null: `None`).
    ///
    /// # Safety
    /// `p` must be null or an object of type `T` that nothing else frees.
    unsafe fn from_raw(p: *mut c_void) -> Option<Self> {
        NonNull::new(p).map(|ptr| Owned {
            ptr,
            _t: PhantomData,
        })
    }
}

impl<T: StackItem> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: we own the object and it is of type T (see `from_raw`).
        unsafe { T::FREE(self.ptr.as_ptr()) }
    }
}

/// An owned `STACK_OF(T)`, freed with `OPENSSL_sk_pop_free(.., T::FREE)`.
struct OwnedStack<T: StackItem> {
    ptr: NonNull<sys::OPENSSL_STACK>,
    _t: PhantomData<T>,
}

impl<T: StackItem> OwnedStack<T> {
    fn new() -> Result<Self> {
        // SAFETY: no preconditions; the result is checked for null.
        let p = unsafe { sys::OPENSSL_sk_new_null() };
        NonNull::new(p)
            .map(|ptr| OwnedStack {
                ptr,
                _t: PhantomData,
            })
            .ok_or_else(|| openssl_error("allocating a stack"))
    }

    /// Takes ownership of the stack `p` (null: `None`).
    ///
    /// # Safety
    /// `p` must be null or a stack of `T` whose elements and the stack itself nothing else frees.
    unsafe fn from_raw(p: *mut sys::OPENSSL_STACK) -> Option<Self> {
        NonNull::new(p).map(|ptr| OwnedStack {
            ptr,
            _t: PhantomData,
        })
    }

    /// The elements, borrowed for as long as the stack.
    fn items(&self) -> Vec<NonNull<c_void>> {
        // SAFETY: `ptr` is a valid stack we own.
        unsafe { stack_items(self.ptr.as_ptr()) }
    }

    fn is_empty(&self) -> bool {
        self.items().is_empty()
    }

    /// Moves `item` into the stack (it is freed if the push fails).
    fn push(&mut self, item: Owned<T>) -> Result<()> {
        // SAFETY: both pointers are valid; on success the stack takes ownership of the element, so we forget
        // our handle; on failure `item` is dropped and frees it.
        let n = unsafe { sys::OPENSSL_sk_push(self.ptr.as_ptr(), item.ptr.as_ptr()) };
        cvt(n).map_err(openssl_failed("adding to a stack"))?;
        std::mem::forget(item);
        Ok(())
    }
}

impl<T: StackItem> Drop for OwnedStack<T> {
    fn drop(&mut self) {
        // SAFETY: we own the stack and its elements, all of type T.
        unsafe { sys::OPENSSL_sk_pop_free(self.ptr.as_ptr(), Some(T::FREE)) }
    }
}

/// The non-null elements of a stack.
///
/// # Safety
/// `sk` must be a valid stack.
unsafe fn stack_items(sk: *const sys::OPENSSL_STACK) -> Vec<NonNull<c_void>> {
    // SAFETY: the caller guarantees `sk` is valid; indices are in 0..num.
    unsafe {
        let n = sys::OPENSSL_sk_num(sk).max(0);
        (0..n)
            .filter_map(|i| NonNull::new(sys::OPENSSL_sk_value(sk, i)))
            .collect()
    }
}

/// An owned `PKCS8_PRIV_KEY_INFO` (a plaintext private key), freed (and cleansed by OpenSSL) on drop.
struct P8(NonNull<sys::PKCS8_PRIV_KEY_INFO>);

impl Drop for P8 {
    fn drop(&mut self) {
        // SAFETY: we own the structure.
        unsafe { sys::PKCS8_PRIV_KEY_INFO_free(self.0.as_ptr()) }
    }
}

impl P8 {
    /// Converts to an `EVP_PKEY`.
    fn to_pkey(&self) -> Result<PKey<Private>> {
        // SAFETY: we own the structure for the duration of the call.
        unsafe { p8_to_pkey(self.0.as_ptr()) }
    }
}

/// `EVP_PKCS82PKEY` on a borrowed PKCS8_PRIV_KEY_INFO.
///
/// # Safety
/// `p8` must be a valid PKCS8_PRIV_KEY_INFO for the duration of the call.
unsafe fn p8_to_pkey(p8: *const sys::PKCS8_PRIV_KEY_INFO) -> Result<PKey<Private>> {
    // SAFETY: `p8` is valid (caller's contract); the result is a new EVP_PKEY we take ownership of.
    let k = unsafe { sys::EVP_PKCS82PKEY(p8) };
    let k = cvt_p(k).map_err(|e| {
        Error::unsupported("the PKCS#12 file holds a private key of a type OpenSSL cannot load")
            .detail(e)
    })?;
    // SAFETY: `k` is a new, owned EVP_PKEY holding a private key.
    Ok(unsafe { PKey::from_ptr(k) })
}

/// The password as OpenSSL takes it: a NUL-terminated zeroizing copy, or NULL.
struct Pass {
    buf: Zeroizing<Vec<u8>>,
    null: bool,
}

impl Pass {
    fn new(bytes: &[u8]) -> Result<Self> {
        if bytes.len() >= c_int::MAX as usize {
            return Err(Error::usage("the password is too long"));
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
        buf.extend_from_slice(bytes);
        buf.push(0);
        Ok(Pass { buf, null: false })
    }
    fn null() -> Self {
        Pass {
            buf: Zeroizing::new(vec![0]),
            null: true,
        }
    }
    fn ptr(&self) -> *const c_char {
        if self.null {
            ptr::null()
        } else {
            self.buf.as_ptr().cast()
        }
    }
    /// The password bytes, without the NUL.
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.buf.len() - 1]
    }
    fn len(&self) -> c_int {
        if self.null {
            0
        } else {
            (self.buf.len() - 1) as c_int
        }
    }
}

fn openssl_error(what: &str) -> Error {
    openssl_failed(what)(ErrorStack::get())
}

/// [`openssl_error`] for a `cvt`/`cvt_p` failure that already took the error queue.
fn openssl_failed(what: &str) -> impl FnOnce(ErrorStack) -> Error + '_ {
    move |e| Error::crypto(format!("OpenSSL failed while {what}"), e)
}

/// Drains OpenSSL's error queue (after an expected failure, or before a call whose errors we inspect).
fn take_errors() -> ErrorStack {
    ErrorStack::get()
}

fn mac_present(p12: &Pkcs12Ref) -> bool {
    // SAFETY: `p12` is a valid PKCS12; the call only reads it.
    unsafe { PKCS12_mac_present(p12.as_ptr()) == 1 }
}

enum MacCheck {
    Ok,
    Mismatch,
    Failed(ErrorStack),
}

fn verify_mac(p12: &Pkcs12Ref, pass: &Pass) -> MacCheck {
    take_errors();
    // SAFETY: `p12` is valid; `pass` is NULL or `len` bytes plus a NUL. The function does not modify p12
    // despite the non-const prototype.
    let r = unsafe { PKCS12_verify_mac(p12.as_ptr(), pass.ptr(), pass.len()) };
    if r == 1 {
        return MacCheck::Ok;
    }
    // A plain mismatch leaves no error; a failure to compute the MAC does.
    let e = take_errors();
    if e.errors().is_empty() {
        MacCheck::Mismatch
    } else {
        MacCheck::Failed(e)
    }
}

fn unpack_authsafes(p12: &Pkcs12Ref) -> Result<OwnedStack<P7Item>> {
    // SAFETY: `p12` is valid; the result is a new STACK_OF(PKCS7) we own (or null).
    let sk = unsafe { PKCS12_unpack_authsafes(p12.as_ptr()) };
    // SAFETY: `sk` is null or an owned STACK_OF(PKCS7).
    unsafe { OwnedStack::from_raw(sk) }
        .ok_or_else(|| damaged("cannot decode the AuthenticatedSafe").detail(ErrorStack::get()))
}

impl OwnedStack<P7Item> {
    /// The PKCS7 elements, borrowed for as long as the stack.
    fn p7s(&self) -> Vec<&Pkcs7Ref> {
        self.items()
            .into_iter()
            // SAFETY: each element is a PKCS7 owned by this stack, which outlives the borrow of `self`.
            .map(|p| unsafe { Pkcs7Ref::from_ptr(p.as_ptr().cast()) })
            .collect()
    }
}

fn unpack_p7data(p7: &Pkcs7Ref) -> Result<OwnedStack<BagItem>> {
    // SAFETY: `p7` is a valid PKCS7 of type data; the result is a new STACK_OF(PKCS12_SAFEBAG) we own.
    let sk = unsafe { PKCS12_unpack_p7data(p7.as_ptr()) };
    // SAFETY: `sk` is null or an owned STACK_OF(PKCS12_SAFEBAG).
    unsafe { OwnedStack::from_raw(sk) }
        .ok_or_else(|| damaged("cannot decode a data safe").detail(ErrorStack::get()))
}

fn unpack_p7encdata(
    p7: &Pkcs7Ref,
    pass: &Pass,
) -> std::result::Result<OwnedStack<BagItem>, ErrorStack> {
    take_errors();
    // SAFETY: `p7` is a valid PKCS7 of type encryptedData; `pass` is NULL or NUL-terminated with `len` bytes;
    // the result is a new STACK_OF(PKCS12_SAFEBAG) we own.
    let sk = unsafe { PKCS12_unpack_p7encdata(p7.as_ptr(), pass.ptr(), pass.len()) };
    // SAFETY: `sk` is null or an owned STACK_OF(PKCS12_SAFEBAG).
    unsafe { OwnedStack::from_raw(sk) }.ok_or_else(ErrorStack::get)
}

/// A bag borrowed from a stack that outlives `'a`.
#[derive(Clone, Copy)]
struct BagRef<'a> {
    ptr: NonNull<PKCS12_SAFEBAG>,
    _life: PhantomData<&'a PKCS12_SAFEBAG>,
}

impl OwnedStack<BagItem> {
    fn bags(&self) -> Vec<BagRef<'_>> {
        self.items()
            .into_iter()
            .map(|p| BagRef {
                ptr: p.cast(),
                _life: PhantomData,
            })
            .collect()
    }
}

impl<'a> BagRef<'a> {
    fn nid(self) -> c_int {
        // SAFETY: the bag is valid for 'a.
        unsafe { PKCS12_SAFEBAG_get_nid(self.ptr.as_ptr()) }
    }

    /// The certificate type of a certBag.
    fn cert_type(self) -> c_int {
        // SAFETY: the bag is valid for 'a.
        unsafe { PKCS12_SAFEBAG_get_bag_nid(self.ptr.as_ptr()) }
    }

    fn cert(self) -> Result<X509> {
        // SAFETY: the bag is a valid certBag; the result is a new X509 we own (or null).
        let x = unsafe { PKCS12_SAFEBAG_get1_cert(self.ptr.as_ptr()) };
        let x = cvt_p(x).map_err(|e| damaged("a certificate bag cannot be decoded").detail(e))?;
        // SAFETY: `x` is an owned X509.
        Ok(unsafe { X509::from_ptr(x) })
    }

    /// The key of an unencrypted keyBag.
    fn plain_key(self) -> Result<PKey<Private>> {
        // SAFETY: the bag is a valid keyBag; the PKCS8 info it returns is owned by the bag, which outlives
        // the conversion below.
        let p8 = unsafe { PKCS12_SAFEBAG_get0_p8inf(self.ptr.as_ptr()) };
        if p8.is_null() {
            return Err(damaged("a key bag holds no key"));
        }
        // SAFETY: `p8` is owned by the bag, which lives for 'a.
        unsafe { p8_to_pkey(p8) }
    }

    /// Decrypts a pkcs8ShroudedKeyBag.
    fn decrypt_key(self, pass: &Pass) -> std::result::Result<P8, ErrorStack> {
        take_errors();
        // SAFETY: the bag is a valid shrouded key bag; `pass` is NULL or NUL-terminated with `len` bytes; the
        // result is a new PKCS8_PRIV_KEY_INFO we own.
        let p8 = unsafe { PKCS12_decrypt_skey(self.ptr.as_ptr(), pass.ptr(), pass.len()) };
        NonNull::new(p8).map(P8).ok_or_else(ErrorStack::get)
    }

    /// The bags of a safeContentsBag, borrowed from this bag.
    fn nested(self) -> Vec<BagRef<'a>> {
        // SAFETY: the bag is valid for 'a; the stack it returns is owned by the bag.
        let sk = unsafe { PKCS12_SAFEBAG_get0_safes(self.ptr.as_ptr()) };
        if sk.is_null() {
            return Vec::new();
        }
        // SAFETY: `sk` is a valid stack owned by the bag.
        unsafe { stack_items(sk) }
            .into_iter()
            .map(|p| BagRef {
                ptr: p.cast(),
                _life: PhantomData,
            })
            .collect()
    }

    /// DER of the first value of attribute `nid`, if present.
    fn attr_der(self, nid: c_int) -> Option<Vec<u8>> {
        // SAFETY: the bag is valid; the ASN1_TYPE returned is owned by the bag.
        let t = unsafe { PKCS12_SAFEBAG_get0_attr(self.ptr.as_ptr(), nid) };
        if t.is_null() {
            return None;
        }
        // SAFETY: `t` is valid; a null output pointer asks only for the length.
        let len = unsafe { sys::i2d_ASN1_TYPE(t, ptr::null_mut()) };
        if len <= 0 {
            take_errors();
            return None;
        }
        let mut buf = vec![0u8; len as usize];
        let mut out = buf.as_mut_ptr();
        // SAFETY: `buf` has room for the `len` bytes i2d just reported.
        let n = unsafe { sys::i2d_ASN1_TYPE(t, &mut out) };
        (n == len).then_some(buf)
    }

    /// The DER of the whole bag (for checking a shrouded key's parameters before decrypting it).
    fn to_der(self) -> Result<Vec<u8>> {
        // SAFETY: the bag is valid; a null output pointer asks only for the length.
        let len = unsafe { i2d_PKCS12_SAFEBAG(self.ptr.as_ptr(), ptr::null_mut()) };
        let len = cvt(len).map_err(|e| damaged("a bag cannot be re-encoded").detail(e))?;
        let mut buf = vec![0u8; len as usize];
        let mut out = buf.as_mut_ptr();
        // SAFETY: `buf` has room for the `len` bytes i2d just reported.
        let n = unsafe { i2d_PKCS12_SAFEBAG(self.ptr.as_ptr(), &mut out) };
        if n != len {
            return Err(damaged("a bag cannot be re-encoded").detail(ErrorStack::get()));
        }
        Ok(buf)
    }

    fn local_key_id(self) -> Option<Vec<u8>> {
        let d = self.attr_der(sys::NID_localKeyID)?;
        let t = der::parse_one(&d).ok()?;
        (t.tag == tag::OCTET_STRING).then(|| t.value.to_vec())
    }

    fn friendly_name(self) -> Option<String> {
        let d = self.attr_der(sys::NID_friendlyName)?;
        let t = der::parse_one(&d).ok()?;
        match t.tag {
            // BMPString: UTF-16BE.
            0x1e if t.value.len() % 2 == 0 => {
                let units: Vec<u16> = t
                    .value
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                Some(String::from_utf16_lossy(&units))
            }
            // UTF8String, PrintableString, IA5String: some writers use them.
            0x0c | 0x13 | 0x16 => Some(String::from_utf8_lossy(t.value).into_owned()),
            _ => None,
        }
    }
}

impl Owned<BagItem> {
    /// A bag decoded from its DER (for bag types OpenSSL 3.0 has no constructor for).
    fn bag_from_der(d: &[u8]) -> Result<Self> {
        let mut p = d.as_ptr();
        // SAFETY: `p` points at `d.len()` readable bytes; the result is a new bag we own, or null.
        let b = unsafe { d2i_PKCS12_SAFEBAG(ptr::null_mut(), &mut p, d.len() as std::ffi::c_long) };
        // SAFETY: `b` is null or a new PKCS12_SAFEBAG.
        unsafe { Self::from_raw(b.cast()) }.ok_or_else(|| openssl_error("making a secret bag"))
    }

    fn cert_bag(cert: &X509Ref) -> Result<Self> {
        // SAFETY: `cert` is valid; the function only encodes it (no aux data) into a new bag we own.
        let b = unsafe { PKCS12_SAFEBAG_create_cert(cert.as_ptr()) };
        // SAFETY: `b` is null or a new PKCS12_SAFEBAG.
        unsafe { Self::from_raw(b.cast()) }.ok_or_else(|| openssl_error("making a certificate bag"))
    }

    fn key_bag(key: &PKeyRef<Private>, nid: c_int, pass: &Pass, iter: c_int) -> Result<Self> {
        // SAFETY: `key` is a valid private key; the result is a new PKCS8_PRIV_KEY_INFO we own.
        let p8 = NonNull::new(unsafe { sys::EVP_PKEY2PKCS8(key.as_ptr()) })
            .map(P8)
            .ok_or_else(|| openssl_error("encoding a private key as PKCS#8"))?;
        let mut salt = pbe_salt(nid, pass, iter)?;
        // SAFETY: `pass` is NUL-terminated with `len` bytes; the salt is null (OpenSSL draws a random one
        // of SALT_LEN bytes) or SALT_LEN bytes OpenSSL copies; `p8` is only read (not consumed) and freed
        // by its guard.
        let b = unsafe {
            PKCS12_SAFEBAG_create_pkcs8_encrypt(
                nid,
                pass.ptr(),
                pass.len(),
                salt_ptr(&mut salt),
                SALT_LEN,
                iter,
                p8.0.as_ptr(),
            )
        };
        // SAFETY: `b` is null or a new PKCS12_SAFEBAG.
        unsafe { Self::from_raw(b.cast()) }.ok_or_else(|| openssl_error("encrypting a private key"))
    }

    fn add_local_key_id(&mut self, id: &[u8]) -> Result<()> {
        // SAFETY: the bag is ours; OpenSSL copies `id` (the prototype is non-const but it does not write).
        let r = unsafe {
            PKCS12_add_localkeyid(
                self.ptr.as_ptr().cast(),
                id.as_ptr().cast_mut(),
                id.len() as c_int,
            )
        };
        cvt(r).map_err(openssl_failed("adding a localKeyID"))?;
        Ok(())
    }

    fn add_friendly_name(&mut self, name: &str) -> Result<()> {
        // SAFETY: the bag is ours; OpenSSL copies `name` (`len` bytes of UTF-8).
        let r = unsafe {
            PKCS12_add_friendlyname_utf8(
                self.ptr.as_ptr().cast(),
                name.as_ptr().cast(),
                name.len() as c_int,
            )
        };
        cvt(r).map_err(openssl_failed("adding a friendlyName"))?;
        Ok(())
    }
}

impl Owned<P7Item> {
    fn data_safe(bags: &OwnedStack<BagItem>) -> Result<Self> {
        // SAFETY: `bags` is a valid stack; it is encoded, not consumed; the result is a new PKCS7 we own.
        let p = unsafe { PKCS12_pack_p7data(bags.ptr.as_ptr()) };
        // SAFETY: `p` is null or a new PKCS7.
        unsafe { Self::from_raw(p.cast()) }.ok_or_else(|| openssl_error("packing the key safe"))
    }

    fn encrypted_safe(
        bags: &OwnedStack<BagItem>,
        nid: c_int,
        pass: &Pass,
        iter: c_int,
    ) -> Result<Self> {
        let mut salt = pbe_salt(nid, pass, iter)?;
        // SAFETY: `bags` is a valid stack, encoded and encrypted, not consumed; `pass` is NUL-terminated with
        // `len` bytes; the salt is null (OpenSSL draws a random one of SALT_LEN bytes) or SALT_LEN bytes
        // OpenSSL copies; the result is a new PKCS7.
        let p = unsafe {
            PKCS12_pack_p7encdata(
                nid,
                pass.ptr(),
                pass.len(),
                salt_ptr(&mut salt),
                SALT_LEN,
                iter,
                bags.ptr.as_ptr(),
            )
        };
        // SAFETY: `p` is null or a new PKCS7.
        unsafe { Self::from_raw(p.cast()) }
            .ok_or_else(|| openssl_error("encrypting the certificate safe"))
    }
}

fn pkcs12_from_safes(safes: &OwnedStack<P7Item>) -> Result<Pkcs12> {
    // SAFETY: `safes` is a valid STACK_OF(PKCS7), encoded not consumed; 0 means NID_pkcs7_data. The result
    // is a new PKCS12 we own.
    let p = unsafe { PKCS12_add_safes(safes.ptr.as_ptr(), 0) };
    let p = cvt_p(p).map_err(openssl_failed("assembling the PKCS#12 file"))?;
    // SAFETY: `p` is an owned PKCS12.
    Ok(unsafe { Pkcs12::from_ptr(p) })
}

/// How many salts [`pbe_salt`] draws at most. A draw fails gpgsm 2.2 with probability about 1/128, so
/// 32 failures in a row (2^-224) do not happen; the bound only guards against a bug looping forever.
const GPGSM_SALT_DRAWS: usize = 32;

/// The salt for a bag encrypted with `nid`: `None` (OpenSSL draws one) except for
/// `pbeWithSHA1And3-KeyTripleDES-CBC`, where we draw it ourselves and skip the salts whose key gpgsm 2.2
/// derives wrongly (see [`gpgsm22_derives_key`]). Without this, about one legacy or compat export in 128
/// could not be imported by gpgsm 2.2 ("decryption failed", then it retries every charset), though
/// OpenSSL and everybody else read it.
fn pbe_salt(nid: c_int, pass: &Pass, iter: c_int) -> Result<Option<[u8; SALT_LEN as usize]>> {
    if nid != sys::NID_pbe_WithSHA1And3_Key_TripleDES_CBC {
        return Ok(None);
    }
    #[cfg(test)]
    if let Some(forced) = tests::FORCED_SALT.get() {
        return Ok(Some(forced));
    }
    let mut salt = [0u8; SALT_LEN as usize];
    for _ in 0..GPGSM_SALT_DRAWS {
        openssl::rand::rand_bytes(&mut salt)
            .map_err(|e| Error::crypto("OpenSSL failed while drawing a salt", e))?;
        if gpgsm22_derives_key(&salt, pass.bytes(), iter) {
            break;
        }
    }
    Ok(Some(salt))
}

/// The salt argument of OpenSSL's PKCS#12 PBE functions: null (draw one) or our salt.
fn salt_ptr(salt: &mut Option<[u8; SALT_LEN as usize]>) -> *mut c_uchar {
    salt.as_mut().map_or(ptr::null_mut(), |s| s.as_mut_ptr())
}

/// True if gpgsm 2.2 derives the right 24-byte 3DES key from `salt`, `pass` and `iter` (the PKCS#12
/// KDF of RFC 7292 Appendix B, ID 1).
///
/// A key longer than one SHA-1 output (20 bytes) needs a second round, whose input is each 64-byte block
/// I_j of I = S || P replaced by (I_j + B + 1) mod 2^512. gpgsm 2.2's `string_to_key` (sm/minip12.c)
/// writes that sum back with `gcry_mpi_print`, which drops leading zero bytes: when a sum's first byte
/// is 0 the block is shifted left and the last 4 bytes of the key come out wrong. That happens for one
/// salt in 128 (two blocks, 1/256 each); OpenSSL, NSS and Windows derive the key correctly. The code is
/// the same in gnupg 2.2.40, 2.4.0 and the master branch of October 2025: no gpgsm reads those files.
/// The password is taken as OpenSSL takes it (UTF-8 to BMPString, else Latin-1) with its two zero bytes.
fn gpgsm22_derives_key(salt: &[u8], pass: &[u8], iter: c_int) -> bool {
    let mut bmp: Zeroizing<Vec<u8>> = Zeroizing::new(match std::str::from_utf8(pass) {
        Ok(s) => s.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        Err(_) => pass.iter().flat_map(|&b| [0, b]).collect(),
    });
    bmp.extend([0, 0]);
    let stretch = |x: &[u8]| -> Vec<u8> {
        let n = 64 * x.len().div_ceil(64);
        (0..n).map(|i| x[i % x.len()]).collect()
    };
    let mut i_buf = Zeroizing::new(stretch(salt));
    i_buf.extend(stretch(&bmp));
    // A_1 = SHA-1^iter(D || I), D = 64 bytes of ID 1 (key material).
    let sha1 = MessageDigest::sha1();
    let Ok(mut h) = openssl::hash::Hasher::new(sha1) else {
        return true;
    };
    let first = h
        .update(&[1u8; 64])
        .and_then(|()| h.update(&i_buf))
        .and_then(|()| h.finish());
    let Ok(mut a) = first else { return true };
    for _ in 1..iter {
        match openssl::hash::hash(sha1, &a) {
            Ok(d) => a = d,
            Err(_) => return true,
        }
    }
    // B + 1, B = A_1 repeated to 64 bytes; then the first byte of each I_j + B + 1 (mod 2^512).
    let mut b1 = Zeroizing::new([0u8; 64]);
    for (k, v) in b1.iter_mut().enumerate() {
        *v = a[k % a.len()];
    }
    add_be(&mut b1[..], &[1]);
    i_buf.chunks(64).all(|block| {
        let mut sum = Zeroizing::new([0u8; 64]);
        sum.copy_from_slice(block);
        add_be(&mut sum[..], &b1[..]);
        sum[0] != 0
    })
}

/// `acc += x` on big-endian unsigned numbers, modulo 2^(8·acc.len()).
fn add_be(acc: &mut [u8], x: &[u8]) {
    let mut carry = 0u16;
    for (k, a) in acc.iter_mut().rev().enumerate() {
        let s = u16::from(*a) + u16::from(x.len().checked_sub(k + 1).map_or(0, |j| x[j])) + carry;
        *a = s as u8;
        carry = s >> 8;
    }
}

fn set_mac(p12: &Pkcs12Ref, pass: &Pass, iter: c_int, md: MessageDigest) -> Result<()> {
    // SAFETY: `p12` is ours; `pass` is NUL-terminated with `len` bytes; a null salt with SALT_LEN makes
    // OpenSSL draw a random salt; `md` is a valid static digest.
    let r = unsafe {
        sys::PKCS12_set_mac(
            p12.as_ptr(),
            pass.ptr(),
            pass.len(),
            ptr::null_mut(),
            SALT_LEN,
            iter,
            md.as_ptr(),
        )
    };
    cvt(r).map_err(openssl_failed("computing the PKCS#12 MAC"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// parse
// ---------------------------------------------------------------------------------------------------------

/// True if OpenSSL's errors say an algorithm is missing (rather than a bad password or damaged data).
fn looks_unsupported(e: &ErrorStack) -> bool {
    e.errors().iter().any(|x| {
        let r = x.reason().unwrap_or_default().to_ascii_lowercase();
        r.contains("unsupported") || r.contains("unknown")
    })
}

/// RC2, RC4 and single DES live in OpenSSL 3's legacy provider; 3DES does not.
fn needs_legacy_provider(alg: &str) -> bool {
    let triple = alg.contains("TripleDES") || alg.contains("DES-EDE3");
    alg.contains("RC2") || alg.contains("RC4") || (alg.contains("DES") && !triple)
}

struct Collector<'p> {
    pass: &'p Pass,
    mac_verified: bool,
    /// Key-derivation iterations spent so far (starts at what `summarize` saw).
    budget: u64,
    keys: Vec<P12Key>,
    certs: Vec<P12Cert>,
    skipped: usize,
    secrets: Vec<P12Secret>,
}

impl Collector<'_> {
    fn decrypt_error(&self, what: &str, alg: &str, e: ErrorStack) -> Error {
        if looks_unsupported(&e) {
            let hint = if needs_legacy_provider(alg) {
                "RC2, RC4 and single DES need OpenSSL's legacy provider (ossl-modules/legacy.so), which could not be \
                 loaded; install it, or re-export the file with AES-256-CBC"
            } else {
                "re-export the file with AES-256-CBC (e.g. openssl pkcs12 -export)"
            };
            return Error::unsupported(format!(
                "the PKCS#12 file uses an unsupported algorithm {alg} for its {what}"
            ))
            .hint(hint)
            .detail(e);
        }
        if self.mac_verified {
            Error::bad_input(format!(
                "cannot decrypt the {what} of the PKCS#12 file ({alg}) although the password matched its MAC"
            ))
            .hint("the file may be damaged, or use a separate encryption password (openssl pkcs12 -twopass)")
            .detail(e)
        } else {
            Error::new(
                ErrorKind::WrongSecret,
                "wrong password for the PKCS#12 file",
            )
            .hint("the file has no MAC, so a damaged file would look the same")
        }
    }

    /// Checks a key bag's algorithm against the caps before it is decrypted; `count` adds its iterations to
    /// the running total (for bags `summarize` could not see).
    fn spend(&mut self, alg: &Alg, count: bool) -> Result<()> {
        for &n in &alg.iterations {
            if n > MAX_KDF_ITERATIONS {
                return Err(iterations_error(n, MAX_KDF_ITERATIONS, false));
            }
            if count {
                self.budget = self.budget.saturating_add(n);
            }
            if self.budget > MAX_KDF_TOTAL_ITERATIONS {
                return Err(iterations_error(
                    self.budget,
                    MAX_KDF_TOTAL_ITERATIONS,
                    true,
                ));
            }
        }
        if let Some(s) = alg.scrypt
            && !scrypt_within_limits(s.n, s.r, s.p)
        {
            return Err(Error::limit(format!(
                "the PKCS#12 file asks for scrypt with N={}, r={}, p={}; refusing to open it",
                s.n, s.r, s.p
            )));
        }
        Ok(())
    }

    /// Visits the bags of one safe; `hidden` is true inside an encrypted safe (not seen by `summarize`).
    fn visit(&mut self, bags: &[BagRef<'_>], hidden: bool, depth: usize) -> Result<()> {
        for &bag in bags {
            match bag.nid() {
                sys::NID_keyBag => {
                    let key = bag.plain_key()?;
                    self.keys.push(P12Key {
                        key,
                        local_key_id: bag.local_key_id(),
                        friendly_name: bag.friendly_name(),
                    });
                }
                sys::NID_pkcs8ShroudedKeyBag => {
                    let der = bag.to_der()?;
                    let alg = match parse_bag(&der::parse_one(&der)?, 0)? {
                        Bag::Shrouded(a) => a,
                        _ => return Err(damaged("a shrouded key bag cannot be read")),
                    };
                    // Bags in plain safes were counted by summarize; those in encrypted safes were not.
                    self.spend(&alg, hidden)?;
                    let p8 = bag
                        .decrypt_key(self.pass)
                        .map_err(|e| self.decrypt_error("private key", &alg.name, e))?;
                    let key = p8.to_pkey()?;
                    self.keys.push(P12Key {
                        key,
                        local_key_id: bag.local_key_id(),
                        friendly_name: bag.friendly_name(),
                    });
                }
                sys::NID_certBag => {
                    if bag.cert_type() == sys::NID_x509Certificate {
                        let cert = bag.cert()?;
                        self.certs.push(P12Cert {
                            cert,
                            local_key_id: bag.local_key_id(),
                            friendly_name: bag.friendly_name(),
                        });
                    } else {
                        self.skipped += 1;
                    }
                }
                sys::NID_safeContentsBag => {
                    if depth >= P12_MAX_BAG_DEPTH {
                        return Err(Error::limit(format!(
                            "the PKCS#12 file nests bags deeper than {P12_MAX_BAG_DEPTH} levels"
                        )));
                    }
                    self.visit(&bag.nested(), hidden, depth + 1)?;
                }
                sys::NID_secretBag => match bag.to_der().ok().and_then(|d| secret_from_der(&d)) {
                    Some(secret) => self.secrets.push(secret),
                    None => self.skipped += 1,
                },
                _ => self.skipped += 1,
            }
        }
        Ok(())
    }
}

/// `SafeBag { secretBag, [0] SecretBag { secretTypeId, [0] OCTET STRING } }` → the secret, if it has that shape.
fn secret_from_der(d: &[u8]) -> Option<P12Secret> {
    let bag = der::parse_one(d).ok()?;
    let parts = bag.children().ok()?;
    let inner = parts.get(1).filter(|t| t.tag == 0xa0)?.children().ok()?;
    let secret = inner.first()?.children().ok()?;
    let type_oid = secret.first()?.oid()?;
    let value = secret.get(1).filter(|t| t.tag == 0xa0)?.children().ok()?;
    let octets = value.first().filter(|t| t.tag == der::tag::OCTET_STRING)?;
    Some(P12Secret {
        type_oid,
        value: octets.value.to_vec(),
    })
}

/// The DER of a secretBag holding `value` under `type_oid`.
fn secret_bag_der(type_oid: &str, value: &[u8]) -> Vec<u8> {
    let secret = der::seq(&[
        &der::oid(type_oid),
        &der::tlv(0xa0, &der::tlv(der::tag::OCTET_STRING, value)),
    ]);
    der::seq(&[
        &der::oid("1.2.840.113549.1.12.10.1.5"),
        &der::tlv(0xa0, &secret),
    ])
}

/// Opens a PKCS#12 file: every private key and certificate, with its localKeyID and friendlyName, in any
/// bag order.
///
/// Before any key derivation it runs [`summarize`] and the iteration and scrypt caps of [`check_limits`],
/// so a hostile file is refused at once. It does **not** apply the MAC policy: a file without MAC is
/// opened. Callers call `check_limits(&summarize(der)?, allow_no_mac)` first (as `crate::pkcs12` does) or
/// use [`parse_checked`], which does both. Key bags hidden inside encrypted safes are checked against the
/// same caps before they are decrypted. OpenSSL's legacy provider is loaded first
/// ([`provider::ensure_legacy`]) for RC2/RC4/DES files.
///
/// The password is checked against the MAC first, as OpenSSL's `PKCS12_parse` does: an empty password is
/// tried as NULL and then as the empty string (writers disagree); without a MAC an empty password is NULL.
/// Errors:
/// - [`ErrorKind::WrongSecret`] "wrong password for the PKCS#12 file" (MAC mismatch; or, in a file without
///   MAC, a failed decryption);
/// - [`ErrorKind::Unsupported`] "uses an unsupported algorithm X" when the MAC verified (or OpenSSL says so)
///   but a bag's algorithm is missing, e.g. RC2 without the legacy provider; also for public-key modes;
/// - [`ErrorKind::BadInput`] for anything not a PKCS#12 file, or damaged; [`ErrorKind::Limit`] as above.
pub fn parse(der: &[u8], password: &Secret) -> Result<P12Contents> {
    parse_inner(der, password, true)
}

/// [`parse`] with the whole of [`check_limits`]`(.., allow_no_mac)` applied first: a file without MAC is
/// refused unless `allow_no_mac` (T42).
pub fn parse_checked(der: &[u8], password: &Secret, allow_no_mac: bool) -> Result<P12Contents> {
    parse_inner(der, password, allow_no_mac)
}

fn parse_inner(der: &[u8], password: &Secret, allow_no_mac: bool) -> Result<P12Contents> {
    let w = walk(der)?;
    let summary = summary_of(&w);
    check_limits(&summary, allow_no_mac)?;
    if w.safes.iter().any(|s| matches!(s, Safe::Enveloped)) {
        return Err(Error::unsupported(
            "the PKCS#12 file uses public-key privacy mode (envelopedData)",
        )
        .hint("export the ID again protected by a password"));
    }
    provider::ensure_legacy();

    let p12 = Pkcs12::from_der(der).map_err(|e| not_pfx(der, e))?;
    let has_mac = mac_present(&p12);
    let pass = if password.is_empty() {
        if !has_mac || matches!(verify_mac(&p12, &Pass::null()), MacCheck::Ok) {
            Pass::null()
        } else {
            let empty = Pass::new(b"")?;
            check_mac(&p12, &empty, &summary)?;
            empty
        }
    } else {
        let p = Pass::new(password.expose())?;
        if has_mac {
            check_mac(&p12, &p, &summary)?;
        }
        p
    };

    let mut c = Collector {
        pass: &pass,
        mac_verified: has_mac,
        budget: summary.total_iterations,
        keys: Vec::new(),
        certs: Vec::new(),
        skipped: 0,
        secrets: Vec::new(),
    };
    let safes = unpack_authsafes(&p12)?;
    for p7 in safes.p7s() {
        let nid = p7.type_().map(|o| o.nid().as_raw());
        match nid {
            Some(sys::NID_pkcs7_data) => {
                let bags = unpack_p7data(p7)?;
                c.visit(&bags.bags(), false, 0)?;
            }
            Some(sys::NID_pkcs7_encrypted) => {
                let alg = match p7
                    .to_der()
                    .ok()
                    .and_then(|d| der::parse_one(&d).ok().map(|t| parse_safe(&t)))
                {
                    Some(Ok(Safe::Encrypted(a))) => a.name,
                    _ => "(unknown)".to_string(),
                };
                let bags = unpack_p7encdata(p7, &pass)
                    .map_err(|e| c.decrypt_error("certificates", &alg, e))?;
                c.visit(&bags.bags(), true, 0)?;
            }
            _ => {
                return Err(Error::unsupported(format!(
                    "the PKCS#12 file holds a safe of unsupported type {}",
                    nid.map_or("?".to_string(), |n| Nid::from_raw(n)
                        .short_name()
                        .unwrap_or("?")
                        .to_string())
                )));
            }
        }
    }
    take_errors();
    Ok(P12Contents {
        keys: c.keys,
        certs: c.certs,
        summary,
        skipped_bags: c.skipped,
        secrets: c.secrets,
    })
}

fn check_mac(p12: &Pkcs12Ref, pass: &Pass, summary: &P12Summary) -> Result<()> {
    match verify_mac(p12, pass) {
        MacCheck::Ok => Ok(()),
        MacCheck::Mismatch => Err(Error::new(
            ErrorKind::WrongSecret,
            "wrong password for the PKCS#12 file",
        )
        .hint("check the password (PKCS#12 passwords are case-sensitive)")),
        MacCheck::Failed(e) => Err(Error::unsupported(format!(
            "the PKCS#12 file uses an unsupported MAC algorithm {}",
            summary.mac_digest.as_deref().unwrap_or("?")
        ))
        .hint("re-export the file with a SHA-256 MAC")
        .detail(e)),
    }
}

// ---------------------------------------------------------------------------------------------------------
// identities
// ---------------------------------------------------------------------------------------------------------

/// "RSA-2048", "EC-256"… (for messages and `Debug`).
fn key_type(k: &PKeyRef<Private>) -> String {
    use openssl::pkey::Id;
    let t = match k.id() {
        Id::RSA => "RSA",
        Id::RSA_PSS => "RSA-PSS",
        Id::EC => "EC",
        Id::DSA => "DSA",
        Id::ED25519 => "Ed25519",
        Id::ED448 => "Ed448",
        Id::X25519 => "X25519",
        Id::X448 => "X448",
        _ => "key",
    };
    format!("{t}-{}", k.bits())
}

/// "CN=alice, O=Example", for messages.
fn subject_str(cert: &X509Ref) -> String {
    crate::cert::name_to_string(cert.subject_name())
}

fn key_matches(key: &PKeyRef<Private>, cert: &X509Ref) -> bool {
    match cert.public_key() {
        Ok(p) => key.public_eq(&p),
        Err(_) => {
            take_errors();
            false
        }
    }
}

fn same_cert(a: &X509Ref, b: &X509Ref) -> bool {
    match (a.to_der(), b.to_der()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// True if `issuer` issued `subject`: names, key identifiers and key usage fit (`X509_check_issued`) and
/// the signature verifies with the issuer's key.
fn is_issuer(issuer: &X509Ref, subject: &X509Ref) -> bool {
    issuer.issued(subject) == X509VerifyResult::OK
        && issuer
            .public_key()
            .and_then(|k| subject.verify(&k))
            .unwrap_or(false)
}

/// Issuers of `leaf` among `certs`, in issuer order, stopping at a self-issued certificate.
fn chain_for(leaf: &X509Ref, certs: &[P12Cert]) -> Vec<X509> {
    let mut chain: Vec<X509> = Vec::new();
    let mut cur: X509 = leaf.to_owned();
    while chain.len() < P12_MAX_CHAIN {
        if cur.issued(&cur) == X509VerifyResult::OK {
            break; // self-issued: the root
        }
        let next = certs.iter().map(|c| &c.cert).find(|c| {
            !same_cert(c, leaf) && !chain.iter().any(|x| same_cert(x, c)) && is_issuer(c, &cur)
        });
        match next {
            Some(n) => {
                chain.push(n.clone());
                cur = n.clone();
            }
            None => break,
        }
    }
    take_errors();
    chain
}

fn key_label(k: &P12Key, i: usize) -> String {
    match &k.friendly_name {
        Some(n) => format!("\"{n}\""),
        None => format!("#{}", i + 1),
    }
}

fn no_key_error(c: &P12Contents) -> Error {
    let n = c.certs.len();
    Error::not_found(format!(
        "the PKCS#12 file contains no private key (it holds {n} certificate{}; import those as contacts instead)",
        if n == 1 { "" } else { "s" }
    ))
    .hint("to import a digital ID, export it again including its private key")
}

/// Every digital ID in the file as `(key, leaf, chain)`: [`find_identities`] without the names.
pub fn identities(c: &P12Contents) -> Result<Vec<IdentityParts>> {
    Ok(find_identities(c)?
        .into_iter()
        .map(P12Identity::into_parts)
        .collect())
}

/// Pairs every private key with its certificate and chain, keeping friendlyName and localKeyID.
///
/// Each key's leaf is the certificate with the same localKeyID whose public key matches; without a
/// localKeyID link, any certificate whose public key matches (`public_eq`). A key that appears twice
/// counts once. The chain is the leaf's issuers found in the file, in issuer order; other certificates stay
/// in [`P12Contents::certs`]. Errors:
/// - no key at all → [`ErrorKind::NotFound`] "the PKCS#12 file contains no private key (it holds N
///   certificates; import those as contacts instead)" (check `c.keys.is_empty()` first for backups);
/// - a key whose linked (or any) certificate does not match → [`ErrorKind::BadInput`] "key and certificate
///   do not match" (T42);
/// - a key and no certificate at all → [`ErrorKind::NotFound`].
pub fn find_identities(c: &P12Contents) -> Result<Vec<P12Identity>> {
    if c.keys.is_empty() {
        return Err(no_key_error(c));
    }
    let mut out: Vec<P12Identity> = Vec::new();
    for (i, k) in c.keys.iter().enumerate() {
        if out.iter().any(|o| o.key.public_eq(&k.key)) {
            continue; // the same key twice
        }
        let linked: Vec<&P12Cert> = match &k.local_key_id {
            Some(id) => c
                .certs
                .iter()
                .filter(|x| x.local_key_id.as_ref() == Some(id))
                .collect(),
            None => Vec::new(),
        };
        let leaf = match linked.iter().find(|x| key_matches(&k.key, &x.cert)) {
            Some(x) => *x,
            None if !linked.is_empty() => {
                return Err(Error::bad_input(format!(
                    "key and certificate do not match: the private key {} is paired with the certificate of {}",
                    key_label(k, i),
                    subject_str(&linked[0].cert)
                ))
                .hint("the file is inconsistent; export the ID again from its original source"));
            }
            None => {
                match c.certs.iter().find(|x| key_matches(&k.key, &x.cert)) {
                    Some(x) => x,
                    None if c.certs.is_empty() => {
                        return Err(Error::not_found(format!(
                        "the PKCS#12 file holds the private key {} but no certificate",
                        key_label(k, i)
                    ))
                    .hint("a digital ID needs its certificate; export the file again including it"));
                    }
                    None => {
                        return Err(Error::bad_input(format!(
                        "key and certificate do not match: no certificate in the PKCS#12 file belongs to the private key {}",
                        key_label(k, i)
                    ))
                    .hint("the file is inconsistent; export the ID again from its original source"));
                    }
                }
            }
        };
        out.push(P12Identity {
            key: k.key.clone(),
            cert: leaf.cert.clone(),
            chain: chain_for(&leaf.cert, &c.certs),
            friendly_name: k
                .friendly_name
                .clone()
                .or_else(|| leaf.friendly_name.clone()),
            local_key_id: k.local_key_id.clone().or_else(|| leaf.local_key_id.clone()),
        });
    }
    Ok(out)
}

/// The single identity of an `id export`-style file: `(key, leaf, chain)`.
///
/// Errors: as [`find_identities`] (no key, mismatch); several identities → [`ErrorKind::Usage`] listing
/// them (use [`identities`] for backups).
pub fn pick_identity(c: &P12Contents) -> Result<IdentityParts> {
    let mut ids = find_identities(c)?;
    if ids.len() > 1 {
        let list = ids
            .iter()
            .map(|i| match &i.friendly_name {
                Some(n) => format!("\"{n}\" ({})", subject_str(&i.cert)),
                None => subject_str(&i.cert),
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::usage(format!(
            "the PKCS#12 file holds {} digital IDs: {list}",
            ids.len()
        ))
        .hint("restore it as a backup to import all of them"));
    }
    Ok(ids.remove(0).into_parts())
}

// ---------------------------------------------------------------------------------------------------------
// build
// ---------------------------------------------------------------------------------------------------------

struct CertSpec {
    cert: X509,
    der: Vec<u8>,
    name: Option<String>,
    key_id: Option<Vec<u8>>,
}

/// Plans a bag for `cert` named `name` (empty: unnamed), merging duplicates without losing a name:
/// an unnamed certificate already present is skipped; a named one reuses an identical unnamed, keyless bag
/// (filling in the name) or an identical bag of the same name, and otherwise gets its own bag (the same
/// certificate may be filed under two names, e.g. an own certificate that is also a contact).
fn add_cert_spec(list: &mut Vec<CertSpec>, cert: &X509Ref, name: &str) -> Result<()> {
    let der = cert.to_der()?;
    if name.is_empty() {
        if !list.iter().any(|s| s.der == der) {
            list.push(CertSpec {
                cert: cert.to_owned(),
                der,
                name: None,
                key_id: None,
            });
        }
        return Ok(());
    }
    if list
        .iter()
        .any(|s| s.der == der && s.name.as_deref() == Some(name))
    {
        return Ok(());
    }
    if let Some(s) = list
        .iter_mut()
        .find(|s| s.der == der && s.name.is_none() && s.key_id.is_none())
    {
        s.name = Some(name.to_string());
        return Ok(());
    }
    list.push(CertSpec {
        cert: cert.to_owned(),
        der,
        name: Some(name.to_string()),
        key_id: None,
    });
    Ok(())
}

/// Writes one standard PKCS#12 file holding every entry: a single identity for `id export`, many
/// identities plus contacts' and anchors' certificates for `id backup`.
///
/// Layout (as `PKCS12_create` does): one safe of certificate bags encrypted with the profile's certificate
/// algorithm (identities' leaves, then their chains, then the [`BuildEntry::Cert`]s), then one data safe of shrouded key bags. Each identity's key bag and leaf bag carry the same localKeyID
/// (the leaf's SHA-1 fingerprint) and its friendlyName; `Cert` entries carry their friendlyName. Salts are
/// 16 bytes. `openssl pkcs12 -info` reads every profile (`-legacy` for [`Profile::Legacy`]).
///
/// Duplicates are merged without losing a name: a chain certificate already present is not repeated; a
/// `Cert` entry equal to an unnamed chain certificate names that bag; a `Cert` entry equal to an
/// identity's leaf, or the same certificate under two different names, gets a bag of its own.
///
/// Errors ([`ErrorKind::Usage`]): no entries; an empty password, one containing NUL or not UTF-8; the same
/// identity twice; a key that does not match its certificate. [`ErrorKind::Unsupported`] for
/// [`Profile::Legacy`] without OpenSSL's legacy provider.
pub fn build(entries: &[BuildEntry<'_>], password: &Secret, profile: Profile) -> Result<Vec<u8>> {
    build_inner(entries, password, profile, true)
}

fn build_inner(
    entries: &[BuildEntry<'_>],
    password: &Secret,
    profile: Profile,
    check_match: bool,
) -> Result<Vec<u8>> {
    if entries.is_empty() {
        return Err(Error::usage("nothing to put in the PKCS#12 file"));
    }
    if password.is_empty() {
        return Err(
            Error::usage("an empty password would leave the PKCS#12 file unprotected")
                .hint("choose a password for the exported file"),
        );
    }
    if password.as_str().is_none() || password.expose().contains(&0) {
        return Err(Error::usage(
            "the password for the PKCS#12 file must be UTF-8 text without NUL characters",
        ));
    }
    let pass = Pass::new(password.expose())?;
    if profile == Profile::Legacy && !provider::ensure_legacy() {
        return Err(Error::unsupported(
            "the legacy profile needs RC2, but OpenSSL's legacy provider could not be loaded",
        )
        .hint("install the legacy provider (ossl-modules/legacy.so) or use the compat profile"));
    }
    let prm = profile.params();

    // Plan the bags.
    let mut certs: Vec<CertSpec> = Vec::new();
    let mut keys: Vec<(&PKeyRef<Private>, Vec<u8>, &str)> = Vec::new();
    for e in entries {
        if let BuildEntry::Identity {
            key,
            cert,
            friendly_name,
            ..
        } = e
        {
            if check_match && !key_matches(key, cert) {
                return Err(Error::usage(format!(
                    "key and certificate do not match for the ID {}",
                    if friendly_name.is_empty() {
                        subject_str(cert)
                    } else {
                        format!("\"{friendly_name}\"")
                    }
                )));
            }
            let id = cert.digest(MessageDigest::sha1())?.to_vec();
            if keys.iter().any(|(_, k, _)| *k == id) {
                return Err(Error::usage(format!(
                    "the ID {} is listed twice",
                    subject_str(cert)
                )));
            }
            let der = cert.to_der()?;
            let name = (!friendly_name.is_empty()).then(|| friendly_name.to_string());
            certs.push(CertSpec {
                cert: (*cert).to_owned(),
                der,
                name,
                key_id: Some(id.clone()),
            });
            keys.push((key, id, friendly_name));
        }
    }
    for e in entries {
        if let BuildEntry::Identity { chain, .. } = e {
            for c in *chain {
                add_cert_spec(&mut certs, c, "")?;
            }
        }
    }
    for e in entries {
        if let BuildEntry::Cert {
            cert,
            friendly_name,
        } = e
        {
            add_cert_spec(&mut certs, cert, friendly_name)?;
        }
    }

    // Make them.
    let mut cert_bags: OwnedStack<BagItem> = OwnedStack::new()?;
    for s in &certs {
        let mut bag = Owned::cert_bag(&s.cert)?;
        if let Some(n) = &s.name {
            bag.add_friendly_name(n)?;
        }
        if let Some(id) = &s.key_id {
            bag.add_local_key_id(id)?;
        }
        cert_bags.push(bag)?;
    }
    for e in entries {
        if let BuildEntry::Secret { type_oid, value } = e {
            cert_bags.push(Owned::bag_from_der(&secret_bag_der(type_oid, value))?)?;
        }
    }
    let mut key_bags: OwnedStack<BagItem> = OwnedStack::new()?;
    for (key, id, name) in &keys {
        let mut bag = Owned::key_bag(key, prm.key_nid, &pass, prm.iter)?;
        if !name.is_empty() {
            bag.add_friendly_name(name)?;
        }
        bag.add_local_key_id(id)?;
        key_bags.push(bag)?;
    }
    let mut safes: OwnedStack<P7Item> = OwnedStack::new()?;
    if !cert_bags.is_empty() {
        safes.push(Owned::encrypted_safe(
            &cert_bags,
            prm.cert_nid,
            &pass,
            prm.iter,
        )?)?;
    }
    if !key_bags.is_empty() {
        safes.push(Owned::data_safe(&key_bags)?)?;
    }
    let p12 = pkcs12_from_safes(&safes)?;
    set_mac(&p12, &pass, prm.mac_iter, prm.mac_md)?;
    Ok(p12.to_der()?)
}

// ---------------------------------------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::rsa::Rsa;
    use openssl::x509::extension::{BasicConstraints, KeyUsage};
    use openssl::x509::{X509Builder, X509NameBuilder};
    use std::process::Command;
    use std::time::Instant;

    fn ec_key() -> PKey<Private> {
        let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
    }

    fn cert(
        cn: &str,
        key: &PKeyRef<Private>,
        issuer: Option<(&X509Ref, &PKeyRef<Private>)>,
        ca: bool,
    ) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(rand_u32())
            .unwrap()
            .to_asn1_integer()
            .unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
            .unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        if ca {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        }
        let signer = issuer.map_or(key, |(_, k)| k);
        b.sign(signer, MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn rand_u32() -> u32 {
        let mut b = [0u8; 4];
        openssl::rand::rand_bytes(&mut b).unwrap();
        u32::from_be_bytes(b) >> 1
    }

    struct Pki {
        root: X509,
        inter: X509,
        inter_key: PKey<Private>,
    }

    fn pki() -> Pki {
        let root_key = ec_key();
        let root = cert("Test Root", &root_key, None, true);
        let inter_key = ec_key();
        let inter = cert(
            "Test Intermediate",
            &inter_key,
            Some((&root, &root_key)),
            true,
        );
        Pki {
            root,
            inter,
            inter_key,
        }
    }

    fn leaf(p: &Pki, cn: &str) -> (PKey<Private>, X509) {
        let k = ec_key();
        let c = cert(cn, &k, Some((&p.inter, &p.inter_key)), false);
        (k, c)
    }

    /// The one-ID entry list most tests build: `key` with `cert`, no chain, named "alice".
    fn alice_entry<'a>(key: &'a PKeyRef<Private>, cert: &'a X509Ref) -> [BuildEntry<'a>; 1] {
        [BuildEntry::Identity {
            key,
            cert,
            chain: &[],
            friendly_name: "alice",
        }]
    }

    fn pw(s: &str) -> Secret {
        Secret::from_string(s.into())
    }

    fn openssl_available() -> bool {
        crate::test_peers::have(&["openssl"])
    }

    /// Runs `openssl pkcs12 -info -noout` on `der`; returns (success, stdout+stderr).
    fn openssl_info(der: &[u8], pass: &str, extra: &[&str]) -> (bool, String) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.p12");
        std::fs::write(&f, der).unwrap();
        let out = Command::new("openssl")
            .args(["pkcs12", "-info", "-noout", "-in"])
            .arg(&f)
            .arg("-passin")
            .arg(format!("pass:{pass}"))
            .args(extra)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Writes key/cert PEMs and runs `openssl pkcs12 -export` with `extra` options; returns the DER.
    fn openssl_export(
        key: &PKeyRef<Private>,
        cert: &X509Ref,
        ca: &[&X509Ref],
        pass: &str,
        extra: &[&str],
    ) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let kf = dir.path().join("k.pem");
        let cf = dir.path().join("c.pem");
        let out = dir.path().join("o.p12");
        std::fs::write(&kf, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let mut pem = cert.to_pem().unwrap();
        for c in ca {
            pem.extend(c.to_pem().unwrap());
        }
        std::fs::write(&cf, pem).unwrap();
        let st = Command::new("openssl")
            .args(["pkcs12", "-export", "-name", "exported"])
            .arg("-inkey")
            .arg(&kf)
            .arg("-in")
            .arg(&cf)
            .arg("-out")
            .arg(&out)
            .arg("-passout")
            .arg(format!("pass:{pass}"))
            .args(extra)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        std::fs::read(&out).unwrap()
    }

    /// Rebuilds `t` with every INTEGER equal to `from` replaced by `to`, descending into OCTET STRINGs that
    /// hold DER. Lengths are re-encoded.
    fn rewrite_int(t: &Tlv<'_>, from: u64, to: u64) -> Vec<u8> {
        if t.tag == tag::INTEGER && t.as_u64() == Some(from) {
            return der::uint(to);
        }
        if t.tag == tag::OCTET_STRING
            && let Ok(inner) = der::parse_one(t.value)
            && inner.constructed()
        {
            return der::tlv(tag::OCTET_STRING, &rewrite_int(&inner, from, to));
        }
        if t.constructed() {
            let body: Vec<u8> = t
                .children()
                .unwrap()
                .iter()
                .flat_map(|c| rewrite_int(c, from, to))
                .collect();
            return der::tlv(t.tag, &body);
        }
        t.raw.to_vec()
    }

    /// Sets the MAC iteration count of a PFX to `to`.
    fn patch_mac_iterations(pfx: &[u8], to: u64) -> Vec<u8> {
        let top = der::parse_one(pfx).unwrap();
        let k = top.children().unwrap();
        let mac = k[2].children().unwrap();
        let new_mac = der::seq(&[mac[0].raw, mac[1].raw, &der::uint(to)]);
        der::seq(&[k[0].raw, k[1].raw, &new_mac])
    }

    /// Sets every iteration count `from` inside the authSafe (not the MAC) to `to`.
    fn patch_bag_iterations(pfx: &[u8], from: u64, to: u64) -> Vec<u8> {
        let top = der::parse_one(pfx).unwrap();
        let k = top.children().unwrap();
        der::seq(&[k[0].raw, &rewrite_int(&k[1], from, to), k[2].raw])
    }

    #[test]
    fn round_trip_one_identity() {
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let chain = vec![p.inter.clone(), p.root.clone()];
        let der = build(
            &[BuildEntry::Identity {
                key: &k,
                cert: &c,
                chain: &chain,
                friendly_name: "Alice (work)",
            }],
            &pw("correct horse"),
            Profile::Modern,
        )
        .unwrap();
        let s = summarize(&der).unwrap();
        assert_eq!(
            s.description,
            "modern PKCS#12 (AES-256-CBC, PBKDF2-HMAC-SHA256, SHA-256 MAC)"
        );
        assert!(!s.legacy);
        assert_eq!(s.mac_digest.as_deref(), Some("sha256"));
        assert_eq!(s.mac_iterations, Some(u64::from(MODERN_MAC_ITERATIONS)));
        assert_eq!(s.max_iterations, 600_000);
        assert_eq!(
            s.bag_encryptions,
            vec!["PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC".to_string()]
        );

        let contents = parse_checked(&der, &pw("correct horse"), false).unwrap();
        assert_eq!(contents.keys.len(), 1);
        assert_eq!(contents.certs.len(), 3);
        assert_eq!(
            contents.keys[0].friendly_name.as_deref(),
            Some("Alice (work)")
        );
        let (key, leaf_cert, ch) = pick_identity(&contents).unwrap();
        assert!(key.public_eq(&k));
        assert!(same_cert(&leaf_cert, &c));
        assert_eq!(ch.len(), 2);
        assert!(same_cert(&ch[0], &p.inter) && same_cert(&ch[1], &p.root));
        let ids = find_identities(&contents).unwrap();
        assert_eq!(ids[0].friendly_name.as_deref(), Some("Alice (work)"));
        assert_eq!(
            ids[0].local_key_id.as_deref(),
            Some(&c.digest(MessageDigest::sha1()).unwrap()[..])
        );
    }

    #[test]
    fn round_trip_three_identities_and_two_certs() {
        let p = pki();
        let people: Vec<(PKey<Private>, X509, String)> = ["alice", "bob", "carol"]
            .iter()
            .map(|n| {
                let (k, c) = leaf(&p, n);
                (k, c, format!("{n}'s ID ✓"))
            })
            .collect();
        // One RSA identity too, to mix key types.
        let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let rsa_cert = cert("dave", &rsa, Some((&p.inter, &p.inter_key)), false);
        let contact_key = ec_key();
        let contact = cert("eve contact", &contact_key, None, false);
        let chain = vec![p.inter.clone(), p.root.clone()];
        let mut entries: Vec<BuildEntry<'_>> = people
            .iter()
            .map(|(k, c, n)| BuildEntry::Identity {
                key: k,
                cert: c,
                chain: &chain,
                friendly_name: n,
            })
            .collect();
        entries.push(BuildEntry::Identity {
            key: &rsa,
            cert: &rsa_cert,
            chain: &chain,
            friendly_name: "dave",
        });
        entries.push(BuildEntry::Cert {
            cert: &contact,
            friendly_name: "eve",
        });
        entries.push(BuildEntry::Cert {
            cert: &p.root,
            friendly_name: "Test Root anchor",
        });
        // The same contact filed twice under one name, and under a second name; an own leaf as a contact.
        entries.push(BuildEntry::Cert {
            cert: &contact,
            friendly_name: "eve",
        });
        entries.push(BuildEntry::Cert {
            cert: &contact,
            friendly_name: "eve (home)",
        });
        entries.push(BuildEntry::Cert {
            cert: &people[0].1,
            friendly_name: "contact:alice",
        });
        let der = build(&entries, &pw("backup pw"), Profile::Modern).unwrap();

        if openssl_available() {
            let (ok, info) = openssl_info(&der, "backup pw", &[]);
            assert!(ok, "{info}");
        }

        let contents = parse_checked(&der, &pw("backup pw"), false).unwrap();
        assert_eq!(contents.keys.len(), 4);
        // 4 leaves + intermediate + root (deduplicated) + contact twice + alice as a contact.
        assert_eq!(contents.certs.len(), 9);
        let names = |c: &X509| -> Vec<Option<String>> {
            let v = contents.certs.iter().filter(|x| same_cert(&x.cert, c));
            v.map(|x| x.friendly_name.clone()).collect()
        };
        assert_eq!(
            names(&contact),
            vec![Some("eve".into()), Some("eve (home)".into())]
        );
        assert_eq!(
            names(&people[0].1),
            vec![Some(people[0].2.clone()), Some("contact:alice".into())]
        );
        let root_bag = contents
            .certs
            .iter()
            .find(|x| same_cert(&x.cert, &p.root))
            .unwrap();
        assert_eq!(root_bag.friendly_name.as_deref(), Some("Test Root anchor"));
        let eve = contents
            .certs
            .iter()
            .find(|x| same_cert(&x.cert, &contact))
            .unwrap();
        assert_eq!(eve.friendly_name.as_deref(), Some("eve"));
        assert!(eve.local_key_id.is_none());

        let ids = find_identities(&contents).unwrap();
        assert_eq!(ids.len(), 4);
        for ((k, c, n), id) in people.iter().zip(&ids) {
            assert!(id.key.public_eq(k));
            assert!(same_cert(&id.cert, c));
            assert_eq!(id.friendly_name.as_deref(), Some(n.as_str()));
            assert_eq!(id.chain.len(), 2);
        }
        assert!(ids[3].key.public_eq(&rsa) && same_cert(&ids[3].cert, &rsa_cert));
        let e = pick_identity(&contents).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(e.message().contains("4 digital IDs"), "{e}");
    }

    #[test]
    fn identities_match_by_public_key_without_local_key_id() {
        let p = pki();
        let (k1, c1) = leaf(&p, "one");
        let (k2, c2) = leaf(&p, "two");
        let contents = P12Contents {
            keys: vec![
                P12Key {
                    key: k2.clone(),
                    local_key_id: None,
                    friendly_name: None,
                },
                P12Key {
                    key: k1.clone(),
                    local_key_id: None,
                    friendly_name: None,
                },
            ],
            certs: vec![
                P12Cert {
                    cert: p.inter.clone(),
                    local_key_id: None,
                    friendly_name: None,
                },
                P12Cert {
                    cert: c1.clone(),
                    local_key_id: None,
                    friendly_name: Some("one".into()),
                },
                P12Cert {
                    cert: c2.clone(),
                    local_key_id: None,
                    friendly_name: None,
                },
            ],
            summary: summary_of(&Walk {
                mac: None,
                safes: vec![],
            }),
            skipped_bags: 0,
            secrets: vec![],
        };
        let ids = find_identities(&contents).unwrap();
        assert!(same_cert(&ids[0].cert, &c2) && same_cert(&ids[1].cert, &c1));
        assert_eq!(ids[1].friendly_name.as_deref(), Some("one"));
        assert!(same_cert(&ids[0].chain[0], &p.inter));
    }

    #[test]
    fn modern_is_read_by_openssl() {
        if !openssl_available() {
            return;
        }
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let der = build(&alice_entry(&k, &c), &pw("s3cret"), Profile::Modern).unwrap();
        let (ok, info) = openssl_info(&der, "s3cret", &[]);
        assert!(ok, "{info}");
        let expect = "PBES2, PBKDF2, AES-256-CBC, Iteration 600000, PRF hmacWithSHA256";
        assert_eq!(info.matches(expect).count(), 2, "{info}");
        assert!(info.contains("MAC: sha256, Iteration 600000"), "{info}");
        assert!(info.contains("salt length: 16"), "{info}");
    }

    #[test]
    fn legacy_and_compat_are_read_by_openssl() {
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let e = alice_entry(&k, &c);
        let legacy = build(&e, &pw("pw"), Profile::Legacy).unwrap();
        let s = summarize(&legacy).unwrap();
        assert_eq!(s.description, "legacy RC2-40 PKCS#12 (3DES key, SHA-1 MAC)");
        assert!(s.legacy);
        let compat = build(&e, &pw("pw"), Profile::Compat).unwrap();
        let s = summarize(&compat).unwrap();
        assert_eq!(s.description, "legacy PKCS#12 (3DES, SHA-1 MAC)");
        assert_eq!(
            s.bag_encryptions,
            vec!["pbeWithSHA1And3-KeyTripleDES-CBC".to_string()]
        );
        for der in [&legacy, &compat] {
            let got = parse(der, &pw("pw")).unwrap();
            let (key, cert, _) = pick_identity(&got).unwrap();
            assert!(key.public_eq(&k) && same_cert(&cert, &c));
        }
        if !openssl_available() {
            return;
        }
        let (ok, info) = openssl_info(&legacy, "pw", &["-legacy"]);
        assert!(ok, "{info}");
        assert!(
            info.contains("PKCS7 Encrypted data: pbeWithSHA1And40BitRC2-CBC, Iteration 2048"),
            "{info}"
        );
        assert!(
            info.contains("Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048"),
            "{info}"
        );
        assert!(info.contains("MAC: sha1, Iteration 2048"), "{info}");
        let (ok, info) = openssl_info(&compat, "pw", &[]);
        assert!(ok, "{info}");
        assert_eq!(
            info.matches("pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048")
                .count(),
            2,
            "{info}"
        );
    }

    #[test]
    fn openssl_exports_parse_and_are_described() {
        if !openssl_available() {
            return;
        }
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let default = openssl_export(&k, &c, &[&p.inter, &p.root], "pw", &[]);
        let s = summarize(&default).unwrap();
        assert_eq!(
            s.description,
            "modern PKCS#12 (AES-256-CBC, PBKDF2-HMAC-SHA256, SHA-256 MAC)"
        );
        assert_eq!((s.mac_iterations, s.max_iterations), (Some(2048), 2048));
        let got = parse_checked(&default, &pw("pw"), false).unwrap();
        assert_eq!(got.keys[0].friendly_name.as_deref(), Some("exported"));
        let (key, cert, chain) = pick_identity(&got).unwrap();
        assert!(key.public_eq(&k) && same_cert(&cert, &c));
        assert_eq!(chain.len(), 2);

        let legacy = openssl_export(&k, &c, &[&p.inter], "pw", &["-legacy"]);
        let s = summarize(&legacy).unwrap();
        assert_eq!(s.description, "legacy RC2-40 PKCS#12 (3DES key, SHA-1 MAC)");
        assert_eq!(s.mac_digest.as_deref(), Some("sha1"));
        assert!(
            s.bag_encryptions
                .contains(&"pbeWithSHA1And40BitRC2-CBC".to_string())
        );
        let got = parse_checked(&legacy, &pw("pw"), false).unwrap();
        let (key, _, chain) = pick_identity(&got).unwrap();
        assert!(key.public_eq(&k));
        assert_eq!(chain.len(), 1);
        let mixed = openssl_export(&k, &c, &[], "pw", &["-descert"]);
        let s = summarize(&mixed).unwrap();
        assert_eq!(
            s.description,
            "legacy PKCS#12 (AES-256-CBC/PBKDF2-HMAC-SHA256 key, 3DES certificates, SHA-256 MAC)"
        );
        assert!(s.legacy);
    }

    #[test]
    fn wrong_password() {
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let e = alice_entry(&k, &c);
        for profile in [Profile::Modern, Profile::Legacy] {
            let der = build(&e, &pw("right"), profile).unwrap();
            let err = parse_checked(&der, &pw("wrong"), false).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::WrongSecret, "{err:?}");
            assert_eq!(err.message(), "wrong password for the PKCS#12 file");
            let err = parse_checked(&der, &pw(""), false).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::WrongSecret, "{err:?}");
        }
        assert!(ErrorStack::get().errors().is_empty());
    }

    #[test]
    fn empty_password_export_from_openssl() {
        if !openssl_available() {
            return;
        }
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let der = openssl_export(&k, &c, &[], "", &[]);
        let got = parse_checked(&der, &pw(""), false).unwrap();
        assert!(pick_identity(&got).unwrap().0.public_eq(&k));
        assert_eq!(
            parse_checked(&der, &pw("x"), false).unwrap_err().kind(),
            ErrorKind::WrongSecret
        );
    }

    #[test]
    fn no_mac_needs_permission() {
        if !openssl_available() {
            return;
        }
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let der = openssl_export(&k, &c, &[], "pw", &["-nomac"]);
        let s = summarize(&der).unwrap();
        assert!(!s.has_mac);
        let err = check_limits(&s, false).unwrap_err();
        assert!(err.hint_text().unwrap().contains("--allow-unauthenticated"));
        assert!(err.message().contains("no MAC"));
        assert_eq!(
            parse_checked(&der, &pw("pw"), false).unwrap_err().kind(),
            err.kind()
        );
        check_limits(&s, true).unwrap();
        let got = parse(&der, &pw("pw")).unwrap();
        assert!(pick_identity(&got).unwrap().0.public_eq(&k));
        // Without a MAC a wrong password surfaces when the key is decrypted.
        assert_eq!(
            parse(&der, &pw("nope")).unwrap_err().kind(),
            ErrorKind::WrongSecret
        );
    }

    #[test]
    fn huge_mac_iterations_are_refused_fast() {
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let e = alice_entry(&k, &c);
        let der = build(&e, &pw("pw"), Profile::Compat).unwrap();
        let bad = patch_mac_iterations(&der, 2_147_483_647);
        let t = Instant::now();
        let err = parse(&bad, &pw("pw")).unwrap_err();
        assert!(t.elapsed().as_millis() < 1000, "{:?}", t.elapsed());
        assert_eq!(err.kind(), ErrorKind::Limit);
        assert!(
            err.message()
                .contains("2147483647 key-derivation iterations"),
            "{err}"
        );
        assert_eq!(summarize(&bad).unwrap().mac_iterations, Some(2_147_483_647));

        // The same in the bag encryption (PBE and PBKDF2).
        let bad = patch_bag_iterations(&der, 2048, 2_147_483_647);
        let t = Instant::now();
        let err = parse(&bad, &pw("pw")).unwrap_err();
        assert!(t.elapsed().as_millis() < 1000);
        assert_eq!(err.kind(), ErrorKind::Limit);
        let modern = build(&e, &pw("pw"), Profile::Modern).unwrap();
        let bad = patch_bag_iterations(&modern, 600_000, 2_147_483_647);
        let s = summarize(&bad).unwrap();
        assert_eq!(s.max_iterations, 2_147_483_647);
        assert_eq!(s.mac_iterations, Some(600_000));
        assert_eq!(
            check_limits(&s, false).unwrap_err().kind(),
            ErrorKind::Limit
        );
    }

    #[test]
    fn garbage_is_bad_input() {
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let der = build(
            &[BuildEntry::Identity {
                key: &k,
                cert: &c,
                chain: &[],
                friendly_name: "",
            }],
            &pw("pw"),
            Profile::Compat,
        )
        .unwrap();
        for n in [0, 1, 5, 40, der.len() / 2, der.len() - 1] {
            let err = parse_checked(&der[..n], &pw("pw"), false).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadInput, "truncated at {n}: {err:?}");
        }
        let mut random = vec![0u8; 3000];
        openssl::rand::rand_bytes(&mut random).unwrap();
        let err = summarize(&random).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadInput);
        assert_eq!(err.message(), "not a PKCS#12 file");
        let err = summarize(&c.to_der().unwrap()).unwrap_err();
        assert_eq!(err.message(), "not a PKCS#12 file");
        let err = summarize(&c.to_pem().unwrap()).unwrap_err();
        assert!(err.hint_text().unwrap().contains("PEM"));
        // Trailing bytes after the PFX are refused too.
        let mut long = der.clone();
        long.push(0);
        assert_eq!(summarize(&long).unwrap_err().kind(), ErrorKind::BadInput);
        assert!(ErrorStack::get().errors().is_empty());
    }

    #[test]
    fn nokeys_file_has_no_identity() {
        let p = pki();
        let der = build(
            &[
                BuildEntry::Cert {
                    cert: &p.root,
                    friendly_name: "root",
                },
                BuildEntry::Cert {
                    cert: &p.inter,
                    friendly_name: "",
                },
            ],
            &pw("pw"),
            Profile::Compat,
        )
        .unwrap();
        let got = parse_checked(&der, &pw("pw"), false).unwrap();
        assert_eq!(identities(&got).unwrap_err().kind(), ErrorKind::NotFound);
        let err = pick_identity(&got).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(
            err.message()
                .contains("contains no private key (it holds 2 certificates"),
            "{err}"
        );

        if openssl_available() {
            let (k, c) = leaf(&p, "alice");
            let der = openssl_export(&k, &c, &[], "pw", &["-nokeys"]);
            let got = parse_checked(&der, &pw("pw"), false).unwrap();
            assert_eq!(pick_identity(&got).unwrap_err().kind(), ErrorKind::NotFound);
        }
    }

    #[test]
    fn key_cert_mismatch_is_refused() {
        let p = pki();
        let (alice_key, alice) = leaf(&p, "alice");
        let (bob_key, _bob) = leaf(&p, "bob");
        let e = [BuildEntry::Identity {
            key: &bob_key,
            cert: &alice,
            chain: &[],
            friendly_name: "bob",
        }];
        assert_eq!(
            build(&e, &pw("pw"), Profile::Compat).unwrap_err().kind(),
            ErrorKind::Usage
        );
        let der = build_inner(&e, &pw("pw"), Profile::Compat, false).unwrap();
        let got = parse_checked(&der, &pw("pw"), false).unwrap();
        let err = pick_identity(&got).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadInput);
        assert!(
            err.message()
                .starts_with("key and certificate do not match"),
            "{err}"
        );
        drop(alice_key);
    }

    #[test]
    fn legacy_provider_missing_is_not_a_password_problem() {
        // Classification only: the provider is loaded in this process.
        let c = Collector {
            pass: &Pass::null(),
            mac_verified: true,
            budget: 0,
            keys: vec![],
            certs: vec![],
            skipped: 0,
            secrets: vec![],
        };
        let Err(stack) = openssl::cipher::Cipher::fetch(None, "NO-SUCH-CIPHER", None) else {
            panic!()
        };
        let e = c.decrypt_error("certificates", "pbeWithSHA1And40BitRC2-CBC", stack);
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e:?}");
        assert!(
            e.message()
                .contains("unsupported algorithm pbeWithSHA1And40BitRC2-CBC")
        );
        assert!(e.hint_text().unwrap().contains("legacy provider"));
    }

    #[test]
    fn build_refuses_bad_passwords() {
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let e = [BuildEntry::Identity {
            key: &k,
            cert: &c,
            chain: &[],
            friendly_name: "",
        }];
        assert_eq!(
            build(&e, &pw(""), Profile::Modern).unwrap_err().kind(),
            ErrorKind::Usage
        );
        assert_eq!(
            build(&e, &Secret::new(b"a\0b".to_vec()), Profile::Modern)
                .unwrap_err()
                .kind(),
            ErrorKind::Usage
        );
        assert_eq!(
            build(&[], &pw("x"), Profile::Modern).unwrap_err().kind(),
            ErrorKind::Usage
        );
    }

    /// Parses a bag from DER (test helper for building files OpenSSL's API would not write).
    fn bag_from_der(d: &[u8]) -> Owned<BagItem> {
        Owned::bag_from_der(d).expect("bag DER")
    }

    #[test]
    fn hidden_key_bag_iterations_are_checked_before_decryption() {
        // A shrouded key bag inside the encrypted safe, where summarize cannot see it, asking for 2^31-1
        // PBKDF2 iterations; the MAC is valid.
        let p = pki();
        let (k, _) = leaf(&p, "alice");
        let pass = Pass::new(b"pw").unwrap();
        let bag = Owned::<BagItem>::key_bag(&k, sys::NID_aes_256_cbc, &pass, 2048).unwrap();
        let bag_der = BagRef {
            ptr: bag.ptr.cast(),
            _life: PhantomData,
        }
        .to_der()
        .unwrap();
        let patched = rewrite_int(&der::parse_one(&bag_der).unwrap(), 2048, 2_147_483_647);
        let mut bags = OwnedStack::<BagItem>::new().unwrap();
        bags.push(bag_from_der(&patched)).unwrap();
        let mut safes = OwnedStack::<P7Item>::new().unwrap();
        let safe = Owned::encrypted_safe(&bags, sys::NID_aes_256_cbc, &pass, 2048).unwrap();
        safes.push(safe).unwrap();
        let p12 = pkcs12_from_safes(&safes).unwrap();
        set_mac(&p12, &pass, 2048, MessageDigest::sha256()).unwrap();
        let der = p12.to_der().unwrap();

        let s = summarize(&der).unwrap();
        assert_eq!(s.max_iterations, 2048, "the key bag is not visible: {s:?}");
        let t = Instant::now();
        let err = parse(&der, &pw("pw")).unwrap_err();
        assert!(t.elapsed().as_millis() < 1000, "{:?}", t.elapsed());
        assert_eq!(err.kind(), ErrorKind::Limit, "{err:?}");
        assert!(err.message().contains("2147483647"), "{err}");
    }

    #[test]
    fn without_legacy_provider_rc2_is_unsupported_not_a_wrong_password() {
        // OpenSSL loads providers once per process, so the check runs in a child test process whose
        // OPENSSL_MODULES points nowhere.
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let e = alice_entry(&k, &c);
        let der = build(&e, &pw("pw"), Profile::Legacy).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("legacy.p12");
        std::fs::write(&f, der).unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "ossl::p12::tests::child_without_legacy_provider"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env("OPENSSL_MODULES", dir.path().join("no-modules"))
            .env("SMIMEKIT_P12_CHILD_FILE", &f)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    #[test]
    #[ignore = "run in a child process by without_legacy_provider_rc2_is_unsupported_not_a_wrong_password"]
    fn child_without_legacy_provider() {
        let Some(f) = std::env::var_os("SMIMEKIT_P12_CHILD_FILE") else {
            return;
        };
        assert!(
            !provider::ensure_legacy(),
            "the legacy provider loaded anyway"
        );
        let der = std::fs::read(f).unwrap();
        let err = parse(&der, &pw("pw")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err:?}");
        assert!(
            err.message()
                .contains("unsupported algorithm pbeWithSHA1And40BitRC2-CBC"),
            "{err}"
        );
        assert!(err.hint_text().unwrap().contains("legacy provider"));
        // A wrong password is still reported as such: the MAC is checked first.
        assert_eq!(
            parse(&der, &pw("bad")).unwrap_err().kind(),
            ErrorKind::WrongSecret
        );
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let e = [BuildEntry::Identity {
            key: &k,
            cert: &c,
            chain: &[],
            friendly_name: "",
        }];
        assert_eq!(
            build(&e, &pw("pw"), Profile::Legacy).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        build(&e, &pw("pw"), Profile::Compat).unwrap();
    }

    use crate::ossl::sys::PKCS12_key_gen_utf8;

    thread_local! {
        /// A salt [`pbe_salt`] returns instead of drawing one (3DES bags only), to reproduce a file
        /// gpgsm 2.2 cannot read.
        pub(super) static FORCED_SALT: std::cell::Cell<Option<[u8; SALT_LEN as usize]>> =
            const { std::cell::Cell::new(None) };
    }

    /// The PKCS#12 KDF (RFC 7292 Appendix B) for 24 bytes of key, once as specified and once as gpgsm
    /// 2.2's `string_to_key` computes it: `gcry_mpi_print` writes I_j + B + 1 without its leading zero
    /// bytes, at the start of the block, leaving the block's old last bytes in place.
    fn p12_kdf_24(salt: &[u8], bmp: &[u8], iter: c_int, like_gpgsm: bool) -> Vec<u8> {
        let stretch = |x: &[u8]| -> Vec<u8> {
            (0..64 * x.len().div_ceil(64))
                .map(|i| x[i % x.len()])
                .collect()
        };
        let mut i_buf = stretch(salt);
        i_buf.extend(stretch(bmp));
        let mut key = Vec::new();
        loop {
            let mut a =
                openssl::hash::hash(MessageDigest::sha1(), &[&[1u8; 64][..], &i_buf].concat())
                    .unwrap()
                    .to_vec();
            for _ in 1..iter {
                a = openssl::hash::hash(MessageDigest::sha1(), &a)
                    .unwrap()
                    .to_vec();
            }
            key.extend(&a[..a.len().min(24 - key.len())]);
            if key.len() == 24 {
                return key;
            }
            let mut b1: Vec<u8> = (0..64).map(|k| a[k % 20]).collect();
            add_be(&mut b1, &[1]);
            for block in i_buf.chunks_mut(64) {
                let mut sum = block.to_vec();
                add_be(&mut sum, &b1);
                let skip = if like_gpgsm {
                    sum.iter().take_while(|&&b| b == 0).count()
                } else {
                    0
                };
                block[..64 - skip].copy_from_slice(&sum[skip..]);
            }
        }
    }

    #[test]
    fn gpgsm22_salt_check_matches_its_kdf() {
        // Salts from a counter (deterministic): about one in 128 makes gpgsm 2.2 derive a wrong key.
        let bmp = b"\0p\0w\0\0";
        let mut bad = 0;
        for n in 0u32..3000 {
            let salt =
                &openssl::hash::hash(MessageDigest::sha256(), &n.to_be_bytes()).unwrap()[..16];
            let iter = if n % 100 == 0 { 2048 } else { 1 };
            let right = p12_kdf_24(salt, bmp, iter, false);
            let gpgsm = p12_kdf_24(salt, bmp, iter, true);
            assert_eq!(
                gpgsm22_derives_key(salt, b"pw", iter),
                right == gpgsm,
                "salt {}",
                hex(salt)
            );
            bad += usize::from(right != gpgsm);
        }
        assert!(
            (5..=60).contains(&bad),
            "{bad} of 3000 salts break gpgsm 2.2"
        );
        // The specified KDF is OpenSSL's.
        for n in 0u8..8 {
            let salt = [n; 16];
            let mut want = [0u8; 24];
            // SAFETY: the password is NUL-terminated with 2 bytes, the salt 16 bytes, `want` 24 bytes
            // writable; SHA-1 is a static digest.
            let r = unsafe {
                PKCS12_key_gen_utf8(
                    c"pw".as_ptr(),
                    2,
                    salt.as_ptr(),
                    16,
                    1,
                    2048,
                    24,
                    want.as_mut_ptr(),
                    MessageDigest::sha1().as_ptr(),
                )
            };
            assert_eq!(r, 1);
            assert_eq!(p12_kdf_24(&salt, bmp, 2048, false), want);
        }
        // Non-ASCII passwords are checked as OpenSSL encodes them (UTF-16BE).
        let salt = &openssl::hash::hash(MessageDigest::sha256(), b"x").unwrap()[..16];
        assert_eq!(
            gpgsm22_derives_key(salt, "pé".as_bytes(), 1),
            p12_kdf_24(salt, b"\0p\0\xe9\0\0", 1, false)
                == p12_kdf_24(salt, b"\0p\0\xe9\0\0", 1, true)
        );
    }

    /// The salts of every `pbeWithSHA1And3-KeyTripleDES-CBC` algorithm visible in `d` (descending into
    /// OCTET STRINGs that hold DER).
    fn triple_des_salts(t: &Tlv<'_>, out: &mut Vec<Vec<u8>>) {
        let kids = if t.constructed() {
            t.children().unwrap_or_default()
        } else if t.tag == tag::OCTET_STRING {
            der::parse_one(t.value).map(|c| vec![c]).unwrap_or_default()
        } else {
            vec![]
        };
        if t.tag == tag::SEQUENCE
            && kids.len() == 2
            && kids[0].oid().as_deref() == Some("1.2.840.113549.1.12.1.3")
        {
            out.push(kids[1].children().unwrap()[0].octets().unwrap());
        }
        for c in &kids {
            triple_des_salts(c, out);
        }
    }

    #[test]
    fn legacy_and_compat_exports_use_salts_gpgsm_reads() {
        // 400 files, 600 3DES salts (about 5 s): without the salt check about 5 salts would be ones
        // gpgsm 2.2 derives a wrong key from (a regression fails this test with probability 99%).
        let p = pki();
        let (k, c) = leaf(&p, "alice");
        let e = alice_entry(&k, &c);
        let mut seen = 0;
        for n in 0..400 {
            let profile = if n % 2 == 0 {
                Profile::Legacy
            } else {
                Profile::Compat
            };
            let der = build(&e, &pw("pw"), profile).unwrap();
            let mut salts = Vec::new();
            triple_des_salts(&der::parse_one(&der).unwrap(), &mut salts);
            assert_eq!(
                salts.len(),
                if profile == Profile::Legacy { 1 } else { 2 },
                "{profile:?}"
            );
            for s in &salts {
                assert_eq!(s.len(), SALT_LEN as usize);
                assert!(
                    gpgsm22_derives_key(s, b"pw", LEGACY_ITERATIONS as c_int),
                    "{}",
                    hex(s)
                );
            }
            seen += salts.len();
        }
        assert_eq!(seen, 600);
    }

    /// gpgsm's import output (stderr) for `der`, password "pw", in a fresh GNUPGHOME.
    fn gpgsm_import(der: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("g");
        std::fs::create_dir(&home).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(home.join("gpg-agent.conf"), "allow-loopback-pinentry\n").unwrap();
        let f = dir.path().join("id.p12");
        std::fs::write(&f, der).unwrap();
        let mut child = Command::new("timeout")
            .args([
                "60",
                "gpgsm",
                "--batch",
                "--disable-dirmngr",
                "--pinentry-mode",
                "loopback",
            ])
            .args(["--passphrase-fd", "0", "--import"])
            .arg(&f)
            .env("GNUPGHOME", &home)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"pw\npw\npw\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let _ = Command::new("gpgconf")
            .args(["--kill", "all"])
            .env("GNUPGHOME", &home)
            .output();
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    #[test]
    fn gpgsm_imports_legacy_profile() {
        if !crate::test_peers::have(&["gpgsm", "gpgconf"]) {
            return;
        }
        let p = pki();
        // RSA: gpgsm 2.2.40 crashes (SIGSEGV) importing EC keys from any PKCS#12, OpenSSL's own included.
        let k = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let c = cert("alice", &k, Some((&p.inter, &p.inter_key)), false);
        let e = alice_entry(&k, &c);
        // Compat (3DES certificates) imports too; checked by hand, not repeated here (each import takes ~5 s).
        let profile = Profile::Legacy;
        let der = build(&e, &pw("pw"), profile).unwrap();
        let text = gpgsm_import(&der);
        assert!(
            text.contains("secret keys imported: 1"),
            "{profile:?}: {text}"
        );

        // The reproducer of the salt check: a key bag whose salt gpgsm derives a wrong 3DES key from.
        // OpenSSL reads the file; gpgsm cannot decrypt it (it then retries the password in every charset).
        let bad = (0u32..)
            .map(|n| {
                let h = openssl::hash::hash(MessageDigest::sha256(), &n.to_be_bytes()).unwrap();
                <[u8; 16]>::try_from(&h[..16]).unwrap()
            })
            .find(|s| !gpgsm22_derives_key(s, b"pw", LEGACY_ITERATIONS as c_int))
            .unwrap();
        FORCED_SALT.set(Some(bad));
        let der = build(&e, &pw("pw"), profile);
        FORCED_SALT.set(None);
        let der = der.unwrap();
        let got = parse(&der, &pw("pw")).unwrap();
        assert!(pick_identity(&got).unwrap().0.public_eq(&k));
        let text = gpgsm_import(&der);
        assert!(
            text.contains("decryption failed") && !text.contains("secret keys imported: 1"),
            "gpgsm imported a file with the salt {}: {text}",
            hex(&bad)
        );
    }

    #[test]
    fn summary_of_synthetic_scrypt_and_limits() {
        let s = P12Summary {
            has_mac: true,
            mac_digest: Some("sha256".into()),
            mac_iterations: Some(1),
            bag_encryptions: vec![],
            max_iterations: 1,
            total_iterations: MAX_KDF_TOTAL_ITERATIONS + 1,
            scrypt: vec![],
            legacy: false,
            description: String::new(),
        };
        assert_eq!(
            check_limits(&s, false).unwrap_err().kind(),
            ErrorKind::Limit
        );
        let s = P12Summary {
            total_iterations: 1,
            scrypt: vec![ScryptParams {
                n: 1 << 30,
                r: 8,
                p: 1,
            }],
            ..s
        };
        let e = check_limits(&s, false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
        assert!(e.message().contains("N=1073741824"));
    }
}
