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

// ---- revocation (CRL, OCSP) ----

/// Longest a revocation server (CRL distribution point or OCSP responder) may take to accept the connection,
/// and then between any two reads or writes: a dead or tar-pitting server must not hang a verify.
pub const REVOCATION_TIMEOUT_SECS: u64 = 4;
/// Longest a whole revocation fetch may take, however steadily the server trickles bytes.
pub const REVOCATION_TOTAL_SECS: u64 = 10;
/// Largest CRL fetched or added (large public CAs publish a few MiB; more is a memory exhaustion attempt).
pub const MAX_CRL_BYTES: usize = 20 << 20;
/// Largest OCSP response accepted (a real one for one certificate is under 4 KiB).
pub const MAX_OCSP_BYTES: usize = 64 << 10;
/// Largest HTTP response header block read from a revocation server.
pub const MAX_HTTP_HEADER_BYTES: usize = 16 << 10;
/// Most network fetches (CRL or OCSP) one command makes: a message naming many certificates and URLs must not
/// turn verify into a scanner or a slow crawl.
pub const MAX_REVOCATION_FETCHES: usize = 8;
/// Most distribution point / responder URLs tried per certificate.
pub const MAX_REVOCATION_URLS: usize = 3;
/// Clock skew allowed on a CRL's thisUpdate and an OCSP response's thisUpdate/nextUpdate.
pub const REVOCATION_SKEW_SECS: i64 = 120;
/// An OCSP response without nextUpdate is used for at most this long after its thisUpdate (and never cached
/// longer): it promises no freshness of its own.
pub const OCSP_NO_NEXT_UPDATE_SECS: i64 = 3600;
/// Most CRL files kept in the cache (`crl list` shows them; older numbers of the same issuer are replaced).
pub const MAX_CACHED_CRLS: usize = 500;
/// Most CRLs taken from one signed message's `crls` field (each is parsed and may be checked).
pub const MAX_MESSAGE_CRLS: usize = 32;
