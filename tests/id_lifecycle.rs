//! The digital-ID lifecycle: pending keys (listed, deleted, backed up and restored), repairing an ID's chain
//! (`id add-chain`, the install-cert warning), `id passwd`, `id renew`, and `contact list --expiring`.

mod common;

use common::{Env, PASSPHRASE, fixture, text};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, PKeyRef, Public};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509NameRef, X509Req};

/// A certificate issued by the fixture intermediate for `key`, `subject` and `email`, valid `days` days.
fn issue(key: &PKeyRef<Public>, subject: &X509NameRef, email: &str, days: u32) -> X509 {
    let ica = X509::from_pem(&std::fs::read(fixture("pki/inter.pem")).unwrap()).unwrap();
    let ikey =
        PKey::private_key_from_pem(&std::fs::read(fixture("pki/inter.key")).unwrap()).unwrap();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial
        .rand(64, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(subject).unwrap();
    b.set_issuer_name(ica.subject_name()).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(days).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .key_agreement()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.append_extension(ExtendedKeyUsage::new().email_protection().build().unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .email(email)
        .build(&b.x509v3_context(Some(&ica), None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ikey, MessageDigest::sha256()).unwrap();
    b.build()
}

/// Issues the certificate a CSR file asks for (by the fixture intermediate) and writes it as PEM.
fn issue_for_csr(e: &Env, csr: &std::path::Path, email: &str, out: &str) -> String {
    let req = X509Req::from_pem(&std::fs::read(csr).unwrap()).unwrap();
    let c = issue(&req.public_key().unwrap(), req.subject_name(), email, 3650);
    e.write(out, &c.to_pem().unwrap())
}

fn list_json(e: &Env) -> serde_json::Value {
    serde_json::from_slice(&e.ok(&["--json", "id", "list"]).stdout).unwrap()
}

/// A pending key for `email` (EC, fast) with its CSR written to `csr`; returns the pending id.
fn pending(e: &Env, email: &str, csr: &str) -> String {
    let p = e.path(csr);
    e.ok(&[
        "id",
        "new",
        "--email",
        email,
        "--key",
        "ec-p256",
        "--csr",
        p.to_str().unwrap(),
        "--no-passphrase",
    ]);
    let j = list_json(e);
    j["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["email"] == email)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn pending_keys_are_listed_and_deletable() {
    let e = Env::new();
    let id = pending(&e, "pat@example.com", "pat.csr");
    let o = e.ok(&["id", "list"]);
    assert!(text(&o.stdout).contains("pat@example.com  pending: waiting for a certificate"));
    // Without --yes under --batch: refused, nothing deleted.
    let before = e.snapshot();
    let o = e.run(&["id", "delete", &id[..12]]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("needs confirmation"),
        "{}",
        text(&o.stderr)
    );
    assert!(e.snapshot() == before);
    // By key id, then (a second one) by address.
    let o = e.ok(&["id", "delete", &id[..12], "--yes"]);
    assert!(
        text(&o.stderr).contains("deleted pat@example.com (pending key"),
        "{}",
        text(&o.stderr)
    );
    assert!(list_json(&e)["pending"].as_array().unwrap().is_empty());
    pending(&e, "quin@example.com", "quin.csr");
    e.ok(&["id", "delete", "quin@example.com", "--yes"]);
    assert!(list_json(&e)["pending"].as_array().unwrap().is_empty());
    // Nothing by that name at all: the ID error, exit 2.
    let o = e.run(&["id", "delete", "nobody@example.com", "--yes"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn pending_keys_travel_in_backups_and_can_be_installed_after_a_restore() {
    let a = Env::new();
    let id = pending(&a, "pat@example.com", "pat.csr");
    let backup = a.path("backup.p12");
    let o = a.ok(&["id", "backup", "-o", backup.to_str().unwrap()]);
    assert!(
        text(&o.stdout).contains("Backed up 0 ID(s), 1 pending key(s)"),
        "{}",
        text(&o.stdout)
    );
    // Restored into a new home, the key is pending there and the issued certificate installs.
    let b = Env::new();
    let o = b.ok(&["id", "restore", backup.to_str().unwrap()]);
    assert!(
        text(&o.stdout).contains("1 pending key(s)"),
        "{}",
        text(&o.stdout)
    );
    let j = list_json(&b);
    assert_eq!(j["pending"][0]["id"], id.as_str());
    let issued = issue_for_csr(&a, &a.path("pat.csr"), "pat@example.com", "pat.pem");
    let o = b.ok(&[
        "id",
        "install-cert",
        &issued,
        "--chain",
        fixture("pki/inter.pem").to_str().unwrap(),
    ]);
    assert!(
        text(&o.stdout).contains("Installed the certificate"),
        "{}",
        text(&o.stdout)
    );
    let j = list_json(&b);
    assert!(j["pending"].as_array().unwrap().is_empty());
    assert_eq!(j["ids"].as_array().unwrap().len(), 1);
    // A second restore of the same backup adds nothing.
    let o = b.ok(&["id", "restore", backup.to_str().unwrap()]);
    assert!(
        text(&o.stdout).contains("0 pending key(s)"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn an_id_installed_without_its_chain_is_repaired_with_add_chain() {
    let e = Env::new();
    pending(&e, "pat@example.com", "pat.csr");
    let issued = issue_for_csr(&e, &e.path("pat.csr"), "pat@example.com", "pat.pem");
    // No chain, and the issuer (the fixture intermediate) is no trust anchor: a warning naming the remedy.
    let o = e.ok(&["id", "install-cert", &issued]);
    let err = text(&o.stderr);
    assert!(
        err.contains("is not a trust anchor and no chain was given")
            && err.contains("smimekit id add-chain"),
        "{err}"
    );
    // Importing a PKCS#12 of the same ID with its chain keeps the ID as it is and points to add-chain. (The
    // pending key was stored without a passphrase: the test reads it from the store to build the file.)
    let key_pem = std::fs::read_dir(e.home().join("ids"))
        .unwrap()
        .map(|d| std::fs::read(d.unwrap().path()).unwrap())
        .next()
        .unwrap();
    let key = PKey::private_key_from_pem(&key_pem).unwrap();
    let leaf = X509::from_pem(&std::fs::read(&issued).unwrap()).unwrap();
    let mut ca = openssl::stack::Stack::new().unwrap();
    ca.push(X509::from_pem(&std::fs::read(fixture("pki/inter.pem")).unwrap()).unwrap())
        .unwrap();
    let p12 = openssl::pkcs12::Pkcs12::builder()
        .name("pat")
        .pkey(&key)
        .cert(&leaf)
        .ca(ca)
        .build2(common::P12_PASSWORD)
        .unwrap();
    let p12 = e.write("pat.p12", &p12.to_der().unwrap());
    let before = e.snapshot();
    let o = e.ok(&["id", "import", &p12, "--no-passphrase"]);
    let err = text(&o.stderr);
    assert!(
        err.contains("already in the store with another chain") && err.contains("id add-chain"),
        "{err}"
    );
    assert!(e.snapshot() == before);
    // Installing it again says it is installed and points to add-chain.
    let o = e.run(&[
        "id",
        "install-cert",
        &issued,
        "--chain",
        fixture("pki/inter.pem").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("already installed"),
        "{}",
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("id add-chain"));
    // A chain that does not link is refused, and nothing changes.
    let before = e.snapshot();
    let o = e.run(&[
        "id",
        "add-chain",
        "pat@example.com",
        fixture("pki/untrusted-root.pem").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("does not link"),
        "{}",
        text(&o.stderr)
    );
    let o = e.run(&[
        "id",
        "add-chain",
        "pat@example.com",
        fixture("pki/bob.pem").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(e.snapshot() == before);
    // inter + root (in any order) links: stored leaf-upwards.
    let both = e.write(
        "both.pem",
        &[
            std::fs::read(fixture("pki/root.pem")).unwrap(),
            std::fs::read(fixture("pki/inter.pem")).unwrap(),
        ]
        .concat(),
    );
    let o = e.ok(&["id", "add-chain", "pat@example.com", &both]);
    assert!(
        text(&o.stdout).contains("Replaced the chain"),
        "{}",
        text(&o.stdout)
    );
    let j: serde_json::Value =
        serde_json::from_slice(&e.ok(&["--json", "id", "show", "pat@example.com"]).stdout).unwrap();
    let chain = j["chain"].to_string();
    assert!(
        chain.find("Intermediate").unwrap() < chain.find("Root").unwrap(),
        "{chain}"
    );
    // A chain with a certificate that links to nothing is refused whole.
    let extra = e.write(
        "extra.pem",
        &[
            std::fs::read(fixture("pki/inter.pem")).unwrap(),
            std::fs::read(fixture("pki/untrusted-root.pem")).unwrap(),
        ]
        .concat(),
    );
    let before = e.snapshot();
    let o = e.run(&["id", "add-chain", "pat@example.com", &extra]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("a certificate that does not link"),
        "{}",
        text(&o.stderr)
    );
    assert!(e.snapshot() == before);
}

#[test]
fn passwd_changes_the_passphrase_atomically() {
    let e = Env::new();
    e.ok(&[
        "id",
        "new",
        "--email",
        "pat@example.com",
        "--key",
        "ec-p256",
    ]);
    let msg = e.write(
        "m.eml",
        b"From: pat@example.com\r\nTo: x@example.org\r\nSubject: s\r\n\r\nhello\r\n",
    );
    // Without a source for the new passphrase under --batch: refused, nothing changed.
    let before = e.snapshot();
    let o = e.run(&["id", "passwd", "pat@example.com"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("SMIMEKIT_NEW_PASSPHRASE"),
        "{}",
        text(&o.stderr)
    );
    assert!(e.snapshot() == before);
    // A wrong current passphrase: refused before anything else, nothing changed.
    let o = e
        .cmd(&["id", "passwd", "pat@example.com"])
        .env("SMIMEKIT_PASSPHRASE", "wrong")
        .env("SMIMEKIT_NEW_PASSPHRASE", "new secret")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("wrong passphrase"),
        "{}",
        text(&o.stderr)
    );
    assert!(e.snapshot() == before);
    // The new one from a file.
    let nf = e.write("new.txt", b"new secret\n");
    let o = e.ok(&[
        "id",
        "passwd",
        "pat@example.com",
        "--new-passphrase-file",
        &nf,
    ]);
    assert!(text(&o.stderr).contains("changed the passphrase"));
    assert!(e.snapshot() != before);
    // The old passphrase no longer opens the key; the new one does.
    let o = e.run(&["sign", &msg, "-o", e.path("s1.eml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("wrong passphrase"));
    let o = e
        .cmd(&["sign", &msg, "-o", e.path("s2.eml").to_str().unwrap()])
        .env("SMIMEKIT_PASSPHRASE", "new secret")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_ne!(PASSPHRASE, "new secret");
}

#[test]
fn renew_makes_a_paired_pending_key_and_keeps_the_old_id() {
    let e = Env::new();
    e.ok(&[
        "id",
        "new",
        "--email",
        "pat@example.com",
        "--name",
        "Pat Doe",
        "--key",
        "ec-p256",
    ]);
    let old = list_json(&e)["ids"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let csr = e.path("renew.csr");
    let o = e.ok(&[
        "id",
        "renew",
        "pat@example.com",
        "--csr",
        csr.to_str().unwrap(),
    ]);
    assert!(
        text(&o.stdout).contains("renewing pat@example.com"),
        "{}",
        text(&o.stdout)
    );
    // Same subject and address, a new key.
    let req = X509Req::from_pem(&std::fs::read(&csr).unwrap()).unwrap();
    let subj: Vec<String> = req
        .subject_name()
        .entries()
        .map(|x| x.data().to_string().unwrap())
        .collect();
    assert!(
        subj.contains(&"Pat Doe".to_string()) && subj.contains(&"pat@example.com".to_string()),
        "{subj:?}"
    );
    // Listed as a pair.
    let j = list_json(&e);
    assert_eq!(j["pending"][0]["renews"], old.as_str());
    assert_eq!(j["pending"][0]["email"], "pat@example.com");
    let o = e.ok(&["id", "list"]);
    let t = text(&o.stdout);
    assert!(
        t.contains("renewal pending (key") && t.contains(&format!("renews {}", &old[..16])),
        "{t}"
    );
    // The old ID still signs until the new certificate is installed.
    let msg = e.write(
        "m.eml",
        b"From: pat@example.com\r\nTo: x@example.org\r\nSubject: s\r\n\r\nhello\r\n",
    );
    e.ok(&["sign", &msg, "-o", e.path("s.eml").to_str().unwrap()]);
    let issued = issue_for_csr(&e, &csr, "pat@example.com", "new.pem");
    e.ok(&[
        "id",
        "install-cert",
        &issued,
        "--chain",
        fixture("pki/inter.pem").to_str().unwrap(),
    ]);
    let j = list_json(&e);
    assert!(j["pending"].as_array().unwrap().is_empty());
    assert_eq!(j["ids"].as_array().unwrap().len(), 2);
}

#[test]
fn contact_list_expiring_shows_what_expires_soon() {
    let e = Env::new();
    // A certificate expiring in 10 days (generated now: its point is a validity relative to today).
    let key = PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let pubkey = PKey::public_key_from_der(&key.public_key_to_der().unwrap()).unwrap();
    let mut n = openssl::x509::X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", "Soon").unwrap();
    let soon = issue(&pubkey, &n.build(), "soon@example.com", 10);
    let f = e.write("soon.pem", &soon.to_pem().unwrap());
    e.ok(&["contact", "add", &f]);
    e.ok(&["contact", "add", fixture("pki/bob.pem").to_str().unwrap()]);
    let o = e.ok(&["contact", "list", "--expiring"]);
    let t = text(&o.stdout);
    assert!(
        t.contains("soon@example.com") && !t.contains("bob@example.org"),
        "{t}"
    );
    let o = e.ok(&["contact", "list", "--expiring", "5"]);
    assert!(text(&o.stdout).contains("No contact certificate expires within 5 days"));
    let j: serde_json::Value = serde_json::from_slice(
        &e.ok(&["--json", "contact", "list", "--expiring", "30"])
            .stdout,
    )
    .unwrap();
    let c = j["contacts"].as_array().unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["emails"][0], "soon@example.com");
    // Without the flag, both.
    let o = e.ok(&["contact", "list"]);
    assert!(text(&o.stdout).contains("bob@example.org"));
}

#[test]
fn a_backup_whose_pending_key_does_not_match_its_request_restores_nothing() {
    use smimekit::ossl::p12::{self, BuildEntry, Profile};
    let a = Env::new();
    pending(&a, "pat@example.com", "pat.csr");
    // The stored pending file with its key swapped for another one (the request no longer matches).
    let dir = a.home().join("pending");
    let file = std::fs::read(
        std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    let other = PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let text_file = String::from_utf8(file).unwrap();
    let start = text_file.find("-----BEGIN PRIVATE KEY-----").unwrap();
    let end = text_file.find("-----END PRIVATE KEY-----\n").unwrap()
        + "-----END PRIVATE KEY-----\n".len();
    let forged = format!(
        "{}{}{}",
        &text_file[..start],
        String::from_utf8(other.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        &text_file[end..]
    );
    let der = p12::build(
        &[BuildEntry::Secret {
            type_oid: smimekit::pkcs12::PENDING_KEY_OID,
            value: forged.as_bytes(),
        }],
        &smimekit::secret::Secret::from_string(common::P12_PASSWORD.into()),
        Profile::Modern,
    )
    .unwrap();
    let b = Env::new();
    b.import_np("p12/alice-modern.p12");
    let f = b.write("forged.p12", &der);
    let before = b.snapshot();
    let o = b.run(&["id", "restore", &f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("damaged pending key"),
        "{}",
        text(&o.stderr)
    );
    assert!(b.snapshot() == before);
}
