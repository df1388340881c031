//! A minimal DNS stub client (RFC 1035) for `check-server --domain`: one question to one recursive resolver over
//! UDP (TCP when the answer is truncated), for the record types the check needs — A, AAAA, MX, TXT, SRV, TLSA.
//!
//! Why not a resolver crate: `hickory-resolver` brings an async runtime and a few dozen crates for what is here a
//! handful of synchronous queries; this client is about 300 lines with every read bounded. It does **not**
//! validate DNSSEC: it asks the resolver to (the AD bit, RFC 6840 §5.7) and reports whether the resolver said the
//! answer was authenticated — which only means something over a trusted path to a validating resolver.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};

use crate::error::{Error, ErrorKind, Result};
use crate::limits;

/// Record types used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RType {
    /// IPv4 address.
    A = 1,
    /// Alias.
    Cname = 5,
    /// Mail exchanger.
    Mx = 15,
    /// Text.
    Txt = 16,
    /// IPv6 address.
    Aaaa = 28,
    /// Service location (RFC 2782).
    Srv = 33,
    /// DANE TLSA (RFC 6698).
    Tlsa = 52,
}

/// One answer record, decoded for the types above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An address (A or AAAA).
    Addr(IpAddr),
    /// MX preference and host.
    Mx(u16, String),
    /// TXT: the character-strings joined.
    Txt(String),
    /// SRV priority, weight, port, target.
    Srv(u16, u16, u16, String),
    /// TLSA usage, selector, matching type, association data.
    Tlsa(u8, u8, u8, Vec<u8>),
    /// Anything else (e.g. a CNAME on the way).
    Other,
}

/// The answer to one question.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Records of the type asked for.
    pub records: Vec<Record>,
    /// The resolver set AD: it validated the answer with DNSSEC.
    pub authenticated: bool,
    /// The name does not exist (NXDOMAIN).
    pub nxdomain: bool,
}

/// A stub resolver talking to one server.
#[derive(Debug, Clone, Copy)]
pub struct Resolver {
    server: SocketAddr,
}

impl Resolver {
    /// The resolver at `server` (e.g. a test server on 127.0.0.1).
    pub fn at(server: SocketAddr) -> Self {
        Resolver { server }
    }

    /// The first `nameserver` of /etc/resolv.conf.
    pub fn system() -> Result<Self> {
        let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let ip = conf
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .find_map(|v| v.trim().parse::<IpAddr>().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Network,
                    "no DNS server found in /etc/resolv.conf",
                )
                .hint("name one with --dns-server ADDRESS[:PORT]")
            })?;
        Ok(Resolver::at(SocketAddr::new(ip, 53)))
    }

    /// Asks `name` `rtype`; the records of that type in the answer section.
    pub fn query(&self, name: &str, rtype: RType) -> Result<Answer> {
        let net = |m: String| {
            Error::new(ErrorKind::Network, m)
                .hint("check the DNS server (--dns-server) and your network")
        };
        let mut id = [0u8; 2];
        openssl::rand::rand_bytes(&mut id).map_err(|e| Error::crypto("random query id", e))?;
        let id = u16::from_be_bytes(id);
        let q = build_query(id, name, rtype)?;
        let bind: SocketAddr = if self.server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(bind).map_err(|e| net(format!("DNS: {e}")))?;
        sock.connect(self.server)
            .map_err(|e| net(format!("DNS server {}: {e}", self.server)))?;
        sock.set_read_timeout(Some(limits::DNS_TIMEOUT))
            .map_err(|e| net(format!("DNS: {e}")))?;
        let mut buf = vec![0u8; limits::DNS_MAX_MESSAGE];
        let mut reply = None;
        for _ in 0..limits::DNS_TRIES {
            sock.send(&q)
                .map_err(|e| net(format!("DNS server {}: {e}", self.server)))?;
            // Replies with another id (late answers, spoofing attempts) are skipped until the wait ends.
            while let Ok(n) = sock.recv(&mut buf) {
                if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                    reply = Some(buf[..n].to_vec());
                    break;
                }
            }
            if reply.is_some() {
                break;
            }
        }
        let mut msg = reply.ok_or_else(|| {
            net(format!(
                "DNS server {} did not answer for {name}",
                self.server
            ))
        })?;
        if msg[2] & 0x02 != 0 {
            // Truncated: ask again over TCP (RFC 7766).
            msg = self
                .query_tcp(&q, id)
                .map_err(|e| net(format!("DNS over TCP: {e}")))?;
        }
        parse_answer(&msg, id, name, rtype)
            .ok_or_else(|| net(format!("DNS: malformed answer for {name}")))
    }

    fn query_tcp(&self, q: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&self.server, limits::DNS_TIMEOUT)?;
        s.set_read_timeout(Some(limits::DNS_TIMEOUT))?;
        s.set_write_timeout(Some(limits::DNS_TIMEOUT))?;
        let mut out = (q.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(q);
        s.write_all(&out)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let len = usize::from(u16::from_be_bytes(len));
        if !(12..=limits::DNS_MAX_MESSAGE).contains(&len) {
            return Err(std::io::Error::other("answer too long"));
        }
        let mut m = vec![0u8; len];
        s.read_exact(&mut m)?;
        if u16::from_be_bytes([m[0], m[1]]) != id {
            return Err(std::io::Error::other("answer to another query"));
        }
        Ok(m)
    }

    /// The addresses of `host` (A, then AAAA).
    pub fn addresses(&self, host: &str) -> Result<Vec<IpAddr>> {
        let mut out = Vec::new();
        for t in [RType::A, RType::Aaaa] {
            for r in self.query(host, t)?.records {
                if let Record::Addr(ip) = r {
                    out.push(ip);
                }
            }
        }
        Ok(out)
    }
}

fn build_query(id: u16, name: &str, rtype: RType) -> Result<Vec<u8>> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    // RD (recursion desired) and AD (tell us whether you validated, RFC 6840 §5.7).
    q.extend_from_slice(&[0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(Error::usage(format!("not a valid domain name: {name}")));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&(rtype as u16).to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    // EDNS0 OPT: our UDP payload size.
    q.extend_from_slice(&[0, 0, 41]);
    q.extend_from_slice(&(limits::DNS_MAX_MESSAGE as u16).to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    if q.len() > 512 {
        return Err(Error::usage(format!("domain name too long: {name}")));
    }
    Ok(q)
}

/// Reads a possibly compressed name at `pos`; returns it and the position after it (in the original place).
fn read_name(m: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut end = None;
    // Compression pointers could loop: bound the jumps.
    for _ in 0..64 {
        let len = *m.get(pos)? as usize;
        if len == 0 {
            let after = end.unwrap_or(pos + 1);
            return Some((labels.join("."), after));
        }
        if len & 0xC0 == 0xC0 {
            let ptr = ((len & 0x3F) << 8) | *m.get(pos + 1)? as usize;
            end.get_or_insert(pos + 2);
            pos = ptr;
            continue;
        }
        let l = m.get(pos + 1..pos + 1 + len)?;
        labels.push(String::from_utf8_lossy(l).into_owned());
        pos += 1 + len;
    }
    None
}

fn u16_at(m: &[u8], p: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(p)?, *m.get(p + 1)?]))
}

fn parse_answer(m: &[u8], id: u16, name: &str, rtype: RType) -> Option<Answer> {
    if m.len() < 12 || u16_at(m, 0)? != id || m[2] & 0x80 == 0 {
        return None;
    }
    let rcode = m[3] & 0x0F;
    let authenticated = m[3] & 0x20 != 0;
    let qd = u16_at(m, 4)?;
    let an = u16_at(m, 6)?;
    let mut pos = 12;
    for _ in 0..qd {
        let (qname, p) = read_name(m, pos)?;
        if !qname.eq_ignore_ascii_case(name.trim_end_matches('.')) {
            return None;
        }
        pos = p + 4;
    }
    let mut records = Vec::new();
    for _ in 0..an.min(limits::DNS_MAX_RECORDS) {
        let (_, p) = read_name(m, pos)?;
        let t = u16_at(m, p)?;
        let rdlen = usize::from(u16_at(m, p + 8)?);
        let rd = p + 10;
        let data = m.get(rd..rd + rdlen)?;
        pos = rd + rdlen;
        if t != rtype as u16 {
            records.push(Record::Other);
            continue;
        }
        records.push(match rtype {
            RType::A if rdlen == 4 => Record::Addr(IpAddr::from(<[u8; 4]>::try_from(data).ok()?)),
            RType::Aaaa if rdlen == 16 => {
                Record::Addr(IpAddr::from(<[u8; 16]>::try_from(data).ok()?))
            }
            RType::Mx => Record::Mx(u16_at(m, rd)?, read_name(m, rd + 2)?.0),
            RType::Srv => Record::Srv(
                u16_at(m, rd)?,
                u16_at(m, rd + 2)?,
                u16_at(m, rd + 4)?,
                read_name(m, rd + 6)?.0,
            ),
            RType::Txt => {
                let mut s = String::new();
                let mut i = 0;
                while i < data.len() {
                    let l = usize::from(data[i]);
                    s += &String::from_utf8_lossy(data.get(i + 1..i + 1 + l)?);
                    i += 1 + l;
                }
                Record::Txt(s)
            }
            RType::Tlsa if rdlen >= 3 => {
                Record::Tlsa(data[0], data[1], data[2], data[3..].to_vec())
            }
            _ => Record::Other,
        });
    }
    records.retain(|r| *r != Record::Other);
    Some(Answer {
        records,
        authenticated,
        nxdomain: rcode == 3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_shape_and_answer_parsing() {
        let q = build_query(0x1234, "example.test", RType::Mx).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x20]);
        // An MX answer as dnsmasq sends it (compressed owner name).
        let mut a = q[..q.len() - 11].to_vec();
        a[2] = 0x85;
        a[3] = 0x80;
        a[7] = 1; // ANCOUNT
        a[11] = 0; // no additional
        a.extend_from_slice(&[0xC0, 0x0C, 0, 15, 0, 1, 0, 0, 0, 0, 0, 19, 0, 10]);
        a.extend_from_slice(b"\x02mx\x07example\x04test\x00");
        let ans = parse_answer(&a, 0x1234, "example.test", RType::Mx).unwrap();
        assert_eq!(ans.records, vec![Record::Mx(10, "mx.example.test".into())]);
        // Another id is not our answer; a pointer loop is refused.
        assert!(parse_answer(&a, 0x1235, "example.test", RType::Mx).is_none());
        assert!(read_name(&[0xC0, 0x00], 0).is_none());
    }
}
