//! OpenSSL access beyond the `openssl` crate's safe API. All `unsafe` code of smimekit lives below this module,
//! each FFI call wrapped in a small safe function.

pub mod p12;
pub mod provider;
