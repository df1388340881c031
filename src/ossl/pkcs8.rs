//! Private keys at rest: PKCS#8 EncryptedPrivateKeyInfo with PBES2 + PBKDF2-HMAC-SHA256 + AES-256-CBC at a
//! chosen iteration count (the safe `openssl` API is fixed at 2,048 iterations).
//!
//! Reading checks the key-derivation cost *before* any derivation, so a hostile file cannot make us spin.

use std::ffi::c_int;

use base64::Engine as _;
use foreign_types::ForeignTypeRef;
use openssl::nid::Nid;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::symm::Cipher;
use openssl_sys as sys;

use super::bio::OwnedMemBio;
use super::sys as ffi;
use super::{cvt, cvt_p};
use crate::der::{self, Tlv};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{MAX_KDF_ITERATIONS, MAX_SCRYPT_MEMORY, MAX_SCRYPT_WORK, scrypt_within_limits};

/// Production PBKDF2 iteration count for keys at rest (OWASP 2023 for PBKDF2-HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;

const PEM_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// Encrypts `key` as a PEM `ENCRYPTED PRIVATE KEY` (PKCS#8 EncryptedPrivateKeyInfo): PBES2 with
/// PBKDF2-HMAC-SHA256 at `iterations` rounds and a random 16-byte salt, and AES-256-CBC with a random IV.
pub fn encrypt_private_key_pem(
    key: &PKeyRef<Private>,
    passphrase: &[u8],
    iterations: u32,
) -> Result<Vec<u8>> {
    if iterations == 0 || u64::from(iterations) > MAX_KDF_ITERATIONS {
        return Err(Error::usage(format!(
            "PBKDF2 iteration count {iterations} is out of range (1 to {MAX_KDF_ITERATIONS})"
        ))
        .hint(format!("use {DEFAULT_ITERATIONS}")));
    }
    let passlen = c_int::try_from(passphrase.len())
        .map_err(|_| Error::limit("the passphrase is too long"))?;
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| Error::crypto("cannot generate a salt", e))?;

    // SAFETY: `key` is a valid EVP_PKEY; EVP_PKEY2PKCS8 returns an owned PKCS8_PRIV_KEY_INFO (or NULL), freed below.
    let p8inf = cvt_p(unsafe { sys::EVP_PKEY2PKCS8(key.as_ptr()) })
        .map_err(|e| Error::crypto("cannot convert the private key to PKCS#8", e))?;
    let p8 = P8Inf(p8inf);

    // SAFETY: the cipher is a static EVP_CIPHER; `salt` is valid for 16 bytes and copied; a NULL IV means random.
    // The returned X509_ALGOR is owned by us until PKCS8_set0_pbe succeeds.
    let pbe = unsafe {
        ffi::PKCS5_pbe2_set_iv(
            Cipher::aes_256_cbc().as_ptr(),
            iterations as c_int,
            salt.as_mut_ptr(),
            salt.len() as c_int,
            std::ptr::null_mut(),
            Nid::HMACWITHSHA256.as_raw(),
        )
    };
    let pbe = cvt_p(pbe).map_err(|e| Error::crypto("cannot set up PBES2 parameters", e))?;
    // SAFETY: `passphrase` is valid for `passlen` bytes (no NUL terminator needed when a length is given);
    // `p8.0` is valid. On success the X509_SIG owns `pbe`; on failure we still own it and free it.
    let sig = unsafe { ffi::PKCS8_set0_pbe(passphrase.as_ptr().cast(), passlen, p8.0, pbe) };
    let sig = cvt_p(sig).map_err(|e| {
        // SAFETY: PKCS8_set0_pbe failed, so `pbe` is still ours.
        unsafe { sys::X509_ALGOR_free(pbe) };
        Error::crypto("cannot encrypt the private key", e)
    })?;
    let sig = Sig(sig);
    let out = OwnedMemBio::new()?;
    // SAFETY: both pointers are valid; the PEM text is written to our memory BIO.
    cvt(unsafe { ffi::PEM_write_bio_PKCS8(out.as_ptr(), sig.0) })
        .map_err(|e| Error::crypto("cannot write the encrypted private key", e))?;
    Ok(out.take())
}

struct P8Inf(*mut sys::PKCS8_PRIV_KEY_INFO);
impl Drop for P8Inf {
    fn drop(&mut self) {
        // SAFETY: we own it; PKCS8_PRIV_KEY_INFO_free also cleanses the key bytes.
        unsafe { sys::PKCS8_PRIV_KEY_INFO_free(self.0) };
    }
}

struct Sig(*mut ffi::X509_SIG);
impl Drop for Sig {
    fn drop(&mut self) {
        // SAFETY: we own it.
        unsafe { ffi::X509_SIG_free(self.0) };
    }
}

/// Decrypts a PEM `ENCRYPTED PRIVATE KEY`. The key-derivation cost (PBKDF2/PBES1 iterations, scrypt N/r/p) is
/// checked first: above [`MAX_KDF_ITERATIONS`] the file is refused without trying. A wrong passphrase gives an
/// [`ErrorKind::WrongSecret`] error.
pub fn decrypt_private_key_pem(pem: &[u8], passphrase: &[u8]) -> Result<PKey<Private>> {
    let der = pem_block(pem, PEM_LABEL)?;
    check_kdf_cost(&der)?;
    match PKey::private_key_from_pkcs8_passphrase(&der, passphrase) {
        Ok(k) => Ok(k),
        Err(stack) => Err(Error::new(
            ErrorKind::WrongSecret,
            "wrong passphrase for the encrypted private key",
        )
        .hint("check the passphrase; if it is right, the key file is damaged")
        .detail(stack)),
    }
}

/// Extracts and base64-decodes the first PEM block labelled `label`.
fn pem_block(pem: &[u8], label: &str) -> Result<Vec<u8>> {
    let text =
        std::str::from_utf8(pem).map_err(|_| Error::bad_input("the key file is not PEM text"))?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).ok_or_else(|| {
        let e = Error::bad_input(format!("no \"{label}\" PEM block found"));
        if text.contains("-----BEGIN PRIVATE KEY-----")
            || text.contains("-----BEGIN RSA PRIVATE KEY-----")
        {
            e.hint("the key is not encrypted; re-import it so that it is stored encrypted")
        } else {
            e
        }
    })? + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| Error::bad_input(format!("unterminated \"{label}\" PEM block")))?;
    let b64: String = text[start..start + stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| Error::bad_input(format!("bad base64 in the \"{label}\" PEM block: {e}")))
}

const OID_PBES2: &str = "1.2.840.113549.1.5.13";
const OID_PBKDF2: &str = "1.2.840.113549.1.5.12";
const OID_SCRYPT: &str = "1.3.6.1.4.1.11591.4.11";

fn bad_structure(what: &str) -> Error {
    Error::bad_input(format!("malformed encrypted private key ({what})"))
}

fn algid<'a>(t: &Tlv<'a>) -> Result<(String, Option<Tlv<'a>>)> {
    if t.tag != der::tag::SEQUENCE {
        return Err(bad_structure("AlgorithmIdentifier is not a SEQUENCE"));
    }
    let c = t.children()?;
    let oid = c
        .first()
        .and_then(|o| o.oid())
        .ok_or_else(|| bad_structure("AlgorithmIdentifier without an OID"))?;
    Ok((oid, c.get(1).copied()))
}

fn bounded(t: Option<&Tlv<'_>>, what: &str, max: u64) -> Result<u64> {
    let t = t.ok_or_else(|| bad_structure(&format!("missing {what}")))?;
    if t.tag != der::tag::INTEGER {
        return Err(bad_structure(&format!("{what} is not an INTEGER")));
    }
    match t.as_u64() {
        Some(v) if v <= max => Ok(v),
        _ => Err(Error::limit(format!(
            "the key file asks for a {what} above our limit of {max}"
        ))
        .hint("the file is hostile or damaged; re-export the key with standard settings")),
    }
}

/// Refuses EncryptedPrivateKeyInfo whose key derivation would cost more than our limits.
fn check_kdf_cost(der: &[u8]) -> Result<()> {
    let top = der::parse_one(der)?;
    let parts = top.children()?;
    if top.tag != der::tag::SEQUENCE || parts.len() != 2 {
        return Err(bad_structure("not an EncryptedPrivateKeyInfo"));
    }
    let (oid, params) = algid(&parts[0])?;
    let params = params.ok_or_else(|| bad_structure("missing encryption parameters"))?;
    if oid == OID_PBES2 {
        let p = params.children()?;
        let kdf = p
            .first()
            .ok_or_else(|| bad_structure("missing PBES2 key derivation function"))?;
        let (kdf_oid, kdf_params) = algid(kdf)?;
        let kp = kdf_params
            .ok_or_else(|| bad_structure("missing key derivation parameters"))?
            .children()?;
        match kdf_oid.as_str() {
            OID_PBKDF2 => {
                bounded(kp.get(1), "PBKDF2 iteration count", MAX_KDF_ITERATIONS)?;
            }
            OID_SCRYPT => {
                let n = bounded(kp.get(1), "scrypt cost N", u64::MAX)?;
                let r = bounded(kp.get(2), "scrypt block size r", u64::MAX)?;
                let p = bounded(kp.get(3), "scrypt parallelisation p", u64::MAX)?;
                if !scrypt_within_limits(n, r, p) {
                    return Err(Error::limit(format!(
                        "the key file asks for scrypt with N={n}, r={r}, p={p}, above our limits \
                         ({} MiB of memory, N·r·p up to {MAX_SCRYPT_WORK})",
                        MAX_SCRYPT_MEMORY >> 20
                    ))
                    .hint(
                        "the file is hostile or damaged; re-export the key with standard settings",
                    ));
                }
            }
            other => {
                return Err(Error::unsupported(format!(
                    "unsupported key derivation function {other} in the key file"
                )));
            }
        }
    } else if oid.starts_with("1.2.840.113549.1.5.") || oid.starts_with("1.2.840.113549.1.12.1.") {
        // PBES1 and PKCS#12 PBE: PBEParameter ::= SEQUENCE { salt OCTET STRING, iterationCount INTEGER }
        bounded(
            params.children()?.get(1),
            "iteration count",
            MAX_KDF_ITERATIONS,
        )?;
    } else {
        return Err(Error::unsupported(format!(
            "unsupported key encryption algorithm {oid} in the key file"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use std::process::Command;

    fn ec_key() -> PKey<Private> {
        let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
    }

    #[test]
    fn round_trip_and_openssl_cli() {
        let key = ec_key();
        let pem = encrypt_private_key_pem(&key, b"correct horse", DEFAULT_ITERATIONS).unwrap();
        assert!(pem.starts_with(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back = decrypt_private_key_pem(&pem, b"correct horse").unwrap();
        assert!(back.public_eq(&key));

        let err = decrypt_private_key_pem(&pem, b"wrong").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongSecret);
        assert!(err.message().contains("wrong passphrase"));

        if !crate::test_peers::have(&["openssl"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k.pem");
        std::fs::write(&f, &pem).unwrap();
        let out = Command::new("openssl")
            .args(["asn1parse", "-in"])
            .arg(&f)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for want in [
            "PBES2",
            "PBKDF2",
            "hmacWithSHA256",
            "aes-256-cbc",
            "INTEGER           :0927C0",
        ] {
            assert!(text.contains(want), "asn1parse lacks {want}:\n{text}");
        }
        let out = Command::new("openssl")
            .args(["pkey", "-passin", "pass:correct horse", "-pubout", "-in"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, key.public_key_to_pem().unwrap());
    }

    #[test]
    fn rejects_bad_iteration_arguments() {
        let key = ec_key();
        assert_eq!(
            encrypt_private_key_pem(&key, b"x", 0).unwrap_err().kind(),
            ErrorKind::Usage
        );
        assert_eq!(
            encrypt_private_key_pem(&key, b"x", 10_000_001)
                .unwrap_err()
                .kind(),
            ErrorKind::Usage
        );
    }

    /// Rebuilds a PBES2/PBKDF2 EncryptedPrivateKeyInfo with another iteration count.
    fn with_iterations(der_in: &[u8], iters: &[u8]) -> Vec<u8> {
        let top = der::parse_one(der_in).unwrap();
        let parts = top.children().unwrap();
        let alg = parts[0].children().unwrap();
        let pbes2 = alg[1].children().unwrap();
        let kdf = pbes2[0].children().unwrap();
        let kp = kdf[1].children().unwrap();
        let mut new_kp: Vec<&[u8]> = kp.iter().map(|t| t.raw).collect();
        let it = der::tlv(der::tag::INTEGER, iters);
        new_kp[1] = &it;
        let kp2 = der::seq(&new_kp);
        let kdf2 = der::seq(&[kdf[0].raw, &kp2]);
        let pbes2b = der::seq(&[&kdf2, pbes2[1].raw]);
        let alg2 = der::seq(&[alg[0].raw, &pbes2b]);
        der::seq(&[&alg2, parts[1].raw])
    }

    fn to_pem(d: &[u8]) -> Vec<u8> {
        let b = base64::engine::general_purpose::STANDARD.encode(d);
        format!("-----BEGIN {PEM_LABEL}-----\n{b}\n-----END {PEM_LABEL}-----\n").into_bytes()
    }

    #[test]
    fn hostile_iteration_count_is_refused_fast() {
        let key = ec_key();
        let pem = encrypt_private_key_pem(&key, b"pw", 1000).unwrap();
        let d = pem_block(&pem, PEM_LABEL).unwrap();
        // Sanity: the rebuilt file with the same count still decrypts.
        let same = with_iterations(&d, &[0x03, 0xe8]);
        assert!(decrypt_private_key_pem(&to_pem(&same), b"pw").is_ok());
        for big in [
            &[0x00, 0x98, 0x96, 0x81][..],
            &[0x7f, 0xff, 0xff, 0xff],
            &[0x01; 12],
        ] {
            let t = std::time::Instant::now();
            let e = decrypt_private_key_pem(&to_pem(&with_iterations(&d, big)), b"pw").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Limit, "{e:?}");
            assert!(t.elapsed().as_millis() < 500);
        }
    }

    #[test]
    fn unencrypted_key_is_bad_input() {
        let key = ec_key();
        let e = decrypt_private_key_pem(&key.private_key_to_pem_pkcs8().unwrap(), b"").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert!(e.hint_text().unwrap().contains("not encrypted"));
    }

    /// An EncryptedPrivateKeyInfo whose PBES2 key derivation is scrypt with N, r, p (no real ciphertext: the
    /// cost check runs before any decryption).
    fn scrypt_epki(n: u64, r: u64, p: u64) -> Vec<u8> {
        let kdf = der::seq(&[
            &der::oid(OID_SCRYPT),
            &der::seq(&[
                &der::tlv(der::tag::OCTET_STRING, &[0; 16]),
                &der::uint(n),
                &der::uint(r),
                &der::uint(p),
            ]),
        ]);
        let enc = der::seq(&[
            &der::oid("2.16.840.1.101.3.4.1.42"),
            &der::tlv(der::tag::OCTET_STRING, &[0; 16]),
        ]);
        let alg = der::seq(&[&der::oid(OID_PBES2), &der::seq(&[&kdf, &enc])]);
        der::seq(&[&alg, &der::tlv(der::tag::OCTET_STRING, &[0; 32])])
    }

    #[test]
    fn scrypt_cost_uses_the_shared_rule() {
        // N=2^20, r=8, p=1: exactly 1 GiB, work 2^23: accepted (as in a PKCS#12 file).
        check_kdf_cost(&scrypt_epki(1 << 20, 8, 1)).unwrap();
        // r=16 doubles the memory past 1 GiB: refused, though each of N, r, p is small.
        let e = check_kdf_cost(&scrypt_epki(1 << 20, 16, 1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
        assert!(
            e.message().contains("N=1048576, r=16, p=1"),
            "{}",
            e.message()
        );
        // Little memory but N·r·p above 2^24: refused.
        let e = check_kdf_cost(&scrypt_epki(1 << 14, 8, 1 << 8)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
    }
}
