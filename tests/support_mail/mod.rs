//! Test mail servers on loopback: a real Postfix (submission on an implicit-TLS port and a STARTTLS port,
//! SASL through Dovecot, delivery to Maildirs the test reads) and a scripted hostile SMTP server.
//!
//! Use from a test file with `mod common; mod support_mail;`. Everything binds 127.0.0.1 high ports, every wait
//! has a timeout, and everything is stopped on drop (also on panic).
//!
//! Certificates come from `fixtures/server/` (made by `fixtures/make-server-pki.py`): `ca.pem` is the CA
//! the client must be given (`--ca`), `localhost.pem` the good server certificate (SAN localhost, 127.0.0.1).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common;

/// The addresses Postfix delivers to, and their Maildir names (the fixture IDs' addresses, and two without
/// certificates).
pub const MAILBOXES: &[(&str, &str)] = &[
    ("alice@example.com", "alice"),
    ("bob@example.org", "bob"),
    ("carol@example.net", "carol"),
    ("dave@example.test", "dave"),
    ("erin@example.test", "erin"),
];
/// The SASL user.
pub const LOGIN_USER: &str = "alice@example.com";
/// The login secret of [`LOGIN_USER`].
pub const LOGIN_SECRET: &str = "alice-login-secret";

/// Path of a server certificate fixture.
pub fn server_fixture(name: &str) -> PathBuf {
    common::fixture(&format!("server/{name}"))
}

/// A free TCP port on 127.0.0.1 (bound and released; the tiny race is acceptable in tests).
pub use crate::common::free_port;

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A private Postfix + Dovecot (SASL only) instance.
pub struct Postfix {
    pub dir: tempfile::TempDir,
    /// Submission with implicit TLS.
    pub implicit_port: u16,
    /// Submission with STARTTLS (required by the server too).
    pub starttls_port: u16,
    dovecot: Option<Child>,
    started: bool,
}

impl Postfix {
    /// The programs needed; call `common::have(Postfix::TOOLS)` first.
    pub const TOOLS: &'static [&'static str] = &["postfix", "dovecot"];

    /// Starts Postfix and Dovecot with private configuration, queue and state folders. Must run as root (Postfix
    /// and Dovecot drop privileges themselves).
    pub fn start() -> Postfix {
        let dir = tempfile::Builder::new()
            .prefix("smimekit-postfix-")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();
        let ds = d.display().to_string();
        use std::os::unix::fs::PermissionsExt;
        // Postfix's and Dovecot's unprivileged users must reach the queue and the mail folders.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["etc", "queue", "data", "mail", "dcrun", "dcstate"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        chown(&d.join("data"), "postfix:postfix");
        chown(&d.join("mail"), "nobody:nogroup");
        let implicit_port = free_port();
        let starttls_port = free_port();
        let key = server_fixture("localhost.key");
        let chain = server_fixture("localhost-chain.pem");
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {ds}/queue
data_directory = {ds}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.example.test
mydestination =
mynetworks = 127.0.0.1/32
relayhost =
maillog_file = {ds}/maillog
maillog_file_prefixes = {ds}
smtpd_tls_chain_files = {key}, {chain}
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
virtual_mailbox_domains = example.com, example.org, example.net, example.test
virtual_mailbox_base = {ds}/mail
virtual_mailbox_maps = texthash:{ds}/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
biff = no
smtputf8_enable = yes
message_size_limit = 20480000
",
            key = key.display(),
            chain = chain.display()
        );
        std::fs::write(d.join("etc/main.cf"), main_cf).unwrap();
        let vmail: String = MAILBOXES
            .iter()
            .map(|(a, d)| format!("{a} {d}/\n"))
            .collect();
        std::fs::write(d.join("etc/vmailbox"), vmail).unwrap();
        // Only the two submission listeners, on loopback; no port 25.
        let master_cf = format!(
            "127.0.0.1:{implicit_port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes
127.0.0.1:{starttls_port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"
        );
        std::fs::write(d.join("etc/master.cf"), master_cf).unwrap();
        std::fs::write(
            d.join("etc/users"),
            format!("{LOGIN_USER}:{{PLAIN}}{LOGIN_SECRET}\n"),
        )
        .unwrap();
        let dovecot_conf = format!(
            "protocols =
listen = 127.0.0.1
base_dir = {ds}/dcrun
state_dir = {ds}/dcstate
log_path = {ds}/dovecot.log
ssl = no
auth_mechanisms = plain login
disable_plaintext_auth = no
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {ds}/etc/users
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}}
service auth {{
  unix_listener {ds}/queue/private/auth {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
"
        );
        std::fs::write(d.join("etc/dovecot.conf"), dovecot_conf).unwrap();
        let mut pf = Postfix {
            dir,
            implicit_port,
            starttls_port,
            dovecot: None,
            started: false,
        };
        // `postfix check` creates the queue folders with their owners; then start the master daemon.
        let etc = d.join("etc");
        for verb in ["check", "start"] {
            let out = Command::new(common::tool_path("postfix").unwrap())
                .arg("-c")
                .arg(&etc)
                .arg(verb)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            pf.started |= verb == "start";
            assert!(
                out.status.success(),
                "postfix {verb} failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(d.join("maillog")).unwrap_or_default()
            );
        }
        let mut dc = Command::new(common::tool_path("dovecot").unwrap());
        dc.arg("-F")
            .arg("-c")
            .arg(d.join("etc/dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        use std::os::unix::process::CommandExt;
        dc.process_group(0);
        pf.dovecot = Some(dc.spawn().unwrap());
        let auth = d.join("queue/private/auth");
        wait_until("Dovecot's auth socket", Duration::from_secs(15), || {
            auth.exists()
        });
        for p in [implicit_port, starttls_port] {
            wait_until(
                "Postfix's submission ports",
                Duration::from_secs(15),
                || TcpStream::connect(("127.0.0.1", p)).is_ok(),
            );
        }
        pf
    }

    /// The messages delivered to `user` (its Maildir `new/`), oldest first.
    pub fn delivered(&self, user: &str) -> Vec<Vec<u8>> {
        let dir = self.dir.path().join("mail").join(user).join("new");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Waits (up to 15 s) until `user` has `n` messages, and returns them.
    pub fn wait_delivered(&self, user: &str, n: usize) -> Vec<Vec<u8>> {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.delivered(user);
            if got.len() >= n {
                return got;
            }
            if Instant::now() > end {
                panic!(
                    "{user}: {} of {n} messages delivered; Postfix log:\n{}",
                    got.len(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Postfix's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }
}

fn chown(p: &Path, owner: &str) {
    let ok = Command::new("chown")
        .arg(owner)
        .arg(p)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "chown {owner} {} failed (the mail tests run as root)",
        p.display()
    );
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if self.started {
            let etc = self.dir.path().join("etc");
            let _ = Command::new(common::tool_path("postfix").unwrap())
                .arg("-c")
                .arg(&etc)
                .arg("abort")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // The master may outlive `abort` briefly; kill it by its pid file.
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("queue/pid/master.pid"))
                && let Ok(pid) = pid.trim().parse::<i32>()
            {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if let Some(c) = &mut self.dovecot {
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

// ------------------------------------------------------------------------------------------------------
// The scripted hostile server.

/// Everything the client sent (decrypted bytes once in TLS), shared with the test.
#[derive(Clone, Default)]
pub struct Transcript(Arc<Mutex<Vec<u8>>>);

impl Transcript {
    /// The bytes received so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
    /// As text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
    /// True when the client sent a command starting with `cmd` (case-insensitive) at a line start.
    pub fn has_command(&self, cmd: &str) -> bool {
        self.text().lines().any(|l| {
            l.to_ascii_uppercase()
                .starts_with(&cmd.to_ascii_uppercase())
        })
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<openssl::ssl::SslStream<TcpStream>>),
    None,
}

/// One client connection seen by a hostile script.
pub struct Conn {
    io: Io,
    log: Transcript,
    buf: Vec<u8>,
}

impl Conn {
    /// Sends raw bytes (in one write: one TCP segment for small data, as nodelay is set).
    pub fn send(&mut self, b: &[u8]) {
        let _ = match &mut self.io {
            Io::Plain(s) => s.write_all(b).and_then(|_| s.flush()),
            Io::Tls(s) => s.write_all(b).and_then(|_| s.flush()),
            Io::None => Ok(()),
        };
    }
    /// Reads one line from the client (None on close or after 10 s); it is added to the transcript.
    pub fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let l: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&l).trim_end().to_string());
            }
            let mut b = [0u8; 4096];
            let n = match &mut self.io {
                Io::Plain(s) => s.read(&mut b),
                Io::Tls(s) => s.read(&mut b),
                Io::None => return None,
            };
            match n {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    self.log.0.lock().unwrap().extend_from_slice(&b[..n]);
                    self.buf.extend_from_slice(&b[..n]);
                }
            }
        }
    }
    /// Reads lines until one starts with `prefix` (case-insensitive); false on close.
    pub fn expect(&mut self, prefix: &str) -> bool {
        while let Some(l) = self.line() {
            if l.to_ascii_uppercase()
                .starts_with(&prefix.to_ascii_uppercase())
            {
                return true;
            }
        }
        false
    }
    /// Starts TLS as the server with `fixtures/server/CERT.pem` + `.key`; `max` caps the version (and
    /// allows TLS 1.0) for the old-TLS case. False when the handshake failed.
    pub fn tls(&mut self, cert: &str, max: Option<openssl::ssl::SslVersion>) -> bool {
        use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVersion};
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::None) else {
            return false;
        };
        let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        a.set_certificate_chain_file(server_fixture(&format!("{cert}.pem")))
            .unwrap();
        a.set_private_key_file(server_fixture(&format!("{cert}.key")), SslFiletype::PEM)
            .unwrap();
        if max.is_some() {
            a.set_security_level(0);
            a.set_cipher_list("DEFAULT:@SECLEVEL=0").unwrap();
            a.set_min_proto_version(Some(SslVersion::TLS1)).unwrap();
            a.set_max_proto_version(max).unwrap();
        }
        match a.build().accept(tcp) {
            Ok(s) => {
                self.io = Io::Tls(Box::new(s));
                true
            }
            Err(_) => false,
        }
    }
    /// Reads everything until the client closes (or 10 s pass).
    pub fn drain(&mut self) {
        while self.line().is_some() {}
    }
}

/// A one-connection scripted SMTP server on 127.0.0.1; the script runs on a thread.
pub struct Hostile {
    pub port: u16,
    pub transcript: Transcript,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hostile {
    /// Starts a server that runs `script` on the first connection.
    pub fn start(script: impl FnOnce(&mut Conn) + Send + 'static) -> Hostile {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let transcript = Transcript::default();
        let log = transcript.clone();
        let thread = std::thread::spawn(move || {
            l.set_nonblocking(true).unwrap();
            let end = Instant::now() + Duration::from_secs(30);
            let tcp = loop {
                match l.accept() {
                    Ok((s, _)) => break s,
                    Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => return,
                }
            };
            tcp.set_nonblocking(false).unwrap();
            tcp.set_nodelay(true).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            tcp.set_write_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut c = Conn {
                io: Io::Plain(tcp),
                log,
                buf: Vec::new(),
            };
            script(&mut c);
        });
        Hostile {
            port,
            transcript,
            thread: Some(thread),
        }
    }

    /// Waits for the script to finish (at most ~30 s: every read in it times out).
    pub fn finish(mut self) -> Transcript {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.transcript.clone()
    }
}

/// A plain greeting and an EHLO answer with `caps` (each line without the `250-` prefix).
pub fn greet_and_ehlo(c: &mut Conn, caps: &[&str]) -> bool {
    c.send(b"220 hostile.example.test ESMTP\r\n");
    if !c.expect("EHLO") {
        return false;
    }
    let mut r = String::new();
    let all: Vec<&str> = std::iter::once("hostile.example.test")
        .chain(caps.iter().copied())
        .collect();
    for (i, l) in all.iter().enumerate() {
        let sep = if i + 1 == all.len() { ' ' } else { '-' };
        r += &format!("250{sep}{l}\r\n");
    }
    c.send(r.as_bytes());
    true
}

/// A well-behaved server dialogue inside TLS, accepting any AUTH and mail (used after the hostile part,
/// so that a client that wrongly continues is seen doing so in the transcript).
pub fn accept_everything(c: &mut Conn) {
    while let Some(l) = c.line() {
        let u = l.to_ascii_uppercase();
        if u.starts_with("EHLO") {
            c.send(b"250-hostile.example.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n");
        } else if u.starts_with("AUTH") {
            c.send(b"235 2.7.0 ok\r\n");
        } else if u.starts_with("DATA") {
            c.send(b"354 go\r\n");
            while let Some(d) = c.line() {
                if d == "." {
                    break;
                }
            }
            c.send(b"250 2.0.0 Ok: queued as HOSTILE1\r\n");
        } else if u.starts_with("QUIT") {
            c.send(b"221 bye\r\n");
            return;
        } else {
            c.send(b"250 ok\r\n");
        }
    }
}
