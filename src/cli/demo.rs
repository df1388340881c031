//! `smimekit demo`: the whole story on a fresh machine, in throw-away homes — two self-signed IDs, a signed
//! message that introduces Bob to Alice, a signed and sealed reply, decrypted and verified.

use anyhow::Result;
use smimekit::contacts::{ContactStore, SelectOptions};
use smimekit::home::Home;
use smimekit::ids::{self, IdStore, KeySpec};
use smimekit::ossl::signed::Digest;
use smimekit::smime::{decrypt, encrypt, harvest, sign, verify};
use smimekit::trust::TrustStore;

use super::Global;
use super::output;

/// Prints a line of the demo; under `--json` the lines are gathered into the one document instead.
fn say(text: &str) -> Result<()> {
    if output::is_json() {
        TRANSCRIPT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(text);
        Ok(())
    } else {
        output::print(text)
    }
}

static TRANSCRIPT: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// A step's title and the commands a person would type to do it with their own home.
fn step(n: u32, text: &str, commands: &[&str]) -> Result<()> {
    let mut s = format!("\n== Step {n}: {text}\n");
    for c in commands {
        s += &format!("   $ {c}\n");
    }
    say(&s)
}

fn show_message(label: &str, m: &[u8]) -> Result<()> {
    let text = String::from_utf8_lossy(m);
    let mut s = format!("--- {label} ({} bytes) ---\n", m.len());
    for line in text.lines().take(14) {
        s += &format!("  | {}\n", output::clean(line));
    }
    if text.lines().count() > 14 {
        s += "  | …\n";
    }
    say(&s)
}

/// Runs the demo.
pub fn run(_g: &Global) -> Result<i32> {
    let dir = tempfile::Builder::new()
        .prefix("smimekit-demo-")
        .tempdir()?;
    let alice_home = Home::open(&dir.path().join("alice"))?;
    let bob_home = Home::open(&dir.path().join("bob"))?;
    say(&format!(
        "smimekit demo — two people, two homes under {}\n",
        dir.path().display()
    ))?;

    step(
        1,
        "Alice and Bob each create a self-signed test ID",
        &[
            "smimekit id new --email alice@example.com --name Alice --key ec-p256",
            "smimekit id export alice@example.com --cert-only -o alice.pem   # give it to Bob",
            "smimekit trust add bob.pem   # a self-signed certificate is trusted explicitly",
        ],
    )?;
    let mut made = Vec::new();
    for (home, email, name, spec) in [
        (&alice_home, "alice@example.com", "Alice", KeySpec::EcP256),
        (&bob_home, "bob@example.org", "Bob", KeySpec::Rsa3072),
    ] {
        let key = ids::generate_key(spec)?;
        let cert = ids::self_signed(&key, email, Some(name), 365)?;
        let _lock = home.lock()?;
        IdStore::new(home).add(&key, &cert, &[], None)?;
        let id = IdStore::new(home).find(email)?;
        let info = id.info(smimekit::cert::now());
        say(&format!(
            "  {name}: {} — {} — fingerprint {}\n",
            email,
            info.key,
            &id.fingerprint[..16]
        ))?;
        made.push(id);
    }
    let (alice, bob) = (made[0].clone(), made[1].clone());
    say(
        "  (Self-signed IDs are for testing: each side trusts the other's certificate explicitly below.)\n",
    )?;
    {
        let _l = alice_home.lock()?;
        TrustStore::new(&alice_home).add(&bob.cert)?;
    }
    {
        let _l = bob_home.lock()?;
        TrustStore::new(&bob_home).add(&alice.cert)?;
    }

    step(
        2,
        "Bob signs a message to Alice (multipart/signed)",
        &["smimekit sign hello.eml -o signed.eml"],
    )?;
    let hello = b"From: Bob <bob@example.org>\r\nTo: Alice <alice@example.com>\r\nSubject: Hello\r\nDate: Wed, 25 Nov 2026 09:00:00 +0000\r\nMessage-ID: <demo-1@example.org>\r\n\r\nHi Alice, this is my certificate. Caf\xc3\xa9?\r\n";
    let mut signed = Vec::new();
    let bob_key = bob.unlock(None)?;
    sign::sign_message(
        &bob_home,
        hello,
        &bob,
        &bob_key,
        &sign::SignOptions {
            digest: Digest::Sha256,
            ..Default::default()
        },
        &mut signed,
    )?;
    show_message("signed by Bob", &signed)?;

    step(
        3,
        "Alice verifies it; Bob's certificate goes into her contacts",
        &[
            "smimekit verify signed.eml",
            "smimekit contact show bob@example.org",
        ],
    )?;
    let opts = verify::VerifyOptions {
        anchors: TrustStore::new(&alice_home).certs()?,
        system_trust: false,
        at: None,
        known_certs: Vec::new(),
        no_address_check: false,
        // The demo's IDs are self-signed anchors: there is nothing to revoke and nothing to fetch.
        revocation: Default::default(),
        cache: None,
    };
    let v = verify::verify(&signed, &opts)?;
    say(&verify::render(&v.report))?;
    let lock = alice_home.lock()?;
    let h = harvest::harvest(&alice_home, &lock, &v, None)?;
    drop(lock);
    say(&format!(
        "  harvested {} certificate(s) into Alice's contacts\n",
        h.added.len()
    ))?;
    let sel = ContactStore::new(&alice_home).select_for_encryption(
        "bob@example.org",
        &SelectOptions {
            anchors: &TrustStore::new(&alice_home).certs()?,
            system: false,
            now: smimekit::cert::now(),
        },
    )?;
    say(&format!(
        "  certificate Alice will encrypt to for bob@example.org: {}\n",
        sel.reason
    ))?;

    step(
        4,
        "Alice signs and seals her reply to Bob (and herself)",
        &["smimekit encrypt --sign reply.eml -o sealed.eml"],
    )?;
    let reply = b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: Re: Hello\r\nDate: Wed, 25 Nov 2026 09:05:00 +0000\r\nMessage-ID: <demo-2@example.com>\r\n\r\nHi Bob, only you (and I) can read this.\r\n";
    let plan = encrypt::plan(
        &alice_home,
        reply,
        &encrypt::EncryptOptions {
            anchors: TrustStore::new(&alice_home).certs()?,
            ..Default::default()
        },
    )?;
    say(&format!(
        "  cipher: {} — {}\n",
        plan.cipher.name(),
        plan.cipher_reason
    ))?;
    for r in &plan.recipients {
        say(&format!("  recipient: {} ({})\n", r.address, r.source))?;
    }
    let alice_key = alice.unlock(None)?;
    let mut signed_reply = Vec::new();
    sign::sign_message(
        &alice_home,
        reply,
        &alice,
        &alice_key,
        &sign::SignOptions::default(),
        &mut signed_reply,
    )?;
    let mut sealed = Vec::new();
    encrypt::encrypt_message(&plan, &signed_reply, &mut sealed)?;
    show_message("sealed by Alice", &sealed)?;

    step(
        5,
        "Bob decrypts it and verifies Alice's signature",
        &["smimekit decrypt sealed.eml -o reply-read.eml"],
    )?;
    let enc = decrypt::parse(&sealed, false)?;
    let id = enc.choose_id(&bob_home, None)?;
    let mut plain = Vec::new();
    let rep = enc.decrypt_to(&id, &bob_key, false, &mut plain)?;
    say(&format!(
        "  decrypted with {} ({}, integrity: {})\n",
        rep.decrypted_with, rep.content_cipher, rep.integrity
    ))?;
    let opts = verify::VerifyOptions {
        anchors: TrustStore::new(&bob_home).certs()?,
        system_trust: false,
        at: None,
        known_certs: Vec::new(),
        no_address_check: false,
        // The demo's IDs are self-signed anchors: there is nothing to revoke and nothing to fetch.
        revocation: Default::default(),
        cache: None,
    };
    let v = verify::verify(&plain, &opts)?;
    say(&verify::render(&v.report))?;
    show_message("what Bob reads", &v.message()?)?;

    let ok = v.report.is_valid();
    say(&format!(
        "\nDemo {}: signed, sealed, delivered, opened and verified. Try 'smimekit --help' next.\n",
        if ok { "complete" } else { "FAILED" }
    ))?;
    if output::is_json() {
        let transcript = std::mem::take(&mut *TRANSCRIPT.lock().unwrap_or_else(|e| e.into_inner()));
        output::json(&serde_json::json!({"complete": ok, "transcript": transcript}))?;
    }
    Ok(if ok { 0 } else { 1 })
}
