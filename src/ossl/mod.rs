//! OpenSSL access beyond the `openssl` crate's safe API. All `unsafe` code of smimekit lives below this module,
//! each FFI call wrapped in a small safe function.

pub mod bio;
pub mod enveloped;
pub mod p12;
pub mod pkcs8;
pub mod provider;
pub mod revocation;
pub mod signed;
pub mod sys;
pub mod x509;

use std::ffi::c_int;

use openssl::error::ErrorStack;

/// A libcrypto status return: `r <= 0` is a failure, reported with the error queue it left (rust-openssl's
/// `cvt`). For calls documented to return only 1 or 0 this is the same test as `r != 1`.
pub(crate) fn cvt(r: c_int) -> Result<c_int, ErrorStack> {
    if r <= 0 {
        Err(ErrorStack::get())
    } else {
        Ok(r)
    }
}

/// A libcrypto constructor or lookup return: NULL is a failure, reported with the error queue it left.
pub(crate) fn cvt_p<T>(p: *mut T) -> Result<*mut T, ErrorStack> {
    if p.is_null() {
        Err(ErrorStack::get())
    } else {
        Ok(p)
    }
}
