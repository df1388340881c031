//! Reading a message: a file is memory-mapped (large messages are never copied), standard input is read
//! into memory.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest message accepted from standard input (files are mapped and limited only by the address space).
pub const MAX_STDIN: usize = 4 << 30;

/// The bytes of an input message.
pub enum Input {
    /// A memory-mapped file.
    Mapped(memmap2::Mmap),
    /// Bytes read from standard input (or an empty file).
    Owned(Vec<u8>),
}

impl std::ops::Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Input::Mapped(m) => m,
            Input::Owned(v) => v,
        }
    }
}

/// Reads `path`, or standard input when `path` is `None` or `-`.
pub fn read(path: Option<&Path>) -> Result<Input> {
    match path {
        Some(p) if p.as_os_str() != "-" => {
            let f = std::fs::File::open(p).map_err(|e| Error::io("read", p, e))?;
            if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
                let mut v = Vec::new();
                (&f).read_to_end(&mut v)
                    .map_err(|e| Error::io("read", p, e))?;
                return Ok(Input::Owned(v));
            }
            map_file(&f, p)
        }
        _ => read_stdin(),
    }
}

/// Maps an open regular file read-only (an empty file gives an empty input).
pub fn map_file(f: &std::fs::File, p: &Path) -> Result<Input> {
    if f.metadata().map_err(|e| Error::io("read", p, e))?.len() == 0 {
        return Ok(Input::Owned(Vec::new()));
    }
    // SAFETY: the map is read-only. If another process truncates the file while we read it, reads of the lost
    // pages fault (SIGBUS); mail files are not rewritten in place by well-behaved tools, and the alternative
    // (copying gigabytes) defeats the memory targets.
    let m = unsafe { memmap2::Mmap::map(f) }.map_err(|e| Error::io("map", p, e))?;
    Ok(Input::Mapped(m))
}

fn read_stdin() -> Result<Input> {
    let mut v = Vec::new();
    std::io::stdin()
        .take(MAX_STDIN as u64 + 1)
        .read_to_end(&mut v)
        .map_err(|e| Error::io("read", Path::new("standard input"), e))?;
    if v.len() > MAX_STDIN {
        return Err(
            Error::limit("the message on standard input is larger than 4 GiB")
                .hint("pass it as a file"),
        );
    }
    Ok(Input::Owned(v))
}
