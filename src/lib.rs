//! smimekit: an S/MIME toolkit.
//!
//! The library does all the work and returns typed [`Error`]s; the `smimekit` binary is a thin shell over it.
//! Module map:
//! - [`smime`]: the message operations — sign, verify, encrypt, decrypt, inspect.
//! - [`mime`]: byte-exact MIME handling (strict multipart splitter, canonical form, builders).
//! - [`ossl`]: the only place with OpenSSL `unsafe` — FFI the `openssl` crate lacks (CMS, PKCS#12, PKCS#8),
//!   behind safe wrappers. The other `unsafe` calls are memory and file system calls in [`input`] (mapping,
//!   page advice), [`home`] (`geteuid`) and [`scan`] (its Ctrl-C handler), and the vector instructions of [`mime`]'s hot loops.
//! - [`input`], [`pipe`]: reading messages (memory-mapped); a two-thread pipeline for large outputs.
//! - [`cert`], [`address`], [`trust`]: certificate facts, e-mail address comparison, trust anchors and path
//!   validation.
//! - [`ids`], [`pkcs12`]: the digital-ID store and PKCS#12 import/export/backup.
//! - [`contacts`]: correspondents' certificates and the choice of one per address.
//! - [`scan`], [`mailbox`]: whole mailboxes (Maildir, mbox, folders) verified in parallel with `verify`'s rules.
//! - [`home`], [`secret`], [`der`], [`error`]: the home folder with crash-safe writes, zeroizing secrets, a
//!   bounded DER reader, typed errors.
//! - [`limits`]: every size, count and time cap, each once, with the threat it answers.

#![warn(missing_docs)]

pub mod address;
pub mod cert;
pub mod contacts;
pub mod der;
pub mod error;
pub mod home;
pub mod ids;
pub mod input;
pub mod limits;
pub mod mailbox;
pub mod mime;
pub mod ossl;
pub mod pipe;
pub mod pkcs12;
pub mod scan;
pub mod secret;
pub mod smime;
pub mod trust;

pub use error::{Error, ErrorKind, Result};
