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

/// Most Received fields `trace` reads. Real mail has under 20; a header section of thousands of fields is a
/// loop or a file built to make the report (and its per-hop work) unbounded.
pub const TRACE_MAX_HOPS: usize = 200;

/// Longest wait for a TCP connection to one port in `check-server`: a filtered port (packets dropped) must not
/// hold the check of the other ports.
pub const CHECK_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest wait for any single read or write in `check-server` (a greeting delayed by postscreen-style tarpits
/// still fits; a server that never answers does not hang the check).
pub const CHECK_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Longest time one `check-server` connection (dialogue + handshake) may take in all: a server dripping one
/// byte at a time cannot stretch a check indefinitely.
pub const CHECK_CONNECTION_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Longest reply line `check-server` reads before TLS (RFC 5321 allows 512 octets; IMAP capability lines run
/// longer): a server streaming an endless line cannot exhaust memory.
pub const CHECK_MAX_LINE: usize = 8192;

/// Most lines in one multi-line reply (EHLO, CAPABILITY, CAPA) `check-server` reads.
pub const CHECK_MAX_REPLY_LINES: usize = 200;

/// How long the STARTTLS injection probe waits inside TLS for an answer to the command it pipelined in
/// clear: a non-vulnerable server sends nothing, so this is pure waiting per plain-text port.
pub const CHECK_INJECTION_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// A server certificate expiring within this many days is a warning in `check-server`.
pub const CHECK_EXPIRY_WARN_DAYS: i64 = 30;

/// Wait for one DNS answer (`check-server --domain`) before asking again: a silent resolver costs at most
/// `DNS_TIMEOUT × DNS_TRIES` per question.
pub const DNS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Times a DNS question is sent over UDP before giving up.
pub const DNS_TRIES: usize = 2;

/// Largest DNS message read (also the EDNS0 payload size offered): bounds the buffer a resolver can fill.
pub const DNS_MAX_MESSAGE: usize = 4096;

/// Most answer records read from one DNS message.
pub const DNS_MAX_RECORDS: u16 = 64;

/// Most hosts (MX and SRV targets together) `check-server --domain` checks: a zone listing hundreds of MX
/// hosts cannot turn one command into a scan.
pub const DOMAIN_MAX_HOSTS: usize = 10;

// ---- integrations: git, neomutt, config ----

// ---- revocation (CRL, OCSP) ----
