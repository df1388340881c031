//! Verifying a signed message: integrity, trust, validity, purpose and address match, reported separately for
//! every signer, over the exact received bytes of the signed part.
//!
//! OpenSSL's all-in-one `CMS_verify` is not used: it accepts a SignerInfo without signed attributes
//! (ForgedAttributes), a content-type attribute that differs from eContentType, tries only the first
//! certificate that matches a key identifier, and (3.0) ignores intermediates handed to it. Instead each
//! SignerInfo is checked on its own: profile rules, the message digest computed here over the signed bytes,
//! the signature over the signed attributes with every candidate certificate, then path validation.

use openssl::hash::Hasher;
use openssl::x509::{X509, X509Ref};

use super::{pkcs7_der, top_level};
use crate::cert::{self, CertInfo};
use crate::error::{Error, Result};
use crate::limits::{MAX_SIGNERS, MAX_UNTRUSTED, SIGNING_TIME_SKEW_SECS};
use crate::mime::{self, Layer};
use crate::ossl::signed::{
    CmsType, SignedData, SignerId, SignerSummary, content_type_of, oid_name,
};
use crate::trust::{self, ChainOptions, ChainReport, Purpose};

/// Where trust comes from and when to validate.
#[derive(Default, Clone)]
pub struct VerifyOptions {
    /// Trust anchors of the user (and `--ca` files).
    pub anchors: Vec<X509>,
    /// Also trust the system store.
    pub system_trust: bool,
    /// Validation time (unix seconds); `None` = now.
    pub at: Option<i64>,
    /// Certificates known to us (contacts, their intermediates, our IDs): candidates for signers whose
    /// certificate is not in the message, and intermediates for chain building. Never trusted by themselves.
    pub known_certs: Vec<X509>,
    /// `--no-address-check`: the verdict is about the signer alone; the From/Sender is not compared (and a
    /// message without either may then be `valid`). Harvest binds nothing then.
    pub no_address_check: bool,
    /// Revocation policy and sources.
    pub revocation: crate::revocation::Settings,
    /// Work shared across the messages of a run (`scan`; [`VerifyCache::new`]); `None` does everything afresh.
    pub cache: Option<std::sync::Arc<VerifyCache>>,
}

/// What verifying many messages with the same options can reuse: parsed certificates and chain results.
pub struct VerifyCache {
    /// Path-validation results, over the options' anchors and known certificates.
    pub chains: trust::ChainCache,
    /// Certificates carried by messages, parsed once.
    pub certs: crate::ossl::signed::ParsedCerts,
}

impl VerifyCache {
    /// A cache for verifying with `opts` (its anchors and known certificates).
    pub fn new(opts: &VerifyOptions) -> VerifyCache {
        let fixed: Vec<X509> = opts
            .anchors
            .iter()
            .chain(opts.known_certs.iter())
            .cloned()
            .collect();
        VerifyCache {
            chains: trust::ChainCache::new(&fixed),
            certs: Default::default(),
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// Whether it held.
    pub ok: bool,
    /// Why not (or a note).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a digest mismatch: the line-end or white-space change after which the content would have matched
    /// (a mail system altered it in transit), as named in `reason`.
    #[serde(skip)]
    pub would_match_after: Option<&'static str>,
}

impl Check {
    fn pass() -> Check {
        Check {
            ok: true,
            reason: None,
            would_match_after: None,
        }
    }
    fn fail(r: impl Into<String>) -> Check {
        Check {
            ok: false,
            reason: Some(r.into()),
            would_match_after: None,
        }
    }
}

/// Validity of the signer's certificate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Validity {
    /// Valid at the validation time.
    pub ok: bool,
    /// The validation time (now or `--at`), RFC 3339.
    pub at: String,
    /// Valid at the claimed signing time (informational: signingTime is only a claim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_signing_time: Option<bool>,
    /// Certificate validity window.
    pub not_before: String,
    /// Certificate validity window.
    pub not_after: String,
}

/// The From check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AddressMatch {
    /// The From address is among the certificate's addresses (or there is no From to check).
    pub ok: bool,
    /// The From address compared (addr-spec only, never the display name).
    pub from: Option<String>,
    /// The certificate's addresses.
    pub cert_emails: Vec<String>,
    /// A note, e.g. "no From header to check".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Everything about one signer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignerReport {
    /// Position of the SignerInfo (1-based).
    pub index: usize,
    /// How the SignerInfo names its certificate.
    pub sid: String,
    /// Subject of the signer's certificate (if found).
    pub subject: Option<String>,
    /// The certificate's e-mail addresses.
    pub emails: Vec<String>,
    /// SHA-256 fingerprint of the signer's certificate.
    pub fingerprint: Option<String>,
    /// Issuer of the signer's certificate.
    pub issuer: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// The claimed signing time, RFC 3339.
    pub signing_time: Option<String>,
    /// Digest algorithm.
    pub digest_algorithm: String,
    /// Signature algorithm.
    pub signature_algorithm: String,
    /// Digest and signature.
    pub integrity: Check,
    /// Path to a trust anchor.
    pub trust: ChainReport,
    /// Certificate validity.
    pub validity: Validity,
    /// keyUsage / extendedKeyUsage allow e-mail signing.
    pub purpose: Check,
    /// From address among the certificate's addresses.
    pub address_match: AddressMatch,
    /// Weak algorithms (accepted with a warning).
    pub weak: Vec<String>,
    /// Every check held.
    pub valid: bool,
    /// Why not, one line per failed check.
    pub reasons: Vec<String>,
    /// SMIMECapabilities the signer advertised, `name (OID)`.
    pub capabilities: Vec<String>,
    /// The same capabilities as dotted OIDs (what the contacts record).
    #[serde(skip)]
    pub capability_oids: Vec<String>,
    /// The certificate the signer prefers to receive encrypted mail at (SMIMEEncryptionKeyPreference).
    pub encryption_key_preference: Option<String>,
    /// True if the signing time is in the future (capabilities must then not be recorded).
    pub signing_time_in_future: bool,
    /// Revocation status of each certificate of the chain, leaf first.
    pub revocation: Vec<crate::revocation::CertRevocation>,
    #[serde(skip)]
    pub(crate) revocation_warnings: Vec<String>,
    #[serde(skip)]
    pub(crate) cert: Option<X509>,
    #[serde(skip)]
    pub(crate) signing_time_unix: Option<i64>,
    #[serde(skip)]
    pub(crate) preference: Option<SignerId>,
}

impl SignerReport {
    /// The signer's certificate, if it was found.
    pub fn certificate(&self) -> Option<&X509Ref> {
        self.cert.as_deref()
    }
    /// The claimed signing time, unix seconds.
    pub fn signing_time_unix(&self) -> Option<i64> {
        self.signing_time_unix
    }
}

/// The verdict on a signed message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// `valid` when every signer is valid; `unbound` when the signatures hold but no From or Sender binds the
    /// message to a sender; `invalid` otherwise.
    pub status: &'static str,
    /// What failed first, most serious first: `valid`, `content_changed` (digest or signature: the content was
    /// changed or the signature forged), `ambiguous_from`, `not_for_signing` (purpose, CA:TRUE, too-short
    /// key), `expired` (or not yet valid at the validation time), `not_trusted` (content intact, no path to a
    /// trust anchor), `address_mismatch` (a valid signature by someone else), `no_sender`.
    pub verdict: &'static str,
    /// The headline for that verdict, one line.
    pub headline: String,
    /// What to do about it (e.g. `trust add`, `--ca`, `--at`), if anything helps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    /// Revocation (CRL/OCSP): `checked` (every status known), `unknown` (some status could not be established;
    /// each signer's `revocation` says why) or `not checked` (`--revocation off`, or an untrusted chain).
    pub revocation: &'static str,
    /// `multipart/signed`, `opaque`, or `detached` (a bare detached signature over a payload: git).
    pub form: &'static str,
    /// The From address (addr-spec).
    pub from: Option<String>,
    /// The Sender address, when it differs from From.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// The Message-ID, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// One report per SignerInfo.
    pub signers: Vec<SignerReport>,
    /// Warnings about the message as a whole.
    pub warnings: Vec<String>,
}

impl VerifyReport {
    /// True when every signer verified.
    pub fn is_valid(&self) -> bool {
        self.status == "valid"
    }
}

/// A verified (or not) message: the report, and the signed content as a message (outer headers + the signed
/// entity) — only to be shown as verified when [`VerifyReport::is_valid`].
pub struct Verified<'a> {
    /// The report.
    pub report: VerifyReport,
    /// Certificates carried by the message (candidate intermediates for harvest).
    pub message_certs: Vec<X509>,
    raw: &'a [u8],
    content: std::borrow::Cow<'a, [u8]>,
    content_check: Option<(openssl::hash::MessageDigest, Vec<u8>)>,
}

impl Verified<'_> {
    /// The signed entity, as verified (canonical CRLF form).
    pub fn content(&self) -> &[u8] {
        &self.content
    }
    /// Writes the signed content as a message: the outer header fields, then the signed entity. Nothing is
    /// copied, so this works for messages of any size.
    ///
    /// The entity is hashed again as it is written and must match the digest that was verified: a file changed
    /// by another process between verification and output gives an error (discard what was written).
    pub fn write_message(&self, out: &mut dyn std::io::Write) -> Result<()> {
        let parts = mime::split_message_parts(self.raw)?;
        out.write_all(&parts.outer).map_err(Error::output)?;
        out.write_all(b"MIME-Version: 1.0\r\n")
            .map_err(Error::output)?;
        let mut h = match &self.content_check {
            Some((md, _)) => Some(Hasher::new(*md)?),
            None => None,
        };
        for chunk in self.content.chunks(1 << 20) {
            if let Some(h) = h.as_mut() {
                h.update(chunk)?;
            }
            out.write_all(chunk).map_err(Error::output)?;
        }
        if let (Some(mut h), Some((_, want))) = (h, &self.content_check)
            && h.finish()?.as_ref() != want.as_slice()
        {
            return Err(Error::bad_input(
                "the input changed while it was being verified; nothing was written",
            )
            .hint("verify the message again once nothing else is writing to the file"));
        }
        Ok(())
    }
    /// [`Verified::write_message`] into a new buffer.
    pub fn message(&self) -> Result<Vec<u8>> {
        let mut v = Vec::with_capacity(self.content.len() + 1024);
        self.write_message(&mut v)?;
        Ok(v)
    }
}

/// Is this message signed at the top level (multipart/signed or opaque signed-data)? Cheap check for callers
/// such as decrypt, which verifies the inner entity only when it is signed.
pub fn is_signed(raw: &[u8]) -> bool {
    let Ok(top) = top_level(raw) else {
        return false;
    };
    match &top.layer {
        Layer::MultipartSigned { .. } => true,
        Layer::Pkcs7Mime { .. } => pkcs7_der(&top.fields, top.body)
            .ok()
            .and_then(|d| content_type_of(&d).ok())
            .is_some_and(|t| t == CmsType::SignedData),
        Layer::Other => false,
    }
}

/// Verifies a signed RFC 5322 message.
///
/// Errors (exit 2): not a signed message at the top level, malformed, no signers, a signer's certificate
/// missing. A signed message whose checks fail is a report with status `invalid` (exit 1).
pub fn verify<'a>(raw: &'a [u8], opts: &VerifyOptions) -> Result<Verified<'a>> {
    let top = top_level(raw)?;
    // A large multipart/signed message: its digest starts on a second thread at once, over where the signed
    // part most likely is, with the algorithm `micalg` announces, while this thread splits the message strictly
    // and checks the signature part. The result is used only if the strict split found exactly those bytes
    // and the signer uses that algorithm; otherwise it is thrown away.
    let guess = match &top.layer {
        Layer::MultipartSigned {
            boundary, micalg, ..
        } if top.body.len() >= super::PARALLEL_DIGEST_MIN => guess_signed_part(top.body, boundary)
            .and_then(|part| Some((part, micalg_digest(micalg.as_deref())?))),
        _ => None,
    };
    let progress = super::Progress::default();
    std::thread::scope(|s| {
        let running = guess.map(|(part, (oid, md))| {
            let progress = &progress;
            let thread = s.spawn(move || hash_unless(md, part, progress));
            (part, oid, thread, progress)
        });
        let r = verify_top(raw, &top, opts, running);
        progress.cancel();
        r
    })
}

/// A digest running on another thread: the bytes it covers, the algorithm's OID, the thread, and its progress.
type Running<'scope, 'a> = (
    &'a [u8],
    &'static str,
    std::thread::ScopedJoinHandle<'scope, Result<Option<Vec<u8>>>>,
    &'scope super::Progress,
);

/// Where the first part of a multipart/signed body most likely is: after the first delimiter line, up to the
/// CRLF before the delimiter that precedes the closing one. A guess only (found from both ends, without the
/// strict splitter's checks): it is used only if the strict split agrees.
fn guess_signed_part<'a>(body: &'a [u8], boundary: &str) -> Option<&'a [u8]> {
    use memchr::memmem;
    // Only the ends are searched (a preamble and a signature part are small): no guess costs a whole pass.
    const REACH: usize = 1 << 20;
    let delim = format!("\n--{boundary}");
    let first = if body.starts_with(&delim.as_bytes()[1..]) {
        0
    } else {
        memmem::find(&body[..body.len().min(REACH)], delim.as_bytes())? + 1
    };
    let start = first + memchr::memchr(b'\n', &body[first..body.len().min(first + REACH)])? + 1;
    let tail = body.len().saturating_sub(REACH);
    let close = tail + memmem::rfind(&body[tail..], format!("{delim}--").as_bytes())?;
    let before_sig = tail + memmem::rfind(&body[tail..close], delim.as_bytes())?;
    let end = before_sig.checked_sub(1).filter(|&e| body[e] == b'\r')?;
    (start <= end).then(|| &body[start..end])
}

/// The digest `micalg` names (SHA-256 when absent), with its OID.
fn micalg_digest(micalg: Option<&str>) -> Option<(&'static str, openssl::hash::MessageDigest)> {
    use openssl::hash::MessageDigest;
    Some(match micalg.map(str::to_ascii_lowercase).as_deref() {
        None | Some("sha-256" | "sha256") => ("2.16.840.1.101.3.4.2.1", MessageDigest::sha256()),
        Some("sha-384" | "sha384") => ("2.16.840.1.101.3.4.2.2", MessageDigest::sha384()),
        Some("sha-512" | "sha512") => ("2.16.840.1.101.3.4.2.3", MessageDigest::sha512()),
        _ => return None,
    })
}

/// [`hash`], counting in `progress`, stopping early (`None`) once it is cancelled.
fn hash_unless(
    md: openssl::hash::MessageDigest,
    data: &[u8],
    progress: &super::Progress,
) -> Result<Option<Vec<u8>>> {
    let _ended = progress.running();
    let mut h = Hasher::new(md)?;
    for chunk in data.chunks(1 << 20) {
        if progress.cancelled() {
            return Ok(None);
        }
        h.update(chunk)?;
        progress.add(chunk.len());
        // Both cores are busy: the trimmer thread may not get one in time.
        crate::input::trim_due();
    }
    Ok(Some(h.finish()?.to_vec()))
}

fn verify_top<'a>(
    raw: &'a [u8],
    top: &super::TopLevel<'a>,
    opts: &VerifyOptions,
    running: Option<Running<'_, 'a>>,
) -> Result<Verified<'a>> {
    // An address field that mail clients could read differently (an unquoted '@' in a display or group
    // name) binds nothing: the message fails as a whole, with that reason (exit 1).
    let ambiguous = mime::ambiguous_address(&top.fields, "From")
        .or_else(|| mime::ambiguous_address(&top.fields, "Sender"));
    let (from, sender) = if ambiguous.is_some() {
        (None, None)
    } else {
        (mime::from(&top.fields)?, mime::sender(&top.fields)?)
    };
    let message_id = mime::field_value(&top.fields, "message-id");
    let mut warnings = Vec::new();
    let mut micalg_param: Option<Option<String>> = None;
    let (form, sd, content): (&'static str, SignedData, std::borrow::Cow<'_, [u8]>) = match &top
        .layer
    {
        Layer::MultipartSigned {
            boundary,
            protocol,
            micalg,
        } => {
            micalg_param = Some(micalg.clone());
            let mp = mime::split_multipart(top.body, boundary.as_bytes())?;
            if mp.parts.len() != 2 {
                return Err(Error::bad_input(format!(
                    "the multipart/signed message has {} parts instead of 2 (signed content and signature)",
                    mp.parts.len()
                ))
                .hint("the message is damaged or was altered in transit"));
            }
            if !mp.terminated {
                warnings.push("the multipart/signed has no closing boundary (truncated?)".into());
            }
            if let Some(p) = protocol
                && p != "application/pkcs7-signature"
                && p != "application/x-pkcs7-signature"
            {
                return Err(Error::unsupported(format!(
                    "multipart/signed with protocol \"{p}\" is not S/MIME"
                ))
                .hint("this may be a PGP/MIME message; use gpg to verify it"));
            }
            let sig_ent = mime::split_entity(mp.parts[1])?;
            let sig_fields = mime::parse_headers(sig_ent.header)?;
            let der = pkcs7_der(&sig_fields, sig_ent.body)?;
            let sd = parse_signed(&der, opts.cache.as_deref())?;
            if !sd.is_detached() {
                // T10: eContent confusion. Neither text is ever presented as verified.
                return Err(Error::bad_input(
                    "the signature part carries content of its own (content present in a detached signature): \
                     the message is forged or broken",
                )
                .hint("do not trust this message; ask the sender to send it again"));
            }
            // Signatures cover the canonical (CRLF) form; mail stores often keep LF.
            ("multipart/signed", sd, mime::to_crlf(mp.parts[0]))
        }
        Layer::Pkcs7Mime { .. } => {
            let der = pkcs7_der(&top.fields, top.body)?;
            match content_type_of(&der)? {
                CmsType::SignedData => {}
                CmsType::EnvelopedData | CmsType::AuthEnvelopedData => {
                    return Err(Error::bad_input("the message is encrypted, not (only) signed")
                        .hint("decrypt it with 'smimekit decrypt', which also verifies a signature inside"));
                }
                other => {
                    return Err(super::unsupported_cms(other, "signed data"));
                }
            }
            let sd = parse_signed(&der, opts.cache.as_deref())?;
            let Some(c) = sd.econtent() else {
                return Err(Error::bad_input("the opaque signed message carries no content (a detached signature sent alone)")
                    .hint("the signed text is missing; ask the sender for the complete message"));
            };
            ("opaque", sd, std::borrow::Cow::Owned(c))
        }
        Layer::Other => {
            let nested = super::nested_smime_parts(top);
            let mut e = Error::bad_input(
                "the message is not signed (no S/MIME signature at the top level)",
            )
            .hint("nothing here can be verified; treat the message as unsigned ('smimekit inspect' shows its layers)");
            if let Some((n, kind)) = nested.first() {
                e = Error::bad_input(format!(
                    "the message is not signed as a whole: part {n} is {} {kind} part whose signature covers only itself",
                    if kind.starts_with(['a', 'e', 'i', 'o', 'u', 'S']) { "an" } else { "a" }
                ))
                .hint("text outside that part is not covered by any signature; treat the message as unsigned");
            }
            return Err(e);
        }
    };
    let signers = checked_signers(
        &sd,
        "message",
        Error::bad_input("the message has no signers: its signature part only carries certificates")
            .hint("it is not a signed message; to add the certificates as contacts use 'smimekit contact add'"),
    )?;
    // T05: micalg is advisory (the SignerInfo's digest algorithm decides), but a mismatch is worth a warning.
    if let Some(m) = micalg_param
        && let Some(w) = micalg_warning(m.as_deref(), &signers)
    {
        warnings.push(w);
    }
    let message_certs: Vec<X509> = sd.certificates().into_iter().take(MAX_UNTRUSTED).collect();
    // CRLs the message carries (RFC 5652 §5.1) join the revocation sources; OpenSSL checks their signatures.
    let carried = sd.crls(crate::limits::MAX_MESSAGE_CRLS);
    let with_crls;
    let opts = if carried.is_empty() || opts.revocation.policy == crate::revocation::Policy::Off {
        opts
    } else {
        let mut o = opts.clone();
        o.revocation.extra_crls.extend(carried);
        with_crls = o;
        &with_crls
    };
    let mut candidates: Vec<X509> = message_certs.clone();
    candidates.extend(opts.known_certs.iter().take(MAX_UNTRUSTED).cloned());
    candidates.extend(opts.anchors.iter().cloned());
    let now = cert::now();
    let at = opts.at.unwrap_or(now);
    let mut digests: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some((part, oid, thread, progress)) = running {
        // Same memory, so the same bytes: the guess covered exactly the signed content.
        let same = matches!(&content, std::borrow::Cow::Borrowed(c)
            if c.as_ptr() == part.as_ptr() && c.len() == part.len());
        if same && signers.iter().any(|s| s.digest_oid == oid) {
            super::release_behind(&thread, progress, 0, part);
            if let Some(d) = thread
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))?
            {
                digests.push((oid.to_string(), d));
            }
        } else {
            progress.cancel();
        }
    }
    let mut reports = Vec::new();
    for (idx, s) in signers.iter().enumerate() {
        let r = check_signer(
            &sd,
            idx,
            s,
            &content,
            &candidates,
            opts,
            at,
            now,
            // RFC 8550 §3: From must match; a message without From is bound by its Sender.
            if opts.no_address_check || ambiguous.is_some() {
                AddressTo::NotChecked
            } else {
                match from.as_ref().or(sender.as_ref()) {
                    Some(m) => AddressTo::Check(m.addr.as_str()),
                    None => AddressTo::Missing,
                }
            },
            &mut digests,
            SignerUse::Email,
        )?;
        warnings.extend(r.revocation_warnings.iter().cloned());
        reports.push(r);
    }
    if let (Some(f), Some(s)) = (&from, &sender)
        && !crate::address::same(&f.addr, &s.addr)
    {
        warnings.push(format!("sent by {} on behalf of {}", s.addr, f.addr));
    }
    if let Some(a) = &ambiguous {
        warnings.push(a.clone());
    } else if from.is_none() && !opts.no_address_check {
        warnings.push(match &sender {
            Some(s) => format!(
                "the message has no From header; its Sender ({}) was checked instead",
                s.addr
            ),
            None => "the message has no From or Sender header: nothing binds it to a sender".into(),
        });
    }
    // What was hashed is what `write_message` must write: the input is a file mapping another process could
    // change between the two reads.
    let content_check = signers.first().and_then(|s0| {
        let md = sd.signer_digest(0).ok()?;
        digests
            .iter()
            .find(|(k, _)| *k == s0.digest_oid)
            .map(|(_, d)| (md, d.clone()))
    });
    for f in from.iter().chain(sender.iter()) {
        if let Some(w) = crate::display::homograph_warning(&f.addr) {
            warnings.push(format!("From/Sender: {w}"));
        }
    }
    let (verdict, headline, remedy) = verdict_of(&reports, ambiguous.as_deref(), at);
    let status = match verdict {
        "valid" => "valid",
        "no_sender" => "unbound",
        _ => "invalid",
    };
    let report = VerifyReport {
        status,
        verdict,
        headline,
        remedy,
        revocation: revocation_summary(opts, &reports),
        form,
        from: from.map(|m| m.addr),
        sender: sender.map(|m| m.addr),
        message_id,
        signers: reports,
        warnings,
    };
    Ok(Verified {
        report,
        message_certs,
        raw,
        content,
        content_check,
    })
}

/// What the signer's certificate must be good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerUse {
    /// Signing e-mail: keyUsage digitalSignature/nonRepudiation, EKU emailProtection when present.
    Email,
    /// Signing e-mail or code (git): EKU emailProtection or codeSigning when present.
    EmailOrCode,
}

/// Verifies a detached CMS signature (`sig_der`, DER or BER SignedData without content) over `content`, the
/// exact bytes signed (no canonicalisation: a git commit or tag is signed as it is stored). The checks are the
/// message ones (integrity, trust, validity, purpose) per signer; there is no From address to match.
///
/// Errors (not a report): not a SignedData, content embedded, no signers, too many signers, a signer's
/// certificate missing.
pub fn verify_detached(
    sig_der: &[u8],
    content: &[u8],
    opts: &VerifyOptions,
    usage: SignerUse,
) -> Result<VerifyReport> {
    let sd = parse_standalone(sig_der)?;
    if !sd.is_detached() {
        return Err(Error::bad_input(
            "the signature carries content of its own, not a detached signature",
        )
        .hint("only detached signatures are checked against a separate payload"));
    }
    check_standalone(&sd, content, opts, usage, "detached")
}

/// Verifies opaque signed-data (`der`, a SignedData with its content inside) outside a message, and returns
/// the report and the signed content (the exact eContent bytes).
pub fn verify_opaque_der(
    der: &[u8],
    opts: &VerifyOptions,
    usage: SignerUse,
) -> Result<(VerifyReport, Vec<u8>)> {
    let sd = parse_standalone(der)?;
    let Some(content) = sd.econtent() else {
        return Err(
            Error::bad_input("the signed data carries no content (a detached signature)")
                .hint("the signed text is missing; ask the sender for the complete message"),
        );
    };
    let report = check_standalone(&sd, &content, opts, usage, "opaque")?;
    Ok((report, content))
}

/// The certificates `home` knows, as candidates for signers and intermediates (never trusted by themselves):
/// contacts' intermediates and your IDs with their chains first — chain building sees a bounded number of
/// candidates, and contacts are the most numerous (they matter only as signer certificates a message does not
/// carry).
pub fn known_certs(home: &crate::home::Home) -> Result<Vec<X509>> {
    let mut known = Vec::new();
    let contacts = crate::contacts::ContactStore::new(home);
    known.extend(contacts.intermediates()?);
    for i in crate::ids::IdStore::new(home).list()? {
        known.push(i.cert.clone());
        known.extend(i.chain.iter().cloned());
    }
    known.extend(contacts.list()?.into_iter().map(|c| c.cert));
    Ok(known)
}

/// The verification options for `home`: its trust anchors and the system's, now, with your IDs, contacts
/// and their intermediates as candidate certificates.
pub fn home_options(home: &crate::home::Home) -> Result<VerifyOptions> {
    Ok(VerifyOptions {
        anchors: crate::trust::TrustStore::new(home).certs()?,
        system_trust: true,
        at: None,
        known_certs: known_certs(home)?,
        no_address_check: false,
        // The cache and the CRLs a message carries; nothing from the network.
        revocation: crate::revocation::Settings {
            home: Some(home.root().to_path_buf()),
            ..Default::default()
        },
        cache: None,
    })
}

fn parse_standalone(der: &[u8]) -> Result<SignedData> {
    match content_type_of(der)? {
        CmsType::SignedData => {}
        other => return Err(super::unsupported_cms(other, "signed data")),
    }
    parse_signed(der, None)
}

/// The SignerInfos of `sd`, refused when the SignedData cannot be verified: none (`no_signers`: it only carries
/// certificates), more than [`MAX_SIGNERS`], or a signer whose digest algorithm is not announced in
/// digestAlgorithms. `what` ("message", "signature") names the object in the errors.
fn checked_signers(sd: &SignedData, what: &str, no_signers: Error) -> Result<Vec<SignerSummary>> {
    let signers = sd.signers();
    if signers.is_empty() {
        return Err(no_signers);
    }
    if signers.len() > MAX_SIGNERS {
        return Err(Error::limit(format!(
            "the {what} has {} signers (at most {MAX_SIGNERS} are checked)",
            signers.len()
        ))
        .hint(format!(
            "smimekit does not verify a {what} with that many signers; treat this one as unverified"
        )));
    }
    // T37: every signer's digest algorithm must be announced in digestAlgorithms (RFC 5652 §5.1); an empty or
    // inconsistent set is a malformed SignedData (it crashes OpenSSL's PKCS7 API: F10).
    for (i, s) in signers.iter().enumerate() {
        if !sd.digest_algorithms().contains(&s.digest_oid) {
            return Err(Error::bad_input(format!(
                "malformed signature: signer {}'s digest algorithm ({}) is not listed in the SignedData's digestAlgorithms ({})",
                i + 1,
                s.digest,
                if sd.digest_algorithms().is_empty() {
                    "empty".to_string()
                } else {
                    sd.digest_algorithms().join(", ")
                }
            ))
            .hint(format!(
                "the signature is damaged or was forged; treat the {what} as unsigned"
            )));
        }
    }
    Ok(signers)
}

/// The signer checks of a SignedData outside a message (no From address to match).
fn check_standalone(
    sd: &SignedData,
    content: &[u8],
    opts: &VerifyOptions,
    usage: SignerUse,
    form: &'static str,
) -> Result<VerifyReport> {
    let signers = checked_signers(
        sd,
        "signature",
        Error::bad_input("the signature has no signers")
            .hint("it only carries certificates; there is nothing to verify"),
    )?;
    let mut candidates: Vec<X509> = sd.certificates().into_iter().take(MAX_UNTRUSTED).collect();
    candidates.extend(opts.known_certs.iter().take(MAX_UNTRUSTED).cloned());
    candidates.extend(opts.anchors.iter().cloned());
    let now = cert::now();
    let at = opts.at.unwrap_or(now);
    let mut digests = Vec::new();
    let mut reports = Vec::new();
    for (idx, s) in signers.iter().enumerate() {
        reports.push(check_signer(
            sd,
            idx,
            s,
            content,
            &candidates,
            opts,
            at,
            now,
            // A payload outside a message (a git commit) has no From to match.
            AddressTo::NotChecked,
            &mut digests,
            usage,
        )?);
    }
    let status = if reports.iter().all(|r| r.valid) {
        "valid"
    } else {
        "invalid"
    };
    let (verdict, headline, remedy) = verdict_of(&reports, None, at);
    Ok(VerifyReport {
        status,
        verdict,
        headline,
        remedy,
        revocation: revocation_summary(opts, &reports),
        form,
        from: None,
        sender: None,
        message_id: None,
        signers: reports,
        warnings: Vec::new(),
    })
}

fn parse_signed(der: &[u8], cache: Option<&VerifyCache>) -> Result<SignedData> {
    match cache {
        Some(c) => SignedData::from_der_cached(der, &c.certs),
        None => SignedData::from_der(der),
    }
    .map_err(|e| {
        Error::new(
            e.kind(),
            format!("cannot read the signature: {}", e.message()),
        )
        .hint("the signature part is damaged or not CMS")
    })
}

pub(crate) fn sid_matches(sid: &SignerId, c: &X509Ref) -> bool {
    match sid {
        SignerId::IssuerSerial {
            issuer_der,
            serial_hex,
            ..
        } => cert::matches_issuer_serial(c, issuer_der, serial_hex),
        SignerId::KeyId(k) => cert::matches_key_id(c, k),
    }
}

#[allow(clippy::too_many_arguments)]
fn check_signer(
    sd: &SignedData,
    idx: usize,
    s: &SignerSummary,
    content: &[u8],
    candidates: &[X509],
    opts: &VerifyOptions,
    at: i64,
    now: i64,
    from: AddressTo<'_>,
    digests: &mut Vec<(String, Vec<u8>)>,
    usage: SignerUse,
) -> Result<SignerReport> {
    let mut reasons = Vec::new();
    let mut weak = Vec::new();
    // RFC 8551 §2.6: try every certificate that matches the identifier, not just the first (T17).
    let mut matching = Vec::new();
    let mut seen = Vec::new();
    for c in candidates.iter().filter(|c| sid_matches(&s.sid, c)) {
        let fp = cert::fingerprint(c);
        if !seen.contains(&fp) {
            seen.push(fp);
            matching.push(c.clone());
        }
    }
    // RFC 5035: the ESS signingCertificate(V2) names the signer's certificate; try that one first, so a second
    // certificate on the same key never takes its place.
    if let Some(id) = s.ess_cert_ids.first() {
        matching.sort_by_key(|c| id.matches(c) != Some(true));
    }
    if matching.is_empty() {
        return Err(Error::not_found(format!(
            "signer {} cannot be checked: its certificate ({}) is neither in the message nor among your contacts",
            idx + 1,
            s.sid
        ))
        .hint("ask the sender for their certificate and add it with 'smimekit contact add', then verify again"));
    }
    // A signer that breaks the profile (no signed attributes, T14; attribute rules, T15; MD5, T18) is a signed
    // message whose verdict fails (exit 1), not an error: its signature is never checked and it is never valid.
    let violations = sd.profile_violations(idx);
    let mut signer_cert: Option<X509> = None;
    let mut sig_ok = false;
    let mut sig_error: Option<String> = None;
    if violations.is_empty() {
        for c in &matching {
            // A malformed attribute or an oversized key makes OpenSSL refuse the check: a failed signature for
            // this signer (exit 1, with the reason), not an error about the whole message.
            match sd.verify_signer(idx, c) {
                Ok(true) => {
                    signer_cert = Some(c.clone());
                    sig_ok = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => sig_error = Some(e.to_string()),
            }
        }
    }
    // Report the first matching certificate if none verifies, so the user sees who claims to have signed.
    let cert = signer_cert.clone().unwrap_or_else(|| matching[0].clone());
    // The signature verifies with a certificate the ESS attribute does not name: the signer identifier and
    // certificates were swapped to another certificate on the same key (RFC 5035 §5.4).
    let ess_problem = match (sig_ok, s.ess_cert_ids.first()) {
        (true, Some(id)) => match id.matches(&cert) {
            Some(true) => None,
            Some(false) => Some(
                "the signature's ESS signingCertificate attribute names another certificate than the signer's: \
                 the signer's certificate was swapped for one on the same key (RFC 5035)"
                    .to_string(),
            ),
            None => Some(format!(
                "the signature's ESS signingCertificate attribute uses a hash algorithm ({}) that cannot be checked",
                id.hash_oid
            )),
        },
        _ => None,
    };
    let integrity = if !violations.is_empty() {
        Check::fail(format!(
            "the signature breaks the S/MIME rules: {}",
            violations.join("; ")
        ))
    } else {
        // Digest over the content, computed once per algorithm.
        let md = sd.signer_digest(idx)?;
        let key = s.digest_oid.clone();
        let computed = match digests.iter().find(|(k, _)| *k == key) {
            Some((_, d)) => d.clone(),
            None => {
                let d = hash(md, content)?;
                digests.push((key, d.clone()));
                d
            }
        };
        match ess_problem {
            Some(p) => Check::fail(p),
            None => integrity_check(md, s, content, &computed, sig_ok, sig_error.as_deref())?,
        }
    };
    if let Some(r) = &integrity.reason {
        reasons.push(r.clone());
    }
    let info = CertInfo::new(&cert, at);
    // Trust: a path from the signer to an anchor, with the message's certificates and known certificates as
    // candidate intermediates (never as anchors).
    let untrusted: Vec<X509> = candidates.iter().take(MAX_UNTRUSTED).cloned().collect();
    let chain_opts = ChainOptions {
        anchors: &opts.anchors,
        system: opts.system_trust,
        at,
        purpose: match usage {
            SignerUse::Email => Purpose::Sign,
            SignerUse::EmailOrCode => Purpose::SignCode,
        },
    };
    let chain = match &opts.cache {
        Some(cache) => cache.chains.verify_chain(&cert, &untrusted, &chain_opts)?,
        None => trust::verify_chain(&cert, &untrusted, &chain_opts)?,
    };
    let nb = cert::unix_time(cert.not_before());
    let na = cert::unix_time(cert.not_after());
    let validity = Validity {
        ok: nb <= at && at <= na,
        at: cert::rfc3339(at),
        at_signing_time: s.signing_time.map(|t| nb <= t && t <= na),
        not_before: info.not_before.clone(),
        not_after: info.not_after.clone(),
    };
    if !validity.ok {
        reasons.push(if at > na {
            format!(
                "the signer's certificate expired on {} (checked at {})",
                validity.not_after, validity.at
            )
        } else {
            format!(
                "the signer's certificate is not valid before {} (checked at {})",
                validity.not_before, validity.at
            )
        });
    }
    if !chain.trusted {
        let e = chain.error.clone().unwrap_or_default();
        if !(!validity.ok
            && (e.contains("expired") || e.contains("not yet valid"))
            && chain.error_depth == Some(0))
        {
            reasons.push(format!(
                "not trusted: {e} (at depth {})",
                chain.error_depth.unwrap_or(0)
            ));
        }
    }
    // A signer certificate with CA:TRUE issued by a CA is never a valid e-mail signer: a CA key does not sign
    // mail, and a certificate that can issue others must not stand for a person (verdict: invalid, exit 1).
    // A self-signed one is only weak: `openssl req -x509` marks every self-signed certificate CA:TRUE, and it
    // is trusted only as itself.
    let self_signed = cert.issued(&cert) == openssl::x509::X509VerifyResult::OK
        && cert
            .public_key()
            .and_then(|k| cert.verify(&k))
            .unwrap_or(false);
    let _ = openssl::error::ErrorStack::get();
    if cert::is_ca(&cert) && self_signed {
        weak.push(
            "a self-signed certificate marked CA:TRUE (it can be trusted only as itself)".into(),
        );
    }
    let purpose = if cert::is_ca(&cert) && !self_signed {
        Check::fail(
            "the signer's certificate is a CA certificate (basicConstraints CA:TRUE): a CA key does not sign e-mail",
        )
    } else if cert::can_sign(&cert)
        || (usage == SignerUse::EmailOrCode && cert::can_sign_code(&cert))
    {
        Check::pass()
    } else {
        let mut why = Vec::new();
        if let Some(ku) = cert.key_usage() {
            use openssl::x509::X509KeyUsage as K;
            if !ku.intersects(K::DIGITAL_SIGNATURE | K::NON_REPUDIATION) {
                why.push("its keyUsage does not allow digital signatures");
            }
        }
        if !cert::eku_allows_email(&cert) {
            why.push(match usage {
                SignerUse::Email => "its extendedKeyUsage does not include emailProtection",
                SignerUse::EmailOrCode => {
                    "its extendedKeyUsage includes neither emailProtection nor codeSigning"
                }
            });
        }
        if why.is_empty() {
            why.push("it is a CA certificate");
        }
        Check::fail(format!(
            "the certificate is not for signing {}: {}",
            match usage {
                SignerUse::Email => "e-mail",
                SignerUse::EmailOrCode => "e-mail or code",
            },
            why.join(" and ")
        ))
    };
    if let Some(r) = &purpose.reason {
        reasons.push(r.clone());
    }
    let address_match = match from {
        AddressTo::Missing => AddressMatch {
            ok: false,
            from: None,
            cert_emails: info.emails.clone(),
            note: Some("no From or Sender header: nothing binds the message to a sender; the signer is named above".into()),
        },
        AddressTo::NotChecked => AddressMatch {
            ok: true,
            from: None,
            cert_emails: info.emails.clone(),
            note: Some("not checked".into()),
        },
        AddressTo::Check(f) => {
            let ok = crate::address::contains(&info.emails, f);
            if !ok {
                reasons.push(format!(
                    "the From address {f} is not in the signer's certificate ({}): valid signature by someone else",
                    if info.emails.is_empty() { "no addresses".to_string() } else { info.emails.join(", ") }
                ));
            }
            AddressMatch {
                ok,
                from: Some(f.to_string()),
                cert_emails: info.emails.clone(),
                note: None,
            }
        }
    };
    if s.digest_oid == "1.3.14.3.2.26" {
        weak.push("SHA-1 digest".into());
    }
    weak.extend(info.weaknesses.iter().cloned());
    weak.extend(
        info.emails
            .iter()
            .filter_map(|e| crate::display::homograph_warning(e)),
    );
    // Below 1024 bits an RSA signature proves nothing (512-bit keys are factored cheaply): a failed verdict,
    // not just a warning (RFC 8551 §6).
    if info.key.starts_with("RSA") && info.key_bits < 1024 {
        reasons.push(format!(
            "the signer's RSA key has only {} bits: far too short for a signature to prove anything (at least 1024; 2048 recommended)",
            info.key_bits
        ));
    }
    let signing_time_in_future = s
        .signing_time
        .is_some_and(|t| t > now + SIGNING_TIME_SKEW_SECS);
    if signing_time_in_future {
        weak.push(
            "the signing time is in the future (only a claim; capabilities are not recorded)"
                .into(),
        );
    }
    let (revocation, revocation_warnings, revoked) = crate::revocation::check_signature_chain(
        &opts.revocation,
        &cert,
        &chain.certs,
        chain.trusted,
        s.signing_time,
        at,
    );
    reasons.extend(revoked);
    let valid = reasons.is_empty();
    Ok(SignerReport {
        index: idx + 1,
        sid: s.sid.to_string(),
        subject: Some(info.subject.clone()),
        emails: info.emails.clone(),
        fingerprint: Some(info.fingerprint.clone()),
        issuer: Some(info.issuer.clone()),
        serial: Some(info.serial.clone()),
        signing_time: s.signing_time.map(cert::rfc3339),
        digest_algorithm: s.digest.clone(),
        signature_algorithm: s.signature_alg.clone(),
        integrity,
        trust: chain,
        validity,
        purpose,
        address_match,
        weak,
        valid,
        reasons,
        capabilities: s.capabilities.iter().map(|o| oid_name(o)).collect(),
        capability_oids: s.capabilities.clone(),
        encryption_key_preference: s.encryption_key_preference.as_ref().map(|p| p.to_string()),
        signing_time_in_future,
        revocation,
        revocation_warnings,
        cert: Some(cert),
        signing_time_unix: s.signing_time,
        preference: s.encryption_key_preference.clone(),
    })
}

/// What a signer's certificate addresses are compared with.
#[derive(Clone, Copy)]
enum AddressTo<'a> {
    /// The From (or else Sender) address.
    Check(&'a str),
    /// The message has neither: nothing binds it to a sender.
    Missing,
    /// `--no-address-check`, or an ambiguous From (which fails the message as a whole).
    NotChecked,
}

/// The message's verdict: the most serious failure over all signers (see [`VerifyReport::verdict`]), its
/// headline and its remedy.
/// The report's summary of revocation checking: `unknown` when some status could not be established, `checked`
/// when every status that matters is known (good or revoked), else `not checked` (`--revocation off`, or no chain
/// that revocation could apply to, e.g. an untrusted one).
fn revocation_summary(opts: &VerifyOptions, signers: &[SignerReport]) -> &'static str {
    use crate::revocation::Status;
    let all = || signers.iter().flat_map(|s| &s.revocation);
    if opts.revocation.policy == crate::revocation::Policy::Off {
        "not checked"
    } else if all().any(|f| f.status == Status::Unknown) {
        "unknown"
    } else if all().any(|f| matches!(f.status, Status::Good | Status::Revoked)) {
        "checked"
    } else {
        "not checked"
    }
}

fn verdict_of(
    signers: &[SignerReport],
    ambiguous: Option<&str>,
    at: i64,
) -> (&'static str, String, Option<String>) {
    // Rank of one signer's failure; lower is more serious.
    let rank = |sg: &SignerReport| -> u8 {
        if !sg.integrity.ok {
            0
        } else if !sg.valid
            && sg
                .revocation
                .iter()
                .any(|f| f.status == crate::revocation::Status::Revoked)
        {
            8
        } else if !sg.purpose.ok {
            2
        } else if !sg.validity.ok {
            3
        } else if !sg.trust.trusted {
            4
        } else if sg.address_match.from.is_some() && !sg.address_match.ok {
            5
        } else if !sg.valid
            && sg
                .revocation
                .iter()
                .any(|f| f.status == crate::revocation::Status::Unknown)
        {
            9
        } else if !sg.valid {
            2
        } else if !sg.address_match.ok {
            6
        } else {
            7
        }
    };
    // Revoked (8) ranks right after a changed content: a stolen key's signature must say so first.
    let order = |r: u8| match r {
        8 => 1,
        9 => 4,
        r => r,
    };
    let worst = signers.iter().min_by_key(|sg| order(rank(sg)));
    let r = match (ambiguous, worst) {
        (_, Some(w)) if rank(w) == 0 => 0,
        (Some(_), _) => 1,
        (None, Some(w)) => rank(w),
        (None, None) => 7,
    };
    let sg = worst;
    match r {
        0 => (
            "content_changed",
            "INVALID signature: the content was changed after signing, or the signature is forged".into(),
            Some("do not trust this message; if a mail system may have altered it, ask the sender to send it again".into()),
        ),
        1 => (
            "ambiguous_from",
            "INVALID: the From is ambiguous (mail programs may show another sender than the one that could be checked)".into(),
            Some(format!(
                "{}; ask the sender to use a plain From address",
                crate::display::field(ambiguous.unwrap_or_default())
            )),
        ),
        2 => (
            "not_for_signing",
            "INVALID signature: the signer's certificate is not valid for signing e-mail".into(),
            Some("the certificate cannot vouch for a message (see the Reason lines); ask the sender to sign with an S/MIME certificate".into()),
        ),
        3 => {
            let not_yet = sg.is_some_and(|s| s.reasons.iter().any(|r| r.contains("is not valid before")));
            (
                "expired",
                format!(
                    "INVALID at {}: the content is intact, but the signer's certificate {}",
                    cert::rfc3339(at),
                    if not_yet { "is NOT YET VALID" } else { "has EXPIRED" }
                ),
                Some(format!(
                    "to check the signature at the time it was made, add '--at TIME'{}",
                    match sg.and_then(|s| s.signing_time.as_deref()) {
                        Some(t) => format!(" (the claimed signing time is {t}; it is only the signer's claim)"),
                        None => String::new(),
                    }
                )),
            )
        }
        4 => (
            "not_trusted",
            "UNTRUSTED signer: the content is intact, but the signer's certificate does not lead to a trust anchor".into(),
            Some("if you trust the issuing CA (compare its fingerprint with its owner): 'smimekit trust add CA.pem', or '--ca CA.pem' for this check only".into()),
        ),
        5 => (
            "address_mismatch",
            "INVALID for this sender: ADDRESS MISMATCH — a valid signature by someone other than the From address".into(),
            sg.map(|s| {
                format!(
                    "treat the message as sent by {}, not by {}",
                    if s.emails.is_empty() {
                        "the signer named below".to_string()
                    } else {
                        crate::display::addresses(&s.emails)
                    },
                    crate::display::address(s.address_match.from.as_deref().unwrap_or_default())
                )
            }),
        ),
        8 => (
            "revoked",
            "INVALID signature: the signer's certificate (or one of its CAs) has been REVOKED".into(),
            Some("do not trust this message; the Revocation lines say when and why".into()),
        ),
        9 => (
            "revocation_unknown",
            "NOT VERIFIABLE: the content is intact, but whether the signer's certificate was revoked could not be established (--revocation require)".into(),
            Some("fetch revocation data ('smimekit crl update', or '--online'), or check without '--revocation require'".into()),
        ),
        6 => (
            "no_sender",
            "NOT BOUND to a sender: the signature holds, but the message has no From or Sender to check it against".into(),
            Some("the signer named below signed the content; '--no-address-check' accepts a signature that no address binds".into()),
        ),
        _ => ("valid", "VALID signature".into(), None),
    }
}

/// The RFC 8551 §3.5.3.2 micalg name of a digest OID (`sha1` also for SHA-1, as RFC 3851 wrote it).
fn micalg_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "1.3.14.3.2.26" => "sha-1",
        "2.16.840.1.101.3.4.2.4" => "sha-224",
        "2.16.840.1.101.3.4.2.1" => "sha-256",
        "2.16.840.1.101.3.4.2.2" => "sha-384",
        "2.16.840.1.101.3.4.2.3" => "sha-512",
        "1.2.840.113549.2.5" => "md5",
        _ => return None,
    })
}

/// A warning when the multipart/signed `micalg` parameter does not list exactly the signers' digest algorithms.
fn micalg_warning(micalg: Option<&str>, signers: &[SignerSummary]) -> Option<String> {
    let mut expected: Vec<String> = signers
        .iter()
        .map(|s| {
            micalg_name(&s.digest_oid)
                .map(str::to_string)
                .unwrap_or_else(|| s.digest.clone())
        })
        .collect();
    expected.sort();
    expected.dedup();
    let Some(m) = micalg else {
        return Some(format!(
            "the multipart/signed has no micalg parameter (the signature uses {})",
            expected.join(", ")
        ));
    };
    let mut given: Vec<String> = m
        .split(',')
        .map(|t| t.trim().trim_matches('"').to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .map(|t| if t == "sha1" { "sha-1".to_string() } else { t })
        .collect();
    given.sort();
    given.dedup();
    (given != expected).then(|| {
        format!(
            "the micalg parameter ({m}) does not match the signature's digest algorithm ({}); \
             verified with the algorithm the signature names",
            expected.join(", ")
        )
    })
}

/// Integrity of a profile-conforming signer: the single message-digest value equals the digest computed over
/// the content (with a diagnosis of the usual line-end/white-space damage when it does not), and the signature
/// over the signed attributes verified.
fn integrity_check(
    md: openssl::hash::MessageDigest,
    s: &SignerSummary,
    content: &[u8],
    computed: &[u8],
    sig_ok: bool,
    sig_error: Option<&str>,
) -> Result<Check> {
    let claimed = s.message_digest_values.first().map(|v| v.as_slice());
    if claimed != Some(computed) {
        let mut why = "the content does not match the signature (message digest mismatch): the message was modified after signing".to_string();
        let mut after = None;
        for (name, variant) in mime::variants_for_diagnosis(content) {
            if hash(md, &variant).ok().as_deref() == claimed {
                why = format!(
                    "the content does not match the signature as received, but it would after '{name}': a mail system altered line endings or white space in transit"
                );
                after = Some(name);
                break;
            }
        }
        let mut c = Check::fail(why);
        c.would_match_after = after;
        return Ok(c);
    }
    if !sig_ok {
        return Ok(Check::fail(match sig_error {
            Some(e) => format!("the signature cannot be checked: {e}"),
            None => {
                "the signature value does not verify with the signer's certificate (bad signature)"
                    .into()
            }
        }));
    }
    Ok(Check::pass())
}

fn hash(md: openssl::hash::MessageDigest, data: &[u8]) -> Result<Vec<u8>> {
    let mut h = Hasher::new(md)?;
    // Large inputs: feed in 1 MiB slices so progress is steady and nothing is copied.
    for chunk in data.chunks(1 << 20) {
        h.update(chunk)?;
    }
    Ok(h.finish()?.to_vec())
}

/// Human-readable report.
pub fn render(r: &VerifyReport) -> String {
    let mut s = String::new();
    let n = r.signers.len();
    let weak = r.signers.iter().any(|sg| !sg.weak.is_empty());
    use crate::display::{address, addresses, field};
    s += &format!(
        "{} ({}, {} signer{})\n",
        match (r.is_valid(), weak) {
            (true, true) => "VALID signature, but WEAK (see the Weak lines)".to_string(),
            _ => r.headline.clone(),
        },
        r.form,
        n,
        if n == 1 { "" } else { "s" }
    );
    if let Some(m) = &r.remedy {
        s += &format!("  What to do:    {m}\n");
    }
    if let Some(f) = &r.from {
        s += &format!("  From:          {}\n", address(f));
    }
    for w in &r.warnings {
        s += &format!("  Warning:       {}\n", field(w));
    }
    for sg in &r.signers {
        s += &format!(
            "Signer {}: {}\n",
            sg.index,
            if sg.valid { "valid" } else { "NOT valid" }
        );
        s += &format!(
            "  Subject:       {}\n",
            field(sg.subject.as_deref().unwrap_or("?"))
        );
        s += &format!(
            "  E-mail:        {}\n",
            if sg.emails.is_empty() {
                "(none)".into()
            } else {
                addresses(&sg.emails)
            }
        );
        s += &format!(
            "  Issuer:        {}\n",
            field(sg.issuer.as_deref().unwrap_or("?"))
        );
        s += &format!(
            "  Fingerprint:   {}\n",
            sg.fingerprint.as_deref().unwrap_or("?")
        );
        s += &format!(
            "  Signed at:     {} (claimed by the signer)\n",
            sg.signing_time.as_deref().unwrap_or("not stated")
        );
        s += &format!(
            "  Algorithms:    {} / {}\n",
            sg.digest_algorithm, sg.signature_algorithm
        );
        s += &format!("  Integrity:     {}\n", verdict(&sg.integrity));
        s += &format!(
            "  Trust:         {}\n",
            if sg.trust.trusted {
                format!(
                    "ok ({})",
                    field(&sg.trust.chain.last().cloned().unwrap_or_default())
                )
            } else {
                format!(
                    "FAILED: {}",
                    field(&sg.trust.error.clone().unwrap_or_default())
                )
            }
        );
        s += &format!(
            "  Validity:      {} at {} (valid {} to {}){}\n",
            if sg.validity.ok { "ok" } else { "FAILED" },
            sg.validity.at,
            sg.validity.not_before,
            sg.validity.not_after,
            match sg.validity.at_signing_time {
                Some(true) => "; valid at the claimed signing time",
                Some(false) => "; NOT valid at the claimed signing time",
                None => "",
            }
        );
        s += &format!("  Purpose:       {}\n", verdict(&sg.purpose));
        s += &format!(
            "  Address:       {}\n",
            match (&sg.address_match.from, sg.address_match.ok) {
                (None, true) => "not checked (--no-address-check or an ambiguous From)".to_string(),
                (None, false) =>
                    "NO SENDER: the message has no From or Sender header to check".to_string(),
                (Some(f), true) => format!("ok ({})", address(f)),
                (Some(f), false) => format!("MISMATCH: From is {}", address(f)),
            }
        );
        s += &crate::revocation::render_lines(&sg.revocation);
        for w in &sg.weak {
            s += &format!("  Weak:          {}\n", field(w));
        }
        for r in &sg.reasons {
            s += &format!("  Reason:        {}\n", field(r));
        }
    }
    s
}

fn verdict(c: &Check) -> String {
    if c.ok {
        "ok".into()
    } else {
        format!(
            "FAILED: {}",
            crate::display::field(&c.reason.clone().unwrap_or_default())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::guess_signed_part;

    #[test]
    fn the_guess_finds_the_first_part_from_both_ends() {
        let body =
            b"preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nsig\r\n--b--\r\n";
        assert_eq!(
            guess_signed_part(body, "b"),
            Some(&b"Content-Type: text/plain\r\n\r\nhi"[..])
        );
        // No preamble.
        let body = b"--b\r\nX\r\n--b\r\nsig\r\n--b--";
        assert_eq!(guess_signed_part(body, "b"), Some(&b"X"[..]));
        // LF line ends, no closing delimiter, no second part: no guess (the strict path decides).
        assert_eq!(guess_signed_part(b"--b\nX\n--b\nsig\n--b--\n", "b"), None);
        assert_eq!(guess_signed_part(b"--b\r\nX\r\n--b\r\nsig\r\n", "b"), None);
        assert_eq!(guess_signed_part(b"--b\r\nX\r\n--b--\r\n", "b"), None);
        // A wrong guess (a delimiter inside the first part) is possible; verify uses the guess only when the
        // strict splitter returns exactly the same bytes, and here it finds three parts instead.
        let body = b"--b\r\nA\r\n--b\r\nB\r\n--b\r\nsig\r\n--b--\r\n";
        assert_eq!(guess_signed_part(body, "b"), Some(&b"A\r\n--b\r\nB"[..]));
    }
}
