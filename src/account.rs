//! Sending accounts: server, TLS mode, user, From address, login command and protection policy, stored in
//! the home as `accounts.json` (0600, written atomically under the store lock).
//!
//! The login secret itself is never stored: it comes from `--login-file`, `SMIMEKIT_LOGIN`, the account's
//! login command (run through `sh -c`, its first output line is the secret — as msmtp's `passwordeval`), or a
//! prompt.

use std::process::{Command, Stdio};

use crate::error::{Error, ErrorKind, Result};
use crate::home::Home;
use crate::net::smtp::TlsMode;
use crate::secret::Secret;

/// File name of the account store in the home.
pub const FILE: &str = "accounts.json";

/// What is done to outgoing mail unless the command line says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Policy {
    /// Send as given.
    #[default]
    #[serde(rename = "none")]
    None,
    /// Sign every message.
    #[serde(rename = "sign")]
    Sign,
    /// Sign every message; encrypt it too when every recipient has a certificate.
    #[serde(rename = "encrypt-if-possible")]
    EncryptIfPossible,
    /// Sign and encrypt every message; refuse when a recipient has no certificate.
    #[serde(rename = "sign+encrypt")]
    SignEncrypt,
}

impl Policy {
    /// Parses `none`, `sign`, `encrypt-if-possible`, `sign+encrypt`.
    pub fn parse(s: &str) -> Result<Policy> {
        Ok(match s {
            "none" => Policy::None,
            "sign" => Policy::Sign,
            "encrypt-if-possible" => Policy::EncryptIfPossible,
            "sign+encrypt" => Policy::SignEncrypt,
            _ => {
                return Err(Error::usage(format!("unknown policy {s}"))
                    .hint("use none, sign, encrypt-if-possible or sign+encrypt"));
            }
        })
    }
    /// The policy's name as typed.
    pub fn name(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Sign => "sign",
            Policy::EncryptIfPossible => "encrypt-if-possible",
            Policy::SignEncrypt => "sign+encrypt",
        }
    }
}

/// How the account logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// A password (AUTH PLAIN or LOGIN).
    #[default]
    Password,
    /// An OAuth 2 access token printed by the login command (XOAUTH2 or OAUTHBEARER).
    Oauth2,
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// The account's name.
    pub name: String,
    /// Submission server host name.
    pub server: String,
    /// Port (465 implicit TLS, 587 STARTTLS, or as given).
    pub port: u16,
    /// How TLS starts.
    pub tls: TlsMode,
    /// Login user, if the server needs a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Default From address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A shell command printing the login secret on its first output line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_command: Option<String>,
    /// Password or OAuth 2 token.
    #[serde(default)]
    pub auth: AuthKind,
    /// What to do to outgoing mail by default.
    #[serde(default)]
    pub policy: Policy,
    /// Extra trust anchors for the server certificate (PEM), e.g. a private CA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_pem: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct StoreFile {
    accounts: Vec<Account>,
}

/// The account store of a home.
pub struct Accounts<'h> {
    home: &'h Home,
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        return Err(Error::usage(format!("invalid account name {name:?}"))
            .hint("use letters, digits and - _ . @ (at most 64)"));
    }
    Ok(())
}

impl<'h> Accounts<'h> {
    /// The store of `home`.
    pub fn new(home: &'h Home) -> Self {
        Accounts { home }
    }

    fn load(&self) -> Result<StoreFile> {
        let p = self.home.root().join(FILE);
        if !p.exists() {
            return Ok(StoreFile::default());
        }
        let bytes = self.home.read(&p)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::store(format!("{} is not a valid account file: {e}", p.display()))
                .hint("fix or remove the file")
        })
    }

    fn save(&self, s: &StoreFile) -> Result<()> {
        let p = self.home.root().join(FILE);
        let bytes = serde_json::to_vec_pretty(s)
            .map_err(|e| Error::store(format!("cannot serialise accounts: {e}")))?;
        self.home.write_atomic(&p, &bytes)
    }

    /// Every account, sorted by name.
    pub fn list(&self) -> Result<Vec<Account>> {
        let mut v = self.load()?.accounts;
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// The account called `name`.
    pub fn get(&self, name: &str) -> Result<Account> {
        self.load()?
            .accounts
            .into_iter()
            .find(|a| a.name == name)
            .ok_or_else(|| {
                Error::not_found(format!("no account named {name}")).hint(
                    "list them with `smimekit account list`, add one with `smimekit account add`",
                )
            })
    }

    /// Adds `a`; `replace` allows overwriting an account of the same name.
    pub fn add(&self, a: Account, replace: bool) -> Result<()> {
        check_name(&a.name)?;
        let _lock = self.home.lock()?;
        let mut s = self.load()?;
        if let Some(i) = s.accounts.iter().position(|x| x.name == a.name) {
            if !replace {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("an account named {} exists", a.name),
                )
                .hint("add --replace to overwrite it, or choose another name"));
            }
            s.accounts[i] = a;
        } else {
            s.accounts.push(a);
        }
        self.save(&s)
    }

    /// Removes the account `name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        let _lock = self.home.lock()?;
        let mut s = self.load()?;
        let before = s.accounts.len();
        s.accounts.retain(|a| a.name != name);
        if s.accounts.len() == before {
            return Err(Error::not_found(format!("no account named {name}"))
                .hint("list them with `smimekit account list`"));
        }
        self.save(&s)
    }
}

/// Runs a login command (`sh -c CMD`) and returns its first output line as the login secret. The command's
/// standard error goes to the user's terminal; a failure or an empty output is an error.
pub fn run_login_command(cmd: &str) -> Result<Secret> {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            Error::new(
                ErrorKind::MissingSecret,
                format!("cannot run the login command: {e}"),
            )
            .hint("check the account's login command")
        })?;
    let mut bytes = zeroize::Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::MissingSecret,
            format!("the login command failed ({})", out.status),
        )
        .hint("run the account's login command yourself to see why"));
    }
    let end = memchr::memchr(b'\n', &bytes).unwrap_or(bytes.len());
    let mut line = bytes[..end].to_vec();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    bytes.iter_mut().for_each(|b| *b = 0);
    if line.is_empty() {
        return Err(Error::new(
            ErrorKind::MissingSecret,
            "the login command printed nothing",
        )
        .hint("it must print the password or token on its first line"));
    }
    Ok(Secret::new(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip() {
        for p in ["none", "sign", "encrypt-if-possible", "sign+encrypt"] {
            assert_eq!(Policy::parse(p).unwrap().name(), p);
        }
        assert!(Policy::parse("always").is_err());
    }

    #[test]
    fn login_command_first_line() {
        let s = run_login_command("printf 'tok\\nrest\\n'").unwrap();
        assert_eq!(s.expose(), b"tok");
        assert!(run_login_command("exit 3").is_err());
        assert!(run_login_command("true").is_err());
    }
}
