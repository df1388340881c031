//! The strict, zero-copy splitter: header/body (RFC 5322 §2.1, RFC 2045) and multipart bodies (RFC 2046 §5.1.1).
//!
//! Everything returns sub-slices of the input, so it works over an mmap of any size. Line ends may be CRLF or
//! a bare LF (mail stores often keep LF); both are accepted and kept as they are.

use memchr::memmem;

use super::headers::{Field, content_transfer_encoding, content_type, parse_headers};
use super::to_crlf;
use crate::error::{Error, Result};
use crate::limits::{MAX_HEADER_BYTES, MAX_PARTS};

/// A MIME entity (or an RFC 5322 message) split into its header section and its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entity<'a> {
    /// The header section, up to and including the line end of its last field, without the blank line.
    pub header: &'a [u8],
    /// Everything after the blank line (empty if there is no blank line).
    pub body: &'a [u8],
    /// The whole entity as given.
    pub raw: &'a [u8],
}

impl<'a> Entity<'a> {
    /// The parsed header fields (see [`parse_headers`]).
    pub fn fields(&self) -> Result<Vec<Field<'a>>> {
        parse_headers(self.header)
    }
}

/// Splits `raw` at the first empty line (CRLF or LF).
///
/// An input without an empty line is all header and has an empty body. An input that starts with an empty line
/// has an empty header section. Fails if the header section is larger than [`MAX_HEADER_BYTES`].
pub fn split_entity(raw: &[u8]) -> Result<Entity<'_>> {
    let (header_end, body_start) = match find_blank_line(raw) {
        Some(v) => v,
        None => (raw.len(), raw.len()),
    };
    if header_end > MAX_HEADER_BYTES {
        return Err(header_too_large(header_end));
    }
    Ok(Entity {
        header: &raw[..header_end],
        body: &raw[body_start..],
        raw,
    })
}

pub(crate) fn header_too_large(len: usize) -> Error {
    Error::limit(format!(
        "the header section is {} bytes or more; the limit is {} bytes",
        len, MAX_HEADER_BYTES
    ))
    .hint("this is not a normal e-mail message (or it has no blank line between header and body)")
}

/// Returns (end of the header section, start of the body).
fn find_blank_line(raw: &[u8]) -> Option<(usize, usize)> {
    if raw.starts_with(b"\n") {
        return Some((0, 1));
    }
    if raw.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    // Never look further than the header limit (plus the blank line itself): a 1 GiB body without a blank line
    // must not be scanned.
    let window = &raw[..raw.len().min(MAX_HEADER_BYTES + 3)];
    for nl in memchr::memchr_iter(b'\n', window) {
        let rest = &raw[nl + 1..];
        if rest.starts_with(b"\n") {
            return Some((nl + 1, nl + 2));
        }
        if rest.starts_with(b"\r\n") {
            return Some((nl + 1, nl + 3));
        }
    }
    if raw.len() > window.len() {
        // No blank line within the limit: report the size rather than treating 1 GiB as a header.
        return Some((raw.len(), raw.len()));
    }
    None
}

/// The pieces of a multipart body, all borrowed from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multipart<'a> {
    /// Bytes before the first delimiter line, without the line end that belongs to that delimiter.
    pub preamble: &'a [u8],
    /// Each body part (its header section, blank line and body), without the line end before the next
    /// delimiter: exactly the bytes a `multipart/signed` signature covers.
    pub parts: Vec<&'a [u8]>,
    /// Bytes after the line end that follows the close delimiter (empty if there is none).
    pub epilogue: &'a [u8],
    /// False if the close delimiter (`--boundary--`) is missing: the last part then runs to the end of the body.
    pub terminated: bool,
}

impl<'a> Multipart<'a> {
    /// The offset of `part` (one of [`Multipart::parts`]) within `body`, the slice this was split from.
    pub fn offset_in(body: &[u8], part: &[u8]) -> Option<usize> {
        let b = body.as_ptr() as usize;
        let p = part.as_ptr() as usize;
        (p >= b && p + part.len() <= b + body.len()).then(|| p - b)
    }
}

/// What follows `--boundary` on a candidate delimiter line.
enum Delim {
    /// A delimiter line; the value is the offset just after its line end.
    Open(usize),
    /// A close delimiter line; the value is the offset just after its line end (or the end of input).
    Close(usize),
}

/// Checks the bytes after `--boundary` (starting at `at`): optional `--`, linear whitespace, then a line end or
/// the end of input. Anything else means this line is not a delimiter.
fn delimiter_tail(body: &[u8], at: usize) -> Option<Delim> {
    let mut i = at;
    let close = body[i..].starts_with(b"--");
    if close {
        i += 2;
    }
    while i < body.len() && (body[i] == b' ' || body[i] == b'\t') {
        i += 1;
    }
    let end = if i == body.len() {
        i
    } else if body[i] == b'\n' {
        i + 1
    } else if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
        i + 2
    } else {
        return None;
    };
    Some(if close {
        Delim::Close(end)
    } else {
        Delim::Open(end)
    })
}

/// The first match of `finder` in `hay` at or after `from`, searched a MiB at a time: between the steps a large
/// mapped input is trimmed (`input::trim_due`), since the search faults in ten megabytes a millisecond while the
/// other core may keep the trimmer thread waiting.
fn find_in_steps(finder: &memmem::Finder<'_>, hay: &[u8], from: usize) -> Option<usize> {
    const STEP: usize = 1 << 20;
    // Windows overlap by the needle's length less one, so a match across two windows is found in the first.
    let overlap = finder.needle().len().saturating_sub(1);
    let mut at = from;
    while at < hay.len() {
        let end = (at + STEP + overlap).min(hay.len());
        if let Some(p) = finder.find(&hay[at..end]) {
            return Some(at + p);
        }
        if end == hay.len() {
            break;
        }
        at += STEP;
        crate::input::trim_due();
    }
    None
}

/// Splits a multipart body at the delimiter lines for `boundary` (the `boundary` parameter, without `--`).
///
/// Strict RFC 2046 §5.1.1: a delimiter line starts a line, is exactly `--boundary`, and may be followed only by
/// `--` (close delimiter) and spaces or tabs. `--boundary` in the middle of a line, or followed by anything else
/// (as with a longer boundary that starts with this one), is content. The CRLF (or LF) before a delimiter
/// belongs to the delimiter, not to the part before it.
///
/// Errors: no delimiter line at all, a close delimiter before the first part, an empty boundary, more than
/// [`MAX_PARTS`] parts. A missing close delimiter is not an error: [`Multipart::terminated`] is false.
pub fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Result<Multipart<'a>> {
    if boundary.is_empty() {
        return Err(Error::bad_input("the multipart boundary is empty")
            .hint("the Content-Type header of this message is malformed"));
    }
    let mut needle = Vec::with_capacity(boundary.len() + 3);
    needle.extend_from_slice(b"\n--");
    needle.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&needle);
    let dash_len = needle.len() - 1; // "--boundary"

    // Finds the next delimiter line whose "--boundary" starts at or after `from` (a line start is required, so
    // the '\n' searched for may be at `from - 1`). Returns (start incl. its preceding line end, kind).
    let next = |from: usize, floor: usize| -> Option<(usize, Delim)> {
        if from == 0
            && body.starts_with(&needle[1..])
            && let Some(d) = delimiter_tail(body, dash_len)
        {
            return Some((0, d));
        }
        let mut search = from.saturating_sub(1);
        while let Some(nl) = find_in_steps(&finder, body, search) {
            if let Some(d) = delimiter_tail(body, nl + needle.len()) {
                // The line end before the delimiter: "\r\n" or "\n". It never reaches back before `floor`
                // (the end of the previous delimiter line), so an empty part is just empty.
                let start = if nl > floor && body[nl - 1] == b'\r' {
                    nl - 1
                } else {
                    nl
                };
                return Some((start.max(floor), d));
            }
            search = nl + 1;
        }
        None
    };

    let (first_start, first) = next(0, 0).ok_or_else(|| {
        Error::bad_input(format!(
            "the multipart body has no delimiter line \"--{}\"",
            String::from_utf8_lossy(boundary)
        ))
        .hint("the message is truncated, or its boundary parameter does not match its body")
    })?;
    let preamble = &body[..first_start];
    let mut part_start = match first {
        Delim::Open(end) => end,
        Delim::Close(_) => {
            return Err(Error::bad_input(
                "the multipart body has a close delimiter before its first part",
            )
            .hint("the message is malformed; it cannot be processed safely"));
        }
    };
    let mut parts = Vec::new();
    loop {
        if parts.len() >= MAX_PARTS {
            return Err(Error::limit(format!(
                "the multipart body has more than {MAX_PARTS} parts"
            ))
            .hint("this is not a normal e-mail message"));
        }
        match next(part_start, part_start) {
            None => {
                parts.push(&body[part_start..]);
                return Ok(Multipart {
                    preamble,
                    parts,
                    epilogue: &[],
                    terminated: false,
                });
            }
            Some((start, Delim::Open(end))) => {
                parts.push(&body[part_start..start]);
                part_start = end;
            }
            Some((start, Delim::Close(end))) => {
                parts.push(&body[part_start..start]);
                return Ok(Multipart {
                    preamble,
                    parts,
                    epilogue: &body[end..],
                    terminated: true,
                });
            }
        }
    }
}

/// A message split for signing or encryption (see [`split_message_parts`]); the body is borrowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageParts<'a> {
    /// The top-level fields that stay outside (everything but `Content-*` and `MIME-Version`), CRLF line ends.
    pub outer: Vec<u8>,
    /// The `Content-*` fields (or `Content-Type: text/plain; charset=us-ascii` if there are none), CRLF line
    /// ends, followed by the blank line.
    pub content_header: Vec<u8>,
    /// The body, exactly as given.
    pub body: &'a [u8],
}

impl MessageParts<'_> {
    /// The entity to sign or encrypt: [`MessageParts::content_header`] followed by [`MessageParts::body`].
    pub fn entity(&self) -> Vec<u8> {
        let mut e = Vec::with_capacity(self.content_header.len() + self.body.len());
        e.extend_from_slice(&self.content_header);
        e.extend_from_slice(self.body);
        e
    }
}

/// Splits an RFC 5322 message into the header fields that stay outside a signature or encryption and the
/// MIME entity that goes inside, without copying the body (see [`split_message`] for the owned form).
pub fn split_message_parts(raw: &[u8]) -> Result<MessageParts<'_>> {
    let ent = split_entity(raw)?;
    let fields = parse_headers(ent.header)?;
    // Refuse what would be ambiguous inside the signed or encrypted entity (T52).
    let ct = content_type(&fields)?;
    content_transfer_encoding(&fields)?;
    // A text type without a charset means us-ascii (RFC 2045 §5.2); 8-bit text that is valid UTF-8 is UTF-8.
    let add_utf8 = ct.as_ref().is_some_and(|c| {
        c.main_type() == "text" && c.param("charset").is_none() && unlabelled_utf8(ent.body)
    });
    let mut outer = Vec::new();
    let mut content_header = Vec::new();
    for f in &fields {
        let lname = f.name.to_ascii_lowercase();
        let dest = if lname.starts_with("content-") || lname == "mime-version" {
            if lname == "mime-version" {
                continue;
            }
            &mut content_header
        } else {
            &mut outer
        };
        let mut raw = to_crlf(f.raw);
        if add_utf8 && lname == "content-type" {
            let r = raw.to_mut();
            while r
                .last()
                .is_some_and(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | b';'))
            {
                r.pop();
            }
            r.extend_from_slice(b"; charset=utf-8");
        }
        dest.extend_from_slice(&raw);
        if !raw.ends_with(b"\n") {
            dest.extend_from_slice(b"\r\n");
        }
    }
    if content_header.is_empty() {
        content_header.extend_from_slice(default_content_type(ent.body));
    }
    content_header.extend_from_slice(b"\r\n");
    Ok(MessageParts {
        outer,
        content_header,
        body: ent.body,
    })
}

/// The Content-Type given to a message without `Content-*` fields. RFC 2045 §5.2's default is us-ascii, but
/// 8-bit text written today is UTF-8: labelling it us-ascii makes mail readers show mojibake once it is
/// re-encoded as quoted-printable, so a body that is valid UTF-8 is labelled `utf-8`.
fn default_content_type(body: &[u8]) -> &'static [u8] {
    if unlabelled_utf8(body) {
        b"Content-Type: text/plain; charset=utf-8\r\n"
    } else {
        b"Content-Type: text/plain; charset=us-ascii\r\n"
    }
}

/// 8-bit text that is valid UTF-8.
fn unlabelled_utf8(body: &[u8]) -> bool {
    !body.is_ascii() && std::str::from_utf8(body).is_ok()
}

/// A warning for a message without a charset (no Content-Type, or a text type without the parameter) whose body
/// has 8-bit bytes that are not UTF-8: it is labelled us-ascii, and readers will show those bytes wrongly. `None` when there is nothing to say.
pub fn unlabelled_8bit_warning(raw: &[u8]) -> Option<String> {
    let ent = split_entity(raw).ok()?;
    let fields = parse_headers(ent.header).ok()?;
    // Labelled: a Content-Type that is not text, or names a charset.
    let labelled = match content_type(&fields).ok()? {
        Some(c) => c.main_type() != "text" || c.param("charset").is_some(),
        None => false,
    };
    if labelled || ent.body.is_ascii() {
        return None;
    }
    let e = std::str::from_utf8(ent.body).err()?;
    Some(format!(
        "the message names no charset and its text is not valid UTF-8 (byte {} is not): it is labelled us-ascii, and mail readers will show its 8-bit characters wrongly; add a Content-Type with the right charset",
        e.valid_up_to()
    ))
}

/// Splits an RFC 5322 message into (outer header fields, entity) for signing or encryption.
///
/// The outer fields are every top-level field except `Content-*` and `MIME-Version`, as raw bytes with CRLF
/// line ends. The entity is the `Content-*` fields (a default `Content-Type: text/plain; charset=us-ascii` if
/// there are none), a blank line and the body as given. This copies the body; large inputs should use
/// [`split_message_parts`].
pub fn split_message(raw: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let p = split_message_parts(raw)?;
    let entity = p.entity();
    Ok((p.outer, entity))
}

#[cfg(test)]
mod tests {
    #[test]
    fn stepped_search_finds_matches_across_its_windows() {
        let needle = b"\n--boundary";
        let finder = memmem::Finder::new(needle);
        for at in [
            0,
            (1 << 20) - 5,
            (1 << 20) - 1,
            1 << 20,
            (2 << 20) + 3,
            (3 << 20) - needle.len(),
        ] {
            let mut hay = vec![b'a'; 3 << 20];
            hay[at..at + needle.len()].copy_from_slice(needle);
            for from in [0, at.saturating_sub(7), at] {
                assert_eq!(
                    super::find_in_steps(&finder, &hay, from),
                    Some(at),
                    "at {at} from {from}"
                );
            }
            assert_eq!(super::find_in_steps(&finder, &hay, at + 1), None);
        }
    }

    use super::*;

    fn split(body: &str, b: &str) -> Multipart<'static> {
        let body: &'static str = Box::leak(body.to_string().into_boxed_str());
        split_multipart(body.as_bytes(), b.as_bytes()).unwrap()
    }

    #[test]
    fn entity_crlf_lf_and_none() {
        let e = split_entity(b"A: 1\r\nB: 2\r\n\r\nbody\r\n").unwrap();
        assert_eq!(e.header, b"A: 1\r\nB: 2\r\n");
        assert_eq!(e.body, b"body\r\n");
        let e = split_entity(b"A: 1\nB: 2\n\nbody\n\nmore").unwrap();
        assert_eq!(e.header, b"A: 1\nB: 2\n");
        assert_eq!(e.body, b"body\n\nmore");
        let e = split_entity(b"A: 1\r\nB: 2\r\n").unwrap();
        assert_eq!(e.header, b"A: 1\r\nB: 2\r\n");
        assert!(e.body.is_empty());
        let e = split_entity(b"\r\nbody").unwrap();
        assert!(e.header.is_empty());
        assert_eq!(e.body, b"body");
        let e = split_entity(b"").unwrap();
        assert!(e.header.is_empty() && e.body.is_empty());
    }

    #[test]
    fn entity_header_limit() {
        let mut big = b"X: ".to_vec();
        big.resize(MAX_HEADER_BYTES + 10, b'a');
        let err = split_entity(&big).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Limit);
        big.extend_from_slice(b"\r\n\r\nbody");
        assert!(split_entity(&big).is_err());
    }

    #[test]
    fn simple_crlf() {
        let m = split(
            "pre\r\n--b\r\nA: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepi\r\n",
            "b",
        );
        assert_eq!(m.preamble, b"pre");
        assert_eq!(m.parts, vec![&b"A: 1\r\n\r\none"[..], b"\r\ntwo"]);
        assert_eq!(m.epilogue, b"epi\r\n");
        assert!(m.terminated);
    }

    #[test]
    fn no_preamble_and_lf_only() {
        let m = split("--b\nA: 1\n\none\n--b\n\ntwo\n--b--\n", "b");
        assert_eq!(m.preamble, b"");
        assert_eq!(m.parts, vec![&b"A: 1\n\none"[..], b"\ntwo"]);
        assert_eq!(m.epilogue, b"");
        assert!(m.terminated);
    }

    #[test]
    fn boundary_mid_line_is_content() {
        let body = "--XYZ\r\nContent-Type: text/plain\r\n\r\nline one --XYZ inside a line\r\n--XYZ\r\nsig\r\n--XYZ--\r\n";
        let m = split(body, "XYZ");
        assert_eq!(
            m.parts[0],
            b"Content-Type: text/plain\r\n\r\nline one --XYZ inside a line"
        );
        assert_eq!(m.parts[1], b"sig");
        assert_eq!(m.parts.len(), 2);
    }

    #[test]
    fn boundary_prefix_of_another() {
        // "--XYZ-inner" and "--XYZinner" are not delimiters of "XYZ".
        let body = "--XYZ\r\n\r\na\r\n--XYZinner\r\nb\r\n--XYZ-inner--\r\n--XYZ--x\r\n--XYZ\r\n\r\nc\r\n--XYZ--\r\n";
        let m = split(body, "XYZ");
        assert_eq!(
            m.parts,
            vec![
                &b"\r\na\r\n--XYZinner\r\nb\r\n--XYZ-inner--\r\n--XYZ--x"[..],
                b"\r\nc"
            ]
        );
        // and the longer boundary does not match at the shorter one
        let body = "--XYZinner\r\n\r\na\r\n--XYZ\r\nb\r\n--XYZinner--\r\n";
        let m = split(body, "XYZinner");
        assert_eq!(m.parts, vec![&b"\r\na\r\n--XYZ\r\nb"[..]]);
    }

    #[test]
    fn transport_padding_allowed() {
        let m = split("--b \t\r\n\r\none\r\n--b-- \r\n", "b");
        assert_eq!(m.parts, vec![&b"\r\none"[..]]);
        assert!(m.terminated);
    }

    #[test]
    fn preamble_with_boundary_like_lines() {
        let body = "Preamble says --b here\r\n --b\r\n--b is the boundary\r\n--bb\r\n--b\r\n\r\nreal\r\n--b--\r\n";
        let m = split(body, "b");
        assert_eq!(
            m.preamble,
            b"Preamble says --b here\r\n --b\r\n--b is the boundary\r\n--bb"
        );
        assert_eq!(m.parts, vec![&b"\r\nreal"[..]]);
    }

    #[test]
    fn close_before_first_part_is_error() {
        assert!(split_multipart(b"--b--\r\n--b\r\n\r\nx\r\n--b--\r\n", b"b").is_err());
    }

    #[test]
    fn missing_delimiter_is_error() {
        assert!(split_multipart(b"no parts here\r\n--c\r\n", b"b").is_err());
        assert!(split_multipart(b"", b"b").is_err());
        assert!(split_multipart(b"--b\r\n", b"").is_err());
    }

    #[test]
    fn missing_close_delimiter() {
        let m = split("--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n", "b");
        assert!(!m.terminated);
        assert_eq!(m.parts, vec![&b"\r\none"[..], b"\r\ntwo\r\n"]);
        assert!(m.epilogue.is_empty());
        // close delimiter at the very end without a line end
        let m = split("--b\r\n\r\none\r\n--b--", "b");
        assert!(m.terminated);
        assert_eq!(m.parts, vec![&b"\r\none"[..]]);
    }

    #[test]
    fn empty_parts() {
        let m = split("--b\r\n--b\r\n\r\n--b\r\n--b--\r\n", "b");
        assert_eq!(m.parts, vec![&b""[..], b"", b""]);
        let m = split("--b\n--b--\n", "b");
        assert_eq!(m.parts, vec![&b""[..]]);
    }

    #[test]
    fn nested_multipart() {
        let inner = "--in\r\n\r\ninner one\r\n--in\r\n\r\ninner two\r\n--in--\r\n";
        let body = format!(
            "--out\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n{inner}\r\n--out\r\n\r\nlast\r\n--out--\r\n"
        );
        let m = split(&body, "out");
        assert_eq!(m.parts.len(), 2);
        let e = split_entity(m.parts[0]).unwrap();
        assert_eq!(e.body, inner.as_bytes());
        let n = split_multipart(e.body, b"in").unwrap();
        assert_eq!(n.parts, vec![&b"\r\ninner one"[..], b"\r\ninner two"]);
        assert!(n.terminated);
        assert!(Multipart::offset_in(body.as_bytes(), m.parts[0]).is_none()); // not derived from `body`
    }

    #[test]
    fn offsets_and_too_many_parts() {
        let body = b"--b\r\n\r\nx\r\n--b--\r\n";
        let m = split_multipart(body, b"b").unwrap();
        assert_eq!(Multipart::offset_in(body, m.parts[0]), Some(5));
        let mut many = Vec::new();
        for _ in 0..=MAX_PARTS {
            many.extend_from_slice(b"--b\r\n");
        }
        let err = split_multipart(&many, b"b").unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Limit);
    }

    #[test]
    fn message_split() {
        let raw = b"From: a@example.com\nSubject: hi\nMIME-Version: 1.0\nContent-Type: text/plain;\n charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nbody\n";
        let (outer, entity) = split_message(raw).unwrap();
        assert_eq!(outer, b"From: a@example.com\r\nSubject: hi\r\n");
        assert_eq!(
            entity,
            b"Content-Type: text/plain;\r\n charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbody\n"
        );
        let (outer, entity) = split_message(b"Subject: x\r\n\r\nhello").unwrap();
        assert_eq!(outer, b"Subject: x\r\n");
        assert_eq!(
            entity,
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\nhello"
        );
        assert!(
            split_message(b"Content-Type: text/plain\r\nContent-type: text/html\r\n\r\nx").is_err()
        );
        let p = split_message_parts(b"Subject: x\r\n\r\nhello").unwrap();
        assert_eq!(p.body, b"hello");
    }

    /// `cargo test --release -- --ignored --nocapture large_input`: 512 MiB, zero-copy, well under a second each.
    #[test]
    #[ignore]
    fn large_input() {
        let line =
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
        let n = (512 << 20) / line.len();
        let mut e = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
        e.reserve(n * line.len() + 100);
        for _ in 0..n {
            e.extend_from_slice(line.as_bytes());
        }
        e.extend_from_slice(b"\r\n--b--\r\n");
        let t = std::time::Instant::now();
        let ent = split_entity(&e).unwrap();
        let mp = split_multipart(ent.body, b"b").unwrap();
        assert_eq!(mp.parts.len(), 2);
        println!("split_multipart: {:?}", t.elapsed());
        let t = std::time::Instant::now();
        assert!(matches!(
            crate::mime::prepare_for_signing(&e).unwrap(),
            std::borrow::Cow::Borrowed(_)
        ));
        println!("prepare_for_signing (already safe): {:?}", t.elapsed());
        let t = std::time::Instant::now();
        assert!(matches!(to_crlf(&e), std::borrow::Cow::Borrowed(_)));
        println!("to_crlf (already canonical): {:?}", t.elapsed());
    }

    /// A line-by-line reference splitter, written independently of the memmem one.
    /// (preamble, parts, epilogue, terminated), owned.
    type Owned = (Vec<u8>, Vec<Vec<u8>>, Vec<u8>, bool);

    fn reference(body: &[u8], b: &[u8]) -> Option<Owned> {
        let mut lines = Vec::new(); // (start, end without line end, end with line end)
        let mut i = 0;
        while i < body.len() {
            let nl = body[i..].iter().position(|&c| c == b'\n').map(|p| i + p);
            let (content_end, next) = match nl {
                Some(n) if n > i && body[n - 1] == b'\r' => (n - 1, n + 1),
                Some(n) => (n, n + 1),
                None => (body.len(), body.len()),
            };
            lines.push((i, content_end, next));
            i = next;
        }
        let kind = |line: &[u8]| -> Option<bool> {
            let rest = line.strip_prefix(b"--")?.strip_prefix(b)?;
            let (close, rest) = match rest.strip_prefix(b"--") {
                Some(r) => (true, r),
                None => (false, rest),
            };
            rest.iter()
                .all(|&c| c == b' ' || c == b'\t')
                .then_some(close)
        };
        let mut preamble = None;
        let mut parts = Vec::new();
        let mut part_start = 0;
        let mut prev_end = 0; // end of the content of the line before
        for &(start, content_end, next) in &lines {
            let Some(close) = kind(&body[start..content_end]) else {
                prev_end = content_end;
                continue;
            };
            let delim_start = if start == 0 {
                0
            } else {
                prev_end.max(part_start)
            };
            match preamble {
                None => {
                    if close {
                        return None;
                    }
                    preamble = Some(body[..delim_start].to_vec());
                }
                Some(_) => parts.push(body[part_start..delim_start].to_vec()),
            }
            if close {
                return Some((preamble.unwrap(), parts, body[next..].to_vec(), true));
            }
            part_start = next;
            prev_end = content_end;
        }
        let preamble = preamble?;
        parts.push(body[part_start..].to_vec());
        Some((preamble, parts, Vec::new(), false))
    }

    #[test]
    fn differential_against_reference() {
        const TOKENS: [&str; 14] = [
            "a",
            " ",
            "\t",
            "\r\n",
            "\n",
            "\r",
            "--b",
            "--b--",
            "--bb",
            "-",
            "b",
            "--",
            "\r\n--b\r\n",
            "\n--b--",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut counts = [0usize; 3];
        for _ in 0..50_000 {
            let mut body = Vec::new();
            for _ in 0..rnd(30) {
                body.extend_from_slice(TOKENS[rnd(TOKENS.len())].as_bytes());
            }
            let ours = split_multipart(&body, b"b").ok().map(|m| {
                let parts = m.parts.iter().map(|p| p.to_vec()).collect::<Vec<_>>();
                (
                    m.preamble.to_vec(),
                    parts,
                    m.epilogue.to_vec(),
                    m.terminated,
                )
            });
            assert_eq!(
                ours,
                reference(&body, b"b"),
                "body {:?}",
                String::from_utf8_lossy(&body)
            );
            match ours {
                Some((_, _, _, true)) => counts[0] += 1,
                Some((_, p, _, false)) if p.len() > 1 => counts[1] += 1,
                None => counts[2] += 1,
                _ => {}
            }
        }
        println!(
            "terminated {}, unterminated multi-part {}, errors {}",
            counts[0], counts[1], counts[2]
        );
        assert!(counts.iter().all(|&c| c > 1000), "{counts:?}");
    }

    /// On well-formed multipart/signed messages (content never contains "--b"), mail-parser and the
    /// strict splitter agree on the signed bytes
    /// (they differ only on malformed input, where the strict one is right).
    #[test]
    fn differential_against_mail_parser() {
        const TOKENS: [&str; 10] = [
            "word", " ", "\r\n", "-", "--", "=", "b-", " b ", "\r\n\r\n", "é",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..1 + rnd(40) {
                text.push_str(TOKENS[rnd(TOKENS.len())]);
            }
            if text.contains("--b") {
                continue; // not well-formed: mail-parser would split there (see below)
            }
            let entity = format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{text}");
            let msg = format!(
                "From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; boundary=\"b\"; protocol=\"application/pkcs7-signature\"\r\n\r\n--b\r\n{entity}\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--b--\r\n"
            );
            let ent = split_entity(msg.as_bytes()).unwrap();
            let ours = split_multipart(ent.body, b"b").unwrap();
            assert_eq!(ours.parts[0], entity.as_bytes());
            let parsed = mail_parser::MessageParser::default()
                .parse(msg.as_bytes())
                .unwrap();
            let p = &parsed.parts[1];
            let theirs = &msg.as_bytes()[p.offset_header as usize..p.offset_end as usize];
            assert_eq!(theirs, ours.parts[0], "{text:?}");
        }
        // A "--b" in the middle of a line: mail-parser ends the part there, the strict splitter does not.
        let msg = b"Content-Type: multipart/signed; boundary=b\r\n\r\n--b\r\n\r\nline one --b inside\r\n--b\r\n\r\nsig\r\n--b--\r\n";
        let parsed = mail_parser::MessageParser::default()
            .parse(&msg[..])
            .unwrap();
        let p = &parsed.parts[1];
        let theirs = &msg[p.offset_header as usize..p.offset_end as usize];
        let ours = split_multipart(split_entity(msg).unwrap().body, b"b").unwrap();
        assert_eq!(ours.parts[0], b"\r\nline one --b inside");
        assert_ne!(theirs, ours.parts[0]);
    }
}
