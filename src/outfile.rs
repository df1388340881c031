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

/// Drops, on an idle-priority thread, the page cache of the file an output is about to replace.
///
/// Renaming over an existing file frees its page cache on the spot, in the `rename` call: about 15 of the
/// 30 ms such a rename takes for a 137 MB encrypted message left by a previous run, after all the work is
/// done. Dropping those pages earlier, with CPU time nobody else wants (`SCHED_IDLE`: while the pipeline's
/// writer waits for text), leaves less for the rename. The file's content is not touched (only cached copies
/// of it are dropped), so nothing is lost if the new output fails. Stops when dropped.
pub struct EvictReplaced {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Files smaller than this are not worth a thread.
const EVICT_MIN: u64 = 16 << 20;
/// Pages dropped per call, so that a stop request is seen soon.
const EVICT_STEP: u64 = 4 << 20;

impl EvictReplaced {
    /// Starts dropping the cached pages of `path` if it is a large regular file (else does nothing).
    pub fn start(path: &std::path::Path) -> Option<EvictReplaced> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() < EVICT_MIN {
            return None;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("smimekit-evict".into())
            .spawn(move || evict(&file, meta.len(), &flag))
            .ok()?;
        Some(EvictReplaced {
            stop,
            thread: Some(thread),
        })
    }
}

#[cfg(target_os = "linux")]
fn evict(file: &File, len: u64, stop: &std::sync::atomic::AtomicBool) {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::Ordering;
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain system calls on this thread and a valid descriptor; failures only mean less is dropped.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    let mut off = 0;
    while off < len && !stop.load(Ordering::Relaxed) {
        // SAFETY: as above.
        unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                off as libc::off_t,
                EVICT_STEP as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        off += EVICT_STEP;
    }
}

#[cfg(not(target_os = "linux"))]
fn evict(_: &File, _: u64, _: &std::sync::atomic::AtomicBool) {}

impl Drop for EvictReplaced {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
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
    fn eviction_leaves_the_content_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old");
        let data: Vec<u8> = (0..EVICT_MIN as usize + 5).map(|i| (i / 3) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        assert!(EvictReplaced::start(&dir.path().join("missing")).is_none());
        let e = EvictReplaced::start(&p);
        assert!(e.is_some() || !cfg!(target_os = "linux"));
        drop(e);
        assert!(std::fs::read(&p).unwrap() == data);
        std::fs::write(&p, b"small").unwrap();
        assert!(EvictReplaced::start(&p).is_none());
    }

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
