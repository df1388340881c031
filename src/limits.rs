//! Every size, count and time cap smimekit applies, each defined once with the threat it answers.
//!
//! A cap belongs here, not beside the code that applies it, so that "what will smimekit refuse to read, and how
//! long will it wait?" is answered by one file. Each subsystem has its own section; the older caps of the
//! message, PKCS#12 and store code are still beside their code and move here as those modules are reshaped.

// ---- input files and messages ----

// ---- certificates and chains ----

// ---- transport: SMTP submission, TLS, account test ----

// ---- server checks (check-server) and Received-header tracing ----

/// Most Received fields `trace` reads. Real mail has under 20; a header section of thousands of fields is a
/// loop or a file built to make the report (and its per-hop work) unbounded.
pub const TRACE_MAX_HOPS: usize = 200;

// ---- integrations: git, neomutt, config ----

// ---- revocation (CRL, OCSP) ----
