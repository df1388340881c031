//! Revocation checking: is a certificate of a chain revoked? From CRLs (added by the user, cached, or fetched
//! from the certificate's CRL distribution points) and OCSP (the responder named in its Authority Information
//! Access), under a policy the user controls (`off`, `prefer`, `require`; `--offline`).
//!
//! Order per certificate, cheapest and most private first: a fresh cached OCSP answer, then the CRLs already
//! known (added files, the cache), then the network: the OCSP responder, then the distribution points. Fetched
//! data is untrusted until its signature verifies: a CRL must be signed by the certificate's issuer, an OCSP
//! response by that issuer or by a delegated responder (id-kp-OCSPSigning) the issuer certified. An OCSP
//! "unknown" is never "good".
//!
//! Time rule (documented in the README): a certificate revoked for keyCompromise (or cACompromise,
//! aACompromise, an unspecified or absent reason, certificateHold or privilegeWithdrawn) invalidates every
//! signature whatever the signing time claims — that claim is made with the very key that may be stolen. A
//! certificate revoked for superseded, affiliationChanged or cessationOfOperation after the claimed signing time
//! (or after `--at`) leaves the signature valid with a warning giving both times: the key was not compromised and
//! the signature was made while the certificate was in force.

pub mod cache;
pub mod crl;
pub mod http;
pub mod ocsp;

use std::path::PathBuf;

use openssl::x509::{X509, X509Ref};

use crate::cert;
use crate::error::{Error, Result};
use crate::limits;

/// How much revocation matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Not checked; reports say "revocation not checked".
    Off,
    /// Checked (network allowed); an undeterminable status is a warning.
    #[default]
    Prefer,
    /// Checked; an undeterminable status fails the verdict (exit 1).
    Require,
}

impl std::str::FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Policy> {
        match s {
            "off" => Ok(Policy::Off),
            "prefer" => Ok(Policy::Prefer),
            "require" => Ok(Policy::Require),
            _ => Err(Error::usage(format!("unknown revocation policy '{s}'"))
                .hint("use off, prefer or require")),
        }
    }
}

/// What the revocation checker may use.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The policy.
    pub policy: Policy,
    /// Use only the cache and added CRLs: no network.
    pub offline: bool,
    /// The home folder whose `revocation/` cache is read and written (`None`: no cache).
    pub home: Option<PathBuf>,
    /// CRLs given for this command only (`--crl FILE`), DER.
    pub extra_crls: Vec<Vec<u8>>,
    /// Network fetches made so far by this command, shared by every clone of these settings (every signer,
    /// every recipient) so that [`limits::MAX_REVOCATION_FETCHES`] bounds the whole command.
    pub fetched: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for Settings {
    /// `prefer`, offline (nothing reaches the network unless a caller asks for it), no cache, no extra CRLs.
    fn default() -> Self {
        Settings {
            policy: Policy::default(),
            offline: true,
            home: None,
            extra_crls: Vec::new(),
            fetched: Default::default(),
        }
    }
}

/// The status of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not revoked, per a fresh, authentic CRL or OCSP answer.
    Good,
    /// Revoked.
    Revoked,
    /// Could not be established (see `detail`).
    Unknown,
    /// Not checked (policy off, or a trust anchor, which nothing can revoke).
    NotChecked,
}

/// Revocation facts for one certificate (JSON field `revocation`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertRevocation {
    /// Subject of the certificate.
    pub subject: String,
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// 0 for the end-entity certificate, 1 for its issuer…
    pub depth: usize,
    /// `good`, `revoked`, `unknown` or `not_checked`.
    pub status: Status,
    /// Where the answer came from: `ocsp <url>`, `crl <url>`, `crl file`, `cache` variants.
    pub source: Option<String>,
    /// When the answer was produced (OCSP thisUpdate, CRL thisUpdate), RFC 3339.
    pub checked_at: Option<String>,
    /// The revocation reason (RFC 5280 name, e.g. `keyCompromise`).
    pub reason: Option<String>,
    /// When the certificate was revoked, RFC 3339.
    pub revoked_at: Option<String>,
    /// Why the status is unknown or not checked, or what was tried.
    pub detail: Option<String>,
    #[serde(skip)]
    revoked_unix: Option<i64>,
}

impl CertRevocation {
    fn new(c: &X509Ref, depth: usize, status: Status) -> CertRevocation {
        CertRevocation {
            subject: cert::name_to_string(c.subject_name()),
            fingerprint: cert::fingerprint(c),
            depth,
            status,
            source: None,
            checked_at: None,
            reason: None,
            revoked_at: None,
            detail: None,
            revoked_unix: None,
        }
    }
}

/// What a status means for a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing to say.
    Ok,
    /// A warning line; the verdict holds.
    Warn(String),
    /// The verdict fails for this reason.
    Fail(String),
}

/// An answer from one source: good/revoked with details, or why not.
pub(crate) enum Answer {
    Good {
        source: String,
        this_update: i64,
    },
    Revoked {
        source: String,
        this_update: i64,
        reason: Option<String>,
        at: i64,
    },
}

/// Revocation reason names (RFC 5280 §5.3.1), by code.
pub fn reason_name(code: i32) -> Option<&'static str> {
    Some(match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => return None,
    })
}

/// Reasons that say the key stayed safe: a signature made before the revocation remains good.
fn is_benign(reason: Option<&str>) -> bool {
    matches!(
        reason,
        Some("superseded" | "affiliationChanged" | "cessationOfOperation")
    )
}

fn is_self_issued(c: &X509Ref) -> bool {
    c.subject_name().to_der().ok() == c.issuer_name().to_der().ok()
}

/// Checks certificates, counting network fetches against [`limits::MAX_REVOCATION_FETCHES`].
pub struct Checker {
    settings: Settings,
    now: i64,
}

impl Checker {
    /// A checker for one command.
    pub fn new(settings: &Settings) -> Checker {
        Checker {
            settings: settings.clone(),
            now: cert::now(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.settings.policy
    }

    /// Checks every certificate of `chain` (leaf first, as built by a successful path validation) but the last
    /// one, the anchor (a lone self-issued certificate is its own anchor). A lone certificate issued by someone
    /// else is `unknown`.
    pub fn check_chain(&mut self, chain: &[X509]) -> Vec<CertRevocation> {
        let mut out = Vec::new();
        for (d, c) in chain.iter().enumerate() {
            if self.settings.policy == Policy::Off {
                let mut r = CertRevocation::new(c, d, Status::NotChecked);
                r.detail = Some("revocation not checked (policy off)".into());
                out.push(r);
                continue;
            }
            // The last certificate of a validated chain is its anchor (a root, or an intermediate the user trusts).
            if d + 1 == chain.len() && d > 0 || (d == 0 && chain.len() == 1 && is_self_issued(c)) {
                let mut r = CertRevocation::new(c, d, Status::NotChecked);
                r.detail = Some("trust anchor: nothing can revoke it".into());
                out.push(r);
                continue;
            }
            match chain.get(d + 1) {
                Some(_) => out.push(self.check_cert(c, &chain[d + 1..], d)),
                None => {
                    let mut r = CertRevocation::new(c, d, Status::Unknown);
                    r.detail = Some("its issuer's certificate is not known".into());
                    out.push(r);
                }
            }
        }
        out
    }

    /// Checks `c`, whose issuer is `above[0]` (and `above` the rest of its chain).
    pub fn check_cert(&mut self, c: &X509, above: &[X509], depth: usize) -> CertRevocation {
        let issuer = &above[0];
        let mut tried: Vec<String> = Vec::new();
        let home = self.settings.home.clone();
        // 1. A fresh cached OCSP answer.
        if let Some(h) = &home {
            match ocsp::cached(h, c, issuer, self.now) {
                Ok(Some(a)) => return finish(c, depth, a, ""),
                Ok(None) => {}
                Err(e) => tried.push(e.message().to_string()),
            }
        }
        // 2. CRLs already known (cache, added files, --crl).
        let known = crl::known_crls(home.as_deref(), &self.settings.extra_crls, self.now);
        let (usable, stale) = known;
        tried.extend(
            stale
                .iter()
                .filter(|s| s.issuer_matches(c))
                .map(|s| s.note.clone()),
        );
        if !usable.is_empty() {
            match crl::check_with(c, above, &usable) {
                Ok(Some(a)) => return finish(c, depth, a, ""),
                Ok(None) => {}
                Err(e) => tried.push(e.message().to_string()),
            }
        }
        let online = !self.settings.offline;
        // 3. OCSP over the network.
        let responders: Vec<String> = c
            .ocsp_responders()
            .map(|s| s.iter().map(|u| u.to_string()).collect())
            .unwrap_or_default();
        if online {
            for url in responders.iter().take(limits::MAX_REVOCATION_URLS) {
                if !self.budget(&mut tried) {
                    break;
                }
                match ocsp::query(url, c, issuer, self.now) {
                    Ok((a, der)) => {
                        if let Some(h) = &home
                            && let Err(e) = ocsp::store(h, c, &der)
                        {
                            tried.push(format!(
                                "the OCSP answer could not be cached: {}",
                                e.message()
                            ));
                        }
                        return finish(c, depth, a, "");
                    }
                    Err(e) => tried.push(e.message().to_string()),
                }
            }
        }
        // 4. CRLs from the distribution points.
        let urls = crl::distribution_points(c);
        if online {
            for url in urls.iter().take(limits::MAX_REVOCATION_URLS) {
                if !self.budget(&mut tried) {
                    break;
                }
                match crl::fetch(url, issuer, self.now) {
                    Ok(fetched) => {
                        if let Some(h) = &home
                            && let Err(e) = cache::store_crl(h, &fetched, Some(url))
                        {
                            tried.push(format!("the CRL could not be cached: {}", e.message()));
                        }
                        let k = crl::KnownCrl {
                            crl: fetched,
                            source: format!("crl {url}"),
                        };
                        match crl::check_with(c, above, std::slice::from_ref(&k)) {
                            Ok(Some(a)) => return finish(c, depth, a, ""),
                            Ok(None) => tried.push(format!("the CRL from {url} does not cover it")),
                            Err(e) => tried.push(e.message().to_string()),
                        }
                    }
                    Err(e) => tried.push(e.message().to_string()),
                }
            }
        }
        let mut r = CertRevocation::new(c, depth, Status::Unknown);
        if responders.is_empty() && urls.is_empty() && tried.is_empty() {
            tried.push("the certificate names no OCSP responder or CRL distribution point, and no CRL of its issuer is known".into());
        } else if !online && tried.is_empty() {
            tried.push("offline, and nothing about it is in the cache".into());
        }
        r.detail = Some(tried.join("; "));
        r
    }

    fn budget(&mut self, tried: &mut Vec<String>) -> bool {
        use std::sync::atomic::Ordering;
        if self.settings.fetched.fetch_add(1, Ordering::SeqCst) >= limits::MAX_REVOCATION_FETCHES {
            tried.push(format!(
                "the limit of {} network fetches per command was reached",
                limits::MAX_REVOCATION_FETCHES
            ));
            return false;
        }
        true
    }
}

fn finish(c: &X509Ref, depth: usize, a: Answer, prefix: &str) -> CertRevocation {
    match a {
        Answer::Good {
            source,
            this_update,
        } => {
            let mut r = CertRevocation::new(c, depth, Status::Good);
            r.source = Some(format!("{prefix}{source}"));
            r.checked_at = Some(cert::rfc3339(this_update));
            r
        }
        Answer::Revoked {
            source,
            this_update,
            reason,
            at,
        } => {
            let mut r = CertRevocation::new(c, depth, Status::Revoked);
            r.source = Some(format!("{prefix}{source}"));
            r.checked_at = Some(cert::rfc3339(this_update));
            r.reason = reason;
            r.revoked_at = Some(cert::rfc3339(at));
            r.revoked_unix = Some(at);
            r
        }
    }
}

/// What `r` means for a signature with the claimed `signing_time`, validated at `at`, under `policy`.
pub fn effect(r: &CertRevocation, policy: Policy, signing_time: Option<i64>, at: i64) -> Effect {
    let who = if r.depth == 0 {
        "the signer's certificate".to_string()
    } else {
        format!("the CA certificate {}", r.subject)
    };
    match r.status {
        Status::Good | Status::NotChecked => Effect::Ok,
        Status::Unknown => {
            let why = r.detail.clone().unwrap_or_default();
            match policy {
                Policy::Require => Effect::Fail(format!(
                    "revocation status of {who} could not be established (--revocation require): {why}"
                )),
                _ => Effect::Warn(format!("revocation unknown for {who}: {why}")),
            }
        }
        Status::Revoked => {
            let reason = r.reason.as_deref().unwrap_or("no reason given");
            let when = r.revoked_at.clone().unwrap_or_default();
            let rev = r.revoked_unix.unwrap_or(i64::MIN);
            if is_benign(r.reason.as_deref()) {
                let made_before = signing_time.is_some_and(|t| t < rev);
                if made_before || at < rev {
                    return Effect::Warn(format!(
                        "{who} was revoked on {when} ({reason}), after the {}: the key was not reported compromised, so the signature stands",
                        if made_before {
                            format!(
                                "claimed signing time {}",
                                cert::rfc3339(signing_time.unwrap_or(0))
                            )
                        } else {
                            format!("validation time {}", cert::rfc3339(at))
                        }
                    ));
                }
            }
            let times = match signing_time {
                Some(t) => format!(" (signed at {} as claimed)", cert::rfc3339(t)),
                None => String::new(),
            };
            Effect::Fail(format!("{who} was REVOKED on {when} ({reason}){times}"))
        }
    }
}

/// A one-line description for reports.
pub fn describe(r: &CertRevocation) -> String {
    match r.status {
        Status::Good => format!(
            "good ({}, as of {})",
            r.source.as_deref().unwrap_or("?"),
            r.checked_at.as_deref().unwrap_or("?")
        ),
        Status::Revoked => format!(
            "REVOKED on {} ({}; {})",
            r.revoked_at.as_deref().unwrap_or("?"),
            r.reason.as_deref().unwrap_or("no reason given"),
            r.source.as_deref().unwrap_or("?")
        ),
        Status::Unknown => format!("unknown: {}", r.detail.as_deref().unwrap_or("?")),
        Status::NotChecked => match r.detail.as_deref() {
            Some(d) if d.starts_with("trust anchor") => d.to_string(),
            _ => "revocation not checked".into(),
        },
    }
}

/// What verify needs for one signer: the per-certificate facts, the warnings, and the failures (each a reason
/// that makes the signer NOT valid). `chain` is the path validation's chain (leaf first); an untrusted chain is
/// not checked at all, so that a forged message cannot make us fetch the URLs its certificates name.
pub fn check_signature_chain(
    settings: &Settings,
    leaf: &X509,
    chain: &[X509],
    trusted: bool,
    signing_time: Option<i64>,
    at: i64,
) -> (Vec<CertRevocation>, Vec<String>, Vec<String>) {
    let certs: Vec<X509> = if chain.is_empty() {
        vec![leaf.clone()]
    } else {
        chain.to_vec()
    };
    if settings.policy != Policy::Off && !trusted {
        let mut r = CertRevocation::new(leaf, 0, Status::NotChecked);
        r.detail = Some("not checked: the chain is not trusted".into());
        return (vec![r], Vec::new(), Vec::new());
    }
    let mut checker = Checker::new(settings);
    let facts = checker.check_chain(&certs);
    let mut warnings = Vec::new();
    let mut failures = Vec::new();
    for f in &facts {
        match effect(f, settings.policy, signing_time, at) {
            Effect::Ok => {}
            Effect::Warn(w) => warnings.push(w),
            Effect::Fail(e) => failures.push(e),
        }
    }
    (facts, warnings, failures)
}

/// Report lines (`  Revocation:    …`), one per certificate checked; "revocation not checked" under `off`.
pub fn render_lines(facts: &[CertRevocation]) -> String {
    if facts.iter().all(|f| f.status == Status::NotChecked)
        && facts.iter().any(|f| {
            f.detail
                .as_deref()
                .is_some_and(|d| d.contains("policy off"))
        })
    {
        return "  Revocation:    revocation not checked (--revocation off)\n".into();
    }
    let mut s = String::new();
    for f in facts {
        if f.status == Status::NotChecked && f.depth > 0 {
            continue; // the anchor
        }
        let who = if f.depth == 0 {
            String::new()
        } else {
            format!("[CA {}] ", f.subject)
        };
        s += &format!("  Revocation:    {who}{}\n", describe(f));
    }
    s
}

/// What revocation says about encrypting to `cert` (its validated `chain`, leaf first): a revoked certificate is
/// refused whatever the reason (a superseded certificate's key may be retired); unknown is a warning under
/// `prefer` and a refusal under `require`. Untrusted chains are not checked (nothing to ask about).
pub fn check_recipient(settings: &Settings, chain: &[X509], trusted: bool) -> Effect {
    if settings.policy == Policy::Off || !trusted || chain.is_empty() {
        return Effect::Ok;
    }
    let mut checker = Checker::new(settings);
    let facts = checker.check_chain(chain);
    let mut warn = Vec::new();
    for f in &facts {
        let who = if f.depth == 0 {
            "the certificate".to_string()
        } else {
            format!("its CA {}", f.subject)
        };
        match f.status {
            Status::Revoked => {
                return Effect::Fail(format!(
                    "{who} was REVOKED on {} ({})",
                    f.revoked_at.as_deref().unwrap_or("?"),
                    f.reason.as_deref().unwrap_or("no reason given")
                ));
            }
            Status::Unknown if settings.policy == Policy::Require => {
                return Effect::Fail(format!(
                    "revocation status of {who} could not be established (--revocation require): {}",
                    f.detail.as_deref().unwrap_or("?")
                ));
            }
            Status::Unknown => warn.push(format!(
                "revocation unknown for {who}: {}",
                f.detail.as_deref().unwrap_or("?")
            )),
            _ => {}
        }
    }
    if warn.is_empty() {
        Effect::Ok
    } else {
        Effect::Warn(warn.join("; "))
    }
}

/// Revocation status from the cache alone (no network), for listings: `id list/show`, `contact list/show`.
pub struct CachedLookup {
    settings: Settings,
    issuers: Vec<X509>,
}

impl CachedLookup {
    /// A lookup in the cache of the home at `root`, with `issuers` as candidate issuer certificates (anchors,
    /// ID chains, contact intermediates).
    pub fn new(root: &std::path::Path, issuers: Vec<X509>) -> CachedLookup {
        CachedLookup {
            settings: Settings {
                policy: Policy::Prefer,
                offline: true,
                home: Some(root.to_path_buf()),
                extra_crls: Vec::new(),
                fetched: Default::default(),
            },
            issuers,
        }
    }

    /// The cached status of `c`; `None` when its issuer is unknown or it is self-issued.
    pub fn status(&self, c: &X509) -> Option<CertRevocation> {
        let issuer_name = c.issuer_name().to_der().ok()?;
        if c.subject_name().to_der().ok()? == issuer_name {
            return None;
        }
        let issuer = self.issuers.iter().find(|i| {
            i.subject_name().to_der().ok().as_deref() == Some(&issuer_name[..])
                && i.public_key()
                    .ok()
                    .is_some_and(|k| c.verify(&k).unwrap_or(false))
        })?;
        let _ = openssl::error::ErrorStack::get();
        let mut checker = Checker::new(&self.settings);
        Some(checker.check_cert(c, std::slice::from_ref(issuer), 0))
    }
}

/// A listing flag for a status: `  [REVOKED]`, or nothing.
pub fn list_flag(r: Option<&CertRevocation>) -> &'static str {
    match r.map(|r| r.status) {
        Some(Status::Revoked) => "  [REVOKED]",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked(reason: &str, at: i64) -> CertRevocation {
        CertRevocation {
            subject: "CN=x".into(),
            fingerprint: "00".into(),
            depth: 0,
            status: Status::Revoked,
            source: Some("crl file".into()),
            checked_at: None,
            reason: Some(reason.into()),
            revoked_at: Some(cert::rfc3339(at)),
            detail: None,
            revoked_unix: Some(at),
        }
    }

    #[test]
    fn time_rule() {
        let (signed, rev, now) = (1_000_000, 2_000_000, 3_000_000);
        // keyCompromise: fatal whatever the signing time or --at says.
        assert!(matches!(
            effect(
                &revoked("keyCompromise", rev),
                Policy::Prefer,
                Some(signed),
                now
            ),
            Effect::Fail(_)
        ));
        assert!(matches!(
            effect(&revoked("keyCompromise", rev), Policy::Prefer, None, signed),
            Effect::Fail(_)
        ));
        assert!(matches!(
            effect(
                &revoked("unspecified", rev),
                Policy::Prefer,
                Some(signed),
                now
            ),
            Effect::Fail(_)
        ));
        // superseded after the signing time: a warning with both times.
        match effect(
            &revoked("superseded", rev),
            Policy::Prefer,
            Some(signed),
            now,
        ) {
            Effect::Warn(w) => assert!(w.contains("after the claimed signing time"), "{w}"),
            e => panic!("{e:?}"),
        }
        // superseded before the signing time, or with no signing time and --at after: fatal.
        assert!(matches!(
            effect(
                &revoked("superseded", rev),
                Policy::Prefer,
                Some(rev + 1),
                now
            ),
            Effect::Fail(_)
        ));
        assert!(matches!(
            effect(&revoked("superseded", rev), Policy::Prefer, None, now),
            Effect::Fail(_)
        ));
        // --at before a superseded revocation: a warning.
        assert!(matches!(
            effect(&revoked("superseded", rev), Policy::Prefer, None, signed),
            Effect::Warn(_)
        ));
    }

    #[test]
    fn the_fetch_budget_is_per_command() {
        let leaf =
            X509::from_pem(include_bytes!("../../fixtures/revocation/ocsp-down.pem")).unwrap();
        let root = X509::from_pem(include_bytes!("../../fixtures/revocation/root.pem")).unwrap();
        let settings = Settings {
            offline: false,
            ..Settings::default()
        };
        // Another signer of the same command used the whole budget: no connection is attempted.
        let other = settings.clone();
        other.fetched.store(
            limits::MAX_REVOCATION_FETCHES,
            std::sync::atomic::Ordering::SeqCst,
        );
        let r = Checker::new(&settings).check_cert(&leaf, &[root], 0);
        assert_eq!(r.status, Status::Unknown);
        assert!(
            r.detail
                .unwrap()
                .contains("network fetches per command was reached")
        );
    }

    #[test]
    fn unknown_follows_the_policy() {
        let mut r = revoked("x", 0);
        r.status = Status::Unknown;
        r.detail = Some("responder down".into());
        assert!(
            matches!(effect(&r, Policy::Prefer, None, 0), Effect::Warn(w) if w.starts_with("revocation unknown"))
        );
        assert!(matches!(
            effect(&r, Policy::Require, None, 0),
            Effect::Fail(_)
        ));
        r.status = Status::NotChecked;
        assert_eq!(effect(&r, Policy::Off, None, 0), Effect::Ok);
    }
}
