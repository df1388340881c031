//! A minimal BER/DER reader and DER writer: just enough to check what OpenSSL does not expose (GCM tag
//! lengths, PKCS#12 iteration counts, attribute shapes) and to encode small signed attributes.
//!
//! No cryptography happens here. The reader is bounded: it never recurses more than [`DER_MAX_DEPTH`] levels and
//! never reads past its input.

use crate::error::{Error, Result};
use crate::limits::DER_MAX_DEPTH;

/// Universal tags we refer to.
pub mod tag {
    /// INTEGER
    pub const INTEGER: u8 = 0x02;
    /// OCTET STRING (primitive)
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER
    pub const OID: u8 = 0x06;
    /// SEQUENCE (constructed)
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed)
    pub const SET: u8 = 0x31;
    /// UTCTime
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime
    pub const GENERALIZED_TIME: u8 = 0x18;
}

/// One TLV element borrowed from the input.
#[derive(Clone, Copy, Debug)]
pub struct Tlv<'a> {
    /// The identifier octet (only low-tag-number form is supported).
    pub tag: u8,
    /// The contents octets. For indefinite-length elements, the contents without the end-of-contents marker.
    pub value: &'a [u8],
    /// The whole encoding, header included.
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// True if the constructed bit is set.
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }
    /// The children of a constructed element.
    pub fn children(&self) -> Result<Vec<Tlv<'a>>> {
        let mut out = Vec::new();
        let mut r = Reader::new(self.value);
        while !r.is_empty() {
            out.push(r.read()?);
        }
        Ok(out)
    }
    /// The value as an unsigned integer, if it fits in 64 bits.
    pub fn as_u64(&self) -> Option<u64> {
        if self.tag != tag::INTEGER || self.value.is_empty() || self.value[0] & 0x80 != 0 {
            return None;
        }
        let v = if self.value.len() > 1 && self.value[0] == 0 {
            &self.value[1..]
        } else {
            self.value
        };
        if v.len() > 8 {
            return None;
        }
        Some(v.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
    }
    /// The dotted form of an OBJECT IDENTIFIER.
    pub fn oid(&self) -> Option<String> {
        (self.tag == tag::OID)
            .then(|| oid_to_string(self.value))
            .flatten()
    }
    /// The octets of an OCTET STRING, joining BER constructed segments.
    pub fn octets(&self) -> Result<Vec<u8>> {
        if self.tag == tag::OCTET_STRING || (self.tag & 0xe0 == 0x80) {
            return Ok(self.value.to_vec());
        }
        if self.tag == 0x24 || self.tag & 0xe0 == 0xa0 {
            let mut out = Vec::new();
            for c in self.children()? {
                out.extend(c.octets()?);
            }
            return Ok(out);
        }
        Err(Error::bad_input(
            "expected an OCTET STRING in the ASN.1 structure",
        ))
    }
}

/// A cursor over concatenated TLVs.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

fn malformed(what: &str) -> Error {
    Error::bad_input(format!("malformed ASN.1 ({what})")).hint(
        "the file is truncated or not DER/BER; check that it is the complete, unmodified file",
    )
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            depth: 0,
        }
    }
    /// True when all input has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
    /// Bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }
    /// Reads the next element.
    pub fn read(&mut self) -> Result<Tlv<'a>> {
        let start = self.pos;
        let (tag, value, end) = parse_tlv(self.buf, start, self.depth)?;
        self.pos = end;
        Ok(Tlv {
            tag,
            value,
            raw: &self.buf[start..end],
        })
    }
}

/// Parses one TLV at `pos`; returns (tag, contents, end offset).
fn parse_tlv(buf: &[u8], pos: usize, depth: usize) -> Result<(u8, &[u8], usize)> {
    if depth > DER_MAX_DEPTH {
        return Err(Error::limit(format!(
            "ASN.1 nested deeper than {DER_MAX_DEPTH} levels"
        )));
    }
    let tag = *buf.get(pos).ok_or_else(|| malformed("unexpected end"))?;
    if tag & 0x1f == 0x1f {
        return Err(malformed("high tag number"));
    }
    let l0 = *buf
        .get(pos + 1)
        .ok_or_else(|| malformed("missing length"))?;
    let mut p = pos + 2;
    if l0 == 0x80 {
        if tag & 0x20 == 0 {
            return Err(malformed("indefinite length on a primitive"));
        }
        // Indefinite length: walk children until the end-of-contents octets.
        let start = p;
        loop {
            if buf.get(p) == Some(&0) && buf.get(p + 1) == Some(&0) {
                return Ok((tag, &buf[start..p], p + 2));
            }
            if p >= buf.len() {
                return Err(malformed("unterminated indefinite length"));
            }
            let (_, _, end) = parse_tlv(buf, p, depth + 1)?;
            p = end;
        }
    }
    let len = if l0 & 0x80 == 0 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n > 8 {
            return Err(malformed("length too long"));
        }
        let bytes = buf
            .get(p..p + n)
            .ok_or_else(|| malformed("truncated length"))?;
        p += n;
        bytes
            .iter()
            .try_fold(0usize, |a, b| {
                a.checked_mul(256).map(|x| x + usize::from(*b))
            })
            .ok_or_else(|| malformed("length overflow"))?
    };
    let end = p
        .checked_add(len)
        .ok_or_else(|| malformed("length overflow"))?;
    if end > buf.len() {
        return Err(malformed("truncated"));
    }
    Ok((tag, &buf[p..end], end))
}

/// Parses exactly one element spanning all of `buf` (trailing bytes are an error).
pub fn parse_one(buf: &[u8]) -> Result<Tlv<'_>> {
    let mut r = Reader::new(buf);
    let t = r.read()?;
    if !r.is_empty() {
        return Err(malformed("trailing bytes after the structure"));
    }
    Ok(t)
}

/// Dotted-decimal form of OID contents.
pub fn oid_to_string(v: &[u8]) -> Option<String> {
    if v.is_empty() {
        return None;
    }
    // u128: UUID-based OIDs (2.25.<128-bit>, ITU-T X.667) must round-trip.
    let mut arcs: Vec<u128> = Vec::new();
    let mut acc: u128 = 0;
    for (i, b) in v.iter().enumerate() {
        acc = acc.checked_mul(128)? | u128::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        } else if i == v.len() - 1 {
            return None;
        }
    }
    // Written straight into one string, u64 arithmetic when the arc fits (nearly always): OIDs are converted
    // for every attribute of every message a scan reads.
    use std::fmt::Write;
    let mut s = String::with_capacity(v.len() * 3);
    for (i, a) in arcs.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        let _ = match u64::try_from(*a) {
            Ok(small) => write!(s, "{small}"),
            Err(_) => write!(s, "{a}"),
        };
    }
    Some(s)
}

/// Encodes a dotted OID (contents and header).
pub fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u128> = dotted
        .split('.')
        .map(|a| a.parse().expect("valid OID literal"))
        .collect();
    let mut body = Vec::new();
    let mut push = |mut v: u128| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        body.extend(tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for a in &arcs[2..] {
        push(*a);
    }
    tlv(tag::OID, &body)
}

/// Encodes one DER element.
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = value.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

/// Encodes a SEQUENCE of already-encoded elements.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &parts.concat())
}

/// Encodes a small non-negative INTEGER.
pub fn uint(v: u64) -> Vec<u8> {
    let mut b: Vec<u8> = v
        .to_be_bytes()
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    if b.is_empty() || b[0] & 0x80 != 0 {
        b.insert(0, 0);
    }
    tlv(tag::INTEGER, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_round_trip() {
        let e = oid("1.2.840.113549.1.9.16.2.47");
        let t = parse_one(&e).unwrap();
        assert_eq!(t.oid().unwrap(), "1.2.840.113549.1.9.16.2.47");
    }

    #[test]
    fn uuid_oid_round_trip() {
        let dotted = "2.25.251595081384917929959779046716300568925";
        assert_eq!(parse_one(&oid(dotted)).unwrap().oid().unwrap(), dotted);
    }

    #[test]
    fn indefinite_length() {
        // SEQUENCE (indefinite) { INTEGER 5 } EOC
        let b = [0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00];
        let t = parse_one(&b).unwrap();
        let c = t.children().unwrap();
        assert_eq!(c[0].as_u64(), Some(5));
    }

    #[test]
    fn truncated_is_error() {
        assert!(parse_one(&[0x30, 0x05, 0x02, 0x01]).is_err());
        assert!(parse_one(&[0x30, 0x80, 0x02, 0x01, 0x05]).is_err());
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut b = Vec::new();
        for _ in 0..200 {
            b.extend([0x30, 0x80]);
        }
        for _ in 0..200 {
            b.extend([0, 0]);
        }
        assert!(parse_one(&b).is_err());
    }

    #[test]
    fn long_lengths() {
        let v = vec![7u8; 300];
        let e = tlv(tag::OCTET_STRING, &v);
        assert_eq!(parse_one(&e).unwrap().value.len(), 300);
        assert_eq!(uint(128), vec![2, 2, 0, 128]);
    }
}
