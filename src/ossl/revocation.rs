//! OCSP nonces and CRLs in an `X509_STORE`: the three libcrypto calls revocation checking needs that the
//! `openssl` crate does not wrap.

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ocsp::{OcspBasicResponseRef, OcspRequestRef};
use openssl::x509::X509CrlRef;
use openssl::x509::store::X509StoreBuilderRef;

use super::cvt;
use super::sys::{CMS_get1_crls, OCSP_check_nonce, OCSP_request_add1_nonce, X509_STORE_add_crl};

/// Adds a random 16-byte nonce extension to an OCSP request (RFC 8954).
pub fn add_nonce(req: &mut OcspRequestRef) -> Result<(), ErrorStack> {
    // SAFETY: `req` is a valid, exclusively borrowed request; a null value asks OpenSSL for random bytes of `len`.
    cvt(unsafe { OCSP_request_add1_nonce(req.as_ptr(), std::ptr::null_mut(), 16) })?;
    Ok(())
}

/// How the response's nonce compares with the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Both carry the same nonce.
    Match,
    /// The response carries none (many responders pre-sign their answers; freshness then rests on thisUpdate).
    Absent,
    /// Different nonces, or a nonce in the response to a request without one: a replayed or foreign answer.
    Mismatch,
}

/// Compares the nonces of `req` and `resp` (`OCSP_check_nonce`).
pub fn check_nonce(req: &OcspRequestRef, resp: &OcspBasicResponseRef) -> NonceCheck {
    // SAFETY: both are valid borrowed objects; OCSP_check_nonce only reads their extensions.
    // OCSP_check_nonce(3): 1 equal, 2 both absent, -1 in the request only, 3 in the response only, 0 unequal.
    match unsafe { OCSP_check_nonce(req.as_ptr(), resp.as_ptr()) } {
        1 => NonceCheck::Match,
        2 | -1 => NonceCheck::Absent,
        _ => NonceCheck::Mismatch,
    }
}

/// Adds a CRL to a certificate store being built (the store takes its own reference).
pub fn store_add_crl(store: &mut X509StoreBuilderRef, crl: &X509CrlRef) -> Result<(), ErrorStack> {
    // SAFETY: both pointers are valid; X509_STORE_add_crl up-references the CRL, so our borrow stays ours.
    cvt(unsafe { X509_STORE_add_crl(store.as_ptr(), crl.as_ptr()) })?;
    Ok(())
}

/// The CRLs a CMS SignedData carries (its `crls` field), DER, at most `max`.
///
/// # Safety
/// `cms` must be a live `CMS_ContentInfo`.
pub(crate) unsafe fn cms_crls(cms: *mut openssl_sys::CMS_ContentInfo, max: usize) -> Vec<Vec<u8>> {
    use openssl::x509::X509CrlRef;
    // SAFETY (caller): `cms` is live. CMS_get1_crls returns an owned stack of up-referenced CRLs, or NULL.
    let st = unsafe { CMS_get1_crls(cms) };
    if st.is_null() {
        let _ = ErrorStack::get();
        return Vec::new();
    }
    let mut out = Vec::new();
    // SAFETY: `st` is a valid stack we own; each value is a live X509_CRL until the stack is freed below.
    unsafe {
        let n = openssl_sys::OPENSSL_sk_num(st).max(0) as usize;
        for i in 0..n.min(max) {
            let p =
                openssl_sys::OPENSSL_sk_value(st, i as libc::c_int) as *mut openssl_sys::X509_CRL;
            if let Ok(d) = X509CrlRef::from_ptr(p).to_der() {
                out.push(d);
            }
        }
        for i in 0..n {
            openssl_sys::X509_CRL_free(
                openssl_sys::OPENSSL_sk_value(st, i as libc::c_int) as *mut _
            );
        }
        openssl_sys::OPENSSL_sk_free(st);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn nonce_is_added() {
        let mut req = openssl::ocsp::OcspRequest::new().unwrap();
        super::add_nonce(&mut req).unwrap();
        let der = req.to_der().unwrap();
        let oid = [
            0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02,
        ];
        assert!(der.windows(oid.len()).any(|w| w == oid), "{der:02x?}");
    }
}
