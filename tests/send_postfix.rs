//! `smimekit send` and `smimekit account` against a real Postfix (implicit-TLS and STARTTLS submission, SASL
//! through Dovecot) on loopback, delivering to Maildirs the test reads: the message arrives, signatures
//! verify, each encrypted copy decrypts for its recipients only, and no Bcc header arrives anywhere.

mod common;
mod support_mail;

use common::*;
use support_mail::*;

fn setup() -> Option<Postfix> {
    if !have(&["postfix", "dovecot", "openssl"]) {
        return None;
    }
    Some(Postfix::start())
}

fn base_args(e: &Env, pf: &Postfix, starttls: bool) -> Vec<String> {
    let login = e.write_file("login", LOGIN_SECRET.as_bytes());
    let port = if starttls {
        pf.starttls_port
    } else {
        pf.implicit_port
    };
    vec![
        "send".into(),
        "--server".into(),
        format!("localhost:{port}"),
        "--tls".into(),
        if starttls { "starttls" } else { "implicit" }.into(),
        "--ca".into(),
        fx("server/ca.pem"),
        "--user".into(),
        LOGIN_USER.into(),
        "--login-file".into(),
        s(&login).into(),
        "--timeout".into(),
        "10".into(),
    ]
}

fn run(e: &Env, args: &[String], stdin: &[u8]) -> std::process::Output {
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    e.run_stdin(&a, stdin)
}

fn no_bcc(msgs: &[Vec<u8>]) {
    for m in msgs {
        let t = text(m).to_ascii_lowercase();
        assert!(
            !t.contains("\nbcc:") && !t.starts_with("bcc:"),
            "a Bcc header arrived:\n{t}"
        );
    }
}

#[test]
fn plain_message_with_bcc_over_implicit_tls() {
    let Some(pf) = setup() else { return };
    let e = Env::new();
    let msg = b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nBcc: Dave <dave@example.test>\r\nSubject: plain\r\n\r\nline one\r\n.\r\n.leading dot\r\nbare\nlf\r\n";
    let mut a = base_args(&e, &pf, false);
    a.push("--plain".into());
    let o = run(&e, &a, msg);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        text(&o.stderr),
        pf.log()
    );
    let out = text(&o.stdout);
    assert!(out.contains("queued as "), "{out}");
    let bob = pf.wait_delivered("bob", 1);
    let dave = pf.wait_delivered("dave", 1);
    no_bcc(&bob);
    no_bcc(&dave);
    let b = text(&bob[0]);
    // The body arrives intact: the lone dot did not end DATA, the dot-stuffing was undone, LF became CRLF.
    assert!(b.contains("line one\n.\n.leading dot\nbare\nlf"), "{b}");
    // Postfix records the TLS submission with authentication.
    assert!(b.contains("with ESMTPSA"), "{b}");
}

#[test]
fn composed_signed_message_over_starttls_verifies() {
    let Some(pf) = setup() else { return };
    let e = Env::new();
    e.import_np("p12/alice-modern.p12");
    e.trust_root();
    let mut a = base_args(&e, &pf, true);
    a.extend(
        [
            "--sign",
            "--from",
            "alice@example.com",
            "--to",
            "bob@example.org",
            "--cc",
            "carol@example.net",
            "--subject",
            "signed over STARTTLS",
        ]
        .map(String::from),
    );
    let o = run(&e, &a, "Hello\nsigned body\n".as_bytes());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        text(&o.stderr),
        pf.log()
    );
    for who in ["bob", "carol"] {
        let m = pf.wait_delivered(who, 1);
        let p = e.write_file(&format!("{who}.eml"), &m[0]);
        let (code, j, err) = e.verify_json(s(&p), &[]);
        assert_eq!(code, 0, "{who}: verify failed: {err} {j:?}");
        assert!(text(&m[0]).contains("Message-ID: <"));
    }
}

#[test]
fn encrypted_bcc_gets_a_separate_copy() {
    let Some(pf) = setup() else { return };
    let e = Env::new();
    e.import_np("p12/alice-modern.p12");
    e.trust_root();
    e.ok(&["contact", "add", &fx("pki/bob.pem")]);
    e.ok(&["contact", "add", &fx("pki/carol.pem")]);
    let mut a = base_args(&e, &pf, false);
    a.extend(
        [
            "--sign",
            "--encrypt",
            "--from",
            "alice@example.com",
            "--to",
            "bob@example.org",
            "--bcc",
            "carol@example.net",
            "--subject",
            "sealed",
        ]
        .map(String::from),
    );
    let o = run(&e, &a, b"for your eyes only\n");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        text(&o.stderr),
        pf.log()
    );
    let bob = pf.wait_delivered("bob", 1);
    let carol = pf.wait_delivered("carol", 1);
    no_bcc(&bob);
    no_bcc(&carol);
    assert_eq!(pf.delivered("bob").len(), 1, "bob got the Bcc copy too");
    let decrypt = |m: &[u8], who: &str| {
        let p = e.write_file("in.eml", m);
        openssl(
            &[
                "cms",
                "-decrypt",
                "-inform",
                "SMIME",
                "-in",
                s(&p),
                "-recip",
                &fx(&format!("pki/{who}.pem")),
                "-inkey",
                &fx(&format!("pki/{who}.key")),
            ],
            None,
        )
    };
    // Each copy decrypts for its recipient (and the sender), not for the other recipient.
    let (rc, plain_b, err) = decrypt(&bob[0], "bob");
    assert_eq!(rc, 0, "bob cannot decrypt his copy: {err}");
    assert_eq!(decrypt(&bob[0], "alice").0, 0, "the sender's copy");
    assert_ne!(
        decrypt(&bob[0], "carol").0,
        0,
        "the To copy names the Bcc recipient"
    );
    let (rc, plain_c, err) = decrypt(&carol[0], "carol");
    assert_eq!(rc, 0, "carol cannot decrypt her copy: {err}");
    assert_ne!(
        decrypt(&carol[0], "bob").0,
        0,
        "the Bcc copy is readable by bob"
    );
    // The decrypted content is the signed message, whose signature verifies, without Bcc.
    for plain in [plain_b, plain_c] {
        no_bcc(std::slice::from_ref(&plain));
        let p = e.write_file("inner.eml", &plain);
        // The inner entity alone carries no From: the signature is checked for the signer alone.
        let (code, _, err) = e.verify_json(s(&p), &["--no-address-check"]);
        assert_eq!(code, 0, "inner signature: {err}");
        assert!(text(&plain).contains("for your eyes only"));
    }
}

#[test]
fn encrypt_names_recipients_without_certificate_and_sends_nothing() {
    let Some(pf) = setup() else { return };
    let e = Env::new();
    e.import_np("p12/alice-modern.p12");
    e.trust_root();
    e.ok(&["contact", "add", &fx("pki/bob.pem")]);
    let mut a = base_args(&e, &pf, false);
    a.extend(
        [
            "--encrypt",
            "--from",
            "alice@example.com",
            "--to",
            "bob@example.org",
            "--cc",
            "dave@example.test",
            "--subject",
            "x",
        ]
        .map(String::from),
    );
    let o = run(&e, &a, b"x\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("dave@example.test"),
        "{}",
        text(&o.stderr)
    );
    // --encrypt-if-possible sends signed only, and says why.
    let mut a = base_args(&e, &pf, false);
    a.extend(
        [
            "--sign",
            "--encrypt-if-possible",
            "--from",
            "alice@example.com",
            "--to",
            "bob@example.org",
            "--cc",
            "dave@example.test",
            "--subject",
            "x",
        ]
        .map(String::from),
    );
    let o = run(&e, &a, b"x\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("not encrypted"),
        "{}",
        text(&o.stderr)
    );
    let d = pf.wait_delivered("dave", 1);
    assert!(text(&d[0]).contains("multipart/signed"));
    assert_eq!(pf.delivered("bob").len(), 1);
}

#[test]
fn account_add_test_and_wrong_login() {
    let Some(pf) = setup() else { return };
    let e = Env::new();
    let server = "localhost".to_string();
    let port = pf.starttls_port.to_string();
    let secret_file = e.write_file("secret-store", LOGIN_SECRET.as_bytes());
    let login_cmd = format!("cat {}", s(&secret_file));
    e.ok(&[
        "account",
        "add",
        "work",
        "--server",
        &server,
        "--port",
        &port,
        "--tls",
        "starttls",
        "--user",
        LOGIN_USER,
        "--from",
        "alice@example.com",
        "--ca",
        &fx("server/ca.pem"),
        "--login-command",
        &login_cmd,
    ]);
    let f = e.home().join("accounts.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!std::fs::read_to_string(&f).unwrap().contains(LOGIN_SECRET));
    let o = e.ok(&["account", "test", "work"]);
    let out = text(&o.stdout);
    assert!(out.contains("TLSv1.3") || out.contains("TLSv1.2"), "{out}");
    assert!(out.contains("logged in as alice@example.com"), "{out}");
    assert!(out.contains("nothing was sent"), "{out}");
    // Send through the account (login secret from its command).
    let o = e.run_stdin(
        &[
            "send",
            "--account",
            "work",
            "--to",
            "bob@example.org",
            "--subject",
            "via account",
        ],
        b"hello\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    pf.wait_delivered("bob", 1);
    // A wrong login secret: 535, naming the account and the user.
    let o = e
        .cmd(&[
            "send",
            "--account",
            "work",
            "--to",
            "bob@example.org",
            "--subject",
            "x",
        ])
        .env("SMIMEKIT_LOGIN", "wrong-secret")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("account work") && err.contains(LOGIN_USER) && err.contains("535"),
        "{err}"
    );
    assert_eq!(pf.delivered("bob").len(), 1);
    e.ok(&["account", "remove", "work"]);
    assert!(!text(&e.ok(&["account", "list"]).stdout).contains("work"));
}

#[test]
fn rejected_recipient_aborts_unless_skip_rejected() {
    let Some(pf) = setup() else { return };
    let e = Env::new();
    let mut a = base_args(&e, &pf, false);
    a.extend(
        [
            "--plain",
            "--from",
            "alice@example.com",
            "--to",
            "bob@example.org",
            "--to",
            "nobody@example.test",
            "--subject",
            "x",
        ]
        .map(String::from),
    );
    let o = run(&e, &a, b"x\n");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("nobody@example.test") && err.contains("550"),
        "{err}"
    );
    assert!(err.contains("--skip-rejected"), "{err}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        pf.delivered("bob").len(),
        0,
        "sent although a recipient was refused"
    );
    a.push("--skip-rejected".into());
    let o = run(&e, &a, b"x\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("NOT sent to nobody@example.test"),
        "{}",
        text(&o.stdout)
    );
    pf.wait_delivered("bob", 1);
}

#[test]
fn save_copy_to_file_and_maildir() {
    let Some(pf) = setup() else { return };
    let e = Env::new();
    let md = e.path("Sent");
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(d)).unwrap();
    }
    let file = e.path("sent.eml");
    for target in [&md, &file] {
        let mut a = base_args(&e, &pf, false);
        a.extend(
            [
                "--plain",
                "--from",
                "alice@example.com",
                "--to",
                "bob@example.org",
                "--bcc",
                "dave@example.test",
                "--subject",
                "kept",
            ]
            .map(String::from),
        );
        a.push("--save-copy".into());
        a.push(s(target).into());
        let o = run(&e, &a, b"keep me\n");
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    }
    let saved: Vec<_> = std::fs::read_dir(md.join("cur"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(saved.len(), 1);
    assert!(saved[0].file_name().to_string_lossy().ends_with(":2,S"));
    for m in [
        std::fs::read(saved[0].path()).unwrap(),
        std::fs::read(&file).unwrap(),
    ] {
        assert!(text(&m).contains("keep me"));
        no_bcc(&[m]);
    }
    pf.wait_delivered("bob", 2);
}
