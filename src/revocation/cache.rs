//! The revocation cache in the home: `revocation/crl/<issuer>-<number>.crl` (DER; the issuer is the first 16
//! hex digits of the SHA-256 of its DER name, the number the CRL number, else thisUpdate) and
//! `revocation/ocsp/<certificate sha256>.der` (the last authentic OCSP response). Entries past their nextUpdate
//! are kept but never used; a newer CRL of the same issuer replaces the older ones. Writes are atomic and
//! locked, as every store write.

use std::path::{Path, PathBuf};

use openssl::hash::MessageDigest;
use openssl::x509::{X509Crl, X509CrlRef};

use crate::cert;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::limits;

/// The cache folder.
pub const DIR: &str = "revocation";
/// CRLs.
pub const CRL_DIR: &str = "revocation/crl";
/// OCSP responses.
pub const OCSP_DIR: &str = "revocation/ocsp";

/// The issuer key of file names: 16 hex digits of the SHA-256 of the DER issuer name.
pub fn issuer_key(name_der: &[u8]) -> String {
    let d = openssl::hash::hash(MessageDigest::sha256(), name_der)
        .map(|d| cert::hex(&d))
        .unwrap_or_default();
    d[..16.min(d.len())].to_string()
}

/// The CRL number (decimal), if the CRL has one.
pub fn crl_number(crl: &X509CrlRef) -> Option<String> {
    let (_, n) = crl.extension::<openssl::x509::CrlNumber>().ok()??;
    Some(n.to_bn().ok()?.to_dec_str().ok()?.to_string())
}

/// Stores `crl` (already authenticated by the caller, or added by the user) and removes older CRLs of the same
/// issuer. Returns the file written.
pub fn store_crl(root: &Path, crl: &X509CrlRef, _url: Option<&str>) -> Result<PathBuf> {
    let home = Home::open(root)?;
    let _lock = home.lock()?;
    home.ensure_dir(DIR)?;
    let dir = home.ensure_dir(CRL_DIR)?;
    let ik = issuer_key(&crl.issuer_name().to_der()?);
    let this = cert::unix_time(crl.last_update());
    let number = crl_number(crl).unwrap_or_else(|| format!("t{this}"));
    let path = dir.join(format!("{ik}-{number}.crl"));
    let mut replaced = Vec::new();
    let existing = list_crls(&home)?;
    if existing.len() >= limits::MAX_CACHED_CRLS {
        return Err(Error::limit(format!(
            "the CRL cache holds {} CRLs already",
            existing.len()
        ))
        .hint("remove some with 'smimekit crl clear'"));
    }
    for (p, old) in existing {
        if p == path {
            continue;
        }
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&format!("{ik}-")))
            && cert::unix_time(old.last_update()) <= this
            && old.issuer_name().to_der()? == crl.issuer_name().to_der()?
        {
            replaced.push(p);
        }
    }
    home.write_atomic(&path, &crl.to_der()?)?;
    for p in replaced {
        home.remove(&p)?;
    }
    Ok(path)
}

/// Every cached CRL file that parses (a damaged one is skipped: it is only a cache).
pub fn list_crls(home: &Home) -> Result<Vec<(PathBuf, X509Crl)>> {
    let mut out = Vec::new();
    for p in home.list(CRL_DIR, ".crl")? {
        if let Ok(d) = home.read(&p)
            && let Ok(c) = X509Crl::from_der(&d)
        {
            out.push((p, c));
        }
    }
    Ok(out)
}

/// The cached OCSP response of a certificate, if any.
pub fn ocsp_path(home: &Home, fingerprint: &str) -> PathBuf {
    home.dir(OCSP_DIR).join(format!("{fingerprint}.der"))
}

/// Removes every cached CRL and OCSP response; returns how many files were removed.
pub fn clear(home: &Home) -> Result<usize> {
    let mut n = 0;
    for sub in [CRL_DIR, OCSP_DIR] {
        for ext in [".crl", ".der"] {
            for p in home.list(sub, ext)? {
                home.remove(&p)?;
                n += 1;
            }
        }
    }
    Ok(n)
}
