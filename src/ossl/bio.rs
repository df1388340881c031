//! OpenSSL `BIO`s over Rust data: a zero-copy read BIO over a byte slice, and BIOs over any [`Read`] (optionally
//! teeing every byte read into a [`Write`]) or [`Write`], so large content streams through OpenSSL in constant
//! memory.
//!
//! The types own their `BIO*` (and, for the Rust-backed ones, their `BIO_METHOD` and state) and free them on drop.
//! The borrow they hold (`'a`) outlives the BIO, so OpenSSL can never see a dangling slice, reader or writer.

use std::any::Any;
use std::ffi::{c_char, c_int, c_long, c_void};
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use openssl::error::ErrorStack;
use openssl_sys as sys;

use super::cvt_p;
use crate::error::{Error, Result};

/// Size of the read-ahead buffer of [`ReadBio`]: OpenSSL pulls content in 1 KiB or 4 KiB pieces, and an
/// unbuffered reader (a file, a pipe) would otherwise see one system call per piece.
const READ_BUF: usize = 64 * 1024;

/// `BIO_TYPE_SOURCE_SINK` with a private index (`BIO_get_new_index` is not needed for a type nobody looks up).
const BIO_TYPE_RUST: c_int = 0x0400 | 0x80;

const BIO_CTRL_EOF: c_int = 2;
const BIO_CTRL_PENDING: c_int = 10;
const BIO_CTRL_FLUSH: c_int = 11;
const BIO_CTRL_WPENDING: c_int = 13;

/// A read-only memory BIO borrowing a byte slice (`BIO_new_mem_buf`): no copy is made.
pub struct MemBio<'a> {
    bio: *mut sys::BIO,
    _data: PhantomData<&'a [u8]>,
}

impl<'a> MemBio<'a> {
    /// A BIO reading `data`. Slices over 2 GiB − 1 do not fit OpenSSL's `int` length: use [`ReadBio`] for those.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        let len = c_int::try_from(data.len()).map_err(|_| {
            Error::limit(format!(
                "{} bytes is too large for an in-memory OpenSSL buffer (2 GiB at most)",
                data.len()
            ))
            .hint("stream the content instead")
        })?;
        // SAFETY: `data` is valid for `len` bytes and outlives the BIO (lifetime 'a). BIO_new_mem_buf does not copy
        // and marks the BIO read-only, so OpenSSL never writes through the pointer.
        let bio = unsafe { sys::BIO_new_mem_buf(data.as_ptr().cast(), len) };
        let bio = cvt_p(bio).map_err(|e| Error::crypto("cannot create a memory BIO", e))?;
        Ok(MemBio {
            bio,
            _data: PhantomData,
        })
    }

    /// The raw `BIO*` for FFI calls, valid while `self` lives (do not free it).
    pub fn as_ptr(&self) -> *mut sys::BIO {
        self.bio
    }
}

impl Drop for MemBio<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the BIO; it is freed exactly once.
        unsafe { sys::BIO_free_all(self.bio) };
    }
}

/// An owned `BIO_METHOD`.
struct Method(*mut sys::BIO_METHOD);

impl Method {
    fn new(name: &'static std::ffi::CStr) -> Result<Self> {
        // SAFETY: `name` is a static NUL-terminated string, as BIO_meth_new requires (it keeps the pointer).
        let m = unsafe { sys::BIO_meth_new(BIO_TYPE_RUST, name.as_ptr()) };
        let m = cvt_p(m).map_err(|e| Error::crypto("cannot create a BIO method", e))?;
        Ok(Method(m))
    }
}

impl Drop for Method {
    fn drop(&mut self) {
        // SAFETY: we own the method; the BIOs using it are freed before it (field order / explicit drops).
        unsafe { sys::BIO_meth_free(self.0) };
    }
}

/// Creates a BIO of `method` whose data pointer is `state`.
/// Boxes `state` and makes a BIO of `method` that points at it; the caller owns both (BIO freed first). On
/// failure the state is freed here.
fn new_bio_with<S>(method: &Method, state: S) -> Result<(*mut sys::BIO, *mut S)> {
    let state = Box::into_raw(Box::new(state));
    match new_bio(method, state.cast()) {
        Ok(bio) => Ok((bio, state)),
        Err(e) => {
            // SAFETY: `state` came from Box::into_raw above and no BIO refers to it.
            drop(unsafe { Box::from_raw(state) });
            Err(e)
        }
    }
}

fn new_bio(method: &Method, state: *mut c_void) -> Result<*mut sys::BIO> {
    // SAFETY: `method.0` is a valid method; the returned BIO is owned by the caller, who frees it before the
    // method and the state.
    let bio = unsafe { sys::BIO_new(method.0) };
    let bio = cvt_p(bio).map_err(|e| Error::crypto("cannot create a BIO", e))?;
    // SAFETY: `bio` is valid; `state` stays alive (boxed) until after the BIO is freed.
    unsafe {
        sys::BIO_set_data(bio, state);
        sys::BIO_set_init(bio, 1);
    }
    Ok(bio)
}

/// The first failure inside a callback, kept for the Rust side: an I/O error, or a panic, which must not unwind
/// through OpenSSL's C frames and is re-raised by `take`.
#[derive(Default)]
struct Fault {
    error: Option<io::Error>,
    panic: Option<Box<dyn Any + Send>>,
}

impl Fault {
    /// Whether a callback already failed: later calls fail too, without touching the reader or writer again.
    fn is_set(&self) -> bool {
        self.error.is_some() || self.panic.is_some()
    }

    /// The value of a `catch_unwind`-wrapped I/O call, or `None` after recording its error or panic.
    fn record<T>(&mut self, r: std::thread::Result<io::Result<T>>) -> Option<T> {
        match r {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.error = Some(e);
                None
            }
            Err(p) => {
                self.panic = Some(p);
                None
            }
        }
    }

    /// Takes the recorded I/O error, if any; re-raises a recorded panic.
    fn take(&mut self) -> Option<io::Error> {
        if let Some(p) = self.panic.take() {
            resume_unwind(p);
        }
        self.error.take()
    }
}

struct ReadState<'a> {
    reader: &'a mut dyn Read,
    tee: Option<&'a mut dyn Write>,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    eof: bool,
    total: u64,
    fault: Fault,
}

impl ReadState<'_> {
    /// Refills the buffer from the reader (copying what was read into the tee). Ok(false) at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        loop {
            match self.reader.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    if let Some(t) = self.tee.as_mut() {
                        t.write_all(&self.buf[..n])?;
                    }
                    self.pos = 0;
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buf.is_empty() {
            // Unbuffered (an in-memory reader): straight into OpenSSL's buffer, one copy fewer.
            let n = loop {
                match self.reader.read(out) {
                    Ok(0) => {
                        self.eof = true;
                        break 0;
                    }
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if let Some(t) = self.tee.as_mut() {
                t.write_all(&out[..n])?;
            }
            self.total += n as u64;
            return Ok(n);
        }
        if self.pos == self.end && (self.eof || !self.fill()?) {
            return Ok(0);
        }
        let n = out.len().min(self.end - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.total += n as u64;
        Ok(n)
    }
}

/// A BIO that reads from a Rust [`Read`], optionally copying every byte read into a [`Write`] (the "tee"), so
/// content can be digested by OpenSSL and written out in the same pass.
///
/// Reader and tee errors make the BIO read fail; [`ReadBio::finish`] returns the I/O error (and re-raises a
/// panic of the reader), which is more useful than OpenSSL's generic "read error".
pub struct ReadBio<'a> {
    bio: *mut sys::BIO,
    state: *mut ReadState<'a>,
    _method: Method,
}

impl<'a> ReadBio<'a> {
    /// A BIO over `reader`, copying what is read to `tee` if given.
    pub fn new(reader: &'a mut dyn Read, tee: Option<&'a mut dyn Write>) -> Result<Self> {
        Self::with_buffer(reader, tee, READ_BUF)
    }

    /// A BIO over a reader whose reads are cheap (memory): OpenSSL's reads go straight to it, without the
    /// read-ahead buffer and its extra copy.
    pub fn unbuffered(reader: &'a mut dyn Read) -> Result<Self> {
        Self::with_buffer(reader, None, 0)
    }

    fn with_buffer(
        reader: &'a mut dyn Read,
        tee: Option<&'a mut dyn Write>,
        buf_len: usize,
    ) -> Result<Self> {
        let method = Method::new(c"smimekit Rust reader")?;
        // SAFETY: `method.0` is valid and the callbacks have the signatures BIO_meth_set_* expect.
        let ok = unsafe {
            sys::BIO_meth_set_read__fixed_rust(method.0, Some(read_cb)) == 1
                && sys::BIO_meth_set_ctrl__fixed_rust(method.0, Some(read_ctrl_cb)) == 1
        };
        if !ok {
            return Err(Error::crypto(
                "cannot set up a BIO method",
                ErrorStack::get(),
            ));
        }
        let (bio, state) = new_bio_with(
            &method,
            ReadState {
                reader,
                tee,
                buf: vec![0u8; buf_len].into_boxed_slice(),
                pos: 0,
                end: 0,
                eof: false,
                total: 0,
                fault: Fault::default(),
            },
        )?;
        Ok(ReadBio {
            bio,
            state,
            _method: method,
        })
    }

    /// The raw `BIO*` for FFI calls, valid while `self` lives (do not free it).
    pub fn as_ptr(&self) -> *mut sys::BIO {
        self.bio
    }

    /// Takes the I/O error the reader or tee reported, if any; re-raises a panic that happened inside them.
    pub fn take_error(&mut self) -> Option<io::Error> {
        // SAFETY: the state lives until drop and OpenSSL is not running a callback now (we hold `&mut self`).
        unsafe { &mut *self.state }.fault.take()
    }

    /// Number of bytes handed to OpenSSL so far.
    pub fn bytes_read(&self) -> u64 {
        // SAFETY: as in `take_error`.
        unsafe { (*self.state).total }
    }

    /// Ends the stream: flushes the tee and returns the total read, or the first I/O error seen.
    pub fn finish(mut self) -> io::Result<u64> {
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        // SAFETY: as in `take_error`.
        let st = unsafe { &mut *self.state };
        if let Some(t) = st.tee.as_mut() {
            t.flush()?;
        }
        Ok(st.total)
    }
}

impl Drop for ReadBio<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the BIO and the state; the BIO is freed first so no callback can see the freed state.
        unsafe {
            sys::BIO_free_all(self.bio);
            drop(Box::from_raw(self.state));
        }
    }
}

unsafe extern "C" fn read_cb(bio: *mut sys::BIO, buf: *mut c_char, len: c_int) -> c_int {
    // SAFETY: OpenSSL calls this only on BIOs made by `ReadBio::new`, whose data is a live `ReadState`, and
    // `buf` is writable for `len` bytes.
    unsafe {
        sys::BIO_clear_flags(bio, sys::BIO_FLAGS_RWS | sys::BIO_FLAGS_SHOULD_RETRY);
        let st = &mut *(sys::BIO_get_data(bio) as *mut ReadState<'_>);
        if len <= 0 || st.fault.is_set() {
            return if len == 0 { 0 } else { -1 };
        }
        let out = std::slice::from_raw_parts_mut(buf.cast::<u8>(), len as usize);
        let r = catch_unwind(AssertUnwindSafe(|| st.read_into(out)));
        st.fault.record(r).map_or(-1, |n| n as c_int)
    }
}

unsafe extern "C" fn read_ctrl_cb(
    bio: *mut sys::BIO,
    cmd: c_int,
    _larg: c_long,
    _parg: *mut c_void,
) -> c_long {
    // SAFETY: as in `read_cb`.
    let st = unsafe { &*(sys::BIO_get_data(bio) as *const ReadState<'_>) };
    match cmd {
        BIO_CTRL_EOF => c_long::from(st.eof && st.pos == st.end),
        BIO_CTRL_PENDING => (st.end - st.pos) as c_long,
        BIO_CTRL_FLUSH => 1,
        _ => 0,
    }
}

struct WriteState<'a> {
    writer: &'a mut dyn Write,
    total: u64,
    fault: Fault,
}

impl WriteState<'_> {
    fn put(&mut self, data: &[u8]) -> c_int {
        if self.fault.is_set() {
            return -1;
        }
        let r = catch_unwind(AssertUnwindSafe(|| self.writer.write_all(data)));
        if self.fault.record(r).is_none() {
            return -1;
        }
        self.total += data.len() as u64;
        data.len() as c_int
    }
}

/// A BIO that writes into a Rust [`Write`]. It implements `write`, `puts` (which `SMIME_write_CMS` uses for
/// parts of its headers) and `flush`.
pub struct WriteBio<'a> {
    bio: *mut sys::BIO,
    state: *mut WriteState<'a>,
    _method: Method,
}

impl<'a> WriteBio<'a> {
    /// A BIO over `writer`.
    pub fn new(writer: &'a mut dyn Write) -> Result<Self> {
        let method = Method::new(c"smimekit Rust writer")?;
        // SAFETY: `method.0` is valid and the callbacks have the signatures BIO_meth_set_* expect.
        let ok = unsafe {
            sys::BIO_meth_set_write__fixed_rust(method.0, Some(write_cb)) == 1
                && sys::BIO_meth_set_puts__fixed_rust(method.0, Some(puts_cb)) == 1
                && sys::BIO_meth_set_ctrl__fixed_rust(method.0, Some(write_ctrl_cb)) == 1
        };
        if !ok {
            return Err(Error::crypto(
                "cannot set up a BIO method",
                ErrorStack::get(),
            ));
        }
        let (bio, state) = new_bio_with(
            &method,
            WriteState {
                writer,
                total: 0,
                fault: Fault::default(),
            },
        )?;
        Ok(WriteBio {
            bio,
            state,
            _method: method,
        })
    }

    /// The raw `BIO*` for FFI calls, valid while `self` lives (do not free it).
    pub fn as_ptr(&self) -> *mut sys::BIO {
        self.bio
    }

    /// Takes the I/O error the writer reported, if any; re-raises a panic that happened inside it.
    pub fn take_error(&mut self) -> Option<io::Error> {
        // SAFETY: the state lives until drop and no callback runs while we hold `&mut self`.
        unsafe { &mut *self.state }.fault.take()
    }

    /// Flushes the writer and returns the number of bytes written, or the first I/O error seen.
    pub fn finish(mut self) -> io::Result<u64> {
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        // SAFETY: as in `take_error`.
        let st = unsafe { &mut *self.state };
        st.writer.flush()?;
        Ok(st.total)
    }
}

impl Drop for WriteBio<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the BIO and the state; the BIO is freed first.
        unsafe {
            sys::BIO_free_all(self.bio);
            drop(Box::from_raw(self.state));
        }
    }
}

unsafe extern "C" fn write_cb(bio: *mut sys::BIO, buf: *const c_char, len: c_int) -> c_int {
    if len <= 0 {
        return 0;
    }
    // SAFETY: OpenSSL calls this only on BIOs made by `WriteBio::new` (data = live `WriteState`); `buf` is
    // readable for `len` bytes.
    unsafe {
        sys::BIO_clear_flags(bio, sys::BIO_FLAGS_RWS | sys::BIO_FLAGS_SHOULD_RETRY);
        let st = &mut *(sys::BIO_get_data(bio) as *mut WriteState<'_>);
        st.put(std::slice::from_raw_parts(buf.cast::<u8>(), len as usize))
    }
}

unsafe extern "C" fn puts_cb(bio: *mut sys::BIO, s: *const c_char) -> c_int {
    if s.is_null() {
        return 0;
    }
    // SAFETY: as in `write_cb`; `s` is a NUL-terminated string.
    unsafe {
        sys::BIO_clear_flags(bio, sys::BIO_FLAGS_RWS | sys::BIO_FLAGS_SHOULD_RETRY);
        let st = &mut *(sys::BIO_get_data(bio) as *mut WriteState<'_>);
        st.put(std::ffi::CStr::from_ptr(s).to_bytes())
    }
}

unsafe extern "C" fn write_ctrl_cb(
    bio: *mut sys::BIO,
    cmd: c_int,
    _larg: c_long,
    _parg: *mut c_void,
) -> c_long {
    // SAFETY: as in `write_cb`.
    let st = unsafe { &mut *(sys::BIO_get_data(bio) as *mut WriteState<'_>) };
    match cmd {
        BIO_CTRL_FLUSH => {
            if st.fault.is_set() {
                return 0;
            }
            let r = catch_unwind(AssertUnwindSafe(|| st.writer.flush()));
            c_long::from(st.fault.record(r).is_some())
        }
        BIO_CTRL_PENDING | BIO_CTRL_WPENDING => 0,
        _ => 0,
    }
}

/// Reads everything from a BIO into a vector (used for small outputs, e.g. PEM text in a memory BIO).
pub(crate) fn read_all(bio: *mut sys::BIO) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: the caller passes a valid BIO; `buf` is writable for its length.
        let n = unsafe { sys::BIO_read(bio, buf.as_mut_ptr().cast(), buf.len() as c_int) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    out
}

/// An owned, growable memory BIO (`BIO_s_mem`) for OpenSSL functions that write small outputs.
pub(crate) struct OwnedMemBio(*mut sys::BIO);

impl OwnedMemBio {
    /// A new empty memory BIO.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: BIO_s_mem returns a static method; BIO_new returns an owned BIO or NULL.
        let bio = unsafe { sys::BIO_new(sys::BIO_s_mem()) };
        let bio = cvt_p(bio).map_err(|e| Error::crypto("cannot create a memory BIO", e))?;
        Ok(OwnedMemBio(bio))
    }
    /// The raw `BIO*`, valid while `self` lives.
    pub(crate) fn as_ptr(&self) -> *mut sys::BIO {
        self.0
    }
    /// Drains what was written.
    pub(crate) fn take(&self) -> Vec<u8> {
        read_all(self.0)
    }
}

impl Drop for OwnedMemBio {
    fn drop(&mut self) {
        // SAFETY: we own the BIO.
        unsafe { sys::BIO_free_all(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_bio_reads_slice() {
        let data = b"hello world".to_vec();
        let b = MemBio::new(&data).unwrap();
        assert_eq!(read_all(b.as_ptr()), data);
    }

    #[test]
    fn read_bio_tees() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut src = &data[..];
        let mut tee = Vec::new();
        let got;
        {
            let b = ReadBio::new(&mut src, Some(&mut tee)).unwrap();
            got = read_all(b.as_ptr());
            assert_eq!(b.bytes_read(), data.len() as u64);
            assert_eq!(b.finish().unwrap(), data.len() as u64);
        }
        assert_eq!(got, data);
        assert_eq!(tee, data);
    }

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }

    #[test]
    fn unbuffered_read_bio_reads_everything() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut src = &data[..];
        let b = ReadBio::unbuffered(&mut src).unwrap();
        assert_eq!(read_all(b.as_ptr()), data);
        assert_eq!(b.finish().unwrap(), data.len() as u64);
    }

    #[test]
    fn read_bio_reports_errors() {
        let mut f = Failing;
        let b = ReadBio::new(&mut f, None).unwrap();
        let mut buf = [0u8; 10];
        // SAFETY: test; valid BIO and buffer.
        let n = unsafe { sys::BIO_read(b.as_ptr(), buf.as_mut_ptr().cast(), 10) };
        assert_eq!(n, -1);
        assert_eq!(b.finish().unwrap_err().to_string(), "disk on fire");
    }

    #[test]
    fn write_bio_write_and_puts() {
        let mut out = Vec::new();
        {
            let b = WriteBio::new(&mut out).unwrap();
            // SAFETY: test; valid BIO and NUL-terminated strings.
            unsafe {
                assert_eq!(sys::BIO_write(b.as_ptr(), b"abc".as_ptr().cast(), 3), 3);
                assert_eq!(super::super::sys::BIO_puts(b.as_ptr(), c"def".as_ptr()), 3);
            }
            assert_eq!(b.finish().unwrap(), 6);
        }
        assert_eq!(out, b"abcdef");
    }
}
