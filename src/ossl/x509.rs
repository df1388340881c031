//! Certificate queries the `openssl` crate does not expose.

use foreign_types::ForeignTypeRef;
use openssl::x509::X509Ref;

use super::sys::X509_check_ca;

/// True for a CA certificate (basicConstraints CA:TRUE, or a legacy CA form).
pub fn is_ca(cert: &X509Ref) -> bool {
    // SAFETY: X509_check_ca only reads the (valid, borrowed) certificate and caches its extensions.
    unsafe { X509_check_ca(cert.as_ptr()) != 0 }
}

/// Where OpenSSL looks for the system's trust anchors by default, as compiled into libcrypto.
pub struct DefaultCertLocations {
    /// The bundle file (e.g. `/usr/lib/ssl/cert.pem`).
    pub file: &'static str,
    /// The environment variable that overrides it (`SSL_CERT_FILE`).
    pub file_env: &'static str,
    /// The hashed folder (e.g. `/usr/lib/ssl/certs`).
    pub dir: &'static str,
    /// The environment variable that overrides it (`SSL_CERT_DIR`).
    pub dir_env: &'static str,
}

/// OpenSSL's default trust-anchor locations; `None` if one is not valid UTF-8.
pub fn default_cert_locations() -> Option<DefaultCertLocations> {
    // SAFETY: the four functions return pointers to static NUL-terminated strings compiled into libcrypto.
    let c = |p: *const libc::c_char| unsafe { std::ffi::CStr::from_ptr(p) }.to_str().ok();
    // SAFETY: as above; no arguments, no state.
    unsafe {
        Some(DefaultCertLocations {
            file: c(openssl_sys::X509_get_default_cert_file())?,
            file_env: c(openssl_sys::X509_get_default_cert_file_env())?,
            dir: c(openssl_sys::X509_get_default_cert_dir())?,
            dir_env: c(openssl_sys::X509_get_default_cert_dir_env())?,
        })
    }
}
