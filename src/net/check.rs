//! `check-server`: is a mail server's TLS set up right? Per port: reachable, TLS mode, negotiated version and
//! cipher, old versions still accepted, the certificate chain as sent (trusted, host name, expiry, missing
//! intermediate, order, unneeded root) and, on plain-text ports, STARTTLS advertised, AUTH offered before TLS
//! and the STARTTLS command-injection flaw (CVE-2011-0411 and its kin).
//!
//! Every TLS handshake goes through the project's one connector ([`super::tls::Connector`]) with its one
//! verification policy; this module only speaks the plain-text greeting/capability/STARTTLS dialogue before it
//! and reads what the handshake established. Nothing is sent but capability, STARTTLS and NOOP commands: no
//! credentials, no mail.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use openssl::ssl::SslVersion;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509Ref, X509StoreContext, X509VerifyResult};
use serde::Serialize;

use super::tls::{Check, Connector, Handshake, TlsOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::{cert, limits};

/// The service spoken on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// SMTP relay (25), STARTTLS.
    Smtp,
    /// Submission (587), STARTTLS.
    Submission,
    /// Submission over implicit TLS (465).
    Submissions,
    /// IMAP (143), STARTTLS.
    Imap,
    /// IMAP over implicit TLS (993).
    Imaps,
    /// POP3 (110), STLS.
    Pop3,
    /// POP3 over implicit TLS (995).
    Pop3s,
    /// Any implicit-TLS service (e.g. 443): only the handshake is looked at.
    Tls,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Smtp,
    Imap,
    Pop3,
    Bare,
}

impl Protocol {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Submission => "submission",
            Protocol::Submissions => "submissions",
            Protocol::Imap => "imap",
            Protocol::Imaps => "imaps",
            Protocol::Pop3 => "pop3",
            Protocol::Pop3s => "pop3s",
            Protocol::Tls => "tls",
        }
    }
    /// Parses a `--protocol` value.
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s.to_ascii_lowercase().as_str() {
            "smtp" => Protocol::Smtp,
            "submission" => Protocol::Submission,
            "submissions" | "smtps" => Protocol::Submissions,
            "imap" => Protocol::Imap,
            "imaps" => Protocol::Imaps,
            "pop3" => Protocol::Pop3,
            "pop3s" => Protocol::Pop3s,
            "tls" => Protocol::Tls,
            _ => return None,
        })
    }
    /// The well-known port.
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Smtp => 25,
            Protocol::Submission => 587,
            Protocol::Submissions => 465,
            Protocol::Imap => 143,
            Protocol::Imaps => 993,
            Protocol::Pop3 => 110,
            Protocol::Pop3s => 995,
            Protocol::Tls => 443,
        }
    }
    /// The protocol usually on `port`, if it is a mail port.
    pub fn for_port(port: u16) -> Option<Protocol> {
        DEFAULT_PORTS
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, proto)| *proto)
    }
    /// Whether TLS starts at once (no plain-text dialogue).
    pub fn implicit(self) -> bool {
        matches!(
            self,
            Protocol::Submissions | Protocol::Imaps | Protocol::Pop3s | Protocol::Tls
        )
    }
    fn family(self) -> Family {
        match self {
            Protocol::Smtp | Protocol::Submission | Protocol::Submissions => Family::Smtp,
            Protocol::Imap | Protocol::Imaps => Family::Imap,
            Protocol::Pop3 | Protocol::Pop3s => Family::Pop3,
            Protocol::Tls => Family::Bare,
        }
    }
}

/// The ports checked when none is given, in this order.
pub const DEFAULT_PORTS: [(u16, Protocol); 7] = [
    (465, Protocol::Submissions),
    (587, Protocol::Submission),
    (993, Protocol::Imaps),
    (995, Protocol::Pop3s),
    (25, Protocol::Smtp),
    (143, Protocol::Imap),
    (110, Protocol::Pop3),
];

/// What the check trusts.
#[derive(Clone, Default)]
pub struct CheckOptions {
    /// Trust anchors besides the system store (self-signed certificates from `--ca`).
    pub anchors: Vec<X509>,
    /// CA certificates from `--ca` that are not roots: never trusted, used only to name a missing intermediate
    /// and to confirm that the chain would verify with it.
    pub known_intermediates: Vec<X509>,
    /// Leave out the system store.
    pub no_system_store: bool,
    /// Revocation of the validated chain: what may be used (check-server is about the network, so it fetches
    /// CRLs and OCSP answers; the home's cache comes first when there is a home).
    pub revocation: crate::revocation::Settings,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Passed (✓).
    Ok,
    /// A problem: something to fix (✗); makes the exit code 1.
    Problem,
    /// A warning (!): worth fixing, not wrong today.
    Warning,
    /// Not applicable or not checked (-).
    Info,
}

impl Status {
    /// The mark printed in tables.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Problem => "✗",
            Status::Warning => "!",
            Status::Info => "-",
        }
    }
}

/// One line of a port's table.
#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    /// The check's outcome.
    pub status: Status,
    /// What was checked (e.g. "certificate trusted").
    pub check: String,
    /// What was found.
    pub detail: String,
}

/// A problem or warning with what to change.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Stable identifier (e.g. `missing_intermediate`, `expired`, `weak_tls_versions`).
    pub code: &'static str,
    /// `problem` or `warning`.
    pub severity: Status,
    /// What is wrong.
    pub message: String,
    /// What to change.
    pub remedy: String,
}

/// A certificate as the server sent it.
#[derive(Debug, Clone, Serialize)]
pub struct ChainCert {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Key type and size.
    pub key: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Whole days until the end of validity (negative: expired).
    pub days_left: i64,
}

/// The intermediate the server should send but does not.
#[derive(Debug, Clone, Serialize)]
pub struct MissingIntermediate {
    /// Its subject DN (the issuer named by the last certificate sent).
    pub subject: String,
    /// Where the issuing CA publishes it (the last certificate's AIA caIssuers URL), if given.
    pub aia_url: Option<String>,
    /// True when a `--ca` certificate with that name completes the chain to a trusted root.
    pub confirmed: bool,
}

/// Everything found on one port.
#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    /// TCP port.
    pub port: u16,
    /// Service spoken.
    pub protocol: Protocol,
    /// Whether a TCP connection was accepted.
    pub reachable: bool,
    /// `implicit`, `starttls` or `none` (null when unreachable).
    pub tls_mode: Option<&'static str>,
    /// Negotiated version (e.g. `TLSv1.3`).
    pub tls_version: Option<String>,
    /// Negotiated cipher suite.
    pub cipher: Option<String>,
    /// The certificates as sent, the server's own first.
    pub chain: Vec<ChainCert>,
    /// The chain leads to a trusted root (null: no handshake).
    pub trusted: Option<bool>,
    /// The server's certificate is valid for the host name checked.
    pub hostname_ok: Option<bool>,
    /// The intermediate missing from the chain sent, when that is why it is not trusted.
    pub missing_intermediate: Option<MissingIntermediate>,
    /// Old versions still accepted (`TLSv1`, `TLSv1.1`).
    pub weak_versions: Vec<String>,
    /// STARTTLS (STLS) advertised on a plain-text port.
    pub starttls_advertised: Option<bool>,
    /// Login or AUTH offered before TLS (credentials could be sent in clear).
    pub auth_before_tls: Option<bool>,
    /// A command pipelined with STARTTLS was answered after the handshake.
    pub starttls_injection: Option<bool>,
    /// The server stapled an OCSP response to the handshake.
    pub ocsp_stapled: Option<bool>,
    /// The stapled response's verdict on the server's certificate: `good`, `revoked`, `unknown`, or why it
    /// could not be read.
    pub ocsp_status: Option<String>,
    /// Revocation of each certificate of the validated chain (empty: the chain is not trusted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revocation: Vec<crate::revocation::CertRevocation>,
    /// One line per check, for the table.
    pub checks: Vec<CheckLine>,
    /// Problems and warnings, each with a remedy.
    pub problems: Vec<Problem>,
    /// `--login`: the outcome of logging in over TLS with an account (SMTP ports), set by the caller.
    pub login: Option<LoginOutcome>,
    /// The certificates as sent (DER), for TLSA matching.
    #[serde(skip)]
    pub peer_chain_der: Vec<Vec<u8>>,
}

/// The outcome of `--login` on one port.
#[derive(Debug, Clone, Serialize)]
pub struct LoginOutcome {
    /// The account used.
    pub account: String,
    /// The user name sent.
    pub user: String,
    /// Whether the server accepted the login.
    pub ok: bool,
    /// What happened (the server's reply on failure).
    pub detail: String,
}

impl PortReport {
    /// Records a `--login` outcome as a check line (and a problem when it failed).
    pub fn record_login(&mut self, outcome: LoginOutcome) {
        if outcome.ok {
            self.line(
                Status::Ok,
                "login",
                format!("logged in as {}", outcome.user),
            );
        } else {
            self.line(Status::Problem, "login", outcome.detail.clone());
            self.problem(
                "login_failed",
                format!("login as {} (account {}) failed: {}", outcome.user, outcome.account, outcome.detail),
                "check the account's user and login secret (smimekit account show), and the server's authentication settings",
            );
        }
        self.login = Some(outcome);
    }
}

impl PortReport {
    fn new(port: u16, protocol: Protocol) -> Self {
        PortReport {
            port,
            protocol,
            reachable: false,
            tls_mode: None,
            tls_version: None,
            cipher: None,
            chain: Vec::new(),
            trusted: None,
            hostname_ok: None,
            missing_intermediate: None,
            weak_versions: Vec::new(),
            starttls_advertised: None,
            auth_before_tls: None,
            starttls_injection: None,
            ocsp_stapled: None,
            ocsp_status: None,
            revocation: Vec::new(),
            checks: Vec::new(),
            problems: Vec::new(),
            login: None,
            peer_chain_der: Vec::new(),
        }
    }
    /// Adds a line to the port's table.
    pub fn line(&mut self, status: Status, check: &str, detail: impl Into<String>) {
        self.checks.push(CheckLine {
            status,
            check: check.into(),
            detail: detail.into(),
        });
    }
    fn problem(&mut self, code: &'static str, message: String, remedy: &str) {
        self.problems.push(Problem {
            code,
            severity: Status::Problem,
            message,
            remedy: remedy.into(),
        });
    }
    fn warning(&mut self, code: &'static str, message: String, remedy: &str) {
        self.problems.push(Problem {
            code,
            severity: Status::Warning,
            message,
            remedy: remedy.into(),
        });
    }
    /// Whether any problem (not a warning) was found.
    pub fn has_problem(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Status::Problem)
    }
}

/// The report for a host.
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    /// The host checked (name or address; also the name the certificates are checked against).
    pub host: String,
    /// One entry per port tried.
    pub ports: Vec<PortReport>,
}

impl ServerReport {
    /// 0 when every reachable port passed, 1 when any problem was found, 2 when no port could be checked.
    pub fn exit_code(&self) -> i32 {
        if !self.ports.iter().any(|p| p.reachable) {
            2
        } else if self.ports.iter().any(PortReport::has_problem) {
            1
        } else {
            0
        }
    }
}

/// Checks `targets` (port, protocol) on `host`. Errors only when `host` cannot be resolved; a closed port is
/// reported as unreachable.
pub fn check_server(
    host: &str,
    targets: &[(u16, Protocol)],
    opts: &CheckOptions,
) -> Result<ServerReport> {
    let port0 = targets.first().map_or(25, |t| t.0);
    let addrs: Vec<_> = (host, port0)
        .to_socket_addrs()
        .map_err(|e| {
            Error::new(ErrorKind::Network, format!("cannot resolve {host}: {e}"))
                .hint("check the host name (and your DNS)")
        })?
        .collect();
    if addrs.is_empty() {
        return Err(
            Error::new(ErrorKind::Network, format!("{host} has no address"))
                .hint("check the host name"),
        );
    }
    let mut ports = Vec::new();
    for &(port, proto) in targets {
        ports.push(check_port(host, None, port, proto, opts));
    }
    Ok(ServerReport {
        host: host.to_string(),
        ports,
    })
}

// ---- the wire: a TCP stream with an overall deadline and an adjustable wait per read ----

/// TCP with a deadline for the whole exchange and a per-read wait the caller can shorten (the injection probe
/// waits briefly for an answer that should never come). Shared with the TLS layer through the `Rc`.
struct Wire {
    tcp: TcpStream,
    end: Instant,
    wait: Rc<Cell<Duration>>,
}

impl Wire {
    fn arm(&self, read: bool) -> io::Result<()> {
        let left = self
            .end
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "time allowed ran out"))?;
        let t = left.min(self.wait.get());
        if read {
            self.tcp.set_read_timeout(Some(t))
        } else {
            self.tcp.set_write_timeout(Some(t))
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(true)?;
        self.tcp.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                io::Error::new(io::ErrorKind::TimedOut, "no answer in time")
            } else {
                e
            }
        })
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(false)?;
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Connects to `host` (or to `at`, an address found for it by the caller's own DNS lookup).
fn connect(host: &str, at: Option<IpAddr>, port: u16) -> io::Result<(Wire, Rc<Cell<Duration>>)> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let addrs: Vec<std::net::SocketAddr> = match at {
        Some(ip) => vec![(ip, port).into()],
        None => (host, port).to_socket_addrs()?.collect(),
    };
    for a in addrs {
        match TcpStream::connect_timeout(&a, limits::CHECK_CONNECT_TIMEOUT) {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                let wait = Rc::new(Cell::new(limits::CHECK_READ_TIMEOUT));
                let w = Wire {
                    tcp,
                    end: Instant::now() + limits::CHECK_CONNECTION_TIME,
                    wait: wait.clone(),
                };
                return Ok((w, wait));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads one line (CRLF or LF), at most [`limits::CHECK_MAX_LINE`] bytes, one byte at a time so that nothing
/// after it is consumed (the TLS handshake must start on the next byte).
fn read_line(w: &mut Wire) -> io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        if w.read(&mut b)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if b[0] == b'\n' {
            break;
        }
        if line.len() >= limits::CHECK_MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "reply line too long",
            ));
        }
        line.push(b[0]);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// An SMTP reply: every line up to the one with a space after the code.
fn smtp_reply(w: &mut Wire) -> io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let l = read_line(w)?;
        let last = l.len() < 4 || l.as_bytes()[3] != b'-';
        lines.push(l);
        if last {
            return Ok(lines);
        }
        if lines.len() >= limits::CHECK_MAX_REPLY_LINES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "reply too long"));
        }
    }
}

/// IMAP: untagged lines up to the one tagged `tag`.
fn imap_reply(w: &mut Wire, tag: &str) -> io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let l = read_line(w)?;
        let done = l.starts_with(&format!("{tag} "));
        lines.push(l);
        if done {
            return Ok(lines);
        }
        if lines.len() >= limits::CHECK_MAX_REPLY_LINES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "reply too long"));
        }
    }
}

/// POP3 multi-line: "+OK" then lines up to ".".
fn pop3_multi(w: &mut Wire) -> io::Result<Vec<String>> {
    let first = read_line(w)?;
    if !first.starts_with("+OK") {
        return Ok(vec![first]);
    }
    let mut lines = vec![first];
    loop {
        let l = read_line(w)?;
        if l == "." {
            return Ok(lines);
        }
        lines.push(l);
        if lines.len() >= limits::CHECK_MAX_REPLY_LINES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "reply too long"));
        }
    }
}

/// What the plain-text dialogue showed.
#[derive(Default)]
struct Plain {
    starttls: bool,
    auth_before_tls: bool,
    /// The STARTTLS command refused (with the reply), when it was.
    refused: Option<String>,
}

/// Greeting and capabilities on a STARTTLS port.
fn greet(w: &mut Wire, fam: Family) -> io::Result<Plain> {
    let mut p = Plain::default();
    match fam {
        Family::Smtp => {
            let g = smtp_reply(w)?;
            if !g[0].starts_with("220") {
                return Err(io::Error::other(format!("greeting: {}", g.join(" | "))));
            }
            w.write_all(b"EHLO check-server.smimekit.invalid\r\n")?;
            let caps = smtp_reply(w)?;
            for c in caps.iter().skip(1).map(|l| l.get(4..).unwrap_or("")) {
                let u = c.to_ascii_uppercase();
                if u == "STARTTLS" {
                    p.starttls = true;
                }
                if u.starts_with("AUTH ") || u.starts_with("AUTH=") {
                    p.auth_before_tls = true;
                }
            }
        }
        Family::Imap => {
            let g = read_line(w)?;
            if !g.starts_with("* OK") {
                return Err(io::Error::other(format!("greeting: {g}")));
            }
            w.write_all(b"c1 CAPABILITY\r\n")?;
            let lines = imap_reply(w, "c1")?;
            let caps: Vec<String> = lines
                .iter()
                .filter(|l| l.to_ascii_uppercase().starts_with("* CAPABILITY"))
                .flat_map(|l| l.split_whitespace().skip(2).map(|s| s.to_ascii_uppercase()))
                .collect();
            p.starttls = caps.iter().any(|c| c == "STARTTLS");
            p.auth_before_tls = !caps.iter().any(|c| c == "LOGINDISABLED");
        }
        Family::Pop3 => {
            let g = read_line(w)?;
            if !g.starts_with("+OK") {
                return Err(io::Error::other(format!("greeting: {g}")));
            }
            w.write_all(b"CAPA\r\n")?;
            let lines = pop3_multi(w)?;
            for c in lines.iter().skip(1) {
                let u = c.to_ascii_uppercase();
                if u == "STLS" {
                    p.starttls = true;
                }
                if u == "USER" || (u.starts_with("SASL ") && u.len() > 5) {
                    p.auth_before_tls = true;
                }
            }
        }
        Family::Bare => {}
    }
    Ok(p)
}

/// Sends the STARTTLS command (with `pipelined` appended in the same write) and reads its reply; Ok(None)
/// when the server agreed, Ok(Some(reply)) when it refused.
fn starttls(w: &mut Wire, fam: Family, pipelined: &str) -> io::Result<Option<String>> {
    match fam {
        Family::Smtp => {
            w.write_all(format!("STARTTLS\r\n{pipelined}").as_bytes())?;
            let r = smtp_reply(w)?;
            Ok((!r[0].starts_with("220")).then(|| r.join(" | ")))
        }
        Family::Imap => {
            w.write_all(format!("c2 STARTTLS\r\n{pipelined}").as_bytes())?;
            let r = imap_reply(w, "c2")?;
            let last = r.last().cloned().unwrap_or_default();
            Ok((!last.to_ascii_uppercase().starts_with("C2 OK")).then_some(last))
        }
        Family::Pop3 => {
            w.write_all(format!("STLS\r\n{pipelined}").as_bytes())?;
            let r = read_line(w)?;
            Ok((!r.starts_with("+OK")).then_some(r))
        }
        Family::Bare => Ok(None),
    }
}

/// Opens a connection ready for the TLS handshake (after STARTTLS on a plain-text port).
fn open_for_tls(
    host: &str,
    at: Option<IpAddr>,
    port: u16,
    proto: Protocol,
) -> io::Result<(Wire, Plain)> {
    let (w, _) = connect(host, at, port)?;
    prepare(w, proto)
}

/// The plain-text dialogue up to the handshake on a connected wire (nothing for implicit TLS).
fn prepare(mut w: Wire, proto: Protocol) -> io::Result<(Wire, Plain)> {
    if proto.implicit() {
        return Ok((w, Plain::default()));
    }
    let fam = proto.family();
    let mut p = greet(&mut w, fam)?;
    if p.starttls {
        p.refused = starttls(&mut w, fam, "")?;
    }
    Ok((w, p))
}

fn connector(opts: &CheckOptions, only: Option<SslVersion>) -> Result<Connector> {
    Connector::new(&TlsOptions {
        extra_anchors: opts.anchors.clone(),
        no_system_store: opts.no_system_store,
        min_version: only,
        max_version: only,
    })
}

fn check_port(
    host: &str,
    at: Option<IpAddr>,
    port: u16,
    proto: Protocol,
    opts: &CheckOptions,
) -> PortReport {
    let mut r = PortReport::new(port, proto);
    let fam = proto.family();
    let wire = match connect(host, at, port) {
        Ok((w, _)) => w,
        Err(ce) => {
            r.line(Status::Info, "reachable", format!("no ({ce})"));
            return r;
        }
    };
    let (w, plain) = match prepare(wire, proto) {
        Ok(x) => x,
        Err(e) => {
            r.reachable = true;
            r.line(Status::Ok, "reachable", "yes");
            r.line(
                Status::Problem,
                "protocol",
                format!("the {} dialogue failed: {e}", proto.name()),
            );
            r.problem(
                "protocol_error",
                format!(
                    "port {port} did not answer as a {} server: {e}",
                    proto.name()
                ),
                "check that this port runs the service named (or give --protocol)",
            );
            return r;
        }
    };
    r.reachable = true;
    r.line(Status::Ok, "reachable", "yes");
    if !proto.implicit() {
        r.starttls_advertised = Some(plain.starttls);
        r.auth_before_tls = Some(plain.auth_before_tls);
        let cmd = if fam == Family::Pop3 {
            "STLS"
        } else {
            "STARTTLS"
        };
        if plain.auth_before_tls {
            r.line(
                Status::Problem,
                "no login before TLS",
                "the server offers login/AUTH before TLS",
            );
            r.problem(
                "auth_before_tls",
                format!("the server offers login before {cmd}: a client could send the password in clear"),
                match fam {
                    Family::Smtp => "offer AUTH only after STARTTLS (Postfix: smtpd_tls_auth_only = yes; Exim: auth_advertise_hosts = ${if eq{$tls_in_cipher}{}{}{*}})",
                    Family::Imap => "refuse plain-text login (Dovecot: disable_plaintext_auth = yes, or ssl = required): the server then advertises LOGINDISABLED",
                    _ => "refuse USER/PASS and SASL before STLS (Dovecot: disable_plaintext_auth = yes, or ssl = required)",
                },
            );
        } else {
            r.line(Status::Ok, "no login before TLS", "login only after TLS");
        }
        if !plain.starttls {
            r.tls_mode = Some("none");
            r.line(Status::Problem, "TLS", format!("{cmd} not advertised"));
            r.problem(
                "no_starttls",
                format!("port {port} does not offer {cmd}: everything, passwords included, travels in clear"),
                "enable STARTTLS with a certificate (Postfix: smtpd_tls_security_level = may and smtpd_tls_chain_files; Dovecot: ssl = yes)",
            );
            return r;
        }
        if let Some(refusal) = plain.refused {
            r.tls_mode = Some("none");
            r.line(Status::Problem, "TLS", format!("{cmd} refused: {refusal}"));
            r.problem(
                "starttls_refused",
                format!("the server advertises {cmd} but refused it: {refusal}"),
                "check the server's TLS configuration and logs (certificate and key files readable?)",
            );
            return r;
        }
        r.tls_mode = Some("starttls");
    } else {
        r.tls_mode = Some("implicit");
    }

    let hs = connector(opts, None).and_then(|c| {
        c.connect(host, w)
            .map(|(s, hs)| (s.ssl().ocsp_status().map(<[u8]>::to_vec), hs))
    });
    // Old versions: one handshake each, allowing only that version.
    let mut weak_hs = None;
    for (v, name) in [(SslVersion::TLS1, "TLSv1"), (SslVersion::TLS1_1, "TLSv1.1")] {
        let got = open_for_tls(host, at, port, proto)
            .ok()
            .filter(|(_, p)| proto.implicit() || (p.starttls && p.refused.is_none()))
            .and_then(|(w, _)| connector(opts, Some(v)).ok()?.connect(host, w).ok());
        if let Some((_, h)) = got {
            r.weak_versions.push(name.to_string());
            weak_hs.get_or_insert(h);
        }
    }
    match hs {
        Ok((staple, hs)) => {
            r.tls_version = Some(hs.version.clone());
            r.cipher = Some(hs.cipher.clone());
            r.line(
                Status::Ok,
                "TLS",
                format!(
                    "{} ({}), {}",
                    r.tls_mode.unwrap_or(""),
                    hs.version,
                    hs.cipher
                ),
            );
            analyse_chain(&mut r, &hs, opts);
            ocsp(&mut r, staple.as_deref(), &hs, opts);
            revocation(&mut r, &hs, opts);
        }
        Err(e) => {
            r.line(
                Status::Problem,
                "TLS",
                format!("no TLS 1.2/1.3: {}", e.message()),
            );
            r.problem(
                "handshake_failed",
                format!(
                    "no TLS 1.2 or newer handshake was possible: {}",
                    e.message()
                ),
                "enable TLS 1.2 and 1.3 with current ciphers on the server",
            );
            // The chain can still be read from an old-version handshake.
            if let Some(h) = &weak_hs {
                r.tls_version = Some(h.version.clone());
                r.cipher = Some(h.cipher.clone());
                analyse_chain(&mut r, h, opts);
            }
        }
    }
    if r.weak_versions.is_empty() {
        r.line(
            Status::Ok,
            "old TLS versions refused",
            "TLS 1.0 and 1.1 refused",
        );
    } else {
        let list = r.weak_versions.join(", ");
        r.line(
            Status::Problem,
            "old TLS versions refused",
            format!("accepted: {list}"),
        );
        r.problem(
            "weak_tls_versions",
            format!("the server still accepts {list} (deprecated by RFC 8996)"),
            "allow only TLS 1.2 and 1.3 (Postfix: smtpd_tls_protocols = >=TLSv1.2 and smtpd_tls_mandatory_protocols = >=TLSv1.2; Dovecot: ssl_min_protocol = TLSv1.2)",
        );
    }

    if !proto.implicit() {
        match injection_probe(host, at, port, proto) {
            Ok((vulnerable, how)) => {
                r.starttls_injection = Some(vulnerable);
                if vulnerable {
                    r.line(
                        Status::Problem,
                        "STARTTLS injection",
                        format!("vulnerable: {how}"),
                    );
                    r.problem(
                        "starttls_injection",
                        "the server keeps commands received before the TLS handshake and answers them inside TLS (STARTTLS command injection, CVE-2011-0411 class): an attacker on the path can inject commands".into(),
                        "update the server software; it must discard buffered input when STARTTLS succeeds",
                    );
                } else {
                    r.line(
                        Status::Ok,
                        "STARTTLS injection",
                        format!("not vulnerable: {how}"),
                    );
                }
            }
            Err(e) => r.line(
                Status::Info,
                "STARTTLS injection",
                format!("not tested: {e}"),
            ),
        }
    }
    r
}

/// Sends STARTTLS and a NOOP in one segment, completes the handshake, and waits briefly: a NOOP answer arriving
/// inside TLS, without any command sent there, means the server kept and ran the plain-text command.
fn injection_probe(
    host: &str,
    at: Option<IpAddr>,
    port: u16,
    proto: Protocol,
) -> std::result::Result<(bool, String), String> {
    let fam = proto.family();
    let (mut w, wait) = connect(host, at, port).map_err(|e| e.to_string())?;
    let p = greet(&mut w, fam).map_err(|e| e.to_string())?;
    if !p.starttls {
        return Err("STARTTLS not advertised".into());
    }
    let (noop, answer): (&str, &[&str]) = match fam {
        Family::Smtp => ("NOOP\r\n", &["250"]),
        Family::Imap => ("c3 NOOP\r\n", &["c3 ", "C3 "]),
        Family::Pop3 => ("NOOP\r\n", &["+OK"]),
        Family::Bare => return Err("no plain-text dialogue".into()),
    };
    if let Some(refused) = starttls(&mut w, fam, noop).map_err(|e| e.to_string())? {
        return Err(format!("STARTTLS refused: {refused}"));
    }
    // Any verification outcome will do here: only the dialogue is under test.
    let c = connector(&CheckOptions::default(), None).map_err(|e| e.to_string())?;
    let (mut tls, _) = match c.connect(host, w) {
        Ok(x) => x,
        // Dovecot and others drop a client that sends anything after STARTTLS: safe.
        Err(_) => {
            return Ok((
                false,
                "the server closed the connection on the pipelined command".into(),
            ));
        }
    };
    wait.set(limits::CHECK_INJECTION_WAIT);
    let mut buf = [0u8; 512];
    match tls.read(&mut buf) {
        Ok(n) if n > 0 => {
            let got = String::from_utf8_lossy(&buf[..n]);
            let hit = answer.iter().any(|a| got.starts_with(a));
            let line = got.lines().next().unwrap_or("").to_string();
            Ok((hit, format!("answered inside TLS: {line}")))
        }
        _ => Ok((false, "the pipelined command was discarded".into())),
    }
}

/// Checks revocation (CRL and OCSP, the revocation module's rules) of every certificate of the validated chain
/// but the anchor; nothing is checked for a chain that is not trusted. A revoked certificate is a problem; a
/// status nobody could establish is information.
fn revocation(r: &mut PortReport, hs: &Handshake, opts: &CheckOptions) {
    use crate::revocation::{Checker, Status as Rev, describe};
    if hs.verified_chain.is_empty() {
        r.line(
            Status::Info,
            "Revocation",
            "not checked (the chain is not trusted)",
        );
        return;
    }
    let facts = Checker::new(&opts.revocation).check_chain(&hs.verified_chain);
    for f in facts.iter().filter(|f| f.status != Rev::NotChecked) {
        let who = if f.depth == 0 {
            "the server's certificate".to_string()
        } else {
            format!("the CA certificate {}", crate::display::field(&f.subject))
        };
        match f.status {
            Rev::Revoked => {
                r.line(Status::Problem, "Revocation", format!("{who}: REVOKED"));
                r.problem(
                    "revoked",
                    format!("{who} is revoked: {}", describe(f)),
                    "install a new certificate from the CA (a revoked certificate must not be served)",
                );
            }
            Rev::Good => r.line(Status::Ok, "Revocation", format!("{who}: {}", describe(f))),
            _ => r.line(
                Status::Info,
                "Revocation",
                format!("{who}: {}", describe(f)),
            ),
        }
    }
    r.revocation = facts;
}

/// Reports the stapled OCSP response, if any. Mail servers rarely staple (Postfix and Dovecot cannot), so its
/// absence is information, not a problem; a stapled "revoked" is a problem.
fn ocsp(r: &mut PortReport, staple: Option<&[u8]>, hs: &Handshake, opts: &CheckOptions) {
    use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspResponse, OcspResponseStatus};
    let Some(der) = staple else {
        r.ocsp_stapled = Some(false);
        r.line(
            Status::Info,
            "OCSP stapling",
            "not offered (clients check revocation themselves)",
        );
        return;
    };
    r.ocsp_stapled = Some(true);
    let leaf = hs.peer_chain.first();
    let issuer = leaf.and_then(|l| {
        hs.peer_chain
            .iter()
            .skip(1)
            .chain(opts.known_intermediates.iter())
            .chain(opts.anchors.iter())
            .find(|i| i.issued(l) == X509VerifyResult::OK)
    });
    let status = (|| {
        let resp = OcspResponse::from_der(der).map_err(|_| "unreadable response".to_string())?;
        if resp.status() != OcspResponseStatus::SUCCESSFUL {
            return Err(format!("responder status {}", resp.status().as_raw()));
        }
        let basic = resp.basic().map_err(|_| "no basic response".to_string())?;
        let (Some(leaf), Some(issuer)) = (leaf, issuer) else {
            return Err("issuer unknown: cannot match the response".into());
        };
        let id = OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), leaf, issuer)
            .map_err(|_| "cannot build the certificate id".to_string())?;
        let st = basic
            .find_status(&id)
            .ok_or_else(|| "the response is not about this certificate".to_string())?;
        Ok(match st.status {
            OcspCertStatus::GOOD => "good",
            OcspCertStatus::REVOKED => "revoked",
            _ => "unknown",
        }
        .to_string())
    })();
    match status {
        Ok(s) if s == "revoked" => {
            r.line(
                Status::Problem,
                "OCSP stapling",
                "stapled: the certificate is REVOKED",
            );
            r.problem(
                "revoked",
                "the server's own stapled OCSP response says its certificate is revoked".into(),
                "replace the certificate now",
            );
            r.ocsp_status = Some(s);
        }
        Ok(s) => {
            r.line(Status::Ok, "OCSP stapling", format!("stapled, status {s}"));
            r.ocsp_status = Some(s);
        }
        Err(e) => {
            r.line(
                Status::Warning,
                "OCSP stapling",
                format!("stapled, but {e}"),
            );
            r.ocsp_status = Some(e);
        }
    }
}

fn days_left(x: &X509Ref, now: i64) -> i64 {
    (cert::unix_time(x.not_after()) - now).div_euclid(86_400)
}

/// Subject and issuer are the same name (RFC 5280 "self-issued"); a root, or a self-signed server certificate
/// (whose keyUsage may well lack keyCertSign, which `X509_check_issued` would hold against it).
fn self_issued(x: &X509Ref) -> bool {
    match (x.subject_name().to_der(), x.issuer_name().to_der()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn aia_ca_issuers(x: &X509Ref) -> Option<String> {
    x.authority_info()?
        .iter()
        .filter(|a| a.method().nid() == openssl::nid::Nid::AD_CA_ISSUERS)
        .find_map(|a| a.location().uri().map(str::to_string))
}

/// Whether `chain` (leaf first) plus `extra` verifies to a trusted root under `opts` (host name not checked).
fn would_verify(chain: &[X509], extra: &X509, opts: &CheckOptions) -> bool {
    let Ok(mut sb) = X509StoreBuilder::new() else {
        return false;
    };
    if !opts.no_system_store && sb.set_default_paths().is_err() {
        return false;
    }
    for a in &opts.anchors {
        let _ = sb.add_cert(a.clone());
    }
    let store = sb.build();
    let Ok(mut untrusted) = Stack::new() else {
        return false;
    };
    for c in chain.iter().skip(1).chain(std::iter::once(extra)) {
        let _ = untrusted.push(c.clone());
    }
    let Ok(mut ctx) = X509StoreContext::new() else {
        return false;
    };
    ctx.init(&store, &chain[0], &untrusted, |c| c.verify_cert())
        .unwrap_or(false)
}

fn analyse_chain(r: &mut PortReport, hs: &Handshake, opts: &CheckOptions) {
    let now = cert::now();
    let sent = &hs.peer_chain;
    r.peer_chain_der = sent.iter().filter_map(|x| x.to_der().ok()).collect();
    for x in sent {
        let (key, _) = cert::key_description(x);
        r.chain.push(ChainCert {
            subject: cert::name_to_string(x.subject_name()),
            issuer: cert::name_to_string(x.issuer_name()),
            key,
            not_before: cert::rfc3339(cert::unix_time(x.not_before())),
            not_after: cert::rfc3339(cert::unix_time(x.not_after())),
            days_left: days_left(x, now),
        });
    }
    let Some(leaf) = sent.first() else {
        r.line(Status::Problem, "certificate", "the server sent none");
        r.problem(
            "no_certificate",
            "the server sent no certificate".into(),
            "configure a certificate and key",
        );
        return;
    };
    let has = |c: Check| hs.problems.iter().any(|p| p.check == c);

    // Trust.
    let untrusted = has(Check::Chain) || has(Check::SelfSigned) || has(Check::Other);
    r.trusted = Some(!untrusted);
    let last = sent.last().unwrap_or(leaf);
    if !untrusted {
        r.line(
            Status::Ok,
            "certificate trusted",
            "the chain leads to a trusted root",
        );
    } else if sent.len() == 1 && self_issued(leaf) {
        r.line(Status::Problem, "certificate trusted", "self-signed");
        r.problem(
            "self_signed",
            format!(
                "the server's certificate ({}) is self-signed: no client trusts it without an exception",
                r.chain[0].subject
            ),
            "install a certificate from a CA clients trust (e.g. Let's Encrypt via certbot), with its chain",
        );
    } else if !self_issued(last)
        && has(Check::Chain)
        && (aia_ca_issuers(last).is_some()
            || opts
                .known_intermediates
                .iter()
                .any(|i| i.issued(last) == X509VerifyResult::OK && would_verify(sent, i, opts)))
    {
        // An intermediate smimekit can identify: one a --ca file holds that completes the chain, or the one
        // the last certificate's AIA points to.
        let subject = cert::name_to_string(last.issuer_name());
        let aia_url = aia_ca_issuers(last);
        let found = opts
            .known_intermediates
            .iter()
            .find(|i| i.issued(last) == X509VerifyResult::OK);
        let confirmed = found.is_some_and(|i| would_verify(sent, i, opts));
        let at = aia_url
            .as_deref()
            .map(|u| format!(" (its CA publishes it at {u})"))
            .unwrap_or_default();
        r.line(
            Status::Problem,
            "certificate trusted",
            format!("intermediate missing: {subject}"),
        );
        r.problem(
            "missing_intermediate",
            format!(
                "the server does not send the intermediate certificate \"{subject}\"{at}: clients that do not \
                 already have it cannot verify the chain{}",
                if confirmed {
                    " (with it, the chain verifies)"
                } else {
                    ""
                }
            ),
            "configure the server's chain file: its certificate followed by the intermediate(s) (Postfix: \
             smtpd_tls_chain_files = key.pem, fullchain.pem; Dovecot: ssl_cert = </path/fullchain.pem; Exim: \
             tls_certificate = fullchain.pem)",
        );
        r.missing_intermediate = Some(MissingIntermediate {
            subject,
            aia_url,
            confirmed,
        });
    } else {
        let why = hs
            .problems
            .iter()
            .find(|p| matches!(p.check, Check::Chain | Check::SelfSigned | Check::Other))
            .map(|p| p.text.clone())
            .unwrap_or_default();
        r.line(Status::Problem, "certificate trusted", format!("no: {why}"));
        let message = if self_issued(last) {
            format!(
                "the chain ends at \"{}\", which is not a trusted root ({why})",
                cert::name_to_string(last.subject_name())
            )
        } else {
            format!(
                "the chain stops at \"{}\", issued by \"{}\", which the server did not send and which is not a \
                 trusted root: either the server's chain file lacks that intermediate, or its CA is not one \
                 clients trust ({why})",
                cert::name_to_string(last.subject_name()),
                cert::name_to_string(last.issuer_name())
            )
        };
        r.problem(
            "untrusted",
            message,
            "use a certificate from a CA clients trust, sent with its intermediates; for a private CA, give its \
             root with --ca",
        );
    }

    // Host name.
    let host_ok = !has(Check::HostName);
    r.hostname_ok = Some(host_ok);
    if host_ok {
        r.line(Status::Ok, "host name", format!("valid for {}", hs.host));
    } else {
        let names = leaf
            .subject_alt_names()
            .map(|s| {
                s.iter()
                    .filter_map(|g| {
                        g.dnsname().map(str::to_string).or_else(|| {
                            g.ipaddress().map(|b| match b.len() {
                                4 => std::net::IpAddr::from(
                                    <[u8; 4]>::try_from(b).unwrap_or_default(),
                                )
                                .to_string(),
                                16 => std::net::IpAddr::from(
                                    <[u8; 16]>::try_from(b).unwrap_or_default(),
                                )
                                .to_string(),
                                _ => "?".into(),
                            })
                        })
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "none".into());
        r.line(
            Status::Problem,
            "host name",
            format!("not valid for {} (names: {names})", hs.host),
        );
        r.problem(
            "hostname_mismatch",
            format!(
                "the certificate is not valid for {} (its subjectAltName lists: {names})",
                hs.host
            ),
            "install a certificate whose subjectAltName includes the name clients connect to (or connect with \
             the name the certificate is for)",
        );
    }

    // Validity.
    let mut validity_ok = true;
    for (i, (x, c)) in sent.iter().zip(r.chain.clone()).enumerate() {
        let who = if i == 0 {
            "the server's certificate".to_string()
        } else {
            format!("the chain certificate \"{}\"", c.subject)
        };
        if cert::unix_time(x.not_after()) < now {
            validity_ok = false;
            r.problem(
                "expired",
                format!("{who} expired on {}", c.not_after),
                "renew the certificate and install it with its chain",
            );
        } else if cert::unix_time(x.not_before()) > now {
            validity_ok = false;
            r.problem(
                "not_yet_valid",
                format!("{who} is not valid before {}", c.not_before),
                "check the server's clock and the certificate's dates",
            );
        }
    }
    let leaf_days = r.chain[0].days_left;
    if !validity_ok {
        r.line(Status::Problem, "validity", "expired or not yet valid");
    } else if leaf_days < limits::CHECK_EXPIRY_WARN_DAYS {
        r.line(
            Status::Warning,
            "validity",
            format!("expires in {leaf_days} days ({})", r.chain[0].not_after),
        );
        r.warning(
            "expires_soon",
            format!(
                "the server's certificate expires in {leaf_days} days ({})",
                r.chain[0].not_after
            ),
            "renew it now (and automate renewal)",
        );
    } else {
        r.line(
            Status::Ok,
            "validity",
            format!("{leaf_days} days left ({})", r.chain[0].not_after),
        );
    }

    // Order and extras.
    let mut order_ok = true;
    let mut extra = false;
    for i in 0..sent.len().saturating_sub(1) {
        if sent[i + 1].issued(&sent[i]) == X509VerifyResult::OK || self_issued(&sent[i]) {
            continue;
        }
        if sent[i + 2..]
            .iter()
            .any(|x| x.issued(&sent[i]) == X509VerifyResult::OK)
        {
            order_ok = false;
            r.problem(
                "chain_order",
                format!(
                    "certificate {} sent (\"{}\") is not the issuer of certificate {}: the chain is out of order",
                    i + 2,
                    r.chain[i + 1].subject,
                    i + 1
                ),
                "list the server's certificate first, then each issuer in turn",
            );
        } else {
            extra = true;
            r.warning(
                "chain_extra",
                format!(
                    "certificate {} sent (\"{}\") does not belong to the server's chain",
                    i + 2,
                    r.chain[i + 1].subject
                ),
                "send only the server's certificate and its intermediates",
            );
        }
    }
    let roots: Vec<String> = sent
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, x)| self_issued(x))
        .map(|(i, _)| r.chain[i].subject.clone())
        .collect();
    for root in &roots {
        r.warning(
            "root_sent",
            format!("the server also sends the root \"{root}\": clients must already have it, so it only adds bytes"),
            "leave the root out of the server's chain file",
        );
    }
    if !order_ok {
        r.line(Status::Problem, "chain as sent", "out of order");
    } else if extra || !roots.is_empty() {
        let what = if extra {
            "certificates that do not belong to the chain"
        } else {
            "the root (unneeded)"
        };
        r.line(Status::Warning, "chain as sent", format!("includes {what}"));
    } else {
        r.line(
            Status::Ok,
            "chain as sent",
            format!("{} certificate(s), in order", sent.len()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_round_trip() {
        for (port, p) in DEFAULT_PORTS {
            assert_eq!(Protocol::parse(p.name()), Some(p));
            assert_eq!(p.default_port(), port);
        }
    }
}

// ---- --domain: find the servers in DNS, MTA-STS, DANE ----

/// An MX record.
#[derive(Debug, Clone, Serialize)]
pub struct MxHost {
    /// Preference (lower first).
    pub preference: u16,
    /// The mail exchanger.
    pub host: String,
}

/// An RFC 6186 SRV record.
#[derive(Debug, Clone, Serialize)]
pub struct SrvRecord {
    /// The service label (e.g. `_submissions._tcp`).
    pub service: String,
    /// Target host.
    pub target: String,
    /// Target port.
    pub port: u16,
    /// Priority (lower first).
    pub priority: u16,
    /// Weight.
    pub weight: u16,
}

/// One TLSA record and whether it matched the certificate sent.
#[derive(Debug, Clone, Serialize)]
pub struct TlsaRecord {
    /// Certificate usage (0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE).
    pub usage: u8,
    /// Selector (0 full certificate, 1 SubjectPublicKeyInfo).
    pub selector: u8,
    /// Matching type (0 exact, 1 SHA-256, 2 SHA-512).
    pub matching_type: u8,
    /// Association data, hex.
    pub data: String,
    /// It matched a certificate the server sent (null: the port could not be checked).
    pub matched: Option<bool>,
}

/// The TLSA records of one service (`_PORT._tcp.HOST`).
#[derive(Debug, Clone, Serialize)]
pub struct TlsaSet {
    /// The owner name asked.
    pub name: String,
    /// Its records.
    pub records: Vec<TlsaRecord>,
    /// The resolver said it validated them (AD bit).
    pub dnssec_authenticated: bool,
}

/// What `--domain` found.
#[derive(Debug, Clone, Serialize)]
pub struct DomainReport {
    /// The domain.
    pub domain: String,
    /// The DNS server asked.
    pub dns_server: String,
    /// MX hosts, by preference.
    pub mx: Vec<MxHost>,
    /// RFC 6186 SRV records found.
    pub srv: Vec<SrvRecord>,
    /// The `_mta-sts` TXT record, if any.
    pub mta_sts: Option<String>,
    /// TLSA records per checked service.
    pub tlsa: Vec<TlsaSet>,
    /// One report per host checked (MX hosts on 25, SRV targets on their ports).
    pub servers: Vec<ServerReport>,
    /// Problems and warnings about the DNS set-up.
    pub problems: Vec<Problem>,
}

impl DomainReport {
    /// 0 all passed, 1 a problem, 2 nothing could be checked.
    pub fn exit_code(&self) -> i32 {
        if !self
            .servers
            .iter()
            .flat_map(|s| &s.ports)
            .any(|p| p.reachable)
        {
            2
        } else if self.problems.iter().any(|p| p.severity == Status::Problem)
            || self.servers.iter().any(|s| s.exit_code() == 1)
        {
            1
        } else {
            0
        }
    }
}

const SRV_SERVICES: [(&str, Protocol); 6] = [
    ("_submissions._tcp", Protocol::Submissions),
    ("_submission._tcp", Protocol::Submission),
    ("_imaps._tcp", Protocol::Imaps),
    ("_imap._tcp", Protocol::Imap),
    ("_pop3s._tcp", Protocol::Pop3s),
    ("_pop3._tcp", Protocol::Pop3),
];

/// Finds the mail servers of `domain` in DNS (MX; RFC 6186 SRV), reads its MTA-STS TXT record, checks every
/// server found (MX hosts on port 25, SRV targets on their ports) and matches each service's TLSA records
/// against the certificate it sent.
pub fn check_domain(
    domain: &str,
    dns: &super::dns::Resolver,
    dns_name: &str,
    opts: &CheckOptions,
) -> Result<DomainReport> {
    use super::dns::{RType, Record};
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let mut rep = DomainReport {
        domain: domain.clone(),
        dns_server: dns_name.to_string(),
        mx: Vec::new(),
        srv: Vec::new(),
        mta_sts: None,
        tlsa: Vec::new(),
        servers: Vec::new(),
        problems: Vec::new(),
    };
    let mx = dns.query(&domain, RType::Mx)?;
    for r in mx.records {
        if let Record::Mx(preference, host) = r
            && !host.is_empty()
        {
            rep.mx.push(MxHost { preference, host });
        }
    }
    rep.mx.sort_by_key(|m| m.preference);
    if rep.mx.is_empty() {
        rep.problems.push(Problem {
            code: "no_mx",
            severity: Status::Warning,
            message: format!(
                "{domain} has no MX record: senders fall back to its address record, if any"
            ),
            remedy: "publish an MX record naming the server that receives mail for the domain"
                .into(),
        });
    }
    for (svc, _) in SRV_SERVICES {
        let a = dns.query(&format!("{svc}.{domain}"), RType::Srv)?;
        for r in a.records {
            // Target "." means "not offered" (RFC 6186 §3).
            if let Record::Srv(priority, weight, port, target) = r
                && !target.is_empty()
            {
                rep.srv.push(SrvRecord {
                    service: svc.to_string(),
                    target,
                    port,
                    priority,
                    weight,
                });
            }
        }
    }
    let sts = dns.query(&format!("_mta-sts.{domain}"), RType::Txt)?;
    rep.mta_sts = sts.records.iter().find_map(|r| match r {
        Record::Txt(t) if t.starts_with("v=STSv1") => Some(t.clone()),
        _ => None,
    });
    if let Some(t) = &rep.mta_sts
        && !t.split(';').any(|kv| kv.trim().starts_with("id="))
    {
        rep.problems.push(Problem {
            code: "mta_sts_invalid",
            severity: Status::Problem,
            message: format!("the _mta-sts TXT record has no id: \"{t}\""),
            remedy:
                "publish \"v=STSv1; id=<new value each time the policy changes>\" (RFC 8461 §3.1)"
                    .into(),
        });
    }

    // Hosts to check, each with its ports, in the order found.
    let mut hosts: Vec<(String, Vec<(u16, Protocol)>)> = Vec::new();
    let mut add = |h: &str, port: u16, proto: Protocol| {
        let h = h.to_ascii_lowercase();
        match hosts.iter_mut().find(|(n, _)| *n == h) {
            Some((_, ports)) => {
                if !ports.iter().any(|(p, _)| *p == port) {
                    ports.push((port, proto));
                }
            }
            None => hosts.push((h, vec![(port, proto)])),
        }
    };
    for m in &rep.mx {
        add(&m.host, 25, Protocol::Smtp);
    }
    for s in &rep.srv {
        let proto = SRV_SERVICES
            .iter()
            .find(|(n, _)| *n == s.service)
            .map_or(Protocol::Tls, |x| x.1);
        add(&s.target, s.port, proto);
    }
    hosts.truncate(limits::DOMAIN_MAX_HOSTS);

    for (host, ports) in hosts {
        let addrs = dns.addresses(&host).unwrap_or_default();
        let mut sr = ServerReport {
            host: host.clone(),
            ports: Vec::new(),
        };
        for (port, proto) in ports {
            let pr = match addrs.first() {
                Some(ip) => check_port(&host, Some(*ip), port, proto, opts),
                None => {
                    let mut r = PortReport::new(port, proto);
                    r.line(
                        Status::Info,
                        "reachable",
                        format!("no: {host} has no address in DNS"),
                    );
                    r
                }
            };
            let name = format!("_{port}._tcp.{host}");
            let t = dns.query(&name, RType::Tlsa)?;
            let records: Vec<TlsaRecord> = t
                .records
                .iter()
                .filter_map(|r| match r {
                    Record::Tlsa(u, s, m, d) => Some(TlsaRecord {
                        usage: *u,
                        selector: *s,
                        matching_type: *m,
                        data: super::tls::hex(d),
                        matched: pr
                            .reachable
                            .then(|| tlsa_matches(*u, *s, *m, d, &pr.peer_chain_der))
                            .filter(|_| !pr.peer_chain_der.is_empty()),
                    }),
                    _ => None,
                })
                .collect();
            if !records.is_empty() {
                let any = records.iter().any(|r| r.matched == Some(true));
                let checked = records.iter().any(|r| r.matched.is_some());
                if checked && !any {
                    rep.problems.push(Problem {
                        code: "tlsa_mismatch",
                        severity: Status::Problem,
                        message: format!(
                            "no TLSA record at {name} matches the certificate {host}:{port} sent: DANE senders will refuse to deliver"
                        ),
                        remedy: "publish TLSA records for the current key before installing a new certificate (e.g. \"3 1 1\" = SHA-256 of the public key, which survives renewals with the same key)".into(),
                    });
                }
                if !t.authenticated {
                    rep.problems.push(Problem {
                        code: "tlsa_not_authenticated",
                        severity: Status::Warning,
                        message: format!("the TLSA records at {name} were not DNSSEC-validated by the resolver (no AD bit): DANE needs a signed zone"),
                        remedy: "sign the zone with DNSSEC (and check with a validating resolver)".into(),
                    });
                }
                rep.tlsa.push(TlsaSet {
                    name,
                    records,
                    dnssec_authenticated: t.authenticated,
                });
            }
            sr.ports.push(pr);
        }
        rep.servers.push(sr);
    }
    Ok(rep)
}

/// Whether TLSA (usage, selector, matching type, data) matches the chain sent (leaf first).
fn tlsa_matches(usage: u8, selector: u8, mtype: u8, data: &[u8], chain: &[Vec<u8>]) -> bool {
    use openssl::hash::{MessageDigest, hash};
    let candidates: &[Vec<u8>] = if matches!(usage, 1 | 3) {
        &chain[..chain.len().min(1)]
    } else {
        chain
    };
    candidates.iter().any(|der| {
        let sel = match selector {
            0 => der.clone(),
            1 => match X509::from_der(der)
                .ok()
                .and_then(|x| x.public_key().ok())
                .and_then(|k| k.public_key_to_der().ok())
            {
                Some(s) => s,
                None => return false,
            },
            _ => return false,
        };
        match mtype {
            0 => sel == data,
            1 => hash(MessageDigest::sha256(), &sel).is_ok_and(|h| &*h == data),
            2 => hash(MessageDigest::sha512(), &sel).is_ok_and(|h| &*h == data),
            _ => false,
        }
    })
}
