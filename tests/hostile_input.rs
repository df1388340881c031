//! Hostile input: certificates with thousands of addresses, oversized files and streams, SignedData with too
//! many certificates, a closed or broken standard output, and `-o` naming the input. Each test asserts the
//! error (text and exit code), that nothing was written, and that the store did not change.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use common::{Env, fixture, text};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509NameBuilder};

fn inter() -> (X509, PKey<Private>) {
    let c = X509::from_pem(&std::fs::read(fixture("pki/inter.pem")).unwrap()).unwrap();
    let k = PKey::private_key_from_pem(&std::fs::read(fixture("pki/inter.key")).unwrap()).unwrap();
    (c, k)
}

/// A certificate issued by the fixture intermediate for `emails` (SAN), with `key`.
fn issue(key: &PKey<Private>, emails: &[String]) -> X509 {
    let (ica, ikey) = inter();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(4242).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", "Many").unwrap();
    b.set_subject_name(&n.build()).unwrap();
    b.set_issuer_name(ica.subject_name()).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(3650).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.append_extension(ExtendedKeyUsage::new().email_protection().build().unwrap())
        .unwrap();
    let mut san = SubjectAlternativeName::new();
    for e in emails {
        san.email(e);
    }
    let san = san.build(&b.x509v3_context(Some(&ica), None)).unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ikey, MessageDigest::sha256()).unwrap();
    b.build()
}

#[test]
fn certificate_with_10000_addresses_is_capped_with_a_note() {
    let e = Env::new();
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let emails: Vec<String> = (1..=10_000)
        .map(|i| format!("user{i}@example.com"))
        .collect();
    let c = issue(&key, &emails);
    let f = e.write("many.pem", &c.to_pem().unwrap());
    let o = e.run(&["contact", "add", &f]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("lists more than 1000 e-mail addresses; only the first 1000 are considered (9000 ignored)"),
        "{err}"
    );
    let o = e.ok(&["--json", "contact", "list"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let emails = j["contacts"][0]["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 1000);
    assert_eq!(emails[0], "user1@example.com");
    let weak = j["contacts"][0]["weaknesses"].to_string();
    assert!(weak.contains("9000 were ignored"), "{weak}");
    // A message signed with it: inspect notes the cap too.
    if !common::have(&["openssl"]) {
        return;
    }
    let k = e.write("many.key", &key.private_key_to_pem_pkcs8().unwrap());
    let m = e.write(
        "m.eml",
        b"From: user1@example.com\r\nTo: b@example.org\r\nSubject: x\r\n\r\nhello\r\n",
    );
    let signed = e.path("signed.eml");
    let (rc, _, err) = common::external(
        "openssl",
        &[
            "smime",
            "-sign",
            "-in",
            &m,
            "-signer",
            &f,
            "-inkey",
            &k,
            "-out",
            signed.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    let o = e.ok(&["inspect", signed.to_str().unwrap()]);
    let t = text(&o.stdout);
    assert!(
        t.contains("lists more than 1000 e-mail addresses; 9000 were ignored"),
        "{t}"
    );
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let e = Env::new();
    e.import_np("p12/alice-modern.p12");
    let before = e.snapshot();
    // A sparse 1 GiB file: reading it would take seconds and a gigabyte; the size is refused first.
    let big = e.path("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let big = big.to_str().unwrap();
    for (args, limit) in [
        (
            vec!["contact", "add", big],
            "4 MiB, too large for a certificate file",
        ),
        (
            vec!["trust", "add", big],
            "4 MiB, too large for a certificate file",
        ),
        (
            vec!["id", "import", big],
            "16 MiB, too large for a PKCS#12 file",
        ),
        (
            vec!["id", "restore", big],
            "16 MiB, too large for a PKCS#12 file",
        ),
        (
            vec!["id", "install-cert", big],
            "4 MiB, too large for a certificate file",
        ),
    ] {
        let t = std::time::Instant::now();
        let o = e.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains(limit) && err.contains("nothing was read"),
            "{args:?}: {err}"
        );
        // Not a timing test: a read of 1 GiB would show up as seconds, a refusal by size as milliseconds.
        assert!(t.elapsed().as_secs() < 20, "{args:?}");
    }
    assert!(e.snapshot() == before, "the store changed");
    // A passphrase file that never ends is refused after 64 KiB.
    let o = e.run(&[
        "id",
        "passwd",
        "alice@example.com",
        "--new-passphrase-file",
        "/dev/zero",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("/dev/zero is larger than 64 KiB, too large for a secret file"),
        "{}",
        text(&o.stderr)
    );
    assert!(e.snapshot() == before, "the store changed");
}

#[test]
fn a_stream_that_is_not_a_message_is_refused_at_once() {
    let e = Env::new();
    let o = e.run(&["inspect", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("/dev/zero does not look like a mail message"),
        "{}",
        text(&o.stderr)
    );
    // Through a pipe; smimekit stops reading early, so the writer may see a broken pipe (ignored here).
    let mut child = e
        .cmd(&["inspect", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut w, &vec![0u8; 8 << 20]);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("standard input does not look like a mail message"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn standard_input_redirected_from_a_file_is_read_as_that_file() {
    let e = Env::new();
    let f = std::fs::File::open(fixture("msg/valid-rsa-alice.eml")).unwrap();
    let o = e.cmd(&["inspect", "-"]).stdin(f).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("signed"), "{}", text(&o.stdout));
}

/// The opaque signed fixture with its certificates field repeated to `n` certificates.
fn signed_data_with_certs(n: usize) -> Vec<u8> {
    use smimekit::der;
    let orig = std::fs::read(fixture("msg/valid-opaque-alice.der")).unwrap();
    let top = der::parse_one(&orig).unwrap();
    let ci = top.children().unwrap();
    let sd = ci[1].children().unwrap().remove(0);
    let f = sd.children().unwrap();
    let certs = f.iter().find(|t| t.tag == 0xa0).expect("certificates");
    let one = certs.children().unwrap()[0].raw.to_vec();
    let many: Vec<u8> = one.repeat(n);
    let parts: Vec<&[u8]> = f
        .iter()
        .map(|t| if t.tag == 0xa0 { &[][..] } else { t.raw })
        .collect();
    let certs_field = der::tlv(0xa0, &many);
    let mut fields: Vec<&[u8]> = Vec::new();
    for (t, p) in f.iter().zip(&parts) {
        if t.tag == 0xa0 {
            fields.push(&certs_field);
        } else {
            fields.push(p);
        }
    }
    let sd2 = der::seq(&fields);
    let der = der::seq(&[ci[0].raw, &der::tlv(0xa0, &sd2)]);
    // As an opaque signed message (application/pkcs7-mime, base64).
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let mut msg = b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: many certificates\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    for line in b64.as_bytes().chunks(76) {
        msg.extend_from_slice(line);
        msg.extend_from_slice(b"\r\n");
    }
    msg
}

#[test]
fn signed_data_with_too_many_certificates_is_refused() {
    let e = Env::new();
    // 1,000 is accepted as far as the count goes (the signature itself still verifies).
    let ok = e.write("ok.eml", &signed_data_with_certs(1000));
    let o = e.run(&["inspect", &ok]);
    assert!(
        !text(&o.stderr).contains("certificates; more than"),
        "{}",
        text(&o.stderr)
    );
    let bad = e.write("bad.eml", &signed_data_with_certs(1001));
    for args in [
        vec!["inspect", bad.as_str()],
        vec!["verify", bad.as_str(), "--no-harvest", "--no-system-trust"],
    ] {
        let t = std::time::Instant::now();
        let o = e.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains("the signature carries 1001 certificates; more than 1000 is refused"),
            "{args:?}: {err}"
        );
        assert!(o.stdout.is_empty());
        assert!(t.elapsed().as_secs() < 20);
    }
}

/// A message from alice to herself with `body`.
fn to_self(body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.com>\r\nTo: alice@example.com\r\nSubject: test\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}"
    )
    .into_bytes()
}

/// A message of about 400 KB (more than a pipe buffer) from alice to herself.
fn big_message() -> Vec<u8> {
    to_self(
        &"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456\r\n".repeat(6000),
    )
}

#[test]
fn closed_standard_output_is_an_error() {
    let e = Env::new();
    e.import_np("p12/alice-modern.p12");
    e.import_np("p12/bob.p12");
    let msg = e.write("m.eml", &big_message());
    let enc = fixture("msg/enc/aes256gcm-bob.eml");
    for args in [
        vec!["id", "list"],
        vec!["sign", msg.as_str()],
        vec![
            "inspect",
            fixture("msg/valid-rsa-alice.eml").to_str().unwrap(),
        ],
        vec!["decrypt", enc.to_str().unwrap()],
    ] {
        let mut c = e.cmd(&args);
        // SAFETY: close(2) is async-signal-safe; the child then starts with descriptor 1 closed (`>&-`).
        unsafe {
            c.pre_exec(|| {
                libc::close(1);
                Ok(())
            });
        }
        let o = c
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("standard output is closed"),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
}

#[test]
fn broken_pipe_is_an_error() {
    let e = Env::new();
    e.import_np("p12/alice-modern.p12");
    let msg = e.write("m.eml", &big_message());
    // Encrypt to alice, so that decrypt has a large plaintext to write.
    let enc = e.path("m.enc");
    e.ok(&["encrypt", &msg, "-o", enc.to_str().unwrap()]);
    for args in [
        vec!["sign", msg.as_str()],
        vec!["decrypt", enc.to_str().unwrap()],
    ] {
        let mut child = e
            .cmd(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away (`| head -c 10` after ten bytes)
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr)
                .contains("standard output was closed by the program reading it (broken pipe)"),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
}

#[test]
fn dev_full_gets_a_hint() {
    let e = Env::new();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = e
        .cmd(&[
            "inspect",
            fixture("msg/valid-rsa-alice.eml").to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("standard output is full"), "{err}");
    assert!(err.contains("hint: standard output is /dev/full"), "{err}");
}

#[test]
fn output_naming_the_input_is_refused() {
    let e = Env::new();
    e.import_np("p12/alice-modern.p12");
    let msg = to_self("hello\r\n");
    let f = e.write("m.eml", &msg);
    let link = e.path("link.eml");
    std::fs::hard_link(&f, &link).unwrap();
    let before = e.snapshot();
    for out in [f.as_str(), link.to_str().unwrap()] {
        let o = e.run(&["sign", &f, "-o", out]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            text(&o.stderr).contains("would replace the input"),
            "{}",
            text(&o.stderr)
        );
    }
    // decrypt -o the ciphertext itself: the ciphertext must survive.
    let enc = e.path("m.enc");
    e.ok(&["encrypt", &f, "-o", enc.to_str().unwrap()]);
    let cipher = std::fs::read(&enc).unwrap();
    let enc = enc.to_str().unwrap();
    let o = e.run(&["decrypt", enc, "-o", enc]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("would replace the input"));
    assert_eq!(std::fs::read(enc).unwrap(), cipher);
    // Standard input redirected from the output file.
    let o = e
        .cmd(&["sign", "-o", &f])
        .stdin(std::fs::File::open(&f).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("would replace the input"));
    assert_eq!(std::fs::read(&f).unwrap(), msg);
    assert!(e.snapshot() == before);
}
