//! `smimekit check-server HOST [--port N] [--protocol P] [--ca FILE]…`: is the mail server's TLS set up right?

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use smimekit::Error;
use smimekit::net::check::{self, CheckOptions, Protocol, ServerReport, Status};

use super::{Global, output, read_file};

/// Arguments of `check-server`.
#[derive(Args)]
pub struct CheckServerArgs {
    /// The server's host name (the name clients use: certificates are checked against it) or address.
    #[arg(required_unless_present = "domain", conflicts_with = "domain")]
    pub host: Option<String>,
    /// Find the servers of this mail domain in DNS instead (MX, RFC 6186 SRV), with its MTA-STS and TLSA records.
    #[arg(long, value_name = "DOMAIN", conflicts_with_all = ["port", "protocol"])]
    pub domain: Option<String>,
    /// The DNS server for --domain, ADDRESS[:PORT] (default: the first nameserver of /etc/resolv.conf).
    #[arg(long, value_name = "ADDRESS", requires = "domain")]
    pub dns_server: Option<String>,
    /// One port only (default: 465, 587, 993, 995, 25, 143 and 110, those that answer).
    #[arg(long)]
    pub port: Option<u16>,
    /// The service on --port: smtp, submission, submissions, imap, imaps, pop3, pop3s, or tls (any
    /// implicit-TLS service). Default: the usual one for the port.
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Option<String>,
    /// Also trust the root CA certificate(s) in FILE (PEM); CA certificates in it that are not roots are used
    /// only to name a missing intermediate.
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Trust only --ca, not the system's certificate store.
    #[arg(long)]
    pub no_system_trust: bool,
    /// Also log in over TLS on the SMTP ports with this account's user and login secret (default: the account
    /// whose server is HOST). Only a server whose certificate verified gets the secret.
    #[arg(long, value_name = "ACCOUNT", num_args = 0..=1, default_missing_value = "", conflicts_with = "domain")]
    pub login: Option<String>,
}

/// Runs `check-server`: exit 0 all checks passed, 1 a problem found, 2 nothing could be checked.
pub fn run(g: &Global, a: &CheckServerArgs) -> Result<i32> {
    let opts = options(a, smimekit::home::Home::resolve(g.home.as_deref()).ok())?;
    if let Some(domain) = &a.domain {
        return run_domain(g, a, domain, &opts);
    }
    let host = a.host.clone().unwrap_or_default();
    let proto = match &a.protocol {
        Some(p) => Some(Protocol::parse(p).ok_or_else(|| {
            Error::usage(format!("unknown protocol '{p}'"))
                .hint("use smtp, submission, submissions, imap, imaps, pop3, pop3s or tls")
        })?),
        None => None,
    };
    let targets: Vec<(u16, Protocol)> = match (a.port, proto) {
        (None, None) => check::DEFAULT_PORTS.to_vec(),
        (None, Some(p)) => vec![(p.default_port(), p)],
        (Some(port), Some(p)) => vec![(port, p)],
        (Some(port), None) => vec![(
            port,
            Protocol::for_port(port).ok_or_else(|| {
                Error::usage(format!("port {port} is not a usual mail port"))
                    .hint("say what it runs with --protocol (e.g. --protocol submission, or tls)")
            })?,
        )],
    };
    // The secret is obtained before any connection, so a prompt does not wait on a half-open check.
    let login = match &a.login {
        Some(name) => Some(prepare_login(g, a, &host, name)?),
        None => None,
    };
    let mut r = check::check_server(&host, &targets, &opts)?;
    if let Some((acct, conn, login)) = &login {
        for p in r.ports.iter_mut() {
            let mode = match p.protocol {
                Protocol::Submissions => smimekit::net::smtp::TlsMode::Implicit,
                Protocol::Submission | Protocol::Smtp => smimekit::net::smtp::TlsMode::Starttls,
                _ => continue,
            };
            if !(p.reachable && p.trusted == Some(true) && p.hostname_ok == Some(true)) {
                if p.reachable {
                    p.line(
                        Status::Info,
                        "login",
                        "not tried: the certificate did not verify (no secret is sent then)",
                    );
                }
                continue;
            }
            p.record_login(try_login(acct, conn, login, &host, p.port, mode));
        }
    }
    if g.json {
        output::json(&r)?;
    } else {
        output::print(&output::clean(&text(
            &r,
            a.port.is_none() && proto.is_none(),
        )))?;
    }
    let code = r.exit_code();
    if code == 2 {
        let which = if targets.len() == 1 {
            format!("port {} did not accept a connection", targets[0].0)
        } else {
            "none of the mail ports accepted a connection".to_string()
        };
        return Err(Error::new(
            smimekit::ErrorKind::Network,
            format!("nothing could be checked on {host}: {which}"),
        )
        .hint("check the host name and port, and that no firewall blocks you (port 25 is often blocked by ISPs)")
        .into());
    }
    Ok(code)
}

type Prepared = (
    smimekit::account::Account,
    super::send::ConnectArgs,
    smimekit::net::smtp::Login,
);

/// The account for `--login` (named, else the one whose server is `host`) and its login secret.
fn prepare_login(g: &Global, a: &CheckServerArgs, host: &str, name: &str) -> Result<Prepared> {
    let home = g.home()?;
    let store = smimekit::account::Accounts::new(&home);
    let acct = if name.is_empty() {
        let all = store.list()?;
        all.into_iter()
            .find(|x| x.server.eq_ignore_ascii_case(host))
            .ok_or_else(|| {
                Error::not_found(format!("no account has the server {host}"))
                    .hint("name the account: --login ACCOUNT (see smimekit account list)")
            })?
    } else {
        store.get(name)?
    };
    let user = acct.user.clone().ok_or_else(|| {
        Error::usage(format!("account {} has no user to log in with", acct.name))
            .hint("add one: smimekit account add NAME --user USER … --replace")
    })?;
    let conn = super::send::ConnectArgs {
        ca: a.ca.clone(),
        timeout: smimekit::limits::NET_WAIT_SECS,
        ..Default::default()
    };
    let secret = super::send::login_secret(g, &conn, Some(&acct), &user)?;
    let login = super::send::make_login(Some(&acct), user, secret);
    Ok((acct, conn, login))
}

/// Logs in on one port with the send client (TLS, EHLO, AUTH), then QUIT; nothing is sent.
fn try_login(
    acct: &smimekit::account::Account,
    conn: &super::send::ConnectArgs,
    login: &smimekit::net::smtp::Login,
    host: &str,
    port: u16,
    mode: smimekit::net::smtp::TlsMode,
) -> check::LoginOutcome {
    let mut out = check::LoginOutcome {
        account: acct.name.clone(),
        user: login.user().to_string(),
        ok: false,
        detail: String::new(),
    };
    let ehlo = acct
        .from
        .as_deref()
        .and_then(|f| f.rsplit_once('@'))
        .map_or("localhost", |(_, d)| d)
        .to_string();
    let result = super::send::server_options(host.to_string(), port, mode, Some(acct), conn, &ehlo)
        .and_then(|o| smimekit::net::smtp::Session::connect(&o))
        .and_then(|mut s| {
            let r = s.authenticate(login);
            s.quit();
            r
        });
    match result {
        Ok(()) => {
            out.ok = true;
            out.detail = "accepted".into();
        }
        Err(e) => out.detail = e.message().to_string(),
    }
    out
}

/// The trust options from --ca and --no-system-trust: roots are anchors, other CA certificates only name a
/// missing intermediate.
fn options(a: &CheckServerArgs, home: Option<std::path::PathBuf>) -> Result<CheckOptions> {
    let mut opts = CheckOptions {
        no_system_store: a.no_system_trust,
        // check-server is about the network: revocation data is fetched (after the home's cache, if any).
        revocation: smimekit::revocation::Settings {
            offline: false,
            home: home.filter(|h| h.is_dir()),
            ..Default::default()
        },
        ..CheckOptions::default()
    };
    for f in &a.ca {
        let certs = smimekit::cert::parse_certs(&read_file(f)?, &f.display().to_string())?;
        for c in certs {
            let root = matches!(
                (c.subject_name().to_der(), c.issuer_name().to_der()),
                (Ok(s), Ok(i)) if s == i
            );
            if root {
                opts.anchors.push(c);
            } else {
                opts.known_intermediates.push(c);
            }
        }
    }
    Ok(opts)
}

fn run_domain(g: &Global, a: &CheckServerArgs, domain: &str, opts: &CheckOptions) -> Result<i32> {
    use smimekit::net::dns::Resolver;
    let resolver = match &a.dns_server {
        Some(s) => {
            let addr: std::net::SocketAddr = s
                .parse()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                .map_err(|_| {
                    Error::usage(format!("not an address: {s}"))
                        .hint("give --dns-server as an IP address, optionally with :PORT")
                })?;
            Resolver::at(addr)
        }
        None => Resolver::system()?,
    };
    let name = a
        .dns_server
        .clone()
        .unwrap_or_else(|| "/etc/resolv.conf".into());
    let r = check::check_domain(domain, &resolver, &name, opts)?;
    if g.json {
        output::json(&r)?;
    } else {
        let mut s = format!("Domain {} (DNS: {})\n", r.domain, r.dns_server);
        if r.mx.is_empty() {
            s += "  MX: none\n";
        }
        for m in &r.mx {
            s += &format!("  MX {} {}\n", m.preference, m.host);
        }
        for v in &r.srv {
            s += &format!(
                "  SRV {} → {}:{} (priority {}, weight {})\n",
                v.service, v.target, v.port, v.priority, v.weight
            );
        }
        s += &format!(
            "  MTA-STS: {}\n",
            r.mta_sts.as_deref().unwrap_or("no _mta-sts TXT record")
        );
        for t in &r.tlsa {
            for rec in &t.records {
                let m = match rec.matched {
                    Some(true) => "✓ matches the certificate sent",
                    Some(false) => "✗ does not match the certificate sent",
                    None => "- not checked (no connection)",
                };
                s += &format!(
                    "  TLSA {} {} {} {} {}…  {m}{}\n",
                    t.name,
                    rec.usage,
                    rec.selector,
                    rec.matching_type,
                    &rec.data[..rec.data.len().min(16)],
                    if t.dnssec_authenticated {
                        " (DNSSEC-validated)"
                    } else {
                        ""
                    }
                );
            }
        }
        for p in &r.problems {
            let mark = if p.severity == Status::Problem {
                "✗"
            } else {
                "!"
            };
            s += &format!("  {mark} {}\n      fix: {}\n", p.message, p.remedy);
        }
        s += "\n";
        for sr in &r.servers {
            s += &text(sr, true);
        }
        output::print(&output::clean(&s))?;
    }
    let code = r.exit_code();
    if code == 2 {
        return Err(Error::new(
            smimekit::ErrorKind::Network,
            format!("nothing could be checked for {domain}: no server found in DNS answered"),
        )
        .hint("check the domain's MX and SRV records and that the servers are reachable from here")
        .into());
    }
    Ok(code)
}

fn text(r: &ServerReport, scan: bool) -> String {
    let mut s = String::new();
    for p in &r.ports {
        if scan && !p.reachable {
            s += &format!(
                "{} port {} ({}): not answering\n\n",
                r.host,
                p.port,
                p.protocol.name()
            );
            continue;
        }
        s += &format!("{} port {} ({})\n", r.host, p.port, p.protocol.name());
        for c in &p.checks {
            s += &format!("  {} {:<26} {}\n", c.status.mark(), c.check, c.detail);
        }
        if !p.chain.is_empty() {
            s += "  chain as sent:\n";
            for (i, c) in p.chain.iter().enumerate() {
                s += &format!(
                    "    {}. {}\n       issuer {}; {}; until {} ({} days)\n",
                    i + 1,
                    c.subject,
                    c.issuer,
                    c.key,
                    c.not_after,
                    c.days_left
                );
            }
        }
        for pr in &p.problems {
            let mark = if pr.severity == Status::Problem {
                "✗"
            } else {
                "!"
            };
            s += &format!("  {mark} {}\n      fix: {}\n", pr.message, pr.remedy);
        }
        s += "\n";
    }
    let code = r.exit_code();
    s += match code {
        0 => "Result: ✓ every check passed\n",
        1 => "Result: ✗ problems found (see \"fix:\" lines)\n",
        _ => "Result: nothing could be checked\n",
    };
    s
}
