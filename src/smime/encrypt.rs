//! Encrypting a message to its recipients (To, Cc, `--to`, `--cert`) and the sender: certificates from the
//! contacts (their selection rules) or our own IDs, the content cipher chosen from the recipients' recorded
//! SMIMECapabilities as RFC 8551 §2.7.1 says, and nothing written unless every recipient has a usable
//! certificate.

use std::io::Write;

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
    /// Force a content cipher.
    pub cipher: Option<ContentCipher>,
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
    #[serde(skip)]
    cert: X509,
    #[serde(skip)]
    capabilities: Option<Vec<String>>,
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
            recipients.push(PlannedRecipient {
                address: a.clone(),
                fingerprint: i.fingerprint.clone(),
                source: "own ID",
                oaep: opts.oaep,
                reason: "your own digital ID".into(),
                cert: i.cert.clone(),
                capabilities: None,
            });
            continue;
        }
        match contacts.select_for_encryption(a, &sel).and_then(|s| {
            let reason = s.reason.clone();
            s.into_chosen().map(|c| (c, reason))
        }) {
            Ok((c, reason)) => {
                let meta = contacts.get(&c.fingerprint).ok().map(|ct| ct.meta);
                let caps = meta.and_then(|m| m.capabilities).map(|c| cap_oids(&c));
                let oaep = opts.oaep
                    || caps
                        .as_ref()
                        .is_some_and(|c| c.iter().any(|o| o == OID_RSAES_OAEP));
                recipients.push(PlannedRecipient {
                    address: a.clone(),
                    fingerprint: c.fingerprint.clone(),
                    source: "contact",
                    oaep,
                    reason,
                    cert: c.cert.clone(),
                    capabilities: caps,
                });
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
        recipients.push(PlannedRecipient {
            address: addr,
            fingerprint: info.fingerprint.clone(),
            source: "--cert",
            oaep: opts.oaep,
            reason: "given with --cert".into(),
            cert: c.clone(),
            capabilities: None,
        });
    }
    let mut warnings = Vec::new();
    if !opts.no_self {
        let me = match &opts.as_id {
            Some(q) => Some(ids.find(q)?),
            None => match mime::from(&top.fields)? {
                Some(f) => ids.for_address(&f.addr)?.into_iter().find(|i| usable_id(i)),
                None => None,
            },
        };
        match me {
            Some(i) if usable_id(&i) => {
                if !recipients.iter().any(|r| r.fingerprint == i.fingerprint) {
                    recipients.push(PlannedRecipient {
                        address: i.emails().first().cloned().unwrap_or_default(),
                        fingerprint: i.fingerprint.clone(),
                        source: "own ID",
                        oaep: opts.oaep,
                        reason: "the sender's copy (--no-self to skip)".into(),
                        cert: i.cert.clone(),
                        capabilities: None,
                    });
                }
            }
            Some(i) => warnings.push(format!("your ID {} cannot receive encrypted mail; your sent copy will not be readable", i.label())),
            None => warnings.push("no digital ID of yours matches the From address: your sent copy will not be readable by you".into()),
        }
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
    let (cipher, cipher_reason) = choose_cipher(&recipients, opts.cipher, &mut warnings);
    Ok(EncryptPlan {
        recipients,
        cipher,
        cipher_reason,
        warnings,
    })
}

/// RFC 8551 §2.7.1: AES-GCM when every recipient with known capabilities lists it; AES-CBC for all when one
/// lists only CBC (naming who forced it); AES-256-GCM when capabilities are unknown (Rule 2).
fn choose_cipher(
    recipients: &[PlannedRecipient],
    forced: Option<ContentCipher>,
    warnings: &mut Vec<String>,
) -> (ContentCipher, String) {
    if let Some(c) = forced {
        return (c, "chosen with --cipher".into());
    }
    let known: Vec<(&PlannedRecipient, Vec<String>)> = recipients
        .iter()
        .filter_map(|r| r.capabilities.clone().map(|c| (r, c)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    if known.is_empty() {
        return (
            ContentCipher::Aes256Gcm,
            "no recipient's capabilities are known: AES-256-GCM (RFC 8551 rule 2)".into(),
        );
    }
    let lists = |r: &[String], c: ContentCipher| r.iter().any(|o| o == c.oid());
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
        } else if !lists(caps, ContentCipher::Aes256Gcm) && !lists(caps, ContentCipher::Aes128Gcm) {
            cbc_forcers.push(r.address.clone());
        }
    }
    if !cbc_forcers.is_empty() {
        let all_256 = known.iter().all(|(_, c)| {
            lists(c, ContentCipher::Aes256Cbc) || ContentCipher::from_capabilities(c).is_none()
        });
        let c = if all_256
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
        return (
            c,
            format!(
                "{} {why}: {} for everyone (confidentiality only, no integrity)",
                cbc_forcers.join(", "),
                c.name()
            ),
        );
    }
    if known
        .iter()
        .all(|(_, c)| lists(c, ContentCipher::Aes256Gcm))
    {
        (
            ContentCipher::Aes256Gcm,
            "every recipient with known capabilities supports AES-256-GCM".into(),
        )
    } else {
        (
            ContentCipher::Aes128Gcm,
            "every recipient with known capabilities supports AES-128-GCM, not all AES-256-GCM"
                .into(),
        )
    }
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
