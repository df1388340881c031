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

fn read_file(path: &Path) -> Result<Secret> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io("read the secret file", path, e))?;
    // One trailing newline (LF or CRLF) is an artefact of `echo`, never part of the secret; anything else is.
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
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
            return read_file(f);
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
}
