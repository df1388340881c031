//! Reading a message: a file is memory-mapped (large messages are never copied), standard input is read
//! into memory.
//!
//! The pages of a mapped file count towards the process's resident size as they are read, although they are
//! only page cache. For large inputs a small trimmer thread tells the kernel that the
//! mapping's pages are not needed (`MADV_DONTNEED`, every millisecond: a memchr scan reads gigabytes a second):
//! pages read since are dropped from this process and fetched again from the page cache if touched, so resident
//! memory stays near what was read in the last interval instead of growing to the file's size. The mapping is
//! read-only but shared: another process writing the file is seen (as without the trimmer), which is why
//! verify hashes again what it writes out (`Verified::write_message`).
//!
//! Readers faster than the trimmer's interval, or running on every core (so that the trimmer may wait for one),
//! call [`release`] on what they have consumed or [`trim_due`] as they go, so the bound does not depend on when
//! the trimmer thread gets a core.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::limits::{MAX_STDIN, MESSAGE_SNIFF};

/// Mapped inputs at least this large get a page trimmer. Below it, the pages of the input (at most this much)
/// stay resident: trimming costs re-faults on every pass (a third of verify's time at 100 MiB), and the memory
/// budget that matters is for the large messages.
pub const TRIM_THRESHOLD: usize = 256 << 20;

/// How often the trimmer drops the mapping's resident pages.
const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);

/// The bytes of an input message.
pub enum Input {
    /// A memory-mapped file (with a page trimmer when large).
    Mapped(Mapping),
    /// Bytes read from standard input (or an empty file).
    Owned(Vec<u8>),
}

impl std::ops::Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Input::Mapped(m) => &m.map,
            Input::Owned(v) => v,
        }
    }
}

impl Input {
    /// True for a mapped file whose pages are trimmed (a large input).
    pub fn is_trimmed(&self) -> bool {
        matches!(self, Input::Mapped(m) if m.trimmer.is_some())
    }

    /// An error if the file behind a mapped input was modified since it was opened ([`Input::changed`]): the
    /// bytes `doing` (e.g. "signing") read may not be one version of it.
    pub fn check_unchanged(&self, doing: &str) -> Result<()> {
        if self.changed() {
            return Err(Error::bad_input(format!(
                "the input file changed while smimekit was {doing} it; nothing was written"
            ))
            .hint("run the command again once nothing else is writing to the file"));
        }
        Ok(())
    }

    /// True if the file behind a mapped input was modified (size, modification or change time) since it was
    /// opened: another process writing it while we read it. Best effort: a change within the file system's
    /// timestamp granularity that keeps the size is not seen. Always false for standard input.
    pub fn changed(&self) -> bool {
        match self {
            Input::Mapped(m) => m.file.metadata().map_or(true, |now| stamp(&now) != m.stamp),
            Input::Owned(_) => false,
        }
    }
}

/// What identifies a file's contents cheaply: size, modification and change times (nanoseconds).
fn stamp(m: &std::fs::Metadata) -> (u64, i64, i64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

/// A memory-mapped input file. Its entry in the registry of mappings is removed before the mapping is unmapped
/// (the fields are private, and dropped in this order), so [`release`] and [`trim_due`] can never drop pages of
/// memory that is no longer this mapping (which, for heap memory, would zero it).
pub struct Mapping {
    /// Held only to be dropped first.
    _registered: Registered,
    map: memmap2::Mmap,
    trimmer: Option<Trimmer>,
    /// Kept open to notice a change of the file ([`Input::changed`]).
    file: std::fs::File,
    stamp: (u64, i64, i64, i64, i64),
}

/// A registered mapping: its address range, whether it is trimmed (a large input), and how many
/// [`TrimPause`]s hold its trimming off.
struct Entry {
    start: usize,
    end: usize,
    trimmed: bool,
    paused: u32,
}

/// The live input mappings: the only memory [`release`] and [`trim_due`] drop pages of. An entry is removed
/// before its mapping can be unmapped, under the same lock as the `madvise` calls.
static MAPPED: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// A mapping's entry in [`MAPPED`], removed when dropped.
struct Registered((usize, usize));

impl Registered {
    fn new(map: &memmap2::Mmap, trimmed: bool) -> Registered {
        let (start, end) = (map.as_ptr() as usize, map.as_ptr() as usize + map.len());
        if let Ok(mut r) = MAPPED.lock() {
            r.push(Entry {
                start,
                end,
                trimmed,
                paused: 0,
            });
        }
        Registered((start, end))
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let (start, end) = self.0;
        if let Ok(mut r) = MAPPED.lock()
            && let Some(i) = r.iter().position(|x| (x.start, x.end) == (start, end))
        {
            r.swap_remove(i);
        }
    }
}

/// While alive, the trimmer leaves alone the large mapping that holds the bytes given to [`pause_trim`]: their
/// reader drops pages itself ([`release`]) and keeps its threads close together, so that pages one thread
/// faults in are still there when the other reads them. Pauses nest.
pub struct TrimPause(Option<(usize, usize)>);

impl TrimPause {
    /// True if a trimmed mapping was paused (the caller now bounds its resident pages).
    pub fn active(&self) -> bool {
        self.0.is_some()
    }
}

/// Pauses the trimming of the large mapped input that holds `bytes` (nothing for other memory).
pub fn pause_trim(bytes: &[u8]) -> TrimPause {
    let start = bytes.as_ptr() as usize;
    let end = start + bytes.len();
    let Ok(mut ranges) = MAPPED.lock() else {
        return TrimPause(None);
    };
    match ranges
        .iter_mut()
        .find(|r| r.trimmed && r.start <= start && end <= r.end)
    {
        Some(r) => {
            r.paused += 1;
            TrimPause(Some((r.start, r.end)))
        }
        None => TrimPause(None),
    }
}

impl Drop for TrimPause {
    fn drop(&mut self) {
        if let Some(range) = self.0
            && let Ok(mut r) = MAPPED.lock()
            && let Some(x) = r.iter_mut().find(|x| (x.start, x.end) == range)
        {
            x.paused = x.paused.saturating_sub(1);
        }
    }
}

/// When the large mappings were last trimmed, in microseconds since [`clock`] started.
static LAST_TRIM: AtomicU64 = AtomicU64::new(0);

fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Drops the resident pages of the large (trimmed) input mappings if that was last done at least
/// [`TRIM_INTERVAL`] ago. The trimmer thread calls it every interval; threads that read a large input fast call
/// it as they go, because with every core busy the trimmer may not run for milliseconds while a vector scan
/// faults in ten megabytes each.
pub fn trim_due() {
    let now = clock();
    let last = LAST_TRIM.load(Ordering::Relaxed);
    if now.saturating_sub(last) < TRIM_INTERVAL.as_micros() as u64
        || LAST_TRIM
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    // Never wait: the lock may be held by a `release` (a digest thread must not stall behind it), and a
    // trim skipped now is done at the next call.
    let Ok(ranges) = MAPPED.try_lock() else {
        return;
    };
    for r in ranges.iter().filter(|r| r.trimmed && r.paused == 0) {
        let (start, end) = (r.start, r.end);
        // SAFETY: a live, read-only, shared file mapping (removed from the list under this lock before it is
        // unmapped); DONTNEED only drops this process's references to page-cache pages, which fault back in
        // with the same contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// Tells the input layer that `bytes`, part of an input being read, will not be read again soon: when they lie
/// in a mapped input, the whole pages among them are dropped from the resident set now (they stay in the page
/// cache and fault back in if touched). Anything else (memory read from standard input) is left alone.
///
/// A scan that consumes its input much faster than the trimmer's interval (several threads decoding base64)
/// calls this as it goes, so resident memory stays bounded whatever the scheduling of the trimmer thread.
pub fn release(bytes: &[u8]) {
    let start = bytes.as_ptr() as usize;
    let end = start + bytes.len();
    let Ok(ranges) = MAPPED.lock() else {
        return;
    };
    if !ranges.iter().any(|r| r.start <= start && end <= r.end) {
        return;
    }
    let page = page_size();
    let (a, b) = (start.next_multiple_of(page), end / page * page);
    if b > a {
        // SAFETY: [a, b) lies inside a live, read-only, shared file mapping (registered, and removed from the
        // list under this lock before it is unmapped); DONTNEED only drops this process's references to
        // page-cache pages, which fault back in with the same contents.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Asks for transparent huge pages for a large buffer about to be written (a decoded copy of an input): a few hundred page faults instead of
/// tens of thousands (faulting in the decoded copy was a third of a 100 MiB decrypt's kernel time). Not above
/// 256 MiB: measured at 1 GiB, finding that many huge pages cost more system time than the faults they save.
pub(crate) fn advise_huge_pages(buf: &mut [u8]) {
    const HUGE: usize = 2 << 20;
    const MAX: usize = 256 << 20;
    if buf.len() < 4 * HUGE || buf.len() > MAX {
        return;
    }
    let start = buf.as_mut_ptr() as usize;
    let aligned = start.next_multiple_of(HUGE);
    let end = (start + buf.len()) / HUGE * HUGE;
    if end > aligned {
        // SAFETY: the range lies inside `buf`, which we own; MADV_HUGEPAGE is a hint that never changes contents.
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

/// Keeps a large mapping's resident pages bounded (see the module documentation); stops when dropped.
pub struct Trimmer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Trimmer {
    fn start() -> Option<Trimmer> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("smimekit-trim".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TRIM_INTERVAL);
                    trim_due();
                }
            })
            .ok()?;
        Some(Trimmer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Trimmer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads `path`, or standard input when `path` is `None` or `-`.
pub fn read(path: Option<&Path>) -> Result<Input> {
    read_with(path, TRIM_THRESHOLD)
}

/// [`read`] with the size from which the page trimmer runs. Decrypt uses a small one: it copies the decoded
/// input, so the mapped pages must not stay resident beside the copy (its memory target is 1.2× the input).
pub fn read_with(path: Option<&Path>, trim_threshold: usize) -> Result<Input> {
    match path {
        Some(p) if p.as_os_str() != "-" => {
            let f = std::fs::File::open(p).map_err(|e| Error::io("read", p, e))?;
            if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
                return read_limited(f, p); // a FIFO or device: read like standard input
            }
            map_file_with(&f, p, trim_threshold)
        }
        _ => {
            // Standard input redirected from a regular file (`< big.eml`) is mapped like a named file, never
            // copied into memory.
            let what = Path::new("standard input");
            if let Some(f) = stdin_file() {
                return map_file_with(&f, what, trim_threshold);
            }
            read_limited(std::io::stdin(), what)
        }
    }
}

/// Standard input as a file when it is a regular file (a `<` redirection) read from its start, else `None`
/// (a caller that already consumed part of it gets the rest read as a stream).
fn stdin_file() -> Option<std::fs::File> {
    use std::io::Seek;
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let mut f = std::fs::File::from(fd);
    if !f.metadata().ok()?.is_file() || f.stream_position().ok()? != 0 {
        return None;
    }
    Some(f)
}

/// Reads a small input file named on the command line (a certificate, a chain, a PKCS#12 file), refusing it
/// before reading when its size is over `max`, and reading at most `max + 1` bytes of a pipe or device.
/// `what` names the kind of file in the error ("certificate file").
pub fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let size = if max >= 1 << 20 {
        format!("{} MiB", max >> 20)
    } else {
        format!("{} KiB", max >> 10)
    };
    let too_big = || {
        Error::limit(format!(
            "{} is larger than {size}, too large for a {what}",
            path.display()
        ))
        .hint(format!(
            "check the file name: a {what} is a few kilobytes; nothing was read"
        ))
    };
    let f = std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
    let meta = f.metadata().map_err(|e| Error::io("read", path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            "read",
            path,
            std::io::Error::from(std::io::ErrorKind::IsADirectory),
        ));
    }
    if meta.is_file() && meta.len() > max {
        return Err(too_big());
    }
    // Sized up front for a regular file, so that a secret read here is not left behind in buffers the vector
    // outgrew.
    let cap = if meta.is_file() {
        meta.len() + 1
    } else {
        8 << 10
    };
    let mut v = Vec::with_capacity(cap.min(max + 1) as usize);
    f.take(max + 1)
        .read_to_end(&mut v)
        .map_err(|e| Error::io("read", path, e))?;
    if v.len() as u64 > max {
        return Err(too_big());
    }
    Ok(v)
}

/// True when `head` (the first bytes of a stream) cannot begin a message: a NUL byte among the header lines.
/// A DER structure (first byte a SEQUENCE) is left to the parsers.
fn implausible_message(head: &[u8]) -> bool {
    if head.first() == Some(&0x30) {
        return false;
    }
    let end = memchr::memmem::find(head, b"\n\n")
        .or_else(|| memchr::memmem::find(head, b"\r\n\r\n"))
        .unwrap_or(head.len());
    head[..end].contains(&0)
}

/// Maps an open regular file read-only (an empty file gives an empty input).
pub fn map_file(f: &std::fs::File, p: &Path) -> Result<Input> {
    map_file_with(f, p, TRIM_THRESHOLD)
}

/// [`map_file`] with the trimmer threshold given.
fn map_file_with(f: &std::fs::File, p: &Path, trim_threshold: usize) -> Result<Input> {
    let meta = f.metadata().map_err(|e| Error::io("read", p, e))?;
    if meta.len() == 0 {
        return Ok(Input::Owned(Vec::new()));
    }
    let stamp = stamp(&meta);
    // SAFETY: the map is read-only. Another process may still change the file while we read it: a truncation
    // makes reads of the lost pages fault (SIGBUS), a rewrite changes the bytes we see (verify re-hashes what it
    // outputs). Mail files are not rewritten in place by well-behaved tools, and copying gigabytes instead
    // defeats the memory targets.
    let m = unsafe { memmap2::Mmap::map(f) }.map_err(|e| Error::io("map", p, e))?;
    let _ = m.advise(memmap2::Advice::Sequential);
    let trimmer = if m.len() >= trim_threshold {
        Trimmer::start()
    } else {
        None
    };
    Ok(Input::Mapped(Mapping {
        _registered: Registered::new(&m, trimmer.is_some()),
        map: m,
        trimmer,
        file: f.try_clone().map_err(|e| Error::io("read", p, e))?,
        stamp,
    }))
}

/// Reads a stream (standard input, a FIFO, a device) into memory, up to [`MAX_STDIN`]; its first
/// [`MESSAGE_SNIFF`] bytes are checked before the rest is read, so `/dev/zero` or a binary file is refused at
/// once instead of after 4 GiB.
fn read_limited(r: impl Read, what: &Path) -> Result<Input> {
    let mut v = Vec::new();
    let mut r = r.take(MAX_STDIN as u64 + 1);
    (&mut r)
        .take(MESSAGE_SNIFF as u64)
        .read_to_end(&mut v)
        .map_err(|e| Error::io("read", what, e))?;
    if implausible_message(&v) {
        return Err(Error::bad_input(format!(
            "{} does not look like a mail message (binary data in its header lines); nothing more was read",
            what.display()
        ))
        .hint("pass an RFC 5322 message (.eml) or a DER S/MIME file"));
    }
    r.read_to_end(&mut v)
        .map_err(|e| Error::io("read", what, e))?;
    if v.len() > MAX_STDIN {
        return Err(
            Error::limit(format!("{} holds more than 4 GiB", what.display()))
                .hint("pass the message as a regular file"),
        );
    }
    Ok(Input::Owned(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_mapping_reads_the_same_bytes() {
        // With a trimmer forced on, the contents must be identical however often pages are dropped.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let data: Vec<u8> = (0..(8 << 20)).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let input = map_file_with(&f, &p, 1 << 20).unwrap();
        assert!(input.is_trimmed());
        for _ in 0..3 {
            assert!(input[..] == data[..]);
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        drop(input); // stops and joins the trimmer
    }

    #[test]
    fn release_drops_only_registered_mappings() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let data: Vec<u8> = (0..(4 << 20)).map(|i| (i * 7 % 253) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let input = map_file_with(&f, &p, 1 << 20).unwrap();
        release(&input[100..3 << 20]);
        assert!(input[..] == data[..]); // faulted back in, unchanged
        // Heap memory is never touched (DONTNEED would zero it).
        let heap = data.clone();
        release(&heap);
        assert!(heap == data);
        drop(input);
    }

    #[test]
    fn a_file_changed_after_opening_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.eml");
        std::fs::write(&p, b"From: a@example.com\r\n\r\nbody\r\n").unwrap();
        let input = read(Some(&p)).unwrap();
        assert!(!input.changed());
        assert!(input.check_unchanged("signing").is_ok());
        // Rewritten in place (same size), as another process might; later than the file system's timestamp
        // granularity (a clock tick on kernels without fine-grained timestamps).
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"From: b"))
            .unwrap();
        assert!(input.changed());
        let e = input.check_unchanged("signing").unwrap_err();
        assert!(
            e.to_string()
                .contains("changed while smimekit was signing it"),
            "{e}"
        );
    }

    #[test]
    fn binary_streams_are_told_apart_from_messages() {
        assert!(implausible_message(&[0u8; 1024]));
        assert!(implausible_message(b"From: a@example.com\0\r\n\r\nbody"));
        // NUL bytes in a body, or a DER structure, are left to the parsers.
        assert!(!implausible_message(b"From: a@example.com\r\n\r\nbo\0dy"));
        assert!(!implausible_message(b"From: a@example.com\n\nbo\0dy"));
        assert!(!implausible_message(&[0x30, 0x82, 0x00, 0x00]));
        assert!(!implausible_message(b""));
    }

    #[test]
    fn bounded_reads_refuse_large_files_by_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::File::create(&p)
            .unwrap()
            .set_len(10 << 20)
            .unwrap();
        let e = read_bounded(&p, 4 << 20, "certificate file").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Limit);
        assert!(e.to_string().contains("larger than 4 MiB"), "{e}");
        std::fs::write(&p, b"small").unwrap();
        assert_eq!(
            read_bounded(&p, 4 << 20, "certificate file").unwrap(),
            b"small"
        );
        assert!(read_bounded(dir.path(), 4 << 20, "certificate file").is_err());
    }

    #[test]
    fn small_files_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("small");
        std::fs::write(&p, b"hello").unwrap();
        let input = read(Some(&p)).unwrap();
        assert!(matches!(input, Input::Mapped(_)) && !input.is_trimmed());
        assert_eq!(&*input, b"hello");
        let e = dir.path().join("empty");
        std::fs::write(&e, b"").unwrap();
        assert!(read(Some(&e)).unwrap().is_empty());
    }
}
