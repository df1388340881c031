//! Typed errors of the library.
//!
//! Every error carries a message that says what is wrong (naming the file or ID concerned) and, where we can
//! tell, a hint that says what to do next — the way `rage` pairs each error with a remedy. The CLI prints both
//! and exits 2. Negative *cryptographic verdicts* (bad signature, untrusted…) are not errors: they are reports.

use std::fmt;
use std::path::Path;

/// What kind of failure this is; drives nothing but tests and JSON output (every error exits 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The command line or its combination of options is wrong.
    Usage,
    /// An input file or message is malformed or of the wrong type.
    BadInput,
    /// A password or passphrase did not open the file or key.
    WrongSecret,
    /// A secret was needed but none could be obtained (e.g. `--batch` without a source).
    MissingSecret,
    /// The named ID, contact or anchor does not exist, or nothing matched.
    NotFound,
    /// A well-formed input uses something we do not (or will not) support.
    Unsupported,
    /// A limit (size, iteration count, depth…) was exceeded.
    Limit,
    /// The store is missing, unreadable, of an unknown format, or has unsafe permissions.
    Store,
    /// A key or certificate cannot be used for what was asked (expired, wrong usage…).
    Unusable,
    /// OpenSSL reported an unexpected failure.
    Crypto,
    /// Reading or writing a file failed.
    Io,
    /// A network peer failed, misbehaved, refused, or could not be authenticated (TLS, SMTP).
    Network,
}

/// The library's error: a kind, a message, an optional hint and an optional underlying cause.
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    detail: Option<String>,
}

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            detail: None,
        }
    }
    /// Adds what the user should do next.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// Adds a technical detail (e.g. OpenSSL's error queue) shown after the message.
    pub fn detail(mut self, detail: impl fmt::Display) -> Self {
        let d = detail.to_string();
        if !d.is_empty() {
            self.detail = Some(d);
        }
        self
    }
    /// Shorthand for [`ErrorKind::BadInput`].
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }
    /// Shorthand for [`ErrorKind::Usage`].
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// Shorthand for [`ErrorKind::Limit`].
    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limit, message)
    }
    /// Shorthand for [`ErrorKind::Unusable`].
    pub fn unusable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unusable, message)
    }
    /// Shorthand for [`ErrorKind::Store`].
    pub fn store(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Store, message)
    }
    /// An OpenSSL failure while doing `what`.
    pub fn crypto(what: impl Into<String>, stack: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Crypto, what).detail(stack)
    }
    /// An I/O failure on `path` while doing `what`.
    pub fn io(what: &str, path: &Path, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let hint = match err.kind() {
            K::NotFound => Some("check the path"),
            K::PermissionDenied => Some("check the file's permissions and owner"),
            K::IsADirectory => Some("give a file, not a folder"),
            K::NotADirectory => Some("a part of the path is a file, not a folder: check the path"),
            K::StorageFull | K::QuotaExceeded => {
                Some("free some space (or raise the quota) and run the command again")
            }
            K::ReadOnlyFilesystem => Some("the file system is read-only: write somewhere else"),
            K::AlreadyExists => Some("remove it or choose another name"),
            _ => None,
        };
        let e = Self::new(
            ErrorKind::Io,
            format!("cannot {what} {}: {err}", path.display()),
        );
        match hint {
            Some(h) => e.hint(h),
            None => e,
        }
    }
    /// A failure writing the command's output.
    pub fn output(err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("cannot write the output: {err}"))
            .hint("check the output file's folder and free space")
    }
    /// The same error with `what` (e.g. a file name) before its message; kind, hint and detail are kept.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The main message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// What to do next, if known.
    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }
    /// Technical detail, if any.
    pub fn detail_text(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self)?;
        if let Some(h) = &self.hint {
            write!(f, " [hint: {h}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<openssl::error::ErrorStack> for Error {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Error::crypto("OpenSSL operation failed", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind as K;

    #[test]
    fn io_errors_say_what_to_do() {
        let p = Path::new("/x/y");
        for (kind, hint) in [
            (K::NotFound, "check the path"),
            (K::IsADirectory, "give a file, not a folder"),
            (K::StorageFull, "free some space"),
            (K::ReadOnlyFilesystem, "write somewhere else"),
        ] {
            let e = Error::io("write", p, std::io::Error::from(kind));
            assert!(e.to_string().starts_with("cannot write /x/y: "), "{e}");
            assert!(
                e.hint_text().is_some_and(|h| h.contains(hint)),
                "{kind:?}: {e:?}"
            );
        }
    }
}
