//! neomutt's S/MIME conventions (`ncrypt/smime.c`): neomutt builds the MIME structure itself and asks an
//! external program to sign, verify, encrypt or decrypt one MIME entity or one part body, through
//! `smime_*_command` templates. These functions do that work on smimekit's IDs, contacts and trust anchors.
//!
//! - neomutt names keys and certificates by a "hash" inside `$smime_keys` / `$smime_certificates`, listed in a
//!   `.index` file in each (`mailbox hash label issuer trust purpose`). [`write_index`] writes both, using
//!   smimekit's SHA-256 fingerprint as the hash and the certificate (PEM) as the file, so that `%k` and `%c`
//!   name an ID or a certificate: [`hash_of_path`] reads the fingerprint back from such a path. Private keys
//!   never leave the store (the `keys` folder holds only the index).
//! - The entity neomutt writes has LF line ends; signatures and encryption cover its canonical (CRLF) form,
//!   as `openssl smime` does in its default text mode.
//! - Signature files are DER; the body of an application/pkcs7-mime part is usually still base64: both are
//!   accepted ([`der_or_base64`]).

use std::path::Path;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::cert::{self, CertInfo};
use crate::contacts::ContactStore;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::ids::{IdStore, Identity};
use crate::mime;
use crate::ossl::enveloped::{self, ContentCipher, Recipient};
use crate::ossl::signed::{self, Capability, Digest, SignParams};
use crate::smime::verify::{self, SignerUse, VerifyReport};

/// The fingerprint named by a `%k` / `%c` path (`$smime_keys/<hash>`): its last component, or the whole
/// value when it is not a path (an address or fingerprint typed at neomutt's prompt).
pub fn hash_of_path(p: &str) -> String {
    Path::new(p.trim())
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.trim().to_string())
}

/// DER as it is (first byte 0x30), else base64 (white space ignored) decoded.
pub fn der_or_base64(data: &[u8]) -> Result<Vec<u8>> {
    if data.first() == Some(&0x30) {
        return Ok(data.to_vec());
    }
    let d = mime::decode_body(data, Some("base64"))?;
    if d.first() != Some(&0x30) {
        return Err(
            Error::bad_input("the file holds no CMS structure (DER or base64)")
                .hint("neomutt passes the S/MIME part; the message may be damaged"),
        );
    }
    Ok(d)
}

/// Signs `entity` (a MIME entity as neomutt writes it) with `id`: a detached SignedData (DER) over its
/// canonical form, with smimekit's signed attributes and the chain without the root.
pub fn sign_entity(
    id: &Identity,
    key: &PKey<Private>,
    entity: &[u8],
    digest: Digest,
) -> Result<Vec<u8>> {
    crate::smime::sign::check_can_sign(id)?;
    let chain = crate::smime::sign::chain_to_include(id);
    let params = SignParams {
        chain: &chain,
        digest,
        capabilities: Capability::defaults_for(key),
        ..SignParams::new(&id.cert, key)
    };
    let canonical = mime::to_crlf(entity);
    signed::sign(&params, &mut &canonical[..], None)
}

/// Verifies the detached signature `sig` (DER or base64) over `entity` (canonicalised to CRLF), with your
/// anchors and the system's. There is no From address here: neomutt checks the sender itself, with the
/// signer's certificate (`smime_get_signer_cert_command`).
pub fn verify_entity(home: &Home, entity: &[u8], sig: &[u8]) -> Result<VerifyReport> {
    let der = der_or_base64(sig)?;
    let opts = verify::home_options(home)?;
    verify::verify_detached(&der, &mime::to_crlf(entity), &opts, SignerUse::Email)
}

/// Verifies opaque signed-data (DER or base64) and returns the report and the signed content.
pub fn verify_opaque(home: &Home, data: &[u8]) -> Result<(VerifyReport, Vec<u8>)> {
    let der = der_or_base64(data)?;
    let opts = verify::home_options(home)?;
    verify::verify_opaque_der(&der, &opts, SignerUse::Email)
}

/// neomutt's `%a` (`$smime_encrypt_with`) as a content cipher. neomutt labels the result
/// `smime-type=enveloped-data`, so only EnvelopedData ciphers fit (AES-CBC); DES, 3DES and RC2 are refused.
pub fn cipher_for(alg: &str) -> Result<ContentCipher> {
    match alg.trim().to_ascii_lowercase().as_str() {
        "" | "aes256" | "aes-256" | "aes-256-cbc" | "aes192" => Ok(ContentCipher::Aes256Cbc),
        "aes128" | "aes-128" | "aes-128-cbc" => Ok(ContentCipher::Aes128Cbc),
        other => Err(Error::unsupported(format!(
            "the cipher {other:?} is not used: smimekit never encrypts with DES, 3DES or RC2"
        ))
        .hint("set smime_encrypt_with=\"aes256\" in your neomuttrc")),
    }
}

/// Encrypts `entity` (canonicalised to CRLF) to `certs`: DER EnvelopedData.
pub fn encrypt_entity(certs: &[X509], cipher: ContentCipher, entity: &[u8]) -> Result<Vec<u8>> {
    if certs.is_empty() {
        return Err(Error::usage("no recipient certificate was given")
            .hint("neomutt passes the certificates of $smime_certificates; run 'smimekit neomutt index' again"));
    }
    let now = cert::now();
    let mut recipients = Vec::new();
    for c in certs {
        let info = CertInfo::new(c, now);
        if info.expired || !info.can_encrypt {
            return Err(Error::unusable(format!(
                "the certificate of {} cannot receive encrypted mail ({})",
                info.emails.join(", "),
                if info.expired {
                    "expired"
                } else {
                    "its key usage forbids it"
                }
            ))
            .hint("ask the recipient for a current certificate; 'smimekit contact show ADDRESS' explains"));
        }
        recipients.push(Recipient::new(c));
    }
    let canonical = mime::to_crlf(entity);
    let mut out = Vec::with_capacity(canonical.len() + 4096);
    enveloped::encrypt(&recipients, cipher, &mut &canonical[..], &mut out)?;
    Ok(out)
}

/// Decrypts the body of an application/pkcs7-mime part (DER or base64) with `id`'s `key`: the plaintext
/// entity, released only when decryption (and for AES-GCM authentication) succeeded.
pub fn decrypt_body(
    home: &Home,
    body: &[u8],
    id_query: &str,
    key_for: impl FnOnce(&Identity) -> Result<PKey<Private>>,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    use base64::Engine;
    let der = der_or_base64(body)?;
    // The part's own header, which neomutt does not pass: the body alone is exactly such a part's content.
    let mut raw =
        b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\
Content-Transfer-Encoding: base64\r\n\r\n"
            .to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    for line in b64.as_bytes().chunks(76) {
        raw.extend_from_slice(line);
        raw.extend_from_slice(b"\r\n");
    }
    let enc = crate::smime::decrypt::parse(&raw, false)?;
    let id = enc
        .choose_id(home, Some(id_query))
        .or_else(|_| enc.choose_id(home, None))?;
    let key = key_for(&id)?;
    let (plain, _) = enc.decrypt(&id, &key, false)?;
    Ok(plain)
}

/// How many entries [`write_index`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexCounts {
    /// Lines of `keys/.index` (your IDs).
    pub keys: usize,
    /// Lines of `certificates/.index` (your IDs' certificates and your contacts').
    pub certificates: usize,
}

/// neomutt's trust letter: `e` expired, `i` not yet valid, `t` your own IDs and the contact certificate
/// smimekit itself would encrypt to for that address (neomutt then uses it without asking), `v` another
/// usable contact certificate (neomutt lets you pick).
fn trust_letter(info: &CertInfo, chosen: bool) -> char {
    if info.expired {
        'e'
    } else if info.not_yet_valid {
        'i'
    } else if chosen {
        't'
    } else {
        'v'
    }
}

fn purpose(info: &CertInfo) -> String {
    let mut p = String::new();
    if info.can_encrypt {
        p.push('e');
    }
    if info.can_sign {
        p.push('s');
    }
    if p.is_empty() {
        p.push('-');
    }
    p
}

/// Writes `dir/keys/.index` (one line per address of each of your IDs) and `dir/certificates/.index` plus a
/// PEM file per certificate (your IDs' and your contacts'), replacing what an earlier run wrote.
pub fn write_index(home: &Home, dir: &Path) -> Result<IndexCounts> {
    let now = cert::now();
    let keys_dir = dir.join("keys");
    let certs_dir = dir.join("certificates");
    for d in [dir, &keys_dir, &certs_dir] {
        std::fs::create_dir_all(d).map_err(|e| Error::io("create the folder", d, e))?;
    }
    let mut keys = String::new();
    let mut certs = String::new();
    let (mut nk, mut nc) = (0, 0);
    let line = |out: &mut String, addr: &str, fp: &str, info: &CertInfo, own: bool| {
        // Fields are separated by spaces: none may contain one.
        out.push_str(&format!(
            "{} {} smimekit ? {} {}\n",
            addr.replace(char::is_whitespace, ""),
            fp,
            trust_letter(info, own),
            purpose(info)
        ));
    };
    let write_cert = |fp: &str, c: &X509| -> Result<()> {
        let pem = c
            .to_pem()
            .map_err(|e| Error::crypto("cannot encode the certificate", e))?;
        crate::home::write_atomic(&certs_dir.join(fp), &pem)
    };
    for id in IdStore::new(home).list()? {
        let info = id.info(now);
        write_cert(&id.fingerprint, &id.cert)?;
        for a in id.emails() {
            line(&mut keys, &a, &id.fingerprint, &info, true);
            line(&mut certs, &a, &id.fingerprint, &info, true);
            nk += 1;
            nc += 1;
        }
    }
    let store = ContactStore::new(home);
    let anchors = crate::trust::TrustStore::new(home).certs()?;
    let select = crate::contacts::SelectOptions {
        anchors: &anchors,
        system: true,
        now,
    };
    for c in store.list()? {
        let info = CertInfo::new(&c.cert, now);
        write_cert(&c.fingerprint, &c.cert)?;
        for a in &info.emails {
            let chosen = store
                .select_for_encryption(a, &select)
                .ok()
                .and_then(|s| s.chosen)
                .is_some_and(|ch| ch.fingerprint == c.fingerprint);
            line(&mut certs, a, &c.fingerprint, &info, chosen);
            nc += 1;
        }
    }
    crate::home::write_atomic(&keys_dir.join(".index"), keys.as_bytes())?;
    crate::home::write_atomic(&certs_dir.join(".index"), certs.as_bytes())?;
    Ok(IndexCounts {
        keys: nk,
        certificates: nc,
    })
}

/// The certificates in `data`: PEM or DER certificates, a PKCS#7 bundle, or a signed message or signature
/// (its certificates), as neomutt's `pk7out` and `get_cert` steps want them.
pub fn certificates_in(data: &[u8]) -> Result<Vec<X509>> {
    if let Ok(c) = crate::contacts::certs_from_file(data, "the file")
        && !c.is_empty()
    {
        return Ok(c);
    }
    // A signed message: the certificates its SignedData carries.
    let top = crate::smime::top_level(data)?;
    let der = match &top.layer {
        mime::Layer::MultipartSigned { boundary, .. } => {
            let mp = mime::split_multipart(top.body, boundary.as_bytes())?;
            let part = mp.parts.get(1).ok_or_else(|| {
                Error::bad_input("the multipart/signed message has no signature part")
            })?;
            let ent = mime::split_entity(part)?;
            let f = mime::parse_headers(ent.header)?;
            crate::smime::pkcs7_der(&f, ent.body)?
        }
        mime::Layer::Pkcs7Mime { .. } => crate::smime::pkcs7_der(&top.fields, top.body)?,
        mime::Layer::Other => {
            return Err(Error::bad_input(
                "the file holds no certificates and is not a signed message",
            )
            .hint("pass a signed message or a certificate file"));
        }
    };
    let sd = signed::SignedData::from_der(&der)?;
    Ok(sd.certificates())
}
