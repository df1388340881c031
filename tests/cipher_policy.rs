//! The cipher policy of `encrypt` (`--cipher-policy compatible|modern`) against recorded capabilities, and what
//! the report says: the cipher, the policy, who decided it, the EC note and the sign-inside advice. The NSS
//! side of the story (what Thunderbird opens) is in `tests/nss.rs`.

mod common;

use common::*;
use serde_json::{Value, json};

const ALICE: &str = "Alice <alice@example.com>";
const BOB: &str = "Bob <bob@example.org>";
const BODY: &str = "Hello,\nthe quarterly figures are final.";

/// Bob's home (no passphrase, root trusted) that learned alice's capabilities (AES-GCM and CBC, as smimekit
/// advertises them) by verifying a message smimekit signed as alice.
fn bob_knows_alice() -> Env {
    let a = Env::new();
    a.import_np("p12/alice-modern.p12");
    let signed = a.sign(&message(ALICE, BOB, "", BODY), &[]);
    let b = Env::new();
    b.import_np("p12/bob.p12");
    b.trust_root();
    let f = b.write("from-alice.eml", &signed);
    let o = b.ok(&["verify", &f]);
    assert!(text(&o.stdout).contains("Added the signer's certificate"));
    b
}

/// `encrypt --json --no-self` of a message from bob to `to` with `args`; returns the report.
fn plan(e: &Env, to: &str, args: &[&str]) -> Value {
    let inp = e.write("plain.eml", &message(BOB, to, "", BODY));
    let out = e.path("enc.eml");
    let mut full = vec![
        "--json",
        "encrypt",
        inp.as_str(),
        "--no-self",
        "-o",
        s(&out),
    ];
    full.extend(args);
    let o = e.ok(&full);
    serde_json::from_slice(&o.stdout).expect("encrypt --json")
}

#[test]
fn advertised_gcm_gives_gcm_under_both_policies() {
    let e = bob_knows_alice();
    for policy in ["compatible", "modern"] {
        let j = plan(&e, ALICE, &["--cipher-policy", policy]);
        assert_eq!(j["cipher"], "aes-256-gcm", "{policy}: {j}");
        assert_eq!(j["cipher_policy"], policy, "{j}");
        assert_eq!(j["decided_by"], json!(["alice@example.com"]), "{j}");
        assert_eq!(j["recipients"][0]["capabilities"], "aes-gcm", "{j}");
        assert_eq!(j["integrity"], true, "{j}");
        assert!(j["recommendation"].is_null(), "{j}");
    }
    // The policy's default is compatible.
    let j = plan(&e, ALICE, &[]);
    assert_eq!(j["cipher_policy"], "compatible", "{j}");
    // A certificate given with --cert that is a known contact brings its recorded capabilities.
    let j = plan(&e, ALICE, &["--cert", &fx("pki/alice.pem")]);
    assert_eq!(j["recipients"][0]["source"], "--cert", "{j}");
    assert_eq!(j["recipients"][0]["capabilities"], "aes-gcm", "{j}");
    assert_eq!(j["cipher"], "aes-256-gcm", "{j}");
}

#[test]
fn one_unknown_recipient_decides_under_the_policy() {
    let e = bob_knows_alice();
    e.ok(&["contact", "add", &fx("pki/eve.pem")]);
    let to = "Alice <alice@example.com>, eve@evil.example";
    // compatible: AES-256-CBC for everyone, decided by eve (unknown), with the advice to sign inside.
    let j = plan(&e, to, &[]);
    assert_eq!(j["cipher"], "aes-256-cbc", "{j}");
    assert_eq!(j["decided_by"], json!(["eve@evil.example"]), "{j}");
    assert_eq!(j["integrity"], false, "{j}");
    let advice = j["recommendation"].as_str().expect("advice for CBC");
    assert!(advice.contains("sign inside"), "{advice}");
    assert!(!advice.contains('\n'), "one line: {advice}");
    // ... but not when the message is signed inside (with bob's ID).
    let j = plan(&e, to, &["--sign"]);
    assert_eq!(j["cipher"], "aes-256-cbc", "{j}");
    assert_eq!(j["signed_inside"], true, "{j}");
    assert!(j["recommendation"].is_null(), "{j}");
    // modern: AES-256-GCM, decided by eve.
    let j = plan(&e, to, &["--cipher-policy", "modern"]);
    assert_eq!(j["cipher"], "aes-256-gcm", "{j}");
    assert_eq!(j["decided_by"], json!(["eve@evil.example"]), "{j}");
    // --cipher overrides the policy (and says so).
    let j = plan(
        &e,
        to,
        &["--cipher-policy", "compatible", "--cipher", "aes-128-gcm"],
    );
    assert_eq!(j["cipher"], "aes-128-gcm", "{j}");
    assert_eq!(j["cipher_forced"], true, "{j}");
    assert!(
        j["cipher_reason"]
            .as_str()
            .unwrap()
            .contains("chosen with --cipher"),
        "{j}"
    );
    let j = plan(
        &e,
        to,
        &["--cipher-policy", "modern", "--cipher", "aes-256-cbc"],
    );
    assert_eq!(j["cipher"], "aes-256-cbc", "{j}");
}

#[test]
fn text_report_names_cipher_policy_and_deciders() {
    let e = Env::new();
    e.import_np("p12/bob.p12");
    let inp = e.write("plain.eml", &message(BOB, ALICE, "", BODY));
    let out = e.path("enc.eml");
    let o = e.ok(&[
        "encrypt",
        &inp,
        "--cert",
        &fx("pki/alice.pem"),
        "-o",
        s(&out),
    ]);
    let report = text(&o.stdout);
    assert!(
        report.starts_with(
            "Encrypted with aes-256-cbc: the capabilities of alice@example.com are unknown"
        ),
        "{report}"
    );
    assert!(
        report.contains("Cipher policy: compatible; decided by alice@example.com; EnvelopedData (no integrity protection)"),
        "{report}"
    );
    let advice: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("Recommendation: "))
        .collect();
    assert_eq!(advice.len(), 1, "{report}");
    assert!(advice[0].contains("--sign"), "{report}");
    assert!(
        common::header(&std::fs::read(&out).unwrap(), "content-type")
            .unwrap()
            .contains("smime-type=enveloped-data")
    );
}

#[test]
fn ec_recipient_gets_a_client_note() {
    let e = Env::new();
    e.import_np("p12/bob.p12");
    let to = "carol@example.net, Alice <alice@example.com>";
    let args = [
        "--cert",
        &fx("pki/carol.pem"),
        "--cert",
        &fx("pki/alice.pem"),
    ];
    let j = plan(&e, to, &args);
    let notes = j["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "only carol is EC: {j}");
    let n = notes[0].as_str().unwrap();
    assert!(
        n.contains("carol@example.net") && n.contains("Thunderbird's NSS"),
        "{n}"
    );
    let carol = j["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "carol@example.net")
        .unwrap();
    assert_eq!(carol["key_type"], "EC", "{j}");
    // The text report carries it too.
    let inp = e.write("plain.eml", &message(BOB, to, "", BODY));
    let out = e.path("enc2.eml");
    let mut full = vec!["encrypt", inp.as_str(), "-o", s(&out)];
    full.extend(args);
    let o = e.ok(&full);
    assert!(
        text(&o.stdout).contains("Note: carol@example.net has an EC certificate"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn unknown_policy_is_a_usage_error() {
    let e = Env::new();
    e.import_np("p12/bob.p12");
    let inp = e.write("plain.eml", &message(BOB, ALICE, "", BODY));
    let o = e.run(&[
        "encrypt",
        &inp,
        "--cert",
        &fx("pki/alice.pem"),
        "--cipher-policy",
        "fastest",
    ]);
    assert_code(&o, 2, "unknown policy");
    assert!(
        text(&o.stderr).contains("compatible"),
        "{}",
        text(&o.stderr)
    );
}
