//! Certificate facts: e-mail addresses, key description, usages, fingerprints and validity, in one
//! serializable summary shared by `id show`, `contact show`, `trust list` and the verify report.

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::Id;
use openssl::x509::{X509, X509ExtendedKeyUsage, X509KeyUsage, X509Ref};

use crate::error::{Error, Result};
use crate::limits::MAX_CERT_ADDRESSES;

/// Days before expiry at which an ID or contact is flagged as expiring soon.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Everything a user wants to know about a certificate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertInfo {
    /// Subject distinguished name, RFC 2253 style.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// E-mail addresses: SAN rfc822Name and DN emailAddress, de-duplicated.
    pub emails: Vec<String>,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Key algorithm and size, e.g. "RSA 3072" or "EC P-256".
    pub key: String,
    /// Key size in bits.
    pub key_bits: u32,
    /// keyUsage names; empty when the extension is absent (`key_usage_present` tells which).
    pub key_usage: Vec<String>,
    /// Whether a keyUsage extension is present.
    pub key_usage_present: bool,
    /// extendedKeyUsage names; empty when absent.
    pub extended_key_usage: Vec<String>,
    /// SHA-256 fingerprint of the DER certificate, lowercase hex.
    pub fingerprint: String,
    /// Usable to sign mail (keyUsage and EKU allow it).
    pub can_sign: bool,
    /// Usable to receive encrypted mail (keyEncipherment for RSA, keyAgreement for EC; EKU allows it).
    pub can_encrypt: bool,
    /// A CA certificate (basicConstraints CA:TRUE).
    pub is_ca: bool,
    /// Expired at the time of the summary.
    pub expired: bool,
    /// Not yet valid at the time of the summary.
    pub not_yet_valid: bool,
    /// Expires within [`EXPIRY_WARNING_DAYS`].
    pub expires_soon: bool,
    /// Weak algorithms (RSA < 2048 bits, SHA-1 or MD5 certificate signature), and more e-mail addresses than
    /// are considered (`MAX_CERT_ADDRESSES`).
    pub weaknesses: Vec<String>,
}

impl CertInfo {
    /// Summarises `cert` as of `now` (unix seconds).
    pub fn new(cert: &X509Ref, now: i64) -> CertInfo {
        let (key, key_bits) = key_description(cert);
        let nb = unix_time(cert.not_before());
        let na = unix_time(cert.not_after());
        let ku = cert.key_usage();
        let mut weaknesses = Vec::new();
        if key.starts_with("RSA") && key_bits < 2048 {
            weaknesses.push(format!("RSA key of {key_bits} bits (< 2048)"));
        }
        let sig = cert.signature_algorithm().object().nid();
        if matches!(
            sig,
            Nid::SHA1WITHRSAENCRYPTION | Nid::ECDSA_WITH_SHA1 | Nid::DSAWITHSHA1
        ) {
            weaknesses.push("certificate signed with SHA-1".into());
        }
        if matches!(sig, Nid::MD5WITHRSAENCRYPTION | Nid::MD5WITHRSA) {
            weaknesses.push("certificate signed with MD5".into());
        }
        let (emails, ignored) = emails_counted(cert);
        if ignored > 0 {
            // Shown wherever weaknesses are: a certificate naming thousands of addresses is itself suspect.
            weaknesses.push(format!(
                "the certificate lists more than {MAX_CERT_ADDRESSES} e-mail addresses; {ignored} were ignored"
            ));
        }
        CertInfo {
            subject: name_to_string(cert.subject_name()),
            issuer: name_to_string(cert.issuer_name()),
            serial: serial_hex(cert),
            emails,
            not_before: rfc3339(nb),
            not_after: rfc3339(na),
            key,
            key_bits,
            key_usage: ku.map(key_usage_names).unwrap_or_default(),
            key_usage_present: ku.is_some(),
            extended_key_usage: cert.extended_key_usage().map(eku_names).unwrap_or_default(),
            fingerprint: fingerprint(cert),
            can_sign: can_sign(cert),
            can_encrypt: can_encrypt(cert),
            is_ca: is_ca(cert),
            expired: now > na,
            not_yet_valid: now < nb,
            expires_soon: now <= na && na - now <= EXPIRY_WARNING_DAYS * 86_400,
            weaknesses,
        }
    }

    /// A one-word status: "expired", "not yet valid", "expires soon" or "valid".
    pub fn status(&self) -> &'static str {
        if self.expired {
            "expired"
        } else if self.not_yet_valid {
            "not yet valid"
        } else if self.expires_soon {
            "expires soon"
        } else {
            "valid"
        }
    }
}

/// The current time in unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Formats unix seconds as RFC 3339 (UTC).
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Parses an RFC 3339 time or a date (`2026-01-31`) into unix seconds.
pub fn parse_time(s: &str) -> Result<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &fmt) {
        return Ok(d.midnight().assume_utc().unix_timestamp());
    }
    Err(Error::usage(format!("cannot read the time '{s}'"))
        .hint("use RFC 3339, e.g. 2026-01-31T12:00:00Z, or a date 2026-01-31"))
}

/// Converts an ASN.1 time to unix seconds.
pub fn unix_time(t: &openssl::asn1::Asn1TimeRef) -> i64 {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).expect("epoch");
    match epoch.diff(t) {
        Ok(d) => i64::from(d.days) * 86_400 + i64::from(d.secs),
        Err(_) => 0,
    }
}

/// SHA-256 fingerprint, lowercase hex without separators.
pub fn fingerprint(cert: &X509Ref) -> String {
    cert.digest(MessageDigest::sha256())
        .map(|d| hex(&d))
        .unwrap_or_default()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Does `cert` have this issuer (DER, as encoded in a CMS identifier) and serial number (hex)? The one rule
/// for SignerInfo and RecipientInfo identifiers.
pub fn matches_issuer_serial(cert: &X509Ref, issuer_der: &[u8], serial: &str) -> bool {
    cert.issuer_name().to_der().is_ok_and(|d| d == issuer_der)
        && serial_hex(cert)
            .trim_start_matches('0')
            .eq_ignore_ascii_case(serial.trim_start_matches('0'))
}

/// Does `cert` carry this subjectKeyIdentifier?
pub fn matches_key_id(cert: &X509Ref, key_id: &[u8]) -> bool {
    cert.subject_key_id()
        .is_some_and(|s| s.as_slice() == key_id)
}

/// Serial number as uppercase hex.
pub fn serial_hex(cert: &X509Ref) -> String {
    cert.serial_number()
        .to_bn()
        .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// A distinguished name as `CN=…, O=…` text (RFC 2253 order is not needed for display).
pub fn name_to_string(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e
                .object()
                .nid()
                .short_name()
                .map(str::to_string)
                .unwrap_or_else(|_| e.object().to_string());
            let val = e.data().to_string().unwrap_or_else(|_| "<binary>".into());
            format!("{key}={val}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The e-mail addresses of a certificate: SAN rfc822Name entries, then DN emailAddress entries, without
/// duplicates (compared with [`crate::address::same`]), at most [`MAX_CERT_ADDRESSES`] of them considered
/// (see [`emails_counted`]).
pub fn emails(cert: &X509Ref) -> Vec<String> {
    emails_counted(cert).0
}

/// [`emails`] and how many address entries beyond [`MAX_CERT_ADDRESSES`] were ignored. Linear: each address
/// is compared through its canonical form in a hash set (pairwise comparison made a 10,000-address
/// certificate take minutes).
pub fn emails_counted(cert: &X509Ref) -> (Vec<String>, usize) {
    let mut out: Vec<String> = Vec::new();
    // Canonical forms seen; an address that does not normalise is kept apart under its exact text.
    let mut seen: std::collections::HashSet<(bool, String)> = std::collections::HashSet::new();
    let (mut considered, mut ignored) = (0usize, 0usize);
    let mut push = |s: String| {
        if s.is_empty() {
            return;
        }
        if considered >= MAX_CERT_ADDRESSES {
            ignored += 1;
            return;
        }
        considered += 1;
        let key = match crate::address::normalize(&s) {
            Some(n) => (true, n),
            None => (false, s.clone()),
        };
        if seen.insert(key) {
            out.push(s);
        }
    };
    if let Some(sans) = cert.subject_alt_names() {
        for gn in sans.iter() {
            if let Some(e) = gn.email() {
                push(e.to_string());
            }
        }
    }
    for e in cert.subject_name().entries_by_nid(Nid::PKCS9_EMAILADDRESS) {
        if let Ok(s) = e.data().to_string() {
            push(s);
        }
    }
    (out, ignored)
}

/// Key algorithm and size.
pub fn key_description(cert: &X509Ref) -> (String, u32) {
    let Ok(pk) = cert.public_key() else {
        return ("unknown".into(), 0);
    };
    let bits = pk.bits();
    let desc = match pk.id() {
        Id::RSA => format!("RSA {bits}"),
        Id::EC => {
            let curve = pk
                .ec_key()
                .ok()
                .and_then(|k| k.group().curve_name())
                .map(|n| match n {
                    Nid::X9_62_PRIME256V1 => "P-256".to_string(),
                    Nid::SECP384R1 => "P-384".to_string(),
                    Nid::SECP521R1 => "P-521".to_string(),
                    other => other.short_name().unwrap_or("?").to_string(),
                })
                .unwrap_or_else(|| "explicit curve".into());
            format!("EC {curve}")
        }
        Id::ED25519 => "Ed25519".into(),
        Id::DSA => format!("DSA {bits}"),
        Id::RSA_PSS => format!("RSA-PSS {bits}"),
        other => format!("key type {}", other.as_raw()),
    };
    (desc, bits)
}

fn key_usage_names(ku: X509KeyUsage) -> Vec<String> {
    let table = [
        (X509KeyUsage::DIGITAL_SIGNATURE, "digitalSignature"),
        (X509KeyUsage::NON_REPUDIATION, "nonRepudiation"),
        (X509KeyUsage::KEY_ENCIPHERMENT, "keyEncipherment"),
        (X509KeyUsage::DATA_ENCIPHERMENT, "dataEncipherment"),
        (X509KeyUsage::KEY_AGREEMENT, "keyAgreement"),
        (X509KeyUsage::KEY_CERT_SIGN, "keyCertSign"),
        (X509KeyUsage::CRL_SIGN, "cRLSign"),
        (X509KeyUsage::ENCIPHER_ONLY, "encipherOnly"),
        (X509KeyUsage::DECIPHER_ONLY, "decipherOnly"),
    ];
    table
        .iter()
        .filter(|(f, _)| ku.contains(*f))
        .map(|(_, n)| n.to_string())
        .collect()
}

fn eku_names(eku: X509ExtendedKeyUsage) -> Vec<String> {
    let table = [
        (X509ExtendedKeyUsage::SMIME, "emailProtection"),
        (X509ExtendedKeyUsage::SSL_SERVER, "serverAuth"),
        (X509ExtendedKeyUsage::SSL_CLIENT, "clientAuth"),
        (X509ExtendedKeyUsage::CODE_SIGN, "codeSigning"),
        (X509ExtendedKeyUsage::OCSP_SIGN, "OCSPSigning"),
        (X509ExtendedKeyUsage::TIMESTAMP, "timeStamping"),
        (X509ExtendedKeyUsage::ANYEKU, "anyExtendedKeyUsage"),
    ];
    let mut v: Vec<String> = table
        .iter()
        .filter(|(f, _)| eku.contains(*f))
        .map(|(_, n)| n.to_string())
        .collect();
    if v.is_empty() {
        v.push("(other purposes only)".into());
    }
    v
}

/// EKU absent, or containing emailProtection or anyExtendedKeyUsage.
pub fn eku_allows_email(cert: &X509Ref) -> bool {
    cert.extended_key_usage()
        .is_none_or(|e| e.intersects(X509ExtendedKeyUsage::SMIME | X509ExtendedKeyUsage::ANYEKU))
}

/// May this certificate sign mail? keyUsage absent or digitalSignature/nonRepudiation; EKU allows e-mail.
pub fn can_sign(cert: &X509Ref) -> bool {
    let ku_ok = cert.key_usage().is_none_or(|k| {
        k.intersects(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION)
    });
    ku_ok && eku_allows_email(cert) && !is_ca_only(cert)
}

/// May this certificate sign code (git commits and tags)? As [`can_sign`], with EKU codeSigning accepted
/// beside emailProtection.
pub fn can_sign_code(cert: &X509Ref) -> bool {
    let ku_ok = cert.key_usage().is_none_or(|k| {
        k.intersects(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION)
    });
    let eku_ok = cert.extended_key_usage().is_none_or(|e| {
        e.intersects(
            X509ExtendedKeyUsage::SMIME
                | X509ExtendedKeyUsage::CODE_SIGN
                | X509ExtendedKeyUsage::ANYEKU,
        )
    });
    ku_ok && eku_ok && !is_ca_only(cert)
}

/// May mail be encrypted to this certificate? RSA needs keyEncipherment, EC keyAgreement (when keyUsage is
/// present); EKU allows e-mail.
pub fn can_encrypt(cert: &X509Ref) -> bool {
    let Ok(pk) = cert.public_key() else {
        return false;
    };
    let needed = match pk.id() {
        Id::RSA => X509KeyUsage::KEY_ENCIPHERMENT,
        Id::EC => X509KeyUsage::KEY_AGREEMENT,
        _ => return false,
    };
    cert.key_usage().is_none_or(|k| k.contains(needed))
        && eku_allows_email(cert)
        && !is_ca_only(cert)
}

/// basicConstraints CA:TRUE (or a legacy CA form).
pub fn is_ca(cert: &X509Ref) -> bool {
    crate::ossl::x509::is_ca(cert)
}

fn is_ca_only(cert: &X509Ref) -> bool {
    is_ca(cert)
        && cert.key_usage().is_some_and(|k| {
            !k.intersects(
                X509KeyUsage::DIGITAL_SIGNATURE
                    | X509KeyUsage::KEY_ENCIPHERMENT
                    | X509KeyUsage::KEY_AGREEMENT,
            )
        })
}

/// Parses one or more certificates from PEM (any number of blocks) or a single DER certificate.
pub fn parse_certs(data: &[u8], what: &str) -> Result<Vec<X509>> {
    if data.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs = X509::stack_from_pem(data).map_err(|e| {
            Error::bad_input(format!("{what}: cannot read the PEM certificates"))
                .detail(e)
                .hint("check that the file holds PEM CERTIFICATE blocks")
        })?;
        if certs.is_empty() {
            return Err(Error::bad_input(format!(
                "{what}: no certificate found in the PEM file"
            )));
        }
        return Ok(certs);
    }
    X509::from_der(data).map(|c| vec![c]).map_err(|e| {
        Error::bad_input(format!("{what} is not a certificate (neither PEM nor DER)"))
            .detail(e)
            .hint("pass a .pem, .crt, .cer or .der certificate file")
    })
}

/// What a file that is not what a command expected holds, to point to the command that takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// One or more certificates (PEM or DER), without a private key.
    Certificates,
    /// A private key and a certificate in PEM (what `openssl pkcs12 -export` takes).
    KeyAndCertificate,
    /// A private key alone (PEM).
    PrivateKey,
    /// A certificate signing request (PEM or DER).
    CertificateRequest,
    /// A signed or encrypted message (MIME).
    Message,
    /// None of these.
    Unknown,
}

/// Recognises a certificate, key+certificate PEM, key, CSR or message by its content (PEM labels, else a DER
/// parse), for errors that name the right command.
pub fn sniff(data: &[u8]) -> FileKind {
    let has = |label: &[u8]| data.windows(label.len()).any(|w| w == label);
    let pem_cert = has(b"-----BEGIN CERTIFICATE-----") || has(b"-----BEGIN X509 CERTIFICATE-----");
    let pem_key = has(b"PRIVATE KEY-----");
    if pem_cert && pem_key {
        return FileKind::KeyAndCertificate;
    }
    if pem_key {
        return FileKind::PrivateKey;
    }
    if has(b"-----BEGIN CERTIFICATE REQUEST-----")
        || has(b"-----BEGIN NEW CERTIFICATE REQUEST-----")
    {
        return FileKind::CertificateRequest;
    }
    if pem_cert || has(b"-----BEGIN PKCS7-----") {
        return FileKind::Certificates;
    }
    if X509::from_der(data).is_ok() {
        return FileKind::Certificates;
    }
    if openssl::x509::X509Req::from_der(data).is_ok() {
        return FileKind::CertificateRequest;
    }
    let head = &data[..data.len().min(64 << 10)];
    let lower = head.to_ascii_lowercase();
    let has_l = |l: &[u8]| lower.windows(l.len()).any(|w| w == l);
    if has_l(b"content-type:") && (has_l(b"pkcs7") || has_l(b"multipart/signed")) {
        return FileKind::Message;
    }
    FileKind::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::extension::SubjectAlternativeName;

    fn with_sans(emails: &[String]) -> X509 {
        let key = openssl::pkey::PKey::from_ec_key(
            openssl::ec::EcKey::generate(
                &openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let mut b = X509::builder().unwrap();
        b.set_pubkey(&key).unwrap();
        let mut san = SubjectAlternativeName::new();
        for e in emails {
            san.email(e);
        }
        let ext = san.build(&b.x509v3_context(None, None)).unwrap();
        b.append_extension(ext).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        b.build()
    }

    #[test]
    fn addresses_are_deduplicated_by_canonical_form_and_capped() {
        let c = with_sans(&[
            "Alice@Example.COM".into(),
            "alice@example.com".into(),
            "Bob@example.org.".into(),
            "bob@EXAMPLE.org".into(),
            "not an address".into(),
            "not an address".into(),
        ]);
        let (e, ignored) = emails_counted(&c);
        assert_eq!(
            e,
            ["Alice@Example.COM", "Bob@example.org.", "not an address"]
        );
        assert_eq!(ignored, 0);
        let many: Vec<String> = (0..MAX_CERT_ADDRESSES + 5)
            .map(|i| format!("u{i}@example.com"))
            .collect();
        let (e, ignored) = emails_counted(&with_sans(&many));
        assert_eq!((e.len(), ignored), (MAX_CERT_ADDRESSES, 5));
        let info = CertInfo::new(&with_sans(&many), now());
        assert!(info.weaknesses.iter().any(|w| w.contains("5 were ignored")));
    }
}
