//! Printing: human text or `--json`, EPIPE-safe, with terminal control characters from untrusted data
//! neutralised (T28: nothing a message controls may paint the terminal).

use std::io::Write;

use anyhow::Result;

/// Writes `text` to stdout; a closed pipe (`| head`) ends the program quietly.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
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
        _ => {
            let mut out = std::io::stdout().lock();
            match out.write_all(bytes).and_then(|_| out.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
                r => Ok(r?),
            }
        }
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
