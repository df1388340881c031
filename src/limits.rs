//! Every size, count and time cap smimekit applies, each defined once with the threat it answers.
//!
//! A cap belongs here, not beside the code that applies it, so that "what will smimekit refuse to read, and how
//! long will it wait?" is answered by one file. Each subsystem has its own section; the older caps of the
//! message, PKCS#12 and store code are still beside their code and move here as those modules are reshaped.

// ---- input files and messages ----

/// Deepest folder nesting `scan` descends into (a link loop or a pathological tree cannot make it recurse
/// without end; symbolic links to folders are not followed at all).
pub const SCAN_MAX_DEPTH: usize = 32;

/// Messages of a scanned mailbox smaller than this are read into memory; larger ones are memory-mapped like
/// every other input (mapping a small file costs more system calls than reading it).
pub const SCAN_READ_LIMIT: usize = 1 << 20;

// ---- certificates and chains ----

/// Most path-validation results one `scan` keeps (`trust::ChainCache`): a mailbox of many distinct signers
/// cannot grow the cache without bound; beyond it chains are simply validated again.
pub const MAX_CACHED_CHAINS: usize = 100_000;

/// Most certificates one `scan` keeps parsed (`ossl::signed::ParsedCerts`): a mailbox of many distinct
/// certificates cannot grow the cache without bound; beyond it certificates are simply parsed again.
pub const MAX_CACHED_CERTS: usize = 100_000;

// ---- transport: SMTP submission, TLS, account test ----

// ---- server checks (check-server) and Received-header tracing ----

// ---- integrations: git, neomutt, config ----

// ---- revocation (CRL, OCSP) ----
