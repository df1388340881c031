//! A small SMTP submission client (RFC 6409) that fails closed.
//!
//! Rules, each answering a known client flaw (the "NO STARTTLS" study, lettre's F14/F15, SMTP smuggling):
//! - Only TLS sessions exist: implicit TLS (RFC 8314, port 465) or STARTTLS that is *mandatory*: not
//!   advertised, refused with any code, or an EHLO the server will not answer → abort. There is no HELO
//!   fallback and no plaintext mode, so AUTH, MAIL, RCPT and DATA can only ever travel inside TLS.
//! - After the `220` answer to STARTTLS the read buffer must be empty and no byte may be waiting on the
//!   socket: anything there was injected before the handshake (response injection) → abort.
//! - The server's certificate must verify ([`tls::Handshake::require_trusted`]).
//! - After TLS, EHLO again; capabilities learned in clear text are forgotten (RFC 3207 §4.2). AUTH uses only a
//!   mechanism the post-TLS EHLO offers.
//! - Addresses with CR, LF, NUL, `<`, `>`, spaces or other controls are refused (command injection).
//! - DATA: every line end becomes CRLF (bare CR and bare LF too), lines starting with `.` are dot-stuffed, so
//!   nothing in the message can end DATA early (SMTP smuggling). 8-bit content needs 8BITMIME, non-ASCII
//!   addresses need SMTPUTF8, else the message is refused before anything is sent.
//! - Every wait is bounded, and so is the whole exchange ([`super::Deadline`]); reply lines and reply line
//!   counts are capped.
//! - Credentials are never logged or put in an error.

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::ssl::SslStream;
use zeroize::Zeroizing;

use super::tls::{Connector, Handshake, TlsOptions};
use super::{Deadline, TimedStream, connect_tcp, io_error};
use crate::error::{Error, ErrorKind, Result};
use crate::limits;
use crate::secret::Secret;

/// How TLS is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (RFC 8314; port 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
}

impl TlsMode {
    /// The usual mode for a port: 465 implicit, 587 STARTTLS; another port must say.
    pub fn for_port(port: u16) -> Option<TlsMode> {
        match port {
            465 => Some(TlsMode::Implicit),
            587 => Some(TlsMode::Starttls),
            _ => None,
        }
    }
    /// `implicit` or `starttls`.
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Implicit => "implicit",
            TlsMode::Starttls => "starttls",
        }
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct ServerOptions {
    /// Host name (or IP address) — also the name the certificate must carry.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// How TLS starts.
    pub tls: TlsMode,
    /// Trust anchors and protocol versions.
    pub tls_options: TlsOptions,
    /// The SHA-256 of a server certificate the user accepted although it does not verify.
    pub accept_fingerprint: Option<[u8; 32]>,
    /// Each wait (connect, handshake, one reply); the whole exchange gets [`limits::NET_TOTAL_FACTOR`] times it.
    pub timeout: Duration,
    /// Name given in EHLO.
    pub ehlo_name: String,
}

impl ServerOptions {
    /// `host:port` for messages.
    pub fn label(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// How to log in.
pub enum Login {
    /// A password, sent with AUTH PLAIN or LOGIN (whichever the server offers after TLS, PLAIN first).
    Password {
        /// The user name.
        user: String,
        /// The password.
        secret: Secret,
    },
    /// An OAuth 2 access token, sent with XOAUTH2 or OAUTHBEARER.
    OAuth2 {
        /// The user name (the mailbox address).
        user: String,
        /// The access token.
        token: Secret,
    },
}

impl Login {
    /// The user name.
    pub fn user(&self) -> &str {
        match self {
            Login::Password { user, .. } | Login::OAuth2 { user, .. } => user,
        }
    }
}

/// One SMTP reply: the code and its text lines.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Text of each line (after the code and separator).
    pub lines: Vec<String>,
}

impl Reply {
    /// The reply as one line, e.g. `550 5.1.1 no such user`, with control characters removed.
    pub fn text(&self) -> String {
        let t = self.lines.join(" / ");
        let t: String = t.chars().filter(|c| !c.is_control()).take(300).collect();
        format!("{} {}", self.code, t)
    }
}

/// What the post-TLS EHLO offered.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Capabilities {
    /// AUTH mechanisms, upper case.
    pub auth: Vec<String>,
    /// 8BITMIME offered.
    pub eight_bit: bool,
    /// SMTPUTF8 offered.
    pub smtputf8: bool,
    /// SIZE limit, if announced.
    pub size: Option<u64>,
    /// STARTTLS offered (meaningful only before TLS).
    pub starttls: bool,
    /// Every keyword line as sent.
    pub lines: Vec<String>,
}

impl Capabilities {
    fn parse(r: &Reply) -> Capabilities {
        let mut c = Capabilities::default();
        // The first line is the server's greeting name, the rest are keywords.
        for l in r.lines.iter().skip(1) {
            let mut words = l.split_ascii_whitespace();
            let kw = words.next().unwrap_or("").to_ascii_uppercase();
            match kw.as_str() {
                "AUTH" => c.auth.extend(words.map(|w| w.to_ascii_uppercase())),
                "8BITMIME" => c.eight_bit = true,
                "SMTPUTF8" => c.smtputf8 = true,
                "STARTTLS" => c.starttls = true,
                "SIZE" => c.size = words.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0),
                _ => {}
            }
            c.lines.push(l.clone());
        }
        c.auth.dedup();
        c
    }
}

/// What [`Session::probe`] learned.
#[derive(Clone)]
pub struct Probe {
    /// The TLS handshake: version, cipher, chain as sent, verification problems (reported, not refused).
    pub handshake: Handshake,
    /// The greeting line.
    pub greeting: String,
    /// The clear-text EHLO capabilities (STARTTLS mode only).
    pub capabilities_before_tls: Option<Capabilities>,
    /// The EHLO capabilities inside TLS.
    pub capabilities: Capabilities,
}

/// The outcome of a submission.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Submitted {
    /// Recipients the server accepted.
    pub accepted: Vec<String>,
    /// Recipients the server refused (only with `skip_rejected`), with its reply.
    pub rejected: Vec<(String, String)>,
    /// The server's final reply to DATA.
    pub reply: String,
    /// The queue id, when the reply names one (`queued as X`).
    pub queue_id: Option<String>,
}

enum Conn {
    Plain(TimedStream),
    Tls(Box<SslStream<TimedStream>>),
    Gone,
}

impl Read for Conn {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(b),
            Conn::Tls(s) => s.read(b),
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(b),
            Conn::Tls(s) => s.write(b),
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::Gone => Ok(()),
        }
    }
}

/// An SMTP session that is inside verified TLS (or accepted by fingerprint) and has said EHLO there.
pub struct Session {
    conn: Conn,
    rbuf: Vec<u8>,
    server: String,
    handshake: Handshake,
    caps: Capabilities,
    /// The greeting and EHLO reply texts, for `account test`.
    greeting: String,
}

/// A protocol failure: the server answered something the rules do not allow.
fn refuse(server: &str, msg: impl std::fmt::Display, hint: &str) -> Error {
    Error::new(ErrorKind::Network, format!("{server}: {msg}")).hint(hint)
}

impl Session {
    /// Connects, sets up TLS (implicit or mandatory STARTTLS), checks the certificate and says EHLO inside
    /// TLS. Nothing but EHLO and STARTTLS is ever sent in clear text.
    pub fn connect(opts: &ServerOptions) -> Result<Session> {
        Self::connect_inner(opts, true).map_err(|e| say_not_sent(e, "nothing was sent"))
    }

    /// For a server check (`check-server`): the same connection as [`Session::connect`] — implicit TLS or
    /// mandatory STARTTLS with every rule — but a certificate that does not verify is *reported* (in
    /// [`Probe::handshake`]) instead of refused. Only EHLO (and STARTTLS) and QUIT are sent: never a login
    /// or a message, so talking to an unverified server here discloses nothing.
    pub fn probe(opts: &ServerOptions) -> Result<Probe> {
        let mut pre = None;
        let s = Self::connect_inner_with(opts, false, &mut pre)?;
        let p = Probe {
            handshake: s.handshake.clone(),
            greeting: s.greeting.clone(),
            capabilities_before_tls: pre,
            capabilities: s.caps.clone(),
        };
        s.quit();
        Ok(p)
    }

    fn connect_inner(opts: &ServerOptions, require_trust: bool) -> Result<Session> {
        Self::connect_inner_with(opts, require_trust, &mut None)
    }

    fn connect_inner_with(
        opts: &ServerOptions,
        require_trust: bool,
        pre_caps: &mut Option<Capabilities>,
    ) -> Result<Session> {
        let server = opts.label();
        let total = opts.timeout * limits::NET_TOTAL_FACTOR;
        let deadline = Deadline::new(total, opts.timeout);
        let connector = Connector::new(&opts.tls_options)?;
        let tcp = connect_tcp(&opts.host, opts.port, &deadline)?;
        let mut s = Session {
            conn: Conn::Plain(tcp),
            rbuf: Vec::new(),
            server: server.clone(),
            handshake: Handshake {
                host: opts.host.clone(),
                version: String::new(),
                cipher: String::new(),
                peer_chain: Vec::new(),
                verified_chain: Vec::new(),
                problems: Vec::new(),
            },
            caps: Capabilities::default(),
            greeting: String::new(),
        };
        match opts.tls {
            TlsMode::Implicit => {
                s.start_tls(&connector, opts, require_trust)?;
                s.read_greeting()?;
            }
            TlsMode::Starttls => {
                s.read_greeting()?;
                let caps = s.ehlo(&opts.ehlo_name)?;
                *pre_caps = Some(caps.clone());
                if !caps.starttls {
                    let auth = if caps.auth.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (it offers AUTH {} in clear text, which smimekit never uses)",
                            caps.auth.join(" ")
                        )
                    };
                    return Err(refuse(
                        &server,
                        format!("the server does not offer STARTTLS{auth}; nothing was sent"),
                        "use implicit TLS (port 465, --tls implicit) if the server offers it; smimekit never logs in or sends without TLS",
                    ));
                }
                s.command(b"STARTTLS\r\n", "STARTTLS")?;
                let r = s.reply("STARTTLS")?;
                if r.code != 220 {
                    return Err(refuse(
                        &server,
                        format!(
                            "the server refused STARTTLS ({}); nothing was sent",
                            r.text()
                        ),
                        "try again later, or use implicit TLS (port 465); smimekit never continues without TLS",
                    ));
                }
                s.check_nothing_pending()?;
                s.start_tls(&connector, opts, require_trust)?;
            }
        }
        // RFC 3207 §4.2: forget what was learned in clear text and ask again.
        s.caps = s.ehlo(&opts.ehlo_name)?;
        Ok(s)
    }

    /// The TLS handshake facts (version, cipher, chain, verification).
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }
    /// The capabilities the server announced inside TLS.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    /// The server's greeting line.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    fn start_tls(
        &mut self,
        connector: &Connector,
        opts: &ServerOptions,
        require_trust: bool,
    ) -> Result<()> {
        let Conn::Plain(tcp) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err(Error::new(ErrorKind::Network, "TLS already started"));
        };
        let (tls, hs) = connector.connect(&opts.host, tcp)?;
        if require_trust {
            hs.require_trusted(opts.accept_fingerprint.as_ref())
                .map_err(|e| say_not_sent(e, "nothing was sent"))?;
        }
        self.handshake = hs;
        self.conn = Conn::Tls(Box::new(tls));
        Ok(())
    }

    /// After the 220 to STARTTLS nothing may have arrived yet: bytes already read, or bytes waiting on the
    /// socket, were sent before the handshake by someone who wants them read as the server's TLS answers.
    fn check_nothing_pending(&mut self) -> Result<()> {
        let mut pending = !self.rbuf.is_empty();
        if let Conn::Plain(t) = &self.conn {
            let tcp = t.tcp();
            if tcp.set_nonblocking(true).is_ok() {
                let mut b = [0u8; 1];
                pending |= matches!(tcp.peek(&mut b), Ok(n) if n > 0);
                let _ = tcp.set_nonblocking(false);
            }
        }
        if pending {
            return Err(refuse(
                &self.server,
                "the server sent data after its STARTTLS answer, before TLS started (a STARTTLS response \
                 injection, as an attacker on the path would do); nothing was sent",
                "do not use this network path; use implicit TLS (port 465) or report it to the server's administrator",
            ));
        }
        Ok(())
    }

    fn read_greeting(&mut self) -> Result<()> {
        let r = self.reply("the greeting")?;
        if r.code != 220 {
            return Err(refuse(
                &self.server,
                format!("the server does not accept mail now ({})", r.text()),
                "try again later",
            ));
        }
        self.greeting = r.text();
        Ok(())
    }

    fn ehlo(&mut self, name: &str) -> Result<Capabilities> {
        self.command(format!("EHLO {name}\r\n").as_bytes(), "EHLO")?;
        let r = self.reply("EHLO")?;
        if r.code != 250 {
            // No HELO fallback: without EHLO there is no STARTTLS and no AUTH (D_1).
            return Err(refuse(
                &self.server,
                format!(
                    "the server does not answer EHLO ({}); smimekit needs ESMTP for TLS and login, nothing was sent",
                    r.text()
                ),
                "check the server name and port: it must be a submission server (465 or 587)",
            ));
        }
        Ok(Capabilities::parse(&r))
    }

    fn command(&mut self, line: &[u8], what: &str) -> Result<()> {
        self.conn
            .write_all(line)
            .and_then(|_| self.conn.flush())
            .map_err(|e| io_error(&self.server, what, e))
    }

    fn read_line(&mut self, what: &str) -> Result<String> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.rbuf) {
                if i + 1 > limits::SMTP_REPLY_LINE_MAX {
                    break;
                }
                let mut line: Vec<u8> = self.rbuf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.rbuf.len() >= limits::SMTP_REPLY_LINE_MAX {
                break;
            }
            let mut b = [0u8; 4096];
            // Read no more than the line cap allows (a short read is fine).
            let room = (limits::SMTP_REPLY_LINE_MAX - self.rbuf.len()).min(b.len());
            let n = self
                .conn
                .read(&mut b[..room])
                .map_err(|e| io_error(&self.server, what, e))?;
            if n == 0 {
                return Err(io_error(
                    &self.server,
                    what,
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            self.rbuf.extend_from_slice(&b[..n]);
        }
        Err(refuse(
            &self.server,
            format!(
                "a reply line to {what} is longer than {} bytes",
                limits::SMTP_REPLY_LINE_MAX
            ),
            "this is not a well-behaved SMTP server",
        ))
    }

    /// Reads one (possibly multi-line) reply.
    fn reply(&mut self, what: &str) -> Result<Reply> {
        let mut lines = Vec::new();
        let mut code = None;
        loop {
            let l = self.read_line(what)?;
            let b = l.as_bytes();
            let ok = b.len() >= 3
                && b[..3].iter().all(u8::is_ascii_digit)
                && (b.len() == 3 || b[3] == b' ' || b[3] == b'-');
            if !ok {
                return Err(refuse(
                    &self.server,
                    format!("malformed reply to {what}"),
                    "this is not a well-behaved SMTP server",
                ));
            }
            let c: u16 = l[..3].parse().unwrap_or(0);
            if code.is_some_and(|x| x != c) {
                return Err(refuse(
                    &self.server,
                    format!("inconsistent multi-line reply to {what}"),
                    "this is not a well-behaved SMTP server",
                ));
            }
            code = Some(c);
            lines.push(l.get(4..).unwrap_or("").to_string());
            if b.len() == 3 || b[3] == b' ' {
                return Ok(Reply { code: c, lines });
            }
            if lines.len() >= limits::SMTP_REPLY_LINES_MAX {
                return Err(refuse(
                    &self.server,
                    format!(
                        "the reply to {what} has more than {} lines",
                        limits::SMTP_REPLY_LINES_MAX
                    ),
                    "this is not a well-behaved SMTP server",
                ));
            }
        }
    }

    /// Logs in with a mechanism the post-TLS EHLO offered. A refusal is [`ErrorKind::WrongSecret`].
    pub fn authenticate(&mut self, login: &Login) -> Result<()> {
        let offered = &self.caps.auth;
        let has = |m: &str| offered.iter().any(|o| o == m);
        let user = login.user().to_string();
        if offered.is_empty() {
            return Err(refuse(
                &self.server,
                "the server offers no login (AUTH) inside TLS; nothing was sent",
                "check the port: submission servers offer AUTH after TLS; or send without --user if the server relays for you",
            ));
        }
        if user.contains(['\0', '\r', '\n']) {
            return Err(Error::usage("the user name contains control characters"));
        }
        let r = match login {
            Login::Password { secret, .. } => {
                if has("PLAIN") {
                    let mut raw = Zeroizing::new(Vec::new());
                    raw.push(0);
                    raw.extend_from_slice(user.as_bytes());
                    raw.push(0);
                    raw.extend_from_slice(secret.expose());
                    let line = Zeroizing::new(format!("AUTH PLAIN {}\r\n", B64.encode(&*raw)));
                    self.command(line.as_bytes(), "AUTH")?;
                    self.reply("AUTH")?
                } else if has("LOGIN") {
                    self.command(b"AUTH LOGIN\r\n", "AUTH")?;
                    let r = self.reply("AUTH")?;
                    if r.code != 334 {
                        r
                    } else {
                        self.command(format!("{}\r\n", B64.encode(&user)).as_bytes(), "AUTH")?;
                        let r = self.reply("AUTH")?;
                        if r.code != 334 {
                            r
                        } else {
                            let line =
                                Zeroizing::new(format!("{}\r\n", B64.encode(secret.expose())));
                            self.command(line.as_bytes(), "AUTH")?;
                            self.reply("AUTH")?
                        }
                    }
                } else {
                    return Err(refuse(
                        &self.server,
                        format!(
                            "the server offers no password login smimekit uses (PLAIN, LOGIN) inside TLS; it offers {}",
                            offered.join(" ")
                        ),
                        "if it offers XOAUTH2, set the account's auth to oauth2 with a login command that prints a token",
                    ));
                }
            }
            Login::OAuth2 { token, .. } => {
                let (mech, raw) = if has("XOAUTH2") {
                    let mut raw =
                        Zeroizing::new(format!("user={user}\x01auth=Bearer ").into_bytes());
                    raw.extend_from_slice(token.expose());
                    raw.extend_from_slice(b"\x01\x01");
                    ("XOAUTH2", raw)
                } else if has("OAUTHBEARER") {
                    let mut raw =
                        Zeroizing::new(format!("n,a={user},\x01auth=Bearer ").into_bytes());
                    raw.extend_from_slice(token.expose());
                    raw.extend_from_slice(b"\x01\x01");
                    ("OAUTHBEARER", raw)
                } else {
                    return Err(refuse(
                        &self.server,
                        format!(
                            "the server offers no OAuth login (XOAUTH2, OAUTHBEARER) inside TLS; it offers {}",
                            offered.join(" ")
                        ),
                        "use a password login for this server",
                    ));
                };
                let line = Zeroizing::new(format!("AUTH {mech} {}\r\n", B64.encode(&*raw)));
                self.command(line.as_bytes(), "AUTH")?;
                let mut r = self.reply("AUTH")?;
                if r.code == 334 {
                    // The server's error details; an empty line ends the exchange (RFC 7628 §3.2.3).
                    self.command(b"\r\n", "AUTH")?;
                    r = self.reply("AUTH")?;
                }
                r
            }
        };
        match r.code {
            235 => Ok(()),
            535 | 534 | 530 => Err(Error::new(
                ErrorKind::WrongSecret,
                format!("{}: the server refused the login for user {user} ({})", self.server, r.text()),
            )
            .hint("check the user name and the login secret (--login-file, SMIMEKIT_LOGIN or the account's login command)")),
            _ => Err(refuse(
                &self.server,
                format!("login for user {user} failed ({})", r.text()),
                "try again later",
            )),
        }
    }

    /// Submits one message: MAIL FROM `from`, RCPT TO each of `to`, DATA `message`. A refused recipient
    /// aborts before DATA unless `skip_rejected`. Errors before the final 250 mean the message was not sent.
    pub fn submit(
        &mut self,
        from: &str,
        to: &[String],
        message: &[u8],
        skip_rejected: bool,
    ) -> Result<Submitted> {
        self.submit_inner(from, to, message, skip_rejected)
            .map_err(|e| say_not_sent(e, "not sent"))
    }

    fn submit_inner(
        &mut self,
        from: &str,
        to: &[String],
        message: &[u8],
        skip_rejected: bool,
    ) -> Result<Submitted> {
        let needs_utf8 = !from.is_ascii() || to.iter().any(|a| !a.is_ascii());
        check_address(from)?;
        if to.is_empty() {
            return Err(Error::usage("no recipients")
                .hint("add --to, --cc or --bcc (or To:/Cc:/Bcc: in the message)"));
        }
        if to.len() > limits::SMTP_RECIPIENTS_MAX {
            return Err(Error::limit(format!(
                "more than {} recipients",
                limits::SMTP_RECIPIENTS_MAX
            )));
        }
        for a in to {
            check_address(a)?;
        }
        let eight_bit = message.iter().any(|b| *b >= 0x80);
        if needs_utf8 && !self.caps.smtputf8 {
            return Err(refuse(
                &self.server,
                "an address is not ASCII, and the server does not offer SMTPUTF8; nothing was sent",
                "use the ASCII form of the address",
            ));
        }
        if eight_bit && !self.caps.eight_bit && !self.caps.smtputf8 {
            return Err(refuse(
                &self.server,
                "the message has 8-bit content and the server does not offer 8BITMIME; nothing was sent",
                "sign or encrypt it (S/MIME output is 7-bit), or encode its parts as quoted-printable or base64",
            ));
        }
        let data = dot_stuff(message);
        if let Some(max) = self.caps.size
            && data.len() as u64 > max
        {
            return Err(refuse(
                &self.server,
                format!(
                    "the message ({} bytes) is larger than the server accepts ({max} bytes); nothing was sent",
                    data.len()
                ),
                "send a smaller message",
            ));
        }
        let mut mail = format!("MAIL FROM:<{from}>");
        if eight_bit && self.caps.eight_bit {
            mail += " BODY=8BITMIME";
        }
        if needs_utf8 {
            mail += " SMTPUTF8";
        }
        if let Some(_max) = self.caps.size {
            mail += &format!(" SIZE={}", data.len());
        }
        mail += "\r\n";
        self.command(mail.as_bytes(), "MAIL FROM")?;
        let r = self.reply("MAIL FROM")?;
        if r.code != 250 {
            return Err(refuse(
                &self.server,
                format!(
                    "the server refused the sender {from} ({}); not sent",
                    r.text()
                ),
                "check that the From address belongs to the account you log in with",
            ));
        }
        let mut accepted = Vec::new();
        let mut rejected = Vec::new();
        for a in to {
            self.command(format!("RCPT TO:<{a}>\r\n").as_bytes(), "RCPT TO")?;
            let r = self.reply("RCPT TO")?;
            if r.code == 250 || r.code == 251 {
                accepted.push(a.clone());
            } else {
                rejected.push((a.clone(), r.text()));
            }
        }
        if !rejected.is_empty() && (!skip_rejected || accepted.is_empty()) {
            let _ = self
                .command(b"RSET\r\n", "RSET")
                .and_then(|_| self.reply("RSET"));
            let list: Vec<String> = rejected.iter().map(|(a, r)| format!("{a} ({r})")).collect();
            return Err(refuse(
                &self.server,
                format!(
                    "the server refused recipient(s) {}; not sent",
                    list.join(", ")
                ),
                if accepted.is_empty() {
                    "check the addresses"
                } else {
                    "check the addresses, or add --skip-rejected to send to the others"
                },
            ));
        }
        self.command(b"DATA\r\n", "DATA")?;
        let r = self.reply("DATA")?;
        if r.code != 354 {
            return Err(refuse(
                &self.server,
                format!("the server refused DATA ({}); not sent", r.text()),
                "try again later",
            ));
        }
        self.conn
            .write_all(&data)
            .and_then(|_| self.conn.write_all(b".\r\n"))
            .and_then(|_| self.conn.flush())
            .map_err(|e| io_error(&self.server, "DATA", e).context("not sent"))?;
        let r = self
            .reply("the end of DATA")
            // The whole message went out; without the server's answer it may or may not be queued (RFC 5321
            // §6.1): saying "not sent" would make the user send it twice.
            .map_err(|e| {
                e.context("the message was transmitted but the server did not confirm it: it may or may not have been sent")
                    .hint("check the recipients' mailboxes or the server's logs before sending it again")
            })?;
        if r.code != 250 {
            return Err(refuse(
                &self.server,
                format!("the server refused the message ({}); not sent", r.text()),
                "read the server's reason",
            ));
        }
        let text = r.text();
        Ok(Submitted {
            accepted,
            rejected,
            queue_id: queue_id(&text),
            reply: text,
        })
    }

    /// Says QUIT and closes (errors ignored: the message is already accepted or not).
    pub fn quit(mut self) {
        let _ = self.command(b"QUIT\r\n", "QUIT");
        let _ = self.reply("QUIT");
        if let Conn::Tls(s) = &mut self.conn {
            let _ = s.shutdown();
        }
    }
}

/// Every failure before the server's final 250 says that the message was not sent.
fn say_not_sent(e: Error, words: &str) -> Error {
    if e.message().contains("not sent") || e.message().contains("nothing was sent") {
        e
    } else {
        let mut n = Error::new(e.kind(), format!("{}; {words}", e.message()));
        if let Some(h) = e.hint_text() {
            n = n.hint(h);
        }
        if let Some(d) = e.detail_text() {
            n = n.detail(d);
        }
        n
    }
}

/// Refuses an envelope address that could inject a command or is not an address at all.
pub fn check_address(a: &str) -> Result<()> {
    let bad = a.is_empty()
        || a.len() > 320
        || a.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '<' | '>' | '"' | '(' | ')' | ',' | ';' | '\\')
        })
        || !a
            .rsplit_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if bad {
        let shown: String = a.escape_debug().take(120).collect();
        return Err(Error::usage(format!("not a plain e-mail address: \"{shown}\"; nothing was sent"))
            .hint("give the address alone (name@example.org), without display name, brackets or line breaks"));
    }
    Ok(())
}

/// The DATA payload: CRLF line ends only (bare CR and bare LF become CRLF), dot-stuffed (RFC 5321 §4.5.2),
/// ending with CRLF. The terminating `.` line is not included.
pub fn dot_stuff(m: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() + m.len() / 50 + 8);
    let mut at_line_start = true;
    let mut i = 0;
    while i < m.len() {
        let b = m[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if m.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                at_line_start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The queue id in a 250 reply: Postfix `queued as ABC`, or the last word of others (`250 OK id=…`).
fn queue_id(text: &str) -> Option<String> {
    let clean = |s: &str| {
        let s: String = s
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        (!s.is_empty()).then_some(s)
    };
    if let Some(i) = text.find("queued as ") {
        return text[i + 10..].split_whitespace().next().and_then(clean);
    }
    if let Some(i) = text.find("id=") {
        return text[i + 3..].split_whitespace().next().and_then(clean);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(dot_stuff(b"a\n.\nb"), b"a\r\n..\r\nb\r\n");
        assert_eq!(dot_stuff(b"a\r.\rb\r\n"), b"a\r\n..\r\nb\r\n");
        assert_eq!(dot_stuff(b".x\r\n\r\n.\r\n"), b"..x\r\n\r\n..\r\n");
        assert_eq!(dot_stuff(b""), b"");
        // Nothing in a message can produce CRLF.CRLF.
        let d = dot_stuff(b"x\r\n.\r\ny\n.\r\nz\r.\n");
        assert!(!d.windows(5).any(|w| w == b"\r\n.\r\n"));
        assert!(
            !d.windows(2)
                .enumerate()
                .any(|(i, w)| w[0] == b'\n' && (i == 0 || d[i - 1] != b'\r'))
        );
    }

    #[test]
    fn addresses_with_injection_are_refused() {
        assert!(check_address("bob@example.com").is_ok());
        for a in [
            "bob@example.com>\r\nRCPT TO:<evil@x",
            "bob@example.com\n",
            "Bob <bob@example.com>",
            "bob",
            "@x",
            "a@",
            "a b@x",
            "a\0@x",
        ] {
            assert!(check_address(a).is_err(), "{a:?}");
        }
    }

    #[test]
    fn capabilities_parse() {
        let r = Reply {
            code: 250,
            lines: vec![
                "mail.example.test".into(),
                "PIPELINING".into(),
                "SIZE 1000".into(),
                "AUTH PLAIN login".into(),
                "8BITMIME".into(),
            ],
        };
        let c = Capabilities::parse(&r);
        assert_eq!(c.auth, ["PLAIN", "LOGIN"]);
        assert_eq!(c.size, Some(1000));
        assert!(c.eight_bit && !c.smtputf8 && !c.starttls);
        assert_eq!(
            queue_id("250 2.0.0 Ok: queued as 4XyZ1"),
            Some("4XyZ1".into())
        );
    }
}
