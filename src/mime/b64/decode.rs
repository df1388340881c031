//! Fast base64 decoding of bodies laid out the way encoders write them: lines of one fixed length (a multiple
//! of 4) ending with the same line break, a shorter last line, trailing white space.
//!
//! Such a body is decoded without looking for line ends (each line's place is known), straight into the
//! output, and large bodies by two threads (the decoded offset of every line is known too). Anything else —
//! irregular line lengths, white space inside lines, `=` before the last line, invalid characters — makes
//! [`decode_regular`] return `None`, and the general decoder (`canon::base64_decode`) decodes the body or
//! reports the error: the fast path only ever accepts bodies the general one decodes to the same bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;

/// Bodies at least this large are decoded by two threads.
const PARALLEL_MIN: usize = 4 << 20;

/// How much input is decoded between two calls to `input::release`.
const RELEASE_EVERY: usize = 1 << 20;

/// Longest line length (without its line break) taken as regular.
const MAX_LINE: usize = 4096;

/// Marks an invalid character in the tables: set in every entry that is not base64, outside the 24 data bits.
const INVALID: u32 = 1 << 24;

/// Sextet value of each byte shifted into place for the character's position in a group of four.
const fn table(shift: u32) -> [u32; 256] {
    let mut t = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = (i as u32) << shift;
        i += 1;
    }
    t
}

static D0: [u32; 256] = table(18);
static D1: [u32; 256] = table(12);
static D2: [u32; 256] = table(6);
static D3: [u32; 256] = table(0);

/// The layout of a regular body.
struct Layout {
    /// Characters per full line.
    line: usize,
    /// The line break: `\r\n` or `\n`.
    eol: &'static [u8],
    /// Number of full lines (every line but the last).
    full: usize,
    /// The last line (1..=`line` characters; may carry padding).
    last: std::ops::Range<usize>,
}

impl Layout {
    fn stride(&self) -> usize {
        self.line + self.eol.len()
    }
}

fn layout(body: &[u8]) -> Option<Layout> {
    let nl = memchr::memchr(b'\n', body)?;
    let (line, eol): (usize, &'static [u8]) = match body[..nl].last() {
        Some(b'\r') => (nl - 1, b"\r\n"),
        _ => (nl, b"\n"),
    };
    if line == 0 || !line.is_multiple_of(4) || line > MAX_LINE {
        return None;
    }
    let end = body.len()
        - body
            .iter()
            .rev()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .count();
    if end == 0 {
        return None;
    }
    let stride = line + eol.len();
    let full = (end - 1) / stride;
    let start = full * stride;
    if end - start > line {
        return None;
    }
    Some(Layout {
        line,
        eol,
        full,
        last: start..end,
    })
}

/// Decodes `lines` full lines of `src` (each `line` characters and `eol`) into `dst`. False on any character
/// that is not in the base64 alphabet (`=` and white space included) or a misplaced line break.
fn decode_lines(src: &[u8], line: usize, eol: &[u8], dst: &mut [u8]) -> bool {
    let stride = line + eol.len();
    let out_line = line / 4 * 3;
    debug_assert_eq!(src.len() / stride * out_line, dst.len());
    let crlf = eol.len() == 2;
    // Blocks of about 1 MiB of input, each released when decoded (see `input::release`).
    let block = (RELEASE_EVERY / stride).max(1) * stride;
    for (sb, db) in src
        .chunks(block)
        .zip(dst.chunks_mut(block / stride * out_line))
    {
        if !decode_block(sb, line, crlf, db) {
            return false;
        }
        crate::input::release(sb);
    }
    true
}

fn decode_block(src: &[u8], line: usize, crlf: bool, dst: &mut [u8]) -> bool {
    let stride = line + if crlf { 2 } else { 1 };
    let out_line = line / 4 * 3;
    let mut bad = 0u32;
    for (s, d) in src.chunks_exact(stride).zip(dst.chunks_exact_mut(out_line)) {
        // Compared by hand: a slice comparison is a memcmp call per line.
        if s[stride - 1] != b'\n' || (crlf && s[line] != b'\r') {
            return false;
        }
        for (q, o) in s[..line].chunks_exact(8).zip(d.chunks_exact_mut(6)) {
            let a = D0[q[0] as usize] | D1[q[1] as usize] | D2[q[2] as usize] | D3[q[3] as usize];
            let b = D0[q[4] as usize] | D1[q[5] as usize] | D2[q[6] as usize] | D3[q[7] as usize];
            bad |= a | b;
            let x = (u64::from(a) << 40) | (u64::from(b) << 16);
            o.copy_from_slice(&x.to_be_bytes()[..6]);
        }
        if !line.is_multiple_of(8) {
            let q = &s[line - 4..line];
            let a = D0[q[0] as usize] | D1[q[1] as usize] | D2[q[2] as usize] | D3[q[3] as usize];
            bad |= a;
            d[out_line - 3..].copy_from_slice(&a.to_be_bytes()[1..]);
        }
        if bad & INVALID != 0 {
            return false;
        }
    }
    true
}

/// Decodes a base64 body with the regular layout (see the module documentation), or `None` when the body is
/// not regular or not valid: the caller then uses the general decoder, which also words the errors.
pub(crate) fn decode_regular(body: &[u8]) -> Option<Vec<u8>> {
    let lay = layout(body)?;
    let stride = lay.stride();
    let full_src = &body[..lay.full * stride];
    let tail = STANDARD_PAD_INDIFFERENT
        .decode(&body[lay.last.clone()])
        .ok()?;
    let out_line = lay.line / 4 * 3;
    let full_len = lay.full.checked_mul(out_line)?;
    // Zeroed memory from the allocator (fresh pages for large sizes, no memset), written once below.
    let mut out = vec![0u8; full_len.checked_add(tail.len())?];
    crate::input::advise_huge_pages(&mut out);
    let (full_dst, tail_dst) = out.split_at_mut(full_len);
    tail_dst.copy_from_slice(&tail);
    let ok = if full_src.len() >= PARALLEL_MIN && lay.full >= 2 {
        let half = lay.full / 2;
        let (s0, s1) = full_src.split_at(half * stride);
        let (d0, d1) = full_dst.split_at_mut(half * out_line);
        std::thread::scope(|sc| {
            let second = std::thread::Builder::new()
                .name("smimekit-b64".into())
                .spawn_scoped(sc, || decode_lines(s1, lay.line, lay.eol, d1));
            let first = decode_lines(s0, lay.line, lay.eol, d0);
            // No second thread (rare): the general decoder takes over.
            first && second.is_ok_and(|h| h.join().unwrap_or(false))
        })
    } else {
        decode_lines(full_src, lay.line, lay.eol, full_dst)
    };
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn lines(data: &[u8], width: usize, eol: &str) -> Vec<u8> {
        let enc = STANDARD.encode(data);
        let mut out = Vec::new();
        for c in enc.as_bytes().chunks(width) {
            out.extend_from_slice(c);
            out.extend_from_slice(eol.as_bytes());
        }
        out
    }

    #[test]
    fn regular_bodies_decode() {
        for n in [1usize, 2, 3, 56, 57, 58, 114, 1000, 100_000] {
            let data: Vec<u8> = (0..n).map(|i| (i * 13 + 7) as u8).collect();
            for (w, eol) in [(76, "\r\n"), (64, "\n"), (4, "\r\n")] {
                let b = lines(&data, w, eol);
                assert_eq!(decode_regular(&b).as_deref(), Some(&data[..]), "{n} {w}");
                let mut trailing = b.clone();
                trailing.extend_from_slice(b" \r\n\r\n\t");
                assert_eq!(decode_regular(&trailing).as_deref(), Some(&data[..]));
            }
        }
    }

    #[test]
    fn parallel_halves_decode() {
        let data: Vec<u8> = (0..(PARALLEL_MIN * 2))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let b = lines(&data, 76, "\r\n");
        assert_eq!(decode_regular(&b).as_deref(), Some(&data[..]));
        // A bad character deep in the second half is found.
        let mut bad = b.clone();
        let at = bad.len() - 1000;
        let at = at - at % 78;
        bad[at + 3] = b'*';
        assert!(decode_regular(&bad).is_none());
    }

    #[test]
    fn irregular_or_invalid_bodies_are_left_to_the_general_decoder() {
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let b = lines(&data, 76, "\r\n");
        let cases: Vec<Vec<u8>> = vec![
            b"aGVsbG8=".to_vec(),                 // one line
            b"\r\naGVs\r\n".to_vec(),             // empty first line
            b"aGV\r\nsbG8=\r\n".to_vec(),         // line length not a multiple of 4
            b"aGVs\r\nbG8=\r\nbG8=\r\n".to_vec(), // padding before the last line
            b"aGVs\naGVs\r\nbG8=\n".to_vec(),     // mixed line breaks
            b"aGVs\r\nbG8=bG8=\r\n".to_vec(),     // last line longer
            b"aG s\r\nbG8=\r\n".to_vec(),         // white space in a line
            b"aGVs\r\nbG\r\n8=\r\n".to_vec(),     // short line in the middle
            b"aGVs\r\n*G8=\r\n".to_vec(),         // invalid character in the last line
            b"*GVs\r\nbG8=\r\n".to_vec(),         // invalid character in a full line
            b"aGVs\r\nbG8=x\r\n".to_vec(),        // data after padding
            b"aGVs\r\nb\r\n".to_vec(),            // impossible length
            {
                let mut v = b.clone();
                v[76] = b'\n'; // CR replaced
                v
            },
            {
                let mut v = b.clone();
                v.insert(200, b'\n');
                v
            },
        ];
        for c in cases {
            assert!(
                decode_regular(&c).is_none(),
                "{}",
                String::from_utf8_lossy(&c)
            );
        }
    }
}
