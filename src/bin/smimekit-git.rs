//! `smimekit-git`: the program git runs for x509 signatures (`git config gpg.x509.program smimekit-git`,
//! `git config gpg.format x509`). It takes gpg's command line — git passes no subcommand, hence a binary of
//! its own — and is a thin shell over [`smimekit::git`]: arguments, the passphrase, standard input and output.
//!
//! The home and the passphrase file come from smimekit's configuration and environment (`SMIMEKIT_HOME`,
//! `SMIMEKIT_CONFIG`, `SMIMEKIT_PASSPHRASE`, `SMIMEKIT_PASSPHRASE_FILE`); a protected key with none of those
//! is asked for on the terminal (`/dev/tty`, as gpg's pinentry would), never on git's pipes. Verification
//! never prompts. Exit codes: 0 success, 1 a signature that is not valid, 2 any error.

use std::ffi::OsString;
use std::io::{Read, Write};

use smimekit::config::{Config, Flags};
use smimekit::git::{self, Request};
use smimekit::home::Home;
use smimekit::secret::Secret;
use smimekit::{Error, ErrorKind};

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let result = git::parse_args(&args).and_then(|req| {
        smimekit::secret::protect_process();
        match req {
            Request::Version => {
                println!("smimekit-git {}", env!("CARGO_PKG_VERSION"));
                Ok(0)
            }
            Request::Help => {
                println!(
                    "usage: smimekit-git --status-fd=N -bsau KEY        sign standard input (detached, PEM)\n       \
                     smimekit-git --status-fd=N --verify SIGFILE [-]  verify SIGFILE over standard input\n\n\
                     Set up: git config gpg.format x509; git config gpg.x509.program smimekit-git"
                );
                Ok(0)
            }
            Request::Sign { key, status_fd } => sign(&key, status_fd),
            Request::Verify {
                signature,
                data,
                status_fd,
            } => verify(&signature, data.as_ref(), status_fd),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("smimekit-git: error: {e}");
            if let Some(h) = e.hint_text() {
                eprintln!("smimekit-git: hint: {h}");
            }
            2
        }
    }
}

fn config_and_home() -> smimekit::Result<(Config, Home)> {
    let cfg = Config::load(None, &Flags::default())?;
    let root = Home::resolve(cfg.home.value.as_deref())?;
    let home = Home::open(&root)?;
    Ok((cfg, home))
}

/// Reads standard input whole, up to [`smimekit::limits::GIT_PAYLOAD_MAX`].
fn read_stdin() -> smimekit::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let cap = smimekit::limits::GIT_PAYLOAD_MAX;
    std::io::stdin()
        .take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read the payload: {e}")))?;
    if buf.len() as u64 > cap {
        return Err(
            Error::limit(format!("the payload is larger than {cap} bytes"))
                .hint("git commits and tags are far smaller; check what is being signed"),
        );
    }
    Ok(buf)
}

/// Writes gpg status lines to file descriptor `fd` (1 and 2 are standard output and error; others through
/// `/dev/fd`, which needs no unsafe code). No `--status-fd`: nothing is written.
fn write_status(fd: Option<i32>, lines: &str) -> smimekit::Result<()> {
    let fail = |e: std::io::Error| {
        Error::new(ErrorKind::Io, format!("cannot write the status lines: {e}"))
    };
    match fd {
        None => Ok(()),
        Some(1) => {
            let mut o = std::io::stdout().lock();
            o.write_all(lines.as_bytes())
                .and_then(|_| o.flush())
                .map_err(fail)
        }
        Some(2) => std::io::stderr().write_all(lines.as_bytes()).map_err(fail),
        Some(n) => std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/dev/fd/{n}"))
            .and_then(|mut f| f.write_all(lines.as_bytes()))
            .map_err(fail),
    }
}

/// The passphrase of a protected key: the configured passphrase file, else `SMIMEKIT_PASSPHRASE`, else the
/// terminal.
fn passphrase(cfg: &Config, label: &str) -> smimekit::Result<Secret> {
    if let Some(p) = &cfg.passphrase_file.value {
        // Bounded like every secret file (a misconfigured /dev/zero must not exhaust memory).
        let mut bytes =
            smimekit::input::read_bounded(p, smimekit::limits::MAX_SECRET_FILE, "passphrase file")?;
        // One trailing newline is an artefact of `echo`, never part of the secret.
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        return Ok(Secret::new(bytes));
    }
    if let Ok(v) = std::env::var("SMIMEKIT_PASSPHRASE") {
        return Ok(Secret::from_string(v));
    }
    rpassword::prompt_password(format!("Enter the passphrase of {label}: "))
        .map(Secret::from_string)
        .map_err(|e| {
            Error::new(
                ErrorKind::MissingSecret,
                format!("cannot ask for the passphrase of {label}: no terminal ({e})"),
            )
            .hint("set passphrase-file in smimekit's config.toml, or SMIMEKIT_PASSPHRASE_FILE / SMIMEKIT_PASSPHRASE")
        })
}

fn sign(key: &str, status_fd: Option<i32>) -> smimekit::Result<i32> {
    let (cfg, home) = config_and_home()?;
    let payload = read_stdin()?;
    let id = git::resolve_key(&home, key, cfg.git_signing_key.value.as_deref())?;
    // Refused before any passphrase is asked for.
    git::check_can_sign(&id)?;
    let pkey = if id.key_protected {
        id.unlock(Some(&passphrase(&cfg, &id.label())?))?
    } else {
        id.unlock(None)?
    };
    let signed = git::sign(&id, &pkey, &payload)?;
    write_status(status_fd, &signed.status)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&signed.pem)
        .and_then(|_| out.flush())
        .map_err(Error::output)?;
    Ok(0)
}

fn verify(
    signature: &OsString,
    data: Option<&OsString>,
    status_fd: Option<i32>,
) -> smimekit::Result<i32> {
    let (_, home) = config_and_home()?;
    let sig_path = std::path::Path::new(signature);
    let sig = std::fs::read(sig_path).map_err(|e| Error::io("read the signature", sig_path, e))?;
    let payload = match data {
        Some(d) if d != "-" => {
            let p = std::path::Path::new(d);
            std::fs::read(p).map_err(|e| Error::io("read the signed data", p, e))?
        }
        _ => read_stdin()?,
    };
    let v = git::verify(&home, &sig, &payload);
    write_status(status_fd, &v.status)?;
    eprint!("{}", v.text);
    Ok(v.code)
}
