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
//! - [`ids`], [`pkcs12`], [`restore`]: the digital-ID store, PKCS#12 import/export/backup, and the review of
//!   what a restore would add.
//! - [`contacts`]: correspondents' certificates and the choice of one per address.
//! - [`display`]: one escaping rule for attacker-controlled text in every report; homograph display.
//! - [`scan`], [`mailbox`]: whole mailboxes (Maildir, mbox, folders) verified in parallel with `verify`'s rules.
//! - [`home`], [`secret`], [`der`], [`error`]: the home folder with crash-safe writes, zeroizing secrets, a
//!   bounded DER reader, typed errors.
//! - [`config`]: the configuration file and where each effective setting came from.
//! - [`git`]: smimekit as git's `gpg.x509.program` (the gpg status protocol over detached signatures).
//! - [`neomutt`]: neomutt's `smime_*_command` conventions (entity-level sign, verify, encrypt, decrypt; `.index`).
//! - [`net`], [`send`], [`account`]: the TLS connector, the SMTP submission client, preparing and protecting
//!   outgoing mail (Bcc, one copy per audience), and the sending accounts; `net::check` and `net::dns`: the
//!   server checks of `check-server` and the small DNS stub behind `--domain`.
//! - [`trace`]: the Received fields of a message — hops, TLS and authentication recorded, the verdict.
//! - [`limits`]: every size, count and time cap, each once, with the threat it answers.

#![warn(missing_docs)]

pub mod account;
pub mod address;
pub mod cert;
pub mod config;
pub mod contacts;
pub mod der;
pub mod display;
pub mod error;
pub mod git;
pub mod home;
pub mod ids;
pub mod input;
pub mod limits;
pub mod mailbox;
pub mod mime;
pub mod neomutt;
pub mod net;
pub mod ossl;
pub mod pipe;
pub mod pkcs12;
pub mod restore;
pub mod revocation;
pub mod scan;
pub mod secret;
pub mod send;
pub mod smime;
#[cfg(test)]
mod test_peers;
pub mod trace;
pub mod trust;

pub use error::{Error, ErrorKind, Result};
