//! Canonical form and transfer encodings: CRLF canonicalisation, the RFC 8551 §3.1 "safe for signing" form,
//! body decoding, and the variants tried when a digest does not match.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use memchr::memchr2;

use super::headers::{
    ContentType, content_transfer_encoding, content_type, encode_field_7bit, parse_headers,
};
use super::split::{Multipart, split_entity, split_multipart};
use crate::error::{Error, Result};
use crate::limits::MIME_MAX_DEPTH;

/// Longest line (without its CRLF) allowed in a 7bit body (RFC 5322 §2.1.1).
const MAX_LINE: usize = 998;
/// Longest encoded line we write (RFC 2045 §6.7, §6.8).
const ENCODED_LINE: usize = 76;

/// True if every LF follows a CR and every CR precedes an LF. Branch-free over blocks, so it vectorizes: text
/// has a line end every few dozen bytes, where a memchr-driven scan stops each time (it was most of the
/// serial time before a large `encrypt` starts).
fn all_crlf(data: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (data.first(), data.last()) else {
        return true;
    };
    if first == b'\n' || last == b'\r' {
        return false;
    }
    let (prev, cur) = (&data[..data.len() - 1], &data[1..]);
    // A MiB at a time, trimming a large mapped input in between (see `input::trim_due`).
    prev.chunks(1 << 20).zip(cur.chunks(1 << 20)).all(|(p, c)| {
        let ok = p.chunks(4096).zip(c.chunks(4096)).all(|(p, c)| {
            p.iter().zip(c).fold(0u8, |bad, (&p, &c)| {
                bad | (u8::from(c == b'\n') ^ u8::from(p == b'\r'))
            }) == 0
        });
        crate::input::trim_due();
        ok
    })
}

/// The offset of the first bare CR or bare LF, if any.
fn first_non_canonical(data: &[u8]) -> Option<usize> {
    if all_crlf(data) {
        return None;
    }
    let mut pos = 0;
    while let Some(k) = memchr2(b'\r', b'\n', &data[pos..]) {
        let i = pos + k;
        if data[i] == b'\n' {
            return Some(i); // a CRLF is consumed below, so an LF found here is bare
        }
        if data.get(i + 1) != Some(&b'\n') {
            return Some(i);
        }
        pos = i + 2;
    }
    None
}

/// True if every line end is CRLF (no bare CR, no bare LF).
pub fn is_crlf_canonical(data: &[u8]) -> bool {
    first_non_canonical(data).is_none()
}

/// Converts every bare LF and bare CR to CRLF. Borrows when `data` is already canonical (the common case, and
/// the only cost is one scan).
pub fn to_crlf(data: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = first_non_canonical(data) else {
        return Cow::Borrowed(data);
    };
    let mut out = Vec::with_capacity(data.len() + data.len() / 32 + 16);
    out.extend_from_slice(&data[..first]);
    let mut pos = first;
    while let Some(k) = memchr2(b'\r', b'\n', &data[pos..]) {
        let j = pos + k;
        out.extend_from_slice(&data[pos..j]);
        out.extend_from_slice(b"\r\n");
        pos = if data[j] == b'\r' && data.get(j + 1) == Some(&b'\n') {
            j + 2
        } else {
            j + 1
        };
    }
    out.extend_from_slice(&data[pos..]);
    Cow::Owned(out)
}

/// A writer that passes everything on in CRLF form, as [`to_crlf`] of all the bytes written would be, without
/// holding them: a CR at the end of a write is held back until the next byte shows whether it is bare. Call
/// [`CrlfWriter::finish`] at the end. Pieces already canonical (the common case) pass through uncopied;
/// converted pieces are wiped when dropped, since they hold message content.
pub struct CrlfWriter<W: std::io::Write> {
    out: W,
    cr_pending: bool,
}

impl<W: std::io::Write> CrlfWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        CrlfWriter {
            out,
            cr_pending: false,
        }
    }

    /// Writes a held-back final CR as CRLF and returns the underlying writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        if self.cr_pending {
            self.out.write_all(b"\r\n")?;
        }
        Ok(self.out)
    }
}

impl<W: std::io::Write> std::io::Write for CrlfWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut data = buf;
        if self.cr_pending && !data.is_empty() {
            // The held CR ends a line either way: with this LF, or alone (a bare CR becomes CRLF).
            self.out.write_all(b"\r\n")?;
            self.cr_pending = false;
            if data[0] == b'\n' {
                data = &data[1..];
            }
        }
        if let Some(rest) = data.strip_suffix(b"\r") {
            self.cr_pending = true;
            data = rest;
        }
        // No CR at the end of `data` now, so no CRLF is split between this piece and the next.
        match to_crlf(data) {
            Cow::Borrowed(d) => self.out.write_all(d)?,
            Cow::Owned(v) => self.out.write_all(&zeroize::Zeroizing::new(v))?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut pos = 0;
    while let Some(k) = memchr::memmem::find(&data[pos..], b"\r\n") {
        out.extend_from_slice(&data[pos..pos + k]);
        out.push(b'\n');
        pos += k + 2;
    }
    out.extend_from_slice(&data[pos..]);
    out
}

fn strip_trailing_ws(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        let (body, cr) = match line.strip_suffix(b"\r") {
            Some(b) => (b, true),
            None => (line, false),
        };
        let keep = body.len()
            - body
                .iter()
                .rev()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
        out.extend_from_slice(&body[..keep]);
        if cr {
            out.push(b'\r');
        }
    }
    out
}

/// Variants of `data` to try when a digest does not match, to tell the user *how* the content was altered in
/// transit: "LF→CRLF", "CRLF→LF", "trailing whitespace stripped" (on the CRLF form) and "final line end
/// removed" or "final CRLF added". Each item is (what was changed, the changed bytes); only variants that differ
/// from `data` are produced. The iterator is lazy, so a large entity costs one extra copy at a time.
///
/// Diagnosis only: a variant that matches is still a failed verification.
pub fn variants_for_diagnosis(
    data: &[u8],
) -> impl Iterator<Item = (&'static str, Cow<'_, [u8]>)> + '_ {
    (0..4).filter_map(move |step| match step {
        0 => match to_crlf(data) {
            Cow::Owned(c) => Some(("LF→CRLF", Cow::Owned(c))),
            Cow::Borrowed(_) => None,
        },
        1 => memchr::memmem::find(data, b"\r\n").map(|_| ("CRLF→LF", Cow::Owned(crlf_to_lf(data)))),
        2 => {
            let canon = to_crlf(data);
            let stripped = strip_trailing_ws(&canon);
            (stripped != *canon).then_some(("trailing whitespace stripped", Cow::Owned(stripped)))
        }
        _ => match data
            .strip_suffix(b"\r\n")
            .or_else(|| data.strip_suffix(b"\n"))
        {
            Some(d) => Some(("final line end removed", Cow::Borrowed(d))),
            None => {
                let mut d = data.to_vec();
                d.extend_from_slice(b"\r\n");
                Some(("final CRLF added", Cow::Owned(d)))
            }
        },
    })
}

/// True if `data` could be altered by a 7-bit mail path: not CRLF-canonical, an 8-bit or NUL byte, a line
/// starting with `From `, trailing whitespace, or a line longer than `max_line` octets.
///
/// One pass over byte pairs (previous, current), 16 at a time with SSE2 on x86-64: signing a large message
/// scans it while the digest runs on the other core, so this must be several times faster than SHA-256.
fn transport_unsafe(data: &[u8], max_line: usize) -> bool {
    transport_unsafe_with(data, max_line, Vector::detect())
}

/// The vector instructions [`transport_unsafe`] uses.
#[derive(Clone, Copy, Debug)]
enum Vector {
    /// None: byte by byte (x86-64 uses it only in tests).
    #[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
    Scalar,
    /// SSE2, 16 bytes a step (all x86-64 CPUs).
    #[cfg(target_arch = "x86_64")]
    Sse2,
    /// AVX2, 32 bytes a step.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Vector {
    fn detect() -> Vector {
        #[cfg(target_arch = "x86_64")]
        return if std::arch::is_x86_feature_detected!("avx2") {
            Vector::Avx2
        } else {
            Vector::Sse2
        };
        #[cfg(not(target_arch = "x86_64"))]
        Vector::Scalar
    }
}

fn transport_unsafe_with(data: &[u8], max_line: usize, vector: Vector) -> bool {
    let n = data.len();
    let Some(&first) = data.first() else {
        return false;
    };
    if first == b'\n' || first == 0 || first >= 0x80 || data.starts_with(b"From ") {
        return true;
    }
    let mut scan = LineScan {
        data,
        max_line,
        line_start: 0,
    };
    let mut i = 1;
    // Only the first line end of a vector step is checked for length: the others end shorter lines.
    let vector_ok = match vector {
        #[cfg(target_arch = "x86_64")]
        Vector::Sse2 => max_line >= 16,
        #[cfg(target_arch = "x86_64")]
        Vector::Avx2 => max_line >= 32,
        _ => false,
    };
    // In segments of 1 MiB: between them a large mapped input is trimmed (`input::trim_due`), since this scan
    // faults in ten megabytes a millisecond while the other core may keep the trimmer thread waiting.
    const SEGMENT: usize = 1 << 20;
    while vector_ok && i < n {
        let end = (i + SEGMENT).min(n);
        let step = match vector {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE2 is part of the x86-64 baseline, so the target feature is always present.
            Vector::Sse2 => unsafe { scan.sse2(i, end) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Vector::Avx2` is only chosen when AVX2 was detected on this CPU.
            Vector::Avx2 => unsafe { scan.avx2(i, end) },
            _ => Some(i),
        };
        match step {
            Some(next) => i = next,
            None => return true,
        }
        crate::input::trim_due();
        if end == n {
            break;
        }
    }
    for i in i..n {
        if scan.pair_unsafe(i) {
            return true;
        }
    }
    // A CR as the very last byte has no LF after it; the last line has no line end to be checked at.
    data[n - 1] == b'\r' || {
        let last = &data[scan.line_start..];
        last.len() > max_line || matches!(last.last(), Some(b' ' | b'\t'))
    }
}

/// The state of [`transport_unsafe`]: where the current line starts.
struct LineScan<'a> {
    data: &'a [u8],
    max_line: usize,
    line_start: usize,
}

impl LineScan<'_> {
    /// The checks on the byte pair at `i - 1`, `i` (`i >= 1`).
    fn pair_unsafe(&mut self, i: usize) -> bool {
        let (prev, cur) = (self.data[i - 1], self.data[i]);
        if cur == 0 || cur >= 0x80 {
            return true; // NUL, 8-bit
        }
        if prev == b'\r' && cur != b'\n' {
            return true; // bare CR
        }
        if cur == b'\r' && matches!(prev, b' ' | b'\t') {
            return true; // white space at a line end
        }
        if cur == b'\n' {
            if prev != b'\r' {
                return true; // bare LF
            }
            if i - 1 - self.line_start > self.max_line {
                return true;
            }
            self.line_start = i + 1;
        }
        // A line starting with "From " (checked at its first byte, as the vector loop does).
        prev == b'\n' && cur == b'F' && self.data[i..].starts_with(b"From ")
    }

    /// The scalar half of a vector step over the pairs ending at `i`, `i + 1`…: `bad` if a byte or pair was
    /// unsafe, bit k of `fs` if a line starts with 'F' at `i + k` (looked at closer), bit k of `lfs` for a line
    /// end at `i + k` (the first ends the current line, whose length is checked; the others end lines shorter
    /// than a step). False if something is unsafe.
    fn step_ok(&mut self, i: usize, bad: bool, mut fs: u32, lfs: u32) -> bool {
        if bad {
            return false;
        }
        while fs != 0 {
            if self.data[i + fs.trailing_zeros() as usize..].starts_with(b"From ") {
                return false;
            }
            fs &= fs - 1;
        }
        if lfs != 0 {
            let first = i + lfs.trailing_zeros() as usize;
            if first - 1 - self.line_start > self.max_line {
                return false;
            }
            self.line_start = i + (31 - lfs.leading_zeros()) as usize + 1;
        }
        true
    }

    /// The bulk of [`Self::pair_unsafe`], 16 pairs per step: `None` if something unsafe was found, else the
    /// index from which the scalar loop continues (stopping before `end`). Needs `max_line >= 16`, the step
    /// (only the first line end of a step is checked for length: the others end lines shorter than a step).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse2")]
    fn sse2(&mut self, mut i: usize, end: usize) -> Option<usize> {
        use std::arch::x86_64::{
            __m128i, _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_loadu_si128,
            _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        let d = self.data;
        let lf = _mm_set1_epi8(b'\n' as i8);
        let cr = _mm_set1_epi8(b'\r' as i8);
        let sp = _mm_set1_epi8(b' ' as i8);
        let tab = _mm_set1_epi8(b'\t' as i8);
        let nul = _mm_set1_epi8(0);
        let f = _mm_set1_epi8(b'F' as i8);
        while i + 16 <= end {
            // SAFETY: `i >= 1` and `i + 16 <= end <= len`, so both 16-byte loads (at i and i - 1) are in bounds;
            // unaligned loads are allowed. SSE2 is part of the x86-64 baseline.
            let (cur, prev): (__m128i, __m128i) = unsafe {
                (
                    _mm_loadu_si128(d.as_ptr().add(i).cast()),
                    _mm_loadu_si128(d.as_ptr().add(i - 1).cast()),
                )
            };
            let is_lf = _mm_cmpeq_epi8(cur, lf);
            let prev_cr = _mm_cmpeq_epi8(prev, cr);
            let bad = _mm_or_si128(
                _mm_or_si128(
                    _mm_andnot_si128(prev_cr, is_lf), // bare LF
                    _mm_andnot_si128(is_lf, prev_cr), // bare CR
                ),
                _mm_or_si128(
                    _mm_and_si128(
                        _mm_cmpeq_epi8(cur, cr),
                        _mm_or_si128(_mm_cmpeq_epi8(prev, sp), _mm_cmpeq_epi8(prev, tab)),
                    ),
                    _mm_cmpeq_epi8(cur, nul),
                ),
            );
            // The sign bits of `cur` are the 8-bit bytes.
            let bad = _mm_movemask_epi8(bad) != 0 || _mm_movemask_epi8(cur) != 0;
            let fs = _mm_movemask_epi8(_mm_and_si128(
                _mm_cmpeq_epi8(prev, lf),
                _mm_cmpeq_epi8(cur, f),
            )) as u32;
            if !self.step_ok(i, bad, fs, _mm_movemask_epi8(is_lf) as u32) {
                return None;
            }
            i += 16;
        }
        Some(i)
    }

    /// [`Self::sse2`] 32 pairs at a time (needs `max_line >= 32`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn avx2(&mut self, mut i: usize, end: usize) -> Option<usize> {
        use std::arch::x86_64::{
            __m256i, _mm256_and_si256, _mm256_andnot_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256,
            _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
        };
        let d = self.data;
        let lf = _mm256_set1_epi8(b'\n' as i8);
        let cr = _mm256_set1_epi8(b'\r' as i8);
        let sp = _mm256_set1_epi8(b' ' as i8);
        let tab = _mm256_set1_epi8(b'\t' as i8);
        let nul = _mm256_set1_epi8(0);
        let f = _mm256_set1_epi8(b'F' as i8);
        while i + 32 <= end {
            // SAFETY: `i >= 1` and `i + 32 <= end <= len`, so both 32-byte loads (at i and i - 1) are in bounds;
            // unaligned loads are allowed.
            let (cur, prev): (__m256i, __m256i) = unsafe {
                (
                    _mm256_loadu_si256(d.as_ptr().add(i).cast()),
                    _mm256_loadu_si256(d.as_ptr().add(i - 1).cast()),
                )
            };
            let is_lf = _mm256_cmpeq_epi8(cur, lf);
            let prev_cr = _mm256_cmpeq_epi8(prev, cr);
            let bad = _mm256_or_si256(
                _mm256_or_si256(
                    _mm256_andnot_si256(prev_cr, is_lf),
                    _mm256_andnot_si256(is_lf, prev_cr),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(
                        _mm256_cmpeq_epi8(cur, cr),
                        _mm256_or_si256(_mm256_cmpeq_epi8(prev, sp), _mm256_cmpeq_epi8(prev, tab)),
                    ),
                    _mm256_cmpeq_epi8(cur, nul),
                ),
            );
            let bad = _mm256_movemask_epi8(bad) != 0 || _mm256_movemask_epi8(cur) != 0;
            let fs = _mm256_movemask_epi8(_mm256_and_si256(
                _mm256_cmpeq_epi8(prev, lf),
                _mm256_cmpeq_epi8(cur, f),
            )) as u32;
            if !self.step_ok(i, bad, fs, _mm256_movemask_epi8(is_lf) as u32) {
                return None;
            }
            i += 32;
        }
        Some(i)
    }
}

/// [`transport_unsafe`] of the CRLF form of `data`, without building it when `data` is already canonical.
fn transport_unsafe_lenient(data: &[u8]) -> bool {
    // The common case, a clean canonical body, takes one pass.
    transport_unsafe(data, MAX_LINE) && transport_unsafe(&to_crlf(data), MAX_LINE)
}

/// Quoted-printable (RFC 2045 §6.7) for 7-bit transport: CRLF in `content` are hard line breaks; lines are at
/// most 76 characters; `From ` at a line start becomes `=46rom ` and `--` becomes `=2D-`; whitespace before a
/// line end is encoded.
fn qp_encode(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 8 + 16);
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut rest = content;
    loop {
        // A CRLF is a hard line break; any other CR or LF is data (and gets encoded).
        let (line, hard) = match memchr::memmem::find(rest, b"\r\n") {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        let mut col = 0usize;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            // At the start of an output line, "From " would be mangled by mbox stores, and "--" could read as
            // a multipart delimiter (a soft break can put any text there, and decoded text may hold "--b").
            let from_at = |col: usize| {
                col == 0 && (line[i..].starts_with(b"From ") || line[i..].starts_with(b"--"))
            };
            let needs = |col: usize| {
                b == b'='
                    || b >= 0x7f
                    || (b < 0x20 && b != b'\t')
                    || ((b == b' ' || b == b'\t') && last)
                    || from_at(col)
            };
            let mut enc = needs(col);
            let width = if enc { 3 } else { 1 };
            // Keep room for the soft-break '=' unless this is the last character of the line.
            let limit = if last { ENCODED_LINE } else { ENCODED_LINE - 1 };
            if col + width > limit {
                out.extend_from_slice(b"=\r\n");
                col = 0;
                enc = needs(col);
            }
            if enc {
                out.extend_from_slice(&[b'=', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
                col += 3;
            } else {
                out.push(b);
                col += 1;
            }
        }
        if !hard {
            break;
        }
        out.extend_from_slice(b"\r\n");
        rest = &rest[line.len() + 2..];
    }
    out
}

/// Base64 with 76-character CRLF lines, ending with CRLF (nothing for empty input).
fn base64_lines(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut started = false;
    super::b64::encode_lines(data, &mut out, &mut started);
    if started {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn qp_decode(body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut lines = body.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        let has_end = lines.peek().is_some();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Trailing whitespace is transport padding and is removed (RFC 2045 §6.7 rule 3).
        let keep = line.len()
            - line
                .iter()
                .rev()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
        let line = &line[..keep];
        let mut soft = false;
        let mut i = 0;
        while i < line.len() {
            let b = line[i];
            if b != b'=' {
                out.push(b);
                i += 1;
                continue;
            }
            if i + 1 == line.len() {
                soft = true; // "=" at the end of a line (or of the body): soft line break
                break;
            }
            match (
                line.get(i + 1).and_then(|&c| hex(c)),
                line.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    return Err(Error::bad_input(format!(
                        "the quoted-printable body has an invalid escape \"{}\" on line {}",
                        String::from_utf8_lossy(&line[i..line.len().min(i + 3)]),
                        n + 1
                    ))
                    .hint("the message is damaged or not quoted-printable"));
                }
            }
        }
        if has_end && !soft {
            out.extend_from_slice(b"\r\n");
        }
    }
    Ok(out)
}

fn base64_decode(body: &[u8]) -> Result<Vec<u8>> {
    // What encoders write (fixed-length lines) is decoded by the fast path; everything else, and every error,
    // by the line-by-line decoder below.
    match super::b64::decode_regular(body) {
        Some(v) => Ok(v),
        None => base64_decode_general(body),
    }
}

/// Decodes any base64 body (white space anywhere, any line lengths), with the errors worded.
fn base64_decode_general(body: &[u8]) -> Result<Vec<u8>> {
    const CHUNK: usize = 256 * 1024;
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 3);
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 1024);
    let mut padded = false;
    let bad = |what: String| {
        Error::bad_input(format!("the base64 body is invalid: {what}"))
            .hint("the message is damaged or truncated")
    };
    // Line by line (memchr finds the line ends), copying whole lines: byte-at-a-time filtering cost 70% of a
    // 100 MiB decrypt. The base64 engine validates the alphabet; whitespace is dropped; `=` only at the end.
    let mut start = 0;
    while start < body.len() {
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i);
        let mut line = &body[start..end];
        let line_no_offset = start;
        start = end + 1;
        while let [rest @ .., b'\r' | b' ' | b'\t'] = line {
            line = rest;
        }
        while let [b' ' | b'\t', rest @ ..] = line {
            line = rest;
        }
        if line.is_empty() {
            continue;
        }
        if padded {
            return Err(bad(format!(
                "data after the padding at offset {line_no_offset}"
            )));
        }
        if memchr::memchr(b'=', line).is_some() {
            padded = true;
        }
        if memchr::memchr3(b' ', b'\t', b'\r', line).is_some() {
            buf.extend(line.iter().filter(|c| !c.is_ascii_whitespace()));
        } else {
            buf.extend_from_slice(line);
        }
        if buf.len() >= CHUNK && !padded {
            let whole = buf.len() / 4 * 4;
            STANDARD_PAD_INDIFFERENT
                .decode_vec(&buf[..whole], &mut out)
                .map_err(|e| bad(e.to_string()))?;
            buf.drain(..whole);
        }
    }
    STANDARD_PAD_INDIFFERENT
        .decode_vec(&buf, &mut out)
        .map_err(|e| bad(e.to_string()))?;
    Ok(out)
}

/// Decodes a body according to its Content-Transfer-Encoding (`None` means 7bit).
///
/// base64 ignores whitespace and line breaks but rejects any other character, data after padding and bad
/// lengths; quoted-printable rejects invalid escapes and turns hard line breaks into CRLF; 7bit, 8bit and
/// binary are returned as they are. Other encodings are unsupported.
pub fn decode_body(body: &[u8], cte: Option<&str>) -> Result<Vec<u8>> {
    match cte.map(|c| c.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "7bit" | "8bit" | "binary") => Ok(body.to_vec()),
        Some("base64") => base64_decode(body),
        Some("quoted-printable") => qp_decode(body),
        Some(other) => Err(Error::unsupported(format!(
            "the transfer encoding \"{other}\" is not supported"
        ))
        .hint("only 7bit, 8bit, binary, quoted-printable and base64 are supported")),
    }
}

/// Returns the entity in the RFC 8551 §3.1 form that survives 7-bit mail paths unchanged, borrowing it when it
/// already is in that form (the common case costs one scan, no copy).
///
/// - Line ends become CRLF (headers, multipart framing, text).
/// - 8bit and binary leaves are re-encoded: `text/*` (and `message/*` leaves) as quoted-printable (with
///   `From ` at a line start written `=46rom `, `--` at a line start written `=2D-`, trailing whitespace
///   encoded, lines of at most 76 characters), anything else as base64 of the bytes as given.
/// - 7bit and quoted-printable leaves are re-encoded the same way (after decoding) if they have a line starting
///   with `From `, trailing whitespace, a line over 998 octets, or 8-bit/NUL bytes; base64 leaves with such
///   problems are re-wrapped as base64.
/// - `multipart/*` entities recurse into their parts, keeping boundaries and structure; `message/rfc822`
///   recurses into the enclosed message; their `8bit`/`binary` label becomes `7bit`. A preamble or epilogue that
///   is not 7-bit safe is dropped.
/// - Content-Transfer-Encoding fields are updated. `Content-*` fields with raw UTF-8 are encoded (RFC 2231
///   parameters, RFC 2047 words); other fields (e.g. the header of an enclosed message/rfc822) and fields that
///   are not valid UTF-8 are kept as they are.
///
/// Idempotent: preparing the result again returns it borrowed. Errors: malformed headers (see
/// [`parse_headers`]), an unterminated or malformed multipart, an encoded multipart, an undecodable body, an
/// unknown transfer encoding on content that needs re-encoding, nesting deeper than [`MIME_MAX_DEPTH`].
pub fn prepare_for_signing(entity: &[u8]) -> Result<Cow<'_, [u8]>> {
    prepare_entity(entity, 0)
}

/// [`prepare_for_signing`] for an entity held in two pieces, such as [`MessageParts`](super::MessageParts):
/// `head` is the header section including the blank line that ends it (`content_header`), `body` the body.
/// Returns the prepared head and body, each borrowed when unchanged; write one after the other (e.g. through
/// [`MultipartSignedWriter`](super::MultipartSignedWriter)) to sign a large message without joining it first.
pub fn prepare_for_signing_parts<'h, 'b>(
    head: &'h [u8],
    body: &'b [u8],
) -> Result<Prepared<'h, 'b>> {
    let (head, body) = prepare_parts(head, body, 0)?;
    Ok(Prepared { head, body })
}

/// An entity prepared for signing in two pieces (see [`prepare_for_signing_parts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared<'h, 'b> {
    /// The header section and its blank line.
    pub head: Cow<'h, [u8]>,
    /// The body.
    pub body: Cow<'b, [u8]>,
}

impl Prepared<'_, '_> {
    /// The length of the whole entity.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }
    /// True if the entity is empty (never, in practice: the head has at least the blank line).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A prepared (head, body), each borrowed when unchanged.
type Pieces<'h, 'b> = (Cow<'h, [u8]>, Cow<'b, [u8]>);

fn prepare_entity(raw: &[u8], depth: usize) -> Result<Cow<'_, [u8]>> {
    let ent = split_entity(raw)?;
    let (head, body) = prepare_parts(&raw[..raw.len() - ent.body.len()], ent.body, depth)?;
    match (head, body) {
        (Cow::Borrowed(_), Cow::Borrowed(_)) => Ok(Cow::Borrowed(raw)),
        (head, body) => {
            let mut out = Vec::with_capacity(head.len() + body.len());
            out.extend_from_slice(&head);
            out.extend_from_slice(&body);
            Ok(Cow::Owned(out))
        }
    }
}

fn prepare_parts<'h, 'b>(head: &'h [u8], body: &'b [u8], depth: usize) -> Result<Pieces<'h, 'b>> {
    if depth > MIME_MAX_DEPTH {
        return Err(Error::limit(format!(
            "MIME entities are nested more than {MIME_MAX_DEPTH} levels deep"
        ))
        .hint("this is not a normal e-mail message"));
    }
    let h = split_entity(head)?;
    if !h.body.is_empty() {
        return Err(Error::usage(
            "the entity head given for signing contains more than a header section",
        )
        .hint(
            "pass the header section with its blank line as the head, and the rest as the body",
        ));
    }
    let fields = parse_headers(h.header)?;
    let ct = content_type(&fields)?.unwrap_or_else(ContentType::default_text);
    let cte = content_transfer_encoding(&fields)?;
    let encoded = matches!(cte.as_deref(), Some("base64" | "quoted-printable"));

    let (new_body, new_cte): (Cow<'b, [u8]>, Option<&str>) = if ct.is_multipart() {
        if encoded {
            return Err(Error::bad_input(format!("a {} part has a {} transfer encoding", ct.mime, cte.unwrap_or_default()))
                .hint("multipart entities must be 7bit, 8bit or binary (RFC 2045 §6.4); the message is malformed"));
        }
        let boundary = ct.param("boundary").unwrap_or_default();
        let body = prepare_multipart(body, boundary.as_bytes(), depth)?;
        (body, relabel_7bit(cte.as_deref()))
    } else if ct.mime == "message/rfc822" && !encoded {
        (
            prepare_entity(body, depth + 1)?,
            relabel_7bit(cte.as_deref()),
        )
    } else {
        prepare_leaf(&ct, cte.as_deref(), body)?
    };

    // The separator between header and body as given (empty if the entity has no blank line).
    let separator = &head[h.header.len()..];
    let encoded_fields = fields
        .iter()
        .map(encode_field_7bit)
        .collect::<Result<Vec<_>>>()?;
    if new_cte.is_none()
        && separator == b"\r\n"
        && is_crlf_canonical(h.header)
        && encoded_fields.iter().all(Option::is_none)
    {
        return Ok((Cow::Borrowed(head), new_body));
    }
    let mut out = Vec::with_capacity(head.len() + 64);
    let mut cte_written = false;
    for (f, encoded) in fields.iter().zip(encoded_fields) {
        match (new_cte, encoded) {
            (Some(new), _) if f.is("Content-Transfer-Encoding") => {
                out.extend_from_slice(format!("Content-Transfer-Encoding: {new}\r\n").as_bytes());
                cte_written = true;
            }
            (_, Some(e)) => out.extend_from_slice(&e),
            _ => {
                out.extend_from_slice(&to_crlf(f.raw));
                if !f.raw.ends_with(b"\n") {
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    if let (Some(new), false) = (new_cte, cte_written) {
        out.extend_from_slice(format!("Content-Transfer-Encoding: {new}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok((Cow::Owned(out), new_body))
}

/// The new label of a composite entity whose content is now 7-bit: an `8bit` or `binary` label becomes `7bit`.
fn relabel_7bit(cte: Option<&str>) -> Option<&'static str> {
    matches!(cte, Some("8bit" | "binary")).then_some("7bit")
}

/// A leaf body in safe form, and the new transfer encoding if it had to be re-encoded.
fn prepare_leaf<'a>(
    ct: &ContentType,
    cte: Option<&str>,
    body: &'a [u8],
) -> Result<(Cow<'a, [u8]>, Option<&'static str>)> {
    // message/partial and message/external-body must stay 7bit (RFC 2046 §5.2.2, §5.2.3); other message/*
    // leaves (delivery-status, disposition-notification, global…) are text-like and may be quoted-printable.
    if matches!(
        ct.mime.as_str(),
        "message/partial" | "message/external-body"
    ) && (cte.is_some_and(|c| c != "7bit") || transport_unsafe_lenient(body))
    {
        return Err(
            Error::unsupported(format!("a {} part is not 7-bit safe", ct.mime))
                .hint("this part type cannot be re-encoded; remove it before signing"),
        );
    }
    let is_text = matches!(ct.main_type(), "text" | "message");
    let reencode = |content: &[u8]| -> (Cow<'a, [u8]>, Option<&'static str>) {
        if is_text {
            (
                Cow::Owned(qp_encode(&to_crlf(content))),
                Some("quoted-printable"),
            )
        } else {
            (Cow::Owned(base64_lines(content)), Some("base64"))
        }
    };
    match cte {
        None | Some("7bit") => {
            if !transport_unsafe(body, MAX_LINE) {
                return Ok((Cow::Borrowed(body), None)); // one pass for the common, clean case
            }
            let canon = to_crlf(body);
            if transport_unsafe(&canon, MAX_LINE) {
                Ok(reencode(&canon))
            } else {
                Ok((canon, None))
            }
        }
        Some("8bit" | "binary") => Ok(reencode(body)),
        Some(enc @ ("quoted-printable" | "base64")) => {
            let canon = to_crlf(body);
            if !transport_unsafe(&canon, MAX_LINE) {
                Ok((canon, None))
            } else if enc == "base64" {
                // Keep base64 (only the line layout or whitespace was unsafe), rewrapped.
                Ok((
                    Cow::Owned(base64_lines(&decode_body(body, Some(enc))?)),
                    Some("base64"),
                ))
            } else {
                Ok(reencode(&decode_body(body, Some(enc))?))
            }
        }
        Some(other) => {
            let canon = to_crlf(body);
            if transport_unsafe(&canon, MAX_LINE) {
                Err(Error::unsupported(format!(
                    "a part with the transfer encoding \"{other}\" is not 7-bit safe and cannot be re-encoded"
                ))
                .hint("re-attach the content with a standard encoding (base64) before signing"))
            } else {
                Ok((canon, None))
            }
        }
    }
}

fn prepare_multipart<'a>(body: &'a [u8], boundary: &[u8], depth: usize) -> Result<Cow<'a, [u8]>> {
    let mp = split_multipart(body, boundary)?;
    if !mp.terminated {
        return Err(Error::bad_input("a multipart body has no close delimiter")
            .hint("the message is truncated or malformed; it cannot be signed safely"));
    }
    let parts = mp
        .parts
        .iter()
        .map(|p| prepare_entity(p, depth + 1))
        .collect::<Result<Vec<_>>>()?;
    // The bytes between the parts (preamble, delimiter lines, epilogue) must be safe too.
    let mut framing_ok = true;
    let mut prev_end = 0;
    for p in &mp.parts {
        let start = Multipart::offset_in(body, p).unwrap_or(prev_end);
        framing_ok &= !transport_unsafe(&body[prev_end..start], MAX_LINE);
        prev_end = start + p.len();
    }
    framing_ok &= !transport_unsafe(&body[prev_end..], MAX_LINE);
    if framing_ok && parts.iter().all(|p| matches!(p, Cow::Borrowed(_))) {
        return Ok(Cow::Borrowed(body));
    }
    let mut dash_boundary = b"--".to_vec();
    dash_boundary.extend_from_slice(boundary);
    // A preamble or epilogue is kept only if it is safe and cannot be mistaken for a delimiter line.
    let keep = |text: &[u8]| -> Vec<u8> {
        let c = to_crlf(text);
        if transport_unsafe(&c, MAX_LINE) || memchr::memmem::find(&c, &dash_boundary).is_some() {
            Vec::new()
        } else {
            c.into_owned()
        }
    };
    let mut out = Vec::with_capacity(body.len() + 64);
    let preamble = keep(mp.preamble);
    if !preamble.is_empty() {
        out.extend_from_slice(&preamble);
        out.extend_from_slice(b"\r\n");
    }
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary);
    out.extend_from_slice(b"--\r\n");
    out.extend_from_slice(&keep(mp.epilogue));
    // Canonical line ends can turn content into a delimiter line ("x\r--b" becomes "x\r\n--b"): the
    // structure must be exactly the one that was parsed.
    let again = split_multipart(&out, boundary)?;
    if again.parts.len() != parts.len() || again.parts.iter().zip(&parts).any(|(a, b)| *a != &**b) {
        return Err(Error::bad_input(
            "converting line ends to CRLF would change the structure of a multipart (a bare CR or LF next to a boundary)",
        )
        .hint("the message is malformed; fix its line ends before signing"));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    /// The straightforward (several-pass) definition the one-pass [`super::transport_unsafe`] must agree with.
    fn transport_unsafe_reference(data: &[u8], max_line: usize) -> bool {
        if !super::is_crlf_canonical(data) || data.contains(&0) || data.iter().any(|b| *b >= 0x80) {
            return true;
        }
        let text = data.split(|b| *b == b'\n').collect::<Vec<_>>();
        let n = text.len();
        text.iter().enumerate().any(|(i, l)| {
            let l = if i + 1 < n { &l[..l.len() - 1] } else { l }; // drop the CR of a CRLF
            l.len() > max_line || l.starts_with(b"From ") || matches!(l.last(), Some(b' ' | b'\t'))
        })
    }

    /// Every code path of the transport check this CPU can run.
    fn vectors() -> Vec<super::Vector> {
        #[allow(unused_mut)]
        let mut v = vec![super::Vector::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            v.push(super::Vector::Sse2);
            if std::arch::is_x86_feature_detected!("avx2") {
                v.push(super::Vector::Avx2);
            }
        }
        v
    }

    #[test]
    fn one_pass_transport_check_matches_the_reference() {
        let alphabet: &[&[u8]] = &[
            b"a",
            b"b c",
            b"\r\n",
            b"\n",
            b"\r",
            b" ",
            b"\t",
            b"From ",
            b"\x00",
            b"\xc3\xa9",
            b"xyz",
        ];
        let mut seed = 0x9e3779b97f4a7c15u64;
        for _ in 0..20_000 {
            let mut d = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let mut x = seed;
            for _ in 0..len {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                d.extend_from_slice(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            for max in [3usize, 998] {
                assert_eq!(
                    super::transport_unsafe(&d, max),
                    transport_unsafe_reference(&d, max),
                    "{:?} max {max}",
                    String::from_utf8_lossy(&d)
                );
            }
        }
        // Mostly clean text, so that the 16-byte vector steps run and line lengths, line starts and "From "
        // candidates meet every alignment.
        let clean: &[&[u8]] = &[
            b"a",
            b"b c",
            b"\r\n",
            b"\r\n",
            b"F",
            b"Fro",
            b"From ",
            b" ",
            b"\t",
            b"xxxxxxxxxxxxxxx",
            b"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
        ];
        for _ in 0..20_000 {
            let mut d = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 160) as usize;
            let mut x = seed;
            for _ in 0..len {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                d.extend_from_slice(clean[(x >> 33) as usize % clean.len()]);
            }
            // Now and then one bad byte somewhere.
            if seed.is_multiple_of(3) && !d.is_empty() {
                let at = (x >> 20) as usize % d.len();
                d[at] = [b'\n', b'\r', 0, 0x80, b' '][(x >> 8) as usize % 5];
            }
            for max in [16usize, 32, 33, 45, 60, 998] {
                for v in vectors() {
                    assert_eq!(
                        super::transport_unsafe_with(&d, max, v),
                        transport_unsafe_reference(&d, max),
                        "{:?} max {max} {v:?}",
                        String::from_utf8_lossy(&d)
                    );
                }
            }
        }
        // Faults right at the 1 MiB segments of the vector scan, and a clean body across them.
        let clean_big = b"a clean line of text\r\n".repeat(150_000);
        for v in vectors() {
            assert!(!super::transport_unsafe_with(&clean_big, 998, v), "{v:?}");
            for at in [(1 << 20) - 1, 1 << 20, (1 << 20) + 1, (2 << 20) + 7] {
                for bad in [0u8, 0x80, b'\n'] {
                    let mut d = clean_big.clone();
                    d[at] = bad;
                    assert_eq!(
                        super::transport_unsafe_with(&d, 998, v),
                        transport_unsafe_reference(&d, 998),
                        "{v:?} byte {bad} at {at}"
                    );
                }
            }
        }
        // Lines that straddle the 64 KiB blocks.
        let mut big = b"ok line\r\n".repeat(20_000);
        assert!(!super::transport_unsafe(&big, 998));
        big.extend_from_slice(b"trailing \r\n");
        assert!(super::transport_unsafe(&big, 998));
    }
    use super::*;

    /// The checks of T07 on a prepared entity.
    fn assert_safe(out: &[u8]) {
        assert!(out.iter().all(|&b| b < 0x80), "8-bit byte in output");
        assert!(is_crlf_canonical(out), "bare CR or LF in output");
        for line in out.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(
                !line.starts_with(b"From "),
                "From line: {:?}",
                String::from_utf8_lossy(line)
            );
            assert!(
                !matches!(line.last(), Some(b' ' | b'\t')),
                "trailing ws: {:?}",
                String::from_utf8_lossy(line)
            );
            assert!(line.len() <= 998);
        }
        let again = prepare_for_signing(out).unwrap();
        assert!(matches!(again, Cow::Borrowed(_)), "not idempotent");
    }

    fn body_of(entity: &[u8]) -> (Option<String>, Vec<u8>) {
        let e = split_entity(entity).unwrap();
        let f = e.fields().unwrap();
        let cte = content_transfer_encoding(&f).unwrap();
        let dec = decode_body(e.body, cte.as_deref()).unwrap();
        (cte, dec)
    }

    #[test]
    fn crlf() {
        assert!(matches!(to_crlf(b"a\r\nb\r\n"), Cow::Borrowed(_)));
        assert!(matches!(to_crlf(b"no line end"), Cow::Borrowed(_)));
        assert_eq!(
            &*to_crlf(b"a\nb\r\nc\rd\r\r\n\n"),
            b"a\r\nb\r\nc\r\nd\r\n\r\n\r\n"
        );
        assert_eq!(&*to_crlf(b"\n"), b"\r\n");
        assert_eq!(&*to_crlf(b"\r"), b"\r\n");
        assert!(!is_crlf_canonical(b"a\n"));
        assert!(is_crlf_canonical(b""));
    }

    #[test]
    fn diagnosis_variants() {
        let v: Vec<_> = variants_for_diagnosis(b"a \nb\n").collect();
        let names: Vec<&str> = v.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "LF→CRLF",
                "trailing whitespace stripped",
                "final line end removed"
            ]
        );
        assert_eq!(&*v[0].1, b"a \r\nb\r\n");
        assert_eq!(&*v[1].1, b"a\r\nb\r\n");
        let v: Vec<_> = variants_for_diagnosis(b"a\r\nb").collect();
        assert_eq!(v[0].0, "CRLF→LF");
        assert_eq!(&*v[0].1, b"a\nb");
        assert_eq!(v[1].0, "final CRLF added");
    }

    #[test]
    fn base64_decoding() {
        assert_eq!(
            decode_body(b"aGVs\r\nbG8=\r\n", Some("base64")).unwrap(),
            b"hello"
        );
        assert_eq!(decode_body(b" aGVsbG8 ", Some("BASE64")).unwrap(), b"hello");
        assert_eq!(decode_body(b"aGVsbG8", Some("base64")).unwrap(), b"hello"); // missing padding tolerated
        assert_eq!(decode_body(b" \r\n ", Some("base64")).unwrap(), b"");
        assert!(decode_body(b"aGVs*bG8=", Some("base64")).is_err());
        assert!(decode_body(b"aGVsbG8=aGVs", Some("base64")).is_err());
        assert!(decode_body(b"aG=VsbG8", Some("base64")).is_err());
        assert!(decode_body(b"aGVsb", Some("base64")).is_err());
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(
            decode_body(&base64_lines(&big), Some("base64")).unwrap(),
            big
        );
    }

    #[test]
    fn fast_and_general_base64_agree() {
        // Mutated regular bodies: whenever the fast path accepts one, the general decoder gives the same bytes.
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 3) as u8).collect();
        let good = base64_lines(&data);
        let mut seed = 0x2545_f491_u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let bytes = b"A=\r\n \t*/+z";
        let mut accepted = 0;
        for _ in 0..3000 {
            let mut b = good.clone();
            for _ in 0..(rnd() % 3 + 1) {
                let at = (rnd() as usize) % b.len();
                match rnd() % 3 {
                    0 => b[at] = bytes[(rnd() as usize) % bytes.len()],
                    1 => {
                        b.remove(at);
                    }
                    _ => b.truncate(at),
                }
            }
            if let Some(fast) = super::super::b64::decode_regular(&b) {
                assert_eq!(fast, base64_decode_general(&b).unwrap());
                accepted += 1;
            }
        }
        assert!(accepted > 100, "{accepted}");
    }

    #[test]
    fn qp_decoding() {
        assert_eq!(
            decode_body(b"caf=C3=A9 \r\nsoft=\r\nbreak", Some("quoted-printable")).unwrap(),
            "café\r\nsoftbreak".as_bytes()
        );
        assert_eq!(
            decode_body(b"a=3d\nb\n", Some("quoted-printable")).unwrap(),
            b"a=\r\nb\r\n"
        );
        assert_eq!(
            decode_body(b"end=", Some("quoted-printable")).unwrap(),
            b"end"
        );
        assert!(decode_body(b"bad =ZZ", Some("quoted-printable")).is_err());
        assert!(decode_body(b"bad =4", Some("quoted-printable")).is_err());
        assert!(decode_body(b"x", Some("x-uuencode")).is_err());
        assert_eq!(decode_body(b"raw\n", Some("8bit")).unwrap(), b"raw\n");
    }

    #[test]
    fn qp_round_trip_and_limits() {
        let long = "x".repeat(1200);
        let text =
            format!("From here\r\ntrailing \t\r\n{long}\r\nÜnïcödé = ok\r\n.\r\nFrom the end");
        let enc = qp_encode(text.as_bytes());
        for line in enc.split(|&b| b == b'\n') {
            assert!(line.len() <= ENCODED_LINE + 1, "{}", line.len()); // + the '\r'
        }
        assert!(!transport_unsafe(&enc, ENCODED_LINE));
        assert_eq!(qp_decode(&enc).unwrap(), text.as_bytes());
        // "--" at the start of a line (after a soft break or not) is encoded
        let t = format!("--b\r\n{}--b\r\n", "a".repeat(75));
        let enc = qp_encode(t.as_bytes());
        assert!(
            enc.split(|&b| b == b'\n').all(|l| !l.starts_with(b"--")),
            "{}",
            String::from_utf8_lossy(&enc)
        );
        assert_eq!(qp_decode(&enc).unwrap(), t.as_bytes());
        // "From " after a soft break is encoded too
        let t = format!("{}From x", "a".repeat(75));
        let enc = qp_encode(t.as_bytes());
        assert!(
            !transport_unsafe(&enc, ENCODED_LINE),
            "{}",
            String::from_utf8_lossy(&enc)
        );
        assert_eq!(qp_decode(&enc).unwrap(), t.as_bytes());
        // bare LF inside decoded content is kept exactly
        assert_eq!(qp_decode(&qp_encode(b"a\nb\r\n")).unwrap(), b"a\nb\r\n");
    }

    #[test]
    fn canonical_entity_is_borrowed() {
        let e = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nHello\r\nWorld\r\n";
        assert!(matches!(prepare_for_signing(e).unwrap(), Cow::Borrowed(_)));
        let e = b"Content-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\nepi\r\n";
        assert!(matches!(prepare_for_signing(e).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn fast_crlf_check_agrees_with_the_scan() {
        // The memchr scan alone, as the reference.
        fn slow(data: &[u8]) -> bool {
            let mut pos = 0;
            while let Some(k) = memchr2(b'\r', b'\n', &data[pos..]) {
                let i = pos + k;
                if data[i] == b'\n' || data.get(i + 1) != Some(&b'\n') {
                    return false;
                }
                pos = i + 2;
            }
            true
        }
        let mut line = b"0123456789abcdef\r\n".repeat(250); // crosses the 4096-byte blocks
        assert!(all_crlf(&line) && slow(&line));
        let n = line.len();
        let spots = (0..40).chain(4070..4120).chain(n - 40..n);
        for i in spots.chain((0..n).step_by(37)) {
            for b in [b'\r', b'\n', b'x'] {
                let keep = line[i];
                line[i] = b;
                assert_eq!(all_crlf(&line), slow(&line), "byte {i} = {b}");
                line[i] = keep;
            }
        }
        for s in [
            &b""[..],
            b"\r",
            b"\n",
            b"\r\n",
            b"\n\r",
            b"a\r\nb",
            b"\r\r\n",
            b"\r\n\n",
        ] {
            assert_eq!(all_crlf(s), slow(s), "{s:?}");
        }
    }

    #[test]
    fn crlf_writer_matches_to_crlf_at_every_split() {
        use std::io::Write;
        let text = b"a\r\nb\nc\rd\r\r\n\n\re\r\n\r";
        for input in [&text[..], b"\r", b"\n", b"\r\n", b"x\r", b"\n\r\n\r", b""] {
            let want = to_crlf(input).into_owned();
            for cut1 in 0..=input.len() {
                for cut2 in cut1..=input.len() {
                    let mut w = CrlfWriter::new(Vec::new());
                    for piece in [&input[..cut1], &input[cut1..cut2], &input[cut2..]] {
                        w.write_all(piece).unwrap();
                    }
                    assert_eq!(w.finish().unwrap(), want, "{input:?} cut at {cut1}, {cut2}");
                }
            }
        }
    }

    #[test]
    fn lf_text_becomes_crlf() {
        let out = prepare_for_signing(b"Content-Type: text/plain\n\nHello\nWorld\n").unwrap();
        assert_eq!(&*out, b"Content-Type: text/plain\r\n\r\nHello\r\nWorld\r\n");
        assert_safe(&out);
    }

    #[test]
    fn utf8_from_trailing_long_line() {
        let long = "y".repeat(1200);
        let content =
            format!("Grüße aus Köln\r\nFrom here on\r\ntrailing spaces   \r\n{long}\r\nend\r\n");
        let entity = format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{content}"
        );
        let out = prepare_for_signing(entity.as_bytes()).unwrap();
        assert_safe(&out);
        let (cte, dec) = body_of(&out);
        assert_eq!(cte.as_deref(), Some("quoted-printable"));
        assert_eq!(dec, content.as_bytes());
        // the same as 7bit-labelled text with LF line ends (no 8-bit, but From/trailing/long)
        let content7 = format!("From here on\ntrailing spaces \n{long}\n");
        let entity = format!("Content-Type: text/plain\n\n{content7}");
        let out = prepare_for_signing(entity.as_bytes()).unwrap();
        assert_safe(&out);
        let (cte, dec) = body_of(&out);
        assert_eq!(cte.as_deref(), Some("quoted-printable"));
        assert_eq!(dec, to_crlf(content7.as_bytes()).as_ref());
        // no Content-Transfer-Encoding before: one is added, and only one
        let f = parse_headers(split_entity(&out).unwrap().header).unwrap();
        assert_eq!(
            f.iter()
                .filter(|f| f.is("content-transfer-encoding"))
                .count(),
            1
        );
    }

    #[test]
    fn qp_with_from_line_is_reencoded() {
        let e = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nFrom me=\r\n caf=C3=A9\r\n";
        let out = prepare_for_signing(e).unwrap();
        assert_safe(&out);
        assert_eq!(body_of(&out).1, "From me café\r\n".as_bytes());
    }

    #[test]
    fn binary_attachment_in_mixed() {
        let bin: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 256) as u8).collect();
        let text = "Hällo\nFrom me  \n";
        let mut e = b"Content-Type: multipart/mixed; boundary=\"==b==\"\n\nThis is a preamble\n--==b==\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n".to_vec();
        e.extend_from_slice(text.as_bytes());
        e.extend_from_slice(b"\n--==b==\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n");
        e.extend_from_slice(&bin);
        e.extend_from_slice(b"\n--==b==--\nepilogue \xff\n");
        let out = prepare_for_signing(&e).unwrap();
        assert_safe(&out);
        let ent = split_entity(&out).unwrap();
        let mp = split_multipart(ent.body, b"==b==").unwrap();
        assert!(mp.terminated);
        assert_eq!(mp.preamble, b"This is a preamble");
        assert_eq!(mp.epilogue, b""); // 8-bit epilogue dropped
        assert_eq!(mp.parts.len(), 2);
        let (cte, dec) = body_of(mp.parts[0]);
        assert_eq!(cte.as_deref(), Some("quoted-printable"));
        assert_eq!(dec, to_crlf(text.as_bytes()).as_ref());
        let (cte, dec) = body_of(mp.parts[1]);
        assert_eq!(cte.as_deref(), Some("base64"));
        assert_eq!(dec, bin);
    }

    #[test]
    fn nested_and_message_rfc822() {
        let inner = "Content-Type: multipart/alternative; boundary=in\r\n\r\n--in\r\nContent-Type: text/plain\r\n\r\nFrom inner\r\n--in--\r\n";
        let msg = "From: a@example.com\r\nSubject: fwd\r\n\r\nbody 8bit \u{e9}\r\n";
        let e = format!(
            "Content-Type: multipart/mixed; boundary=out\r\n\r\n--out\r\n{inner}\r\n--out\r\nContent-Type: message/rfc822\r\n\r\n{msg}\r\n--out--\r\n"
        );
        let out = prepare_for_signing(e.as_bytes()).unwrap();
        assert_safe(&out);
        let ent = split_entity(&out).unwrap();
        let mp = split_multipart(ent.body, b"out").unwrap();
        let p1 = split_entity(mp.parts[0]).unwrap();
        let n = split_multipart(p1.body, b"in").unwrap();
        assert_eq!(body_of(n.parts[0]).1, b"From inner");
        let p2 = split_entity(mp.parts[1]).unwrap();
        let nested = split_entity(p2.body).unwrap();
        assert!(
            nested
                .header
                .starts_with(b"From: a@example.com\r\nSubject: fwd\r\n")
        );
        assert_eq!(body_of(p2.body).1, "body 8bit \u{e9}\r\n".as_bytes());
    }

    #[test]
    fn mixed_line_ends_and_relabel() {
        let e = b"Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: 8bit\n\n--b\nContent-Type: text/plain\r\n\r\na\rb\nc\r\n\r\n--b\nContent-Type: message/rfc822\nContent-Transfer-Encoding: binary\n\nSubject: x\n\ny\n--b--\n";
        let out = prepare_for_signing(e).unwrap();
        assert_safe(&out);
        let ent = split_entity(&out).unwrap();
        let f = ent.fields().unwrap();
        assert_eq!(
            content_transfer_encoding(&f).unwrap().as_deref(),
            Some("7bit")
        );
        let mp = split_multipart(ent.body, b"b").unwrap();
        assert_eq!(
            mp.parts[0],
            b"Content-Type: text/plain\r\n\r\na\r\nb\r\nc\r\n"
        );
        assert_eq!(
            mp.parts[1],
            b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\nSubject: x\r\n\r\ny"
        );
        let e = b"Content-Type: message/external-body; access-type=x\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xff";
        assert!(prepare_for_signing(e).is_err());
    }

    #[test]
    fn canonicalisation_must_not_create_delimiters() {
        // "--b\r" is not a delimiter line, so this is a preamble; as CRLF it would become one: it is dropped.
        let e = b"Content-Type: multipart/mixed; boundary=b\n\n--b\rfake\n--b\n\nreal\n--b--\n";
        let out = prepare_for_signing(e).unwrap();
        assert_safe(&out);
        let mp = split_multipart(split_entity(&out).unwrap().body, b"b").unwrap();
        assert_eq!(
            (mp.preamble, mp.parts.as_slice()),
            (&b""[..], &[&b"\r\nreal"[..]][..])
        );
        // inside a part it would split the part: refused
        let e = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\r--b\ny\n--b--\n";
        assert!(prepare_for_signing(e).is_err());
    }

    #[test]
    fn soft_break_cannot_create_a_delimiter() {
        let line = format!("{}--b", "a".repeat(75));
        let e = format!(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\u{e9}\r\n{line}\r\n--b--\r\n"
        );
        let out = prepare_for_signing(e.as_bytes()).unwrap();
        assert_safe(&out);
        let mp = split_multipart(split_entity(&out).unwrap().body, b"b").unwrap();
        assert_eq!(mp.parts.len(), 1);
        assert_eq!(
            body_of(mp.parts[0]).1,
            format!("\u{e9}\r\n{line}").as_bytes()
        );
    }

    #[test]
    fn base64_lines_are_76_character_crlf_lines() {
        use base64::Engine as _;
        for len in [
            0usize,
            1,
            2,
            3,
            56,
            57,
            58,
            113,
            114,
            115,
            57 * 40 + 5,
            100_000,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 131 % 256) as u8).collect();
            let want: Vec<u8> = data
                .chunks(57)
                .flat_map(|c| {
                    let mut l = base64::engine::general_purpose::STANDARD
                        .encode(c)
                        .into_bytes();
                    l.extend_from_slice(b"\r\n");
                    l
                })
                .collect();
            assert_eq!(super::base64_lines(&data), want, "{len} bytes");
        }
    }

    #[test]
    fn prepare_in_two_pieces() {
        let p = crate::mime::split_message_parts(
            b"From: a@example.com\nContent-Type: text/plain\n\nHello\r\n",
        )
        .unwrap();
        let pr = prepare_for_signing_parts(&p.content_header, p.body).unwrap();
        assert!(matches!(
            (&pr.head, &pr.body),
            (Cow::Borrowed(_), Cow::Borrowed(_))
        ));
        let p = crate::mime::split_message_parts("Subject: x\n\nFrom \u{e9}\n".as_bytes()).unwrap();
        let pr = prepare_for_signing_parts(&p.content_header, p.body).unwrap();
        assert!(
            matches!(pr.body, Cow::Owned(_)),
            "From at a line start is re-encoded"
        );
        let joined = [&*pr.head, &*pr.body].concat();
        assert_eq!(pr.len(), joined.len());
        assert_safe(&joined);
        assert_eq!(&*prepare_for_signing(&p.entity()).unwrap(), &joined[..]);
        assert!(prepare_for_signing_parts(b"A: b\r\n\r\nbody", b"").is_err());
    }

    #[test]
    fn utf8_filename_in_entity_header() {
        let e = "Content-Type: application/pdf; name=\"Bericht für Jörg.pdf\"\r\nContent-Disposition: attachment; filename=\"Bericht für Jörg.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n";
        let out = prepare_for_signing(e.as_bytes()).unwrap();
        assert_safe(&out);
        let f = split_entity(&out).unwrap().fields().unwrap();
        assert_eq!(
            content_type(&f).unwrap().unwrap().param("name"),
            Some("Bericht für Jörg.pdf")
        );
        assert_eq!(body_of(&out).1, b"%PDF-");
    }

    #[test]
    fn malformed_for_signing() {
        assert!(
            prepare_for_signing(
                b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n"
            )
            .is_err()
        );
        assert!(prepare_for_signing(b"Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: base64\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n").is_err());
        assert!(
            prepare_for_signing(b"Content-Type: text/plain\r\nContent-Type: text/html\r\n\r\nx")
                .is_err()
        );
        assert!(
            prepare_for_signing(
                b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uue\r\n\r\n\xff"
            )
            .is_err()
        );
        // depth limit
        let mut e = b"Content-Type: text/plain\r\n\r\nx".to_vec();
        for _ in 0..=MIME_MAX_DEPTH + 1 {
            let mut outer = b"Content-Type: message/rfc822\r\n\r\n".to_vec();
            outer.extend_from_slice(&e);
            e = outer;
        }
        assert_eq!(
            prepare_for_signing(&e).unwrap_err().kind(),
            crate::error::ErrorKind::Limit
        );
    }

    #[test]
    fn entity_without_headers_or_blank_line() {
        let out = prepare_for_signing(b"\r\nplain \xc3\xa9\r\n").unwrap();
        assert_safe(&out);
        assert!(out.starts_with(b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"));
        let out = prepare_for_signing(b"Content-Type: text/plain").unwrap();
        assert_eq!(&*out, b"Content-Type: text/plain\r\n\r\n");
        assert_safe(&out);
    }
}
