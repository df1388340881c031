//! `smimekit sign` / `smimekit verify` against real peers (the openssl CLI and gpgsm), in both directions:
//! our signatures verify with `openssl cms -verify` and `gpgsm --verify`; OpenSSL- and gpgsm-made signatures
//! verify with ours. Also the signed-attribute set, canonicalisation (T06/T07), signer choice and refusals,
//! output discipline (T19), the negative cases of issue 3, a 2 MiB body, and harvesting only valid messages.

mod common;

use common::*;

fn s(p: std::path::PathBuf) -> String {
    p.to_str().unwrap().to_string()
}

/// A home with alice (RSA, modern p12) and carol (EC, legacy p12), stored without passphrase.
fn signer_env() -> Env {
    let env = Env::new();
    env.import_np("p12/alice-modern.p12");
    env.import_np("p12/carol-legacy.p12");
    env
}

fn signer_of(j: &serde_json::Value) -> String {
    j["signers"][0]["emails"][0]
        .as_str()
        .unwrap_or("")
        .to_string()
}

// ------------------------------------------------------------------------------------------------------
// Our signatures, checked by OpenSSL and gpgsm.

#[test]
fn our_signatures_verify_with_openssl_cms_and_gpgsm() {
    if !common::have(&["openssl", "gpgsm", "gpgconf"]) {
        return;
    }
    let env = signer_env();
    let gpg = Gpg::new();
    gpg.trust_fixture_root();
    let alice = "Alice <alice@example.com>";
    let carol = "Carol <carol@example.net>";
    // (From, sign options, micalg expected for multipart/signed)
    let cases: &[(&str, &[&str], &str)] = &[
        (alice, &[], "sha-256"),
        (alice, &["--digest", "sha384"], "sha-384"),
        (alice, &["--digest", "sha512"], "sha-512"),
        (alice, &["--pss"], "sha-256"),
        (alice, &["--pss", "--digest", "sha512"], "sha-512"),
        (alice, &["--opaque"], ""),
        (alice, &["--opaque", "--pss", "--digest", "sha384"], ""),
        (carol, &[], "sha-256"),
        (carol, &["--digest", "sha384"], "sha-384"),
        (carol, &["--opaque"], ""),
    ];
    let mut failures = Vec::new();
    for (from, opts, micalg) in cases {
        let what = format!("{from} {opts:?}");
        let msg = simple_message(from, "Interop test.\r\nSecond line.\r\n");
        let signed = env.sign(&msg, opts);
        // Our own verify.
        let f = env.write("ours.eml", &signed);
        let (code, j, err) = env.verify_json(&f, &[]);
        if code != 0 {
            failures.push(format!("{what}: our verify exit {code}: {err} {j:?}"));
        }
        // openssl cms -verify (S/MIME input, purpose smimesign).
        let (rc, content, err) = openssl_verify(&signed);
        if rc != 0 {
            failures.push(format!("{what}: openssl cms -verify rc {rc}: {err}"));
        } else if !text(&content).contains("Interop test.") {
            failures.push(format!("{what}: openssl returned other content"));
        }
        if micalg.is_empty() {
            let ct = header(&signed, "content-type").unwrap();
            if !(ct.contains("application/pkcs7-mime")
                && ct.contains("smime-type=signed-data")
                && ct.contains("smime.p7m"))
            {
                failures.push(format!("{what}: opaque Content-Type {ct}"));
            }
            continue;
        }
        let ct = header(&signed, "content-type").unwrap();
        if !ct.contains(r#"protocol="application/pkcs7-signature""#)
            || !ct.contains(&format!("micalg={micalg}"))
        {
            failures.push(format!("{what}: Content-Type {ct}"));
        }
        // gpgsm --verify on the detached DER and the exact signed part.
        let (part, der) = split_signed(&signed);
        let (rc, err) = gpg.verify_detached(&der, &part);
        if rc != 0 || !err.contains("Good signature") {
            failures.push(format!("{what}: gpgsm --verify rc {rc}: {err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn signed_attribute_set_chain_and_pss_salt() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = signer_env();
    let alice_fp = fingerprint_of("pki/alice.pem");
    for (opts, salt) in [
        (&["--pss"][..], Some(":20")),
        (&["--pss", "--digest", "sha384"][..], Some(":30")),
        (&["--pss", "--digest", "sha512"][..], Some(":40")),
        (&[][..], None),
    ] {
        let signed = env.sign(&simple_message("alice@example.com", "attrs\r\n"), opts);
        let (_, der) = split_signed(&signed);
        let p = openssl_print(&der);
        let si = &p[p.find("signerInfos:").expect("signerInfos")..];
        for (name, what) in [
            ("object: contentType (1.2.840.113549.1.9.3)", "content-type"),
            (
                "object: messageDigest (1.2.840.113549.1.9.4)",
                "message-digest",
            ),
            ("object: signingTime (1.2.840.113549.1.9.5)", "signing-time"),
            (
                "object: S/MIME Capabilities (1.2.840.113549.1.9.15)",
                "SMIMECapabilities",
            ),
            (
                "object: id-smime-aa-signingCertificateV2 (1.2.840.113549.1.9.16.2.47)",
                "signingCertificateV2",
            ),
            (
                "object: id-smime-aa-encrypKeyPref (1.2.840.113549.1.9.16.2.11)",
                "SMIMEEncryptionKeyPreference",
            ),
        ] {
            assert_eq!(
                si.matches(name).count(),
                1,
                "exactly one {what} ({opts:?}):\n{si}"
            );
        }
        assert!(si.contains("OBJECT:pkcs7-data"), "content-type = id-data");
        // signingCertificateV2 carries the SHA-256 hash of alice's certificate.
        assert!(
            si.to_lowercase().contains(&alice_fp),
            "ESSCertIDv2 hash is alice's fingerprint:\n{si}"
        );
        // Capabilities: AES-GCM first, nothing weak.
        let caps = &si[si.find("S/MIME Capabilities").unwrap()..];
        let caps = &caps[..caps
            .find("\n        signatureAlgorithm")
            .unwrap_or(caps.len())];
        let first = caps
            .lines()
            .find(|l| l.contains("OBJECT"))
            .expect("a capability");
        assert!(first.contains("aes-256-gcm"), "strongest first: {caps}");
        assert!(caps.contains("aes-128-gcm"), "{caps}");
        for weak in ["des-", "DES", "rc2", "RC2"] {
            assert!(
                !caps.contains(weak),
                "no {weak} in the capabilities: {caps}"
            );
        }
        // Chain: alice + intermediate, never the root.
        let (rc, certs, _) = external(
            "openssl",
            &["pkcs7", "-inform", "DER", "-print_certs", "-noout"],
            Some(&der),
        );
        assert_eq!(rc, 0);
        let certs = text(&certs);
        assert!(certs.contains("subject=CN = Alice"), "{certs}");
        assert!(
            certs.contains("subject=CN = smimekit Test Intermediate CA"),
            "{certs}"
        );
        assert!(
            !certs.contains("subject=CN = smimekit Test Root CA"),
            "root not included: {certs}"
        );
        // eContent absent in a detached signature.
        assert!(p.contains("eContent: <ABSENT>"), "detached: {p}");
        match salt {
            Some(salt) => {
                let sig_alg = &si[si.find("signatureAlgorithm").unwrap()..];
                assert!(sig_alg.contains("rsassaPss"), "{sig_alg}");
                assert!(
                    sig_alg.contains(&format!("INTEGER           {salt}")),
                    "PSS salt = digest length ({salt}): {sig_alg}"
                );
            }
            None => assert!(
                si.contains("algorithm: rsaEncryption"),
                "PKCS#1 v1.5 by default"
            ),
        }
    }
    // EC: ecdsa-with-SHA256 (or the bare ecPublicKey OID that OpenSSL writes), and the same attribute set.
    let signed = env.sign(&simple_message("carol@example.net", "ec\r\n"), &[]);
    let (_, der) = split_signed(&signed);
    let p = openssl_print(&der);
    let si = &p[p.find("signerInfos:").unwrap()..];
    assert!(
        si.contains("ecdsa-with-SHA256") || si.contains("id-ecPublicKey"),
        "ECDSA: {si}"
    );
    assert_eq!(si.matches("id-smime-aa-signingCertificateV2").count(), 1);
    assert_eq!(si.matches("S/MIME Capabilities").count(), 1);
}

// ------------------------------------------------------------------------------------------------------
// T06/T07: what we sign is 7-bit, CRLF, From-safe, without trailing white space.

fn assert_sign_safe(part: &[u8], what: &str) {
    assert!(part.iter().all(|b| *b < 0x80), "{what}: 7-bit only");
    for (i, b) in part.iter().enumerate() {
        if *b == b'\n' {
            assert!(i > 0 && part[i - 1] == b'\r', "{what}: bare LF at {i}");
        }
        if *b == b'\r' {
            assert_eq!(part.get(i + 1), Some(&b'\n'), "{what}: bare CR at {i}");
        }
    }
    let t = text(part);
    let (head, body) = t.split_once("\r\n\r\n").expect("entity header");
    let cte = head.to_ascii_lowercase();
    assert!(
        cte.contains("content-transfer-encoding: quoted-printable")
            || cte.contains("content-transfer-encoding: base64"),
        "{what}: 8-bit content re-encoded: {head}"
    );
    for l in t.split("\r\n") {
        assert!(
            !l.starts_with("From "),
            "{what}: a line starts with 'From ': {l}"
        );
        assert!(
            !l.ends_with(' ') && !l.ends_with('\t'),
            "{what}: trailing white space: {l:?}"
        );
    }
    for l in body.split("\r\n") {
        assert!(l.len() <= 76, "{what}: body line of {} chars", l.len());
    }
}

#[test]
fn signing_8bit_from_lines_and_trailing_space_is_safe_and_verifies() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = signer_env();
    let input = std::fs::read(fixture("msg/plain-8bit.eml")).unwrap();
    let lf_input: Vec<u8> = input.iter().copied().filter(|b| *b != b'\r').collect();
    // Mixed line ends, including a bare CR.
    let mut mixed = simple_message("alice@example.com", "");
    mixed.extend_from_slice(
        b"crlf line\r\nlf line\nbare cr line\rFrom the start\n\xc3\xa4 8bit  \r\nend",
    );
    let mixed_8bit = {
        let t = text(&mixed).replace(
            "Content-Type: text/plain; charset=us-ascii",
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit",
        );
        t.into_bytes()
    };
    for (name, msg, opts) in [
        ("plain-8bit", &input, &[][..]),
        ("plain-8bit LF-only input", &lf_input, &[][..]),
        ("plain-8bit sha512", &input, &["--digest", "sha512"][..]),
        ("mixed line ends", &mixed_8bit, &[][..]),
    ] {
        let signed = env.sign(msg, opts);
        let (part, _) = split_signed(&signed);
        assert_sign_safe(&part, name);
        // Verifies with ours and with OpenSSL.
        let f = env.write("s.eml", &signed);
        let (code, j, err) = env.verify_json(&f, &[]);
        assert_eq!(code, 0, "{name}: {err} {j:?}");
        let (rc, _, err) = openssl_verify(&signed);
        assert_eq!(rc, 0, "{name}: openssl: {err}");
        // A mail store's LF-only copy (tr -d '\r') still verifies, with ours and with OpenSSL.
        let lf: Vec<u8> = signed.iter().copied().filter(|b| *b != b'\r').collect();
        let f = env.write("lf.eml", &lf);
        let (code, j, err) = env.verify_json(&f, &[]);
        assert_eq!(code, 0, "{name} LF copy: {err} {j:?}");
        let (rc, _, err) = openssl_verify(&lf);
        assert_eq!(rc, 0, "{name} LF copy, openssl: {err}");
    }
    // The content survives: verify -o gives back the UTF-8 text (decoded by any MIME reader; here: QP/base64).
    let signed = env.sign(&input, &[]);
    let f = env.write("s.eml", &signed);
    let out = s(env.path("out.eml"));
    let mut args = vec!["verify", f.as_str(), "-o", out.as_str()];
    let trust = fixture_trust();
    args.extend(trust.iter().map(|s| s.as_str()));
    env.ok(&args);
    let o = std::fs::read(&out).unwrap();
    assert!(
        text(&o).contains("Subject: plain-8bit input"),
        "outer headers kept"
    );
}

#[test]
fn signed_output_keeps_outer_headers_outside() {
    let env = signer_env();
    let msg = b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nCc: carol@example.net\r\nSubject: outer\r\nDate: Wed, 25 Nov 2026 09:00:00 +0000\r\nMessage-ID: <x@y>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nbody\r\n".to_vec();
    for opts in [&[][..], &["--opaque"][..]] {
        let signed = env.sign(&msg, opts);
        for h in ["from", "to", "cc", "subject", "date", "message-id"] {
            assert!(
                header(&signed, h).is_some(),
                "{h} stays on the outer message"
            );
        }
        if opts.is_empty() {
            let (part, _) = split_signed(&signed);
            let t = text(&part);
            assert!(t.starts_with("Content-Type: text/plain"), "{t}");
            assert!(!t.contains("Subject:") && !t.contains("From:"), "{t}");
        }
    }
}

// ------------------------------------------------------------------------------------------------------
// Peers' signatures, checked by us.

#[test]
fn fixture_peer_signatures_verify_with_ours() {
    let env = Env::new();
    for (f, signer) in [
        ("valid-rsa-alice.eml", "alice@example.com"),
        ("valid-opaque-alice.eml", "alice@example.com"),
        ("valid-opaque-ber-alice.eml", "alice@example.com"),
        ("valid-ecdsa-carol.eml", "carol@example.net"),
        ("valid-pss-alice.eml", "alice@example.com"),
        ("valid-gpgsm-alice.eml", "alice@example.com"),
        ("valid-rsa-alice-lf.eml", "alice@example.com"),
        ("valid-x-pkcs7-alice.eml", "alice@example.com"),
    ] {
        let (code, j, err) = env.verify_json(s(fixture(&format!("msg/{f}"))).as_str(), &[]);
        assert_eq!(code, 0, "{f}: {err} {j:?}");
        assert_eq!(signer_of(j.as_ref().unwrap()), signer, "{f}");
    }
}

/// Makes a message with `openssl cms|smime -sign` (detached or opaque) as `signer` and checks ours verifies it.
fn openssl_signed(tool: &str, signer: &str, from: &str, opaque: bool, extra: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let entity = dir.path().join("entity");
    std::fs::write(
        &entity,
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\nSigned by the openssl CLI.\r\n",
    )
    .unwrap();
    let cert = s(fixture(&format!("pki/{signer}.pem")));
    let key = s(fixture(&format!("pki/{signer}.key")));
    let inter = s(fixture("pki/inter.pem"));
    let mut args = vec![
        tool,
        "-sign",
        "-binary",
        "-signer",
        &cert,
        "-inkey",
        &key,
        "-certfile",
        &inter,
        "-md",
        "sha256",
        "-from",
        from,
        "-to",
        "bob@example.org",
        "-subject",
        "openssl made",
    ];
    if opaque {
        args.push("-nodetach");
    }
    args.extend(extra);
    let e = s(entity);
    args.extend(["-in", e.as_str()]);
    let (rc, out, err) = external("openssl", &args, None);
    assert_eq!(rc, 0, "openssl {args:?}: {err}");
    out
}

#[test]
fn openssl_made_signatures_verify_with_ours() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    let pss: &[&str] = &[
        "-keyopt",
        "rsa_padding_mode:pss",
        "-keyopt",
        "rsa_pss_saltlen:digest",
    ];
    let mut failures = Vec::new();
    for tool in ["cms", "smime"] {
        for (signer, from, extra) in [
            ("alice", "alice@example.com", &[][..]),
            ("carol", "carol@example.net", &[][..]),
            ("alice", "alice@example.com", pss),
        ] {
            if tool == "smime" && !extra.is_empty() {
                continue; // `openssl smime` has no -keyopt
            }
            for opaque in [false, true] {
                let what = format!("openssl {tool} {signer} opaque={opaque} {extra:?}");
                let msg = openssl_signed(tool, signer, from, opaque, extra);
                let f = env.write("peer.eml", &msg);
                let (code, j, err) = env.verify_json(&f, &[]);
                if code != 0 {
                    failures.push(format!("{what}: exit {code} {err} {j:?}"));
                    continue;
                }
                let j = j.unwrap();
                if signer_of(&j) != from {
                    failures.push(format!("{what}: signer {}", signer_of(&j)));
                }
                let expect_form = if opaque { "opaque" } else { "multipart/signed" };
                if j["form"] != expect_form {
                    failures.push(format!("{what}: form {}", j["form"]));
                }
                if !extra.is_empty()
                    && !j["signers"][0]["signature_algorithm"]
                        .as_str()
                        .unwrap_or("")
                        .contains("PSS")
                    && !j["signers"][0]["signature_algorithm"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Pss")
                {
                    failures.push(format!(
                        "{what}: {}",
                        j["signers"][0]["signature_algorithm"]
                    ));
                }
                // The verified content is what openssl signed.
                let out = s(env.path("peer-out.eml"));
                let _ = std::fs::remove_file(&out);
                let mut args = vec!["verify", f.as_str(), "-o", out.as_str()];
                let trust = fixture_trust();
                args.extend(trust.iter().map(|s| s.as_str()));
                let o = env.run(&args);
                if o.status.code() != Some(0)
                    || !text(&std::fs::read(&out).unwrap_or_default())
                        .contains("Signed by the openssl CLI.")
                {
                    failures.push(format!("{what}: verify -o did not give the content"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn gpgsm_made_signature_wrapped_in_multipart_signed_verifies() {
    if !common::have(&["gpgsm", "gpgconf"]) {
        return;
    }
    // The committed fixture was made by gpgsm 2.2.40 (detached, its own attribute set, no
    // signingCertificateV2); here its DER is wrapped anew by the test into multipart/signed with LF line ends.
    let env = Env::new();
    let orig = std::fs::read(fixture("msg/valid-gpgsm-alice.eml")).unwrap();
    let (part, _) = split_signed(&orig);
    let der = std::fs::read(fixture("msg/valid-gpgsm-alice.p7s.der")).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let mut msg = b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: gpgsm\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"gpgsm-b\"\r\n\r\n--gpgsm-b\r\n".to_vec();
    msg.extend_from_slice(&part);
    msg.extend_from_slice(b"\r\n--gpgsm-b\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    for c in b64.as_bytes().chunks(64) {
        msg.extend_from_slice(c);
        msg.extend_from_slice(b"\r\n");
    }
    msg.extend_from_slice(b"--gpgsm-b--\r\n");
    let f = env.write("gpgsm.eml", &msg);
    let (code, j, err) = env.verify_json(&f, &[]);
    assert_eq!(code, 0, "{err} {j:?}");
    assert_eq!(signer_of(j.as_ref().unwrap()), "alice@example.com");
    // The same signature checked by gpgsm itself.
    let gpg = Gpg::new();
    gpg.trust_fixture_root();
    let (rc, err) = gpg.verify_detached(&der, &part);
    assert_eq!(rc, 0, "gpgsm: {err}");

    // A fresh gpgsm signature made here (alice's legacy PKCS#12 imported into the temporary GNUPGHOME).
    let (rc, _, err) = gpg.gpgsm(
        &["--import", s(fixture("p12/alice-legacy.p12")).as_str()],
        Some(P12_PASSWORD),
    );
    assert_eq!(rc, 0, "gpgsm --import: {err}");
    let entity =
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\nSigned by gpgsm in this test.\r\n";
    let e = gpg.dir.path().join("entity");
    std::fs::write(&e, entity).unwrap();
    let sig = gpg.dir.path().join("fresh.p7s");
    let (rc, _, err) = gpg.gpgsm(
        &[
            "--detach-sign",
            "--local-user",
            "alice@example.com",
            "-o",
            sig.to_str().unwrap(),
            e.to_str().unwrap(),
        ],
        Some(P12_PASSWORD),
    );
    assert_eq!(rc, 0, "gpgsm --detach-sign: {err}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&sig).unwrap());
    let mut msg = b"From: Alice <alice@example.com>\r\nSubject: fresh gpgsm\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"g2\"\r\n\r\n--g2\r\n".to_vec();
    msg.extend_from_slice(entity);
    msg.extend_from_slice(b"\r\n--g2\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    for c in b64.as_bytes().chunks(76) {
        msg.extend_from_slice(c);
        msg.extend_from_slice(b"\r\n");
    }
    msg.extend_from_slice(b"--g2--\r\n");
    let f = env.write("fresh-gpgsm.eml", &msg);
    let (code, j, err) = env.verify_json(&f, &[]);
    assert_eq!(code, 0, "{err} {j:?}");
    assert_eq!(signer_of(j.as_ref().unwrap()), "alice@example.com");
}

// ------------------------------------------------------------------------------------------------------
// Signer choice and refusals.

#[test]
fn signer_choice_as_from_and_only_id() {
    let env = signer_env();
    let verify_signer = |signed: &[u8]| {
        let f = env.write("c.eml", signed);
        let (_, j, err) = env.verify_json(&f, &[]);
        let j = j.unwrap_or_else(|| panic!("{err}"));
        signer_of(&j)
    };
    // From matches carol (case-insensitively) -> carol.
    let signed = env.sign(&simple_message("Carol <CAROL@example.net>", "x\r\n"), &[]);
    assert_eq!(verify_signer(&signed), "carol@example.net");
    let signed = env.sign(&simple_message("alice@example.com", "x\r\n"), &[]);
    assert_eq!(verify_signer(&signed), "alice@example.com");
    // --as overrides From (the result then fails the address check at the receiver: exit 1, but carol signed).
    let signed = env.sign(
        &simple_message("alice@example.com", "x\r\n"),
        &["--as", "carol@example.net"],
    );
    let f = env.write("c.eml", &signed);
    let (code, j, _) = env.verify_json(&f, &[]);
    assert_eq!(code, 1);
    assert_eq!(signer_of(&j.unwrap()), "carol@example.net");
    // No From and several IDs: refused, --as needed.
    let no_from = b"To: bob@example.org\r\nSubject: x\r\nContent-Type: text/plain\r\n\r\nx\r\n";
    let inp = env.write("nofrom.eml", no_from);
    let o = env.run(&["sign", &inp]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());
    assert!(text(&o.stderr).contains("--as"), "{}", text(&o.stderr));
    // The only ID is used when the message has no From.
    let one = Env::new();
    one.import_np("p12/carol-legacy.p12");
    let signed = one.sign(no_from, &[]);
    let f = one.write("c.eml", &signed);
    // No From: bound to no sender (exit 1) unless the check is explicitly about the signer alone.
    let (code, _, err) = one.verify_json(&f, &[]);
    assert_eq!(code, 1, "{err}");
    let (code, j, err) = one.verify_json(&f, &["--no-address-check"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(signer_of(&j.unwrap()), "carol@example.net");
}

/// Runs `sign` expecting a refusal: exit 2, nothing on stdout, no output file, the reason on stderr.
fn assert_refused(env: &Env, msg: &[u8], extra: &[&str], reason: &[&str]) {
    let inp = env.write("refuse.eml", msg);
    let out = env.path("refused-out.eml");
    let outs = s(out.clone());
    let mut args = vec!["sign", inp.as_str(), "-o", outs.as_str()];
    args.extend(extra);
    let o = env.run(&args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "nothing on stdout");
    assert!(!out.exists(), "no output file");
    let lower = err.to_lowercase();
    assert!(
        reason.iter().any(|r| lower.contains(r)),
        "{args:?}: reason {reason:?} in: {err}"
    );
    // And to stdout: nothing either.
    let mut args = vec!["sign", inp.as_str()];
    args.extend(extra);
    let o = env.run(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty(), "nothing on stdout");
    // No temporary files left next to the output.
    let left: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".smimekit-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn sign_refuses_without_a_usable_id() {
    let empty = Env::new();
    empty.init_home();
    assert_refused(
        &empty,
        &simple_message("alice@example.com", "x\r\n"),
        &[],
        &["no digital id"],
    );
    let env = Env::new();
    env.import_np("p12/erin-enc.p12");
    env.import_np("p12/grace-expired.p12");
    env.import_np("p12/alice-modern.p12");
    // (From, extra arguments, expected reason)
    for (from, extra, reason) in [
        // Encryption-only ID, by From and by --as.
        ("erin@example.com", &[][..], &["cannot sign"][..]),
        (
            "alice@example.com",
            &["--as", "erin@example.com"],
            &["cannot sign"],
        ),
        // Expired ID.
        ("grace@example.com", &[], &["expired"]),
        (
            "alice@example.com",
            &["--as", "grace@example.com"],
            &["expired"],
        ),
        // A From address we have no ID for.
        ("mallory@example.com", &[], &["no digital id"]),
        // An --as that names nothing ("no" alone would match the echoed "nobody").
        (
            "alice@example.com",
            &["--as", "nobody@example.com"],
            &["no digital id"],
        ),
    ] {
        assert_refused(&env, &simple_message(from, "x\r\n"), extra, reason);
    }
}

// ------------------------------------------------------------------------------------------------------
// Output discipline (T19).

#[test]
fn invalid_messages_write_nothing() {
    let env = Env::new();
    let trust = fixture_trust();
    let mut failures = Vec::new();
    let mut n = 0;
    for VerifyVector {
        file, case, expect, ..
    } in verify_vectors()
    {
        if expect == 0 {
            continue;
        }
        n += 1;
        let path = s(fixture(&format!("msg/{file}")));
        let out = env.path("out.eml");
        let _ = std::fs::remove_file(&out);
        let outs = s(out.clone());
        let mut args = vec!["verify", path.as_str(), "-o", outs.as_str()];
        args.extend(trust.iter().map(|s| s.as_str()));
        let o = env.run(&args);
        let code = o.status.code().unwrap_or(-1);
        let stdout = text(&o.stdout);
        if code == 0 {
            failures.push(format!("{file} ({case}): exit 0"));
        }
        if out.exists() {
            failures.push(format!("{file} ({case}): -o file created"));
        }
        for content in [
            "Hello Bob",
            "revenue",
            "fired",
            "promoted",
            "Content-Type: text/plain",
        ] {
            if stdout.contains(content) {
                failures.push(format!("{file} ({case}): content on stdout ({content})"));
            }
        }
        // `-o -`: the message would go to stdout; on failure stdout stays empty.
        let mut args = vec!["verify", path.as_str(), "-o", "-"];
        args.extend(trust.iter().map(|s| s.as_str()));
        let o = env.run(&args);
        if o.status.code() == Some(0) || !o.stdout.is_empty() {
            failures.push(format!(
                "{file} ({case}): -o - exit {:?}, {} bytes on stdout",
                o.status.code(),
                o.stdout.len()
            ));
        }
        let left = std::fs::read_dir(env.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".smimekit-"))
            .count();
        if left != 0 {
            failures.push(format!("{file}: temporary file left"));
        }
    }
    assert!(n >= 30, "only {n} invalid rows");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn force_output_writes_with_a_warning_and_valid_output_is_the_signed_entity() {
    let env = Env::new();
    let trust = fixture_trust();
    let run = |file: &str, extra: &[&str]| {
        let out = env.path("out.eml");
        let _ = std::fs::remove_file(&out);
        let p = s(fixture(&format!("msg/{file}")));
        let outs = s(out.clone());
        let mut args = vec!["verify", p.as_str(), "-o", outs.as_str()];
        args.extend(trust.iter().map(|s| s.as_str()));
        args.extend(extra);
        let o = env.run(&args);
        (o, std::fs::read(&out).ok())
    };
    // --force-output on a failed verdict: written, exit stays 1, loud warning.
    let (o, written) = run("bad-body-flipped.eml", &["--force-output"]);
    assert_eq!(o.status.code(), Some(1));
    let written = written.expect("--force-output writes the file");
    assert!(
        text(&written).contains("9,000,000"),
        "the (tampered) content"
    );
    let err = text(&o.stderr);
    assert!(
        err.contains("warning") && err.contains("NOT verify"),
        "{err}"
    );
    // Valid multipart/signed: outer headers + the exact signed entity.
    let (o, written) = run("valid-rsa-alice.eml", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let written = written.unwrap();
    let orig = std::fs::read(fixture("msg/valid-rsa-alice.eml")).unwrap();
    let (entity, _) = split_signed(&orig);
    assert!(written.ends_with(&entity), "ends with the signed entity");
    let head = text(&written[..written.len() - entity.len()]);
    for h in [
        "From: Alice <alice@example.com>",
        "To: Bob",
        "Subject: valid-rsa-alice",
        "Message-ID:",
        "Date:",
    ] {
        assert!(head.contains(h), "{h} in {head}");
    }
    assert!(!text(&written).contains("multipart/signed") && !text(&written).contains("pkcs7"));
    // Valid opaque: outer headers + eContent.
    let (o, written) = run("valid-opaque-alice.eml", &[]);
    assert_eq!(o.status.code(), Some(0));
    let written = text(&written.unwrap());
    assert!(written.contains("Subject: valid-opaque-alice"));
    assert!(
        written.contains("Content-Type: text/plain") && written.contains("revenue 1,000,000 EUR")
    );
    assert!(!written.contains("pkcs7"));
}

// ------------------------------------------------------------------------------------------------------
// Negative cases of issue 3, on our own output: each the right exit code and a reason.

fn reasons(j: &serde_json::Value) -> String {
    j["signers"]
        .as_array()
        .map(|a| {
            a.iter()
                .flat_map(|s| s["reasons"].as_array().cloned().unwrap_or_default())
                .map(|r| r.as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default()
}

#[test]
fn tampering_with_our_own_signatures_is_caught() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = signer_env();
    let msg = simple_message(
        "alice@example.com",
        "Pay 100 EUR to account 1234.\r\nThanks\r\n",
    );
    let signed = env.sign(&msg, &[]);
    // One flipped byte in the body.
    let t = text(&signed)
        .replacen("Pay 100 EUR", "Pay 900 EUR", 1)
        .into_bytes();
    let f = env.write("t.eml", &t);
    let (code, j, err) = env.verify_json(&f, &[]);
    assert_eq!(code, 1, "{err}");
    let j = j.unwrap();
    assert_eq!(j["status"], "invalid");
    assert_eq!(j["signers"][0]["integrity"]["ok"], false);
    assert!(reasons(&j).contains("digest mismatch"), "{}", reasons(&j));
    assert_eq!(openssl_verify(&t).0, 4, "openssl agrees");
    // Trailing white space added by a "mail system": diagnosed.
    let t = text(&signed)
        .replacen("Thanks\r\n", "Thanks \r\n", 1)
        .into_bytes();
    let f = env.write("t.eml", &t);
    let (code, j, _) = env.verify_json(&f, &[]);
    assert_eq!(code, 1);
    let r = reasons(&j.unwrap());
    assert!(
        r.contains("would after"),
        "diagnosis of white-space damage: {r}"
    );
    // One flipped byte in the signature value (the last bytes of the DER are the signature).
    let (part, mut der) = split_signed(&signed);
    let n = der.len();
    der[n - 10] ^= 0x01;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let b64 = b64
        .as_bytes()
        .chunks(64)
        .map(text)
        .collect::<Vec<_>>()
        .join("\r\n");
    let ct = header(&signed, "content-type").unwrap();
    let b = ct
        .split("boundary=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let mut t = format!(
        "From: alice@example.com\r\nSubject: sig flipped\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"{b}\"\r\n\r\n--{b}\r\n"
    )
    .into_bytes();
    t.extend_from_slice(&part);
    t.extend_from_slice(format!("\r\n--{b}\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--{b}--\r\n").as_bytes());
    let f = env.write("t.eml", &t);
    let (code, j, err) = env.verify_json(&f, &[]);
    assert_eq!(code, 1, "{err}");
    let r = reasons(&j.unwrap());
    assert!(r.contains("bad signature"), "{r}");
    assert_eq!(openssl_verify(&t).0, 4, "openssl agrees");
    // From changed to someone else.
    let t = text(&signed)
        .replacen("From: alice@example.com", "From: bob@example.org", 1)
        .into_bytes();
    let f = env.write("t.eml", &t);
    let (code, j, _) = env.verify_json(&f, &[]);
    assert_eq!(code, 1);
    let j = j.unwrap();
    assert_eq!(j["signers"][0]["integrity"]["ok"], true);
    assert_eq!(j["signers"][0]["address_match"]["ok"], false);
    let r = reasons(&j);
    assert!(
        r.contains("bob@example.org") && r.contains("alice@example.com"),
        "{r}"
    );
    // Signature part removed: not signed.
    let t = text(&signed)
        .replace("multipart/signed", "multipart/mixed")
        .into_bytes();
    let f = env.write("t.eml", &t);
    let (code, _, err) = env.verify_json(&f, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not signed"), "{err}");
    // Untrusted: no anchor at all (the system store does not know the fixture root).
    let f = env.write("t.eml", &signed);
    let o = env.run(&["--json", "verify", &f, "--no-system-trust", "--no-harvest"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["signers"][0]["trust"]["trusted"], false);
    assert!(reasons(&j).contains("not trusted"), "{}", reasons(&j));
}

#[test]
fn negative_fixture_cases_name_the_reason() {
    let env = Env::new();
    for (file, code, field, words) in [
        (
            "bad-body-flipped.eml",
            1,
            "integrity",
            &["digest mismatch"][..],
        ),
        (
            "bad-sig-flipped.eml",
            1,
            "integrity",
            &["bad signature"][..],
        ),
        (
            "from-bob-signed-by-alice.eml",
            1,
            "address_match",
            &["bob@example.org", "alice@example.com"][..],
        ),
        ("untrusted-mallet.eml", 1, "trust", &["not trusted"][..]),
        ("expired-grace.eml", 1, "validity", &["expired"][..]),
        ("noeku-frank.eml", 1, "purpose", &["emailProtection"][..]),
        ("kuenc-erin.eml", 1, "purpose", &["digital signatures"][..]),
    ] {
        let (c, j, err) = env.verify_json(s(fixture(&format!("msg/{file}"))).as_str(), &[]);
        assert_eq!(c, code, "{file}: {err}");
        let j = j.unwrap();
        assert_eq!(j["status"], "invalid", "{file}");
        let sg = &j["signers"][0];
        let failed = match field {
            "trust" => sg["trust"]["trusted"] == false,
            f => sg[f]["ok"] == false,
        };
        assert!(failed, "{file}: {field} fails: {sg}");
        let r = reasons(&j);
        for w in words {
            assert!(r.contains(w), "{file}: '{w}' in {r}");
        }
    }
    // No signer: an error, never a signed indicator.
    let o = env.run(&[
        "verify",
        s(fixture("msg/c3-no-signers.eml")).as_str(),
        "--no-system-trust",
        "--ca",
        s(fixture("pki/root.pem")).as_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let all = text(&o.stdout) + &text(&o.stderr);
    assert!(all.contains("no signers"), "{all}");
    assert!(!all.contains("VALID"), "{all}");
}

// ------------------------------------------------------------------------------------------------------
// Size and harvesting.

#[test]
fn large_body_signs_and_verifies() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = signer_env();
    let mut body = String::with_capacity(2_200_000);
    let mut i = 0u64;
    while body.len() < 2 * 1024 * 1024 + 100 {
        body.push_str(&format!(
            "line {i:08} of a long message body, plain ASCII text\r\n"
        ));
        i += 1;
    }
    let msg = simple_message("alice@example.com", &body);
    for opts in [&[][..], &["--opaque"][..]] {
        let signed = env.sign(&msg, opts);
        assert!(signed.len() > 2 * 1024 * 1024);
        let f = env.write("big.eml", &signed);
        let (code, j, err) = env.verify_json(&f, &[]);
        assert_eq!(code, 0, "{opts:?}: {err} {j:?}");
        assert_eq!(openssl_verify(&signed).0, 0, "{opts:?}: openssl");
    }
}

fn contact_count(env: &Env) -> usize {
    let o = env.ok(&["--json", "contact", "list"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    j["contacts"].as_array().unwrap().len()
}

#[test]
fn harvest_only_from_valid_messages() {
    let env = Env::new();
    let ca = s(fixture("pki/root.pem"));
    let verify = |file: &str| {
        env.run(&[
            "verify",
            s(fixture(&format!("msg/{file}"))).as_str(),
            "--no-system-trust",
            "--ca",
            &ca,
        ])
    };
    for bad in [
        "bad-body-flipped.eml",
        "bad-sig-flipped.eml",
        "from-bob-signed-by-alice.eml",
        "i1-from-alice-signed-by-eve.eml",
        "untrusted-mallet.eml",
        "forged-attrs.eml",
        "c1-econtent-confusion.eml",
        "m1-prepend-text.eml",
    ] {
        let o = verify(bad);
        assert_ne!(o.status.code(), Some(0), "{bad}");
        assert_eq!(contact_count(&env), 0, "{bad} harvested something");
    }
    let o = verify("valid-rsa-alice.eml");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("Added the signer's certificate"),
        "{}",
        text(&o.stdout)
    );
    let o = env.ok(&["--json", "contact", "list"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = j["contacts"].as_array().unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["emails"][0], "alice@example.com");
    // --no-harvest: nothing added even when valid.
    let env2 = Env::new();
    let (code, _, _) = env2.verify_json(s(fixture("msg/valid-ecdsa-carol.eml")).as_str(), &[]);
    assert_eq!(code, 0);
    assert_eq!(contact_count(&env2), 0);
}

// ------------------------------------------------------------------------------------------------------
// Reading: both forms under every label, binary CMS, the type from the CMS content; chains built from
// contacts; filters on stdin/stdout.

fn rewrite(file: &str, from: &str, to: &str) -> Vec<u8> {
    let t = text(&std::fs::read(fixture(&format!("msg/{file}"))).unwrap());
    assert!(t.contains(from), "{file}: {from}");
    t.replacen(from, to, 1).into_bytes()
}

#[test]
fn reads_every_label_binary_cms_and_takes_the_type_from_cms() {
    let env = Env::new();
    let ct = "application/pkcs7-mime; smime-type=signed-data; name=smime.p7m";
    let variants: Vec<(&str, Vec<u8>)> = vec![
        (
            "x-pkcs7-mime",
            rewrite(
                "valid-opaque-alice.eml",
                "application/pkcs7-mime",
                "application/x-pkcs7-mime",
            ),
        ),
        // T08: the label is only a hint; the CMS content type decides.
        (
            "labelled enveloped-data",
            rewrite(
                "valid-opaque-alice.eml",
                "smime-type=signed-data",
                "smime-type=enveloped-data",
            ),
        ),
        (
            "octet-stream named .p7m",
            rewrite(
                "valid-opaque-alice.eml",
                ct,
                "application/octet-stream; name=smime.p7m",
            ),
        ),
        ("binary DER body", {
            let der = std::fs::read(fixture("msg/valid-opaque-alice.der")).unwrap();
            let mut m = format!("From: alice@example.com\r\nSubject: binary\r\nMIME-Version: 1.0\r\nContent-Type: {ct}\r\nContent-Transfer-Encoding: binary\r\n\r\n").into_bytes();
            m.extend_from_slice(&der);
            m
        }),
        (
            "LF-only opaque",
            rewrite("valid-opaque-alice.eml", "", "")
                .iter()
                .copied()
                .filter(|b| *b != b'\r')
                .collect(),
        ),
    ];
    for (what, m) in variants {
        let f = env.write("v.eml", &m);
        let (code, j, err) = env.verify_json(&f, &[]);
        assert_eq!(code, 0, "{what}: {err}");
        let j = j.unwrap();
        assert_eq!(j["form"], "opaque", "{what}");
        assert_eq!(signer_of(&j), "alice@example.com", "{what}");
    }
    // An encrypted message handed to verify is an error that says so (exit 2), not "unsigned".
    let (code, _, err) = env.verify_json(s(fixture("msg/enc/aes256gcm-bob.eml")).as_str(), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("encrypted"), "{err}");
    // PGP/MIME is not S/MIME.
    let pgp = rewrite(
        "valid-rsa-alice.eml",
        "protocol=\"application/pkcs7-signature\"",
        "protocol=\"application/pgp-signature\"",
    );
    let f = env.write("pgp.eml", &pgp);
    let (code, _, err) = env.verify_json(&f, &[]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn chain_is_built_from_message_contacts_and_anchors() {
    if !common::have(&["openssl"]) {
        return;
    }
    // OpenSSL 3.0's CMS_verify ignores extra intermediates; ours builds the chain from the message's
    // certificates, the contacts (and their intermediates) and the anchors.
    let dir = tempfile::tempdir().unwrap();
    let entity = dir.path().join("e");
    std::fs::write(&entity, b"Content-Type: text/plain\r\n\r\nchain test\r\n").unwrap();
    let sign = |extra: &[&str]| {
        let cert = s(fixture("pki/alice.pem"));
        let key = s(fixture("pki/alice.key"));
        let e = s(entity.clone());
        let mut a = vec![
            "cms",
            "-sign",
            "-binary",
            "-signer",
            &cert,
            "-inkey",
            &key,
            "-from",
            "alice@example.com",
            "-subject",
            "chain",
            "-in",
            &e,
        ];
        a.extend(extra);
        let (rc, out, err) = external("openssl", &a, None);
        assert_eq!(rc, 0, "{err}");
        out
    };
    let env = Env::new();
    let no_inter = env.write("nointer.eml", &sign(&[]));
    let no_certs = env.write("nocerts.eml", &sign(&["-nocerts"]));
    // Without the intermediate anywhere: untrusted (1); without the signer's certificate: an error (2).
    let (code, j, _) = env.verify_json(&no_inter, &[]);
    assert_eq!(code, 1);
    assert_eq!(j.unwrap()["signers"][0]["trust"]["trusted"], false);
    let (code, _, err) = env.verify_json(&no_certs, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("neither in the message nor among your contacts"),
        "{err}"
    );
    // A valid message harvests alice and the intermediate; then both verify.
    let o = env.run(&[
        "verify",
        s(fixture("msg/valid-rsa-alice.eml")).as_str(),
        "--no-system-trust",
        "--ca",
        s(fixture("pki/root.pem")).as_str(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    for f in [&no_inter, &no_certs] {
        let (code, j, err) = env.verify_json(f, &[]);
        assert_eq!(code, 0, "{f}: {err} {j:?}");
        let chain = j.unwrap()["signers"][0]["trust"]["chain"].to_string();
        assert!(
            chain.contains("Intermediate") && chain.contains("Root"),
            "{chain}"
        );
    }
}

#[test]
fn sign_and_verify_work_as_filters() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = signer_env();
    let msg = simple_message("alice@example.com", "through a pipe\r\n");
    let o = env.run_stdin(&["sign"], &msg);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let signed = o.stdout;
    assert!(
        header(&signed, "content-type")
            .unwrap()
            .contains("multipart/signed")
    );
    assert_eq!(openssl_verify(&signed).0, 0);
    // verify - -o -: the verified message on stdout, the report on stderr.
    let mut args = vec!["verify", "-", "-o", "-"];
    let trust = fixture_trust();
    args.extend(trust.iter().map(|s| s.as_str()));
    let o = env.run_stdin(&args, &signed);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("through a pipe") && out.contains("From: alice@example.com"),
        "{out}"
    );
    assert!(
        !out.contains("VALID"),
        "the report is not mixed into the message"
    );
    assert!(text(&o.stderr).contains("VALID signature"));
    // Tampered on stdin: nothing on stdout.
    let bad = text(&signed)
        .replace("through a pipe", "through a PIPE")
        .into_bytes();
    let o = env.run_stdin(&args, &bad);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

#[test]
fn strict_boundary_split_and_sender_on_behalf() {
    if !common::have(&["openssl"]) {
        return;
    }
    // A boundary string in the middle of a line is not a delimiter (RFC 2046 §5.1.1); a parser that finds it
    // mid-line would hash other bytes than were signed.
    let dir = tempfile::tempdir().unwrap();
    let entity = b"Content-Type: text/plain\r\n\r\nquote: --BOUNDARY-1 appears mid-line\r\nand again x--BOUNDARY-1--\r\nend\r\n";
    let e = dir.path().join("e");
    std::fs::write(&e, entity).unwrap();
    let (rc, der, err) = external(
        "openssl",
        &[
            "cms",
            "-sign",
            "-binary",
            "-outform",
            "DER",
            "-md",
            "sha256",
            "-signer",
            s(fixture("pki/alice.pem")).as_str(),
            "-inkey",
            s(fixture("pki/alice.key")).as_str(),
            "-certfile",
            s(fixture("pki/inter.pem")).as_str(),
            "-in",
            s(e).as_str(),
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let b64: Vec<String> = b64.as_bytes().chunks(64).map(text).collect();
    let mut m = b"From: alice@example.com\r\nSender: eve@evil.example\r\nSubject: boundary\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"BOUNDARY-1\"\r\n\r\n--BOUNDARY-1\r\n".to_vec();
    m.extend_from_slice(entity);
    m.extend_from_slice(b"\r\n--BOUNDARY-1\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    m.extend_from_slice(b64.join("\r\n").as_bytes());
    m.extend_from_slice(b"\r\n--BOUNDARY-1--\r\n");
    let env = Env::new();
    let f = env.write("b.eml", &m);
    let (code, j, err) = env.verify_json(&f, &[]);
    assert_eq!(code, 0, "{err} {j:?}");
    let j = j.unwrap();
    // T21: Sender differs from From: shown, the From check stays on From.
    assert_eq!(j["sender"], "eve@evil.example");
    assert!(
        j["warnings"]
            .to_string()
            .contains("sent by eve@evil.example on behalf of alice@example.com"),
        "{}",
        j["warnings"]
    );
    assert_eq!(openssl_verify(&m).0, 0, "openssl agrees");
}

#[test]
fn nested_8bit_and_binary_parts_are_reencoded() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = signer_env();
    let mut m = b"From: alice@example.com\r\nSubject: mixed\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\nFrom me   \r\n--XX\r\nContent-Type: application/octet-stream; name=blob.bin\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
    let blob: Vec<u8> = (0..=255u8).chain([b'\r', b'\n', b'\n', 0, b'\r']).collect();
    m.extend_from_slice(&blob);
    m.extend_from_slice(b"\r\n--XX--\r\n");
    let signed = env.sign(&m, &[]);
    let (part, _) = split_signed(&signed);
    assert!(part.iter().all(|b| *b < 0x80), "7-bit");
    let t = text(&part);
    assert!(
        t.contains("Content-Transfer-Encoding: quoted-printable"),
        "{t}"
    );
    assert!(
        t.contains("Content-Transfer-Encoding: base64"),
        "binary part as base64: {t}"
    );
    for l in t.split("\r\n") {
        assert!(
            !l.starts_with("From ") && !l.ends_with(' ') && l.len() <= 998,
            "{l:?}"
        );
    }
    assert!(!t.replace("\r\n", "").contains('\r') && !t.replace("\r\n", "").contains('\n'));
    // The binary attachment survives exactly.
    use base64::Engine;
    let b64_start = t.find("name=blob.bin").unwrap();
    let body = &t[b64_start..];
    let body = &body[body.find("\r\n\r\n").unwrap() + 4..];
    let body = &body[..body.find("\r\n--XX").unwrap()];
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(body.replace("\r\n", ""))
        .unwrap();
    assert_eq!(
        decoded, blob,
        "binary bytes unchanged (no line-end canonicalisation)"
    );
    let f = env.write("m.eml", &signed);
    assert_eq!(env.verify_json(&f, &[]).0, 0);
    assert_eq!(openssl_verify(&signed).0, 0);
    // RSASSA-PSS with an EC ID: a clear refusal.
    let env2 = Env::new();
    env2.import_np("p12/carol-legacy.p12");
    let inp = env2.write("c.eml", &simple_message("carol@example.net", "x\r\n"));
    let o = env2.run(&["sign", &inp, "--pss"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert!(text(&o.stderr).contains("EC key"), "{}", text(&o.stderr));
}

#[test]
fn sign_refuses_rsa_keys_under_2048_bits() {
    if !common::have(&["openssl"]) {
        return;
    }
    // T04: an RSA-1024 ID may be imported (old archives) but never signs.
    let env = Env::new();
    let p12 = env.path("a1024.p12");
    let (rc, _, err) = external(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-in",
            s(fixture("pki/alice-1024.pem")).as_str(),
            "-inkey",
            s(fixture("pki/alice-1024.key")).as_str(),
            "-certfile",
            s(fixture("pki/inter.pem")).as_str(),
            "-passout",
            &format!("pass:{P12_PASSWORD}"),
            "-out",
            s(p12.clone()).as_str(),
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    env.ok(&["id", "import", s(p12).as_str(), "--no-passphrase"]);
    assert_refused(
        &env,
        &simple_message("alice@example.com", "x\r\n"),
        &[],
        &["1024 bits"],
    );
}

/// Messages of 1 MiB and more have their digest computed on a second thread, started before the safety check
/// on the bet that the body can be signed as it is. Each way that bet can go must give a signature OpenSSL
/// accepts: kept (clean CRLF body), lost at once (LF-only body: canonicalised), lost at the very end (one 8-bit
/// byte in the last line: quoted-printable), and opaque signing (no second thread).
#[test]
fn large_messages_sign_correctly_whichever_way_the_parallel_digest_goes() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = signer_env();
    let line = "The quick brown fox jumps over the lazy dog, again and again and again.....";
    let clean_body = format!("{line}\r\n").repeat(3 << 20 >> 7);
    let lf_body = clean_body.replace("\r\n", "\n");
    let late_8bit = format!("{clean_body}last line caf\u{e9}\r\n");
    for (name, body, opts) in [
        ("clean", &clean_body, &[][..]),
        ("LF-only", &lf_body, &[][..]),
        ("8-bit at the end", &late_8bit, &[][..]),
        ("opaque", &clean_body, &["--opaque"][..]),
    ] {
        let msg = simple_message("alice@example.com", body);
        assert!(
            msg.len() > 1 << 20,
            "{name}: big enough for the parallel path"
        );
        let signed = env.sign(&msg, opts);
        let f = env.write("big.eml", &signed);
        let (code, j, err) = env.verify_json(&f, &[]);
        assert_eq!(code, 0, "{name}: {err} {j:?}");
        let (rc, content, err) = openssl_verify(&signed);
        assert_eq!(rc, 0, "{name}: openssl: {err}");
        // The signed content still carries the whole text (possibly re-encoded, never truncated).
        let lines = text(&content).matches("fox jumps").count();
        assert_eq!(lines, 3 << 20 >> 7, "{name}: every line signed");
        if name == "clean" {
            let (part, _) = split_signed(&signed);
            assert!(
                find(&part, clean_body.as_bytes()).is_some(),
                "a clean body is signed as it is"
            );
            // Verify digests a large message on a second thread with the algorithm micalg names; a wrong
            // micalg makes that guess useless, not the verdict wrong.
            let relabeled = text(&signed).replacen("micalg=sha-256", "micalg=sha-512", 1);
            assert_ne!(relabeled, text(&signed));
            let f = env.write("relabeled.eml", relabeled.as_bytes());
            let (code, j, err) = env.verify_json(&f, &[]);
            assert_eq!(code, 0, "wrong micalg: {err} {j:?}");
            assert!(
                j.unwrap().to_string().contains("micalg"),
                "the mismatch is reported"
            );
            // One byte changed in the middle of the body: the parallel digest does not hide it.
            let mut flipped = signed.clone();
            let at = find(&flipped, b"fox jumps").unwrap() + (1 << 20);
            flipped[at] ^= 0x01;
            let f = env.write("flipped.eml", &flipped);
            let (code, _, _) = env.verify_json(&f, &[]);
            assert_eq!(code, 1, "a changed byte fails verification");
        }
    }
}
