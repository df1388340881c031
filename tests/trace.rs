//! `smimekit trace`: the binary on hand-written header sections (verdicts, exit codes, JSON, --trust-from) and
//! on a message really relayed through two Postfix instances on 127.0.0.1 (one hop with TLS, one in clear).

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            common::text(&out.stdout),
            common::text(&out.stderr)
        )
    })
}

const ALL_TLS: &str = "Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n\
\tby store.example.org with LMTPS id JKL012; Tue, 8 Dec 2026 00:10:05 +0000\r\n\
Received: from mail.sender.example (mail.sender.example [192.0.2.10])\r\n\
\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n\
\t(No client certificate requested)\r\n\
\tby mx.example.org (Postfix) with ESMTPS id 4Q7ZxK3bV1z9sWd\r\n\
\tfor <bob@example.org>; Tue, 8 Dec 2026 00:10:00 +0000 (UTC)\r\n\
Received: from [192.168.1.20] (unknown [203.0.113.5])\r\n\
\t(Authenticated sender: alice@sender.example)\r\n\
\tby mail.sender.example (Postfix) with ESMTPSA id 9F8E7D6C5B\r\n\
\tfor <bob@example.org>; Tue, 8 Dec 2026 00:09:57 +0000 (UTC)\r\n\
From: alice@sender.example\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nbody\r\n";

#[test]
fn trace_all_tls_exit_0_with_delays_and_auth() {
    let env = Env::new();
    let f = env.path("m.eml");
    std::fs::write(&f, ALL_TLS).unwrap();
    let out = env.run(&["trace", "--json", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out.stderr));
    let v = json(&out);
    assert_eq!(v["verdict"], "all_tls");
    let hops = v["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 3);
    // Travel order: the bottom field is hop 1.
    assert_eq!(hops[0]["by"], "mail.sender.example");
    assert_eq!(hops[0]["authenticated"], true);
    assert_eq!(hops[1]["tls_version"], "TLSv1.3");
    assert_eq!(hops[1]["tls_cipher"], "TLS_AES_256_GCM_SHA384");
    assert_eq!(hops[1]["delay_seconds"], 3);
    assert_eq!(hops[2]["with"], "LMTPS");
    assert_eq!(hops[2]["delay_seconds"], 5);
    // Text output says the same.
    let out = env.run(&["trace", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let t = common::text(&out.stdout);
    assert!(t.contains("every recorded hop used TLS"), "{t}");
    assert!(t.contains("could be forged"), "{t}");
}

#[test]
fn trace_plain_hop_exit_1_names_it_and_trust_from_marks_claims() {
    let env = Env::new();
    let msg = ALL_TLS.replace(
        "\tby mx.example.org (Postfix) with ESMTPS",
        "\tby mx.example.org (Postfix) with ESMTP",
    );
    let msg = msg.replace("\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n", "");
    let out = env.run_stdin(&["trace", "--json", "--trust-from", "MX.example.org"], msg.as_bytes());
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out.stderr));
    let v = json(&out);
    assert_eq!(v["verdict"], "no_tls");
    assert_eq!(
        v["verdict_text"],
        "hop 2 (mail.sender.example → mx.example.org) recorded no TLS"
    );
    assert_eq!(v["trusted_from_hop"], 2);
    assert_eq!(v["hops"][0]["trust"], "claim");
    assert_eq!(v["hops"][1]["trust"], "trusted");
    assert_eq!(v["hops"][2]["trust"], "trusted");
}

#[test]
fn trace_unknown_hop_exit_1_and_no_received_exit_2() {
    let env = Env::new();
    let msg = "Received: from relay.example.net ([198.51.100.7]) by filter.example.org; Tue, 8 Dec 2026 00:10:00 +0000\r\nSubject: x\r\n\r\nb\r\n";
    let out = env.run_stdin(&["trace", "--json"], msg.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["verdict"], "unknown");
    assert!(v["verdict_text"].as_str().unwrap().starts_with("unknown for hop 1"));

    let out = env.run_stdin(&["trace"], b"Subject: draft\r\n\r\nbody\r\n");
    assert_eq!(out.status.code(), Some(2));
    let e = common::text(&out.stderr);
    assert!(e.contains("smimekit: error: the message has no Received header fields"), "{e}");
    assert!(e.contains("smimekit: hint:"), "{e}");
}

// ---- two real Postfix instances ----

const MASTER: &str = "/usr/lib/postfix/sbin/master";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One Postfix instance (its own config and queue under `dir`), killed with its process group on drop.
struct Postfix {
    child: Child,
    dir: PathBuf,
}

impl Postfix {
    fn start(dir: &Path, port: u16, main_cf: &str) -> Postfix {
        let uid = |name: &str| -> u32 {
            let o = Command::new("id").args(["-u", name]).output().unwrap();
            common::text(&o.stdout).trim().parse().unwrap()
        };
        let gid = |name: &str| -> u32 {
            let o = Command::new("getent").args(["group", name]).output().unwrap();
            common::text(&o.stdout).split(':').nth(2).unwrap().parse().unwrap()
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
            "incoming", "active", "deferred", "bounce", "defer", "flush", "hold", "corrupt", "trace",
            "saved", "private",
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
        let mut master = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
        for (n, s) in services {
            master += &format!("{n} {s}\n");
        }
        std::fs::write(conf.join("master.cf"), master).unwrap();
        use std::os::unix::process::CommandExt;
        let child = Command::new(MASTER)
            .args(["-c", conf.to_str().unwrap(), "-d"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let pf = Postfix {
            child,
            dir: dir.to_path_buf(),
        };
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "postfix in {} did not listen on {port}: {}",
                pf.dir.display(),
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pf
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) on the process group this test created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above; the group's helpers may outlive master.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

#[test]
fn trace_message_relayed_through_two_postfix_instances() {
    if !common::have(&[MASTER, "swaks"]) {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(!common::peers_required(), "the Postfix test needs root (CI runs as root)");
        common::say_once("postfix-root", "smimekit tests: the Postfix tests need root: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    // The virtual delivery agent runs as nobody: it must reach the mail folder.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (pa, pb) = (free_port(), free_port());
    let mail = tmp.path().join("b/mail");
    std::fs::create_dir_all(&mail).unwrap();
    std::os::unix::fs::chown(&mail, Some(65534), Some(65534)).unwrap();
    // B: final hop, in clear, delivers b.test to a maildir.
    let _b = Postfix::start(
        &tmp.path().join("b"),
        pb,
        &format!(
            "myhostname = b.test\nvirtual_mailbox_domains = b.test\nvirtual_mailbox_base = {}\n\
             virtual_mailbox_maps = static:box/\nvirtual_uid_maps = static:65534\n\
             virtual_gid_maps = static:65534\n",
            mail.display()
        ),
    );
    // A: takes the message over STARTTLS and records it, relays to B without TLS.
    let pki = common::fixture("server-pki");
    let _a = Postfix::start(
        &tmp.path().join("a"),
        pa,
        &format!(
            "myhostname = a.test\nrelayhost = [127.0.0.1]:{pb}\nsmtpd_tls_security_level = may\n\
             smtpd_tls_chain_files = {}, {}\nsmtpd_tls_received_header = yes\n\
             smtp_tls_security_level = none\n",
            pki.join("good.key").display(),
            pki.join("good-chain.pem").display()
        ),
    );
    let (code, _, err) = common::external(
        "swaks",
        &[
            "--server",
            &format!("127.0.0.1:{pa}"),
            "--tls",
            "--helo",
            "client.test",
            "--from",
            "alice@client.test",
            "--to",
            "bob@b.test",
            "--header",
            "Subject: trace test",
            "--timeout",
            "15",
        ],
        None,
    );
    assert_eq!(code, 0, "swaks: {err}");
    let new = mail.join("box/new");
    let t0 = Instant::now();
    let file = loop {
        if let Some(f) = std::fs::read_dir(&new)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
        {
            break f.path();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no delivery: A log:\n{}\nB log:\n{}",
            std::fs::read_to_string(tmp.path().join("a/log")).unwrap_or_default(),
            std::fs::read_to_string(tmp.path().join("b/log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let env = Env::new();
    let out = env.run(&["trace", "--json", file.to_str().unwrap()]);
    let v = json(&out);
    let raw = std::fs::read_to_string(&file).unwrap();
    let ctx = format!("{raw}\n{v:#}");
    assert_eq!(out.status.code(), Some(1), "{ctx}");
    let hops = v["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 2, "{ctx}");
    assert_eq!(hops[0]["from"], "client.test", "{ctx}");
    assert_eq!(hops[0]["from_ip"], "127.0.0.1", "{ctx}");
    assert_eq!(hops[0]["by"], "a.test", "{ctx}");
    assert_eq!(hops[0]["with"], "ESMTPS", "{ctx}");
    assert_eq!(hops[0]["tls"], "yes", "{ctx}");
    assert_eq!(hops[0]["tls_version"], "TLSv1.3", "{ctx}");
    assert!(hops[0]["tls_cipher"].as_str().unwrap().starts_with("TLS_"), "{ctx}");
    assert_eq!(hops[1]["from"], "a.test", "{ctx}");
    assert_eq!(hops[1]["by"], "b.test", "{ctx}");
    assert_eq!(hops[1]["with"], "ESMTP", "{ctx}");
    assert_eq!(hops[1]["tls"], "no", "{ctx}");
    assert!(hops[1]["delay_seconds"].as_i64().unwrap() >= 0, "{ctx}");
    assert_eq!(v["verdict"], "no_tls", "{ctx}");
    assert_eq!(v["verdict_text"], "hop 2 (a.test → b.test) recorded no TLS", "{ctx}");
    // Trusting B: A's field is a claim.
    let out = env.run(&["trace", "--json", "--trust-from", "b.test", file.to_str().unwrap()]);
    let v = json(&out);
    assert_eq!(v["hops"][0]["trust"], "claim");
    assert_eq!(v["hops"][1]["trust"], "trusted");
}
