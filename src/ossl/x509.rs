//! Certificate queries the `openssl` crate does not expose.

use foreign_types::ForeignTypeRef;
use openssl::x509::X509Ref;

unsafe extern "C" {
    fn X509_check_ca(x: *mut openssl_sys::X509) -> libc::c_int;
}

/// True for a CA certificate (basicConstraints CA:TRUE, or a legacy CA form).
pub fn is_ca(cert: &X509Ref) -> bool {
    // SAFETY: X509_check_ca only reads the (valid, borrowed) certificate and caches its extensions.
    unsafe { X509_check_ca(cert.as_ptr()) != 0 }
}
