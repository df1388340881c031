//! Signing a message: the top-level headers stay outside, the body with its Content-* fields becomes the
//! signed entity (made safe to sign first, RFC 8551 §3.1), and the output is multipart/signed (default) or
//! opaque application/pkcs7-mime signed-data.

use std::io::Write;

use std::thread::ScopedJoinHandle;

use openssl::error::ErrorStack;
use openssl::md_ctx::MdCtx;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509Ref};

use std::sync::atomic::Ordering;

use super::{PARALLEL_DIGEST_MIN, Progress};
use crate::cert::{self, CertInfo};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::ids::{IdStore, Identity};
use crate::mime;
use crate::ossl::signed::{self, Capability, DetachedSigner, Digest, SignParams};

/// How to sign.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignOptions {
    /// The digest algorithm.
    pub digest: Digest,
    /// RSASSA-PSS instead of PKCS#1 v1.5 (RSA keys only).
    pub pss: bool,
    /// application/pkcs7-mime signed-data instead of multipart/signed.
    pub opaque: bool,
}

/// Chooses the signing ID: `--as`, else the ID whose address matches From:, else the only ID. Refuses IDs
/// that cannot sign e-mail or are not valid now, with the reason.
pub fn choose_signer(home: &Home, raw: &[u8], as_id: Option<&str>) -> Result<Identity> {
    let store = IdStore::new(home);
    let id = match as_id {
        Some(q) => store.find(q)?,
        None => {
            let top = super::top_level(raw)?;
            let from = mime::from(&top.fields)?;
            let all = store.list()?;
            let now = cert::now();
            let usable = |i: &Identity| {
                let info = i.info(now);
                info.can_sign && !info.expired && !info.not_yet_valid
            };
            match from {
                Some(f) => {
                    let mut mine: Vec<Identity> = all
                        .into_iter()
                        .filter(|i| crate::address::contains(&i.emails(), &f.addr))
                        .collect();
                    // Prefer an ID that can sign now, then the newest.
                    mine.sort_by_key(|i| {
                        (
                            !usable(i),
                            std::cmp::Reverse(cert::unix_time(i.cert.not_before())),
                        )
                    });
                    mine.into_iter().next().ok_or_else(|| {
                        Error::not_found(format!("no digital ID for the From address {}", f.addr))
                            .hint("import one with 'smimekit id import', or pick one with --as ID")
                    })?
                }
                None if all.len() == 1 => all.into_iter().next().expect("one"),
                None if all.is_empty() => {
                    return Err(Error::not_found("no digital ID to sign with")
                        .hint("import one with 'smimekit id import FILE.p12' or create a test ID with 'smimekit id new'"));
                }
                None => {
                    return Err(Error::usage(
                        "the message has no From header and you have several IDs",
                    )
                    .hint("pick one with --as ADDRESS"));
                }
            }
        }
    };
    check_can_sign(&id)?;
    Ok(id)
}

/// Refuses an ID that cannot sign e-mail now.
pub fn check_can_sign(id: &Identity) -> Result<()> {
    let info = CertInfo::new(&id.cert, cert::now());
    if info.expired {
        return Err(Error::unusable(format!(
            "the ID {} expired on {}",
            id.label(),
            info.not_after
        ))
        .hint("renew the certificate with your CA ('smimekit id new --csr') and install it"));
    }
    if info.not_yet_valid {
        return Err(Error::unusable(format!(
            "the ID {} is not valid before {}",
            id.label(),
            info.not_before
        ))
        .hint("sign with it from that date on, or with another ID now (--as ID); check the computer's clock"));
    }
    if !info.can_sign {
        return Err(Error::unusable(format!(
            "the ID {} cannot sign e-mail (key usage: {}; extended key usage: {})",
            id.label(),
            if info.key_usage_present {
                info.key_usage.join(", ")
            } else {
                "any".into()
            },
            if info.extended_key_usage.is_empty() {
                "any".into()
            } else {
                info.extended_key_usage.join(", ")
            }
        ))
        .hint(
            "use an ID whose certificate allows digitalSignature and emailProtection (--as ID)",
        ));
    }
    Ok(())
}

/// The chain to include: intermediates, not self-signed roots.
pub(crate) fn chain_to_include(id: &Identity) -> Vec<X509> {
    id.chain
        .iter()
        .filter(|c| {
            let self_signed = c.subject_name().to_der().ok() == c.issuer_name().to_der().ok();
            !self_signed
        })
        .cloned()
        .collect()
}

/// The certificate correspondents should encrypt to: the signing ID if it can decrypt, else another valid ID
/// for the same address that can.
fn encryption_cert(home: &Home, id: &Identity) -> Option<X509> {
    if cert::can_encrypt(&id.cert) {
        return None;
    }
    let now = cert::now();
    let store = IdStore::new(home);
    id.emails()
        .first()
        .and_then(|a| store.for_address(a).ok())
        .and_then(|v| {
            v.into_iter()
                .find(|i| {
                    let info = i.info(now);
                    info.can_encrypt && !info.expired
                })
                .map(|i| i.cert)
        })
}

/// Signs `raw` (an RFC 5322 message) with `id` and writes the signed message to `out`.
///
/// The body is never copied when it is already safe to sign: it streams from `raw` (which may be a memory map)
/// into `out`. For a detached signature of a large message the digest runs on a second thread — started before
/// the safety check, on the bet that the message can be signed as it stands (thrown away if it must be
/// re-encoded) — while this thread checks and writes, so signing costs about one digest pass.
pub fn sign_message(
    home: &Home,
    raw: &[u8],
    id: &Identity,
    key: &PKey<Private>,
    opts: &SignOptions,
    out: &mut dyn Write,
) -> Result<()> {
    sign_message_with(home, raw, opts, out, || Ok((id.clone(), key.clone()))).map(|_| ())
}

/// [`sign_message`] with the ID that `choose` returns (with its unlocked key), for example
/// [`choose_signer`] and asking for the passphrase. The digest of a large message starts before `choose` is
/// called, so the two overlap. Returns the ID that signed.
pub fn sign_message_with(
    home: &Home,
    raw: &[u8],
    opts: &SignOptions,
    out: &mut dyn Write,
    choose: impl FnOnce() -> Result<(Identity, PKey<Private>)>,
) -> Result<Identity> {
    let parts = mime::split_message_parts(raw)?;
    if opts.opaque {
        let (id, key) = choose()?;
        let (chain, enc) = (chain_to_include(&id), encryption_cert(home, &id));
        let params = params(&id, &key, &chain, enc.as_deref(), opts);
        let prep = mime::prepare_for_signing_parts(&parts.content_header, parts.body)?;
        sign_opaque(&parts.outer, &prep.head, &prep.body, &params, out)?;
        return Ok(id);
    }
    let progress = Progress::default();
    let pieces = [parts.content_header.as_slice(), parts.body];
    std::thread::scope(|s| {
        let guess = (raw.len() >= PARALLEL_DIGEST_MIN)
            .then(|| s.spawn(|| digest(opts.digest, &pieces, &progress)));
        let chosen = choose();
        let (id, key) = match chosen {
            Ok(c) => c,
            Err(e) => {
                progress.cancel();
                return Err(e);
            }
        };
        let (chain, enc) = (chain_to_include(&id), encryption_cert(home, &id));
        let params = params(&id, &key, &chain, enc.as_deref(), opts);
        let prep = mime::prepare_for_signing_parts(&parts.content_header, parts.body);
        // The guess holds only if the prepared entity is the very bytes it digests.
        let same = |a: &[u8], b: &[u8]| a.as_ptr() == b.as_ptr() && a.len() == b.len();
        let guess = match &prep {
            Ok(p) if same(&p.head, pieces[0]) && same(&p.body, pieces[1]) => guess,
            _ => {
                progress.cancel();
                None
            }
        };
        let prep = prep?;
        let fresh = Progress::default();
        let progress = if guess.is_some() { &progress } else { &fresh };
        let r = sign_detached(
            &parts.outer,
            &prep.head,
            &prep.body,
            &params,
            out,
            guess,
            progress,
        );
        if r.is_err() {
            progress.cancel(); // an unusable key: stop the guess, which nobody will wait for
        }
        r.map(|()| id)
    })
}

/// The digest state of `pieces` one after the other (for [`DetachedSigner::adopt_digest`]), counting in
/// `progress`; `None` if it was cancelled before the end.
fn digest(d: Digest, pieces: &[&[u8]], progress: &Progress) -> Result<Option<MdCtx>> {
    // 1 MiB slices: large enough to cost nothing, small enough to notice a cancel soon. (Trimming a large input
    // is left to the other thread: this one is the slowest, so its time is the signing time.)
    const SLICE: usize = 1 << 20;
    // How far the digest may run ahead of a writer in lockstep (see write_entity) before it drops what it read.
    const LAG: usize = 32 << 20;
    let _ended = progress.running();
    let fail = |e| Error::crypto("cannot digest the content", e);
    let mut ctx = MdCtx::new().map_err(fail)?;
    ctx.digest_init(d.md()).map_err(fail)?;
    for piece in pieces {
        for chunk in piece.chunks(SLICE) {
            if progress.cancelled() {
                return Ok(None);
            }
            ctx.digest_update(chunk).map_err(fail)?;
            progress.add(chunk.len());
            if progress.lockstep.load(Ordering::Relaxed)
                && progress.done() > progress.written.load(Ordering::Relaxed) + LAG
            {
                crate::input::release(chunk);
            }
        }
    }
    Ok(Some(ctx))
}

fn params<'a>(
    id: &'a Identity,
    key: &'a PKey<Private>,
    chain: &'a [X509],
    enc: Option<&'a X509Ref>,
    opts: &SignOptions,
) -> SignParams<'a> {
    SignParams {
        cert: &id.cert,
        key,
        chain,
        digest: opts.digest,
        pss: opts.pss,
        detached: !opts.opaque,
        capabilities: Capability::defaults_for(key),
        encryption_cert: enc,
    }
}

type Feeding<'scope> = ScopedJoinHandle<'scope, Result<Option<MdCtx>>>;

/// multipart/signed: the entity (`head` then `body`) is written as part 1 while its digest is computed — on
/// another thread for a large entity (`guess` is one already running over the same bytes) — then signed.
fn sign_detached(
    outer: &[u8],
    head: &[u8],
    body: &[u8],
    params: &SignParams<'_>,
    out: &mut dyn Write,
    guess: Option<Feeding<'_>>,
    progress: &Progress,
) -> Result<()> {
    let pieces = [head, body];
    // A random 128-bit boundary; the writer refuses (at finish) an entity that contains it anyway.
    let boundary = mime::choose_boundary(head);
    // Made first: it refuses an unusable key before anything is written.
    let mut signer = DetachedSigner::new(params)?;
    std::thread::scope(|s| {
        let running = match guess {
            Some(g) => Some(g),
            None if head.len() + body.len() >= PARALLEL_DIGEST_MIN => {
                Some(s.spawn(|| digest(params.digest, &pieces, progress)))
            }
            None => None,
        };
        let written = write_entity(
            &mut *out,
            outer,
            params.digest.micalg(),
            &boundary,
            (head, body),
            running.as_ref().map(|_| progress),
        );
        if written.is_err() {
            progress.cancel();
        }
        let digested = match running {
            Some(t) => {
                if written.is_ok() {
                    super::release_behind(&t, progress, head.len(), body);
                }
                t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            }
            None => digest(params.digest, &pieces, progress),
        };
        // The trimming pause (if any) ends here, once the digest is done.
        let (w, _pause) = written.map_err(Error::output)?;
        let ctx = digested?
            .ok_or_else(|| Error::crypto("the digest was cancelled", ErrorStack::get()))?;
        signer.adopt_digest(&ctx)?;
        let der = signer.finish()?;
        w.finish(&der).map_err(Error::output)?;
        Ok(())
    })
}

/// The multipart/signed header and part 1, and the trimming pause it took (keep it until the digest is done).
///
/// Each 1 MiB goes through a buffer: writing straight from a memory map whose pages are being dropped makes the
/// kernel's copy fail and retry (at 1 GiB the write took twice as long). With a digest thread reporting in
/// `progress` over a large (trimmed) mapped input, once this thread has caught up with the digest it pauses the
/// trimmer, stays at most [`WINDOW`] ahead of the digest and drops the pages both have passed: each page is then
/// faulted in once, by the writer, and is still mapped when the digest reads it.
fn write_entity<'o>(
    out: &'o mut dyn Write,
    outer: &[u8],
    micalg: &str,
    boundary: &str,
    (head, body): (&[u8], &[u8]),
    progress: Option<&Progress>,
) -> std::io::Result<(
    mime::MultipartSignedWriter<&'o mut dyn Write>,
    Option<crate::input::TrimPause>,
)> {
    const CHUNK: usize = 1 << 20;
    const WINDOW: usize = 8 << 20;
    let mut w = mime::MultipartSignedWriter::begin(out, outer, micalg, boundary)?;
    w.write_all(head)?;
    let mut buf = Vec::with_capacity(CHUNK);
    let mut pause: Option<crate::input::TrimPause> = None;
    let mut released = 0;
    for (i, chunk) in body.chunks(CHUNK).enumerate() {
        let at = i * CHUNK;
        if let Some(p) = progress {
            let digested = || p.done().saturating_sub(head.len());
            if pause.is_none() && at >= digested() {
                let paused = crate::input::pause_trim(body);
                p.lockstep.store(paused.active(), Ordering::Relaxed);
                pause = Some(paused);
            }
            p.written.store(head.len() + at, Ordering::Relaxed);
            if pause.as_ref().is_some_and(|p| p.active()) {
                while at > digested() + WINDOW && !p.cancelled() && !p.ended() {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
                let behind = digested().min(at);
                if behind >= released + CHUNK {
                    crate::input::release(&body[released..behind]);
                    released = behind;
                }
            }
        }
        buf.clear();
        buf.extend_from_slice(chunk);
        w.write_all(&buf)?;
        crate::input::trim_due();
    }
    Ok((w, pause))
}

/// application/pkcs7-mime signed-data: the content is embedded, so OpenSSL holds it.
fn sign_opaque(
    outer: &[u8],
    head: &[u8],
    body: &[u8],
    params: &SignParams<'_>,
    out: &mut dyn Write,
) -> Result<()> {
    let mut content = std::io::Read::chain(head, body);
    let der = signed::sign(params, &mut content, None)?;
    mime::write_pkcs7_mime(out, outer, "signed-data", &der).map_err(Error::output)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{self, KeySpec};
    use crate::smime::verify;

    /// A large input with a page trimmer (forced here with a low threshold; the CLI uses 256 MiB) takes the
    /// lockstep path: trimming paused once the writer catches up with the digest, pages dropped behind both.
    /// The signature must verify over exactly the bytes written.
    #[test]
    fn trimmed_large_input_signs_in_lockstep() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(&dir.path().join("h")).unwrap();
        let key = ids::generate_key(KeySpec::EcP256).unwrap();
        let cert = ids::self_signed(&key, "alice@example.com", None, 30).unwrap();
        {
            let _l = home.lock().unwrap();
            IdStore::new(&home).add(&key, &cert, &[], None).unwrap();
        }
        let id = IdStore::new(&home).find("alice@example.com").unwrap();
        let key = id.unlock(None).unwrap();
        let mut msg = b"From: alice@example.com\r\nSubject: big\r\n\r\n".to_vec();
        let line =
            b"0123456789 the quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n";
        while msg.len() < 40 << 20 {
            msg.extend_from_slice(line);
        }
        let path = dir.path().join("big.eml");
        std::fs::write(&path, &msg).unwrap();
        let input = crate::input::read_with(Some(&path), 1 << 20).unwrap();
        assert!(input.is_trimmed());
        let mut out = Vec::new();
        sign_message(&home, &input, &id, &key, &SignOptions::default(), &mut out).unwrap();
        drop(input);
        let opts = verify::VerifyOptions {
            anchors: vec![cert.clone()],
            system_trust: false,
            at: None,
            known_certs: vec![],
            no_address_check: false,
            revocation: Default::default(),
            cache: None,
        };
        let v = verify::verify(&out, &opts).unwrap();
        assert!(v.report.is_valid(), "{}", verify::render(&v.report));
        assert!(v.content().ends_with(line), "the whole body was signed");
        assert_eq!(
            v.content().len(),
            msg.len() - 39 + "Content-Type: text/plain; charset=us-ascii\r\n".len()
        );
    }
}
