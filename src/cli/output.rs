//! Printing: human text or `--json`; every write to standard output goes through [`write_stdout`] (a closed or
//! broken standard output is an error naming it), with terminal control characters from untrusted data
//! neutralised (T28: nothing a message controls may paint the terminal).
//!
//! Under `--json` this module is the one output path: every command prints exactly one JSON document — its
//! report ([`json`]), `{"ok": true}` when it has nothing more to say, or `{"error": {kind, message, hint,
//! detail}}` — on standard output, or on standard error when standard output carries the message. Warnings
//! and notes are then collected into the document's `"messages"` instead of being printed as text.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use smimekit::{Error, ErrorKind};

/// `--json` was given.
static JSON: AtomicBool = AtomicBool::new(false);
/// Standard output carries the command's message: the report (and any error) goes to standard error.
static STDOUT_CARRIES_MESSAGE: AtomicBool = AtomicBool::new(false);
/// The command's JSON document was printed.
static EMITTED: AtomicBool = AtomicBool::new(false);
/// Warnings and notes held for the JSON document: (level, text).
static MESSAGES: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

/// Sets the output mode for this run (from `--json`).
pub fn init(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Whether `--json` was given.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Records that standard output carries the command's message (the report then goes to standard error).
pub fn stdout_carries_message(yes: bool) {
    STDOUT_CARRIES_MESSAGE.store(yes, Ordering::Relaxed);
}

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

/// Prints a human report: to standard output, or to standard error when standard output carries the message.
pub fn report(text: &str) -> Result<()> {
    if STDOUT_CARRIES_MESSAGE.load(Ordering::Relaxed) {
        eprint!("{}", clean(text));
        Ok(())
    } else {
        print(&clean(text))
    }
}

/// Prints the command's one JSON document (pretty, final newline), with the warnings and notes gathered so far
/// under `"messages"` when it is an object. A second document is never printed: later calls are ignored.
pub fn json<T: serde::Serialize>(v: &T) -> Result<()> {
    if EMITTED.swap(true, Ordering::Relaxed) {
        return Ok(());
    }
    let mut v = serde_json::to_value(v)?;
    let held = std::mem::take(&mut *MESSAGES.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(o) = v.as_object_mut()
        && !held.is_empty()
    {
        o.insert(
            "messages".into(),
            held.iter()
                .map(|(level, text)| serde_json::json!({"level": level, "text": text}))
                .collect(),
        );
    }
    let text = serde_json::to_string_pretty(&v)? + "\n";
    if STDOUT_CARRIES_MESSAGE.load(Ordering::Relaxed) {
        eprint!("{text}");
        Ok(())
    } else {
        print(&text)
    }
}

/// Records that the command printed its JSON output itself (`scan`'s JSON lines), so that nothing more is
/// added under `--json`.
pub fn json_written() {
    EMITTED.store(true, Ordering::Relaxed);
}

/// Under `--json`, prints `{"ok": BOOL}` (whether the exit code is 0) for a command that printed no document
/// of its own.
pub fn finish(code: i32) -> Result<()> {
    if is_json() && !EMITTED.load(Ordering::Relaxed) {
        json(&serde_json::json!({"ok": code == 0}))?;
    }
    Ok(())
}

/// Reports a failed command: `smimekit: error: …`, `smimekit: hint: …` and `smimekit: detail: …` (technical
/// text such as OpenSSL's error queue, never part of the message) on standard error; under `--json` the
/// document `{"error": {"kind", "message", "hint", "detail"}}` instead (as text when the command already
/// printed its document).
pub fn error(e: &anyhow::Error) {
    let (kind, message, hint, detail) = describe(e);
    if is_json() && !EMITTED.load(Ordering::Relaxed) {
        let doc = serde_json::json!({"error": {"kind": kind, "message": message, "hint": hint, "detail": detail}});
        if json(&doc).is_ok() {
            return;
        }
    }
    eprintln!("smimekit: error: {}", clean(&message));
    if let Some(h) = &hint {
        eprintln!("smimekit: hint: {}", clean(h));
    }
    if let Some(d) = &detail {
        eprintln!("smimekit: detail: {}", clean(d));
    }
}

/// Kind, message, hint and detail of any error reaching the command line.
fn describe(e: &anyhow::Error) -> (String, String, Option<String>, Option<String>) {
    if let Some(err) = e.downcast_ref::<smimekit::Error>() {
        let kind = serde_json::to_value(err.kind())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "error".into());
        return (
            kind,
            err.message().to_owned(),
            err.hint_text().map(str::to_owned),
            err.detail_text().map(str::to_owned),
        );
    }
    if let Some(stack) = e.downcast_ref::<openssl::error::ErrorStack>() {
        return (
            "crypto".into(),
            "OpenSSL operation failed".into(),
            None,
            Some(stack.to_string()),
        );
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return ("io".into(), format!("{io}"), None, None);
    }
    ("error".into(), format!("{e:#}"), None, None)
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

fn hold_or_print(level: &'static str, line: String) {
    if is_json() && !EMITTED.load(Ordering::Relaxed) {
        MESSAGES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((level, clean(&line)));
    } else if level == "warning" {
        eprintln!("smimekit: warning: {}", clean(&line));
    } else {
        eprintln!("smimekit: {}", clean(&line));
    }
}

/// Prints a warning to stderr (under `--json`: into the document's `messages`).
pub fn warn(msg: &str) {
    hold_or_print("warning", msg.to_owned());
}

/// Prints a note to stderr (under `--json`: into the document's `messages`).
pub fn note(msg: &str) {
    hold_or_print("note", msg.to_owned());
}
