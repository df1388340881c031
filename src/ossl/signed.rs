//! CMS SignedData: signing with our S/MIME attribute profile, and parsing plus *per-signer* verification.
//!
//! Signing streams the content through OpenSSL's digest (constant memory) and can copy it to a "tee" writer as
//! it passes, so a multipart/signed is produced in one pass. The signed attributes are ours, not OpenSSL's
//! legacy defaults: content-type, message-digest, signing-time (added by OpenSSL), SMIMECapabilities in our
//! order (AEAD first, never DES/3DES/RC2), ESS signingCertificateV2, SMIMEEncryptionKeyPreference and its
//! Microsoft twin — each exactly once with one value.
//!
//! Verification deliberately does not use `CMS_verify`: it accepts forged or missing signed attributes, tries
//! only the first certificate matching a signer identifier, and on 3.0 ignores supplied intermediates. Instead
//! [`SignedData`] exposes what the verify pipeline needs to decide per signer:
//! - [`SignedData::signers`] and [`SignedData::profile_violations`] (attribute rules OpenSSL does not enforce),
//! - [`content_digest`] / [`content_digests`] to hash the content once (streaming) for every signer,
//! - [`SignedData::verify_signer`] to check one candidate certificate against one SignerInfo.
//!
//! The attribute views are read from the *received* encoding with [`crate::der`], not from a re-encoding.

use std::cell::Cell;
use std::ffi::{CString, c_int, c_uint};
use std::fmt;
use std::io::{Read, Write};
use std::marker::PhantomData;

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::asn1::Asn1Object;
use openssl::cms::CmsContentInfo;
use openssl::error::ErrorStack;
use openssl::hash::{Hasher, MessageDigest};
use openssl::md::{Md, MdRef};
use openssl::md_ctx::MdCtxRef;
use openssl::pkey::{Id, PKeyRef, Private};
use openssl::pkey_ctx::PkeyCtxRef;
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;
use openssl::stack::Stack;
use openssl::x509::{X509, X509Name, X509Ref};
use openssl_sys as sys;

use super::sys as ffi;
use super::{cvt, cvt_p};
use crate::der::{self, Tlv};
use crate::error::{Error, Result};
use crate::limits::MAX_RSA_VERIFY_BITS;

// ---- OIDs ---------------------------------------------------------------------------------------------------

/// id-signedData
pub const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
/// id-envelopedData
pub const OID_ENVELOPED_DATA: &str = "1.2.840.113549.1.7.3";
/// id-data
pub const OID_DATA: &str = "1.2.840.113549.1.7.1";
/// id-ct-authEnvelopedData
pub const OID_AUTH_ENVELOPED_DATA: &str = "1.2.840.113549.1.9.16.1.23";
/// id-ct-compressedData
pub const OID_COMPRESSED_DATA: &str = "1.2.840.113549.1.9.16.1.9";
/// id-digestedData
pub const OID_DIGESTED_DATA: &str = "1.2.840.113549.1.7.5";
/// id-encryptedData
pub const OID_ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";

const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
const OID_SMIME_CAPABILITIES: &str = "1.2.840.113549.1.9.15";
const OID_SIGNING_CERT_V2: &str = "1.2.840.113549.1.9.16.2.47";
const OID_SIGNING_CERT_V1: &str = "1.2.840.113549.1.9.16.2.12";
const OID_SHA1: &str = "1.3.14.3.2.26";
const OID_ENC_KEY_PREF: &str = "1.2.840.113549.1.9.16.2.11";
const OID_MS_ENC_KEY_PREF: &str = "1.3.6.1.4.1.311.16.4";

const OID_MD5: &str = "1.2.840.113549.2.5";
const OID_MD5_RSA: &str = "1.2.840.113549.1.1.4";
const OID_RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_MGF1: &str = "1.2.840.113549.1.1.8";
const OID_RSAES_OAEP: &str = "1.2.840.113549.1.1.7";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";

/// Smallest RSA key we sign with.
pub const MIN_RSA_SIGN_BITS: u32 = 2048;

// ---- Algorithms ---------------------------------------------------------------------------------------------

/// Message digest used for signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Digest {
    /// SHA-256 (the default for RSA and P-256).
    #[default]
    Sha256,
    /// SHA-384 (P-384).
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Digest {
    /// The `micalg` parameter value of multipart/signed (RFC 8551 §3.5.3.2), e.g. `sha-256`.
    pub fn micalg(self) -> &'static str {
        match self {
            Digest::Sha256 => "sha-256",
            Digest::Sha384 => "sha-384",
            Digest::Sha512 => "sha-512",
        }
    }
    /// Human name, e.g. `SHA-256`.
    pub fn name(self) -> &'static str {
        match self {
            Digest::Sha256 => "SHA-256",
            Digest::Sha384 => "SHA-384",
            Digest::Sha512 => "SHA-512",
        }
    }
    /// The algorithm's OID.
    pub fn oid(self) -> &'static str {
        match self {
            Digest::Sha256 => OID_SHA256,
            Digest::Sha384 => "2.16.840.1.101.3.4.2.2",
            Digest::Sha512 => "2.16.840.1.101.3.4.2.3",
        }
    }
    /// The digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Digest::Sha256 => 32,
            Digest::Sha384 => 48,
            Digest::Sha512 => 64,
        }
    }
    /// The `openssl::hash` handle.
    pub fn message_digest(self) -> MessageDigest {
        match self {
            Digest::Sha256 => MessageDigest::sha256(),
            Digest::Sha384 => MessageDigest::sha384(),
            Digest::Sha512 => MessageDigest::sha512(),
        }
    }
    /// The `openssl::md` handle.
    pub fn md(self) -> &'static MdRef {
        match self {
            Digest::Sha256 => Md::sha256(),
            Digest::Sha384 => Md::sha384(),
            Digest::Sha512 => Md::sha512(),
        }
    }
    /// Parses a `micalg` value or digest name (`sha-256`, `sha256`, `SHA-384`…).
    pub fn from_name(s: &str) -> Option<Digest> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sha256" => Some(Digest::Sha256),
            "sha384" => Some(Digest::Sha384),
            "sha512" => Some(Digest::Sha512),
            _ => None,
        }
    }
}

/// A content-encryption (or key-transport) capability we advertise in SMIMECapabilities (RFC 8551 §2.5.2).
/// DES, 3DES and RC2 are deliberately not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// AES-256-GCM (AuthEnvelopedData).
    Aes256Gcm,
    /// AES-128-GCM (AuthEnvelopedData).
    Aes128Gcm,
    /// AES-256-CBC (EnvelopedData).
    Aes256Cbc,
    /// AES-128-CBC (EnvelopedData).
    Aes128Cbc,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RSA keys only).
    RsaesOaepSha256,
}

impl Capability {
    /// The capability's algorithm OID.
    pub fn oid(self) -> &'static str {
        match self {
            Capability::Aes256Gcm => "2.16.840.1.101.3.4.1.46",
            Capability::Aes128Gcm => "2.16.840.1.101.3.4.1.6",
            Capability::Aes256Cbc => "2.16.840.1.101.3.4.1.42",
            Capability::Aes128Cbc => "2.16.840.1.101.3.4.1.2",
            Capability::RsaesOaepSha256 => OID_RSAES_OAEP,
        }
    }
    /// DER of the SMIMECapability SEQUENCE.
    pub fn to_der(self) -> Vec<u8> {
        match self {
            Capability::RsaesOaepSha256 => {
                // RSAES-OAEP-params { [0] sha256, [1] mgf1(sha256) } (RFC 4055; NULL parameters as OpenSSL writes).
                let sha256 = der::seq(&[&der::oid(OID_SHA256), &[0x05, 0x00]]);
                let mgf = der::seq(&[&der::oid(OID_MGF1), &sha256]);
                let params = der::seq(&[&der::tlv(0xa0, &sha256), &der::tlv(0xa1, &mgf)]);
                der::seq(&[&der::oid(OID_RSAES_OAEP), &params])
            }
            c => der::seq(&[&der::oid(c.oid())]),
        }
    }
    /// Our default list for a signing key: AES-256-GCM, AES-128-GCM, AES-256-CBC, AES-128-CBC, plus RSAES-OAEP
    /// when the key is RSA (our encryption certificate is then RSA too, by default).
    pub fn defaults_for<T>(key: &PKeyRef<T>) -> Vec<Capability> {
        let mut v = vec![
            Capability::Aes256Gcm,
            Capability::Aes128Gcm,
            Capability::Aes256Cbc,
            Capability::Aes128Cbc,
        ];
        if key.id() == Id::RSA {
            v.push(Capability::RsaesOaepSha256);
        }
        v
    }
}

/// DER of an SMIMECapabilities value (a SEQUENCE OF SMIMECapability), in the given order.
pub fn capabilities_der(caps: &[Capability]) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = caps.iter().map(|c| c.to_der()).collect();
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    der::seq(&refs)
}

/// `name (dotted.oid)` for an OID OpenSSL knows, else the dotted OID.
pub fn oid_name(oid: &str) -> String {
    memo(&OID_NAMES, oid.as_bytes(), || oid_name_uncached(oid))
}

/// A small per-thread memo of a pure function of some bytes (OID and name strings repeat in every message of
/// a mailbox; OpenSSL's lookups behind them take locks). Emptied when full, so it stays small.
fn memo(
    cell: &'static std::thread::LocalKey<
        std::cell::RefCell<std::collections::HashMap<Vec<u8>, String>>,
    >,
    key: &[u8],
    f: impl FnOnce() -> String,
) -> String {
    if let Some(v) = cell.with(|m| m.borrow().get(key).cloned()) {
        return v;
    }
    let v = f();
    cell.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= 256 {
            m.clear();
        }
        m.insert(key.to_vec(), v.clone());
    });
    v
}

thread_local! {
    static OID_NAMES: std::cell::RefCell<std::collections::HashMap<Vec<u8>, String>> = Default::default();
    static NAME_STRINGS: std::cell::RefCell<std::collections::HashMap<Vec<u8>, String>> = Default::default();
}

fn oid_name_uncached(oid: &str) -> String {
    let name = Asn1Object::from_str(oid).ok().and_then(|o| {
        let nid = o.nid();
        if nid == openssl::nid::Nid::UNDEF {
            None
        } else {
            nid.long_name().ok()
        }
    });
    // Unknown OIDs leave "unknown nid" errors on the queue; they are expected.
    let _ = ErrorStack::get();
    match name {
        Some(n) if n != oid => format!("{n} ({oid})"),
        _ => oid.to_string(),
    }
}

// ---- Signing ------------------------------------------------------------------------------------------------

/// Everything [`sign`] needs.
pub struct SignParams<'a> {
    /// The signer's certificate.
    pub cert: &'a X509Ref,
    /// The signer's private key.
    pub key: &'a PKeyRef<Private>,
    /// Intermediate certificates to include (not the root). The signer's certificate is always included.
    pub chain: &'a [X509],
    /// The message digest.
    pub digest: Digest,
    /// RSA only: sign with RSASSA-PSS (MGF1 with the same digest, salt length = digest length) instead of
    /// PKCS#1 v1.5.
    pub pss: bool,
    /// Detached (multipart/signed, no eContent) or opaque (content inside the SignedData).
    pub detached: bool,
    /// SMIMECapabilities to advertise, in preference order; empty = no SMIMECapabilities attribute.
    pub capabilities: Vec<Capability>,
    /// The certificate others should encrypt to (SMIMEEncryptionKeyPreference); `None` = the signing certificate.
    pub encryption_cert: Option<&'a X509Ref>,
}

impl<'a> SignParams<'a> {
    /// Defaults: SHA-256, PKCS#1 v1.5 for RSA, detached, no chain, [`Capability::defaults_for`] the key, and the
    /// signing certificate as encryption certificate.
    pub fn new(cert: &'a X509Ref, key: &'a PKeyRef<Private>) -> Self {
        SignParams {
            cert,
            key,
            chain: &[],
            digest: Digest::Sha256,
            pss: false,
            detached: true,
            capabilities: Capability::defaults_for(key),
            encryption_cert: None,
        }
    }
}

/// Refuses keys we will not sign with, with a clear reason.
fn check_signing_key(p: &SignParams<'_>) -> Result<()> {
    match p.key.id() {
        Id::RSA => {
            let bits = p.key.bits();
            if bits < MIN_RSA_SIGN_BITS {
                return Err(Error::unusable(format!(
                    "the RSA key has {bits} bits; signing needs at least {MIN_RSA_SIGN_BITS}"
                ))
                .hint("create or import a digital ID with an RSA-3072 or EC P-256 key"));
            }
        }
        Id::EC => {
            if p.pss {
                return Err(Error::usage(
                    "RSASSA-PSS was asked for, but the signing key is an EC key",
                )
                .hint("drop the PSS option; EC keys sign with ECDSA"));
            }
        }
        Id::ED25519 | Id::ED448 => {
            return Err(Error::unsupported(
                "Ed25519/Ed448 S/MIME signatures are not supported with OpenSSL 3.0",
            )
            .hint("use an RSA or EC P-256 digital ID"));
        }
        _ => {
            return Err(Error::unsupported(
                "the signing key type is not supported (RSA or EC keys only)",
            )
            .hint("use an RSA or EC P-256 digital ID"));
        }
    }
    let matches = p
        .cert
        .public_key()
        .map(|pk| pk.public_eq(p.key))
        .unwrap_or(false);
    let _ = ErrorStack::get();
    if !matches {
        return Err(
            Error::unusable("the private key does not belong to the signing certificate")
                .hint("check that the digital ID's key and certificate were imported together"),
        );
    }
    Ok(())
}

/// The raw `issuer` Name and `serialNumber` INTEGER encodings of a certificate, exactly as in its TBSCertificate.
fn issuer_and_serial(cert: &X509Ref) -> Result<(Vec<u8>, Vec<u8>)> {
    let d = cert
        .to_der()
        .map_err(|e| Error::crypto("cannot encode the certificate", e))?;
    let top = der::parse_one(&d)?;
    let tbs = top
        .children()?
        .into_iter()
        .next()
        .ok_or_else(|| Error::bad_input("malformed certificate"))?;
    let mut f = tbs.children()?.into_iter();
    let mut serial = f
        .next()
        .ok_or_else(|| Error::bad_input("malformed certificate"))?;
    if serial.tag == 0xa0 {
        serial = f
            .next()
            .ok_or_else(|| Error::bad_input("malformed certificate"))?;
    }
    let _sig_alg = f.next();
    let issuer = f
        .next()
        .ok_or_else(|| Error::bad_input("malformed certificate"))?;
    if serial.tag != der::tag::INTEGER || issuer.tag != der::tag::SEQUENCE {
        return Err(Error::bad_input(
            "malformed certificate (issuer or serial number)",
        ));
    }
    Ok((issuer.raw.to_vec(), serial.raw.to_vec()))
}

/// ESS SigningCertificateV2 with one ESSCertIDv2 { certHash = SHA-256(cert) } (hashAlgorithm defaults to SHA-256).
fn signing_certificate_v2(cert: &X509Ref) -> Result<Vec<u8>> {
    let h = cert
        .digest(MessageDigest::sha256())
        .map_err(|e| Error::crypto("cannot hash the certificate", e))?;
    let cert_id = der::seq(&[&der::tlv(der::tag::OCTET_STRING, &h)]);
    Ok(der::seq(&[&der::seq(&[&cert_id])]))
}

/// Adds one signed attribute whose value is the complete DER element `value`.
fn add_attr(si: *mut ffi::CMS_SignerInfo, oid: &str, value: &[u8]) -> Result<()> {
    let name = CString::new(oid).expect("OID literal has no NUL");
    let len =
        c_int::try_from(value.len()).map_err(|_| Error::limit("signed attribute too large"))?;
    // SAFETY: `si` is a live SignerInfo owned by a live CMS structure; `name` is NUL-terminated; with
    // V_ASN1_SEQUENCE the bytes are copied as a complete encoding.
    let r = unsafe {
        ffi::CMS_signed_add1_attr_by_txt(
            si,
            name.as_ptr(),
            sys::V_ASN1_SEQUENCE,
            value.as_ptr().cast(),
            len,
        )
    };
    if r != 1 {
        return Err(Error::crypto(
            format!("cannot add the signed attribute {}", oid_name(oid)),
            ErrorStack::get(),
        ));
    }
    Ok(())
}

/// Streams `content` (and copies it to `tee`) into the digest chain of a `CMS_PARTIAL` SignedData, then
/// finalises it (digest, signed attributes, signature).
///
/// This is what `CMS_final` does, but with 64 KiB writes instead of `SMIME_crlf_copy`'s 1 KiB reads through a
/// buffer BIO, which cuts the per-byte overhead on large content.
fn write_content(
    cms: &CmsContentInfo,
    content: &mut dyn Read,
    mut tee: Option<&mut dyn Write>,
) -> Result<()> {
    // SAFETY: `cms` is a live, partial SignedData; the returned chain is owned by us and freed by `Chain`.
    let chain = unsafe { ffi::CMS_dataInit(cms.as_ptr(), std::ptr::null_mut()) };
    let chain = cvt_p(chain).map_err(|e| Error::crypto("cannot start the content digest", e))?;
    struct Chain(*mut sys::BIO);
    impl Drop for Chain {
        fn drop(&mut self) {
            // SAFETY: we own the chain created by CMS_dataInit (no caller-supplied BIO is part of it).
            unsafe { sys::BIO_free_all(self.0) };
        }
    }
    let chain = Chain(chain);
    let io_err = |what: &str, e: std::io::Error| {
        Error::new(crate::error::ErrorKind::Io, format!("{what}: {e}"))
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match content.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("cannot read the content to sign", e)),
        };
        if let Some(t) = tee.as_mut() {
            t.write_all(&buf[..n])
                .map_err(|e| io_err("cannot write the signed content", e))?;
        }
        // SAFETY: the chain is live; `buf` is readable for `n` (<= 64 KiB, fits c_int) bytes.
        let w = unsafe { sys::BIO_write(chain.0, buf.as_ptr().cast(), n as c_int) };
        if w != n as c_int {
            return Err(Error::crypto(
                "cannot digest the content",
                ErrorStack::get(),
            ));
        }
    }
    if let Some(t) = tee.as_mut() {
        t.flush()
            .map_err(|e| io_err("cannot write the signed content", e))?;
    }
    // SAFETY: the chain is live; a flush pushes any buffered bytes down the chain.
    unsafe { sys::BIO_ctrl(chain.0, sys::BIO_CTRL_FLUSH, 0, std::ptr::null_mut()) };
    // SAFETY: `cms` and the chain CMS_dataInit made for it are live.
    cvt(unsafe { ffi::CMS_dataFinal(cms.as_ptr(), chain.0) })
        .map_err(|e| Error::crypto("signing failed", e))?;
    Ok(())
}

/// Signs `content` and returns the DER ContentInfo (SignedData).
///
/// The content is read to its end and digested as it streams (binary: the caller has canonicalised it); if
/// `tee` is given every byte is also written there as it passes. With `p.detached == false` the content is
/// also embedded (opaque signing) and so held in memory by OpenSSL.
pub fn sign(
    p: &SignParams<'_>,
    content: &mut dyn Read,
    tee: Option<&mut dyn Write>,
) -> Result<Vec<u8>> {
    let (cms, _) = new_signed_data(p)?;
    write_content(&cms, content, tee)?;
    cms.to_der()
        .map_err(|e| Error::crypto("cannot encode the SignedData", e))
}

/// A detached signature in progress: the content is fed with [`DetachedSigner::update`] (its digest is
/// computed as it passes, nothing is kept), then [`DetachedSigner::finish`] signs.
///
/// It can be moved to another thread, so that a large message is digested on one core while the other writes
/// it out.
pub struct DetachedSigner {
    cms: CmsContentInfo,
    chain: *mut sys::BIO,
}

// SAFETY: the signer exclusively owns its CMS structure and digest BIO chain, and is used by one thread at a
// time (it is moved, not shared). It also holds references to the signing certificate, chain and key, which
// other threads may use at the same time (another signer is built while a cancelled one is dropped on the
// digest thread): OpenSSL's reference counts are atomic, and these objects are only read.
unsafe impl Send for DetachedSigner {}

impl DetachedSigner {
    /// Starts a detached signature with the signer, attributes and certificates of `p` (`p.detached` must be
    /// true). Refuses an unusable key before any content is read.
    pub fn new(p: &SignParams<'_>) -> Result<DetachedSigner> {
        if !p.detached {
            return Err(Error::usage("DetachedSigner signs detached content only"));
        }
        let (cms, _) = new_signed_data(p)?;
        // SAFETY: `cms` is a live, partial SignedData; the returned chain is owned by the signer (freed on drop).
        let chain = unsafe { ffi::CMS_dataInit(cms.as_ptr(), std::ptr::null_mut()) };
        let chain =
            cvt_p(chain).map_err(|e| Error::crypto("cannot start the content digest", e))?;
        Ok(DetachedSigner { cms, chain })
    }

    /// Digests the next bytes of the content.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        for piece in data.chunks(1 << 30) {
            // SAFETY: the chain is live; `piece` is readable for its length, which fits a c_int.
            let w =
                unsafe { sys::BIO_write(self.chain, piece.as_ptr().cast(), piece.len() as c_int) };
            if w != piece.len() as c_int {
                return Err(Error::crypto(
                    "cannot digest the content",
                    ErrorStack::get(),
                ));
            }
        }
        Ok(())
    }

    /// Takes the content digest from `ctx`, a digest context the caller fed with the whole content (on another
    /// thread, possibly before the signer was known) using this signer's algorithm, instead of
    /// [`DetachedSigner::update`]. Nothing must have been fed before.
    pub fn adopt_digest(&mut self, ctx: &MdCtxRef) -> Result<()> {
        let mut mctx: *mut sys::EVP_MD_CTX = std::ptr::null_mut();
        // SAFETY: the chain starts with the digest BIO CMS_dataInit made for the one signer; BIO_get_md_ctx
        // stores that BIO's own context (still owned by the BIO) in `mctx`.
        let got = unsafe {
            sys::BIO_ctrl(
                self.chain,
                ffi::BIO_C_GET_MD_CTX,
                0,
                (&mut mctx as *mut *mut sys::EVP_MD_CTX).cast(),
            )
        };
        // SAFETY: both contexts are live and initialised; EVP_MD_CTX_md only reads them.
        let same_md = !mctx.is_null()
            && unsafe {
                let (a, b) = (sys::EVP_MD_CTX_md(mctx), sys::EVP_MD_CTX_md(ctx.as_ptr()));
                !a.is_null() && !b.is_null() && sys::EVP_MD_type(a) == sys::EVP_MD_type(b)
            };
        if got != 1 || !same_md {
            return Err(Error::usage(
                "the digest given does not match the signer's digest algorithm",
            ));
        }
        // SAFETY: `mctx` is the chain's live context, `ctx` a live initialised one; copy_ex replaces the state.
        cvt(unsafe { sys::EVP_MD_CTX_copy_ex(mctx, ctx.as_ptr()) })
            .map_err(|e| Error::crypto("cannot take over the content digest", e))?;
        Ok(())
    }

    /// Signs (message digest and signing time as signed attributes) and returns the DER ContentInfo.
    pub fn finish(self) -> Result<Vec<u8>> {
        // SAFETY: the chain is live; a flush pushes any buffered bytes down the chain. `cms` and the chain
        // CMS_dataInit made for it are live.
        let ok = unsafe {
            sys::BIO_ctrl(self.chain, sys::BIO_CTRL_FLUSH, 0, std::ptr::null_mut());
            ffi::CMS_dataFinal(self.cms.as_ptr(), self.chain) == 1
        };
        if !ok {
            return Err(Error::crypto("signing failed", ErrorStack::get()));
        }
        self.cms
            .to_der()
            .map_err(|e| Error::crypto("cannot encode the SignedData", e))
    }
}

impl Drop for DetachedSigner {
    fn drop(&mut self) {
        // SAFETY: the chain was made by CMS_dataInit for this signer alone (no caller BIO in it).
        unsafe { sys::BIO_free_all(self.chain) };
    }
}

/// An empty (partial) SignedData with one signer and its signed attributes, certificates added; the content
/// and the signature are still to come. Returns the SignerInfo too (owned by the ContentInfo).
fn new_signed_data(p: &SignParams<'_>) -> Result<(CmsContentInfo, *mut ffi::CMS_SignerInfo)> {
    check_signing_key(p)?;
    let enc_cert = p.encryption_cert.unwrap_or(p.cert);
    let (enc_issuer, enc_serial) = issuer_and_serial(enc_cert)?;
    let ias = der::seq(&[&enc_issuer, &enc_serial]);
    let pref = der::tlv(
        0xa0,
        &[enc_issuer.as_slice(), enc_serial.as_slice()].concat(),
    );
    let ess = signing_certificate_v2(p.cert)?;

    let mut flags = sys::CMS_PARTIAL | sys::CMS_BINARY;
    if p.detached {
        flags |= sys::CMS_DETACHED;
    }
    // SAFETY: all-NULL arguments with CMS_PARTIAL create an empty SignedData; we own the result.
    let raw = unsafe {
        sys::CMS_sign(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            flags,
        )
    };
    let raw = cvt_p(raw).map_err(|e| Error::crypto("cannot create a SignedData structure", e))?;
    // SAFETY: `raw` is an owned CMS_ContentInfo; CmsContentInfo frees it on drop.
    let cms = unsafe { CmsContentInfo::from_ptr(raw) };
    // SAFETY: `cms` is a live SignedData. Make the eContent state explicit (absent vs. to be filled).
    cvt(unsafe { ffi::CMS_set_detached(cms.as_ptr(), c_int::from(p.detached)) })
        .map_err(|e| Error::crypto("cannot set up the SignedData content", e))?;

    let mut sflags: c_uint = sys::CMS_BINARY | sys::CMS_NOSMIMECAP | sys::CMS_PARTIAL;
    if p.pss {
        sflags |= sys::CMS_KEY_PARAM;
    }
    // SAFETY: cert, key and digest are valid for the call; CMS_add1_signer up-refs cert and key. The returned
    // SignerInfo is owned by `cms` and used only while `cms` lives.
    let si = unsafe {
        ffi::CMS_add1_signer(
            cms.as_ptr(),
            p.cert.as_ptr(),
            p.key.as_ptr(),
            p.digest.message_digest().as_ptr(),
            sflags,
        )
    };
    let si = cvt_p(si).map_err(|e| Error::crypto("cannot add the signer", e))?;
    if p.pss {
        // SAFETY: with CMS_KEY_PARAM the SignerInfo has a signing EVP_PKEY_CTX owned by it (get0), alive as long
        // as `cms`; we only use the reference within this block.
        let pctx = unsafe { ffi::CMS_SignerInfo_get0_pkey_ctx(si) };
        let pctx =
            cvt_p(pctx).map_err(|e| Error::crypto("cannot get the signer's key context", e))?;
        // SAFETY: non-null, valid for this scope, not aliased by another Rust reference.
        let ctx = unsafe { PkeyCtxRef::<Private>::from_ptr_mut(pctx) };
        ctx.set_rsa_padding(Padding::PKCS1_PSS)
            .and_then(|_| ctx.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH))
            .and_then(|_| ctx.set_rsa_mgf1_md(p.digest.md()))
            .map_err(|e| Error::crypto("cannot set up RSASSA-PSS", e))?;
    }
    if !p.capabilities.is_empty() {
        add_attr(
            si,
            OID_SMIME_CAPABILITIES,
            &capabilities_der(&p.capabilities),
        )?;
    }
    add_attr(si, OID_SIGNING_CERT_V2, &ess)?;
    add_attr(si, OID_ENC_KEY_PREF, &pref)?;
    add_attr(si, OID_MS_ENC_KEY_PREF, &ias)?;

    for c in p.chain {
        // SAFETY: both valid; CMS_add1_cert up-refs the certificate (-1 = already present, not an error).
        if unsafe { ffi::CMS_add1_cert(cms.as_ptr(), c.as_ptr()) } == 0 {
            return Err(Error::crypto(
                "cannot add a chain certificate",
                ErrorStack::get(),
            ));
        }
    }
    let _ = ErrorStack::get(); // a duplicate certificate leaves a harmless error on the queue
    Ok((cms, si))
}

// ---- Content type detection ---------------------------------------------------------------------------------

/// The type of a CMS ContentInfo, from its contentType OID (never from MIME labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmsType {
    /// id-signedData
    SignedData,
    /// id-envelopedData
    EnvelopedData,
    /// id-ct-authEnvelopedData
    AuthEnvelopedData,
    /// id-ct-compressedData
    CompressedData,
    /// id-data
    Data,
    /// Anything else (dotted OID).
    Other(String),
}

impl CmsType {
    /// From a dotted OID.
    pub fn from_oid(oid: &str) -> CmsType {
        match oid {
            OID_SIGNED_DATA => CmsType::SignedData,
            OID_ENVELOPED_DATA => CmsType::EnvelopedData,
            OID_AUTH_ENVELOPED_DATA => CmsType::AuthEnvelopedData,
            OID_COMPRESSED_DATA => CmsType::CompressedData,
            OID_DATA => CmsType::Data,
            o => CmsType::Other(o.to_string()),
        }
    }
    /// The RFC 5652 name (`signedData`, `envelopedData`…), or the OID with its name for others.
    pub fn name(&self) -> String {
        match self {
            CmsType::SignedData => "signedData".into(),
            CmsType::EnvelopedData => "envelopedData".into(),
            CmsType::AuthEnvelopedData => "authEnvelopedData".into(),
            CmsType::CompressedData => "compressedData".into(),
            CmsType::Data => "data".into(),
            CmsType::Other(o) => match o.as_str() {
                OID_DIGESTED_DATA => "digestedData".into(),
                OID_ENCRYPTED_DATA => "encryptedData".into(),
                _ => oid_name(o),
            },
        }
    }
}

impl fmt::Display for CmsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The type of the DER or BER ContentInfo in `der` (only the outer header and contentType are read).
pub fn content_type_of(der_in: &[u8]) -> Result<CmsType> {
    let not_cms = || {
        Error::bad_input("the data is not a CMS/PKCS#7 structure")
            .hint("the input must be DER or BER (decode base64 or PEM first)")
    };
    let top = der::Reader::new(der_in).read().map_err(|_| not_cms())?;
    if top.tag != der::tag::SEQUENCE {
        return Err(not_cms());
    }
    let first = der::Reader::new(top.value).read().map_err(|_| not_cms())?;
    let oid = first.oid().ok_or_else(not_cms)?;
    Ok(CmsType::from_oid(&oid))
}

// ---- Parsed view --------------------------------------------------------------------------------------------

/// How a SignerInfo (or a key preference) names a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerId {
    /// issuerAndSerialNumber.
    IssuerSerial {
        /// The issuer DN, RFC 2253 style (most specific RDN first).
        issuer: String,
        /// The issuer Name's DER, as received.
        issuer_der: Vec<u8>,
        /// The serial number in upper-case hex (two's complement content octets, leading 00 dropped).
        serial_hex: String,
    },
    /// subjectKeyIdentifier.
    KeyId(Vec<u8>),
}

impl fmt::Display for SignerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignerId::IssuerSerial {
                issuer, serial_hex, ..
            } => write!(f, "issuer \"{issuer}\", serial {serial_hex}"),
            SignerId::KeyId(k) => write!(f, "subject key identifier {}", hex(k)),
        }
    }
}

/// RSASSA-PSS parameters as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PssParams {
    /// Hash algorithm (name and OID); SHA-1 when absent.
    pub hash: String,
    /// MGF1 hash algorithm (name and OID); SHA-1 when absent.
    pub mgf1_hash: String,
    /// Salt length in bytes (20 when absent).
    pub salt_len: u64,
}

/// One ESSCertID / ESSCertIDv2 (RFC 5035): a hash of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EssCertId {
    /// Hash algorithm OID (SHA-256 when absent in v2; SHA-1 in v1).
    pub hash_oid: String,
    /// The certificate hash.
    pub hash: Vec<u8>,
}

impl EssCertId {
    /// Does this ID name `cert`? `None` when the hash algorithm is unknown (or MD5).
    pub fn matches(&self, cert: &X509Ref) -> Option<bool> {
        if self.hash_oid == OID_MD5 {
            return None;
        }
        let md = Asn1Object::from_str(&self.hash_oid)
            .ok()
            .and_then(|o| MessageDigest::from_nid(o.nid()));
        let r = md
            .and_then(|md| cert.digest(md).ok())
            .map(|d| d.as_ref() == self.hash.as_slice());
        let _ = ErrorStack::get();
        r
    }
}

fn ess_ids(value: &[u8], v2: bool) -> Vec<EssCertId> {
    let mut out = Vec::new();
    let certs = der::parse_one(value)
        .ok()
        .and_then(|t| t.children().ok()?.into_iter().next());
    for id in certs.and_then(|c| c.children().ok()).unwrap_or_default() {
        let Ok(f) = id.children() else { continue };
        let (hash_oid, hash_t) = match f.first() {
            Some(a) if v2 && a.tag == der::tag::SEQUENCE => (alg_oid(a).ok(), f.get(1)),
            _ => (
                Some(if v2 { OID_SHA256 } else { OID_SHA1 }.to_string()),
                f.first(),
            ),
        };
        if let (Some(hash_oid), Some(h)) =
            (hash_oid, hash_t.filter(|h| h.tag == der::tag::OCTET_STRING))
        {
            out.push(EssCertId {
                hash_oid,
                hash: h.value.to_vec(),
            });
        }
    }
    out
}

/// What one SignerInfo says, read from the received encoding. Nothing here is verified.
#[derive(Debug, Clone)]
pub struct SignerSummary {
    /// The signer identifier.
    pub sid: SignerId,
    /// Digest algorithm, `name (OID)`.
    pub digest: String,
    /// Digest algorithm OID.
    pub digest_oid: String,
    /// Signature algorithm, `name (OID)`.
    pub signature_alg: String,
    /// Signature algorithm OID.
    pub signature_oid: String,
    /// RSASSA-PSS parameters when the signature algorithm is RSASSA-PSS.
    pub pss: Option<PssParams>,
    /// The claimed signing time (Unix seconds) of the first signing-time value. Only a claim.
    pub signing_time: Option<i64>,
    /// True if the SignerInfo has signedAttrs.
    pub signed_attrs_present: bool,
    /// Every value of every content-type attribute (dotted OIDs; `malformed` for non-OID values).
    pub content_type_attrs: Vec<String>,
    /// Every value of every message-digest attribute (OCTET STRING contents; raw encoding if not one).
    pub message_digest_values: Vec<Vec<u8>>,
    /// SMIMECapabilities in order, as dotted OIDs ([`oid_name`] for display).
    pub capabilities: Vec<String>,
    /// SMIMEEncryptionKeyPreference (or else Microsoft's 1.3.6.1.4.1.311.16.4).
    pub encryption_key_preference: Option<SignerId>,
    /// The ESSCertIDs of the first signingCertificateV2 (or else signingCertificate v1) attribute, in order;
    /// the first identifies the signing certificate (RFC 5035 §5.4).
    pub ess_cert_ids: Vec<EssCertId>,
    /// Every signed attribute type, in received order (dotted OIDs), for diagnostics.
    pub signed_attr_types: Vec<String>,
}

struct Attr {
    oid: String,
    values: Vec<Vec<u8>>, // raw encodings of each AttributeValue
}

struct SignerView {
    summary: SignerSummary,
    attrs: Option<Vec<Attr>>,
}

/// A parsed CMS SignedData (DER or BER), for per-signer verification.
///
/// `SignedData` is `Send` but not `Sync`: [`SignedData::verify_signer`] sets the candidate certificate inside
/// OpenSSL's SignerInfo.
pub struct SignedData {
    cms: CmsContentInfo,
    econtent_type: String,
    econtent: Option<Vec<u8>>,
    digest_algorithms: Vec<String>,
    signers: Vec<SignerView>,
    /// The certificates field, parsed through a [`ParsedCerts`] cache and left out of `cms`
    /// ([`SignedData::from_der_cached`]); `None` when OpenSSL parsed them inside `cms`.
    certs: Option<Vec<X509>>,
    _not_sync: PhantomData<Cell<()>>,
}

/// Certificates parsed once per process and shared by every message that carries the same bytes (`scan`):
/// OpenSSL 3.0 sets up a whole decoder context for the public key of every certificate it parses, about as
/// costly as verifying the signature itself. Keyed by the exact DER, so a hit is the very same certificate.
#[derive(Default)]
pub struct ParsedCerts {
    map: std::sync::Mutex<std::collections::HashMap<Vec<u8>, X509>>,
}

impl ParsedCerts {
    /// The certificate encoded by `der`, parsed once.
    pub fn get(&self, der: &[u8]) -> Result<X509> {
        if let Some(c) = self.map.lock().unwrap_or_else(|e| e.into_inner()).get(der) {
            return Ok(c.clone());
        }
        let c = X509::from_der(der).map_err(|e| {
            Error::bad_input("OpenSSL cannot parse the SignedData")
                .detail(e)
                .hint("the signature is damaged")
        })?;
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() < crate::limits::MAX_CACHED_CERTS {
            m.insert(der.to_vec(), c.clone());
        }
        Ok(c)
    }
}

impl fmt::Debug for SignedData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedData")
            .field("econtent_type", &self.econtent_type)
            .field("econtent_len", &self.econtent.as_ref().map(|c| c.len()))
            .field(
                "signers",
                &self.signers.iter().map(|s| &s.summary).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn malformed_sd(what: &str) -> Error {
    Error::bad_input(format!("malformed SignedData ({what})"))
        .hint("the signature is damaged or was not made by a CMS tool")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// RFC 2253-style string of a DER Name (most specific RDN first).
fn name_string(name_der: &[u8]) -> String {
    memo(&NAME_STRINGS, name_der, || name_string_uncached(name_der))
}

fn name_string_uncached(name_der: &[u8]) -> String {
    let s = match X509Name::from_der(name_der) {
        Ok(n) => {
            let mut parts: Vec<String> = n
                .entries()
                .map(|e| {
                    let nid = e.object().nid();
                    let key = nid
                        .short_name()
                        .map(str::to_string)
                        .unwrap_or_else(|_| e.object().to_string());
                    let val = e
                        .data()
                        .to_string()
                        .unwrap_or_else(|_| hex(e.data().as_slice()));
                    format!("{key}={}", escape_dn(&val))
                })
                .collect();
            parts.reverse();
            parts.join(",")
        }
        Err(_) => format!("#{}", hex(name_der)),
    };
    let _ = ErrorStack::get();
    s
}

fn escape_dn(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
        {
            out.push('\\');
        }
        out.push(c);
    }
    if out.ends_with(' ') {
        out.insert(out.len() - 1, '\\');
    }
    out
}

fn serial_hex(int_value: &[u8]) -> String {
    let v = if int_value.len() > 1 && int_value[0] == 0 {
        &int_value[1..]
    } else {
        int_value
    };
    hex(v)
}

fn issuer_serial_id(issuer: &Tlv<'_>, serial: &Tlv<'_>) -> Result<SignerId> {
    if issuer.tag != der::tag::SEQUENCE || serial.tag != der::tag::INTEGER {
        return Err(malformed_sd("issuerAndSerialNumber"));
    }
    Ok(SignerId::IssuerSerial {
        issuer: name_string(issuer.raw),
        issuer_der: issuer.raw.to_vec(),
        serial_hex: serial_hex(serial.value),
    })
}

fn alg_oid(t: &Tlv<'_>) -> Result<String> {
    if t.tag != der::tag::SEQUENCE {
        return Err(malformed_sd("AlgorithmIdentifier"));
    }
    t.children()?
        .first()
        .and_then(|o| o.oid())
        .ok_or_else(|| malformed_sd("AlgorithmIdentifier OID"))
}

fn pss_params(params: Option<&Tlv<'_>>) -> PssParams {
    let mut p = PssParams {
        hash: oid_name(OID_SHA1),
        mgf1_hash: oid_name(OID_SHA1),
        salt_len: 20,
    };
    let Some(params) = params else { return p };
    let Ok(fields) = params.children() else {
        return p;
    };
    for f in fields {
        let inner = f.children().ok().and_then(|c| c.into_iter().next());
        match (f.tag, inner) {
            (0xa0, Some(alg)) => {
                if let Ok(o) = alg_oid(&alg) {
                    p.hash = oid_name(&o);
                }
            }
            (0xa1, Some(alg)) => {
                let hash = alg.children().ok().and_then(|c| c.get(1).copied());
                if let Some(o) = hash.and_then(|h| alg_oid(&h).ok()) {
                    p.mgf1_hash = oid_name(&o);
                }
            }
            (0xa2, Some(n)) => {
                if let Some(v) = n.as_u64() {
                    p.salt_len = v;
                }
            }
            _ => {}
        }
    }
    p
}

/// Unix time of a UTCTime / GeneralizedTime.
fn parse_time(t: &Tlv<'_>) -> Option<i64> {
    let s = std::str::from_utf8(t.value).ok().filter(|s| s.is_ascii())?;
    let digits = |x: &str| -> Option<i64> {
        x.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| x.parse().ok())
            .flatten()
    };
    let (year, rest) = match t.tag {
        der::tag::UTC_TIME => {
            let yy = digits(s.get(0..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, s.get(2..)?)
        }
        der::tag::GENERALIZED_TIME => (digits(s.get(0..4)?)?, s.get(4..)?),
        _ => return None,
    };
    let num = |a: usize| -> Option<i64> { digits(rest.get(a..a + 2)?) };
    let (mo, d, h, mi) = (num(0)?, num(2)?, num(4)?, num(6)?);
    let mut pos = 8;
    let sec = if rest.as_bytes().get(8).is_some_and(u8::is_ascii_digit) {
        pos = 10;
        num(8)?
    } else {
        0
    };
    let mut tail = rest.get(pos..)?;
    if let Some(frac) = tail.strip_prefix('.') {
        tail = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match tail {
        "Z" | "" => 0,
        o if o.len() == 5 && (o.starts_with('+') || o.starts_with('-')) => {
            let (oh, om) = (digits(&o[1..3])?, digits(&o[3..5])?);
            let v = oh * 3600 + om * 60;
            if o.starts_with('+') { v } else { -v }
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // days_from_civil (H. Hinnant)
    let y = if mo <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

fn key_pref(value: &[u8]) -> Option<SignerId> {
    let t = der::parse_one(value).ok()?;
    match t.tag {
        0xa0 | der::tag::SEQUENCE => {
            let c = t.children().ok()?;
            issuer_serial_id(c.first()?, c.get(1)?).ok()
        }
        0xa1 => {
            let c = t.children().ok()?;
            Some(SignerId::KeyId(c.first()?.octets().ok()?))
        }
        0x82 | 0xa2 => Some(SignerId::KeyId(t.octets().ok()?)),
        _ => None,
    }
}

fn parse_signer(si: &Tlv<'_>) -> Result<SignerView> {
    if si.tag != der::tag::SEQUENCE {
        return Err(malformed_sd("SignerInfo"));
    }
    let f = si.children()?;
    let mut i = 1; // skip version
    let sid_t = f.get(i).ok_or_else(|| malformed_sd("SignerInfo sid"))?;
    let sid = match sid_t.tag {
        der::tag::SEQUENCE => {
            let c = sid_t.children()?;
            issuer_serial_id(
                c.first().ok_or_else(|| malformed_sd("sid"))?,
                c.get(1).ok_or_else(|| malformed_sd("sid"))?,
            )?
        }
        0x80 | 0xa0 => SignerId::KeyId(sid_t.octets()?),
        _ => return Err(malformed_sd("SignerInfo sid")),
    };
    i += 1;
    let digest_oid = alg_oid(f.get(i).ok_or_else(|| malformed_sd("digestAlgorithm"))?)?;
    i += 1;
    let mut attrs = None;
    if let Some(sa) = f.get(i).filter(|t| t.tag == 0xa0) {
        let mut list = Vec::new();
        for a in sa.children()? {
            let ac = a.children()?;
            let oid = ac
                .first()
                .and_then(|o| o.oid())
                .ok_or_else(|| malformed_sd("attribute type"))?;
            let set = ac
                .get(1)
                .filter(|s| s.tag == der::tag::SET)
                .ok_or_else(|| malformed_sd("attribute values"))?;
            let values = set.children()?.iter().map(|v| v.raw.to_vec()).collect();
            list.push(Attr { oid, values });
        }
        attrs = Some(list);
        i += 1;
    }
    let sig_alg = f.get(i).ok_or_else(|| malformed_sd("signatureAlgorithm"))?;
    let signature_oid = alg_oid(sig_alg)?;
    let pss = (signature_oid == OID_RSASSA_PSS).then(|| {
        pss_params(
            sig_alg
                .children()
                .ok()
                .and_then(|c| c.get(1).copied())
                .as_ref(),
        )
    });
    f.get(i + 1)
        .filter(|t| t.tag == der::tag::OCTET_STRING || t.tag == 0x24)
        .ok_or_else(|| malformed_sd("signature"))?;

    let mut s = SignerSummary {
        sid,
        digest: oid_name(&digest_oid),
        digest_oid,
        signature_alg: oid_name(&signature_oid),
        signature_oid,
        pss,
        signing_time: None,
        signed_attrs_present: attrs.is_some(),
        content_type_attrs: Vec::new(),
        message_digest_values: Vec::new(),
        capabilities: Vec::new(),
        encryption_key_preference: None,
        ess_cert_ids: Vec::new(),
        signed_attr_types: Vec::new(),
    };
    let mut ms_pref = None;
    let (mut ess_v2, mut ess_v1) = (None, None);
    for a in attrs.iter().flatten() {
        s.signed_attr_types.push(a.oid.clone());
        match a.oid.as_str() {
            OID_CONTENT_TYPE => {
                for v in &a.values {
                    let o = der::parse_one(v).ok().and_then(|t| t.oid());
                    s.content_type_attrs
                        .push(o.unwrap_or_else(|| "malformed".into()));
                }
            }
            OID_MESSAGE_DIGEST => {
                for v in &a.values {
                    let octets = der::parse_one(v)
                        .ok()
                        .filter(|t| t.tag == der::tag::OCTET_STRING)
                        .map(|t| t.value.to_vec());
                    s.message_digest_values
                        .push(octets.unwrap_or_else(|| v.clone()));
                }
            }
            OID_SIGNING_TIME if s.signing_time.is_none() => {
                s.signing_time = a
                    .values
                    .first()
                    .and_then(|v| der::parse_one(v).ok())
                    .and_then(|t| parse_time(&t));
            }
            OID_SMIME_CAPABILITIES if s.capabilities.is_empty() => {
                let caps = a.values.first().and_then(|v| der::parse_one(v).ok());
                for c in caps
                    .map(|c| c.children().unwrap_or_default())
                    .unwrap_or_default()
                {
                    if let Some(o) = c
                        .children()
                        .ok()
                        .and_then(|cc| cc.first().and_then(|x| x.oid()))
                    {
                        s.capabilities.push(o);
                    }
                }
            }
            OID_ENC_KEY_PREF if s.encryption_key_preference.is_none() => {
                s.encryption_key_preference = a.values.first().and_then(|v| key_pref(v));
            }
            OID_SIGNING_CERT_V2 if ess_v2.is_none() => {
                ess_v2 = a.values.first().map(|v| ess_ids(v, true));
            }
            OID_SIGNING_CERT_V1 if ess_v1.is_none() => {
                ess_v1 = a.values.first().map(|v| ess_ids(v, false));
            }
            OID_MS_ENC_KEY_PREF if ms_pref.is_none() => {
                ms_pref = a.values.first().and_then(|v| key_pref(v));
            }
            _ => {}
        }
    }
    s.ess_cert_ids = ess_v2.or(ess_v1).unwrap_or_default();
    if s.encryption_key_preference.is_none() {
        s.encryption_key_preference = ms_pref;
    }
    Ok(SignerView { summary: s, attrs })
}

impl SignedData {
    /// Parses a DER or BER ContentInfo that must be id-signedData. Any other type is refused with an error that
    /// names it (envelopedData, authEnvelopedData…).
    pub fn from_der(der_in: &[u8]) -> Result<Self> {
        Self::from_der_with(der_in, None)
    }

    /// [`SignedData::from_der`], with the certificates the SignedData carries parsed through `cache`: a
    /// definite-length SignedData whose certificates are all plain X.509 certificates is handed to OpenSSL
    /// without its certificates field (nothing signed is in it), and [`SignedData::certificates`] returns the
    /// cached certificates parsed from exactly those bytes. Anything else is parsed as by `from_der`.
    pub fn from_der_cached(der_in: &[u8], cache: &ParsedCerts) -> Result<Self> {
        Self::from_der_with(der_in, Some(cache))
    }

    fn from_der_with(der_in: &[u8], cache: Option<&ParsedCerts>) -> Result<Self> {
        let ty = content_type_of(der_in)?;
        if ty != CmsType::SignedData {
            return Err(
                Error::bad_input(format!("the CMS structure is {ty}, not signedData")).hint(
                    "this is not a signature; decrypt or decompress it first if that is what it is",
                ),
            );
        }
        let top = der::parse_one(der_in)?;
        let ci = top.children()?;
        let explicit = ci
            .get(1)
            .filter(|t| t.tag == 0xa0)
            .ok_or_else(|| malformed_sd("no content"))?;
        let sd = explicit
            .children()?
            .into_iter()
            .next()
            .ok_or_else(|| malformed_sd("no content"))?;
        if sd.tag != der::tag::SEQUENCE {
            return Err(malformed_sd("not a SEQUENCE"));
        }
        let f = sd.children()?;
        // The certificates field ([0] IMPLICIT, between encapContentInfo and signerInfos) is counted here, before
        // OpenSSL parses every certificate in it.
        if let Some(certs) = f
            .iter()
            .skip(3)
            .take(f.len().saturating_sub(4))
            .find(|t| t.tag == 0xa0)
        {
            let n = certs.children()?.len();
            if n > crate::limits::MAX_SIGNED_DATA_CERTS {
                return Err(Error::limit(format!(
                    "the signature carries {n} certificates; more than {} is refused",
                    crate::limits::MAX_SIGNED_DATA_CERTS
                ))
                .hint("a real signature carries its signer's certificate and a short chain: this message was made to exhaust resources; ask the sender to sign it again"));
            }
        }
        let digest_set = f
            .get(1)
            .filter(|t| t.tag == der::tag::SET)
            .ok_or_else(|| malformed_sd("digestAlgorithms"))?;
        let digest_algorithms = digest_set
            .children()?
            .iter()
            .map(alg_oid)
            .collect::<Result<Vec<_>>>()?;
        let eci = f
            .get(2)
            .filter(|t| t.tag == der::tag::SEQUENCE)
            .ok_or_else(|| malformed_sd("encapContentInfo"))?;
        let ec = eci.children()?;
        let econtent_type = ec
            .first()
            .and_then(|o| o.oid())
            .ok_or_else(|| malformed_sd("eContentType"))?;
        let econtent = match ec.get(1) {
            Some(t) if t.tag == 0xa0 => {
                let inner = t
                    .children()?
                    .into_iter()
                    .next()
                    .ok_or_else(|| malformed_sd("eContent"))?;
                if inner.tag != der::tag::OCTET_STRING && inner.tag != 0x24 {
                    return Err(malformed_sd("eContent is not an OCTET STRING"));
                }
                Some(inner.octets()?)
            }
            Some(_) => return Err(malformed_sd("eContent")),
            None => None,
        };
        let sis = f
            .last()
            .filter(|t| t.tag == der::tag::SET)
            .ok_or_else(|| malformed_sd("signerInfos"))?;
        let signers = sis
            .children()?
            .iter()
            .map(parse_signer)
            .collect::<Result<Vec<_>>>()?;

        // The certificates field ([0] IMPLICIT), when every element is a certificate and every enclosing length
        // is definite (so the structure can be re-encoded around it unchanged).
        let definite = |t: &Tlv<'_>| t.raw.get(1) != Some(&0x80);
        let stripped = match (cache, f.get(3)) {
            (Some(cache), Some(cf))
                if cf.tag == 0xa0
                    && [&top, explicit, &sd, cf].iter().all(|t| definite(t))
                    && ci.len() == 2
                    && explicit.children()?.len() == 1 =>
            {
                let elems = cf.children()?;
                if elems
                    .iter()
                    .all(|c| c.tag == der::tag::SEQUENCE && definite(c))
                {
                    let certs = elems
                        .iter()
                        .map(|c| cache.get(c.raw))
                        .collect::<Result<Vec<_>>>()?;
                    let body: Vec<u8> = f
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != 3)
                        .flat_map(|(_, t)| t.raw.iter().copied())
                        .collect();
                    let inner = der::tlv(0xa0, &der::tlv(der::tag::SEQUENCE, &body));
                    let whole = der::tlv(der::tag::SEQUENCE, &[ci[0].raw, &inner].concat());
                    Some((whole, certs))
                } else {
                    None
                }
            }
            _ => None,
        };
        let (cms_der, certs): (&[u8], _) = match &stripped {
            Some((d, c)) => (d, Some(c.clone())),
            None => (der_in, None),
        };
        let cms = CmsContentInfo::from_der(cms_der).map_err(|e| {
            Error::bad_input("OpenSSL cannot parse the SignedData")
                .detail(e)
                .hint("the signature is damaged")
        })?;
        let sd = SignedData {
            cms,
            econtent_type,
            econtent,
            digest_algorithms,
            signers,
            certs,
            _not_sync: PhantomData,
        };
        if sd.openssl_signer_count() != sd.signers.len() {
            return Err(malformed_sd("signer count differs between parsers"));
        }
        Ok(sd)
    }

    fn signer_infos(&self) -> *mut ffi::stack_st_CMS_SignerInfo {
        // SAFETY: `self.cms` is a live SignedData; the stack is owned by it (get0).
        let st = unsafe { ffi::CMS_get0_SignerInfos(self.cms.as_ptr()) };
        if st.is_null() {
            let _ = ErrorStack::get();
        }
        st
    }

    fn openssl_signer_count(&self) -> usize {
        let st = self.signer_infos();
        if st.is_null() {
            return 0;
        }
        // SAFETY: `st` is a valid stack owned by `self.cms`.
        let n = unsafe { sys::OPENSSL_sk_num(st.cast()) };
        usize::try_from(n).unwrap_or(0)
    }

    fn signer_info(&self, idx: usize) -> Result<*mut ffi::CMS_SignerInfo> {
        let st = self.signer_infos();
        if st.is_null() || idx >= self.signers.len() {
            return Err(Error::usage(format!("there is no signer #{idx}")));
        }
        // SAFETY: idx < count (checked against our parse, which equals OpenSSL's count); the SignerInfo is owned
        // by `self.cms`.
        let si =
            unsafe { sys::OPENSSL_sk_value(st.cast(), idx as c_int) }.cast::<ffi::CMS_SignerInfo>();
        if si.is_null() {
            return Err(Error::usage(format!("there is no signer #{idx}")));
        }
        Ok(si)
    }

    /// The encapsulated content type (dotted OID; use [`oid_name`] to display it).
    pub fn econtent_type(&self) -> String {
        self.econtent_type.clone()
    }

    /// A copy of the encapsulated content, or `None` when detached.
    pub fn econtent(&self) -> Option<Vec<u8>> {
        self.econtent.clone()
    }

    /// The encapsulated content without copying, or `None` when detached.
    pub fn econtent_bytes(&self) -> Option<&[u8]> {
        self.econtent.as_deref()
    }

    /// True when the SignedData carries no eContent (a detached signature).
    pub fn is_detached(&self) -> bool {
        self.econtent.is_none()
    }

    /// Number of entries in `digestAlgorithms` (0 is malformed but must not crash: T37).
    pub fn digest_algorithm_count(&self) -> usize {
        self.digest_algorithms.len()
    }

    /// The `digestAlgorithms` OIDs.
    pub fn digest_algorithms(&self) -> &[String] {
        &self.digest_algorithms
    }

    /// The embedded certificates (`certificates` field), in order.
    pub fn certificates(&self) -> Vec<X509> {
        if let Some(c) = &self.certs {
            return c.clone();
        }
        // SAFETY: `self.cms` is live; CMS_get1_certs returns an owned stack of up-ref'd certificates or NULL.
        let st = unsafe { ffi::CMS_get1_certs(self.cms.as_ptr()) };
        if st.is_null() {
            let _ = ErrorStack::get();
            return Vec::new();
        }
        // SAFETY: `st` is an owned STACK_OF(X509); Stack takes ownership and frees the stack and certs on drop.
        let stack = unsafe { Stack::<X509>::from_ptr(st) };
        stack.into_iter().collect()
    }

    /// The CRLs carried in the `crls` field (DER, at most `max`): revocation data, untrusted until OpenSSL
    /// checks each signature at use.
    pub fn crls(&self, max: usize) -> Vec<Vec<u8>> {
        // SAFETY: `self.cms` is live for the call.
        unsafe { super::revocation::cms_crls(self.cms.as_ptr(), max) }
    }

    /// Number of SignerInfos.
    pub fn signer_count(&self) -> usize {
        self.signers.len()
    }

    /// What each SignerInfo claims, in order (nothing verified).
    pub fn signers(&self) -> Vec<SignerSummary> {
        self.signers.iter().map(|s| s.summary.clone()).collect()
    }

    /// The digest to hash the content with for signer `idx`. MD5 and unknown algorithms are refused.
    pub fn signer_digest(&self, idx: usize) -> Result<MessageDigest> {
        let s = &self
            .signers
            .get(idx)
            .ok_or_else(|| Error::usage(format!("there is no signer #{idx}")))?
            .summary;
        if s.digest_oid == OID_MD5 {
            return Err(Error::unsupported(
                "the signer uses MD5, which is broken and refused",
            ));
        }
        // MD4, MDC-2, Whirlpool and RIPEMD-160 live in OpenSSL's legacy provider, loaded only when needed (old
        // archives): such signatures must still be judged (as weak), not fail to compute.
        if matches!(
            s.digest_oid.as_str(),
            "1.2.840.113549.2.4" | "2.5.8.3.101" | "1.0.10118.3.0.55" | "1.3.36.3.2.1"
        ) {
            super::provider::ensure_legacy();
        }
        let md = Asn1Object::from_str(&s.digest_oid)
            .ok()
            .and_then(|o| MessageDigest::from_nid(o.nid()));
        let _ = ErrorStack::get();
        md.ok_or_else(|| Error::unsupported(format!("unsupported digest algorithm {}", s.digest)))
    }

    /// S/MIME profile rules for signer `idx` that OpenSSL does not (fully) enforce; empty when all hold.
    ///
    /// - signedAttrs present (ForgedAttributes, T14);
    /// - exactly one content-type attribute with one value, equal to eContentType (T15);
    /// - exactly one message-digest attribute with exactly one OCTET STRING value;
    /// - at most one signing-time attribute, with one value;
    /// - digest algorithm (and signature algorithm) not MD5;
    /// - no embedded certificate matching the signer with an RSA key above [`MAX_RSA_VERIFY_BITS`] (T25).
    pub fn profile_violations(&self, idx: usize) -> Vec<String> {
        let Some(v) = self.signers.get(idx) else {
            return vec![format!("there is no signer #{idx}")];
        };
        let s = &v.summary;
        let mut out = Vec::new();
        if s.digest_oid == OID_MD5 || s.signature_oid == OID_MD5_RSA {
            out.push("the signer uses MD5, which is broken".to_string());
        }
        let Some(attrs) = &v.attrs else {
            out.push(
                "the signer has no signed attributes (S/MIME requires them; this is how ForgedAttributes works)"
                    .to_string(),
            );
            if self
                .econtent
                .as_deref()
                .is_some_and(looks_like_signed_attributes)
            {
                out.push(
                    "the content is itself an encoded set of signed attributes (a ForgedAttributes forgery)"
                        .to_string(),
                );
            }
            return out;
        };
        let count = |oid: &str| attrs.iter().filter(|a| a.oid == oid).count();
        let values = |oid: &str| {
            attrs
                .iter()
                .filter(|a| a.oid == oid)
                .map(|a| a.values.len())
                .sum::<usize>()
        };
        match (count(OID_CONTENT_TYPE), values(OID_CONTENT_TYPE)) {
            (0, _) => out.push("the content-type signed attribute is missing".into()),
            (1, 1) => {
                if s.content_type_attrs[0] != self.econtent_type {
                    out.push(format!(
                        "the content-type signed attribute ({}) differs from the encapsulated content type ({})",
                        oid_name(&s.content_type_attrs[0]),
                        oid_name(&self.econtent_type)
                    ));
                }
            }
            (1, n) => out.push(format!(
                "the content-type signed attribute has {n} values (exactly one allowed)"
            )),
            (n, _) => out.push(format!(
                "there are {n} content-type signed attributes (exactly one allowed)"
            )),
        }
        match (count(OID_MESSAGE_DIGEST), values(OID_MESSAGE_DIGEST)) {
            (0, _) => out.push("the message-digest signed attribute is missing".into()),
            (1, 1) => {
                let v = &attrs
                    .iter()
                    .find(|a| a.oid == OID_MESSAGE_DIGEST)
                    .expect("counted")
                    .values[0];
                if der::parse_one(v)
                    .map(|t| t.tag != der::tag::OCTET_STRING)
                    .unwrap_or(true)
                {
                    out.push("the message-digest value is not an OCTET STRING".into());
                }
            }
            (1, n) => out.push(format!(
                "the message-digest signed attribute has {n} values (exactly one allowed)"
            )),
            (n, _) => out.push(format!(
                "there are {n} message-digest signed attributes (exactly one allowed)"
            )),
        }
        match (count(OID_SIGNING_TIME), values(OID_SIGNING_TIME)) {
            (0, _) | (1, 1) => {}
            (1, n) => out.push(format!(
                "the signing-time signed attribute has {n} values (exactly one allowed)"
            )),
            (n, _) => out.push(format!(
                "there are {n} signing-time signed attributes (at most one allowed)"
            )),
        }
        if let Ok(si) = self.signer_info(idx) {
            for c in self.certificates() {
                if rsa_bits(&c).is_some_and(|b| b > MAX_RSA_VERIFY_BITS) && cert_matches(si, &c) {
                    out.push(format!(
                        "the signer's certificate has an RSA key of {} bits (more than {MAX_RSA_VERIFY_BITS} is refused)",
                        rsa_bits(&c).unwrap_or(0)
                    ));
                    break;
                }
            }
        }
        out
    }

    /// Does `cert` match signer `idx`'s identifier, and does the signature over its signed attributes verify
    /// with `cert`'s public key? Call it for *every* candidate certificate whose issuer/serial or subject key
    /// identifier matches (RFC 8551 §2.6): a decoy with the same key identifier simply yields `false`.
    ///
    /// This checks the signature only. Integrity of the content also needs [`content_digest`] to equal the single
    /// message-digest value, and [`Self::profile_violations`] to be empty; trust needs chain validation.
    ///
    /// Errors: no such signer, no signed attributes, an RSA key over [`MAX_RSA_VERIFY_BITS`] (refused before any
    /// cryptography), or OpenSSL failing for a reason other than a bad signature (e.g. malformed attributes).
    pub fn verify_signer(&self, idx: usize, cert: &X509Ref) -> Result<bool> {
        let si = self.signer_info(idx)?;
        if !self.signers[idx].summary.signed_attrs_present {
            return Err(Error::bad_input(format!("signer #{idx} has no signed attributes"))
                .hint("S/MIME signatures must carry signed attributes; treat this signature as invalid"));
        }
        if let Some(bits) = rsa_bits(cert).filter(|b| *b > MAX_RSA_VERIFY_BITS) {
            return Err(Error::limit(format!(
                "the candidate certificate has an RSA key of {bits} bits; more than {MAX_RSA_VERIFY_BITS} is refused"
            )));
        }
        if !cert_matches(si, cert) {
            return Ok(false);
        }
        // SAFETY: `si` is owned by `self.cms` (alive); set1 up-refs `cert` and takes its public key. `SignedData`
        // is !Sync, so no other thread touches this SignerInfo concurrently.
        unsafe { ffi::CMS_SignerInfo_set1_signer_cert(si, cert.as_ptr()) };
        // SAFETY: as above; verifies the signature over the DER of the signed attributes.
        let r = unsafe { ffi::CMS_SignerInfo_verify(si) };
        let stack = ErrorStack::get();
        // SAFETY: as above; drops our certificate reference from the SignerInfo.
        unsafe { ffi::CMS_SignerInfo_set1_signer_cert(si, std::ptr::null_mut()) };
        match r {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(Error::crypto(
                format!("cannot check the signature of signer #{idx}"),
                stack,
            )),
        }
    }
}

/// True if `content` parses as a DER SET OF Attribute containing a content-type or message-digest attribute.
fn looks_like_signed_attributes(content: &[u8]) -> bool {
    let Ok(set) = der::parse_one(content) else {
        return false;
    };
    if set.tag != der::tag::SET {
        return false;
    }
    set.children().is_ok_and(|attrs| {
        attrs.iter().any(|a| {
            let oid = a
                .children()
                .ok()
                .and_then(|c| c.first().and_then(|o| o.oid()));
            matches!(oid.as_deref(), Some(OID_CONTENT_TYPE | OID_MESSAGE_DIGEST))
        })
    })
}

fn rsa_bits(cert: &X509Ref) -> Option<u32> {
    let k = cert.public_key().ok();
    let _ = ErrorStack::get();
    let k = k?;
    (k.id() == Id::RSA || k.id() == Id::RSA_PSS).then(|| k.bits())
}

fn cert_matches(si: *mut ffi::CMS_SignerInfo, cert: &X509Ref) -> bool {
    // SAFETY: `si` is a live SignerInfo and `cert` a live certificate; the call only compares.
    let r = unsafe { ffi::CMS_SignerInfo_cert_cmp(si, cert.as_ptr()) };
    let _ = ErrorStack::get();
    r == 0
}

/// Hashes `content` (streamed in 64 KiB pieces) with `md`.
pub fn content_digest(md: MessageDigest, content: &mut dyn Read) -> Result<Vec<u8>> {
    Ok(content_digests(&[md], content)?.pop().expect("one digest"))
}

/// Hashes `content` once with every algorithm in `mds` (streamed), e.g. one per signer.
pub fn content_digests(mds: &[MessageDigest], content: &mut dyn Read) -> Result<Vec<Vec<u8>>> {
    let mut hashers = mds
        .iter()
        .map(|m| Hasher::new(*m))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match content.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::new(
                    crate::error::ErrorKind::Io,
                    format!("cannot read the content: {e}"),
                ));
            }
        };
        for h in &mut hashers {
            h.update(&buf[..n])?;
        }
    }
    hashers
        .iter_mut()
        .map(|h| Ok(h.finish()?.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached parse hands OpenSSL the SignedData without its certificates and returns the same
    /// certificates, signers and content; BER input is parsed as before.
    #[test]
    fn cached_parse_is_the_same_signed_data() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/msg");
        let cache = ParsedCerts::default();
        for f in [
            "valid-rsa-alice.p7s.der",
            "valid-opaque-ber-alice.der",
            "valid-two-signers.p7s.der",
        ] {
            let der = std::fs::read(dir.join(f)).unwrap();
            let a = SignedData::from_der(&der).unwrap();
            let b = SignedData::from_der_cached(&der, &cache).unwrap();
            let ders = |s: &SignedData| -> Vec<Vec<u8>> {
                s.certificates()
                    .iter()
                    .map(|c| c.to_der().unwrap())
                    .collect()
            };
            assert_eq!(ders(&a), ders(&b), "{f}");
            assert!(!ders(&a).is_empty(), "{f}");
            assert_eq!(a.signers().len(), b.signers().len());
            assert_eq!(a.econtent(), b.econtent());
            for (i, c) in a.certificates().iter().enumerate().take(a.signers().len()) {
                assert_eq!(
                    a.verify_signer(i, c).ok(),
                    b.verify_signer(i, c).ok(),
                    "{f}"
                );
            }
        }
        let der = std::fs::read(dir.join("valid-rsa-alice.p7s.der")).unwrap();
        let b = SignedData::from_der_cached(&der, &cache).unwrap();
        assert!(
            b.certs.is_some(),
            "a DER SignedData is parsed through the cache"
        );
        let ber = std::fs::read(dir.join("valid-opaque-ber-alice.der")).unwrap();
        assert!(
            SignedData::from_der_cached(&ber, &cache)
                .unwrap()
                .certs
                .is_none()
        );
    }
    use openssl::asn1::{Asn1Integer, Asn1OctetString, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::{
        BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
    };
    use openssl::x509::{X509Builder, X509Extension, X509NameBuilder};
    use std::path::Path;
    use std::process::Command;
    use std::sync::OnceLock;

    pub(super) struct Ident {
        pub cert: X509,
        pub key: PKey<Private>,
    }

    fn rsa(bits: u32) -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
    }
    fn ec() -> PKey<Private> {
        PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
        )
        .unwrap()
    }

    fn build(
        cn: &str,
        key: &PKey<Private>,
        issuer: Option<&Ident>,
        serial: u32,
        ski: Option<&[u8]>,
    ) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("O", "smimekit test").unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(serial).unwrap()).unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map(|i| i.cert.subject_name()).unwrap_or(&name))
            .unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        if issuer.is_none() {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.append_extension(KeyUsage::new().key_cert_sign().crl_sign().build().unwrap())
                .unwrap();
        } else {
            b.append_extension(BasicConstraints::new().build().unwrap())
                .unwrap();
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .non_repudiation()
                    .key_encipherment()
                    .build()
                    .unwrap(),
            )
            .unwrap();
            b.append_extension(ExtendedKeyUsage::new().email_protection().build().unwrap())
                .unwrap();
            let san = SubjectAlternativeName::new()
                .email(&format!("{cn}@example.com"))
                .build(&b.x509v3_context(issuer.map(|i| &*i.cert), None))
                .unwrap();
            b.append_extension(san).unwrap();
        }
        match ski {
            Some(id) => {
                let obj = Asn1Object::from_str("2.5.29.14").unwrap();
                let v =
                    Asn1OctetString::new_from_bytes(&der::tlv(der::tag::OCTET_STRING, id)).unwrap();
                b.append_extension(X509Extension::new_from_der(&obj, false, &v).unwrap())
                    .unwrap();
            }
            None => {
                let ext = SubjectKeyIdentifier::new()
                    .build(&b.x509v3_context(None, None))
                    .unwrap();
                b.append_extension(ext).unwrap();
            }
        }
        let signer = issuer.map(|i| &i.key).unwrap_or(key);
        b.sign(signer, MessageDigest::sha256()).unwrap();
        b.build()
    }

    pub(super) struct Pki {
        pub ca: Ident,
        pub rsa: Ident,
        pub ec: Ident,
    }

    pub(super) fn pki() -> &'static Pki {
        static P: OnceLock<Pki> = OnceLock::new();
        P.get_or_init(|| {
            let ck = rsa(2048);
            let ca = Ident {
                cert: build("Test Root", &ck, None, 1, None),
                key: ck,
            };
            let rk = rsa(2048);
            let rsa_id = Ident {
                cert: build("alice", &rk, Some(&ca), 2, None),
                key: rk,
            };
            let ek = ec();
            let ec_id = Ident {
                cert: build("bob", &ek, Some(&ca), 3, None),
                key: ek,
            };
            Pki {
                ca,
                rsa: rsa_id,
                ec: ec_id,
            }
        })
    }

    /// A fresh directory holding ca.pem, alice.{pem,key} (RSA) and bob.{pem,key} (EC); removed on drop.
    pub(super) fn pki_dir() -> tempfile::TempDir {
        let p = pki();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), p.ca.cert.to_pem().unwrap()).unwrap();
        for (n, id) in [("alice", &p.rsa), ("bob", &p.ec)] {
            std::fs::write(
                dir.path().join(format!("{n}.pem")),
                id.cert.to_pem().unwrap(),
            )
            .unwrap();
            std::fs::write(
                dir.path().join(format!("{n}.key")),
                id.key.private_key_to_pem_pkcs8().unwrap(),
            )
            .unwrap();
        }
        dir
    }

    fn openssl(args: &[&str], dir: &Path) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), s)
    }

    const CONTENT: &[u8] = b"Content-Type: text/plain\r\n\r\nHello, signed world.\r\n";

    fn check_signed(dir: &Path, id: &Ident, pss: bool, digest: Digest, detached: bool) {
        let p = pki();
        let mut params = SignParams::new(&id.cert, &id.key);
        params.pss = pss;
        params.digest = digest;
        params.detached = detached;
        // Detached: the DetachedSigner, fed in two pieces (what `smimekit sign` uses); opaque: `sign`.
        let der_out = if detached {
            let mut s = DetachedSigner::new(&params).unwrap();
            s.update(&CONTENT[..10]).unwrap();
            s.update(&CONTENT[10..]).unwrap();
            s.finish().unwrap()
        } else {
            let mut tee = Vec::new();
            let d = sign(&params, &mut &CONTENT[..], Some(&mut tee)).unwrap();
            assert_eq!(tee, CONTENT);
            d
        };

        let mut sd = SignedData::from_der(&der_out).unwrap();
        assert_eq!(sd.econtent_type(), OID_DATA);
        assert_eq!(sd.is_detached(), detached);
        assert_eq!(sd.econtent().as_deref(), (!detached).then_some(CONTENT));
        assert_eq!(sd.digest_algorithm_count(), 1);
        assert_eq!(sd.signer_count(), 1);
        let certs = sd.certificates();
        assert_eq!(certs.len(), 1);
        let s = &sd.signers()[0];
        assert!(s.signed_attrs_present);
        assert_eq!(s.digest_oid, digest.oid());
        assert_eq!(s.content_type_attrs, vec![OID_DATA.to_string()]);
        assert_eq!(s.message_digest_values.len(), 1);
        let md = sd.signer_digest(0).unwrap();
        assert_eq!(
            content_digest(md, &mut &CONTENT[..]).unwrap(),
            s.message_digest_values[0]
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (s.signing_time.unwrap() - now).abs() < 300,
            "{:?}",
            s.signing_time
        );
        let caps: Vec<&str> = s.capabilities.iter().map(String::as_str).collect();
        let mut want = vec![
            "2.16.840.1.101.3.4.1.46",
            "2.16.840.1.101.3.4.1.6",
            "2.16.840.1.101.3.4.1.42",
            "2.16.840.1.101.3.4.1.2",
        ];
        if id.key.id() == Id::RSA {
            want.push(OID_RSAES_OAEP);
        }
        assert_eq!(caps, want);
        let (issuer, serial) = issuer_and_serial(&id.cert).unwrap();
        match (&s.sid, &s.encryption_key_preference) {
            (
                SignerId::IssuerSerial { issuer_der, .. },
                Some(SignerId::IssuerSerial {
                    issuer_der: e,
                    serial_hex,
                    ..
                }),
            ) => {
                assert_eq!(issuer_der, &issuer);
                assert_eq!(e, &issuer);
                assert_eq!(serial_hex, &hex(&serial[2..]));
            }
            other => panic!("{other:?}"),
        }
        if let SignerId::IssuerSerial { issuer, .. } = &s.sid {
            assert_eq!(issuer, "CN=Test Root,O=smimekit test");
        }
        // Each of our attributes exactly once, single-valued.
        let mut types = s.signed_attr_types.clone();
        types.sort();
        let mut want_types = vec![
            OID_CONTENT_TYPE,
            OID_MESSAGE_DIGEST,
            OID_SIGNING_TIME,
            OID_SMIME_CAPABILITIES,
            OID_SIGNING_CERT_V2,
            OID_ENC_KEY_PREF,
            OID_MS_ENC_KEY_PREF,
        ];
        want_types.sort();
        assert_eq!(types, want_types);
        if pss {
            assert_eq!(s.signature_oid, OID_RSASSA_PSS);
            let pp = s.pss.as_ref().unwrap();
            assert!(
                pp.hash.contains(digest.oid()) && pp.mgf1_hash.contains(digest.oid()),
                "{pp:?}"
            );
            assert_eq!(pp.salt_len, digest.output_len() as u64);
        }
        assert_eq!(s.ess_cert_ids.len(), 1);
        assert_eq!(s.ess_cert_ids[0].hash_oid, OID_SHA256);
        assert_eq!(s.ess_cert_ids[0].matches(&id.cert), Some(true));
        assert_eq!(s.ess_cert_ids[0].matches(&p.ca.cert), Some(false));
        assert!(
            sd.profile_violations(0).is_empty(),
            "{:?}",
            sd.profile_violations(0)
        );
        assert!(sd.verify_signer(0, &id.cert).unwrap());
        assert!(
            !sd.verify_signer(0, &p.ca.cert).unwrap(),
            "the CA certificate does not match the sid"
        );
        let other = if id.key.id() == Id::RSA {
            &p.ec.cert
        } else {
            &p.rsa.cert
        };
        assert!(!sd.verify_signer(0, other).unwrap());
        assert!(sd.verify_signer(0, &id.cert).unwrap(), "repeatable");
        let _ = &mut sd;

        // Cross-check with the OpenSSL CLI.
        let tag = format!(
            "{}-{pss}-{}-{detached}",
            id.key.id().as_raw(),
            digest.micalg()
        );
        let sig = dir.join(format!("{tag}.der"));
        let content = dir.join(format!("{tag}.txt"));
        std::fs::write(&sig, &der_out).unwrap();
        std::fs::write(&content, CONTENT).unwrap();
        let (sig, content) = (sig.to_str().unwrap(), content.to_str().unwrap());
        let mut args = vec![
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            sig,
            "-CAfile",
            "ca.pem",
            "-out",
            "/dev/null",
        ];
        if detached {
            args.extend(["-content", content]);
        }
        let (ok, out) = openssl(&args, dir);
        assert!(ok, "openssl cms -verify failed: {out}");
        let (ok, out) = openssl(
            &["cms", "-cmsout", "-print", "-inform", "DER", "-in", sig],
            dir,
        );
        assert!(ok, "{out}");
        for oid in [
            OID_CONTENT_TYPE,
            OID_MESSAGE_DIGEST,
            OID_SIGNING_TIME,
            OID_SMIME_CAPABILITIES,
            OID_SIGNING_CERT_V2,
            OID_ENC_KEY_PREF,
            OID_MS_ENC_KEY_PREF,
        ] {
            let n = out
                .lines()
                .filter(|l| l.contains("object:") && l.trim_end().ends_with(&format!("({oid})")))
                .count();
            assert_eq!(n, 1, "{oid} appears {n} times in:\n{out}");
        }
        assert!(
            !out.contains("des-ede3") && !out.contains("rc2") && !out.contains("des-cbc"),
            "{out}"
        );
    }

    #[test]
    fn sign_parse_verify_matrix() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let p = pki();
        let dir = pki_dir();
        for d in [Digest::Sha256, Digest::Sha384, Digest::Sha512] {
            for detached in [true, false] {
                check_signed(dir.path(), &p.rsa, false, d, detached);
                check_signed(dir.path(), &p.rsa, true, d, detached);
                check_signed(dir.path(), &p.ec, false, d, detached);
            }
        }
    }

    // ---- DER surgery helpers -----------------------------------------------------------------------------

    fn off(buf: &[u8], t: &Tlv<'_>) -> usize {
        t.raw.as_ptr() as usize - buf.as_ptr() as usize
    }

    /// Replaces the TLV starting at absolute offset `at` with `new` (empty = delete, two TLVs = insert), fixing
    /// the lengths of every enclosing element.
    fn replace_tlv(buf: &[u8], at: usize, new: &[u8]) -> Vec<u8> {
        fn go(whole: &[u8], t: Tlv<'_>, at: usize, new: &[u8]) -> Vec<u8> {
            if off(whole, &t) == at {
                return new.to_vec();
            }
            let mut content = Vec::new();
            for c in t.children().unwrap() {
                let (cs, ce) = (off(whole, &c), off(whole, &c) + c.raw.len());
                if cs <= at && at < ce {
                    content.extend(go(whole, c, at, new));
                } else {
                    content.extend_from_slice(c.raw);
                }
            }
            der::tlv(t.tag, &content)
        }
        go(buf, der::parse_one(buf).unwrap(), at, new)
    }

    /// (signedData fields, signerInfos children) of a ContentInfo.
    fn sd_fields(buf: &[u8]) -> Vec<Tlv<'_>> {
        let top = der::parse_one(buf).unwrap();
        let sd = top.children().unwrap()[1].children().unwrap()[0];
        sd.children().unwrap()
    }

    fn signer_info(buf: &[u8], idx: usize) -> Vec<Tlv<'_>> {
        sd_fields(buf).last().unwrap().children().unwrap()[idx]
            .children()
            .unwrap()
    }

    /// Offsets of (attribute, its SET) for each signed attribute of signer 0.
    fn attrs_of(buf: &[u8]) -> Vec<(String, usize, usize)> {
        signed_attrs(&signer_info(buf, 0))
            .children()
            .unwrap()
            .iter()
            .map(|a| {
                let c = a.children().unwrap();
                (c[0].oid().unwrap(), off(buf, a), off(buf, &c[1]))
            })
            .collect()
    }

    fn attr(buf: &[u8], oid: &str) -> (usize, usize) {
        let (_, a, s) = attrs_of(buf)
            .into_iter()
            .find(|(o, _, _)| o == oid)
            .unwrap();
        (a, s)
    }

    fn tlv_at(buf: &[u8], at: usize) -> &[u8] {
        der::Reader::new(&buf[at..]).read().unwrap().raw
    }

    fn sign_default(id: &Ident, detached: bool) -> Vec<u8> {
        let mut p = SignParams::new(&id.cert, &id.key);
        p.detached = detached;
        sign(&p, &mut &CONTENT[..], None).unwrap()
    }

    /// `openssl cms -sign` arguments naming alice (RSA) as the signer.
    const ALICE: &[&str] = &["-signer", "alice.pem", "-inkey", "alice.key"];

    /// The signature value (the last OCTET STRING) of a SignerInfo's fields.
    fn signature_of<'a>(si: &[Tlv<'a>]) -> Tlv<'a> {
        *si.iter()
            .rev()
            .find(|t| t.tag == der::tag::OCTET_STRING)
            .unwrap()
    }

    /// The `[0]` signedAttrs of a SignerInfo's fields.
    fn signed_attrs<'a>(si: &[Tlv<'a>]) -> Tlv<'a> {
        *si.iter().find(|t| t.tag == 0xa0).unwrap()
    }

    fn cli_sign(dir: &Path, extra: &[&str]) -> Vec<u8> {
        std::fs::write(dir.join("c.txt"), CONTENT).unwrap();
        let mut args = vec![
            "cms", "-sign", "-binary", "-in", "c.txt", "-outform", "DER", "-out", "cli.der",
        ];
        args.extend(extra);
        let (ok, out) = openssl(&args, dir);
        assert!(ok, "{out}");
        std::fs::read(dir.join("cli.der")).unwrap()
    }

    // ---- Profile checks ----------------------------------------------------------------------------------

    #[test]
    fn no_signed_attributes_is_forged_attributes_violation() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let dir = pki_dir();
        let d = cli_sign(dir.path(), &[&["-noattr"], ALICE].concat());
        let sd = SignedData::from_der(&d).unwrap();
        let s = &sd.signers()[0];
        assert!(!s.signed_attrs_present);
        let v = sd.profile_violations(0);
        assert!(
            v.iter().any(|m| m.contains("no signed attributes")),
            "{v:?}"
        );
        let e = sd.verify_signer(0, &pki().rsa.cert).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::BadInput);
    }

    #[test]
    fn content_type_mismatch_is_a_violation() {
        let d = sign_default(&pki().rsa, true);
        let f = sd_fields(&d);
        let ect = f[2].children().unwrap()[0];
        let bad = replace_tlv(&d, off(&d, &ect), &der::oid(OID_DIGESTED_DATA));
        let sd = SignedData::from_der(&bad).unwrap();
        assert_eq!(sd.econtent_type(), OID_DIGESTED_DATA);
        // The signature is over the attributes only, so OpenSSL still calls it good: the profile check must not.
        assert!(sd.verify_signer(0, &pki().rsa.cert).unwrap());
        let v = sd.profile_violations(0);
        assert!(
            v.len() == 1 && v[0].contains("differs from the encapsulated content type"),
            "{v:?}"
        );
    }

    #[test]
    fn message_digest_and_content_type_counting() {
        let d = sign_default(&pki().ec, true);
        let (md_attr, md_set) = attr(&d, OID_MESSAGE_DIGEST);
        let md_value = der::parse_one(tlv_at(&d, md_set))
            .unwrap()
            .children()
            .unwrap()[0]
            .raw
            .to_vec();

        // Two values in one message-digest attribute.
        let two_values = der::tlv(
            der::tag::SET,
            &[md_value.clone(), md_value.clone()].concat(),
        );
        let bad = replace_tlv(&d, md_set, &two_values);
        let sd = SignedData::from_der(&bad).unwrap();
        assert_eq!(sd.signers()[0].message_digest_values.len(), 2);
        let v = sd.profile_violations(0);
        assert!(
            v.iter()
                .any(|m| m.contains("message-digest signed attribute has 2 values")),
            "{v:?}"
        );
        assert!(!matches!(sd.verify_signer(0, &pki().ec.cert), Ok(true)));

        // Two message-digest attributes.
        let a = tlv_at(&d, md_attr).to_vec();
        let bad = replace_tlv(&d, md_attr, &[a.clone(), a].concat());
        let sd = SignedData::from_der(&bad).unwrap();
        let v = sd.profile_violations(0);
        assert!(
            v.iter()
                .any(|m| m.contains("there are 2 message-digest signed attributes")),
            "{v:?}"
        );
        assert!(!matches!(sd.verify_signer(0, &pki().ec.cert), Ok(true)));

        // No content-type attribute.
        let (ct_attr, _) = attr(&d, OID_CONTENT_TYPE);
        let bad = replace_tlv(&d, ct_attr, &[]);
        let sd = SignedData::from_der(&bad).unwrap();
        let v = sd.profile_violations(0);
        assert!(
            v.iter()
                .any(|m| m.contains("content-type signed attribute is missing")),
            "{v:?}"
        );

        // A message digest that is not an OCTET STRING.
        let bad = replace_tlv(&d, md_set, &der::tlv(der::tag::SET, &der::uint(5)));
        let v = SignedData::from_der(&bad).unwrap().profile_violations(0);
        assert!(v.iter().any(|m| m.contains("not an OCTET STRING")), "{v:?}");
    }

    #[test]
    fn md5_is_a_violation() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let dir = pki_dir();
        let d = cli_sign(dir.path(), &[&["-md", "md5"], ALICE].concat());
        let sd = SignedData::from_der(&d).unwrap();
        assert!(sd.profile_violations(0).iter().any(|m| m.contains("MD5")));
        assert_eq!(
            sd.signer_digest(0).err().unwrap().kind(),
            crate::error::ErrorKind::Unsupported
        );
    }

    // ---- Candidate certificates, tampering, multiple signers ---------------------------------------------

    #[test]
    fn key_id_collision_tries_every_candidate() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let p = pki();
        let dir = pki_dir();
        let d = cli_sign(dir.path(), &[&["-keyid", "-nocerts"], ALICE].concat());
        let ski = p.rsa.cert.subject_key_id().unwrap().as_slice().to_vec();
        let mk = rsa(2048);
        let decoy = build("mallory", &mk, Some(&p.ca), 99, Some(&ski));
        let sd = SignedData::from_der(&d).unwrap();
        assert_eq!(sd.signers()[0].sid, SignerId::KeyId(ski));
        assert!(sd.certificates().is_empty());
        // Decoy first: it matches the key identifier but its signature check fails; the next candidate wins.
        assert!(!sd.verify_signer(0, &decoy).unwrap());
        assert!(sd.verify_signer(0, &p.rsa.cert).unwrap());
        // Again: the certificate set on the SignerInfo for one check must not linger into the next.
        assert!(!sd.verify_signer(0, &decoy).unwrap());
        assert!(sd.verify_signer(0, &p.rsa.cert).unwrap());
    }

    #[test]
    fn tampered_content_changes_the_digest() {
        let p = pki();
        let d = sign_default(&p.rsa, true);
        let sd = SignedData::from_der(&d).unwrap();
        let want = &sd.signers()[0].message_digest_values[0];
        let md = sd.signer_digest(0).unwrap();
        assert_eq!(&content_digest(md, &mut &CONTENT[..]).unwrap(), want);
        let mut tampered = CONTENT.to_vec();
        tampered[30] ^= 1;
        assert_ne!(&content_digest(md, &mut &tampered[..]).unwrap(), want);

        // Opaque: flip one byte of the eContent inside the DER.
        let d = sign_default(&p.rsa, false);
        let pos = d.windows(CONTENT.len()).position(|w| w == CONTENT).unwrap();
        let mut bad = d.clone();
        bad[pos + 30] ^= 1;
        let sd = SignedData::from_der(&bad).unwrap();
        let got = content_digest(md, &mut sd.econtent_bytes().unwrap()).unwrap();
        assert_ne!(&got, &sd.signers()[0].message_digest_values[0]);
        assert!(
            sd.verify_signer(0, &p.rsa.cert).unwrap(),
            "attributes are intact; only the digest differs"
        );
        // content_digests hashes once for several algorithms.
        let both = content_digests(
            &[MessageDigest::sha256(), MessageDigest::sha512()],
            &mut &CONTENT[..],
        )
        .unwrap();
        assert_eq!(both[0].len(), 32);
        assert_eq!(both[1].len(), 64);
    }

    #[test]
    fn two_signers_reported_separately() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let p = pki();
        let dir = pki_dir();
        let d = cli_sign(
            dir.path(),
            &[ALICE, &["-signer", "bob.pem", "-inkey", "bob.key"]].concat(),
        );
        let sd = SignedData::from_der(&d).unwrap();
        assert_eq!(sd.signer_count(), 2);
        assert_eq!(sd.certificates().len(), 2);
        let idx_alice = (0..2)
            .find(|i| sd.verify_signer(*i, &p.rsa.cert).unwrap())
            .unwrap();
        let idx_bob = 1 - idx_alice;
        assert!(sd.verify_signer(idx_bob, &p.ec.cert).unwrap());
        assert!(!sd.verify_signer(idx_bob, &p.rsa.cert).unwrap());

        // Corrupt the first signer's signature: it fails, the other still verifies.
        let sig = signature_of(&signer_info(&d, 0));
        let mut bad = d.clone();
        let at = off(&d, &sig) + sig.raw.len() - 5;
        bad[at] ^= 0x55;
        let sd = SignedData::from_der(&bad).unwrap();
        let (first, second) = if idx_alice == 0 {
            (&p.rsa.cert, &p.ec.cert)
        } else {
            (&p.ec.cert, &p.rsa.cert)
        };
        assert!(!matches!(sd.verify_signer(0, first), Ok(true)));
        assert!(sd.verify_signer(1, second).unwrap());
        assert!(sd.verify_signer(5, first).is_err());
    }

    #[test]
    fn certs_only_has_no_signers() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let dir = pki_dir();
        let (ok, out) = openssl(
            &[
                "crl2pkcs7",
                "-nocrl",
                "-certfile",
                "alice.pem",
                "-outform",
                "DER",
                "-out",
                "p7c.der",
            ],
            dir.path(),
        );
        assert!(ok, "{out}");
        let d = std::fs::read(dir.path().join("p7c.der")).unwrap();
        assert_eq!(content_type_of(&d).unwrap(), CmsType::SignedData);
        let sd = SignedData::from_der(&d).unwrap();
        assert_eq!(sd.signer_count(), 0);
        assert!(sd.signers().is_empty());
        assert_eq!(sd.certificates().len(), 1);
        assert!(sd.is_detached());
        assert!(sd.verify_signer(0, &pki().rsa.cert).is_err());
    }

    #[test]
    fn ber_streamed_signature() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let p = pki();
        let dir = pki_dir();
        let d = cli_sign(
            dir.path(),
            &[
                "-nodetach",
                "-stream",
                "-signer",
                "bob.pem",
                "-inkey",
                "bob.key",
            ],
        );
        assert_eq!(&d[..2], &[0x30, 0x80], "indefinite-length BER expected");
        let sd = SignedData::from_der(&d).unwrap();
        assert_eq!(sd.econtent_bytes(), Some(CONTENT));
        let md = sd.signer_digest(0).unwrap();
        assert_eq!(
            content_digest(md, &mut &CONTENT[..]).unwrap(),
            sd.signers()[0].message_digest_values[0]
        );
        assert!(sd.verify_signer(0, &p.ec.cert).unwrap());
        assert!(sd.profile_violations(0).is_empty());
    }

    #[test]
    fn empty_digest_algorithms_does_not_crash() {
        let d = sign_default(&pki().rsa, true);
        let f = sd_fields(&d);
        let bad = replace_tlv(&d, off(&d, &f[1]), &[0x31, 0x00]);
        if let Ok(sd) = SignedData::from_der(&bad) {
            assert_eq!(sd.digest_algorithm_count(), 0);
            let _ = sd.profile_violations(0);
            let _ = sd.verify_signer(0, &pki().rsa.cert);
        }
    }

    // ---- Content types -----------------------------------------------------------------------------------

    #[test]
    fn content_type_detection() {
        use openssl::cms::CMSOptions;
        use openssl::symm::Cipher;
        let p = pki();
        let mut certs = Stack::new().unwrap();
        certs.push(p.rsa.cert.clone()).unwrap();
        for (cipher, want, name) in [
            (
                Cipher::aes_256_cbc(),
                CmsType::EnvelopedData,
                "envelopedData",
            ),
            (
                Cipher::aes_256_gcm(),
                CmsType::AuthEnvelopedData,
                "authEnvelopedData",
            ),
        ] {
            let env = CmsContentInfo::encrypt(&certs, CONTENT, cipher, CMSOptions::BINARY)
                .unwrap()
                .to_der()
                .unwrap();
            assert_eq!(content_type_of(&env).unwrap(), want);
            let e = SignedData::from_der(&env).unwrap_err();
            assert!(e.message().contains(name), "{e:?}");
        }
        let data = der::seq(&[&der::oid(OID_DATA), &der::tlv(0xa0, &der::tlv(4, b"x"))]);
        assert_eq!(content_type_of(&data).unwrap(), CmsType::Data);
        let comp = der::seq(&[
            &der::oid(OID_COMPRESSED_DATA),
            &der::tlv(0xa0, &der::seq(&[])),
        ]);
        assert_eq!(content_type_of(&comp).unwrap().name(), "compressedData");
        assert!(content_type_of(b"not DER at all").is_err());
        assert!(content_type_of(&[]).is_err());
        assert!(SignedData::from_der(b"\x30\x03\x02\x01\x01").is_err());
        // Truncated SignedData: a clean error.
        let d = sign_default(&p.ec, true);
        for cut in [10, d.len() / 2, d.len() - 1] {
            assert!(SignedData::from_der(&d[..cut]).is_err());
        }
    }

    // ---- Key policy --------------------------------------------------------------------------------------

    #[test]
    fn signing_key_policy() {
        let p = pki();
        let weak_key = rsa(1024);
        let weak = build("weak", &weak_key, Some(&p.ca), 50, None);
        let e = sign(&SignParams::new(&weak, &weak_key), &mut &CONTENT[..], None).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Unusable);
        assert!(e.message().contains("1024"));

        let e = sign(
            &SignParams::new(&p.rsa.cert, &p.ec.key),
            &mut &CONTENT[..],
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Unusable);

        let mut pp = SignParams::new(&p.ec.cert, &p.ec.key);
        pp.pss = true;
        assert_eq!(
            sign(&pp, &mut &CONTENT[..], None).unwrap_err().kind(),
            crate::error::ErrorKind::Usage
        );
    }

    #[test]
    fn encryption_key_preference_names_the_encryption_cert() {
        let p = pki();
        let mut pp = SignParams::new(&p.ec.cert, &p.ec.key);
        pp.encryption_cert = Some(&p.rsa.cert);
        pp.chain = std::slice::from_ref(&p.ca.cert);
        let d = sign(&pp, &mut &CONTENT[..], None).unwrap();
        let sd = SignedData::from_der(&d).unwrap();
        assert_eq!(sd.certificates().len(), 2);
        match &sd.signers()[0].encryption_key_preference {
            Some(SignerId::IssuerSerial { serial_hex, .. }) => assert_eq!(serial_hex, "02"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn micalg_names() {
        assert_eq!(Digest::Sha256.micalg(), "sha-256");
        assert_eq!(Digest::Sha384.micalg(), "sha-384");
        assert_eq!(Digest::Sha512.micalg(), "sha-512");
        assert_eq!(Digest::from_name("SHA-512"), Some(Digest::Sha512));
        assert_eq!(Digest::from_name("sha1"), None);
    }

    #[test]
    fn time_parsing() {
        let t = |tag, s: &str| parse_time(&der::parse_one(&der::tlv(tag, s.as_bytes())).unwrap());
        assert_eq!(t(der::tag::UTC_TIME, "700101000000Z"), Some(0));
        assert_eq!(t(der::tag::UTC_TIME, "491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            t(der::tag::GENERALIZED_TIME, "20500101000000Z"),
            Some(2_524_608_000)
        );
        assert_eq!(
            t(der::tag::GENERALIZED_TIME, "20240229120000.5Z"),
            Some(1_709_208_000)
        );
        assert_eq!(t(der::tag::UTC_TIME, "2401011200Z"), Some(1_704_110_400));
        assert_eq!(
            t(der::tag::UTC_TIME, "240101120000+0100"),
            Some(1_704_106_800)
        );
        assert_eq!(t(der::tag::UTC_TIME, "24130112000Z"), None);
    }

    // ---- Interoperability with gpgsm ---------------------------------------------------------------------

    /// Kills the temporary gpg-agent when the test ends (also on panic).
    struct AgentGuard<'a>(&'a Path);
    impl Drop for AgentGuard<'_> {
        fn drop(&mut self) {
            let _ = Command::new("gpgconf")
                .env("GNUPGHOME", self.0)
                .args(["--kill", "gpg-agent"])
                .output();
        }
    }

    #[test]
    fn gpgsm_verifies_detached_signatures() {
        if !crate::test_peers::have(&["openssl", "gpgsm", "gpgconf"]) {
            return;
        }
        let p = pki();
        let dir = pki_dir();
        let home = dir.path().join("gnupg");
        std::fs::create_dir(&home).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let _guard = AgentGuard(&home);
        let fpr = p.ca.cert.digest(MessageDigest::sha1()).unwrap();
        let fpr: Vec<String> = fpr.iter().map(|b| format!("{b:02X}")).collect();
        std::fs::write(
            home.join("trustlist.txt"),
            format!("{} S relax\n", fpr.join(":")),
        )
        .unwrap();
        let gpgsm = |args: &[&str]| {
            let out = Command::new("gpgsm")
                .env("GNUPGHOME", &home)
                .args([
                    "--batch",
                    "--disable-crl-checks",
                    "--disable-policy-checks",
                    "--disable-dirmngr",
                ])
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            (out.status.success(), text)
        };
        let (ok, out) = gpgsm(&["--import", "ca.pem"]);
        assert!(ok, "{out}");
        std::fs::write(dir.path().join("c.txt"), CONTENT).unwrap();
        for (name, id, pss) in [
            ("rsa", &p.rsa, false),
            ("pss", &p.rsa, true),
            ("ec", &p.ec, false),
        ] {
            let mut params = SignParams::new(&id.cert, &id.key);
            params.pss = pss;
            let d = sign(&params, &mut &CONTENT[..], None).unwrap();
            let f = format!("{name}.p7s");
            std::fs::write(dir.path().join(&f), &d).unwrap();
            let (ok, out) = gpgsm(&["--verify", &f, "c.txt"]);
            assert!(
                ok && out.contains("Good signature"),
                "gpgsm on {name}: {out}"
            );
            let mut bad = CONTENT.to_vec();
            bad[31] ^= 1;
            std::fs::write(dir.path().join("bad.txt"), &bad).unwrap();
            let (ok, out) = gpgsm(&["--verify", &f, "bad.txt"]);
            assert!(
                !ok && !out.contains("Good signature"),
                "gpgsm accepted tampered content for {name}: {out}"
            );
        }

        // The other direction: gpgsm signs (BER, its own attribute set), we parse and verify per signer.
        let (ok, out) = openssl(
            &[
                "pkcs12",
                "-export",
                "-legacy",
                "-inkey",
                "alice.key",
                "-in",
                "alice.pem",
                "-certfile",
                "ca.pem",
                "-out",
                "alice.p12",
                "-passout",
                "pass:pw",
            ],
            dir.path(),
        );
        assert!(ok, "{out}");
        std::fs::write(dir.path().join("pw"), "pw\n").unwrap();
        let gpgsm_pw = |args: &[&str]| {
            let pw = std::fs::File::open(dir.path().join("pw")).unwrap();
            let out = Command::new("gpgsm")
                .env("GNUPGHOME", &home)
                .args([
                    "--batch",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase-fd",
                    "0",
                ])
                .args([
                    "--disable-crl-checks",
                    "--disable-policy-checks",
                    "--disable-dirmngr",
                ])
                .args(args)
                .current_dir(dir.path())
                .stdin(pw)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.success(), text)
        };
        let (ok, out) = gpgsm_pw(&["--import", "alice.p12"]);
        assert!(ok, "{out}");
        let (ok, out) = gpgsm_pw(&[
            "--detach-sign",
            "-u",
            "alice@example.com",
            "-o",
            "g.p7s",
            "c.txt",
        ]);
        assert!(ok, "{out}");
        let g = std::fs::read(dir.path().join("g.p7s")).unwrap();
        let sd = SignedData::from_der(&g).unwrap();
        assert!(sd.is_detached());
        assert_eq!(sd.signer_count(), 1);
        let s = &sd.signers()[0];
        let md = sd.signer_digest(0).unwrap();
        assert_eq!(
            content_digest(md, &mut &CONTENT[..]).unwrap(),
            s.message_digest_values[0]
        );
        assert!(
            sd.profile_violations(0).is_empty(),
            "{:?}",
            sd.profile_violations(0)
        );
        assert!(sd.verify_signer(0, &p.rsa.cert).unwrap());
        assert!(!sd.verify_signer(0, &p.ec.cert).unwrap());
    }

    /// T09: signedAttrs out of DER order, signature made over exactly those bytes: verification must use the
    /// received order.
    #[test]
    fn unsorted_signed_attributes_verify_over_received_bytes() {
        let p = pki();
        let d = sign_default(&p.rsa, true);
        let sa = signed_attrs(&signer_info(&d, 0));
        let mut attrs: Vec<&[u8]> = sa.children().unwrap().iter().map(|a| a.raw).collect();
        attrs.reverse();
        let body = attrs.concat();
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &p.rsa.key).unwrap();
        signer.update(&der::tlv(der::tag::SET, &body)).unwrap();
        let sig = signer.sign_to_vec().unwrap();
        let step1 = replace_tlv(&d, off(&d, &sa), &der::tlv(0xa0, &body));
        let old_sig = signature_of(&signer_info(&step1, 0));
        let unsorted = replace_tlv(
            &step1,
            off(&step1, &old_sig),
            &der::tlv(der::tag::OCTET_STRING, &sig),
        );
        let sd = SignedData::from_der(&unsorted).unwrap();
        let mut original = SignedData::from_der(&d).unwrap().signers()[0]
            .signed_attr_types
            .clone();
        original.reverse();
        assert_eq!(
            sd.signers()[0].signed_attr_types,
            original,
            "received order is reported"
        );
        assert!(sd.verify_signer(0, &p.rsa.cert).unwrap());
        assert!(sd.profile_violations(0).is_empty());
    }

    /// Ad-hoc throughput measurement (run with `cargo test --release -- --ignored --nocapture sign_throughput`).
    #[test]
    #[ignore]
    fn sign_throughput() {
        let p = pki();
        let data = vec![0x5au8; 100 << 20];
        for (name, id, detached) in [
            ("RSA detached", &p.rsa, true),
            ("EC detached", &p.ec, true),
            ("RSA opaque", &p.rsa, false),
        ] {
            let mut params = SignParams::new(&id.cert, &id.key);
            params.detached = detached;
            let mut sink = std::io::sink();
            let t = std::time::Instant::now();
            let d = sign(&params, &mut &data[..], Some(&mut sink)).unwrap();
            let secs = t.elapsed().as_secs_f64();
            eprintln!(
                "sign {name}: 100 MiB in {secs:.3} s = {:.2} GB/s (DER {} bytes)",
                104_857_600.0 / secs / 1e9,
                d.len()
            );
        }
        let t = std::time::Instant::now();
        content_digest(MessageDigest::sha256(), &mut &data[..]).unwrap();
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "content_digest SHA-256: {:.2} GB/s",
            104_857_600.0 / secs / 1e9
        );
    }

    fn vm_hwm_kib() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Detached signing of 256 MiB streamed from a generator must not grow the peak RSS noticeably.
    #[test]
    #[cfg(target_os = "linux")]
    fn detached_sign_streams_in_constant_memory() {
        struct Gen(u64);
        impl Read for Gen {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = (buf.len() as u64).min(self.0) as usize;
                buf[..n].fill(b'x');
                self.0 -= n as u64;
                Ok(n)
            }
        }
        let p = pki();
        let params = SignParams::new(&p.ec.cert, &p.ec.key);
        let mut counter = CountingSink(0);
        let before = vm_hwm_kib();
        let d = sign(&params, &mut Gen(256 << 20), Some(&mut counter)).unwrap();
        let grown = vm_hwm_kib().saturating_sub(before);
        assert_eq!(counter.0, 256 << 20);
        eprintln!("peak RSS growth while signing 256 MiB: {grown} KiB");
        assert!(grown < 32 * 1024, "peak RSS grew by {grown} KiB");
        let sd = SignedData::from_der(&d).unwrap();
        let md = content_digest(MessageDigest::sha256(), &mut Gen(256 << 20)).unwrap();
        assert_eq!(sd.signers()[0].message_digest_values[0], md);
    }

    struct CountingSink(u64);
    impl Write for CountingSink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn openssl_cades_signing_certificate_is_parsed() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let p = pki();
        let dir = pki_dir();
        for md in ["sha256", "sha384", "sha1"] {
            let d = cli_sign(dir.path(), &[&["-cades", "-md", md], ALICE].concat());
            let s = &SignedData::from_der(&d).unwrap().signers()[0];
            assert_eq!(s.ess_cert_ids.len(), 1, "{md}");
            assert_eq!(
                s.ess_cert_ids[0].matches(&p.rsa.cert),
                Some(true),
                "{md}: {:?}",
                s.ess_cert_ids
            );
        }
    }

    /// Every single-byte corruption of a signature parses to a clean error or a value; nothing panics, and no
    /// corrupted signed-attribute byte still verifies.
    #[test]
    fn byte_flips_never_panic() {
        let p = pki();
        let d = sign_default(&p.ec, false);
        let sa = {
            let t = signed_attrs(&signer_info(&d, 0));
            off(&d, &t)..off(&d, &t) + t.raw.len()
        };
        for i in 0..d.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bad = d.clone();
                bad[i] ^= mask;
                let _ = content_type_of(&bad);
                let Ok(sd) = SignedData::from_der(&bad) else {
                    continue;
                };
                let _ = (
                    sd.econtent_type(),
                    sd.econtent_bytes(),
                    sd.certificates(),
                    sd.signers(),
                );
                for idx in 0..sd.signer_count() {
                    let _ = sd.profile_violations(idx);
                    let _ = sd.signer_digest(idx);
                    let ok = matches!(sd.verify_signer(idx, &p.ec.cert), Ok(true));
                    // Bytes 0..2 of the [0] tag/length are not part of the signed SET encoding's content.
                    if sa.contains(&i) && i > sa.start + 1 {
                        assert!(!ok, "corrupted signed attribute byte {i} still verifies");
                    }
                }
            }
        }
    }

    /// T14: the full ForgedAttributes construction (signedAttrs removed, eContent = those attributes as a SET).
    #[test]
    fn forged_attributes_construction_is_flagged() {
        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let p = pki();
        let d = sign_default(&p.rsa, false);
        let sa = signed_attrs(&signer_info(&d, 0));
        let forged_content = der::tlv(der::tag::SET, sa.value);
        let step1 = replace_tlv(&d, off(&d, &sa), &[]);
        let ec = sd_fields(&step1)[2].children().unwrap()[1];
        let forged = replace_tlv(
            &step1,
            off(&step1, &ec),
            &der::tlv(0xa0, &der::tlv(der::tag::OCTET_STRING, &forged_content)),
        );
        let sd = SignedData::from_der(&forged).unwrap();
        assert_eq!(sd.econtent_bytes(), Some(forged_content.as_slice()));
        let v = sd.profile_violations(0);
        assert!(
            v.iter().any(|m| m.contains("no signed attributes")),
            "{v:?}"
        );
        assert!(
            v.iter().any(|m| m.contains("ForgedAttributes forgery")),
            "{v:?}"
        );
        // OpenSSL's all-in-one verification accepts it (F4); we never get to "true".
        assert!(sd.verify_signer(0, &p.rsa.cert).is_err());
        let dir = pki_dir();
        std::fs::write(dir.path().join("forged.der"), &forged).unwrap();
        let (ok, _) = openssl(
            &[
                "cms",
                "-verify",
                "-inform",
                "DER",
                "-in",
                "forged.der",
                "-CAfile",
                "ca.pem",
                "-out",
                "/dev/null",
            ],
            dir.path(),
        );
        assert!(
            ok,
            "OpenSSL CLI is expected to accept the forgery (finding F4)"
        );
    }

    /// T25: RSA keys above 8192 bits are refused before any signature check, and flagged when embedded.
    #[test]
    fn oversized_rsa_keys_are_refused() {
        let p = pki();
        // A 9000-bit "public key" (not a real key pair: only its size matters) in a certificate that has alice's
        // issuer and serial number, so it matches her signer identifier.
        let mut n = BigNum::new().unwrap();
        n.rand(9000, openssl::bn::MsbOption::ONE, true).unwrap();
        let big = Rsa::from_public_components(n, BigNum::from_u32(65537).unwrap()).unwrap();
        let big = PKey::from_rsa(big).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "alice twin").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(2).unwrap()).unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(p.ca.cert.subject_name()).unwrap();
        b.set_pubkey(&big).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.sign(&p.ca.key, MessageDigest::sha256()).unwrap();
        let big_cert = b.build();

        let mut params = SignParams::new(&p.rsa.cert, &p.rsa.key);
        let chain = [big_cert.clone()];
        params.chain = &chain;
        let d = sign(&params, &mut &CONTENT[..], None).unwrap();
        let sd = SignedData::from_der(&d).unwrap();
        let e = sd.verify_signer(0, &big_cert).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Limit);
        let v = sd.profile_violations(0);
        assert!(v.iter().any(|m| m.contains("9000 bits")), "{v:?}");
        assert!(sd.verify_signer(0, &p.rsa.cert).unwrap());
    }
}
