//! Printing: human text or `--json`; every write to standard output goes through [`write_stdout`] (a closed or
//! broken standard output is an error naming it), with terminal control characters from untrusted data
//! neutralised (T28: nothing a message controls may paint the terminal).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use smimekit::{Error, ErrorKind};

/// Whether standard output was closed when the program started (`>&-`). Rust's runtime then opens /dev/null
/// on descriptor 1 before `main`, so that writes "succeed" and the output would be lost without a word: the
/// descriptor is looked at earlier, from the ELF initialisers (which run before the runtime's setup).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
#[used]
#[unsafe(link_section = ".init_array")]
static NOTE_CLOSED_STDOUT: extern "C" fn() = note_closed_stdout;

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
extern "C" fn note_closed_stdout() {
    // SAFETY: F_GETFD only queries the descriptor's flags; it fails with EBADF when descriptor 1 is not open.
    if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// The error for a failed write to standard output: it names standard output, says the output is incomplete,
/// and hints at what to do (a closed descriptor, a reader that went away, a full device such as /dev/full).
pub fn stdout_error(e: std::io::Error) -> Error {
    let (message, hint) = if e.raw_os_error() == Some(libc::EBADF) {
        (
            "standard output is closed: the output was not written".to_string(),
            "run the command with standard output open (not '>&-'), or write to a file with -o FILE",
        )
    } else if e.kind() == std::io::ErrorKind::BrokenPipe {
        (
            "standard output was closed by the program reading it (broken pipe): the output was not written in full".to_string(),
            "let the reading program read everything, or write to a file with -o FILE",
        )
    } else if matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) {
        (
            "standard output is full (no space left on device): the output was not written in full"
                .to_string(),
            "standard output is /dev/full or a full disk: free some space, or write to a file elsewhere with -o FILE",
        )
    } else {
        (
            format!("cannot write to standard output: {e}"),
            "check where standard output goes, or write to a file with -o FILE",
        )
    };
    Error::new(ErrorKind::Io, message).hint(hint)
}

/// Standard output, locked, or the error of [`stdout_error`] when it was closed before the program started.
/// Every write to standard output goes through here (or [`write_stdout`]), and maps its errors with
/// [`stdout_error`]: a message that could not be written in full is an error (exit 2), never a silent exit 0.
pub fn stdout() -> smimekit::Result<std::io::StdoutLock<'static>> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Err(stdout_error(std::io::Error::from_raw_os_error(libc::EBADF)));
    }
    Ok(std::io::stdout().lock())
}

/// Writes all of `bytes` to standard output and flushes it; any failure is [`stdout_error`].
pub fn write_stdout(bytes: &[u8]) -> smimekit::Result<()> {
    let mut out = stdout()?;
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(stdout_error)
}

/// Writes `text` to stdout; a closed standard output or a broken pipe is an error naming standard output.
pub fn print(text: &str) -> Result<()> {
    Ok(write_stdout(text.as_bytes())?)
}

/// Pretty JSON of `v` with a final newline.
pub fn json<T: serde::Serialize>(v: &T) -> Result<()> {
    print(&(serde_json::to_string_pretty(v)? + "\n"))
}

/// Neutralises control, bidi and format characters so untrusted text cannot act on the terminal (line feeds,
/// the report's own structure, are kept): [`smimekit::display::text`], the library's one escaping rule.
pub fn clean(s: &str) -> String {
    smimekit::display::text(s)
}

/// Writes bytes to `-o FILE` atomically, or to stdout.
pub fn write_output(path: Option<&std::path::Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) if p.as_os_str() != "-" => Ok(smimekit::home::write_atomic(p, bytes)?),
        _ => Ok(write_stdout(bytes)?),
    }
}

/// Prints a warning to stderr.
pub fn warn(msg: &str) {
    eprintln!("smimekit: warning: {}", clean(msg));
}

/// Prints a note to stderr.
pub fn note(msg: &str) {
    eprintln!("smimekit: {}", clean(msg));
}
