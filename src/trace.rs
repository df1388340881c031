//! `trace`: did this message travel encrypted? Reads the Received header fields and reports, per hop, who
//! handed the message to whom, when, and whether the receiving server recorded TLS and authentication.
//!
//! The fields are parsed by mail-parser (from, by, id, date, its own guess at the TLS version and cipher); this
//! module adds the notes mail-parser does not read, in the forms the servers document: Postfix and Stalwart
//! `(using TLSv1.3 with cipher … (256/256 bits))`, Exim `with esmtps (TLS1.3) tls CIPHER` and its older
//! `(TLS-1.0:CIPHER:32)` / `(Cipher TLSv1:CIPHER:168)`, Exchange `with Microsoft SMTP Server (version=TLS1_2,
//! cipher=…)`, Gmail and Sendmail `(version=… cipher=… bits=…)`, OpenSMTPD `(TLSv1.3:CIPHER:256:NO)`, qmail
//! `with (CIPHER encrypted) SMTP`, CommuniGate `ESMTP-TLS`, and the RFC 3848 / RFC 6531 `with` types.
//!
//! Each field is written by the server that received the message; anything below the first server the reader
//! trusts could have been written by whoever sent it. [`trace`] marks those hops as claims when told where trust
//! begins (`trust_from`).

use mail_parser::{HeaderName, Host, MessageParser};
use serde::Serialize;

use crate::{Error, Result, limits};

/// What a hop's Received field records about TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsState {
    /// The receiving server recorded that TLS was used.
    Yes,
    /// The receiving server records TLS (its `with` type says so per RFC 3848) and recorded none.
    No,
    /// The field does not say (no or an unknown `with` type, no TLS note).
    Unknown,
    /// A hand-off inside one machine (pickup, `with local`, LMTP to itself, MAPI): no network, TLS not relevant.
    Local,
}

/// How far a hop's field can be believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Written by the trusted server (`--trust-from`) or a server after it.
    Trusted,
    /// Written before the message reached the trusted server: could be forged.
    Claim,
    /// No `--trust-from` given: nothing is known about who wrote it.
    Unchecked,
}

/// One hop: one Received field.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    /// Position in travel order: 1 is the first server the message reached (the bottom field).
    pub hop: usize,
    /// The `from` clause: the name the sending host gave (HELO) or its address.
    pub from: Option<String>,
    /// The sending host's address as the receiving server saw it.
    pub from_ip: Option<String>,
    /// The receiving server (`by`).
    pub by: Option<String>,
    /// The `with` clause as written (e.g. `ESMTPS`, `esmtpsa`, `Microsoft SMTP Server`).
    pub with: Option<String>,
    /// The receiving server's queue id.
    pub id: Option<String>,
    /// The time the receiving server wrote, RFC 3339.
    pub time: Option<String>,
    /// Seconds since the previous hop's time (negative: clocks disagree).
    pub delay_seconds: Option<i64>,
    /// Whether TLS was recorded.
    pub tls: TlsState,
    /// The TLS version recorded (normalised, e.g. `TLSv1.3`).
    pub tls_version: Option<String>,
    /// The cipher recorded.
    pub tls_cipher: Option<String>,
    /// What in the field showed the TLS state (e.g. `postfix "using"`, `with ESMTPS`).
    pub tls_evidence: Option<String>,
    /// Whether the field records an authenticated submission (ESMTPA/ESMTPSA, "Authenticated sender", auth=yes…).
    pub authenticated: bool,
    /// Whether this field can be believed.
    pub trust: Trust,
    /// The field, unfolded.
    pub field: String,
    #[serde(skip)]
    timestamp: Option<i64>,
}

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every hop that crossed a network recorded TLS.
    AllTls,
    /// Some hop recorded no TLS.
    NoTls,
    /// No hop recorded plain text, but some hop's server does not say.
    Unknown,
}

/// The result of [`trace`].
#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    /// Hops in travel order (first server first).
    pub hops: Vec<Hop>,
    /// The verdict.
    pub verdict: Verdict,
    /// The verdict in one sentence.
    pub verdict_text: String,
    /// The host given as where trust begins, if any.
    pub trust_from: Option<String>,
    /// The hop the trusted server wrote (the oldest one it wrote), if found.
    pub trusted_from_hop: Option<usize>,
    /// Plain statement about forgeable fields.
    pub note: String,
}

impl TraceReport {
    /// The exit code: 0 when every network hop recorded TLS, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self.verdict {
            Verdict::AllTls => 0,
            Verdict::NoTls | Verdict::Unknown => 1,
        }
    }
}

/// Traces `message` (its header section is enough). `trust_from` names the first server whose fields are
/// believed. Errors when there is no Received field or more than [`limits::TRACE_MAX_HOPS`].
pub fn trace(message: &[u8], trust_from: Option<&str>) -> Result<TraceReport> {
    let parsed = MessageParser::new()
        .parse_headers(message)
        .ok_or_else(|| Error::bad_input("this is not a mail message: no header fields found"))?;
    let raw = message;
    let mut hops = Vec::new();
    for h in parsed.headers() {
        if h.name != HeaderName::Received {
            continue;
        }
        if hops.len() >= limits::TRACE_MAX_HOPS {
            return Err(Error::limit(format!(
                "the message has more than {} Received fields",
                limits::TRACE_MAX_HOPS
            ))
            .hint("a message this deep is looping or built to exhaust readers; trace its header section by hand"));
        }
        let text = raw
            .get(h.offset_start as usize..h.offset_end as usize)
            .unwrap_or_default();
        let mut hop = parse_field_with(&String::from_utf8_lossy(text), h.value.as_received());
        hop.trust = Trust::Unchecked;
        hops.push(hop);
    }
    if hops.is_empty() {
        return Err(Error::bad_input("the message has no Received header fields")
            .hint("give the message as received (with its full header section), not a draft or a sent copy"));
    }
    // Fields are prepended by each server: the top one is the newest.
    hops.reverse();
    for (i, h) in hops.iter_mut().enumerate() {
        h.hop = i + 1;
    }
    for i in 1..hops.len() {
        if let (Some(a), Some(b)) = (hops[i - 1].timestamp, hops[i].timestamp) {
            hops[i].delay_seconds = Some(b - a);
        }
    }
    let mut trusted_from_hop = None;
    let note;
    if let Some(host) = trust_from {
        let want = norm_host(host);
        trusted_from_hop = hops
            .iter()
            .find(|h| h.by.as_deref().is_some_and(|b| norm_host(b) == want))
            .map(|h| h.hop);
        let start = trusted_from_hop.unwrap_or(usize::MAX);
        for h in &mut hops {
            h.trust = if h.hop >= start {
                Trust::Trusted
            } else {
                Trust::Claim
            };
        }
        note = match trusted_from_hop {
            Some(1) => format!("every hop was written by {host} or a server after it"),
            Some(2) => format!(
                "hop 1 was written before the message reached {host}: it is a claim and could be forged"
            ),
            Some(n) => format!(
                "hops 1–{} were written before the message reached {host}: they are claims and could be forged",
                n - 1
            ),
            // The trust boundary the user named is not in the message: nothing here can be relied on, and a
            // verdict over claims alone would look like an answer (a typo in HOST must not pass).
            None => {
                return Err(Error::bad_input(format!(
                    "no Received field of this message was written by {host}"
                ))
                .hint("check the host name given to --trust-from (the 'by' part of your provider's Received fields)"));
            }
        };
    } else {
        note = "Received fields are added by each server in turn; those written before the first server you \
                trust could be forged by the sender (name your provider's receiving server with --trust-from HOST)"
            .to_string();
    }
    let (verdict, verdict_text) = verdict(&hops);
    Ok(TraceReport {
        hops,
        verdict,
        verdict_text,
        trust_from: trust_from.map(str::to_string),
        trusted_from_hop,
        note,
    })
}

fn verdict(hops: &[Hop]) -> (Verdict, String) {
    let net: Vec<&Hop> = hops.iter().filter(|h| h.tls != TlsState::Local).collect();
    if let Some(h) = net.iter().find(|h| h.tls == TlsState::No) {
        return (
            Verdict::NoTls,
            format!("hop {} ({}) recorded no TLS", h.hop, h.route()),
        );
    }
    let unknown: Vec<String> = net
        .iter()
        .filter(|h| h.tls == TlsState::Unknown)
        .map(|h| format!("hop {} ({})", h.hop, h.route()))
        .collect();
    if !unknown.is_empty() {
        return (
            Verdict::Unknown,
            format!(
                "unknown for {} (its server does not record TLS); every other hop used TLS",
                unknown.join(", ")
            ),
        );
    }
    if net.is_empty() {
        return (
            Verdict::AllTls,
            "no hop crossed a network (local hand-offs only)".into(),
        );
    }
    (
        Verdict::AllTls,
        format!("every recorded hop used TLS ({} network hops)", net.len()),
    )
}

impl Hop {
    /// "A → B" for messages.
    pub fn route(&self) -> String {
        format!(
            "{} → {}",
            self.from
                .as_deref()
                .or(self.from_ip.as_deref())
                .unwrap_or("?"),
            self.by.as_deref().unwrap_or("?")
        )
    }
}

fn norm_host(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Parses one Received field value (the text after `Received:`, folded or not). For tests and tools that have
/// a single field.
pub fn parse_field(value: &str) -> Hop {
    let msg = format!("Received: {}\r\n\r\n", value.trim());
    let parsed = MessageParser::new().parse_headers(msg.as_bytes());
    let rec = parsed
        .as_ref()
        .and_then(|m| m.headers().first())
        .and_then(|h| h.value.as_received());
    let mut hop = parse_field_with(value, rec);
    hop.hop = 1;
    hop
}

fn host_text(h: &Host<'_>) -> String {
    match h {
        Host::Name(n) => n.to_string(),
        Host::IpAddr(ip) => ip.to_string(),
    }
}

/// One segment of a field: a word outside comments, or a whole comment (without its outer parentheses).
#[derive(Debug, PartialEq)]
enum Seg {
    Word(String),
    Comment(String),
    Semicolon,
}

/// Splits a field into top-level words, comments (nested ones kept inside) and the date's semicolon.
fn segments(s: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut depth = 0usize;
    let mut comment = String::new();
    let flush = |w: &mut String, out: &mut Vec<Seg>| {
        if !w.is_empty() {
            out.push(Seg::Word(std::mem::take(w)));
        }
    };
    for c in s.chars() {
        if depth > 0 {
            match c {
                '(' => {
                    depth += 1;
                    comment.push(c);
                }
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        out.push(Seg::Comment(
                            std::mem::take(&mut comment).trim().to_string(),
                        ));
                    } else {
                        comment.push(c);
                    }
                }
                _ => comment.push(c),
            }
            continue;
        }
        match c {
            '(' => {
                flush(&mut word, &mut out);
                depth = 1;
            }
            ';' => {
                flush(&mut word, &mut out);
                out.push(Seg::Semicolon);
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            _ => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    if depth > 0 && !comment.is_empty() {
        out.push(Seg::Comment(comment.trim().to_string()));
    }
    out
}

const CLAUSE_WORDS: [&str; 6] = ["from", "by", "via", "with", "id", "for"];

/// Normalises a TLS version as servers write it (`TLSv1.3`, `TLS1.3`, `TLS1_3`, `TLS-1.0`, `TLSv1`, `SSLv3`)
/// to OpenSSL's spelling; None when `s` is not a version.
fn tls_version(s: &str) -> Option<String> {
    let u = s
        .trim_matches(|c: char| c == ',' || c == '"')
        .to_ascii_uppercase();
    let (proto, rest) = if let Some(r) = u.strip_prefix("TLS") {
        ("TLS", r)
    } else if let Some(r) = u.strip_prefix("SSL") {
        ("SSL", r)
    } else {
        return None;
    };
    if rest.contains('/') {
        // Gmail's old "TLSv1/SSLv3": OpenSSL's name for "TLS 1.0 or later", kept as written.
        return Some(s.trim_matches(',').to_string());
    }
    let v = rest.trim_start_matches(['V', '-', '_', ' ']);
    let v = v.replace('_', ".");
    let v = match (proto, v.as_str()) {
        ("TLS", "1" | "1.0" | "10") => "1.0",
        ("TLS", "1.1" | "11") => "1.1",
        ("TLS", "1.2" | "12") => "1.2",
        ("TLS", "1.3" | "13") => "1.3",
        ("SSL", "3" | "3.0") => "3",
        ("SSL", "2" | "2.0") => "2",
        _ => return None,
    };
    Some(format!("{proto}v{v}"))
}

/// Whether `s` looks like a cipher-suite name (upper case, digits, `_` or `-`), e.g. `TLS_AES_256_GCM_SHA384`,
/// `ECDHE-RSA-AES256-GCM-SHA384`, `RSA_AES_256_CBC_SHA`.
fn looks_like_cipher(s: &str) -> bool {
    s.len() >= 4
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && s.chars().any(|c| c.is_ascii_uppercase())
}

/// The TLS a comment records, with the form recognised.
fn tls_in_comment(c: &str) -> Option<(Option<String>, Option<String>, &'static str)> {
    let lc = c.to_ascii_lowercase();
    // Postfix, Stalwart: "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) …".
    if let Some(p) = lc.find("using ") {
        let after = &c[p + 6..];
        let mut words = after.split_whitespace();
        if let Some(v) = words.next().and_then(tls_version) {
            let cipher = lc.find("with cipher ").and_then(|q| {
                c[q + 12..]
                    .split_whitespace()
                    .next()
                    .map(|s| s.trim_end_matches(',').to_string())
            });
            return Some((Some(v), cipher, "Postfix \"using … with cipher\""));
        }
    }
    // Exchange, Gmail, Sendmail: "version=TLS1_2, cipher=…", "version=TLS1_3 cipher=… bits=128/128".
    if lc.contains("version=") || lc.contains("cipher=") {
        let mut version = None;
        let mut cipher = None;
        for kv in c.split(|ch: char| ch.is_whitespace() || ch == ',') {
            if let Some((k, v)) = kv.split_once('=') {
                match k.to_ascii_lowercase().as_str() {
                    "version" => version = tls_version(v).or(Some(v.to_string())),
                    "cipher" => cipher = Some(v.to_string()),
                    _ => {}
                }
            }
        }
        if version
            .as_deref()
            .is_some_and(|v| v.starts_with("TLS") || v.starts_with("SSL"))
            || cipher.is_some()
        {
            return Some((version, cipher, "\"version=… cipher=…\""));
        }
    }
    // Exim (old), OpenSMTPD: "TLS-1.0:RSA_AES_256_CBC_SHA:32", "Cipher TLSv1:DES-CBC3-SHA:168",
    // "TLSv1.3:TLS_AES_256_GCM_SHA384:256:NO".
    let colon = c.strip_prefix("Cipher ").unwrap_or(c).trim();
    if colon.contains(':') && !colon.contains(' ') {
        let mut parts = colon.split(':');
        if let Some(v) = parts.next().and_then(tls_version) {
            let cipher = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
            return Some((Some(v), cipher, "\"VERSION:CIPHER:BITS\""));
        }
    }
    // qmail with the TLS patch: "(ECDHE-RSA-AES256-GCM-SHA384 encrypted)".
    if let Some(cipher) = c.strip_suffix(" encrypted").map(str::trim)
        && looks_like_cipher(cipher)
    {
        return Some((None, Some(cipher.to_string()), "qmail \"CIPHER encrypted\""));
    }
    None
}

/// What a `with` protocol word says: (tls, authenticated). None when it is not a known type.
fn with_type(w: &str) -> Option<(TlsState, bool)> {
    let u = w.to_ascii_uppercase();
    let base = u.as_str();
    Some(match base {
        "SMTP" | "ESMTP" | "LMTP" | "UTF8SMTP" | "UTF8LMTP" => (TlsState::No, false),
        "ESMTPA" | "LMTPA" | "UTF8SMTPA" | "UTF8LMTPA" => (TlsState::No, true),
        "ESMTPS" | "LMTPS" | "UTF8SMTPS" | "UTF8LMTPS" | "ESMTP-TLS" | "SMTPS" | "SSMTP"
        | "ESSMTP" | "HTTPS" | "IMAPS" | "POP3S" => (TlsState::Yes, false),
        "ESMTPSA" | "LMTPSA" | "UTF8SMTPSA" | "UTF8LMTPSA" | "ESSMTPA" | "SSMTPA" => {
            (TlsState::Yes, true)
        }
        "LOCAL" | "STDIN" | "SOCKET" | "MAPI" | "PICKUP" | "LOCAL-SMTP" | "LOCAL-ESMTP"
        | "LOCAL-BSMTP" => (TlsState::Local, false),
        // Web submission: the server writes HTTP whether or not the browser used HTTPS.
        "HTTP" => (TlsState::Unknown, false),
        _ => return None,
    })
}

fn parse_field_with(value: &str, rec: Option<&mail_parser::Received<'_>>) -> Hop {
    let field = value.split_whitespace().collect::<Vec<_>>().join(" ");
    let segs = segments(&field);

    // The `with` clause: the top-level words after "with" up to the next clause word or the date; comments
    // directly after it belong to it (Exim's "(TLS1.3)", qmail's "(CIPHER encrypted)", Exchange's notes).
    let mut with_words: Vec<String> = Vec::new();
    let mut from_word: Option<String> = None;
    let mut by_word: Option<String> = None;
    let mut id_word: Option<String> = None;
    let mut tls_word_cipher: Option<String> = None;
    let mut seen_with = false;
    let mut in_with = false;
    for (i, s) in segs.iter().enumerate() {
        match s {
            Seg::Semicolon => break,
            Seg::Word(w) => {
                let lw = w.to_ascii_lowercase();
                if CLAUSE_WORDS.contains(&lw.as_str()) {
                    in_with = lw == "with" && !seen_with;
                    seen_with |= lw == "with";
                    let next = segs[i + 1..].iter().find_map(|s| match s {
                        Seg::Word(w) => Some(w.clone()),
                        Seg::Semicolon => Some(String::new()),
                        Seg::Comment(_) => None,
                    });
                    let next = next.filter(|n| !n.is_empty());
                    match lw.as_str() {
                        "from" if from_word.is_none() => from_word = next,
                        "by" if by_word.is_none() => by_word = next,
                        "id" if id_word.is_none() => id_word = next,
                        _ => {}
                    }
                    continue;
                }
                // Exim: "with esmtps (TLS1.3) tls TLS_AES_256_GCM_SHA384".
                if lw == "tls"
                    && let Some(Seg::Word(c)) = segs.get(i + 1)
                {
                    tls_word_cipher = Some(c.clone());
                }
                if in_with && tls_word_cipher.is_none() && lw != "tls" {
                    with_words.push(w.clone());
                }
            }
            Seg::Comment(_) => {}
        }
    }
    // "Microsoft SMTP Server" is three words; every other type is one.
    let with_text = if with_words.is_empty() {
        None
    } else if with_words.len() >= 3 && with_words[0].eq_ignore_ascii_case("microsoft") {
        Some(with_words[..3].join(" "))
    } else {
        Some(with_words[0].clone())
    };

    let mut tls = TlsState::Unknown;
    let mut version: Option<String> = None;
    let mut cipher: Option<String> = None;
    let mut evidence: Option<String> = None;
    let mut authenticated = false;

    for s in &segs {
        match s {
            Seg::Semicolon => break,
            Seg::Comment(c) => {
                if version.is_none() && cipher.is_none() {
                    if let Some((v, ci, how)) = tls_in_comment(c) {
                        tls = TlsState::Yes;
                        version = v;
                        cipher = ci;
                        evidence = Some(how.to_string());
                    } else if let Some(v) = tls_version(c.trim()) {
                        // Exim's "(TLS1.3)" alone, cipher after "tls".
                        tls = TlsState::Yes;
                        version = Some(v);
                        cipher = tls_word_cipher.clone();
                        evidence = Some("Exim \"(TLSx) tls CIPHER\"".into());
                    }
                }
                let lc = c.to_ascii_lowercase();
                if lc.contains("authenticated sender:")
                    || lc.starts_with("authenticated")
                    || lc.contains("auth=yes")
                {
                    authenticated = true;
                }
            }
            Seg::Word(w) => {
                let lw = w.to_ascii_lowercase();
                if lw == "auth=yes" {
                    authenticated = true;
                }
            }
        }
    }
    if let Some(w) = &with_text {
        if let Some((state, auth)) = with_type(w) {
            authenticated |= auth;
            // A TLS note in a comment outranks the protocol word.
            if tls != TlsState::Yes {
                tls = state;
                evidence = Some(format!("with {w}"));
            }
        } else if w.to_ascii_lowercase().starts_with("microsoft") && tls == TlsState::Unknown {
            // Exchange writes "(version=…, cipher=…)" after its name whenever TLS was used.
            tls = TlsState::No;
            evidence = Some(format!("with {w} and no version= note"));
        }
    }
    // mail-parser's own reading, for forms this module does not know.
    if tls != TlsState::Yes
        && let Some(r) = rec
        && (r.tls_version.is_some() || r.tls_cipher.is_some())
    {
        tls = TlsState::Yes;
        version = r.tls_version.map(|v| {
            let s = format!("{v:?}");
            tls_version(&s.replace('_', ".")).unwrap_or(s)
        });
        cipher = r.tls_cipher.as_ref().map(|c| c.to_string());
        evidence = Some("mail-parser".into());
    }

    let from = rec
        .and_then(|r| r.from.as_ref().map(host_text))
        .or_else(|| from_word.clone());
    let from_ip = rec.and_then(|r| r.from_ip.map(|ip| ip.to_string()));
    let by = rec
        .and_then(|r| r.by.as_ref().map(host_text))
        .or_else(|| by_word.clone());
    let id = rec
        .and_then(|r| r.id.as_ref().map(|s| s.to_string()))
        .or(id_word);
    let date = rec.and_then(|r| r.date.as_ref()).filter(|d| d.is_valid());

    // A hand-off inside one machine: Postfix pickup ("by host (Postfix, from userid 1000)") has no from clause;
    // LMTP (or SMTP) from a host to itself does not cross a network.
    if tls != TlsState::Yes && from_word.is_none() && with_text.is_none() && by.is_some() {
        tls = TlsState::Local;
        evidence = Some("no from clause: local submission".into());
    }
    if tls == TlsState::No
        && from
            .as_deref()
            .zip(by.as_deref())
            .is_some_and(|(f, b)| norm_host(f) == norm_host(b))
        && with_text
            .as_deref()
            .is_some_and(|w| w.to_ascii_uppercase().contains("LMTP"))
    {
        tls = TlsState::Local;
        evidence = Some("LMTP from the host to itself".into());
    }

    Hop {
        hop: 0,
        from,
        from_ip,
        by,
        with: with_text,
        id,
        time: date.map(|d| d.to_rfc3339()),
        delay_seconds: None,
        tls,
        tls_version: version,
        tls_cipher: cipher.map(|c| c.trim_end_matches([',', ')']).to_string()),
        tls_evidence: evidence,
        authenticated,
        trust: Trust::Unchecked,
        field,
        timestamp: date.map(|d| d.to_timestamp()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_normalise() {
        for (i, o) in [
            ("TLSv1.3", "TLSv1.3"),
            ("TLS1.3", "TLSv1.3"),
            ("TLS1_2", "TLSv1.2"),
            ("TLS-1.0", "TLSv1.0"),
            ("TLSv1", "TLSv1.0"),
            ("SSLv3", "SSLv3"),
        ] {
            assert_eq!(tls_version(i).as_deref(), Some(o), "{i}");
        }
        assert_eq!(tls_version("TLS_AES_256_GCM_SHA384"), None);
    }

    /// One row: the field, then TLS state, version, cipher, authenticated, with, from, by, id.
    struct Row {
        field: &'static str,
        tls: TlsState,
        version: Option<&'static str>,
        cipher: Option<&'static str>,
        auth: bool,
        with: Option<&'static str>,
        by: Option<&'static str>,
        id: Option<&'static str>,
    }

    #[allow(clippy::too_many_arguments)]
    const fn r(
        field: &'static str,
        tls: TlsState,
        version: Option<&'static str>,
        cipher: Option<&'static str>,
        auth: bool,
        with: Option<&'static str>,
        by: Option<&'static str>,
        id: Option<&'static str>,
    ) -> Row {
        Row {
            field,
            tls,
            version,
            cipher,
            auth,
            with,
            by,
            id,
        }
    }

    use TlsState::{Local, No, Unknown, Yes};

    /// Header fields in the forms each server documents (Postfix smtpd_tls_received_header and pickup; Exim's
    /// received_header_text across 4.8x–4.9x with GnuTLS and OpenSSL; Exchange/Office 365; Gmail; Sendmail's
    /// default Received template with ${tls_version}/${cipher}/${cipher_bits}/${verify}; OpenSMTPD; qmail with
    /// the TLS patch; CommuniGate; Dovecot LMTP; RFC 3848 / RFC 6531 types).
    const TABLE: &[Row] = &[
        // Postfix, TLS 1.3, smtpd_tls_received_header = yes.
        r(
            "from mail.sender.example (mail.sender.example [192.0.2.10]) (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256) (No client certificate requested) by mx.example.org (Postfix) with ESMTPS id 4Q7ZxK3bV1z9sWd for <bob@example.org>; Tue, 8 Dec 2026 00:10:00 +0000 (UTC)",
            Yes,
            Some("TLSv1.3"),
            Some("TLS_AES_256_GCM_SHA384"),
            false,
            Some("ESMTPS"),
            Some("mx.example.org"),
            Some("4Q7ZxK3bV1z9sWd"),
        ),
        // Postfix, TLS 1.2, older log form.
        r(
            "from relay.example.net (relay.example.net [198.51.100.7]) (using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)) (No client certificate requested) by mx.example.org (Postfix) with ESMTPS id 3A1B2C3D4E for <bob@example.org>; Mon, 7 Dec 2026 23:59:58 +0000 (UTC)",
            Yes,
            Some("TLSv1.2"),
            Some("ECDHE-RSA-AES256-GCM-SHA384"),
            false,
            Some("ESMTPS"),
            Some("mx.example.org"),
            Some("3A1B2C3D4E"),
        ),
        // Postfix, authenticated submission with TLS (Authenticated sender note).
        r(
            "from [192.168.1.20] (unknown [203.0.113.5]) (Authenticated sender: alice@example.com) by smtp.example.com (Postfix) with ESMTPSA id 9F8E7D6C5B for <bob@example.org>; Mon, 7 Dec 2026 23:59:50 +0000 (UTC)",
            Yes,
            None,
            None,
            true,
            Some("ESMTPSA"),
            Some("smtp.example.com"),
            Some("9F8E7D6C5B"),
        ),
        // Postfix, plain relay.
        r(
            "from relay.example.net (relay.example.net [198.51.100.7]) by mx.example.org (Postfix) with ESMTP id 5B6C7D8E9F for <bob@example.org>; Mon, 7 Dec 2026 23:59:59 +0000 (UTC)",
            No,
            None,
            None,
            false,
            Some("ESMTP"),
            Some("mx.example.org"),
            Some("5B6C7D8E9F"),
        ),
        // Postfix pickup (local submission by sendmail(1)).
        r(
            "by host.example.org (Postfix, from userid 1000) id 1234ABCD; Mon, 7 Dec 2026 23:59:00 +0000 (UTC)",
            Local,
            None,
            None,
            false,
            None,
            Some("host.example.org"),
            Some("1234ABCD"),
        ),
        // Postfix, authenticated in clear (ESMTPA).
        r(
            "from client.example (client.example [203.0.113.9]) (Authenticated sender: carol) by smtp.example.com (Postfix) with ESMTPA id 77AA88BB for <d@example.org>; Mon, 7 Dec 2026 10:00:00 +0000",
            No,
            None,
            None,
            true,
            Some("ESMTPA"),
            Some("smtp.example.com"),
            Some("77AA88BB"),
        ),
        // Exim 4.9x with OpenSSL.
        r(
            "from mail.sender.example ([192.0.2.10]) by mx.example.org with esmtps (TLS1.3) tls TLS_AES_256_GCM_SHA384 (Exim 4.96) (envelope-from <a@sender.example>) id 1r2s3t-000ABC-1x for bob@example.org; Tue, 08 Dec 2026 00:10:00 +0000",
            Yes,
            Some("TLSv1.3"),
            Some("TLS_AES_256_GCM_SHA384"),
            false,
            Some("esmtps"),
            Some("mx.example.org"),
            Some("1r2s3t-000ABC-1x"),
        ),
        // Exim 4.9x, authenticated submission.
        r(
            "from [203.0.113.5] (helo=[192.168.1.20]) by smtp.example.com with esmtpsa (TLS1.2) tls TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 (Exim 4.94.2) (envelope-from <alice@example.com>) id 1kXyZa-0003Qb-Tt for bob@example.org; Mon, 07 Dec 2026 23:59:50 +0000",
            Yes,
            Some("TLSv1.2"),
            Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
            true,
            Some("esmtpsa"),
            Some("smtp.example.com"),
            Some("1kXyZa-0003Qb-Tt"),
        ),
        // Exim 4.8x with GnuTLS.
        r(
            "from mail.sender.example ([192.0.2.10]) by mx.example.org with esmtps (TLS1.2:ECDHE_RSA_AES_256_GCM_SHA384:256) (Exim 4.89) (envelope-from <a@sender.example>) id 1aBcDe-0001Fg-Hi for bob@example.org; Mon, 07 Dec 2026 12:00:00 +0100",
            Yes,
            Some("TLSv1.2"),
            Some("ECDHE_RSA_AES_256_GCM_SHA384"),
            false,
            Some("esmtps"),
            Some("mx.example.org"),
            Some("1aBcDe-0001Fg-Hi"),
        ),
        // Exim, older GnuTLS form.
        r(
            "from old.example.net ([198.51.100.3]) by mx.example.org with esmtps (TLS-1.0:RSA_AES_256_CBC_SHA:32) (Exim 4.72) (envelope-from <x@example.net>) id 1Qq2Ww-0004Ee-Rr for bob@example.org; Mon, 07 Dec 2026 12:00:00 +0000",
            Yes,
            Some("TLSv1.0"),
            Some("RSA_AES_256_CBC_SHA"),
            false,
            Some("esmtps"),
            Some("mx.example.org"),
            Some("1Qq2Ww-0004Ee-Rr"),
        ),
        // Exim, older OpenSSL form.
        r(
            "from old.example.net ([198.51.100.3]) by mx.example.org with esmtp (Cipher TLSv1:DES-CBC3-SHA:168) (Exim 4.63) id 1Hh5Jj-0006Kk-Ll for bob@example.org; Mon, 07 Dec 2026 12:00:00 +0000",
            Yes,
            Some("TLSv1.0"),
            Some("DES-CBC3-SHA"),
            false,
            Some("esmtp"),
            Some("mx.example.org"),
            Some("1Hh5Jj-0006Kk-Ll"),
        ),
        // Exim, plain.
        r(
            "from relay.example.net ([198.51.100.7] helo=relay.example.net) by mx.example.org with esmtp (Exim 4.96) (envelope-from <x@example.net>) id 1r2s3t-000DEF-2y for bob@example.org; Tue, 08 Dec 2026 00:10:00 +0000",
            No,
            None,
            None,
            false,
            Some("esmtp"),
            Some("mx.example.org"),
            Some("1r2s3t-000DEF-2y"),
        ),
        // Exim, local submission.
        r(
            "from alice by host.example.org with local (Exim 4.96) (envelope-from <alice@host.example.org>) id 1r2s3t-000GHI-3z for bob@example.org; Tue, 08 Dec 2026 00:10:00 +0000",
            Local,
            None,
            None,
            false,
            Some("local"),
            Some("host.example.org"),
            Some("1r2s3t-000GHI-3z"),
        ),
        // Exim, TLS on connect (port 465).
        r(
            "from [203.0.113.5] by smtp.example.com with essmtpa (Exim 4.96) (envelope-from <alice@example.com>) id 1r2s3t-000JKL-4a; Tue, 08 Dec 2026 00:10:00 +0000",
            Yes,
            None,
            None,
            true,
            Some("essmtpa"),
            Some("smtp.example.com"),
            Some("1r2s3t-000JKL-4a"),
        ),
        // Office 365 / Exchange Online, between Microsoft servers.
        r(
            "from AM6PR04MB5432.eurprd04.prod.outlook.com (2603:10a6:20b:fe::10) by DB8PR04MB6789.eurprd04.prod.outlook.com (2603:10a6:10:fd::15) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7452.28; Tue, 8 Dec 2026 00:10:01 +0000",
            Yes,
            Some("TLSv1.2"),
            Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
            false,
            Some("Microsoft SMTP Server"),
            Some("DB8PR04MB6789.eurprd04.prod.outlook.com"),
            Some("15.20.7452.28"),
        ),
        // Exchange Online Protection, inbound from the Internet.
        r(
            "from mail.sender.example (192.0.2.10) by DB5EUR01FT012.mail.protection.outlook.com (10.152.4.230) with Microsoft SMTP Server (version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384) id 15.20.7472.13 via Frontend Transport; Tue, 8 Dec 2026 00:10:00 +0000",
            Yes,
            Some("TLSv1.3"),
            Some("TLS_AES_256_GCM_SHA384"),
            false,
            Some("Microsoft SMTP Server"),
            Some("DB5EUR01FT012.mail.protection.outlook.com"),
            Some("15.20.7472.13"),
        ),
        // Exchange on premises, internal hop without TLS.
        r(
            "from EXCH01.corp.example (10.0.0.11) by EXCH02.corp.example (10.0.0.12) with Microsoft SMTP Server id 15.1.2507.6; Tue, 8 Dec 2026 00:10:00 +0000",
            No,
            None,
            None,
            false,
            Some("Microsoft SMTP Server"),
            Some("EXCH02.corp.example"),
            Some("15.1.2507.6"),
        ),
        // Exchange, MAPI submission by Outlook.
        r(
            "from AM6PR04MB5432.eurprd04.prod.outlook.com ([fe80::1]) by AM6PR04MB5432.eurprd04.prod.outlook.com ([fe80::1%4]) with mapi id 15.20.7452.28; Tue, 8 Dec 2026 00:09:59 +0000",
            Local,
            None,
            None,
            false,
            Some("mapi"),
            Some("AM6PR04MB5432.eurprd04.prod.outlook.com"),
            Some("15.20.7452.28"),
        ),
        // Gmail inbound.
        r(
            "from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41]) by mx.google.com with SMTPS id a1sor123456wrx.12.2026.12.07.16.10.00 for <bob@gmail.com> (Google Transport Security); Mon, 07 Dec 2026 16:10:00 -0800 (PST)",
            Yes,
            None,
            None,
            false,
            Some("SMTPS"),
            Some("mx.google.com"),
            Some("a1sor123456wrx.12.2026.12.07.16.10.00"),
        ),
        // Gmail submission with TLS 1.3.
        r(
            "from smtpclient.example ([203.0.113.5]) by smtp.gmail.com with ESMTPSA id f12-20020a05600c4e8c00b0040e3b2c4a5bsm1234567wmq.12.2026.12.07.16.09.59 for <bob@example.org> (version=TLS1_3 cipher=TLS_AES_128_GCM_SHA256 bits=128/128); Mon, 07 Dec 2026 16:09:59 -0800 (PST)",
            Yes,
            Some("TLSv1.3"),
            Some("TLS_AES_128_GCM_SHA256"),
            true,
            Some("ESMTPSA"),
            Some("smtp.gmail.com"),
            Some("f12-20020a05600c4e8c00b0040e3b2c4a5bsm1234567wmq.12.2026.12.07.16.09.59"),
        ),
        // Gmail, older form.
        r(
            "from [192.168.1.2] (host.example.net. [198.51.100.8]) by mx.google.com with ESMTPSA id abc123.2012.01.01.00.00.00 (version=TLSv1/SSLv3 cipher=OTHER); Sun, 01 Jan 2012 00:00:00 -0800 (PST)",
            Yes,
            Some("TLSv1/SSLv3"),
            Some("OTHER"),
            true,
            Some("ESMTPSA"),
            Some("mx.google.com"),
            Some("abc123.2012.01.01.00.00.00"),
        ),
        // Gmail internal hop.
        r(
            "by 2002:a05:6358:1234:b0:17a:1234:5678 with SMTP id k20csp1234567rwb; Mon, 7 Dec 2026 16:10:01 -0800 (PST)",
            No,
            None,
            None,
            false,
            Some("SMTP"),
            Some("2002:a05:6358:1234:b0:17a:1234:5678"),
            Some("k20csp1234567rwb"),
        ),
        // Gmail web submission.
        r(
            "by 2002:a05:7300:1234:b0:abc:1234:5678 with HTTP; Mon, 7 Dec 2026 16:09:58 -0800 (PST)",
            Unknown,
            None,
            None,
            false,
            Some("HTTP"),
            Some("2002:a05:7300:1234:b0:abc:1234:5678"),
            None,
        ),
        // Sendmail, STARTTLS.
        r(
            "from relay.example.net (relay.example.net [198.51.100.7]) by mx.example.org (8.17.1/8.17.1) with ESMTPS id 2B80A0Xk012345 (version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT) for <bob@example.org>; Tue, 8 Dec 2026 00:10:00 GMT",
            Yes,
            Some("TLSv1.3"),
            Some("TLS_AES_256_GCM_SHA384"),
            false,
            Some("ESMTPS"),
            Some("mx.example.org"),
            Some("2B80A0Xk012345"),
        ),
        // Sendmail, authenticated submission.
        r(
            "from [192.168.1.20] (host.example.net [203.0.113.5]) (authenticated bits=0) by smtp.example.com (8.15.2/8.15.2) with ESMTP id 2B80A0Xk012346 (version=TLSv1.2 cipher=ECDHE-RSA-AES256-GCM-SHA384 bits=256 verify=NO) for <bob@example.org>; Tue, 8 Dec 2026 00:09:00 GMT",
            Yes,
            Some("TLSv1.2"),
            Some("ECDHE-RSA-AES256-GCM-SHA384"),
            true,
            Some("ESMTP"),
            Some("smtp.example.com"),
            Some("2B80A0Xk012346"),
        ),
        // Sendmail, plain.
        r(
            "from relay.example.net (relay.example.net [198.51.100.7]) by mx.example.org (8.17.1/8.17.1) with ESMTP id 2B80A0Xk012347 for <bob@example.org>; Tue, 8 Dec 2026 00:10:00 GMT",
            No,
            None,
            None,
            false,
            Some("ESMTP"),
            Some("mx.example.org"),
            Some("2B80A0Xk012347"),
        ),
        // OpenSMTPD, authenticated with TLS.
        r(
            "from laptop.example.com (host.example.net [203.0.113.5]) by mail.example.com (OpenSMTPD) with ESMTPSA id 3f2a1b0c (TLSv1.3:TLS_AES_256_GCM_SHA384:256:NO) auth=yes user=alice for <bob@example.org>; Tue, 8 Dec 2026 01:10:00 +0100 (CET)",
            Yes,
            Some("TLSv1.3"),
            Some("TLS_AES_256_GCM_SHA384"),
            true,
            Some("ESMTPSA"),
            Some("mail.example.com"),
            Some("3f2a1b0c"),
        ),
        // OpenSMTPD, relay with TLS.
        r(
            "from mail.example.com (mail.example.com [192.0.2.20]) by mx.example.org (OpenSMTPD) with ESMTPS id 9a8b7c6d (TLSv1.2:ECDHE-RSA-AES256-GCM-SHA384:256:NO) for <bob@example.org>; Tue, 8 Dec 2026 00:10:01 +0000 (UTC)",
            Yes,
            Some("TLSv1.2"),
            Some("ECDHE-RSA-AES256-GCM-SHA384"),
            false,
            Some("ESMTPS"),
            Some("mx.example.org"),
            Some("9a8b7c6d"),
        ),
        // qmail with the TLS patch.
        r(
            "from relay.example.net (HELO relay.example.net) (198.51.100.7) by mx.example.org with (ECDHE-RSA-AES256-GCM-SHA384 encrypted) SMTP; 8 Dec 2026 00:10:00 -0000",
            Yes,
            None,
            Some("ECDHE-RSA-AES256-GCM-SHA384"),
            false,
            Some("SMTP"),
            Some("mx.example.org"),
            None,
        ),
        // qmail, plain.
        r(
            "from unknown (HELO relay.example.net) (198.51.100.7) by mx.example.org with SMTP; 8 Dec 2026 00:10:00 -0000",
            No,
            None,
            None,
            false,
            Some("SMTP"),
            Some("mx.example.org"),
            None,
        ),
        // CommuniGate Pro.
        r(
            "from [198.51.100.7] (HELO relay.example.net) by mail.example.org (CommuniGate Pro SMTP 6.3.1) with ESMTP-TLS id 12345678 for bob@example.org; Tue, 08 Dec 2026 00:10:00 +0000",
            Yes,
            None,
            None,
            false,
            Some("ESMTP-TLS"),
            Some("mail.example.org"),
            Some("12345678"),
        ),
        // Dovecot LMTP delivery on the same host.
        r(
            "from mail.example.org by mail.example.org with LMTP id kL3mN4oP5qR6sT7u (envelope-from <a@sender.example>) for <bob@example.org>; Tue, 08 Dec 2026 00:10:02 +0000",
            Local,
            None,
            None,
            false,
            Some("LMTP"),
            Some("mail.example.org"),
            Some("kL3mN4oP5qR6sT7u"),
        ),
        // RFC 6531: UTF8SMTPS and UTF8SMTPSA.
        r(
            "from mail.sender.example (mail.sender.example [192.0.2.10]) by mx.example.org with UTF8SMTPS id ABC123; Tue, 8 Dec 2026 00:10:00 +0000",
            Yes,
            None,
            None,
            false,
            Some("UTF8SMTPS"),
            Some("mx.example.org"),
            Some("ABC123"),
        ),
        r(
            "from client.example ([203.0.113.5]) by smtp.example.org with UTF8SMTPSA id DEF456; Tue, 8 Dec 2026 00:10:00 +0000",
            Yes,
            None,
            None,
            true,
            Some("UTF8SMTPSA"),
            Some("smtp.example.org"),
            Some("DEF456"),
        ),
        r(
            "from client.example ([203.0.113.5]) by smtp.example.org with UTF8SMTP id GHI789; Tue, 8 Dec 2026 00:10:00 +0000",
            No,
            None,
            None,
            false,
            Some("UTF8SMTP"),
            Some("smtp.example.org"),
            Some("GHI789"),
        ),
        // RFC 3848: LMTPS, LMTPSA, ESMTPA, LMTPA across hosts.
        r(
            "from mx.example.org (mx.example.org [192.0.2.1]) by store.example.org with LMTPS id JKL012; Tue, 8 Dec 2026 00:10:00 +0000",
            Yes,
            None,
            None,
            false,
            Some("LMTPS"),
            Some("store.example.org"),
            Some("JKL012"),
        ),
        r(
            "from mx.example.org (mx.example.org [192.0.2.1]) by store.example.org with LMTPSA id MNO345; Tue, 8 Dec 2026 00:10:00 +0000",
            Yes,
            None,
            None,
            true,
            Some("LMTPSA"),
            Some("store.example.org"),
            Some("MNO345"),
        ),
        r(
            "from mx.example.org (mx.example.org [192.0.2.1]) by store.example.org with LMTPA id PQR678; Tue, 8 Dec 2026 00:10:00 +0000",
            No,
            None,
            None,
            true,
            Some("LMTPA"),
            Some("store.example.org"),
            Some("PQR678"),
        ),
        // Stalwart (Postfix-like note).
        r(
            "from mail.sender.example (mail.sender.example [192.0.2.10]) (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384) by mail.example.org (Stalwart SMTP) with ESMTPS id 0A1B2C3D4E5F; Tue, 8 Dec 2026 00:10:00 +0000",
            Yes,
            Some("TLSv1.3"),
            Some("TLS_AES_256_GCM_SHA384"),
            false,
            Some("ESMTPS"),
            Some("mail.example.org"),
            Some("0A1B2C3D4E5F"),
        ),
        // No with clause at all (some appliances).
        r(
            "from relay.example.net ([198.51.100.7]) by filter.example.org; Tue, 8 Dec 2026 00:10:00 +0000",
            Unknown,
            None,
            None,
            false,
            None,
            Some("filter.example.org"),
            None,
        ),
    ];

    #[test]
    fn received_table() {
        assert!(TABLE.len() >= 30);
        for row in TABLE {
            let h = parse_field(row.field);
            let ctx = format!("{}\n=> {h:#?}", row.field);
            assert_eq!(h.tls, row.tls, "tls: {ctx}");
            assert_eq!(h.tls_version.as_deref(), row.version, "version: {ctx}");
            assert_eq!(h.tls_cipher.as_deref(), row.cipher, "cipher: {ctx}");
            assert_eq!(h.authenticated, row.auth, "auth: {ctx}");
            assert_eq!(h.with.as_deref(), row.with, "with: {ctx}");
            assert_eq!(h.by.as_deref(), row.by, "by: {ctx}");
            assert_eq!(h.id.as_deref(), row.id, "id: {ctx}");
            assert!(h.time.is_some(), "time: {ctx}");
        }
    }
}
