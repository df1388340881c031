//! `smimekit check-server` against real servers on 127.0.0.1 in each condition: Postfix (complete chain,
//! intermediate missing, expired, wrong host name, self-signed), Dovecot (IMAP/POP3 with STARTTLS and implicit
//! TLS), `openssl s_server` (TLS 1.0/1.1 only; root sent; chain out of order), and a scripted SMTP server that
//! answers commands pipelined with STARTTLS (the injection flaw) and offers AUTH before TLS.

mod common;
#[path = "mailservers/mod.rs"]
mod mailservers;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;

use common::Env;
use mailservers::{Dovecot, MASTER, Postfix, SServer, free_port};
use serde_json::Value;

fn pki() -> PathBuf {
    common::fixture("server-pki")
}

/// Runs check-server with the test root (and the intermediate, which smimekit uses only to name a missing one).
fn check(env: &Env, port: u16, proto: &str) -> (i32, Value) {
    let root = pki().join("root.pem");
    let inter = pki().join("inter.pem");
    let out = env.run(&[
        "check-server",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--protocol",
        proto,
        "--ca",
        root.to_str().unwrap(),
        "--ca",
        inter.to_str().unwrap(),
        "--no-system-trust",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            common::text(&out.stdout),
            common::text(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn codes(port: &Value) -> Vec<String> {
    port["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn postfix_each_certificate_condition_is_named() {
    if !common::have(&[MASTER]) || !mailservers::root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = pki();
    let f = |n: &str| p.join(n).display().to_string();
    let cases = [
        ("good", f("good.key"), f("good-chain.pem")),
        ("nointer", f("good.key"), f("good.pem")),
        ("expired", f("expired.key"), f("expired-chain.pem")),
        ("wronghost", f("wronghost.key"), f("wronghost-chain.pem")),
        ("selfsigned", f("selfsigned.key"), f("selfsigned.pem")),
    ];
    let ports: Vec<u16> = cases.iter().map(|_| free_port()).collect();
    let opts: Vec<String> = cases
        .iter()
        .map(|(_, k, c)| {
            format!("-o smtpd_tls_security_level=may -o smtpd_tls_chain_files={k},{c}")
        })
        .collect();
    let smtpd: Vec<(u16, &str)> = ports
        .iter()
        .copied()
        .zip(opts.iter().map(String::as_str))
        .collect();
    // Old versions off, so that each port shows only its certificate condition (Debian's Postfix 3.7 accepts
    // TLS 1.0 and 1.1 by default, which check-server reports).
    let _pf = Postfix::start(
        &tmp.path().join("pf"),
        &smtpd,
        "myhostname = mail.test\nsmtpd_tls_protocols = >=TLSv1.2\nsmtpd_tls_mandatory_protocols = >=TLSv1.2\n",
    );
    let env = Env::new();
    let mut results = Vec::new();
    for (i, (name, _, _)) in cases.iter().enumerate() {
        let (code, v) = check(&env, ports[i], "submission");
        results.push((*name, code, v["ports"][0].clone()));
    }
    for (name, code, port) in &results {
        let ctx = format!("{name}: {port:#}");
        assert_eq!(port["tls_mode"], "starttls", "{ctx}");
        assert_eq!(port["starttls_advertised"], true, "{ctx}");
        assert_eq!(port["auth_before_tls"], false, "{ctx}");
        assert_eq!(port["starttls_injection"], false, "{ctx}");
        assert_eq!(port["weak_versions"], serde_json::json!([]), "{ctx}");
        assert_eq!(port["tls_version"], "TLSv1.3", "{ctx}");
        let c = codes(port);
        match *name {
            "good" => {
                assert_eq!(*code, 0, "{ctx}");
                assert!(c.is_empty(), "{ctx}");
                assert_eq!(port["trusted"], true, "{ctx}");
                assert_eq!(port["hostname_ok"], true, "{ctx}");
                assert_eq!(port["chain"].as_array().unwrap().len(), 2, "{ctx}");
                assert_eq!(port["chain"][0]["subject"], "CN=mail.test", "{ctx}");
                assert_eq!(port["ocsp_stapled"], false, "{ctx}");
                assert!(
                    port["chain"][0]["days_left"].as_i64().unwrap() > 30_000,
                    "{ctx}"
                );
            }
            "nointer" => {
                assert_eq!(*code, 1, "{ctx}");
                assert_eq!(c, ["missing_intermediate"], "{ctx}");
                let m = &port["missing_intermediate"];
                assert_eq!(
                    m["subject"], "CN=smimekit test server intermediate CA",
                    "{ctx}"
                );
                assert_eq!(m["aia_url"], "http://ca.test/inter.crt", "{ctx}");
                assert_eq!(m["confirmed"], true, "{ctx}");
                assert_eq!(port["trusted"], false, "{ctx}");
            }
            "expired" => {
                assert_eq!(*code, 1, "{ctx}");
                assert_eq!(c, ["expired"], "{ctx}");
                assert!(port["chain"][0]["days_left"].as_i64().unwrap() < 0, "{ctx}");
            }
            "wronghost" => {
                assert_eq!(*code, 1, "{ctx}");
                assert_eq!(c, ["hostname_mismatch"], "{ctx}");
                assert_eq!(port["hostname_ok"], false, "{ctx}");
                assert_eq!(port["trusted"], true, "{ctx}");
            }
            "selfsigned" => {
                assert_eq!(*code, 1, "{ctx}");
                assert_eq!(c, ["self_signed"], "{ctx}");
                assert_eq!(port["trusted"], false, "{ctx}");
            }
            _ => unreachable!(),
        }
    }
    // The text report of the missing intermediate names it and says what to change.
    let out = env.run(&[
        "check-server",
        "127.0.0.1",
        "--port",
        &ports[1].to_string(),
        "--protocol",
        "submission",
        "--ca",
        p.join("root.pem").to_str().unwrap(),
        "--no-system-trust",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let t = common::text(&out.stdout);
    assert!(t.contains("✗ certificate trusted"), "{t}");
    assert!(t.contains("http://ca.test/inter.crt"), "{t}");
    assert!(t.contains("fix: configure the server's chain file"), "{t}");
}

#[test]
fn dovecot_imap_pop3_starttls_and_implicit() {
    if !common::have(&["dovecot"]) || !mailservers::root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = pki();
    let dc = Dovecot::start(tmp.path(), &p.join("good-chain.pem"), &p.join("good.key"));
    let env = Env::new();
    for (i, proto) in ["imap", "imaps", "pop3", "pop3s"].iter().enumerate() {
        let (code, v) = check(&env, dc.ports[i], proto);
        let port = &v["ports"][0];
        let ctx = format!("{proto}: {port:#}");
        assert_eq!(port["trusted"], true, "{ctx}");
        assert_eq!(port["hostname_ok"], true, "{ctx}");
        assert_eq!(port["weak_versions"], serde_json::json!([]), "{ctx}");
        if proto.ends_with('s') {
            assert_eq!(code, 0, "{ctx}");
            assert_eq!(port["tls_mode"], "implicit", "{ctx}");
            assert_eq!(port["auth_before_tls"], Value::Null, "{ctx}");
        } else {
            assert_eq!(port["tls_mode"], "starttls", "{ctx}");
            assert_eq!(port["starttls_injection"], false, "{ctx}");
            // Dovecot counts a connection from its own address as secure and offers plain-text login on it
            // (LOGIN/AUTH=PLAIN, USER): from 127.0.0.1 that is what a client really sees, so it is reported.
            assert_eq!(port["auth_before_tls"], true, "{ctx}");
            assert_eq!(codes(port), ["auth_before_tls"], "{ctx}");
            assert_eq!(code, 1, "{ctx}");
        }
    }
}

#[test]
fn s_server_weak_versions_root_sent_and_order() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    let p = pki();
    // TLS 1.0/1.1 only (OpenSSL 3 needs security level 0 to offer them at all).
    let weak = SServer::start(
        &p,
        &[
            "-cert",
            "good.pem",
            "-key",
            "good.key",
            "-cert_chain",
            "inter.pem",
            "-no_tls1_2",
            "-no_tls1_3",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ],
    );
    let (code, v) = check(&env, weak.port, "tls");
    let port = &v["ports"][0];
    assert_eq!(code, 1, "{port:#}");
    assert_eq!(
        port["weak_versions"],
        serde_json::json!(["TLSv1", "TLSv1.1"]),
        "{port:#}"
    );
    let c = codes(port);
    assert!(c.contains(&"weak_tls_versions".to_string()), "{port:#}");
    assert!(c.contains(&"handshake_failed".to_string()), "{port:#}");
    // The chain is still read (from the old handshake).
    assert_eq!(port["trusted"], true, "{port:#}");

    // Root sent too: a warning, not a problem.
    let full = SServer::start(
        &p,
        &[
            "-cert",
            "good.pem",
            "-key",
            "good.key",
            "-cert_chain",
            "inter-root.pem",
        ],
    );
    let (code, v) = check(&env, full.port, "tls");
    let port = &v["ports"][0];
    assert_eq!(code, 0, "{port:#}");
    assert_eq!(codes(port), ["root_sent"], "{port:#}");
    assert_eq!(port["problems"][0]["severity"], "warning");

    // A stapled OCSP response is read and matched to the server's certificate.
    let stapled = SServer::start(
        &p,
        &[
            "-cert",
            "good.pem",
            "-key",
            "good.key",
            "-cert_chain",
            "inter.pem",
            "-status_file",
            "good.ocsp.der",
        ],
    );
    let (code, v) = check(&env, stapled.port, "tls");
    let port = &v["ports"][0];
    assert_eq!(code, 0, "{port:#}");
    assert_eq!(port["ocsp_stapled"], true, "{port:#}");
    assert_eq!(port["ocsp_status"], "good", "{port:#}");

    // good + root + inter: out of order.
    let order = SServer::start(
        &p,
        &[
            "-cert",
            "good.pem",
            "-key",
            "good.key",
            "-cert_chain",
            "root-inter.pem",
        ],
    );
    let (code, v) = check(&env, order.port, "tls");
    let port = &v["ports"][0];
    assert_eq!(code, 1, "{port:#}");
    assert!(codes(port).contains(&"chain_order".to_string()), "{port:#}");
}

/// A scripted SMTP server: offers AUTH before STARTTLS; when `vulnerable`, keeps whatever arrived after the
/// STARTTLS line and answers it inside TLS (the CVE-2011-0411 class of bug), else discards it.
fn scripted_smtp(vulnerable: bool) -> u16 {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let p = pki();
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    b.set_private_key_file(p.join("good.key"), SslFiletype::PEM)
        .unwrap();
    b.set_certificate_chain_file(p.join("good-chain.pem"))
        .unwrap();
    let acceptor = std::sync::Arc::new(b.build());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let acc = acceptor.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let _ = serve(conn, &acc, vulnerable);
            });
        }
    });
    port
}

fn serve(
    conn: TcpStream,
    acc: &openssl::ssl::SslAcceptor,
    vulnerable: bool,
) -> std::io::Result<()> {
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    w.write_all(b"220 scripted ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            w.write_all(b"250-scripted\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n")?;
        } else if cmd == "STARTTLS" {
            w.write_all(b"220 go ahead\r\n")?;
            let leftover = r.buffer().to_vec();
            let stream = r.into_inner();
            let mut tls = acc.accept(stream).map_err(std::io::Error::other)?;
            if vulnerable {
                for l in String::from_utf8_lossy(&leftover).lines() {
                    if l.eq_ignore_ascii_case("NOOP") {
                        tls.write_all(b"250 2.0.0 ok\r\n")?;
                    }
                }
            }
            let mut buf = [0u8; 256];
            while tls.read(&mut buf).is_ok_and(|n| n > 0) {}
            return Ok(());
        } else if cmd == "QUIT" {
            w.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            w.write_all(b"250 ok\r\n")?;
        }
    }
}

#[test]
fn scripted_server_starttls_injection_and_auth_before_tls() {
    let env = Env::new();
    let bad = scripted_smtp(true);
    let (code, v) = check(&env, bad, "smtp");
    let port = &v["ports"][0];
    assert_eq!(code, 1, "{port:#}");
    assert_eq!(port["starttls_injection"], true, "{port:#}");
    assert_eq!(port["auth_before_tls"], true, "{port:#}");
    let c = codes(port);
    assert!(c.contains(&"starttls_injection".to_string()), "{port:#}");
    assert!(c.contains(&"auth_before_tls".to_string()), "{port:#}");

    let fixed = scripted_smtp(false);
    let (_, v) = check(&env, fixed, "smtp");
    let port = &v["ports"][0];
    assert_eq!(port["starttls_injection"], false, "{port:#}");
    assert_eq!(port["trusted"], true, "{port:#}");
}

#[test]
fn nothing_reachable_exits_2_and_bad_protocol_is_usage() {
    let env = Env::new();
    let port = free_port(); // nothing listens there
    let out = env.run(&[
        "check-server",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--protocol",
        "smtp",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = common::text(&out.stderr);
    assert!(e.contains("nothing could be checked on 127.0.0.1"), "{e}");
    assert!(e.contains("smimekit: hint:"), "{e}");
    let out = env.run(&["check-server", "127.0.0.1", "--port", "2525"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::text(&out.stderr).contains("--protocol"));
}

#[test]
fn domain_mx_srv_mta_sts_and_tlsa_from_a_local_dns_server() {
    if !common::have(&["openssl", "dnsmasq"]) {
        return;
    }
    use mailservers::Dnsmasq;
    let p = pki();
    let srv = SServer::start(
        &p,
        &[
            "-cert",
            "good.pem",
            "-key",
            "good.key",
            "-cert_chain",
            "inter.pem",
        ],
    );
    // TLSA 3 1 1: SHA-256 of the server's SubjectPublicKeyInfo.
    let leaf = openssl::x509::X509::from_pem(&std::fs::read(p.join("good.pem")).unwrap()).unwrap();
    let spki = leaf.public_key().unwrap().public_key_to_der().unwrap();
    let h = openssl::hash::hash(openssl::hash::MessageDigest::sha256(), &spki).unwrap();
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    let port = srv.port;
    let dns = Dnsmasq::start(&[
        "--mx-host=example.test,mx.example.test,10".into(),
        format!("--srv-host=_submissions._tcp.example.test,mail.test,{port},0,1"),
        "--txt-record=_mta-sts.example.test,v=STSv1; id=20261208".into(),
        "--host-record=mail.test,127.0.0.1".into(),
        format!("--dns-rr=_{port}._tcp.mail.test,52,030101{hex}"),
        // bad.test: the same server, a TLSA record for another key.
        format!("--srv-host=_submissions._tcp.bad.test,mail2.test,{port},0,1"),
        "--host-record=mail2.test,127.0.0.1".into(),
        format!(
            "--dns-rr=_{port}._tcp.mail2.test,52,030101{}",
            "ab".repeat(32)
        ),
    ]);
    let env = Env::new();
    let root = p.join("root.pem");
    let run = |domain: &str| {
        let out = env.run(&[
            "check-server",
            "--domain",
            domain,
            "--dns-server",
            &format!("127.0.0.1:{}", dns.port),
            "--ca",
            root.to_str().unwrap(),
            "--no-system-trust",
            "--json",
        ]);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", common::text(&out.stderr)));
        (out.status.code(), v)
    };
    let (code, v) = run("example.test");
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["mx"][0]["host"], "mx.example.test", "{v:#}");
    assert_eq!(v["srv"][0]["service"], "_submissions._tcp", "{v:#}");
    assert_eq!(v["srv"][0]["target"], "mail.test", "{v:#}");
    assert_eq!(v["srv"][0]["port"], port, "{v:#}");
    assert_eq!(v["mta_sts"], "v=STSv1; id=20261208", "{v:#}");
    assert_eq!(
        v["tlsa"][0]["name"],
        format!("_{port}._tcp.mail.test"),
        "{v:#}"
    );
    assert_eq!(v["tlsa"][0]["records"][0]["matched"], true, "{v:#}");
    // The MX host has no address: reported, nothing contacted.
    assert_eq!(v["servers"][0]["host"], "mx.example.test", "{v:#}");
    assert_eq!(v["servers"][0]["ports"][0]["reachable"], false, "{v:#}");
    let mail = &v["servers"][1]["ports"][0];
    assert_eq!(mail["protocol"], "submissions", "{v:#}");
    assert_eq!(mail["trusted"], true, "{v:#}");
    assert_eq!(mail["hostname_ok"], true, "{v:#}");
    assert_eq!(v["problems"][0]["code"], "tlsa_not_authenticated", "{v:#}");

    let (code, v) = run("bad.test");
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["tlsa"][0]["records"][0]["matched"], false, "{v:#}");
    let codes: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"no_mx"), "{v:#}");
    assert!(codes.contains(&"tlsa_mismatch"), "{v:#}");
}

#[test]
fn certificate_expiring_within_30_days_is_a_warning() {
    if !common::have(&["openssl"]) {
        return;
    }
    // Made now, since its point is a validity relative to today: 10 days left, signed by the fixture
    // intermediate.
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509, X509NameBuilder};
    let p = pki();
    let inter = X509::from_pem(&std::fs::read(p.join("inter.pem")).unwrap()).unwrap();
    let inter_key =
        PKey::private_key_from_pem(&std::fs::read(p.join("inter.key")).unwrap()).unwrap();
    let key = PKey::ec_gen("prime256v1").unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "mail.test").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = openssl::bn::BigNum::from_u32(4242)
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(inter.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(10).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns("mail.test")
        .ip("127.0.0.1")
        .build(&b.x509v3_context(Some(&inter), None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&inter_key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("soon.pem"), cert.to_pem().unwrap()).unwrap();
    std::fs::write(
        tmp.path().join("soon.key"),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    std::fs::copy(p.join("inter.pem"), tmp.path().join("inter.pem")).unwrap();
    let srv = SServer::start(
        tmp.path(),
        &[
            "-cert",
            "soon.pem",
            "-key",
            "soon.key",
            "-cert_chain",
            "inter.pem",
        ],
    );
    let env = Env::new();
    let (code, v) = check(&env, srv.port, "tls");
    let port = &v["ports"][0];
    assert_eq!(code, 0, "a warning alone keeps exit 0: {port:#}");
    assert_eq!(codes(port), ["expires_soon"], "{port:#}");
    assert_eq!(port["problems"][0]["severity"], "warning", "{port:#}");
    let days = port["chain"][0]["days_left"].as_i64().unwrap();
    assert!((9..=10).contains(&days), "{port:#}");
}

#[test]
fn unknown_ca_without_aia_is_untrusted_not_a_missing_intermediate() {
    if !common::have(&["openssl"]) {
        return;
    }
    // The send tests' certificate from a CA nobody trusts (no AIA, issuer unknown to smimekit).
    let srv = SServer::start(
        &common::fixture("server"),
        &["-cert", "unknown.pem", "-key", "unknown.key"],
    );
    let env = Env::new();
    let (code, v) = check(&env, srv.port, "tls");
    let port = &v["ports"][0];
    assert_eq!(code, 1, "{port:#}");
    assert_eq!(codes(port), ["untrusted"], "{port:#}");
    assert_eq!(port["missing_intermediate"], Value::Null, "{port:#}");
    let m = port["problems"][0]["message"].as_str().unwrap();
    assert!(m.contains("smimekit untrusted server CA"), "{m}");
}

/// Revocation of the validated chain: unknown without data; with the intermediate's CRL (revoking the server's
/// certificate for keyCompromise) in the home's cache, a problem with its remedy.
#[test]
fn revoked_server_certificate_is_a_problem() {
    let env = Env::new();
    let port = scripted_smtp(false);
    let (_, v) = check(&env, port, "smtp");
    let p = &v["ports"][0];
    assert_eq!(p["trusted"], true, "{p:#}");
    assert_eq!(p["revocation"][0]["status"], "unknown", "{p:#}");
    assert!(!codes(p).contains(&"revoked".to_string()), "{p:#}");
    let crl = pki().join("good-revoked.crl");
    env.ok(&["crl", "add", crl.to_str().unwrap()]);
    let (code, v) = check(&env, port, "smtp");
    let p = &v["ports"][0];
    assert_eq!(code, 1, "{p:#}");
    assert_eq!(p["revocation"][0]["status"], "revoked", "{p:#}");
    assert_eq!(p["revocation"][0]["reason"], "keyCompromise", "{p:#}");
    assert!(codes(p).contains(&"revoked".to_string()), "{p:#}");
}
