//! Printing: human text or `--json`, EPIPE-safe, with terminal control characters from untrusted data
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

/// Writes `text` to stdout; a closed pipe (`| head`) ends the program quietly.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
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

/// Replaces control characters (escape sequences, CR…) so untrusted text cannot act on the terminal.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Writes bytes to `-o FILE` atomically, or to stdout.
pub fn write_output(path: Option<&std::path::Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) if p.as_os_str() != "-" => Ok(smimekit::home::write_atomic(p, bytes)?),
        _ => {
            let mut out = std::io::stdout().lock();
            match out.write_all(bytes).and_then(|_| out.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
                r => Ok(r?),
            }
        }
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
