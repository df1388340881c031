//! Message-level S/MIME operations (RFC 8551): the pipelines behind `sign`, `verify`, `encrypt`, `decrypt`
//! and `inspect`. They combine the MIME layer ([`crate::mime`]), the CMS layer ([`crate::ossl`]), certificate
//! checks ([`crate::cert`], [`crate::trust`]) and the stores.

pub mod decrypt;
pub mod encrypt;
pub mod harvest;
pub mod inspect;
pub mod sign;
pub mod verify;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::mime::{self, Field, Layer};

/// Messages from this size on are digested on a second thread (sign and verify).
const PARALLEL_DIGEST_MIN: usize = 1 << 20;

/// How far a digest running on a second thread got, the flag that stops it, and whether it has ended.
#[derive(Default)]
struct Progress {
    cancel: AtomicBool,
    /// Bytes digested so far.
    done: AtomicUsize,
    /// Set when the digest thread returns or unwinds (see [`Progress::running`]): whoever waits for `done` to
    /// grow must stop waiting then.
    ended: AtomicBool,
    /// Set while sign's writer bounds the input's resident pages itself (the trimmer paused), with its position
    /// in `written`: a digest far ahead of a stalled writer then drops what it has read.
    lockstep: AtomicBool,
    written: AtomicUsize,
}

impl Progress {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
    fn add(&self, n: usize) {
        self.done.fetch_add(n, Ordering::Release);
    }
    fn done(&self) -> usize {
        self.done.load(Ordering::Acquire)
    }
    fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
    /// A guard for the digest thread's body: marks the digest ended when dropped, however it ends.
    fn running(&self) -> impl Drop + '_ {
        struct Ended<'a>(&'a Progress);
        impl Drop for Ended<'_> {
            fn drop(&mut self) {
                self.0.ended.store(true, Ordering::Release);
            }
        }
        Ended(self)
    }
}

/// Waits for the digest thread `t`, meanwhile dropping from memory the pages of `data` it has passed (`skip`
/// bytes of something else came first in its stream). This thread is done with them; unmapping them while the
/// digest still runs spares the exit of the process the work (about 5 ms per 100 MiB, after everything else).
/// Only pages of a mapped input are dropped ([`crate::input::release`]).
fn release_behind<T>(
    t: &std::thread::ScopedJoinHandle<'_, T>,
    progress: &Progress,
    skip: usize,
    data: &[u8],
) {
    const STEP: usize = 4 << 20;
    let mut released = 0;
    while !t.is_finished() {
        let done = progress.done().saturating_sub(skip).min(data.len());
        if done >= released + STEP {
            crate::input::release(&data[released..done]);
            released = done;
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

/// The top level of a message: its header fields, body and what kind of S/MIME layer it is.
pub struct TopLevel<'a> {
    /// The whole message.
    pub raw: &'a [u8],
    /// Parsed header fields.
    pub fields: Vec<Field<'a>>,
    /// The body.
    pub body: &'a [u8],
    /// The S/MIME layer suggested by the Content-Type (a hint: the CMS type decides).
    pub layer: Layer,
}

/// Parses the top level of `raw`.
pub fn top_level(raw: &[u8]) -> Result<TopLevel<'_>> {
    if raw.is_empty() {
        return Err(Error::bad_input("the message is empty")
            .hint("pass an RFC 5322 message file, or pipe one on standard input"));
    }
    let ent = mime::split_entity(raw)?;
    let fields = mime::parse_headers(ent.header)?;
    let layer = match mime::content_type(&fields)? {
        Some(ct) => mime::classify(&ct),
        None => Layer::Other,
    };
    Ok(TopLevel {
        raw,
        fields,
        body: ent.body,
        layer,
    })
}

/// The error for a CMS content type a command cannot handle (compressed, digested, authenticated data…).
pub(crate) fn unsupported_cms(what: impl std::fmt::Display, wanted: &str) -> Error {
    Error::unsupported(format!("the message's CMS content is {what}, not {wanted}"))
        .hint("smimekit handles signed, enveloped and authenticated-enveloped data; 'smimekit inspect' shows what this message holds")
}

/// Decodes the body of a pkcs7-mime entity (base64 usually; binary accepted) into DER/BER.
pub fn pkcs7_der(fields: &[Field<'_>], body: &[u8]) -> Result<Vec<u8>> {
    let cte = mime::content_transfer_encoding(fields)?;
    let der = mime::decode_body(body, cte.as_deref())?;
    if der.first() != Some(&0x30) {
        // Some senders label base64 as binary or omit the header.
        if let Ok(d) = mime::decode_body(body, Some("base64"))
            && d.first() == Some(&0x30)
        {
            return Ok(d);
        }
        return Err(
            Error::bad_input("the S/MIME part does not contain a CMS structure")
                .hint("the message is damaged or not S/MIME"),
        );
    }
    Ok(der)
}

/// Searches the first level of a multipart message for an S/MIME layer that is not at the top (T26/T27): a
/// signature there covers only its own part and must never be shown as the message's.
pub fn nested_smime_parts(top: &TopLevel<'_>) -> Vec<(usize, &'static str)> {
    let Ok(Some(ct)) = mime::content_type(&top.fields) else {
        return Vec::new();
    };
    if !ct.is_multipart() {
        return Vec::new();
    }
    let Some(b) = ct.param("boundary") else {
        return Vec::new();
    };
    let Ok(mp) = mime::split_multipart(top.body, b.as_bytes()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, p) in mp.parts.iter().enumerate() {
        let Ok(e) = mime::split_entity(p) else {
            continue;
        };
        let Ok(f) = mime::parse_headers(e.header) else {
            continue;
        };
        if let Ok(Some(ct)) = mime::content_type(&f) {
            match mime::classify(&ct) {
                Layer::MultipartSigned { .. } => out.push((i + 1, "signed")),
                Layer::Pkcs7Mime { .. } => out.push((i + 1, "S/MIME")),
                Layer::Other if ct.mime == "message/rfc822" => {
                    // M4 (T26/T27): a signed message attached as message/rfc822 covers only the attachment.
                    let inner = mime::split_entity(e.body)
                        .ok()
                        .and_then(|ie| mime::parse_headers(ie.header).ok())
                        .and_then(|hf| mime::content_type(&hf).ok().flatten());
                    match inner.map(|c| mime::classify(&c)) {
                        Some(Layer::MultipartSigned { .. }) => {
                            out.push((i + 1, "attached signed message"))
                        }
                        Some(Layer::Pkcs7Mime { .. }) => {
                            out.push((i + 1, "attached S/MIME message"))
                        }
                        _ => {}
                    }
                }
                Layer::Other => {}
            }
        }
    }
    out
}
