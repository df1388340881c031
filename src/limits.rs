//! Every size, count and time cap smimekit applies, each defined once with the threat it answers.
//!
//! A cap belongs here, not beside the code that applies it, so that "what will smimekit refuse to read, and how
//! long will it wait?" is answered by one file. Each subsystem has its own section; the older caps of the
//! message, PKCS#12 and store code are still beside their code and move here as those modules are reshaped.

// ---- input files and messages ----

/// Largest certificate, chain, contact or trust-anchor file read from the command line (PEM or DER). A
/// certificate is a few KiB and a chain a few dozen; without a cap, `contact add`/`trust add` of a 1 GiB file
/// read it whole before parsing it (1 GB resident). Checked from the file's size before reading, and by a bounded
/// read for pipes and devices.
pub const MAX_CERT_FILE: u64 = 4 << 20;

/// Largest PKCS#12 file (`id import`, `id restore`) read from the command line. A backup holds every ID, anchor
/// and contact certificate (a thousand contacts are about 2 MiB); without a cap, `id import` of a 1 GiB file
/// took 15 s and 3 GB of memory before refusing it. Checked like [`MAX_CERT_FILE`].
pub const MAX_P12_FILE: u64 = 16 << 20;

/// Largest passphrase or password file (`--passphrase-file`, `--password-file`, `--new-passphrase-file`). A
/// secret is a line; `--passphrase-file /dev/zero` otherwise read until memory ran out.
pub const MAX_SECRET_FILE: u64 = 64 << 10;

/// How much of a message read from a pipe or device is looked at before deciding that it cannot be a message
/// (a NUL byte or no header line in it): `inspect /dev/zero` otherwise read 4 GiB before the first check.
pub const MESSAGE_SNIFF: usize = 64 << 10;

/// Deepest folder nesting `scan` descends into (a link loop or a pathological tree cannot make it recurse
/// without end; symbolic links to folders are not followed at all).
pub const SCAN_MAX_DEPTH: usize = 32;

/// Messages of a scanned mailbox smaller than this are read into memory; larger ones are memory-mapped like
/// every other input (mapping a small file costs more system calls than reading it).
pub const SCAN_READ_LIMIT: usize = 1 << 20;

// ---- certificates and chains ----

/// Most e-mail addresses of one certificate that are considered (listed, compared, stored); the rest are ignored
/// with a note. A CA-signed certificate with 10,000 SAN addresses (300 KB) made `contact add`, `verify` and
/// `inspect` run for minutes; real certificates carry a handful.
pub const MAX_CERT_ADDRESSES: usize = 1_000;

/// Most certificates one SignedData may carry (its `certificates` field); more is refused before OpenSSL parses
/// them. A message with 100,000 certificates made `verify` run 34 s in 592 MB and `inspect` 48 s; real messages
/// carry a chain of two or three.
pub const MAX_SIGNED_DATA_CERTS: usize = 1_000;

/// Most candidate intermediates handed to one chain building (bounded path-building work, T25).
pub const MAX_UNTRUSTED: usize = 200;

/// Longest chain built (bounded path-building work, T25).
pub const MAX_CHAIN_DEPTH: i32 = 10;

/// Most path-validation results one `scan` keeps (`trust::ChainCache`): a mailbox of many distinct signers
/// cannot grow the cache without bound; beyond it chains are simply validated again.
pub const MAX_CACHED_CHAINS: usize = 100_000;

/// Most certificates one `scan` keeps parsed (`ossl::signed::ParsedCerts`): a mailbox of many distinct
/// certificates cannot grow the cache without bound; beyond it certificates are simply parsed again.
pub const MAX_CACHED_CERTS: usize = 100_000;

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

/// Largest payload `smimekit-git` reads from git to sign or verify (1 GiB). A commit or tag object is a few
/// kilobytes; the cap stops a runaway producer on the pipe from exhausting memory, since the payload is held
/// whole (a detached signature needs all of it before the status lines can be written).
pub const GIT_PAYLOAD_MAX: u64 = 1 << 30;

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
