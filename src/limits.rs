//! Every size, count and time cap smimekit applies, each defined once with the threat it answers.
//!
//! A cap belongs here, not beside the code that applies it, so that "what will smimekit refuse to read, and how
//! long will it wait?" is answered by one file. Each subsystem has its own section; the older caps of the
//! message, PKCS#12 and store code are still beside their code and move here as those modules are reshaped.

// ---- input files and messages ----

// ---- certificates and chains ----

// ---- transport: SMTP submission, TLS, account test ----

// ---- server checks (check-server) and Received-header tracing ----

// ---- integrations: git, neomutt, config ----

/// Largest payload `smimekit-git` reads from git to sign or verify (1 GiB). A commit or tag object is a few
/// kilobytes; the cap stops a runaway producer on the pipe from exhausting memory, since the payload is held
/// whole (a detached signature needs all of it before the status lines can be written).
pub const GIT_PAYLOAD_MAX: u64 = 1 << 30;

// ---- revocation (CRL, OCSP) ----
