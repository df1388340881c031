//! Decrypting a message: find which of our IDs a RecipientInfo names (expired ones too: old mail must stay
//! readable), decrypt with no plaintext released unless decryption (and, for AES-GCM, authentication) succeeded,
//! and hand back the outer headers joined with the inner entity.
//!
//! Structure checks OpenSSL 3.0 does not make (GCM tag length, cipher/container mismatch, legacy ciphers) run
//! before any key is used: see [`crate::ossl::enveloped::check`].

use std::io::Write;

use openssl::pkey::{PKey, Private};
use zeroize::Zeroizing;

use super::{pkcs7_der, top_level};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::ids::{IdStore, Identity};
use crate::limits::MAX_DECRYPT_BYTES;
use crate::mime::{self, Layer};
use crate::ossl::enveloped::{self, EnvelopedInfo, EnvelopedKind, RecipientId};
use crate::ossl::signed::{CmsType, content_type_of};

/// Refuses encrypted content larger than `max` bytes ([`MAX_DECRYPT_BYTES`]), before any key is used. OpenSSL
/// cannot stream decryption of an attached message; we walk the DER ourselves and stream the ciphertext through
/// it, but nothing may be released before it is authenticated, so the plaintext goes to memory
/// ([`Encrypted::decrypt`]) or to a temporary file renamed into place only on success
/// ([`Encrypted::decrypt_streaming`], `decrypt -o FILE`).
fn check_size(len: u64, max: u64) -> Result<()> {
    if len > max {
        return Err(Error::limit(format!(
            "the encrypted content is {len} bytes; smimekit decrypts at most {} MiB",
            max >> 20
        ))
        .hint("smimekit cannot decrypt this message; ask the sender to split the content over several messages"));
    }
    Ok(())
}

/// How to decrypt.
#[derive(Debug, Clone, Default)]
pub struct DecryptOptions {
    /// Use this ID (e-mail or fingerprint) instead of searching.
    pub as_id: Option<String>,
    /// Allow single DES (archives only; RC2 and 3DES decrypt with a warning).
    pub allow_legacy: bool,
}

/// What decryption found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DecryptReport {
    /// `enveloped` (confidentiality only) or `auth_enveloped` (AEAD).
    pub kind: EnvelopedKind,
    /// The content cipher.
    pub content_cipher: String,
    /// `authenticated` (AEAD) or `none`.
    pub integrity: &'static str,
    /// The ID that opened it.
    pub decrypted_with: String,
    /// Every recipient the message names.
    pub recipients: Vec<String>,
    /// True for 3DES, RC2 and DES: decrypted with a "weak cipher" warning (exit 0: old mail stays readable).
    pub weak_cipher: bool,
    /// Warnings: weak cipher, no integrity protection…
    pub warnings: Vec<String>,
    /// What decryption proves about the sender ([`sender_statement`]): set for unsigned content here, and
    /// for signed content by the caller once it knows the content is signed.
    pub sender: &'static str,
}

/// True if `plain` (outer header fields + the decrypted entity) starts with a well-formed header block: every
/// line before the first empty one is a field (`name:` with printable ASCII name) or a continuation line.
///
/// CBC has no integrity: an EFAIL gadget rewrites the first plaintext block, which is the inner entity's
/// `Content-Type` (T32). A broken header block is the visible trace of such a modification.
pub fn header_block_well_formed(plain: &[u8]) -> bool {
    for line in plain.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return true;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        match line.iter().position(|&b| b == b':') {
            Some(n) if n > 0 && line[..n].iter().all(|&b| (33..=126).contains(&b)) => {}
            _ => return false,
        }
    }
    true
}

/// What the decryption proves about who sent the message, one line: encryption never authenticates a sender
/// (anyone holding the recipient's certificate can encrypt), and a signature inside covers only the signed
/// entity, not the encryption layer or the outer header fields.
pub fn sender_statement(signed: bool) -> &'static str {
    if signed {
        "the signature covers the inner signed entity only — not the encryption layer, the Subject, To or other outer header fields: whoever encrypted it may have re-sent someone else's signed mail"
    } else {
        "not signed — the sender is not authenticated (anyone with your certificate can encrypt a message to you, under any From)"
    }
}

/// Warnings for outer header fields (From, To, Cc, Subject) that differ from the same fields inside the signed
/// entity, when the signer put them there (header protection, or a signed `message/rfc822`): the signed mail
/// was re-sent under new headers (surreptitious forwarding).
///
/// `plain` is the decrypted message (outer header fields + inner entity); `signed_entity` the content the
/// signature covers.
pub fn signed_header_mismatches(plain: &[u8], signed_entity: &[u8]) -> Vec<String> {
    let Ok(outer) = mime::split_entity(plain) else {
        return Vec::new();
    };
    let Ok(outer) = mime::parse_headers(outer.header) else {
        return Vec::new();
    };
    let Ok(inner) = mime::split_entity(signed_entity) else {
        return Vec::new();
    };
    let Ok(mut inner_fields) = mime::parse_headers(inner.header) else {
        return Vec::new();
    };
    // A signed message/rfc822: its own header block is what the signer wrote.
    let is_rfc822 = mime::content_type(&inner_fields)
        .ok()
        .flatten()
        .is_some_and(|ct| ct.mime == "message/rfc822");
    let body_fields;
    if is_rfc822 && let Ok(e) = mime::split_entity(inner.body) {
        body_fields = mime::parse_headers(e.header).unwrap_or_default();
        inner_fields = body_fields;
    }
    let mut out = Vec::new();
    for name in ["from", "to", "cc", "subject"] {
        let Some(signed) = mime::field_value(&inner_fields, name) else {
            continue;
        };
        let shown = mime::field_value(&outer, name);
        if shown.as_deref().map(str::trim) != Some(signed.trim()) {
            out.push(format!(
                "the outer {} ({}) differs from the signed one ({}): the signed mail was re-sent under new headers (surreptitious forwarding?); trust only the signed values",
                name,
                crate::display::field(shown.as_deref().unwrap_or("absent")),
                crate::display::field(&signed)
            ));
        }
    }
    out
}

/// True if `plain` visibly carries an S/MIME signature part or signed-data although it is not recognised as a
/// signed message: an unauthenticated (CBC) layer whose first block was rewritten can turn "multipart/signed"
/// into anything (an EFAIL gadget), but the signature part's own header survives. Searched case-insensitively
/// in 64 KiB windows (wiped), never by copying the whole plaintext.
pub fn mentions_signed_layer(plain: &[u8]) -> bool {
    const MARKERS: [&[u8]; 3] = [
        b"application/pkcs7-signature",
        b"application/x-pkcs7-signature",
        b"smime-type=signed-data",
    ];
    const WINDOW: usize = 64 * 1024;
    const OVERLAP: usize = 32;
    let mut buf = Zeroizing::new(Vec::with_capacity(WINDOW + OVERLAP));
    let mut start = 0;
    while start < plain.len() {
        let end = (start + WINDOW).min(plain.len());
        buf.clear();
        buf.extend(
            plain[start.saturating_sub(OVERLAP)..end]
                .iter()
                .map(|b| b.to_ascii_lowercase()),
        );
        if MARKERS
            .iter()
            .any(|m| memchr::memmem::find(&buf, m).is_some())
        {
            return true;
        }
        start = end;
    }
    false
}

/// A parsed encrypted message, before any secret is used.
pub struct Encrypted<'a> {
    raw: &'a [u8],
    der: Vec<u8>,
    /// What the CMS structure says.
    pub info: EnvelopedInfo,
    /// Warnings from the structure checks.
    pub warnings: Vec<String>,
}

/// Describes a recipient identifier for people.
pub fn describe_recipient(id: &RecipientId) -> String {
    match id {
        RecipientId::IssuerSerial {
            issuer, serial_hex, ..
        } => format!("issuer \"{issuer}\", serial {serial_hex}"),
        RecipientId::KeyId(k) => format!("key id {}", crate::cert::hex(k)),
        RecipientId::None => "a password or key-encryption key (not supported)".into(),
    }
}

/// True if `rid` names `cert`.
pub fn recipient_matches(rid: &RecipientId, cert: &openssl::x509::X509Ref) -> bool {
    match rid {
        RecipientId::IssuerSerial {
            issuer_der,
            serial_hex,
            ..
        } => crate::cert::matches_issuer_serial(cert, issuer_der, serial_hex),
        RecipientId::KeyId(k) => crate::cert::matches_key_id(cert, k),
        RecipientId::None => false,
    }
}

/// An explicitly chosen part `n` (1-based) of a top-level multipart message, as a message of its own: the
/// outer header fields and that part's entity, nothing of its siblings. `decrypt --part N` uses it to open an
/// encrypted part that is not at the top level — never automatically (EFAIL direct exfiltration, T33: the
/// plaintext must not be joined with the attacker's HTML around it).
pub fn select_part(raw: &[u8], n: usize) -> Result<Vec<u8>> {
    let top = top_level(raw)?;
    let ct = mime::content_type(&top.fields)?;
    let Some(boundary) = ct
        .as_ref()
        .filter(|c| c.is_multipart())
        .and_then(|c| c.param("boundary"))
    else {
        return Err(Error::usage("--part needs a multipart message")
            .hint("decrypt the message without --part"));
    };
    let mp = mime::split_multipart(top.body, boundary.as_bytes())?;
    let part = n
        .checked_sub(1)
        .and_then(|i| mp.parts.get(i))
        .ok_or_else(|| {
            Error::usage(format!(
                "the message has {} parts; there is no part {n}",
                mp.parts.len()
            ))
            .hint("'smimekit inspect' lists the parts")
        })?;
    let parts = mime::split_message_parts(raw)?;
    let mut out = parts.outer;
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    out.extend_from_slice(&mime::to_crlf(part));
    Ok(out)
}

/// Parses and checks an encrypted message without any secret (exit-2 errors for malformed or refused input).
pub fn parse(raw: &[u8], allow_legacy: bool) -> Result<Encrypted<'_>> {
    let top = top_level(raw)?;
    match &top.layer {
        Layer::Pkcs7Mime { .. } => {}
        Layer::MultipartSigned { .. } => {
            return Err(Error::bad_input("the message is signed, not encrypted")
                .hint("verify it with 'smimekit verify'"));
        }
        Layer::Other => {
            let nested = super::nested_smime_parts(&top);
            if let Some((n, _)) = nested.first() {
                return Err(Error::bad_input(format!(
                    "the message is not encrypted as a whole: part {n} is an S/MIME part embedded in other content"
                ))
                .hint(format!("smimekit never decrypts an embedded part automatically, so decrypted text is not mixed with the content around it (EFAIL); to open that part on its own, run: smimekit decrypt --part {n}")));
            }
            return Err(Error::bad_input(
                "the message is not encrypted (no S/MIME layer at the top level)",
            )
            .hint("there is nothing to decrypt; 'smimekit inspect' shows what the message is"));
        }
    }
    let der = pkcs7_der(&top.fields, top.body)?;
    match content_type_of(&der)? {
        CmsType::EnvelopedData | CmsType::AuthEnvelopedData => {}
        CmsType::SignedData => {
            return Err(
                Error::bad_input("the message is signed (opaque), not encrypted")
                    .hint("verify it with 'smimekit verify'"),
            );
        }
        other => {
            return Err(super::unsupported_cms(other, "enveloped data"));
        }
    }
    let info = enveloped::inspect(&der)?;
    check_size(info.encrypted_len, MAX_DECRYPT_BYTES)?;
    let warnings = enveloped::check(&info, allow_legacy)?;
    Ok(Encrypted {
        raw,
        der,
        info,
        warnings,
    })
}

impl Encrypted<'_> {
    /// The IDs of `home` that a RecipientInfo names, best first (valid before expired).
    pub fn matching_ids(&self, home: &Home) -> Result<Vec<Identity>> {
        let all = IdStore::new(home).list()?;
        let mut m: Vec<Identity> = all
            .into_iter()
            .filter(|i| {
                self.info
                    .recipients
                    .iter()
                    .any(|r| recipient_matches(&r.id, &i.cert))
            })
            .collect();
        let now = crate::cert::now();
        m.sort_by_key(|i| i.info(now).expired);
        Ok(m)
    }

    /// The recipients, described.
    pub fn recipients(&self) -> Vec<String> {
        self.info
            .recipients
            .iter()
            .map(|r| format!("{} ({})", describe_recipient(&r.id), r.kind))
            .collect()
    }

    /// The recipients, described, with the contact or ID each one is when `home` knows its certificate — so a
    /// user told "none of your IDs can decrypt this" sees who it was for.
    pub fn recipients_named(&self, home: &Home) -> Vec<String> {
        let mut known: Vec<(String, openssl::x509::X509)> = Vec::new();
        if let Ok(ids) = IdStore::new(home).list() {
            known.extend(
                ids.into_iter()
                    .map(|i| (format!("your ID {}", i.label()), i.cert)),
            );
        }
        if let Ok(cs) = crate::contacts::ContactStore::new(home).list() {
            known.extend(
                cs.into_iter()
                    .map(|c| (format!("contact {}", c.label()), c.cert)),
            );
        }
        self.info
            .recipients
            .iter()
            .map(|r| {
                let who = known
                    .iter()
                    .find(|(_, c)| recipient_matches(&r.id, c))
                    .map(|(l, _)| l.as_str());
                match who {
                    Some(w) => format!("{w} — {} ({})", describe_recipient(&r.id), r.kind),
                    None => format!("{} ({})", describe_recipient(&r.id), r.kind),
                }
            })
            .collect()
    }

    /// Picks the ID to decrypt with: `as_id`, else the first matching one. No match: NotFound listing the
    /// recipients.
    pub fn choose_id(&self, home: &Home, as_id: Option<&str>) -> Result<Identity> {
        if let Some(q) = as_id {
            let id = IdStore::new(home).find(q)?;
            if !self
                .info
                .recipients
                .iter()
                .any(|r| recipient_matches(&r.id, &id.cert))
            {
                return Err(Error::not_found(format!(
                    "the message is not encrypted to {}",
                    id.label()
                ))
                .hint(format!(
                    "it is encrypted to: {}",
                    self.recipients_named(home).join("; ")
                )));
            }
            return Ok(id);
        }
        self.matching_ids(home)?.into_iter().next().ok_or_else(|| {
            Error::not_found("none of your digital IDs can decrypt this message").hint(format!(
                "it is encrypted to: {}. Import the matching ID with 'smimekit id import'",
                self.recipients_named(home).join("; ")
            ))
        })
    }

    /// Decrypts with `id`'s `key` into memory: the outer header fields followed by the inner entity. On `Err`
    /// no plaintext leaves this function (the buffer OpenSSL filled before the padding or the GCM tag failed is
    /// wiped), so a caller cannot release unauthenticated plaintext by mistake (T29).
    pub fn decrypt(
        &self,
        id: &Identity,
        key: &PKey<Private>,
        allow_legacy: bool,
    ) -> Result<(Zeroizing<Vec<u8>>, DecryptReport)> {
        // Sized up front (outer header fields + plaintext, which is never longer than the ciphertext) so that
        // growing never leaves an unwiped copy of plaintext behind.
        let outer = mime::split_message_parts(self.raw)?.outer;
        let cap = usize::try_from(self.info.encrypted_len)
            .unwrap_or(usize::MAX / 2)
            .saturating_add(outer.len())
            .saturating_add(64);
        let mut buf = Zeroizing::new(Vec::with_capacity(cap));
        let report = self.decrypt_after(&outer, id, key, allow_legacy, &mut *buf)?;
        Ok((buf, report))
    }

    /// [`Self::decrypt`], then writes the result to `out`. Nothing is written unless decryption completed and,
    /// for AES-GCM, the tag verified.
    pub fn decrypt_to(
        &self,
        id: &Identity,
        key: &PKey<Private>,
        allow_legacy: bool,
        out: &mut dyn Write,
    ) -> Result<DecryptReport> {
        let (buf, report) = self.decrypt(id, key, allow_legacy)?;
        out.write_all(&buf).map_err(Error::output)?;
        Ok(report)
    }

    /// Decrypts with flat memory, streaming the outer header fields and the plaintext into `out` as they are
    /// produced. **On `Err`, `out` holds unauthenticated plaintext and must be discarded**: write to a temporary
    /// file and rename it into place only on `Ok` (what `smimekit decrypt -o FILE` does). [`Encrypted::decrypt`]
    /// is the safe form for callers that want the plaintext in memory.
    pub fn decrypt_streaming(
        &self,
        id: &Identity,
        key: &PKey<Private>,
        allow_legacy: bool,
        out: &mut dyn Write,
    ) -> Result<DecryptReport> {
        let outer = mime::split_message_parts(self.raw)?.outer;
        self.decrypt_after(&outer, id, key, allow_legacy, out)
    }

    /// [`Self::decrypt_streaming`] with the outer header fields already split off (the in-memory form needs
    /// their length first, to size its buffer, and should not split the message twice).
    fn decrypt_after(
        &self,
        outer: &[u8],
        id: &Identity,
        key: &PKey<Private>,
        allow_legacy: bool,
        out: &mut dyn Write,
    ) -> Result<DecryptReport> {
        out.write_all(outer).map_err(Error::output)?;
        out.write_all(b"MIME-Version: 1.0\r\n")
            .map_err(Error::output)?;
        let mut warnings = self.warnings.clone();
        warnings.extend(enveloped::decrypt_streaming_with(
            &self.der,
            key,
            &id.cert,
            allow_legacy,
            out,
        )?);
        // Keep the first of each warning (the structure check and the decryption may both report one).
        let mut seen = std::collections::HashSet::new();
        warnings.retain(|w| seen.insert(w.clone()));
        let aead = self.info.aead && self.info.kind == EnvelopedKind::AuthEnveloped;
        Ok(DecryptReport {
            kind: self.info.kind,
            content_cipher: self.info.content_cipher.clone(),
            integrity: if aead { "authenticated" } else { "none" },
            decrypted_with: id.label(),
            recipients: self.recipients(),
            weak_cipher: enveloped::is_weak_cipher(&self.info.content_cipher_oid),
            warnings,
            sender: sender_statement(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limit() {
        assert!(check_size(MAX_DECRYPT_BYTES, MAX_DECRYPT_BYTES).is_ok());
        let e = check_size(MAX_DECRYPT_BYTES + 1, MAX_DECRYPT_BYTES).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Limit);
        assert!(e.message().contains("at most 2048 MiB"), "{}", e.message());
    }

    #[test]
    fn header_block_checks() {
        assert!(header_block_well_formed(
            b"From: a\r\nSubject: x\r\n y\r\nContent-Type: text/plain\r\n\r\n<img src=\"http://x\">"
        ));
        assert!(!header_block_well_formed(
            b"From: a\r\n<img src=\"http:/ltipart/signed; x\r\n\r\nbody"
        ));
        assert!(!header_block_well_formed(b"no colon here\r\n\r\n"));
        assert!(mentions_signed_layer(
            b"Content-Type: Application/PKCS7-Signature"
        ));
        assert!(!mentions_signed_layer(b"Content-Type: text/plain"));
    }
}

#[cfg(test)]
mod sender_tests {
    use super::*;

    #[test]
    fn outer_headers_that_differ_from_signed_ones_are_reported() {
        let plain = b"From: alice@example.com\r\nTo: carol@example.net\r\nSubject: new\r\n\r\nbody";
        let signed = b"Content-Type: text/plain\r\nTo: bob@example.org\r\nSubject: old\r\n\r\nhi";
        let w = signed_header_mismatches(plain, signed);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("outer to (carol@example.net)"), "{w:?}");
        assert!(w[1].contains("subject"), "{w:?}");
        let same = b"Content-Type: text/plain\r\nSubject: new\r\n\r\nhi";
        assert!(signed_header_mismatches(plain, same).is_empty());
        // Without signed header fields there is nothing to compare.
        assert!(signed_header_mismatches(plain, b"Content-Type: text/plain\r\n\r\nhi").is_empty());
    }
}
