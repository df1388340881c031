//! Mailboxes as `scan` reads them: Maildir folders (`cur/` and `new/`, Maildir++ subfolders), mbox files,
//! folders of message files (recursively), and single messages.
//!
//! mail-parser's mailbox readers are not used: its mbox reader does not report where each message starts
//! (scan reports the offset of every mbox message, so that a verdict can be traced back to its bytes), and its
//! Maildir reader reads every file while listing them, where scan wants the list first and the reading spread
//! over its worker threads. Both formats are simple enough for the few lines here.
//!
//! mbox: every line that starts with `From ` begins a new message (mboxrd and mboxo writers quote such lines in
//! a body as `>From `); inside a message, a line `>From `, `>>From `… loses one `>` (mboxrd unquoting, as
//! mail-parser does). The blank line that separates messages is not part of the message.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::limits::SCAN_MAX_DEPTH;

/// Something found under the paths to scan.
#[derive(Debug)]
pub enum Source {
    /// A file holding one message.
    Message(PathBuf),
    /// An mbox file (many messages): split with [`mbox_messages`].
    Mbox(PathBuf),
    /// A file or folder that cannot be read (a dangling link, a special file, an unreadable folder): reported
    /// as a message that could not be read.
    Unreadable(PathBuf, Error),
}

/// Lists the messages under `paths`, in a stable order (each path in turn, folder entries sorted by name).
///
/// A path given that does not exist (or cannot be examined) is an error: nothing is scanned. Below it, an
/// entry that cannot be read is a [`Source::Unreadable`] and the walk goes on. Symbolic links to files are
/// followed; links to folders are not (no loops). Names starting with `.` are skipped, except Maildir++
/// subfolders (`.Sent/` holding `cur/` and `new/`). In a Maildir only `cur/` and `new/` are read (`tmp/`
/// holds messages still being delivered). In other folders, only `.eml` files, files without an extension and
/// mbox files (whatever their name) are read; a file given by name is always read.
pub fn walk(paths: &[PathBuf]) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| {
            Error::io("read", p, e)
                .hint("give Maildir folders, mbox files, folders of .eml files or messages")
        })?;
        if meta.is_dir() {
            walk_dir(p, 0, &mut out);
        } else {
            out.push(file_source(p, &meta));
        }
    }
    Ok(out)
}

fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() && dir.join("new").is_dir()
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    v.sort_by_key(|e| e.file_name());
    Ok(v)
}

fn walk_dir(dir: &Path, depth: usize, out: &mut Vec<Source>) {
    if depth > SCAN_MAX_DEPTH {
        out.push(Source::Unreadable(
            dir.to_path_buf(),
            Error::limit(format!("folders nested more than {SCAN_MAX_DEPTH} deep"))
                .hint("scan the deeper folder by itself"),
        ));
        return;
    }
    let entries = match sorted_entries(dir) {
        Ok(e) => e,
        Err(e) => {
            out.push(Source::Unreadable(
                dir.to_path_buf(),
                Error::io("read the folder", dir, e),
            ));
            return;
        }
    };
    if is_maildir(dir) {
        for sub in ["cur", "new"] {
            let d = dir.join(sub);
            match sorted_entries(&d) {
                Ok(files) => {
                    for f in files {
                        let name = f.file_name();
                        if name.to_string_lossy().starts_with('.') {
                            continue;
                        }
                        let p = f.path();
                        // Maildir files are single messages by definition: no sniffing (one open per file),
                        // and the folder listing says what they are (a stat only for links).
                        if f.file_type().is_ok_and(|t| t.is_file()) {
                            out.push(Source::Message(p));
                            continue;
                        }
                        match std::fs::metadata(&p) {
                            Ok(m) if m.is_file() => out.push(Source::Message(p)),
                            Ok(m) if m.is_dir() => {}
                            Ok(_) => out.push(not_regular(p)),
                            Err(e) => {
                                let err = Error::io("read", &p, e);
                                out.push(Source::Unreadable(p, err));
                            }
                        }
                    }
                }
                Err(e) => out.push(Source::Unreadable(
                    d.clone(),
                    Error::io("read the folder", &d, e),
                )),
            }
        }
        // Maildir++ subfolders; the other files at a Maildir's top (dovecot-uidlist, indexes) are not mail.
        for e in entries {
            let p = e.path();
            let name = e.file_name();
            if matches!(name.to_str(), Some("cur" | "new" | "tmp")) {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) && is_maildir(&p) {
                walk_dir(&p, depth + 1, out);
            }
        }
        return;
    }
    for e in entries {
        let p = e.path();
        let dot = e.file_name().to_string_lossy().starts_with('.');
        let Ok(ft) = e.file_type() else {
            let err = Error::bad_input(format!("cannot tell what {} is", p.display()));
            out.push(Source::Unreadable(p, err));
            continue;
        };
        if ft.is_dir() {
            if !dot || is_maildir(&p) {
                walk_dir(&p, depth + 1, out);
            }
            continue;
        }
        if dot {
            continue;
        }
        match std::fs::metadata(&p) {
            // A link to a folder is not followed (no loops); a link to a file is read.
            Ok(m) if m.is_dir() => {}
            Ok(m) => match file_source(&p, &m) {
                // Beside messages, folders hold other files (certificates, notes): only `.eml` files, files
                // without an extension (MH, Maildir-like names) and mbox files are mail.
                Source::Message(p) if !looks_like_message_file(&p) => {}
                s => out.push(s),
            },
            Err(err) => {
                let err = Error::io("read", &p, err)
                    .hint("the file is missing (a dangling link?) or cannot be opened");
                out.push(Source::Unreadable(p, err));
            }
        }
    }
}

/// A file in a folder that is taken as a message: `.eml`, or no extension at all.
fn looks_like_message_file(p: &Path) -> bool {
    match p.extension().and_then(|e| e.to_str()) {
        None => true,
        Some(e) => e.eq_ignore_ascii_case("eml"),
    }
}

fn not_regular(p: PathBuf) -> Source {
    let e = Error::bad_input(format!("{} is not a regular file", p.display()))
        .hint("scan reads message files, mbox files and folders; devices and pipes are skipped");
    Source::Unreadable(p, e)
}

/// A file: an mbox when it starts with a `From ` line, else one message.
fn file_source(p: &Path, meta: &std::fs::Metadata) -> Source {
    if !meta.is_file() {
        return not_regular(p.to_path_buf());
    }
    use std::io::Read;
    let mut head = [0u8; 5];
    let n = std::fs::File::open(p).and_then(|mut f| {
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    });
    match n {
        Ok(5) if &head == b"From " => Source::Mbox(p.to_path_buf()),
        Ok(_) => Source::Message(p.to_path_buf()),
        Err(e) => Source::Unreadable(p.to_path_buf(), Error::io("read", p, e)),
    }
}

/// One message of an mbox file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MboxMessage {
    /// Offset of its `From ` separator line in the file.
    pub offset: usize,
    /// Where the message itself starts (after the separator line).
    pub start: usize,
    /// Where it ends (before the blank line that precedes the next separator).
    pub end: usize,
}

/// The messages of an mbox file: every line starting with `From ` begins one.
pub fn mbox_messages(data: &[u8]) -> Vec<MboxMessage> {
    let mut seps = Vec::new();
    if data.starts_with(b"From ") {
        seps.push(0);
    }
    for i in memchr::memmem::find_iter(data, b"\nFrom ") {
        seps.push(i + 1);
    }
    let mut out = Vec::with_capacity(seps.len());
    for (k, &off) in seps.iter().enumerate() {
        let next = seps.get(k + 1).copied().unwrap_or(data.len());
        let start = memchr::memchr(b'\n', &data[off..next]).map_or(next, |n| off + n + 1);
        let mut end = next;
        // The blank line before the next separator (or at the end of the file) belongs to the mbox format.
        let body = &data[start..end];
        if body.ends_with(b"\r\n\r\n") {
            end -= 2;
        } else if body.ends_with(b"\n\n") {
            end -= 1;
        }
        out.push(MboxMessage {
            offset: off,
            start,
            end: end.max(start),
        });
    }
    out
}

/// Undoes mboxrd quoting: a line starting with one or more `>` followed by `From ` loses one `>`. Borrowed when
/// there is nothing to undo.
pub fn mbox_unquote(msg: &[u8]) -> Cow<'_, [u8]> {
    let quoted = |line: &[u8]| {
        let n = line.iter().take_while(|&&b| b == b'>').count();
        n > 0 && line[n..].starts_with(b"From ")
    };
    let mut lines = msg.split_inclusive(|&b| b == b'\n');
    if !lines.clone().any(quoted) {
        return Cow::Borrowed(msg);
    }
    let mut out = Vec::with_capacity(msg.len());
    for line in lines.by_ref() {
        out.extend_from_slice(if quoted(line) { &line[1..] } else { line });
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_messages_and_offsets() {
        let mb = b"From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From here\nbody\n\nFrom c@d Tue Jan  2 00:00:00 2024\nSubject: two\n\nx\n";
        let m = mbox_messages(mb);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].offset, 0);
        assert_eq!(
            &mb[m[0].start..m[0].end],
            b"Subject: one\n\n>From here\nbody\n"
        );
        assert_eq!(m[1].offset, 65);
        assert!(mb[m[1].offset..].starts_with(b"From c@d"));
        assert_eq!(&mb[m[1].start..m[1].end], b"Subject: two\n\nx\n");
        assert_eq!(
            &*mbox_unquote(&mb[m[0].start..m[0].end]),
            b"Subject: one\n\nFrom here\nbody\n"
        );
        assert_eq!(&*mbox_unquote(b">>From x\n>Fro\n"), b">From x\n>Fro\n");
        assert!(matches!(mbox_unquote(b"a\n>Fro\n"), Cow::Borrowed(_)));
    }
}
