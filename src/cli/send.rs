//! `smimekit send`: compose or read a message, protect it, submit it over TLS. The work is in
//! `smimekit::send` (envelope, Bcc, protection) and `smimekit::net::smtp` (the fail-closed client).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use smimekit::account::{Account, Accounts, AuthKind, Policy};
use smimekit::net::smtp::{Login, ServerOptions, Session, TlsMode};
use smimekit::net::tls::{TlsOptions, parse_fingerprint};
use smimekit::secret::Secret;
use smimekit::send::{self, Encryption};
use smimekit::smime::{encrypt, sign};
use smimekit::trust::TrustStore;
use smimekit::{Error, ErrorKind, input, limits};

use super::{Global, output};

/// Environment variable holding the login secret (for scripts).
pub const LOGIN_ENV: &str = "SMIMEKIT_LOGIN";

/// Server and login options shared by `send` and `account test`.
#[derive(Args, Clone, Default)]
pub struct ConnectArgs {
    /// Read the login secret (password or token) from FILE (else SMIMEKIT_LOGIN, the account's login command,
    /// or a prompt).
    #[arg(long, value_name = "FILE")]
    pub login_file: Option<PathBuf>,
    /// Trust anchor(s) for the server certificate, besides the system store (PEM file; repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Accept a server certificate that does not verify, if its SHA-256 fingerprint is this (after checking
    /// it another way).
    #[arg(long, value_name = "SHA256")]
    pub insecure_accept_fingerprint: Option<String>,
    /// Seconds to wait for the connection and for each server reply (the whole exchange may take ten times
    /// this).
    #[arg(long, value_name = "SECONDS", default_value_t = limits::NET_WAIT_SECS)]
    pub timeout: u64,
}

/// Arguments of `send`.
#[derive(Args)]
pub struct SendArgs {
    /// The RFC 5322 message to send (default: standard input), unless composing with --to/--cc/--bcc.
    pub file: Option<PathBuf>,
    /// Use this account's server, user, From address and policy.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Submission server (HOST or HOST:PORT; port 465 = implicit TLS by default, 587 = STARTTLS).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub server: Option<String>,
    /// How TLS starts: implicit (465) or starttls (587); needed for another port.
    #[arg(long, value_enum)]
    pub tls: Option<TlsArg>,
    /// Login user (default: the account's).
    #[arg(long)]
    pub user: Option<String>,
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Sign the message.
    #[arg(long)]
    pub sign: bool,
    /// Encrypt to every recipient (and yourself); refuse if one has no certificate.
    #[arg(long, conflicts_with = "encrypt_if_possible")]
    pub encrypt: bool,
    /// Encrypt when every recipient has a certificate, else send signed only (if signing) and say why.
    #[arg(long)]
    pub encrypt_if_possible: bool,
    /// Send without signing or encrypting, whatever the account's policy.
    #[arg(long, conflicts_with_all = ["sign", "encrypt", "encrypt_if_possible"])]
    pub plain: bool,
    /// The digital ID to sign with (default: the one matching From).
    #[arg(long = "as", value_name = "ID")]
    pub as_id: Option<String>,
    /// Sender address (composing: the From field; with a message: the envelope sender).
    #[arg(long)]
    pub from: Option<String>,
    /// Compose: To recipient (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub to: Vec<String>,
    /// Compose: Cc recipient (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub cc: Vec<String>,
    /// Compose: Bcc recipient (repeatable); never written in what is sent.
    #[arg(long, value_name = "ADDRESS")]
    pub bcc: Vec<String>,
    /// Compose: the subject.
    #[arg(long)]
    pub subject: Option<String>,
    /// Compose: the text body from FILE (default: standard input).
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Compose: attach FILE (repeatable).
    #[arg(long, value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Print the envelope, the protection and the message(s) that would be sent; connect to nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the sent message (the To/Cc copy) in FILE, or in a Maildir folder (one with cur/, new/, tmp/).
    #[arg(long, value_name = "FILE")]
    pub save_copy: Option<PathBuf>,
    /// Send to the recipients the server accepts when it refuses some (default: refuse to send).
    #[arg(long)]
    pub skip_rejected: bool,
}

/// `--tls` values.
#[derive(clap::ValueEnum, Clone, Copy)]
pub enum TlsArg {
    /// TLS from the first byte (port 465).
    Implicit,
    /// STARTTLS, required (port 587).
    Starttls,
}

impl From<TlsArg> for TlsMode {
    fn from(t: TlsArg) -> TlsMode {
        match t {
            TlsArg::Implicit => TlsMode::Implicit,
            TlsArg::Starttls => TlsMode::Starttls,
        }
    }
}

/// Splits `HOST[:PORT]` and decides the TLS mode: 465 implicit, 587 STARTTLS, another port needs `--tls`.
pub fn parse_server(s: &str, tls: Option<TlsMode>) -> smimekit::Result<(String, u16, TlsMode)> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
            let p: u16 = p.parse().map_err(|_| {
                Error::usage(format!("invalid port in {s}")).hint("give HOST or HOST:PORT")
            })?;
            (h.trim_matches(['[', ']']).to_string(), Some(p))
        }
        _ => (s.to_string(), None),
    };
    if host.is_empty() {
        return Err(Error::usage("empty server name"));
    }
    let port = port.unwrap_or(match tls {
        Some(TlsMode::Starttls) => 587,
        _ => 465,
    });
    let mode = match tls.or(TlsMode::for_port(port)) {
        Some(m) => m,
        None => {
            return Err(Error::usage(format!(
                "port {port} is neither 465 (implicit TLS) nor 587 (STARTTLS)"
            ))
            .hint("say how TLS starts: --tls implicit or --tls starttls"));
        }
    };
    Ok((host, port, mode))
}

/// Builds the server options from the account and the command line.
pub fn server_options(
    host: String,
    port: u16,
    tls: TlsMode,
    acct: Option<&Account>,
    c: &ConnectArgs,
    ehlo_name: &str,
) -> smimekit::Result<ServerOptions> {
    let mut anchors = Vec::new();
    for f in &c.ca {
        let pem = super::read_file(f)?;
        anchors.extend(openssl::x509::X509::stack_from_pem(&pem).map_err(|e| {
            Error::bad_input(format!("{}: not a PEM certificate file", f.display())).detail(e)
        })?);
    }
    for pem in acct.map(|a| a.ca_pem.as_slice()).unwrap_or_default() {
        anchors.extend(openssl::x509::X509::stack_from_pem(pem.as_bytes())?);
    }
    if c.timeout == 0 {
        return Err(Error::usage("--timeout must be at least 1 second"));
    }
    Ok(ServerOptions {
        host,
        port,
        tls,
        tls_options: TlsOptions {
            extra_anchors: anchors,
            ..Default::default()
        },
        accept_fingerprint: c
            .insecure_accept_fingerprint
            .as_deref()
            .map(parse_fingerprint)
            .transpose()?,
        timeout: Duration::from_secs(c.timeout),
        ehlo_name: ehlo_name.to_string(),
    })
}

/// Obtains the login secret: `--login-file`, `SMIMEKIT_LOGIN`, the account's login command, a prompt.
pub fn login_secret(
    g: &Global,
    c: &ConnectArgs,
    acct: Option<&Account>,
    user: &str,
) -> Result<Secret> {
    if let Some(f) = &c.login_file {
        let mut b = super::read_file(f)?;
        if b.last() == Some(&b'\n') {
            b.pop();
            if b.last() == Some(&b'\r') {
                b.pop();
            }
        }
        return Ok(Secret::new(b));
    }
    if let Ok(v) = std::env::var(LOGIN_ENV) {
        return Ok(Secret::from_string(v));
    }
    if let Some(cmd) = acct.and_then(|a| a.login_command.as_deref()) {
        return Ok(smimekit::account::run_login_command(cmd)?);
    }
    if g.batch {
        return Err(Error::new(
            ErrorKind::MissingSecret,
            format!("the login secret of {user} is needed and --batch forbids prompting"),
        )
        .hint(format!(
            "pass --login-file FILE, set {LOGIN_ENV}, or give the account a --login-command"
        ))
        .into());
    }
    rpassword::prompt_password(format!("Enter the login secret of {user}: "))
        .map(Secret::from_string)
        .map_err(|e| {
            Error::new(
                ErrorKind::MissingSecret,
                format!("cannot ask for the login secret: no terminal ({e})"),
            )
            .hint(format!("pass --login-file FILE or set {LOGIN_ENV}"))
            .into()
        })
}

/// The login for `user` of the account's kind.
pub fn make_login(acct: Option<&Account>, user: String, secret: Secret) -> Login {
    match acct.map(|a| a.auth) {
        Some(AuthKind::Oauth2) => Login::OAuth2 {
            user,
            token: secret,
        },
        _ => Login::Password { user, secret },
    }
}

fn compose_mode(a: &SendArgs) -> bool {
    !a.to.is_empty()
        || !a.cc.is_empty()
        || !a.bcc.is_empty()
        || a.subject.is_some()
        || a.body_file.is_some()
        || !a.attach.is_empty()
}

#[derive(serde::Serialize)]
struct CopyReport {
    recipients: Vec<String>,
    encrypted_for: Vec<String>,
    queue_id: Option<String>,
    reply: Option<String>,
    rejected: Vec<(String, String)>,
}

/// Runs `send`.
pub fn run(g: &Global, a: &SendArgs) -> Result<i32> {
    let home = g.home()?;
    let acct = match &a.account {
        Some(n) => Some(Accounts::new(&home).get(n)?),
        None => None,
    };
    let acct = acct.as_ref();
    // 1. The message.
    let from_default = a.from.clone().or_else(|| acct.and_then(|x| x.from.clone()));
    let raw: Vec<u8> = if compose_mode(a) {
        if a.file.is_some() {
            return Err(Error::usage(
                "give either a message FILE or --to/--cc/--bcc/--subject to compose one",
            )
            .hint("to change a file's recipients, edit its header")
            .into());
        }
        let from = from_default.clone().ok_or_else(|| {
            Error::usage("composing needs --from (or an account with a from address)")
        })?;
        let body = match &a.body_file {
            Some(f) => super::read_file(f)?,
            None => input::read(None)?.to_vec(),
        };
        let body = String::from_utf8(body).map_err(|_| {
            Error::bad_input("the body is not UTF-8 text").hint("attach binary data with --attach")
        })?;
        let mut attachments = Vec::new();
        for f in &a.attach {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "attachment".into());
            attachments.push((name, super::read_file(f)?));
        }
        send::compose(&send::Compose {
            from,
            to: a.to.clone(),
            cc: a.cc.clone(),
            bcc: a.bcc.clone(),
            subject: a.subject.clone().unwrap_or_default(),
            body,
            attachments,
        })?
    } else {
        input::read(a.file.as_deref())?.to_vec()
    };
    let out = send::prepare(
        &raw,
        if compose_mode(a) {
            None
        } else {
            a.from.as_deref()
        },
    )?;

    // 2. The server (checked before any passphrase is asked, so a typo costs nothing).
    let server_spec = a
        .server
        .clone()
        .or_else(|| acct.map(|x| format!("{}:{}", x.server, x.port)));
    let tls_mode = a.tls.map(TlsMode::from).or(acct.map(|x| x.tls));
    let server = match &server_spec {
        Some(s) => Some(parse_server(s, tls_mode)?),
        None if a.dry_run => None,
        None => {
            return Err(
                Error::usage("no server: give --account NAME or --server HOST[:PORT]")
                    .hint("add an account with `smimekit account add NAME --server HOST`")
                    .into(),
            );
        }
    };

    // 3. Protection: the command line, else the account's policy.
    let policy = acct.map(|x| x.policy).unwrap_or_default();
    let explicit = a.sign || a.encrypt || a.encrypt_if_possible || a.plain;
    let (do_sign, encryption) = if explicit {
        (
            a.sign,
            if a.encrypt {
                Encryption::Required
            } else if a.encrypt_if_possible {
                Encryption::IfPossible
            } else {
                Encryption::No
            },
        )
    } else {
        match policy {
            Policy::None => (false, Encryption::No),
            Policy::Sign => (true, Encryption::No),
            Policy::EncryptIfPossible => (true, Encryption::IfPossible),
            Policy::SignEncrypt => (true, Encryption::Required),
        }
    };
    let signer = if do_sign {
        let id = sign::choose_signer(&home, &out.message, a.as_id.as_deref())?;
        let key = super::id::unlock(g, &id)?;
        Some((id, key))
    } else {
        None
    };
    let sign_opts = sign::SignOptions {
        digest: smimekit::ossl::signed::Digest::Sha256,
        pss: false,
        opaque: false,
    };
    let base = encrypt::EncryptOptions {
        as_id: a.as_id.clone(),
        anchors: TrustStore::new(&home).certs()?,
        system_trust: true,
        ..Default::default()
    };
    let prot = send::protect(
        &home,
        &out,
        signer.as_ref().map(|(i, k)| (i, k, &sign_opts)),
        encryption,
        &base,
    )?;
    if let Some(why) = &prot.not_encrypted_because {
        output::warn(&format!(
            "not encrypted (--encrypt-if-possible): {why}; sending {}",
            if prot.signed_by.is_some() {
                "signed only"
            } else {
                "unprotected"
            }
        ));
    }
    let protection = match (prot.signed_by.is_some(), prot.encrypted) {
        (true, true) => "signed and encrypted",
        (false, true) => "encrypted",
        (true, false) => "signed",
        (false, false) => "none",
    };

    // 4. Dry run: show, connect to nothing.
    if a.dry_run {
        let mut s = String::new();
        if let Some((h, p, m)) = &server {
            s += &format!("Server: {h}:{p} ({})\n", m.name());
        }
        s += &format!("Protection: {protection}\n");
        for (i, c) in prot.copies.iter().enumerate() {
            s += &format!("--- copy {} ---\nMAIL FROM:<{}>\n", i + 1, out.from);
            for r in &c.recipients {
                s += &format!("RCPT TO:<{r}>\n");
            }
            if !c.encrypted_for.is_empty() {
                s += &format!("Encrypted for: {}\n", c.encrypted_for.join(", "));
            }
            s += "\n";
            output::print(&s)?;
            s.clear();
            output::write_output(None, &c.message)?;
            output::print("\n")?;
        }
        return Ok(0);
    }
    let (host, port, mode) = server.expect("checked above");

    // 5. The login secret, before connecting (a prompt must not hold a connection open).
    let user = a.user.clone().or_else(|| acct.and_then(|x| x.user.clone()));
    let login = match &user {
        Some(u) => Some(make_login(
            acct,
            u.clone(),
            login_secret(g, &a.conn, acct, u)?,
        )),
        None => None,
    };
    let ehlo = out
        .from
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d)
        .to_string();
    let opts = server_options(host, port, mode, acct, &a.conn, &ehlo)?;
    let name = a.account.as_deref();

    // 6. Submit every copy in one session.
    let mut session = Session::connect(&opts)?;
    if let Some(l) = &login {
        session.authenticate(l).map_err(|e| match name {
            Some(n) => e.context(format!("account {n}")),
            None => e,
        })?;
    }
    let mut reports: Vec<CopyReport> = Vec::new();
    for c in &prot.copies {
        match session.submit(&out.from, &c.recipients, &c.message, a.skip_rejected) {
            Ok(s) => reports.push(CopyReport {
                recipients: s.accepted,
                encrypted_for: c.encrypted_for.clone(),
                queue_id: s.queue_id,
                reply: Some(s.reply),
                rejected: s.rejected,
            }),
            Err(e) => {
                if reports.is_empty() {
                    return Err(e.into());
                }
                let done: Vec<String> = reports.iter().flat_map(|r| r.recipients.clone()).collect();
                return Err(e
                    .context(format!(
                        "the copy for {} was not sent (already sent to {})",
                        c.recipients.join(", "),
                        done.join(", ")
                    ))
                    .into());
            }
        }
    }
    let hs = session.handshake().clone();
    session.quit();
    if let (Some(p), Some(c)) = (&a.save_copy, prot.copies.first()) {
        send::save_copy(p, &c.message)
            .map_err(|e| e.context("the message was sent, but the copy was not saved"))?;
    }
    if g.json {
        output::json(&serde_json::json!({
            "server": opts.label(),
            "tls": {"mode": mode.name(), "version": hs.version, "cipher": hs.cipher},
            "protection": protection,
            "signed_by": prot.signed_by,
            "not_encrypted_because": prot.not_encrypted_because,
            "copies": reports,
        }))?;
    } else {
        let mut s = String::new();
        for r in &reports {
            s += &format!(
                "Sent to {} ({protection}{}) via {} ({}, {}): queued as {}\n",
                r.recipients.join(", "),
                if r.encrypted_for.is_empty() {
                    String::new()
                } else {
                    format!(", readable by {}", r.encrypted_for.join(", "))
                },
                opts.label(),
                hs.version,
                hs.cipher,
                r.queue_id.as_deref().unwrap_or("(no id given)")
            );
            for (who, why) in &r.rejected {
                s += &format!("  NOT sent to {who}: {why}\n");
            }
        }
        output::print(&output::clean(&s))?;
    }
    Ok(0)
}
