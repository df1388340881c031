//! Every size, count and time cap smimekit applies, each defined once with the threat it answers.
//!
//! A cap belongs here, not beside the code that applies it, so that "what will smimekit refuse to read, and how
//! long will it wait?" is answered by one file. Each subsystem has its own section; the older caps of the
//! message, PKCS#12 and store code are still beside their code and move here as those modules are reshaped.

// ---- input files and messages ----

// ---- certificates and chains ----

// ---- transport: SMTP submission, TLS, account test ----

/// Default wait for a TCP connection, a TLS handshake step or one SMTP reply, in seconds (`--timeout`).
/// Answers a server that never answers: the client gives up instead of hanging.
pub const NET_WAIT_SECS: u64 = 60;

/// The whole exchange (connect to QUIT) may take this many times the per-wait timeout. Answers a server that
/// drips one byte just before each wait runs out, which no per-read timeout catches.
pub const NET_TOTAL_FACTOR: u32 = 10;

/// Longest SMTP reply line accepted, CRLF included. RFC 5321 §4.5.3.1.5 says 512; real servers stay well
/// below this more lenient cap. Answers a server sending an endless line to exhaust memory (T56).
pub const SMTP_REPLY_LINE_MAX: usize = 2048;

/// Most lines in one multi-line SMTP reply (an EHLO answer has a dozen). Answers an endless `250-` reply.
pub const SMTP_REPLY_LINES_MAX: usize = 200;

/// Most recipients in one submission; servers commonly allow 100 per transaction.
pub const SMTP_RECIPIENTS_MAX: usize = 1000;

// ---- server checks (check-server) and Received-header tracing ----

// ---- integrations: git, neomutt, config ----

// ---- revocation (CRL, OCSP) ----
