//! `smimekit inspect` (text and JSON: layers, algorithms, signers, recipients and which of our IDs/contacts
//! they are), `smimekit trust add/list/remove`, `verify --no-system-trust`, and `verify --at`.

mod common;

use common::*;
use serde_json::Value;

fn s(p: std::path::PathBuf) -> String {
    p.to_str().unwrap().to_string()
}

fn msg(name: &str) -> String {
    s(fixture(&format!("msg/{name}")))
}

/// `inspect` with no secret available at all (it must not need one).
fn inspect(env: &Env, file: &str, json: bool) -> (i32, String, String) {
    let mut c = env.cmd(&[]);
    if json {
        c.arg("--json");
    }
    c.arg("inspect").arg(file);
    c.env_remove("SMIMEKIT_PASSWORD")
        .env_remove("SMIMEKIT_PASSPHRASE");
    let o = c.stdin(std::process::Stdio::null()).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout),
        text(&o.stderr),
    )
}

fn inspect_json(env: &Env, file: &str) -> Value {
    let (code, out, err) = inspect(env, file, true);
    assert_eq!(code, 0, "{file}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{file}: {e}: {out}"))
}

#[test]
fn inspect_names_layers_algorithms_signers_and_our_ids() {
    let env = Env::new();
    env.import_np("p12/alice-modern.p12");
    env.ok(&["contact", "add", s(fixture("pki/bob.pem")).as_str()]);
    // Our own PSS/SHA-384 multipart/signed: the signer is "your ID alice".
    let signed = env.sign(
        &simple_message("alice@example.com", "inspect me\r\n"),
        &["--pss", "--digest", "sha384"],
    );
    let f = env.write("signed.eml", &signed);
    let j = inspect_json(&env, &f);
    let l = &j["layers"][0];
    assert_eq!(l["kind"], "signed");
    assert_eq!(l["mime"], "multipart/signed");
    let sg = &l["signers"][0];
    assert!(
        sg["digest_algorithm"].to_string().contains("sha384"),
        "{sg}"
    );
    assert!(
        sg["signature_algorithm"]
            .to_string()
            .to_lowercase()
            .contains("pss"),
        "{sg}"
    );
    assert!(
        sg["certificate"].to_string().contains("alice@example.com"),
        "{sg}"
    );
    assert!(
        sg["known_as"]
            .to_string()
            .contains("your ID alice@example.com"),
        "{sg}"
    );
    assert!(sg["signing_time"].is_string());
    let certs = l["certificates"].to_string();
    assert!(
        certs.contains("CN=Alice") && certs.contains("Intermediate") && !certs.contains("Root")
    );
    // The same in text.
    let (code, out, _) = inspect(&env, &f, false);
    assert_eq!(code, 0);
    for w in [
        "Layer 1: signed (multipart/signed)",
        "sha384",
        "CN=Alice <alice@example.com>",
        "[your ID alice@example.com",
        "carries certificate: CN=smimekit Test Intermediate CA",
    ] {
        assert!(out.contains(w), "'{w}' in\n{out}");
    }
    // Opaque.
    let signed = env.sign(
        &simple_message("alice@example.com", "opaque\r\n"),
        &["--opaque"],
    );
    let f = env.write("opaque.eml", &signed);
    let j = inspect_json(&env, &f);
    let l = &j["layers"][0];
    assert_eq!(l["kind"], "signed");
    assert_eq!(l["smime_type"], "signed-data");
    assert!(l["notes"].to_string().contains("opaque"), "{l}");
    // AuthEnvelopedData to bob (a contact here): cipher, recipient, which contact.
    let j = inspect_json(&env, &msg("enc/aes256gcm-bob.eml"));
    let l = &j["layers"][0];
    assert_eq!(l["kind"], "auth_enveloped");
    assert_eq!(l["content_cipher"], "aes-256-gcm");
    let r = &l["recipients"][0];
    assert_eq!(r["kind"], "ktri");
    assert!(
        r["id"].to_string().contains("Intermediate"),
        "issuer+serial: {r}"
    );
    assert!(
        r["known_as"]
            .to_string()
            .contains("contact bob@example.org"),
        "{r}"
    );
    // CBC EnvelopedData: no integrity; ECDH to carol (unknown here): kari, not matched.
    let j = inspect_json(&env, &msg("enc/aes256cbc-bob.eml"));
    assert_eq!(j["layers"][0]["kind"], "enveloped");
    assert!(j["layers"][0]["notes"].to_string().contains("no integrity"));
    let j = inspect_json(&env, &msg("enc/ecdh-carol.eml"));
    let r = &j["layers"][0]["recipients"][0];
    assert_eq!(r["kind"], "kari");
    assert!(r["known_as"].is_null(), "{r}");
    // T08: the type comes from the CMS content type, not the smime-type label.
    let j = inspect_json(&env, &msg("enc/cbc-labelled-authenveloped.eml"));
    assert_eq!(j["layers"][0]["kind"], "enveloped");
    assert!(j["layers"][0]["notes"].to_string().contains("mislabelled"));
    // Certs-only, and a signature nested below the top level (T26).
    let j = inspect_json(&env, &msg("c3-no-signers.eml"));
    assert_eq!(j["layers"][0]["kind"], "certs_only");
    let (code, out, _) = inspect(&env, &msg("m1-prepend-text.eml"), false);
    assert_eq!(code, 0);
    assert!(
        out.contains("Not at the top level: part 2") && out.contains("covers only that part"),
        "{out}"
    );
    assert!(!out.contains("Layer 1"), "{out}");
    // Two signers are both listed; our recipient ID is named as "your ID".
    let j = inspect_json(&env, &msg("valid-two-signers.eml"));
    assert_eq!(j["layers"][0]["signers"].as_array().unwrap().len(), 2);
    let bob = Env::new();
    bob.import_np("p12/bob.p12");
    let (code, out, _) = inspect(&bob, &msg("enc/sign-then-encrypt.eml"), false);
    assert_eq!(code, 0);
    assert!(out.contains("[your ID bob@example.org"), "{out}");
    // Not S/MIME at all: an error.
    let (code, _, err) = inspect(&env, &msg("u1-fake-verified-banner.eml"), false);
    assert_eq!(code, 2);
    assert!(err.contains("no S/MIME"), "{err}");
}

#[test]
fn inspect_names_the_real_signer_of_a_key_id_collision() {
    // T17: mallory's certificate carries alice's key identifier and is listed first.
    let env = Env::new();
    env.ok(&["contact", "add", s(fixture("pki/alice.pem")).as_str()]);
    let j = inspect_json(&env, &msg("ski-collision-mallory-first.eml"));
    let sg = &j["layers"][0]["signers"][0];
    assert!(
        sg["certificate"].to_string().contains("alice@example.com"),
        "{sg}"
    );
    assert!(!sg["certificate"].to_string().contains("Mallory"), "{sg}");
    assert!(sg["known_as"].to_string().contains("contact alice"), "{sg}");
}

// ------------------------------------------------------------------------------------------------------
// Trust anchors.

fn trust_list(env: &Env) -> Vec<Value> {
    let o = env.ok(&["--json", "trust", "list"]);
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

fn verify_code(env: &Env, file: &str, extra: &[&str]) -> i32 {
    let mut a = vec!["verify", file, "--no-harvest"];
    a.extend(extra);
    env.run(&a).status.code().unwrap_or(-1)
}

#[test]
fn trust_add_list_remove_and_no_system_trust() {
    let env = Env::new();
    env.init_home();
    let valid = msg("valid-rsa-alice.eml");
    let root_fp = fingerprint_of("pki/root.pem");
    assert!(trust_list(&env).is_empty());
    // Without any anchor the fixture PKI is untrusted (exit 1, trust check named).
    let o = env.run(&[
        "--json",
        "verify",
        &valid,
        "--no-system-trust",
        "--no-harvest",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["signers"][0]["trust"]["trusted"], false);
    assert_eq!(j["signers"][0]["integrity"]["ok"], true);
    // trust add: listed (text and JSON), and verification succeeds with --no-system-trust.
    let o = env.ok(&["trust", "add", s(fixture("pki/root.pem")).as_str()]);
    let said = text(&o.stdout) + &text(&o.stderr);
    assert!(said.contains(&root_fp), "{said}");
    let l = trust_list(&env);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["fingerprint"], root_fp.as_str());
    assert_eq!(l[0]["subject"], "CN=smimekit Test Root CA");
    let o = env.ok(&["trust", "list"]);
    assert!(text(&o.stdout).contains(&root_fp), "{}", text(&o.stdout));
    assert_eq!(verify_code(&env, &valid, &["--no-system-trust"]), 0);
    // Adding it again changes nothing.
    env.ok(&["trust", "add", s(fixture("pki/root.pem")).as_str()]);
    assert_eq!(trust_list(&env).len(), 1);
    // An anchor is only an anchor: the untrusted-root chain stays untrusted; adding its root trusts it.
    assert_eq!(
        verify_code(&env, &msg("untrusted-mallet.eml"), &["--no-system-trust"]),
        1
    );
    env.ok(&[
        "trust",
        "add",
        s(fixture("pki/untrusted-root.pem")).as_str(),
    ]);
    assert_eq!(trust_list(&env).len(), 2);
    assert_eq!(
        verify_code(&env, &msg("untrusted-mallet.eml"), &["--no-system-trust"]),
        0
    );
    // trust remove by fingerprint.
    env.ok(&["trust", "remove", &root_fp]);
    let l = trust_list(&env);
    assert_eq!(l.len(), 1);
    assert_ne!(l[0]["fingerprint"], root_fp.as_str());
    assert_eq!(verify_code(&env, &valid, &["--no-system-trust"]), 1);
    // Removing an unknown anchor is an error.
    let o = env.run(&["trust", "remove", &root_fp]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

#[test]
fn system_trust_is_used_unless_no_system_trust() {
    // The "system store" here is SSL_CERT_FILE pointing at the fixture root.
    let env = Env::new();
    let valid = msg("valid-rsa-alice.eml");
    let run = |extra: &[&str]| {
        let mut a = vec!["verify", valid.as_str(), "--no-harvest"];
        a.extend(extra);
        let mut c = env.cmd(&a);
        c.env("SSL_CERT_FILE", fixture("pki/root.pem"))
            .env("SSL_CERT_DIR", env.path("no-such-dir"));
        c.stdin(std::process::Stdio::null())
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(
        run(&[]),
        Some(0),
        "the system store trusts the fixture root"
    );
    assert_eq!(
        run(&["--no-system-trust"]),
        Some(1),
        "--no-system-trust ignores it"
    );
    assert_eq!(
        run(&[
            "--no-system-trust",
            "--ca",
            s(fixture("pki/root.pem")).as_str()
        ]),
        Some(0),
        "--ca adds an anchor for this run"
    );
}

// ------------------------------------------------------------------------------------------------------
// --at

#[test]
fn verify_at_validates_at_that_time() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    let ca = fixture_trust();
    let code = |file: &str, extra: &[&str]| {
        let mut a: Vec<&str> = vec!["--json", "verify", file];
        a.extend(ca.iter().map(|s| s.as_str()));
        a.extend(extra);
        let o = env.run(&a);
        let j: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        (o.status.code().unwrap_or(-1), j)
    };
    // A not-yet-valid signer (2090..2190) is valid at 2095, and the report says when it validated.
    let heidi = msg("notyet-heidi.eml");
    assert_eq!(code(&heidi, &[]).0, 1);
    let (c, j) = code(&heidi, &["--at", "2095-01-01"]);
    assert_eq!(c, 0, "{j}");
    assert!(
        j["signers"][0]["validity"]["at"]
            .to_string()
            .contains("2095-01-01")
    );
    // A valid signer is expired after its notAfter (alice: 2125-12-31).
    let alice = msg("valid-rsa-alice.eml");
    let (c, j) = code(&alice, &["--at", "2130-01-01T00:00:00Z"]);
    assert_eq!(c, 1);
    assert!(
        j["signers"][0]["reasons"].to_string().contains("expired"),
        "{j}"
    );
    // Nonsense time: a usage error.
    assert_eq!(code(&alice, &["--at", "yesterday-ish"]).0, 2);

    // An expired signer (made here: alice's key, certified by the fixture intermediate until two minutes
    // ago) is invalid now and valid at a time inside its validity.
    let inter =
        openssl::x509::X509::from_pem(&std::fs::read(fixture("pki/inter.pem")).unwrap()).unwrap();
    let epoch = openssl::asn1::Asn1Time::from_unix(0).unwrap();
    let d = epoch.diff(inter.not_before()).unwrap();
    let inter_nb = d.days as i64 * 86400 + d.secs as i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let not_after = now - 120;
    if not_after - inter_nb < 120 {
        eprintln!("skipping the expired-signer part: the fixture CA is younger than 4 minutes");
        return;
    }
    let fmt = |t: i64| {
        let dt = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
        format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            dt.year() % 100,
            dt.month() as u8,
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )
    };
    let dir = env.path("ca");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    let d = dir.to_str().unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        format!(
            "[ca]\ndefault_ca = CA_default\n[CA_default]\ndatabase = {d}/index.txt\nnew_certs_dir = {d}\nserial = {d}/serial\ndefault_md = sha256\npolicy = pol\nunique_subject = no\nemail_in_dn = no\n[pol]\ncommonName = supplied\n[ext]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,nonRepudiation,keyEncipherment\nextendedKeyUsage = emailProtection\nsubjectAltName = email:alice@example.com\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
        ),
    )
    .unwrap();
    let csr = format!("{d}/r.csr");
    let crt = format!("{d}/expired.pem");
    let (rc, _, err) = external(
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            s(fixture("pki/alice.key")).as_str(),
            "-subj",
            "/CN=Alice",
            "-out",
            &csr,
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    let (rc, _, err) = external(
        "openssl",
        &[
            "ca",
            "-batch",
            "-config",
            &format!("{d}/ca.cnf"),
            "-cert",
            s(fixture("pki/inter.pem")).as_str(),
            "-keyfile",
            s(fixture("pki/inter.key")).as_str(),
            "-in",
            &csr,
            "-out",
            &crt,
            "-startdate",
            &fmt(inter_nb - 86400),
            "-enddate",
            &fmt(not_after),
            "-extensions",
            "ext",
            "-notext",
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    let entity = format!("{d}/entity");
    std::fs::write(
        &entity,
        b"Content-Type: text/plain\r\n\r\nSigned while the certificate was valid.\r\n",
    )
    .unwrap();
    let (rc, signed, err) = external(
        "openssl",
        &[
            "cms",
            "-sign",
            "-binary",
            "-md",
            "sha256",
            "-signer",
            &crt,
            "-inkey",
            s(fixture("pki/alice.key")).as_str(),
            "-certfile",
            s(fixture("pki/inter.pem")).as_str(),
            "-from",
            "alice@example.com",
            "-subject",
            "expired signer",
            "-in",
            &entity,
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    let f = env.write("expired-signer.eml", &signed);
    let (c, j) = code(&f, &[]);
    assert_eq!(c, 1, "expired now: {j}");
    assert_eq!(j["signers"][0]["validity"]["ok"], false);
    assert!(
        j["signers"][0]["reasons"].to_string().contains("expired"),
        "{j}"
    );
    let mid = (inter_nb + not_after) / 2;
    let at = time::OffsetDateTime::from_unix_timestamp(mid)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (c, j) = code(&f, &["--at", &at]);
    assert_eq!(c, 0, "valid at {at}: {j}");
    assert_eq!(j["signers"][0]["validity"]["ok"], true);
}
