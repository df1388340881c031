//! NSS — the crypto library of Thunderbird — as a peer: what smimekit writes, NSS's `cmsutil` verifies and
//! decrypts, and what `cmsutil` writes, smimekit verifies and decrypts. Each test has its own temporary NSS
//! database (`certutil`/`pk12util`) with the fixture root trusted for e-mail and the recipient's PKCS#12
//! imported. `cmsutil -D` exits 0 even for a bad signature, so the tests read its `signer0.status=` line.

mod common;

use std::path::PathBuf;

use common::*;

const ALICE: &str = "Alice <alice@example.com>";
const BOB: &str = "Bob <bob@example.org>";
const CAROL: &str = "Carol <carol@example.net>";
const BODY: &str = "Hello,\nthe quarterly figures are final: 1,000,000 EUR.\n-- \nsmimekit";
const NSS_BODY: &str = "Written by NSS cmsutil for smimekit.";

/// The peer programs every test here needs.
const NSS_TOOLS: [&str; 3] = ["cmsutil", "certutil", "pk12util"];

/// A temporary NSS database (no password) trusting the fixture root for e-mail.
struct NssDb {
    dir: tempfile::TempDir,
}

impl NssDb {
    fn new() -> NssDb {
        let dir = tempfile::tempdir().unwrap();
        let db = NssDb { dir };
        db.tool("certutil", &["-N", "--empty-password"]);
        db.add_cert("smimekit-root", "pki/root.pem", "C,C,C");
        db.add_cert("smimekit-inter", "pki/inter.pem", ",,");
        db
    }
    fn spec(&self) -> String {
        format!("sql:{}", self.dir.path().display())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// Runs an NSS tool on this database; asserts exit 0 and returns its standard output.
    fn tool(&self, prog: &str, args: &[&str]) -> Vec<u8> {
        let spec = self.spec();
        let mut full = vec!["-d", spec.as_str()];
        full.extend(args);
        let (rc, out, err) = external(prog, &full, None);
        assert_eq!(rc, 0, "{prog} {args:?}: {err}");
        out
    }
    /// Adds a certificate (no key) with NSS trust flags `trust`.
    fn add_cert(&self, nick: &str, pem: &str, trust: &str) {
        self.tool("certutil", &["-A", "-n", nick, "-t", trust, "-i", &fx(pem)]);
    }
    /// Imports a fixture PKCS#12 (key, certificate and chain).
    fn import_p12(&self, p12: &str) {
        self.tool("pk12util", &["-i", &fx(p12), "-W", P12_PASSWORD, "-K", ""]);
    }
    /// `cmsutil -D -h 2` on DER (with the detached `content`, if any); returns (exit code, output, stderr):
    /// the output is NSS's `SMIME: level=…; signer0.status=…` lines followed by the content.
    fn decode(&self, der: &[u8], content: Option<&[u8]>) -> (i32, String, String) {
        let inp = self.write("in.der", der);
        let spec = self.spec();
        let mut args = vec![
            "-D",
            "-d",
            spec.as_str(),
            "-h",
            "2",
            "-p",
            "",
            "-i",
            s(&inp),
        ];
        let c;
        if let Some(data) = content {
            c = self.write("content.bin", data);
            args.extend(["-c", s(&c)]);
        }
        let (rc, out, err) = external("cmsutil", &args, None);
        (rc, text(&out), err)
    }
    /// `cmsutil -D` into a file: the exact decoded content (asserts success).
    fn decode_to_bytes(&self, der: &[u8]) -> Vec<u8> {
        let inp = self.write("in.der", der);
        let out = self.path("out.bin");
        self.tool("cmsutil", &["-D", "-p", "", "-i", s(&inp), "-o", s(&out)]);
        std::fs::read(out).unwrap()
    }
    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }
    /// `cmsutil -S` by `nick` over `content` with `hash`; `detached` leaves the content out (-T). Adds a signing
    /// time (-G) and NSS's SMIMECapabilities (-P), as Thunderbird does.
    fn sign(&self, nick: &str, content: &[u8], hash: &str, detached: bool) -> Vec<u8> {
        let inp = self.write("to-sign.bin", content);
        let out = self.path("signed.der");
        let mut args = vec![
            "-S",
            "-N",
            nick,
            "-H",
            hash,
            "-G",
            "-P",
            "-p",
            "",
            "-i",
            s(&inp),
            "-o",
            s(&out),
        ];
        if detached {
            args.push("-T");
        }
        self.tool("cmsutil", &args);
        std::fs::read(out).unwrap()
    }
    /// `cmsutil -E` of `content` to the recipients `to` (addresses of certificates in the database).
    fn encrypt(&self, content: &[u8], to: &str) -> Vec<u8> {
        let inp = self.write("to-encrypt.bin", content);
        let out = self.path("enveloped.der");
        self.tool(
            "cmsutil",
            &["-E", "-r", to, "-p", "", "-i", s(&inp), "-o", s(&out)],
        );
        std::fs::read(out).unwrap()
    }
}

/// The signer status NSS reported for signer 0 (`GoodSignature`, `DigestMismatch`, …).
fn signer_status(nss_out: &str) -> String {
    nss_out
        .split("signer0.status=")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or("(no signer0.status in NSS output)")
        .trim()
        .to_string()
}

/// Flips one byte of `needle`'s first occurrence in `data`.
fn flip_in(data: &[u8], needle: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    let i = find(&d, needle).expect("needle present");
    d[i] ^= 0x01;
    d
}

/// A home with `p12` imported without a passphrase and the fixture root trusted.
fn home_with(p12: &str) -> Env {
    let e = Env::new();
    e.import_np(p12);
    e.trust_root();
    e
}

/// Runs smimekit `encrypt` on `msg` with `args`; returns the encrypted message and the report (stdout +
/// stderr).
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

/// The MIME entity NSS signs and encrypts (CRLF).
fn nss_entity() -> Vec<u8> {
    format!("Content-Type: text/plain; charset=us-ascii\r\n\r\n{NSS_BODY}\r\n").into_bytes()
}

/// Wraps an entity and a detached signature (DER) as a multipart/signed message, as a mail client does.
fn wrap_signed(entity: &[u8], sig: &[u8], micalg: &str, from: &str, to: &str) -> Vec<u8> {
    let b = "nss-boundary-7f3a";
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: signed by NSS\r\nDate: Wed, 25 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg={micalg}; boundary=\"{b}\"\r\n\r\n--{b}\r\n"
    )
    .into_bytes();
    m.extend_from_slice(entity);
    m.extend_from_slice(
        format!("\r\n--{b}\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7s\r\n\r\n").as_bytes(),
    );
    for line in openssl::base64::encode_block(sig).as_bytes().chunks(64) {
        m.extend_from_slice(line);
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    m
}

fn assert_contains(hay: &str, needle: &str, what: &str) {
    assert!(
        hay.contains(needle),
        "{what}: expected {needle:?} in:\n{hay}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// ours → NSS
// ---------------------------------------------------------------------------------------------------------

/// Detached and opaque signatures by an RSA (alice) and an EC (carol) key with SHA-256/384/512 verify in NSS
/// (`GoodSignature`); one changed byte of the signed text gives a failure status.
#[test]
fn our_signatures_verify_in_nss() {
    if !have(&NSS_TOOLS) {
        return;
    }
    let nss = NssDb::new();
    for (p12, from) in [
        ("p12/alice-modern.p12", ALICE),
        ("p12/carol-legacy.p12", CAROL),
    ] {
        let e = home_with(p12);
        let msg = message(from, BOB, "", BODY);
        for digest in ["sha256", "sha384", "sha512"] {
            let what = format!("{from} {digest}");
            // Detached (multipart/signed).
            let signed = e.sign(&msg, &["--digest", digest]);
            let (content, sig) = split_signed(&signed);
            let (rc, out, err) = nss.decode(&sig, Some(&content));
            assert_eq!(rc, 0, "{what} detached: cmsutil -D: {err}");
            assert_eq!(
                signer_status(&out),
                "GoodSignature",
                "{what} detached:\n{out}"
            );
            let (_, out, _) = nss.decode(&sig, Some(&flip_in(&content, b"1,000,000")));
            let status = signer_status(&out);
            assert_ne!(
                status, "GoodSignature",
                "{what} detached, changed byte:\n{out}"
            );
            assert_contains(&out, "signer0.status=", "a status for the changed text");
            // Opaque (application/pkcs7-mime signed-data): the content is inside the DER.
            let signed = e.sign(&msg, &["--digest", digest, "--opaque"]);
            let der = p7m_der(&signed);
            let (rc, out, err) = nss.decode(&der, None);
            assert_eq!(rc, 0, "{what} opaque: cmsutil -D: {err}");
            assert_eq!(
                signer_status(&out),
                "GoodSignature",
                "{what} opaque:\n{out}"
            );
            assert_contains(&out, "1,000,000 EUR", "opaque content through NSS");
            let (_, out, _) = nss.decode(&flip_in(&der, b"1,000,000"), None);
            assert!(
                !out.contains("signer0.status=GoodSignature"),
                "{what} opaque, changed byte:\n{out}"
            );
        }
    }
}

/// Our default encryption to RSA recipients whose capabilities are unknown (certificates from files) is
/// AES-256-CBC EnvelopedData, and NSS decrypts it — for each recipient.
#[test]
fn our_default_encryption_decrypts_in_nss() {
    if !have(&NSS_TOOLS) {
        return;
    }
    let e = home_with("p12/alice-modern.p12");
    let msg = message(
        ALICE,
        "Bob <bob@example.org>, Eve <eve@evil.example>",
        "",
        BODY,
    );
    let (enc, report) = encrypt(
        &e,
        &msg,
        &["--cert", &fx("pki/bob.pem"), "--cert", &fx("pki/eve.pem")],
    );
    assert_contains(&report, "Encrypted with aes-256-cbc", "default cipher");
    assert_contains(&report, "Cipher policy: compatible", "policy named");
    assert_contains(&report, "Recommendation: ", "CBC without --sign: advice");
    let der = p7m_der(&enc);
    for p12 in ["p12/bob.p12", "p12/eve.p12", "p12/alice-modern.p12"] {
        let nss = NssDb::new();
        nss.import_p12(p12);
        let (rc, out, err) = nss.decode(&der, None);
        assert_eq!(rc, 0, "NSS as {p12}: cmsutil -D: {err}");
        assert_contains(&out, "type=envelopedData", p12);
        assert_contains(&out, "the quarterly figures are final", p12);
    }
}

/// `encrypt --sign` (default policy): NSS decrypts, and the multipart/signed entity inside verifies in NSS.
#[test]
fn our_sign_and_encrypt_opens_and_verifies_in_nss() {
    if !have(&NSS_TOOLS) {
        return;
    }
    let e = home_with("p12/alice-modern.p12");
    let msg = message(ALICE, BOB, "", BODY);
    let (enc, report) = encrypt(&e, &msg, &["--sign", "--cert", &fx("pki/bob.pem")]);
    assert_contains(&report, "Encrypted with aes-256-cbc", "default cipher");
    assert_contains(&report, "Signed before encryption.", "report");
    assert!(
        !report.contains("Recommendation"),
        "signed inside: no advice\n{report}"
    );
    let nss = NssDb::new();
    nss.import_p12("p12/bob.p12");
    let inner = nss.decode_to_bytes(&p7m_der(&enc));
    let ct = header(&inner, "content-type").unwrap_or_default();
    assert_contains(&ct, "multipart/signed", "the decrypted entity");
    let (content, sig) = split_signed(&inner);
    let (rc, out, err) = nss.decode(&sig, Some(&content));
    assert_eq!(rc, 0, "cmsutil -D inner signature: {err}");
    assert_eq!(
        signer_status(&out),
        "GoodSignature",
        "inner signature:\n{out}"
    );
    assert_contains(&out, "signer0.id=\"Alice\"", "the inner signer");
}

// ---------------------------------------------------------------------------------------------------------
// NSS → ours
// ---------------------------------------------------------------------------------------------------------

/// `smimekit verify --json` of `msg` with the fixture root; returns (exit code, report, stderr).
fn verify(e: &Env, msg: &[u8], extra: &[&str]) -> (i32, serde_json::Value, String) {
    let f = e.write("nss-signed.eml", msg);
    let (code, j, err) = e.verify_json(&f, extra);
    (code, j.unwrap_or_default(), err)
}

/// `cmsutil -S` signatures by bob, detached (wrapped as multipart/signed) and attached (application/pkcs7-mime),
/// with SHA-256 and SHA-384, verify with ours; a changed byte fails.
#[test]
fn nss_signatures_verify_with_ours() {
    if !have(&NSS_TOOLS) {
        return;
    }
    let nss = NssDb::new();
    nss.import_p12("p12/bob.p12");
    let e = Env::new();
    let entity = nss_entity();
    for (hash, micalg) in [("SHA256", "sha-256"), ("SHA384", "sha-384")] {
        let sig = nss.sign("bob", &entity, hash, true);
        let msg = wrap_signed(&entity, &sig, micalg, BOB, ALICE);
        let (code, j, err) = verify(&e, &msg, &[]);
        assert_eq!(code, 0, "NSS detached {hash}: {err}\n{j}");
        let bad = wrap_signed(
            &flip_in(&entity, NSS_BODY.as_bytes()),
            &sig,
            micalg,
            BOB,
            ALICE,
        );
        let (code, _, err) = verify(&e, &bad, &[]);
        assert_eq!(code, 1, "NSS detached {hash}, changed byte: {err}");

        let der = nss.sign("bob", &entity, hash, false);
        let msg = wrap_p7m(&der, "signed-data", BOB, ALICE);
        let f = e.write("nss-opaque.eml", &msg);
        let out = e.path("nss-opaque.out");
        let mut args = vec!["verify".to_string(), f, "-o".into(), s(&out).into()];
        args.extend(fixture_trust());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = e.run(&a);
        assert_code(&o, 0, &format!("NSS attached {hash}"));
        assert_contains(
            &text(&std::fs::read(&out).unwrap()),
            NSS_BODY,
            "the signed content written",
        );
        let bad = wrap_p7m(
            &flip_in(&der, NSS_BODY.as_bytes()),
            "signed-data",
            BOB,
            ALICE,
        );
        let (code, _, err) = verify(&e, &bad, &[]);
        assert_eq!(code, 1, "NSS attached {hash}, changed byte: {err}");
    }
}

/// A Thunderbird correspondent: once we verified bob's NSS signature, his SMIMECapabilities (AES-CBC, 3DES,
/// RC2, DES — no AES-GCM) are recorded, and encryption to him is AES-256-CBC under both policies, decided by
/// him; NSS decrypts it.
#[test]
fn nss_capabilities_lead_to_cbc_that_nss_opens() {
    if !have(&NSS_TOOLS) {
        return;
    }
    let nss = NssDb::new();
    nss.import_p12("p12/bob.p12");
    let e = home_with("p12/alice-modern.p12");
    let entity = nss_entity();
    let sig = nss.sign("bob", &entity, "SHA256", true);
    let f = e.write(
        "from-bob.eml",
        &wrap_signed(&entity, &sig, "sha-256", BOB, ALICE),
    );
    e.ok(&["verify", &f]);
    let msg = message(ALICE, BOB, "", BODY);
    for policy in ["compatible", "modern"] {
        let inp = e.write_file("plain.eml", &msg);
        let out = e.path("enc.eml");
        let o = e.ok(&[
            "--json",
            "encrypt",
            s(&inp),
            "--no-self",
            "--cipher-policy",
            policy,
            "-o",
            s(&out),
        ]);
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
        assert_eq!(j["cipher"], "aes-256-cbc", "{policy}: {j}");
        assert_eq!(j["cipher_policy"], policy, "{j}");
        assert_eq!(
            j["decided_by"],
            serde_json::json!(["bob@example.org"]),
            "{j}"
        );
        assert_eq!(j["recipients"][0]["capabilities"], "cbc-only", "{j}");
        let (rc, plain, err) = nss.decode(&p7m_der(&std::fs::read(&out).unwrap()), None);
        assert_eq!(rc, 0, "{policy}: cmsutil -D: {err}");
        assert_contains(&plain, "the quarterly figures are final", policy);
    }
}

/// `cmsutil -E` to an RSA recipient (alice), wrapped as an S/MIME message, decrypts with ours; so does NSS's
/// encryption of a message it signed (sign, then encrypt, as Thunderbird sends), whose inner signature verifies.
#[test]
fn nss_encryption_decrypts_with_ours() {
    if !have(&NSS_TOOLS) {
        return;
    }
    let nss = NssDb::new();
    nss.import_p12("p12/bob.p12");
    nss.add_cert("alice", "pki/alice.pem", ",,");
    let e = home_with("p12/alice-modern.p12");
    let decrypt = |msg: &[u8]| {
        let inp = e.write_file("nss-enc.eml", msg);
        let out = e.path("nss-dec.eml");
        let _ = std::fs::remove_file(&out);
        let mut args = vec![
            "--json".to_string(),
            "decrypt".into(),
            s(&inp).into(),
            "-o".into(),
            s(&out).into(),
        ];
        args.extend(fixture_trust());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = e.run(&a);
        (o, std::fs::read(&out).ok())
    };
    // Plain enveloped data.
    let der = nss.encrypt(&nss_entity(), "alice@example.com");
    let (o, plain) = decrypt(&wrap_p7m(&der, "enveloped-data", BOB, ALICE));
    assert_code(&o, 0, "decrypt NSS enveloped data");
    assert_contains(&text(&plain.unwrap()), NSS_BODY, "plaintext");
    // Signed by bob, then encrypted to alice.
    let sig = nss.sign("bob", &nss_entity(), "SHA256", true);
    let signed = wrap_signed(&nss_entity(), &sig, "sha-256", BOB, ALICE);
    let inner = &signed[find(&signed, b"Content-Type: multipart/signed").unwrap()..];
    let der = nss.encrypt(inner, "alice@example.com");
    let (o, plain) = decrypt(&wrap_p7m(&der, "enveloped-data", BOB, ALICE));
    assert_code(&o, 0, "decrypt NSS sign+encrypt");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("decrypt --json");
    assert!(
        j.get("signers").is_some(),
        "the inner signature was verified: {j}"
    );
    assert_contains(&text(&plain.unwrap()), NSS_BODY, "plaintext");
}
