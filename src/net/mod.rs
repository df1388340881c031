//! Network transport: the one TLS connector of the project ([`tls`]), plain TCP with deadlines
//! ([`Deadline`], [`connect_tcp`]), the SMTP submission client ([`smtp`]), the server checks of `check-server`
//! ([`check`], over the same connector) and a small DNS stub for `check-server --domain` ([`dns`]).
//!
//! Everything here is about the network and only commands about the network call it: nothing else in the
//! library opens a socket.

pub mod check;
pub mod dns;
pub mod smtp;
pub mod tls;

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// A point in time after which every read, write and connect fails: a server that drips one byte a
/// second cannot hold the client longer than the whole exchange is allowed to take.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Instant,
    step: Duration,
}

impl Deadline {
    /// A deadline `total` from now; each single wait is also capped at `step`.
    pub fn new(total: Duration, step: Duration) -> Self {
        Deadline {
            end: Instant::now() + total,
            step,
        }
    }
    /// The time a single wait may take now: the step, or less when the deadline is nearer; `None` once
    /// it has passed.
    pub fn remaining(&self) -> Option<Duration> {
        let left = self.end.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        Some(left.min(self.step))
    }
}

/// A TCP stream whose every read and write is bounded by a [`Deadline`]; wrapped by TLS so that the
/// handshake is bounded too.
#[derive(Debug)]
pub struct TimedStream {
    tcp: TcpStream,
    deadline: Deadline,
}

impl TimedStream {
    /// Wraps a connected stream.
    pub fn new(tcp: TcpStream, deadline: Deadline) -> Self {
        TimedStream { tcp, deadline }
    }
    /// The underlying socket (e.g. to check whether the peer already sent bytes).
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }
    fn arm(&self, read: bool) -> io::Result<()> {
        let t = self.deadline.remaining().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the time allowed for the exchange ran out",
            )
        })?;
        if read {
            self.tcp.set_read_timeout(Some(t))
        } else {
            self.tcp.set_write_timeout(Some(t))
        }
    }
}

impl Read for TimedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(true)?;
        self.tcp.read(buf).map_err(timeout_kind)
    }
}

impl Write for TimedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(false)?;
        self.tcp.write(buf).map_err(timeout_kind)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// On Linux a socket timeout is `WouldBlock`; call it what it is.
fn timeout_kind(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "the server did not answer in time")
    } else {
        e
    }
}

/// Connects to `host:port`, trying each resolved address with a bounded wait.
pub fn connect_tcp(host: &str, port: u16, deadline: &Deadline) -> Result<TimedStream> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            Error::new(ErrorKind::Network, format!("cannot resolve {host}: {e}"))
                .hint("check the server name")
        })?
        .collect();
    let mut last = None;
    for a in addrs {
        let Some(t) = deadline.remaining() else { break };
        match TcpStream::connect_timeout(&a, t) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(TimedStream::new(s, *deadline));
            }
            Err(e) => last = Some(e),
        }
    }
    let why = last.map_or_else(|| "no address".to_string(), |e| e.to_string());
    Err(Error::new(
        ErrorKind::Network,
        format!("cannot connect to {host}:{port}: {why}"),
    )
    .hint("check the server name and port, and that the server is reachable"))
}

/// The error for an I/O failure while talking to `server` during `what`.
pub fn io_error(server: &str, what: &str, e: io::Error) -> Error {
    let (msg, hint) = if e.kind() == io::ErrorKind::TimedOut {
        (
            format!("{server}: no answer in time during {what}"),
            "check the server name and port; a slow server may need a longer --timeout",
        )
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        (
            format!("{server}: the server closed the connection during {what}"),
            "try again later; `smimekit check-server` shows whether the server works",
        )
    } else {
        (
            format!("{server}: connection failed during {what}: {e}"),
            "check the network and try again",
        )
    };
    Error::new(ErrorKind::Network, msg).hint(hint)
}
