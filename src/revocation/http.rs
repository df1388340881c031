//! A minimal HTTP/1.1 client for CRLs (GET) and OCSP (POST), over plain TCP.
//!
//! CRLs and OCSP responses are signed, so plain HTTP is what RFC 5280 §4.2.1.13 and RFC 6960 expect (and what
//! CAs publish); HTTPS would need a TLS stack and its own revocation checking. No redirect is followed (a
//! redirect could point at another scheme, `file:`, or an internal address), bodies are capped before they
//! are read, and every read and write has a timeout, with an overall deadline on top.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::limits;

/// An `http://host[:port]/path` URL, parsed strictly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses `s`; anything but `http://` (https, ldap, file…) is refused with the reason.
    pub fn parse(s: &str) -> Result<Url> {
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("HTTP://"))
            .ok_or_else(|| {
                Error::unsupported(format!("'{s}' is not an http:// URL"))
                    .hint("only http:// CRL and OCSP locations are fetched (the data is signed)")
            })?;
        if s.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(Error::bad_input(format!(
                "'{}' contains spaces or control characters",
                s.escape_debug()
            )));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(Error::bad_input(format!("'{s}' carries user information")));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6
                .split_once(']')
                .ok_or_else(|| Error::bad_input(format!("'{s}' is not a valid URL")))?;
            (h.to_string(), p.strip_prefix(':').unwrap_or(""))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (authority.to_string(), ""),
            }
        };
        let port = if port.is_empty() {
            80
        } else {
            port.parse::<u16>()
                .map_err(|_| Error::bad_input(format!("'{s}' has a bad port")))?
        };
        if host.is_empty() {
            return Err(Error::bad_input(format!("'{s}' has no host")));
        }
        let path = path.split('#').next().unwrap_or("/").to_string();
        Ok(Url { host, port, path })
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "http://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// GETs `url`, returning at most `max` bytes of body (more is an error).
pub fn get(url: &Url, max: usize) -> Result<Vec<u8>> {
    exchange(url, "GET", None, max)
}

/// POSTs `body` with `content_type` to `url`.
pub fn post(url: &Url, content_type: &str, body: &[u8], max: usize) -> Result<Vec<u8>> {
    exchange(url, "POST", Some((content_type, body)), max)
}

fn net_err(url: &Url, what: impl std::fmt::Display) -> Error {
    Error::new(
        crate::error::ErrorKind::Io,
        format!("cannot fetch {url}: {what}"),
    )
}

fn exchange(url: &Url, method: &str, body: Option<(&str, &[u8])>, max: usize) -> Result<Vec<u8>> {
    let timeout = Duration::from_secs(limits::REVOCATION_TIMEOUT_SECS);
    let deadline = Instant::now() + Duration::from_secs(limits::REVOCATION_TOTAL_SECS);
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| net_err(url, format!("cannot resolve {}: {e}", url.host)))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in addrs.iter().take(4) {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut s = stream.ok_or_else(|| {
        net_err(
            url,
            last.map(|e| e.to_string())
                .unwrap_or_else(|| "no address".into()),
        )
    })?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let mut req = format!(
        "{method} {} HTTP/1.1\r\nHost: {host}{}\r\nUser-Agent: smimekit\r\nConnection: close\r\nAccept: */*\r\n",
        url.path,
        if url.port == 80 {
            String::new()
        } else {
            format!(":{}", url.port)
        }
    )
    .into_bytes();
    if let Some((ct, b)) = body {
        req.extend(format!("Content-Type: {ct}\r\nContent-Length: {}\r\n", b.len()).bytes());
    }
    req.extend(b"\r\n");
    if let Some((_, b)) = body {
        req.extend(b);
    }
    s.write_all(&req).map_err(|e| net_err(url, e))?;
    // Read the header block.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > limits::MAX_HTTP_HEADER_BYTES {
            return Err(net_err(url, "the response header is too long"));
        }
        let n = read_some(&mut s, &mut chunk, deadline, url)?;
        if n == 0 {
            return Err(net_err(url, "the server closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| net_err(url, "not an HTTP response"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut location = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(v.parse().map_err(|_| net_err(url, "bad Content-Length"))?)
            }
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "location" => location = Some(v.to_string()),
            _ => {}
        }
    }
    if (300..400).contains(&code) {
        return Err(net_err(
            url,
            format!(
                "the server redirects to {} (redirects are not followed)",
                location.unwrap_or_default()
            ),
        ));
    }
    if code != 200 {
        return Err(net_err(url, format!("HTTP status {status_line}")));
    }
    if length.is_some_and(|l| l > max) {
        return Err(too_large(url, max));
    }
    // Read the rest of the body (to EOF: Connection: close), capped.
    loop {
        if rest.len() > max + if chunked { 64 << 10 } else { 0 } {
            return Err(too_large(url, max));
        }
        if let Some(l) = length
            && !chunked
            && rest.len() >= l
        {
            rest.truncate(l);
            break;
        }
        let n = read_some(&mut s, &mut chunk, deadline, url)?;
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&chunk[..n]);
    }
    let body = if chunked {
        dechunk(&rest).ok_or_else(|| net_err(url, "bad chunked encoding"))?
    } else {
        if length.is_some_and(|l| rest.len() < l) {
            return Err(net_err(url, "the response was cut short"));
        }
        rest
    };
    if body.len() > max {
        return Err(too_large(url, max));
    }
    Ok(body)
}

fn too_large(url: &Url, max: usize) -> Error {
    Error::limit(format!(
        "the response from {url} is larger than {max} bytes: refused"
    ))
}

fn read_some(s: &mut TcpStream, buf: &mut [u8], deadline: Instant, url: &Url) -> Result<usize> {
    if Instant::now() > deadline {
        return Err(net_err(url, "the server is too slow (time limit reached)"));
    }
    match s.read(buf) {
        Ok(n) => Ok(n),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(net_err(url, "no answer in time"))
        }
        Err(e) => Err(net_err(url, e)),
    }
}

/// Decodes a chunked body (extensions and trailers ignored); `None` when malformed.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let i = memchr::memmem::find(b, b"\r\n")?;
        let size_txt = std::str::from_utf8(&b[..i]).ok()?;
        let size = usize::from_str_radix(size_txt.split(';').next()?.trim(), 16).ok()?;
        b = &b[i + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:47180/ca.crl").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 47180, "/ca.crl")
        );
        assert_eq!(Url::parse("http://ocsp.example").unwrap().path, "/");
        for bad in [
            "https://x/",
            "file:///etc/passwd",
            "ldap://x/",
            "http://u@x/",
            "http://x:99999/",
            "http:// x/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_silent_server_times_out() {
        // Accepts the connection and never answers: the read timeout must end the wait.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let c = l.accept();
            std::thread::sleep(Duration::from_secs(limits::REVOCATION_TIMEOUT_SECS + 2));
            drop(c);
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/x.crl")).unwrap();
        let t0 = Instant::now();
        let e = get(&url, 1000).unwrap_err();
        assert!(e.message().contains("no answer in time"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(limits::REVOCATION_TIMEOUT_SECS + 2));
        t.join().unwrap();
    }

    #[test]
    fn redirects_are_not_followed() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n",
            );
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/x.crl")).unwrap();
        let e = get(&url, 1000).unwrap_err();
        assert!(e.message().contains("redirects are not followed"), "{e}");
        t.join().unwrap();
    }

    #[test]
    fn chunked() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n1;x\r\nd\r\n0\r\n\r\n").unwrap(),
            b"abcd"
        );
        assert!(dechunk(b"5\r\nab").is_none());
    }
}
