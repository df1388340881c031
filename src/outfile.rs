//! Writing a large output file that is made durable (`fsync`) before it is renamed into place.
//!
//! Left alone, the kernel writes dirty pages back late, so the final `fsync` of a 1.4 GB encrypted message waits
//! for nearly all of it to reach the disk (about 50 ms per 137 MB here), after all the work is done. Starting the
//! write-back of each few MiB as soon as it is written lets the disk work while we compute, and the `fsync`
//! finds little left to do.

use std::fs::File;
use std::io::{self, Write};

/// Bytes written between two write-back requests.
const WINDOW: u64 = 8 << 20;

/// A writer to a file that asks the kernel to start writing back every [`WINDOW`] bytes written
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait for the disk). It does not make the data
/// durable by itself: call [`File::sync_all`] at the end as before. Writes go straight to the file: wrap it in a
/// `BufWriter` for small writes.
pub struct EagerWriteback<'a> {
    file: &'a File,
    written: u64,
    started: u64,
}

impl<'a> EagerWriteback<'a> {
    /// Writes to `file` from its current position, which must be its start (a new temporary file).
    pub fn new(file: &'a File) -> Self {
        EagerWriteback {
            file,
            written: 0,
            started: 0,
        }
    }

    #[cfg(target_os = "linux")]
    fn start_writeback(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a valid descriptor; a failure (e.g. not supported by the file system)
        // is harmless: the fsync at the end still writes everything.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                self.started as libc::off64_t,
                (self.written - self.started) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.started = self.written;
    }

    #[cfg(not(target_os = "linux"))]
    fn start_writeback(&mut self) {}
}

impl Write for EagerWriteback<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&mut &*self.file).write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WINDOW {
            self.start_writeback();
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_everything() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(WINDOW as usize * 2 + 12345))
            .map(|i| i as u8)
            .collect();
        {
            let mut w = io::BufWriter::with_capacity(1 << 20, EagerWriteback::new(&f));
            w.write_all(&data).unwrap();
            w.flush().unwrap();
        }
        f.sync_all().unwrap();
        let mut back = Vec::new();
        std::io::Seek::rewind(&mut f).unwrap();
        f.read_to_end(&mut back).unwrap();
        assert!(back == data);
    }
}
