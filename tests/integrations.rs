//! Shell completions, manual pages and the configuration file, through the real binary.

mod common;

use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use common::{Env, text};

/// `smimekit ARGS` with no smimekit settings from the environment except `env`, and a throw-away
/// `XDG_CONFIG_HOME` (the developer's own config.toml must not leak in).
fn smimekit(e: &Env, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::cargo_bin("smimekit").unwrap();
    c.args(args).stdin(Stdio::null());
    for v in [
        "SMIMEKIT_HOME",
        "SMIMEKIT_CONFIG",
        "SMIMEKIT_DIGEST",
        "SMIMEKIT_SIGN_ID",
        "SMIMEKIT_SIGN_FORM",
        "SMIMEKIT_CIPHER_POLICY",
        "SMIMEKIT_REVOCATION",
        "SMIMEKIT_GIT_SIGNING_KEY",
        "SMIMEKIT_PASSPHRASE_FILE",
        "SMIMEKIT_PASSPHRASE",
    ] {
        c.env_remove(v);
    }
    c.env("XDG_CONFIG_HOME", e.path("xdg"));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn bash_completion_parses_and_covers_the_commands() {
    if !common::have(&["bash"]) {
        return;
    }
    let e = Env::new();
    let o = smimekit(&e, &["completions", "bash"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let script = e.write_file("smimekit.bash", &o.stdout);
    let (rc, _, err) = common::external("bash", &["-n", script.to_str().unwrap()], None);
    assert_eq!(rc, 0, "bash -n: {err}");
    let s = text(&o.stdout);
    for word in [
        "verify",
        "encrypt",
        "install-cert",
        "--passphrase-file",
        "--config",
    ] {
        assert!(s.contains(word), "completion lacks {word}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = smimekit(&e, &["completions", shell], &[]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        assert!(text(&o.stdout).contains("install-cert"), "{shell}");
    }
    let o = smimekit(&e, &["completions", "tcsh"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn man_pages_one_per_command_and_they_lint() {
    if !common::have(&["mandoc"]) {
        return;
    }
    let e = Env::new();
    let dir = e.path("man");
    let o = smimekit(&e, &["man", "-o", dir.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    for page in [
        "smimekit.1",
        "smimekit-sign.1",
        "smimekit-id.1",
        "smimekit-id-import.1",
        "smimekit-contact-add.1",
        "smimekit-config-show.1",
    ] {
        let p = dir.join(page);
        assert!(p.is_file(), "{page} missing");
        // -W error: exit 0 unless the page has errors (clap_mangen's layout leaves style notes).
        let (rc, _, err) = common::external(
            "mandoc",
            &["-T", "lint", "-W", "error", p.to_str().unwrap()],
            None,
        );
        assert_eq!(rc, 0, "mandoc -T lint {page}: {err}");
    }
    // Renders (exit 2 = warnings only, see above).
    let (rc, out, _) = common::external(
        "mandoc",
        &[
            "-T",
            "utf8",
            "-O",
            "width=200",
            dir.join("smimekit-sign.1").to_str().unwrap(),
        ],
        None,
    );
    assert!(rc <= 2, "mandoc -T utf8 failed");
    let page = text(&out);
    assert!(page.contains("digest") && page.contains("opaque"), "{page}");
    let src = std::fs::read_to_string(dir.join("smimekit-sign.1")).unwrap();
    assert!(src.contains("\\-\\-digest"), "{src}");
    // Without -o: the main page on standard output.
    let o = smimekit(&e, &["man"], &[]);
    assert!(text(&o.stdout).starts_with(".ie"), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains(".TH smimekit 1"));
}

fn show(e: &Env, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend(args);
    a.extend(["config", "show"]);
    let o = smimekit(e, &a, env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn setting(j: &serde_json::Value, key: &str) -> (String, String) {
    let s = j["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {j}"));
    (
        s["value"].as_str().unwrap_or("").to_string(),
        s["source"].as_str().unwrap().to_string(),
    )
}

#[test]
fn config_show_precedence_file_environment_flag() {
    let e = Env::new();
    let cfg = e.write_file(
        "config.toml",
        b"home = \"/from/file\"\n[sign]\ndigest = \"sha384\"\n[encrypt]\ncipher-policy = \"modern\"\n",
    );
    let c = cfg.to_str().unwrap();
    let j = show(&e, &["--config", c], &[]);
    assert_eq!(j["file"], c);
    assert_eq!(setting(&j, "home"), ("/from/file".into(), "file".into()));
    assert_eq!(setting(&j, "sign.digest"), ("sha384".into(), "file".into()));
    assert_eq!(
        setting(&j, "encrypt.cipher-policy"),
        ("modern".into(), "file".into())
    );
    assert_eq!(
        setting(&j, "sign.form"),
        ("multipart".into(), "default".into())
    );
    let j = show(
        &e,
        &["--config", c],
        &[
            ("SMIMEKIT_HOME", "/from/env"),
            ("SMIMEKIT_DIGEST", "sha512"),
        ],
    );
    assert_eq!(
        setting(&j, "home"),
        ("/from/env".into(), "environment".into())
    );
    assert_eq!(
        setting(&j, "sign.digest"),
        ("sha512".into(), "environment".into())
    );
    let j = show(
        &e,
        &["--config", c, "--home", "/from/flag"],
        &[("SMIMEKIT_HOME", "/from/env")],
    );
    assert_eq!(setting(&j, "home"), ("/from/flag".into(), "flag".into()));
    // $SMIMEKIT_CONFIG names the file when --config does not; the default path is used when it exists.
    let j = show(&e, &[], &[("SMIMEKIT_CONFIG", c)]);
    assert_eq!(setting(&j, "home").1, "file");
    std::fs::create_dir_all(e.path("xdg/smimekit")).unwrap();
    std::fs::write(
        e.path("xdg/smimekit/config.toml"),
        "[git]\nsigning-key = \"alice@example.com\"\n",
    )
    .unwrap();
    let j = show(&e, &[], &[]);
    assert_eq!(
        setting(&j, "git.signing-key"),
        ("alice@example.com".into(), "file".into())
    );
}

#[test]
fn bad_config_files_name_key_and_line() {
    let e = Env::new();
    let cfg = e.write_file(
        "config.toml",
        b"# mine\n[sign]\ndigest = \"sha256\"\nalgorithm = \"x\"\n",
    );
    let o = smimekit(
        &e,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--home",
            e.home().to_str().unwrap(),
            "id",
            "list",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("line 4") && err.contains("algorithm"), "{err}");
    assert!(err.contains("smimekit: hint:"), "{err}");
    // Nothing was created: the command did not run.
    assert!(!e.home().exists());
    let cfg = e.write_file("bad2.toml", b"\n\n[encrypt]\ncipher-policy = \"fastest\"\n");
    let o = smimekit(
        &e,
        &["--config", cfg.to_str().unwrap(), "config", "show"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("line 4")
            && err.contains("encrypt.cipher-policy")
            && err.contains("compatible, modern"),
        "{err}"
    );
    // A missing --config file is an error, not silently the defaults.
    let o = smimekit(
        &e,
        &[
            "--config",
            e.path("nope.toml").to_str().unwrap(),
            "config",
            "show",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sign_takes_its_digest_from_file_environment_then_flag() {
    let e = Env::new();
    e.import_np("p12/alice-modern.p12");
    let msg = e.write(
        "m.eml",
        &common::simple_message("Alice <alice@example.com>", "hello\r\n"),
    );
    let cfg = e.write_file("config.toml", b"[sign]\ndigest = \"sha512\"\n");
    let home = e.home();
    let sign = |extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec![
            "--config",
            cfg.to_str().unwrap(),
            "--home",
            home.to_str().unwrap(),
            "sign",
            msg.as_str(),
        ];
        a.extend(extra);
        let o = smimekit(&e, &a, env);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        common::header(&o.stdout, "Content-Type").unwrap()
    };
    assert!(sign(&[], &[]).contains("micalg=sha-512"));
    assert!(sign(&[], &[("SMIMEKIT_DIGEST", "sha384")]).contains("micalg=sha-384"));
    assert!(
        sign(&["--digest", "sha256"], &[("SMIMEKIT_DIGEST", "sha384")]).contains("micalg=sha-256")
    );
}

/// Runs `sh -c CMD` on a pseudo-terminal (`script`), so smimekit's standard error is a terminal; returns what
/// the terminal received.
fn on_terminal(e: &Env, cmd: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin("smimekit");
    let full = format!("{} --home {} {cmd}", bin.display(), e.home().display());
    let o = Command::new("script")
        .args(["-qec", &full, "/dev/null"])
        .current_dir(e.dir.path())
        .env("TERM", "xterm")
        .env("SMIMEKIT_PROGRESS_DELAY_MS", "0")
        .env("XDG_CONFIG_HOME", e.path("xdg"))
        .env_remove("SMIMEKIT_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{full}: {}", text(&o.stdout));
    text(&o.stdout)
}

#[test]
fn progress_only_on_a_terminal_and_never_in_the_message() {
    if !common::have(&["script"]) {
        return;
    }
    let e = Env::new();
    e.import_np("p12/alice-modern.p12");
    e.trust_root();
    let body = "a line of a large message, long enough to take a moment to sign\r\n".repeat(40_000);
    let msg = e.write(
        "big.eml",
        &common::simple_message("Alice <alice@example.com>", &body),
    );
    let term = on_terminal(&e, &format!("sign {msg} -o signed.eml"));
    assert!(term.contains("smimekit: working on the message"), "{term}");
    let term = on_terminal(&e, "verify signed.eml --no-harvest");
    assert!(term.contains("smimekit: verifying the message"), "{term}");
    // The message went to standard output (a file) while the spinner ran on the terminal: no trace in it.
    let term = on_terminal(&e, &format!("sign {msg} > piped.eml"));
    assert!(term.contains("working on the message"), "{term}");
    let piped = std::fs::read(e.path("piped.eml")).unwrap();
    assert!(!text(&piped).contains("working on"));
    e.ok(&[
        "verify",
        e.path("piped.eml").to_str().unwrap(),
        "--no-harvest",
    ]);
    // Never with --json or --batch, even on a terminal.
    for flag in ["--json", "--batch"] {
        let term = on_terminal(&e, &format!("{flag} sign {msg} -o signed2.eml"));
        assert!(!term.contains("working on the message"), "{flag}: {term}");
    }
    // Without a terminal (the tests' pipes): nothing.
    let o = e.run(&["sign", &msg, "-o", e.path("signed3.eml").to_str().unwrap()]);
    assert!(!text(&o.stderr).contains("working on"));
}

#[test]
fn encrypt_and_verify_take_cipher_policy_and_revocation_from_the_configuration() {
    let e = Env::new();
    e.import_np("p12/alice-modern.p12");
    let home = e.home();
    let bob = common::fixture("pki/bob.pem");
    e.ok(&["contact", "add", bob.to_str().unwrap()]);
    let msg = e.write(
        "m.eml",
        &common::message(
            "Alice <alice@example.com>",
            "bob@example.org",
            "",
            "hello\r\n",
        ),
    );
    let cfg = e.write_file(
        "config.toml",
        b"[encrypt]\ncipher-policy = \"modern\"\n\n[revocation]\ncheck = \"off\"\n",
    );
    let out = e.path("out.eml");
    let run = |args: &[&str], env: &[(&str, &str)]| -> serde_json::Value {
        let mut a = vec![
            "--config",
            cfg.to_str().unwrap(),
            "--home",
            home.to_str().unwrap(),
            "--batch",
            "--json",
        ];
        a.extend(args);
        let o = smimekit(&e, &a, env);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let encrypt = |extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec!["encrypt", msg.as_str(), "-o", out.to_str().unwrap()];
        a.extend(extra);
        let j = run(&a, env);
        j["cipher_policy"].as_str().unwrap().to_string()
    };
    // bob's capabilities are unknown, so the policy decides: file, then environment, then flag.
    assert_eq!(encrypt(&[], &[]), "modern");
    assert_eq!(
        encrypt(&[], &[("SMIMEKIT_CIPHER_POLICY", "compatible")]),
        "compatible"
    );
    assert_eq!(
        encrypt(
            &["--cipher-policy", "modern"],
            &[("SMIMEKIT_CIPHER_POLICY", "compatible")]
        ),
        "modern"
    );
    // revocation.check = off is verify's default; the flag wins. (The test root is trusted, so revocation applies
    // to the chain; nothing about it is cached, so a check says "unknown".)
    e.ok(&[
        "trust",
        "add",
        common::fixture("pki/root.pem").to_str().unwrap(),
    ]);
    let signed = e.path("signed.eml");
    let o = smimekit(
        &e,
        &[
            "--home",
            home.to_str().unwrap(),
            "--batch",
            "sign",
            msg.as_str(),
            "-o",
            signed.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let verify = |extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec!["verify", signed.to_str().unwrap(), "--no-harvest"];
        a.extend(extra);
        let mut all = vec![
            "--config",
            cfg.to_str().unwrap(),
            "--home",
            home.to_str().unwrap(),
            "--batch",
            "--json",
        ];
        all.extend(a);
        let o = smimekit(&e, &all, env);
        let j: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{}{}", text(&o.stdout), text(&o.stderr)));
        j["revocation"].as_str().unwrap().to_string()
    };
    assert_eq!(verify(&[], &[]), "not checked");
    assert_eq!(verify(&[], &[("SMIMEKIT_REVOCATION", "prefer")]), "unknown");
    assert_eq!(
        verify(
            &["--revocation", "off"],
            &[("SMIMEKIT_REVOCATION", "prefer")]
        ),
        "not checked"
    );
}
