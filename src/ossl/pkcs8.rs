//! TEMPORARY stub (replaced by the cms-signed branch): PKCS#8 at rest.
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::symm::Cipher;

use crate::error::{Error, ErrorKind, Result};

/// Encrypts a key as PKCS#8 PEM.
pub fn encrypt_private_key_pem(
    key: &PKeyRef<Private>,
    passphrase: &[u8],
    _iterations: u32,
) -> Result<Vec<u8>> {
    Ok(key.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), passphrase)?)
}

/// Decrypts a PKCS#8 PEM key.
pub fn decrypt_private_key_pem(pem: &[u8], passphrase: &[u8]) -> Result<PKey<Private>> {
    PKey::private_key_from_pem_passphrase(pem, passphrase)
        .map_err(|e| Error::new(ErrorKind::WrongSecret, "wrong passphrase").detail(e))
}
