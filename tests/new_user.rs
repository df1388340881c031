//! What a new user meets in the first hour: each test is one defect found that way, asserting the wanted
//! behaviour (message, exit code, nothing written, store unchanged).

mod common;

use common::*;
use serde_json::Value;

/// The one JSON document a `--json` run printed: on stdout, or on stderr when stdout carries the message.
fn one_doc(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", text(out)))
}

/// A message without any MIME header whose body is UTF-8 is labelled utf-8 (not us-ascii) when signed; a
/// body that is not UTF-8 is signed with a warning naming the problem.
#[test]
fn sign_labels_unlabelled_utf8_text_as_utf8() {
    let env = Env::new();
    env.import_np("p12/alice-modern.p12");
    let msg = b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: x\r\n\r\nCaf\xc3\xa9 cr\xc3\xa8me\r\n";
    let f = env.write("utf8.eml", msg);
    let out = env.path("signed.eml");
    let o = env.ok(&["sign", &f, "-o", s(&out)]);
    assert!(!text(&o.stderr).contains("warning"), "{}", text(&o.stderr));
    let signed = std::fs::read(&out).unwrap();
    let t = text(&signed);
    assert!(t.contains("charset=utf-8"), "{t}");
    assert!(!t.contains("us-ascii"), "{t}");
    let (code, _, err) = env.verify_json(s(&out), &[]);
    assert_eq!(code, 0, "{err}");

    // A text type without a charset parameter: the same rule.
    let msg = b"From: alice@example.com\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCaf\xc3\xa9\r\n";
    let f = env.write("ct-utf8.eml", msg);
    let out = env.path("signed-ct.eml");
    env.ok(&["sign", &f, "-o", s(&out)]);
    let t = text(&std::fs::read(&out).unwrap());
    assert!(
        t.contains("text/plain; format=flowed; charset=utf-8"),
        "{t}"
    );
    let (code, _, err) = env.verify_json(s(&out), &[]);
    assert_eq!(code, 0, "{err}");

    let latin1 = b"From: alice@example.com\r\nSubject: x\r\n\r\nCaf\xe9\r\n";
    let f = env.write("latin1.eml", latin1);
    let out = env.path("signed-latin1.eml");
    let o = env.ok(&["sign", &f, "-o", s(&out)]);
    let err = text(&o.stderr);
    assert!(
        err.contains("warning") && err.contains("not valid UTF-8"),
        "{err}"
    );
    assert!(out.exists());
}

/// Every command prints exactly one JSON document under --json (on stderr when stdout carries the message),
/// errors included as {"error": {"kind", "message", "hint"}}.
#[test]
fn every_command_prints_one_json_document() {
    let env = Env::new();
    env.import_np("p12/alice-modern.p12");
    env.ok(&["contact", "add", &fx("pki/bob.pem")]);
    let msg = env.write("m.eml", &simple_message("alice@example.com", "hello\r\n"));

    // sign to stdout: the message on stdout, the report on stderr.
    let o = env.ok(&["--json", "sign", &msg]);
    assert!(text(&o.stdout).contains("multipart/signed"));
    let j = one_doc(o.stderr.as_slice());
    assert_eq!(j["email"], "alice@example.com");
    assert_eq!(j["form"], "multipart/signed");
    // sign -o: the report on stdout.
    let out = env.path("s.eml");
    let o = env.ok(&["--json", "sign", &msg, "-o", s(&out)]);
    assert!(one_doc(&o.stdout)["signed_as"].is_string());
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    // contact export and prefer.
    let pem = env.path("bob.pem");
    let o = env.ok(&[
        "--json",
        "contact",
        "export",
        "bob@example.org",
        "-o",
        s(&pem),
    ]);
    assert!(one_doc(&o.stdout)["fingerprint"].is_string());
    let fp = fingerprint_of("pki/bob.pem");
    let o = env.ok(&["--json", "contact", "prefer", "bob@example.org", &fp]);
    assert_eq!(one_doc(&o.stdout)["pinned"], fp.as_str());
    // demo: its transcript inside the one document.
    let o = env.ok(&["--json", "demo"]);
    let j = one_doc(&o.stdout);
    assert_eq!(j["complete"], true);
    assert!(j["transcript"].as_str().unwrap().contains("Step 5"));
    // A command without a report of its own still prints one document.
    let o = env.ok(&["--json", "trust", "list"]);
    one_doc(&o.stdout);

    // Errors: one document on stdout, nothing on stderr, exit 2.
    let o = env.run(&["--json", "id", "show", "nobody@example.com"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    let e = &one_doc(&o.stdout)["error"];
    assert_eq!(e["kind"], "not_found");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("nobody@example.com")
    );
    assert!(e["hint"].is_string());
    // A usage error (clap's) too.
    let o = env.run(&["--json", "id", "list", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(one_doc(&o.stdout)["error"]["kind"], "usage");
    // An error of a command whose stdout would carry the message goes to stderr: stdout stays empty.
    let two_ids = Env::new();
    two_ids.import_np("p12/alice-modern.p12");
    two_ids.import_np("p12/bob.p12");
    let nofrom = two_ids.write("nofrom.eml", b"Subject: x\r\n\r\nhi\r\n");
    let o = two_ids.run(&["--json", "sign", &nofrom]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert_eq!(one_doc(&o.stderr)["error"]["kind"], "usage");
}

/// `id list --json` / `id show --json` name each key once (serde_json keeps the last of duplicates, so the
/// raw text is checked).
#[test]
fn id_json_has_each_key_once() {
    let env = Env::new();
    env.import_np("p12/alice-modern.p12");
    for args in [
        &["--json", "id", "show", "alice@example.com"][..],
        &["--json", "id", "list"],
    ] {
        let o = env.ok(args);
        let t = text(&o.stdout);
        // The nested revocation object names the certificate it speaks of; only the ID's own keys count.
        let own = match t.find("\"revocation\": {") {
            Some(a) => {
                let b = a + t[a..].find('}').unwrap();
                format!("{}{}", &t[..a], &t[b..])
            }
            None => t.clone(),
        };
        assert_eq!(own.matches("\"fingerprint\"").count(), 1, "{args:?}: {t}");
    }
}

/// `decrypt` of an intact message whose inner signer is not trusted: exit 1, nothing written, and a line saying
/// the plaintext was withheld and how to release it.
#[test]
fn decrypt_says_the_plaintext_was_withheld() {
    let env = Env::new();
    env.import_np("p12/bob.p12");
    let out = env.path("plain.eml");
    let o = env.run(&[
        "decrypt",
        &fx("msg/enc/sign-then-encrypt.eml"),
        "-o",
        s(&out),
        "--no-system-trust",
        "--no-harvest",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("withheld"), "{err}");
    assert!(
        err.contains("--force-output") && err.contains("trust add"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
    // Also to stdout: nothing there.
    let o = env.run(&[
        "decrypt",
        &fx("msg/enc/sign-then-encrypt.eml"),
        "--no-system-trust",
        "--no-harvest",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        !text(&o.stdout).contains("Content-Type"),
        "{}",
        text(&o.stdout)
    );
}

/// An empty secret file is named as such, not reported as a wrong secret; nothing changes.
#[test]
fn an_empty_secret_file_is_named() {
    let env = Env::new();
    let empty = env.write("empty.txt", b"");
    let nl = env.write("newline.txt", b"\n");
    // A new passphrase from an empty file: refused before anything is made.
    let o = env.run(&[
        "--passphrase-file",
        &empty,
        "id",
        "new",
        "--email",
        "x@example.com",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("{empty} is empty")), "{err}");
    assert!(!err.to_lowercase().contains("wrong"), "{err}");
    assert!(
        env.snapshot()
            .iter()
            .all(|(p, _)| !p.to_string_lossy().contains("/ids/")),
        "no ID created"
    );
    // A PKCS#12 password from a file holding only a newline: the file is named, not "wrong password".
    let o = env.run(&[
        "--password-file",
        &nl,
        "id",
        "import",
        &fx("p12/alice-modern.p12"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("{nl} is empty")), "{err}");
    assert!(
        env.snapshot()
            .iter()
            .all(|(p, _)| !p.to_string_lossy().contains("/ids/"))
    );
}

/// `id new --days 0` is refused (an already-expired ID); nothing is created.
#[test]
fn id_new_refuses_zero_days() {
    let env = Env::new();
    let o = env.run(&[
        "id",
        "new",
        "--email",
        "x@example.com",
        "--days",
        "0",
        "--no-passphrase",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("--days") && err.contains('0'), "{err}");
    assert!(!env.home().exists(), "nothing created");
}

/// `encrypt` of a message without From: follows the rule of `sign` — the only ID, else the user says which.
#[test]
fn encrypt_without_from_follows_the_sign_rule() {
    let env = Env::new();
    env.import_np("p12/alice-modern.p12");
    let msg = env.write(
        "nofrom.eml",
        b"To: alice@example.com\r\nSubject: x\r\n\r\nhi\r\n",
    );
    let out = env.path("enc.eml");
    let o = env.ok(&["--json", "encrypt", &msg, "-o", s(&out)]);
    let j = one_doc(&o.stdout);
    assert!(
        j["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["source"] == "own ID"),
        "{j}"
    );
    assert!(
        !text(&o.stderr).contains("matches the From"),
        "{}",
        text(&o.stderr)
    );
    // Two IDs: which one is yours is not guessed.
    env.import_np("p12/bob.p12");
    let out2 = env.path("enc2.eml");
    let o = env.run(&["encrypt", &msg, "-o", s(&out2)]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("no From header") && err.contains("--as"),
        "{err}"
    );
    assert!(!out2.exists(), "nothing written");
}

/// No raw OpenSSL error string in the error line: it may only follow as a `detail` line.
#[test]
fn openssl_error_text_is_only_a_detail() {
    let env = Env::new();
    let junk = env.write("junk.der", &[0x30, 0x03, 0x02, 0x01, 0x05]);
    let before = env.snapshot();
    let o = env.run(&["trust", "add", &junk]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    for l in err.lines() {
        if l.contains("routines") || l.contains("error:0") {
            assert!(
                l.starts_with("smimekit: detail: "),
                "raw OpenSSL text in: {l}"
            );
        }
    }
    assert!(err.starts_with("smimekit: error: "), "{err}");
    assert_eq!(before, env.snapshot());
}

/// `id import` of something that is not a PKCS#12 file recognises it and points to the right command; nothing
/// is asked or stored.
#[test]
fn id_import_recognises_other_files() {
    let env = Env::new();
    let csr = env.path("req.csr");
    env.ok(&[
        "id",
        "new",
        "--email",
        "csr@example.com",
        "--csr",
        s(&csr),
        "--no-passphrase",
    ]);
    let mut key_and_cert = std::fs::read(fixture("pki/alice.key")).unwrap();
    key_and_cert.extend(std::fs::read(fixture("pki/alice.pem")).unwrap());
    let kc = env.write("alice-key-cert.pem", &key_and_cert);
    let before = env.snapshot();
    for (file, says, hint) in [
        (
            fx("pki/alice.pem"),
            "a certificate without its private key",
            "contact add",
        ),
        (
            kc.clone(),
            "a private key and a certificate",
            "openssl pkcs12 -export",
        ),
        (
            s(&csr).to_string(),
            "a certificate signing request",
            "install-cert",
        ),
        (
            fx("msg/valid-rsa-alice.eml"),
            "an e-mail message",
            "contact add",
        ),
    ] {
        let o = env.run(&["id", "import", &file]);
        assert_eq!(o.status.code(), Some(2), "{file}");
        let err = text(&o.stderr);
        assert!(err.contains(says) && err.contains(hint), "{file}: {err}");
        assert!(!err.contains("expected a binary"), "{err}");
    }
    let cert_err = text(&env.run(&["id", "import", &fx("pki/alice.pem")]).stderr);
    assert!(
        cert_err.contains("install-cert") && cert_err.contains("trust add"),
        "{cert_err}"
    );
    assert_eq!(before, env.snapshot(), "store unchanged");
}

/// A self-signed correspondent is trusted from their message after the fingerprint is shown and confirmed;
/// `--batch` without `--yes` refuses and changes nothing. `contact add --accept-signer` and `inspect
/// --export-certs` work the same way, trusting nothing by themselves.
#[test]
fn a_self_signed_signer_is_taken_from_the_message_after_confirmation() {
    let msg = fx("msg/untrusted-alice-selfsigned.eml");
    let fp = fingerprint_of("pki/alice-selfsigned.pem");
    let env = Env::new();
    env.init_home();
    let verify = |env: &Env| {
        env.run(&["verify", &msg, "--no-system-trust", "--no-harvest"])
            .status
            .code()
    };
    assert_eq!(verify(&env), Some(1));
    // --batch (Env always passes it) without --yes: refused, nothing trusted.
    let before = env.snapshot();
    let o = env.run(&["trust", "add", &msg]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--yes"), "{}", text(&o.stderr));
    assert_eq!(before, env.snapshot());
    // With --yes: the fingerprint is shown, then the certificate is trusted.
    let o = env.ok(&["trust", "add", &msg, "--yes"]);
    let err = text(&o.stderr);
    let spaced: Vec<String> = fp
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect();
    assert!(err.contains(&spaced.join(":")), "fingerprint shown: {err}");
    assert_eq!(verify(&env), Some(0));
    // A message whose content was altered gives no certificate.
    let tampered = text(&std::fs::read(&msg).unwrap()).replacen("\r\n\r\n", "\r\n\r\nX", 2);
    let bad = Env::new();
    bad.init_home();
    let t = bad.write("tampered.eml", tampered.as_bytes());
    let o = bad.run(&["trust", "add", &t, "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));

    // contact add --accept-signer: the same confirmation, the certificate becomes a contact (not an anchor).
    let c = Env::new();
    c.init_home();
    let o = c.run(&["contact", "add", &msg]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--accept-signer"),
        "{}",
        text(&o.stderr)
    );
    let o = c.run(&["contact", "add", &msg, "--accept-signer"]);
    assert_eq!(o.status.code(), Some(2), "batch without --yes");
    c.ok(&["contact", "add", &msg, "--accept-signer", "--yes"]);
    let list: Value = one_doc(&c.ok(&["--json", "contact", "list"]).stdout);
    assert_eq!(list["contacts"][0]["fingerprint"], fp.as_str());
    let anchors: Value = one_doc(&c.ok(&["--json", "trust", "list"]).stdout);
    assert_eq!(anchors.as_array().map(Vec::len), Some(0), "{anchors}");

    // inspect --export-certs: the certificates the message carries, trusting none.
    let i = Env::new();
    let pem = i.path("carried.pem");
    i.ok(&["inspect", &msg, "--export-certs", s(&pem)]);
    let got = openssl::x509::X509::stack_from_pem(&std::fs::read(&pem).unwrap()).unwrap();
    assert!(got.iter().any(|c| {
        c.digest(openssl::hash::MessageDigest::sha256())
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            == fp
    }));
    assert!(!i.home().exists(), "inspect created no home");
}

/// Read-only commands on a home that does not exist say so (with the path) and create nothing.
#[test]
fn a_missing_home_is_reported_not_created() {
    let env = Env::new();
    for args in [
        &["id", "list"][..],
        &["id", "show", "alice@example.com"],
        &["contact", "list"],
        &["trust", "list"],
    ] {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains("no smimekit home") && err.contains(&env.home().display().to_string()),
            "{args:?}: {err}"
        );
        assert!(!env.home().exists(), "{args:?} created the home");
    }
    let msg = env.write("m.eml", &simple_message("alice@example.com", "x\r\n"));
    let o = env.run(&["sign", &msg]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert!(!env.home().exists());
}

/// Frictions: lists sorted by address; sign reports like encrypt (on stderr when stdout has the message);
/// each command offers only the secret options it uses; the demo shows the commands to type.
#[test]
fn lists_are_sorted_and_commands_offer_what_applies() {
    let env = Env::new();
    for p in [
        "p12/bob.p12",
        "p12/alice-modern.p12",
        "p12/carol-legacy.p12",
    ] {
        env.import_np(p);
    }
    let ids = one_doc(&env.ok(&["--json", "id", "list"]).stdout);
    let emails: Vec<String> = ids["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["emails"][0].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = emails.clone();
    sorted.sort();
    assert_eq!(emails, sorted);
    for c in ["pki/mallet.pem", "pki/bob.pem", "pki/alice.pem"] {
        env.ok(&["contact", "add", &fx(c)]);
    }
    let list = one_doc(&env.ok(&["--json", "contact", "list"]).stdout);
    let emails: Vec<String> = list["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["emails"][0].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = emails.clone();
    sorted.sort();
    assert_eq!(emails, sorted);
    let t = text(&env.ok(&["contact", "list"]).stdout);
    let a = t.find("alice@").unwrap();
    let b = t.find("bob@").unwrap();
    assert!(a < b, "{t}");

    // sign to stdout reports on stderr, as encrypt does.
    let msg = env.write("m.eml", &simple_message("alice@example.com", "x\r\n"));
    let o = env.ok(&["sign", &msg]);
    assert!(
        text(&o.stderr).contains("Signed as alice@example.com"),
        "{}",
        text(&o.stderr)
    );

    // --password-file is not offered by sign, and refused there.
    let help = env.ok(&["sign", "--help"]);
    let h = text(&help.stdout);
    assert!(!h.contains("--password-file"), "{h}");
    assert!(h.contains("--passphrase-file"), "{h}");
    assert!(text(&env.ok(&["id", "import", "--help"]).stdout).contains("--password-file"));
    let pw = env.write("pw.txt", b"x\n");
    let o = env.run(&["sign", &msg, "--password-file", &pw]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("'--password-file'"),
        "{}",
        text(&o.stderr)
    );
    let o = env.run(&["--password-file", &pw, "sign", &msg]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("does not use --password-file"),
        "{}",
        text(&o.stderr)
    );
    assert!(o.stdout.is_empty());

    // The demo prints the commands a person would type.
    let demo = text(&env.ok(&["demo"]).stdout);
    for c in [
        "$ smimekit id new",
        "$ smimekit sign",
        "$ smimekit verify",
        "$ smimekit encrypt",
        "$ smimekit decrypt",
    ] {
        assert!(demo.contains(c), "{c} missing in the demo");
    }
}
