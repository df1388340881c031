//! smimekit: an S/MIME toolkit.
//!
//! The library does all the work and returns typed [`Error`]s; the `smimekit` binary is a thin shell over it.
//! Module map:
//! - [`home`]: the home folder, its lock and crash-safe writes; [`secret`]: zeroizing secrets.
//! - [`ossl`]: the only place with `unsafe` — OpenSSL FFI the `openssl` crate lacks, behind safe wrappers.
//! - [`der`]: a minimal bounded BER/DER reader/writer for checks OpenSSL does not expose.
//! - [`error`]: the error type.

pub mod der;
pub mod error;
pub mod home;
pub mod mime;
pub mod ossl;
pub mod secret;

pub use error::{Error, ErrorKind, Result};
pub mod address;
pub mod cert;
pub mod contacts;
pub mod ids;
pub mod pkcs12;
pub mod trust;
