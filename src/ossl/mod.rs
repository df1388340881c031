//! OpenSSL access beyond the `openssl` crate's safe API. All `unsafe` code of smimekit lives below this module,
//! each FFI call wrapped in a small safe function.

pub mod bio;
mod ffi;
pub mod pkcs8;
pub mod provider;
pub mod signed;
