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
