//! Where secrets come from: a file named on the command line, then an environment variable, then a terminal
//! prompt. Never a command-line value. `--batch` never prompts.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use smimekit::secret::Secret;
use smimekit::{Error, ErrorKind};

/// Environment variable holding the PKCS#12 password (for scripts).
pub const PASSWORD_ENV: &str = "SMIMEKIT_PASSWORD";
/// Environment variable holding the ID passphrase (for scripts).
pub const PASSPHRASE_ENV: &str = "SMIMEKIT_PASSPHRASE";

/// Environment variable holding the new passphrase for `id passwd` (for scripts).
pub const NEW_PASSPHRASE_ENV: &str = "SMIMEKIT_NEW_PASSPHRASE";

/// The two kinds of secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A PKCS#12 file's password.
    Password,
    /// The passphrase protecting an ID's key in the store.
    Passphrase,
}

/// Secret sources given on the command line.
#[derive(Clone, Default)]
pub struct Sources {
    /// `--password-file`.
    pub password_file: Option<PathBuf>,
    /// `--passphrase-file`.
    pub passphrase_file: Option<PathBuf>,
    /// `--batch`.
    pub batch: bool,
}

/// The error for an empty secret file.
fn empty_file(path: &Path, flag: &str, env: &str) -> anyhow::Error {
    Error::usage(format!("{} is empty", path.display()))
        .hint(format!(
            "write the secret into the file given to {flag} (an empty secret can only come from {env}=\"\")"
        ))
        .into()
}

/// Whether `path` holds no secret (nothing, or just a line end).
fn is_empty_file(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| matches!(b.as_slice(), b"" | b"\n" | b"\r\n"))
}

/// Turns "wrong password/passphrase" into "FILE is empty" when the secret came from an empty file: the file
/// is the mistake (a failed redirection, the wrong file), not the secret.
pub fn explain_empty(src: &Sources, e: anyhow::Error) -> anyhow::Error {
    let wrong = e
        .downcast_ref::<Error>()
        .is_some_and(|x| x.kind() == ErrorKind::WrongSecret);
    if !wrong {
        return e;
    }
    for (file, flag, env) in [
        (&src.password_file, "--password-file", PASSWORD_ENV),
        (&src.passphrase_file, "--passphrase-file", PASSPHRASE_ENV),
    ] {
        if let Some(f) = file
            && is_empty_file(f)
        {
            return empty_file(f, flag, env);
        }
    }
    e
}

/// Reads a secret file. An empty one is refused for a passphrase and for a new secret (never meant); an
/// existing PKCS#12 file may have an empty password, so it is tried, and a mismatch then says the file is
/// empty ([`explain_empty`]).
fn read_file(path: &Path, flag: &str, env: &str, empty_ok: bool) -> Result<Secret> {
    let mut bytes =
        smimekit::input::read_bounded(path, smimekit::limits::MAX_SECRET_FILE, "secret file")?;
    // One trailing newline (LF or CRLF) is an artefact of `echo`, never part of the secret; anything else is.
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.is_empty() && !empty_ok {
        return Err(empty_file(path, flag, env));
    }
    Ok(Secret::new(bytes))
}

impl Sources {
    /// Obtains a secret of `kind` for `purpose` (e.g. "the password of alice.p12"). `new` asks twice.
    pub fn get(&self, kind: Kind, purpose: &str, new: bool) -> Result<Secret> {
        let (file, env, flag, word) = match kind {
            Kind::Password => (
                &self.password_file,
                PASSWORD_ENV,
                "--password-file",
                "password",
            ),
            Kind::Passphrase => (
                &self.passphrase_file,
                PASSPHRASE_ENV,
                "--passphrase-file",
                "passphrase",
            ),
        };
        if let Some(f) = file {
            return read_file(f, flag, env, kind == Kind::Password && !new);
        }
        if let Ok(v) = std::env::var(env) {
            return Ok(Secret::from_string(v));
        }
        if self.batch {
            return Err(Error::new(
                ErrorKind::MissingSecret,
                format!("{purpose} is needed and --batch forbids prompting"),
            )
            .hint(format!("pass {flag} FILE or set {env}"))
            .into());
        }
        let prompt = |p: &str| -> Result<Secret> {
            super::progress::suspend(|| rpassword::prompt_password(p))
                .map(Secret::from_string)
                .map_err(|e| {
                    Error::new(
                        ErrorKind::MissingSecret,
                        format!("cannot ask for {purpose}: no terminal ({e})"),
                    )
                    .hint(format!("pass {flag} FILE or set {env}"))
                    .into()
                })
        };
        let first = prompt(&format!("Enter {purpose}: "))?;
        if new {
            let again = prompt(&format!("Repeat the {word}: "))?;
            if first.expose() != again.expose() {
                bail!(
                    Error::usage(format!("the two {word}s differ")).hint("run the command again")
                );
            }
        }
        Ok(first)
    }

    /// The new passphrase of `id passwd`: from `file` (`--new-passphrase-file`), else
    /// [`NEW_PASSPHRASE_ENV`], else a prompt asked twice. Never the current passphrase's sources, so that a
    /// script cannot give the same value for both by mistake. An empty one is refused.
    pub fn get_new(&self, file: Option<&Path>, purpose: &str) -> Result<Secret> {
        let s = match file {
            Some(f) => read_file(f, "--new-passphrase-file", NEW_PASSPHRASE_ENV, false)?,
            None => match std::env::var(NEW_PASSPHRASE_ENV) {
                Ok(v) => Secret::from_string(v),
                Err(_) => Sources {
                    passphrase_file: None,
                    batch: self.batch,
                    password_file: None,
                }
                .prompt_new(purpose)?,
            },
        };
        if s.is_empty() {
            bail!(
                Error::usage("the new passphrase is empty").hint(
                    "choose a passphrase, or pass --no-passphrase to store the key unprotected"
                )
            );
        }
        Ok(s)
    }

    /// A new passphrase from the terminal, asked twice (`--batch`: an error naming the other sources).
    fn prompt_new(&self, purpose: &str) -> Result<Secret> {
        if self.batch {
            return Err(Error::new(
                ErrorKind::MissingSecret,
                format!("{purpose} is needed and --batch forbids prompting"),
            )
            .hint(format!(
                "pass --new-passphrase-file FILE or set {NEW_PASSPHRASE_ENV}"
            ))
            .into());
        }
        let ask = |p: &str| -> Result<Secret> {
            rpassword::prompt_password(p)
                .map(Secret::from_string)
                .map_err(|e| {
                    Error::new(
                        ErrorKind::MissingSecret,
                        format!("cannot ask for {purpose}: no terminal ({e})"),
                    )
                    .hint(format!(
                        "pass --new-passphrase-file FILE or set {NEW_PASSPHRASE_ENV}"
                    ))
                    .into()
                })
        };
        let first = ask(&format!("Enter {purpose}: "))?;
        let again = ask("Repeat the new passphrase: ")?;
        if first.expose() != again.expose() {
            bail!(Error::usage("the two passphrases differ").hint("run the command again"));
        }
        Ok(first)
    }
}
