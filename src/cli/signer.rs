//! Taking a signer's certificate out of a signed message (`trust add MSG.eml`, `contact add MSG.eml
//! --accept-signer`): only when the signature's integrity holds, and only once the user has compared its
//! fingerprint with the one the sender gives by another channel. This is how a self-signed correspondent is
//! trusted without a separate certificate file.

use anyhow::Result;
use openssl::x509::X509;
use smimekit::Error;
use smimekit::cert::{self, CertInfo};
use smimekit::home::Home;
use smimekit::smime::verify;

use super::Global;
use super::output;

/// A signer's certificate offered for acceptance.
pub struct Offered {
    /// The certificate.
    pub cert: X509,
    /// SHA-256 fingerprint, lowercase hex.
    pub fingerprint: String,
    /// Subject, addresses, validity.
    pub info: CertInfo,
    /// What verification found besides trust (address mismatch, expiry, purpose).
    pub problems: Vec<String>,
}

/// Whether `name`/`data` looks like a message rather than a certificate file.
pub fn is_message(name: &str, data: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".eml")
        || lower.ends_with(".msg")
        || cert::sniff(data) == cert::FileKind::Message
}

/// The signers of the signed message `data` whose signature is intact (the content was not changed): each
/// with what else verification found. A signer whose integrity fails, or whose certificate the message does
/// not carry, is an error: there is nothing to compare.
pub fn signers_of(home: &Home, name: &str, data: &[u8]) -> Result<Vec<Offered>> {
    let opts = super::message::default_verify_options(home)?;
    let v = verify::verify(data, &opts).map_err(|e| e.context(name))?;
    let now = cert::now();
    let mut out = Vec::new();
    for s in &v.report.signers {
        if !s.integrity.ok {
            return Err(Error::bad_input(format!(
                "{name}: the signature does not match the content ({}): its signer's certificate cannot be taken from it",
                s.integrity.reason.clone().unwrap_or_else(|| "integrity failed".into())
            ))
            .hint("ask the sender for the message again, or for their certificate file")
            .into());
        }
        let Some(c) = s.certificate() else {
            return Err(Error::bad_input(format!(
                "{name}: the message does not carry its signer's certificate"
            ))
            .hint("ask the sender for their certificate file")
            .into());
        };
        let mut problems = Vec::new();
        if !s.validity.ok {
            problems.push("the certificate is not valid now".to_string());
        }
        if !s.purpose.ok {
            problems.push(format!(
                "the certificate is not for e-mail signing ({})",
                s.purpose.reason.clone().unwrap_or_default()
            ));
        }
        if !s.address_match.ok {
            problems.push("the From address is not among the certificate's addresses".to_string());
        }
        out.push(Offered {
            cert: c.to_owned(),
            fingerprint: cert::fingerprint(c),
            info: CertInfo::new(c, now),
            problems,
        });
    }
    if out.is_empty() {
        return Err(Error::bad_input(format!("{name}: the message has no signer")).into());
    }
    Ok(out)
}

/// The fingerprint in colon-separated pairs, as other tools show it, for comparison by eye.
pub fn spaced(fp: &str) -> String {
    fp.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// Shows the certificate and its fingerprint, then asks (`--yes` skips the question; `--batch` without it is
/// refused). `doing` names the action ("trusting", "adding as a contact").
pub fn confirm(g: &Global, yes: bool, doing: &str, o: &Offered) -> Result<bool> {
    let text = format!(
        "{doing} the signer's certificate\n  subject:     {}\n  e-mail:      {}\n  valid until: {}\n  SHA-256:     {}\nCompare this fingerprint with the one the sender gives you by another channel (in person, by phone).",
        o.info.subject,
        o.info.emails.join(", "),
        o.info.not_after,
        spaced(&o.fingerprint)
    );
    if yes {
        output::note(&text);
    } else if !g.batch {
        eprintln!("{}", output::clean(&text));
    }
    super::confirm(
        g,
        yes,
        &format!("{doing} the certificate {}", &o.fingerprint[..16]),
        "Does the fingerprint match?",
    )
}
