//! The configuration file (`$XDG_CONFIG_HOME/smimekit/config.toml`, or `--config FILE`) and the effective
//! settings: each one comes from the built-in default, the file, the environment or a command-line flag, in
//! that order of precedence (a later source overrides an earlier one), and remembers which.
//!
//! Unknown keys and bad values are errors naming the key and its line: a typo must not silently fall back to
//! a default (a misspelt `signing-key` would sign with the wrong ID).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::ossl::signed::Digest;

/// Environment variable naming the configuration file (below `--config`, above the default path).
pub const CONFIG_ENV: &str = "SMIMEKIT_CONFIG";

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file.
    File,
    /// An environment variable.
    Environment,
    /// A command-line flag.
    Flag,
}

impl Source {
    /// The lowercase name (`default`, `file`, `environment`, `flag`).
    pub fn name(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Environment => "environment",
            Source::Flag => "flag",
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its source.
    pub source: Source,
}

impl<T> Sourced<T> {
    fn default(value: T) -> Self {
        Sourced {
            value,
            source: Source::Default,
        }
    }
    fn set(&mut self, value: T, source: Source) {
        self.value = value;
        self.source = source;
    }
}

/// The content-encryption policy for `encrypt` (`encrypt.cipher-policy`): `compatible` follows what the
/// recipients advertise (AES-CBC for those who list only CBC), `modern` insists on AES-GCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherPolicyName {
    /// Follow the recipients' capabilities.
    Compatible,
    /// AES-GCM only.
    Modern,
}

impl CipherPolicyName {
    /// Parses `compatible` / `modern`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "compatible" => Some(Self::Compatible),
            "modern" => Some(Self::Modern),
            _ => None,
        }
    }
    /// The name as written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Compatible => "compatible",
            Self::Modern => "modern",
        }
    }
}

/// How `sign` packages a signature by default (`sign.form`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignForm {
    /// multipart/signed (readable without S/MIME support).
    Multipart,
    /// application/pkcs7-mime signed-data.
    Opaque,
}

impl SignForm {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "multipart" => Some(Self::Multipart),
            "opaque" => Some(Self::Opaque),
            _ => None,
        }
    }
    /// The name as written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Multipart => "multipart",
            Self::Opaque => "opaque",
        }
    }
}

/// Certificate revocation checking (`revocation.check`): the default of `--revocation` for verify, decrypt
/// and encrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationCheck {
    /// No revocation checking; reports say "revocation not checked".
    Off,
    /// Check (fetching CRLs and OCSP answers); a status that cannot be established is a warning.
    Prefer,
    /// Check; a status that cannot be established fails the verdict.
    Require,
}

impl RevocationCheck {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "prefer" => Some(Self::Prefer),
            "require" => Some(Self::Require),
            _ => None,
        }
    }
    /// The name as written in the file (and taken by `--revocation`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Prefer => "prefer",
            Self::Require => "require",
        }
    }
}

/// The file's layout. Every table refuses unknown keys.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    home: Option<toml::Spanned<String>>,
    passphrase_file: Option<toml::Spanned<String>>,
    #[serde(default)]
    sign: FileSign,
    #[serde(default)]
    encrypt: FileEncrypt,
    #[serde(default)]
    git: FileGit,
    #[serde(default)]
    revocation: FileRevocation,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileSign {
    id: Option<toml::Spanned<String>>,
    digest: Option<toml::Spanned<String>>,
    form: Option<toml::Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileEncrypt {
    cipher_policy: Option<toml::Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileGit {
    signing_key: Option<toml::Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileRevocation {
    check: Option<toml::Spanned<String>>,
    fetch: Option<toml::Spanned<bool>>,
}

/// Values given on the command line (each `None` when the flag was not given).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--home`.
    pub home: Option<PathBuf>,
    /// `--passphrase-file`.
    pub passphrase_file: Option<PathBuf>,
    /// `--as` of sign.
    pub sign_id: Option<String>,
    /// `--digest` of sign.
    pub digest: Option<Digest>,
    /// `--cipher-policy` of encrypt.
    pub cipher_policy: Option<CipherPolicyName>,
}

/// The effective settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file read (`None`: there was none at the default path).
    pub file: Option<PathBuf>,
    /// The smimekit home (`None`: `Home::resolve`'s platform default).
    pub home: Sourced<Option<PathBuf>>,
    /// Where to read ID passphrases from.
    pub passphrase_file: Sourced<Option<PathBuf>>,
    /// The ID `sign` uses when no `--as` is given and From: does not decide.
    pub sign_id: Sourced<Option<String>>,
    /// The digest of `sign`.
    pub digest: Sourced<Digest>,
    /// multipart/signed or opaque.
    pub sign_form: Sourced<SignForm>,
    /// The content-encryption policy of `encrypt`.
    pub cipher_policy: Sourced<CipherPolicyName>,
    /// The ID git signs with when git passes none it can resolve (`smimekit-git`).
    pub git_signing_key: Sourced<Option<String>>,
    /// Revocation checking (the default of `--revocation`).
    pub revocation_check: Sourced<RevocationCheck>,
    /// Whether verify, decrypt and encrypt fetch CRLs and OCSP answers over the network (`--online`).
    pub revocation_fetch: Sourced<bool>,
}

/// One environment variable per setting (the home's is the long-standing `SMIMEKIT_HOME`).
pub mod env {
    /// `home`.
    pub const HOME: &str = "SMIMEKIT_HOME";
    /// `passphrase-file`.
    pub const PASSPHRASE_FILE: &str = "SMIMEKIT_PASSPHRASE_FILE";
    /// `sign.id`.
    pub const SIGN_ID: &str = "SMIMEKIT_SIGN_ID";
    /// `sign.digest`.
    pub const DIGEST: &str = "SMIMEKIT_DIGEST";
    /// `sign.form`.
    pub const SIGN_FORM: &str = "SMIMEKIT_SIGN_FORM";
    /// `encrypt.cipher-policy`.
    pub const CIPHER_POLICY: &str = "SMIMEKIT_CIPHER_POLICY";
    /// `git.signing-key`.
    pub const GIT_SIGNING_KEY: &str = "SMIMEKIT_GIT_SIGNING_KEY";
    /// `revocation.check`.
    pub const REVOCATION: &str = "SMIMEKIT_REVOCATION";
}

/// The default configuration file: `$XDG_CONFIG_HOME/smimekit/config.toml` (the platform's configuration
/// folder elsewhere).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "smimekit", "smimekit")
        .map(|d| d.config_dir().join("config.toml"))
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// Loads the effective settings: defaults, then the file (`explicit`, else `$SMIMEKIT_CONFIG`, else the
    /// default path if it exists), then the environment, then `flags`.
    pub fn load(explicit: Option<&Path>, flags: &Flags) -> Result<Config> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => match env_value(CONFIG_ENV) {
                Some(p) => Some(PathBuf::from(p)),
                None => default_path().filter(|p| p.exists()),
            },
        };
        let text = match &path {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| Error::io("read the configuration file", p, e))?,
            ),
            None => None,
        };
        Self::from_parts(path, text.as_deref(), &|n| env_value(n), flags)
    }

    /// [`Config::load`] with the file's text, the environment and the flags given (for tests).
    pub fn from_parts(
        path: Option<PathBuf>,
        text: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &Flags,
    ) -> Result<Config> {
        let shown = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the configuration".into());
        let file: FileConfig = match text {
            Some(t) => toml::from_str(t).map_err(|e| {
                let line = e.span().map(|s| line_of(t, s.start));
                let msg = e.message().trim().replace("unknown field", "unknown key");
                Error::usage(match line {
                    Some(l) => format!("{shown}, line {l}: {msg}"),
                    None => format!("{shown}: {msg}"),
                })
                .hint("fix or remove that line; 'smimekit config show' lists the known settings")
            })?,
            None => FileConfig::default(),
        };
        let bad = |s: &toml::Spanned<String>, key: &str, expected: &str| {
            let line = text.map(|t| line_of(t, s.span().start)).unwrap_or(0);
            Error::usage(format!(
                "{shown}, line {line}: {key} = \"{}\" is not one of {expected}",
                s.get_ref()
            ))
            .hint(format!("set {key} to one of {expected}"))
        };
        let bad_env = |name: &str, v: &str, expected: &str| {
            Error::usage(format!(
                "the environment variable {name}=\"{v}\" is not one of {expected}"
            ))
            .hint(format!("set {name} to one of {expected}, or unset it"))
        };

        let mut c = Config {
            file: path.clone(),
            home: Sourced::default(None),
            passphrase_file: Sourced::default(None),
            sign_id: Sourced::default(None),
            digest: Sourced::default(Digest::Sha256),
            sign_form: Sourced::default(SignForm::Multipart),
            cipher_policy: Sourced::default(CipherPolicyName::Compatible),
            git_signing_key: Sourced::default(None),
            revocation_check: Sourced::default(RevocationCheck::Prefer),
            revocation_fetch: Sourced::default(false),
        };
        // A relative path in the file is relative to the file's folder, as in most tools' configuration.
        let base = path
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let file_path = |s: &toml::Spanned<String>| {
            let p = expand_tilde(s.get_ref());
            if p.is_relative() { base.join(p) } else { p }
        };

        // ---- the file ----
        if let Some(s) = &file.home {
            c.home.set(Some(file_path(s)), Source::File);
        }
        if let Some(s) = &file.passphrase_file {
            c.passphrase_file.set(Some(file_path(s)), Source::File);
        }
        if let Some(s) = &file.sign.id {
            c.sign_id.set(Some(s.get_ref().clone()), Source::File);
        }
        const DIGESTS: &str = "sha256, sha384, sha512";
        if let Some(s) = &file.sign.digest {
            let d = parse_digest(s.get_ref()).ok_or_else(|| bad(s, "sign.digest", DIGESTS))?;
            c.digest.set(d, Source::File);
        }
        const FORMS: &str = "multipart, opaque";
        if let Some(s) = &file.sign.form {
            let f = SignForm::parse(s.get_ref()).ok_or_else(|| bad(s, "sign.form", FORMS))?;
            c.sign_form.set(f, Source::File);
        }
        const POLICIES: &str = "compatible, modern";
        if let Some(s) = &file.encrypt.cipher_policy {
            let p = CipherPolicyName::parse(s.get_ref())
                .ok_or_else(|| bad(s, "encrypt.cipher-policy", POLICIES))?;
            c.cipher_policy.set(p, Source::File);
        }
        if let Some(s) = &file.git.signing_key {
            c.git_signing_key
                .set(Some(s.get_ref().clone()), Source::File);
        }
        const CHECKS: &str = "off, prefer, require";
        if let Some(s) = &file.revocation.check {
            let r = RevocationCheck::parse(s.get_ref())
                .ok_or_else(|| bad(s, "revocation.check", CHECKS))?;
            c.revocation_check.set(r, Source::File);
        }
        if let Some(b) = &file.revocation.fetch {
            c.revocation_fetch.set(*b.get_ref(), Source::File);
        }

        // ---- the environment ----
        if let Some(v) = env(env::HOME) {
            c.home.set(Some(PathBuf::from(v)), Source::Environment);
        }
        if let Some(v) = env(env::PASSPHRASE_FILE) {
            c.passphrase_file
                .set(Some(PathBuf::from(v)), Source::Environment);
        }
        if let Some(v) = env(env::SIGN_ID) {
            c.sign_id.set(Some(v), Source::Environment);
        }
        if let Some(v) = env(env::DIGEST) {
            let d = parse_digest(&v).ok_or_else(|| bad_env(env::DIGEST, &v, DIGESTS))?;
            c.digest.set(d, Source::Environment);
        }
        if let Some(v) = env(env::SIGN_FORM) {
            let f = SignForm::parse(&v).ok_or_else(|| bad_env(env::SIGN_FORM, &v, FORMS))?;
            c.sign_form.set(f, Source::Environment);
        }
        if let Some(v) = env(env::CIPHER_POLICY) {
            let p = CipherPolicyName::parse(&v)
                .ok_or_else(|| bad_env(env::CIPHER_POLICY, &v, POLICIES))?;
            c.cipher_policy.set(p, Source::Environment);
        }
        if let Some(v) = env(env::REVOCATION) {
            let r = RevocationCheck::parse(&v)
                .ok_or_else(|| bad_env(env::REVOCATION, &v, "off, prefer, require"))?;
            c.revocation_check.set(r, Source::Environment);
        }
        if let Some(v) = env(env::GIT_SIGNING_KEY) {
            c.git_signing_key.set(Some(v), Source::Environment);
        }

        // ---- the flags ----
        if let Some(v) = &flags.home {
            c.home.set(Some(v.clone()), Source::Flag);
        }
        if let Some(v) = &flags.passphrase_file {
            c.passphrase_file.set(Some(v.clone()), Source::Flag);
        }
        if let Some(v) = &flags.sign_id {
            c.sign_id.set(Some(v.clone()), Source::Flag);
        }
        if let Some(v) = flags.digest {
            c.digest.set(v, Source::Flag);
        }
        if let Some(v) = flags.cipher_policy {
            c.cipher_policy.set(v, Source::Flag);
        }
        Ok(c)
    }

    /// Every setting as (key, value, source), in the file's order; `None` = unset.
    pub fn entries(&self) -> Vec<(&'static str, Option<String>, Source)> {
        let path = |s: &Sourced<Option<PathBuf>>| {
            (s.value.as_ref().map(|p| p.display().to_string()), s.source)
        };
        let text = |s: &Sourced<Option<String>>| (s.value.clone(), s.source);
        let name = |v: &str, src: Source| (Some(v.to_string()), src);
        let rows = [
            ("home", path(&self.home)),
            ("passphrase-file", path(&self.passphrase_file)),
            ("sign.id", text(&self.sign_id)),
            (
                "sign.digest",
                name(
                    &self.digest.value.micalg().replace('-', ""),
                    self.digest.source,
                ),
            ),
            (
                "sign.form",
                name(self.sign_form.value.name(), self.sign_form.source),
            ),
            (
                "encrypt.cipher-policy",
                name(self.cipher_policy.value.name(), self.cipher_policy.source),
            ),
            ("git.signing-key", text(&self.git_signing_key)),
            (
                "revocation.check",
                name(
                    self.revocation_check.value.name(),
                    self.revocation_check.source,
                ),
            ),
            (
                "revocation.fetch",
                name(
                    if self.revocation_fetch.value {
                        "true"
                    } else {
                        "false"
                    },
                    self.revocation_fetch.source,
                ),
            ),
        ];
        rows.into_iter().map(|(k, (v, s))| (k, v, s)).collect()
    }
}

fn parse_digest(s: &str) -> Option<Digest> {
    Digest::from_name(s)
}

/// `~/x` → `$HOME/x` (TOML has no shell to do it).
fn expand_tilde(s: &str) -> PathBuf {
    match (s.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(h)) => PathBuf::from(h).join(rest),
        _ => PathBuf::from(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)], flags: &Flags) -> Result<Config> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Config::from_parts(
            Some(PathBuf::from("/etc/x/config.toml")),
            Some(text),
            &move |n| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()),
            flags,
        )
    }

    #[test]
    fn precedence_file_env_flag() {
        let text = "[sign]\ndigest = \"sha384\"\n[encrypt]\ncipher-policy = \"modern\"\n";
        let c = load(text, &[], &Flags::default()).unwrap();
        assert_eq!(c.digest.value, Digest::Sha384);
        assert_eq!(c.digest.source, Source::File);
        assert_eq!(c.cipher_policy.value, CipherPolicyName::Modern);
        assert_eq!(c.sign_form.source, Source::Default);
        let c = load(text, &[(env::DIGEST, "sha512")], &Flags::default()).unwrap();
        assert_eq!(
            (c.digest.value, c.digest.source),
            (Digest::Sha512, Source::Environment)
        );
        let flags = Flags {
            digest: Some(Digest::Sha256),
            ..Flags::default()
        };
        let c = load(text, &[(env::DIGEST, "sha512")], &flags).unwrap();
        assert_eq!(
            (c.digest.value, c.digest.source),
            (Digest::Sha256, Source::Flag)
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = load(
            "[sign]\ndigest = \"sha256\"\n\n[git]\nsigning-kee = \"x\"\n",
            &[],
            &Flags::default(),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("line 5"), "{m}");
        assert!(m.contains("signing-kee"), "{m}");
        let e = load("bogus = 1\n", &[], &Flags::default()).unwrap_err();
        assert!(e.to_string().contains("line 1") && e.to_string().contains("bogus"));
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let e = load(
            "\n[encrypt]\ncipher-policy = \"fast\"\n",
            &[],
            &Flags::default(),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("line 3") && m.contains("encrypt.cipher-policy") && m.contains("compatible"),
            "{m}"
        );
        let e = load("", &[(env::CIPHER_POLICY, "x")], &Flags::default()).unwrap_err();
        assert!(e.to_string().contains(env::CIPHER_POLICY));
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let c = load("passphrase-file = \"pass.txt\"\n", &[], &Flags::default()).unwrap();
        assert_eq!(
            c.passphrase_file.value.as_deref(),
            Some(Path::new("/etc/x/pass.txt"))
        );
    }
}
