//! Every size, count and time cap smimekit applies, each defined once with the threat it answers.
//!
//! A cap belongs here, not beside the code that applies it, so that "what will smimekit refuse to read, and how
//! long will it wait?" is answered by one file. Each subsystem has its own section. Profile values (the
//! iteration counts smimekit writes, key sizes it signs with) and warning thresholds are policy, not caps, and
//! stay with their profiles.

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

/// Largest message accepted from standard input, a FIFO or a device (files are mapped and limited only by the
/// address space). A stream is read into memory whole; without a cap `verify < /dev/zero` grows until the
/// machine runs out of memory.
pub const MAX_STDIN: usize = 4 << 30;

/// How much of a message read from a pipe or device is looked at before deciding that it cannot be a message
/// (a NUL byte or no header line in it): `inspect /dev/zero` otherwise read 4 GiB before the first check.
pub const MESSAGE_SNIFF: usize = 64 << 10;

/// Deepest folder nesting `scan` descends into (a link loop or a pathological tree cannot make it recurse
/// without end; symbolic links to folders are not followed at all).
pub const SCAN_MAX_DEPTH: usize = 32;

/// Messages of a scanned mailbox smaller than this are read into memory; larger ones are memory-mapped like
/// every other input (mapping a small file costs more system calls than reading it).
pub const SCAN_READ_LIMIT: usize = 1 << 20;

// ---- MIME: header sections, multiparts, nesting (RFC 8551 §3.7 "reasonable resource limits") ----

/// Largest header section accepted (1 MiB). Answers a message whose header never ends: the header is parsed
/// into field spans held in memory.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// Most header fields accepted in one header section: each field is a span kept and searched; a section of
/// millions of one-byte fields would make every lookup a long walk.
pub const MAX_HEADER_FIELDS: usize = 10_000;

/// Most body parts accepted in one multipart: each part is a span kept in memory and may be walked again, so a
/// body of millions of empty parts is refused rather than indexed.
pub const MAX_PARTS: usize = 10_000;

/// Deepest nesting of multiparts and message/rfc822 entities followed (canonicalization for signing):
/// answers a message nested to exhaust the stack.
pub const MIME_MAX_DEPTH: usize = 32;

/// Longest e-mail address considered (RFC 5321: 64 + 1 + 255); a longer one matches nothing. Answers a header
/// or certificate carrying megabyte "addresses" that every comparison would normalise again.
pub const MAX_ADDRESS_LEN: usize = 320;

// ---- CMS: DER walking, signed and enveloped data ----

/// Deepest ASN.1 nesting the project's BER/DER reader follows (it recurses per level): answers a structure
/// nested to exhaust the stack.
pub const DER_MAX_DEPTH: usize = 64;

/// Deepest nesting of S/MIME layers (signed inside encrypted inside signed …) that `inspect` follows: answers a
/// message wrapped thousands of times to make the report and its per-layer parsing unbounded.
pub const MAX_SMIME_LAYERS: usize = 8;

/// Most signers checked in one message: each costs a signature check and a chain building (T25); real mail has
/// one or two.
pub const MAX_SIGNERS: usize = 16;

/// Signing times up to this many seconds in the future are accepted as clock skew (RFC 8551 §2.7.1): beyond
/// it `verify` flags the time and the contact store ignores the message's certificate, so a sender cannot make
/// its certificate win every later comparison by dating a message years ahead.
pub const SIGNING_TIME_SKEW_SECS: i64 = 300;

/// Most RecipientInfos (counting each RecipientEncryptedKey of a kari) one enveloped message may carry, read or
/// written: each may cost a private-key operation while looking for ours.
pub const MAX_RECIPIENTS: usize = 1000;

/// Deepest nesting of BER constructed OCTET STRING segments followed in encrypted content (OpenSSL's own
/// limit is 5): answers content nested to exhaust the segment stack.
pub const BER_MAX_SEGMENT_NESTING: usize = 5;

/// Largest encrypted content decrypted (2 GiB). Nothing may be released before it is authenticated, so the
/// plaintext is held in memory or a temporary file; the cap bounds both for a message claiming a huge length.
pub const MAX_DECRYPT_BYTES: u64 = 2 << 30;

// ---- certificates and chains ----

/// Most e-mail addresses of one certificate that are considered (listed, compared, stored); the rest are ignored
/// with a note. A CA-signed certificate with 10,000 SAN addresses (300 KB) made `contact add`, `verify` and
/// `inspect` run for minutes; real certificates carry a handful.
pub const MAX_CERT_ADDRESSES: usize = 1_000;

/// Most certificates one SignedData may carry (its `certificates` field); more is refused before OpenSSL parses
/// them. A message with 100,000 certificates made `verify` run 34 s in 592 MB and `inspect` 48 s; real messages
/// carry a chain of two or three.
pub const MAX_SIGNED_DATA_CERTS: usize = 1_000;

/// Largest RSA key whose signature is checked: a 16,384-bit or larger key costs many times the CPU of a real one
/// for each signature check and buys no security (T25); refused before any cryptography.
pub const MAX_RSA_VERIFY_BITS: u32 = 8192;

/// Most candidate intermediates handed to one chain building, and most certificates considered as signer
/// candidates or intermediates for one message (bounded path-building work, T25).
pub const MAX_UNTRUSTED: usize = 200;

/// Longest chain built (bounded path-building work, T25).
pub const MAX_CHAIN_DEPTH: i32 = 10;

/// Most path-validation results one `scan` keeps (`trust::ChainCache`): a mailbox of many distinct signers
/// cannot grow the cache without bound; beyond it chains are simply validated again.
pub const MAX_CACHED_CHAINS: usize = 100_000;

/// Most certificates one `scan` keeps parsed (`ossl::signed::ParsedCerts`): a mailbox of many distinct
/// certificates cannot grow the cache without bound; beyond it certificates are simply parsed again.
pub const MAX_CACHED_CERTS: usize = 100_000;

/// Most certificates read from one certificate file or bundle (`contact add`, `trust add`, `.p7b`): each is
/// parsed and checked, so the work per file is bounded.
pub const MAX_CERTS_PER_FILE: usize = 1000;

/// Largest certificate file or bundle the contact store's reader accepts from a caller (the CLI already stops
/// at [`MAX_CERT_FILE`]); answers a library caller handing it a huge buffer to parse.
pub const MAX_CERT_BUNDLE_BYTES: usize = 16 * 1024 * 1024;

/// Provenance entries kept per contact certificate (the oldest are dropped): answers a stream of messages
/// growing one contact's index entry without bound.
pub const MAX_PROVENANCE: usize = 20;

// ---- keys at rest: PKCS#12 and PKCS#8 (key derivation before any password is tried) ----

/// The largest iteration count (PKCS#12 MAC, PBE, PBKDF2; PKCS#8 PBES1/PBES2) accepted in a file we read. Above
/// it the file is refused before any key derivation: OpenSSL would spend minutes to hours on 2^31−1 (T43).
pub const MAX_KDF_ITERATIONS: u64 = 10_000_000;

/// The largest *sum* of iteration counts over all key derivations one PKCS#12 file asks for (about 80 s of
/// PBKDF2 here), so that a file of many bags, each just under [`MAX_KDF_ITERATIONS`], is refused too. A backup
/// of N identities in the modern profile needs (N + 2) · 600,000: up to about 500 identities fit.
pub const MAX_KDF_TOTAL_ITERATIONS: u64 = 300_000_000;

/// The most memory an scrypt key derivation may ask for (128·r·N bytes), 1 GiB: answers a file that makes
/// opening it allocate gigabytes. Applied through [`scrypt_within_limits`].
pub const MAX_SCRYPT_MEMORY: u64 = 1 << 30;

/// The most scrypt work (N·r·p) a key derivation may ask for; N=2^20, r=8, p=1 is 2^23. Answers a file that
/// makes opening it compute for hours with little memory (large p). Applied through [`scrypt_within_limits`].
pub const MAX_SCRYPT_WORK: u64 = 1 << 24;

/// The one scrypt cost rule, for PKCS#12 and PKCS#8 alike: memory 128·r·N within [`MAX_SCRYPT_MEMORY`] and
/// work N·r·p within [`MAX_SCRYPT_WORK`] (saturating, so huge values are refused, never wrapped).
pub fn scrypt_within_limits(n: u64, r: u64, p: u64) -> bool {
    128u64.saturating_mul(r).saturating_mul(n) <= MAX_SCRYPT_MEMORY
        && n.saturating_mul(r).saturating_mul(p) <= MAX_SCRYPT_WORK
}

/// How deeply nested safeContentsBags of a PKCS#12 file are followed: answers a file nested to exhaust the
/// walker's recursion.
pub const P12_MAX_BAG_DEPTH: usize = 4;

/// How long an issuer chain is assembled for one identity from a PKCS#12 file's certificates: answers a file of
/// certificates forming a loop or an endless chain.
pub const P12_MAX_CHAIN: usize = 16;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrypt_rule() {
        assert!(scrypt_within_limits(1 << 20, 8, 1)); // 1 GiB, work 2^23
        assert!(scrypt_within_limits(1 << 14, 8, 1)); // OpenSSL's default
        assert!(!scrypt_within_limits(1 << 20, 16, 1)); // 2 GiB
        assert!(!scrypt_within_limits(1 << 10, 8, 1 << 12)); // work 2^25, 1 MiB
        assert!(!scrypt_within_limits(u64::MAX, u64::MAX, u64::MAX)); // saturates, never wraps
    }
}
