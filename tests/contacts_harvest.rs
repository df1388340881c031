//! Issue 4, "Done means": harvesting by `verify` (messages signed by openssl and by our own `sign`),
//! `contact add` of certificates (PEM, DER, `.p7b` from `openssl crl2pkcs7`) and signed `.eml` messages, the
//! selection rules seen through `encrypt`, T40 (only the verified signer), T41 (far-future signing time, key
//! change), bad files, and contacts + anchors through `id backup` / `id restore`.

mod common;

use std::path::PathBuf;

use common::*;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::Value;

const BOB: &str = "Bob <bob@example.org>";

fn cert(rel: &str) -> X509 {
    X509::from_pem(&std::fs::read(fixture(rel)).unwrap()).unwrap()
}

fn fp(c: &X509) -> String {
    c.digest(MessageDigest::sha256())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A certificate issued by the fixture intermediate for `email` (`None`: a leaf without any address), valid
/// `from`..`to` (ASN.1 time strings `YYYYMMDDHHMMSSZ`), with keyUsage `ku` ("enc":
/// digitalSignature+keyEncipherment, "sign": digitalSignature).
fn issue(email: Option<&str>, from: &str, to: &str, ku: &str) -> X509 {
    let inter = cert("pki/inter.pem");
    let inter_key =
        PKey::private_key_from_pem(&std::fs::read(fixture("pki/inter.key")).unwrap()).unwrap();
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", email.unwrap_or("No Mail"))
        .unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = openssl::bn::BigNum::new().unwrap();
    serial
        .rand(120, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(inter.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_str(from).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_str(to).unwrap()).unwrap();
    b.append_extension(BasicConstraints::new().critical().build().unwrap())
        .unwrap();
    let mut k = KeyUsage::new();
    k.critical().digital_signature();
    if ku == "enc" {
        k.key_encipherment();
    }
    b.append_extension(k.build().unwrap()).unwrap();
    b.append_extension(ExtendedKeyUsage::new().email_protection().build().unwrap())
        .unwrap();
    if let Some(email) = email {
        let ctx = b.x509v3_context(Some(&inter), None);
        let san = SubjectAlternativeName::new()
            .email(email)
            .build(&ctx)
            .unwrap();
        b.append_extension(san).unwrap();
    }
    b.sign(&inter_key, MessageDigest::sha256()).unwrap();
    b.build()
}

/// A message from alice to bob saying `body`, signed by our own `sign` with the (passphrase-less) ID `p12`.
fn signed_by_alice(p12: &str, body: &str) -> Vec<u8> {
    let a = Env::new();
    a.import_np(p12);
    let inp = a.write_file(
        "m.eml",
        &message("Alice <alice@example.com>", BOB, "", body),
    );
    a.ok(&["sign", s(&inp)]).stdout
}

fn write_cert(e: &Env, name: &str, c: &X509) -> PathBuf {
    e.write_file(name, &c.to_pem().unwrap())
}

/// A home with bob's ID and the fixture root trusted.
fn bob_home() -> Env {
    let e = Env::new();
    e.import_np("p12/bob.p12");
    e.trust_root();
    e
}

fn contacts(e: &Env) -> Value {
    let o = e.ok(&["--json", "contact", "list"]);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn contact_fps(e: &Env) -> Vec<String> {
    contacts(e)["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["fingerprint"].as_str().unwrap().to_string())
        .collect()
}

fn show(e: &Env, addr: &str) -> Value {
    let o = e.ok(&["--json", "contact", "show", addr]);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Encrypts a message from bob to `to` and returns (exit code, JSON plan or stderr).
fn encrypt_to(e: &Env, to: &str) -> (i32, Value, String) {
    let inp = e.write_file("plain.eml", &message(BOB, to, "", "hello"));
    let out = e.path("enc.eml");
    let o = e.run(&["--json", "encrypt", s(&inp), "-o", s(&out), "--no-self"]);
    let (j, err) = json_outcome(&o);
    (o.status.code().unwrap(), j.unwrap_or(Value::Null), err)
}

/// The fingerprint `encrypt` chose for `addr`.
fn chosen_for(e: &Env, addr: &str) -> String {
    let (code, j, err) = encrypt_to(e, addr);
    assert_eq!(code, 0, "encrypt to {addr}: {err}");
    j["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == addr)
        .unwrap_or_else(|| panic!("{addr} not a recipient: {j}"))["fingerprint"]
        .as_str()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------------------------------------------
// Harvest by verify.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn harvest_from_openssl_signed_messages() {
    let e = bob_home();
    // --no-harvest: nothing.
    let o = e.ok(&["verify", "--no-harvest", &fx("msg/valid-rsa-alice.eml")]);
    assert!(!text(&o.stdout).contains("Added"), "{}", text(&o.stdout));
    assert!(contact_fps(&e).is_empty());
    // openssl-made RSA and ECDSA signatures: the signers are harvested with provenance.
    let o = e.ok(&["verify", &fx("msg/valid-rsa-alice.eml")]);
    assert!(text(&o.stdout).contains("Added the signer's certificate"));
    e.ok(&["verify", &fx("msg/valid-ecdsa-carol.eml")]);
    let fps = contact_fps(&e);
    assert!(fps.contains(&fingerprint_of("pki/alice.pem")), "{fps:?}");
    assert!(fps.contains(&fingerprint_of("pki/carol.pem")), "{fps:?}");
    assert_eq!(fps.len(), 2, "only the signers: {fps:?}");
    let j = show(&e, "alice@example.com");
    let prov = &j["certificates"][0]["meta"]["provenance"][0];
    assert_eq!(prov["source"], "message", "{j}");
    assert!(
        prov["message_id"]
            .as_str()
            .unwrap()
            .contains("valid-rsa-alice"),
        "{j}"
    );
    assert!(
        prov["from"].as_str().unwrap().contains("alice@example.com"),
        "{j}"
    );
    // The intermediate is kept for chain building; the root (never carried) is not a contact.
    let l = contacts(&e);
    assert_eq!(l["intermediates"].as_array().unwrap().len(), 1, "{l}");
    // Encryption to the harvested contacts now works (RSA and EC).
    assert_eq!(
        chosen_for(&e, "alice@example.com"),
        fingerprint_of("pki/alice.pem")
    );
    assert_eq!(
        chosen_for(&e, "carol@example.net"),
        fingerprint_of("pki/carol.pem")
    );
}

#[test]
fn harvest_from_our_own_sign_records_capabilities() {
    let signed = signed_by_alice("p12/alice2.p12", "signed by smimekit");
    let b = bob_home();
    let f = b.write_file("signed.eml", &signed);
    let o = b.ok(&["verify", s(&f)]);
    assert!(text(&o.stdout).contains("Added the signer's certificate"));
    let j = show(&b, "alice@example.com");
    let c = &j["certificates"][0];
    assert_eq!(c["fingerprint"], fingerprint_of("pki/alice2.pem").as_str());
    let caps: Vec<String> = c["meta"]["capabilities"]
        .as_array()
        .expect("capabilities recorded")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        caps.iter().any(|c| c.contains("2.16.840.1.101.3.4.1.46")),
        "AES-256-GCM advertised: {caps:?}"
    );
    // Our own capabilities list AES-GCM: encryption to alice uses AES-256-GCM because she says so.
    let (code, plan, err) = encrypt_to(&b, "alice@example.com");
    assert_eq!(code, 0, "{err}");
    assert_eq!(plan["cipher"], "aes-256-gcm", "{plan}");
    // She also advertised RSAES-OAEP: her key transport is OAEP without --oaep.
    assert_eq!(plan["recipients"][0]["oaep"], true, "{plan}");
    assert!(
        plan["cipher_reason"]
            .as_str()
            .unwrap()
            .contains("supports AES-256-GCM"),
        "{plan}"
    );
}

#[test]
fn tampered_or_untrusted_messages_harvest_nothing() {
    let e = bob_home();
    let before = e.snapshot();
    for (m, code) in [
        ("bad-body-flipped.eml", 1),
        ("bad-sig-flipped.eml", 1),
        ("untrusted-mallet.eml", 1),
        ("untrusted-alice-selfsigned.eml", 1),
        ("from-bob-signed-by-alice.eml", 1),
        ("c3-no-signers.eml", 2),
    ] {
        let o = e.run(&["verify", &fx(&format!("msg/{m}"))]);
        assert_code(&o, code, m);
        assert!(!text(&o.stdout).contains("Added"), "{m}");
    }
    assert_eq!(
        e.snapshot(),
        before,
        "a failed verification changed the store"
    );
    assert!(contact_fps(&e).is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// T40, T41.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn t40_only_the_verified_signer_is_added() {
    let e = bob_home();
    // Alice is already a contact (her genuine certificate).
    e.ok(&["verify", &fx("msg/valid-rsa-alice.eml")]);
    let alice_before = show(&e, "alice@example.com");
    let o = e.ok(&["verify", &fx("msg/g-eve-carrying-alice-cert.eml")]);
    assert!(text(&o.stdout).contains("Added the signer's certificate"));
    let fps = contact_fps(&e);
    assert!(
        fps.contains(&fingerprint_of("pki/eve.pem")),
        "eve added: {fps:?}"
    );
    assert!(
        !fps.contains(&fingerprint_of("pki/alice-selfsigned.pem")),
        "the carried attacker certificate for alice was added"
    );
    assert_eq!(fps.len(), 2, "{fps:?}");
    let alice_after = show(&e, "alice@example.com");
    assert_eq!(
        alice_before["certificates"].as_array().unwrap().len(),
        alice_after["certificates"].as_array().unwrap().len()
    );
    assert_eq!(
        chosen_for(&e, "alice@example.com"),
        fingerprint_of("pki/alice.pem")
    );

    // In a fresh home, the same message: only eve, alice never appears.
    let f = bob_home();
    f.ok(&["verify", &fx("msg/g-eve-carrying-alice-cert.eml")]);
    assert_eq!(contact_fps(&f), vec![fingerprint_of("pki/eve.pem")]);
    let o = f.run(&["contact", "show", "alice@example.com"]);
    assert_code(&o, 2, "no alice");
}

#[test]
fn t41_future_signing_time_and_key_change() {
    let e = bob_home();
    // A far-future signing time: the signature is valid, the signer is kept, the capabilities are not.
    let o = e.ok(&["verify", &fx("msg/sa-signing-time-2099.eml")]);
    let out = text(&o.stdout);
    assert!(out.contains("capabilities not recorded"), "{out}");
    let j = show(&e, "alice@example.com");
    let meta = &j["certificates"][0]["meta"];
    assert!(
        meta["capabilities"].is_null(),
        "capabilities recorded: {meta}"
    );
    assert!(meta["capabilities_time"].is_null(), "{meta}");
    // A later verified message with capabilities records them.
    e.ok(&["verify", &fx("msg/caps-aes256cbc-only.eml")]);
    let j = show(&e, "alice@example.com");
    assert_eq!(
        j["certificates"][0]["meta"]["capabilities"],
        serde_json::json!(["2.16.840.1.101.3.4.1.42"])
    );
    // Messages that are not newer (same signingTime) do not replace them.
    e.ok(&["verify", &fx("msg/caps-weak-only.eml")]);
    e.ok(&["verify", &fx("msg/caps-none.eml")]);
    let j = show(&e, "alice@example.com");
    assert_eq!(
        j["certificates"][0]["meta"]["capabilities"],
        serde_json::json!(["2.16.840.1.101.3.4.1.42"]),
        "an older message updated the capabilities"
    );
    // A newer message (signed now by our own sign with the same certificate) does.
    let newer = e.write_file(
        "alice-newer.eml",
        &signed_by_alice("p12/alice-modern.p12", "newer"),
    );
    e.ok(&["verify", s(&newer)]);
    let j = show(&e, "alice@example.com");
    let caps = j["certificates"][0]["meta"]["capabilities"].to_string();
    assert!(
        caps.contains("2.16.840.1.101.3.4.1.46"),
        "newer capabilities not recorded: {caps}"
    );

    // A message from alice signed with a new key (alice2, by our own sign): verify warns about the change.
    let f = e.write_file(
        "alice2-signed.eml",
        &signed_by_alice("p12/alice2.p12", "new key"),
    );
    let o = e.ok(&["verify", s(&f)]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(out.contains("WARNING"), "{out}");
    assert!(out.contains("changed"), "{out}");
    assert!(
        out.contains(&fingerprint_of("pki/alice.pem")[..16]),
        "names the old certificate: {out}"
    );
    // Both are kept; the user decides (here: the newest is chosen, a pin overrides).
    let j = show(&e, "alice@example.com");
    assert_eq!(j["certificates"].as_array().unwrap().len(), 2, "{j}");
}

// ---------------------------------------------------------------------------------------------------------
// contact add: certificate files.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn add_pem_der_and_p7b_bundles() {
    if !common::have(&["openssl"]) {
        return;
    }
    let e = bob_home();
    // DER (.der and .cer) and PEM of the same certificate.
    let der = e.path("alice.der");
    let (rc, _, err) = openssl(
        &[
            "x509",
            "-in",
            &fx("pki/alice.pem"),
            "-outform",
            "DER",
            "-out",
            s(&der),
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    let cer = e.write_file("alice.cer", &std::fs::read(&der).unwrap());
    let o = e.ok(&["contact", "add", s(&der)]);
    assert!(text(&o.stdout).starts_with("added"), "{}", text(&o.stdout));
    let o = e.ok(&["contact", "add", s(&cer), &fx("pki/alice.pem")]);
    assert!(
        text(&o.stdout).matches("already present").count() == 2,
        "{}",
        text(&o.stdout)
    );
    assert_eq!(contact_fps(&e), vec![fingerprint_of("pki/alice.pem")]);

    // .p7b made by openssl crl2pkcs7 (PEM and DER), with the chain and the root.
    let anchors_before = e.ok(&["--json", "trust", "list"]).stdout;
    for (form, name) in [("PEM", "bundle.p7b"), ("DER", "bundle.p7c")] {
        let p7 = e.path(name);
        let (rc, _, err) = openssl(
            &[
                "crl2pkcs7",
                "-nocrl",
                "-certfile",
                &fx("pki/carol.pem"),
                "-certfile",
                &fx("pki/bob.pem"),
                "-certfile",
                &fx("pki/inter.pem"),
                "-certfile",
                &fx("pki/root.pem"),
                "-outform",
                form,
                "-out",
                s(&p7),
            ],
            None,
        );
        assert_eq!(rc, 0, "{err}");
        let o = e.ok(&["contact", "add", s(&p7)]);
        let out = text(&o.stdout) + &text(&o.stderr);
        assert!(out.contains("carol@example.net"), "{form}: {out}");
        assert!(
            out.contains("root certificate"),
            "{form}: the root is named as not stored: {out}"
        );
    }
    let fps = contact_fps(&e);
    assert!(fps.contains(&fingerprint_of("pki/carol.pem")));
    assert!(fps.contains(&fingerprint_of("pki/bob.pem")));
    assert!(!fps.contains(&fingerprint_of("pki/root.pem")));
    assert!(
        !fps.contains(&fingerprint_of("pki/inter.pem")),
        "CA certificates are not contacts"
    );
    // Bundles never add trust (T41: certs-only input with a root).
    assert_eq!(e.ok(&["--json", "trust", "list"]).stdout, anchors_before);
}

#[test]
fn bad_files_exit_2_and_change_nothing() {
    let e = bob_home();
    e.ok(&["contact", "add", &fx("pki/alice.pem")]);
    let before = e.snapshot();
    let garbage = e.write_file(
        "garbage.pem",
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    let random = e.write_file("random.der", &[0x30, 0x82, 0x01, 0x00, 0xde, 0xad]);
    let key = fx("pki/carol.key");
    let tampered = fx("msg/bad-body-flipped.eml");
    let unsigned = fx("msg/plain-8bit.eml");
    let carried = fx("msg/untrusted-alice-selfsigned.eml");
    let ca_only = fx("pki/inter.pem");
    // A leaf of the trusted fixture chain that names no e-mail address anywhere.
    let no_email = write_cert(
        &e,
        "nomail.pem",
        &issue(None, "20250101000000Z", "21250101000000Z", "enc"),
    );
    // (case, files, what the error must say: the reason, not just that it failed)
    for (what, files, says) in [
        (
            "damaged PEM",
            vec![s(&garbage).to_string()],
            "PEM certificate block is damaged",
        ),
        (
            "random DER",
            vec![s(&random).to_string()],
            "neither a certificate nor a PKCS#7",
        ),
        ("a private key", vec![key.clone()], "contains a private key"),
        (
            "a tampered signed message",
            vec![tampered.clone()],
            "message digest mismatch",
        ),
        (
            "an unsigned message",
            vec![unsigned.clone()],
            "the message is not signed",
        ),
        (
            "an untrusted signed message",
            vec![carried.clone()],
            "not trusted: self-signed",
        ),
        (
            "only a CA certificate",
            vec![ca_only.clone()],
            "CA certificates are not contacts",
        ),
        (
            "no e-mail address",
            vec![s(&no_email).to_string()],
            "has no e-mail address",
        ),
        // A good file with a bad one: nothing of either is stored.
        (
            "good + tampered",
            vec![fx("pki/carol.pem"), tampered.clone()],
            "message digest mismatch",
        ),
        (
            "good message + bad cert",
            vec![fx("msg/valid-ecdsa-carol.eml"), s(&garbage).to_string()],
            "PEM certificate block is damaged",
        ),
        (
            "a missing file",
            vec![s(&e.path("missing.pem")).to_string()],
            "cannot read",
        ),
    ] {
        let mut args = vec!["contact", "add"];
        args.extend(files.iter().map(String::as_str));
        let o = e.run(&args);
        assert_code(&o, 2, what);
        let err = text(&o.stderr);
        assert!(err.contains("smimekit: error:"), "{what}: {err}");
        assert!(err.contains(says), "{what}: expected {says:?} in {err}");
        assert!(err.contains("smimekit: hint:"), "{what}: no hint: {err}");
        assert_same_store(&before, &e.snapshot(), what);
    }
}

// ---------------------------------------------------------------------------------------------------------
// contact add: signed messages (same rules as harvest).
// ---------------------------------------------------------------------------------------------------------

#[test]
fn add_signed_eml() {
    let e = bob_home();
    let o = e.ok(&["contact", "add", &fx("msg/valid-rsa-alice.eml")]);
    assert!(text(&o.stdout).contains("added"), "{}", text(&o.stdout));
    assert_eq!(contact_fps(&e), vec![fingerprint_of("pki/alice.pem")]);
    let j = show(&e, "alice@example.com");
    assert_eq!(
        j["certificates"][0]["meta"]["provenance"][0]["source"],
        "message"
    );
    // T40 through contact add: only eve.
    e.ok(&["contact", "add", &fx("msg/g-eve-carrying-alice-cert.eml")]);
    let fps = contact_fps(&e);
    assert!(fps.contains(&fingerprint_of("pki/eve.pem")));
    assert!(!fps.contains(&fingerprint_of("pki/alice-selfsigned.pem")));
    // Capabilities are recorded as by verify; a far-future signing time records none.
    let f = bob_home();
    f.ok(&["contact", "add", &fx("msg/caps-aes256cbc-only.eml")]);
    let (_, plan, _) = encrypt_to(&f, "alice@example.com");
    assert_eq!(plan["cipher"], "aes-256-cbc", "{plan}");
    let g = bob_home();
    let o = g.ok(&["contact", "add", &fx("msg/sa-signing-time-2099.eml")]);
    assert!(
        text(&o.stdout).contains("capabilities not recorded"),
        "{}",
        text(&o.stdout)
    );
    assert!(show(&g, "alice@example.com")["certificates"][0]["meta"]["capabilities"].is_null());
    // A message and a certificate together.
    let h = bob_home();
    h.ok(&[
        "contact",
        "add",
        &fx("msg/valid-ecdsa-carol.eml"),
        &fx("pki/alice.pem"),
    ]);
    let fps = contact_fps(&h);
    assert!(
        fps.contains(&fingerprint_of("pki/carol.pem"))
            && fps.contains(&fingerprint_of("pki/alice.pem"))
    );
}

// ---------------------------------------------------------------------------------------------------------
// Selection rules, end to end through encrypt.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn selection_rules_through_encrypt() {
    let e = bob_home();
    // Expired vs valid: an expired alice certificate that is NEWER (notBefore) than the valid one loses.
    let expired = issue(
        Some("alice@example.com"),
        "20260201000000Z",
        "20260301000000Z",
        "enc",
    );
    let expired_pem = write_cert(&e, "alice-expired.pem", &expired);
    e.ok(&["contact", "add", &fx("pki/alice.pem"), s(&expired_pem)]);
    assert_eq!(
        chosen_for(&e, "alice@example.com"),
        fingerprint_of("pki/alice.pem")
    );
    let j = show(&e, "alice@example.com");
    let rejected = j["selection"]["rejected"].to_string();
    assert!(rejected.contains(&fp(&expired)), "{j}");
    assert!(rejected.contains("expired"), "{j}");

    // Two valid certificates: the newest notBefore (alice2).
    e.ok(&["contact", "add", &fx("pki/alice2.pem")]);
    assert_eq!(
        chosen_for(&e, "alice@example.com"),
        fingerprint_of("pki/alice2.pem")
    );

    // A pinned one wins while usable.
    e.ok(&[
        "contact",
        "prefer",
        "alice@example.com",
        &fingerprint_of("pki/alice.pem")[..16],
    ]);
    assert_eq!(
        chosen_for(&e, "alice@example.com"),
        fingerprint_of("pki/alice.pem")
    );
    e.ok(&["contact", "prefer", "alice@example.com", "--clear"]);
    assert_eq!(
        chosen_for(&e, "alice@example.com"),
        fingerprint_of("pki/alice2.pem")
    );

    // Signing-only vs encryption-capable: dave's signing-only certificate is newer but never chosen.
    let dave_enc = issue(
        Some("dave@example.com"),
        "20250101000000Z",
        "21250101000000Z",
        "enc",
    );
    let dave_enc_pem = write_cert(&e, "dave-enc.pem", &dave_enc);
    e.ok(&["contact", "add", &fx("pki/dave-sign.pem")]);
    let (code, _, err) = encrypt_to(&e, "dave@example.com");
    assert_eq!(code, 2, "signing-only dave: {err}");
    assert!(
        err.contains("dave@example.com") && err.contains("encryption"),
        "{err}"
    );
    e.ok(&["contact", "add", s(&dave_enc_pem)]);
    assert_eq!(chosen_for(&e, "dave@example.com"), fp(&dave_enc));

    // Only an expired certificate, a not-yet-valid one, or no emailProtection: refused, with the reason.
    e.ok(&[
        "contact",
        "add",
        &fx("pki/grace-expired.pem"),
        &fx("pki/heidi-notyet.pem"),
        &fx("pki/frank-noeku.pem"),
    ]);
    for (addr, why) in [
        ("grace@example.com", "expired"),
        ("heidi@example.com", "not valid before"),
        ("frank@example.com", "emailProtection"),
    ] {
        let (code, _, err) = encrypt_to(&e, addr);
        assert_eq!(code, 2, "{addr}");
        assert!(err.contains(addr) && err.contains(why), "{addr}: {err}");
    }
    // Addresses compare case-insensitively.
    assert_eq!(
        chosen_for(&e, "ALICE@Example.COM"),
        fingerprint_of("pki/alice2.pem")
    );
}

// ---------------------------------------------------------------------------------------------------------
// Backup and restore.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn contacts_and_anchors_survive_backup_and_restore() {
    let e = bob_home();
    e.ok(&["verify", &fx("msg/valid-rsa-alice.eml")]);
    e.ok(&[
        "contact",
        "add",
        &fx("pki/carol.pem"),
        &fx("pki/alice2.pem"),
    ]);
    e.ok(&[
        "contact",
        "prefer",
        "alice@example.com",
        &fingerprint_of("pki/alice.pem")[..16],
    ]);
    let backup = e.path("backup.p12");
    e.ok(&["id", "backup", "-o", s(&backup)]);

    let f = Env::new();
    // Your own backup on a new home: the trust anchors it adds are confirmed with --yes.
    f.ok(&["id", "restore", "--no-passphrase", "--yes", s(&backup)]);
    let mut a = contact_fps(&e);
    let mut b = contact_fps(&f);
    a.sort();
    b.sort();
    assert_eq!(a, b, "contacts after restore");
    assert_eq!(a.len(), 3);
    let trust = text(&f.ok(&["trust", "list"]).stdout);
    assert!(
        trust.contains("smimekit Test Root CA"),
        "anchors after restore: {trust}"
    );
    // The metadata travels too: the pin on alice's older certificate and the capabilities her signed message
    // advertised.
    assert_eq!(
        chosen_for(&f, "alice@example.com"),
        chosen_for(&e, "alice@example.com")
    );
    assert_eq!(
        chosen_for(&f, "alice@example.com"),
        fingerprint_of("pki/alice.pem")
    );
    let alice_caps = |h: &Env| {
        show(h, "alice@example.com")["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["meta"]["capabilities"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(alice_caps(&e), alice_caps(&f), "capabilities after restore");
    assert!(
        alice_caps(&f).iter().any(|c| c.is_array()),
        "no capabilities restored"
    );
    // The restored home encrypts to the contacts (alice: checked above) and verifies with the restored anchor.
    assert_eq!(
        chosen_for(&f, "carol@example.net"),
        fingerprint_of("pki/carol.pem")
    );
    let o = f.ok(&[
        "verify",
        "--no-system-trust",
        &fx("msg/valid-ecdsa-carol.eml"),
    ]);
    assert!(text(&o.stdout).contains("VALID"));
    // Restoring again changes nothing (merge: nothing replaced).
    let before = f.snapshot();
    f.ok(&["id", "restore", "--no-passphrase", s(&backup)]);
    assert_same_store(&before, &f.snapshot(), "a second restore");
}

/// A command that fails to write its output changes nothing in the store: the harvest comes after the output.
#[test]
fn failed_output_harvests_nothing() {
    let e = bob_home();
    let before = e.snapshot();
    let o = e.run(&[
        "verify",
        &fx("msg/valid-rsa-alice.eml"),
        "-o",
        "/nonexistent-dir/out.eml",
    ]);
    assert_code(&o, 2, "verify -o into a missing folder");
    assert!(
        text(&o.stderr).contains("must exist"),
        "{}",
        text(&o.stderr)
    );
    assert_same_store(&before, &e.snapshot(), "a verify whose output failed");
}

/// Without From, the Sender is the address that must match the signer (RFC 8550 §3).
#[test]
fn sender_is_checked_when_from_is_absent() {
    let e = bob_home();
    let msg = std::fs::read(fixture("msg/i1-from-alice-signed-by-eve.eml")).unwrap();
    let t = text(&msg);
    assert!(t.contains("From: "));
    // The outer From is not signed: drop it and claim alice as Sender.
    let forged: String = t
        .split_inclusive('\n')
        .map(|l| {
            if l.starts_with("From:") {
                "Sender: alice@example.com\r\n".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    let f = e.write_file("sender.eml", forged.as_bytes());
    let o = e.run(&["verify", "--no-harvest", s(&f)]);
    assert_code(&o, 1, "eve's signature with Sender: alice");
    assert!(
        text(&o.stdout).contains("alice@example.com"),
        "{}",
        text(&o.stdout)
    );
}
