//! Writing a large output file on a second thread, so that producing the data (decryption) and the system
//! calls that copy it into the page cache run at the same time on two cores.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use zeroize::Zeroizing;

/// Size of each buffer handed to the writer thread.
const CHUNK: usize = 256 << 10;

/// Buffers queued for the writer thread at most (memory: about `QUEUE + 2` chunks).
const QUEUE: usize = 2;

/// A [`Write`] into a file whose `write` system calls run on a thread of their own, fed through a bounded queue
/// of 256 KiB buffers (recycled, wiped when dropped: they may hold plaintext). The thread also asks the kernel to
/// start writing each piece to disk (Linux `sync_file_range`), so a final `fsync` has little left to wait for.
///
/// Write errors of the thread are returned by a later `write`, by `flush` and by [`BackgroundWriter::finish`].
/// Dropping the writer without `finish` stops the thread and discards what was not written yet.
pub struct BackgroundWriter {
    cur: Zeroizing<Vec<u8>>,
    tx: Option<SyncSender<Zeroizing<Vec<u8>>>>,
    back: Receiver<Zeroizing<Vec<u8>>>,
    /// Buffers sent and not returned yet.
    in_flight: usize,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl BackgroundWriter {
    /// Starts the writer thread for `file` (written from its current position on).
    pub fn new(mut file: File) -> io::Result<BackgroundWriter> {
        let (tx, rx) = sync_channel::<Zeroizing<Vec<u8>>>(QUEUE);
        let (back_tx, back) = sync_channel(QUEUE + 2);
        let thread = std::thread::Builder::new()
            .name("smimekit-write".into())
            .spawn(move || {
                #[cfg(target_os = "linux")]
                let mut offset = {
                    use std::io::Seek;
                    file.stream_position()?
                };
                for mut buf in rx {
                    file.write_all(&buf)?;
                    #[cfg(target_os = "linux")]
                    {
                        use std::os::fd::AsRawFd;
                        // SAFETY: a plain system call on an open descriptor; it only starts write-back.
                        unsafe {
                            libc::sync_file_range(
                                file.as_raw_fd(),
                                offset as libc::off64_t,
                                buf.len() as libc::off64_t,
                                libc::SYNC_FILE_RANGE_WRITE,
                            );
                        }
                        offset += buf.len() as u64;
                    }
                    buf.clear();
                    // The producer may be gone (dropped without finish): nothing to recycle then.
                    let _ = back_tx.send(buf);
                }
                Ok(())
            })?;
        Ok(BackgroundWriter {
            cur: Zeroizing::new(Vec::with_capacity(CHUNK)),
            tx: Some(tx),
            back,
            in_flight: 0,
            thread: Some(thread),
        })
    }

    /// Hands the current buffer to the thread and takes a recycled (or new) one.
    fn send(&mut self) -> io::Result<()> {
        let next = match self.back.try_recv() {
            Ok(b) => {
                self.in_flight -= 1;
                b
            }
            Err(_) => Zeroizing::new(Vec::with_capacity(CHUNK)),
        };
        let full = std::mem::replace(&mut self.cur, next);
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(full).is_ok());
        if !sent {
            return Err(self.stop());
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Stops the thread and returns its error (the reason a send failed).
    fn stop(&mut self) -> io::Error {
        self.tx = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other("the output writer thread panicked"),
            _ => io::Error::other("the output writer thread stopped"),
        }
    }

    /// Writes what is buffered, waits for the thread to write everything, and returns its first error.
    pub fn finish(mut self) -> io::Result<()> {
        if !self.cur.is_empty() {
            self.send()?;
        }
        self.tx = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the output writer thread panicked")),
            None => Ok(()),
        }
    }
}

impl Write for BackgroundWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.cur.len());
        self.cur.extend_from_slice(&data[..n]);
        if self.cur.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    /// Waits until the thread has written everything so far.
    fn flush(&mut self) -> io::Result<()> {
        if !self.cur.is_empty() {
            self.send()?;
        }
        while self.in_flight > 0 {
            match self.back.recv() {
                Ok(b) => {
                    self.in_flight -= 1;
                    drop(b);
                }
                Err(_) => return Err(self.stop()),
            }
        }
        Ok(())
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_everything_in_order() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(5 * CHUNK + 12345))
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        let mut w = BackgroundWriter::new(f.try_clone().unwrap()).unwrap();
        for piece in data.chunks(4096 + 17) {
            w.write_all(piece).unwrap();
        }
        w.flush().unwrap();
        w.write_all(b"end").unwrap();
        w.finish().unwrap();
        let mut got = Vec::new();
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut got).unwrap();
        assert_eq!(&got[..data.len()], &data[..]);
        assert_eq!(&got[data.len()..], b"end");
    }

    #[test]
    fn write_errors_are_reported() {
        // A read-only descriptor: the thread's first write fails, and a later call says why.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ro");
        std::fs::write(&p, b"").unwrap();
        let f = File::open(&p).unwrap();
        let mut w = BackgroundWriter::new(f).unwrap();
        let chunk = vec![1u8; CHUNK];
        let mut failed = false;
        for _ in 0..(QUEUE + 4) {
            if w.write_all(&chunk).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed || w.finish().is_err());
    }
}
