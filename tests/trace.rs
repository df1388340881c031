//! `smimekit trace`: the binary on hand-written header sections (verdicts, exit codes, JSON, --trust-from) and
//! on a message really relayed through two Postfix instances on 127.0.0.1 (one hop with TLS, one in clear).

mod common;
#[path = "mailservers/mod.rs"]
mod mailservers;

use std::time::{Duration, Instant};

use common::Env;
use mailservers::{MASTER, Postfix, free_port};

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
    let msg = msg.replace(
        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n",
        "",
    );
    let out = env.run_stdin(
        &["trace", "--json", "--trust-from", "MX.example.org"],
        msg.as_bytes(),
    );
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
    assert!(
        v["verdict_text"]
            .as_str()
            .unwrap()
            .starts_with("unknown for hop 1")
    );

    let out = env.run_stdin(&["trace"], b"Subject: draft\r\n\r\nbody\r\n");
    assert_eq!(out.status.code(), Some(2));
    let e = common::text(&out.stderr);
    assert!(
        e.contains("smimekit: error: the message has no Received header fields"),
        "{e}"
    );
    assert!(e.contains("smimekit: hint:"), "{e}");
}

// ---- two real Postfix instances ----

#[test]
fn trace_message_relayed_through_two_postfix_instances() {
    if !common::have(&[MASTER, "swaks"]) {
        return;
    }
    if !mailservers::root() {
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
        &[(pb, "")],
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
        &[(pa, "")],
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
    assert!(
        hops[0]["tls_cipher"].as_str().unwrap().starts_with("TLS_"),
        "{ctx}"
    );
    assert_eq!(hops[1]["from"], "a.test", "{ctx}");
    assert_eq!(hops[1]["by"], "b.test", "{ctx}");
    assert_eq!(hops[1]["with"], "ESMTP", "{ctx}");
    assert_eq!(hops[1]["tls"], "no", "{ctx}");
    assert!(hops[1]["delay_seconds"].as_i64().unwrap() >= 0, "{ctx}");
    assert_eq!(v["verdict"], "no_tls", "{ctx}");
    assert_eq!(
        v["verdict_text"], "hop 2 (a.test → b.test) recorded no TLS",
        "{ctx}"
    );
    // Trusting B: A's field is a claim.
    let out = env.run(&[
        "trace",
        "--json",
        "--trust-from",
        "b.test",
        file.to_str().unwrap(),
    ]);
    let v = json(&out);
    assert_eq!(v["hops"][0]["trust"], "claim");
    assert_eq!(v["hops"][1]["trust"], "trusted");
}

/// A `--trust-from` host that wrote no Received field is an error (a typo must not turn claims into a verdict),
/// and a Received field nothing could be read from is not a local hand-off.
#[test]
fn trace_unknown_trust_from_host_and_unreadable_field() {
    let env = Env::new();
    let f = env.path("m.eml");
    std::fs::write(&f, ALL_TLS).unwrap();
    let out = env.run(&[
        "trace",
        f.to_str().unwrap(),
        "--trust-from",
        "mx.example.orgg",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out.stdout));
    assert!(
        common::text(&out.stderr)
            .contains("no Received field of this message was written by mx.example.orgg"),
        "{}",
        common::text(&out.stderr)
    );
    let g = env.path("g.eml");
    std::fs::write(
        &g,
        "Received: garbage\r\nFrom: a@example.org\r\n\r\nbody\r\n",
    )
    .unwrap();
    let out = env.run(&["trace", "--json", g.to_str().unwrap()]);
    let v = json(&out);
    assert_ne!(out.status.code(), Some(0), "{v:#}");
    assert_ne!(v["hops"][0]["tls"], "local", "{v:#}");
}
