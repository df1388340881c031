//! Digital IDs: import, list/show, export, backup/restore, delete, new/CSR, and crash safety — against the
//! openssl CLI and gpgsm.

mod common;

use common::*;

/// `openssl pkcs12 -info -noout` on a file made by us: asserts openssl reads it and returns what it printed.
fn openssl_p12_info(p: &std::path::Path) -> String {
    let pass = format!("pass:{P12_PASSWORD}");
    let (rc, _, err) = external(
        "openssl",
        &[
            "pkcs12",
            "-info",
            "-noout",
            "-in",
            p.to_str().unwrap(),
            "-passin",
            &pass,
        ],
        None,
    );
    assert_eq!(rc, 0, "openssl pkcs12 -info {}: {err}", p.display());
    err
}

fn fp_of(env: &Env, query: &str) -> String {
    let o = env.ok(&["id", "show", query, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["fingerprint"].as_str().unwrap().to_string()
}

/// `id export alice@example.com -o <env>/NAME EXTRA…`, which must succeed; returns the written path.
fn export_alice(env: &Env, name: &str, extra: &[&str]) -> std::path::PathBuf {
    let out = env.path(name);
    let mut args = vec!["id", "export", "alice@example.com", "-o", s(&out)];
    args.extend_from_slice(extra);
    env.ok(&args);
    out
}

/// DER of the fixture certificate of alice@example.com.
fn alice_cert_der() -> Vec<u8> {
    openssl::x509::X509::from_pem(&std::fs::read(fixture("pki/alice.pem")).unwrap())
        .unwrap()
        .to_der()
        .unwrap()
}

#[test]
fn imports_openssl_default_and_legacy_p12() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    let o = env.ok(&[
        "id",
        "import",
        fixture("p12/alice-modern.p12").to_str().unwrap(),
    ]);
    let out = text(&o.stdout);
    assert!(out.contains("imported"), "{out}");
    assert!(
        out.to_lowercase().contains("aes-256"),
        "the format is named: {out}"
    );
    let env2 = Env::new();
    let o = env2.ok(&[
        "id",
        "import",
        fixture("p12/alice-legacy.p12").to_str().unwrap(),
    ]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(out.contains("RC2"), "legacy format named: {out}");
    assert_eq!(
        fp_of(&env, "alice@example.com"),
        fp_of(&env2, "alice@example.com")
    );
    // Stored re-encrypted: PBES2 PKCS#8 at 600,000 iterations.
    let ids: Vec<_> = std::fs::read_dir(env2.home().join("ids"))
        .unwrap()
        .flatten()
        .collect();
    let pem = std::fs::read_to_string(ids[0].path()).unwrap();
    assert!(pem.contains("BEGIN ENCRYPTED PRIVATE KEY"));
    let key: String = pem
        .split("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        .nth(1)
        .unwrap()
        .split("-----END")
        .next()
        .unwrap()
        .into();
    let key =
        format!("-----BEGIN ENCRYPTED PRIVATE KEY-----{key}-----END ENCRYPTED PRIVATE KEY-----\n");
    let (rc, asn1, _) = external("openssl", &["asn1parse"], Some(key.as_bytes()));
    assert_eq!(rc, 0);
    let asn1 = text(&asn1);
    assert!(
        asn1.contains("PBES2") && asn1.contains("aes-256-cbc") && asn1.contains("hmacWithSHA256"),
        "{asn1}"
    );
    assert!(
        asn1.contains("INTEGER           :0927C0"),
        "600000 iterations: {asn1}"
    );
}

#[test]
fn imports_pem_wrapped_base64_keyfirst_and_extra_ca() {
    for f in [
        "p12/alice-modern.p12.b64",
        "p12/alice-modern.p12.pem",
        "p12/alice-keyfirst.p12",
        "p12/alice-extra-ca.p12",
        "p12/carol-legacy.p12",
    ] {
        let env = Env::new();
        env.ok(&["id", "import", fixture(f).to_str().unwrap()]);
        let o = env.ok(&["id", "list", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["ids"].as_array().unwrap().len(), 1, "{f}");
    }
}

#[test]
fn importing_twice_is_harmless() {
    let env = Env::new();
    env.import("p12/alice-modern.p12");
    let before = env.snapshot();
    let o = env.ok(&[
        "id",
        "import",
        fixture("p12/alice-modern.p12").to_str().unwrap(),
    ]);
    assert!(text(&o.stdout).contains("already"), "{}", text(&o.stdout));
    assert_eq!(before, env.snapshot());
}

#[test]
fn show_reports_every_field() {
    let env = Env::new();
    env.import("p12/alice-modern.p12");
    let o = env.ok(&["id", "show", "ALICE@example.com", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["emails"][0], "alice@example.com");
    assert_eq!(v["key"], "RSA 2048");
    assert_eq!(v["can_sign"], true);
    assert_eq!(v["can_encrypt"], true);
    assert!(
        v["extended_key_usage"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "emailProtection")
    );
    assert!(
        v["key_usage"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "digitalSignature")
    );
    assert_eq!(v["fingerprint"].as_str().unwrap().len(), 64);
    for k in [
        "subject",
        "issuer",
        "serial",
        "not_before",
        "not_after",
        "expires_soon",
        "status",
    ] {
        assert!(!v[k].is_null(), "{k} missing");
    }
    let fp = v["fingerprint"].as_str().unwrap();
    let o = env.ok(&["id", "show", &fp[..12]]);
    assert!(text(&o.stdout).contains("alice@example.com"));
}

#[test]
fn list_flags_expired_ids() {
    let env = Env::new();
    env.import("p12/grace-expired.p12");
    let o = env.ok(&["id", "list"]);
    assert!(text(&o.stdout).contains("EXPIRED"), "{}", text(&o.stdout));
    let o = env.ok(&["id", "show", "grace@example.com", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["expired"], true);
}

#[test]
fn modern_export_is_read_by_openssl() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    env.import("p12/alice-modern.p12");
    let out = export_alice(&env, "out.p12", &[]);
    let err = openssl_p12_info(&out);
    assert!(
        err.contains("PBES2, PBKDF2, AES-256-CBC, Iteration 600000, PRF hmacWithSHA256"),
        "{err}"
    );
    assert!(err.contains("MAC: sha256"), "{err}");
    // The key inside is the same key: openssl extracts it and it matches the certificate.
    let pass = format!("pass:{P12_PASSWORD}");
    let (rc, pem, _) = external(
        "openssl",
        &[
            "pkcs12",
            "-in",
            out.to_str().unwrap(),
            "-passin",
            &pass,
            "-nodes",
        ],
        None,
    );
    assert_eq!(rc, 0);
    let key = openssl::pkey::PKey::private_key_from_pem(&pem).expect("a private key in the export");
    let cert = openssl::x509::X509::from_pem(&pem).expect("a certificate in the export");
    assert!(
        cert.public_key().unwrap().public_eq(&key),
        "the exported key does not belong to the certificate"
    );
    assert_eq!(cert.to_der().unwrap(), alice_cert_der());
}

#[test]
fn legacy_export_is_imported_by_gpgsm() {
    if !common::have(&["gpgsm", "gpgconf"]) {
        return;
    }
    let env = Env::new();
    env.import("p12/alice-modern.p12");
    let out = export_alice(&env, "legacy.p12", &["--profile", "legacy"]);
    let gpg = Gpg::new();
    let (rc, _, err) = gpg.gpgsm(&["--import", out.to_str().unwrap()], Some(P12_PASSWORD));
    assert_eq!(rc, 0, "gpgsm --import failed: {err}");
    let (rc, listing, _) = gpg.gpgsm(&["--list-secret-keys"], None);
    assert_eq!(rc, 0);
    assert!(
        text(&listing).contains("alice@example.com"),
        "{}",
        text(&listing)
    );
}

#[test]
fn cert_only_export_is_pem() {
    let env = Env::new();
    env.import("p12/alice-modern.p12");
    let out = export_alice(&env, "alice.pem", &["--cert-only"]);
    let pem = std::fs::read_to_string(&out).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----") && !pem.contains("PRIVATE KEY"));
    // Alice's own certificate comes first.
    let first = openssl::x509::X509::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(first.to_der().unwrap(), alice_cert_der());
}

#[test]
fn backup_restores_on_another_home_with_usable_keys() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    env.import("p12/alice-modern.p12");
    env.import("p12/carol-legacy.p12");
    env.ok(&["trust", "add", fixture("pki/root.pem").to_str().unwrap()]);
    let backup = env.path("backup.p12");
    env.ok(&["id", "backup", "-o", backup.to_str().unwrap()]);
    // A standard PKCS#12: openssl reads it.
    openssl_p12_info(&backup);
    let other = Env::new();
    // Trust anchors and IDs are added only when confirmed (--batch never asks).
    other.ok(&["id", "restore", backup.to_str().unwrap(), "--yes"]);
    for who in ["alice@example.com", "carol@example.net"] {
        assert_eq!(fp_of(&env, who), fp_of(&other, who));
    }
    let o = other.ok(&["trust", "list", "--json"]);
    assert!(text(&o.stdout).contains("smimekit Test Root CA"));
    // The restored key opens with the new passphrase: export works and openssl reads the result.
    let exported = export_alice(&other, "x.p12", &[]);
    assert!(openssl_p12_info(&exported).contains("MAC: sha256"));
    // Restoring again merges: nothing changes.
    let before = other.snapshot();
    other.ok(&["id", "restore", backup.to_str().unwrap()]);
    assert_eq!(before, other.snapshot());
}

fn assert_error_unchanged(env: &Env, args: &[&str], needle: &str) {
    let before = env.snapshot();
    let o = env.run(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: expected '{needle}' in: {err}"
    );
    assert!(o.stdout.is_empty());
    assert_eq!(before, env.snapshot(), "{args:?} changed the store");
}

#[test]
fn backup_of_an_empty_home_is_refused() {
    let env = Env::new();
    env.init_home();
    let backup = env.path("backup.p12");
    assert_error_unchanged(
        &env,
        &["id", "backup", "-o", backup.to_str().unwrap()],
        "nothing to back up",
    );
    assert!(!backup.exists(), "no backup file is written");
}

#[test]
fn bad_inputs_are_clear_errors_and_change_nothing() {
    let env = Env::new();
    env.import("p12/bob.p12");
    let mut c = env.cmd(&["id", "import", &fx("p12/alice-modern.p12")]);
    c.env("SMIMEKIT_PASSWORD", "wrong");
    let before = env.snapshot();
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("wrong password"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(before, env.snapshot());
    assert_error_unchanged(&env, &["id", "import", &fx("p12/truncated.p12")], "PKCS#12");
    assert_error_unchanged(&env, &["id", "import", &fx("p12/random.bin")], "PKCS#12");
    assert_error_unchanged(
        &env,
        &["id", "import", &fx("p12/nokey.p12")],
        "no private key",
    );
    assert_error_unchanged(
        &env,
        &["id", "import", &fx("p12/mismatch.p12")],
        "do not match",
    );
    assert_error_unchanged(
        &env,
        &["id", "import", &fx("p12/nomac.p12")],
        "--allow-unauthenticated",
    );
    assert_error_unchanged(
        &env,
        &["id", "import", env.path("missing.p12").to_str().unwrap()],
        "missing.p12",
    );
    assert_error_unchanged(&env, &["id", "show", "nobody@example.com"], "no digital ID");
    assert_error_unchanged(
        &env,
        &["id", "export", "nobody@example.com", "-o", "/tmp/x.p12"],
        "no digital ID",
    );
}

#[test]
fn hostile_iteration_counts_are_refused_fast() {
    let env = Env::new();
    for f in ["p12/huge-mac-iter.p12", "p12/huge-pbkdf2-iter.p12"] {
        let t = std::time::Instant::now();
        let o = env.run(&["id", "import", fixture(f).to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{f}");
        assert!(
            text(&o.stderr).contains("iterations"),
            "{f}: {}",
            text(&o.stderr)
        );
        // Generous bound: the point is "not hours"; a debug build on a loaded CI machine is slow.
        assert!(t.elapsed().as_secs() < 20, "{f} took {:?}", t.elapsed());
    }
}

#[test]
fn unwritable_home_is_an_error() {
    let env = Env::new();
    std::fs::create_dir(env.home()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.home(), std::fs::Permissions::from_mode(0o500)).unwrap();
    let o = env.run(&[
        "id",
        "import",
        fixture("p12/alice-modern.p12").to_str().unwrap(),
    ]);
    // root ignores permission bits; then the import may succeed, which is fine. Otherwise: exit 2, clear message.
    if o.status.code() != Some(0) {
        assert_eq!(o.status.code(), Some(2));
        assert!(text(&o.stderr).contains("home"), "{}", text(&o.stderr));
    }
    std::fs::set_permissions(env.home(), std::fs::Permissions::from_mode(0o700)).unwrap();
    // A home writable by others is refused outright, whoever runs the test.
    std::fs::set_permissions(env.home(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = env.run(&["id", "list"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("chmod 700"), "{}", text(&o.stderr));
}

#[test]
fn crash_before_rename_leaves_store_intact() {
    let env = Env::new();
    env.import("p12/bob.p12");
    let before = env.snapshot();
    // Kill the import between the temp-file write and the rename (the hook aborts the process there).
    let mut c = env.cmd(&[
        "id",
        "import",
        fixture("p12/alice-modern.p12").to_str().unwrap(),
    ]);
    c.env("SMIMEKIT_TEST_CRASH_BEFORE_RENAME", ".pem");
    let o = c.output().unwrap();
    assert_ne!(o.status.code(), Some(0));
    // The old state is intact and readable; the orphaned temp file is ignored by every command.
    let after: Vec<_> = env
        .snapshot()
        .into_iter()
        .filter(|(p, _)| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .collect();
    assert_eq!(before, after);
    let o = env.ok(&["id", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ids"].as_array().unwrap().len(), 1);
    // And the next import completes.
    env.import("p12/alice-modern.p12");
}

#[test]
fn kill_9_during_imports_never_tears_the_store() {
    let env = Env::new();
    env.import("p12/bob.p12");
    for delay_ms in [5u64, 40, 120, 300] {
        let mut child = env
            .cmd(&[
                "id",
                "import",
                fixture("p12/alice-modern.p12").to_str().unwrap(),
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Every ID file that exists is complete and loads.
        env.ok(&["id", "list"]);
        if env.run(&["id", "show", "alice@example.com"]).status.code() == Some(0) {
            env.ok(&["id", "delete", "alice@example.com", "--yes"]);
        }
    }
}

#[test]
fn new_self_signed_and_csr_then_install() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "id",
        "new",
        "--email",
        "zed@example.com",
        "--key",
        "ec-p256",
        "--days",
        "30",
    ]);
    let o = env.ok(&["id", "show", "zed@example.com", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["key"], "EC P-256");
    assert_eq!(v["can_sign"], true);
    assert_eq!(v["can_encrypt"], true);
    assert_eq!(
        v["expires_soon"], true,
        "30 days is within the warning window"
    );
    // CSR → sign with the test CA using the openssl CLI → install.
    let csr = env.path("req.csr");
    env.ok(&[
        "id",
        "new",
        "--email",
        "yan@example.com",
        "--key",
        "rsa2048",
        "--csr",
        csr.to_str().unwrap(),
    ]);
    let o = env.ok(&["id", "list"]);
    assert!(text(&o.stdout).contains("pending"));
    let crt = env.path("yan.pem");
    let ext = env.path("ext.cnf");
    std::fs::write(&ext, "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\nsubjectAltName=email:yan@example.com\n").unwrap();
    let (rc, _, err) = external(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            fixture("pki/inter.pem").to_str().unwrap(),
            "-CAkey",
            fixture("pki/inter.key").to_str().unwrap(),
            "-CAcreateserial",
            "-CAserial",
            env.path("serial").to_str().unwrap(),
            "-days",
            "100",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    env.ok(&[
        "id",
        "install-cert",
        crt.to_str().unwrap(),
        "--chain",
        fixture("pki/chain.pem").to_str().unwrap(),
    ]);
    let o = env.ok(&["id", "list"]);
    assert!(!text(&o.stdout).contains("pending"));
    env.ok(&["id", "show", "yan@example.com"]);
    // A certificate for a key we do not have: clear error.
    let o = env.run(&[
        "id",
        "install-cert",
        fixture("pki/eve.pem").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no pending key"));
}

#[test]
fn batch_without_secret_fails_and_delete_needs_yes() {
    let env = Env::new();
    env.import("p12/alice-modern.p12");
    let mut c = env.cmd(&[
        "id",
        "export",
        "alice@example.com",
        "-o",
        env.path("a.p12").to_str().unwrap(),
    ]);
    c.env_remove("SMIMEKIT_PASSPHRASE");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--passphrase-file"),
        "{}",
        text(&o.stderr)
    );
    // A backup needs the keys: the same missing passphrase is a clear error, and nothing is written.
    let backup = env.path("backup.p12");
    let mut c = env.cmd(&["id", "backup", "-o", s(&backup)]);
    c.env_remove("SMIMEKIT_PASSPHRASE");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--passphrase-file"),
        "{}",
        text(&o.stderr)
    );
    assert!(!backup.exists());
    assert_error_unchanged(&env, &["id", "delete", "alice@example.com"], "--yes");
    env.ok(&["id", "delete", "alice@example.com", "--yes"]);
    assert_eq!(
        env.run(&["id", "show", "alice@example.com"]).status.code(),
        Some(2)
    );
}

#[test]
fn secrets_come_from_files() {
    let env = Env::new();
    let pw = env.path("pw");
    std::fs::write(&pw, format!("{P12_PASSWORD}\n")).unwrap();
    let pp = env.path("pp");
    std::fs::write(&pp, "another passphrase\n").unwrap();
    let mut c = env.cmd(&[
        "id",
        "import",
        fixture("p12/alice-modern.p12").to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        "--passphrase-file",
        pp.to_str().unwrap(),
    ]);
    c.env_remove("SMIMEKIT_PASSWORD")
        .env_remove("SMIMEKIT_PASSPHRASE");
    assert_eq!(c.output().unwrap().status.code(), Some(0));
    // The env passphrase is now wrong: "wrong passphrase", exit 2.
    let o = env.run(&[
        "id",
        "export",
        "alice@example.com",
        "-o",
        env.path("a.p12").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("wrong passphrase"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn process_is_not_dumpable() {
    // The CLI disables core dumps before touching secrets (T48). Check the limit through /proc of a running
    // smimekit held waiting on the store lock.
    let env = Env::new();
    env.ok(&["trust", "add", fixture("pki/inter.pem").to_str().unwrap()]);
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(env.home().join("lock"))
        .unwrap();
    lock.lock().unwrap();
    let mut child = env
        .cmd(&["trust", "add", fixture("pki/root.pem").to_str().unwrap()])
        .spawn()
        .unwrap();
    // Poll (a loaded CI machine may take a while to start the process); it waits on the lock meanwhile.
    let mut core = String::new();
    for _ in 0..200 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let limits =
            std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap_or_default();
        core = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap_or("")
            .to_string();
        if core.split_whitespace().nth(4) == Some("0") {
            break;
        }
    }
    lock.unlock().unwrap();
    let _ = child.wait();
    assert!(
        core.split_whitespace().nth(4) == Some("0"),
        "core limit not zero: {core}"
    );
}

#[test]
fn symlinked_store_folder_is_refused_for_reading() {
    // An `ids/` that is a symbolic link (e.g. to a folder others can write) must not feed the store.
    let env = Env::new();
    env.import("p12/alice-modern.p12");
    let elsewhere = env.path("elsewhere");
    std::fs::rename(env.home().join("ids"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.home().join("ids")).unwrap();
    let o = env.run(&["id", "list"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("symbolic link"),
        "{}",
        text(&o.stderr)
    );
}
