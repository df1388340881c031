//! CRLs: finding them (added files, the cache, distribution points), fetching them (size-capped, signature
//! checked before anything keeps them) and asking OpenSSL whether one revokes a certificate.
//!
//! The decision itself is OpenSSL's (`X509_V_FLAG_CRL_CHECK` with extended CRL support and delta CRLs: issuing
//! distribution points, indirect CRLs, the issuer's cRLSign usage, signature), run on the chain path validation
//! already built. Time bounds are ours, against the current time: a CRL is used only from its thisUpdate (with
//! a little skew) to its nextUpdate, so that `--at` in the past can still use today's CRL.

use std::path::Path;

use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{CrlStatus, X509, X509Crl, X509CrlRef, X509Ref, X509StoreContext};

use super::{Answer, cache, http, reason_name};
use crate::cert;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::limits;

/// A CRL and where it came from.
pub struct KnownCrl {
    /// The CRL.
    pub crl: X509Crl,
    /// `crl <url>`, `crl cache`, `crl file`.
    pub source: String,
}

/// A known CRL that is not usable now, and why.
pub struct StaleCrl {
    issuer_der: Vec<u8>,
    /// Why it is not used.
    pub note: String,
}

impl StaleCrl {
    /// True if this CRL is from `c`'s issuer.
    pub fn issuer_matches(&self, c: &X509Ref) -> bool {
        c.issuer_name().to_der().ok().as_deref() == Some(&self.issuer_der[..])
    }
}

/// Parses a CRL file or download: DER or PEM.
pub fn parse(data: &[u8]) -> Result<X509Crl> {
    if data.len() > limits::MAX_CRL_BYTES {
        return Err(Error::limit(format!(
            "the CRL is larger than {} bytes",
            limits::MAX_CRL_BYTES
        )));
    }
    X509Crl::from_der(data)
        .or_else(|_| X509Crl::from_pem(data))
        .map_err(|e| Error::bad_input("not a CRL (DER or PEM)").detail(e))
}

/// Why `crl` may not be used at `now`, if it may not.
pub fn freshness(crl: &X509CrlRef, now: i64) -> Option<String> {
    let this = cert::unix_time(crl.last_update());
    if this > now + limits::REVOCATION_SKEW_SECS {
        return Some(format!(
            "its thisUpdate {} is in the future",
            cert::rfc3339(this)
        ));
    }
    match crl.next_update() {
        Some(n) if cert::unix_time(n) < now => Some(format!(
            "it is past its nextUpdate ({}): out of date",
            cert::rfc3339(cert::unix_time(n))
        )),
        _ => None,
    }
}

/// The CRLs usable now (from the cache and `extra`) and the ones that are not, with why.
pub fn known_crls(
    home: Option<&Path>,
    extra: &[Vec<u8>],
    now: i64,
) -> (Vec<KnownCrl>, Vec<StaleCrl>) {
    let mut all: Vec<KnownCrl> = extra
        .iter()
        .filter_map(|d| X509Crl::from_der(d).ok())
        .map(|crl| KnownCrl {
            crl,
            source: "crl file or message".into(),
        })
        .collect();
    if let Some(root) = home
        && root.join(cache::CRL_DIR).exists()
        && let Ok(h) = Home::open(root)
        && let Ok(list) = cache::list_crls(&h)
    {
        all.extend(list.into_iter().map(|(_, crl)| KnownCrl {
            crl,
            source: "crl cache".into(),
        }));
    }
    let mut usable = Vec::new();
    let mut stale = Vec::new();
    for k in all {
        match freshness(&k.crl, now) {
            None => usable.push(k),
            Some(why) => stale.push(StaleCrl {
                issuer_der: k.crl.issuer_name().to_der().unwrap_or_default(),
                note: format!(
                    "the {} of {} is not used: {why}",
                    k.source.replace("crl ", "CRL from the "),
                    cert::name_to_string(k.crl.issuer_name())
                ),
            }),
        }
    }
    (usable, stale)
}

/// The http:// URLs of `c`'s CRL distribution points (others are not fetched).
pub fn distribution_points(c: &X509Ref) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(dps) = c.crl_distribution_points() {
        for dp in &dps {
            if let Some(names) = dp.distpoint().and_then(|n| n.fullname()) {
                for n in names {
                    if let Some(u) = n.uri() {
                        out.push(u.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Fetches the CRL at `url`, which must be `issuer`'s (name and signature) and current.
pub fn fetch(url: &str, issuer: &X509Ref, now: i64) -> Result<X509Crl> {
    let u = http::Url::parse(url)?;
    let data = http::get(&u, limits::MAX_CRL_BYTES).map_err(|e| {
        if e.kind() == crate::error::ErrorKind::Limit {
            Error::limit(format!(
                "the CRL at {url} is larger than {} MiB: refused",
                limits::MAX_CRL_BYTES >> 20
            ))
        } else {
            e
        }
    })?;
    let crl = parse(&data).map_err(|e| e.context(format!("the data at {url}")))?;
    if crl.issuer_name().to_der()? != issuer.subject_name().to_der()? {
        return Err(Error::bad_input(format!(
            "the CRL at {url} is issued by {}, not by the certificate's issuer",
            cert::name_to_string(crl.issuer_name())
        )));
    }
    let key = issuer.public_key()?;
    if !crl.verify(&key).unwrap_or(false) {
        let _ = openssl::error::ErrorStack::get();
        return Err(Error::bad_input(format!(
            "the CRL at {url} is not signed by the issuer {} (bad signature): ignored",
            cert::name_to_string(issuer.subject_name())
        )));
    }
    if let Some(why) = freshness(&crl, now) {
        return Err(Error::bad_input(format!(
            "the CRL at {url} is not used: {why}"
        )));
    }
    Ok(crl)
}

/// Asks OpenSSL whether `c` (issued by `above[0]`) is revoked according to `crls`. `Ok(None)`: no CRL covers it.
pub(crate) fn check_with(c: &X509, above: &[X509], crls: &[KnownCrl]) -> Result<Option<Answer>> {
    let mut b = X509StoreBuilder::new()?;
    for a in above {
        let _ = b.add_cert(a.clone());
    }
    let _ = openssl::error::ErrorStack::get();
    for k in crls {
        crate::ossl::revocation::store_add_crl(&mut b, &k.crl)?;
    }
    let mut param = X509VerifyParam::new()?;
    // The chain was validated (at the requested time) by path validation; here only revocation is asked, with
    // time bounds of the CRLs checked by us (`freshness`).
    param.set_flags(
        X509VerifyFlags::CRL_CHECK
            | X509VerifyFlags::EXTENDED_CRL_SUPPORT
            | X509VerifyFlags::USE_DELTAS
            | X509VerifyFlags::PARTIAL_CHAIN
            | X509VerifyFlags::NO_CHECK_TIME,
    )?;
    b.set_param(&param)?;
    let store = b.build();
    let untrusted = Stack::new()?;
    let mut ctx = X509StoreContext::new()?;
    let (ok, code, text) = ctx.init(&store, c, &untrusted, |x| {
        let ok = x.verify_cert()?;
        Ok((ok, x.error().as_raw(), x.error().error_string().to_string()))
    })?;
    if ok {
        // Which CRL said "good": the freshest of the issuer's.
        let best = crls
            .iter()
            .filter(|k| k.crl.issuer_name().to_der().ok() == c.issuer_name().to_der().ok())
            .max_by_key(|k| cert::unix_time(k.crl.last_update()));
        return Ok(Some(Answer::Good {
            source: best.map(describe_source).unwrap_or_else(|| "crl".into()),
            this_update: best
                .map(|k| cert::unix_time(k.crl.last_update()))
                .unwrap_or_else(cert::now),
        }));
    }
    match code {
        openssl_sys::X509_V_ERR_CERT_REVOKED => {
            for k in crls {
                if let CrlStatus::Revoked(e) = k.crl.get_by_cert(c) {
                    let reason = e
                        .extension::<openssl::x509::ReasonCode>()
                        .ok()
                        .flatten()
                        .and_then(|(_, r)| reason_name(r.get_i64().ok()? as i32))
                        .map(str::to_string);
                    return Ok(Some(Answer::Revoked {
                        source: describe_source(k),
                        this_update: cert::unix_time(k.crl.last_update()),
                        reason,
                        at: cert::unix_time(e.revocation_date()),
                    }));
                }
            }
            Ok(Some(Answer::Revoked {
                source: "crl".into(),
                this_update: cert::now(),
                reason: None,
                at: cert::now(),
            }))
        }
        openssl_sys::X509_V_ERR_UNABLE_TO_GET_CRL => Ok(None),
        _ => Err(Error::bad_input(format!("the CRL check failed: {text}"))),
    }
}

fn describe_source(k: &KnownCrl) -> String {
    match cache::crl_number(&k.crl) {
        Some(n) => format!(
            "{} (issuer {}, number {n})",
            k.source,
            cert::name_to_string(k.crl.issuer_name())
        ),
        None => format!(
            "{} (issuer {})",
            k.source,
            cert::name_to_string(k.crl.issuer_name())
        ),
    }
}
