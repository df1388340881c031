//! `smimekit send` against a scripted hostile SMTP server on loopback: the "NO STARTTLS" client cases
//! (O_1, O_2–O_4, D_1, B_1, X_1), certificates (T_1–T_4), old TLS, post-TLS state (T56), a server that closes
//! mid-DATA, one that never answers and one that drips. Each: exit 2, a clear reason, and — except where the
//! server is genuine and TLS-verified — no credential and no message leaves the client.

mod common;
mod support_mail;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use support_mail::*;

const SECRET: &str = "hostile-test-login-secret";

/// Runs `smimekit send` of a small message to 127.0.0.1:`port` with a user and login secret.
fn send(e: &Env, port: u16, tls: &str, extra: &[&str]) -> std::process::Output {
    let msg = e.write_file(
        "m.eml",
        b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: secret plans\r\n\r\nTOP-SECRET-BODY\r\n",
    );
    let login = e.write_file("login", SECRET.as_bytes());
    let server = format!("127.0.0.1:{port}");
    let ca = fx("server/ca.pem");
    let mut args = vec![
        "send",
        s(&msg),
        "--plain",
        "--server",
        &server,
        "--tls",
        tls,
        "--ca",
        &ca,
        "--user",
        "alice@example.com",
        "--login-file",
        s(&login),
    ];
    if !extra.contains(&"--timeout") {
        args.extend_from_slice(&["--timeout", "3"]);
    }
    args.extend_from_slice(extra);
    e.run(&args)
}

/// Nothing secret or message-like reached the server, and the client failed with `reason`.
fn assert_refused(o: &std::process::Output, t: &Transcript, reason: &str) {
    let err = text(&o.stderr);
    eprintln!("[{reason}] {err}");
    assert_eq!(
        o.status.code(),
        Some(2),
        "stderr: {err}\nserver saw: {}",
        t.text()
    );
    assert!(
        err.to_lowercase().contains(&reason.to_lowercase()),
        "expected {reason:?} in: {err}"
    );
    assert!(err.contains("smimekit: hint:"), "no hint: {err}");
    assert!(
        err.contains("nothing was sent"),
        "does not say nothing was sent: {err}"
    );
    let seen = t.text();
    for cmd in ["AUTH", "MAIL", "RCPT", "DATA"] {
        assert!(!t.has_command(cmd), "the client sent {cmd}: {seen}");
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    for needle in [
        SECRET.to_string(),
        b64.encode(SECRET),
        b64.encode(format!("\0alice@example.com\0{SECRET}")),
        "TOP-SECRET-BODY".to_string(),
    ] {
        assert!(!seen.contains(&needle), "leaked {needle:?}: {seen}");
    }
}

fn starttls_caps_then(reply: &'static [u8]) -> Hostile {
    Hostile::start(move |c| {
        if !greet_and_ehlo(c, &["PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN"]) {
            return;
        }
        if c.expect("STARTTLS") {
            c.send(reply);
            // A client that wrongly goes on is recorded.
            accept_everything(c);
        }
    })
}

#[test]
fn o1_auth_offered_without_starttls() {
    let e = Env::new();
    let h = Hostile::start(|c| {
        if greet_and_ehlo(c, &["AUTH PLAIN LOGIN", "8BITMIME"]) {
            accept_everything(c);
        }
    });
    let o = send(&e, h.port, "starttls", &[]);
    assert_refused(&o, &h.finish(), "does not offer STARTTLS");
}

#[test]
fn o2_o4_starttls_refused_502_454_354() {
    for (reply, code) in [
        (&b"502 5.5.1 not implemented\r\n"[..], "502"),
        (&b"454 4.7.0 TLS not available\r\n"[..], "454"),
        (&b"354 go ahead\r\n"[..], "354"),
    ] {
        let e = Env::new();
        let h = starttls_caps_then(reply);
        let o = send(&e, h.port, "starttls", &[]);
        let t = h.finish();
        assert_refused(&o, &t, "refused STARTTLS");
        assert!(text(&o.stderr).contains(code));
    }
}

#[test]
fn d1_hidden_ehlo_no_helo_fallback() {
    let e = Env::new();
    let h = Hostile::start(|c| {
        c.send(b"220 old.example.test SMTP\r\n");
        if c.expect("EHLO") {
            c.send(b"502 5.5.2 EHLO not recognized\r\n");
            accept_everything(c);
        }
    });
    let o = send(&e, h.port, "starttls", &[]);
    let t = h.finish();
    assert_refused(&o, &t, "does not answer EHLO");
    assert!(!t.has_command("HELO"), "fell back to HELO: {}", t.text());
}

#[test]
fn b1_response_injection_in_one_segment() {
    let e = Env::new();
    let h = Hostile::start(|c| {
        if !greet_and_ehlo(c, &["STARTTLS", "AUTH PLAIN LOGIN"]) {
            return;
        }
        if c.expect("STARTTLS") {
            c.send(b"220 Ready to start TLS\r\n250-x\r\n250 AUTH LOGIN\r\n");
            if c.tls("localhost", None) {
                accept_everything(c);
            }
        }
    });
    let o = send(&e, h.port, "starttls", &[]);
    assert_refused(&o, &h.finish(), "response injection");
}

#[test]
fn x1_many_auth_mechanisms_starttls_refused() {
    let e = Env::new();
    let mechs: String = (0..40)
        .map(|i| format!("X-MECH-{i}"))
        .chain(["PLAIN".into(), "LOGIN".into(), "CRAM-MD5".into()])
        .collect::<Vec<_>>()
        .join(" ");
    let h = Hostile::start(move |c| {
        let auth = format!("AUTH {mechs}");
        if !greet_and_ehlo(c, &["STARTTLS", &auth]) {
            return;
        }
        if c.expect("STARTTLS") {
            c.send(b"454 4.3.0 TLS temporarily unavailable\r\n");
            accept_everything(c);
        }
    });
    let o = send(&e, h.port, "starttls", &[]);
    assert_refused(&o, &h.finish(), "refused STARTTLS");
}

fn implicit_with(cert: &'static str, max: Option<openssl::ssl::SslVersion>) -> Hostile {
    Hostile::start(move |c| {
        if c.tls(cert, max) {
            c.send(b"220 tls.example.test ESMTP\r\n");
            accept_everything(c);
        }
    })
}

#[test]
fn t1_to_t4_certificates_are_refused_naming_the_check() {
    for (cert, reason) in [
        ("selfsigned", "self-signed"),
        ("unknown", "does not lead to a trusted root"),
        ("wrong", "not valid for this host name"),
        ("expired", "expired"),
    ] {
        let e = Env::new();
        let h = implicit_with(cert, None);
        let o = send(&e, h.port, "implicit", &[]);
        let t = h.finish();
        assert_refused(&o, &t, reason);
        let err = text(&o.stderr);
        assert!(err.contains("check-server"), "{cert}: {err}");
        assert!(
            err.contains("--insecure-accept-fingerprint"),
            "{cert}: {err}"
        );
    }
}

#[test]
fn t3_wrong_host_name_via_starttls_too() {
    let e = Env::new();
    let h = Hostile::start(|c| {
        if greet_and_ehlo(c, &["STARTTLS", "AUTH PLAIN"]) && c.expect("STARTTLS") {
            c.send(b"220 go ahead\r\n");
            if c.tls("wrong", None) {
                accept_everything(c);
            }
        }
    });
    let o = send(&e, h.port, "starttls", &[]);
    assert_refused(&o, &h.finish(), "not valid for this host name");
}

#[test]
fn accepted_fingerprint_is_the_only_exception() {
    // The self-signed server, with its fingerprint accepted explicitly: the exchange completes.
    let fp = {
        let pem = std::fs::read(fixture("server/selfsigned.pem")).unwrap();
        let c = openssl::x509::X509::from_pem(&pem).unwrap();
        let d = c.digest(openssl::hash::MessageDigest::sha256()).unwrap();
        d.iter().map(|b| format!("{b:02X}:")).collect::<String>()
    };
    let fp = fp.trim_end_matches(':').to_string();
    let e = Env::new();
    let h = implicit_with("selfsigned", None);
    let o = send(
        &e,
        h.port,
        "implicit",
        &["--insecure-accept-fingerprint", &fp],
    );
    let t = h.finish();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("HOSTILE1"), "{}", text(&o.stdout));
    assert!(t.has_command("AUTH PLAIN"));
    // A different fingerprint does not open the door.
    let e = Env::new();
    let h = implicit_with("selfsigned", None);
    let wrong = format!("00{}", &fp[2..]);
    let o = send(
        &e,
        h.port,
        "implicit",
        &["--insecure-accept-fingerprint", &wrong],
    );
    assert_refused(&o, &h.finish(), "self-signed");
}

#[test]
fn tls_1_0_and_1_1_only_servers_are_refused() {
    for v in [
        openssl::ssl::SslVersion::TLS1,
        openssl::ssl::SslVersion::TLS1_1,
    ] {
        let e = Env::new();
        let h = implicit_with("localhost", Some(v));
        let o = send(&e, h.port, "implicit", &[]);
        assert_refused(&o, &h.finish(), "older than 1.2");
    }
}

#[test]
fn t56_auth_only_before_tls_is_not_used() {
    // AUTH advertised in clear text only; the post-TLS EHLO omits it: the client must not log in.
    let e = Env::new();
    let h = Hostile::start(|c| {
        if greet_and_ehlo(c, &["STARTTLS", "AUTH PLAIN LOGIN"]) && c.expect("STARTTLS") {
            c.send(b"220 go ahead\r\n");
            if c.tls("localhost", None) && c.expect("EHLO") {
                c.send(b"250-tls.example.test\r\n250 8BITMIME\r\n");
                accept_everything(c);
            }
        }
    });
    let o = send(&e, h.port, "starttls", &[]);
    let t = h.finish();
    assert_refused(&o, &t, "offers no login (AUTH) inside TLS");
    assert_eq!(
        t.text().matches("EHLO").count(),
        2,
        "EHLO is said again after TLS: {}",
        t.text()
    );
}

#[test]
fn close_mid_data_is_not_sent() {
    let e = Env::new();
    let h = Hostile::start(|c| {
        if !c.tls("localhost", None) {
            return;
        }
        c.send(b"220 tls.example.test ESMTP\r\n");
        while let Some(l) = c.line() {
            let u = l.to_ascii_uppercase();
            if u.starts_with("EHLO") {
                c.send(b"250-tls.example.test\r\n250 AUTH PLAIN\r\n");
            } else if u.starts_with("AUTH") {
                c.send(b"235 ok\r\n");
            } else if u.starts_with("DATA") {
                c.send(b"354 go\r\n");
                let _ = c.line();
                return; // drop the connection in the middle of the message
            } else {
                c.send(b"250 ok\r\n");
            }
        }
    });
    let o = send(&e, h.port, "implicit", &[]);
    h.finish();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    // A write that fails is "not sent"; a message fully written whose confirmation never came is not claimed
    // either way (the server may have queued it).
    assert!(
        err.contains("not sent") || err.contains("may or may not have been sent"),
        "{err}"
    );
    assert!(text(&o.stdout).is_empty());
}

#[test]
fn a_server_that_never_answers_times_out() {
    let e = Env::new();
    let h = Hostile::start(|c| {
        // Accept and say nothing; the read below waits for the client to give up.
        let _ = c.line();
    });
    let t0 = Instant::now();
    let o = send(&e, h.port, "starttls", &["--timeout", "1"]);
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert_refused(&o, &h.finish(), "no answer in time");
}

#[test]
fn a_dripping_server_is_cut_off_by_the_total_deadline() {
    let e = Env::new();
    let h = Hostile::start(|c| {
        // One byte every 200 ms: no single wait times out, the whole exchange must.
        let end = Instant::now() + Duration::from_secs(20);
        let line = b"220-drip drip drip\r\n";
        'outer: while Instant::now() < end {
            for b in line {
                c.send(&[*b]);
                std::thread::sleep(Duration::from_millis(200));
                if Instant::now() > end {
                    break 'outer;
                }
            }
        }
    });
    let t0 = Instant::now();
    let o = send(&e, h.port, "starttls", &["--timeout", "1"]);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("in time"), "{}", text(&o.stderr));
    drop(h);
}

#[test]
fn injection_in_addresses_is_refused_before_connecting() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let e = Env::new();
    let server = format!("127.0.0.1:{port}");
    for to in ["bob@example.org>\r\nRCPT TO:<evil@x>", "bob@example.org\nx"] {
        let o = e.run_stdin(
            &[
                "send",
                "--server",
                &server,
                "--tls",
                "implicit",
                "--from",
                "alice@example.com",
                "--to",
                to,
                "--subject",
                "hi",
                "--plain",
            ],
            b"body\n",
        );
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("not a plain e-mail address"),
            "{}",
            text(&o.stderr)
        );
    }
    let o = e.run_stdin(
        &[
            "send",
            "--server",
            &server,
            "--tls",
            "implicit",
            "--from",
            "alice@example.com",
            "--to",
            "bob@example.org",
            "--subject",
            "hi\r\nBcc: evil@x",
            "--plain",
        ],
        b"body\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(l.accept().is_err(), "the client connected");
}

#[test]
fn dry_run_connects_to_nothing_and_shows_the_envelope() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let e = Env::new();
    let server = format!("127.0.0.1:{port}");
    let o = e.run_stdin(
        &[
            "send",
            "--dry-run",
            "--server",
            &server,
            "--tls",
            "implicit",
            "--from",
            "alice@example.com",
            "--to",
            "bob@example.org",
            "--bcc",
            "carol@example.net",
            "--subject",
            "hi",
            "--plain",
        ],
        b"body\n.\nmore\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("MAIL FROM:<alice@example.com>"), "{out}");
    assert!(out.contains("RCPT TO:<carol@example.net>"), "{out}");
    assert!(!out.to_ascii_lowercase().contains("bcc:"), "{out}");
    assert!(
        out.contains("Message-ID: <") && out.contains("Date: "),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(l.accept().is_err(), "--dry-run connected");
}

#[test]
fn another_port_needs_tls_mode() {
    let e = Env::new();
    let o = e.run_stdin(
        &[
            "send",
            "--server",
            "127.0.0.1:2525",
            "--from",
            "a@x.test",
            "--to",
            "b@x.test",
            "--plain",
        ],
        b"x\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--tls implicit or --tls starttls"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn eight_bit_message_needs_8bitmime() {
    let e = Env::new();
    let h = Hostile::start(|c| {
        if !c.tls("localhost", None) {
            return;
        }
        c.send(b"220 tls.example.test ESMTP\r\n");
        while let Some(l) = c.line() {
            let u = l.to_ascii_uppercase();
            if u.starts_with("EHLO") {
                c.send(b"250-tls.example.test\r\n250 SIZE 100000\r\n");
            } else if u.starts_with("QUIT") {
                c.send(b"221 bye\r\n");
                return;
            } else {
                c.send(b"250 ok\r\n");
            }
        }
    });
    let msg = e.write_file(
        "m8.eml",
        "From: alice@example.com\r\nTo: bob@example.org\r\nSubject: x\r\n\r\nGrüße\r\n".as_bytes(),
    );
    let server = format!("127.0.0.1:{}", h.port);
    let o = e.run(&[
        "send",
        s(&msg),
        "--plain",
        "--server",
        &server,
        "--tls",
        "implicit",
        "--ca",
        &fx("server/ca.pem"),
        "--timeout",
        "3",
    ]);
    let t = h.finish();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("8BITMIME"), "{}", text(&o.stderr));
    assert!(
        !t.has_command("MAIL") && !t.has_command("DATA"),
        "{}",
        t.text()
    );
}

/// A TLS server offering `auth`, running the AUTH dialogue with `auth_script`, then accepting the mail.
fn auth_server(auth: &'static str, auth_script: fn(&mut Conn, &str)) -> Hostile {
    Hostile::start(move |c| {
        if !c.tls("localhost", None) {
            return;
        }
        c.send(b"220 tls.example.test ESMTP\r\n");
        while let Some(l) = c.line() {
            let u = l.to_ascii_uppercase();
            if u.starts_with("EHLO") {
                c.send(format!("250-tls.example.test\r\n250 AUTH {auth}\r\n").as_bytes());
            } else if u.starts_with("AUTH") {
                auth_script(c, &l);
            } else if u.starts_with("DATA") {
                c.send(b"354 go\r\n");
                while let Some(d) = c.line() {
                    if d == "." {
                        break;
                    }
                }
                c.send(b"250 2.0.0 Ok: queued as AUTHQ\r\n");
            } else if u.starts_with("QUIT") {
                c.send(b"221 bye\r\n");
                return;
            } else {
                c.send(b"250 ok\r\n");
            }
        }
    })
}

#[test]
fn auth_login_when_only_login_is_offered() {
    let e = Env::new();
    let h = auth_server("LOGIN", |c, _| {
        c.send(b"334 VXNlcm5hbWU6\r\n");
        let _ = c.line();
        c.send(b"334 UGFzc3dvcmQ6\r\n");
        let _ = c.line();
        c.send(b"235 ok\r\n");
    });
    let o = send(&e, h.port, "implicit", &[]);
    let t = h.finish();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let b64 = base64::engine::general_purpose::STANDARD;
    assert!(t.text().contains(&b64.encode(SECRET)), "{}", t.text());
    assert!(!t.has_command("AUTH PLAIN"));
    assert!(text(&o.stdout).contains("AUTHQ"));
}

#[test]
fn xoauth2_token_from_the_login_command() {
    let e = Env::new();
    let h = auth_server("XOAUTH2 OAUTHBEARER", |c, _| c.send(b"235 ok\r\n"));
    let port = h.port.to_string();
    e.ok(&[
        "account",
        "add",
        "oauth",
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "implicit",
        "--user",
        "alice@example.com",
        "--auth",
        "oauth2",
        "--login-command",
        "echo ya29.TOKEN",
        "--ca",
        &fx("server/ca.pem"),
    ]);
    let o = e.run_stdin(
        &[
            "send",
            "--account",
            "oauth",
            "--from",
            "alice@example.com",
            "--to",
            "bob@example.org",
            "--subject",
            "x",
            "--timeout",
            "3",
        ],
        b"x\n",
    );
    let t = h.finish();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let line = t
        .text()
        .lines()
        .find(|l| l.starts_with("AUTH XOAUTH2 "))
        .map(String::from);
    let line = line.unwrap_or_else(|| panic!("no XOAUTH2: {}", t.text()));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(line.trim_start_matches("AUTH XOAUTH2 "))
        .unwrap();
    assert_eq!(
        raw,
        b"user=alice@example.com\x01auth=Bearer ya29.TOKEN\x01\x01"
    );
}

#[test]
fn probe_reports_an_untrusted_certificate_and_sends_only_ehlo() {
    use smimekit::net::smtp::{ServerOptions, Session, TlsMode};
    use smimekit::net::tls::{Check, TlsOptions};
    let h = Hostile::start(|c| {
        if greet_and_ehlo(c, &["STARTTLS", "AUTH PLAIN"]) && c.expect("STARTTLS") {
            c.send(b"220 go ahead\r\n");
            if c.tls("selfsigned", None) {
                accept_everything(c);
            }
        }
    });
    let p = Session::probe(&ServerOptions {
        host: "127.0.0.1".into(),
        port: h.port,
        tls: TlsMode::Starttls,
        tls_options: TlsOptions::default(),
        accept_fingerprint: None,
        timeout: Duration::from_secs(3),
        ehlo_name: "probe.test".into(),
    })
    .unwrap();
    let t = h.finish();
    assert!(!p.handshake.verified());
    assert_eq!(p.handshake.problems[0].check, Check::SelfSigned);
    assert!(p.capabilities_before_tls.unwrap().starttls);
    assert_eq!(p.capabilities.auth, ["PLAIN", "LOGIN"]);
    assert_eq!(p.handshake.peer_chain.len(), 1);
    for cmd in ["AUTH", "MAIL", "RCPT", "DATA"] {
        assert!(!t.has_command(cmd), "{}", t.text());
    }
}
