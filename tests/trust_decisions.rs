//! Trust decisions a careful attacker probes: the ESS binding of the signer's certificate, report text a
//! certificate or header controls, ambiguous From fields, CA:TRUE signers, messages bound to no sender, IDN
//! homographs, and the verify headline that names what failed and what to do about it.

mod common;

use common::*;
use serde_json::Value;

fn fixture_s(rel: &str) -> String {
    fixture(rel).to_str().unwrap().to_string()
}

/// `signed` with its outer From field replaced by `from` (or removed): outer headers are not signed.
fn with_from(signed: &[u8], from: Option<&str>) -> Vec<u8> {
    let t = text(signed);
    let start = t.find("From: ").expect("a From field");
    let end = start + t[start..].find("\r\n").unwrap() + 2;
    let mut out = t[..start].to_string();
    if let Some(f) = from {
        out += &format!("From: {f}\r\n");
    }
    out += &t[end..];
    out.into_bytes()
}

/// An env holding the ID of `p12` (a fixture), and a message from `from` signed with it.
fn signed_by(p12: &str, from: &str) -> (Env, Vec<u8>) {
    let env = Env::new();
    env.import_np(p12);
    let signed = env.sign(&simple_message(from, "hello\r\n"), &[]);
    (env, signed)
}

/// `verify FILE` with the fixture trust, human text: (exit code, stdout).
fn verify_text(env: &Env, file: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", file];
    let trust = fixture_trust();
    args.extend(trust.iter().map(|s| s.as_str()));
    args.extend(extra);
    let o = env.run(&args);
    (o.status.code().unwrap_or(-1), text(&o.stdout))
}

fn report(env: &Env, msg: &[u8], extra: &[&str]) -> (i32, Value, String) {
    let f = env.write("m.eml", msg);
    let (code, j, err) = env.verify_json(&f, extra);
    (
        code,
        j.unwrap_or_else(|| panic!("no JSON report: {err}")),
        err,
    )
}

#[test]
fn ess_signing_certificate_must_name_the_signer_certificate() {
    // Alice's signature with its signer identifier and certificates swapped to a certificate for eve@ on
    // Alice's key: the ESS signingCertificateV2 still names Alice's certificate.
    let env = Env::new();
    let (code, j, err) = env.verify_json(&fixture_s("sec/ess-swapped.eml"), &[]);
    let j = j.unwrap_or_else(|| panic!("{err}"));
    assert_eq!(code, 1, "{j}");
    assert_eq!(j["verdict"], "content_changed");
    assert!(
        j["signers"][0]["integrity"]["reason"]
            .as_str()
            .unwrap()
            .contains("ESS signingCertificate"),
        "{j}"
    );
    // The same signature as Alice sent it verifies.
    let (code, j, _) = env.verify_json(&fixture_s("sec/ess-alice.eml"), &[]);
    assert_eq!(code, 0, "{j:?}");
    // With Alice's certificate also at hand (a contact), the ESS-named certificate is the one tried first.
    env.trust_root();
    env.ok(&["contact", "add", &fixture_s("pki/alice.pem")]);
    let msg = std::fs::read(fixture("sec/ess-swapped.eml")).unwrap();
    let (code, j, _) = report(&env, &msg, &[]);
    assert_ne!(code, 0, "{j}");
    assert_ne!(j["signers"][0]["emails"][0], "eve@evil.example", "{j}");
}

#[test]
fn a_line_feed_in_the_cn_cannot_add_a_report_line() {
    let (env, signed) = signed_by("sec/eve-cn-lf.p12", "Eve <eve@evil.example>");
    let f = env.write("m.eml", &signed);
    let (code, out) = verify_text(&env, &f, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.lines()
            .any(|l| l.trim_start().starts_with("E-mail:") && l.contains("alice@")),
        "a fake E-mail line:\n{out}"
    );
    assert!(
        out.contains("CN=Eve\\n  E-mail:"),
        "escaped visibly:\n{out}"
    );
}

#[test]
fn header_text_is_escaped_in_inspect() {
    // An RFC 2047 Subject with a line feed and a bidi override: one line, both visible.
    let (env, signed) = signed_by("p12/eve.p12", "Eve <eve@evil.example>");
    let t = text(&signed).replacen(
        "Subject: test message",
        "Subject: =?utf-8?q?hi=0ALayer_1:_signed_CN=3DAlice_=E2=80=AEfdp.exe?=",
        1,
    );
    let f = env.write("m.eml", t.as_bytes());
    let o = env.ok(&["inspect", &f]);
    let out = text(&o.stdout);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("Layer 1:")).count(),
        1,
        "{out}"
    );
    assert!(out.contains("hi\\nLayer 1: signed"), "{out}");
    assert!(
        out.contains("<U+202E>") && !out.contains('\u{202E}'),
        "{out}"
    );
}

#[test]
fn an_ambiguous_from_is_refused() {
    let (env, signed) = signed_by("p12/eve.p12", "eve@evil.example");
    for from in [
        "alice@example.com <eve@evil.example>",
        "alice@example.com: eve@evil.example;",
    ] {
        let (code, j, _) = report(&env, &with_from(&signed, Some(from)), &[]);
        assert_eq!(code, 1, "{from}: {j}");
        assert_eq!(j["status"], "invalid", "{from}");
        assert_eq!(j["verdict"], "ambiguous_from", "{from}");
        assert!(
            j["headline"]
                .as_str()
                .unwrap()
                .contains("From is ambiguous")
        );
    }
    // A quoted display name is not ambiguous: a valid signature by eve.
    let quoted = with_from(&signed, Some("\"alice@example.com\" <eve@evil.example>"));
    let (code, j, _) = report(&env, &quoted, &[]);
    assert_eq!(code, 0, "{j}");
}

#[test]
fn a_ca_certificate_is_never_a_valid_signer() {
    let (env, signed) = signed_by("sec/carl-ca-leaf.p12", "Carl <carl@example.com>");
    let (code, j, _) = report(&env, &signed, &[]);
    assert_eq!(code, 1, "{j}");
    assert_eq!(j["verdict"], "not_for_signing");
    assert!(
        j["signers"][0]["purpose"]["reason"]
            .as_str()
            .unwrap()
            .contains("CA:TRUE")
    );
    // With harvest on and -o: exit 1, nothing written, no contact.
    let f = env.write("m.eml", &signed);
    let out = env.path("out.eml");
    let o = env.run(&[
        "verify",
        &f,
        "--no-system-trust",
        "--ca",
        &fixture_s("pki/root.pem"),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(!out.exists());
    let o = env.ok(&["--json", "contact", "list"]);
    assert!(!text(&o.stdout).contains("carl@"), "{}", text(&o.stdout));
}

#[test]
fn a_signature_bound_to_no_sender_is_not_valid() {
    let (env, signed) = signed_by("p12/eve.p12", "eve@evil.example");
    let nofrom = with_from(&signed, None);
    let (code, j, _) = report(&env, &nofrom, &[]);
    assert_eq!(code, 1, "{j}");
    assert_eq!(j["status"], "unbound");
    assert_eq!(j["verdict"], "no_sender");
    let f = env.write("m.eml", &nofrom);
    let (_, out) = verify_text(&env, &f, &[]);
    assert!(out.starts_with("NOT BOUND to a sender"), "{out}");
    assert!(out.contains("--no-address-check"), "{out}");
    // Explicitly about the signer alone: valid, exit 0.
    let (code, j, _) = report(&env, &nofrom, &["--no-address-check"]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["status"], "valid");
}

#[test]
fn homograph_domains_show_the_a_label_and_are_flagged() {
    let (env, signed) = signed_by("sec/alice-homograph.p12", "alice@xn--exmple-4nf.com");
    // The From in its Unicode form (Cyrillic а) matches the certificate's A-label.
    let unicode = with_from(&signed, Some("Alice <alice@ex\u{0430}mple.com>"));
    let f = env.write("m.eml", &unicode);
    let (code, out) = verify_text(&env, &f, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[A-label: alice@xn--exmple-4nf.com]"), "{out}");
    assert!(out.contains("MIXED SCRIPTS: Latin+Cyrillic"), "{out}");
    assert!(out.contains("WEAK"), "flagged in the headline:\n{out}");
    let (_, j, _) = report(&env, &unicode, &[]);
    assert!(j["warnings"].to_string().contains("mixes scripts"), "{j}");
}

#[test]
fn verify_headlines_name_what_failed_and_the_remedy() {
    let env = Env::new();
    for (file, code, verdict, words) in [
        (
            "msg/valid-rsa-alice.eml",
            0,
            "valid",
            &["VALID signature"][..],
        ),
        (
            "msg/bad-body-flipped.eml",
            1,
            "content_changed",
            &["INVALID signature: the content was changed"][..],
        ),
        (
            "msg/untrusted-mallet.eml",
            1,
            "not_trusted",
            &[
                "UNTRUSTED signer: the content is intact",
                "trust add",
                "--ca",
            ][..],
        ),
        (
            "msg/expired-grace.eml",
            1,
            "expired",
            &[
                "the content is intact, but the signer's certificate has EXPIRED",
                "--at",
            ][..],
        ),
        (
            "msg/i1-from-alice-signed-by-eve.eml",
            1,
            "address_mismatch",
            &[
                "ADDRESS MISMATCH",
                "treat the message as sent by eve@evil.example",
            ][..],
        ),
    ] {
        let p = fixture_s(file);
        let (c, out) = verify_text(&env, &p, &[]);
        assert_eq!(c, code, "{file}: {out}");
        for w in words {
            assert!(out.contains(w), "{file}: '{w}' in\n{out}");
        }
        assert!(out.contains("Revocation:"), "{file}: {out}");
        let (_, j, _) = env.verify_json(&p, &[]);
        let j = j.unwrap();
        assert_eq!(j["verdict"], verdict, "{file}");
        // Nothing about the fixture PKI is cached and nothing is fetched: unknown for a valid chain; a chain
        // that did not validate (untrusted, expired) may not be checked at all.
        if verdict == "valid" {
            assert_eq!(j["revocation"], "unknown", "{file}");
        } else {
            assert!(
                matches!(j["revocation"].as_str(), Some("unknown" | "not checked")),
                "{file}: {}",
                j["revocation"]
            );
        }
    }
}

/// A home holding the ID of `p12` (without a passphrase) that trusts the fixture root.
fn home_of(p12: &str) -> Env {
    let e = Env::new();
    e.import_np(p12);
    e.trust_root();
    e
}

/// Encrypts `msg` in `e` (to its To and the sender); returns the encrypted message.
fn encrypt_in(e: &Env, msg: &[u8]) -> Vec<u8> {
    let inp = e.write("plain.eml", msg);
    let out = e.path("enc.eml");
    e.ok(&["encrypt", &inp, "-o", out.to_str().unwrap()]);
    std::fs::read(out).unwrap()
}

#[test]
fn decrypt_never_claims_an_authenticated_sender() {
    // Eve encrypts an unsigned message to Bob with AES-GCM, claiming to be Alice.
    let eve = home_of("p12/eve.p12");
    eve.ok(&["contact", "add", &fixture_s("pki/bob.pem")]);
    let plain = simple_message("Alice <alice@example.com>", "pay eve\r\n");
    let enc = encrypt_in(
        &eve,
        &text(&plain)
            .replace(
                "From: Alice <alice@example.com>",
                "From: Alice <alice@example.com>\r\nCc: eve@evil.example",
            )
            .into_bytes(),
    );
    let bob = home_of("p12/bob.p12");
    let f = bob.write("enc.eml", &enc);
    let o = bob.run(&["decrypt", &f, "-o", bob.path("dec.eml").to_str().unwrap()]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains("tampering would have been detected"), "{out}");
    assert!(
        out.contains("not signed — the sender is not authenticated"),
        "{out}"
    );
    let o = bob.run(&[
        "--json",
        "decrypt",
        &f,
        "-o",
        bob.path("dec2.eml").to_str().unwrap(),
    ]);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        j["sender"]
            .as_str()
            .unwrap_or_default()
            .contains("not authenticated")
            || j["decryption"]["sender"]
                .as_str()
                .unwrap_or_default()
                .contains("not authenticated"),
        "{j}"
    );

    // Alice's old signed mail, re-encrypted by Eve to Bob under a new Subject: the signature is valid, but
    // the report says what it covers.
    let signed = text(&std::fs::read(fixture("msg/valid-rsa-alice.eml")).unwrap())
        .replacen(
            "Subject: valid-rsa-alice",
            "Subject: new terms from Alice",
            1,
        )
        .replacen(
            "To: Bob <bob@example.org>",
            "To: Bob <bob@example.org>\r\nCc: eve@evil.example",
            1,
        );
    let enc = encrypt_in(&eve, signed.as_bytes());
    let f = bob.write("enc2.eml", &enc);
    let o = bob.run(&["decrypt", &f, "-o", bob.path("dec3.eml").to_str().unwrap()]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("VALID signature"), "{out}");
    assert!(
        out.contains("the signature covers the inner signed entity only"),
        "{out}"
    );
    assert!(out.contains("Subject"), "{out}");
}

/// An attacker's backup: their own root as a trust anchor, an ID for alice@ and a pinned contact for bob@
/// under it, and contact metadata with a capabilities time in year 9999.
fn attacker_backup() -> (Env, String) {
    let a = Env::new();
    a.import_np("sec/attacker-alice.p12");
    a.ok(&["trust", "add", &fixture_s("pki/untrusted-root.pem")]);
    a.ok(&["contact", "add", &fixture_s("sec/attacker-bob.pem")]);
    let bob_fp = fingerprint_of("sec/attacker-bob.pem");
    a.ok(&["contact", "prefer", "bob@example.org", &bob_fp]);
    let index = a.home().join("contacts").join("index.json");
    let mut j: Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
    j["contacts"][&bob_fp]["capabilities_time"] = "9999-12-31T00:00:00Z".into();
    j["contacts"][&bob_fp]["capabilities"] = serde_json::json!(["1.2.840.113549.3.7"]);
    std::fs::write(&index, serde_json::to_vec(&j).unwrap()).unwrap();
    let out = a.path("backup.p12");
    a.ok(&["id", "backup", "-o", out.to_str().unwrap()]);
    let p = out.to_str().unwrap().to_string();
    (a, p)
}

fn list(env: &Env, what: &str) -> String {
    text(&env.ok(&["--json", what, "list"]).stdout)
}

#[test]
fn restoring_someone_elses_backup_cannot_take_over() {
    let (_attacker, backup) = attacker_backup();
    let victim = Env::new();
    victim.import_np("p12/alice-modern.p12");
    victim.trust_root();
    victim.ok(&["contact", "add", &fixture_s("pki/bob.pem")]);
    let root_fp = fingerprint_of("pki/untrusted-root.pem");
    let evil_alice = fingerprint_of("sec/attacker-alice.pem");
    let evil_bob = fingerprint_of("sec/attacker-bob.pem");

    // --batch without --yes: everything is shown, no anchor and nothing flagged is added.
    let o = victim.run(&["id", "restore", &backup]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("CN=Untrusted Root CA") && err.contains(&root_fp),
        "{err}"
    );
    assert!(
        err.contains(&evil_alice) && err.contains("FLAGGED"),
        "{err}"
    );
    assert!(err.contains("trust anchor(s) not added"), "{err}");
    assert!(!list(&victim, "trust").contains(&root_fp));
    assert!(!list(&victim, "id").contains(&evil_alice));
    assert!(!list(&victim, "contact").contains(&evil_bob));

    // --yes: added after being shown, but the backup's pin never outranks the local certificate for bob@,
    // and the metadata row from the future is dropped with a note.
    let o = victim.run(&["id", "restore", &backup, "--yes"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(list(&victim, "trust").contains(&root_fp));
    assert!(
        err.contains("pin for bob@example.org was not restored"),
        "{err}"
    );
    assert!(err.contains("capabilities time is in the future"), "{err}");
    let contacts = list(&victim, "contact");
    assert!(contacts.contains(&evil_bob), "{contacts}");
    assert!(!contacts.contains("9999"), "{contacts}");
}

#[test]
fn encryption_chains_need_the_smime_purpose_too() {
    // alice@ under a sub-CA of the trusted root whose extendedKeyUsage allows serverAuth only: not a chain
    // for S/MIME, so it never replaces Alice's certificate as the newest.
    let bob = home_of("p12/bob.p12");
    bob.ok(&["contact", "add", &fixture_s("pki/alice.pem")]);
    let o = bob.run(&[
        "contact",
        "add",
        &fixture_s("sec/alice-via-tls-ca-chain.pem"),
    ]);
    let added = o.status.code() == Some(0);
    let inp = bob.write(
        "plain.eml",
        &simple_message("Bob <bob@example.org>", "hi\r\n"),
    );
    let plain = text(&std::fs::read(&inp).unwrap())
        .replace("To: Bob <bob@example.org>", "To: Alice <alice@example.com>");
    let inp = bob.write("plain.eml", plain.as_bytes());
    let out = bob.path("enc.eml");
    let o = bob.run(&[
        "--json",
        "encrypt",
        &inp,
        "-o",
        out.to_str().unwrap(),
        "--no-self",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let chosen = j["recipients"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(chosen, fingerprint_of("pki/alice.pem"), "{j}");
    if added {
        let o = bob.ok(&["--json", "contact", "show", "alice@example.com"]);
        let show = text(&o.stdout);
        assert!(show.contains("may not issue e-mail certificates"), "{show}");
    }
}

#[test]
fn harvest_binds_only_the_verified_from_address() {
    // Eve's certificate lists eve@ and alice@; her signed message from eve@ must not switch encryption to
    // alice@ over to her key.
    let bob = home_of("p12/bob.p12");
    bob.ok(&["contact", "add", &fixture_s("pki/alice.pem")]);
    let (eve, signed) = signed_by("sec/eve-two-addr.p12", "Eve <eve@evil.example>");
    drop(eve);
    let f = bob.write("m.eml", &signed);
    let o = bob.run(&["verify", &f, "--no-system-trust"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let plain = text(&simple_message("Bob <bob@example.org>", "hi\r\n")).replace(
        "To: Bob <bob@example.org>",
        "To: alice@example.com, eve@evil.example",
    );
    let inp = bob.write("plain.eml", plain.as_bytes());
    let out = bob.path("enc.eml");
    let o = bob.run(&[
        "--json",
        "encrypt",
        &inp,
        "-o",
        out.to_str().unwrap(),
        "--no-self",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let fp_for = |addr: &str| {
        j["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == addr)
            .map(|r| r["fingerprint"].as_str().unwrap().to_string())
    };
    assert_eq!(
        fp_for("alice@example.com"),
        Some(fingerprint_of("pki/alice.pem")),
        "{j}"
    );
    assert_eq!(
        fp_for("eve@evil.example"),
        Some(fingerprint_of("sec/eve-two-addr.pem")),
        "{j}"
    );
}

#[test]
fn a_harvested_key_change_waits_for_confirmation() {
    // Bob has Alice's certificate; a valid message from alice@ signed with another key (alice2) is recorded
    // but not used for encryption until Bob confirms it.
    let bob = home_of("p12/bob.p12");
    bob.ok(&["contact", "add", &fixture_s("pki/alice.pem")]);
    let (_alice, signed) = signed_by("p12/alice2.p12", "Alice <alice@example.com>");
    let f = bob.write("m.eml", &signed);
    let o = bob.run(&["verify", &f, "--no-system-trust"]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("not used for encryption until you confirm it"),
        "{out}"
    );
    let encrypt = |bob: &Env| -> Value {
        let plain = text(&simple_message("Bob <bob@example.org>", "hi\r\n"))
            .replace("To: Bob <bob@example.org>", "To: alice@example.com");
        let inp = bob.write("plain.eml", plain.as_bytes());
        let out = bob.path("enc.eml");
        let o = bob.run(&[
            "--json",
            "encrypt",
            &inp,
            "-o",
            out.to_str().unwrap(),
            "--no-self",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["recipients"][0].clone()
    };
    let r = encrypt(&bob);
    assert_eq!(
        r["fingerprint"],
        fingerprint_of("pki/alice.pem").as_str(),
        "{r}"
    );
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("skipped the newer, unconfirmed certificate"),
        "{r}"
    );
    // Confirmed with contact prefer: now it is used.
    let new_fp = fingerprint_of("pki/alice2.pem");
    bob.ok(&["contact", "prefer", "alice@example.com", &new_fp[..16]]);
    let r = encrypt(&bob);
    assert_eq!(r["fingerprint"], new_fp.as_str(), "{r}");
}
