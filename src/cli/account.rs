//! `smimekit account add|list|show|remove|test`: sending accounts (`smimekit::account`). `test` connects,
//! checks the TLS channel, logs in and sends nothing.

use anyhow::Result;
use clap::{Args, Subcommand};
use smimekit::account::{Account, Accounts, AuthKind, Policy};
use smimekit::net::smtp::{Session, TlsMode};
use smimekit::{Error, cert};

use super::send::{ConnectArgs, TlsArg, login_secret, make_login, parse_server, server_options};
use super::{Global, output};

/// `account` subcommands.
#[derive(Subcommand)]
pub enum AccountCommand {
    /// Add (or with --replace, change) a sending account.
    Add(AddArgs),
    /// List the accounts.
    List,
    /// Show one account.
    Show {
        /// The account's name.
        name: String,
    },
    /// Remove an account (the login secret is not stored by smimekit: nothing else to remove).
    Remove {
        /// The account's name.
        name: String,
    },
    /// Connect, check TLS (version, certificate, host name, expiry), log in, send nothing; report each step.
    Test(TestArgs),
}

/// Arguments of `account add`.
#[derive(Args)]
pub struct AddArgs {
    /// The account's name.
    pub name: String,
    /// Submission server host name.
    #[arg(long)]
    pub server: String,
    /// Port (default: 465, or 587 with --tls starttls).
    #[arg(long)]
    pub port: Option<u16>,
    /// How TLS starts.
    #[arg(long, value_enum)]
    pub tls: Option<TlsArg>,
    /// Login user.
    #[arg(long)]
    pub user: Option<String>,
    /// Default From address.
    #[arg(long)]
    pub from: Option<String>,
    /// A command printing the login secret on its first line (e.g. `secret-tool lookup …`, `pass show …`, an
    /// OAuth token helper); run through `sh -c` at each login.
    #[arg(long, value_name = "CMD")]
    pub login_command: Option<String>,
    /// password (AUTH PLAIN/LOGIN) or oauth2 (XOAUTH2/OAUTHBEARER with a token from the login command).
    #[arg(long, value_parser = ["password", "oauth2"], default_value = "password")]
    pub auth: String,
    /// What to do to outgoing mail: none, sign, encrypt-if-possible (sign, and encrypt when possible),
    /// sign+encrypt.
    #[arg(long, default_value = "none")]
    pub policy: String,
    /// Trust anchor(s) for this server's certificate (PEM; stored in the account).
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<std::path::PathBuf>,
    /// Overwrite an account of the same name.
    #[arg(long)]
    pub replace: bool,
}

/// Arguments of `account test`.
#[derive(Args)]
pub struct TestArgs {
    /// The account's name.
    pub name: String,
    #[command(flatten)]
    pub conn: ConnectArgs,
}

/// Runs an `account` subcommand.
pub fn run(g: &Global, c: &AccountCommand) -> Result<i32> {
    let home = g.home()?;
    let store = Accounts::new(&home);
    match c {
        AccountCommand::Add(a) => {
            let tls = a.tls.map(TlsMode::from);
            let spec = match a.port {
                Some(p) => format!("{}:{p}", a.server),
                None => a.server.clone(),
            };
            let (server, port, tls) = parse_server(&spec, tls)?;
            for addr in a.from.iter() {
                smimekit::net::smtp::check_address(addr)?;
            }
            let mut ca_pem = Vec::new();
            for f in &a.ca {
                let data = super::read_file(f)?;
                let certs = openssl::x509::X509::stack_from_pem(&data).map_err(|e| {
                    Error::bad_input(format!("{}: not a PEM certificate file", f.display()))
                        .detail(e)
                })?;
                for x in certs {
                    ca_pem.push(String::from_utf8(x.to_pem()?)?);
                }
            }
            let acct = Account {
                name: a.name.clone(),
                server,
                port,
                tls,
                user: a.user.clone(),
                from: a.from.clone(),
                login_command: a.login_command.clone(),
                auth: if a.auth == "oauth2" {
                    AuthKind::Oauth2
                } else {
                    AuthKind::Password
                },
                policy: Policy::parse(&a.policy)?,
                ca_pem,
            };
            store.add(acct.clone(), a.replace)?;
            output::note(&format!(
                "account {} added: {}:{} ({})",
                acct.name,
                acct.server,
                acct.port,
                acct.tls.name()
            ));
            Ok(0)
        }
        AccountCommand::List => {
            let v = store.list()?;
            if g.json {
                output::json(&v)?;
            } else {
                let mut s = String::new();
                for a in &v {
                    s += &format!(
                        "{}\t{}:{} ({})\tuser {}\tpolicy {}\n",
                        a.name,
                        a.server,
                        a.port,
                        a.tls.name(),
                        a.user.as_deref().unwrap_or("-"),
                        a.policy.name()
                    );
                }
                output::print(&output::clean(&s))?;
            }
            Ok(0)
        }
        AccountCommand::Show { name } => {
            let a = store.get(name)?;
            if g.json {
                output::json(&a)?;
            } else {
                let s = format!(
                    "Account: {}\nServer: {}:{} ({})\nUser: {}\nFrom: {}\nLogin: {}{}\nPolicy: {}\nExtra CA certificates: {}\n",
                    a.name,
                    a.server,
                    a.port,
                    a.tls.name(),
                    a.user.as_deref().unwrap_or("-"),
                    a.from.as_deref().unwrap_or("-"),
                    if a.auth == AuthKind::Oauth2 {
                        "oauth2"
                    } else {
                        "password"
                    },
                    a.login_command
                        .as_deref()
                        .map(|c| format!(" from command `{c}`"))
                        .unwrap_or_else(|| " (file, SMIMEKIT_LOGIN or prompt)".into()),
                    a.policy.name(),
                    a.ca_pem.len()
                );
                output::print(&output::clean(&s))?;
            }
            Ok(0)
        }
        AccountCommand::Remove { name } => {
            store.remove(name)?;
            output::note(&format!("account {name} removed"));
            Ok(0)
        }
        AccountCommand::Test(t) => test(g, &store.get(&t.name)?, &t.conn),
    }
}

fn test(g: &Global, a: &Account, c: &ConnectArgs) -> Result<i32> {
    let ehlo = a
        .from
        .as_deref()
        .and_then(|f| f.rsplit_once('@'))
        .map_or("localhost", |(_, d)| d)
        .to_string();
    let login = match &a.user {
        Some(u) => Some(make_login(
            Some(a),
            u.clone(),
            login_secret(g, c, Some(a), u)?,
        )),
        None => None,
    };
    let opts = server_options(a.server.clone(), a.port, a.tls, Some(a), c, &ehlo)?;
    let step = |s: &str| {
        if !g.json {
            let _ = output::print(&output::clean(&format!("{s}\n")));
        }
    };
    let mut session =
        Session::connect(&opts).map_err(|e| e.context(format!("account {}", a.name)))?;
    let hs = session.handshake().clone();
    step(&format!(
        "ok  connected to {} ({})",
        opts.label(),
        a.tls.name()
    ));
    step(&format!("ok  TLS {} with {}", hs.version, hs.cipher));
    let now = cert::now();
    let leaf = hs.peer_chain.first().map(|x| cert::CertInfo::new(x, now));
    if let Some(info) = &leaf {
        step(&format!(
            "ok  certificate for {} verified ({}), valid until {}",
            a.server,
            if hs.verified() {
                "chain, host name, validity"
            } else {
                "accepted by fingerprint"
            },
            info.not_after
        ));
    }
    let caps = session.capabilities().clone();
    step(&format!(
        "ok  server offers AUTH {} inside TLS",
        if caps.auth.is_empty() {
            "(none)".into()
        } else {
            caps.auth.join(" ")
        }
    ));
    let auth = match &login {
        Some(l) => {
            session
                .authenticate(l)
                .map_err(|e| e.context(format!("account {}", a.name)))?;
            step(&format!("ok  logged in as {}", l.user()));
            true
        }
        None => {
            step("--  no user configured: login not tested");
            false
        }
    };
    session.quit();
    step("ok  nothing was sent");
    if g.json {
        output::json(&serde_json::json!({
            "account": a.name,
            "server": opts.label(),
            "tls": {"mode": a.tls.name(), "version": hs.version, "cipher": hs.cipher, "verified": hs.verified()},
            "certificate": leaf,
            "auth_offered": caps.auth,
            "logged_in": auth,
        }))?;
    }
    Ok(0)
}
