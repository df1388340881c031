//! Mail servers for the network tests, on 127.0.0.1 high ports, each stopped with its process group on drop:
//! Postfix (one master, several smtpd ports), Dovecot (IMAP/POP3, STARTTLS and implicit TLS), `openssl
//! s_server`. Included by the test files that need them (`#[path = "mailservers/mod.rs"] mod mailservers;`).
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;

/// Whether we run as root (Postfix and Dovecot need it). Not root: skip with one line, or fail under
/// SMIMEKIT_REQUIRE_PEERS=1 (CI runs as root).
pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        !common::peers_required(),
        "the Postfix/Dovecot tests need root, and SMIMEKIT_REQUIRE_PEERS=1 makes skipping a failure"
    );
    common::say_once(
        "mailservers-root",
        "smimekit tests: the Postfix/Dovecot tests need root: skipped",
    );
    false
}

/// Waits (at most 15 s) until 127.0.0.1:`port` accepts; on timeout panics with the server's log.
pub fn wait_port(port: u16, log: &Path) {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "server did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills the process group of `child` (TERM, up to 5 s, then KILL) and reaps it.
pub fn stop_group(child: &mut Child) {
    let pgid = child.id() as i32;
    // SAFETY: kill(2) on the process group the test created.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above; helpers may outlive the leader.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

fn spawn_group(cmd: &mut Command) -> Child {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

pub const MASTER: &str = "/usr/lib/postfix/sbin/master";

pub use crate::common::free_port;

/// One Postfix instance (its own config and queue under `dir`), killed with its process group on drop.
pub struct Postfix {
    child: Child,
    dir: PathBuf,
}

impl Postfix {
    /// Starts master in `dir` with one smtpd per `(port, options)` (options: `-o name=value …` for that
    /// service) and `main_cf` appended to the common settings; waits until every port accepts.
    pub fn start(dir: &Path, smtpd: &[(u16, &str)], main_cf: &str) -> Postfix {
        let uid = |name: &str| -> u32 {
            let o = Command::new("id").args(["-u", name]).output().unwrap();
            common::text(&o.stdout).trim().parse().unwrap()
        };
        let gid = |name: &str| -> u32 {
            let o = Command::new("getent")
                .args(["group", name])
                .output()
                .unwrap();
            common::text(&o.stdout)
                .split(':')
                .nth(2)
                .unwrap()
                .parse()
                .unwrap()
        };
        let (pf, postdrop) = (uid("postfix"), gid("postdrop"));
        let conf = dir.join("conf");
        let queue = dir.join("queue");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(queue.join("pid")).unwrap();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::os::unix::fs::chown(dir.join("data"), Some(pf), None).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for d in [
            "incoming", "active", "deferred", "bounce", "defer", "flush", "hold", "corrupt",
            "trace", "saved", "private",
        ] {
            let p = queue.join(d);
            std::fs::create_dir_all(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(pf), None).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        for (d, mode) in [("maildrop", 0o730), ("public", 0o710)] {
            let p = queue.join(d);
            std::fs::create_dir_all(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(pf), Some(postdrop)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let d = dir.display();
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {d}/queue\ndata_directory = {d}/data\n\
                 mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\nmynetworks = 127.0.0.0/8\nmydestination =\nalias_maps =\n\
                 alias_database =\nbiff = no\nsmtputf8_enable = no\nmaillog_file = {d}/log\n\
                 maillog_file_prefixes = {d}\nsmtp_dns_support_level = disabled\n\
                 disable_dns_lookups = yes\n{main_cf}"
            ),
        )
        .unwrap();
        let services = [
            ("cleanup", "unix n - n - 0 cleanup"),
            ("qmgr", "unix n - n 1 1 qmgr"),
            ("tlsmgr", "unix - - n 1000? 1 tlsmgr"),
            ("rewrite", "unix - - n - - trivial-rewrite"),
            ("bounce", "unix - - n - 0 bounce"),
            ("defer", "unix - - n - 0 bounce"),
            ("trace", "unix - - n - 0 bounce"),
            ("verify", "unix - - n - 1 verify"),
            ("flush", "unix n - n 1000? 0 flush"),
            ("proxymap", "unix - - n - - proxymap"),
            ("smtp", "unix - - n - - smtp"),
            ("relay", "unix - - n - - smtp"),
            ("showq", "unix n - n - - showq"),
            ("error", "unix - - n - - error"),
            ("retry", "unix - - n - - error"),
            ("discard", "unix - - n - - discard"),
            ("virtual", "unix - n n - - virtual"),
            ("anvil", "unix - - n - 1 anvil"),
            ("scache", "unix - - n - 1 scache"),
            ("postlog", "unix-dgram n - n - 1 postlogd"),
        ];
        let mut master = String::new();
        for (port, o) in smtpd {
            master += &format!("127.0.0.1:{port} inet n - n - - smtpd {o}\n");
        }
        for (n, s) in services {
            master += &format!("{n} {s}\n");
        }
        std::fs::write(conf.join("master.cf"), master).unwrap();
        let child = spawn_group(Command::new(MASTER).args(["-c", conf.to_str().unwrap(), "-d"]));
        let pf = Postfix {
            child,
            dir: dir.to_path_buf(),
        };
        for (port, _) in smtpd {
            wait_port(*port, &dir.join("log"));
        }
        pf
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// Dovecot with IMAP and POP3 on four ports (imap, imaps, pop3, pop3s), certificate `chain` + `key`.
pub struct Dovecot {
    child: Child,
    /// The ports: imap (STARTTLS), imaps, pop3 (STLS), pop3s.
    pub ports: [u16; 4],
}

impl Dovecot {
    /// Starts `dovecot -F` with its base, state and log in `dir`.
    pub fn start(dir: &Path, chain: &Path, key: &Path) -> Dovecot {
        let ports = [free_port(), free_port(), free_port(), free_port()];
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let d = dir.display();
        let conf = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/log\ninfo_log_path = {d}/log\n\
             protocols = imap pop3\nlisten = 127.0.0.1\nssl = required\nssl_cert = <{}\nssl_key = <{}\n\
             ssl_min_protocol = TLSv1.2\ndisable_plaintext_auth = yes\nauth_mechanisms = plain\n\
             default_internal_user = dovecot\ndefault_login_user = dovenull\nmail_location = maildir:{d}/mail\n\
             passdb {{\n driver = static\n args = password=secret\n}}\n\
             userdb {{\n driver = static\n args = uid=65534 gid=65534 home={d}/home\n}}\n\
             service imap-login {{\n inet_listener imap {{\n port = {}\n }}\n inet_listener imaps {{\n port = {}\n ssl = yes\n }}\n}}\n\
             service pop3-login {{\n inet_listener pop3 {{\n port = {}\n }}\n inet_listener pop3s {{\n port = {}\n ssl = yes\n }}\n}}\n\
             service anvil {{\n chroot =\n}}\n",
            chain.display(),
            key.display(),
            ports[0],
            ports[1],
            ports[2],
            ports[3]
        );
        let cf = dir.join("dovecot.conf");
        std::fs::write(&cf, conf).unwrap();
        let child = spawn_group(Command::new("dovecot").args(["-F", "-c", cf.to_str().unwrap()]));
        for p in ports {
            wait_port(p, &dir.join("log"));
        }
        Dovecot { child, ports }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// `openssl s_server` on a free port with `args`, ready when it prints ACCEPT.
pub struct SServer {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl SServer {
    /// Starts `openssl s_server -accept 127.0.0.1:PORT ARGS…` (relative file names in `pki`).
    pub fn start(pki: &Path, args: &[&str]) -> SServer {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let mut child = Command::new("openssl")
            .arg("s_server")
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .args(args)
            .current_dir(pki)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        // s_server prints "ACCEPT" once listening; read it on a thread so a silent failure cannot hang us.
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(out);
            let mut l = String::new();
            while r.read_line(&mut l).is_ok_and(|n| n > 0) {
                if l.contains("ACCEPT") {
                    let _ = tx.send(());
                }
                l.clear();
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(10)).is_ok();
        let s = SServer { child, port };
        assert!(ready, "openssl s_server {args:?} did not start");
        s
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// dnsmasq answering only from its command line (no upstream, no /etc/hosts) on 127.0.0.1:`port`.
pub struct Dnsmasq {
    child: Child,
    /// Its port (UDP and TCP).
    pub port: u16,
}

impl Dnsmasq {
    /// Starts dnsmasq with `records` (options such as `--mx-host=…`, `--srv-host=…`, `--dns-rr=…`).
    pub fn start(records: &[String]) -> Dnsmasq {
        let port = free_port();
        let child = spawn_group(
            Command::new("dnsmasq")
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    &format!("--port={port}"),
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--no-poll",
                    "--pid-file=",
                    "--user=nobody",
                    "--group=nogroup",
                ])
                .args(records),
        );
        wait_port(port, Path::new("/dev/null"));
        Dnsmasq { child, port }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}
