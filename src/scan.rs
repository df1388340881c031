//! `scan`: every message of Maildirs, mbox files and folders, verified in parallel with exactly `verify`'s
//! rules, with one report line per message and a summary.
//!
//! - Signed messages (multipart/signed or opaque signed-data at the top level) go through
//!   [`crate::smime::verify::verify`] itself, so a message's verdict is the one `smimekit verify` gives it with
//!   the same trust options. The options are built once per run and shared by every worker: the trust anchors,
//!   the known certificates (contacts, their intermediates, our IDs, parsed once) and a
//!   [`verify::VerifyCache`], which parses each certificate the messages carry once (by its exact DER) and
//!   validates each signer's chain once per set of message certificates instead of once per message. The
//!   validation time is fixed when the run starts (`--at`, else the start), so every message is judged at the
//!   same instant and cached chains stay exact.
//! - Encrypted messages are listed with their content cipher, their recipients, and whether one of our IDs is
//!   among them ([`crate::smime::inspect`]): nothing is decrypted and no secret is asked for. A message signed
//!   and then encrypted is an encrypted message here (its signature can only be checked after decryption).
//! - Anything else is plain (counted).
//!
//! A message that cannot be read or parsed is a per-message error in the report; the scan goes on.
//!
//! Harvesting (contacts from valid signatures) is decided per message while it is verified
//! ([`crate::smime::harvest::plan`]) and applied in message order, all at once, at the end
//! ([`commit_harvest`]: one staged [`ContactStore`], one lock, certificate files then the index, each
//! atomic) — the same contacts as `verify` run on each message in turn, except that every message is verified
//! against the contacts as they were when the scan started (a signer whose certificate only an earlier
//! message of the same scan carried is "certificate missing" here; scan again to verify those).
//!
//! Messages run on a pool of worker threads (one per core unless told otherwise); reports come back to the
//! caller's thread in message order, through a callback (JSON lines, a progress display). A cancel flag
//! (Ctrl-C) stops the workers between messages; the caller then skips the harvest (nothing is written).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use openssl::x509::X509;

use crate::cert;
use crate::contacts::ContactStore;
use crate::error::{Error, Result};
use crate::home::{Home, WriteLock};
use crate::mailbox::{self, Source};
use crate::mime::{self, Layer};
use crate::ossl::signed::{CmsType, content_type_of};
use crate::smime::harvest::{self, Harvest, Planned};
use crate::smime::{inspect, verify};

/// Days before a signer certificate's end from which the summary lists it as expiring.
const EXPIRING_DAYS: i64 = 30;

/// What a run needs; built once, shared by the workers.
pub struct ScanOptions {
    /// Verification options (anchors, known certificates, validation time). [`ScanOptions::new`] fixes the
    /// time and adds the [`verify::VerifyCache`].
    pub verify: verify::VerifyOptions,
    /// Plan harvests from valid signatures (applied by [`commit_harvest`]).
    pub harvest: bool,
    /// Fingerprints of our own IDs (never harvested as contacts).
    pub own_ids: Vec<String>,
    /// Our IDs with a label, to tell which encrypted messages one of them can open.
    pub ids: inspect::Known,
    /// Worker threads (at least 1).
    pub jobs: usize,
    /// Skip messages whose Date is before this (unix seconds); messages without a readable Date are kept.
    pub since: Option<i64>,
    /// Set (e.g. by a SIGINT handler) to stop the workers between messages.
    pub cancel: Option<&'static AtomicBool>,
}

impl ScanOptions {
    /// Options for a run with `verify`'s trust settings: the validation time is fixed now (unless set) and a
    /// [`verify::VerifyCache`] over the options' anchors and known certificates is added. `jobs` 0 means one per core.
    pub fn new(mut verify: verify::VerifyOptions, harvest: bool, jobs: usize) -> ScanOptions {
        verify.at = Some(verify.at.unwrap_or_else(cert::now));
        verify.cache = Some(Arc::new(verify::VerifyCache::new(&verify)));
        let jobs = if jobs == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            jobs
        };
        ScanOptions {
            verify,
            harvest,
            own_ids: Vec::new(),
            ids: Vec::new(),
            jobs,
            since: None,
            cancel: None,
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Signed at the top level (multipart/signed or opaque signed-data).
    Signed,
    /// Encrypted (enveloped or authEnveloped data) at the top level.
    Encrypted,
    /// Neither.
    Plain,
    /// Could not be read or parsed.
    Error,
}

/// An encrypted message, as far as it can be known without decrypting it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Encrypted {
    /// `enveloped` or `auth_enveloped`.
    pub layer: String,
    /// The content cipher.
    pub cipher: String,
    /// The recipients as the message names them (issuer+serial or key id).
    pub recipients: Vec<String>,
    /// Which of our IDs can open it, if any.
    pub opened_by: Option<String>,
}

/// The report on one message (one JSON line).
#[derive(Debug, serde::Serialize)]
pub struct MessageReport {
    /// The file.
    pub path: String,
    /// For a message of an mbox file: the offset of its `From ` line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Its Message-ID.
    pub message_id: Option<String>,
    /// What it is.
    pub kind: Kind,
    /// Signed messages: `valid`, `invalid` (verify's exit 1) or `error` (verify's exit 2: malformed, a signer's
    /// certificate missing…). Null otherwise.
    pub verdict: Option<&'static str>,
    /// The signers' certificate fingerprints (SHA-256).
    pub signers: Vec<String>,
    /// Why not valid (every failed check of every signer), or the error; notes for the other kinds.
    pub reasons: Vec<String>,
    /// Weak algorithms of a signature that is otherwise valid or not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weak: Vec<String>,
    /// The line-end or white-space change after which a mismatching signature would have matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_match_after: Option<&'static str>,
    /// Encrypted messages: cipher, recipients, and which of our IDs opens it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<Encrypted>,
    #[serde(skip)]
    signer_certs: Vec<(String, X509, bool)>,
    #[serde(skip)]
    harvest: Vec<Planned>,
    #[serde(skip)]
    skipped: bool,
}

impl MessageReport {
    fn new(path: String, offset: Option<u64>) -> MessageReport {
        MessageReport {
            path,
            offset,
            message_id: None,
            kind: Kind::Error,
            verdict: None,
            signers: Vec::new(),
            reasons: Vec::new(),
            weak: Vec::new(),
            would_match_after: None,
            encrypted: None,
            signer_certs: Vec::new(),
            harvest: Vec::new(),
            skipped: false,
        }
    }
    fn error(mut self, e: &Error) -> MessageReport {
        self.reasons.push(describe(e));
        self
    }
}

fn describe(e: &Error) -> String {
    match e.hint_text() {
        Some(h) => format!("{} ({h})", e.message()),
        None => e.message().to_string(),
    }
}

/// A signer seen in the scanned messages.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignerSeen {
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// Subject.
    pub subject: String,
    /// E-mail addresses of the certificate.
    pub emails: Vec<String>,
    /// Signed messages naming it.
    pub messages: usize,
    /// Of which valid.
    pub valid: usize,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// `expired`, `expires soon` (within 30 days of the validation time) or `valid`.
    pub status: &'static str,
}

/// Counts per verdict of the signed messages.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Verdicts {
    /// Every signer valid.
    pub valid: usize,
    /// Of the valid ones, with a weak algorithm.
    pub valid_weak: usize,
    /// Signed, but a check failed (verify's exit 1).
    pub invalid: usize,
    /// Signed, but not verifiable (verify's exit 2).
    pub error: usize,
}

/// The summary line.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Always `"summary"` (tells the summary line from the message lines).
    pub kind: &'static str,
    /// Messages reported.
    pub messages: usize,
    /// Signed messages.
    pub signed: usize,
    /// Encrypted messages.
    pub encrypted: usize,
    /// Encrypted messages one of our IDs can open.
    pub encrypted_for_you: usize,
    /// Plain messages.
    pub plain: usize,
    /// Messages or files that could not be read or parsed.
    pub errors: usize,
    /// Messages left out by `--since`.
    pub skipped: usize,
    /// Verdicts of the signed messages.
    pub verdicts: Verdicts,
    /// Signers seen, by fingerprint.
    pub signers: Vec<SignerSeen>,
    /// Signer certificates expired or expiring within 30 days.
    pub expiring: Vec<SignerSeen>,
    /// Weak algorithms, with how many messages used each.
    pub weak: BTreeMap<String, usize>,
    /// Signed messages that would have matched after a line-end or white-space change (altered in transit).
    pub would_match_after_change: usize,
    /// What harvesting did (`null` when it did not run: `--no-harvest` or an interrupted scan).
    pub contacts: Option<Harvest>,
    /// The scan was interrupted: the counts cover the messages done, nothing was written.
    pub interrupted: bool,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Path validations answered from the cache, and computed.
    pub chain_cache: (u64, u64),
}

impl Summary {
    /// The exit code: 0 when every signed message verified and every message could be read, 1 when a signed
    /// message did not verify (or could not be verified) or a message could not be read, 2 when the scan was
    /// interrupted.
    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            2
        } else if self.verdicts.invalid + self.verdicts.error + self.errors > 0 {
            1
        } else {
            0
        }
    }
}

/// The result of [`run`]: the summary and the harvests to apply, in message order.
pub struct Outcome {
    /// Counts and lists.
    pub summary: Summary,
    /// Contacts to add ([`commit_harvest`]).
    pub harvest: Vec<Planned>,
}

/// Messages to scan: what [`plan`] found.
pub struct Plan {
    items: Vec<Item>,
    maps: Vec<crate::input::Input>,
}

impl Plan {
    /// How many messages (and unreadable entries) there are: a progress display's total.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

enum Item {
    File(PathBuf),
    Mbox {
        map: usize,
        path: Arc<str>,
        m: mailbox::MboxMessage,
    },
    Unreadable(PathBuf, Error),
}

/// Finds the messages under `paths` ([`mailbox::walk`]) and maps the mbox files. A path that does not exist is
/// an error; anything unreadable below one is an entry reported as an error.
pub fn plan(paths: &[PathBuf]) -> Result<Plan> {
    let mut items = Vec::new();
    let mut maps = Vec::new();
    for s in mailbox::walk(paths)? {
        match s {
            Source::Message(p) => items.push(Item::File(p)),
            Source::Unreadable(p, e) => items.push(Item::Unreadable(p, e)),
            Source::Mbox(p) => match crate::input::read(Some(&p)) {
                Ok(data) => {
                    let path: Arc<str> = p.display().to_string().into();
                    for m in mailbox::mbox_messages(&data) {
                        items.push(Item::Mbox {
                            map: maps.len(),
                            path: path.clone(),
                            m,
                        });
                    }
                    maps.push(data);
                }
                Err(e) => items.push(Item::Unreadable(p, e)),
            },
        }
    }
    Ok(Plan { items, maps })
}

/// Scans the messages of `plan` on `opts.jobs` threads. `each` is called on the caller's thread for every
/// message, in plan order, as soon as it and all before it are done (JSON lines, progress).
pub fn run(plan: &Plan, opts: &ScanOptions, each: &mut dyn FnMut(&MessageReport)) -> Outcome {
    let started = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let mut summary = Summary {
        kind: "summary",
        ..Default::default()
    };
    let mut signers: BTreeMap<String, SignerSeen> = BTreeMap::new();
    let mut planned = Vec::new();
    let at = opts.verify.at.unwrap_or_else(cert::now);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, MessageReport)>(1024);
        for _ in 0..opts.jobs.max(1) {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || {
                loop {
                    if opts.cancelled() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = plan.items.get(i) else { break };
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        examine_item(plan, item, opts)
                    }))
                    .unwrap_or_else(|_| {
                        let mut r = MessageReport::new(item_path(item), item_offset(item));
                        r.reasons
                            .push("internal error while examining this message".into());
                        r
                    });
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Reports arrive in completion order; they are handed on in plan order.
        let mut pending: BTreeMap<usize, MessageReport> = BTreeMap::new();
        let mut want = 0;
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                want += 1;
                account(&mut summary, &mut signers, &mut planned, r, at, each);
            }
        }
        // Interrupted: what was done after a gap is still reported.
        for (_, r) in std::mem::take(&mut pending) {
            account(&mut summary, &mut signers, &mut planned, r, at, each);
        }
    });
    summary.interrupted = opts.cancelled() && next.load(Ordering::Relaxed) < plan.items.len();
    summary.signers = signers.into_values().collect();
    summary.expiring = summary
        .signers
        .iter()
        .filter(|s| s.status != "valid")
        .cloned()
        .collect();
    summary.seconds = started.elapsed().as_secs_f64();
    if let Some(c) = &opts.verify.cache {
        summary.chain_cache = c.chains.stats();
    }
    Outcome {
        summary,
        harvest: planned,
    }
}

fn account(
    summary: &mut Summary,
    signers: &mut BTreeMap<String, SignerSeen>,
    planned: &mut Vec<Planned>,
    mut r: MessageReport,
    at: i64,
    each: &mut dyn FnMut(&MessageReport),
) {
    if r.skipped {
        summary.skipped += 1;
        return;
    }
    summary.messages += 1;
    match r.kind {
        Kind::Signed => summary.signed += 1,
        Kind::Encrypted => {
            summary.encrypted += 1;
            if r.encrypted.as_ref().is_some_and(|e| e.opened_by.is_some()) {
                summary.encrypted_for_you += 1;
            }
        }
        Kind::Plain => summary.plain += 1,
        Kind::Error => summary.errors += 1,
    }
    match r.verdict {
        Some("valid") => {
            summary.verdicts.valid += 1;
            if !r.weak.is_empty() {
                summary.verdicts.valid_weak += 1;
            }
        }
        Some("invalid") => summary.verdicts.invalid += 1,
        Some(_) => summary.verdicts.error += 1,
        None => {}
    }
    let mut weak = r.weak.clone();
    weak.sort();
    weak.dedup();
    for w in weak {
        *summary.weak.entry(w).or_default() += 1;
    }
    if r.would_match_after.is_some() {
        summary.would_match_after_change += 1;
    }
    for (fp, c, valid) in std::mem::take(&mut r.signer_certs) {
        let e = signers.entry(fp.clone()).or_insert_with(|| {
            let na = cert::unix_time(c.not_after());
            SignerSeen {
                fingerprint: fp,
                subject: cert::name_to_string(c.subject_name()),
                emails: cert::emails(&c),
                messages: 0,
                valid: 0,
                not_after: cert::rfc3339(na),
                status: if na < at {
                    "expired"
                } else if na - at <= EXPIRING_DAYS * 86_400 {
                    "expires soon"
                } else {
                    "valid"
                },
            }
        });
        e.messages += 1;
        e.valid += valid as usize;
    }
    planned.append(&mut r.harvest);
    each(&r);
}

fn item_path(item: &Item) -> String {
    match item {
        Item::File(p) | Item::Unreadable(p, _) => p.display().to_string(),
        Item::Mbox { path, .. } => path.to_string(),
    }
}

fn item_offset(item: &Item) -> Option<u64> {
    match item {
        Item::Mbox { m, .. } => Some(m.offset as u64),
        _ => None,
    }
}

fn examine_item(plan: &Plan, item: &Item, opts: &ScanOptions) -> MessageReport {
    let r = MessageReport::new(item_path(item), item_offset(item));
    match item {
        Item::Unreadable(_, e) => r.error(e),
        Item::File(p) => match read_message(p) {
            Ok(data) => examine(&data, opts, r),
            Err(e) => r.error(&e),
        },
        Item::Mbox { map, m, .. } => {
            let bytes = &plan.maps[*map][m.start..m.end];
            examine(&mailbox::mbox_unquote(bytes), opts, r)
        }
    }
}

/// A message file: read into memory when small, mapped otherwise.
fn read_message(p: &std::path::Path) -> Result<std::borrow::Cow<'static, [u8]>> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).map_err(|e| Error::io("read", p, e))?;
    let meta = f.metadata().map_err(|e| Error::io("read", p, e))?;
    if !meta.is_file() {
        return Err(Error::bad_input(format!(
            "{} is not a regular file",
            p.display()
        )));
    }
    if (meta.len() as usize) < crate::limits::SCAN_READ_LIMIT {
        let mut v = Vec::with_capacity(meta.len() as usize + 1);
        f.read_to_end(&mut v).map_err(|e| Error::io("read", p, e))?;
        return Ok(v.into());
    }
    let m = crate::input::map_file(&f, p)?;
    // A large message is rare in a mailbox: copying it keeps the worker's types simple.
    Ok(m.to_vec().into())
}

/// Examines one message.
fn examine(raw: &[u8], opts: &ScanOptions, mut r: MessageReport) -> MessageReport {
    let top = match crate::smime::top_level(raw) {
        Ok(t) => t,
        Err(e) => return r.error(&e),
    };
    r.message_id = mime::field_value(&top.fields, "message-id");
    let date = mime::field_value(&top.fields, "date");
    if let Some(since) = opts.since
        && let Some(t) = date.as_deref().and_then(parse_date)
        && t < since
    {
        r.skipped = true;
        return r;
    }
    let kind = match &top.layer {
        Layer::MultipartSigned { .. } => Kind::Signed,
        Layer::Pkcs7Mime { .. } => {
            match crate::smime::pkcs7_der(&top.fields, top.body).and_then(|d| content_type_of(&d)) {
                Ok(CmsType::SignedData) => Kind::Signed,
                Ok(CmsType::EnvelopedData | CmsType::AuthEnvelopedData) => Kind::Encrypted,
                Ok(other) => {
                    r.kind = Kind::Plain;
                    r.reasons
                        .push(format!("S/MIME content smimekit does not handle: {other}"));
                    return r;
                }
                // verify decides what is wrong with it (the same error it gives).
                Err(_) => Kind::Signed,
            }
        }
        Layer::Other => Kind::Plain,
    };
    r.kind = kind;
    match kind {
        Kind::Signed => signed(raw, date.as_deref(), opts, r),
        Kind::Encrypted => encrypted(raw, opts, r),
        _ => {
            for (n, k) in crate::smime::nested_smime_parts(&top) {
                r.reasons.push(format!(
                    "part {n} is a {k} part: its signature covers only that part, not the message"
                ));
            }
            r
        }
    }
}

fn signed(
    raw: &[u8],
    date: Option<&str>,
    opts: &ScanOptions,
    mut r: MessageReport,
) -> MessageReport {
    let v = match verify::verify(raw, &opts.verify) {
        Ok(v) => v,
        Err(e) => {
            r.verdict = Some("error");
            return r.error(&e);
        }
    };
    let rep = &v.report;
    r.verdict = Some(if rep.is_valid() { "valid" } else { "invalid" });
    if r.message_id.is_none() {
        r.message_id = rep.message_id.clone();
    }
    for s in &rep.signers {
        if let Some(fp) = &s.fingerprint {
            r.signers.push(fp.clone());
            if let Some(c) = s.certificate() {
                r.signer_certs.push((fp.clone(), c.to_owned(), s.valid));
            }
        }
        for reason in &s.reasons {
            r.reasons.push(if rep.signers.len() > 1 {
                format!("signer {}: {reason}", s.index)
            } else {
                reason.clone()
            });
        }
        r.weak.extend(s.weak.iter().cloned());
        if r.would_match_after.is_none() {
            r.would_match_after = s.integrity.would_match_after;
        }
    }
    if opts.harvest && rep.is_valid() {
        r.harvest = harvest::plan(&v, date, &opts.own_ids, cert::now());
    }
    r
}

fn encrypted(raw: &[u8], opts: &ScanOptions, mut r: MessageReport) -> MessageReport {
    match inspect::inspect(raw, &opts.ids) {
        Ok(rep) => {
            let Some(l) = rep.layers.first() else {
                return r;
            };
            r.encrypted = Some(Encrypted {
                layer: l.kind.clone(),
                cipher: l.content_cipher.clone().unwrap_or_default(),
                recipients: l.recipients.iter().map(|x| x.id.clone()).collect(),
                opened_by: l.recipients.iter().find_map(|x| x.known_as.clone()),
            });
            r.reasons.extend(l.notes.iter().cloned());
            r
        }
        Err(e) => {
            r.kind = Kind::Error;
            r.error(&e)
        }
    }
}

/// An RFC 5322 date (unix seconds); `None` when it cannot be read.
fn parse_date(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc2822;
    let s = s.trim();
    // A trailing comment such as "(UTC)" is common and not part of the grammar `time` reads.
    let s = match s.find('(') {
        Some(i) => s[..i].trim_end(),
        None => s,
    };
    time::OffsetDateTime::parse(s, &Rfc2822)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Parses a `--since` value: a date (`2024-01-31`), an RFC 3339 time, or anything `--at` accepts.
pub fn parse_since(s: &str) -> Result<i64> {
    cert::parse_time(s)
}

/// Applies the planned harvests of a run in message order, under the store lock, and writes the contacts
/// once: the certificate files, then the index (each atomically). Nothing is written when nothing changes.
pub fn commit_harvest(home: &Home, lock: &WriteLock, planned: Vec<Planned>) -> Result<Harvest> {
    let mut h = Harvest::default();
    if planned.is_empty() {
        return Ok(h);
    }
    let store = ContactStore::staged(home);
    harvest::apply(&store, lock, planned, &mut h)?;
    store.commit(lock)?;
    h.notes.sort();
    h.notes.dedup();
    Ok(h)
}

/// Stops `flag`'s scan on Ctrl-C: installs a SIGINT handler that sets it (once; a second Ctrl-C ends the
/// process as usual, since the handler is reset when it runs).
pub fn stop_on_interrupt(flag: &'static AtomicBool) {
    static FLAG: std::sync::OnceLock<&'static AtomicBool> = std::sync::OnceLock::new();
    if FLAG.set(flag).is_err() {
        return;
    }
    extern "C" fn on_sigint(_: libc::c_int) {
        // Only an atomic store: async-signal-safe.
        if let Some(f) = FLAG.get() {
            f.store(true, Ordering::Relaxed);
        }
    }
    // SAFETY: sigaction with a handler that only does an atomic store (async-signal-safe); SA_RESETHAND
    // restores the default action after the first signal.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as *const () as usize;
        sa.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
}
