//! TEMPORARY stub (replaced by the p12 branch).
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::x509::{X509, X509Ref};

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;

/// Summary.
#[derive(Debug, Clone)]
pub struct P12Summary {
    /// d
    pub has_mac: bool,
    /// d
    pub legacy: bool,
    /// d
    pub description: String,
}
/// Key.
pub struct P12Key {
    /// k
    pub key: PKey<Private>,
}
/// Cert.
pub struct P12Cert {
    /// c
    pub cert: X509,
    /// f
    pub friendly_name: Option<String>,
}
/// Contents.
pub struct P12Contents {
    /// k
    pub keys: Vec<P12Key>,
    /// c
    pub certs: Vec<P12Cert>,
}
/// Profile.
#[derive(Debug, Clone, Copy)]
pub enum Profile {
    /// m
    Modern,
    /// c
    Compat,
    /// l
    Legacy,
}
/// Entry.
pub enum BuildEntry<'a> {
    /// i
    Identity {
        /// k
        key: &'a PKeyRef<Private>,
        /// c
        cert: &'a X509Ref,
        /// c
        chain: &'a [X509],
        /// f
        friendly_name: &'a str,
    },
    /// c
    Cert {
        /// c
        cert: &'a X509Ref,
        /// f
        friendly_name: &'a str,
    },
}
/// s
pub fn summarize(_der: &[u8]) -> Result<P12Summary> {
    Ok(P12Summary {
        has_mac: true,
        legacy: false,
        description: "PKCS#12".into(),
    })
}
/// c
pub fn check_limits(_s: &P12Summary, _allow_no_mac: bool) -> Result<()> {
    Ok(())
}
/// p
pub fn parse(der: &[u8], password: &Secret) -> Result<P12Contents> {
    crate::ossl::provider::ensure_legacy();
    let p = Pkcs12::from_der(der).map_err(|e| Error::bad_input("not a PKCS#12 file").detail(e))?;
    let parsed = p.parse2(password.as_str().unwrap_or("")).map_err(|e| {
        Error::new(
            ErrorKind::WrongSecret,
            "wrong password for the PKCS#12 file",
        )
        .detail(e)
    })?;
    let mut certs: Vec<P12Cert> = parsed
        .cert
        .into_iter()
        .map(|c| P12Cert {
            cert: c,
            friendly_name: None,
        })
        .collect();
    if let Some(ca) = parsed.ca {
        certs.extend(ca.into_iter().map(|c| P12Cert {
            cert: c,
            friendly_name: None,
        }));
    }
    Ok(P12Contents {
        keys: parsed.pkey.into_iter().map(|k| P12Key { key: k }).collect(),
        certs,
    })
}
/// i
pub fn identities(c: &P12Contents) -> Result<Vec<(PKey<Private>, X509, Vec<X509>)>> {
    let mut out = Vec::new();
    for k in &c.keys {
        let leaf = c.certs.iter().find(|x| {
            x.cert
                .public_key()
                .map(|p| p.public_eq(&k.key))
                .unwrap_or(false)
        });
        let Some(leaf) = leaf else {
            return Err(Error::bad_input("key and certificate do not match"));
        };
        let chain = c
            .certs
            .iter()
            .filter(|x| !std::ptr::eq(*x, leaf))
            .map(|x| x.cert.clone())
            .collect();
        out.push((k.key.clone(), leaf.cert.clone(), chain));
    }
    if out.is_empty() {
        return Err(Error::not_found("the PKCS#12 file contains no private key"));
    }
    Ok(out)
}
/// b
pub fn build(entries: &[BuildEntry], password: &Secret, _profile: Profile) -> Result<Vec<u8>> {
    let Some(BuildEntry::Identity { key, cert, .. }) = entries.first() else {
        return Err(Error::usage("nothing"));
    };
    let mut b = Pkcs12::builder();
    b.pkey(key).cert(cert);
    Ok(b.build2(password.as_str().unwrap_or(""))?.to_der()?)
}
