//! Preparing a message for submission: composing one (mail-builder), finding its envelope, removing Bcc, and
//! protecting it (sign, encrypt) as one copy per audience.
//!
//! Bcc done right: the Bcc header is removed before anything is signed or encrypted, so it is never
//! transmitted. Unencrypted, one copy goes to every recipient. Encrypted, the To/Cc copy names only To/Cc (and
//! the sender) in its RecipientInfos, and each Bcc recipient gets a separate copy encrypted to them and the
//! sender: no encrypted copy reveals a Bcc recipient to anyone else.

use openssl::pkey::{PKey, Private};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::ids::Identity;
use crate::mime;
use crate::smime::{self, encrypt, sign};

/// A message ready to protect: Bcc removed, envelope known.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The envelope sender (MAIL FROM).
    pub from: String,
    /// To and Cc addresses (envelope only: never display names).
    pub to_cc: Vec<String>,
    /// Bcc addresses (removed from the header).
    pub bcc: Vec<String>,
    /// The message without its Bcc field(s).
    pub message: Vec<u8>,
}

/// One submission: who receives it and what they receive.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Copy {
    /// RCPT TO addresses.
    pub recipients: Vec<String>,
    /// Addresses whose certificates can decrypt it (empty when not encrypted).
    pub encrypted_for: Vec<String>,
    /// The message as it will be submitted.
    #[serde(skip)]
    pub message: Vec<u8>,
}

/// What protection to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// Do not encrypt.
    No,
    /// Encrypt; refuse when a recipient has no certificate.
    Required,
    /// Encrypt when every recipient has a certificate, else send signed (or plain) only.
    IfPossible,
}

/// The result of [`protect`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Protected {
    /// Signed by this ID (label), if signed.
    pub signed_by: Option<String>,
    /// Whether the copies are encrypted.
    pub encrypted: bool,
    /// Why encryption was not done under [`Encryption::IfPossible`].
    pub not_encrypted_because: Option<String>,
    /// The copies to submit.
    pub copies: Vec<Copy>,
}

/// Reads the envelope of `raw`, refuses header injection in the addresses, and removes Bcc. `from` overrides
/// the envelope sender (default: the From address).
pub fn prepare(raw: &[u8], from: Option<&str>) -> Result<Outgoing> {
    let top = smime::top_level(raw)?;
    let addrs = |names: &[&str]| -> Vec<String> {
        mime::addresses(&top.fields, names)
            .into_iter()
            .map(|m| m.addr)
            .collect()
    };
    let header_from = addrs(&["from"]);
    let sender = match from {
        Some(f) => f.to_string(),
        None => header_from.first().cloned().ok_or_else(|| {
            Error::usage("the message has no From address")
                .hint("add a From: field, or give --from / the account's from address")
        })?,
    };
    let mut to_cc = Vec::new();
    for a in addrs(&["to", "cc"]) {
        if !to_cc.iter().any(|x: &String| crate::address::same(x, &a)) {
            to_cc.push(a);
        }
    }
    let mut bcc = Vec::new();
    for a in addrs(&["bcc"]) {
        if !to_cc
            .iter()
            .chain(bcc.iter())
            .any(|x| crate::address::same(x, &a))
        {
            bcc.push(a);
        }
    }
    if to_cc.is_empty() && bcc.is_empty() {
        return Err(
            Error::usage("the message has no recipients (no To, Cc or Bcc address)")
                .hint("add --to/--cc/--bcc, or To:/Cc:/Bcc: fields to the message"),
        );
    }
    crate::net::smtp::check_address(&sender)?;
    for a in to_cc.iter().chain(&bcc) {
        crate::net::smtp::check_address(a)?;
    }
    // Remove every Bcc field (with its continuation lines) by byte range: nothing else changes.
    let mut message = Vec::with_capacity(raw.len());
    let mut pos = 0;
    for f in top.fields.iter().filter(|f| f.is("bcc")) {
        let start = f.raw.as_ptr() as usize - raw.as_ptr() as usize;
        message.extend_from_slice(&raw[pos..start]);
        pos = start + f.raw.len();
    }
    message.extend_from_slice(&raw[pos..]);
    Ok(Outgoing {
        from: sender,
        to_cc,
        bcc,
        message,
    })
}

/// Signs and/or encrypts `out` into the copies to submit. `signer` signs when given; `base` carries the
/// encryption settings (cipher, OAEP, anchors, sender ID); its recipient fields are set here per copy.
pub fn protect(
    home: &Home,
    out: &Outgoing,
    signer: Option<(&Identity, &PKey<Private>, &sign::SignOptions)>,
    encryption: Encryption,
    base: &encrypt::EncryptOptions,
) -> Result<Protected> {
    let signed = match signer {
        Some((id, key, opts)) => {
            let mut buf = Vec::new();
            sign::sign_message(home, &out.message, id, key, opts, &mut buf)?;
            Some((buf, id.label()))
        }
        None => None,
    };
    let body = signed
        .as_ref()
        .map_or(out.message.as_slice(), |(b, _)| b.as_slice());
    let all: Vec<String> = out.to_cc.iter().chain(&out.bcc).cloned().collect();
    let plain = |why: Option<String>| Protected {
        signed_by: signed.as_ref().map(|(_, l)| l.clone()),
        encrypted: false,
        not_encrypted_because: why,
        copies: vec![Copy {
            recipients: all.clone(),
            encrypted_for: Vec::new(),
            message: body.to_vec(),
        }],
    };
    if encryption == Encryption::No {
        return Ok(plain(None));
    }
    // Plan every copy first: nothing is encrypted unless all can be.
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    if !out.to_cc.is_empty() {
        let opts = encrypt::EncryptOptions {
            to: Vec::new(),
            only_listed: false,
            ..base.clone()
        };
        match encrypt::plan(home, &out.message, &opts) {
            Ok(p) => plans.push((out.to_cc.clone(), p)),
            Err(e) => problems.push(e),
        }
    }
    for b in &out.bcc {
        let opts = encrypt::EncryptOptions {
            to: vec![b.clone()],
            only_listed: true,
            ..base.clone()
        };
        match encrypt::plan(home, &out.message, &opts) {
            Ok(p) => plans.push((vec![b.clone()], p)),
            Err(e) => problems.push(e.context(format!("Bcc {b}"))),
        }
    }
    if let Some(first) = problems.into_iter().next() {
        if encryption == Encryption::IfPossible {
            return Ok(plain(Some(first.message().to_string())));
        }
        return Err(first.context("not sent"));
    }
    let mut copies = Vec::new();
    for (rcpts, plan) in plans {
        let mut buf = Vec::new();
        encrypt::encrypt_message(&plan, body, &mut buf)?;
        copies.push(Copy {
            recipients: rcpts,
            encrypted_for: plan.recipients.iter().map(|r| r.address.clone()).collect(),
            message: buf,
        });
    }
    Ok(Protected {
        signed_by: signed.map(|(_, l)| l),
        encrypted: true,
        not_encrypted_because: None,
        copies,
    })
}

/// What to compose.
#[derive(Debug, Clone, Default)]
pub struct Compose {
    /// From address (may be `Name <addr>`-free: the address alone).
    pub from: String,
    /// To addresses.
    pub to: Vec<String>,
    /// Cc addresses.
    pub cc: Vec<String>,
    /// Bcc addresses (written as a Bcc field, which [`prepare`] removes again).
    pub bcc: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Text body.
    pub body: String,
    /// Attachments: file name, bytes.
    pub attachments: Vec<(String, Vec<u8>)>,
}

/// Builds an RFC 5322 message with mail-builder, with Date and a random Message-ID at the sender's domain
/// (never the local host name).
pub fn compose(c: &Compose) -> Result<Vec<u8>> {
    for a in std::iter::once(&c.from)
        .chain(&c.to)
        .chain(&c.cc)
        .chain(&c.bcc)
    {
        crate::net::smtp::check_address(a)?;
    }
    if c.subject.contains(['\r', '\n', '\0']) {
        return Err(
            Error::usage("the subject contains a line break").hint("give the subject on one line")
        );
    }
    let domain = c.from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let mut rnd = [0u8; 16];
    openssl::rand::rand_bytes(&mut rnd)?;
    let id = format!("{}@{domain}", crate::net::tls::hex(&rnd));
    let list = |v: &[String]| -> Vec<String> { v.to_vec() };
    let mut b = mail_builder::MessageBuilder::new()
        .from(c.from.clone())
        .message_id(id)
        .subject(c.subject.clone())
        .text_body(c.body.clone());
    if !c.to.is_empty() {
        b = b.to(list(&c.to));
    }
    if !c.cc.is_empty() {
        b = b.cc(list(&c.cc));
    }
    if !c.bcc.is_empty() {
        b = b.bcc(list(&c.bcc));
    }
    for (name, data) in &c.attachments {
        b = b.attachment("application/octet-stream", name.clone(), data.clone());
    }
    b.write_to_vec()
        .map_err(|e| Error::bad_input(format!("cannot compose the message: {e}")))
}

/// Saves the sent message: into a Maildir folder (`cur/`, as read, flag `S`) when `path` is one, else to the
/// file `path`; written atomically (temp, fsync, rename) either way.
pub fn save_copy(path: &std::path::Path, message: &[u8]) -> Result<()> {
    let is_maildir = ["cur", "new", "tmp"].iter().all(|d| path.join(d).is_dir());
    if !is_maildir {
        return crate::home::write_atomic(path, message);
    }
    let mut rnd = [0u8; 8];
    openssl::rand::rand_bytes(&mut rnd)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = format!(
        "{now}.{}_{}.smimekit:2,S",
        std::process::id(),
        crate::net::tls::hex(&rnd)
    );
    // Maildir delivery: write in tmp/, then rename into cur/ (the same file system).
    let tmp = path.join("tmp").join(&name);
    crate::home::write_atomic(&tmp, message)?;
    let dst = path.join("cur").join(&name);
    std::fs::rename(&tmp, &dst).map_err(|e| Error::io("move the copy into", &dst, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_recipients_is_an_error() {
        let e = prepare(b"From: a@x.test\r\nSubject: s\r\n\r\nbody\r\n", None).unwrap_err();
        assert!(e.message().contains("no recipients"));
    }

    #[test]
    fn bcc_is_removed_and_kept_in_envelope() {
        let raw = b"From: A <a@x.test>\r\nTo: b@x.test\r\nBcc: c@x.test,\r\n d@x.test\r\nSubject: s\r\n\r\nbody\r\n";
        let o = prepare(raw, None).unwrap();
        assert_eq!(o.from, "a@x.test");
        assert_eq!(o.to_cc, ["b@x.test"]);
        assert_eq!(o.bcc, ["c@x.test", "d@x.test"]);
        assert_eq!(
            o.message,
            b"From: A <a@x.test>\r\nTo: b@x.test\r\nSubject: s\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn compose_has_date_message_id_and_bcc_field_for_prepare() {
        let m = compose(&Compose {
            from: "a@x.test".into(),
            to: vec!["b@x.test".into()],
            bcc: vec!["c@x.test".into()],
            subject: "hi".into(),
            body: "hello\n".into(),
            ..Default::default()
        })
        .unwrap();
        let t = String::from_utf8_lossy(&m);
        assert!(t.contains("Date: ") && t.contains("Message-ID: <"), "{t}");
        assert!(t.contains("@x.test>"));
        let o = prepare(&m, None).unwrap();
        assert_eq!(o.bcc, ["c@x.test"]);
        assert!(
            !String::from_utf8_lossy(&o.message)
                .to_ascii_lowercase()
                .contains("bcc")
        );
        assert!(
            compose(&Compose {
                from: "a@x.test".into(),
                subject: "a\r\nBcc: evil@x".into(),
                ..Default::default()
            })
            .is_err()
        );
    }
}
