//! CMS EnvelopedData and AuthEnvelopedData: streaming encryption, secret-free inspection, policy checks and
//! decryption that releases no unauthenticated plaintext.
//!
//! - [`encrypt`] writes a BER ContentInfo (indefinite lengths, chunked encryptedContent, as `openssl cms
//!   -stream` does) with constant memory. AES-GCM gives AuthEnvelopedData (12-byte nonce, 16-byte tag), AES-CBC
//!   EnvelopedData. RSA recipients get PKCS#1 v1.5 or RSAES-OAEP (SHA-256, MGF1-SHA-256); EC P-256/P-384
//!   recipients get ECDH with the SHA-256 X9.63 KDF (`dhSinglePass-stdDH-sha256kdf-scheme`).
//! - [`inspect`] walks the BER/DER with [`crate::der`] only (no OpenSSL, no secrets).
//! - [`check`] enforces what OpenSSL 3.0 does not: tag length = `aes-ICVlen` ∈ 12..=16 (CVE-2026-34182),
//!   AEAD ciphers only in AuthEnvelopedData and never in EnvelopedData (EFAIL downgrade), legacy ciphers.
//! - [`decrypt`] / [`decrypt_to`] return or write plaintext only after OpenSSL reported success (OpenSSL 3.0's
//!   own CLI leaks unauthenticated GCM plaintext: openssl #31629). [`decrypt_streaming`] is the flat-memory
//!   variant for large messages; its caller must discard the output on error.
//!
//! All `unsafe` code of this module is in the private `sys` block and the small wrappers right below it.

use std::io::{self, Read, Write};

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::cms::CmsContentInfo;
use openssl::error::ErrorStack;
use openssl::md::Md;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKeyRef, Private, Public};
use openssl::pkey_ctx::PkeyCtxRef;
use openssl::rsa::Padding;
use openssl::symm::Cipher;
use openssl::x509::X509Ref;
use zeroize::Zeroizing;

use super::bio::{ReadBio, WriteBio};
use crate::der::{self, Tlv, tag};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{BER_MAX_SEGMENT_NESTING, MAX_RECIPIENTS};

/// Size of the chunks fed to OpenSSL while encrypting.
const CHUNK: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// OIDs
// ---------------------------------------------------------------------------------------------------------------

const OID_ENVELOPED_DATA: &str = "1.2.840.113549.1.7.3";
const OID_AUTH_ENVELOPED_DATA: &str = "1.2.840.113549.1.9.16.1.23";

const OID_AES128_CBC: &str = "2.16.840.1.101.3.4.1.2";
const OID_AES192_CBC: &str = "2.16.840.1.101.3.4.1.22";
const OID_AES256_CBC: &str = "2.16.840.1.101.3.4.1.42";
const OID_AES128_GCM: &str = "2.16.840.1.101.3.4.1.6";
const OID_AES192_GCM: &str = "2.16.840.1.101.3.4.1.26";
const OID_AES256_GCM: &str = "2.16.840.1.101.3.4.1.46";
const OID_AES128_CCM: &str = "2.16.840.1.101.3.4.1.7";
const OID_AES192_CCM: &str = "2.16.840.1.101.3.4.1.27";
const OID_AES256_CCM: &str = "2.16.840.1.101.3.4.1.47";
const OID_CHACHA20_POLY1305: &str = "1.2.840.113549.1.9.16.3.18";
const OID_DES_EDE3_CBC: &str = "1.2.840.113549.3.7";
const OID_RC2_CBC: &str = "1.2.840.113549.3.2";
const OID_DES_CBC: &str = "1.3.14.3.2.7";

const OID_SHA1KDF_STD: &str = "1.3.133.16.840.63.0.2";
const OID_SHA1KDF_COFACTOR: &str = "1.3.133.16.840.63.0.3";

/// Name of a key-management / key-wrap algorithm OID, or the dotted OID itself.
fn key_alg_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.2.840.113549.1.1.7" => "rsaesOaep",
        OID_SHA1KDF_STD => "dhSinglePass-stdDH-sha1kdf-scheme",
        "1.3.132.1.11.0" => "dhSinglePass-stdDH-sha224kdf-scheme",
        "1.3.132.1.11.1" => "dhSinglePass-stdDH-sha256kdf-scheme",
        "1.3.132.1.11.2" => "dhSinglePass-stdDH-sha384kdf-scheme",
        "1.3.132.1.11.3" => "dhSinglePass-stdDH-sha512kdf-scheme",
        OID_SHA1KDF_COFACTOR => "dhSinglePass-cofactorDH-sha1kdf-scheme",
        "1.3.132.1.14.0" => "dhSinglePass-cofactorDH-sha224kdf-scheme",
        "1.3.132.1.14.1" => "dhSinglePass-cofactorDH-sha256kdf-scheme",
        "1.3.132.1.14.2" => "dhSinglePass-cofactorDH-sha384kdf-scheme",
        "1.3.132.1.14.3" => "dhSinglePass-cofactorDH-sha512kdf-scheme",
        "1.2.840.113549.1.9.16.3.19" => "dhSinglePass-stdDH-hkdf-sha256-scheme",
        "1.2.840.113549.1.9.16.3.20" => "dhSinglePass-stdDH-hkdf-sha384-scheme",
        "1.2.840.113549.1.9.16.3.21" => "dhSinglePass-stdDH-hkdf-sha512-scheme",
        "1.2.840.113549.1.9.16.3.5" => "id-alg-ESDH",
        "1.2.840.113549.1.9.16.3.6" => "id-alg-CMS3DESwrap",
        "1.2.840.113549.1.9.16.3.7" => "id-alg-CMSRC2wrap",
        "1.2.840.113549.1.9.16.3.9" => "id-alg-PWRI-KEK",
        "2.16.840.1.101.3.4.1.5" => "id-aes128-wrap",
        "2.16.840.1.101.3.4.1.25" => "id-aes192-wrap",
        "2.16.840.1.101.3.4.1.45" => "id-aes256-wrap",
        "2.16.840.1.101.3.4.1.8" => "id-aes128-wrap-pad",
        "2.16.840.1.101.3.4.1.48" => "id-aes256-wrap-pad",
        _ => return oid.to_string(),
    }
    .to_string()
}

/// What the content-encryption algorithm is, for policy purposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CipherClass {
    /// AES-GCM, AES-CCM, ChaCha20-Poly1305.
    Aead,
    /// AES-CBC (any key size).
    AesCbc,
    /// 3DES-EDE-CBC.
    TripleDes,
    /// RC2 or single DES: refused unless legacy decryption is allowed.
    Legacy,
    /// Anything else.
    Unknown,
}

fn cipher_class(oid: &str) -> CipherClass {
    match oid {
        OID_AES128_GCM
        | OID_AES192_GCM
        | OID_AES256_GCM
        | OID_AES128_CCM
        | OID_AES192_CCM
        | OID_AES256_CCM
        | OID_CHACHA20_POLY1305 => CipherClass::Aead,
        OID_AES128_CBC | OID_AES192_CBC | OID_AES256_CBC => CipherClass::AesCbc,
        OID_DES_EDE3_CBC => CipherClass::TripleDes,
        OID_RC2_CBC | OID_DES_CBC => CipherClass::Legacy,
        _ => CipherClass::Unknown,
    }
}

/// True for content ciphers that are decrypted only as "weak" (3DES, RC2, and DES when legacy decryption is
/// allowed): the report says so (`weak_cipher`).
pub fn is_weak_cipher(oid: &str) -> bool {
    matches!(
        cipher_class(oid),
        CipherClass::TripleDes | CipherClass::Legacy
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------------------

/// A content-encryption algorithm we produce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ContentCipher {
    /// AES-256-GCM in AuthEnvelopedData (the default).
    #[default]
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// AES-128-GCM in AuthEnvelopedData.
    #[serde(rename = "aes-128-gcm")]
    Aes128Gcm,
    /// AES-256-CBC in EnvelopedData (no integrity; for recipients without AEAD support).
    #[serde(rename = "aes-256-cbc")]
    Aes256Cbc,
    /// AES-128-CBC in EnvelopedData (no integrity; for recipients without AEAD support).
    #[serde(rename = "aes-128-cbc")]
    Aes128Cbc,
}

impl ContentCipher {
    /// Every cipher we produce, in our order of preference.
    pub const ALL: [ContentCipher; 4] = [
        ContentCipher::Aes256Gcm,
        ContentCipher::Aes128Gcm,
        ContentCipher::Aes256Cbc,
        ContentCipher::Aes128Cbc,
    ];

    /// OpenSSL-style name, e.g. `aes-256-gcm`.
    pub fn name(self) -> &'static str {
        match self {
            ContentCipher::Aes256Gcm => "aes-256-gcm",
            ContentCipher::Aes128Gcm => "aes-128-gcm",
            ContentCipher::Aes256Cbc => "aes-256-cbc",
            ContentCipher::Aes128Cbc => "aes-128-cbc",
        }
    }

    /// True for the AEAD ciphers (which produce AuthEnvelopedData).
    pub fn is_aead(self) -> bool {
        matches!(self, ContentCipher::Aes256Gcm | ContentCipher::Aes128Gcm)
    }

    /// The algorithm OID, as used both in the message and as an SMIMECapability `capabilityID`.
    pub fn oid(self) -> &'static str {
        match self {
            ContentCipher::Aes256Gcm => OID_AES256_GCM,
            ContentCipher::Aes128Gcm => OID_AES128_GCM,
            ContentCipher::Aes256Cbc => OID_AES256_CBC,
            ContentCipher::Aes128Cbc => OID_AES128_CBC,
        }
    }

    /// The cipher an SMIMECapability OID names, if it is one we produce.
    pub fn from_oid(oid: &str) -> Option<ContentCipher> {
        Self::ALL.into_iter().find(|c| c.oid() == oid)
    }

    /// The first cipher we produce among a recipient's SMIMECapabilities (listed in the recipient's order of
    /// preference). `None` if the list names none of them (e.g. only 3DES/RC2): the caller must then refuse or
    /// apply its policy floor, never fall back to a weak cipher. An empty list should mean the default.
    pub fn from_capabilities<S: AsRef<str>>(capability_oids: &[S]) -> Option<ContentCipher> {
        capability_oids
            .iter()
            .find_map(|o| Self::from_oid(o.as_ref()))
    }

    /// The SMIMECapabilities entries (`SEQUENCE { capabilityID }`, DER, no parameters) we advertise for content
    /// encryption, in our order of preference.
    pub fn capabilities_der() -> Vec<Vec<u8>> {
        Self::ALL
            .iter()
            .map(|c| der::seq(&[&der::oid(c.oid())]))
            .collect()
    }

    /// The first cipher we produce in a DER `SMIMECapabilities` value (`SEQUENCE OF SMIMECapability`, as
    /// carried in a signed attribute), or `None` if it names none. Malformed input is an error.
    pub fn from_capabilities_der(der: &[u8]) -> Result<Option<ContentCipher>> {
        let caps = der::parse_one(der)?;
        if caps.tag != tag::SEQUENCE {
            return Err(Error::bad_input("malformed SMIMECapabilities"));
        }
        let mut oids = Vec::new();
        let mut r = der::Reader::new(caps.value);
        while !r.is_empty() {
            let cap = r.read()?;
            let oid = (cap.tag == tag::SEQUENCE)
                .then(|| {
                    der::Reader::new(cap.value)
                        .read()
                        .ok()
                        .and_then(|o| o.oid())
                })
                .flatten()
                .ok_or_else(|| Error::bad_input("malformed SMIMECapability"))?;
            oids.push(oid);
        }
        Ok(Self::from_capabilities(&oids))
    }

    fn openssl_cipher(self) -> Cipher {
        match self {
            ContentCipher::Aes256Gcm => Cipher::aes_256_gcm(),
            ContentCipher::Aes128Gcm => Cipher::aes_128_gcm(),
            ContentCipher::Aes256Cbc => Cipher::aes_256_cbc(),
            ContentCipher::Aes128Cbc => Cipher::aes_128_cbc(),
        }
    }
}

impl std::fmt::Display for ContentCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ContentCipher {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let l = s.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|c| c.name() == l || c.oid() == l)
            .ok_or_else(|| {
                Error::usage(format!("unknown content cipher `{s}`"))
                    .hint("use one of aes-256-gcm, aes-128-gcm, aes-256-cbc, aes-128-cbc")
            })
    }
}

/// One recipient of an encrypted message.
#[derive(Clone, Copy)]
pub struct Recipient<'a> {
    /// The recipient's certificate (RSA, or EC P-256/P-384).
    pub cert: &'a X509Ref,
    /// Use RSAES-OAEP (SHA-256, MGF1-SHA-256) instead of PKCS#1 v1.5. Only for RSA certificates.
    pub oaep: bool,
}

impl<'a> Recipient<'a> {
    /// A recipient with the default key transport (PKCS#1 v1.5 for RSA, ECDH for EC).
    pub fn new(cert: &'a X509Ref) -> Self {
        Recipient { cert, oaep: false }
    }
    /// A recipient with RSAES-OAEP (SHA-256); use when the recipient advertises it.
    pub fn oaep(cert: &'a X509Ref) -> Self {
        Recipient { cert, oaep: true }
    }
}

/// Which CMS container a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvelopedKind {
    /// EnvelopedData (1.2.840.113549.1.7.3): confidentiality only.
    Enveloped,
    /// AuthEnvelopedData (1.2.840.113549.1.9.16.1.23): authenticated encryption.
    AuthEnveloped,
}

/// The parameters of an AEAD content cipher as the message states them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GcmParams {
    /// Length of the nonce in bytes (12 expected).
    pub nonce_len: usize,
    /// `aes-ICVlen`: the declared tag length (12 when absent, the ASN.1 default; 16 for ChaCha20-Poly1305).
    pub icv_len: usize,
    /// Length of the `mac` field actually present (0 outside AuthEnvelopedData).
    pub mac_len: usize,
}

/// How a RecipientInfo names its recipient.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientId {
    /// issuerAndSerialNumber.
    IssuerSerial {
        /// The issuer's distinguished name, for display (control characters escaped).
        issuer: String,
        /// The issuer Name exactly as encoded in the message (hex in JSON).
        #[serde(serialize_with = "ser_hex")]
        issuer_der: Vec<u8>,
        /// The serial number in upper-case hex (a leading `-` for a negative one).
        serial_hex: String,
    },
    /// subjectKeyIdentifier (ktri, kari rKeyId) or KEK identifier (kekri).
    KeyId(#[serde(serialize_with = "ser_hex")] Vec<u8>),
    /// No identifier (pwri, ori).
    None,
}

fn ser_hex<S: serde::Serializer>(v: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&v.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// One recipient as the message lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RecipientInfoSummary {
    /// `ktri`, `kari`, `kekri`, `pwri` or `ori`.
    pub kind: &'static str,
    /// Who the recipient is.
    pub id: RecipientId,
    /// Key-management algorithm name (e.g. `rsaEncryption`, `rsaesOaep`,
    /// `dhSinglePass-stdDH-sha256kdf-scheme`), or the dotted OID if unknown. For ori, the oriType.
    pub key_alg: String,
    /// For kari: the key-wrap algorithm (e.g. `id-aes256-wrap`).
    pub key_wrap: Option<String>,
}

/// What an enveloped message says about itself, read without any key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EnvelopedInfo {
    /// EnvelopedData or AuthEnvelopedData.
    pub kind: EnvelopedKind,
    /// Dotted OID of the content-encryption algorithm.
    pub content_cipher_oid: String,
    /// Its name (`aes-256-gcm`, `des-ede3-cbc`, `rc2-40-cbc`…), or the OID if unknown.
    pub content_cipher: String,
    /// True if the content cipher is an AEAD (whatever the container).
    pub aead: bool,
    /// AEAD parameters, for AEAD ciphers.
    pub gcm: Option<GcmParams>,
    /// The RecipientInfos; a kari contributes one entry per RecipientEncryptedKey. Parsing stops after
    /// [`MAX_RECIPIENTS`]` + 1` entries, so more than [`MAX_RECIPIENTS`] means "too many".
    pub recipients: Vec<RecipientInfoSummary>,
    /// True if an AuthEnvelopedData carries authAttrs.
    pub has_auth_attrs: bool,
    /// True if the encrypted content is absent (detached), which we cannot decrypt.
    pub detached: bool,
    /// Length of the encrypted content in bytes (segments joined).
    pub encrypted_len: u64,
}

// ---------------------------------------------------------------------------------------------------------------
// Inspection (pure DER walk)
// ---------------------------------------------------------------------------------------------------------------

fn bad(msg: impl Into<String>) -> Error {
    Error::bad_input(msg).hint("the file is not a complete, well-formed S/MIME encrypted message")
}

/// The parsed message: the summary plus the pieces needed to rebuild it without its encrypted content.
struct Parsed<'a> {
    info: EnvelopedInfo,
    content_type_raw: &'a [u8],
    env_children: Vec<Tlv<'a>>,
    eci_index: usize,
    eci_head: [&'a [u8]; 2],
    content: Option<Tlv<'a>>,
}

impl Parsed<'_> {
    /// The ContentInfo with the encryptedContent removed (detached), re-encoded with definite lengths around
    /// the original bytes of every other field.
    fn skeleton(&self) -> Vec<u8> {
        let eci = der::seq(&self.eci_head);
        let parts: Vec<&[u8]> = self
            .env_children
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if i == self.eci_index {
                    eci.as_slice()
                } else {
                    t.raw
                }
            })
            .collect();
        let env = der::seq(&parts);
        der::seq(&[self.content_type_raw, &der::tlv(0xa0, &env)])
    }
}

fn expect<'a>(t: Option<&Tlv<'a>>, tag: u8, what: &str) -> Result<Tlv<'a>> {
    match t {
        Some(t) if t.tag == tag => Ok(*t),
        _ => Err(bad(format!(
            "malformed encrypted message: {what} missing or of the wrong type"
        ))),
    }
}

/// (OID, parameters) of an AlgorithmIdentifier.
fn alg_id<'a>(t: &Tlv<'a>, what: &str) -> Result<(String, Option<Tlv<'a>>)> {
    if t.tag != tag::SEQUENCE {
        return Err(bad(format!(
            "malformed encrypted message: {what} is not an AlgorithmIdentifier"
        )));
    }
    let c = t.children()?;
    let oid = c.first().and_then(|o| o.oid()).ok_or_else(|| {
        bad(format!(
            "malformed encrypted message: {what} has no algorithm OID"
        ))
    })?;
    if c.len() > 2 {
        return Err(bad(format!(
            "malformed encrypted message: {what} has extra fields"
        )));
    }
    Ok((oid, c.get(1).copied()))
}

/// Parses `der` as a ContentInfo holding EnvelopedData or AuthEnvelopedData.
fn parse(input: &[u8]) -> Result<Parsed<'_>> {
    let ci = der::parse_one(input)?;
    if ci.tag != tag::SEQUENCE {
        return Err(bad("not a CMS ContentInfo"));
    }
    let c = ci.children()?;
    let ct = expect(c.first(), tag::OID, "contentType")?;
    let kind = match ct.oid().as_deref() {
        Some(OID_ENVELOPED_DATA) => EnvelopedKind::Enveloped,
        Some(OID_AUTH_ENVELOPED_DATA) => EnvelopedKind::AuthEnveloped,
        Some(other) => {
            return Err(Error::bad_input(format!(
                "not an encrypted message: the CMS content type is {other}, not (auth)enveloped-data"
            ))
            .hint("use verify for signed messages"));
        }
        None => return Err(bad("malformed CMS content type")),
    };
    let explicit = expect(c.get(1), 0xa0, "content")?;
    if c.len() != 2 {
        return Err(bad("malformed ContentInfo: unexpected fields"));
    }
    let inner = explicit.children()?;
    if inner.len() != 1 {
        return Err(bad(
            "malformed ContentInfo: [0] must hold exactly one value",
        ));
    }
    let env = expect(inner.first(), tag::SEQUENCE, "EnvelopedData")?;
    let ec = env.children()?;
    let mut i = 0;
    expect(ec.get(i), tag::INTEGER, "version")?;
    i += 1;
    if ec.get(i).map(|t| t.tag) == Some(0xa0) {
        i += 1; // originatorInfo
    }
    let ris = expect(ec.get(i), tag::SET, "recipientInfos")?;
    i += 1;
    let eci_index = i;
    let eci = expect(ec.get(i), tag::SEQUENCE, "encryptedContentInfo")?;
    i += 1;
    let mut has_auth_attrs = false;
    let mut mac_len = 0usize;
    match kind {
        EnvelopedKind::Enveloped => {
            if ec.get(i).map(|t| t.tag) == Some(0xa1) {
                i += 1; // unprotectedAttrs
            }
        }
        EnvelopedKind::AuthEnveloped => {
            if ec.get(i).map(|t| t.tag) == Some(0xa1) {
                has_auth_attrs = true;
                i += 1;
            }
            let mac = ec
                .get(i)
                .ok_or_else(|| bad("malformed AuthEnvelopedData: the mac is missing"))?;
            if mac.tag != tag::OCTET_STRING && mac.tag != 0x24 {
                return Err(bad(
                    "malformed AuthEnvelopedData: the mac is not an OCTET STRING",
                ));
            }
            mac_len = mac.octets()?.len();
            i += 1;
            if ec.get(i).map(|t| t.tag) == Some(0xa2) {
                i += 1; // unauthAttrs
            }
        }
    }
    if i != ec.len() {
        return Err(bad(
            "malformed encrypted message: unexpected fields after the encrypted content",
        ));
    }

    // RecipientInfos, iterated without collecting every TLV first.
    let mut recipients = Vec::new();
    let mut r = der::Reader::new(ris.value);
    while !r.is_empty() && recipients.len() <= MAX_RECIPIENTS {
        parse_recipient_info(&r.read()?, &mut recipients)?;
    }
    recipients.truncate(MAX_RECIPIENTS + 1);

    // EncryptedContentInfo
    let e = eci.children()?;
    expect(e.first(), tag::OID, "encrypted contentType")?;
    let alg = expect(e.get(1), tag::SEQUENCE, "contentEncryptionAlgorithm")?;
    let content = match e.get(2) {
        None => None,
        Some(t) if t.tag == 0x80 || t.tag == 0xa0 => Some(*t),
        Some(_) => return Err(bad("malformed encryptedContent")),
    };
    if e.len() > 3 {
        return Err(bad("malformed EncryptedContentInfo: unexpected fields"));
    }
    let (cipher_oid, params) = alg_id(&alg, "contentEncryptionAlgorithm")?;
    let class = cipher_class(&cipher_oid);
    let (name, gcm) = describe_cipher(&cipher_oid, params.as_ref(), mac_len)?;
    let encrypted_len = match &content {
        Some(t) => Segments::new(t).try_fold(0u64, |a, s| s.map(|s| a + s.len() as u64))?,
        None => 0,
    };
    let info = EnvelopedInfo {
        kind,
        content_cipher_oid: cipher_oid,
        content_cipher: name,
        aead: class == CipherClass::Aead,
        gcm,
        recipients,
        has_auth_attrs,
        detached: content.is_none(),
        encrypted_len,
    };
    Ok(Parsed {
        info,
        content_type_raw: ct.raw,
        env_children: ec,
        eci_index,
        eci_head: [e[0].raw, e[1].raw],
        content,
    })
}

/// Name and AEAD parameters of a content-encryption algorithm.
fn describe_cipher(
    oid: &str,
    params: Option<&Tlv<'_>>,
    mac_len: usize,
) -> Result<(String, Option<GcmParams>)> {
    let name = match oid {
        OID_AES128_CBC => "aes-128-cbc",
        OID_AES192_CBC => "aes-192-cbc",
        OID_AES256_CBC => "aes-256-cbc",
        OID_AES128_GCM => "aes-128-gcm",
        OID_AES192_GCM => "aes-192-gcm",
        OID_AES256_GCM => "aes-256-gcm",
        OID_AES128_CCM => "aes-128-ccm",
        OID_AES192_CCM => "aes-192-ccm",
        OID_AES256_CCM => "aes-256-ccm",
        OID_CHACHA20_POLY1305 => "chacha20-poly1305",
        OID_DES_EDE3_CBC => "des-ede3-cbc",
        OID_DES_CBC => "des-cbc",
        OID_RC2_CBC => {
            // RC2-CBC-Parameter ::= SEQUENCE { rc2ParameterVersion INTEGER OPTIONAL, iv OCTET STRING }
            let version = params
                .filter(|p| p.tag == tag::SEQUENCE)
                .and_then(|p| p.children().ok())
                .and_then(|c| c.first().and_then(|v| v.as_u64()));
            let bits = match version {
                Some(160) => 40,
                Some(120) => 64,
                Some(58) => 128,
                Some(v) if v >= 256 => v,
                _ => 32,
            };
            return Ok((format!("rc2-{bits}-cbc"), None));
        }
        _ => return Ok((oid.to_string(), None)),
    };
    let gcm = if oid == OID_CHACHA20_POLY1305 {
        let p = params.ok_or_else(|| bad("ChaCha20-Poly1305 parameters are missing"))?;
        Some(GcmParams {
            nonce_len: p.octets()?.len(),
            icv_len: 16,
            mac_len,
        })
    } else if cipher_class(oid) == CipherClass::Aead {
        // GCMParameters / CCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }
        let p = params
            .filter(|p| p.tag == tag::SEQUENCE)
            .ok_or_else(|| bad(format!("{name} parameters are missing or malformed")))?;
        let c = p.children()?;
        let nonce = expect(c.first(), tag::OCTET_STRING, "aes-nonce")?;
        let icv_len = match c.get(1) {
            None => 12,
            Some(t) => t
                .as_u64()
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "{name} parameters: aes-ICVlen is not a small integer"
                    ))
                })?,
        };
        if c.len() > 2 {
            return Err(bad(format!("{name} parameters have extra fields")));
        }
        Some(GcmParams {
            nonce_len: nonce.value.len(),
            icv_len,
            mac_len,
        })
    } else {
        None
    };
    Ok((name.to_string(), gcm))
}

fn parse_issuer_serial(t: &Tlv<'_>) -> Result<RecipientId> {
    let c = t.children()?;
    let issuer = expect(c.first(), tag::SEQUENCE, "issuer")?;
    let serial = expect(c.get(1), tag::INTEGER, "serialNumber")?;
    if c.len() != 2 {
        return Err(bad("malformed IssuerAndSerialNumber"));
    }
    Ok(RecipientId::IssuerSerial {
        issuer: format_name(issuer.raw),
        issuer_der: issuer.raw.to_vec(),
        serial_hex: serial_hex_from_der(serial.value),
    })
}

fn parse_recipient_info(t: &Tlv<'_>, out: &mut Vec<RecipientInfoSummary>) -> Result<()> {
    let c = t.children()?;
    match t.tag {
        tag::SEQUENCE => {
            // KeyTransRecipientInfo ::= SEQUENCE { version, rid, keyEncryptionAlgorithm, encryptedKey }
            expect(c.first(), tag::INTEGER, "ktri version")?;
            let rid = c
                .get(1)
                .ok_or_else(|| bad("malformed KeyTransRecipientInfo"))?;
            let id = match rid.tag {
                tag::SEQUENCE => parse_issuer_serial(rid)?,
                0x80 => RecipientId::KeyId(rid.value.to_vec()),
                _ => return Err(bad("malformed KeyTransRecipientInfo identifier")),
            };
            let (oid, _) = alg_id(
                c.get(2)
                    .ok_or_else(|| bad("malformed KeyTransRecipientInfo"))?,
                "ktri algorithm",
            )?;
            out.push(RecipientInfoSummary {
                kind: "ktri",
                id,
                key_alg: key_alg_name(&oid),
                key_wrap: None,
            });
        }
        0xa1 => {
            // KeyAgreeRecipientInfo ::= SEQUENCE { version, originator [0], ukm [1] OPTIONAL,
            //                                      keyEncryptionAlgorithm, recipientEncryptedKeys }
            expect(c.first(), tag::INTEGER, "kari version")?;
            expect(c.get(1), 0xa0, "kari originator")?;
            let mut i = 2;
            if c.get(i).map(|t| t.tag) == Some(0xa1) {
                i += 1;
            }
            let (oid, params) = alg_id(
                c.get(i)
                    .ok_or_else(|| bad("malformed KeyAgreeRecipientInfo"))?,
                "kari algorithm",
            )?;
            let key_wrap = match params {
                Some(p) if p.tag == tag::SEQUENCE => {
                    Some(key_alg_name(&alg_id(&p, "kari key wrap")?.0))
                }
                _ => None,
            };
            let reks = expect(c.get(i + 1), tag::SEQUENCE, "recipientEncryptedKeys")?;
            let mut r = der::Reader::new(reks.value);
            while !r.is_empty() && out.len() <= MAX_RECIPIENTS {
                let rek = r.read()?;
                let rc = rek.children()?;
                let rid = rc
                    .first()
                    .ok_or_else(|| bad("malformed RecipientEncryptedKey"))?;
                let id = match rid.tag {
                    tag::SEQUENCE => parse_issuer_serial(rid)?,
                    0xa0 => {
                        let k = rid.children()?;
                        RecipientId::KeyId(
                            expect(k.first(), tag::OCTET_STRING, "rKeyId")?
                                .value
                                .to_vec(),
                        )
                    }
                    _ => return Err(bad("malformed RecipientEncryptedKey identifier")),
                };
                out.push(RecipientInfoSummary {
                    kind: "kari",
                    id,
                    key_alg: key_alg_name(&oid),
                    key_wrap: key_wrap.clone(),
                });
            }
        }
        0xa2 => {
            // KEKRecipientInfo ::= SEQUENCE { version, kekid KEKIdentifier, keyEncryptionAlgorithm, encryptedKey }
            let kekid = expect(c.get(1), tag::SEQUENCE, "kekid")?;
            let k = kekid.children()?;
            let id = RecipientId::KeyId(
                expect(k.first(), tag::OCTET_STRING, "keyIdentifier")?
                    .value
                    .to_vec(),
            );
            let (oid, _) = alg_id(
                c.get(2).ok_or_else(|| bad("malformed KEKRecipientInfo"))?,
                "kekri algorithm",
            )?;
            out.push(RecipientInfoSummary {
                kind: "kekri",
                id,
                key_alg: key_alg_name(&oid),
                key_wrap: None,
            });
        }
        0xa3 => {
            // PasswordRecipientInfo ::= SEQUENCE { version, keyDerivationAlgorithm [0] OPTIONAL,
            //                                      keyEncryptionAlgorithm, encryptedKey }
            let i = if c.get(1).map(|t| t.tag) == Some(0xa0) {
                2
            } else {
                1
            };
            let (oid, _) = alg_id(
                c.get(i)
                    .ok_or_else(|| bad("malformed PasswordRecipientInfo"))?,
                "pwri algorithm",
            )?;
            out.push(RecipientInfoSummary {
                kind: "pwri",
                id: RecipientId::None,
                key_alg: key_alg_name(&oid),
                key_wrap: None,
            });
        }
        0xa4 => {
            let oid = c
                .first()
                .and_then(|o| o.oid())
                .ok_or_else(|| bad("malformed OtherRecipientInfo"))?;
            out.push(RecipientInfoSummary {
                kind: "ori",
                id: RecipientId::None,
                key_alg: oid,
                key_wrap: None,
            });
        }
        _ => return Err(bad("unknown RecipientInfo type")),
    }
    Ok(())
}

/// The primitive segments of an encryptedContent ([0] IMPLICIT OCTET STRING, primitive or BER-constructed),
/// walked lazily so that memory stays flat whatever the number of segments.
struct Segments<'a> {
    /// The primitive content itself, for a primitive encryptedContent (taken on the first call).
    single: Option<&'a [u8]>,
    /// Readers over the constructed levels being walked, innermost last.
    stack: Vec<der::Reader<'a>>,
}

impl<'a> Segments<'a> {
    fn new(t: &Tlv<'a>) -> Self {
        if t.constructed() {
            Segments {
                single: None,
                stack: vec![der::Reader::new(t.value)],
            }
        } else {
            Segments {
                single: Some(t.value),
                stack: Vec::new(),
            }
        }
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Result<&'a [u8]>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(v) = self.single.take() {
            return Some(Ok(v));
        }
        loop {
            let r = self.stack.last_mut()?;
            if r.is_empty() {
                self.stack.pop();
                continue;
            }
            let c = match r.read() {
                Ok(c) => c,
                Err(e) => {
                    self.stack.clear();
                    return Some(Err(e));
                }
            };
            match c.tag {
                tag::OCTET_STRING => return Some(Ok(c.value)),
                0x24 if self.stack.len() < BER_MAX_SEGMENT_NESTING => {
                    self.stack.push(der::Reader::new(c.value))
                }
                0x24 => {
                    self.stack.clear();
                    return Some(Err(Error::limit(
                        "the encrypted content is nested too deeply (BER segments)",
                    )));
                }
                _ => {
                    self.stack.clear();
                    return Some(Err(bad("malformed encryptedContent segment")));
                }
            }
        }
    }
}

/// Upper-case hex of an INTEGER's contents: the magnitude, with `-` for negative values.
fn serial_hex_from_der(v: &[u8]) -> String {
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        // Two's complement negative: magnitude = !v + 1.
        let mut m: Vec<u8> = v.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (s, carry) = b.overflowing_add(1);
            *b = s;
            if !carry {
                break;
            }
        }
        format!("-{}", hex_magnitude(&m))
    } else {
        hex_magnitude(v)
    }
}

fn hex_magnitude(v: &[u8]) -> String {
    let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    let s: String = v[start..].iter().map(|b| format!("{b:02X}")).collect();
    if s.is_empty() { "00".into() } else { s }
}

/// Formats a DER Name as `C=.., O=.., CN=..` (in encoded order), escaping control characters.
fn format_name(der_name: &[u8]) -> String {
    fn attr_name(oid: &str) -> String {
        match oid {
            "2.5.4.3" => "CN",
            "2.5.4.4" => "SN",
            "2.5.4.5" => "serialNumber",
            "2.5.4.6" => "C",
            "2.5.4.7" => "L",
            "2.5.4.8" => "ST",
            "2.5.4.10" => "O",
            "2.5.4.11" => "OU",
            "2.5.4.42" => "GN",
            "1.2.840.113549.1.9.1" => "emailAddress",
            "0.9.2342.19200300.100.1.25" => "DC",
            "0.9.2342.19200300.100.1.1" => "UID",
            _ => return oid.to_string(),
        }
        .to_string()
    }
    fn value(t: &Tlv<'_>) -> String {
        let s = match t.tag {
            0x0c | 0x13 | 0x16 | 0x12 | 0x1a => String::from_utf8_lossy(t.value).into_owned(),
            0x14 => t.value.iter().map(|b| char::from(*b)).collect(),
            0x1e => {
                let u: Vec<u16> = t
                    .value
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                    .collect();
                String::from_utf16_lossy(&u)
            }
            _ => t
                .value
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        };
        s.chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect()
    }
    let Ok(name) = der::parse_one(der_name) else {
        return "<malformed name>".into();
    };
    let mut parts = Vec::new();
    let Ok(rdns) = name.children() else {
        return "<malformed name>".into();
    };
    for rdn in rdns {
        let Ok(avas) = rdn.children() else {
            return "<malformed name>".into();
        };
        for ava in avas {
            let Ok(c) = ava.children() else {
                return "<malformed name>".into();
            };
            match (c.first().and_then(|o| o.oid()), c.get(1)) {
                (Some(oid), Some(v)) => parts.push(format!("{}={}", attr_name(&oid), value(v))),
                _ => return "<malformed name>".into(),
            }
        }
    }
    parts.join(", ")
}

/// Reads an enveloped message's structure without any key: container, content cipher and its parameters,
/// recipients. Accepts DER and BER (indefinite lengths, constructed OCTET STRINGs). Uses no OpenSSL.
pub fn inspect(der: &[u8]) -> Result<EnvelopedInfo> {
    Ok(parse(der)?.info)
}

// ---------------------------------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------------------------------

/// Applies the checks OpenSSL 3.0 does not do, before any decryption. Returns warnings to show the user
/// (the result is then not "clean"), or an error if the message must not be decrypted:
///
/// - AuthEnvelopedData must use an AEAD cipher and EnvelopedData must not (T31, EFAIL-style downgrade);
/// - the AEAD tag (`mac`) must be exactly `aes-ICVlen` bytes and `aes-ICVlen` 12..=16 (T30, CVE-2026-34182);
/// - DES is refused unless `allow_legacy` (T36); RC2, 3DES and AES-CBC give warnings;
/// - more than [`MAX_RECIPIENTS`] recipients are refused.
pub fn check(info: &EnvelopedInfo, allow_legacy: bool) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if info.recipients.len() > MAX_RECIPIENTS {
        return Err(Error::limit(format!(
            "the message lists more than {MAX_RECIPIENTS} recipients"
        ))
        .hint("this is not a normal message; it may be an attempt to exhaust resources"));
    }
    let class = cipher_class(&info.content_cipher_oid);
    let name = &info.content_cipher;
    match (info.kind, class) {
        (EnvelopedKind::AuthEnveloped, CipherClass::Aead) => {
            if !matches!(
                info.content_cipher_oid.as_str(),
                OID_AES128_GCM | OID_AES192_GCM | OID_AES256_GCM
            ) {
                // OpenSSL 3.0's CMS supports no other AEAD (AES-CCM, ChaCha20-Poly1305).
                return Err(Error::unsupported(format!(
                    "cannot decrypt: unsupported content cipher {name}"
                ))
                .hint("ask the sender to use AES-GCM"));
            }
            let p = info.gcm.ok_or_else(|| bad("AEAD parameters are missing"))?;
            if !(12..=16).contains(&p.icv_len) {
                return Err(Error::bad_input(format!(
                    "refusing to decrypt: the message declares a {}-byte authentication tag; at least 12 bytes are required",
                    p.icv_len
                ))
                .hint("the message was probably tampered with; ask the sender to send it again"));
            }
            if p.mac_len != p.icv_len {
                return Err(Error::bad_input(format!(
                    "refusing to decrypt: the authentication tag is {} bytes but the message declares {}",
                    p.mac_len, p.icv_len
                ))
                .hint("the message was probably tampered with (truncated tag); ask the sender to send it again"));
            }
            if p.nonce_len == 0 {
                return Err(bad(format!("{name}: empty nonce")));
            }
            if info.has_auth_attrs {
                // OpenSSL 3.0 decodes authAttrs under the wrong tag ([2]) and never feeds them to the AEAD as
                // AAD, so it could not authenticate them (T37). Refuse rather than show unauthenticated attributes.
                return Err(Error::unsupported(
                    "cannot decrypt: the message carries authenticated attributes, which this OpenSSL cannot verify",
                ));
            }
        }
        (EnvelopedKind::AuthEnveloped, _) => {
            return Err(Error::bad_input(format!(
                "refusing to decrypt: authenticated-enveloped data carries the non-authenticating cipher {name}"
            ))
            .hint("the message was probably modified to defeat its integrity protection (EFAIL-style downgrade)"));
        }
        (EnvelopedKind::Enveloped, CipherClass::Aead) => {
            return Err(Error::bad_input(format!(
                "refusing to decrypt: enveloped data carries the AEAD cipher {name} without an authentication tag"
            ))
            .hint("AEAD ciphers are only valid in authenticated-enveloped data; the message is malformed or tampered with"));
        }
        (EnvelopedKind::Enveloped, CipherClass::AesCbc) => {
            warnings.push(
                "confidentiality only, no integrity protection: the content may have been modified in transit"
                    .to_string(),
            );
        }
        (EnvelopedKind::Enveloped, CipherClass::TripleDes) => {
            warnings.push("weak cipher (3DES), no integrity".to_string());
        }
        (EnvelopedKind::Enveloped, CipherClass::Legacy) => {
            // Issue #5: RC2 from old senders decrypts with a warning, like 3DES (old mail stays readable);
            // single DES, which nothing legitimate has used this century, needs the explicit flag.
            let rc2 = name.to_ascii_lowercase().contains("rc2");
            if !allow_legacy && !rc2 {
                return Err(Error::unsupported(format!(
                    "refusing to decrypt: the message uses the insecure legacy cipher {name}"
                ))
                .hint("for archived mail you trust, allow legacy decryption explicitly (--allow-legacy-decrypt)"));
            }
            warnings.push(format!("insecure legacy cipher ({name}), no integrity"));
        }
        (EnvelopedKind::Enveloped, CipherClass::Unknown) => {
            return Err(Error::unsupported(format!(
                "unsupported content cipher {name}"
            )));
        }
    }
    if info.recipients.iter().any(|r| {
        r.key_alg == key_alg_name(OID_SHA1KDF_STD)
            || r.key_alg == key_alg_name(OID_SHA1KDF_COFACTOR)
    }) {
        warnings.push("key agreement uses the legacy SHA-1 KDF".to_string());
    }
    Ok(warnings)
}

// ---------------------------------------------------------------------------------------------------------------
// Safe wrappers of the FFI declarations in `ossl::sys`
// ---------------------------------------------------------------------------------------------------------------

use super::sys;
use super::{cvt, cvt_p};

/// Empties OpenSSL's thread-local error queue, returning what it held.
fn take_errors() -> ErrorStack {
    ErrorStack::get()
}

/// `CMS_encrypt(NULL, NULL, cipher, PARTIAL|STREAM|BINARY)`: an (Auth)EnvelopedData with no recipients yet.
fn cms_encrypt_partial(cipher: Cipher) -> Result<CmsContentInfo> {
    let flags = openssl_sys::CMS_PARTIAL | openssl_sys::CMS_STREAM | openssl_sys::CMS_BINARY;
    // SAFETY: NULL certs and NULL data are allowed with CMS_PARTIAL; the cipher pointer is a static EVP_CIPHER.
    // The returned pointer is owned and handed to CmsContentInfo, which frees it.
    let p = unsafe {
        openssl_sys::CMS_encrypt(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            cipher.as_ptr(),
            flags,
        )
    };
    let p = cvt_p(p).map_err(|e| Error::crypto("cannot start the encrypted message", e))?;
    // SAFETY: p is a valid, owned CMS_ContentInfo.
    Ok(unsafe { CmsContentInfo::from_ptr(p) })
}

/// `CMS_add1_recipient_cert(.., CMS_KEY_PARAM)`, returning the recipient's key context for parameters.
/// The context borrows `cms`.
fn cms_add_recipient<'c>(
    cms: &'c mut CmsContentInfo,
    cert: &X509Ref,
) -> Result<&'c mut PkeyCtxRef<Public>> {
    // SAFETY: both pointers are valid; the function up-references the certificate (add1) and does not take
    // ownership. The RecipientInfo is owned by cms.
    let ri = unsafe {
        sys::CMS_add1_recipient_cert(cms.as_ptr(), cert.as_ptr(), openssl_sys::CMS_KEY_PARAM)
    };
    if ri.is_null() {
        return Err(Error::crypto(
            format!("cannot add the recipient {}", cert_subject(cert)),
            take_errors(),
        ));
    }
    // SAFETY: ri is a RecipientInfo owned by cms; get0 returns a borrowed pointer (or NULL).
    let ctx = unsafe { sys::CMS_RecipientInfo_get0_pkey_ctx(ri) };
    let ctx = cvt_p(ctx).map_err(|e| Error::crypto("the recipient has no key context", e))?;
    // SAFETY: ctx is a valid EVP_PKEY_CTX owned by the RecipientInfo, which lives as long as cms; the returned
    // reference borrows cms mutably, so it cannot outlive it or alias another use of cms.
    Ok(unsafe { PkeyCtxRef::from_ptr_mut(ctx) })
}

/// `EVP_PKEY_CTX_set_ecdh_kdf_md(ctx, sha256)`.
fn set_ecdh_kdf_sha256(ctx: &mut PkeyCtxRef<Public>) -> Result<()> {
    // SAFETY: ctx is a valid ECDH derive context; the digest is a static EVP_MD.
    let r = unsafe { sys::EVP_PKEY_CTX_set_ecdh_kdf_md(ctx.as_ptr(), Md::sha256().as_ptr()) };
    cvt(r).map_err(|e| Error::crypto("cannot select the SHA-256 KDF for ECDH", e))?;
    Ok(())
}

/// The BIO chain `BIO_new_CMS` stacks on top of our output BIO; pops and frees it down to (not including) `base`.
struct CmsStream {
    top: *mut openssl_sys::BIO,
    base: *mut openssl_sys::BIO,
}

impl CmsStream {
    /// `BIO_new_CMS(out, cms)`: a BIO into which the content is written; the BER encoding flows into `out`.
    fn new(cms: &mut CmsContentInfo, out: &WriteBio<'_>) -> Result<Self> {
        // SAFETY: both pointers are valid; the chain references cms, which outlives this struct at every call site
        // (the struct is dropped before cms).
        let top = unsafe { sys::BIO_new_CMS(out.as_ptr(), cms.as_ptr()) };
        let top = cvt_p(top).map_err(|e| Error::crypto("cannot start encrypting", e))?;
        Ok(CmsStream {
            top,
            base: out.as_ptr(),
        })
    }

    /// Writes all of `data`; false on failure.
    fn write_all(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let n = data.len().min(1 << 20);
            // SAFETY: top is a live BIO chain; data has n readable bytes.
            let w = unsafe {
                openssl_sys::BIO_write(
                    self.top,
                    data.as_ptr() as *const libc::c_void,
                    n as libc::c_int,
                )
            };
            if w <= 0 {
                return false;
            }
            data = &data[w as usize..];
        }
        true
    }

    /// `BIO_flush`: finishes the encryption and writes the trailing structure (tag, end-of-contents).
    fn finish(&mut self) -> bool {
        // SAFETY: top is a live BIO chain.
        unsafe {
            openssl_sys::BIO_ctrl(
                self.top,
                openssl_sys::BIO_CTRL_FLUSH,
                0,
                std::ptr::null_mut(),
            ) > 0
        }
    }
}

impl Drop for CmsStream {
    fn drop(&mut self) {
        let mut b = self.top;
        // SAFETY: the chain above base was created by BIO_new_CMS and is ours to free, one BIO at a time.
        unsafe {
            while !b.is_null() && b != self.base {
                let next = sys::BIO_pop(b);
                sys::BIO_free(b);
                b = next;
            }
        }
    }
}

/// `CMS_decrypt(cms, key, cert, dcont, out, BINARY)`. True on success.
fn cms_decrypt(
    cms: &mut CmsContentInfo,
    key: &PKeyRef<Private>,
    cert: &X509Ref,
    dcont: &ReadBio<'_>,
    out: &WriteBio<'_>,
) -> bool {
    // SAFETY: all pointers are valid for the call; CMS_decrypt borrows them and takes no ownership.
    unsafe {
        openssl_sys::CMS_decrypt(
            cms.as_ptr(),
            key.as_ptr(),
            cert.as_ptr(),
            dcont.as_ptr(),
            out.as_ptr(),
            openssl_sys::CMS_BINARY,
        ) > 0
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Encryption
// ---------------------------------------------------------------------------------------------------------------

/// The subject of a certificate, for messages.
fn cert_subject(cert: &X509Ref) -> String {
    match cert.subject_name().to_der() {
        Ok(d) => format_name(&d),
        Err(_) => {
            let _ = take_errors();
            "<unreadable subject>".into()
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RecipientKey {
    Rsa,
    Ec,
}

fn recipient_key(cert: &X509Ref) -> Result<RecipientKey> {
    let pk = cert.public_key().map_err(|e| {
        Error::unusable(format!(
            "cannot read the public key of {}",
            cert_subject(cert)
        ))
        .detail(e)
    })?;
    match pk.id() {
        Id::RSA => Ok(RecipientKey::Rsa),
        Id::EC => {
            let curve = pk.ec_key().ok().and_then(|k| k.group().curve_name());
            let _ = take_errors();
            match curve {
                Some(Nid::X9_62_PRIME256V1) | Some(Nid::SECP384R1) => Ok(RecipientKey::Ec),
                _ => Err(Error::unsupported(format!(
                    "cannot encrypt to {}: its EC key is not on P-256 or P-384",
                    cert_subject(cert)
                ))
                .hint("ask the recipient for an RSA or EC P-256/P-384 certificate")),
            }
        }
        _ => Err(Error::unsupported(format!(
            "cannot encrypt to {}: its key type is neither RSA nor EC P-256/P-384",
            cert_subject(cert)
        ))
        .hint("ask the recipient for an RSA or EC P-256/P-384 certificate")),
    }
}

/// Encrypts `content` to `recipients`, writing a BER-encoded CMS ContentInfo (indefinite lengths, chunked
/// encryptedContent) to `out` with constant memory.
///
/// AEAD ciphers give AuthEnvelopedData (12-byte nonce, 16-byte tag), CBC ciphers EnvelopedData. Recipients are
/// identified by issuer and serial number. RSA recipients use PKCS#1 v1.5, or RSAES-OAEP with SHA-256 and
/// MGF1-SHA-256 if [`Recipient::oaep`]; EC P-256/P-384 recipients use ephemeral-static ECDH with the
/// SHA-256 X9.63 KDF and the AES key wrap matching the content key size. Other key types are refused.
/// `out` receives many small writes (OpenSSL's blocks of 4 KiB and their headers): give it a buffered writer.
/// On error, whatever was written to `out` is garbage and must be discarded.
pub fn encrypt(
    recipients: &[Recipient<'_>],
    cipher: ContentCipher,
    content: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<()> {
    encrypt_with(recipients, cipher, out, |stream| {
        let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
        loop {
            let n = match content.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!("cannot read the content to encrypt: {e}"),
                    ));
                }
            };
            if !stream.write_all(&buf[..n]) {
                return Err(Error::crypto("encryption failed", take_errors()));
            }
        }
    })
}

/// [`encrypt`] with the content written by `feed` into the writer it is given, which hands each write to
/// OpenSSL as it is: no copy of the plaintext is made.
pub fn encrypt_writer(
    recipients: &[Recipient<'_>],
    cipher: ContentCipher,
    out: &mut dyn Write,
    feed: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    encrypt_with(recipients, cipher, out, |stream| {
        let mut w = PlainWriter {
            stream,
            failed: false,
        };
        let r = feed(&mut w);
        if w.failed {
            return Err(Error::crypto("encryption failed", take_errors()));
        }
        r
    })
}

/// The content side of a [`CmsStream`] as a writer (see [`encrypt_writer`]).
struct PlainWriter<'s> {
    stream: &'s mut CmsStream,
    failed: bool,
}

impl Write for PlainWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.stream.write_all(data) {
            self.failed = true;
            return Err(io::Error::other("encryption failed"));
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sets up the CMS structure and its recipients, streams the content with `feed` and finishes the structure.
fn encrypt_with(
    recipients: &[Recipient<'_>],
    cipher: ContentCipher,
    out: &mut dyn Write,
    feed: impl FnOnce(&mut CmsStream) -> Result<()>,
) -> Result<()> {
    if recipients.is_empty() {
        return Err(Error::usage("no recipients to encrypt to"));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(Error::limit(format!(
            "more than {MAX_RECIPIENTS} recipients"
        )));
    }
    let kinds = recipients
        .iter()
        .map(|r| recipient_key(r.cert))
        .collect::<Result<Vec<_>>>()?;
    for (r, k) in recipients.iter().zip(&kinds) {
        if r.oaep && *k != RecipientKey::Rsa {
            return Err(Error::usage(format!(
                "RSA-OAEP was requested for {}, whose key is not RSA",
                cert_subject(r.cert)
            )));
        }
    }
    let _ = take_errors();
    let mut cms = cms_encrypt_partial(cipher.openssl_cipher())?;
    for (r, k) in recipients.iter().zip(&kinds) {
        let ctx = cms_add_recipient(&mut cms, r.cert)?;
        let set = match k {
            RecipientKey::Rsa if r.oaep => ctx
                .set_rsa_padding(Padding::PKCS1_OAEP)
                .and_then(|_| ctx.set_rsa_oaep_md(Md::sha256()))
                .and_then(|_| ctx.set_rsa_mgf1_md(Md::sha256()))
                .map_err(|e| Error::crypto("cannot set up RSA-OAEP", e)),
            RecipientKey::Rsa => Ok(()),
            RecipientKey::Ec => set_ecdh_kdf_sha256(ctx),
        };
        set?;
    }

    let result = {
        let mut out_bio = WriteBio::new(out)?;
        let r = stream_encrypt(&mut cms, &out_bio, feed);
        let io_err = out_bio.take_error();
        match (r, io_err) {
            (_, Some(e)) => Err(Error::new(
                ErrorKind::Io,
                format!("cannot write the encrypted message: {e}"),
            )),
            (r, None) => r,
        }
    };
    let _ = take_errors();
    result?;
    out.flush().map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot write the encrypted message: {e}"),
        )
    })
}

fn stream_encrypt(
    cms: &mut CmsContentInfo,
    out_bio: &WriteBio<'_>,
    feed: impl FnOnce(&mut CmsStream) -> Result<()>,
) -> Result<()> {
    let mut stream = CmsStream::new(cms, out_bio)?;
    feed(&mut stream)?;
    if !stream.finish() {
        return Err(Error::crypto(
            "cannot finish the encrypted message",
            take_errors(),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Decryption
// ---------------------------------------------------------------------------------------------------------------

/// A reader over the encrypted content's segments, without copying them.
struct SegmentReader<'a> {
    segs: Segments<'a>,
    cur: &'a [u8],
}

impl Read for SegmentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.cur.is_empty() {
                match self.segs.next() {
                    None => break,
                    Some(Ok(s)) => self.cur = s,
                    // Already checked by parse(); kept as an I/O error for completeness.
                    Some(Err(e)) => return Err(io::Error::other(e.to_string())),
                }
                continue;
            }
            let k = self.cur.len().min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&self.cur[..k]);
            n += k;
            self.cur = &self.cur[k..];
        }
        Ok(n)
    }
}

/// A writer into a pre-sized buffer that never reallocates (so no unwiped copy of plaintext is left behind).
struct FixedBuf<'a>(&'a mut Vec<u8>);

impl Write for FixedBuf<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.0.len() + data.len() > self.0.capacity() {
            return Err(io::Error::other("plaintext longer than the ciphertext"));
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Does the RecipientId name this certificate?
fn id_matches(id: &RecipientId, cert: &X509Ref, issuer_der: &[u8], serial_hex: &str) -> bool {
    match id {
        RecipientId::IssuerSerial {
            issuer,
            issuer_der: d,
            serial_hex: s,
        } => s == serial_hex && (d.as_slice() == issuer_der || *issuer == format_name(issuer_der)),
        RecipientId::KeyId(k) => cert
            .subject_key_id()
            .is_some_and(|ski| ski.as_slice() == k.as_slice()),
        RecipientId::None => false,
    }
}

fn cert_serial_hex(cert: &X509Ref) -> Result<String> {
    let bn = cert.serial_number().to_bn()?;
    let mag = hex_magnitude(&bn.to_vec());
    Ok(if bn.is_negative() {
        format!("-{mag}")
    } else {
        mag
    })
}

/// The single failure message for content decryption, whatever the cause (bad tag, padding, corrupted
/// encrypted key): no oracle (T35).
fn decryption_failed(info: &EnvelopedInfo) -> Error {
    let msg = if info.aead {
        "decryption failed: the message was modified or damaged (authentication tag mismatch)"
    } else {
        "decryption failed: the message was modified or damaged"
    };
    Error::bad_input(msg).hint("nothing was decrypted; ask the sender to send the message again")
}

/// Decrypts `input` (a DER/BER ContentInfo; may be a memory map) with `key` and its certificate `cert`, writing
/// the plaintext to `out` as it is decrypted, with flat memory (the input is never copied or fully decoded).
///
/// **Contract: on `Err`, everything written to `out` is unauthenticated or garbage and MUST be discarded** —
/// write to a temporary file and rename it into place only on `Ok`. Use [`decrypt`] to get the plaintext only
/// after success. [`check`] runs first (legacy ciphers refused); warnings are returned by
/// [`decrypt_streaming_with`].
pub fn decrypt_streaming(
    input: &[u8],
    key: &PKeyRef<Private>,
    cert: &X509Ref,
    out: &mut dyn Write,
) -> Result<()> {
    decrypt_streaming_with(input, key, cert, false, out).map(|_| ())
}

/// [`decrypt_streaming`] with the legacy policy explicit: `allow_legacy` lets single DES through (archives).
/// Returns the warnings of [`check`]. Same contract: on `Err`, discard everything written to `out`.
pub fn decrypt_streaming_with(
    input: &[u8],
    key: &PKeyRef<Private>,
    cert: &X509Ref,
    allow_legacy: bool,
    out: &mut dyn Write,
) -> Result<Vec<String>> {
    decrypt_parsed(&parse(input)?, key, cert, allow_legacy, out)
}

fn decrypt_parsed(
    parsed: &Parsed<'_>,
    key: &PKeyRef<Private>,
    cert: &X509Ref,
    allow_legacy: bool,
    out: &mut dyn Write,
) -> Result<Vec<String>> {
    let info = &parsed.info;
    let warnings = check(info, allow_legacy)?;
    let content = parsed.content.as_ref().ok_or_else(|| {
        Error::bad_input(
            "the message has no encrypted content (detached); it cannot be decrypted on its own",
        )
    })?;
    if cipher_class(&info.content_cipher_oid) == CipherClass::Legacy
        && !crate::ossl::provider::ensure_legacy()
    {
        return Err(Error::unsupported(format!(
            "cannot decrypt {}: OpenSSL's legacy provider is not available",
            info.content_cipher
        ))
        .hint("install OpenSSL's legacy provider (ossl-modules/legacy.so) to read archived mail"));
    }

    let _ = take_errors();
    let pubkey = cert
        .public_key()
        .map_err(|e| Error::unusable("cannot read the certificate's public key").detail(e))?;
    if !pubkey.public_eq(key) {
        let _ = take_errors();
        return Err(Error::usage(format!(
            "the private key does not belong to the certificate {}",
            cert_subject(cert)
        ))
        .hint("check that the key and the certificate come from the same digital ID"));
    }
    let issuer_der = cert.issuer_name().to_der()?;
    let serial_hex = cert_serial_hex(cert)?;
    if !info
        .recipients
        .iter()
        .any(|r| id_matches(&r.id, cert, &issuer_der, &serial_hex))
    {
        return Err(not_encrypted_to(cert));
    }

    let mut cms = CmsContentInfo::from_der(&parsed.skeleton())
        .map_err(|e| bad("OpenSSL cannot read the message").detail(e))?;
    let mut reader = SegmentReader {
        segs: Segments::new(content),
        cur: &[],
    };
    let mut dcont = ReadBio::unbuffered(&mut reader)?;
    let mut out_bio = WriteBio::new(out)?;
    let ok = cms_decrypt(&mut cms, key, cert, &dcont, &out_bio);
    let errors = take_errors();
    if let Some(e) = out_bio.take_error() {
        return Err(Error::new(
            ErrorKind::Io,
            format!("cannot write the decrypted content: {e}"),
        ));
    }
    if let Some(e) = dcont.take_error() {
        return Err(Error::new(
            ErrorKind::Io,
            format!("cannot read the encrypted content: {e}"),
        ));
    }
    if !ok {
        if errors
            .errors()
            .iter()
            .any(|e| e.reason() == Some("no matching recipient"))
        {
            return Err(not_encrypted_to(cert));
        }
        return Err(decryption_failed(info));
    }
    Ok(warnings)
}

fn not_encrypted_to(cert: &X509Ref) -> Error {
    Error::not_found(format!(
        "this message is not encrypted to {}",
        cert_subject(cert)
    ))
    .hint("try another of your digital IDs; `inspect` lists the message's recipients")
}

/// Decrypts `der` with `key` and its certificate `cert` and returns the plaintext — only if OpenSSL reported
/// success (authentication tag verified for AEAD). On failure nothing is returned and the partial plaintext is
/// wiped. [`check`] runs first with legacy ciphers refused; see [`decrypt_with`] for warnings and legacy.
///
/// Errors: [`ErrorKind::NotFound`] "this message is not encrypted to …" when no RecipientInfo names `cert`;
/// one [`ErrorKind::BadInput`] "decryption failed: …" for every content-decryption failure.
pub fn decrypt(der: &[u8], key: &PKeyRef<Private>, cert: &X509Ref) -> Result<Zeroizing<Vec<u8>>> {
    decrypt_with(der, key, cert, false).map(|(p, _)| p)
}

/// [`decrypt`] with the legacy policy explicit; also returns the warnings of [`check`].
pub fn decrypt_with(
    der: &[u8],
    key: &PKeyRef<Private>,
    cert: &X509Ref,
    allow_legacy: bool,
) -> Result<(Zeroizing<Vec<u8>>, Vec<String>)> {
    let parsed = parse(der)?;
    // The plaintext is never longer than the ciphertext (which is within the input), so this buffer never
    // reallocates and leaves no unwiped copy behind.
    let cap = usize::try_from(parsed.info.encrypted_len)
        .map_err(|_| Error::limit("message too large"))?;
    let mut plain = Zeroizing::new(Vec::with_capacity(cap.min(der.len())));
    let warnings = decrypt_parsed(&parsed, key, cert, allow_legacy, &mut FixedBuf(&mut plain))?;
    Ok((plain, warnings))
}

/// Decrypts like [`decrypt`] and writes the plaintext to `out` only after decryption succeeded.
/// Returns the warnings of [`check`].
pub fn decrypt_to(
    der: &[u8],
    key: &PKeyRef<Private>,
    cert: &X509Ref,
    out: &mut dyn Write,
) -> Result<Vec<String>> {
    let (plain, warnings) = decrypt_with(der, key, cert, false)?;
    out.write_all(&plain).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot write the decrypted content: {e}"),
        )
    })?;
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::SubjectKeyIdentifier;
    use openssl::x509::{X509, X509NameBuilder};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A throwaway identity: key, self-signed certificate, and both as PEM files in a temp dir.
    struct Ident {
        cn: String,
        key: PKey<Private>,
        cert: X509,
        _dir: tempfile::TempDir,
        key_pem: PathBuf,
        cert_pem: PathBuf,
    }

    fn make_id(cn: &str, key: PKey<Private>) -> Ident {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("O", "smimekit tests").unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
        let md = if key.id() == Id::ED25519 {
            MessageDigest::null()
        } else {
            MessageDigest::sha256()
        };
        b.sign(&key, md).unwrap();
        let cert = b.build();
        let dir = tempfile::tempdir().unwrap();
        let key_pem = dir.path().join("key.pem");
        let cert_pem = dir.path().join("cert.pem");
        std::fs::write(&key_pem, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        std::fs::write(&cert_pem, cert.to_pem().unwrap()).unwrap();
        Ident {
            cn: cn.to_string(),
            key,
            cert,
            _dir: dir,
            key_pem,
            cert_pem,
        }
    }

    fn rsa_id(cn: &str) -> Ident {
        make_id(cn, PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap())
    }

    fn ec_id(cn: &str, nid: Nid) -> Ident {
        let g = EcGroup::from_curve_name(nid).unwrap();
        make_id(cn, PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap())
    }

    fn content(n: usize) -> Vec<u8> {
        let mut v = b"Content-Type: text/plain\r\n\r\nHello Bob,\r\n".to_vec();
        let mut r = vec![0u8; n];
        openssl::rand::rand_bytes(&mut r).unwrap();
        v.extend(r);
        v
    }

    fn enc(recips: &[Recipient<'_>], cipher: ContentCipher, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encrypt(recips, cipher, &mut &data[..], &mut out).unwrap();
        out
    }

    /// Runs the openssl CLI; returns (success, stdout, stderr).
    fn cli(args: &[&str]) -> (bool, Vec<u8>, String) {
        let o = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl CLI");
        (
            o.status.success(),
            o.stdout,
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn p(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    fn cli_decrypt(id: &Ident, der: &[u8]) -> Option<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let inp = dir.path().join("in.der");
        let outp = dir.path().join("out.bin");
        std::fs::write(&inp, der).unwrap();
        let (ok, _, err) = cli(&[
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            p(&inp),
            "-recip",
            p(&id.cert_pem),
            "-inkey",
            p(&id.key_pem),
            "-out",
            p(&outp),
        ]);
        if !ok {
            eprintln!("openssl cms -decrypt: {err}");
            return None;
        }
        Some(std::fs::read(&outp).unwrap())
    }

    /// `openssl cms -encrypt` with extra options (cipher, -keyopt…) placed before the recipient.
    /// `openssl cms -encrypt -outform DER` with extra options (cipher, -keyid, -stream…).
    fn cli_encrypt(id: &Ident, opts: &[&str], data: &[u8]) -> Vec<u8> {
        cli_encrypt_keyopt(id, opts, &[], data)
    }

    /// Same, with `-keyopt`s for the recipient (they must follow its `-recip`).
    fn cli_encrypt_keyopt(id: &Ident, opts: &[&str], keyopts: &[&str], data: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let inp = dir.path().join("in.bin");
        let outp = dir.path().join("out.der");
        std::fs::write(&inp, data).unwrap();
        let mut args = vec![
            "cms",
            "-encrypt",
            "-binary",
            "-outform",
            "DER",
            "-in",
            p(&inp),
            "-out",
            p(&outp),
        ];
        args.extend_from_slice(opts);
        args.extend(["-recip", p(&id.cert_pem)]);
        for k in keyopts {
            args.extend(["-keyopt", k]);
        }
        let (ok, _, err) = cli(&args);
        assert!(ok, "openssl cms -encrypt {opts:?} {keyopts:?}: {err}");
        std::fs::read(&outp).unwrap()
    }

    /// Re-encodes a message with some EnvelopedData fields replaced (`f` gets the raw fields, in order).
    fn rebuild(der: &[u8], ct_oid: Option<&str>, f: impl FnOnce(&mut Vec<Vec<u8>>)) -> Vec<u8> {
        let parsed = parse(der).unwrap();
        let mut parts: Vec<Vec<u8>> = parsed.env_children.iter().map(|t| t.raw.to_vec()).collect();
        f(&mut parts);
        let refs: Vec<&[u8]> = parts.iter().map(|v| v.as_slice()).collect();
        let ct = match ct_oid {
            Some(o) => der::oid(o),
            None => parsed.content_type_raw.to_vec(),
        };
        der::seq(&[&ct, &der::tlv(0xa0, &der::seq(&refs))])
    }

    fn segments<'a>(t: &Tlv<'a>) -> Result<Vec<&'a [u8]>> {
        Segments::new(t).collect()
    }

    /// Flips one byte in the middle of the encrypted content.
    fn flip_content_byte(der: &[u8]) -> Vec<u8> {
        let parsed = parse(der).unwrap();
        let segs = segments(parsed.content.as_ref().unwrap()).unwrap();
        let s = segs[segs.len() / 2];
        let off = s.as_ptr() as usize - der.as_ptr() as usize + s.len() / 2;
        let mut v = der.to_vec();
        v[off] ^= 0x01;
        v
    }

    #[test]
    fn cipher_names_and_capabilities() {
        for c in ContentCipher::ALL {
            assert_eq!(ContentCipher::from_oid(c.oid()), Some(c));
            assert_eq!(c.name().parse::<ContentCipher>().unwrap(), c);
        }
        assert!(ContentCipher::Aes256Gcm.is_aead() && !ContentCipher::Aes128Cbc.is_aead());
        assert_eq!(
            ContentCipher::from_capabilities(&[OID_DES_EDE3_CBC, OID_AES128_CBC]),
            Some(ContentCipher::Aes128Cbc)
        );
        assert_eq!(
            ContentCipher::from_capabilities(&[OID_DES_EDE3_CBC, OID_RC2_CBC]),
            None
        );
        let caps = ContentCipher::capabilities_der();
        let t = der::parse_one(&caps[0]).unwrap();
        assert_eq!(t.children().unwrap()[0].oid().unwrap(), OID_AES256_GCM);
        // SMIMECapabilities as OpenSSL's defaults write them (3DES, RC2 with a parameter) + AES-128-CBC.
        let rc2 = der::seq(&[&der::oid(OID_RC2_CBC), &der::uint(128)]);
        let list = der::seq(&[
            &der::seq(&[&der::oid(OID_DES_EDE3_CBC)]),
            &rc2,
            &der::seq(&[&der::oid(OID_AES128_CBC)]),
        ]);
        assert_eq!(
            ContentCipher::from_capabilities_der(&list).unwrap(),
            Some(ContentCipher::Aes128Cbc)
        );
        let weak = der::seq(&[&der::seq(&[&der::oid(OID_DES_EDE3_CBC)]), &rc2]);
        assert_eq!(ContentCipher::from_capabilities_der(&weak).unwrap(), None);
        assert!(ContentCipher::from_capabilities_der(&[0x30, 0x02, 0x05, 0x00]).is_err());
        let json = serde_json::to_string(&ContentCipher::Aes256Gcm).unwrap();
        assert_eq!(json, "\"aes-256-gcm\"");
    }

    #[test]
    fn round_trip_every_cipher_rsa_ec_oaep_with_cli() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let rsa = rsa_id("RSA Bob");
        let ec = ec_id("EC Carol", Nid::X9_62_PRIME256V1);
        let data = content(70_000);
        for cipher in ContentCipher::ALL {
            for (id, oaep) in [(&rsa, false), (&rsa, true), (&ec, false)] {
                let r = Recipient {
                    cert: &id.cert,
                    oaep,
                };
                let m = enc(&[r], cipher, &data);
                let info = inspect(&m).unwrap();
                assert_eq!(info.content_cipher, cipher.name());
                assert_eq!(info.content_cipher_oid, cipher.oid());
                assert_eq!(info.aead, cipher.is_aead());
                if cipher.is_aead() {
                    assert_eq!(info.kind, EnvelopedKind::AuthEnveloped);
                    assert_eq!(
                        info.gcm,
                        Some(GcmParams {
                            nonce_len: 12,
                            icv_len: 16,
                            mac_len: 16
                        })
                    );
                } else {
                    assert_eq!(info.kind, EnvelopedKind::Enveloped);
                    assert_eq!(info.gcm, None);
                }
                assert_eq!(info.recipients.len(), 1);
                let ri = &info.recipients[0];
                let expect_alg = match (id.key.id(), oaep) {
                    (Id::RSA, false) => "rsaEncryption",
                    (Id::RSA, true) => "rsaesOaep",
                    _ => "dhSinglePass-stdDH-sha256kdf-scheme",
                };
                assert_eq!(ri.key_alg, expect_alg, "{cipher} oaep={oaep}");
                assert_eq!(
                    ri.kind,
                    if id.key.id() == Id::RSA {
                        "ktri"
                    } else {
                        "kari"
                    }
                );
                if ri.kind == "kari" {
                    let wrap = if cipher.name().contains("256") {
                        "id-aes256-wrap"
                    } else {
                        "id-aes128-wrap"
                    };
                    assert_eq!(ri.key_wrap.as_deref(), Some(wrap));
                }
                match &ri.id {
                    RecipientId::IssuerSerial {
                        issuer, serial_hex, ..
                    } => {
                        assert!(issuer.ends_with(&format!("CN={}", id.cn)), "{issuer}");
                        assert_eq!(*serial_hex, cert_serial_hex(&id.cert).unwrap());
                    }
                    other => panic!("unexpected id {other:?}"),
                }
                let w = check(&info, false).unwrap();
                assert_eq!(w.is_empty(), cipher.is_aead(), "{w:?}");
                let plain = decrypt(&m, &id.key, &id.cert).unwrap();
                assert_eq!(&plain[..], &data[..], "{cipher} oaep={oaep}");
                assert_eq!(
                    cli_decrypt(id, &m).as_deref(),
                    Some(&data[..]),
                    "CLI {cipher} oaep={oaep}"
                );
            }
        }
    }

    #[test]
    fn two_recipients_and_fresh_nonces() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let a = rsa_id("Alice");
        let b = ec_id("Bob", Nid::SECP384R1);
        let data = content(1000);
        let r = [Recipient::new(&a.cert), Recipient::new(&b.cert)];
        let m1 = enc(&r, ContentCipher::Aes256Gcm, &data);
        let m2 = enc(&r, ContentCipher::Aes256Gcm, &data);
        assert_ne!(m1, m2);
        assert_eq!(inspect(&m1).unwrap().recipients.len(), 2);
        assert_eq!(&decrypt(&m1, &a.key, &a.cert).unwrap()[..], &data[..]);
        assert_eq!(&decrypt(&m1, &b.key, &b.cert).unwrap()[..], &data[..]);
        assert_eq!(cli_decrypt(&b, &m1).as_deref(), Some(&data[..]));
        // Empty content works too.
        let m = enc(&r, ContentCipher::Aes128Cbc, b"");
        assert!(decrypt(&m, &a.key, &a.cert).unwrap().is_empty());
    }

    #[test]
    fn refuses_unsupported_recipient_keys() {
        let refuse = |recipients: &[Recipient]| {
            encrypt(
                recipients,
                ContentCipher::Aes256Gcm,
                &mut &b"x"[..],
                &mut Vec::new(),
            )
            .unwrap_err()
        };
        let ed = make_id("Ed", PKey::generate_ed25519().unwrap());
        let e = refuse(&[Recipient::new(&ed.cert)]);
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.message().contains("neither RSA nor EC"), "{e}");
        let k1 = ec_id("K1", Nid::SECP256K1);
        assert_eq!(
            refuse(&[Recipient::new(&k1.cert)]).kind(),
            ErrorKind::Unsupported
        );
        let ec = ec_id("EC", Nid::X9_62_PRIME256V1);
        assert_eq!(
            refuse(&[Recipient::oaep(&ec.cert)]).kind(),
            ErrorKind::Usage
        );
        refuse(&[]);
    }

    #[test]
    fn decrypts_what_the_cli_produces() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let rsa = rsa_id("RSA");
        let ec = ec_id("EC", Nid::X9_62_PRIME256V1);
        let data = content(50_000);
        type Case<'a> = (&'a Ident, Vec<&'a str>, Vec<&'a str>, &'a str, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (
                &rsa,
                vec!["-aes-256-cbc"],
                vec![],
                "aes-256-cbc",
                "rsaEncryption",
            ),
            (
                &rsa,
                vec!["-aes-128-gcm"],
                vec![],
                "aes-128-gcm",
                "rsaEncryption",
            ),
            (
                &rsa,
                vec!["-aes-256-gcm", "-stream"],
                vec![],
                "aes-256-gcm",
                "rsaEncryption",
            ),
            (
                &rsa,
                vec!["-aes-256-gcm"],
                vec![
                    "rsa_padding_mode:oaep",
                    "rsa_oaep_md:sha256",
                    "rsa_mgf1_md:sha256",
                ],
                "aes-256-gcm",
                "rsaesOaep",
            ),
            (
                &ec,
                vec!["-aes-256-gcm"],
                vec!["ecdh_kdf_md:sha256"],
                "aes-256-gcm",
                "dhSinglePass-stdDH-sha256kdf-scheme",
            ),
            (
                &ec,
                vec!["-aes-128-cbc", "-stream"],
                vec![],
                "aes-128-cbc",
                "dhSinglePass-stdDH-sha1kdf-scheme",
            ),
            (
                &rsa,
                vec!["-aes-192-gcm"],
                vec![],
                "aes-192-gcm",
                "rsaEncryption",
            ),
            (
                &rsa,
                vec!["-aes-192-cbc"],
                vec![],
                "aes-192-cbc",
                "rsaEncryption",
            ),
        ];
        for (id, opts, keyopts, cipher, alg) in cases {
            let m = cli_encrypt_keyopt(id, &opts, &keyopts, &data);
            let info = inspect(&m).unwrap();
            assert_eq!(info.content_cipher, cipher, "{opts:?}");
            assert_eq!(info.recipients[0].key_alg, alg, "{opts:?} {keyopts:?}");
            let (plain, warnings) = decrypt_with(&m, &id.key, &id.cert, false).unwrap();
            assert_eq!(&plain[..], &data[..], "{opts:?} {keyopts:?}");
            if alg.contains("sha1kdf") {
                assert!(
                    warnings.iter().any(|w| w.contains("SHA-1 KDF")),
                    "{warnings:?}"
                );
            }
            let mut streamed = Vec::new();
            decrypt_streaming(&m, &id.key, &id.cert, &mut streamed).unwrap();
            assert_eq!(streamed, data);
        }
    }

    #[test]
    fn gcm_tampering_releases_nothing() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let id = rsa_id("Bob");
        let data = content(90_000);
        for m in [
            enc(&[Recipient::new(&id.cert)], ContentCipher::Aes256Gcm, &data),
            cli_encrypt(&id, &["-aes-256-gcm"], &data),
        ] {
            let bad_ct = flip_content_byte(&m);
            let e = decrypt(&bad_ct, &id.key, &id.cert).unwrap_err();
            assert_eq!(
                e.message(),
                "decryption failed: the message was modified or damaged (authentication tag mismatch)"
            );
            let mut out = Vec::new();
            let e2 = decrypt_to(&bad_ct, &id.key, &id.cert, &mut out).unwrap_err();
            assert_eq!(e2.message(), e.message());
            assert!(out.is_empty(), "decrypt_to wrote {} bytes", out.len());
            // A flipped tag byte, too.
            let bad_tag = rebuild(&m, None, |parts| {
                let n = parts.len() - 1;
                let last = parts[n].len() - 1;
                parts[n][last] ^= 0x80;
            });
            let e3 = decrypt(&bad_tag, &id.key, &id.cert).unwrap_err();
            assert_eq!(e3.message(), e.message());
            assert_eq!(e3.kind(), ErrorKind::BadInput);
        }
    }

    #[test]
    fn truncated_tag_and_short_icvlen_are_rejected() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let id = rsa_id("Bob");
        let m = cli_encrypt(&id, &["-aes-256-gcm"], b"attack at dawn");
        assert_eq!(inspect(&m).unwrap().gcm.unwrap().mac_len, 16);
        for n in [12usize, 4, 1, 0] {
            let t = rebuild(&m, None, |parts| {
                let last = parts.len() - 1;
                let mac = der::parse_one(&parts[last]).unwrap().value.to_vec();
                parts[last] = der::tlv(tag::OCTET_STRING, &mac[..n]);
            });
            let info = inspect(&t).unwrap();
            assert_eq!(info.gcm.unwrap().mac_len, n);
            let e = check(&info, false).unwrap_err();
            assert!(e.message().contains("authentication tag"), "{e}");
            assert!(decrypt(&t, &id.key, &id.cert).is_err());
        }
        // A declared ICVlen of 8 (with an 8-byte mac) is refused as well.
        let mut info = inspect(&m).unwrap();
        info.gcm = Some(GcmParams {
            nonce_len: 12,
            icv_len: 8,
            mac_len: 8,
        });
        assert!(check(&info, false).is_err());
        // AEADs OpenSSL 3.0's CMS cannot do are refused up front, not reported as tampering.
        for oid in [OID_AES128_CCM, OID_CHACHA20_POLY1305] {
            let mut info = inspect(&m).unwrap();
            info.content_cipher_oid = oid.into();
            assert_eq!(
                check(&info, false).unwrap_err().kind(),
                ErrorKind::Unsupported
            );
        }
        let json = serde_json::to_value(inspect(&m).unwrap()).unwrap();
        assert_eq!(json["kind"], "auth_enveloped");
        assert_eq!(json["gcm"]["icv_len"], 16);
        assert!(
            json["recipients"][0]["id"]["issuer_serial"]["issuer_der"]
                .as_str()
                .unwrap()
                .starts_with("30")
        );
    }

    #[test]
    fn cipher_container_mismatch_is_rejected() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let id = rsa_id("Bob");
        let data = b"Content-Type: text/html\r\n\r\n<p>hi</p>".to_vec();
        // CBC inside AuthEnvelopedData with a junk 16-byte mac (F3): OpenSSL 3.0 would decrypt it.
        let cbc = cli_encrypt(&id, &["-aes-128-cbc"], &data);
        let forged = rebuild(&cbc, Some(OID_AUTH_ENVELOPED_DATA), |parts| {
            parts[0] = der::uint(0);
            parts.push(der::tlv(tag::OCTET_STRING, &[0x42; 16]));
        });
        let info = inspect(&forged).unwrap();
        assert_eq!(info.kind, EnvelopedKind::AuthEnveloped);
        let e = check(&info, false).unwrap_err();
        assert!(
            e.message()
                .contains("non-authenticating cipher aes-128-cbc"),
            "{e}"
        );
        let e = decrypt(&forged, &id.key, &id.cert).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        // GCM inside EnvelopedData (the mac dropped).
        let gcm = cli_encrypt(&id, &["-aes-256-gcm"], &data);
        let forged = rebuild(&gcm, Some(OID_ENVELOPED_DATA), |parts| {
            parts.pop();
        });
        let info = inspect(&forged).unwrap();
        assert_eq!(info.kind, EnvelopedKind::Enveloped);
        let e = check(&info, false).unwrap_err();
        assert!(e.message().contains("AEAD cipher aes-256-gcm"), "{e}");
        assert!(decrypt(&forged, &id.key, &id.cert).is_err());
    }

    #[test]
    fn wrong_key_and_no_oracle() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let bob = rsa_id("Bob");
        let eve = rsa_id("Eve");
        let ec = ec_id("Carol", Nid::X9_62_PRIME256V1);
        for cipher in [ContentCipher::Aes256Gcm, ContentCipher::Aes256Cbc] {
            let m = enc(&[Recipient::new(&bob.cert)], cipher, b"secret");
            let e = decrypt(&m, &eve.key, &eve.cert).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound);
            assert_eq!(
                e.message(),
                "this message is not encrypted to O=smimekit tests, CN=Eve"
            );
            let e = decrypt(&m, &ec.key, &ec.cert).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound);
            // Key and certificate that do not belong together.
            let e = decrypt(&m, &eve.key, &bob.cert).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage);
        }
        // T35: corrupted encrypted key, bad padding/tampered content → one message per container.
        for cipher in [ContentCipher::Aes256Gcm, ContentCipher::Aes256Cbc] {
            let data = content(5000);
            let m = cli_encrypt(
                &bob,
                &[if cipher.is_aead() {
                    "-aes-256-gcm"
                } else {
                    "-aes-256-cbc"
                }],
                &data,
            );
            // Corrupt the RSA encryptedKey (last field of the ktri).
            let bad_key = rebuild(&m, None, |parts| {
                let set = der::parse_one(&parts[1]).unwrap();
                let ktri = set.children().unwrap()[0];
                let mut fields: Vec<Vec<u8>> = ktri
                    .children()
                    .unwrap()
                    .iter()
                    .map(|t| t.raw.to_vec())
                    .collect();
                let n = fields.len() - 1;
                let l = fields[n].len();
                fields[n][l - 10] ^= 0x55;
                let refs: Vec<&[u8]> = fields.iter().map(|v| v.as_slice()).collect();
                parts[1] = der::tlv(tag::SET, &der::seq(&refs));
            });
            // Bad padding: flip a byte of the last ciphertext block.
            let parsed = parse(&m).unwrap();
            let seg = *segments(parsed.content.as_ref().unwrap())
                .unwrap()
                .last()
                .unwrap();
            // (CBC: the last byte of the next-to-last block, which deterministically breaks the padding.)
            let off = seg.as_ptr() as usize - m.as_ptr() as usize + seg.len() - 17;
            let mut bad_pad = m.clone();
            bad_pad[off] ^= 0x01;
            let e2 = decrypt(&bad_pad, &bob.key, &bob.cert).unwrap_err();
            // A corrupted CEK makes OpenSSL go on with a random key (MMA countermeasure): with CBC the padding is
            // then valid about once in 256 runs and garbage comes out, which is what CBC gives.
            let e1 = match decrypt(&bad_key, &bob.key, &bob.cert) {
                Err(e) => e,
                Ok(p) if !cipher.is_aead() => {
                    assert_ne!(&p[..], &data[..]);
                    continue;
                }
                Ok(_) => panic!("GCM with a corrupted key decrypted"),
            };
            assert_eq!(e1.message(), e2.message(), "{cipher}");
            assert_eq!(e1.kind(), e2.kind());
            assert_eq!(e1.detail_text(), None);
            assert_eq!(e2.detail_text(), None);
            assert!(
                e1.message()
                    .starts_with("decryption failed: the message was modified or damaged")
            );
        }
    }

    #[test]
    fn auth_attrs_are_refused() {
        let id = rsa_id("Bob");
        let m = enc(
            &[Recipient::new(&id.cert)],
            ContentCipher::Aes256Gcm,
            b"hello",
        );
        // authAttrs [1] { contentType = id-data }, as RFC 5083 places them (before the mac).
        let attr = der::seq(&[
            &der::oid("1.2.840.113549.1.9.3"),
            &der::tlv(tag::SET, &der::oid("1.2.840.113549.1.7.1")),
        ]);
        let with_attrs = rebuild(&m, None, |parts| {
            let n = parts.len();
            parts.insert(n - 1, der::tlv(0xa1, &attr));
        });
        let info = inspect(&with_attrs).unwrap();
        assert!(info.has_auth_attrs);
        assert_eq!(
            check(&info, false).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        // OpenSSL 3.0's own (wrong) tag [2] in that place is not a valid AuthEnvelopedData.
        let openssl_style = rebuild(&m, None, |parts| {
            let n = parts.len();
            parts.insert(n - 1, der::tlv(0xa2, &attr));
        });
        assert_eq!(
            inspect(&openssl_style).unwrap_err().kind(),
            ErrorKind::BadInput
        );
        assert!(decrypt(&openssl_style, &id.key, &id.cert).is_err());
    }

    #[test]
    fn streaming_decrypt_reports_tampering() {
        let id = ec_id("Bob", Nid::X9_62_PRIME256V1);
        let data = content(200_000);
        let m = enc(&[Recipient::new(&id.cert)], ContentCipher::Aes128Gcm, &data);
        let mut out = Vec::new();
        decrypt_streaming(&m, &id.key, &id.cert, &mut out).unwrap();
        assert_eq!(out, data);
        // OpenSSL writes the unauthenticated plaintext before the tag check fails: the caller gets Err and
        // must discard `out` (this is the documented contract of decrypt_streaming).
        let mut out = Vec::new();
        let e = decrypt_streaming(&flip_content_byte(&m), &id.key, &id.cert, &mut out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert!(e.message().contains("authentication tag mismatch"));
        // Write errors surface as I/O errors.
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let e = decrypt_streaming(&m, &id.key, &id.cert, &mut Full).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.message().contains("disk full"), "{e}");
        let e = encrypt(
            &[Recipient::new(&id.cert)],
            ContentCipher::Aes256Gcm,
            &mut &data[..],
            &mut Full,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        // A detached message (no encryptedContent) cannot be decrypted.
        let detached = CmsContentInfo::from_der(&parse(&m).unwrap().skeleton())
            .unwrap()
            .to_der()
            .unwrap();
        assert!(inspect(&detached).unwrap().detached);
        assert_eq!(
            decrypt(&detached, &id.key, &id.cert).unwrap_err().kind(),
            ErrorKind::BadInput
        );
    }

    #[test]
    fn ber_segment_edge_cases() {
        let id = ec_id("Bob", Nid::X9_62_PRIME256V1);
        let data = content(10_000);
        let m = enc(&[Recipient::new(&id.cert)], ContentCipher::Aes256Gcm, &data);
        let parsed = parse(&m).unwrap();
        let segs = segments(parsed.content.as_ref().unwrap()).unwrap();
        let with_content = |content: Vec<u8>| {
            let eci = der::seq(&[parsed.eci_head[0], parsed.eci_head[1], &content]);
            rebuild(&m, None, |parts| parts[parsed.eci_index] = eci.clone())
        };
        // Empty segments and one level of nested constructed OCTET STRING are fine.
        let mut body = [0x04, 0x00].repeat(1000);
        let inner: Vec<u8> = segs
            .iter()
            .flat_map(|s| der::tlv(tag::OCTET_STRING, s))
            .collect();
        body.extend(der::tlv(0x24, &inner));
        let odd = with_content(der::tlv(0xa0, &body));
        assert_eq!(&decrypt(&odd, &id.key, &id.cert).unwrap()[..], &data[..]);
        // A single primitive [0] works too.
        let flat = with_content(der::tlv(0x80, &segs.concat()));
        assert_eq!(&decrypt(&flat, &id.key, &id.cert).unwrap()[..], &data[..]);
        // Nesting beyond OpenSSL's limit is refused.
        let mut deep = der::tlv(tag::OCTET_STRING, &segs.concat());
        for _ in 0..BER_MAX_SEGMENT_NESTING {
            deep = der::tlv(0x24, &deep);
        }
        let deep = with_content(der::tlv(0xa0, &deep));
        assert_eq!(inspect(&deep).unwrap_err().kind(), ErrorKind::Limit);
        // Something other than OCTET STRINGs inside is malformed.
        let wrong = with_content(der::tlv(0xa0, &der::uint(5)));
        assert_eq!(inspect(&wrong).unwrap_err().kind(), ErrorKind::BadInput);
    }

    /// Random corruption never panics, and whenever GCM decryption succeeds the plaintext is the original.
    #[test]
    fn mutations_never_panic_and_gcm_never_lies() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let id = ec_id("Bob", Nid::X9_62_PRIME256V1);
        let data = content(300);
        let ours = enc(&[Recipient::new(&id.cert)], ContentCipher::Aes128Gcm, &data);
        let cli_der = cli_encrypt_keyopt(&id, &["-aes-256-gcm"], &["ecdh_kdf_md:sha256"], &data);
        let mut rnd = [0u8; 4096];
        openssl::rand::rand_bytes(&mut rnd).unwrap();
        let mut ok = 0;
        for (i, r) in rnd.chunks(4).enumerate() {
            let base = if i % 2 == 0 { &ours } else { &cli_der };
            let pos = (usize::from(r[0]) << 8 | usize::from(r[1])) % base.len();
            let mut v = base.clone();
            match r[2] % 4 {
                0 => v.truncate(pos),
                _ => v[pos] ^= r[3] | 1,
            }
            let _ = inspect(&v);
            if let Ok(p) = decrypt(&v, &id.key, &id.cert) {
                assert_eq!(
                    &p[..],
                    &data[..],
                    "mutation at {pos} decrypted to something else"
                );
                ok += 1;
            }
        }
        assert!(ok < 1024);
    }

    #[test]
    fn legacy_ciphers() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let id = rsa_id("Bob");
        let data = content(3000);
        let m = cli_encrypt(&id, &["-des3"], &data);
        let info = inspect(&m).unwrap();
        assert_eq!(info.content_cipher, "des-ede3-cbc");
        let (plain, warnings) = decrypt_with(&m, &id.key, &id.cert, false).unwrap();
        assert_eq!(&plain[..], &data[..]);
        assert_eq!(
            warnings,
            vec!["weak cipher (3DES), no integrity".to_string()]
        );

        let m = cli_encrypt(
            &id,
            &["-provider", "legacy", "-provider", "default", "-rc2-40"],
            &data,
        );
        let info = inspect(&m).unwrap();
        assert_eq!(info.content_cipher, "rc2-40-cbc");
        // RC2 from old senders decrypts with a warning (issue #5), with or without the legacy flag.
        let (plain, warnings) = decrypt_with(&m, &id.key, &id.cert, false).unwrap();
        assert_eq!(&plain[..], &data[..]);
        assert!(warnings[0].contains("rc2-40-cbc"), "{warnings:?}");
        let (plain, warnings) = decrypt_with(&m, &id.key, &id.cert, true).unwrap();
        assert_eq!(&plain[..], &data[..]);
        assert!(warnings[0].contains("rc2-40-cbc"), "{warnings:?}");
    }

    #[test]
    fn recipient_limit_and_malformed_input() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let id = rsa_id("Bob");
        let m = cli_encrypt(&id, &["-aes-256-gcm"], b"x");
        let many = rebuild(&m, None, |parts| {
            let set = der::parse_one(&parts[1]).unwrap();
            let one = set.value.to_vec();
            parts[1] = der::tlv(tag::SET, &one.repeat(MAX_RECIPIENTS + 5));
        });
        let info = inspect(&many).unwrap();
        assert_eq!(info.recipients.len(), MAX_RECIPIENTS + 1);
        assert_eq!(check(&info, false).unwrap_err().kind(), ErrorKind::Limit);
        assert_eq!(
            decrypt(&many, &id.key, &id.cert).unwrap_err().kind(),
            ErrorKind::Limit
        );
        // Truncations and garbage give clean errors.
        for n in [0, 1, 10, m.len() / 2, m.len() - 1] {
            assert!(inspect(&m[..n]).is_err());
            assert!(decrypt(&m[..n], &id.key, &id.cert).is_err());
        }
        let mut trailing = m.clone();
        trailing.push(0);
        assert!(inspect(&trailing).is_err());
        let e = inspect(&der::seq(&[
            &der::oid("1.2.840.113549.1.7.2"),
            &der::tlv(0xa0, &der::seq(&[])),
        ]))
        .unwrap_err();
        assert!(e.message().contains("not an encrypted message"), "{e}");
    }

    #[test]
    fn inspect_reads_ber_segments_and_key_ids() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let id = rsa_id("Bob");
        let data = content(20_000);
        // Our own output is BER with a chunked encryptedContent.
        let m = enc(&[Recipient::new(&id.cert)], ContentCipher::Aes256Gcm, &data);
        assert_eq!(&m[..2], &[0x30, 0x80]);
        let parsed = parse(&m).unwrap();
        assert!(segments(parsed.content.as_ref().unwrap()).unwrap().len() > 1);
        assert_eq!(parsed.info.encrypted_len, data.len() as u64);
        // A subjectKeyIdentifier recipient (openssl cms -keyid).
        let m = cli_encrypt(&id, &["-aes-256-gcm", "-keyid"], &data);
        let info = inspect(&m).unwrap();
        assert_eq!(
            info.recipients[0].id,
            RecipientId::KeyId(id.cert.subject_key_id().unwrap().as_slice().to_vec())
        );
        assert_eq!(&decrypt(&m, &id.key, &id.cert).unwrap()[..], &data[..]);
        // An EC recipient named by rKeyId.
        let ec = ec_id("Carol", Nid::X9_62_PRIME256V1);
        let m = cli_encrypt_keyopt(
            &ec,
            &["-aes-128-gcm", "-keyid"],
            &["ecdh_kdf_md:sha256"],
            &data,
        );
        let info = inspect(&m).unwrap();
        assert_eq!(info.recipients[0].kind, "kari");
        assert_eq!(
            info.recipients[0].id,
            RecipientId::KeyId(ec.cert.subject_key_id().unwrap().as_slice().to_vec())
        );
        assert_eq!(&decrypt(&m, &ec.key, &ec.cert).unwrap()[..], &data[..]);
        assert_eq!(serial_hex_from_der(&[0xff, 0x01]), "-FF");
        assert_eq!(serial_hex_from_der(&[0x00, 0x80]), "80");
    }
}
