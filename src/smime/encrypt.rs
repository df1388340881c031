//! Encrypting a message to its recipients (To, Cc, `--to`, `--cert`) and the sender: certificates from the
//! contacts (their selection rules) or our own IDs, the content cipher chosen from the recipients' recorded
//! SMIMECapabilities as RFC 8551 §2.7.1 says under a [`CipherPolicy`], and nothing written unless every
//! recipient has a usable certificate. This module decides what smimekit produces when encrypting; the
//! report ([`render`], or the [`EncryptPlan`] as JSON) says what was chosen and why.

use std::io::Write;

use openssl::pkey::Id;
use openssl::x509::X509;

use crate::cert::{self, CertInfo};
use crate::contacts::{ContactStore, SelectOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::home::Home;
use crate::ids::{IdStore, Identity};
use crate::mime;
use crate::ossl::enveloped::{self, ContentCipher, Recipient};
use crate::pipe;

/// Base64 text handed from the encrypting thread to the writing one at a time (one write each): buffers are
/// handed over a little before they are full (at least 1 MiB), so a 1 MiB `BufWriter` passes them on
/// without copying them.
const TEXT_CHUNK: usize = (1 << 20) + (128 << 10);

/// The rsaesOAEP OID, as advertised in SMIMECapabilities.
const OID_RSAES_OAEP: &str = "1.2.840.113549.1.1.7";

/// What to produce when a recipient's capabilities are unknown (a certificate added from a file, or from a
/// message without SMIMECapabilities). Recipients who advertised AES-GCM get AES-GCM, and recipients who
/// advertised only CBC get AES-CBC, under either policy; 3DES, RC2 and DES are never produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CipherPolicy {
    /// AES-256-CBC EnvelopedData, which every S/MIME client opens (RFC 8551 §2.7.1.2 allows it). Thunderbird
    /// (NSS) and Outlook cannot open AES-GCM AuthEnvelopedData, so this is the default.
    #[default]
    Compatible,
    /// AES-256-GCM AuthEnvelopedData (RFC 8551's preference: integrity protected), for correspondents known to
    /// use a client that opens it.
    Modern,
}

impl CipherPolicy {
    /// Every policy, the default first.
    pub const ALL: [CipherPolicy; 2] = [CipherPolicy::Compatible, CipherPolicy::Modern];

    /// The policy's name as written on the command line and in the config file.
    pub fn name(self) -> &'static str {
        match self {
            CipherPolicy::Compatible => "compatible",
            CipherPolicy::Modern => "modern",
        }
    }
}

impl std::fmt::Display for CipherPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CipherPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::usage(format!("unknown cipher policy '{s}'"))
                    .hint("the cipher policy is 'compatible' (the default: AES-256-CBC when a recipient's capabilities are unknown) or 'modern' (AES-256-GCM then)")
            })
    }
}

/// How to encrypt.
#[derive(Debug, Clone, Default)]
pub struct EncryptOptions {
    /// Extra recipient addresses (besides To and Cc).
    pub to: Vec<String>,
    /// Encrypt to `to` (and the sender) only, ignoring the message's To and Cc: a Bcc recipient's separate
    /// copy (`send`).
    pub only_listed: bool,
    /// Recipient certificates given directly.
    pub certs: Vec<X509>,
    /// Force a content cipher (overrides the policy and the capabilities).
    pub cipher: Option<ContentCipher>,
    /// What to produce when a recipient's capabilities are unknown.
    pub policy: CipherPolicy,
    /// The message is signed before it is encrypted (only the report's advice depends on it).
    pub sign_inside: bool,
    /// Do not encrypt to the sender's own ID.
    pub no_self: bool,
    /// Use RSA-OAEP for every RSA recipient.
    pub oaep: bool,
    /// The sender's ID (default: the ID matching From).
    pub as_id: Option<String>,
    /// Trust anchors used to judge recipients' chains.
    pub anchors: Vec<X509>,
    /// Also trust the system store.
    pub system_trust: bool,
    /// Revocation policy and sources: a revoked recipient certificate is refused.
    pub revocation: crate::revocation::Settings,
}

/// One recipient of the plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedRecipient {
    /// The address (or the certificate's first address for `--cert`).
    pub address: String,
    /// Fingerprint of the certificate used.
    pub fingerprint: String,
    /// Where the certificate came from: `contact`, `own ID`, `--cert`.
    pub source: &'static str,
    /// RSA-OAEP key transport.
    pub oaep: bool,
    /// Why this certificate.
    pub reason: String,
    /// The certificate's key type: `RSA`, `EC` or another name.
    pub key_type: &'static str,
    /// What the recipient's recorded SMIMECapabilities say about the ciphers we produce: `aes-gcm`, `cbc-only`,
    /// `weak-only` (3DES/RC2 only), `unknown` (nothing recorded), or `smimekit` (our own ID: we read them all).
    pub capabilities: &'static str,
    #[serde(skip)]
    cert: X509,
    #[serde(skip)]
    caps: Caps,
}

/// What we know of a recipient's capabilities.
#[derive(Debug, Clone)]
enum Caps {
    /// Our own ID: smimekit reads every cipher it produces.
    Own,
    /// Nothing recorded (or an empty list).
    Unknown,
    /// The recorded capability OIDs.
    Known(Vec<String>),
}

impl Caps {
    fn from_recorded(c: Option<Vec<String>>) -> Caps {
        match c {
            Some(c) if !c.is_empty() => Caps::Known(cap_oids(&c)),
            _ => Caps::Unknown,
        }
    }
    fn label(&self) -> &'static str {
        match self {
            Caps::Own => "smimekit",
            Caps::Unknown => "unknown",
            Caps::Known(c) => {
                if ContentCipher::from_capabilities(c).is_none() {
                    "weak-only"
                } else if lists_gcm(c) {
                    "aes-gcm"
                } else {
                    "cbc-only"
                }
            }
        }
    }
}

fn lists(caps: &[String], c: ContentCipher) -> bool {
    caps.iter().any(|o| o == c.oid())
}

fn lists_gcm(caps: &[String]) -> bool {
    lists(caps, ContentCipher::Aes256Gcm) || lists(caps, ContentCipher::Aes128Gcm)
}

/// The key type's name for the report.
fn key_type(cert: &X509) -> &'static str {
    match cert.public_key().map(|k| k.id()) {
        Ok(Id::RSA) | Ok(Id::RSA_PSS) => "RSA",
        Ok(Id::EC) => "EC",
        Ok(Id::X25519) => "X25519",
        Ok(Id::X448) => "X448",
        _ => "other",
    }
}

impl PlannedRecipient {
    fn new(
        address: String,
        fingerprint: String,
        source: &'static str,
        oaep: bool,
        reason: String,
        cert: X509,
        caps: Caps,
    ) -> PlannedRecipient {
        PlannedRecipient {
            address,
            fingerprint,
            source,
            oaep,
            reason,
            key_type: key_type(&cert),
            capabilities: caps.label(),
            cert,
            caps,
        }
    }
}

/// The recipients and the cipher, decided before anything is written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EncryptPlan {
    /// Every recipient.
    pub recipients: Vec<PlannedRecipient>,
    /// The content cipher.
    pub cipher: ContentCipher,
    /// Why that cipher.
    pub cipher_reason: String,
    /// The cipher policy in force (it decides only when a recipient's capabilities are unknown).
    pub cipher_policy: CipherPolicy,
    /// The addresses whose capabilities (or lack of them) decided the cipher; empty when `--cipher` did, or
    /// when only our own IDs are recipients.
    pub decided_by: Vec<String>,
    /// The cipher was forced with `--cipher`.
    pub cipher_forced: bool,
    /// The content cipher protects integrity (AES-GCM AuthEnvelopedData); AES-CBC gives confidentiality only.
    pub integrity: bool,
    /// The message is signed before encryption.
    pub signed_inside: bool,
    /// Advice about the result, in one line (AES-CBC without a signature inside: sign inside).
    pub recommendation: Option<String>,
    /// Interoperability notes (an EC recipient some clients cannot decrypt for).
    pub notes: Vec<String>,
    /// Warnings.
    pub warnings: Vec<String>,
}

fn cap_oids(caps: &[String]) -> Vec<String> {
    // Capabilities may be stored as "name (OID)" or as bare OIDs.
    caps.iter()
        .map(|c| match (c.rfind('('), c.rfind(')')) {
            (Some(a), Some(b)) if a < b => c[a + 1..b].to_string(),
            _ => c.clone(),
        })
        .collect()
}

/// Decides recipients and cipher for the message `raw`. Errors name every recipient without a usable
/// certificate, and why; a message with Bcc recipients is refused (see the README: one encrypted message lists
/// every recipient, which would reveal Bcc recipients to all).
pub fn plan(home: &Home, raw: &[u8], opts: &EncryptOptions) -> Result<EncryptPlan> {
    let top = super::top_level(raw)?;
    let bcc = mime::addresses(&top.fields, &["bcc"]);
    if !bcc.is_empty() {
        let names: Vec<String> = bcc.iter().map(|m| m.addr.clone()).collect();
        return Err(Error::usage(format!(
            "the message has Bcc recipients ({}): an encrypted message names every recipient, so they would be revealed to all",
            names.join(", ")
        ))
        .hint("remove the Bcc header and encrypt a separate copy for each of them: smimekit encrypt --to ADDRESS"));
    }
    let now = cert::now();
    let ids = IdStore::new(home);
    let contacts = ContactStore::new(home);
    let mut addrs: Vec<String> = if opts.only_listed {
        Vec::new()
    } else {
        mime::addresses(&top.fields, &["to", "cc"])
            .into_iter()
            .map(|m| m.addr)
            .collect()
    };
    addrs.extend(opts.to.iter().cloned());
    let mut recipients: Vec<PlannedRecipient> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let sel = SelectOptions {
        anchors: &opts.anchors,
        system: opts.system_trust,
        now,
    };
    let usable_id = |i: &Identity| {
        let info = CertInfo::new(&i.cert, now);
        info.can_encrypt && !info.expired && !info.not_yet_valid
    };
    for a in &addrs {
        if crate::address::normalize(a).is_none() {
            problems.push(format!("{a}: not a valid address"));
            continue;
        }
        if recipients
            .iter()
            .any(|r| crate::address::same(&r.address, a))
        {
            continue;
        }
        // A certificate given with --cert for this address is used as given (checked below).
        if opts.certs.iter().any(|c| {
            CertInfo::new(c, now)
                .emails
                .iter()
                .any(|e| crate::address::same(e, a))
        }) {
            continue;
        }
        // Our own address: our ID's certificate.
        if let Some(i) = ids.for_address(a)?.into_iter().find(|i| usable_id(i)) {
            recipients.push(PlannedRecipient::new(
                a.clone(),
                i.fingerprint.clone(),
                "own ID",
                opts.oaep,
                "your own digital ID".into(),
                i.cert.clone(),
                Caps::Own,
            ));
            continue;
        }
        match contacts.select_for_encryption(a, &sel).and_then(|s| {
            let reason = s.reason.clone();
            s.into_chosen().map(|c| (c, reason))
        }) {
            Ok((c, reason)) => {
                let caps = recorded_caps(&contacts, &c.fingerprint);
                let oaep = opts.oaep || advertises_oaep(&caps);
                recipients.push(PlannedRecipient::new(
                    a.clone(),
                    c.fingerprint.clone(),
                    "contact",
                    oaep,
                    reason,
                    c.cert.clone(),
                    caps,
                ));
            }
            Err(e) => problems.push(format!("{a}: {}", e.message())),
        }
    }
    for c in &opts.certs {
        let info = CertInfo::new(c, now);
        // Name the recipient by the To/Cc/--to address this certificate stands for, if any.
        let addr = addrs
            .iter()
            .find(|a| info.emails.iter().any(|e| crate::address::same(e, a)))
            .or(info.emails.first())
            .cloned()
            .unwrap_or_else(|| info.subject.clone());
        if recipients.iter().any(|r| r.fingerprint == info.fingerprint) {
            continue;
        }
        if !info.can_encrypt {
            problems.push(format!("{addr} (--cert): the certificate is not for encryption (keyEncipherment/keyAgreement and emailProtection needed)"));
            continue;
        }
        if info.expired || info.not_yet_valid {
            problems.push(format!(
                "{addr} (--cert): the certificate is {}",
                info.status()
            ));
            continue;
        }
        // A certificate that is also a contact brings the capabilities recorded for it.
        let caps = recorded_caps(&contacts, &info.fingerprint);
        let oaep = opts.oaep || advertises_oaep(&caps);
        recipients.push(PlannedRecipient::new(
            addr,
            info.fingerprint.clone(),
            "--cert",
            oaep,
            "given with --cert".into(),
            c.clone(),
            caps,
        ));
    }
    let mut warnings = Vec::new();
    if !opts.no_self {
        let me = match &opts.as_id {
            Some(q) => Some(ids.find(q)?),
            None => match mime::from(&top.fields)? {
                Some(f) => ids.for_address(&f.addr)?.into_iter().find(|i| usable_id(i)),
                // Without From: the rule of `sign`: the only ID, else the user says which.
                None => {
                    let mut all = ids.list()?;
                    match all.len() {
                        1 => all.pop(),
                        0 => {
                            return Err(Error::not_found(
                                "the message has no From header and you have no digital ID for your own copy",
                            )
                            .hint("add a From header, or pass --no-self to encrypt without a copy for yourself"));
                        }
                        _ => {
                            return Err(Error::usage(
                                "the message has no From header and you have several IDs",
                            )
                            .hint("pick yours with --as ADDRESS (or pass --no-self)"));
                        }
                    }
                }
            },
        };
        match me {
            Some(i) if usable_id(&i) => {
                if !recipients.iter().any(|r| r.fingerprint == i.fingerprint) {
                    recipients.push(PlannedRecipient::new(
                        i.emails().first().cloned().unwrap_or_default(),
                        i.fingerprint.clone(),
                        "own ID",
                        opts.oaep,
                        "the sender's copy (--no-self to skip)".into(),
                        i.cert.clone(),
                        Caps::Own,
                    ));
                }
            }
            Some(i) => warnings.push(format!("your ID {} cannot receive encrypted mail; your sent copy will not be readable", i.label())),
            None => warnings.push("no digital ID of yours matches the From address: your sent copy will not be readable by you".into()),
        }
    }
    // Revocation of the chosen certificates (not our own IDs): a revoked one is a recipient without a usable
    // certificate.
    if opts.revocation.policy != crate::revocation::Policy::Off {
        let intermediates = contacts.intermediates().unwrap_or_default();
        let mut keep = Vec::new();
        for r in recipients.drain(..) {
            if r.source == "own ID" {
                keep.push(r);
                continue;
            }
            let chain = crate::trust::verify_chain(
                &r.cert,
                &intermediates,
                &crate::trust::ChainOptions {
                    anchors: &opts.anchors,
                    system: opts.system_trust,
                    at: now,
                    purpose: crate::trust::Purpose::Encrypt,
                },
            )?;
            match crate::revocation::check_recipient(&opts.revocation, &chain.certs, chain.trusted)
            {
                crate::revocation::Effect::Ok => keep.push(r),
                crate::revocation::Effect::Warn(w) => {
                    warnings.push(format!("{}: {w}", r.address));
                    keep.push(r);
                }
                crate::revocation::Effect::Fail(e) => problems.push(format!("{}: {e}", r.address)),
            }
        }
        recipients = keep;
    }
    if !problems.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("cannot encrypt: {} recipient(s) have no usable certificate: {}", problems.len(), problems.join("; ")),
        )
        .hint("nothing was written. Add their certificates ('smimekit contact add FILE', or verify a signed message from them), or leave them out"));
    }
    if recipients.is_empty() {
        return Err(Error::usage("the message has no recipients")
            .hint("add To/Cc headers, or pass --to ADDRESS or --cert FILE"));
    }
    let choice = choose_cipher(&recipients, opts.cipher, opts.policy, &mut warnings);
    let recommendation = (!choice.cipher.is_aead() && !opts.sign_inside).then(|| {
        format!("{} protects confidentiality only: sign inside (encrypt --sign) so the recipients can tell if the message was altered", choice.cipher.name())
    });
    // NSS 3.87 (Thunderbird) cannot decrypt ECDH key agreement at all: say so for each EC recipient but us.
    let notes = recipients
        .iter()
        .filter(|r| r.key_type == "EC" && !matches!(r.caps, Caps::Own))
        .map(|r| format!("{} has an EC certificate: some clients (Thunderbird's NSS among them) may not open the message for that recipient", r.address))
        .collect();
    Ok(EncryptPlan {
        recipients,
        integrity: choice.cipher.is_aead(),
        cipher: choice.cipher,
        cipher_reason: choice.reason,
        cipher_policy: opts.policy,
        decided_by: choice.decided_by,
        cipher_forced: opts.cipher.is_some(),
        signed_inside: opts.sign_inside,
        recommendation,
        notes,
        warnings,
    })
}

/// The capabilities recorded for the contact certificate `fingerprint`, if it is one.
fn recorded_caps(contacts: &ContactStore, fingerprint: &str) -> Caps {
    Caps::from_recorded(
        contacts
            .get(fingerprint)
            .ok()
            .and_then(|ct| ct.meta.capabilities),
    )
}

fn advertises_oaep(caps: &Caps) -> bool {
    matches!(caps, Caps::Known(c) if c.iter().any(|o| o == OID_RSAES_OAEP))
}

/// The content cipher, why, and whose capabilities decided it.
struct Choice {
    cipher: ContentCipher,
    reason: String,
    decided_by: Vec<String>,
}

/// RFC 8551 §2.7.1 under `policy`, first rule that applies:
/// 1. `--cipher` decides.
/// 2. A recipient advertising only CBC (or only 3DES/RC2, which we never produce): AES-CBC for everyone,
///    AES-256 unless one of them lists only AES-128-CBC; those recipients decided it.
/// 3. A recipient whose capabilities are unknown: AES-256-CBC under `compatible`, AES-256-GCM under `modern`
///    (AES-128-GCM if a recipient who advertised GCM lists only that size); the unknown ones decided it.
/// 4. Everyone advertised AES-GCM: AES-256-GCM if all list it, else AES-128-GCM.
///
/// Our own IDs never decide: smimekit reads every cipher it produces.
fn choose_cipher(
    recipients: &[PlannedRecipient],
    forced: Option<ContentCipher>,
    policy: CipherPolicy,
    warnings: &mut Vec<String>,
) -> Choice {
    if let Some(c) = forced {
        return Choice {
            cipher: c,
            reason: format!(
                "chosen with --cipher (the {policy} policy and the recipients' capabilities are not consulted)"
            ),
            decided_by: Vec::new(),
        };
    }
    let known: Vec<(&PlannedRecipient, &[String])> = recipients
        .iter()
        .filter_map(|r| match &r.caps {
            Caps::Known(c) => Some((r, c.as_slice())),
            _ => None,
        })
        .collect();
    let unknown: Vec<String> = recipients
        .iter()
        .filter(|r| matches!(r.caps, Caps::Unknown))
        .map(|r| r.address.clone())
        .collect();
    let mut cbc_forcers = Vec::new();
    let mut weak_only = Vec::new();
    for (r, caps) in &known {
        if ContentCipher::from_capabilities(caps).is_none() {
            warnings.push(format!(
                "{} advertises only ciphers smimekit never uses (3DES/RC2); using AES-CBC",
                r.address
            ));
            weak_only.push(r.address.clone());
            cbc_forcers.push(r.address.clone());
        } else if !lists_gcm(caps) {
            cbc_forcers.push(r.address.clone());
        }
    }
    if !cbc_forcers.is_empty() {
        let all_256 = known.iter().all(|(_, c)| {
            lists(c, ContentCipher::Aes256Cbc) || ContentCipher::from_capabilities(c).is_none()
        });
        // AES-128-CBC only when every recipient who advertised anything lists it and one lacks AES-256-CBC,
        // and nobody's capabilities are unknown (for them the floor is AES-256-CBC).
        let c = if all_256
            || !unknown.is_empty()
            || !known
                .iter()
                .all(|(_, c)| lists(c, ContentCipher::Aes128Cbc))
        {
            ContentCipher::Aes256Cbc
        } else {
            ContentCipher::Aes128Cbc
        };
        warnings.push(format!(
            "no integrity protection: {} cannot read AES-GCM",
            cbc_forcers.join(", ")
        ));
        let why = if weak_only.len() == cbc_forcers.len() {
            "advertise(s) only 3DES/RC2, which smimekit never produces, so the policy floor is used"
        } else {
            "advertise(s) only CBC ciphers (or only 3DES/RC2)"
        };
        return Choice {
            cipher: c,
            reason: format!(
                "{} {why}: {} for everyone (confidentiality only, no integrity)",
                cbc_forcers.join(", "),
                c.name()
            ),
            decided_by: cbc_forcers,
        };
    }
    let all_gcm256 = known
        .iter()
        .all(|(_, c)| lists(c, ContentCipher::Aes256Gcm));
    if !unknown.is_empty() {
        let who = unknown.join(", ");
        return match policy {
            CipherPolicy::Compatible => Choice {
                cipher: ContentCipher::Aes256Cbc,
                reason: format!(
                    "the capabilities of {who} are unknown, so the compatible policy uses AES-256-CBC EnvelopedData, which every S/MIME client opens (Thunderbird and Outlook cannot open AES-GCM; confidentiality only, no integrity)"
                ),
                decided_by: unknown,
            },
            CipherPolicy::Modern => {
                let c = if all_gcm256 {
                    ContentCipher::Aes256Gcm
                } else {
                    ContentCipher::Aes128Gcm
                };
                Choice {
                    cipher: c,
                    reason: format!(
                        "the capabilities of {who} are unknown, so the modern policy uses {} AuthEnvelopedData (RFC 8551 rule 2; Thunderbird and Outlook cannot open it)",
                        c.name()
                    ),
                    decided_by: unknown,
                }
            }
        };
    }
    let advertisers: Vec<String> = known.iter().map(|(r, _)| r.address.clone()).collect();
    if known.is_empty() {
        Choice {
            cipher: ContentCipher::Aes256Gcm,
            reason: "the only recipients are your own IDs, and smimekit reads AES-256-GCM".into(),
            decided_by: Vec::new(),
        }
    } else if all_gcm256 {
        Choice {
            cipher: ContentCipher::Aes256Gcm,
            reason: "every recipient supports AES-256-GCM (as their signed messages advertised)"
                .into(),
            decided_by: advertisers,
        }
    } else {
        Choice {
            cipher: ContentCipher::Aes128Gcm,
            reason: "every recipient supports AES-128-GCM (as their signed messages advertised), not all AES-256-GCM".into(),
            decided_by: advertisers,
        }
    }
}

/// The encrypt report as text: the cipher and why, the policy and who decided, the recipients, notes and the
/// one-line recommendation. `--json` prints the [`EncryptPlan`] itself.
pub fn render(plan: &EncryptPlan) -> String {
    let mut s = format!(
        "Encrypted with {}: {}
",
        plan.cipher.name(),
        plan.cipher_reason
    );
    let decided = if plan.cipher_forced {
        "decided by --cipher".to_string()
    } else if plan.decided_by.is_empty() {
        "no recipient's capabilities needed".to_string()
    } else {
        format!("decided by {}", plan.decided_by.join(", "))
    };
    s += &format!(
        "Cipher policy: {}; {decided}; {}\n",
        plan.cipher_policy,
        if plan.integrity {
            "AuthEnvelopedData (integrity protected)"
        } else {
            "EnvelopedData (no integrity protection)"
        }
    );
    for r in &plan.recipients {
        s += &format!(
            "  to {} ({}, {}, {}{}, capabilities: {})\n",
            r.address,
            &r.fingerprint[..16.min(r.fingerprint.len())],
            r.source,
            r.key_type,
            if r.oaep { ", RSA-OAEP" } else { "" },
            r.capabilities
        );
    }
    if plan.signed_inside {
        s += "Signed before encryption.\n";
    }
    for n in &plan.notes {
        s += &format!("Note: {n}\n");
    }
    if let Some(r) = &plan.recommendation {
        s += &format!("Recommendation: {r}\n");
    }
    s
}

/// Encrypts `entity` (Content-* fields, blank line, body) per `plan` and writes the message with the `outer`
/// header fields. On error, discard what was written.
pub fn write(plan: &EncryptPlan, outer: &[u8], entity: &[u8], out: &mut dyn Write) -> Result<()> {
    write_pieces(plan, outer, &[], entity, out)
}

/// Encrypts the message `raw` per `plan` (the entity is the body with its Content-* fields). The body streams
/// from `raw` through the cipher into base64 lines: nothing is held in memory whole.
pub fn encrypt_message(plan: &EncryptPlan, raw: &[u8], out: &mut dyn Write) -> Result<()> {
    let parts = mime::split_message_parts(raw)?;
    write_pieces(plan, &parts.outer, &parts.content_header, parts.body, out)
}

/// Plaintext handed to OpenSSL at a time: small enough that the CRLF check leaves it in the cache for the
/// cipher, large enough that per-call costs vanish.
const FEED: usize = 128 << 10;

/// Encrypts `head` then `body`, both put in CRLF form on the way, and writes the `application/pkcs7-mime`
/// message.
///
/// Two threads share the work: a helper thread canonicalises, encrypts (OpenSSL) and base64-encodes, this one
/// writes the text to `out`. The output is 1.37× the input, and writing it (the kernel's copy into the page
/// cache and the file system's bookkeeping) costs as much as everything else together; on one thread the
/// two halves would take turns.
fn write_pieces(
    plan: &EncryptPlan,
    outer: &[u8],
    head: &[u8],
    body: &[u8],
    out: &mut dyn Write,
) -> Result<()> {
    let recips: Vec<Recipient<'_>> = plan
        .recipients
        .iter()
        .map(|r| Recipient {
            cert: &r.cert,
            oaep: r.oaep,
        })
        .collect();
    let smime_type = if plan.cipher.is_aead() {
        "authEnveloped-data"
    } else {
        "enveloped-data"
    };
    mime::write_pkcs7_mime_header(out, outer, smime_type).map_err(Error::output)?;
    let cipher = plan.cipher;
    pipe::offload(TEXT_CHUNK, out, |text| {
        // The text goes to the writing thread in the buffers it was encoded into (no copy).
        let mut b64 = mime::Base64Blocks::new(TEXT_CHUNK, |buf| text.send(buf));
        enveloped::encrypt_writer(&recips, cipher, &mut b64, |plain| {
            let mut w = mime::CrlfWriter::new(plain);
            for piece in head.chunks(FEED).chain(body.chunks(FEED)) {
                w.write_all(piece).map_err(Error::output)?;
            }
            w.finish().map_err(Error::output)?;
            Ok(())
        })?;
        b64.finish().map_err(Error::output)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_policy_names_round_trip() {
        assert_eq!(CipherPolicy::default(), CipherPolicy::Compatible);
        for p in CipherPolicy::ALL {
            assert_eq!(p.to_string().parse::<CipherPolicy>().unwrap(), p);
        }
        assert_eq!(
            " Modern".parse::<CipherPolicy>().unwrap(),
            CipherPolicy::Modern
        );
        let e = "fast".parse::<CipherPolicy>().unwrap_err();
        assert!(e.message().contains("fast"), "{e}");
    }
}
