//! Issue 5: `encrypt` and `decrypt` against real peers (the `openssl` CLI and gpgsm 2.2) in both directions,
//! the default output (T01), the capability-driven cipher choice (T02), non-secure recipients, Bcc,
//! sign+encrypt, and the decrypt negatives.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

const ALICE: &str = "Alice <alice@example.com>";
const BOB: &str = "Bob <bob@example.org>";
const BODY: &str = "Hello Bob,\nthe quarterly figures are final.\n-- \nAlice";

/// A home with bob's ID (no passphrase) and the fixture root trusted.
fn bob_home() -> Env {
    let e = Env::new();
    e.import_np("p12/bob.p12");
    e.trust_root();
    e
}

/// A home with alice's ID (no passphrase), the root trusted, and bob's certificate as a contact.
fn alice_home() -> Env {
    let e = Env::new();
    e.import_np("p12/alice-modern.p12");
    e.trust_root();
    e.ok(&["contact", "add", &fx("pki/bob.pem")]);
    e
}

fn serial_of(pem: &str) -> String {
    let c = openssl::x509::X509::from_pem(&std::fs::read(fixture(pem)).unwrap()).unwrap();
    c.serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string()
}

/// `openssl cms -cmsout -print` of a message (S/MIME form).
fn cms_print(msg: &Path) -> String {
    let (rc, out, err) = openssl(
        &[
            "cms",
            "-cmsout",
            "-print",
            "-inform",
            "SMIME",
            "-in",
            s(msg),
        ],
        None,
    );
    assert_eq!(rc, 0, "openssl cms -cmsout -print: {err}");
    text(&out)
}

/// `openssl cms -decrypt` with a fixture key; returns (rc, plaintext, stderr).
fn openssl_decrypt(msg: &Path, who: &str) -> (i32, Vec<u8>, String) {
    openssl(
        &[
            "cms",
            "-decrypt",
            "-inform",
            "SMIME",
            "-in",
            s(msg),
            "-recip",
            &fx(&format!("pki/{who}.pem")),
            "-inkey",
            &fx(&format!("pki/{who}.key")),
        ],
        None,
    )
}

/// Encrypts `msg` in `e` with extra arguments; returns the output file's bytes and the report.
fn encrypt(e: &Env, msg: &[u8], args: &[&str]) -> (Vec<u8>, String) {
    let inp = e.write_file("plain.eml", msg);
    let out = e.path("enc.eml");
    let _ = std::fs::remove_file(&out);
    let mut full = vec!["encrypt", s(&inp), "-o", s(&out)];
    full.extend(args);
    let o = e.ok(&full);
    (
        std::fs::read(&out).unwrap(),
        text(&o.stdout) + &text(&o.stderr),
    )
}

/// Decrypts `msg` in `e` into a file; returns the process output and the decrypted bytes (if written).
fn decrypt(e: &Env, msg: &[u8], args: &[&str]) -> (std::process::Output, Option<Vec<u8>>) {
    let inp = e.write_file("in.eml", msg);
    let out = e.path("dec.eml");
    let _ = std::fs::remove_file(&out);
    let mut full = vec!["decrypt", s(&inp), "-o", s(&out)];
    full.extend(args);
    let o = e.run(&full);
    let data = std::fs::read(&out).ok();
    (o, data)
}

fn assert_contains(hay: &str, needle: &str, what: &str) {
    assert!(
        hay.contains(needle),
        "{what}: expected {needle:?} in:\n{hay}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// What we encrypt, others decrypt.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn ours_decrypts_with_openssl_gcm_cbc_oaep_and_ecdh() {
    if !common::have(&["openssl"]) {
        return;
    }
    let e = alice_home();
    e.ok(&["contact", "add", &fx("pki/carol.pem")]);
    let msg = message(ALICE, BOB, "", BODY);
    for (args, cipher) in [
        (vec![], "aes-256-cbc"),
        (vec!["--cipher-policy", "modern"], "aes-256-gcm"),
        (vec!["--cipher", "aes-256-gcm"], "aes-256-gcm"),
        (vec!["--oaep", "--cipher-policy", "modern"], "aes-256-gcm"),
        (vec!["--oaep", "--cipher", "aes-256-cbc"], "aes-256-cbc"),
    ] {
        let (enc, report) = encrypt(&e, &msg, &args);
        assert_contains(&report, &format!("Encrypted with {cipher}"), "report");
        let p = e.write_file("for-openssl.eml", &enc);
        let printed = cms_print(&p);
        assert_contains(&printed, cipher, "content cipher");
        if args.contains(&"--oaep") {
            assert_contains(&printed, "rsaesOaep", "OAEP key transport");
            assert_contains(&printed, "sha256", "OAEP hash");
        } else {
            assert_contains(&printed, "rsaEncryption", "PKCS#1 v1.5 key transport");
        }
        let (rc, plain, err) = openssl_decrypt(&p, "bob");
        assert_eq!(rc, 0, "openssl cms -decrypt {args:?}: {err}");
        assert_contains(
            &text(&plain),
            "the quarterly figures are final.",
            "plaintext",
        );
        // The sender's own copy decrypts too.
        let (rc, _, err) = openssl_decrypt(&p, "alice");
        assert_eq!(rc, 0, "openssl cms -decrypt as alice {args:?}: {err}");
    }
    // EC recipient: ECDH key agreement (RFC 5753).
    let msg = message(ALICE, "Carol <carol@example.net>", "", BODY);
    let (enc, _) = encrypt(&e, &msg, &[]);
    let p = e.write_file("to-carol.eml", &enc);
    let printed = cms_print(&p);
    assert_contains(&printed, "d.kari", "KeyAgreeRecipientInfo");
    let (rc, plain, err) = openssl_decrypt(&p, "carol");
    assert_eq!(rc, 0, "openssl cms -decrypt as carol: {err}");
    assert_contains(
        &text(&plain),
        "the quarterly figures are final.",
        "plaintext",
    );
}

#[test]
fn ours_decrypts_with_gpgsm_rsa_aes_cbc() {
    if !common::have(&["gpgsm", "gpgconf"]) {
        return;
    }
    let e = bob_home();
    // gpgsm 2.2 cannot import OpenSSL 3's PBES2 PKCS#12 (F13): export bob in the legacy profile for it.
    let p12 = e.path("bob-legacy.p12");
    e.ok(&[
        "id",
        "export",
        "bob@example.org",
        "--profile",
        "legacy",
        "-o",
        s(&p12),
    ]);
    let g = Gpg::new();
    g.import(&[s(&p12)], Some(P12_PASSWORD));
    // Only bob as recipient (gpgsm exits 2 when it holds no key for some other RecipientInfo).
    let msg = message(ALICE, BOB, "", BODY);
    let (enc, _) = encrypt(&e, &msg, &["--cipher", "aes-256-cbc", "--no-self"]);
    let der = e.write_file("for-gpgsm.der", &p7m_der(&enc));
    let (rc, plain, err) = g.gpgsm(&["--decrypt", s(&der)], Some(P12_PASSWORD));
    assert_eq!(rc, 0, "gpgsm --decrypt: {err}");
    assert_contains(
        &text(&plain),
        "the quarterly figures are final.",
        "plaintext",
    );
}

// ---------------------------------------------------------------------------------------------------------
// What others encrypt, we decrypt.
// ---------------------------------------------------------------------------------------------------------

fn plain_entity() -> Vec<u8> {
    message(ALICE, BOB, "", BODY)
}

#[test]
fn openssl_output_decrypts_with_ours() {
    if !common::have(&["openssl"]) {
        return;
    }
    let e = bob_home();
    e.import_np("p12/carol-legacy.p12");
    let plain = e.write_file("plain.eml", &plain_entity());
    let bob = fx("pki/bob.pem");
    let carol = fx("pki/carol.pem");
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "cms aes-256-cbc",
            vec!["cms", "-encrypt", "-aes256", &bob],
            "none",
        ),
        (
            "cms aes-128-cbc",
            vec!["cms", "-encrypt", "-aes-128-cbc", &bob],
            "none",
        ),
        (
            "cms aes-256-gcm",
            vec!["cms", "-encrypt", "-aes-256-gcm", &bob],
            "authenticated",
        ),
        (
            "cms aes-128-gcm",
            vec!["cms", "-encrypt", "-aes-128-gcm", &bob],
            "authenticated",
        ),
        (
            "cms OAEP",
            vec![
                "cms",
                "-encrypt",
                "-aes-256-gcm",
                "-recip",
                &bob,
                "-keyopt",
                "rsa_padding_mode:oaep",
                "-keyopt",
                "rsa_oaep_md:sha256",
            ],
            "authenticated",
        ),
        (
            "cms ECDH",
            vec!["cms", "-encrypt", "-aes-256-gcm", "-recip", &carol],
            "authenticated",
        ),
        (
            "smime aes-256-cbc",
            vec!["smime", "-encrypt", "-aes256", &bob],
            "none",
        ),
    ];
    for (name, args, integrity) in cases {
        let out = e.path("openssl.eml");
        // A recipient certificate operand (no -recip) must come last.
        let mut full = args.clone();
        if args.contains(&"-recip") {
            full.extend(["-in", s(&plain), "-out", s(&out)]);
        } else {
            let last = full.pop().unwrap();
            full.extend(["-in", s(&plain), "-out", s(&out), last]);
        }
        let (rc, _, err) = openssl(&full, None);
        assert_eq!(rc, 0, "{name}: openssl: {err}");
        let (o, data) = decrypt(&e, &std::fs::read(&out).unwrap(), &["--json"]);
        assert_code(&o, 0, name);
        let data = data.expect("decrypted output");
        assert_contains(&text(&data), "the quarterly figures are final.", name);
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["decryption"]["integrity"], integrity, "{name}: {j}");
        let who = if name.contains("ECDH") {
            "carol@example.net"
        } else {
            "bob@example.org"
        };
        assert!(
            j["decryption"]["decrypted_with"]
                .as_str()
                .unwrap()
                .contains(who),
            "{name}: {j}"
        );
    }
}

#[test]
fn gpgsm_output_decrypts_with_ours() {
    if !common::have(&["gpgsm", "gpgconf"]) {
        return;
    }
    let e = bob_home();
    let g = Gpg::new();
    g.import(
        &[
            &fx("pki/bob.pem"),
            &fx("pki/inter.pem"),
            &fx("pki/root.pem"),
        ],
        None,
    );
    g.trust(&fixture("pki/root.pem"));
    let plain = e.write_file("plain.eml", &plain_entity());
    let der = e.path("gpgsm.der");
    let (rc, _, err) = g.gpgsm(
        &[
            "--disable-crl-checks",
            "-r",
            "bob@example.org",
            "--encrypt",
            "-o",
            s(&der),
            s(&plain),
        ],
        None,
    );
    assert_eq!(rc, 0, "gpgsm --encrypt: {err}");
    let msg = wrap_p7m(&std::fs::read(&der).unwrap(), "enveloped-data", ALICE, BOB);
    let (o, data) = decrypt(&e, &msg, &[]);
    assert_code(&o, 0, "decrypt gpgsm output");
    assert_contains(
        &text(&data.unwrap()),
        "the quarterly figures are final.",
        "plaintext",
    );
    // gpgsm 2.2 uses AES-128-CBC: reported as confidentiality only.
    assert_contains(&text(&o.stderr), "no integrity", "CBC warning");
}

// ---------------------------------------------------------------------------------------------------------
// T01: the default output.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn t01_modern_is_authenveloped_aes256gcm_with_self_copy() {
    if !common::have(&["openssl"]) {
        return;
    }
    let e = bob_home();
    let msg = message(BOB, ALICE, "", BODY);
    let alice = fx("pki/alice.pem");
    // Alice's capabilities are unknown: AES-256-GCM under the modern policy (the default gives AES-256-CBC,
    // see t02_cipher_follows_capabilities).
    let modern = ["--cipher-policy", "modern"];
    let (enc1, report) = encrypt(&e, &msg, &["--cert", &alice, modern[0], modern[1]]);
    assert_contains(&report, "Encrypted with aes-256-gcm", "report");
    let h = headers(&enc1);
    assert_contains(
        &h,
        "Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m",
        "MIME wrapper",
    );
    assert_contains(&h, "Content-Transfer-Encoding: base64", "CTE");
    assert_contains(&h, "filename=smime.p7m", "Content-Disposition");
    for f in [
        "From: Bob",
        "To: Alice",
        "Subject: test message",
        "Date:",
        "Message-ID:",
    ] {
        assert_contains(&h, f, "outer header kept");
    }
    // Structure: contentType authEnvelopedData, aes-256-gcm, 12-byte nonce, ICVlen 16, 16-byte mac.
    let der = p7m_der(&enc1);
    let derf = e.write_file("t01.der", &der);
    let (rc, parsed, err) = openssl(&["asn1parse", "-inform", "DER", "-in", s(&derf)], None);
    assert_eq!(rc, 0, "asn1parse: {err}");
    let parsed = text(&parsed);
    assert_contains(&parsed, ":id-smime-ct-authEnvelopedData", "contentType");
    assert_contains(&parsed, ":aes-256-gcm", "content cipher");
    let lines: Vec<&str> = parsed.lines().collect();
    let gcm = lines
        .iter()
        .position(|l| l.contains(":aes-256-gcm"))
        .unwrap();
    // The GCMParameters follow: SEQUENCE { OCTET STRING nonce, INTEGER icvlen }.
    assert!(
        lines[gcm + 1].contains("cons: SEQUENCE"),
        "{}",
        lines[gcm + 1]
    );
    assert!(
        lines[gcm + 2].contains("l=  12 prim: OCTET STRING"),
        "nonce: {}",
        lines[gcm + 2]
    );
    assert!(
        lines[gcm + 3].contains("INTEGER") && lines[gcm + 3].trim_end().ends_with(":10"),
        "ICVlen: {}",
        lines[gcm + 3]
    );
    // Our output is BER with indefinite lengths (streamed): the mac is the last element before the EOCs.
    let mac = lines.iter().rev().find(|l| !l.contains("EOC")).unwrap();
    assert!(
        mac.contains("l=  16 prim: OCTET STRING"),
        "mac must be 16 bytes: {mac}"
    );
    // RecipientInfos: alice and the sender's own ID (bob).
    let printed = cms_print(&e.write_file("t01.eml", &enc1));
    let alice_serial = serial_of("pki/alice.pem");
    let bob_serial = serial_of("pki/bob.pem");
    assert_contains(&printed, &alice_serial, "alice's RecipientInfo");
    assert_contains(&printed, &bob_serial, "the sender's own RecipientInfo");
    assert_contains(
        &printed,
        "d.issuerAndSerialNumber",
        "issuer+serial identifiers",
    );
    assert!(!printed.contains("d.subjectKeyIdentifier"), "{printed}");
    // A second run: fresh key and nonce, so a different ciphertext.
    let (enc2, _) = encrypt(&e, &msg, &["--cert", &alice, modern[0], modern[1]]);
    assert_ne!(p7m_der(&enc2), der, "two runs gave the same CMS");
    let nonce = |d: &[u8]| {
        let i = d
            .windows(11)
            .position(|w| {
                w == [
                    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2e,
                ]
            })
            .unwrap();
        d[i + 15..i + 27].to_vec()
    };
    assert_ne!(nonce(&der), nonce(&p7m_der(&enc2)), "nonce reused");
    // openssl decrypts it as alice and as bob.
    let p = e.write_file("t01-again.eml", &enc2);
    for who in ["alice", "bob"] {
        let (rc, _, err) = openssl_decrypt(&p, who);
        assert_eq!(rc, 0, "openssl as {who}: {err}");
    }
    // --no-self: no RecipientInfo for bob.
    let (enc3, report) = encrypt(
        &e,
        &msg,
        &["--cert", &alice, "--no-self", modern[0], modern[1]],
    );
    assert!(!report.contains("bob@example.org"), "{report}");
    let printed = cms_print(&e.write_file("t01-noself.eml", &enc3));
    assert!(!printed.contains(&bob_serial), "--no-self kept bob");
    assert_contains(&printed, &alice_serial, "alice's RecipientInfo");
}

// ---------------------------------------------------------------------------------------------------------
// T02: the cipher from the recipients' capabilities (harvested by verify).
// ---------------------------------------------------------------------------------------------------------

/// A home with bob's ID whose contacts learned alice from `caps_msg` (a signed fixture message).
fn home_with_alice_caps(caps_msg: &str) -> Env {
    let e = bob_home();
    let o = e.ok(&["verify", &fx(&format!("msg/{caps_msg}"))]);
    assert_contains(&text(&o.stdout), "Added the signer's certificate", caps_msg);
    e
}

fn content_cipher_of(e: &Env, enc: &[u8]) -> String {
    let printed = cms_print(&e.write_file("cipher.eml", enc));
    let i = printed.find("contentEncryptionAlgorithm").unwrap();
    let line = printed[i..].lines().nth(1).unwrap();
    line.trim().to_string()
}

#[test]
fn t02_cipher_follows_capabilities() {
    if !common::have(&["openssl"]) {
        return;
    }
    let msg = message(BOB, ALICE, "", BODY);
    // AES-256-CBC only: CBC EnvelopedData, alice named as the reason.
    let e = home_with_alice_caps("caps-aes256cbc-only.eml");
    let (enc, report) = encrypt(&e, &msg, &[]);
    assert_contains(&report, "Encrypted with aes-256-cbc", "CBC-only");
    assert_contains(&report, "alice@example.com", "names who forced CBC");
    assert_contains(&report, "no integrity", "says what is lost");
    assert_contains(&headers(&enc), "smime-type=enveloped-data", "CBC-only");
    assert_contains(&content_cipher_of(&e, &enc), "aes-256-cbc", "CBC-only");
    // --cipher overrides.
    let (enc, report) = encrypt(&e, &msg, &["--cipher", "aes-256-gcm"]);
    assert_contains(
        &report,
        "Encrypted with aes-256-gcm: chosen with --cipher",
        "override",
    );
    assert_contains(&content_cipher_of(&e, &enc), "aes-256-gcm", "override");
    // A second recipient with unknown capabilities: still CBC for everyone, alice named.
    e.ok(&["contact", "add", &fx("pki/carol.pem")]);
    let msg2 = message(
        BOB,
        "Alice <alice@example.com>, carol@example.net",
        "",
        BODY,
    );
    let (enc, report) = encrypt(&e, &msg2, &[]);
    assert_contains(
        &report,
        "Encrypted with aes-256-cbc: alice@example.com",
        "mixed",
    );
    assert!(!report.contains("carol@example.net advertise"), "{report}");
    assert_contains(&content_cipher_of(&e, &enc), "aes-256-cbc", "mixed");

    // No capabilities: AES-256-CBC under the default (compatible) policy, with alice named and the advice to
    // sign inside; AES-256-GCM under the modern policy (rule 2).
    let e = home_with_alice_caps("caps-none.eml");
    let (enc, report) = encrypt(&e, &msg, &[]);
    assert_contains(&report, "Encrypted with aes-256-cbc", "no caps");
    assert_contains(
        &report,
        "Cipher policy: compatible; decided by alice@example.com",
        "no caps: policy and who decided",
    );
    assert_contains(&report, "Recommendation: aes-256-cbc", "no caps advice");
    assert_contains(&headers(&enc), "smime-type=enveloped-data", "no caps");
    assert_contains(&content_cipher_of(&e, &enc), "aes-256-cbc", "no caps");
    let (enc, report) = encrypt(&e, &msg, &["--cipher-policy", "modern"]);
    assert_contains(&report, "Encrypted with aes-256-gcm", "no caps, modern");
    assert_contains(&report, "rule 2", "no caps reason");
    assert_contains(&report, "Cipher policy: modern", "no caps, modern");
    assert!(!report.contains("Recommendation"), "{report}");
    assert_contains(
        &content_cipher_of(&e, &enc),
        "aes-256-gcm",
        "no caps, modern",
    );
    // --cipher aes-256-cbc for old clients.
    let (enc, report) = encrypt(&e, &msg, &["--cipher", "aes-256-cbc"]);
    assert_contains(&report, "chosen with --cipher", "override");
    assert_contains(&content_cipher_of(&e, &enc), "aes-256-cbc", "override");

    // Weak only (3DES, RC2-40): never 3DES or RC2 on output; the AES floor, with a warning.
    let e = home_with_alice_caps("caps-weak-only.eml");
    let (enc, report) = encrypt(&e, &msg, &[]);
    let c = content_cipher_of(&e, &enc);
    assert!(c.contains("aes-256"), "weak-only gave {c}");
    for bad in ["des", "rc2", "DES", "RC2"] {
        assert!(!c.contains(bad), "weak-only gave {c}");
    }
    assert_contains(&report, "3DES/RC2", "weak-only warning");
    assert_contains(
        &report,
        "only 3DES/RC2, which smimekit never produces",
        "weak-only reason",
    );
    assert!(
        !report.contains("only CBC ciphers"),
        "weak-only reason: {report}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Non-secure recipients and Bcc: nothing written, exit 2.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn non_secure_recipients_write_nothing() {
    let e = bob_home();
    e.ok(&[
        "contact",
        "add",
        &fx("pki/grace-expired.pem"),
        &fx("pki/dave-sign.pem"),
    ]);
    let msg = message(
        BOB,
        "Alice <alice@example.com>, grace@example.com, Dave <dave@example.com>",
        "",
        BODY,
    );
    let inp = e.write_file("plain.eml", &msg);
    let out = e.path("out.eml");
    let o = e.run(&["encrypt", s(&inp), "-o", s(&out)]);
    assert_code(&o, 2, "non-secure recipients");
    assert!(!out.exists(), "an output file was written");
    let err = text(&o.stderr);
    assert_contains(&err, "3 recipient(s)", "count");
    assert_contains(&err, "alice@example.com: no certificate", "alice: none");
    assert_contains(&err, "grace@example.com", "grace named");
    assert_contains(&err, "expired", "grace: expired");
    assert_contains(&err, "dave@example.com", "dave named");
    assert_contains(&err, "encryption", "dave: not for encryption");
    assert!(!err.contains("bob@example.org:"), "bob is fine: {err}");
    // To standard output: nothing on stdout either.
    let o = e.run(&["encrypt", s(&inp)]);
    assert_code(&o, 2, "non-secure recipients to stdout");
    assert!(o.stdout.is_empty(), "stdout: {}", text(&o.stdout));
    // The same rules for --cert.
    let msg = message(BOB, BOB, "", BODY);
    let inp = e.write_file("plain2.eml", &msg);
    for (cert, why) in [
        ("pki/grace-expired.pem", "expired"),
        ("pki/dave-sign.pem", "not for encryption"),
    ] {
        let o = e.run(&["encrypt", s(&inp), "--cert", &fx(cert), "-o", s(&out)]);
        assert_code(&o, 2, cert);
        assert_contains(&text(&o.stderr), why, cert);
        assert!(!out.exists());
    }
}

#[test]
fn bcc_is_refused_with_an_explanation() {
    let e = bob_home();
    e.ok(&["contact", "add", &fx("pki/alice.pem"), &fx("pki/carol.pem")]);
    let msg = message(BOB, ALICE, "Bcc: carol@example.net\r\n", BODY);
    let inp = e.write_file("plain.eml", &msg);
    let out = e.path("out.eml");
    let o = e.run(&["encrypt", s(&inp), "-o", s(&out)]);
    assert_code(&o, 2, "Bcc");
    assert!(!out.exists());
    let err = text(&o.stderr);
    assert_contains(&err, "Bcc", "explains Bcc");
    assert_contains(&err, "carol@example.net", "names the Bcc recipient");
    assert_contains(&err, "revealed", "says why");
    let o = e.run(&["encrypt", s(&inp)]);
    assert_code(&o, 2, "Bcc to stdout");
    assert!(o.stdout.is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// Sign + encrypt.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn sign_and_encrypt_round_trip() {
    if !common::have(&["openssl"]) {
        return;
    }
    let a = alice_home();
    let msg = message(ALICE, BOB, "", BODY);
    // AES-GCM (bob's capabilities are unknown: the modern policy) so the decryption is authenticated.
    let (enc, report) = encrypt(&a, &msg, &["--sign", "--cipher-policy", "modern"]);
    assert_contains(&report, "Signed before encryption", "report");
    let b = bob_home();
    let (o, data) = decrypt(&b, &enc, &[]);
    assert_code(&o, 0, "decrypt+verify");
    let out = text(&o.stdout);
    assert_contains(&out, "authenticated encryption", "decryption report");
    assert_contains(&out, "VALID signature", "verify report");
    assert_contains(
        &text(&data.unwrap()),
        "the quarterly figures are final.",
        "content",
    );
    // The signer was harvested: bob can now encrypt to alice from the contacts.
    let o = b.ok(&["contact", "list"]);
    assert_contains(&text(&o.stdout), "alice@example.com", "harvested");

    // Ours sign+encrypt -> openssl cms -decrypt | openssl cms -verify.
    let p = a.write_file("se.eml", &enc);
    let (rc, inner, err) = openssl_decrypt(&p, "bob");
    assert_eq!(rc, 0, "openssl decrypt: {err}");
    let (rc, content, err) = openssl(
        &[
            "cms",
            "-verify",
            "-CAfile",
            &fx("pki/root.pem"),
            "-purpose",
            "smimesign",
        ],
        Some(&inner),
    );
    assert_eq!(rc, 0, "openssl cms -verify: {err}");
    assert_contains(
        &text(&content),
        "the quarterly figures are final.",
        "verified",
    );

    // openssl sign -> ours encrypt -> ours decrypt+verify.
    let body = b.write_file(
        "body.txt",
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\nSigned by openssl.\r\n",
    );
    let (rc, signed, err) = openssl(
        &[
            "cms",
            "-sign",
            "-signer",
            &fx("pki/alice.pem"),
            "-inkey",
            &fx("pki/alice.key"),
            "-certfile",
            &fx("pki/inter.pem"),
            "-md",
            "sha256",
            "-in",
            s(&body),
        ],
        None,
    );
    assert_eq!(rc, 0, "openssl cms -sign: {err}");
    let mut m = format!(
        "From: {ALICE}\r\nTo: {BOB}\r\nSubject: openssl-signed\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
    )
    .into_bytes();
    m.extend(signed);
    let (enc, _) = encrypt(&a, &m, &[]);
    let (o, data) = decrypt(&b, &enc, &[]);
    assert_code(&o, 0, "decrypt+verify of openssl-signed");
    assert_contains(&text(&o.stdout), "VALID signature", "verify report");
    assert_contains(&text(&data.unwrap()), "Signed by openssl.", "content");
}

// ---------------------------------------------------------------------------------------------------------
// Decrypt negatives.
// ---------------------------------------------------------------------------------------------------------

/// Flips the byte `from_end` bytes before the end of the CMS inside a message, not counting the trailing
/// end-of-contents octets of our indefinite-length output (so `1` is the last byte of the GCM mac).
fn flip(msg: &[u8], from_end: usize) -> Vec<u8> {
    let mut der = p7m_der(msg);
    let mut end = der.len();
    while end >= 2 && der[end - 2..end] == [0, 0] {
        end -= 2;
    }
    let i = end - from_end;
    der[i] ^= 0x01;
    wrap_p7m(&der, "authEnveloped-data", ALICE, BOB)
}

#[test]
fn decrypt_negatives() {
    let a = alice_home();
    let long_body = "The quarterly figures are final.\n".repeat(40);
    let msg = message(ALICE, BOB, "", &long_body);
    // AES-GCM (the modern policy): the negatives below are about its authentication.
    let (enc, _) = encrypt(&a, &msg, &["--no-self", "--cipher-policy", "modern"]);
    let b = bob_home();
    let (o, _) = decrypt(&b, &enc, &[]);
    assert_code(&o, 0, "baseline");

    // A flipped ciphertext byte (the 16-byte mac and its 2-byte header are last; go 40 bytes back, inside
    // the last ciphertext chunk).
    let bad = flip(&enc, 40);
    let (o, data) = decrypt(&b, &bad, &[]);
    assert_code(&o, 2, "flipped GCM ciphertext");
    assert!(data.is_none(), "an output file was written");
    assert!(o.stdout.is_empty(), "stdout: {}", text(&o.stdout));
    assert_contains(&text(&o.stderr), "modified", "tag failure");
    // Also to standard output: nothing.
    let o = b.run_stdin(&["decrypt"], &bad);
    assert_code(&o, 2, "flipped GCM ciphertext to stdout");
    assert!(o.stdout.is_empty(), "stdout: {}", text(&o.stdout));
    // A flipped tag byte.
    let (o, data) = decrypt(&b, &flip(&enc, 1), &[]);
    assert_code(&o, 2, "flipped tag");
    assert!(data.is_none());
    assert_contains(&text(&o.stderr), "authentication tag", "tag failure");

    // Truncated CMS.
    let der = p7m_der(&enc);
    let cut = wrap_p7m(&der[..der.len() * 2 / 3], "authEnveloped-data", ALICE, BOB);
    let (o, data) = decrypt(&b, &cut, &[]);
    assert_code(&o, 2, "truncated CMS");
    assert!(data.is_none());
    assert!(o.stdout.is_empty());
    assert!(!text(&o.stderr).contains("panicked"), "{}", text(&o.stderr));

    // Not for us: exit 2, listing the recipients.
    let (o, data) = decrypt(&a, &enc, &[]);
    assert_code(&o, 2, "not for alice (no self copy)");
    assert!(data.is_none());
    let err = text(&o.stderr);
    assert_contains(&err, "none of your digital IDs", "not for us");
    assert_contains(&err, &serial_of("pki/bob.pem"), "lists bob's RecipientInfo");
}

/// A message large enough for the fast paths (base64 decoded by two threads, several output buffers written by
/// the writer thread): the plaintext comes back exactly, with CRLF and LF files, and a tampered one leaves an
/// existing OUT as it was.
#[test]
fn large_message_fast_paths() {
    let a = alice_home();
    let body: String = (0..120_000)
        .map(|i| {
            format!("line {i:06} of the large message, padded to a fixed width for the test\n")
        })
        .collect();
    let msg = message(ALICE, BOB, "", &body);
    let (enc, _) = encrypt(&a, &msg, &["--no-self", "--cipher-policy", "modern"]);
    assert!(enc.len() > 8 << 20, "{}", enc.len());
    let b = bob_home();
    let (o, data) = decrypt(&b, &enc, &[]);
    assert_code(&o, 0, "large message");
    let data = data.unwrap();
    // The plaintext is the whole message: the body lines follow the header block, unchanged.
    let sep = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let msg_sep = msg.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(data[sep..] == msg[msg_sep..], "plaintext differs");

    // The same file with LF line ends.
    let lf: Vec<u8> = text(&enc).replace("\r\n", "\n").into_bytes();
    let (o, lf_data) = decrypt(&b, &lf, &[]);
    assert_code(&o, 0, "large message, LF");
    assert!(lf_data.unwrap()[sep..] == data[sep..]);

    // One irregular line (a long line split in two): the general decoder, same plaintext.
    let mut irregular = text(&enc);
    let at = irregular.len() / 2;
    let at = at + irregular[at..].find("\r\n").unwrap() + 2 + 10;
    irregular.insert_str(at, "\r\n");
    let (o, irr_data) = decrypt(&b, irregular.as_bytes(), &[]);
    assert_code(&o, 0, "large message, irregular lines");
    assert!(irr_data.unwrap()[sep..] == data[sep..]);

    // A flipped ciphertext byte near the end: exit 2 and an existing OUT is left as it was.
    let bad = flip(&enc, 40);
    let inp = b.write_file("bad.eml", &bad);
    let out = b.write_file("keep.eml", b"previous content");
    let o = b.run(&["decrypt", s(&inp), "-o", s(&out)]);
    assert_code(&o, 2, "flipped GCM ciphertext, large");
    assert_eq!(std::fs::read(&out).unwrap(), b"previous content");
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".smimekit-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");

    // Bad base64 in the middle: the general decoder's error.
    let mut broken = enc.clone();
    let mid = broken.len() / 2;
    broken[mid] = b'*';
    let (o, data) = decrypt(&b, &broken, &[]);
    assert_code(&o, 2, "bad base64");
    assert!(data.is_none());
    assert_contains(&text(&o.stderr), "base64", "bad base64 error");
}

#[test]
fn wrong_passphrase_is_exit_2() {
    let e = Env::new();
    e.import("p12/bob.p12"); // with the test passphrase
    let enc = std::fs::read(fixture("msg/enc/aes256gcm-bob.eml")).unwrap();
    let inp = e.write_file("in.eml", &enc);
    let out = e.path("out.eml");
    let o = e.run_with_passphrase(&["decrypt", s(&inp), "-o", s(&out)], "not the passphrase");
    assert_code(&o, 2, "wrong passphrase");
    assert_contains(&text(&o.stderr), "wrong passphrase", "message");
    assert!(!out.exists());
    assert!(o.stdout.is_empty());
    let o = e.ok(&["decrypt", s(&inp), "-o", s(&out)]);
    let plain = std::fs::read(&out).unwrap_or_else(|_| panic!("no output: {}", text(&o.stderr)));
    assert_contains(
        &text(&plain),
        "Hello Bob",
        "decrypted with the right passphrase",
    );
}

#[test]
fn expired_id_still_decrypts_old_mail() {
    if !common::have(&["openssl"]) {
        return;
    }
    let e = Env::new();
    e.import_np("p12/grace-expired.p12");
    let plain = e.write_file("plain.eml", &message(ALICE, "grace@example.com", "", BODY));
    let enc = e.path("enc.eml");
    let (rc, _, err) = openssl(
        &[
            "cms",
            "-encrypt",
            "-aes-256-gcm",
            "-in",
            s(&plain),
            "-out",
            s(&enc),
            &fx("pki/grace-expired.pem"),
        ],
        None,
    );
    assert_eq!(rc, 0, "openssl: {err}");
    let (o, data) = decrypt(&e, &std::fs::read(&enc).unwrap(), &[]);
    assert_code(&o, 0, "expired ID decrypts");
    assert_contains(
        &text(&data.unwrap()),
        "the quarterly figures are final.",
        "content",
    );
    // But nobody encrypts new mail to it, including grace herself.
    let o = e.run(&["encrypt", s(&plain), "--cert", &fx("pki/grace-expired.pem")]);
    assert_code(&o, 2, "encrypt to an expired cert");
    assert_contains(
        &text(&o.stderr),
        "expired",
        "why the certificate is refused",
    );
}

// ---------------------------------------------------------------------------------------------------------
// --json shapes.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn json_reports() {
    let e = bob_home();
    let msg = message(BOB, ALICE, "", BODY);
    let inp = e.write_file("plain.eml", &msg);
    let out = e.path("enc.eml");
    let o = e.ok(&[
        "--json",
        "encrypt",
        s(&inp),
        "--cert",
        &fx("pki/alice.pem"),
        "--cipher-policy",
        "modern",
        "-o",
        s(&out),
    ]);
    let j: Value = serde_json::from_slice(&o.stdout).expect("encrypt --json is JSON");
    assert_eq!(j["cipher"], "aes-256-gcm", "{j}");
    assert!(
        j["cipher_reason"].as_str().unwrap().contains("rule 2"),
        "{j}"
    );
    assert_eq!(j["cipher_policy"], "modern", "{j}");
    assert_eq!(
        j["decided_by"],
        serde_json::json!(["alice@example.com"]),
        "{j}"
    );
    assert_eq!(j["cipher_forced"], false, "{j}");
    assert_eq!(j["integrity"], true, "{j}");
    assert!(j["recommendation"].is_null(), "{j}");
    assert!(j["notes"].as_array().unwrap().is_empty(), "{j}");
    assert!(j["warnings"].is_array(), "{j}");
    let r = j["recipients"].as_array().unwrap();
    assert_eq!(r.len(), 2, "{j}");
    for x in r {
        for k in [
            "address",
            "fingerprint",
            "source",
            "oaep",
            "reason",
            "key_type",
            "capabilities",
        ] {
            assert!(x.get(k).is_some(), "recipient lacks {k}: {x}");
        }
        assert_eq!(x["fingerprint"].as_str().unwrap().len(), 64);
    }
    assert!(
        r.iter()
            .any(|x| x["address"] == "alice@example.com" && x["source"] == "--cert")
    );
    assert!(
        r.iter()
            .any(|x| x["address"] == "bob@example.org" && x["source"] == "own ID")
    );

    // decrypt --json, unsigned content.
    let dec = e.path("dec.eml");
    let o = e.ok(&["--json", "decrypt", s(&out), "-o", s(&dec)]);
    let j: Value = serde_json::from_slice(&o.stdout).expect("decrypt --json is JSON");
    assert_eq!(j["signed"], false, "{j}");
    let d = &j["decryption"];
    assert_eq!(d["content_cipher"], "aes-256-gcm", "{j}");
    assert_eq!(d["integrity"], "authenticated", "{j}");
    assert_eq!(d["kind"], "auth_enveloped", "{j}");
    assert!(
        d["decrypted_with"]
            .as_str()
            .unwrap()
            .contains("bob@example.org")
    );
    assert_eq!(d["recipients"].as_array().unwrap().len(), 2, "{j}");
    assert!(d["warnings"].as_array().unwrap().is_empty(), "{j}");

    // decrypt --json, signed content: the verify report with the decryption inside.
    let o = e.ok(&[
        "--json",
        "decrypt",
        &fx("msg/enc/sign-then-encrypt.eml"),
        "-o",
        s(&dec),
    ]);
    let j: Value = serde_json::from_slice(&o.stdout).expect("decrypt --json (signed) is JSON");
    assert_eq!(j["decryption"]["integrity"], "authenticated", "{j}");
    assert!(j.get("signers").is_some(), "verify report fields: {j}");
    assert!(j.get("harvest").is_some(), "{j}");
}

/// T33: an encrypted part embedded in other content is never decrypted automatically; `--part N` opens it as a
/// message of its own, without the attacker's HTML around it.
#[test]
fn embedded_encrypted_part_only_with_explicit_part() {
    let e = Env::new();
    e.import_np("p12/bob.p12");
    let f = fx("msg/enc/efail-direct-exfil.eml");
    let o = e.run(&["decrypt", &f]);
    assert_code(&o, 2, "automatic decryption of an embedded part");
    assert!(o.stdout.is_empty());
    assert!(text(&o.stderr).contains("--part 2"), "{}", text(&o.stderr));
    let out = e.path("part2.eml");
    let o = e.run(&["decrypt", "--part", "2", "-o", s(&out), &f]);
    assert_code(&o, 0, "decrypt --part 2");
    let plain = text(&std::fs::read(&out).unwrap());
    assert!(plain.contains("door code"), "{plain}");
    assert!(
        !plain.contains("<img") && !plain.contains("efail.invalid"),
        "sibling HTML leaked: {plain}"
    );
    assert_code(
        &e.run(&["decrypt", "--part", "9", &f]),
        2,
        "a part that does not exist",
    );
}
