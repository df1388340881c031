//! OCSP (RFC 6960): one request per certificate with a nonce, POSTed to the responder the certificate names;
//! the answer is used only when its signature is the issuer's or a delegated responder's (id-kp-OCSPSigning,
//! certified by that issuer), its nonce (when echoed) is ours, and it is current (thisUpdate…nextUpdate).
//! "unknown" is not "good". Authentic good/revoked answers are cached until their nextUpdate.

use std::path::Path;

use openssl::hash::MessageDigest;
use openssl::ocsp::{
    OcspBasicResponse, OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse,
    OcspResponseStatus,
};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509Ref};

use super::{Answer, cache, http, reason_name};
use crate::cert;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::limits;

fn generalized(t: &openssl::asn1::Asn1GeneralizedTimeRef) -> i64 {
    // Asn1GeneralizedTimeRef and Asn1TimeRef share OpenSSL's ASN1_TIME type.
    use foreign_types::ForeignTypeRef;
    // SAFETY: ASN1_GENERALIZEDTIME is a typedef of ASN1_STRING, as is ASN1_TIME; the borrow outlives the call.
    let t =
        unsafe { openssl::asn1::Asn1TimeRef::from_ptr(t.as_ptr() as *mut openssl_sys::ASN1_TIME) };
    cert::unix_time(t)
}

/// Checks a DER OCSP response about `c` (issued by `issuer`); `req` is the request it answers (for the nonce).
fn judge(
    der: &[u8],
    c: &X509Ref,
    issuer: &X509Ref,
    req: Option<&OcspRequest>,
    now: i64,
    source: &str,
) -> Result<Answer> {
    let bad = |m: String| Error::bad_input(m);
    if der.len() > limits::MAX_OCSP_BYTES {
        return Err(Error::limit(format!(
            "the OCSP response from {source} is too large"
        )));
    }
    let resp = OcspResponse::from_der(der)
        .map_err(|e| bad(format!("the answer of {source} is not an OCSP response")).detail(e))?;
    let st = resp.status();
    if st != OcspResponseStatus::SUCCESSFUL {
        let what = match st {
            OcspResponseStatus::MALFORMED_REQUEST => "malformedRequest",
            OcspResponseStatus::INTERNAL_ERROR => "internalError",
            OcspResponseStatus::TRY_LATER => "tryLater",
            OcspResponseStatus::SIG_REQUIRED => "sigRequired",
            OcspResponseStatus::UNAUTHORIZED => "unauthorized",
            _ => "an unknown status",
        };
        return Err(bad(format!("the OCSP responder {source} answered {what}")));
    }
    let basic: OcspBasicResponse = resp.basic().map_err(|e| {
        bad(format!(
            "the OCSP response from {source} is not a basic response"
        ))
        .detail(e)
    })?;
    if let Some(req) = req
        && crate::ossl::revocation::check_nonce(req, &basic)
            == crate::ossl::revocation::NonceCheck::Mismatch
    {
        return Err(bad(format!(
            "the OCSP response from {source} answers another request (nonce mismatch): ignored"
        )));
    }
    // Signed by the issuer itself, or by a responder certificate the issuer signed that carries
    // id-kp-OCSPSigning: OpenSSL's OCSP_basic_verify with the issuer as the only trusted certificate.
    let mut sb = X509StoreBuilder::new()?;
    sb.add_cert(issuer.to_owned())?;
    sb.set_flags(X509VerifyFlags::PARTIAL_CHAIN)?;
    let store = sb.build();
    let mut certs = Stack::<X509>::new()?;
    certs.push(issuer.to_owned())?;
    if let Err(e) = basic.verify(&certs, &store, OcspFlag::empty()) {
        return Err(bad(format!(
            "the OCSP response from {source} is not signed by the issuer {} or a responder it authorised: ignored",
            cert::name_to_string(issuer.subject_name())
        ))
        .detail(e));
    }
    let id = OcspCertId::from_cert(MessageDigest::sha1(), c, issuer)?;
    let Some(status) = basic.find_status(&id) else {
        return Err(bad(format!(
            "the OCSP response from {source} does not mention the certificate"
        )));
    };
    let this = generalized(status.this_update);
    let next = status.next_update().map(generalized);
    if this > now + limits::REVOCATION_SKEW_SECS {
        return Err(bad(format!(
            "the OCSP response from {source} is dated in the future ({})",
            cert::rfc3339(this)
        )));
    }
    let expired_at = next.unwrap_or(this + limits::OCSP_NO_NEXT_UPDATE_SECS);
    if expired_at + limits::REVOCATION_SKEW_SECS < now {
        return Err(bad(format!(
            "the OCSP response from {source} is out of date (valid until {}): ignored",
            cert::rfc3339(expired_at)
        )));
    }
    let source = format!("ocsp {source}");
    match status.status {
        OcspCertStatus::GOOD => Ok(Answer::Good {
            source,
            this_update: this,
        }),
        OcspCertStatus::REVOKED => Ok(Answer::Revoked {
            source,
            this_update: this,
            reason: reason_name(status.reason.as_raw()).map(str::to_string),
            at: status.revocation_time.map(generalized).unwrap_or(this),
        }),
        _ => Err(bad(format!(
            "the OCSP responder {} does not know the certificate (status unknown)",
            source.trim_start_matches("ocsp ")
        ))),
    }
}

/// Asks the responder at `url` about `c`; returns the answer and the response (DER) to cache.
pub(crate) fn query(
    url: &str,
    c: &X509Ref,
    issuer: &X509Ref,
    now: i64,
) -> Result<(Answer, Vec<u8>)> {
    let u = http::Url::parse(url)?;
    let mut req = OcspRequest::new()?;
    req.add_id(OcspCertId::from_cert(MessageDigest::sha1(), c, issuer)?)?;
    crate::ossl::revocation::add_nonce(&mut req)?;
    let body = http::post(
        &u,
        "application/ocsp-request",
        &req.to_der()?,
        limits::MAX_OCSP_BYTES,
    )
    .map_err(|e| e.context("OCSP"))?;
    let a = judge(&body, c, issuer, Some(&req), now, url)?;
    Ok((a, body))
}

/// A cached answer about `c`, when one is present, authentic and current.
pub(crate) fn cached(
    root: &Path,
    c: &X509Ref,
    issuer: &X509Ref,
    now: i64,
) -> Result<Option<Answer>> {
    let path = root
        .join(cache::OCSP_DIR)
        .join(format!("{}.der", cert::fingerprint(c)));
    if !path.exists() {
        return Ok(None);
    }
    let home = Home::open(root)?;
    let der = home.read(&path)?;
    // An out-of-date or damaged entry is simply not used.
    Ok(judge(&der, c, issuer, None, now, "(cached)").ok())
}

/// Caches an authentic response about `c`.
pub(crate) fn store(root: &Path, c: &X509Ref, der: &[u8]) -> Result<()> {
    let home = Home::open(root)?;
    let _lock = home.lock()?;
    home.ensure_dir(cache::DIR)?;
    home.ensure_dir(cache::OCSP_DIR)?;
    home.write_atomic(&cache::ocsp_path(&home, &cert::fingerprint(c)), der)
}
